//! Signatures over the SUIT_Digest (otrp-cose) and payload decryption.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_cose::encrypt::Kek;
use otrp_cose::{KidMode, SignOptions};
use otrp_crypto::{rust_crypto_provider, AlgIdGeneration, PrivateKey, PublicKey, SigAlg};
use otrp_suit::{decrypt_payload, ComponentId, Envelope, Parameter, SuitError, TaManifestBuilder};

fn read(rel: &str) -> String {
    let path = format!(
        "{}/../../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn vector(rel: &str) -> Vec<u8> {
    let clean: String = read(rel)
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    hex::decode(clean).unwrap()
}

fn public() -> PublicKey {
    PublicKey::from_pem(&read("suit/keys/signer_p256_public.pem")).unwrap()
}

fn private() -> PrivateKey {
    PrivateKey::from_pem(&read("suit/keys/signer_p256_private.pem")).unwrap()
}

const SIGNED: &[&str] = &[
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
];

#[test]
fn every_signed_vector_verifies_with_the_published_key() {
    let p = rust_crypto_provider();
    let teep_key = PublicKey::from_pem(&read("teep/keys/suit_signer_p256_public.pem")).unwrap();
    let mut failed = Vec::new();
    for v in SIGNED {
        let env = Envelope::decode(&vector(v)).unwrap();
        let Ok(ok) = env.verify(p, &[public()]) else {
            failed.push(*v);
            continue;
        };
        assert_eq!(ok.len(), 1, "{v}");
        assert_eq!(ok[0].alg, SigAlg::P256Sha256);
        env.verify(p, std::slice::from_ref(&teep_key)).unwrap();
    }
    assert!(failed.is_empty(), "did not verify: {failed:?}");
}

#[test]
fn tampering_and_wrong_keys_fail() {
    let p = rust_crypto_provider();
    let bytes = vector("teep/suit_integrated.hex");
    let env = Envelope::decode(&bytes).unwrap();
    // wrong key
    let other = PrivateKey::generate(otrp_crypto::KeyKind::P256, &mut rand::rngs::OsRng)
        .unwrap()
        .public_key();
    assert!(matches!(
        env.verify(p, &[other]).unwrap_err(),
        SuitError::Authentication { .. }
    ));
    // flipped signature byte (last byte of the COSE block)
    let mut bad = env.clone();
    let mut auth = bad.authentication.value().clone();
    if let Some(last) = auth.blocks[0].last_mut() {
        *last ^= 1;
    }
    bad.authentication.set(auth).unwrap();
    assert!(bad.verify(p, &[public()]).is_err());
    // manifest changed under the same authentication wrapper
    let mut bad = env.clone();
    let mut m = bad.manifest().clone();
    m.sequence_number += 1;
    bad.manifest.set(m).unwrap();
    assert!(matches!(
        bad.verify(p, &[public()]).unwrap_err(),
        SuitError::DigestMismatch { .. }
    ));
    // unsigned envelope
    let unsigned = Envelope::decode(&vector("suit/example0_unsigned.hex")).unwrap();
    assert_eq!(
        unsigned.verify(p, &[public()]).unwrap_err(),
        SuitError::Unsigned
    );
}

fn tc_builder() -> TaManifestBuilder {
    let tc = hex::decode("8D82573A926D4754935332DC29997F74").unwrap();
    TaManifestBuilder::new(
        ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &tc, b"ta"]),
        3,
    )
    .vendor_id(
        hex::decode("C0DDD5F15243566087DB4F5B0AA26C2F")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .class_id(
        hex::decode("DB42F7093D8C55BAA8C5265FC5820F4E")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .image_of(b"Hello, Secure World!")
    .manifest_component_id(ComponentId::new([
        &b"TEEP-Device"[..],
        b"SecureFS",
        &tc,
        b"suit",
    ]))
    .uninstall(true)
    .integrated_payload("#tc", b"Hello, Secure World!".to_vec())
}

#[test]
fn built_and_signed_envelopes_equal_the_published_ones_byte_for_byte() {
    // ECDSA here is RFC 6979 deterministic, and so were the published signatures.
    let p = rust_crypto_provider();
    let uri = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta";
    for (gen, integrated, vec) in [
        (AlgIdGeneration::New, true, "teep/suit_integrated.hex"),
        (
            AlgIdGeneration::Legacy,
            true,
            "teep/suit_integrated_d21.hex",
        ),
        (AlgIdGeneration::New, false, "teep/suit_uri.hex"),
        (AlgIdGeneration::Legacy, false, "teep/suit_uri_d21.hex"),
    ] {
        let opts = SignOptions {
            alg_gen: gen,
            kid: KidMode::None,
            tagged: true,
        };
        let b = tc_builder();
        let b = if integrated { b } else { b.uri(uri) };
        let env = b.build_signed(p, &private(), &opts).unwrap();
        env.verify(p, &[public()]).unwrap();
        assert_eq!(env.encode().unwrap(), vector(vec), "{vec}");
    }
}

#[test]
fn signing_with_thumbprint_kid_and_legacy_alg_verifies() {
    let p = rust_crypto_provider();
    let opts = SignOptions {
        alg_gen: AlgIdGeneration::Legacy,
        kid: KidMode::Thumbprint,
        tagged: true,
    };
    let mut env = tc_builder()
        .tagged(true)
        .build_signed(p, &private(), &opts)
        .unwrap();
    let ok = env.verify(p, &[public()]).unwrap();
    assert!(ok[0].kid.is_some());
    // a second authority adds a second block over the same digest
    let second =
        PrivateKey::generate(otrp_crypto::KeyKind::Ed25519, &mut rand::rngs::OsRng).unwrap();
    env.add_signature(p, &second, &SignOptions::default())
        .unwrap();
    let bytes = env.encode().unwrap();
    let back = Envelope::decode(&bytes).unwrap();
    assert!(back.tagged);
    let ok = back.verify(p, &[public(), second.public_key()]).unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].key_index, 1);
    assert_eq!(ok[1].alg, SigAlg::Ed25519);
}

#[test]
fn personalization_payload_decrypts_to_the_validated_plaintext() {
    let p = rust_crypto_provider();
    let kek_bytes = vector("teep/keys/personalization_kek_p256.cose_key.derived.hex");
    let kek =
        otrp_cose::private_from_cose_key(&otrp_cose::cose_key_from_slice(&kek_bytes).unwrap())
            .unwrap();
    let PrivateKey::P256(sk) = kek else {
        panic!("KEK is not P-256")
    };
    for v in [
        "teep/suit_personalization.hex",
        "teep/suit_personalization_d21.hex",
    ] {
        let env = Envelope::decode(&vector(v)).unwrap();
        let install = env.install().unwrap().unwrap();
        let mut ct = None;
        let mut info = None;
        for prm in install.parameters() {
            match prm {
                Parameter::Content(c) => ct = Some(c.clone()),
                Parameter::EncryptionInfo(i) => info = Some(i.clone()),
                _ => {}
            }
        }
        let plain = decrypt_payload(
            p,
            &info.unwrap(),
            &ct.unwrap(),
            Kek::EcdhEs {
                recipient_private: &sk,
            },
        )
        .unwrap();
        assert_eq!(
            plain,
            br#"{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}"#
        );
        let validate = env.manifest().validate.as_ref().unwrap().value();
        let digest = validate
            .parameters()
            .find_map(|p| match p {
                Parameter::ImageDigest(d) => Some(d.value().clone()),
                _ => None,
            })
            .unwrap();
        assert!(digest.matches(&plain).unwrap(), "{v}");
    }
}

#[test]
fn encrypted_payload_built_signed_and_decrypted() {
    use otrp_cose::encrypt::{ContentAlg, Recipient};
    let p = rust_crypto_provider();
    let kek_bytes = vector("teep/keys/personalization_kek_p256.cose_key.derived.hex");
    let kek =
        otrp_cose::private_from_cose_key(&otrp_cose::cose_key_from_slice(&kek_bytes).unwrap())
            .unwrap();
    let PrivateKey::P256(sk) = kek else { panic!() };
    let plaintext = b"{\"secret\":\"42\"}";
    for alg in [ContentAlg::A128Ctr, ContentAlg::A128Gcm] {
        let env = TaManifestBuilder::new(ComponentId::new([b"config.json"]), 7)
            .encrypt_payload(
                p,
                &mut rand::rngs::OsRng,
                plaintext,
                Recipient::EcdhEs {
                    recipient_public: &sk.public_key(),
                    kid: None,
                },
                alg,
            )
            .unwrap()
            .build_signed(p, &private(), &SignOptions::default())
            .unwrap();
        let back = Envelope::decode(&env.encode().unwrap()).unwrap();
        back.verify(p, &[public()]).unwrap();
        let install = back.install().unwrap().unwrap();
        let (mut ct, mut info) = (None, None);
        for prm in install.parameters() {
            match prm {
                Parameter::Content(c) => ct = Some(c.clone()),
                Parameter::EncryptionInfo(i) => info = Some(i.clone()),
                _ => {}
            }
        }
        let plain = decrypt_payload(
            p,
            &info.unwrap(),
            &ct.unwrap(),
            Kek::EcdhEs {
                recipient_private: &sk,
            },
        )
        .unwrap();
        assert_eq!(plain, plaintext);
        let shared = back
            .manifest()
            .common
            .value()
            .shared_sequence
            .as_ref()
            .unwrap();
        let digest = shared.value().parameters().find_map(|p| match p {
            Parameter::ImageDigest(d) => Some(d.value().clone()),
            _ => None,
        });
        assert!(digest.unwrap().matches(&plain).unwrap());
    }
}
