//! Cross-check against josekit (OpenSSL): what we sign and encrypt, josekit verifies
//! and decrypts; what josekit signs and encrypts, we verify and decrypt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{keys, provider, rng};
use josekit::jwe::{JweHeader, JweHeaderSet};
use josekit::jws::JwsHeaderSet;
use otrp_crypto::PrivateKey;
use otrp_json::jose::{self, RecipientKey};
use otrp_json::*;

fn pkcs8(k: &PrivateKey) -> String {
    k.to_pkcs8_pem().unwrap()
}

fn spki(k: &PrivateKey) -> String {
    k.public_key().to_spki_pem().unwrap()
}

fn jws_verifier(k: &PrivateKey) -> Box<dyn josekit::jws::JwsVerifier> {
    match k {
        PrivateKey::P256(_) => Box::new(josekit::jws::ES256.verifier_from_pem(spki(k)).unwrap()),
        PrivateKey::Rsa(_) => Box::new(josekit::jws::RS256.verifier_from_pem(spki(k)).unwrap()),
        PrivateKey::Ed25519(_) => unreachable!(),
    }
}

fn jws_signer(k: &PrivateKey) -> Box<dyn josekit::jws::JwsSigner> {
    match k {
        PrivateKey::P256(_) => Box::new(josekit::jws::ES256.signer_from_pem(pkcs8(k)).unwrap()),
        PrivateKey::Rsa(_) => Box::new(josekit::jws::RS256.signer_from_pem(pkcs8(k)).unwrap()),
        PrivateKey::Ed25519(_) => unreachable!(),
    }
}

#[test]
fn our_jws_verifies_with_josekit() {
    let k = keys();
    for key in [&k.tam_ec, &k.tam_rsa] {
        for tbs in common::all_requests(true) {
            let bytes = sign_request(provider(), &Signer::new(key).with_kid("tam"), &tbs).unwrap();
            let OtrpMessage::Request(signed) = decode_any(&bytes).unwrap() else {
                panic!()
            };
            let jws_json = serde_json::to_string(&signed.jws).unwrap();
            let (payload, header) =
                josekit::jws::deserialize_json(&jws_json, &*jws_verifier(key)).unwrap();
            assert_eq!(payload, tbs.to_json().unwrap());
            assert_eq!(header.key_id(), Some("tam"));
        }
    }
}

#[test]
fn josekit_jws_verifies_with_us_flattened_and_general() {
    let k = keys();
    let tbs = &common::all_requests(true)[2];
    let payload = tbs.to_json().unwrap();
    for key in [&k.tam_ec, &k.tam_rsa] {
        let mut h = JwsHeaderSet::new();
        h.set_key_id("from-josekit", true);
        let flat = josekit::jws::serialize_flattened_json(&payload, &h, &*jws_signer(key)).unwrap();
        let wrapped = format!("{{\"UpdateSDRequest\":{flat}}}");
        assert_eq!(
            &verify_request(provider(), wrapped.as_bytes(), &[key.public_key()]).unwrap(),
            tbs
        );
    }
    let (h1, h2) = (JwsHeaderSet::new(), JwsHeaderSet::new());
    let (s1, s2) = (jws_signer(&k.oem_ec), jws_signer(&k.tam_rsa));
    let general =
        josekit::jws::serialize_general_json(&payload, &[(&h1, &*s1), (&h2, &*s2)]).unwrap();
    let wrapped = format!("{{\"UpdateSDRequest\":{general}}}");
    let v = verify_request_with(
        provider(),
        wrapped.as_bytes(),
        &[k.oem_ec.public_key(), k.tam_rsa.public_key()],
        VerifyPolicy::AllKeys,
    )
    .unwrap();
    assert_eq!(&v.message, tbs);
    assert_eq!(v.signatures.len(), 2);
}

// RSA1_5 is deprecated in josekit; we need it to check legacy decryption.
#[allow(deprecated)]
fn jwe_decrypter(k: &PrivateKey, alg: &str) -> Box<dyn josekit::jwe::JweDecrypter> {
    match alg {
        "ECDH-ES+A128KW" => Box::new(
            josekit::jwe::ECDH_ES_A128KW
                .decrypter_from_pem(pkcs8(k))
                .unwrap(),
        ),
        "RSA-OAEP" => Box::new(josekit::jwe::RSA_OAEP.decrypter_from_pem(pkcs8(k)).unwrap()),
        "RSA1_5" => Box::new(josekit::jwe::RSA1_5.decrypter_from_pem(pkcs8(k)).unwrap()),
        _ => unreachable!(),
    }
}

// RSA1_5 is deprecated in josekit; we need it to check legacy decryption.
#[allow(deprecated)]
fn jwe_encrypter(k: &PrivateKey, alg: &str) -> Box<dyn josekit::jwe::JweEncrypter> {
    match alg {
        "ECDH-ES+A128KW" => Box::new(
            josekit::jwe::ECDH_ES_A128KW
                .encrypter_from_pem(spki(k))
                .unwrap(),
        ),
        "RSA-OAEP" => Box::new(josekit::jwe::RSA_OAEP.encrypter_from_pem(spki(k)).unwrap()),
        "RSA1_5" => Box::new(josekit::jwe::RSA1_5.encrypter_from_pem(spki(k)).unwrap()),
        _ => unreachable!(),
    }
}

#[test]
fn our_jwe_decrypts_with_josekit() {
    let k = keys();
    for enc in [ContentEnc::A128CbcHs256, ContentEnc::A256CbcHs512] {
        for (key, alg) in [(&k.tee_ec, "ECDH-ES+A128KW"), (&k.tee_rsa, "RSA-OAEP")] {
            let pk = key.public_key();
            let plaintext = b"{\"dsi\":{\"x\":1}}";
            let (jwe, _) = jose::encrypt(
                provider(),
                &mut rng(21),
                plaintext,
                enc,
                &[RecipientKey::new(&pk)],
            )
            .unwrap();
            let json = serde_json::to_string(&jwe).unwrap();
            let (got, header) = josekit::jwe::deserialize_json(&json, &*jwe_decrypter(key, alg))
                .unwrap_or_else(|e| panic!("{enc:?} {alg}: {e}"));
            assert_eq!(got, plaintext);
            assert_eq!(header.content_encryption(), Some(enc.name()));
        }
    }
}

#[test]
fn josekit_jwe_decrypts_with_us_including_legacy_rsa1_5() {
    let k = keys();
    for enc in [ContentEnc::A128CbcHs256, ContentEnc::A256CbcHs512] {
        for (key, alg) in [
            (&k.tee_ec, "ECDH-ES+A128KW"),
            (&k.tee_rsa, "RSA-OAEP"),
            (&k.tee_rsa, "RSA1_5"),
        ] {
            let mut shared = JweHeaderSet::new();
            shared.set_content_encryption(enc.name(), true);
            let recipient = JweHeader::new();
            let plaintext = br#"{"tamid":"TAM1","sdname":"sd","deleteta":false}"#;
            let json = josekit::jwe::serialize_general_json(
                plaintext,
                Some(&shared),
                &[(Some(&recipient), &*jwe_encrypter(key, alg))],
                None,
            )
            .unwrap();
            let jwe: JweJson = otrp_json::json::from_slice(json.as_bytes())
                .unwrap_or_else(|e| panic!("{json}: {e}"));
            let legacy = if alg == "RSA1_5" {
                LegacyMode::Allow
            } else {
                LegacyMode::Deny
            };
            let (content, cek): (DeleteSdContent, _) =
                decrypt_content(provider(), &mut rng(22), &jwe, key, legacy)
                    .unwrap_or_else(|e| panic!("{enc:?} {alg}: {e}\n{json}"));
            assert!(!content.deleteta);
            assert_eq!(cek.enc(), enc);
            if alg == "RSA1_5" {
                assert!(matches!(
                    jose::decrypt(provider(), &mut rng(23), &jwe, key, LegacyMode::Deny),
                    Err(Error::LegacyRsa15Refused { .. })
                ));
            }
        }
    }
}
