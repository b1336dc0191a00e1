//! Processor tests: the published TEEP vectors (App. E) and envelopes built with
//! `TaManifestBuilder`, against a `MemoryStore` compared before and after.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_cose::encrypt::{ContentAlg, Recipient};
use otrp_cose::SignOptions;
use otrp_crypto::{rust_crypto_provider, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_suit::{
    CborItem, ComponentId, Digest, ManifestDependency, ReportReason, ReportResult,
    TaManifestBuilder,
};
use otrp_suit_processor::{
    AllowAll, ChangeSet, ComponentStore, DeviceIdentity, DeviceKek, Holder, ManifestPolicy,
    MemoryStore, Processor, ProcessorConfig, Refusal, Step,
};
use rand_chacha::rand_core::SeedableRng;

const VENDOR: [u8; 16] = hex_literal(b"C0DDD5F15243566087DB4F5B0AA26C2F");
const CLASS: [u8; 16] = hex_literal(b"DB42F7093D8C55BAA8C5265FC5820F4E");
const TC_UUID: [u8; 16] = hex_literal(b"8D82573A926D4754935332DC29997F74");
const TA_URI: &str = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta";
const SUIT_URI: &str = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit";
const CONFIG_PLAINTEXT: &[u8] = br#"{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}"#;

const fn hex_literal(s: &[u8; 32]) -> [u8; 16] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        }
    }
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (nib(s[2 * i]) << 4) | nib(s[2 * i + 1]);
        i += 1;
    }
    out
}

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../testdata/vectors/teep/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    hex::decode(text.trim()).unwrap()
}

fn key_file(name: &str) -> String {
    let path = format!(
        "{}/../../../testdata/vectors/teep/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn provider() -> &'static dyn CryptoProvider {
    rust_crypto_provider()
}

fn signer() -> PrivateKey {
    PrivateKey::from_pem(&key_file("suit_signer_p256_private.pem")).unwrap()
}

fn anchors() -> Vec<PublicKey> {
    vec![PublicKey::from_pem(&key_file("suit_signer_p256_public.pem")).unwrap()]
}

fn kek() -> otrp_crypto::p256::SecretKey {
    let bytes = vector("keys/personalization_kek_p256.cose_key.derived.hex");
    let key = otrp_cose::cose_key_from_slice(&bytes).unwrap();
    match otrp_cose::private_from_cose_key(&key).unwrap() {
        PrivateKey::P256(sk) => sk,
        _ => panic!("KEK is P-256"),
    }
}

fn config() -> ProcessorConfig {
    ProcessorConfig {
        device: DeviceIdentity {
            vendor_id: Some(otrp_suit::VendorId::Uuid(VENDOR)),
            class_ids: vec![CLASS],
            device_id: None,
        },
        keks: vec![DeviceKek::EcdhP256(kek()), DeviceKek::Aes(vec![7u8; 16])],
        ..ProcessorConfig::default()
    }
}

fn ta_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &TC_UUID, b"ta"])
}
fn ta_manifest_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &TC_UUID, b"suit"])
}
fn config_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"config.json"])
}
fn config_manifest_id() -> ComponentId {
    ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"config.suit"])
}

/// Runs `update` to completion, serving fetches from `server`; returns the step and
/// the URIs fetched.
fn run(
    p: &mut Processor<'_>,
    store: &dyn ComponentStore,
    base: &ChangeSet,
    env: &[u8],
    server: &[(&str, Vec<u8>)],
) -> (Step, Vec<String>) {
    let mut fetched = Vec::new();
    for _ in 0..8 {
        match p.update(store, base, env, Some(b"token-1234")) {
            Step::NeedFetch { uri } => {
                let bytes = server
                    .iter()
                    .find(|(u, _)| *u == uri)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_else(|| panic!("unexpected fetch {uri}"));
                fetched.push(uri.clone());
                p.provide(uri, bytes);
            }
            other => return (other, fetched),
        }
    }
    panic!("too many fetches");
}

fn install(store: &mut MemoryStore, env: &[u8], server: &[(&str, Vec<u8>)]) -> Vec<String> {
    install_on(&config(), store, env, server)
}

fn install_on(
    cfg: &ProcessorConfig,
    store: &mut MemoryStore,
    env: &[u8],
    server: &[(&str, Vec<u8>)],
) -> Vec<String> {
    let anchors = anchors();
    let mut p = Processor::new(provider(), cfg, &anchors, &AllowAll);
    let (step, fetched) = run(&mut p, store, &ChangeSet::default(), env, server);
    match step {
        Step::Done(applied) => {
            assert_eq!(applied.report.result, ReportResult::Success);
            assert_eq!(applied.report.nonce.as_deref(), Some(&b"token-1234"[..]));
            store.commit(applied.changes).unwrap();
        }
        other => panic!("expected Done, got {other:?}"),
    }
    fetched
}

fn refused(store: &MemoryStore, env: &[u8], server: &[(&str, Vec<u8>)]) -> (ReportReason, String) {
    refused_on(&config(), store, env, server)
}

fn refused_on(
    cfg: &ProcessorConfig,
    store: &MemoryStore,
    env: &[u8],
    server: &[(&str, Vec<u8>)],
) -> (ReportReason, String) {
    let anchors = anchors();
    let mut p = Processor::new(provider(), cfg, &anchors, &AllowAll);
    let before = store.clone();
    let (step, _) = run(&mut p, store, &ChangeSet::default(), env, server);
    assert_eq!(*store, before, "a refused manifest changed the store");
    match step {
        Step::Failed(f) => {
            match &f.report.result {
                ReportResult::Failure { reason, .. } => assert_eq!(*reason, f.error.reason),
                ReportResult::Success => panic!("failure report says success"),
            }
            assert_eq!(f.report.nonce.as_deref(), Some(&b"token-1234"[..]));
            (f.error.reason, f.error.detail)
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn ta_server() -> Vec<(&'static str, Vec<u8>)> {
    vec![(
        TA_URI,
        vector("tc_8d82573a-926d-4754-9353-32dc29997f74.ta.hex"),
    )]
}

#[test]
fn vector_suit_uri_fetches_through_the_caller_and_installs() {
    let mut store = MemoryStore::new();
    let fetched = install(&mut store, &vector("suit_uri.hex"), &ta_server());
    assert_eq!(fetched, vec![TA_URI.to_string()]);
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"Hello, Secure World!");
    let rec = store.manifests.get(&ta_manifest_id()).unwrap();
    assert_eq!(rec.sequence_number, 3);
    assert_eq!(rec.holders, vec![Holder::Tam]);
    assert_eq!(store.commits, 1);
}

#[test]
fn vector_suit_uri_with_wrong_payload_stores_nothing() {
    let store = MemoryStore::new();
    let server = vec![(TA_URI, b"Hello, Evil World!!!".to_vec())];
    let (reason, _) = refused(&store, &vector("suit_uri.hex"), &server);
    assert_eq!(reason, ReportReason::ConditionFailed);
}

#[test]
fn vector_suit_integrated_installs_without_fetch() {
    let mut store = MemoryStore::new();
    let fetched = install(&mut store, &vector("suit_integrated.hex"), &[]);
    assert!(fetched.is_empty());
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"Hello, Secure World!");
}

#[test]
fn vector_d21_envelopes_install_too() {
    let mut store = MemoryStore::new();
    install(&mut store, &vector("suit_integrated_d21.hex"), &[]);
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"Hello, Secure World!");
}

#[test]
fn vector_personalization_fetches_its_dependency_then_the_ta_and_decrypts() {
    let mut store = MemoryStore::new();
    let mut server = ta_server();
    server.push((SUIT_URI, vector("suit_uri.hex")));
    let fetched = install(&mut store, &vector("suit_personalization.hex"), &server);
    assert_eq!(fetched, vec![SUIT_URI.to_string(), TA_URI.to_string()]);
    assert_eq!(store.images.get(&config_id()).unwrap(), CONFIG_PLAINTEXT);
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"Hello, Secure World!");
    let dep = store.manifests.get(&ta_manifest_id()).unwrap();
    assert_eq!(dep.holders, vec![Holder::Manifest(config_manifest_id())]);
    let root = store.manifests.get(&config_manifest_id()).unwrap();
    assert_eq!(root.dependencies, vec![ta_manifest_id()]);
}

#[test]
fn vector_personalization_uses_the_installed_dependency_without_fetching() {
    let mut store = MemoryStore::new();
    install(&mut store, &vector("suit_uri.hex"), &ta_server());
    let fetched = install(&mut store, &vector("suit_personalization.hex"), &[]);
    assert!(fetched.is_empty(), "fetched {fetched:?}");
    assert_eq!(store.images.get(&config_id()).unwrap(), CONFIG_PLAINTEXT);
    let dep = store.manifests.get(&ta_manifest_id()).unwrap();
    assert_eq!(dep.refcount(), 2);
}

#[test]
fn unlink_respects_reference_counts_and_runs_uninstall() {
    let mut store = MemoryStore::new();
    install(&mut store, &vector("suit_uri.hex"), &ta_server());
    install(&mut store, &vector("suit_personalization.hex"), &[]);
    let cfg = config();
    let anchors = anchors();
    let p = Processor::new(provider(), &cfg, &anchors, &AllowAll);
    // The TAM no longer needs the TA itself: the personalization still holds it.
    let c = p
        .unlink(
            &store,
            &ChangeSet::default(),
            &ta_manifest_id(),
            &Holder::Tam,
        )
        .unwrap();
    store.commit(c).unwrap();
    assert!(store.images.contains_key(&ta_id()));
    assert_eq!(
        store.manifests.get(&ta_manifest_id()).unwrap().refcount(),
        1
    );
    // Unlinking the personalization removes it and, transitively, the TA.
    let c = p
        .unlink(
            &store,
            &ChangeSet::default(),
            &config_manifest_id(),
            &Holder::Tam,
        )
        .unwrap();
    store.commit(c).unwrap();
    assert!(store.images.is_empty(), "{:?}", store.images.keys());
    assert!(store.manifests.is_empty());
    // The anti-rollback marks survive.
    assert_eq!(
        store
            .sequence_marks
            .get(&ta_manifest_id())
            .unwrap()
            .sequence_number,
        3
    );
    // Unlinking again is an error.
    assert!(p
        .unlink(
            &store,
            &ChangeSet::default(),
            &ta_manifest_id(),
            &Holder::Tam
        )
        .is_err());
}

#[test]
fn tampered_vector_is_refused() {
    let store = MemoryStore::new();
    let mut env = vector("suit_integrated.hex");
    // Flip a byte of the image size inside the manifest (…0e 14… → …0e 15…).
    let pos = env.windows(2).position(|w| w == [0x0e, 0x14]).unwrap();
    env[pos + 1] = 0x15;
    let (reason, detail) = refused(&store, &env, &[]);
    assert_eq!(reason, ReportReason::Unauthorised, "{detail}");
    // A flipped signature byte.
    let mut env = vector("suit_integrated.hex");
    let sig = env
        .windows(4)
        .position(|w| w == [0x6A, 0x9F, 0x4D, 0x3D])
        .unwrap();
    env[sig] ^= 1;
    assert_eq!(refused(&store, &env, &[]).0, ReportReason::Unauthorised);
    // Garbage.
    assert_eq!(
        refused(&store, &[0xa1, 0x02], &[]).0,
        ReportReason::CborParse
    );
}

#[test]
fn unknown_signer_is_refused() {
    let store = MemoryStore::new();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let rogue = PrivateKey::generate(KeyKind::P256, &mut rng).unwrap();
    let env = builder(ta_id(), 1)
        .build_signed(provider(), &rogue, &SignOptions::default())
        .unwrap();
    let (reason, _) = refused(&store, &env.encode().unwrap(), &[]);
    assert_eq!(reason, ReportReason::Unauthorised);
}

fn builder(id: ComponentId, seq: u64) -> TaManifestBuilder {
    let image = format!("image v{seq}").into_bytes();
    let mut mid = id.clone();
    if let Some(last) = mid.0.last_mut() {
        *last = b"suit".to_vec();
    }
    TaManifestBuilder::new(id, seq)
        .vendor_id(VENDOR)
        .class_id(CLASS)
        .image_of(&image)
        .integrated_payload("#tc", image)
        .manifest_component_id(mid)
        .uninstall(true)
}

fn signed(b: &TaManifestBuilder) -> Vec<u8> {
    b.build_signed(provider(), &signer(), &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn built_install_update_and_rollback_refused_for_every_earlier_number() {
    let mut store = MemoryStore::new();
    for seq in [1u64, 2, 5] {
        install(&mut store, &signed(&builder(ta_id(), seq)), &[]);
        assert_eq!(
            store.images.get(&ta_id()).unwrap(),
            format!("image v{seq}").as_bytes()
        );
    }
    for seq in [0u64, 1, 2, 3, 4] {
        let (reason, detail) = refused(&store, &signed(&builder(ta_id(), seq)), &[]);
        assert_eq!(reason, ReportReason::Unauthorised, "seq {seq}: {detail}");
        assert!(detail.contains("rollback"), "{detail}");
    }
    // Same number, other contents: refused. Same manifest again: re-applied.
    let other = builder(ta_id(), 5)
        .integrated_payload("#tc", b"image v5".to_vec())
        .reference_uri("x");
    assert_eq!(
        refused(&store, &signed(&other), &[]).0,
        ReportReason::Unauthorised
    );
    install(&mut store, &signed(&builder(ta_id(), 5)), &[]);
}

#[test]
fn rollback_refused_after_uninstall() {
    let mut store = MemoryStore::new();
    install(&mut store, &signed(&builder(ta_id(), 4)), &[]);
    let cfg = config();
    let anchors = anchors();
    let p = Processor::new(provider(), &cfg, &anchors, &AllowAll);
    let mid = ta_manifest_id();
    let c = p
        .unlink(&store, &ChangeSet::default(), &mid, &Holder::Tam)
        .unwrap();
    store.commit(c).unwrap();
    assert!(store.images.is_empty());
    assert_eq!(
        refused(&store, &signed(&builder(ta_id(), 3)), &[]).0,
        ReportReason::Unauthorised
    );
}

#[test]
fn wrong_vendor_or_class_is_refused() {
    let store = MemoryStore::new();
    let b = builder(ta_id(), 1).vendor_id([1; 16]);
    let (reason, detail) = refused(&store, &signed(&b), &[]);
    assert_eq!(reason, ReportReason::ConditionFailed);
    assert!(detail.contains("VendorIdentifier"), "{detail}");
    let b = builder(ta_id(), 1).class_id([2; 16]);
    let (reason, detail) = refused(&store, &signed(&b), &[]);
    assert_eq!(reason, ReportReason::ConditionFailed);
    assert!(detail.contains("ClassIdentifier"), "{detail}");
}

#[test]
fn digest_or_size_mismatch_stores_nothing() {
    let mut store = MemoryStore::new();
    install(&mut store, &signed(&builder(ta_id(), 1)), &[]);
    let b = builder(ta_id(), 2).image(Digest::sha256(b"something else"), 8);
    assert_eq!(
        refused(&store, &signed(&b), &[]).0,
        ReportReason::ConditionFailed
    );
    let b = builder(ta_id(), 2).image(Digest::sha256(b"image v2"), 9);
    assert_eq!(
        refused(&store, &signed(&b), &[]).0,
        ReportReason::ConditionFailed
    );
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"image v1");
}

#[test]
fn failure_report_names_section_and_command() {
    let store = MemoryStore::new();
    let b = builder(ta_id(), 1).class_id([2; 16]);
    let cfg = config();
    let anchors = anchors();
    let p = Processor::new(provider(), &cfg, &anchors, &AllowAll);
    let Step::Failed(f) = p.update(&store, &ChangeSet::default(), &signed(&b), None) else {
        panic!("expected failure");
    };
    // Shared sequence (4): override-parameters, vendor condition, class condition.
    assert_eq!(f.error.record.manifest_section, 4);
    assert_eq!(f.error.record.section_offset, 2);
    let bytes = f.report.to_cbor().unwrap();
    let back = otrp_suit::SuitReport::from_cbor(&bytes).unwrap();
    assert_eq!(back, f.report);
}

#[test]
fn encrypted_payloads_decrypt_with_each_kek_kind() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let plain = b"secret personalization".to_vec();
    let kek_public = kek().public_key();
    let aes = [7u8; 16];
    let cases: Vec<(Recipient<'_>, ContentAlg)> = vec![
        (
            Recipient::EcdhEs {
                recipient_public: &kek_public,
                kid: None,
            },
            ContentAlg::A128Gcm,
        ),
        (
            Recipient::EcdhEs {
                recipient_public: &kek_public,
                kid: None,
            },
            ContentAlg::A128Ctr,
        ),
        (
            Recipient::Aes {
                kek: &aes,
                kid: None,
            },
            ContentAlg::A128Gcm,
        ),
        (
            Recipient::Aes {
                kek: &aes,
                kid: None,
            },
            ContentAlg::A128Ctr,
        ),
    ];
    for (i, (recipient, alg)) in cases.into_iter().enumerate() {
        let id = ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", format!("c{i}").as_bytes()]);
        let b = TaManifestBuilder::new(id.clone(), 1)
            .vendor_id(VENDOR)
            .class_id(CLASS)
            .encrypt_payload(provider(), &mut rng, &plain, recipient, alg)
            .unwrap();
        let mut store = MemoryStore::new();
        install(&mut store, &signed(&b), &[]);
        assert_eq!(store.images.get(&id).unwrap(), &plain, "case {i}");
    }
    // A device without the right KEK refuses and stores nothing.
    let other = otrp_crypto::p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
    let other_pub = other.public_key();
    let b = TaManifestBuilder::new(config_id(), 1)
        .encrypt_payload(
            provider(),
            &mut rng,
            &plain,
            Recipient::EcdhEs {
                recipient_public: &other_pub,
                kid: None,
            },
            ContentAlg::A128Gcm,
        )
        .unwrap();
    let (reason, detail) = refused(&MemoryStore::new(), &signed(&b), &[]);
    assert_eq!(reason, ReportReason::OperationFailed);
    assert!(detail.contains("decryption"), "{detail}");
}

#[test]
fn built_dependency_and_personalization() {
    let mut store = MemoryStore::new();
    let ta = signed(&builder(ta_id(), 1));
    let ta_env = otrp_suit::Envelope::decode(&ta).unwrap();
    let dep = ManifestDependency {
        prefix: ta_manifest_id(),
        digest: ta_env.authentication.value().digest.value().clone(),
        size: ta.len() as u64,
        uri: "https://tam.example/ta.suit".into(),
    };
    let perso = TaManifestBuilder::new(config_id(), 1)
        .vendor_id(VENDOR)
        .class_id(CLASS)
        .image_of(b"{}")
        .integrated_payload("#cfg", b"{}".to_vec())
        .dependency(dep.clone())
        .manifest_component_id(config_manifest_id())
        .uninstall(true);
    let server = vec![("https://tam.example/ta.suit", ta.clone())];
    let fetched = install(&mut store, &signed(&perso), &server);
    assert_eq!(fetched.len(), 1);
    assert_eq!(store.images.get(&config_id()).unwrap(), b"{}");
    assert_eq!(store.images.get(&ta_id()).unwrap(), b"image v1");

    // A dependency whose digest does not match is refused.
    let mut bad = dep;
    bad.digest = Digest::sha256(b"nope");
    bad.uri = "https://tam.example/other.suit".into();
    let perso2 = TaManifestBuilder::new(config_id(), 2)
        .image_of(b"{}")
        .integrated_payload("#cfg", b"{}".to_vec())
        .dependency(bad)
        .manifest_component_id(config_manifest_id());
    let server = vec![("https://tam.example/other.suit", ta)];
    assert_eq!(
        refused(&store, &signed(&perso2), &server).0,
        ReportReason::ConditionFailed
    );
}

struct DenyPrefix(Vec<u8>);
impl ManifestPolicy for DenyPrefix {
    fn authorize(
        &self,
        manifest_id: &ComponentId,
        _: &otrp_suit::Manifest,
        _: &[otrp_suit::VerifiedBlock],
    ) -> Result<(), Refusal> {
        if manifest_id.segments().first() == Some(&self.0) {
            return Err(Refusal {
                reason: ReportReason::ComponentUnauthorised,
                detail: "denied".into(),
            });
        }
        Ok(())
    }
}

#[test]
fn policy_refusal_stops_before_any_command() {
    let store = MemoryStore::new();
    let cfg = config();
    let anchors = anchors();
    let policy = DenyPrefix(b"TEEP-Device".to_vec());
    let p = Processor::new(provider(), &cfg, &anchors, &policy);
    // suit_uri would need a fetch: the refusal comes first.
    match p.update(&store, &ChangeSet::default(), &vector("suit_uri.hex"), None) {
        Step::Failed(f) => assert_eq!(f.error.reason, ReportReason::ComponentUnauthorised),
        other => panic!("{other:?}"),
    }
}

#[test]
fn component_of_another_manifest_is_refused() {
    let mut store = MemoryStore::new();
    install(&mut store, &signed(&builder(ta_id(), 1)), &[]);
    let thief = builder(ta_id(), 9).manifest_component_id(ComponentId::new([b"other".as_slice()]));
    let (reason, _) = refused(&store, &signed(&thief), &[]);
    assert_eq!(reason, ReportReason::ComponentUnauthorised);
}

#[test]
fn records_round_trip() {
    let mut store = MemoryStore::new();
    install(&mut store, &vector("suit_uri.hex"), &ta_server());
    install(&mut store, &vector("suit_personalization.hex"), &[]);
    for rec in store.manifests.values() {
        let bytes = rec.to_cbor().unwrap();
        assert_eq!(
            &otrp_suit_processor::ManifestRecord::from_cbor(&bytes).unwrap(),
            rec
        );
    }
    assert!(otrp_suit_processor::ManifestRecord::from_cbor(&[0x80]).is_err());
}

#[test]
fn invoke_runs_the_invocation_procedure() {
    let mut store = MemoryStore::new();
    install(&mut store, &vector("suit_uri.hex"), &ta_server());
    let cfg = config();
    let anchors = anchors();
    let p = Processor::new(provider(), &cfg, &anchors, &AllowAll);
    // The vector has no invoke section: nothing to invoke, but it runs.
    assert!(p.invoke(&store, &ta_manifest_id()).unwrap().is_empty());
    assert!(p.invoke(&store, &config_manifest_id()).is_err());
}

/// The compact profile (docs/CONSTRAINED.md): no kid, no image-size for the integrated
/// payload; vendor and class conditions stay (the profile never drops a condition).
fn compact_signed(b: &TaManifestBuilder, key: &PrivateKey) -> Vec<u8> {
    b.clone()
        .compact(true)
        .build_signed(provider(), key, &otrp_suit::compact_sign_options())
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn compact_manifest_installs_and_is_refused_when_tampered_or_signed_by_another_key() {
    let b = builder(ta_id(), 1);
    let standard = signed(&b);
    let compact = compact_signed(&b, &signer());
    // No kid (35 B) and no image-size (2 B for this small image).
    assert!(
        standard.len() - compact.len() >= 37,
        "{} vs {}",
        standard.len(),
        compact.len()
    );
    let mut store = MemoryStore::new();
    assert!(install(&mut store, &compact, &[]).is_empty());
    assert_eq!(store.image(&ta_id()).unwrap(), Some(b"image v1".to_vec()));
    // Another key, no kid to reject it by: every anchor is tried and none verifies.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let rogue = PrivateKey::generate(KeyKind::P256, &mut rng).unwrap();
    let store = MemoryStore::new();
    let (reason, _) = refused(&store, &compact_signed(&builder(ta_id(), 1), &rogue), &[]);
    assert_eq!(reason, ReportReason::Unauthorised);
    // A bit flipped in the manifest or its signature.
    let env = otrp_suit::Envelope::decode(&compact).unwrap();
    let manifest_at = compact
        .windows(env.manifest.wrapped_bytes().len())
        .position(|w| w == env.manifest.wrapped_bytes())
        .unwrap();
    let sig = otrp_cose::parse_sign1(&env.authentication.value().blocks[0])
        .unwrap()
        .signature;
    let sig_at = compact
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .unwrap();
    for pos in [manifest_at + 5, manifest_at + 20, sig_at + 10] {
        let mut bad = compact.clone();
        bad[pos] ^= 0x01;
        let (reason, detail) = refused(&store, &bad, &[]);
        assert!(
            matches!(reason, ReportReason::Unauthorised | ReportReason::CborParse),
            "flip at {pos}: {reason:?} {detail}"
        );
    }
}

/// A device whose vendor is identified by `vendor` (class CLASS).
fn config_with_vendor(vendor: otrp_suit::VendorId) -> ProcessorConfig {
    let mut c = config();
    c.device.vendor_id = Some(vendor);
    c
}

/// The position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn compact_manifest_with_a_pen_vendor_installs_on_that_vendor_only() {
    let pen = otrp_suit::VendorId::pen(32473);
    let device = config_with_vendor(pen.clone());
    let image = b"image v1".to_vec();
    let b = |vendor: otrp_suit::VendorId| {
        TaManifestBuilder::new(ta_id(), 1)
            .vendor(vendor)
            .class_id(CLASS)
            .image_of(&image)
            .integrated_payload("#", image.clone())
            .manifest_component_id(ta_manifest_id())
    };
    let with_pen = compact_signed(&b(pen.clone()), &signer());
    let with_uuid = compact_signed(&b(otrp_suit::VendorId::Uuid(VENDOR)), &signer());
    // cbor-pen (d8 70 43 81 fd 59: 6 B) instead of a UUID (50 + 16 B: 17 B).
    assert_eq!(with_uuid.len() - with_pen.len(), 11);
    assert!(with_pen
        .windows(6)
        .any(|w| w == [0xd8, 0x70, 0x43, 0x81, 0xfd, 0x59]));
    // Vendor and class conditions both stay in the manifest.
    let env = otrp_suit::Envelope::decode(&with_pen).unwrap();
    let shared = env
        .manifest()
        .common
        .value()
        .shared_sequence
        .clone()
        .unwrap();
    let conditions: Vec<_> = shared
        .value()
        .commands()
        .iter()
        .filter_map(|c| match c {
            otrp_suit::Command::Condition(k, _) => Some(*k),
            _ => None,
        })
        .collect();
    assert_eq!(
        conditions,
        vec![
            otrp_suit::Condition::VendorIdentifier,
            otrp_suit::Condition::ClassIdentifier
        ]
    );
    let mut store = MemoryStore::new();
    install_on(&device, &mut store, &with_pen, &[]);
    assert_eq!(store.image(&ta_id()).unwrap(), Some(image.clone()));
    // Refused by a device of another vendor, by PEN or by UUID, and by another class.
    let empty = MemoryStore::new();
    for other in [
        config_with_vendor(otrp_suit::VendorId::pen(32474)),
        config_with_vendor(otrp_suit::VendorId::Uuid(VENDOR)),
    ] {
        let (reason, detail) = refused_on(&other, &empty, &with_pen, &[]);
        assert_eq!(reason, ReportReason::ConditionFailed);
        assert!(detail.contains("VendorIdentifier"), "{detail}");
    }
    let mut other_class = device.clone();
    other_class.device.class_ids = vec![[9; 16]];
    let (reason, detail) = refused_on(&other_class, &empty, &with_pen, &[]);
    assert_eq!(reason, ReportReason::ConditionFailed);
    assert!(detail.contains("ClassIdentifier"), "{detail}");
    // The PEN is signed: changing it (to the other vendor's number) breaks the digest.
    let mut tampered = with_pen.clone();
    let at = find(&with_pen, &[0x81, 0xfd, 0x59]);
    tampered[at + 2] = 0x5a;
    let (reason, _) = refused_on(
        &config_with_vendor(otrp_suit::VendorId::pen(32474)),
        &empty,
        &tampered,
        &[],
    );
    assert_eq!(reason, ReportReason::Unauthorised);
}

#[test]
fn compact_manifest_checks_the_digest_it_sets_in_install() {
    let image = b"image v1".to_vec();
    let b = TaManifestBuilder::new(ta_id(), 1)
        .image_of(&image)
        .integrated_payload("#", image.clone())
        .manifest_component_id(ta_manifest_id());
    let standard = signed(&b);
    let compact = compact_signed(&b, &signer());
    let env = otrp_suit::Envelope::decode(&compact).unwrap();
    // No shared sequence; install = [override {image-digest, uri "#"}, fetch, image-match].
    assert!(env.manifest().common.value().shared_sequence.is_none());
    let seq = env.install().unwrap().unwrap();
    match &seq.commands()[0] {
        otrp_suit::Command::OverrideParameters(ps) => {
            assert_eq!(ps.image_digest(), Some(&Digest::sha256(&image)));
            assert_eq!(ps.uri(), Some("#"));
            assert_eq!(ps.image_size(), None);
        }
        other => panic!("install starts with {other:?}"),
    }
    assert!(matches!(
        seq.commands().last(),
        Some(otrp_suit::Command::Condition(
            otrp_suit::Condition::ImageMatch,
            _
        ))
    ));
    assert_eq!(
        env.image_digest().map(|d| d.value()),
        Some(&Digest::sha256(&image))
    );
    // kid 35 B, image-size 2 B, shared sequence 5 B (its own framing minus the install
    // sequence's longer header).
    assert_eq!(standard.len() - compact.len(), 35 + 2 + 5);
    let mut store = MemoryStore::new();
    install(&mut store, &compact, &[]);
    assert_eq!(store.image(&ta_id()).unwrap(), Some(image.clone()));
    // Another payload of the same length (outside the signature): the digest refuses it.
    let empty = MemoryStore::new();
    let mut other = env.clone();
    other.integrated = vec![("#".into(), b"image v2".to_vec())];
    let (reason, _) = refused(&empty, &other.encode().unwrap(), &[]);
    assert_eq!(reason, ReportReason::ConditionFailed);
    // The digest itself is signed: one bit of it flipped is refused before any command.
    let digest_at = find(&compact, &Digest::sha256(&image).bytes);
    let mut bad = compact.clone();
    bad[digest_at + 7] ^= 0x01;
    let (reason, _) = refused(&empty, &bad, &[]);
    assert_eq!(reason, ReportReason::Unauthorised);
}
