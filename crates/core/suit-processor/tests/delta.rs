//! Delta and compressed payloads (`otrp-delta-base` -70100, `otrp-compressed` -70101):
//! a delta applies only over its base and must produce the manifest's image; a corrupted
//! delta or a wrong base stages nothing.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_cose::SignOptions;
use otrp_crypto::{rust_crypto_provider, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_suit::{ComponentId, Digest, Envelope, ReportReason, TaManifestBuilder, Wrapped};
use otrp_suit_processor::delta::{
    delta_offer, make_delta_capable, make_delta_capable_keyed, COMPACT_FULL_KEY, DELTA_KEY,
    FULL_KEY,
};
use otrp_suit_processor::{
    AllowAll, ChangeSet, ComponentStore, MemoryStore, Processor, ProcessorConfig, Step,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn provider() -> &'static dyn CryptoProvider {
    rust_crypto_provider()
}

fn signer() -> PrivateKey {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    PrivateKey::generate(KeyKind::P256, &mut rng).unwrap()
}

fn id() -> ComponentId {
    ComponentId::new([&b"sd"[..], b"app"])
}

/// A 64 KiB code-like image (compressible), deterministic per seed.
fn image(seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    while out.len() < 64 * 1024 {
        let op = (rng.next_u32() % 12) as u8;
        out.extend_from_slice(&[0x20 + op, (rng.next_u32() % 8) as u8, 0x41, op * 3, 0x6a]);
    }
    out
}

/// `old` with ~5% of its bytes changed in two places.
fn changed(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    for b in new.iter_mut().skip(1000).take(1600) {
        *b ^= 0x5a;
    }
    for b in new.iter_mut().skip(40_000).take(1600) {
        *b = b.wrapping_add(1);
    }
    new
}

/// A signed delta-capable envelope for `new` with the given payloads integrated.
fn envelope(seq: u64, new: &[u8], bases: &[&[u8]], payloads: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
    let mut m = TaManifestBuilder::new(id(), seq)
        .image_of(new)
        .uri(FULL_KEY)
        .build_manifest()
        .unwrap();
    let bases: Vec<Digest> = bases.iter().map(|b| Digest::sha256(b)).collect();
    make_delta_capable(&mut m, &bases, true).unwrap();
    let mut env = Envelope::unsigned(Wrapped::new(m).unwrap()).unwrap();
    for (k, v) in payloads {
        env.integrated.push((k.into(), v));
    }
    env.add_signature(provider(), &signer(), &SignOptions::default())
        .unwrap();
    env.encode().unwrap()
}

fn full(img: &[u8]) -> Vec<u8> {
    otrp_delta::compress_full(img, otrp_delta::DEFAULT_CHUNK_SIZE, 9)
}

fn step(store: &MemoryStore, env: &[u8]) -> Step {
    let cfg = ProcessorConfig::default();
    let anchors: Vec<PublicKey> = vec![signer().public_key()];
    let p = Processor::new(provider(), &cfg, &anchors, &AllowAll);
    p.update(store, &ChangeSet::default(), env, None)
}

fn install(store: &mut MemoryStore, env: &[u8]) {
    match step(store, env) {
        Step::Done(a) => store.commit(a.changes).unwrap(),
        other => panic!("expected Done, got {other:?}"),
    }
}

fn refused(store: &MemoryStore, env: &[u8]) -> (ReportReason, String) {
    let before = store.clone();
    let r = match step(store, env) {
        Step::Failed(f) => (f.error.reason, f.error.detail),
        other => panic!("expected Failed, got {other:?}"),
    };
    assert_eq!(*store, before, "a refused manifest changed the store");
    r
}

#[test]
fn compressed_full_image_is_inflated_and_checked() {
    let v1 = image(1);
    let mut store = MemoryStore::new();
    let payload = full(&v1);
    assert!(payload.len() < v1.len());
    install(
        &mut store,
        &envelope(1, &v1, &[], vec![(FULL_KEY, payload)]),
    );
    assert_eq!(store.images.get(&id()).unwrap(), &v1);
}

#[test]
fn compressed_image_of_another_image_is_refused() {
    let v1 = image(1);
    let store = MemoryStore::new();
    let (reason, detail) = refused(
        &store,
        &envelope(1, &v1, &[], vec![(FULL_KEY, full(&image(2)))]),
    );
    assert_eq!(reason, ReportReason::OperationFailed, "{detail}");
}

#[test]
fn delta_applies_over_its_base_and_matches_the_manifest_image() {
    let v1 = image(1);
    let v2 = changed(&v1);
    let mut store = MemoryStore::new();
    install(
        &mut store,
        &envelope(1, &v1, &[], vec![(FULL_KEY, full(&v1))]),
    );
    let patch = otrp_delta::diff(&v1, &v2);
    assert!(patch.len() * 10 < v2.len(), "delta {} B", patch.len());
    let env = envelope(2, &v2, &[&image(9), &v1], vec![(DELTA_KEY, patch)]);
    let offer = delta_offer(&Envelope::decode(&env).unwrap());
    assert_eq!(
        offer.bases,
        vec![otrp_delta::digest(&image(9)), otrp_delta::digest(&v1)]
    );
    assert!(offer.full_compressed);
    install(&mut store, &env);
    assert_eq!(store.images.get(&id()).unwrap(), &v2);
}

#[test]
fn delta_over_another_installed_image_is_refused_and_full_image_still_installs() {
    let v1 = image(1);
    let other = image(3);
    let v2 = changed(&v1);
    let mut store = MemoryStore::new();
    install(
        &mut store,
        &envelope(1, &other, &[], vec![(FULL_KEY, full(&other))]),
    );
    let env = envelope(
        2,
        &v2,
        &[&v1],
        vec![(DELTA_KEY, otrp_delta::diff(&v1, &v2))],
    );
    refused(&store, &env);
    // The same signed manifest with the full image instead installs.
    let env = envelope(2, &v2, &[&v1], vec![(FULL_KEY, full(&v2))]);
    install(&mut store, &env);
    assert_eq!(store.images.get(&id()).unwrap(), &v2);
}

#[test]
fn corrupted_delta_stages_nothing() {
    let v1 = image(1);
    let v2 = changed(&v1);
    let mut store = MemoryStore::new();
    install(
        &mut store,
        &envelope(1, &v1, &[], vec![(FULL_KEY, full(&v1))]),
    );
    let patch = otrp_delta::diff(&v1, &v2);
    for at in [patch.len() / 2, patch.len() - 1, 3, 60] {
        let mut bad = patch.clone();
        bad[at] ^= 0x01;
        let env = envelope(2, &v2, &[&v1], vec![(DELTA_KEY, bad)]);
        refused(&store, &env);
    }
    assert_eq!(store.images.get(&id()).unwrap(), &v1);
}

#[test]
fn delta_without_an_installed_image_is_refused() {
    let v1 = image(1);
    let v2 = changed(&v1);
    let store = MemoryStore::new();
    let env = envelope(
        1,
        &v2,
        &[&v1],
        vec![(DELTA_KEY, otrp_delta::diff(&v1, &v2))],
    );
    refused(&store, &env);
}

/// [`envelope`] in the compact profile: image digest in the install sequence (before the
/// `try-each`, or with the full image's URI), no image-size, full image under `#`, no kid.
fn compact_envelope(
    seq: u64,
    new: &[u8],
    bases: &[&[u8]],
    payloads: Vec<(&str, Vec<u8>)>,
) -> Vec<u8> {
    let mut m = TaManifestBuilder::new(id(), seq)
        .image_of(new)
        .uri(COMPACT_FULL_KEY)
        .compact(true)
        .build_manifest()
        .unwrap();
    let bases: Vec<Digest> = bases.iter().map(|b| Digest::sha256(b)).collect();
    make_delta_capable_keyed(&mut m, &bases, true, COMPACT_FULL_KEY).unwrap();
    assert!(m.common.value().shared_sequence.is_none());
    let mut env = Envelope::unsigned(Wrapped::new(m).unwrap()).unwrap();
    for (k, v) in payloads {
        env.integrated.push((k.into(), v));
    }
    env.add_signature(provider(), &signer(), &otrp_suit::compact_sign_options())
        .unwrap();
    env.encode().unwrap()
}

#[test]
fn compact_delta_capable_manifest_installs_full_then_delta_and_checks_the_image() {
    let v1 = image(1);
    let v2 = changed(&v1);
    let mut store = MemoryStore::new();
    // No base: the digest is set with the full image's URI in one override.
    let first = compact_envelope(1, &v1, &[], vec![(COMPACT_FULL_KEY, full(&v1))]);
    let parsed = Envelope::decode(&first).unwrap();
    assert_eq!(
        parsed.image_digest().map(|d| d.value().clone()),
        Some(Digest::sha256(&v1))
    );
    install(&mut store, &first);
    assert_eq!(store.images.get(&id()).unwrap(), &v1);
    // With bases: the digest is set before the try-each; the delta alternative uses it.
    let patch = otrp_delta::diff(&v1, &v2);
    let env = compact_envelope(2, &v2, &[&v1], vec![(DELTA_KEY, patch.clone())]);
    let parsed = Envelope::decode(&env).unwrap();
    assert_eq!(
        parsed.image_digest().map(|d| d.value().clone()),
        Some(Digest::sha256(&v2))
    );
    let offer = delta_offer(&parsed);
    assert_eq!(offer.bases, vec![otrp_delta::digest(&v1)]);
    assert!(offer.full_compressed);
    // A patch producing another image, and a full image of another image: refused.
    let v3 = changed(&v2);
    refused(
        &store,
        &compact_envelope(
            2,
            &v2,
            &[&v1],
            vec![(DELTA_KEY, otrp_delta::diff(&v1, &v3))],
        ),
    );
    refused(
        &store,
        &compact_envelope(2, &v2, &[&v1], vec![(COMPACT_FULL_KEY, full(&v3))]),
    );
    install(&mut store, &env);
    assert_eq!(store.images.get(&id()).unwrap(), &v2);
    // The standard profile's envelope for the same update: kid, image-size, shared
    // sequence; the standard forms keep installing (the tests above).
    let standard = envelope(2, &v2, &[&v1], vec![(DELTA_KEY, patch)]);
    assert!(standard.len() > env.len());
}
