//! JOSE data types: headers, JWS JSON serializations (RFC 7515 §7.2) and the JWE
//! general JSON serialization (RFC 7516 §7.2.1).

use alloc::string::String;
use alloc::vec::Vec;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::json::from_value;
use crate::messages::Extra;

/// A JOSE header (protected or unprotected) with the parameters OTrP uses; any other
/// parameter (e.g. the samples' non-standard `signer`) is passed through in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoseHeader {
    /// Signature or key-management algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Content-encryption algorithm (JWE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<String>,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// X.509 chain, standard base64 DER, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    /// SHA-1 certificate thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    /// SHA-256 certificate thumbprint.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// Media type of the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// Media type of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cty: Option<String>,
    /// Critical extensions (refused: none is supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Vec<String>>,
    /// Ephemeral public key (ECDH-ES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epk: Option<EcPublicJwk>,
    /// Agreement PartyUInfo, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apu: Option<String>,
    /// Agreement PartyVInfo, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apv: Option<String>,
    /// Any other parameter, passed through.
    #[serde(flatten)]
    pub extra: Extra,
}

impl JoseHeader {
    /// Names of the parameters present (for the RFC 7515 §7.2.1 disjointness check).
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fixed: [(&str, bool); 12] = [
            ("alg", self.alg.is_some()),
            ("enc", self.enc.is_some()),
            ("kid", self.kid.is_some()),
            ("x5c", self.x5c.is_some()),
            ("x5t", self.x5t.is_some()),
            ("x5t#S256", self.x5t_s256.is_some()),
            ("typ", self.typ.is_some()),
            ("cty", self.cty.is_some()),
            ("crit", self.crit.is_some()),
            ("epk", self.epk.is_some()),
            ("apu", self.apu.is_some()),
            ("apv", self.apv.is_some()),
        ];
        for (name, present) in fixed {
            if present {
                out.push(String::from(name));
            }
        }
        out.extend(self.extra.keys().cloned());
        out
    }
}

/// An EC public key JWK (`epk`): `{"kty":"EC","crv":"P-256","x":…,"y":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcPublicJwk {
    /// Must be `EC`.
    pub kty: String,
    /// Must be `P-256`.
    pub crv: String,
    /// base64url x coordinate.
    pub x: String,
    /// base64url y coordinate.
    pub y: String,
    /// Other members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Flattened JWS JSON serialization (RFC 7515 §7.2.2), the OTrP signed form (§7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsFlattened {
    /// base64url of the TBS JSON.
    pub payload: String,
    /// base64url of the protected header JSON (required here: `alg` must be protected).
    pub protected: String,
    /// Unprotected header (`x5c`, `kid`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<JoseHeader>,
    /// base64url signature.
    pub signature: String,
}

/// One signature of a general JWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsSignature {
    /// base64url protected header.
    pub protected: String,
    /// Unprotected header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<JoseHeader>,
    /// base64url signature.
    pub signature: String,
}

/// General JWS JSON serialization (RFC 7515 §7.2.1), used for dual control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsGeneral {
    /// base64url of the TBS JSON.
    pub payload: String,
    /// One entry per signer.
    pub signatures: Vec<JwsSignature>,
}

/// A JWS in either JSON serialization.
// Plain data, built once per message: boxing would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jws {
    /// Single signature.
    Flattened(JwsFlattened),
    /// Several signatures.
    General(JwsGeneral),
}

impl Jws {
    /// The base64url payload member.
    pub fn payload_b64(&self) -> &str {
        match self {
            Jws::Flattened(f) => &f.payload,
            Jws::General(g) => &g.payload,
        }
    }

    /// The signatures as `(protected, header, signature)` triples.
    pub fn signatures(&self) -> Vec<(&str, Option<&JoseHeader>, &str)> {
        match self {
            Jws::Flattened(f) => alloc::vec![(
                f.protected.as_str(),
                f.header.as_ref(),
                f.signature.as_str()
            )],
            Jws::General(g) => g
                .signatures
                .iter()
                .map(|s| {
                    (
                        s.protected.as_str(),
                        s.header.as_ref(),
                        s.signature.as_str(),
                    )
                })
                .collect(),
        }
    }
}

impl Serialize for Jws {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Jws::Flattened(f) => f.serialize(s),
            Jws::General(g) => g.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Jws {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let Some(obj) = v.as_object() else {
            return Err(D::Error::custom("a JWS JSON serialization is an object"));
        };
        if obj.contains_key("signatures") {
            if obj.contains_key("signature") || obj.contains_key("protected") {
                return Err(D::Error::custom(
                    "JWS mixes general (`signatures`) and flattened members",
                ));
            }
            from_value(v).map(Jws::General).map_err(D::Error::custom)
        } else {
            from_value(v).map(Jws::Flattened).map_err(D::Error::custom)
        }
    }
}

/// One JWE recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JweRecipient {
    /// Per-recipient unprotected header (`alg`, `epk`, `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<JoseHeader>,
    /// base64url wrapped CEK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_key: Option<String>,
}

/// JWE general JSON serialization (RFC 7516 §7.2.1), OTrP's `content` / `edsi` (§7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JweJson {
    /// base64url protected header (`{"enc":…}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<String>,
    /// Shared unprotected header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprotected: Option<JoseHeader>,
    /// Recipients.
    pub recipients: Vec<JweRecipient>,
    /// base64url additional authenticated data (OTrP uses none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad: Option<String>,
    /// base64url IV.
    pub iv: String,
    /// base64url ciphertext.
    pub ciphertext: String,
    /// base64url authentication tag.
    pub tag: String,
}
