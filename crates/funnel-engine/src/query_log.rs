//! The query log (`query_log`): one JSON line per statement it takes,
//! appended by every core to one file.
//!
//! Each core formats its lines into a buffer of its own and writes the
//! buffer in one `write(2)` off its thread (a blocking write to a slow disk
//! must not stall the core's clients). The file is opened with `O_APPEND`,
//! so the cores' batches land whole, one after another, with no lock
//! between them. A core's own batches land in the order it took them, also
//! the last ones at a stop or at a reload that turns the log off: each
//! write waits for the core's write before it. A core whose writes fall
//! behind drops lines rather than grow without bound, and counts them.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::Future;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use funnel_config::QueryLogConfig;

use crate::{oneshot, rt};

/// Lines wait at most this long in a core's buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// A buffer this full is written at once.
const FLUSH_AT: usize = 256 << 10;

/// A core's lines not yet written, at most; lines beyond are dropped.
const MAX_PENDING: usize = 16 << 20;

/// The file, opened for appending (created if missing): once by the
/// control thread for every core, at start and at each reload.
#[derive(Clone, Debug)]
pub struct QueryLogFile {
    file: Arc<File>,
    path: PathBuf,
}

impl QueryLogFile {
    /// Opens the file `query_log.path` names, if any.
    pub fn open(config: &QueryLogConfig) -> io::Result<Option<QueryLogFile>> {
        let Some(path) = &config.path else {
            return Ok(None);
        };
        let file = std::fs::OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Some(QueryLogFile {
            file: Arc::new(file),
            path: path.clone(),
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What the log says of one statement.
#[derive(Debug)]
pub struct Entry<'a> {
    /// When its command arrived.
    pub started: SystemTime,
    /// How long it took, until the last byte of its reply was sent.
    pub took: Duration,
    /// The client's id (its `CONNECTION_ID()`).
    pub client: u64,
    /// The client's user.
    pub user: &'a str,
    /// The schema the statement ran in (for a `USE`, the one it left).
    pub schema: Option<&'a [u8]>,
    /// The client's IP address (`localhost` on the Unix socket).
    pub peer: &'a str,
    /// `query` (text protocol), `prepare`, `execute` (binary) or
    /// `bulk_execute`.
    pub command: &'static str,
    /// The statement's text (cut to `query_log.max_text`).
    pub text: &'a [u8],
    /// The text was longer than that.
    pub cut: bool,
    /// The query rules it matched (their places in `query_rules`), in
    /// order: none, one, or a chain's (`apply: false`).
    pub rules: &'a [usize],
    /// The backend that ran it; none when Funnel answered it.
    pub backend: Option<&'a str>,
    /// Answered from the query cache.
    pub cached: bool,
    /// Rows sent to the client.
    pub rows: u64,
    /// Rows the server said it changed.
    pub affected: u64,
    /// The error code the client got, if any.
    pub error: Option<u16>,
}

/// One core's side of the query log.
#[derive(Debug, Default)]
pub struct QueryLog {
    file: RefCell<Option<QueryLogFile>>,
    all: Cell<bool>,
    min_duration: Cell<Duration>,
    max_text: Cell<usize>,
    core: Cell<u16>,
    pending: RefCell<Vec<u8>>,
    /// The buffer back from the last write, kept for reuse.
    spare: RefCell<Vec<u8>>,
    /// A write or a timed flush is under way.
    flush_due: Cell<bool>,
    /// Resolves when the core's last write so far is done: the next one
    /// waits for it.
    last_write: RefCell<Option<oneshot::Receiver<()>>>,
    /// Lines written to the buffer.
    pub lines: Cell<u64>,
    /// Lines dropped: the buffer was full, or a write failed.
    pub dropped: Cell<u64>,
}

impl QueryLog {
    /// Takes a (re)loaded configuration and the file opened for it; lines
    /// still buffered go to the new file, or when the log is turned off,
    /// to the one they were taken for.
    pub fn configure(self: &Rc<Self>, core: u16, config: &QueryLogConfig, file: Option<QueryLogFile>) {
        self.core.set(core);
        self.all.set(config.all);
        self.min_duration.set(config.min_duration.as_duration());
        self.max_text.set(config.max_text.as_u64() as usize);
        let turned_off = file.is_none();
        let old = std::mem::replace(&mut *self.file.borrow_mut(), file);
        if let (Some(old), true) = (old, turned_off) {
            let buf = std::mem::take(&mut *self.pending.borrow_mut());
            if !buf.is_empty() {
                // After a timed write still under way, which took its
                // lines first.
                rt::spawn(self.write(old, buf));
            }
        }
    }

    /// True when statements of a rule with `log` (`None`: no rule, or a
    /// rule that does not say) are logged.
    pub fn takes(&self, rule_log: Option<bool>) -> bool {
        rule_log.unwrap_or(self.all.get()) && self.file.borrow().is_some()
    }

    /// True when the log has a file (it may take statements).
    pub fn is_on(&self) -> bool {
        self.file.borrow().is_some()
    }

    /// The longest text a line keeps.
    pub fn max_text(&self) -> usize {
        self.max_text.get()
    }

    /// Logs `e` when it took at least `query_log.min_duration`.
    pub fn record(self: &Rc<Self>, e: &Entry) {
        if e.took < self.min_duration.get() {
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_PENDING {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        if pending.capacity() == 0 {
            *pending = std::mem::take(&mut *self.spare.borrow_mut());
        }
        write_line(&mut pending, self.core.get(), e);
        self.lines.set(self.lines.get() + 1);
        let full = pending.len() >= FLUSH_AT;
        drop(pending);
        if !self.flush_due.get() {
            self.flush_due.set(true);
            let log = self.clone();
            rt::spawn(async move {
                if !full {
                    rt::sleep(FLUSH_EVERY).await;
                }
                log.flush().await;
            });
        }
    }

    /// Writes the buffered lines, off the core's thread; then again while
    /// more came meanwhile.
    async fn flush(self: Rc<Self>) {
        loop {
            let Some(file) = self.file.borrow().clone() else {
                let mut pending = self.pending.borrow_mut();
                self.dropped.set(self.dropped.get() + count_lines(&pending));
                pending.clear();
                break;
            };
            let buf = std::mem::take(&mut *self.pending.borrow_mut());
            if buf.is_empty() {
                break;
            }
            self.write(file, buf).await;
            if self.pending.borrow().len() < FLUSH_AT {
                // What came meanwhile waits for the next timed flush.
                rt::sleep(FLUSH_EVERY).await;
            }
        }
        self.flush_due.set(false);
    }

    /// Writes `buf` to `file` off the core's thread once the core's write
    /// before it is done, then keeps the buffer for reuse. Its place in
    /// that order is taken at the call, not when the future first runs,
    /// and rests on no blocking pool running one job at a time: two
    /// writes under way at once on a slow disk or a pipe would land in
    /// either order, or mixed when larger than the kernel writes at once.
    fn write(self: &Rc<Self>, file: QueryLogFile, buf: Vec<u8>) -> impl Future<Output = ()> + 'static {
        let (done, turn) = oneshot::channel();
        let before = self.last_write.replace(Some(turn));
        let log = self.clone();
        // Sent also when this future is dropped unfinished, or before it
        // first ran, so the next write never waits for one that will not
        // come.
        let done = Done(Some(done));
        async move {
            let _done = done;
            if let Some(before) = before {
                before.await;
            }
            let (mut buf, written) = rt::spawn_blocking(move || {
                let written = (&*file.file).write_all(&buf);
                (buf, written.map_err(|e| (e, file.path)))
            })
            .await;
            if let Err((e, path)) = written {
                log.write_failed(&path, &e, &buf);
            }
            buf.clear();
            *log.spare.borrow_mut() = buf;
        }
    }

    /// Writes what is buffered now, after the core's writes under way
    /// (the core is stopping), and waits until all are done.
    pub async fn flush_at_stop(self: &Rc<Self>) {
        let buf = std::mem::take(&mut *self.pending.borrow_mut());
        let file = self.file.borrow().clone();
        if let (Some(file), false) = (file, buf.is_empty()) {
            self.write(file, buf).await;
        }
        // With nothing buffered, a write may still be under way (a timed
        // one, or a reload's that turned the log off).
        let last = self.last_write.borrow_mut().take();
        if let Some(last) = last {
            last.await;
        }
    }

    /// Counts the lines of `buf`, which could not be written, as dropped.
    fn write_failed(&self, path: &Path, e: &io::Error, buf: &[u8]) {
        self.dropped.set(self.dropped.get() + count_lines(buf));
        tracing::warn!(path = %path.display(), error = %e, "query log: write failed, lines dropped");
    }
}

/// Tells the next write that the one holding it is done, when dropped.
struct Done(Option<oneshot::Sender<()>>);

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            // The next write may not be waiting (none came yet).
            let _ = done.send(());
        }
    }
}

fn count_lines(buf: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', buf).count() as u64
}

/// Appends `e` to `out` as one JSON object and a newline.
fn write_line(out: &mut Vec<u8>, core: u16, e: &Entry) {
    // Writes to a Vec cannot fail.
    out.extend_from_slice(b"{\"time\":\"");
    write_time(out, e.started);
    let _ = write!(out, "\",\"core\":{core},\"client\":{},\"user\":", e.client);
    push_json_str(out, e.user.as_bytes());
    out.extend_from_slice(b",\"schema\":");
    push_json_opt(out, e.schema);
    out.extend_from_slice(b",\"peer\":");
    push_json_str(out, e.peer.as_bytes());
    let _ = write!(out, ",\"command\":\"{}\",\"text\":", e.command);
    push_json_str(out, e.text);
    if e.cut {
        out.extend_from_slice(b",\"text_cut\":true");
    }
    // The rule evaluation stopped at; and when rules chained, all of
    // those that matched.
    out.extend_from_slice(b",\"rule\":");
    push_number_opt(out, e.rules.last().map(|&r| r as u64));
    if let [first, rest @ ..] = e.rules {
        if !rest.is_empty() {
            let _ = write!(out, ",\"rules\":[{first}");
            for r in rest {
                let _ = write!(out, ",{r}");
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b",\"backend\":");
    push_json_opt(out, e.backend.map(str::as_bytes));
    if e.cached {
        out.extend_from_slice(b",\"cached\":true");
    }
    let _ = write!(
        out,
        ",\"duration_us\":{},\"rows\":{},\"affected\":{},\"error\":",
        e.took.as_micros(),
        e.rows,
        e.affected
    );
    push_number_opt(out, e.error.map(u64::from));
    out.extend_from_slice(b"}\n");
}

fn push_number_opt(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn push_json_opt(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `bytes` as a JSON string: invalid UTF-8 becomes U+FFFD, control
/// characters are escaped.
fn push_json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// `at` as RFC 3339 in UTC, to the microsecond (`2026-11-24T12:00:00.000123Z`).
fn write_time(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_micros()
    );
}

/// The proleptic Gregorian date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Counted in 400-year eras from 0000-03-01, where leap days fall at
    // the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_log_dates_are_the_calendar_ones() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let mut s = Vec::new();
        write_time(&mut s, UNIX_EPOCH + Duration::from_micros(1_764_000_000_000_123));
        assert_eq!(s, b"2025-11-24T16:00:00.000123Z");
    }

    #[test]
    fn query_log_write_dropped_before_it_ran_holds_up_no_later_one() {
        let dir = std::env::temp_dir().join(format!("funnel-qlog-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = QueryLogConfig {
            path: Some(dir.join("q.jsonl")),
            all: true,
            ..QueryLogConfig::default()
        };
        let file = QueryLogFile::open(&config).unwrap().unwrap();
        glommio::LocalExecutor::default().run(async {
            let log = Rc::new(QueryLog::default());
            // As at an executor's end: a write's task dropped unpolled.
            drop(log.write(file.clone(), b"first\n".to_vec()));
            let second = log.write(file, b"second\n".to_vec());
            let done = rt::timeout(Duration::from_secs(5), second).await;
            assert!(done.is_some(), "the second write waited for the dropped one");
        });
        assert_eq!(std::fs::read(dir.join("q.jsonl")).unwrap(), b"second\n");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn query_log_lines_are_json_whatever_the_text() {
        let e = Entry {
            started: UNIX_EPOCH,
            took: Duration::from_micros(1500),
            client: 7,
            user: "app",
            schema: Some(b"shop"),
            peer: "127.0.0.1:4000",
            command: "query",
            text: b"SELECT '\"a\\b'\n\t\x01\xff",
            cut: true,
            rules: &[2],
            backend: Some("primary"),
            cached: false,
            rows: 1,
            affected: 0,
            error: Some(1064),
        };
        let mut out = Vec::new();
        write_line(&mut out, 3, &e);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "{\"time\":\"1970-01-01T00:00:00.000000Z\",\"core\":3,\"client\":7,\"user\":\"app\",\
             \"schema\":\"shop\",\"peer\":\"127.0.0.1:4000\",\"command\":\"query\",\
             \"text\":\"SELECT '\\\"a\\\\b'\\n\\t\\u0001\u{fffd}\",\"text_cut\":true,\"rule\":2,\
             \"backend\":\"primary\",\"duration_us\":1500,\"rows\":1,\"affected\":0,\"error\":1064}\n"
        );
        // Rules that chained: the last as `rule`, all of them as `rules`;
        // none: `null`.
        let mut out = Vec::new();
        write_line(
            &mut out,
            3,
            &Entry {
                rules: &[0, 4, 5],
                ..e
            },
        );
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.contains(",\"rule\":5,\"rules\":[0,4,5],\"backend\""),
            "{line}"
        );
        let mut out = Vec::new();
        write_line(&mut out, 3, &Entry { rules: &[], ..e });
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains(",\"rule\":null,\"backend\""), "{line}");
    }
}
