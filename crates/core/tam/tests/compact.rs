//! The compact wire profile chosen per device model (`TamConfig::compact`): the Update
//! carries no kid and an 8-byte token, verifies with the TAM's keys alone, and the
//! session completes; other models keep the standard profile.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use otrp_crypto::KeyKind;
use otrp_tam::{CompactPolicy, Outcome, Policy, TamConfig, Transport, WireProfile};
use otrp_teep::TeepMessage;

/// One session up to the Update; returns its bytes after checking Success closes it.
async fn update_bytes(config: TamConfig, seed: u64) -> Vec<u8> {
    update_bytes_over(config, seed, None).await
}

/// [`update_bytes`] with every message of the session arriving over `transport` (None:
/// `Tam::process`, which does not say).
async fn update_bytes_over(config: TamConfig, seed: u64, transport: Option<Transport>) -> Vec<u8> {
    let mut dev = Device::new(seed, KeyKind::P256);
    let mut w = World::new(&[&dev], config, Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let out = match transport {
        Some(t) => w
            .tam
            .process_over(t, None, &body, NOW + 1, &mut w.rng)
            .await
            .unwrap(),
        None => w.step(None, &body, NOW + 1).await.unwrap(),
    };
    let Outcome::Reply(up_bytes) = out else {
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
            transports: vec![],
        },
        ..TamConfig::default()
    };
    let c = update_bytes(compact, 31).await;
    assert_eq!(kid_and_token(&c, &tam_pub), (false, 8));
    let other_model = TamConfig {
        compact: CompactPolicy {
            all: false,
            models: vec!["gateway".into()],
            transports: vec![],
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
            models: vec![],
            transports: vec![],
        }
        .profile_for("anything"),
        WireProfile::Compact
    );
    assert_eq!(
        CompactPolicy::default().profile_for(MODEL),
        WireProfile::Standard
    );
}

#[tokio::test]
async fn compact_transports_get_kidless_updates_whatever_the_model() {
    let keys = tam_keys();
    let tam_pub = vec![keys.p256.public_key(), keys.ed25519.public_key()];
    let coap_only = || TamConfig {
        compact: CompactPolicy {
            transports: vec![Transport::Coap],
            ..CompactPolicy::default()
        },
        ..TamConfig::default()
    };
    // The device's model is listed nowhere: the transport alone decides.
    let over_coap = update_bytes_over(coap_only(), 41, Some(Transport::Coap)).await;
    assert_eq!(kid_and_token(&over_coap, &tam_pub), (false, 8));
    let over_http = update_bytes_over(coap_only(), 42, Some(Transport::Http)).await;
    assert_eq!(kid_and_token(&over_http, &tam_pub), (true, 16));
    // A shell that does not name the transport gets the model rules only.
    let unnamed = update_bytes_over(coap_only(), 43, None).await;
    assert_eq!(kid_and_token(&unnamed, &tam_pub), (true, 16));
    assert_eq!(over_http.len() - over_coap.len(), 43);
    let p = coap_only().compact;
    assert_eq!(p.profile("x", Some(Transport::Coap)), WireProfile::Compact);
    assert_eq!(p.profile("x", Some(Transport::Http)), WireProfile::Standard);
    assert_eq!(p.profile_for("x"), WireProfile::Standard);
}
