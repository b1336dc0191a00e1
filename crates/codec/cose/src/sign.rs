//! COSE_Sign1 and COSE_Sign (RFC 9052 §4) over the `CryptoProvider` trait.

use alloc::string::String;
use alloc::vec::Vec;

use coset::cbor::Value;
use coset::{
    AsCborValue, CoseSign, CoseSign1, CoseSign1Builder, CoseSignBuilder, CoseSignature,
    CoseSignatureBuilder, Header, HeaderBuilder, ProtectedHeader,
};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey, SigAlg};

use crate::cbor::{alg_id, alg_label, check_crit, hex, precheck_crit, read_value, write_value};
use crate::CoseError;

/// CBOR tag of COSE_Sign1.
pub const TAG_SIGN1: u64 = 18;
/// CBOR tag of COSE_Sign.
pub const TAG_SIGN: u64 = 98;

/// Which `kid` to put in the unprotected header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KidMode {
    /// The RFC 9679 COSE Key thumbprint (SHA-256) of the signer's public key (default).
    #[default]
    Thumbprint,
    /// No kid.
    None,
    /// This kid.
    Explicit(Vec<u8>),
}

/// Options for [`sign1`] and [`sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// Which COSE algorithm ids to emit (default: the new ESP256 -9 / Ed25519 -19).
    pub alg_gen: AlgIdGeneration,
    /// The kid to emit (default: RFC 9679 thumbprint).
    pub kid: KidMode,
    /// Emit the CBOR tag (18 / 98); default true.
    pub tagged: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            alg_gen: AlgIdGeneration::New,
            kid: KidMode::Thumbprint,
            tagged: true,
        }
    }
}

/// Result of [`verify_sign1`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSign1 {
    /// The payload (attached, or the detached one that was supplied).
    pub payload: Vec<u8>,
    /// The signature algorithm.
    pub alg: SigAlg,
    /// The kid header, if any.
    pub kid: Option<Vec<u8>>,
    /// Index into the `keys` argument of the key that verified.
    pub key_index: usize,
}

/// One verified signature of a COSE_Sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSigner {
    /// Position of the signature in the COSE_Sign `signatures` array.
    pub signature_index: usize,
    /// The signature algorithm.
    pub alg: SigAlg,
    /// The kid header, if any.
    pub kid: Option<Vec<u8>>,
    /// Index into the `keys` argument of the key that verified.
    pub key_index: usize,
}

/// Result of [`verify_sign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSign {
    /// The payload (attached, or the detached one that was supplied).
    pub payload: Vec<u8>,
    /// The signatures that verified, in message order.
    pub signers: Vec<VerifiedSigner>,
}

/// How many COSE_Sign signatures must verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignPolicy {
    /// At least one signature verifies with one of the keys; signatures with
    /// algorithms this crate does not know are skipped (the TEEP first QueryRequest).
    #[default]
    AnyOne,
    /// Every signature verifies with one of the keys. For dual control, also check that
    /// the `key_index` values in [`VerifiedSign::signers`] are the distinct keys required.
    All,
}

fn protected_for(alg: SigAlg, gen: AlgIdGeneration) -> Header {
    Header {
        alg: Some(alg_label(alg.cose_id(gen))),
        ..Default::default()
    }
}

fn unprotected_for(key: &PrivateKey, kid: &KidMode, provider: &dyn CryptoProvider) -> Header {
    match kid {
        KidMode::Thumbprint => HeaderBuilder::new()
            .key_id(cose_key_thumbprint(&provider.derive_public_key(key), provider).to_vec())
            .build(),
        KidMode::None => Header::default(),
        KidMode::Explicit(k) => HeaderBuilder::new().key_id(k.clone()).build(),
    }
}

fn finish(what: &'static str, tag: u64, tagged: bool, value: Value) -> Result<Vec<u8>, CoseError> {
    let value = if tagged {
        Value::Tag(tag, alloc::boxed::Box::new(value))
    } else {
        value
    };
    write_value(what, &value)
}

/// Creates a COSE_Sign1 with `key` (algorithm = `key.default_alg()`), protected
/// `{1: alg}`, unprotected `{4: kid}` per `opts.kid`, external_aad empty.
///
/// With `detached`, the payload field is `nil` and `payload` is only signed (SUIT
/// authentication: pass the encoded SUIT_Digest, i.e. the content of
/// `SUIT_Digest_bstr`; the Sig_structure wraps it in the bstr seen in the envelope).
pub fn sign1(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    payload: &[u8],
    detached: bool,
    opts: &SignOptions,
) -> Result<Vec<u8>, CoseError> {
    let alg = key.default_alg();
    let builder = CoseSign1Builder::new()
        .protected(protected_for(alg, opts.alg_gen))
        .unprotected(unprotected_for(key, &opts.kid, provider));
    let signer = |tbs: &[u8]| provider.sign(alg, key, tbs);
    let msg = if detached {
        builder.try_create_detached_signature(payload, b"", signer)
    } else {
        builder
            .payload(payload.to_vec())
            .try_create_signature(b"", signer)
    }
    .map_err(CoseError::crypto("COSE_Sign1 signing"))?
    .build();
    let value = msg
        .to_cbor_value()
        .map_err(CoseError::coset("COSE_Sign1"))?;
    finish("COSE_Sign1", TAG_SIGN1, opts.tagged, value)
}

/// Creates a COSE_Sign with one signature per signer (attached payload), body protected
/// header empty, each signature with protected `{1: alg}` and unprotected `{4: kid}`.
pub fn sign(
    provider: &dyn CryptoProvider,
    signers: &[(&PrivateKey, SigAlg)],
    payload: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>, CoseError> {
    if signers.is_empty() {
        return Err(CoseError::structure("COSE_Sign", "no signers given"));
    }
    let mut builder = CoseSignBuilder::new().payload(payload.to_vec());
    for (key, alg) in signers {
        let sig = CoseSignatureBuilder::new()
            .protected(protected_for(*alg, opts.alg_gen))
            .unprotected(unprotected_for(key, &opts.kid, provider))
            .build();
        builder = builder
            .try_add_created_signature(sig, b"", |tbs| provider.sign(*alg, key, tbs))
            .map_err(CoseError::crypto("COSE_Sign signing"))?;
    }
    let value = builder
        .build()
        .to_cbor_value()
        .map_err(CoseError::coset("COSE_Sign"))?;
    finish("COSE_Sign", TAG_SIGN, opts.tagged, value)
}

/// Strips the expected tag (optional) and returns the inner value.
pub(crate) fn untag(what: &'static str, tag: u64, value: Value) -> Result<Value, CoseError> {
    match value {
        Value::Tag(t, inner) if t == tag => Ok(*inner),
        Value::Tag(t, _) => Err(CoseError::UnexpectedTag {
            what,
            expected: tag,
            found: t,
        }),
        v => Ok(v),
    }
}

fn sig_alg(what: &'static str, protected: &ProtectedHeader) -> Result<SigAlg, CoseError> {
    let alg = protected
        .header
        .alg
        .as_ref()
        .ok_or(CoseError::MissingAlgorithm { what })?;
    let id = alg_id(alg).map_err(|alg| CoseError::UnsupportedAlgorithm { what, alg })?;
    SigAlg::from_cose(id).ok_or(CoseError::UnsupportedAlgorithm {
        what,
        alg: alloc::format!("{id}"),
    })
}

fn kid_of(protected: &Header, unprotected: &Header) -> Option<Vec<u8>> {
    if !protected.key_id.is_empty() {
        Some(protected.key_id.clone())
    } else if !unprotected.key_id.is_empty() {
        Some(unprotected.key_id.clone())
    } else {
        None
    }
}

/// Header parameters that mean something on a signed message besides those coset types:
/// content type, kid, crit and alg are typed; 13 kcwt, 14 kccs, 32 x5bag, 33 x5chain,
/// 34 x5t, 35 x5u carry the signer's key or certificates.
const SIGNATURE_REST_LABELS: &[i64] = &[13, 14, 32, 33, 34, 35];

/// TEEP (draft-ietf-teep-protocol §4.1.2) accepts only header parameters it understands:
/// an IV, a partial IV, a counter signature or an unknown label on a signature is refused
/// (they would otherwise ride along unsigned in the unprotected header).
fn check_signature_header(what: &'static str, header: &Header) -> Result<(), CoseError> {
    if !header.iv.is_empty() {
        return Err(CoseError::UnexpectedHeader {
            what,
            label: "5 (IV)".into(),
        });
    }
    if !header.partial_iv.is_empty() {
        return Err(CoseError::UnexpectedHeader {
            what,
            label: "6 (Partial IV)".into(),
        });
    }
    if !header.counter_signatures.is_empty() {
        return Err(CoseError::UnexpectedHeader {
            what,
            label: "counter signature".into(),
        });
    }
    for (label, _) in &header.rest {
        let ok = matches!(label, coset::Label::Int(i) if SIGNATURE_REST_LABELS.contains(i));
        if !ok {
            let label = match label {
                coset::Label::Int(i) => alloc::format!("{i}"),
                coset::Label::Text(t) => alloc::format!("\"{t}\""),
            };
            return Err(CoseError::UnexpectedHeader { what, label });
        }
    }
    Ok(())
}

fn key_fits(alg: SigAlg, key: &PublicKey) -> bool {
    key.default_alg() == alg
}

/// Tries the key(s) for one signature: the keys whose thumbprint equals the kid first;
/// if no key has that thumbprint (or there is no kid), every key of the right type.
fn verify_with_keys(
    what: &'static str,
    provider: &dyn CryptoProvider,
    alg: SigAlg,
    kid: Option<&[u8]>,
    keys: &[PublicKey],
    check: &mut dyn FnMut(&PublicKey) -> Result<(), otrp_crypto::CryptoError>,
) -> Result<usize, CoseError> {
    for i in candidate_keys(what, provider, alg, kid, keys)? {
        if let Some(key) = keys.get(i) {
            if check(key).is_ok() {
                return Ok(i);
            }
        }
    }
    Err(CoseError::BadSignature { what, alg })
}

/// The indices of the keys a signature is tried with ([`verify_with_keys`]), in order.
fn candidate_keys(
    what: &'static str,
    provider: &dyn CryptoProvider,
    alg: SigAlg,
    kid: Option<&[u8]>,
    keys: &[PublicKey],
) -> Result<Vec<usize>, CoseError> {
    let fitting: Vec<usize> = (0..keys.len())
        .filter(|&i| keys.get(i).is_some_and(|k| key_fits(alg, k)))
        .collect();
    let by_kid: Vec<usize> = match kid {
        Some(kid) => fitting
            .iter()
            .copied()
            .filter(|&i| {
                keys.get(i)
                    .is_some_and(|k| cose_key_thumbprint(k, provider).as_slice() == kid)
            })
            .collect(),
        None => Vec::new(),
    };
    // A kid names the key (RFC 9679 thumbprint, as TEEP requires): a kid that names no
    // given key is refused rather than treated as a hint, so that a changed kid cannot
    // pass unnoticed even though the unprotected header is not signed.
    if let (Some(kid), true) = (kid, by_kid.is_empty()) {
        return Err(CoseError::NoMatchingKey {
            what,
            kid: hex(kid),
        });
    }
    let candidates = if by_kid.is_empty() { fitting } else { by_kid };
    if candidates.is_empty() {
        return Err(CoseError::NoMatchingKey {
            what,
            kid: kid.map_or_else(|| String::from("none"), hex),
        });
    }
    Ok(candidates)
}

pub(crate) fn payload_of(
    what: &'static str,
    attached: Option<&Vec<u8>>,
    detached: Option<&[u8]>,
) -> Result<Vec<u8>, CoseError> {
    match (attached, detached) {
        (Some(p), None) => Ok(p.clone()),
        (None, Some(p)) => Ok(p.to_vec()),
        (None, None) => Err(CoseError::DetachedPayloadMissing { what }),
        (Some(_), Some(_)) => Err(CoseError::PayloadConflict { what }),
    }
}

/// Parses a COSE_Sign1 (tag 18 optional), checked for trailing bytes and unknown
/// critical headers.
pub fn parse_sign1(bytes: &[u8]) -> Result<CoseSign1, CoseError> {
    const WHAT: &str = "COSE_Sign1";
    let value = untag(WHAT, TAG_SIGN1, read_value(WHAT, bytes)?)?;
    if let Value::Array(items) = &value {
        if let Some(p) = items.first() {
            precheck_crit("COSE_Sign1 protected header", p)?;
        }
    }
    let msg = CoseSign1::from_cbor_value(value).map_err(CoseError::coset(WHAT))?;
    check_crit("COSE_Sign1 protected header", &msg.protected.header)?;
    check_crit("COSE_Sign1 unprotected header", &msg.unprotected)?;
    check_signature_header("COSE_Sign1 protected header", &msg.protected.header)?;
    check_signature_header("COSE_Sign1 unprotected header", &msg.unprotected)?;
    Ok(msg)
}

/// Verifies a COSE_Sign1 (tagged or not; external_aad empty) against `keys`.
///
/// The key whose RFC 9679 thumbprint equals the `kid` is tried first; without a kid (or
/// if no key has that thumbprint) every key of the algorithm's type is tried. Both
/// generations of algorithm ids are accepted. `detached_payload` must be given exactly
/// when the message's payload is `nil`.
pub fn verify_sign1(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    detached_payload: Option<&[u8]>,
    keys: &[PublicKey],
) -> Result<VerifiedSign1, CoseError> {
    let p = prepare_sign1(provider, bytes, detached_payload, keys)?;
    let key_index = verify_with_keys(SIGN1, provider, p.alg, p.kid.as_deref(), keys, &mut |k| {
        provider.verify(p.alg, k, &p.tbs, &p.signature)
    })?;
    Ok(VerifiedSign1 {
        payload: p.payload,
        alg: p.alg,
        kid: p.kid,
        key_index,
    })
}

const SIGN1: &str = "COSE_Sign1";

/// A COSE_Sign1 checked as [`verify_sign1`] checks it, all but its signature: parsed,
/// its algorithm, kid and payload read, and the key(s) it is to be verified with chosen.
/// For callers that check many signatures at once (`otrp_crypto::ed25519_verify_batch`);
/// a signature they find bad is [`CoseError::BadSignature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedSign1 {
    /// The signature algorithm (protected header).
    pub alg: SigAlg,
    /// The kid header, if any.
    pub kid: Option<Vec<u8>>,
    /// The payload (attached, or the detached one supplied).
    pub payload: Vec<u8>,
    /// The Sig_structure the signature covers (external_aad empty).
    pub tbs: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// Indices into the `keys` argument of the keys to try, in order (never empty).
    pub candidates: Vec<usize>,
}

/// Prepares a COSE_Sign1 for a signature check: see [`PreparedSign1`].
pub fn prepare_sign1(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    detached_payload: Option<&[u8]>,
    keys: &[PublicKey],
) -> Result<PreparedSign1, CoseError> {
    let msg = parse_sign1(bytes)?;
    let alg = sig_alg("COSE_Sign1 protected header", &msg.protected)?;
    let kid = kid_of(&msg.protected.header, &msg.unprotected);
    let payload = payload_of(SIGN1, msg.payload.as_ref(), detached_payload)?;
    // coset asserts on `tbs_detached_data` with an attached payload: pick the right one.
    let tbs = if msg.payload.is_some() {
        msg.tbs_data(b"")
    } else {
        msg.tbs_detached_data(&payload, b"")
    };
    let candidates = candidate_keys(SIGN1, provider, alg, kid.as_deref(), keys)?;
    Ok(PreparedSign1 {
        alg,
        kid,
        payload,
        tbs,
        signature: msg.signature,
        candidates,
    })
}

/// Parses a COSE_Sign (tag 98 optional), checked for trailing bytes and unknown
/// critical headers (body and every signature).
pub fn parse_sign(bytes: &[u8]) -> Result<CoseSign, CoseError> {
    const WHAT: &str = "COSE_Sign";
    let value = untag(WHAT, TAG_SIGN, read_value(WHAT, bytes)?)?;
    if let Value::Array(items) = &value {
        if let Some(p) = items.first() {
            precheck_crit("COSE_Sign protected header", p)?;
        }
        if let Some(Value::Array(sigs)) = items.get(3) {
            for s in sigs {
                if let Some(p) = s.as_array().and_then(|a| a.first()) {
                    precheck_crit("COSE_Signature protected header", p)?;
                }
            }
        }
    }
    let msg = CoseSign::from_cbor_value(value).map_err(CoseError::coset(WHAT))?;
    check_crit("COSE_Sign protected header", &msg.protected.header)?;
    check_crit("COSE_Sign unprotected header", &msg.unprotected)?;
    check_signature_header("COSE_Sign protected header", &msg.protected.header)?;
    check_signature_header("COSE_Sign unprotected header", &msg.unprotected)?;
    for s in &msg.signatures {
        check_crit("COSE_Signature protected header", &s.protected.header)?;
        check_crit("COSE_Signature unprotected header", &s.unprotected)?;
        check_signature_header("COSE_Signature protected header", &s.protected.header)?;
        check_signature_header("COSE_Signature unprotected header", &s.unprotected)?;
    }
    Ok(msg)
}

/// Verifies a COSE_Sign (tagged or not; external_aad empty) under `policy`.
///
/// Each signature picks its key as [`verify_sign1`] does. With [`SignPolicy::AnyOne`],
/// signatures with unknown algorithms or no fitting key are skipped; with
/// [`SignPolicy::All`] each must verify.
pub fn verify_sign(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    detached_payload: Option<&[u8]>,
    keys: &[PublicKey],
    policy: SignPolicy,
) -> Result<VerifiedSign, CoseError> {
    let msg = parse_sign(bytes)?;
    let payload = payload_of("COSE_Sign", msg.payload.as_ref(), detached_payload)?;
    let total = msg.signatures.len();
    if total == 0 {
        return Err(CoseError::structure("COSE_Sign", "no signatures"));
    }
    let mut signers = Vec::new();
    let mut first_error = None;
    for (index, sig) in msg.signatures.iter().enumerate() {
        let result = verify_one(provider, &msg, sig, &payload, keys);
        match result {
            Ok((alg, kid, key_index)) => signers.push(VerifiedSigner {
                signature_index: index,
                alg,
                kid,
                key_index,
            }),
            Err(e) => {
                if policy == SignPolicy::All {
                    return Err(e);
                }
                first_error.get_or_insert(e);
            }
        }
    }
    if signers.is_empty() {
        return Err(first_error.unwrap_or(CoseError::PolicyNotMet {
            verified: 0,
            total,
            policy: "AnyOne",
        }));
    }
    Ok(VerifiedSign { payload, signers })
}

fn verify_one(
    provider: &dyn CryptoProvider,
    msg: &CoseSign,
    sig: &CoseSignature,
    payload: &[u8],
    keys: &[PublicKey],
) -> Result<(SigAlg, Option<Vec<u8>>, usize), CoseError> {
    let alg = sig_alg("COSE_Signature protected header", &sig.protected)?;
    let kid = kid_of(&sig.protected.header, &sig.unprotected);
    let tbs = if msg.payload.is_some() {
        msg.tbs_data(b"", sig)
    } else {
        msg.tbs_detached_data(payload, b"", sig)
    };
    let key_index = verify_with_keys(
        "COSE_Sign signature",
        provider,
        alg,
        kid.as_deref(),
        keys,
        &mut |k| provider.verify(alg, k, &tbs, &sig.signature),
    )?;
    Ok((alg, kid, key_index))
}
