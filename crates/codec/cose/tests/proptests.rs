//! Property tests: sign/verify and encrypt/decrypt round trips over random inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use otrp_cose::encrypt::{decrypt_payload, encrypt_payload, ContentAlg, Kek, Recipient};
use otrp_cose::{sign1, verify_sign1, SignOptions};
use otrp_crypto::{rust_crypto_provider, PrivateKey, RingProvider};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign1_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..512),
                        detached in any::<bool>(),
                        seed in any::<[u8; 32]>(),
                        ed in any::<bool>()) {
        let key = if ed {
            PrivateKey::ed25519_from_seed(&seed).unwrap()
        } else {
            // almost every 32-byte string is a valid P-256 scalar; skip the rest
            match PrivateKey::p256_from_scalar(&seed) { Ok(k) => k, Err(_) => return Ok(()) }
        };
        let p = rust_crypto_provider();
        let bytes = sign1(p, &key, &payload, detached, &SignOptions::default()).unwrap();
        let det = detached.then_some(payload.as_slice());
        let v = verify_sign1(&RingProvider, &bytes, det, &[key.public_key()]).unwrap();
        prop_assert_eq!(v.payload, payload);
    }

    #[test]
    fn encrypt_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..1024),
                          seed in any::<u64>(),
                          gcm in any::<bool>(),
                          ecdh in any::<bool>()) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let kek = [seed as u8; 16];
        let sk = otrp_crypto::p256::SecretKey::random(&mut rng);
        let pk = sk.public_key();
        let content = if gcm { ContentAlg::A128Gcm } else { ContentAlg::A128Ctr };
        let recipient = if ecdh {
            Recipient::EcdhEs { recipient_public: &pk, kid: None }
        } else {
            Recipient::Aes { kek: &kek, kid: None }
        };
        let p = rust_crypto_provider();
        let (info, ct) = encrypt_payload(p, &mut rng, &plaintext, recipient, content).unwrap();
        let key = if ecdh { Kek::EcdhEs { recipient_private: &sk } } else { Kek::Aes(&kek) };
        prop_assert_eq!(decrypt_payload(&RingProvider, &info, &ct, key).unwrap(), plaintext);
    }

    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let key = PrivateKey::ed25519_from_seed(&[1u8; 32]).unwrap().public_key();
        let _ = verify_sign1(rust_crypto_provider(), &bytes, None, std::slice::from_ref(&key));
        let _ = otrp_cose::verify_sign(rust_crypto_provider(), &bytes, None, &[key], otrp_cose::SignPolicy::All);
        let _ = otrp_cose::peek(&bytes);
        let _ = decrypt_payload(rust_crypto_provider(), &bytes, &[], Kek::Aes(&[0u8; 16]));
    }
}
