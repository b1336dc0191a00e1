//! High-level OTrP API: encrypt-then-sign requests (TAM), sign responses (TEE), verify
//! with the outer-name check, and encrypt/decrypt the `content` members.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use rand_core::CryptoRngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::jose::{
    self, Cek, ContentEnc, JoseHeader, JweJson, Jws, LegacyMode, RecipientKey, Signer,
    VerifiedSignature, VerifyPolicy,
};
use crate::json::{b64url_decode, from_slice, to_vec};
use crate::messages::{
    decode_any, Content, OtrpMessage, SignedRequest, SignedResponse, TaInformationTbs, TbsRequest,
    TbsResponse, TeeStateResponse, DEVICE_STATE_RESPONSES,
};
use crate::Error;

/// A verified message and the signatures that verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T> {
    /// The signed payload, decoded.
    pub message: T,
    /// The signatures that verified (signer key index, alg, headers with kid/x5c).
    pub signatures: Vec<VerifiedSignature>,
}

fn jws_for(
    provider: &dyn CryptoProvider,
    signers: &[Signer<'_>],
    payload: &[u8],
) -> Result<Jws, Error> {
    match signers {
        [one] => Ok(Jws::Flattened(jose::sign_flattened(
            provider, one, payload,
        )?)),
        many => Ok(Jws::General(jose::sign_general(provider, many, payload)?)),
    }
}

fn plaintext_error(name: &str, member: &str) -> Error {
    Error::PlaintextContent {
        member: format!("{name}.{member}"),
    }
}

/// Signs a TBS request with the TAM key as a flattened JWS (§7.4) and returns the
/// `{"xyzRequest": {payload, protected, header, signature}}` bytes. `content` must
/// already be encrypted (see [`encrypt_content`]).
pub fn sign_request(
    provider: &dyn CryptoProvider,
    tam_key: &Signer<'_>,
    tbs: &TbsRequest,
) -> Result<Vec<u8>, Error> {
    sign_request_multi(provider, core::slice::from_ref(tam_key), tbs)
}

/// Signs a TBS request with several keys (dual control): a general JWS with one
/// signature per signer; a single signer gives the flattened form.
pub fn sign_request_multi(
    provider: &dyn CryptoProvider,
    signers: &[Signer<'_>],
    tbs: &TbsRequest,
) -> Result<Vec<u8>, Error> {
    if !tbs.is_protected() {
        return Err(plaintext_error(tbs.kind().tbs_request_name(), "content"));
    }
    let payload = tbs.to_json()?;
    let jws = jws_for(provider, signers, &payload)?;
    to_vec(&SignedRequest {
        kind: tbs.kind(),
        jws,
    })
}

impl SignedRequest {
    /// Decodes the signed payload WITHOUT verifying it (for routing/inspection only),
    /// checking that it matches the outer name.
    pub fn unverified_payload(&self) -> Result<TbsRequest, Error> {
        let bytes = b64url_decode(self.jws.payload_b64(), "payload")?;
        request_payload(self.kind.request_name(), self.kind, &bytes)
    }

    /// Verifies the JWS with `trusted` keys under `policy`, decodes the payload,
    /// checks that it matches the outer name and that its `content` is encrypted.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        trusted: &[PublicKey],
        policy: VerifyPolicy,
    ) -> Result<Verified<TbsRequest>, Error> {
        let v = jose::verify(provider, &self.jws, trusted, policy)?;
        let tbs = request_payload(self.kind.request_name(), self.kind, &v.payload)?;
        if !tbs.is_protected() {
            return Err(plaintext_error(tbs.kind().tbs_request_name(), "content"));
        }
        Ok(Verified {
            message: tbs,
            signatures: v.signatures,
        })
    }
}

fn request_payload(
    outer: &str,
    kind: crate::MessageKind,
    payload: &[u8],
) -> Result<TbsRequest, Error> {
    match decode_any(payload)? {
        OtrpMessage::TbsRequest(tbs) if tbs.kind() == kind => Ok(tbs),
        other => Err(Error::NameMismatch {
            outer: String::from(outer),
            inner: String::from(other.name()),
        }),
    }
}

fn response_payload(
    outer: &str,
    kind: crate::MessageKind,
    payload: &[u8],
) -> Result<TbsResponse, Error> {
    match decode_any(payload)? {
        OtrpMessage::TbsResponse(tbs) if tbs.kind() == kind => Ok(tbs),
        other => Err(Error::NameMismatch {
            outer: String::from(outer),
            inner: String::from(other.name()),
        }),
    }
}

/// Verifies a signed request (`{"xyzRequest": …}`) with any one of `trusted_keys`
/// and returns its TBS payload; refuses a payload of another message type
/// ([`Error::NameMismatch`]).
pub fn verify_request(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    trusted_keys: &[PublicKey],
) -> Result<TbsRequest, Error> {
    verify_request_with(provider, bytes, trusted_keys, VerifyPolicy::AnyOne).map(|v| v.message)
}

/// [`verify_request`] with a signature policy ([`VerifyPolicy::AllKeys`] for dual
/// control) and the verified signatures' details.
pub fn verify_request_with(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    trusted_keys: &[PublicKey],
    policy: VerifyPolicy,
) -> Result<Verified<TbsRequest>, Error> {
    match decode_any(bytes)? {
        OtrpMessage::Request(signed) => signed.verify(provider, trusted_keys, policy),
        other => Err(Error::UnexpectedMessage {
            expected: "a signed OTrP request",
            found: String::from(other.name()),
        }),
    }
}

/// Signs a TBS response with the TEE key (flattened JWS, no unprotected header unless
/// the signer has `x5c`) and returns `{"xyzResponse": …}`
/// (`GetDeviceTEEStateResponse` for GetDeviceState).
pub fn sign_response(
    provider: &dyn CryptoProvider,
    tee_key: &Signer<'_>,
    tbs: &TbsResponse,
) -> Result<Vec<u8>, Error> {
    if !tbs.is_protected() {
        let member = if tbs.kind() == crate::MessageKind::GetDeviceState {
            "edsi"
        } else {
            "content"
        };
        return Err(plaintext_error(tbs.kind().tbs_response_name(), member));
    }
    let payload = tbs.to_json()?;
    let jws = jws_for(provider, core::slice::from_ref(tee_key), &payload)?;
    to_vec(&SignedResponse {
        kind: tbs.kind(),
        jws,
    })
}

impl SignedResponse {
    /// Decodes the signed payload WITHOUT verifying it: the TAM must decrypt `edsi`
    /// to learn the TEE certificate before it can verify (§9.1.7).
    pub fn unverified_payload(&self) -> Result<TbsResponse, Error> {
        let bytes = b64url_decode(self.jws.payload_b64(), "payload")?;
        response_payload(self.kind.response_name(), self.kind, &bytes)
    }

    /// Verifies the JWS, decodes the payload and checks it matches the outer name.
    pub fn verify(
        &self,
        provider: &dyn CryptoProvider,
        trusted: &[PublicKey],
        policy: VerifyPolicy,
    ) -> Result<Verified<TbsResponse>, Error> {
        let v = jose::verify(provider, &self.jws, trusted, policy)?;
        let tbs = response_payload(self.kind.response_name(), self.kind, &v.payload)?;
        if !tbs.is_protected() {
            return Err(plaintext_error(tbs.kind().tbs_response_name(), "content"));
        }
        Ok(Verified {
            message: tbs,
            signatures: v.signatures,
        })
    }
}

/// Verifies a signed response (`{"xyzResponse": …}` or `GetDeviceTEEStateResponse`)
/// with any one of `trusted_keys`.
pub fn verify_response(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    trusted_keys: &[PublicKey],
) -> Result<TbsResponse, Error> {
    match decode_any(bytes)? {
        OtrpMessage::Response(signed) => signed
            .verify(provider, trusted_keys, VerifyPolicy::AnyOne)
            .map(|v| v.message),
        other => Err(Error::UnexpectedMessage {
            expected: "a signed OTrP response",
            found: String::from(other.name()),
        }),
    }
}

/// Broker side: wraps signed `GetDeviceTEEStateResponse` messages (one per TEE) into
/// `{"GetDeviceStateResponse": [ … ]}`.
pub fn device_state_responses(signed: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let mut items = Vec::with_capacity(signed.len());
    for bytes in signed {
        match decode_any(bytes)? {
            OtrpMessage::Response(SignedResponse {
                kind: crate::MessageKind::GetDeviceState,
                jws,
            }) => items.push(TeeStateResponse { jws }),
            other => {
                return Err(Error::UnexpectedMessage {
                    expected: "GetDeviceTEEStateResponse",
                    found: String::from(other.name()),
                })
            }
        }
    }
    to_vec(&OtrpMessage::DeviceStateResponses(items))
}

/// TAM side: splits `{"GetDeviceStateResponse": [ … ]}` into the per-TEE signed
/// responses (verify each with [`SignedResponse::verify`] once `edsi` gave the key).
pub fn split_device_state_responses(bytes: &[u8]) -> Result<Vec<SignedResponse>, Error> {
    match decode_any(bytes)? {
        OtrpMessage::DeviceStateResponses(items) => Ok(items
            .into_iter()
            .map(|i| SignedResponse {
                kind: crate::MessageKind::GetDeviceState,
                jws: i.jws,
            })
            .collect()),
        other => Err(Error::UnexpectedMessage {
            expected: DEVICE_STATE_RESPONSES,
            found: String::from(other.name()),
        }),
    }
}

/// Encrypts a `content` (or `edsi`) plaintext to `recipients` with a fresh CEK:
/// general JWE JSON serialization, no JWE AAD (§7.4). Returns the CEK for reuse.
pub fn encrypt_content<T: Serialize>(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    content: &T,
    enc: ContentEnc,
    recipients: &[RecipientKey<'_>],
) -> Result<(Content<T>, Cek), Error> {
    let plaintext = to_vec(content)?;
    let (jwe, cek) = jose::encrypt(provider, rng, &plaintext, enc, recipients)?;
    Ok((Content::Encrypted(jwe), cek))
}

/// Encrypts a `content` plaintext under an existing CEK (the TEE's response reuses the
/// request's CEK, §9.2.1.2), wrapped to `recipients` (our reading of §9 item 3: the
/// TEE re-wraps that CEK to the TAM key) with a fresh IV.
pub fn encrypt_content_with_cek<T: Serialize>(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    content: &T,
    cek: &Cek,
    recipients: &[RecipientKey<'_>],
) -> Result<Content<T>, Error> {
    let plaintext = to_vec(content)?;
    jose::encrypt_with_cek(provider, rng, &plaintext, cek, recipients).map(Content::Encrypted)
}

/// Decrypts an encrypted `content` with the recipient's private key and decodes it
/// strictly as `T`; returns the CEK too.
pub fn decrypt_content<T: DeserializeOwned>(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    jwe: &JweJson,
    key: &PrivateKey,
    legacy: LegacyMode,
) -> Result<(T, Cek), Error> {
    let d = jose::decrypt(provider, rng, jwe, key, legacy)?;
    Ok((from_slice(&d.plaintext)?, d.cek))
}

/// Decrypts an encrypted `content` with a known CEK and decodes it strictly as `T`.
pub fn decrypt_content_with_cek<T: DeserializeOwned>(jwe: &JweJson, cek: &Cek) -> Result<T, Error> {
    from_slice(&jose::decrypt_with_cek(jwe, cek)?)
}

/// Signs `TAInformationTBS` with the TEE SP AIK (§6.4.2): flattened JWS whose
/// unprotected header carries `signer` (the AIK public JWK) when given.
pub fn sign_ta_information(
    provider: &dyn CryptoProvider,
    aik: &Signer<'_>,
    signer_jwk: Option<serde_json::Value>,
    tbs: &TaInformationTbs,
) -> Result<Vec<u8>, Error> {
    let payload = to_vec(&OtrpMessage::TaInformationTbs(tbs.clone()))?;
    let mut flat = jose::sign_flattened(provider, aik, &payload)?;
    if let Some(jwk) = signer_jwk {
        let header = flat.header.get_or_insert_with(JoseHeader::default);
        header.extra.insert(String::from("signer"), jwk);
    }
    to_vec(&OtrpMessage::TaInformation(Jws::Flattened(flat)))
}

/// Verifies a `TAInformation` with the TEE SP AIK public key(s).
pub fn verify_ta_information(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    trusted_keys: &[PublicKey],
) -> Result<TaInformationTbs, Error> {
    let jws = match decode_any(bytes)? {
        OtrpMessage::TaInformation(jws) => jws,
        other => {
            return Err(Error::UnexpectedMessage {
                expected: "TAInformation",
                found: String::from(other.name()),
            })
        }
    };
    let v = jose::verify(provider, &jws, trusted_keys, VerifyPolicy::AnyOne)?;
    match decode_any(&v.payload)? {
        OtrpMessage::TaInformationTbs(t) => Ok(t),
        other => Err(Error::NameMismatch {
            outer: String::from("TAInformation"),
            inner: String::from(other.name()),
        }),
    }
}
