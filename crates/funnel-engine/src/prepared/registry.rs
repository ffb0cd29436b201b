//! Every distinct prepared statement a shard has seen: its text, schema and
//! the prepare response to replay to the next client that prepares it, so
//! a repeated prepare costs no backend round trip.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

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
    /// Statements the shard's clients hold together (see
    /// [`crate::prepared::client::MAX_PER_SHARD`]).
    held: Rc<Cell<usize>>,
}

/// Statements kept before unused ones are forgotten.
const SOFT_CAP: usize = 20_000;

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
    ) -> Option<Rc<StatementMeta>> {
        let key = Key {
            hostgroup: Rc::from(hostgroup),
            shape,
            schema: schema.clone(),
            vars: vars.clone(),
            sql: Bytes::copy_from_slice(sql),
        };
        self.by_key.borrow().get(&key).filter(|m| !m.stale.get()).cloned()
    }

    /// Records a statement a backend of `hostgroup` prepared, for later
    /// prepares there of the same text, schema, variables and shape.
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
        );
        assert_eq!(r.lookup("hg", shape(false), &s, &v, &sql).unwrap().id, m.id);
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
        );
        assert_ne!(m.id, m2.id);
        assert_eq!(r.len(), 2);
        let own = r.private(s.clone(), v.clone(), sql.clone(), 1, 1, vec![]);
        assert!(own.id > m2.id, "ids stay distinct");
        assert_eq!(r.len(), 2, "a session's own statement is not shared");
        assert_eq!(r.lookup("hg", shape(true), &s, &v, &sql).unwrap().id, m2.id);
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
        );
        m.note_columns(2);
        assert_eq!(
            r.lookup("hg", shape, &s, &v, &sql).unwrap().id,
            m.id,
            "as recorded"
        );
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
        );
        assert_eq!(r.lookup("hg", shape, &s, &v, &sql).unwrap().id, fresh.id);
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
        );
        c.note_columns(4);
        assert_eq!(r.lookup("hg", shape, &s, &v, &call).unwrap().id, c.id);
    }
}
