//! Merging the cores' snapshots into totals.

use funnel_engine::{Counters, ShardSnapshot};
use hdrhistogram::Histogram;

/// Counters and histograms summed over every core.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Client connections open now.
    pub clients_active: u64,
    /// Every core's counters, summed.
    pub counters: Counters,
    /// Backend connections open, idle, opening, and commands waiting.
    pub backend_total: usize,
    /// Idle backend connections.
    pub backend_idle: usize,
    /// Connections being opened.
    pub backend_opening: usize,
    /// Commands waiting.
    pub waiting: usize,
    /// Command time in microseconds.
    pub query_us: Histogram<u64>,
    /// Backlog wait in microseconds.
    pub backlog_wait_us: Histogram<u64>,
    /// Connect time in microseconds.
    pub connect_us: Histogram<u64>,
}

/// Sums every core's snapshot.
pub fn totals(shards: &[ShardSnapshot]) -> Totals {
    let empty = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
    let mut t = Totals {
        clients_active: 0,
        counters: Counters::default(),
        backend_total: 0,
        backend_idle: 0,
        backend_opening: 0,
        waiting: 0,
        query_us: empty(),
        backlog_wait_us: empty(),
        connect_us: empty(),
    };
    for s in shards {
        t.clients_active += s.clients_active;
        t.counters.add(&s.counters);
        t.backend_total += s.pool.total;
        t.backend_idle += s.pool.idle;
        t.backend_opening += s.pool.opening;
        t.waiting += s.pool.waiting;
        let _ = t.query_us.add(&s.query_us);
        let _ = t.backlog_wait_us.add(&s.backlog_wait_us);
        let _ = t.connect_us.add(&s.connect_us);
    }
    t
}
