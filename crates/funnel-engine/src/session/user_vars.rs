//! User variables (`@x`) a client set, tracked so that its next command can
//! run on any backend connection instead of pinning the client: before a
//! command the connection gets one `SET` that gives it exactly the client's
//! user variables, and NULL for those it carries from other clients.
//!
//! A value is kept as the expression that recreates it exactly, type
//! included, on any connection whatever its character set:
//! - a numeric literal (`5`, `-1.50`, `1e3`, `18446744073709551615`),
//!   `TRUE` or `FALSE`, as the client wrote it: its type never depends on
//!   the connection;
//! - anything else the server computed (a string literal included, whose
//!   collation is the connection's at that moment, and `NULL`, which keeps
//!   the type the variable had): read back after the `SET` on the same
//!   connection ([`read_back_sql`], [`replay_from_server`]) and kept as a
//!   typed literal (`CAST(5 AS UNSIGNED)`, `1.50`,
//!   `_utf8mb4 X'61' COLLATE utf8mb4_general_ci`, `CAST(NULL AS SIGNED)`).
//!
//! A bare `NULL` is never replayed: the server keeps the type a variable
//! already had when it is set to `NULL`, so on a connection that carried
//! another client's value of that name it would show that client's type.
//!
//! What cannot be reproduced exactly (a double the server computed, a NULL
//! with a type, a string in a character set whose bytes Funnel cannot
//! check) pins the client instead, as do names outside plain ASCII (the
//! server folds their case with its own collation) and the caps below.

use std::collections::BTreeMap;

use super::pinning::PinReason;
use crate::pool::conn::BackendConn;

/// At most this many user variables per client; one more pins it.
pub const MAX_VARS: usize = 64;
/// At most this many bytes per value (a literal's text, a string's bytes).
pub const MAX_VALUE_BYTES: usize = 1024;
/// At most this many bytes per name.
pub const MAX_NAME_BYTES: usize = 64;

/// What a variable the client never set is given: a binary string NULL,
/// the type of a variable never set (a bare `NULL` would keep the type of
/// the value another client left in it).
pub const NULL_BINARY: &str = "CAST(NULL AS BINARY)";

/// What a connection is recorded to hold for a variable whose value
/// Funnel does not know (one a prepare made there, see [`made_by_prepare`]):
/// no expression a client's variable is kept as, so the next sync gives
/// the variable the client's value, or [`NULL_BINARY`].
const UNKNOWN: &str = "";

/// User variables by lower-case name, each with the expression that
/// recreates its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserVars(BTreeMap<String, String>);

impl UserVars {
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets them all (`COM_RESET_CONNECTION`, `COM_CHANGE_USER`).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The expression recreating `name`'s value, if tracked.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// True when recording `values` keeps within [`MAX_VARS`].
    pub fn fits(&self, values: &[(String, String)]) -> bool {
        let mut new: Vec<&str> = values
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !self.0.contains_key(*n))
            .collect();
        new.sort_unstable();
        new.dedup();
        self.0.len() + new.len() <= MAX_VARS
    }

    /// Records values the server accepted (the last of one name wins).
    pub fn apply(&mut self, values: &[(String, String)]) {
        for (name, value) in values {
            self.0.insert(name.clone(), value.clone());
        }
    }

    /// Records that the connection holds `name` with a value Funnel does
    /// not know, unless it holds `name` already: a prepare leaves the
    /// value and type of a variable that exists alone.
    pub fn carry_unknown(&mut self, name: String) {
        self.0.entry(name).or_insert_with(|| UNKNOWN.to_owned());
    }

    /// The assignments (`@`x` = 5, @`y` = NULL`) that give a connection
    /// carrying `current` exactly these variables; `None` when it has them.
    pub fn diff(&self, current: &UserVars) -> Option<String> {
        if self == current {
            return None;
        }
        let mut parts = Vec::new();
        for (name, value) in &self.0 {
            if current.0.get(name) != Some(value) {
                parts.push(format!("@`{name}` = {value}"));
            }
        }
        for name in current.0.keys() {
            if !self.0.contains_key(name) {
                // Another client's: this client must read NULL, as it
                // would on a connection of its own.
                parts.push(format!("@`{name}` = {NULL_BINARY}"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The user variables a `COM_STMT_PREPARE` of `sql` may make on the
/// connection, by name as Funnel tracks them: MariaDB creates each
/// variable a statement assigns (`SET @y = ?`, `@y := ...` anywhere) when
/// it prepares it, NULL with the type of the value, also when the prepare
/// then fails on a later part (`SET @y = 1, @z = nosuch` makes `@y`); not
/// `SELECT ... INTO @y`, and not a variable only read. Read generously:
/// every variable the text mentions, when it has a `SET` or a `:=`
/// anywhere, in every reading the server may make of it
/// ([`super::pinning::escape_readings`], a multi-byte character set's too),
/// and inside executable comments; a name too many only costs a `SET` of
/// it to NULL. `None` when one of them is a name Funnel does not track, or
/// there are more than [`MAX_VARS`].
pub fn made_by_prepare(sql: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut assigns = false;
    let mut untracked = false;
    let readings = super::pinning::escape_readings(sql);
    for reading in readings {
        let m = mentions(&reading, &mut names);
        assigns |= m.assigns;
        untracked |= m.untracked;
    }
    if !assigns {
        return Some(Vec::new());
    }
    names.sort_unstable();
    names.dedup();
    (!untracked && names.len() <= MAX_VARS).then_some(names)
}

/// True when `sql` may mention a user variable, in any reading the server
/// may make of it (as [`made_by_prepare`] reads it): a prepare's column
/// metadata then depends on the variables' types on the connection
/// (`SELECT @y` is a `BIGINT` where `@y` is 5, a `LONGBLOB` where it was
/// never set).
pub fn mentions_any(sql: &[u8]) -> bool {
    let mut readings = super::pinning::escape_readings(sql);
    let mut names = Vec::new();
    readings.any(|reading| mentions(&reading, &mut names).untracked || !names.is_empty())
}

/// What [`mentions`] found in one reading of a statement.
struct Mentions {
    /// A `SET` word or a `:=`: a mention may be an assignment.
    assigns: bool,
    /// A variable whose name Funnel does not track.
    untracked: bool,
}

/// Adds the user variables `sql` mentions to `names`.
fn mentions(sql: &[u8], names: &mut Vec<String>) -> Mentions {
    use super::sql_lex;
    let mut m = Mentions {
        assigns: false,
        untracked: false,
    };
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            // An executable comment's text is SQL: read on inside it.
            b'/' if sql.get(i + 1) == Some(&b'*') && matches!(sql.get(i + 2), Some(b'!' | b'M')) => i += 2,
            // A comment or not by the connection's character set: read on.
            b'-' if sql_lex::ambiguous_comment_at(sql, i) => i += 2,
            // A system variable.
            b'@' if sql.get(i + 1) == Some(&b'@') => i += 2,
            b'@' => {
                let (name, end) = user_var_at(sql, i + 1);
                match name {
                    Some(Some(n)) => names.push(n),
                    Some(None) => m.untracked = true,
                    // A lone `@`: no variable, a syntax error.
                    None => {}
                }
                i = end;
            }
            b':' if sql.get(i + 1) == Some(&b'=') => {
                m.assigns = true;
                i += 2;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = sql_lex::word_end(sql, i);
                m.assigns |= sql[i..end].eq_ignore_ascii_case(b"SET");
                i = end;
            }
            _ => i = sql_lex::skip_string_or_comment(sql, i).unwrap_or(i + 1),
        }
    }
    m
}

/// The user variable name that starts at `i` (just past its `@`), and
/// where it ends: `Some(Some(name))` as Funnel tracks it, `Some(None)` for
/// a name it does not track, `None` when no name starts there.
pub fn user_var_at(sql: &[u8], i: usize) -> (Option<Option<String>>, usize) {
    match sql.get(i) {
        Some(&q @ (b'`' | b'\'' | b'"')) => {
            let end = super::sql_lex::skip_quoted(sql, i, q);
            let closed = end >= i + 2 && sql[end - 1] == q;
            // A doubled quote or an escape inside: not a name Funnel tracks.
            let raw = &sql[i + 1..end.max(i + 2) - 1];
            let plain = closed && !raw.contains(&q) && !raw.contains(&b'\\');
            let name = plain
                .then(|| std::str::from_utf8(raw).ok().and_then(normalize_name))
                .flatten();
            (Some(name), end)
        }
        _ => {
            let mut end = i;
            while end < sql.len() && (sql[end].is_ascii_alphanumeric() || b"_$.".contains(&sql[end])) {
                end += 1;
            }
            if sql.get(end).is_some_and(|&c| c >= 0x80) {
                // The name goes on in characters Funnel does not fold.
                let rest = sql[end..]
                    .iter()
                    .position(|&c| c < 0x80)
                    .map_or(sql.len(), |p| end + p);
                return (Some(None), rest);
            }
            if end == i {
                return (None, i);
            }
            let name = std::str::from_utf8(&sql[i..end]).ok().and_then(normalize_name);
            (Some(name), end)
        }
    }
}

/// A user variable's name as Funnel tracks it (lower case), or `None` when
/// it is not tracked: empty, longer than [`MAX_NAME_BYTES`], or with other
/// characters than printable ASCII (the server compares names with its own
/// case-insensitive collation, which Funnel does not reproduce beyond
/// ASCII), quotes, backslashes or a space at either end (trailing spaces
/// may not count in that comparison).
pub fn normalize_name(raw: &str) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_NAME_BYTES
        && raw
            .bytes()
            .all(|c| (0x20..0x7f).contains(&c) && !b"'\"`\\".contains(&c))
        && !raw.starts_with(' ')
        && !raw.ends_with(' ');
    ok.then(|| raw.to_ascii_lowercase())
}

/// `text` (an assignment's whole value) when it is a literal whose type
/// does not depend on the connection, to be replayed as written: a number
/// with an optional sign, `TRUE`, `FALSE`. `None` for anything else
/// (strings included, and `NULL`, whose type is the variable's before),
/// which the server must compute.
pub fn tracked_literal(text: &str) -> Option<String> {
    if text.len() > MAX_VALUE_BYTES {
        return None;
    }
    for word in ["TRUE", "FALSE"] {
        if text.eq_ignore_ascii_case(word) {
            return Some(word.to_string());
        }
    }
    is_number(text).then(|| text.to_string())
}

/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`): a numeric literal.
fn is_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The select list that reads back `name`'s value: the value itself (for
/// its type in the column metadata), its collation, its character set and
/// its bytes in hex. None of them can raise a warning.
pub fn read_back_sql(name: &str) -> String {
    format!("@`{name}`, COLLATION(@`{name}`), CHARSET(@`{name}`), HEX(CAST(@`{name}` AS BINARY))")
}

/// Columns [`read_back_sql`] selects per variable.
pub const READ_BACK_COLUMNS: usize = 4;

/// What the server reported for one variable (see [`read_back_sql`]).
pub struct ServerValue<'a> {
    /// The type byte of the value's column.
    pub column_type: u8,
    /// The column's flags (`UNSIGNED`).
    pub flags: u16,
    /// The value as text.
    pub value: Option<&'a str>,
    /// `COLLATION(@x)`.
    pub collation: Option<&'a str>,
    /// `CHARSET(@x)`.
    pub charset: Option<&'a str>,
    /// `HEX(CAST(@x AS BINARY))`.
    pub hex: Option<&'a str>,
}

/// The expression that recreates a value the server reported, exactly and
/// whatever the connection's character set; `None` when Funnel cannot be
/// sure to (the caller pins).
pub fn replay_from_server(v: &ServerValue<'_>) -> Option<String> {
    const DOUBLE: u8 = 0x05;
    const LONGLONG: u8 = 0x08;
    const NEWDECIMAL: u8 = 0xf6;
    const STRING_TYPES: [u8; 7] = [0x0f, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe];
    const UNSIGNED: u16 = 0x20;
    let name = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    let Some(value) = v.value else {
        // A NULL keeps a type (the variable's before `SET @x = NULL`): a
        // cast gives it that type on any connection.
        return match v.column_type {
            LONGLONG if v.flags & UNSIGNED != 0 => Some("CAST(NULL AS UNSIGNED)".to_string()),
            LONGLONG => Some("CAST(NULL AS SIGNED)".to_string()),
            DOUBLE => Some("CAST(NULL AS DOUBLE)".to_string()),
            t if STRING_TYPES.contains(&t) => {
                let (cs, coll) = (v.charset?, v.collation?);
                if !(name(cs) && name(coll)) {
                    return None;
                }
                Some(if cs == "binary" {
                    NULL_BINARY.to_string()
                } else {
                    format!("CAST(NULL AS CHAR CHARACTER SET {cs}) COLLATE {coll}")
                })
            }
            // A DECIMAL's NULL: its precision is not read back.
            _ => None,
        };
    };
    match v.column_type {
        LONGLONG if v.flags & UNSIGNED != 0 => {
            value.parse::<u64>().ok()?;
            Some(format!("CAST({value} AS UNSIGNED)"))
        }
        LONGLONG => {
            value.parse::<i64>().ok()?;
            Some(value.to_string())
        }
        NEWDECIMAL => {
            let digits = value.strip_prefix('-').unwrap_or(value);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let ok = !int.is_empty()
                && int.bytes().all(|c| c.is_ascii_digit())
                && frac.bytes().all(|c| c.is_ascii_digit());
            // A literal with a point is a DECIMAL of that scale; without
            // one it could read as an integer.
            ok.then(|| {
                if digits.contains('.') {
                    value.to_string()
                } else {
                    format!("{value}.")
                }
            })
        }
        // The text of a computed double is not proven to read back as
        // the same double.
        DOUBLE => None,
        t if STRING_TYPES.contains(&t) => {
            let (cs, coll, hex) = (v.charset?, v.collation?, v.hex?);
            if !(name(cs) && name(coll) && hex.len() % 2 == 0 && hex.len() <= 2 * MAX_VALUE_BYTES) {
                return None;
            }
            let bytes = decode_hex(hex)?;
            if !valid_in(cs, &bytes)? {
                return None;
            }
            Some(if cs == "binary" {
                format!("_binary X'{hex}'")
            } else {
                format!("_{cs} X'{hex}' COLLATE {coll}")
            })
        }
        _ => None,
    }
}

/// Whether `bytes` are a valid string of character set `cs`: `None` for a
/// character set Funnel does not check (the caller pins; a replay of
/// invalid bytes could be refused, or change them).
fn valid_in(cs: &str, bytes: &[u8]) -> Option<bool> {
    match cs {
        "binary" | "latin1" => Some(true),
        "ascii" => Some(bytes.is_ascii()),
        "utf8mb4" => Some(std::str::from_utf8(bytes).is_ok()),
        "utf8mb3" | "utf8" => {
            Some(std::str::from_utf8(bytes).is_ok_and(|s| s.chars().all(|c| c.len_utf8() < 4)))
        }
        _ => None,
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The text a tracked value stands for when it is a string: `PREPARE s
/// FROM @v` runs it. `None` when it is no string Funnel can decode.
pub fn string_value(replay: &str) -> Option<Vec<u8>> {
    let rest = replay.strip_prefix('_')?;
    let (_, rest) = rest.split_once(" X'")?;
    let (hex, _) = rest.split_once('\'')?;
    decode_hex(hex)
}

/// Why Funnel refuses `sql` when it runs dynamic SQL (`PREPARE s FROM @v`,
/// `EXECUTE IMMEDIATE @v`) held in one of the client's tracked user
/// variables: the text of each such variable the query names is checked
/// like a literal would be ([`super::pinning::refusal`]), so `SET @v =
/// 'KILL 5'; PREPARE s FROM @v` is refused as `PREPARE s FROM 'KILL 5'`
/// is. A value Funnel does not know (the client is pinned for it) or an
/// expression built at run time cannot be read.
pub fn dynamic_sql_refusal(sql: &[u8], vars: &UserVars) -> Option<&'static str> {
    let mentions = |w: &[u8]| sql.windows(w.len()).any(|x| x.eq_ignore_ascii_case(w));
    if vars.is_empty() || !(mentions(b"PREPARE") || mentions(b"IMMEDIATE")) {
        return None;
    }
    let mut i = 0;
    while i < sql.len() {
        if sql[i] != b'@' {
            i += 1;
            continue;
        }
        if sql.get(i + 1) == Some(&b'@') {
            i += 2;
            continue;
        }
        let rest = &sql[i + 1..];
        let (raw, len) = match rest.first() {
            Some(&q @ (b'`' | b'\'' | b'"')) => {
                let end = rest[1..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(rest.len() - 1, |p| p + 1);
                (&rest[1..end], end + 1)
            }
            _ => {
                let n = rest
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.')))
                    .unwrap_or(rest.len());
                (&rest[..n], n)
            }
        };
        let value = std::str::from_utf8(raw)
            .ok()
            .and_then(normalize_name)
            .and_then(|name| vars.get(&name))
            .and_then(string_value);
        if let Some(r) = value.and_then(|text| super::pinning::refusal(&text)) {
            return Some(r);
        }
        i += 1 + len.max(1);
    }
    None
}

impl super::Session {
    /// After a `SET @x = literal` the server accepted: records the values
    /// for the session and for the connection that ran it. A session that
    /// already keeps its connection (it may carry values Funnel does not
    /// know), or would go over [`MAX_VARS`], pins instead.
    pub(super) fn record_user_vars(&mut self, conn: &mut BackendConn, values: &[(String, String)]) {
        if self.sticky() || !self.user_vars.fits(values) {
            self.pin(PinReason::UserVariable);
            return;
        }
        self.user_vars.apply(values);
        conn.user_vars.apply(values);
    }

    /// After a `SET` that assigns user variables failed: MariaDB makes
    /// each variable as it reads its assignment, NULL, and may fail on a
    /// later one (`SET @a = 1, time_zone = 'nosuch'` makes `@a`), as a
    /// prepare does ([`made_by_prepare`]). A client that had not set one
    /// itself is pinned (`user_variable`): it reads what the server made,
    /// as on a connection of its own, and no other client gets the
    /// connection with it (a pinned session keeps what a prepare made
    /// there the same way). A variable the client had keeps its value.
    pub(super) fn vars_made_by_failed_set(&mut self, f: &super::command::Forward) {
        let mut names = f.set_user_vars.iter().flatten().map(|(n, _)| n);
        let mut names = names.by_ref().chain(f.read_back_user_vars.iter().flatten());
        if names.any(|n| self.user_vars.get(n).is_none()) {
            self.pin(PinReason::UserVariable);
        }
    }

    /// After a `SET @x = expression`: reads the values back on the same
    /// connection and records them as typed literals. Pins instead where
    /// that would not be faithful: the `SET` left warnings (the read would
    /// replace them), the session already keeps its connection, a value
    /// has no exact literal form, or the caps. `Err` when the connection
    /// failed.
    pub(super) async fn read_back_user_vars(
        &mut self,
        conn: &mut BackendConn,
        names: &[String],
        warnings: u16,
    ) -> Result<(), crate::pool::conn::BackendError> {
        if warnings > 0 || self.sticky() {
            self.pin(PinReason::UserVariable);
            return Ok(());
        }
        let list: Vec<String> = names.iter().map(|n| read_back_sql(n)).collect();
        let (columns, rows) = match conn
            // Its own LIMIT: the session's `sql_select_limit` applies to it.
            .query_definitions(&format!("SELECT {} LIMIT 1", list.join(", ")))
            .await
        {
            Ok(result) => result,
            Err(crate::pool::conn::BackendError::Refused(_)) => {
                self.pin(PinReason::UserVariable);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let width = names.len() * READ_BACK_COLUMNS;
        let values: Option<Vec<(String, String)>> = rows
            .first()
            .filter(|row| row.len() == width && columns.len() == width)
            .and_then(|row| {
                names
                    .iter()
                    .zip(
                        row.chunks(READ_BACK_COLUMNS)
                            .zip(columns.chunks(READ_BACK_COLUMNS)),
                    )
                    .map(|(name, (cells, defs))| {
                        let v = ServerValue {
                            column_type: defs[0].column_type,
                            flags: defs[0].flags,
                            value: cells[0].as_deref(),
                            collation: cells[1].as_deref(),
                            charset: cells[2].as_deref(),
                            hex: cells[3].as_deref(),
                        };
                        Some((name.clone(), replay_from_server(&v)?))
                    })
                    .collect()
            });
        match values {
            Some(v) if self.user_vars.fits(&v) => {
                self.user_vars.apply(&v);
                conn.user_vars.apply(&v);
            }
            _ => self.pin(PinReason::UserVariable),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> UserVars {
        let mut v = UserVars::default();
        v.apply(
            &pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        v
    }

    #[test]
    fn user_vars_diff_sets_the_clients_and_nulls_the_others() {
        let none = UserVars::default();
        assert_eq!(none.diff(&none), None);
        let mine = vars(&[("x", "5"), ("s", "_binary X'41'")]);
        assert_eq!(mine.diff(&mine.clone()), None);
        assert_eq!(
            mine.diff(&none).as_deref(),
            Some("@`s` = _binary X'41', @`x` = 5")
        );
        let theirs = vars(&[("x", "7"), ("y", "1")]);
        assert_eq!(
            mine.diff(&theirs).as_deref(),
            Some("@`s` = _binary X'41', @`x` = 5, @`y` = CAST(NULL AS BINARY)")
        );
        assert_eq!(
            none.diff(&theirs).as_deref(),
            Some("@`x` = CAST(NULL AS BINARY), @`y` = CAST(NULL AS BINARY)")
        );
    }

    #[test]
    fn user_vars_mentioned_anywhere() {
        for sql in [
            "SELECT @y",
            "SELECT `@y`, @`y`",
            "SELECT v FROM t WHERE v = @y",
            "SELECT 1 /*! , @y */",
            "SELECT \"a\\\" @y \"",
        ] {
            assert!(mentions_any(sql.as_bytes()), "{sql}");
        }
        for sql in ["SELECT @@time_zone", "SELECT 'a@b'", "SELECT 1 -- @y"] {
            assert!(!mentions_any(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn user_vars_caps() {
        let mut v = UserVars::default();
        let many: Vec<(String, String)> = (0..MAX_VARS).map(|i| (format!("v{i}"), "1".into())).collect();
        assert!(v.fits(&many));
        v.apply(&many);
        assert!(v.fits(&[("v0".into(), "2".into())]), "an existing name");
        assert!(!v.fits(&[("new".into(), "2".into())]));
        assert_eq!(
            tracked_literal(&"1".repeat(MAX_VALUE_BYTES)).map(|s| s.len()),
            Some(MAX_VALUE_BYTES)
        );
        assert_eq!(tracked_literal(&"1".repeat(MAX_VALUE_BYTES + 1)), None);
        assert_eq!(normalize_name(&"a".repeat(MAX_NAME_BYTES + 1)), None);
    }

    #[test]
    fn user_vars_names() {
        assert_eq!(normalize_name("MyVar").as_deref(), Some("myvar"));
        assert_eq!(normalize_name("a b.c$_1").as_deref(), Some("a b.c$_1"));
        for bad in ["", "a ", " a", "é", "a`b", "a'b", "a\\b", "a\nb"] {
            assert_eq!(normalize_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_vars_made_by_a_prepare_are_set_by_the_next_sync() {
        let mut conn = vars(&[("x", "5")]);
        conn.carry_unknown("x".into());
        conn.carry_unknown("y".into());
        assert_eq!(
            vars(&[("x", "5")]).diff(&conn).as_deref(),
            Some("@`y` = CAST(NULL AS BINARY)")
        );
        assert_eq!(
            vars(&[("y", "1")]).diff(&conn).as_deref(),
            Some("@`y` = 1, @`x` = CAST(NULL AS BINARY)")
        );
    }

    #[test]
    fn user_vars_made_by_a_prepare() {
        let made = |sql: &str| made_by_prepare(sql.as_bytes());
        let names = |list: &[&str]| Some(list.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        for (sql, want) in [
            ("SET @Y = ?", names(&["y"])),
            ("set @y := ?, @@session.sql_mode = ''", names(&["y"])),
            ("SELECT v, @w := v + 1 FROM t", names(&["w"])),
            ("SET @v = 'x', @`u` = nosuch", names(&["u", "v"])),
            ("SET @x = @y", names(&["x", "y"])),
            ("SELECT @'a.b' := 1, @\"c$\" := 2", names(&["a.b", "c$"])),
            (
                "SET STATEMENT max_statement_time = 1 FOR SELECT @s",
                names(&["s"]),
            ),
            ("/*!SELECT @e := 1 */", names(&["e"])),
            // Only read: nothing made.
            ("SELECT @y, @@sql_mode, '@z := 1'", names(&[])),
            ("SELECT v INTO @y FROM t", names(&[])),
            ("SELECT 1 -- := @y", names(&[])),
            ("SELECT /* SET */ @y", names(&[])),
            // Under ANSI_QUOTES `"x\"` ends at its second quote.
            ("SELECT \"x\\\", @a := 1 -- \"", names(&["a"])),
            // A name Funnel does not track.
            ("SET @`a``b` = 1", None),
            ("SET @'a\\'b' = 1", None),
            ("SET @é = 1", None),
            ("SET @a\u{e9} = 1", None),
        ] {
            assert_eq!(made(sql), want, "{sql}");
        }
        let many: Vec<String> = (0..=MAX_VARS).map(|i| format!("@v{i} = 1")).collect();
        assert_eq!(made(&format!("SET {}", many.join(", "))), None);
    }

    #[test]
    fn user_vars_literals_kept_as_written() {
        for lit in [
            "5",
            "-5",
            "+5",
            "1.50",
            ".5",
            "5.",
            "1e3",
            "-1.5E-3",
            "18446744073709551615",
        ] {
            assert_eq!(tracked_literal(lit).as_deref(), Some(lit), "{lit}");
        }
        assert_eq!(tracked_literal("True").as_deref(), Some("TRUE"));
        for not in [
            "NULL", "null", "'a'", "0x41", "1e", "--5", "- 5", "5 + 1", ".", "e5", "1.2.3", "DEFAULT", "@y",
        ] {
            assert_eq!(tracked_literal(not), None, "{not}");
        }
    }

    fn server<'a>(
        t: u8,
        flags: u16,
        value: Option<&'a str>,
        coll: &'a str,
        cs: &'a str,
        hex: &'a str,
    ) -> ServerValue<'a> {
        ServerValue {
            column_type: t,
            flags,
            value,
            collation: Some(coll),
            charset: Some(cs),
            hex: Some(hex),
        }
    }

    #[test]
    fn user_vars_server_values_become_typed_literals() {
        let r = |v: ServerValue<'_>| replay_from_server(&v);
        assert_eq!(
            r(server(0x08, 0, Some("-7"), "binary", "binary", "")).as_deref(),
            Some("-7")
        );
        assert_eq!(
            r(server(
                0x08,
                0x20,
                Some("18446744073709551615"),
                "binary",
                "binary",
                ""
            ))
            .as_deref(),
            Some("CAST(18446744073709551615 AS UNSIGNED)")
        );
        assert_eq!(r(server(0x08, 0, Some("x"), "binary", "binary", "")), None);
        assert_eq!(
            r(server(0xf6, 0, Some("-1.50"), "binary", "binary", "")).as_deref(),
            Some("-1.50")
        );
        assert_eq!(
            r(server(
                0xf6,
                0,
                Some("12345678901234567890"),
                "binary",
                "binary",
                ""
            ))
            .as_deref(),
            Some("12345678901234567890.")
        );
        assert_eq!(
            r(server(0x05, 0, Some("0.5"), "binary", "binary", "")),
            None,
            "doubles pin"
        );
        // A NULL keeps its type: the variable's before `SET @x = NULL`.
        for (t, flags, coll, cs, want) in [
            (0xfb, 0, "binary", "binary", Some("CAST(NULL AS BINARY)")),
            (0x08, 0, "binary", "binary", Some("CAST(NULL AS SIGNED)")),
            (0x08, 0x20, "binary", "binary", Some("CAST(NULL AS UNSIGNED)")),
            (0x05, 0, "binary", "binary", Some("CAST(NULL AS DOUBLE)")),
            (
                0xfb,
                0,
                "latin1_bin",
                "latin1",
                Some("CAST(NULL AS CHAR CHARACTER SET latin1) COLLATE latin1_bin"),
            ),
            (0xf6, 0, "binary", "binary", None),
            (0xfb, 0, "x' OR 1", "latin1", None),
        ] {
            let mut v = server(t, flags, None, coll, cs, "");
            v.hex = None;
            assert_eq!(r(v).as_deref(), want, "{t:#x} {coll}");
        }
        assert_eq!(
            r(server(
                0xfb,
                0,
                Some("é"),
                "utf8mb4_general_ci",
                "utf8mb4",
                "C3A9"
            ))
            .as_deref(),
            Some("_utf8mb4 X'C3A9' COLLATE utf8mb4_general_ci")
        );
        assert_eq!(
            r(server(0xfb, 0, Some("A"), "binary", "binary", "41")).as_deref(),
            Some("_binary X'41'")
        );
        assert_eq!(
            r(server(0xfb, 0, Some("?"), "utf8mb4_bin", "utf8mb4", "FF")),
            None,
            "invalid UTF-8"
        );
        assert_eq!(
            r(server(0xfb, 0, Some("?"), "utf8mb3_bin", "utf8mb3", "F09F9880")),
            None,
            "4 bytes in utf8mb3"
        );
        assert_eq!(
            r(server(0xfb, 0, Some("?"), "sjis_bin", "sjis", "41")),
            None,
            "unchecked charset"
        );
        assert_eq!(r(server(0xfb, 0, Some("?"), "x' OR 1", "utf8mb4", "41")), None);
        let long = "41".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(
            r(server(0xfb, 0, Some("?"), "binary", "binary", &long)),
            None,
            "over the cap"
        );
        assert_eq!(
            string_value("_utf8mb4 X'4B494C4C' COLLATE utf8mb4_bin").as_deref(),
            Some(&b"KILL"[..])
        );
        assert_eq!(string_value("5"), None);
    }

    #[test]
    fn user_vars_dynamic_sql_in_a_tracked_variable_is_checked() {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02X}")).collect::<String>();
        let v = vars(&[
            ("k", &format!("_utf8mb4 X'{}' COLLATE utf8mb4_bin", hex("KILL 5"))),
            ("a b", &format!("_binary X'{}'", hex("SET PASSWORD = 'x'"))),
            (
                "q",
                &format!("_latin1 X'{}' COLLATE latin1_bin", hex("SELECT 'KILL 5'")),
            ),
            ("n", "5"),
        ]);
        for sql in [
            "PREPARE s FROM @k",
            "prepare s from @K",
            "EXECUTE IMMEDIATE @`a b`",
            "SELECT 1; PREPARE s FROM @'k'",
            "PREPARE s FROM CONCAT(@q, ''), t FROM @k",
        ] {
            assert!(dynamic_sql_refusal(sql.as_bytes(), &v).is_some(), "{sql}");
        }
        for sql in [
            "PREPARE s FROM @q",
            "PREPARE s FROM @n",
            "PREPARE s FROM @unknown",
            "SELECT @k",
            "PREPARE s FROM @@k",
            "PREPARE s FROM @",
        ] {
            assert_eq!(dynamic_sql_refusal(sql.as_bytes(), &v), None, "{sql}");
        }
        assert_eq!(
            dynamic_sql_refusal(b"PREPARE s FROM @k", &UserVars::default()),
            None
        );
    }
}
