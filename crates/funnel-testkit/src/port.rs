//! Picks free TCP ports for servers to listen on.

use std::{
    collections::BTreeSet,
    io,
    net::{Ipv4Addr, TcpListener},
    sync::{Mutex, PoisonError},
};

/// Returns a port on 127.0.0.1 that was free a moment ago.
///
/// The kernel picks it (bind to port 0), we release it and mariadbd binds it later, so another
/// process can take it in between; callers retry on "Address already in use". Ports this process
/// handed out before are skipped, so two servers started at once never get the same one from us.
pub(crate) fn pick_free_port() -> io::Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// Returns a port on 127.0.0.1 that was free a moment ago, for a process
/// this test starts to listen on, taken below the kernel's ephemeral range.
///
/// A port the kernel picks (bind to port 0) comes from the range it also
/// gives the outgoing connections of every test running alongside (a sweep
/// opens thousands), so one of those may hold it by the time the process
/// binds it. Ports here are tried from a place that differs per process and
/// call, and never handed out twice by this process.
pub fn listen_port() -> u16 {
    static NEXT: Mutex<Option<u32>> = Mutex::new(None);
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000; // up to 31999, below the usual 32768
    let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut at = next.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (std::process::id().wrapping_mul(7_919) ^ nanos) % SPAN
    });
    for _ in 0..SPAN {
        // A stride prime to SPAN walks the whole span before a repeat.
        at = (at + 7_919) % SPAN;
        let port = (LOW + at) as u16;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            *next = Some(at);
            return port;
        }
    }
    pick_free_port().expect("a free port on 127.0.0.1")
}

/// Whether an error log excerpt says mariadbd could not bind its port because it was taken.
pub(crate) fn bind_failed(log: &str) -> bool {
    // MariaDB 10.x/11.x: "Can't start server: Bind on TCP/IP port. Got error: 98: Address already
    // in use". errno 98 is EADDRINUSE on Linux; the text depends on the locale, the number does not.
    log.contains("Got error: 98") || log.contains("Address already in use")
}

#[cfg(test)]
mod tests {
    use super::{bind_failed, pick_free_port};

    #[test]
    fn testkit_recognises_a_taken_port() {
        // Captured from MariaDB 10.11.19 started on a port that was in use.
        let log = "[ERROR] Can't start server: Bind on TCP/IP port. Got error: 98: Address \
                   already in use\n[ERROR] Do you already have another server running on port: \
                   34567 ?\n[ERROR] Aborting";
        assert!(bind_failed(log));
        assert!(!bind_failed("[ERROR] mariadbd: unknown option '--bogus'"));
    }

    #[test]
    fn testkit_listen_ports_are_below_the_ephemeral_range_and_distinct() {
        let ports: std::collections::BTreeSet<u16> = (0..50).map(|_| super::listen_port()).collect();
        assert_eq!(ports.len(), 50);
        assert!(ports.iter().all(|p| (10_000..32_000).contains(p)), "{ports:?}");
    }

    #[test]
    fn testkit_free_ports_are_not_handed_out_twice() {
        let ports: std::collections::BTreeSet<u16> = (0..50).map(|_| pick_free_port().unwrap()).collect();
        assert_eq!(ports.len(), 50);
    }
}
