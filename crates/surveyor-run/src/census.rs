//! The distributed census: a job in PostgreSQL whose scan specification is stored once, split
//! into shards that any number of workers lease, scan and complete. The lease protocol lives
//! in the store (`CensusJobStore`); this module creates jobs, reads their progress, and runs a
//! worker: a loop that claims one shard at a time and scans it through the same pipeline as
//! `surveyor scan`, with a heartbeat task beside each shard's scan and the census's rates
//! split across the workers that hold leases. What a worker does is told as [`WorkerEvent`]s.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use surveyor_kb::KnowledgeBase;
use surveyor_scan::targets::OptOut;
use surveyor_scan::{Frontier, Order, RateLimits};
use surveyor_store::{
    Beat, CensusJob, Claim, Completion, JobState, NewCensusJob, NewScan, ShardLease, ShardProgress,
    ShardRecord, ShardState, Store,
};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Checkpoint;
use crate::pipeline::{kb_ref, run_scan, Discovery, Durability, ScanJob};
use crate::spec::{DiscoveryMode, RunSettings, ScanSpec};
use crate::RunError;

/// A census to record.
#[derive(Debug, Clone)]
pub struct NewCensus {
    /// Unique in the database.
    pub name: String,
    pub shards: u32,
    pub spec: ScanSpec,
}

/// A recorded census.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedCensus {
    pub name: String,
    pub scan: surveyor_store::ScanId,
    pub shards: u32,
    pub targets: u128,
}

/// Records a census: its one scan, judged with `kb`, and its shards, each with its number of
/// targets. Everything a worker will do with the specification is done once here, so that a
/// mistake is an error now rather than in every worker later.
pub async fn create(
    store: &Store,
    census: NewCensus,
    kb: &KnowledgeBase,
) -> Result<CreatedCensus, RunError> {
    let NewCensus { name, shards, spec } = census;
    let exists = store
        .jobs
        .job(&name)
        .await
        .map_err(RunError::store("read the census jobs"))?;
    if exists.is_some() {
        return Err(RunError::Refused(format!(
            "a census named {name:?} exists already; choose another name"
        )));
    }
    if shards == 0 || shards > surveyor_store::MAX_SHARDS {
        return Err(RunError::Refused(format!(
            "--shards must be between 1 and {}, got {shards}",
            surveyor_store::MAX_SHARDS
        )));
    }
    let space = spec.space();
    let shard_targets: Vec<u64> = (0..shards)
        .map(|shard| {
            let order = Order {
                seed: spec.probing.seed,
                shards,
                shard,
            };
            u64::try_from(space.shard_len(order)).unwrap_or(u64::MAX)
        })
        .collect();
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: OffsetDateTime::now_utc(),
            as_of: spec.as_of,
            targets: spec.description.clone(),
            ports: spec.port_numbers(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            kb: Some(kb_ref(kb)),
        })
        .await
        .map_err(RunError::store("record the census's scan"))?;
    let params = serde_json::to_value(&spec).map_err(RunError::output)?;
    let job = store
        .jobs
        .create_job(&NewCensusJob {
            name,
            scan,
            params,
            shard_targets,
        })
        .await
        .map_err(RunError::store("record the census"))?;
    Ok(CreatedCensus {
        name: job.name,
        scan,
        shards: job.shards,
        targets: space.len(),
    })
}

/// One census's progress, as `census status` shows it.
#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub scan: i64,
    pub state: JobState,
    pub shards: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Not shown: the parameters may list every target of the census.
    #[serde(skip)]
    pub job: CensusJob,
    pub targets_total: u64,
    pub targets_done: u64,
    /// Targets per second of working time: since the first shard was first leased, less the
    /// time the census was paused.
    pub rate: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub observations: u64,
    pub shards_by_state: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_list: Option<Vec<ShardRecord>>,
}

/// The progress of `job`, with every shard's record when `with_shards`; `now` is the
/// database's clock, as leases are judged by it.
pub async fn job_status(
    store: &Store,
    job: CensusJob,
    with_shards: bool,
    now: OffsetDateTime,
) -> Result<JobStatus, RunError> {
    let shards = store
        .jobs
        .shards(job.id)
        .await
        .map_err(RunError::store("read the census's shards"))?;
    let total: u64 = shards.iter().map(|s| s.targets_total).sum();
    let done: u64 = shards
        .iter()
        .map(|s| match s.state {
            ShardState::Done => s.targets_total,
            _ => s.targets_done.min(s.targets_total),
        })
        .sum();
    let started = shards.iter().filter_map(|s| s.started_at).min();
    let rate = observed_rate(done, started, now, &job);
    let running = matches!(job.state, JobState::Running);
    let eta = rate
        .filter(|_| running)
        .map(|r| total.saturating_sub(done) as f64 / r);
    let count = |state: ShardState| shards.iter().filter(|s| s.state == state).count();
    let observations = store
        .scans
        .scan(job.scan)
        .await
        .map_err(RunError::store("read the census's scan"))?
        .map_or(0, |s| s.observations);
    Ok(JobStatus {
        name: job.name.clone(),
        scan: job.scan.0,
        state: job.state,
        shards: job.shards,
        created_at: job.created_at,
        finished_at: job.finished_at,
        targets_total: total,
        targets_done: done,
        rate,
        eta_seconds: eta,
        observations,
        shards_by_state: serde_json::json!({
            "pending": count(ShardState::Pending),
            "leased": count(ShardState::Leased),
            "done": count(ShardState::Done),
        }),
        shard_list: with_shards.then_some(shards),
        job,
    })
}

/// Targets per second of working time: since `started` (the first lease), less the pauses, so
/// that a census resumed after a long pause shows the rate it runs at.
fn observed_rate(
    done: u64,
    started: Option<OffsetDateTime>,
    now: OffsetDateTime,
    job: &CensusJob,
) -> Option<f64> {
    let started = started?;
    let elapsed = (now - started).as_seconds_f64();
    let mut paused = job.paused_seconds;
    if let Some(at) = job.paused_at {
        // A pause that began before the first lease counts from the first lease.
        paused += (now - at.max(started)).as_seconds_f64().max(0.0);
    }
    let working = elapsed - paused.min(elapsed);
    (working > 0.0 && done > 0).then(|| done as f64 / working)
}

/// What a worker did, one event at a time; the binary prints each as a JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum WorkerEvent {
    /// A shard leased: fresh, taken over, or after a pause (`resumed_from` targets done).
    Claimed {
        worker: String,
        census: String,
        shard: u32,
        lease: u32,
        resumed_from: u64,
        live_leases: u32,
        /// This worker's share of the census's rate.
        rate: Option<NonZeroU32>,
    },
    /// The number of live leases changed; the rates are split again.
    Rate {
        worker: String,
        census: String,
        shard: u32,
        live_leases: u32,
        rate: Option<NonZeroU32>,
    },
    /// The lease was taken over (or ran out): nothing more is written for the shard.
    Lost {
        worker: String,
        census: String,
        shard: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        targets_done: Option<u64>,
    },
    /// The shard was handed back with its checkpoint (pause, cancel, this worker stopping).
    Released {
        worker: String,
        census: String,
        shard: u32,
        targets_done: u64,
        why: StopReason,
    },
    /// The shard is scanned to its end.
    Done {
        worker: String,
        census: String,
        shard: u32,
        targets_done: u64,
        /// The census's last shard: this worker finishes the census's scan.
        last: bool,
        /// What this lease probed and skipped: with a resumed checkpoint, only the positions
        /// it left pending and those past its frontier.
        probed: u64,
        excluded: u64,
    },
    /// The census's scan is marked finished.
    Finished {
        worker: String,
        census: String,
        scan: i64,
        /// false: this worker's finish lease had run out and another finished it as well
        /// (finishing twice recomputes the same aggregates).
        recorded: bool,
    },
    /// The worker stops.
    Exit { worker: String, reason: String },
}

/// Why a shard's scan stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopReason {
    /// Another worker holds the lease now.
    Lost,
    Paused,
    Cancelled,
    /// This worker was asked to stop (SIGTERM, Ctrl-C).
    Shutdown,
}

/// Where a worker's events go.
pub type Events = Arc<dyn Fn(WorkerEvent) + Send + Sync>;

/// A worker's settings, checked by the binary.
pub struct WorkerConfig {
    /// This worker's name in leases; unique among live workers.
    pub owner: String,
    /// Only this census, if given.
    pub census: Option<String>,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Between polls while there is nothing to take.
    pub poll: Duration,
    /// Keep polling when no work is left instead of returning.
    pub wait: bool,
    /// Probes in flight at once; 0: enough for the census's rate (`auto_concurrency`).
    pub concurrency: usize,
    /// Fits a window to what this machine allows (the binary's open-file limit).
    pub fit_window: fn(usize) -> usize,
    pub opt_out: Option<OptOut>,
    /// How long a batch the store refuses is retried before it is spilled.
    pub retry_for: Duration,
    pub asns: Option<Arc<surveyor_attrib::AsnTable>>,
    pub countries: Option<Arc<surveyor_attrib::CountryTable>>,
    /// Must be the knowledge base the census was created with.
    pub kb: Arc<KnowledgeBase>,
}

/// Claims, scans and completes shards until no work is left (or, with `wait`, until
/// `shutdown`), writing observations to `out` and telling what it does to `events`.
pub async fn run_worker(
    store: Store,
    config: WorkerConfig,
    out: &mut (dyn Write + Send),
    shutdown: CancellationToken,
    events: Events,
) -> Result<(), RunError> {
    if let Some(name) = &config.census {
        check_census(&store, name).await?;
    }
    let ctx = Worker {
        store,
        config,
        events,
    };
    let owner = &ctx.config.owner;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let claim = ctx
            .store
            .jobs
            .claim(owner, ctx.config.lease, ctx.config.census.as_deref())
            .await
            .map_err(RunError::store("claim census work"))?;
        match claim {
            Claim::Shard(claimed) => {
                if run_shard(&ctx, claimed, out, &shutdown).await? == Some(StopReason::Shutdown) {
                    break;
                }
            }
            Claim::Finish(job) => finish(&ctx, &job).await?,
            Claim::Idle { outstanding } => {
                if outstanding == 0 && !ctx.config.wait {
                    (ctx.events)(WorkerEvent::Exit {
                        worker: owner.clone(),
                        reason: "no work left".to_string(),
                    });
                    break;
                }
                // Shards held by live leases may still come free if their worker dies.
                tokio::select! {
                    () = tokio::time::sleep(ctx.config.poll) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    out.flush().map_err(RunError::output)
}

/// What a worker started for one census can check before it claims: that it may send SYNs,
/// if the census sweeps with them (the same one-line error as `surveyor scan`).
async fn check_census(store: &Store, name: &str) -> Result<(), RunError> {
    let job = store
        .jobs
        .job(name)
        .await
        .map_err(RunError::store("read the census jobs"))?;
    let Some(job) = job else { return Ok(()) };
    let syn = job
        .params
        .get("discovery")
        .is_some_and(|d| d.as_str() == Some("syn"));
    if syn {
        surveyor_scan::syn::check_privileges()?;
    }
    Ok(())
}

struct Worker {
    store: Store,
    config: WorkerConfig,
    events: Events,
}

/// This worker's share of a census-wide rate: an even split over the live leases, at least
/// 1 per second. With more workers than the rate, the sum exceeds it (`docs/scaling.md`).
pub fn share(total: u32, live_leases: u32) -> Option<NonZeroU32> {
    if total == 0 {
        return None;
    }
    NonZeroU32::new((total / live_leases.max(1)).max(1))
}

/// The census's rates split over the live leases, sent to the running scan.
struct RateSplit {
    spec: ScanSpec,
    limits: watch::Sender<RateLimits>,
    /// In SYN mode, the sender's rate; the probe window then has no global rate.
    syn_rate: Option<watch::Sender<Option<NonZeroU32>>>,
}

impl RateSplit {
    fn limits(spec: &ScanSpec, live_leases: u32) -> RateLimits {
        let p = &spec.probing;
        let syn = matches!(p.discovery, DiscoveryMode::Syn { .. });
        RateLimits {
            rate: share(p.rate, live_leases).filter(|_| !syn),
            network_rate: share(p.network_rate, live_leases),
            host_rate: share(p.host_rate, live_leases),
        }
    }

    fn send(&self, live_leases: u32) {
        let _ = self.limits.send(RateSplit::limits(&self.spec, live_leases));
        if let Some(syn_rate) = &self.syn_rate {
            let _ = syn_rate.send(share(self.spec.probing.rate, live_leases));
        }
    }
}

/// Reads a claimed shard's census: its specification, checked against this worker's
/// knowledge base.
async fn census_spec(ctx: &Worker, claimed: &ShardLease) -> Result<ScanSpec, RunError> {
    let name = &claimed.job.name;
    let spec: ScanSpec =
        serde_json::from_value(claimed.job.params.clone()).map_err(|e| RunError::Malformed {
            what: format!(
                "census {name:?} has parameters this Surveyor cannot read: run the same \
                 version on every machine"
            ),
            source: Some(Box::new(e)),
        })?;
    let census_kb = ctx
        .store
        .scans
        .scan(claimed.job.scan)
        .await
        .map_err(RunError::store("read the census's scan"))?
        .and_then(|s| s.kb);
    let kb = &ctx.config.kb;
    if let Some(census_kb) = census_kb.filter(|k| k.digest != kb.stamp.digest) {
        // The lease lapses and a worker with the right knowledge base takes the shard over.
        return Err(RunError::Refused(format!(
            "census {name:?} is judged with knowledge base {} (newest release {}), this worker \
             has {}: start it with the census's --kb",
            &census_kb.digest[..12],
            census_kb.newest_release,
            kb.stamp
        )));
    }
    Ok(spec)
}

/// Scans one leased shard to its end, or until the lease is lost, the census is paused or
/// cancelled, or the worker is stopped; returns why it stopped early, if it did.
async fn run_shard(
    ctx: &Worker,
    claimed: ShardLease,
    out: &mut (dyn Write + Send),
    shutdown: &CancellationToken,
) -> Result<Option<StopReason>, RunError> {
    let key = claimed.key();
    let name = claimed.job.name.clone();
    let owner = ctx.config.owner.clone();
    let spec = census_spec(ctx, &claimed).await?;
    let window = (ctx.config.fit_window)(spec.probing.window(ctx.config.concurrency));
    let (mut config, mut discovery) = spec.probing.engine(window, &RunSettings::default());
    let (limits_tx, limits_rx) = watch::channel(RateSplit::limits(&spec, claimed.live_leases));
    config.live_limits = Some(limits_rx);
    // In SYN mode the worker's share of the census's rate paces its SYNs, and changes with
    // the live leases as the L7 limits do.
    let syn_rate = match &mut discovery {
        Discovery::Connect => None,
        Discovery::Syn(syn) => {
            surveyor_scan::syn::check_privileges()?;
            let (tx, rx) = watch::channel(share(spec.probing.rate, claimed.live_leases));
            syn.rate = *rx.borrow();
            syn.live_rate = Some(rx);
            Some(tx)
        }
    };
    let progress = config.progress.clone();
    let mut exclusions = spec.exclusions();
    if let Some(opt_out) = &ctx.config.opt_out {
        exclusions = exclusions.with_opt_out(opt_out.clone());
    }
    let order = Order {
        seed: spec.probing.seed,
        shards: claimed.job.shards,
        shard: claimed.shard,
    };
    let mut job = ScanJob {
        exclusions,
        durability: Durability {
            retry_for: ctx.config.retry_for,
            spill: Some(PathBuf::from(format!(
                "surveyor-spill-scan{}-shard{}-{owner}.jsonl",
                claimed.job.scan, claimed.shard
            ))),
        },
        asns: ctx.config.asns.clone(),
        countries: ctx.config.countries.clone(),
        finish_scan: false,
        ..ScanJob::new(&spec, order, (config, discovery), ctx.config.kb.clone())
    };
    let template = match &claimed.checkpoint {
        Some(value) => serde_json::from_value::<Checkpoint>(value.clone()).map_err(|e| {
            RunError::Malformed {
                what: format!(
                    "census {name:?} shard {} has a checkpoint this Surveyor cannot read",
                    key.shard
                ),
                source: Some(Box::new(e)),
            }
        })?,
        None => Checkpoint::of(&job, claimed.job.scan, &Frontier::default()),
    };
    // The frontier is in place before the first heartbeat, which saves it.
    progress.resume_from(template.frontier_for(&job)?);
    job.resume = Some(template.clone());
    (ctx.events)(WorkerEvent::Claimed {
        worker: owner.clone(),
        census: name.clone(),
        shard: key.shard,
        lease: claimed.leases,
        resumed_from: claimed.targets_done,
        live_leases: claimed.live_leases,
        rate: share(spec.probing.rate, claimed.live_leases),
    });

    let cancel = shutdown.child_token();
    let stop = Arc::new(Mutex::new(None::<StopReason>));
    let beating = CancellationToken::new();
    let beats = tokio::spawn(heartbeats(
        Heartbeats {
            store: ctx.store.clone(),
            key,
            owner: owner.clone(),
            lease: ctx.config.lease,
            every: ctx.config.heartbeat,
            template: template.clone(),
            progress: progress.clone(),
            split: RateSplit {
                spec: spec.clone(),
                limits: limits_tx,
                syn_rate,
            },
            live_leases: claimed.live_leases,
            name: name.clone(),
            events: ctx.events.clone(),
        },
        cancel.clone(),
        stop.clone(),
        beating.clone(),
    ));
    let outcome = run_scan(job, &ctx.store, out, cancel.clone()).await;
    beating.cancel();
    let _ = beats.await;
    let outcome = outcome?;
    let saved = shard_progress(&template, &progress.frontier());
    let stopped = *stop.lock().unwrap_or_else(|e| e.into_inner());
    let stopped = stopped.or_else(|| {
        (outcome.stats.stopped.is_some() && shutdown.is_cancelled()).then_some(StopReason::Shutdown)
    });
    if outcome.spilled > 0 {
        // The checkpoint counts spilled targets as done; they reach the store only when the
        // spill file is ingested, so the shard is left to expire rather than marked done.
        return Err(RunError::Refused(format!(
            "census {name:?} shard {}: {} lines could not be stored and wait in the spill file; \
             load it with `surveyor ingest`",
            key.shard, outcome.spilled
        )));
    }
    let store = &ctx.store;
    let lost = |targets_done| WorkerEvent::Lost {
        worker: owner.clone(),
        census: name.clone(),
        shard: key.shard,
        targets_done,
    };
    match stopped {
        Some(StopReason::Lost) => (ctx.events)(lost(None)),
        Some(why) => {
            let released = store
                .jobs
                .release(key, &owner, &saved)
                .await
                .map_err(RunError::store("release the shard"))?;
            (ctx.events)(if released {
                WorkerEvent::Released {
                    worker: owner.clone(),
                    census: name.clone(),
                    shard: key.shard,
                    targets_done: saved.targets_done,
                    why,
                }
            } else {
                lost(Some(saved.targets_done))
            });
        }
        None if outcome.stats.stopped.is_some() => {
            return Err(RunError::Refused(format!(
                "the scan of census {name:?} shard {} stopped early",
                key.shard
            )));
        }
        None => {
            let completion = store
                .jobs
                .complete(key, &owner, ctx.config.lease, &saved)
                .await
                .map_err(RunError::store("complete the shard"))?;
            (ctx.events)(match completion {
                Completion::Lost => lost(Some(saved.targets_done)),
                _ => WorkerEvent::Done {
                    worker: owner.clone(),
                    census: name.clone(),
                    shard: key.shard,
                    targets_done: saved.targets_done,
                    last: completion == Completion::Last,
                    probed: outcome.stats.targets,
                    excluded: outcome.stats.excluded,
                },
            });
            if completion == Completion::Last {
                finish(ctx, &claimed.job).await?;
            }
        }
    }
    Ok(stopped)
}

/// What a shard's heartbeat task needs.
struct Heartbeats {
    store: Store,
    key: surveyor_store::ShardKey,
    owner: String,
    lease: Duration,
    every: Duration,
    template: Checkpoint,
    progress: Arc<surveyor_scan::ScanProgress>,
    split: RateSplit,
    live_leases: u32,
    name: String,
    events: Events,
}

/// Every `every`: extends the lease and saves the checkpoint of what is stored. Stops the
/// scan (through `cancel`) when the lease is lost or the census paused or cancelled, and
/// re-splits the rate budget when the number of live leases changes.
async fn heartbeats(
    mut h: Heartbeats,
    cancel: CancellationToken,
    stop: Arc<Mutex<Option<StopReason>>>,
    done: CancellationToken,
) {
    let set = |why: StopReason| {
        *stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        cancel.cancel();
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(h.every) => {}
            () = done.cancelled() => return,
        }
        let saved = shard_progress(&h.template, &h.progress.frontier());
        match h
            .store
            .jobs
            .heartbeat(h.key, &h.owner, h.lease, &saved)
            .await
        {
            Ok(Beat::Lost) => return set(StopReason::Lost),
            Ok(Beat::Held {
                job_state,
                live_leases,
            }) => match job_state {
                JobState::Paused => return set(StopReason::Paused),
                JobState::Cancelled => return set(StopReason::Cancelled),
                JobState::Running | JobState::Finishing | JobState::Finished => {
                    if live_leases != h.live_leases {
                        h.live_leases = live_leases;
                        h.split.send(live_leases);
                        (h.events)(WorkerEvent::Rate {
                            worker: h.owner.clone(),
                            census: h.name.clone(),
                            shard: h.key.shard,
                            live_leases,
                            rate: share(h.split.spec.probing.rate, live_leases),
                        });
                    }
                }
            },
            // The scan goes on (its batches retry on their own); if the database stays away
            // past the lease, another worker takes over and the next beat says so.
            Err(error) => tracing::warn!(%error, shard = h.key.shard, "heartbeat failed"),
        }
    }
}

fn shard_progress(template: &Checkpoint, frontier: &Frontier) -> ShardProgress {
    let checkpoint = template.with_frontier(frontier);
    let walked = u64::try_from(frontier.next).unwrap_or(u64::MAX);
    ShardProgress {
        targets_done: walked.saturating_sub(frontier.pending.len() as u64),
        checkpoint: serde_json::to_value(&checkpoint).unwrap_or(serde_json::Value::Null),
    }
}

/// Marks the census's scan finished (its census aggregates computed once, for all shards)
/// and records that in the job.
async fn finish(ctx: &Worker, job: &CensusJob) -> Result<(), RunError> {
    ctx.store
        .scans
        .finish_scan(job.scan, OffsetDateTime::now_utc())
        .await
        .map_err(RunError::store(format!(
            "finish the scan of census {:?}",
            job.name
        )))?;
    let recorded = ctx
        .store
        .jobs
        .finished(job.id, &ctx.config.owner)
        .await
        .map_err(RunError::store("record the census finished"))?;
    (ctx.events)(WorkerEvent::Finished {
        worker: ctx.config.owner.clone(),
        census: job.name.clone(),
        scan: job.scan.0,
        recorded,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observed_rate_leaves_out_the_pauses() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let minutes = |m: i64| now - time::Duration::minutes(m);
        let job = |paused_seconds: f64, paused_at: Option<OffsetDateTime>| CensusJob {
            id: 1,
            name: "x".into(),
            scan: surveyor_store::ScanId(1),
            state: JobState::Running,
            params: serde_json::Value::Null,
            shards: 1,
            created_at: minutes(60),
            finished_at: None,
            paused_at,
            paused_seconds,
        };
        // Started 10 minutes ago, 6,000 targets done: 10/s.
        let rate = |j: &CensusJob| observed_rate(6_000, Some(minutes(10)), now, j);
        assert_eq!(rate(&job(0.0, None)), Some(10.0));
        // Paused for 5 of them, then resumed: 20/s.
        assert_eq!(rate(&job(300.0, None)), Some(20.0));
        // Paused now, since 5 minutes: the same.
        assert_eq!(rate(&job(0.0, Some(minutes(5)))), Some(20.0));
        // Paused before the first lease: only the time since the lease counts.
        assert_eq!(rate(&job(0.0, Some(minutes(30)))), None);
        assert_eq!(
            observed_rate(0, Some(minutes(10)), now, &job(0.0, None)),
            None
        );
        assert_eq!(observed_rate(5, None, now, &job(0.0, None)), None);
    }

    #[test]
    fn the_rate_budget_is_split_evenly_and_never_to_zero() {
        assert_eq!(share(0, 3), None, "0 stays unlimited");
        assert_eq!(share(3000, 3).map(NonZeroU32::get), Some(1000));
        assert_eq!(share(3000, 0).map(NonZeroU32::get), Some(3000));
        assert_eq!(share(10, 4).map(NonZeroU32::get), Some(2));
        assert_eq!(share(2, 5).map(NonZeroU32::get), Some(1));
    }

    #[test]
    fn a_syn_census_splits_its_rate_into_the_syns_and_leaves_the_window_unpaced() {
        let spec = |discovery| {
            let mut probing = crate::spec::Probing::new(&crate::spec::ProbingArgs {
                rate: 3000,
                network_rate: 300,
                ..Default::default()
            })
            .unwrap();
            probing.discovery = discovery;
            ScanSpec {
                description: "test".into(),
                nets: vec!["192.0.2.0/24".parse().unwrap()],
                explicit: Vec::new(),
                ports: vec![surveyor_scan::PortSpec::from(443)],
                allow_loopback: false,
                blocklist: Vec::new(),
                allowlist: None,
                as_of: time::macros::date!(2026 - 11 - 23),
                probing,
            }
        };
        let syn = DiscoveryMode::Syn {
            cooldown: Duration::from_secs(1),
        };
        let (limits, mut limits_rx) = watch::channel(RateSplit::limits(&spec(syn), 1));
        let (syn_rate, mut syn_rx) = watch::channel(share(3000, 1));
        let split = RateSplit {
            spec: spec(syn),
            limits,
            syn_rate: Some(syn_rate),
        };
        split.send(3);
        let l7 = *limits_rx.borrow_and_update();
        assert_eq!(
            l7.rate, None,
            "the window takes open ports without a global rate"
        );
        assert_eq!(l7.network_rate.map(NonZeroU32::get), Some(100));
        assert_eq!(syn_rx.borrow_and_update().map(NonZeroU32::get), Some(1000));
        // Connect mode: the rate is the window's, and there is no sender to pace.
        let connect = RateSplit::limits(&spec(DiscoveryMode::Connect), 3);
        assert_eq!(connect.rate.map(NonZeroU32::get), Some(1000));
    }

    #[test]
    fn events_are_the_json_lines_operators_read() {
        let event = WorkerEvent::Released {
            worker: "w1".into(),
            census: "de".into(),
            shard: 2,
            targets_done: 40,
            why: StopReason::Paused,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"event": "released", "worker": "w1", "census": "de",
                "shard": 2, "targets_done": 40, "why": "paused"})
        );
        let exit = WorkerEvent::Exit {
            worker: "w1".into(),
            reason: "no work left".into(),
        };
        assert_eq!(
            serde_json::to_value(&exit).unwrap(),
            serde_json::json!({"event": "exit", "worker": "w1", "reason": "no work left"})
        );
    }
}
