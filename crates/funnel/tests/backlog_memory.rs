//! Memory stays bounded with 10,000 clients and a full backlog: the
//! `funnel` binary (its own process, so each side stays under the
//! 20,000 open-files limit) with one backend connection, held by a slow
//! statement while 9,999 other clients queue behind it. Funnel's RSS is
//! read before, with the clients idle, and with every one of them
//! waiting; then the backlog drains and every client gets its answer.
//!
//! The bound is loose on purpose (it catches per-client buffers that grow
//! or leak, not a few KiB): the real numbers are in bench/.

use std::thread;
use std::time::Duration;

use funnel_testkit::mini_client::MiniClient;

const CLIENTS: usize = 10_000;
/// Generous per-client ceiling: a waiting client needs its socket state,
/// a session and a queued command, a few KiB.
const MAX_BYTES_PER_CLIENT: u64 = 64 * 1024;

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only touch the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur as usize > CLIENTS + 500,
        "open-files hard limit {} is too low for {CLIENTS} clients",
        lim.rlim_cur
    );
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Reads one `SELECT 1` answer (text protocol, EOF style); the value or the error.
fn read_select_one(c: &mut MiniClient) -> Result<String, String> {
    let mut eofs = 0;
    let mut value = None;
    while eofs < 2 {
        let (_, p) = c.read_packet().map_err(|e| format!("{e:?}"))?;
        match p.first() {
            Some(0xff) => return Err(String::from_utf8_lossy(&p).into_owned()),
            Some(0xfe) if p.len() < 9 => eofs += 1,
            _ if eofs == 1 => value = Some(String::from_utf8_lossy(&p[1..]).into_owned()),
            _ => {}
        }
    }
    value.ok_or_else(|| "no row".to_string())
}

#[test]
fn ten_thousand_clients_with_a_full_backlog_stay_bounded() {
    raise_nofile();
    let dir = tempfile::tempdir().unwrap();
    let funnel = funnel_testkit::funnel::spawn(
        env!("CARGO_BIN_EXE_funnel"),
        "backlogmem",
        &format!(
            "pool:\n  max_per_core: 1\n  min_idle_per_core: 1\n\
             backlog:\n  max_waiting_per_core: {CLIENTS}\n  wait_timeout: 120s\n\
             client:\n  max_connections: 12000\n"
        ),
        dir.path(),
    );
    let (pid, addr) = (funnel.child.id(), funnel.addr);
    let mut holder = MiniClient::connect(addr, "app", "pw", None).unwrap();
    holder.query("SELECT 1").unwrap();
    let before = rss_bytes(pid);

    let mut clients: Vec<MiniClient> = (1..CLIENTS)
        .map(|i| MiniClient::connect(addr, "app", "pw", None).unwrap_or_else(|e| panic!("client {i}: {e:?}")))
        .collect();
    let idle = rss_bytes(pid);

    // The only backend connection is busy for a while; everyone else queues.
    holder.send_query("SELECT SLEEP(6)").unwrap();
    thread::sleep(Duration::from_millis(300));
    for c in &mut clients {
        c.send_query("SELECT 1").unwrap();
    }
    thread::sleep(Duration::from_secs(2));
    let waiting = rss_bytes(pid);

    // The backlog drains: every client gets its row, none an error. A
    // loaded machine may take a while, so the wait is long.
    let mut failures = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let s = c.try_clone_stream().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        match read_select_one(c) {
            Ok(v) if v.ends_with('1') => {}
            other => failures.push((i, other)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} clients failed, first: {:?}, last: {:?}",
        failures.len(),
        clients.len(),
        failures.first(),
        failures.last()
    );
    let after = rss_bytes(pid);
    eprintln!(
        "funnel RSS: start {} KiB, {CLIENTS} idle {} KiB, all waiting {} KiB, drained {} KiB",
        before / 1024,
        idle / 1024,
        waiting / 1024,
        after / 1024
    );
    for (what, rss) in [("idle", idle), ("waiting", waiting), ("drained", after)] {
        let per_client = rss.saturating_sub(before) / CLIENTS as u64;
        assert!(
            per_client < MAX_BYTES_PER_CLIENT,
            "{what}: {per_client} bytes per client (RSS {rss}, start {before})"
        );
    }
    drop(funnel);
}
