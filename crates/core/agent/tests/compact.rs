//! The compact wire profile (docs/CONSTRAINED.md): Updates without kids (TEEP and SUIT),
//! 8-byte tokens, no image-size for integrated payloads, the image digest set in the
//! install sequence (no shared sequence) and the payload under `#`. The Agent accepts it next to
//! the standard profile, and every refusal of the standard profile still holds when the
//! verifier has to pick the key itself.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use otrp_agent::{Management, TrustedTam};
use otrp_cose::SignOptions;
use otrp_crypto::{AlgIdGeneration, KeyKind, PrivateKey};
use otrp_suit::{
    CborItem, Command, ComponentId, Envelope, Parameter, ReportReason, ReportResult, SuitReport,
    TaManifestBuilder,
};
use otrp_teep::{ErrCode, TeepMessage, Update, WireProfile};

/// Two SP TAMs (both trusted, both P-256, so a kid-less message has two candidate keys)
/// with one SD each; signer A is authorized for "sp-a", signer B for "sp-b".
struct World {
    d: Device,
    tam_a: ScriptedTam,
    tam_b: ScriptedTam,
    signer_a: PrivateKey,
    signer_b: PrivateKey,
}

fn world() -> World {
    let oem = key(500, KeyKind::P256);
    let mut tam_a = ScriptedTam::new(2);
    let mut tam_b = ScriptedTam::new(3);
    let signer_a = key(600, KeyKind::P256);
    let signer_b = key(601, KeyKind::P256);
    let tams = [&tam_a, &tam_b]
        .iter()
        .map(|t| TrustedTam {
            key: t.public(),
            oem: false,
        })
        .collect();
    let mut d = device(tams, vec![oem.public_key()], Management::OemGated);
    for (tam, name, sp, signer) in [
        (&mut tam_a, b"sp-a".as_slice(), "a", &signer_a),
        (&mut tam_b, b"sp-b".as_slice(), "b", &signer_b),
    ] {
        let mut desc = descriptor(name, sp, vec![signer.public_key()]);
        desc.authorization = Some(oem_authorization(&oem, sp, &tam.public()));
        let sd = tam.sd_manifest(&desc, 1);
        let out = d.agent.handle(&tam.update(vec![sd], vec![]), 1);
        expect_success(&d, &out.send);
    }
    World {
        d,
        tam_a,
        tam_b,
        signer_a,
        signer_b,
    }
}

fn app_id(sd: &[u8]) -> ComponentId {
    ComponentId::new([sd, b"app"])
}

/// The compact profile's integrated-payload key.
const KEY: &str = "#";

/// A compact TA envelope: integrated image under `#`, no image-size, image digest in the
/// install sequence, SUIT COSE_Sign1 without kid.
fn compact_ta(sd: &[u8], seq: u64, image: &[u8], signer: &PrivateKey) -> Vec<u8> {
    TaManifestBuilder::new(app_id(sd), seq)
        .image_of(image)
        .integrated_payload(KEY, image.to_vec())
        .uninstall(true)
        .compact(true)
        .build_signed(provider(), signer, &otrp_suit::compact_sign_options())
        .unwrap()
        .encode()
        .unwrap()
}

/// A compact TEEP Update from `tam`: 8-byte token, COSE_Sign1 without kid.
fn compact_update(tam: &mut ScriptedTam, key: &PrivateKey, manifests: Vec<Vec<u8>>) -> Vec<u8> {
    tam.next_token += 1;
    let token = tam.next_token.to_be_bytes().to_vec();
    assert_eq!(token.len(), WireProfile::Compact.token_len());
    let up = Update::new().with_token(token).with_manifests(manifests);
    otrp_teep::signed::sign1_profile(
        provider(),
        key,
        &TeepMessage::Update(up),
        AlgIdGeneration::New,
        WireProfile::Compact,
    )
    .unwrap()
}

fn first_failure(e: &otrp_teep::Error) -> ReportReason {
    let r = SuitReport::from_cbor(&e.suit_reports.as_ref().unwrap()[0]).unwrap();
    match r.result {
        ReportResult::Failure { reason, .. } => reason,
        ReportResult::Success => panic!("report says success"),
    }
}

#[test]
fn a_compact_update_installs_and_carries_no_kid() {
    let mut w = world();
    let image = b"compact TA image".repeat(20);
    let env = compact_ta(b"sp-b", 1, &image, &w.signer_b);
    // The SUIT signature has no kid, the manifest no image-size and no shared sequence:
    // the install sequence sets the image digest next to the `#` URI.
    let parsed = Envelope::decode(&env).unwrap();
    let block = &parsed.authentication.value().blocks[0];
    let cose = otrp_cose::parse_sign1(block).unwrap();
    assert!(cose.unprotected.key_id.is_empty() && cose.protected.header.key_id.is_empty());
    assert!(parsed.manifest().common.value().shared_sequence.is_none());
    let install = parsed.install().unwrap().unwrap();
    let params: Vec<&Parameter> = install
        .commands()
        .iter()
        .flat_map(|c| match c {
            Command::OverrideParameters(ps) => ps.iter().collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(params
        .iter()
        .any(|p| matches!(p, Parameter::ImageDigest(_))));
    assert!(!params.iter().any(|p| matches!(p, Parameter::ImageSize(_))));
    assert!(params
        .iter()
        .any(|p| matches!(p, Parameter::Uri(u) if u == KEY)));
    // TAM B is the second of two trusted keys: the first candidate fails, the second
    // verifies.
    let key_b = w.tam_b.key.clone();
    let msg = compact_update(&mut w.tam_b, &key_b, vec![env]);
    let cose = otrp_cose::parse_sign1(&msg).unwrap();
    assert!(cose.unprotected.key_id.is_empty());
    let s = w.d.success(&msg, 2);
    assert_eq!(s.token.as_ref().map(Vec::len), Some(8));
    assert_eq!(w.d.agent.store().images.get(&app_id(b"sp-b")), Some(&image));
    // A standard-profile Update still works on the same device (both profiles).
    let next = b"compact TA image v2".repeat(20);
    let std_env = TaManifestBuilder::new(app_id(b"sp-b"), 2)
        .image_of(&next)
        .integrated_payload("#tc", next.clone())
        .uninstall(true)
        .build_signed(provider(), &w.signer_b, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap();
    let msg = w.tam_b.update(vec![std_env], vec![]);
    w.d.success(&msg, 3);
    assert_eq!(w.d.agent.store().images.get(&app_id(b"sp-b")), Some(&next));
}

#[test]
fn a_compact_update_with_any_bit_flipped_is_refused() {
    let mut w = world();
    let image = b"flip".repeat(16);
    let env = compact_ta(b"sp-a", 1, &image, &w.signer_a);
    let key_a = w.tam_a.key.clone();
    let msg = compact_update(&mut w.tam_a, &key_a, vec![env]);
    let before = w.d.agent.store().clone();
    for pos in 0..msg.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = msg.clone();
            m[pos] ^= bit;
            let out = w.d.agent.handle(&m, 2);
            match out.send.as_ref().map(|s| answer(&w.d, &Some(s.clone()))) {
                Some(TeepMessage::Error(_)) | None => {}
                Some(other) => panic!("flip at {pos} ({bit:#x}) accepted: {other:?}"),
            }
            assert_eq!(
                *w.d.agent.store(),
                before,
                "flip at {pos} changed the store"
            );
        }
    }
    // The untouched message still installs.
    w.d.success(&msg, 3);
}

#[test]
fn without_a_kid_a_wrong_key_is_refused() {
    let mut w = world();
    let before = w.d.agent.store().clone();
    let image = b"rogue".repeat(16);
    // 1. A TEEP Update signed by a key the Agent does not trust, no kid to reject early:
    //    every candidate is tried and none verifies.
    let mut rogue = ScriptedTam::new(66);
    let rogue_key = rogue.key.clone();
    let env = compact_ta(b"sp-a", 1, &image, &w.signer_a);
    let msg = compact_update(&mut rogue, &rogue_key, vec![env.clone()]);
    let e = w.d.error(&msg, 2);
    assert_eq!(e.err_code, ErrCode::BadCertificate);
    assert_eq!(*w.d.agent.store(), before);
    // An Ed25519 key claiming to be a TAM: no candidate of its algorithm at all.
    let ed = key(67, KeyKind::Ed25519);
    let msg = compact_update(&mut rogue, &ed, vec![env]);
    assert_eq!(w.d.error(&msg, 2).err_code, ErrCode::BadCertificate);
    assert_eq!(*w.d.agent.store(), before);
    // 2. A kid-less SUIT manifest by SP B's signer for SP A's SD, sent by TAM A: the
    //    signature verifies with B's key (a candidate: it is a signer of the device),
    //    but B's key is not authorized for SD "sp-a".
    let key_a = w.tam_a.key.clone();
    let cross = compact_ta(b"sp-a", 1, &image, &w.signer_b);
    let msg = compact_update(&mut w.tam_a, &key_a, vec![cross]);
    let e = w.d.error(&msg, 3);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(first_failure(&e), ReportReason::ComponentUnauthorised);
    assert_eq!(*w.d.agent.store(), before);
    // 3. A kid-less SUIT manifest by a key the device does not know at all.
    let stranger = key(68, KeyKind::P256);
    let msg = compact_update(
        &mut w.tam_a,
        &key_a,
        vec![compact_ta(b"sp-a", 1, &image, &stranger)],
    );
    let e = w.d.error(&msg, 4);
    assert_eq!(first_failure(&e), ReportReason::Unauthorised);
    assert_eq!(*w.d.agent.store(), before);
}

#[test]
fn a_compact_manifest_without_image_size_refuses_a_payload_of_another_length() {
    let mut w = world();
    let before = w.d.agent.store().clone();
    let image = b"sized by its digest".repeat(8);
    let key_a = w.tam_a.key.clone();
    for change in [-1i32, 1] {
        let mut env = Envelope::decode(&compact_ta(b"sp-a", 1, &image, &w.signer_a)).unwrap();
        // The integrated payload lies outside the signature: the TAM (or anyone on the
        // path) can change it; the image digest still pins the exact bytes and length.
        let mut payload = image.clone();
        if change < 0 {
            payload.pop();
        } else {
            payload.push(0);
        }
        env.integrated = vec![(KEY.into(), payload)];
        let msg = compact_update(&mut w.tam_a, &key_a, vec![env.encode().unwrap()]);
        let e = w.d.error(&msg, 2);
        assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
        assert_eq!(first_failure(&e), ReportReason::ConditionFailed);
        assert_eq!(*w.d.agent.store(), before);
    }
}

#[test]
fn compact_personalization_depending_on_a_compact_ta_installs() {
    let mut w = world();
    let image = b"ta for config".repeat(10);
    let ta = compact_ta(b"sp-a", 1, &image, &w.signer_a);
    let key_a = w.tam_a.key.clone();
    let msg = compact_update(&mut w.tam_a, &key_a, vec![ta.clone()]);
    w.d.success(&msg, 2);
    let ta_env = Envelope::decode(&ta).unwrap();
    let kek_pub = kek().public_key();
    let mut rng =
        <rand_chacha::ChaCha20Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(5);
    let config = ComponentId::new([&b"sp-a"[..], b"config"]);
    let build = |compact: bool, rng: &mut rand_chacha::ChaCha20Rng| {
        let opts = if compact {
            otrp_suit::compact_sign_options()
        } else {
            SignOptions::default()
        };
        TaManifestBuilder::new(config.clone(), 1)
            .dependency(otrp_suit::ManifestDependency {
                prefix: app_id(b"sp-a"),
                digest: ta_env.authentication.value().digest.value().clone(),
                size: ta.len() as u64,
                uri: "https://tam.example/ta.suit".into(),
            })
            .compact(compact)
            .encrypt_payload(
                provider(),
                rng,
                CONFIG_PLAINTEXT,
                otrp_cose::encrypt::Recipient::EcdhEs {
                    recipient_public: &kek_pub,
                    kid: None,
                },
                otrp_cose::encrypt::ContentAlg::A128Gcm,
            )
            .unwrap()
            .build_signed(provider(), &w.signer_a, &opts)
            .unwrap()
            .encode()
            .unwrap()
    };
    let standard = build(false, &mut rng);
    let compact = build(true, &mut rng);
    // kid (35 B), the shared sequence that only selects index 0 (5 B) and validate's
    // leading index 0 (2 B).
    assert_eq!(standard.len() - compact.len(), 42);
    let parsed = Envelope::decode(&compact).unwrap();
    assert!(parsed.manifest().common.value().shared_sequence.is_none());
    let msg = compact_update(&mut w.tam_a, &key_a, vec![compact]);
    w.d.success(&msg, 3);
    assert_eq!(
        w.d.agent.store().images.get(&config).map(Vec::as_slice),
        Some(CONFIG_PLAINTEXT)
    );
}
