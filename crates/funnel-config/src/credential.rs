//! What Funnel checks a client's password against: clear text, or the mysql_native_password
//! hash that `SELECT PASSWORD('x')` prints.
//!
//! mysql_native_password stores `SHA1(SHA1(password))`, written as `*` and 40 upper-case hex
//! digits (MySQL 4.1+ "new" password format). Knowing it is enough to check a scramble reply,
//! which is why the config accepts it: operators need not keep client passwords in clear text.

use std::fmt;

/// A user's configured secret, ready for the authentication code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The password in clear text (may be empty).
    ClearText(&'a str),
    /// `SHA1(SHA1(password))`, decoded from the `*<40 hex>` form.
    NativeHash([u8; 20]),
}

/// Never prints the secret itself, so a stray `{:?}` in a log line leaks nothing.
impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClearText(_) => f.write_str("ClearText(<redacted>)"),
            Credential::NativeHash(_) => f.write_str("NativeHash(<redacted>)"),
        }
    }
}

/// Picks the credential from a `password` / `password_hash` pair; `None` unless exactly one is
/// given and a hash is well formed (validation reports those cases).
pub(crate) fn credential<'a>(
    password: Option<&'a str>,
    password_hash: Option<&str>,
) -> Option<Credential<'a>> {
    match (password, password_hash) {
        (Some(clear), None) => Some(Credential::ClearText(clear)),
        (None, Some(hash)) => parse_native_hash(hash).ok().map(Credential::NativeHash),
        _ => None,
    }
}

/// Decodes `*<40 hex digits>` into the 20-byte double SHA-1, or says what is wrong with it.
pub(crate) fn parse_native_hash(text: &str) -> Result<[u8; 20], String> {
    if text.is_empty() {
        // PASSWORD('') is '' in MySQL; make the empty password explicit instead.
        return Err("is empty; for an empty password write password: \"\"".to_owned());
    }
    let bad_form =
        || "must be \"*\" followed by 40 hex digits, as SELECT PASSWORD('...') prints it".to_owned();
    let hex = text.strip_prefix('*').ok_or_else(bad_form)?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_form());
    }
    let mut out = [0u8; 20];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(out)
}

/// The value of one ASCII hex digit, already checked by the caller.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SHA1(SHA1('sbtest'))` in the form `SELECT PASSWORD('sbtest')` prints.
    const SBTEST_HASH: &str = "*2AFD99E79E4AA23DE141540F4179F64FFB3AC521";

    #[test]
    fn config_password_hash_decodes() {
        let bytes = parse_native_hash(SBTEST_HASH).unwrap();
        assert_eq!(bytes[0], 0x2A);
        assert_eq!(bytes[19], 0x21);
        assert_eq!(parse_native_hash(&SBTEST_HASH.to_lowercase()).unwrap(), bytes);
    }

    #[test]
    fn config_password_hash_rejects_bad_forms() {
        assert!(parse_native_hash("").is_err());
        assert!(parse_native_hash(&SBTEST_HASH[1..]).is_err());
        assert!(parse_native_hash(&SBTEST_HASH[..40]).is_err());
        assert!(parse_native_hash("*2AFD99E79E4AA23DE141540F4179F64FFB3AC52G").is_err());
    }

    #[test]
    fn config_credential_picks_exactly_one() {
        assert_eq!(credential(Some(""), None), Some(Credential::ClearText("")));
        assert!(matches!(
            credential(None, Some(SBTEST_HASH)),
            Some(Credential::NativeHash(_))
        ));
        assert_eq!(credential(Some("x"), Some(SBTEST_HASH)), None);
        assert_eq!(credential(None, None), None);
        assert_eq!(
            format!("{:?}", Credential::ClearText("secret")),
            "ClearText(<redacted>)"
        );
    }
}
