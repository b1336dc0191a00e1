//! EAT (RFC 9711) claims sets for the TEEP profile (draft-ietf-teep-protocol §5), encoded
//! with ciborium.
//!
//! * [`EatClaims`] types the claims the TEEP profile uses (cnf, eat_nonce, ueid, oemid,
//!   hwmodel, hwversion, eat_profile, swname, manifests, measurements, iat, exp) and keeps
//!   every other claim in `other`, in decoded order.
//! * Decoding then re-encoding gives the input bytes back for preferred-serialization
//!   input; built values are encoded deterministically. `decode_strict` refuses other
//!   encodings; `decode_teep` adds the profile checks (required claims, no tags).
//! * Claim keys follow RFC 9711 ([`claim`]): **manifests = 272, measurements = 273**. The
//!   TEEP draft's example (ED App. D.2) labels 273 as "manifests"; decoded here, that
//!   entry lands in `measurements`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod cbor;
mod claims;
mod error;
pub mod signed;

pub use ciborium::value::Value;

pub use cbor::DecodeLimits;
pub use claims::{Confirmation, ContentFormat, EatClaims, EatNonce, HwVersion, OemId, Profile};
pub use error::EatError;
pub use otrp_cbor::{CborError, KeyOrder};
pub use signed::{EatSignOptions, SignedEatError, VerifiedEat};

/// The `eat_profile` value of the TEEP profile (ED §5; the RFC number is not assigned yet).
pub const TEEP_EAT_PROFILE: &str = "urn:ietf:rfc:rfcXXXX";

/// CWT / EAT claim keys (RFC 8392, RFC 8747, RFC 9711 IANA registrations).
pub mod claim {
    /// `iss`.
    pub const ISS: i64 = 1;
    /// `sub`.
    pub const SUB: i64 = 2;
    /// `aud`.
    pub const AUD: i64 = 3;
    /// `exp`.
    pub const EXP: i64 = 4;
    /// `nbf`.
    pub const NBF: i64 = 5;
    /// `iat`.
    pub const IAT: i64 = 6;
    /// `cti`.
    pub const CTI: i64 = 7;
    /// `cnf` (RFC 8747).
    pub const CNF: i64 = 8;
    /// `eat_nonce`.
    pub const EAT_NONCE: i64 = 10;
    /// `ueid`.
    pub const UEID: i64 = 256;
    /// `sueids`.
    pub const SUEIDS: i64 = 257;
    /// `oemid`.
    pub const OEMID: i64 = 258;
    /// `hwmodel`.
    pub const HWMODEL: i64 = 259;
    /// `hwversion`.
    pub const HWVERSION: i64 = 260;
    /// `uptime`.
    pub const UPTIME: i64 = 261;
    /// `oemboot`.
    pub const OEMBOOT: i64 = 262;
    /// `dbgstat`.
    pub const DBGSTAT: i64 = 263;
    /// `location`.
    pub const LOCATION: i64 = 264;
    /// `eat_profile`.
    pub const EAT_PROFILE: i64 = 265;
    /// `submods`.
    pub const SUBMODS: i64 = 266;
    /// `bootcount`.
    pub const BOOTCOUNT: i64 = 267;
    /// `bootseed`.
    pub const BOOTSEED: i64 = 268;
    /// `dloas`.
    pub const DLOAS: i64 = 269;
    /// `swname`.
    pub const SWNAME: i64 = 270;
    /// `swversion`.
    pub const SWVERSION: i64 = 271;
    /// `manifests`.
    pub const MANIFESTS: i64 = 272;
    /// `measurements`.
    pub const MEASUREMENTS: i64 = 273;
    /// `measres`.
    pub const MEASRES: i64 = 274;
    /// `intuse`.
    pub const INTUSE: i64 = 275;
}

#[cfg(test)]
mod tests;
