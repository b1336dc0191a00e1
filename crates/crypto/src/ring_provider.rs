//! `RingProvider`: ring 0.17 for SHA-256, signatures and AES-GCM; RustCrypto for the rest.

use alloc::vec::Vec;

use ring::signature::{self, KeyPair};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use crate::provider::{rc_ctr, rc_ecdh, rc_hkdf, rc_hmac, rc_kw_unwrap, rc_kw_wrap};
use crate::{CryptoError, CryptoProvider, PrivateKey, PublicComponents, PublicKey, SigAlg};

/// Fast server provider (feature `ring`, std only).
///
/// Uses ring for SHA-256, ECDSA P-256 / Ed25519 / RS256 sign and verify, and AES-GCM;
/// ECDH, HKDF, HMAC, AES-KW and AES-CTR come from RustCrypto.
///
/// Deviation from `RustCryptoProvider`: ring has no RFC 6979, so its ECDSA signatures
/// are randomized (ring draws the nonce and the RSA blinding from its own
/// `SystemRandom`, the OS RNG). Both are valid and verify with either provider.
///
/// ring key pairs are rebuilt from the `PrivateKey` on every `sign` call (ring validates
/// the pair), so P-256 signing costs ~140 µs instead of ring's native ~25 µs (release,
/// this machine); verification has no such overhead (~50 µs ES256, ~20 µs RS256).
#[derive(Debug, Clone, Copy, Default)]
pub struct RingProvider;

fn signing_error(alg: SigAlg) -> CryptoError {
    CryptoError::Signing { alg }
}

impl CryptoProvider for RingProvider {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn sign(&self, alg: SigAlg, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        match (alg, key) {
            (SigAlg::P256Sha256, PrivateKey::P256(k)) => {
                let d = Zeroizing::new(k.to_bytes());
                let public = p256::EncodedPoint::from(k.public_key());
                let pair = signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    d.as_slice(),
                    public.as_bytes(),
                    &rng,
                )
                .map_err(|_| signing_error(alg))?;
                let sig = pair.sign(&rng, msg).map_err(|_| signing_error(alg))?;
                Ok(sig.as_ref().to_vec())
            }
            (SigAlg::Ed25519, PrivateKey::Ed25519(k)) => {
                let seed = Zeroizing::new(k.to_bytes());
                let public = k.verifying_key().to_bytes();
                let pair =
                    signature::Ed25519KeyPair::from_seed_and_public_key(seed.as_slice(), &public)
                        .map_err(|_| signing_error(alg))?;
                debug_assert_eq!(pair.public_key().as_ref(), &public);
                Ok(pair.sign(msg).as_ref().to_vec())
            }
            (SigAlg::Rs256, PrivateKey::Rsa(k)) => {
                let der = k.to_pkcs1_der().map_err(|_| signing_error(alg))?;
                let pair = signature::RsaKeyPair::from_der(der.as_bytes())
                    .map_err(|_| signing_error(alg))?;
                let mut sig = alloc::vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| signing_error(alg))?;
                Ok(sig)
            }
            (alg, key) => Err(CryptoError::KeyAlgMismatch {
                alg,
                key: key.key_type(),
            }),
        }
    }

    fn verify(
        &self,
        alg: SigAlg,
        key: &PublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        let bad = CryptoError::BadSignature { alg };
        match (alg, key) {
            (SigAlg::P256Sha256, PublicKey::P256(k)) => {
                if sig.len() != 64 {
                    return Err(CryptoError::MalformedSignature {
                        alg,
                        len: sig.len(),
                    });
                }
                let point = p256::EncodedPoint::from(k);
                signature::UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    point.as_bytes(),
                )
                .verify(msg, sig)
                .map_err(|_| bad)
            }
            (SigAlg::Ed25519, PublicKey::Ed25519(k)) => {
                if sig.len() != 64 {
                    return Err(CryptoError::MalformedSignature {
                        alg,
                        len: sig.len(),
                    });
                }
                signature::UnparsedPublicKey::new(&signature::ED25519, k.as_bytes())
                    .verify(msg, sig)
                    .map_err(|_| bad)
            }
            (SigAlg::Rs256, PublicKey::Rsa(k)) => {
                if sig.len() != k.size() {
                    return Err(CryptoError::MalformedSignature {
                        alg,
                        len: sig.len(),
                    });
                }
                let PublicComponents::Rsa { n, e } = key.components() else {
                    return Err(bad);
                };
                signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                    .map_err(|_| bad)
            }
            (alg, key) => Err(CryptoError::KeyAlgMismatch {
                alg,
                key: key.key_type(),
            }),
        }
    }

    fn ecdh_p256(
        &self,
        private: &p256::SecretKey,
        peer: &p256::PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        rc_ecdh(private, peer)
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        rc_hkdf(salt, ikm, info, out)
    }

    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; 32] {
        rc_hmac(key, data)
    }

    fn aes_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        rc_kw_wrap(kek, key)
    }

    fn aes_kw_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
        rc_kw_unwrap(kek, wrapped)
    }

    fn aes_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = gcm_key(key)?;
        let nonce = gcm_nonce(nonce)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(nonce, ring::aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::AeadSeal)?;
        Ok(buf)
    }

    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = gcm_key(key)?;
        let nonce = gcm_nonce(nonce)?;
        let mut buf = ciphertext.to_vec();
        let len = key
            .open_in_place(nonce, ring::aead::Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::AeadOpen)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn aes_ctr_apply(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        rc_ctr(key, iv, data)
    }
}

fn gcm_key(key: &[u8]) -> Result<ring::aead::LessSafeKey, CryptoError> {
    let alg = match key.len() {
        16 => &ring::aead::AES_128_GCM,
        32 => &ring::aead::AES_256_GCM,
        len => {
            return Err(CryptoError::InvalidLength {
                what: "AES-GCM key",
                len,
            })
        }
    };
    ring::aead::UnboundKey::new(alg, key)
        .map(ring::aead::LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidLength {
            what: "AES-GCM key",
            len: key.len(),
        })
}

fn gcm_nonce(nonce: &[u8]) -> Result<ring::aead::Nonce, CryptoError> {
    ring::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::InvalidLength {
        what: "AES-GCM nonce",
        len: nonce.len(),
    })
}
