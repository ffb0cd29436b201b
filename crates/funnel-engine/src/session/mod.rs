//! One client connection for its whole life on this core.
//!
//! The loop reads a command, asks [`command::plan`] what to do, and either
//! answers locally or leases a backend connection, brings the connection's
//! schema in line with the session's, forwards the command, streams the
//! response back and returns the connection, unless the server's status
//! flags or the command itself say the session must keep it (pinning).

mod balancer;
mod builtin_calls;
mod cached_reads;
mod causal_reads;
pub mod command;
mod digest_count;
pub mod dynamic_sql;
pub mod handshake;
mod holding;
mod kill_command;
mod literal_backslashes;
mod local_set;
mod lost_transaction;
pub mod named_locks;
mod own_err;
use lost_transaction::Verdict;
pub mod pinning;
mod query_logging;
mod read_back;
mod read_command;
mod reset;
pub mod rewrite;
mod routing;
mod rule_actions;
#[cfg(test)]
mod scan_cost;
#[cfg(test)]
mod scan_fuzz;
mod sql_lex;
mod stateless_call;
pub(crate) use sql_lex::{skip_quoted as sql_lex_skip_quoted, skip_until as sql_lex_skip_until};
mod statements;
mod sync;
mod transaction_time;
pub mod user_vars;
pub mod users;
pub mod variables;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use funnel_protocol::framing::{write_small_packet, PacketHeader, MAX_CHUNK};
use funnel_protocol::response::{ErrPacket, OkPacket};
use funnel_protocol::session_track::TrackingView;
use funnel_protocol::tracker::Expect;
use funnel_protocol::{Capabilities, StatusFlags};

use crate::digest::AnsweredBy;
use crate::error::EngineError;
use crate::ids::ClientId;
use crate::iobuf::IoBuf;
use crate::kill::{ClientControl, ClientState};
use crate::pool::conn::{BackendConn, BackendError, Deadline, ServerThread};
use crate::pool::key::PoolKey;
use crate::prepared::client::ClientStatements;
use crate::relay::{relay_response, within_unless_killed, ClientSide, RelayEnd, StoppedStatement};
use crate::router::Access;
use crate::rt::{self, Stream};
use crate::schema_trust::{Next, SchemaVerdict};
use crate::shard::Shard;
use crate::stats::Stats;
use command::{plan, Forward, Plan};
use handshake::{login, LoginError};
use named_locks::LockNames;
use pinning::{PinReason, PinSet};
use rewrite::{mentions_previous_statement, substitute, LastResults, OnServer, Substitution};
use routing::Route;
use users::UserEntry;
use variables::SessionVars;

/// How long a connection stays with a client after a statement that left
/// warnings or an error, waiting for its `SHOW WARNINGS`.
/// How long a login waits for a backend connection to recheck a schema
/// this core accepted before (its trust ran out). When every connection is
/// busy or pinned for longer, the schema stays trusted and the login goes
/// on: the login itself needs no connection, and an operator must be able
/// to log in to `KILL` whatever holds them all. Before, such a login
/// queued behind every waiting command and got ERR 9001 at
/// `backlog.wait_timeout`. A schema dropped meanwhile fails the client's
/// first statement instead of its login.
const RECHECK_PATIENCE: Duration = Duration::from_secs(1);

const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

/// Initial read buffer of a client; small, because most clients are idle
/// most of the time and each one costs its buffer.
const CLIENT_BUF: usize = 2048;

/// `ER_TOO_MANY_ROWS`: a `SELECT ... INTO` selected more than one row.
const ER_TOO_MANY_ROWS: u16 = 1172;

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The client quit or closed its socket.
    Closed,
    /// Funnel closed the session after telling the client why.
    Refused,
    /// Funnel closed the session without a word: its backend failed in the
    /// middle of a packet (or of a LOCAL INFILE transfer), where no ERR can
    /// reach the client's parser.
    MidPacket,
}

/// `CREATE` and `ALTER` keep their text: a view, routine, trigger or
/// column default that reads `LAST_INSERT_ID()` must read it when it runs.
fn is_definition(sql: &[u8]) -> bool {
    sql_lex::first_word_is(sql, b"CREATE") || sql_lex::first_word_is(sql, b"ALTER")
}

/// A cheap statement that resets the server's diagnostics area: one that
/// opens a table (every account may read information_schema). Not a
/// `SELECT` or a `DO` with a subquery, which set what `FOUND_ROWS()`
/// answers: a pinned session's server answers it, and the client's
/// `SHOW WARNINGS` leaves it alone on the server (soak seed 70114).
const CLEAR_DIAGNOSTICS: &[u8] = b"SHOW CREATE TABLE information_schema.ENGINES";

/// The query text that panics its session in builds with the
/// `fault-injection` feature (tests only), when the environment has
/// `FUNNEL_FAULT_INJECTION` set: a binary built for tests and run elsewhere
/// does not panic on it.
#[cfg(feature = "fault-injection")]
pub const FAULT_PANIC_QUERY: &[u8] = b"/* funnel fault injection: panic */";

/// Serves one accepted client until it leaves. A bug that panics ends this
/// client's session alone (its connections close, its counts are given
/// back), not the core and every other client on it.
pub async fn serve_isolated(shard: Rc<Shard>, stream: Stream) {
    use futures_lite::FutureExt;
    let panicked = std::panic::AssertUnwindSafe(serve(shard.clone(), stream))
        .catch_unwind()
        .await;
    if let Err(cause) = panicked {
        let what = cause
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| cause.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Stats::bump(&shard.stats.session_panics);
        tracing::error!(shard = %shard.id, panic = %what, "a client session panicked; it was closed");
    }
}

/// Gives back what a session counts against its core, however the session
/// ends (a panic included).
struct Admitted {
    shard: Rc<Shard>,
    id: ClientId,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shard.clients.remove(self.id);
        let active = &self.shard.stats.clients_active;
        active.set(active.get().saturating_sub(1));
    }
}

/// Serves one accepted client until it leaves.
pub async fn serve(shard: Rc<Shard>, mut stream: Stream) {
    let id = shard.next_client_id();
    let stats = shard.stats.clone();
    Stats::bump(&stats.clients_accepted);
    stats.clients_active.set(stats.clients_active.get() + 1);
    let _admitted = Admitted {
        shard: shard.clone(),
        id,
    };
    let _ = stream.set_nodelay();
    let mut buf = IoBuf::with_capacity(CLIENT_BUF);
    let version = shard.server_version();
    let handshake_limit = shard.config().client.handshake_timeout.as_duration();
    let peer = stream.peer_host();
    let begun = Instant::now();
    let Some(peer) = balancer::client_host(&shard, &mut stream, &mut buf, peer, handshake_limit).await else {
        return;
    };
    let tls = shard.tls.borrow().clone();
    // A balancer's PROXY header and the login share one deadline: a slow
    // header does not buy the login a second handshake_timeout.
    let outcome = rt::timeout(
        handshake_limit.saturating_sub(begun.elapsed()),
        Box::pin(login(
            &mut stream,
            &mut buf,
            &shard.users(),
            id,
            &version,
            shard.greeting_charset(),
            shard.extended_caps(),
            &peer,
            tls.as_ref(),
        )),
    )
    .await;
    let session = match outcome {
        None => {
            tracing::debug!(client = %id, %peer, "handshake timed out");
            let err = ErrPacket::new(
                1159,
                "08S01",
                "Got timeout reading communication packets (client.handshake_timeout)",
            );
            stats.count_error(err.code);
            // Mid-TLS-handshake the client reads TLS records only: a
            // plaintext packet would reach it as a garbled record.
            if !stream.tls_handshake_unfinished() {
                let _ = rt::timeout(Duration::from_millis(100), send_err(&mut stream, 2, &err)).await;
            }
            None
        }
        Some(Err(LoginError::Io(e))) => {
            tracing::debug!(client = %id, %peer, error = %e, "client left during handshake");
            None
        }
        Some(Err(LoginError::Refuse(err, seq))) => {
            Stats::bump(&stats.clients_refused);
            if shard.log_rate.allow() {
                tracing::info!(client = %id, %peer, error = %err, "login refused");
            }
            let err = err.to_err_packet();
            stats.count_error(err.code);
            let _ = send_err(&mut stream, seq, &err).await;
            None
        }
        Some(Ok(l)) => {
            let Some(slot) = l.user.admit() else {
                Stats::bump(&stats.clients_refused);
                let err = ErrPacket::new(
                    1203,
                    "42000",
                    format!(
                        "User {} already has more than 'max_user_connections' active connections",
                        l.user.name
                    ),
                );
                stats.count_error(err.code);
                let _ = send_err(&mut stream, l.next_seq, &err).await;
                return;
            };
            let control = ClientControl::new(l.user.name.clone(), peer.clone());
            control.set_schema(l.schema.as_deref());
            shard.clients.insert(id, control.clone());
            let mut s = Session {
                _slot: slot,
                control,
                user: l.user.clone(),
                users_generation: None,
                last_backend: Rc::from(""),
                scramble: l.scramble.clone(),
                peer: peer.clone(),
                id,
                shard: shard.clone(),
                stream,
                buf,
                caps: l.caps,
                key: PoolKey::for_client(l.caps, l.charset),
                schema: l.schema,
                pinned: None,
                pin_reason: None,
                pins: PinSet::default(),
                next_tx_begun: false,
                locks: named_locks::HeldLocks::default(),
                out: BytesMut::new(),
                stmts: ClientStatements::new(shard.statements.held()),
                vars: SessionVars::default(),
                user_vars: user_vars::UserVars::default(),
                multi_statements: l.caps.contains(Capabilities::CLIENT_MULTI_STATEMENTS),
                last_status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
                sql_mode_unknown: true,
                last_result_columns: 0,
                last_succeeded: true,
                open_cursors: Default::default(),
                last: LastResults::default(),
                calc_found_rows: false,
                tracks_state_itself: false,
                causal: Default::default(),
                causal_unwaited: false,
                insert_id_on_server: false,
                insert_id_given_to_calls: false,
                own_row_count_next: false,
                found_rows_off_server: false,
                stateless_pins: false,
                foreign_diagnostics: false,
                own_err: None,
                linger: false,
                query_rule: None,
                log: Default::default(),
                query_rules_seen: 0,
                query_text_sent: None,
                prepared_rule: Default::default(),
                cache_miss: None,
                digest: None,
                cmd_started: Instant::now(),
                cmd_sent: Instant::now(),
                tx_began: None,
                tx_effect: transaction_time::Effect::default(),
                tx_rolled_back: false,
                scratch: Vec::new(),
                long_data: Vec::new(),
                state_lost: false,
                failed_change_users: 0,
                tx_lost: false,
                command_commits: false,
                completion_type_set: false,
                ends_lost_transaction: false,
                tx_lost_at_commit: false,
                xa: false,
                sql_prepared_changes: false,
                dynamic_text_changes: false,
                no_reply: false,
                deferred_err: None,
                ending_err: None,
                learn_set: None,
            };
            match Box::pin(s.finish_login(l.next_seq)).await {
                Ok(()) => Some(s),
                Err(_) => {
                    s.end();
                    None
                }
            }
        }
    };
    if let Some(mut s) = session {
        let end = s.command_loop().await;
        tracing::debug!(client = %id, ?end, "session ended");
        s.end();
    }
}

/// A logged-in client.
struct Session {
    id: ClientId,
    shard: Rc<Shard>,
    stream: Stream,
    buf: IoBuf,
    caps: Capabilities,
    key: PoolKey,
    /// The schema the client believes it is in.
    schema: Option<Vec<u8>>,
    /// The backend connection the session keeps between commands.
    pinned: Option<BackendConn>,
    /// Why it is kept (for logs and statistics).
    pin_reason: Option<PinReason>,
    /// Lasting state that only that connection has: it is kept while any
    /// reason is left (until `COM_RESET_CONNECTION` at the latest).
    pins: PinSet,
    /// A transaction began on the pinned connection since the last `SET
    /// TRANSACTION` (whose pin ends with that transaction).
    next_tx_begun: bool,
    /// Named locks the session may hold on its pinned connection.
    locks: named_locks::HeldLocks,
    /// Scratch space for packets Funnel writes itself.
    out: BytesMut,
    /// This client's place in its user's `max_connections`.
    _slot: users::ConnectionSlot,
    /// How other code reaches this session (KILL).
    control: Rc<ClientControl>,
    /// The account (hostgroups, limits).
    user: Rc<UserEntry>,
    /// The shard's user-table generation `user` was last looked up in;
    /// `None` until the first command (see `follow_user_changes`).
    users_generation: Option<u64>,
    /// The backend of the connection last leased (for error messages).
    last_backend: Rc<str>,
    /// This connection's scramble (for `COM_CHANGE_USER`).
    scramble: Vec<u8>,
    /// The client's address, for error messages.
    peer: String,
    /// The client's prepared statements.
    stmts: ClientStatements,
    /// Session variables the client set.
    vars: SessionVars,
    /// User variables the client set (when it is not pinned for them).
    user_vars: user_vars::UserVars,
    /// Multi-statements on (from the handshake, then `COM_SET_OPTION`).
    multi_statements: bool,
    /// Status flags of the last complete response (at first, a fresh
    /// session's: see [`Session::start_fresh_status`]).
    last_status: StatusFlags,
    /// No server has told this session its `sql_mode` yet (no connection
    /// of the hostgroup had opened at login or reset): a backslash may be a
    /// plain character (see `literal_backslashes`).
    sql_mode_unknown: bool,
    /// The column count of the first result set of the last command
    /// relayed to its end (0: none; cleared as an execute is sent), to
    /// tell a prepared statement's recorded description from what the
    /// server now returns.
    last_result_columns: u64,
    /// The last relayed response was complete and no error.
    last_succeeded: bool,
    /// Client statement ids with an open cursor (they pin the connection).
    open_cursors: std::collections::BTreeSet<u32>,
    /// What the client's own last statements returned.
    last: LastResults,
    /// The last statement used SQL_CALC_FOUND_ROWS: FOUND_ROWS() must come
    /// from its (pinned) connection.
    calc_found_rows: bool,
    /// The client set `session_track_state_change` itself (on the
    /// connection it keeps since): its replies' state-change reports are
    /// its own, not Funnel's.
    tracks_state_itself: bool,
    /// What a replica must have applied to serve this session a read,
    /// for a user with `causal_reads` (see [`crate::causal`]).
    causal: crate::causal::CausalState,
    /// The connection the session took last from the pool served a read
    /// of a `causal_reads` user without the wait for its writes (a read of
    /// no table's data, see `causal_reads::may_read_data`): kept for that
    /// read's warnings, it must not serve a read of data without one.
    causal_unwaited: bool,
    /// Pinned for `PreviousStatementInfo`: the connection's
    /// `LAST_INSERT_ID()` is the client's. Not when the pin began on a
    /// connection that never saw the client's inserts (it has its own, or
    /// another client's); Funnel answers from its own record until the
    /// connection is given the id or makes one.
    insert_id_on_server: bool,
    /// Pinned by a `CALL`, whose connection was given the client's last
    /// insert id before it: the procedures it calls read the client's own
    /// (see `forward`), and every statement since ran there.
    insert_id_given_to_calls: bool,
    /// Funnel may run a statement of its own on the pinned connection
    /// after the client's last one (a schema switch or `SET` back to the
    /// session's after a prepare the server refused under a statement's
    /// schema and variables): the client's next query is given its own
    /// `ROW_COUNT()`, not the server's.
    own_row_count_next: bool,
    /// Pinned for `PreviousStatementInfo` by a statement that set no
    /// count for `FOUND_ROWS()` (`SET sql_auto_is_null = 1`, `SET
    /// last_insert_id = 5`): the connection's count is whatever its last
    /// result set left, maybe another client's, until a result set of the
    /// client's there. Funnel answers from its own record until then.
    found_rows_off_server: bool,
    /// Every pin reason was left by `CALL`s of stateless procedures, kept
    /// while something else holds the connection too (a transaction): the
    /// end of that ends them (see `stateless_call.rs`). Any other pin
    /// clears it, but one for the next transaction, which ends by itself.
    stateless_pins: bool,
    /// The connection is kept for one more command so `SHOW WARNINGS` and
    /// friends see this client's last statement.
    linger: bool,
    /// The rule that matched the command being run, if one did: a text
    /// query's (see `apply_query_rule`) or an execute's. Its `hostgroup`
    /// routes a text query, its `timeout` bounds the command's run. Kept
    /// here rather than in the command's `Forward`, which every command
    /// moves around.
    query_rule: Option<Rc<crate::rules::Action>>,
    /// What the query log is told of the command under way.
    log: query_logging::LogDraft,
    /// The [`crate::rules::Rules::id`] of the rules the text query being
    /// run was matched against when the client sent it, 0 if none: its
    /// rule stands while they are the shard's.
    query_rules_seen: u32,
    /// The text query being run as the client sent it, when the query
    /// rules rewrote it (the buffer holds the new text): rules a reload
    /// brought while it waited match this, as they would if it came now.
    query_text_sent: Option<Vec<u8>>,
    /// What the query rules made of a prepare being served, for the
    /// client's statement to keep.
    prepared_rule: crate::prepared::client::PreparedRule,
    /// The query-cache key (with its rule's `cache_ttl` and the cache's
    /// generation at the lookup) of the read being run, which the cache
    /// did not hold: its reply is captured to keep.
    cache_miss: Option<(crate::query_cache::CacheKey, Duration, u64)>,
    /// The diagnostics area of the connection the session holds may still
    /// hold another client's warnings: it came from the pool marked stale,
    /// and the session's statements on it since opened no table and left
    /// no warnings (`START TRANSACTION`, `SET`, ...). A diagnostics read
    /// clears them first.
    foreign_diagnostics: bool,
    /// The ERR Funnel answered the client's last statement with itself,
    /// which its next diagnostics read is to report (see `own_err.rs`).
    own_err: Option<ErrPacket>,
    /// The running statement's digest key (and its shape, when new).
    digest: Option<(u64, Option<String>)>,
    /// When the running command arrived.
    cmd_started: Instant,
    /// When the last command relayed went to its server (after any wait
    /// for a connection): a transaction it opened counts from then.
    cmd_sent: Instant,
    /// When the command that opened the session's open transaction went
    /// to the server (`client.max_transaction_time` counts from it; a wait
    /// for a connection before holds none, nor any lock); `None` outside
    /// a transaction.
    tx_began: Option<Instant>,
    /// What the command being served does to the open transaction, for
    /// `client.max_transaction_time` (read only inside one, or with
    /// autocommit off, where a statement may open one).
    tx_effect: transaction_time::Effect,
    /// The command just served failed with a deadlock (1213), which rolled
    /// back the whole transaction: the connection's status still says one
    /// is open, but the next is new, counted from the command that opens
    /// it.
    tx_rolled_back: bool,
    /// Reused space for a statement command's payload.
    scratch: Vec<u8>,
    /// The client statements that were sent long data: the held connection
    /// keeps it, per statement, until the execute or a reset.
    long_data: Vec<u32>,
    /// A backend connection holding this session's state failed: the
    /// session ends once the client has its error.
    state_lost: bool,
    /// `COM_CHANGE_USER`s refused on this connection (see
    /// `reset.rs`, `MAX_FAILED_CHANGE_USERS`).
    failed_change_users: u8,
    /// A backend connection holding only this session's transaction
    /// failed: statements are refused until the client ends it
    /// (`lost_transaction.rs`).
    tx_lost: bool,
    /// The command being served is a `COMMIT` ([`lost_transaction::commits`]).
    command_commits: bool,
    /// The session set `completion_type` (and is pinned for it): after
    /// each `COMMIT` or `ROLLBACK` Funnel pings its connection, which the
    /// server closed if the value was `RELEASE`.
    completion_type_set: bool,
    /// The command being served ends the lost transaction (`tx_lost`,
    /// cleared for it) if it runs: a `ROLLBACK AND CHAIN`.
    ends_lost_transaction: bool,
    /// `tx_lost` came from a failure during the transaction's `COMMIT`,
    /// which may have committed: the refusals must not say it rolled back.
    tx_lost_at_commit: bool,
    /// An `XA` statement succeeded in the transaction the session's
    /// connection holds: its prepares go to that connection, where the
    /// server refuses them once the branch ended (1399), never answered
    /// from the registry.
    xa: bool,
    /// A text `PREPARE` of the session may have made a statement that
    /// changes what prepares describe (see [`Forward::prepares_changes`]):
    /// its text `EXECUTE`s are had as such changes.
    sql_prepared_changes: bool,
    /// The text of a variable the running query runs as SQL (`PREPARE s
    /// FROM @v`, `EXECUTE IMMEDIATE @v`, read by
    /// [`Self::check_dynamic_vars`]) may change what prepares describe.
    dynamic_text_changes: bool,
    /// The running command takes no response (`COM_STMT_SEND_LONG_DATA`):
    /// errors are kept in `deferred_err` instead of being sent, since an
    /// unexpected ERR would be read as the reply to the client's next command.
    no_reply: bool,
    /// The first error of a command that takes no response.
    deferred_err: Option<ErrPacket>,
    /// The session's state died during a command that takes no response:
    /// the client's next command gets this ERR, then the session ends.
    ending_err: Option<ErrPacket>,
    /// The running command is a plain `SET` whose clean OK is to be
    /// learned under this key (see `local_set.rs`).
    learn_set: Option<crate::learned_sets::SetKey>,
}

impl Session {
    /// Validates the requested schema (through a backend, once per schema
    /// and minute on this core, however many logins ask at once) and sends
    /// the final OK of the login.
    async fn finish_login(&mut self, seq: u8) -> Result<(), End> {
        if let Some((err, engine)) = self.schema_refusal().await {
            if engine {
                self.shard.stats.count_error(err.code);
            }
            let _ = self.write_err(seq, &err).await;
            return Err(End::Refused);
        }
        // A `KILL` during the check (which it ended) closes the login.
        if self.control.is_killed() {
            return Err(End::Closed);
        }
        self.start_fresh_status();
        let ok = OkPacket {
            status: self.client_status(),
            ..Default::default()
        };
        self.write_ok(seq, &ok).await?;
        if self.caps.contains(Capabilities::CLIENT_COMPRESS) {
            // From the packet after the login OK on, as the server does.
            // What was read with the login (or its auth switch answer) is
            // already the client's compressed stream, not plain packets.
            let early = self.buf.bytes().to_vec();
            self.buf.clear();
            self.stream.start_compression(&early);
        }
        Ok(())
    }

    /// Why the schema the login names (`self.schema`) is refused, with
    /// whether the ERR is Funnel's own (not the server's); `None` when it
    /// names none or the server accepts it.
    async fn schema_refusal(&mut self) -> Option<(ErrPacket, bool)> {
        let schema = self.schema.clone()?;
        let verdict = loop {
            match self.shard.schemas.next(&schema) {
                Next::Trusted => break SchemaVerdict::Accepted,
                Next::Wait(answer) => {
                    // A `KILL` (during a change of user) ends the wait:
                    // the caller looks for it next.
                    match self.control.unless_killed(answer).await {
                        Some(SchemaVerdict::Abandoned) => continue,
                        Some(verdict) => break verdict,
                        None => break SchemaVerdict::Abandoned,
                    }
                }
                Next::Check(run) => {
                    let patience = self
                        .shard
                        .schemas
                        .accepted_before(&schema)
                        .then_some(RECHECK_PATIENCE);
                    let verdict = self.check_schema(&schema, patience).await;
                    run.finish(&verdict);
                    break verdict;
                }
            }
        };
        match verdict {
            SchemaVerdict::Refused { err, engine } => Some((err, engine)),
            _ => None,
        }
    }

    /// Takes a fresh session's status flags on the user's servers, as the
    /// server's own login OK would carry them: client libraries escape
    /// strings by NO_BACKSLASH_ESCAPES from the first query on, and
    /// Funnel's scans must read backslashes as the server will.
    pub(super) fn start_fresh_status(&mut self) {
        let learned = self.shard.backends.login_status(&self.user.default_hostgroup);
        let mode = learned.map_or(0, |s| s.0 & StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES.0);
        self.last_status = StatusFlags(StatusFlags::SERVER_STATUS_AUTOCOMMIT.0 | mode);
        self.sql_mode_unknown = learned.is_none();
    }

    /// Asks a backend of the user's default hostgroup whether `schema` exists
    /// and may be used (`COM_INIT_DB`). With `patience`, a schema accepted
    /// before: when no connection comes free within it, the schema stays
    /// trusted (see [`RECHECK_PATIENCE`]).
    async fn check_schema(&mut self, schema: &[u8], patience: Option<Duration>) -> SchemaVerdict {
        // Like a `USE`, it changes no data: a replica may answer it while
        // the writer is away (see `route`).
        let route = Route {
            hostgroup: self.user.default_hostgroup.clone(),
            access: Access::Session,
            fallback: self.user.read_hostgroup.clone(),
        };
        // A login meets `PAUSE` as a command does: during a failover the
        // primary it would ask may be on its way out.
        let wait = self.shard.config().backlog.wait_timeout.as_duration();
        let checkout = async {
            self.shard.wait_unpaused(wait).await?;
            let checkout = self.checkout_on(&route, &[]);
            // `None`: a recheck waited [`RECHECK_PATIENCE`] in vain.
            match patience {
                Some(p) => rt::timeout(p, checkout).await.transpose(),
                None => checkout.await.map(Some),
            }
        };
        // A `KILL` (during a change of user) ends the wait for a
        // connection, as the server closes a connection it is
        // authenticating on: the check is left to whoever waits for it
        // (`Abandoned`), and the caller looks for the `KILL` next.
        let Some(checked_out) = self.control.unless_killed(checkout).await else {
            return SchemaVerdict::Abandoned;
        };
        let mut conn = match checked_out {
            Ok(Some(c)) => c,
            // The schema stays trusted.
            Ok(None) => return SchemaVerdict::Accepted,
            Err(e) => {
                return SchemaVerdict::Refused {
                    err: e.to_err_packet(),
                    engine: true,
                }
            }
        };
        // The login waits for this answer: a backend that stopped answering
        // must not hold it (and every login naming the schema) for ever.
        let limit = self.shard.config().pool.connect_timeout.as_duration();
        let Some(checked) = rt::timeout(limit, sync::select_schema(&mut conn, schema)).await else {
            let err = EngineError::BackendLost {
                backend: conn.backend.to_string(),
                reason: format!("no answer to COM_INIT_DB within pool.connect_timeout ({limit:?})"),
            };
            self.discard_backend(conn);
            return SchemaVerdict::Refused {
                err: err.to_err_packet(),
                engine: true,
            };
        };
        match checked {
            Ok(None) => {
                self.shard.backends.release(conn);
                SchemaVerdict::Accepted
            }
            Ok(Some(err)) => {
                self.shard.backends.release(conn);
                SchemaVerdict::Refused { err, engine: false }
            }
            Err(e) => {
                self.discard_backend(conn);
                SchemaVerdict::Refused {
                    err: e.to_err_packet(),
                    engine: true,
                }
            }
        }
    }

    /// After a reload changed the users, takes this session's user's new
    /// entry, so its next commands route as the file now says
    /// (`default_hostgroup`, `read_hostgroup`, `read_fallback`,
    /// `max_backend_connections_per_core`): a session whose hostgroup was
    /// moved would otherwise get ERR 9004 for every command until it
    /// reconnected. A removed user's sessions keep what they logged in
    /// with. One comparison per command while nothing was reloaded.
    fn follow_user_changes(&mut self) {
        let now = self.shard.users_generation();
        if self.users_generation == Some(now) {
            return;
        }
        self.users_generation = Some(now);
        if let Some(entry) = self.shard.users().get(self.user.name.as_bytes()) {
            if !Rc::ptr_eq(entry, &self.user) {
                if *entry.default_hostgroup != *self.user.default_hostgroup {
                    // Writes on another primary: its GTIDs are not for the
                    // new one's replicas to wait for (see `change_user`).
                    self.causal.clear();
                }
                self.user = entry.clone();
            }
        }
    }

    async fn command_loop(&mut self) -> End {
        loop {
            if self.linger && self.buf.is_empty() && self.pinned.is_some() {
                self.wait_while_lingering().await;
            }
            if self.pinned.is_none() {
                self.buf.shrink_if_idle();
            }
            if self.shard.is_draining() && self.pinned.is_none() {
                // Graceful stop, and this client logged in after it began
                // (so it was not among the idle ones closed then).
                return End::Closed;
            }
            let (head, total) = match self.read_command().await {
                Ok(x) => x,
                Err(end) => return end,
            };
            self.follow_user_changes();
            let started = Instant::now();
            self.cmd_started = started;
            self.digest = None;
            self.tx_effect = transaction_time::Effect::default();
            self.log.clear();
            self.control.set_statement(None, None);
            self.learn_set = None;
            Stats::bump(&self.shard.stats.commands);
            self.shard
                .stats
                .bytes_from_clients
                .set(self.shard.stats.bytes_from_clients.get() + total as u64);
            if head.seq != 0 {
                let err = ErrPacket::new(1156, "08S01", "Got packets out of order");
                self.shard.stats.count_error(err.code);
                let _ = self.write_err(head.seq.wrapping_add(1), &err).await;
                return End::Refused;
            }
            if let Some(err) = self.ending_err.take() {
                self.buf.consume(total);
                let _ = self.send_backend_err(1, &err).await;
                return End::Closed;
            }
            if self.transaction_overdue(started) {
                // It arrived as the deadline passed: it never runs, and the
                // session's end rolls the transaction back.
                self.buf.consume(total);
                let err = transaction_time::closing_err(self.xa);
                self.shard.stats.count_error(err.code);
                let _ = self.write_err(1, &err).await;
                return End::Closed;
            }
            // A query rule may refuse the text, or rewrite it before
            // anything reads it.
            // Each branch awaits its work directly: a wrapping async fn
            // would copy the dispatch future once more per command.
            let result = match self.apply_query_rule(head, total) {
                Ok((head, total)) => match self.judge_lost_transaction(head) {
                    Some(verdict) => {
                        self.note_shape(total);
                        self.log_unrun_command(total);
                        self.buf.consume(total);
                        self.answer_lost_transaction(verdict).await
                    }
                    // A rule's OK or delay: boxed, as only such rules
                    // take this way.
                    None if self
                        .query_rule
                        .as_ref()
                        .is_some_and(|r| r.ok.is_some() || r.delay.is_some()) =>
                    {
                        Box::pin(self.run_by_rule(head, total)).await
                    }
                    None => self.dispatch(head, total).await,
                },
                Err(err) => {
                    self.note_shape(total);
                    self.buf.consume(total);
                    self.refuse_by_rule(&err).await
                }
            };
            if self.log.taken() {
                self.log_command(started);
            }
            if let Err(end) = result {
                return end;
            }
            if self.tx_effect.ends && self.last_succeeded {
                // A transaction open now (`COMMIT AND CHAIN`, `ROLLBACK AND
                // CHAIN`, `BEGIN`) is a new one, begun by this command.
                self.tx_began = None;
            }
            if self.state_lost {
                // The client was told why; its session state is gone.
                return End::Closed;
            }
            if self.control.is_killed() {
                return End::Closed;
            }
            if self.shard.is_draining() && self.pinned.is_none() {
                // Graceful stop: the command is done and nothing is pinned.
                return End::Closed;
            }
            self.publish_state();
            self.shard
                .stats
                .query_us
                .borrow_mut()
                .record(started.elapsed().as_micros() as u64);
        }
    }

    /// Notes whether the command at the front of the buffer (after the
    /// query rules had their say) commits, and, in a session whose
    /// transaction was lost, what to answer instead of running it: `None`
    /// runs it (a `ROLLBACK AND CHAIN` ends the lost transaction so).
    fn judge_lost_transaction(&mut self, head: PacketHeader) -> Option<Verdict> {
        let payload = &self.buf.bytes()[4..head.total_len()];
        // Only a connection already held can carry a transaction into
        // this command, unless the command opens one itself (several
        // statements): a single statement on a pooled connection, the
        // hot path, skips the scan.
        // Read where the limit may stop the command or restart its count:
        // inside a transaction, or with autocommit off.
        self.tx_effect =
            if self.tx_began.is_some() || !self.last_status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT) {
                match payload.first() {
                    Some(0x03) => transaction_time::effect(&payload[1..]),
                    Some(0x17 | 0xfa) => self
                        .statement_text(payload)
                        .map(transaction_time::effect)
                        .unwrap_or_default(),
                    _ => transaction_time::Effect::default(),
                }
            } else {
                transaction_time::Effect::default()
            };
        self.command_commits = match payload.first() {
            Some(0x03) => {
                (self.pinned.is_some() || payload.contains(&b';')) && lost_transaction::commits(&payload[1..])
            }
            // COM_REFRESH commits the open transaction before it
            // flushes, as a `FLUSH` statement does (`sql_parse.cc`,
            // `trans_commit_implicit`).
            Some(0x07) => self.pinned.is_some(),
            _ => false,
        };
        let verdict = self.tx_lost.then(|| match payload.first() {
            // An execute (a bulk too) is judged by its statement's text: a
            // prepared ROLLBACK must end the lost transaction as a text
            // one does, or the session would refuse everything for ever.
            Some(0x17 | 0xfa) => lost_transaction::execute_verdict(self.statement_text(payload)),
            _ => lost_transaction::verdict(payload),
        });
        match verdict {
            Some(v @ (Verdict::RollbackOk | Verdict::Refuse { .. })) => Some(v),
            run => {
                self.ends_lost_transaction = run == Some(Verdict::Run { ends: true });
                if self.ends_lost_transaction {
                    self.tx_lost = false;
                }
                None
            }
        }
    }

    /// Runs one buffered command as `command::plan` says.
    async fn dispatch(&mut self, head: PacketHeader, total: usize) -> Result<(), End> {
        let payload = &self.buf.bytes()[4..head.total_len()];
        match plan(payload, self.caps) {
            Plan::Quit => Err(End::Closed),
            // A pinned session's ping goes to its connection, as a direct
            // client's would: the server's ROW_COUNT() there is 0 after it
            // (a prepared `SELECT ROW_COUNT()` reads it), and a pool that
            // pings before lending the client out learns that the
            // connection holding its session is gone. One pinned without a
            // connection yet (a prepare the registry answered) has nothing
            // there to ping: Funnel answers, as for any other session.
            Plan::ReplyOk if self.sticky() && self.pinned.is_some() => {
                let mut f = Forward::new("COM_PING", Some(Expect::Status));
                // It leaves the diagnostics area alone: the client's
                // warnings there still answer its SHOW WARNINGS (soak
                // seed 400020).
                f.opens_no_table = true;
                Box::pin(self.forward(total, f)).await
            }
            Plan::ReplyOk => {
                self.buf.consume(total);
                // The server answers `COM_PING` with `my_ok`, as a
                // statement: ROW_COUNT() reads 0 after it. The connection
                // this session takes next has another count.
                self.last.row_count = 0;
                self.own_row_count_next = false;
                let ok = OkPacket {
                    status: self.client_status(),
                    ..Default::default()
                };
                self.write_ok(1, &ok).await
            }
            Plan::Reply(e) => {
                self.note_shape(total);
                self.log_query_text(total);
                self.buf.consume(total);
                self.reply_error(1, e).await
            }
            // The work futures are boxed: an idle client then holds only the
            // small read future (a few hundred bytes), not the largest
            // command's state (about 15 KiB) for its life.
            Plan::Forward(mut f) => {
                if self.literal_backslashes(payload) {
                    match literal_backslashes::read_with_literal_backslashes(payload, &f, self.caps) {
                        Some(g) => f = g,
                        None => f.set_unreadable(),
                    }
                }
                if self.query_rule.as_ref().is_some_and(|r| r.pin) {
                    f.pin_by_rule();
                }
                if payload.first() == Some(&0x03) && !self.user_vars.is_empty() {
                    if let Some(what) = user_vars::dynamic_sql_refusal(&payload[1..], &self.user_vars) {
                        self.note_shape(total);
                        self.log_query_text(total);
                        self.buf.consume(total);
                        return self.reply_error(1, EngineError::Unsupported(what)).await;
                    }
                }
                if let Some(key) = self.local_set_key(total, &f) {
                    if let Some(reply) = self.shard.learned_sets.reply(&key) {
                        return self.answer_set_locally(total, &f, reply).await;
                    }
                    self.learn_set = Some(key);
                }
                Box::pin(async move { self.forward(total, f).await }).await
            }
            // Boxes each statement command's future itself.
            Plan::Statement(cmd) => self.statement(cmd, total).await,
            Plan::Kill(k) => {
                self.note_shape(total);
                self.log_query_text(total);
                self.buf.consume(total);
                Box::pin(self.kill(k)).await
            }
            Plan::ChangeUser => Box::pin(self.change_user(total)).await,
            Plan::ResetConnection => Box::pin(self.reset_connection(total)).await,
            Plan::Ignore => {
                self.buf.consume(total);
                Ok(())
            }
        }
    }

    /// True when the query reads the last insert id on the server, so the
    /// connection must first be given the client's own: a `CREATE` /
    /// `ALTER` or text Funnel could not read (both sent as written), a
    /// later statement of a multi-statement query (left to the server, see
    /// `rewrite::substitute`), or a call by a `"` or `[]` quoted name
    /// (`rewrite::quoted_last_insert_id_call`), or a read only another
    /// reading of the text sees (`rewrite::other_reading_reads_previous`).
    /// Not when the session is pinned for
    /// previous-statement info: then the connection has it already.
    fn reads_last_insert_id_on_server(&self, total: usize, f: &Forward) -> bool {
        if f.name != "COM_QUERY" || self.insert_id_pinned() {
            return false;
        }
        let bytes = &self.buf.bytes()[..total];
        let Some(sql) = bytes.get(5..).filter(|_| total < MAX_CHUNK) else {
            return false;
        };
        // Cheap test first: this runs for every query, and most mention
        // none of those results.
        if !mentions_previous_statement(sql) {
            return false;
        }
        // A read another reading of the text sees (in gbk, say) is the
        // server's to answer too (`rewrite::other_reading_reads_previous`).
        if rewrite::quoted_last_insert_id_call(sql) || rewrite::other_reading_reads_previous(sql) {
            return true;
        }
        if f.pin == Some(PinReason::Unknown) || is_definition(sql) {
            rewrite::may_read_last_insert_id(sql)
        } else {
            sql.contains(&b';') && rewrite::later_statement_reads_last_insert_id(sql)
        }
    }

    /// True for a query with a backslash while the session's `sql_mode` has
    /// NO_BACKSLASH_ESCAPES (the server says so in every status), or may
    /// have it (no server has said yet): there a
    /// backslash ends no string, and Funnel's scans, which read it as an
    /// escape, could misplace where strings end.
    fn literal_backslashes(&self, payload: &[u8]) -> bool {
        payload.first() == Some(&0x03)
            && (self.sql_mode_unknown
                || self
                    .last_status
                    .contains(StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES))
            && payload.contains(&b'\\')
    }

    /// The last look for a `KILL` before the command goes out: one that came
    /// while the connection was being brought in line (the session still
    /// counted as waiting, with no backend thread to kill) stops the
    /// command there, unsent (see `refuse_stopped`). A plain check, so the
    /// connection is not moved through a future on every command.
    fn stop_requested(&self) -> bool {
        self.control.wait_interrupted() || self.control.is_killed()
    }

    /// Stops the statement just sent on `thread`: a `KILL` (`QUERY` or
    /// `CONNECTION`) reached the session after its last look for one
    /// (`stop_requested`) and before the statement had a backend thread to
    /// name, so nobody sent it to the server, where it would run to its end
    /// while the killer had its OK. As for any `KILL` (`Shard::kill_running`),
    /// the connection serves nobody else before the server has the `KILL`.
    fn kill_own_statement(&self, thread: ServerThread) {
        kill_statement(&self.shard, &self.control, thread);
    }

    /// Gives the connection back and tells the client its command was
    /// stopped by a `KILL` before it was sent.
    async fn refuse_stopped(&mut self, conn: BackendConn, total: usize) -> Result<(), End> {
        self.control.take_wait_interrupted();
        self.buf.consume(total);
        self.give_back(conn);
        let err = if self.control.is_killed() {
            EngineError::ConnectionKilled
        } else {
            EngineError::Interrupted
        };
        self.reply_error(1, err).await
    }

    /// Keeps what `SHOW CLIENTS` shows current (cheap: copies only changes).
    fn publish_state(&self) {
        self.control.set_state(ClientState::Idle);
        // The statement is done (and counted): `RESET DIGESTS` keeps the
        // shapes of statements still running only.
        self.control.set_statement(None, None);
        // A `KILL QUERY` noted for a command that ended without reaching
        // its backend's thread (its answer was Funnel's) is done with.
        self.control.take_wait_interrupted();
        self.control.set_schema(self.schema.as_deref());
        let pinned = match (&self.pinned, self.pin_reason) {
            (Some(c), Some(r)) => Some((r, c.pool_id)),
            _ => None,
        };
        self.control.set_pinned(pinned);
        self.control.set_prepared(self.stmts.len());
    }

    async fn forward(&mut self, total: usize, mut f: Forward) -> Result<(), End> {
        // Before the wait for a connection: `SHOW CLIENTS` shows what a
        // waiting client waits to run.
        if f.name == "COM_INIT_DB" {
            // A driver's change of schema (`select_db`), logged as its
            // text `USE` is; the query rules do not see it.
            if let Some(db) = self.buf.bytes().get(5..total) {
                self.log
                    .begin(&self.shard.query_log, None, "init_db", db, self.schema.as_deref());
            }
        }
        if f.name == "COM_QUERY" {
            self.note_digest(total);
            if f.pin == Some(PinReason::StoredProcedure) && !f.several_statements {
                let sql = self.buf.bytes().get(5..total).unwrap_or_default();
                f.stateless_call = self.calls_stateless(sql, self.schema.as_deref());
            }
            if let Some((key, ttl)) = self.cache_key(total, &f) {
                // Boxed: inline, this rare path's future would almost
                // double forward's, which every command copies.
                if let Some(answered) = Box::pin(self.answer_from_cache(total, &f, key, ttl)).await {
                    return answered;
                }
            }
        }
        let Some(conn) = self.lease(total, &f).await? else {
            return Ok(());
        };
        let Some(mut conn) = self.sync_session(conn, total, f.new_schema.is_some()).await? else {
            return Ok(());
        };
        let holds_client_id = self.holds_client_insert_id();
        let call_reads_insert_id = self.call_reads_insert_id(&f);
        // `LAST_INSERT_ID(expr)` sets the connection's id only where the
        // server evaluates it (`UPDATE k SET v = LAST_INSERT_ID(v + 1)`
        // of no row leaves it alone), and the server answers for the id
        // from then on: the connection must hold the client's first (soak
        // seed 300958).
        let setter_on_foreign_id = f.sets_insert_id && !holds_client_id;
        // An `INSERT ... RETURNING` that inserts no id (explicit ids, no
        // row) leaves the connection's: the read-back after it must find
        // the client's.
        let returning_on_foreign_id = f.returning && !holds_client_id;
        let gives_id = call_reads_insert_id
            || setter_on_foreign_id
            || returning_on_foreign_id
            || self.reads_last_insert_id_on_server(total, &f);
        conn = match self
            .give_previous_results(
                conn,
                total,
                &mut f,
                gives_id,
                call_reads_insert_id,
                call_reads_insert_id,
            )
            .await?
        {
            Some(c) => c,
            None => return Ok(()),
        };
        if !f.dynamic_vars.is_empty() {
            conn = match Box::pin(self.check_dynamic_vars(conn, &f.dynamic_vars, total)).await? {
                Some(c) => c,
                None => return Ok(()),
            };
        }
        // A query that reads the counts among other things
        // (`SELECT @@warning_count, NOW()`) reads the area as a diagnostics
        // statement does: where it opens no table, another client's
        // warnings there would be its answer. (The text is scanned only
        // when the area is not the client's.)
        let reads_area = || {
            f.diagnostics
                || (f.name == "COM_QUERY"
                    && self
                        .buf
                        .bytes()
                        .get(5..total)
                        .is_some_and(cached_reads::names_diagnostic_counts))
        };
        if (self.own_err.is_some() || self.foreign_diagnostics) && reads_area() {
            if let Err(e) = Box::pin(self.give_diagnostics(&mut conn)).await {
                self.buf.consume(total);
                self.discard_backend(conn);
                return self.reply_error(1, backend_lost(&self.last_backend, e)).await;
            }
        }
        if self.stop_requested() {
            return Box::pin(self.refuse_stopped(conn, total)).await;
        }
        // Tests widen the gap between the last look for a KILL and the send.
        #[cfg(feature = "fault-injection")]
        crate::shard::fault_pause("FUNNEL_FAULT_SEND_DELAY_MS").await;
        Stats::bump(&self.shard.stats.forwarded);
        // Text Funnel could not read (a compound statement, an executable
        // comment, backslashes under NO_BACKSLASH_ESCAPES) is sent as is.
        let rewritten = if f.pin == Some(PinReason::Unknown) {
            None
        } else {
            self.rewrite_query(total)
        };
        let deadline = self.query_deadline();
        let sent = match &rewritten {
            Some(bytes) => conn.send_command(bytes, deadline).await,
            None => conn.send_command(&self.buf.bytes()[..total], deadline).await,
        };
        self.buf.consume(total);
        if let Err(e) = sent {
            // Whether the server got the command is unknown: never resend it.
            self.note_causal_write_lost(&conn, &f);
            self.discard_backend(conn);
            let err = self.backend_failure(e);
            return self.reply_error(1, err).await;
        }
        self.relay_and_settle(conn, &f).await
    }

    /// The deadline of a client's command (`pool.query_timeout`), if any.
    fn query_deadline(&self) -> Option<Deadline> {
        let limit = self.shard.config().pool.query_timeout.non_zero()?;
        Some(Deadline {
            limit,
            key: Deadline::QUERY_KEY,
        })
    }

    /// Takes the text query in the buffer for the query log, when the log
    /// takes it: one a backend runs ([`Self::note_digest`]) or one Funnel
    /// answers itself (a `KILL`, a refusal); `query_log.all` logs every
    /// statement.
    fn log_query_text(&mut self, total: usize) {
        let bytes = self.buf.bytes();
        if bytes.get(4) != Some(&0x03) {
            return;
        }
        let Some(sql) = bytes.get(5..total.min(MAX_CHUNK)) else {
            return;
        };
        self.log.begin(
            &self.shard.query_log,
            self.query_rule.as_deref(),
            "query",
            sql,
            self.schema.as_deref(),
        );
    }

    /// Remembers the digest of the query in the buffer (its shape is built
    /// only the first time this core sees it) and takes it for the query log.
    fn note_digest(&mut self, total: usize) {
        self.note_shape(total);
        self.log_query_text(total);
    }

    /// True when a `CALL` or compound statement is to run after the
    /// connection is given the client's count for `FOUND_ROWS()` (see
    /// [`Self::give_found_rows`]): the server's count may not be the
    /// client's (the session is not pinned for it, or the pin began on a
    /// connection with another count), the count is not so large that
    /// giving it would take long, no warnings of the client's are on the
    /// connection (the statement that gives the count clears them), and
    /// the statement leaves `ROW_COUNT()` as the procedure would read it:
    /// the client's is -1, as a `SELECT` leaves it, or 0, as a `DO` leaves
    /// it (after a `SET`, soak seed 301217), or the `DO LAST_INSERT_ID(n)`
    /// sent before it left 0 anyway (`do_follows`).
    fn gives_found_rows_to_call(&self, do_follows: bool) -> bool {
        !self.server_answers_found_rows()
            && self.last.found_rows <= MAX_GIVEN_FOUND_ROWS
            && !self.linger
            && (do_follows || matches!(self.last.row_count, -1 | 0))
    }

    /// Gives `conn` what the client's command may read of its previous
    /// statements where the server answers: its last insert id
    /// (`gives_id`), and before a procedure its count for `FOUND_ROWS()`.
    /// A procedure may set that count where its `CALL` returns no rows
    /// (`SELECT COUNT(*) INTO @n FROM t`, soak seed 301217), or leave it
    /// as it was, maybe another client's: the connection gets the
    /// client's own first, so that either way the server's count after
    /// the `CALL` is the client's (`f.found_rows_given`). After the DO
    /// (and the variables' SET), which leave ROW_COUNT() at 0: the
    /// statement that gives the count leaves the client's -1 or 0 for the
    /// procedure to read; both go in one `DO` where the count's statement
    /// is one. `call_reads_id`: the id is given for a procedure (see
    /// [`Self::call_reads_insert_id`]); `do_follows`, as
    /// [`Self::gives_found_rows_to_call`] takes it. `None` when the client
    /// was told of a failure (the command's `total` bytes are then
    /// consumed).
    async fn give_previous_results(
        &mut self,
        mut conn: BackendConn,
        total: usize,
        f: &mut Forward,
        gives_id: bool,
        call_reads_id: bool,
        do_follows: bool,
    ) -> Result<Option<BackendConn>, End> {
        let gives_count = f.runs_procedure() && self.gives_found_rows_to_call(do_follows);
        let together = gives_id && gives_count && self.last.row_count != -1;
        if gives_id && !together {
            conn = match Box::pin(self.sync_last_insert_id(conn, total)).await? {
                Some(c) => c,
                None => return Ok(None),
            };
            // The DO left ROW_COUNT() at 0, where the procedure reads the
            // client's -1 (after a `SELECT` or a failure) unless the count
            // given next leaves it (not while the client's warnings are on
            // the connection, say).
            if call_reads_id && !gives_count && self.last.row_count == -1 {
                conn = match Box::pin(self.give_back_row_count(conn, total)).await? {
                    Some(c) => c,
                    None => return Ok(None),
                };
            }
        }
        if gives_count {
            conn = match Box::pin(self.give_found_rows(conn, total, together)).await? {
                Some((c, given)) => {
                    f.found_rows_given = given;
                    c
                }
                None => return Ok(None),
            };
        }
        if gives_id {
            self.insert_id_on_server = true;
            self.insert_id_given_to_calls |= call_reads_id;
        }
        Ok(Some(conn))
    }

    /// Sets what `FOUND_ROWS()` answers on `conn` to the client's own
    /// count (see [`give_found_rows_sql`]), leaving `ROW_COUNT()` at the
    /// client's -1, or else at 0. `with_insert_id` (only where the
    /// client's `ROW_COUNT()` is not -1): the same `DO` gives the
    /// connection the client's last insert id too, a round trip less than
    /// [`Self::sync_last_insert_id`] first. `Some((conn, false))` when
    /// the server refused it or left a condition (a `max_statement_time`
    /// that ran out, a small `max_join_size`): the count is then not the
    /// client's, and the condition is cleared (and the id given on its
    /// own). `None` when the connection failed or the id was refused, and
    /// the client was told (the command's `total` bytes are then consumed).
    async fn give_found_rows(
        &mut self,
        mut conn: BackendConn,
        total: usize,
        with_insert_id: bool,
    ) -> Result<Option<(BackendConn, bool)>, End> {
        Stats::bump(&self.shard.stats.state_syncs);
        // Where the client's ROW_COUNT() is above 0 (the DO before it
        // leaves 0 anyway), inside a DO too.
        let mut sql = give_found_rows_sql(self.last.found_rows, self.last.row_count != -1);
        if with_insert_id {
            debug_assert!(sql.starts_with("DO ("));
            sql.insert_str(3, &format!("LAST_INSERT_ID({}), ", self.last.last_insert_id));
        }
        let given = match conn.run_query(sql.as_bytes()).await {
            // A condition means the count is not the client's: a
            // `max_statement_time` that ran out fails it, and under a
            // `max_join_size` it is too small for the `DO` ends with an
            // error condition, not an error, and a count of 1.
            Ok(summary) => summary.error.is_none() && summary.warnings == 0,
            Err(e) => return self.lost_before_command(conn, total, e).await,
        };
        if !given {
            // Funnel's condition is in the diagnostics area now, where a
            // `CALL` that opens no table would report it as its own
            // warning: cleared at once (a statement that opens a table,
            // which leaves ROW_COUNT() at -1; a `DO` then sets the client's
            // 0 back).
            let mut clear: Vec<&[u8]> = vec![CLEAR_DIAGNOSTICS];
            if self.last.row_count != -1 && !with_insert_id {
                clear.push(b"DO 0");
            }
            for sql in clear {
                if let Err(e) = conn.run_query(sql).await {
                    return self.lost_before_command(conn, total, e).await;
                }
            }
            if with_insert_id {
                // Whether the failed DO gave the id is not known: given
                // again, on its own (which leaves ROW_COUNT() at 0 too).
                return Ok(self.sync_last_insert_id(conn, total).await?.map(|c| (c, false)));
            }
        }
        Ok(Some((conn, given)))
    }

    /// The connection failed under a statement of Funnel's before the
    /// client's command (a count given, a sync): the connection goes, the
    /// command's `total` bytes are consumed, and the client is told.
    pub(super) async fn lost_before_command<T>(
        &mut self,
        conn: BackendConn,
        total: usize,
        e: BackendError,
    ) -> Result<Option<T>, End> {
        self.buf.consume(total);
        self.discard_backend(conn);
        self.reply_error(1, backend_lost(&self.last_backend, e.to_string()))
            .await
            .map(|_| None)
    }

    /// True when `f` runs a procedure that may read `LAST_INSERT_ID()`
    /// where its `CALL` does not show it (`INSERT INTO orders ...; CALL
    /// add_items(...)`), on a connection that may not have the client's
    /// id: it gets the client's id first (`DO LAST_INSERT_ID(n)`), once
    /// for the session, as the `CALL` pins it there. Not where the session
    /// was pinned already and the connection has the client's id (which
    /// covers `insert_id_pinned`): the DO would replace what ROW_COUNT()
    /// answers for the client's previous statement, which ran there too.
    /// A compound statement may call a procedure too (`BEGIN p; END`
    /// under sql_mode=ORACLE); so may a binary `CALL`.
    fn call_reads_insert_id(&self, f: &Forward) -> bool {
        f.runs_procedure()
            && !(self.sticky() && self.insert_id_on_server)
            && !(self.insert_id_given_to_calls && self.pinned_for_procedures())
    }

    /// Pinned for what a `CALL` or a compound statement pins for.
    fn pinned_for_procedures(&self) -> bool {
        self.pins.contains(PinReason::StoredProcedure) || self.pins.contains(PinReason::Unknown)
    }

    /// A `COM_QUERY` (one packet) whose reads of the previous statement's
    /// results were replaced by this client's own values, framed; `None`
    /// when nothing needed replacing.
    fn rewrite_query(&self, total: usize) -> Option<BytesMut> {
        let bytes = &self.buf.bytes()[..total];
        let sql = bytes
            .get(5..)
            .filter(|_| bytes.get(4) == Some(&0x03) && total < MAX_CHUNK)?;
        // Definitions keep their text: a view, routine, trigger or column
        // default that reads LAST_INSERT_ID() must read it when it runs.
        if !mentions_previous_statement(sql) || is_definition(sql) {
            return None;
        }
        // `IS_USED_LOCK(x) = CONNECTION_ID()` asks "do I hold x?": the
        // server answers with its own thread ids, so CONNECTION_ID() there
        // must be the server's too (the statement pins the session anyway).
        let own_id = (!named_locks::asks_lock_owner(sql)).then_some(self.id.0);
        let on_server = if self.insert_id_pinned() {
            OnServer::All
        } else if self.pins.contains(PinReason::PreviousStatementInfo) {
            OnServer::AllButInsertId
        } else {
            OnServer::None
        };
        let how = Substitution {
            last: &self.last,
            connection_id: own_id,
            found_rows: !self.calc_found_rows || self.found_rows_off_server,
            on_server,
            own_row_count: self.own_row_count_next,
            own_found_rows: self.found_rows_off_server,
            sql_rowcount: self.vars.may_be_oracle(),
        };
        let new_sql = substitute(sql, &how)?;
        let mut payload = BytesMut::with_capacity(new_sql.len() + 1);
        funnel_protocol::command::write_query(&mut payload, &new_sql);
        let mut out = BytesMut::with_capacity(payload.len() + 4);
        funnel_protocol::framing::write_packet(&mut out, 0, &payload);
        Some(out)
    }

    /// Streams the response to a command already sent on `conn`, then
    /// keeps or releases the connection.
    async fn relay_and_settle(&mut self, mut conn: BackendConn, f: &Forward) -> Result<(), End> {
        self.cmd_sent = Instant::now();
        self.last_succeeded = false;
        let Some(expect) = f.expect else {
            // COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA have no response.
            self.keep_or_release(conn, f, true);
            return Ok(());
        };
        self.control.set_running_on(Some(conn.server_thread()));
        self.control.set_state(ClientState::Running);
        if self.log.taken() {
            self.log.sent();
        }
        if self.control.is_killed() || self.control.take_wait_interrupted() {
            self.kill_own_statement(conn.server_thread());
        }
        let query_timeout = self.shard.config().pool.query_timeout.non_zero();
        let in_transaction_before = conn.status.in_transaction();
        let count_pinned_before = self.pins.contains(PinReason::PreviousStatementInfo);
        // Learned only from a backend of the hostgroup it is kept for: a
        // `SET` whose hostgroup gave no connection ran on the fallback
        // (read) hostgroup, whose verdict is not the other's.
        let learn_set = self.learn_set.take().filter(|key| {
            self.shard
                .backends
                .by_id(conn.pool_id)
                .is_some_and(|pool| *pool.placement().hostgroup == *key.hostgroup())
        });
        let stats = self.shard.stats.clone();
        // A query rule's timeout, or what `client.max_transaction_time`
        // leaves the transaction, whichever ends first: the statement is
        // killed once it has run that long, and the client told why.
        let rule_stop = self
            .query_rule
            .as_ref()
            .and_then(|r| Some((r.timeout?, r.timeout_err()?, false)));
        let transaction_stop = self.transaction_stop().map(|(left, err)| (left, err, true));
        let stop = match (rule_stop, transaction_stop) {
            (Some(rule), Some(tx)) => Some(if tx.0 < rule.0 { tx } else { rule }),
            (rule, tx) => rule.or(tx),
        };
        let stop_after = stop.as_ref().map(|s| s.0);
        let stopped = stop.map(|(_, err, ends_session)| StoppedStatement {
            fired: Cell::new(false),
            err,
            replaced: Cell::new(false),
            ends_session,
        });
        let thread = conn.server_thread();
        let mut tracking = self.tracking_view();
        // The client's own `SET session_track_state_change = ON` is reported
        // to it already.
        tracking.own_state_change |= f.tracks_state_itself;
        // A client with MariaDB's metadata cache (never a backend
        // connection's: see `column_cache`).
        let columns = self
            .caps
            .contains(Capabilities::MARIADB_CLIENT_CACHE_METADATA)
            .then(|| {
                let statement = f
                    .describes
                    .and_then(|id| self.stmts.get_mut(id))
                    .map(|s| (&mut s.known_columns, &*s.meta));
                crate::column_cache::ColumnCache::new(statement)
            });
        // A read to keep for the query cache: what the client is sent.
        // Not one that leaves alone a diagnostics area holding another
        // client's warnings: its `@@warning_count` reads them.
        let reads_foreign = self.cache_miss.as_ref().is_some_and(|(key, ..)| {
            self.foreign_diagnostics && cached_reads::may_read_diagnostics_left(f, &key.sql)
        });
        if reads_foreign {
            self.cache_miss = None;
        }
        let mut capture = self.cache_miss.as_ref().map(|_| {
            crate::relay::Capture::new(self.shard.config().query_cache.max_result_size.as_u64() as usize)
        });
        let client = ClientSide {
            sent: &stats.bytes_to_clients,
            columns,
            stream: &mut self.stream,
            buf: &mut self.buf,
            max_packet: self.shard.config().client.max_packet_size.as_u64() as usize,
            write_timeout: self.shard.config().client.net_write_timeout.non_zero(),
            read_timeout: self.shard.config().client.net_read_timeout.non_zero(),
            tracking,
            // A `SET` to learn: its OK comes back for the record.
            hold_end: f.settles_on_server() || learn_set.is_some(),
            control: &self.control,
            stopped: stopped.as_ref(),
            capture: capture.as_mut(),
        };
        // Awaited where it is made in the common case: a relay future
        // moved into the timer's would be copied for every statement. The
        // timer's is boxed: held inline, it would double the size of this
        // future, and of every one awaiting it, which is copied whole at
        // each command's `Box::pin` (`dispatch`).
        let end = match (&stopped, stop_after) {
            (Some(stopped), Some(limit)) => {
                let relay = relay_response(&mut conn, client, expect, query_timeout);
                Box::pin(rule_actions::stopping_after(relay, limit, || {
                    stopped.fired.set(true);
                    kill_statement(&self.shard, &self.control, thread);
                }))
                .await
            }
            _ => relay_response(&mut conn, client, expect, query_timeout).await,
        };
        self.control.set_running_on(None);
        let dynamic = std::mem::take(&mut self.dynamic_text_changes);
        self.sql_prepared_changes |= f.prepares_changes || dynamic;
        if f.changes_descriptions || dynamic || (f.executes_sql_prepared && self.sql_prepared_changes) {
            // Whether it ran or not (an ERR after a change, a cut reply).
            self.shard.statements.tables_changed();
        }
        if !matches!(end, RelayEnd::Complete(..)) {
            // Definitions the relay took for sent may have stayed in its
            // buffer (a broken reply after them): the next execute sends
            // them again.
            if let Some(s) = f.describes.and_then(|id| self.stmts.get_mut(id)) {
                s.known_columns = crate::column_cache::KnownColumns::Unknown;
            }
        }
        // A `KILL QUERY` of this statement may still reach the server: a
        // connection kept (or parked for the next client) serves no one
        // else before it has. One closed below (a timeout, a failure)
        // need not wait: the client's ERR comes at once.
        let kept = matches!(end, RelayEnd::Complete(..) | RelayEnd::ClientGone { .. });
        if kept && self.control.kill_pending() {
            self.control.kills_settled().await;
        }
        // One that went unanswered may still arrive: the connection goes
        // once the session lets it go (a pinned session keeps it, where
        // that KILL can only stop this client's own next statement).
        conn.late_kill |= self.control.take_late_kill();
        // The server closes the connection after a `... RELEASE`'s OK: it
        // goes once the session lets it go (whatever the reply was, so no
        // other client gets a connection that may be closing).
        conn.server_closes |= f.releases;
        match end {
            RelayEnd::Complete(summary, held) => {
                let ok = summary.error.is_none();
                conn.note_error(summary.error.as_ref());
                self.completion_type_set |= f.sets_completion_type && ok;
                let mut released = f.releases && ok;
                let may_release = (ok && f.may_release && self.completion_type_set) || f.may_end_session;
                if !released && may_release {
                    // Under `completion_type = RELEASE` (its value is not
                    // tracked: it pins) the server closed the connection
                    // after the OK; so it may have after a `COMMIT RELEASE`
                    // only another reading of the text sees (in gbk, say),
                    // whatever the statements after it answered, or a
                    // `SET STATEMENT completion_type = ... FOR COMMIT`. A ping
                    // tells, and changes nothing the session could read.
                    if conn.run(&[0x0e], Expect::Status).await.is_err() {
                        conn.server_closes = true;
                        released = true;
                    }
                }
                if let Some(bytes) = capture
                    .and_then(crate::relay::Capture::into_bytes)
                    .filter(|_| held.is_empty())
                {
                    self.keep_in_cache(bytes, &summary);
                }
                self.settle(
                    conn,
                    f,
                    expect,
                    summary,
                    in_transaction_before,
                    count_pinned_before,
                )
                .await;
                if let Some(key) = learn_set.filter(|_| self.last_succeeded) {
                    self.shard.learned_sets.learn(key, &held, self.caps);
                }
                if let Some(stopped) = stopped.filter(|s| s.replaced.get()) {
                    // The client has the rule's ERR, the server's area its
                    // 1317: a diagnostics read puts the client's there first.
                    self.shard.stats.count_error(stopped.err.code);
                    self.note_own_err(&stopped.err);
                    if self.log.taken() {
                        // `settle` noted the server's 1317, which the
                        // client never saw.
                        self.log.failed(stopped.err.code);
                    }
                    if stopped.ends_session {
                        // Its transaction is still open there: the
                        // session's end closes the connection, which rolls
                        // it back.
                        return Err(End::Closed);
                    }
                }
                // A killed session's statement gets no answer, as from the
                // server: its connection closes next.
                if !held.is_empty() && !self.control.is_killed() {
                    // The end of the reply, held back while the session
                    // settled (see `Forward::settles_on_server`).
                    // As the rest of the reply: a KILL cuts it short.
                    if write_own(&mut self.stream, &held, &self.shard, &self.control)
                        .await
                        .is_err()
                    {
                        return Err(End::Closed);
                    }
                    stats
                        .bytes_to_clients
                        .set(stats.bytes_to_clients.get() + held.len() as u64);
                }
                if released {
                    // The session ended on the server with its OK: the
                    // client's connection closes too, as the server's
                    // would (its next statement would find it gone).
                    return Err(End::Closed);
                }
                Ok(())
            }
            RelayEnd::ClientGone {
                drained,
                state_changed,
            } => {
                // What the command itself changed was never recorded, so
                // only a command that changes nothing leaves a connection
                // fit for another client; not one the server says changed
                // state its text does not show (a stored function's `SET`).
                let untracked = state_changed && !f.explains_state_change();
                if drained && f.changes_nothing() && !untracked {
                    // Its warnings were never read: the next client's
                    // SHOW WARNINGS must not see them.
                    conn.stale_diagnostics = true;
                    // Whether it ended in an ERR was not kept: one that
                    // may have run stored code is reset as after an ERR.
                    conn.needs_reset |= f.may_run_stored_code;
                    self.pinned = Some(conn);
                    self.end();
                } else {
                    self.discard_backend(conn);
                }
                Err(End::Closed)
            }
            RelayEnd::TimedOut { next_seq, err_fits } => {
                // Stop the statement on the server too, then drop the
                // connection (its response state is unknown).
                let thread = conn.server_thread();
                self.note_causal_write_lost(&conn, f);
                self.discard_backend(conn);
                self.shard.kill_abandoned_query(thread);
                if !err_fits {
                    // Mid-packet: an ERR would be read as row data (see RelayEnd).
                    return Err(End::MidPacket);
                }
                let limit = self.shard.config().pool.query_timeout.as_duration();
                let err = EngineError::QueryTimeout { limit }.to_err_packet();
                self.send_own_err(next_seq, &err).await?;
                self.clear_pins();
                self.pin_reason = None;
                self.long_data.clear();
                Ok(())
            }
            RelayEnd::BackendFailed {
                reason,
                sent_any: _,
                next_seq,
                err_fits,
            } => {
                if self.shard.log_rate.allow() {
                    tracing::warn!(client = %self.id, backend = %conn.id, %reason, err_fits, "backend failed mid-response");
                }
                self.note_causal_write_lost(&conn, f);
                self.discard_backend(conn);
                if !err_fits {
                    // Part of a packet reached the client (or it is sending a
                    // LOCAL INFILE file): an ERR would be read as packet data.
                    // Closing makes its library report a lost connection
                    // (2013), as a direct connection to the dead server would.
                    return Err(End::MidPacket);
                }
                // An ERR is valid wherever a row or result could come next.
                let err = backend_lost(&self.last_backend, reason);
                self.reply_error(next_seq, err).await?;
                // The session's server-side state died with the connection.
                self.clear_pins();
                self.pin_reason = None;
                self.long_data.clear();
                Ok(())
            }
        }
    }

    /// Records what a command that completed did (pins, variables, results,
    /// diagnostics), with the read-backs and checks it needs on the
    /// connection, and keeps or releases the connection.
    async fn settle(
        &mut self,
        mut conn: BackendConn,
        f: &Forward,
        expect: Expect,
        summary: funnel_protocol::tracker::ResponseSummary,
        in_transaction_before: bool,
        count_pinned_before: bool,
    ) {
        // Taken before this command's own pins (which clear the flag).
        let free_before_call = self.pins.is_empty() || self.stateless_pins;
        let ok = summary.error.is_none();
        if ok {
            if let Some(schema) = f.new_schema.clone() {
                conn.schema = Some(schema.clone());
                self.schema = Some(schema);
                conn.vars.forget(&variables::SCHEMA_CHARSET_VARS);
                self.vars.forget(&variables::SCHEMA_CHARSET_VARS);
            }
            if let Some(dropped) = &f.drops_schema {
                // The server leaves no schema selected after dropping
                // the current one; a later COM_INIT_DB would fail.
                if conn.schema.as_ref() == Some(dropped) {
                    conn.schema = None;
                    conn.vars.forget(&variables::SCHEMA_CHARSET_VARS);
                }
                if self.schema.as_ref() == Some(dropped) {
                    self.schema = None;
                    self.control.set_schema(None);
                    self.vars.forget(&variables::SCHEMA_CHARSET_VARS);
                }
            }
            if let Some(on) = f.multi_statements {
                self.multi_statements = on;
                conn.multi_statements = on;
            }
            if let Some(r) = f.unpin {
                self.pins.remove(r);
                self.pin_reason = self.pins.first();
                if r == PinReason::NamedLock {
                    self.locks.clear();
                }
            }
            if let Some(vars) = &f.set_vars {
                if in_transaction_before
                    && !conn.status.in_transaction()
                    && vars.iter().any(|a| a.name == "autocommit")
                {
                    // MariaDB keeps the characteristics of a
                    // transaction that `SET autocommit = 1` commits
                    // (`START TRANSACTION READ ONLY`: later writes
                    // fail with 1792) until a COMMIT or ROLLBACK,
                    // and no variable shows it: the connection
                    // stays with its session until then.
                    self.pin(PinReason::NextTransaction);
                }
                self.vars.apply(vars, self.shard.utf8_alias);
                conn.vars.apply(vars, self.shard.utf8_alias);
                if !self.vars.any_set(&pinning::REPLICATION_VARIABLES) {
                    // Every replication variable is back to its default.
                    self.pins.remove(PinReason::ReplicationVariable);
                    self.pin_reason = self.pins.first();
                }
            }
            if let Some(values) = &f.set_user_vars {
                self.record_user_vars(&mut conn, values);
            }
            self.xa |= f.xa;
        } else {
            self.vars_made_by_failed_set(f);
        }
        self.last_status = summary.status;
        self.sql_mode_unknown = false;
        self.last_result_columns = summary.first_result_columns;
        self.last_succeeded = ok;
        if summary
            .error
            .as_ref()
            .is_some_and(|e| e.code == transaction_time::ER_LOCK_DEADLOCK)
        {
            // The server rolled the whole transaction back.
            self.tx_began = None;
            self.tx_rolled_back = true;
        }
        if summary.status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS) {
            self.pin(PinReason::Cursor);
        }
        self.note_results(&summary, f);
        let left = self.note_diagnostics(f, summary.warnings, ok);
        conn.stale_diagnostics |= left;
        self.locks.note(&f.lock_names);
        if ok
            && f.savepoint
            && !conn.status.in_transaction()
            && !conn.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
        {
            conn.savepoint_outside_tx = true;
        }
        if let Some(reason) = f.pin_on_error.filter(|_| !ok) {
            self.pin(reason);
        }
        if !ok && f.may_run_stored_code {
            // No report survives an ERR: what a trigger or function
            // set before it is unseen. The client keeps it while it
            // holds the connection (its SHOW WARNINGS, a
            // transaction); the pool resets it before anyone else
            // gets it.
            conn.needs_reset = true;
        }
        if ok {
            if let Err((lost, e)) = self.read_back(&mut conn, f, summary.warnings).await {
                // What was to be read lives on a connection that is gone.
                self.pin(lost);
                self.lose_after_reply(conn, &e);
                return;
            }
            // An insert that answered with rows said RETURNING.
            let returned_rows = f.returning && summary.result_sets > 0;
            if returned_rows && !self.pins.contains(PinReason::PreviousStatementInfo) {
                if let Err(e) = Box::pin(self.read_back_returning(&mut conn)).await {
                    self.pin(PinReason::PreviousStatementInfo);
                    self.lose_after_reply(conn, &e);
                    return;
                }
            }
        }
        if summary.state_changed && !f.explains_state_change() {
            self.note_untracked_state(&mut conn);
        }
        if ok && f.tracks_state_itself {
            self.tracks_state_itself = true;
        }
        if self.user.causal_reads.is_some() {
            if let Err(e) = Box::pin(self.note_causal_write(&mut conn, f)).await {
                self.lose_after_reply(conn, &e);
                return;
            }
        }
        self.keep_or_release(conn, f, ok || expect == Expect::Results);
        if ok && f.sets_insert_id && !self.pins.contains(PinReason::PreviousStatementInfo) {
            // Pinned for another reason (`SET @x = LAST_INSERT_ID(5)`
            // pins for the variable), the id it set lives on this
            // connection: the server answers for it from now on.
            self.pin(PinReason::PreviousStatementInfo);
        }
        if ok && f.runs_procedure() && self.pinned_for_procedures() && !self.insert_id_pinned() {
            // A procedure's inserts make ids its CALL's OK does not carry
            // (`CALL p()` that inserts, then `SELECT LAST_INSERT_ID()`;
            // `BEGIN p; END` under sql_mode=ORACLE, soak seed 300006):
            // the connection, given the client's id before the CALL (see
            // `forward`), holds the client's from now on, and the server
            // answers for it, as for ROW_COUNT() and, once the CALL
            // returned rows, FOUND_ROWS() (soak seeds 110009, 110025).
            self.pin_beside(PinReason::PreviousStatementInfo);
            self.insert_id_on_server = true;
        }
        if f.found_rows_given && f.runs_procedure() && self.pinned_for_procedures() {
            // The connection had the client's count before the CALL (see
            // `forward`): whether the procedure set another (`SELECT ...
            // INTO`, soak seed 301217; also one that failed after it) or
            // not, the server's count is the client's, and it answers
            // FOUND_ROWS() from now on, as after `SELECT ... INTO`.
            self.pin_beside(PinReason::PreviousStatementInfo);
            self.found_rows_off_server = false;
        }
        // `SELECT ... INTO` returns no rows but leaves the count it
        // selected for FOUND_ROWS(), also when it fails for
        // selecting too many (ER_TOO_MANY_ROWS, count 1; another
        // error leaves the count before it). It pinned: the server
        // answers from now on (soak seeds 50053, 50131).
        let selected = ok || summary.error.as_ref().is_some_and(|e| e.code == ER_TOO_MANY_ROWS);
        if f.selects_into && selected && self.sticky() {
            self.pin_beside(PinReason::PreviousStatementInfo);
            self.found_rows_off_server = false;
        }
        if !count_pinned_before && summary.result_sets > 0 && !f.keeps_found_rows {
            // Pinned by a statement that returned rows
            // (`SQL_CALC_FOUND_ROWS`, `LAST_INSERT_ID(5)`): the
            // connection's count is the client's.
            self.found_rows_off_server = false;
        }
        if ok && (summary.last_insert_id != 0 || f.sets_insert_id) {
            // The connection now has an id of the client's own.
            self.insert_id_on_server = true;
        }
        if matches!(f.lock_names, LockNames::Literal { releases: true, .. }) {
            Box::pin(self.check_named_locks()).await;
        }
        if f.stateless_call {
            self.note_stateless_call(f, &summary, free_before_call);
        }
        if self.stateless_pins {
            Box::pin(self.end_stateless_pins()).await;
        }
        if self.log.taken() {
            let error = summary.error.as_ref().map(|e| e.code);
            self.log.served(summary.rows, summary.affected_rows, error);
        }
        // After keep_or_release, so a pin is counted against this digest.
        self.record_digest(summary.rows, summary.error.is_some(), AnsweredBy::Backend);
    }

    /// Notes what a statement that completed did to the diagnostics area;
    /// returns true when it left something there (warnings, an error).
    fn note_diagnostics(&mut self, f: &Forward, warnings: u16, ok: bool) -> bool {
        if f.diagnostics {
            // A `GET DIAGNOSTICS` of a condition the area does not hold
            // adds its own (1758), the client's to read as any warning:
            // the connection lingers for it. Before, it went back to the
            // pool, and a `CALL` of a procedure that opens no table, which
            // a direct connection runs with the warning kept, ran on
            // another connection or after a count given for
            // `FOUND_ROWS()` cleared it (soak seeds 4 and 7, level 5).
            if warnings > 0 {
                self.linger = true;
                return true;
            }
            return false;
        }
        // A clean reply does not mean the area is clean: only a
        // statement that opens a table clears it, so older
        // warnings (another client's) may still be there, and
        // the client's own still answer its SHOW WARNINGS.
        let left = warnings > 0 || !ok;
        self.linger = left || (self.linger && (f.opens_no_table || f.may_keep_diagnostics));
        if left || !(f.opens_no_table || f.several_statements || f.may_keep_diagnostics) {
            // The area is this client's now (written or cleared).
            // Of several statements, maybe none opened a table
            // (`SELECT GET_LOCK('l', 0); SELECT 2`), nor a procedure's
            // or a prepared text's (`CALL p()` of `SELECT 1`):
            // another client's warnings may still be there.
            self.foreign_diagnostics = false;
            self.own_err = None;
        }
        left
    }

    /// After the ERR for a packet too large to take: a socket closed with
    /// unread input is reset, and a client still writing the packet meets
    /// the reset instead of the ERR. So the write side is closed after the
    /// ERR, and what the client goes on sending is read and dropped, until
    /// it closes or [`OVERSIZED_DRAIN`] passes.
    async fn drain_before_close(&mut self) {
        self.stream.close().await;
        let until = Instant::now() + OVERSIZED_DRAIN;
        let mut sink = vec![0u8; 64 * 1024];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rt::timeout(left, self.stream.read(&mut sink)).await {
                Some(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// Remembers what the statement returned, for the client's later
    /// `LAST_INSERT_ID()`, `ROW_COUNT()` and `FOUND_ROWS()`.
    fn note_results(&mut self, summary: &funnel_protocol::tracker::ResponseSummary, f: &Forward) {
        // `GET DIAGNOSTICS` leaves the server's ROW_COUNT() as it was: when
        // that was not the client's (after Funnel's clear of another
        // client's warnings, a COM_PING answered here), it still is not.
        let keeps_row_count =
            f.diagnostics && summary.result_sets == 0 && summary.error.is_none() && summary.warnings == 0;
        self.own_row_count_next &= keeps_row_count;
        if f.expect != Some(Expect::Results) {
            if matches!(f.name, "COM_INIT_DB" | "COM_PING") {
                // The server answers them as a statement (`my_ok`):
                // ROW_COUNT() reads 0 after them, as after `USE`, and -1
                // after one that failed (soak seed 150899).
                self.last.row_count = if summary.error.is_none() { 0 } else { -1 };
            } else if f.name == "COM_STMT_FETCH" {
                // Rows sent, as after a SELECT: ROW_COUNT() reads -1
                // after a fetch, whether it ended the cursor or not.
                self.last.row_count = -1;
            }
            return;
        }
        if summary.last_insert_id != 0 {
            self.last.last_insert_id = summary.last_insert_id;
        }
        // A multi-statement query answers for its last statement.
        if summary.error.is_some() || summary.ended_with_result_set {
            self.last.row_count = -1;
        } else if f.diagnostics && summary.result_sets == 0 {
            // `GET DIAGNOSTICS` sets its OK without `my_ok`: ROW_COUNT()
            // still reads the statement's before it (soak seed 110131),
            // or -1 when it warned (no such condition: seeds 110263,
            // 110373).
            if summary.warnings > 0 {
                self.last.row_count = -1;
            }
        } else {
            self.last.row_count = summary.affected_rows as i64;
        }
        if summary.result_sets > 0 && !f.keeps_found_rows {
            self.last.found_rows = summary.last_result_rows;
            self.found_rows_off_server = false;
        }
        self.calc_found_rows = f.pin == Some(PinReason::PreviousStatementInfo);
    }

    /// The text of the client's statement a statement command (`payload`,
    /// its command byte first) names, if it names one.
    fn statement_text(&self, payload: &[u8]) -> Option<&[u8]> {
        let id = self.named_statement(payload)?;
        self.stmts.get(id).map(|s| &s.meta.sql[..])
    }

    /// Closes a backend connection that failed or is in an unknown state.
    /// When the session had state on it (a transaction, temporary tables,
    /// locks, variables that pin), that state is gone: the session ends
    /// after the current reply, as a direct connection to a failed server
    /// would, so the client cannot carry on half a transaction in
    /// autocommit on another connection.
    ///
    /// A transaction lost during its `COMMIT` may have committed (the
    /// server ran it before the connection failed, or once a frozen server
    /// resumed): the refusals then say its outcome is unknown, not that
    /// the server rolled it back, which would have the client run it all
    /// again.
    fn discard_backend(&mut self, conn: BackendConn) {
        if self.sticky() {
            self.state_lost = true;
        } else if matches!(
            self.pin_reason,
            Some(PinReason::Transaction | PinReason::AutocommitOff)
        ) {
            self.tx_lost = true;
            self.tx_lost_at_commit = self.command_commits;
            // The transaction is `tx_lost` now. Left as it was (a failure
            // before the command's reply settles nothing), the reason
            // would outlive the ROLLBACK that ends the lost transaction,
            // and the next connection discarded for another cause (one
            // whose charset cannot be put back) would lose a transaction
            // the client no longer has.
            self.pin_reason = None;
        }
        if conn.kill_on_discard {
            // A prepare there ran out of time: a server that is alive but
            // slow (a metadata lock) would go on running it.
            self.shard.kill_abandoned_query(conn.server_thread());
        }
        self.shard.backends.discard_lost(conn);
    }

    /// The connection failed after the client had its reply, taking state
    /// that reply made with it (a variable read back, a named lock): the
    /// client's next command gets the ERR, then the session ends (closing
    /// now would end it without a word).
    fn lose_after_reply(&mut self, conn: BackendConn, e: &BackendError) {
        self.discard_backend(conn);
        if std::mem::take(&mut self.state_lost) {
            let err = backend_lost(&self.last_backend, e.to_string()).to_err_packet();
            self.shard.stats.count_error(err.code);
            self.ending_err = Some(err);
        }
    }

    /// What the client is told when its backend failed during a statement
    /// Funnel ran for it: ERR 1969 when that statement had
    /// `pool.query_timeout` (a prepare), else a lost backend (9007).
    fn backend_failure(&self, e: BackendError) -> EngineError {
        match e {
            BackendError::Unanswered(d) if d.key == Deadline::QUERY_KEY => {
                EngineError::QueryTimeout { limit: d.limit }
            }
            e => backend_lost(&self.last_backend, e.to_string()),
        }
    }

    /// What the client sees of the session-state data in its replies (see
    /// [`TrackingView`]).
    fn tracking_view(&self) -> TrackingView {
        TrackingView {
            client_tracks: self.caps.contains(Capabilities::CLIENT_SESSION_TRACK),
            own_state_change: self.tracks_state_itself,
        }
    }

    /// Status flags to report in Funnel's own OK packets.
    fn client_status(&self) -> StatusFlags {
        // A session that turned autocommit off holds no connection between
        // its transactions, and still has autocommit off. Its sql_mode's
        // NO_BACKSLASH_ESCAPES is as the server last said: client libraries
        // escape strings by it.
        let unpinned = if self.vars.sets_autocommit_off() {
            0
        } else {
            StatusFlags::SERVER_STATUS_AUTOCOMMIT.0
        } | (self.last_status.0 & StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES.0);
        match &self.pinned {
            Some(c) => StatusFlags(c.status.0 & !StatusFlags::SERVER_MORE_RESULTS_EXISTS.0),
            // The client still sees the transaction it lost until it ends it.
            None if self.tx_lost => StatusFlags(unpinned | StatusFlags::SERVER_STATUS_IN_TRANS.0),
            None => StatusFlags(unpinned),
        }
    }

    async fn write_ok(&mut self, seq: u8, ok: &OkPacket) -> Result<(), End> {
        // A statement Funnel answers with an OK of its own (a rule's `ok`, a
        // `KILL`, a `ROLLBACK` of a lost transaction).
        self.record_digest(0, false, AnsweredBy::Funnel);
        self.out.clear();
        let caps = self.caps;
        write_small_packet(&mut self.out, seq, |p| ok.write(p, caps));
        write_own(&mut self.stream, &self.out, &self.shard, &self.control)
            .await
            .map_err(|_| End::Closed)
    }

    /// Writes an ERR to the client (see [`write_own`]).
    async fn write_err(&mut self, seq: u8, err: &ErrPacket) -> std::io::Result<()> {
        if self.log.taken() {
            self.log.failed(err.code);
        }
        self.out.clear();
        write_small_packet(&mut self.out, seq, |p| err.write(p));
        write_own(&mut self.stream, &self.out, &self.shard, &self.control).await
    }

    async fn reply_error(&mut self, seq: u8, e: EngineError) -> Result<(), End> {
        tracing::debug!(client = %self.id, error = %e, "command refused");
        let err = e.to_err_packet();
        self.send_own_err(seq, &err).await
    }

    /// Sends an ERR that Funnel itself made (not a backend's), counted by
    /// its code for `SHOW STATS` and `funnel_errors_total`.
    async fn send_own_err(&mut self, seq: u8, err: &ErrPacket) -> Result<(), End> {
        self.shard.stats.count_error(err.code);
        if !self.no_reply {
            self.record_digest(0, true, AnsweredBy::Funnel);
        }
        // A command that would end a lost transaction (`ROLLBACK AND
        // CHAIN`) and failed here (no connection for it, a `KILL` while it
        // waited, a rule) ended nothing: the statements after it must not
        // run in autocommit, out of the transaction the client still
        // thinks it is in.
        if std::mem::take(&mut self.ends_lost_transaction) {
            self.tx_lost = true;
        }
        if !self.no_reply {
            self.note_own_err(err);
        }
        self.send_backend_err(seq, err).await
    }

    async fn send_backend_err(&mut self, seq: u8, err: &ErrPacket) -> Result<(), End> {
        if self.no_reply {
            self.deferred_err.get_or_insert_with(|| err.clone());
            return Ok(());
        }
        // A server's ERR for the statement before it ran (a sync of the
        // connection refused, a `KILL` the server refused): counted as the
        // backend's answer (Funnel's own ERRs were counted in
        // `send_own_err` already).
        self.record_digest(0, true, AnsweredBy::Backend);
        self.write_err(seq, err).await.map_err(|_| End::Closed)
    }
}

/// Sends a `KILL QUERY` for the statement client `control` runs on server
/// `thread`, in the background. A `KILL` still on its way holds the
/// connection from any other client until it has landed.
fn kill_statement(shard: &Rc<Shard>, control: &Rc<ClientControl>, thread: ServerThread) {
    let (shard, control) = (shard.clone(), control.clone());
    // Noted before the task runs: the session may release the
    // connection first.
    let in_flight = control.kill_in_flight();
    rt::spawn(async move {
        let _ = shard.kill_running(&control, thread, in_flight).await;
    });
}

fn backend_lost(backend: &str, reason: String) -> EngineError {
    EngineError::BackendLost {
        backend: backend.to_string(),
        reason,
    }
}

/// How long a client refused for a packet too large may go on sending it
/// before Funnel closes the connection (see `Session::drain_before_close`).
const OVERSIZED_DRAIN: Duration = Duration::from_secs(1);

/// Writes bytes Funnel made itself (not a relayed reply) to a logged-in
/// client: within `client.net_write_timeout`, as a relayed reply, and cut
/// short by a `KILL` of the session, as the server shuts a killed
/// connection's socket. A client that reads nothing held its session, and
/// the backend connection it may hold (an open transaction, its locks),
/// until it closed: such a write had no time limit, and a `KILL` did not
/// end it.
async fn write_own(
    stream: &mut Stream,
    bytes: &[u8],
    shard: &Shard,
    control: &Rc<ClientControl>,
) -> std::io::Result<()> {
    let limit = shard.config().client.net_write_timeout.non_zero();
    within_unless_killed(
        limit,
        stream.write_all(bytes),
        "client.net_write_timeout reached",
        control,
    )
    .await
}

async fn send_err(stream: &mut Stream, seq: u8, err: &ErrPacket) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    write_small_packet(&mut out, seq, |p| err.write(p));
    stream.write_all(&out).await
}

/// The largest count for `FOUND_ROWS()` Funnel gives a connection before a
/// `CALL` (see `Session::give_found_rows`): the server counts that many
/// rows, about 0.3 s for a million.
const MAX_GIVEN_FOUND_ROWS: u64 = 1_000_000;

/// A statement that returns no rows and leaves `n` as what `FOUND_ROWS()`
/// answers: a `SELECT SQL_CALC_FOUND_ROWS ... LIMIT 0` over a cross join
/// of as many ten-row tables of digits as `n` needs, of which the numbers
/// below `n` pass (at most 10n rows are read; no recursion, which a
/// session's `max_recursive_iterations` could cut short). With
/// `row_count_zero`, inside a `DO`: the subquery's count stands as well,
/// and `ROW_COUNT()` reads 0 after it, where after a `SELECT` it reads -1.
fn give_found_rows_sql(n: u64, row_count_zero: bool) -> String {
    const DIGITS: &str = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
         UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
         UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let mut tables = 1u32;
    while 10u64.pow(tables) < n {
        tables += 1;
    }
    let from: Vec<String> = (0..tables).map(|i| format!("{DIGITS} t{i}")).collect();
    let number: Vec<String> = (0..tables)
        .map(|i| format!("t{i}.d * {}", 10u64.pow(i)))
        .collect();
    let select = format!(
        "SELECT SQL_CALC_FOUND_ROWS 1 FROM {} WHERE {} < {n} LIMIT 0",
        from.join(", "),
        number.join(" + ")
    );
    if row_count_zero {
        format!("DO ({select})")
    } else {
        select
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statement that gives a connection a count for `FOUND_ROWS()`
    /// joins as many ten-row digit tables as `n` needs (at least one),
    /// and lets the numbers below `n` pass; in a `DO` where `ROW_COUNT()`
    /// must stay 0.
    #[test]
    fn session_give_found_rows_counts_n_rows() {
        for (n, tables) in [
            (0, 1),
            (1, 1),
            (10, 1),
            (11, 2),
            (100, 2),
            (101, 3),
            (1_000_000, 6),
        ] {
            let sql = give_found_rows_sql(n, false);
            assert!(sql.starts_with("SELECT SQL_CALC_FOUND_ROWS 1 FROM "), "{sql}");
            assert_eq!(sql.matches("SELECT 9)").count(), tables, "{sql}");
            assert!(sql.ends_with(&format!(" < {n} LIMIT 0")), "{sql}");
            assert!(sql.contains(&format!("t{}.d * {}", tables - 1, 10u64.pow(tables as u32 - 1))));
            assert_eq!(give_found_rows_sql(n, true), format!("DO ({sql})"));
        }
    }
}
