//! MariaDB's extended column metadata (`MARIADB_CLIENT_EXTENDED_METADATA`)
//! through Funnel: each column's description carries the type it was
//! declared with (`json`, `uuid`, a geometry's), which connectors read to
//! return a JSON column as an object. A client that asks for it gets the
//! descriptions a direct connection gets, and one that does not, the plain
//! ones, also where the other kind of client prepared the same text first.

use super::*;

const EXT: Capabilities = Capabilities::MARIADB_CLIENT_EXTENDED_METADATA;

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, doc JSON, u UUID, p POINT, n INT)",
    "INSERT INTO t VALUES (1, '{\"a\": 1}', '123e4567-e89b-12d3-a456-426614174000', POINT(1, 2), 7)",
];

/// What the column descriptions of `reply` say after the fixed names: the
/// extended field where there is one (its length byte first).
fn has_json_format(reply: &Reply) -> bool {
    let needle = b"json";
    reply.as_ref().is_ok_and(|packets| {
        packets
            .iter()
            .any(|p| p.windows(needle.len()).any(|w| w == needle))
    })
}

#[test]
fn prepared_extended_metadata_matches_direct() {
    let (d, f) = differential_with("ps_extmeta", SETUP, 2, 1, EXT, |c| {
        let a = c[0].prepare_reply("SELECT doc, u, p, n FROM t WHERE id = ?");
        // The same text again, from the shard's registry through Funnel.
        let b = c[1].prepare_reply("SELECT doc, u, p, n FROM t WHERE id = ?");
        let id = c[1].prepare("SELECT doc, u, p, n FROM t WHERE id = ?").unwrap();
        vec![
            c[0].query("SELECT doc, u, p, n FROM t"),
            a,
            b,
            c[1].execute(id, 0, &[int(1)], true),
            c[0].query("SELECT JSON_OBJECT('k', n) AS j, CAST(u AS CHAR) FROM t"),
        ]
    });
    assert_same(&d, &f);
    assert!(
        has_json_format(&d[0]),
        "the server describes doc as json: {:?}",
        d[0]
    );
}

#[test]
fn prepared_extended_metadata_and_plain_clients_keep_their_own_descriptions() {
    // Both kinds of client, each prepared after the other kind did.
    let sql = "SELECT doc, u FROM t WHERE id = ?";
    let (d, f) = differential_pair(
        "ps_extmix",
        SETUP,
        (EXT, Capabilities::EMPTY),
        |ext: &mut Raw, plain: &mut Raw| {
            let e = ext.prepare_reply(sql);
            let p = plain.prepare_reply(sql);
            let id = plain.prepare("SELECT doc FROM t WHERE n = ?").unwrap();
            let e2 = ext.prepare_reply("SELECT doc FROM t WHERE n = ?");
            vec![
                e,
                p,
                e2,
                plain.execute(id, 0, &[int(7)], true),
                plain.query("SELECT doc FROM t"),
                ext.query("SELECT doc FROM t"),
            ]
        },
    );
    assert_same(&d, &f);
    assert!(has_json_format(&d[0]) && has_json_format(&d[2]) && has_json_format(&d[5]));
    assert!(!has_json_format(&d[1]) && !has_json_format(&d[3]) && !has_json_format(&d[4]));
}
