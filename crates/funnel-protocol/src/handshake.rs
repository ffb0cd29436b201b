//! The connection-phase greeting (`HandshakeV10`, sent by servers) and the
//! client's answer (`HandshakeResponse41`, or its 32-byte prefix, the
//! `SSLRequest`).
//!
//! Funnel builds `HandshakeV10` for its clients and parses the ones its
//! backends send; it parses `HandshakeResponse41` from clients and builds it
//! for backends. MariaDB's extended capabilities travel in the last four bytes
//! of the filler, and only when the peer cleared `CLIENT_MYSQL` (bit 0).

use bytes::{BufMut, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::flags::{Capabilities, StatusFlags};
use crate::wire::{put_lenenc_int, put_lenenc_str, put_nul_str, Reader};

/// The longest scramble a greeting can announce: its length plus the NUL
/// terminator must fit the one-byte length field.
pub const MAX_AUTH_DATA: usize = 254;

/// Protocol version byte of `HandshakeV10`.
pub const PROTOCOL_VERSION_10: u8 = 10;

/// The server greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// Server version string, e.g. `5.5.5-10.11.6-MariaDB`.
    pub server_version: Vec<u8>,
    /// The id clients see as `CONNECTION_ID()`.
    pub connection_id: u32,
    /// The scramble (nonce), normally 20 bytes.
    pub auth_plugin_data: Vec<u8>,
    /// Server capabilities, MariaDB's extended ones in the upper 32 bits.
    pub capabilities: Capabilities,
    /// Default collation id (one byte on the wire).
    pub charset: u8,
    /// Server status flags.
    pub status: StatusFlags,
    /// Default authentication plugin, e.g. `mysql_native_password`.
    pub auth_plugin_name: Vec<u8>,
}

impl HandshakeV10 {
    /// Parses a greeting sent by a server.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let mut r = Reader::new(payload);
        let version = r.u8("protocol version")?;
        if version == 0xff {
            return Err(ProtocolError::Unexpected(
                "server sent ERR instead of a handshake",
            ));
        }
        if version != PROTOCOL_VERSION_10 {
            return Err(ProtocolError::malformed(
                "handshake",
                "protocol version is not 10",
            ));
        }
        let server_version = r.nul_str("server version")?.to_vec();
        let connection_id = r.u32("connection id")?;
        let mut auth_plugin_data = r.take(8, "auth plugin data part 1")?.to_vec();
        r.skip(1, "filler")?;
        let cap_low = u64::from(r.u16("capability flags")?);
        let mut hs = HandshakeV10 {
            server_version,
            connection_id,
            auth_plugin_data: Vec::new(),
            capabilities: Capabilities(cap_low),
            charset: 0,
            status: StatusFlags(0),
            auth_plugin_name: Vec::new(),
        };
        if r.is_empty() {
            hs.auth_plugin_data = auth_plugin_data;
            return Ok(hs);
        }
        hs.charset = r.u8("character set")?;
        hs.status = StatusFlags(r.u16("status flags")?);
        let cap_high = u64::from(r.u16("capability flags (upper)")?);
        let auth_len = r.u8("auth plugin data length")?;
        r.skip(6, "filler")?;
        let ext = u64::from(r.u32("MariaDB extended capabilities")?);
        let mut caps = cap_low | cap_high << 16;
        if caps & Capabilities::CLIENT_MYSQL.0 == 0 {
            caps |= ext << 32;
        }
        hs.capabilities = Capabilities(caps);
        if hs.capabilities.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
            let n = (usize::from(auth_len).saturating_sub(8)).max(13);
            let n = n.min(r.remaining());
            let part2 = r.take(n, "auth plugin data part 2")?;
            // The second part is NUL-terminated on the wire; the NUL is not data.
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            auth_plugin_data.extend_from_slice(part2);
            if auth_plugin_data.len() > MAX_AUTH_DATA {
                // Its length (plus the NUL) must fit the one-byte length field.
                return Err(ProtocolError::malformed(
                    "handshake",
                    "auth plugin data longer than 254 bytes",
                ));
            }
        }
        hs.auth_plugin_data = auth_plugin_data;
        if hs.capabilities.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
            hs.auth_plugin_name = r.nul_str_or_eof().to_vec();
        }
        Ok(hs)
    }

    /// Appends this greeting's payload to `buf` (as a server would send it).
    pub fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(PROTOCOL_VERSION_10);
        put_nul_str(buf, &self.server_version);
        buf.put_u32_le(self.connection_id);
        let (part1, part2) = self.auth_plugin_data.split_at(self.auth_plugin_data.len().min(8));
        buf.put_slice(part1);
        buf.put_bytes(0, 8 - part1.len());
        buf.put_u8(0);
        let caps = self.capabilities;
        buf.put_u16_le(caps.lower() as u16);
        buf.put_u8(self.charset);
        buf.put_u16_le(self.status.0);
        buf.put_u16_le((caps.lower() >> 16) as u16);
        if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
            // Longer scrambles cannot be announced; parse refuses them too.
            buf.put_u8(self.auth_plugin_data.len().min(MAX_AUTH_DATA) as u8 + 1);
        } else {
            buf.put_u8(0);
        }
        buf.put_bytes(0, 6);
        if caps.contains(Capabilities::CLIENT_MYSQL) {
            buf.put_u32_le(0);
        } else {
            buf.put_u32_le(caps.upper());
        }
        if caps.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
            buf.put_slice(part2);
            // Pad to the 13 bytes clients expect, NUL included.
            buf.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        }
        if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
            put_nul_str(buf, &self.auth_plugin_name);
        }
    }

    /// True when the greeting comes from MariaDB rather than MySQL.
    pub fn is_mariadb(&self) -> bool {
        self.server_version
            .windows(7)
            .any(|w| w.eq_ignore_ascii_case(b"MariaDB"))
    }
}

/// The client's answer to the greeting (protocol 4.1 form).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse41 {
    /// Client capabilities, MariaDB's extended ones in the upper 32 bits.
    pub capabilities: Capabilities,
    /// Largest packet the client wants to receive.
    pub max_packet_size: u32,
    /// Requested collation id (one byte).
    pub charset: u8,
    /// Login user name.
    pub username: Vec<u8>,
    /// The auth plugin's answer to the scramble.
    pub auth_response: Vec<u8>,
    /// Initial schema (CLIENT_CONNECT_WITH_DB).
    pub database: Option<Vec<u8>>,
    /// The auth plugin the client used (CLIENT_PLUGIN_AUTH).
    pub auth_plugin_name: Option<Vec<u8>>,
    /// Connection attributes (CLIENT_CONNECT_ATTRS).
    pub attributes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a client sent after the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    /// A full login.
    Response(HandshakeResponse41),
    /// An `SSLRequest`: the client wants TLS before sending its login.
    SslRequest {
        /// The capabilities the client announced.
        capabilities: Capabilities,
        /// The collation the client asked for.
        charset: u8,
    },
}

/// Length of the fixed part shared by `SSLRequest` and `HandshakeResponse41`.
const FIXED_PART: usize = 32;

impl HandshakeResponse41 {
    /// Parses what a client sent after the greeting: a login or an SSL request.
    pub fn parse(payload: &[u8]) -> Result<ClientHello> {
        let mut r = Reader::new(payload);
        let cap_low = u64::from(r.u32("client capabilities")?);
        if cap_low & Capabilities::CLIENT_PROTOCOL_41.0 == 0 {
            return Err(ProtocolError::malformed(
                "handshake response",
                "clients older than protocol 4.1 are not supported",
            ));
        }
        let max_packet_size = r.u32("max packet size")?;
        let charset = r.u8("character set")?;
        r.skip(19, "filler")?;
        let ext = u64::from(r.u32("MariaDB extended capabilities")?);
        let mut caps = cap_low;
        if caps & Capabilities::CLIENT_MYSQL.0 == 0 {
            caps |= ext << 32;
        }
        let capabilities = Capabilities(caps);
        if r.is_empty() && payload.len() == FIXED_PART && capabilities.contains(Capabilities::CLIENT_SSL) {
            return Ok(ClientHello::SslRequest {
                capabilities,
                charset,
            });
        }
        let username = r.nul_str("user name")?.to_vec();
        let auth_response = if capabilities.contains(Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            r.lenenc_str("auth response")?.to_vec()
        } else if capabilities.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
            let n = r.u8("auth response length")?;
            r.take(usize::from(n), "auth response")?.to_vec()
        } else {
            r.nul_str("auth response")?.to_vec()
        };
        let mut out = HandshakeResponse41 {
            capabilities,
            max_packet_size,
            charset,
            username,
            auth_response,
            ..Default::default()
        };
        if capabilities.contains(Capabilities::CLIENT_CONNECT_WITH_DB) && !r.is_empty() {
            let db = r.nul_str_or_eof();
            if !db.is_empty() {
                out.database = Some(db.to_vec());
            }
        }
        if capabilities.contains(Capabilities::CLIENT_PLUGIN_AUTH) && !r.is_empty() {
            out.auth_plugin_name = Some(r.nul_str_or_eof().to_vec());
        }
        if capabilities.contains(Capabilities::CLIENT_CONNECT_ATTRS) && !r.is_empty() {
            let total = r.lenenc_int("connection attributes length")?;
            let total = usize::try_from(total)
                .map_err(|_| ProtocolError::malformed("connection attributes", "length overflows"))?;
            let mut attrs = Reader::new(r.take(total, "connection attributes")?);
            while !attrs.is_empty() {
                let k = attrs.lenenc_str("attribute key")?.to_vec();
                let v = attrs.lenenc_str("attribute value")?.to_vec();
                out.attributes.push((k, v));
            }
        }
        Ok(ClientHello::Response(out))
    }

    /// Appends this response's payload to `buf` (as a client would send it).
    pub fn write(&self, buf: &mut BytesMut) {
        let mut caps = self.capabilities;
        caps.set(Capabilities::CLIENT_CONNECT_WITH_DB, self.database.is_some());
        caps.set(Capabilities::CLIENT_CONNECT_ATTRS, !self.attributes.is_empty());
        buf.put_u32_le(caps.lower());
        buf.put_u32_le(self.max_packet_size);
        buf.put_u8(self.charset);
        buf.put_bytes(0, 19);
        buf.put_u32_le(if caps.contains(Capabilities::CLIENT_MYSQL) {
            0
        } else {
            caps.upper()
        });
        put_nul_str(buf, &self.username);
        if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            put_lenenc_str(buf, &self.auth_response);
        } else if caps.contains(Capabilities::CLIENT_SECURE_CONNECTION) {
            // A one-byte length: longer answers need the length-encoded form.
            debug_assert!(
                self.auth_response.len() <= 255,
                "auth response needs LENENC_CLIENT_DATA"
            );
            let n = self.auth_response.len().min(255);
            buf.put_u8(n as u8);
            buf.put_slice(&self.auth_response[..n]);
        } else {
            put_nul_str(buf, &self.auth_response);
        }
        if let Some(db) = &self.database {
            put_nul_str(buf, db);
        }
        if caps.contains(Capabilities::CLIENT_PLUGIN_AUTH) {
            put_nul_str(buf, self.auth_plugin_name.as_deref().unwrap_or_default());
        }
        if !self.attributes.is_empty() {
            let mut attrs = BytesMut::new();
            for (k, v) in &self.attributes {
                put_lenenc_str(&mut attrs, k);
                put_lenenc_str(&mut attrs, v);
            }
            put_lenenc_int(buf, attrs.len() as u64);
            buf.put_slice(&attrs);
        }
    }
}

#[cfg(test)]
mod tests;
