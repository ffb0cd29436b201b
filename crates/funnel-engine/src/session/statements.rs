//! Binary-protocol prepared statements for one session: Funnel answers
//! repeated prepares from the shard's registry, prepares a statement on a
//! backend connection lazily at its first execute there, and rewrites
//! statement ids (and, when needed, parameter types) on the way through.

use bytes::{Bytes, BytesMut};
use funnel_protocol::framing::{write_packet, PacketHeader, HEADER_LEN, MAX_CHUNK};
use funnel_protocol::response::{ErrPacket, OkPacket};
use funnel_protocol::tracker::{Expect, ResponseSummary};
use funnel_protocol::{Capabilities, StatusFlags};

use super::command::{Forward, StatementCommand};
use super::{backend_lost, End, Session};
use crate::pool::conn::{BackendConn, BackendError};
use crate::prepared::conn_cache::StmtKey;
use crate::prepared::execute::{
    bound_flag_missing, parse_bulk, parse_execute, rewrite_id, statement_id, ExecuteCommand,
};
use crate::prepared::registry::{Known, ResponseShape, StatementMeta, RESPONSE_STMT_ID_AT};
use crate::rules::Action;
use crate::stats::Stats;
use std::rc::Rc;

/// `ER_MAX_PREPARED_STMT_COUNT_REACHED`.
const MAX_PREPARED_STMT_COUNT_REACHED: u16 = 1461;

/// Saves the connection's parse modes on the server, before a prepare
/// under a statement's own (see `prepared_on`).
const SAVE_PARSE_MODES: &str = "@funnel_sql_mode = @@sql_mode, @funnel_old_mode = @@old_mode";

/// Puts the saved parse modes back and forgets them: a `NULL` user
/// variable reads as one never set.
const RESTORE_PARSE_MODES: &str = "SET sql_mode = @funnel_sql_mode, old_mode = @funnel_old_mode, \
     @funnel_sql_mode = NULL, @funnel_old_mode = NULL";

/// Saves the connection's client and connection charsets beside
/// [`SAVE_PARSE_MODES`]: they parse a statement's text and type its
/// literals. (`@@collation_connection` reads back exactly; the client
/// charset's collation plays no part.)
const SAVE_PARSE_CHARSETS: &str =
    "@funnel_cs_client = @@character_set_client, @funnel_collation_connection = @@collation_connection";

/// Puts them back and forgets them: assignments to append to
/// [`RESTORE_PARSE_MODES`], one statement.
const RESTORE_PARSE_CHARSETS: &str = "character_set_client = @funnel_cs_client, \
     collation_connection = @funnel_collation_connection, @funnel_cs_client = NULL, \
     @funnel_collation_connection = NULL";

impl Session {
    /// How many statements `conn` may keep prepared (its pool's share of
    /// the server's limit).
    fn statement_cap(&self, conn: &BackendConn) -> usize {
        self.shard
            .backends
            .by_id(conn.pool_id)
            .map_or(crate::prepared::conn_cache::PER_CONNECTION, |p| p.statement_cap())
    }

    /// Handles one statement command whose `total` bytes are buffered.
    pub(super) async fn statement(&mut self, cmd: StatementCommand, total: usize) -> Result<(), End> {
        // The payload leaves the read buffer (into a reused scratch vector)
        // so the buffer is free for the response's LOCAL INFILE and the next command.
        let mut payload = std::mem::take(&mut self.scratch);
        copy_logical_payload(&self.buf.bytes()[..total], &mut payload);
        self.buf.consume(total);
        // Each command's future is boxed on its own (see `dispatch`): boxed
        // as one, every execute would copy the largest of them (a prepare's)
        // into its box.
        let result = match cmd {
            StatementCommand::Prepare => {
                Box::pin(self.stmt_prepare(Bytes::copy_from_slice(&payload[1..]))).await
            }
            StatementCommand::Execute => Box::pin(self.stmt_execute(&payload, false)).await,
            StatementCommand::BulkExecute => Box::pin(self.stmt_execute(&payload, true)).await,
            StatementCommand::LongData => Box::pin(self.stmt_long_data(&payload)).await,
            StatementCommand::Close => {
                if let Some(id) = self.named_statement(&payload) {
                    if self.long_data.contains(&id) {
                        Box::pin(self.drop_long_data(id)).await;
                    }
                    let private = self.stmts.get(id).filter(|s| s.meta.private).map(|s| s.key);
                    self.stmts.remove(id);
                    self.cursor_closed(id);
                    if let Some(key) = private {
                        Box::pin(self.close_private(key)).await;
                    }
                }
                Ok(())
            }
            StatementCommand::Reset => Box::pin(self.stmt_reset(&payload)).await,
            StatementCommand::Fetch => Box::pin(self.stmt_fetch(&payload)).await,
        };
        payload.clear();
        self.scratch = payload;
        result
    }

    async fn stmt_prepare(&mut self, mut sql: Bytes) -> Result<(), End> {
        use super::pinning::PinReason::{PreviousStatementInfo, UserVariable};
        // Only a prepare that succeeds names the next "last prepared" one.
        self.stmts.forget_last();
        let rules = self.shard.rules();
        let applied = (!rules.is_empty())
            .then(|| rules.apply(&sql, &self.user.name, self.schema.as_deref(), &self.peer))
            .flatten();
        let (rule, text) = match applied {
            Some(a) => (Some(a.action), a.text),
            None => (None, None),
        };
        // Kept with the client's statement, once it has one.
        self.prepared_rule = crate::prepared::client::PreparedRule {
            rules: rules.id(),
            action: rule.clone(),
            client_text: text.is_some().then(|| sql.clone()),
        };
        if let Some(rule) = &rule {
            // A rule's refusal; or its `ok`, which has no statement id to
            // give: what the server answers a statement it cannot prepare,
            // on which connectors fall back to text queries.
            let refusal = rule.refusal.clone().or_else(|| {
                rule.ok
                    .is_some()
                    .then(|| super::rule_actions::not_preparable(rule))
            });
            if let Some(err) = refusal {
                // As a text query the rule refuses: `log: true` takes it too.
                self.log.begin(
                    &self.shard.query_log,
                    Some(&**rule),
                    "prepare",
                    &sql,
                    self.schema.as_deref(),
                );
                return self.refuse_by_rule(&err).await;
            }
        }
        // Everything after reads the text the server will prepare.
        if let Some(text) = text {
            sql = Bytes::from(text);
        }
        // Also a prepare Funnel answers itself (from the registry, or
        // refused): a log of what clients ran shows it as any statement.
        self.log.begin(
            &self.shard.query_log,
            rule.as_deref(),
            "prepare",
            &sql,
            self.schema.as_deref(),
        );
        if let Some(what) = super::pinning::refusal(&sql) {
            // Executed, it would act on the backend account every client
            // shares, as the same text in a query would.
            return self
                .reply_error(1, crate::error::EngineError::Unsupported(what))
                .await;
        }
        if let Err(full) = self.stmts.room(self.max_prepared()) {
            // Refused before any backend work: a client that leaks
            // statements costs the server nothing more.
            return self.send_own_err(1, &full.err_packet()).await;
        }
        let pins = super::rewrite::mentions_previous_statement(&sql)
            && !super::rewrite::reads_only_last_insert_id(&sql);
        let newly_pinned = pins && !self.pins.contains(PreviousStatementInfo);
        let makes_vars = super::user_vars::made_by_prepare(&sql)
            .is_none_or(|names| names.iter().any(|n| self.user_vars.get(n).is_none()));
        if pins || makes_vars {
            self.let_go_of_a_lingering_reader();
        }
        if pins {
            // Executes can't be rewritten per call: keep one connection, so
            // the server's own answer is this client's. (The last insert id
            // alone is given to the connection before each execute instead.)
            self.pin(PreviousStatementInfo);
        }
        // The prepare makes the variables its statement assigns in the
        // client's own session too, NULL with the type of their value,
        // which Funnel cannot know: a client that did not set one already
        // is pinned (as for a SET it could not replay), and its statement
        // is prepared on its connection even when the registry has it, so
        // the server makes them there as on a connection of its own.
        if makes_vars {
            self.pin(UserVariable);
        }
        let result = self.prepare_new(sql, makes_vars, rule).await;
        let failed = self
            .stmts
            .resolve(crate::prepared::client::LAST_PREPARED)
            .is_none();
        if result.is_ok() && newly_pinned && failed {
            // No statement came of it to read the connection's values.
            self.unpin(PreviousStatementInfo);
        }
        result
    }

    /// Prepares `sql` for the client, from the registry or on a backend
    /// (always, when `on_backend`; for a text that mentions a user
    /// variable: the server describes its columns by the variables' types,
    /// which the registry's key does not hold, and the client's connection
    /// has the client's own; and for a session with state of its own).
    async fn prepare_new(
        &mut self,
        sql: Bytes,
        on_backend: bool,
        rule: Option<Rc<Action>>,
    ) -> Result<(), End> {
        let shape = ResponseShape {
            deprecate_eof: self.caps.contains(Capabilities::CLIENT_DEPRECATE_EOF),
            extended_metadata: self.caps.contains(Capabilities::MARIADB_CLIENT_EXTENDED_METADATA),
            charset: self.key.charset,
        };
        // A session with state of its own (temporary tables, LOCK TABLES,
        // a READ ONLY or an XA transaction, variables Funnel could not
        // read) may be answered otherwise by the server: refused, or other
        // columns. Other pins (a user variable, a named lock) cost no
        // round trip here.
        let own_tx = self.pinned.as_ref().is_some_and(|c| {
            c.status
                .contains(funnel_protocol::StatusFlags::SERVER_STATUS_IN_TRANS_READONLY)
                || (self.xa && c.may_be_in_transaction())
        });
        let own_state = self.pins.shape_prepares() || own_tx;
        // The server's prepare clears the diagnostics area when the text
        // opens a table (`SELECT NEXTVAL(sq)`, a function's body: Funnel
        // cannot always tell): where the client's own warnings are on the
        // connection it holds, the server decides (soak seed 120618).
        let own_warnings = self.linger && self.pinned.is_some();
        let on_backend = on_backend || own_state || own_warnings || super::user_vars::mentions_any(&sql);
        let mut f = Forward::new("COM_STMT_PREPARE", Some(Expect::Prepare));
        f.changes_no_data = true;
        f.rule_hostgroup = rule.and_then(|r| r.hostgroup.clone());
        // After a read on a replica that warned, that replica may describe
        // a read that opens no table (its tables' state cannot shape the
        // description; its executes go to replicas too): such a prepare
        // leaves those warnings for the client, as directly. One that
        // opens a table clears them anyway, and a writer describes it.
        f.prepares_read = own_warnings && {
            let effect = super::pinning::ExecuteEffect::of(&sql);
            effect.read_only && effect.opens_no_table
        };
        let known = (!on_backend)
            .then(|| {
                self.shard.statements.lookup(
                    &self.prepare_hostgroup(&f),
                    shape,
                    &self.schema,
                    &self.vars,
                    &sql,
                )
            })
            .flatten();
        // A description to have from the server again: kept when it says the same.
        let recheck = match known {
            Some(Known::Fresh(meta)) => {
                Stats::bump(&self.shard.stats.prepares_from_registry);
                return self.reply_prepared(meta).await;
            }
            Some(Known::Check(meta)) => {
                Stats::bump(&self.shard.stats.prepares_rechecked);
                Some(meta)
            }
            None => None,
        };
        // Before the server describes it: a table change after this may
        // not be in what it says.
        let asked = self.shard.statements.asking();
        let Some(conn) = self.lease(0, &f).await? else {
            return Ok(());
        };
        let Some(conn) = self.sync_session(conn, 0, false).await? else {
            return Ok(());
        };
        if self.log.taken() {
            // Its line names the server that described it.
            self.log.sent();
        }
        let mut raw = Vec::new();
        let mut payload = BytesMut::with_capacity(sql.len() + 1);
        payload.extend_from_slice(&[0x16]);
        payload.extend_from_slice(&sql);
        let (mut conn, result) = self.run_prepare(conn, &payload, &mut raw).await;
        match result {
            Ok(summary) => match (summary.error, summary.prepared) {
                (None, Some(p)) => {
                    raw[RESPONSE_STMT_ID_AT..RESPONSE_STMT_ID_AT + 4].copy_from_slice(&[0; 4]);
                    let (schema, vars) = (self.schema.clone(), self.vars.clone());
                    let statements = &self.shard.statements;
                    let same = recheck.filter(|m| m.described_as(&raw));
                    let meta = if let Some(meta) = same {
                        // Connections that prepared it keep serving it.
                        meta.confirmed(asked);
                        meta
                    } else if own_state {
                        // Described under that state: never handed to others.
                        statements.private(schema, vars, sql, p.params, p.columns, raw)
                    } else {
                        let hostgroup = self.hostgroup_of(&conn);
                        statements.insert(
                            hostgroup, shape, schema, vars, sql, p.params, p.columns, raw, asked,
                        )
                    };
                    let key = StmtKey {
                        meta: meta.id,
                        copy: self.stmts.next_copy(meta.id),
                    };
                    let keep = self.keys_in_use();
                    let evicted = conn
                        .stmts
                        .insert(key, p.stmt_id, self.statement_cap(&conn), &keep);
                    let conn = match close_evicted(conn, evicted).await {
                        Ok(c) => c,
                        Err(conn) => {
                            self.discard_backend(conn);
                            return self.reply_prepared(meta).await;
                        }
                    };
                    // A prepare leaves the warnings of the client's last
                    // statement for it to read; where the connection stays
                    // for them, the server answers for itself.
                    self.keep_lingering(conn);
                    self.reply_prepared(meta).await
                }
                (Some(err), _) => {
                    if let Some(meta) = recheck.filter(|_| !says_nothing_of_the_text(err.code)) {
                        // The text no longer prepares (a column dropped):
                        // the next client's prepare is the server's to
                        // answer too.
                        meta.stale.set(true);
                    }
                    self.refused_prepare(&mut conn);
                    self.keep_lingering(conn);
                    self.send_backend_err(1, &err).await
                }
                (None, None) => {
                    self.discard_backend(conn);
                    self.reply_error(
                        1,
                        backend_lost(&self.last_backend, "prepare without a result".into()),
                    )
                    .await
                }
            },
            Err(e) => {
                self.discard_backend(conn);
                let err = self.backend_failure(e);
                self.reply_error(1, err).await
            }
        }
    }

    /// The hostgroup prepare `f` would run in now: the held connection's,
    /// else where it routes (a query rule's, else the default one).
    fn prepare_hostgroup(&self, f: &Forward) -> Rc<str> {
        match &self.pinned {
            Some(conn) => self.hostgroup_of(conn),
            None => self.route(0, f).hostgroup,
        }
    }

    /// Takes the execute (a bulk too) at the front of the buffer for the
    /// query log, when Funnel answers it without running it (a lost
    /// transaction's refusal): its statement's text and schema, as when
    /// it runs. A text query is taken as always.
    pub(super) fn log_unrun_command(&mut self, total: usize) {
        let payload = &self.buf.bytes()[HEADER_LEN..total];
        let command = match payload.first() {
            Some(0x17) => "execute",
            Some(0xfa) => "bulk_execute",
            _ => return self.log_query_text(total),
        };
        if !self.shard.query_log.is_on() {
            // Spares the rule's match.
            return;
        }
        let Some(id) = self.named_statement(payload) else {
            return;
        };
        let Some(meta) = self.stmts.get(id).map(|s| s.meta.clone()) else {
            return;
        };
        let rule = self.statement_rule_of(id, &meta, false);
        self.log_statement(rule.as_deref(), command, &meta);
    }

    /// An execute whose rule answers it with an OK or holds it back
    /// (`ok`, `delay`): `true` when the client has its answer (the OK, or
    /// the ERR of a `KILL` during the delay), `false` when it is to run.
    async fn execute_by_rule(
        &mut self,
        rule: &Rc<Action>,
        command: &'static str,
        id: u32,
        meta: &StatementMeta,
    ) -> Result<bool, End> {
        let stopped = match (&rule.ok, rule.delay) {
            (Some(_), _)
                if self.pinned.as_ref().is_some_and(|c| c.may_be_in_transaction())
                    && super::rule_actions::ends_transaction(&meta.sql) =>
            {
                // As for the text (see `run_by_rule`).
                Some(super::rule_actions::ok_ending_no_transaction(rule))
            }
            (Some(_), _) => None,
            (None, None) => return Ok(false),
            (None, Some(delay)) => match self.hold_back(delay).await? {
                Ok(()) => return Ok(false),
                Err(e) => Some(e.to_err_packet()),
            },
        };
        self.log_statement(Some(rule), command, meta);
        // The server drops a statement's long data at its execute,
        // whatever the outcome.
        if self.long_data.contains(&id) {
            self.drop_long_data(id).await;
        }
        match stopped {
            Some(err) => self.refuse_by_rule(&err).await?,
            None => {
                self.answer_ok_by_rule(rule.ok.as_deref().unwrap_or_default())
                    .await?
            }
        }
        Ok(true)
    }

    /// Takes an execute of the statement `meta` (`command`: `execute` or
    /// `bulk_execute`) for the query log, in its statement's schema, where
    /// the server runs it whatever the client selected since.
    fn log_statement(&mut self, rule: Option<&Action>, command: &'static str, meta: &StatementMeta) {
        self.log.begin(
            &self.shard.query_log,
            rule,
            command,
            &meta.sql,
            meta.schema.as_deref(),
        );
    }

    /// What the query rules do to an execute of the client's statement
    /// `id`, counted as a hit of each rule: what its prepare matched (a
    /// rewrite rule's, though the new text may not match it), while the
    /// shard's rules are the ones it was matched against; after a reload,
    /// what the rules now make of the text the client prepared (before
    /// any rewrite: the rules of a chain before a rewrite never saw the
    /// new text), for the session's user and the
    /// statement's schema (the one it was prepared in, where its executes
    /// run, whatever the client selected since).
    fn statement_rule(&self, id: u32, meta: &StatementMeta) -> Option<Rc<Action>> {
        self.statement_rule_of(id, meta, true)
    }

    /// [`Self::statement_rule`], counted as a hit when `hit`.
    fn statement_rule_of(&self, id: u32, meta: &StatementMeta, hit: bool) -> Option<Rc<Action>> {
        let rules = self.shard.rules();
        let kept = self.stmts.get(id).map(|s| &s.rule);
        match kept {
            Some(kept) if kept.rules == rules.id() => {
                if let Some(rule) = kept.action.as_ref().filter(|_| hit) {
                    rules.count_hit(rule);
                }
                kept.action.clone()
            }
            _ if rules.is_empty() => None,
            _ => {
                let sql = kept.and_then(|k| k.client_text.as_deref()).unwrap_or(&meta.sql);
                let (user, schema) = (&self.user.name, meta.schema.as_deref());
                if hit {
                    rules.apply(sql, user, schema, &self.peer).map(|a| a.action)
                } else {
                    rules.route_rule(sql, user, schema, &self.peer)
                }
            }
        }
    }

    /// True when the text of prepared statement `meta` has a backslash
    /// the server may read as a plain character: the session's
    /// `sql_mode` has `NO_BACKSLASH_ESCAPES` or may have it (see
    /// `literal_backslashes`), or the statement was prepared under one
    /// that names it.
    fn backslashes_may_be_literal(&self, meta: &StatementMeta) -> bool {
        memchr::memchr(b'\\', &meta.sql).is_some()
            && (self.sql_mode_unknown
                || self
                    .last_status
                    .contains(StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES)
                || meta
                    .vars
                    .parse_modes()
                    .to_ascii_uppercase()
                    .contains("NO_BACKSLASH_ESCAPES"))
    }

    /// The hostgroup of `conn`'s backend.
    fn hostgroup_of(&self, conn: &BackendConn) -> Rc<str> {
        self.shard
            .backends
            .by_id(conn.pool_id)
            .map(|p| Rc::from(p.placement().hostgroup.as_str()))
            .unwrap_or_else(|| self.user.default_hostgroup.clone())
    }

    /// After the server refused a prepare: the error is the client's last
    /// statement's, for its SHOW WARNINGS / @@error_count, as after a
    /// query, and ROW_COUNT() reads -1 as after any failed statement.
    fn refused_prepare(&mut self, conn: &mut BackendConn) {
        self.linger = true;
        self.foreign_diagnostics = false;
        self.own_err = None;
        conn.stale_diagnostics = true;
        self.last.row_count = -1;
    }

    /// True when the session's connection may hold variables Funnel did
    /// not track: pinned for a `SET` it could not replay, a procedure, or
    /// something it could not classify.
    fn vars_untracked(&self) -> bool {
        use super::pinning::PinReason::{SessionVariable, StoredProcedure, Unknown};
        [SessionVariable, StoredProcedure, Unknown]
            .iter()
            .any(|r| self.pins.contains(*r))
    }

    /// `client.max_prepared_statements`, as the configuration now says.
    fn max_prepared(&self) -> usize {
        self.shard.config().client.max_prepared_statements as usize
    }

    /// Sends a prepare response from the registry under a new client id.
    async fn reply_prepared(&mut self, meta: Rc<StatementMeta>) -> Result<(), End> {
        let id = match self.stmts.add(meta.clone(), self.max_prepared()) {
            Ok(id) => id,
            // Others took the core's last room while this one prepared.
            Err(full) => return self.send_own_err(1, &full.err_packet()).await,
        };
        if let Some(stmt) = self.stmts.get_mut(id) {
            stmt.rule = std::mem::take(&mut self.prepared_rule);
        }
        self.out.clear();
        self.out.extend_from_slice(&meta.response);
        self.out[RESPONSE_STMT_ID_AT..RESPONSE_STMT_ID_AT + 4].copy_from_slice(&id.to_le_bytes());
        // The recorded response carries the status of the session that
        // prepared the text first (in a transaction or not); the server
        // tells each client its own, without the flags it clears at each
        // command's start (an index not used by the statement before).
        let lasting = StatusFlags::SERVER_STATUS_IN_TRANS.0
            | StatusFlags::SERVER_STATUS_AUTOCOMMIT.0
            | StatusFlags::SERVER_STATUS_IN_TRANS_READONLY.0
            | StatusFlags::SERVER_STATUS_NO_BACKSLASH_ESCAPES.0;
        let status = StatusFlags(self.client_status().0 & lasting);
        set_eof_status(&mut self.out, status);
        super::write_own(&mut self.stream, &self.out, &self.shard, &self.control)
            .await
            .map_err(|_| End::Closed)
    }

    /// A `COM_STMT_EXECUTE`, or with `bulk` a `COM_STMT_BULK_EXECUTE`
    /// (one statement run for many rows of parameters; never a cursor).
    async fn stmt_execute(&mut self, payload: &[u8], bulk: bool) -> Result<(), End> {
        let name = if bulk {
            "COM_STMT_BULK_EXECUTE"
        } else {
            "COM_STMT_EXECUTE"
        };
        // The server names the execute in its 1243 for a bulk too.
        let Some((id, meta, key)) = self.client_statement(payload, "mysqld_stmt_execute").await? else {
            return Ok(());
        };
        // A prepared COMMIT may commit as the text one does (only on a
        // held connection can there be a transaction to commit).
        self.command_commits = self.pinned.is_some() && meta.effect.commits;
        if let Some(err) = self.stmts.get_mut(id).and_then(|s| s.long_data_err.take()) {
            // Long data for it failed earlier: the server would say so now.
            return self.send_backend_err(1, &err).await;
        }
        let parsed = if bulk {
            parse_bulk(payload, meta.params).map(ExecuteCommand::Bulk)
        } else {
            parse_execute(payload, meta.params).map(ExecuteCommand::Single)
        };
        let head = match parsed {
            Ok(h) => h,
            Err(_) if !bulk && bound_flag_missing(payload, meta.params) => {
                let err = ErrPacket::new(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute");
                return self.send_own_err(1, &err).await;
            }
            Err(e) => return self.reply_error(1, crate::error::EngineError::Malformed(e)).await,
        };
        let rule = self.statement_rule(id, &meta);
        if let Some(err) = rule.as_ref().and_then(|r| r.refusal.clone()) {
            // As a text query the rule refuses: `log: true` takes it too.
            let command = if bulk { "bulk_execute" } else { "execute" };
            self.log_statement(rule.as_deref(), command, &meta);
            // A rule a reload added since the prepare. The server drops a
            // statement's long data at its execute, whatever the outcome.
            if self.long_data.contains(&id) {
                self.drop_long_data(id).await;
            }
            self.note_sql_shape(&meta.sql);
            return self.refuse_by_rule(&err).await;
        }
        // A bulk's types are the statement's for later executes too, and
        // an execute's for a later bulk, as on the server. A bulk's are
        // noted once a connection that takes bulks runs it (below).
        if !bulk {
            self.note_param_types(id, payload, &head);
        }
        let mut f = Forward::new(name, Some(Expect::Results));
        // State it makes (a user variable, a named lock, a temporary table)
        // stays on the connection that ran it, as for the same text in COM_QUERY.
        f.pin = meta.effect.pin;
        f.unpin = meta.effect.unpin;
        f.savepoint = meta.effect.savepoint;
        f.opens_no_table = meta.effect.opens_no_table;
        f.may_keep_diagnostics = meta.effect.may_keep_diagnostics;
        f.statement_vars = meta.effect.statement_vars;
        f.tracks_state_itself = meta.effect.tracks_state_itself;
        f.drops_temporary = meta.effect.drops_temporary;
        f.releases = meta.effect.releases;
        f.may_end_session = meta.effect.may_end_session;
        f.may_run_stored_code = !meta.effect.runs_no_stored_code;
        f.selects_into = meta.effect.selects_into;
        f.changes_no_data = meta.effect.read_only;
        f.changes_descriptions = meta.effect.changes_descriptions;
        // A read goes where its text would go as a query (a replica with
        // read/write split), but not one that opens a cursor: the cursor
        // keeps the session on the connection that holds it, and the
        // session's writes would follow it there.
        f.read_only = meta.effect.read_only && !bulk && payload.get(5) == Some(&CURSOR_TYPE_NO_CURSOR);
        f.rule_hostgroup = rule.as_ref().and_then(|r| r.hostgroup.clone());
        if rule.as_ref().is_some_and(|r| r.pin) {
            f.pin_by_rule();
        }
        self.query_rule = rule;
        if self.backslashes_may_be_literal(&meta) {
            // Funnel read the text with backslash escapes; the server may
            // read another statement (`SELECT ?, '\' INTO @a -- '` sets
            // variables unseen, which stayed on a pooled connection for
            // the next client): pinned, unread, as such a query is.
            f.set_unreadable();
        }
        // A `CALL` returns its procedure's result sets, whose definitions
        // the server sends every time (also one in an executable comment).
        if !meta.effect.may_call {
            f.describes = Some(id);
        }
        // On the server a bulk `INSERT` (`REPLACE`, `... ON DUPLICATE KEY
        // UPDATE`) is one statement, whose `ROW_COUNT()` is its OK's; after
        // any other the server answers the last row's count.
        let inserts_rows = super::sql_lex::inserts_rows(&meta.sql);
        f.returning = meta.effect.returning;
        // `INSERT ... RETURNING` leaves FOUND_ROWS() as it was.
        f.keeps_found_rows = inserts_rows;
        f.reads_row_count = bulk && !inserts_rows;
        // The server refuses a bulk `CALL` (1295): no procedure runs.
        f.stateless_call = !bulk
            && f.pin == Some(super::pinning::PinReason::StoredProcedure)
            && self.calls_stateless(&meta.sql, meta.schema.as_deref());
        if f.pin == Some(super::pinning::PinReason::NamedLock) {
            // Its lock names are parameters: only RELEASE_ALL_LOCKS() ends it.
            f.lock_names = super::named_locks::LockNames::Opaque;
        }
        // Before the wait for a connection, as for a text query: `SHOW
        // CLIENTS` names what a waiting client waits to run.
        let command = if bulk { "bulk_execute" } else { "execute" };
        // In its statement's schema, as `log_statement` takes it; written
        // out here to borrow the session's rule rather than clone it.
        self.log.begin(
            &self.shard.query_log,
            self.query_rule.as_deref(),
            command,
            &meta.sql,
            meta.schema.as_deref(),
        );
        self.note_sql_shape(&meta.sql);
        let answers_or_waits = |r: &&Rc<Action>| r.ok.is_some() || r.delay.is_some();
        if let Some(rule) = self.query_rule.as_ref().filter(answers_or_waits).cloned() {
            // Rare: boxed, out of every execute's future. After the types
            // are noted (the client sends them once, and its next executes
            // take them whether this one ran or not) and the statement is
            // named for `SHOW CLIENTS`, as for a wait for a connection.
            if Box::pin(self.execute_by_rule(&rule, command, id, &meta)).await? {
                return Ok(());
            }
        }
        let Some(conn) = self.lease(0, &f).await? else {
            return Ok(());
        };
        if bulk
            && !conn
                .caps
                .contains(Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS)
        {
            // A server without bulk operations (MySQL, MariaDB before
            // 10.2) in the client's hostgroup: what it would answer.
            // Such a server refuses it before reading its types: the
            // client's next execute is read with those it had.
            self.give_back(conn);
            return self
                .reply_error(1, crate::error::EngineError::NotInPreparedProtocol)
                .await;
        }
        if bulk {
            self.note_param_types(id, payload, &head);
        }
        // A re-prepare runs under the statement's own variables; the
        // execute under the session's current ones. Bringing those back
        // may take another connection (a handshake charset Funnel cannot
        // name, `sync_vars_to`): the statement is then prepared there too,
        // once more at most.
        let mut conn = conn;
        let mut rounds = 0;
        let conn = loop {
            rounds += 1;
            let Some(c) = self.prepared_on(conn, &meta, key).await? else {
                return Ok(());
            };
            let Some(c) = self.unbound_for(c, id, &meta, key, &head).await? else {
                return Ok(());
            };
            let Some(c) = self.select_statement_schema(c, &meta).await? else {
                return Ok(());
            };
            // Checked here: the sync's future is large, and boxed only
            // where it has work (see `dispatch`).
            let in_sync = c.vars == self.vars && c.user_vars == self.user_vars;
            let c = if in_sync {
                Some(c)
            } else {
                Box::pin(self.sync_vars(c, 0)).await?
            };
            let Some(mut c) = c else {
                return Ok(());
            };
            if c.stmts.get(key).is_some() {
                break c;
            }
            if rounds == 2 {
                self.give_back(c);
                let e = crate::error::EngineError::Unsupported(
                    "an execute whose connection changed twice while its statement was prepared",
                );
                return self.reply_error(1, e).await;
            }
            conn = c;
        };
        // Also when pinned at prepare for the statement's other reads: the
        // pin may have begun on a connection with another client's id.
        let reads_id = meta.effect.sets_last_insert_id || meta.effect.reads_last_insert_id;
        // A procedure, as for a text `CALL` (see `call_reads_insert_id`).
        let call_reads_id = self.call_reads_insert_id(&f);
        let do_follows = (reads_id && !self.insert_id_pinned())
            || call_reads_id
            || (f.returning && !self.holds_client_insert_id());
        // A procedure's count for FOUND_ROWS() too (see `forward`).
        let Some(mut conn) = self
            .give_previous_results(conn, 0, &mut f, do_follows, call_reads_id, do_follows)
            .await?
        else {
            return Ok(());
        };
        if self.stop_requested() {
            return Box::pin(self.refuse_stopped(conn, 0)).await;
        }
        let client_types = self.stmts.get(id).and_then(|s| s.param_types.as_ref());
        let backend = conn.stmts.get(key).expect("prepared_on prepared it");
        // The server reads an execute without types by the types it last
        // received for the statement, maybe from another client's execute
        // or from this client's on another connection.
        // None for a bulk the server refuses for its flags: it would not
        // read them, and the connection's types stay what they were.
        let inject = match (head.sends_types(), client_types) {
            (false, Some(t)) if backend.bound_types.as_ref() != Some(t) && head.reaches_statement() => {
                Some(t.clone())
            }
            _ => None,
        };
        if let Some(t) = head.types().map(|r| &payload[r.clone()]).or(inject.as_deref()) {
            backend.bound_types = Some(t.to_vec());
        }
        let backend_id = backend.id;
        self.frame_out(|out| head.rewrite(payload, backend_id, inject.as_deref(), out));
        if bulk {
            Stats::bump(&self.shard.stats.bulk_executes);
        }
        // The server forgets the statement's long data after an execute,
        // and after a bulk too (whose rows never read it), also one it
        // refuses, but for flags it refuses before looking at the statement.
        if head.reaches_statement() {
            self.long_data.retain(|&s| s != id);
        }
        self.send_out(conn, &f).await?;
        // A session whose state shapes what the server describes (a
        // temporary table hiding the statement's table) is answered with
        // its own columns: they say nothing of other clients' prepares.
        if self.last_result_columns != 0 && !self.pins.shape_prepares() {
            meta.note_columns(self.last_result_columns);
        }
        if bulk {
            // No cursor, opened or closed: the server refuses a bulk
            // `SELECT`.
        } else if !self.last_succeeded {
            // The server may have refused it before closing the statement's
            // cursor (bad parameters): any pin for one stays.
        } else if self
            .last_status
            .contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS)
        {
            self.open_cursors.insert(id);
        } else {
            // An execute closes the statement's cursor before it runs.
            self.cursor_closed(id);
        }
        Ok(())
    }

    /// Selects the schema `meta` was prepared in before its execute. The
    /// server runs an execute there, switching to it and back when the
    /// connection is in another schema (another client's), and reports the
    /// switch as a session-state change, which would pin the session as
    /// state a function left (`untracked_state`). A refusal (the schema was
    /// dropped) leaves the switch to the server, as on a direct
    /// connection. A pinned session's connection is its own, in the
    /// session's schema unless the session left the statement's: there the
    /// switch is left to the server too, since selecting the schema back
    /// for the next command would be a statement of its own, which the
    /// server's `ROW_COUNT()` and diagnostics would then answer for.
    /// `None` when the client was told of a failure.
    async fn select_statement_schema(
        &mut self,
        mut conn: BackendConn,
        meta: &StatementMeta,
    ) -> Result<Option<BackendConn>, End> {
        if self.sticky() {
            return Ok(Some(conn));
        }
        let Some(schema) = meta
            .schema
            .as_deref()
            .filter(|s| conn.schema.as_deref() != Some(*s))
        else {
            return Ok(Some(conn));
        };
        match Box::pin(super::sync::select_schema(&mut conn, schema)).await {
            Ok(_) => Ok(Some(conn)),
            Err(e) => {
                self.discard_backend(conn);
                self.reply_error(1, e).await.map(|_| None)
            }
        }
    }

    /// Selects the session's schema on its pinned connection, which a
    /// prepare in a statement's schema left. A refusal (the schema was
    /// dropped meanwhile) leaves the connection where it is: the execute
    /// runs in the statement's schema anyway, and the session's next
    /// command meets the refusal as it would on any connection. `None`
    /// when the client was told of a failure.
    async fn back_to_session_schema(&mut self, mut conn: BackendConn) -> Result<Option<BackendConn>, End> {
        let Some(schema) = self
            .schema
            .clone()
            .filter(|s| conn.schema.as_deref() != Some(s.as_slice()))
        else {
            return Ok(Some(conn));
        };
        match super::sync::select_schema(&mut conn, &schema).await {
            Ok(_) => Ok(Some(conn)),
            Err(e) => {
                self.discard_backend(conn);
                self.reply_error(1, e).await.map(|_| None)
            }
        }
    }

    /// An execute without parameter types, of a statement the client never
    /// sent types for: the server answers by the statement having none (ERR
    /// 1210, or NULLs), so one bound by another client's execute is
    /// prepared anew. `None` when the client was told of a failure.
    async fn unbound_for(
        &mut self,
        mut conn: BackendConn,
        id: u32,
        meta: &StatementMeta,
        key: StmtKey,
        head: &ExecuteCommand,
    ) -> Result<Option<BackendConn>, End> {
        let client_has_types = self.stmts.get(id).is_some_and(|s| s.param_types.is_some());
        let foreign_types = conn.stmts.get(key).is_some_and(|b| b.bound_types.is_some());
        // Long data lives with the statement: a new one would lose it.
        if head.sends_types() || client_has_types || !foreign_types || self.long_data.contains(&id) {
            return Ok(Some(conn));
        }
        Box::pin(self.rebind_for(conn, meta, key)).await
    }

    /// [`Self::unbound_for`] once the statement must be prepared anew.
    async fn rebind_for(
        &mut self,
        mut conn: BackendConn,
        meta: &StatementMeta,
        key: StmtKey,
    ) -> Result<Option<BackendConn>, End> {
        let old = conn.stmts.remove(key);
        let conn = match close_evicted(conn, old).await {
            Ok(c) => c,
            Err(c) => {
                self.discard_backend(c);
                return self
                    .reply_error(
                        1,
                        backend_lost(&self.last_backend, "closing a statement failed".into()),
                    )
                    .await
                    .map(|_| None);
            }
        };
        self.prepared_on(conn, meta, key).await
    }

    /// The cursor of statement `id` is gone: when it was the last one, the
    /// connection no longer belongs to this client for it.
    fn cursor_closed(&mut self, id: u32) {
        if self.open_cursors.remove(&id) && self.open_cursors.is_empty() {
            self.unpin(super::pinning::PinReason::Cursor);
        }
    }

    /// The client's statement a statement command (`payload`, its
    /// command byte first) names, if it names one the client holds.
    pub(super) fn named_statement(&self, payload: &[u8]) -> Option<u32> {
        statement_id(payload).ok().and_then(|id| self.stmts.resolve(id))
    }

    async fn stmt_long_data(&mut self, payload: &[u8]) -> Result<(), End> {
        // No response is allowed, so unknown ids are dropped, as servers do.
        let Some(id) = self.named_statement(payload) else {
            return Ok(());
        };
        self.no_reply = true;
        let result = self.send_long_data(id, payload).await;
        self.no_reply = false;
        let err = self.deferred_err.take();
        if self.state_lost {
            // The connection holding the session's state failed, and no
            // reply is allowed now: the next command learns why, then the
            // session ends (closing now would end it without a word).
            self.state_lost = false;
            self.ending_err = Some(err.unwrap_or_else(|| {
                backend_lost(&self.last_backend, "failed during COM_STMT_SEND_LONG_DATA".into())
                    .to_err_packet()
            }));
        } else if let Some(err) = err {
            if let Some(stmt) = self.stmts.get_mut(id) {
                stmt.long_data_err.get_or_insert(err);
            }
        }
        result
    }

    /// Closes the server statement of a private statement (see
    /// [`crate::prepared::registry::Registry::private`]) the client closed,
    /// on the connection it holds: no other client's statement is ever
    /// backed by it, and kept it would only fill the connection's cache
    /// (and the server's statement count) until evicted.
    async fn close_private(&mut self, key: StmtKey) {
        let Some(mut conn) = self.pinned.take() else {
            return;
        };
        let server_id = conn.stmts.remove(key);
        match close_evicted(conn, server_id).await {
            Ok(conn) => self.pinned = Some(conn),
            Err(conn) => {
                self.discard_backend(conn);
                if std::mem::take(&mut self.state_lost) {
                    // No reply is allowed now: the next command learns
                    // why, then the session ends.
                    let err = backend_lost(&self.last_backend, "failed during COM_STMT_CLOSE".into());
                    self.ending_err = Some(err.to_err_packet());
                }
            }
        }
    }

    /// Drops the long data statement `id` left on the held connection, as
    /// the client closes the statement without executing it: the server
    /// keeps the data with its statement, which the connection's next
    /// clients share. (Each of the client's ids has a server statement of
    /// its own, so no other id's data goes with it.)
    async fn drop_long_data(&mut self, id: u32) {
        self.long_data.retain(|&s| s != id);
        let Some(key) = self.stmts.get(id).map(|s| s.key) else {
            return;
        };
        let Some(mut conn) = self.pinned.take() else {
            return;
        };
        let Some(backend_id) = conn.stmts.get(key).map(|s| s.id) else {
            self.pinned = Some(conn);
            return;
        };
        let mut p = BytesMut::with_capacity(5);
        funnel_protocol::command::write_stmt_reset(&mut p, backend_id);
        match conn.run(&p, Expect::Status).await {
            Ok(summary) if summary.error.is_none() => {
                self.pinned = Some(conn);
                self.release_if_free();
            }
            _ => self.discard_backend(conn),
        }
    }

    /// Forwards one `COM_STMT_SEND_LONG_DATA` to a connection that has the
    /// statement prepared (errors go to `deferred_err`).
    async fn send_long_data(&mut self, id: u32, payload: &[u8]) -> Result<(), End> {
        let stmt = self.stmts.get(id).expect("resolved");
        let (meta, key) = (stmt.meta.clone(), stmt.key);
        let mut f = Forward::new("COM_STMT_SEND_LONG_DATA", None);
        // The connection it lands on runs the execute (so it is not split
        // off to a replica for a read: it may be a write).
        f.changes_no_data = meta.effect.read_only;
        f.rule_hostgroup = self
            .statement_rule_of(id, &meta, false)
            .and_then(|r| r.hostgroup.clone());
        let Some(conn) = self.lease(0, &f).await? else {
            return Ok(());
        };
        let Some(mut conn) = self.prepared_on(conn, &meta, key).await? else {
            return Ok(());
        };
        let backend_id = conn.stmts.get(key).expect("prepared").id;
        self.frame_out(|out| rewrite_id(payload, backend_id, out));
        // The data lives on this connection until the execute.
        if !self.long_data.contains(&id) {
            self.long_data.push(id);
        }
        self.send_out(conn, &f).await
    }

    async fn stmt_reset(&mut self, payload: &[u8]) -> Result<(), End> {
        let Some((id, _, key)) = self.client_statement(payload, "mysqld_stmt_reset").await? else {
            return Ok(());
        };
        self.long_data.retain(|&s| s != id);
        if let Some(stmt) = self.stmts.get_mut(id) {
            stmt.long_data_err = None;
        }
        let on_pinned = self.pinned.as_mut().and_then(|c| c.stmts.get(key)).map(|s| s.id);
        match on_pinned {
            Some(backend_id) => {
                let conn = self.pinned.take().expect("checked");
                self.frame_out(|out| rewrite_id(payload, backend_id, out));
                let f = Forward::new("COM_STMT_RESET", Some(Expect::Status));
                self.send_out(conn, &f).await?;
                // A reset closes the statement's cursor.
                self.cursor_closed(id);
                Ok(())
            }
            None => {
                // Nothing of this statement lives on a server connection.
                let ok = OkPacket {
                    status: self.client_status(),
                    ..Default::default()
                };
                self.write_ok(1, &ok).await
            }
        }
    }

    async fn stmt_fetch(&mut self, payload: &[u8]) -> Result<(), End> {
        let Some((id, _, key)) = self.client_statement(payload, "mysqld_stmt_fetch").await? else {
            return Ok(());
        };
        // Only a cursor this id opened: the server statement may hold one
        // left by a statement the client closed (its ids share it in turn).
        let on_pinned = self
            .pinned
            .as_mut()
            .filter(|_| self.open_cursors.contains(&id))
            .and_then(|c| c.stmts.get(key))
            .map(|s| s.id);
        let Some(backend_id) = on_pinned else {
            let err = ErrPacket::new(1421, "HY000", format!("The statement ({id}) has no open cursor"));
            return self.send_own_err(1, &err).await;
        };
        // Not through `lease`: until `relay_and_settle` names the backend
        // thread, a `KILL QUERY` finds the session idle and does nothing.
        // Nothing is lost by that: MariaDB 10.11 does not stop a fetch of
        // a (materialized) cursor at a `KILL QUERY` either (measured: all
        // rows, the cursor still open; `kill_leftovers.rs`).
        let conn = self.pinned.take().expect("checked");
        self.frame_out(|out| rewrite_id(payload, backend_id, out));
        let f = Forward::new("COM_STMT_FETCH", Some(Expect::Fetch));
        self.send_out(conn, &f).await?;
        if self
            .last_status
            .contains(StatusFlags::SERVER_STATUS_LAST_ROW_SENT)
        {
            // The server closed the exhausted cursor.
            self.cursor_closed(id);
        }
        Ok(())
    }

    /// Remembers the parameter types `head` carries as client statement
    /// `id`'s, for its later executes that send none.
    fn note_param_types(&mut self, id: u32, payload: &[u8], head: &ExecuteCommand) {
        if let (Some(types), Some(stmt)) = (head.types(), self.stmts.get_mut(id)) {
            stmt.param_types = Some(payload[types.clone()].to_vec());
        }
    }

    /// The client's statement named in `payload`, or an ERR 1243 sent.
    async fn client_statement(
        &mut self,
        payload: &[u8],
        command: &str,
    ) -> Result<Option<(u32, Rc<StatementMeta>, StmtKey)>, End> {
        let raw = statement_id(payload).unwrap_or(0);
        match self
            .stmts
            .resolve(raw)
            .and_then(|id| self.stmts.get(id).map(|s| (id, s.meta.clone(), s.key)))
        {
            Some(found) => Ok(Some(found)),
            None => {
                let err = ErrPacket::new(
                    1243,
                    "HY000",
                    format!("Unknown prepared statement handler ({raw}) given to {command}"),
                );
                self.send_own_err(1, &err).await.map(|_| None)
            }
        }
    }

    /// Makes sure `meta` is prepared on `conn` as `key` (in its own
    /// schema), preparing it there now if not. A pinned session's
    /// connection goes back to the session's schema after the prepare, as
    /// [`Self::select_statement_schema`] leaves it: were it left in the
    /// statement's, the next command would select the session's first, a
    /// statement of its own that the server's `ROW_COUNT()` would then
    /// answer for. `None` when the client was told of a failure.
    async fn prepared_on(
        &mut self,
        mut conn: BackendConn,
        meta: &StatementMeta,
        key: StmtKey,
    ) -> Result<Option<BackendConn>, End> {
        if conn.stmts.get(key).is_some() {
            return Ok(Some(conn));
        }
        // Boxed: preparing is a large future, and rare once the
        // connections have the statement (see `dispatch`).
        Box::pin(self.prepare_there(conn, meta, key)).await
    }

    /// [`Self::prepared_on`] for a connection that lacks the statement.
    async fn prepare_there(
        &mut self,
        conn: BackendConn,
        meta: &StatementMeta,
        key: StmtKey,
    ) -> Result<Option<BackendConn>, End> {
        // Parse it as it was first parsed: same schema, same sql_mode and charset.
        let Some(c) = self.sync_schema(conn, meta.schema.as_deref(), 0).await? else {
            return Ok(None);
        };
        let (c, modes_saved) = if self.vars_untracked() {
            // The connection holds variables Funnel does not know (a
            // computed SET while pinned, a procedure): switching and
            // restoring them would restore the tracked values, not the
            // client's. It prepares under the session's current ones,
            // but for the parse modes, which the server saves and puts
            // back itself, always, as the connection's may be untracked
            // too (`[id]` prepared under MSSQL, executed after `SET
            // sql_mode = ''` in a session a CALL pinned: 1064, where a
            // direct connection runs its prepare; soak seeds 500569, and
            // 500684 after a computed `SET sql_mode` while pinned). So are
            // the client and connection charsets, which type the text's
            // literals (soak seed 501628: `SET NAMES binary` after a
            // CALL), where the login charset has a name to go back to.
            let charsets = meta
                .vars
                .parse_charset_assignments(super::sync::handshake_names(&c))
                .ok();
            let sql = match &charsets {
                Some(cs) => format!(
                    "SET {SAVE_PARSE_MODES}, {SAVE_PARSE_CHARSETS}, {}, {cs}",
                    meta.vars.parse_modes()
                ),
                None => format!("SET {SAVE_PARSE_MODES}, {}", meta.vars.parse_modes()),
            };
            match self.run_sync(c, sql.as_bytes(), 0).await? {
                Some(c) => (c, Some(charsets.is_some())),
                None => return Ok(None),
            }
        } else {
            // The rest are the session's own (as for the execute): the
            // server refuses to prepare a write while the connection is
            // read-only, which another client's `tx_read_only` would make it.
            let target = self.parse_target(&c, &meta.vars);
            match self.sync_vars_to(c, &target, 0).await? {
                Some(c) => (c, None),
                None => return Ok(None),
            }
        };
        let mut payload = BytesMut::with_capacity(meta.sql.len() + 1);
        payload.extend_from_slice(&[0x16]);
        payload.extend_from_slice(&meta.sql);
        let (mut conn, result) = self.run_prepare(c, &payload, &mut Vec::new()).await;
        if let Some(charsets_saved) = modes_saved {
            // Funnel's statements there: the server's ROW_COUNT() is not
            // the client's now.
            self.own_row_count_next = true;
            let restore = if charsets_saved {
                format!("{RESTORE_PARSE_MODES}, {RESTORE_PARSE_CHARSETS}")
            } else {
                RESTORE_PARSE_MODES.to_string()
            };
            let restored = conn.run_query(restore.as_bytes()).await;
            if !restored.as_ref().is_ok_and(|s| s.error.is_none()) {
                // The connection keeps the statement's modes, or is gone:
                // as any lost connection.
                self.discard_backend(conn);
                let reason = "restoring sql_mode after a prepare failed".to_string();
                return self
                    .reply_error(1, backend_lost(&self.last_backend, reason))
                    .await
                    .map(|_| None);
            }
        }
        match result {
            Ok(summary) => match (summary.error, summary.prepared) {
                (None, Some(p)) => {
                    Stats::bump(&self.shard.stats.reprepares);
                    if !self.pins.shape_prepares() {
                        meta.note_columns(u64::from(p.columns));
                    }
                    let keep = self.keys_in_use();
                    let evicted = conn
                        .stmts
                        .insert(key, p.stmt_id, self.statement_cap(&conn), &keep);
                    match close_evicted(conn, evicted).await {
                        Ok(c) if self.sticky() => self.back_to_session_schema(c).await,
                        Ok(c) => Ok(Some(c)),
                        Err(c) => {
                            // As any lost connection: a transaction or
                            // pinned state on it is gone with it.
                            self.discard_backend(c);
                            self.reply_error(
                                1,
                                backend_lost(&self.last_backend, "closing a statement failed".into()),
                            )
                            .await
                            .map(|_| None)
                        }
                    }
                }
                (Some(err), _) => {
                    // The statement no longer prepares (a table changed, the
                    // session is read-only now): the execute fails with it,
                    // as a failed statement. The next command restores the
                    // session's schema and variables first, statements of
                    // Funnel's: a pinned session's ROW_COUNT() is then not
                    // the server's (soak seeds 50237, 50443).
                    self.refused_prepare(&mut conn);
                    self.own_row_count_next = self.sticky();
                    if modes_saved.is_some() && self.sticky() {
                        // The `SET` that put the modes back after the
                        // refusal left ROW_COUNT() at 0 there, and no sync
                        // gives the failure's -1 back before the next
                        // command: a procedure or dynamic SQL reads it.
                        conn = match Box::pin(self.give_back_row_count(conn, 0)).await? {
                            Some(c) => c,
                            None => return Ok(None),
                        };
                    }
                    self.keep_lingering(conn);
                    self.send_backend_err(1, &err).await.map(|_| None)
                }
                (None, None) => {
                    self.discard_backend(conn);
                    self.reply_error(
                        1,
                        backend_lost(&self.last_backend, "prepare without a result".into()),
                    )
                    .await
                    .map(|_| None)
                }
            },
            Err(e) => {
                self.discard_backend(conn);
                let err = self.backend_failure(e);
                self.reply_error(1, err).await.map(|_| None)
            }
        }
    }

    /// Runs the prepare `payload` on `conn`, capturing its response in
    /// `raw`. When the server holds `max_prepared_stmt_count` statements
    /// (ERR 1461; every connection's cache counts, so it can be reached
    /// by clients that together hold fewer), the connection's statements
    /// no one needs now are closed and the prepare runs once more.
    ///
    /// A prepare is part of the client's command (its own, or the execute
    /// it comes before): `pool.query_timeout` bounds it, when set. Unlike
    /// the statements that restore a session, it may wait for a lock.
    async fn run_prepare(
        &mut self,
        conn: BackendConn,
        payload: &[u8],
        raw: &mut Vec<u8>,
    ) -> (BackendConn, Result<ResponseSummary, BackendError>) {
        let (mut conn, result) = self.run_prepare_within_limit(conn, payload, raw).await;
        if result.is_ok() {
            self.vars_made_by_prepare(&mut conn, &payload[1..]);
        }
        (conn, result)
    }

    /// After the server answered a prepare of `sql` on `conn`, refused or
    /// not: the user variables it may have made there
    /// ([`super::user_vars::made_by_prepare`]) are recorded as carried by
    /// the connection, value unknown, so the next client there that never
    /// set them gets them as NULL, as on a connection of its own (a client
    /// that had not set them itself is pinned before its prepare,
    /// [`Self::stmt_prepare`]; this is for the others, and for a
    /// statement prepared again at an execute elsewhere). A pinned
    /// session's connection is its own, where it reads them as the server
    /// made them: it stays pinned (`user_variable`), as for a `SET @x`
    /// while pinned, and so does a session whose prepare made a name
    /// Funnel does not track.
    fn vars_made_by_prepare(&mut self, conn: &mut BackendConn, sql: &[u8]) {
        match super::user_vars::made_by_prepare(sql) {
            Some(names) if names.is_empty() => {}
            Some(names) if !self.sticky() => {
                for name in names {
                    conn.user_vars.carry_unknown(name);
                }
            }
            _ => self.pin(super::pinning::PinReason::UserVariable),
        }
    }

    /// [`Self::run_prepare`], the prepare itself.
    async fn run_prepare_within_limit(
        &mut self,
        mut conn: BackendConn,
        payload: &[u8],
        raw: &mut Vec<u8>,
    ) -> (BackendConn, Result<ResponseSummary, BackendError>) {
        let deadline = self.query_deadline();
        let result = conn
            .run_capturing_within(deadline, payload, Expect::Prepare, Some(raw))
            .await;
        let full = matches!(&result, Ok(s) if s.error.as_ref().is_some_and(|e| e.code == MAX_PREPARED_STMT_COUNT_REACHED));
        if !full {
            return (conn, result);
        }
        let closing = conn.stmts.drain_except(&self.keys_in_use());
        if closing.is_empty() {
            return (conn, result);
        }
        for id in closing {
            let mut p = BytesMut::with_capacity(5);
            funnel_protocol::command::write_stmt_close(&mut p, id);
            if let Err(e) = conn.send_without_response(&p).await {
                return (conn, Err(e));
            }
        }
        raw.clear();
        let result = conn
            .run_capturing_within(deadline, payload, Expect::Prepare, Some(raw))
            .await;
        (conn, result)
    }

    /// The client's statements that hold a cursor or long data on its
    /// connection: closing them there would lose those.
    fn keys_in_use(&self) -> Vec<StmtKey> {
        self.open_cursors
            .iter()
            .chain(&self.long_data)
            .filter_map(|&id| self.stmts.get(id).map(|s| s.key))
            .collect()
    }

    /// Puts a statement command for the backend in `self.out` as a packet
    /// (sequence id 0): `build` appends its payload after room for the
    /// header. Built in place, so an execute allocates nothing of its
    /// own; one of 16 MiB or more is split into packets afterwards.
    fn frame_out(&mut self, build: impl FnOnce(&mut BytesMut)) {
        self.out.clear();
        self.out.resize(HEADER_LEN, 0);
        build(&mut self.out);
        let len = self.out.len() - HEADER_LEN;
        if len < MAX_CHUNK {
            self.out[..3].copy_from_slice(&(len as u32).to_le_bytes()[..3]);
        } else {
            let payload = self.out.split_off(HEADER_LEN);
            self.out.clear();
            write_packet(&mut self.out, 0, &payload);
        }
    }

    /// Sends the command [`Self::frame_out`] built, then relays its reply.
    async fn send_out(&mut self, mut conn: BackendConn, f: &Forward) -> Result<(), End> {
        Stats::bump(&self.shard.stats.forwarded);
        // Until a reply is relayed, no result: a command whose write
        // failed must not show the previous command's columns (an execute
        // compares them with its statement's, see `note_columns`).
        self.last_result_columns = 0;
        let deadline = self.query_deadline();
        if let Err(e) = conn.send_command(&self.out, deadline).await {
            self.note_causal_write_lost(&conn, f);
            self.discard_backend(conn);
            let err = self.backend_failure(e);
            return self.reply_error(1, err).await;
        }
        self.relay_and_settle(conn, f).await
    }
}

/// An execute's flags byte without a cursor (`CURSOR_TYPE_NO_CURSOR`).
const CURSOR_TYPE_NO_CURSOR: u8 = 0;

/// True for a prepare's ERR that comes of the server's state at the time,
/// not of the text: no room for a statement (1461), a lock wait that
/// timed out (1205), a statement interrupted (1317) or out of time
/// (1969). A check refused so leaves the description as it was: taken
/// for stale, the text would get a second statement beside the first on
/// every connection, on a server that had no room for one.
fn says_nothing_of_the_text(code: u16) -> bool {
    matches!(code, MAX_PREPARED_STMT_COUNT_REACHED | 1205 | 1317 | 1969)
}

/// Closes a statement evicted from a connection's cache (no response).
/// Gives the connection back in `Err` when the write failed.
async fn close_evicted(mut conn: BackendConn, evicted: Option<u32>) -> Result<BackendConn, BackendConn> {
    if let Some(id) = evicted {
        let mut p = BytesMut::with_capacity(5);
        funnel_protocol::command::write_stmt_close(&mut p, id);
        if conn.send_without_response(&p).await.is_err() {
            return Err(conn);
        }
    }
    Ok(conn)
}

/// Copies the logical payload of a command's packets (joined when over 16 MiB) into `out`.
fn copy_logical_payload(bytes: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut at = 0;
    while at + HEADER_LEN <= bytes.len() {
        let len = usize::from(bytes[at]) | usize::from(bytes[at + 1]) << 8 | usize::from(bytes[at + 2]) << 16;
        out.extend_from_slice(&bytes[at + HEADER_LEN..at + HEADER_LEN + len]);
        at += HEADER_LEN + len;
        if len < MAX_CHUNK {
            break;
        }
    }
}

/// Sets the status flags of every EOF packet in `packets` (whole packets,
/// headers included: a prepare response, whose EOFs end its parameter and
/// column descriptions) to `status`.
fn set_eof_status(packets: &mut [u8], status: StatusFlags) {
    let mut at = 0;
    while let Some(head) = PacketHeader::peek(&packets[at..]) {
        let payload = at + HEADER_LEN;
        // A description starts with its catalog ("def"), never 0xfe.
        if head.len == 5 && packets.get(payload) == Some(&0xfe) {
            packets[payload + 3..payload + 5].copy_from_slice(&status.0.to_le_bytes());
        }
        at += head.total_len();
        if at > packets.len() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_eof_status_of_a_prepare_response_is_set() {
        // OK (id, 1 column, 1 parameter), a parameter description, EOF, a
        // column description, EOF: what MariaDB sends without DEPRECATE_EOF.
        let mut response = Vec::new();
        let mut packet = |payload: &[u8]| write_packet_vec(&mut response, payload);
        packet(&[0x00, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
        packet(b"\x03def\x00\x00\x00\x01?\x00\x0c\x3f\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00");
        packet(&[0xfe, 0, 0, 3, 0]);
        packet(b"\x03def\x00\x00\x00\x01c\x00\x0c\x2d\x00\x04\x00\x00\x00\xfd\x01\x00\x27\x00\x00");
        packet(&[0xfe, 1, 0, 3, 0]);
        let before = response.clone();
        set_eof_status(&mut response, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        let eofs: Vec<usize> = (0..response.len())
            .filter(|&i| response[i] != before[i])
            .collect();
        assert_eq!(eofs.len(), 2, "one status byte in each EOF: {eofs:?}");
        assert!(response.windows(5).any(|w| w == [0xfe, 0, 0, 2, 0]));
        // The warning count stays.
        assert!(response.windows(5).any(|w| w == [0xfe, 1, 0, 2, 0]));
    }

    fn write_packet_vec(out: &mut Vec<u8>, payload: &[u8]) {
        let mut b = BytesMut::new();
        write_packet(&mut b, 1, payload);
        out.extend_from_slice(&b);
    }
}
