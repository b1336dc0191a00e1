//! TEEP protocol messages (draft-ietf-teep-protocol, editor's copy after -25; -21 values
//! are accepted too) as typed Rust values, encoded and decoded with ciborium.
//!
//! * [`QueryRequest`], [`QueryResponse`], [`Update`], [`Success`], [`Error`] and the
//!   sum type [`TeepMessage`] cover every member of the draft's CDDL (ED App. C).
//! * [`decode_any`] / `T::decode` check what the CDDL forbids (types, sizes, err-code 0,
//!   missing or extra positional elements, non-map options, non-uint labels, duplicate keys,
//!   trailing bytes, wrong message type) and name the field path in the [`TeepError`].
//! * Unknown option labels are kept in `extensions` in decoded order; protocol logic
//!   ignores them, re-encoding keeps them.
//! * Re-encoding replays the decoded key order ([`KeyOrder`]), so `decode(x).to_vec() == x`
//!   for every input in preferred serialization (all the draft's examples). Values built in
//!   code are encoded deterministically (RFC 8949 §4.2.1). `decode` accepts any well-formed
//!   CBOR ciborium accepts (also non-preferred integers and indefinite lengths);
//!   `decode_strict` additionally requires the input to equal its re-encoding.
//! * [`DecodeLimits`] bound input size and nesting depth; no allocation is sized from an
//!   untrusted length (see [`DecodeLimits`]).
//! * [`signed`]: COSE_Sign1 / COSE_Sign protection (via `otrp-cose`), verification and
//!   decoding in one call; cipher suites map to `otrp_crypto::SigAlg` and the id generation.
//! * Semantic rules that are prose rather than CDDL (token only when …, have-binary ⇒
//!   sequence number, conditional MUSTs of Error) are protocol logic, not checked here.
//!
//! The message type numbers live in one place, [`msg_type`], because the draft's examples
//! (success 5, error 6) and the IANA registry (4, 5) disagree.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod cbor;
mod error;
mod fields;
mod messages;
pub mod signed;
pub use signed::WireProfile;
mod types;

pub use ciborium::value::Value;

pub use cbor::DecodeLimits;
pub use error::TeepError;
pub use messages::{
    decode_any, Error, QueryRequest, QueryResponse, Success, TeepCodec, TeepMessage, Update,
};
pub use otrp_cbor::{CborError, KeyOrder};
pub use types::{
    cose_alg, cose_type, msg_type, CipherOperation, ComponentId, DataItemRequested, ErrCode,
    FreshnessMechanism, RequestedTcInfo, SuitCoseProfile, SystemPropertyClaims, TeepCipherSuite,
};

/// CBOR map labels of TEEP options (ED §6).
pub mod label {
    /// `supported-teep-cipher-suites` (Error only; positional in QueryRequest).
    pub const SUPPORTED_TEEP_CIPHER_SUITES: u64 = 1;
    /// `challenge`.
    pub const CHALLENGE: u64 = 2;
    /// `versions`.
    pub const VERSIONS: u64 = 3;
    /// `supported-suit-cose-profiles` (Error only; positional in QueryRequest).
    pub const SUPPORTED_SUIT_COSE_PROFILES: u64 = 4;
    /// `selected-version`.
    pub const SELECTED_VERSION: u64 = 6;
    /// `attestation-payload`.
    pub const ATTESTATION_PAYLOAD: u64 = 7;
    /// `tc-list`.
    pub const TC_LIST: u64 = 8;
    /// `ext-list`.
    pub const EXT_LIST: u64 = 9;
    /// `manifest-list`.
    pub const MANIFEST_LIST: u64 = 10;
    /// `msg`.
    pub const MSG: u64 = 11;
    /// `err-msg`.
    pub const ERR_MSG: u64 = 12;
    /// `attestation-payload-format`.
    pub const ATTESTATION_PAYLOAD_FORMAT: u64 = 13;
    /// `requested-tc-list`.
    pub const REQUESTED_TC_LIST: u64 = 14;
    /// `unneeded-manifest-list`.
    pub const UNNEEDED_MANIFEST_LIST: u64 = 15;
    /// `component-id` (in requested-tc-info).
    pub const COMPONENT_ID: u64 = 16;
    /// `tc-manifest-sequence-number` (in requested-tc-info).
    pub const TC_MANIFEST_SEQUENCE_NUMBER: u64 = 17;
    /// `have-binary` (in requested-tc-info).
    pub const HAVE_BINARY: u64 = 18;
    /// `suit-reports`.
    pub const SUIT_REPORTS: u64 = 19;
    /// `token`.
    pub const TOKEN: u64 = 20;
    /// `supported-freshness-mechanisms`.
    pub const SUPPORTED_FRESHNESS_MECHANISMS: u64 = 21;
    /// `err-lang` (editor's copy; not in -21).
    pub const ERR_LANG: u64 = 22;
    /// `err-code` (Update only; positional in Error).
    pub const ERR_CODE: u64 = 23;
}

/// Default `attestation-payload-format` when absent (ED §4.2): EAT CWT in the TEEP profile.
pub const DEFAULT_ATTESTATION_PAYLOAD_FORMAT: &str =
    "application/eat+cwt; eat_profile=urn:ietf:rfc:rfcXXXX";

#[cfg(test)]
mod tests;
