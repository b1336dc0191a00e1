//! Criterion: SUIT processing of an install (a signed TA manifest with an integrated
//! 16 KiB image: decode, signature, conditions, digest and size checks, staged changes)
//! next to its bound, the one ESP256 verification of the manifest's signature, measured
//! in the same run. `cargo bench -p otrp-suit-processor --bench install`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use otrp_cose::SignOptions;
use otrp_crypto::{KeyKind, PrivateKey};
use otrp_suit::{ComponentId, Envelope, TaManifestBuilder};
use otrp_suit_processor::{AllowAll, ChangeSet, MemoryStore, Processor, ProcessorConfig, Step};
use rand_chacha::rand_core::SeedableRng;

fn install(c: &mut Criterion) {
    let p = otrp_crypto::rust_crypto_provider();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let signer = PrivateKey::generate(KeyKind::P256, &mut rng).unwrap();
    let image = vec![0x5a; 16 * 1024];
    let id = ComponentId::new([&b"sd"[..], b"app"]);
    let env = TaManifestBuilder::new(id, 1)
        .image_of(&image)
        .integrated_payload("#tc", image.clone())
        .build_signed(p, &signer, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap();
    let anchors = [signer.public_key()];
    let config = ProcessorConfig::default();
    let store = MemoryStore::new();
    let base = ChangeSet::default();
    let processor = Processor::new(p, &config, &anchors, &AllowAll);
    assert!(matches!(
        processor.update(&store, &base, &env, None),
        Step::Done(_)
    ));
    let mut g = c.benchmark_group("suit_processor");
    g.bench_function("install/16KiB", |b| {
        b.iter(
            || match processor.update(&store, &base, black_box(&env), None) {
                Step::Done(a) => a,
                _ => panic!("install failed"),
            },
        )
    });
    let parsed = Envelope::decode(&env).unwrap();
    g.bench_function("bound/verify-signature", |b| {
        b.iter(|| black_box(&parsed).verify(p, &anchors).unwrap())
    });
    g.finish();
}

criterion_group!(benches, install);
criterion_main!(benches);
