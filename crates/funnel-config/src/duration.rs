//! Human-readable durations: `10s`, `500ms`, `2m`, `1h`, `250us`; a bare integer means seconds.
//!
//! Operators write timeouts the way they say them, and `SHOW CONFIG` prints them back the same way,
//! so the type parses and prints the same small set of units.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units from largest to smallest, with their length in nanoseconds. Display picks the first one
/// that divides the value exactly, so `90s` stays `90s` and `3600s` prints as `1h`.
const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// A [`Duration`] that reads and writes as `10s`, `500ms`, `2m`, `1h`, `250us` or `15ns`.
///
/// A bare integer (`30` in YAML, or the string `"30"`) means seconds. Zero is allowed here; the
/// fields where zero means "none" say so and validation rejects zero where it makes no sense.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The zero duration, which several settings read as "no limit".
    pub const ZERO: HumanDuration = HumanDuration(Duration::ZERO);

    /// The longest duration any setting takes: ten years (87600h). Every
    /// timeout becomes a deadline, `now + d`, on the data path, and the
    /// clock cannot hold one near `u64::MAX` seconds ahead: such a value
    /// panicked the core that armed the first timer with it (`SET
    /// pool.query_timeout = 18446744073709551615` took down a core's
    /// clients). Where no limit is meant, the settings that allow it take
    /// `0s`.
    pub const MAX: HumanDuration = HumanDuration::from_secs(10 * 365 * 24 * 3600);

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        HumanDuration(Duration::from_millis(millis))
    }

    /// A duration of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        HumanDuration(Duration::from_micros(micros))
    }

    /// The wrapped [`Duration`].
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `None` for zero, for the settings where `0s` means "no timeout".
    pub const fn non_zero(self) -> Option<Duration> {
        if self.0.is_zero() {
            None
        } else {
            Some(self.0)
        }
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

/// Why a string is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// The text was empty or only spaces.
    #[error("a duration must not be empty (write e.g. 10s, 500ms, 2m)")]
    Empty,
    /// The text did not start with a number.
    #[error("invalid duration {input:?}: it must start with a whole number, e.g. 10s")]
    MissingNumber {
        /// The text as written.
        input: String,
    },
    /// The number had a fractional part, which we do not accept.
    #[error(
        "invalid duration {input:?}: fractions are not supported; use a smaller unit (1500ms, not 1.5s)"
    )]
    Fractional {
        /// The text as written.
        input: String,
    },
    /// The suffix after the number is not a unit we know.
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The text as written.
        input: String,
        /// The suffix that was not recognised.
        unit: String,
    },
    /// The value is longer than [`HumanDuration::MAX`].
    #[error("invalid duration {input:?}: too large (at most 87600h, ten years)")]
    Overflow {
        /// The text as written.
        input: String,
    },
}

/// Nanoseconds per unit, or `None` for an unknown unit. An empty unit means seconds.
fn unit_nanos(unit: &str) -> Option<u128> {
    match unit {
        "" | "s" => Some(1_000_000_000),
        // `µs` is how Rust's Debug prints microseconds, so people will paste it.
        "us" | "µs" => Some(1_000),
        "ns" => Some(1),
        "ms" => Some(1_000_000),
        "m" => Some(60_000_000_000),
        "h" => Some(3_600_000_000_000),
        _ => None,
    }
}

impl FromStr for HumanDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(ParseDurationError::Empty);
        }
        let input = || text.to_owned();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, rest) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(ParseDurationError::MissingNumber { input: input() });
        }
        if rest.starts_with('.') {
            return Err(ParseDurationError::Fractional { input: input() });
        }
        let unit = rest.trim_start();
        let per_unit = unit_nanos(unit).ok_or_else(|| ParseDurationError::UnknownUnit {
            input: input(),
            unit: unit.to_owned(),
        })?;
        // u128 nanoseconds hold every Duration, so overflow is checked once at the end.
        let nanos = digits
            .parse::<u128>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .ok_or_else(|| ParseDurationError::Overflow { input: input() })?;
        if nanos > HumanDuration::MAX.0.as_nanos() {
            return Err(ParseDurationError::Overflow { input: input() });
        }
        let secs = (nanos / 1_000_000_000) as u64;
        let subsec = (nanos % 1_000_000_000) as u32;
        Ok(HumanDuration(Duration::new(secs, subsec)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        let (unit, per_unit) = UNITS
            .iter()
            .find(|(_, per_unit)| nanos % per_unit == 0)
            .copied()
            .unwrap_or(("ns", 1));
        write!(f, "{}{}", nanos / per_unit, unit)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Accepts a YAML integer (seconds) or a string with a unit.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 10s, 500ms, 2m, 1h, 250us, or a whole number of seconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let d = HumanDuration::from_secs(v);
        if d > HumanDuration::MAX {
            return Err(E::custom(ParseDurationError::Overflow { input: v.to_string() }));
        }
        Ok(d)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!("invalid duration {v}: must not be negative"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(ParseDurationError::Fractional { input: v.to_string() }))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Duration, ParseDurationError> {
        s.parse::<HumanDuration>().map(HumanDuration::as_duration)
    }

    #[test]
    fn config_duration_parses_every_unit() {
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse(" 15 s "), Ok(Duration::from_secs(15)));
    }

    #[test]
    fn config_duration_bare_integer_is_seconds() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        let d: HumanDuration = serde_yaml::from_str("45").unwrap();
        assert_eq!(d, HumanDuration::from_secs(45));
    }

    #[test]
    fn config_duration_rejects_bad_input() {
        assert_eq!(parse(""), Err(ParseDurationError::Empty));
        assert!(matches!(
            parse("s"),
            Err(ParseDurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse("-5s"),
            Err(ParseDurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse("1.5s"),
            Err(ParseDurationError::Fractional { .. })
        ));
        assert_eq!(
            parse("10x"),
            Err(ParseDurationError::UnknownUnit {
                input: "10x".into(),
                unit: "x".into()
            })
        );
        assert!(matches!(
            parse("10 seconds"),
            Err(ParseDurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse("99999999999999999999999h"),
            Err(ParseDurationError::Overflow { .. })
        ));
        // Longer than the clock can hold as a deadline: refused, however written.
        assert!(matches!(
            parse("18446744073709551615"),
            Err(ParseDurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse("87601h"),
            Err(ParseDurationError::Overflow { .. })
        ));
        assert_eq!(parse("87600h"), Ok(HumanDuration::MAX.0));
        assert!(serde_yaml::from_str::<HumanDuration>("18446744073709551615").is_err());
        assert!(serde_yaml::from_str::<HumanDuration>("315360001").is_err());
        assert!(serde_yaml::from_str::<HumanDuration>("-3").is_err());
        assert!(serde_yaml::from_str::<HumanDuration>("1.5").is_err());
    }

    #[test]
    fn config_duration_displays_in_largest_exact_unit() {
        let show = |d: Duration| HumanDuration(d).to_string();
        assert_eq!(show(Duration::ZERO), "0s");
        assert_eq!(show(Duration::from_secs(3600)), "1h");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_micros(250)), "250us");
        assert_eq!(show(Duration::from_nanos(7)), "7ns");
        assert_eq!(
            serde_yaml::to_string(&HumanDuration::from_secs(10)).unwrap(),
            "10s\n"
        );
    }

    proptest! {
        #[test]
        fn config_duration_display_round_trips(secs in 0..HumanDuration::MAX.0.as_secs(), nanos in 0u32..1_000_000_000) {
            let d = HumanDuration(Duration::new(secs, nanos));
            prop_assert_eq!(d.to_string().parse::<HumanDuration>(), Ok(d));
        }
    }
}
