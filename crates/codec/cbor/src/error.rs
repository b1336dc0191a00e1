//! The one error type of the shared CBOR plumbing.

use alloc::string::String;

/// What went wrong while decoding, reading or encoding CBOR.
///
/// Field paths are the callers' (e.g. `query-request.options.token`). The TEEP and EAT
/// codecs map each variant to their variant of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input is longer than the input limit.
    #[error("input is {len} bytes, more than the limit of {max}")]
    InputTooLarge {
        /// Input length in bytes.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The input nests arrays, maps or tags deeper than the depth limit.
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
    /// Bytes follow the single CBOR item.
    #[error("{count} trailing byte(s) after the item at byte {offset}")]
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
