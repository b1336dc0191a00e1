//! Both providers: round trips, cross-provider verification, refusals, known answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

#[cfg(feature = "ring")]
use otrp_crypto::RingProvider;
use otrp_crypto::{
    CryptoError, CryptoProvider, KeyKind, PrivateKey, PublicKey, RustCryptoProvider, SigAlg,
};
use rand_chacha::rand_core::SeedableRng;

/// Every provider compiled in (ring with the `ring` feature, which `cargo test --workspace`
/// enables through otrp-cose's dev-dependencies).
#[allow(unused_mut)]
fn providers() -> Vec<(&'static str, &'static dyn CryptoProvider)> {
    let mut v: Vec<(&'static str, &'static dyn CryptoProvider)> =
        vec![("rustcrypto", &RustCryptoProvider)];
    #[cfg(feature = "ring")]
    v.push(("ring", &RingProvider));
    v
}

/// One key per kind (RSA generation is slow, so it is done once).
fn keys() -> &'static [PrivateKey; 3] {
    static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        [
            PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
            PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
            PrivateKey::generate(KeyKind::Rsa2048, &mut rng).unwrap(),
        ]
    })
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn sign_verify_round_trip_and_cross_provider() {
    let msg = b"TEEP QueryRequest";
    for key in keys() {
        let alg = key.default_alg();
        let public = key.public_key();
        for (signer_name, signer) in providers() {
            let sig = signer.sign(alg, key, msg).unwrap();
            if alg == SigAlg::P256Sha256 {
                assert_eq!(sig.len(), 64, "ECDSA is raw r||s");
            }
            for (verifier_name, verifier) in providers() {
                verifier
                    .verify(alg, &public, msg, &sig)
                    .unwrap_or_else(|e| panic!("{alg:?} {signer_name}->{verifier_name}: {e}"));
            }
        }
    }
}

#[test]
fn rustcrypto_ecdsa_is_deterministic() {
    let key = &keys()[0];
    let a = RustCryptoProvider
        .sign(SigAlg::P256Sha256, key, b"x")
        .unwrap();
    let b = RustCryptoProvider
        .sign(SigAlg::P256Sha256, key, b"x")
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn wrong_key_bit_flip_and_mismatch_are_refused() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
    let msg = b"install TA";
    for key in keys() {
        let alg = key.default_alg();
        let public = key.public_key();
        let other = match key {
            PrivateKey::P256(_) => PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
            PrivateKey::Ed25519(_) => PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
            PrivateKey::Rsa(_) => keys()[2].clone(), // replaced below
        };
        for (name, p) in providers() {
            let sig = p.sign(alg, key, msg).unwrap();
            // flipped signature bit
            let mut bad = sig.clone();
            bad[sig.len() / 2] ^= 0x01;
            assert!(
                matches!(
                    p.verify(alg, &public, msg, &bad),
                    Err(CryptoError::BadSignature { .. })
                ),
                "{name} {alg:?} accepted a flipped signature"
            );
            // flipped message bit
            let mut bad_msg = msg.to_vec();
            bad_msg[0] ^= 0x80;
            assert!(
                p.verify(alg, &public, &bad_msg, &sig).is_err(),
                "{name} {alg:?}"
            );
            // truncated signature
            assert!(p.verify(alg, &public, msg, &sig[..sig.len() - 1]).is_err());
            // wrong key of the same type
            if !matches!(key, PrivateKey::Rsa(_)) {
                assert!(
                    p.verify(alg, &other.public_key(), msg, &sig).is_err(),
                    "{name} {alg:?}"
                );
            }
            // algorithm / key type mismatch
            let wrong_alg = if alg == SigAlg::Ed25519 {
                SigAlg::P256Sha256
            } else {
                SigAlg::Ed25519
            };
            assert!(matches!(
                p.verify(wrong_alg, &public, msg, &sig),
                Err(CryptoError::KeyAlgMismatch { .. })
            ));
            assert!(matches!(
                p.sign(wrong_alg, key, msg),
                Err(CryptoError::KeyAlgMismatch { .. })
            ));
        }
    }
}

/// RFC 8032 §7.1 TEST 1 (empty message).
#[test]
fn ed25519_rfc8032_test1() {
    let key = PrivateKey::ed25519_from_seed(&h(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    ))
    .unwrap();
    let public = key.public_key();
    assert_eq!(
        public,
        PublicKey::ed25519_from_bytes(&h(
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        ))
        .unwrap()
    );
    let expected = h("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    for (_, p) in providers() {
        assert_eq!(p.sign(SigAlg::Ed25519, &key, b"").unwrap(), expected);
        p.verify(SigAlg::Ed25519, &public, b"", &expected).unwrap();
    }
}

/// RFC 6979 §A.2.5, P-256 with SHA-256, message "sample" (deterministic k).
#[test]
fn ecdsa_p256_rfc6979_sample() {
    let key = PrivateKey::p256_from_scalar(&h(
        "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
    ))
    .unwrap();
    let expected = h(concat!(
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
        "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
    ));
    assert_eq!(
        RustCryptoProvider
            .sign(SigAlg::P256Sha256, &key, b"sample")
            .unwrap(),
        expected
    );
    for (_, p) in providers() {
        p.verify(SigAlg::P256Sha256, &key.public_key(), b"sample", &expected)
            .unwrap();
    }
}

/// RFC 3394 §4.1 (128-bit KEK, 128-bit key) and §4.6 (256-bit KEK, 256-bit key).
#[test]
fn aes_kw_rfc3394() {
    let cases = [
        (
            "000102030405060708090a0b0c0d0e0f",
            "00112233445566778899aabbccddeeff",
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
        ),
    ];
    for (kek, key, wrapped) in cases {
        for (_, p) in providers() {
            assert_eq!(p.aes_kw_wrap(&h(kek), &h(key)).unwrap(), h(wrapped));
            assert_eq!(p.aes_kw_unwrap(&h(kek), &h(wrapped)).unwrap(), h(key));
            let mut bad = h(wrapped);
            bad[3] ^= 1;
            assert_eq!(p.aes_kw_unwrap(&h(kek), &bad), Err(CryptoError::KeyUnwrap));
            assert!(matches!(
                p.aes_kw_unwrap(&[0u8; 24], &h(wrapped)),
                Err(CryptoError::InvalidLength { .. })
            ));
            assert!(matches!(
                p.aes_kw_wrap(&h(kek), &[0u8; 12]),
                Err(CryptoError::KeyWrap { len: 12 })
            ));
        }
    }
}

/// McGrew–Viega GCM test cases 2 and 3 (AES-128).
#[test]
fn aes_gcm_known_answers() {
    let cases = [
        (
            "00000000000000000000000000000000",
            "000000000000000000000000",
            "00000000000000000000000000000000",
            "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf",
        ),
        (
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd2ba6fab4",
        ),
    ];
    for (key, iv, pt, ct) in cases {
        for (name, p) in providers() {
            assert_eq!(
                p.aes_gcm_seal(&h(key), &h(iv), b"", &h(pt)).unwrap(),
                h(ct),
                "{name}"
            );
            assert_eq!(
                p.aes_gcm_open(&h(key), &h(iv), b"", &h(ct)).unwrap(),
                h(pt),
                "{name}"
            );
            let mut bad = h(ct);
            bad[0] ^= 1;
            assert_eq!(
                p.aes_gcm_open(&h(key), &h(iv), b"", &bad),
                Err(CryptoError::AeadOpen)
            );
            assert_eq!(
                p.aes_gcm_open(&h(key), &h(iv), b"aad", &h(ct)),
                Err(CryptoError::AeadOpen)
            );
            assert!(matches!(
                p.aes_gcm_open(&h(key), &[0u8; 8], b"", &h(ct)),
                Err(CryptoError::InvalidLength { .. })
            ));
        }
    }
}

#[cfg(feature = "ring")]
#[test]
fn aes_gcm_cross_provider_with_aad_and_256_bit_key() {
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let ct = RingProvider
        .aes_gcm_seal(&key, &nonce, b"hdr", b"payload")
        .unwrap();
    assert_eq!(
        RustCryptoProvider
            .aes_gcm_open(&key, &nonce, b"hdr", &ct)
            .unwrap(),
        b"payload"
    );
    let ct2 = RustCryptoProvider
        .aes_gcm_seal(&key, &nonce, b"hdr", b"payload")
        .unwrap();
    assert_eq!(ct, ct2);
}

/// NIST SP 800-38A F.5.1 CTR-AES128 (first two blocks).
#[test]
fn aes_ctr_sp800_38a() {
    let key = h("2b7e151628aed2a6abf7158809cf4f3c");
    let iv: [u8; 16] = h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
    let pt = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let ct = h("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff");
    for (_, p) in providers() {
        let mut buf = pt.clone();
        p.aes_ctr_apply(&key, &iv, &mut buf).unwrap();
        assert_eq!(buf, ct);
        p.aes_ctr_apply(&key, &iv, &mut buf).unwrap();
        assert_eq!(buf, pt);
        assert!(p.aes_ctr_apply(&key[..15], &iv, &mut buf).is_err());
    }
}

/// RFC 5869 A.1 (HKDF-SHA-256) and RFC 4231 test case 2 (HMAC-SHA-256).
#[test]
fn hkdf_and_hmac_known_answers() {
    for (_, p) in providers() {
        let mut okm = [0u8; 42];
        p.hkdf_sha256(
            &h("000102030405060708090a0b0c"),
            &[0x0b; 22],
            &h("f0f1f2f3f4f5f6f7f8f9"),
            &mut okm,
        )
        .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert!(matches!(
            p.hkdf_sha256(b"", b"ikm", b"", &mut too_long),
            Err(CryptoError::HkdfLength { .. })
        ));
        assert_eq!(
            hex::encode(p.hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(p.sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

#[test]
fn ecdh_is_symmetric_and_provider_independent() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let a = otrp_crypto::p256::SecretKey::random(&mut rng);
    let b = otrp_crypto::p256::SecretKey::random(&mut rng);
    for (_, p) in providers() {
        let ab = p.ecdh_p256(&a, &b.public_key()).unwrap();
        let ba = p.ecdh_p256(&b, &a.public_key()).unwrap();
        assert_eq!(*ab, *ba);
    }
}

#[test]
fn default_provider_signs_and_verifies() {
    let p = otrp_crypto::default_provider();
    let key = &keys()[1];
    let sig = p.sign(SigAlg::Ed25519, key, b"m").unwrap();
    RustCryptoProvider
        .verify(SigAlg::Ed25519, &key.public_key(), b"m", &sig)
        .unwrap();
    assert_eq!(
        hex::encode(p.sha256(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

/// Providers may cache prepared keys (ring does, per private key): signing many times
/// with several keys, interleaved, still gives signatures that verify under each key
/// only, and the derived public key is the key's own.
#[test]
fn repeated_signing_with_cached_keys() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let p256: Vec<PrivateKey> = (0..3)
        .map(|_| PrivateKey::generate(KeyKind::P256, &mut rng).unwrap())
        .collect();
    let ed = PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap();
    for (name, p) in providers() {
        for round in 0..3u8 {
            for (i, k) in p256.iter().chain(std::iter::once(&ed)).enumerate() {
                assert_eq!(p.derive_public_key(k), k.public_key(), "{name}");
                let msg = [round, i as u8, 0x42];
                let alg = k.default_alg();
                let sig = p.sign(alg, k, &msg).unwrap();
                p.verify(alg, &k.public_key(), &msg, &sig).unwrap();
                if let Some(other) = p256.get((i + 1) % 3).filter(|_| i < 3) {
                    assert!(p.verify(alg, &other.public_key(), &msg, &sig).is_err());
                }
            }
        }
    }
}
