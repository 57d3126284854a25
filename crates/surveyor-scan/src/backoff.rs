//! Back-off for destination networks that answered and then start failing, and the queue where
//! targets wait out a pause (or a rate limit) without holding a slot of the probe window.
//!
//! Silence is the normal state of the Internet: most addresses never answer, and a connect
//! timeout into a network that never answered says nothing about that network's health. What
//! does is a network that answered and then fails: connections reset before a byte, TLS
//! handshakes cut off, hosts that connect and then go quiet, or connect timeouts where nearly
//! every target had answered (a network that went dark on us). After a run of such failures new targets there wait, for a pause that
//! doubles with each further run, up to a ceiling; any answer (even a refusal) ends it.
//! Pressing on would hurt an overloaded network and waste our own time on a filtering one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::targets::Target;

/// When and how long to back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failures into one network before it is paused (0: never).
    pub after: u32,
    /// The first pause; each further run of failures doubles it.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            after: 8,
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// What one probe told about its destination network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The network is there and speaking: a connection, or a refusal.
    Answered,
    /// Nothing came back (connect timeout, unreachable): the Internet's usual answer, a
    /// failure only where nearly every target answered.
    Silent,
    /// A connection that failed after the network answered: reset or closed before a byte, a
    /// TLS handshake cut off, a host that went quiet mid-way.
    Failed,
}

#[derive(Debug)]
struct Health {
    /// Answers since the network was first heard.
    answers: u32,
    /// Silent targets since then.
    silences: u32,
    /// The current run of failures.
    failures: u32,
    /// Set while (and after) a pause; an answer clears it.
    paused_until: Option<Instant>,
    /// The last outcome, for forgetting quiet networks.
    touched: Instant,
}

/// Per-network records. Only networks that answered or failed have one: a sweep of dark space
/// leaves this map empty.
#[derive(Debug)]
pub(crate) struct Networks {
    policy: Backoff,
    state: Mutex<HashMap<u128, Health>>,
}

impl Networks {
    pub(crate) fn new(policy: Backoff) -> Networks {
        Networks {
            policy,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Until when a new target into `network` must wait, if it must.
    pub(crate) fn paused_until(&self, network: u128, now: Instant) -> Option<Instant> {
        let state = self.lock();
        state
            .get(&network)?
            .paused_until
            .filter(|&until| until > now)
    }

    /// Records what a probe into `network` found at `now`; pauses the network when a run of
    /// failures is complete.
    pub(crate) fn record(&self, network: u128, outcome: Outcome, now: Instant) {
        let mut state = self.lock();
        let health = match (outcome, state.get_mut(&network)) {
            // Never heard from: silence is no news.
            (Outcome::Silent, None) => return,
            (_, Some(health)) => health,
            (_, None) => state.entry(network).or_insert(Health {
                answers: 0,
                silences: 0,
                failures: 0,
                paused_until: None,
                touched: now,
            }),
        };
        health.touched = now;
        let failed = match outcome {
            Outcome::Answered => {
                health.answers = health.answers.saturating_add(1);
                health.failures = 0;
                // Not `now`: a probe finishing on another thread must not pause the network
                // until an instant the engine has not reached yet.
                health.paused_until = None;
                false
            }
            Outcome::Failed => true,
            Outcome::Silent => {
                health.silences = health.silences.saturating_add(1);
                // Where nearly every target answered (7 of 8), silence is news. Where many
                // were silent (a few servers among dark addresses, or a dense network's
                // gaps) it is not: a run of silence there is chance, not a failure.
                health.silences.saturating_mul(SILENCE_NEWS) <= health.answers
            }
        };
        if !failed || self.policy.after == 0 {
            return;
        }
        health.failures = health.failures.saturating_add(1);
        if health.failures.is_multiple_of(self.policy.after) {
            let runs = health.failures / self.policy.after;
            let factor = 1u32.checked_shl(runs - 1).unwrap_or(u32::MAX);
            let pause = self
                .policy
                .first
                .saturating_mul(factor)
                .min(self.policy.max);
            health.paused_until = Some(now + pause);
            tracing::debug!(network, failures = health.failures, ?pause, "backing off");
        }
    }

    /// Forgets networks not heard from for a while and not paused, so that the map stays
    /// bounded by the networks probed recently. A network forgotten starts afresh: its
    /// silences are no news until it answers again.
    pub(crate) fn forget_stale(&self, now: Instant) {
        let horizon = now
            .checked_sub(self.policy.max.max(FORGET_AFTER))
            .unwrap_or(now);
        self.lock()
            .retain(|_, h| h.touched > horizon || h.paused_until.is_some_and(|u| u > now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Health>> {
        // The map holds counters only; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A silence counts as a failure while the network's answers are at least this many times
/// its silences: in a network that answered 7 of 8 times, a run of 8 silences by chance has a
/// probability of (1/8)^8, about 6 × 10^-8.
const SILENCE_NEWS: u32 = 7;

/// How long a network's record outlives its last outcome (at least the longest pause).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The smallest capacity of the queue of waiting targets: a waiting target costs a few dozen
/// bytes and no socket, so even a small window may have many waiting behind a paused network.
pub(crate) const DEFERRED_MIN: usize = 4096;

/// Targets taken from the walk that may not be probed yet (their network is paused, or a
/// per-network or per-host rate says not yet), each with the time it may be tried again. They
/// wait here, outside the probe window, so a paused network costs no slot; the engine stops
/// taking new targets while the queue is full, which bounds it.
#[derive(Debug)]
pub(crate) struct Deferred {
    heap: BinaryHeap<Reverse<Waiting>>,
    capacity: usize,
    /// Ties between equal times go in arrival order.
    arrivals: u64,
}

/// One waiting target.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) at: Instant,
    seq: u64,
    pub(crate) position: u128,
    pub(crate) target: Target,
    /// It waited for its network's back-off pause (counted once per target).
    pub(crate) backed_off: bool,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Waiting) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Waiting) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    fn cmp(&self, other: &Waiting) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Deferred {
    pub(crate) fn new(capacity: usize) -> Deferred {
        Deferred {
            heap: BinaryHeap::new(),
            capacity: capacity.max(1),
            arrivals: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.heap.len() >= self.capacity
    }

    /// Puts a target back until `at`.
    pub(crate) fn push(&mut self, at: Instant, position: u128, target: Target, backed_off: bool) {
        self.arrivals += 1;
        self.heap.push(Reverse(Waiting {
            at,
            seq: self.arrivals,
            position,
            target,
            backed_off,
        }));
    }

    /// When the next target may be tried.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|w| w.0.at)
    }

    /// The target whose time came first, if it has come.
    pub(crate) fn pop_ready(&mut self, now: Instant) -> Option<Waiting> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|w| w.0)
    }

    /// Everything still waiting, for a scan that stops.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Waiting> + '_ {
        self.heap.drain().map(|w| w.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Outcome::*;

    fn policy() -> Backoff {
        Backoff {
            after: 3,
            first: Duration::from_secs(1),
            max: Duration::from_secs(4),
        }
    }

    /// The one place tests drive the policy: outcomes into network 7, in order; returns how
    /// long the network is paused after the last one.
    fn pause_after(outcomes: &[Outcome], policy: Backoff) -> Option<Duration> {
        let now = Instant::now();
        let nets = Networks::new(policy);
        for &o in outcomes {
            nets.record(7, o, now);
        }
        nets.paused_until(7, now).map(|t| t - now)
    }

    fn times(outcome: Outcome, n: usize) -> Vec<Outcome> {
        vec![outcome; n]
    }

    #[tokio::test(start_paused = true)]
    async fn silence_alone_never_pauses_and_costs_no_memory() {
        assert_eq!(pause_after(&times(Silent, 10_000), policy()), None);
        let nets = Networks::new(policy());
        let now = Instant::now();
        for network in 0..1_000 {
            nets.record(network, Silent, now);
        }
        assert_eq!(nets.len(), 0, "dark space leaves no records");
    }

    #[tokio::test(start_paused = true)]
    async fn a_network_that_answered_and_then_fails_is_paused_doubling_to_the_ceiling() {
        let answered_then = |outcome, n| [times(Answered, 5), times(outcome, n)].concat();
        assert_eq!(pause_after(&answered_then(Failed, 2), policy()), None);
        assert_eq!(
            pause_after(&answered_then(Failed, 3), policy()),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            pause_after(&answered_then(Failed, 6), policy()),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            pause_after(&answered_then(Failed, 9), policy()),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            pause_after(&answered_then(Failed, 30), policy()),
            Some(Duration::from_secs(4))
        );
        // Resets and aborted handshakes need no earlier answer: they are one.
        assert_eq!(
            pause_after(&times(Failed, 3), policy()),
            Some(Duration::from_secs(1))
        );
        // Timeouts where every target had answered: a network that went dark on us.
        let went_dark = [times(Answered, 60), times(Silent, 3)].concat();
        assert_eq!(
            pause_after(&went_dark, policy()),
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silence_in_a_sparse_or_dense_network_is_no_failure() {
        // One server among dark addresses: after its answer, silence outnumbers answers.
        let sparse = [vec![Answered], times(Silent, 50)].concat();
        assert_eq!(pause_after(&sparse, policy()), None);
        // A few answers, then silence: too few answers for silence to be news.
        let sparse = [times(Answered, 6), times(Silent, 50)].concat();
        assert_eq!(pause_after(&sparse, policy()), None);
        // A dense network (three in five answer) with a run of ten silent addresses: chance.
        let dense: Vec<Outcome> = [Answered, Silent, Answered, Silent, Answered]
            .iter()
            .copied()
            .cycle()
            .take(200)
            .chain(times(Silent, 10))
            .collect();
        assert_eq!(pause_after(&dense, policy()), None);
        // Seven answers in eight, then dark: the silences count.
        let mostly = [times(Answered, 21), times(Silent, 3)].concat();
        assert_eq!(pause_after(&mostly, policy()), Some(Duration::from_secs(1)));
        // Silence does not break a run of failures, an answer does.
        let run = [
            times(Answered, 1),
            times(Failed, 2),
            times(Silent, 40),
            times(Failed, 1),
        ]
        .concat();
        assert_eq!(pause_after(&run, policy()), Some(Duration::from_secs(1)));
        let broken = [times(Failed, 2), vec![Answered], times(Failed, 2)].concat();
        assert_eq!(pause_after(&broken, policy()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_end_in_time_and_by_an_answer_and_only_touch_their_network() {
        let nets = Networks::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            nets.record(7, Failed, start);
        }
        assert!(nets.paused_until(7, start).is_some());
        assert_eq!(nets.paused_until(8, start), None, "other networks go on");
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(nets.paused_until(7, Instant::now()).is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(nets.paused_until(7, Instant::now()), None, "the pause ends");

        for _ in 0..3 {
            nets.record(7, Failed, Instant::now());
        }
        assert!(nets.paused_until(7, Instant::now()).is_some());
        nets.record(7, Answered, Instant::now());
        assert_eq!(
            nets.paused_until(7, Instant::now()),
            None,
            "an answer ends it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_networks_are_forgotten_and_paused_ones_kept() {
        let nets = Networks::new(policy());
        let start = Instant::now();
        nets.record(1, Answered, start);
        nets.record(2, Failed, start);
        tokio::time::advance(FORGET_AFTER - Duration::from_secs(1)).await;
        for _ in 0..3 {
            nets.record(3, Failed, Instant::now());
        }
        nets.forget_stale(Instant::now());
        assert_eq!(nets.len(), 3, "heard from recently: kept");
        tokio::time::advance(Duration::from_secs(2)).await;
        nets.forget_stale(Instant::now());
        assert_eq!(nets.len(), 1, "only the one heard from since");
        // Forgotten, network 1 is a stranger again: its silence is no news.
        for _ in 0..10 {
            nets.record(1, Silent, Instant::now());
        }
        assert_eq!(nets.paused_until(1, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_recorded_after_the_engine_looked_pauses_nothing() {
        let nets = Networks::new(policy());
        let engine_now = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        nets.record(7, Answered, Instant::now());
        assert_eq!(nets.paused_until(7, engine_now), None);
    }

    #[test]
    fn zero_disables() {
        let mut off = policy();
        off.after = 0;
        assert_eq!(pause_after(&times(Failed, 100), off), None);
    }

    fn target(last: u8) -> Target {
        Target {
            ip: std::net::IpAddr::from([127, 0, 0, last]),
            port: 443,
            scheme: surveyor_model::Scheme::Https,
            domain: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deferred_targets_come_back_in_time_order_and_the_queue_is_bounded() {
        let start = Instant::now();
        let mut q = Deferred::new(3);
        q.push(start + Duration::from_secs(2), 0, target(0), true);
        q.push(start + Duration::from_secs(1), 1, target(1), false);
        q.push(start + Duration::from_secs(1), 2, target(2), false);
        assert!(q.is_full());
        assert_eq!(q.next_at(), Some(start + Duration::from_secs(1)));
        assert!(q.pop_ready(start).is_none(), "nothing is due yet");
        tokio::time::advance(Duration::from_secs(1)).await;
        let due: Vec<u128> = std::iter::from_fn(|| q.pop_ready(Instant::now()))
            .map(|w| w.position)
            .collect();
        assert_eq!(due, [1, 2], "due ones, ties in arrival order");
        assert!(!q.is_full());
        tokio::time::advance(Duration::from_secs(1)).await;
        let last = q.pop_ready(Instant::now()).unwrap();
        assert_eq!((last.position, last.backed_off), (0, true));
        assert!(q.is_empty());
        q.push(start, 9, target(9), false);
        assert_eq!(q.drain().map(|w| w.position).collect::<Vec<_>>(), [9]);
        assert!(q.is_empty());
    }
}
