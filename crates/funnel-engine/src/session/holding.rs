//! Which backend connection a session holds, and when it lets it go:
//! the pins (state only that connection has), the linger that keeps a
//! connection for the client's `SHOW WARNINGS`, and the hand-back to the
//! pool (reset first where the session left state behind).

use funnel_protocol::StatusFlags;

use super::command::Forward;
use super::pinning::PinReason;
use super::Session;
use crate::pool::conn::{BackendConn, BackendError};
use crate::router::Access;

impl Session {
    /// After a command: keep the connection (transaction, sticky state) or
    /// return it to the pool.
    pub(super) fn keep_or_release(&mut self, conn: BackendConn, f: &Forward, succeeded: bool) {
        if let Some(reason) = f.pin.filter(|_| succeeded) {
            self.pin(reason);
        }
        if f.rule_pin {
            // What the statement left is unknown, also when it failed.
            self.pin(PinReason::QueryRule);
        }
        self.note_next_transaction(&conn);
        if !conn.may_be_in_transaction() {
            // Whatever XA transaction there was is over.
            self.xa = false;
        }
        let tx_reason = self.hold_reason(&conn);
        if tx_reason.is_none() && !self.sticky() && self.linger && conn.is_reusable() {
            // Kept for the client's next command only (see `linger`).
            self.pin_reason = None;
            self.pinned = Some(conn);
            return;
        }
        if self.sticky() || tx_reason.is_some() {
            if !self.sticky() {
                self.pin_reason = tx_reason;
            }
            self.pinned = Some(conn);
        } else {
            self.pin_reason = None;
            self.shard.backends.release(conn);
        }
    }

    /// Why the session must hold `conn` when no pin does: a transaction
    /// may be open on it, autocommit is off there where Funnel did not see
    /// it turned off, or a statement's long data waits there.
    pub(super) fn hold_reason(&self, conn: &BackendConn) -> Option<PinReason> {
        if conn.may_be_in_transaction() {
            Some(PinReason::Transaction)
        } else if conn.autocommit_off_untracked() {
            Some(PinReason::AutocommitOff)
        } else if !self.long_data.is_empty() {
            Some(PinReason::PreparedStatement)
        } else {
            None
        }
    }

    /// The server says the command changed session state that its text did
    /// not show (a stored function or trigger that set a variable): that
    /// state is the client's, on this connection alone. The connection
    /// never serves another client, and the session keeps it, except on a
    /// server that takes no writes (read-only, or left out by `max_writers`):
    /// there the session's writes could not follow it, so
    /// the connection is closed once the session lets it go (and the state
    /// is lost, as the session never asked for it in a way Funnel could see).
    pub(super) fn note_untracked_state(&mut self, conn: &mut BackendConn) {
        conn.untracked_state = true;
        let read_only = self
            .shard
            .backends
            .by_id(conn.pool_id)
            .is_some_and(|pool| self.shard.backends.refuses_writes(&pool));
        if !read_only {
            self.pin(PinReason::UntrackedState);
        }
    }

    /// Ends a `SET TRANSACTION` pin once the transaction it was for has
    /// ended on the connection: MariaDB drops such characteristics when a
    /// transaction commits or rolls back (an autocommit statement may use
    /// them up earlier, unseen; keeping the pin longer is only slower).
    /// A `BEGIN ... COMMIT` inside one multi-statement query is not seen
    /// either, and keeps the pin.
    pub(super) fn note_next_transaction(&mut self, conn: &BackendConn) {
        if !self.pins.contains(PinReason::NextTransaction) {
            return;
        }
        if conn.status.in_transaction() {
            self.next_tx_begun = true;
        } else if self.next_tx_begun {
            self.next_tx_begun = false;
            self.pins.remove(PinReason::NextTransaction);
            self.pin_reason = self.pins.first();
        }
    }

    /// The session keeps its connection, which holds the client's last
    /// insert id (see `insert_id_on_server`).
    pub(super) fn holds_client_insert_id(&self) -> bool {
        self.sticky() && self.insert_id_on_server
    }

    /// Pinned for `PreviousStatementInfo` on a connection that has the
    /// client's last insert id (see `insert_id_on_server`).
    pub(super) fn insert_id_pinned(&self) -> bool {
        self.insert_id_on_server && self.pins.contains(PinReason::PreviousStatementInfo)
    }

    pub(super) fn pin(&mut self, reason: PinReason) {
        // A pin for the next transaction ends by itself, as a transaction
        // does: the stateless `CALL`s' pins end with it (`SET autocommit =
        // 1` that commits a `CALL`'s transaction pinned the session for
        // life).
        if reason != PinReason::NextTransaction {
            self.stateless_pins = false;
        }
        if !self.sticky() {
            // The client's earlier statements may have run on other
            // connections: this one has the client's id only once the
            // client makes one here or Funnel gives it.
            self.insert_id_on_server = false;
        }
        if reason == PinReason::NextTransaction {
            // A new `SET TRANSACTION` waits for a transaction of its own.
            self.next_tx_begun = false;
        }
        self.note_first_count_pin(reason);
        if self.pins.insert(reason) {
            tracing::debug!(client = %self.id, reason = reason.as_str(), "client pinned to its backend connection");
            self.shard.stats.count_pin(reason);
            if let Some((key, _)) = &self.digest {
                let mut by = self.shard.stats.pins_by_digest.borrow_mut();
                if by.len() < crate::digest::MAX_DIGESTS || by.contains_key(key) {
                    *by.entry(*key).or_default() += 1;
                }
            }
        }
        self.pin_reason = Some(reason);
    }

    /// The first pin for `PreviousStatementInfo`: the client's statements
    /// before it ran on other connections, so this one has neither its
    /// insert id nor its count for `FOUND_ROWS()`.
    pub(super) fn note_first_count_pin(&mut self, reason: PinReason) {
        if reason == PinReason::PreviousStatementInfo && !self.pins.contains(reason) {
            self.insert_id_on_server = false;
            self.found_rows_off_server = true;
        }
    }

    /// Adds a reason beside the one the same statement pinned for (`SELECT
    /// ... INTO @x` pins for the variable; the server answers
    /// `FOUND_ROWS()` from then on too): the statement pinned the client
    /// once, so it is counted and shown once, for its first reason.
    pub(super) fn pin_beside(&mut self, reason: PinReason) {
        self.stateless_pins = false;
        self.note_first_count_pin(reason);
        self.pins.insert(reason);
    }

    /// Ends a pin reason and releases the connection when nothing else
    /// (no other reason, no transaction) holds it any more.
    pub(super) fn unpin(&mut self, reason: PinReason) {
        self.pins.remove(reason);
        self.pin_reason = self.pins.first();
        self.release_if_free();
        // Still held for its transaction: so it says, or the connection
        // would count as lingering only, free to go to other clients, and
        // its loss would not be reported as the transaction's.
        if self.pin_reason.is_none() {
            self.pin_reason = self.pinned.as_ref().and_then(|c| self.hold_reason(c));
        }
    }

    /// Releases the held connection when nothing (no pin reason, no long
    /// data, no transaction) holds it any more.
    pub(super) fn release_if_free(&mut self) {
        if self.sticky() || !self.long_data.is_empty() {
            return;
        }
        if let Some(conn) = self.pinned.take() {
            if conn.is_reusable() {
                self.pin_reason = None;
                self.shard.backends.release(conn);
            } else {
                self.pinned = Some(conn);
            }
        }
    }

    /// After a `RELEASE_LOCK()`: asks the server which of the session's
    /// named locks its connection still holds, and releases the connection
    /// when none is left and nothing else holds it. Only then: a check on a
    /// connection kept for other reasons would gain nothing and would
    /// overwrite what `ROW_COUNT()` and the warnings report there.
    pub(super) async fn check_named_locks(&mut self) {
        // While the connection lingers for the client's SHOW WARNINGS, the
        // check would replace what it reports (and release it to others).
        let alone = !self.linger
            && self.pins.is_only(PinReason::NamedLock)
            && self.pinned.as_ref().is_some_and(|c| {
                !c.status.in_transaction() && c.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
            });
        let Some(sql) = self.locks.check_query().filter(|_| alone) else {
            return;
        };
        let Some(mut conn) = self.pinned.take() else {
            return;
        };
        match conn.query_rows(&sql).await {
            Ok((_, rows)) => {
                self.pinned = Some(conn);
                if rows.first().is_some_and(|row| self.locks.keep_held(row)) {
                    self.unpin(PinReason::NamedLock);
                }
            }
            // Refused (privileges, say): the pin stays, nothing is lost.
            Err(BackendError::Refused(_)) => self.pinned = Some(conn),
            // The connection, and the locks with it, are gone: the client's
            // next command learns why, then the session ends.
            Err(e) => self.lose_after_reply(conn, &e),
        }
    }

    /// Every pin reason is gone with the state behind it (a reset, or the
    /// connection that held it died).
    pub(super) fn clear_pins(&mut self) {
        self.stateless_pins = false;
        self.pins.clear();
        self.locks.clear();
    }

    /// True while lasting state keeps the connection with this session.
    pub(super) fn sticky(&self) -> bool {
        !self.pins.is_empty()
    }

    /// Lets go of the connection the session holds only for the client's
    /// `SHOW WARNINGS` (`linger`) when a write would not go there: a
    /// replica that served a read. Called before a prepare (or a
    /// `GET DIAGNOSTICS` into user variables) pins the session, which from
    /// then on keeps the connection it holds, so its
    /// writes would follow it to that replica (one that holds none takes
    /// its next from the writers, see `route`). The warnings are lost to
    /// the client, a smaller harm.
    pub(super) fn let_go_of_a_lingering_reader(&mut self) {
        if !self.linger || self.pin_reason.is_some() || self.sticky() {
            return;
        }
        let write = Forward::new("COM_STMT_PREPARE", None);
        let Some(conn) = self.pinned.as_ref() else {
            return;
        };
        if self.routes_to(conn, 0, &write) {
            return;
        }
        // A default hostgroup of read-only servers alone (a reporting
        // user's): none would take its writes, the warnings stay.
        let default = &self.user.default_hostgroup;
        let in_default = self
            .shard
            .backends
            .by_id(conn.pool_id)
            .is_some_and(|pool| *pool.placement().hostgroup == **default);
        if in_default && self.shard.backends.pick(default, Access::Write).is_none() {
            return;
        }
        self.linger = false;
        if let Some(conn) = self.pinned.take() {
            self.shard.backends.release(conn);
        }
    }

    /// Returns a connection that served no client command.
    /// [`Self::give_back`], but a connection that would go back to the
    /// pool stays for the client's next command while `linger` says so.
    pub(super) fn keep_lingering(&mut self, conn: BackendConn) {
        if self.linger && !self.sticky() && conn.is_reusable() {
            self.pinned = Some(conn);
        } else {
            self.give_back(conn);
        }
    }

    pub(super) fn give_back(&mut self, conn: BackendConn) {
        if conn.server_closes && !self.sticky() && self.hold_reason(&conn).is_none() {
            // Closing (an error the server ends the connection after, on
            // a prepare say): nothing of the session's is on it, and the
            // pool closes it rather than wait for the session's next
            // command to find it gone.
            self.pin_reason = None;
            self.shard.backends.release(conn);
            return;
        }
        if self.sticky() || !conn.is_reusable() {
            if !self.sticky() {
                self.pin_reason = self.hold_reason(&conn);
            }
            self.pinned = Some(conn);
        } else {
            self.shard.backends.release(conn);
        }
    }

    /// Gives the pinned connection back: reusable ones to the pool, with a
    /// reset first when what pinned the session is still on it; the rest
    /// (open transaction, long data, state a reset may not undo) are closed
    /// so no other client inherits them.
    pub(super) fn end(&mut self) {
        if let Some(conn) = self.pinned.take() {
            if self.may_leave(&conn) {
                self.leave(conn);
            } else {
                self.discard_backend(conn);
            }
        }
    }

    /// True when the session's connection may serve another client once
    /// the session has let it go: nothing pins it, or all that pins it dies
    /// with a reset ([`PinSet::undone_by_reset`]) and no transaction is
    /// open. Never with long data, which lives on the server's statement.
    pub(super) fn may_leave(&self, conn: &BackendConn) -> bool {
        self.long_data.is_empty() && (!self.sticky() || (self.pins.undone_by_reset() && conn.is_reusable()))
    }

    /// Gives a connection [`Self::may_leave`] allows back to the pool, which
    /// resets it first when the session was pinned there (two round trips,
    /// where closing it would cost the next client a login).
    pub(super) fn leave(&mut self, mut conn: BackendConn) {
        conn.needs_reset |= self.sticky();
        self.shard.backends.release(conn);
    }
}
