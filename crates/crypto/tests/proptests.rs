//! Property tests: symmetric and signature round trips across every compiled-in provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "ring")]
use otrp_crypto::RingProvider;
use otrp_crypto::{CryptoProvider, PrivateKey, RustCryptoProvider, SigAlg};
use proptest::prelude::*;

#[allow(unused_mut)]
fn providers() -> Vec<&'static dyn CryptoProvider> {
    let mut v: Vec<&'static dyn CryptoProvider> = vec![&RustCryptoProvider];
    #[cfg(feature = "ring")]
    v.push(&RingProvider);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ed25519_and_p256_sign_verify(msg in proptest::collection::vec(any::<u8>(), 0..300),
                                    seed in any::<[u8; 32]>()) {
        let mut keys = vec![PrivateKey::ed25519_from_seed(&seed).unwrap()];
        if let Ok(k) = PrivateKey::p256_from_scalar(&seed) {
            keys.push(k);
        }
        for key in &keys {
            for s in providers() {
                let sig = s.sign(key.default_alg(), key, &msg).unwrap();
                for v in providers() {
                    prop_assert!(v.verify(key.default_alg(), &key.public_key(), &msg, &sig).is_ok());
                }
            }
        }
        prop_assert!(keys[0].default_alg() == SigAlg::Ed25519);
    }

    #[test]
    fn symmetric_round_trips(data in proptest::collection::vec(any::<u8>(), 0..300),
                             key in any::<[u8; 16]>(),
                             nonce in any::<[u8; 12]>(),
                             iv in any::<[u8; 16]>(),
                             cek in any::<[u8; 32]>()) {
        for p in providers() {
            let ct = p.aes_gcm_seal(&key, &nonce, b"aad", &data).unwrap();
            prop_assert_eq!(ct.len(), data.len() + 16);
            for q in providers() {
                prop_assert_eq!(&q.aes_gcm_open(&key, &nonce, b"aad", &ct).unwrap(), &data);
            }
            let mut buf = data.clone();
            p.aes_ctr_apply(&key, &iv, &mut buf).unwrap();
            p.aes_ctr_apply(&key, &iv, &mut buf).unwrap();
            prop_assert_eq!(&buf, &data);
            let wrapped = p.aes_kw_wrap(&key, &cek).unwrap();
            prop_assert_eq!(p.aes_kw_unwrap(&key, &wrapped).unwrap(), cek.to_vec());
        }
    }
}
