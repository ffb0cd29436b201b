//! Binary-protocol prepared statements across multiplexed connections.
//!
//! A client's statement ids are Funnel's own ([`client::ClientStatements`]).
//! Each names a shard-wide [`registry::StatementMeta`] (SQL text, schema and
//! the prepare response to replay). Each backend connection remembers which
//! statements it has prepared under which server id, in a bounded LRU
//! ([`conn_cache::ConnStatements`]) that closes the least recently used one
//! so `max_prepared_stmt_count` is never reached. An execute on a connection
//! that lacks the statement prepares it there first; parameter types sent
//! only with a client's first execute are remembered and re-sent
//! ([`execute`]).

pub mod client;
pub mod conn_cache;
pub mod execute;
pub mod registry;
