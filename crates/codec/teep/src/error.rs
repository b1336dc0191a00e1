//! Typed errors of the TEEP codec.

use alloc::string::String;

use otrp_cbor::CborError;

/// Everything that can go wrong while decoding or encoding a TEEP message.
///
/// Field paths use the draft's CDDL names, e.g. `query-request.options.token` or
/// `query-response.options.tc-list[0]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeepError {
    /// The input is longer than [`crate::DecodeLimits::max_input_len`].
    #[error("input is {len} bytes, more than the limit of {max}")]
    InputTooLarge {
        /// Input length in bytes.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The input nests arrays, maps or tags deeper than [`crate::DecodeLimits::max_depth`].
    #[error("CBOR nesting deeper than the limit of {max}")]
    TooDeep {
        /// Configured limit.
        max: usize,
    },
    /// The input ended in the middle of a CBOR item.
    #[error("input truncated: the CBOR item is incomplete")]
    Truncated,
    /// The input is not well-formed CBOR.
    #[error("malformed CBOR at byte {offset}")]
    Syntax {
        /// Byte offset reported by the CBOR decoder.
        offset: usize,
    },
    /// The CBOR decoder refused a value (e.g. an integer wider than 128 bits, an unknown
    /// simple value, invalid UTF-8).
    #[error("unsupported CBOR value{}: {reason}", offset.map(|o| alloc::format!(" at byte {o}")).unwrap_or_default())]
    Semantic {
        /// Byte offset, when the decoder knows it.
        offset: Option<usize>,
        /// What the decoder said.
        reason: String,
    },
    /// Bytes follow the single CBOR item of the message.
    #[error("{count} trailing byte(s) after the message at byte {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
    /// A value has the wrong CBOR type.
    #[error("{path}: expected {expected}")]
    WrongType {
        /// Field path.
        path: String,
        /// What the CDDL asks for.
        expected: &'static str,
    },
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
    /// A byte or text string is outside its permitted size range.
    #[error("{path}: size {len} outside {min}..={max}")]
    SizeOutOfRange {
        /// Field path.
        path: String,
        /// Actual size in bytes.
        len: usize,
        /// Smallest permitted size.
        min: usize,
        /// Largest permitted size.
        max: usize,
    },
    /// A `[+ ...]` array is empty.
    #[error("{path}: array must not be empty")]
    EmptyArray {
        /// Field path.
        path: String,
    },
    /// An integer does not fit the range the CDDL gives.
    #[error("{path}: integer out of range ({reason})")]
    IntegerOutOfRange {
        /// Field path.
        path: String,
        /// What the range is.
        reason: &'static str,
    },
    /// A value is of the right type but forbidden (e.g. err-code 0).
    #[error("{path}: invalid value: {reason}")]
    InvalidValue {
        /// Field path.
        path: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A map holds the same key twice.
    #[error("{path}: duplicate key {key}")]
    DuplicateKey {
        /// Path of the map.
        path: String,
        /// The repeated key, in diagnostic notation.
        key: String,
    },
    /// `decode_strict`: the input is valid but not in deterministic/preferred encoding.
    #[error("input is not in preferred (deterministic) CBOR encoding; first difference at byte {offset}")]
    NotDeterministic {
        /// First byte where the input and its re-encoding differ.
        offset: usize,
    },
    /// The CBOR encoder failed (should not happen when writing to memory).
    #[error("CBOR encoding failed: {0}")]
    Encode(String),
}

impl From<CborError> for TeepError {
    /// Each error of the shared CBOR plumbing becomes the variant of the same name.
    fn from(e: CborError) -> Self {
        match e {
            CborError::InputTooLarge { len, max } => TeepError::InputTooLarge { len, max },
            CborError::TooDeep { max } => TeepError::TooDeep { max },
            CborError::Truncated => TeepError::Truncated,
            CborError::Syntax { offset } => TeepError::Syntax { offset },
            CborError::Semantic { offset, reason } => TeepError::Semantic { offset, reason },
            CborError::TrailingBytes { offset, count } => {
                TeepError::TrailingBytes { offset, count }
            }
            CborError::WrongType { path, expected } => TeepError::WrongType { path, expected },
            CborError::SizeOutOfRange {
                path,
                len,
                min,
                max,
            } => TeepError::SizeOutOfRange {
                path,
                len,
                min,
                max,
            },
            CborError::EmptyArray { path } => TeepError::EmptyArray { path },
            CborError::IntegerOutOfRange { path, reason } => {
                TeepError::IntegerOutOfRange { path, reason }
            }
            CborError::DuplicateKey { path, key } => TeepError::DuplicateKey { path, key },
            CborError::NotDeterministic { offset } => TeepError::NotDeterministic { offset },
            CborError::Encode(e) => TeepError::Encode(e),
        }
    }
}
