//! Typed errors; every decoding error names the field path where it happened.

use alloc::string::String;

/// Errors of the SUIT codec, digest checks and authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuitError {
    /// The bytes are not well-formed CBOR (offset relative to the item at `path`).
    #[error("{path}: malformed CBOR{}: {msg}", offset.map(|o| alloc::format!(" at byte {o}")).unwrap_or_default())]
    Cbor {
        /// Field path of the item being decoded.
        path: String,
        /// Byte offset inside that item, when known.
        offset: Option<usize>,
        /// What the CBOR decoder said.
        msg: String,
    },
    /// Bytes left after a complete CBOR item.
    #[error("{path}: {len} trailing bytes after the CBOR item")]
    TrailingBytes {
        /// Field path.
        path: String,
        /// Number of unread bytes.
        len: usize,
    },
    /// Input larger than the configured limit.
    #[error("{path}: {len} bytes exceed the limit of {max}")]
    TooLarge {
        /// Field path.
        path: String,
        /// Actual size.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// Nesting (CBOR depth or bstr-wrapped command sequences) beyond the limit.
    #[error("{path}: nesting deeper than {max}")]
    TooDeep {
        /// Field path.
        path: String,
        /// Configured limit.
        max: usize,
    },
    /// A value of the wrong CBOR type.
    #[error("{path}: expected {expected}")]
    Type {
        /// Field path.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// A required member is absent.
    #[error("{path}: required member missing")]
    Missing {
        /// Field path of the missing member.
        path: String,
    },
    /// A map key appears twice.
    #[error("{path}: duplicate key")]
    Duplicate {
        /// Field path of the duplicated member.
        path: String,
    },
    /// A value of the right type but not allowed here.
    #[error("{path}: invalid value: {reason}")]
    Invalid {
        /// Field path.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Encoding a value failed.
    #[error("{path}: CBOR encoding failed")]
    Encode {
        /// What was being encoded.
        path: String,
    },
    /// A digest algorithm this crate cannot compute.
    #[error("{path}: unsupported digest algorithm {alg}")]
    UnsupportedDigest {
        /// Field path of the digest.
        path: String,
        /// COSE algorithm id.
        alg: i64,
    },
    /// A digest does not match the bytes it covers.
    #[error("{what}: digest mismatch")]
    DigestMismatch {
        /// What was checked (e.g. `manifest`, `severed install`).
        what: String,
    },
    /// A severed member was needed but is absent from the envelope.
    #[error("{what}: severed member not present in the envelope")]
    SeveredMissing {
        /// Member name.
        what: String,
    },
    /// The envelope carries no COSE authentication block.
    #[error("authentication wrapper holds no COSE authentication block")]
    Unsigned,
    /// No authentication block verified with any trusted key.
    #[error("no authentication block verified: {reason}")]
    Authentication {
        /// What the COSE layer reported for the last block tried.
        reason: String,
    },
    /// Payload encryption or decryption failed in the COSE layer.
    #[error("payload encryption: {reason}")]
    Encryption {
        /// What the COSE layer reported.
        reason: String,
    },
    /// Signing failed in the COSE layer.
    #[error("signing failed: {reason}")]
    Signing {
        /// What the COSE layer reported.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = core::result::Result<T, SuitError>;
