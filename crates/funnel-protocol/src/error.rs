//! The one error type every decoder in this crate returns.

use thiserror::Error;

/// Why a packet could not be decoded or encoded.
///
/// Decoders never panic and never read past a declared length: every way a
/// peer's bytes can be wrong ends up as one of these variants.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The input ended before a field was complete.
    #[error("truncated {what}: needed {needed} more byte(s), {available} available")]
    Truncated {
        /// The field or packet being read.
        what: &'static str,
        /// Bytes the field still needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A packet declared a length above the configured maximum.
    #[error("packet of {len} bytes exceeds the maximum of {max} bytes")]
    PacketTooLarge {
        /// The declared (or accumulated) payload length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A packet arrived with an unexpected sequence id.
    #[error("packet out of order: expected sequence id {expected}, got {got}")]
    OutOfOrder {
        /// The sequence id the framer expected.
        expected: u8,
        /// The sequence id that arrived.
        got: u8,
    },
    /// The bytes are complete but do not form a valid value.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The field or packet being read.
        what: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A command byte this crate does not know.
    #[error("unknown command byte 0x{0:02x}")]
    UnknownCommand(u8),
    /// A packet that is valid but not what the protocol state expects here.
    #[error("unexpected packet: {0}")]
    Unexpected(&'static str),
}

impl ProtocolError {
    /// Shorthand for [`ProtocolError::Malformed`].
    pub fn malformed(what: &'static str, reason: &'static str) -> Self {
        ProtocolError::Malformed { what, reason }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
