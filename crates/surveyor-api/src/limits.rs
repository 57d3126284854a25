//! Per-token request rates: one token's burst (a dashboard left open, a script in a loop)
//! cannot starve the API for everyone else.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ApiError;

/// The key requests without a token share (public aggregates): token ids are positive.
const ANONYMOUS: i64 = -1;

/// A generic cell rate per token, `None` when unlimited.
pub(crate) struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
}

impl RateLimits {
    /// `per_minute` requests per token and minute, with a burst of a tenth of that (at least
    /// one), so a dashboard's handful of parallel requests passes and a loop does not.
    pub(crate) fn new(per_minute: Option<NonZeroU32>) -> RateLimits {
        let limiter = per_minute.map(|rate| {
            let burst = NonZeroU32::new(rate.get() / 10).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        RateLimits { limiter }
    }

    /// Counts one request of `token` (`None`: no token); past the rate, a 429 that says when
    /// to come back.
    pub(crate) fn check(&self, token: Option<i64>) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&token.unwrap_or(ANONYMOUS))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                // Whole seconds, rounded up: Retry-After has no fractions.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::TooManyRequests(Duration::from_secs(seconds.max(1)))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_past_its_burst_waits_and_others_do_not() {
        let limits = RateLimits::new(NonZeroU32::new(60));
        // 60 a minute: a burst of 6, then one a second.
        for _ in 0..6 {
            limits.check(Some(1)).unwrap();
        }
        match limits.check(Some(1)) {
            Err(ApiError::TooManyRequests(wait)) => assert_eq!(wait, Duration::from_secs(1)),
            other => panic!("expected 429, got {other:?}"),
        }
        limits.check(Some(2)).unwrap();
        limits.check(None).unwrap();
    }

    #[test]
    fn no_rate_is_no_limit() {
        let limits = RateLimits::new(None);
        for _ in 0..10_000 {
            limits.check(Some(1)).unwrap();
        }
    }
}
