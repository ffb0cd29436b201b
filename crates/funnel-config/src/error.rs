//! Errors from reading, parsing and validating a config file.
//!
//! All of them are the operator's to fix, so their `Display` says where and what, in words
//! `funnel check --config FILE` can print as they are.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a config that parsed: where (`backends[1].address`) and what.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// Where the problem is, as a path into the YAML (`users[0].password_hash`, `pool`).
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML, or does not have the expected shape (unknown key, wrong type,
    /// missing required key).
    #[error("{}", parse_display(*line, *column, message))]
    Parse {
        /// One-based line, when the YAML parser can point at one (not for an empty file).
        line: Option<usize>,
        /// One-based column, when the YAML parser can point at one.
        column: Option<usize>,
        /// What is wrong, starting with the key path when known (`pool: unknown field ...`).
        message: String,
    },
    /// The config parsed but breaks one or more rules; every problem found is listed.
    #[error("{}", invalid_display(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The validation problems, empty for I/O and parse errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

fn parse_display(line: Option<usize>, column: Option<usize>, message: &str) -> String {
    match (line, column) {
        (Some(line), Some(column)) => {
            format!("config error at line {line}, column {column}: {message}")
        }
        _ => format!("config error: {message}"),
    }
}

fn invalid_display(problems: &[Problem]) -> String {
    let count = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let mut text = format!("invalid configuration ({count}):");
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}
