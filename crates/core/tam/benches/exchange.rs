//! Criterion: the TAM core's full TEEP exchange on SQLite (empty body → QueryRequest
//! signed as COSE_Sign with ESP256 + Ed25519 → QueryResponse with EAT evidence verified
//! → Update planned from the deployment and signed → Success verified → 204), timing
//! only the TAM's `process` calls (the scripted device's signing is excluded), next to
//! its bound measured in the same run with the same provider: the TAM's signature work
//! for one exchange (two signatures of the QueryRequest, EAT and QueryResponse
//! verification, the Update's signature, the Success verification).
//! `cargo bench -p otrp-tam --bench exchange`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, SigAlg};
use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
use otrp_store::{AccountKind, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_suit::{CborItem, ComponentId as SuitId, ReportResult, SuitReport};
use otrp_tam::{Admin, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys};
use otrp_teep::{QueryResponse, Success, TeepMessage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_800_000_000;

fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    PrivateKey::generate(kind, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

struct Device {
    ueid: Vec<u8>,
    tee: PrivateKey,
    agent: PrivateKey,
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
            .with_hwmodel(b"bench".to_vec())
            .with_hwversion("1.0", None)
            .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
            .with_measurements(vec![ContentFormat {
                content_type: 0,
                content: ciborium::value::Value::Bytes(vec![0x5a; 32]),
            }])
            .with_cnf(cnf);
        otrp_eat::signed::sign(p, &self.tee, &claims, &Default::default()).unwrap()
    }
}

fn reply(o: Outcome) -> Vec<u8> {
    match o {
        Outcome::Reply(b) => b,
        Outcome::Done => panic!("unexpected 204"),
    }
}

/// One exchange; returns the time spent inside the TAM core.
async fn exchange(
    tam: &Tam,
    dev: &Device,
    tam_pub: &[otrp_crypto::PublicKey],
    rng: &mut ChaCha20Rng,
) -> Duration {
    let p = otrp_crypto::default_provider();
    let mut in_tam = Duration::ZERO;
    let t = Instant::now();
    let qr = reply(tam.process(None, &[], NOW, rng).await.unwrap());
    in_tam += t.elapsed();
    let TeepMessage::QueryRequest(qr) = otrp_teep::signed::verify(p, &qr, tam_pub).unwrap().message
    else {
        panic!("QueryRequest expected")
    };
    let resp = QueryResponse::new()
        .with_token(qr.token.clone().unwrap())
        .with_attestation(None, dev.evidence(p, qr.challenge.as_deref().unwrap()));
    let body = dev.sign(p, &TeepMessage::QueryResponse(resp));
    let t = Instant::now();
    let up = reply(tam.process(None, &body, NOW + 1, rng).await.unwrap());
    in_tam += t.elapsed();
    let TeepMessage::Update(up) = otrp_teep::signed::verify(p, &up, tam_pub).unwrap().message
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
    let succ = dev.sign(
        p,
        &TeepMessage::Success(Success::new().with_token(token).with_suit_reports(reports)),
    );
    let t = Instant::now();
    let done = tam.process(None, &succ, NOW + 2, rng).await.unwrap();
    in_tam += t.elapsed();
    assert_eq!(done, Outcome::Done);
    in_tam
}

fn full_exchange(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let p = otrp_crypto::default_provider();
    let dir = std::env::temp_dir().join(format!("otrp_tam_bench_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = TamKeys {
        p256: key(1, KeyKind::P256),
        ed25519: key(2, KeyKind::Ed25519),
    };
    let tam_pub = [keys.p256.public_key(), keys.ed25519.public_key()];
    let dev = Device {
        ueid: vec![1; 17],
        tee: key(3, KeyKind::P256),
        agent: key(4, KeyKind::P256),
    };
    let (tam, mut rng) = rt.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::open_sqlite(&dir.join("tam.db")).await.unwrap());
        let mut v = EatVerifier::new(p, 3600);
        v.register_device(&dev.ueid, dev.tee.public_key());
        v.set_reference(
            "bench",
            ReferenceValues {
                measurements: vec![vec![0x5a; 32]],
                hwversions: vec!["1.0".into()],
            },
        );
        let tam = Tam::new(
            store.clone(),
            Arc::new(v),
            keys.clone(),
            TamConfig::default(),
            p,
        );
        let admin = Admin::new(store, p, Policy::OemGated);
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let oem = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut rng)
            .await
            .unwrap();
        let oem = admin.authenticate(&oem).await.unwrap();
        let sp = admin
            .create_account(Some(&oem), "sp", AccountKind::Sp, NOW, &mut rng)
            .await
            .unwrap();
        admin.approve_sp(&oem, "sp", true, NOW).await.unwrap();
        let sp = admin.authenticate(&sp).await.unwrap();
        admin.create_sd(&oem, "sd", "sp", NOW).await.unwrap();
        let signer = key(6, KeyKind::P256);
        let ta = vec![0x5a; 16 * 1024];
        let env =
            otrp_suit::TaManifestBuilder::new(SuitId(vec![b"sd".to_vec(), b"app".to_vec()]), 1)
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
        (tam, rng)
    });
    let mut g = c.benchmark_group("tam");
    g.bench_function("exchange/sqlite/tam-time", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    total += exchange(&tam, &dev, &tam_pub, &mut rng).await;
                }
                total
            })
        })
    });
    // The bound: the TAM's signature operations of one exchange, same provider.
    let msg = vec![0x5a; 200];
    let agent_sig = p.sign(SigAlg::P256Sha256, &dev.agent, &msg).unwrap();
    let tee_sig = p.sign(SigAlg::P256Sha256, &dev.tee, &msg).unwrap();
    let (agent_pub, tee_pub) = (dev.agent.public_key(), dev.tee.public_key());
    g.bench_function("bound/2xESP256-sign+Ed25519-sign+3xESP256-verify", |b| {
        b.iter(|| {
            p.sign(SigAlg::P256Sha256, &keys.p256, &msg).unwrap();
            p.sign(SigAlg::Ed25519, &keys.ed25519, &msg).unwrap();
            p.sign(SigAlg::P256Sha256, &keys.p256, &msg).unwrap();
            p.verify(SigAlg::P256Sha256, &tee_pub, &msg, &tee_sig)
                .unwrap();
            p.verify(SigAlg::P256Sha256, &agent_pub, &msg, &agent_sig)
                .unwrap();
            p.verify(SigAlg::P256Sha256, &agent_pub, &msg, &agent_sig)
                .unwrap();
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, full_exchange);
criterion_main!(benches);
