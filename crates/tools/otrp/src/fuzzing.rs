//! Fuzz target bodies, shared by the `cargo fuzz` targets in `fuzz/` (long runs by hand)
//! and the smoke test that CI runs (`tests/fuzz_smoke.rs`). Each takes arbitrary bytes and
//! must return without panicking, whatever they are.

use crate::inspect::{cbor, typed, view};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name and body.
pub const TARGETS: &[(&str, Target)] = &[
    ("teep_decode", teep_decode),
    ("teep_verify", teep_verify),
    ("suit_decode", suit_decode),
    ("suit_verify", suit_verify),
    ("eat_decode", eat_decode),
    ("cose_decode", cose_decode),
    ("otrp_json_decode", otrp_json_decode),
    ("inspect", inspect),
];

/// TEEP message decoding and re-encoding.
pub fn teep_decode(data: &[u8]) {
    if let Ok(msg) = otrp_teep::decode_any(data) {
        let _ = msg.to_vec();
    }
}

fn test_key() -> otrp_crypto::PublicKey {
    // The SUIT examples' published key: any fixed key does for the decoder paths.
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhJaBGq4LqqvSYVcYnuzaJr6qi/Eb\n\
        bz/m4rVlnIXbwK07HypLbAmBMcCjbazR14vTgdzfsJwFLbM5kdtzOLSolg==\n\
        -----END PUBLIC KEY-----\n";
    match otrp_crypto::PublicKey::from_pem(PEM) {
        Ok(k) => k,
        Err(e) => unreachable!("the embedded test key parses: {e}"),
    }
}

/// Signed TEEP message verification (COSE_Sign1 / COSE_Sign), as an Agent or TAM runs it.
pub fn teep_verify(data: &[u8]) {
    let _ = otrp_teep::signed::verify(otrp_crypto::rust_crypto_provider(), data, &[test_key()]);
}

/// SUIT envelope decoding, re-encoding and integrity checks.
pub fn suit_decode(data: &[u8]) {
    if let Ok(env) = otrp_suit::Envelope::decode(data) {
        let _ = env.encode();
        let _ = env.check_integrity();
    }
}

/// SUIT authentication verification.
pub fn suit_verify(data: &[u8]) {
    if let Ok(env) = otrp_suit::Envelope::decode(data) {
        let _ = env.verify(otrp_crypto::rust_crypto_provider(), &[test_key()]);
    }
}

/// EAT claims decoding and the signed-EAT path.
pub fn eat_decode(data: &[u8]) {
    if let Ok(c) = otrp_eat::EatClaims::decode(data) {
        let _ = c.to_vec();
        let _ = c.check_teep_profile();
    }
    let _ = otrp_eat::signed::verify(otrp_crypto::rust_crypto_provider(), data, &[test_key()]);
}

/// COSE classification and parsing of every structure kind.
pub fn cose_decode(data: &[u8]) {
    let _ = otrp_cose::peek(data);
    let _ = otrp_cose::parse_mac0(data);
    let _ = otrp_cose::cose_key_from_slice(data);
    let _ = otrp_cose::encrypt::parse_encryption_info(data);
}

/// OTrP JSON decoding and re-encoding.
pub fn otrp_json_decode(data: &[u8]) {
    if let Ok(msg) = otrp_json::decode_any(data) {
        let _ = otrp_json::encode(&msg);
    }
}

/// The whole of `otrp inspect`: recognition, view, round trip, verification.
pub fn inspect(data: &[u8]) {
    let _ = typed::recognise(data);
    if let Ok(v) = cbor::parse(data) {
        let tree = view::build_root(&v);
        let _ = view::to_edn(&tree);
        let _ = view::to_json(&tree);
    }
    let _ = typed::roundtrip(data);
    let keys = [crate::inspect::keys::VerifyKey::Public(test_key())];
    let _ = typed::verify(otrp_crypto::rust_crypto_provider(), data, &keys);
}
