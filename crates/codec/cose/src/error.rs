//! The crate's error type.

use alloc::string::String;

use otrp_crypto::{CryptoError, SigAlg};

/// Everything that can go wrong in `otrp-cose`; each variant names what failed and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoseError {
    /// The bytes are not well-formed CBOR (or are truncated).
    #[error("{what}: malformed CBOR: {detail}")]
    Cbor {
        /// Which structure was being read.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// Bytes remain after the CBOR item.
    #[error("{what}: {extra} trailing bytes after the item at offset {offset}")]
    TrailingData {
        /// Which structure was being read.
        what: &'static str,
        /// Offset where the trailing data starts.
        offset: usize,
        /// Number of trailing bytes.
        extra: usize,
    },
    /// The CBOR is well formed but not the expected COSE structure.
    #[error("{what}: {detail}")]
    Structure {
        /// Which structure was being read (e.g. "COSE_Sign1", "COSE_Encrypt recipient 0").
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A tag other than the expected one.
    #[error("{what}: unexpected CBOR tag {found} (expected {expected})")]
    UnexpectedTag {
        /// Which structure was being read.
        what: &'static str,
        /// The expected tag.
        expected: u64,
        /// The tag found.
        found: u64,
    },
    /// No `alg` header parameter where one is required.
    #[error("{what}: missing alg header parameter")]
    MissingAlgorithm {
        /// Where it was missing (e.g. "COSE_Sign1 protected header").
        what: &'static str,
    },
    /// A header parameter that has no meaning on a signed message (TEEP §4.1.2).
    #[error("{what}: header parameter {label} is not accepted on a signature")]
    UnexpectedHeader {
        /// Which header.
        what: &'static str,
        /// The label.
        label: String,
    },
    /// No key gives the COSE_Mac0 tag.
    #[error("{what}: MAC does not verify under any given key")]
    BadMac {
        /// Which structure.
        what: &'static str,
    },
    /// An algorithm this crate does not implement (the COSE id, or the text label).
    #[error("{what}: unsupported algorithm {alg}")]
    UnsupportedAlgorithm {
        /// Where it was found.
        what: &'static str,
        /// The algorithm as found.
        alg: String,
    },
    /// A header parameter listed in `crit` that this crate does not understand (RFC 9052 §3.1).
    #[error("{what}: unknown critical header parameter {label}")]
    UnknownCriticalHeader {
        /// Which header.
        what: &'static str,
        /// The label as found.
        label: String,
    },
    /// The message has no payload (detached) and none was supplied.
    #[error("{what}: payload is detached but none was supplied")]
    DetachedPayloadMissing {
        /// Which structure.
        what: &'static str,
    },
    /// A detached payload was supplied but the message carries one.
    #[error("{what}: payload is attached but a detached payload was also supplied")]
    PayloadConflict {
        /// Which structure.
        what: &'static str,
    },
    /// No supplied key fits the signature (by kid or key type).
    #[error("{what}: no key matches (kid {kid})")]
    NoMatchingKey {
        /// Which signature.
        what: &'static str,
        /// The kid as hex, or "none".
        kid: String,
    },
    /// A signature did not verify with any candidate key.
    #[error("{what}: signature does not verify ({alg:?})")]
    BadSignature {
        /// Which signature (e.g. "COSE_Sign signature 1").
        what: &'static str,
        /// The algorithm.
        alg: SigAlg,
    },
    /// A COSE_Sign verification policy was not met.
    #[error("COSE_Sign: {verified} of {total} signatures verified, policy {policy} not met")]
    PolicyNotMet {
        /// Signatures that verified.
        verified: usize,
        /// Signatures in the message.
        total: usize,
        /// The policy name.
        policy: &'static str,
    },
    /// A COSE_Key could not be converted.
    #[error("COSE_Key: {what}")]
    Key {
        /// What was wrong, naming the parameter.
        what: String,
    },
    /// No recipient of a COSE_Encrypt could be opened with the supplied key.
    #[error("COSE_Encrypt: no recipient matches the supplied key ({tried} tried)")]
    NoRecipient {
        /// How many recipients used an algorithm compatible with the key.
        tried: usize,
    },
    /// An IV of the wrong length.
    #[error("{what}: IV must be {expected} bytes, found {found}")]
    BadIv {
        /// Where.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// A cryptographic operation failed.
    #[error("{what}: {source}")]
    Crypto {
        /// Which step failed (e.g. "content decryption").
        what: &'static str,
        /// The provider's error.
        #[source]
        source: CryptoError,
    },
    /// Encoding a COSE structure failed.
    #[error("{what}: CBOR encoding failed")]
    Encode {
        /// Which structure.
        what: &'static str,
    },
}

impl CoseError {
    pub(crate) fn structure(what: &'static str, detail: impl Into<String>) -> Self {
        CoseError::Structure {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn crypto(what: &'static str) -> impl FnOnce(CryptoError) -> Self {
        move |source| CoseError::Crypto { what, source }
    }

    pub(crate) fn coset(what: &'static str) -> impl FnOnce(coset::CoseError) -> Self {
        move |e| CoseError::Structure {
            what,
            detail: alloc::format!("{e}"),
        }
    }
}
