//! Seeded scripts of clients with different handshake charsets and
//! multi-statement flags on one or two backend connections, directly and
//! through Funnel: every reply must be the same both ways. The pool then
//! switches its connections between the clients' keys (`SET NAMES`, the
//! multi-statement option) in every order the scripts draw, around the
//! clients' own `SET NAMES`, prepares, resets, option changes and
//! transactions.
//!
//! `FUNNEL_CS_SEED` (first seed, default 1), `FUNNEL_CS_SEEDS` (how many,
//! default 3) and `FUNNEL_CS_STEPS` (steps per script, default 60) make it
//! a soak.

use super::*;
use funnel_testkit::SeededRng;

/// Handshake collations the clients draw from: utf8mb4_general_ci,
/// latin1_swedish_ci, utf8mb4_unicode_ci, utf8mb3_general_ci, latin1_bin.
const COLLATIONS: [u8; 5] = [45, 8, 224, 33, 47];

const VARS: &str = "SELECT @@character_set_client, @@character_set_connection, \
                    @@character_set_results, @@collation_connection";
const TEXT: &str = "SELECT 'é' AS e, HEX('é'), CHARSET('é'), COLLATION('é'), 'é' = 'e', v FROM t";
const PREPARED: &str = "SELECT 'é' AS e, ? AS p, CHARSET(?) AS cs, v FROM t";
const SETS: [&str; 6] = [
    "SET NAMES latin1",
    "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
    "SET NAMES utf8mb3",
    "SET character_set_results = NULL",
    "SET collation_connection = latin1_german2_ci",
    "SET CHARACTER SET latin1",
];
const SETUP: &[&str] = &[
    "CREATE TABLE t (v VARCHAR(8) CHARACTER SET latin1)",
    "INSERT INTO t VALUES ('x')",
    "CREATE FUNCTION fails() RETURNS INT BEGIN SIGNAL SQLSTATE '45000'; RETURN 1; END",
];

/// One step of a script: which client, and what it does.
#[derive(Debug, Clone, Copy)]
enum Action {
    Vars,
    Text,
    Set(&'static str),
    Prepare,
    Execute,
    TwoStatements,
    FailsThenTable,
    Reset,
    MultiStatements(bool),
    Begin,
    Commit,
}

struct Script {
    /// (handshake collation, asks for multi-statements) per client.
    clients: Vec<(u8, bool)>,
    pool: usize,
    steps: Vec<(usize, Action)>,
}

fn draw(seed: u64, steps: usize) -> Script {
    let mut rng = SeededRng::new(seed);
    let clients: Vec<(u8, bool)> = (0..4)
        .map(|_| (rng.pick(&COLLATIONS), rng.below(2) == 0))
        .collect();
    // Two connections leave one free while a client holds a transaction
    // (the script runs one step at a time: with one, the next client's
    // step would wait for a COMMIT that comes after it).
    let pool = if rng.below(2) == 0 { 1 } else { 2 };
    let mut in_tx: Option<usize> = None;
    let mut out = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        let i = rng.below(clients.len() as u64) as usize;
        let action = match rng.below(14) {
            0..=2 => Action::Vars,
            3 | 4 => Action::Text,
            5 => Action::Set(rng.pick(&SETS)),
            6 => Action::Prepare,
            7 | 8 => Action::Execute,
            9 => Action::TwoStatements,
            10 => Action::FailsThenTable,
            11 => Action::Reset,
            12 => Action::MultiStatements(rng.below(2) == 0),
            _ if pool == 2 && in_tx == Some(i) => Action::Commit,
            _ if pool == 2 && in_tx.is_none() => Action::Begin,
            _ => Action::Vars,
        };
        match action {
            Action::Begin => in_tx = Some(i),
            Action::Commit => in_tx = None,
            Action::Reset if in_tx == Some(i) => in_tx = None,
            _ => {}
        }
        out.push((i, action));
    }
    if let Some(i) = in_tx {
        out.push((i, Action::Commit));
    }
    Script {
        clients,
        pool,
        steps: out,
    }
}

/// Runs `script` on clients logged in to `addr`: every reply.
fn run(script: &Script, addr: SocketAddr, user: &str, pw: &str, schema: &str) -> Vec<Reply> {
    let mut c: Vec<Raw> = script
        .clients
        .iter()
        .map(|&(charset, multi)| {
            let extra = if multi {
                Capabilities::CLIENT_MULTI_STATEMENTS
            } else {
                Capabilities::EMPTY
            };
            Raw::connect_as(addr, user, pw, schema, extra, charset)
        })
        .collect();
    // Each client's last prepared statement, by this side's id.
    let mut ids: Vec<Option<u32>> = vec![None; c.len()];
    let mut out = Vec::new();
    for &(i, action) in &script.steps {
        let reply = match action {
            Action::Vars => c[i].query(VARS),
            Action::Text => c[i].query(TEXT),
            Action::Set(sql) => c[i].query(sql),
            Action::Prepare => {
                let reply = c[i].prepare_reply(PREPARED);
                ids[i] = c[i].prepare(PREPARED).ok();
                reply
            }
            Action::Execute => match ids[i] {
                Some(id) => c[i].execute(id, 0, &[text("é"), text("x")], true),
                None => c[i].query(TEXT),
            },
            Action::TwoStatements => c[i].query("SELECT 1; SELECT 'é'"),
            Action::FailsThenTable => {
                out.push(c[i].query("SELECT fails()"));
                c[i].query("SELECT COUNT(*) FROM t")
            }
            Action::Reset => c[i].call(&[0x1f], Expect::Status),
            Action::MultiStatements(on) => {
                let option: u16 = if on { 0 } else { 1 };
                let mut p = vec![0x1b];
                p.extend_from_slice(&option.to_le_bytes());
                c[i].call(&p, Expect::Status)
            }
            Action::Begin => c[i].query("BEGIN"),
            Action::Commit => c[i].query("COMMIT"),
        };
        out.push(reply);
    }
    out
}

#[test]
fn prepared_charset_and_multi_statement_switches_match_direct_for_seeded_scripts() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (first, seeds, steps) = (
        env("FUNNEL_CS_SEED", 1),
        env("FUNNEL_CS_SEEDS", 3),
        env("FUNNEL_CS_STEPS", 60) as usize,
    );
    let db = MariaDb::shared();
    users(db);
    let mut failures = Vec::new();
    let mut switched = 0;
    for seed in first..first + seeds {
        let script = draw(seed, steps);
        let schema = schema_with(db, "ps_cs_soak", SETUP);
        let d = mask(run(&script, db.addr(), "ps_direct", "dpw", &schema), &schema);
        let proxy = funnel(db, &schema, script.pool);
        let f = mask(run(&script, proxy.local_addr(), "app", "apppw", &schema), &schema);
        switched += proxy.snapshots()[0].counters.connections_switched;
        if let Some(at) = d.iter().zip(&f).position(|(d, f)| d != f) {
            failures.push(format!(
                "seed {seed} (clients {:?}, pool {}): reply {at} differs\n  direct {:?}\n  funnel {:?}\n  steps {:?}",
                script.clients,
                script.pool,
                d[at],
                f[at],
                script.steps
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(switched > 0, "no seed switched a connection");
}
