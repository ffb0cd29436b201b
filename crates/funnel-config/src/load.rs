//! Reading a config: file to text, text to structs, structs through validation.

use std::path::Path;

use crate::error::ConfigError;
use crate::model::Config;
use crate::validate;

/// What we say for a file with no settings, instead of serde_yaml's "missing field `listen`"
/// at whatever line follows the comments.
const EMPTY_FILE: &str = "the file has no settings; at least listen, users and backends are required";

impl Config {
    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml_str(&text)
    }

    /// Parses and validates config text.
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|err| parse_error(text, err))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule and reports every problem found; for configs built in code or edited
    /// after loading.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }
}

/// Moves serde_yaml's location out of its message into structured fields.
fn parse_error(text: &str, err: serde_yaml::Error) -> ConfigError {
    // Only comments, blank lines or an explicit null: there is nothing to point at. Parsed a
    // second time only on this error path.
    if let Ok(serde_yaml::Value::Null) = serde_yaml::from_str(text) {
        return ConfigError::Parse {
            line: None,
            column: None,
            message: EMPTY_FILE.to_owned(),
        };
    }
    let location = err.location();
    let mut message = err.to_string();
    if let Some(loc) = &location {
        // serde_yaml appends the location to its message; we keep it in fields instead.
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        message = message.replacen(&suffix, "", 1);
    }
    message = plain_types(&message);
    let mut line = location.as_ref().map(|l| l.line());
    let column = location.as_ref().map(|l| l.column());
    if let (Some(at), Some(column)) = (line, column) {
        if let Some((again, text)) = duplicate_key(text, &message, at, column) {
            line = Some(again);
            message = text;
        }
    }
    if let (Some(line), Some(column)) = (line, column) {
        if let Some(hint) = slip_hint(text, &message, line, column) {
            message.push_str(hint);
        }
    }
    ConfigError::Parse {
        line,
        column,
        message,
    }
}

/// A word on the YAML slips a new user makes most, which the parser
/// reports in its own terms.
fn slip_hint(text: &str, message: &str, line: usize, column: usize) -> Option<&'static str> {
    let at = text.lines().nth(line.checked_sub(1)?)?;
    if message.starts_with("unknown anchor") && at.contains('*') {
        return Some(
            " (in YAML an unquoted * starts an alias: quote a value that starts with *, \
             such as a password_hash: \"*2AFD...\")",
        );
    }
    let indent = &at[..at.len() - at.trim_start().len()];
    let tab_at = at.chars().nth(column.checked_sub(1)?) == Some('\t');
    if indent.contains('\t') || tab_at {
        return Some(" (a tab: YAML indents with spaces only)");
    }
    None
}

/// serde_yaml reports a key written twice in one mapping at the mapping's
/// first key (line 1, column 1 for a second top-level `pool:`). Finds the
/// two in the text, so the error points at the second one and names the
/// first one's line. `None` when they cannot be found (a flow mapping).
fn duplicate_key(text: &str, message: &str, line: usize, column: usize) -> Option<(usize, String)> {
    let (path, rest) = message.split_once("duplicate field `")?;
    let key = rest.strip_suffix('`')?;
    let indent = column.saturating_sub(1);
    let mut seen = Vec::new();
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let here = i + 1;
        // The mapping's first line may start with `- ` before its first key.
        let body = if here == line {
            l.get(indent..)?
        } else {
            let trimmed = l.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let spaces = l.len() - trimmed.len();
            if spaces < indent {
                break; // the mapping ended
            }
            if spaces > indent {
                continue; // a nested value
            }
            trimmed
        };
        let written = body
            .strip_prefix(key)
            .is_some_and(|after| after.trim_start().starts_with(':'));
        if written {
            seen.push(here);
            if let [first, second] = seen[..] {
                return Some((
                    second,
                    format!("{path}`{key}` is written twice (first at line {first}); give each key once"),
                ));
            }
        }
    }
    None
}

/// serde names the Rust type it expected (`expected struct LogConfig`,
/// `expected u32`); says what that is in the file instead.
fn plain_types(message: &str) -> String {
    let mut out = message.to_owned();
    if let Some(at) = out.find("expected struct ") {
        out.truncate(at);
        out.push_str("expected a section: the key alone on its line, then indented `key: value` lines");
    }
    for rust in ["expected u32", "expected u64", "expected usize", "expected u16"] {
        if let Some(rest) = out.strip_suffix(rust) {
            out = format!("{rest}expected a whole number, 0 or more");
        }
    }
    out
}
