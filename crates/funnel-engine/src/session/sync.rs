//! Bringing a leased backend connection in line with the session before
//! its command runs: schema (`COM_INIT_DB`), the multi-statement option
//! (`COM_SET_OPTION`) and session variables (one `SET` of the
//! differences). Each connection remembers its own, so nothing is sent
//! when they already match.

use bytes::BytesMut;
use funnel_protocol::charset;
use funnel_protocol::command::write_init_db;
use funnel_protocol::response::ErrPacket;
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;

use super::variables::{self, SessionVars};
use super::{backend_lost, End, Session};
use crate::error::EngineError;
use std::rc::Rc;

use crate::pool::conn::BackendConn;
use crate::router::Access;
use crate::stats::Stats;

impl Session {
    /// Brings the connection's schema and session variables in line with
    /// the session's. `None` when the client was told of a failure.
    /// `sets_schema`: the command selects a schema itself (`USE`,
    /// `COM_INIT_DB`), so the session's current one is not selected first;
    /// it may be gone, dropped by another client, and the command is how
    /// the client leaves it.
    pub(super) async fn sync_session(
        &mut self,
        conn: BackendConn,
        total: usize,
        sets_schema: bool,
    ) -> Result<Option<BackendConn>, End> {
        if self.in_sync(&conn) {
            // The common case, checked by reference: no clones, no awaits.
            return Ok(Some(conn));
        }
        // Boxed: the work below (a `SET` of every difference, a checkout
        // when the charset cannot be restored) is a large future, and
        // inline it would make every command's future that large, a cost
        // (its copy into the box `dispatch` makes) paid by commands that
        // need no sync at all.
        Box::pin(self.sync_session_slow(conn, total, sets_schema)).await
    }

    /// [`Self::sync_session`] once the connection is known to differ.
    async fn sync_session_slow(
        &mut self,
        conn: BackendConn,
        total: usize,
        sets_schema: bool,
    ) -> Result<Option<BackendConn>, End> {
        // A pinned connection answers the client's `ROW_COUNT()` itself,
        // but a `COM_INIT_DB` or `SET` of Funnel's here sets it to 0 (a
        // failed `USE` kept a refused prepare's schema there, then `SELECT
        // ROW_COUNT()` or a procedure that reads it: soak seed 502105): it
        // is given back after them. Not before a command that selects a
        // schema itself, which sets the count anyway.
        let gives_back_row_count = self.sticky() && !sets_schema;
        let schema = self.schema.clone();
        let conn = if !sets_schema {
            let Some(conn) = self.sync_schema(conn, schema.as_deref(), total).await? else {
                return Ok(None);
            };
            conn
        } else {
            // A command that selects a schema itself leaves the
            // connection's as it is, unless the replay's `SET CHARACTER
            // SET` takes the connection's collation from the schema: the
            // session's first, where it still exists (the command is not
            // refused for a schema it leaves).
            let mut conn = conn;
            match schema.filter(|s| {
                conn.schema.as_deref() != Some(&s[..]) && self.vars.replays_character_set(&conn.vars)
            }) {
                Some(s) => match select_schema(&mut conn, &s).await {
                    Ok(_) => conn,
                    Err(e) => {
                        self.buf.consume(total);
                        self.discard_backend(conn);
                        return self.reply_error(1, e).await.map(|_| None);
                    }
                },
                None => conn,
            }
        };
        let Some(conn) = self.sync_multi_statements(conn, total).await? else {
            return Ok(None);
        };
        let Some(conn) = self.sync_vars(conn, total).await? else {
            return Ok(None);
        };
        if !gives_back_row_count {
            return Ok(Some(conn));
        }
        self.give_back_row_count(conn, total).await
    }

    /// Sets the server's `ROW_COUNT()` on `conn` back to the client's after
    /// statements of Funnel's there, with a statement that leaves the
    /// diagnostics area, `FOUND_ROWS()` and the last insert id as they
    /// are: `SHOW WARNINGS LIMIT 0` for -1 (it returns rows, none here),
    /// `DO 0` for 0. No statement gives a connection a positive count:
    /// Funnel then answers the client's text reads of it from its own
    /// record (`own_row_count_next`), and a procedure reads 0. `None` when
    /// the connection failed and the client was told (the command's
    /// `total` bytes are then consumed).
    pub(super) async fn give_back_row_count(
        &mut self,
        mut conn: BackendConn,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let sql: &[u8] = match self.last.row_count {
            -1 => b"SHOW WARNINGS LIMIT 0",
            0 => b"DO 0",
            _ => {
                self.own_row_count_next = true;
                return Ok(Some(conn));
            }
        };
        Stats::bump(&self.shard.stats.state_syncs);
        match conn.run_query(sql).await {
            Ok(summary) => {
                // Refused (it should not be): the count is Funnel's to say.
                self.own_row_count_next |= summary.error.is_some();
                Ok(Some(conn))
            }
            Err(e) => self.lost_before_command(conn, total, e).await,
        }
    }

    /// True when the connection already has the session's schema,
    /// multi-statement option and variables.
    fn in_sync(&self, conn: &BackendConn) -> bool {
        self.schema
            .as_deref()
            .is_none_or(|s| conn.schema.as_deref() == Some(s))
            && conn.multi_statements == self.multi_statements
            && conn.vars == self.vars
            && conn.user_vars == self.user_vars
    }

    /// Applies the session's multi-statement option with `COM_SET_OPTION`
    /// when the connection's differs.
    async fn sync_multi_statements(
        &mut self,
        conn: BackendConn,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        self.sync_multi_statements_to(conn, self.multi_statements, total)
            .await
    }

    /// [`Self::sync_multi_statements`] to `on`.
    async fn sync_multi_statements_to(
        &mut self,
        mut conn: BackendConn,
        on: bool,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        if conn.multi_statements == on {
            return Ok(Some(conn));
        }
        let option = if on {
            funnel_protocol::command::MYSQL_OPTION_MULTI_STATEMENTS_ON
        } else {
            funnel_protocol::command::MYSQL_OPTION_MULTI_STATEMENTS_OFF
        };
        let mut p = BytesMut::with_capacity(3);
        p.extend_from_slice(&[0x1b]);
        p.extend_from_slice(&option.to_le_bytes());
        match conn.run(&p, Expect::Status).await {
            Ok(s) if s.error.is_none() => {
                conn.multi_statements = on;
                Ok(Some(conn))
            }
            Ok(_) | Err(_) => {
                self.buf.consume(total);
                self.discard_backend(conn);
                let e = backend_lost(&self.last_backend, "COM_SET_OPTION failed".into());
                self.reply_error(1, e).await.map(|_| None)
            }
        }
    }

    /// Applies the difference between the session's variables and the
    /// connection's in one `SET` (nothing when they match).
    pub(super) async fn sync_vars(
        &mut self,
        conn: BackendConn,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let target = self.vars.clone();
        self.sync_vars_to(conn, &target, total).await
    }

    /// Brings the connection's variables to `target` in one `SET` (the
    /// session's own, or those a statement was prepared under), and its
    /// user variables to the session's (the same `SET`).
    pub(super) async fn sync_vars_to(
        &mut self,
        conn: BackendConn,
        target: &SessionVars,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let reset = target.vars_to_reset_first(&conn.vars);
        let conn = if reset.is_empty() {
            conn
        } else {
            // Another client's flags or `old_mode` first go back to the
            // global value (see `vars_to_reset_first`): a round trip only
            // when two clients' flag lists, or a `utf8` alias and another
            // client's `old_mode`, meet on one connection.
            let parts: Vec<String> = reset.iter().map(|v| format!("SESSION {v} = DEFAULT")).collect();
            let sql = format!("SET {}", parts.join(", "));
            let Some(mut conn) = self.run_sync(conn, sql.as_bytes(), total).await? else {
                return Ok(None);
            };
            conn.vars.forget(&reset);
            conn
        };
        let handshake = handshake_names(&conn);
        let user = self.user_vars.diff(&conn.user_vars);
        let ignore_space = conn.key.caps.contains(Capabilities::CLIENT_IGNORE_SPACE);
        let sql = match (target.diff_sql_on(&conn.vars, handshake, ignore_space), user) {
            (Ok(None), None) => return Ok(Some(conn)),
            (Ok(None), Some(user)) => format!("SET {user}"),
            (Ok(Some(sql)), None) => sql,
            (Ok(Some(sql)), Some(user)) => format!("{sql}, {user}"),
            (Err(variables::CannotRestoreCharset), _) if self.holds_session_state(&conn) => {
                // The connection holds the session's transaction or state:
                // taking another would run the command outside them.
                // (`Self::parse_target` keeps prepares from landing here.)
                self.buf.consume(total);
                self.give_back(conn);
                let e = EngineError::Unsupported(
                    "restoring a handshake character set it cannot name on a held connection",
                );
                return self.reply_error(1, e).await.map(|_| None);
            }
            (Err(variables::CannotRestoreCharset), _) => {
                // The connection's charset cannot be restored by name: use a
                // fresh connection instead, which needs no reset. It gets the
                // schema and multi-statement option this one was given.
                let schema = conn.schema.clone();
                let multi_statements = conn.multi_statements;
                let hostgroup = self
                    .shard
                    .backends
                    .by_id(conn.pool_id)
                    .map(|p| Rc::<str>::from(p.placement().hostgroup.as_str()))
                    .unwrap_or_else(|| self.user.default_hostgroup.clone());
                self.discard_backend(conn);
                match self
                    .shard
                    .backends
                    .checkout(&hostgroup, self.key, Access::PreferWrite, false, &[])
                    .await
                {
                    Ok((c, _)) => {
                        let Some(c) = self.sync_schema(c, schema.as_deref(), total).await? else {
                            return Ok(None);
                        };
                        let Some(c) = self.sync_multi_statements_to(c, multi_statements, total).await? else {
                            return Ok(None);
                        };
                        return Box::pin(self.sync_vars_to(c, target, total)).await;
                    }
                    Err(e) => {
                        self.buf.consume(total);
                        return self.reply_error(1, e).await.map(|_| None);
                    }
                }
            }
        };
        // A refusal (e.g. a replication variable inside a transaction)
        // changed nothing on the connection, which keeps whatever the
        // session holds there (a transaction, pinned state).
        let Some(mut conn) = self.run_sync(conn, sql.as_bytes(), total).await? else {
            return Ok(None);
        };
        conn.vars = target.clone();
        conn.user_vars = self.user_vars.clone();
        Ok(Some(conn))
    }

    /// True when `conn` holds something of the session's that another
    /// connection would not have: pinned state, long data, or (the
    /// connection says) a transaction or autocommit off untracked. Not
    /// `pin_reason`, which a failure before a command's reply leaves as it
    /// was until the next command settles.
    pub(super) fn holds_session_state(&self, conn: &BackendConn) -> bool {
        self.sticky() || !self.long_data.is_empty() || !conn.is_reusable()
    }

    /// The variables to prepare `prepared`'s statement under on `conn`: its
    /// parse variables (`sql_mode`, charsets) over the session's. On a
    /// connection that holds the session's state whose charsets could not
    /// be put back to those (a handshake charset Funnel cannot name), the
    /// session's own, as for variables Funnel does not track: a fresh
    /// connection would be outside the session's transaction.
    pub(super) fn parse_target(&self, conn: &BackendConn, prepared: &SessionVars) -> SessionVars {
        let target = self.vars.with_parse_vars_of(prepared);
        if self.holds_session_state(conn) && target.diff_sql(&conn.vars, handshake_names(conn)).is_err() {
            return self.vars.clone();
        }
        target
    }

    /// Gives the connection the session's own last insert id, so that a
    /// prepared statement reading `LAST_INSERT_ID()` or `@@identity` there
    /// answers for this client: an execute cannot be rewritten per call,
    /// but `LAST_INSERT_ID(n)` sets what the next reads return. `None` when
    /// the client was told of a failure (the command's `total` bytes are
    /// then consumed).
    pub(super) async fn sync_last_insert_id(
        &mut self,
        conn: BackendConn,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let sql = format!("DO LAST_INSERT_ID({})", self.last.last_insert_id);
        self.run_sync(conn, sql.as_bytes(), total).await
    }

    /// Runs one statement of Funnel's own on the connection before the
    /// client's command. `None` when the client was told of a failure (the
    /// command's `total` bytes are then consumed): a refused statement
    /// leaves the connection with the session, a lost one is discarded.
    pub(super) async fn run_sync(
        &mut self,
        mut conn: BackendConn,
        sql: &[u8],
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        Stats::bump(&self.shard.stats.state_syncs);
        match conn.run_query(sql).await {
            Ok(summary) => match summary.error {
                None => Ok(Some(conn)),
                Some(err) => {
                    self.buf.consume(total);
                    self.give_back(conn);
                    self.send_backend_err(1, &err).await.map(|_| None)
                }
            },
            Err(e) => self.lost_before_command(conn, total, e).await,
        }
    }

    /// Brings the connection's schema in line with `schema`. `None` when
    /// the client was told of a failure (the command's `total` bytes are
    /// then consumed and the connection dealt with).
    pub(super) async fn sync_schema(
        &mut self,
        mut conn: BackendConn,
        schema: Option<&[u8]>,
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let Some(schema) = schema.filter(|s| conn.schema.as_deref() != Some(*s)) else {
            return Ok(Some(conn));
        };
        match select_schema(&mut conn, schema).await {
            Ok(None) => Ok(Some(conn)),
            Ok(Some(err)) => {
                // The schema is gone (dropped meanwhile): tell the client.
                self.buf.consume(total);
                self.give_back(conn);
                self.send_backend_err(1, &err).await.map(|_| None)
            }
            Err(e) => {
                self.buf.consume(total);
                self.discard_backend(conn);
                self.reply_error(1, e).await.map(|_| None)
            }
        }
    }
}

/// Runs `COM_INIT_DB` on a backend connection: `Ok(None)` on success,
/// `Ok(Some(err))` when the server refused (for the client to see).
pub(super) async fn select_schema(
    conn: &mut BackendConn,
    schema: &[u8],
) -> Result<Option<ErrPacket>, EngineError> {
    let mut p = BytesMut::with_capacity(schema.len() + 1);
    write_init_db(&mut p, schema);
    match conn.run(&p, Expect::Status).await {
        Ok(summary) => match summary.error {
            None => {
                conn.schema = Some(schema.to_vec());
                // The server gave the connection the schema's charsets.
                conn.vars.forget(&variables::SCHEMA_CHARSET_VARS);
                Ok(None)
            }
            Some(err) => Ok(Some(err)),
        },
        Err(e) => Err(EngineError::BackendLost {
            backend: conn.backend.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The name and collation of `conn`'s handshake charset, when Funnel knows
/// them (`SET NAMES` can then put its charset variables back).
pub(super) fn handshake_names(conn: &BackendConn) -> Option<(&'static str, &'static str)> {
    charset::names(u16::from(conn.key.charset))
}
