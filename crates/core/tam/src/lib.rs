//! The OpenTrust TAM core: the protocol-neutral model, the TEEP session rules, the
//! attestation verifier and the tenancy rules of the admin side. Sans-IO: no sockets,
//! clocks or files; time (`now`, Unix seconds) and randomness (`rng`) are arguments, and
//! all state lives in an [`otrp_store::Store`] so that several TAM processes serve one
//! fleet and a restarted TAM loses nothing. std-only (sqlx, rustls-webpki below).
//!
//! * [`Tam::process`] — TEEP over any transport: `body` empty → QueryRequest; a TEEP
//!   message → the next message or [`Outcome::Done`] (HTTP 200 vs 204).
//! * [`OtrpSession::process_otrp`] — OTrP over any transport, same shape
//!   (`application/otrp+json`): `body` empty → GetDeviceStateRequest; a TEE response →
//!   the next command or [`Outcome::Done`] (see [`otrp`]).
//! * [`Verifier`] / [`EatVerifier`] — evidence appraisal (x5chain or registered keys,
//!   nonce, reference values, revocation, cnf) into an EAR-shaped [`AttestationResult`].
//! * [`Admin`] — accounts (OEM, SPs, device admins) with hashed API tokens, OEM approval,
//!   SD grants, component registration with signature and sequence checks, dual-control
//!   co-signing, deployments with staged rollout; every action audited.
//! * The model records are those of [`otrp_store::model`], re-exported as [`model`].
//!
//! Component ids are keyed by the deterministic CBOR encoding of their
//! SUIT_Component_Identifier ([`component_key`]).
#![forbid(unsafe_code)]

pub mod admin;
pub mod attest;
pub mod batch;
pub mod delta;
pub mod otrp;
pub mod otrp_batch;
pub mod query_token;
mod recent_updates;
pub mod session;

pub use admin::{Admin, AdminError, Caller, Policy, Registered};
pub use attest::{
    AttestationError, AttestationResult, EatVerifier, ReferenceValues, Verifier,
    TFW_ENDORSEMENT_CLAIM, X5CHAIN,
};
pub use otrp::{OtrpError, OtrpSession, OtrpTamConfig, MEDIA_TYPE as OTRP_MEDIA_TYPE};
pub use otrp_store::model;
pub use otrp_teep::WireProfile;
pub use session::{CompactPolicy, Outcome, Tam, TamConfig, TamError, TamKeys, Transport, KCCS};

use ciborium::value::Value;

/// The deterministic CBOR encoding of a SUIT_Component_Identifier (`[* bstr]`): the key
/// under which the store keeps a component.
pub fn component_key(segments: &[Vec<u8>]) -> Vec<u8> {
    let v = Value::Array(segments.iter().map(|s| Value::Bytes(s.clone())).collect());
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for a plain array of byte strings.
    if ciborium::into_writer(&v, &mut out).is_err() {
        out.clear();
    }
    out
}

/// The segments of a component key made by [`component_key`] (None if it is not one).
pub fn component_id_of(key: &[u8]) -> Option<Vec<Vec<u8>>> {
    match ciborium::from_reader::<Value, _>(key).ok()? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Bytes(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}
