//! Starting over without reconnecting: `COM_RESET_CONNECTION` and
//! `COM_CHANGE_USER` (which authenticates again against Funnel's users).

use funnel_protocol::response::{ErrPacket, OkPacket};
use funnel_protocol::Capabilities;

use super::handshake::{self, LoginError};
use super::pinning::PinReason;
use super::read_back::found_rows_of;
use super::rewrite::LastResults;
use super::{End, Session};
use crate::error::EngineError;
use crate::kill::{ClientControl, ClientState};
use crate::pool::conn::{BackendConn, BackendError};
use crate::pool::key::PoolKey;

/// Refused `COM_CHANGE_USER`s a connection may have before every further
/// one is refused unheard: MariaDB keeps the connection after a refusal,
/// and allows three, so that it cannot serve to guess passwords.
const MAX_FAILED_CHANGE_USERS: u8 = 3;

/// How long MariaDB waits before it answers a refused `COM_CHANGE_USER`
/// (every refusal, those refused unheard after the third included:
/// `sql_parse.cc` calls `my_sleep(1000000)`; 10.11 measured at 1.0 s), so
/// guessing passwords over a connection it keeps is slow.
const REFUSED_CHANGE_USER_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

impl Session {
    /// `COM_RESET_CONNECTION`: forgets the session's state. When a backend
    /// connection holds state for it, the server resets that connection
    /// too, and Funnel turns its reports back on there, before the client
    /// hears OK: whatever it does next (and `SHOW CLIENTS`) meets a clean
    /// session.
    pub(super) async fn reset_connection(&mut self, total: usize) -> Result<(), End> {
        self.buf.consume(total);
        // MariaDB's reset keeps what FOUND_ROWS() answers.
        let mut found_rows = Some(self.last.found_rows);
        let mut kept = None;
        // What the server says of the clean session (its `sql_mode` is the
        // default again: NO_BACKSLASH_ESCAPES may be gone).
        let mut status = None;
        if let Some(mut conn) = self.pinned.take() {
            self.last_backend = conn.backend.clone();
            // The server's rollback may take long: `SHOW CLIENTS` shows the
            // client busy meanwhile (no `KILL QUERY` target though: the
            // server cannot stop a rollback).
            self.control.set_state(ClientState::Running);
            if self.server_answers_found_rows() {
                // The server's count, not Funnel's record of it
                // (SQL_CALC_FOUND_ROWS): read before the reset's check,
                // whose subquery sets it.
                found_rows = match found_rows_of(&mut conn).await {
                    Ok(n) => n,
                    Err(e) => return self.reset_lost(conn, e).await,
                };
            }
            // The server rolls back the client's transaction there: as
            // long as that takes, under the client's own limit.
            match conn.reset_session_within(self.query_deadline()).await {
                Ok(true) => {
                    status = Some(conn.status);
                    self.shard.backends.release(conn);
                }
                // The reset left the client's role or profiles, as it does
                // on the server: the connection stays with the client (and
                // is closed after it).
                Ok(false) => {
                    status = Some(conn.status);
                    kept = Some(conn);
                }
                Err(BackendError::Refused(err)) => {
                    // Nothing was reset.
                    self.pinned = Some(conn);
                    return self.send_own_err(1, &err).await;
                }
                Err(e) => return self.reset_lost(conn, e).await,
            }
        }
        self.forget_state();
        // The server's reset leaves the global `sql_mode`, without the
        // `IGNORE_SPACE` a login asked for (MariaDB 10.11).
        self.vars
            .reset_by_server(self.caps.contains(Capabilities::CLIENT_IGNORE_SPACE));
        if let Some(status) = status {
            self.last_status = status;
            self.sql_mode_unknown = false;
        }
        match found_rows {
            Some(n) => self.last.found_rows = n,
            None => self.record_found_rows(None),
        }
        if let Some(conn) = kept {
            self.pinned = Some(conn);
            self.pin(PinReason::SessionVariable);
        }
        let ok = OkPacket {
            status: self.client_status(),
            ..Default::default()
        };
        self.write_ok(1, &ok).await
    }

    /// The connection failed during a client's reset: its state is gone
    /// with it, as the client asked, but the client is told the backend
    /// failed.
    async fn reset_lost(&mut self, conn: BackendConn, e: BackendError) -> Result<(), End> {
        self.forget_state();
        self.discard_backend(conn);
        let err = self.backend_failure(e);
        self.reply_error(1, err).await
    }

    /// True when the pinned connection's `FOUND_ROWS()` is the client's
    /// and Funnel's record may not be (`SQL_CALC_FOUND_ROWS`): a reset or
    /// change of user, which keeps the count, reads it there first.
    pub(super) fn server_answers_found_rows(&self) -> bool {
        self.pins.contains(PinReason::PreviousStatementInfo) && !self.found_rows_off_server
    }

    /// Everything a fresh session would not have.
    pub(super) fn forget_state(&mut self) {
        // The multi-statement option is a client flag: resets keep it.
        self.open_cursors.clear();
        self.stmts.clear();
        self.vars.clear();
        self.user_vars.clear();
        self.last = LastResults::default();
        self.clear_pins();
        self.pin_reason = None;
        self.long_data.clear();
        self.linger = false;
        self.own_err = None;
        self.calc_found_rows = false;
        self.tracks_state_itself = false;
        self.insert_id_given_to_calls = false;
        self.xa = false;
        // As at login: the server's default `sql_mode` (see
        // `literal_backslashes`).
        self.start_fresh_status();
        self.found_rows_off_server = false;
    }

    /// `COM_CHANGE_USER`: authenticate again against Funnel's users, then
    /// start over as a fresh session of that user. MariaDB ends the old
    /// session before it authenticates, so a refused change leaves a fresh
    /// session too, of the old user in the old schema, on the same
    /// connection (`sql_parse.cc`, `COM_CHANGE_USER`: it restores the old
    /// security context and schema); MySQL closes the connection instead
    /// (`KILL_CONNECTION` with ER_ACCESS_DENIED_CHANGE_USER_ERROR). Funnel
    /// does what the server it fronts does (see [`Self::change_refused`]).
    pub(super) async fn change_user(&mut self, total: usize) -> Result<(), End> {
        let payload = self.buf.bytes()[4..total].to_vec();
        self.buf.consume(total);
        let request = match funnel_protocol::command::Command::parse(&payload, self.caps) {
            Ok(funnel_protocol::command::Command::ChangeUser(r)) => r,
            // MariaDB refuses a change it cannot parse as any other
            // (`parse_com_change_user_packet`: ER_UNKNOWN_COM_ERROR): the
            // old session ends, the refusal counts and waits its second.
            _ => {
                self.end_old_session().await;
                let err = ErrPacket::new(1047, "08S01", "Unknown command");
                return self.change_refused(1, err, true).await;
            }
        };
        if self.failed_change_users >= MAX_FAILED_CHANGE_USERS {
            // MariaDB's limit on guessing passwords over a connection it
            // keeps: refused without authenticating (`sql_parse.cc`,
            // `failed_com_change_user`).
            self.end_old_session().await;
            let err = ErrPacket::new(1047, "08S01", "Unknown command");
            return self.change_refused(1, err, true).await;
        }
        // A `KILL` during the exchange (an auth switch waits for the
        // client) ends the client, as the server closes a connection it
        // is authenticating on.
        let users = self.shard.users();
        let authenticate = handshake::change_user(
            &mut self.stream,
            &mut self.buf,
            &users,
            &request,
            &self.scramble,
            &self.peer,
        );
        let Some(outcome) = self.control.unless_killed(authenticate).await else {
            return Err(End::Closed);
        };
        let (user, seq) = match outcome {
            Ok(x) => x,
            Err(LoginError::Io(_)) => return Err(End::Closed),
            Err(LoginError::Refuse(e, seq)) => {
                self.end_old_session().await;
                return self.change_refused(seq, e.to_err_packet(), true).await;
            }
        };
        self.end_old_session().await;
        // The same rule as at login: a user that requires TLS gets none of
        // its results over plain TCP, whoever logged in first.
        if user.require_tls && !self.stream.is_tls() {
            return self
                .change_refused(seq, EngineError::InsecureTransport.to_err_packet(), true)
                .await;
        }
        if let Some(name) = request
            .charset
            .and_then(funnel_protocol::charset::refused_client_charset)
        {
            return self
                .change_refused(seq, EngineError::ClientCharset(name).to_err_packet(), true)
                .await;
        }
        // The connection now counts against the new user's limit.
        let Some(slot) = user.admit() else {
            let err = ErrPacket::new(
                1203,
                "42000",
                format!(
                    "User {} already has more than 'max_user_connections' active connections",
                    user.name
                ),
            );
            return self.change_refused(seq, err, true).await;
        };
        let schema = if request.database.is_empty() {
            user.default_schema.clone()
        } else {
            Some(request.database.to_vec())
        };
        let old_key = self.key;
        if let Some(cs) = request.charset {
            if let Ok(cs) = u8::try_from(cs) {
                self.key = PoolKey::for_client(self.caps, cs);
            }
        }
        // The schema is checked as the new user (its hostgroup); a refused
        // one leaves the old user and schema.
        let old_user = std::mem::replace(&mut self.user, user.clone());
        let old_schema = std::mem::replace(&mut self.schema, schema);
        if let Some((err, engine)) = self.schema_refusal().await {
            self.user = old_user;
            self.schema = old_schema;
            self.key = old_key;
            return self.change_refused(seq, err, engine).await;
        }
        // A `KILL` that came meanwhile (the schema's check waits for a
        // backend) reached the old session's control: the new one must not
        // leave it behind.
        if self.control.is_killed() {
            return Err(End::Closed);
        }
        self._slot = slot;
        if *old_user.default_hostgroup != *self.user.default_hostgroup {
            // The old user's writes went to other servers: the new user's
            // replicas may never reach their GTIDs, and every causal read
            // would wait its whole timeout.
            self.causal.clear();
        }
        self.users_generation = None;
        let control = ClientControl::new(user.name.clone(), self.peer.clone());
        self.shard.clients.insert(self.id, control.clone());
        self.control = control;
        self.start_fresh_status();
        let ok = OkPacket {
            status: self.client_status(),
            ..Default::default()
        };
        self.write_ok(seq, &ok).await
    }

    /// Ends the session a `COM_CHANGE_USER` replaces, as the server does
    /// before it authenticates: nothing of it may survive on a backend
    /// connection. What `FOUND_ROWS()` answers is kept, as MariaDB keeps it:
    /// the server's count where the session was pinned for it, read before
    /// the connection goes.
    async fn end_old_session(&mut self) {
        let mut found_rows = self.last.found_rows;
        if let Some(mut conn) = self.pinned.take() {
            let mut lost = false;
            if self.server_answers_found_rows() {
                match found_rows_of(&mut conn).await {
                    Ok(Some(n)) => found_rows = n,
                    Ok(None) => {}
                    Err(_) => lost = true,
                }
            }
            if !lost && self.may_leave(&conn) {
                self.leave(conn);
            } else {
                self.shard.backends.discard(conn);
            }
        }
        self.forget_state();
        self.last.found_rows = found_rows;
    }

    /// Answers a refused `COM_CHANGE_USER` with `err` (counted as Funnel's
    /// own when `engine`). In front of MariaDB the client goes on as a
    /// fresh session of its old user in its old schema, as on the server,
    /// and hears its ERR after [`REFUSED_CHANGE_USER_DELAY`], as there: on
    /// a timer, with no backend connection held (the old session ended
    /// before), so the core's other clients are served meanwhile. In front
    /// of anything else (MySQL) the connection ends at once, as there.
    async fn change_refused(&mut self, seq: u8, err: ErrPacket, engine: bool) -> Result<(), End> {
        self.failed_change_users = self.failed_change_users.saturating_add(1);
        if engine {
            self.shard.stats.count_error(err.code);
        }
        let keeps_connection = self
            .shard
            .server_version()
            .windows(b"MariaDB".len())
            .any(|w| w == b"MariaDB");
        if !keeps_connection {
            let _ = self.write_err(seq, &err).await;
            return Err(End::Refused);
        }
        debug_assert!(
            self.pinned.is_none(),
            "a refused change of user holds no connection"
        );
        // A `KILL` of the session ends the wait (and the session).
        if self
            .control
            .unless_killed(crate::rt::sleep(REFUSED_CHANGE_USER_DELAY))
            .await
            .is_none()
        {
            return Err(End::Closed);
        }
        self.write_err(seq, &err).await.map_err(|_| End::Closed)?;
        self.start_fresh_status();
        // The failed command's `ROW_COUNT()`, as the server's.
        self.last.row_count = -1;
        Ok(())
    }
}
