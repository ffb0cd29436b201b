//! Identifier newtypes, so a client id is never passed where a backend id is
//! meant.

use std::fmt;

/// Index of a shard (one per pinned core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// A client connection's id: what the client sees as `CONNECTION_ID()` and
/// passes to `KILL`. The top 8 bits name the owning shard, so any core can
/// route a `KILL` to the right one without a shared table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

/// A backend connection's id, unique within its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub u64);

/// Bits of a [`ClientId`] that count clients within a shard.
const CLIENT_BITS: u32 = 24;

impl ClientId {
    /// The `n`th client of `shard` (wraps within the shard's range, skipping 0).
    pub fn new(shard: ShardId, n: u32) -> Self {
        let local = (n % ((1 << CLIENT_BITS) - 1)) + 1;
        ClientId(u32::from(shard.0) << CLIENT_BITS | local)
    }

    /// The shard that owns this client.
    pub fn shard(self) -> ShardId {
        ShardId((self.0 >> CLIENT_BITS) as u16)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_client_id_encodes_shard() {
        let id = ClientId::new(ShardId(3), 41);
        assert_eq!(id.shard(), ShardId(3));
        assert_ne!(ClientId::new(ShardId(0), 0).0, 0, "0 is never a connection id");
        assert_eq!(ClientId::new(ShardId(1), (1 << 24) - 1).shard(), ShardId(1));
    }
}
