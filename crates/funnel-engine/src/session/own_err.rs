//! The diagnostics of an ERR Funnel made itself. No server saw the failed
//! command (an unknown statement id, a command Funnel does not know, a
//! wait for a connection that timed out), yet a direct connection's next
//! `SHOW WARNINGS`, `@@warning_count`, `@@error_count` and `ROW_COUNT()`
//! report that error. The session keeps it, and gives it to the
//! connection that answers the client's next diagnostics read with a
//! `SIGNAL` of the same code, state and message.

use funnel_protocol::response::ErrPacket;

use super::{Session, CLEAR_DIAGNOSTICS};
use crate::pool::conn::BackendConn;

/// The statement that puts `err` into a connection's diagnostics area as
/// the server would have after failing the command itself: `SIGNAL`
/// replaces what the area held and leaves `@@warning_count` and
/// `@@error_count` at 1. The message goes as a hex literal, which no
/// `sql_mode` reads differently.
pub(super) fn signal_sql(err: &ErrPacket) -> Vec<u8> {
    // A SQLSTATE of class 00, 01 or 02 would signal success, a warning or
    // "no data", not an error; one the server would refuse is not sent.
    let state_ok = err
        .sql_state
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && !matches!(&err.sql_state[..2], b"00" | b"01" | b"02");
    let state = if state_ok { &err.sql_state } else { b"HY000" };
    // MYSQL_ERRNO takes 1 to 65534.
    let code = err.code.clamp(1, 65534);
    let mut sql = format!(
        "SIGNAL SQLSTATE '{}' SET MYSQL_ERRNO = {code}, MESSAGE_TEXT = _utf8mb4 X'",
        String::from_utf8_lossy(state)
    );
    for b in &err.message {
        sql.push_str(&format!("{b:02X}"));
    }
    sql.push('\'');
    sql.into_bytes()
}

impl Session {
    /// Records an ERR of Funnel's own as the client's last statement's
    /// outcome: `ROW_COUNT()` reads -1 after it, as after any failed
    /// command, and the diagnostics area is the error's.
    pub(super) fn note_own_err(&mut self, err: &ErrPacket) {
        self.own_err = Some(err.clone());
        self.last.row_count = -1;
        // A pinned session's server still has the statement's count
        // before: Funnel answers ROW_COUNT() itself next.
        self.own_row_count_next = self.sticky();
    }

    /// Before a diagnostics read on `conn`, whose area is not the
    /// client's: puts the client's own ERR there, if its last statement
    /// was one, else clears another client's stale warnings. Fails only
    /// when the connection broke.
    pub(super) async fn give_diagnostics(&mut self, conn: &mut BackendConn) -> Result<(), String> {
        // Only a statement that opens a table clears the area (`DO 0` does
        // not); a `SIGNAL` replaces it.
        let sql = match &self.own_err {
            Some(err) => signal_sql(err),
            None => CLEAR_DIAGNOSTICS.to_vec(),
        };
        // A `SIGNAL` is answered with the ERR it was asked for.
        conn.run_query(&sql).await.map_err(|e| e.to_string())?;
        // The client's error there is foreign to any other client.
        conn.stale_diagnostics = self.own_err.is_some();
        self.foreign_diagnostics = false;
        // Either is a statement to the server: its ROW_COUNT() is -1 now,
        // where a `GET DIAGNOSTICS` would have left the client's previous
        // count (soak seed 130415).
        self.own_row_count_next = self.sticky();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_err_signal_carries_code_state_and_message_as_hex() {
        let err = ErrPacket::new(1243, "HY000", "Unknown 'x' \\ é");
        let sql = String::from_utf8(signal_sql(&err)).unwrap();
        assert_eq!(
            sql,
            "SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1243, MESSAGE_TEXT = _utf8mb4 \
             X'556E6B6E6F776E20277827205C20C3A9'"
        );
    }

    #[test]
    fn own_err_signal_never_signals_success_or_a_warning() {
        for state in ["00000", "01000", "02000", "hy000"] {
            let mut err = ErrPacket::new(9001, "HY000", "m");
            err.sql_state.copy_from_slice(state.as_bytes());
            let sql = String::from_utf8(signal_sql(&err)).unwrap();
            assert!(sql.starts_with("SIGNAL SQLSTATE 'HY000'"), "{state}: {sql}");
        }
        let mut err = ErrPacket::new(0, "08S01", "m");
        assert!(String::from_utf8(signal_sql(&err))
            .unwrap()
            .contains("'08S01' SET MYSQL_ERRNO = 1,"));
        err.code = 65535;
        assert!(String::from_utf8(signal_sql(&err))
            .unwrap()
            .contains("MYSQL_ERRNO = 65534,"));
    }
}
