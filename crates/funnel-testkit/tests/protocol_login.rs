//! Proof for the protocol crate: a client made only of `funnel-protocol`
//! logs in to a real MariaDB, reads results, and gets 1045 for a wrong password.

use funnel_testkit::mini_client::{MiniClient, MiniError, QueryResult};
use funnel_testkit::MariaDb;

#[test]
fn protocol_mini_client_against_real_mariadb() {
    let db = MariaDb::shared();
    let schema = db.fresh_database("proto");
    db.create_user("proto_user", "proto pw");
    db.exec(&format!(
        "CREATE TABLE {schema}.t (id INT PRIMARY KEY, name VARCHAR(20), score DOUBLE);
         INSERT INTO {schema}.t VALUES (1, 'alpha', 1.5), (2, NULL, -2), (3, 'gamma', 0)"
    ));
    let mut c = MiniClient::connect(db.addr(), "proto_user", "proto pw", Some(&schema)).expect("login");
    assert!(c.server_version.contains("MariaDB"), "{}", c.server_version);
    assert_eq!(
        c.query("SELECT 1").unwrap().rows(),
        &[vec![Some("1".to_string())]]
    );
    let r = c.query("SELECT id, name, score FROM t ORDER BY id").unwrap();
    let QueryResult::Rows { columns, rows } = r else {
        panic!("rows expected")
    };
    assert_eq!(columns, ["id", "name", "score"]);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![s("1"), s("alpha"), s("1.5")],
            vec![s("2"), None, s("-2")],
            vec![s("3"), s("gamma"), s("0")],
        ]
    );
    match c.query("INSERT INTO t VALUES (4, 'delta', 4)").unwrap() {
        QueryResult::Ok(ok) => assert_eq!(ok.affected_rows, 1),
        other => panic!("{other:?}"),
    }
    match c.query("SELECT * FROM no_such_table") {
        Err(MiniError::Server(e)) => assert_eq!(e.code, 1146),
        other => panic!("{other:?}"),
    }
}

#[test]
fn protocol_mini_client_wrong_password_gets_1045() {
    let db = MariaDb::shared();
    db.create_user("proto_user2", "right");
    match MiniClient::connect(db.addr(), "proto_user2", "wrong", None) {
        Err(MiniError::Server(e)) => {
            assert_eq!(e.code, 1045);
            assert_eq!(&e.sql_state, b"28000");
            assert!(e
                .message_text()
                .starts_with("Access denied for user 'proto_user2'"));
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("login with a wrong password succeeded"),
    }
}
