//! How many cores Funnel runs on, and which CPUs the shards are pinned to.
//!
//! Funnel runs one shard per core (thread-per-core), so the setting is either a count, meaning
//! the first `n` CPUs this process may run on, or an explicit list of CPU ids for hosts where some
//! CPUs are reserved for the database or for interrupt handling.
//!
//! "May run on" is the process's CPU affinity: a container's cpuset or a `taskset` decides which
//! CPUs those are, and pinning a shard outside them would fail or undo the operator's choice.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ConfigError, Problem};

/// The `cores` setting: a count (`2`) or a list of CPU ids to pin to (`[0, 2]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Run `n` shards on the first `n` CPUs the process may use.
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

    /// The CPU ids to pin shards to, one per shard, chosen from `allowed`: the CPUs this
    /// process may run on (its affinity), in ascending order.
    ///
    /// This check cannot happen at load time: a config may be checked on one machine and run
    /// on another, or in another container.
    pub fn cpu_ids(&self, allowed: &[usize]) -> Result<Vec<usize>, ConfigError> {
        let message = match self {
            Cores::Count(n) if *n <= allowed.len() => return Ok(allowed[..*n].to_vec()),
            Cores::Count(n) => format!(
                "asks for {n} cores but this process may use only {} ({})",
                match allowed.len() {
                    1 => "1 CPU".to_string(),
                    m => format!("{m} CPUs"),
                },
                cpu_list(allowed)
            ),
            Cores::List(ids) => {
                let missing: Vec<String> = ids
                    .iter()
                    .filter(|id| !allowed.contains(id))
                    .map(usize::to_string)
                    .collect();
                if missing.is_empty() {
                    return Ok(ids.clone());
                }
                format!(
                    "CPU {} is not among the CPUs this process may use ({})",
                    missing.join(", "),
                    cpu_list(allowed)
                )
            }
        };
        Err(ConfigError::Invalid {
            problems: vec![Problem::new("cores", message)],
        })
    }
}

/// `0-3,8,10-11`: CPU ids the way `taskset` and cpusets write them.
fn cpu_list(ids: &[usize]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        while i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
            i += 1;
        }
        out.push(if ids[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", ids[i])
        });
        i += 1;
    }
    out.join(",")
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

    const EIGHT: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn config_cores_count_pins_to_first_allowed_cpus() {
        assert_eq!(Cores::Count(3).cpu_ids(EIGHT).unwrap(), vec![0, 1, 2]);
        assert_eq!(Cores::Count(3).shard_count(), 3);
        assert_eq!(Cores::default().cpu_ids(&[0]).unwrap(), vec![0]);
        // In a cpuset (a container, `taskset`): the first CPUs of the set.
        assert_eq!(Cores::Count(2).cpu_ids(&[4, 5, 9]).unwrap(), vec![4, 5]);
    }

    #[test]
    fn config_cores_list_keeps_given_ids() {
        let cores = Cores::List(vec![2, 5]);
        assert_eq!(cores.cpu_ids(EIGHT).unwrap(), vec![2, 5]);
        assert_eq!(cores.shard_count(), 2);
    }

    #[test]
    fn config_cores_rejects_cpus_outside_the_allowed_set() {
        let err = Cores::List(vec![0, 9]).cpu_ids(&[0, 1, 2, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration (1 problem):\n  cores: CPU 9 is not among the CPUs this process may use (0-3)"
        );
        let err = Cores::List(vec![3])
            .cpu_ids(&[0, 1, 2, 8, 9, 10, 12])
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("CPU 3 is not among the CPUs this process may use (0-2,8-10,12)"),
            "{err}"
        );
        let err = Cores::Count(2).cpu_ids(&[7]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("asks for 2 cores but this process may use only 1 CPU (7)"),
            "{err}"
        );
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
