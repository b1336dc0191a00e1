//! Setup both TAM benches share: the TAM's keys, the scripted device (its QueryResponse
//! with EAT evidence and its Success), and a TAM core on SQLite with one TA deployed to
//! every device.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ciborium::value::Value;
use coset::{CborSerializable, Label};
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
use otrp_store::{AccountKind, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_suit::{CborItem, ComponentId as SuitId, ReportResult, SuitReport};
use otrp_tam::{
    Admin, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys, X5CHAIN,
};
use otrp_teep::{QueryResponse, Success, TeepMessage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub const NOW: u64 = 1_800_000_000;
/// The devices' model (EAT `hwmodel`), with reference values in the verifier.
pub const MODEL: &str = "bench";

/// A deterministic key from `seed`.
pub fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    PrivateKey::generate(kind, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

/// The TAM's signing keys and their public halves.
pub fn tam_keys() -> (TamKeys, [PublicKey; 2]) {
    let keys = TamKeys {
        p256: key(1, KeyKind::P256),
        ed25519: key(2, KeyKind::Ed25519),
    };
    let public = [keys.p256.public_key(), keys.ed25519.public_key()];
    (keys, public)
}

/// A single-threaded tokio runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An empty directory `<temp>/<prefix>_<pid>` for the SQLite file.
pub fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The body of a TAM reply (a 204 is a failure here).
pub fn reply(o: Outcome) -> Vec<u8> {
    match o {
        Outcome::Reply(b) => b,
        Outcome::Done => panic!("unexpected 204"),
    }
}

/// A scripted TEEP device.
pub struct Device {
    pub ueid: Vec<u8>,
    pub tee: PrivateKey,
    /// The TEE certificate chain put in the evidence's `x5chain`; empty for none.
    pub chain: Vec<Vec<u8>>,
    pub agent: PrivateKey,
}

impl Device {
    fn sign(&self, p: &dyn CryptoProvider, m: &TeepMessage) -> Vec<u8> {
        otrp_teep::signed::sign1(p, &self.agent, m, Default::default()).unwrap()
    }

    fn evidence(&self, p: &dyn CryptoProvider, nonce: &[u8]) -> Vec<u8> {
        let cnf =
            Confirmation::from_cose_key(otrp_cose::cose_key_from_public(&self.agent.public_key()))
                .unwrap();
        let claims = EatClaims::new()
            .with_nonce(nonce.to_vec())
            .with_ueid(self.ueid.clone())
            .with_oemid(OemId::Random([7; 16]))
            .with_hwmodel(MODEL.as_bytes().to_vec())
            .with_hwversion("1.0", None)
            .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
            .with_measurements(vec![ContentFormat {
                content_type: 0,
                content: Value::Bytes(vec![0x5a; 32]),
            }])
            .with_cnf(cnf);
        let signed = otrp_eat::signed::sign(p, &self.tee, &claims, &Default::default()).unwrap();
        if self.chain.is_empty() {
            return signed;
        }
        let mut msg = otrp_cose::parse_sign1(&signed).unwrap();
        msg.unprotected.rest.push((
            Label::Int(X5CHAIN),
            Value::Array(self.chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
        ));
        msg.to_vec().unwrap()
    }

    /// The signed QueryResponse (with evidence) to the TAM's QueryRequest `qr`.
    pub fn query_response(&self, qr: &[u8], tam_pub: &[PublicKey]) -> Vec<u8> {
        let p = otrp_crypto::default_provider();
        let TeepMessage::QueryRequest(qr) =
            otrp_teep::signed::verify(p, qr, tam_pub).unwrap().message
        else {
            panic!("QueryRequest expected")
        };
        let resp = QueryResponse::new()
            .with_token(qr.token.clone().unwrap())
            .with_attestation(None, self.evidence(p, qr.challenge.as_deref().unwrap()));
        self.sign(p, &TeepMessage::QueryResponse(resp))
    }

    /// The signed Success (with a SUIT report) to the TAM's Update `up` of one TA.
    pub fn success(&self, up: &[u8], tam_pub: &[PublicKey]) -> Vec<u8> {
        let p = otrp_crypto::default_provider();
        let TeepMessage::Update(up) = otrp_teep::signed::verify(p, up, tam_pub).unwrap().message
        else {
            panic!("Update expected")
        };
        let token = up.token.clone().unwrap();
        let reports: Vec<Vec<u8>> = up
            .manifest_list
            .iter()
            .flatten()
            .map(|m| {
                let env = otrp_suit::Envelope::decode(m).unwrap();
                SuitReport::for_envelope(&env, Some(token.clone()), ReportResult::Success)
                    .to_cbor()
                    .unwrap()
            })
            .collect();
        assert_eq!(reports.len(), 1, "one TA per Update");
        self.sign(
            p,
            &TeepMessage::Success(Success::new().with_token(token).with_suit_reports(reports)),
        )
    }
}

/// A TAM core on a new SQLite store in `dir`, verifying with `verifier` (given the
/// reference values of [`MODEL`]), with an OEM, an approved SP, an SD and a `ta_len`-byte
/// TA registered and deployed (install, full rollout) to every device.
pub async fn tam_with_one_ta(
    dir: &Path,
    keys: &TamKeys,
    mut verifier: EatVerifier,
    ta_len: usize,
    rng: &mut ChaCha20Rng,
) -> Tam {
    let p = otrp_crypto::default_provider();
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&dir.join("tam.db")).await.unwrap());
    verifier.set_reference(
        MODEL,
        ReferenceValues {
            measurements: vec![vec![0x5a; 32]],
            hwversions: vec!["1.0".into()],
        },
    );
    let tam = Tam::new(
        store.clone(),
        Arc::new(verifier),
        keys.clone(),
        TamConfig::default(),
        p,
    );
    let admin = Admin::new(store, p, Policy::OemGated);
    let oem = admin
        .create_account(None, "oem", AccountKind::Oem, NOW, rng)
        .await
        .unwrap();
    let oem = admin.authenticate(&oem).await.unwrap();
    let sp = admin
        .create_account(Some(&oem), "sp", AccountKind::Sp, NOW, rng)
        .await
        .unwrap();
    admin.approve_sp(&oem, "sp", true, NOW).await.unwrap();
    let sp = admin.authenticate(&sp).await.unwrap();
    admin.create_sd(&oem, "sd", "sp", NOW).await.unwrap();
    let signer = key(6, KeyKind::P256);
    let ta = vec![0x5a; ta_len];
    let env = otrp_suit::TaManifestBuilder::new(SuitId(vec![b"sd".to_vec(), b"app".to_vec()]), 1)
        .image_of(&ta)
        .integrated_payload("#tc", ta.clone())
        .build_signed(p, &signer, &Default::default())
        .unwrap()
        .encode()
        .unwrap();
    let reg = admin
        .register_manifest(&sp, "sd", "app", &env, &[signer.public_key()], NOW)
        .await
        .unwrap();
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
    tam
}
