//! A minimal blocking MySQL client built only on `funnel-protocol`: proof
//! that the codec can log in and read results from a real server, and a way
//! for tests to speak raw protocol (half-read results, odd packets).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use funnel_protocol::auth::{native_password_scramble, AuthSwitchRequest, MYSQL_NATIVE_PASSWORD};
use funnel_protocol::command::write_query;
use funnel_protocol::framing::{write_packet, PacketDecoder};
use funnel_protocol::handshake::{HandshakeResponse41, HandshakeV10};
use funnel_protocol::response::{is_err, is_result_terminator, ErrPacket, OkPacket};
use funnel_protocol::resultset::{parse_text_row, ColumnDefinition};
use funnel_protocol::Capabilities;

/// Reads one packet (sequence id and payload) from a blocking socket, for
/// tests that speak the protocol by hand (a login split in two, say).
pub fn read_raw_packet(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head)?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((head[3], payload))
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// An OK packet.
    Ok(OkPacket),
    /// Column names and text rows (`None` is NULL).
    Rows {
        /// Column names.
        columns: Vec<String>,
        /// Rows.
        rows: Vec<Vec<Option<String>>>,
    },
}

/// Why a call failed.
#[derive(Debug)]
pub enum MiniError {
    /// The server answered with ERR.
    Server(ErrPacket),
    /// Socket trouble.
    Io(io::Error),
    /// Bytes that do not decode.
    Protocol(funnel_protocol::ProtocolError),
}

impl From<io::Error> for MiniError {
    fn from(e: io::Error) -> Self {
        MiniError::Io(e)
    }
}

impl From<funnel_protocol::ProtocolError> for MiniError {
    fn from(e: funnel_protocol::ProtocolError) -> Self {
        MiniError::Protocol(e)
    }
}

/// A logged-in connection.
pub struct MiniClient {
    stream: TcpStream,
    decoder: PacketDecoder,
    inbox: BytesMut,
    caps: Capabilities,
    /// The connection id from the greeting.
    pub connection_id: u32,
    /// The server's version string.
    pub server_version: String,
    /// The status flags of the login's OK packet.
    pub login_status: u16,
}

/// The capabilities MiniClient logs in with (what the server offers of them).
pub const CLIENT_CAPS: Capabilities = Capabilities(
    Capabilities::CLIENT_MYSQL.0
        | Capabilities::CLIENT_LONG_FLAG.0
        | Capabilities::CLIENT_PROTOCOL_41.0
        | Capabilities::CLIENT_TRANSACTIONS.0
        | Capabilities::CLIENT_SECURE_CONNECTION.0
        | Capabilities::CLIENT_MULTI_RESULTS.0
        | Capabilities::CLIENT_PLUGIN_AUTH.0
        | Capabilities::CLIENT_CONNECT_WITH_DB.0,
);

impl MiniClient {
    /// Connects and logs in with `mysql_native_password`.
    pub fn connect(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> Result<Self, MiniError> {
        Self::connect_with(addr, user, password, db, Capabilities::EMPTY)
    }

    /// Like [`MiniClient::connect`], asking for `extra` capabilities too
    /// (e.g. `CLIENT_MULTI_STATEMENTS`).
    pub fn connect_with(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: Capabilities,
    ) -> Result<Self, MiniError> {
        Self::connect_with_charset(addr, user, password, db, extra, 45)
    }

    /// [`MiniClient::connect_with`], asking for the handshake collation `charset`.
    pub fn connect_with_charset(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
        extra: Capabilities,
        charset: u8,
    ) -> Result<Self, MiniError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let mut c = MiniClient {
            stream,
            decoder: PacketDecoder::new(1 << 30),
            inbox: BytesMut::new(),
            caps: CLIENT_CAPS,
            connection_id: 0,
            server_version: String::new(),
            login_status: 0,
        };
        let (seq, greeting) = c.read_packet()?;
        if is_err(&greeting) {
            return Err(MiniError::Server(ErrPacket::parse(&greeting)?));
        }
        let hs = HandshakeV10::parse(&greeting)?;
        c.connection_id = hs.connection_id;
        c.server_version = String::from_utf8_lossy(&hs.server_version).into_owned();
        c.caps = (CLIENT_CAPS | extra).intersect(hs.capabilities | Capabilities::CLIENT_MYSQL);
        // MariaDB's extended capabilities travel only with CLIENT_MYSQL clear.
        if c.caps.upper() != 0 {
            c.caps.set(Capabilities::CLIENT_MYSQL, false);
        }
        let login = HandshakeResponse41 {
            capabilities: c.caps,
            max_packet_size: 1 << 24,
            charset,
            username: user.as_bytes().to_vec(),
            auth_response: native_password_scramble(password.as_bytes(), &hs.auth_plugin_data),
            database: db.map(|d| d.as_bytes().to_vec()),
            auth_plugin_name: Some(MYSQL_NATIVE_PASSWORD.as_bytes().to_vec()),
            attributes: Vec::new(),
        };
        let mut p = BytesMut::new();
        login.write(&mut p);
        c.send(seq.wrapping_add(1), &p)?;
        loop {
            let (seq, reply) = c.read_packet()?;
            match reply.first() {
                Some(0x00) => {
                    c.login_status = OkPacket::parse(&reply, c.caps)?.status.0;
                    return Ok(c);
                }
                Some(0xff) => return Err(MiniError::Server(ErrPacket::parse(&reply)?)),
                Some(0xfe) => {
                    let switch = AuthSwitchRequest::parse(&reply)?;
                    let answer = native_password_scramble(password.as_bytes(), &switch.plugin_data);
                    c.send(seq.wrapping_add(1), &answer)?;
                }
                _ => {
                    return Err(MiniError::Protocol(funnel_protocol::ProtocolError::Unexpected(
                        "login reply",
                    )))
                }
            }
        }
    }

    /// The capabilities both sides agreed on at login.
    pub fn caps(&self) -> Capabilities {
        self.caps
    }

    /// Runs a text query and reads its whole (single) result.
    pub fn query(&mut self, sql: &str) -> Result<QueryResult, MiniError> {
        self.send_query(sql)?;
        let (_, first) = self.read_packet()?;
        match first.first() {
            Some(0x00) => Ok(QueryResult::Ok(OkPacket::parse(&first, self.caps)?)),
            Some(0xff) => Err(MiniError::Server(ErrPacket::parse(&first)?)),
            _ => {
                let n = funnel_protocol::wire::Reader::new(&first).lenenc_int("column count")? as usize;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    let (_, def) = self.read_packet()?;
                    let def = ColumnDefinition::parse(&def, self.caps)?;
                    columns.push(String::from_utf8_lossy(&def.name).into_owned());
                }
                let (_, eof) = self.read_packet()?;
                if !is_result_terminator(&eof, false) {
                    return Err(MiniError::Protocol(funnel_protocol::ProtocolError::Unexpected(
                        "EOF expected",
                    )));
                }
                let mut rows = Vec::new();
                loop {
                    let (_, p) = self.read_packet()?;
                    if is_result_terminator(&p, false) {
                        return Ok(QueryResult::Rows { columns, rows });
                    }
                    if is_err(&p) {
                        return Err(MiniError::Server(ErrPacket::parse(&p)?));
                    }
                    let row = parse_text_row(&p, n)?
                        .into_iter()
                        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                        .collect();
                    rows.push(row);
                }
            }
        }
    }

    /// Sends any command payload (first byte: the command) as a new exchange.
    pub fn send_command(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(0, payload).map(drop)
    }

    /// Sends a command and reads its whole response, whatever its shape,
    /// using the protocol crate's tracker: every packet's payload, in order.
    pub fn roundtrip(
        &mut self,
        payload: &[u8],
        expect: funnel_protocol::tracker::Expect,
    ) -> Result<Vec<Vec<u8>>, MiniError> {
        use funnel_protocol::tracker::{Event, ResponseTracker};
        // Clients check that sequence ids follow on (libmariadb: "packets
        // out of order"); so does this one. A packet of 16 MiB or more is
        // read whole and counts by its last piece.
        let mut want = self.send(0, payload)?;
        let mut tracker = ResponseTracker::new(expect, self.caps, funnel_protocol::StatusFlags(2));
        let mut out = Vec::new();
        loop {
            let (first, last, p) = self.read_packet_seqs()?;
            if first != want {
                return Err(MiniError::Protocol(funnel_protocol::ProtocolError::Unexpected(
                    "packets out of order",
                )));
            }
            want = last.wrapping_add(1);
            let mut event = tracker.feed(&p, p.len())?;
            if p.len() == funnel_protocol::framing::MAX_CHUNK {
                // A payload of exactly 16 MiB - 1 came with an empty piece
                // after it, which the tracker reads as the end of it.
                event = tracker.feed(&[], 0)?;
            }
            out.push(p);
            if event == Event::Done {
                return Ok(out);
            }
        }
    }

    /// Sends a COM_QUERY without reading the answer.
    pub fn send_query(&mut self, sql: &str) -> io::Result<()> {
        let mut p = BytesMut::new();
        write_query(&mut p, sql.as_bytes());
        self.send(0, &p).map(drop)
    }

    /// Reads up to `n` raw bytes of whatever the server sends next.
    pub fn read_raw(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        let got = self.stream.read(&mut out)?;
        out.truncate(got);
        Ok(out)
    }

    /// A second handle on the socket (to write from another thread).
    pub fn try_clone_stream(&self) -> io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Writes raw bytes (for malformed-input tests).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the next logical packet: sequence id and payload.
    pub fn read_packet(&mut self) -> Result<(u8, Vec<u8>), MiniError> {
        self.read_packet_seqs().map(|(_, last, payload)| (last, payload))
    }

    /// Reads the next logical packet: the sequence ids of its first and
    /// last pieces, and its payload.
    fn read_packet_seqs(&mut self) -> Result<(u8, u8, Vec<u8>), MiniError> {
        loop {
            if let Some(p) = self.decoder.decode(&mut self.inbox)? {
                return Ok((p.seq, p.last_seq, p.payload.to_vec()));
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(MiniError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                )));
            }
            self.inbox.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes `payload` from sequence id `seq`; returns the id the reply
    /// starts with (more than `seq + 1` for a payload of 16 MiB or more).
    fn send(&mut self, seq: u8, payload: &[u8]) -> io::Result<u8> {
        let mut out = BytesMut::new();
        let next = write_packet(&mut out, seq, payload);
        self.stream.write_all(&out)?;
        Ok(next)
    }
}

impl QueryResult {
    /// The rows (panics on an OK result).
    pub fn rows(&self) -> &[Vec<Option<String>>] {
        match self {
            QueryResult::Rows { rows, .. } => rows,
            QueryResult::Ok(_) => panic!("expected rows, got OK"),
        }
    }
}
