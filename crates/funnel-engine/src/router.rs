//! Choosing a backend within a hostgroup: skip backends that are down,
//! draining, over their replication-lag limit, or (for writes) read-only;
//! prefer ones not backing off after failed connects; then take the ones
//! with the fewest outstanding commands for their weight ([`load_level`]),
//! and choose among them by smooth weighted round-robin, so weights hold
//! whether the pool is idle or busy.

use std::rc::Rc;

use crate::pool::{Health, Pool, Service};

/// Whether a command may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A read-only statement (replicas are fine).
    Read,
    /// A statement that changes no data but belongs where writes go (a
    /// `SET`, `USE`, a read that may open a transaction): a writable
    /// server when the hostgroup has one (up or not), else a read-only one.
    PreferWrite,
    /// A statement whose whole effect Funnel tracks (a `SET` of literals,
    /// `USE`): it opens no transaction and leaves nothing that could keep
    /// the session on that server, so where it runs matters only for its
    /// validity. A writable server when one can take it, else any.
    Session,
    /// Anything else.
    Write,
}

/// The backend a command in `hostgroup` should use, if any can take it;
/// pools whose id is in `skip` already failed this command.
///
/// Runs on every command, so it allocates nothing: with one backend that
/// can serve (the common shape), one pass finds it; with more, further
/// passes find the candidates' lowest load and spend the round-robin
/// credit.
pub fn pick(pools: &[Rc<Pool>], hostgroup: &str, access: Access, skip: &[u32]) -> Option<Rc<Pool>> {
    if access == Access::PreferWrite {
        // A read-only server serves only a hostgroup with no writable one
        // at all: one merely down or drained is waited for like a write's.
        // Else a read with autocommit off would open its transaction on a
        // replica (a failed multi-statement SET would pin there) and the
        // session's next writes follow it there, past `read_only` for an
        // account that may write anyway.
        let has_writable = pools.iter().any(|p| {
            p.placement().hostgroup == hostgroup && p.service() != Service::Retired && !p.is_read_only()
        });
        let access = if has_writable { Access::Write } else { Access::Read };
        return pick(pools, hostgroup, access, skip);
    }
    if access == Access::Session {
        return pick(pools, hostgroup, Access::Write, skip)
            .or_else(|| pick(pools, hostgroup, Access::Read, skip));
    }
    // The common shape, one backend that can serve: nothing to weigh.
    let mut able = pools
        .iter()
        .filter(|p| !skip.contains(&p.id) && usable(pools, p, hostgroup, access));
    let (first, second) = (able.next(), able.next());
    match (first, second) {
        (None, _) => return None,
        (Some(only), None) => {
            return (access != Access::Write || only.seen()).then(|| only.clone());
        }
        _ => {}
    }
    // A backend not yet checked by the health monitor (just started or just
    // added) might be a read-only replica or a lagging one. A write never
    // goes to one (its checkout waits for the verdict, see
    // [`awaiting_first_check`]); a read does only when the hostgroup has no
    // checked backend that can serve.
    let any_checked = access == Access::Write
        || pools
            .iter()
            .any(|p| !skip.contains(&p.id) && usable(pools, p, hostgroup, access) && p.seen());
    let usable = |p: &&Rc<Pool>| {
        !skip.contains(&p.id) && usable(pools, p, hostgroup, access) && (!any_checked || p.seen())
    };
    // Weights count relative to the lightest candidate: equal weights, of
    // whatever size, compare bare outstanding counts.
    let lightest = pools
        .iter()
        .filter(usable)
        .map(|p| p.placement().weight.max(1))
        .min()
        .unwrap_or(1);
    let load_level = |p: &Pool| load_level(p, lightest);
    // Prefer pools not backing off after failed connects, when there are any.
    let mut any_settled = false;
    let mut least_settled = usize::MAX;
    let mut least_any = usize::MAX;
    for p in pools.iter().filter(usable) {
        let load = load_level(p);
        least_any = least_any.min(load);
        if !p.backing_off() {
            any_settled = true;
            least_settled = least_settled.min(load);
        }
    }
    let least = if any_settled { least_settled } else { least_any };
    let tied = |p: &&Rc<Pool>| usable(p) && (!any_settled || !p.backing_off()) && load_level(p) == least;
    smooth_weighted(pools.iter().filter(tied)).cloned()
}

/// How busy a backend is for its weight: its outstanding commands in
/// whole multiples of its weight relative to the `lightest` candidate's. A
/// weight-3 backend with up to 2 commands running is as free as an idle
/// weight-1 one, and the round-robin between them keeps to the weights; one
/// that fell behind (a slow server piling up commands) reaches a higher
/// level and is passed over until it catches up. Comparing bare counts
/// instead made every weight 1:1 under any concurrency, since the heavier
/// backend is busy more often. Between equal weights (all 1, or all 100)
/// the level is the bare count: the least busy backend is taken.
fn load_level(p: &Pool, lightest: u32) -> usize {
    p.outstanding() * lightest as usize / p.placement().weight.max(1) as usize
}

/// True when a command of `access` that found no backend in `hostgroup`
/// would find one once the monitor has given its first verdict: a backend
/// there is in service and up, but not checked yet (Funnel just started, or
/// the backend was just added or undrained).
pub fn awaiting_first_check(pools: &[Rc<Pool>], hostgroup: &str, access: Access) -> bool {
    access != Access::Read
        && pools.iter().any(|p| {
            p.placement().hostgroup == hostgroup
                && p.service() == Service::InService
                && p.health() == Health::Up
                && !p.seen()
        })
}

fn usable(pools: &[Rc<Pool>], p: &Pool, hostgroup: &str, access: Access) -> bool {
    let placement = p.placement();
    placement.hostgroup == hostgroup
        && p.health() == Health::Up
        && !p.is_draining()
        && !(access == Access::Write && (p.is_read_only() || !among_writers(pools, p)))
        // Lag matters to reads: a server that takes writes (a promoted
        // primary with a leftover replication connection) still takes them.
        && !(access == Access::Read
            && matches!((placement.max_lag, p.lag()), (Some(max), Some(lag)) if lag > max))
}

/// True when `p` takes its hostgroup's writes now (what `SHOW SERVERS`
/// shows): up, in service, writable, checked, and among the active
/// writers.
pub(crate) fn takes_writes(pools: &[Rc<Pool>], p: &Pool) -> bool {
    let hostgroup = p.placement().hostgroup.clone();
    p.seen() && usable(pools, p, &hostgroup, Access::Write)
}

/// True when `p`, a writable backend, is one of its hostgroup's active
/// writers: every one when the hostgroup has no `max_writers`, else the
/// first that many of those that may take writes now (up, in service,
/// writable, checked by the health monitor), by weight, then by their
/// order under `backends`. Every core ranks them alike from the same
/// health verdicts, so all send a hostgroup's writes to the same
/// servers. A connect that fails does not move writes to the next one;
/// the monitor's verdict that the server is down does.
///
/// A server ranked ahead that awaits its first verdict (Funnel just
/// started, or it was just added or undrained) keeps its place: writes
/// wait for that verdict (see [`awaiting_first_check`]) rather than go to
/// one behind it, which would give them up again a moment later (two
/// writers in a row, what `max_writers` is for). A verdict, good or bad,
/// ends the wait.
/// True when a write would not go to `p`'s server now: the health monitor
/// has not checked it yet (a write waits for that verdict, so a held
/// connection there must not take one either: an unchecked replica a read
/// pinned the session to took its writes, past `read_only` for an account
/// that may write anyway), it is read-only, or its hostgroup's
/// `max_writers` leaves it out.
pub(crate) fn refuses_writes(pools: &[Rc<Pool>], p: &Pool) -> bool {
    !p.seen() || p.is_read_only() || !among_writers(pools, p)
}

pub(crate) fn among_writers(pools: &[Rc<Pool>], p: &Pool) -> bool {
    let placement = p.placement();
    let max = placement.max_writers as usize;
    if max == 0 {
        return true;
    }
    let in_line = |q: &Pool| {
        q.placement().hostgroup == placement.hostgroup && q.health() == Health::Up && !q.is_draining()
    };
    let may_write = |q: &Pool| in_line(q) && !q.is_read_only() && q.seen();
    let holds_place = |q: &Pool| may_write(q) || (in_line(q) && q.last_check().is_none());
    let ahead = |q: &Pool| {
        let (a, b) = (q.placement(), &placement);
        (std::cmp::Reverse(a.weight), a.rank) < (std::cmp::Reverse(b.weight), b.rank)
    };
    may_write(p) && pools.iter().filter(|q| holds_place(q) && ahead(q)).count() < max
}

/// nginx's smooth weighted round-robin: each candidate gains its weight,
/// the richest is chosen and pays the total. Over any window the picks
/// follow the weights, interleaved rather than in runs.
fn smooth_weighted<'a>(candidates: impl Iterator<Item = &'a Rc<Pool>>) -> Option<&'a Rc<Pool>> {
    let mut total = 0i64;
    let mut best: Option<&'a Rc<Pool>> = None;
    for p in candidates {
        let weight = i64::from(p.placement().weight.max(1));
        total += weight;
        let cur = p.wrr_current();
        cur.set(cur.get() + weight);
        if best.is_none_or(|b| cur.get() > b.wrr_current().get()) {
            best = Some(p);
        }
    }
    let chosen = best?;
    chosen.wrr_current().set(chosen.wrr_current().get() - total);
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::conn::BackendSpec;
    use crate::pool::{Placement, PoolLimits};
    use crate::stats::Stats;
    use std::time::Duration;

    fn pool(id: u32, hostgroup: &str, weight: u32) -> Rc<Pool> {
        let pool = unchecked_pool(id, hostgroup, weight);
        pool.mark_seen();
        pool
    }

    /// A checked pool of `hostgroup` `w` with `max_writers`, at `rank` under `backends`.
    fn writer(id: u32, weight: u32, rank: usize, max_writers: u32) -> Rc<Pool> {
        let pool = placed_pool(id, "w", weight, rank, max_writers);
        pool.mark_seen();
        pool
    }

    /// A server the monitor has not checked yet takes no write, held
    /// connection or not: a session a read pinned there (state a function
    /// set, reported by the server) sent its writes to what was an
    /// unchecked read-only replica (the suite's
    /// `backends_state_reported_by_a_replica_never_reaches_another_client`,
    /// under load).
    #[test]
    fn router_an_unchecked_server_refuses_writes() {
        let unchecked = unchecked_pool(1, "w", 1);
        let checked = pool(2, "w", 1);
        let pools = [unchecked.clone(), checked.clone()];
        assert!(refuses_writes(&pools, &unchecked));
        assert!(!refuses_writes(&pools, &checked));
        unchecked.mark_seen();
        assert!(!refuses_writes(&pools, &unchecked));
    }

    fn unchecked_pool(id: u32, hostgroup: &str, weight: u32) -> Rc<Pool> {
        placed_pool(id, hostgroup, weight, id as usize, 0)
    }

    fn placed_pool(id: u32, hostgroup: &str, weight: u32, rank: usize, max_writers: u32) -> Rc<Pool> {
        let spec = BackendSpec {
            name: format!("b{id}"),
            addr: "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap().into(),
            user: "u".into(),
            password: String::new(),
            tls: None,
        };
        let placement = Placement {
            hostgroup: hostgroup.into(),
            weight,
            max_lag: Some(Duration::from_secs(10)),
            rank,
            max_writers,
        };
        let limits = PoolLimits {
            max: 4,
            min_idle: 0,
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            max_lifetime: Duration::ZERO,
            wait_timeout: Duration::from_secs(1),
            max_waiting: 10,
        };
        Pool::new(id, spec, placement, limits, Rc::new(Stats::default()))
    }

    #[test]
    fn router_max_writers_sends_writes_to_the_first_writable_backends_only() {
        // Ranked by weight, then place: 3 (weight 2), then 1, then 2.
        let pools = vec![writer(1, 1, 0, 1), writer(2, 1, 1, 1), writer(3, 2, 2, 1)];
        let write = |pools: &[Rc<Pool>]| pick(pools, "w", Access::Write, &[]).map(|p| p.id);
        for _ in 0..10 {
            assert_eq!(write(&pools), Some(3));
        }
        // Reads still spread over all of them.
        let mut read = [0; 4];
        for _ in 0..40 {
            read[pick(&pools, "w", Access::Read, &[]).unwrap().id as usize] += 1;
        }
        assert!(read[1] > 0 && read[2] > 0 && read[3] > 0, "{read:?}");
        // Down, read-only or drained, the next one takes the writes; a
        // failed connect (`skip`) moves nothing.
        assert_eq!(pick(&pools, "w", Access::Write, &[3]).map(|p| p.id), None);
        pools[2].set_health(Health::Down, false, None);
        assert_eq!(write(&pools), Some(1));
        pools[0].set_health(Health::Up, true, None);
        assert_eq!(write(&pools), Some(2));
        pools[1].drain();
        assert_eq!(write(&pools), None);
        // Back up, the first takes them again.
        pools[2].set_health(Health::Up, false, None);
        assert_eq!(write(&pools), Some(3));
        // Two writers: the first two by rank share the writes.
        let two = vec![writer(1, 1, 0, 2), writer(2, 1, 1, 2), writer(3, 1, 2, 2)];
        let mut counts = [0; 4];
        for _ in 0..40 {
            counts[write(&two).unwrap() as usize] += 1;
        }
        assert_eq!(counts, [0, 20, 20, 0]);
        // One ranked first and not checked yet (just started, added or
        // undrained) holds the writes back until its first verdict.
        let pools = vec![placed_pool(1, "w", 1, 0, 1), writer(2, 1, 1, 1)];
        assert_eq!(write(&pools), None);
        assert!(awaiting_first_check(&pools, "w", Access::Write));
        // A failed first check ends the wait: the next one writes.
        pools[0].set_health(Health::Up, false, None);
        assert_eq!(write(&pools), Some(2));
        // A good one makes it the writer.
        pools[0].mark_seen();
        assert_eq!(write(&pools), Some(1));
    }

    #[test]
    fn router_weights_hold_when_idle() {
        let pools = vec![pool(1, "r", 1), pool(2, "r", 3), pool(3, "w", 1)];
        let mut counts = [0; 4];
        for _ in 0..4000 {
            counts[pick(&pools, "r", Access::Read, &[]).unwrap().id as usize] += 1;
        }
        assert_eq!((counts[1], counts[2], counts[3]), (1000, 3000, 0));
    }

    /// Under load the weights still hold: a backend is as free as another
    /// while its outstanding commands, in multiples of its share, are as
    /// few; equal weights of any size take the least busy one.
    #[test]
    fn router_weights_hold_under_load_and_equal_weights_take_the_least_busy() {
        let pools = vec![pool(1, "r", 1), pool(2, "r", 3)];
        pools[1].fake_outstanding(2);
        let mut counts = [0; 3];
        for _ in 0..400 {
            counts[pick(&pools, "r", Access::Read, &[]).unwrap().id as usize] += 1;
        }
        assert_eq!((counts[1], counts[2]), (100, 300), "2 running on weight 3");
        pools[1].fake_outstanding(3);
        assert!((0..10).all(|_| pick(&pools, "r", Access::Read, &[]).unwrap().id == 1));
        let pools = vec![pool(1, "r", 100), pool(2, "r", 100)];
        pools[0].fake_outstanding(1);
        assert!((0..10).all(|_| pick(&pools, "r", Access::Read, &[]).unwrap().id == 2));
    }

    #[test]
    fn router_skips_down_draining_lagging_and_read_only_for_writes() {
        let pools = vec![pool(1, "r", 1), pool(2, "r", 1)];
        pools[0].set_health(Health::Down, false, None);
        assert!((0..10).all(|_| pick(&pools, "r", Access::Read, &[]).unwrap().id == 2));
        pools[0].set_health(Health::Up, false, None);
        pools[1].set_health(Health::Up, false, Some(Duration::from_secs(30)));
        assert!(
            (0..10).all(|_| pick(&pools, "r", Access::Read, &[]).unwrap().id == 1),
            "over its lag limit"
        );
        assert!(
            (0..10).any(|_| pick(&pools, "r", Access::Write, &[]).unwrap().id == 2),
            "lag keeps reads away, not writes"
        );
        pools[1].set_health(Health::Up, true, None);
        pools[0].drain();
        assert!(
            pick(&pools, "r", Access::Write, &[]).is_none(),
            "one draining, one read-only"
        );
        assert_eq!(pick(&pools, "r", Access::Read, &[]).unwrap().id, 2);
        assert!(
            pick(&pools, "r", Access::PreferWrite, &[]).is_none(),
            "the writable one is drained: a session statement waits for it"
        );
        assert!(pick(&pools, "nope", Access::Read, &[]).is_none());
    }

    #[test]
    fn router_prefer_write_takes_a_writable_backend_first() {
        let pools = vec![pool(1, "r", 1), pool(2, "r", 1)];
        pools[1].set_health(Health::Up, true, None);
        assert!((0..10).all(|_| pick(&pools, "r", Access::PreferWrite, &[]).unwrap().id == 1));
        pools[0].set_health(Health::Down, false, None);
        assert!(
            pick(&pools, "r", Access::PreferWrite, &[]).is_none(),
            "a writable one down is not replaced by a read-only one"
        );
        pools[0].set_health(Health::Up, true, None);
        assert!(
            (0..10).all(|_| pick(&pools, "r", Access::PreferWrite, &[]).is_some()),
            "no writable one: a read-only one takes a session statement"
        );
        pools[0].set_health(Health::Down, true, None);
        assert_eq!(pick(&pools, "r", Access::PreferWrite, &[]).unwrap().id, 2);
    }

    #[test]
    fn router_session_statement_takes_a_replica_while_the_writer_is_away() {
        let pools = vec![pool(1, "db", 1), pool(2, "db", 1)];
        pools[1].set_health(Health::Up, true, None);
        assert!((0..10).all(|_| pick(&pools, "db", Access::Session, &[]).unwrap().id == 1));
        pools[0].set_health(Health::Down, false, None);
        assert_eq!(
            pick(&pools, "db", Access::Session, &[]).map(|p| p.id),
            Some(2),
            "the writer is down: a tracked SET runs on the replica"
        );
        pools[0].set_health(Health::Up, false, None);
        pools[0].drain();
        assert_eq!(pick(&pools, "db", Access::Session, &[]).map(|p| p.id), Some(2));
        pools[1].drain();
        assert!(pick(&pools, "db", Access::Session, &[]).is_none());
    }

    /// A backend the monitor has not checked yet (it may be a read-only
    /// replica) takes no writes, and no reads while a checked one can
    /// serve them.
    #[test]
    fn router_prefers_backends_the_monitor_has_checked() {
        let pools: Vec<_> = (1..=3).map(|id| unchecked_pool(id, "db", 1)).collect();
        let picked = |access| {
            let mut ids: Vec<u32> = (0..12)
                .filter_map(|_| pick(&pools, "db", access, &[]).map(|p| p.id))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        assert_eq!(picked(Access::Write), Vec::<u32>::new(), "nothing checked yet");
        assert!(awaiting_first_check(&pools, "db", Access::Write));
        assert!(awaiting_first_check(&pools, "db", Access::PreferWrite));
        assert!(!awaiting_first_check(&pools, "db", Access::Read));
        assert_eq!(picked(Access::Read), vec![1, 2, 3], "reads take any");
        assert_eq!(picked(Access::Session), vec![1, 2, 3], "as do tracked SETs");
        pools[0].set_health(Health::Up, false, None);
        assert_eq!(
            picked(Access::Write),
            Vec::<u32>::new(),
            "a failed check sees nothing"
        );
        pools[0].mark_seen();
        assert_eq!(picked(Access::Write), vec![1]);
        assert_eq!(picked(Access::Read), vec![1]);
        pools[1].set_health(Health::Up, true, None);
        pools[1].mark_seen();
        assert_eq!(
            picked(Access::Write),
            vec![1],
            "the checked replica takes no writes"
        );
        assert_eq!(picked(Access::Read), vec![1, 2]);
    }
}
