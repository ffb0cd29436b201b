//! `KILL` corner cases: what a failed step of a `KILL QUERY` leaves
//! behind. Expectations are a direct connection's: a `KILL` the server
//! never received stops nothing and costs nothing.

use std::thread;
use std::time::Duration;

use funnel_protocol::tracker::Expect;
use funnel_testkit::mini_client::MiniClient;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;

/// Funnel in front of the shared server with one backend connection;
/// returns it with its schema and backend account.
fn funnel(prefix: &str) -> (funnel_engine::Proxy, String, String) {
    funnel_with(prefix, "")
}

/// [`funnel`], with `extra` YAML appended to its configuration.
fn funnel_with(prefix: &str, extra: &str) -> (funnel_engine::Proxy, String, String) {
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let account = format!("{schema}_b");
    db.create_user(&account, "bpw");
    let cfg = funnel_testkit::funnel::config(
        db,
        ("app", "apppw"),
        (&account, "bpw"),
        Some(&schema),
        &format!("pool:\n  max_per_core: 1\n  min_idle_per_core: 0\nbacklog:\n  wait_timeout: 30s\n{extra}"),
    );
    (funnel_testkit::funnel::start(cfg), schema, account)
}

/// The server's thread ids of `account`'s connections.
fn threads_of(account: &str) -> Vec<i64> {
    let mut root = MariaDb::shared().root();
    root.query(format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{account}' ORDER BY ID"
    ))
    .unwrap()
}

/// A `KILL QUERY` whose poll of `SHOW PROCESSLIST` (waiting for the target
/// thread to show it is at work) fails wrote no `KILL` to the server:
/// nothing can arrive late, so the target's connection must go on serving
/// (it was marked `late_kill` and closed for nothing). The target here has
/// a result the server finished sending (its thread shows `Sleep`) that
/// its client does not read, so the statement is still Funnel's to relay.
#[test]
fn kill_failed_poll_leaves_the_connection_serving() {
    let (proxy, _schema, account) = funnel("kleftpoll");
    let mut warm =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    warm.query("DO 1").unwrap();
    drop(warm);
    let before = threads_of(&account);
    assert_eq!(before.len(), 1, "one backend connection: {before:?}");
    let mut victim =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let id = victim.connection_id;
    // About 1 MB: more than the client's socket buffers take, less than
    // Funnel's backend side needs to let the server finish.
    victim
        .send_query("SELECT REPEAT('x', 1000) FROM seq_1_to_6000")
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    std::env::set_var("FUNNEL_FAULT_INJECTION", "1");
    std::env::set_var("FUNNEL_FAULT_PROCESSLIST_FAIL", "1");
    // A raw client: a connector's own queries at login would wait for the
    // one connection.
    let mut killer =
        funnel_testkit::mini_client::MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let r = killer.query(&format!("KILL QUERY {id}")).map(|_| ());
    std::env::remove_var("FUNNEL_FAULT_PROCESSLIST_FAIL");
    assert!(r.is_err(), "the KILL failed, and says so: {r:?}");
    // The victim reads its whole result and goes on.
    let mut eofs = 0;
    while eofs < 2 {
        let (_, p) = victim.read_packet().expect("the victim's result");
        if p.first() == Some(&0xfe) && p.len() < 9 {
            eofs += 1;
        }
    }
    victim.query("DO 1").unwrap();
    assert_eq!(
        threads_of(&account),
        before,
        "the connection no KILL was written to is kept"
    );
}

/// `CURSOR_TYPE_READ_ONLY`.
const CURSOR: u8 = 1;

/// Prepares `sql` on `c`: the statement id.
fn prepare(c: &mut MiniClient, sql: &str) -> u32 {
    let mut p = vec![0x16];
    p.extend_from_slice(sql.as_bytes());
    let packets = c.roundtrip(&p, Expect::Prepare).expect("prepare");
    assert_eq!(packets[0][0], 0, "prepare: {:?}", packets[0]);
    u32::from_le_bytes(packets[0][1..5].try_into().unwrap())
}

/// Executes statement `id` (no parameters) with a read-only cursor.
fn open_cursor(c: &mut MiniClient, id: u32) {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(CURSOR);
    p.extend_from_slice(&1u32.to_le_bytes());
    let packets = c.roundtrip(&p, Expect::Results).expect("execute");
    let eof = packets.last().unwrap();
    assert_eq!(eof[0], 0xfe, "a cursor's metadata ends in an EOF: {packets:?}");
    assert!(
        u16::from_le_bytes([eof[3], eof[4]]) & 0x40 != 0,
        "SERVER_STATUS_CURSOR_EXISTS"
    );
}

/// Sends `COM_STMT_FETCH` of `rows` rows of statement `id`, reading nothing.
fn send_fetch(c: &mut MiniClient, id: u32, rows: u32) {
    let mut p = vec![0x1c];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&rows.to_le_bytes());
    c.send_command(&p).unwrap();
}

/// How a fetch ended: its rows, and the EOF's status flags or the ERR's code.
fn read_fetch(c: &mut MiniClient) -> (usize, Result<u16, u16>) {
    let mut rows = 0;
    loop {
        let (_, p) = c.read_packet().expect("the fetch's reply");
        match p.first() {
            Some(0xfe) if p.len() < 9 => return (rows, Ok(u16::from_le_bytes([p[3], p[4]]))),
            Some(0xff) => return (rows, Err(u16::from_le_bytes([p[1], p[2]]))),
            _ => rows += 1,
        }
    }
}

/// What a client saw of a 6000-row fetch that a `KILL QUERY` (`kill`,
/// given the client's connection id) hit while it was being sent: the
/// fetch's rows and end (EOF status bits for the cursor, or ERR code),
/// the next fetch's, and whether the connection still answers.
type FetchSeen = ((usize, Result<u16, u16>), (usize, Result<u16, u16>), bool);

fn fetch_killed(c: &mut MiniClient, kill: impl FnOnce(u32)) -> FetchSeen {
    // SERVER_STATUS_CURSOR_EXISTS | SERVER_STATUS_LAST_ROW_SENT.
    let cursor_bits = |(n, end): (usize, Result<u16, u16>)| (n, end.map(|s| s & 0xc0));
    let id = prepare(c, "SELECT REPEAT('x', 1000) FROM seq_1_to_6000");
    open_cursor(c, id);
    // About 6 MB: the server is still writing when the KILL comes.
    send_fetch(c, id, 6000);
    thread::sleep(Duration::from_millis(500));
    kill(c.connection_id);
    let first = cursor_bits(read_fetch(c));
    send_fetch(c, id, 1);
    let next = cursor_bits(read_fetch(c));
    let alive = c.query("DO 1").is_ok();
    (first, next, alive)
}

/// A `KILL QUERY` during a `COM_STMT_FETCH`: MariaDB 10.11 does not stop
/// the fetch of a (materialized) cursor, which sends all its rows, and
/// the cursor stays open. Through Funnel the same, also when the `KILL`
/// comes from a client of Funnel.
#[test]
fn kill_query_during_fetch_is_as_direct() {
    let db = MariaDb::shared();
    let (proxy, schema, account) = funnel("kleftfetch");
    let mut direct = MiniClient::connect(db.addr(), &account, "bpw", Some(&schema)).unwrap();
    let direct_seen = fetch_killed(&mut direct, |id| {
        db.root().query_drop(format!("KILL QUERY {id}")).unwrap();
    });
    assert_eq!(
        direct_seen,
        ((6000, Ok(0x40)), (0, Ok(0x80)), true),
        "what MariaDB does"
    );
    let mut victim = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let funnel_seen = fetch_killed(&mut victim, |id| {
        let mut killer = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
        killer.query(&format!("KILL QUERY {id}")).unwrap();
    });
    assert_eq!(funnel_seen, direct_seen);
}

/// A graceful stop closes idle clients that hold nothing, at once; one
/// reading a cursor holds its connection: it fetches every row, then,
/// its cursor done, it is closed (and the stop ends without waiting for
/// its deadline).
#[test]
fn graceful_stop_lets_a_cursor_be_read_to_its_end() {
    let (proxy, _schema, _account) = funnel("kleftdrain");
    let mut reader = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let mut idle = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    idle.query("DO 1").unwrap();
    let id = prepare(&mut reader, "SELECT seq FROM seq_1_to_10");
    open_cursor(&mut reader, id);
    send_fetch(&mut reader, id, 3);
    assert_eq!(read_fetch(&mut reader), (3, Ok(0x42)));
    thread::scope(|s| {
        let started = std::time::Instant::now();
        let handle = proxy.handle();
        let stop = s.spawn(move || handle.graceful_shutdown(Duration::from_secs(30)));
        // The stop has begun once the idle client is closed.
        assert!(idle.read_packet().is_err(), "an idle client is closed");
        send_fetch(&mut reader, id, 3);
        assert_eq!(read_fetch(&mut reader), (3, Ok(0x42)), "the cursor reads on");
        send_fetch(&mut reader, id, 10);
        assert_eq!(
            read_fetch(&mut reader),
            (4, Ok(0x82)),
            "the rest of the rows, and the cursor's end"
        );
        assert!(reader.read_packet().is_err(), "then the reader is closed");
        stop.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the stop waited only for the reader: {:?}",
            started.elapsed()
        );
    });
}

/// A client in a transaction (holding a row lock) that sends command after
/// command without reading the answers, until whoever answers it is stuck
/// writing to it; then `kill` (given its connection id) kills it. What
/// another connection then gets when it locks the row (`lock`): the lock
/// must be free, as the killed client's transaction is gone.
fn stuck_then_killed(
    victim: &mut MiniClient,
    command: &[u8],
    fill: Duration,
    kill: impl FnOnce(u32),
    lock: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    victim.query("BEGIN").unwrap();
    victim.query("SELECT id FROM t WHERE id = 1 FOR UPDATE").unwrap();
    let mut one = vec![command.len() as u8, 0, 0, 0];
    one.extend_from_slice(command);
    let flood: Vec<u8> = one.repeat(5_000_000 / one.len());
    let mut out = victim.try_clone_stream().unwrap();
    out.set_write_timeout(Some(fill + Duration::from_secs(1)))
        .unwrap();
    let writer = thread::spawn(move || {
        use std::io::Write;
        let _ = out.write_all(&flood);
    });
    // Long enough for the answers to fill both sides' buffers.
    thread::sleep(fill);
    kill(victim.connection_id);
    let got = lock();
    writer.join().unwrap();
    got
}

/// `COM_STMT_FETCH` of a statement nobody prepared: answered with an ERR
/// of some 70 bytes, by the server or by Funnel, 13 bytes asked.
fn fetch_of_nothing() -> Vec<u8> {
    let mut p = vec![0x1c];
    p.extend_from_slice(&77u32.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    p
}

/// Tries `SELECT ... FOR UPDATE` of the victim's row, waiting 3 s at most.
fn lock_row(schema: &str) -> Result<(), String> {
    let mut root = MariaDb::shared().root();
    root.query_drop("SET innodb_lock_wait_timeout = 3").unwrap();
    root.query_drop(format!("SELECT id FROM `{schema}`.t WHERE id = 1 FOR UPDATE"))
        .map_err(|e| e.to_string())
}

/// A killed client that does not read: the server shuts its socket at the
/// kill, and its transaction (and row lock) ends at once, even when the
/// server was stuck writing it an answer. Funnel, stuck writing an answer
/// of its own (an ERR it made) to such a client, ended the session only
/// when the client closed: its connection, and the row lock, were held
/// till then (for ever: that write had no time limit).
#[test]
fn kill_connection_of_a_client_that_does_not_read_funnels_answers() {
    let db = MariaDb::shared();
    let (proxy, schema, account) = funnel_with("kleftstuck", "client:\n  net_write_timeout: 30s\n");
    db.exec(&format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)"));
    db.exec(&format!("INSERT INTO `{schema}`.t VALUES (1)"));
    let mut direct = MiniClient::connect(db.addr(), &account, "bpw", Some(&schema)).unwrap();
    let direct_got = stuck_then_killed(
        &mut direct,
        &fetch_of_nothing(),
        Duration::from_secs(2),
        |id| db.root().query_drop(format!("KILL CONNECTION {id}")).unwrap(),
        || lock_row(&schema),
    );
    assert_eq!(direct_got, Ok(()), "what MariaDB does");
    drop(direct);
    let mut victim = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let funnel_got = stuck_then_killed(
        &mut victim,
        &fetch_of_nothing(),
        Duration::from_secs(2),
        |id| {
            let mut killer = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
            killer.query(&format!("KILL CONNECTION {id}")).unwrap();
        },
        || lock_row(&schema),
    );
    assert_eq!(funnel_got, Ok(()), "through Funnel");
}

/// Without a `KILL`: the server gives up writing to a client that reads
/// nothing after `net_write_timeout`, and ends its connection (and its
/// transaction). Funnel's own answers had no time limit at all.
#[test]
fn client_that_does_not_read_funnels_answers_is_cut_off_at_net_write_timeout() {
    let db = MariaDb::shared();
    let (proxy, schema, account) = funnel_with("kleftwto", "client:\n  net_write_timeout: 1s\n");
    db.exec(&format!("CREATE TABLE `{schema}`.t (id INT PRIMARY KEY)"));
    db.exec(&format!("INSERT INTO `{schema}`.t VALUES (1)"));
    let mut direct = MiniClient::connect(db.addr(), &account, "bpw", Some(&schema)).unwrap();
    direct.query("SET net_write_timeout = 1").unwrap();
    let direct_got = stuck_then_killed(
        &mut direct,
        &fetch_of_nothing(),
        Duration::from_secs(2),
        |_| {},
        || lock_row(&schema),
    );
    assert_eq!(direct_got, Ok(()), "what MariaDB does");
    drop(direct);
    let mut victim = MiniClient::connect(proxy.local_addr(), "app", "apppw", None).unwrap();
    let funnel_got = stuck_then_killed(
        &mut victim,
        &fetch_of_nothing(),
        Duration::from_secs(2),
        |_| {},
        || lock_row(&schema),
    );
    assert_eq!(funnel_got, Ok(()), "through Funnel");
}
