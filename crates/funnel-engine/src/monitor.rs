//! The health monitor. One core (shard 0) checks every backend each
//! `monitor.interval`: it connects and logs in, asks for `@@read_only`,
//! reads the replication lag (`SHOW SLAVE STATUS`, Seconds_Behind_Master),
//! and on a Galera node whether it may serve (`wsrep_ready`, the cluster's
//! primary component, the node synced, `wsrep_reject_queries`) and which
//! cluster it is in (`wsrep_cluster_state_uuid`, for causal reads).
//! Each verdict goes to every core over its control channel, so there is
//! one check per backend per interval however many cores run, and no core
//! reads another's state.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use funnel_config::Config;
use funnel_protocol::StatusFlags;

use crate::control::ControlMsg;
use crate::ids::BackendId;
use crate::oneshot;
use crate::pool::conn::{BackendConn, BackendError, SlotGuard};
use crate::pool::key::PoolKey;
use crate::pool::{Health, Pool};
use crate::rt;
use crate::shard::Shard;
use crate::stats::Stats;

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    read_only: bool,
    lag: Option<Duration>,
    /// The server refused to show its replication status (the account
    /// lacks SLAVE MONITOR / REPLICATION CLIENT): the lag is unknown.
    lag_refused: bool,
    /// `@@global.max_prepared_stmt_count`: the server's limit for all its
    /// sessions together.
    max_prepared: Option<u64>,
    /// The status flags of the check's login: a fresh session's (its
    /// global `sql_mode`'s NO_BACKSLASH_ESCAPES).
    login_status: StatusFlags,
    /// The MariaDB extensions the server's greeting offered.
    server_extended: funnel_protocol::Capabilities,
    /// Why a Galera node may not serve now (not ready, out of the
    /// primary component, not synced), if it is one that may not.
    galera_unavailable: Option<String>,
    /// A Galera node's cluster (`wsrep_cluster_state_uuid`): causal reads
    /// wait on the nodes of the cluster a session wrote to.
    galera_cluster: Option<String>,
}

/// Lag reported when replication is configured but not running: treated
/// as far behind, so a lag limit skips the replica.
pub(crate) const BROKEN_REPLICATION_LAG: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the monitor remembers of one pool between its checks.
#[derive(Debug, Default)]
struct History {
    /// Failed checks in a row.
    failures: u32,
    /// [`Pool::answers`] at the last check.
    answers: u64,
    /// The refused lag read was reported (once, until it succeeds).
    lag_refusal_told: bool,
    /// The Galera state that kept the node out, as last logged.
    galera_told: Option<String>,
}

/// How often the wait for the next round reads `monitor.interval` again.
const REREAD_INTERVAL: Duration = Duration::from_secs(1);

/// Waits `monitor.interval` from now, as the configuration says while it
/// waits: a reload that shortens a long interval applies within a second,
/// not after the old interval.
async fn next_round(shard: &Shard) {
    let since = Instant::now();
    loop {
        let due = since + shard.config().monitor.interval.as_duration();
        let now = Instant::now();
        if now >= due {
            return;
        }
        rt::sleep((due - now).min(REREAD_INTERVAL)).await;
    }
}

/// Runs until the shard stops.
pub async fn run(shard: Rc<Shard>, stopping: impl Fn() -> bool) {
    // By pool id: a backend given a new address or login gets a new pool,
    // and starts again from nothing.
    let history: Rc<RefCell<HashMap<u32, History>>> = Rc::default();
    let slots = Rc::new(Cell::new(0));
    let mut added = None;
    while !stopping() {
        let cfg = shard.config();
        // The first round runs at once, and so does the round after a
        // backend is added (during the last round, too): until a backend
        // is checked, the router cannot tell a writer from a read-only
        // replica, and writes wait.
        if let Some(added) = added.take() {
            futures_lite::future::or(next_round(&shard), added).await;
        }
        added = Some(shard.backends.backend_added());
        let checked: Vec<_> = shard
            .backends
            .all()
            .into_iter()
            .filter(|p| !p.is_draining())
            .collect();
        // Failures count in a row: a backend left unchecked for a round
        // (drained, removed) starts again from none.
        history
            .borrow_mut()
            .retain(|id, _| checked.iter().any(|p| p.id == *id));
        // The backends are checked side by side, each verdict sent as it
        // comes: one check that runs out its monitor.timeout (a stopped or
        // partitioned server) must not hold back the others' verdicts, nor
        // the writes that wait for a first one. The round ends with its
        // slowest check.
        let done: Vec<_> = checked
            .into_iter()
            .map(|pool| {
                let (tx, rx) = oneshot::channel();
                let (shard, cfg, slots, history) =
                    (shard.clone(), cfg.clone(), slots.clone(), history.clone());
                rt::spawn(async move {
                    check_and_report(&shard, &cfg, &pool, &slots, &history).await;
                    let _ = tx.send(());
                });
                rx
            })
            .collect();
        for rx in done {
            rx.await;
        }
    }
}

/// Checks one backend and sends the verdict to every core.
async fn check_and_report(
    shard: &Shard,
    cfg: &Config,
    pool: &Pool,
    slots: &Rc<Cell<usize>>,
    history: &RefCell<HashMap<u32, History>>,
) {
    let name = pool.backend_name().to_string();
    let timeout = cfg.monitor.timeout.as_duration();
    let login = pool.spec().clone();
    let mut spec = login.clone();
    if let (Some(user), Some(password)) = (&cfg.monitor.user, &cfg.monitor.password) {
        spec.user = user.clone();
        spec.password = password.clone();
    }
    let donors_serve = cfg.monitor.galera_donors_serve;
    let result = rt::timeout(timeout, check(&spec, slots, timeout, donors_serve)).await;
    // This core's connections there answered commands since the last
    // check: a check that failed (a server too busy to take a new
    // connection within monitor.timeout, or out of max_connections) does
    // not make it down. Marking it down would close those working
    // connections and fail every client.
    let mut history = history.borrow_mut();
    let first = !history.contains_key(&pool.id);
    let past = history.entry(pool.id).or_default();
    let now_answers = pool.answers();
    let answering = !first && past.answers != now_answers;
    past.answers = now_answers;
    let mut down_reason = None;
    let (health, seen) = match result {
        Some(Ok(c)) if c.galera_unavailable.is_some() => {
            // The server answers, but the cluster would refuse or delay
            // its statements: out of rotation at once, whatever this
            // core's connections there still answer.
            past.failures = 0;
            if past.galera_told != c.galera_unavailable {
                tracing::warn!(backend = %name, state = ?c.galera_unavailable, "Galera node may not serve: marked down");
                past.galera_told = c.galera_unavailable.clone();
            }
            down_reason = c.galera_unavailable.clone();
            (Health::Down, Some(c))
        }
        Some(Ok(c)) => {
            if past.galera_told.take().is_some() {
                tracing::info!(backend = %name, "Galera node synced again");
            }
            past.failures = 0;
            // A lag limit that cannot be read cannot keep reads off a
            // lagging replica: say so once, rather than let it pass for
            // a replica that keeps up.
            let limited = pool.placement().max_lag.is_some();
            if c.lag_refused && limited && !past.lag_refusal_told {
                tracing::warn!(
                    backend = %name,
                    user = %spec.user,
                    "cannot read the replication lag (SHOW SLAVE STATUS refused): max_replication_lag \
                     has no effect until this account has SLAVE MONITOR or REPLICATION CLIENT"
                );
            }
            past.lag_refusal_told = c.lag_refused && limited;
            (Health::Up, Some(c))
        }
        Some(Err(e)) if e.local_shortage() => {
            // Funnel itself is out of descriptors or memory: that
            // says nothing about the backend, and marking it down
            // would fail every connected client too.
            if shard.log_rate.allow() {
                tracing::warn!(backend = %name, error = %e, "health check could not run");
            }
            return;
        }
        failed => {
            let why = match failed {
                Some(Err(e)) => e.to_string(),
                _ => format!("no answer within monitor.timeout ({} ms)", timeout.as_millis()),
            };
            if answering {
                if shard.log_rate.allow() {
                    tracing::info!(backend = %name, error = %why, "health check failed, but the backend answers commands: not counted");
                }
                (pool.health(), None)
            } else {
                past.failures += 1;
                Stats::bump(&shard.stats.health_checks_failed);
                tracing::debug!(backend = %name, failures = past.failures, error = %why, "health check failed");
                let down = past.failures >= cfg.monitor.failures_before_down;
                (if down { Health::Down } else { pool.health() }, None)
            }
        }
    };
    drop(history);
    for peer in &shard.peers {
        let _ = peer.send(ControlMsg::Health {
            backend: name.clone(),
            login: Box::new(login.clone()),
            health,
            read_only: seen.as_ref().map_or(pool.is_read_only(), |c| c.read_only),
            lag: seen.as_ref().map_or(pool.lag(), |c| c.lag),
            seen: seen.is_some(),
            max_prepared: seen.as_ref().and_then(|c| c.max_prepared),
            login_status: seen.as_ref().map(|c| c.login_status),
            server_extended: seen.as_ref().map(|c| c.server_extended),
            down_reason: down_reason.clone(),
            galera_cluster: seen.as_ref().map_or_else(
                || pool.galera_cluster().map(|c| c.to_string()),
                |c| c.galera_cluster.clone(),
            ),
        });
    }
}

async fn check(
    spec: &crate::pool::conn::BackendSpec,
    slots: &Rc<Cell<usize>>,
    timeout: Duration,
    donors_serve: bool,
) -> Result<Check, BackendError> {
    let (mut conn, _) = crate::pool::conn::BackendConnection::open(
        spec,
        BackendId(0),
        PoolKey::DEFAULT,
        SlotGuard::take(slots),
        timeout,
    )
    .await?;
    let login_status = conn.status;
    let server_extended = conn.server_extended;
    // The check as a whole has `monitor.timeout` (the caller's); this only
    // names it, should a statement's own deadline pass first.
    conn.own_deadline.set(crate::pool::conn::Deadline {
        limit: timeout,
        key: "monitor.timeout",
    });
    let (_, rows) = conn
        .query_rows("SELECT @@read_only, @@global.max_prepared_stmt_count")
        .await?;
    let row = rows.first();
    let read_only = row
        .and_then(|r| r.first().cloned().flatten())
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"));
    let max_prepared = row
        .and_then(|r| r.get(1).cloned().flatten())
        .and_then(|v| v.parse().ok());
    // MariaDB lists named (multi-source) connections only in SHOW ALL
    // SLAVES STATUS; MySQL lists every channel in SHOW SLAVE STATUS and
    // knows no ALL. Without the privilege (REPLICATION CLIENT / SLAVE
    // MONITOR) the lag is unknown, which is not a failure of the backend.
    let mut lag = None;
    let mut lag_refused = true;
    for sql in ["SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS"] {
        match conn.query_rows(sql).await {
            Ok((cols, rows)) => {
                lag = replica_lag(&cols, &rows, !read_only);
                lag_refused = false;
                break;
            }
            Err(BackendError::Refused(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    let (galera_unavailable, galera_cluster) = galera_state(&mut conn, donors_serve).await?;
    Ok(Check {
        read_only,
        lag,
        lag_refused,
        max_prepared,
        login_status,
        server_extended,
        galera_unavailable,
        galera_cluster,
    })
}

/// The Galera status variables a check reads (a server without Galera, or
/// MySQL, has none of them set: `wsrep_provider_name` is empty or absent).
const GALERA_STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
     ('wsrep_provider_name', 'wsrep_ready', 'wsrep_cluster_status', \
      'wsrep_local_state', 'wsrep_local_state_comment', 'wsrep_cluster_state_uuid')";

/// Why the Galera node behind `conn` may not serve, if it is one (see
/// [`galera_verdict`]), and its cluster's state UUID, if it is a Galera
/// node.
async fn galera_state(
    conn: &mut BackendConn,
    donors_serve: bool,
) -> Result<(Option<String>, Option<String>), BackendError> {
    let rows = match conn.query_rows(GALERA_STATUS).await {
        Ok((_, rows)) => rows,
        // Not a verdict on the backend: it keeps its other checks' one.
        Err(BackendError::Refused(_)) => return Ok((None, None)),
        Err(e) => return Err(e),
    };
    let mut vars: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|r| {
            let mut r = r.into_iter();
            Some((r.next()??, r.next().flatten().unwrap_or_default()))
        })
        .collect();
    let galera = vars
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("wsrep_provider_name") && !v.is_empty());
    if galera && galera_verdict(&vars, donors_serve).is_none() {
        // A node taken out for maintenance stays synced and answers this
        // check (a statement without a table), but refuses the clients'
        // statements: a system variable, not a status one, so one more
        // round trip, on Galera nodes only.
        match conn.query_rows("SELECT @@global.wsrep_reject_queries").await {
            Ok((_, rows)) => {
                if let Some(v) = rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next().flatten())
                {
                    vars.push(("wsrep_reject_queries".into(), v));
                }
            }
            Err(BackendError::Refused(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let cluster = galera
        .then(|| {
            vars.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("wsrep_cluster_state_uuid"))
                .map(|(_, v)| v.clone())
        })
        .flatten()
        .filter(|v| !v.is_empty());
    Ok((galera_verdict(&vars, donors_serve), cluster))
}

/// Why a Galera node with these status variables may not serve: it is not
/// ready (`wsrep_ready`), not in the primary component (a partition that
/// lost quorum refuses statements), not synced (joining, joined, or a
/// donor or desynced node, which lags the cluster), or rejects queries
/// (`wsrep_reject_queries` other than NONE: taken out for maintenance).
/// `None` for a synced node, and for a server without a Galera provider.
/// With `donors_serve` (`monitor.galera_donors_serve`), a donor or
/// desynced node (`wsrep_local_state` 2) serves too.
fn galera_verdict(vars: &[(String, String)], donors_serve: bool) -> Option<String> {
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("wsrep_provider_name").is_none_or(str::is_empty) {
        return None;
    }
    // The cause before what it implies: a node out of the primary
    // component, or joining, is also not ready, and "not ready" alone
    // would not tell the operator that quorum was lost.
    let status = get("wsrep_cluster_status").unwrap_or("unknown");
    if !status.eq_ignore_ascii_case("Primary") {
        return Some(format!("Galera node out of the primary component ({status})"));
    }
    let state = get("wsrep_local_state");
    if state != Some("4") && !(donors_serve && state == Some("2")) {
        let comment = get("wsrep_local_state_comment").unwrap_or("unknown");
        return Some(format!("Galera node not synced ({comment})"));
    }
    if !get("wsrep_ready").is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
        return Some("Galera node not ready (wsrep_ready OFF)".into());
    }
    match get("wsrep_reject_queries") {
        Some(v) if !v.eq_ignore_ascii_case("NONE") => {
            Some(format!("Galera node rejects queries (wsrep_reject_queries {v})"))
        }
        _ => None,
    }
}

/// The worst Seconds_Behind_Master over every replication connection (a
/// stopped or broken one counts as lagging for ever on a read-only
/// server); `None` on a primary (no rows).
///
/// On a `writable` server a stopped or broken connection does not count:
/// that is a primary promoted in a failover that kept its replication
/// connection (`STOP SLAVE` without `RESET SLAVE ALL`, or one still
/// retrying the old primary). Its data is the newest there is, and
/// counting it as lagging for ever would keep every read away from it.
fn replica_lag(cols: &[String], rows: &[Vec<Option<String>>], writable: bool) -> Option<Duration> {
    let i = cols.iter().position(|c| c == "Seconds_Behind_Master")?;
    rows.iter()
        .filter_map(
            |row| match row.get(i).cloned().flatten().and_then(|v| v.parse::<u64>().ok()) {
                Some(secs) => Some(Duration::from_secs(secs)),
                None if writable => None,
                None => Some(BROKEN_REPLICATION_LAG),
            },
        )
        .max()
}

#[cfg(test)]
mod tests {
    #[test]
    fn monitor_galera_node_serves_only_ready_primary_and_synced() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let synced = [
            ("wsrep_provider_name", "Galera"),
            ("wsrep_ready", "ON"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_local_state", "4"),
            ("wsrep_local_state_comment", "Synced"),
        ];
        assert_eq!(super::galera_verdict(&vars(&synced), false), None);
        // MariaDB without a provider reports wsrep_ready OFF: not Galera.
        let plain = [("wsrep_provider_name", ""), ("wsrep_ready", "OFF")];
        assert_eq!(super::galera_verdict(&vars(&plain), false), None);
        assert_eq!(super::galera_verdict(&[], false), None, "MySQL");
        let with = |name: &str, value: &str| {
            let mut v = vars(&synced);
            v.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.into();
            super::galera_verdict(&v, false)
        };
        assert_eq!(
            with("wsrep_ready", "OFF").as_deref(),
            Some("Galera node not ready (wsrep_ready OFF)")
        );
        assert_eq!(
            with("wsrep_cluster_status", "non-Primary").as_deref(),
            Some("Galera node out of the primary component (non-Primary)")
        );
        // As a node that lost quorum, or is joining, reports itself: the
        // cause is named, not the readiness it takes away.
        let alone = [
            ("wsrep_provider_name", "Galera"),
            ("wsrep_ready", "OFF"),
            ("wsrep_cluster_status", "non-Primary"),
            ("wsrep_local_state", "0"),
            ("wsrep_local_state_comment", "Initialized"),
        ];
        assert_eq!(
            super::galera_verdict(&vars(&alone), false).as_deref(),
            Some("Galera node out of the primary component (non-Primary)")
        );
        let joining = [
            ("wsrep_provider_name", "Galera"),
            ("wsrep_ready", "OFF"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_local_state", "1"),
            ("wsrep_local_state_comment", "Joining: receiving State Transfer"),
        ];
        assert_eq!(
            super::galera_verdict(&vars(&joining), false).as_deref(),
            Some("Galera node not synced (Joining: receiving State Transfer)")
        );
        let mut rejecting = vars(&synced);
        rejecting.push(("wsrep_reject_queries".into(), "ALL".into()));
        assert_eq!(
            super::galera_verdict(&rejecting, false).as_deref(),
            Some("Galera node rejects queries (wsrep_reject_queries ALL)")
        );
        rejecting.last_mut().unwrap().1 = "NONE".into();
        assert_eq!(super::galera_verdict(&rejecting, false), None);
        let mut donor = vars(&synced);
        donor[3].1 = "2".into();
        donor[4].1 = "Donor/Desynced".into();
        assert_eq!(
            super::galera_verdict(&donor, false).as_deref(),
            Some("Galera node not synced (Donor/Desynced)")
        );
        assert_eq!(super::galera_verdict(&donor, true), None, "galera_donors_serve");
    }

    use super::*;

    #[test]
    fn monitor_local_shortage_is_not_a_backend_failure() {
        let emfile = BackendError::Io(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert!(emfile.local_shortage());
        let refused = BackendError::Io(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert!(!refused.local_shortage());
    }

    #[test]
    fn monitor_replica_lag_from_slave_status() {
        let cols = vec!["Slave_IO_State".to_string(), "Seconds_Behind_Master".to_string()];
        assert_eq!(replica_lag(&cols, &[], false), None, "a primary has no rows");
        let row = vec![Some("Waiting".into()), Some("7".into())];
        assert_eq!(replica_lag(&cols, &[row], false), Some(Duration::from_secs(7)));
        let broken = vec![Some("".into()), None];
        assert_eq!(
            replica_lag(&cols, std::slice::from_ref(&broken), false),
            Some(BROKEN_REPLICATION_LAG)
        );
        // Several connections (multi-source): the worst counts.
        let fresh = vec![Some("Waiting".into()), Some("0".into())];
        let behind = vec![Some("Waiting".into()), Some("12".into())];
        assert_eq!(
            replica_lag(&cols, &[fresh.clone(), behind], false),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            replica_lag(&cols, &[fresh.clone(), broken.clone()], false),
            Some(BROKEN_REPLICATION_LAG)
        );
        // A writable server (a promoted primary): a stopped connection is
        // no lag; a running one's lag still counts.
        assert_eq!(replica_lag(&cols, std::slice::from_ref(&broken), true), None);
        assert_eq!(replica_lag(&cols, &[fresh, broken], true), Some(Duration::ZERO));
    }
}
