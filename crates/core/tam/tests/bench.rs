//! Throughput figure (not a timed test; ignored by default). Run:
//! `cargo test --release -p otrp-tam --test bench -- --ignored --nocapture`
//! Set `OTRP_TEST_DATABASE_URL` to measure PostgreSQL as well.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use otrp_crypto::{KeyKind, SigAlg};
use otrp_store::{AccountKind, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_tam::{Admin, Outcome, Policy, Tam, TamConfig};
use otrp_teep::TeepMessage;

async fn run(store: Arc<dyn Store>, label: &str, n: usize) {
    let devices: Vec<Device> = (0..n as u64)
        .map(|i| Device::new(1000 + i, KeyKind::P256))
        .collect();
    let refs: Vec<&Device> = devices.iter().collect();
    let keys = tam_keys();
    let tam_pub = vec![keys.p256.public_key(), keys.ed25519.public_key()];
    let tam = Tam::new(
        store.clone(),
        Arc::new(verifier_for(&refs, 3600)),
        keys.clone(),
        TamConfig::default(),
        provider(),
    );
    let admin = Admin::new(store.clone(), provider(), Policy::OemGated);
    let mut r = rng(3);
    let oem = admin
        .create_account(None, "oem", AccountKind::Oem, NOW, &mut r)
        .await
        .unwrap();
    let oem = admin.authenticate(&oem).await.unwrap();
    let sp = admin
        .create_account(Some(&oem), "sp1", AccountKind::Sp, NOW, &mut r)
        .await
        .unwrap();
    admin.approve_sp(&oem, "sp1", true, NOW).await.unwrap();
    let sp = admin.authenticate(&sp).await.unwrap();
    admin.create_sd(&oem, "sd1", "sp1", NOW).await.unwrap();
    let sp_key = otrp_crypto::PrivateKey::generate(KeyKind::P256, &mut r).unwrap();
    let id = vec![b"bench-ta".to_vec()];
    let env = signed_envelope(&sp_key, &id, 1, TA);
    let reg = admin
        .register_manifest(&sp, "sd1", "b", &env, &[sp_key.public_key()], NOW)
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

    let mut in_tam = Duration::ZERO;
    let wall = Instant::now();
    for mut dev in devices {
        let t = Instant::now();
        let Outcome::Reply(qr) = tam.process(None, &[], NOW, &mut r).await.unwrap() else {
            panic!()
        };
        in_tam += t.elapsed();
        let qr = query_request(&open(&tam_pub, &qr));
        let body = dev.sign(
            &TeepMessage::QueryResponse(query_response(&dev, &qr)),
            false,
        );
        let t = Instant::now();
        let Outcome::Reply(up) = tam.process(None, &body, NOW + 1, &mut r).await.unwrap() else {
            panic!()
        };
        in_tam += t.elapsed();
        let succ = success(&mut dev, &update(&open(&tam_pub, &up)));
        let t = Instant::now();
        assert_eq!(
            tam.process(None, &succ, NOW + 2, &mut r).await.unwrap(),
            Outcome::Done
        );
        in_tam += t.elapsed();
    }
    let wall = wall.elapsed();

    // The TAM's signature work per exchange, measured in the same run: sign the first
    // QueryRequest (ESP256 + Ed25519), verify evidence, QueryResponse and Success (P-256),
    // sign the Update (P-256).
    let p = provider();
    let dev = Device::new(1, KeyKind::P256);
    let msg = [0x42u8; 200];
    let reps = 200;
    let t = Instant::now();
    for _ in 0..reps {
        let s1 = p.sign(SigAlg::P256Sha256, &keys.p256, &msg).unwrap();
        let s2 = p.sign(SigAlg::Ed25519, &keys.ed25519, &msg).unwrap();
        let s3 = p.sign(SigAlg::P256Sha256, &keys.p256, &msg).unwrap();
        let a = p.sign(SigAlg::P256Sha256, &dev.agent_key, &msg).unwrap();
        for _ in 0..3 {
            p.verify(SigAlg::P256Sha256, &dev.agent_key.public_key(), &msg, &a)
                .unwrap();
        }
        std::hint::black_box((s1, s2, s3));
    }
    // One agent-side signature was included per rep; remove it.
    let t_agent = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(p.sign(SigAlg::P256Sha256, &dev.agent_key, &msg).unwrap());
    }
    let agent = t_agent.elapsed();
    let sig = (t.elapsed().saturating_sub(agent)) / reps;
    let per = in_tam / n as u32;
    eprintln!(
        "[{label}] {n} full exchanges (QueryRequest, QueryResponse+EAT, Update, Success): \
         TAM time {per:?}/exchange = {:.0} exchanges/s on one task (wall incl. Agent {:?}); \
         signature work alone {sig:?}/exchange = {:.0}/s bound",
        1.0 / per.as_secs_f64(),
        wall,
        1.0 / sig.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
async fn exchanges_per_second() {
    let db = temp_db();
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&db).await.unwrap());
    run(store, "sqlite", 200).await;
    if let Ok(url) = std::env::var("OTRP_TEST_DATABASE_URL") {
        let schema = format!("otrp_bench_{}", std::process::id());
        let pg = SqlStore::connect_postgres_schema(&url, &schema)
            .await
            .unwrap();
        run(Arc::new(pg.clone()), "postgres", 200).await;
        pg.drop_schema().await.unwrap();
    } else {
        eprintln!("skipped PostgreSQL: OTRP_TEST_DATABASE_URL is not set");
    }
}
