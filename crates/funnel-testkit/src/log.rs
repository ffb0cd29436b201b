//! Reading a server's error log for failure messages.

use std::{fs, path::Path};

/// How many lines of the error log a failure message shows.
const TAIL_LINES: usize = 40;

/// The error log's current length, to read only what a later start attempt adds.
pub(crate) fn len(path: &Path) -> u64 {
    path.metadata().map(|m| m.len()).unwrap_or(0)
}

/// The whole error log; empty if it does not exist yet.
pub(crate) fn read(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// What the log gained since byte `from`.
pub(crate) fn since(path: &Path, from: u64) -> String {
    let all = fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
    String::from_utf8_lossy(&all[from..]).into_owned()
}

/// The last lines of what the log gained since byte `from`.
pub(crate) fn tail(path: &Path, from: u64) -> String {
    let text = since(path, from);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        tail
    }
}
