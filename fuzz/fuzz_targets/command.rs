//! `Command::parse` with capabilities taken from the input.
//!
//! Input layout: `[0..4]` the client's capabilities (lower 32 bits, little
//! endian; only `CLIENT_SECURE_CONNECTION` and `CLIENT_PLUGIN_AUTH` shape a
//! command), then the command payload.
//!
//! Checked: no panic; every borrowed field lies inside the payload; errors
//! match the first byte; commands that have a writer round-trip through it
//! (`COM_CHANGE_USER` only in the secure-connection form its writer emits,
//! comparing the optional fields the parse actually had).

#![no_main]

use bytes::BytesMut;
use funnel_protocol::command::{
    write_change_user, write_init_db, write_process_kill, write_query, write_simple, write_stmt_close,
    Command, CommandCode,
};
use funnel_protocol::{Capabilities, ProtocolError};
use libfuzzer_sys::fuzz_target;

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fn reparse(buf: &BytesMut, caps: Capabilities) -> Command<'_> {
    Command::parse(buf, caps).expect("a written command parses")
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let caps = Capabilities(u64::from(u32::from_le_bytes([
        data[0], data[1], data[2], data[3],
    ])));
    let payload = &data[4..];

    let cmd = match Command::parse(payload, caps) {
        Ok(cmd) => cmd,
        Err(e) => {
            match payload.first() {
                None => assert!(matches!(e, ProtocolError::Truncated { .. }), "{e:?}"),
                Some(&b) if CommandCode::from_byte(b).is_none() => {
                    assert_eq!(e, ProtocolError::UnknownCommand(b))
                }
                Some(_) => assert!(
                    matches!(
                        e,
                        ProtocolError::Truncated { .. } | ProtocolError::Malformed { .. }
                    ),
                    "{e:?}"
                ),
            }
            return;
        }
    };
    let code = CommandCode::from_byte(payload[0]).expect("parsed, so the byte is known");
    let _ = code.name();

    let mut out = BytesMut::new();
    match &cmd {
        Command::Quit | Command::Ping | Command::ResetConnection | Command::Statistics => {
            write_simple(&mut out, code);
            assert_eq!(reparse(&out, caps), cmd);
        }
        Command::Query(sql) => {
            assert!(inside(payload, sql));
            write_query(&mut out, sql);
            assert_eq!(reparse(&out, caps), cmd);
        }
        Command::InitDb(db) => {
            assert!(inside(payload, db));
            write_init_db(&mut out, db);
            assert_eq!(reparse(&out, caps), cmd);
        }
        Command::StmtPrepare(sql) => assert!(inside(payload, sql)),
        Command::FieldList { table, wildcard } => {
            assert!(inside(payload, table) && inside(payload, wildcard));
            assert!(!table.contains(&0));
        }
        Command::ProcessKill(id) => {
            write_process_kill(&mut out, *id);
            assert_eq!(reparse(&out, caps), cmd);
        }
        Command::StmtClose(id) => {
            write_stmt_close(&mut out, *id);
            assert_eq!(reparse(&out, caps), cmd);
        }
        Command::StmtExecute { rest, .. } => assert!(inside(payload, rest)),
        Command::StmtSendLongData { data, .. } => assert!(inside(payload, data)),
        Command::ChangeUser(cu) => {
            for f in [cu.username, cu.auth_response, cu.database] {
                assert!(inside(payload, f));
            }
            if let Some(p) = cu.auth_plugin_name {
                assert!(inside(payload, p));
                assert!(caps.contains(Capabilities::CLIENT_PLUGIN_AUTH));
            }
            if caps.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
                assert!(cu.auth_response.len() <= 255);
                write_change_user(
                    &mut out,
                    cu.username,
                    cu.auth_response,
                    cu.database,
                    cu.charset.unwrap_or(0),
                    cu.auth_plugin_name.unwrap_or_default(),
                );
                let Command::ChangeUser(cu2) = reparse(&out, caps) else {
                    panic!("a written COM_CHANGE_USER parses as another command");
                };
                assert_eq!(cu2.username, cu.username);
                assert_eq!(cu2.auth_response, cu.auth_response);
                assert_eq!(cu2.database, cu.database);
                if cu.charset.is_some() {
                    assert_eq!(cu2.charset, cu.charset);
                }
                if cu.auth_plugin_name.is_some() {
                    assert_eq!(cu2.auth_plugin_name, cu.auth_plugin_name);
                }
            }
        }
        Command::SetOption(_) | Command::StmtReset(_) | Command::StmtFetch { .. } => {}
        Command::Other(other) => assert_eq!(*other, code),
    }
});
