//! The `CryptoProvider` trait and the pure-Rust (no_std) `RustCryptoProvider`.

use alloc::vec::Vec;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, Payload};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::Mac;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, PrivateKey, PublicKey, SigAlg};

/// The primitives OpenTrust needs, behind one object-safe trait (as rustls does it).
///
/// Implementations must be deterministic where the algorithm allows it (the
/// RustCrypto provider signs ECDSA with RFC 6979 nonces).
pub trait CryptoProvider: Send + Sync {
    /// SHA-256 of `data`.
    fn sha256(&self, data: &[u8]) -> [u8; 32];
    /// Signs `msg` with `alg`. ECDSA signatures are raw `r || s` (64 bytes), as COSE and JWS need.
    fn sign(&self, alg: SigAlg, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// The public key of `key`, as [`PrivateKey::public_key`] computes it. Providers
    /// may cache it: deriving a P-256 public key is a scalar multiplication, and a COSE
    /// `kid` (thumbprint) is computed from it on every signature.
    fn derive_public_key(&self, key: &PrivateKey) -> PublicKey {
        key.public_key()
    }
    /// Verifies `sig` over `msg`; `Err(CryptoError::BadSignature)` when it does not verify.
    fn verify(
        &self,
        alg: SigAlg,
        key: &PublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError>;
    /// ECDH on P-256: the x coordinate of the shared point.
    fn ecdh_p256(
        &self,
        private: &p256::SecretKey,
        peer: &p256::PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError>;
    /// HKDF-SHA-256 (RFC 5869) into `out`; an empty salt means the default salt.
    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError>;
    /// HMAC-SHA-256.
    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; 32];
    /// RFC 3394 AES key wrap with a 16- or 32-byte KEK.
    fn aes_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// RFC 3394 AES key unwrap with a 16- or 32-byte KEK.
    fn aes_kw_unwrap(&self, kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// AES-GCM encryption (16- or 32-byte key, 12-byte nonce): returns `ciphertext || tag`.
    fn aes_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
    /// AES-GCM decryption of `ciphertext || tag`.
    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
    /// AES-128/256-CTR in place, big-endian 128-bit counter starting at `iv`.
    fn aes_ctr_apply(&self, key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError>;
}

/// Pure-Rust provider on the RustCrypto crates; works in `no_std` + `alloc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoProvider;

fn mismatch(alg: SigAlg, key: &'static str) -> CryptoError {
    CryptoError::KeyAlgMismatch { alg, key }
}

fn check_gcm_nonce(nonce: &[u8]) -> Result<(), CryptoError> {
    if nonce.len() != 12 {
        return Err(CryptoError::InvalidLength {
            what: "AES-GCM nonce",
            len: nonce.len(),
        });
    }
    Ok(())
}

pub(crate) fn rc_sign(alg: SigAlg, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use ecdsa::signature::Signer;
    match (alg, key) {
        (SigAlg::P256Sha256, PrivateKey::P256(k)) => {
            let sk = p256::ecdsa::SigningKey::from(k);
            let sig: p256::ecdsa::Signature =
                sk.try_sign(msg).map_err(|_| CryptoError::Signing { alg })?;
            Ok(sig.to_bytes().to_vec())
        }
        (SigAlg::Ed25519, PrivateKey::Ed25519(k)) => Ok(k.sign(msg).to_bytes().to_vec()),
        (SigAlg::Rs256, PrivateKey::Rsa(k)) => {
            use rsa::signature::SignatureEncoding;
            let sk = rsa::pkcs1v15::SigningKey::<Sha256>::new(k.clone());
            let sig = sk.try_sign(msg).map_err(|_| CryptoError::Signing { alg })?;
            Ok(sig.to_vec())
        }
        (alg, key) => Err(mismatch(alg, key.key_type())),
    }
}

pub(crate) fn rc_verify(
    alg: SigAlg,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    use ecdsa::signature::Verifier;
    let malformed = CryptoError::MalformedSignature {
        alg,
        len: sig.len(),
    };
    let bad = CryptoError::BadSignature { alg };
    match (alg, key) {
        (SigAlg::P256Sha256, PublicKey::P256(k)) => {
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(|_| malformed)?;
            p256::ecdsa::VerifyingKey::from(k)
                .verify(msg, &s)
                .map_err(|_| bad)
        }
        (SigAlg::Ed25519, PublicKey::Ed25519(k)) => {
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|_| malformed)?;
            k.verify_strict(msg, &s).map_err(|_| bad)
        }
        (SigAlg::Rs256, PublicKey::Rsa(k)) => {
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| malformed)?;
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                .verify(msg, &s)
                .map_err(|_| bad)
        }
        (alg, key) => Err(mismatch(alg, key.key_type())),
    }
}

/// AES-GCM with the cipher the key length selects (16 or 32 bytes): seals `payload` when
/// `seal`, else opens it; a failed operation is `AeadSeal` / `AeadOpen`.
fn rc_gcm(
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
    seal: bool,
) -> Result<Vec<u8>, CryptoError> {
    /// The operation with cipher `C`; `None` on any failure.
    fn run<C: KeyInit + Aead + AeadCore<NonceSize = U12>>(
        key: &[u8],
        nonce: &aes_gcm::Nonce<U12>,
        payload: Payload<'_, '_>,
        seal: bool,
    ) -> Option<Vec<u8>> {
        let cipher = C::new_from_slice(key).ok()?;
        if seal {
            cipher.encrypt(nonce, payload).ok()
        } else {
            cipher.decrypt(nonce, payload).ok()
        }
    }
    check_gcm_nonce(nonce)?;
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    match key.len() {
        16 => run::<aes_gcm::Aes128Gcm>(key, nonce, payload, seal),
        32 => run::<aes_gcm::Aes256Gcm>(key, nonce, payload, seal),
        len => {
            return Err(CryptoError::InvalidLength {
                what: "AES-GCM key",
                len,
            })
        }
    }
    .ok_or(if seal {
        CryptoError::AeadSeal
    } else {
        CryptoError::AeadOpen
    })
}

pub(crate) fn rc_ecdh(
    private: &p256::SecretKey,
    peer: &p256::PublicKey,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let shared = p256::ecdh::diffie_hellman(private.to_nonzero_scalar(), peer.as_affine());
    let bytes = shared.raw_secret_bytes();
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(CryptoError::Ecdh {
            what: "unexpected shared secret length",
        });
    }
    out.copy_from_slice(bytes);
    Ok(out)
}

pub(crate) fn rc_hkdf(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    hkdf::Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out)
        .map_err(|_| CryptoError::HkdfLength { len: out.len() })
}

pub(crate) fn rc_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an
    // all-zero MAC would only appear if the crate broke that guarantee.
    match <hmac::Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// An AES-KW key-encryption key of 16 or 32 bytes.
// A short-lived local of one wrap or unwrap: boxing the larger key schedule would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
enum Kek {
    Aes128(aes_kw::KekAes128),
    Aes256(aes_kw::KekAes256),
}

impl Kek {
    /// The KEK for `kek`; any other length than 16 or 32 bytes is `InvalidLength`.
    fn new(kek: &[u8]) -> Result<Kek, CryptoError> {
        let bad = CryptoError::InvalidLength {
            what: "AES-KW KEK",
            len: kek.len(),
        };
        match kek.len() {
            16 => aes_kw::KekAes128::try_from(kek)
                .map(Kek::Aes128)
                .map_err(|_| bad),
            32 => aes_kw::KekAes256::try_from(kek)
                .map(Kek::Aes256)
                .map_err(|_| bad),
            _ => Err(bad),
        }
    }
}

pub(crate) fn rc_kw_wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if key.len() < 16 || key.len() % 8 != 0 {
        return Err(CryptoError::KeyWrap { len: key.len() });
    }
    match Kek::new(kek)? {
        Kek::Aes128(k) => k.wrap_vec(key),
        Kek::Aes256(k) => k.wrap_vec(key),
    }
    .map_err(|_| CryptoError::KeyWrap { len: key.len() })
}

pub(crate) fn rc_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if wrapped.len() < 24 || wrapped.len() % 8 != 0 {
        return Err(CryptoError::InvalidLength {
            what: "AES-KW wrapped key",
            len: wrapped.len(),
        });
    }
    match Kek::new(kek)? {
        Kek::Aes128(k) => k.unwrap_vec(wrapped),
        Kek::Aes256(k) => k.unwrap_vec(wrapped),
    }
    .map_err(|_| CryptoError::KeyUnwrap)
}

pub(crate) fn rc_ctr(key: &[u8], iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
    let bad_key = CryptoError::InvalidLength {
        what: "AES-CTR key",
        len: key.len(),
    };
    match key.len() {
        16 => ctr::Ctr128BE::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| bad_key)?
            .apply_keystream(data),
        32 => ctr::Ctr128BE::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| bad_key)?
            .apply_keystream(data),
        _ => return Err(bad_key),
    }
    Ok(())
}

/// The [`CryptoProvider`] methods every provider of this crate takes from RustCrypto (ECDH,
/// HKDF, HMAC, AES-KW, AES-CTR), as items for an `impl CryptoProvider` block.
macro_rules! rustcrypto_methods {
    () => {
        fn ecdh_p256(
            &self,
            private: &p256::SecretKey,
            peer: &p256::PublicKey,
        ) -> Result<zeroize::Zeroizing<[u8; 32]>, $crate::CryptoError> {
            $crate::provider::rc_ecdh(private, peer)
        }

        fn hkdf_sha256(
            &self,
            salt: &[u8],
            ikm: &[u8],
            info: &[u8],
            out: &mut [u8],
        ) -> Result<(), $crate::CryptoError> {
            $crate::provider::rc_hkdf(salt, ikm, info, out)
        }

        fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; 32] {
            $crate::provider::rc_hmac(key, data)
        }

        fn aes_kw_wrap(
            &self,
            kek: &[u8],
            key: &[u8],
        ) -> Result<alloc::vec::Vec<u8>, $crate::CryptoError> {
            $crate::provider::rc_kw_wrap(kek, key)
        }

        fn aes_kw_unwrap(
            &self,
            kek: &[u8],
            wrapped: &[u8],
        ) -> Result<alloc::vec::Vec<u8>, $crate::CryptoError> {
            $crate::provider::rc_kw_unwrap(kek, wrapped)
        }

        fn aes_ctr_apply(
            &self,
            key: &[u8],
            iv: &[u8; 16],
            data: &mut [u8],
        ) -> Result<(), $crate::CryptoError> {
            $crate::provider::rc_ctr(key, iv, data)
        }
    };
}
#[cfg(feature = "ring")]
pub(crate) use rustcrypto_methods;

impl CryptoProvider for RustCryptoProvider {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn sign(&self, alg: SigAlg, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        rc_sign(alg, key, msg)
    }

    fn verify(
        &self,
        alg: SigAlg,
        key: &PublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), CryptoError> {
        rc_verify(alg, key, msg, sig)
    }

    fn aes_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        rc_gcm(key, nonce, payload, true)
    }

    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        rc_gcm(key, nonce, payload, false)
    }

    rustcrypto_methods!();
}
