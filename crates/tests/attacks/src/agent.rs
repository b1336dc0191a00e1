//! The TEE side: a real `otrp-agent` over an in-memory component store, and a scripted
//! TAM signer for messages the TAM core does not build (SD creation, hand-made Updates).

use otrp_agent::suit_processor::{DeviceIdentity, MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, EatAttester, EatIdentity, Management, SdDescriptor, TrustedTam,
};
use otrp_cose::SignOptions;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_suit::{ComponentId, TaManifestBuilder};
use otrp_teep::{ErrCode, TeepMessage, Update};
use rand_chacha::rand_core::SeedableRng;

/// Hardware model the devices report (EAT `hwmodel`), known to the TAM's verifier.
pub const MODEL: &str = "attack-sim";
/// TEE measurement the devices report, known to the TAM's verifier.
pub const MEASUREMENT: [u8; 32] = [0x42; 32];
/// Hardware version the devices report.
pub const HWVERSION: &str = "1.0";

/// The Agent's crypto provider (the pure-Rust one, as on a microcontroller).
pub fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::rust_crypto_provider()
}

/// A deterministic key from `seed`.
pub fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PrivateKey::generate(kind, &mut rng).expect("key generation")
}

/// The RFC 9679 thumbprint of a key.
pub fn kid(key: &PublicKey) -> [u8; 32] {
    cose_key_thumbprint(key, provider())
}

/// The Agent type under test.
pub type TestAgent = Agent<MemoryStore, EatAttester>;

/// A device: the Agent and the keys the TAM side must know.
pub struct AgentDevice {
    /// The Agent core.
    pub agent: TestAgent,
    /// The Agent's TEEP key (signs QueryResponse, Success, Error).
    pub agent_key: PrivateKey,
    /// The TEE attestation key (signs EAT evidence).
    pub attestation_key: PrivateKey,
    /// The device's UEID.
    pub ueid: Vec<u8>,
}

/// TAM keys trusted as OEM TAMs (the usual single-operator set-up).
pub fn oem_tams(keys: &[PublicKey]) -> Vec<TrustedTam> {
    keys.iter()
        .map(|k| TrustedTam {
            key: k.clone(),
            oem: true,
        })
        .collect()
}

impl AgentDevice {
    /// A fresh device (keys from `seed`) trusting `tams`.
    pub fn new(
        seed: u64,
        tams: Vec<TrustedTam>,
        oem_keys: Vec<PublicKey>,
        management: Management,
    ) -> AgentDevice {
        let agent_key = key(seed * 10 + 1, KeyKind::P256);
        let attestation_key = key(seed * 10 + 2, KeyKind::P256);
        let mut ueid = vec![0x01];
        ueid.extend_from_slice(&seed.to_be_bytes());
        ueid.extend_from_slice(&[0xa7; 8]);
        let identity = EatIdentity {
            ueid: ueid.clone(),
            oemid: otrp_eat::OemId::Pen(32473),
            hwmodel: MODEL.as_bytes().to_vec(),
            hwversion: HWVERSION.into(),
            measurement: MEASUREMENT,
            x5chain: Vec::new(),
            tfw_endorsement: None,
        };
        let attester = EatAttester::new(
            provider(),
            attestation_key.clone(),
            identity,
            &agent_key.public_key(),
        );
        let config = AgentConfig {
            tams,
            oem_keys,
            management,
            agent_key: agent_key.clone(),
            alg_gen: AlgIdGeneration::New,
            processor: ProcessorConfig {
                device: DeviceIdentity::default(),
                ..ProcessorConfig::default()
            },
            max_tokens: 64,
        };
        AgentDevice {
            agent: Agent::new(provider(), config, MemoryStore::new(), attester),
            agent_key,
            attestation_key,
            ueid,
        }
    }

    /// A snapshot of everything the Agent persists.
    pub fn snapshot(&self) -> MemoryStore {
        self.agent.store().clone()
    }

    /// Verifies an Agent answer with the Agent key and decodes it.
    pub fn open(&self, bytes: Option<&[u8]>) -> Option<TeepMessage> {
        let bytes = bytes?;
        otrp_teep::signed::verify(
            provider(),
            bytes,
            std::slice::from_ref(&self.agent_key.public_key()),
        )
        .ok()
        .map(|v| v.message)
    }

    /// Handles `msg`; returns the error code when the Agent answered with an Error.
    pub fn refusal(&mut self, msg: &[u8], now: u64) -> Option<ErrCode> {
        let out = self.agent.handle(msg, now);
        match self.open(out.send.as_deref()) {
            Some(TeepMessage::Error(e)) => Some(e.err_code),
            _ => None,
        }
    }

    /// Handles `msg` and tells whether the Agent answered Success.
    pub fn succeeds(&mut self, msg: &[u8], now: u64) -> bool {
        let out = self.agent.handle(msg, now);
        matches!(
            self.open(out.send.as_deref()),
            Some(TeepMessage::Success(_))
        )
    }
}

/// A TAM signing key used directly (the scripted side of a test).
pub struct ScriptedTam {
    /// The TEEP signing key.
    pub key: PrivateKey,
    next_token: u64,
}

impl ScriptedTam {
    /// A scripted TAM with `key`.
    pub fn new(key: PrivateKey) -> ScriptedTam {
        ScriptedTam { key, next_token: 0 }
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        self.key.public_key()
    }

    /// A fresh token.
    pub fn token(&mut self) -> Vec<u8> {
        self.next_token += 1;
        format!(
            "scripted-{:08}-{}",
            self.next_token,
            hex::encode(&kid(&self.public())[..4])
        )
        .into_bytes()
    }

    /// Signs a TEEP message as COSE_Sign1.
    pub fn sign(&self, msg: &TeepMessage) -> Vec<u8> {
        otrp_teep::signed::sign1(provider(), &self.key, msg, AlgIdGeneration::New)
            .expect("TEEP signing")
    }

    /// A signed Update carrying `manifests` and deleting `unneeded`.
    pub fn update(&mut self, manifests: Vec<Vec<u8>>, unneeded: Vec<ComponentId>) -> Vec<u8> {
        let mut up = Update::new().with_token(self.token());
        if !manifests.is_empty() {
            up = up.with_manifests(manifests);
        }
        if !unneeded.is_empty() {
            up = up.with_unneeded_manifest_list(
                unneeded
                    .into_iter()
                    .map(|c| otrp_teep::ComponentId(c.0))
                    .collect(),
            );
        }
        self.sign(&TeepMessage::Update(up))
    }

    /// An SD manifest `[name, "sd"]` carrying `desc`, SUIT-signed by this TAM.
    pub fn sd_manifest(&self, desc: &SdDescriptor, seq: u64) -> Vec<u8> {
        let bytes = desc.to_cbor().expect("SD descriptor");
        TaManifestBuilder::new(otrp_agent::sd::sd_component_id(&desc.name), seq)
            .image_of(&bytes)
            .integrated_payload("#sd", bytes)
            .uninstall(true)
            .build_signed(provider(), &self.key, &SignOptions::default())
            .expect("SD manifest")
            .encode()
            .expect("SD manifest encoding")
    }

    /// Creates SD `name` for `sp` with `signers` on `dev` (Update signed by this TAM).
    pub fn create_sd(
        &mut self,
        dev: &mut AgentDevice,
        name: &[u8],
        sp: &str,
        signers: Vec<PublicKey>,
        now: u64,
    ) {
        let desc = SdDescriptor {
            name: name.to_vec(),
            sp_id: sp.into(),
            signers,
            authorization: None,
            tam: None,
        };
        let msg = self.update(vec![self.sd_manifest(&desc, 1)], vec![]);
        assert!(dev.succeeds(&msg, now), "SD {name:?} creation refused");
    }
}

/// A TA manifest for `component` (sequence `seq`, integrated image), SUIT-signed by
/// `signer`, installable and uninstallable.
pub fn ta_manifest(
    component: &ComponentId,
    seq: u64,
    image: &[u8],
    signer: &PrivateKey,
) -> Vec<u8> {
    TaManifestBuilder::new(component.clone(), seq)
        .image_of(image)
        .integrated_payload("#tc", image.to_vec())
        .uninstall(true)
        .build_signed(provider(), signer, &SignOptions::default())
        .expect("TA manifest")
        .encode()
        .expect("TA manifest encoding")
}

/// The component id `[sd, name]`.
pub fn component(sd: &[u8], name: &[u8]) -> ComponentId {
    ComponentId::new([sd, name])
}
