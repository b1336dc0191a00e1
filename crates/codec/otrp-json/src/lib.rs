//! OTrP JSON profile (draft-ietf-teep-opentrustprotocol-03) with its JOSE layer.
//!
//! * [`messages`]: strict serde types for the seven command pairs (TBS payloads,
//!   signed wrappers, decrypted `content`), the DSI, `TAQuery`/`TAInformation`, the
//!   Broker error and every §5.2 [`ErrorCode`]; [`decode_any`] recognises any message by
//!   its outer name. Request templates are closed (unknown members refused); responses
//!   and the DSI keep unknown members in `extra`.
//! * [`jose`]: JWS (ES256, RS256; flattened and general JSON serialization), JWE general
//!   JSON serialization (A128CBC-HS256, A256CBC-HS512 with ECDH-ES+A128KW or RSA-OAEP;
//!   RSA1_5 decrypt only with [`LegacyMode::Allow`], never emitted).
//! * High level ([`sign_request`], [`verify_request`], [`sign_response`],
//!   [`verify_response`], [`encrypt_content`], [`decrypt_content`]): the draft's
//!   encrypt-then-sign order, and the check that the unsigned outer name matches the
//!   signed payload ([`Error::NameMismatch`]).
//!
//! Output is compact JSON in declaration order, so what we produce re-encodes byte for
//! byte. Errors name the JSON path and line/column ([`Error::Data`], [`Error::Syntax`]).
//!
//! Decisions where the draft is loose (spec `otrp.md` §7.0, §9):
//! * Booleans (`nextdsi`, `deleteta`, `signerreq`, `renewteespaik`) are JSON booleans as
//!   in the templates; the samples' strings (`"false"`, `"1"`) are refused with a path.
//!   `ocspdat` and `supportedsigalgs` are arrays, `sdlist.cnt` a decimal string.
//! * `content`/`edsi` decode as [`Content::Encrypted`] when the object has `ciphertext`,
//!   else as [`Content::Plain`] (the "TBS before encryption" samples); signing and
//!   verifying refuse plaintext ([`Error::PlaintextContent`]).
//! * `reason` is the §7.6 coded object or the §9.2.1.3 free-text detail ([`Reason`]).
//! * Response encryption "with the same JWE CEK of the request": the TEE re-wraps the
//!   request CEK to the TAM key with a fresh IV ([`encrypt_content_with_cek`]); the TAM
//!   can open it with its key or the CEK it kept ([`decrypt_content_with_cek`]).
//! * RSA1_5 decryption uses the RFC 7516 §11.5 random-CEK countermeasure and blinded
//!   RSA; all JWE failures are the same [`Error::Decrypt`].
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod api;
pub mod batch;
mod error;
pub mod jose;
pub mod json;
pub mod messages;

pub use api::*;
pub use error::Error;
pub use jose::{
    Cek, ContentEnc, JweJson, Jws, KeyMgmt, LegacyMode, RecipientKey, Signer, VerifyPolicy,
};
pub use messages::*;
