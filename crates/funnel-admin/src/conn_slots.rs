//! What keeps the admin and metrics listeners, one thread per connection,
//! from being exhausted: a cap on connections served at once, a deadline
//! for a whole exchange (a peer dripping a byte now and then cannot hold a
//! place for hours), and a pause after a failed accept (out of file
//! descriptors, a failed accept returns at once, and a loop retrying it
//! would take a whole CPU from the cores).

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections a listener serves at once. At the cap, a new connection
/// takes the place of the one that has waited longest without finishing
/// its first step (an admin login, an HTTP request); when every place is
/// past that step, the new one is refused.
pub const MAX_CONNECTIONS: usize = 32;

/// How long an accept loop waits after a failed accept.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections being served. Only the operator ports' accept and
/// connection threads use it, never the data path.
#[derive(Clone, Debug, Default)]
pub struct ConnSlots(Arc<Mutex<Places>>);

#[derive(Debug, Default)]
struct Places {
    next_id: u64,
    held: Vec<Place>,
}

#[derive(Debug)]
struct Place {
    id: u64,
    since: Instant,
    /// The connection, while it may be cut off to make room: until its
    /// first step is done.
    unsettled: Option<TcpStream>,
}

/// One connection's place; frees it when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    places: Arc<Mutex<Places>>,
    id: u64,
}

impl ConnSlots {
    /// A place for `conn`, or `None` at the cap when every connection
    /// held is past its first step. Otherwise, at the cap, the connection
    /// that has waited longest in its first step is shut down to make
    /// room: a peer that opens connections and sends nothing cannot keep
    /// an operator, or a health probe, out.
    pub fn take(&self, conn: &TcpStream) -> Option<ConnSlot> {
        let mut places = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if places.held.len() >= MAX_CONNECTIONS {
            let oldest = places
                .held
                .iter()
                .enumerate()
                .filter(|(_, p)| p.unsettled.is_some())
                .min_by_key(|(_, p)| p.since)
                .map(|(i, _)| i)?;
            let cut = places.held.swap_remove(oldest);
            if let Some(stream) = cut.unsettled {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
        let id = places.next_id;
        places.next_id += 1;
        places.held.push(Place {
            id,
            since: Instant::now(),
            unsettled: conn.try_clone().ok(),
        });
        Some(ConnSlot {
            places: self.0.clone(),
            id,
        })
    }

    /// How many places are held.
    pub fn held(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).held.len()
    }
}

impl ConnSlot {
    /// The connection finished its first step: from now on it keeps its
    /// place until it ends.
    pub fn settle(&self) {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = places.held.iter_mut().find(|p| p.id == self.id) {
            p.unsettled = None;
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        // Gone already when it was cut off to make room.
        if let Some(i) = places.held.iter().position(|p| p.id == self.id) {
            places.held.swap_remove(i);
        }
    }
}

/// Reads from a socket until one deadline, however the reads are split.
#[derive(Debug)]
pub struct Deadline {
    stream: TcpStream,
    until: Instant,
}

impl Deadline {
    /// Reads from `stream` for at most `limit` from now.
    pub fn new(stream: TcpStream, limit: Duration) -> Deadline {
        Deadline {
            stream,
            until: Instant::now() + limit,
        }
    }

    /// Sets the socket's read timeout to what is left; `TimedOut` once
    /// nothing is.
    pub fn arm(stream: &TcpStream, until: Instant) -> io::Result<()> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        stream.set_read_timeout(Some(left))
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Deadline::arm(&self.stream, self.until)?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_slots_cap_make_room_and_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = Vec::new();
        let mut peers = Vec::new();
        let accept = |peers: &mut Vec<TcpStream>| {
            peers.push(TcpStream::connect(addr).unwrap());
            let (conn, _) = listener.accept().unwrap();
            conn
        };
        let slots = ConnSlots::default();
        for _ in 0..MAX_CONNECTIONS {
            let conn = accept(&mut peers);
            accepted.push((slots.take(&conn).unwrap(), conn));
        }
        // Over the cap: the oldest unsettled place is cut off.
        let first_peer_cut = {
            let conn = accept(&mut peers);
            let slot = slots.take(&conn).expect("room made");
            accepted.push((slot, conn));
            let mut byte = [0u8; 1];
            peers[0].set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            matches!(peers[0].read(&mut byte), Ok(0) | Err(_))
        };
        assert!(first_peer_cut, "the oldest waiting connection was shut down");
        assert_eq!(slots.held(), MAX_CONNECTIONS);
        // Settled places are never cut: with all of them settled, refused.
        for (slot, _) in &accepted {
            slot.settle();
        }
        let conn = accept(&mut peers);
        assert!(slots.take(&conn).is_none());
        accepted.truncate(2);
        assert_eq!(slots.held(), 1, "dropped places are freed, the cut one once");
        assert!(slots.take(&conn).is_some());
    }
}
