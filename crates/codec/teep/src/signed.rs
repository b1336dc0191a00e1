//! COSE protection of TEEP messages (ED §4.1, §8.1) on top of `otrp-cose`.
//!
//! * [`sign1`] / [`sign1_with_suite`]: COSE_Sign1 (tag 18) with one key, `kid` = RFC 9679
//!   thumbprint of the signer's key, external_aad empty.
//! * [`sign_query_request`]: COSE_Sign (tag 98) with one signature per cipher suite the
//!   QueryRequest lists, for the first QueryRequest when the Agent's suite is unknown.
//! * [`verify`]: accepts COSE_Sign1 or COSE_Sign (tagged or not), verifies against the
//!   trusted keys (for COSE_Sign one valid signature suffices; unknown algorithms are
//!   skipped), then decodes the payload as a TEEP message under [`DecodeLimits`].
//!
//! Cipher suites map to signing as: `[[18, -9]]` ESP256 / `[[18, -7]]` ES256 →
//! [`SigAlg::P256Sha256`], `[[18, -19]]` Ed25519 / `[[18, -8]]` EdDSA → [`SigAlg::Ed25519`];
//! the id generation of the suite decides which id goes on the wire.

use alloc::vec::Vec;
use otrp_cbor::CborError;

use coset::iana::EnumI64;
use coset::RegisteredLabelWithPrivate;
use otrp_cose::{CoseError, CoseMessage, KidMode, SignOptions, SignPolicy};
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey, SigAlg};

use crate::cbor::DecodeLimits;
use crate::error::TeepError;
use crate::messages::{QueryRequest, TeepMessage};
use crate::types::{cose_type, CipherOperation, TeepCipherSuite};

/// Errors of signing and verifying TEEP messages.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignedError {
    /// The COSE layer failed (malformed, bad signature, unknown critical header, …).
    #[error("COSE: {0}")]
    Cose(#[from] CoseError),
    /// The payload is not a valid TEEP message (or the message to sign is invalid).
    #[error("TEEP payload: {0}")]
    Teep(#[from] TeepError),
    /// The cipher suite is not a single COSE_Sign1 operation with a known algorithm.
    #[error("cipher suite {0:?} is not a COSE_Sign1 suite with a supported algorithm")]
    UnsupportedSuite(TeepCipherSuite),
    /// No key of the algorithm a cipher suite needs was supplied.
    #[error("no signing key for {0:?}")]
    NoKeyFor(SigAlg),
    /// The key does not fit the requested cipher suite.
    #[error("the key signs {key:?}, the cipher suite needs {suite:?}")]
    KeyMismatch {
        /// Algorithm of the key.
        key: SigAlg,
        /// Algorithm of the suite.
        suite: SigAlg,
    },
    /// The bytes are neither COSE_Sign1 nor COSE_Sign.
    #[error("not a COSE_Sign1 or COSE_Sign message")]
    NotSigned,
    /// The QueryRequest lists no cipher suite to sign with.
    #[error("the QueryRequest lists no cipher suite")]
    NoSuites,
}

/// Generation of a COSE algorithm id (`-9`/`-19` new, `-7`/`-8` legacy).
pub fn alg_generation(alg_id: i64) -> AlgIdGeneration {
    match alg_id {
        crate::cose_alg::ES256 | crate::cose_alg::EDDSA => AlgIdGeneration::Legacy,
        _ => AlgIdGeneration::New,
    }
}

impl TeepCipherSuite {
    /// The signature algorithm and id generation of a single-COSE_Sign1 suite.
    pub fn signing(&self) -> Option<(SigAlg, AlgIdGeneration)> {
        let id = self.sign1_alg()?;
        Some((SigAlg::from_cose(id)?, alg_generation(id)))
    }

    /// The COSE_Sign1 suite for `alg` with ids of generation `gen`.
    pub fn for_alg(alg: SigAlg, gen: AlgIdGeneration) -> TeepCipherSuite {
        TeepCipherSuite::from_ops(alloc::vec![CipherOperation {
            cose_type: cose_type::SIGN1,
            alg: alg.cose_id(gen),
        }])
    }
}

fn options(gen: AlgIdGeneration) -> SignOptions {
    SignOptions {
        alg_gen: gen,
        kid: KidMode::Thumbprint,
        tagged: true,
    }
}

/// Wire profile of the messages a TAM sends (docs/CONSTRAINED.md, "Compact profile").
///
/// Both profiles are plain draft-ietf-teep-protocol messages; an Agent accepts either
/// without being told which one it gets.
///
/// * [`WireProfile::Standard`]: the COSE_Sign1 carries `kid` = the RFC 9679 thumbprint
///   of the TAM key (32 bytes), tokens have 16 random bytes.
/// * [`WireProfile::Compact`], for constrained links: no `kid` (it is optional in COSE,
///   RFC 9052 §3.1, and lies in the unsigned header anyway: it only selects a key). The
///   Agent's candidate keys are already determined — its trusted TAM keys, a small
///   configured set — so it tries each key of the algorithm in the protected header;
///   a message that no trusted key verifies is refused exactly as with a kid. Tokens have
///   [`COMPACT_TOKEN_LEN`] = 8 random bytes, the draft's minimum (`bstr .size (8..64)`):
///   the token stays one-time because the TAM consumes it in its store, and 2^64 values
///   make a collision among a TAM's outstanding tokens negligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireProfile {
    /// Thumbprint kid, 16-byte tokens (the default).
    #[default]
    Standard,
    /// No kid, 8-byte tokens.
    Compact,
}

/// Token length of [`WireProfile::Standard`].
pub const STANDARD_TOKEN_LEN: usize = 16;
/// Token length of [`WireProfile::Compact`]: the draft's minimum.
pub const COMPACT_TOKEN_LEN: usize = 8;

impl WireProfile {
    /// The kid the profile puts in the unprotected header.
    pub fn kid_mode(self) -> KidMode {
        match self {
            WireProfile::Standard => KidMode::Thumbprint,
            WireProfile::Compact => KidMode::None,
        }
    }
    /// Random bytes in a token the TAM issues under this profile.
    pub fn token_len(self) -> usize {
        match self {
            WireProfile::Standard => STANDARD_TOKEN_LEN,
            WireProfile::Compact => COMPACT_TOKEN_LEN,
        }
    }
}

/// Signs `msg` as a tagged COSE_Sign1 with `key` (its default algorithm), ids of
/// generation `gen`, kid = the key's RFC 9679 thumbprint.
pub fn sign1(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    msg: &TeepMessage,
    gen: AlgIdGeneration,
) -> Result<Vec<u8>, SignedError> {
    let payload = msg.to_vec()?;
    Ok(otrp_cose::sign1(
        provider,
        key,
        &payload,
        false,
        &options(gen),
    )?)
}

/// Authenticates `msg` as a tagged COSE_Mac0 (HMAC 256/256) under the symmetric `key`,
/// with `kid` in the unprotected header and `external_aad` covered by the tag: a batch
/// report under the device's report key (`otrp_crypto::report_key`), whose external_aad
/// is [`batch_report_aad`].
pub fn mac0(
    provider: &dyn CryptoProvider,
    key: &[u8],
    kid: &[u8],
    external_aad: &[u8],
    msg: &TeepMessage,
) -> Result<Vec<u8>, SignedError> {
    let payload = msg.to_vec()?;
    Ok(otrp_cose::mac0_with(
        provider,
        key,
        &payload,
        &otrp_cose::Mac0Options {
            kid,
            external_aad,
            detached: false,
            tagged: true,
        },
    )?)
}

/// The external_aad of a MAC'd batch report: the CBOR array
/// `["otrp-batch-report", batch-id, batch-sequence]`. The tag thus covers the package the
/// report is about, which travels only in the request's URL (`/batch/<id>/reports?seq=N`):
/// a report cannot be replayed for another batch or another package.
pub fn batch_report_aad(batch_id: &str, sequence: u64) -> Vec<u8> {
    use ciborium::value::Value;
    let v = Value::Array(alloc::vec![
        Value::Text("otrp-batch-report".into()),
        Value::Text(batch_id.into()),
        Value::Integer(sequence.into()),
    ]);
    let mut out = Vec::new();
    // Writing a small array of text and an integer into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&v, &mut out);
    out
}

/// Signs `msg` as COSE_Sign1 under `suite`, checking that `key` fits it.
pub fn sign1_with_suite(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    msg: &TeepMessage,
    suite: &TeepCipherSuite,
) -> Result<Vec<u8>, SignedError> {
    let (alg, gen) = suite
        .signing()
        .ok_or_else(|| SignedError::UnsupportedSuite(suite.clone()))?;
    if key.default_alg() != alg {
        return Err(SignedError::KeyMismatch {
            key: key.default_alg(),
            suite: alg,
        });
    }
    sign1(provider, key, msg, gen)
}

/// [`sign1_with_suite`] under a [`WireProfile`] (which decides the kid).
pub fn sign1_with_suite_profile(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    msg: &TeepMessage,
    suite: &TeepCipherSuite,
    profile: WireProfile,
) -> Result<Vec<u8>, SignedError> {
    let (alg, gen) = suite
        .signing()
        .ok_or_else(|| SignedError::UnsupportedSuite(suite.clone()))?;
    if key.default_alg() != alg {
        return Err(SignedError::KeyMismatch {
            key: key.default_alg(),
            suite: alg,
        });
    }
    sign1_profile(provider, key, msg, gen, profile)
}

/// [`sign1`] under a [`WireProfile`]: with [`WireProfile::Compact`] the COSE_Sign1 has
/// no kid.
pub fn sign1_profile(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    msg: &TeepMessage,
    gen: AlgIdGeneration,
    profile: WireProfile,
) -> Result<Vec<u8>, SignedError> {
    let payload = msg.to_vec()?;
    let opts = SignOptions {
        kid: profile.kid_mode(),
        ..options(gen)
    };
    Ok(otrp_cose::sign1(provider, key, &payload, false, &opts)?)
}

/// Signs a QueryRequest as COSE_Sign with one signature per algorithm among its
/// `supported-teep-cipher-suites` (ED §8.1: the first QueryRequest, when the Agent's
/// suite is unknown). `keys` holds the TAM's keys; each listed suite needs one of the
/// matching type. Suites this crate cannot sign with are an error; repeated algorithms
/// get one signature. All signatures use the id generation of the first suite.
pub fn sign_query_request(
    provider: &dyn CryptoProvider,
    keys: &[&PrivateKey],
    qr: &QueryRequest,
) -> Result<Vec<u8>, SignedError> {
    let mut signers: Vec<(&PrivateKey, SigAlg)> = Vec::new();
    let mut gen = None;
    for suite in &qr.supported_teep_cipher_suites {
        let (alg, g) = suite
            .signing()
            .ok_or_else(|| SignedError::UnsupportedSuite(suite.clone()))?;
        gen.get_or_insert(g);
        if signers.iter().any(|(_, a)| *a == alg) {
            continue;
        }
        let key = keys
            .iter()
            .find(|k| k.default_alg() == alg)
            .ok_or(SignedError::NoKeyFor(alg))?;
        signers.push((key, alg));
    }
    let gen = gen.ok_or(SignedError::NoSuites)?;
    let payload = TeepMessage::QueryRequest(qr.clone()).to_vec()?;
    Ok(otrp_cose::sign(
        provider,
        &signers,
        &payload,
        &options(gen),
    )?)
}

/// Which COSE structure protected a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// COSE_Sign1.
    Sign1,
    /// COSE_Sign (`verified` signatures out of `total`).
    Sign {
        /// Signatures that verified.
        verified: usize,
        /// Signatures in the message.
        total: usize,
    },
}

/// A verified and decoded TEEP message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The decoded message.
    pub message: TeepMessage,
    /// The cipher suite of the (first) signature that verified, with the algorithm id as
    /// it was on the wire; answer with the same suite (ED §8.1).
    pub suite: TeepCipherSuite,
    /// Algorithm of that signature.
    pub alg: SigAlg,
    /// Its kid header, if any.
    pub kid: Option<Vec<u8>>,
    /// Index into the `keys` argument of the key that verified it.
    pub key_index: usize,
    /// COSE_Sign1 or COSE_Sign.
    pub protection: Protection,
}

fn wire_alg(alg: &Option<coset::Algorithm>) -> Option<i64> {
    match alg.as_ref()? {
        RegisteredLabelWithPrivate::Assigned(a) => Some(a.to_i64()),
        RegisteredLabelWithPrivate::PrivateUse(i) => Some(*i),
        RegisteredLabelWithPrivate::Text(_) => None,
    }
}

/// Verifies a COSE_Sign1 or COSE_Sign against `keys` and decodes its TEEP payload under
/// the default [`DecodeLimits`].
pub fn verify(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[PublicKey],
) -> Result<Verified, SignedError> {
    verify_with_limits(provider, bytes, keys, &DecodeLimits::DEFAULT)
}

/// [`verify`] with explicit limits for the payload.
pub fn verify_with_limits(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[PublicKey],
    limits: &DecodeLimits,
) -> Result<Verified, SignedError> {
    if bytes.len() > limits.max_input_len {
        return Err(TeepError::Cbor(CborError::InputTooLarge {
            len: bytes.len(),
            max: limits.max_input_len,
        })
        .into());
    }
    match otrp_cose::peek(bytes)? {
        CoseMessage::Sign1(parsed) => {
            let v = otrp_cose::verify_sign1(provider, bytes, None, keys)?;
            let id = wire_alg(&parsed.protected.header.alg)
                .unwrap_or(v.alg.cose_id(AlgIdGeneration::New));
            Ok(Verified {
                message: TeepMessage::decode_with_limits(&v.payload, limits)?,
                suite: suite_of(id),
                alg: v.alg,
                kid: v.kid,
                key_index: v.key_index,
                protection: Protection::Sign1,
            })
        }
        CoseMessage::Sign(parsed) => {
            let v = otrp_cose::verify_sign(provider, bytes, None, keys, SignPolicy::AnyOne)?;
            let first = v.signers.first().ok_or(SignedError::NotSigned)?;
            let id = parsed
                .signatures
                .get(first.signature_index)
                .and_then(|s| wire_alg(&s.protected.header.alg))
                .unwrap_or(first.alg.cose_id(AlgIdGeneration::New));
            Ok(Verified {
                message: TeepMessage::decode_with_limits(&v.payload, limits)?,
                suite: suite_of(id),
                alg: first.alg,
                kid: first.kid.clone(),
                key_index: first.key_index,
                protection: Protection::Sign {
                    verified: v.signers.len(),
                    total: parsed.signatures.len(),
                },
            })
        }
        _ => Err(SignedError::NotSigned),
    }
}

fn suite_of(alg_id: i64) -> TeepCipherSuite {
    TeepCipherSuite::from_ops(alloc::vec![CipherOperation {
        cose_type: cose_type::SIGN1,
        alg: alg_id,
    }])
}
