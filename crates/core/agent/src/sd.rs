//! Security Domains: the descriptor a TAM installs to create one, the registry entry the
//! Agent keeps, and the OEM authorization of an SP (OEM-gated configuration).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ciborium::value::Value;
use otrp_cose::SignOptions;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use otrp_suit::ComponentId;

use crate::error::AgentError;

/// Last component-id segment that marks an SD manifest: `[sd-name, "sd"]`.
pub const SD_SEGMENT: &[u8] = b"sd";

/// State key prefix of SD registry entries (`sd/<hex name>`).
pub const SD_STATE_PREFIX: &str = "sd/";
/// State key prefix of recorded OEM authorizations (`oem-auth/<hex sp-id>`).
pub const AUTH_STATE_PREFIX: &str = "oem-auth/";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// State key of the registry entry of SD `name`.
pub fn sd_state_key(name: &[u8]) -> String {
    let mut k = String::from(SD_STATE_PREFIX);
    k.push_str(&hex(name));
    k
}

/// State key of the OEM authorization recorded for `sp_id`.
pub fn auth_state_key(sp_id: &str) -> String {
    let mut k = String::from(AUTH_STATE_PREFIX);
    k.push_str(&hex(sp_id.as_bytes()));
    k
}

/// The component id of the SD manifest of `name`: `[name, "sd"]`.
pub fn sd_component_id(name: &[u8]) -> ComponentId {
    ComponentId(alloc::vec![name.to_vec(), SD_SEGMENT.to_vec()])
}

/// The SD name when `id` is an SD manifest component id `[name, "sd"]`.
pub fn sd_name_of_manifest(id: &ComponentId) -> Option<&[u8]> {
    match id.segments() {
        [name, seg] if seg.as_slice() == SD_SEGMENT => Some(name),
        _ => None,
    }
}

fn cbor_bytes(v: &Value) -> Result<Vec<u8>, AgentError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| AgentError::Encode(e.to_string()))?;
    Ok(out)
}

fn decode(bytes: &[u8], what: &'static str) -> Result<Value, AgentError> {
    ciborium::de::from_reader(bytes).map_err(|e| AgentError::Invalid {
        what,
        reason: e.to_string(),
    })
}

fn invalid(what: &'static str, reason: &str) -> AgentError {
    AgentError::Invalid {
        what,
        reason: reason.to_string(),
    }
}

fn keys_value(keys: &[PublicKey]) -> Result<Value, AgentError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(Value::Bytes(
            k.to_spki_der()
                .map_err(|e| AgentError::Encode(e.to_string()))?,
        ));
    }
    Ok(Value::Array(out))
}

fn keys_from(v: Value, what: &'static str) -> Result<Vec<PublicKey>, AgentError> {
    let Value::Array(items) = v else {
        return Err(invalid(what, "signers is not an array"));
    };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let Value::Bytes(der) = it else {
            return Err(invalid(what, "signer is not a bstr (SPKI DER)"));
        };
        out.push(PublicKey::from_spki_der(&der).map_err(|e| invalid(what, &e.to_string()))?);
    }
    Ok(out)
}

fn map_entries(v: Value, what: &'static str) -> Result<Vec<(i64, Value)>, AgentError> {
    let Value::Map(entries) = v else {
        return Err(invalid(what, "not a map"));
    };
    let mut out: Vec<(i64, Value)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let k = match k {
            Value::Integer(i) => i64::try_from(i).map_err(|_| invalid(what, "key out of range"))?,
            _ => return Err(invalid(what, "non-integer key")),
        };
        if out.iter().any(|(x, _)| *x == k) {
            return Err(invalid(what, "duplicate key"));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// The payload of an SD manifest: CBOR map
/// `{1: name bstr, 2: sp-id tstr, 3: [+ signer SPKI DER bstr], ? 4: oem-authorization bstr,
/// ? 5: tam-kid bstr}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdDescriptor {
    /// SD name (the first component-id segment of everything inside the SD).
    pub name: Vec<u8>,
    /// The Service Provider the SD belongs to.
    pub sp_id: String,
    /// SUIT signer keys (TC Signers) authorized for this SD.
    pub signers: Vec<PublicKey>,
    /// OEM authorization of the SP's TAM ([`OemAuthorization`] bytes), OEM-gated mode.
    pub authorization: Option<Vec<u8>>,
    /// Thumbprint of the TAM key that manages the SD's TAs (default: the creating TAM);
    /// in the OEM-owned configuration the OEM's TAM names the SP's TAM here.
    pub tam: Option<[u8; 32]>,
}

impl SdDescriptor {
    /// Encodes the descriptor.
    pub fn to_cbor(&self) -> Result<Vec<u8>, AgentError> {
        let mut m = alloc::vec![
            (Value::Integer(1.into()), Value::Bytes(self.name.clone())),
            (Value::Integer(2.into()), Value::Text(self.sp_id.clone())),
            (Value::Integer(3.into()), keys_value(&self.signers)?),
        ];
        if let Some(a) = &self.authorization {
            m.push((Value::Integer(4.into()), Value::Bytes(a.clone())));
        }
        if let Some(t) = &self.tam {
            m.push((Value::Integer(5.into()), Value::Bytes(t.to_vec())));
        }
        cbor_bytes(&Value::Map(m))
    }

    /// Decodes a descriptor.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, AgentError> {
        const WHAT: &str = "SD descriptor";
        let (mut name, mut sp_id, mut signers, mut authorization) = (None, None, None, None);
        let mut tam = None;
        for (k, v) in map_entries(decode(bytes, WHAT)?, WHAT)? {
            match (k, v) {
                (1, Value::Bytes(b)) => name = Some(b),
                (2, Value::Text(t)) => sp_id = Some(t),
                (3, v) => signers = Some(keys_from(v, WHAT)?),
                (4, Value::Bytes(b)) => authorization = Some(b),
                (5, Value::Bytes(b)) => {
                    tam = Some(
                        <[u8; 32]>::try_from(b.as_slice())
                            .map_err(|_| invalid(WHAT, "tam kid is not 32 bytes"))?,
                    )
                }
                (1..=5, _) => return Err(invalid(WHAT, "member of the wrong type")),
                _ => {}
            }
        }
        let signers = signers.ok_or_else(|| invalid(WHAT, "signers (3) missing"))?;
        if signers.is_empty() {
            return Err(invalid(WHAT, "no signer"));
        }
        Ok(SdDescriptor {
            name: name.ok_or_else(|| invalid(WHAT, "name (1) missing"))?,
            sp_id: sp_id.ok_or_else(|| invalid(WHAT, "sp-id (2) missing"))?,
            signers,
            authorization,
            tam,
        })
    }
}

/// A registered Security Domain (state entry `sd/<hex name>`): CBOR map
/// `{1: name, 2: sp-id, 3: [signers], 5: owner-tam-kid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityDomain {
    /// SD name.
    pub name: Vec<u8>,
    /// The SP it belongs to.
    pub sp_id: String,
    /// Authorized SUIT signer keys.
    pub signers: Vec<PublicKey>,
    /// RFC 9679 thumbprint of the TAM key that manages the SD's TAs (the descriptor's
    /// `tam`, else the TAM that created it).
    pub owner_tam: [u8; 32],
}

impl SecurityDomain {
    /// Encodes the registry entry.
    pub fn to_cbor(&self) -> Result<Vec<u8>, AgentError> {
        cbor_bytes(&Value::Map(alloc::vec![
            (Value::Integer(1.into()), Value::Bytes(self.name.clone())),
            (Value::Integer(2.into()), Value::Text(self.sp_id.clone())),
            (Value::Integer(3.into()), keys_value(&self.signers)?),
            (
                Value::Integer(5.into()),
                Value::Bytes(self.owner_tam.to_vec())
            ),
        ]))
    }

    /// Decodes a registry entry.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, AgentError> {
        const WHAT: &str = "SD registry entry";
        let (mut name, mut sp_id, mut signers, mut owner) = (None, None, None, None);
        for (k, v) in map_entries(decode(bytes, WHAT)?, WHAT)? {
            match (k, v) {
                (1, Value::Bytes(b)) => name = Some(b),
                (2, Value::Text(t)) => sp_id = Some(t),
                (3, v) => signers = Some(keys_from(v, WHAT)?),
                (5, Value::Bytes(b)) => {
                    owner = Some(
                        <[u8; 32]>::try_from(b.as_slice())
                            .map_err(|_| invalid(WHAT, "owner kid is not 32 bytes"))?,
                    )
                }
                _ => return Err(invalid(WHAT, "unexpected member")),
            }
        }
        Ok(SecurityDomain {
            name: name.ok_or_else(|| invalid(WHAT, "name missing"))?,
            sp_id: sp_id.ok_or_else(|| invalid(WHAT, "sp-id missing"))?,
            signers: signers.ok_or_else(|| invalid(WHAT, "signers missing"))?,
            owner_tam: owner.ok_or_else(|| invalid(WHAT, "owner missing"))?,
        })
    }
}

/// An OEM's authorization of an SP's TAM (OEM-gated configuration): COSE_Sign1 by an OEM
/// key over the CBOR array `[sp-id tstr, tam-kid bstr]`, tam-kid = RFC 9679 thumbprint of
/// the SP's TAM key. Carried once in an SD descriptor; the Agent records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OemAuthorization {
    /// The authorized SP.
    pub sp_id: String,
    /// Thumbprint of the TAM key allowed to create SDs for it.
    pub tam_kid: [u8; 32],
}

impl OemAuthorization {
    /// Signs an authorization with the OEM key.
    pub fn sign(
        provider: &dyn CryptoProvider,
        oem_key: &PrivateKey,
        sp_id: &str,
        tam_key: &PublicKey,
    ) -> Result<Vec<u8>, AgentError> {
        let kid = cose_key_thumbprint(tam_key, provider);
        let payload = cbor_bytes(&Value::Array(alloc::vec![
            Value::Text(sp_id.to_string()),
            Value::Bytes(kid.to_vec()),
        ]))?;
        otrp_cose::sign1(provider, oem_key, &payload, false, &SignOptions::default())
            .map_err(|e| AgentError::Encode(e.to_string()))
    }

    /// Verifies an authorization against the OEM keys.
    pub fn verify(
        provider: &dyn CryptoProvider,
        bytes: &[u8],
        oem_keys: &[PublicKey],
    ) -> Result<Self, AgentError> {
        const WHAT: &str = "OEM authorization";
        let v = otrp_cose::verify_sign1(provider, bytes, None, oem_keys)
            .map_err(|e| invalid(WHAT, &e.to_string()))?;
        let Value::Array(items) = decode(&v.payload, WHAT)? else {
            return Err(invalid(WHAT, "payload is not an array"));
        };
        match <[Value; 2]>::try_from(items) {
            Ok([Value::Text(sp_id), Value::Bytes(kid)]) => Ok(OemAuthorization {
                sp_id,
                tam_kid: <[u8; 32]>::try_from(kid.as_slice())
                    .map_err(|_| invalid(WHAT, "tam kid is not 32 bytes"))?,
            }),
            _ => Err(invalid(WHAT, "payload is not [sp-id, tam-kid]")),
        }
    }
}
