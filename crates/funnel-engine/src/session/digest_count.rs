//! Counting each text query under its shape for `SHOW DIGESTS`, whoever
//! answers it: a backend (recorded when its reply is settled) or Funnel
//! itself (a query rule's `ok` or `error`, the query cache, a `SET`
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

impl Session {
    /// Notes the shape of the text query at the front of the buffer
    /// (`total` bytes), unless this command's shape is noted already or it
    /// is not a text query. `SHOW CLIENTS` names it from here on, and a
    /// `RESET DIGESTS` meanwhile keeps it (see `Digests::clear`).
    pub(super) fn note_shape(&mut self, total: usize) {
        if self.digest.is_some() {
            return;
        }
        let bytes = self.buf.bytes();
        if bytes.get(4) != Some(&COM_QUERY) {
            return;
        }
        let Some(sql) = bytes.get(5..total.min(MAX_CHUNK)) else {
            return;
        };
        let key = digest::key(sql);
        let text = (!self.shard.digests.knows(key)).then(|| digest::text(sql));
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
