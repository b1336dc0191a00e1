//! The command interpreter (suit-manifest §6.4) with the trust-domains and
//! firmware-encryption extensions.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use otrp_cose::encrypt::Kek;
use otrp_crypto::{CryptoProvider, PublicKey};
use otrp_suit::labels::{manifest as ml, parameter as pl};
use otrp_suit::{
    Action, CborItem, Command, CommandSequence, ComponentId, Condition, Digest, Envelope, IndexArg,
    Limits, Manifest, Parameter, Parameters, ReportEntry, ReportReason, ReportResult, SuitRecord,
    SuitReport, SystemPropertyClaims, VendorId, VerifiedBlock,
};

use crate::store::{
    component_id_text, ChangeSet, ComponentStore, Holder, ManifestRecord, SeqMark, StoreError, View,
};

/// The identifiers the manifest conditions are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// Vendor identifier (condition-vendor-identifier).
    pub vendor_id: Option<VendorId>,
    /// Class identifiers this device belongs to (condition-class-identifier).
    pub class_ids: Vec<[u8; 16]>,
    /// Device identifier (condition-device-identifier).
    pub device_id: Option<[u8; 16]>,
}

/// A key-encryption key of the device for encrypted payloads.
#[derive(Clone)]
pub enum DeviceKek {
    /// A pre-shared AES-128 KEK (A128KW recipients).
    Aes(Vec<u8>),
    /// The device's static P-256 key (ECDH-ES+A128KW recipients).
    EcdhP256(otrp_crypto::p256::SecretKey),
}

impl core::fmt::Debug for DeviceKek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceKek::Aes(_) => f.write_str("DeviceKek::Aes(..)"),
            DeviceKek::EcdhP256(_) => f.write_str("DeviceKek::EcdhP256(..)"),
        }
    }
}

/// Static configuration of the processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Device identifiers for the vendor/class/device conditions.
    pub device: DeviceIdentity,
    /// KEKs tried in order on encrypted payloads.
    pub keks: Vec<DeviceKek>,
    /// Decoding limits for envelopes.
    pub limits: Limits,
    /// Deepest nesting of dependencies, try-each and run-sequence.
    pub max_nesting: usize,
    /// Most components (plus dependencies) one manifest may list.
    pub max_components: usize,
    /// Largest component image accepted (bytes).
    pub max_image_size: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            device: DeviceIdentity::default(),
            keks: Vec::new(),
            limits: Limits::default(),
            max_nesting: 8,
            max_components: 16,
            max_image_size: 8 * 1024 * 1024,
        }
    }
}

/// Why a policy refused a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Report reason (usually `Unauthorised` or `ComponentUnauthorised`).
    pub reason: ReportReason,
    /// Human-readable detail.
    pub detail: String,
}

/// Decides whether the signers of a verified manifest may touch its components. Called
/// for every manifest (root and dependencies) after its signature verified and before any
/// of its commands run.
pub trait ManifestPolicy {
    /// `Ok` to let the manifest run.
    fn authorize(
        &self,
        manifest_id: &ComponentId,
        manifest: &Manifest,
        signers: &[VerifiedBlock],
    ) -> Result<(), Refusal>;
}

/// A policy that accepts every manifest signed by a trust anchor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl ManifestPolicy for AllowAll {
    fn authorize(&self, _: &ComponentId, _: &Manifest, _: &[VerifiedBlock]) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Why processing failed, with the SUIT record of where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("SUIT processing failed ({reason:?}) in section {} at command {}: {detail}", record.manifest_section, record.section_offset)]
pub struct ProcessError {
    /// The SUIT report reason.
    pub reason: ReportReason,
    /// What was wrong.
    pub detail: String,
    /// Where (manifest path, section, command index, component index, parameters).
    pub record: Box<SuitRecord>,
}

impl ProcessError {
    fn bare(reason: ReportReason, detail: impl Into<String>) -> Self {
        ProcessError {
            reason,
            detail: detail.into(),
            record: Box::default(),
        }
    }
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        ProcessError::bare(ReportReason::OperationFailed, e.to_string())
    }
}

/// A manifest that processed successfully; nothing is stored until the caller commits
/// `changes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The changes of this manifest (and its dependencies), on top of the base.
    pub changes: ChangeSet,
    /// The success report (with system-property-claims of the installed components).
    pub report: SuitReport,
    /// The manifest component id.
    pub manifest_id: ComponentId,
    /// Its sequence number.
    pub sequence_number: u64,
    /// Components written (this manifest and its dependencies).
    pub installed: Vec<ComponentId>,
    /// Which trust anchors signed the root manifest.
    pub signers: Vec<VerifiedBlock>,
}

/// A manifest that failed: nothing of it may be committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// The failure report.
    pub report: SuitReport,
    /// The error.
    pub error: ProcessError,
}

/// Result of one processing call.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Done; commit (or stage) `changes`.
    Done(Box<Applied>),
    /// The processor needs the bytes at `uri`: fetch them, call
    /// [`Processor::provide`], then call the same operation again. Processing is
    /// deterministic and stages nothing, so the repeated call resumes where it stopped.
    NeedFetch {
        /// The URI to fetch.
        uri: String,
    },
    /// Processing failed; nothing was changed.
    Failed(Box<Failed>),
}

/// The SUIT manifest processor.
pub struct Processor<'a> {
    provider: &'a dyn CryptoProvider,
    config: &'a ProcessorConfig,
    anchors: &'a [PublicKey],
    policy: &'a dyn ManifestPolicy,
    fetched: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Update,
    Uninstall,
    Invoke,
}

enum Abort {
    Fetch(String),
    Fail(Box<ProcessError>),
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Fail(Box::new(e.into()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct DepSlot {
    bytes: Vec<u8>,
    checked: bool,
}

struct Run<'e> {
    env: &'e Envelope,
    manifest_id: ComponentId,
    path: Vec<u64>,
    components: Vec<ComponentId>,
    deps: BTreeMap<u64, Option<ComponentId>>,
    count: u64,
    params: BTreeMap<u64, Vec<Parameter>>,
    current: Vec<u64>,
    slots: BTreeMap<u64, DepSlot>,
    section: i64,
    offset: u64,
    mode: Mode,
    processed_deps: Vec<ComponentId>,
    unlinked_deps: Vec<ComponentId>,
}

impl Run<'_> {
    fn param(&self, idx: u64, label: i64) -> Option<&Parameter> {
        self.params
            .get(&idx)
            .and_then(|ps| ps.iter().find(|p| p.label() == label))
    }
    fn set_param(&mut self, idx: u64, p: &Parameter, only_if_unset: bool) {
        let ps = self.params.entry(idx).or_default();
        match ps.iter_mut().find(|x| x.label() == p.label()) {
            Some(existing) => {
                if !only_if_unset {
                    *existing = p.clone();
                }
            }
            None => ps.push(p.clone()),
        }
    }
    fn fail(&self, reason: ReportReason, detail: impl Into<String>) -> Abort {
        let idx = self.current.first().copied().unwrap_or(0);
        Abort::Fail(Box::new(ProcessError {
            reason,
            detail: detail.into(),
            record: Box::new(SuitRecord {
                manifest_id: self.path.clone(),
                manifest_section: self.section,
                section_offset: self.offset,
                component_index: idx,
                properties: Parameters(
                    self.params
                        .get(&idx)
                        .map(|ps| {
                            ps.iter()
                                // Payload bytes stay out of reports.
                                .filter(|p| !matches!(p, Parameter::Content(_)))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                extensions: Vec::new(),
            }),
        }))
    }
    fn component(&self, idx: u64) -> Option<&ComponentId> {
        if self.deps.contains_key(&idx) {
            return None;
        }
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.components.get(i))
    }
}

fn digest_eq(a: &Digest, b: &Digest) -> bool {
    a.alg == b.alg && a.bytes == b.bytes
}

/// The manifest id of a manifest: `suit-manifest-component-id`, else its first component.
pub fn manifest_id_of(manifest: &Manifest) -> Option<ComponentId> {
    manifest
        .manifest_component_id
        .clone()
        .or_else(|| manifest.components().first().cloned())
}

struct Engine<'p, 'a> {
    p: &'p Processor<'a>,
    store: &'p dyn ComponentStore,
    base: &'p ChangeSet,
    local: ChangeSet,
    installed: Vec<ComponentId>,
    invoked: Vec<ComponentId>,
    processed: Vec<ComponentId>,
    depth: usize,
}

impl<'p, 'a> Engine<'p, 'a> {
    fn new(p: &'p Processor<'a>, store: &'p dyn ComponentStore, base: &'p ChangeSet) -> Self {
        Engine {
            p,
            store,
            base,
            local: ChangeSet::default(),
            installed: Vec::new(),
            invoked: Vec::new(),
            processed: Vec::new(),
            depth: 0,
        }
    }

    // Reads go through local, then base, then the store.
    fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError> {
        match self.local.images.get(id) {
            Some(v) => Ok(v.clone()),
            None => View::new(self.store, self.base).image(id),
        }
    }
    fn manifest(&self, id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError> {
        match self.local.manifests.get(id) {
            Some(v) => Ok(v.clone()),
            None => View::new(self.store, self.base).manifest(id),
        }
    }
    fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        let mut ids = View::new(self.store, self.base).manifest_ids()?;
        for (k, v) in &self.local.manifests {
            let present = ids.iter().position(|i| i == k);
            match (v, present) {
                (Some(_), None) => ids.push(k.clone()),
                (None, Some(p)) => {
                    ids.remove(p);
                }
                _ => {}
            }
        }
        Ok(ids)
    }
    fn sequence_mark(&self, id: &ComponentId) -> Result<Option<SeqMark>, StoreError> {
        match self.local.sequence_marks.get(id) {
            Some(v) => Ok(Some(v.clone())),
            None => View::new(self.store, self.base).sequence_mark(id),
        }
    }

    fn owner_of(&self, component: &ComponentId) -> Result<Option<ComponentId>, StoreError> {
        for id in self.manifest_ids()? {
            if let Some(rec) = self.manifest(&id)? {
                if rec.components.iter().any(|c| c == component) {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    fn decrypt(&self, run: &Run<'_>, info: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, Abort> {
        if self.p.config.keks.is_empty() {
            return Err(run.fail(
                ReportReason::OperationFailed,
                "encrypted payload but the device has no KEK",
            ));
        }
        let mut last = String::new();
        for kek in &self.p.config.keks {
            let k = match kek {
                DeviceKek::Aes(key) => Kek::Aes(key),
                DeviceKek::EcdhP256(sk) => Kek::EcdhEs {
                    recipient_private: sk,
                },
            };
            match otrp_suit::decrypt_payload(self.p.provider, info, ciphertext, k) {
                Ok(plain) => return Ok(plain),
                Err(e) => last = e.to_string(),
            }
        }
        Err(run.fail(
            ReportReason::OperationFailed,
            alloc::format!("payload decryption failed: {last}"),
        ))
    }

    fn store_image(&mut self, run: &Run<'_>, idx: u64, bytes: Vec<u8>) -> Result<(), Abort> {
        let Some(id) = run.component(idx).cloned() else {
            return Err(run.fail(
                ReportReason::ComponentUnsupported,
                "component index is not a component",
            ));
        };
        if bytes.len() > self.p.config.max_image_size {
            return Err(run.fail(
                ReportReason::OperationFailed,
                "image exceeds the size limit",
            ));
        }
        self.local.images.insert(id.clone(), Some(bytes));
        if !self.installed.contains(&id) {
            self.installed.push(id);
        }
        Ok(())
    }

    fn resolve_uri(&self, run: &Run<'_>, uri: &str) -> Result<Vec<u8>, Abort> {
        if uri.starts_with('#') {
            return run
                .env
                .integrated_payload(uri)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    run.fail(
                        ReportReason::OperationFailed,
                        alloc::format!("integrated payload {uri} is not in the envelope"),
                    )
                });
        }
        match self.p.fetched.get(uri) {
            Some(b) => Ok(b.clone()),
            None => Err(Abort::Fetch(uri.to_string())),
        }
    }

    fn installed_envelope_with(
        &self,
        prefix: Option<&ComponentId>,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let candidates = match prefix {
            Some(p) => vec![p.clone()],
            None => self.manifest_ids()?,
        };
        for id in candidates {
            if let Some(rec) = self.manifest(&id)? {
                if let Ok(d) = Digest::from_cbor(&rec.digest) {
                    if digest_eq(&d, digest) {
                        return Ok(Some(rec.envelope));
                    }
                }
            }
        }
        Ok(None)
    }

    fn fetch(&mut self, run: &mut Run<'_>, idx: u64) -> Result<(), Abort> {
        let uri = match run.param(idx, pl::URI) {
            Some(Parameter::Uri(u)) => u.clone(),
            _ => return Err(run.fail(ReportReason::ParameterUnsupported, "fetch without uri")),
        };
        if let Some(prefix) = run.deps.get(&idx).cloned() {
            let digest = match run.param(idx, pl::IMAGE_DIGEST) {
                Some(Parameter::ImageDigest(d)) => Some(d.value().clone()),
                _ => None,
            };
            let bytes = if uri.starts_with('#') || self.p.fetched.contains_key(&uri) {
                self.resolve_uri(run, &uri)?
            } else {
                let local = match &digest {
                    Some(d) => self.installed_envelope_with(prefix.as_ref(), d)?,
                    None => None,
                };
                match local {
                    Some(b) => b,
                    None => self.resolve_uri(run, &uri)?,
                }
            };
            let env = Envelope::decode_with(&bytes, &self.p.config.limits).map_err(|e| {
                run.fail(
                    ReportReason::CborParse,
                    alloc::format!("dependency envelope: {e}"),
                )
            })?;
            let checked = match &digest {
                Some(d) => {
                    if !digest_eq(env.authentication.value().digest.value(), d) {
                        return Err(run.fail(
                            ReportReason::ConditionFailed,
                            "dependency manifest digest does not match image-digest",
                        ));
                    }
                    true
                }
                None => false,
            };
            run.slots.insert(idx, DepSlot { bytes, checked });
            return Ok(());
        }
        let mut bytes = self.resolve_uri(run, &uri)?;
        if let Some(Parameter::EncryptionInfo(info)) = run.param(idx, pl::ENCRYPTION_INFO) {
            let info = info.clone();
            bytes = self.decrypt(run, &info, &bytes)?;
        }
        let bytes = self.unpack(run, idx, bytes)?;
        self.store_image(run, idx, bytes)
    }

    /// Delta and compressed payloads (`crate::delta`) become the image here.
    fn unpack(&self, run: &Run<'_>, idx: u64, payload: Vec<u8>) -> Result<Vec<u8>, Abort> {
        let packing = crate::delta::packing(|label| run.param(idx, label))
            .map_err(|e| run.fail(e.reason(), e.detail()))?;
        if packing == crate::delta::Packing::Plain {
            return Ok(payload);
        }
        let new_digest = match run.param(idx, pl::IMAGE_DIGEST) {
            Some(Parameter::ImageDigest(d)) => Some(d.value().clone()),
            _ => None,
        };
        let installed = match run.component(idx) {
            Some(id) => self.image(id)?,
            None => None,
        };
        crate::delta::unpack(
            &packing,
            payload,
            new_digest.as_ref(),
            installed.as_deref(),
            self.p.config.max_image_size,
        )
        .map_err(|e| run.fail(e.reason(), e.detail()))
    }

    fn check_condition(
        &mut self,
        run: &mut Run<'_>,
        cond: Condition,
        idx: u64,
    ) -> Result<bool, Abort> {
        let device = &self.p.config.device;
        let missing = |run: &Run<'_>, what: &str| {
            run.fail(
                ReportReason::ParameterUnsupported,
                alloc::format!("condition needs parameter {what}"),
            )
        };
        Ok(match cond {
            Condition::VendorIdentifier => match run.param(idx, pl::VENDOR_IDENTIFIER) {
                Some(Parameter::VendorId(v)) => device.vendor_id.as_ref() == Some(v),
                _ => return Err(missing(run, "vendor-identifier")),
            },
            Condition::ClassIdentifier => match run.param(idx, pl::CLASS_IDENTIFIER) {
                Some(Parameter::ClassId(c)) => device.class_ids.contains(c),
                _ => return Err(missing(run, "class-identifier")),
            },
            Condition::DeviceIdentifier => match run.param(idx, pl::DEVICE_IDENTIFIER) {
                Some(Parameter::DeviceId(d)) => device.device_id.as_ref() == Some(d),
                _ => return Err(missing(run, "device-identifier")),
            },
            Condition::ImageMatch | Condition::ImageNotMatch | Condition::DependencyIntegrity => {
                let digest = match run.param(idx, pl::IMAGE_DIGEST) {
                    Some(Parameter::ImageDigest(d)) => d.value().clone(),
                    _ => return Err(missing(run, "image-digest")),
                };
                let matched = if run.deps.contains_key(&idx) {
                    let ok = match run.slots.get(&idx) {
                        Some(slot) => Envelope::decode_with(&slot.bytes, &self.p.config.limits)
                            .map(|e| digest_eq(e.authentication.value().digest.value(), &digest))
                            .unwrap_or(false),
                        None => false,
                    };
                    if ok {
                        if let Some(slot) = run.slots.get_mut(&idx) {
                            slot.checked = true;
                        }
                    }
                    ok
                } else if cond == Condition::DependencyIntegrity {
                    false
                } else {
                    let Some(id) = run.component(idx).cloned() else {
                        return Err(
                            run.fail(ReportReason::ComponentUnsupported, "no such component")
                        );
                    };
                    match self.image(&id)? {
                        Some(img) => {
                            let size_ok = match run.param(idx, pl::IMAGE_SIZE) {
                                Some(Parameter::ImageSize(n)) => {
                                    u64::try_from(img.len()).is_ok_and(|l| l == *n)
                                }
                                _ => true,
                            };
                            size_ok && digest.matches(&img).unwrap_or(false)
                        }
                        None => false,
                    }
                };
                if cond == Condition::ImageNotMatch {
                    !matched
                } else {
                    matched
                }
            }
            Condition::CheckContent => {
                let content = match run.param(idx, pl::CONTENT) {
                    Some(Parameter::Content(c)) => c.clone(),
                    _ => return Err(missing(run, "content")),
                };
                match run.component(idx).cloned() {
                    Some(id) => self.image(&id)?.as_deref() == Some(content.as_slice()),
                    None => false,
                }
            }
            Condition::IsDependency => run.deps.contains_key(&idx),
            Condition::ComponentSlot => match run.param(idx, pl::COMPONENT_SLOT) {
                Some(Parameter::ComponentSlot(s)) => *s == 0,
                _ => return Err(missing(run, "component-slot")),
            },
            Condition::Abort => false,
            other => {
                return Err(run.fail(
                    ReportReason::CommandUnsupported,
                    alloc::format!("condition {other:?} is not supported"),
                ))
            }
        })
    }

    fn action(&mut self, run: &mut Run<'_>, action: Action, idx: u64) -> Result<(), Abort> {
        match (action, run.mode) {
            (Action::Fetch, Mode::Update) => self.fetch(run, idx),
            (Action::Write, Mode::Update) => {
                let content = match run.param(idx, pl::CONTENT) {
                    Some(Parameter::Content(c)) => c.clone(),
                    _ => {
                        return Err(
                            run.fail(ReportReason::ParameterUnsupported, "write without content")
                        )
                    }
                };
                let bytes = match run.param(idx, pl::ENCRYPTION_INFO) {
                    Some(Parameter::EncryptionInfo(info)) => {
                        let info = info.clone();
                        self.decrypt(run, &info, &content)?
                    }
                    _ => content,
                };
                let bytes = self.unpack(run, idx, bytes)?;
                self.store_image(run, idx, bytes)
            }
            (Action::Copy | Action::Swap, Mode::Update) => {
                let src = match run.param(idx, pl::SOURCE_COMPONENT) {
                    Some(Parameter::SourceComponent(s)) => *s,
                    _ => {
                        return Err(run.fail(
                            ReportReason::ParameterUnsupported,
                            "copy/swap without source-component",
                        ))
                    }
                };
                let Some(src_id) = run.component(src).cloned() else {
                    return Err(run.fail(
                        ReportReason::ComponentUnsupported,
                        "source is not a component",
                    ));
                };
                let Some(src_img) = self.image(&src_id)? else {
                    return Err(
                        run.fail(ReportReason::OperationFailed, "source component is empty")
                    );
                };
                if action == Action::Swap {
                    let Some(dst_id) = run.component(idx).cloned() else {
                        return Err(
                            run.fail(ReportReason::ComponentUnsupported, "no such component")
                        );
                    };
                    let dst_img = self.image(&dst_id)?.unwrap_or_default();
                    self.store_image(run, src, dst_img)?;
                    return self.store_image(run, idx, src_img);
                }
                let bytes = match run.param(idx, pl::ENCRYPTION_INFO) {
                    Some(Parameter::EncryptionInfo(info)) => {
                        let info = info.clone();
                        self.decrypt(run, &info, &src_img)?
                    }
                    _ => src_img,
                };
                self.store_image(run, idx, bytes)
            }
            (Action::ProcessDependency, Mode::Update) => {
                let Some(prefix) = run.deps.get(&idx).cloned() else {
                    return Err(run.fail(
                        ReportReason::ComponentUnsupported,
                        "index is not a dependency",
                    ));
                };
                let bytes = match run.slots.get(&idx) {
                    Some(slot) if slot.checked => slot.bytes.clone(),
                    Some(_) => {
                        return Err(run.fail(
                            ReportReason::ConditionFailed,
                            "dependency was not integrity-checked",
                        ))
                    }
                    None => {
                        return Err(
                            run.fail(ReportReason::OperationFailed, "dependency not fetched")
                        )
                    }
                };
                let mut path = run.path.clone();
                path.push(idx);
                let holder = Holder::Manifest(run.manifest_id.clone());
                let dep_id = self
                    .process_manifest(&bytes, holder, path, prefix.as_ref())
                    .map_err(|a| match a {
                        Abort::Fail(mut e) => {
                            if e.record.manifest_id.is_empty() {
                                e.record.manifest_id = run.path.clone();
                                e.record.manifest_id.push(idx);
                            }
                            Abort::Fail(e)
                        }
                        f => f,
                    })?;
                if !run.processed_deps.contains(&dep_id) {
                    run.processed_deps.push(dep_id);
                }
                Ok(())
            }
            (Action::ProcessDependency, Mode::Uninstall) => {
                let dep = run.deps.get(&idx).cloned().flatten();
                let Some(dep_id) = dep else {
                    return Err(run.fail(
                        ReportReason::ComponentUnsupported,
                        "dependency without a prefix cannot be unlinked",
                    ));
                };
                if !run.unlinked_deps.contains(&dep_id) {
                    self.unlink_inner(&dep_id, &Holder::Manifest(run.manifest_id.clone()))?;
                    run.unlinked_deps.push(dep_id);
                }
                Ok(())
            }
            (Action::ProcessDependency, Mode::Invoke) => Ok(()),
            (Action::Unlink, Mode::Uninstall) => {
                if let Some(id) = run.component(idx).cloned() {
                    self.local.images.insert(id, None);
                }
                Ok(())
            }
            (Action::Invoke, Mode::Invoke) => {
                if let Some(id) = run.component(idx).cloned() {
                    if !self.invoked.contains(&id) {
                        self.invoked.push(id);
                    }
                }
                Ok(())
            }
            (a, m) => Err(run.fail(
                ReportReason::CommandUnsupported,
                alloc::format!("directive {a:?} is not allowed in {m:?} processing"),
            )),
        }
    }

    fn exec(&mut self, run: &mut Run<'_>, seq: &CommandSequence) -> Result<Flow, Abort> {
        if self.depth > self.p.config.max_nesting {
            return Err(run.fail(ReportReason::OperationFailed, "nesting too deep"));
        }
        for (i, cmd) in seq.commands().iter().enumerate() {
            run.offset = i as u64;
            match cmd {
                Command::Condition(cond, _) => {
                    for idx in run.current.clone() {
                        if !self.check_condition(run, *cond, idx)? {
                            let soft = matches!(
                                run.param(idx, pl::SOFT_FAILURE),
                                Some(Parameter::SoftFailure(true))
                            );
                            if soft {
                                return Ok(Flow::Stop);
                            }
                            return Err(run.fail(
                                ReportReason::ConditionFailed,
                                alloc::format!("condition {cond:?} failed"),
                            ));
                        }
                    }
                }
                Command::Action(action, _) => {
                    for idx in run.current.clone() {
                        self.action(run, *action, idx)?;
                    }
                }
                Command::SetComponentIndex(arg) => {
                    let list = match arg {
                        IndexArg::One(i) => vec![*i],
                        IndexArg::List(l) => l.clone(),
                        IndexArg::All => (0..run.count).collect(),
                    };
                    if list.iter().any(|i| *i >= run.count) {
                        return Err(run.fail(
                            ReportReason::ComponentUnsupported,
                            "component index out of range",
                        ));
                    }
                    run.current = list;
                }
                Command::SetParameters(ps) | Command::OverrideParameters(ps) => {
                    let only_if_unset = matches!(cmd, Command::SetParameters(_));
                    for idx in run.current.clone() {
                        for p in ps.iter() {
                            run.set_param(idx, p, only_if_unset);
                        }
                    }
                }
                Command::OverrideMultiple(m) => {
                    for (idx, ps) in m {
                        if *idx >= run.count {
                            return Err(run.fail(
                                ReportReason::ComponentUnsupported,
                                "override-multiple index out of range",
                            ));
                        }
                        for p in ps.iter() {
                            run.set_param(*idx, p, false);
                        }
                    }
                }
                Command::CopyParams(m) => {
                    for (src, labels) in m {
                        let copied: Vec<Parameter> = labels
                            .iter()
                            .filter_map(|l| run.param(*src, *l).cloned())
                            .collect();
                        for idx in run.current.clone() {
                            for p in &copied {
                                run.set_param(idx, p, false);
                            }
                        }
                    }
                }
                Command::RunSequence(w) => {
                    self.depth += 1;
                    let r = self.exec(run, w.value());
                    self.depth -= 1;
                    r?;
                }
                Command::TryEach(t) => {
                    let saved_params = run.params.clone();
                    let saved_current = run.current.clone();
                    let saved_local = self.local.clone();
                    let mut last = None;
                    let mut done = false;
                    for alt in &t.sequences {
                        self.depth += 1;
                        let r = self.exec(run, alt.value());
                        self.depth -= 1;
                        match r {
                            Ok(_) => {
                                done = true;
                                break;
                            }
                            Err(Abort::Fetch(u)) => return Err(Abort::Fetch(u)),
                            Err(Abort::Fail(e)) => {
                                run.params = saved_params.clone();
                                run.current = saved_current.clone();
                                self.local = saved_local.clone();
                                last = Some(e);
                            }
                        }
                    }
                    run.offset = i as u64;
                    if !done && !t.nil_default {
                        return Err(match last {
                            Some(e) => Abort::Fail(e),
                            None => {
                                run.fail(ReportReason::ConditionFailed, "try-each: no alternative")
                            }
                        });
                    }
                }
                other => {
                    return Err(run.fail(
                        ReportReason::CommandUnsupported,
                        alloc::format!("command {} is not supported", other.label()),
                    ))
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn new_run<'e>(
        &self,
        env: &'e Envelope,
        manifest_id: ComponentId,
        path: Vec<u64>,
        mode: Mode,
    ) -> Result<Run<'e>, Abort> {
        let man = env.manifest();
        let common = man.common.value();
        let components = common.components.clone().unwrap_or_default();
        let mut deps = BTreeMap::new();
        for (idx, meta) in common.dependencies.iter().flatten() {
            deps.insert(*idx, meta.prefix.clone());
        }
        let max_dep = deps.keys().next_back().map_or(0, |k| k + 1);
        let count = (components.len() as u64).max(max_dep);
        let run = Run {
            env,
            manifest_id,
            path,
            components,
            deps,
            count,
            params: BTreeMap::new(),
            current: vec![0],
            slots: BTreeMap::new(),
            section: 0,
            offset: 0,
            mode,
            processed_deps: Vec::new(),
            unlinked_deps: Vec::new(),
        };
        if count as usize > self.p.config.max_components {
            return Err(run.fail(ReportReason::ComponentUnsupported, "too many components"));
        }
        Ok(run)
    }

    fn run_section(
        &mut self,
        run: &mut Run<'_>,
        label: i64,
        seq: &CommandSequence,
    ) -> Result<(), Abort> {
        run.params.clear();
        run.current = vec![0];
        if let Some(shared) = &run.env.manifest().common.value().shared_sequence {
            run.section = 4;
            if self.exec(run, shared.value())? == Flow::Stop {
                return Ok(());
            }
        }
        run.section = label;
        self.exec(run, seq)?;
        Ok(())
    }

    /// Verifies and runs one manifest's update procedure; returns its manifest id.
    fn process_manifest(
        &mut self,
        bytes: &[u8],
        holder: Holder,
        path: Vec<u64>,
        expected_id: Option<&ComponentId>,
    ) -> Result<ComponentId, Abort> {
        let fail = |reason, detail: String| {
            Abort::Fail(Box::new(ProcessError {
                reason,
                detail,
                record: Box::new(SuitRecord {
                    manifest_id: path.clone(),
                    ..SuitRecord::default()
                }),
            }))
        };
        if self.depth > self.p.config.max_nesting {
            return Err(fail(
                ReportReason::OperationFailed,
                "dependencies nest too deep".into(),
            ));
        }
        let env = Envelope::decode_with(bytes, &self.p.config.limits)
            .map_err(|e| fail(ReportReason::CborParse, e.to_string()))?;
        // Authentication first: nothing of the manifest is interpreted before this.
        let signers = env
            .verify(self.p.provider, self.p.anchors)
            .map_err(|e| fail(ReportReason::Unauthorised, e.to_string()))?;
        let man = env.manifest();
        if man.version != 1 {
            return Err(fail(
                ReportReason::CommandUnsupported,
                alloc::format!("manifest version {} is not 1", man.version),
            ));
        }
        let Some(manifest_id) = manifest_id_of(man) else {
            return Err(fail(
                ReportReason::ComponentUnsupported,
                "manifest names no component".into(),
            ));
        };
        if let Some(exp) = expected_id {
            if *exp != manifest_id {
                return Err(fail(
                    ReportReason::ComponentUnauthorised,
                    alloc::format!(
                        "dependency is manifest {} but the prefix names {}",
                        component_id_text(&manifest_id),
                        component_id_text(exp)
                    ),
                ));
            }
        }
        self.p
            .policy
            .authorize(&manifest_id, man, &signers)
            .map_err(|r| fail(r.reason, r.detail))?;
        let digest_bytes = env.cose_payload().to_vec();
        let seq = man.sequence_number;
        // Anti-rollback against the high-water mark (kept after uninstallation).
        if let Some(mark) = self.sequence_mark(&manifest_id)? {
            if seq < mark.sequence_number
                || (seq == mark.sequence_number && digest_bytes != mark.digest)
            {
                return Err(fail(
                    ReportReason::Unauthorised,
                    alloc::format!(
                        "rollback: sequence number {seq} of {} not above the installed {}",
                        component_id_text(&manifest_id),
                        mark.sequence_number
                    ),
                ));
            }
        }
        let existing = self.manifest(&manifest_id)?;
        // A dependency already installed at this very digest needs only the reference.
        if let (Holder::Manifest(_), Some(rec)) = (&holder, &existing) {
            if rec.digest == digest_bytes {
                let mut rec = rec.clone();
                if !rec.holders.contains(&holder) {
                    rec.holders.push(holder);
                    self.local.manifests.insert(manifest_id.clone(), Some(rec));
                }
                return Ok(manifest_id);
            }
        }
        if self.processed.contains(&manifest_id) {
            return Err(fail(
                ReportReason::OperationFailed,
                "manifest processed twice in one update with different contents".into(),
            ));
        }
        let mut run = self.new_run(&env, manifest_id.clone(), path.clone(), Mode::Update)?;
        // Components must not belong to another installed manifest.
        for (i, c) in run.components.iter().enumerate() {
            if run.deps.contains_key(&(i as u64)) {
                continue;
            }
            if let Some(owner) = self.owner_of(c)? {
                if owner != manifest_id {
                    return Err(fail(
                        ReportReason::ComponentUnauthorised,
                        alloc::format!(
                            "component {} belongs to manifest {}",
                            component_id_text(c),
                            component_id_text(&owner)
                        ),
                    ));
                }
            }
        }
        self.depth += 1;
        let result = self.run_update_sections(&mut run);
        self.depth -= 1;
        result?;
        let components: Vec<ComponentId> = run
            .components
            .iter()
            .enumerate()
            .filter(|(i, _)| !run.deps.contains_key(&(*i as u64)))
            .map(|(_, c)| c.clone())
            .collect();
        let mut holders = existing
            .as_ref()
            .map(|r| r.holders.clone())
            .unwrap_or_default();
        if !holders.contains(&holder) {
            holders.push(holder);
        }
        if let Some(old) = &existing {
            for c in &old.components {
                if !components.contains(c) {
                    self.local.images.insert(c.clone(), None);
                }
            }
            for d in &old.dependencies {
                if !run.processed_deps.contains(d) {
                    self.unlink_inner(d, &Holder::Manifest(manifest_id.clone()))?;
                }
            }
        }
        let record = ManifestRecord {
            manifest_id: manifest_id.clone(),
            sequence_number: seq,
            digest: digest_bytes.clone(),
            envelope: bytes.to_vec(),
            components,
            holders,
            dependencies: run.processed_deps.clone(),
        };
        self.local
            .manifests
            .insert(manifest_id.clone(), Some(record));
        self.local.sequence_marks.insert(
            manifest_id.clone(),
            SeqMark {
                sequence_number: seq,
                digest: digest_bytes,
            },
        );
        self.processed.push(manifest_id.clone());
        Ok(manifest_id)
    }

    fn run_update_sections(&mut self, run: &mut Run<'_>) -> Result<(), Abort> {
        let env = run.env;
        for label in [
            ml::DEPENDENCY_RESOLUTION,
            ml::PAYLOAD_FETCH,
            ml::CANDIDATE_VERIFICATION,
            ml::INSTALL,
            ml::VALIDATE,
        ] {
            let seq = if label == ml::VALIDATE {
                env.manifest().validate.as_ref().map(|w| w.value())
            } else {
                run.section = label;
                env.severable_sequence(label)
                    .map_err(|e| run.fail(ReportReason::SeveringUnsupported, e.to_string()))?
            };
            if let Some(seq) = seq {
                self.run_section(run, label, seq)?;
            }
        }
        Ok(())
    }

    fn unlink_inner(&mut self, manifest_id: &ComponentId, holder: &Holder) -> Result<(), Abort> {
        let Some(mut rec) = self.manifest(manifest_id)? else {
            return Err(Abort::Fail(Box::new(ProcessError::bare(
                ReportReason::OperationFailed,
                alloc::format!(
                    "manifest {} is not installed",
                    component_id_text(manifest_id)
                ),
            ))));
        };
        rec.holders.retain(|h| h != holder);
        if !rec.holders.is_empty() {
            self.local.manifests.insert(manifest_id.clone(), Some(rec));
            return Ok(());
        }
        if self.depth > self.p.config.max_nesting {
            return Err(Abort::Fail(Box::new(ProcessError::bare(
                ReportReason::OperationFailed,
                "dependencies nest too deep",
            ))));
        }
        // The envelope was verified when installed and comes from sealed storage.
        let env = Envelope::decode_with(&rec.envelope, &self.p.config.limits).map_err(|e| {
            Abort::Fail(Box::new(ProcessError::bare(
                ReportReason::CborParse,
                e.to_string(),
            )))
        })?;
        let mut run = self.new_run(&env, manifest_id.clone(), Vec::new(), Mode::Uninstall)?;
        if let Some(seq) = env.manifest().uninstall.as_ref() {
            self.depth += 1;
            let r = self.run_section(&mut run, ml::UNINSTALL, seq.value());
            self.depth -= 1;
            r?;
        }
        for c in &rec.components {
            self.local.images.insert(c.clone(), None);
        }
        for d in &rec.dependencies {
            if !run.unlinked_deps.contains(d) {
                self.unlink_inner(d, &Holder::Manifest(manifest_id.clone()))?;
            }
        }
        self.local.manifests.insert(manifest_id.clone(), None);
        Ok(())
    }
}

fn failure_report(
    env: Option<&Envelope>,
    raw: &[u8],
    nonce: Option<&[u8]>,
    e: &ProcessError,
) -> SuitReport {
    let result = ReportResult::Failure {
        code: e.reason.code(),
        record: (*e.record).clone(),
        reason: e.reason,
    };
    match env {
        Some(env) => SuitReport::for_envelope(env, nonce.map(<[u8]>::to_vec), result),
        None => SuitReport {
            reference_uri: String::new(),
            reference_digest: Digest::sha256(raw),
            nonce: nonce.map(<[u8]>::to_vec),
            records: Vec::new(),
            result,
            capability_report: None,
            extensions: Vec::new(),
        },
    }
}

impl<'a> Processor<'a> {
    /// A processor verifying manifests against `anchors` and `policy`.
    pub fn new(
        provider: &'a dyn CryptoProvider,
        config: &'a ProcessorConfig,
        anchors: &'a [PublicKey],
        policy: &'a dyn ManifestPolicy,
    ) -> Self {
        Processor {
            provider,
            config,
            anchors,
            policy,
            fetched: BTreeMap::new(),
        }
    }

    /// Hands over the bytes fetched for `uri` (after [`Step::NeedFetch`]).
    pub fn provide(&mut self, uri: impl Into<String>, bytes: Vec<u8>) {
        self.fetched.insert(uri.into(), bytes);
    }

    /// Forgets every fetched payload.
    pub fn clear_fetched(&mut self) {
        self.fetched.clear();
    }

    /// Runs the update procedure of the envelope `bytes` (authentication, anti-rollback,
    /// policy, then dependency-resolution, payload-fetch, candidate-verification, install
    /// and validate, each after the shared sequence) as the TAM's root manifest, on the
    /// store as it will be after `base`. The report carries `nonce` (TEEP: the token).
    pub fn update(
        &self,
        store: &dyn ComponentStore,
        base: &ChangeSet,
        bytes: &[u8],
        nonce: Option<&[u8]>,
    ) -> Step {
        let mut engine = Engine::new(self, store, base);
        let env = Envelope::decode_with(bytes, &self.config.limits).ok();
        match engine.process_manifest(bytes, Holder::Tam, Vec::new(), None) {
            Ok(manifest_id) => {
                let Some(env) = env else {
                    let e = ProcessError::bare(ReportReason::CborParse, "envelope vanished");
                    return Step::Failed(Box::new(Failed {
                        report: failure_report(None, bytes, nonce, &e),
                        error: e,
                    }));
                };
                let signers = env.verify(self.provider, self.anchors).unwrap_or_default();
                let mut report = SuitReport::for_envelope(
                    &env,
                    nonce.map(<[u8]>::to_vec),
                    ReportResult::Success,
                );
                for id in &engine.installed {
                    let mut props = Vec::new();
                    if let Ok(Some(img)) = engine.image(id) {
                        if let Ok(w) = otrp_suit::Wrapped::new(Digest::sha256(&img)) {
                            props.push(Parameter::ImageDigest(w));
                        }
                        props.push(Parameter::ImageSize(img.len() as u64));
                    }
                    report
                        .records
                        .push(ReportEntry::System(SystemPropertyClaims {
                            component_id: id.clone(),
                            properties: Parameters(props),
                        }));
                }
                Step::Done(Box::new(Applied {
                    changes: engine.local,
                    report,
                    manifest_id,
                    sequence_number: env.manifest().sequence_number,
                    installed: engine.installed,
                    signers,
                }))
            }
            Err(Abort::Fetch(uri)) => Step::NeedFetch { uri },
            Err(Abort::Fail(e)) => Step::Failed(Box::new(Failed {
                report: failure_report(env.as_ref(), bytes, nonce, &e),
                error: *e,
            })),
        }
    }

    /// Drops `holder`'s reference on the manifest `manifest_id` (trust-domains unlink);
    /// at zero references its `suit-uninstall` runs (unlink removes the current
    /// component, process-dependency unlinks the dependency), then all its components
    /// and the record are removed and its remaining dependencies unlinked. The sequence
    /// mark stays. Returns the changes to commit.
    pub fn unlink(
        &self,
        store: &dyn ComponentStore,
        base: &ChangeSet,
        manifest_id: &ComponentId,
        holder: &Holder,
    ) -> Result<ChangeSet, ProcessError> {
        let mut engine = Engine::new(self, store, base);
        match engine.unlink_inner(manifest_id, holder) {
            Ok(()) => Ok(engine.local),
            Err(Abort::Fail(e)) => Err(*e),
            Err(Abort::Fetch(uri)) => Err(ProcessError::bare(
                ReportReason::OperationFailed,
                alloc::format!("uninstall tried to fetch {uri}"),
            )),
        }
    }

    /// Runs the invocation procedure (shared, validate, load, invoke) of an installed
    /// manifest and returns the components to invoke.
    pub fn invoke(
        &self,
        store: &dyn ComponentStore,
        manifest_id: &ComponentId,
    ) -> Result<Vec<ComponentId>, ProcessError> {
        let base = ChangeSet::default();
        let mut engine = Engine::new(self, store, &base);
        let rec = engine.manifest(manifest_id)?.ok_or_else(|| {
            ProcessError::bare(
                ReportReason::OperationFailed,
                alloc::format!(
                    "manifest {} is not installed",
                    component_id_text(manifest_id)
                ),
            )
        })?;
        let env = Envelope::decode_with(&rec.envelope, &self.config.limits)
            .map_err(|e| ProcessError::bare(ReportReason::CborParse, e.to_string()))?;
        let run_all = |engine: &mut Engine<'_, '_>| -> Result<(), Abort> {
            let mut run = engine.new_run(&env, manifest_id.clone(), Vec::new(), Mode::Invoke)?;
            let man = env.manifest();
            for (label, seq) in [
                (ml::VALIDATE, &man.validate),
                (ml::LOAD, &man.load),
                (ml::INVOKE, &man.invoke),
            ] {
                if let Some(seq) = seq {
                    engine.run_section(&mut run, label, seq.value())?;
                }
            }
            Ok(())
        };
        match run_all(&mut engine) {
            Ok(()) => Ok(engine.invoked),
            Err(Abort::Fail(e)) => Err(*e),
            Err(Abort::Fetch(uri)) => Err(ProcessError::bare(
                ReportReason::OperationFailed,
                alloc::format!("invocation tried to fetch {uri}"),
            )),
        }
    }
}
