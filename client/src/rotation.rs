//! The one rotation rule, shared by the Kubernetes operator and the Terraform provider.
//!
//! A token issued at `t0` that expires at `t1` is due for renewal at
//! `t1 - renew_before`. `renew_before` is either a duration (`"240h"`) or a
//! percentage of the lifetime (`"33%"`: renew when a third of the lifetime is
//! left). Without one, a token is renewed when one third of its lifetime is
//! left, i.e. at `t0 + 2/3 · (t1 - t0)`.
//!
//! # No hot loops
//!
//! A `renew_before` that is at least as long as the lifetime would make a
//! freshly issued token due at once, and every regeneration would be followed
//! by another. Such a setting (and a percentage outside `(0, 100)`, which
//! [`RenewBefore::from_str`](std::str::FromStr) already rejects) is ignored and
//! the default rule applies instead. A `renew_before` just below the lifetime
//! is honoured as written, so it rotates (correctly, but) often.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use tokenops_client::rotation::{renewal_time, RenewBefore};
//!
//! let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
//! let t1 = Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap(); // 30 days
//! let ten_days: RenewBefore = "240h".parse().unwrap();
//! assert_eq!(renewal_time(t0, t1, Some(&ten_days)), Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap());
//! // Default: a third of the lifetime left.
//! assert_eq!(renewal_time(t0, t1, None), Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Token, format_duration, parse_duration};

/// How long before expiry a token is renewed: a fixed duration or a share of its lifetime.
///
/// Parses from and prints as the strings users write (`"240h"`, `"33%"`), and
/// (de)serialises as that string.
///
/// ```
/// use std::time::Duration;
/// use tokenops_client::rotation::RenewBefore;
///
/// let d: RenewBefore = "240h".parse().unwrap();
/// assert_eq!(d, RenewBefore::Duration(Duration::from_secs(240 * 3600)));
/// let p: RenewBefore = "33%".parse().unwrap();
/// assert_eq!(p, RenewBefore::Percentage(33.0));
/// assert_eq!(p.to_string(), "33%");
/// assert!("100%".parse::<RenewBefore>().is_err());
/// assert!("0%".parse::<RenewBefore>().is_err());
/// assert!("soon".parse::<RenewBefore>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    /// Renew this long before expiry.
    Duration(Duration),
    /// Renew when this percentage of the lifetime is left; valid in `(0, 100)`.
    Percentage(f64),
}

/// Why a `renew_before` string was rejected.
///
/// ```
/// use tokenops_client::rotation::{RenewBefore, RenewBeforeError};
/// assert_eq!("120%".parse::<RenewBefore>(), Err(RenewBeforeError::Percentage));
/// assert!(matches!("ten days".parse::<RenewBefore>(), Err(RenewBeforeError::Duration(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewBeforeError {
    /// Not a percentage, and not a valid duration either.
    #[error("invalid renew-before duration: {0}")]
    Duration(#[from] crate::DurationError),
    /// A percentage that is not a number in `(0, 100)`.
    #[error(
        "renew-before percentage must be a number greater than 0 and less than 100, e.g. \"33%\""
    )]
    Percentage,
}

impl RenewBefore {
    /// A percentage of the lifetime, checked to lie in `(0, 100)`.
    ///
    /// ```
    /// use tokenops_client::rotation::RenewBefore;
    /// assert!(RenewBefore::percentage(25.0).is_ok());
    /// assert!(RenewBefore::percentage(100.0).is_err());
    /// assert!(RenewBefore::percentage(f64::NAN).is_err());
    /// ```
    pub fn percentage(p: f64) -> Result<Self, RenewBeforeError> {
        if valid_percentage(p) {
            Ok(RenewBefore::Percentage(p))
        } else {
            Err(RenewBeforeError::Percentage)
        }
    }

    /// How long before expiry this asks to renew a token with the given lifetime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokenops_client::rotation::RenewBefore;
    /// let day = Duration::from_secs(86_400);
    /// assert_eq!(RenewBefore::Percentage(25.0).lead_time(day * 4), day);
    /// assert_eq!(RenewBefore::Duration(day).lead_time(day * 4), day);
    /// ```
    pub fn lead_time(&self, lifetime: Duration) -> Duration {
        match *self {
            RenewBefore::Duration(d) => d,
            RenewBefore::Percentage(p) => lifetime.mul_f64(p.clamp(0.0, 100.0) / 100.0),
        }
    }
}

fn valid_percentage(p: f64) -> bool {
    p.is_finite() && p > 0.0 && p < 100.0
}

impl FromStr for RenewBefore {
    type Err = RenewBeforeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(number) => {
                let p: f64 = number
                    .trim()
                    .parse()
                    .map_err(|_| RenewBeforeError::Percentage)?;
                RenewBefore::percentage(p)
            }
            None => Ok(RenewBefore::Duration(parse_duration(s)?)),
        }
    }
}

impl fmt::Display for RenewBefore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewBefore::Duration(d) => f.write_str(&format_duration(*d)),
            RenewBefore::Percentage(p) => write!(f, "{p}%"),
        }
    }
}

impl serde::Serialize for RenewBefore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RenewBefore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// When a token issued at `issued_at` and expiring at `expires_at` is due for renewal.
///
/// * With `renew_before` a duration `d`: `expires_at - d`.
/// * With a percentage `p`: `expires_at - p/100 · lifetime`.
/// * Without one — or when it is unusable: at least as long as the lifetime,
///   or a percentage outside `(0, 100)` — the default: `issued_at + 2/3 · lifetime`.
///
/// The result always lies in `[issued_at, expires_at]`. A token whose expiry
/// is not after its issue time is due at `expires_at`.
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use tokenops_client::rotation::{renewal_time, RenewBefore};
///
/// let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let t1 = t0 + TimeDelta::hours(90);
/// let at = |rb: &str| renewal_time(t0, t1, Some(&rb.parse::<RenewBefore>().unwrap()));
/// assert_eq!(at("30h"), t0 + TimeDelta::hours(60));
/// assert_eq!(at("10%"), t0 + TimeDelta::hours(81));
/// // Longer than the lifetime: ignored, the default (2/3) applies.
/// assert_eq!(at("100h"), t0 + TimeDelta::hours(60));
/// ```
pub fn renewal_time(
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    renew_before: Option<&RenewBefore>,
) -> DateTime<Utc> {
    let lifetime = expires_at - issued_at;
    if lifetime <= TimeDelta::zero() {
        return expires_at;
    }
    let lead = match renew_before {
        Some(RenewBefore::Duration(d)) => {
            TimeDelta::from_std(*d).ok().filter(|lead| *lead < lifetime)
        }
        Some(RenewBefore::Percentage(p)) if valid_percentage(*p) => {
            // Millisecond precision is plenty for rotation. Rounding down and the
            // filter keep a percentage just under 100 from landing on `issued_at`.
            let ms = (lifetime.num_milliseconds() as f64 * p / 100.0).floor() as i64;
            Some(TimeDelta::milliseconds(ms)).filter(|lead| *lead < lifetime)
        }
        Some(RenewBefore::Percentage(_)) | None => None,
    };
    match lead {
        Some(lead) => expires_at - lead,
        None => issued_at + default_offset(lifetime),
    }
}

/// Two thirds of the lifetime, computed without overflow for any realistic lifetime.
fn default_offset(lifetime: TimeDelta) -> TimeDelta {
    let ms = lifetime.num_milliseconds();
    TimeDelta::milliseconds(ms / 3 * 2 + (ms % 3) * 2 / 3)
}

/// Whether a token is due for renewal at `now` (`now ≥ renewal_time(…)`).
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use tokenops_client::rotation::is_due;
///
/// let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let t1 = t0 + TimeDelta::days(30);
/// assert!(!is_due(t0 + TimeDelta::days(19), t0, t1, None));
/// assert!(is_due(t0 + TimeDelta::days(20), t0, t1, None));
/// ```
pub fn is_due(
    now: DateTime<Utc>,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    renew_before: Option<&RenewBefore>,
) -> bool {
    now >= renewal_time(issued_at, expires_at, renew_before)
}

/// How long from `now` until renewal is due; zero when it already is. This is
/// what an operator requeues with.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use tokenops_client::rotation::time_until_renewal;
///
/// let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// let t1 = t0 + TimeDelta::hours(3);
/// assert_eq!(time_until_renewal(t0, t0, t1, None), Duration::from_secs(2 * 3600));
/// assert_eq!(time_until_renewal(t1, t0, t1, None), Duration::ZERO);
/// ```
pub fn time_until_renewal(
    now: DateTime<Utc>,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    renew_before: Option<&RenewBefore>,
) -> Duration {
    (renewal_time(issued_at, expires_at, renew_before) - now)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// When the current value of `token` was issued: its last regeneration, or its creation.
///
/// ```
/// # let token: tokenops_client::Token = serde_json::from_value(serde_json::json!({
/// #   "id": "tok_1", "project": "default", "name": "n", "status": "active", "masked": "tko_…abcd",
/// #   "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "generation": 0 })).unwrap();
/// use tokenops_client::rotation::issued_at;
/// assert_eq!(issued_at(&token), token.created_at);
/// ```
pub fn issued_at(token: &Token) -> DateTime<Utc> {
    token.regenerated_at.unwrap_or(token.created_at)
}

/// The renewal time of a token as the API returns it; `None` when it never expires.
///
/// ```
/// # let token: tokenops_client::Token = serde_json::from_value(serde_json::json!({
/// #   "id": "tok_1", "project": "default", "name": "n", "status": "active", "masked": "tko_…abcd",
/// #   "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
/// #   "expires_at": "2026-01-31T00:00:00Z", "generation": 0 })).unwrap();
/// use chrono::{TimeZone, Utc};
/// use tokenops_client::rotation::token_renewal_time;
/// assert_eq!(token_renewal_time(&token, None), Some(Utc.with_ymd_and_hms(2026, 1, 21, 0, 0, 0).unwrap()));
/// ```
pub fn token_renewal_time(
    token: &Token,
    renew_before: Option<&RenewBefore>,
) -> Option<DateTime<Utc>> {
    token
        .expires_at
        .map(|t1| renewal_time(issued_at(token), t1, renew_before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    #[test]
    fn parses_and_prints_both_forms() {
        for text in ["240h", "1h30m", "33%", "12.5%", "0s"] {
            let rb: RenewBefore = text.parse().unwrap();
            assert_eq!(rb.to_string(), text);
        }
        assert_eq!(
            " 10 % ".parse::<RenewBefore>().unwrap(),
            RenewBefore::Percentage(10.0)
        );
        assert_eq!("7d".parse::<RenewBefore>().unwrap().to_string(), "168h");
        for bad in [
            "", "%", "0%", "100%", "150%", "-5%", "abc%", "NaN%", "inf%", "5 days", "-1h",
        ] {
            assert!(
                bad.parse::<RenewBefore>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let rb: RenewBefore = serde_json::from_str("\"25%\"").unwrap();
        assert_eq!(rb, RenewBefore::Percentage(25.0));
        assert_eq!(serde_json::to_string(&rb).unwrap(), "\"25%\"");
        let rb: RenewBefore = serde_json::from_str("\"48h\"").unwrap();
        assert_eq!(serde_json::to_string(&rb).unwrap(), "\"48h\"");
        assert!(serde_json::from_str::<RenewBefore>("\"200%\"").is_err());
        assert!(serde_json::from_str::<RenewBefore>("33").is_err());
    }

    #[test]
    fn default_is_two_thirds_of_the_lifetime() {
        let t1 = t0() + TimeDelta::days(30);
        assert_eq!(renewal_time(t0(), t1, None), t0() + TimeDelta::days(20));
        // Lifetimes not divisible by three stay within a millisecond of 2/3.
        let t1 = t0() + TimeDelta::milliseconds(1000);
        assert_eq!(
            renewal_time(t0(), t1, None),
            t0() + TimeDelta::milliseconds(666)
        );
    }

    #[test]
    fn renew_before_at_or_beyond_the_lifetime_falls_back_to_the_default() {
        let t1 = t0() + TimeDelta::hours(24);
        let default = renewal_time(t0(), t1, None);
        for rb in ["24h", "25h", "8760h"] {
            let rb: RenewBefore = rb.parse().unwrap();
            assert_eq!(renewal_time(t0(), t1, Some(&rb)), default, "{rb}");
        }
        // Percentages built by hand outside (0, 100) are ignored the same way.
        for p in [0.0, 100.0, 250.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                renewal_time(t0(), t1, Some(&RenewBefore::Percentage(p))),
                default,
                "{p}"
            );
        }
        // After a regeneration the next renewal is again two thirds in: no hot loop.
        let rb: RenewBefore = "48h".parse().unwrap();
        let renew_at = renewal_time(t0(), t1, Some(&rb));
        let t1b = renew_at + TimeDelta::hours(24);
        assert_eq!(
            renewal_time(renew_at, t1b, Some(&rb)),
            renew_at + TimeDelta::hours(16)
        );
    }

    #[test]
    fn zero_renew_before_means_at_expiry() {
        let t1 = t0() + TimeDelta::hours(24);
        let rb: RenewBefore = "0s".parse().unwrap();
        assert_eq!(renewal_time(t0(), t1, Some(&rb)), t1);
    }

    #[test]
    fn expired_or_inverted_tokens_are_due_at_expiry() {
        let t1 = t0() - TimeDelta::hours(1);
        assert_eq!(renewal_time(t0(), t1, None), t1);
        assert_eq!(renewal_time(t0(), t0(), None), t0());
        assert!(is_due(t0(), t0(), t1, None));
    }

    #[test]
    fn time_until_renewal_counts_down_to_zero() {
        let t1 = t0() + TimeDelta::hours(30);
        let rb: RenewBefore = "10h".parse().unwrap();
        assert_eq!(
            time_until_renewal(t0(), t0(), t1, Some(&rb)),
            Duration::from_secs(20 * 3600)
        );
        assert_eq!(
            time_until_renewal(t0() + TimeDelta::hours(19), t0(), t1, Some(&rb)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            time_until_renewal(t0() + TimeDelta::hours(21), t0(), t1, Some(&rb)),
            Duration::ZERO
        );
    }

    fn renew_before() -> impl Strategy<Value = Option<RenewBefore>> {
        prop_oneof![
            Just(None),
            (0u64..10_000_000).prop_map(|s| Some(RenewBefore::Duration(Duration::from_secs(s)))),
            (1u32..9_999).prop_map(|p| Some(RenewBefore::Percentage(f64::from(p) / 100.0))),
            any::<f64>().prop_map(|p| Some(RenewBefore::Percentage(p))),
        ]
    }

    proptest! {
        #[test]
        fn renewal_lies_within_the_lifetime(
            start in 0i64..4_000_000_000,
            lifetime_s in 1i64..100_000_000,
            rb in renew_before(),
        ) {
            let t0 = DateTime::from_timestamp(start, 0).unwrap();
            let t1 = t0 + TimeDelta::seconds(lifetime_s);
            let r = renewal_time(t0, t1, rb.as_ref());
            prop_assert!(t0 <= r && r <= t1, "{r} not in [{t0}, {t1}]");
        }

        #[test]
        fn a_fresh_token_is_never_due_at_once(
            lifetime_s in 2i64..100_000_000,
            rb in renew_before(),
        ) {
            // The hot-loop guard: right after issue nothing is due, whatever renew_before says.
            let t1 = t0() + TimeDelta::seconds(lifetime_s);
            prop_assert!(!is_due(t0(), t0(), t1, rb.as_ref()));
        }

        #[test]
        fn longer_duration_renews_no_later(
            lifetime_s in 1i64..100_000_000,
            a in 0u64..100_000_000,
            b in 0u64..100_000_000,
        ) {
            let (small, large) = (a.min(b), a.max(b));
            prop_assume!((large as i64) < lifetime_s);
            let t1 = t0() + TimeDelta::seconds(lifetime_s);
            let early = renewal_time(t0(), t1, Some(&RenewBefore::Duration(Duration::from_secs(large))));
            let late = renewal_time(t0(), t1, Some(&RenewBefore::Duration(Duration::from_secs(small))));
            prop_assert!(early <= late);
            prop_assert_eq!(t1 - late, TimeDelta::seconds(small as i64));
        }

        #[test]
        fn larger_percentage_renews_no_later(
            lifetime_s in 1i64..100_000_000,
            a in 1u32..10_000,
            b in 1u32..10_000,
        ) {
            let (small, large) = (a.min(b), a.max(b));
            prop_assume!(large < 10_000);
            let t1 = t0() + TimeDelta::seconds(lifetime_s);
            let at = |p: u32| renewal_time(t0(), t1, Some(&RenewBefore::Percentage(f64::from(p) / 100.0)));
            prop_assert!(at(large) <= at(small));
        }

        #[test]
        fn display_then_parse_is_identity(rb in renew_before()) {
            if let Some(rb) = rb {
                match rb.to_string().parse::<RenewBefore>() {
                    Ok(back) => prop_assert_eq!(back, rb),
                    // Only hand-built invalid percentages fail to round-trip.
                    Err(_) => prop_assert!(matches!(rb, RenewBefore::Percentage(p) if !valid_percentage(p))),
                }
            }
        }

        #[test]
        fn due_exactly_from_the_renewal_time_on(
            lifetime_s in 3i64..100_000_000,
            offset_s in 0i64..100_000_000,
            rb in renew_before(),
        ) {
            let t1 = t0() + TimeDelta::seconds(lifetime_s);
            let r = renewal_time(t0(), t1, rb.as_ref());
            let now = t0() + TimeDelta::seconds(offset_s);
            prop_assert_eq!(is_due(now, t0(), t1, rb.as_ref()), now >= r);
        }
    }
}
