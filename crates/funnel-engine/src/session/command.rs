//! Deciding what to do with one client command: answer it locally, refuse
//! it, or forward it (and with what expectations). Pure: a payload in, a
//! plan out, so every rule is unit-tested without sockets.

use funnel_protocol::command::{
    Command, CommandCode, MYSQL_OPTION_MULTI_STATEMENTS_OFF, MYSQL_OPTION_MULTI_STATEMENTS_ON,
};
use funnel_protocol::tracker::Expect;
use funnel_protocol::Capabilities;

use crate::error::EngineError;
use crate::kill::{parse_kill, KillRequest};
use crate::session::named_locks::LockNames;
use crate::session::pinning::{classify, PinReason};
use crate::session::variables::Assignment;

/// What the session does with a command.
#[derive(Debug)]
pub enum Plan {
    /// `COM_QUIT`: close the session.
    Quit,
    /// Answer OK without a backend (`COM_PING`).
    ReplyOk,
    /// Answer with an error and go on.
    Reply(EngineError),
    /// Send to a backend connection.
    Forward(Forward),
    /// A binary-protocol prepared-statement command.
    Statement(StatementCommand),
    /// `KILL [QUERY] id` or `COM_PROCESS_KILL`.
    Kill(KillRequest),
    /// `COM_CHANGE_USER`: re-authenticate and start a clean session.
    ChangeUser,
    /// `COM_RESET_CONNECTION`.
    ResetConnection,
    /// Drop the command without a word: it has no response, so an ERR
    /// would desynchronise the client (a malformed `COM_STMT_CLOSE`).
    Ignore,
}

/// Prepared-statement commands, handled by Funnel's statement registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementCommand {
    /// `COM_STMT_PREPARE`.
    Prepare,
    /// `COM_STMT_EXECUTE`.
    Execute,
    /// `COM_STMT_BULK_EXECUTE`.
    BulkExecute,
    /// `COM_STMT_SEND_LONG_DATA`.
    LongData,
    /// `COM_STMT_CLOSE`.
    Close,
    /// `COM_STMT_RESET`.
    Reset,
    /// `COM_STMT_FETCH`.
    Fetch,
}

/// How to forward a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The response's shape; `None` for commands without a response.
    pub expect: Option<Expect>,
    /// The session keeps its connection from now on, for this reason.
    pub pin: Option<PinReason>,
    /// On success, the session's schema becomes this.
    pub new_schema: Option<Vec<u8>>,
    /// On success, a session whose schema this is has none any more.
    pub drops_schema: Option<Vec<u8>>,
    /// On success, these session variables are recorded.
    pub set_vars: Option<Vec<Assignment>>,
    /// On success, these session variables are read back from the server
    /// and recorded (values only the server could compute).
    pub read_back: Option<Vec<String>>,
    /// On success, these user variables (name, literal) are recorded.
    pub set_user_vars: Option<Vec<(String, String)>>,
    /// On success, these user variables are read back from the server and
    /// recorded.
    pub read_back_user_vars: Option<Vec<String>>,
    /// `SELECT SQL_CALC_FOUND_ROWS`: on success, the count for
    /// `FOUND_ROWS()` is read back from the server.
    pub reads_found_rows: bool,
    /// A bulk `UPDATE` or `DELETE`: on success, `ROW_COUNT()` is read back
    /// from the server, which answers its last row's count, not the OK's
    /// sum of all rows.
    pub reads_row_count: bool,
    /// An `INSERT` or `REPLACE` alone in its query that may return rows
    /// (`RETURNING`): its `LAST_INSERT_ID()` is read back after it, so the
    /// connection must hold the client's id before it, for a statement
    /// that inserts no id to leave (see `Session::read_back_returning`).
    pub returning: bool,
    /// On an error, the session keeps its connection for this reason.
    pub pin_on_error: Option<PinReason>,
    /// A query rule's `pin` matched it: the session keeps the connection
    /// it runs on, whatever its outcome.
    pub rule_pin: bool,
    /// `SELECT ... INTO`: the server answers `FOUND_ROWS()` after it.
    pub selects_into: bool,
    /// Reports on the previous statement (`SHOW WARNINGS`, ...).
    pub diagnostics: bool,
    /// `SHOW WARNINGS` / `SHOW ERRORS`, `HANDLER`: the server leaves what
    /// `FOUND_ROWS()` answers as it was (its rows are not a `SELECT`'s).
    pub keeps_found_rows: bool,
    /// It gives the connection a last insert id of its choosing
    /// (`LAST_INSERT_ID(expr)`, `SET last_insert_id = n`).
    pub sets_insert_id: bool,
    /// On success, this pin reason ends.
    pub unpin: Option<PinReason>,
    /// `COM_SET_OPTION`: on success, multi-statements are on or off.
    pub multi_statements: Option<bool>,
    /// A statement that only reads (read/write split may send it to replicas).
    pub read_only: bool,
    /// A statement that changes session state Funnel tracks and no data
    /// (`SET`, `USE`): it may run on a read-only server of the default
    /// hostgroup when no writable one is there.
    pub session_only: bool,
    /// A binary-protocol prepare, or the execute of a statement that only
    /// reads: it changes no data, so a hostgroup of read-only servers
    /// alone serves it (where a writable one is, it goes there, as
    /// binary-protocol statements stay in the default hostgroup).
    pub changes_no_data: bool,
    /// The command only makes sense on the connection the session already
    /// holds (an open cursor).
    pub needs_pinned: bool,
    /// The named locks a query takes, releases or asks about.
    pub lock_names: LockNames,
    /// It names a savepoint: with autocommit off one made before the
    /// transaction began keeps the connection (see `BackendConn`).
    pub savepoint: bool,
    /// Surely opens no table (see [`super::pinning::SqlEffect::opens_no_table`]).
    pub opens_no_table: bool,
    /// `SET STATEMENT ... FOR` (see [`super::pinning::SqlEffect::statement_vars`]).
    pub statement_vars: bool,
    /// `DROP TEMPORARY` (see [`super::pinning::SqlEffect::drops_temporary`]).
    pub drops_temporary: bool,
    /// A multi-statement query (see [`super::pinning::SqlEffect::several_statements`]).
    pub several_statements: bool,
    /// `CALL`, SQL `PREPARE` / `EXECUTE` (see
    /// [`super::pinning::SqlEffect::may_keep_diagnostics`]).
    pub may_keep_diagnostics: bool,
    /// A compound statement (see [`super::pinning::SqlEffect::compound`]).
    pub compound: bool,
    /// `COMMIT RELEASE` or `ROLLBACK RELEASE` (see
    /// [`super::pinning::SqlEffect::releases`]): the server closes the
    /// connection after its OK, and the session ends with it.
    pub releases: bool,
    /// A `COMMIT` or `ROLLBACK` that may end the session, under
    /// `completion_type = RELEASE` (see
    /// [`super::pinning::SqlEffect::may_release`]).
    pub may_release: bool,
    /// The server may end the session where no `RELEASE` says so (see
    /// [`super::pinning::SqlEffect::may_end_session`]).
    pub may_end_session: bool,
    /// A `SET` of `completion_type` (it pins): from then on the session
    /// checks, after each `COMMIT` or `ROLLBACK`, whether the server
    /// closed its connection.
    pub sets_completion_type: bool,
    /// Set as the command is sent: before this `CALL` or compound
    /// statement, the connection was given the client's own count for
    /// `FOUND_ROWS()` (see `Session::give_found_rows`), so what the server
    /// answers after it is the client's, whether the procedure set the
    /// count (`SELECT ... INTO`) or not.
    pub found_rows_given: bool,
    /// A plain `CALL` of a procedure in `stateless_procedures`: after it
    /// the session may give its connection back (see
    /// `session/stateless_call.rs`).
    pub stateless_call: bool,
    /// An execute (or bulk) of this client statement: its result columns
    /// are the statement's, which a client with MariaDB's metadata cache
    /// may have already (see [`crate::column_cache`]).
    pub describes: Option<u32>,
    /// An `XA` statement: the session's transaction may be an XA one
    /// whose branch ended (`XA END`, `XA PREPARE`), where the server
    /// refuses every statement, a prepare too (1399), until `XA COMMIT` or
    /// `XA ROLLBACK`.
    pub xa: bool,
    /// A statement that may run stored code (a trigger, a stored function,
    /// a view that calls one; see
    /// [`super::pinning::SqlEffect::runs_no_stored_code`]): where it fails,
    /// the connection is reset before another client gets it.
    pub may_run_stored_code: bool,
    /// On success, the client has set `session_track_state_change` itself
    /// (which pins): it sees the server's state-change reports as sent.
    pub tracks_state_itself: bool,
    /// User variables whose text the query runs as SQL (`PREPARE s FROM
    /// @v`, `EXECUTE IMMEDIATE @v`): read on the connection and checked
    /// before the query is sent (see [`super::dynamic_sql`]).
    pub dynamic_vars: Vec<Vec<u8>>,
    /// It may change what the server describes for prepares (see
    /// [`super::sql_lex::may_change_descriptions`]): once it ran, the
    /// shard's recorded descriptions are had from the server again.
    pub changes_descriptions: bool,
    /// The hostgroup of the query rule that matches a prepared
    /// statement's text, for its prepare, executes and long data (a
    /// `COM_QUERY`'s text is matched where it is routed, in the client's
    /// buffer).
    pub rule_hostgroup: Option<std::rc::Rc<str>>,
    /// A `COM_STMT_PREPARE` of a text that only reads and surely opens
    /// no table, sent while the session's connection lingers for its
    /// warnings: a replica of the user's read hostgroup that holds them
    /// may describe it (see `Session::describes_there`).
    pub prepares_read: bool,
    /// A text `PREPARE` whose statement may change descriptions (its text
    /// says so; one from a variable is read before it is sent, see
    /// `Session::dynamic_text_changes`): the session's later text
    /// `EXECUTE`s count as such changes ([`Forward::executes_sql_prepared`]).
    pub prepares_changes: bool,
    /// A text `EXECUTE name`: it runs what a text `PREPARE` made, which
    /// may be an `ALTER` its own text does not show.
    pub executes_sql_prepared: bool,
    /// The command's name, for logs and statistics.
    pub name: &'static str,
}

impl Forward {
    /// A `CALL`, or a compound statement whose body may call a procedure
    /// (`BEGIN p; END` under `sql_mode=ORACLE`).
    pub fn runs_procedure(&self) -> bool {
        self.pin == Some(PinReason::StoredProcedure)
            || (self.compound && self.pin == Some(PinReason::Unknown))
    }

    /// Funnel cannot read this query's text reliably: nothing it learned
    /// from it counts, and the session keeps its connection (fail safe).
    pub fn set_unreadable(&mut self) {
        self.pin = Some(PinReason::Unknown);
        self.new_schema = None;
        self.drops_schema = None;
        self.set_vars = None;
        self.read_back = None;
        self.set_user_vars = None;
        self.read_back_user_vars = None;
        self.reads_found_rows = false;
        self.unpin = None;
        self.read_only = false;
        self.session_only = false;
        self.lock_names = LockNames::Opaque;
        self.may_run_stored_code = true;
    }

    /// A query rule pins the session to the connection this runs on: it
    /// goes where writes go, as any statement that pins does (on a
    /// replica, the session's writes would follow it there), and no
    /// server's earlier reply answers it.
    pub fn pin_by_rule(&mut self) {
        self.rule_pin = true;
        self.read_only = false;
        self.session_only = false;
    }

    /// True when it may change data (and so commit a transaction with a
    /// GTID): not a read, a tracked `SET` or `USE`, a prepare, a report on
    /// the previous statement, nor a command that runs no SQL and changes
    /// no data (a ping, statistics, a table's columns, a cursor's fetch, a
    /// statement's reset, an option).
    pub fn may_write_data(&self) -> bool {
        !(self.read_only
            || self.session_only
            || self.changes_no_data
            || self.diagnostics
            || matches!(
                self.name,
                "COM_PING"
                    | "COM_STATISTICS"
                    | "COM_FIELD_LIST"
                    | "COM_STMT_FETCH"
                    | "COM_STMT_RESET"
                    | "COM_SET_OPTION"
                    | "COM_DEBUG"
            ))
    }

    /// True when, after the reply, Funnel asks the server on the same
    /// connection about what the command left (a read-back, the named-lock
    /// check after a `RELEASE_LOCK()`), and what it learns may pin or free
    /// the session. The end of the reply waits for that: once the client
    /// has it, the client's next command, another client's and `SHOW
    /// CLIENTS` meet the session settled (the connection released, or the
    /// pin there), as after `COM_RESET_CONNECTION`.
    pub fn settles_on_server(&self) -> bool {
        self.read_back.is_some()
            || self.read_back_user_vars.is_some()
            || self.reads_found_rows
            || matches!(self.lock_names, LockNames::Literal { releases: true, .. })
            || self.stateless_call
    }

    /// True when the command leaves no session state behind, on the
    /// server or in Funnel.
    pub fn changes_nothing(&self) -> bool {
        self.pin.is_none()
            && self.new_schema.is_none()
            && self.drops_schema.is_none()
            && self.set_vars.is_none()
            && self.read_back.is_none()
            && self.set_user_vars.is_none()
            && self.read_back_user_vars.is_none()
            && self.unpin.is_none()
            && self.multi_statements.is_none()
            && !self.savepoint
            && self.lock_names == LockNames::None
    }

    /// True when a session-state change the server reports for this
    /// command is one Funnel knows of: state it tracks or reads back, a
    /// pin, the variables of a `SET STATEMENT` or of a lock wait
    /// option (`NOWAIT`, `WAIT n`), or a `DROP TEMPORARY`. Any other
    /// (a stored function or trigger that set a variable) is untracked.
    pub fn explains_state_change(&self) -> bool {
        // A named lock's pin ends when the lock is released, and the
        // statement that takes it may call anything (`SELECT GET_LOCK('l',
        // 0), f()`); the lock functions report nothing themselves.
        self.pin.is_some_and(|r| r != PinReason::NamedLock)
            || self.pin_on_error.is_some()
            || self.new_schema.is_some()
            || self.drops_schema.is_some()
            || self.set_vars.is_some()
            || self.read_back.is_some()
            || self.set_user_vars.is_some()
            || self.read_back_user_vars.is_some()
            || self.statement_vars
            || self.drops_temporary
    }

    /// All the command may leave behind is state Funnel tracks, whether
    /// it succeeds or fails (one `SET` of literals, `USE`): nothing can
    /// hold the session on the server that ran it, so any server of the
    /// session's cluster can check it. (The session also checks that the
    /// user variables it sets fit its cap: past it, they pin.)
    pub fn leaves_only_tracked_state(&self) -> bool {
        self.session_only
            && self.pin.is_none()
            && self.read_back.is_none()
            && self.read_back_user_vars.is_none()
            && self.pin_on_error.is_none()
    }

    /// One `SET` of literal session variables and nothing more: all it
    /// does is recorded in the session's variables, so a backend's clean OK
    /// to the same text may answer it again (see [`crate::learned_sets`]).
    pub fn is_plain_set(&self) -> bool {
        self.name == "COM_QUERY"
            && self.set_vars.is_some()
            && self.leaves_only_tracked_state()
            && self.new_schema.is_none()
            && self.drops_schema.is_none()
            && self.set_user_vars.is_none()
            && !self.reads_found_rows
            && !self.selects_into
            && !self.diagnostics
            && !self.sets_insert_id
            && self.unpin.is_none()
            && self.multi_statements.is_none()
            && self.lock_names == LockNames::None
            && !self.savepoint
            && !self.statement_vars
            && !self.drops_temporary
            && !self.several_statements
            && !self.may_keep_diagnostics
            && !self.compound
            && !self.xa
            && !self.may_run_stored_code
            && !self.tracks_state_itself
            && self.dynamic_vars.is_empty()
    }

    /// A forward with no side effects on the session.
    pub fn new(name: &'static str, expect: Option<Expect>) -> Self {
        Forward {
            expect,
            pin: None,
            new_schema: None,
            drops_schema: None,
            set_vars: None,
            read_back: None,
            set_user_vars: None,
            read_back_user_vars: None,
            reads_found_rows: false,
            reads_row_count: false,
            returning: false,
            pin_on_error: None,
            rule_pin: false,
            selects_into: false,
            diagnostics: false,
            keeps_found_rows: false,
            sets_insert_id: false,
            unpin: None,
            multi_statements: None,
            read_only: false,
            session_only: false,
            changes_no_data: false,
            needs_pinned: false,
            lock_names: LockNames::None,
            savepoint: false,
            opens_no_table: false,
            statement_vars: false,
            drops_temporary: false,
            several_statements: false,
            may_keep_diagnostics: false,
            compound: false,
            releases: false,
            may_release: false,
            may_end_session: false,
            sets_completion_type: false,
            found_rows_given: false,
            stateless_call: false,
            describes: None,
            xa: false,
            may_run_stored_code: false,
            tracks_state_itself: false,
            dynamic_vars: Vec::new(),
            changes_descriptions: false,
            rule_hostgroup: None,
            prepares_read: false,
            prepares_changes: false,
            executes_sql_prepared: false,
            name,
        }
    }
}

/// Plans a command from its payload (the first physical packet's payload
/// for commands over 16 MiB; only the head of such a command is looked at).
pub fn plan(payload: &[u8], caps: Capabilities) -> Plan {
    let cmd = match Command::parse(payload, caps) {
        Ok(c) => c,
        Err(funnel_protocol::ProtocolError::UnknownCommand(b)) => {
            return Plan::Reply(EngineError::UnknownCommand(b))
        }
        // Commands without a response get none, even when malformed.
        Err(_) if matches!(payload.first(), Some(0x18) | Some(0x19)) => return Plan::Ignore,
        // A change of user MariaDB cannot parse is a refused one
        // (`Session::change_user` answers it).
        Err(_) if payload.first() == Some(&0x11) => return Plan::ChangeUser,
        Err(e) => return Plan::Reply(EngineError::Malformed(e)),
    };
    match cmd {
        Command::Quit => Plan::Quit,
        Command::Ping => Plan::ReplyOk,
        Command::Query(sql) => {
            #[cfg(feature = "fault-injection")]
            if sql == crate::session::FAULT_PANIC_QUERY
                && std::env::var_os("FUNNEL_FAULT_INJECTION").is_some()
            {
                panic!("fault injection: a session panics");
            }
            if let Some(k) = parse_kill(sql) {
                return Plan::Kill(k);
            }
            let mentions = crate::session::pinning::Mentions::of(sql);
            if let Some(what) = crate::session::pinning::refusal_given(sql, &mentions) {
                return Plan::Reply(EngineError::Unsupported(what));
            }
            let dynamic_vars = if mentions.dynamic_sql() {
                match crate::session::dynamic_sql::run_time_text(sql) {
                    Ok(names) => names,
                    Err(what) => return Plan::Reply(EngineError::Unsupported(what)),
                }
            } else {
                Vec::new()
            };
            let effect = classify(sql);
            let mut f = Forward::new("COM_QUERY", Some(Expect::Results));
            f.pin = effect.pin;
            f.new_schema = effect.use_schema;
            f.drops_schema = effect.drops_schema;
            f.set_vars = effect.set_vars;
            f.read_back = effect.read_back;
            f.set_user_vars = effect.set_user_vars;
            f.read_back_user_vars = effect.read_back_user_vars;
            f.reads_found_rows = effect.reads_found_rows;
            f.pin_on_error = effect.pin_on_error;
            f.selects_into = effect.selects_into;
            f.diagnostics = effect.diagnostics;
            // A `HANDLER ... READ` returns rows but is no `SELECT`: the
            // server leaves FOUND_ROWS() as it was (soak seed 110180).
            // Statements after it count as in any other query.
            // Nor does `INSERT ... RETURNING`, whose rows are the inserted ones.
            let inserts_rows = crate::session::sql_lex::inserts_rows(sql);
            f.keeps_found_rows = (effect.diagnostics && shows_diagnostics(sql))
                || ((crate::session::sql_lex::first_word_is(sql, b"HANDLER") || inserts_rows)
                    && !effect.several_statements);
            // Every statement that sets the id pins (`previous_statement_info`,
            // or `user_variable` for `SET @x = LAST_INSERT_ID(5)`): the scan is
            // skipped for the rest, such as every plain read.
            f.sets_insert_id = effect.pin.is_some() && crate::session::rewrite::sets_last_insert_id(sql);
            f.unpin = effect.unpin;
            f.lock_names = effect.lock_names;
            f.savepoint = effect.savepoint;
            f.statement_vars = effect.statement_vars;
            f.drops_temporary = effect.drops_temporary;
            f.several_statements = effect.several_statements;
            f.returning = inserts_rows
                && !effect.several_statements
                && crate::session::sql_lex::mentions_returning(sql);
            f.may_keep_diagnostics = effect.may_keep_diagnostics;
            f.compound = effect.compound;
            f.releases = effect.releases;
            f.may_release = effect.may_release;
            f.may_end_session = effect.may_end_session;
            f.sets_completion_type = effect.pin == Some(PinReason::SessionVariable)
                && crate::session::sql_lex::mentions_word(sql, b"completion_type");
            f.xa = crate::session::sql_lex::first_word_is(sql, b"XA");
            f.may_run_stored_code = !effect.runs_no_stored_code;
            f.changes_descriptions = crate::session::sql_lex::may_change_descriptions(
                sql,
                effect.several_statements
                    || effect.compound
                    || mentions.dynamic_sql()
                    || effect.statement_vars,
            );
            // The texts of variables it runs (`PREPARE s FROM @v`) are
            // read before it is sent, and looked at then.
            f.prepares_changes = mentions.dynamic_sql() && f.changes_descriptions;
            f.executes_sql_prepared = crate::session::sql_lex::first_word_is(sql, b"EXECUTE")
                && !crate::session::sql_lex::mentions_word(sql, b"IMMEDIATE");
            f.dynamic_vars = dynamic_vars;
            f.tracks_state_itself = effect.pin == Some(PinReason::SessionVariable)
                && crate::session::pinning::mentions_state_tracking(sql);
            // A tracked SET opens no table, in several statements too
            // (`SET NAMES latin1; SET time_zone = ...`).
            f.opens_no_table =
                effect.opens_no_table || (f.pin.is_none() && (f.set_vars.is_some() || f.read_back.is_some()));
            f.read_only = effect.read_only && effect.pin.is_none();
            f.session_only = f.pin.is_none()
                && (f.set_vars.is_some()
                    || f.read_back.is_some()
                    || f.set_user_vars.is_some()
                    || f.read_back_user_vars.is_some()
                    || f.new_schema.is_some());
            Plan::Forward(f)
        }
        Command::InitDb(db) => {
            let mut f = Forward::new("COM_INIT_DB", Some(Expect::Status));
            f.new_schema = Some(db.to_vec());
            f.opens_no_table = true;
            f.session_only = true;
            Plan::Forward(f)
        }
        Command::FieldList { .. } => Plan::Forward(Forward::new("COM_FIELD_LIST", Some(Expect::FieldList))),
        Command::Statistics => Plan::Forward(Forward::new("COM_STATISTICS", Some(Expect::Statistics))),
        Command::SetOption(option) => {
            // Multi-statements on/off: tracked like a session variable.
            let mut f = Forward::new("COM_SET_OPTION", Some(Expect::Status));
            f.multi_statements = match option {
                MYSQL_OPTION_MULTI_STATEMENTS_ON => Some(true),
                MYSQL_OPTION_MULTI_STATEMENTS_OFF => Some(false),
                _ => None,
            };
            f.session_only = f.multi_statements.is_some();
            Plan::Forward(f)
        }
        Command::ResetConnection => Plan::ResetConnection,
        Command::StmtPrepare(_) => Plan::Statement(StatementCommand::Prepare),
        Command::StmtExecute { .. } => Plan::Statement(StatementCommand::Execute),
        // The server refuses a bulk execute from a client that did not
        // negotiate it, whatever it names; Funnel's backend connections
        // have it, so that is Funnel's to say.
        Command::StmtBulkExecute { .. }
            if caps.contains(Capabilities::MARIADB_CLIENT_STMT_BULK_OPERATIONS) =>
        {
            Plan::Statement(StatementCommand::BulkExecute)
        }
        Command::StmtBulkExecute { .. } => Plan::Reply(EngineError::NotInPreparedProtocol),
        Command::StmtFetch { .. } => Plan::Statement(StatementCommand::Fetch),
        Command::StmtReset(_) => Plan::Statement(StatementCommand::Reset),
        Command::StmtClose(_) => Plan::Statement(StatementCommand::Close),
        Command::StmtSendLongData { .. } => Plan::Statement(StatementCommand::LongData),
        Command::ChangeUser(_) => Plan::ChangeUser,
        Command::ProcessKill(id) => Plan::Kill(KillRequest {
            id: u64::from(id),
            query_only: false,
        }),
        // `FLUSH` by flag bits (`mariadb-admin refresh`, `flush-threads`):
        // the server-wide flushes the `FLUSH` statements forwarded as
        // queries run; one OK or ERR, and no session state.
        Command::Other(CommandCode::Refresh) => {
            Plan::Forward(Forward::new("COM_REFRESH", Some(Expect::Status)))
        }
        // `mariadb-admin debug`: the server writes its state to its error
        // log and answers EOF (or ERR without SUPER); no session state.
        Command::Other(CommandCode::Debug) => Plan::Forward(Forward::new("COM_DEBUG", Some(Expect::Status))),
        Command::Other(code) => Plan::Reply(EngineError::Unsupported(unsupported_name(code))),
    }
}

/// `SHOW WARNINGS` or `SHOW ERRORS` (not `SHOW COUNT(*) ...`, which the
/// server runs as a `SELECT`).
fn shows_diagnostics(sql: &[u8]) -> bool {
    use crate::session::sql_lex::{first_word_is, skip_leading_comments};
    let s = skip_leading_comments(sql);
    first_word_is(s, b"SHOW") && {
        let rest = &s[4..];
        first_word_is(rest, b"WARNINGS") || first_word_is(rest, b"ERRORS")
    }
}

fn unsupported_name(code: CommandCode) -> &'static str {
    code.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Capabilities = Capabilities(Capabilities::CLIENT_PROTOCOL_41.0);

    fn forward(payload: &[u8]) -> Forward {
        match plan(payload, CAPS) {
            Plan::Forward(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_plan_local_answers() {
        assert!(matches!(plan(&[0x01], CAPS), Plan::Quit));
        assert!(matches!(plan(&[0x0e], CAPS), Plan::ReplyOk));
        assert!(matches!(
            plan(&[0x42], CAPS),
            Plan::Reply(EngineError::UnknownCommand(0x42))
        ));
        assert!(matches!(plan(&[], CAPS), Plan::Reply(EngineError::Malformed(_))));
        assert!(
            matches!(plan(&[0x19, 1], CAPS), Plan::Ignore),
            "no response, even to garbage"
        );
        assert!(matches!(
            plan(&[0x12], CAPS),
            Plan::Reply(EngineError::Unsupported("COM_BINLOG_DUMP"))
        ));
    }

    #[test]
    fn session_plan_plain_sets() {
        let plain = |sql: &str| forward(format!("\x03{sql}").as_bytes()).is_plain_set();
        for sql in [
            "SET NAMES utf8mb4",
            "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
            "SET AUTOCOMMIT = 0",
            "set character_set_results = NULL",
            "SET SESSION sql_mode = 'STRICT_TRANS_TABLES', time_zone = '+00:00'",
        ] {
            assert!(plain(sql), "{sql}");
        }
        for sql in [
            "SET NAMES utf8mb4; SELECT 1",
            "SET NAMES latin1; SET time_zone = '+01:00'",
            "SET @a = 1",
            "SET NAMES utf8mb4, @a = 1",
            "SET time_zone = @@global.time_zone",
            "SET GLOBAL max_connections = 10",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET last_insert_id = 5",
            "SET session_track_state_change = ON",
            "SET sql_log_bin = 0",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
            "USE test",
            "SELECT 1",
            "/*!40101 SET NAMES utf8 */",
        ] {
            assert!(!plain(sql), "{sql}");
        }
        assert!(!forward(&[0x02, b't']).is_plain_set(), "COM_INIT_DB");
    }

    #[test]
    fn session_plan_forwards_com_refresh_and_com_debug() {
        // `mariadb-admin refresh`: LOG | TABLES | HOSTS | THREADS.
        let f = forward(&[0x07, 0x2e]);
        assert_eq!(f.name, "COM_REFRESH");
        assert!(f.pin.is_none() && !f.session_only);
        assert_eq!(forward(&[0x0d]).name, "COM_DEBUG");
    }

    #[test]
    fn session_plan_refuses_kill_forms_it_cannot_map() {
        assert!(matches!(plan(b"\x03KILL QUERY 5", CAPS), Plan::Kill(_)));
        for sql in [
            &b"\x03KILL (5)"[..],
            b"\x03kill /* c */ 5",
            b"\x03KILL QUERY ID 7",
            b"\x03KILL USER app",
            b"\x03 /* x */ KILL QUERY CONNECTION_ID()",
            b"\x03/*!KILL 5*/",
            b"\x03DO 0; KILL 5",
            b"\x03SET STATEMENT max_statement_time=0 FOR KILL 5",
        ] {
            assert!(
                matches!(plan(sql, CAPS), Plan::Reply(EngineError::Unsupported(_))),
                "{:?}",
                String::from_utf8_lossy(sql)
            );
        }
        assert!(matches!(
            plan(b"\x03SELECT killed FROM t", CAPS),
            Plan::Forward(_)
        ));
        assert!(matches!(plan(b"\x03KILLS", CAPS), Plan::Forward(_)));
    }

    #[test]
    fn session_plan_queries() {
        let f = forward(b"\x03SELECT 1");
        assert_eq!(
            (f.expect, f.pin, f.needs_pinned),
            (Some(Expect::Results), None, false)
        );
        let f = forward(b"\x03SET @a=1");
        assert_eq!(
            (f.pin, f.set_user_vars.clone()),
            (None, Some(vec![("a".into(), "1".into())]))
        );
        assert!(f.session_only && !f.changes_nothing());
        assert_eq!(
            forward(b"\x03SELECT 1 INTO @a").pin,
            Some(PinReason::UserVariable)
        );
        assert_eq!(forward(b"\x03USE db2").new_schema.as_deref(), Some(&b"db2"[..]));
        assert_eq!(forward(b"\x02db3").new_schema.as_deref(), Some(&b"db3"[..]));
    }

    #[test]
    fn session_plan_causal_writes_are_statements_that_may_change_data() {
        for sql in [
            &b"\x03INSERT INTO t VALUES (1)"[..],
            b"\x03CREATE TABLE t2 (a INT)",
            b"\x03CALL p()",
        ] {
            assert!(forward(sql).may_write_data(), "{}", String::from_utf8_lossy(sql));
        }
        for cmd in [
            &b"\x03SELECT 1"[..],
            b"\x03SET @a = 1",
            b"\x03SHOW WARNINGS",
            b"\x09",
            b"\x04t\0",
        ] {
            assert!(!forward(cmd).may_write_data(), "{:?}", cmd);
        }
    }

    #[test]
    fn session_plan_prepared_statements_go_to_the_registry() {
        let stmt = |p: &[u8]| match plan(p, CAPS) {
            Plan::Statement(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(stmt(b"\x16SELECT ?"), StatementCommand::Prepare);
        assert_eq!(
            stmt(&[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0]),
            StatementCommand::Execute
        );
        assert_eq!(stmt(&[0x19, 1, 0, 0, 0]), StatementCommand::Close);
        assert_eq!(stmt(&[0x1a, 1, 0, 0, 0]), StatementCommand::Reset);
        assert_eq!(stmt(&[0x18, 1, 0, 0, 0, 0, 0]), StatementCommand::LongData);
        assert_eq!(stmt(&[0x1c, 1, 0, 0, 0, 1, 0, 0, 0]), StatementCommand::Fetch);
    }
}
