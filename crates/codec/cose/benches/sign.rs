//! Criterion: COSE_Sign1 sign and verify (attached 256-byte payload, kid = thumbprint
//! computed once) with ESP256 and Ed25519, on both providers (RustCrypto, ring).
//! `cargo bench -p otrp-cose --bench sign`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use otrp_cose::{sign1, verify_sign1, KidMode, SignOptions};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey};
use rand_chacha::rand_core::SeedableRng;

fn sign_verify(c: &mut Criterion) {
    let providers: [(&str, &'static dyn CryptoProvider); 2] = [
        ("rustcrypto", otrp_crypto::rust_crypto_provider()),
        ("ring", otrp_crypto::default_provider()),
    ];
    let payload = vec![0x5a; 256];
    let mut g = c.benchmark_group("cose_sign1");
    for (kind, alg) in [(KeyKind::P256, "ESP256"), (KeyKind::Ed25519, "Ed25519")] {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = PrivateKey::generate(kind, &mut rng).unwrap();
        let public = key.public_key();
        for (pname, p) in providers {
            let opts = SignOptions {
                kid: KidMode::Explicit(cose_key_thumbprint(&public, p).to_vec()),
                ..SignOptions::default()
            };
            let msg = sign1(p, &key, &payload, false, &opts).unwrap();
            g.bench_function(format!("sign/{alg}/{pname}"), |b| {
                b.iter(|| sign1(p, &key, black_box(&payload), false, &opts).unwrap())
            });
            let keys = [public.clone()];
            g.bench_function(format!("verify/{alg}/{pname}"), |b| {
                b.iter(|| verify_sign1(p, black_box(&msg), None, &keys).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, sign_verify);
criterion_main!(benches);
