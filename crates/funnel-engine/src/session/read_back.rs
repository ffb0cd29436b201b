//! Reading back, on the connection a command ran on, what it left that
//! only the server knows: the values of a computed `SET`, the count for
//! `FOUND_ROWS()` after `SQL_CALC_FOUND_ROWS`, the first id an `INSERT ...
//! RETURNING` inserted. Recorded as the session's own, they let the
//! session give the connection up; where a read would not be faithful the
//! session is pinned instead.

use super::command::Forward;
use super::pinning::PinReason;
use super::Session;
use crate::pool::conn::{BackendConn, BackendError};

impl Session {
    /// Reads back what a command left that only the server knows (see
    /// [`Self::read_back_vars`], [`Self::read_back_found_rows`]). `Err`
    /// with the pin the state needed when the connection failed.
    pub(super) async fn read_back(
        &mut self,
        conn: &mut BackendConn,
        f: &Forward,
        warnings: u16,
    ) -> Result<(), (PinReason, BackendError)> {
        if let Some(names) = &f.read_back {
            Box::pin(self.read_back_vars(conn, names, warnings))
                .await
                .map_err(|e| (PinReason::SessionVariable, e))?;
        }
        if let Some(names) = &f.read_back_user_vars {
            Box::pin(self.read_back_user_vars(conn, names, warnings))
                .await
                .map_err(|e| (PinReason::UserVariable, e))?;
        }
        if f.reads_found_rows {
            Box::pin(self.read_back_found_rows(conn, warnings))
                .await
                .map_err(|e| (PinReason::PreviousStatementInfo, e))?;
        }
        if f.reads_row_count {
            // A SELECT of no table: the statement's warnings stay.
            match Box::pin(conn.query_rows("SELECT ROW_COUNT() LIMIT 1")).await {
                Ok((_, rows)) => {
                    if let Some(n) = rows
                        .first()
                        .and_then(|r| r.first()?.as_deref()?.parse::<i64>().ok())
                    {
                        self.last.row_count = n;
                    }
                    // The server's own is the read's now.
                    self.own_row_count_next = true;
                }
                Err(BackendError::Refused(_)) => self.own_row_count_next = true,
                Err(e) => return Err((PinReason::PreviousStatementInfo, e)),
            }
        }
        Ok(())
    }

    /// After `INSERT ... RETURNING` (text, execute or bulk), which answers
    /// with rows and so with no OK to carry an insert id: asks the server
    /// for the first id it inserted (`LAST_INSERT_ID()`) and records it as
    /// the client's. (Such a statement leaves `FOUND_ROWS()` as it was:
    /// `Forward::keeps_found_rows`.) The read is a `SELECT` of no table,
    /// which leaves the statement's warnings and `ROW_COUNT()` (-1) as
    /// they were. `Err` when the connection failed.
    pub(super) async fn read_back_returning(&mut self, conn: &mut BackendConn) -> Result<(), BackendError> {
        let id = match conn.query_rows("SELECT LAST_INSERT_ID() LIMIT 1").await {
            Ok((_, rows)) => rows
                .first()
                .and_then(|r| r.first()?.as_deref()?.parse::<u64>().ok()),
            Err(BackendError::Refused(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(id) = id {
            self.last.last_insert_id = id;
            // The connection holds the client's id now.
            self.insert_id_on_server = true;
        }
        Ok(())
    }

    /// After `SELECT SQL_CALC_FOUND_ROWS ...`: asks the server for the
    /// count and records it as the session's `FOUND_ROWS()`, so the session
    /// need not keep the connection for it. Pinned instead (the server
    /// answers `FOUND_ROWS()` from then on) where the read would not be
    /// faithful: warnings the client may still read, or a session already
    /// pinned (it may be answering previous-statement reads from the
    /// server). `Err` when the connection failed.
    pub(super) async fn read_back_found_rows(
        &mut self,
        conn: &mut BackendConn,
        warnings: u16,
    ) -> Result<(), BackendError> {
        let count = if warnings > 0 || self.sticky() {
            None
        } else {
            found_rows_of(conn).await?
        };
        self.record_found_rows(count);
        Ok(())
    }

    /// Records what FOUND_ROWS() answers, or pins the session to let the
    /// server answer when that is not known.
    pub(super) fn record_found_rows(&mut self, count: Option<u64>) {
        match count {
            Some(n) => self.last.found_rows = n,
            None => {
                // Pinned by stateless `CALL`s in a transaction, the session
                // still gives the connection back at its end: the read then
                // takes this count too (a `SELECT SQL_CALC_FOUND_ROWS` in a
                // `CALL`'s transaction pinned it for life).
                let stateless = self.stateless_pins;
                self.pin(PinReason::PreviousStatementInfo);
                self.stateless_pins = stateless;
                self.calc_found_rows = true;
            }
        }
    }

    /// After a `SET` of values only the server could compute (`SET sql_mode
    /// = REPLACE(@@sql_mode, ...)`): reads them back and records them as
    /// literals, so the session stays shareable. Where that would not be
    /// faithful, the session is pinned instead, as for any `SET` Funnel
    /// cannot replay: the `SET` left warnings the client may still read
    /// (the read would replace them), the session already keeps its
    /// connection (it may be answering `ROW_COUNT()` from the server), or
    /// a value has no sure literal form. `Err` when the connection failed.
    pub(super) async fn read_back_vars(
        &mut self,
        conn: &mut BackendConn,
        names: &[String],
        warnings: u16,
    ) -> Result<(), BackendError> {
        if warnings > 0 || self.sticky() {
            self.pin(PinReason::SessionVariable);
            return Ok(());
        }
        let select: Vec<String> = names.iter().map(|n| format!("@@session.{n}")).collect();
        let (columns, rows) = match conn
            .query_columns(&format!("SELECT {} LIMIT 1", select.join(", ")))
            .await
        {
            Ok(result) => result,
            Err(BackendError::Refused(_)) => {
                self.pin(PinReason::SessionVariable);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let assignments: Option<Vec<super::variables::Assignment>> = rows
            .first()
            .filter(|row| row.len() == names.len() && columns.len() == names.len())
            .and_then(|row| {
                names
                    .iter()
                    .zip(columns.iter().zip(row))
                    .map(|(name, ((_, ty), value))| {
                        Some(super::variables::Assignment {
                            name: name.clone(),
                            value: Some(super::variables::literal_from_server(value.as_deref()?, *ty)?),
                        })
                    })
                    .collect()
            });
        match assignments {
            Some(a) => {
                self.vars.apply(&a, self.shard.utf8_alias);
                conn.vars.apply(&a, self.shard.utf8_alias);
            }
            None => self.pin(PinReason::SessionVariable),
        }
        Ok(())
    }
}

/// What FOUND_ROWS() answers on `conn` (`None` when the server refuses to
/// say). `Err` when the connection failed.
pub(super) async fn found_rows_of(conn: &mut BackendConn) -> Result<Option<u64>, BackendError> {
    // Its own LIMIT: the session's `sql_select_limit` applies to it.
    match conn.query_rows("SELECT FOUND_ROWS() LIMIT 1").await {
        Ok((_, rows)) => Ok(rows
            .first()
            .and_then(|row| row.first()?.as_deref()?.parse::<u64>().ok())),
        Err(BackendError::Refused(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
