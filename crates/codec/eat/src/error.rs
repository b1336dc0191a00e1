//! Typed errors of the EAT codec.

use alloc::string::String;

use otrp_cbor::CborError;

/// Everything that can go wrong while decoding, encoding, signing or verifying EAT claims.
///
/// Field paths use the claim names of RFC 9711, e.g. `eat.ueid` or `eat.hwversion[0]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EatError {
    /// Malformed, oversized or too deeply nested CBOR, or a value of the wrong type,
    /// size or range (the field path names where).
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// A claim the profile requires is absent.
    #[error("missing claim {claim}")]
    MissingClaim {
        /// Claim name (RFC 9711).
        claim: &'static str,
    },
    /// The claims set violates the TEEP EAT profile (ED §5).
    #[error("{path}: not allowed by the TEEP EAT profile: {reason}")]
    Profile {
        /// Field path.
        path: String,
        /// Rule violated.
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
}
