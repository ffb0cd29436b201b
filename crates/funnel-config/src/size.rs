//! Byte sizes: `16MiB`, `64KiB`, `1GiB`, `512B`, `16MB` (decimal); a bare integer means bytes.
//!
//! Both binary (`KiB` = 1024) and decimal (`KB` = 1000) units are accepted because MySQL's own
//! settings are binary while disk and network people often think decimal; they are never mixed
//! up, and `SHOW CONFIG` prints whichever unit represents the value exactly.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units Display may pick from, binary before decimal.
const DISPLAY_UNITS: [(&str, u64); 8] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

/// A number of bytes that reads and writes as `64MiB`, `16MB`, `512B` or a bare integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One kibibyte (1024 bytes).
    pub const KIB: ByteSize = ByteSize(1 << 10);
    /// One mebibyte.
    pub const MIB: ByteSize = ByteSize(1 << 20);
    /// One gibibyte.
    pub const GIB: ByteSize = ByteSize(1 << 30);

    /// `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    /// The number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl From<u64> for ByteSize {
    fn from(n: u64) -> Self {
        ByteSize(n)
    }
}

impl From<ByteSize> for u64 {
    fn from(n: ByteSize) -> Self {
        n.0
    }
}

/// Why a string is not a byte size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseByteSizeError {
    /// The text was empty or only spaces.
    #[error("a size must not be empty (write e.g. 64MiB, 16KiB, 512B)")]
    Empty,
    /// The text did not start with a number.
    #[error("invalid size {input:?}: it must start with a whole number, e.g. 64MiB")]
    MissingNumber {
        /// The text as written.
        input: String,
    },
    /// The number had a fractional part, which we do not accept.
    #[error("invalid size {input:?}: fractions are not supported; use a smaller unit (1536KiB, not 1.5MiB)")]
    Fractional {
        /// The text as written.
        input: String,
    },
    /// The suffix after the number is not a unit we know.
    #[error("invalid size {input:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")]
    UnknownUnit {
        /// The text as written.
        input: String,
        /// The suffix that was not recognised.
        unit: String,
    },
    /// The value does not fit in 64 bits.
    #[error("invalid size {input:?}: too large")]
    Overflow {
        /// The text as written.
        input: String,
    },
}

/// Bytes per unit, or `None` for an unknown unit. Case-insensitive, because `64mib` is
/// unambiguous; `KB` and `KiB` stay different whatever the case.
fn unit_bytes(unit: &str) -> Option<u64> {
    let bytes = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    Some(bytes)
}

impl FromStr for ByteSize {
    type Err = ParseByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(ParseByteSizeError::Empty);
        }
        let input = || text.to_owned();
        let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, rest) = text.split_at(digits_end);
        if digits.is_empty() {
            return Err(ParseByteSizeError::MissingNumber { input: input() });
        }
        if rest.starts_with('.') {
            return Err(ParseByteSizeError::Fractional { input: input() });
        }
        let unit = rest.trim_start();
        let per_unit = unit_bytes(unit).ok_or_else(|| ParseByteSizeError::UnknownUnit {
            input: input(),
            unit: unit.to_owned(),
        })?;
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(per_unit))
            .map(ByteSize)
            .ok_or_else(|| ParseByteSizeError::Overflow { input: input() })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        // Of the units that divide exactly, the one giving the smallest number reads best:
        // 16000000 is `16MB`, not `15625KiB`. On a tie the binary unit, listed first, wins.
        let exact = DISPLAY_UNITS
            .iter()
            .filter(|(_, per_unit)| n != 0 && n % per_unit == 0)
            .min_by_key(|(_, per_unit)| n / per_unit);
        match exact {
            Some((unit, per_unit)) => write!(f, "{}{}", n / per_unit, unit),
            None => write!(f, "{n}B"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

/// Accepts a YAML integer (bytes) or a string with a unit.
struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 64MiB, 16KiB, 16MB, 512B, or a whole number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(ParseByteSizeError::Fractional { input: v.to_string() }))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<u64, ParseByteSizeError> {
        s.parse::<ByteSize>().map(ByteSize::as_u64)
    }

    #[test]
    fn config_size_parses_binary_and_decimal_units() {
        assert_eq!(parse("16MiB"), Ok(16 << 20));
        assert_eq!(parse("64KiB"), Ok(64 << 10));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("2TiB"), Ok(2 << 40));
        assert_eq!(parse("512B"), Ok(512));
        assert_eq!(parse("16MB"), Ok(16_000_000));
        assert_eq!(parse("3KB"), Ok(3_000));
        assert_eq!(parse("1GB"), Ok(1_000_000_000));
        assert_eq!(parse("64 mib"), Ok(64 << 20));
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn config_size_bare_integer_is_bytes() {
        assert_eq!(parse("4096"), Ok(4096));
        let n: ByteSize = serde_yaml::from_str("1024").unwrap();
        assert_eq!(n, ByteSize::KIB);
    }

    #[test]
    fn config_size_rejects_bad_input() {
        assert_eq!(parse("  "), Err(ParseByteSizeError::Empty));
        assert!(matches!(
            parse("MiB"),
            Err(ParseByteSizeError::MissingNumber { .. })
        ));
        assert!(matches!(
            parse("1.5MiB"),
            Err(ParseByteSizeError::Fractional { .. })
        ));
        assert_eq!(
            parse("16M"),
            Err(ParseByteSizeError::UnknownUnit {
                input: "16M".into(),
                unit: "M".into()
            })
        );
        assert!(matches!(
            parse("20000000TiB"),
            Err(ParseByteSizeError::Overflow { .. })
        ));
        assert!(serde_yaml::from_str::<ByteSize>("-1").is_err());
    }

    #[test]
    fn config_size_displays_exact_unit() {
        assert_eq!(ByteSize(0).to_string(), "0B");
        assert_eq!(ByteSize(512).to_string(), "512B");
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
        assert_eq!(ByteSize::GIB.to_string(), "1GiB");
        assert_eq!(ByteSize(16_000_000).to_string(), "16MB");
        assert_eq!(ByteSize(1_500).to_string(), "1500B");
        assert_eq!(ByteSize(2_048_000).to_string(), "2000KiB");
        assert_eq!(serde_yaml::to_string(&ByteSize::mib(16)).unwrap(), "16MiB\n");
    }

    proptest! {
        #[test]
        fn config_size_display_round_trips(n in any::<u64>()) {
            let size = ByteSize(n);
            prop_assert_eq!(size.to_string().parse::<ByteSize>(), Ok(size));
        }
    }
}
