//! Listening sockets, one per shard, all on the same address with
//! `SO_REUSEPORT` so the kernel spreads new connections across cores.
//!
//! Built with socket2 rather than glommio's `bind()` (which panics on a bad
//! address and always shares the port), so errors are reported and tests
//! can bind port 0.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

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

/// Binds `count` listeners on each of `addrs` and hands each core its
/// share: one listener per address, in the order given. The first address
/// that cannot be bound is the error, with the address; every socket bound
/// before it is closed (nothing half starts).
pub fn bind_all(
    addrs: &[SocketAddr],
    count: usize,
) -> Result<Vec<Vec<TcpListener>>, (SocketAddr, io::Error)> {
    let count = count.max(1);
    let mut per_core: Vec<Vec<TcpListener>> = (0..count).map(|_| Vec::with_capacity(addrs.len())).collect();
    for &addr in addrs {
        let group = bind_shared(addr, count).map_err(|e| (addr, e))?;
        for (core, l) in per_core.iter_mut().zip(group) {
            core.push(l);
        }
    }
    Ok(per_core)
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

/// A client Unix socket this process created. It keeps a descriptor of the
/// listening socket, so the file stays live (and no other instance takes it
/// for stale) until this is dropped; dropping it removes the file, as Funnel
/// stops accepting.
#[derive(Debug)]
pub struct UnixSocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    _listening: UnixListener,
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        // While this socket listened, no instance took the path for stale;
        // so a socket file with the same inode is still this one. (A check
        // by connecting would race with the kernel, which may keep a closed
        // listener alive for a moment while a ring's accept is cancelled.)
        let Ok(m) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the client Unix socket at `path` and returns one listening
/// handle per core (all the same socket: the kernel gives each connection
/// to one core's accept) with the file's guard.
///
/// A socket file left by a process that died is replaced, as MariaDB does;
/// a socket something still listens on, or a file that is not a socket, is
/// an error and is left alone. The socket is world-connectable (mode 0777),
/// like MariaDB's: Funnel's logins decide who gets in, and the directory's
/// permissions can narrow who reaches it.
pub fn bind_unix(path: &Path, count: usize) -> io::Result<(Vec<UnixListener>, UnixSocketFile)> {
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = UnixSocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        // The same open socket: it listens once `socket` does.
        _listening: socket.try_clone()?.into(),
    };
    // From here on an error drops `file`, which removes the socket.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
    socket.listen(ACCEPT_BACKLOG)?;
    socket.set_nonblocking(true)?;
    let first: UnixListener = socket.into();
    let mut out = Vec::with_capacity(count.max(1));
    for _ in 1..count.max(1) {
        out.push(first.try_clone()?);
    }
    out.insert(0, first);
    Ok((out, file))
}

/// Removes `path` if it is a socket nobody listens on any more.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; Funnel does not remove it",
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening on this socket (another Funnel or a server?)",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
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
    fn listener_unix_socket_replaces_a_stale_file_and_cleans_up() {
        let dir = tempfile_dir();
        let path = dir.join("funnel.sock");
        // A socket file whose process is gone: bound, then closed.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (ls, file) = bind_unix(&path, 2).unwrap();
        assert_eq!(ls.len(), 2);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
        UnixStream::connect(&path).unwrap();
        // While it listens, a second bind is refused and removes nothing.
        let busy = bind_unix(&path, 1).unwrap_err();
        assert_eq!(busy.kind(), io::ErrorKind::AddrInUse, "{busy}");
        assert!(path.exists());
        // The guard keeps it live after the cores' listeners close, so no
        // other instance takes it for stale while this one stops.
        drop(ls);
        assert_eq!(bind_unix(&path, 1).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(file);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn listener_unix_socket_leaves_other_files_alone() {
        let dir = tempfile_dir();
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"data").unwrap();
        let err = bind_unix(&path, 1).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        // A guard removes only a socket file: one replaced by a regular
        // file (whatever inode number it got) stays.
        let sock = dir.join("s.sock");
        let (ls, file) = bind_unix(&sock, 1).unwrap();
        drop(ls);
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, b"someone else's").unwrap();
        drop(file);
        assert_eq!(std::fs::read(&sock).unwrap(), b"someone else's");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "funnel-listener-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn listener_every_core_gets_every_address() {
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap(), "127.0.0.2:0".parse().unwrap()];
        let cores = bind_all(&addrs, 3).unwrap();
        assert_eq!(cores.len(), 3);
        for (i, want) in addrs.iter().enumerate() {
            let first = cores[0][i].local_addr().unwrap();
            assert_eq!(first.ip(), want.ip());
            assert!(cores
                .iter()
                .all(|c| c.len() == 2 && c[i].local_addr().unwrap() == first));
        }
    }

    #[test]
    fn listener_one_bad_address_binds_nothing() {
        let good = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = good.local_addr().unwrap().port();
        drop(good);
        // 192.0.2.1 is TEST-NET-1: not an address of this host.
        let addrs: Vec<SocketAddr> = vec![
            format!("127.0.0.1:{port}").parse().unwrap(),
            "192.0.2.1:0".parse().unwrap(),
        ];
        let (addr, _) = bind_all(&addrs, 2).unwrap_err();
        assert_eq!(addr, addrs[1]);
        // The first address's sockets were closed with the error: a plain
        // bind (no SO_REUSEPORT) gets the port.
        TcpListener::bind(addrs[0]).unwrap();
    }

    #[test]
    fn listener_bad_address_is_an_error() {
        // 192.0.2.1 is TEST-NET-1: not an address of this host.
        assert!(bind_shared("192.0.2.1:0".parse().unwrap(), 1).is_err());
    }
}
