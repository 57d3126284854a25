//! One store interface for scans and their observations, with PostgreSQL and SQLite backends.
//!
//! [`open`] picks the backend from the database URL at run time and returns a [`Store`]: one
//! object-safe trait per aggregate ([`ScanStore`] for scans and what they saw, [`CensusStore`]
//! for the census read side), both backed by the same connection pool. Each backend has its own
//! migrations folder (`migrations/sqlite`, `migrations/postgres` at the workspace root) and the
//! same conformance suite (`tests/conformance.rs`) runs against both.
//!
//! Rows are mapped to and from `surveyor_model` types here, at the edge; the model knows
//! nothing about SQL. See `docs/storage.md` for the schema and the precision choices.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surveyor_model::{ExchangeServer, Observation, Organisation};
use time::{Date, OffsetDateTime};

mod census;
mod error;
mod jobs;
mod notifications;
mod overlap;
mod pg_copy;
mod postgres;
mod postgres_jobs;
mod rows;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod testing;
mod url;

pub use census::{
    CensusFilter, CensusGroup, Dimension, PrunePolicy, PruneReport, ServerCursor, ServersPage,
    TrendPoint,
};
pub use error::StoreError;
pub use jobs::{
    Beat, CensusJob, CensusJobStore, Claim, Completion, Control, JobState, NewCensusJob, ShardKey,
    ShardLease, ShardProgress, ShardRecord, ShardState, MAX_SHARDS,
};
pub use notifications::{
    AttemptOutcome, Channel, DeliveryRecord, FindingKey, NewNotification, Notification,
    NotificationStatus, NotificationStore, NotifiedFinding, Suppression,
};
pub use url::redact_url;

/// The id of a scan, as the store assigned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScanId(pub i64);

impl fmt::Display for ScanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A scan about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScan {
    /// Stored to the microsecond (sub-microsecond digits are dropped).
    pub started_at: OffsetDateTime,
    /// The date support verdicts are made for.
    pub as_of: Date,
    /// A human description of the target spec, e.g. "192.0.2.0/24, 198.51.100.7".
    pub targets: String,
    pub ports: Vec<u16>,
    pub tool_version: String,
    /// The knowledge base that judges the scan's observations; `None` only where no verdict
    /// is made (tests of the store itself).
    pub kb: Option<KbRef>,
}

/// Which knowledge base judged a scan: the digest of its data files and the newest release
/// date in them (`surveyor_kb::KbStamp`, as the store keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KbRef {
    /// SHA-256 of the data files, 64 lower-case hex digits.
    pub digest: String,
    #[serde(with = "iso_date")]
    pub newest_release: Date,
}

/// A judgement of a stored scan's observations made again, with another knowledge base or
/// for another day (`surveyor rejudge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJudgement {
    /// The scan whose observations are judged again: a scan, never a judgement.
    pub source: ScanId,
    /// The day the verdicts are made for. Another day than the source's makes a projection,
    /// which never becomes the default census.
    pub as_of: Date,
    pub kb: KbRef,
    /// When the judging started (stored to the microsecond).
    pub judged_at: OffsetDateTime,
    pub tool_version: String,
}

/// Where [`ScanStore::observations_page`] goes on: after this (address, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationCursor {
    pub ip: IpAddr,
    pub port: u16,
}

/// A scan as stored, with the number of observations recorded for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRecord {
    pub id: ScanId,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `None` while the scan runs (or if it never finished).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(with = "iso_date")]
    pub as_of: Date,
    pub targets: String,
    pub ports: Vec<u16>,
    pub tool_version: String,
    pub observations: u64,
    /// When `surveyor prune` deleted its observations; its census aggregates remain.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pruned_at: Option<OffsetDateTime>,
    /// The knowledge base that made its verdicts; `None` for scans stored before Surveyor
    /// recorded it.
    pub kb: Option<KbRef>,
    /// When its verdicts were made: the start of a scan, the re-judging of a judgement.
    #[serde(with = "time::serde::rfc3339")]
    pub judged_at: OffsetDateTime,
    /// For a re-judgement: the scan whose observations it judged again. A re-judgement
    /// carries its source's `started_at`, `finished_at`, targets and ports.
    pub judged_from: Option<ScanId>,
    /// A re-judgement for another day than its source's `as_of`: asked for by id, never the
    /// default census.
    pub projection: bool,
    /// The newer judgement of the same observations that is now the default instead.
    pub superseded_by: Option<ScanId>,
}

impl ScanRecord {
    /// The scan whose observations these are: itself, or the source of a re-judgement.
    pub fn source(&self) -> ScanId {
        self.judged_from.unwrap_or(self.id)
    }

    /// Whether a census that names no scan may read it: finished, not replaced by a newer
    /// judgement, and not a projection.
    pub fn is_default(&self) -> bool {
        self.finished_at.is_some() && self.superseded_by.is_none() && !self.projection
    }
}

/// Scans and the observations they recorded.
#[async_trait::async_trait]
pub trait ScanStore: Send + Sync {
    /// Stores a new, unfinished scan and returns its id.
    async fn begin_scan(&self, scan: &NewScan) -> Result<ScanId, StoreError>;

    /// Stores a new, unfinished re-judgement of a finished scan (its targets, ports and times
    /// copied) and returns its id; the caller records the re-judged observations and finishes
    /// it, which makes it the default unless it is a projection. [`StoreError::UnknownScan`],
    /// [`StoreError::ScanPruned`], or `InvalidQuery` for an unfinished source or one that is
    /// itself a judgement.
    async fn begin_judgement(&self, judgement: &NewJudgement) -> Result<ScanId, StoreError>;

    /// Appends a batch of observations in ONE transaction: all or nothing.
    ///
    /// Idempotent per (scan, ip, port): an observation of a target the scan already has (a
    /// resumed scan, overlapping target lists) is skipped, and the first one stands. Fails
    /// with [`StoreError::UnknownScan`] for an id no scan has; on any failure nothing of the
    /// batch is stored and earlier batches are untouched. `observed_at` is stored to the
    /// microsecond.
    async fn record(&self, scan: ScanId, batch: &[Observation]) -> Result<(), StoreError>;

    /// Marks a scan finished and, in the same transaction, stores its census aggregates and
    /// folds its observations into the hosts table. Finishing again recomputes both.
    /// A re-judgement that is not a projection also becomes the default judgement of its
    /// source's observations (every earlier one is marked superseded); a projection is never
    /// folded into the hosts table. [`StoreError::UnknownScan`] for an id no scan has.
    async fn finish_scan(
        &self,
        scan: ScanId,
        finished_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// All scans, newest first (by `started_at`, then id).
    async fn scans(&self) -> Result<Vec<ScanRecord>, StoreError>;

    /// One scan, or `None` when no scan has this id.
    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError>;

    /// Every observation of a scan, ordered by ip then port, exactly as recorded (to the
    /// microsecond). [`StoreError::UnknownScan`] for an id no scan has.
    async fn observations(&self, scan: ScanId) -> Result<Vec<Observation>, StoreError>;

    /// At most `limit` observations of a scan after `after`, in the backend's key order, and
    /// the cursor of the next page (`None` after the last): a walk over a scan of any size in
    /// bounded memory, each page one descent of the primary key.
    /// [`StoreError::UnknownScan`], [`StoreError::ScanPruned`].
    async fn observations_page(
        &self,
        scan: ScanId,
        after: Option<ObservationCursor>,
        limit: u32,
    ) -> Result<(Vec<Observation>, Option<ObservationCursor>), StoreError>;

    /// Deletes the observations of the finished scans `policy` does not keep, never the
    /// newest finished scan nor an unfinished one, each scan in its own transaction. Census
    /// aggregates, hosts and the scan rows stay, so trends and first/last sightings survive.
    /// `dry_run` reports without deleting.
    async fn prune(&self, policy: &PrunePolicy, dry_run: bool) -> Result<PruneReport, StoreError>;
}

/// The read side a census is computed from.
#[async_trait::async_trait]
pub trait CensusStore: Send + Sync {
    /// The latest finished scan (by `finished_at`, then id) in its default judgement:
    /// unfinished scans, superseded judgements and projections are ignored.
    async fn latest_finished_scan(&self) -> Result<Option<ScanRecord>, StoreError>;

    /// The recognised Exchange servers of a scan (observations with an exchange verdict), one
    /// per observation, ordered by ip then port. [`StoreError::UnknownScan`] for an id no scan
    /// has.
    async fn exchange_servers(&self, scan: ScanId) -> Result<Vec<ExchangeServer>, StoreError>;

    /// One address: its latest state per port (from finished scans) and every observation of
    /// it still stored, oldest scan first, each scan in its default judgement (projections and
    /// superseded judgements left out). Empty when no scan saw it.
    async fn host(&self, ip: IpAddr) -> Result<HostDetail, StoreError>;

    /// A scan's servers (one per address) counted by `group_by` among those `filter` admits,
    /// ordered by the dimensions; no dimension gives one total row. A finished scan is counted
    /// from its stored aggregates (fast, and still there after a prune), an unfinished one live.
    async fn statistics(
        &self,
        scan: ScanId,
        group_by: &[Dimension],
        filter: &CensusFilter,
    ) -> Result<Vec<CensusGroup>, StoreError>;

    /// [`CensusStore::statistics`] for every finished scan in its default judgement, oldest
    /// first; a scan without a matching server gives one point of 0 servers and no dimension
    /// values.
    async fn trend(
        &self,
        group_by: &[Dimension],
        filter: &CensusFilter,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        self.trend_of(group_by, filter, Judgements::Newest).await
    }

    /// [`CensusStore::trend`] over the judgements `which` names.
    async fn trend_of(
        &self,
        group_by: &[Dimension],
        filter: &CensusFilter,
        which: Judgements,
    ) -> Result<Vec<TrendPoint>, StoreError>;

    /// One page of a scan's recognised Exchange servers that `filter` admits (one per
    /// observation, so an address answering on two ports is listed twice), in a stable order,
    /// starting after `after`; at most `limit` of them. Keyset-paged, so every page costs the
    /// same however deep it is, and a page holds no server twice across a whole walk.
    /// [`StoreError::UnknownScan`], or [`StoreError::ScanPruned`] once its rows are gone.
    async fn servers_page(
        &self,
        scan: ScanId,
        filter: &CensusFilter,
        after: Option<ServerCursor>,
        limit: u32,
    ) -> Result<ServersPage, StoreError>;
}

/// Which judgement of each scan a trend reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Judgements {
    /// The default: the newest judgement made for the scan's own day.
    #[default]
    Newest,
    /// The judgement made while the scan ran, whatever was judged since.
    Original,
}

impl Judgements {
    pub fn as_str(self) -> &'static str {
        match self {
            Judgements::Newest => "newest",
            Judgements::Original => "original",
        }
    }

    pub fn parse(s: &str) -> Option<Judgements> {
        [Judgements::Newest, Judgements::Original]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
}

impl std::str::FromStr for Judgements {
    type Err = String;

    fn from_str(s: &str) -> Result<Judgements, String> {
        Judgements::parse(s).ok_or_else(|| format!("{s:?} is neither newest nor original"))
    }
}

/// The latest state of one (address, port), as the hosts table keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostState {
    pub port: u16,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    pub last_scan: ScanId,
    pub status: surveyor_model::Status,
    /// The server as last seen, when it was a recognised Exchange server.
    pub exchange: Option<ExchangeServer>,
}

/// What the store knows of one address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostDetail {
    pub ip: IpAddr,
    /// One entry per port, by port.
    pub ports: Vec<HostState>,
    /// Every stored observation of the address with its scan, oldest scan first, then port.
    pub history: Vec<(ScanId, Observation)>,
}

/// The organisations registry that attribution reads.
#[async_trait::async_trait]
pub trait RegistryStore: Send + Sync {
    /// Replaces the whole registry with `organisations` in one transaction and records the
    /// import: readers see the old registry or the new one, never a mix, and a failed import
    /// leaves the old one. Ids must be unique (`InvalidQuery` otherwise, nothing written).
    async fn replace_registry(
        &self,
        organisations: &[Organisation],
        source: &str,
        imported_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Every organisation, by id.
    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError>;

    /// The latest import, `None` before the first.
    async fn last_import(&self) -> Result<Option<RegistryImport>, StoreError>;
}

/// One registry import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryImport {
    #[serde(with = "time::serde::rfc3339")]
    pub imported_at: OffsetDateTime,
    pub source: String,
    pub organisations: u64,
}

/// What a bearer token may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Aggregate statistics only.
    Viewer,
    /// Aggregates and host-level data.
    Analyst,
    /// Exports (pseudonymised unless also analyst).
    Researcher,
    /// Everything, and tokens, the registry and notifications.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Researcher, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Researcher => "researcher",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (known: viewer, analyst, researcher, admin)")
            })
    }
}

/// A bearer token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// An export about to be streamed, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExport {
    pub started_at: OffsetDateTime,
    /// The token that asked, by id, name and role (copied: the log outlives the token).
    pub token: TokenRecord,
    pub scan: ScanId,
    /// The format's name (`csv`, `jsonl`, `shadowserver`).
    pub format: String,
    pub pseudonymised: bool,
    pub filter: CensusFilter,
}

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportOutcome {
    Running,
    Complete,
    /// The client went away or the store failed mid-way.
    Aborted,
}

impl ExportOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Running => "running",
            ExportOutcome::Complete => "complete",
            ExportOutcome::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Option<ExportOutcome> {
        [
            ExportOutcome::Running,
            ExportOutcome::Complete,
            ExportOutcome::Aborted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One entry of the export audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub token_id: i64,
    pub token_name: String,
    pub role: Role,
    pub scan: ScanId,
    pub format: String,
    pub pseudonymised: bool,
    pub filter: CensusFilter,
    /// `None` while the export runs.
    pub rows: Option<u64>,
    pub outcome: ExportOutcome,
}

/// The raw columns of an `export_audit` row, checked into an [`ExportRecord`] in one place.
pub(crate) struct StoredExport {
    pub id: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub token_id: i64,
    pub token_name: String,
    pub role: String,
    pub scan_id: i64,
    pub format: String,
    pub pseudonymised: bool,
    pub filter: String,
    pub rows: Option<i64>,
    pub outcome: String,
}

impl StoredExport {
    pub(crate) fn into_model(self) -> Result<ExportRecord, StoreError> {
        let corrupt = |what: &str| StoreError::corrupt(format!("export_audit.{what}"));
        Ok(ExportRecord {
            id: self.id,
            started_at: self.started_at,
            finished_at: self.finished_at,
            token_id: self.token_id,
            token_name: self.token_name,
            role: self.role.parse().map_err(|_| corrupt("role"))?,
            scan: ScanId(self.scan_id),
            format: self.format,
            pseudonymised: self.pseudonymised,
            filter: serde_json::from_str(&self.filter).map_err(|_| corrupt("filter"))?,
            rows: self
                .rows
                .map(u64::try_from)
                .transpose()
                .map_err(|_| corrupt("rows"))?,
            outcome: ExportOutcome::parse(&self.outcome).ok_or_else(|| corrupt("outcome"))?,
        })
    }
}

/// API bearer tokens, kept as SHA-256 hashes.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token's hash (64 lower-case hex digits) with its name and role.
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        created_at: OffsetDateTime,
    ) -> Result<TokenRecord, StoreError>;

    /// The token with this hash, revoked or not; `None` when there is none.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes a token; `false` when no token has this id or it was already revoked.
    async fn revoke_token(&self, id: i64, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// Logs the start of an export (outcome `running`) and returns the entry's id.
    async fn begin_export(&self, export: &NewExport) -> Result<i64, StoreError>;

    /// Closes an export's log entry with the rows written and how it ended.
    async fn finish_export(
        &self,
        id: i64,
        rows: u64,
        outcome: ExportOutcome,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The export log, newest first, at most `limit` entries.
    async fn exports(&self, limit: u32) -> Result<Vec<ExportRecord>, StoreError>;
}

/// The scan a census "as of" `date` reads: the newest scan finished on or before that day
/// (UTC), in its default judgement. `None` when no scan had finished by then.
pub async fn scan_as_of(
    scans: &dyn ScanStore,
    date: Date,
) -> Result<Option<ScanRecord>, StoreError> {
    Ok(scans
        .scans()
        .await?
        .into_iter()
        .filter(|s| {
            s.is_default()
                && s.finished_at
                    .is_some_and(|f| f.to_offset(time::UtcOffset::UTC).date() <= date)
        })
        .max_by_key(|s| (s.finished_at, s.id)))
}

/// An open store: one handle per aggregate, sharing one connection pool.
#[derive(Clone)]
pub struct Store {
    pub scans: Arc<dyn ScanStore>,
    pub census: Arc<dyn CensusStore>,
    pub registry: Arc<dyn RegistryStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub notifications: Arc<dyn NotificationStore>,
    /// Distributed census jobs; on SQLite every call fails saying PostgreSQL is needed.
    pub jobs: Arc<dyn CensusJobStore>,
    pub backend: Backend,
}

// The API shares one Store across request handlers and tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
};

impl Store {
    /// The newest migration of this backend (version and description): after [`open`], the
    /// schema is at it.
    pub fn schema(&self) -> (i64, String) {
        let migrator = match self.backend {
            Backend::Postgres => &postgres::MIGRATOR,
            Backend::Sqlite => &sqlite::MIGRATOR,
        };
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .max_by_key(|(version, _)| *version)
            .unwrap_or((0, String::new()))
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How [`open_with`] opens a store; the default is what [`open`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// PostgreSQL only: the server cancels any statement of this store that runs longer, and
    /// the call fails with [`StoreError::Timeout`]; for readers that must answer in bounded
    /// time (the API). Rounded up to whole milliseconds. Schema migrations run without it.
    /// SQLite has no server to enforce it and ignores it; there a statement waits for another
    /// connection's write lock for at most its busy timeout (5 s).
    pub statement_timeout: Option<Duration>,
}

/// Opens the store a database URL names and applies that backend's migrations.
///
/// - `postgres://…` or `postgresql://…`: PostgreSQL.
/// - `sqlite:path`, `sqlite://path` or a bare file path: SQLite, the file created if missing,
///   in WAL mode with foreign keys on. `sqlite::memory:` is a private in-memory database.
///
/// Any other scheme is [`StoreError::InvalidUrl`]. Error messages never show the URL's password.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    open_with(url, OpenOptions::default()).await
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: OpenOptions) -> Result<Store, StoreError> {
    match url::parse(url)? {
        url::Target::Postgres(connect) => {
            let store = Arc::new(postgres::PgStore::connect(*connect, &options).await?);
            Ok(Store {
                scans: store.clone(),
                census: store.clone(),
                registry: store.clone(),
                tokens: store.clone(),
                jobs: store.clone(),
                notifications: store,
                backend: Backend::Postgres,
            })
        }
        url::Target::Sqlite(location) => {
            let store = Arc::new(sqlite::SqliteStore::open(location).await?);
            Ok(Store {
                scans: store.clone(),
                census: store.clone(),
                registry: store.clone(),
                tokens: store.clone(),
                notifications: store,
                jobs: Arc::new(jobs::PostgresOnly),
                backend: Backend::Sqlite,
            })
        }
    }
}

// `YYYY-MM-DD` for `ScanRecord::as_of`: the form JSON readers expect of a date.
time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judgements_parse_from_their_names_or_say_what_they_take() {
        assert_eq!("newest".parse(), Ok(Judgements::Newest));
        assert_eq!("original".parse(), Ok(Judgements::Original));
        assert_eq!(
            "latest".parse::<Judgements>(),
            Err("\"latest\" is neither newest nor original".to_string())
        );
    }
}
