//! Commands a client sends in the command phase (the first payload byte).
//!
//! Decoding borrows from the packet. Commands the protocol defines but that
//! make no sense through a proxy (replication, shutdown) decode to
//! [`Command::Other`] so the engine can refuse them by name; a byte the
//! protocol does not define is an error, never a guess.

use bytes::{BufMut, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::flags::Capabilities;
use crate::wire::{put_nul_str, Reader};

/// Command bytes, named as in the protocol docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum CommandCode {
    Sleep = 0x00,
    Quit = 0x01,
    InitDb = 0x02,
    Query = 0x03,
    FieldList = 0x04,
    CreateDb = 0x05,
    DropDb = 0x06,
    Refresh = 0x07,
    Shutdown = 0x08,
    Statistics = 0x09,
    ProcessInfo = 0x0a,
    Connect = 0x0b,
    ProcessKill = 0x0c,
    Debug = 0x0d,
    Ping = 0x0e,
    Time = 0x0f,
    DelayedInsert = 0x10,
    ChangeUser = 0x11,
    BinlogDump = 0x12,
    TableDump = 0x13,
    ConnectOut = 0x14,
    RegisterSlave = 0x15,
    StmtPrepare = 0x16,
    StmtExecute = 0x17,
    StmtSendLongData = 0x18,
    StmtClose = 0x19,
    StmtReset = 0x1a,
    SetOption = 0x1b,
    StmtFetch = 0x1c,
    Daemon = 0x1d,
    BinlogDumpGtid = 0x1e,
    ResetConnection = 0x1f,
    /// MariaDB's bulk execute.
    StmtBulkExecute = 0xfa,
    /// MariaDB's COM_MULTI.
    Multi = 0xfe,
}

impl CommandCode {
    /// The code for a command byte, or `None` when the protocol has no such command.
    pub fn from_byte(b: u8) -> Option<Self> {
        use CommandCode::*;
        Some(match b {
            0x00 => Sleep,
            0x01 => Quit,
            0x02 => InitDb,
            0x03 => Query,
            0x04 => FieldList,
            0x05 => CreateDb,
            0x06 => DropDb,
            0x07 => Refresh,
            0x08 => Shutdown,
            0x09 => Statistics,
            0x0a => ProcessInfo,
            0x0b => Connect,
            0x0c => ProcessKill,
            0x0d => Debug,
            0x0e => Ping,
            0x0f => Time,
            0x10 => DelayedInsert,
            0x11 => ChangeUser,
            0x12 => BinlogDump,
            0x13 => TableDump,
            0x14 => ConnectOut,
            0x15 => RegisterSlave,
            0x16 => StmtPrepare,
            0x17 => StmtExecute,
            0x18 => StmtSendLongData,
            0x19 => StmtClose,
            0x1a => StmtReset,
            0x1b => SetOption,
            0x1c => StmtFetch,
            0x1d => Daemon,
            0x1e => BinlogDumpGtid,
            0x1f => ResetConnection,
            0xfa => StmtBulkExecute,
            0xfe => Multi,
            _ => return None,
        })
    }

    /// The protocol name, e.g. `COM_QUERY`.
    pub fn name(self) -> &'static str {
        use CommandCode::*;
        match self {
            Sleep => "COM_SLEEP",
            Quit => "COM_QUIT",
            InitDb => "COM_INIT_DB",
            Query => "COM_QUERY",
            FieldList => "COM_FIELD_LIST",
            CreateDb => "COM_CREATE_DB",
            DropDb => "COM_DROP_DB",
            Refresh => "COM_REFRESH",
            Shutdown => "COM_SHUTDOWN",
            Statistics => "COM_STATISTICS",
            ProcessInfo => "COM_PROCESS_INFO",
            Connect => "COM_CONNECT",
            ProcessKill => "COM_PROCESS_KILL",
            Debug => "COM_DEBUG",
            Ping => "COM_PING",
            Time => "COM_TIME",
            DelayedInsert => "COM_DELAYED_INSERT",
            ChangeUser => "COM_CHANGE_USER",
            BinlogDump => "COM_BINLOG_DUMP",
            TableDump => "COM_TABLE_DUMP",
            ConnectOut => "COM_CONNECT_OUT",
            RegisterSlave => "COM_REGISTER_SLAVE",
            StmtPrepare => "COM_STMT_PREPARE",
            StmtExecute => "COM_STMT_EXECUTE",
            StmtSendLongData => "COM_STMT_SEND_LONG_DATA",
            StmtClose => "COM_STMT_CLOSE",
            StmtReset => "COM_STMT_RESET",
            SetOption => "COM_SET_OPTION",
            StmtFetch => "COM_STMT_FETCH",
            Daemon => "COM_DAEMON",
            BinlogDumpGtid => "COM_BINLOG_DUMP_GTID",
            ResetConnection => "COM_RESET_CONNECTION",
            StmtBulkExecute => "COM_STMT_BULK_EXECUTE",
            Multi => "COM_MULTI",
        }
    }
}

/// `COM_SET_OPTION` value that turns multi-statements on.
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
/// `COM_SET_OPTION` value that turns multi-statements off.
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

/// `COM_CHANGE_USER`'s fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser<'a> {
    /// New user name.
    pub username: &'a [u8],
    /// Auth response to the connection's original scramble.
    pub auth_response: &'a [u8],
    /// New schema (empty for none).
    pub database: &'a [u8],
    /// New collation id, when sent.
    pub charset: Option<u16>,
    /// Auth plugin used for `auth_response`.
    pub auth_plugin_name: Option<&'a [u8]>,
}

/// A decoded client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// End the session.
    Quit,
    /// Change the current schema.
    InitDb(&'a [u8]),
    /// A text-protocol query.
    Query(&'a [u8]),
    /// List a table's columns (deprecated, still used by old clients).
    FieldList {
        /// Table name.
        table: &'a [u8],
        /// Column wildcard.
        wildcard: &'a [u8],
    },
    /// Server statistics string.
    Statistics,
    /// Kill a connection by id.
    ProcessKill(u32),
    /// Liveness check.
    Ping,
    /// Re-authenticate as another (or the same) user.
    ChangeUser(ChangeUser<'a>),
    /// Reset session state without re-authenticating.
    ResetConnection,
    /// Multi-statements on/off.
    SetOption(u16),
    /// Prepare a statement.
    StmtPrepare(&'a [u8]),
    /// Execute a prepared statement; parameters stay raw because decoding
    /// them needs the parameter count from the prepare.
    StmtExecute {
        /// Statement id.
        stmt_id: u32,
        /// Cursor flags.
        flags: u8,
        /// Everything after the statement id and flags (iteration count, parameters).
        rest: &'a [u8],
    },
    /// MariaDB's bulk execute: one prepared statement run for many rows of
    /// parameters. The rows stay raw, as for an execute.
    StmtBulkExecute {
        /// Statement id.
        stmt_id: u32,
        /// Bulk flags (`SEND_TYPES_TO_SERVER`, `SEND_UNIT_RESULTS`).
        flags: u16,
        /// Everything after the flags (types when sent, then the rows).
        rest: &'a [u8],
    },
    /// Send a chunk of a long parameter.
    StmtSendLongData {
        /// Statement id.
        stmt_id: u32,
        /// Parameter index.
        param_id: u16,
        /// The data.
        data: &'a [u8],
    },
    /// Deallocate a prepared statement.
    StmtClose(u32),
    /// Reset a prepared statement's long data and cursor.
    StmtReset(u32),
    /// Fetch rows from an open cursor.
    StmtFetch {
        /// Statement id.
        stmt_id: u32,
        /// Rows to fetch.
        num_rows: u32,
    },
    /// A command the protocol defines but Funnel does not proxy.
    Other(CommandCode),
}

impl<'a> Command<'a> {
    /// Decodes a command payload. `caps` are the client's capabilities (they
    /// shape `COM_CHANGE_USER`).
    pub fn parse(payload: &'a [u8], caps: Capabilities) -> Result<Self> {
        let mut r = Reader::new(payload);
        let byte = r.u8("command byte")?;
        let code = CommandCode::from_byte(byte).ok_or(ProtocolError::UnknownCommand(byte))?;
        Ok(match code {
            CommandCode::Quit => Command::Quit,
            CommandCode::InitDb => Command::InitDb(r.rest()),
            CommandCode::Query => Command::Query(r.rest()),
            CommandCode::FieldList => {
                let table = r.nul_str("table")?;
                Command::FieldList {
                    table,
                    wildcard: r.rest(),
                }
            }
            CommandCode::Statistics => Command::Statistics,
            CommandCode::ProcessKill => Command::ProcessKill(r.u32("connection id")?),
            CommandCode::Ping => Command::Ping,
            CommandCode::ChangeUser => Command::ChangeUser(parse_change_user(&mut r, caps)?),
            CommandCode::ResetConnection => Command::ResetConnection,
            CommandCode::SetOption => Command::SetOption(r.u16("option")?),
            CommandCode::StmtPrepare => Command::StmtPrepare(r.rest()),
            CommandCode::StmtExecute => Command::StmtExecute {
                stmt_id: r.u32("statement id")?,
                flags: r.u8("flags")?,
                rest: r.rest(),
            },
            CommandCode::StmtSendLongData => Command::StmtSendLongData {
                stmt_id: r.u32("statement id")?,
                param_id: r.u16("parameter id")?,
                data: r.rest(),
            },
            CommandCode::StmtBulkExecute => Command::StmtBulkExecute {
                stmt_id: r.u32("statement id")?,
                flags: r.u16("bulk flags")?,
                rest: r.rest(),
            },
            CommandCode::StmtClose => Command::StmtClose(r.u32("statement id")?),
            CommandCode::StmtReset => Command::StmtReset(r.u32("statement id")?),
            CommandCode::StmtFetch => Command::StmtFetch {
                stmt_id: r.u32("statement id")?,
                num_rows: r.u32("rows")?,
            },
            other => Command::Other(other),
        })
    }
}

fn parse_change_user<'a>(r: &mut Reader<'a>, caps: Capabilities) -> Result<ChangeUser<'a>> {
    let username = r.nul_str("user name")?;
    let auth_response = if caps.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
        let n = r.u8("auth response length")?;
        r.take(usize::from(n), "auth response")?
    } else {
        r.nul_str("auth response")?
    };
    let database = if r.is_empty() { &[][..] } else { r.nul_str_or_eof() };
    let charset = if r.remaining() >= 2 {
        Some(r.u16("character set")?)
    } else {
        None
    };
    let auth_plugin_name = if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) && !r.is_empty() {
        Some(r.nul_str_or_eof())
    } else {
        None
    };
    // Connection attributes may follow; Funnel does not need them here.
    Ok(ChangeUser {
        username,
        auth_response,
        database,
        charset,
        auth_plugin_name,
    })
}

/// Appends a `COM_QUERY` payload.
pub fn write_query(buf: &mut BytesMut, sql: &[u8]) {
    buf.put_u8(CommandCode::Query as u8);
    buf.put_slice(sql);
}

/// Appends a `COM_INIT_DB` payload.
pub fn write_init_db(buf: &mut BytesMut, schema: &[u8]) {
    buf.put_u8(CommandCode::InitDb as u8);
    buf.put_slice(schema);
}

/// Appends a one-byte command payload (`COM_PING`, `COM_QUIT`, `COM_RESET_CONNECTION`, ...).
pub fn write_simple(buf: &mut BytesMut, code: CommandCode) {
    buf.put_u8(code as u8);
}

/// Appends a `COM_STMT_CLOSE` payload.
pub fn write_stmt_close(buf: &mut BytesMut, stmt_id: u32) {
    buf.put_u8(CommandCode::StmtClose as u8);
    buf.put_u32_le(stmt_id);
}

/// Appends a `COM_STMT_RESET` payload.
pub fn write_stmt_reset(buf: &mut BytesMut, stmt_id: u32) {
    buf.put_u8(CommandCode::StmtReset as u8);
    buf.put_u32_le(stmt_id);
}

/// Appends a `COM_PROCESS_KILL` payload.
pub fn write_process_kill(buf: &mut BytesMut, id: u32) {
    buf.put_u8(CommandCode::ProcessKill as u8);
    buf.put_u32_le(id);
}

/// Appends a `COM_CHANGE_USER` payload (secure-connection form).
pub fn write_change_user(
    buf: &mut BytesMut,
    user: &[u8],
    auth: &[u8],
    db: &[u8],
    charset: u16,
    plugin: &[u8],
) {
    buf.put_u8(CommandCode::ChangeUser as u8);
    put_nul_str(buf, user);
    buf.put_u8(auth.len() as u8);
    buf.put_slice(auth);
    put_nul_str(buf, db);
    buf.put_u16_le(charset);
    put_nul_str(buf, plugin);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Capabilities = Capabilities(
        Capabilities::CLIENT_PROTOCOL_41.0
            | Capabilities::CLIENT_SECURE_CONNECTION.0
            | Capabilities::CLIENT_PLUGIN_AUTH.0,
    );

    #[test]
    fn protocol_command_golden_query() {
        // `SELECT 1` as the mariadb CLI sent it (login_and_queries.txt).
        let p = [0x03, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1'];
        assert_eq!(Command::parse(&p, CAPS).unwrap(), Command::Query(b"SELECT 1"));
        assert_eq!(Command::parse(&[0x01], CAPS).unwrap(), Command::Quit);
    }

    #[test]
    fn protocol_command_each_kind() {
        assert_eq!(Command::parse(&[0x0e], CAPS).unwrap(), Command::Ping);
        assert_eq!(Command::parse(b"\x02db1", CAPS).unwrap(), Command::InitDb(b"db1"));
        assert_eq!(
            Command::parse(&[0x0c, 7, 0, 0, 0], CAPS).unwrap(),
            Command::ProcessKill(7)
        );
        assert_eq!(
            Command::parse(&[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0], CAPS).unwrap(),
            Command::StmtExecute {
                stmt_id: 1,
                flags: 0,
                rest: &[1, 0, 0, 0]
            }
        );
        assert_eq!(
            Command::parse(&[0xfa, 3, 0, 0, 0, 128, 0, 8, 0, 0, 1], CAPS).unwrap(),
            Command::StmtBulkExecute {
                stmt_id: 3,
                flags: 128,
                rest: &[8, 0, 0, 1]
            }
        );
        assert!(Command::parse(&[0xfa, 3, 0, 0, 0, 128], CAPS).is_err());
        assert_eq!(
            Command::parse(&[0x1c, 2, 0, 0, 0, 10, 0, 0, 0], CAPS).unwrap(),
            Command::StmtFetch {
                stmt_id: 2,
                num_rows: 10
            }
        );
        assert_eq!(
            Command::parse(&[0x1b, 1, 0], CAPS).unwrap(),
            Command::SetOption(1)
        );
        assert_eq!(
            Command::parse(&[0x12], CAPS).unwrap(),
            Command::Other(CommandCode::BinlogDump)
        );
        assert_eq!(
            Command::parse(&[0x42], CAPS),
            Err(ProtocolError::UnknownCommand(0x42))
        );
        assert!(Command::parse(&[], CAPS).is_err());
        assert!(Command::parse(&[0x19, 1], CAPS).is_err());
        assert!(Command::parse(b"\x04tbl", CAPS).is_err());
    }

    #[test]
    fn protocol_command_change_user_roundtrip() {
        let mut b = BytesMut::new();
        write_change_user(&mut b, b"bob", &[9; 20], b"db", 45, b"mysql_native_password");
        match Command::parse(&b, CAPS).unwrap() {
            Command::ChangeUser(cu) => {
                assert_eq!(cu.username, b"bob");
                assert_eq!(cu.auth_response, &[9; 20]);
                assert_eq!(cu.database, b"db");
                assert_eq!(cu.charset, Some(45));
                assert_eq!(cu.auth_plugin_name, Some(&b"mysql_native_password"[..]));
            }
            other => panic!("{other:?}"),
        }
    }
}
