//! A builder for Trusted Component manifests in the shapes used by TEEP
//! (draft-ietf-teep-protocol Appendix E): URI, integrated payload, and encrypted
//! personalization data depending on another manifest.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cbor::Wrapped;
use crate::command::{Action, Command, CommandSequence, Condition, IndexArg, ReportingPolicy};
use crate::digest::{ComponentId, Digest};
use crate::envelope::Envelope;
use crate::error::{Result, SuitError};
use crate::manifest::{Common, DependencyMetadata, Manifest, Severable};
use crate::params::{Parameter, Parameters, VendorId};

/// Where the Trusted Component's image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadSource {
    /// Fetched from a URI.
    Uri(String),
    /// Carried in the envelope under a text key (e.g. `"#tc"`); the manifest fetches it
    /// by the URI equal to that key.
    Integrated {
        /// Envelope key, conventionally starting with `#`.
        key: String,
        /// The payload bytes.
        bytes: Vec<u8>,
    },
    /// Written from the `content` parameter after decryption with `encryption-info`
    /// (draft-ietf-suit-firmware-encryption).
    Encrypted {
        /// The ciphertext.
        ciphertext: Vec<u8>,
        /// `SUIT_Encryption_Info` bytes (tagged COSE_Encrypt with detached ciphertext).
        encryption_info: Vec<u8>,
    },
}

/// A dependency on another manifest (trust-domains).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDependency {
    /// `suit-dependency-prefix`: the dependency's manifest component id.
    pub prefix: ComponentId,
    /// Digest of the dependency's bstr-wrapped manifest.
    pub digest: Digest,
    /// Size of the dependency's envelope.
    pub size: u64,
    /// Where to fetch the dependency's envelope.
    pub uri: String,
}

/// Builder for a TA manifest and its envelope.
#[derive(Debug, Clone)]
pub struct TaManifestBuilder {
    component_id: ComponentId,
    sequence_number: u64,
    vendor_id: Option<VendorId>,
    class_id: Option<[u8; 16]>,
    image: Option<(Digest, u64)>,
    payload: Option<PayloadSource>,
    dependency: Option<ManifestDependency>,
    manifest_component_id: Option<ComponentId>,
    uninstall: bool,
    reference_uri: Option<String>,
    tagged: bool,
    compact: bool,
}

const ALL: ReportingPolicy = ReportingPolicy::ALL;

impl TaManifestBuilder {
    /// Starts a manifest for the component `component_id` with a sequence number.
    pub fn new(component_id: ComponentId, sequence_number: u64) -> Self {
        TaManifestBuilder {
            component_id,
            sequence_number,
            vendor_id: None,
            class_id: None,
            image: None,
            payload: None,
            dependency: None,
            manifest_component_id: None,
            uninstall: false,
            reference_uri: None,
            tagged: false,
            compact: false,
        }
    }
    /// Vendor identifier UUID (checked by condition-vendor-identifier).
    pub fn vendor_id(mut self, uuid: [u8; 16]) -> Self {
        self.vendor_id = Some(VendorId::Uuid(uuid));
        self
    }
    /// Vendor identifier of either form.
    pub fn vendor(mut self, vendor: VendorId) -> Self {
        self.vendor_id = Some(vendor);
        self
    }
    /// Class identifier UUID (checked by condition-class-identifier).
    pub fn class_id(mut self, uuid: [u8; 16]) -> Self {
        self.class_id = Some(uuid);
        self
    }
    /// Image digest and size of the (plaintext) image.
    pub fn image(mut self, digest: Digest, size: u64) -> Self {
        self.image = Some((digest, size));
        self
    }
    /// Image digest (SHA-256) and size computed from the plaintext image.
    pub fn image_of(self, plaintext: &[u8]) -> Self {
        let size = plaintext.len() as u64;
        self.image(Digest::sha256(plaintext), size)
    }
    /// Fetch the image from `uri`.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.payload = Some(PayloadSource::Uri(uri.into()));
        self
    }
    /// Carry the image in the envelope under `key` (e.g. `"#tc"`).
    pub fn integrated_payload(mut self, key: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.payload = Some(PayloadSource::Integrated {
            key: key.into(),
            bytes,
        });
        self
    }
    /// Write encrypted content, decrypted with `encryption_info` on the device.
    pub fn encrypted_content(mut self, ciphertext: Vec<u8>, encryption_info: Vec<u8>) -> Self {
        self.payload = Some(PayloadSource::Encrypted {
            ciphertext,
            encryption_info,
        });
        self
    }
    /// Depend on another manifest (processed before this one installs).
    pub fn dependency(mut self, dep: ManifestDependency) -> Self {
        self.dependency = Some(dep);
        self
    }
    /// `suit-manifest-component-id`: where this manifest is stored.
    pub fn manifest_component_id(mut self, id: ComponentId) -> Self {
        self.manifest_component_id = Some(id);
        self
    }
    /// Add a `suit-uninstall` sequence (unlink).
    pub fn uninstall(mut self, yes: bool) -> Self {
        self.uninstall = yes;
        self
    }
    /// `suit-reference-uri`.
    pub fn reference_uri(mut self, uri: impl Into<String>) -> Self {
        self.reference_uri = Some(uri.into());
        self
    }
    /// Encode the envelope with tag 107.
    pub fn tagged(mut self, yes: bool) -> Self {
        self.tagged = yes;
        self
    }
    /// The compact profile for constrained links (docs/CONSTRAINED.md): no
    /// `image-size` when the payload is integrated in the envelope (an integrated
    /// payload, or a `#…` URI naming one). `image-size` is optional in SUIT; for bytes
    /// already in the envelope it bounds nothing, and `condition-image-match` checks the
    /// digest over the exact bytes (a payload of another length cannot match). Kept for
    /// URIs (it bounds the download) and encrypted content. A manifest with a
    /// dependency and no vendor/class ids also drops the shared sequence that only
    /// selects component index 0, and the same no-op at the start of `validate`
    /// (every sequence starts at index 0). A manifest without a dependency and without
    /// vendor/class ids sets the image digest (and size) in the install sequence's first
    /// `override-parameters`, next to the payload's URI or content, and has no shared
    /// sequence (5 B less): the same digest is checked by the same
    /// `condition-image-match` after the fetch or write.
    /// Conditions are never dropped. Sign with [`crate::auth::compact_sign_options`]
    /// (no kid) to complete the profile.
    pub fn compact(mut self, yes: bool) -> Self {
        self.compact = yes;
        self
    }

    fn payload_is_integrated(&self) -> bool {
        match &self.payload {
            Some(PayloadSource::Integrated { .. }) => true,
            Some(PayloadSource::Uri(u)) => u.starts_with('#'),
            _ => false,
        }
    }

    fn image_params(&self) -> Result<Vec<Parameter>> {
        let mut p = Vec::new();
        if let Some((d, size)) = &self.image {
            p.push(Parameter::ImageDigest(Wrapped::new(d.clone())?));
            if !(self.compact && self.payload_is_integrated()) {
                p.push(Parameter::ImageSize(*size));
            }
        }
        Ok(p)
    }

    /// The payload's commands; `image` are parameters set in the same
    /// `override-parameters` (the compact profile's image digest and size).
    fn payload_commands(&self, image: Vec<Parameter>) -> Result<Vec<Command>> {
        let payload = self.payload.as_ref().ok_or(SuitError::Invalid {
            path: "builder/payload".into(),
            reason: "no payload source (uri, integrated payload or encrypted content)",
        })?;
        let mut params = image;
        let action = match payload {
            PayloadSource::Uri(u) => {
                params.push(Parameter::Uri(u.clone()));
                Action::Fetch
            }
            PayloadSource::Integrated { key, .. } => {
                params.push(Parameter::Uri(key.clone()));
                Action::Fetch
            }
            PayloadSource::Encrypted {
                ciphertext,
                encryption_info,
            } => {
                params.push(Parameter::Content(ciphertext.clone()));
                params.push(Parameter::EncryptionInfo(encryption_info.clone()));
                Action::Write
            }
        };
        Ok(vec![
            Command::OverrideParameters(Parameters(params)),
            Command::Action(action, ALL),
        ])
    }

    /// Builds the manifest.
    pub fn build_manifest(&self) -> Result<Manifest> {
        let mut ids = Vec::new();
        if let Some(v) = &self.vendor_id {
            ids.push(Parameter::VendorId(v.clone()));
        }
        if let Some(c) = self.class_id {
            ids.push(Parameter::ClassId(c));
        }
        let id_checks = |seq: &mut Vec<Command>| {
            if self.vendor_id.is_some() {
                seq.push(Command::Condition(Condition::VendorIdentifier, ALL));
            }
            if self.class_id.is_some() {
                seq.push(Command::Condition(Condition::ClassIdentifier, ALL));
            }
        };
        let mut common = Common {
            components: Some(vec![self.component_id.clone()]),
            ..Common::default()
        };
        let mut manifest;
        match &self.dependency {
            None => {
                // Appendix E examples 1/2: identity and image checks in the shared sequence
                // (compact: the image parameters move to the install sequence).
                let image = self.image_params()?;
                // Only when that leaves the shared sequence empty (no vendor/class ids):
                // otherwise it stays, and moving the digest would save nothing.
                let (shared_image, install_image) = if self.compact && ids.is_empty() {
                    (Vec::new(), image)
                } else {
                    (image, Vec::new())
                };
                let mut params = ids;
                params.extend(shared_image);
                let mut shared = Vec::new();
                if !params.is_empty() {
                    shared.push(Command::OverrideParameters(Parameters(params)));
                }
                id_checks(&mut shared);
                if !shared.is_empty() {
                    common.shared_sequence = Some(Wrapped::new(CommandSequence(shared))?);
                }
                manifest = Manifest::new(self.sequence_number, Wrapped::new(common)?);
                let mut install = self.payload_commands(install_image)?;
                if self.image.is_some() {
                    install.push(Command::Condition(Condition::ImageMatch, ALL));
                }
                manifest.install = Some(Severable::Inline(Wrapped::new(CommandSequence(install))?));
                if self.uninstall {
                    manifest.uninstall =
                        Some(Wrapped::new(CommandSequence(vec![Command::Action(
                            Action::Unlink,
                            ALL,
                        )]))?);
                }
            }
            Some(dep) => {
                // Appendix E example 3: dependency at index 1, image checked in validate.
                let dep_index = 1u64;
                common.dependencies = Some(vec![(
                    dep_index,
                    DependencyMetadata {
                        prefix: Some(dep.prefix.clone()),
                        extensions: Vec::new(),
                    },
                )]);
                let mut shared = vec![Command::SetComponentIndex(IndexArg::One(0))];
                if !ids.is_empty() {
                    shared.push(Command::OverrideParameters(Parameters(ids)));
                }
                id_checks(&mut shared);
                // Every command sequence starts at component index 0 (SUIT's abstract
                // machine): a shared sequence that only selects index 0 does nothing,
                // and neither does a section's leading "index 0" after it. The compact
                // profile leaves both out.
                let shared_is_noop = shared.len() == 1;
                let compact_noop = self.compact && shared_is_noop;
                if !compact_noop {
                    common.shared_sequence = Some(Wrapped::new(CommandSequence(shared))?);
                }
                manifest = Manifest::new(self.sequence_number, Wrapped::new(common)?);
                if self.image.is_some() {
                    let mut validate = Vec::new();
                    if !compact_noop {
                        validate.push(Command::SetComponentIndex(IndexArg::One(0)));
                    }
                    validate.push(Command::OverrideParameters(Parameters(
                        self.image_params()?,
                    )));
                    validate.push(Command::Condition(Condition::ImageMatch, ALL));
                    manifest.validate = Some(Wrapped::new(CommandSequence(validate))?);
                }
                manifest.dependency_resolution =
                    Some(Severable::Inline(Wrapped::new(CommandSequence(vec![
                        Command::SetComponentIndex(IndexArg::One(dep_index)),
                        Command::OverrideParameters(Parameters(vec![
                            Parameter::ImageDigest(Wrapped::new(dep.digest.clone())?),
                            Parameter::ImageSize(dep.size),
                            Parameter::Uri(dep.uri.clone()),
                        ])),
                        Command::Action(Action::Fetch, ReportingPolicy(2)),
                    ]))?));
                let mut install = vec![
                    Command::SetComponentIndex(IndexArg::One(dep_index)),
                    Command::Action(Action::ProcessDependency, ReportingPolicy(0)),
                    Command::SetComponentIndex(IndexArg::One(0)),
                ];
                install.extend(self.payload_commands(Vec::new())?);
                manifest.install = Some(Severable::Inline(Wrapped::new(CommandSequence(install))?));
                if self.uninstall {
                    manifest.uninstall = Some(Wrapped::new(CommandSequence(vec![
                        Command::SetComponentIndex(IndexArg::One(dep_index)),
                        Command::Action(Action::ProcessDependency, ReportingPolicy(0)),
                        Command::SetComponentIndex(IndexArg::One(0)),
                        Command::Action(Action::Unlink, ALL),
                    ]))?);
                }
            }
        }
        manifest.reference_uri = self.reference_uri.clone();
        manifest.manifest_component_id = self.manifest_component_id.clone();
        Ok(manifest)
    }

    /// Builds an envelope whose authentication wrapper holds only the manifest digest;
    /// the signing functions of [`crate::envelope::Envelope`] add COSE blocks.
    pub fn build_unsigned(&self) -> Result<Envelope> {
        let manifest = Wrapped::new(self.build_manifest()?)?;
        let mut env = Envelope::unsigned(manifest)?;
        env.tagged = self.tagged;
        if let Some(PayloadSource::Integrated { key, bytes }) = &self.payload {
            env.integrated.push((key.clone(), bytes.clone()));
        }
        Ok(env)
    }
}
