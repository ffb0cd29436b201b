//! A client's prepared statements: Funnel's ids, mapped to the shard's
//! statements, with the parameter types the client bound.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;

use funnel_protocol::response::ErrPacket;

use crate::column_cache::KnownColumns;
use crate::prepared::conn_cache::StmtKey;
use crate::prepared::registry::StatementMeta;

/// The id MariaDB clients may use to mean "the statement prepared last".
pub const LAST_PREPARED: u32 = u32::MAX;

/// One statement of one client.
#[derive(Debug)]
pub struct ClientStatement {
    /// The shard's statement.
    pub meta: Rc<StatementMeta>,
    /// Which server statement backs it on a connection (see [`StmtKey`]).
    pub key: StmtKey,
    /// Parameter types from the client's last execute that sent them.
    pub param_types: Option<Vec<u8>>,
    /// Why sending long data for it failed: as a server does, the next
    /// execute reports it (`COM_STMT_SEND_LONG_DATA` has no response).
    pub long_data_err: Option<funnel_protocol::response::ErrPacket>,
    /// The result columns the client has for it (for a client with
    /// MariaDB's metadata cache).
    pub known_columns: KnownColumns,
    /// What the query rules made of the text the client prepared: its
    /// executes and long data follow it while the shard's rules are the
    /// same.
    pub rule: PreparedRule,
}

/// What the query rules made of a prepared statement's text.
#[derive(Debug, Default)]
pub struct PreparedRule {
    /// The [`crate::rules::Rules::id`] of the rules it was matched
    /// against (0: none).
    pub rules: u32,
    /// What those rules do to it.
    pub action: Option<Rc<crate::rules::Action>>,
    /// The text the client prepared, when the rules rewrote it (the
    /// statement's own text is the new one, which the server prepared):
    /// after a reload, the rules match this, as they would a new
    /// prepare of it.
    pub client_text: Option<bytes::Bytes>,
}

/// Statement ids a client holds. No `Default`: every instance must count
/// in its shard's shared `held` counter ([`ClientStatements::new`]).
#[derive(Debug)]
pub struct ClientStatements {
    map: HashMap<u32, ClientStatement>,
    next: u32,
    last: Option<u32>,
    /// The copies of each registry statement the client holds.
    copies: HashMap<u64, Copies>,
    /// How many statements all the shard's clients hold together.
    held: Rc<Cell<usize>>,
}

/// Statements all clients of one core may hold together, as the server's
/// `max_prepared_stmt_count` (default 16382) counts every session's: each
/// held statement keeps its registry entry (text, prepare response,
/// variables) in Funnel's memory, so without it N clients could make a
/// core keep N x 16382. Each client may hold only its
/// `client.max_prepared_statements` of them, so one that never closes its
/// statements (a common application bug) cannot take them all.
pub const MAX_PER_SHARD: usize = funnel_config::MAX_PREPARED_PER_CORE as usize;

/// Why a client may not hold another statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// It holds its `client.max_prepared_statements` (this many).
    Client(usize),
    /// The core's clients hold [`MAX_PER_SHARD`] together.
    Shard,
}

impl Full {
    /// ERR 1461 in MariaDB's words, naming the limit that was reached.
    pub fn err_packet(self) -> ErrPacket {
        let (limit, value) = match self {
            Full::Client(n) => ("client.max_prepared_statements", n),
            Full::Shard => ("max_prepared_stmt_count", MAX_PER_SHARD),
        };
        ErrPacket::new(
            1461,
            "42000",
            format!("Can't create more than {limit} statements (current value: {value})"),
        )
    }
}

impl ClientStatements {
    /// A client's statements, counted in `held` with every other client's
    /// of the shard.
    pub fn new(held: Rc<Cell<usize>>) -> Self {
        ClientStatements {
            map: HashMap::new(),
            next: 0,
            last: None,
            copies: HashMap::new(),
            held,
        }
    }

    /// Whether the client may hold one more statement, when it may hold
    /// `per_client` at most.
    pub fn room(&self, per_client: usize) -> Result<(), Full> {
        if self.map.len() >= per_client {
            return Err(Full::Client(per_client));
        }
        if self.held.get() >= MAX_PER_SHARD {
            return Err(Full::Shard);
        }
        Ok(())
    }

    /// Registers a new statement, unless the client holds `per_client`
    /// already or the clients of the shard together hold too many.
    pub fn add(&mut self, meta: Rc<StatementMeta>, per_client: usize) -> Result<u32, Full> {
        self.room(per_client)?;
        self.held.set(self.held.get() + 1);
        self.next = self.next.wrapping_add(1).max(1);
        while self.map.contains_key(&self.next) || self.next == LAST_PREPARED {
            self.next = self.next.wrapping_add(1).max(1);
        }
        let id = self.next;
        let key = StmtKey {
            meta: meta.id,
            copy: self.copies.entry(meta.id).or_default().take(),
        };
        self.map.insert(
            id,
            ClientStatement {
                meta,
                key,
                param_types: None,
                long_data_err: None,
                known_columns: KnownColumns::FromPrepare,
                rule: PreparedRule::default(),
            },
        );
        self.last = Some(id);
        Ok(id)
    }

    /// The copy number a new id for registry statement `meta` gets: the
    /// lowest one none of the client's ids for it uses.
    pub fn next_copy(&self, meta: u64) -> u32 {
        self.copies.get(&meta).map_or(0, Copies::peek)
    }

    /// Resolves an id (including [`LAST_PREPARED`]).
    pub fn resolve(&self, id: u32) -> Option<u32> {
        if id == LAST_PREPARED {
            self.last
        } else {
            self.map.contains_key(&id).then_some(id)
        }
    }

    /// The statement behind an id.
    pub fn get(&self, id: u32) -> Option<&ClientStatement> {
        self.map.get(&id)
    }

    /// Mutable access (to remember parameter types).
    pub fn get_mut(&mut self, id: u32) -> Option<&mut ClientStatement> {
        self.map.get_mut(&id)
    }

    /// A prepare failed: as on the server, [`LAST_PREPARED`] names no
    /// statement until the next one succeeds (else a pipelined execute of
    /// it would run the statement prepared before).
    pub fn forget_last(&mut self) {
        self.last = None;
    }

    /// Forgets a statement (`COM_STMT_CLOSE`).
    pub fn remove(&mut self, id: u32) {
        if let Some(s) = self.map.remove(&id) {
            self.held.set(self.held.get() - 1);
            if let Some(copies) = self.copies.get_mut(&s.key.meta) {
                if copies.give_back(s.key.copy) {
                    self.copies.remove(&s.key.meta);
                }
            }
        }
        if self.last == Some(id) {
            self.last = None;
        }
    }

    /// Forgets all (`COM_RESET_CONNECTION`, `COM_CHANGE_USER`).
    pub fn clear(&mut self) {
        self.held.set(self.held.get() - self.map.len());
        self.map.clear();
        self.copies.clear();
        self.last = None;
    }

    /// How many the client holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The copy numbers a client's ids for one registry statement use. Taking
/// and giving one back cost O(log n), so a client preparing one text
/// thousands of times cannot make each prepare scan the others (that was
/// cubic in the count: minutes of a core's time).
#[derive(Debug, Default)]
struct Copies {
    live: usize,
    /// Every number below this was handed out once.
    next: u32,
    /// Numbers given back, lowest first.
    freed: BinaryHeap<Reverse<u32>>,
}

impl Copies {
    /// The lowest number not in use.
    fn peek(&self) -> u32 {
        self.freed.peek().map_or(self.next, |r| r.0)
    }

    fn take(&mut self) -> u32 {
        self.live += 1;
        match self.freed.pop() {
            Some(Reverse(c)) => c,
            None => {
                self.next += 1;
                self.next - 1
            }
        }
    }

    /// True when no number is in use any more.
    fn give_back(&mut self, copy: u32) -> bool {
        self.live -= 1;
        self.freed.push(Reverse(copy));
        self.live == 0
    }
}

impl Drop for ClientStatements {
    fn drop(&mut self) {
        self.held.set(self.held.get() - self.map.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn meta() -> Rc<StatementMeta> {
        let r = crate::prepared::registry::Registry::default();
        let m = r.private(
            None,
            Default::default(),
            Bytes::from_static(b"SELECT 1"),
            0,
            1,
            vec![],
        );
        assert_eq!(m.id, 1);
        m
    }

    #[test]
    fn prepared_client_ids_and_last_prepared() {
        let mut c = ClientStatements::new(Rc::default());
        let a = c.add(meta(), 10).unwrap();
        let b = c.add(meta(), 10).unwrap();
        assert_ne!(a, b);
        // One text prepared twice: two server statements.
        assert_eq!(c.get(a).unwrap().key.copy, 0);
        assert_eq!(c.get(b).unwrap().key.copy, 1);
        assert_eq!(c.resolve(LAST_PREPARED), Some(b));
        assert_eq!(c.resolve(a), Some(a));
        c.forget_last();
        assert_eq!(c.resolve(LAST_PREPARED), None);
        assert_eq!(c.resolve(b), Some(b));
        c.remove(b);
        assert_eq!(c.resolve(b), None);
        assert_eq!(c.resolve(LAST_PREPARED), None);
        c.remove(a);
        assert_eq!(c.next_copy(1), 0, "copies are reused");
        let d = c.add(meta(), 10).unwrap();
        assert_eq!(c.get(d).unwrap().key.copy, 0);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn prepared_clients_of_a_shard_hold_a_bounded_number_together() {
        let held = Rc::new(Cell::new(0));
        let mut a = ClientStatements::new(held.clone());
        let mut b = ClientStatements::new(held.clone());
        for _ in 0..MAX_PER_SHARD - 1 {
            a.add(meta(), MAX_PER_SHARD).unwrap();
        }
        let last = b.add(meta(), MAX_PER_SHARD).unwrap();
        assert_eq!(held.get(), MAX_PER_SHARD);
        assert_eq!(
            b.add(meta(), MAX_PER_SHARD),
            Err(Full::Shard),
            "the shard's clients hold the limit"
        );
        b.remove(last);
        let again = b.add(meta(), MAX_PER_SHARD).unwrap();
        b.clear();
        assert_eq!(held.get(), MAX_PER_SHARD - 1);
        assert!(b.get(again).is_none());
        drop(a);
        assert_eq!(held.get(), 0, "a client that leaves gives its count back");
    }

    #[test]
    fn prepared_one_client_holds_its_own_cap_and_no_more() {
        let held = Rc::new(Cell::new(0));
        let mut leaker = ClientStatements::new(held.clone());
        let mut other = ClientStatements::new(held.clone());
        for _ in 0..3 {
            leaker.add(meta(), 3).unwrap();
        }
        assert_eq!(leaker.room(3), Err(Full::Client(3)));
        assert_eq!(leaker.add(meta(), 3), Err(Full::Client(3)));
        assert_eq!(held.get(), 3, "a refused add holds nothing");
        other.add(meta(), 3).unwrap();
        // A cap raised by a reload applies to the next prepare.
        leaker.add(meta(), 4).unwrap();
        let err = Full::Client(3).err_packet();
        assert_eq!((err.code, &err.sql_state), (1461, b"42000"));
        assert_eq!(
            err.message_text(),
            "Can't create more than client.max_prepared_statements statements (current value: 3)"
        );
        assert!(Full::Shard
            .err_packet()
            .message_text()
            .contains("max_prepared_stmt_count statements (current value: 16382)"));
    }
}
