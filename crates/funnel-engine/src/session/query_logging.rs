//! What a session tells the query log ([`crate::query_log`]) of each
//! statement the log takes: its text when the command arrives, its outcome
//! as the reply goes out, one line when the command is done.

use std::time::{Instant, SystemTime};

use crate::query_log::{Entry, QueryLog};
use crate::rules::Action;

use super::Session;

/// The query log's notes on the command under way.
#[derive(Debug, Default)]
pub(super) struct LogDraft {
    /// `query`, `prepare`, `execute` or `bulk_execute` when the log takes the
    /// command; `None` (the usual case) when it does not.
    command: Option<&'static str>,
    /// The statement's text, cut to `query_log.max_text` (the buffer is
    /// kept from command to command).
    text: Vec<u8>,
    cut: bool,
    /// The schema the statement runs in, when it has one (a buffer kept
    /// from command to command, as the text's): taken as it begins, so a
    /// `USE` is logged in the schema it left, as every statement is in
    /// the one it ran in.
    schema: Vec<u8>,
    /// It runs in no schema (the client selected none).
    no_schema: bool,
    /// The rules it matched (a buffer kept from command to command).
    rules: Vec<usize>,
    rows: u64,
    affected: u64,
    error: Option<u16>,
    /// A backend ran it (else Funnel answered).
    served: bool,
    cached: bool,
}

impl LogDraft {
    /// Forgets the previous command's notes (at each command's start).
    pub(super) fn clear(&mut self) {
        self.command = None;
    }

    /// Takes `sql`, to run in `schema`, for the log when `log` takes
    /// statements of `rule`.
    pub(super) fn begin(
        &mut self,
        log: &QueryLog,
        rule: Option<&Action>,
        command: &'static str,
        sql: &[u8],
        schema: Option<&[u8]>,
    ) {
        if !log.takes(rule.and_then(|r| r.log)) {
            return;
        }
        let keep = sql.len().min(log.max_text());
        self.text.clear();
        self.text.extend_from_slice(&sql[..keep]);
        self.schema.clear();
        self.schema.extend_from_slice(schema.unwrap_or_default());
        self.no_schema = schema.is_none();
        self.command = Some(command);
        self.cut = keep < sql.len();
        self.rules.clear();
        self.rules.extend_from_slice(rule.map_or(&[][..], |r| &r.matched));
        (self.rows, self.affected, self.error) = (0, 0, None);
        (self.served, self.cached) = (false, false);
    }

    /// True when the log takes the command under way.
    pub(super) fn taken(&self) -> bool {
        self.command.is_some()
    }

    /// Notes that the command went to a backend: its line names it also
    /// when the reply is cut short (`pool.query_timeout`, a lost backend,
    /// a client gone), as a slow query log must.
    pub(super) fn sent(&mut self) {
        self.served = true;
    }

    /// Notes a backend's reply to the command.
    pub(super) fn served(&mut self, rows: u64, affected: u64, error: Option<u16>) {
        self.served = true;
        self.rows = rows;
        self.affected = affected;
        self.error = error;
    }

    /// Notes a reply from the query cache.
    pub(super) fn answered_from_cache(&mut self, rows: u64) {
        self.cached = true;
        self.rows = rows;
    }

    /// Notes an ERR the client was sent.
    pub(super) fn failed(&mut self, code: u16) {
        self.error = Some(code);
    }

    /// After the line is written: a text buffer grown past [`KEEP_TEXT`]
    /// by a long statement goes, or every session that ever logged one
    /// would hold up to `query_log.max_text` (1 MiB) for its life.
    fn written(&mut self) {
        if self.text.capacity() > KEEP_TEXT {
            self.text = Vec::new();
        }
    }
}

/// The text buffer a session keeps between commands, at most (the
/// default `query_log.max_text`).
const KEEP_TEXT: usize = 4 << 10;

impl Session {
    /// Writes the query log's line for the command that arrived at
    /// `started`, when the log took it.
    pub(super) fn log_command(&mut self, started: Instant) {
        let Some(command) = self.log.command.take() else {
            return;
        };
        let took = started.elapsed();
        let d = &self.log;
        let log: &std::rc::Rc<QueryLog> = &self.shard.query_log;
        log.record(&Entry {
            started: SystemTime::now() - took,
            took,
            client: u64::from(self.id.0),
            user: &self.user.name,
            schema: (!d.no_schema).then_some(&d.schema[..]),
            peer: &self.peer,
            command,
            text: &d.text,
            cut: d.cut,
            rules: &d.rules,
            backend: d.served.then_some(&*self.last_backend),
            cached: d.cached,
            rows: d.rows,
            affected: d.affected,
            error: d.error,
        });
        self.log.written();
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use funnel_config::{ByteSize, QueryLogConfig};

    use super::*;
    use crate::query_log::QueryLogFile;

    #[test]
    fn query_log_draft_lets_a_long_text_go_once_written() {
        let path = std::env::temp_dir().join(format!("funnel-qlog-draft-{}.jsonl", std::process::id()));
        let config = QueryLogConfig {
            path: Some(path.clone()),
            all: true,
            max_text: ByteSize::MIB,
            ..QueryLogConfig::default()
        };
        let log = Rc::new(QueryLog::default());
        log.configure(0, &config, QueryLogFile::open(&config).unwrap());
        let mut d = LogDraft::default();
        d.begin(&log, None, "query", &vec![b'x'; 1 << 20], None);
        assert!(d.taken() && d.text.len() == 1 << 20);
        d.command = None;
        d.written();
        assert!(d.text.capacity() <= KEEP_TEXT, "{}", d.text.capacity());
        // A short one keeps its buffer for the next command.
        d.begin(&log, None, "query", b"SELECT 1", Some(b"shop"));
        d.written();
        assert!(d.text.capacity() > 0);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn query_log_off_copies_nothing_of_a_statement() {
        // Every statement begins a draft: with no log, it must stay the
        // cost of a flag read (no copy, so no allocation; `log_command`,
        // which reads the clocks, is skipped as nothing was taken).
        let log = Rc::new(QueryLog::default());
        log.configure(0, &QueryLogConfig::default(), None);
        let mut d = LogDraft::default();
        for command in ["query", "prepare", "execute", "bulk_execute"] {
            d.begin(&log, None, command, b"SELECT 1", Some(b"shop"));
        }
        assert!(!d.taken());
        assert_eq!((d.text.capacity(), d.schema.capacity()), (0, 0));
    }
}
