//! Every distinct prepared statement a shard has seen: its text, schema and
//! the prepare response to replay to the next client that prepares it, so
//! a repeated prepare costs no backend round trip.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::session::pinning::ExecuteEffect;
use crate::session::variables::SessionVars;

/// One distinct statement.
#[derive(Debug)]
pub struct StatementMeta {
    /// Shard-wide id (the key of every connection's cache).
    pub id: u64,
    /// The SQL text.
    pub sql: Bytes,
    /// The schema it was prepared in (unqualified names resolve there).
    pub schema: Option<Vec<u8>>,
    /// The session variables it was prepared under (`sql_mode` and the
    /// charset decide how the text parses).
    pub vars: SessionVars,
    /// Parameter count.
    pub params: u16,
    /// Result column count.
    pub columns: u16,
    /// The whole prepare response as the server sent it (packets with
    /// headers), to replay with the client's statement id patched in.
    pub response: Vec<u8>,
    /// What executing it does to the session, read from its text once.
    pub effect: ExecuteEffect,
    /// Prepared under one session's own state ([`Registry::private`]): no
    /// other client's statement is backed by its server statements.
    pub private: bool,
    /// The server now describes it otherwise (a table changed): later
    /// prepares of its text go to a backend again.
    pub stale: Cell<bool>,
    /// When a server last described it so, and the shard's table changes
    /// then ([`Registry::lookup`]).
    checked: Cell<Checked>,
}

/// When a server was asked for a description ([`Registry::asking`]):
/// one it gives holds from then on.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// [`Registry::tables_changed`]'s count then.
    epoch: u64,
    at: Instant,
}

impl StatementMeta {
    /// The column definition packets of the prepare response (headers
    /// included), empty when the statement describes no columns.
    pub fn column_definitions(&self) -> &[u8] {
        use funnel_protocol::framing::PacketHeader;
        let r = &self.response[..];
        let next =
            |at: usize| PacketHeader::peek(&r[at..]).map_or(r.len(), |h| (at + h.total_len()).min(r.len()));
        // The prepare OK, then the parameters' definitions and their EOF
        // (none with `CLIENT_DEPRECATE_EOF`: a definition starts with "def").
        let mut at = next(0);
        for _ in 0..self.params {
            at = next(at);
        }
        if self.params > 0
            && r.get(at + funnel_protocol::framing::HEADER_LEN)
                == Some(&funnel_protocol::response::EOF_HEADER)
        {
            at = next(at);
        }
        let start = at;
        for _ in 0..self.columns {
            at = next(at);
        }
        &r[start.min(r.len())..at]
    }

    /// True when a prepare response from the server (statement id
    /// blanked or not) describes the statement as recorded: the same
    /// counts and the same definitions, byte for byte. The OK's warning
    /// count and the EOF packets' status are the session's, not the
    /// statement's.
    pub fn described_as(&self, response: &[u8]) -> bool {
        let eof = |p: &[u8]| p.first() == Some(&funnel_protocol::response::EOF_HEADER) && p.len() < 9;
        let (mut ours, mut theirs) = (payloads(&self.response), payloads(response));
        // The OK: status, id, columns, parameters; then a filler and warnings.
        match (ours.next(), theirs.next()) {
            (Some(a), Some(b)) if a.len() >= 9 && b.len() >= 9 && a[5..9] == b[5..9] => {}
            _ => return false,
        }
        loop {
            match (ours.next(), theirs.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == b || (eof(a) && eof(b)) => {}
                _ => return false,
            }
        }
    }

    /// Notes that a server asked at `when` ([`Registry::asking`]) described
    /// the statement as recorded: it answers prepares again until a
    /// second after that, or the shard's next table change. A check asked
    /// for earlier (one that ran at the same time) does not set it back.
    pub fn confirmed(&self, when: Checked) {
        let had = self.checked.get();
        if (when.epoch, when.at) > (had.epoch, had.at) {
            self.checked.set(when);
        }
    }

    /// Records what the server said of the statement since it was
    /// described: `columns` result columns (from an execute's result set
    /// or another connection's prepare). Another count than the recorded
    /// one (`ALTER TABLE` under `SELECT *`) makes it stale.
    pub fn note_columns(&self, columns: u64) {
        if self.columns != 0 && columns != u64::from(self.columns) {
            self.stale.set(true);
        }
    }
}

/// The payloads of the packets in `r` (a last one cut short as it is).
fn payloads(r: &[u8]) -> impl Iterator<Item = &[u8]> {
    use funnel_protocol::framing::{PacketHeader, HEADER_LEN};
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = PacketHeader::peek(&r[at..])?;
        let end = (at + h.total_len()).min(r.len());
        let payload = &r[(at + HEADER_LEN).min(end)..end];
        at = end;
        Some(payload)
    })
}

/// Offset of the statement id in a prepare response (header, then the 0x00 status byte).
pub const RESPONSE_STMT_ID_AT: usize = 5;

/// What of a client's handshake shapes the prepare response it gets: EOF
/// packets or not, and the handshake collation (the result columns'
/// character set and byte lengths follow it unless `SET NAMES` changed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseShape {
    /// `CLIENT_DEPRECATE_EOF`.
    pub deprecate_eof: bool,
    /// `MARIADB_CLIENT_EXTENDED_METADATA`: each column's description has
    /// one field more.
    pub extended_metadata: bool,
    /// The handshake collation id.
    pub charset: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The hostgroup whose server described it: two hostgroups may be two
    /// clusters whose tables of the same names differ.
    hostgroup: Rc<str>,
    shape: ResponseShape,
    schema: Option<Vec<u8>>,
    vars: SessionVars,
    sql: Bytes,
}

/// The shard's statements.
#[derive(Debug, Default)]
pub struct Registry {
    by_key: RefCell<HashMap<Key, Rc<StatementMeta>>>,
    next_id: Cell<u64>,
    /// Statements run through the shard that may have changed what a
    /// prepare describes (`ALTER TABLE`, ...): every description recorded
    /// before the last one is had from the server again.
    tables_changed: Cell<u64>,
    /// Statements the shard's clients hold together (see
    /// [`crate::prepared::client::MAX_PER_SHARD`]).
    held: Rc<Cell<usize>>,
}

/// Statements kept before unused ones are forgotten.
const SOFT_CAP: usize = 20_000;

/// How long a recorded description answers prepares of its text before the
/// next one is described by a server again. Tables change behind Funnel's
/// back too (a migration tool on a connection of its own, another Funnel),
/// and only the server knows: a change that keeps the column count
/// (`VARCHAR(20)` to `VARCHAR(40)`) shows nowhere else. One prepare per
/// text and second is the price.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// What the registry knows of a text a client prepares.
#[derive(Debug)]
pub enum Known {
    /// Described by a server within [`FRESH_FOR`], and since the shard's
    /// last statement that may have changed a table: the client gets it.
    Fresh(Rc<StatementMeta>),
    /// Described before that: the caller has a server describe it again,
    /// and keeps this one when the server says the same
    /// ([`StatementMeta::described_as`], [`StatementMeta::confirmed`]).
    /// When only time passed, it counts as fresh meanwhile, so that the
    /// clients preparing the text at the same time do not all go to the
    /// server; after a table change it does not, as it may describe the
    /// table as it was.
    Check(Rc<StatementMeta>),
}

impl Registry {
    /// A statement prepared before in the same hostgroup with the same
    /// text, schema, variables and response shape.
    pub fn lookup(
        &self,
        hostgroup: &str,
        shape: ResponseShape,
        schema: &Option<Vec<u8>>,
        vars: &SessionVars,
        sql: &[u8],
    ) -> Option<Known> {
        let key = Key {
            hostgroup: Rc::from(hostgroup),
            shape,
            schema: schema.clone(),
            vars: vars.clone(),
            sql: Bytes::copy_from_slice(sql),
        };
        let meta = self
            .by_key
            .borrow()
            .get(&key)
            .filter(|m| !m.stale.get())
            .cloned()?;
        let checked = meta.checked.get();
        let now = Instant::now();
        if checked.epoch != self.tables_changed.get() {
            // A table changed since it was described: every prepare has
            // the server describe it until one is told the same, also
            // those that come while another's check is under way (the
            // client that altered the table may be one of them).
            return Some(Known::Check(meta));
        }
        if now.duration_since(checked.at) < FRESH_FOR {
            return Some(Known::Fresh(meta));
        }
        // Only time passed: one check a second is enough, and the
        // description answers the others meanwhile.
        meta.checked.set(self.checked_now(now));
        Some(Known::Check(meta))
    }

    /// The moment a server is asked to describe a text, for
    /// [`StatementMeta::confirmed`] when it says the same.
    pub fn asking(&self) -> Checked {
        self.checked_now(Instant::now())
    }

    /// Notes that a statement that may change what prepares describe ran
    /// through the shard: every recorded description is had from a server
    /// again before it answers another prepare, so a client that altered a
    /// table and prepares next is told what the server would tell it.
    pub fn tables_changed(&self) {
        self.tables_changed.set(self.tables_changed.get() + 1);
    }

    fn checked_now(&self, at: Instant) -> Checked {
        Checked {
            epoch: self.tables_changed.get(),
            at,
        }
    }

    /// Records a statement a backend of `hostgroup` prepared, for later
    /// prepares there of the same text, schema, variables and shape. Its
    /// description dates from `asked` ([`Registry::asking`], before the
    /// server was asked): a table change while the server answered may
    /// not be in it, and has the next prepare check it.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        hostgroup: Rc<str>,
        shape: ResponseShape,
        schema: Option<Vec<u8>>,
        vars: SessionVars,
        sql: Bytes,
        params: u16,
        columns: u16,
        response: Vec<u8>,
        asked: Checked,
    ) -> Rc<StatementMeta> {
        let meta = Rc::new(self.meta(
            schema.clone(),
            vars.clone(),
            sql.clone(),
            params,
            columns,
            response,
            false,
        ));
        meta.checked.set(asked);
        let mut map = self.by_key.borrow_mut();
        if map.len() >= SOFT_CAP {
            // Forget statements no client holds; connections that still have
            // them prepared simply prepare the next one anew.
            map.retain(|_, m| Rc::strong_count(m) > 1);
        }
        map.insert(
            Key {
                hostgroup,
                shape,
                schema,
                vars,
                sql,
            },
            meta.clone(),
        );
        meta
    }

    /// A statement a backend prepared under state of one session that the
    /// registry's key does not hold (its temporary tables, variables
    /// Funnel could not read): it gets an id, but no later prepare is
    /// answered from it.
    pub fn private(
        &self,
        schema: Option<Vec<u8>>,
        vars: SessionVars,
        sql: Bytes,
        params: u16,
        columns: u16,
        response: Vec<u8>,
    ) -> Rc<StatementMeta> {
        Rc::new(self.meta(schema, vars, sql, params, columns, response, true))
    }

    /// A statement with the next id.
    #[allow(clippy::too_many_arguments)]
    fn meta(
        &self,
        schema: Option<Vec<u8>>,
        vars: SessionVars,
        sql: Bytes,
        params: u16,
        columns: u16,
        response: Vec<u8>,
        private: bool,
    ) -> StatementMeta {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        StatementMeta {
            id,
            effect: ExecuteEffect::of(&sql),
            sql,
            schema,
            vars,
            params,
            columns,
            response,
            stale: Cell::new(false),
            checked: Cell::new(self.checked_now(Instant::now())),
            private,
        }
    }

    /// The count of statements the shard's clients hold, for a new
    /// client's [`crate::prepared::client::ClientStatements`].
    pub fn held(&self) -> Rc<Cell<usize>> {
        self.held.clone()
    }

    /// How many statements are known.
    pub fn len(&self) -> usize {
        self.by_key.borrow().len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::variables::Assignment;

    impl Known {
        /// The statement, fresh or to check.
        fn meta(&self) -> &Rc<StatementMeta> {
            match self {
                Known::Fresh(m) | Known::Check(m) => m,
            }
        }
    }

    impl Registry {
        /// The id of the statement a lookup finds, fresh or not.
        fn id_of(
            &self,
            hostgroup: &str,
            shape: ResponseShape,
            schema: &Option<Vec<u8>>,
            vars: &SessionVars,
            sql: &[u8],
        ) -> Option<u64> {
            self.lookup(hostgroup, shape, schema, vars, sql)
                .map(|k| k.meta().id)
        }
    }

    #[test]
    fn prepared_registry_keys_by_hostgroup_text_schema_variables_and_shape() {
        let r = Registry::default();
        let shape = |deprecate_eof| ResponseShape {
            deprecate_eof,
            extended_metadata: false,
            charset: 45,
        };
        let s = Some(b"db".to_vec());
        let v = SessionVars::default();
        let sql = Bytes::from_static(b"SELECT ?");
        let m = r.insert(
            "hg".into(),
            shape(false),
            s.clone(),
            v.clone(),
            sql.clone(),
            1,
            1,
            vec![1, 2],
            r.asking(),
        );
        assert_eq!(r.id_of("hg", shape(false), &s, &v, &sql).unwrap(), m.id);
        assert!(r.lookup("hg", shape(true), &s, &v, &sql).is_none());
        let latin1 = ResponseShape {
            deprecate_eof: false,
            extended_metadata: false,
            charset: 8,
        };
        assert!(
            r.lookup("hg", latin1, &s, &v, &sql).is_none(),
            "another handshake charset"
        );
        assert!(r.lookup("hg", shape(false), &None, &v, &sql).is_none());
        let mut ansi = SessionVars::default();
        ansi.apply(
            &[Assignment {
                name: "sql_mode".into(),
                value: Some("'ANSI_QUOTES'".into()),
            }],
            crate::session::variables::Utf8Alias::ByOldMode,
        );
        assert!(
            r.lookup("hg", shape(false), &s, &ansi, &sql).is_none(),
            "prepared under another sql_mode"
        );
        let m2 = r.insert(
            "hg".into(),
            shape(true),
            s.clone(),
            v.clone(),
            sql.clone(),
            1,
            1,
            vec![],
            r.asking(),
        );
        assert_ne!(m.id, m2.id);
        assert_eq!(r.len(), 2);
        let own = r.private(s.clone(), v.clone(), sql.clone(), 1, 1, vec![]);
        assert!(own.id > m2.id, "ids stay distinct");
        assert_eq!(r.len(), 2, "a session's own statement is not shared");
        assert_eq!(r.id_of("hg", shape(true), &s, &v, &sql).unwrap(), m2.id);
        assert!(
            r.lookup("other", shape(true), &s, &v, &sql).is_none(),
            "described by another hostgroup's server"
        );
    }

    #[test]
    fn prepared_registry_forgets_a_statement_the_server_describes_otherwise() {
        let r = Registry::default();
        let shape = ResponseShape {
            deprecate_eof: true,
            extended_metadata: false,
            charset: 45,
        };
        let (s, v) = (Some(b"db".to_vec()), SessionVars::default());
        let sql = Bytes::from_static(b"SELECT * FROM t");
        let m = r.insert(
            "hg".into(),
            shape,
            s.clone(),
            v.clone(),
            sql.clone(),
            0,
            2,
            vec![],
            r.asking(),
        );
        m.note_columns(2);
        assert_eq!(r.id_of("hg", shape, &s, &v, &sql).unwrap(), m.id, "as recorded");
        m.note_columns(3);
        assert!(r.lookup("hg", shape, &s, &v, &sql).is_none(), "a column more");
        let fresh = r.insert(
            "hg".into(),
            shape,
            s.clone(),
            v.clone(),
            sql.clone(),
            0,
            3,
            vec![],
            r.asking(),
        );
        assert_eq!(r.id_of("hg", shape, &s, &v, &sql).unwrap(), fresh.id);
        // A statement described with no columns (a CALL) may return any.
        let call = Bytes::from_static(b"CALL p()");
        let c = r.insert(
            "hg".into(),
            shape,
            s.clone(),
            v.clone(),
            call.clone(),
            0,
            0,
            vec![],
            r.asking(),
        );
        c.note_columns(4);
        assert_eq!(r.id_of("hg", shape, &s, &v, &call).unwrap(), c.id);
    }

    /// A prepare response of one parameter and `columns`, with `warnings`
    /// in the OK and `status` in the EOFs.
    fn response(columns: &[&[u8]], warnings: u8, status: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut seq = 0u8;
        let mut packet = |p: &[u8]| {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            out.push(seq);
            out.extend_from_slice(p);
            seq += 1;
        };
        packet(&[0, 9, 0, 0, 0, columns.len() as u8, 0, 1, 0, 0, warnings, 0]);
        packet(b"\x03def\x00\x00\x00\x01?\x00");
        packet(&[0xfe, 0, 0, status, 0]);
        for c in columns {
            packet(c);
        }
        packet(&[0xfe, 0, 0, status, 0]);
        out
    }

    #[test]
    fn prepared_registry_compares_descriptions_but_not_the_sessions_status() {
        let r = Registry::default();
        let v20: &[u8] = b"\x03def\x02db\x01t\x01t\x01v\x01v\x0c\x2d\x00\x50\x00\x00\x00\xfd";
        let v40: &[u8] = b"\x03def\x02db\x01t\x01t\x01v\x01v\x0c\x2d\x00\xa0\x00\x00\x00\xfd";
        let sql = Bytes::from_static(b"SELECT v FROM t WHERE id = ?");
        let m = r.private(None, SessionVars::default(), sql, 1, 1, response(&[v20], 0, 2));
        assert!(m.described_as(&response(&[v20], 0, 2)));
        assert!(
            m.described_as(&response(&[v20], 3, 3)),
            "warnings and status are the session's"
        );
        assert!(!m.described_as(&response(&[v40], 0, 2)), "a longer column");
        assert!(!m.described_as(&response(&[v20, v20], 0, 2)), "a column more");
        assert!(!m.described_as(&[]));
        assert!(!m.described_as(&response(&[v20], 0, 2)[..20]), "cut short");
    }

    #[test]
    fn prepared_registry_has_descriptions_checked_after_a_table_change_and_a_second() {
        let r = Registry::default();
        let shape = ResponseShape {
            deprecate_eof: false,
            extended_metadata: false,
            charset: 45,
        };
        let (s, v) = (Some(b"db".to_vec()), SessionVars::default());
        let sql = Bytes::from_static(b"SELECT v FROM t");
        let m = r.insert(
            "hg".into(),
            shape,
            s.clone(),
            v.clone(),
            sql.clone(),
            0,
            1,
            vec![],
            r.asking(),
        );
        let look = || r.lookup("hg", shape, &s, &v, &sql).unwrap();
        assert!(matches!(look(), Known::Fresh(f) if f.id == m.id));
        // Described by a server asked before a table changed, and
        // recorded after: it may not show the change.
        let asked = r.asking();
        r.tables_changed();
        let late = r.insert(
            "hg".into(),
            shape,
            s.clone(),
            v.clone(),
            Bytes::from_static(b"SELECT w FROM t"),
            0,
            1,
            vec![],
            asked,
        );
        let look_late = || {
            r.lookup("hg", shape, &s, &v, &late.sql)
                .map(|k| matches!(k, Known::Check(_)))
        };
        assert_eq!(look_late(), Some(true), "a change while the server answered");
        assert_eq!(look_late(), Some(true), "until one is confirmed");
        assert!(matches!(look(), Known::Check(_)), "the change");
        m.confirmed(r.asking());
        let asked = r.asking();
        r.tables_changed();
        assert!(
            matches!(look(), Known::Check(c) if c.id == m.id),
            "a table changed"
        );
        let asked_after = r.asking();
        assert!(
            matches!(look(), Known::Check(_)),
            "after a change, the others are described by the server too"
        );
        m.confirmed(asked_after);
        m.confirmed(asked);
        assert!(
            matches!(look(), Known::Fresh(_)),
            "confirmed since the change; an older check does not undo it"
        );
        let before = Instant::now().checked_sub(FRESH_FOR).unwrap();
        m.checked.set(Checked {
            epoch: r.tables_changed.get(),
            at: before,
        });
        assert!(matches!(look(), Known::Check(_)), "described a second ago");
        assert!(
            matches!(look(), Known::Fresh(_)),
            "the others meanwhile use it as it is"
        );
    }
}
