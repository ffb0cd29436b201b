//! Counting each text query and prepared execute under its shape for
//! `SHOW DIGESTS`, whoever answers it: a backend (recorded when its reply
//! is settled, or when the server's ERR for the command is passed on) or
//! Funnel itself (a query rule's `ok` or `error`, the query cache, a `SET`
//! answered locally, Funnel's own errors), counted apart in
//! `answered_by_funnel`, as ProxySQL counts such statements under
//! hostgroup -1.
//!
//! The shape is hashed once per statement, when it is first noted; its
//! text is built only for a shape this core has not seen.

use funnel_protocol::framing::MAX_CHUNK;

use super::Session;
use crate::digest::{self, AnsweredBy};

/// The text-query command byte.
const COM_QUERY: u8 = 0x03;
/// The prepared execute command bytes.
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_BULK_EXECUTE: u8 = 0xfa;

impl Session {
    /// Notes the shape of the statement at the front of the buffer
    /// (`total` bytes): a text query's, or a prepared execute's (its
    /// statement's text), unless this command's shape is noted already.
    /// Other commands have no shape. `SHOW CLIENTS` names it from here on,
    /// and a `RESET DIGESTS` meanwhile keeps it (see `Digests::clear`).
    pub(super) fn note_shape(&mut self, total: usize) {
        if self.digest.is_some() {
            return;
        }
        let bytes = self.buf.bytes();
        match bytes.get(4) {
            Some(&COM_QUERY) => {
                let Some(sql) = bytes.get(5..total.min(MAX_CHUNK)) else {
                    return;
                };
                let key = digest::key(sql);
                let text = (!self.shard.digests.knows(key)).then(|| digest::text(sql));
                self.note_key(key, text);
            }
            // An execute Funnel answers before it is forwarded (a lost
            // transaction's refusal, a rule's): under its statement's shape.
            Some(&(COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE)) => {
                let Some(meta) = self
                    .named_statement(&bytes[4..total])
                    .and_then(|id| self.stmts.get(id))
                    .map(|s| s.meta.clone())
                else {
                    return;
                };
                self.note_sql_shape(&meta.sql);
            }
            _ => {}
        }
    }

    /// Notes `sql` as this command's shape (a prepared statement's text).
    pub(super) fn note_sql_shape(&mut self, sql: &[u8]) {
        let key = digest::key(sql);
        let text = (!self.shard.digests.knows(key)).then(|| digest::text(sql));
        self.note_key(key, text);
    }

    fn note_key(&mut self, key: u64, text: Option<String>) {
        self.control.set_statement(Some(key), text.as_deref());
        self.digest = Some((key, text));
    }

    /// Counts the statement noted for this command, if it is not counted
    /// yet: `rows` returned, whether it ended in an `error`, and who
    /// answered it.
    pub(super) fn record_digest(&mut self, rows: u64, error: bool, by: AnsweredBy) {
        if let Some((key, text)) = self.digest.take() {
            let took = self.cmd_started.elapsed();
            self.shard
                .digests
                .record(key, || text.unwrap_or_default(), took, rows, error, by);
        }
    }
}
