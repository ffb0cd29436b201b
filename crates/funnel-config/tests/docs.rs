//! `docs/configuration.md` must document every configuration key.
//!
//! The keys come from two places, so neither can drift from the doc:
//! - `examples/funnel.yaml`, walked as plain YAML (it shows every key, optional ones included);
//! - the [`Config`] that file loads into, serialized back, which adds every key that has a
//!   default even if the example leaves it out.
//!
//! A key path is written the way the doc writes it: `pool.max_per_core` for a key of a section,
//! `users[].read_fallback` for a key of each item of a list, `client.tls.cert` for a nested
//! section. Each one needs a table row in the doc that starts with the path in backticks and
//! says in its reload column whether a change applies live (`live`), only after a restart
//! (`restart`), or partly (`partly`, with the details in that cell).

use std::collections::BTreeSet;
use std::path::PathBuf;

use funnel_config::Config;
use serde_yaml::Value;

/// Where the workspace root is: this crate lives in `crates/funnel-config`.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Adds the path of every mapping key under `value` to `out`. `prefix` is the path of `value`
/// itself ("" at the top). A list of mappings contributes `prefix[]` and the keys of each item;
/// a list of scalars (such as `cores: [0, 2]`) is a value, not a section.
fn collect(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let key = key
                    .as_str()
                    .unwrap_or_else(|| panic!("non-string key {key:?} under {prefix:?}"));
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                collect(&path, child, out);
                out.insert(path);
            }
        }
        Value::Sequence(items) => {
            for item in items.iter().filter(|i| i.is_mapping()) {
                collect(&format!("{prefix}[]"), item, out);
            }
        }
        Value::Tagged(tagged) => collect(prefix, &tagged.value, out),
        _ => {}
    }
}

/// Every key path of the example file and of the config it loads into.
fn documented_keys_required() -> BTreeSet<String> {
    let example: Value =
        serde_yaml::from_str(&read("examples/funnel.yaml")).expect("examples/funnel.yaml is YAML");
    let config = Config::load(repo_root().join("examples/funnel.yaml"))
        .expect("examples/funnel.yaml is a valid config");
    let serialized = serde_yaml::to_value(&config).expect("a Config serializes");
    let mut keys = BTreeSet::new();
    collect("", &example, &mut keys);
    collect("", &serialized, &mut keys);
    keys
}

/// The table rows of the doc, keyed by the backticked path in their first cell, with the
/// remaining cells.
fn doc_rows(doc: &str) -> Vec<(String, Vec<String>)> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<String> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            let key = cells.first()?.strip_prefix('`')?.strip_suffix('`')?.to_owned();
            Some((key, cells[1..].to_vec()))
        })
        .collect()
}

/// The column that says how a change is applied, by its header.
fn reload_column(doc: &str) -> usize {
    let header = doc
        .lines()
        .find(|l| l.trim_start().starts_with("| Key |"))
        .expect("docs/configuration.md has tables whose header starts with `| Key |`");
    header
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .skip(1)
        .position(|c| c == "Reload")
        .expect("the key tables have a `Reload` column")
}

#[test]
fn docs_configuration_lists_every_key() {
    let doc = read("docs/configuration.md");
    let rows = doc_rows(&doc);
    let documented: BTreeSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let missing: Vec<String> = documented_keys_required()
        .into_iter()
        .filter(|k| !documented.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no table row (`| `key` | type | default | reload | meaning |`) for: {}",
        missing.join(", ")
    );
}

#[test]
fn docs_configuration_says_how_each_key_reloads() {
    let doc = read("docs/configuration.md");
    let column = reload_column(&doc);
    let unclear: Vec<String> = doc_rows(&doc)
        .into_iter()
        .filter(|(_, cells)| {
            let reload = cells.get(column).map(String::as_str).unwrap_or("");
            !["live", "restart", "partly"]
                .iter()
                .any(|w| reload.starts_with(w))
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        unclear.is_empty(),
        "the Reload cell must start with live, restart or partly for: {}",
        unclear.join(", ")
    );
}

#[test]
fn docs_configuration_documents_no_unknown_key() {
    // A key documented but unknown to Funnel would be rejected (unknown keys are errors), so the
    // doc must not invent any. Keys the example cannot show together are listed here.
    let shown_elsewhere = ["admin.password_hash"];
    let known = documented_keys_required();
    let doc = read("docs/configuration.md");
    let invented: Vec<String> = doc_rows(&doc)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|k| !known.contains(k) && !shown_elsewhere.contains(&k.as_str()))
        .collect();
    assert!(
        invented.is_empty(),
        "docs/configuration.md documents keys that examples/funnel.yaml does not have: {}",
        invented.join(", ")
    );
}

#[test]
fn docs_collect_names_nested_and_list_keys() {
    let yaml: Value =
        serde_yaml::from_str("a: {b: 1, c: {d: 2}}\nl: [{x: 1}, {y: 2}]\ncores: [0, 2]\n").unwrap();
    let mut keys = BTreeSet::new();
    collect("", &yaml, &mut keys);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(keys, ["a", "a.b", "a.c", "a.c.d", "cores", "l", "l[].x", "l[].y"]);
}
