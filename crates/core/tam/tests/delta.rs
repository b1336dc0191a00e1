//! Delta updates between the TAM core (SQLite) and a real Agent: the TAM sends a delta
//! against the image the device reports, falls back to the full compressed image when
//! it cannot, and a corrupted delta changes nothing on the device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pair;

use otrp_store::{DeploymentAction, Rollout, Target};
use otrp_suit::{ComponentId, Envelope};
use otrp_suit_processor::delta::{DELTA_KEY, FULL_KEY};
use otrp_tam::delta::delta_capable_envelope;
use otrp_teep::{ErrCode, TeepMessage};
use pair::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn component() -> ComponentId {
    ComponentId::new([&b"sd-a"[..], b"app"])
}

/// A 64 KiB code-like image.
fn image(seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    while out.len() < 64 * 1024 {
        let op = (rng.next_u32() % 12) as u8;
        out.extend_from_slice(&[0x20 + op, (rng.next_u32() % 8) as u8, 0x41, op * 3, 0x6a]);
    }
    out
}

/// `old` with 5% of its bytes changed.
fn changed(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    let n = old.len() / 20;
    for b in new.iter_mut().skip(4096).take(n) {
        *b ^= 0x33;
    }
    new
}

fn envelope(w: &World, seq: u64, new: &[u8], bases: &[&[u8]]) -> Vec<u8> {
    delta_capable_envelope(
        otrp_crypto::default_provider(),
        &w.signer,
        &component(),
        seq,
        new,
        bases,
        true,
    )
    .expect("envelope")
}

/// A device with v1 installed through the TAM (full compressed image).
async fn with_v1() -> (World, Device, Vec<u8>) {
    let tam_pub = [
        tam_keys().p256.public_key(),
        tam_keys().ed25519.public_key(),
    ];
    let mut dev = Device::new(1, &tam_pub, vec![]);
    let mut w = World::new(&[&dev]).await;
    create_sd(&mut dev, b"sd-a", "sp-a", vec![w.signer.public_key()]);
    let v1 = image(1);
    let key = w.register(&envelope(&w, 1, &v1, &[])).await;
    w.admin
        .create_deployment(
            &w.sp,
            &key,
            DeploymentAction::Install,
            Target::All,
            Rollout::Full,
            NOW,
        )
        .await
        .expect("deployment");
    let msgs = exchange(&mut w, &mut dev, NOW).await;
    let up = msgs.last().expect("an Update");
    let env = Envelope::decode(&update_manifests(up)[0]).unwrap();
    assert!(env.integrated_payload(FULL_KEY).is_some());
    assert_eq!(dev.image(&component()).as_deref(), Some(&v1[..]));
    (w, dev, v1)
}

#[tokio::test]
async fn update_travels_as_a_delta_against_the_reported_image() {
    let (mut w, mut dev, v1) = with_v1().await;
    let v2 = changed(&v1);
    w.register(&envelope(&w, 2, &v2, &[&v1])).await;
    let msgs = exchange(&mut w, &mut dev, NOW + 100).await;
    let up = msgs.last().expect("an Update");
    let env = Envelope::decode(&update_manifests(up)[0]).unwrap();
    let patch = env.integrated_payload(DELTA_KEY).expect("a delta payload");
    assert!(env.integrated_payload(FULL_KEY).is_none());
    assert!(
        patch.len() * 10 < v2.len(),
        "delta of {} B for {} B",
        patch.len(),
        v2.len()
    );
    assert_eq!(dev.image(&component()).as_deref(), Some(&v2[..]));
}

#[tokio::test]
async fn full_image_when_the_reported_image_is_not_an_offered_base() {
    let (mut w, mut dev, v1) = with_v1().await;
    let v2 = changed(&v1);
    // The manifest offers deltas only against an image this device does not have.
    w.register(&envelope(&w, 2, &v2, &[&image(7)])).await;
    let msgs = exchange(&mut w, &mut dev, NOW + 100).await;
    let env = Envelope::decode(&update_manifests(msgs.last().unwrap())[0]).unwrap();
    assert!(env.integrated_payload(DELTA_KEY).is_none());
    assert!(env.integrated_payload(FULL_KEY).is_some());
    assert_eq!(dev.image(&component()).as_deref(), Some(&v2[..]));
}

#[tokio::test]
async fn full_image_when_the_tam_does_not_hold_the_base() {
    let (mut w, mut dev, v1) = with_v1().await;
    // The device's image changes behind the TAM's back (another TAM, a local install):
    // the manifest offers v1 as base, but the device reports something else.
    let other = image(9);
    let v2 = changed(&v1);
    {
        let store = dev.agent.store_mut();
        store.images.insert(component(), other.clone());
    }
    w.register(&envelope(&w, 2, &v2, &[&v1, &other])).await;
    let msgs = exchange(&mut w, &mut dev, NOW + 100).await;
    let env = Envelope::decode(&update_manifests(msgs.last().unwrap())[0]).unwrap();
    assert!(env.integrated_payload(DELTA_KEY).is_none());
    assert!(env.integrated_payload(FULL_KEY).is_some());
    assert_eq!(dev.image(&component()).as_deref(), Some(&v2[..]));
}

#[tokio::test]
async fn corrupted_delta_is_refused_with_nothing_changed() {
    let (mut w, mut dev, v1) = with_v1().await;
    let v2 = changed(&v1);
    w.register(&envelope(&w, 2, &v2, &[&v1])).await;
    // Run up to the Update, then tamper with the delta (re-signed by the TAM key, so
    // only the delta check can catch it).
    let Outcome::Reply(qr) = w.step(&[], NOW + 100).await else {
        panic!("QueryRequest expected")
    };
    let resp = dev
        .agent
        .handle(&qr, NOW + 100)
        .send
        .expect("QueryResponse");
    let Outcome::Reply(up) = w.step(&resp, NOW + 101).await else {
        panic!("Update expected")
    };
    let keys = [tam_keys().p256.public_key()];
    let TeepMessage::Update(mut update) = otrp_teep::signed::verify(agent_provider(), &up, &keys)
        .unwrap()
        .message
    else {
        panic!("Update expected")
    };
    let mut env = Envelope::decode(&update.manifest_list.as_ref().unwrap()[0]).unwrap();
    let (_, patch) = env
        .integrated
        .iter_mut()
        .find(|(k, _)| k == DELTA_KEY)
        .expect("delta payload");
    let mid = patch.len() / 2;
    patch[mid] ^= 0x40;
    update.manifest_list = Some(vec![env.encode().unwrap()]);
    let tampered = tam_sign(&TeepMessage::Update(update));
    let before = dev.agent.store().clone();
    let out = dev.agent.handle(&tampered, NOW + 102);
    match dev.open(&out.send.expect("an answer")) {
        TeepMessage::Error(e) => assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed),
        other => panic!("expected an Error, got {other:?}"),
    }
    assert_eq!(
        *dev.agent.store(),
        before,
        "the refused delta changed the store"
    );
    assert_eq!(dev.image(&component()).as_deref(), Some(&v1[..]));
}

use otrp_tam::Outcome;
