//! Session variables a client set, tracked so its next command can run on
//! any backend connection: the connection is brought in line with one
//! `SET` of just the differences (nothing is sent when they match).
//!
//! Only plain assignments are understood: `SET [SESSION|LOCAL] a = literal,
//! @@b = literal`, `SET NAMES cs [COLLATE c]`, `SET CHARACTER SET cs` and
//! `SET SESSION TRANSACTION ...`, pure computed values (read back) and user
//! variables (`@x`, see [`super::user_vars`]). Anything else (other
//! expressions, `SET TRANSACTION` for the next transaction only, `SET
//! STATEMENT`, `SET ROLE`, ...) is not parsed: the caller pins the session.

use std::collections::BTreeMap;

use super::user_vars;

/// Pseudo-variable holding `SET NAMES ...`.
const NAMES: &str = "names";
/// Pseudo-variable holding `SET CHARACTER SET ...`.
const CHARSET: &str = "character set";
/// Variables `SET NAMES` and `SET CHARACTER SET` overwrite.
/// Besides the charset group, the variables that change how a statement
/// parses.
const SQL_MODE: &str = "sql_mode";

const PARSE_VARS: [&str; 2] = [SQL_MODE, OLD_MODE];

/// What puts back the `sql_mode` of a login with `CLIENT_IGNORE_SPACE`:
/// the global value with `IGNORE_SPACE` added, as the server adds it.
const LOGIN_SQL_MODE_IGNORE_SPACE: &str =
    "SESSION sql_mode = CONCAT_WS(',', NULLIF(@@global.sql_mode, ''), 'IGNORE_SPACE')";

/// The variable whose `UTF8_IS_UTF8MB3` flag decides what the `utf8`
/// alias means (MariaDB 10.6 and later; its default has the flag).
const OLD_MODE: &str = "old_mode";

/// Second names of one variable, with the name Funnel tracks it under: set
/// under both names, the last assignment must win, whatever the order in
/// which the differences are replayed. The tracked name is the one every
/// server version has. (`transaction_isolation` / `tx_isolation` are not
/// here: MySQL 8 has only the first and MariaDB before 11.1 only the
/// second, so each is replayed as the client wrote it.)
const ALIASES: [(&str, &str); 5] = [
    ("tmp_memory_table_size", "tmp_table_size"),
    ("log_slow_query_time", "long_query_time"),
    ("log_slow_min_examined_row_limit", "min_examined_row_limit"),
    ("sql_max_join_size", "max_join_size"),
    ("log_slow_query", "slow_query_log"),
];

/// Variables whose value is a list of flags that the server merges into
/// the current ones: `SET optimizer_switch = 'mrr=on'` changes one flag.
const FLAG_VARS: [&str; 2] = ["optimizer_switch", "optimizer_trace"];

const CHARSET_VARS: [&str; 4] = [
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
];

/// One assignment from a `SET` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Canonical lower-case name (no `@@`, no scope).
    pub name: String,
    /// The value as written (literal text), or `None` for `DEFAULT`.
    pub value: Option<String>,
}

/// What a `SET` statement does to session state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEffect {
    /// Session assignments Funnel can replay.
    Session(Vec<Assignment>),
    /// Only global variables: no session state changes.
    Global,
    /// `SET TRANSACTION ...` without a scope: characteristics for the
    /// session's next transaction only, which no replay can carry.
    NextTransaction,
    /// Session assignments of which some values are expressions over
    /// literals, system variables and [`PURE_FUNCTIONS`] (`SET sql_mode =
    /// CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')`): Funnel cannot compute
    /// them, but once the server has run the statement it can read them
    /// back and replay them as literals.
    Computed {
        /// The assignments with literal values, replayable as they are.
        assignments: Vec<Assignment>,
        /// The session variables whose values must be read back.
        read_back: Vec<String>,
    },
}

/// The variables the server sets to the new default schema's charset and
/// collation whenever the schema changes (`USE`, `COM_INIT_DB`, dropping
/// it): a value set before is gone then.
pub const SCHEMA_CHARSET_VARS: [&str; 2] = ["character_set_database", "collation_database"];

/// The tracked variables the server sets itself when `name` is assigned:
/// a charset and its collation go together (`character_set_connection`
/// sets `collation_connection` to the charset's default, and a collation
/// sets its charset), and `max_join_size` sets `sql_big_selects` (on only
/// at its maximum).
fn side_effects(name: &str) -> &'static [&'static str] {
    match name {
        "character_set_connection" => &["collation_connection"],
        "collation_connection" => &["character_set_connection"],
        "character_set_database" => &["collation_database"],
        "collation_database" => &["character_set_database"],
        "character_set_server" => &["collation_server"],
        "collation_server" => &["character_set_server"],
        "max_join_size" => &["sql_big_selects"],
        _ => &[],
    }
}

/// What a server makes of the `utf8` charset alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8Alias {
    /// `utf8mb3` or `utf8mb4` by the `UTF8_IS_UTF8MB3` flag of the
    /// session's `old_mode` (MariaDB 10.6 and later).
    ByOldMode,
    /// Always the same charset, whatever `old_mode` says (MariaDB before
    /// 10.6, which has no such flag; MySQL, which has no `old_mode`).
    Fixed,
}

impl Utf8Alias {
    /// The rule of a server that greets with `version` (`5.5.5-10.11.19-MariaDB`).
    pub fn of_server(version: &[u8]) -> Self {
        let text = String::from_utf8_lossy(version);
        let text = text.strip_prefix("5.5.5-").unwrap_or(&text);
        if !text.to_ascii_lowercase().contains("mariadb") {
            return Utf8Alias::Fixed;
        }
        let mut parts = text
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) if (major, minor) < (10, 6) => Utf8Alias::Fixed,
            _ => Utf8Alias::ByOldMode,
        }
    }
}

/// Variables set in a session (or on a backend connection) beyond the
/// defaults of a fresh connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionVars(BTreeMap<String, String>);

impl SessionVars {
    /// Records assignments the server accepted, on a server that reads the
    /// `utf8` alias as `alias` says.
    pub fn apply(&mut self, assignments: &[Assignment], alias: Utf8Alias) {
        // The server resolves charset names before it assigns anything:
        // under the `old_mode` the statement started with.
        let old_mode = self.0.get(OLD_MODE).cloned();
        for a in assignments {
            // What the server changes along with the variable: the later
            // assignment of the two wins, and the replay's order (see
            // `diff_sql`) then gives the same result.
            for side in side_effects(&a.name) {
                self.0.remove(*side);
            }
            if a.name == NAMES || a.name == CHARSET {
                for v in CHARSET_VARS.iter().chain([&NAMES, &CHARSET]) {
                    self.0.remove(*v);
                }
            }
            match &a.value {
                // sql_log_bin back on is its default (MariaDB has no global value for it).
                Some(v) if a.name == "sql_log_bin" && is_on(v) => {
                    self.0.remove(&a.name);
                }
                Some(v) if FLAG_VARS.contains(&a.name.as_str()) => {
                    let merged = merge_flags(self.0.get(&a.name).map(String::as_str), v);
                    self.0.insert(a.name.clone(), merged.unwrap_or_else(|| v.clone()));
                }
                Some(v) if is_charset_group(&a.name) => {
                    let resolved = match alias {
                        Utf8Alias::ByOldMode => resolve_utf8_alias(v, old_mode.as_deref()),
                        Utf8Alias::Fixed => None,
                    };
                    self.0
                        .insert(a.name.clone(), resolved.unwrap_or_else(|| v.clone()));
                }
                Some(v) => {
                    self.0.insert(a.name.clone(), v.clone());
                }
                // `DEFAULT` is the global value, not always the login's:
                // a login with `CLIENT_IGNORE_SPACE` has `IGNORE_SPACE` too
                // (see `diff_sql_on`), so it stays in the record.
                None if a.name == SQL_MODE => {
                    self.0.insert(a.name.clone(), "DEFAULT".into());
                }
                None => {
                    self.0.remove(&a.name);
                }
            }
            if a.name == CHARSET && a.value.is_some() {
                // `SET CHARACTER SET` gives the connection the schema's
                // charset: one the session set itself is kept by name, so
                // the replay does not depend on the order it sets them in.
                if let Some(c) = self.0.get("collation_database").cloned() {
                    self.0.insert("collation_connection".into(), c);
                } else if let Some(c) = self.0.get("character_set_database").cloned() {
                    self.0.insert("character_set_connection".into(), c);
                }
            }
        }
    }

    /// The assignments that give a connection these variables' parse modes
    /// (`sql_mode`, `old_mode`), the global value where they set none.
    pub fn parse_modes(&self) -> String {
        PARSE_VARS
            .iter()
            .map(|v| format!("{v} = {}", self.0.get(*v).map_or("DEFAULT", String::as_str)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// These variables with the ones that change how the server parses a
    /// statement (`sql_mode`, the charset group) taken from `prepared`:
    /// what a statement is re-prepared under on another connection. Only
    /// those: re-applying the rest (say `sql_log_bin` or the isolation
    /// level) could fail inside the session's transaction, and parsing
    /// does not depend on them.
    pub fn with_parse_vars_of(&self, prepared: &SessionVars) -> SessionVars {
        let mut out = self.clone();
        for v in PARSE_VARS
            .iter()
            .chain(CHARSET_VARS.iter())
            .chain([&NAMES, &CHARSET])
        {
            match prepared.0.get(*v) {
                Some(value) => out.0.insert(v.to_string(), value.clone()),
                None => out.0.remove(*v),
            };
        }
        out
    }

    /// True when a tracked `SET autocommit` turned it off: a sync puts
    /// it back for whichever session uses the connection next.
    pub fn sets_autocommit_off(&self) -> bool {
        self.0.get("autocommit").is_some_and(|v| !is_on(v))
    }

    /// True when any of `names` is set (to something other than its default).
    pub fn any_set(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.0.contains_key(*n))
    }

    /// False when the session's `sql_mode` is a plain quoted literal of
    /// its own without `ORACLE` (`SET sql_mode = 'ANSI'`, or one read
    /// back); true when the server's global value decides (never set,
    /// `DEFAULT`) or the literal could spell it some other way (a number,
    /// a hex literal, escapes, adjacent strings).
    pub fn may_be_oracle(&self) -> bool {
        let Some(v) = self.0.get("sql_mode") else {
            return true;
        };
        let b = v.as_bytes();
        let plain = b.len() >= 2
            && matches!(b[0], b'\'' | b'"')
            && b[b.len() - 1] == b[0]
            && !b[1..b.len() - 1].iter().any(|&c| c == b[0] || c == b'\\');
        !plain || v.to_ascii_uppercase().contains("ORACLE")
    }

    /// About the bytes the variables take in memory (names, values and
    /// each entry's bookkeeping), for the query cache's memory bound.
    pub fn heap_size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 64).sum()
    }

    /// True when nothing was set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets everything (after `COM_RESET_CONNECTION`).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// What the server leaves after `COM_RESET_CONNECTION` on a session
    /// that logged in with `CLIENT_IGNORE_SPACE` when `ignore_space`: the
    /// global values, `sql_mode` included, which then lacks the
    /// `IGNORE_SPACE` the login added.
    pub fn reset_by_server(&mut self, ignore_space: bool) {
        self.0.clear();
        if ignore_space {
            self.0.insert(SQL_MODE.into(), "DEFAULT".into());
        }
    }

    /// The variables to set back to the server's global value in a
    /// statement of their own before `self` is replayed on a connection
    /// with `current`. MariaDB reads some values against the session as
    /// the `SET` starts, so a `DEFAULT` that [`Self::diff_sql`] put before
    /// them in the same statement would come too late:
    /// - a list of flags (`optimizer_switch`) merges into the connection's
    ///   flags, and another client's would stay;
    /// - the `utf8` alias in a charset setting is resolved under the
    ///   `old_mode` the connection has: one the session set under the
    ///   server's default `old_mode` must meet that default again, not
    ///   another client's `old_mode`.
    pub fn vars_to_reset_first(&self, current: &SessionVars) -> Vec<&'static str> {
        let mut reset: Vec<&'static str> = FLAG_VARS
            .iter()
            .copied()
            .filter(|v| {
                let (mine, theirs) = (self.0.get(*v), current.0.get(*v));
                theirs.is_some() && mine != theirs && mine.is_some_and(|m| !m.starts_with("'default"))
            })
            .collect();
        // A setting that still names the alias was made under the
        // default (one made under a session's own `old_mode` is resolved,
        // see `resolve_utf8_alias`); it is replayed when it differs, and
        // the connection's charset group whenever the group is rebuilt
        // (see `diff_sql`), equal or not.
        let rebuilt = self.charset_rebuilt(current);
        let replayed = |name: &str, val: &String| {
            current.0.get(name) != Some(val) || (rebuilt && is_rebuilt_charset_var(name))
        };
        let alias_replayed = || {
            self.0
                .iter()
                .any(|(name, val)| is_charset_group(name) && has_utf8_alias(val) && replayed(name, val))
        };
        if current.0.contains_key(OLD_MODE) && alias_replayed() {
            reset.push(OLD_MODE);
        }
        // `SET CHARACTER SET` takes the connection's `collation_database`
        // as the statement starts: another client's goes back to the
        // schema's first. (A session's own is copied into
        // `collation_connection` as it sets it, see `apply`, and replayed
        // after it.)
        if self.replays_character_set(current) {
            for v in SCHEMA_CHARSET_VARS {
                if current.0.contains_key(v) && !self.0.contains_key(v) {
                    reset.push(v);
                }
            }
        }
        reset
    }

    /// True when [`Self::diff_sql`] replays `SET CHARACTER SET` on a
    /// connection with `current`: the server then gives the connection the
    /// collation of the schema selected there.
    pub fn replays_character_set(&self, current: &SessionVars) -> bool {
        !self.0.contains_key(NAMES) && self.0.contains_key(CHARSET) && self.charset_rebuilt(current)
    }

    /// True when [`Self::diff_sql`] rebuilds the charset group (`SET
    /// NAMES` or `CHARACTER SET`, then the group's variables) to turn a
    /// connection with `current` into one with `self`.
    fn charset_rebuilt(&self, current: &SessionVars) -> bool {
        rebuilt_charset_vars().any(|v| self.0.get(v) != current.0.get(v))
    }

    /// Forgets `names`: the connection has the server's global values again.
    pub fn forget(&mut self, names: &[&str]) {
        for name in names {
            self.0.remove(*name);
        }
    }

    /// Forgets what a `SET NAMES` overwrites (the charset group, and the
    /// `SET NAMES` or `SET CHARACTER SET` that built it): after a `SET
    /// NAMES` of its handshake charset, a connection is as a fresh one of
    /// that charset. The schema's charset variables stay.
    pub fn forget_charset_group(&mut self) {
        for name in rebuilt_charset_vars() {
            self.0.remove(name);
        }
    }

    /// The statement that turns a connection with `current` variables into
    /// one with `self`'s, or `None` when they already match. `handshake`
    /// names the connection's handshake charset and collation, which is
    /// what charset variables return to; without it they cannot be reset.
    pub fn diff_sql(
        &self,
        current: &SessionVars,
        handshake: Option<(&str, &str)>,
    ) -> Result<Option<String>, CannotRestoreCharset> {
        self.diff_sql_on(current, handshake, false)
    }

    /// The assignments that give a connection these variables' client and
    /// connection charsets, what a statement's text is parsed by and its
    /// literals are typed by, leaving `character_set_results` as it is
    /// (the server reads back only its charset's name, not the collation
    /// `SET NAMES ... COLLATE` gives it, so it cannot be put back exactly).
    /// `handshake` is the connection's login charset and collation, for
    /// variables that set none.
    pub fn parse_charset_assignments(
        &self,
        handshake: Option<(&str, &str)>,
    ) -> Result<String, CannotRestoreCharset> {
        // The parser stores `SET NAMES cs COLLATE coll` as written here;
        // `CHARACTER SET` gives the connection the schema's charset.
        let (cs, connection, coll) = match (self.0.get(NAMES), self.0.get(CHARSET)) {
            (Some(names), _) => match names.split_once(" COLLATE ") {
                Some((cs, coll)) => (cs, cs, Some(coll)),
                None => (names.as_str(), names.as_str(), None),
            },
            (None, Some(cs)) => (cs.as_str(), "@@character_set_database", None),
            (None, None) => {
                let (cs, coll) = handshake.ok_or(CannotRestoreCharset)?;
                (cs, cs, Some(coll))
            }
        };
        let mut parts = vec![format!(
            "character_set_client = {cs}, character_set_connection = {connection}"
        )];
        if let Some(coll) = coll {
            parts.push(format!("collation_connection = {coll}"));
        }
        for v in CHARSET_VARS.iter().filter(|v| **v != "character_set_results") {
            if let Some(val) = self.0.get(*v) {
                parts.push(format!("{v} = {val}"));
            }
        }
        Ok(parts.join(", "))
    }

    /// [`Self::diff_sql`] for a connection that logged in with
    /// `CLIENT_IGNORE_SPACE` when `ignore_space`: the server then adds
    /// `IGNORE_SPACE` to the global `sql_mode` at login (Connector/J asks
    /// for it), so a `sql_mode` another session set goes back to that, not
    /// to `DEFAULT`, the global value alone.
    pub fn diff_sql_on(
        &self,
        current: &SessionVars,
        handshake: Option<(&str, &str)>,
        ignore_space: bool,
    ) -> Result<Option<String>, CannotRestoreCharset> {
        if self == current {
            return Ok(None);
        }
        let mut parts: Vec<String> = Vec::new();
        let names_or_charset_changed = self.charset_rebuilt(current);
        // What the connection has beyond the session goes back first: a
        // reset's side effects (`max_join_size = DEFAULT` turns
        // `sql_big_selects` on) must not undo the session's own values.
        for name in current.0.keys() {
            if name == NAMES || name == CHARSET || CHARSET_VARS.contains(&name.as_str()) {
                continue;
            }
            if !self.0.contains_key(name) {
                if ignore_space && name == SQL_MODE {
                    parts.push(LOGIN_SQL_MODE_IGNORE_SPACE.to_string());
                } else {
                    parts.push(format!("SESSION {name} = DEFAULT"));
                }
            }
        }
        if names_or_charset_changed {
            // Charset variables interact: rebuild them from the handshake
            // charset, then this session's NAMES / CHARACTER SET, then its
            // individual ones.
            match (self.0.get(NAMES), self.0.get(CHARSET)) {
                (Some(names), _) => parts.push(format!("NAMES {names}")),
                (None, Some(cs)) => parts.push(format!("CHARACTER SET {cs}")),
                (None, None) => {
                    let (cs, coll) = handshake.ok_or(CannotRestoreCharset)?;
                    parts.push(format!("NAMES {cs} COLLATE {coll}"));
                }
            }
            for v in CHARSET_VARS {
                if let Some(val) = self.0.get(v) {
                    parts.push(format!("{v} = {val}"));
                }
            }
        }
        for (name, val) in &self.0 {
            if name == NAMES || name == CHARSET || CHARSET_VARS.contains(&name.as_str()) {
                continue;
            }
            if current.0.get(name) != Some(val) {
                if FLAG_VARS.contains(&name.as_str()) && !val.starts_with("'default") {
                    // The flags apply on top of the global value.
                    parts.push(format!("SESSION {name} = DEFAULT"));
                }
                parts.push(format!("SESSION {name} = {val}"));
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!("SET {}", parts.join(", "))))
    }
}

/// The flags a session has set so far: the server merges each assignment
/// into the flags already set, so the session's value is the merge. Once
/// the session named `default` in a list (the compiled-in defaults), the
/// value starts with it and stands on its own; otherwise the flags apply
/// on top of the server's global value, and the replay sets `DEFAULT`
/// (the global value) first. `None` when a value is not a plain quoted list.
fn merge_flags(old: Option<&str>, new: &str) -> Option<String> {
    fn items(v: &str) -> Option<Vec<String>> {
        let inner = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))?;
        if inner.contains(['\'', '"', '\\']) {
            return None;
        }
        Some(
            inner
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect(),
        )
    }
    let mut flags = match old {
        Some(old) => items(old)?,
        None => Vec::new(),
    };
    let mut from_default = flags.first().is_some_and(|f| f == "default");
    for flag in items(new)? {
        if flag == "default" {
            flags.clear();
            from_default = true;
            continue;
        }
        let name = flag.split('=').next().unwrap_or_default().trim().to_string();
        flags.retain(|f| f.split('=').next().unwrap_or_default().trim() != name);
        flags.push(flag);
    }
    flags.retain(|f| f != "default");
    if from_default {
        flags.insert(0, "default".to_string());
    }
    Some(format!("'{}'", flags.join(",")))
}

/// True for the literal spellings of "on".
pub fn is_on(v: &str) -> bool {
    let v = v.trim_matches(|c| c == '\'' || c == '"');
    v == "1" || v.eq_ignore_ascii_case("ON") || v.eq_ignore_ascii_case("TRUE")
}

/// The connection's handshake charset has no name Funnel knows, so its
/// charset variables cannot be put back by `SET NAMES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CannotRestoreCharset;

/// Parses a `SET` statement, or several in a multi-statement query;
/// `None` when Funnel cannot replay them.
pub fn parse_set(sql: &[u8]) -> Option<SetEffect> {
    let text = std::str::from_utf8(sql).ok()?;
    let mut t = Lexer::new(text);
    if !t.keyword("SET") {
        return None;
    }
    let mut out = Vec::new();
    let mut computed = Vec::new();
    let mut global = false;
    // A scope keyword holds for the assignments after it, up to the next
    // one: `SET GLOBAL a = 1, b = 2` sets both globally.
    let mut carried = Scope::Default;
    let mut statement_start = 0;
    loop {
        let mut scoped = true;
        let scope = if t.keyword("GLOBAL") {
            Scope::Global
        } else if t.keyword("SESSION") || t.keyword("LOCAL") {
            Scope::Session
        } else {
            scoped = false;
            carried
        };
        carried = scope;
        if t.keyword("NAMES") {
            let cs = t.word_or_string()?;
            let value = if cs.eq_ignore_ascii_case("DEFAULT") {
                None
            } else if t.keyword("COLLATE") {
                Some(format!("{cs} COLLATE {}", t.word_or_string()?))
            } else {
                Some(cs)
            };
            out.push(Assignment {
                name: NAMES.into(),
                value,
            });
        } else if t.keyword("CHARACTER") {
            if !t.keyword("SET") {
                return None;
            }
            out.push(charset_assignment(&mut t)?);
        } else if t.keyword("CHARSET") {
            out.push(charset_assignment(&mut t)?);
        } else if t.keyword("TRANSACTION") {
            if scope == Scope::Default && out.is_empty() && !global {
                // Without a scope it applies to the next transaction only;
                // alone in its statement, that is all it does.
                parse_transaction(&mut t)?;
                t.punct(';');
                return t.at_end().then_some(SetEffect::NextTransaction);
            }
            if scope != Scope::Session {
                return None;
            }
            out.extend(parse_transaction(&mut t)?);
        } else if t.peek_char() == Some('@') && !t.rest().starts_with("@@") {
            // A user variable has no scope: a keyword before it is an error.
            if scoped {
                return None;
            }
            let (name, value) = parse_user_assignment(&mut t)?;
            match value {
                Value::Literal(value) => out.push(Assignment { name, value }),
                Value::Computed => computed.push(name),
            }
        } else {
            // Its own `@@global.` / `@@session.` prefix wins over the keyword.
            let (name, value, prefix) = parse_assignment(&mut t)?;
            if prefix.unwrap_or(scope) == Scope::Global {
                // Not session state: parsed to stay in step, then dropped.
                global = true;
            } else {
                match value {
                    Value::Literal(value) => out.push(Assignment { name, value }),
                    Value::Computed => computed.push(name),
                }
            }
        }
        if t.punct(',') {
            continue;
        }
        // A `utf8` alias means what the `old_mode` of its statement's start
        // makes of it: one set by an earlier statement of the query is
        // more than `SessionVars::apply` follows.
        let this_statement = &out[statement_start..];
        let mode_set_before = out[..statement_start].iter().any(|a| a.name == OLD_MODE);
        if mode_set_before
            && this_statement
                .iter()
                .any(|a| is_charset_group(&a.name) && a.value.as_deref().is_some_and(has_utf8_alias))
        {
            return None;
        }
        t.punct(';');
        if t.at_end() {
            break;
        }
        // A multi-statement query of SETs only: the next one starts with
        // no scope carried over.
        if !t.keyword("SET") {
            return None;
        }
        carried = Scope::Default;
        statement_start = out.len();
    }
    if !computed.is_empty() {
        return Some(SetEffect::Computed {
            assignments: out,
            read_back: computed,
        });
    }
    if out.is_empty() && global {
        return Some(SetEffect::Global);
    }
    (!out.is_empty()).then_some(SetEffect::Session(out))
}

/// Built-in functions a computed `SET` value may call: none reads a table,
/// changes state or differs between two runs on the same session.
const PURE_FUNCTIONS: [&str; 24] = [
    "concat",
    "concat_ws",
    "replace",
    "if",
    "ifnull",
    "coalesce",
    "nullif",
    "lower",
    "upper",
    "lcase",
    "ucase",
    "trim",
    "ltrim",
    "rtrim",
    "substring",
    "substr",
    "substring_index",
    "left",
    "right",
    "lpad",
    "rpad",
    "insert",
    "least",
    "greatest",
];

/// Moves past one computed value, up to a `,` or `;` outside parentheses
/// or the end; `None` at anything outside the allowed forms.
fn skip_computed_value(t: &mut Lexer<'_>) -> Option<()> {
    let mut depth = 0usize;
    let mut tokens = 0usize;
    loop {
        let rest = t.rest();
        let Some(c) = rest.chars().next() else {
            break;
        };
        if depth == 0 && (c == ',' || c == ';') {
            break;
        }
        tokens += 1;
        if c == '(' {
            depth += 1;
            t.pos += 1;
        } else if c == ')' {
            depth = depth.checked_sub(1)?;
            t.pos += 1;
        } else if c == ',' || "+-*/%<>=!|&^~".contains(c) {
            t.pos += 1;
        } else if c == '\'' || c == '"' {
            t.quoted()?;
        } else if c.is_ascii_digit() || c == '.' {
            t.pos += rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(rest.len());
        } else if c == '@' && !rest.starts_with("@@") {
            // Reading a user variable: the connection has the client's
            // (synced before the command). `@x := ...` stops at the `:`.
            t.user_var()?;
        } else if t.punct2("@@") {
            // A system variable, any scope: reading one changes nothing.
            let first = t.ident()?;
            if t.punct('.') {
                if !matches!(first.as_str(), "session" | "local" | "global") {
                    return None;
                }
                t.ident()?;
            }
        } else {
            let word = t.ident()?;
            let called = t.peek_char() == Some('(');
            let allowed = if called {
                PURE_FUNCTIONS.contains(&word.as_str())
            } else {
                matches!(word.as_str(), "select" | "null" | "true" | "false")
            };
            if !allowed {
                return None;
            }
        }
    }
    (depth == 0 && tokens > 0).then_some(())
}

/// A value the server reported for a variable, as a literal a `SET` can
/// replay: bare for numeric column types (a quoted number is refused for
/// an integer variable, error 1232), quoted otherwise. `None` when no
/// faithful literal is sure: a backslash (its escaping depends on
/// `NO_BACKSLASH_ESCAPES`), text that was not valid UTF-8, or a "number"
/// that is not one.
pub fn literal_from_server(value: &str, column_type: u8) -> Option<String> {
    // DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, LONGLONG, INT24, YEAR, NEWDECIMAL.
    const NUMERIC: [u8; 10] = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0d, 0xf6];
    if NUMERIC.contains(&column_type) {
        let digits = value.strip_prefix('-').unwrap_or(value);
        let number = !digits.is_empty()
            && digits.starts_with(|c: char| c.is_ascii_digit())
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
        return number.then(|| value.to_string());
    }
    if value.contains(['\\', '\u{fffd}']) || value.chars().any(char::is_control) {
        return None;
    }
    Some(format!("'{}'", value.replace('\'', "''")))
}

/// `value` (a charset or collation setting) with the `utf8` alias written
/// as the charset it means under `old_mode` (the session's, as the `SET`
/// started), or `None` when it has no alias or `old_mode` is the server's
/// default (or of a form not read here). MariaDB resolves the alias
/// (`utf8`, `utf8_bin`) when the `SET` runs; a later `old_mode` change
/// leaves the charset alone. The resolved name means the same under any
/// `old_mode` the replay meets.
fn resolve_utf8_alias(value: &str, old_mode: Option<&str>) -> Option<String> {
    if !has_utf8_alias(value) {
        return None;
    }
    let target = if utf8_is_utf8mb3(old_mode?)? {
        "utf8mb3"
    } else {
        "utf8mb4"
    };
    Some(replace_utf8_alias(value, target))
}

/// True when a charset or collation setting names the `utf8` alias
/// (`utf8`, `'UTF8'`, `utf8_bin`) rather than `utf8mb3` or `utf8mb4`.
fn has_utf8_alias(value: &str) -> bool {
    name_runs(value).any(|(start, end)| is_utf8_alias(&value[start..end]))
}

/// `value` with each `utf8` alias (as a whole name or a collation's
/// prefix) replaced by `charset`.
fn replace_utf8_alias(value: &str, charset: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    let mut copied = 0;
    for (start, end) in name_runs(value) {
        if is_utf8_alias(&value[start..end]) {
            out.push_str(&value[copied..start]);
            out.push_str(charset);
            copied = start + "utf8".len();
        }
    }
    out.push_str(&value[copied..]);
    out
}

/// The byte ranges of the name-like runs (letters, digits, `_`) in a
/// charset setting: `'utf8' COLLATE utf8_bin` has three.
fn name_runs(value: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = value.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !is_name(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && is_name(bytes[i]) {
            i += 1;
        }
        Some((start, i))
    })
}

fn is_utf8_alias(name: &str) -> bool {
    name.len() >= 4
        && name[..4].eq_ignore_ascii_case("utf8")
        && (name.len() == 4 || name.as_bytes()[4] == b'_')
}

/// Whether an `old_mode` value as a session set it (a quoted or bare
/// list of flags, or a number) has `UTF8_IS_UTF8MB3`; `None` when the
/// value is of no form read here.
fn utf8_is_utf8mb3(mode: &str) -> Option<bool> {
    const FLAG: &str = "UTF8_IS_UTF8MB3";
    /// The flag's bit in a numeric `old_mode` (MariaDB 10.6 and later).
    const FLAG_BIT: u64 = 8;
    let unquoted = mode.trim_matches(|c| c == '\'' || c == '"');
    if let Ok(n) = unquoted.parse::<u64>() {
        return Some(n & FLAG_BIT != 0);
    }
    if unquoted.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ',' || c == ' ')) {
        return None;
    }
    Some(
        unquoted
            .split(',')
            .any(|flag| flag.trim().eq_ignore_ascii_case(FLAG)),
    )
}

/// The variables [`SessionVars::diff_sql`] sets whenever it rebuilds the
/// charset group.
fn rebuilt_charset_vars() -> impl Iterator<Item = &'static str> {
    [NAMES, CHARSET].into_iter().chain(CHARSET_VARS)
}

fn is_rebuilt_charset_var(name: &str) -> bool {
    rebuilt_charset_vars().any(|v| v == name)
}

/// True when what `a` gives the variable comes from outside the session:
/// `DEFAULT` (the server's global value of the moment) or `SET CHARACTER
/// SET` (its `character_set_connection` is the schema's, which `ALTER
/// DATABASE` may change).
pub fn takes_outside_value(a: &Assignment) -> bool {
    a.value.is_none() || a.name == CHARSET
}

/// True for the variables of the character set group (`SET NAMES`, `SET
/// CHARACTER SET`, `character_set_*`, `collation_*`): their `DEFAULT` is the
/// server's global value, not the connection's handshake charset.
pub fn is_charset_group(name: &str) -> bool {
    name == NAMES || name == CHARSET || name.starts_with("character_set_") || name.starts_with("collation_")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    Session,
    Default,
}

fn charset_assignment(t: &mut Lexer<'_>) -> Option<Assignment> {
    let cs = t.word_or_string()?;
    Some(Assignment {
        name: CHARSET.into(),
        value: (!cs.eq_ignore_ascii_case("DEFAULT")).then_some(cs),
    })
}

/// `SESSION TRANSACTION ISOLATION LEVEL ... | READ ONLY | READ WRITE`, as the variables they set.
fn parse_transaction(t: &mut Lexer<'_>) -> Option<Vec<Assignment>> {
    let mut out = Vec::new();
    loop {
        if t.keyword("ISOLATION") {
            if !t.keyword("LEVEL") {
                return None;
            }
            let level = if t.keyword("READ") {
                if t.keyword("UNCOMMITTED") {
                    "READ-UNCOMMITTED"
                } else if t.keyword("COMMITTED") {
                    "READ-COMMITTED"
                } else {
                    return None;
                }
            } else if t.keyword("REPEATABLE") && t.keyword("READ") {
                "REPEATABLE-READ"
            } else if t.keyword("SERIALIZABLE") {
                "SERIALIZABLE"
            } else {
                return None;
            };
            out.push(Assignment {
                name: "tx_isolation".into(),
                value: Some(format!("'{level}'")),
            });
        } else if t.keyword("READ") {
            let ro = if t.keyword("ONLY") {
                "1"
            } else if t.keyword("WRITE") {
                "0"
            } else {
                return None;
            };
            out.push(Assignment {
                name: "tx_read_only".into(),
                value: Some(ro.into()),
            });
        } else {
            return None;
        }
        // Characteristics are separated by commas too; peek for another one.
        let save = t.pos;
        if t.punct(',') && (t.peek_keyword("ISOLATION") || t.peek_keyword("READ")) {
            continue;
        }
        t.pos = save;
        return Some(out);
    }
}

/// The value of one assignment.
enum Value {
    /// A literal (`None` for `DEFAULT`).
    Literal(Option<String>),
    /// An expression the server must compute.
    Computed,
}

/// `[@@[scope.]]name = value`: the name, the value and the scope its own
/// `@@global.` / `@@session.` prefix gives.
fn parse_assignment(t: &mut Lexer<'_>) -> Option<(String, Value, Option<Scope>)> {
    let sysvar = t.punct2("@@");
    if !sysvar && t.peek_char() == Some('@') {
        return None; // a user variable
    }
    let mut name = t.ident()?;
    let mut prefix = None;
    if t.punct('.') {
        prefix = match name.as_str() {
            "session" | "local" => Some(Scope::Session),
            "global" => Some(Scope::Global),
            _ => return None,
        };
        name = t.ident()?;
    }
    if !sysvar && prefix.is_none() && name == "password" {
        // `SET PASSWORD = '*hash'` changes the account's password: no
        // variable of that name exists to replay on another connection.
        return None;
    }
    if let Some((_, tracked)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        name = tracked.to_string();
    }
    if !(t.punct2(":=") || t.punct('=')) {
        return None;
    }
    let start = t.pos;
    if let Some(value) = t.literal() {
        if t.at_end() || t.peek_char().is_some_and(|c| c == ',' || c == ';') {
            let value = (!value.eq_ignore_ascii_case("DEFAULT")).then_some(value);
            return Some((name, Value::Literal(value), prefix));
        }
    }
    t.pos = start;
    skip_computed_value(t)?;
    Some((name, Value::Computed, prefix))
}

/// `@name = value` (also `:=`, and the name quoted with `` ` ``, `'` or
/// `"`): the assignment's name is `@` and the name in lower case, its
/// value a literal kept as written when its type does not depend on the
/// connection (numbers, `NULL`), else computed (read back once run). See
/// [`super::user_vars`]. `None` for a name or value Funnel does not track.
fn parse_user_assignment(t: &mut Lexer<'_>) -> Option<(String, Value)> {
    let name = t.user_var()?;
    if !(t.punct2(":=") || t.punct('=')) {
        return None;
    }
    let start = t.pos;
    skip_computed_value(t)?;
    let end = t.pos;
    let text = t.s[start..end].trim();
    let value = match user_vars::tracked_literal(text) {
        Some(literal) => Value::Literal(Some(literal)),
        None => Value::Computed,
    };
    Some((format!("@{name}"), value))
}

/// A tiny lexer for `SET` statements: skips whitespace and comments.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer { s, pos: 0 }
    }

    fn skip_space(&mut self) {
        loop {
            let rest = &self.s[self.pos..];
            // The server's blanks only: a non-ASCII space is part of a word to it.
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("/*") && !trimmed.starts_with("/*!") && !trimmed.starts_with("/*M!") {
                match trimmed.find("*/") {
                    Some(e) => self.pos += e + 2,
                    None => self.pos = self.s.len(),
                }
            } else if super::sql_lex::line_comment_at(trimmed.as_bytes(), 0) || trimmed.starts_with('#') {
                match trimmed.find('\n') {
                    Some(e) => self.pos += e + 1,
                    None => self.pos = self.s.len(),
                }
            } else {
                return;
            }
        }
    }

    fn rest(&mut self) -> &'a str {
        self.skip_space();
        &self.s[self.pos..]
    }

    fn at_end(&mut self) -> bool {
        self.rest().is_empty()
    }

    fn peek_char(&mut self) -> Option<char> {
        self.rest().chars().next()
    }

    fn word_len(rest: &str) -> usize {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len())
    }

    fn peek_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let n = Self::word_len(rest);
        n == kw.len() && rest[..n].eq_ignore_ascii_case(kw)
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if self.peek_keyword(kw) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn punct2(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.pos += p.len();
            true
        } else {
            false
        }
    }

    /// A name: a word or a backtick-quoted identifier, lower-cased.
    fn ident(&mut self) -> Option<String> {
        let rest = self.rest();
        if let Some(inner) = rest.strip_prefix('`') {
            let end = inner.find('`')?;
            self.pos += end + 2;
            return Some(inner[..end].to_ascii_lowercase());
        }
        let n = Self::word_len(rest);
        if n == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.pos += n;
        Some(rest[..n].to_ascii_lowercase())
    }

    /// `@name`, `` @`name` ``, `@'name'` or `@"name"`: the name as
    /// [`user_vars::user_var_at`] reads it (`None` when Funnel does not
    /// track it).
    fn user_var(&mut self) -> Option<String> {
        let rest = self.rest().strip_prefix('@')?;
        let (name, end) = user_vars::user_var_at(rest.as_bytes(), 0);
        let name = name.flatten()?;
        self.pos += 1 + end;
        Some(name)
    }

    /// A charset or collation name: a word or a quoted string.
    fn word_or_string(&mut self) -> Option<String> {
        let rest = self.rest();
        if rest.starts_with('\'') || rest.starts_with('"') {
            let lit = self.quoted()?;
            return Some(lit);
        }
        let n = Self::word_len(rest);
        if n == 0 {
            return None;
        }
        self.pos += n;
        Some(rest[..n].to_string())
    }

    /// One literal value: a number, a quoted string or a bare word (ON,
    /// OFF, DEFAULT, an enum value). Anything else is an expression.
    fn literal(&mut self) -> Option<String> {
        let rest = self.rest();
        let value = if rest.starts_with('\'') || rest.starts_with('"') {
            self.quoted()?
        } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
            let n = rest
                .char_indices()
                .skip(1)
                .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == 'E'))
                .map_or(rest.len(), |(i, _)| i);
            let num = &rest[..n];
            num.parse::<f64>().ok()?;
            self.pos += n;
            num.to_string()
        } else {
            let n = Self::word_len(rest);
            if n == 0 {
                return None;
            }
            self.pos += n;
            rest[..n].to_string()
        };
        // The value must end the assignment: no operators or calls after it.
        match self.peek_char() {
            None | Some(',') | Some(';') => Some(value),
            _ => None,
        }
    }

    /// A quoted string, returned with its quotes as written.
    fn quoted(&mut self) -> Option<String> {
        let rest = self.rest();
        let q = rest.chars().next()?;
        let bytes = rest.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b if b == q as u8 => {
                    if bytes.get(i + 1) == Some(&(q as u8)) {
                        i += 2;
                    } else {
                        self.pos += i + 1;
                        return Some(rest[..=i].to_string());
                    }
                }
                _ => i += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sql: &str) -> Vec<(String, Option<String>)> {
        match parse_set(sql.as_bytes()) {
            Some(SetEffect::Session(a)) => a.into_iter().map(|a| (a.name, a.value)).collect(),
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    /// Only a plain quoted literal of the session's own without `ORACLE`
    /// says it is not in that mode (for `SQL%ROWCOUNT`).
    #[test]
    fn variables_tell_a_sql_mode_surely_not_oracle() {
        let with = |sql: &str| {
            let mut vars = SessionVars::default();
            let Some(SetEffect::Session(a)) = parse_set(sql.as_bytes()) else {
                panic!("{sql}");
            };
            vars.apply(&a, Utf8Alias::ByOldMode);
            vars.may_be_oracle()
        };
        assert!(SessionVars::default().may_be_oracle(), "the global value decides");
        for sql in [
            "SET sql_mode = ''",
            "SET sql_mode = 'ANSI'",
            "SET @@sql_mode := \"MSSQL\"",
            "SET time_zone = '+02:00', sql_mode = 'IGNORE_SPACE,PIPES_AS_CONCAT'",
        ] {
            assert!(!with(sql), "{sql}");
        }
        for sql in [
            "SET sql_mode = 'ORACLE'",
            "SET SESSION sql_mode = 'ansi,oracle'",
            "SET sql_mode = DEFAULT",
            "SET sql_mode = 'OR\\ACLE'",
            "SET sql_mode = 4294967296",
        ] {
            assert!(with(sql), "{sql}");
        }
    }

    #[test]
    fn variables_parse_plain_assignments() {
        assert_eq!(
            session("SET time_zone = '+05:00'"),
            vec![("time_zone".into(), s("'+05:00'"))]
        );
        assert_eq!(
            session("set session sql_mode='', @@SESSION.wait_timeout=10, @@autocommit := 1;"),
            vec![
                ("sql_mode".into(), s("''")),
                ("wait_timeout".into(), s("10")),
                ("autocommit".into(), s("1"))
            ]
        );
        assert_eq!(
            session("SET LOCAL `max_join_size` = DEFAULT"),
            vec![("max_join_size".into(), None)]
        );
        assert_eq!(
            session("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"),
            vec![("names".into(), s("utf8mb4 COLLATE utf8mb4_unicode_ci"))]
        );
        assert_eq!(
            session("SET CHARACTER SET latin1"),
            vec![("character set".into(), s("latin1"))]
        );
        assert_eq!(
            session("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY"),
            vec![
                ("tx_isolation".into(), s("'READ-COMMITTED'")),
                ("tx_read_only".into(), s("1"))
            ]
        );
        assert_eq!(
            parse_set(b"SET GLOBAL max_connections = 500"),
            Some(SetEffect::Global)
        );
        // A scope keyword holds until the next one.
        assert_eq!(
            parse_set(b"SET GLOBAL max_error_count = 64, div_precision_increment = 8"),
            Some(SetEffect::Global)
        );
        assert_eq!(
            session("SET GLOBAL max_error_count = 64, SESSION div_precision_increment = 8, wait_timeout = 9"),
            vec![
                ("div_precision_increment".into(), s("8")),
                ("wait_timeout".into(), s("9"))
            ]
        );
        assert_eq!(
            session("SET GLOBAL max_error_count = 64, @@session.sql_mode = 'ANSI_QUOTES', @@local.x = 1"),
            vec![("sql_mode".into(), s("'ANSI_QUOTES'")), ("x".into(), s("1"))]
        );
        assert_eq!(
            session("SET time_zone = '+01:00', @@global.max_error_count = 64, wait_timeout = 9"),
            vec![
                ("time_zone".into(), s("'+01:00'")),
                ("wait_timeout".into(), s("9"))
            ]
        );
    }

    #[test]
    fn variables_refuse_what_cannot_be_replayed() {
        for sql in [
            "SET time_zone = @tz",
            "SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SET STATEMENT max_statement_time=1 FOR SELECT 1",
            "SET ROLE r",
            "SET PASSWORD = PASSWORD('x')",
            "SET PASSWORD = '*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29'",
            "SET time_zone = '+00:00', PASSWORD = ''",
            "SET a = 1 + 1",
            "SET a = 'unterminated",
            "SET wait_timeout = 10 garbage",
            "SET @@foo.bar = 1",
        ] {
            assert!(
                !matches!(parse_set(sql.as_bytes()), Some(SetEffect::Session(_))),
                "{sql} must not be replayed"
            );
        }
    }

    fn vars(sqls: &[&str]) -> SessionVars {
        let mut v = SessionVars::default();
        for sql in sqls {
            if let Some(SetEffect::Session(a)) = parse_set(sql.as_bytes()) {
                v.apply(&a, Utf8Alias::ByOldMode);
            }
        }
        v
    }

    #[test]
    fn variables_forget_charset_group_keeps_the_rest() {
        let mut conn = vars(&[
            "SET NAMES latin1, character_set_results = utf8mb4, sql_mode = 'ANSI'",
            "SET collation_database = latin1_bin",
        ]);
        conn.forget_charset_group();
        assert_eq!(
            conn,
            vars(&["SET sql_mode = 'ANSI'", "SET collation_database = latin1_bin"])
        );
        let mut conn = vars(&[
            "SET CHARACTER SET latin1",
            "SET collation_connection = latin1_bin",
        ]);
        conn.forget_charset_group();
        assert_eq!(conn, SessionVars::default());
    }

    #[test]
    fn variables_reprepare_takes_only_parse_variables() {
        let conn = vars(&["SET sql_log_bin = 0, sql_mode = 'ANSI'", "SET NAMES latin1"]);
        let prepared = vars(&["SET sql_mode = ''"]);
        let target = conn.with_parse_vars_of(&prepared);
        assert_eq!(target, vars(&["SET sql_log_bin = 0, sql_mode = ''"]));
        // Nothing to change when the parse variables already match.
        assert_eq!(target.with_parse_vars_of(&prepared), target);
    }

    #[test]
    fn variables_aliases_are_tracked_under_one_name() {
        assert_eq!(
            session("SET SESSION tmp_memory_table_size = 2097152, @@log_slow_query_time = 5"),
            vec![
                ("tmp_table_size".into(), s("2097152")),
                ("long_query_time".into(), s("5"))
            ]
        );
        let v = vars(&["SET tmp_table_size = 1", "SET tmp_memory_table_size = 2"]);
        assert_eq!(v.0.get("tmp_table_size").map(String::as_str), Some("2"));
        assert_eq!(v.0.len(), 1);
    }

    #[test]
    fn variables_utf8_alias_follows_old_mode_only_where_the_server_says() {
        for (version, rule) in [
            ("5.5.5-10.11.19-MariaDB-0+deb12u1-funnel", Utf8Alias::ByOldMode),
            ("10.6.1-MariaDB", Utf8Alias::ByOldMode),
            ("11.4.2-MariaDB-log", Utf8Alias::ByOldMode),
            ("5.5.5-10.5.27-MariaDB", Utf8Alias::Fixed),
            ("10.3.39-MariaDB-0+deb10u1", Utf8Alias::Fixed),
            ("8.0.36", Utf8Alias::Fixed),
            ("5.7.44-log", Utf8Alias::Fixed),
        ] {
            assert_eq!(Utf8Alias::of_server(version.as_bytes()), rule, "{version}");
        }
        // Where it does not, the alias is kept as written, whatever old_mode.
        let mut v = SessionVars::default();
        for sql in ["SET old_mode = ''", "SET NAMES utf8"] {
            let Some(SetEffect::Session(a)) = parse_set(sql.as_bytes()) else {
                panic!("{sql}");
            };
            v.apply(&a, Utf8Alias::Fixed);
        }
        assert_eq!(v.0.get("names").map(String::as_str), Some("utf8"));
    }

    #[test]
    fn variables_utf8_alias_is_kept_as_the_charset_old_mode_made_it() {
        let names = |v: &SessionVars, k: &str| v.0.get(k).cloned();
        // Under the server's default old_mode: kept as written.
        let default = vars(&["SET NAMES utf8"]);
        assert_eq!(names(&default, "names").as_deref(), Some("utf8"));
        // Under a session's own old_mode: what the server made of it then,
        // whatever old_mode comes later (seed 301261).
        let mb4 = vars(&[
            "SET old_mode = ''",
            "SET NAMES 'UTF8' COLLATE utf8_bin",
            "SET old_mode = DEFAULT",
        ]);
        assert_eq!(
            names(&mb4, "names").as_deref(),
            Some("'utf8mb4' COLLATE utf8mb4_bin")
        );
        let mb3 = vars(&[
            "SET old_mode = 'no_progress_info,Utf8_Is_Utf8mb3'",
            "SET NAMES utf8",
        ]);
        assert_eq!(names(&mb3, "names").as_deref(), Some("utf8mb3"));
        let numeric = vars(&[
            "SET old_mode = 2",
            "SET character_set_client = utf8, collation_database = utf8_unicode_ci",
        ]);
        assert_eq!(
            names(&numeric, "character_set_client").as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            names(&numeric, "collation_database").as_deref(),
            Some("utf8mb4_unicode_ci")
        );
        let numeric = vars(&["SET old_mode = 10", "SET CHARACTER SET utf8"]);
        assert_eq!(names(&numeric, "character set").as_deref(), Some("utf8mb3"));
        // In one statement, the old_mode it started with counts (the
        // server resolves names before it assigns); in a later statement
        // of the same query, it is not followed: pinned.
        let one = vars(&[
            "SET old_mode = '', NAMES utf8",
            "SET old_mode = DEFAULT, NAMES utf8",
        ]);
        assert_eq!(names(&one, "names").as_deref(), Some("utf8mb4"));
        let one = vars(&["SET old_mode = '', NAMES utf8"]);
        assert_eq!(names(&one, "names").as_deref(), Some("utf8"));
        assert_eq!(parse_set(b"SET old_mode = ''; SET NAMES utf8"), None);
        assert_eq!(
            parse_set(b"SET old_mode = ''; SET collation_database = 'UTF8_bin'"),
            None
        );
        assert!(parse_set(b"SET old_mode = ''; SET NAMES utf8mb4").is_some());
        assert!(parse_set(b"SET NAMES utf8; SET old_mode = ''").is_some());
        // Names that only look alike stay.
        let other = vars(&["SET old_mode = ''", "SET NAMES utf8mb3 COLLATE utf8mb3_bin"]);
        assert_eq!(
            names(&other, "names").as_deref(),
            Some("utf8mb3 COLLATE utf8mb3_bin")
        );
        let other = vars(&["SET old_mode = ''", "SET collation_connection = utf16_bin"]);
        assert_eq!(
            names(&other, "collation_connection").as_deref(),
            Some("utf16_bin")
        );

        // An alias set under the default is read under the default again,
        // on a connection another session left with its own old_mode: that
        // goes back first, in a statement of its own.
        let conn = vars(&["SET old_mode = ''"]);
        let replay = |target: &SessionVars, conn: &SessionVars| {
            let reset = target.vars_to_reset_first(conn);
            let mut conn = conn.clone();
            conn.forget(&reset);
            (reset, target.diff_sql(&conn, None).unwrap())
        };
        assert_eq!(
            replay(&default, &conn),
            (vec![OLD_MODE], Some("SET NAMES utf8".to_string()))
        );
        // ... and the session's own old_mode, set after it, follows.
        let later = vars(&["SET NAMES utf8", "SET old_mode = ''"]);
        assert_eq!(names(&later, "names").as_deref(), Some("utf8"));
        assert_eq!(
            replay(&later, &conn),
            (
                vec![OLD_MODE],
                Some("SET NAMES utf8, SESSION old_mode = ''".to_string())
            )
        );
        assert_eq!(
            replay(&later, &SessionVars::default()),
            (vec![], Some("SET NAMES utf8, SESSION old_mode = ''".to_string()))
        );
        let db = vars(&["SET collation_database = utf8_bin"]);
        assert_eq!(
            replay(&db, &conn),
            (
                vec![OLD_MODE],
                Some("SET SESSION collation_database = utf8_bin".to_string())
            )
        );
        // Rebuilt with the charset group (another client's
        // character_set_results differs), an alias equal to the
        // connection's is replayed too: under the default again.
        let results = vars(&["SET NAMES utf8, character_set_results = latin1"]);
        let conn2 = vars(&["SET NAMES utf8", "SET old_mode = ''"]);
        assert_eq!(results.vars_to_reset_first(&conn2), [OLD_MODE]);
        // SET CHARACTER SET reads collation_database as its statement
        // starts: another client's goes back to the schema's first.
        let cs = vars(&["SET CHARACTER SET latin1"]);
        let theirs = vars(&["SET collation_database = latin1_bin"]);
        assert_eq!(cs.vars_to_reset_first(&theirs), ["collation_database"]);
        assert!(vars(&["SET NAMES latin1"])
            .vars_to_reset_first(&theirs)
            .is_empty());
        let own = vars(&["SET collation_database = utf8mb4_bin", "SET CHARACTER SET latin1"]);
        assert!(own.vars_to_reset_first(&theirs).is_empty(), "its own is copied");
        // Nothing to reset when the alias is not replayed, or resolved.
        let both = vars(&["SET NAMES utf8", "SET old_mode = 'NO_PROGRESS_INFO'"]);
        assert_eq!(
            replay(&later, &both),
            (vec![], Some("SET SESSION old_mode = ''".to_string()))
        );
        assert_eq!(
            replay(&mb4, &conn),
            (
                vec![],
                Some("SET SESSION old_mode = DEFAULT, NAMES 'utf8mb4' COLLATE utf8mb4_bin".to_string())
            )
        );
    }

    #[test]
    fn variables_flag_lists_merge_like_the_server() {
        let v = vars(&[
            "SET optimizer_switch = 'index_merge=off'",
            "SET SESSION optimizer_switch = 'mrr=on,Index_Merge=on'",
            "SET optimizer_switch = \"mrr=off\"",
        ]);
        assert_eq!(
            v.0.get("optimizer_switch").map(String::as_str),
            Some("'index_merge=on,mrr=off'")
        );
        // On top of the global value: DEFAULT first.
        assert_eq!(
            v.diff_sql(&SessionVars::default(), None).unwrap().as_deref(),
            Some(
                "SET SESSION optimizer_switch = DEFAULT, SESSION optimizer_switch = 'index_merge=on,mrr=off'"
            )
        );
        // From the compiled-in defaults: the list stands alone.
        let v = vars(&[
            "SET optimizer_switch = 'mrr=on'",
            "SET optimizer_switch = 'default,derived_merge=off'",
        ]);
        assert_eq!(
            v.0.get("optimizer_switch").map(String::as_str),
            Some("'default,derived_merge=off'")
        );
        assert_eq!(
            v.diff_sql(&SessionVars::default(), None).unwrap().as_deref(),
            Some("SET SESSION optimizer_switch = 'default,derived_merge=off'")
        );
        let v = vars(&[
            "SET optimizer_switch = 'mrr=on'",
            "SET optimizer_switch = DEFAULT",
        ]);
        assert!(v.is_empty());
        assert_eq!(merge_flags(None, "'a=on'").as_deref(), Some("'a=on'"));
        let flags = |sql: &str| {
            let mut v = SessionVars::default();
            if let Some(SetEffect::Session(a)) = parse_set(sql.as_bytes()) {
                v.apply(&a, Utf8Alias::ByOldMode);
            }
            v
        };
        let (mine, theirs) = (
            flags("SET optimizer_switch = 'mrr=on'"),
            flags("SET optimizer_switch = 'index_merge=off,mrr=off'"),
        );
        assert_eq!(mine.vars_to_reset_first(&theirs), ["optimizer_switch"]);
        assert!(
            mine.vars_to_reset_first(&SessionVars::default()).is_empty(),
            "global already"
        );
        assert!(mine.vars_to_reset_first(&mine).is_empty());
        assert!(
            flags("SET optimizer_switch = 'default,mrr=on'")
                .vars_to_reset_first(&theirs)
                .is_empty(),
            "a list from the compiled defaults stands alone"
        );
        assert!(
            SessionVars::default().vars_to_reset_first(&theirs).is_empty(),
            "DEFAULT alone"
        );
        let mut forgotten = theirs.clone();
        forgotten.forget(&["optimizer_switch"]);
        assert_eq!(forgotten, SessionVars::default());
        assert_eq!(
            merge_flags(Some("'default,a=on'"), "'b=on'").as_deref(),
            Some("'default,a=on,b=on'")
        );
        assert_eq!(merge_flags(None, "'a=\\'on'"), None, "not a plain list");
    }

    #[test]
    fn variables_diff_sets_only_differences_and_resets_the_rest() {
        let hs = Some(("utf8mb4", "utf8mb4_general_ci"));
        let a = vars(&["SET time_zone='+05:00', sql_mode=''"]);
        let conn = vars(&["SET time_zone='+05:00', wait_timeout=10"]);
        assert_eq!(
            a.diff_sql(&conn, hs).unwrap().as_deref(),
            Some("SET SESSION wait_timeout = DEFAULT, SESSION sql_mode = ''")
        );
        assert_eq!(a.diff_sql(&a.clone(), hs).unwrap(), None);
        // Back to a fresh session's charset.
        let named = vars(&["SET NAMES latin1"]);
        assert_eq!(
            SessionVars::default().diff_sql(&named, hs).unwrap().as_deref(),
            Some("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci")
        );
        assert!(SessionVars::default().diff_sql(&named, None).is_err());
        // NAMES then an individual charset variable: both, in that order.
        let both = vars(&["SET NAMES utf8mb4", "SET character_set_results = latin1"]);
        assert_eq!(
            both.diff_sql(&SessionVars::default(), hs).unwrap().as_deref(),
            Some("SET NAMES utf8mb4, character_set_results = latin1")
        );
        // A later NAMES overrides the individual one.
        let later = vars(&["SET character_set_results = latin1", "SET NAMES utf8mb4"]);
        assert_eq!(later, vars(&["SET NAMES utf8mb4"]));
    }

    #[test]
    fn variables_computed_values_name_what_to_read_back() {
        let names = |sql: &str| match parse_set(sql.as_bytes()) {
            Some(SetEffect::Computed { read_back, .. }) => Some(read_back),
            _ => None,
        };
        assert_eq!(
            names("SET sql_mode=(SELECT REPLACE(@@sql_mode,'ONLY_FULL_GROUP_BY',''))"),
            Some(vec!["sql_mode".to_string()])
        );
        assert_eq!(
            names("SET SESSION sql_mode = CONCAT(@@session.sql_mode, ',STRICT_ALL_TABLES'), @@local.wait_timeout = 60 * 2;"),
            Some(vec!["sql_mode".to_string(), "wait_timeout".to_string()])
        );
        assert_eq!(
            names("SET tx_isolation = IF(@@global.read_only, 'READ-COMMITTED', 'REPEATABLE-READ')"),
            Some(vec!["tx_isolation".to_string()])
        );
        // A global one is not session state: dropped, as a literal one is.
        assert_eq!(
            names("SET sql_mode = CONCAT(@@sql_mode, ','), GLOBAL wait_timeout = 1 + 1"),
            Some(vec!["sql_mode".to_string()])
        );
        // Reading a user variable: the connection has the client's.
        assert_eq!(names("SET time_zone = @tz"), Some(vec!["time_zone".to_string()]));
        for sql in [
            "SET GLOBAL sql_mode = CONCAT(@@sql_mode, ',X')",
            "SET time_zone = @tz := '+00:00'",
            "SET sql_mode = (SELECT mode FROM settings LIMIT 1)",
            "SET sql_mode = my_function()",
            "SET sql_mode = UUID()",
            "SET sql_mode = CONCAT(@@sql_mode",
            "SET sql_mode = )(",
            "SET sql_mode = ",
            "SET sql_mode = ?",
            "SET sql_mode = `col`",
            "SET NAMES utf8mb4",
            "SET TRANSACTION READ ONLY",
            "SET sql_mode = CONCAT('a', 'b'); SELECT 1",
        ] {
            assert_eq!(names(sql), None, "{sql}");
        }
    }

    #[test]
    fn variables_user_variables_literal_or_read_back() {
        let parsed = |sql: &str| match parse_set(sql.as_bytes()) {
            Some(SetEffect::Session(a)) => Some((
                a.into_iter().map(|a| (a.name, a.value)).collect::<Vec<_>>(),
                vec![],
            )),
            Some(SetEffect::Computed {
                assignments,
                read_back,
            }) => Some((
                assignments.into_iter().map(|a| (a.name, a.value)).collect(),
                read_back,
            )),
            _ => None,
        };
        let lit = |n: &str, v: &str| (n.to_string(), Some(v.to_string()));
        assert_eq!(parsed("SET @x = 5"), Some((vec![lit("@x", "5")], vec![])));
        assert_eq!(
            parsed("set @X := -1.50, @`a b`=null, @'Q' = 1e3, @\"w\" = TRUE;"),
            Some((
                vec![lit("@x", "-1.50"), lit("@q", "1e3"), lit("@w", "TRUE")],
                // NULL keeps the variable's type before: read back.
                vec!["@a b".to_string()]
            ))
        );
        assert_eq!(
            parsed("SET NAMES latin1, @s = 'abc', time_zone = '+01:00', @n = 18446744073709551615, @c = CONCAT(@s, @@sql_mode)"),
            Some((
                vec![lit("names", "latin1"), lit("time_zone", "'+01:00'"), lit("@n", "18446744073709551615")],
                vec!["@s".to_string(), "@c".to_string()]
            ))
        );
        assert_eq!(
            parsed("SET @a.b = 0x41"),
            Some((vec![], vec!["@a.b".to_string()]))
        );
        for sql in [
            "SET @x = (SELECT c FROM t)",
            "SET @x = @y := 1",
            "SET @x = ?",
            "SET @x = DEFAULT",
            "SET @x = UUID()",
            "SET @x = RAND()",
            "SET SESSION @x = 1",
            "SET @'a''b' = 1",
            "SET @é = 1",
            "SET @'é' = 1",
            "SET @'a ' = 1",
            "SET @ = 1",
            "SET @x = 1 garbage",
        ] {
            assert_eq!(parsed(sql), None, "{sql}");
        }
    }

    #[test]
    fn variables_values_read_back_become_literals() {
        assert_eq!(literal_from_server("28800", 0x08).as_deref(), Some("28800"));
        assert_eq!(
            literal_from_server("-1.500000", 0xf6).as_deref(),
            Some("-1.500000")
        );
        assert_eq!(literal_from_server("1; DROP", 0x08), None);
        assert_eq!(literal_from_server("", 0x08), None);
        assert_eq!(
            literal_from_server("STRICT_TRANS_TABLES,ANSI_QUOTES", 0xfd).as_deref(),
            Some("'STRICT_TRANS_TABLES,ANSI_QUOTES'")
        );
        assert_eq!(literal_from_server("", 0xfd).as_deref(), Some("''"));
        assert_eq!(literal_from_server("it's", 0xfd).as_deref(), Some("'it''s'"));
        assert_eq!(literal_from_server("a\\b", 0xfd), None);
        assert_eq!(literal_from_server("a\u{fffd}b", 0xfd), None);
        assert_eq!(literal_from_server("a\nb", 0xfd), None);
    }
}
