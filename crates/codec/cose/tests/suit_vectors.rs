//! Published SUIT/TEEP examples: envelope signatures verify, personalization payloads decrypt.
//!
//! The SUIT structure is walked with ciborium directly (the SUIT crate is separate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ciborium::Value;
use otrp_cose::coset;
use otrp_cose::coset::iana::EnumI64;
use otrp_cose::encrypt::{decrypt_payload, Kek};
use otrp_cose::{peek, verify_sign1, CoseMessage};
use otrp_crypto::{rust_crypto_provider, CryptoProvider, PrivateKey, PublicKey, SigAlg};

const PLAINTEXT: &[u8] = br#"{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}"#;

fn vector(rel: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).expect("hex")
}

fn text(rel: &str) -> String {
    let path = format!(
        "{}/../../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("read")
}

fn decode(bytes: &[u8]) -> Value {
    ciborium::from_reader(bytes).expect("cbor")
}

fn map_get(map: &Value, label: i64) -> Option<&Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_integer() == Some(label.into()))
        .map(|(_, v)| v)
}

fn bstr(v: &Value) -> &[u8] {
    v.as_bytes().expect("bstr")
}

/// The personalization KEK (receiver's P-256 private key) from App. E Example 3.
fn kek() -> PrivateKey {
    let key = otrp_cose::cose_key_from_slice(&vector(
        "teep/keys/personalization_kek_p256.cose_key.derived.hex",
    ))
    .expect("COSE_Key");
    otrp_cose::private_from_cose_key(&key).expect("private key")
}

/// Finds `directive-override-parameters` (20) maps in a SUIT command sequence (a flat
/// array of command, argument pairs).
fn override_parameters(seq: &Value) -> Vec<&Value> {
    let items = seq.as_array().expect("command sequence");
    items
        .chunks(2)
        .filter(|c| c.first().and_then(Value::as_integer) == Some(20.into()))
        .filter_map(|c| c.get(1))
        .collect()
}

/// (encryption info bytes, ciphertext) from the install sequence of an envelope.
fn encrypted_parameters(envelope: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let env = decode(envelope);
    let manifest = decode(bstr(map_get(&env, 3).expect("manifest")));
    let install = decode(bstr(map_get(&manifest, 20).expect("install")));
    for params in override_parameters(&install) {
        if let (Some(content), Some(info)) = (map_get(params, 18), map_get(params, 19)) {
            return (bstr(info).to_vec(), bstr(content).to_vec());
        }
    }
    panic!("no encryption-info parameter in install");
}

fn decrypt_vector(rel: &str) {
    let (info, ciphertext) = encrypted_parameters(&vector(rel));
    assert!(matches!(peek(&info).unwrap(), CoseMessage::Encrypt(_)));
    let PrivateKey::P256(kek) = kek() else {
        panic!("KEK is P-256")
    };
    let providers: Vec<Box<dyn CryptoProvider>> = vec![
        Box::new(otrp_crypto::RustCryptoProvider),
        Box::new(otrp_crypto::RingProvider),
    ];
    for provider in &providers {
        let plain = decrypt_payload(
            provider.as_ref(),
            &info,
            &ciphertext,
            Kek::EcdhEs {
                recipient_private: &kek,
            },
        )
        .unwrap();
        assert_eq!(plain, PLAINTEXT);
        assert_eq!(plain.len(), 61);
        // The manifest's validate step expects this image digest.
        assert_eq!(
            hex::encode(provider.sha256(&plain)),
            "8273468fb64bd84bb04825f8371744d952b751c73a60f455af681e167726f116"
        );
    }
}

#[test]
fn personalization_decrypts_to_published_plaintext() {
    decrypt_vector("teep/suit_personalization.hex");
}

#[test]
fn personalization_d21_decrypts_to_published_plaintext() {
    decrypt_vector("teep/suit_personalization_d21.hex");
}

#[test]
fn personalization_with_wrong_key_or_tampered_wrap_fails() {
    let (info, ciphertext) = encrypted_parameters(&vector("teep/suit_personalization.hex"));
    let other = otrp_crypto::p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let err = decrypt_payload(
        rust_crypto_provider(),
        &info,
        &ciphertext,
        Kek::EcdhEs {
            recipient_private: &other,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("key unwrap"), "{err}");
    // an AES KEK fits no recipient of this message
    let err = decrypt_payload(
        rust_crypto_provider(),
        &info,
        &ciphertext,
        Kek::Aes(&[0u8; 16]),
    )
    .unwrap_err();
    assert!(
        matches!(err, otrp_cose::CoseError::NoRecipient { tried: 0 }),
        "{err}"
    );
}

/// (bstr-wrapped SUIT_Digest, COSE_Sign1 bytes) from an envelope's authentication wrapper.
fn authentication(envelope: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let env = match decode(envelope) {
        Value::Tag(107, inner) => *inner,
        v => v,
    };
    let wrapper = decode(bstr(map_get(&env, 2).expect("authentication-wrapper")));
    let items = wrapper.as_array().expect("SUIT_Authentication");
    let (digest, blocks) = items.split_first().expect("digest");
    // The detached payload is the content of SUIT_Digest_bstr (the encoded SUIT_Digest);
    // the Sig_structure's `payload: bstr` then holds the bstr-wrapped SUIT_Digest exactly
    // as it appears in the authentication wrapper.
    (
        bstr(digest).to_vec(),
        blocks.iter().map(|b| bstr(b).to_vec()).collect(),
    )
}

fn verify_envelope(rel: &str, key: &PublicKey) -> SigAlg {
    let (payload, blocks) = authentication(&vector(rel));
    assert_eq!(blocks.len(), 1, "{rel}");
    let block = &blocks[0];
    assert!(matches!(peek(block).unwrap(), CoseMessage::Sign1(_)));
    let v = verify_sign1(
        rust_crypto_provider(),
        block,
        Some(&payload),
        std::slice::from_ref(key),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(v.key_index, 0);
    assert_eq!(v.payload, payload);
    // ring agrees
    verify_sign1(
        &otrp_crypto::RingProvider,
        block,
        Some(&payload),
        std::slice::from_ref(key),
    )
    .unwrap_or_else(|e| panic!("{rel} (ring): {e}"));
    // a flipped digest bit does not verify
    let mut bad = payload.clone();
    if let Some(last) = bad.last_mut() {
        *last ^= 1;
    }
    assert!(verify_sign1(
        rust_crypto_provider(),
        block,
        Some(&bad),
        std::slice::from_ref(key)
    )
    .is_err());
    v.alg
}

#[test]
fn suit_envelope_signatures_verify() {
    let key = PublicKey::from_pem(&text("suit/keys/signer_p256_public.pem")).unwrap();
    let teep_key = PublicKey::from_pem(&text("teep/keys/suit_signer_p256_public.pem")).unwrap();
    assert_eq!(key, teep_key);
    for rel in [
        "suit/example0.hex",
        "suit/example1.hex",
        "suit/example2.hex",
        "suit/example2_severed.hex",
        "suit/example3.hex",
        "suit/example4.hex",
        "suit/example5.hex",
        "teep/suit_uri.hex",
        "teep/suit_uri_d21.hex",
        "teep/suit_integrated.hex",
        "teep/suit_integrated_d21.hex",
        "teep/suit_personalization.hex",
        "teep/suit_personalization_d21.hex",
    ] {
        assert_eq!(verify_envelope(rel, &key), SigAlg::P256Sha256, "{rel}");
    }
}

#[test]
fn both_alg_id_generations_in_vectors() {
    // -21 era envelopes are ES256 (-7), the editor's copy ESP256 (-9)
    for (rel, id) in [("teep/suit_uri_d21.hex", -7), ("teep/suit_uri.hex", -9)] {
        let (_, blocks) = authentication(&vector(rel));
        let CoseMessage::Sign1(msg) = peek(&blocks[0]).unwrap() else {
            panic!("{rel}: not COSE_Sign1")
        };
        assert_eq!(
            msg.protected.header.alg,
            Some(coset::RegisteredLabelWithPrivate::Assigned(
                coset::iana::Algorithm::from_i64(id).unwrap()
            )),
            "{rel}"
        );
    }
}

#[test]
fn suit_signature_refuses_other_key() {
    let (payload, blocks) = authentication(&vector("teep/suit_personalization.hex"));
    let other = kek().public_key();
    let err =
        verify_sign1(rust_crypto_provider(), &blocks[0], Some(&payload), &[other]).unwrap_err();
    assert!(
        matches!(err, otrp_cose::CoseError::BadSignature { .. }),
        "{err}"
    );
    // the detached payload is required
    let key = PublicKey::from_pem(&text("suit/keys/signer_p256_public.pem")).unwrap();
    let err = verify_sign1(rust_crypto_provider(), &blocks[0], None, &[key]).unwrap_err();
    assert!(
        matches!(err, otrp_cose::CoseError::DetachedPayloadMissing { .. }),
        "{err}"
    );
}
