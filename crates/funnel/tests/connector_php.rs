//! PHP's mysqlnd through Funnel: what its scenarios found.
//!
//! Found and fixed: `COMMIT RELEASE` / `ROLLBACK RELEASE` (mysqli's
//! `MYSQLI_TRANS_COR_RELEASE`): the server closes its connection after
//! the OK, and Funnel gave that connection back to the pool, where the
//! next client's statement failed with ERR 9007, while the releasing
//! client's session went on (directly its next statement finds the
//! connection gone, 2006). See
//! [`connector_php_commit_release_ends_its_own_session_not_anothers`].

use funnel_engine::Proxy;
use funnel_testkit::MariaDb;

const USER: &str = "phpapp";
const PASSWORD: &str = "phppw";
const USER2: &str = "phpapp2";
const PASSWORD2: &str = "phppw2";

/// The shared server, with [`USER`] and [`USER2`] made once.
fn server() -> &'static MariaDb {
    static USERS_MADE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    USERS_MADE.call_once(|| {
        db.create_user(USER, PASSWORD);
        db.create_user(USER2, PASSWORD2);
    });
    db
}

/// Three fresh schemas.
fn schemas() -> [String; 3] {
    let db = server();
    [0, 1, 2].map(|_| db.fresh_database("php"))
}

/// A Funnel on one core with `max` backend connections for both users,
/// and `extra`, more top-level YAML.
fn funnel_with(max: u32, extra: &str) -> Proxy {
    let db = server();
    let backend = format!("{}_b", db.fresh_database("phpb"));
    db.create_user(&backend, "bpw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\n\
         users:\n  - name: {USER}\n    password: {PASSWORD}\n  - name: {USER2}\n    password: {PASSWORD2}\n\
         backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
         pool:\n  max_per_core: {max}\n  min_idle_per_core: {max}\n{extra}",
        db.addr()
    );
    funnel_testkit::funnel::start(funnel_config::Config::from_yaml_str(&yaml).unwrap())
}

/// `COMMIT RELEASE` and `ROLLBACK RELEASE` (mysqli's `commit()` and
/// `rollback()` with `MYSQLI_TRANS_COR_RELEASE`): the server ends the
/// session after its OK and closes the connection. Funnel gave that
/// closing connection back to its pool, where the next client's statement
/// failed with ERR 9007 (`Lost connection to backend`), and kept the
/// releasing client's own connection open. Now the backend connection is
/// closed, never reused, and the client's connection closes after the OK,
/// as directly; `NO RELEASE` changes nothing.
#[test]
fn connector_php_commit_release_ends_its_own_session_not_anothers() {
    use funnel_testkit::mini_client::{MiniClient, MiniError};
    let db = server();
    let s = schemas();
    db.exec(&format!("CREATE TABLE {}.r (id INT PRIMARY KEY)", s[0]));
    let proxy = funnel_with(1, "");
    let addr = proxy.local_addr();
    let client = || MiniClient::connect(addr, USER, PASSWORD, Some(&s[0])).unwrap();
    let mut other = client();
    other.query("SET @o = 'other'").unwrap();
    let forms = [
        ("COMMIT RELEASE", true),
        ("ROLLBACK WORK AND NO CHAIN RELEASE", true),
        ("commit /* c */ release", true),
        ("COMMIT NO RELEASE", false),
        ("ROLLBACK AND NO CHAIN NO RELEASE", false),
    ];
    for (n, (sql, closes)) in forms.into_iter().enumerate() {
        let mut c = client();
        c.query("SET @x = 'mine'").unwrap();
        c.query("START TRANSACTION").unwrap();
        c.query(&format!("INSERT INTO r VALUES ({n})")).unwrap();
        c.query(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let next = c.query("SELECT @x");
        if closes {
            assert!(matches!(next, Err(MiniError::Io(_))), "{sql}: {next:?}");
        } else {
            assert_eq!(next.unwrap().rows(), [vec![Some("mine".to_owned())]], "{sql}");
        }
        // The other client is served, on a connection of its own session.
        let o = other
            .query("SELECT @o")
            .unwrap_or_else(|e| panic!("after {sql}: {e:?}"));
        assert_eq!(o.rows(), [vec![Some("other".to_owned())]], "after {sql}");
    }
    let committed = db.query_first::<String>(&format!("SELECT GROUP_CONCAT(id ORDER BY id) FROM {}.r", s[0]));
    assert_eq!(committed.as_deref(), Some("0,2,3"));
}
