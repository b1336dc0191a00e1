//! `RingProvider`: ring 0.17 for SHA-256, signatures and AES-GCM; RustCrypto for the rest.

use alloc::vec::Vec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ring::signature;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use crate::provider::rustcrypto_methods;
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
/// ring key pairs are prepared from the `PrivateKey` once and kept in a process-wide
/// cache (see [`RingProvider::sign`]): building one derives the public key and lets ring
/// validate the pair (~150 µs for P-256, milliseconds for RSA), which used to be paid on
/// every signature; a cached P-256 signature costs ring's native ~25 µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingProvider;

/// A ring key pair prepared from a [`PrivateKey`].
enum Prepared {
    /// The ring pair and the public key (deriving it is the expensive part).
    P256(signature::EcdsaKeyPair, p256::PublicKey),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

/// Most key pairs the cache holds; when full it is emptied (a TAM signs with a handful of
/// keys; a process simulating many devices refills it at the old per-call cost).
const KEY_CACHE_MAX: usize = 8192;

type KeyCache = Mutex<HashMap<[u8; 32], Arc<Prepared>>>;

/// Process-wide cache of prepared key pairs, keyed by a SHA-256 over a domain label, the
/// algorithm and the private key's encoding (the secret itself is never a map key; the
/// digest of a 256-bit secret reveals nothing usable).
fn key_cache() -> &'static KeyCache {
    static CACHE: OnceLock<KeyCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cache_key(alg: SigAlg, secret: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"otrp-crypto ring key cache\0");
    ctx.update(&[match alg {
        SigAlg::P256Sha256 => 1,
        SigAlg::Ed25519 => 2,
        SigAlg::Rs256 => 3,
    }]);
    ctx.update(secret);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The prepared pair for `key`, built with `build` on a cache miss.
fn prepared(
    alg: SigAlg,
    secret: &[u8],
    build: impl FnOnce() -> Result<Prepared, CryptoError>,
) -> Result<Arc<Prepared>, CryptoError> {
    let id = cache_key(alg, secret);
    let cache = key_cache();
    if let Some(p) = cache
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get(&id)
    {
        return Ok(p.clone());
    }
    // Built outside the lock: two threads may both build the same pair once.
    let p = Arc::new(build()?);
    let mut map = cache.lock().unwrap_or_else(|poison| poison.into_inner());
    if map.len() >= KEY_CACHE_MAX {
        map.clear();
    }
    map.insert(id, p.clone());
    Ok(p)
}

fn signing_error(alg: SigAlg) -> CryptoError {
    CryptoError::Signing { alg }
}

/// The cached P-256 pair of `k` (`d`: its scalar bytes).
fn prepared_p256(
    k: &p256::SecretKey,
    d: &[u8],
    rng: &ring::rand::SystemRandom,
) -> Result<Arc<Prepared>, CryptoError> {
    let alg = SigAlg::P256Sha256;
    prepared(alg, d, || {
        let public_key = k.public_key();
        let public = p256::EncodedPoint::from(public_key);
        signature::EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            d,
            public.as_bytes(),
            rng,
        )
        .map(|pair| Prepared::P256(pair, public_key))
        .map_err(|_| signing_error(alg))
    })
}

impl CryptoProvider for RingProvider {
    /// P-256: from the key-pair cache (the scalar multiplication is done once per key);
    /// Ed25519 and RSA keys carry their public part, as in [`PrivateKey::public_key`].
    fn derive_public_key(&self, key: &PrivateKey) -> PublicKey {
        if let PrivateKey::P256(k) = key {
            let d = Zeroizing::new(k.to_bytes());
            if let Ok(p) = prepared_p256(k, &d, &ring::rand::SystemRandom::new()) {
                if let Prepared::P256(_, public) = p.as_ref() {
                    return PublicKey::P256(*public);
                }
            }
        }
        key.public_key()
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Signs with a key pair prepared once per private key and cached for the life of
    /// the process (semantics unchanged: same algorithms, same errors, randomized ECDSA).
    fn sign(&self, alg: SigAlg, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        let pair = match (alg, key) {
            (SigAlg::P256Sha256, PrivateKey::P256(k)) => {
                let d = Zeroizing::new(k.to_bytes());
                prepared_p256(k, &d, &rng)?
            }
            (SigAlg::Ed25519, PrivateKey::Ed25519(k)) => {
                let seed = Zeroizing::new(k.to_bytes());
                prepared(alg, seed.as_slice(), || {
                    let public = k.verifying_key().to_bytes();
                    signature::Ed25519KeyPair::from_seed_and_public_key(seed.as_slice(), &public)
                        .map(Prepared::Ed25519)
                        .map_err(|_| signing_error(alg))
                })?
            }
            (SigAlg::Rs256, PrivateKey::Rsa(k)) => {
                let der = k.to_pkcs1_der().map_err(|_| signing_error(alg))?;
                prepared(alg, der.as_bytes(), || {
                    signature::RsaKeyPair::from_der(der.as_bytes())
                        .map(Prepared::Rsa)
                        .map_err(|_| signing_error(alg))
                })?
            }
            (alg, key) => {
                return Err(CryptoError::KeyAlgMismatch {
                    alg,
                    key: key.key_type(),
                })
            }
        };
        match pair.as_ref() {
            Prepared::P256(pair, _) => {
                let sig = pair.sign(&rng, msg).map_err(|_| signing_error(alg))?;
                Ok(sig.as_ref().to_vec())
            }
            Prepared::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            Prepared::Rsa(pair) => {
                let mut sig = alloc::vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| signing_error(alg))?;
                Ok(sig)
            }
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

    rustcrypto_methods!();
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
