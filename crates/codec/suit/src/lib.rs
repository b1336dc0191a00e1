//! SUIT envelopes, manifests and reports for TEEP (draft-ietf-suit-manifest-34 with the
//! trust-domains, firmware-encryption, update-management and report extensions).
//!
//! * Decoding keeps the exact bytes of every bstr-wrapped member ([`Wrapped`]), so a
//!   decoded envelope re-encodes byte for byte and digests cover the original bytes.
//! * Values built in code encode deterministically (RFC 8949 §4.2.1 key order).
//! * Unknown map keys, commands and parameters are kept and re-encoded.
//! * All decoders enforce [`Limits`] and report errors with a field path.
//!
//! Label numbers: see [`labels`].
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod auth;
pub mod builder;
pub mod cbor;
pub mod command;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod labels;
pub mod manifest;
pub mod params;
pub mod report;

pub use auth::{compact_sign_options, decrypt_payload, VerifiedBlock};
pub use builder::{ManifestDependency, PayloadSource, TaManifestBuilder};
pub use cbor::{CborItem, Limits, Opaque, Value, Wrapped};
pub use command::{
    Action, Command, CommandSequence, Condition, IndexArg, ReportingPolicy, TryEach,
};
pub use digest::{ComponentId, Digest, PERSO_SEGMENT};
pub use envelope::{Authentication, Envelope, SeveredMembers};
pub use error::{Result, SuitError};
pub use manifest::{
    Common, DependencyMetadata, Manifest, Severable, TextLMap, TextMap, VersionValue,
};
pub use params::{Parameter, Parameters, VendorId, VersionMatch};
pub use report::{
    ReportEntry, ReportReason, ReportResult, SuitRecord, SuitReport, SystemPropertyClaims,
};
