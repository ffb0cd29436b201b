//! Where a backend listens: a TCP address, or the path of a Unix socket for
//! a server on the same host (no TCP stack on either side of each hop).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::rt::Stream;

/// A backend's resolved address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendAddr {
    /// A resolved host and port.
    Tcp(SocketAddr),
    /// The path of the server's Unix socket.
    Unix(PathBuf),
}

impl BackendAddr {
    /// Opens a connection within `limit`.
    pub async fn connect(&self, limit: Duration) -> io::Result<Stream> {
        match self {
            BackendAddr::Tcp(addr) => Stream::connect(*addr, limit).await,
            BackendAddr::Unix(path) => Stream::connect_unix(path).await,
        }
    }

    /// The same, blocking: for start-up, before any core runs.
    pub fn connect_blocking(&self, limit: Duration) -> io::Result<Box<dyn BlockingStream>> {
        match self {
            BackendAddr::Tcp(addr) => {
                let s = std::net::TcpStream::connect_timeout(addr, limit)?;
                s.set_read_timeout(Some(limit))?;
                Ok(Box::new(s))
            }
            BackendAddr::Unix(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)?;
                s.set_read_timeout(Some(limit))?;
                Ok(Box::new(s))
            }
        }
    }
}

/// A blocking std stream of either kind.
pub trait BlockingStream: io::Read + io::Write {}

impl<T: io::Read + io::Write> BlockingStream for T {}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddr::Tcp(addr) => addr.fmt(f),
            BackendAddr::Unix(path) => path.display().fmt(f),
        }
    }
}

impl From<SocketAddr> for BackendAddr {
    fn from(addr: SocketAddr) -> Self {
        BackendAddr::Tcp(addr)
    }
}
