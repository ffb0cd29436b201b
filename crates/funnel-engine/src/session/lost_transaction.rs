//! A session whose transaction died with its backend connection.
//!
//! The failing statement got ERR 9007. Running the client's next statements
//! on a fresh connection would commit the second half of its transaction
//! one statement at a time, so until the client ends the transaction every
//! statement is refused with ERR 9008; ROLLBACK is answered with OK (the
//! server already rolled back). Closing the client instead would be as safe,
//! but clients would have to reconnect after every backend restart, and
//! sysbench 1.0.20 with libmariadb crashes when it does.

use funnel_protocol::response::OkPacket;

use super::{End, Session};
use crate::error::EngineError;

/// What a command gets while the session's transaction is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// `ROLLBACK`: OK, and the session goes on.
    RollbackOk,
    /// Refused with ERR 9008; `ends` says the command ended the transaction
    /// (`COMMIT`, `BEGIN`, `START TRANSACTION`, which implicitly commit),
    /// so the session goes on afterwards.
    Refuse {
        /// The session is out of the lost transaction afterwards.
        ends: bool,
    },
    /// Runs as usual; `ends` as above (`COM_RESET_CONNECTION`,
    /// `COM_CHANGE_USER`).
    Run {
        /// The session is out of the lost transaction afterwards.
        ends: bool,
    },
}

/// How to treat `payload` (one command, without its header) while the
/// transaction is lost.
pub(super) fn verdict(payload: &[u8]) -> Verdict {
    match payload.first() {
        Some(0x03) => statement_verdict(&payload[1..]),
        // COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE and COM_STMT_FETCH
        // touch data; COM_REFRESH is a `FLUSH` statement by flags, refused
        // as that is.
        Some(0x17) | Some(0xfa) | Some(0x1c) | Some(0x07) => Verdict::Refuse { ends: false },
        // COM_CHANGE_USER, COM_RESET_CONNECTION: a fresh session.
        Some(0x11) | Some(0x1f) => Verdict::Run { ends: true },
        // Ping, quit, prepare, close, schema, options...: no data touched.
        _ => Verdict::Run { ends: false },
    }
}

/// How to treat an execute of the prepared statement `sql` (`None`: an
/// unknown statement) while the transaction is lost: as the same text in a
/// query, except that `ROLLBACK AND CHAIN` is refused (and ends the lost
/// transaction) rather than run, and anything else touches data.
pub(super) fn execute_verdict(sql: Option<&[u8]>) -> Verdict {
    match sql.map(statement_verdict) {
        Some(Verdict::RollbackOk) => Verdict::RollbackOk,
        Some(Verdict::Refuse { ends }) => Verdict::Refuse { ends },
        Some(Verdict::Run { .. }) => Verdict::Refuse { ends: true },
        None => Verdict::Refuse { ends: false },
    }
}

fn statement_verdict(sql: &[u8]) -> Verdict {
    let sql = super::sql_lex::skip_leading_comments(sql);
    // A `;` inside a comment of the first statement splits it too early:
    // that only makes the query look like more statements (refused).
    let (first_statement, rest) = match sql.iter().position(|&c| c == b';') {
        Some(at) => (&sql[..at], &sql[at + 1..]),
        None => (sql, &[][..]),
    };
    let mut words = super::sql_lex::words(first_statement);
    let first = words.next().unwrap_or_default();
    let second = words.next().unwrap_or_default();
    let is = |w: &[u8], k: &str| w.eq_ignore_ascii_case(k.as_bytes());
    let ends = is(first, "ROLLBACK") && !is(second, "TO")
        || is(first, "COMMIT")
        || is(first, "BEGIN")
        || (is(first, "START") && is(second, "TRANSACTION"));
    if !ends {
        return Verdict::Refuse { ends: false };
    }
    if !super::sql_lex::only_separators(rest) {
        // `ROLLBACK; INSERT ...`: one OK would answer for both, and the
        // INSERT would not run. Refuse all of it; the transaction is over.
        return Verdict::Refuse { ends: true };
    }
    if !is(first, "ROLLBACK") {
        return Verdict::Refuse { ends: true };
    }
    // Read as the server does (`ROLLBACK AND CHAIN/**/`,
    // `ROLLBACK/* x */RELEASE`).
    let words: Vec<&[u8]> = super::sql_lex::words(first_statement).collect();
    if chains(&words) || releases(&words) {
        // `ROLLBACK AND CHAIN` opens the next transaction: run it, so the
        // session holds that transaction on a connection of its own.
        // `ROLLBACK RELEASE` ends the session after its OK: run, the
        // session closes with the connection it ran on.
        Verdict::Run { ends: true }
    } else {
        Verdict::RollbackOk
    }
}

/// True when a statement of `sql` (the first, or one after a `;`) may
/// commit the open transaction: a `COMMIT` (any form, `AND CHAIN`
/// included) or a statement the server runs after an implicit commit
/// (DDL, `BEGIN`, `LOCK TABLES`, account statements, table maintenance,
/// `SET autocommit`). A connection that fails while it runs may have
/// committed the transaction. Reading too much here (`CREATE TEMPORARY
/// TABLE`, which does not commit, or a `;` inside a string) only makes the
/// refusals say the outcome is unknown.
pub(super) fn commits(sql: &[u8]) -> bool {
    sql.split(|&c| c == b';').any(|statement| {
        let statement = super::sql_lex::skip_leading_comments(statement);
        let Some(first) = statement
            .split(|c| c.is_ascii_whitespace() || *c == b'(' || *c == b'/')
            .find(|w| !w.is_empty())
        else {
            return false;
        };
        let is = |k: &str| first.eq_ignore_ascii_case(k.as_bytes());
        IMPLICIT_COMMIT.iter().any(|k| is(k))
            || (is("SET") && memchr::memmem::find(&statement.to_ascii_lowercase(), b"autocommit").is_some())
    })
}

/// First words of statements that commit the open transaction, explicitly
/// or before they run (MariaDB's "statements that cause an implicit
/// commit").
const IMPLICIT_COMMIT: [&str; 17] = [
    "COMMIT", "BEGIN", "START", "CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "LOCK", "UNLOCK", "GRANT",
    "REVOKE", "ANALYZE", "OPTIMIZE", "REPAIR", "FLUSH", "RESET",
];

/// True when `words` (a `COMMIT` or `ROLLBACK`) say `AND CHAIN` (not `AND
/// NO CHAIN`).
fn chains(words: &[&[u8]]) -> bool {
    let is = |w: &[u8], k: &str| w.eq_ignore_ascii_case(k.as_bytes());
    words
        .iter()
        .position(|w| is(w, "CHAIN"))
        .is_some_and(|at| at == 0 || !is(words[at - 1], "NO"))
}

/// True when `words` (a `COMMIT` or `ROLLBACK`) say `RELEASE` (not `NO
/// RELEASE`).
fn releases(words: &[&[u8]]) -> bool {
    let is = |w: &[u8], k: &str| w.eq_ignore_ascii_case(k.as_bytes());
    words
        .iter()
        .position(|w| is(w, "RELEASE"))
        .is_some_and(|at| at == 0 || !is(words[at - 1], "NO"))
}

impl Session {
    /// Answers a command the lost transaction refuses (or a ROLLBACK).
    pub(super) async fn answer_lost_transaction(&mut self, v: Verdict) -> Result<(), End> {
        if v == Verdict::RollbackOk {
            self.tx_lost = false;
            let ok = OkPacket {
                status: self.client_status(),
                ..Default::default()
            };
            return self.write_ok(1, &ok).await;
        }
        let at_commit = self.tx_lost_at_commit;
        self.tx_lost = v != Verdict::Refuse { ends: true };
        self.tx_lost_at_commit &= self.tx_lost;
        self.reply_error(1, EngineError::TransactionLost { at_commit })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> Verdict {
        let mut p = vec![0x03];
        p.extend_from_slice(sql.as_bytes());
        verdict(&p)
    }

    #[test]
    fn lost_transaction_verdicts() {
        assert_eq!(q("rollback"), Verdict::RollbackOk);
        assert_eq!(q("  ROLLBACK WORK"), Verdict::RollbackOk);
        assert_eq!(q("/* app */ ROLLBACK"), Verdict::RollbackOk);
        assert_eq!(q("ROLLBACK TO SAVEPOINT s1"), Verdict::Refuse { ends: false });
        assert_eq!(q("COMMIT"), Verdict::Refuse { ends: true });
        assert_eq!(q("begin"), Verdict::Refuse { ends: true });
        assert_eq!(q("START TRANSACTION READ ONLY"), Verdict::Refuse { ends: true });
        assert_eq!(q("INSERT INTO t VALUES (1)"), Verdict::Refuse { ends: false });
        assert_eq!(q("SELECT 1"), Verdict::Refuse { ends: false });
        assert_eq!(verdict(&[0x17, 1, 0, 0, 0]), Verdict::Refuse { ends: false });
        assert_eq!(
            verdict(&[0xfa, 1, 0, 0, 0, 0, 0]),
            Verdict::Refuse { ends: false }
        );
        assert_eq!(verdict(&[0x07, 0x10]), q("FLUSH STATUS"));
        assert_eq!(verdict(&[0x1f]), Verdict::Run { ends: true });
        assert_eq!(verdict(&[0x0e]), Verdict::Run { ends: false });
        assert_eq!(q("ROLLBACK; "), Verdict::RollbackOk);
        assert_eq!(q("ROLLBACK;; -- done\n"), Verdict::RollbackOk);
        assert_eq!(
            q("ROLLBACK; INSERT INTO t VALUES (1)"),
            Verdict::Refuse { ends: true }
        );
        assert_eq!(q("COMMIT;SELECT 1"), Verdict::Refuse { ends: true });
        assert_eq!(q("ROLLBACK /* ; */"), Verdict::Refuse { ends: true });
        assert_eq!(q("ROLLBACK AND CHAIN"), Verdict::Run { ends: true });
        assert_eq!(q("rollback work and no chain"), Verdict::RollbackOk);
        assert_eq!(q("ROLLBACK RELEASE"), Verdict::Run { ends: true });
        // A comment parts words as a blank does.
        assert_eq!(q("ROLLBACK AND CHAIN/**/"), Verdict::Run { ends: true });
        assert_eq!(q("ROLLBACK RELEASE/* x */"), Verdict::Run { ends: true });
        assert_eq!(q("ROLLBACK/* x */AND CHAIN"), Verdict::Run { ends: true });
        assert_eq!(q("ROLLBACK /* AND CHAIN */"), Verdict::RollbackOk);
        assert_eq!(q("ROLLBACK /*!AND CHAIN*/"), Verdict::Run { ends: true });
        assert_eq!(q("ROLLBACK/**/TO s"), Verdict::Refuse { ends: false });
        assert_eq!(q("ROLLBACK RELEASE-- x"), Verdict::Run { ends: true });
        assert_eq!(q("ROLLBACK AND NO CHAIN/**/"), Verdict::RollbackOk);
        assert_eq!(q("ROLLBACK AND NO CHAIN NO RELEASE"), Verdict::RollbackOk);
    }

    #[test]
    fn lost_transaction_execute_verdicts() {
        let e = |s: &str| execute_verdict(Some(s.as_bytes()));
        assert_eq!(e("ROLLBACK"), Verdict::RollbackOk);
        assert_eq!(e("COMMIT"), Verdict::Refuse { ends: true });
        assert_eq!(e("ROLLBACK AND CHAIN"), Verdict::Refuse { ends: true });
        assert_eq!(e("INSERT INTO t VALUES (?)"), Verdict::Refuse { ends: false });
        assert_eq!(execute_verdict(None), Verdict::Refuse { ends: false });
    }

    #[test]
    fn lost_transaction_commits() {
        let c = |s: &str| commits(s.as_bytes());
        assert!(c("COMMIT"));
        assert!(c(" commit work;"));
        assert!(c("/* app */ COMMIT AND CHAIN"));
        assert!(c("commit;"));
        assert!(c("INSERT INTO t VALUES (1); COMMIT"));
        assert!(c("UPDATE t SET n = 1;\n  /* done */ commit work"));
        assert!(!c("ROLLBACK"));
        assert!(!c("COMMITTED"));
        assert!(!c("XA COMMIT 'x'"));
        assert!(!c("INSERT INTO t VALUES ('COMMIT')"));
        assert!(!c(""));
        // Implicit commits: the server commits before it runs them.
        assert!(c("ALTER TABLE t ADD COLUMN c INT"));
        assert!(c("create index i on t (v)"));
        assert!(c("BEGIN"));
        assert!(c("START TRANSACTION"));
        assert!(c("LOCK TABLES t WRITE"));
        assert!(c("TRUNCATE t"));
        assert!(c("SET autocommit = 1"));
        assert!(c("SET @@session.AUTOCOMMIT=ON"));
        assert!(c("INSERT INTO t VALUES (1); DROP TABLE u"));
        assert!(!c("SET time_zone = '+00:00'"));
        assert!(!c("UPDATE t SET v = 1"));
        assert!(!c("SELECT * FROM t FOR UPDATE"));
    }
}
