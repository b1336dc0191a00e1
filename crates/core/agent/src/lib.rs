//! The TEEP Agent core: a sans-IO, `no_std` + `alloc` state machine.
//!
//! # Driving it
//!
//! [`Agent::handle`] takes the bytes of a TAM message (and the time) and returns an
//! [`Output`]: the signed TEEP message to send back, if any, and [`Event`]s
//! (`Installed`, `Removed`, `SdCreated`, `SdDeleted`, `NeedFetch`, `Refused`, `TamError`).
//! On `NeedFetch { uri }` the shell (through the Broker) fetches the URI and calls
//! [`Agent::provide_fetch`] (or [`Agent::fetch_failed`]); the Update then resumes (it is
//! re-run from the start over the fetched bytes; nothing was stored in between).
//! [`Agent::request_ta`] / [`Agent::unrequest_ta`] are the RequestTA / UnrequestTA
//! Broker APIs. No randomness is needed: the Agent's signatures are deterministic
//! (RFC 6979 ECDSA, Ed25519), its tokens come from the TAM.
//!
//! # What it checks
//!
//! * Every TAM message: COSE_Sign1 or COSE_Sign verified against the trusted TAM keys of
//!   [`AgentConfig::tams`] (the std shell validates X.509 chains with otrp-pki and passes
//!   the keys in). Failures are answered with an Error: `ERR_BAD_CERTIFICATE` (6) when
//!   no trusted key signed it (rogue TAM), `ERR_PERMANENT_ERROR` (1) for tampered bytes
//!   (the kid names a trusted key but the signature fails) or malformed messages.
//! * Replays: a token the Agent already answered is refused with `ERR_PERMANENT_ERROR`
//!   (the last [`AgentConfig::max_tokens`] tokens are kept in the store, committed with
//!   the answer). Reordered Updates are caught by the SUIT sequence numbers.
//! * QueryRequest: a cipher suite whose algorithm fits the Agent key is chosen from the
//!   TAM's list (`ERR_UNSUPPORTED_CIPHER_SUITES` with our suites otherwise); the
//!   QueryResponse carries the token, evidence from the [`Attester`] (nonce = challenge,
//!   else token; only `FRESHNESS_NONCE`), the tc-list (component id, image digest and
//!   size), the requested-tc-list and the unneeded-manifest-list.
//! * Update: unneeded manifests are unlinked (reference-counted, see
//!   `otrp-suit-processor`), then every manifest goes through the SUIT processor on top
//!   of the changes staged so far; all changes plus the token are committed in one
//!   `commit`. Any failure answers `ERR_MANIFEST_PROCESSING_FAILED` (17) with SUIT
//!   reports (nonce = token) and commits nothing.
//!
//! # Security Domains in TEEP (our definition)
//!
//! An SD is the trust domain of the TC Signers authorized for it. A manifest's component
//! ids all start with the SD name (first segment); its SUIT signer must be one of the SD's
//! signers, and the TAM sending it must be the SD's managing TAM (or an OEM TAM).
//!
//! **Creating an SD** = installing a SUIT manifest whose single component (and manifest
//! id) is `[sd-name, "sd"]` and whose payload is an [`SdDescriptor`]:
//! `{1: name, 2: sp-id, 3: [+ signer SPKI DER], ? 4: OEM authorization, ? 5: tam-kid}`.
//! The manifest must be SUIT-signed by the TAM that sends it (the SD's owner) and goes
//! through the same processor (signature, anti-rollback on its sequence number). After
//! it processed, the descriptor is checked against the management configuration:
//!
//! * [`Management::OemGated`]: a non-OEM TAM needs an [`OemAuthorization`] (COSE_Sign1 by
//!   an OEM key over `[sp-id, tam-kid]`) once, carried in the descriptor; the Agent records
//!   it and later SDs of that SP need none.
//! * [`Management::OemOwnedSds`]: only an OEM TAM creates or deletes SDs; it names the SP's
//!   managing TAM in `tam-kid`, and that TAM then manages TAs inside, nowhere else.
//! * [`Management::DualControl`]: every manifest an Update installs must carry both an
//!   OEM and an SP signature: either each SUIT envelope's authentication verifies under
//!   an OEM key (an OEM TAM or [`AgentConfig::oem_keys`]) AND under an SP signer
//!   authorized for its SD (SD manifests: the sending TAM), which is what the TAM's
//!   `Admin::cosign_manifest` workflow produces; or the Update itself is a COSE_Sign by an
//!   OEM key and an SP TAM. Deletions (unneeded-manifest-list) need the managing TAM
//!   only: dual control governs what code runs in the TEE, and removal by the managing
//!   TAM is already within its power (it may stop serving a component at any time).
//!
//! Re-installing an SD manifest updates the SD (same SP, same owner only). **Deleting an
//! SD** = listing `[sd-name, "sd"]` in an Update's unneeded-manifest-list; refused while
//! the SD still holds manifests. The registry lives in the store's state entries
//! (`sd/<hex name>`, see [`SecurityDomain`]), changed in the same commit as the rest.
//!
//! # OTrP
//!
//! The OTrP JSON profile (GetDeviceState with the DSI, CreateSD/UpdateSD/DeleteSD,
//! InstallTA/UpdateTA/DeleteTA, per-SP AIKs, `dsihash` state matching) is [`otrp`]:
//! [`OtrpAgent::handle`] on any store, or [`Agent::handle_otrp`] on this Agent's store,
//! so both profiles install through the same component store.
//!
//! # Batch mode
//!
//! [`Agent::handle_batch`] applies a token-less, TAM-signed batch package (one Update
//! for every device of a batch, payloads encrypted to the batch key) after checking its
//! batch id and sequence number, and queues the signed report; see [`batch`].
//!
//! # Not done yet
//!
//! TAM attestation (ERR_ATTESTATION_REQUIRED) and EAT/SUIT-report encryption.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod agent;
pub mod attest;
pub mod batch;
mod error;
pub mod otrp;
pub mod sd;

pub use agent::{
    peek_manifest_id, Agent, AgentConfig, Event, Management, Output, TrustedTam, TOKENS_STATE_KEY,
};
pub use attest::{tfw_endorsement, Attester, EatAttester, EatIdentity, InstalledManifest};
pub use batch::{BatchMembership, BatchOutcome, BatchRefusal, QueuedReport, ReportKey};
pub use error::AgentError;
pub use otrp::{OtrpAgent, OtrpConfig, OtrpEvent, OtrpOutput, OtrpTam, TfwKey};
pub use sd::{OemAuthorization, SdDescriptor, SecurityDomain};

pub use otrp_suit_processor as suit_processor;
