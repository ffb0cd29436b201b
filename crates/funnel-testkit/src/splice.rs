//! Relays in tests (a slow network, a moving virtual IP, refused
//! connections): the part every one of them shares, copying both ways.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

/// A connected stream that can be split into a reader and a writer.
pub trait Duplex: Read + Write + Send + Sized + 'static {
    /// A second handle to the same connection.
    fn duplicate(&self) -> io::Result<Self>;
    /// Ends both directions, so the far side sees the close.
    fn close(&self);
}

impl Duplex for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Duplex for UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

/// Copies bytes between `a` and `b`, each way on its own thread, until one
/// side closes; then closes the other. Returns at once.
pub fn splice<S: Duplex>(a: S, b: S) {
    let (Ok(a2), Ok(b2)) = (a.duplicate(), b.duplicate()) else {
        return;
    };
    let pump = |mut from: S, mut to: S| {
        thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            to.close();
        })
    };
    pump(a, b2);
    pump(b, a2);
}
