//! SUIT manifest processor (draft-ietf-suit-manifest §6 with draft-ietf-suit-trust-domains,
//! -firmware-encryption and -report) as a sans-IO machine for the TEEP Agent.
//!
//! # Model
//!
//! * [`Processor::update`] takes envelope bytes, the [`ComponentStore`] and the changes
//!   already staged by earlier manifests of the same TEEP Update, and returns a [`Step`]:
//!   `Done` with the [`ChangeSet`] to commit and a success [`SuitReport`](otrp_suit::SuitReport),
//!   `Failed` with a failure report (nothing to commit), or `NeedFetch { uri }`. The core
//!   does no I/O: the caller (the Agent, through the Broker) fetches the URI, hands the
//!   bytes over with [`Processor::provide`] and calls `update` again. Because processing
//!   stages everything in memory and is deterministic, the repeated call re-runs the same
//!   steps from the start (re-verifying, which is cheap next to a network fetch) and gets
//!   past the fetch: the manifest is "re-appliable" in the sense of suit-manifest §6.3.1.
//! * Nothing is written before the caller commits: every change of one operation goes
//!   through a single [`ComponentStore::commit`], so a failed or interrupted update leaves
//!   the store untouched.
//!
//! # Order of checks for each manifest (root or dependency)
//!
//! 1. decode under [`otrp_suit::Limits`]; 2. authentication: the digest over the
//!    bstr-wrapped manifest and at least one COSE block verified by a trust anchor,
//!    **before anything is interpreted**; 3. manifest version 1; 4. the
//!    [`ManifestPolicy`] (the Agent's Security Domain rules); 5. anti-rollback: the
//!    sequence number must be above the high-water mark of the manifest id ([`SeqMark`],
//!    kept even after uninstallation), or equal with the very same digest (re-applying);
//!    6. no component may belong to another installed manifest; 7. the sections
//!    dependency-resolution, payload-fetch, candidate-verification, install, validate,
//!    each preceded by the shared sequence with cleared parameters.
//!
//! # Commands
//!
//! Conditions: vendor, class and device identifier (against [`DeviceIdentity`]),
//! image-match / image-not-match (digest and, when set, size), check-content,
//! dependency-integrity, is-dependency, component-slot (slot 0 only), abort. Directives:
//! set-component-index (int, list, `true`), override-parameters, set-parameters,
//! override-multiple, copy-params, try-each (with its `nil` default), run-sequence,
//! fetch (integrated `#key` payloads from the envelope, otherwise through
//! [`Step::NeedFetch`]), write, copy, swap, process-dependency, unlink (in uninstall) and
//! invoke (in [`Processor::invoke`]). Encrypted payloads: `encryption-info` set on the
//! component makes write, copy and fetch decrypt with the device's [`DeviceKek`]s
//! (A128KW or ECDH-ES+A128KW, A128GCM or A128CTR, via `otrp-cose`). Soft-failure ends the
//! current sequence without error. Use-before, minimum-battery, update-authorized, version
//! and wait are refused as unsupported. `section-offset` in records is the index of the
//! command in its sequence (not a byte offset).
//!
//! Delta updates and compressed full images (custom parameters `otrp-delta-base` -70100
//! and `otrp-compressed` -70101): see [`delta`].
//!
//! # Dependencies (trust-domains)
//!
//! A component index listed in `suit-dependencies` is a dependency slot. Fetching into it
//! takes the envelope from the `#key` integrated member, from a fetched URI, or (without a
//! fetch) from an installed manifest with the same digest. Its digest is checked against
//! the slot's image-digest (the digest of the dependency's bstr-wrapped manifest), and
//! `process-dependency` refuses slots that were never integrity-checked. The
//! `dependency-prefix` is the dependency's **manifest component id** (as in TEEP's
//! personalization example); component ids inside a dependency are absolute. The
//! image-size of a dependency is not checked (TEEP App. E Example 3 gives 389 for a
//! 387-byte envelope). `process-dependency` runs the dependency's whole update procedure
//! once per update, or only adds a reference when that exact manifest is installed.
//!
//! # Reference counts and uninstall
//!
//! Each [`ManifestRecord`] lists its [`Holder`]s (the TAM for root manifests, dependent
//! manifests otherwise); the reference count is their number. [`Processor::unlink`]
//! removes one holder; at zero the manifest's `suit-uninstall` runs, its components and
//! record are removed and its dependencies unlinked in turn.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod delta;
mod processor;
pub mod store;

pub use processor::{
    manifest_id_of, AllowAll, Applied, DeviceIdentity, DeviceKek, Failed, ManifestPolicy,
    ProcessError, Processor, ProcessorConfig, Refusal, Step,
};
pub use store::{
    component_id_text, ChangeSet, ComponentStore, Holder, ManifestRecord, MemoryStore, SeqMark,
    Staged, StoreError, View,
};
