//! What reading a large `COM_QUERY` costs the shard before it is forwarded
//! (bulk `INSERT`s, mysqldump restores): every pass the session makes over
//! the text, timed on generated statements. Ignored by default; run in a
//! release build:
//!
//! `cargo test --release -p funnel-engine --lib scan_cost -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use funnel_protocol::Capabilities;

use super::command::{plan, Plan};
use super::{pinning, rewrite};

const CAPS: Capabilities = Capabilities(Capabilities::CLIENT_PROTOCOL_41.0);

/// Literal contents as a dump writes them: escaped quotes and backslashes,
/// and (in `wordy`) words the refusal checks look for.
const PLAIN: [&str; 6] = [
    "lorem ipsum dolor sit amet",
    "it\\'s a \\\"quoted\\\" text",
    "C:\\\\path\\\\to\\\\file",
    "line one\\nline two\\r\\n",
    "it''s doubled",
    "0123456789abcdef0123456789abcdef",
];
const WORDY: [&str; 4] = [
    "the user forgot the password again",
    "please kill -9 the stuck worker",
    "prepare the immediate alter of the schema",
    "select * from users where last_insert_id = 5",
];

/// An extended INSERT of about `size` bytes, as `mysqldump` writes one.
fn insert_text(size: usize, wordy: bool) -> Vec<u8> {
    let mut sql = b"INSERT INTO `t1` VALUES ".to_vec();
    let mut row = 0usize;
    while sql.len() < size {
        if row > 0 {
            sql.push(b',');
        }
        let a = PLAIN[row % PLAIN.len()];
        let b = if wordy {
            WORDY[row % WORDY.len()]
        } else {
            PLAIN[(row + 3) % PLAIN.len()]
        };
        sql.extend_from_slice(
            format!("({row},'{a}',NULL,{}.25,'{b}','2024-01-01 00:00:00')", row * 7).as_bytes(),
        );
        row += 1;
    }
    sql.push(b';');
    sql
}

/// Nanoseconds per byte of the fastest of a few runs of `f` over `len` bytes.
fn ns_per_byte(len: usize, mut f: impl FnMut()) -> f64 {
    let runs = (64 << 20) / len.max(1);
    let runs = runs.clamp(3, 200);
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    best / len as f64
}

#[test]
#[ignore = "a measurement: run in a release build with --ignored --nocapture"]
fn scan_cost_of_large_inserts() {
    println!("| text | size | plan | refusal | classify | digest key | previous stmt | total per query |");
    println!("|---|---|---|---|---|---|---|---|");
    for wordy in [false, true] {
        for size in [64 << 10, 1 << 20, (16 << 20) - 64] {
            let sql = insert_text(size, wordy);
            let mut payload = vec![0x03];
            payload.extend_from_slice(&sql);
            assert!(matches!(plan(&payload, CAPS), Plan::Forward(_)));
            let n = sql.len();
            let p = ns_per_byte(n, || {
                black_box(plan(black_box(&payload), CAPS));
            });
            let r = ns_per_byte(n, || {
                black_box(pinning::refusal(black_box(&sql)));
            });
            let c = ns_per_byte(n, || {
                black_box(pinning::classify(black_box(&sql)));
            });
            let d = ns_per_byte(n, || {
                black_box(crate::digest::key(black_box(&sql)));
            });
            let m = ns_per_byte(n, || {
                black_box(rewrite::mentions_previous_statement(black_box(&sql)));
            });
            // What `Session::dispatch` and `forward` run on such a query:
            // the plan, the digest key, and the look for reads of the
            // previous statement (twice: sync and rewrite).
            let total = ns_per_byte(n, || {
                black_box(plan(black_box(&payload), CAPS));
                black_box(payload.contains(&b'\\'));
                black_box(crate::digest::key(&sql));
                if sql.contains(&b';') {
                    black_box(rewrite::mentions_previous_statement(&sql));
                }
                black_box(rewrite::mentions_previous_statement(&sql));
            });
            println!(
                "| {} | {} KiB | {p:.2} | {r:.2} | {c:.2} | {d:.2} | {m:.2} | {total:.2} ns/B = {:.1} ms |",
                if wordy { "wordy" } else { "plain" },
                n >> 10,
                total * n as f64 / 1e6
            );
        }
    }
}
