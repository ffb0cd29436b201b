//! One core's counters and latency histograms. Only its own core writes
//! them; the admin side asks each core for a copy over the control channel
//! and merges, so statistics never slow the data path.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;

/// A latency histogram in microseconds (1 us to 1 hour, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid"))
    }
}

impl Latency {
    /// Records one value, clamped into range.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }
}

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections accepted.
    pub clients_accepted: Cell<u64>,
    /// Client connections refused (limits, failed logins).
    pub clients_refused: Cell<u64>,
    /// Client connections open now.
    pub clients_active: Cell<u64>,
    /// Client sessions ended by a panic (a bug in Funnel).
    pub session_panics: Cell<u64>,
    /// Commands from clients (all kinds).
    pub commands: Cell<u64>,
    /// Commands forwarded to a backend.
    pub forwarded: Cell<u64>,
    /// `SET`s answered from a backend's earlier reply, without a backend
    /// connection (see `learned_sets.rs`).
    pub sets_answered_locally: Cell<u64>,
    /// `CALL`s of declared stateless procedures after which the session
    /// gave its connection back (see `session/stateless_call.rs`).
    pub calls_unpinned: Cell<u64>,
    /// Reads answered from the query cache.
    pub query_cache_hits: Cell<u64>,
    /// Reads a rule with `cache_ttl` matched that a server answered.
    pub query_cache_misses: Cell<u64>,
    /// MariaDB bulk executes (`COM_STMT_BULK_EXECUTE`) forwarded.
    pub bulk_executes: Cell<u64>,
    /// Errors Funnel generated itself.
    pub funnel_errors: Cell<u64>,
    /// Commands that had to wait in the backlog.
    pub backlog_waits: Cell<u64>,
    /// Commands that gave up waiting.
    pub backlog_timeouts: Cell<u64>,
    /// Commands refused because the backlog was full.
    pub backlog_full: Cell<u64>,
    /// Backend connections opened.
    pub backend_opened: Cell<u64>,
    /// Backend connection attempts that failed.
    pub backend_open_failures: Cell<u64>,
    /// Health checks that failed (counted toward marking a backend down).
    pub health_checks_failed: Cell<u64>,
    /// The same, by backend name: kept across a pool's replacement, so
    /// `SHOW SERVERS` says which backend is failing.
    pub open_failures_by_backend: RefCell<std::collections::BTreeMap<String, u64>>,
    /// Backend connections closed because they could not be reused.
    pub backend_discarded: Cell<u64>,
    /// Backend connections reset before reuse (`COM_RESET_CONNECTION`)
    /// after a failed statement that may have run stored code.
    pub backend_resets: Cell<u64>,
    /// Idle or released backend connections given another client's pool
    /// key (charset, multi-statement flag) instead of being closed for a
    /// new one.
    pub connections_switched: Cell<u64>,
    /// Statements prepared on a backend connection at their first execute there.
    pub reprepares: Cell<u64>,
    /// Prepares of a text the registry knew, described by a server again
    /// (its description was a second old, or a table may have changed).
    pub prepares_rechecked: Cell<u64>,
    /// Prepares answered from the registry, with no backend round trip.
    pub prepares_from_registry: Cell<u64>,
    /// Causal reads that waited on a replica for the session's writes.
    pub causal_waits: Cell<u64>,
    /// Causal reads on a replica already seen to have the session's writes.
    pub causal_waits_skipped: Cell<u64>,
    /// Causal reads sent to the writer: the replica did not catch up in
    /// time, could not wait, or the session's last write was not read.
    pub causal_reads_on_writer: Cell<u64>,
    /// Reads of the writer's GTID position sent for `causal_reads:
    /// universal` reads (one may serve several reads).
    pub causal_position_reads: Cell<u64>,
    /// `causal_reads: universal` reads that took a position read another
    /// read of the core sent after they arrived, with no read of their own.
    pub causal_positions_shared: Cell<u64>,
    /// `SET`s Funnel ran to bring a connection's variables in line.
    pub state_syncs: Cell<u64>,
    /// Statistics snapshots this core built for the admin and metrics
    /// listeners (each is work taken from the clients).
    pub snapshots: Cell<u64>,
    /// Funnel's own errors by MySQL error code.
    pub errors_by_code: RefCell<std::collections::BTreeMap<u16, u64>>,
    /// Clients pinned, by reason (a client counts once, when first pinned).
    pub pins: RefCell<std::collections::BTreeMap<&'static str, u64>>,
    /// Clients pinned, by the digest of the statement that pinned them.
    pub pins_by_digest: RefCell<std::collections::HashMap<u64, u64>>,
    /// Bytes from clients.
    pub bytes_from_clients: Cell<u64>,
    /// Bytes to clients.
    pub bytes_to_clients: Cell<u64>,
    /// Time from a command's arrival to the end of its response.
    pub query_us: RefCell<Latency>,
    /// Time spent waiting in the backlog.
    pub backlog_wait_us: RefCell<Latency>,
    /// Time to open a backend connection.
    pub connect_us: RefCell<Latency>,
}

impl Stats {
    /// The counters as plain numbers, for a snapshot.
    pub fn counters(&self) -> crate::control::Counters {
        crate::control::Counters {
            clients_accepted: self.clients_accepted.get(),
            clients_refused: self.clients_refused.get(),
            session_panics: self.session_panics.get(),
            commands: self.commands.get(),
            forwarded: self.forwarded.get(),
            sets_answered_locally: self.sets_answered_locally.get(),
            calls_unpinned: self.calls_unpinned.get(),
            query_cache_hits: self.query_cache_hits.get(),
            query_cache_misses: self.query_cache_misses.get(),
            bulk_executes: self.bulk_executes.get(),
            funnel_errors: self.funnel_errors.get(),
            backlog_waits: self.backlog_waits.get(),
            backlog_timeouts: self.backlog_timeouts.get(),
            backlog_full: self.backlog_full.get(),
            backend_opened: self.backend_opened.get(),
            backend_open_failures: self.backend_open_failures.get(),
            health_checks_failed: self.health_checks_failed.get(),
            backend_discarded: self.backend_discarded.get(),
            backend_resets: self.backend_resets.get(),
            connections_switched: self.connections_switched.get(),
            causal_waits: self.causal_waits.get(),
            causal_waits_skipped: self.causal_waits_skipped.get(),
            causal_reads_on_writer: self.causal_reads_on_writer.get(),
            causal_position_reads: self.causal_position_reads.get(),
            causal_positions_shared: self.causal_positions_shared.get(),
            state_syncs: self.state_syncs.get(),
            snapshots: self.snapshots.get(),
            reprepares: self.reprepares.get(),
            prepares_rechecked: self.prepares_rechecked.get(),
            prepares_from_registry: self.prepares_from_registry.get(),
            bytes_from_clients: self.bytes_from_clients.get(),
            bytes_to_clients: self.bytes_to_clients.get(),
            // The query log counts its own (`Shard::snapshot`).
            query_log_lines: 0,
            query_log_dropped: 0,
        }
    }

    /// Adds one to a counter.
    pub fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    /// Counts one of Funnel's own errors.
    pub fn count_error(&self, code: u16) {
        Stats::bump(&self.funnel_errors);
        *self.errors_by_code.borrow_mut().entry(code).or_default() += 1;
    }

    /// Counts a failed attempt to open a connection to `backend`.
    pub fn count_open_failure(&self, backend: &str) {
        Stats::bump(&self.backend_open_failures);
        let mut by = self.open_failures_by_backend.borrow_mut();
        match by.get_mut(backend) {
            Some(n) => *n += 1,
            None => {
                by.insert(backend.to_string(), 1);
            }
        }
    }

    /// Counts a client pinned for `reason`.
    pub fn count_pin(&self, reason: crate::session::pinning::PinReason) {
        *self.pins.borrow_mut().entry(reason.as_str()).or_default() += 1;
    }
}
