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
    ConfigError::Parse {
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}
