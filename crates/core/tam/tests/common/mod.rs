//! Test harness: a TAM core over a SQLite store, an SP that publishes a TA, and a scripted
//! Agent that answers with otrp-teep / otrp-eat / otrp-suit messages.
#![allow(clippy::unwrap_used, clippy::panic, dead_code, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ciborium::value::Value;
use coset::{AsCborValue, CborSerializable, CoseSign1Builder, HeaderBuilder, Label};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, PublicKey, SigAlg};
use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
use otrp_store::{AccountKind, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_suit::{CborItem, ComponentId as SuitComponentId, Digest, ReportResult, SuitReport};
use otrp_tam::{
    Admin, Caller, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys,
};
use otrp_teep::signed;
use otrp_teep::{
    ComponentId, QueryRequest, QueryResponse, RequestedTcInfo, Success, SystemPropertyClaims,
    TeepMessage, Update,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const NOW: u64 = 1_800_000_000;
pub const MODEL: &str = "door-lock";
pub const TA: &[u8] = b"\0asm\x01\0\0\0 a tiny trusted application";
pub const MEASUREMENT: [u8; 32] = [0x5a; 32];

static N: AtomicU32 = AtomicU32::new(0);

pub fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::default_provider()
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn temp_db() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "otrp_tam_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("tam.db")
}

/// A simulated device: TEE attestation key, Agent key, what it has installed.
pub struct Device {
    pub ueid: Vec<u8>,
    pub tee_key: PrivateKey,
    pub agent_key: PrivateKey,
    /// Installed components: (id, image digest as encoded SUIT_Digest).
    pub installed: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
    /// Put cnf as a full COSE_Key (true) or as a kid with the key in a kccs header.
    pub cnf_cose_key: bool,
    pub measurement: Vec<u8>,
    pub hwversion: String,
}

impl Device {
    pub fn new(seed: u64, agent_kind: KeyKind) -> Device {
        let mut r = rng(seed);
        let mut ueid = vec![0x01];
        ueid.extend_from_slice(&seed.to_be_bytes());
        ueid.extend_from_slice(&[0xd0; 8]);
        Device {
            ueid,
            tee_key: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
            agent_key: PrivateKey::generate(agent_kind, &mut r).unwrap(),
            installed: Vec::new(),
            cnf_cose_key: true,
            measurement: MEASUREMENT.to_vec(),
            hwversion: "1.0".into(),
        }
    }

    pub fn id(&self) -> String {
        hex::encode(&self.ueid)
    }

    pub fn agent_kid(&self) -> [u8; 32] {
        cose_key_thumbprint(&self.agent_key.public_key(), provider())
    }

    /// Evidence (EAT, COSE_Sign1 by the TEE key) for `nonce`.
    pub fn evidence(&self, nonce: &[u8], ueid: &[u8], cnf_key: &PublicKey) -> Vec<u8> {
        let cnf = if self.cnf_cose_key {
            Confirmation::from_cose_key(otrp_cose::cose_key_from_public(cnf_key)).unwrap()
        } else {
            Confirmation::Kid(cose_key_thumbprint(cnf_key, provider()).to_vec())
        };
        let claims = EatClaims::new()
            .with_nonce(nonce.to_vec())
            .with_ueid(ueid.to_vec())
            .with_oemid(OemId::Random([7; 16]))
            .with_hwmodel(MODEL.as_bytes().to_vec())
            .with_hwversion(self.hwversion.clone(), None)
            .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
            .with_manifests(vec![ContentFormat {
                content_type: 60,
                content: Value::Bytes(b"tee-os-manifest".to_vec()),
            }])
            .with_measurements(vec![ContentFormat {
                content_type: 0,
                content: Value::Bytes(self.measurement.clone()),
            }])
            .with_cnf(cnf);
        otrp_eat::signed::sign(provider(), &self.tee_key, &claims, &Default::default()).unwrap()
    }

    pub fn tc_list(&self) -> Vec<SystemPropertyClaims> {
        self.installed
            .iter()
            .map(|(id, digest)| {
                SystemPropertyClaims::new(ComponentId(id.clone())).with_parameter(
                    SystemPropertyClaims::IMAGE_DIGEST,
                    Value::Bytes(digest.clone()),
                )
            })
            .collect()
    }

    /// Signs a TEEP message with the Agent key; with `kccs`, the key also travels in a
    /// kccs header (for evidence whose cnf is only a kid).
    pub fn sign(&self, msg: &TeepMessage, kccs: bool) -> Vec<u8> {
        self.sign_with(&self.agent_key, msg, kccs)
    }

    pub fn sign_with(&self, key: &PrivateKey, msg: &TeepMessage, kccs: bool) -> Vec<u8> {
        if !kccs {
            return signed::sign1(provider(), key, msg, Default::default()).unwrap();
        }
        let alg = key.default_alg();
        let cose_alg = match alg {
            SigAlg::P256Sha256 => coset::iana::Algorithm::ESP256,
            _ => coset::iana::Algorithm::Ed25519,
        };
        let ck = otrp_cose::cose_key_from_public(&key.public_key())
            .to_cbor_value()
            .unwrap();
        let ccs = Value::Map(vec![(
            Value::Integer(8.into()),
            Value::Map(vec![(Value::Integer(1.into()), ck)]),
        )]);
        let kid = cose_key_thumbprint(&key.public_key(), provider()).to_vec();
        let payload = msg.to_vec().unwrap();
        let mut unprotected = HeaderBuilder::new().key_id(kid).build();
        unprotected.rest.push((Label::Int(otrp_tam::KCCS), ccs));
        let s = CoseSign1Builder::new()
            .protected(HeaderBuilder::new().algorithm(cose_alg).build())
            .unprotected(unprotected)
            .payload(payload)
            .create_signature(b"", |tbs| provider().sign(alg, key, tbs).unwrap())
            .build();
        s.to_vec().unwrap()
    }
}

/// Verifies a TAM message with the TAM's public keys.
pub fn open(tam_pub: &[PublicKey], bytes: &[u8]) -> signed::Verified {
    signed::verify(provider(), bytes, tam_pub).unwrap()
}

pub fn query_request(v: &signed::Verified) -> QueryRequest {
    match &v.message {
        TeepMessage::QueryRequest(q) => q.clone(),
        other => panic!("expected QueryRequest, got {other:?}"),
    }
}

pub fn update(v: &signed::Verified) -> Update {
    match &v.message {
        TeepMessage::Update(u) => u.clone(),
        other => panic!("expected Update, got {other:?}"),
    }
}

pub struct World {
    pub db: PathBuf,
    pub store: Arc<dyn Store>,
    pub tam: Tam,
    pub admin: Admin,
    pub keys: TamKeys,
    pub tam_pub: Vec<PublicKey>,
    pub verifier: Arc<EatVerifier>,
    pub oem: Caller,
    pub sp: Caller,
    pub sp_key: PrivateKey,
    pub component: Vec<u8>,
    pub component_id: Vec<Vec<u8>>,
    pub digest: Vec<u8>,
    pub rng: ChaCha20Rng,
}

pub fn tam_keys() -> TamKeys {
    let mut r = rng(99);
    TamKeys {
        p256: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
        ed25519: PrivateKey::generate(KeyKind::Ed25519, &mut r).unwrap(),
    }
}

pub fn verifier_for(devices: &[&Device], ttl: u64) -> EatVerifier {
    let mut v = EatVerifier::new(provider(), ttl);
    for d in devices {
        v.register_device(&d.ueid, d.tee_key.public_key());
    }
    v.set_reference(
        MODEL,
        ReferenceValues {
            measurements: vec![MEASUREMENT.to_vec()],
            hwversions: vec!["1.0".into()],
        },
    );
    v
}

pub fn signed_envelope(sp_key: &PrivateKey, id: &[Vec<u8>], seq: u64, ta: &[u8]) -> Vec<u8> {
    otrp_suit::TaManifestBuilder::new(SuitComponentId(id.to_vec()), seq)
        .image_of(ta)
        .integrated_payload("#tc", ta.to_vec())
        .build_signed(provider(), sp_key, &Default::default())
        .unwrap()
        .encode()
        .unwrap()
}

impl World {
    /// Another TAM core on the same store, verifier and keys (a replica), default config.
    pub fn replica(&self) -> Tam {
        Tam::new(
            self.store.clone(),
            self.verifier.clone(),
            self.keys.clone(),
            TamConfig::default(),
            provider(),
        )
    }

    /// A TAM with an OEM, one approved SP with SD "sd1", and one published TA deployed to
    /// every device.
    pub async fn new(devices: &[&Device], config: TamConfig, policy: Policy) -> World {
        let db = temp_db();
        let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&db).await.unwrap());
        let keys = tam_keys();
        let verifier = Arc::new(verifier_for(devices, 3600));
        let tam = Tam::new(
            store.clone(),
            verifier.clone(),
            keys.clone(),
            config,
            provider(),
        );
        let admin = Admin::new(store.clone(), provider(), policy);
        let mut r = rng(7);
        let oem_token = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut r)
            .await
            .unwrap();
        let oem = admin.authenticate(&oem_token).await.unwrap();
        let sp_token = admin
            .create_account(Some(&oem), "sp1", AccountKind::Sp, NOW, &mut r)
            .await
            .unwrap();
        admin.approve_sp(&oem, "sp1", true, NOW).await.unwrap();
        let sp = admin.authenticate(&sp_token).await.unwrap();
        admin.create_sd(&oem, "sd1", "sp1", NOW).await.unwrap();
        let sp_key = PrivateKey::generate(KeyKind::P256, &mut r).unwrap();
        let component_id = vec![b"TEEP-Device".to_vec(), b"hello-ta".to_vec()];
        let env = signed_envelope(&sp_key, &component_id, 1, TA);
        let reg = admin
            .register_manifest(&sp, "sd1", "hello", &env, &[sp_key.public_key()], NOW)
            .await
            .unwrap();
        if policy != Policy::DualControl {
            admin
                .create_deployment(
                    &sp,
                    &reg.component,
                    DeploymentAction::Install,
                    Target::All,
                    Rollout::Full,
                    NOW,
                )
                .await
                .unwrap();
        }
        let tam_pub = vec![keys.p256.public_key(), keys.ed25519.public_key()];
        World {
            db,
            store,
            tam,
            admin,
            keys,
            tam_pub,
            verifier,
            oem,
            sp,
            sp_key,
            component: reg.component,
            component_id,
            digest: Digest::sha256(TA).to_cbor().unwrap(),
            rng: rng(1234),
        }
    }

    pub async fn step(
        &mut self,
        hint: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<Outcome, otrp_tam::TamError> {
        self.tam.process(hint, body, now, &mut self.rng).await
    }

    /// Opens a session and returns the verified QueryRequest and its bytes.
    pub async fn open_session(
        &mut self,
        hint: Option<&str>,
        now: u64,
    ) -> (signed::Verified, Vec<u8>) {
        let out = self.step(hint, &[], now).await.unwrap();
        let Outcome::Reply(bytes) = out else {
            panic!("expected a QueryRequest")
        };
        (open(&self.tam_pub, &bytes), bytes)
    }
}

/// The Agent's QueryResponse to `qr` (with evidence when asked).
pub fn query_response(dev: &Device, qr: &QueryRequest) -> QueryResponse {
    let mut resp = QueryResponse::new();
    if !dev.installed.is_empty() {
        resp = resp.with_tc_list(dev.tc_list());
    }
    if let Some(t) = &qr.token {
        resp = resp.with_token(t.clone());
    }
    if let Some(c) = &qr.challenge {
        resp = resp.with_attestation(
            None,
            dev.evidence(c, &dev.ueid, &dev.agent_key.public_key()),
        );
    }
    resp
}

pub fn with_requested(resp: QueryResponse, id: &[Vec<u8>]) -> QueryResponse {
    resp.with_requested_tc_list(vec![RequestedTcInfo::new(ComponentId(id.to_vec()))])
}

/// The Agent installs everything in an Update and answers Success with SUIT reports.
pub fn success(dev: &mut Device, up: &Update) -> Vec<u8> {
    let token = up.token.clone().unwrap();
    let mut reports = Vec::new();
    for m in up.manifest_list.iter().flatten() {
        let env = otrp_suit::Envelope::decode(m).unwrap();
        let id = env.manifest().components()[0].segments().to_vec();
        let digest = Digest::sha256(env.integrated_payload("#tc").unwrap())
            .to_cbor()
            .unwrap();
        dev.installed.retain(|(i, _)| *i != id);
        dev.installed.push((id, digest));
        reports.push(
            SuitReport::for_envelope(&env, Some(token.clone()), ReportResult::Success)
                .to_cbor()
                .unwrap(),
        );
    }
    for id in up.unneeded_manifest_list.iter().flatten() {
        dev.installed.retain(|(i, _)| *i != id.0);
    }
    let mut s = Success::new().with_token(token);
    if !reports.is_empty() {
        s = s.with_suit_reports(reports);
    }
    dev.sign(&TeepMessage::Success(s), false)
}
