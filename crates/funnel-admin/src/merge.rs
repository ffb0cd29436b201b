//! Merging the cores' snapshots into totals.

use funnel_engine::ShardSnapshot;
use hdrhistogram::Histogram;

/// Counters and histograms summed over every core.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Client connections open now.
    pub clients_active: u64,
    /// Accepted so far.
    pub clients_accepted: u64,
    /// Refused so far.
    pub clients_refused: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands forwarded.
    pub forwarded: u64,
    /// Funnel's own errors.
    pub funnel_errors: u64,
    /// Backlog waits, timeouts and refusals.
    pub backlog_waits: u64,
    /// Commands that gave up waiting.
    pub backlog_timeouts: u64,
    /// Commands refused with a full backlog.
    pub backlog_full: u64,
    /// Backend connections opened.
    pub backend_opened: u64,
    /// Failed backend connection attempts.
    pub backend_open_failures: u64,
    /// Backend connections closed as unusable.
    pub backend_discarded: u64,
    /// State-sync `SET`s.
    pub state_syncs: u64,
    /// Lazy re-prepares.
    pub reprepares: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
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
        clients_accepted: 0,
        clients_refused: 0,
        commands: 0,
        forwarded: 0,
        funnel_errors: 0,
        backlog_waits: 0,
        backlog_timeouts: 0,
        backlog_full: 0,
        backend_opened: 0,
        backend_open_failures: 0,
        backend_discarded: 0,
        state_syncs: 0,
        reprepares: 0,
        bytes_in: 0,
        bytes_out: 0,
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
        t.clients_accepted += s.clients_accepted;
        t.clients_refused += s.clients_refused;
        t.commands += s.commands;
        t.forwarded += s.forwarded;
        t.funnel_errors += s.funnel_errors;
        t.backlog_waits += s.backlog_waits;
        t.backlog_timeouts += s.backlog_timeouts;
        t.backlog_full += s.backlog_full;
        t.backend_opened += s.backend_opened;
        t.backend_open_failures += s.backend_open_failures;
        t.backend_discarded += s.backend_discarded;
        t.state_syncs += s.state_syncs;
        t.reprepares += s.reprepares;
        t.bytes_in += s.bytes_from_clients;
        t.bytes_out += s.bytes_to_clients;
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
