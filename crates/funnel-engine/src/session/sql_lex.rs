//! The few lexical rules Funnel needs to look at SQL text safely: where a
//! quoted string or name ends, and where a comment ends. Shared by the
//! pinning classifier and the rewriter, so both skip exactly the same text.

/// The index just past the quoted string or name starting at `start`
/// (`'...'`, `"..."` or `` `...` ``), honouring doubled quotes and, outside
/// backticks, backslash escapes. The end of `sql` when it never closes.
pub fn skip_quoted(sql: &[u8], start: usize, quote: u8) -> usize {
    // Large statements are mostly literals (a dump's extended INSERT): jump
    // from one byte that matters to the next instead of stepping.
    let mut i = start + 1;
    loop {
        let next = if quote == b'`' {
            sql.get(i..).and_then(|rest| memchr::memchr(quote, rest))
        } else {
            sql.get(i..).and_then(|rest| memchr::memchr2(quote, b'\\', rest))
        };
        let Some(p) = next else {
            return sql.len();
        };
        i += p;
        // A backslash escapes the next byte; a doubled quote is one quote.
        if sql[i] == b'\\' || sql.get(i + 1) == Some(&quote) {
            i += 2;
        } else {
            return i + 1;
        }
    }
}

/// `sql` as the server reads it under `ANSI_QUOTES` (and backslash
/// escapes), for the lexers that take `"` for a string: `"..."` is then a
/// name, in which a backslash escapes nothing, so `"x\"` ends at its second
/// quote and what follows is SQL. Each backslash inside such a name is made
/// a space, which gives the usual lexers the same ends. `None` when no
/// such name holds a backslash: the text then reads the same either way.
pub fn ansi_quotes_form(sql: &[u8]) -> Option<Vec<u8>> {
    // Copied only at the first change: a dump's INSERT has `\"` in its
    // strings, and no name, so its text is read once, not copied.
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            b'"' => {
                // Doubled quotes aside, the next quote ends the name.
                let mut j = i + 1;
                while j < sql.len() {
                    if sql[j] == b'"' {
                        if sql.get(j + 1) != Some(&b'"') {
                            break;
                        }
                        j += 1;
                    } else if sql[j] == b'\\' {
                        out.get_or_insert_with(|| sql.to_vec())[j] = b' ';
                    }
                    j += 1;
                }
                i = j + 1;
            }
            // An executable comment's text is SQL: read on inside it.
            b'/' if sql.get(i + 1) == Some(&b'*') && matches!(sql.get(i + 2), Some(b'!' | b'M')) => i += 2,
            _ => i = skip_string_or_comment(sql, i).unwrap_or(i + 1),
        }
    }
    out
}

/// `sql` as the server reads it under `sql_mode=MSSQL`, for the usual
/// lexers: `[...]` is then a quoted name (to the first `]` that is not
/// doubled), wherever a token may start, so a quote inside it opens no
/// string (`SELECT 1 AS [a'], @v := 5 AS [']` assigns `@v`); and the mode
/// has `ANSI_QUOTES`, so `"..."` is a name in which a backslash escapes
/// nothing ([`ansi_quotes_form`]). Each such name is made one of the same
/// length, in backquotes or double quotes, its bytes other than letters,
/// digits, `_` and `$` made `_`. `None` when the text has no `[...]` name.
pub fn brackets_form(sql: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut brackets = false;
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            q @ (b'[' | b'"') => {
                // The name's end: its closing quote, not doubled.
                let close = if q == b'[' { b']' } else { b'"' };
                let mut j = i + 1;
                while j < sql.len() && !(sql[j] == close && sql.get(j + 1) != Some(&close)) {
                    j += if sql[j] == close { 2 } else { 1 };
                }
                if j >= sql.len() {
                    // No end: the server refuses the text.
                    break;
                }
                let o = out.get_or_insert_with(|| sql.to_vec());
                // Its word bytes are kept: `[GET_LOCK](...)` calls the
                // built-in, as `` `GET_LOCK`(...) `` does.
                for b in &mut o[i + 1..j] {
                    if !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$') {
                        *b = b'_';
                    }
                }
                if q == b'[' {
                    brackets = true;
                    (o[i], o[j]) = (b'`', b'`');
                }
                i = j + 1;
            }
            // An executable comment's text is SQL: read on inside it.
            b'/' if sql.get(i + 1) == Some(&b'*') && matches!(sql.get(i + 2), Some(b'!' | b'M')) => i += 2,
            _ => i = skip_string_or_comment(sql, i).unwrap_or(i + 1),
        }
    }
    out.filter(|_| brackets)
}

/// True when a backslash follows a byte above ASCII: in sjis, cp932, gbk,
/// gb18030 or big5 that byte may start a two-byte character whose second
/// byte is the backslash's (`\x95\x5c`), which then escapes nothing.
pub fn multibyte_backslash(sql: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', sql).any(|i| i > 0 && sql[i - 1] >= 0x81)
}

/// True when a byte above ASCII comes right before one of ``@[\]^`{|}~``:
/// in the character sets of [`multibyte_backslash`] the two may be one
/// character of a name, so a name may be longer, or a quoted name start or
/// end elsewhere, than a reading byte by byte says, hiding a call or a
/// table from it: in sjis `SELECT \x95^now()` calls the stored function
/// `\x95^now`, not `NOW`, and `SELECT 1 AS a\x95\x60, f() -- \x60` calls
/// `f` (`\x95\x60` opens no quoted name).
pub fn multibyte_punctuation(sql: &[u8]) -> bool {
    // Every text is looked at: plain ASCII is told at word speed.
    !sql.is_ascii() && sql.windows(2).any(|w| w[0] >= 0x81 && ends_multibyte_name(w[1]))
}

/// The ASCII bytes ``@[\]^`{|}~`` that may end a two-byte character of the
/// character sets of [`multibyte_backslash`] (the backslash is read apart).
fn ends_multibyte_name(c: u8) -> bool {
    matches!(
        c,
        b'@' | b'[' | b'\\' | b']' | b'^' | b'`' | b'{' | b'|' | b'}' | b'~'
    )
}

/// `sql` as a character set of [`multibyte_backslash`] may read it, for
/// the usual lexers: each backslash right after a byte above ASCII made a
/// space (the second byte of a character, not an escape), and each other
/// byte of [`multibyte_punctuation`] there a letter (part of a name: no
/// quoted name, user variable or operator starts there).
pub fn multibyte_form(sql: &[u8]) -> Vec<u8> {
    let mut out = sql.to_vec();
    for i in 1..sql.len() {
        if sql[i - 1] >= 0x81 {
            if sql[i] == b'\\' {
                out[i] = b' ';
            } else if ends_multibyte_name(sql[i]) {
                out[i] = b'x';
            }
        }
    }
    out
}

/// The multi-byte reading of `sql` ([`multibyte_form`]), when it may
/// differ from the usual one.
pub fn multibyte_reading(sql: &[u8]) -> Option<Vec<u8>> {
    (multibyte_backslash(sql) || multibyte_punctuation(sql)).then(|| multibyte_form(sql))
}

/// The index just past the first `end` at or after `from` (the end of a
/// comment), or the end of `sql`.
pub fn skip_until(sql: &[u8], from: usize, end: &[u8]) -> usize {
    sql.get(from..)
        .and_then(|rest| memchr::memmem::find(rest, end))
        .map_or(sql.len(), |p| from + p + end.len())
}

/// `sql` from its first token on: leading whitespace and comments
/// (`/* */`, `-- `, `#`) skipped. Executable comments (`/*! */`, `/*M! */`)
/// are skipped too: callers that care treat such text as unknown.
pub fn skip_leading_comments(sql: &[u8]) -> &[u8] {
    let mut i = 0;
    loop {
        while sql.get(i).is_some_and(|&c| is_blank(c)) {
            i += 1;
        }
        let rest = &sql[i.min(sql.len())..];
        if rest.starts_with(b"/*") {
            i = skip_until(sql, i + 2, b"*/");
        } else if rest.starts_with(b"#") || line_comment_at(rest, 0) {
            i = skip_until(sql, i, b"\n");
        } else {
            return rest;
        }
    }
}

/// A byte MariaDB's lexer skips between tokens: ASCII whitespace and the
/// vertical tab (`\x0b`), which Rust's `is_ascii_whitespace` leaves out
/// (`LAST_INSERT_ID\x0b()` is a call).
pub fn is_blank(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// Where the blanks and comments from `i` on end: the server reads
/// `LAST_INSERT_ID /* x */ ( -- y` + newline + `)` as one call.
pub fn skip_blanks(sql: &[u8], i: usize) -> usize {
    sql.len() - skip_leading_comments(sql.get(i..).unwrap_or_default()).len()
}

/// How far [`skip_blanks`] may look from a name that a plain search of the
/// text found, maybe inside a comment: each may start the same long
/// comment (`SQL/*SQL/*...`), and reading it to its end for each would
/// cost time quadratic in the text.
pub const BLANKS_LOOKAHEAD: usize = 256;

/// [`skip_blanks`] that reads at most [`BLANKS_LOOKAHEAD`] bytes from the
/// first comment on (the whitespace before it is the name's own): `None`
/// when the comments may run on past them (the caller assumes the
/// worst). A token found is read whole, a `--` comment's third byte
/// included.
pub fn skip_blanks_near(sql: &[u8], mut i: usize) -> Option<usize> {
    while sql.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    let end = sql.len().min(i.saturating_add(BLANKS_LOOKAHEAD));
    let j = skip_blanks(&sql[..end], i);
    (end == sql.len() || j + 3 < end).then_some(j)
}

/// True when a `--` comment starts at `i`. MariaDB opens one where `--`
/// is followed by a space, any control character (a tab, a vertical tab,
/// `\x01`, DEL) or the end; `1--1` is arithmetic. Reading `--\x01` as
/// anything else would let text the server skips hide text it runs (a
/// quote there opens a "string" that swallows a `; KILL 5`). After `--`,
/// a byte above ASCII may be a space in the connection's character set
/// (`\xA0` in latin1): see [`ambiguous_comment_at`].
pub fn line_comment_at(sql: &[u8], i: usize) -> bool {
    sql.get(i..i + 2) == Some(b"--") && sql.get(i + 2).is_none_or(|&c| c <= b' ' || c == 0x7f)
}

/// True when `--` at `i` is followed by a byte above ASCII: a comment or
/// not depending on the connection's character set, which Funnel does not
/// read here. Callers treat such text as unknown.
pub fn ambiguous_comment_at(sql: &[u8], i: usize) -> bool {
    sql.get(i..i + 2) == Some(b"--") && sql.get(i + 2).is_some_and(|&c| c >= 0x80)
}

/// Where the string, quoted name or comment that starts at `i` ends, or
/// `None` when none starts there (`--` as [`line_comment_at`] says). Executable comments
/// (`/*! */`) are skipped like others: callers that care look for them.
pub fn skip_string_or_comment(sql: &[u8], i: usize) -> Option<usize> {
    match sql[i] {
        q @ (b'\'' | b'"' | b'`') => Some(skip_quoted(sql, i, q)),
        b'#' => Some(skip_until(sql, i, b"\n")),
        b'-' if line_comment_at(sql, i) => Some(skip_until(sql, i, b"\n")),
        b'/' if sql.get(i + 1) == Some(&b'*') => Some(skip_until(sql, i + 2, b"*/")),
        _ => None,
    }
}

/// The end of the word (letters, digits, `_`, `$`) that starts at `i`.
pub fn word_end(sql: &[u8], mut i: usize) -> usize {
    while i < sql.len() && (sql[i].is_ascii_alphanumeric() || sql[i] == b'_' || sql[i] == b'$') {
        i += 1;
    }
    i
}

/// The words (letters, digits, `_`, `$`) of `sql` outside strings,
/// quoted names and comments, in order: `ROLLBACK/**/AND CHAIN` has three.
/// An executable comment's text (`/*!...*/`, `/*M!...*/`) is read as SQL,
/// since the server runs it (its version number reads as a word).
pub fn words(sql: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < sql.len() {
            let c = sql[i];
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                let start = i;
                i = word_end(sql, i);
                return Some(&sql[start..i]);
            }
            if sql[i..].starts_with(b"/*!") {
                i += 3;
            } else if sql[i..].starts_with(b"/*M!") {
                i += 4;
            } else {
                i = skip_string_or_comment(sql, i).unwrap_or(i + 1);
            }
        }
        None
    })
}

/// True when `sql` holds nothing but spaces, comments and `;`.
pub fn only_separators(mut sql: &[u8]) -> bool {
    loop {
        sql = skip_leading_comments(sql);
        match sql.split_first() {
            None => return true,
            Some((b';', rest)) => sql = rest,
            Some(_) => return false,
        }
    }
}

/// The statements of `sql`, split at each `;` outside strings, quoted
/// names and comments (a `;` inside a literal, `'a; COMMIT'`, splits
/// nothing).
pub fn statements(sql: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if start > sql.len() {
            return None;
        }
        while i < sql.len() {
            if let Some(end) = skip_string_or_comment(sql, i) {
                i = end.max(i + 1);
                continue;
            }
            if sql[i] == b';' {
                let statement = &sql[start..i];
                i += 1;
                start = i;
                return Some(statement);
            }
            i += 1;
        }
        let last = &sql[start.min(sql.len())..];
        start = sql.len() + 1;
        Some(last)
    })
}

/// True when `sql` is an `INSERT` or a `REPLACE` (its first token).
pub fn inserts_rows(sql: &[u8]) -> bool {
    first_word_is(sql, b"INSERT") || first_word_is(sql, b"REPLACE")
}

/// True when `word` (upper case) appears in `sql` as a word,
/// case-insensitive, anywhere: in a string or a comment too, for checks
/// where a false positive only costs some work.
pub fn mentions_word(sql: &[u8], word: &[u8]) -> bool {
    let ident = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$';
    sql.windows(word.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(word)
            && (i == 0 || !ident(&sql[i - 1]))
            && sql.get(i + word.len()).is_none_or(|c| !ident(c))
    })
}

/// True when the word `RETURNING` appears in `sql` (see [`mentions_word`]).
pub fn mentions_returning(sql: &[u8]) -> bool {
    mentions_word(sql, b"RETURNING")
}

/// True when `sql` may change what the server describes for another
/// text's prepare: it creates, alters, drops or renames something (a
/// table, a view, a function whose type a column takes), but for a
/// temporary table, which only its own session sees. Read from its first
/// word; `wider` (several statements, a compound statement, SQL run from a
/// string, `SET STATEMENT ... FOR` one) looks for those words anywhere. Reading too much only has the
/// server describe a few prepares again.
pub fn may_change_descriptions(sql: &[u8], wider: bool) -> bool {
    const WORDS: [&[u8]; 4] = [b"CREATE", b"ALTER", b"DROP", b"RENAME"];
    let s = skip_leading_comments(sql);
    let first = &s[..word_end(s, 0)];
    let defines = WORDS.iter().any(|w| first.eq_ignore_ascii_case(w));
    if defines && !wider {
        // `CREATE [OR REPLACE] TEMPORARY TABLE`, `DROP TEMPORARY TABLE`:
        // only there does the word say so (elsewhere it may name a column,
        // `ALTER TABLE t MODIFY temporary ...`).
        fn next(r: &[u8]) -> &[u8] {
            skip_leading_comments(&r[word_end(r, 0)..])
        }
        let word = |r: &[u8]| r[..word_end(r, 0)].to_ascii_uppercase();
        let mut rest = next(s);
        let creates = first.eq_ignore_ascii_case(b"CREATE");
        if creates && word(rest) == b"OR" {
            rest = next(next(rest));
        }
        let temporary = (creates || first.eq_ignore_ascii_case(b"DROP")) && word(rest) == b"TEMPORARY";
        return !temporary;
    }
    defines || (wider && WORDS.iter().any(|w| mentions_word(sql, w)))
}

/// True when the first token of `sql` (after comments) is `word`,
/// case-insensitive.
pub fn first_word_is(sql: &[u8], word: &[u8]) -> bool {
    let s = skip_leading_comments(sql);
    s.len() >= word.len()
        && s[..word.len()].eq_ignore_ascii_case(word)
        && s.get(word.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_lex_statements_that_may_change_descriptions() {
        let yes = |sql: &str, wider| may_change_descriptions(sql.as_bytes(), wider);
        assert!(yes("ALTER TABLE t MODIFY v VARCHAR(40)", false));
        assert!(yes("/* app */ create or replace view v AS SELECT 1", false));
        assert!(yes("DROP TABLE t", false));
        assert!(yes("RENAME TABLE a TO b", false));
        assert!(yes("CREATE FUNCTION f() RETURNS INT RETURN 1", false));
        assert!(!yes("SELECT created, alter_at FROM t", false));
        assert!(!yes("INSERT INTO t VALUES ('ALTER TABLE')", false));
        assert!(!yes("CREATE TEMPORARY TABLE t (a INT)", false));
        assert!(!yes("create or replace temporary table t (a INT)", false));
        assert!(!yes("DROP /* x */ TEMPORARY TABLE IF EXISTS t", false));
        assert!(!yes("CREATE OR /* x */ REPLACE TEMPORARY TABLE t (a INT)", false));
        assert!(yes("ALTER TABLE t MODIFY temporary VARCHAR(40)", false));
        assert!(yes("CREATE TABLE t (id INT, temporary INT)", false));
        assert!(yes("CREATE OR REPLACE VIEW temporary AS SELECT 1", false));
        assert!(yes("DROP TABLE IF EXISTS temporary", false));
        assert!(!yes("", false));
        assert!(yes("SELECT 1; ALTER TABLE t ADD c INT", true));
        assert!(yes("EXECUTE IMMEDIATE 'drop view v'", true));
        assert!(yes(
            "SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE t ADD c INT",
            true
        ));
        assert!(!yes(
            "SET STATEMENT max_statement_time = 1 FOR SELECT created FROM t",
            true
        ));
        assert!(!yes("SELECT created FROM t; SELECT 2", true));
        assert!(yes("DROP TEMPORARY TABLE t; DROP TABLE u", true));
    }

    #[test]
    fn sql_lex_mentions_returning_as_a_word() {
        assert!(mentions_returning(b"INSERT INTO t VALUES (1) returning id"));
        assert!(mentions_returning(b"INSERT INTO t VALUES (1)\nRETURNING*"));
        assert!(!mentions_returning(b"INSERT INTO returning_log VALUES (1)"));
        assert!(!mentions_returning(b"INSERT INTO t (x_returning) VALUES (1)"));
        assert!(mentions_word(b"/*!CALL p() */", b"CALL"));
        assert!(!mentions_word(b"SELECT recall FROM t", b"CALL"));
    }

    #[test]
    fn sql_lex_quotes_and_comments() {
        assert_eq!(skip_quoted(b"'a''b' x", 0, b'\''), 6);
        assert_eq!(
            skip_leading_comments(b" /* a */ -- b\n# c\n ROLLBACK"),
            b"ROLLBACK"
        );
        assert_eq!(skip_leading_comments(b"/* open"), b"");
        assert_eq!(skip_quoted(br"'a\'b' x", 0, b'\''), 6);
        assert_eq!(skip_quoted(br"`a\`x", 0, b'`'), 4, "no escapes in backticks");
        assert_eq!(skip_quoted(b"'open", 0, b'\''), 5);
        assert_eq!(skip_until(b"/* c */ x", 2, b"*/"), 7);
        assert_eq!(skip_until(b"# c", 0, b"\n"), 3);
        assert!(line_comment_at(b"--\n", 0));
        for c in [b' ', b'\t', 0x0b, 0x01, 0x1f, 0x7f] {
            let sql = [b'-', b'-', c, b'\'', b'\n', b'x'];
            assert!(line_comment_at(&sql, 0), "{c:#x}");
            assert_eq!(skip_string_or_comment(&sql, 0), Some(5), "{c:#x}");
            assert_eq!(skip_leading_comments(&sql), b"x", "{c:#x}");
        }
        assert!(line_comment_at(b"--", 0));
        for sql in [&b"1--1"[..], b"--a", b"--\xa0", b"-"] {
            assert!(!line_comment_at(sql, 0) && !line_comment_at(sql, 1), "{sql:?}");
        }
        assert_eq!(
            ansi_quotes_form(br#"SELECT 'a\'b' AS "c\", "d""\" /*!"\"*/ `\"` x"#).as_deref(),
            Some(&br#"SELECT 'a\'b' AS "c ", "d"" " /*!" "*/ `\"` x"#[..])
        );
        assert!(ambiguous_comment_at(b"--\xa0", 0));
        assert!(!ambiguous_comment_at(b"-- \xa0", 0));
    }

    /// The byte-by-byte forms the searching ones replaced.
    mod stepwise {
        pub fn skip_quoted(sql: &[u8], start: usize, quote: u8) -> usize {
            let mut i = start + 1;
            while i < sql.len() {
                match sql[i] {
                    b'\\' if quote != b'`' => i += 2,
                    c if c == quote => {
                        if sql.get(i + 1) == Some(&quote) {
                            i += 2;
                        } else {
                            return i + 1;
                        }
                    }
                    _ => i += 1,
                }
            }
            sql.len()
        }

        pub fn skip_until(sql: &[u8], from: usize, end: &[u8]) -> usize {
            sql.get(from..)
                .and_then(|rest| rest.windows(end.len()).position(|w| w == end))
                .map_or(sql.len(), |p| from + p + end.len())
        }

        pub fn multibyte_backslash(sql: &[u8]) -> bool {
            sql.windows(2).any(|w| w[0] >= 0x81 && w[1] == b'\\')
        }
    }

    /// Every text of up to 5 bytes over the bytes that matter to quoting
    /// (quotes, a backslash, a multibyte lead byte, comment openers): the
    /// searching lexers end every string, name and comment where the
    /// stepwise ones did, and the ANSI_QUOTES reading is skipped only when
    /// it is the text itself.
    #[test]
    fn sql_lex_searches_match_stepwise_reading() {
        const BYTES: [u8; 9] = [b'\'', b'"', b'`', b'\\', b'a', 0x95, b'*', b'/', b'\n'];
        let mut sql = Vec::new();
        for len in 0..=5u32 {
            for mut n in 0..BYTES.len().pow(len) {
                sql.clear();
                for _ in 0..len {
                    sql.push(BYTES[n % BYTES.len()]);
                    n /= BYTES.len();
                }
                for start in 0..sql.len() {
                    for q in [b'\'', b'"', b'`'] {
                        assert_eq!(
                            skip_quoted(&sql, start, q),
                            stepwise::skip_quoted(&sql, start, q),
                            "{sql:?}"
                        );
                    }
                    for end in [&b"*/"[..], b"\n"] {
                        assert_eq!(
                            skip_until(&sql, start, end),
                            stepwise::skip_until(&sql, start, end),
                            "{sql:?}"
                        );
                    }
                }
                assert_eq!(
                    multibyte_backslash(&sql),
                    stepwise::multibyte_backslash(&sql),
                    "{sql:?}"
                );
                // A `"` name with a backslash is the one thing the reading changes.
                if let Some(ansi) = ansi_quotes_form(&sql) {
                    assert_ne!(ansi, sql);
                    assert_eq!(ansi.len(), sql.len());
                }
            }
        }
        // A backslash last in an open string, and one escaping the quote.
        assert_eq!(skip_quoted(b"'ab\\", 0, b'\''), 4);
        assert_eq!(skip_quoted(b"'a\\'' x", 0, b'\''), 5);
        assert_eq!(ansi_quotes_form(br#"INSERT INTO t VALUES ('a\"b', "c")"#), None);
        assert_eq!(
            ansi_quotes_form(br#"SELECT "a\", @v := 1 -- ""#).as_deref(),
            Some(&br#"SELECT "a ", @v := 1 -- ""#[..])
        );
    }
}
