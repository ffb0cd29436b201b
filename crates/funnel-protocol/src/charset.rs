//! Character set (collation) ids used in the handshake.
//!
//! The handshake carries one byte, so collations with ids above 255 (many of
//! MariaDB's utf8mb4 collations) cannot be expressed there and must be set
//! with `SET NAMES ... COLLATE ...` after login; the engine does that.

/// `latin1_swedish_ci`.
pub const LATIN1_SWEDISH_CI: u16 = 8;
/// `utf8mb3_general_ci`.
pub const UTF8MB3_GENERAL_CI: u16 = 33;
/// `utf8mb4_general_ci`: MariaDB's default for utf8mb4 and Funnel's default.
pub const UTF8MB4_GENERAL_CI: u16 = 45;
/// `binary`.
pub const BINARY: u16 = 63;
/// `utf8mb4_unicode_ci`.
pub const UTF8MB4_UNICODE_CI: u16 = 224;

/// The character set name of a collation id Funnel knows, for `SET NAMES`.
pub fn charset_name(collation_id: u16) -> Option<&'static str> {
    Some(match collation_id {
        8 | 5 | 15 | 31 | 47 | 48 | 49 | 94 => "latin1",
        33 | 83 | 192..=215 | 223 => "utf8mb3",
        45 | 46 | 224..=247 | 255 => "utf8mb4",
        63 => "binary",
        11 | 65 => "ascii",
        _ => return None,
    })
}

/// The character set of `collation_id` when servers refuse it as a client
/// character set (MariaDB 10.11 answers such a login with ERR 1231: these
/// encodings cannot carry SQL text), else `None`. Ids the server does not
/// know are accepted there (it falls back to its default) and here.
pub fn refused_client_charset(collation_id: u16) -> Option<&'static str> {
    Some(match collation_id {
        17 => "filename",
        35 | 90 | 128..=151 | 159 => "ucs2",
        54 | 55 | 101..=124 => "utf16",
        56 | 62 => "utf16le",
        60 | 61 | 160..=183 => "utf32",
        _ => return None,
    })
}

/// The collation name of a collation id Funnel knows, for `SET NAMES ... COLLATE`.
pub fn collation_name(collation_id: u16) -> Option<&'static str> {
    Some(match collation_id {
        8 => "latin1_swedish_ci",
        47 => "latin1_bin",
        33 => "utf8mb3_general_ci",
        83 => "utf8mb3_bin",
        45 => "utf8mb4_general_ci",
        46 => "utf8mb4_bin",
        224 => "utf8mb4_unicode_ci",
        246 => "utf8mb4_unicode_520_ci",
        63 => "binary",
        11 => "ascii_general_ci",
        65 => "ascii_bin",
        _ => return None,
    })
}

/// The charset and collation names of `collation_id` for `SET NAMES cs
/// COLLATE coll`, when Funnel knows both.
pub fn names(collation_id: u16) -> Option<(&'static str, &'static str)> {
    charset_name(collation_id).zip(collation_name(collation_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_charset_names() {
        assert_eq!(charset_name(UTF8MB4_GENERAL_CI), Some("utf8mb4"));
        assert_eq!(collation_name(UTF8MB4_UNICODE_CI), Some("utf8mb4_unicode_ci"));
        assert_eq!(charset_name(9999), None);
        assert_eq!(names(8), Some(("latin1", "latin1_swedish_ci")));
        // Known as a charset, not as a collation: no `SET NAMES` for it.
        assert_eq!(names(5), None);
    }
}
