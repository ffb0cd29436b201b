//! Response decoders and the `ResponseTracker`.
//!
//! Input layout:
//!
//! | bytes     | meaning                                                           |
//! |-----------|-------------------------------------------------------------------|
//! | `[0]`     | the `Expect` (mod 6: Status, Results, Prepare, Fetch, FieldList, Statistics) |
//! | `[1..9]`  | negotiated capabilities, u64 little endian                        |
//! | `[9..11]` | status flags before the command, u16 little endian                |
//! | `[11]`    | column count for `parse_text_row`                                 |
//! | rest      | packets: a u16 LE control word, then the payload                  |
//!
//! Control word: bits 0-14 the payload length (cut to what is left), bit 15
//! "this physical packet is a full 16 MiB chunk and only its prefix is passed"
//! (`payload_len_on_wire = MAX_CHUNK`, as `ResponseTracker::feed` allows).
//!
//! Every packet goes to `OkPacket::parse`, `ErrPacket::parse`,
//! `EofPacket::parse`, `PrepareOk::parse`, `ColumnDefinition::parse` and
//! `parse_text_row` (round-tripping through the writers where they succeed),
//! and OK session-state data to `session_track::parse`. Then the packets are
//! fed to one `ResponseTracker` until `Done` or an error.
//!
//! Tracker invariants checked:
//! * after `Done`, every further packet is an error;
//! * `Done` if and only if `is_done()`;
//! * `LocalInfile` only for `Expect::Results`;
//! * a packet that continues on the wire (`MAX_CHUNK` long) never ends the
//!   response, and the packet after it is a continuation, so `More`.

#![no_main]

use bytes::BytesMut;
use funnel_protocol::framing::MAX_CHUNK;
use funnel_protocol::response::{EofPacket, ErrPacket, OkPacket};
use funnel_protocol::resultset::{parse_text_row, write_text_row, ColumnDefinition};
use funnel_protocol::session_track;
use funnel_protocol::tracker::{Event, Expect, PrepareOk, ResponseTracker};
use funnel_protocol::{Capabilities, StatusFlags};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 12;
const MAX_PACKETS: usize = 256;

const EXPECTS: [Expect; 6] = [
    Expect::Status,
    Expect::Results,
    Expect::Prepare,
    Expect::Fetch,
    Expect::FieldList,
    Expect::Statistics,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let expect = EXPECTS[data[0] as usize % EXPECTS.len()];
    let caps = Capabilities(u64::from_le_bytes(data[1..9].try_into().unwrap()));
    let status = StatusFlags(u16::from_le_bytes([data[9], data[10]]));
    let columns = data[11] as usize;

    let mut packets: Vec<(&[u8], usize)> = Vec::new();
    let mut rest = &data[HEADER..];
    while rest.len() >= 2 && packets.len() < MAX_PACKETS {
        let ctl = u16::from_le_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        let len = usize::from(ctl & 0x7fff).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        rest = tail;
        let on_wire = if ctl & 0x8000 != 0 { MAX_CHUNK } else { len };
        packets.push((payload, on_wire));
    }

    for &(p, _) in &packets {
        single_packet(p, caps, columns);
    }
    track(expect, caps, status, &packets);
});

fn single_packet(p: &[u8], caps: Capabilities, columns: usize) {
    let session_track = caps.contains(Capabilities::CLIENT_SESSION_TRACK);
    let changed = StatusFlags::SERVER_SESSION_STATE_CHANGED.0;
    if let Ok(ok) = OkPacket::parse(p, caps) {
        if let Some(state) = &ok.session_state {
            assert!(session_track);
            let _ = session_track::parse(state);
        }
        let mut out = BytesMut::new();
        ok.write_with_header(&mut out, caps, p[0]);
        let ok2 = OkPacket::parse(&out, caps).expect("a written OK parses");
        // The writer sets SERVER_SESSION_STATE_CHANGED exactly when it sends state.
        let mut want = ok.clone();
        want.status.0 &= !changed;
        if session_track && ok.session_state.is_some() {
            want.status.0 |= changed;
        }
        assert_eq!(ok2, want);
    }
    // Session-state data straight from the fuzzer too.
    let _ = session_track::parse(p);

    if let Ok(err) = ErrPacket::parse(p) {
        let _ = err.to_string();
        let mut out = BytesMut::new();
        err.write(&mut out);
        assert_eq!(ErrPacket::parse(&out).expect("a written ERR parses"), err);
    }
    if let Ok(eof) = EofPacket::parse(p) {
        let mut out = BytesMut::new();
        eof.write(&mut out);
        assert_eq!(EofPacket::parse(&out).expect("a written EOF parses"), eof);
    }
    let _ = PrepareOk::parse(p);

    if let Ok(col) = ColumnDefinition::parse(p, caps) {
        // The writer sends catalog "def" and no MariaDB extended metadata.
        let mut out = BytesMut::new();
        col.write(&mut out);
        let mut plain = caps;
        plain.set(Capabilities::MARIADB_CLIENT_EXTENDED_METADATA, false);
        assert_eq!(
            ColumnDefinition::parse(&out, plain).expect("a written column parses"),
            col
        );
    }
    if let Ok(row) = parse_text_row(p, columns) {
        assert_eq!(row.len(), columns);
        let mut out = BytesMut::new();
        write_text_row(&mut out, row.iter().map(|v| v.as_deref()));
        assert_eq!(parse_text_row(&out, columns).expect("a written row parses"), row);
    }
}

fn track(expect: Expect, caps: Capabilities, status: StatusFlags, packets: &[(&[u8], usize)]) {
    let mut t = ResponseTracker::new(expect, caps, status);
    let mut prev_continues = false;
    let mut fed = 0u64;
    let mut iter = packets.iter();
    for &(p, on_wire) in iter.by_ref() {
        fed += 1;
        let ev = t.feed(p, on_wire);
        let continues = on_wire == MAX_CHUNK;
        match ev {
            Err(_) => return,
            Ok(ev) => {
                assert_eq!(
                    ev == Event::Done,
                    t.is_done(),
                    "{ev:?} but is_done() = {}",
                    t.is_done()
                );
                if ev == Event::LocalInfile {
                    assert_eq!(expect, Expect::Results);
                    assert!(t.summary().local_infile);
                }
                if prev_continues {
                    assert_eq!(ev, Event::More, "a continuation chunk changed the response state");
                }
                if continues {
                    assert_ne!(
                        ev,
                        Event::Done,
                        "a packet that continues on the wire ended the response ({expect:?})"
                    );
                }
                let s = t.summary();
                assert!(s.rows <= fed && u64::from(s.result_sets) <= fed);
                if ev == Event::Done {
                    break;
                }
            }
        }
        prev_continues = continues;
    }
    if !t.is_done() {
        return;
    }
    // Nothing but errors after the end, for the rest of the input and more.
    for &(p, on_wire) in iter {
        assert!(
            t.feed(p, on_wire).is_err(),
            "the tracker accepted a packet after Done"
        );
    }
    for extra in [
        &[0x00u8, 0, 0, 2, 0, 0, 0][..],
        &[0xfe, 0, 0, 2, 0][..],
        &[0xff, 0x15, 0x04][..],
        &[][..],
    ] {
        assert!(
            t.feed(extra, extra.len()).is_err(),
            "the tracker accepted a packet after Done"
        );
        assert!(t.is_done());
    }
    let _ = t.into_summary();
}
