//! The one retry policy of the client.
//!
//! A call is repeated after a `429` (waiting at least as long as the server's
//! `Retry-After`), after `502`/`503`/`504`, and after a transport failure
//! (connection refused or reset, a response lost mid-way, a timeout). Between
//! attempts the client waits an exponentially growing, fully jittered delay:
//! a uniformly random duration in `[0, min(max_backoff, initial_backoff · 2ⁿ)]`
//! for the n-th retry, so that many clients failing together do not come back
//! together.
//!
//! Every endpoint of the API is safe to repeat: reads, `verify` and `whoami`
//! are free of side effects; `PATCH`, revoke, bulk revoke and delete reach the
//! same end state when repeated (a `404` on a *repeated* delete counts as
//! success); create and regenerate carry an `Idempotency-Key` that the server
//! uses to recognise the repetition of one logical call.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently the client repeats a failed call.
///
/// ```
/// use std::time::Duration;
/// use tokenops_client::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_retries(5)
///     .initial_backoff(Duration::from_millis(50))
///     .max_backoff(Duration::from_secs(2));
/// assert_eq!(policy.get_max_retries(), 5);
/// assert_eq!(RetryPolicy::none().get_max_retries(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Three retries, starting at 100 ms, at most 5 s apart; a `Retry-After`
    /// longer than 60 s is not waited for (the call fails with `RateLimited`).
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries: each call is made once.
    ///
    /// ```
    /// use tokenops_client::RetryPolicy;
    /// assert_eq!(RetryPolicy::none().get_max_retries(), 0);
    /// ```
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// How many times a call is repeated after its first attempt.
    ///
    /// ```
    /// use tokenops_client::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().max_retries(1).get_max_retries(), 1);
    /// ```
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The ceiling of the delay before the first retry; it doubles with each retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::RetryPolicy;
    /// let p = RetryPolicy::default().initial_backoff(Duration::from_millis(10));
    /// assert_eq!(p.backoff_ceiling(0), Duration::from_millis(10));
    /// assert_eq!(p.backoff_ceiling(2), Duration::from_millis(40));
    /// ```
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The largest delay between two attempts (not counting a longer `Retry-After`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::RetryPolicy;
    /// let p = RetryPolicy::default().max_backoff(Duration::from_millis(150));
    /// assert_eq!(p.backoff_ceiling(10), Duration::from_millis(150));
    /// ```
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// The longest `Retry-After` the client is willing to wait for; a server
    /// asking for more makes the call fail at once with
    /// [`Error::RateLimited`](crate::Error::RateLimited), so the caller can decide.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::RetryPolicy;
    /// let p = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
    /// assert!(p.delay(0, Some(Duration::from_secs(10)), &mut rand::rng()).is_none());
    /// ```
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// The configured number of retries.
    ///
    /// ```
    /// use tokenops_client::RetryPolicy;
    /// assert_eq!(RetryPolicy::default().get_max_retries(), 3);
    /// ```
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The upper bound of the jittered delay before retry number `retry` (0-based):
    /// `min(max_backoff, initial_backoff · 2^retry)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::RetryPolicy;
    /// let p = RetryPolicy::default(); // 100 ms, capped at 5 s
    /// assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
    /// assert_eq!(p.backoff_ceiling(3), Duration::from_millis(800));
    /// assert_eq!(p.backoff_ceiling(30), Duration::from_secs(5));
    /// ```
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }

    /// How long to wait before retry number `retry` (0-based), or `None` when
    /// the policy gives up: the retries are used up, or the server's
    /// `Retry-After` exceeds [`max_retry_after`](Self::max_retry_after).
    ///
    /// The delay is full jitter — uniform in `[0, backoff_ceiling(retry)]` — and
    /// never shorter than `retry_after` when the server sent one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::RetryPolicy;
    /// let p = RetryPolicy::default();
    /// let mut rng = rand::rng();
    /// let d = p.delay(1, None, &mut rng).unwrap();
    /// assert!(d <= Duration::from_millis(200));
    /// let d = p.delay(0, Some(Duration::from_secs(1)), &mut rng).unwrap();
    /// assert!(d >= Duration::from_secs(1));
    /// assert!(p.delay(3, None, &mut rng).is_none());
    /// ```
    pub fn delay<R: Rng + ?Sized>(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        if retry_after.is_some_and(|ra| ra > self.max_retry_after) {
            return None;
        }
        let ceiling = self.backoff_ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.random_range(0..=nanos));
        Some(match retry_after {
            Some(ra) => jittered.max(ra),
            None => jittered,
        })
    }
}

/// Whether a response status is worth another attempt: 429 and the gateway
/// and availability errors 502, 503, 504. A 500 is not: it is a server bug
/// that a repetition would most likely hit again.
///
/// ```
/// use tokenops_client::retry::is_retryable_status;
/// assert!(is_retryable_status(503));
/// assert!(!is_retryable_status(500));
/// assert!(!is_retryable_status(404));
/// ```
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Parses a `Retry-After` header value: delay seconds (`"3"`) or an HTTP date,
/// measured from `now`. A date in the past means "now" (zero).
///
/// ```
/// use std::time::Duration;
/// use tokenops_client::retry::parse_retry_after;
/// let now = chrono::Utc::now();
/// assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1));
        let ceilings: Vec<_> = (0..6).map(|n| p.backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        // Huge retry numbers neither overflow nor panic.
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn gives_up_after_max_retries() {
        let p = RetryPolicy::default().max_retries(2);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert!(p.delay(0, None, &mut rng).is_some());
        assert!(p.delay(1, None, &mut rng).is_some());
        assert!(p.delay(2, None, &mut rng).is_none());
        assert!(RetryPolicy::none().delay(0, None, &mut rng).is_none());
    }

    #[test]
    fn a_long_retry_after_is_not_waited_for() {
        let p = RetryPolicy::default().max_retry_after(Duration::from_secs(10));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(10)), &mut rng)
                .map(|d| d >= Duration::from_secs(10)),
            Some(true)
        );
        assert!(
            p.delay(0, Some(Duration::from_secs(11)), &mut rng)
                .is_none()
        );
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        // Full jitter: over many draws we see both small and large delays.
        let p = RetryPolicy::default().initial_backoff(Duration::from_millis(1000));
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let draws: Vec<_> = (0..200)
            .map(|_| p.delay(0, None, &mut rng).unwrap())
            .collect();
        assert!(draws.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(750)));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [429, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 422, 500, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    proptest! {
        #[test]
        fn delay_stays_within_the_jitter_window(
            retry in 0u32..40,
            initial_ms in 1u64..10_000,
            max_ms in 1u64..100_000,
            seed in any::<u64>(),
        ) {
            let p = RetryPolicy::default()
                .max_retries(100)
                .initial_backoff(Duration::from_millis(initial_ms))
                .max_backoff(Duration::from_millis(max_ms));
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d = p.delay(retry, None, &mut rng).unwrap();
            prop_assert!(d <= p.backoff_ceiling(retry));
            prop_assert!(p.backoff_ceiling(retry) <= Duration::from_millis(max_ms));
        }

        #[test]
        fn ceiling_never_shrinks(retry in 0u32..64, initial_ms in 0u64..10_000, max_ms in 0u64..100_000) {
            let p = RetryPolicy::default()
                .initial_backoff(Duration::from_millis(initial_ms))
                .max_backoff(Duration::from_millis(max_ms));
            prop_assert!(p.backoff_ceiling(retry) <= p.backoff_ceiling(retry + 1));
        }

        #[test]
        fn retry_after_is_a_floor(retry in 0u32..3, ra_ms in 0u64..60_000, seed in any::<u64>()) {
            let p = RetryPolicy::default();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let ra = Duration::from_millis(ra_ms);
            let d = p.delay(retry, Some(ra), &mut rng).unwrap();
            prop_assert!(d >= ra);
            prop_assert!(d <= ra.max(p.backoff_ceiling(retry)));
        }
    }
}
