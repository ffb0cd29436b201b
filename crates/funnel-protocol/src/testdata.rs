//! Loads the golden packet files in `testdata/` (see its README for how they
//! were captured).

/// Which way a captured packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to server.
    C2s,
    /// Server to client.
    S2c,
}

/// Every packet of a golden file: direction, sequence id, payload.
pub fn golden(name: &str) -> Vec<(Dir, u8, Vec<u8>)> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let dir = match parts.next() {
                Some("c2s") => Dir::C2s,
                Some("s2c") => Dir::S2c,
                other => panic!("bad direction {other:?}"),
            };
            let seq = parts.next().unwrap().parse().unwrap();
            let hex = parts.next().unwrap_or("");
            (dir, seq, self::hex(hex))
        })
        .collect()
}

/// Decodes a hex string (test data only).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
