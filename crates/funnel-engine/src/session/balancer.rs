//! The client's own address behind a load balancer that speaks the PROXY
//! protocol (`client.proxy_protocol_networks`), read before the greeting.

use std::time::Duration;

use funnel_protocol::response::ErrPacket;

use super::send_err;
use crate::iobuf::IoBuf;
use crate::proxy_protocol::{read_client_host, HeaderError};
use crate::rt::{self, Stream};
use crate::shard::Shard;

/// The host the session goes on with: `peer` (the connection's address)
/// unless it is a balancer of `client.proxy_protocol_networks`, whose
/// header names the client instead. `None` when the connection ends here:
/// a balancer that sent no well-formed header within `limit` is answered
/// with an ERR (1043, or 1159 at the deadline), as a client that fails
/// its handshake is.
pub(super) async fn client_host(
    shard: &Shard,
    stream: &mut Stream,
    buf: &mut IoBuf,
    peer: String,
    limit: Duration,
) -> Option<String> {
    let listed = shard
        .config()
        .client
        .proxy_protocol_networks
        .as_ref()
        .is_some_and(|nets| nets.iter().any(|n| n.matches(&peer)));
    if !listed {
        return Some(peer);
    }
    let err = match rt::timeout(limit, Box::pin(read_client_host(stream, buf))).await {
        Some(Ok(client)) => return Some(client.unwrap_or(peer)),
        Some(Err(HeaderError::Io(e))) => {
            tracing::debug!(%peer, error = %e, "balancer left before its PROXY header");
            return None;
        }
        Some(Err(HeaderError::Invalid(why))) => {
            // Refused as a client whose login packet is malformed is
            // (`funnel_client_connections_refused_total`): a balancer
            // without its PROXY protocol on shows there too.
            crate::stats::Stats::bump(&shard.stats.clients_refused);
            ErrPacket::new(
                1043,
                "08S01",
                format!("Bad handshake: {why} (the address is in client.proxy_protocol_networks)"),
            )
        }
        None => ErrPacket::new(
            1159,
            "08S01",
            "Got timeout reading communication packets (no PROXY header within client.handshake_timeout)",
        ),
    };
    if shard.log_rate.allow() {
        tracing::info!(%peer, error = %err, "connection refused: no PROXY header from a listed balancer");
    }
    shard.stats.count_error(err.code);
    let _ = rt::timeout(Duration::from_millis(100), send_err(stream, 0, &err)).await;
    None
}
