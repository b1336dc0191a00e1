//! The crate's error type.

use alloc::string::String;

use crate::SigAlg;

/// Everything that can go wrong in `otrp-crypto`; each variant names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A key was malformed or not usable; `what` says which key or field.
    #[error("invalid key: {what}")]
    InvalidKey {
        /// Which key, format or field was wrong.
        what: &'static str,
    },
    /// The key type does not fit the algorithm.
    #[error("key type {key} cannot be used with algorithm {alg:?}")]
    KeyAlgMismatch {
        /// The requested algorithm.
        alg: SigAlg,
        /// The key type that was given.
        key: &'static str,
    },
    /// A signature did not verify.
    #[error("signature verification failed ({alg:?})")]
    BadSignature {
        /// The algorithm that was checked.
        alg: SigAlg,
    },
    /// A signature had the wrong shape (length or encoding).
    #[error("malformed {alg:?} signature: {len} bytes")]
    MalformedSignature {
        /// The algorithm of the signature.
        alg: SigAlg,
        /// Its length in bytes.
        len: usize,
    },
    /// Creating a signature failed inside the backend.
    #[error("signing with {alg:?} failed")]
    Signing {
        /// The algorithm used.
        alg: SigAlg,
    },
    /// Key generation failed.
    #[error("key generation failed: {what}")]
    KeyGeneration {
        /// Which key kind.
        what: &'static str,
    },
    /// A PEM document could not be read or written.
    #[error("PEM {what}")]
    Pem {
        /// What was wrong (label, base64, DER structure, ...).
        what: String,
    },
    /// A JWK could not be read or written.
    #[error("JWK: {what}")]
    Jwk {
        /// What was wrong, naming the member (e.g. `"crv"`).
        what: String,
    },
    /// A symmetric key, IV or nonce had a length the algorithm does not take.
    #[error("{what}: unsupported length {len}")]
    InvalidLength {
        /// Which input (e.g. "AES-GCM key", "AES-GCM nonce").
        what: &'static str,
        /// The length that was given.
        len: usize,
    },
    /// AEAD decryption failed: the tag did not match (wrong key, nonce, AAD or tampered data).
    #[error("AES-GCM: authentication failed")]
    AeadOpen,
    /// AEAD encryption failed inside the backend.
    #[error("AES-GCM: encryption failed")]
    AeadSeal,
    /// RFC 3394 key unwrap failed its integrity check (wrong KEK or tampered data).
    #[error("AES key unwrap: integrity check failed")]
    KeyUnwrap,
    /// RFC 3394 key wrap refused its input.
    #[error("AES key wrap: input of {len} bytes is not a multiple of 8 or too short")]
    KeyWrap {
        /// Length of the key to wrap.
        len: usize,
    },
    /// HKDF could not produce the requested output length.
    #[error("HKDF-SHA-256: output length {len} too large")]
    HkdfLength {
        /// Requested output length.
        len: usize,
    },
    /// ECDH failed (e.g. the peer key is invalid).
    #[error("ECDH P-256: {what}")]
    Ecdh {
        /// What was wrong.
        what: &'static str,
    },
}
