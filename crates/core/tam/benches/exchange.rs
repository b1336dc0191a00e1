//! Criterion: the TAM core's full TEEP exchange on SQLite (empty body → QueryRequest
//! signed as COSE_Sign with ESP256 + Ed25519 → QueryResponse with EAT evidence verified
//! → Update planned from the deployment and signed → Success verified → 204), timing
//! only the TAM's `process` calls (the scripted device's signing is excluded), next to
//! its bound measured in the same run with the same provider: the TAM's signature work
//! for one exchange (two signatures of the QueryRequest, EAT and QueryResponse
//! verification, the Update's signature, the Success verification).
//! `cargo bench -p otrp-tam --bench exchange`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{fresh_dir, key, reply, runtime, tam_keys, tam_with_one_ta, Device, NOW};
use criterion::{criterion_group, criterion_main, Criterion};
use otrp_crypto::{KeyKind, SigAlg};
use otrp_tam::{EatVerifier, Outcome, Tam};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// One exchange; returns the time spent inside the TAM core.
async fn exchange(
    tam: &Tam,
    dev: &Device,
    tam_pub: &[otrp_crypto::PublicKey],
    rng: &mut ChaCha20Rng,
) -> Duration {
    let mut in_tam = Duration::ZERO;
    let t = Instant::now();
    let qr = reply(tam.process(None, &[], NOW, rng).await.unwrap());
    in_tam += t.elapsed();
    let body = dev.query_response(&qr, tam_pub);
    let t = Instant::now();
    let up = reply(tam.process(None, &body, NOW + 1, rng).await.unwrap());
    in_tam += t.elapsed();
    let succ = dev.success(&up, tam_pub);
    let t = Instant::now();
    let done = tam.process(None, &succ, NOW + 2, rng).await.unwrap();
    in_tam += t.elapsed();
    assert_eq!(done, Outcome::Done);
    in_tam
}

fn full_exchange(c: &mut Criterion) {
    let rt = runtime();
    let p = otrp_crypto::default_provider();
    let dir = fresh_dir("otrp_tam_bench");
    let (keys, tam_pub) = tam_keys();
    let dev = Device {
        ueid: vec![1; 17],
        tee: key(3, KeyKind::P256),
        chain: Vec::new(),
        agent: key(4, KeyKind::P256),
    };
    let mut v = EatVerifier::new(p, 3600);
    v.register_device(&dev.ueid, dev.tee.public_key());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let tam = rt.block_on(tam_with_one_ta(&dir, &keys, v, 16 * 1024, &mut rng));
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
