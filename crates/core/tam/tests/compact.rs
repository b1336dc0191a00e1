//! The compact wire profile chosen per device model (`TamConfig::compact`): the Update
//! carries no kid and an 8-byte token, verifies with the TAM's keys alone, and the
//! session completes; other models keep the standard profile.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use otrp_crypto::KeyKind;
use otrp_tam::{CompactPolicy, Outcome, Policy, TamConfig, WireProfile};
use otrp_teep::TeepMessage;

/// One session up to the Update; returns its bytes after checking Success closes it.
async fn update_bytes(config: TamConfig, seed: u64) -> Vec<u8> {
    let mut dev = Device::new(seed, KeyKind::P256);
    let mut w = World::new(&[&dev], config, Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let Outcome::Reply(up_bytes) = w.step(None, &body, NOW + 1).await.unwrap() else {
        panic!("expected an Update")
    };
    let up = update(&open(&w.tam_pub, &up_bytes));
    let succ = success(&mut dev, &up);
    assert_eq!(w.step(None, &succ, NOW + 2).await.unwrap(), Outcome::Done);
    assert_eq!(dev.installed.len(), 1);
    up_bytes
}

fn kid_and_token(bytes: &[u8], tam_pub: &[otrp_crypto::PublicKey]) -> (bool, usize) {
    let cose = otrp_cose::parse_sign1(bytes).unwrap();
    let has_kid = !cose.unprotected.key_id.is_empty() || !cose.protected.header.key_id.is_empty();
    let up = update(&open(tam_pub, bytes));
    (has_kid, up.token.map_or(0, |t| t.len()))
}

#[tokio::test]
async fn compact_models_get_kidless_updates_with_short_tokens() {
    let keys = tam_keys();
    let tam_pub = vec![keys.p256.public_key(), keys.ed25519.public_key()];
    let compact = TamConfig {
        compact: CompactPolicy {
            all: false,
            models: vec![MODEL.into()],
        },
        ..TamConfig::default()
    };
    let c = update_bytes(compact, 31).await;
    assert_eq!(kid_and_token(&c, &tam_pub), (false, 8));
    let other_model = TamConfig {
        compact: CompactPolicy {
            all: false,
            models: vec!["gateway".into()],
        },
        ..TamConfig::default()
    };
    let s = update_bytes(other_model, 32).await;
    assert_eq!(kid_and_token(&s, &tam_pub), (true, 16));
    // Same manifest: the compact Update is 35 (kid) + 8 (token) bytes shorter.
    assert_eq!(s.len() - c.len(), 43);
    assert_eq!(
        CompactPolicy {
            all: true,
            models: vec![]
        }
        .profile_for("anything"),
        WireProfile::Compact
    );
    assert_eq!(
        CompactPolicy::default().profile_for(MODEL),
        WireProfile::Standard
    );
}
