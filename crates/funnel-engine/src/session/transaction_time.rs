//! `client.max_transaction_time` (ProxySQL's `mysql-max_transaction_time`):
//! how long a session's transaction may stay open before Funnel ends it.
//! A transaction holds its backend connection (and the server's locks)
//! from every other client, so one left open by a stuck application
//! shrinks the pool for everyone; idle or running, it is ended at the
//! limit: a running statement is stopped with `KILL QUERY`, the client is
//! told why and disconnected, and closing its connection rolls the
//! transaction back.

use std::time::{Duration, Instant};

use funnel_protocol::response::ErrPacket;
use funnel_protocol::StatusFlags;

use super::Session;

/// ER_LOCK_DEADLOCK: the server rolled back the whole transaction.
pub(super) const ER_LOCK_DEADLOCK: u16 = 1213;

/// What the limit leaves a transaction opened at `began`, at `now`
/// (zero once it has passed).
pub(super) fn left(began: Instant, limit: Duration, now: Instant) -> Duration {
    limit.saturating_sub(now.saturating_duration_since(began))
}

/// What became of the transaction, for the ERRs below: closing the
/// connection rolls it back, but not an XA transaction already prepared
/// (`xa`: the session's transaction ran an `XA` statement), which the
/// server keeps, with its locks, for its transaction manager to end.
fn outcome(xa: bool) -> &'static str {
    if xa {
        "the connection was closed, which rolls the transaction back unless it is an XA transaction \
         already prepared: that one stays prepared (XA RECOVER) for its transaction manager to end"
    } else {
        "the transaction was rolled back and the connection closed"
    }
}

/// The ERR a client gets when its transaction outlived the limit while it
/// was idle, or before its next command ran; the connection closes after
/// it. ER_CLIENT_INTERACTION_TIMEOUT, as for `client.idle_timeout`:
/// connectors take it for a closed connection. `xa`: see [`outcome`].
pub(super) fn closing_err(xa: bool) -> ErrPacket {
    ErrPacket::new(
        4031,
        "HY000",
        format!(
            "The client was disconnected by the server because its transaction was open longer \
             than client.max_transaction_time; {}",
            outcome(xa)
        ),
    )
}

/// The ERR of a statement stopped (`KILL QUERY`) because its transaction
/// outlived the limit; the connection closes after it. MariaDB's own for
/// `max_statement_time` (1969, 70100), as for a query rule's `timeout`.
/// `xa`: see [`outcome`].
pub(super) fn stopped_err(limit: Duration, xa: bool) -> ErrPacket {
    ErrPacket::new(
        1969,
        "70100",
        format!(
            "Query execution was interrupted (client.max_transaction_time of {} ms exceeded); {}",
            limit.as_millis(),
            outcome(xa)
        ),
    )
}

/// What a statement (text) does to the session's open transaction, for
/// the limit: `ends` when a statement of it ends the transaction it finds
/// (`COMMIT`, `ROLLBACK` but one to a savepoint, a statement the server
/// commits before it runs): one open after it is a new one, counted from
/// this command; `commits_first` when a statement of it commits before it
/// runs (DDL, `LOCK TABLES`, `SET autocommit`, ...): it runs outside the
/// transaction it ended, which the limit must not stop it for (the
/// client would be told the transaction rolled back, committed as it is).
/// Unlike [`super::lost_transaction::commits`], which may read too much,
/// a `CREATE` / `DROP TEMPORARY TABLE` commits nothing here (the
/// transaction goes on through it), nor does any `SET` end one: `SET
/// autocommit = 1` commits only where autocommit was off, and then
/// leaves none open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Effect {
    /// The open transaction ends with it; one open after it is new.
    pub ends: bool,
    /// A statement of it commits before it runs.
    pub commits_first: bool,
}

/// The [`Effect`] of the statements of `sql`.
pub(super) fn effect(sql: &[u8]) -> Effect {
    let mut out = Effect::default();
    for statement in super::sql_lex::statements(sql) {
        let mut words = super::sql_lex::skip_leading_comments(statement)
            .split(|c| c.is_ascii_whitespace() || *c == b'(' || *c == b'/')
            .filter(|w| !w.is_empty());
        let Some(first) = words.next() else {
            continue;
        };
        let is = |w: &[u8], k: &str| w.eq_ignore_ascii_case(k.as_bytes());
        if is(first, "ROLLBACK") {
            out.ends |= !words.any(|w| is(w, "TO"));
        } else if is(first, "COMMIT") {
            out.ends = true;
        } else if (is(first, "CREATE") || is(first, "DROP"))
            && words.by_ref().take(3).any(|w| is(w, "TEMPORARY"))
            || is(first, "BEGIN") && words.next().is_some_and(|w| is(w, "NOT"))
        {
            // `CREATE [OR REPLACE] TEMPORARY TABLE`, `DROP TEMPORARY
            // TABLE`, a compound statement (`BEGIN NOT ATOMIC`).
        } else if super::lost_transaction::commits(statement) {
            out.commits_first = true;
            out.ends |= !is(first, "SET");
        }
    }
    out
}

impl Session {
    /// True when the session's transaction has been open
    /// `client.max_transaction_time` at `now`.
    pub(super) fn transaction_overdue(&self, now: Instant) -> bool {
        let Some(began) = self.tx_began else {
            return false;
        };
        let limit = self.shard.config().client.max_transaction_time.non_zero();
        limit.is_some_and(|limit| left(began, limit, now).is_zero())
    }

    /// How long the statement about to run may run before
    /// `client.max_transaction_time` stops it, with the ERR it then gets:
    /// inside a transaction, what the limit leaves it; with autocommit
    /// off, where the statement opens one, the whole limit from now (it
    /// was just sent).
    pub(super) fn transaction_stop(&self) -> Option<(Duration, ErrPacket)> {
        let autocommit_off = !self.last_status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        if self.tx_began.is_none() && !autocommit_off || self.tx_effect.commits_first {
            // No transaction; or the statement commits the open one
            // before it runs (DDL), and runs outside it: stopped, the
            // client would be told that transaction rolled back.
            return None;
        }
        let limit = self.shard.config().client.max_transaction_time.non_zero()?;
        let now = Instant::now();
        let left = left(self.tx_began.unwrap_or(now), limit, now);
        Some((left, stopped_err(limit, self.xa)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_time_statement_effects() {
        let e = |s: &str| effect(s.as_bytes());
        let ends = Effect {
            ends: true,
            commits_first: false,
        };
        let commits = Effect {
            ends: true,
            commits_first: true,
        };
        let none = Effect::default();
        assert_eq!(e("COMMIT"), ends);
        assert_eq!(e("commit and chain"), ends);
        assert_eq!(e("/* c */ ROLLBACK AND CHAIN"), ends);
        assert_eq!(e("ROLLBACK WORK"), ends);
        assert_eq!(e("ROLLBACK TO SAVEPOINT s"), none);
        assert_eq!(e("rollback work to s"), none);
        assert_eq!(e("UPDATE t SET v = 1; COMMIT"), ends);
        assert_eq!(e("BEGIN"), commits);
        assert_eq!(e("START TRANSACTION READ ONLY"), commits);
        assert_eq!(e("ALTER TABLE t ADD c INT"), commits);
        assert_eq!(e("CREATE TABLE t2 SELECT 1"), commits);
        assert_eq!(e("INSERT INTO t VALUES (1); CREATE INDEX i ON t (v)"), commits);
        assert_eq!(e("LOCK TABLES t WRITE"), commits);
        assert_eq!(e("CREATE TEMPORARY TABLE tmp (a INT)"), none);
        assert_eq!(e("create or replace temporary table tmp (a INT)"), none);
        assert_eq!(e("DROP TEMPORARY TABLE IF EXISTS tmp"), none);
        assert_eq!(e("BEGIN NOT ATOMIC SELECT 1; END"), none);
        assert_eq!(
            e("SET autocommit = 1"),
            Effect {
                ends: false,
                commits_first: true,
            }
        );
        assert_eq!(e("SET time_zone = '+00:00'"), none);
        assert_eq!(e("SELECT 1"), none);
        assert_eq!(e("INSERT INTO t VALUES ('COMMIT')"), none);
        // A `;` inside a literal or comment ends no statement.
        assert_eq!(e("INSERT INTO t VALUES ('x; COMMIT')"), none);
        assert_eq!(e("UPDATE t SET v = 1 /* ; ROLLBACK */"), none);
        assert_eq!(e("SELECT `a;commit` FROM t"), none);
        assert_eq!(e("XA COMMIT 'x'"), none);
        assert_eq!(e(""), none);
    }

    #[test]
    fn transaction_time_left_counts_down_to_zero() {
        let began = Instant::now();
        let limit = Duration::from_secs(10);
        assert_eq!(left(began, limit, began), limit);
        assert_eq!(
            left(began, limit, began + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(
            left(began, limit, began + Duration::from_secs(11)),
            Duration::ZERO
        );
        // A `now` before `began` (a command that arrived while the clock
        // was read) leaves the whole limit.
        assert_eq!(left(began + Duration::from_secs(1), limit, began), limit);
    }

    #[test]
    fn transaction_time_errors_name_the_key() {
        let e = closing_err(false);
        assert!(String::from_utf8_lossy(&e.message)
            .ends_with("the transaction was rolled back and the connection closed"));
        assert!(String::from_utf8_lossy(&closing_err(true).message).contains("XA RECOVER"));
        assert_eq!((e.code, &e.sql_state), (4031, b"HY000"));
        assert!(String::from_utf8_lossy(&e.message).contains("client.max_transaction_time"));
        let e = stopped_err(Duration::from_millis(1500), false);
        assert_eq!((e.code, &e.sql_state), (1969, b"70100"));
        let message = String::from_utf8_lossy(&e.message);
        assert!(message.contains("1500 ms"), "{message}");
    }
}
