//! The runtime boundary: the only module that names glommio.
//!
//! Everything else in the engine uses these few functions and types, so the
//! runtime stays replaceable (glommio's last release is from 2024).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// A connection owned by the current core (TCP, or a Unix socket to a
/// co-located backend), optionally wrapped in TLS (client connections that
/// asked for it, backends configured for it).
pub struct Stream {
    sock: Sock,
    tls: Option<Box<Tls>>,
    /// The compressed protocol, on client connections that asked for it
    /// (inside TLS when both are on).
    compress: Option<Box<crate::compress::Compressed>>,
    /// A TLS handshake began and has not finished: the peer reads TLS
    /// records only, so nothing may be written in plaintext.
    tls_handshaking: bool,
}

/// The socket under a [`Stream`].
enum Sock {
    Tcp(glommio::net::TcpStream),
    Unix(glommio::net::UnixStream),
}

impl Sock {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf).await,
            Sock::Unix(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.write_all(buf).await,
            Sock::Unix(s) => s.write_all(buf).await,
        }
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// A TLS session over the stream: rustls keeps the state, this side moves
/// the bytes.
struct Tls {
    conn: rustls::Connection,
    raw: Vec<u8>,
    /// Where the peer's bytes stand in TLS record framing.
    records: RecordFraming,
}

/// Follows the peer's TLS record framing (5-byte header, then the length
/// it names), so that a peer stalled partway through a record can be told
/// from one that has sent nothing: rustls keeps a partial record to itself.
#[derive(Default)]
struct RecordFraming {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
}

impl RecordFraming {
    /// Accounts for `bytes` read from the peer.
    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            }
        }
    }

    /// True while a record has begun to arrive and not ended.
    fn mid_record(&self) -> bool {
        self.header_len > 0 || self.body_left > 0
    }
}

/// What [`Stream::read`] says when bytes arrived that complete no
/// compressed packet or TLS record yet.
pub const PARTIAL_PACKET: &str = "part of a compressed packet or TLS record arrived";

/// Reads from the socket, through TLS when it is on.
async fn read_raw(sock: &mut Sock, tls: &mut Option<Box<Tls>>, buf: &mut [u8]) -> io::Result<usize> {
    let Some(tls) = tls.as_mut() else {
        return sock.read(buf).await;
    };
    let mut read_some = false;
    loop {
        match std::io::Read::read(&mut tls.conn.reader(), buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        // Part of a record: the caller learns the peer is mid-command.
        if read_some && tls.records.mid_record() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, PARTIAL_PACKET));
        }
        read_some = true;
        if !pump_in(sock, tls).await? {
            return Ok(0);
        }
    }
}

/// Writes all of `buf` to the socket, through TLS when it is on.
async fn write_raw(sock: &mut Sock, tls: &mut Option<Box<Tls>>, buf: &[u8]) -> io::Result<()> {
    match tls.as_mut() {
        None => sock.write_all(buf).await,
        Some(tls) => {
            std::io::Write::write_all(&mut tls.conn.writer(), buf)?;
            flush_out(sock, tls).await
        }
    }
}

/// The listening sockets of the current core: its own TCP socket on each
/// `listen` address (one of each address's `SO_REUSEPORT` group) and, when
/// configured, its handle on the client Unix socket that every core
/// accepts on.
pub struct Listener {
    /// With one socket: the accept under way on it (glommio's: a
    /// synchronous try, then an io_uring accept). Kept for the next call
    /// when the caller stops waiting, instead of being cancelled and armed
    /// again (a finished accept not yet collected would lose its client).
    pending: RefCell<Option<Accepting>>,
    /// With several sockets: the readiness wait armed on each (the TCP
    /// ones in order, then the Unix one), while none had a client waiting.
    /// No io_uring accept is armed on them (see [`Listener::accept`]).
    readable: RefCell<Vec<Option<Readable>>>,
    /// Which socket to look at first, turning round so none starves.
    first: Cell<usize>,
    /// The sockets' descriptors (owned by `tcp` and `unix`), in the same order.
    fds: Vec<RawFd>,
    // Declared after the waits, so dropped (and closed) after them.
    tcp: Vec<Rc<glommio::net::TcpListener>>,
    unix: Option<Rc<glommio::net::UnixListener>>,
}

/// An accept in flight.
type Accepting = Pin<Box<dyn Future<Output = io::Result<Stream>>>>;

/// A wait for a listening socket to have a client in its queue.
type Readable = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// The reading end of a socket pair that other threads write a byte to
/// when they want the current core to wake up.
pub struct Doorbell {
    sock: glommio::net::UnixStream,
    buf: [u8; 64],
}

impl Doorbell {
    /// Takes over one end of a std socket pair.
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<Self> {
        s.set_nonblocking(true)?;
        // SAFETY: the fd comes from a live socket whose ownership
        // `into_raw_fd` gives up, so it is closed exactly once.
        let sock = unsafe { glommio::net::UnixStream::from_raw_fd(s.into_raw_fd()) };
        Ok(Doorbell { sock, buf: [0; 64] })
    }

    /// Waits for rings and consumes them. Returns at once, forever, when
    /// the other end is closed (or on an error), so callers must check for
    /// that on their own channel.
    pub async fn wait(&mut self) {
        if self.sock.read(&mut self.buf).await.unwrap_or(0) == 0 {
            // Closed: do not spin; the caller sees its channel closed.
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Memory glommio may lock for registered I/O buffers. Funnel reads and
/// writes sockets with ordinary buffers, so a small amount keeps it far
/// below the 8 MiB `RLIMIT_MEMLOCK` common on hosts and in containers.
const IO_MEMORY: usize = 256 * 1024;

/// Submission ring entries per executor (glommio's default is 128). The
/// kernel sizes the ring's poll hash table from it, and every idle client
/// keeps one poll armed there: with 128 entries (8 buckets) each timer
/// cancel walked ~N/8 polls, 75% of Funnel's CPU with 10,000 idle clients.
/// 4096 gives 256 buckets for a few hundred KiB per core.
const RING_DEPTH: usize = 4096;

/// Runs `make_future()` on a new thread with its own executor, pinned to
/// `cpu` when given.
pub fn spawn_executor<G, F, T>(
    name: &str,
    cpu: Option<usize>,
    idle_poll: Duration,
    make_future: G,
) -> io::Result<std::thread::JoinHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match cpu {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    };
    let name = name.to_string();
    // glommio's own join handle wraps a std thread; build the executor
    // inside our thread so the caller gets a plain JoinHandle.
    // `idle_poll` spins before parking, only while the host's CPUs are not
    // contended (`spin_gate`). The rings set TASKRUN_FLAG with COOP_TASKRUN
    // (vendor/glommio/PATCHES.md), so the spin enters the kernel when other
    // CPUs' completions wait for it. glommio spins on pinned executors only.
    std::thread::Builder::new().name(name.clone()).spawn(move || {
        let builder = glommio::LocalExecutorBuilder::new(placement)
            .name(&name)
            .io_memory(IO_MEMORY)
            .ring_depth(RING_DEPTH);
        let builder = if idle_poll.is_zero() {
            builder
        } else {
            builder
                .spin_before_park(idle_poll)
                .spin_gate(crate::spin_gate::cpus_uncontended)
        };
        let made = builder.make();
        let ex = match made {
            Ok(ex) => ex,
            Err(e) => {
                // The host's limits, not a bug: an error line the operator
                // can act on (operations.md lists it), not a panic message
                // and backtrace note. The thread still ends unwinding, so
                // its join handle reports the failure.
                let why = format!("cannot start executor {name}: {e}");
                tracing::error!("{why}");
                std::panic::resume_unwind(Box::new(why));
            }
        };
        ex.run(make_future())
    })
}

/// Starts a task on the current core that runs on its own.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) {
    glommio::spawn_local(fut).detach();
}

/// Runs `f` on a thread beside the core's (blocking file I/O), and gives
/// its result back to the awaiting task.
pub async fn spawn_blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(f).await
}

/// How soon a task spawned with [`spawn_urgent`] runs once it can, however
/// many session tasks are queued: the core switches task queues at least
/// this often while it has one.
const URGENT_LATENCY: Duration = Duration::from_millis(10);

/// Spawns a task (and, through [`spawn`], the tasks it spawns) into a task
/// queue of its own, scheduled ahead of the sessions'. For work whose
/// deadlines must not be eaten by a busy core, such as health checks: a
/// thousand TLS logins at once queue a second of handshakes, and a check
/// waiting behind them at each step would blame the backend.
pub fn spawn_urgent<T: 'static>(fut: impl Future<Output = T> + 'static) {
    thread_local! {
        static URGENT: glommio::TaskQueueHandle = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::Matters(URGENT_LATENCY),
            "urgent",
        );
    }
    let queue = URGENT.with(|q| *q);
    match glommio::spawn_local_into(fut, queue) {
        Ok(task) => task.detach(),
        Err(e) => panic!("the urgent task queue is gone: {e}"),
    };
}

/// How long login work runs before the core looks at the sessions' tasks
/// again, while both have work.
const LOGIN_LATENCY: Duration = Duration::from_millis(2);

/// Runs `work` in a task queue of its own with the sessions' share of the
/// core, and returns its result. For CPU-heavy steps of a login (a TLS
/// handshake's signature): in the sessions' queue, a thousand logins at
/// once put a second of signing ahead of every query already waiting;
/// here a query waits for at most about [`LOGIN_LATENCY`] of them.
pub async fn login_work<T: 'static>(work: impl FnOnce() -> T + 'static) -> T {
    thread_local! {
        static LOGINS: glommio::TaskQueueHandle = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::Matters(LOGIN_LATENCY),
            "logins",
        );
    }
    let queue = LOGINS.with(|q| *q);
    match glommio::spawn_local_into(async move { work() }, queue) {
        Ok(task) => task.await,
        Err(e) => panic!("the login task queue is gone: {e}"),
    }
}

/// Waits for `d`.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Runs `fut` with a deadline; `None` when it ran out.
pub async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Option<T> {
    glommio::timer::timeout(d, async { Ok(fut.await) }).await.ok()
}

/// Gives other tasks a turn if this one has run for its share.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}

impl Listener {
    /// Takes over bound, listening std sockets (made with socket2, so
    /// binding errors are reported rather than panicking): this core's TCP
    /// socket on each address and its handle on the client Unix socket, if
    /// any.
    pub fn from_std(
        tcp: Vec<std::net::TcpListener>,
        unix: Option<std::os::unix::net::UnixListener>,
    ) -> io::Result<Self> {
        let mut fds: Vec<RawFd> = tcp.iter().map(|l| l.as_raw_fd()).collect();
        fds.extend(unix.as_ref().map(|u| u.as_raw_fd()));
        let tcp = tcp
            .into_iter()
            .map(|l| {
                l.set_nonblocking(true)?;
                // SAFETY: the fd comes from a live, listening TcpListener whose
                // ownership `into_raw_fd` gives up, so it is closed exactly once.
                Ok(Rc::new(unsafe {
                    glommio::net::TcpListener::from_raw_fd(l.into_raw_fd())
                }))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let unix = match unix {
            Some(u) => {
                u.set_nonblocking(true)?;
                // SAFETY: as above, for this core's own (dup'd) descriptor
                // of the listening Unix socket.
                Some(Rc::new(unsafe {
                    glommio::net::UnixListener::from_raw_fd(u.into_raw_fd())
                }))
            }
            None => None,
        };
        let sockets = tcp.len() + usize::from(unix.is_some());
        let several = if sockets > 1 { sockets } else { 0 };
        Ok(Listener {
            tcp,
            unix,
            pending: RefCell::new(None),
            readable: RefCell::new((0..several).map(|_| None).collect()),
            first: Cell::new(0),
            fds,
        })
    }

    /// Accepts the next client connection, from any of the sockets.
    ///
    /// One socket (the common case) uses glommio's accept. With several,
    /// each call tries a non-blocking `accept4` on every socket in turn,
    /// starting from the next one each time, and only when none has a
    /// client waiting arms a readiness wait on each (an io_uring poll,
    /// exclusive: on the Unix socket that every core waits on, each client
    /// wakes one core, in turn). An io_uring accept armed on a quiet socket
    /// would take its client as soon as it came, but leave it for the core
    /// to collect with its next batch of completions, while another
    /// socket's clients, accepted at once one after another, kept the core
    /// busy: that socket's clients waited several times longer than the
    /// flooded one's. Accepting synchronously also makes an accept's error
    /// (EMFILE) the current one, not one met earlier by an accept armed
    /// before.
    pub async fn accept(&self) -> io::Result<Stream> {
        if self.readable.borrow().is_empty() {
            return self.accept_one().await;
        }
        std::future::poll_fn(|cx| {
            let sockets = self.readable.borrow().len();
            loop {
                let first = self.first.get();
                self.first.set(if first + 1 >= sockets { 0 } else { first + 1 });
                for k in 0..sockets {
                    if let Some(r) = self.try_accept((first + k) % sockets) {
                        return Poll::Ready(r);
                    }
                }
                // No client waiting anywhere: wait for one. A wait that
                // ended (with a client since taken, or one just come) is
                // dropped, and the sockets are tried again.
                let mut readable = self.readable.borrow_mut();
                let mut ended = false;
                for (i, slot) in readable.iter_mut().enumerate() {
                    let wait =
                        slot.get_or_insert_with(|| Box::pin(glommio::net::wait_acceptable(self.fds[i])));
                    if let Poll::Ready(r) = wait.as_mut().poll(cx) {
                        *slot = None;
                        // A poll that fails goes to the caller, which
                        // backs off, rather than being armed again at once.
                        r?;
                        ended = true;
                    }
                }
                if !ended {
                    return Poll::Pending;
                }
            }
        })
        .await
    }

    /// The single socket's accept (glommio's).
    async fn accept_one(&self) -> io::Result<Stream> {
        std::future::poll_fn(|cx| {
            let mut pending = self.pending.borrow_mut();
            let fut = pending.get_or_insert_with(|| self.start_accept(0));
            let r = fut.as_mut().poll(cx);
            if r.is_ready() {
                *pending = None;
            }
            r
        })
        .await
    }

    /// A synchronous accept on socket `i` (the listening sockets are
    /// non-blocking): `None` when no client waits there.
    fn try_accept(&self, i: usize) -> Option<io::Result<Stream>> {
        let fd = self.fds[i];
        loop {
            // SAFETY: `fd` is a live listening socket this listener owns; no
            // address is asked for. The new descriptor is close-on-exec and
            // blocking, as glommio's io_uring accept makes it.
            let new =
                unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
            if new >= 0 {
                // SAFETY: `new` is a connected socket just accepted, owned by
                // nothing else; the stream closes it exactly once.
                let sock = if i < self.tcp.len() {
                    Sock::Tcp(unsafe { glommio::net::TcpStream::from_raw_fd(new) })
                } else {
                    Sock::Unix(unsafe { glommio::net::UnixStream::from_raw_fd(new) })
                };
                return Some(Ok(Stream {
                    sock,
                    tls: None,
                    compress: None,
                    tls_handshaking: false,
                }));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return None,
                io::ErrorKind::Interrupted => {}
                _ => return Some(Err(e)),
            }
        }
    }

    /// An accept on socket `i`: the TCP sockets in order, then the Unix one.
    fn start_accept(&self, i: usize) -> Accepting {
        if let Some(l) = self.tcp.get(i).cloned() {
            return Box::pin(async move {
                let s = l.accept().await.map_err(io::Error::from)?;
                Ok(Stream {
                    sock: Sock::Tcp(s),
                    tls: None,
                    compress: None,
                    tls_handshaking: false,
                })
            });
        }
        let l = self
            .unix
            .clone()
            .expect("socket index within the listener's sockets");
        Box::pin(async move {
            let s = l.accept().await.map_err(io::Error::from)?;
            Ok(Stream {
                sock: Sock::Unix(s),
                tls: None,
                compress: None,
                tls_handshaking: false,
            })
        })
    }
}

impl Stream {
    /// Connects to `addr` within `limit`.
    pub async fn connect(addr: SocketAddr, limit: Duration) -> io::Result<Stream> {
        let s = glommio::net::TcpStream::connect_timeout(addr, limit.max(Duration::from_millis(1)))
            .await
            .map_err(io::Error::from)?;
        Ok(Stream {
            sock: Sock::Tcp(s),
            tls: None,
            compress: None,
            tls_handshaking: false,
        })
    }

    /// Connects to the Unix socket at `path`. The caller bounds the wait:
    /// a Unix connect only waits while the server's accept queue is full.
    pub async fn connect_unix(path: &Path) -> io::Result<Stream> {
        let addr = socket2::SockAddr::unix(path)?;
        let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        // socket2 opens it close-on-exec.
        sock.set_nonblocking(true)?;
        loop {
            match sock.connect(&addr) {
                Ok(()) => break,
                // The accept queue is full: glommio has no Unix connect that
                // hands back the fd, so retry shortly instead of blocking the core.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => sleep(Duration::from_millis(1)).await,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // SAFETY: the fd comes from a live, connected socket whose ownership
        // `into_raw_fd` gives up; the stream closes it exactly once.
        let s = unsafe { glommio::net::UnixStream::from_raw_fd(sock.into_raw_fd()) };
        Ok(Stream {
            sock: Sock::Unix(s),
            tls: None,
            compress: None,
            tls_handshaking: false,
        })
    }

    /// Disables Nagle's algorithm: every response goes out at once. Unix
    /// sockets have no such delay.
    pub fn set_nodelay(&self) -> io::Result<()> {
        match &self.sock {
            Sock::Tcp(s) => s.set_nodelay(true).map_err(io::Error::from),
            Sock::Unix(..) => Ok(()),
        }
    }

    /// This end's port of a TCP connection (`None` for a Unix socket).
    pub fn local_port(&self) -> Option<u16> {
        match &self.sock {
            Sock::Tcp(s) => s.local_addr().ok().map(|a| a.port()),
            Sock::Unix(..) => None,
        }
    }

    /// The peer's host as MariaDB would name it in messages and process
    /// lists: its IP address, or `localhost` over a Unix socket. An IPv4
    /// client of an IPv6 listener is named by its IPv4 address, as MariaDB
    /// names it (not `::ffff:10.0.0.1`).
    pub fn peer_host(&self) -> String {
        match &self.sock {
            Sock::Tcp(s) => s
                .peer_addr()
                .map(|a| a.ip().to_canonical().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            Sock::Unix(..) => "localhost".into(),
        }
    }

    /// Reads what is available into `buf`; 0 means the peer closed. Bytes
    /// that complete no compressed packet or TLS record yet end the read
    /// with an error of kind `Interrupted` ([`PARTIAL_PACKET`]),
    /// so the caller sees the peer is mid-packet (its timeouts change).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(c) = self.compress.as_mut() else {
            return read_raw(&mut self.sock, &mut self.tls, buf).await;
        };
        let mut read_some = false;
        loop {
            let n = c.take_plain(buf);
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if c.unpack_next()? {
                continue;
            }
            if read_some {
                return Err(io::Error::new(io::ErrorKind::Interrupted, PARTIAL_PACKET));
            }
            let n = read_raw(&mut self.sock, &mut self.tls, c.raw_room()).await?;
            if n == 0 {
                return Ok(0);
            }
            c.raw_filled(n);
            read_some = true;
        }
    }

    /// Writes all of `buf` (short writes are continued, never ignored).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.compress.as_mut() {
            None => write_raw(&mut self.sock, &mut self.tls, buf).await,
            Some(c) => {
                let packed = c.pack(buf);
                if packed.is_empty() {
                    return Ok(());
                }
                write_raw(&mut self.sock, &mut self.tls, packed).await
            }
        }
    }

    /// Switches to the compressed protocol (after the login OK of a client
    /// that asked for it): every read and write from now on is packed.
    /// `early` holds bytes the client sent after its login that were read
    /// with it (a client need not wait for the OK to send its first
    /// command): they are its first compressed packets, unpacked by the
    /// next reads as if they had arrived after the switch.
    pub fn start_compression(&mut self, early: &[u8]) {
        let mut c = Box::<crate::compress::Compressed>::default();
        c.push_raw(early);
        self.compress = Some(c);
    }

    /// True when bytes of the peer's next packet arrived that the stream
    /// still holds (part of a compressed packet or of a TLS record): the
    /// peer is mid-packet.
    pub fn has_partial_input(&self) -> bool {
        self.compress.as_ref().is_some_and(|c| c.has_partial_packet())
            || self.tls.as_ref().is_some_and(|t| t.records.mid_record())
    }

    /// True once TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// True when a TLS handshake began and did not finish (it timed out
    /// or failed): the peer cannot read a plaintext packet.
    pub fn tls_handshake_unfinished(&self) -> bool {
        self.tls_handshaking
    }

    /// Switches to TLS as the server (after a client's SSLRequest): runs
    /// the handshake; afterwards every read and write is encrypted.
    /// `early` holds bytes the client sent after its SSLRequest that were
    /// read with it: the start of its TLS hello, which clients send
    /// without waiting. They go to TLS, never to the MySQL protocol.
    pub async fn start_tls(
        &mut self,
        config: std::sync::Arc<rustls::ServerConfig>,
        early: &[u8],
    ) -> io::Result<()> {
        let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        self.handshake(rustls::Connection::Server(conn), early, Signing::LoginWork)
            .await
    }

    /// Switches to TLS as the client (after sending a backend an
    /// SSLRequest); the config decides how the certificate is checked.
    pub async fn start_tls_client(
        &mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<()> {
        let conn = rustls::ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        self.handshake(rustls::Connection::Client(conn), &[], Signing::InPlace)
            .await
    }

    /// Runs a TLS handshake to its end; then the session wraps the stream.
    async fn handshake(
        &mut self,
        conn: rustls::Connection,
        early: &[u8],
        signing: Signing,
    ) -> io::Result<()> {
        let mut tls = Box::new(Tls {
            conn,
            raw: vec![0; early.len().max(16 * 1024)],
            records: RecordFraming::default(),
        });
        self.tls_handshaking = true;
        tls.raw[..early.len()].copy_from_slice(early);
        tls = feed_handshake(tls, early.len(), signing).await?;
        while tls.conn.is_handshaking() {
            flush_out(&mut self.sock, &mut tls).await?;
            if tls.conn.wants_read() {
                let n = self.sock.read(&mut tls.raw).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer left during the TLS handshake",
                    ));
                }
                tls = feed_handshake(tls, n, signing).await?;
            }
        }
        flush_out(&mut self.sock, &mut tls).await?;
        self.tls = Some(tls);
        self.tls_handshaking = false;
        Ok(())
    }

    /// True when the peer sent bytes or closed while nobody was reading:
    /// a pooled backend connection that did so is stale. One non-blocking
    /// `recv(MSG_PEEK)`, no waiting.
    pub fn has_pending_input(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: the fd is owned by this live stream; the buffer is one
        // valid byte; MSG_PEEK leaves the data in the socket.
        let n = unsafe {
            libc::recv(
                self.sock.raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => true,
            n if n > 0 => true,
            _ => !matches!(
                io::Error::last_os_error().kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        }
    }

    /// Closes the write side; errors are irrelevant at that point.
    pub async fn close(&mut self) {
        let _ = match &mut self.sock {
            Sock::Tcp(s) => s.close().await,
            Sock::Unix(s) => s.close().await,
        };
    }
}

/// Reads TLS records from the socket into the session; `false` at EOF.
async fn pump_in(sock: &mut Sock, tls: &mut Tls) -> io::Result<bool> {
    let n = sock.read(&mut tls.raw).await?;
    if n == 0 {
        return Ok(false);
    }
    let Tls { conn, raw, records } = tls;
    feed_parts(conn, records, &raw[..n])?;
    // Handshake replies and alerts go out at once.
    flush_out(sock, tls).await?;
    Ok(true)
}

fn feed_parts(conn: &mut rustls::Connection, records: &mut RecordFraming, bytes: &[u8]) -> io::Result<()> {
    records.advance(bytes);
    let mut fed = bytes;
    while !fed.is_empty() {
        conn.read_tls(&mut fed)?;
        conn.process_new_packets().map_err(io::Error::other)?;
    }
    Ok(())
}

/// Where a handshake's CPU-heavy steps run.
#[derive(Clone, Copy)]
enum Signing {
    /// In a task queue behind the sessions' ([`login_work`]): a client's
    /// handshake signs with Funnel's key, a millisecond or more per login,
    /// and a storm of logins must not stall the sessions already served.
    LoginWork,
    /// Where the caller runs: a backend connection being opened has
    /// commands waiting for it, and its side of the handshake only verifies.
    InPlace,
}

/// Hands `tls.raw[..n]`, read from the peer during the handshake, to TLS.
async fn feed_handshake(mut tls: Box<Tls>, n: usize, signing: Signing) -> io::Result<Box<Tls>> {
    let work = move || {
        let Tls { conn, raw, records } = &mut *tls;
        feed_parts(conn, records, &raw[..n]).map(|()| tls)
    };
    match signing {
        Signing::LoginWork => login_work(work).await,
        Signing::InPlace => work(),
    }
}

/// Writes every pending TLS record to the socket.
async fn flush_out(sock: &mut Sock, tls: &mut Tls) -> io::Result<()> {
    while tls.conn.wants_write() {
        let mut out = Vec::new();
        tls.conn.write_tls(&mut out)?;
        sock.write_all(&out).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// The preemption signal reaches a task that never enters the kernel.
    /// With COOP_TASKRUN (vendor/glommio/PATCHES.md) the preempt timer's
    /// completion is posted only when the thread next enters the kernel (an
    /// interrupt on its CPU counts); if it never were, a long relay would
    /// keep every other client on its core waiting.
    #[test]
    fn preemption_reaches_a_task_that_makes_no_syscalls() {
        let handle = super::spawn_executor("preempt-test", None, Duration::ZERO, || async {
            let start = Instant::now();
            let mut n = 0u64;
            // Instant::now is the vDSO: no syscall in this loop.
            while !glommio::executor().need_preempt() {
                n = std::hint::black_box(n + 1);
                if start.elapsed() > Duration::from_secs(5) {
                    return None;
                }
            }
            Some(start.elapsed())
        })
        .unwrap();
        let waited = handle.join().unwrap();
        // glommio's default preempt timer is 100 ms; 5 s means it never came.
        assert!(waited.is_some(), "need_preempt() never became true");
    }

    /// With several sockets, the readiness wait on a quiet one lives across
    /// accepts from the others and is polled again at each accept that
    /// finds no client. It must keep one waker, not one per poll: glommio's
    /// `collect_rw` kept them all, a leak of one waker per client accepted
    /// through the busy socket for as long as the quiet one had none (a
    /// `listen` address beside an unused `listen_socket`, for days).
    #[test]
    fn a_quiet_sockets_wait_keeps_one_waker() {
        use std::future::Future;
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};
        /// Wakes the test's task; its clones are counted.
        struct Forward(Waker);
        impl Wake for Forward {
            fn wake(self: Arc<Self>) {
                self.0.wake_by_ref()
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.wake_by_ref()
            }
        }
        let handle = super::spawn_executor("listener-test", None, Duration::ZERO, || async {
            let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let quiet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = busy.local_addr().unwrap();
            let listener = super::Listener::from_std(vec![busy, quiet], None).unwrap();
            let counted = std::future::poll_fn(|cx| Poll::Ready(Arc::new(Forward(cx.waker().clone())))).await;
            let waker = Waker::from(counted.clone());
            let mut clients = Vec::new();
            for _ in 0..200 {
                let mut accept = std::pin::pin!(listener.accept());
                // No client yet: the accept waits on both sockets.
                let first = accept.as_mut().poll(&mut Context::from_waker(&waker));
                assert!(first.is_pending(), "a client before any connected");
                clients.push(std::net::TcpStream::connect(addr).unwrap());
                let accepted =
                    std::future::poll_fn(|_| accept.as_mut().poll(&mut Context::from_waker(&waker))).await;
                assert!(accepted.is_ok(), "{:?}", accepted.err());
            }
            Arc::strong_count(&counted)
        })
        .unwrap();
        let held = handle.join().unwrap();
        // This test's own two, and at most one per socket's wait.
        assert!(held <= 4, "{held} wakers held after 200 accepts");
    }
}

#[cfg(test)]
mod record_framing_tests {
    use super::RecordFraming;

    /// Records split anywhere (inside the header, inside the body, several
    /// in one read) are followed: mid-record exactly until each one ends.
    #[test]
    fn record_framing_follows_records_split_anywhere() {
        let record = |len: u16| {
            let mut r = vec![23, 3, 3];
            r.extend_from_slice(&len.to_be_bytes());
            r.extend(std::iter::repeat_n(0xab, usize::from(len)));
            r
        };
        let stream: Vec<u8> = [record(10), record(0), record(300)].concat();
        let ends = [15, 20, stream.len()];
        for step in [1, 2, 3, 4, 7, 64, stream.len()] {
            let mut f = RecordFraming::default();
            let mut at = 0;
            for chunk in stream.chunks(step) {
                f.advance(chunk);
                at += chunk.len();
                assert_eq!(f.mid_record(), !ends.contains(&at), "step {step}, at {at}");
            }
        }
    }
}
