//! The scan pipeline: engine → enrichment (judgement, attribution, PTR names) → output (JSON
//! lines or CSV) and the store, with checkpoints for `--resume` and a spill file for a store
//! that keeps failing. It prints nothing: what the binary shows is in [`ScanOutcome`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use surveyor_kb::KnowledgeBase;
use surveyor_model::Observation;
use surveyor_scan::{Exclusions, Frontier, Order, ScanConfig, ScanStats, TargetSpace};
use surveyor_store::{NewScan, ScanId, Store};
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::checkpoint::Checkpoint;
use crate::enrich::{Enricher, ENRICH_WINDOW};
use crate::input::TargetStream;
use crate::output::{OutputFormat, Writer};
use crate::spec::ScanSpec;
use crate::spill::{Spill, SpillLine};
use crate::RunError;

/// Observations written to the store per transaction during a scan: small enough that a
/// scan's results reach the store soon and little sits in memory.
const BATCH: usize = 500;
/// Batches that may wait for the storer. When the store falls behind, the storer takes what
/// waits into one transaction with the batch in hand, up to (QUEUED + 1) * BATCH = 2,500
/// observations: a store that lags catches up in larger transactions (docs/benchmarks.md:
/// PostgreSQL about 1.2 times as fast at 2,000 a batch as at 500). The cost is memory, and
/// only while the store lags: at most 5,000 observations held (2,500 being stored, 2,000
/// waiting, 500 being gathered) instead of 2,000.
const QUEUED: usize = 4;
/// A checkpoint is rewritten after a stored batch at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// A partial batch is stored after this long, so that a slow scan's results reach the store
/// (and the checkpoint) without waiting for a full batch.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to store a batch.
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(5);

/// A validated scan request.
pub struct ScanJob {
    pub space: TargetSpace,
    pub ports: Vec<u16>,
    pub order: Order,
    pub exclusions: Exclusions,
    pub as_of: Date,
    pub config: ScanConfig,
    /// How the targets were given, stored with the scan.
    pub description: String,
    pub format: OutputFormat,
    /// Where to keep the checkpoint, if anywhere.
    pub checkpoint: Option<PathBuf>,
    /// Continue this scan instead of starting one.
    pub resume: Option<Checkpoint>,
    /// What happens when the store fails mid-scan.
    pub durability: Durability,
    /// Looks up PTR names for servers neither their certificate nor a registry prefix
    /// attributes; `None`: no DNS at all.
    pub ptr: Option<surveyor_scan::discover::Discoverer>,
    /// Which AS announces each address: stored with each observation and used by the
    /// registry's AS rule.
    pub asns: Option<Arc<surveyor_attrib::AsnTable>>,
    /// Which country each address is registered in; without it (or outside its ranges) the
    /// attributed organisation's registry country.
    pub countries: Option<Arc<surveyor_attrib::CountryTable>>,
    /// Judges every observation; its stamp is stored with the scan.
    pub kb: Arc<KnowledgeBase>,
    /// How open ports are found: a connect() per target, or a SYN sweep whose answers are
    /// probed (`surveyor_scan::syn`).
    pub discovery: Discovery,
    /// Mark the scan finished once every target was walked. A census shard leaves that to
    /// the worker that completes the census's last shard.
    pub finish_scan: bool,
    /// Counts the Exchange servers judged so far, for a progress display beside
    /// `config.progress`.
    pub exchange: Arc<AtomicU64>,
}

impl ScanJob {
    /// The job of shard `order` of `spec`, run with `config` and `discovery` (from
    /// `Probing::engine`) and judged by `kb`; the rest as a plain scan has it: JSON lines, no
    /// checkpoint, the default store retry and spill file, no DNS, no AS or country table,
    /// finished once walked.
    pub fn new(
        spec: &ScanSpec,
        order: Order,
        (config, discovery): (ScanConfig, Discovery),
        kb: Arc<KnowledgeBase>,
    ) -> ScanJob {
        ScanJob {
            space: spec.space(),
            ports: spec.port_numbers(),
            order,
            exclusions: spec.exclusions(),
            as_of: spec.as_of,
            config,
            description: spec.description.clone(),
            format: OutputFormat::Jsonl,
            checkpoint: None,
            resume: None,
            durability: Durability {
                retry_for: Duration::from_secs_f64(crate::spec::defaults::STORE_RETRY),
                spill: None,
            },
            ptr: None,
            asns: None,
            countries: None,
            kb,
            discovery,
            finish_scan: true,
            exchange: Arc::default(),
        }
    }
}

/// How a scan finds open ports.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// A TCP connect() per target inside the probe window (no privileges needed).
    Connect,
    /// A stateless SYN sweep from raw sockets; open ports stream into the probe window.
    Syn(surveyor_scan::syn::SynConfig),
}

/// When the store fails, a batch is retried for `retry_for`, then appended to the spill
/// file, which `surveyor ingest` loads later: a scan never drops what it observed.
#[derive(Debug, Clone)]
pub struct Durability {
    pub retry_for: Duration,
    /// The spill file; `None`: `surveyor-spill-scan<ID>.jsonl` in the working directory.
    pub spill: Option<PathBuf>,
}

/// What a finished (or interrupted) scan produced.
#[derive(Debug)]
pub struct ScanOutcome {
    pub scan: ScanId,
    pub stats: ScanStats,
    pub exchange: u64,
    /// Lines written to the spill file because the store failed.
    pub spilled: u64,
    /// The spill file, when anything was written to it.
    pub spill_path: Option<PathBuf>,
    /// Why a stream of targets stopped early (a bad line, named); the scan is then not
    /// finished, and its checkpoint says where to continue.
    pub input_error: Option<String>,
    /// What a SYN sweep did, in SYN mode.
    pub syn: Option<SynSummary>,
}

/// What a SYN sweep sent and heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynSummary {
    /// How SYNs left (`surveyor_scan::syn::Path`, as text).
    pub path: String,
    pub sent: u64,
    pub excluded: u64,
    pub open: u64,
    pub closed: u64,
    pub duplicates: u64,
    /// Open ports dropped because the probe queue was full.
    pub dropped: u64,
    pub send_errors: u64,
}

/// Runs a scan, judging each observation as of `job.as_of`, writing it to `out` and
/// storing it. The scan is marked finished only when it walked every target, so an
/// interrupted or truncated scan never becomes "the latest census".
pub async fn run_scan(
    job: ScanJob,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome, RunError> {
    run(job, None, store, out, cancel).await
}

/// [`run_scan`] over targets read as a stream (`--targets-file`) instead of the job's target
/// space (which is not walked). Positions are the stream's numbering: a checkpoint resumes a
/// regular file exactly, and a stream only when the same lines come again (see
/// docs/output.md). A bad line stops admission; in-flight probes drain, the checkpoint is
/// written, and the outcome's `input_error` names the line.
pub async fn run_stream_scan(
    job: ScanJob,
    stream: TargetStream,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome, RunError> {
    run(job, Some(stream), store, out, cancel).await
}

/// Targets this shard of the job will walk, when known: for a stream, what a check of the
/// whole input counted (unknown for a pipe).
pub fn shard_total(job: &ScanJob, stream: Option<&TargetStream>) -> Option<u128> {
    match stream {
        None => Some(job.space.shard_len(job.order)),
        Some(stream) => stream
            .checked
            .map(|c| c.targets.div_ceil(u128::from(job.order.shards.max(1)))),
    }
}

/// How the store names a knowledge base.
pub fn kb_ref(kb: &KnowledgeBase) -> surveyor_store::KbRef {
    surveyor_store::KbRef {
        digest: kb.stamp.digest.clone(),
        newest_release: kb.stamp.newest_release,
    }
}

/// The organisations registry in the store; empty before the first import.
pub async fn load_registry(store: &Store) -> Result<surveyor_attrib::Registry, RunError> {
    let organisations = store
        .registry
        .organisations()
        .await
        .map_err(RunError::store("read the registry"))?;
    surveyor_attrib::Registry::new(organisations).map_err(RunError::Registry)
}

/// The attributor for the registry in the store; `None` before the first import, so that a
/// scan without a registry attributes nothing rather than everything to nobody.
async fn attributor(store: &Store) -> Result<Option<surveyor_attrib::Attributor>, RunError> {
    let registry = load_registry(store).await?;
    if registry.is_empty() {
        return Ok(None);
    }
    tracing::info!(
        organisations = registry.len(),
        "attributing servers by the registry"
    );
    Ok(Some(surveyor_attrib::Attributor::new(&registry)))
}

/// Runs `attempt` until it succeeds, fails with an error that is not retryable, or
/// `retry_for` has passed, pausing 100 ms, then twice as long each time (at most 5 s).
/// Returns the last error.
async fn with_retry<T, F, Fut>(
    retry_for: Duration,
    what: &str,
    mut attempt: F,
) -> Result<T, RunError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, surveyor_store::StoreError>>,
{
    let give_up = Instant::now() + retry_for;
    let mut pause = Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            // An error about the data would fail the same way again: spill it at once.
            Err(error) if error.is_retryable() && Instant::now() + pause <= give_up => {
                tracing::warn!(%error, ?pause, operation = what, "store operation failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX_PAUSE);
            }
            Err(error) => return Err(RunError::store(what)(error)),
        }
    }
}

/// A checkpoint of `job` with nothing done; for a stream, its length is what a check of the
/// whole input counted (empty for a pipe).
fn template_of(job: &ScanJob, stream: Option<&TargetStream>, scan: ScanId) -> Checkpoint {
    let template = Checkpoint::of(job, scan, &Frontier::default());
    match stream {
        None => template,
        Some(stream) => Checkpoint {
            space_len: stream
                .checked
                .map(|c| c.targets.to_string())
                .unwrap_or_default(),
            ..template
        },
    }
}

/// The scan a job continues (checked against the store) or begins, and where it stands.
async fn begin(
    job: &ScanJob,
    stream: Option<&TargetStream>,
    store: &Store,
) -> Result<(ScanId, Frontier), RunError> {
    let Some(checkpoint) = &job.resume else {
        let scan = store
            .scans
            .begin_scan(&NewScan {
                started_at: OffsetDateTime::now_utc(),
                as_of: job.as_of,
                targets: job.description.clone(),
                ports: job.ports.clone(),
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                kb: Some(kb_ref(&job.kb)),
            })
            .await
            .map_err(RunError::store("record the scan in the store"))?;
        return Ok((scan, Frontier::default()));
    };
    let scan = ScanId(checkpoint.scan);
    let frontier = checkpoint.frontier_against(&template_of(job, stream, scan))?;
    let record = store
        .scans
        .scan(scan)
        .await
        .map_err(RunError::store("read the store"))?;
    let refused = |message: String| Err(RunError::Refused(message));
    match record {
        None => refused(format!(
            "the checkpoint names scan {}, which the store does not have",
            scan.0
        )),
        Some(record) if record.finished_at.is_some() => {
            refused(format!("scan {} is already finished", scan.0))
        }
        // One scan, one knowledge base: a census judged half by one and half by another
        // would count neither.
        Some(record)
            if record
                .kb
                .as_ref()
                .is_some_and(|k| k.digest != job.kb.stamp.digest) =>
        {
            refused(format!(
                "scan {} is being judged with knowledge base {}, not {}: resume it with the \
                 same --kb, or re-judge it once finished",
                scan.0,
                record.kb.as_ref().map_or("?", |k| &k.digest[..12]),
                job.kb.stamp
            ))
        }
        Some(_) => Ok((scan, frontier)),
    }
}

/// The engine task: walks the space (or the stream, or a SYN sweep's answers) and sends
/// (position, observation) pairs into `tx`.
fn spawn_engine(
    job: &ScanJob,
    stream: Option<TargetStream>,
    frontier: Frontier,
    tx: mpsc::Sender<(u128, Observation)>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Result<EngineEnd, RunError>> {
    let (config, space, order) = (job.config.clone(), job.space.clone(), job.order);
    let exclusions = job.exclusions.clone();
    let discovery = job.discovery.clone();
    let task = async move {
        match (discovery, stream) {
            (Discovery::Connect, Some(stream)) => {
                let mut source = stream.start(order, &frontier, exclusions.clone())?;
                let stats =
                    surveyor_scan::run_source(&config, &mut source, &exclusions, tx, cancel).await;
                Ok((stats, source.error(), None))
            }
            (Discovery::Connect, None) => {
                let targets = space.resume(order, &frontier.pending, frontier.next);
                let stats = surveyor_scan::run(&config, targets, &exclusions, tx, cancel).await;
                Ok((stats, None, None))
            }
            (Discovery::Syn(_), Some(_)) => Err(RunError::Refused(
                "SYN discovery sweeps a target space, not a stream of targets".to_string(),
            )),
            (Discovery::Syn(syn), None) => {
                let space = Arc::new(space);
                let mut source = surveyor_scan::syn::start(
                    space.clone(),
                    order,
                    frontier.next,
                    exclusions.clone(),
                    syn,
                    config.progress.clone(),
                    cancel.clone(),
                )?;
                // Open ports a checkpoint left pending answered before: probe them first.
                source.first(frontier.pending.iter().map(|&p| (p, space.at(order, p))));
                let stats =
                    surveyor_scan::run_source(&config, &mut source, &exclusions, tx, cancel).await;
                let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let s = &source.stats;
                let summary = SynSummary {
                    path: source.path.to_string(),
                    sent: n(&s.sent),
                    excluded: n(&s.excluded),
                    open: n(&s.open),
                    closed: n(&s.closed),
                    duplicates: n(&s.duplicates),
                    dropped: n(&s.dropped),
                    send_errors: n(&s.send_errors),
                };
                Ok((stats, None, Some(summary)))
            }
        }
    };
    tokio::spawn(task.in_current_span())
}

/// What the engine task ends with: its statistics, why a stream stopped, a sweep's summary.
type EngineEnd = (ScanStats, Option<String>, Option<SynSummary>);

// One `scan` span over the whole run and the tasks it spawns (`docs/instrumentation.md`).
#[tracing::instrument(
    name = "scan",
    skip_all,
    fields(
        scan.id = tracing::field::Empty,
        scan.discovery = match job.discovery {
            Discovery::Connect => "connect",
            Discovery::Syn(_) => "syn",
        },
        scan.shard = job.order.shard,
        scan.shards = job.order.shards,
    )
)]
async fn run(
    job: ScanJob,
    stream: Option<TargetStream>,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome, RunError> {
    // Read before the scan is recorded: from then on the scan must survive the store going
    // away, and needs nothing more from it.
    let attributor = attributor(store).await?;
    let (scan, frontier) = begin(&job, stream.as_ref(), store).await?;
    tracing::Span::current().record("scan.id", scan.0);
    let progress = job.config.progress.clone();
    progress.resume_from(frontier.clone());
    let template = template_of(&job, stream.as_ref(), scan);

    let (tx, rx) = mpsc::channel::<(u128, Observation)>(1024);
    let engine = spawn_engine(&job, stream, frontier, tx, cancel.clone());
    let spill_path = job
        .durability
        .spill
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("surveyor-spill-scan{}.jsonl", scan.0)));

    // Storing runs in its own task so that enrichment and output go on while a batch is
    // written; QUEUED batches wait at most, then backpressure reaches the engine.
    let (batches, batch_rx) = mpsc::channel::<(Vec<Observation>, Vec<u128>)>(QUEUED);
    let storer = tokio::spawn(
        store_batches(
            store.clone(),
            scan,
            batch_rx,
            progress.clone(),
            job.checkpoint.clone().map(|path| (path, template.clone())),
            (
                job.durability.retry_for,
                Spill {
                    path: spill_path,
                    lines: 0,
                },
            ),
        )
        .in_current_span(),
    );

    let enricher = Enricher {
        kb: job.kb.clone(),
        as_of: job.as_of,
        attributor,
        ptr: job.ptr.clone(),
        asns: job.asns.clone(),
        countries: job.countries.clone(),
    };
    // Boxed, so that dropping it below closes the engine's channel.
    let mut enriched = Box::pin(crate::enrich::stage(&enricher, rx, ENRICH_WINDOW));
    let mut writer = Writer::new(out, job.format);
    let mut batch = Vec::with_capacity(BATCH);
    let mut positions = Vec::with_capacity(BATCH);
    let mut store_failed = false;
    let mut flush_at = Instant::now() + FLUSH_EVERY;
    loop {
        let received = tokio::time::timeout_at(flush_at, enriched.next()).await;
        let (position, obs) = match received {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(_elapsed) => {
                flush_at = Instant::now() + FLUSH_EVERY;
                if !batch.is_empty() {
                    let partial = (std::mem::take(&mut batch), std::mem::take(&mut positions));
                    if batches.send(partial).await.is_err() {
                        store_failed = true;
                        cancel.cancel();
                        break;
                    }
                }
                continue;
            }
        };
        if obs.exchange.is_some() {
            job.exchange.fetch_add(1, Ordering::Relaxed);
        }
        writer.write(&obs)?;
        batch.push(obs);
        positions.push(position);
        if batch.len() == BATCH {
            flush_at = Instant::now() + FLUSH_EVERY;
            let full = (std::mem::take(&mut batch), std::mem::take(&mut positions));
            if batches.send(full).await.is_err() {
                // The storer stopped on an error: stop the scan, then report that error.
                store_failed = true;
                cancel.cancel();
                break;
            }
        }
    }
    if !store_failed && !batch.is_empty() {
        let _ = batches.send((batch, positions)).await;
    }
    drop(batches);
    // Probes still sending (the store failed) see the channel closed and stop.
    drop(enriched);
    writer.finish()?;
    let mut spill = storer
        .await
        .map_err(|e| RunError::Task("the store task", e))??;
    let (stats, input_error, syn) = engine
        .await
        .map_err(|e| RunError::Task("the scan engine", e))??;
    if let Some(path) = &job.checkpoint {
        template.with_frontier(&progress.frontier()).write(path)?;
    }
    if stats.stopped.is_none() && job.finish_scan {
        let finished_at = OffsetDateTime::now_utc();
        let finished = with_retry(job.durability.retry_for, "finish the scan", || {
            store.scans.finish_scan(scan, finished_at)
        })
        .await;
        if let Err(error) = finished {
            tracing::error!(
                %error,
                spill = %spill.path.display(),
                "could not finish the scan; the spill file records its end"
            );
            spill.append(&[SpillLine::Finished {
                scan: scan.0,
                finished_at,
            }])?;
        }
    }
    Ok(ScanOutcome {
        scan,
        stats,
        exchange: job.exchange.load(Ordering::Relaxed),
        spilled: spill.lines,
        spill_path: (spill.lines > 0).then_some(spill.path),
        input_error,
        syn,
    })
}

/// Stores batches in order; after each, marks its targets done in the frontier and, at most
/// every few seconds, rewrites the checkpoint: only stored results are ever claimed. A batch
/// the store keeps refusing goes to the spill file, which counts as stored: it is on disk.
async fn store_batches(
    store: Store,
    scan: ScanId,
    mut batches: mpsc::Receiver<(Vec<Observation>, Vec<u128>)>,
    progress: Arc<surveyor_scan::ScanProgress>,
    checkpoint: Option<(PathBuf, Checkpoint)>,
    (retry_for, mut spill): (Duration, Spill),
) -> Result<Spill, RunError> {
    let mut last_checkpoint = Instant::now();
    while let Some((mut batch, mut positions)) = batches.recv().await {
        take_waiting(&mut batches, &mut batch, &mut positions);
        let stored = with_retry(retry_for, "store observations", || {
            store.scans.record(scan, &batch)
        })
        .await;
        if let Err(error) = stored {
            let source = std::error::Error::source(&error).map(ToString::to_string);
            tracing::error!(
                %error,
                source = source.as_deref().unwrap_or(""),
                observations = batch.len(),
                spill = %spill.path.display(),
                "could not store a batch; it goes to the spill file"
            );
            let lines: Vec<SpillLine> = batch
                .into_iter()
                .map(|observation| SpillLine::Observation {
                    scan: scan.0,
                    observation: Box::new(observation),
                })
                .collect();
            spill.append(&lines)?;
        }
        progress.complete(positions);
        if let Some((path, template)) = &checkpoint {
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                template.with_frontier(&progress.frontier()).write(path)?;
                last_checkpoint = Instant::now();
            }
        }
    }
    Ok(spill)
}

/// Appends the batches that wait in the channel, in order, to the one in hand: a store that
/// fell behind then catches up in larger transactions. Nothing waits while the store keeps up,
/// and batches stay as small as the pipeline made them.
fn take_waiting(
    waiting: &mut mpsc::Receiver<(Vec<Observation>, Vec<u128>)>,
    batch: &mut Vec<Observation>,
    positions: &mut Vec<u128>,
) {
    // At most what the channel holds: a producer refilling it meanwhile waits for the next.
    for _ in 0..QUEUED {
        let Ok((more, more_positions)) = waiting.try_recv() else {
            break;
        };
        batch.extend(more);
        positions.extend(more_positions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::tests::observation;

    #[tokio::test]
    async fn waiting_batches_join_the_one_in_hand_in_order() {
        let (tx, mut rx) = mpsc::channel(QUEUED + 2);
        for i in 0..(QUEUED as u8 + 2) {
            tx.send((vec![observation(i)], vec![u128::from(i)]))
                .await
                .unwrap();
        }
        let (mut batch, mut positions) = rx.recv().await.unwrap();
        take_waiting(&mut rx, &mut batch, &mut positions);
        let taken = QUEUED as u8 + 1;
        assert_eq!(positions, (0..taken).map(u128::from).collect::<Vec<_>>());
        let ips: Vec<_> = batch.iter().map(|o| o.ip).collect();
        assert_eq!(
            ips,
            (0..taken).map(|i| observation(i).ip).collect::<Vec<_>>()
        );
        // No more than the channel holds at a time: the last one waits for the next round.
        let (batch, positions) = rx.recv().await.unwrap();
        assert_eq!((batch.len(), positions), (1, vec![u128::from(taken)]));

        // Nothing waiting: the batch stays as it came.
        tx.send((vec![observation(9)], vec![9])).await.unwrap();
        let (mut batch, mut positions) = rx.recv().await.unwrap();
        take_waiting(&mut rx, &mut batch, &mut positions);
        assert_eq!((batch.len(), positions), (1, vec![9]));
    }
}
