//! EAT as a COSE_Sign1-protected CWT (RFC 9711 §7, TEEP profile ED §5): `kid` = RFC 9679
//! thumbprint of the signing key, untagged by default (the TEEP profile uses no CBOR tags).

use alloc::vec::Vec;
use otrp_cbor::CborError;

use otrp_cose::{KidMode, SignOptions};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey, SigAlg};

use crate::cbor::DecodeLimits;
use crate::claims::EatClaims;
use crate::error::EatError;

/// Errors of signing and verifying an EAT.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignedEatError {
    /// The COSE layer failed (malformed, bad signature, unknown critical header, …).
    #[error("COSE: {0}")]
    Cose(#[from] otrp_cose::CoseError),
    /// The payload is not a valid claims set (or the claims to sign are invalid).
    #[error("EAT claims: {0}")]
    Claims(#[from] EatError),
    /// The `kid` is absent or is not the thumbprint of the key that verified.
    #[error("kid is not the RFC 9679 thumbprint of the verifying key")]
    KidMismatch,
}

/// Options for [`sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EatSignOptions {
    /// Algorithm id generation (default: ESP256 -9 / Ed25519 -19).
    pub alg_gen: AlgIdGeneration,
    /// Emit the COSE_Sign1 tag 18 (default false: the TEEP profile uses no CBOR tags).
    pub tagged: bool,
}

/// Signs `claims` as a COSE_Sign1 with `key` (its default algorithm), kid = thumbprint.
pub fn sign(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    claims: &EatClaims,
    opts: &EatSignOptions,
) -> Result<Vec<u8>, SignedEatError> {
    let payload = claims.to_vec()?;
    let cose_opts = SignOptions {
        alg_gen: opts.alg_gen,
        kid: KidMode::Thumbprint,
        tagged: opts.tagged,
    };
    Ok(otrp_cose::sign1(
        provider, key, &payload, false, &cose_opts,
    )?)
}

/// A verified EAT.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEat {
    /// The claims set.
    pub claims: EatClaims,
    /// Signature algorithm.
    pub alg: SigAlg,
    /// The kid header.
    pub kid: Option<Vec<u8>>,
    /// Index into the `keys` argument of the key that verified.
    pub key_index: usize,
}

/// Verifies a COSE_Sign1 EAT (tagged or not) against `keys` and decodes the claims under
/// the default limits. The kid, when present, selects the key by thumbprint.
pub fn verify(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[PublicKey],
) -> Result<VerifiedEat, SignedEatError> {
    verify_with_limits(provider, bytes, keys, &DecodeLimits::DEFAULT)
}

/// [`verify`] with explicit limits for the claims set.
pub fn verify_with_limits(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[PublicKey],
    limits: &DecodeLimits,
) -> Result<VerifiedEat, SignedEatError> {
    if bytes.len() > limits.max_input_len {
        return Err(EatError::Cbor(CborError::InputTooLarge {
            len: bytes.len(),
            max: limits.max_input_len,
        })
        .into());
    }
    let v = otrp_cose::verify_sign1(provider, bytes, None, keys)?;
    Ok(VerifiedEat {
        claims: EatClaims::decode_with_limits(&v.payload, limits)?,
        alg: v.alg,
        kid: v.kid,
        key_index: v.key_index,
    })
}

/// Verifies an EAT under the TEEP profile: [`verify`], then the kid must be the RFC 9679
/// thumbprint of the verifying key, the claims must be in preferred serialization and pass
/// [`EatClaims::check_teep_profile`].
pub fn verify_teep(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[PublicKey],
) -> Result<VerifiedEat, SignedEatError> {
    let max = DecodeLimits::DEFAULT.max_input_len;
    if bytes.len() > max {
        return Err(EatError::Cbor(CborError::InputTooLarge {
            len: bytes.len(),
            max,
        })
        .into());
    }
    let v = otrp_cose::verify_sign1(provider, bytes, None, keys)?;
    let key = keys.get(v.key_index).ok_or(SignedEatError::KidMismatch)?;
    if v.kid.as_deref() != Some(&cose_key_thumbprint(key, provider)[..]) {
        return Err(SignedEatError::KidMismatch);
    }
    let claims = EatClaims::decode_teep(&v.payload)?;
    Ok(VerifiedEat {
        claims,
        alg: v.alg,
        kid: v.kid,
        key_index: v.key_index,
    })
}
