//! Stateless SYN discovery, ZMap's method: one sender walks the target space and sends a TCP
//! SYN per (address, port) from a raw socket; a receiver keeps nothing per target and knows an
//! answer is ours by its acknowledgement (the SYN's sequence number is a keyed cookie of the
//! target). Every open port found streams at once into the L7 probe window, while the sweep
//! goes on; answers that come late are awaited for a cooldown after the last SYN.
//!
//! The sender checks every address against the exclusions (built-in, block, allow and opt-out
//! lists) immediately before its SYN: no packet ever leaves for excluded space. IPv4 only.

mod link;
mod packet;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use link::{Path, LOOPBACK_KNOBS};
pub use packet::{Answer, Cookies, SOURCE_PORTS};

use crate::targets::{Exclusions, Order, Target, TargetSpace};
use crate::{ScanProgress, TargetSource};

/// How a SYN sweep runs.
#[derive(Debug, Clone)]
pub struct SynConfig {
    /// SYNs per second over the whole sweep; `None`: as fast as the sender goes.
    pub rate: Option<NonZeroU32>,
    /// Replaces `rate` while the sweep runs (a census worker's share of the census's rate
    /// changes as workers come and go).
    pub live_rate: Option<tokio::sync::watch::Receiver<Option<NonZeroU32>>>,
    /// How long answers are awaited after the last SYN (ZMap's default is 8 s).
    pub cooldown: Duration,
    /// The address SYNs come from; `None`: the one the kernel routes from towards the
    /// first target.
    pub source: Option<Ipv4Addr>,
    /// Open ports waiting for the L7 window; beyond it the receiver drops answers (counted),
    /// so that a slow L7 stage cannot grow memory without bound.
    pub queue: usize,
}

/// ZMap's default cooldown.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(8);

impl Default for SynConfig {
    fn default() -> SynConfig {
        SynConfig {
            rate: None,
            live_rate: None,
            cooldown: DEFAULT_COOLDOWN,
            source: None,
            queue: 65_536,
        }
    }
}

/// Why a SYN sweep cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SynError {
    #[error(
        "SYN discovery needs raw sockets (CAP_NET_RAW), which this process lacks: run it as \
         root, give the binary the capability (`setcap cap_net_raw+ep \"$(command -v \
         surveyor)\"`), or scan with `--discovery connect`"
    )]
    NoRawSockets,
    #[error("SYN discovery does not support IPv6 yet ({0}); scan IPv6 with `--discovery connect`")]
    Ipv6(String),
    #[error("SYN discovery sweeps prefixes, not lists of single targets; give prefixes or use `--discovery connect`")]
    ExplicitTargets,
    #[error("SYN discovery: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of a sweep, live.
#[derive(Debug, Default)]
pub struct SynStats {
    pub sent: AtomicU64,
    pub excluded: AtomicU64,
    pub send_errors: AtomicU64,
    /// Validated answers: open ports (SYN-ACK) and closed ones (RST).
    pub open: AtomicU64,
    pub closed: AtomicU64,
    /// Answers repeated (retransmitted SYN-ACKs): probed once.
    pub duplicates: AtomicU64,
    /// Open ports dropped because the L7 queue was full.
    pub dropped: AtomicU64,
    /// Packets read that were not answers to our SYNs.
    pub ignored: AtomicU64,
}

/// The open ports a sweep finds, in the order they answer, as a [`TargetSource`] for the L7
/// engine. It keeps the scan's frontier itself: a position counts as done once its SYN went
/// out longer than the cooldown ago, an open port stays pending until probed.
pub struct SynSource {
    /// Targets to probe before any answer: a resumed scan's open ports that were pending.
    first: std::collections::VecDeque<(u128, Target)>,
    found: mpsc::Receiver<(u128, Target)>,
    pub stats: Arc<SynStats>,
    /// How the SYNs leave this host.
    pub path: Path,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for SynSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynSource").finish_non_exhaustive()
    }
}

impl SynSource {
    /// Yields these (a checkpoint's pending positions) before the sweep's answers.
    pub fn first(&mut self, targets: impl IntoIterator<Item = (u128, Target)>) {
        self.first.extend(targets);
    }
}

impl TargetSource for SynSource {
    async fn next_target(&mut self) -> Option<(u128, Target)> {
        if let Some(t) = self.first.pop_front() {
            return Some(t);
        }
        self.found.recv().await
    }

    fn keeps_frontier(&self) -> bool {
        true
    }
}

impl Drop for SynSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Whether SYN discovery can sweep this space: IPv4 prefixes only.
pub fn check_space(space: &TargetSpace) -> Result<(), SynError> {
    if let Some(v6) = space.nets().iter().find(|n| matches!(n, IpNet::V6(_))) {
        return Err(SynError::Ipv6(v6.to_string()));
    }
    if space.has_explicit() {
        return Err(SynError::ExplicitTargets);
    }
    Ok(())
}

/// Checks that this process may open raw sockets, before anything else happens.
pub fn check_privileges() -> Result<(), SynError> {
    link::ip_sender().map(drop).map_err(permission)
}

fn raw_receiver() -> Result<Socket, SynError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).map_err(permission)
}

fn permission(e: std::io::Error) -> SynError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        SynError::NoRawSockets
    } else {
        SynError::Io(e)
    }
}

/// Starts a sweep of one shard of `space` from position `from` (a resumed scan's frontier).
/// The sender and receiver are threads of their own (a raw socket is a blocking loop, and the
/// sender is the hot path); `cancel` stops the sender, the receiver ends a cooldown after it.
pub fn start(
    space: Arc<TargetSpace>,
    order: Order,
    from: u128,
    exclusions: Exclusions,
    config: SynConfig,
    progress: Arc<ScanProgress>,
    cancel: CancellationToken,
) -> Result<SynSource, SynError> {
    check_space(&space)?;
    let receiver = raw_receiver()?;
    // Wake up now and then to notice the cooldown's end (or a stop) in dark space, where
    // nothing arrives: at most this late, so a short cooldown ends when it says.
    receiver.set_read_timeout(Some(RECEIVE_TICK))?;
    // Answers come in bursts; the kernel caps this at net.core.rmem_max.
    receiver.set_recv_buffer_size(RECEIVE_BUFFER)?;
    let source = match config.source {
        Some(ip) => ip,
        None => source_towards(&space)?,
    };
    let first = match space.nets().first() {
        Some(IpNet::V4(net)) => net.network(),
        _ => Ipv4Addr::LOCALHOST,
    };
    let (sender, path) = link::Sender::open(source, first).map_err(permission)?;
    let cookies = Cookies::default();
    let stats = Arc::new(SynStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    // When the last SYN went out; the receiver stops a cooldown later.
    let sweep_end: Arc<Mutex<Option<Instant>>> = Arc::default();
    // (when, position) marks of the sender, for the frontier.
    let marks: Arc<Mutex<std::collections::VecDeque<(Instant, u128)>>> = Arc::default();
    let (found_tx, found) = mpsc::channel(config.queue.max(1));

    let sending = {
        let (space, exclusions, cookies, stats, stop, sweep_end, marks) = (
            space.clone(),
            exclusions,
            cookies.clone(),
            stats.clone(),
            stop.clone(),
            sweep_end.clone(),
            marks.clone(),
        );
        let pacer = Pacer::new(config.rate, config.live_rate);
        std::thread::Builder::new()
            .name("syn-sender".into())
            .spawn(move || {
                send_sweep(SendJob {
                    sender,
                    space: &space,
                    order,
                    from,
                    exclusions: &exclusions,
                    cookies: &cookies,
                    source,
                    pacer,
                    stats: &stats,
                    stop: &stop,
                    cancel: &cancel,
                    marks: &marks,
                });
                *sweep_end.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            })?
    };
    let receiving = {
        let (stats, stop, progress) = (stats.clone(), stop.clone(), progress.clone());
        let cooldown = config.cooldown;
        std::thread::Builder::new()
            .name("syn-receiver".into())
            .spawn(move || {
                receive(ReceiveJob {
                    socket: receiver,
                    space: &space,
                    order,
                    cookies: &cookies,
                    stats: &stats,
                    stop: &stop,
                    sweep_end: &sweep_end,
                    marks: &marks,
                    cooldown,
                    progress: &progress,
                    found: found_tx,
                });
            })?
    };
    Ok(SynSource {
        first: std::collections::VecDeque::new(),
        found,
        stats,
        path,
        threads: vec![sending, receiving],
        stop,
    })
}

/// The local address the kernel would use towards the first prefix, found by connecting a
/// UDP socket (which sends nothing).
fn source_towards(space: &TargetSpace) -> Result<Ipv4Addr, SynError> {
    let Some(first) = space.nets().first() else {
        return Ok(Ipv4Addr::LOCALHOST);
    };
    let probe = std::net::UdpSocket::bind("0.0.0.0:0")?;
    probe.connect(SocketAddr::new(first.network(), 9))?;
    match probe.local_addr()?.ip() {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(_) => Err(SynError::Ipv6(first.to_string())),
    }
}

struct SendJob<'a> {
    sender: link::Sender,
    space: &'a TargetSpace,
    order: Order,
    from: u128,
    exclusions: &'a Exclusions,
    cookies: &'a Cookies,
    source: Ipv4Addr,
    pacer: Pacer,
    stats: &'a SynStats,
    stop: &'a AtomicBool,
    cancel: &'a CancellationToken,
    marks: &'a Mutex<std::collections::VecDeque<(Instant, u128)>>,
}

/// The receive buffer asked for (the kernel grants at most `net.core.rmem_max`, twice).
const RECEIVE_BUFFER: usize = 32 << 20;

/// How often the sender notes its position for the frontier.
const MARK_EVERY: u128 = 1_024;

fn send_sweep(mut job: SendJob<'_>) {
    let mut buf = Vec::with_capacity(64);
    // The first position not yet sent: where a resumed sweep goes on.
    let mut next = job.from;
    for (pos, target) in job.space.walk(job.order, job.from) {
        if pos % MARK_EVERY == 0 {
            if job.stop.load(Ordering::Relaxed) || job.cancel.is_cancelled() {
                break;
            }
            job.marks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back((Instant::now(), pos));
            job.pacer.follow();
        }
        next = pos + 1;
        // Checked here, immediately before the packet: no SYN to excluded space, ever.
        let IpAddr::V4(ip) = target.ip else { continue };
        if !job.exclusions.allows(target.ip) {
            job.stats.excluded.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let prefix = job.sender.prefix();
        if packet::syn(&mut buf, prefix, job.cookies, job.source, ip, target.port).is_err() {
            job.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        loop {
            match job.sender.send(&buf, ip) {
                Ok(_) => break,
                // The device queue is full: let it drain.
                Err(e) if e.raw_os_error() == Some(105) => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(_) => {
                    job.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        job.stats.sent.fetch_add(1, Ordering::Relaxed);
        job.pacer.sent_one();
    }
    job.marks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back((Instant::now(), next));
}

/// Paces the sender at a rate that may change while it runs.
struct Pacer {
    rate: Option<NonZeroU32>,
    live: Option<tokio::sync::watch::Receiver<Option<NonZeroU32>>>,
    /// Since when, and how many SYNs sent since, at the current rate.
    since: Instant,
    sent: u64,
}

impl Pacer {
    fn new(
        rate: Option<NonZeroU32>,
        mut live: Option<tokio::sync::watch::Receiver<Option<NonZeroU32>>>,
    ) -> Pacer {
        let rate = live.as_mut().map_or(rate, |l| *l.borrow_and_update());
        Pacer {
            rate,
            live,
            since: Instant::now(),
            sent: 0,
        }
    }

    /// Takes up a new live rate, if there is one; counted afresh from now.
    fn follow(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.has_changed().unwrap_or(false) {
            self.rate = *live.borrow_and_update();
            self.since = Instant::now();
            self.sent = 0;
        }
    }

    fn sent_one(&mut self) {
        self.sent += 1;
        let Some(rate) = self.rate else { return };
        // Sleep once ahead by more than a millisecond: exact on average, few syscalls.
        let due = self.since + Duration::from_secs_f64(self.sent as f64 / f64::from(rate.get()));
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
    }
}

struct ReceiveJob<'a> {
    socket: Socket,
    space: &'a TargetSpace,
    order: Order,
    cookies: &'a Cookies,
    stats: &'a SynStats,
    stop: &'a AtomicBool,
    sweep_end: &'a Mutex<Option<Instant>>,
    marks: &'a Mutex<std::collections::VecDeque<(Instant, u128)>>,
    cooldown: Duration,
    progress: &'a ScanProgress,
    found: mpsc::Sender<(u128, Target)>,
}

/// Open ports answered lately, for duplicate suppression.
type Seen = HashSet<(Ipv4Addr, u16)>;

/// How long the receiver waits for a packet before it looks at the clock again.
const RECEIVE_TICK: Duration = Duration::from_millis(10);

/// Answers remembered for duplicate suppression: two generations of this many each.
const SEEN: usize = 1 << 18;

fn receive(job: ReceiveJob<'_>) {
    use std::io::Read;
    let mut packet = vec![0u8; 65_536];
    let (mut seen, mut older): (Seen, Seen) = (HashSet::new(), HashSet::new());
    loop {
        if job.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        advance_frontier(&job, now);
        let ended = *job.sweep_end.lock().unwrap_or_else(|e| e.into_inner());
        if ended.is_some_and(|end| now >= end + job.cooldown) {
            return;
        }
        let n = match (&job.socket).read(&mut packet) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        match packet::answer(&packet[..n], job.cookies) {
            None => {
                job.stats.ignored.fetch_add(1, Ordering::Relaxed);
            }
            Some(Answer::Closed(..)) => {
                job.stats.closed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Answer::Open(ip, port)) => {
                if seen.contains(&(ip, port)) || older.contains(&(ip, port)) {
                    job.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if seen.len() >= SEEN {
                    older = std::mem::take(&mut seen);
                }
                seen.insert((ip, port));
                job.stats.open.fetch_add(1, Ordering::Relaxed);
                let Some((index, position)) = job
                    .space
                    .index_of(IpAddr::V4(ip), port)
                    .and_then(|i| job.space.position_of(job.order, i).map(|p| (i, p)))
                else {
                    job.stats.ignored.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // Pending until probed and stored: a checkpoint never skips an open port.
                job.progress.with_frontier(|f| {
                    f.pending.insert(position);
                });
                if job
                    .found
                    .try_send((position, job.space.get(index)))
                    .is_err()
                {
                    job.progress.complete([position]);
                    job.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Everything the sender passed more than a cooldown ago is done (its answer had time to
/// come); open ports found meanwhile stay pending until probed.
fn advance_frontier(job: &ReceiveJob<'_>, now: Instant) {
    let mut marks = job.marks.lock().unwrap_or_else(|e| e.into_inner());
    let mut settled = None;
    while let Some(&(at, pos)) = marks.front() {
        if at + job.cooldown > now {
            break;
        }
        settled = Some(pos);
        marks.pop_front();
    }
    drop(marks);
    if let Some(pos) = settled {
        job.progress.with_frontier(|f| f.next = f.next.max(pos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_takes_up_a_new_rate_and_counts_afresh() {
        let (tx, rx) = tokio::sync::watch::channel(NonZeroU32::new(1_000));
        let mut pacer = Pacer::new(NonZeroU32::new(5), Some(rx));
        // The live value wins over the configured one from the start.
        assert_eq!(pacer.rate, NonZeroU32::new(1_000));
        pacer.sent_one();
        pacer.sent_one();
        assert_eq!(pacer.sent, 2);
        pacer.follow();
        assert_eq!((pacer.rate, pacer.sent), (NonZeroU32::new(1_000), 2));
        tx.send(None).unwrap();
        pacer.follow();
        assert_eq!((pacer.rate, pacer.sent), (None, 0));
        let fixed = Pacer::new(NonZeroU32::new(7), None);
        assert_eq!(fixed.rate, NonZeroU32::new(7));
    }
}
