//! How many cores Funnel runs on, and which CPUs the shards are pinned to.
//!
//! Funnel runs one shard per core (thread-per-core), so the setting is either a count, meaning
//! CPUs `0..n`, or an explicit list of CPU ids for hosts where some CPUs are reserved for the
//! database or for interrupt handling.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ConfigError, Problem};

/// The `cores` setting: a count (`2`) or a list of CPU ids to pin to (`[0, 2]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Run `n` shards on CPUs `0..n`.
    Count(usize),
    /// Run one shard on each listed CPU, in this order.
    List(Vec<usize>),
}

impl Default for Cores {
    fn default() -> Self {
        Cores::Count(1)
    }
}

impl Cores {
    /// The number of shards to start.
    pub fn shard_count(&self) -> usize {
        match self {
            Cores::Count(n) => *n,
            Cores::List(ids) => ids.len(),
        }
    }

    /// The CPU ids to pin shards to, one per shard, checked against the `available` CPUs
    /// (ids `0..available`) of this machine.
    ///
    /// This check cannot happen at load time: a config may be checked on one machine and run
    /// on another.
    pub fn cpu_ids(&self, available: usize) -> Result<Vec<usize>, ConfigError> {
        let ids: Vec<usize> = match self {
            Cores::Count(n) => (0..*n).collect(),
            Cores::List(ids) => ids.clone(),
        };
        let missing: Vec<String> = ids
            .iter()
            .filter(|&&id| id >= available)
            .map(usize::to_string)
            .collect();
        if missing.is_empty() {
            return Ok(ids);
        }
        let message = match self {
            Cores::Count(n) => format!("asks for {n} cores but this machine has {available} CPUs"),
            Cores::List(_) => format!(
                "CPU {} does not exist; this machine has {available} CPUs (0..={})",
                missing.join(", "),
                available.saturating_sub(1)
            ),
        };
        Err(ConfigError::Invalid {
            problems: vec![Problem::new("cores", message)],
        })
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cores::Count(n) => write!(f, "{n}"),
            Cores::List(ids) => write!(f, "{ids:?}"),
        }
    }
}

impl Serialize for Cores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cores::Count(n) => serializer.serialize_u64(*n as u64),
            Cores::List(ids) => {
                let mut seq = serializer.serialize_seq(Some(ids.len()))?;
                for id in ids {
                    seq.serialize_element(id)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CoresVisitor)
    }
}

/// A hand-written visitor rather than `#[serde(untagged)]`, whose only error message is
/// "data did not match any variant", which tells an operator nothing.
struct CoresVisitor;

impl<'de> Visitor<'de> for CoresVisitor {
    type Value = Cores;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of cores (e.g. 4) or a list of CPU ids (e.g. [0, 1])")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        usize::try_from(v)
            .map(Cores::Count)
            .map_err(|_| E::custom(format!("{v} cores is too many")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("cores must not be negative, got {v}")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(id) = seq.next_element::<usize>()? {
            ids.push(id);
        }
        Ok(Cores::List(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_cores_count_pins_to_first_cpus() {
        assert_eq!(Cores::Count(3).cpu_ids(8).unwrap(), vec![0, 1, 2]);
        assert_eq!(Cores::Count(3).shard_count(), 3);
        assert_eq!(Cores::default().cpu_ids(1).unwrap(), vec![0]);
    }

    #[test]
    fn config_cores_list_keeps_given_ids() {
        let cores = Cores::List(vec![2, 5]);
        assert_eq!(cores.cpu_ids(8).unwrap(), vec![2, 5]);
        assert_eq!(cores.shard_count(), 2);
    }

    #[test]
    fn config_cores_rejects_missing_cpus() {
        let err = Cores::List(vec![0, 9]).cpu_ids(4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration (1 problem):\n  cores: CPU 9 does not exist; this machine has 4 CPUs (0..=3)"
        );
        assert!(Cores::Count(5).cpu_ids(4).is_err());
    }

    #[test]
    fn config_cores_yaml_forms() {
        assert_eq!(serde_yaml::from_str::<Cores>("4").unwrap(), Cores::Count(4));
        assert_eq!(
            serde_yaml::from_str::<Cores>("[0, 1]").unwrap(),
            Cores::List(vec![0, 1])
        );
        assert!(serde_yaml::from_str::<Cores>("-1").is_err());
        assert!(serde_yaml::from_str::<Cores>("four").is_err());
        assert_eq!(serde_yaml::to_string(&Cores::Count(2)).unwrap(), "2\n");
        assert_eq!(
            serde_yaml::to_string(&Cores::List(vec![0, 3])).unwrap(),
            "- 0\n- 3\n"
        );
    }
}
