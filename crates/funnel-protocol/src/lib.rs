//! The MySQL/MariaDB client/server wire protocol, as Funnel needs it on both
//! sides: as a server to its clients and as a client to its backends.
//!
//! No I/O happens here. Decoders take a complete payload, borrow rather than
//! copy, and return a [`ProtocolError`] on malformed input: they never panic
//! and never read past a declared length. The [`tracker`] follows a response
//! packet by packet so the engine can stream it without buffering it.

pub mod auth;
pub mod charset;
pub mod command;
pub mod error;
pub mod flags;
pub mod framing;
pub mod handshake;
pub mod proxy_header;
pub mod response;
pub mod resultset;
pub mod session_track;
pub mod tracker;
pub mod wire;

pub use error::{ProtocolError, Result};
pub use flags::{Capabilities, StatusFlags};
pub use framing::{Packet, PacketDecoder, PacketHeader};

#[cfg(test)]
mod testdata;
