//! The PROXY protocol header that a load balancer listed in
//! `client.proxy_protocol_networks` sends before its client's bytes: read
//! off the connection before the greeting, it names the client's own
//! address, which the logins (`users[].allowed_hosts`), query rules
//! (`client_addr`), `SHOW CLIENTS` and the query log then see.

use std::io;

use funnel_protocol::proxy_header::{self, Parsed, ProxyHeader};

use crate::iobuf::IoBuf;
use crate::rt::Stream;

/// Why no client address could be read.
#[derive(Debug)]
pub enum HeaderError {
    /// The connection did not start with a well-formed header.
    Invalid(&'static str),
    /// The connection failed or closed first.
    Io(io::Error),
}

/// Reads the header at the start of `stream` (through `buf`, which keeps
/// whatever of the client's own bytes came with it): the client's host as
/// Funnel names hosts (its IP address; an IPv4 client of an IPv6 balancer
/// by its IPv4 address), or `None` for the balancer's own connection
/// (`LOCAL`, `UNKNOWN`), whose address stands.
pub async fn read_client_host(stream: &mut Stream, buf: &mut IoBuf) -> Result<Option<String>, HeaderError> {
    loop {
        match proxy_header::parse(buf.bytes()) {
            Parsed::Header { header, len } => {
                buf.consume(len);
                return Ok(match header {
                    ProxyHeader::Proxied(addr) => Some(addr.ip().to_canonical().to_string()),
                    ProxyHeader::Local => None,
                });
            }
            Parsed::Incomplete { want } => {
                buf.reserve_total(want);
                buf.fill(stream).await.map_err(HeaderError::Io)?;
            }
            Parsed::Invalid(why) => return Err(HeaderError::Invalid(why)),
        }
    }
}
