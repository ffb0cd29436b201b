//! Dynamic SQL whose text is not in the query: `PREPARE s FROM @v` and
//! `EXECUTE IMMEDIATE @v` with a value Funnel does not know, and `PREPARE s
//! FROM <expression>` / `EXECUTE IMMEDIATE <expression>`. The text they run
//! could be a `KILL` of another client's backend thread or a `SHUTDOWN`
//! ([`super::pinning::refusal`]), which the literal forms are refused for.
//!
//! - A lone user variable, as the query's only statement: its value is read
//!   on the connection that is about to run the statement (it pins for
//!   `sql_prepare`, so the value cannot change in between) and checked like
//!   a literal ([`read_sql`]).
//! - An expression whose text starts with a word that fixes the statement's
//!   kind (`CONCAT('SELECT ', ...)`): runs, since the server prepares one
//!   statement only and that one is a `SELECT` whatever follows.
//! - Any other expression: refused, naming the form Funnel can check
//!   (`SET @sql = ...; PREPARE s FROM @sql`). Evaluating it first on the
//!   server would not be faithful: the server's errors name the clause
//!   (`Unknown column 'x' in 'PREPARE..FROM'`) and only `PREPARE` refuses
//!   subqueries (1970).
//! - A user variable or an expression in a multi-statement query or a
//!   compound statement: refused (an earlier statement of the same query
//!   may set the variable, after any read Funnel could make).

use super::sql_lex::{line_comment_at, skip_quoted, skip_until, word_end};
use super::End;
use crate::error::EngineError;
use crate::pool::conn::{BackendConn, BackendError};

/// What Funnel answers for dynamic SQL built by an expression it cannot
/// check.
pub const EXPRESSION_REFUSED: &str = "PREPARE or EXECUTE IMMEDIATE of text built by an expression, which Funnel cannot check before it runs (set it into a user variable first: SET @sql = ...; PREPARE s FROM @sql, or EXECUTE IMMEDIATE @sql; Funnel checks that variable's text)";

/// What Funnel answers for dynamic SQL from a variable or an expression
/// inside a multi-statement query or a compound statement.
pub const IN_BATCH_REFUSED: &str = "PREPARE or EXECUTE IMMEDIATE of a user variable or an expression in a multi-statement query or compound statement (send PREPARE s FROM @sql or EXECUTE IMMEDIATE @sql as a statement of its own, and Funnel checks that variable's text; create stored routines that build SQL at run time directly on the server)";

/// What Funnel answers when it could not read a variable's text.
pub const UNREAD_REFUSED: &str =
    "PREPARE or EXECUTE IMMEDIATE of a user variable whose text Funnel could not read to check it";

/// Words that fix a statement's kind to one that cannot run `KILL`,
/// `SHUTDOWN` or change the account, whatever text follows them.
const SAFE_FIRST_WORDS: [&[u8]; 11] = [
    b"SELECT",
    b"INSERT",
    b"UPDATE",
    b"DELETE",
    b"REPLACE",
    b"SHOW",
    b"WITH",
    b"VALUES",
    b"EXPLAIN",
    b"DESCRIBE",
    b"DESC",
];

/// The user variables (names as written, quotes removed) whose values the
/// query runs as SQL and Funnel must read before forwarding it; `Err` with
/// why the query is refused. Empty for almost every query (one pass over
/// the text when it mentions neither `PREPARE` nor `IMMEDIATE`). Read as
/// [`super::pinning::refusal`] reads: as written, under
/// `NO_BACKSLASH_ESCAPES` and under `ANSI_QUOTES`.
pub fn run_time_text(sql: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if !super::pinning::Mentions::of(sql).dynamic_sql() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for reading in super::pinning::escape_readings(sql) {
        check_reading(&reading, &mut names)?;
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Word,
    /// A quoted string or name; the byte is its quote.
    Quoted(u8),
    /// `@name`, `@'name'`, `` @`name` ``: the name's range.
    Var(usize, usize),
    Punct,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    start: usize,
    end: usize,
    kind: Kind,
}

/// The query's tokens, comments left out. The server runs an executable
/// comment's text (`/*!`, `/*M!`, with or without a version): it is read
/// like the rest, its markers left out (`PREPARE /*! s */ FROM @v`).
fn tokens(sql: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = sql.len();
    let mut executable = false;
    while i < n {
        let c = sql[i];
        let start = i;
        let kind = match c {
            b'*' if executable && sql.get(i + 1) == Some(&b'/') => {
                executable = false;
                i += 2;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                i = skip_until(sql, i, b"\n");
                continue;
            }
            b'-' if line_comment_at(sql, i) => {
                i = skip_until(sql, i, b"\n");
                continue;
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                match sql.get(i + 2) {
                    Some(b'!') => i += 3,
                    Some(b'M') if sql.get(i + 3) == Some(&b'!') => i += 4,
                    _ => {
                        i = skip_until(sql, i + 2, b"*/");
                        continue;
                    }
                }
                executable = true;
                while sql.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                continue;
            }
            q @ (b'\'' | b'"' | b'`') => {
                i = skip_quoted(sql, i, q);
                Kind::Quoted(q)
            }
            b'@' if sql.get(i + 1) != Some(&b'@') => match sql.get(i + 1) {
                Some(&q @ (b'\'' | b'"' | b'`')) => {
                    i = skip_quoted(sql, i + 1, q);
                    Kind::Var(start + 2, i.saturating_sub(1).max(start + 2))
                }
                _ => {
                    let mut e = i + 1;
                    while e < n && (sql[e].is_ascii_alphanumeric() || matches!(sql[e], b'_' | b'$' | b'.')) {
                        e += 1;
                    }
                    i = e.max(i + 1);
                    Kind::Var(start + 1, e)
                }
            },
            b'@' => {
                i += 2;
                Kind::Punct
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' => {
                i = word_end(sql, i);
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Punct
            }
        };
        out.push(Tok { start, end: i, kind });
    }
    out
}

fn is_word(sql: &[u8], t: Option<&Tok>, w: &[u8]) -> bool {
    t.is_some_and(|t| t.kind == Kind::Word && sql[t.start..t.end].eq_ignore_ascii_case(w))
}

fn is_punct(sql: &[u8], t: Option<&Tok>, p: u8) -> bool {
    t.is_some_and(|t| t.kind == Kind::Punct && sql[t.start] == p)
}

/// What a `PREPARE` / `EXECUTE IMMEDIATE` runs.
enum Source {
    /// A lone literal ([`super::pinning::refusal`] reads it) or an
    /// expression whose text starts with a word of [`SAFE_FIRST_WORDS`].
    Checked,
    /// A lone user variable: the name's range.
    Variable(usize, usize),
    Expression,
}

fn check_reading(sql: &[u8], names: &mut Vec<Vec<u8>>) -> Result<(), &'static str> {
    let toks = tokens(sql);
    // Where each PREPARE ... FROM / EXECUTE IMMEDIATE statement starts, and
    // where its source does.
    let mut found = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        // A word in an expression (`SELECT a.prepare x FROM t`) is no statement.
        let in_expression = i > 0
            && matches!(toks[i - 1].kind, Kind::Punct)
            && matches!(sql[toks[i - 1].start], b',' | b'.' | b'(');
        if in_expression {
            continue;
        }
        if is_word(sql, Some(t), b"PREPARE") && is_word(sql, toks.get(i + 2), b"FROM") {
            found.push((i, i + 3));
        } else if is_word(sql, Some(t), b"EXECUTE") && is_word(sql, toks.get(i + 1), b"IMMEDIATE") {
            found.push((i, i + 2));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    // The query's only statement: it starts the query (or follows `SET
    // STATEMENT ... FOR`), and no other statement follows it.
    let starts_query = |at: usize| {
        at == 0
            || (is_word(sql, toks.first(), b"SET")
                && is_word(sql, toks.get(1), b"STATEMENT")
                && is_word(sql, toks.get(at.wrapping_sub(1)), b"FOR"))
    };
    let more_statements = toks
        .windows(2)
        .any(|w| is_punct(sql, Some(&w[0]), b';') && !is_punct(sql, Some(&w[1]), b';'));
    let single = found.len() == 1 && starts_query(found[0].0) && !more_statements;
    for &(_, at) in &found {
        match source(sql, &toks, at) {
            Source::Checked => {}
            Source::Variable(..) | Source::Expression if !single => return Err(IN_BATCH_REFUSED),
            Source::Variable(s, e) => names.push(sql[s..e].to_vec()),
            Source::Expression => return Err(EXPRESSION_REFUSED),
        }
    }
    Ok(())
}

/// True when the expression starting at token `at` ends at token `end`:
/// the query ends there, or a `;` or `USING` follows.
fn ends_at(sql: &[u8], toks: &[Tok], end: usize) -> bool {
    toks.get(end).is_none() || is_punct(sql, toks.get(end), b';') || is_word(sql, toks.get(end), b"USING")
}

fn source(sql: &[u8], toks: &[Tok], at: usize) -> Source {
    let Some(t) = toks.get(at) else {
        return Source::Expression;
    };
    match t.kind {
        Kind::Quoted(b'\'' | b'"') if ends_at(sql, toks, at + 1) => Source::Checked,
        Kind::Var(s, e) if e > s && ends_at(sql, toks, at + 1) => Source::Variable(s, e),
        // `NULL` or a number: no statement, the server's own syntax error.
        Kind::Word
            if ends_at(sql, toks, at + 1)
                && (sql[t.start..t.end].eq_ignore_ascii_case(b"NULL")
                    || sql[t.start..t.end].iter().all(u8::is_ascii_digit)) =>
        {
            Source::Checked
        }
        Kind::Word if sql[t.start..t.end].eq_ignore_ascii_case(b"CONCAT") => {
            let first = toks.get(at + 2);
            let safe = is_punct(sql, toks.get(at + 1), b'(')
                && first.is_some_and(|f| {
                    f.kind == Kind::Quoted(b'\'') && starts_with_safe_word(&sql[f.start..f.end])
                })
                && (is_punct(sql, toks.get(at + 3), b',') || is_punct(sql, toks.get(at + 3), b')'));
            if !safe {
                return Source::Expression;
            }
            // The CONCAT must be the whole expression.
            let mut depth = 0usize;
            for (k, tok) in toks.iter().enumerate().skip(at + 1) {
                if is_punct(sql, Some(tok), b'(') {
                    depth += 1;
                } else if is_punct(sql, Some(tok), b')') {
                    depth -= 1;
                    if depth == 0 {
                        return if ends_at(sql, toks, k + 1) {
                            Source::Checked
                        } else {
                            Source::Expression
                        };
                    }
                }
            }
            Source::Expression
        }
        _ => Source::Expression,
    }
}

/// True when a quoted literal's text starts (after blanks) with a whole
/// word of [`SAFE_FIRST_WORDS`], ended inside the literal by a blank or
/// `(`: the statement it begins is of that kind.
fn starts_with_safe_word(lit: &[u8]) -> bool {
    let text = &lit[1..];
    let from = text
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'));
    let Some(from) = from else {
        return false;
    };
    let end = from
        + text[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
    matches!(text.get(end), Some(b' ' | b'\t' | b'\n' | b'\r' | b'('))
        && SAFE_FIRST_WORDS
            .iter()
            .any(|w| text[from..end].eq_ignore_ascii_case(w))
}

/// The query that reads the texts of `names` on a connection: each as hex
/// (so no result character set changes it), and in a character set whose
/// ASCII letters are not single bytes (`ucs2`, `utf16`, `utf16le`,
/// `utf32`: the server converts the text to the connection's character set
/// before it parses it) also converted to utf8mb4. Only there: a
/// conversion of other bytes invalid in utf8mb4 (a binary value) would
/// leave a warning, replacing the client's. `None` for a name Funnel would
/// have to escape.
pub fn read_sql(names: &[Vec<u8>]) -> Option<String> {
    let mut items = Vec::new();
    for raw in names {
        let name = std::str::from_utf8(raw).ok()?;
        if name
            .bytes()
            .any(|c| !(0x20..0x7f).contains(&c) || b"`'\"\\".contains(&c))
        {
            return None;
        }
        items.push(format!(
            "HEX(@`{name}`), IF(CHARSET(@`{name}`) IN ('ucs2', 'utf16', 'utf16le', 'utf32'), \
             HEX(CONVERT(@`{name}` USING utf8mb4)), NULL)"
        ));
    }
    // Its own LIMIT: the session's `sql_select_limit` applies to it.
    Some(format!("SELECT {} LIMIT 1", items.join(", ")))
}

/// The texts a read by [`read_sql`] returned (NULL values left out).
pub fn decode(row: &[Option<String>]) -> Option<Vec<Vec<u8>>> {
    row.iter()
        .flatten()
        .map(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .collect()
}

impl super::Session {
    /// Reads the texts of the user variables `names` that the client's
    /// query runs as SQL on `conn`, which is about to run it, and refuses
    /// the query (ERR 1235, unsent) when one is refused as a literal would
    /// be ([`super::pinning::refusal`]) or cannot be read. `None` when the
    /// client was told of a refusal or a failure (the command's `total`
    /// bytes are then consumed).
    pub(super) async fn check_dynamic_vars(
        &mut self,
        mut conn: BackendConn,
        names: &[Vec<u8>],
        total: usize,
    ) -> Result<Option<BackendConn>, End> {
        let texts = match read_sql(names) {
            None => Err(UNREAD_REFUSED),
            Some(sql) => match conn.query_rows(&sql).await {
                Ok((_, rows)) => rows
                    .first()
                    .filter(|row| row.len() == 2 * names.len())
                    .and_then(|row| decode(row))
                    .ok_or(UNREAD_REFUSED),
                Err(BackendError::Refused(_)) => Err(UNREAD_REFUSED),
                Err(e) => {
                    self.buf.consume(total);
                    self.discard_backend(conn);
                    let err = super::backend_lost(&self.last_backend, e.to_string());
                    return self.reply_error(1, err).await.map(|_| None);
                }
            },
        };
        // An ALTER run from a string: the shard's descriptions are had
        // from the server again once it ran (see `Registry::tables_changed`).
        let changes = texts.as_ref().is_ok_and(|texts| {
            texts
                .iter()
                .any(|text| super::sql_lex::may_change_descriptions(text, true))
        });
        let refused = texts.and_then(|texts| {
            texts
                .iter()
                .find_map(|text| super::pinning::refusal(text))
                .map_or(Ok(()), Err)
        });
        match refused {
            Ok(()) => {
                self.dynamic_text_changes = changes;
                Ok(Some(conn))
            }
            Err(what) => {
                self.buf.consume(total);
                self.give_back(conn);
                self.reply_error(1, EngineError::Unsupported(what))
                    .await
                    .map(|_| None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Result<Vec<String>, &'static str> {
        run_time_text(sql.as_bytes()).map(|v| v.into_iter().map(|n| String::from_utf8(n).unwrap()).collect())
    }

    #[test]
    fn dynamic_sql_variables_are_read() {
        for (sql, want) in [
            ("PREPARE s FROM @v", "v"),
            ("prepare `s` from @V;", "V"),
            ("EXECUTE IMMEDIATE @`my v` USING 1, @x", "my v"),
            ("EXECUTE IMMEDIATE @'q'", "q"),
            ("SET STATEMENT max_statement_time = 1 FOR PREPARE s FROM @v", "v"),
            ("/* c */ PREPARE s /* c */ FROM -- c\n @v", "v"),
            ("/*!PREPARE s FROM @v*/", "v"),
            ("PREPARE /*! s */ FROM @v", "v"),
            ("EXECUTE /*M!100000 IMMEDIATE */ @v", "v"),
        ] {
            assert_eq!(names(sql), Ok(vec![want.to_string()]), "{sql}");
        }
    }

    #[test]
    fn dynamic_sql_checked_forms_run() {
        for sql in [
            "SELECT 1",
            "PREPARE s FROM 'KILL 5'",
            "PREPARE s FROM 'SELECT ?'",
            "EXECUTE IMMEDIATE 'SELECT ?' USING 5",
            "PREPARE s FROM CONCAT('SELECT ', 1)",
            "PREPARE s FROM CONCAT(' select(', @x, ')')",
            "EXECUTE IMMEDIATE CONCAT('INSERT INTO t VALUES (', ?, ')') USING 1",
            "SELECT 1; PREPARE s FROM 'SELECT 1'",
            "EXECUTE s USING @v",
            "SELECT a.prepare x FROM t",
            "SELECT 'PREPARE s FROM @v'",
            "EXECUTE IMMEDIATE NULL",
            "PREPARE s FROM 5",
        ] {
            assert_eq!(names(sql), Ok(vec![]), "{sql}");
        }
    }

    #[test]
    fn dynamic_sql_expressions_are_refused() {
        for sql in [
            "EXECUTE IMMEDIATE CONCAT('KI', 'LL ', 5)",
            "PREPARE s FROM REVERSE('5 LLIK')",
            "PREPARE s FROM 'KI' 'LL 5'",
            "PREPARE s FROM CONCAT('SEL', 'ECT 1')",
            "PREPARE s FROM CONCAT('SELECT', '')",
            "PREPARE s FROM CONCAT('SELECT 1', '') || 'x'",
            "PREPARE s FROM CONCAT(@v, '')",
            "PREPARE s FROM @v := 'KILL 5'",
            "PREPARE s FROM @@default_master_connection",
            "PREPARE s FROM (SELECT 'KILL 5')",
            "PREPARE s FROM CONCAT(\"SELECT \", 1)",
            "/*!PREPARE s FROM CONCAT('KI', 'LL 5')*/",
            "PREPARE s /*!50700 FROM */ CONCAT('KI', 'LL 5')",
        ] {
            assert_eq!(names(sql), Err(EXPRESSION_REFUSED), "{sql}");
        }
        for sql in [
            "SET @v = 'KILL 5'; PREPARE s FROM @v",
            "SELECT 1; EXECUTE IMMEDIATE @v",
            "BEGIN NOT ATOMIC PREPARE s FROM @v; EXECUTE s; END",
            "SELECT 1 /*!; PREPARE s FROM @v */",
            "PREPARE s FROM @v; SELECT 1",
            "SELECT 1; EXECUTE IMMEDIATE CONCAT('KI', 'LL 5')",
            "CREATE PROCEDURE p() PREPARE s FROM @v",
            "CREATE PROCEDURE p() BEGIN SET @v = 'KILL 5'; PREPARE s FROM @v; EXECUTE s; END",
            "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO EXECUTE IMMEDIATE REVERSE('5 LLIK')",
        ] {
            assert_eq!(names(sql), Err(IN_BATCH_REFUSED), "{sql}");
        }
        // Under NO_BACKSLASH_ESCAPES the string ends at its backslash.
        assert!(names(r"SELECT 'x\'; EXECUTE IMMEDIATE REVERSE('5 LLIK'); -- '").is_err());
    }

    #[test]
    fn dynamic_sql_read_back_query() {
        assert_eq!(
            read_sql(&[b"v".to_vec()]).as_deref(),
            Some(
                "SELECT HEX(@`v`), IF(CHARSET(@`v`) IN ('ucs2', 'utf16', 'utf16le', 'utf32'), \
                 HEX(CONVERT(@`v` USING utf8mb4)), NULL) LIMIT 1"
            )
        );
        assert_eq!(read_sql(&[b"a`b".to_vec()]), None);
        assert_eq!(
            decode(&[Some("4B494C4C".into()), None]),
            Some(vec![b"KILL".to_vec()])
        );
    }
}
