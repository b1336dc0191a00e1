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

/// Options of [`mac0_with`] and [`verify_mac0_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Mac0Options<'a> {
    /// `kid` for the unprotected header (none when empty): it only selects the key.
    pub kid: &'a [u8],
    /// The external_aad of the MAC_structure (RFC 9052 §6.3): data the tag covers
    /// without carrying it.
    pub external_aad: &'a [u8],
    /// Whether the payload field is `nil` (the payload travels elsewhere).
    pub detached: bool,
    /// Whether to wrap the array in tag 17.
    pub tagged: bool,
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
    mac0_with(
        provider,
        key,
        payload,
        &Mac0Options {
            detached,
            tagged,
            ..Mac0Options::default()
        },
    )
}

/// Creates a COSE_Mac0 with HMAC 256/256 under `key` as `opts` says (kid, external_aad,
/// detached payload, tag).
///
/// ```
/// use otrp_cose::{mac0_with, verify_mac0_with, Mac0Options};
/// let p = otrp_crypto::default_provider();
/// let opts = Mac0Options { kid: b"dev-1", external_aad: b"lot-1#7", tagged: true, ..Default::default() };
/// let bytes = mac0_with(p, &[7; 32], b"report", &opts).unwrap();
/// let ok = verify_mac0_with(p, &bytes, None, b"lot-1#7", &[&[7u8; 32][..]]).unwrap();
/// assert_eq!(ok.payload, b"report");
/// // The same tag under another external_aad does not verify.
/// assert!(verify_mac0_with(p, &bytes, None, b"lot-1#8", &[&[7u8; 32][..]]).is_err());
/// ```
pub fn mac0_with(
    provider: &dyn CryptoProvider,
    key: &[u8],
    payload: &[u8],
    opts: &Mac0Options<'_>,
) -> Result<Vec<u8>, CoseError> {
    let protected = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::HMAC_256_256)
        .build();
    let mut builder = CoseMac0Builder::new().protected(protected);
    if !opts.kid.is_empty() {
        builder = builder.unprotected(HeaderBuilder::new().key_id(opts.kid.to_vec()).build());
    }
    if !opts.detached {
        builder = builder.payload(payload.to_vec());
    }
    let mut msg = builder.build();
    let tbs = coset::mac_structure_data(
        coset::MacContext::CoseMac0,
        msg.protected.clone(),
        opts.external_aad,
        payload,
    );
    msg.tag = provider.hmac_sha256(key, &tbs).to_vec();
    let value = msg.to_cbor_value().map_err(CoseError::coset("COSE_Mac0"))?;
    let value = if opts.tagged {
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
    verify_mac0_with(provider, bytes, detached_payload, b"", keys)
}

/// [`verify_mac0`] with an external_aad, which must be the one the tag was made with.
pub fn verify_mac0_with(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    detached_payload: Option<&[u8]>,
    external_aad: &[u8],
    keys: &[&[u8]],
) -> Result<VerifiedMac0, CoseError> {
    verify_parsed_mac0(
        provider,
        &parse_mac0(bytes)?,
        detached_payload,
        external_aad,
        keys,
    )
}

/// [`verify_mac0_with`] on an already parsed COSE_Mac0 (to read its kid first).
pub fn verify_parsed_mac0(
    provider: &dyn CryptoProvider,
    msg: &CoseMac0,
    detached_payload: Option<&[u8]>,
    external_aad: &[u8],
    keys: &[&[u8]],
) -> Result<VerifiedMac0, CoseError> {
    const WHAT: &str = "COSE_Mac0";
    hmac_alg(&msg.protected)?;
    let payload = payload_of(WHAT, msg.payload.as_ref(), detached_payload)?;
    let tbs = coset::mac_structure_data(
        coset::MacContext::CoseMac0,
        msg.protected.clone(),
        external_aad,
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
