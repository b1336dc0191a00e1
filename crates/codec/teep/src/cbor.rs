//! CBOR plumbing: the shared [`otrp_cbor`] helpers (bounded decoding, accessors naming
//! the field path, key-order-preserving maps) under this codec's [`DecodeLimits`]. Their
//! [`CborError`] converts into [`TeepError`](crate::error::TeepError) with `?`.

pub(crate) use otrp_cbor::*;

/// Resource limits applied while decoding untrusted bytes.
///
/// The CBOR decoder never pre-allocates from a declared length: byte strings are read in
/// chunks and arrays/maps grow one element at a time, so a huge declared length in a short
/// input fails with [`CborError::Truncated`] after reading what is there. Memory is
/// therefore bounded by a small multiple of `max_input_len`; stack use is bounded by
/// `max_depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input in bytes.
    pub max_input_len: usize,
    /// Deepest accepted nesting of arrays, maps and tags (the message array is level 1).
    pub max_depth: usize,
}

impl DecodeLimits {
    /// Default limits: 4 MiB of input (an Update may carry integrated payloads), nesting 16.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_input_len: 4 * 1024 * 1024,
        max_depth: 16,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Decodes exactly one CBOR item from `bytes` under `limits`.
pub(crate) fn decode_value(bytes: &[u8], limits: &DecodeLimits) -> Result<Value, CborError> {
    otrp_cbor::decode_value(bytes, limits.max_input_len, limits.max_depth)
}
