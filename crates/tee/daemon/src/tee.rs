//! One simulated TEE: the TEEP Agent over the platform's sealed store, its attester with
//! the device keys, and the TA runtime that runs the TAs the Agent installed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ciborium::value::Value;
use otrp_agent::suit_processor::{DeviceIdentity as SuitDevice, DeviceKek, ProcessorConfig};
use otrp_agent::{Agent, AgentConfig, EatAttester, EatIdentity, Event, Management, TrustedTam};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{rust_crypto_provider, AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey};
use otrp_pki::device::{DeviceIdentity, MgmtConfig};
use otrp_pki::Usage;
use otrp_suit::ComponentId;
use otrp_suit_processor::ComponentStore;
use otrp_ta_runtime::{RuntimeConfig, Session, TaId, TaRuntime};
use otrp_tee_platform::{Platform, PlatformConfig};
use rand_chacha::rand_core::{CryptoRngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store::{component_label, ta_id_for, PlatformStore};
use crate::TeeError;

mod batch;
pub use batch::{BatchApplied, BatchStatus, PendingBatchReport};

mod otrp;
pub use otrp::OTRP_TEE_NAME;

mod otrp_batch;
pub use otrp_batch::{OtrpBatchApplied, OtrpBatchStatus, PendingOtrpBatchResult};

/// The simulated TEE firmware image; its SHA-256 is the TFW measurement every simulated
/// device reports (a TAM's reference value for the models it serves).
pub const TEE_IMAGE: &[u8] = b"OpenTrust simulated TEE OS 0.1 (otrp-tee-daemon)";

/// Sub-directory of a device directory that holds the platform's sealed store.
pub const STORE_DIR: &str = "tee-store";

/// Sealed object holding the Agent's TEEP signing key (PKCS#8 PEM).
const AGENT_KEY_OBJECT: &str = "tee/agent-key";
/// Sealed object holding the RequestTA / UnrequestTA lists (CBOR `[[* id], [* id]]`).
const REQUESTS_OBJECT: &str = "tee/requests";

/// The SUIT class id of devices of `model` (their EAT `hwmodel`): the first 16 bytes of
/// its SHA-256. A TEE checks manifests' class conditions against it; an SP signs it with
/// `otrp sp publish --class-model MODEL`.
pub fn model_class_id(provider: &dyn CryptoProvider, model: &str) -> [u8; 16] {
    let d = provider.sha256(model.as_bytes());
    let mut class = [0u8; 16];
    class.copy_from_slice(d.get(..16).unwrap_or(&[0u8; 16]));
    class
}

/// The SHA-256 measurement of [`TEE_IMAGE`].
pub fn tee_measurement() -> [u8; 32] {
    rust_crypto_provider().sha256(TEE_IMAGE)
}

/// A TAM certificate chain (leaf first) the TEE is told to trust, validated against the
/// TAM roots sealed into the device at provisioning.
#[derive(Debug, Clone)]
pub struct TamCert {
    /// DER certificates, the TAM signer first.
    pub chain: Vec<Vec<u8>>,
    /// Whether the TAM is operated by the OEM (DESIGN §3 management rules).
    pub oem: bool,
}

impl TamCert {
    /// Reads a PEM chain (leaf first).
    pub fn from_pem(pem: &str, oem: bool) -> Result<Self, TeeError> {
        let chain = otrp_pki::cert::certs_from_pem(pem).map_err(|e| TeeError::TamCert {
            what: "PEM".into(),
            detail: e.to_string(),
        })?;
        if chain.is_empty() {
            return Err(TeeError::TamCert {
                what: "PEM".into(),
                detail: "no CERTIFICATE block".into(),
            });
        }
        Ok(TamCert { chain, oem })
    }

    /// Reads a PEM chain file.
    pub fn from_file(path: &Path, oem: bool) -> Result<Self, TeeError> {
        let pem = std::fs::read_to_string(path).map_err(|source| TeeError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem, oem).map_err(|e| TeeError::TamCert {
            what: path.display().to_string(),
            detail: e.to_string(),
        })
    }
}

/// How to boot a TEE.
#[derive(Debug, Clone)]
pub struct TeeOptions {
    /// TAMs to trust (each must chain to a sealed TAM root).
    pub tams: Vec<TamCert>,
    /// fsync the sealed store (on for a daemon; the fleet turns it off: it survives a
    /// killed process but not a power cut).
    pub fsync: bool,
    /// Answered tokens remembered against replay.
    pub max_tokens: usize,
    /// Limits of the TA runtime.
    pub runtime: RuntimeConfig,
    /// The SUIT vendor id this device answers to: `condition-vendor-identifier` compares
    /// a manifest's vendor id with it byte for byte, and the device refuses a manifest of
    /// another vendor. `None`: its oemid as a UUID. A vendor that signs its manifests
    /// with its IANA Private Enterprise Number (`otrp sp publish --vendor-pen N`, 6 B on
    /// the wire instead of 17) sets [`otrp_suit::VendorId::pen`]`(N)` here
    /// (`otrp tee run --vendor-pen N`).
    pub vendor: Option<otrp_suit::VendorId>,
    /// The crypto provider of the Agent, its attester and its key: RustCrypto by default,
    /// as in a TEE without ring.
    pub crypto: TeeCrypto,
}

impl Default for TeeOptions {
    fn default() -> Self {
        TeeOptions {
            tams: Vec::new(),
            fsync: true,
            max_tokens: 64,
            runtime: RuntimeConfig::default(),
            vendor: None,
            crypto: TeeCrypto::default(),
        }
    }
}

/// Which crypto provider a simulated TEE signs, verifies and hashes with. Both give the
/// same algorithms and the same wire format; only their cost differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TeeCrypto {
    /// RustCrypto ([`otrp_crypto::rust_crypto_provider`]): the provider of the Agent core
    /// in `no_std`, where ring is not available (a microcontroller TEE).
    #[default]
    RustCrypto,
    /// The host's provider ([`otrp_crypto::default_provider`]): ring when `otrp-crypto`'s
    /// `ring` feature is on, as in the `otrp` binary, else RustCrypto. For load
    /// generators that simulate many devices on one host (`otrp bench tam`), where the
    /// devices' ECDSA must not be what limits the rate the TAM is measured at.
    Host,
}

impl TeeCrypto {
    /// The provider this choice stands for.
    pub fn provider(self) -> &'static dyn CryptoProvider {
        match self {
            TeeCrypto::RustCrypto => rust_crypto_provider(),
            TeeCrypto::Host => otrp_crypto::default_provider(),
        }
    }
}

/// Something the Agent did while processing a message, for the Broker's logs and the
/// fleet's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeEvent {
    /// `installed`, `removed`, `sd-created`, `sd-deleted`, `need-fetch`, `refused` or
    /// `tam-error`.
    pub kind: String,
    /// The component, SD, URI or reason.
    pub detail: String,
}

/// The answer to ProcessTeepMessage (and to a fetch hand-over).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TeepReply {
    /// The signed TEEP message to relay to the TAM, if any.
    #[serde(with = "serde_bytes")]
    pub send: Option<Vec<u8>>,
    /// The Agent waits for the bytes at this URI (ProvideFetch / FetchFailed).
    pub need_fetch: Option<String>,
    /// What happened.
    pub events: Vec<TeeEvent>,
}

/// One installed component, as Status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    /// The component id in TA-id form (see [`crate::ta_id_for`]).
    pub id: String,
    /// SHA-256 of the image (hex).
    pub digest: String,
    /// Image size in bytes.
    pub size: u64,
    /// SHA-256 of the TA runtime's copy of the code, for Wasm components (hex).
    pub ta_code_digest: Option<String>,
}

/// One installed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStatus {
    /// Manifest id in TA-id form.
    pub id: String,
    /// Its sequence number.
    pub sequence_number: u64,
    /// Components it installed.
    pub components: Vec<String>,
}

/// What the TEE reports about itself (`otrp client status`, tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeStatus {
    /// UEID (hex).
    pub ueid: String,
    /// Hardware model.
    pub model: String,
    /// Management configuration.
    pub config: String,
    /// Thumbprint of the Agent's TEEP key (hex).
    pub agent_kid: String,
    /// Installed components.
    pub components: Vec<ComponentStatus>,
    /// Installed manifests.
    pub manifests: Vec<ManifestStatus>,
    /// Security Domains (names, lossy UTF-8).
    pub security_domains: Vec<String>,
    /// Components requested by Client Apps, not yet installed.
    pub requested: Vec<String>,
    /// Manifests given up by Client Apps, not yet removed.
    pub unrequested: Vec<String>,
    /// TA ids whose code the TA runtime holds (must match the Wasm components).
    pub tas: Vec<String>,
    /// Generation of RequestTA / UnrequestTA calls (the Broker runs a session when it grows).
    pub work_seq: u64,
    /// Store commits since boot.
    pub commits: u64,
}

/// One booted TEE (see the crate docs).
pub struct Tee {
    provider: &'static dyn CryptoProvider,
    agent: Agent<PlatformStore, EatAttester>,
    platform: Arc<Mutex<Platform>>,
    runtime: Option<TaRuntime>,
    runtime_config: RuntimeConfig,
    identity: DeviceIdentity,
    agent_kid: [u8; 32],
    sessions: HashMap<u64, Session>,
    next_session: u64,
    requested: BTreeSet<ComponentId>,
    unrequested: BTreeSet<ComponentId>,
    work: watch::Sender<u64>,
    /// The trusted TAM certificates (the OTrP Agent takes their `tamid`s).
    tam_certs: Vec<TamCert>,
    /// The OTrP Agent, built at the first OTrP message ([`otrp`]).
    otrp: Option<otrp_agent::OtrpAgent>,
}

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee")
            .field("ueid", &hex::encode(&self.identity.ueid))
            .field("model", &self.identity.hwmodel)
            .finish_non_exhaustive()
    }
}

fn os_rng() -> Box<dyn CryptoRngCore + Send> {
    Box::new(
        rand_chacha::ChaCha20Rng::from_rng(rand::rngs::OsRng).unwrap_or_else(|_| {
            // OsRng failing is not recoverable for a TEE; seed from the clock-free fallback of
            // the thread RNG (itself seeded from the OS at first use).
            rand_chacha::ChaCha20Rng::from_seed(rand::random())
        }),
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn management(c: MgmtConfig) -> Management {
    match c {
        MgmtConfig::OemGated => Management::OemGated,
        MgmtConfig::OemOwnedSd => Management::OemOwnedSds,
        MgmtConfig::DualControl => Management::DualControl,
    }
}

fn encode_ids(a: &BTreeSet<ComponentId>, b: &BTreeSet<ComponentId>) -> Option<Vec<u8>> {
    let list = |s: &BTreeSet<ComponentId>| {
        Value::Array(
            s.iter()
                .map(|id| {
                    Value::Array(
                        id.segments()
                            .iter()
                            .map(|x| Value::Bytes(x.clone()))
                            .collect(),
                    )
                })
                .collect(),
        )
    };
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Array(vec![list(a), list(b)]), &mut out).ok()?;
    Some(out)
}

fn decode_ids(bytes: &[u8]) -> (BTreeSet<ComponentId>, BTreeSet<ComponentId>) {
    let parse = |v: &Value| -> BTreeSet<ComponentId> {
        let Value::Array(ids) = v else {
            return BTreeSet::new();
        };
        ids.iter()
            .filter_map(|id| match id {
                Value::Array(segs) => segs
                    .iter()
                    .map(|s| match s {
                        Value::Bytes(b) => Some(b.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(ComponentId),
                _ => None,
            })
            .collect()
    };
    match ciborium::de::from_reader::<Value, _>(bytes) {
        Ok(Value::Array(items)) => match items.as_slice() {
            [a, b] => (parse(a), parse(b)),
            _ => Default::default(),
        },
        _ => Default::default(),
    }
}

/// Parses a TA name as a Client App gives it (`payments:payment-signer`) into a
/// component id (segments split at `:`).
pub fn component_from_name(name: &str) -> Result<ComponentId, TeeError> {
    let segs: Vec<Vec<u8>> = name.split(':').map(|s| s.as_bytes().to_vec()).collect();
    if name.is_empty() || segs.iter().any(Vec::is_empty) {
        return Err(TeeError::UnknownTa {
            name: name.to_string(),
            reason: "expected segments separated by `:`, none empty".into(),
        });
    }
    Ok(ComponentId(segs))
}

impl Tee {
    /// Boots the TEE of the device in `dir` (written by `otrp device provision`): reads
    /// `efuse.key`, unseals `sealed-state.cbor`, opens the platform store in
    /// `dir/tee-store`.
    pub fn open_device_dir(dir: &Path, options: &TeeOptions) -> Result<Tee, TeeError> {
        let provider = options.crypto.provider();
        let device_err = |source| TeeError::Device {
            dir: dir.to_owned(),
            source,
        };
        let public = otrp_pki::fs::read_device_public(dir).map_err(device_err)?;
        let key_path = dir.join(&public.files.efuse_key);
        let key =
            zeroize::Zeroizing::new(std::fs::read(&key_path).map_err(|source| TeeError::Io {
                path: key_path.clone(),
                source,
            })?);
        let storage_key: [u8; 32] = key.as_slice().try_into().map_err(|_| {
            TeeError::Identity(format!(
                "{}: {} bytes, expected 32",
                key_path.display(),
                key.len()
            ))
        })?;
        let (_, identity) = otrp_pki::fs::load_device(dir, provider).map_err(device_err)?;
        Tee::boot(identity, storage_key, &dir.join(STORE_DIR), options)
    }

    /// Boots a TEE from an unsealed identity, its storage key and a store directory (the
    /// fleet keeps devices in memory and their stores in a temporary directory).
    pub fn boot(
        identity: DeviceIdentity,
        storage_key: [u8; 32],
        store_dir: &Path,
        options: &TeeOptions,
    ) -> Result<Tee, TeeError> {
        let provider = options.crypto.provider();
        let config = PlatformConfig::new(PathBuf::from(store_dir), storage_key, TEE_IMAGE)
            .fsync(options.fsync);
        let mut platform = Platform::open(config, os_rng())?;
        let measurement = platform.measurement();

        // The Agent's TEEP key: made inside the TEE at first boot, sealed.
        let agent_key = match platform.get(AGENT_KEY_OBJECT)? {
            Some(pem) => {
                let text = String::from_utf8(pem)
                    .map_err(|_| TeeError::Identity("sealed Agent key is not PEM text".into()))?;
                PrivateKey::from_pem(&text)
                    .map_err(|e| TeeError::Identity(format!("sealed Agent key: {e}")))?
            }
            None => {
                let mut rng = os_rng();
                let key = PrivateKey::generate(KeyKind::P256, &mut rng)
                    .map_err(|e| TeeError::Identity(format!("Agent key generation: {e}")))?;
                let pem = zeroize::Zeroizing::new(
                    key.to_pkcs8_pem()
                        .map_err(|e| TeeError::Identity(format!("Agent key encoding: {e}")))?,
                );
                platform.put(AGENT_KEY_OBJECT, pem.as_bytes())?;
                key
            }
        };
        let (requested, unrequested) = match platform.get(REQUESTS_OBJECT)? {
            Some(b) => decode_ids(&b),
            None => Default::default(),
        };

        let now = SystemTime::now();
        let tam_store = identity
            .anchors
            .tam_store()
            .map_err(|e| TeeError::Identity(format!("sealed TAM roots: {e}")))?;
        let mut tams = Vec::with_capacity(options.tams.len());
        for (i, cert) in options.tams.iter().enumerate() {
            let (leaf, rest) = cert.chain.split_first().ok_or_else(|| TeeError::TamCert {
                what: format!("#{i}"),
                detail: "empty chain".into(),
            })?;
            let v = tam_store
                .verify(leaf, rest, Usage::TamSigner, now)
                .map_err(|e| TeeError::TamCert {
                    what: format!("#{i}"),
                    detail: e.to_string(),
                })?;
            tams.push(TrustedTam {
                key: v.public_key,
                oem: cert.oem,
            });
        }

        let oemid: [u8; 16] = identity.oemid.as_slice().try_into().map_err(|_| {
            TeeError::Identity(format!(
                "oemid has {} bytes, expected 16",
                identity.oemid.len()
            ))
        })?;
        let class = model_class_id(provider, &identity.hwmodel);
        let mut keks = Vec::new();
        if let Some(b) = &identity.batch {
            if let PrivateKey::P256(sk) = &b.key {
                keks.push(DeviceKek::EcdhP256(sk.clone()));
            }
        }
        let mut x5chain = vec![identity.tee.cert.clone()];
        x5chain.extend(identity.tee.chain.iter().cloned());
        let mut tfw_chain = vec![identity.tfw.cert.clone()];
        tfw_chain.extend(identity.tfw.chain.iter().cloned());
        let endorsement = otrp_agent::tfw_endorsement(
            provider,
            &identity.tfw.key,
            &identity.ueid,
            &measurement,
            &tfw_chain,
        )
        .map_err(|e| TeeError::Identity(format!("TFW endorsement: {e}")))?;
        let eat = EatIdentity {
            ueid: identity.ueid.clone(),
            oemid: otrp_eat::OemId::Random(oemid),
            hwmodel: identity.hwmodel.as_bytes().to_vec(),
            hwversion: identity.hwversion.clone(),
            measurement,
            x5chain,
            tfw_endorsement: Some(endorsement),
        };
        let agent_pub = agent_key.public_key();
        let attester = EatAttester::new(provider, identity.tee.key.clone(), eat, &agent_pub);
        let agent_config = AgentConfig {
            tams,
            oem_keys: identity.anchors.oem_keys.clone(),
            management: management(identity.config),
            agent_key,
            alg_gen: AlgIdGeneration::New,
            processor: ProcessorConfig {
                device: SuitDevice {
                    vendor_id: Some(
                        options
                            .vendor
                            .clone()
                            .unwrap_or(otrp_suit::VendorId::Uuid(oemid)),
                    ),
                    class_ids: vec![class],
                    device_id: None,
                },
                keks,
                ..ProcessorConfig::default()
            },
            max_tokens: options.max_tokens.max(1),
        };
        let platform = Arc::new(Mutex::new(platform));
        let store = PlatformStore::open(platform.clone())?;
        let mut agent = Agent::new(provider, agent_config, store, attester);
        for id in &requested {
            agent.request_ta(id.clone());
        }
        for id in &unrequested {
            agent.unrequest_ta(id.clone());
        }
        let (work, _) = watch::channel(0u64);
        tracing::info!(
            ueid = %hex::encode(&identity.ueid),
            model = %identity.hwmodel,
            config = %identity.config,
            "TEE booted"
        );
        Ok(Tee {
            provider,
            agent,
            platform,
            runtime: None,
            runtime_config: options.runtime.clone(),
            agent_kid: cose_key_thumbprint(&agent_pub, provider),
            identity,
            sessions: HashMap::new(),
            next_session: 1,
            requested,
            unrequested,
            work,
            tam_certs: options.tams.clone(),
            otrp: None,
        })
    }

    /// The unsealed device identity.
    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// The Agent (for tests and tools).
    pub fn agent(&self) -> &Agent<PlatformStore, EatAttester> {
        &self.agent
    }

    /// A receiver that changes whenever a Client App calls RequestTA or UnrequestTA.
    pub fn work_watch(&self) -> watch::Receiver<u64> {
        self.work.subscribe()
    }

    fn finish(&mut self, out: otrp_agent::Output) -> TeepReply {
        let mut reply = TeepReply {
            send: out.send,
            ..TeepReply::default()
        };
        let mut changed = false;
        for e in out.events {
            let (kind, detail) = match e {
                Event::Installed { component } => {
                    changed |= self.requested.remove(&component);
                    ("installed", component_label(&component))
                }
                Event::Removed { component } => {
                    changed |= self.unrequested.remove(&component);
                    ("removed", component_label(&component))
                }
                Event::SdCreated { name } => ("sd-created", String::from_utf8_lossy(&name).into()),
                Event::SdDeleted { name } => ("sd-deleted", String::from_utf8_lossy(&name).into()),
                Event::NeedFetch { uri } => {
                    reply.need_fetch = Some(uri.clone());
                    ("need-fetch", uri)
                }
                Event::Refused { code, detail } => ("refused", format!("{code:?}: {detail}")),
                Event::TamError { code, msg } => (
                    "tam-error",
                    format!("{code:?}: {}", msg.unwrap_or_default()),
                ),
            };
            tracing::info!(kind, %detail, "agent event");
            reply.events.push(TeeEvent {
                kind: kind.into(),
                detail,
            });
        }
        // Unrequested manifests leave the Agent's list once removed: drop those whose
        // manifest is gone.
        let gone: Vec<ComponentId> = self
            .unrequested
            .iter()
            .filter(|m| matches!(self.agent.store().manifest(m), Ok(None)))
            .cloned()
            .collect();
        for m in gone {
            changed |= self.unrequested.remove(&m);
        }
        if changed {
            self.save_requests();
        }
        reply
    }

    fn save_requests(&mut self) {
        let Some(bytes) = encode_ids(&self.requested, &self.unrequested) else {
            return;
        };
        let mut p = self.platform.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = p.put(REQUESTS_OBJECT, &bytes) {
            tracing::warn!(error = %e, "could not save the RequestTA list");
        }
    }

    /// ProcessTeepMessage: a message from the TAM, untouched.
    pub fn process_teep_message(&mut self, message: &[u8], now: u64) -> TeepReply {
        let out = self.agent.handle(message, now);
        self.finish(out)
    }

    /// Hands over the bytes of a URI the Agent asked for.
    pub fn provide_fetch(&mut self, uri: &str, bytes: Vec<u8>, now: u64) -> TeepReply {
        let out = self.agent.provide_fetch(uri, bytes, now);
        self.finish(out)
    }

    /// The Broker could not fetch `uri`.
    pub fn fetch_failed(&mut self, uri: &str, now: u64) -> TeepReply {
        let out = self.agent.fetch_failed(uri, now);
        self.finish(out)
    }

    /// RequestTA: a Client App needs `component`; the next session asks the TAM for it.
    pub fn request_ta(&mut self, component: ComponentId) {
        self.unrequested.remove(&component);
        self.requested.insert(component.clone());
        self.agent.request_ta(component);
        self.save_requests();
        self.work.send_modify(|n| *n += 1);
    }

    /// UnrequestTA: a Client App no longer needs the manifest `manifest`.
    pub fn unrequest_ta(&mut self, manifest: ComponentId) {
        self.requested.remove(&manifest);
        self.unrequested.insert(manifest.clone());
        self.agent.unrequest_ta(manifest);
        self.save_requests();
        self.work.send_modify(|n| *n += 1);
    }

    /// The TA id of an installed TA from a Client App's name: the full id
    /// (`payments:payment-signer`) or, when unique, its last segment (`payment-signer`).
    pub fn resolve_ta(&self, name: &str) -> Result<TaId, TeeError> {
        let ids = self.agent.store().component_ids()?;
        let mut found = Vec::new();
        for id in &ids {
            let Some(ta) = ta_id_for(id) else { continue };
            let Ok(Some(img)) = self.agent.store().image(id) else {
                continue;
            };
            if !crate::store::is_wasm(&img) {
                continue;
            }
            if ta.as_str() == name {
                return Ok(ta);
            }
            if id.segments().last().map(Vec::as_slice) == Some(name.as_bytes()) {
                found.push(ta);
            }
        }
        match found.len() {
            1 => found.pop().ok_or_else(|| TeeError::UnknownTa {
                name: name.into(),
                reason: "not installed".into(),
            }),
            0 => Err(TeeError::UnknownTa {
                name: name.into(),
                reason: "not installed".into(),
            }),
            n => Err(TeeError::UnknownTa {
                name: name.into(),
                reason: format!("{n} installed TAs end with that name; give the full id"),
            }),
        }
    }

    fn runtime(&mut self) -> Result<TaRuntime, TeeError> {
        if let Some(rt) = &self.runtime {
            return Ok(rt.clone());
        }
        let clock = Box::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        });
        let rt = TaRuntime::new(
            self.platform.clone(),
            os_rng(),
            clock,
            self.runtime_config.clone(),
        )?;
        self.runtime = Some(rt.clone());
        Ok(rt)
    }

    /// Opens a session with an installed TA (GP `TEEC_OpenSession`); returns its handle.
    pub fn open_session(&mut self, ta: &str) -> Result<u64, TeeError> {
        let id = self.resolve_ta(ta)?;
        let rt = self.runtime()?;
        let session = rt.open_session(&id)?;
        let handle = self.next_session;
        self.next_session = self.next_session.wrapping_add(1).max(1);
        self.sessions.insert(handle, session);
        Ok(handle)
    }

    /// Invokes command `cmd` of an open session (GP `TEEC_InvokeCommand`).
    pub fn invoke(&mut self, session: u64, cmd: u32, data: &[u8]) -> Result<Vec<u8>, TeeError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(TeeError::NoSession(session))?;
        match s.invoke(cmd, data) {
            Ok(out) => Ok(out),
            Err(e) => {
                if matches!(
                    e,
                    otrp_ta_runtime::TaError::OutOfFuel { .. }
                        | otrp_ta_runtime::TaError::Trap { .. }
                        | otrp_ta_runtime::TaError::MemoryLimit { .. }
                ) {
                    // A dead session is unusable (GP TARGET_DEAD).
                    self.sessions.remove(&session);
                }
                Err(e.into())
            }
        }
    }

    /// Closes a session (GP `TEEC_CloseSession`).
    pub fn close_session(&mut self, session: u64) -> Result<(), TeeError> {
        let s = self
            .sessions
            .remove(&session)
            .ok_or(TeeError::NoSession(session))?;
        s.close()?;
        Ok(())
    }

    /// Opens a session, invokes `cmd` once and closes it.
    pub fn invoke_once(&mut self, ta: &str, cmd: u32, data: &[u8]) -> Result<Vec<u8>, TeeError> {
        let s = self.open_session(ta)?;
        let out = self.invoke(s, cmd, data);
        if self.sessions.contains_key(&s) {
            self.close_session(s)?;
        }
        out
    }

    /// The public key of an installed TA (its private key never leaves the TEE).
    pub fn ta_public_key(&mut self, ta: &str) -> Result<otrp_crypto::PublicKey, TeeError> {
        let id = self.resolve_ta(ta)?;
        Ok(self.runtime()?.ta_public_key(&id)?)
    }

    /// Status: identity, components, manifests, SDs, pending requests.
    pub fn status(&self) -> Result<TeeStatus, TeeError> {
        let store = self.agent.store();
        let mut components = Vec::new();
        for id in store.component_ids()? {
            let Some(img) = store.image(&id)? else {
                continue;
            };
            let ta_code_digest = match ta_id_for(&id) {
                Some(ta) if crate::store::is_wasm(&img) => {
                    let mut p = self.platform.lock().unwrap_or_else(|e| e.into_inner());
                    p.get(&format!("ta/{ta}/code"))?
                        .map(|c| hex::encode(self.provider.sha256(&c)))
                }
                _ => None,
            };
            components.push(ComponentStatus {
                id: component_label(&id),
                digest: hex::encode(self.provider.sha256(&img)),
                size: img.len() as u64,
                ta_code_digest,
            });
        }
        let mut manifests = Vec::new();
        for id in store.manifest_ids()? {
            if let Some(r) = store.manifest(&id)? {
                manifests.push(ManifestStatus {
                    id: component_label(&id),
                    sequence_number: r.sequence_number,
                    components: r.components.iter().map(component_label).collect(),
                });
            }
        }
        let tas = {
            let mut p = self.platform.lock().unwrap_or_else(|e| e.into_inner());
            p.list("ta/")?
                .iter()
                .filter_map(|n| n.strip_prefix("ta/")?.strip_suffix("/code"))
                .map(str::to_string)
                .collect()
        };
        Ok(TeeStatus {
            tas,
            ueid: hex::encode(&self.identity.ueid),
            model: self.identity.hwmodel.clone(),
            config: self.identity.config.to_string(),
            agent_kid: hex::encode(self.agent_kid),
            components,
            manifests,
            security_domains: self
                .agent
                .security_domains()
                .iter()
                .map(|sd| String::from_utf8_lossy(&sd.name).into_owned())
                .collect(),
            requested: self.requested.iter().map(component_label).collect(),
            unrequested: self.unrequested.iter().map(component_label).collect(),
            work_seq: *self.work.borrow(),
            commits: store.commits(),
        })
    }
}
