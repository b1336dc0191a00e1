//! The TAM core over SQLite and real Agents in memory (delta and batch tests).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use coset::CborSerializable;
use otrp_agent::suit_processor::{DeviceKek, MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, EatAttester, EatIdentity, Management, SdDescriptor, TrustedTam,
};
use otrp_cose::SignOptions;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_store::{AccountKind, AgentKeyRecord, SqlStore, Store};
use otrp_suit::{ComponentId, TaManifestBuilder};
use otrp_tam::{
    Admin, Caller, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys,
};
use otrp_teep::{TeepMessage, Update};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const NOW: u64 = 1_800_000_000;
pub const MODEL: &str = "door-lock";
pub const MEASUREMENT: [u8; 32] = [0x42; 32];
pub const HWVERSION: &str = "1.0";

pub fn agent_provider() -> &'static dyn CryptoProvider {
    otrp_crypto::rust_crypto_provider()
}

pub fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    PrivateKey::generate(kind, &mut rng).expect("key generation")
}

pub fn tam_keys() -> TamKeys {
    TamKeys {
        p256: key(101, KeyKind::P256),
        ed25519: key(102, KeyKind::Ed25519),
    }
}

static N: AtomicU32 = AtomicU32::new(0);

pub fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "otrp_tam_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("tam.db")
}

pub type TestAgent = Agent<MemoryStore, EatAttester>;

/// A device: the Agent and the keys the TAM must know.
pub struct Device {
    pub agent: TestAgent,
    pub agent_key: PrivateKey,
    pub attestation_key: PrivateKey,
    pub ueid: Vec<u8>,
}

impl Device {
    /// A device trusting the TAM keys as OEM TAMs; `keks` for encrypted payloads.
    pub fn new(seed: u64, tam: &[PublicKey], keks: Vec<DeviceKek>) -> Device {
        Device::with_agent_key(seed, tam, keks, KeyKind::P256)
    }

    /// [`Device::new`] with an Agent key of this kind.
    pub fn with_agent_key(
        seed: u64,
        tam: &[PublicKey],
        keks: Vec<DeviceKek>,
        kind: KeyKind,
    ) -> Device {
        let agent_key = key(seed * 10 + 1, kind);
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
            agent_provider(),
            attestation_key.clone(),
            identity,
            &agent_key.public_key(),
        );
        let config = AgentConfig {
            tams: tam
                .iter()
                .map(|k| TrustedTam {
                    key: k.clone(),
                    oem: true,
                })
                .collect(),
            oem_keys: vec![],
            management: Management::OemGated,
            agent_key: agent_key.clone(),
            alg_gen: AlgIdGeneration::New,
            processor: ProcessorConfig {
                keks,
                ..ProcessorConfig::default()
            },
            max_tokens: 64,
        };
        Device {
            agent: Agent::new(agent_provider(), config, MemoryStore::new(), attester),
            agent_key,
            attestation_key,
            ueid,
        }
    }

    /// Verifies and decodes an Agent answer.
    pub fn open(&self, bytes: &[u8]) -> TeepMessage {
        otrp_teep::signed::verify(
            agent_provider(),
            bytes,
            std::slice::from_ref(&self.agent_key.public_key()),
        )
        .expect("Agent signature")
        .message
    }

    pub fn image(&self, c: &ComponentId) -> Option<Vec<u8>> {
        self.agent.store().images.get(c).cloned()
    }
}

/// Signs TEEP messages with the TAM's P-256 key outside the core (SD creation,
/// tampered copies of core messages).
pub fn tam_sign(msg: &TeepMessage) -> Vec<u8> {
    otrp_teep::signed::sign1(
        agent_provider(),
        &tam_keys().p256,
        msg,
        AlgIdGeneration::New,
    )
    .expect("TEEP signing")
}

/// The SD manifest `[name, "sd"]` for `sp` with `signers`, SUIT-signed by the TAM.
pub fn sd_manifest(name: &[u8], sp: &str, signers: Vec<PublicKey>, seq: u64) -> Vec<u8> {
    let desc = SdDescriptor {
        name: name.to_vec(),
        sp_id: sp.into(),
        signers,
        authorization: None,
        tam: None,
    };
    let bytes = desc.to_cbor().expect("SD descriptor");
    TaManifestBuilder::new(otrp_agent::sd::sd_component_id(name), seq)
        .image_of(&bytes)
        .integrated_payload("#sd", bytes)
        .uninstall(true)
        .build_signed(agent_provider(), &tam_keys().p256, &SignOptions::default())
        .expect("SD manifest")
        .encode()
        .expect("SD manifest encoding")
}

/// Creates SD `name` on `dev` with a hand-signed token-bearing Update.
pub fn create_sd(dev: &mut Device, name: &[u8], sp: &str, signers: Vec<PublicKey>) {
    let up = Update::new()
        .with_token(format!("sd-{}", hex::encode(&dev.ueid)).into_bytes())
        .with_manifests(vec![sd_manifest(name, sp, signers, 1)]);
    let out = dev.agent.handle(&tam_sign(&TeepMessage::Update(up)), NOW);
    let msg = dev.open(&out.send.expect("answer"));
    assert!(
        matches!(msg, TeepMessage::Success(_)),
        "SD creation: {msg:?}"
    );
}

/// The TAM core over SQLite, its admin side, the OEM and one SP with SD "sd-a".
pub struct World {
    pub store: Arc<dyn Store>,
    pub tam: Tam,
    pub admin: Admin,
    pub oem: Caller,
    pub sp: Caller,
    pub signer: PrivateKey,
    pub rng: ChaCha20Rng,
}

impl World {
    pub async fn new(devices: &[&Device]) -> World {
        let sql = SqlStore::open_sqlite(&temp_db("pair"))
            .await
            .expect("SQLite store");
        let store: Arc<dyn Store> = Arc::new(sql);
        let mut verifier = EatVerifier::new(otrp_crypto::default_provider(), 3600);
        for d in devices {
            verifier.register_device(&d.ueid, d.attestation_key.public_key());
        }
        verifier.set_reference(
            MODEL,
            ReferenceValues {
                measurements: vec![MEASUREMENT.to_vec()],
                hwversions: vec![HWVERSION.into()],
            },
        );
        let tam = Tam::new(
            store.clone(),
            Arc::new(verifier),
            tam_keys(),
            TamConfig::default(),
            otrp_crypto::default_provider(),
        );
        let admin = Admin::new(
            store.clone(),
            otrp_crypto::default_provider(),
            Policy::OemGated,
        );
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let oem_token = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut rng)
            .await
            .expect("OEM account");
        let oem = admin.authenticate(&oem_token).await.expect("OEM login");
        let sp_token = admin
            .create_account(Some(&oem), "sp-a", AccountKind::Sp, NOW, &mut rng)
            .await
            .expect("SP account");
        admin
            .approve_sp(&oem, "sp-a", true, NOW)
            .await
            .expect("approval");
        admin
            .create_sd(&oem, "sd-a", "sp-a", NOW)
            .await
            .expect("SD");
        let sp = admin.authenticate(&sp_token).await.expect("SP login");
        let w = World {
            store,
            tam,
            admin,
            oem,
            sp,
            signer: key(55, KeyKind::P256),
            rng,
        };
        for d in devices {
            w.bind_agent(d).await;
        }
        w
    }

    async fn bind_agent(&self, dev: &Device) {
        let public = dev.agent_key.public_key();
        self.store
            .put_agent_key(&AgentKeyRecord {
                kid: cose_key_thumbprint(&public, agent_provider()).to_vec(),
                device_id: hex::encode(&dev.ueid),
                cose_key: otrp_cose::cose_key_from_public(&public)
                    .to_vec()
                    .expect("COSE_Key"),
                bound_at: NOW,
            })
            .await
            .expect("agent key");
    }

    /// Registers a signed envelope as the SP; returns the component key.
    pub async fn register(&self, envelope: &[u8]) -> Vec<u8> {
        self.admin
            .register_manifest(
                &self.sp,
                "sd-a",
                "app",
                envelope,
                &[self.signer.public_key()],
                NOW,
            )
            .await
            .expect("manifest registration")
            .component
    }

    pub async fn step(&mut self, body: &[u8], now: u64) -> Outcome {
        self.tam
            .process(None, body, now, &mut self.rng)
            .await
            .expect("TAM step")
    }
}

/// One whole exchange; returns the TAM → Agent messages.
pub async fn exchange(w: &mut World, dev: &mut Device, now: u64) -> Vec<Vec<u8>> {
    let mut from_tam = Vec::new();
    let mut body = Vec::new();
    for step in 0..8u64 {
        let Outcome::Reply(msg) = w.step(&body, now + step).await else {
            return from_tam;
        };
        from_tam.push(msg.clone());
        let Some(send) = dev.agent.handle(&msg, now + step).send else {
            return from_tam;
        };
        body = send;
    }
    from_tam
}

/// The manifest envelopes of a TAM-signed Update.
pub fn update_manifests(bytes: &[u8]) -> Vec<Vec<u8>> {
    let keys = [
        tam_keys().p256.public_key(),
        tam_keys().ed25519.public_key(),
    ];
    match otrp_teep::signed::verify(agent_provider(), bytes, &keys)
        .expect("TAM signature")
        .message
    {
        TeepMessage::Update(u) => u.manifest_list.unwrap_or_default(),
        other => panic!("expected an Update, got {other:?}"),
    }
}
