//! PEM and JWK import/export, RFC 7638 thumbprints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use otrp_crypto::{jwk, rust_crypto_provider, CryptoError, KeyKind, PrivateKey, PublicKey};
use rand_chacha::rand_core::SeedableRng;

fn vector_text(rel: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn sample_keys() -> Vec<PrivateKey> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    vec![
        PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
        PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
        PrivateKey::generate(KeyKind::Rsa2048, &mut rng).unwrap(),
    ]
}

#[test]
fn published_suit_signer_pem_pair() {
    let private = PrivateKey::from_pem(&vector_text("suit/keys/signer_p256_private.pem")).unwrap();
    let public = PublicKey::from_pem(&vector_text("suit/keys/signer_p256_public.pem")).unwrap();
    assert_eq!(private.public_key(), public);
    assert_eq!(private.key_type(), "P-256");
}

#[test]
fn pem_round_trips() {
    for key in sample_keys() {
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.public_key(), key.public_key());

        let spki = key.public_key().to_spki_pem().unwrap();
        assert!(spki.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&spki).unwrap(), key.public_key());

        match &key {
            PrivateKey::P256(_) => {
                let sec1 = key.to_sec1_pem().unwrap();
                assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
                assert_eq!(
                    PrivateKey::from_pem(&sec1).unwrap().public_key(),
                    key.public_key()
                );
                assert!(key.to_pkcs1_pem().is_err());
            }
            PrivateKey::Rsa(_) => {
                let pkcs1 = key.to_pkcs1_pem().unwrap();
                assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
                assert_eq!(
                    PrivateKey::from_pem(&pkcs1).unwrap().public_key(),
                    key.public_key()
                );
                let pub1 = key.public_key().to_pkcs1_pem().unwrap();
                assert_eq!(PublicKey::from_pem(&pub1).unwrap(), key.public_key());
                assert!(key.to_sec1_pem().is_err());
            }
            PrivateKey::Ed25519(_) => assert!(key.to_sec1_pem().is_err()),
        }
    }
}

#[test]
fn pem_errors_name_the_problem() {
    let err = PrivateKey::from_pem("not pem").unwrap_err();
    assert!(matches!(err, CryptoError::Pem { .. }), "{err}");
    let spki = sample_keys()[0].public_key().to_spki_pem().unwrap();
    let err = PrivateKey::from_pem(&spki).unwrap_err();
    assert!(err.to_string().contains("PUBLIC KEY"), "{err}");
    let err = PublicKey::from_pem(&spki.replace("PUBLIC KEY", "CERTIFICATE")).unwrap_err();
    assert!(err.to_string().contains("CERTIFICATE"), "{err}");
}

#[test]
fn jwk_round_trips() {
    for key in sample_keys() {
        let public = key.public_key();
        let j = jwk::public_to_jwk(&public);
        assert_eq!(jwk::public_from_jwk(&j).unwrap(), public);
        assert!(j.get("d").is_none());
        let jp = jwk::private_to_jwk(&key);
        let back = jwk::private_from_jwk(&jp).unwrap();
        assert_eq!(back.public_key(), public);
        // a private JWK also yields the public key
        assert_eq!(jwk::public_from_jwk(&jp).unwrap(), public);
        // text form
        let parsed = jwk::parse(&jp.to_string()).unwrap();
        assert_eq!(jwk::private_from_jwk(&parsed).unwrap().public_key(), public);
    }
}

#[test]
fn jwk_rsa_without_crt_parameters() {
    let key = sample_keys().remove(2);
    let mut j = jwk::private_to_jwk(&key);
    let obj = j.as_object_mut().unwrap();
    for m in ["p", "q", "dp", "dq", "qi"] {
        obj.remove(m);
    }
    assert_eq!(
        jwk::private_from_jwk(&j).unwrap().public_key(),
        key.public_key()
    );
}

#[test]
fn jwk_errors_name_the_member() {
    let err = jwk::public_from_jwk(
        &jwk::parse(r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#).unwrap(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("P-384"), "{err}");
    let err =
        jwk::public_from_jwk(&jwk::parse(r#"{"kty":"OKP","crv":"Ed25519"}"#).unwrap()).unwrap_err();
    assert!(err.to_string().contains("\"x\""), "{err}");
    let err = jwk::public_from_jwk(&jwk::parse(r#"{"kty":"oct"}"#).unwrap()).unwrap_err();
    assert!(err.to_string().contains("oct"), "{err}");
    let err = jwk::parse("{").unwrap_err();
    assert!(matches!(err, CryptoError::Jwk { .. }));
    // d of another key
    let keys = sample_keys();
    let mut j = jwk::private_to_jwk(&keys[0]);
    let other = jwk::private_to_jwk(&PrivateKey::p256_from_scalar(&[3u8; 32]).unwrap());
    j["d"] = other["d"].clone();
    assert!(jwk::private_from_jwk(&j).is_err());
}

/// RFC 8037 §A.3: the JWK thumbprint of the RFC 8032 TEST 1 Ed25519 key.
#[test]
fn jwk_thumbprint_rfc8037() {
    let key = jwk::public_from_jwk(
        &jwk::parse(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        jwk::thumbprint_input(&key),
        r#"{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
    );
    assert_eq!(
        jwk::thumbprint_b64(&key, rust_crypto_provider()),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

/// RFC 7638 §3.1: the RSA example key.
#[test]
fn jwk_thumbprint_rfc7638() {
    let key = jwk::public_from_jwk(&jwk::parse(concat!(
        r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":""#,
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        r#""}"#
    ))
    .unwrap())
    .unwrap();
    assert_eq!(
        jwk::thumbprint_b64(&key, rust_crypto_provider()),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}
