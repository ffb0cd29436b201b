//! Answers about the previous statement, made independent of the backend
//! connection: `LAST_INSERT_ID()`, `ROW_COUNT()`, `FOUND_ROWS()` and
//! `CONNECTION_ID()` in a text query, and the system variables that read the
//! same id (`@@identity`, `@@last_insert_id`), are replaced by the values of
//! the client's own last results (as Vitess does), so the query may run on
//! any connection. Calls inside strings, quoted names and comments are left
//! alone.

use std::fmt::Write as _;

use super::sql_lex::{skip_blanks, skip_blanks_near, skip_string_or_comment, word_end};

/// What the client's own previous statements left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastResults {
    /// The last auto-generated id (kept until another statement generates one).
    pub last_insert_id: u64,
    /// Rows changed by the last statement; -1 after a result set or an error.
    pub row_count: i64,
    /// Rows the last result set had.
    pub found_rows: u64,
}

/// Functions replaced, upper-case.
const FUNCTIONS: [&str; 4] = ["LAST_INSERT_ID", "ROW_COUNT", "FOUND_ROWS", "CONNECTION_ID"];

/// System variables that read `LAST_INSERT_ID()`, upper-case.
const ID_VARIABLES: [&[u8]; 2] = [b"IDENTITY", b"LAST_INSERT_ID"];

/// True when `sql` may call one of the functions with no arguments or read
/// one of the variables (cheap pre-check on the hot path: no allocation
/// when absent).
pub fn mentions_previous_statement(sql: &[u8]) -> bool {
    mentions_function(sql) || mentions_id_variable(sql) || mentions_sql_rowcount(sql)
}

/// `SQL%ROWCOUNT` somewhere (maybe in a string or a comment), or a `SQL`
/// followed by more blanks and comments than are worth reading.
fn mentions_sql_rowcount(sql: &[u8]) -> bool {
    let rowcount_at = |at: usize| {
        let Some(percent) = skip_blanks_near(sql, at) else {
            return true;
        };
        if sql.get(percent) != Some(&b'%') {
            return false;
        }
        let Some(start) = skip_blanks_near(sql, percent + 1) else {
            return true;
        };
        sql[start..word_end(sql, start)].eq_ignore_ascii_case(b"ROWCOUNT")
    };
    memchr::memchr(b'%', sql).is_some()
        && sql.windows(3).enumerate().any(|(i, w)| {
            w.eq_ignore_ascii_case(b"SQL") && (i == 0 || word_end(sql, i - 1) == i - 1) && rowcount_at(i + 3)
        })
}

/// `SQL%ROWCOUNT` (blanks and comments allowed around the `%`) when the
/// word `SQL` ends at `at`: its end.
fn sql_rowcount(sql: &[u8], at: usize) -> Option<usize> {
    let percent = skip_blanks(sql, at);
    if sql.get(percent) != Some(&b'%') {
        return None;
    }
    let start = skip_blanks(sql, percent + 1);
    let end = word_end(sql, start);
    sql[start..end].eq_ignore_ascii_case(b"ROWCOUNT").then_some(end)
}

/// `@@` followed, after an optional scope, by an id variable's name.
fn mentions_id_variable(sql: &[u8]) -> bool {
    // Every query is scanned: memchr's pass, not a byte loop.
    memchr::memchr_iter(b'@', sql).any(|at| {
        sql.get(at + 1) == Some(&b'@') && {
            let (name, _) = system_variable_name(sql, at + 2);
            ID_VARIABLES.iter().any(|v| name.eq_ignore_ascii_case(v))
        }
    })
}

/// The name of the system variable whose text starts at `at` (after `@@`),
/// without a `session.` or `local.` scope, and where it ends.
fn system_variable_name(sql: &[u8], at: usize) -> (&[u8], usize) {
    let end = word_end(sql, at);
    let first = &sql[at..end];
    if sql.get(end) == Some(&b'.')
        && (first.eq_ignore_ascii_case(b"session") || first.eq_ignore_ascii_case(b"local"))
    {
        let name_end = word_end(sql, end + 1);
        return (&sql[end + 1..name_end], name_end);
    }
    (first, end)
}

fn mentions_function(sql: &[u8]) -> bool {
    // Every name has an underscore: compare names only around underscores,
    // one pass over the text (memchr's) instead of one per name and offset.
    memchr::memchr_iter(b'_', sql).any(|at| {
        FUNCTIONS.iter().any(|f| {
            let before = f.find('_').unwrap_or(0);
            at.checked_sub(before)
                .and_then(|start| sql.get(start..start + f.len()))
                .is_some_and(|w| w.eq_ignore_ascii_case(f.as_bytes()))
        })
    })
}

/// What a statement reads about the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mention {
    /// `LAST_INSERT_ID()`, `@@identity`, `@@last_insert_id`.
    LastInsertId,
    /// `ROW_COUNT()`.
    RowCount,
    /// `FOUND_ROWS()`.
    FoundRows,
    /// `CONNECTION_ID()`.
    ConnectionId,
    /// `SQL%ROWCOUNT` (`sql_mode=ORACLE`): `ROW_COUNT()`, or after a
    /// statement that returned rows (`ROW_COUNT()` -1) `FOUND_ROWS()`.
    SqlRowCount,
}

/// What each of [`FUNCTIONS`] reads.
const MENTIONS: [Mention; 4] = [
    Mention::LastInsertId,
    Mention::RowCount,
    Mention::FoundRows,
    Mention::ConnectionId,
];

/// Where in a multi-statement query a read stands.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    /// After the first statement.
    later: bool,
    /// After a statement that returns rows (and so sets `FOUND_ROWS()`).
    after_rows: bool,
}

/// True when the statement `stmt` may return rows, by its first word.
fn returns_rows(stmt: &[u8]) -> bool {
    const WORDS: [&[u8]; 14] = [
        b"SELECT",
        b"WITH",
        b"VALUES",
        b"TABLE",
        b"SHOW",
        b"CALL",
        b"EXPLAIN",
        b"DESCRIBE",
        b"DESC",
        b"HELP",
        b"CHECK",
        b"ANALYZE",
        b"OPTIMIZE",
        b"REPAIR",
    ];
    let s = super::sql_lex::skip_leading_comments(stmt);
    s.starts_with(b"(") || WORDS.iter().any(|w| super::sql_lex::first_word_is(s, w))
}

/// Words after which a name is a table's or a procedure's, never a call,
/// also when `()` follows (`INSERT INTO row_count () VALUES ()`,
/// `` CALL `found_rows`() ``).
const NAMES_OBJECT: [&[u8]; 8] = [
    b"INTO",
    b"CALL",
    b"INSERT",
    b"REPLACE",
    b"IGNORE",
    b"LOW_PRIORITY",
    b"DELAYED",
    b"TABLE",
];

/// Calls `f(mention, start, end, place)` for each read in `sql`, in order,
/// outside strings, quoted names and comments.
fn each_mention(sql: &[u8], mut f: impl FnMut(Mention, usize, usize, Place)) {
    // In `SET @@identity = 5` the variable is assigned, not read.
    let in_set = super::sql_lex::first_word_is(sql, b"SET");
    let assigned = |end: usize| {
        let rest = sql[end..].trim_ascii_start();
        in_set && (rest.starts_with(b":=") || (rest.starts_with(b"=") && !rest.starts_with(b"==")))
    };
    let mut place = Place::default();
    let mut statement_start = 0;
    // The token before was one of `NAMES_OBJECT` (blanks and comments
    // between).
    let mut names_object = false;
    let mut i = 0;
    while i < sql.len() {
        if super::sql_lex::is_blank(sql[i]) {
            i += 1;
            continue;
        }
        let object = std::mem::take(&mut names_object);
        // A qualified name (`t.found_rows`) is a column, not a call.
        let qualified = i > 0 && sql[i - 1] == b'.';
        if sql[i] == b'`' && !qualified && !object {
            if let Some((at, end)) =
                quoted_function(sql, i).and_then(|(at, name_end)| Some((at, empty_call(sql, name_end)?)))
            {
                f(MENTIONS[at], i, end, place);
                i = end;
                continue;
            }
        }
        if let Some(next) = skip_string_or_comment(sql, i) {
            // A comment is a blank.
            names_object = object && !matches!(sql[i], b'\'' | b'"' | b'`');
            i = next;
            continue;
        }
        match sql[i] {
            b';' => {
                place.after_rows |= returns_rows(&sql[statement_start..i]);
                place.later = true;
                i += 1;
                statement_start = i;
            }
            b'@' if sql.get(i + 1) == Some(&b'@') => {
                let start = i;
                let (name, end) = system_variable_name(sql, i + 2);
                i = end.max(i + 2);
                if ID_VARIABLES.iter().any(|v| name.eq_ignore_ascii_case(v)) && !assigned(end) {
                    f(Mention::LastInsertId, start, end, place);
                }
            }
            // A user variable's name is not a function call.
            b'@' => i = word_end(sql, i + 1),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                i = word_end(sql, i);
                let word = &sql[start..i];
                names_object = NAMES_OBJECT.iter().any(|w| word.eq_ignore_ascii_case(w));
                if object {
                    continue;
                }
                let qualified = start > 0 && sql[start - 1] == b'.';
                if let Some(end) =
                    sql_rowcount(sql, i).filter(|_| word.eq_ignore_ascii_case(b"SQL") && !qualified)
                {
                    f(Mention::SqlRowCount, start, end, place);
                    i = end;
                    continue;
                }
                let Some(at) = FUNCTIONS
                    .iter()
                    .position(|f| word.eq_ignore_ascii_case(f.as_bytes()))
                else {
                    continue;
                };
                let Some(end) = empty_call(sql, i) else { continue };
                // A qualified name (`t.found_rows`) is a column, not a call.
                if start > 0 && sql[start - 1] == b'.' {
                    continue;
                }
                f(MENTIONS[at], start, end, place);
                i = end;
            }
            _ => i += 1,
        }
    }
}

/// True when `sql` gives the connection a last insert id of its own
/// choosing: `LAST_INSERT_ID(expr)` or an assignment to `last_insert_id` /
/// `identity` (outside strings, quoted names and comments).
pub fn sets_last_insert_id(sql: &[u8]) -> bool {
    // Runs on every query: the scan for a bare `identity` (only assigned in
    // a `SET`) is skipped for the rest.
    let in_set = super::sql_lex::first_word_is(sql, b"SET");
    let may_set = mentions_previous_statement(sql)
        || (in_set && sql.windows(8).any(|w| w.eq_ignore_ascii_case(b"IDENTITY")));
    if !may_set {
        return false;
    }
    let mut i = 0;
    while i < sql.len() {
        // `` `LAST_INSERT_ID`(5) `` sets it too.
        if let Some((0, end)) = (sql[i] == b'`').then(|| quoted_function(sql, i)).flatten() {
            let open = skip_blanks(sql, end);
            if sql.get(open) == Some(&b'(') && empty_call(sql, end).is_none() {
                return true;
            }
        }
        if let Some(next) = skip_string_or_comment(sql, i) {
            i = next;
            continue;
        }
        if !(sql[i].is_ascii_alphabetic() || sql[i] == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        i = word_end(sql, i).max(i + 1);
        let word = &sql[start..i];
        // A user variable's name (`@identity`), not a system variable's.
        let user_variable = start > 0 && sql[start - 1] == b'@' && (start < 2 || sql[start - 2] != b'@');
        if user_variable {
            continue;
        }
        let after = &sql[skip_blanks(sql, i)..];
        if word.eq_ignore_ascii_case(b"LAST_INSERT_ID")
            && after.starts_with(b"(")
            && empty_call(sql, i).is_none()
        {
            return true;
        }
        let assigned = after.starts_with(b":=") || (after.starts_with(b"=") && !after.starts_with(b"=="));
        if in_set
            && assigned
            && (word.eq_ignore_ascii_case(b"LAST_INSERT_ID") || word.eq_ignore_ascii_case(b"IDENTITY"))
        {
            return true;
        }
    }
    false
}

/// True when `sql` reads the last insert id somewhere.
pub fn mentions_last_insert_id(sql: &[u8]) -> bool {
    let mut any = false;
    each_mention(sql, |m, _, _, _| any |= m == Mention::LastInsertId);
    any
}

/// True when `sql`, sent as written (text Funnel cannot read, a
/// definition), may read the last insert id on the server: a read
/// [`mentions_last_insert_id`] finds, or the name anywhere in a text with
/// an executable comment, whose content the server runs (`SELECT /*!
/// LAST_INSERT_ID() */`, `/*M!100000 ... */`) where the scan sees a comment.
pub fn may_read_last_insert_id(sql: &[u8]) -> bool {
    let executable = sql.windows(3).any(|w| w == b"/*!") || sql.windows(4).any(|w| w == b"/*M!");
    let named = |name: &[u8]| sql.windows(name.len()).any(|w| w.eq_ignore_ascii_case(name));
    mentions_last_insert_id(sql) || (executable && (named(b"LAST_INSERT_ID") || named(b"IDENTITY")))
}

/// True when `sql` may call `LAST_INSERT_ID()` by a `"` or `[]` quoted
/// name, as the server does under `ANSI_QUOTES` or `MSSQL`
/// (`"LAST_INSERT_ID"()`): not rewritten (in the default mode the text is
/// a syntax error, which a rewrite would answer), but the connection needs
/// the client's id first. Read anywhere in the text, strings included.
pub fn quoted_last_insert_id_call(sql: &[u8]) -> bool {
    const NAME: &[u8] = b"LAST_INSERT_ID";
    sql.windows(NAME.len() + 2).enumerate().any(|(i, w)| {
        matches!((w[0], w[NAME.len() + 1]), (b'"', b'"') | (b'[', b']'))
            && w[1..=NAME.len()].eq_ignore_ascii_case(NAME)
            && skip_blanks_near(sql, i + NAME.len() + 2).is_none_or(|open| sql.get(open) == Some(&b'('))
    })
}

/// True when another reading the server may make of `sql` (in sjis, gbk
/// or big5, under `MSSQL` or `ANSI_QUOTES`, without backslash escapes: see
/// [`super::pinning::escape_readings`]) reads the previous statement's
/// results where the usual one, which [`substitute`] rewrites, sees none:
/// in gbk `SELECT 1 AS a\xad\x60, LAST_INSERT_ID() -- \x60` calls it
/// (`\xad\x60` is one character), where the usual reading sees a quoted
/// name. The server answers such a read: the connection must be given the
/// client's id first, or the answer is what another client left there.
pub fn other_reading_reads_previous(sql: &[u8]) -> bool {
    let mut usual = Vec::new();
    each_mention(sql, |_, start, _, _| usual.push(start));
    // Each reading keeps the text's length: a read is where it was.
    super::pinning::escape_readings(sql).skip(1).any(|reading| {
        let mut hidden = false;
        each_mention(&reading, |_, start, _, _| hidden |= !usual.contains(&start));
        hidden
    })
}

/// True when a statement after the first of a multi-statement query reads
/// the last insert id. Such reads are left to the server, which answers
/// for the query's own earlier inserts; the connection must be given the
/// client's id first, for when none of them inserted.
pub fn later_statement_reads_last_insert_id(sql: &[u8]) -> bool {
    let mut any = false;
    each_mention(sql, |m, _, _, at| any |= at.later && m == Mention::LastInsertId);
    any
}

/// True when every read in `sql` is of the last insert id, which a backend
/// connection can be given before a prepared statement runs (the others,
/// and any mention this scan cannot place, pin instead).
pub fn reads_only_last_insert_id(sql: &[u8]) -> bool {
    // A name the scan cannot place as a call (`ROW_COUNT/**/()`) counts too.
    let names_another = ["ROW_COUNT", "FOUND_ROWS", "CONNECTION_ID"]
        .iter()
        .any(|f| sql.windows(f.len()).any(|w| w.eq_ignore_ascii_case(f.as_bytes())));
    if names_another {
        return false;
    }
    let mut only = true;
    let mut any = false;
    each_mention(sql, |m, _, _, _| {
        any = true;
        only &= m == Mention::LastInsertId;
    });
    any && only
}

/// Which answers about the previous statement the session's own
/// connection has (it is pinned for them, `PreviousStatementInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnServer {
    /// None: every read is replaced.
    None,
    /// All but the last insert id: the pin began on a connection that
    /// never saw the client's inserts.
    AllButInsertId,
    /// All of them.
    All,
}

/// What [`substitute`] replaces, and with what.
#[derive(Debug, Clone, Copy)]
pub struct Substitution<'a> {
    /// The client's own answers, as Funnel recorded them.
    pub last: &'a LastResults,
    /// Funnel's id for `CONNECTION_ID()`; `None` leaves the call alone.
    pub connection_id: Option<u32>,
    /// `FOUND_ROWS()` is replaced (false: it is left alone).
    pub found_rows: bool,
    /// The session's own connection has run every statement the answers
    /// are about (it is pinned for them): the server answers, and only
    /// `CONNECTION_ID()` is replaced (and the last insert id, when the
    /// connection does not have it).
    pub on_server: OnServer,
    /// The server's `ROW_COUNT()` is not the client's though it is
    /// `on_server` (Funnel ran a statement of its own there after the
    /// client's last one): `ROW_COUNT()` is replaced.
    pub own_row_count: bool,
    /// Likewise for `FOUND_ROWS()` (the pin began with a statement that
    /// set no count there).
    pub own_found_rows: bool,
    /// The session may be in `sql_mode=ORACLE`: `SQL%ROWCOUNT` is
    /// replaced. False where its `sql_mode` is a literal of its own
    /// without `ORACLE`: the server's syntax error is the answer there,
    /// and its message quotes the query's text from `%ROWCOUNT` on, which
    /// a replaced text would change.
    pub sql_rowcount: bool,
}

impl<'a> Substitution<'a> {
    /// Every answer from Funnel's record (a session not pinned for them).
    pub fn from_record(last: &'a LastResults, connection_id: Option<u32>) -> Self {
        Substitution {
            last,
            connection_id,
            found_rows: true,
            on_server: OnServer::None,
            own_row_count: false,
            own_found_rows: false,
            sql_rowcount: true,
        }
    }
}

/// `sql` with the calls replaced as `how` says, or `None` when there was
/// none. After the first statement of a multi-statement query the server
/// answers too, about the query's own earlier statements on the same
/// connection: the last insert id (which the caller gives the connection
/// first, for when none of them inserted) and `ROW_COUNT()` always,
/// `FOUND_ROWS()` once a statement returned rows.
pub fn substitute(sql: &[u8], how: &Substitution<'_>) -> Option<Vec<u8>> {
    let Substitution {
        last,
        connection_id,
        found_rows,
        on_server,
        own_row_count,
        own_found_rows,
        sql_rowcount,
    } = *how;
    let mut out: Vec<u8> = Vec::with_capacity(sql.len() + 16);
    let mut copied = 0;
    let mut changed = false;
    // Select items the calls are part of (`LAST_INSERT_ID() + 1`): each
    // gets its own text as its name once its end is copied.
    let items = select_items(sql);
    let mut to_name: Option<(usize, usize)> = None;
    each_mention(sql, |mention, start, end, at| {
        let server_answers = match mention {
            Mention::ConnectionId => false,
            Mention::LastInsertId => on_server == OnServer::All || at.later,
            Mention::RowCount => (on_server != OnServer::None && !own_row_count) || at.later,
            Mention::FoundRows => (on_server != OnServer::None && !own_found_rows) || at.after_rows,
            // ROW_COUNT(), or FOUND_ROWS() where that is -1: the server
            // answers where it answers both (the session is pinned for
            // them, seed 400310: after a `SELECT ... INTO` the record's
            // count of rows is another statement's); after the query's
            // first statement it has them too.
            Mention::SqlRowCount => {
                at.later
                    || !sql_rowcount
                    || (on_server != OnServer::None && !own_row_count && !own_found_rows)
            }
        };
        if server_answers {
            return;
        }
        let value = match mention {
            Mention::LastInsertId if sql[start] == b'@' => Typed::IdVariable(last.last_insert_id),
            Mention::LastInsertId => Typed::Unsigned(last.last_insert_id),
            Mention::RowCount => Typed::Signed(last.row_count, "ROW_COUNT()"),
            Mention::FoundRows if found_rows => {
                Typed::Signed(i64::try_from(last.found_rows).unwrap_or(i64::MAX), "FOUND_ROWS()")
            }
            Mention::ConnectionId => match connection_id {
                Some(id) => Typed::ConnectionId(id),
                None => return,
            },
            Mention::FoundRows => return,
            Mention::SqlRowCount if last.row_count != -1 => Typed::Signed(last.row_count, "SQL%ROWCOUNT"),
            Mention::SqlRowCount if found_rows => {
                Typed::Signed(i64::try_from(last.found_rows).unwrap_or(i64::MAX), "SQL%ROWCOUNT")
            }
            Mention::SqlRowCount => return,
        };
        if let Some((item_start, item_end)) = to_name.filter(|&(_, e)| e <= start) {
            name_item(&mut out, sql, &mut copied, item_start, item_end);
            to_name = None;
        }
        out.extend_from_slice(&sql[copied..start]);
        let _ = write!(Lit(&mut out), "{value}");
        if is_select_item(sql, start, end) {
            // Keep the column name the client sees: the text as typed.
            push_alias(&mut out, &sql[start..end]);
        } else if to_name.is_none() {
            to_name = items
                .iter()
                .find(|&&(s, e)| s <= start && end <= e)
                .copied()
                .filter(|&(s, e)| nameable_item(&sql[s..e]));
        }
        copied = end;
        changed = true;
    });
    if !changed {
        return None;
    }
    if let Some((item_start, item_end)) = to_name {
        name_item(&mut out, sql, &mut copied, item_start, item_end);
    }
    out.extend_from_slice(&sql[copied..]);
    Some(out)
}

/// Copies `sql` up to `item_end` and names the item there by its text
/// (`item_start..item_end`), as the server names it unaliased.
fn name_item(out: &mut Vec<u8>, sql: &[u8], copied: &mut usize, item_start: usize, item_end: usize) {
    out.extend_from_slice(&sql[*copied..item_end]);
    push_alias(out, &sql[item_start..item_end]);
    *copied = item_end;
}

/// ` AS `, then `name` in backquotes (its own doubled: `` `LAST_INSERT_ID`() ``).
fn push_alias(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(b" AS `");
    for &b in name {
        if b == b'`' {
            out.push(b'`');
        }
        out.push(b);
    }
    out.push(b'`');
}

/// Words that end a select list (at depth 0).
const LIST_ENDS: [&[u8]; 16] = [
    b"FROM",
    b"INTO",
    b"WHERE",
    b"GROUP",
    b"HAVING",
    b"ORDER",
    b"LIMIT",
    b"UNION",
    b"EXCEPT",
    b"INTERSECT",
    b"FOR",
    b"LOCK",
    b"WINDOW",
    b"PROCEDURE",
    b"OFFSET",
    b"FETCH",
];

/// The items of the select list of each statement of `sql` that starts
/// with `SELECT`, each as the range of its text without the spaces around
/// it (what the server names an unaliased item by).
fn select_items(sql: &[u8]) -> Vec<(usize, usize)> {
    let mut items = Vec::new();
    let mut stmt_start = 0;
    while stmt_start < sql.len() {
        let mut i = stmt_start;
        let rest = super::sql_lex::skip_leading_comments(&sql[stmt_start..]);
        let in_list = super::sql_lex::first_word_is(rest, b"SELECT");
        if in_list {
            i = sql.len() - rest.len() + 6;
        }
        let mut item_start = i;
        let mut depth = 0usize;
        let mut listing = in_list;
        let push = |from: usize, to: usize, items: &mut Vec<(usize, usize)>| {
            let text = &sql[from..to];
            let lead = text.len() - text.trim_ascii_start().len();
            let trail = text.len() - text.trim_ascii_end().len();
            if from + lead < to - trail {
                items.push((from + lead, to - trail));
            }
        };
        while i < sql.len() {
            if let Some(next) = skip_string_or_comment(sql, i) {
                i = next;
                continue;
            }
            match sql[i] {
                b';' => break,
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                b',' if listing && depth == 0 => {
                    push(item_start, i, &mut items);
                    item_start = i + 1;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let end = word_end(sql, i);
                    let word = &sql[i..end];
                    if listing
                        && depth == 0
                        && (i == 0 || sql[i - 1] != b'.')
                        && LIST_ENDS.iter().any(|w| word.eq_ignore_ascii_case(w))
                    {
                        push(item_start, i, &mut items);
                        listing = false;
                    }
                    i = end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        if listing {
            push(item_start, i, &mut items);
        }
        stmt_start = i + 1;
    }
    items
}

/// Select options that may open a select list: not part of an item's name.
const SELECT_OPTIONS: [&[u8]; 11] = [
    b"ALL",
    b"DISTINCT",
    b"DISTINCTROW",
    b"HIGH_PRIORITY",
    b"STRAIGHT_JOIN",
    b"SQL_SMALL_RESULT",
    b"SQL_BIG_RESULT",
    b"SQL_BUFFER_RESULT",
    b"SQL_CACHE",
    b"SQL_NO_CACHE",
    b"SQL_CALC_FOUND_ROWS",
];

/// True when the select item `item` surely has no alias of its own and
/// its text is its name as it stands, so an `AS` with that text may
/// follow it: plain ASCII without comments or an `AS` outside
/// parentheses, not opened by a select option, and ending in `)`, a
/// number, `NULL`, `TRUE`, `FALSE` or a name right after an operator
/// (any other last word may be an alias: `LAST_INSERT_ID() id`).
fn nameable_item(item: &[u8]) -> bool {
    if item.len() > 256 || !item.is_ascii() {
        return false;
    }
    let first = &item[..word_end(item, 0)];
    if SELECT_OPTIONS.iter().any(|w| first.eq_ignore_ascii_case(w)) {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < item.len() {
        match item[i] {
            b'\'' | b'"' | b'`' => i = super::sql_lex::skip_quoted(item, i, item[i]),
            b'#' | b'/' | b'-' if skip_string_or_comment(item, i).is_some() => return false,
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' => {
                let end = word_end(item, i);
                if depth == 0 && item[i..end].eq_ignore_ascii_case(b"AS") {
                    return false;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    if item.ends_with(b")") {
        return true;
    }
    let word_start = item
        .iter()
        .rposition(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'))
        .map_or(0, |p| p + 1);
    let word = &item[word_start..];
    if word.is_empty() {
        return false;
    }
    if word.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        || [&b"NULL"[..], b"TRUE", b"FALSE"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w))
    {
        return true;
    }
    item[..word_start]
        .trim_ascii_end()
        .last()
        .is_some_and(|c| b"+-*/%=<>&|^".contains(c))
}

/// True when `sql[start..end]` is a whole item of a select list: after
/// `SELECT` or a comma, and before a comma, `FROM`, `;` or the end (not
/// inside an expression, not already aliased).
fn is_select_item(sql: &[u8], start: usize, end: usize) -> bool {
    let before = sql[..start].trim_ascii_end();
    let after = sql[end..].trim_ascii_start();
    let before_ok = before.ends_with(b",")
        || (before.len() >= 6
            && before[before.len() - 6..].eq_ignore_ascii_case(b"SELECT")
            && before
                .len()
                .checked_sub(7)
                .is_none_or(|i| !before[i].is_ascii_alphanumeric()));
    let after_ok = after.is_empty()
        || after.starts_with(b",")
        || after.starts_with(b";")
        || (after.len() >= 4
            && after[..4].eq_ignore_ascii_case(b"FROM")
            && after.get(4).is_none_or(|c| !c.is_ascii_alphanumeric()));
    before_ok && after_ok
}

/// `(` `)` right after position `at`, with blanks and comments before and
/// inside the parenthesis (the server calls the function after any of
/// them, IGNORE_SPACE or not: `LAST_INSERT_ID/**/()`): its end.
fn empty_call(sql: &[u8], at: usize) -> Option<usize> {
    let open = skip_blanks(sql, at);
    if sql.get(open) != Some(&b'(') {
        return None;
    }
    let close = skip_blanks(sql, open + 1);
    (sql.get(close) == Some(&b')')).then_some(close + 1)
}

/// The function of [`FUNCTIONS`] a name in backquotes at `i` spells
/// (`` `LAST_INSERT_ID`() `` calls the built-in), and where the name ends.
fn quoted_function(sql: &[u8], i: usize) -> Option<(usize, usize)> {
    let end = super::sql_lex::skip_quoted(sql, i, b'`');
    let name = sql.get(i + 1..end.checked_sub(1)?)?;
    let at = FUNCTIONS
        .iter()
        .position(|f| name.eq_ignore_ascii_case(f.as_bytes()))?;
    Some((at, end))
}

/// A value written as an expression the server types exactly as the call
/// it replaces, so the column metadata a client sees (type, length,
/// signedness, nullability) does not change: drivers pick the value's type
/// from it (a bare `42` would be a 2-digit `LONG`). The server sizes an
/// integer literal by its digits, zeros in front included, and `CAST` keeps
/// that length.
enum Typed {
    /// `LAST_INSERT_ID()`: `BIGINT UNSIGNED NOT NULL`, length 21.
    Unsigned(u64),
    /// `@@identity`, `@@last_insert_id`: the same, but nullable.
    IdVariable(u64),
    /// `ROW_COUNT()`, `FOUND_ROWS()`, `SQL%ROWCOUNT` (the call, named
    /// second): `BIGINT NOT NULL`, length 21. Written `IFNULL(CAST(n AS
    /// SIGNED), ROW_COUNT())`, which takes its type from the call (never
    /// evaluated: the first value is not NULL), so an expression around it
    /// is typed as around the call (`ROW_COUNT() + 1` is 22 long,
    /// `IFNULL(FOUND_ROWS(), 0)` 21; a zero-padded `CAST(000000000000000000003
    /// AS SIGNED)` made them 23 and 22). `SQL%ROWCOUNT` kept in the text is
    /// also, outside `sql_mode=ORACLE`, the syntax error the client's text was.
    Signed(i64, &'static str),
    /// `CONNECTION_ID()`: `INT UNSIGNED NOT NULL`, length 10.
    ConnectionId(u32),
}

impl std::fmt::Display for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Typed::Unsigned(v) => write!(f, "CAST({v:021} AS UNSIGNED)"),
            Typed::IdVariable(v) => write!(f, "NULLIF(CAST({v:021} AS UNSIGNED), NULL)"),
            Typed::Signed(v, call) => write!(f, "IFNULL(CAST({v} AS SIGNED), {call})"),
            Typed::ConnectionId(v) => write!(f, "CAST({v:010} AS UNSIGNED)"),
        }
    }
}

/// Appends formatted text to a byte vector.
struct Lit<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Lit<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAST: LastResults = LastResults {
        last_insert_id: 42,
        row_count: 3,
        found_rows: 7,
    };

    fn sub(sql: &str) -> Option<String> {
        substitute(sql.as_bytes(), &Substitution::from_record(&LAST, Some(99)))
            .map(|v| String::from_utf8(v).unwrap())
    }

    /// A read only another reading of the text sees (see
    /// `isolation_a_read_of_the_insert_id_a_gbk_character_hides_is_the_clients_own`).
    #[test]
    fn rewrite_reads_another_reading_sees_are_the_servers() {
        for sql in [
            &b"SELECT 1 AS a\xad\x60, LAST_INSERT_ID() -- \x60"[..],
            b"SELECT '\x95\x5c', ROW_COUNT() -- '",
            b"SELECT 1 AS [a'b], FOUND_ROWS() -- ']",
            b"SELECT 'a\\', LAST_INSERT_ID() -- '",
        ] {
            assert!(other_reading_reads_previous(sql), "{sql:?}");
        }
        for sql in [
            &b"SELECT LAST_INSERT_ID()"[..],
            b"SELECT 'a\\b', LAST_INSERT_ID()",
            "SELECT `é`, LAST_INSERT_ID() FROM t".as_bytes(),
            b"SELECT 'LAST_INSERT_ID()'",
        ] {
            assert!(!other_reading_reads_previous(sql), "{sql:?}");
        }
    }

    #[test]
    fn rewrite_calls_by_double_quoted_or_bracketed_names_are_seen() {
        for sql in [
            r#"SELECT "LAST_INSERT_ID"()"#,
            "SELECT [last_insert_id] ( )",
            r#"DO "LAST_INSERT_ID"/**/()"#,
        ] {
            assert!(quoted_last_insert_id_call(sql.as_bytes()), "{sql}");
            assert_eq!(sub(sql), None, "{sql}");
        }
        for sql in [
            r#"SELECT "LAST_INSERT_ID""#,
            "SELECT LAST_INSERT_ID()",
            "SELECT [LAST_INSERT_ID] FROM t",
        ] {
            assert!(!quoted_last_insert_id_call(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn rewrite_reads_of_the_insert_id_in_executable_comments_are_seen() {
        for sql in [
            "SELECT /*! LAST_INSERT_ID() */",
            "SELECT /*M!100000 @@identity */",
            "SELECT LAST_INSERT_ID()",
        ] {
            assert!(may_read_last_insert_id(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "SELECT /* LAST_INSERT_ID() */ 1",
            "SELECT /*! ROW_COUNT() */",
            "SELECT 1",
        ] {
            assert!(!may_read_last_insert_id(sql.as_bytes()), "{sql}");
        }
    }

    /// `SQL%ROWCOUNT` (`sql_mode=ORACLE`) is the client's `ROW_COUNT()`, or
    /// after a result set (`ROW_COUNT()` -1) its `FOUND_ROWS()`; the text
    /// keeps naming it, so outside that mode it stays the syntax error.
    #[test]
    fn rewrite_replaces_oracle_sql_rowcount() {
        assert_eq!(
            sub("SELECT SQL%ROWCOUNT").as_deref(),
            Some("SELECT IFNULL(CAST(3 AS SIGNED), SQL%ROWCOUNT) AS `SQL%ROWCOUNT`")
        );
        let after_rows = LastResults {
            row_count: -1,
            ..LAST
        };
        let sub_after_rows = |sql: &str| {
            substitute(sql.as_bytes(), &Substitution::from_record(&after_rows, None))
                .map(|v| String::from_utf8(v).unwrap())
        };
        // A session whose own sql_mode lacks ORACLE: the server's syntax
        // error, whose message quotes the text from `%ROWCOUNT` on.
        let not_oracle = Substitution {
            sql_rowcount: false,
            ..Substitution::from_record(&LAST, Some(99))
        };
        assert_eq!(substitute(b"SELECT SQL%ROWCOUNT FROM DUAL", &not_oracle), None);
        assert_eq!(
            substitute(b"SELECT SQL%ROWCOUNT, ROW_COUNT()", &not_oracle)
                .map(|v| String::from_utf8(v).unwrap())
                .as_deref(),
            Some("SELECT SQL%ROWCOUNT, IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) AS `ROW_COUNT()`")
        );
        assert_eq!(
            sub_after_rows("select sql % rowcount + 1 from dual").as_deref(),
            Some("select IFNULL(CAST(7 AS SIGNED), SQL%ROWCOUNT) + 1 AS `sql % rowcount + 1` from dual")
        );
        for sql in [
            "SELECT 'SQL%ROWCOUNT'",
            "SELECT t.sql % rowcount FROM t",
            "SELECT mysql%rowcount FROM t",
            "SELECT SQL%ROWCOUNTS",
            "DO 1; SELECT SQL%ROWCOUNT",
        ] {
            assert_eq!(sub(sql), None, "{sql}");
        }
        assert_eq!(
            sub("SELECT SQL/**/%\nROWCOUNT AS n").as_deref(),
            Some("SELECT IFNULL(CAST(3 AS SIGNED), SQL%ROWCOUNT) AS n")
        );
        assert!(mentions_previous_statement(b"SELECT sql%rowcount"));
        assert!(!mentions_previous_statement(
            b"SELECT * FROM t WHERE a LIKE '%' AND rowcount > 1"
        ));
        assert!(!reads_only_last_insert_id(
            b"SELECT LAST_INSERT_ID(), SQL%ROWCOUNT"
        ));
    }

    /// The server calls a function whose name is in backquotes, or
    /// followed by blanks (the vertical tab too) and comments before or
    /// inside its parenthesis, whatever the `sql_mode`: each is the
    /// client's own value, named as the server names it.
    #[test]
    fn rewrite_replaces_calls_spelled_with_comments_or_backquotes() {
        for (sql, want) in [
            (
                "SELECT LAST_INSERT_ID/**/()",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID/**/()`",
            ),
            (
                "SELECT LAST_INSERT_ID( /* x */ )",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID( /* x */ )`",
            ),
            (
                "SELECT LAST_INSERT_ID\x0b()",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID\x0b()`",
            ),
            (
                "SELECT LAST_INSERT_ID#x\n()",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID#x\n()`",
            ),
            (
                "SELECT `LAST_INSERT_ID`()",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS ```LAST_INSERT_ID``()`",
            ),
            (
                "SELECT `row_count` () + 1",
                "SELECT IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) + 1 AS ```row_count`` () + 1`",
            ),
        ] {
            assert_eq!(sub(sql).as_deref(), Some(want), "{sql:?}");
        }
        for sql in [
            "SELECT t.`found_rows`() FROM t",
            "SELECT `LAST_INSERT_ID`(5)",
            "SELECT `LAST_INSERT_ID`",
        ] {
            assert_eq!(sub(sql), None, "{sql}");
        }
        for sql in [
            "SELECT `LAST_INSERT_ID`(5)",
            "SELECT LAST_INSERT_ID/**/(5)",
            "DO last_insert_id -- x\n(5)",
        ] {
            assert!(sets_last_insert_id(sql.as_bytes()), "{sql}");
        }
        assert!(!sets_last_insert_id(b"SELECT LAST_INSERT_ID(/* x */)"));
    }

    /// The plain searches for a name followed by blanks and comments find
    /// it inside comments too, where each may start the same long comment:
    /// reading it to its end for each took time quadratic in the text (a
    /// quarter MiB of `SQL/*` took over half a minute).
    #[test]
    fn rewrite_names_before_long_comments_cost_linear_time() {
        for (unit, head) in [
            ("SQL/*", "%"),
            ("SQL%/*", ""),
            ("LAST_INSERT_ID/*", ""),
            ("`LAST_INSERT_ID`(/*", ""),
            ("\"LAST_INSERT_ID\"/*", ""),
        ] {
            let mut sql = head.as_bytes().to_vec();
            while sql.len() < 256 << 10 {
                sql.extend_from_slice(unit.as_bytes());
            }
            let started = std::time::Instant::now();
            std::hint::black_box(mentions_previous_statement(&sql));
            std::hint::black_box(quoted_last_insert_id_call(&sql));
            std::hint::black_box(super::super::pinning::classify(&sql));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{unit}: {:?}",
                started.elapsed()
            );
        }
        // Past the lookahead, the worst is assumed.
        let far = format!("SELECT SQL /*{}*/ % ROWCOUNT", " ".repeat(300));
        assert!(mentions_previous_statement(far.as_bytes()));
        let far = format!("SELECT \"LAST_INSERT_ID\" /*{}*/ ()", " ".repeat(300));
        assert!(quoted_last_insert_id_call(far.as_bytes()));
        let near = format!("SELECT SQL{} -- x\n% ROWCOUNT", " ".repeat(300));
        assert!(mentions_previous_statement(near.as_bytes()));
        assert!(!mentions_previous_statement(b"SELECT SQL /* x */ % 2"));
    }

    /// A table or procedure may have a function's name, and is followed by
    /// `()` in `INSERT INTO t () VALUES ()` and `CALL p()`: not a call.
    #[test]
    fn rewrite_leaves_tables_and_procedures_named_like_the_functions() {
        for sql in [
            "INSERT INTO `row_count` () VALUES ()",
            "INSERT INTO row_count () VALUES ()",
            "insert `found_rows`() values ()",
            "INSERT IGNORE /* x */ INTO `last_insert_id` () SELECT 1",
            "REPLACE LOW_PRIORITY row_count () VALUES ()",
            "CALL `found_rows`()",
            "call connection_id ()",
            "LOAD DATA INFILE 'f' INTO TABLE `row_count` ()",
        ] {
            assert_eq!(sub(sql), None, "{sql}");
        }
        assert_eq!(
            sub("INSERT INTO t VALUES (ROW_COUNT())").as_deref(),
            Some("INSERT INTO t VALUES (IFNULL(CAST(3 AS SIGNED), ROW_COUNT()))")
        );
        assert_eq!(
            sub("CALL p(`ROW_COUNT`())").as_deref(),
            Some("CALL p(IFNULL(CAST(3 AS SIGNED), ROW_COUNT()))")
        );
        assert_eq!(
            sub("DO REPLACE(ROW_COUNT(), 3, 4)").as_deref(),
            Some("DO REPLACE(IFNULL(CAST(3 AS SIGNED), ROW_COUNT()), 3, 4)")
        );
        assert_eq!(
            sub("INSERT INTO t SELECT 'a', FOUND_ROWS()").as_deref(),
            Some("INSERT INTO t SELECT 'a', IFNULL(CAST(7 AS SIGNED), FOUND_ROWS()) AS `FOUND_ROWS()`")
        );
    }

    #[test]
    fn rewrite_replaces_calls_outside_strings() {
        assert_eq!(
            sub("SELECT LAST_INSERT_ID()").as_deref(),
            Some("SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID()`")
        );
        assert_eq!(
            sub("select last_insert_id( ), row_count();").as_deref(),
            Some("select CAST(000000000000000000042 AS UNSIGNED) AS `last_insert_id( )`, IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) AS `row_count()`;")
        );
        assert_eq!(
            sub("INSERT INTO c VALUES (LAST_INSERT_ID(), 'LAST_INSERT_ID()')").as_deref(),
            Some("INSERT INTO c VALUES (CAST(000000000000000000042 AS UNSIGNED), 'LAST_INSERT_ID()')")
        );
        assert_eq!(
            sub("SELECT FOUND_ROWS() FROM dual").as_deref(),
            Some("SELECT IFNULL(CAST(7 AS SIGNED), FOUND_ROWS()) AS `FOUND_ROWS()` FROM dual")
        );
        assert_eq!(
            sub("SELECT CONNECTION_ID() + 1").as_deref(),
            Some("SELECT CAST(0000000099 AS UNSIGNED) + 1 AS `CONNECTION_ID() + 1`")
        );
        assert_eq!(sub("SELECT 1"), None);
        assert_eq!(sub("SELECT `LAST_INSERT_ID()` FROM t"), None);
        assert_eq!(sub("SELECT t.found_rows() FROM t"), None);
        assert_eq!(
            sub("SELECT LAST_INSERT_ID(5)"),
            None,
            "the setter form is not a read"
        );
        assert_eq!(sub("/* LAST_INSERT_ID() */ SELECT 1"), None);
        assert_eq!(sub("SELECT 1 -- LAST_INSERT_ID()"), None);
        assert_eq!(
            sub("SELECT 1--1, LAST_INSERT_ID()").as_deref(),
            Some("SELECT 1--1, CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID()`"),
            "--1 is arithmetic, not a comment"
        );
        assert_eq!(
            substitute(
                b"SELECT CONNECTION_ID(), ROW_COUNT()",
                &Substitution::from_record(&LAST, None)
            )
            .as_deref(),
            Some(&b"SELECT CONNECTION_ID(), IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) AS `ROW_COUNT()`"[..])
        );
        assert_eq!(
            sub("SELECT @@identity, @@LAST_INSERT_ID, @@session.last_insert_id").as_deref(),
            Some("SELECT NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL) AS `@@identity`, NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL) AS `@@LAST_INSERT_ID`, NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL) AS `@@session.last_insert_id`")
        );
        assert_eq!(
            sub("INSERT INTO c VALUES (@@identity + 1)").as_deref(),
            Some("INSERT INTO c VALUES (NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL) + 1)")
        );
        assert_eq!(sub("SELECT @@global.identity, @@insert_id, '@@identity'"), None);
        assert_eq!(sub("SET @@identity = 5"), None, "assigned, not read");
        assert_eq!(
            sub("SET @x = @@identity").as_deref(),
            Some("SET @x = NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL)")
        );
        assert_eq!(
            sub("SELECT 1 WHERE @@identity = 42").as_deref(),
            Some("SELECT 1 WHERE NULLIF(CAST(000000000000000000042 AS UNSIGNED), NULL) = 42")
        );
        assert!(mentions_previous_statement(b"SELECT @@Identity"));
        assert!(mentions_previous_statement(b"SELECT @@local.last_insert_id"));
        assert!(!mentions_previous_statement(b"SELECT @@time_zone, @x"));
        assert!(reads_only_last_insert_id(b"SELECT LAST_INSERT_ID(), @@identity"));
        assert!(reads_only_last_insert_id(
            b"INSERT INTO c (p) VALUES (last_insert_id())"
        ));
        assert!(!reads_only_last_insert_id(
            b"SELECT LAST_INSERT_ID(), ROW_COUNT()"
        ));
        assert!(!reads_only_last_insert_id(b"SELECT CONNECTION_ID()"));
        assert!(!reads_only_last_insert_id(b"SELECT 1"));
        assert!(!mentions_previous_statement(b"SELECT 1"));
        assert!(mentions_previous_statement(b"select row_count()"));
        for (sql, mentions) in [
            (&b"LAST_INSERT_ID"[..], true),
            (b"x=last_insert_id()", true),
            (b"select a_b, Found_Rows()", true),
            (b"connection_id", true),
            (b"SELECT _ROW_COUNT", true),
            (b"_", false),
            (b"LAST_INSERT", false),
            (b"ROW_COUN", false),
            (b"_ID", false),
            (b"select found_row", false),
            (b"a_b_c", false),
        ] {
            assert_eq!(
                mentions_previous_statement(sql),
                mentions,
                "{}",
                String::from_utf8_lossy(sql)
            );
        }
        let no_found = substitute(
            b"SELECT FOUND_ROWS()",
            &Substitution {
                found_rows: false,
                ..Substitution::from_record(&LAST, Some(1))
            },
        );
        assert_eq!(
            substitute(
                b"SELECT LAST_INSERT_ID(), CONNECTION_ID()",
                &Substitution {
                    on_server: OnServer::All,
                    ..Substitution::from_record(&LAST, Some(1))
                }
            )
            .as_deref(),
            Some(&b"SELECT LAST_INSERT_ID(), CAST(0000000001 AS UNSIGNED) AS `CONNECTION_ID()`"[..]),
            "pinned for them, the server answers"
        );
        assert_eq!(no_found, None);
    }

    /// After the first statement of a multi-statement query, reads are
    /// about the query's own statements: the server answers them.
    #[test]
    fn rewrite_leaves_later_statements_to_the_server() {
        assert_eq!(
            sub("INSERT INTO t VALUES (); SELECT LAST_INSERT_ID(), ROW_COUNT(), CONNECTION_ID()").as_deref(),
            Some("INSERT INTO t VALUES (); SELECT LAST_INSERT_ID(), ROW_COUNT(), CAST(0000000099 AS UNSIGNED) AS `CONNECTION_ID()`")
        );
        assert_eq!(
            sub("SELECT ROW_COUNT(); SELECT ROW_COUNT()").as_deref(),
            Some("SELECT IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) AS `ROW_COUNT()`; SELECT ROW_COUNT()")
        );
        assert_eq!(
            sub("UPDATE t SET a = 1; SELECT FOUND_ROWS()").as_deref(),
            Some("UPDATE t SET a = 1; SELECT IFNULL(CAST(7 AS SIGNED), FOUND_ROWS()) AS `FOUND_ROWS()`"),
            "no statement of the query returned rows yet"
        );
        assert_eq!(
            sub("UPDATE t SET a = ';'; /* ; */ (SELECT 1); SELECT FOUND_ROWS()"),
            None
        );
        assert_eq!(sub("CALL p(); SELECT FOUND_ROWS()"), None);
        assert_eq!(sub("EXPLAIN SELECT 1; SELECT FOUND_ROWS()"), None);
        assert!(later_statement_reads_last_insert_id(b"DO 1; SELECT @@identity"));
        assert!(!later_statement_reads_last_insert_id(
            b"SELECT LAST_INSERT_ID(); SELECT ROW_COUNT()"
        ));
        assert!(!later_statement_reads_last_insert_id(
            b"SELECT 'a;b', LAST_INSERT_ID() -- ;"
        ));
    }

    /// The replacement is typed as the server types the call (found with
    /// the differential test: a bare literal is a short `INT`).
    #[test]
    fn rewrite_keeps_the_server_types() {
        let last = LastResults {
            last_insert_id: u64::MAX,
            row_count: -1,
            found_rows: 0,
        };
        let sub = |sql: &str| {
            substitute(sql.as_bytes(), &Substitution::from_record(&last, Some(u32::MAX)))
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(
            sub("SELECT 1 - ROW_COUNT(), FOUND_ROWS()").as_deref(),
            Some(
                "SELECT 1 - IFNULL(CAST(-1 AS SIGNED), ROW_COUNT()) AS `1 - ROW_COUNT()`, \
                 IFNULL(CAST(0 AS SIGNED), FOUND_ROWS()) AS `FOUND_ROWS()`"
            )
        );
        assert_eq!(
            sub("SELECT LAST_INSERT_ID() = CONNECTION_ID()").as_deref(),
            Some(
                "SELECT CAST(018446744073709551615 AS UNSIGNED) = CAST(4294967295 AS UNSIGNED) \
                 AS `LAST_INSERT_ID() = CONNECTION_ID()`"
            )
        );
    }

    /// A select item with a call inside it keeps the name the server
    /// gives it unaliased, its text (soak seed 110002:
    /// `SELECT CONNECTION_ID() = CONNECTION_ID()` was named after the
    /// replaced text); one that may have an alias of its own, or whose
    /// text is not surely its name, is left as it is.
    #[test]
    fn rewrite_keeps_the_names_of_items_around_calls() {
        let named = [
            (
                "SELECT CONNECTION_ID() = CONNECTION_ID()",
                "SELECT CAST(0000000099 AS UNSIGNED) = CAST(0000000099 AS UNSIGNED) \
                 AS `CONNECTION_ID() = CONNECTION_ID()`",
            ),
            (
                "SELECT  LAST_INSERT_ID() + 1 , IFNULL(ROW_COUNT(), 0) FROM t",
                "SELECT  CAST(000000000000000000042 AS UNSIGNED) + 1 AS `LAST_INSERT_ID() + 1` , \
                 IFNULL(IFNULL(CAST(3 AS SIGNED), ROW_COUNT()), 0) AS `IFNULL(ROW_COUNT(), 0)` FROM t",
            ),
            (
                "SELECT ROW_COUNT() > t.v, FOUND_ROWS() IS NULL, `x``y` + ROW_COUNT() FROM t",
                "SELECT IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) > t.v AS `ROW_COUNT() > t.v`, \
                 IFNULL(CAST(7 AS SIGNED), FOUND_ROWS()) IS NULL AS `FOUND_ROWS() IS NULL`, \
                 `x``y` + IFNULL(CAST(3 AS SIGNED), ROW_COUNT()) AS ```x````y`` + ROW_COUNT()` FROM t",
            ),
            (
                "SELECT LAST_INSERT_ID(), LAST_INSERT_ID() - 1; SELECT CONNECTION_ID() + 0",
                "SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID()`, \
                 CAST(000000000000000000042 AS UNSIGNED) - 1 AS `LAST_INSERT_ID() - 1`; \
                 SELECT CAST(0000000099 AS UNSIGNED) + 0 AS `CONNECTION_ID() + 0`",
            ),
            (
                "SELECT (SELECT ROW_COUNT()) * 2 FROM t WHERE id = ROW_COUNT()",
                "SELECT (SELECT IFNULL(CAST(3 AS SIGNED), ROW_COUNT())) * 2 \
                 AS `(SELECT ROW_COUNT()) * 2` FROM t WHERE id = IFNULL(CAST(3 AS SIGNED), ROW_COUNT())",
            ),
        ];
        for (sql, want) in named {
            assert_eq!(sub(sql).as_deref(), Some(want), "{sql}");
        }
        // An alias of its own (explicit or not), a select option, a
        // comment, text that is not ASCII, a statement that is no SELECT.
        for sql in [
            "SELECT LAST_INSERT_ID() + 1 AS n",
            "SELECT LAST_INSERT_ID() + 1 n",
            "SELECT LAST_INSERT_ID() + 1 'n'",
            "SELECT LAST_INSERT_ID() x, ROW_COUNT() + 0 `y` FROM t",
            "SELECT DISTINCT LAST_INSERT_ID() + 1",
            "SELECT LAST_INSERT_ID() /* c */ + 1",
            "SELECT LAST_INSERT_ID() + LENGTH('\u{e9}')",
            "INSERT INTO t VALUES (LAST_INSERT_ID() + 1)",
            "UPDATE t SET v = ROW_COUNT() + 1",
        ] {
            let out = sub(sql).unwrap();
            assert!(!out.contains(" AS `"), "{sql}: {out}");
        }
    }

    /// Pinned by a `SET` (`SET sql_auto_is_null = 1`), the connection's
    /// count for `FOUND_ROWS()` is not the client's (soak seed 80369).
    #[test]
    fn rewrite_answers_the_found_rows_the_connection_lacks() {
        let sql = b"SELECT FOUND_ROWS()";
        let on = |own_found_rows| {
            let how = Substitution {
                on_server: OnServer::AllButInsertId,
                own_found_rows,
                ..Substitution::from_record(&LAST, None)
            };
            substitute(sql, &how)
        };
        assert_eq!(on(false), None, "pinned for it, the server answers");
        assert_eq!(
            on(true).map(|v| String::from_utf8(v).unwrap()).as_deref(),
            Some("SELECT IFNULL(CAST(7 AS SIGNED), FOUND_ROWS()) AS `FOUND_ROWS()`"),
            "a pin that set no count there: Funnel's record"
        );
    }

    /// Pinned after the client's inserts ran elsewhere, the connection does
    /// not know its last insert id (found by the differential test).
    #[test]
    fn rewrite_answers_the_insert_id_the_connection_lacks() {
        assert_eq!(
            substitute(
                b"SELECT LAST_INSERT_ID(), ROW_COUNT()",
                &Substitution {
                    on_server: OnServer::AllButInsertId,
                    ..Substitution::from_record(&LAST, None)
                }
            )
            .map(|v| String::from_utf8(v).unwrap())
            .as_deref(),
            Some("SELECT CAST(000000000000000000042 AS UNSIGNED) AS `LAST_INSERT_ID()`, ROW_COUNT()")
        );
        for (sql, sets) in [
            ("SELECT LAST_INSERT_ID(5)", true),
            ("select last_insert_id ( id ) from t", true),
            ("SET @@identity = 3", true),
            ("SET SESSION last_insert_id := 3", true),
            ("SELECT LAST_INSERT_ID()", false),
            ("SET @x = @@identity", false),
            ("SET @identity = 3", false),
            ("SELECT 'LAST_INSERT_ID(5)'", false),
            ("INSERT INTO t VALUES (1)", false),
        ] {
            assert_eq!(sets_last_insert_id(sql.as_bytes()), sets, "{sql}");
        }
    }
}
