//! `KILL [QUERY] id` and `COM_PROCESS_KILL` with Funnel's own connection
//! ids. The id names the owning shard; that shard looks the client up, and
//! if it is running a command, kills that command's query on its backend
//! thread through a connection of its own (never an unrelated client's
//! work). Killing a connection also ends the client's session.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use std::time::Instant;

use funnel_protocol::response::ErrPacket;

use crate::ids::ClientId;
use crate::oneshot;
use crate::pool::conn::ServerThread;
use crate::session::pinning::PinReason;

/// What a session is doing, for `SHOW CLIENTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Between commands.
    Idle,
    /// A command has arrived and is not on a backend thread yet: waiting
    /// for a connection, or bringing its connection in line (a pinned
    /// session's too).
    Waiting,
    /// A command is running on a backend.
    Running,
}

impl ClientState {
    /// Its name in admin output.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
            ClientState::Running => "running",
        }
    }
}

/// What other code may do to one live session, and what it shows of itself.
#[derive(Debug)]
pub struct ClientControl {
    /// The user the client logged in as (only the same user may kill it).
    pub user: String,
    /// The client's address.
    pub peer: String,
    state: Cell<(ClientState, Instant)>,
    schema: RefCell<Option<Vec<u8>>>,
    pinned: Cell<Option<(PinReason, u32)>>,
    /// Binary prepared statements the client holds open.
    prepared: Cell<usize>,
    /// When the command that opened the client's open transaction arrived.
    transaction_began: Cell<Option<Instant>>,
    /// The digest key of the statement the client's command runs.
    statement: Cell<Option<u64>>,
    /// Its shape, when the core's digest table did not have it yet.
    new_statement: RefCell<Option<String>>,
    /// The backend thread running the client's command right now.
    running_on: Cell<Option<ServerThread>>,
    killed: Cell<bool>,
    /// `KILL QUERY`s of the client's statement on their way to the server
    /// (see [`ClientControl::kill_in_flight`]).
    kills_in_flight: Cell<usize>,
    /// Sessions waiting for those to be done.
    kills_done: RefCell<Vec<oneshot::Sender<()>>>,
    /// A `KILL QUERY` of the client's statement was written and got no
    /// answer: the server may still run it, on whatever runs there then.
    late_kill: Cell<bool>,
    /// `KILL QUERY` reached the session while its command waited for a
    /// backend connection.
    wait_interrupted: Cell<bool>,
    /// A reload changed the limits on a wait for the client's next
    /// command: an idle session takes the new ones at once, not at a next
    /// command that a lowered limit should have come before.
    limits_changed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// A `KILL QUERY` of a client's running statement, sent or about to be:
/// while it lives, the session keeps the backend connection its statement
/// ran on (see [`ClientControl::kills_settled`]).
pub struct KillInFlight(Rc<ClientControl>);

impl KillInFlight {
    /// The `KILL` was written and its answer never came (a timeout, a
    /// broken connection): it may still reach the server later. (An
    /// answer, OK or ERR, settles it: the server ran the `KILL` before it
    /// answered.) The
    /// connection it names then serves no other client (see
    /// [`ClientControl::take_late_kill`]).
    pub fn may_arrive_late(&self) {
        self.0.late_kill.set(true);
    }
}

impl Drop for KillInFlight {
    fn drop(&mut self) {
        let left = self.0.kills_in_flight.get() - 1;
        self.0.kills_in_flight.set(left);
        if left == 0 {
            for done in self.0.kills_done.borrow_mut().drain(..) {
                let _ = done.send(());
            }
        }
    }
}

impl ClientControl {
    /// A control for a session of `user` from `peer`.
    pub fn new(user: String, peer: String) -> Rc<Self> {
        Rc::new(ClientControl {
            user,
            peer,
            state: Cell::new((ClientState::Idle, Instant::now())),
            schema: RefCell::new(None),
            pinned: Cell::new(None),
            prepared: Cell::new(0),
            transaction_began: Cell::new(None),
            statement: Cell::new(None),
            new_statement: RefCell::new(None),
            running_on: Cell::new(None),
            killed: Cell::new(false),
            kills_in_flight: Cell::new(0),
            kills_done: RefCell::new(Vec::new()),
            late_kill: Cell::new(false),
            wait_interrupted: Cell::new(false),
            limits_changed: Cell::new(false),
            waker: RefCell::new(None),
        })
    }

    /// Records (or clears) the backend thread running the client's command.
    pub fn set_running_on(&self, at: Option<ServerThread>) {
        self.running_on.set(at);
    }

    /// The backend thread running the client's command.
    pub fn running_on(&self) -> Option<ServerThread> {
        self.running_on.get()
    }

    /// Marks a `KILL QUERY` of the client's running statement as on its
    /// way to the server until the guard drops. The statement may end
    /// before the `KILL` arrives; were its connection handed to another
    /// client meanwhile, the `KILL` would stop that client's statement.
    /// (A `KILL QUERY` that finds the connection idle is forgotten by the
    /// server before its next command.)
    pub fn kill_in_flight(self: &Rc<Self>) -> KillInFlight {
        self.kills_in_flight.set(self.kills_in_flight.get() + 1);
        KillInFlight(self.clone())
    }

    /// True while a `KILL QUERY` of the client's statement is on its way.
    pub fn kill_pending(&self) -> bool {
        self.kills_in_flight.get() > 0
    }

    /// Resolves once no `KILL QUERY` of the client's statement is on its
    /// way: only then may its connection serve anyone else.
    pub async fn kills_settled(&self) {
        while self.kill_pending() {
            let (tx, rx) = oneshot::channel();
            self.kills_done.borrow_mut().push(tx);
            rx.await;
        }
    }

    /// True (once) when a `KILL QUERY` of the client's statement may still
    /// reach the server ([`KillInFlight::may_arrive_late`]): the
    /// statement's connection must not serve another client, whose
    /// statement that `KILL` would stop.
    pub fn take_late_kill(&self) -> bool {
        self.late_kill.replace(false)
    }

    /// Records what the session is doing now.
    pub fn set_state(&self, state: ClientState) {
        if self.state.get().0 != state {
            self.state.set((state, Instant::now()));
        }
    }

    /// What the session is doing and since when.
    pub fn state(&self) -> (ClientState, Instant) {
        self.state.get()
    }

    /// Records the statement the client's command runs, by its digest key,
    /// with its shape when the digest table has none yet (for `SHOW
    /// CLIENTS`); `None` as a command that runs no statement begins.
    pub fn set_statement(&self, key: Option<u64>, new_shape: Option<&str>) {
        self.statement.set(key);
        if new_shape.is_some() || self.new_statement.borrow().is_some() {
            *self.new_statement.borrow_mut() = new_shape.map(str::to_string);
        }
    }

    /// The digest key of the statement the client's command runs, if any.
    pub fn statement_key(&self) -> Option<u64> {
        self.statement.get()
    }

    /// The shape of the statement the client's command runs, if any.
    pub fn statement(&self, digests: &crate::digest::Digests) -> Option<String> {
        let key = self.statement.get()?;
        digests
            .text_of(key)
            .or_else(|| self.new_statement.borrow().clone())
    }

    /// Records the session's schema (copied only when it changed).
    pub fn set_schema(&self, schema: Option<&[u8]>) {
        if self.schema.borrow().as_deref() != schema {
            *self.schema.borrow_mut() = schema.map(<[u8]>::to_vec);
        }
    }

    /// The session's schema.
    pub fn schema(&self) -> Option<String> {
        self.schema
            .borrow()
            .as_deref()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    /// Records why the session holds a backend connection (and which pool's).
    pub fn set_pinned(&self, pinned: Option<(PinReason, u32)>) {
        self.pinned.set(pinned);
    }

    /// Why the session holds a backend connection, and from which pool.
    pub fn pinned(&self) -> Option<(PinReason, u32)> {
        self.pinned.get()
    }

    /// Records how many prepared statements the session holds open.
    pub fn set_prepared(&self, held: usize) {
        self.prepared.set(held);
    }

    /// How many prepared statements the session holds open.
    pub fn prepared(&self) -> usize {
        self.prepared.get()
    }

    /// Records when the session's open transaction began (`None`: none is open).
    pub fn set_transaction_began(&self, began: Option<Instant>) {
        self.transaction_began.set(began);
    }

    /// When the session's open transaction began, if one is open.
    pub fn transaction_began(&self) -> Option<Instant> {
        self.transaction_began.get()
    }

    /// Asks the session to end.
    pub fn kill(&self) {
        self.killed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// True once the session was killed.
    pub fn is_killed(&self) -> bool {
        self.killed.get()
    }

    /// Stops a command that is not on a backend thread yet (`KILL QUERY`
    /// of a queued command, or of one about to be sent); no effect on a
    /// session in another state.
    pub fn interrupt_wait(&self) {
        if self.state.get().0 != ClientState::Waiting {
            return;
        }
        self.wait_interrupted.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// True when a wait interruption is pending.
    pub fn wait_interrupted(&self) -> bool {
        self.wait_interrupted.get()
    }

    /// Clears (and returns) a wait interruption.
    pub fn take_wait_interrupted(&self) -> bool {
        self.wait_interrupted.replace(false)
    }

    /// Resolves when the session is killed or its wait interrupted.
    pub fn wait_stopped(self: &Rc<Self>) -> WaitStopped {
        WaitStopped(self.clone())
    }

    /// Tells the session a reload changed the limits on its wait for a
    /// command (`client.idle_timeout` and the like).
    pub fn note_limits_changed(&self) {
        self.limits_changed.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Clears (and returns) a change of limits noted since the last call.
    pub fn take_limits_changed(&self) -> bool {
        self.limits_changed.replace(false)
    }

    /// Resolves when the session is killed, or a reload changed its
    /// limits (taking that change, see [`ClientControl::take_limits_changed`]):
    /// what an idle session's wait for a command must wake for.
    pub fn idle_stirred(self: &Rc<Self>) -> IdleStirred {
        IdleStirred(self.clone())
    }

    /// Resolves when the session is killed.
    pub fn killed(self: &Rc<Self>) -> Killed {
        Killed(self.clone())
    }

    /// Runs `fut` to its end, or `None` as soon as the session is killed
    /// (a wait a `KILL` must cut short, as the server's does).
    pub async fn unless_killed<T>(self: &Rc<Self>, fut: impl Future<Output = T>) -> Option<T> {
        let killed = self.killed();
        futures_lite::future::or(async { Some(fut.await) }, async {
            killed.await;
            None
        })
        .await
    }
}

/// Future returned by [`ClientControl::killed`].
pub struct Killed(Rc<ClientControl>);

impl Future for Killed {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.killed.get() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// What woke an idle session's wait ([`ClientControl::idle_stirred`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stirred {
    /// The session was killed.
    Killed,
    /// A reload changed its limits.
    LimitsChanged,
}

/// Future returned by [`ClientControl::idle_stirred`].
pub struct IdleStirred(Rc<ClientControl>);

impl Future for IdleStirred {
    type Output = Stirred;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stirred> {
        if self.0.killed.get() {
            return Poll::Ready(Stirred::Killed);
        }
        if self.0.take_limits_changed() {
            return Poll::Ready(Stirred::LimitsChanged);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Future returned by [`ClientControl::wait_stopped`].
pub struct WaitStopped(Rc<ClientControl>);

impl Future for WaitStopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.killed.get() || self.0.wait_interrupted.get() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Live sessions of one shard.
#[derive(Debug, Default)]
pub struct ClientRegistry(RefCell<HashMap<ClientId, Rc<ClientControl>>>);

impl ClientRegistry {
    /// Adds a session.
    pub fn insert(&self, id: ClientId, control: Rc<ClientControl>) {
        self.0.borrow_mut().insert(id, control);
    }

    /// Removes a session.
    pub fn remove(&self, id: ClientId) {
        self.0.borrow_mut().remove(&id);
    }

    /// Every live session.
    pub fn all(&self) -> Vec<(ClientId, Rc<ClientControl>)> {
        self.0.borrow().iter().map(|(id, c)| (*id, c.clone())).collect()
    }

    /// Looks a session up.
    pub fn get(&self, id: ClientId) -> Option<Rc<ClientControl>> {
        self.0.borrow().get(&id).cloned()
    }
}

/// A parsed `KILL` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KillRequest {
    /// The Funnel connection id, as written (a Funnel id is 32-bit: a
    /// larger one names no client, as a thread id the server does not
    /// have).
    pub id: u64,
    /// `KILL QUERY`: only the running statement.
    pub query_only: bool,
}

/// Why a kill was refused (MySQL's codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillRefused {
    /// 1094: no such connection.
    UnknownThread(u32),
    /// 1095: it belongs to another user.
    NotOwner(u32),
    /// The backend could not be reached to stop the query, or did not
    /// answer the `KILL` in time.
    Backend(String),
    /// The server answered the `KILL QUERY` with this ERR: it did not take
    /// effect, and will not later.
    Server(ErrPacket),
}

/// True when a process-list row names Funnel's connection from
/// `local_port`: the thread's `HOST` (`host:port`) has that port, and the
/// same host as the checking connection's own row (`own_host`), however
/// the server names hosts (an address, or a resolved name).
pub fn is_funnels_thread(thread_host: &str, own_host: &str, local_port: u16) -> bool {
    let split = |h: &str| {
        h.rsplit_once(':')
            .map(|(host, port)| (host.to_string(), port.parse::<u16>().ok()))
    };
    match (split(thread_host), split(own_host)) {
        (Some((host, Some(port))), Some((own, _))) => port == local_port && host == own,
        _ => false,
    }
}

/// Parses `KILL [HARD|SOFT] [CONNECTION|QUERY] id`; `None` when the text is
/// not that (including MariaDB's `KILL QUERY ID query_id` and `KILL USER`).
pub fn parse_kill(sql: &[u8]) -> Option<KillRequest> {
    // Every query comes here: one that starts with another ASCII letter is
    // told apart without checking all its text (a bulk INSERT) for UTF-8.
    // (`trim` below also skips a vertical tab and non-ASCII spaces.)
    let first = sql.iter().find(|c| !(c.is_ascii_whitespace() || **c == 0x0b));
    if first.is_some_and(|c| c.is_ascii() && !c.eq_ignore_ascii_case(&b'k')) {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?.trim().trim_end_matches(';').trim();
    let mut words = text.split_ascii_whitespace().peekable();
    if !words.next()?.eq_ignore_ascii_case("KILL") {
        return None;
    }
    if words
        .peek()
        .is_some_and(|w| w.eq_ignore_ascii_case("HARD") || w.eq_ignore_ascii_case("SOFT"))
    {
        words.next();
    }
    let mut query_only = false;
    if let Some(w) = words.peek() {
        if w.eq_ignore_ascii_case("QUERY") {
            query_only = true;
            words.next();
        } else if w.eq_ignore_ascii_case("CONNECTION") {
            words.next();
        }
    }
    let id = words.next()?.parse::<u64>().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(KillRequest { id, query_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_parse_forms() {
        let k = |s: &str| parse_kill(s.as_bytes());
        assert_eq!(
            k("KILL 5"),
            Some(KillRequest {
                id: 5,
                query_only: false
            })
        );
        assert_eq!(
            k("kill query 16777217;"),
            Some(KillRequest {
                id: 16777217,
                query_only: true
            })
        );
        assert_eq!(
            k("KILL HARD CONNECTION 9"),
            Some(KillRequest {
                id: 9,
                query_only: false
            })
        );
        assert_eq!(
            k("KILL QUERY ID 9"),
            None,
            "MariaDB's query-id form is not a connection id"
        );
        assert_eq!(
            k("KILL 4294967296").map(|r| r.id),
            Some(4_294_967_296),
            "beyond a Funnel id: no client has it (ERR 1094), not another form"
        );
        assert_eq!(k("KILL 18446744073709551616"), None);
        assert_eq!(k("KILL USER bob"), None);
        assert_eq!(k("KILLED 5"), None);
        // Whatever `str::trim` skips before the word, the quick look at the
        // first byte skips too (or leaves to the full parse).
        for lead in ["\x0b", " \t\r\n", "\u{a0}", "\u{3000}", "\u{85}"] {
            assert_eq!(k(&format!("{lead}KILL 7")).map(|r| r.id), Some(7), "{lead:?}");
        }
        assert_eq!(k("INSERT INTO t VALUES ('KILL 5')"), None);
        assert_eq!(parse_kill(b"\xffKILL 5"), None);
    }

    #[test]
    fn kill_names_funnels_thread_by_host_and_port() {
        assert!(is_funnels_thread("127.0.0.1:40000", "127.0.0.1:40002", 40000));
        assert!(is_funnels_thread("localhost:40000", "localhost:5", 40000));
        assert!(is_funnels_thread("::1:40000", "::1:41000", 40000));
        assert!(
            !is_funnels_thread("127.0.0.1:40001", "127.0.0.1:40002", 40000),
            "another port"
        );
        assert!(
            !is_funnels_thread("10.0.0.9:40000", "127.0.0.1:40002", 40000),
            "another host"
        );
        assert!(
            !is_funnels_thread("localhost", "localhost", 40000),
            "a Unix socket"
        );
        assert!(!is_funnels_thread("", "127.0.0.1:1", 40000));
    }

    #[test]
    fn kill_control_wakes_and_records() {
        let c = ClientControl::new("u".into(), "127.0.0.1".into());
        let at = ServerThread {
            pool: 1,
            id: 42,
            local_port: Some(40000),
        };
        c.set_running_on(Some(at));
        assert_eq!(c.running_on(), Some(at));
        assert!(!c.is_killed());
        c.kill();
        assert!(c.is_killed());
        let reg = ClientRegistry::default();
        let id = ClientId(7);
        reg.insert(id, c);
        assert!(reg.get(id).is_some());
        reg.remove(id);
        assert!(reg.get(id).is_none());
    }
}
