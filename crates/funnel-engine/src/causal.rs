//! Causal reads (read-your-writes across the read/write split): what a
//! session committed, as MariaDB GTIDs, and what a replica is known to
//! have applied.
//!
//! After a write, a session of a user with `causal_reads` reads the GTID
//! its connection last committed (`@@last_gtid`) before it lets the
//! connection go. A read that the split sends to a replica first waits
//! there for that position (`MASTER_GTID_WAIT`); one the replica does not
//! reach in time runs on the writer instead. MariaDB numbers each
//! domain's transactions in order, so one position per domain says all.
//!
//! Galera nodes replicate among themselves without binary-log replication
//! (each node's binary log, if it has one, numbers its GTIDs its own way
//! unless `wsrep_gtid_mode` is on), so a write through one node is tracked
//! apart, as its cluster's wsrep GTID (`WSREP_LAST_WRITTEN_GTID()`): every
//! node numbers the cluster's transactions alike, one domain and server
//! for the whole cluster, and commits them in that order. A read on
//! another node of the cluster first waits there for it
//! (`WSREP_SYNC_WAIT_UPTO_GTID`); the node written through has it.
//!
//! A user with `causal_reads: universal` waits for more than its own
//! session's writes: for every write any client committed before the read
//! arrived. Before such a read goes to a replica, the writer's whole
//! binary-log position (`@@global.gtid_binlog_pos`) is read, after the
//! read arrived, and the replica waits for that. The reads of a core that
//! arrived before one such position read was sent share it
//! ([`PositionReads`]). A Galera node waits with Galera's own causal wait
//! (`wsrep_sync_wait`), which covers all the cluster ordered.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::ids::BackendId;

/// One domain's transaction: `domain-server-sequence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gtid {
    /// The replication domain (`gtid_domain_id`).
    pub domain: u32,
    /// The server that committed it (`server_id`).
    pub server: u32,
    /// Its place in the domain's order.
    pub seq: u64,
}

impl Gtid {
    /// Reads one `domain-server-sequence`; `None` for text that is not one.
    pub fn parse(text: &str) -> Option<Gtid> {
        let mut parts = text.trim().split('-');
        let gtid = Gtid {
            domain: parts.next()?.parse().ok()?,
            server: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(gtid)
    }

    /// True when `other` is of the same domain and server, and no later.
    pub fn covers(&self, other: &Gtid) -> bool {
        self.same_source(other) && self.seq >= other.seq
    }

    /// True when both are numbered by the same domain and server.
    pub fn same_source(&self, other: &Gtid) -> bool {
        self.domain == other.domain && self.server == other.server
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A GTID position: the latest transaction of each domain, as MariaDB
/// writes it (`0-1-42,1-3-7`). Empty when nothing is wanted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidPos(Vec<Gtid>);

impl GtidPos {
    /// Reads MariaDB's list form; `None` for text that is not one. An
    /// empty (or blank) text is the empty position: a server without a
    /// binary log gives it.
    pub fn parse(text: &str) -> Option<GtidPos> {
        let mut pos = GtidPos::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            pos.add(Gtid::parse(item)?);
        }
        Some(pos)
    }

    /// True when nothing is wanted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `gtid`, keeping the later transaction of its domain.
    fn add(&mut self, gtid: Gtid) {
        match self.0.iter_mut().find(|g| g.domain == gtid.domain) {
            Some(known) if known.seq >= gtid.seq => {}
            Some(known) => *known = gtid,
            None => self.0.push(gtid),
        }
    }

    /// Adds every domain's transaction of `other`.
    pub fn merge(&mut self, other: &GtidPos) {
        for g in &other.0 {
            self.add(*g);
        }
    }

    /// True when this position is at or past `other` in every domain
    /// `other` names.
    pub fn covers(&self, other: &GtidPos) -> bool {
        other.0.iter().all(|want| {
            self.0
                .iter()
                .any(|g| g.domain == want.domain && g.seq >= want.seq)
        })
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

/// The statement that waits for `pos` on a replica: 0 once applied, -1
/// when `timeout` passed first, NULL when the server cannot wait. Funnel's
/// reads say `LIMIT 1`: a session's `sql_select_limit = 0`, which its
/// connections take, would leave them without a row. The wait runs on a
/// pooled connection before the session's variables are put there: it
/// sets its own `max_statement_time`, so none of a session's cuts it.
pub fn wait_sql(pos: &GtidPos, timeout: std::time::Duration) -> String {
    format!(
        "SET STATEMENT max_statement_time = 0 FOR SELECT MASTER_GTID_WAIT('{pos}', {:.3}) LIMIT 1",
        timeout.as_secs_f64()
    )
}

/// The statement that waits on a Galera node until it has ordered the
/// cluster's `gtid` for commit: the node's own latest GTID (to check that
/// it numbers the cluster's transactions as `gtid` does: for any other
/// domain or server the server's function answers 1 at once, without a
/// wait), and 1 once ordered (see [`WSREP_SYNC_SQL`] for the commit);
/// ERR 1205 when `timeout` passed first. The server
/// counts whole seconds (a fraction is cut off, and 0 does not wait):
/// `timeout` is rounded up. The wait cannot be killed (`KILL QUERY` ends it
/// only at its timeout); like [`wait_sql`] it sets its own
/// `max_statement_time`.
pub fn wsrep_wait_sql(gtid: &Gtid, timeout: std::time::Duration) -> String {
    format!(
        "SET STATEMENT max_statement_time = 0 FOR SELECT WSREP_LAST_SEEN_GTID(), \
         WSREP_SYNC_WAIT_UPTO_GTID('{gtid}', {}) LIMIT 1",
        wsrep_wait_seconds(timeout)
    )
}

/// The statement that closes a [`wsrep_wait_sql`] that answered 1: that
/// answer comes once the node has ordered the transaction for commit
/// (`WSREP_LAST_SEEN_GTID()` reached it), which may be before its commit
/// shows (measured on MariaDB 10.11, two nodes on loopback, binary log
/// on: a read right after the wait missed the write 3 times in 3,000 with
/// `sync_binlog = 0`, 195 times in 1,500 with `sync_binlog = 1`). Galera's
/// own causal wait (`wsrep_sync_wait`) holds the statement until the node
/// has committed every transaction the cluster ordered before it, so the
/// session's write too (no miss in 6,000): it answers the node's latest
/// GTID, which must then be at or past the write's. Its timeout is the
/// provider's (`repl.causal_read_timeout`), and `KILL QUERY` does not end
/// it: Funnel's own deadline bounds it.
pub const WSREP_SYNC_SQL: &str =
    "SET STATEMENT max_statement_time = 0, wsrep_sync_wait = 1 FOR SELECT WSREP_LAST_SEEN_GTID() LIMIT 1";

/// True when `seen`, the node's latest GTID after [`WSREP_SYNC_SQL`], is
/// at or past `gtid`.
pub fn wsrep_caught_up(gtid: &Gtid, seen: Option<&str>) -> bool {
    seen.and_then(Gtid::parse).is_some_and(|seen| seen.covers(gtid))
}

/// `timeout` in the whole seconds `WSREP_SYNC_WAIT_UPTO_GTID` counts,
/// rounded up (at least 1).
pub fn wsrep_wait_seconds(timeout: std::time::Duration) -> u64 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    secs.max(1)
}

/// True when the answer of [`wsrep_wait_sql`] for `gtid` (the node's own
/// latest GTID, then the function's result) says the node has committed it.
pub fn wsrep_waited(gtid: &Gtid, seen: Option<&str>, result: Option<&str>) -> bool {
    seen.and_then(Gtid::parse)
        .is_some_and(|seen| seen.same_source(gtid))
        && result == Some("1")
}

/// The statement that reads the writer's position for a universal causal
/// read: on a Galera node (`galera`) once the node has committed all the
/// cluster ordered (`wsrep_sync_wait`, which may wait: it sets its own
/// `max_statement_time`), so the position covers writes through the other
/// nodes too.
pub fn position_sql(galera: bool) -> &'static str {
    if galera {
        "SET STATEMENT max_statement_time = 0, wsrep_sync_wait = 1 FOR \
         SELECT @@global.gtid_binlog_pos LIMIT 1"
    } else {
        "SELECT @@global.gtid_binlog_pos LIMIT 1"
    }
}

/// One core's reads of writers' GTID positions for `causal_reads:
/// universal` reads, by default hostgroup. A position read sent before a
/// read arrived may miss a write committed in between: a read takes only
/// one sent after it arrived. So reads that arrive while one is on its way
/// gather in the next, which one of them (the leader) sends once the one
/// on its way is answered (one at a time per hostgroup: under load, one
/// round trip on the writer serves every read of the core that came
/// during the previous one).
#[derive(Debug, Default)]
pub struct PositionReads {
    by_hostgroup: RefCell<Vec<(Rc<str>, Pending)>>,
}

/// A hostgroup's position reads under way.
#[derive(Debug, Default)]
struct Pending {
    /// Gathering reads, not sent yet: its leader sends it.
    open: Option<Rc<Batch>>,
    /// Sent, not answered yet.
    sent: Option<Rc<Batch>>,
}

/// One position read and the reads waiting for its answer.
#[derive(Debug, Default)]
struct Batch {
    answer: RefCell<Option<Answer>>,
    wakers: RefCell<Vec<Waker>>,
}

/// What a position read told the reads that waited for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The writer's position.
    Read(GtidPos),
    /// It could not be read (no writer connection, not MariaDB, the
    /// writer failed or was too slow): the reads go to the writer.
    Unreadable,
    /// Its leader went (killed, its client gone) before it was answered:
    /// each read takes another turn.
    Abandoned,
    /// Its leader's wait for a writer connection ran out: the reads that
    /// joined it, which waited as long, fail as it did (not each after a
    /// wait of its own for a writer connection, that timeout again).
    WaitedOut(WaitedOut),
}

/// A wait for a writer connection that ran out, as [`Answer::WaitedOut`]
/// tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitedOut {
    /// `backlog.wait_timeout` passed with no connection free (ERR 9001).
    Backlog {
        /// How long the leader waited.
        waited: std::time::Duration,
        /// The pool's size limit on this core.
        max: usize,
        /// Commands waiting on this core then.
        waiting: usize,
    },
    /// A `PAUSE` outlasted the wait (ERR 9006).
    Paused {
        /// How long the leader waited.
        waited: std::time::Duration,
    },
}

impl Batch {
    fn settle(&self, answer: Answer) {
        let mut slot = self.answer.borrow_mut();
        if slot.is_some() {
            return;
        }
        *slot = Some(answer);
        drop(slot);
        for w in self.wakers.take() {
            w.wake();
        }
    }
}

/// A wait for a batch's answer.
#[derive(Debug)]
pub struct AnswerWait(Rc<Batch>);

impl Future for AnswerWait {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        if let Some(a) = self.0.answer.borrow().clone() {
            return Poll::Ready(a);
        }
        let mut wakers = self.0.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A read's place in [`PositionReads`].
#[derive(Debug)]
pub enum Turn {
    /// A position read not sent yet, which another read leads: its answer.
    Join(AnswerWait),
    /// This read leads the next position read.
    Lead(Leader),
}

/// The read that sends a batch's position read. Dropped before it
/// answers, its batch is abandoned: the reads that joined take another turn.
#[derive(Debug)]
pub struct Leader {
    reads: Rc<PositionReads>,
    hostgroup: Rc<str>,
    batch: Rc<Batch>,
    /// The position read on its way when this batch opened.
    previous: Option<Rc<Batch>>,
}

impl PositionReads {
    /// A universal read of a user of `hostgroup` arrived: it joins the
    /// position read that is not sent yet, or leads a new one.
    pub fn turn(self: &Rc<Self>, hostgroup: &Rc<str>) -> Turn {
        let mut all = self.by_hostgroup.borrow_mut();
        let i = match all.iter().position(|(h, _)| h == hostgroup) {
            Some(i) => i,
            None => {
                all.push((hostgroup.clone(), Pending::default()));
                all.len() - 1
            }
        };
        let pending = &mut all[i].1;
        if let Some(open) = &pending.open {
            return Turn::Join(AnswerWait(open.clone()));
        }
        let batch = Rc::new(Batch::default());
        pending.open = Some(batch.clone());
        Turn::Lead(Leader {
            reads: self.clone(),
            hostgroup: hostgroup.clone(),
            batch,
            previous: pending.sent.clone(),
        })
    }

    fn with<R>(&self, hostgroup: &str, f: impl FnOnce(&mut Pending) -> R) -> Option<R> {
        let mut all = self.by_hostgroup.borrow_mut();
        let i = all.iter().position(|(h, _)| &**h == hostgroup)?;
        let r = f(&mut all[i].1);
        if all[i].1.open.is_none() && all[i].1.sent.is_none() {
            all.swap_remove(i);
        }
        Some(r)
    }
}

impl Leader {
    /// The answer of the position read that was on its way when this one
    /// opened, if any: this one is sent after it (the reads gathering
    /// meanwhile share this one).
    pub fn previous(&self) -> Option<AnswerWait> {
        self.previous
            .as_ref()
            .filter(|b| b.answer.borrow().is_none())
            .map(|b| AnswerWait(b.clone()))
    }

    /// The position read goes out now: reads that arrive from now on
    /// gather in the next one.
    pub fn sending(&mut self) {
        self.previous = None;
        let batch = self.batch.clone();
        self.reads.with(&self.hostgroup, |p| {
            if p.open.as_ref().is_some_and(|b| Rc::ptr_eq(b, &batch)) {
                p.open = None;
            }
            p.sent = Some(batch);
        });
    }

    /// Gives every read that joined the answer (and this one's leader
    /// role ends).
    pub fn answer(self, answer: Answer) {
        self.batch.settle(answer);
        // Drop: leaves the hostgroup's state.
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Not answered: its reads take another turn.
        self.batch.settle(Answer::Abandoned);
        let batch = self.batch.clone();
        self.reads.with(&self.hostgroup, |p| {
            if p.open.as_ref().is_some_and(|b| Rc::ptr_eq(b, &batch)) {
                p.open = None;
            }
            if p.sent.as_ref().is_some_and(|b| Rc::ptr_eq(b, &batch)) {
                p.sent = None;
            }
        });
    }
}

/// A session's latest write to a Galera cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsrepWant {
    /// The cluster (`wsrep_cluster_state_uuid`, as the health monitor read
    /// it on the node written through).
    pub cluster: Rc<str>,
    /// The cluster's GTID of the write.
    pub gtid: Gtid,
    /// The pool of the node that committed it: Galera commits the
    /// cluster's transactions in order on every node, so that node has
    /// every earlier one too, and its reads need no wait.
    pub through: u32,
}

/// Writes of a session whose GTIDs are not read yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Unread {
    /// None: `wanted` is all the session committed.
    #[default]
    Nothing,
    /// On this connection, which the session still holds: its
    /// `@@last_gtid` is the session's latest commit.
    On(BackendId),
    /// On a connection the session let go (another client may have
    /// committed on it since), or on more than one: only the writer's
    /// whole binary-log position covers them.
    Scattered,
}

/// One session's causal-read state.
#[derive(Debug, Default)]
pub struct CausalState {
    /// What a replica must have applied before it serves the session a read.
    pub wanted: GtidPos,
    /// What a Galera node must have committed before it serves the session
    /// a read: the latest write, per cluster written to.
    pub wsrep: Vec<WsrepWant>,
    unread: Unread,
    /// The Galera cluster the unread writes went to, if they went to one,
    /// and the pool of the node they went through, if all went through one.
    unread_galera: Option<(Rc<str>, Option<u32>)>,
}

impl CausalState {
    /// A statement that may have written ran on the writer connection `conn`.
    pub fn wrote_on(&mut self, conn: BackendId) {
        self.unread = match self.unread {
            Unread::Nothing => Unread::On(conn),
            Unread::On(id) if id == conn => Unread::On(conn),
            _ => Unread::Scattered,
        };
    }

    /// A statement that may have written ran on a writer connection that
    /// is gone (its reply timed out or failed): only the writer's whole
    /// binary-log position covers it.
    pub fn wrote_on_lost(&mut self) {
        self.unread = Unread::Scattered;
    }

    /// The session takes a connection from the pool: the one it wrote on
    /// (if any) went back, and its `@@last_gtid` may be another client's.
    pub fn let_go(&mut self) {
        if let Unread::On(_) = self.unread {
            self.unread = Unread::Scattered;
        }
    }

    /// The unread writes went to the node of the Galera `cluster` in pool
    /// `through` too.
    pub fn wrote_to_cluster(&mut self, cluster: &Rc<str>, through: u32) {
        self.unread_galera = match self.unread_galera.take() {
            Some((known, node)) if known == *cluster => Some((known, node.filter(|&n| n == through))),
            _ => Some((cluster.clone(), Some(through))),
        };
    }

    /// While writes to the Galera `cluster` are unread: `Some` with the
    /// pool of the node they all went through (`None` when several: no
    /// node is known to have them all, and a read must first read them
    /// back where it runs, which waits for all the cluster ordered).
    pub fn unread_in(&self, cluster: &str) -> Option<Option<u32>> {
        match &self.unread_galera {
            Some((known, node)) if self.unread() && **known == *cluster => Some(*node),
            _ => None,
        }
    }

    /// While writes to a Galera cluster are unread: that cluster.
    pub fn unread_cluster(&self) -> Option<Rc<str>> {
        self.unread_galera
            .as_ref()
            .filter(|_| self.unread())
            .map(|(cluster, _)| cluster.clone())
    }

    /// True while a write's GTID is unread: no replica read can be
    /// checked, so reads run on the writer.
    pub fn unread(&self) -> bool {
        self.unread != Unread::Nothing
    }

    /// The statement that reads, on the writer connection `conn`, the
    /// position covering the unread writes; `None` when there are none.
    /// On a Galera node (`galera`) it reads the cluster's GTID too, in a
    /// second column: the connection's last (`WSREP_LAST_WRITTEN_GTID()`),
    /// or the node's latest after a wait for every transaction the cluster
    /// ordered so far (`wsrep_sync_wait`), which covers writes the session
    /// made through other nodes.
    pub fn read_back_sql(&self, conn: BackendId, galera: bool) -> Option<&'static str> {
        match (self.unread, galera) {
            (Unread::Nothing, _) => None,
            (Unread::On(id), false) if id == conn => Some("SELECT @@last_gtid LIMIT 1"),
            (Unread::On(id), true) if id == conn => {
                Some("SELECT @@last_gtid, WSREP_LAST_WRITTEN_GTID() LIMIT 1")
            }
            (_, false) => Some("SELECT @@global.gtid_binlog_pos LIMIT 1"),
            (_, true) => Some(
                "SET STATEMENT wsrep_sync_wait = 1 FOR \
                 SELECT @@global.gtid_binlog_pos, WSREP_LAST_SEEN_GTID() LIMIT 1",
            ),
        }
    }

    /// The read-back on a node of the Galera `cluster` (pool `through`)
    /// answered the cluster's `gtid` too. A sequence number 0 is no
    /// transaction (the connection committed none).
    pub fn read_wsrep(&mut self, cluster: &Rc<str>, gtid: Gtid, through: u32) {
        if gtid.seq == 0 {
            return;
        }
        let want = WsrepWant {
            cluster: cluster.clone(),
            gtid,
            through,
        };
        match self.wsrep.iter_mut().find(|w| w.cluster == *cluster) {
            Some(known) if known.gtid.covers(&gtid) => {}
            // A later write, or the cluster numbers its transactions anew.
            Some(known) => *known = want,
            None => self.wsrep.push(want),
        }
    }

    /// True when the session wrote to a Galera cluster (its GTID read or
    /// not) since it last started again.
    pub fn wrote_to_galera(&self) -> bool {
        !self.wsrep.is_empty() || self.unread_galera.is_some()
    }

    /// What a node of the Galera `cluster` must have committed.
    pub fn wsrep_for(&self, cluster: &str) -> Option<&WsrepWant> {
        self.wsrep.iter().find(|w| &*w.cluster == cluster)
    }

    /// True when no read needs to wait: nothing written, or nothing read.
    pub fn wants_nothing(&self) -> bool {
        self.wanted.is_empty() && self.wsrep.is_empty()
    }

    /// The read-back answered `pos`: every write so far is in `wanted`.
    pub fn read(&mut self, pos: &GtidPos) {
        self.wanted.merge(pos);
        self.unread = Unread::Nothing;
        self.unread_galera = None;
    }

    /// A new user, or a reload, gave the session other servers: it starts
    /// again with nothing to see.
    pub fn clear(&mut self) {
        *self = CausalState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> GtidPos {
        GtidPos::parse(s).unwrap()
    }

    #[test]
    fn causal_position_reads_are_shared_only_by_reads_that_came_before_they_were_sent() {
        use futures_lite::future::{block_on, poll_once};
        let reads = Rc::new(PositionReads::default());
        let (w, other): (Rc<str>, Rc<str>) = (Rc::from("writer"), Rc::from("other"));
        let Turn::Lead(mut a) = reads.turn(&w) else {
            panic!("the first read leads")
        };
        assert!(a.previous().is_none(), "nothing on its way");
        let Turn::Join(mut joined_a) = reads.turn(&w) else {
            panic!("not sent yet: joins")
        };
        let Turn::Lead(lone) = reads.turn(&other) else {
            panic!("another hostgroup's own")
        };
        assert!(block_on(poll_once(&mut joined_a)).is_none());
        a.sending();
        // Sent before this read arrived: it may miss a write committed
        // since, so the read leads the next, sent once `a` is answered.
        let Turn::Lead(mut b) = reads.turn(&w) else {
            panic!("a new batch")
        };
        let mut b_prev = b.previous().expect("waits for the one on its way");
        let Turn::Join(mut joined_b) = reads.turn(&w) else {
            panic!("joins b")
        };
        assert!(block_on(poll_once(&mut b_prev)).is_none());
        a.answer(Answer::Read(pos("0-1-5")));
        assert_eq!(block_on(joined_a), Answer::Read(pos("0-1-5")));
        assert_eq!(block_on(b_prev), Answer::Read(pos("0-1-5")));
        assert!(b.previous().is_none(), "answered");
        b.sending();
        assert!(block_on(poll_once(&mut joined_b)).is_none());
        // Its leader gone (killed) before the answer: the reads that
        // joined take another turn, and the state is clean again.
        drop(b);
        assert_eq!(block_on(joined_b), Answer::Abandoned);
        drop(lone);
        assert!(reads.by_hostgroup.borrow().is_empty());
        let Turn::Lead(c) = reads.turn(&w) else {
            panic!("leads anew")
        };
        assert!(c.previous().is_none());
        let Turn::Join(joined_c) = reads.turn(&w) else {
            panic!("joins c")
        };
        c.answer(Answer::Unreadable);
        assert_eq!(block_on(joined_c), Answer::Unreadable);
        assert!(reads.by_hostgroup.borrow().is_empty());
        let Turn::Lead(d) = reads.turn(&w) else {
            panic!("leads anew")
        };
        let Turn::Join(joined_d) = reads.turn(&w) else {
            panic!("joins d")
        };
        let out = WaitedOut::Paused {
            waited: std::time::Duration::from_secs(1),
        };
        d.answer(Answer::WaitedOut(out));
        assert_eq!(block_on(joined_d), Answer::WaitedOut(out));
        assert!(reads.by_hostgroup.borrow().is_empty());
    }

    #[test]
    fn causal_position_sql_waits_for_the_cluster_on_galera() {
        assert_eq!(position_sql(false), "SELECT @@global.gtid_binlog_pos LIMIT 1");
        assert_eq!(
            position_sql(true),
            "SET STATEMENT max_statement_time = 0, wsrep_sync_wait = 1 FOR \
             SELECT @@global.gtid_binlog_pos LIMIT 1"
        );
    }

    #[test]
    fn causal_gtid_positions_parse_and_print_as_mariadb_writes_them() {
        assert_eq!(pos("0-1-42").to_string(), "0-1-42");
        assert_eq!(pos(" 0-1-42,\n1-3-7 ").to_string(), "0-1-42,1-3-7");
        assert!(pos("").is_empty());
        for bad in ["0-1", "a-1-2", "0-1-2-3", "0-1-2,x", "-1-2"] {
            assert_eq!(GtidPos::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn causal_positions_merge_and_cover_per_domain() {
        let mut p = pos("0-1-5");
        p.merge(&pos("0-2-4,1-3-9"));
        assert_eq!(p.to_string(), "0-1-5,1-3-9");
        p.merge(&pos("0-2-6"));
        assert_eq!(p.to_string(), "0-2-6,1-3-9");
        assert!(p.covers(&pos("0-1-6")));
        assert!(p.covers(&pos("1-3-2")));
        assert!(p.covers(&GtidPos::default()));
        assert!(!p.covers(&pos("0-1-7")));
        assert!(!p.covers(&pos("2-1-1")), "a domain it never saw");
    }

    #[test]
    fn causal_state_reads_last_gtid_only_on_the_connection_it_still_holds() {
        let (a, b) = (BackendId(1), BackendId(2));
        let mut s = CausalState::default();
        assert_eq!(s.read_back_sql(a, false), None);
        s.wrote_on(a);
        assert!(s.unread());
        assert_eq!(s.read_back_sql(a, false), Some("SELECT @@last_gtid LIMIT 1"));
        assert_eq!(
            s.read_back_sql(b, false),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-3"));
        assert!(!s.unread());
        s.wrote_on(a);
        s.let_go();
        assert_eq!(
            s.read_back_sql(a, false),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-2"));
        assert_eq!(s.wanted.to_string(), "0-1-3", "an older position adds nothing");
        s.wrote_on(a);
        s.wrote_on(b);
        assert_eq!(
            s.read_back_sql(b, false),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-4"));
        s.wrote_on_lost();
        assert!(s.unread());
        assert_eq!(
            s.read_back_sql(a, false),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
    }

    #[test]
    fn causal_wait_statement_names_the_position_and_seconds() {
        assert_eq!(
            wait_sql(&pos("0-1-42,1-2-3"), std::time::Duration::from_millis(1500)),
            "SET STATEMENT max_statement_time = 0 FOR SELECT MASTER_GTID_WAIT('0-1-42,1-2-3', 1.500) LIMIT 1"
        );
    }

    #[test]
    fn causal_wsrep_gtids_parse_compare_and_wait_in_whole_seconds() {
        let g = Gtid::parse("0-11-42").unwrap();
        assert_eq!(g.to_string(), "0-11-42");
        for bad in ["", "0-11", "0-11-4,0-11-5", "0-x-1", "0-1-2-3"] {
            assert_eq!(Gtid::parse(bad), None, "{bad}");
        }
        assert!(g.covers(&Gtid::parse("0-11-41").unwrap()));
        assert!(!g.covers(&Gtid::parse("0-11-43").unwrap()));
        assert!(
            !g.covers(&Gtid::parse("0-12-1").unwrap()),
            "another server's numbering"
        );
        use std::time::Duration;
        assert_eq!(wsrep_wait_seconds(Duration::from_millis(200)), 1);
        assert_eq!(wsrep_wait_seconds(Duration::from_secs(1)), 1);
        assert_eq!(wsrep_wait_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(
            wsrep_wait_sql(&g, Duration::from_millis(1500)),
            "SET STATEMENT max_statement_time = 0 FOR SELECT WSREP_LAST_SEEN_GTID(), \
             WSREP_SYNC_WAIT_UPTO_GTID('0-11-42', 2) LIMIT 1"
        );
        assert!(wsrep_waited(&g, Some("0-11-40"), Some("1")));
        // The server answers 1 at once for a GTID of another numbering.
        assert!(!wsrep_waited(&g, Some("0-12-40"), Some("1")));
        assert!(!wsrep_waited(&g, Some("1-11-40"), Some("1")));
        assert!(!wsrep_waited(&g, None, Some("1")));
        assert!(!wsrep_waited(&g, Some("0-11-42"), None));
        assert!(wsrep_caught_up(&g, Some("0-11-42")));
        assert!(wsrep_caught_up(&g, Some("0-11-50")));
        assert!(!wsrep_caught_up(&g, Some("0-11-41")));
        assert!(!wsrep_caught_up(&g, Some("0-12-50")));
        assert!(!wsrep_caught_up(&g, None));
    }

    #[test]
    fn causal_state_keeps_each_galera_clusters_latest_write_and_its_node() {
        let (a, b) = (BackendId(1), BackendId(2));
        let c1: Rc<str> = Rc::from("uuid-1");
        let c2: Rc<str> = Rc::from("uuid-2");
        let g = |s: &str| Gtid::parse(s).unwrap();
        let mut s = CausalState::default();
        assert!(s.wants_nothing());
        s.wrote_on(a);
        assert_eq!(
            s.read_back_sql(a, true),
            Some("SELECT @@last_gtid, WSREP_LAST_WRITTEN_GTID() LIMIT 1")
        );
        assert_eq!(
            s.read_back_sql(b, true),
            Some(
                "SET STATEMENT wsrep_sync_wait = 1 FOR \
                 SELECT @@global.gtid_binlog_pos, WSREP_LAST_SEEN_GTID() LIMIT 1"
            )
        );
        assert_eq!(
            s.unread_in("uuid-1"),
            None,
            "a write, but not to a Galera cluster"
        );
        s.wrote_to_cluster(&c1, 7);
        s.wrote_to_cluster(&c1, 7);
        assert_eq!(s.unread_in("uuid-1"), Some(Some(7)));
        assert_eq!(s.unread_in("uuid-2"), None);
        s.wrote_to_cluster(&c1, 8);
        assert_eq!(s.unread_in("uuid-1"), Some(None), "through two nodes");
        assert_eq!(s.unread_cluster(), Some(c1.clone()));
        s.read(&GtidPos::default());
        assert_eq!(s.unread_in("uuid-1"), None);
        assert_eq!(s.unread_cluster(), None);
        s.read_wsrep(&c1, g("0-1-0"), 7);
        assert!(s.wants_nothing(), "sequence 0: the connection committed nothing");
        s.read_wsrep(&c1, g("0-1-5"), 7);
        s.read_wsrep(&c1, g("0-1-9"), 8);
        s.read_wsrep(&c1, g("0-1-6"), 7);
        let w = s.wsrep_for("uuid-1").unwrap();
        assert_eq!(
            (w.gtid, w.through),
            (g("0-1-9"), 8),
            "the latest, through its node"
        );
        s.read_wsrep(&c2, g("0-3-2"), 9);
        assert_eq!(s.wsrep_for("uuid-2").unwrap().gtid, g("0-3-2"));
        assert_eq!(s.wsrep_for("uuid-1").unwrap().gtid, g("0-1-9"));
        // The cluster numbers its transactions anew (bootstrapped again).
        s.read_wsrep(&c1, g("0-4-1"), 7);
        assert_eq!(s.wsrep_for("uuid-1").unwrap().gtid, g("0-4-1"));
        assert!(s.wsrep_for("uuid-3").is_none());
        assert!(!s.wants_nothing());
        s.clear();
        assert!(s.wants_nothing());
    }
}
