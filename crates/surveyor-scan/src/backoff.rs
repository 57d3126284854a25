//! Back-off for destination networks that error: after a run of consecutive connect
//! timeouts or unreachable errors into one network, new targets there wait, for a pause that
//! doubles with each further run, up to a ceiling. Any answer (even a refusal) resets it.
//! A network that drops our SYNs is overloaded, filtering us, or gone; pressing on hurts it
//! and wastes the window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When and how long to back off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive errors into one network before it is paused.
    pub after: u32,
    /// The first pause; each further run of errors doubles it.
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

#[derive(Debug)]
struct Health {
    errors: u32,
    paused_until: Instant,
}

/// Per-network error runs. Only networks that have erred have an entry.
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
        let until = state.get(&network)?.paused_until;
        (until > now).then_some(until)
    }

    /// Records an error into `network` at `now`; pauses it when a run is complete.
    pub(crate) fn error(&self, network: u128, now: Instant) {
        let mut state = self.lock();
        let health = state.entry(network).or_insert(Health {
            errors: 0,
            paused_until: now,
        });
        health.errors = health.errors.saturating_add(1);
        if self.policy.after > 0 && health.errors.is_multiple_of(self.policy.after) {
            let runs = health.errors / self.policy.after;
            let factor = 1u32.checked_shl(runs - 1).unwrap_or(u32::MAX);
            let pause = self
                .policy
                .first
                .saturating_mul(factor)
                .min(self.policy.max);
            health.paused_until = now + pause;
            tracing::debug!(network, errors = health.errors, ?pause, "backing off");
        }
    }

    /// Records an answer from `network`: it is healthy again.
    pub(crate) fn answered(&self, network: u128) {
        let mut state = self.lock();
        if !state.is_empty() {
            state.remove(&network);
        }
    }

    /// Forgets networks whose last pause ended long ago, so the map stays bounded by the
    /// networks erring recently.
    pub(crate) fn forget_stale(&self, now: Instant) {
        let horizon = now.checked_sub(self.policy.max).unwrap_or(now);
        self.lock().retain(|_, h| h.paused_until > horizon);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Health>> {
        // The map holds counters only; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            after: 3,
            first: Duration::from_secs(1),
            max: Duration::from_secs(4),
        }
    }

    #[test]
    fn a_run_of_errors_pauses_and_the_pause_doubles_to_the_ceiling() {
        let now = Instant::now();
        let pause_after = |n: u32| {
            let nets = Networks::new(policy());
            for _ in 0..n {
                nets.error(7, now);
            }
            nets.paused_until(7, now).map(|t| t - now)
        };
        assert_eq!(pause_after(2), None);
        assert_eq!(pause_after(3), Some(Duration::from_secs(1)));
        assert_eq!(pause_after(6), Some(Duration::from_secs(2)));
        assert_eq!(pause_after(9), Some(Duration::from_secs(4)));
        assert_eq!(pause_after(30), Some(Duration::from_secs(4)));

        let nets = Networks::new(policy());
        for _ in 0..3 {
            nets.error(7, now);
        }
        assert!(nets.paused_until(7, now).is_some());
        assert_eq!(
            nets.paused_until(8, now),
            None,
            "other networks are not touched"
        );
        let later = now + Duration::from_secs(1);
        assert_eq!(nets.paused_until(7, later), None, "the pause ends");
    }

    #[test]
    fn an_answer_resets_the_run_and_stale_networks_are_forgotten() {
        let now = Instant::now();
        let nets = Networks::new(policy());
        nets.error(1, now);
        nets.error(1, now);
        nets.answered(1);
        nets.error(1, now);
        assert_eq!(nets.paused_until(1, now), None, "the run restarted");
        for _ in 0..2 {
            nets.error(1, now);
        }
        assert!(nets.paused_until(1, now).is_some());
        nets.forget_stale(now + Duration::from_secs(3));
        assert_eq!(nets.lock().len(), 1, "paused recently: kept");
        nets.forget_stale(now + Duration::from_secs(10));
        assert!(nets.lock().is_empty());
    }

    #[test]
    fn zero_disables() {
        let now = Instant::now();
        let nets = Networks::new(Backoff {
            after: 0,
            ..policy()
        });
        for _ in 0..100 {
            nets.error(1, now);
        }
        assert_eq!(nets.paused_until(1, now), None);
    }
}
