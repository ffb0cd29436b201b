//! Measures what a session-state switch costs: two clients alternate
//! `SELECT 1` over ONE backend connection, first with identical session
//! variables (nothing to apply), then with different ones (every command
//! needs a `SET` first), and directly against MariaDB for reference.
//!
//!     cargo run --release -p funnel --example state_switch [-- ROUNDS]

use std::time::Instant;

use funnel_config::Config;
use funnel_engine::Proxy;
use funnel_testkit::MariaDb;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

fn opts(port: u16, user: &str, db: &str) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some(user))
        .pass(Some("pw"))
        .db_name(Some(db))
        .prefer_socket(false)
}

/// Average microseconds per query when two clients alternate.
fn alternate(a: &mut Conn, b: &mut Conn, rounds: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..rounds {
        a.query_drop("SELECT 1").unwrap();
        b.query_drop("SELECT 1").unwrap();
    }
    started.elapsed().as_secs_f64() * 1e6 / (2 * rounds) as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let db = MariaDb::start();
    let schema = db.fresh_database("switch");
    db.create_user("app", "pw");
    let yaml = format!(
        "listen: 127.0.0.1:0\ncores: 1\nusers:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
         backends:\n  - name: primary\n    address: {}\n    user: app\n    password: pw\n\
         pool:\n  max_per_core: 1\n  min_idle_per_core: 1\nlog:\n  level: warn\n",
        db.addr()
    );
    let proxy = Proxy::start(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let port = proxy.local_addr().port();

    let mut da = Conn::new(opts(db.port(), "app", &schema)).unwrap();
    let mut dbb = Conn::new(opts(db.port(), "app", &schema)).unwrap();
    let direct = alternate(&mut da, &mut dbb, rounds);

    let mut a = Conn::new(opts(port, "app", &schema)).unwrap();
    let mut b = Conn::new(opts(port, "app", &schema)).unwrap();
    alternate(&mut a, &mut b, rounds / 10); // warm up
    let same = alternate(&mut a, &mut b, rounds);

    a.query_drop("SET time_zone = '+05:00', sql_mode = 'ANSI_QUOTES'")
        .unwrap();
    let differ = alternate(&mut a, &mut b, rounds);

    println!("queries alternating between two clients over one backend connection, {rounds} rounds:");
    println!("  direct (two server connections):       {direct:8.1} us/query");
    println!("  through Funnel, same session state:    {same:8.1} us/query");
    println!("  through Funnel, different state (SET): {differ:8.1} us/query");
    println!(
        "  cost of a state switch: {:.1} us ({:.2}x the same-state query)",
        differ - same,
        differ / same
    );
}
