//! What a text query does to session state that Funnel cannot carry from
//! one backend connection to another.
//!
//! Transactions are not decided here: the server's status flags on every OK
//! and EOF say whether one is open (covering `autocommit=0`, implicit
//! commits and XA). This classifier only finds state the flags do not show,
//! and it fails safe: anything it does not understand pins the client to its
//! backend connection for the rest of the session. Plain `SET`s of session
//! variables are tracked and replayed instead ([`super::variables`]).

use super::named_locks::{lock_names, LockNames};
use super::sql_lex::{
    self, first_word_is, skip_leading_comments, skip_quoted, skip_string_or_comment, skip_until, word_end,
};
use super::variables::{is_charset_group, is_on, parse_set, Assignment, SetEffect};

/// Why a client keeps its backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PinReason {
    /// A transaction is open (status flags).
    Transaction,
    /// `autocommit` is off (status flags).
    AutocommitOff,
    /// A `SET` of session state (system or user variables, `SET NAMES`, ...).
    SessionVariable,
    /// A user variable is read or written (`@x`).
    UserVariable,
    /// `CREATE TEMPORARY TABLE`.
    TemporaryTable,
    /// `LOCK TABLES`, `FLUSH TABLES WITH READ LOCK` or `... FOR EXPORT` (until
    /// `UNLOCK TABLES`).
    TableLock,
    /// `BACKUP STAGE` / `BACKUP LOCK` (for the session: `UNLOCK TABLES`
    /// does not end them).
    BackupLock,
    /// `GET_LOCK()` and friends (until `RELEASE_ALL_LOCKS()`).
    NamedLock,
    /// SQL `PREPARE` / `EXECUTE` / `DEALLOCATE`.
    SqlPrepare,
    /// Binary-protocol prepared statements (`COM_STMT_PREPARE`).
    PreparedStatement,
    /// `HANDLER` reads.
    Handler,
    /// `SQL_CALC_FOUND_ROWS`, `FOUND_ROWS()`, `LAST_INSERT_ID()`, `ROW_COUNT()`:
    /// answers about the previous statement on the same connection.
    PreviousStatementInfo,
    /// A stored procedure call (may change session state inside).
    StoredProcedure,
    /// An open cursor (`COM_STMT_EXECUTE` with a cursor).
    Cursor,
    /// A replication variable (`sql_log_bin`, `gtid_*`, ...): replaying it
    /// elsewhere could leak binlog-off writes to other clients.
    ReplicationVariable,
    /// `SET TRANSACTION ...` without a scope: the characteristics wait on
    /// the connection for its next transaction (until one has begun and
    /// ended there).
    NextTransaction,
    /// The server reported a session-state change the statement's text did
    /// not show (a stored function or trigger that sets a variable).
    UntrackedState,
    /// A query rule with `pin` matched a statement that ran here: the
    /// operator knows it leaves state Funnel cannot see.
    QueryRule,
    /// Something Funnel could not classify.
    Unknown,
}

impl PinReason {
    /// A short name for logs and statistics.
    pub fn as_str(self) -> &'static str {
        use PinReason::*;
        match self {
            Transaction => "transaction",
            AutocommitOff => "autocommit_off",
            SessionVariable => "session_variable",
            UserVariable => "user_variable",
            TemporaryTable => "temporary_table",
            TableLock => "table_lock",
            BackupLock => "backup_lock",
            NamedLock => "named_lock",
            SqlPrepare => "sql_prepare",
            PreparedStatement => "prepared_statement",
            Handler => "handler",
            PreviousStatementInfo => "previous_statement_info",
            StoredProcedure => "stored_procedure",
            Cursor => "cursor",
            ReplicationVariable => "replication_variable",
            NextTransaction => "next_transaction",
            UntrackedState => "untracked_state",
            QueryRule => "query_rule",
            Unknown => "unknown",
        }
    }
}

/// What Funnel learned from a query's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SqlEffect {
    /// The session must keep its backend connection from now on.
    pub pin: Option<PinReason>,
    /// `USE db`: the schema to record once the server says OK.
    pub use_schema: Option<Vec<u8>>,
    /// `DROP DATABASE db`: once the server says OK, a session whose
    /// schema this was has none (the server sets it to NULL).
    pub drops_schema: Option<Vec<u8>>,
    /// Session variables to record once the server says OK.
    pub set_vars: Option<Vec<Assignment>>,
    /// Session variables the statement sets to values only the server can
    /// compute: read back and recorded once the server says OK.
    pub read_back: Option<Vec<String>>,
    /// User variables set to literals (name, literal): recorded once the
    /// server says OK ([`super::user_vars`]).
    pub set_user_vars: Option<Vec<(String, String)>>,
    /// User variables set to values the server computes: read back and
    /// recorded once the server says OK.
    pub read_back_user_vars: Option<Vec<String>>,
    /// `SELECT SQL_CALC_FOUND_ROWS ...`: the count it leaves for
    /// `FOUND_ROWS()` is read back once the server says OK.
    pub reads_found_rows: bool,
    /// The session keeps its connection if the server answers with an
    /// error (some of the statements may have run).
    pub pin_on_error: Option<PinReason>,
    /// A `SELECT ... INTO` (see `Tokens::select_into`): it pins (for the
    /// variable or file), and the count of rows it selected, which Funnel
    /// does not see, is the server's to answer `FOUND_ROWS()` with.
    pub selects_into: bool,
    /// State this statement ends, once the server says OK.
    pub unpin: Option<PinReason>,
    /// The statement only reads: a single `SELECT` without `FOR UPDATE`,
    /// `LOCK IN SHARE MODE` / `FOR SHARE` or `INTO`.
    pub read_only: bool,
    /// A diagnostics statement (`SHOW WARNINGS`, `@@warning_count`, ...):
    /// it reports on the previous statement and leaves diagnostics alone.
    pub diagnostics: bool,
    /// The named locks it takes, releases or asks about.
    pub lock_names: LockNames,
    /// It names a savepoint (`SAVEPOINT`, `ROLLBACK TO SAVEPOINT`).
    pub savepoint: bool,
    /// Surely opens no table (`SET`, `DO`, `SELECT` without `FROM`): the
    /// server leaves the diagnostics area of the statement before as it
    /// was (only a statement that opens a table clears it).
    pub opens_no_table: bool,
    /// `SET STATEMENT ... FOR`, or a lock wait option (`NOWAIT`, `WAIT n`:
    /// `lock_wait_timeout` and `innodb_lock_wait_timeout` for the
    /// statement alone): the server reports the variables it sets
    /// for the statement as a session-state change, though none lasts.
    pub statement_vars: bool,
    /// `DROP TEMPORARY TABLE|SEQUENCE`: the server reports a session-state
    /// change, even when there was nothing to drop (`IF EXISTS`). The
    /// tables it can drop live only on a connection their client keeps
    /// (`CREATE TEMPORARY` pins), so nothing of another client is lost.
    pub drops_temporary: bool,
    /// The text holds more than one statement: whether one of them opened
    /// a table (which resets the diagnostics area) is not known.
    pub several_statements: bool,
    /// `CALL`, SQL `PREPARE` / `EXECUTE` / `DEALLOCATE`: whether it clears
    /// the diagnostics area depends on code Funnel does not see (the
    /// server clears it only when a statement opens a table: a procedure
    /// or prepared text that opens none, `SELECT 1`, leaves the warnings
    /// of the statement before, another client's too; soak seed 120300).
    pub may_keep_diagnostics: bool,
    /// Surely runs no stored code: one statement that opens no table (no
    /// trigger, no view) and calls no stored function (no `(` but an
    /// expression's and a listed built-in's, [`super::builtin_calls`]),
    /// such as `SET time_zone = 'x'`, `SELECT @x`, `SELECT NOW()`, `COMMIT`. When any other
    /// statement fails, stored code may have changed session state before
    /// the error, which no ERR packet reports (see `BackendConnection::
    /// needs_reset`).
    pub runs_no_stored_code: bool,
    /// A compound statement (see [`is_compound`]): like a `CALL`, its body
    /// may call a procedure (`BEGIN p; END` under `sql_mode=ORACLE`) that
    /// reads or makes a last insert id.
    pub compound: bool,
    /// A `COMMIT` or `ROLLBACK` with `RELEASE` (not `NO RELEASE`), one of
    /// its statements: after its OK the server closes the connection (see
    /// [`releases`]).
    pub releases: bool,
    /// A `COMMIT` or `ROLLBACK` that does not say `NO RELEASE` (nor `TO
    /// SAVEPOINT`), alone in its query: under `completion_type = RELEASE`
    /// the server closes the connection after its OK (see
    /// [`ends_transaction`]).
    pub may_release: bool,
    /// The server may end the session after this text's OK where no
    /// `RELEASE` Funnel reads says so: another reading of the text the
    /// server may make (in gbk, say: see [`escape_readings`]) has a
    /// `COMMIT` or `ROLLBACK` with `RELEASE`, or a `SET STATEMENT
    /// completion_type = ... FOR COMMIT` may make it one. Whether the
    /// server closed the connection is looked at after the OK (a ping).
    pub may_end_session: bool,
}

/// What executing a binary-protocol prepared statement does to the session.
///
/// The same as its text would do as a query, with one difference: a `SET`
/// cannot be tracked and replayed, because its values are parameters, so it
/// pins instead. Read once per distinct statement (the shard's registry
/// keeps it), not per execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecuteEffect {
    /// The session keeps its backend connection after an execute.
    pub pin: Option<PinReason>,
    /// A successful execute ends this pin reason (`UNLOCK TABLES`,
    /// `RELEASE_ALL_LOCKS()`).
    pub unpin: Option<PinReason>,
    /// It reads the last insert id and nothing else about the previous
    /// statement: the connection that runs it is first given the session's
    /// own id (the others pin the session at prepare).
    pub sets_last_insert_id: bool,
    /// It reads the last insert id, maybe beside other answers about the
    /// previous statement (then it pinned the session at prepare, on a
    /// connection whose id may be another client's until it is given one).
    pub reads_last_insert_id: bool,
    /// It names a savepoint (see [`SqlEffect::savepoint`]).
    pub savepoint: bool,
    /// Surely opens no table (see [`SqlEffect::opens_no_table`]).
    pub opens_no_table: bool,
    /// A `CALL` (see [`SqlEffect::may_keep_diagnostics`]).
    pub may_keep_diagnostics: bool,
    /// `SET STATEMENT ... FOR` (see [`SqlEffect::statement_vars`]).
    pub statement_vars: bool,
    /// `DROP TEMPORARY` (see [`SqlEffect::drops_temporary`]).
    pub drops_temporary: bool,
    /// Surely runs no stored code (see [`SqlEffect::runs_no_stored_code`]).
    pub runs_no_stored_code: bool,
    /// It sets `session_track_state_change` (and pins for it): the
    /// client's replies show the server's reports as sent from then on.
    pub tracks_state_itself: bool,
    /// `SELECT ... INTO` (see [`SqlEffect::selects_into`]).
    pub selects_into: bool,
    /// It may commit the open transaction (see
    /// [`super::lost_transaction::commits`]).
    pub commits: bool,
    /// It only reads (see [`SqlEffect::read_only`]) and pins nothing.
    pub read_only: bool,
    /// An `INSERT` or `REPLACE` that may return rows (`RETURNING`; its
    /// prepare describes no columns): see `Forward::returning`.
    pub returning: bool,
    /// It may be a `CALL`, one Funnel reads or one in text it cannot read
    /// (an executable comment): its result sets are the procedure's,
    /// whose column definitions the server sends at every execute.
    pub may_call: bool,
    /// It may change what prepares describe (see
    /// [`sql_lex::may_change_descriptions`]).
    pub changes_descriptions: bool,
    /// `COMMIT RELEASE` or `ROLLBACK RELEASE` (see [`SqlEffect::releases`]).
    pub releases: bool,
    /// See [`SqlEffect::may_end_session`].
    pub may_end_session: bool,
}

impl ExecuteEffect {
    /// The effect of executing the prepared statement `sql`.
    pub fn of(sql: &[u8]) -> ExecuteEffect {
        let e = classify(sql);
        let pin = e
            .pin
            .or_else(|| (e.set_vars.is_some() || e.read_back.is_some()).then_some(PinReason::SessionVariable))
            .or_else(|| {
                (e.set_user_vars.is_some() || e.read_back_user_vars.is_some())
                    .then_some(PinReason::UserVariable)
            })
            .or_else(|| e.reads_found_rows.then_some(PinReason::PreviousStatementInfo))
            .or_else(|| e.use_schema.is_some().then_some(PinReason::Unknown));
        ExecuteEffect {
            pin,
            unpin: e.unpin,
            savepoint: e.savepoint,
            opens_no_table: e.opens_no_table,
            may_keep_diagnostics: e.may_keep_diagnostics,
            statement_vars: e.statement_vars,
            drops_temporary: e.drops_temporary,
            runs_no_stored_code: e.runs_no_stored_code,
            selects_into: e.selects_into,
            commits: super::lost_transaction::commits(sql),
            tracks_state_itself: pin == Some(PinReason::SessionVariable) && mentions_state_tracking(sql),
            sets_last_insert_id: super::rewrite::mentions_previous_statement(sql)
                && super::rewrite::reads_only_last_insert_id(sql),
            reads_last_insert_id: super::rewrite::mentions_last_insert_id(sql),
            read_only: e.read_only && pin.is_none(),
            returning: super::sql_lex::inserts_rows(sql) && super::sql_lex::mentions_returning(sql),
            may_call: pin == Some(PinReason::StoredProcedure)
                || (pin == Some(PinReason::Unknown) && super::sql_lex::mentions_word(sql, b"CALL")),
            changes_descriptions: sql_lex::may_change_descriptions(
                sql,
                e.several_statements || e.compound || Mentions::of(sql).dynamic_sql() || e.statement_vars,
            ),
            releases: e.releases,
            may_end_session: e.may_end_session,
        }
    }
}

/// Classifies a `COM_QUERY` text.
pub fn classify(sql: &[u8]) -> SqlEffect {
    let mut effect = classify_as_read(sql);
    if matches!(effect.lock_names, LockNames::Literal { .. })
        && escape_readings(sql)
            .skip(1)
            .any(|other| lock_names(&other) != effect.lock_names)
    {
        // Another reading of the text takes other locks (in gbk
        // `SELECT GET_LOCK('a', 0), 1 AS b\xad\x60, GET_LOCK('c', 0) --
        // \x60` takes `c` too): which the session holds is not known, so
        // no check after a `RELEASE_LOCK` ends its pin.
        effect.lock_names = LockNames::Opaque;
    }
    let brackets = memchr::memchr(b'[', sql).is_some();
    if effect.pin.is_some() || !(brackets || sql.contains(&b'\\') || sql_lex::multibyte_punctuation(sql)) {
        return effect;
    }
    // Where a backslash escapes depends on the session, which is not known
    // here: under `ANSI_QUOTES` `"x\"` is a name ending at its second quote,
    // and in sjis, gbk or big5 a two-byte character may end in the byte of
    // `\` (`'\x95\x5c'` is one character in quotes). What follows may be
    // a write to a user variable (`SELECT 1 AS "x\", @v := 1 -- "`) or
    // anything else that pins: the stricter reading wins. (Under
    // `NO_BACKSLASH_ESCAPES` such text is unreadable: see
    // `Session::literal_backslashes`.)
    let user_vars = |e: &SqlEffect| {
        let set = e.set_user_vars.iter().flatten().map(|(n, _)| n);
        set.chain(e.read_back_user_vars.iter().flatten())
            .cloned()
            .collect::<Vec<_>>()
    };
    // A reading the same as the usual one (no backslash in a `"` name)
    // is not classified again.
    // And under `sql_mode=MSSQL`, where `[...]` is a quoted name that a
    // quote inside does not open a string in.
    let readings = [
        sql.contains(&b'"')
            .then(|| sql_lex::ansi_quotes_form(sql))
            .flatten(),
        sql_lex::multibyte_reading(sql),
        brackets.then(|| sql_lex::brackets_form(sql)).flatten(),
    ];
    for other in readings.into_iter().flatten() {
        let alt = classify_as_read(&other);
        // `SELECT 1 AS a\xad\x60; COMMIT RELEASE -- \x60` ends the
        // session in gbk.
        effect.may_end_session |= alt.releases && !effect.releases;
        // Stored code or a table another reading sees counts too:
        // `SELECT 1 AS [a'b], f() -- ']` calls `f` under `MSSQL`, where
        // the usual reading sees a string.
        effect.runs_no_stored_code &= alt.runs_no_stored_code;
        effect.opens_no_table &= alt.opens_no_table;
        let pin = alt
            .pin
            .or_else(|| (user_vars(&alt) != user_vars(&effect)).then_some(PinReason::UserVariable));
        if pin.is_some() {
            // The named locks that reading takes are the session's to
            // hold: the check after a `RELEASE_LOCK` asks the server about
            // each, and the pin lasts while one is held.
            let lock_names = match (effect.lock_names, alt.lock_names) {
                (usual, LockNames::None) => usual,
                (LockNames::None, other) => other,
                (usual, other) if usual == other => usual,
                _ => LockNames::Opaque,
            };
            return SqlEffect {
                pin,
                lock_names,
                ..effect
            };
        }
    }
    effect
}

/// Classifies `sql` read with backslash escapes in both kinds of string.
fn classify_as_read(sql: &[u8]) -> SqlEffect {
    // Every query is classified: the word list is reused (one per core
    // thread) instead of allocated per query.
    let tokens = Tokens::scan(sql, WORDS.take());
    let mut effect = classify_tokens(sql, &tokens);
    effect.savepoint = tokens.has(b"SAVEPOINT");
    effect.statement_vars |= lock_wait_option(sql, &tokens);
    effect.drops_temporary = tokens.statements == 1
        && tokens.words.first().is_some_and(|w| w.as_slice() == b"DROP")
        && tokens.words.get(1).is_some_and(|w| w.as_slice() == b"TEMPORARY");
    effect.opens_no_table = tokens.statements == 1
        && (!tokens.table_from || from_dual_only(&tokens))
        && leaves_diagnostics(&tokens.words);
    effect.several_statements = tokens.statements > 1;
    effect.may_keep_diagnostics = runs_unseen_statement(&tokens.words);
    effect.releases = (0..tokens.statements).any(|k| releases(statement_run(tokens.statement_words(k))));
    effect.may_release = tokens.statements == 1
        && ends_transaction(statement_run(&tokens.words))
        && !tokens
            .words
            .windows(2)
            .any(|w| w[0].as_slice() == b"NO" && w[1].as_slice() == b"RELEASE");
    effect.may_end_session =
        (0..tokens.statements).any(|k| released_by_statement_variable(tokens.statement_words(k)));
    // Checked only for what opens no table (not for a read of a table,
    // such as every point select): a `SET STATEMENT ... FOR` may wrap any
    // statement, a comment Funnel reads otherwise than the server may hide
    // one, and a backslash may end a string elsewhere than this reading
    // says (`SELECT "x\" FROM v -- "` under `ANSI_QUOTES`), as a byte
    // above ASCII may make one character with the punctuation after it
    // (`sql_lex::multibyte_punctuation`).
    effect.runs_no_stored_code = effect.opens_no_table
        && !tokens.executable_comment
        && !tokens.ambiguous_comment
        && tokens.words.get(1).is_none_or(|w| w.as_slice() != b"STATEMENT")
        && !tokens.may_call_stored
        && !sql.contains(&b'\\')
        && !sql_lex::multibyte_punctuation(sql);
    let mut words = tokens.words;
    if words.capacity() <= MAX_KEPT_WORDS {
        words.clear();
        WORDS.set(words);
    }
    effect
}

/// `NOWAIT` or `WAIT n` (`SELECT ... FOR UPDATE`, `LOCK TABLES`, `ALTER
/// TABLE`, ...): the server sets the lock wait timeouts for the statement
/// alone. (A column named `nowait` counts too: that only keeps a report the
/// same statement's stored code could make from pinning.)
fn lock_wait_option(sql: &[u8], tokens: &Tokens) -> bool {
    tokens.has(b"NOWAIT") || (tokens.has(b"WAIT") && wait_then_number(sql))
}

/// `WAIT` as a word followed by blanks and a number.
fn wait_then_number(sql: &[u8]) -> bool {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    sql.windows(4).enumerate().any(|(i, w)| {
        if !w.eq_ignore_ascii_case(b"WAIT") || (i > 0 && ident(sql[i - 1])) {
            return false;
        }
        let rest = &sql[i + 4..];
        let blanks = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
        blanks > 0 && rest.get(blanks).is_some_and(u8::is_ascii_digit)
    })
}

/// The statement's first words name one that opens no table: `SET`,
/// `DO`, `SELECT` (without `FROM`, checked by the caller), and transaction
/// control (`XA` statements included: the server shows an error from
/// inside an XA transaction after its `XA END` and `XA COMMIT`, soak seed
/// 150344), `UNLOCK TABLES` and `USE`, which leave the diagnostics area
/// alone too.
fn leaves_diagnostics(words: &[Word]) -> bool {
    let first = words.first().map_or(&b""[..], |w| w.as_slice());
    let second = words.get(1).map_or(&b""[..], |w| w.as_slice());
    match first {
        b"SET" | b"DO" | b"SELECT" | b"COMMIT" | b"ROLLBACK" | b"SAVEPOINT" | b"USE" | b"XA" => true,
        b"START" => second == b"TRANSACTION",
        b"RELEASE" => second == b"SAVEPOINT",
        b"UNLOCK" => second == b"TABLES",
        // Not `BEGIN NOT ATOMIC`, a compound statement.
        b"BEGIN" => matches!(second, b"" | b"WORK"),
        _ => false,
    }
}

/// `COMMIT [WORK] [AND [NO] CHAIN] RELEASE` or the same `ROLLBACK` (not
/// `ROLLBACK TO SAVEPOINT`, and not `NO RELEASE`): the server ends the
/// session after its OK and closes the connection, as it would a client's
/// own (`completion_type = RELEASE`, which makes every `COMMIT` one, pins
/// instead: [`UNREPLAYABLE_VARIABLES`]).
fn releases(words: &[Word]) -> bool {
    if !ends_transaction(words) {
        return false;
    }
    // `AND CHAIN RELEASE` is a syntax error (checked on 10.11): the
    // connection stays.
    let chains = words
        .iter()
        .position(|w| w.as_slice() == b"CHAIN")
        .is_some_and(|at| words[at - 1].as_slice() != b"NO");
    !chains
        && words
            .iter()
            .position(|w| w.as_slice() == b"RELEASE")
            .is_some_and(|at| words[at - 1].as_slice() != b"NO")
}

/// The statement `words` run: the one after `FOR` in `SET STATEMENT ...
/// FOR stmt`, else `words` themselves.
fn statement_run(words: &[Word]) -> &[Word] {
    let is = |i: usize, w: &[u8]| words.get(i).is_some_and(|x| x.as_slice() == w);
    if is(0, b"SET") && is(1, b"STATEMENT") {
        if let Some(at) = words.iter().position(|w| w.as_slice() == b"FOR") {
            return &words[at + 1..];
        }
    }
    words
}

/// `SET STATEMENT completion_type = ... FOR COMMIT` (or `ROLLBACK`, not
/// `NO RELEASE`): under `RELEASE` (2) the server ends the session after
/// its OK and closes the connection (checked on 10.11); the value may be
/// any expression, so a ping after it tells.
fn released_by_statement_variable(words: &[Word]) -> bool {
    let run = statement_run(words);
    let vars = &words[..words.len() - run.len()];
    !vars.is_empty()
        && vars.iter().any(|w| w.as_slice() == b"COMPLETION_TYPE")
        && ends_transaction(run)
        && !run
            .windows(2)
            .any(|w| w[0].as_slice() == b"NO" && w[1].as_slice() == b"RELEASE")
}

/// A `COMMIT` or a `ROLLBACK` that is not `ROLLBACK TO SAVEPOINT`: the
/// statements `completion_type` applies to.
fn ends_transaction(words: &[Word]) -> bool {
    let first = words.first().map_or(&b""[..], |w| w.as_slice());
    matches!(first, b"COMMIT" | b"ROLLBACK") && !words.iter().any(|w| w.as_slice() == b"TO")
}

/// `CALL`, `PREPARE`, `EXECUTE [IMMEDIATE]`, `DEALLOCATE PREPARE` and
/// `DROP PREPARE`: the statement runs (or names) a statement Funnel does
/// not see, and opens a table only if that one does. So does a compound
/// statement outside stored code (`BEGIN NOT ATOMIC ... END`, under
/// `sql_mode=ORACLE` `BEGIN p; END` and `DECLARE ... BEGIN ... END`, `IF`,
/// `CASE`, `LOOP`, `WHILE`, `REPEAT`, `FOR`): `BEGIN p; END` of a procedure
/// that opens no table leaves the error before it (soak seed 401425).
fn runs_unseen_statement(words: &[Word]) -> bool {
    let first = words.first().map_or(&b""[..], |w| w.as_slice());
    let second = words.get(1).map_or(&b""[..], |w| w.as_slice());
    matches!(
        first,
        b"CALL"
            | b"PREPARE"
            | b"EXECUTE"
            | b"DEALLOCATE"
            | b"DECLARE"
            | b"IF"
            | b"CASE"
            | b"LOOP"
            | b"WHILE"
            | b"REPEAT"
            | b"FOR"
    ) || (first == b"DROP" && second == b"PREPARE")
        || (first == b"BEGIN" && !matches!(second, b"" | b"WORK"))
}

thread_local! {
    static WORDS: std::cell::Cell<Vec<Word>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A word list grown past this by a huge statement is not kept.
const MAX_KEPT_WORDS: usize = 4096;

fn classify_tokens(sql: &[u8], tokens: &Tokens) -> SqlEffect {
    let effect = SqlEffect {
        selects_into: tokens.select_into,
        ..classify_statement(sql, tokens)
    };
    if !tokens.has(b"SQL_CALC_FOUND_ROWS") {
        return effect;
    }
    // The count it leaves for FOUND_ROWS() is read back at once where that
    // is all it leaves (one plain SELECT), so the session stays shareable;
    // otherwise the server answers FOUND_ROWS() from then on.
    if tokens.statements == 1 && effect.read_only && effect.pin.is_none() {
        SqlEffect {
            reads_found_rows: true,
            ..effect
        }
    } else {
        pin(PinReason::PreviousStatementInfo)
    }
}

fn classify_statement(sql: &[u8], tokens: &Tokens) -> SqlEffect {
    if tokens.executable_comment || tokens.ambiguous_comment {
        return pin(PinReason::Unknown);
    }
    let mut words = tokens.words.iter().map(|w| w.as_slice());
    let first = words.next().unwrap_or(b"");
    let second = words.next().unwrap_or(b"");
    if tokens.statements == 1 && is_diagnostics(first, second, tokens) {
        return SqlEffect {
            diagnostics: true,
            // `GET DIAGNOSTICS @n = NUMBER` also writes a user variable.
            pin: tokens.user_variable.then_some(PinReason::UserVariable),
            ..SqlEffect::default()
        };
    }
    match first {
        b"USE" if tokens.statements == 1 => {
            return match parse_use(sql) {
                Some(db) => SqlEffect {
                    use_schema: Some(db),
                    ..SqlEffect::default()
                },
                None => pin(PinReason::Unknown),
            }
        }
        b"SET" if tokens.statements == 1 && second == b"STATEMENT" => {
            // `SET STATEMENT var = value, ... FOR stmt`: the variables last
            // for that one statement, so only the statement itself counts.
            // Not the recorders, whose record outlives the statement
            // (see `enables_trace`, `PIN_WHEN_ON`).
            if tokens.has(b"OPTIMIZER_TRACE") || tokens.has(b"PROFILING") {
                return pin(PinReason::SessionVariable);
            }
            return match set_statement_inner(sql) {
                Some(inner) if !first_word_is(inner, b"SET") => SqlEffect {
                    statement_vars: true,
                    ..classify(inner)
                },
                _ => pin(PinReason::SessionVariable),
            };
        }
        b"SET"
            if tokens.statements > 1
                && tokens
                    .statement_starts
                    .iter()
                    .all(|&i| tokens.words.get(i).is_some_and(|w| w.as_slice() == b"SET")) =>
        {
            // `SET a = 1; SET b = 2`: tracked like one SET, but where the
            // server stops at an error the ones before it did apply, and
            // Funnel does not know which: the session pins then.
            let effect = classify_statement_set(sql, tokens);
            return SqlEffect {
                pin_on_error: Some(PinReason::SessionVariable),
                ..effect
            };
        }
        b"SET" if tokens.statements == 1 => return classify_statement_set(sql, tokens),
        // `SET STATEMENT ... FOR BEGIN p; END` (ORACLE): a compound
        // statement, split by its `;`s (soak seed 300006).
        b"SET"
            if second == b"STATEMENT"
                && !tokens.has(b"OPTIMIZER_TRACE")
                && !tokens.has(b"PROFILING")
                && set_statement_inner(sql).is_some_and(|inner| classify(inner).compound) =>
        {
            return SqlEffect {
                statement_vars: true,
                ..compound()
            };
        }
        b"SET" => return pin(PinReason::SessionVariable),
        b"PREPARE" | b"EXECUTE" | b"DEALLOCATE" => return pin(PinReason::SqlPrepare),
        b"LOCK" => return pin(PinReason::TableLock),
        b"UNLOCK" if tokens.statements == 1 && second == b"TABLES" => {
            return SqlEffect {
                unpin: Some(PinReason::TableLock),
                ..SqlEffect::default()
            }
        }
        b"HANDLER" => return pin(PinReason::Handler),
        b"DROP" if tokens.statements == 1 && matches!(second, b"DATABASE" | b"SCHEMA") => {
            return SqlEffect {
                drops_schema: parse_drop_database(sql),
                ..SqlEffect::default()
            };
        }
        b"CALL" => return pin(PinReason::StoredProcedure),
        // `CREATE [OR REPLACE] TEMPORARY TABLE|SEQUENCE`.
        b"CREATE" if tokens.words.iter().take(4).any(|w| w.as_slice() == b"TEMPORARY") => {
            return pin(PinReason::TemporaryTable)
        }
        // `FOR EXPORT` read-locks its tables until UNLOCK TABLES too.
        b"FLUSH" if tokens.has(b"LOCK") || tokens.has(b"EXPORT") => return pin(PinReason::TableLock),
        // Backup stages and backup locks belong to the server connection.
        b"BACKUP" => return pin(PinReason::BackupLock),
        // A compound statement may do anything inside; only its first
        // word is seen here.
        _ if is_compound(tokens.statement_words(0)) => return compound(),
        _ => {}
    }
    // Reading a user variable needs nothing: the connection is given the
    // client's before the command. Writing one other than by a `SET` pins.
    if tokens.user_var_write {
        return pin(PinReason::UserVariable);
    }
    if tokens.statements == 1 && tokens.has(b"RELEASE_ALL_LOCKS") && !tokens.has(b"GET_LOCK") {
        // Every named lock is gone once this succeeds.
        return SqlEffect {
            unpin: Some(PinReason::NamedLock),
            ..SqlEffect::default()
        };
    }
    if tokens.has(b"GET_LOCK") || tokens.has(b"RELEASE_LOCK") || tokens.has(b"IS_USED_LOCK") {
        // A lock function the scan could not place (a backquoted name, say)
        // counts as one whose name is unknown.
        let names = match lock_names(sql) {
            LockNames::None => LockNames::Opaque,
            names => names,
        };
        return SqlEffect {
            lock_names: names,
            ..pin(PinReason::NamedLock)
        };
    }
    if uses_sequence_value(tokens) {
        return pin(PinReason::PreviousStatementInfo);
    }
    // Plain reads of LAST_INSERT_ID() and friends are rewritten to literals
    // (session::rewrite); what remains is connection state.
    if setter_call(sql, b"LAST_INSERT_ID") {
        return pin(PinReason::PreviousStatementInfo);
    }
    if tokens.statements > 1 {
        // A later statement of a multi-statement may do any of the above.
        // (A query may start with no word at all: `'x'; SELECT 1`.)
        for k in 1..tokens.statements {
            let words = tokens.statement_words(k);
            match words.first().map(Word::as_slice) {
                // A procedure gets what a first `CALL` gets (the client's
                // last insert id and count there first, see
                // `Forward::runs_procedure`).
                Some(b"CALL") => return pin(PinReason::StoredProcedure),
                Some(b"SET" | b"PREPARE" | b"EXECUTE" | b"LOCK" | b"HANDLER" | b"USE" | b"DEALLOCATE") => {
                    return pin(PinReason::SessionVariable)
                }
                Some(b"FLUSH") => return pin(PinReason::TableLock),
                Some(b"BACKUP") => return pin(PinReason::BackupLock),
                _ if is_compound(words) => return compound(),
                _ => {}
            }
        }
        if tokens.has(b"TEMPORARY") {
            return pin(PinReason::TemporaryTable);
        }
    }
    // Nothing pinned it: a single plain SELECT only reads.
    SqlEffect {
        // Named locks are the primary's: `IS_FREE_LOCK()` on a replica
        // answers about nobody's locks.
        read_only: first == b"SELECT"
            && tokens.statements == 1
            && !tokens.has(b"UPDATE")
            && !tokens.has(b"SHARE")
            && !tokens.has(b"INTO")
            && !tokens.has(b"IS_FREE_LOCK")
            && !tokens.executable_comment,
        ..SqlEffect::default()
    }
}

/// What a compound statement does: it pins (`unknown`), and may call
/// procedures.
fn compound() -> SqlEffect {
    SqlEffect {
        compound: true,
        ..pin(PinReason::Unknown)
    }
}

/// True when a statement (its words) is a compound statement, whose body
/// the server runs as it stands: `IF`, `CASE`, loops, `BEGIN` followed by
/// more than `WORK` (`BEGIN NOT ATOMIC ... END`, and under `sql_mode=ORACLE`
/// every `BEGIN ... END`: there `BEGIN` never starts a transaction) and
/// `DECLARE ... BEGIN ... END` (ORACLE). Its body may call a procedure
/// without `CALL` (`BEGIN p; END` under ORACLE), prepare a statement or
/// set a variable in ways the server does not report, and is split by the
/// `;`s inside it, so only its first word names a statement for sure.
fn is_compound(words: &[Word]) -> bool {
    match words.first().map(Word::as_slice) {
        Some(b"BEGIN") => !(words.len() == 1 || (words.len() == 2 && words[1].as_slice() == b"WORK")),
        Some(b"IF" | b"CASE" | b"WHILE" | b"LOOP" | b"REPEAT" | b"FOR" | b"DECLARE") => true,
        _ => false,
    }
}

/// Session variables a `SET` cannot carry to another connection: they have
/// no `DEFAULT` to restore them with (`rand_seed*`, and `last_insert_id` /
/// `identity`, which are also what `LAST_INSERT_ID()` answers), or they
/// change what the server does with the connection (`completion_type =
/// RELEASE` closes it at `COMMIT`; `session_track_state_change` off would
/// hide from Funnel the state changes it must see on every connection).
/// Setting one pins.
const UNREPLAYABLE_VARIABLES: [&str; 6] = [
    "rand_seed1",
    "rand_seed2",
    "last_insert_id",
    "identity",
    "completion_type",
    STATE_TRACKING_VARIABLE,
];

/// The server variable Funnel keeps on for its own use on every backend
/// connection (see `BackendConnection::enable_state_tracking`).
pub const STATE_TRACKING_VARIABLE: &str = "session_track_state_change";

/// True when `sql` names [`STATE_TRACKING_VARIABLE`] (only looked for in
/// statements that already pin for a variable).
pub fn mentions_state_tracking(sql: &[u8]) -> bool {
    let name = STATE_TRACKING_VARIABLE.as_bytes();
    sql.windows(name.len()).any(|w| w.eq_ignore_ascii_case(name))
}

/// A `SET` (or several, each its own statement): tracked, read back,
/// or pinned.
fn classify_statement_set(sql: &[u8], tokens: &Tokens) -> SqlEffect {
    match parse_set(sql) {
        Some(SetEffect::Session(a)) => {
            let (a, user) = split_user_vars(a);
            with_user_vars(session_set(a, None), user, Vec::new())
        }
        Some(SetEffect::Computed {
            assignments,
            read_back,
        }) => {
            let (a, user) = split_user_vars(assignments);
            let (user_read_back, read_back): (Vec<String>, Vec<String>) =
                read_back.into_iter().partition(|n| n.starts_with('@'));
            if !read_back.iter().all(|n| can_read_back(n)) {
                return pin(PinReason::SessionVariable);
            }
            let read_back = (!read_back.is_empty()).then_some(read_back);
            with_user_vars(session_set(a, read_back), user, user_read_back)
        }
        Some(SetEffect::Global) => SqlEffect::default(),
        Some(SetEffect::NextTransaction) => pin(PinReason::NextTransaction),
        None if tokens.user_variable => pin(PinReason::UserVariable),
        None => pin(PinReason::SessionVariable),
    }
}

/// The user variable assignments (`@x`, see [`super::user_vars`]) apart
/// from the session variable ones, as (name without `@`, literal).
fn split_user_vars(a: Vec<Assignment>) -> (Vec<Assignment>, Vec<(String, String)>) {
    let (user, session): (Vec<Assignment>, Vec<Assignment>) =
        a.into_iter().partition(|a| a.name.starts_with('@'));
    let user = user
        .into_iter()
        .map(|a| (a.name[1..].to_string(), a.value.unwrap_or_else(|| "NULL".into())))
        .collect();
    (session, user)
}

/// `effect` with the user variables its `SET` assigns: recorded (or read
/// back) even when the `SET` pins for another reason that may end later
/// (a replication variable back to its default), so the connection it
/// leaves never carries a value Funnel does not know.
fn with_user_vars(effect: SqlEffect, set: Vec<(String, String)>, read_back: Vec<String>) -> SqlEffect {
    SqlEffect {
        set_user_vars: (!set.is_empty()).then_some(set),
        read_back_user_vars: (!read_back.is_empty())
            .then(|| read_back.into_iter().map(|n| n[1..].to_string()).collect()),
        ..effect
    }
}

/// A session `SET`: its literal assignments are replayed, the values in
/// `read_back` read back after it ran; some variables pin instead.
fn session_set(a: Vec<Assignment>, read_back: Option<Vec<String>>) -> SqlEffect {
    let unreplayable = a.iter().any(|a| {
        UNREPLAYABLE_VARIABLES.contains(&a.name.as_str())
            || (a.value.is_none() && is_charset_group(&a.name))
            || (PIN_WHEN_ON.contains(&a.name.as_str()) && a.value.as_deref().is_some_and(is_on))
            || (a.name == "optimizer_trace" && a.value.as_deref().is_some_and(enables_trace))
    });
    if unreplayable {
        // LAST_INSERT_ID() answers with these (`WHERE id IS NULL` too,
        // under sql_auto_is_null): the server must.
        let id = a.iter().any(|a| {
            matches!(a.name.as_str(), "last_insert_id" | "identity")
                || (a.name == "sql_auto_is_null" && a.value.as_deref().is_some_and(is_on))
        });
        return pin(if id {
            PinReason::PreviousStatementInfo
        } else {
            PinReason::SessionVariable
        });
    }
    SqlEffect {
        // Setting one away from its default pins; restoring does not.
        pin: a
            .iter()
            .any(|a| {
                REPLICATION_VARIABLES.contains(&a.name.as_str())
                    && a.value
                        .as_deref()
                        .is_some_and(|v| !(a.name == "sql_log_bin" && is_on(v)))
            })
            .then_some(PinReason::ReplicationVariable),
        set_vars: (!a.is_empty()).then_some(a),
        read_back,
        ..SqlEffect::default()
    }
}

/// True when a computed value of `name` can be read back and replayed as a
/// literal: not for the variables that pin whatever their value, nor for
/// those replayed with rules of their own (the character set group, merged
/// flag lists).
fn can_read_back(name: &str) -> bool {
    !(UNREPLAYABLE_VARIABLES.contains(&name)
        || PIN_WHEN_ON.contains(&name)
        || REPLICATION_VARIABLES.contains(&name)
        || is_charset_group(name)
        || matches!(name, "optimizer_switch" | "optimizer_trace"))
}

/// Session variables that pin once switched on: `profiling` keeps a
/// history of the connection's statements, which every later client of the
/// connection would read (`SHOW PROFILES`), and `sql_auto_is_null` makes
/// `WHERE id IS NULL` read the connection's last insert id. Switching them
/// off, as frameworks do at connect, is replayed.
const PIN_WHEN_ON: [&str; 2] = ["profiling", "sql_auto_is_null"];

/// True when an `optimizer_trace` value switches tracing on: the trace of
/// the connection's last statement stays readable
/// (`information_schema.OPTIMIZER_TRACE`) by every later client of the
/// connection, until a reset deletes it. Pins, as [`PIN_WHEN_ON`].
fn enables_trace(v: &str) -> bool {
    v.trim_matches(|c| c == '\'' || c == '"')
        .split(',')
        .any(|flag| flag.trim().eq_ignore_ascii_case("enabled=on"))
}

/// Session variables that steer replication: they pin instead of being
/// replayed, so a failed reset can never leave another client's writes out
/// of the binary log.
pub const REPLICATION_VARIABLES: [&str; 9] = [
    "sql_log_bin",
    "gtid_domain_id",
    "gtid_seq_no",
    "gtid_next",
    "server_id",
    "skip_replication",
    "pseudo_thread_id",
    "insert_id",
    "timestamp",
];

/// The statement's only `FROM` is its end, `FROM DUAL` (`SELECT 1 FROM
/// DUAL`, as `sql_mode=ORACLE` code writes it): it reads no table, and the
/// server leaves the diagnostics area as it was (soak seed 300936).
fn from_dual_only(tokens: &Tokens) -> bool {
    let froms = tokens.words.iter().filter(|w| w.as_slice() == b"FROM").count();
    froms == 1 && ends_from_dual(tokens)
}

/// The words end in `FROM DUAL` as the server reads it: `DUAL` right after
/// the `FROM` (blanks and comments between), unqualified. After a `.` the
/// word is a table's name (`` FROM `d`.dual ``).
fn ends_from_dual(tokens: &Tokens) -> bool {
    tokens.dual_after_from
        && matches!(&tokens.words[..], [.., from, dual] if from.as_slice() == b"FROM" && dual.as_slice() == b"DUAL")
}

/// `SHOW WARNINGS`, `SHOW ERRORS`, `SHOW COUNT(*) WARNINGS`, `GET
/// DIAGNOSTICS` and `SELECT @@warning_count` / `@@error_count` (also `FROM
/// DUAL`, as `sql_mode=ORACLE` code writes it: no table is read).
fn is_diagnostics(first: &[u8], second: &[u8], tokens: &Tokens) -> bool {
    match first {
        b"SHOW" => matches!(second, b"WARNINGS" | b"ERRORS" | b"COUNT"),
        b"GET" => second == b"DIAGNOSTICS" || tokens.has(b"DIAGNOSTICS"),
        // `SELECT @@[session.]warning_count [AS name], ... [FROM DUAL]`
        b"SELECT" => {
            let mut items = &tokens.words[1..];
            if ends_from_dual(tokens) {
                items = &items[..items.len() - 2];
            }
            let mut counts = 0;
            let mut alias_next = false;
            let only = items.iter().all(|w| {
                let w = w.as_slice();
                if std::mem::take(&mut alias_next) {
                    return true;
                }
                match w {
                    b"WARNING_COUNT" | b"ERROR_COUNT" => {
                        counts += 1;
                        true
                    }
                    b"AS" => {
                        alias_next = true;
                        true
                    }
                    b"SESSION" | b"LOCAL" => true,
                    _ => false,
                }
            });
            only && counts > 0 && !tokens.user_variable
        }
        _ => false,
    }
}

/// The statement after the first top-level `FOR` of a `SET STATEMENT`
/// (outside strings, comments and parentheses), or `None` without one.
fn set_statement_inner(sql: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    let mut depth = 0usize;
    while i < sql.len() {
        if let Some(next) = skip_string_or_comment(sql, i) {
            i = next;
            continue;
        }
        match sql[i] {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                i = word_end(sql, i);
                if depth == 0 && sql[start..i].eq_ignore_ascii_case(b"FOR") {
                    return Some(&sql[i..]);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// True when `sql` may run a `KILL` that is not its plain first statement:
/// a later statement of a multi-statement query, inside an executable
/// comment, or after `SET STATEMENT ... FOR`. (Dynamic SQL, `PREPARE s FROM
/// @v`, cannot be read from the text at all.)
pub fn runs_kill(sql: &[u8]) -> bool {
    if find_ci(sql, 0, b"KILL").is_none() {
        return false;
    }
    runs_kill_in(sql, &Tokens::scan(sql, Vec::new()))
}

/// [`runs_kill`] with `sql`'s words already scanned.
fn runs_kill_in(sql: &[u8], tokens: &Tokens) -> bool {
    let word = |i: usize| tokens.words.get(i).map(|w| w.as_slice());
    // Where a comment may end is unsure, so may the statements be.
    if tokens.ambiguous_comment || may_start_statement(tokens).any(|i| word(i) == Some(b"KILL")) {
        return true;
    }
    word(0) == Some(b"SET")
        && word(1) == Some(b"STATEMENT")
        && set_statement_inner(sql).is_some_and(|inner| first_word_is(inner, b"KILL") || runs_kill(inner))
}

/// Why Funnel refuses to forward `sql`, if it does. Every backend
/// connection logs in as the one backend account all clients share, so
/// some statements would act on that account rather than on the client's
/// own session: a `KILL` other than the plain form Funnel maps to its own
/// ids (it would name the server's thread ids: another client's
/// connection, or Funnel's own), and `SET PASSWORD` / `ALTER USER` (one
/// client could change the shared account's password and lock every
/// client out; clients' passwords are Funnel's users), and `SHUTDOWN` (one
/// client would stop the server for every client). Also looked for in
/// the literal text of `PREPARE ... FROM '...'` and `EXECUTE IMMEDIATE
/// '...'`; text built at run time (`FROM @v`, an expression) is checked or
/// refused by [`super::dynamic_sql`].
pub fn refusal(sql: &[u8]) -> Option<&'static str> {
    refusal_given(sql, &Mentions::of(sql))
}

/// [`refusal`] of `sql`, whose [`Mentions`] were already read (the same
/// pass also tells whether [`super::dynamic_sql`] has anything to check).
pub fn refusal_given(sql: &[u8], mentions: &Mentions) -> Option<&'static str> {
    // The other readings below only turn backslashes into spaces, which
    // makes or unmakes none of the words looked for: without any, none of
    // the readings is refused, and the text is not copied or read again.
    if !mentions.any() {
        return None;
    }
    escape_readings(sql).find_map(|reading| refusal_within(&reading, 0))
}

/// The ways the server may read `sql` whatever the session's `sql_mode`,
/// each made only when the one before it is done with: as written; under
/// `NO_BACKSLASH_ESCAPES`, where a backslash is a plain character, so
/// `'x\'` ends there and what follows is SQL; under `ANSI_QUOTES`,
/// where `"x\"` is a name that ends there while a backslash still escapes
/// in `'...'`; under `MSSQL`, where `[x']` is a name; and in a
/// multi-byte character set (sjis, gbk, big5), where a byte above ASCII
/// and the ``\`` or ``@[]^`{|}~`` after it may be one character
/// ([`sql_lex::multibyte_reading`]: in gbk `SELECT 1 AS a\x95\x60; KILL 5
/// -- \x60` opens no quoted name, and runs the `KILL`). Without a
/// backslash, a `[` or such a byte they are one.
pub fn escape_readings(sql: &[u8]) -> impl Iterator<Item = std::borrow::Cow<'_, [u8]>> {
    use std::borrow::Cow;
    let backslash = sql.contains(&b'\\');
    (0..5).filter_map(move |k| match k {
        0 => Some(Cow::Borrowed(sql)),
        1 if backslash => Some(Cow::Owned(without_backslashes(sql))),
        2 if backslash && sql.contains(&b'"') => sql_lex::ansi_quotes_form(sql).map(Cow::Owned),
        3 if sql.contains(&b'[') => sql_lex::brackets_form(sql).map(Cow::Owned),
        4 => sql_lex::multibyte_reading(sql).map(Cow::Owned),
        _ => None,
    })
}

/// `sql` as the server reads it under `NO_BACKSLASH_ESCAPES`, for the
/// lexer that honours backslash escapes: each backslash made a space.
pub fn without_backslashes(sql: &[u8]) -> Vec<u8> {
    sql.iter().map(|&c| if c == b'\\' { b' ' } else { c }).collect()
}

/// Where a statement may start: the query's start, after each `;`, and
/// after the words that open a statement inside a compound statement
/// (`BEGIN NOT ATOMIC ...`, `IF ... THEN ...`, loops) and after a label
/// (`BEGIN <<l>> KILL 5; END` under `sql_mode=ORACLE`), whose bodies the
/// server runs as they stand.
fn may_start_statement(tokens: &Tokens) -> impl Iterator<Item = usize> + '_ {
    let compound = tokens.words.iter().enumerate().filter_map(|(i, w)| {
        matches!(
            w.as_slice(),
            b"BEGIN" | b"ATOMIC" | b"THEN" | b"ELSE" | b"DO" | b"LOOP" | b"REPEAT"
        )
        .then_some(i + 1)
    });
    std::iter::once(0)
        .chain(tokens.statement_starts.iter().copied())
        .chain(tokens.label_ends.iter().copied())
        .chain(compound)
}

/// What [`refusal`] answers for a `KILL` it cannot map.
pub const KILL_REFUSED: &str =
    "this form of KILL (use KILL [HARD|SOFT] [CONNECTION|QUERY] <id> with the id from CONNECTION_ID())";

/// What [`refusal`] answers for a change to the shared backend account.
pub const ACCOUNT_REFUSED: &str =
    "changing the shared backend account (SET PASSWORD, ALTER USER) through Funnel; client passwords are Funnel's users";

/// What [`refusal`] answers for `SHUTDOWN`.
pub const SHUTDOWN_REFUSED: &str =
    "SHUTDOWN of the backend server through Funnel (every client shares it; stop it on the server itself)";

/// What [`refusal`] answers for dynamic SQL whose text cannot be read
/// for sure ([`sql_lex::ambiguous_comment_at`]).
pub const AMBIGUOUS_REFUSED: &str =
    "PREPARE or EXECUTE IMMEDIATE beside `--` followed by a non-ASCII byte (write `-- ` with a space)";

fn refusal_within(sql: &[u8], depth: u8) -> Option<&'static str> {
    // Runs on every query: one pass over the text finds whether any of the
    // words involved appears at all (almost never), before any tokenizing.
    let m = Mentions::of(sql);
    if !m.any() {
        return None;
    }
    // One scan serves the look for a KILL and the rest: a bulk INSERT whose
    // strings mention "kill" and "password" is read once per reading.
    let tokens = Tokens::scan(sql, Vec::new());
    if m.kill && runs_kill_in(sql, &tokens) {
        return Some(KILL_REFUSED);
    }
    let account = m.password || (m.alter && m.user);
    let dynamic = m.prepare || m.immediate;
    if !account && !dynamic && !m.shutdown {
        return None;
    }
    if tokens.ambiguous_comment {
        // Which text is a comment depends on the character set: what it
        // would run cannot be read.
        return Some(if account {
            ACCOUNT_REFUSED
        } else if m.shutdown {
            SHUTDOWN_REFUSED
        } else {
            AMBIGUOUS_REFUSED
        });
    }
    let word = |i: usize| tokens.words.get(i).map(|w| w.as_slice());
    let starts = || may_start_statement(&tokens);
    let changes_account = |i: usize| {
        matches!(
            (word(i), word(i + 1)),
            (Some(b"SET"), Some(b"PASSWORD")) | (Some(b"ALTER"), Some(b"USER"))
        )
    };
    if starts().any(changes_account) {
        return Some(ACCOUNT_REFUSED);
    }
    // The shared account may hold the SHUTDOWN privilege: one client would
    // stop the server for all. (COM_SHUTDOWN is refused as a command.)
    if starts().any(|i| word(i) == Some(b"SHUTDOWN")) {
        return Some(SHUTDOWN_REFUSED);
    }
    if word(0) == Some(b"SET") && word(1) == Some(b"STATEMENT") {
        if let Some(r) = set_statement_inner(sql).and_then(|inner| refusal_within(inner, depth)) {
            return Some(r);
        }
    }
    if !dynamic || depth >= 2 {
        return None;
    }
    let runs_text = |i: usize| {
        matches!(
            (word(i), word(i + 1)),
            (Some(b"PREPARE"), _) | (Some(b"EXECUTE"), Some(b"IMMEDIATE"))
        )
    };
    if !starts().any(runs_text) {
        return None;
    }
    // The text a PREPARE or EXECUTE IMMEDIATE runs: where it is the first
    // statement, its literal; later in a multi-statement query, every
    // literal of the query (wider than needed, and rare).
    match dynamic_sql_literal(sql) {
        Some(text) => refusal_within(&text, depth + 1),
        None => string_literals(sql).find_map(|text| refusal_within(&text, depth + 1)),
    }
}

/// Which of the words [`refusal`] looks for appear in a text, anywhere
/// (strings and comments included), case-insensitive: one pass over every
/// query, so the checks after it run only on the rare texts that need them.
#[derive(Default)]
pub struct Mentions {
    kill: bool,
    password: bool,
    alter: bool,
    user: bool,
    prepare: bool,
    immediate: bool,
    shutdown: bool,
}

impl Mentions {
    /// True when [`refusal_within`] has anything to look at.
    pub fn any(&self) -> bool {
        self.kill
            || self.password
            || (self.alter && self.user)
            || self.prepare
            || self.immediate
            || self.shutdown
    }

    /// True when the text may run SQL built at run time (`PREPARE`,
    /// `EXECUTE IMMEDIATE`): [`super::dynamic_sql`] has something to check.
    pub fn dynamic_sql(&self) -> bool {
        self.prepare || self.immediate
    }

    /// Reads `sql` once.
    pub fn of(sql: &[u8]) -> Mentions {
        let mut m = Mentions::default();
        let at = |i: usize, w: &[u8]| sql.get(i..i + w.len()).is_some_and(|s| s.eq_ignore_ascii_case(w));
        for (i, c) in sql.iter().enumerate() {
            match c | 0x20 {
                b'k' => m.kill |= at(i, b"KILL"),
                b'p' => {
                    m.password |= at(i, b"PASSWORD");
                    m.prepare |= at(i, b"PREPARE");
                }
                b'a' => m.alter |= at(i, b"ALTER"),
                b'u' => m.user |= at(i, b"USER"),
                b'i' => m.immediate |= at(i, b"IMMEDIATE"),
                b's' => m.shutdown |= at(i, b"SHUTDOWN"),
                _ => {}
            }
        }
        m
    }
}

/// The literal of `PREPARE name FROM '...'` or `EXECUTE IMMEDIATE '...'`
/// when that is the first statement of `sql`.
fn dynamic_sql_literal(sql: &[u8]) -> Option<Vec<u8>> {
    let mut rest = skip_leading_comments(sql);
    let next_word = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        *rest = skip_leading_comments(rest);
        let end = word_end(rest, 0);
        let w = rest[..end].to_ascii_uppercase();
        *rest = &rest[end..];
        (end > 0).then_some(w)
    };
    match next_word(&mut rest)?.as_slice() {
        b"PREPARE" => {
            rest = skip_leading_comments(rest);
            // The statement's name: a word or a quoted name.
            let end = match rest.first() {
                Some(b'`') => skip_quoted(rest, 0, b'`'),
                _ => word_end(rest, 0),
            };
            rest = &rest[end..];
            if next_word(&mut rest)? != b"FROM" {
                return None;
            }
        }
        b"EXECUTE" => {
            if next_word(&mut rest)? != b"IMMEDIATE" {
                return None;
            }
        }
        _ => return None,
    }
    rest = skip_leading_comments(rest);
    let q = *rest.first().filter(|q| matches!(q, b'\'' | b'"'))?;
    Some(unquote(&rest[..skip_quoted(rest, 0, q)], q))
}

/// Every quoted string of `sql`, unquoted.
fn string_literals(sql: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < sql.len() {
            let start = i;
            match skip_string_or_comment(sql, i) {
                Some(end) => {
                    i = end.max(i + 1);
                    if matches!(sql[start], b'\'' | b'"') {
                        return Some(unquote(&sql[start..end], sql[start]));
                    }
                }
                None => i += 1,
            }
        }
        None
    })
}

/// The text of a quoted string (quotes removed, doubled quotes and
/// backslash escapes undone: enough to read the statement it holds).
fn unquote(lit: &[u8], q: u8) -> Vec<u8> {
    let inner = lit.get(1..lit.len().saturating_sub(1)).unwrap_or_default();
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' if i + 1 < inner.len() => {
                out.push(inner[i + 1]);
                i += 2;
            }
            c if c == q && inner.get(i + 1) == Some(&q) => {
                out.push(q);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `NEXTVAL()`, `LASTVAL()`, `SETVAL()`, `NEXT VALUE FOR`, `PREVIOUS VALUE
/// FOR`, and under `sql_mode=ORACLE` `s.NEXTVAL` and `s.CURRVAL` (the
/// `LASTVAL(s)` of that mode): the last value a session drew from a sequence lives on the server
/// connection that drew it, and `LASTVAL()` answers from there. Funnel sees
/// no value to carry over (an `INSERT ... NEXTVAL(s)` returns none), so the
/// session keeps that connection.
fn uses_sequence_value(tokens: &Tokens) -> bool {
    // One pass over the words: this runs for every statement.
    tokens.words.iter().enumerate().any(|(i, w)| match w.as_slice() {
        b"NEXTVAL" | b"LASTVAL" | b"CURRVAL" | b"SETVAL" => true,
        b"NEXT" | b"PREVIOUS" => {
            let next = |k: usize| tokens.words.get(i + k).map(Word::as_slice);
            next(1) == Some(b"VALUE") && next(2) == Some(b"FOR")
        }
        _ => false,
    })
}

/// True when `name(` is called with arguments somewhere (`LAST_INSERT_ID(expr)` sets the value).
/// The name may be in backquotes, and blanks and comments may stand
/// before and inside the parenthesis, as the server reads them
/// (`` `LAST_INSERT_ID`/**/(5) ``).
fn setter_call(sql: &[u8], name: &[u8]) -> bool {
    let mut from = 0;
    while let Some(p) = find_ci(sql, from, name) {
        let mut j = p + name.len();
        if p > 0 && sql[p - 1] == b'`' && sql.get(j) == Some(&b'`') {
            j += 1;
        }
        // A run of blanks too long to read counts as a call that sets.
        let Some(open) = sql_lex::skip_blanks_near(sql, j) else {
            return true;
        };
        if sql.get(open) == Some(&b'(') {
            let Some(arg) = sql_lex::skip_blanks_near(sql, open + 1) else {
                return true;
            };
            if sql.get(arg).is_some_and(|c| *c != b')') {
                return true;
            }
        }
        from = p + name.len();
    }
    false
}

/// Where `needle` (starting with a letter) first appears in `hay` from
/// `from` on, in any case. It runs on every query (`LAST_INSERT_ID`):
/// memchr finds the first letter's places, the rest is compared there.
fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let rest = hay.get(from..)?;
    let first = *needle.first()?;
    memchr::memchr2_iter(first.to_ascii_uppercase(), first.to_ascii_lowercase(), rest)
        .find(|&p| {
            rest.get(p..p + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        })
        .map(|p| p + from)
}

fn pin(reason: PinReason) -> SqlEffect {
    SqlEffect {
        pin: Some(reason),
        ..SqlEffect::default()
    }
}

/// The schema named by `USE db` (backticks, comments and a trailing `;`
/// allowed; a name with other characters than letters, digits, `_` and `$`
/// must be in backticks, and an executable comment makes it unreadable).
fn parse_use(sql: &[u8]) -> Option<Vec<u8>> {
    let text = sql_lex::skip_leading_comments(sql);
    if !first_word_is(text, b"USE") || sql.windows(3).any(|w| w == b"/*!" || w == b"/*M") {
        return None;
    }
    let after = sql_lex::skip_leading_comments(&text[3..]);
    let end = match after.first() {
        Some(b'`') => skip_quoted(after, 0, b'`'),
        _ => word_end(after, 0),
    };
    if end == 0 || !sql_lex::only_separators(&after[end..]) {
        return None;
    }
    schema_name(std::str::from_utf8(&after[..end]).ok()?)
}

/// The schema named by `DROP {DATABASE|SCHEMA} [IF EXISTS] db`.
fn parse_drop_database(sql: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sql).ok()?.trim();
    let mut rest = text;
    for word in ["DROP", ""] {
        let (w, r) = rest.trim_start().split_once(char::is_whitespace)?;
        if !word.is_empty() && !w.eq_ignore_ascii_case(word) {
            return None;
        }
        if word.is_empty() && !(w.eq_ignore_ascii_case("DATABASE") || w.eq_ignore_ascii_case("SCHEMA")) {
            return None;
        }
        rest = r;
    }
    let trimmed = rest.trim_start();
    if let Some((w1, r)) = trimmed.split_once(char::is_whitespace) {
        if w1.eq_ignore_ascii_case("IF") {
            let (w2, r2) = r.trim_start().split_once(char::is_whitespace)?;
            if !w2.eq_ignore_ascii_case("EXISTS") {
                return None;
            }
            return schema_name(r2);
        }
    }
    schema_name(trimmed)
}

/// One schema name, bare or in backticks, with an optional trailing `;`.
fn schema_name(rest: &str) -> Option<Vec<u8>> {
    let rest = rest.trim().trim_end_matches(';').trim();
    let name = if let Some(inner) = rest.strip_prefix('`') {
        inner.strip_suffix('`')?.replace("``", "`")
    } else {
        if rest.is_empty() || rest.contains(|c: char| c.is_whitespace() || c == '`') {
            return None;
        }
        rest.to_string()
    };
    (!name.is_empty()).then(|| name.into_bytes())
}

/// Longest word kept whole. Every keyword compared against is shorter, so a
/// longer word (cut to this length) can never equal one.
const WORD_MAX: usize = 24;

/// One upper-cased word, inline: classifying runs on every query, and a
/// heap allocation per word was most of its cost.
#[derive(Debug, Clone, Copy)]
struct Word {
    len: u8,
    bytes: [u8; WORD_MAX],
}

impl Word {
    fn new(src: &[u8]) -> Word {
        let len = src.len().min(WORD_MAX);
        let mut bytes = [0; WORD_MAX];
        for (d, s) in bytes.iter_mut().zip(&src[..len]) {
            *d = s.to_ascii_uppercase();
        }
        Word {
            len: len as u8,
            bytes,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Upper-cased words outside strings, quoted identifiers and comments.
#[derive(Debug, Default)]
struct Tokens {
    words: Vec<Word>,
    /// Index into `words` where each statement after the first starts.
    statement_starts: Vec<usize>,
    statements: usize,
    user_variable: bool,
    /// A user variable may be written other than by a plain `SET`: `:=`,
    /// `INTO @x`, or a mention in a statement that is not a plain `SELECT`,
    /// `INSERT`, `REPLACE`, `UPDATE`, `DELETE`, `DO`, `WITH` or `VALUES`
    /// (`GET DIAGNOSTICS @n`, `LOAD DATA ... (@c)`, `CALL p(@out)`).
    user_var_write: bool,
    /// A `SELECT` (or `WITH`) statement with an `INTO` (`@x`, `OUTFILE`,
    /// `DUMPFILE`): it returns no rows, but leaves the count of those it
    /// selected for `FOUND_ROWS()`, also when it fails for selecting more
    /// than one.
    select_into: bool,
    executable_comment: bool,
    /// Index into `words` after each label `<<name>>` (`sql_mode=ORACLE`),
    /// which any statement of a compound statement's body may follow.
    label_ends: Vec<usize>,
    /// A `--` followed by a byte above ASCII: a comment or not depending on
    /// the connection's character set ([`sql_lex::ambiguous_comment_at`]),
    /// so the words seen here may not be the server's.
    ambiguous_comment: bool,
    /// A `FROM` that may name a table: any but one directly inside the
    /// parentheses of a function written with a `FROM` of its own
    /// (`TRIM(LEADING 'x' FROM v)`, [`FROM_FUNCTIONS`]).
    table_from: bool,
    /// A `(` that may open a call of a stored function: after a name that
    /// is qualified (`db.f(`), quoted (`` `f`( ``, `"f"(` under
    /// `ANSI_QUOTES`, `[f](` under `MSSQL`), longer than the scan's word
    /// (`1f(`, `fé(`), or neither a reserved word nor a built-in written
    /// right before its `(` ([`super::builtin_calls`]).
    may_call_stored: bool,
    /// The last `DUAL` came right after a `FROM`, unqualified (see
    /// [`ends_from_dual`]).
    dual_after_from: bool,
}

/// What came last before a `(`, blanks and comments aside: whether the
/// `(` may open a call, and of what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BeforeParen {
    /// The start, an operator, a `,`, a `(`, a string: an expression's
    /// parenthesis.
    Expression,
    /// An unquoted word at `start..end` of the text. `plain`: unqualified,
    /// not the statement's first word, and not the tail of a longer name.
    Word {
        start: usize,
        end: usize,
        plain: bool,
        first: bool,
    },
    /// A `.`: the next word is qualified.
    Dot,
    /// A quoted name, or a piece of a name the scan does not read as a
    /// word (digits, `$`, bytes above ASCII, `]`).
    Name,
}

/// Functions whose arguments may be written with a `FROM` that names no
/// table (`SUBSTRING(s FROM 2 FOR 1)`, `EXTRACT(YEAR FROM d)`).
const FROM_FUNCTIONS: [&[u8]; 5] = [b"TRIM", b"SUBSTRING", b"SUBSTR", b"MID", b"EXTRACT"];

/// Parentheses deep enough to tell a function's `FROM` by; deeper ones
/// count as any parentheses, whose `FROM` may name a table.
const FROM_DEPTH: u32 = 64;

/// Statements in which a user variable can only be read (unless after
/// `INTO`, or assigned with `:=`).
const READS_USER_VARS: [&[u8]; 8] = [
    b"SELECT", b"INSERT", b"REPLACE", b"UPDATE", b"DELETE", b"DO", b"WITH", b"VALUES",
];

impl Tokens {
    fn has(&self, w: &[u8]) -> bool {
        self.words.iter().any(|x| x.as_slice() == w)
    }

    /// The words of statement `k` (0 is the first).
    fn statement_words(&self, k: usize) -> &[Word] {
        let start = if k == 0 { 0 } else { self.statement_starts[k - 1] };
        let end = self.statement_starts.get(k).copied().unwrap_or(self.words.len());
        self.words.get(start..end).unwrap_or_default()
    }

    /// Scans `sql` into `words` (cleared first; passed in to reuse it).
    fn scan(sql: &[u8], mut words: Vec<Word>) -> Tokens {
        words.clear();
        let mut t = Tokens {
            words,
            statements: 1,
            ..Default::default()
        };
        let mut i = 0;
        let n = sql.len();
        let mut saw_content = false;
        // The current statement's first word, and whether a user variable
        // there would come after an `INTO` that assigns (not the one of
        // `INSERT INTO`).
        let mut stmt_start = 0;
        let mut insert_into_seen = false;
        let mut into_seen = false;
        // Where the trailing run of blanks and `;` starts.
        let mut blank_tail: Option<usize> = None;
        // The word count at the last `<<`: a label is `<<` one word `>>`.
        let mut label_open: Option<usize> = None;
        // Open parentheses, and which of them (bit per depth) follow a
        // function of [`FROM_FUNCTIONS`]; where the last word ended.
        let (mut depth, mut from_parens) = (0u32, 0u64);
        let mut word_end_at = 0usize;
        let mut before = BeforeParen::Expression;
        while i < n {
            let c = sql[i];
            match c {
                b'\'' | b'"' | b'`' => {
                    before = if c == b'\'' {
                        BeforeParen::Expression
                    } else {
                        BeforeParen::Name
                    };
                    let end = skip_quoted(sql, i, c);
                    // A lock function called by a quoted name is a call
                    // all the same (`` `GET_LOCK`('l', 0) ``).
                    if let Some(name) =
                        super::named_locks::quoted_lock_call(sql, i, end).filter(|_| c != b'\'')
                    {
                        t.words.push(Word::new(name));
                    }
                    i = end;
                    saw_content = true;
                }
                b'#' => i = skip_until(sql, i, b"\n"),
                b'-' if sql_lex::line_comment_at(sql, i) => i = skip_until(sql, i, b"\n"),
                b'-' if sql_lex::ambiguous_comment_at(sql, i) => {
                    t.ambiguous_comment = true;
                    i += 2;
                }
                b'/' if sql.get(i + 1) == Some(&b'*') => {
                    let marker = match sql.get(i + 2) {
                        Some(b'!') => Some(3),
                        Some(b'M') if sql.get(i + 3) == Some(&b'!') => Some(4),
                        _ => None,
                    };
                    match marker {
                        // The server runs an executable comment's text: its
                        // words are read like the rest (its closing `*/` is
                        // punctuation), so nothing can hide in one.
                        Some(len) => {
                            t.executable_comment = true;
                            i += len;
                        }
                        None => i = skip_until(sql, i + 2, b"*/"),
                    }
                }
                b'@' => {
                    before = BeforeParen::Expression;
                    // `@@var` reads a system variable; `@x` is a user variable.
                    if sql.get(i + 1) == Some(&b'@') {
                        i += 2;
                    } else {
                        // The name is kept with its `@`: `SET @password`
                        // is no `SET PASSWORD`, `@get_lock` no lock call.
                        t.user_variable = true;
                        let reads_only = t
                            .words
                            .get(stmt_start)
                            .is_some_and(|w| READS_USER_VARS.contains(&w.as_slice()));
                        t.user_var_write |= !reads_only || into_seen;
                        let end = word_end(sql, i + 1);
                        if end > i + 1 {
                            t.words.push(Word::new(&sql[i..end]));
                        }
                        i = end.max(i + 1);
                    }
                    saw_content = true;
                }
                b';' => {
                    before = BeforeParen::Expression;
                    i += 1;
                    // Found once, not rescanned per `;`: a hostile run of
                    // them must cost linear time.
                    let blank_tail = *blank_tail.get_or_insert_with(|| {
                        sql.iter()
                            .rposition(|c| !(c.is_ascii_whitespace() || *c == b';'))
                            .map_or(0, |p| p + 1)
                    });
                    let rest_blank = i >= blank_tail;
                    if !rest_blank && saw_content {
                        t.statements += 1;
                        t.statement_starts.push(t.words.len());
                        stmt_start = t.words.len();
                        insert_into_seen = false;
                        into_seen = false;
                    }
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = i;
                    while i < n && (sql[i].is_ascii_alphanumeric() || sql[i] == b'_' || sql[i] == b'$') {
                        i += 1;
                    }
                    let word = Word::new(&sql[start..i]);
                    if word.as_slice() == b"INTO" {
                        let insert = t
                            .words
                            .get(stmt_start)
                            .is_some_and(|w| matches!(w.as_slice(), b"INSERT" | b"REPLACE"));
                        if insert && !insert_into_seen {
                            insert_into_seen = true;
                        } else {
                            into_seen = true;
                            t.select_into |= t
                                .words
                                .get(stmt_start)
                                .is_some_and(|w| matches!(w.as_slice(), b"SELECT" | b"WITH"));
                        }
                    }
                    if word.as_slice() == b"FROM" {
                        let innermost = depth.checked_sub(1).filter(|d| *d < FROM_DEPTH);
                        t.table_from |= innermost.is_none_or(|d| from_parens & (1 << d) == 0);
                    }
                    if word.as_slice() == b"DUAL" {
                        t.dual_after_from = matches!(before, BeforeParen::Word { start, end, .. }
                            if sql[start..end].eq_ignore_ascii_case(b"FROM"));
                    }
                    word_end_at = i;
                    before = BeforeParen::Word {
                        start,
                        end: i,
                        plain: before != BeforeParen::Dot
                            && (start == 0 || !super::builtin_calls::continues_name(sql[start - 1])),
                        first: t.words.len() == stmt_start,
                    };
                    t.words.push(word);
                    saw_content = true;
                }
                b'(' => {
                    // Looked up here, not at every word: parentheses are
                    // fewer, and every query is scanned.
                    let call = sql[word_end_at..i].iter().all(u8::is_ascii_whitespace)
                        && t.words
                            .last()
                            .is_some_and(|w| FROM_FUNCTIONS.contains(&w.as_slice()));
                    if depth < FROM_DEPTH {
                        from_parens = (from_parens & !(1 << depth)) | (u64::from(call) << depth);
                    }
                    t.may_call_stored |= match before {
                        BeforeParen::Expression => false,
                        BeforeParen::Word { first: true, .. } => false,
                        BeforeParen::Word {
                            start, end, plain, ..
                        } => {
                            !(plain && super::builtin_calls::opens_no_stored_call(&sql[start..end], end == i))
                        }
                        BeforeParen::Dot | BeforeParen::Name => true,
                    };
                    before = BeforeParen::Expression;
                    depth += 1;
                    i += 1;
                }
                b')' => {
                    before = BeforeParen::Expression;
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                b'<' if sql.get(i + 1) == Some(&b'<') => {
                    before = BeforeParen::Expression;
                    label_open = Some(t.words.len());
                    i += 2;
                }
                b'>' if sql.get(i + 1) == Some(&b'>') => {
                    before = BeforeParen::Expression;
                    if label_open.is_some_and(|n| n + 1 == t.words.len()) {
                        t.label_ends.push(t.words.len());
                    }
                    label_open = None;
                    i += 2;
                }
                b':' if sql.get(i + 1) == Some(&b'=') => {
                    before = BeforeParen::Expression;
                    // `@x := value` assigns wherever it stands.
                    t.user_var_write = true;
                    i += 2;
                }
                _ => {
                    if !super::builtin_calls::is_blank(c) {
                        before = match c {
                            b'.' => BeforeParen::Dot,
                            b']' | b'$' => BeforeParen::Name,
                            c if c.is_ascii_digit() || c >= 0x80 => BeforeParen::Name,
                            _ => BeforeParen::Expression,
                        };
                    }
                    i += 1;
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(sql: &str) -> Option<PinReason> {
        classify(sql.as_bytes()).pin
    }

    /// A dump's extended INSERT is read once when no other reading
    /// differs (see `refusal` and `classify`); where one does, it is
    /// still read that way.
    #[test]
    fn pinning_bulk_inserts_read_once_stay_strict() {
        let rows = "(1,'it\\'s \\\"kill\\\" the user\\'s password','C:\\\\x',NULL),(2,'a''b','\\n',NULL)";
        let sql = format!("INSERT INTO `t` VALUES {rows},{rows}");
        assert_eq!(refusal(sql.as_bytes()), None);
        assert_eq!(reason(&sql), None);
        // Under NO_BACKSLASH_ESCAPES `'x\'` ends at the backslash.
        let sql = format!("INSERT INTO t VALUES {rows},('x\\'); KILL 5; -- ')");
        assert_eq!(refusal(sql.as_bytes()), Some(KILL_REFUSED));
        let sql = format!("INSERT INTO t VALUES {rows},('x\\'); SET PASSWORD = 'y'; -- ')");
        assert_eq!(refusal(sql.as_bytes()), Some(ACCOUNT_REFUSED));
        // Under ANSI_QUOTES `"x\"` is a name, and `@v := 1` runs.
        let sql = format!("INSERT INTO t SELECT {rows}, \"x\\\", @v := 1 -- \"");
        assert_eq!(reason(&sql), Some(PinReason::UserVariable));
        let sql = format!("INSERT INTO t VALUES {rows} /* \"x\\\"; KILL 5; -- \" */");
        assert_eq!(refusal(sql.as_bytes()), None, "a comment in every reading");
        // In gbk `\x95\x5c` is one character: the quote after it ends the string.
        let sql = format!("INSERT INTO t VALUES {rows},('\u{95}\\', @v := 1) -- ')");
        assert_eq!(reason(&sql), Some(PinReason::UserVariable));
    }

    /// In sjis, gbk or big5 a byte above ASCII and the backquote after it
    /// may be one character of a name (checked on 10.11 under `SET NAMES
    /// gbk`): what the usual reading takes for a quoted name up to the
    /// comment runs. Before, a user variable written there went unseen
    /// (and stayed on the connection for the next client), and so did a
    /// `KILL` or `SET PASSWORD` after a `;`.
    #[test]
    fn pinning_multibyte_punctuation_hides_nothing() {
        let sql = b"SELECT 1 AS a\x95\x60, @v := 5 -- \x60";
        assert_eq!(classify(sql).pin, Some(PinReason::UserVariable));
        let sql = b"SELECT 1 AS a\x95\x60; KILL 5 -- \x60";
        assert_eq!(refusal(sql), Some(KILL_REFUSED));
        let sql = b"SELECT 1 AS a\x95\x60; SET PASSWORD = 'x' -- \x60";
        assert_eq!(refusal(sql), Some(ACCOUNT_REFUSED));
        // A named lock only that reading takes is one the session holds:
        // a later check (after a `RELEASE_LOCK`) asks the server about it,
        // and the pin stays while the connection holds it.
        let e = classify(b"SELECT 1 AS a\x95\x60, GET_LOCK('x', 0) -- \x60");
        assert_eq!(e.pin, Some(PinReason::NamedLock));
        assert_ne!(e.lock_names, LockNames::None);
        let e = classify(b"SELECT GET_LOCK('a', 0), 1 AS b\x95\x60, GET_LOCK('c', 0) -- \x60");
        assert_eq!(e.lock_names, LockNames::Opaque);
        let e = classify(b"SELECT GET_LOCK('a', 0), 1 AS `b`");
        assert!(matches!(e.lock_names, LockNames::Literal { .. }));
        // In UTF-8 text no such pair is a character: read as usual.
        assert_eq!(classify("SELECT 'é', `ü` FROM t".as_bytes()).pin, None);
        assert_eq!(refusal("SELECT 1 AS `é`".as_bytes()), None);
        // The known cost (docs/multiplexing.md, Known limits): a
        // backquoted name ending above ASCII, then a refused word or a
        // write in a string, is taken as run in UTF-8 text too.
        let sql = "SELECT `café` FROM t WHERE c = '`; KILL 1'";
        assert_eq!(refusal(sql.as_bytes()), Some(KILL_REFUSED));
        let sql = "SELECT `café` FROM t WHERE c = '`, @v := 1'";
        assert_eq!(classify(sql.as_bytes()).pin, Some(PinReason::UserVariable));
    }

    #[test]
    fn pinning_find_ci_finds_a_word_in_any_case_from_an_offset() {
        let sql = b"select last_insert_id(), Last_Insert_Id(5) -- LAST_INSERT_I";
        assert_eq!(find_ci(sql, 0, b"LAST_INSERT_ID"), Some(7));
        assert_eq!(find_ci(sql, 8, b"LAST_INSERT_ID"), Some(25));
        assert_eq!(find_ci(sql, 26, b"LAST_INSERT_ID"), None, "cut short at the end");
        assert_eq!(find_ci(b"LAST", 0, b"LAST_INSERT_ID"), None);
        assert_eq!(find_ci(b"x kill 5", 0, b"KILL"), Some(2));
        assert_eq!(find_ci(sql, 1000, b"KILL"), None);
    }

    #[test]
    fn pinning_plain_statements_do_not_pin() {
        for sql in [
            "SELECT 1",
            "select c from sbtest1 where id=5",
            "INSERT INTO t VALUES ('@x', 'SET', \"GET_LOCK\")",
            "BEGIN",
            "COMMIT",
            "SELECT @@time_zone, @@session.sql_mode",
            "UPDATE t SET x = 1 WHERE id = 2",
            "/* hello */ SELECT 1;",
            "-- comment\nSELECT `@weird` FROM t",
            "SELECT LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS()",
        ] {
            assert_eq!(reason(sql), None, "{sql}");
        }
    }

    #[test]
    fn pinning_refuses_what_acts_on_the_shared_backend_account() {
        for sql in [
            "SET PASSWORD = PASSWORD('x')",
            "set password for current_user() = 'x'",
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
            "SELECT 1; ALTER USER u ACCOUNT LOCK",
            "/*!SET PASSWORD = 'x' */",
            "KILL ?",
            "DO 1; KILL 5",
            "PREPARE s FROM 'KILL 5'",
            "PREPARE `s` FROM \"KILL QUERY 5\"",
            "PREPARE s FROM 'SET PASSWORD = PASSWORD(''x'')'",
            "EXECUTE IMMEDIATE 'ALTER USER CURRENT_USER() IDENTIFIED BY \\'x\\''",
            "SELECT 1; PREPARE s FROM 'KILL 5'",
            "SET STATEMENT max_statement_time = 1 FOR ALTER USER CURRENT_USER() ACCOUNT LOCK",
            // MariaDB ends a `--` comment at the line's end after any
            // control character: the quote is in the comment.
            "SELECT 1 --\x01 '\n; KILL 5 -- '",
            "SELECT 1 --\x0b '\n; ALTER USER CURRENT_USER() ACCOUNT LOCK -- '",
            "SELECT 1 --\x7f '\n; PREPARE s FROM 'KILL 5' -- '",
            // sql_mode=ORACLE: a label may stand before any statement of a
            // block's body.
            "BEGIN <<l>> KILL QUERY 5; END",
            "BEGIN NULL; <<a>> <<b>> KILL 5; END",
            "BEGIN <<l>> ALTER USER CURRENT_USER() ACCOUNT LOCK; END",
            "BEGIN << l /* x */ >> PREPARE s FROM 'KILL 5'; EXECUTE s; END",
        ] {
            assert!(refusal(sql.as_bytes()).is_some(), "{sql}");
        }
        assert_eq!(refusal(b"SELECT 1 << 2, 8 >> kill FROM t"), None);
        for sql in [
            "SHUTDOWN",
            "shutdown wait for all slaves",
            " /* x */ SHUTDOWN",
            "/*!SHUTDOWN */",
            "SELECT 1; SHUTDOWN",
            "PREPARE s FROM 'SHUTDOWN'",
            "EXECUTE IMMEDIATE 'SHUTDOWN'",
            "BEGIN NOT ATOMIC SHUTDOWN; END",
            "SET STATEMENT max_statement_time = 1 FOR SHUTDOWN",
            "SELECT 1 --\x01 '\n; SHUTDOWN -- '",
        ] {
            assert_eq!(refusal(sql.as_bytes()), Some(SHUTDOWN_REFUSED), "{sql}");
        }
        for sql in [
            "SELECT 'SHUTDOWN'",
            "SELECT shutdown FROM t",
            "SHOW GLOBAL STATUS LIKE '%shutdown%'",
            "INSERT INTO log (event) VALUES ('shutdown')",
        ] {
            assert_eq!(refusal(sql.as_bytes()), None, "{sql}");
        }
        // Under ANSI_QUOTES "c\" is a name ending at its second quote.
        assert!(refusal(br#"SELECT 'a\'b' AS "c\"; KILL 5; -- "'"#).is_some());
        assert!(refusal(br#"SELECT 'a\'b' AS "c\"; SET PASSWORD = 'x' -- "'"#).is_some());
        assert_eq!(refusal(br#"SELECT '{"a":"b\"c"}', "d\"e""#), None);
        // After `--`, `\xA0` is a space in latin1: a comment or not.
        for sql in [
            &b"SELECT 1 --\xa0 '\n; KILL 5 -- '"[..],
            b"SELECT 1 --\xa0 '\n; SET PASSWORD = 'x' -- '",
            b"SELECT 1 --\xa0 '\n; PREPARE s FROM 'K\\ILL 5' -- '",
        ] {
            assert!(refusal(sql).is_some(), "{sql:?}");
        }
        for sql in [
            "SELECT password FROM users WHERE user = 'x'",
            "UPDATE users SET password = 'x' WHERE id = 1",
            "PREPARE s FROM 'SELECT password FROM users WHERE id = ?'",
            "EXECUTE s USING 'kill'",
            "EXECUTE IMMEDIATE 'SELECT ''KILL 5'''",
            "SELECT 'KILL 5', 'SET PASSWORD'",
            "ALTER TABLE users ADD COLUMN password TEXT",
        ] {
            assert_eq!(refusal(sql.as_bytes()), None, "{sql}");
        }
    }

    #[test]
    fn pinning_multi_statement_sets_are_tracked_and_pin_on_error() {
        let e = classify(b"SET NAMES utf8mb4; SET SESSION time_zone = '+00:00', wait_timeout = 60;");
        assert_eq!(e.pin, None);
        assert_eq!(e.set_vars.map(|a| a.len()), Some(3));
        assert_eq!(e.pin_on_error, Some(PinReason::SessionVariable));
        assert_eq!(classify(b"SET time_zone = '+00:00'").pin_on_error, None);
        for (sql, reason) in [
            ("SET a = 1; SELECT 1", PinReason::SessionVariable),
            ("SET a = 1; SELECT @x := 2", PinReason::SessionVariable),
            ("SET a = 1; SET TRANSACTION READ ONLY", PinReason::SessionVariable),
            ("SET a = 1; 'x'; SET b = 2", PinReason::SessionVariable),
        ] {
            assert_eq!(classify(sql.as_bytes()).pin, Some(reason), "{sql}");
        }
    }

    #[test]
    fn pinning_statements_that_surely_run_no_stored_code() {
        for sql in [
            "SET time_zone = '+00:00'",
            "SET @x = 1",
            "DO 1",
            "SELECT nosuch",
            "SELECT @x, @@warning_count",
            "COMMIT",
            "BEGIN",
            "USE db",
            // Built-ins written right before their `(`, and an
            // expression's parentheses.
            "SELECT NOW()",
            "select concat('a', nosuch), Row_Count()",
            "SELECT 1 IN (1, 2) AND NOT (0), (SELECT 1)",
            "SELECT EXISTS (SELECT 1), IF(1, UUID(), 2) FROM DUAL",
            "SELECT(1)",
            "DO SLEEP(0)",
            "SELECT t.c FROM DUAL",
            "SELECT CAST(1.5 AS CHAR(3)) /* f() */ -- g()",
            "SELECT 'f(' , \"g\"",
        ] {
            assert!(classify(sql.as_bytes()).runs_no_stored_code, "{sql}");
        }
        for sql in [
            // Triggers.
            "INSERT INTO t VALUES (1)",
            "REPLACE INTO t VALUES (1)",
            "UPDATE t SET v = 1",
            "DELETE FROM t",
            "LOAD DATA INFILE 'f' INTO TABLE t",
            // A view may call a function.
            "SELECT v FROM t",
            // A function call, or what may be one.
            "SELECT f()",
            "DO f()",
            "SET @x = f()",
            // What may call a stored function of a built-in's name, or
            // a name longer than the word read here.
            "SELECT db.now()",
            "SELECT `db` . now()",
            "SELECT now ()",
            "SELECT now/**/()",
            "SELECT `now`()",
            "SELECT \"now\"()",
            "SELECT [now]()",
            "SELECT 1now()",
            "SELECT $now()",
            "SELECT nowé()",
            "SELECT 1 (2)",
            // A vertical tab is a blank to the server (`now` is then a
            // name, and the stored function of that name runs).
            "SELECT now\x0b()",
            // Under `sql_mode=MSSQL` `[a'b]` is a name, no string: `f()`
            // is a call.
            "SELECT 1 AS [a'b], f() -- ']",
            "SELECT 1 AS [a'b], v FROM t -- ']",
            // Built-ins left out: they set state or read tables.
            "SELECT LAST_INSERT_ID(5)",
            "SELECT CONVERT_TZ(NOW(), 'UTC', 'Europe/Paris')",
            "SELECT NOW(), f()",
            // `SET STATEMENT` wraps any statement (no `FROM`, no `(` here).
            "SET STATEMENT max_statement_time = 1 FOR UPDATE t SET v = 1",
            // Several statements, or text Funnel may read otherwise.
            "SELECT 1; SELECT 2",
            "/*!SELECT f() */",
            "SELECT \"x\\\" FROM v -- \"",
            "CALL p()",
            "SHOW TABLES",
            "WITH c AS (SELECT 1) SELECT * FROM c",
        ] {
            assert!(!classify(sql.as_bytes()).runs_no_stored_code, "{sql}");
        }
        // In sjis or gbk `\x95\x60` is one character of a name,
        // not a byte and a backquote: `f()` is a call, outside any name.
        for sql in [
            &b"SELECT 1 AS a\x95`, f() -- `"[..],
            b"SELECT 1 AS `a\x95`, 1 AS `, f() -- `",
            // Nor is `\x95^` an operator after a byte: `\x95^now` is one
            // name, a stored function's.
            b"SELECT \x95^now()",
            b"SELECT \x95@now()",
            b"SELECT \x95]now()",
            b"SELECT \x95[now()",
            b"SELECT \x95~now()",
        ] {
            assert!(
                !classify(sql).runs_no_stored_code,
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
        assert!(!ExecuteEffect::of(b"INSERT INTO t VALUES (?)").runs_no_stored_code);
        assert!(ExecuteEffect::of(b"SELECT ?").runs_no_stored_code);
    }

    #[test]
    fn pinning_statements_that_surely_open_no_table() {
        for sql in [
            "SET time_zone = '+00:00'",
            "DO 1",
            "SELECT 1, @@warning_count",
            "select 'FROM'",
            "COMMIT",
            "ROLLBACK TO SAVEPOINT s1",
            "BEGIN",
            "START TRANSACTION READ ONLY",
            "RELEASE SAVEPOINT s1",
            "USE db",
            "UNLOCK TABLES",
            "XA START 'x'",
            "xa end 'x'",
            "XA PREPARE 'x'",
            "XA COMMIT 'x' ONE PHASE",
            "XA ROLLBACK 'x'",
            "SELECT 1 FROM DUAL",
            "select @x, 'a' || 'b' from dual",
            "SELECT 1 FROM /* c */ DUAL",
            "SELECT TRIM(LEADING 'x' FROM 'xa'), substring('abc' from 2 for 1)",
            "SELECT EXTRACT(YEAR FROM NOW()), MID ('abc' FROM 2), TRIM(BOTH FROM ' a ')",
            "SELECT TRIM(LEADING 'x' FROM CONCAT('x', (1)))",
        ] {
            assert!(classify(sql.as_bytes()).opens_no_table, "{sql}");
        }
        for sql in [
            "SELECT v FROM t",
            "SELECT 1 FROM t, DUAL",
            // A table another reading sees (`[a'b]` is a name under
            // `sql_mode=MSSQL`).
            "SELECT 1 AS [a'b], v FROM t -- ']",
            // A table named `dual`: after a `.` a reserved word is a name.
            "SELECT v FROM d.dual",
            "SELECT v FROM `d`.dual",
            "SELECT v FROM d . /* c */ DUAL",
            "SELECT (SELECT v FROM t LIMIT 1) FROM DUAL",
            "SELECT 1 FROM DUAL; SELECT 2",
            "SET @x = (SELECT v FROM t)",
            "SELECT TRIM(LEADING 'x' FROM (SELECT v FROM t))",
            "SELECT EXTRACT(YEAR FROM d) FROM t",
            "SELECT TRIM(v) FROM t",
            "SELECT TRIM /* c */ ('x' FROM t)",
            "SELECT `TRIM`('x' FROM t)",
            "SELECT TRIM('x' FROM 'y'), (SELECT 1 FROM t)",
            "INSERT INTO t VALUES (1)",
            "SELECT 1; SELECT 2",
            "SHOW TABLES",
            "BEGIN NOT ATOMIC INSERT INTO t VALUES (1); END",
            "START SLAVE",
        ] {
            assert!(!classify(sql.as_bytes()).opens_no_table, "{sql}");
        }
    }

    #[test]
    fn pinning_select_into_leaves_found_rows_to_the_server() {
        for sql in [
            "SELECT v INTO @t FROM t",
            "SELECT v FROM t LIMIT 1 INTO @t",
            "WITH c AS (SELECT 1 AS v) SELECT v INTO @t FROM c",
            "SELECT 1; SELECT 2 INTO @x",
        ] {
            assert!(classify(sql.as_bytes()).selects_into, "{sql}");
            assert!(ExecuteEffect::of(sql.as_bytes()).selects_into, "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT 'INTO' FROM t",
            "REPLACE INTO t SELECT @x",
        ] {
            assert!(!classify(sql.as_bytes()).selects_into, "{sql}");
        }
    }

    #[test]
    fn pinning_calc_found_rows_is_read_back_not_pinned() {
        let e = classify(b"SELECT SQL_CALC_FOUND_ROWS id FROM posts ORDER BY id LIMIT 10");
        assert_eq!((e.pin, e.reads_found_rows, e.read_only), (None, true, true));
        let x = ExecuteEffect::of(b"SELECT SQL_CALC_FOUND_ROWS id FROM posts LIMIT ?");
        assert_eq!(x.pin, Some(PinReason::PreviousStatementInfo));
        assert!(!classify(b"SELECT id FROM posts").reads_found_rows);
    }

    #[test]
    fn pinning_computed_set_is_read_back_not_pinned() {
        let e = classify(b"SET sql_mode=(SELECT REPLACE(@@sql_mode,'ONLY_FULL_GROUP_BY',''))");
        assert_eq!((e.pin, e.read_back), (None, Some(vec!["sql_mode".to_string()])));
        // MariaDB Connector/J's shape: autocommit is tracked as a literal would be.
        let e = classify(b"set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')");
        assert_eq!(e.pin, None);
        assert_eq!(e.read_back, Some(vec!["sql_mode".to_string()]));
        assert_eq!(e.set_vars.map(|a| a.len()), Some(1));
        // Rails' connect: NAMES and literals beside a computed sql_mode.
        let e = classify(
            b"SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci, @@SESSION.sql_mode = CONCAT(CONCAT(@@sql_mode, \
              ',STRICT_ALL_TABLES'), ',NO_AUTO_VALUE_ON_ZERO'), @@SESSION.sql_auto_is_null = 0, \
              @@SESSION.wait_timeout = 2147483",
        );
        assert_eq!(e.pin, None);
        assert_eq!(e.read_back, Some(vec!["sql_mode".to_string()]));
        assert_eq!(e.set_vars.map(|a| a.len()), Some(3));
        // As a binary prepared statement it pins, as every SET there does.
        let x = ExecuteEffect::of(b"SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')");
        assert_eq!(x.pin, Some(PinReason::SessionVariable));
    }

    #[test]
    fn pinning_stateful_statements_pin() {
        let cases = [
            ("SET @x = (SELECT c FROM t)", PinReason::UserVariable),
            ("SET @x = ?", PinReason::UserVariable),
            ("SET SESSION @x = 1", PinReason::UserVariable),
            (
                "SET time_zone = (SELECT tz FROM zones LIMIT 1)",
                PinReason::SessionVariable,
            ),
            ("SET TRANSACTION READ ONLY", PinReason::NextTransaction),
            (
                "SET sql_mode = CONCAT(@@sql_mode, ',X'), sql_log_bin = IF(1, 0, 1)",
                PinReason::SessionVariable,
            ),
            (
                "SET character_set_results = CONCAT('utf8', 'mb4')",
                PinReason::SessionVariable,
            ),
            ("SET sql_mode = (SELECT m FROM t)", PinReason::SessionVariable),
            (
                "SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE;",
                PinReason::NextTransaction,
            ),
            (
                "SET TRANSACTION READ ONLY, wait_timeout = 5",
                PinReason::SessionVariable,
            ),
            ("SET GLOBAL TRANSACTION READ ONLY", PinReason::SessionVariable),
            ("SET sql_log_bin = 0", PinReason::ReplicationVariable),
            ("SET sql_log_bin = OFF", PinReason::ReplicationVariable),
            ("SET SESSION gtid_domain_id = 2", PinReason::ReplicationVariable),
            ("SELECT c INTO @v FROM t", PinReason::UserVariable),
            // The quote is in a comment (MariaDB's `--` takes any control
            // character after it): the INTO is no string.
            ("SELECT 1 --\x01 '\n INTO @v -- '", PinReason::UserVariable),
            ("SELECT 1 --\x0b '\n, GET_LOCK('l', 1) -- '", PinReason::NamedLock),
            // A comment or not depending on the character set.
            ("SELECT 1 --\u{a0} '\n INTO @v -- '", PinReason::Unknown),
            ("SELECT c FROM t INTO @v", PinReason::UserVariable),
            ("SELECT @a INTO @b", PinReason::UserVariable),
            ("SELECT @n := @n + 1 FROM t", PinReason::UserVariable),
            (
                "UPDATE t SET c = (@old := c) WHERE id = 1",
                PinReason::UserVariable,
            ),
            ("INSERT INTO t SELECT 1 INTO @x", PinReason::UserVariable),
            ("SELECT 1; SELECT 2 INTO @x", PinReason::UserVariable),
            ("SELECT 1; GET DIAGNOSTICS @n = NUMBER", PinReason::UserVariable),
            (
                "LOAD DATA INFILE 'f' INTO TABLE t (a, @b) SET c = @b",
                PinReason::UserVariable,
            ),
            ("CALL p(@out)", PinReason::StoredProcedure),
            ("EXECUTE s USING @x", PinReason::SqlPrepare),
            ("EXPLAIN SELECT @x", PinReason::UserVariable),
            ("SELECT @`x` := 1", PinReason::UserVariable),
            ("CREATE TEMPORARY TABLE t (x int)", PinReason::TemporaryTable),
            ("LOCK TABLES t WRITE", PinReason::TableLock),
            ("FLUSH TABLES WITH READ LOCK", PinReason::TableLock),
            ("SELECT GET_LOCK('a', 0)", PinReason::NamedLock),
            ("PREPARE s FROM 'SELECT 1'", PinReason::SqlPrepare),
            ("HANDLER t OPEN", PinReason::Handler),
            (
                "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1 FOR UPDATE",
                PinReason::PreviousStatementInfo,
            ),
            (
                "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1; SELECT 2",
                PinReason::PreviousStatementInfo,
            ),
            (
                "SELECT SQL_CALC_FOUND_ROWS @n := id FROM t LIMIT 1",
                PinReason::PreviousStatementInfo,
            ),
            ("SELECT LAST_INSERT_ID(5)", PinReason::PreviousStatementInfo),
            ("CALL p()", PinReason::StoredProcedure),
            ("/*!40101 SET NAMES utf8 */", PinReason::Unknown),
            ("SELECT 1; SET sql_mode=''", PinReason::SessionVariable),
            (
                "SELECT 1; CREATE TEMPORARY TABLE x (a int)",
                PinReason::TemporaryTable,
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(reason(sql), Some(want), "{sql}");
        }
    }

    #[test]
    fn pinning_user_variables_read_or_set_plainly_do_not_pin() {
        for sql in [
            "SELECT @x",
            "SELECT @x, @`y`, @'z' FROM t WHERE id = @id",
            "INSERT INTO t VALUES (@x)",
            "REPLACE INTO t (a) SELECT @x",
            "UPDATE t SET c = @x WHERE id = @id",
            "DELETE FROM t WHERE id = @id",
            "DO @x",
            "WITH c AS (SELECT @x AS v) SELECT v FROM c",
            "SELECT @x = 5",
            "SELECT @x; SELECT @y",
            "SET STATEMENT max_statement_time = 1 FOR SELECT @x",
        ] {
            assert_eq!(reason(sql), None, "{sql}");
        }
        assert!(classify(b"SELECT @x").read_only);
        let e = classify(b"SET @x = 5, @S = 'a', time_zone = '+00:00'");
        assert_eq!(e.pin, None);
        assert_eq!(e.set_user_vars, Some(vec![("x".to_string(), "5".to_string())]));
        assert_eq!(e.read_back_user_vars, Some(vec!["s".to_string()]));
        assert_eq!(e.set_vars.map(|v| v.len()), Some(1));
        assert_eq!(e.read_back, None);
        let e = classify(b"SET @a = 1; SET NAMES utf8mb4");
        assert_eq!(e.set_user_vars.map(|v| v.len()), Some(1));
        assert_eq!(e.pin_on_error, Some(PinReason::SessionVariable));
        // A pin that may end later keeps the user variables recorded.
        let e = classify(b"SET sql_log_bin = 0, @x = 1");
        assert_eq!(e.pin, Some(PinReason::ReplicationVariable));
        assert!(e.set_user_vars.is_some());
        // In sjis '\x95\x5c' is one character in quotes.
        for sql in [
            &b"SELECT '\x95\x5c' AS a, @r := 9 -- '"[..],
            b"SELECT '\x95\x5c', 1 INTO @r -- '",
        ] {
            assert_eq!(classify(sql).pin, Some(PinReason::UserVariable), "{sql:?}");
        }
        assert_eq!(classify(b"SELECT 'caf\xc3\xa9', @x").pin, None);
        // Under ANSI_QUOTES "x\" is a name ending at its second quote.
        assert_eq!(
            reason(r#"SELECT 1 AS "x\", @r := 9 -- ""#),
            Some(PinReason::UserVariable)
        );
        assert_eq!(
            reason(r#"SELECT 'a\'b' AS "x\", 1 INTO @r -- "'"#),
            Some(PinReason::UserVariable)
        );
        assert_eq!(
            reason(r#"SELECT '{"a":"b\"c"}', @x FROM t WHERE "\\" = @y"#),
            None
        );
        // `--` before a tab is a comment to the server: @w is set too.
        let e = classify(b"SET @v = 1 --\t'\n, @w := 2 -- '");
        assert_eq!(
            (e.pin, e.set_user_vars, e.read_back_user_vars),
            (None, None, Some(vec!["v".into(), "w".into()]))
        );
        // In a binary prepared statement every SET pins.
        assert_eq!(
            ExecuteEffect::of(b"SET @x = 5").pin,
            Some(PinReason::UserVariable)
        );
        assert_eq!(ExecuteEffect::of(b"SELECT @x").pin, None);
    }

    #[test]
    fn pinning_plain_set_is_tracked_not_pinned() {
        let e = classify(b"set time_zone = '+05:00', NAMES utf8mb4");
        assert_eq!(e.pin, None);
        assert_eq!(e.set_vars.map(|v| v.len()), Some(2));
        assert_eq!(
            classify(b"SET GLOBAL max_connections = 10"),
            SqlEffect {
                opens_no_table: true,
                runs_no_stored_code: true,
                ..SqlEffect::default()
            }
        );
    }

    #[test]
    fn pinning_restoring_replication_variables_does_not_pin() {
        assert_eq!(reason("SET sql_log_bin = 1"), None);
        assert_eq!(
            reason("SET SESSION sql_log_bin = ON, gtid_domain_id = DEFAULT"),
            None
        );
    }

    #[test]
    fn pinning_read_only_selects() {
        for sql in [
            "SELECT c FROM t WHERE id = 1",
            "select 1",
            "SELECT a FROM t JOIN u USING (id)",
        ] {
            assert!(classify(sql.as_bytes()).read_only, "{sql}");
        }
        for sql in [
            "SELECT c FROM t FOR UPDATE",
            "SELECT c FROM t LOCK IN SHARE MODE",
            "SELECT c FROM t FOR SHARE",
            "SELECT c INTO OUTFILE '/tmp/x' FROM t",
            "SELECT 1; SELECT 2",
            "INSERT INTO t VALUES (1)",
            "SELECT GET_LOCK('a', 1)",
            "SELECT IS_FREE_LOCK('a')",
        ] {
            assert!(!classify(sql.as_bytes()).read_only, "{sql}");
        }
    }

    #[test]
    fn pinning_ends_with_unlock_and_release_all() {
        assert_eq!(classify(b"UNLOCK TABLES").unpin, Some(PinReason::TableLock));
        assert_eq!(
            classify(b"SELECT RELEASE_ALL_LOCKS()").unpin,
            Some(PinReason::NamedLock)
        );
        assert_eq!(classify(b"UNLOCK TABLES").pin, None);
    }

    #[test]
    fn pinning_statements_running_unseen_code_may_keep_diagnostics() {
        for sql in [
            "CALL p()",
            "PREPARE s FROM 'SELECT 1'",
            "EXECUTE s",
            "EXECUTE IMMEDIATE 'SELECT 1'",
            "DEALLOCATE PREPARE s",
            "DROP PREPARE s",
            "BEGIN p_li; END",
            "BEGIN NOT ATOMIC SELECT 1; END",
            "DECLARE n INT; BEGIN p_li; END",
        ] {
            assert!(classify(sql.as_bytes()).may_keep_diagnostics, "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "DROP TABLE t",
            "SELECT 1",
            "SET @x = 1",
            "BEGIN",
            "BEGIN WORK",
        ] {
            assert!(!classify(sql.as_bytes()).may_keep_diagnostics, "{sql}");
        }
    }

    #[test]
    fn pinning_diagnostics_statements_are_recognised() {
        for sql in [
            "SHOW WARNINGS",
            "show errors limit 1",
            "SHOW COUNT(*) WARNINGS",
            "SELECT @@warning_count",
            "SELECT @@warning_count AS w, @@error_count",
            "SELECT @@session.warning_count",
            "SELECT @@warning_count FROM DUAL",
            "select @@error_count as e from dual",
        ] {
            assert!(classify(sql.as_bytes()).diagnostics, "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SHOW TABLES",
            "SELECT @@warning_count, c FROM t",
            "SELECT @@warning_count INTO @w",
            "SELECT @@warning_count FROM t",
            "SELECT @@warning_count FROM DUAL, t",
        ] {
            assert!(!classify(sql.as_bytes()).diagnostics, "{sql}");
        }
    }

    #[test]
    fn pinning_a_long_run_of_semicolons_costs_linear_time() {
        // 4 MiB of `;` took minutes when each `;` rescanned the rest.
        let mut sql = b"SELECT 1".to_vec();
        sql.resize(4 << 20, b';');
        let started = std::time::Instant::now();
        let e = classify(&sql);
        assert_eq!(e.pin, None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(reason("SELECT 1; SET @x = 1;;  ;"), Some(PinReason::UserVariable));
    }

    #[test]
    fn pinning_drop_database_names_the_schema() {
        let dropped = |sql: &str| classify(sql.as_bytes()).drops_schema;
        assert_eq!(dropped("DROP DATABASE app").as_deref(), Some(&b"app"[..]));
        assert_eq!(
            dropped("drop schema if exists `my db`;").as_deref(),
            Some(&b"my db"[..])
        );
        assert_eq!(dropped("DROP TABLE app"), None);
        assert_eq!(dropped("DROP DATABASE"), None);
    }

    /// Found by the client_session fuzzer: a multi-statement query whose
    /// first statement has no word panicked the shard.
    #[test]
    fn pinning_multi_statement_without_a_first_word() {
        for sql in [
            "'x'; SELECT 1",
            "1; SET @a = 1",
            "@@x; DO 1",
            "(); LOCK TABLES t READ",
        ] {
            let _ = classify(sql.as_bytes());
        }
        // Its first word is the second statement's SET: read as SETs only,
        // which the text is not, so it pins (for the user variable).
        assert_eq!(reason("'x'; SET @a = 1"), Some(PinReason::UserVariable));
        assert_eq!(reason("'x'; SET a = 1"), Some(PinReason::SessionVariable));
    }

    #[test]
    fn pinning_use_schema_is_tracked_not_pinned() {
        assert_eq!(
            classify(b"USE sbtest").use_schema.as_deref(),
            Some(&b"sbtest"[..])
        );
        assert_eq!(
            classify(b"use `my db`;").use_schema.as_deref(),
            Some(&b"my db"[..])
        );
        assert_eq!(classify(b"USE sbtest").pin, None);
        assert_eq!(reason("USE a b"), Some(PinReason::Unknown));
        for (sql, db) in [
            ("USE db -- why\n", "db"),
            ("/* app */ USE `a``b` /* c */ ;", "a`b"),
            ("USE\n\tdb_1$;;", "db_1$"),
            ("use`db`", "db"),
        ] {
            assert_eq!(
                classify(sql.as_bytes()).use_schema.as_deref(),
                Some(db.as_bytes()),
                "{sql}"
            );
        }
        for sql in ["USE db /*! , x */", "USE dé", "USE", "USE db-x", "USEdb"] {
            assert!(classify(sql.as_bytes()).use_schema.is_none(), "{sql}");
        }
    }

    #[test]
    fn pinning_compound_statements_backups_and_later_statements() {
        for (sql, r) in [
            (
                "BEGIN NOT ATOMIC SET time_zone = '+03:00'; END",
                PinReason::Unknown,
            ),
            ("IF 1 THEN SET @x = 1; END IF", PinReason::Unknown),
            (
                "FOR i IN 1..3 DO INSERT INTO t VALUES (i); END FOR",
                PinReason::Unknown,
            ),
            ("BACKUP STAGE START", PinReason::BackupLock),
            ("DO 0; FLUSH TABLES t FOR EXPORT", PinReason::TableLock),
            ("DO 0; BACKUP LOCK t", PinReason::BackupLock),
            ("GET DIAGNOSTICS @n = NUMBER", PinReason::UserVariable),
        ] {
            assert_eq!(reason(sql), Some(r), "{sql}");
        }
        // Under sql_mode=ORACLE every `BEGIN ... END` is a block, and a
        // procedure is called without `CALL`; also as a later statement.
        for sql in [
            "BEGIN p; END",
            "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR BEGIN p; END",
            "BEGIN\n  CALL p();\nEND;",
            "BEGIN PREPARE s FROM 'SELECT 1'; END",
            "DECLARE v INT; BEGIN v := 1; END",
            "DECLARE BEGIN p; END",
            "DO 0; BEGIN NOT ATOMIC CALL p(); END",
            "DO 0; BEGIN p; END",
            "DO 0; WHILE 1 = 0 LOOP p; END LOOP",
        ] {
            assert_eq!(reason(sql), Some(PinReason::Unknown), "{sql}");
            assert!(
                classify(sql.as_bytes()).compound,
                "it may call a procedure: {sql}"
            );
        }
        for sql in [
            "BEGIN",
            "BEGIN WORK",
            "begin work;",
            "BEGIN; SELECT 1",
            "BEGIN WORK; DO 1",
        ] {
            assert_eq!(reason(sql), None, "a transaction: the status flags tell: {sql}");
        }
        assert!(classify(b"GET DIAGNOSTICS @n = NUMBER").diagnostics);
        assert_eq!(classify(b"UNLOCK TABLES").unpin, Some(PinReason::TableLock));
    }

    #[test]
    fn pinning_variables_without_a_default_pin() {
        for sql in [
            "SET rand_seed1 = 1, rand_seed2 = 2",
            "SET completion_type = 'RELEASE'",
            "SET time_zone = '+01:00', completion_type = 0",
            "SET session_track_state_change = OFF",
            "SET @@session.session_track_state_change = 1, time_zone = '+01:00'",
            // DEFAULT is the server's global charset, which Funnel does not know.
            "SET NAMES DEFAULT",
            "SET CHARACTER SET DEFAULT",
            "SET character_set_results = DEFAULT",
            "SET profiling = 1",
            "SET SESSION profiling = ON",
            "SET optimizer_trace = 'enabled=on'",
            "SET SESSION optimizer_trace = \"one_line=on, ENABLED=ON\"",
            "SET STATEMENT optimizer_trace = 'enabled=on' FOR SELECT 1",
        ] {
            let e = classify(sql.as_bytes());
            assert_eq!(
                (e.pin, e.set_vars.is_some()),
                (Some(PinReason::SessionVariable), false),
                "{sql}"
            );
        }
        for sql in [
            "SET optimizer_trace = 'enabled=off'",
            "SET optimizer_trace = DEFAULT",
            "SET profiling = 0",
            "SET SQL_AUTO_IS_NULL = 0",
            "SET sql_auto_is_null = OFF",
        ] {
            let e = classify(sql.as_bytes());
            assert_eq!((e.pin, e.set_vars.is_some()), (None, true), "{sql}");
        }
        for sql in [
            "SET last_insert_id = 9",
            "SET @@session.identity = 11",
            "SET sql_auto_is_null = 1",
        ] {
            let e = classify(sql.as_bytes());
            assert_eq!(
                (e.pin, e.set_vars.is_some()),
                (Some(PinReason::PreviousStatementInfo), false),
                "{sql}"
            );
        }
    }

    /// `COMMIT` / `ROLLBACK` with `RELEASE`: the server closes the
    /// connection after the OK (`connector_php.rs`).
    #[test]
    fn pinning_commit_and_rollback_release_are_seen() {
        for released in [
            "COMMIT RELEASE",
            "commit work and no chain release",
            "ROLLBACK /* c */ RELEASE",
            "rollback work release",
            "SELECT 1; COMMIT RELEASE",
        ] {
            assert!(classify(released.as_bytes()).releases, "{released}");
        }
        for kept in [
            "COMMIT",
            "COMMIT NO RELEASE",
            "ROLLBACK AND CHAIN NO RELEASE",
            // A syntax error: the server keeps the connection.
            "ROLLBACK AND CHAIN RELEASE",
            "commit and chain release",
            "ROLLBACK TO SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "SELECT 'COMMIT RELEASE'",
            "COMMIT; SELECT `release`",
        ] {
            assert!(!classify(kept.as_bytes()).releases, "{kept}");
        }
        assert!(ExecuteEffect::of(b"COMMIT RELEASE").releases);
        // One only a gbk reading sees (`\x95\x60` is one character).
        let hidden = classify(b"SELECT 1 AS a\x95\x60; COMMIT RELEASE -- \x60");
        assert!(!hidden.releases && hidden.may_end_session);
        assert!(!classify(b"COMMIT RELEASE").may_end_session);
        // The statement `SET STATEMENT ... FOR` runs.
        for sql in [
            "SET STATEMENT max_statement_time = 1 FOR COMMIT RELEASE",
            "SELECT 1; SET STATEMENT lock_wait_timeout = 1 FOR ROLLBACK RELEASE",
        ] {
            assert!(classify(sql.as_bytes()).releases, "{sql}");
        }
        for sql in [
            "SET STATEMENT completion_type = 2 FOR COMMIT",
            "set statement completion_type = 'RELEASE' for rollback work",
        ] {
            let e = classify(sql.as_bytes());
            assert!(e.may_end_session && !e.releases, "{sql}");
            assert!(ExecuteEffect::of(sql.as_bytes()).may_end_session, "{sql}");
        }
        for sql in [
            "SET STATEMENT completion_type = 2 FOR COMMIT NO RELEASE",
            "SET STATEMENT completion_type = 2 FOR SELECT 1",
            "SET STATEMENT max_statement_time = 1 FOR COMMIT",
            "SET completion_type = 2",
        ] {
            assert!(!classify(sql.as_bytes()).may_end_session, "{sql}");
        }
        for sql in ["COMMIT", "rollback work", "COMMIT AND CHAIN", "COMMIT RELEASE"] {
            assert!(classify(sql.as_bytes()).may_release, "{sql}");
        }
        for sql in [
            "COMMIT NO RELEASE",
            "ROLLBACK TO s",
            "COMMIT; SELECT 1",
            "SELECT 1",
        ] {
            assert!(!classify(sql.as_bytes()).may_release, "{sql}");
        }
    }

    #[test]
    fn pinning_lock_wait_options_and_temporary_drops_are_expected_reports() {
        for sql in [
            "SELECT c FROM t FOR UPDATE NOWAIT",
            "select c from t lock in share mode wait 5",
            "SELECT c FROM t FOR UPDATE WAIT\t10",
            "ALTER TABLE t WAIT 2 ADD d INT",
            "TRUNCATE TABLE t NOWAIT",
        ] {
            let e = classify(sql.as_bytes());
            assert!(e.statement_vars, "{sql}");
            assert_eq!(e.pin, None, "{sql}");
        }
        for sql in [
            "SELECT wait FROM t",
            "SELECT c FROM t WHERE c = 'WAIT 5x' OR await5",
            "SELECT 1",
        ] {
            // (A string with `WAIT 5` in a statement that names a `wait`
            // column would count: that only spares a report from pinning.)
            assert!(!classify(sql.as_bytes()).statement_vars, "{sql}");
        }
        assert!(classify(b"DROP TEMPORARY TABLE IF EXISTS t").drops_temporary);
        assert!(classify(b"drop temporary sequence s").drops_temporary);
        assert!(!classify(b"DROP TABLE t").drops_temporary);
        assert!(!classify(b"DROP TEMPORARY TABLE t; SELECT 1").drops_temporary);
        assert!(ExecuteEffect::of(b"SELECT c FROM t FOR UPDATE NOWAIT").statement_vars);
        assert!(ExecuteEffect::of(b"DROP TEMPORARY TABLE t").drops_temporary);
    }

    #[test]
    fn pinning_set_statement_counts_only_its_statement() {
        assert_eq!(reason("SET STATEMENT max_statement_time = 10 FOR SELECT 1"), None);
        assert!(classify(b"SET STATEMENT max_statement_time = 10 FOR SELECT 1").statement_vars);
        assert!(!classify(b"SELECT 1").statement_vars);
        assert!(classify(b"set statement max_statement_time=1 for select c from t").read_only);
        assert_eq!(
            reason("SET STATEMENT sql_mode = 'FOR' FOR SELECT @x := 1"),
            Some(PinReason::UserVariable)
        );
        assert_eq!(
            reason("SET STATEMENT a = (SELECT 1 FOR UPDATE), b = 2 FOR CREATE TEMPORARY TABLE t (v INT)"),
            Some(PinReason::TemporaryTable)
        );
        assert_eq!(
            reason("SET STATEMENT a = 1 FOR SET @@time_zone = '+01:00'"),
            Some(PinReason::SessionVariable)
        );
        assert_eq!(reason("SET STATEMENT a = 1"), Some(PinReason::SessionVariable));
    }

    /// The server calls a lock function by a backquoted name, and under
    /// `ANSI_QUOTES` or `MSSQL` by a `"` or `[]` quoted one: it pins, and
    /// its name is not read (only `RELEASE_ALL_LOCKS()` ends the pin).
    #[test]
    fn pinning_lock_functions_called_by_quoted_names() {
        for sql in [
            "SELECT `GET_LOCK`('l', 0)",
            "SELECT `get_lock` /* x */ ('l', 0)",
            r#"SELECT "GET_LOCK"('l', 0)"#,
            "SELECT [GET_LOCK]('l', 0)",
            "SELECT GET_LOCK('a', 0), `GET_LOCK`('b', 0)",
        ] {
            let e = classify(sql.as_bytes());
            assert_eq!(e.pin, Some(PinReason::NamedLock), "{sql}");
            assert_eq!(e.lock_names, LockNames::Opaque, "{sql}");
        }
        assert_eq!(
            classify(b"SELECT `RELEASE_ALL_LOCKS`()").unpin,
            Some(PinReason::NamedLock)
        );
        for sql in ["SELECT `GET_LOCK` FROM t", "SELECT 'GET_LOCK'"] {
            assert_eq!(reason(sql), None, "{sql}");
        }
    }

    /// Under `sql_mode=MSSQL` `[...]` is a quoted name: a quote inside it
    /// opens no string, so what a string would hide in the usual reading
    /// runs.
    #[test]
    fn pinning_reads_bracketed_names_as_mssql_does() {
        for (sql, r) in [
            ("SELECT 1 AS [a'], @v := 5 AS [']", PinReason::UserVariable),
            ("SELECT 1 AS [a'], GET_LOCK('l', 0) AS [']", PinReason::NamedLock),
            (r#"SELECT [a\"], @v := 5, [\"']"#, PinReason::UserVariable),
            ("SELECT 1 AS [a]]'], @v := 5 AS [']", PinReason::UserVariable),
            (
                "SELECT [x'] FROM t; SET time_zone = @@time_zone; SELECT [']",
                PinReason::SessionVariable,
            ),
        ] {
            assert_eq!(reason(sql), Some(r), "{sql}");
        }
        for sql in [
            "SELECT [x] FROM t",
            "SELECT '[a''', 1",
            r#"SELECT "[", 1"#,
            "SELECT 1 AS [a",
        ] {
            assert_eq!(reason(sql), None, "{sql}");
        }
        for sql in [
            "SELECT 1 AS [a']; KILL QUERY 5; SELECT [']",
            "SELECT [a'];SHUTDOWN;[']",
            "SELECT [a'];PREPARE s FROM 'KILL 5';[']",
        ] {
            assert!(refusal(sql.as_bytes()).is_some(), "{sql}");
        }
        assert_eq!(refusal(b"SELECT [KILL 5] FROM t"), None);
    }

    #[test]
    fn pinning_last_insert_id_set_through_comments_or_backquotes() {
        for sql in [
            "SELECT `LAST_INSERT_ID`(5)",
            "SELECT LAST_INSERT_ID/**/(5)",
            "DO LAST_INSERT_ID\x0b(5)",
        ] {
            assert_eq!(reason(sql), Some(PinReason::PreviousStatementInfo), "{sql:?}");
        }
        for sql in ["SELECT LAST_INSERT_ID(/* x */)", "SELECT `LAST_INSERT_ID` ( )"] {
            assert_eq!(reason(sql), None, "a read, rewritten: {sql}");
        }
        // Whitespace is read to its end; comments only so far.
        let spaces = " ".repeat(1000);
        assert_eq!(reason(&format!("SELECT LAST_INSERT_ID{spaces}(){spaces}")), None);
        assert_eq!(
            reason(&format!("SELECT LAST_INSERT_ID /*{spaces}*/ ()")),
            Some(PinReason::PreviousStatementInfo),
            "assumed a setter"
        );
    }

    #[test]
    fn pinning_sequence_values_keep_the_connection() {
        for sql in [
            "SELECT NEXTVAL(s)",
            "INSERT INTO t VALUES (nextval(s), 1)",
            "SELECT NEXT VALUE FOR s",
            "SELECT previous value for s",
            "SELECT LASTVAL(s)",
            "SELECT SETVAL(s, 100)",
            // sql_mode=ORACLE's `s.NEXTVAL` and `s.CURRVAL` (= LASTVAL(s)).
            "SELECT s.nextval FROM DUAL",
            "SELECT s.CURRVAL FROM DUAL",
        ] {
            assert_eq!(reason(sql), Some(PinReason::PreviousStatementInfo), "{sql}");
        }
        // Words in strings, or the words apart, are not sequence functions.
        assert_eq!(reason("SELECT 'NEXTVAL(s)'"), None);
        assert_eq!(reason("SELECT next, value FROM t"), None);
    }

    #[test]
    fn pinning_prepared_statements_pin_on_the_state_they_make() {
        let pin = |sql: &str| ExecuteEffect::of(sql.as_bytes()).pin;
        // Tracked as a query, but an execute's values are parameters: it pins.
        assert_eq!(pin("SET time_zone = ?"), Some(PinReason::SessionVariable));
        assert_eq!(pin("SET SESSION sql_mode = ?"), Some(PinReason::SessionVariable));
        assert_eq!(pin("SET @x = ?"), Some(PinReason::UserVariable));
        assert_eq!(pin("SELECT GET_LOCK(?, 0)"), Some(PinReason::NamedLock));
        assert_eq!(
            pin("CREATE TEMPORARY TABLE t (v INT)"),
            Some(PinReason::TemporaryTable)
        );
        assert_eq!(
            pin("create or replace temporary table t (v INT)"),
            Some(PinReason::TemporaryTable)
        );
        assert_eq!(pin("CREATE TABLE temporary_things (v INT)"), None);
        assert_eq!(pin("CALL p(?)"), Some(PinReason::StoredProcedure));
        assert_eq!(pin("SELECT c FROM sbtest1 WHERE id = ?"), None);
        assert_eq!(pin("INSERT INTO t VALUES (?)"), None);
        assert_eq!(
            ExecuteEffect::of(b"SELECT RELEASE_ALL_LOCKS()").unpin,
            Some(PinReason::NamedLock)
        );
        // The last insert id is given to the connection, not pinned for.
        let id = ExecuteEffect::of(b"SELECT LAST_INSERT_ID()");
        assert_eq!((id.pin, id.sets_last_insert_id), (None, true));
        assert!(!ExecuteEffect::of(b"SELECT ROW_COUNT()").sets_last_insert_id);
    }
}

/// The lasting reasons a session keeps its connection: it is released only
/// when none is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinSet(std::collections::BTreeSet<PinReason>);

impl PinSet {
    /// Adds a reason; true when it was not there yet.
    pub fn insert(&mut self, r: PinReason) -> bool {
        self.0.insert(r)
    }

    /// Removes a reason that ended.
    pub fn remove(&mut self, r: PinReason) {
        self.0.remove(&r);
    }

    /// True when `r` is among the reasons.
    pub fn contains(&self, r: PinReason) -> bool {
        self.0.contains(&r)
    }

    /// True when `r` is the one reason left.
    pub fn is_only(&self, r: PinReason) -> bool {
        self.0.len() == 1 && self.0.contains(&r)
    }

    /// True when every reason is one of `reasons` (also when there is none).
    pub fn is_only_among(&self, reasons: &[PinReason]) -> bool {
        self.0.iter().all(|r| reasons.contains(r))
    }

    /// True when nothing holds the connection.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets every reason (reset, change user, lost connection).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// True when a `COM_RESET_CONNECTION` undoes all that holds the
    /// connection (once no transaction is open: the caller checks that):
    /// variables, temporary tables, table and named locks, statements,
    /// cursors, handlers, a procedure's or stored code's state, and what
    /// a statement a rule pins for left (its own reasons, when Funnel
    /// sees any, are in the set beside it). Not a
    /// backup lock or a replication variable, and not what Funnel did not
    /// understand: those connections are closed instead.
    pub fn undone_by_reset(&self) -> bool {
        use PinReason::*;
        self.0.iter().all(|r| {
            matches!(
                r,
                AutocommitOff
                    | SessionVariable
                    | UserVariable
                    | TemporaryTable
                    | TableLock
                    | NamedLock
                    | SqlPrepare
                    | PreparedStatement
                    | Handler
                    | PreviousStatementInfo
                    | StoredProcedure
                    | Cursor
                    | NextTransaction
                    | UntrackedState
                    | QueryRule
            )
        })
    }

    /// True when a reason holds state that may change what the server
    /// answers to a prepare: it refuses statements on tables a `LOCK
    /// TABLES` or backup lock leaves out, describes a temporary table's
    /// columns rather than those of the table it hides, and parses under
    /// variables Funnel does not know (a `SET` it could not replay, a
    /// procedure's or a function's). A user variable, a named lock or a
    /// previous statement's answers change nothing there.
    pub fn shape_prepares(&self) -> bool {
        use PinReason::*;
        self.0.iter().any(|r| {
            matches!(
                r,
                TemporaryTable
                    | TableLock
                    | BackupLock
                    | SessionVariable
                    | StoredProcedure
                    | UntrackedState
                    | QueryRule
                    | Unknown
            )
        })
    }

    /// One reason, for reporting.
    pub fn first(&self) -> Option<PinReason> {
        self.0.iter().next().copied()
    }
}
