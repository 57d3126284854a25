//! The census jobs aggregate: a distributed census split into shards that workers lease,
//! heartbeat, checkpoint and complete. PostgreSQL only; on SQLite every call says so.
//!
//! The store knows leases, not scanning: a job's parameters and a shard's checkpoint are
//! JSON the binary writes and reads. Lease expiry is always judged by the database's clock,
//! so workers on machines whose clocks disagree still agree on whose lease is live.

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::{ScanId, StoreError};

/// Where a census job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Shards are handed out.
    Running,
    /// No shard is handed out; workers holding one release it at their next heartbeat.
    Paused,
    /// As paused, for good: the scan stays unfinished.
    Cancelled,
    /// Every shard is done; one worker is marking the scan finished.
    Finishing,
    /// The scan is finished: the census is complete.
    Finished,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Running,
        JobState::Paused,
        JobState::Cancelled,
        JobState::Finishing,
        JobState::Finished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Cancelled => "cancelled",
            JobState::Finishing => "finishing",
            JobState::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }
}

/// Where one shard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    Pending,
    /// A worker holds it (its lease may have expired; then it can be taken over).
    Leased,
    Done,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Pending => "pending",
            ShardState::Leased => "leased",
            ShardState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<ShardState> {
        [ShardState::Pending, ShardState::Leased, ShardState::Done]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

/// A census job about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCensusJob {
    /// Unique, not empty.
    pub name: String,
    /// The scan every shard records into (already begun).
    pub scan: ScanId,
    /// The scan parameters, opaque to the store.
    pub params: serde_json::Value,
    /// The number of targets of each shard, in shard order; its length is the shard count.
    pub shard_targets: Vec<u64>,
}

/// A census job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CensusJob {
    pub id: i64,
    pub name: String,
    pub scan: ScanId,
    pub state: JobState,
    pub params: serde_json::Value,
    pub shards: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// When the current pause began; `None` while not paused.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// The length of the pauses that ended (resumed or cancelled), in seconds.
    pub paused_seconds: f64,
}

/// One shard as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardRecord {
    pub shard: u32,
    pub state: ShardState,
    /// The worker holding (or that last held) the lease; `None` when pending.
    pub owner: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_expires: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub heartbeat_at: Option<OffsetDateTime>,
    pub checkpoint: Option<serde_json::Value>,
    pub targets_total: u64,
    pub targets_done: u64,
    /// How many times it was leased.
    pub leases: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Names one shard of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardKey {
    pub job: i64,
    pub shard: u32,
}

/// A shard a worker now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardLease {
    pub job: CensusJob,
    pub shard: u32,
    /// Where the previous holder got to; `None` for a fresh shard.
    pub checkpoint: Option<serde_json::Value>,
    pub targets_done: u64,
    /// Leases of this job that are live now, this one included.
    pub live_leases: u32,
    /// 1 for the first lease of the shard; more for a takeover or a resumed pause.
    pub leases: u32,
}

impl ShardLease {
    pub fn key(&self) -> ShardKey {
        ShardKey {
            job: self.job.id,
            shard: self.shard,
        }
    }
}

/// What [`CensusJobStore::claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A shard to scan.
    Shard(ShardLease),
    /// A job whose shards are all done and whose scan this worker must now mark finished,
    /// then call [`CensusJobStore::finished`].
    Finish(CensusJob),
    /// Nothing to take now; `outstanding` shards (and finishes) are held by live leases of
    /// running jobs, so work may still come free if a holder dies.
    Idle { outstanding: u64 },
}

/// A worker's progress on its shard, saved with a heartbeat, a release or a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardProgress {
    pub checkpoint: serde_json::Value,
    pub targets_done: u64,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The lease is extended; the job is in `job_state` with `live_leases` live leases.
    Held {
        job_state: JobState,
        live_leases: u32,
    },
    /// The lease is gone (expired and taken over, or the shard finished by another): stop,
    /// and write nothing more for this shard.
    Lost,
}

/// What completing a shard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The lease was gone: nothing was written.
    Lost,
    /// Done; other shards remain.
    Done,
    /// Done, and it was the last: this worker holds the finish lease and must mark the scan
    /// finished, then call [`CensusJobStore::finished`].
    Last,
}

/// An operator's order to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
}

/// Distributed census jobs: creation, leases, progress and control.
#[async_trait::async_trait]
pub trait CensusJobStore: Send + Sync {
    /// Records a job with its shards, all pending, in one transaction. A name already taken
    /// is [`StoreError::InvalidQuery`]; so is an empty name or no shard.
    async fn create_job(&self, job: &NewCensusJob) -> Result<CensusJob, StoreError>;

    /// The job with this name, if any.
    async fn job(&self, name: &str) -> Result<Option<CensusJob>, StoreError>;

    /// Every job, oldest first.
    async fn jobs(&self) -> Result<Vec<CensusJob>, StoreError>;

    /// A job's shards, by shard number.
    async fn shards(&self, job: i64) -> Result<Vec<ShardRecord>, StoreError>;

    /// The database's clock, which every lease is judged by.
    async fn now(&self) -> Result<OffsetDateTime, StoreError>;

    /// Takes one piece of work for `owner` with a lease of `lease`: a finish whose finisher
    /// died, else a pending shard or one whose lease expired (lowest job, then shard, first),
    /// of running jobs (only the job named `only`, when given). Concurrent claims never take
    /// the same shard (`FOR UPDATE SKIP LOCKED`).
    async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        only: Option<&str>,
    ) -> Result<Claim, StoreError>;

    /// Extends `owner`'s lease on a shard to now + `lease` and saves its progress, if the
    /// lease is still `owner`'s; otherwise writes nothing and says [`Beat::Lost`].
    async fn heartbeat(
        &self,
        shard: ShardKey,
        owner: &str,
        lease: Duration,
        progress: &ShardProgress,
    ) -> Result<Beat, StoreError>;

    /// Gives a shard back (pending, progress kept) if `owner` still holds it; `false` if not.
    async fn release(
        &self,
        shard: ShardKey,
        owner: &str,
        progress: &ShardProgress,
    ) -> Result<bool, StoreError>;

    /// Marks `owner`'s shard done with its final progress. Completions of one job are
    /// serialized, so exactly one of them sees that the last shard is done
    /// ([`Completion::Last`]), and it then holds the finish lease for `lease`.
    async fn complete(
        &self,
        shard: ShardKey,
        owner: &str,
        lease: Duration,
        progress: &ShardProgress,
    ) -> Result<Completion, StoreError>;

    /// Records that `owner`, holding the job's finish lease, marked its scan finished; `false`
    /// when the finish lease was not (or no longer) `owner`'s.
    async fn finished(&self, job: i64, owner: &str) -> Result<bool, StoreError>;

    /// Pauses, resumes or cancels the job named `name`; returns its new state, or `None` when
    /// no job has that name. An order the job's state does not allow (resuming a cancelled
    /// job, pausing a finished one) is [`StoreError::InvalidQuery`] and changes nothing.
    async fn control(&self, name: &str, order: Control) -> Result<Option<JobState>, StoreError>;
}

/// The census jobs handle of an SQLite store: every call fails with the same explanation,
/// because leases between machines need a database server they all reach.
pub(crate) struct PostgresOnly;

fn needs_postgres<T>() -> Result<T, StoreError> {
    Err(StoreError::InvalidQuery(Cow::Borrowed(
        "the distributed census needs PostgreSQL: give --db postgres://… (SQLite is one \
         machine's file)",
    )))
}

#[async_trait::async_trait]
impl CensusJobStore for PostgresOnly {
    async fn create_job(&self, _: &NewCensusJob) -> Result<CensusJob, StoreError> {
        needs_postgres()
    }
    async fn job(&self, _: &str) -> Result<Option<CensusJob>, StoreError> {
        needs_postgres()
    }
    async fn jobs(&self) -> Result<Vec<CensusJob>, StoreError> {
        needs_postgres()
    }
    async fn shards(&self, _: i64) -> Result<Vec<ShardRecord>, StoreError> {
        needs_postgres()
    }
    async fn now(&self) -> Result<OffsetDateTime, StoreError> {
        needs_postgres()
    }
    async fn claim(&self, _: &str, _: Duration, _: Option<&str>) -> Result<Claim, StoreError> {
        needs_postgres()
    }
    async fn heartbeat(
        &self,
        _: ShardKey,
        _: &str,
        _: Duration,
        _: &ShardProgress,
    ) -> Result<Beat, StoreError> {
        needs_postgres()
    }
    async fn release(&self, _: ShardKey, _: &str, _: &ShardProgress) -> Result<bool, StoreError> {
        needs_postgres()
    }
    async fn complete(
        &self,
        _: ShardKey,
        _: &str,
        _: Duration,
        _: &ShardProgress,
    ) -> Result<Completion, StoreError> {
        needs_postgres()
    }
    async fn finished(&self, _: i64, _: &str) -> Result<bool, StoreError> {
        needs_postgres()
    }
    async fn control(&self, _: &str, _: Control) -> Result<Option<JobState>, StoreError> {
        needs_postgres()
    }
}

/// Checks a new job before anything is written.
pub(crate) fn check_new(job: &NewCensusJob) -> Result<(), StoreError> {
    if job.name.trim().is_empty() {
        return Err(StoreError::InvalidQuery(Cow::Borrowed(
            "a census needs a name",
        )));
    }
    if job.name.contains('\0') {
        return Err(StoreError::Unencodable {
            what: Cow::Borrowed("a census name containing NUL"),
        });
    }
    if job.shard_targets.is_empty() || job.shard_targets.len() > MAX_SHARDS as usize {
        return Err(StoreError::InvalidQuery(Cow::Owned(format!(
            "a census needs between 1 and {MAX_SHARDS} shards, not {}",
            job.shard_targets.len()
        ))));
    }
    Ok(())
}

/// More shards than this is a mistake, not a plan: a national census needs hundreds.
pub const MAX_SHARDS: u32 = 65_536;
