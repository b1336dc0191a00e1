//! Typed errors of the TEEP codec.

use alloc::string::String;

use otrp_cbor::CborError;

/// Everything that can go wrong while decoding or encoding a TEEP message.
///
/// Field paths use the draft's CDDL names, e.g. `query-request.options.token` or
/// `query-response.options.tc-list[0]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeepError {
    /// Malformed, oversized or too deeply nested CBOR, or a value of the wrong type,
    /// size or range (the field path names where).
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// A positional element of a message array is missing.
    #[error("{path}: missing positional element")]
    MissingElement {
        /// Field path.
        path: String,
    },
    /// The message array has more elements than the message type allows.
    #[error("{path}: {count} unexpected extra element(s)")]
    ExtraElements {
        /// Path of the message.
        path: String,
        /// Number of extra elements.
        count: usize,
    },
    /// A required map member is absent.
    #[error("{path}: missing required member")]
    MissingMember {
        /// Field path.
        path: String,
    },
    /// The first element is not a message type this codec knows.
    #[error("unknown TEEP message type {0}")]
    UnknownMessageType(u64),
    /// The message type differs from the one the caller asked to decode.
    #[error("expected TEEP message type {expected}, found {found}")]
    WrongMessageType {
        /// Type asked for.
        expected: u64,
        /// Type found.
        found: u64,
    },
    /// A value is of the right type but forbidden (e.g. err-code 0).
    #[error("{path}: invalid value: {reason}")]
    InvalidValue {
        /// Field path.
        path: String,
        /// Why it is invalid.
        reason: &'static str,
    },
}
