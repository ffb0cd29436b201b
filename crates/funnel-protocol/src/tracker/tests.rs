use super::*;
use crate::testdata::{golden, Dir};
use bytes::{BufMut, BytesMut};

const CAPS: Capabilities =
    Capabilities(Capabilities::CLIENT_PROTOCOL_41.0 | Capabilities::CLIENT_SESSION_TRACK.0);
const CAPS_DEPRECATE_EOF: Capabilities = Capabilities(CAPS.0 | Capabilities::CLIENT_DEPRECATE_EOF.0);

/// Feeds packets and returns the events.
fn run(t: &mut ResponseTracker, pkts: &[Vec<u8>]) -> Vec<Event> {
    pkts.iter().map(|p| t.feed(p, p.len()).unwrap()).collect()
}

fn ok(status: u16) -> Vec<u8> {
    let mut b = BytesMut::new();
    OkPacket {
        status: StatusFlags(status),
        ..Default::default()
    }
    .write(&mut b, CAPS);
    b.to_vec()
}

fn eof(status: u16) -> Vec<u8> {
    vec![0xfe, 0, 0, status as u8, (status >> 8) as u8]
}

fn column_def() -> Vec<u8> {
    let mut b = BytesMut::new();
    crate::resultset::ColumnDefinition::text("c").write(&mut b);
    b.to_vec()
}

/// Every server response in the golden exchange, tracked with the client's
/// capabilities (no DEPRECATE_EOF), ends exactly at its last packet.
#[test]
fn protocol_tracker_golden_exchange() {
    let pkts = golden("login_and_queries.txt");
    let server = crate::handshake::HandshakeV10::parse(&pkts[0].2)
        .unwrap()
        .capabilities;
    let crate::handshake::ClientHello::Response(login) =
        crate::handshake::HandshakeResponse41::parse(&pkts[1].2).unwrap()
    else {
        panic!("login expected")
    };
    // The mariadb CLI negotiated MariaDB's metadata cache: column counts carry a flag byte.
    let client_caps = server.intersect(login.capabilities);
    assert!(client_caps.contains(Capabilities::MARIADB_CLIENT_CACHE_METADATA));
    // Skip greeting, login and login OK; then alternate command / response.
    let mut i = 3;
    let mut summaries = Vec::new();
    while i < pkts.len() {
        let (dir, _, cmd) = &pkts[i];
        assert_eq!(*dir, Dir::C2s);
        i += 1;
        if cmd == &[0x01] {
            break; // COM_QUIT has no response
        }
        let mut t = ResponseTracker::new(
            Expect::Results,
            client_caps,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        );
        loop {
            let (dir, _, p) = &pkts[i];
            assert_eq!(*dir, Dir::S2c);
            i += 1;
            if t.feed(p, p.len()).unwrap() == Event::Done {
                break;
            }
        }
        summaries.push(t.into_summary());
    }
    // SELECT 1; SELECT id,name,n; INSERT; BEGIN; SELECT 2; COMMIT
    assert_eq!(summaries.len(), 6);
    assert_eq!((summaries[0].result_sets, summaries[0].rows), (1, 1));
    assert_eq!((summaries[1].result_sets, summaries[1].rows), (1, 3));
    assert_eq!((summaries[2].affected_rows, summaries[2].last_insert_id), (1, 4));
    assert!(!summaries[2].status.in_transaction());
    assert!(summaries[3].status.in_transaction(), "BEGIN opens a transaction");
    assert!(
        summaries[4].status.in_transaction(),
        "the EOF of SELECT 2 says in transaction"
    );
    assert!(!summaries[5].status.in_transaction(), "COMMIT ends it");
}

#[test]
fn protocol_tracker_multi_results_and_error() {
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    let more = StatusFlags::SERVER_MORE_RESULTS_EXISTS.0 | 2;
    let events = run(
        &mut t,
        &[
            ok(more | 1), // BEGIN; with more results
            vec![1],
            column_def(),
            eof(more | 1),
            vec![1, b'x'],
            eof(more | 1),
            vec![0xff, 0x7a, 0x04, b'#', b'4', b'2', b'S', b'0', b'2', b'n', b'o'],
        ],
    );
    assert_eq!(events.last(), Some(&Event::Done));
    assert!(events[..events.len() - 1].iter().all(|e| *e == Event::More));
    let s = t.summary();
    assert_eq!(s.error.as_ref().unwrap().code, 1146);
    assert!(s.status.in_transaction(), "status before the ERR is kept");
    assert_eq!((s.result_sets, s.rows), (1, 1));
}

/// What the statements of a multi-statement query leave for the next one:
/// the last generated id of any of them, the last result set's rows, and
/// whether the last result was rows or an OK.
#[test]
fn protocol_tracker_multi_results_summarise_the_last_statement() {
    let more = StatusFlags::SERVER_MORE_RESULTS_EXISTS.0 | 2;
    let insert = |status: u16, id: u64| {
        let mut b = BytesMut::new();
        OkPacket {
            affected_rows: 1,
            last_insert_id: id,
            status: StatusFlags(status),
            ..Default::default()
        }
        .write(&mut b, CAPS);
        b.to_vec()
    };
    let select = |rows: usize, status: u16| {
        let mut p = vec![vec![1], column_def(), eof(more)];
        p.extend((0..rows).map(|_| vec![1, b'x']));
        p.push(eof(status));
        p
    };
    // INSERT (id 7); SELECT 2 rows; SELECT 3 rows
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    let mut pkts = vec![insert(more, 7)];
    pkts.extend(select(2, more));
    pkts.extend(select(3, 2));
    assert_eq!(run(&mut t, &pkts).last(), Some(&Event::Done));
    let s = t.summary();
    assert_eq!((s.rows, s.last_result_rows, s.result_sets), (5, 3, 2));
    assert!(s.ended_with_result_set);
    assert_eq!(s.last_insert_id, 7, "a later SELECT does not forget the id");
    // SELECT 2 rows; INSERT (id 9)
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    let mut pkts = select(2, more);
    pkts.push(insert(2, 9));
    assert_eq!(run(&mut t, &pkts).last(), Some(&Event::Done));
    let s = t.summary();
    assert_eq!((s.last_result_rows, s.affected_rows, s.last_insert_id), (2, 1, 9));
    assert!(!s.ended_with_result_set, "the last result is an OK");
}

#[test]
fn protocol_tracker_deprecate_eof_result_set() {
    let mut t = ResponseTracker::new(Expect::Results, CAPS_DEPRECATE_EOF, StatusFlags(2));
    let mut term = BytesMut::new();
    OkPacket {
        status: StatusFlags(2),
        warnings: 1,
        ..Default::default()
    }
    .write_with_header(&mut term, CAPS_DEPRECATE_EOF, 0xfe);
    let events = run(
        &mut t,
        &[
            vec![2],
            column_def(),
            column_def(),
            vec![1, b'a', 1, b'b'],
            term.to_vec(),
        ],
    );
    assert_eq!(
        events,
        vec![Event::More, Event::More, Event::More, Event::More, Event::Done]
    );
    assert_eq!((t.summary().rows, t.summary().warnings), (1, 1));
}

#[test]
fn protocol_tracker_local_infile() {
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    assert_eq!(t.feed(b"\xfb/tmp/x.csv", 11).unwrap(), Event::LocalInfile);
    let mut okp = BytesMut::new();
    OkPacket {
        affected_rows: 3,
        status: StatusFlags(2),
        ..Default::default()
    }
    .write(&mut okp, CAPS);
    assert_eq!(t.feed(&okp, okp.len()).unwrap(), Event::Done);
    assert_eq!(t.summary().affected_rows, 3);
}

#[test]
fn protocol_tracker_prepare() {
    let prep = |params: u16, cols: u16| {
        let mut b = BytesMut::new();
        b.put_u8(0);
        b.put_u32_le(7);
        b.put_u16_le(cols);
        b.put_u16_le(params);
        b.put_u8(0);
        b.put_u16_le(0);
        b.to_vec()
    };
    // Two params, one column, classic EOFs.
    let mut t = ResponseTracker::new(Expect::Prepare, CAPS, StatusFlags(2));
    let ev = run(
        &mut t,
        &[
            prep(2, 1),
            column_def(),
            column_def(),
            eof(2),
            column_def(),
            eof(2),
        ],
    );
    assert_eq!(ev.last(), Some(&Event::Done));
    assert_eq!(ev.iter().filter(|e| **e == Event::Done).count(), 1);
    assert_eq!(t.summary().prepared.unwrap().stmt_id, 7);
    // No params, no columns: done at once.
    let mut t = ResponseTracker::new(Expect::Prepare, CAPS, StatusFlags(2));
    assert_eq!(run(&mut t, &[prep(0, 0)]), vec![Event::Done]);
    // DEPRECATE_EOF: no EOFs.
    let mut t = ResponseTracker::new(Expect::Prepare, CAPS_DEPRECATE_EOF, StatusFlags(2));
    assert_eq!(
        run(&mut t, &[prep(1, 1), column_def(), column_def()]),
        vec![Event::More, Event::More, Event::Done]
    );
    // ERR.
    let mut t = ResponseTracker::new(Expect::Prepare, CAPS, StatusFlags(2));
    assert_eq!(
        run(
            &mut t,
            &[vec![0xff, 0x28, 0x04, b'#', b'4', b'2', b'0', b'0', b'0']]
        ),
        vec![Event::Done]
    );
    assert_eq!(t.summary().error.as_ref().unwrap().code, 1064);
}

#[test]
fn protocol_tracker_cursor_execute_then_fetch() {
    let cursor = StatusFlags::SERVER_STATUS_CURSOR_EXISTS.0 | 2;
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    assert_eq!(
        run(&mut t, &[vec![1], column_def(), eof(cursor)]),
        vec![Event::More, Event::More, Event::Done]
    );
    assert!(t
        .summary()
        .status
        .contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS));
    let mut t = ResponseTracker::new(Expect::Fetch, CAPS, StatusFlags(cursor));
    assert_eq!(
        run(&mut t, &[vec![0, 0, 1], vec![0, 0, 2], eof(cursor | 128)]),
        vec![Event::More, Event::More, Event::Done]
    );
    assert_eq!(t.summary().rows, 2);
}

#[test]
fn protocol_tracker_status_field_list_statistics() {
    let mut t = ResponseTracker::new(Expect::Status, CAPS, StatusFlags(2));
    assert_eq!(run(&mut t, &[ok(2)]), vec![Event::Done]);
    let mut t = ResponseTracker::new(Expect::Status, CAPS, StatusFlags(2));
    assert_eq!(run(&mut t, &[eof(2)]), vec![Event::Done]);
    let mut t = ResponseTracker::new(Expect::Status, CAPS, StatusFlags(2));
    assert!(t.feed(&[0x05], 1).is_err());
    let mut t = ResponseTracker::new(Expect::FieldList, CAPS, StatusFlags(2));
    assert_eq!(
        run(&mut t, &[column_def(), column_def(), eof(2)]),
        vec![Event::More, Event::More, Event::Done]
    );
    let mut t = ResponseTracker::new(Expect::Statistics, CAPS, StatusFlags(2));
    assert_eq!(
        run(&mut t, &[b"Uptime: 5  Threads: 1".to_vec()]),
        vec![Event::Done]
    );
    assert!(t.feed(b"x", 1).is_err(), "nothing after the end");
}

#[test]
fn protocol_tracker_row_over_16mib_is_not_a_terminator() {
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    run(&mut t, &[vec![1], column_def(), eof(2)]);
    // A row whose first value is 16 MiB long starts with 0xfe; the first chunk
    // is a full 0xffffff bytes and the continuation may look like anything.
    let first_chunk_prefix = [0xfe, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(t.feed(&first_chunk_prefix, MAX_CHUNK).unwrap(), Event::More);
    assert_eq!(
        t.feed(&eof(2), 5).unwrap(),
        Event::More,
        "continuation, not an EOF"
    );
    assert_eq!(t.feed(&eof(2), 5).unwrap(), Event::Done);
    assert_eq!(t.summary().rows, 1);
}

#[test]
fn protocol_tracker_never_panics_on_garbage() {
    use proptest::prelude::*;
    proptest!(|(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..20), deprecate in any::<bool>(), kind in 0usize..6)| {
        let expect = [Expect::Status, Expect::Results, Expect::Prepare, Expect::Fetch, Expect::FieldList, Expect::Statistics][kind];
        let caps = if deprecate { CAPS_DEPRECATE_EOF } else { CAPS };
        let mut t = ResponseTracker::new(expect, caps, StatusFlags(2));
        for p in &pkts {
            match t.feed(p, p.len()) {
                Ok(Event::Done) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
}

// Regressions found by the fuzz targets (fuzz/README.md, known issues 3-5).

#[test]
fn protocol_tracker_fetch_first_row_over_16mib_keeps_continuation() {
    let mut t = ResponseTracker::new(Expect::Fetch, CAPS, StatusFlags(2));
    assert_eq!(t.feed(&[0, 0, 1, 2, 3], MAX_CHUNK).unwrap(), Event::More);
    assert_eq!(t.feed(&eof(2), 5).unwrap(), Event::More, "rest of the 16 MiB row");
    assert_eq!(t.feed(&eof(2), 5).unwrap(), Event::Done);
    assert_eq!(t.summary().rows, 1);
}

#[test]
fn protocol_tracker_prefix_of_big_row_is_not_a_terminator() {
    for caps in [CAPS, CAPS_DEPRECATE_EOF] {
        let mut t = ResponseTracker::new(Expect::Results, caps, StatusFlags(2));
        let defs = if caps == CAPS {
            vec![vec![1], column_def(), eof(2)]
        } else {
            vec![vec![1], column_def()]
        };
        run(&mut t, &defs);
        // Only the first 9 bytes of a row whose first value is 16 MiB long
        // (the only way a row starts with 0xfe): its first chunk is full.
        assert_eq!(
            t.feed(&[0xfe, 0, 0, 0, 1, 0, 0, 0, 0], MAX_CHUNK).unwrap(),
            Event::More
        );
        assert_eq!(t.summary().rows, 1);
    }
}

#[test]
fn protocol_tracker_oversized_non_row_packets_are_refused() {
    let mut t = ResponseTracker::new(Expect::Status, CAPS, StatusFlags(2));
    assert!(t.feed(&[0xff, 0x15, 0x04], MAX_CHUNK).is_err());
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    assert!(t.feed(&[0x00, 0, 0, 2, 0, 0, 0], MAX_CHUNK).is_err());
    let mut t = ResponseTracker::new(Expect::FieldList, CAPS, StatusFlags(2));
    assert!(t.feed(&column_def(), MAX_CHUNK).is_err());
}

/// `SELECT 1; SELECT f(); SELECT 2` where `f()` sets a user variable: only
/// the middle result's EOF says so, and the summary must remember it.
#[test]
fn protocol_tracker_remembers_a_state_change_in_any_result() {
    const MORE: u16 = 0x0008 | 0x0002;
    const CHANGED: u16 = 0x4000;
    let one_result = |status: u16| vec![vec![0x01], column_def(), eof(2), vec![0x01, b'1'], eof(status)];
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    let mut flagged = Vec::new();
    for (i, status) in [MORE, MORE | CHANGED, 2].into_iter().enumerate() {
        for p in one_result(status) {
            t.feed(&p, p.len()).unwrap();
            if t.fed_state_change() {
                flagged.push(i);
            }
        }
    }
    assert!(t.is_done());
    assert_eq!(flagged, [1], "only the flagged terminator is reported as such");
    let summary = t.into_summary();
    assert!(summary.state_changed);
    assert!(!summary.status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED));

    // An OK with the flag (a trigger's `SET @v`), and a plain one.
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    let flagged_ok = vec![0, 1, 0, 2, 0x40, 0, 0, 0, 3, 2, 1, b'1'];
    assert_eq!(run(&mut t, &[flagged_ok]), [Event::Done]);
    assert!(t.fed_state_change() && t.summary().state_changed);
    let mut t = ResponseTracker::new(Expect::Results, CAPS, StatusFlags(2));
    run(&mut t, &[ok(2)]);
    assert!(!t.fed_state_change() && !t.summary().state_changed);
}
