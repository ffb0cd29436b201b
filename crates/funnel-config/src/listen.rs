//! The client `listen` key: one `IP:port`, or a list of them.
//!
//! One address stays the common case (and files written before lists load
//! unchanged); a list lets one Funnel serve, say, an IPv4 and an IPv6
//! address, or a loopback and a private address, as ProxySQL's
//! `mysql-interfaces` and PgBouncer's `listen_addr` do. Every core binds
//! every address with `SO_REUSEPORT`.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The client listen addresses, in the order written. Validation refuses
/// an empty list and an address listed twice (see `validate.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddrs(Vec<SocketAddr>);

impl ListenAddrs {
    /// The addresses, in the order written.
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        ListenAddrs(addrs)
    }
}

impl Deref for ListenAddrs {
    type Target = [SocketAddr];

    fn deref(&self) -> &[SocketAddr] {
        &self.0
    }
}

impl From<SocketAddr> for ListenAddrs {
    fn from(addr: SocketAddr) -> Self {
        ListenAddrs(vec![addr])
    }
}

/// One address, as `"127.0.0.1:0".parse()` in tests.
impl FromStr for ListenAddrs {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(|a: SocketAddr| ListenAddrs(vec![a]))
    }
}

/// `127.0.0.1:6033`, or `127.0.0.1:6033, [::1]:6033` for a list (logs,
/// `funnel check`, the reload's restart notice).
impl fmt::Display for ListenAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Written back as it is usually written: one address as a plain string,
/// several as a list (`SHOW CONFIG`).
impl Serialize for ListenAddrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            all => all.serialize(serializer),
        }
    }
}

/// One element of a list, read as a single `listen` is (same error).
struct One(SocketAddr);

impl<'de> Deserialize<'de> for One {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::model::listen_addr(deserializer).map(One)
    }
}

impl<'de> Deserialize<'de> for ListenAddrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        // Inside the YAML deserializer, so that an error carries the key's
        // path (`listen[1]` for a list's element) and line.
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ListenAddrs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("IP:port, or a list of IP:port")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ListenAddrs, E> {
                let de = serde::de::value::StrDeserializer::<E>::new(v);
                One::deserialize(de).map(|o| ListenAddrs(vec![o.0]))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ListenAddrs, E> {
                let de = serde::de::value::U64Deserializer::<E>::new(v);
                One::deserialize(de).map(|o| ListenAddrs(vec![o.0]))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ListenAddrs, E> {
                let de = serde::de::value::I64Deserializer::<E>::new(v);
                One::deserialize(de).map(|o| ListenAddrs(vec![o.0]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ListenAddrs, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(One(a)) = seq.next_element()? {
                    out.push(a);
                }
                Ok(ListenAddrs(out))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}
