//! The scan engine: a bounded window of probes over a lazily walked target space, streaming
//! observations into a channel. It knows nothing of where observations go.

mod backoff;
mod danger;
pub mod discover;
pub mod fingerprint;
pub mod ntlm;
mod permute;
mod probe;
mod smtp;
pub mod syn;
pub mod targets;
mod tls;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{Quota, RateLimiter};
use surveyor_model::{Observation, Status};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use backoff::Backoff;
pub use permute::Permutation;
pub use targets::{Exclusions, Order, PortSpec, Target, TargetError, TargetSpace};

/// Probe settings, validated by the binary before a scan starts.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Time allowed for the TCP handshake.
    pub connect_timeout: Duration,
    /// One deadline for everything done with one target.
    pub target_timeout: Duration,
    /// Bytes of each response body kept; the rest is not read.
    pub max_body_bytes: usize,
    /// Bound on a response head (status line and headers).
    pub max_header_bytes: usize,
    /// Identifies the scanner and says where to learn about it or opt out.
    pub user_agent: String,
    /// Start an NTLM handshake on Exchange hosts to read the AD domain, server name and
    /// Windows build (never finished, no credentials).
    pub ntlm: bool,
    /// What to ask an HTTP(S) server.
    pub plan: ProbePlan,
}

/// What an HTTP(S) probe asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbePlan {
    /// The Exchange plan: /owa/, the logon page, autodiscover, the export-tool manifest and
    /// NTLM, stopping once the exact build is known.
    #[default]
    Exchange,
    /// TLS (certificate recorded) and one `GET /`: a banner grab, and the floor the Exchange
    /// plan's cost is measured against.
    Banner,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            connect_timeout: Duration::from_secs(5),
            target_timeout: Duration::from_secs(20),
            max_body_bytes: 256 * 1024,
            max_header_bytes: 64 * 1024,
            user_agent: default_user_agent(None),
            ntlm: true,
            plan: ProbePlan::Exchange,
        }
    }
}

/// One target in this many gets a `target` span (by its position in the walk).
pub const TARGET_SPAN_SAMPLE: u128 = 256;

/// `Surveyor/<version> (+<info url>)`: operators who see us in their logs can find out who is
/// scanning and why.
pub fn default_user_agent(info_url: Option<&str>) -> String {
    let url = info_url.unwrap_or("https://github.com/surveyor-census/surveyor");
    format!(
        "Mozilla/5.0 (compatible; Surveyor/{}; +{url})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Politeness and limits: policy, separate from the probing mechanism.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub probe: ProbeConfig,
    /// Targets in flight at once.
    pub concurrency: usize,
    /// New targets per second, over the whole scan.
    pub rate: Option<NonZeroU32>,
    /// New targets per second into one destination network (IPv4 /24, IPv6 /48).
    pub network_rate: Option<NonZeroU32>,
    /// New targets per second to one address (several ports of one host).
    pub host_rate: Option<NonZeroU32>,
    /// Stop admitting targets after this many.
    pub max_targets: Option<u64>,
    /// Stop admitting targets after this long.
    pub max_runtime: Option<Duration>,
    /// After a stop, how long in-flight probes may finish before they are abandoned.
    pub drain_timeout: Duration,
    /// Live counters and the resume frontier, shared with whoever watches the scan.
    pub progress: Arc<ScanProgress>,
    /// Pauses for destination networks that answered and then fail.
    pub backoff: Backoff,
    /// When set, these limits replace `rate`, `network_rate` and `host_rate`, from the start
    /// and again whenever a new value is sent: a distributed census splits its budget
    /// across the workers that hold leases, and that number changes while a shard runs.
    pub live_limits: Option<tokio::sync::watch::Receiver<RateLimits>>,
}

/// The three politeness rates, as one value that can change while a scan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub rate: Option<NonZeroU32>,
    pub network_rate: Option<NonZeroU32>,
    pub host_rate: Option<NonZeroU32>,
}

/// Live view of a running scan: counters for a progress display, and the frontier a
/// checkpoint records so that `--resume` neither repeats nor skips a target.
#[derive(Debug, Default)]
pub struct ScanProgress {
    pub admitted: AtomicU64,
    pub excluded: AtomicU64,
    pub done: AtomicU64,
    pub connected: AtomicU64,
    frontier: Mutex<Frontier>,
}

impl ScanProgress {
    /// The frontier right now.
    pub fn frontier(&self) -> Frontier {
        self.frontier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts from a checkpoint's frontier.
    pub fn resume_from(&self, frontier: Frontier) {
        *self.frontier.lock().unwrap_or_else(|e| e.into_inner()) = frontier;
    }

    /// Marks positions whose observations are safely stored. The engine finishes silent
    /// targets itself; a target that produced an observation stays pending until its consumer
    /// says so, so a checkpoint never claims a result that a crash could still lose.
    pub fn complete(&self, positions: impl IntoIterator<Item = u128>) {
        self.with_frontier(|f| {
            for p in positions {
                f.pending.remove(&p);
            }
        });
    }

    fn with_frontier<T>(&self, f: impl FnOnce(&mut Frontier) -> T) -> T {
        f(&mut self.frontier.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Positions of a walk: everything below `next` is done except `pending`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// The first position not yet taken from the walk.
    pub next: u128,
    /// Positions taken but not finished (in flight, or abandoned at a stop).
    pub pending: BTreeSet<u128>,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            probe: ProbeConfig::default(),
            concurrency: 256,
            rate: NonZeroU32::new(2_000),
            network_rate: NonZeroU32::new(200),
            host_rate: NonZeroU32::new(10),
            max_targets: None,
            max_runtime: None,
            drain_timeout: Duration::from_secs(10),
            progress: Arc::default(),
            backoff: Backoff::default(),
            live_limits: None,
        }
    }
}

/// Why a scan stopped before walking every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    MaxTargets,
    MaxRuntime,
    /// The source could not go on (a bad line in a stream of targets); it says why.
    SourceFailed,
}

/// Counters of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Targets admitted and probed.
    pub targets: u64,
    /// Targets skipped because their address is excluded.
    pub excluded: u64,
    pub refused: u64,
    pub timed_out: u64,
    /// Targets that accepted a connection and closed it without sending a byte (no
    /// observation: there is nothing to record beyond an open port).
    pub closed: u64,
    /// Targets whose host or network was reported unreachable.
    pub unreachable: u64,
    /// Targets that waited for their network's back-off pause (outside the window) before
    /// being probed.
    pub backed_off: u64,
    /// Targets that answered: each produced one observation.
    pub connected: u64,
    /// Observations by status.
    pub by_status: Vec<(Status, u64)>,
    /// In-flight probes abandoned when the drain deadline passed after a stop, and targets
    /// still waiting out a pause or a rate limit at a stop (both stay pending).
    pub abandoned: u64,
    pub stopped: Option<StopReason>,
    pub duration: Duration,
}

impl ScanStats {
    fn count_status(&mut self, status: Status) {
        match self.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.by_status.push((status, 1)),
        }
    }
}

/// Where the engine's targets come from: a walk of the target space (any iterator), or a
/// channel that yields targets as they become known (SYN responders, lines read from a pipe).
pub trait TargetSource: Send {
    /// The next target with its walk position; `None` when there are no more. May wait.
    fn next_target(&mut self) -> impl std::future::Future<Output = Option<(u128, Target)>> + Send;

    /// Whether the source moves the frontier's `next` itself. A walk in order does not (the
    /// engine moves it past each target it takes); a source that yields positions out of
    /// order (SYN answers) knows better when everything before a position is settled.
    fn keeps_frontier(&self) -> bool {
        false
    }

    /// Asked after the source said `None`: whether it ended on an error rather than at its
    /// end. The scan then stops as if cancelled (in-flight probes drain, nothing more is
    /// admitted) and says [`StopReason::SourceFailed`].
    fn failed(&self) -> bool {
        false
    }
}

/// An iterator as a [`TargetSource`] that never waits.
#[derive(Debug)]
pub struct FromIter<I>(pub I);

impl<I> TargetSource for FromIter<I>
where
    I: Iterator<Item = (u128, Target)> + Send,
{
    async fn next_target(&mut self) -> Option<(u128, Target)> {
        self.0.next()
    }
}

impl TargetSource for mpsc::Receiver<(u128, Target)> {
    async fn next_target(&mut self) -> Option<(u128, Target)> {
        self.recv().await
    }
}

/// [`run_source`] over targets known up front (a walk of the target space).
pub async fn run<I>(
    config: &ScanConfig,
    targets: I,
    exclusions: &Exclusions,
    out: mpsc::Sender<(u128, Observation)>,
    cancel: CancellationToken,
) -> ScanStats
where
    I: IntoIterator<Item = (u128, Target)>,
    I::IntoIter: Send,
{
    let mut source = FromIter(targets.into_iter());
    run_source(config, &mut source, exclusions, out, cancel).await
}

/// Probes every admissible target, at most `concurrency` at a time and within the rate
/// limits, sending one observation per target that accepted a connection. Targets come with
/// their walk position (see [`TargetSpace::walk`]); `config.progress` tracks which positions
/// are done. The exclusion list is checked here, immediately before a target is admitted,
/// whatever the caller filtered. Backpressure: when the receiver is slow, probes wait on
/// `send` and the window stops admitting targets. While the source waits for its next target,
/// finished probes are collected and a stop is noticed. A target whose network is backed off,
/// or whose network or host is over its rate, waits in a bounded queue outside the window
/// (as many targets as the window, at least 4,096; while it is full no new target is taken),
/// so the window only ever holds probes. Returns when all targets are done or the scan is stopped.
pub async fn run_source<S: TargetSource>(
    config: &ScanConfig,
    targets: &mut S,
    exclusions: &Exclusions,
    out: mpsc::Sender<(u128, Observation)>,
    cancel: CancellationToken,
) -> ScanStats {
    let started = Instant::now();
    let progress = config.progress.clone();
    let tls = probe::tls_connector();
    let probe_config = std::sync::Arc::new(config.probe.clone());
    let window = config.concurrency.max(1);
    let mut live_limits = config.live_limits.clone();
    let limits = match &mut live_limits {
        Some(rx) => *rx.borrow_and_update(),
        None => RateLimits {
            rate: config.rate,
            network_rate: config.network_rate,
            host_rate: config.host_rate,
        },
    };
    let (mut global, mut per_network, mut per_host) = limiters(limits);
    let runtime_over = config.max_runtime.map(|d| started + d);
    let networks = Arc::new(backoff::Networks::new(config.backoff));
    let mut deferred = backoff::Deferred::new(window.max(backoff::DEFERRED_MIN));
    let clock = governor::clock::DefaultClock::default();
    let mut stats = ScanStats::default();
    let mut in_flight = JoinSet::new();
    let mut exhausted = false;

    while stats.stopped.is_none() {
        if runtime_over.is_some_and(|t| Instant::now() >= t) {
            stats.stopped = Some(StopReason::MaxRuntime);
            break;
        }
        if config.max_targets.is_some_and(|max| stats.targets >= max) {
            stats.stopped = Some(StopReason::MaxTargets);
            break;
        }
        if exhausted && in_flight.is_empty() && deferred.is_empty() {
            break;
        }
        let room = in_flight.len() < window;
        let take_new = room && !exhausted && !deferred.is_full();
        // A waiting target whose time came when the window has room, else a new one from the
        // source, else (or meanwhile) a finished probe.
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                stats.stopped = Some(StopReason::Cancelled);
                break;
            }
            () = sleep_until_or_never(runtime_over) => continue,
            Some(result) = in_flight.join_next(), if !in_flight.is_empty() => {
                tally(&mut stats, result);
                continue;
            }
            () = sleep_until_or_never(deferred.next_at()), if room && !deferred.is_empty() => {
                match deferred.pop_ready(Instant::now()) {
                    Some(waiting) => Next::Waited(waiting),
                    None => continue,
                }
            }
            next = targets.next_target(), if take_new => match next {
                Some((position, target)) => Next::New(position, target),
                None => {
                    exhausted = true;
                    if targets.failed() {
                        stats.stopped = Some(StopReason::SourceFailed);
                    }
                    continue;
                }
            },
        };
        let (position, target, waited) = match next {
            Next::New(position, target) => {
                if !targets.keeps_frontier() {
                    progress.with_frontier(|f| f.next = f.next.max(position + 1));
                }
                (position, target, None)
            }
            Next::Waited(w) => (w.position, w.target, Some(w.backed_off)),
        };
        // Checked again after a wait: the opt-out list may have changed meanwhile.
        if !exclusions.allows(target.ip) {
            stats.excluded += 1;
            progress.excluded.fetch_add(1, Ordering::Relaxed);
            // A source that keeps the frontier may have marked it pending.
            progress.complete([position]);
            continue;
        }
        if waited.is_none() {
            progress.with_frontier(|f| f.pending.insert(position));
        }
        if let Some(rx) = &mut live_limits {
            // New limiters start with a full burst; the limits change rarely (at a
            // heartbeat), so that is a small, bounded excess.
            if rx.has_changed().unwrap_or(false) {
                (global, per_network, per_host) = limiters(*rx.borrow_and_update());
            }
        }
        // A paused network's targets, and those over their network's or host's rate, wait in
        // the queue, so that the window and the other networks go on.
        let network = network_key(target.ip);
        let now = Instant::now();
        if let Some(until) = networks.paused_until(network, now) {
            if waited != Some(true) {
                stats.backed_off += 1;
            }
            deferred.push(until, position, target, true);
            continue;
        }
        let backed_off = waited.unwrap_or(false);
        let not_yet = per_host
            .as_ref()
            .and_then(|l| l.check_key(&target.ip).err())
            .or_else(|| {
                per_network
                    .as_ref()
                    .and_then(|l| l.check_key(&network).err())
            });
        if let Some(not_until) = not_yet {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
            deferred.push(now + wait, position, target, backed_off);
            continue;
        }
        if let Some(l) = &global {
            tokio::select! {
                () = l.until_ready() => {}
                () = cancel.cancelled() => {
                    stats.stopped = Some(StopReason::Cancelled);
                    break;
                }
            }
        }
        stats.targets += 1;
        progress.admitted.fetch_add(1, Ordering::Relaxed);
        if stats.targets % 65_536 == 0 {
            // Keyed limiter state would otherwise grow with every network ever seen.
            if let Some(l) = &per_network {
                l.retain_recent();
            }
            if let Some(l) = &per_host {
                l.retain_recent();
            }
            networks.forget_stale(Instant::now());
        }
        let (tls, cfg, out, progress, networks) = (
            tls.clone(),
            probe_config.clone(),
            out.clone(),
            progress.clone(),
            networks.clone(),
        );
        // A `target` span for one target in TARGET_SPAN_SAMPLE: enough to follow probes at
        // debug level without a span per address of a country.
        let span = if position % TARGET_SPAN_SAMPLE == 0 {
            tracing::debug_span!(
                "target",
                target.ip = %target.ip,
                target.port = target.port,
                target.position = %position,
            )
        } else {
            tracing::Span::none()
        };
        in_flight.spawn(
            async move {
                let result = probe::probe(target, &cfg, &tls).await;
                networks.record(network, outcome_of(&result), Instant::now());
                let result = match result {
                    Ok(obs) => {
                        let status = obs.status;
                        // A closed receiver means the consumer is gone; the scan winds down.
                        let _ = out.send((position, obs)).await;
                        progress.connected.fetch_add(1, Ordering::Relaxed);
                        Ok(status)
                    }
                    Err(silent) => {
                        progress.complete([position]);
                        Err(silent)
                    }
                };
                progress.done.fetch_add(1, Ordering::Relaxed);
                result
            }
            .instrument(span),
        );
    }

    // Targets still waiting are not probed; they stay pending, so a resume probes them.
    stats.abandoned += deferred.drain().count() as u64;
    // After a stop, in-flight probes may finish within the drain deadline; the rest are
    // abandoned. (A scan that ran out of targets left the loop with nothing in flight.)
    let drain_until = Instant::now() + config.drain_timeout;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(drain_until, in_flight.join_next()).await {
            Ok(Some(result)) => tally(&mut stats, result),
            Ok(None) => break,
            Err(_) => {
                stats.abandoned += in_flight.len() as u64;
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
            }
        }
    }
    stats.duration = started.elapsed();
    stats
}

/// What the engine takes next: a target from the source, or one whose wait is over.
enum Next {
    New(u128, Target),
    Waited(backoff::Waiting),
}

/// What a probe's result says about its destination network's health (see `backoff`).
fn outcome_of(result: &Result<Observation, probe::Silent>) -> backoff::Outcome {
    use backoff::Outcome;
    match result {
        Err(probe::Silent::Refused) => Outcome::Answered,
        Err(probe::Silent::Timeout | probe::Silent::Unreachable) => Outcome::Silent,
        Err(probe::Silent::Closed) => Outcome::Failed,
        Ok(obs) => match obs.status {
            // Connected, then nothing more within the deadline.
            Status::IoTimeout => Outcome::Failed,
            // A handshake cut off by the peer, unlike an alert or a server that speaks
            // something else, which are answers (the probe's stable descriptions).
            Status::TlsError
                if matches!(
                    obs.error.as_deref(),
                    Some(
                        "the server closed the connection during the TLS handshake"
                            | "the connection failed during the TLS handshake"
                    )
                ) =>
            {
                Outcome::Failed
            }
            _ => Outcome::Answered,
        },
    }
}

/// Sleeps until `t`, or forever without one.
async fn sleep_until_or_never(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

/// The global, per-network and per-host limiters for a set of rates.
fn limiters(
    limits: RateLimits,
) -> (
    Option<governor::DefaultDirectRateLimiter>,
    Option<Keyed<u128>>,
    Option<Keyed<IpAddr>>,
) {
    (
        limits
            .rate
            .map(|r| RateLimiter::direct(Quota::per_second(r))),
        limits
            .network_rate
            .map(|r| RateLimiter::keyed(Quota::per_second(r))),
        limits
            .host_rate
            .map(|r| RateLimiter::keyed(Quota::per_second(r))),
    )
}

fn tally(
    stats: &mut ScanStats,
    result: Result<Result<Status, probe::Silent>, tokio::task::JoinError>,
) {
    match result {
        Ok(Ok(status)) => {
            stats.connected += 1;
            stats.count_status(status);
        }
        Ok(Err(probe::Silent::Refused)) => stats.refused += 1,
        Ok(Err(probe::Silent::Timeout)) => stats.timed_out += 1,
        Ok(Err(probe::Silent::Closed)) => stats.closed += 1,
        Ok(Err(probe::Silent::Unreachable)) => stats.unreachable += 1,
        Err(join_error) if join_error.is_cancelled() => {}
        Err(join_error) => tracing::error!(%join_error, "a probe task failed"),
    }
}

/// The destination network a target belongs to, for per-network politeness.
fn network_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (u128::from(v6) >> 80) | (1 << 127),
    }
}
