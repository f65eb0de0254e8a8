//! The one duration syntax of tokenops: Go-style strings such as `720h`,
//! `30m`, `1h30m` or `1.5h`, with `d` (24 hours) and `w` (7 days) also accepted.
//!
//! The same parser serves the HTTP API, the `ApiToken` custom resource and the
//! Terraform provider, so a value that is valid in one place is valid in all.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration string was rejected. The message never repeats more than the
/// offending unit, so it is safe to show to a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("expected a number before the unit at position {0}")]
    MissingNumber(usize),
    #[error("missing unit after the number at position {0} (use one of ns, us, ms, s, m, h, d, w)")]
    MissingUnit(usize),
    #[error("unknown unit {0:?} (use one of ns, us, ms, s, m, h, d, w)")]
    UnknownUnit(String),
    #[error("duration is too large")]
    Overflow,
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
];

/// Parses a Go-style duration (`"720h"`, `"1h30m"`, `"1.5h"`, `"7d"`, `"2w"`, `"0"`).
///
/// ```
/// use std::time::Duration;
/// use tokenops_types::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
/// assert_eq!(parse_duration("2w").unwrap(), Duration::from_secs(14 * 86400));
/// assert!(parse_duration("5 minutes").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: u128 = 0;
    while pos < bytes.len() {
        // number: digits with an optional fraction
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[start..pos];
        let mut frac_part = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let fstart = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_part = &s[fstart..pos];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::MissingNumber(start));
        }
        // unit: everything up to the next digit or dot
        let ustart = pos;
        while pos < bytes.len() && !(bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(ustart));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit(unit.chars().take(8).collect()))?;
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| DurationError::Overflow)?
        };
        let mut value = int.checked_mul(scale).ok_or(DurationError::Overflow)?;
        // fractional part, exact to the nanosecond (digits beyond are dropped, as Go does)
        let mut frac_scale = scale;
        for digit in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value += u128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(value).ok_or(DurationError::Overflow)?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    // Keep far below u64::MAX seconds so adding to a timestamp never overflows.
    if secs > 100 * 365 * 86_400 * 1000 {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Formats a duration in the canonical form the parser reads back: the largest
/// units first, hours as the biggest unit (as Go does), e.g. `720h`, `1h30m`,
/// `1m30.5s`, `250ms`, `0s`.
///
/// ```
/// use std::time::Duration;
/// use tokenops_types::{format_duration, parse_duration};
/// assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
/// let d = Duration::from_millis(90_500);
/// assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
/// ```
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let total_secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if total_secs == 0 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if secs > 0 || nanos > 0 {
        if nanos > 0 {
            let frac = format!("{nanos:09}");
            out.push_str(&format!("{secs}.{}s", frac.trim_end_matches('0')));
        } else {
            out.push_str(&format!("{secs}s"));
        }
    }
    out
}

/// A [`Duration`] that serialises as a Go-style string and parses with
/// [`parse_duration`]. Use it in any type that crosses a boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        GoDuration(d)
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(GoDuration)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl serde::Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_users_write() {
        let cases = [
            ("720h", 720 * 3600),
            ("30m", 1800),
            ("1h30m", 5400),
            ("90s", 90),
            ("1d", 86_400),
            ("7d12h", 7 * 86_400 + 12 * 3600),
            ("1w", 7 * 86_400),
            ("2w", 14 * 86_400),
            ("1w2d", 9 * 86_400),
            ("52w", 364 * 86_400),
            ("0", 0),
            ("0s", 0),
            ("+5m", 300),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(input).unwrap(),
                Duration::from_secs(secs),
                "{input}"
            );
        }
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("0.5w").unwrap(),
            Duration::from_secs(302_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3us").unwrap(), Duration::from_micros(3));
        assert_eq!(parse_duration("3µs").unwrap(), Duration::from_micros(3));
    }

    #[test]
    fn rejects_what_go_rejects_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("-5m"), Err(DurationError::Negative));
        assert_eq!(parse_duration("10"), Err(DurationError::MissingUnit(2)));
        assert_eq!(parse_duration("h"), Err(DurationError::MissingNumber(0)));
        assert!(matches!(
            parse_duration("5 minutes"),
            Err(DurationError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_duration("3y"),
            Err(DurationError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_duration("3wk"),
            Err(DurationError::UnknownUnit(_))
        ));
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse_duration("."), Err(DurationError::MissingNumber(0)));
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::from_secs(720 * 3600)), "720h");
        assert_eq!(format_duration(Duration::from_secs(3601)), "1h1s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(15)), "15ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn go_duration_round_trips_through_json() {
        let d: GoDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(5400));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
        assert!(serde_json::from_str::<GoDuration>("\"soon\"").is_err());
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn sum_of_parts_equals_whole(h in 0u64..100_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(parse_duration(&text).unwrap(), Duration::from_secs(h * 3600 + m * 60 + s));
        }

        #[test]
        fn never_panics_on_arbitrary_input(input in "\\PC{0,24}") {
            let _ = parse_duration(&input);
        }
    }
}
