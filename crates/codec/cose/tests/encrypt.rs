//! SUIT payload encryption round trips: {A128KW, ECDH-ES+A128KW} x {A128GCM, A128CTR}.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use otrp_cose::encrypt::{
    decrypt_payload, encrypt_payload, parse_encryption_info, ContentAlg, Kek, Recipient,
    ALG_A128CTR, ALG_A128GCM, ALG_A128KW, ALG_ECDH_ES_A128KW,
};
use otrp_cose::{peek, CoseError, CoseMessage};
use otrp_crypto::{CryptoProvider, RingProvider, RustCryptoProvider};
use rand_chacha::rand_core::SeedableRng;

fn providers() -> [&'static dyn CryptoProvider; 2] {
    [&RustCryptoProvider, &RingProvider]
}

fn alg(a: &Option<otrp_cose::coset::Algorithm>) -> i64 {
    use otrp_cose::coset::iana::EnumI64;
    match a {
        Some(otrp_cose::coset::RegisteredLabelWithPrivate::Assigned(a)) => a.to_i64(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn all_four_combinations_round_trip_on_both_providers() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let kek = [0x11u8; 16];
    let static_key = otrp_crypto::p256::SecretKey::random(&mut rng);
    let static_public = static_key.public_key();
    let plaintext = b"personalization data for the TA".repeat(5);
    for content in [ContentAlg::A128Gcm, ContentAlg::A128Ctr] {
        for ecdh in [false, true] {
            for enc in providers() {
                let recipient = if ecdh {
                    Recipient::EcdhEs {
                        recipient_public: &static_public,
                        kid: Some(b"agent".to_vec()),
                    }
                } else {
                    Recipient::Aes {
                        kek: &kek,
                        kid: None,
                    }
                };
                let (info, ct) =
                    encrypt_payload(enc, &mut rng, &plaintext, recipient, content).unwrap();
                assert_eq!(&info[..2], &[0xd8, 0x60], "tag 96");
                assert!(matches!(peek(&info).unwrap(), CoseMessage::Encrypt(_)));
                let msg = parse_encryption_info(&info).unwrap();
                assert!(msg.ciphertext.is_none(), "detached");
                let r = &msg.recipients[0];
                match content {
                    ContentAlg::A128Gcm => {
                        assert_eq!(alg(&msg.protected.header.alg), ALG_A128GCM);
                        assert_eq!(msg.unprotected.iv.len(), 12);
                        assert_eq!(ct.len(), plaintext.len() + 16);
                    }
                    ContentAlg::A128Ctr => {
                        assert!(msg.protected.is_empty(), "A128CTR: empty protected header");
                        assert_eq!(alg(&msg.unprotected.alg), ALG_A128CTR);
                        assert_eq!(msg.unprotected.iv.len(), 16);
                        assert_eq!(ct.len(), plaintext.len());
                    }
                }
                if ecdh {
                    assert_eq!(alg(&r.protected.header.alg), ALG_ECDH_ES_A128KW);
                    assert_eq!(r.unprotected.key_id, b"agent");
                } else {
                    assert_eq!(alg(&r.unprotected.alg), ALG_A128KW);
                }
                for dec in providers() {
                    let key = if ecdh {
                        Kek::EcdhEs {
                            recipient_private: &static_key,
                        }
                    } else {
                        Kek::Aes(&kek)
                    };
                    assert_eq!(decrypt_payload(dec, &info, &ct, key).unwrap(), plaintext);
                }
            }
        }
    }
}

#[test]
fn refusals() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
    let p = otrp_crypto::rust_crypto_provider();
    let kek = [0x22u8; 16];
    let (info, ct) = encrypt_payload(
        p,
        &mut rng,
        b"secret",
        Recipient::Aes {
            kek: &kek,
            kid: None,
        },
        ContentAlg::A128Gcm,
    )
    .unwrap();
    // wrong KEK: the unwrap integrity check fails
    let err = decrypt_payload(p, &info, &ct, Kek::Aes(&[0x23u8; 16])).unwrap_err();
    assert!(matches!(err, CoseError::Crypto { .. }), "{err}");
    assert!(err.to_string().contains("A128KW key unwrap"), "{err}");
    // tampered GCM ciphertext
    let mut bad = ct.clone();
    bad[0] ^= 1;
    let err = decrypt_payload(p, &info, &bad, Kek::Aes(&kek)).unwrap_err();
    assert!(
        err.to_string().contains("A128GCM content decryption"),
        "{err}"
    );
    // an ECDH key fits no A128KW recipient
    let sk = otrp_crypto::p256::SecretKey::random(&mut rng);
    let err = decrypt_payload(
        p,
        &info,
        &ct,
        Kek::EcdhEs {
            recipient_private: &sk,
        },
    )
    .unwrap_err();
    assert!(matches!(err, CoseError::NoRecipient { tried: 0 }), "{err}");
    // not a COSE_Encrypt
    let err = decrypt_payload(p, &[0xd2, 0x80], &ct, Kek::Aes(&kek)).unwrap_err();
    assert!(
        matches!(
            err,
            CoseError::UnexpectedTag {
                expected: 96,
                found: 18,
                ..
            }
        ),
        "{err}"
    );
    // every truncation errors, never panics
    for n in 0..info.len() {
        assert!(decrypt_payload(p, &info[..n], &ct, Kek::Aes(&kek)).is_err());
    }
    // every bit flip of the encryption info errors or (for bits outside authenticated
    // data, e.g. the kid) still yields the plaintext, never panics
    for i in 0..info.len() {
        for bit in 0..8 {
            let mut b = info.clone();
            b[i] ^= 1 << bit;
            if let Ok(pt) = decrypt_payload(p, &b, &ct, Kek::Aes(&kek)) {
                assert_eq!(pt, b"secret", "byte {i} bit {bit}");
            }
        }
    }
}
