//! The scan pipeline: engine → classification → output (JSON lines or CSV) and the store,
//! with checkpoints for `--resume` and a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use surveyor_kb::KnowledgeBase;
use surveyor_model::Observation;
use surveyor_scan::{Exclusions, Frontier, Order, ScanConfig, ScanStats, TargetSpace};
use surveyor_store::{NewScan, ScanId, Store};
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::input::TargetStream;

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
/// Observations per transaction when `surveyor ingest` loads a spill file, which is in memory
/// already: larger transactions write each index page once for more rows, which a scan's
/// permuted addresses need (docs/benchmarks.md: SQLite about twice as fast as with 500).
const INGEST_BATCH: usize = 5_000;
/// A checkpoint is rewritten after a stored batch at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
/// A partial batch is stored after this long, so that a slow scan's results reach the store
/// (and the checkpoint) without waiting for a full batch.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to store a batch.
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(5);

/// How observations are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line: the contract of docs/output.md.
    Jsonl,
    /// One row per observation with the census columns, for spreadsheets.
    Csv,
}

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
}

/// When the store fails, a batch is retried for `retry_for`, then appended to the spill
/// file, which `surveyor ingest` loads later: a scan never drops what it observed.
#[derive(Debug, Clone)]
pub struct Durability {
    pub retry_for: Duration,
    /// The spill file; `None`: `surveyor-spill-scan<ID>.jsonl` in the working directory.
    pub spill: Option<PathBuf>,
}

/// One line of a spill file: an observation of a scan, or the scan's end.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SpillLine {
    Observation {
        scan: i64,
        observation: Box<Observation>,
    },
    Finished {
        scan: i64,
        #[serde(with = "time::serde::rfc3339")]
        finished_at: OffsetDateTime,
    },
}

impl SpillLine {
    /// Parses one line, naming what is wrong with it (an untagged enum would not).
    fn parse(line: &str) -> Result<SpillLine> {
        #[derive(Deserialize)]
        struct Finished {
            scan: i64,
            #[serde(with = "time::serde::rfc3339")]
            finished_at: OffsetDateTime,
        }
        let value: serde_json::Value = serde_json::from_str(line)?;
        let scan = value.get("scan").and_then(serde_json::Value::as_i64);
        match (scan, value.get("observation")) {
            (Some(scan), Some(observation)) => Ok(SpillLine::Observation {
                scan,
                observation: Box::new(Observation::deserialize(observation)?),
            }),
            (Some(_), None) => {
                let f: Finished = serde_json::from_value(value)?;
                Ok(SpillLine::Finished {
                    scan: f.scan,
                    finished_at: f.finished_at,
                })
            }
            (None, _) => bail!("no scan id"),
        }
    }
}

/// Appends to a spill file, creating it on first use, and syncs each write to disk.
struct Spill {
    path: PathBuf,
    lines: u64,
}

impl Spill {
    fn append(&mut self, lines: &[SpillLine]) -> Result<()> {
        let mut text = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut text, line)?;
            text.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("could not open the spill file {}", self.path.display()))?;
        file.write_all(&text)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("could not write the spill file {}", self.path.display()))?;
        self.lines += lines.len() as u64;
        Ok(())
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not retryable, or
/// `retry_for` has passed, pausing 100 ms, then twice as long each time (at most 5 s).
/// Returns the last error.
async fn with_retry<T, F, Fut>(retry_for: Duration, what: &str, mut attempt: F) -> Result<T>
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
                tracing::warn!(%error, ?pause, "could not {what}; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX_PAUSE);
            }
            Err(error) => return Err(error).with_context(|| format!("could not {what}")),
        }
    }
}

/// What a finished (or interrupted) scan produced.
pub struct ScanOutcome {
    pub scan: ScanId,
    pub stats: ScanStats,
    pub exchange: u64,
    /// Lines written to the spill file because the store failed.
    pub spilled: u64,
    /// Why a stream of targets stopped early (a bad line, named); the scan is then not
    /// finished, and its checkpoint says where to continue.
    pub input_error: Option<String>,
}

/// Where a scan stands, written so that `--resume` continues it without repeating or skipping
/// a target. Positions are decimal strings: they can exceed what JSON numbers carry exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub scan: i64,
    pub seed: u64,
    pub shards: u32,
    pub shard: u32,
    pub targets: String,
    pub ports: Vec<u16>,
    pub space_len: String,
    pub as_of: String,
    pub next: String,
    pub pending: Vec<String>,
}

impl Checkpoint {
    pub(crate) fn of(job: &ScanJob, scan: ScanId, frontier: &Frontier) -> Checkpoint {
        Checkpoint {
            version: 1,
            scan: scan.0,
            seed: job.order.seed,
            shards: job.order.shards,
            shard: job.order.shard,
            targets: job.description.clone(),
            ports: job.ports.clone(),
            space_len: job.space.len().to_string(),
            as_of: job.as_of.to_string(),
            next: frontier.next.to_string(),
            pending: frontier.pending.iter().map(u128::to_string).collect(),
        }
    }

    pub(crate) fn with_frontier(&self, frontier: &Frontier) -> Checkpoint {
        Checkpoint {
            next: frontier.next.to_string(),
            pending: frontier.pending.iter().map(u128::to_string).collect(),
            ..self.clone()
        }
    }

    pub fn read(path: &std::path::Path) -> Result<Checkpoint> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a Surveyor checkpoint", path.display()))
    }

    /// The frontier to continue from, after checking that the checkpoint belongs to `job`.
    pub fn frontier_for(&self, job: &ScanJob) -> Result<Frontier> {
        self.frontier_against(&Checkpoint::of(
            job,
            ScanId(self.scan),
            &Frontier::default(),
        ))
    }

    /// The frontier to continue from, after checking that the checkpoint matches `expected`
    /// (a fresh one of the job being resumed).
    fn frontier_against(&self, expected: &Checkpoint) -> Result<Frontier> {
        let same = self.version == 1
            && self.seed == expected.seed
            && self.shards == expected.shards
            && self.shard == expected.shard
            && self.targets == expected.targets
            && self.ports == expected.ports
            && self.space_len == expected.space_len;
        if !same {
            bail!(
                "the checkpoint is for another scan (targets {:?}, ports {:?}, seed {}, shard {}/{}): \
                 resume with the same targets, ports, seed and shard",
                self.targets,
                self.ports,
                self.seed,
                self.shard,
                self.shards
            );
        }
        let number = |s: &str| {
            s.parse::<u128>()
                .with_context(|| format!("bad position {s:?} in the checkpoint"))
        };
        Ok(Frontier {
            next: number(&self.next)?,
            pending: self
                .pending
                .iter()
                .map(|p| number(p))
                .collect::<Result<_>>()?,
        })
    }

    /// Written beside and renamed over, so a crash never leaves half a checkpoint.
    fn write(&self, path: &std::path::Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("could not write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("could not replace {}", path.display()))
    }
}

/// The attributor for the registry in the store; `None` before the first import, so that a
/// scan without a registry attributes nothing rather than everything to nobody.
async fn attributor(store: &Store) -> Result<Option<surveyor_attrib::Attributor>> {
    let registry = crate::registry::load(store).await?;
    if registry.is_empty() {
        return Ok(None);
    }
    tracing::info!(
        organisations = registry.len(),
        "attributing servers by the registry"
    );
    Ok(Some(surveyor_attrib::Attributor::new(&registry)))
}

/// What the scan saw of a server that can name its organisation.
fn attribute(
    attributor: &surveyor_attrib::Attributor,
    obs: &Observation,
    ptr_name: Option<&str>,
    asn: Option<u32>,
) -> Option<surveyor_model::Attribution> {
    let ntlm_dns_domain = obs
        .fingerprint
        .of(surveyor_model::Signal::NtlmDnsDomain)
        .next()
        .map(|e| e.value.as_str());
    attributor.attribute(&surveyor_attrib::Evidence {
        ip: obs.ip,
        certificate_names: obs.tls.as_ref().map_or(&[], |tls| tls.names.as_slice()),
        ptr_name,
        ntlm_dns_domain,
        asn,
    })
}

/// Runs a scan, classifying each observation as of `job.as_of`, writing it to `out` and
/// storing it. The scan is marked finished only when it walked every target, so an
/// interrupted or truncated scan never becomes "the latest census".
pub async fn run_scan(
    job: ScanJob,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome> {
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
) -> Result<ScanOutcome> {
    run(job, Some(stream), store, out, cancel).await
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

async fn run(
    job: ScanJob,
    stream: Option<TargetStream>,
    store: &Store,
    out: &mut (dyn Write + Send),
    cancel: CancellationToken,
) -> Result<ScanOutcome> {
    // Read before the scan is recorded: from then on the scan must survive the store going
    // away, and needs nothing more from it.
    let attributor = attributor(store).await?;
    let (scan, frontier) = match &job.resume {
        Some(checkpoint) => {
            let scan = ScanId(checkpoint.scan);
            let frontier =
                checkpoint.frontier_against(&template_of(&job, stream.as_ref(), scan))?;
            let scan = ScanId(checkpoint.scan);
            match store
                .scans
                .scan(scan)
                .await
                .context("could not read the store")?
            {
                None => bail!(
                    "the checkpoint names scan {}, which the store does not have",
                    scan.0
                ),
                Some(record) if record.finished_at.is_some() => {
                    bail!("scan {} is already finished", scan.0)
                }
                // One scan, one knowledge base: a census judged half by one and half by
                // another would count neither.
                Some(record)
                    if record
                        .kb
                        .as_ref()
                        .is_some_and(|k| k.digest != job.kb.stamp.digest) =>
                {
                    bail!(
                        "scan {} is being judged with knowledge base {}, not {}: resume it \
                         with the same --kb, or re-judge it once finished",
                        scan.0,
                        record.kb.as_ref().map_or("?", |k| &k.digest[..12]),
                        job.kb.stamp
                    )
                }
                Some(_) => (scan, frontier),
            }
        }
        None => {
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
                .context("could not record the scan in the store")?;
            (scan, Frontier::default())
        }
    };
    let progress = job.config.progress.clone();
    progress.resume_from(frontier.clone());

    let (tx, mut rx) = mpsc::channel::<(u128, Observation)>(1024);
    let engine = {
        let (config, space, order) = (job.config.clone(), job.space.clone(), job.order);
        let (exclusions, cancel) = (job.exclusions.clone(), cancel.clone());
        let discovery = job.discovery.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            match discovery {
                Discovery::Connect if stream.is_some() => {
                    let stream = stream.expect("matched");
                    let mut source = stream.start(order, &frontier, exclusions.clone())?;
                    let stats =
                        surveyor_scan::run_source(&config, &mut source, &exclusions, tx, cancel)
                            .await;
                    Ok((stats, source.error()))
                }
                Discovery::Connect => {
                    let targets = space.resume(order, &frontier.pending, frontier.next);
                    Ok((
                        surveyor_scan::run(&config, targets, &exclusions, tx, cancel).await,
                        None,
                    ))
                }
                Discovery::Syn(_) if stream.is_some() => {
                    bail!("SYN discovery sweeps a target space, not a stream of targets")
                }
                Discovery::Syn(syn) => {
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
                        surveyor_scan::run_source(&config, &mut source, &exclusions, tx, cancel)
                            .await;
                    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                    let s = &source.stats;
                    eprintln!(
                        "surveyor: SYN sweep through the {}: {} SYNs sent, {} excluded, {} \
                         open, {} closed, {} duplicate answers, {} open ports dropped (probe \
                         queue full), {} send errors",
                        source.path,
                        n(&s.sent),
                        n(&s.excluded),
                        n(&s.open),
                        n(&s.closed),
                        n(&s.duplicates),
                        n(&s.dropped),
                        n(&s.send_errors)
                    );
                    Ok((stats, None))
                }
            }
        })
    };
    let exchange = Arc::new(AtomicU64::new(0));
    let total = match &stream {
        None => Some(job.space.shard_len(job.order)),
        Some(stream) => stream
            .checked
            .map(|c| c.targets.div_ceil(u128::from(job.order.shards.max(1)))),
    };
    let bar = progress_bar(&job, total, exchange.clone());
    let spill_path = job
        .durability
        .spill
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("surveyor-spill-scan{}.jsonl", scan.0)));

    // Storing runs in its own task so that classification and output go on while a batch is
    // written; QUEUED batches wait at most, then backpressure reaches the engine.
    let (batches, batch_rx) = mpsc::channel::<(Vec<Observation>, Vec<u128>)>(QUEUED);
    let template = template_of(&job, stream.as_ref(), scan);
    let storer = tokio::spawn(store_batches(
        store.clone(),
        scan,
        batch_rx,
        progress.clone(),
        job.checkpoint.clone().map(|path| (path, template.clone())),
        (
            job.durability.retry_for,
            Spill {
                path: spill_path.clone(),
                lines: 0,
            },
        ),
    ));

    let mut writer = Writer::new(out, job.format);
    let mut batch = Vec::with_capacity(BATCH);
    let mut positions = Vec::with_capacity(BATCH);
    let mut store_failed = false;
    let mut flush_at = Instant::now() + FLUSH_EVERY;
    loop {
        let received = tokio::time::timeout_at(flush_at, rx.recv()).await;
        let (position, mut obs) = match received {
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
        obs.exchange = job.kb.classify(&obs.fingerprint, job.as_of);
        obs.asn = job.asns.as_ref().and_then(|t| t.lookup(obs.ip));
        let asn = obs.asn;
        if let Some(attributor) = &attributor {
            obs.attribution = attribute(attributor, &obs, None, asn);
            // PTR only where the certificate and the prefixes said nothing (it outranks only
            // the NTLM domain and the AS): it costs a rate-limited lookup.
            let weak = obs.attribution.as_ref().is_none_or(|a| {
                matches!(
                    a.rule,
                    surveyor_model::AttributionRule::NtlmDomain
                        | surveyor_model::AttributionRule::Asn
                )
            });
            if let (true, Some(ptr)) = (weak, &job.ptr) {
                if let Some(name) = ptr.reverse(obs.ip).await {
                    obs.attribution = attribute(attributor, &obs, Some(&name), asn);
                }
            }
        }
        obs.country = job
            .countries
            .as_ref()
            .and_then(|t| t.lookup(obs.ip))
            .or_else(|| {
                let (attributor, a) = (attributor.as_ref()?, obs.attribution.as_ref()?);
                attributor.country_of(&a.organisation).map(str::to_owned)
            });
        if obs.exchange.is_some() {
            exchange.fetch_add(1, Ordering::Relaxed);
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
    drop(rx);
    writer.finish()?;
    let mut spill = storer.await.context("the store task failed")??;
    let (stats, input_error) = engine.await.context("the scan engine failed")??;
    if let Some(bar) = bar {
        bar.abort();
    }
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
            tracing::error!("{error:#}; the spill file records the scan's end");
            spill.append(&[SpillLine::Finished {
                scan: scan.0,
                finished_at,
            }])?;
        }
    }
    if spill.lines > 0 {
        eprintln!(
            "surveyor: the store failed; {} lines kept in {}: load them with `surveyor ingest {}`",
            spill.lines,
            spill.path.display(),
            spill.path.display()
        );
    }
    Ok(ScanOutcome {
        scan,
        stats,
        exchange: exchange.load(Ordering::Relaxed),
        spilled: spill.lines,
        input_error,
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
) -> Result<Spill> {
    let mut last_checkpoint = Instant::now();
    while let Some((mut batch, mut positions)) = batches.recv().await {
        take_waiting(&mut batches, &mut batch, &mut positions);
        let stored = with_retry(retry_for, "store observations", || {
            store.scans.record(scan, &batch)
        })
        .await;
        if let Err(error) = stored {
            tracing::error!(
                "{error:#}; {} observations go to {}",
                batch.len(),
                spill.path.display()
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

/// Loads a spill file into the store: every line is checked first, so a damaged file stores
/// nothing; then observations go in batches (idempotent per scan, address and port, so a
/// file loaded twice stores everything once) and recorded ends finish their scans.
pub async fn ingest(store: &Store, path: &std::path::Path) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let mut observations: Vec<(i64, Vec<Observation>)> = Vec::new();
    let mut finished = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = SpillLine::parse(line)
            .with_context(|| format!("{} line {}: not a spill line", path.display(), i + 1))?;
        match parsed {
            SpillLine::Observation { scan, observation } => match observations.last_mut() {
                Some((last, batch)) if *last == scan => batch.push(*observation),
                _ => observations.push((scan, vec![*observation])),
            },
            SpillLine::Finished { scan, finished_at } => finished.push((scan, finished_at)),
        }
    }
    let mut stored = 0;
    for (scan, all) in &observations {
        for batch in all.chunks(INGEST_BATCH) {
            store
                .scans
                .record(ScanId(*scan), batch)
                .await
                .with_context(|| format!("could not store observations of scan {scan}"))?;
            stored += batch.len() as u64;
        }
    }
    for (scan, finished_at) in &finished {
        store
            .scans
            .finish_scan(ScanId(*scan), *finished_at)
            .await
            .with_context(|| format!("could not finish scan {scan}"))?;
    }
    Ok((stored, finished.len() as u64))
}

/// A progress bar on a terminal; without a `total` (a stream from a pipe) a counter.
fn progress_bar(
    job: &ScanJob,
    total: Option<u128>,
    exchange: Arc<AtomicU64>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match total {
        Some(total) => (
            indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX)),
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} ETA {eta} {msg}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{elapsed_precise} {spinner} {human_pos} {per_sec} {msg}",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = job.config.progress.clone();
    Some(tokio::spawn(async move {
        loop {
            let done =
                progress.done.load(Ordering::Relaxed) + progress.excluded.load(Ordering::Relaxed);
            bar.set_position(done);
            bar.set_message(format!(
                "answered {} Exchange {}",
                progress.connected.load(Ordering::Relaxed),
                exchange.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}

/// Writes observations in the chosen format, flushing as it goes so that a pipeline reading
/// the output sees results while the scan runs.
struct Writer<'a> {
    out: &'a mut (dyn Write + Send),
    format: OutputFormat,
    header_written: bool,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut (dyn Write + Send), format: OutputFormat) -> Writer<'a> {
        Writer {
            out,
            format,
            header_written: false,
        }
    }

    fn write(&mut self, obs: &Observation) -> Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut *self.out, obs).context("could not write output")?;
                self.out
                    .write_all(b"\n")
                    .context("could not write output")?;
            }
            OutputFormat::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut *self.out);
                if !self.header_written {
                    csv.write_record(CSV_COLUMNS)
                        .context("could not write output")?;
                    self.header_written = true;
                }
                csv.write_record(csv_row(obs))
                    .context("could not write output")?;
                csv.flush().context("could not write output")?;
            }
        }
        self.out.flush().context("could not write output")
    }

    fn finish(&mut self) -> Result<()> {
        if self.format == OutputFormat::Csv && !self.header_written {
            let mut csv = csv::Writer::from_writer(&mut *self.out);
            csv.write_record(CSV_COLUMNS)
                .context("could not write output")?;
            csv.flush()?;
        }
        self.out.flush().context("could not write output")
    }
}

const CSV_COLUMNS: [&str; 15] = [
    "ip",
    "port",
    "scheme",
    "observed_at",
    "status",
    "error",
    "tls_version",
    "cert_sha256",
    "tls_names",
    "http_server",
    "exchange_family",
    "exchange_build",
    "exchange_version_name",
    "exchange_support",
    "evidence",
];

fn csv_row(o: &Observation) -> [String; 15] {
    let tls = o.tls.as_ref();
    let ex = o.exchange.as_ref();
    let observed = o
        .observed_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    [
        o.ip.to_string(),
        o.port.to_string(),
        o.scheme.as_str().into(),
        observed,
        o.status.as_str().into(),
        o.error.clone().unwrap_or_default(),
        tls.map(|t| t.version.clone()).unwrap_or_default(),
        tls.and_then(|t| t.cert_sha256.clone()).unwrap_or_default(),
        tls.map(|t| t.names.join(" ")).unwrap_or_default(),
        o.http_server.clone().unwrap_or_default(),
        ex.map(|e| e.family.as_str().to_string())
            .unwrap_or_default(),
        ex.map(|e| e.build.to_string()).unwrap_or_default(),
        ex.map(|e| e.version_name.clone()).unwrap_or_default(),
        ex.map(|e| e.support.as_str().to_string())
            .unwrap_or_default(),
        ex.map(|e| {
            e.evidence
                .iter()
                .map(|v| format!("{}={}", v.source, v.value))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default(),
    ]
}

/// How a scan finds open ports.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// A TCP connect() per target inside the probe window (no privileges needed).
    Connect,
    /// A stateless SYN sweep from raw sockets; open ports stream into the probe window.
    Syn(surveyor_scan::syn::SynConfig),
}

/// How the store names a knowledge base.
pub fn kb_ref(kb: &KnowledgeBase) -> surveyor_store::KbRef {
    surveyor_store::KbRef {
        digest: kb.stamp.digest.clone(),
        newest_release: kb.stamp.newest_release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(i: u8) -> Observation {
        Observation {
            ip: std::net::IpAddr::from([192, 0, 2, i]),
            port: 443,
            scheme: surveyor_model::Scheme::Https,
            observed_at: OffsetDateTime::UNIX_EPOCH,
            status: surveyor_model::Status::Success,
            error: None,
            tls: None,
            http_server: None,
            fingerprint: surveyor_model::Fingerprint::default(),
            exchange: None,
            attribution: None,
            asn: None,
            country: None,
        }
    }

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
