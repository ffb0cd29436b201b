//! Which `(` in a statement may call stored code. A statement that calls
//! only the server's own functions (`SELECT NOW()`, `SELECT 1 IN (1, 2)`)
//! reads no table's data through them and changes no session state, so it
//! needs no causal wait and leaves its connection clean even when it fails.
//!
//! The server resolves an unqualified name written right before its `(`
//! as its built-in function before any stored function of that name (one
//! can exist: ``CREATE FUNCTION `now`()`` only adds a note, and `db.now()`
//! calls it). With a blank or comment before the `(`, or a quoted name,
//! some built-ins are looked up as stored functions instead (`now ()`,
//! `` `now`() ``; not `concat ()`, but the scan does not tell them apart),
//! so only the plain adjacent spelling counts as a built-in here.

/// Built-in functions that read no table, run no stored code and leave no
/// session state behind, upper-cased and sorted (for a binary search).
/// Left out on purpose: `LAST_INSERT_ID` (with an argument it sets the
/// id), the named-lock, sequence and replication-wait functions,
/// `CONVERT_TZ` (reads the time-zone tables) and `LOAD_FILE`.
///
/// Only names every server Funnel may front has as built-ins (MariaDB
/// 10.5 and later, MySQL 5.7 and later): where a server has no built-in of
/// the name, `name(` calls the schema's stored function of that name, as
/// `SELECT json_schema_valid('{}', '1')` does on MariaDB 10.11 (a built-in
/// from 11.1). So not `NVL`, `NVL2`, `CHR`, `SYS_GUID` (MariaDB 10.6.1),
/// `CRC32C` (10.8), `RANDOM_BYTES` (10.10), `JSON_VALUE` and MariaDB's
/// other `JSON_` additions, nor what MySQL 5.7 lacks (`REGEXP_INSTR`,
/// `REGEXP_REPLACE`, `REGEXP_SUBSTR`, `CURRENT_ROLE`, the `JSON_MERGE`s).
const BUILTINS: &[&[u8]] = &[
    b"ABS",
    b"ACOS",
    b"ADDDATE",
    b"ADDTIME",
    b"AES_DECRYPT",
    b"AES_ENCRYPT",
    b"ASCII",
    b"ASIN",
    b"ATAN",
    b"ATAN2",
    b"AVG",
    b"BENCHMARK",
    b"BIN",
    b"BIT_AND",
    b"BIT_COUNT",
    b"BIT_LENGTH",
    b"BIT_OR",
    b"BIT_XOR",
    b"CAST",
    b"CEIL",
    b"CEILING",
    b"CHAR",
    b"CHARACTER_LENGTH",
    b"CHARSET",
    b"CHAR_LENGTH",
    b"COALESCE",
    b"COERCIBILITY",
    b"COLLATION",
    b"COMPRESS",
    b"CONCAT",
    b"CONCAT_WS",
    b"CONNECTION_ID",
    b"CONV",
    b"CONVERT",
    b"COS",
    b"COT",
    b"COUNT",
    b"CRC32",
    b"CURDATE",
    b"CURRENT_DATE",
    b"CURRENT_TIME",
    b"CURRENT_TIMESTAMP",
    b"CURRENT_USER",
    b"CURTIME",
    b"DATABASE",
    b"DATE",
    b"DATEDIFF",
    b"DATE_ADD",
    b"DATE_FORMAT",
    b"DATE_SUB",
    b"DAY",
    b"DAYNAME",
    b"DAYOFMONTH",
    b"DAYOFWEEK",
    b"DAYOFYEAR",
    b"DEGREES",
    b"ELT",
    b"EXP",
    b"EXPORT_SET",
    b"EXTRACT",
    b"FIELD",
    b"FIND_IN_SET",
    b"FLOOR",
    b"FORMAT",
    b"FOUND_ROWS",
    b"FROM_BASE64",
    b"FROM_DAYS",
    b"FROM_UNIXTIME",
    b"GREATEST",
    b"GROUP_CONCAT",
    b"HEX",
    b"HOUR",
    b"IF",
    b"IFNULL",
    b"INET6_ATON",
    b"INET6_NTOA",
    b"INET_ATON",
    b"INET_NTOA",
    b"INSERT",
    b"INSTR",
    b"INTERVAL",
    b"ISNULL",
    b"IS_IPV4",
    b"IS_IPV6",
    b"JSON_ARRAY",
    b"JSON_ARRAY_APPEND",
    b"JSON_ARRAY_INSERT",
    b"JSON_CONTAINS",
    b"JSON_CONTAINS_PATH",
    b"JSON_DEPTH",
    b"JSON_EXTRACT",
    b"JSON_INSERT",
    b"JSON_KEYS",
    b"JSON_LENGTH",
    b"JSON_OBJECT",
    b"JSON_QUOTE",
    b"JSON_REMOVE",
    b"JSON_REPLACE",
    b"JSON_SEARCH",
    b"JSON_SET",
    b"JSON_TYPE",
    b"JSON_UNQUOTE",
    b"JSON_VALID",
    b"LAST_DAY",
    b"LCASE",
    b"LEAST",
    b"LEFT",
    b"LENGTH",
    b"LN",
    b"LOCALTIME",
    b"LOCALTIMESTAMP",
    b"LOCATE",
    b"LOG",
    b"LOG10",
    b"LOG2",
    b"LOWER",
    b"LPAD",
    b"LTRIM",
    b"MAKEDATE",
    b"MAKETIME",
    b"MAKE_SET",
    b"MAX",
    b"MD5",
    b"MICROSECOND",
    b"MID",
    b"MIN",
    b"MINUTE",
    b"MOD",
    b"MONTH",
    b"MONTHNAME",
    b"NOW",
    b"NULLIF",
    b"OCT",
    b"OCTET_LENGTH",
    b"ORD",
    b"PERIOD_ADD",
    b"PERIOD_DIFF",
    b"PI",
    b"POSITION",
    b"POW",
    b"POWER",
    b"QUARTER",
    b"QUOTE",
    b"RADIANS",
    b"RAND",
    b"REPEAT",
    b"REPLACE",
    b"REVERSE",
    b"RIGHT",
    b"ROUND",
    b"ROW",
    b"ROW_COUNT",
    b"RPAD",
    b"RTRIM",
    b"SCHEMA",
    b"SECOND",
    b"SEC_TO_TIME",
    b"SESSION_USER",
    b"SHA",
    b"SHA1",
    b"SHA2",
    b"SIGN",
    b"SIN",
    b"SLEEP",
    b"SOUNDEX",
    b"SPACE",
    b"SQRT",
    b"STD",
    b"STDDEV",
    b"STDDEV_POP",
    b"STDDEV_SAMP",
    b"STRCMP",
    b"STR_TO_DATE",
    b"SUBDATE",
    b"SUBSTR",
    b"SUBSTRING",
    b"SUBSTRING_INDEX",
    b"SUBTIME",
    b"SUM",
    b"SYSDATE",
    b"SYSTEM_USER",
    b"TAN",
    b"TIME",
    b"TIMEDIFF",
    b"TIMESTAMP",
    b"TIMESTAMPADD",
    b"TIMESTAMPDIFF",
    b"TIME_FORMAT",
    b"TIME_TO_SEC",
    b"TO_BASE64",
    b"TO_DAYS",
    b"TO_SECONDS",
    b"TRIM",
    b"TRUNCATE",
    b"UCASE",
    b"UNCOMPRESS",
    b"UNCOMPRESSED_LENGTH",
    b"UNHEX",
    b"UNIX_TIMESTAMP",
    b"UPPER",
    b"USER",
    b"UTC_DATE",
    b"UTC_TIME",
    b"UTC_TIMESTAMP",
    b"UUID",
    b"UUID_SHORT",
    b"VARIANCE",
    b"VAR_POP",
    b"VAR_SAMP",
    b"VERSION",
    b"WEEK",
    b"WEEKDAY",
    b"WEEKOFYEAR",
    b"YEAR",
    b"YEARWEEK",
];

/// Reserved words an expression's `(` may follow (`1 IN (1, 2)`, `NOT
/// (a)`, `EXISTS (SELECT 1)`): no function can be called by one of these
/// names unquoted, blanks or not, so the `(` opens no call.
const RESERVED_BEFORE_PARENS: &[&[u8]] = &[
    b"ALL",
    b"AND",
    b"AS",
    b"BETWEEN",
    b"BINARY",
    b"BY",
    b"CASE",
    b"DISTINCT",
    b"DIV",
    b"ELSE",
    b"EXISTS",
    b"FROM",
    b"HAVING",
    b"IN",
    b"IS",
    b"LIKE",
    b"NOT",
    b"ON",
    b"OR",
    b"REGEXP",
    b"RLIKE",
    b"SELECT",
    b"THEN",
    b"UNION",
    b"USING",
    b"WHEN",
    b"WHERE",
    b"WITH",
    b"XOR",
];

/// The longest name in either list, so longer words are never looked up.
const LONGEST: usize = 24;

/// True when `name` followed by `(` opens no call of stored code: a
/// reserved word (whatever follows), or, `adjacent` to its `(`, one of
/// [`BUILTINS`]. `name` is the word as written (any case).
pub fn opens_no_stored_call(name: &[u8], adjacent: bool) -> bool {
    if name.len() > LONGEST {
        return false;
    }
    let mut buf = [0u8; LONGEST];
    let upper = &mut buf[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let upper: &[u8] = upper;
    RESERVED_BEFORE_PARENS.binary_search(&upper).is_ok()
        || (adjacent && BUILTINS.binary_search(&upper).is_ok())
}

/// A byte that may continue an unquoted name: a word that starts right
/// after one is part of a longer name (`1now`, `$now`, `énow`) than the
/// word the scan sees.
pub fn continues_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// A byte the server skips between tokens: ASCII whitespace and the
/// vertical tab (`now\x0b()` calls a stored function `now`, as `now ()`
/// does), which `u8::is_ascii_whitespace` leaves out.
pub fn is_blank(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_calls_lists_are_sorted_upper_case_and_fit() {
        for list in [BUILTINS, RESERVED_BEFORE_PARENS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
            for name in list {
                assert!(name.len() <= LONGEST, "{}", String::from_utf8_lossy(name));
                assert_eq!(name.to_ascii_uppercase(), *name);
            }
        }
    }

    #[test]
    fn builtin_calls_need_the_adjacent_spelling() {
        assert!(opens_no_stored_call(b"now", true));
        assert!(opens_no_stored_call(b"Concat", true));
        assert!(
            !opens_no_stored_call(b"now", false),
            "`now ()` may be a stored function"
        );
        assert!(opens_no_stored_call(b"in", false));
        assert!(opens_no_stored_call(b"EXISTS", true));
        for name in [
            &b"f"[..],
            b"last_insert_id",
            b"get_lock",
            b"nextval",
            b"convert_tz",
            b"load_file",
            // Built-ins of some servers only.
            b"nvl",
            b"NVL2",
            b"chr",
            b"sys_guid",
            b"crc32c",
            b"random_bytes",
            b"json_value",
            b"json_detailed",
            b"regexp_replace",
            b"current_role",
        ] {
            assert!(
                !opens_no_stored_call(name, true),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert!(!opens_no_stored_call(&[b'A'; 40], true));
    }
}
