//! Retry timing: capped exponential backoff with full jitter, bounded by an attempt budget
//! and by the invocation's deadline minus a safety margin. Pure functions of their inputs.

use std::time::{Duration, Instant};

pub use crate::config::RetryPolicy;

impl RetryPolicy {
    /// The backoff ceiling before attempt `attempt` (1 = the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max_backoff)
    }

    /// The pause before retry `attempt`: uniformly random in `[0, ceiling]` ("full jitter"),
    /// so that many containers throttled at once do not retry in lockstep. `unit` is a random
    /// number in `[0, 1)`, passed in so this stays a pure function.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The time left for work before `deadline`, after the safety margin; `None` means there
    /// is no deadline (the CLI).
    pub fn time_left(&self, now: Instant, deadline: Option<Instant>) -> Option<Duration> {
        deadline.map(|d| d.saturating_duration_since(now).saturating_sub(self.deadline_margin))
    }

    /// The timeout for an attempt starting at `now`, or `None` if no attempt fits anymore.
    /// An attempt shorter than 100 ms would only fail, so it is not started.
    pub fn attempt_timeout(&self, now: Instant, deadline: Option<Instant>) -> Option<Duration> {
        match self.time_left(now, deadline) {
            None => Some(self.request_timeout),
            Some(left) if left < Duration::from_millis(100) => None,
            Some(left) => Some(left.min(self.request_timeout)),
        }
    }

    /// Whether another attempt may follow `attempts_made`, after sleeping `pause` from `now`.
    pub fn may_retry(&self, attempts_made: u32, pause: Duration, now: Instant, deadline: Option<Instant>) -> bool {
        attempts_made < self.max_attempts
            && self
                .time_left(now, deadline)
                .is_none_or(|left| left > pause + Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_attempts: 6,
            deadline_margin: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn ceilings_double_then_cap() {
        let p = policy();
        let ms: Vec<u128> = (1..=8).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ms, vec![200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let p = policy();
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(p.backoff(3, 7.0), Duration::from_millis(800), "clamped");
    }

    #[test]
    fn the_deadline_bounds_attempts_and_pauses() {
        let p = policy();
        let now = Instant::now();
        assert_eq!(p.attempt_timeout(now, None), Some(Duration::from_secs(30)));
        let deadline = now + Duration::from_secs(12);
        assert_eq!(p.attempt_timeout(now, Some(deadline)), Some(Duration::from_secs(10)));
        assert_eq!(p.attempt_timeout(now, Some(now + Duration::from_millis(2050))), None);
        assert!(p.may_retry(1, Duration::from_secs(1), now, Some(deadline)));
        assert!(
            !p.may_retry(1, Duration::from_secs(10), now, Some(deadline)),
            "pause would cross the margin"
        );
        assert!(!p.may_retry(6, Duration::ZERO, now, None), "attempt budget spent");
        assert!(p.may_retry(5, Duration::ZERO, now, None));
    }
}
