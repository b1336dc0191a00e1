//! COSE_Mac0 (RFC 9052 §6) with HMAC 256/256, as SUIT uses it to authenticate manifests
//! under a pre-shared key (draft-ietf-suit-firmware-encryption's AES-KW examples).

use alloc::vec::Vec;

use coset::cbor::Value;
use coset::{AsCborValue, CoseMac0, CoseMac0Builder, HeaderBuilder, ProtectedHeader};
use otrp_crypto::CryptoProvider;
use subtle::ConstantTimeEq;

use crate::cbor::{alg_id, check_crit, precheck_crit, read_value, write_value};
use crate::sign::{payload_of, untag};
use crate::CoseError;

/// CBOR tag of COSE_Mac0.
pub const TAG_MAC0: u64 = 17;
/// COSE algorithm id of HMAC 256/256 (HMAC with SHA-256, full 32-byte tag).
pub const ALG_HMAC_256_256: i64 = 5;

/// Result of [`verify_mac0`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMac0 {
    /// The payload (attached, or the detached one that was supplied).
    pub payload: Vec<u8>,
    /// Index into the `keys` argument of the key whose tag matched.
    pub key_index: usize,
}

/// Parses a COSE_Mac0 (tag 17 optional), checked for trailing bytes and unknown critical
/// headers.
pub fn parse_mac0(bytes: &[u8]) -> Result<CoseMac0, CoseError> {
    const WHAT: &str = "COSE_Mac0";
    let value = untag(WHAT, TAG_MAC0, read_value(WHAT, bytes)?)?;
    if let Value::Array(items) = &value {
        if let Some(p) = items.first() {
            precheck_crit("COSE_Mac0 protected header", p)?;
        }
    }
    let msg = CoseMac0::from_cbor_value(value).map_err(CoseError::coset(WHAT))?;
    check_crit("COSE_Mac0 protected header", &msg.protected.header)?;
    check_crit("COSE_Mac0 unprotected header", &msg.unprotected)?;
    Ok(msg)
}

fn hmac_alg(protected: &ProtectedHeader) -> Result<(), CoseError> {
    const WHAT: &str = "COSE_Mac0 protected header";
    let alg = protected
        .header
        .alg
        .as_ref()
        .ok_or(CoseError::MissingAlgorithm { what: WHAT })?;
    match alg_id(alg) {
        Ok(ALG_HMAC_256_256) => Ok(()),
        Ok(other) => Err(CoseError::UnsupportedAlgorithm {
            what: WHAT,
            alg: alloc::format!("{other}"),
        }),
        Err(text) => Err(CoseError::UnsupportedAlgorithm {
            what: WHAT,
            alg: text,
        }),
    }
}

/// Creates a COSE_Mac0 with HMAC 256/256 under `key`, external_aad empty; with
/// `detached` the payload field is `nil` (SUIT: pass the encoded SUIT_Digest).
pub fn mac0(
    provider: &dyn CryptoProvider,
    key: &[u8],
    payload: &[u8],
    detached: bool,
    tagged: bool,
) -> Result<Vec<u8>, CoseError> {
    let protected = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::HMAC_256_256)
        .build();
    let builder = CoseMac0Builder::new().protected(protected);
    let builder = if detached {
        builder
    } else {
        builder.payload(payload.to_vec())
    };
    let mut msg = builder.build();
    let tbs = coset::mac_structure_data(
        coset::MacContext::CoseMac0,
        msg.protected.clone(),
        b"",
        payload,
    );
    msg.tag = provider.hmac_sha256(key, &tbs).to_vec();
    let value = msg.to_cbor_value().map_err(CoseError::coset("COSE_Mac0"))?;
    let value = if tagged {
        Value::Tag(TAG_MAC0, alloc::boxed::Box::new(value))
    } else {
        value
    };
    write_value("COSE_Mac0", &value)
}

/// Verifies a COSE_Mac0 (HMAC 256/256, external_aad empty) under one of `keys`, comparing
/// tags in constant time. `detached_payload` must be given exactly when the payload is
/// `nil`.
pub fn verify_mac0(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    detached_payload: Option<&[u8]>,
    keys: &[&[u8]],
) -> Result<VerifiedMac0, CoseError> {
    const WHAT: &str = "COSE_Mac0";
    let msg = parse_mac0(bytes)?;
    hmac_alg(&msg.protected)?;
    let payload = payload_of(WHAT, msg.payload.as_ref(), detached_payload)?;
    let tbs = coset::mac_structure_data(
        coset::MacContext::CoseMac0,
        msg.protected.clone(),
        b"",
        &payload,
    );
    for (key_index, key) in keys.iter().enumerate() {
        let tag = provider.hmac_sha256(key, &tbs);
        if bool::from(tag.as_slice().ct_eq(&msg.tag)) {
            return Ok(VerifiedMac0 { payload, key_index });
        }
    }
    Err(CoseError::BadMac { what: WHAT })
}
