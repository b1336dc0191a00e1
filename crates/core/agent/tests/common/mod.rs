//! A scripted TAM and fixtures for the Agent tests.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use otrp_agent::suit_processor::{DeviceIdentity, DeviceKek, MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, EatAttester, EatIdentity, Management, OemAuthorization, SdDescriptor,
    TrustedTam,
};
use otrp_cose::SignOptions;
use otrp_crypto::{
    rust_crypto_provider, AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey, PublicKey,
};
use otrp_suit::{ComponentId, TaManifestBuilder};
use otrp_teep::{
    DataItemRequested, QueryRequest, SuitCoseProfile, TeepCipherSuite, TeepMessage, Update,
};
use rand_chacha::rand_core::SeedableRng;

pub const VENDOR: [u8; 16] = [
    0xC0, 0xDD, 0xD5, 0xF1, 0x52, 0x43, 0x56, 0x60, 0x87, 0xDB, 0x4F, 0x5B, 0x0A, 0xA2, 0x6C, 0x2F,
];
pub const CLASS: [u8; 16] = [
    0xDB, 0x42, 0xF7, 0x09, 0x3D, 0x8C, 0x55, 0xBA, 0xA8, 0xC5, 0x26, 0x5F, 0xC5, 0x82, 0x0F, 0x4E,
];
pub const TC_UUID: [u8; 16] = [
    0x8D, 0x82, 0x57, 0x3A, 0x92, 0x6D, 0x47, 0x54, 0x93, 0x53, 0x32, 0xDC, 0x29, 0x99, 0x7F, 0x74,
];
pub const TA_URI: &str = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta";
pub const CONFIG_PLAINTEXT: &[u8] =
    br#"{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}"#;

pub fn provider() -> &'static dyn CryptoProvider {
    rust_crypto_provider()
}

pub fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../testdata/vectors/teep/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    hex::decode(std::fs::read_to_string(&path).unwrap().trim()).unwrap()
}

pub fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../../testdata/vectors/teep/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    PrivateKey::generate(kind, &mut rng).unwrap()
}

/// The published SUIT signer (the TC Signer of the App. E vectors).
pub fn vector_signer() -> PrivateKey {
    PrivateKey::from_pem(&key_file("suit_signer_p256_private.pem")).unwrap()
}

pub fn kek() -> otrp_crypto::p256::SecretKey {
    let bytes = vector("keys/personalization_kek_p256.cose_key.derived.hex");
    let k = otrp_cose::cose_key_from_slice(&bytes).unwrap();
    match otrp_cose::private_from_cose_key(&k).unwrap() {
        PrivateKey::P256(sk) => sk,
        _ => panic!("P-256 KEK expected"),
    }
}

pub fn ta_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &TC_UUID, b"ta"])
}
pub fn ta_manifest_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &TC_UUID, b"suit"])
}
pub fn config_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"config.json"])
}
pub fn config_manifest_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"config.suit"])
}

/// A TAM that builds and signs TEEP messages with fresh tokens.
pub struct ScriptedTam {
    pub key: PrivateKey,
    pub next_token: u64,
}

impl ScriptedTam {
    pub fn new(seed: u64) -> Self {
        ScriptedTam {
            key: key(seed, KeyKind::P256),
            next_token: seed * 1000,
        }
    }
    pub fn public(&self) -> PublicKey {
        self.key.public_key()
    }
    pub fn kid(&self) -> [u8; 32] {
        otrp_crypto::thumbprint::cose_key_thumbprint(&self.public(), provider())
    }
    pub fn token(&mut self) -> Vec<u8> {
        self.next_token += 1;
        format!("token-{:08}", self.next_token).into_bytes()
    }
    pub fn sign(&self, msg: &TeepMessage) -> Vec<u8> {
        otrp_teep::signed::sign1(provider(), &self.key, msg, AlgIdGeneration::New).unwrap()
    }
    pub fn query_request(&mut self, items: DataItemRequested) -> Vec<u8> {
        let t = self.token();
        let mut qr = QueryRequest::new(
            vec![
                TeepCipherSuite::SIGN1_ESP256,
                TeepCipherSuite::SIGN1_ED25519,
            ],
            vec![SuitCoseProfile::SHA256_ESP256_ECDH_A128CTR],
            items,
        )
        .with_token(t);
        if items.contains(DataItemRequested::ATTESTATION) {
            qr = qr.with_challenge(b"challenge-0123456789".to_vec());
        }
        self.sign(&TeepMessage::QueryRequest(qr))
    }
    pub fn update_msg(&mut self, manifests: Vec<Vec<u8>>, unneeded: Vec<ComponentId>) -> Update {
        let t = self.token();
        let mut up = Update::new().with_token(t);
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
        up
    }
    pub fn update(&mut self, manifests: Vec<Vec<u8>>, unneeded: Vec<ComponentId>) -> Vec<u8> {
        let up = self.update_msg(manifests, unneeded);
        self.sign(&TeepMessage::Update(up))
    }
    /// An SD manifest `[name, "sd"]` carrying `desc`, SUIT-signed by this TAM.
    pub fn sd_manifest(&self, desc: &SdDescriptor, seq: u64) -> Vec<u8> {
        let bytes = desc.to_cbor().unwrap();
        let b = TaManifestBuilder::new(otrp_agent::sd::sd_component_id(&desc.name), seq)
            .image_of(&bytes)
            .integrated_payload("#sd", bytes)
            .uninstall(true);
        b.build_signed(provider(), &self.key, &SignOptions::default())
            .unwrap()
            .encode()
            .unwrap()
    }
}

pub fn descriptor(name: &[u8], sp: &str, signers: Vec<PublicKey>) -> SdDescriptor {
    SdDescriptor {
        name: name.to_vec(),
        sp_id: sp.into(),
        signers,
        authorization: None,
        tam: None,
    }
}

pub fn oem_authorization(oem: &PrivateKey, sp: &str, tam: &PublicKey) -> Vec<u8> {
    OemAuthorization::sign(provider(), oem, sp, tam).unwrap()
}

pub type TestAgent = Agent<MemoryStore, EatAttester>;

pub struct Device {
    pub agent: TestAgent,
    pub agent_key: PublicKey,
    pub attestation_key: PublicKey,
}

pub fn device(tams: Vec<TrustedTam>, oem_keys: Vec<PublicKey>, management: Management) -> Device {
    let agent_key = key(900, KeyKind::P256);
    let attestation_key = key(901, KeyKind::P256);
    let identity = EatIdentity {
        ueid: vec![0x01; 33],
        oemid: otrp_eat::OemId::Pen(32473),
        hwmodel: b"opentrust-sim".to_vec(),
        hwversion: "1.0".into(),
        measurement: [0x42; 32],
        x5chain: vec![b"leaf-der".to_vec(), b"ca-der".to_vec()],
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
            device: DeviceIdentity {
                vendor_id: Some(otrp_suit::VendorId::Uuid(VENDOR)),
                class_ids: vec![CLASS],
                device_id: None,
            },
            keks: vec![DeviceKek::EcdhP256(kek())],
            ..ProcessorConfig::default()
        },
        max_tokens: 64,
    };
    Device {
        agent: Agent::new(provider(), config, MemoryStore::new(), attester),
        agent_key: agent_key.public_key(),
        attestation_key: attestation_key.public_key(),
    }
}

/// Verifies an Agent answer with the Agent key and decodes it.
pub fn answer(d: &Device, bytes: &Option<Vec<u8>>) -> TeepMessage {
    let bytes = bytes.as_ref().expect("the Agent sent nothing");
    otrp_teep::signed::verify(provider(), bytes, std::slice::from_ref(&d.agent_key))
        .unwrap()
        .message
}

pub fn expect_error(d: &Device, bytes: &Option<Vec<u8>>) -> otrp_teep::Error {
    match answer(d, bytes) {
        TeepMessage::Error(e) => e,
        other => panic!("expected an Error, got {other:?}"),
    }
}

pub fn expect_success(d: &Device, bytes: &Option<Vec<u8>>) -> otrp_teep::Success {
    match answer(d, bytes) {
        TeepMessage::Success(s) => s,
        TeepMessage::Error(e) => panic!(
            "expected Success, got Error {:?}: {:?} reports {:?}",
            e.err_code,
            e.err_msg,
            e.suit_reports.map(|r| r.len())
        ),
        other => panic!("expected Success, got {other:?}"),
    }
}

impl Device {
    /// Handles `msg` and expects a Success.
    pub fn success(&mut self, msg: &[u8], now: u64) -> otrp_teep::Success {
        let out = self.agent.handle(msg, now);
        expect_success(self, &out.send)
    }
    /// Handles `msg` and expects an Error.
    pub fn error(&mut self, msg: &[u8], now: u64) -> otrp_teep::Error {
        let out = self.agent.handle(msg, now);
        expect_error(self, &out.send)
    }
    /// Handles `msg` and decodes the answer.
    pub fn reply(&mut self, msg: &[u8], now: u64) -> TeepMessage {
        let out = self.agent.handle(msg, now);
        answer(self, &out.send)
    }
}
