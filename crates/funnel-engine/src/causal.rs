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

use std::fmt;

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
            let mut parts = item.split('-');
            let gtid = Gtid {
                domain: parts.next()?.parse().ok()?,
                server: parts.next()?.parse().ok()?,
                seq: parts.next()?.parse().ok()?,
            };
            if parts.next().is_some() {
                return None;
            }
            pos.add(gtid);
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
            write!(f, "{}-{}-{}", g.domain, g.server, g.seq)?;
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
    unread: Unread,
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

    /// True while a write's GTID is unread: no replica read can be
    /// checked, so reads run on the writer.
    pub fn unread(&self) -> bool {
        self.unread != Unread::Nothing
    }

    /// The statement that reads, on the writer connection `conn`, the
    /// position covering the unread writes; `None` when there are none.
    pub fn read_back_sql(&self, conn: BackendId) -> Option<&'static str> {
        match self.unread {
            Unread::Nothing => None,
            Unread::On(id) if id == conn => Some("SELECT @@last_gtid LIMIT 1"),
            _ => Some("SELECT @@global.gtid_binlog_pos LIMIT 1"),
        }
    }

    /// The read-back answered `pos`: every write so far is in `wanted`.
    pub fn read(&mut self, pos: &GtidPos) {
        self.wanted.merge(pos);
        self.unread = Unread::Nothing;
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
        assert_eq!(s.read_back_sql(a), None);
        s.wrote_on(a);
        assert!(s.unread());
        assert_eq!(s.read_back_sql(a), Some("SELECT @@last_gtid LIMIT 1"));
        assert_eq!(
            s.read_back_sql(b),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-3"));
        assert!(!s.unread());
        s.wrote_on(a);
        s.let_go();
        assert_eq!(
            s.read_back_sql(a),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-2"));
        assert_eq!(s.wanted.to_string(), "0-1-3", "an older position adds nothing");
        s.wrote_on(a);
        s.wrote_on(b);
        assert_eq!(
            s.read_back_sql(b),
            Some("SELECT @@global.gtid_binlog_pos LIMIT 1")
        );
        s.read(&pos("0-1-4"));
        s.wrote_on_lost();
        assert!(s.unread());
        assert_eq!(
            s.read_back_sql(a),
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
}
