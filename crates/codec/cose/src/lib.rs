//! COSE for OpenTrust, on top of `coset` 0.4 and the `otrp_crypto::CryptoProvider` trait.
//!
//! * COSE_Key ↔ keys: [`cose_key_from_public`], [`cose_key_from_private`],
//!   [`public_from_cose_key`], [`private_from_cose_key`].
//! * COSE_Sign1: [`sign1`] / [`verify_sign1`] with attached (TEEP, EAT) or detached
//!   payload (SUIT authentication, external_aad empty: pass the *content* of
//!   `SUIT_Digest_bstr`, i.e. the encoded SUIT_Digest array, so that the Sig_structure's
//!   `payload: bstr` is the bstr-wrapped SUIT_Digest exactly as it appears in the
//!   authentication wrapper; checked against every published SUIT/TEEP envelope). COSE_Sign with several signers: [`sign`] / [`verify_sign`] + [`SignPolicy`].
//!   Both COSE algorithm id generations are accepted (-7/-9, -8/-19, -257); new ids are
//!   emitted by default ([`SignOptions`]); `kid` = RFC 9679 thumbprint. Critical header
//!   parameters other than 1–6 and -1 are rejected with
//!   [`CoseError::UnknownCriticalHeader`].
//! * [`peek`] classifies bytes as COSE_Sign1 / COSE_Sign / COSE_Encrypt / COSE_Encrypt0.
//! * [`encrypt`]: SUIT payload encryption (draft-ietf-suit-firmware-encryption):
//!   A128KW and ECDH-ES+A128KW recipients, A128GCM and A128CTR content.
//!
//! Deviations from `notes/crypto-api.md`:
//! * `provider` arguments are `&dyn CryptoProvider`; `rng` is `&mut impl CryptoRngCore`.
//! * [`sign`] always attaches the payload (as the contract's signature implies);
//!   [`verify_sign`] accepts a detached payload.
//! * `alg` must be in the protected header of signatures (RFC 9052 recommends it; every
//!   TEEP and SUIT example does it).
//! * `verify_sign1` / `verify_sign` take both tagged and untagged messages; a tag other
//!   than 18 / 98 is an error.
//! * `decrypt_payload` uses the COSE_Encrypt's own ciphertext when `ciphertext` is empty.
//! * Additions: [`parse_sign1`], [`parse_sign`], [`encrypt::parse_encryption_info`],
//!   [`cose_key_from_slice`], [`VerifiedSign`] / [`VerifiedSigner`], tag and algorithm
//!   constants.
//!
//! Performance note: `KidMode::Thumbprint` derives the signer's public key and hashes it
//! on every call (for P-256 a scalar multiplication, ~100 µs in release with RustCrypto);
//! hot signing paths (the TAM) should compute the kid once and pass `KidMode::Explicit`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod cbor;
pub mod encrypt;
mod error;
mod key;
mod mac;
mod sign;

pub use coset;
pub use error::CoseError;
pub use key::{
    cose_key_from_private, cose_key_from_public, cose_key_from_slice, private_from_cose_key,
    public_from_cose_key,
};
pub use mac::{
    mac0, mac0_with, parse_mac0, verify_mac0, verify_mac0_with, verify_parsed_mac0, Mac0Options,
    VerifiedMac0, ALG_HMAC_256_256, TAG_MAC0,
};
pub use sign::{
    parse_sign, parse_sign1, prepare_sign1, sign, sign1, verify_sign, verify_sign1, KidMode,
    PreparedSign1, SignOptions, SignPolicy, VerifiedSign, VerifiedSign1, VerifiedSigner, TAG_SIGN,
    TAG_SIGN1,
};

use coset::cbor::Value;
use coset::AsCborValue;

/// CBOR tag of COSE_Encrypt0.
pub const TAG_ENCRYPT0: u64 = 16;

/// A COSE message, as classified by [`peek`].
#[derive(Debug, Clone, PartialEq)]
pub enum CoseMessage {
    /// COSE_Sign1 (tag 18, or an untagged 4-array whose last item is a bstr).
    Sign1(coset::CoseSign1),
    /// COSE_Sign (tag 98, or an untagged 4-array of signatures with signature algorithms).
    Sign(coset::CoseSign),
    /// COSE_Encrypt (tag 96, or an untagged 4-array of recipients).
    Encrypt(coset::CoseEncrypt),
    /// COSE_Encrypt0 (tag 16, or an untagged 3-array).
    Encrypt0(coset::CoseEncrypt0),
    /// Well-formed CBOR that is none of the above (another tag or shape).
    Unknown,
}

/// Classifies `bytes` by tag, or for untagged input by structure, and parses it.
///
/// Untagged 4-arrays whose last item is an array are COSE_Sign when the first entry's
/// protected `alg` is a signature algorithm, else COSE_Encrypt. A tagged message that
/// does not parse as its tag says is an error; untagged bytes that fit no shape are
/// [`CoseMessage::Unknown`]. Malformed CBOR or trailing bytes are errors.
pub fn peek(bytes: &[u8]) -> Result<CoseMessage, CoseError> {
    const WHAT: &str = "COSE message";
    let value = cbor::read_value(WHAT, bytes)?;
    let (tag, inner) = match value {
        Value::Tag(t, inner) => (Some(t), *inner),
        v => (None, v),
    };
    let tag = match tag {
        Some(t) => t,
        None => match classify_untagged(&inner) {
            Some(t) => t,
            None => return Ok(CoseMessage::Unknown),
        },
    };
    Ok(match tag {
        TAG_SIGN1 => CoseMessage::Sign1(
            coset::CoseSign1::from_cbor_value(inner).map_err(CoseError::coset("COSE_Sign1"))?,
        ),
        TAG_SIGN => CoseMessage::Sign(
            coset::CoseSign::from_cbor_value(inner).map_err(CoseError::coset("COSE_Sign"))?,
        ),
        encrypt::TAG_ENCRYPT => CoseMessage::Encrypt(
            coset::CoseEncrypt::from_cbor_value(inner).map_err(CoseError::coset("COSE_Encrypt"))?,
        ),
        TAG_ENCRYPT0 => CoseMessage::Encrypt0(
            coset::CoseEncrypt0::from_cbor_value(inner)
                .map_err(CoseError::coset("COSE_Encrypt0"))?,
        ),
        _ => CoseMessage::Unknown,
    })
}

fn classify_untagged(value: &Value) -> Option<u64> {
    let items = value.as_array()?;
    let headers_ok = matches!(items.first(), Some(Value::Bytes(_)))
        && matches!(items.get(1), Some(Value::Map(_)));
    if !headers_ok {
        return None;
    }
    match (items.len(), items.get(2), items.get(3)) {
        (3, Some(Value::Bytes(_) | Value::Null), None) => Some(TAG_ENCRYPT0),
        (4, Some(Value::Bytes(_) | Value::Null), Some(Value::Bytes(_))) => Some(TAG_SIGN1),
        (4, Some(Value::Bytes(_) | Value::Null), Some(Value::Array(entries))) => {
            let first = entries.first()?.as_array()?;
            let protected = match first.first()? {
                Value::Bytes(b) if !b.is_empty() => cbor::read_value(WHAT_ENTRY, b).ok()?,
                _ => Value::Map(alloc::vec::Vec::new()),
            };
            let alg = protected.as_map().and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_integer() == Some(1.into()))
                    .and_then(|(_, v)| v.as_integer())
                    .and_then(|i| i64::try_from(i).ok())
            });
            match alg.and_then(otrp_crypto::SigAlg::from_cose) {
                Some(_) if first.len() == 3 => Some(TAG_SIGN),
                _ => Some(encrypt::TAG_ENCRYPT),
            }
        }
        _ => None,
    }
}

const WHAT_ENTRY: &str = "COSE_Signature/COSE_recipient protected header";
