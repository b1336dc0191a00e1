//! RFC 9679 COSE Key thumbprints against the kids published in draft-ietf-teep-protocol.

use otrp_crypto::thumbprint::{cose_key_thumbprint, cose_key_thumbprint_input};
use otrp_crypto::{rust_crypto_provider, PrivateKey, PublicKey};

/// TAM ES256 key: libteep `testfiles/key/tam_prime256v1_pub.pem`, the key whose kid the
/// TEEP draft's QueryRequest (App. D.1, COSE_Sign) names "TAM's ES256 key".
const TAM_ES256_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDpCKqPBm2x8ITgw2UsY5Ur2Z8qW9
si+eATZ6rQOrpot32hvYrE8MtJC6IQZIv3mrFk1JrTVR1x0xSydJ7kLSmg==
-----END PUBLIC KEY-----";
const TAM_ES256_KID: &str = "c770ec535d8c949586324adaf2ddffb76b1a852dfa52e19c80f7440ec163beea";

/// TAM Ed25519 key: the RFC 8032 §7.1 TEST 1 public key.
const TAM_ED25519_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const TAM_ED25519_KID: &str = "866eefbd6718c8846cd7ddfe43fc74ab1daac4538ff8514ea2ec2d410a415743";

/// Agent ES256 key = the personalization KEK of App. E Example 3 (PROVENANCE.md).
const AGENT_ES256_KID: &str = "e96788b10b1610abe478f9ce8dcfe2304c0911dd8cfeadde25ec30ccb5a7b5af";

fn kek_coordinates() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/teep/keys/personalization_kek_p256.cose_key.derived.hex"
    );
    let hex_text = std::fs::read_to_string(path).expect("read KEK");
    let bytes = hex::decode(hex_text.trim()).expect("hex");
    let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).expect("cbor");
    let map = value.as_map().expect("map");
    let get = |label: i64| {
        map.iter()
            .find(|(k, _)| k.as_integer() == Some(label.into()))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .expect("label")
    };
    (get(-2), get(-3), get(-4))
}

#[test]
fn tam_es256_kid_matches_draft() {
    let key = PublicKey::from_pem(TAM_ES256_PUBLIC_PEM).unwrap();
    let kid = cose_key_thumbprint(&key, rust_crypto_provider());
    assert_eq!(hex::encode(kid), TAM_ES256_KID);
}

#[test]
fn tam_ed25519_kid_matches_draft() {
    let key = PublicKey::ed25519_from_bytes(&hex::decode(TAM_ED25519_PUBLIC).unwrap()).unwrap();
    // RFC 9679 input for an OKP key: {1: 1, -1: 6, -2: x}
    assert_eq!(
        hex::encode(cose_key_thumbprint_input(&key)),
        format!("a301012006215820{TAM_ED25519_PUBLIC}")
    );
    let kid = cose_key_thumbprint(&key, rust_crypto_provider());
    assert_eq!(hex::encode(kid), TAM_ED25519_KID);
}

#[test]
fn agent_es256_kid_is_personalization_kek_thumbprint() {
    let (x, y, d) = kek_coordinates();
    let public = PublicKey::p256_from_coordinates(&x, &y).unwrap();
    let kid = cose_key_thumbprint(&public, rust_crypto_provider());
    assert_eq!(hex::encode(kid), AGENT_ES256_KID);
    // the private scalar belongs to the same key
    let private = PrivateKey::p256_from_scalar(&d).unwrap();
    assert_eq!(private.public_key(), public);
}

#[cfg(feature = "ring")]
#[test]
fn thumbprint_is_provider_independent() {
    let key = PublicKey::from_pem(TAM_ES256_PUBLIC_PEM).unwrap();
    let ring = otrp_crypto::RingProvider;
    assert_eq!(hex::encode(cose_key_thumbprint(&key, &ring)), TAM_ES256_KID);
}
