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

/// What the limit leaves a transaction opened at `began`, at `now`
/// (zero once it has passed).
pub(super) fn left(began: Instant, limit: Duration, now: Instant) -> Duration {
    limit.saturating_sub(now.saturating_duration_since(began))
}

/// The ERR a client gets when its transaction outlived the limit while it
/// was idle, or before its next command ran; the connection closes after
/// it. ER_CLIENT_INTERACTION_TIMEOUT, as for `client.idle_timeout`:
/// connectors take it for a closed connection.
pub(super) fn closing_err() -> ErrPacket {
    ErrPacket::new(
        4031,
        "HY000",
        "The client was disconnected by the server because its transaction was open longer \
         than client.max_transaction_time; the transaction was rolled back",
    )
}

/// The ERR of a statement stopped (`KILL QUERY`) because its transaction
/// outlived the limit; the connection closes after it. MariaDB's own for
/// `max_statement_time` (1969, 70100), as for a query rule's `timeout`.
pub(super) fn stopped_err(limit: Duration) -> ErrPacket {
    ErrPacket::new(
        1969,
        "70100",
        format!(
            "Query execution was interrupted (client.max_transaction_time of {} ms exceeded); \
             the transaction was rolled back and the connection closed",
            limit.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = closing_err();
        assert_eq!((e.code, &e.sql_state), (4031, b"HY000"));
        assert!(String::from_utf8_lossy(&e.message).contains("client.max_transaction_time"));
        let e = stopped_err(Duration::from_millis(1500));
        assert_eq!((e.code, &e.sql_state), (1969, b"70100"));
        let message = String::from_utf8_lossy(&e.message);
        assert!(message.contains("1500 ms"), "{message}");
    }
}
