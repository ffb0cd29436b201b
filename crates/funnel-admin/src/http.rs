//! A minimal HTTP listener for `GET /metrics` (Prometheus) and
//! `GET /healthz` (200 only when every core answers and a backend is up).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use funnel_engine::{ProxyHandle, ShardSnapshot};

use crate::conn_slots::{ConnSlot, ConnSlots, Deadline, ACCEPT_BACKOFF};
use crate::metrics;

/// The most of a request read: its line and headers (a scrape sends a few
/// hundred bytes).
const MAX_REQUEST: u64 = 8 * 1024;

/// The least time between two rounds of snapshots taken for requests:
/// every round asks each core for its figures, work taken from its
/// clients, so however many requests arrive the cores do at most ten
/// rounds a second for them.
const MIN_ROUND_GAP: Duration = Duration::from_millis(100);

/// One round of the cores' snapshots, shared by the requests that wait
/// for it; the `/metrics` text is rendered once per round.
struct Round {
    /// When it was asked for.
    started: Instant,
    shards: Vec<ShardSnapshot>,
    /// When client TLS's certificate expires (Unix seconds).
    tls_not_after: Option<i64>,
    text: OnceLock<String>,
}

impl Round {
    fn metrics(&self) -> &str {
        self.text.get_or_init(|| {
            let mut text = metrics::render(&self.shards);
            metrics::render_tls_expiry(&mut text, self.tls_not_after);
            text
        })
    }
}

#[derive(Default)]
struct RoundsState {
    /// When the last round was asked for.
    last_started: Option<Instant>,
    /// A round is being taken.
    in_flight: bool,
    last: Option<Arc<Round>>,
}

/// Coalesces requests into rounds of snapshots: a request is answered
/// from a round asked for after it arrived (never older figures than a
/// request of its own would give), rounds start at least
/// [`MIN_ROUND_GAP`] apart, and the requests that wait together share
/// one. Without it, every scrape took a round: many connections (or a
/// scraper run amok) kept the cores building snapshots, and clients'
/// queries waited behind them.
#[derive(Default)]
struct Rounds {
    state: Mutex<RoundsState>,
    done: Condvar,
}

impl Rounds {
    fn get(&self, handle: &ProxyHandle) -> Arc<Round> {
        let arrived = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(last) = st.last.as_ref().filter(|r| r.started >= arrived) {
                return last.clone();
            }
            if st.in_flight {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let now = Instant::now();
            if let Some(wait) = st
                .last_started
                .map(|t| (t + MIN_ROUND_GAP).saturating_duration_since(now))
                .filter(|w| !w.is_zero())
            {
                drop(st);
                thread::sleep(wait);
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.in_flight = true;
            st.last_started = Some(now);
            drop(st);
            let round = Arc::new(Round {
                started: now,
                shards: handle.snapshots(),
                tls_not_after: handle.client_tls_not_after(),
                text: OnceLock::new(),
            });
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.in_flight = false;
            st.last = Some(round.clone());
            self.done.notify_all();
            return round;
        }
    }
}

/// A running metrics listener.
pub struct MetricsServer {
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `listen`; `cores` is how many cores must answer for health.
    pub fn start(listen: SocketAddr, handle: ProxyHandle, cores: usize) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        thread::Builder::new()
            .name("funnel-metrics".into())
            .spawn(move || {
                let slots = ConnSlots::default();
                let rounds = Arc::new(Rounds::default());
                for conn in listener.incoming() {
                    let Ok(conn) = conn else {
                        thread::sleep(ACCEPT_BACKOFF);
                        continue;
                    };
                    let Some(slot) = slots.take(&conn) else {
                        // Every place is answering a request: say so (a
                        // fresh socket takes these bytes without waiting).
                        let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
                        let _ = answer(&conn, false, "503 Service Unavailable", "text/plain", "busy\n");
                        continue;
                    };
                    let handle = handle.clone();
                    let rounds = rounds.clone();
                    let _ = thread::Builder::new()
                        .name("funnel-metrics-conn".into())
                        .spawn(move || {
                            let _ = serve(conn, &slot, &handle, &rounds, cores);
                        });
                }
            })?;
        Ok(MetricsServer { addr })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve(
    conn: TcpStream,
    slot: &ConnSlot,
    handle: &ProxyHandle,
    rounds: &Rounds,
    cores: usize,
) -> io::Result<()> {
    // Bounded in size and in time: a peer that never sends a line end
    // cannot grow the buffer, nor hold the thread by sending slowly.
    let request = Deadline::new(conn.try_clone()?, Duration::from_secs(10));
    let mut reader = BufReader::new(request.take(MAX_REQUEST));
    // Bytes, not a String: a line that is not UTF-8 (a TLS hello, a
    // scanner's probe) is answered 400, not dropped without a word.
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first)?;
    // Skip the headers.
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 2 {
        line.clear();
    }
    // The request is in: this connection is no longer the one to cut off
    // when the port is full.
    slot.settle();
    let request = String::from_utf8_lossy(&first);
    let mut parts = request.split_whitespace();
    // Exactly a method, a target and an HTTP version.
    let (method, target) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None) if version.starts_with("HTTP/") => (method, target),
        _ => {
            return answer(
                &conn,
                false,
                "400 Bad Request",
                "text/plain",
                "not an HTTP request\n",
            )
        }
    };
    // Only reads: a HEAD is answered as a GET without the body (a probe
    // that sends one must not read the body as its next response).
    let head = method == "HEAD";
    if method != "GET" && !head {
        return answer(
            &conn,
            false,
            "405 Method Not Allowed\r\nAllow: GET, HEAD",
            "text/plain",
            "only GET and HEAD\n",
        );
    }
    // Prometheus appends a scrape job's `params` as a query string.
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let round;
    let (status, ctype, body) = match path {
        "/metrics" => {
            round = rounds.get(handle);
            ("200 OK", "text/plain; version=0.0.4", round.metrics().to_string())
        }
        // A graceful stop refuses new clients while it drains (up to
        // 30 s): a load balancer must stop sending them at once.
        "/healthz" if handle.is_stopping() => {
            ("503 Service Unavailable", "text/plain", "stopping\n".to_string())
        }
        "/healthz" => {
            let shards = &rounds.get(handle).shards;
            let backend_up = shards
                .iter()
                .flat_map(|s| s.pools.iter())
                .any(|p| p.status == "up");
            if shards.len() == cores && backend_up {
                ("200 OK", "text/plain", "ok\n".to_string())
            } else {
                let why = format!(
                    "{}/{cores} cores answered; backend up: {backend_up}\n",
                    shards.len()
                );
                ("503 Service Unavailable", "text/plain", why)
            }
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".to_string(),
        ),
    };
    answer(&conn, head, status, ctype, &body)
}

/// Sends one response and nothing more (`Connection: close`); `head`
/// leaves the body out, keeping its length.
fn answer(conn: &TcpStream, head: bool, status: &str, ctype: &str, body: &str) -> io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head {
        response.push_str(body);
    }
    write_within(conn, response.as_bytes(), Duration::from_secs(10))
}

/// Writes all of `bytes` within `limit` in all, however slowly the peer
/// reads (a timeout per write would let it hold the connection longer).
fn write_within(mut conn: &TcpStream, mut bytes: &[u8], limit: Duration) -> io::Result<()> {
    let until = std::time::Instant::now() + limit;
    while !bytes.is_empty() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response deadline passed",
            ));
        }
        conn.set_write_timeout(Some(left))?;
        let n = conn.write(bytes)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}
