//! `stateless_procedures`: the entries' syntax (`schema.name`, `*` for any
//! schema or any name) and which procedures an entry names.

/// The schema and name parts of an entry, or why it is malformed.
fn parts(entry: &str) -> Result<(&str, &str), &'static str> {
    let (schema, name) = entry
        .split_once('.')
        .ok_or("write schema.procedure (`*` for any schema or any procedure)")?;
    if schema.is_empty() || name.is_empty() || name.contains('.') {
        return Err("write schema.procedure (`*` for any schema or any procedure)");
    }
    let partial_star = |p: &str| p != "*" && p.contains('*');
    if partial_star(schema) || partial_star(name) {
        return Err("`*` stands for a whole part only (`shop.*`, not `shop.add_*`)");
    }
    Ok((schema, name))
}

/// Why `entry` is not a valid `stateless_procedures` entry, if it is not.
pub(crate) fn entry_problem(entry: &str) -> Option<&'static str> {
    parts(entry).err()
}

/// True when `entry` names the procedure `name` of `schema`. Schema names
/// compare exactly, as on a server with case-sensitive file names (a
/// declared `shop` never covers another schema `Shop`); procedure names
/// compare without ASCII case, as the server resolves them.
pub fn procedure_matches(entry: &str, schema: &[u8], name: &[u8]) -> bool {
    let Ok((s, n)) = parts(entry) else {
        return false;
    };
    (s == "*" || s.as_bytes() == schema) && (n == "*" || n.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procedures_match_by_schema_exactly_and_name_without_case() {
        assert!(procedure_matches("shop.add_item", b"shop", b"ADD_ITEM"));
        assert!(!procedure_matches("shop.add_item", b"Shop", b"add_item"));
        assert!(!procedure_matches("shop.add_item", b"shop", b"add_items"));
        assert!(procedure_matches("shop.*", b"shop", b"anything"));
        assert!(!procedure_matches("shop.*", b"other", b"anything"));
        assert!(procedure_matches("*.report", b"any", b"Report"));
        assert!(procedure_matches("*.*", b"any", b"thing"));
    }

    #[test]
    fn procedures_malformed_entries_say_why_and_match_nothing() {
        for bad in ["add_item", "shop.", ".p", "a.b.c", "shop.add_*", "s*.p", ""] {
            assert!(entry_problem(bad).is_some(), "{bad}");
            assert!(!procedure_matches(bad, b"shop", b"add_item"), "{bad}");
        }
        assert_eq!(entry_problem("shop.add_item"), None);
    }
}
