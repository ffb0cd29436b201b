//! Listening sockets, one per shard, all on the same address with
//! `SO_REUSEPORT` so the kernel spreads new connections across cores.
//!
//! Built with socket2 rather than glommio's `bind()` (which panics on a bad
//! address and always shares the port), so errors are reported and tests
//! can bind port 0.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue length: thousands of clients may connect at once.
const ACCEPT_BACKLOG: i32 = 4096;

/// Binds `count` listeners on `addr`. With port 0 the first socket picks a
/// free port and the others join it.
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let l = bind_one(addr)?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_port_zero_is_shared() {
        let ls = bind_shared("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
    }

    #[test]
    fn listener_bad_address_is_an_error() {
        // 192.0.2.1 is TEST-NET-1: not an address of this host.
        assert!(bind_shared("192.0.2.1:0".parse().unwrap(), 1).is_err());
    }
}
