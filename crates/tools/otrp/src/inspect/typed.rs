//! The typed side of `otrp inspect`: recognition through the codecs, byte-exact round
//! trips and signature checks over every nested signed object.

use super::keys::VerifyKey;
use super::{cbor, view};
use ciborium::value::Value;
use otrp_crypto::{CryptoProvider, PublicKey};
use otrp_suit::CborItem;

/// What the input is, as recognised by the codecs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A bare TEEP message (its type name).
    Teep(&'static str),
    /// COSE_Sign1 around something.
    CoseSign1(Box<Kind>),
    /// COSE_Sign around something.
    CoseSign(Box<Kind>),
    /// COSE_Mac0 around something (e.g. a MAC'd batch report).
    CoseMac0(Box<Kind>),
    /// COSE_Encrypt (e.g. a SUIT_Encryption_Info).
    CoseEncrypt,
    /// COSE_Encrypt0.
    CoseEncrypt0,
    /// SUIT envelope.
    Suit,
    /// SUIT report.
    SuitReport,
    /// EAT claims set.
    Eat,
    /// COSE_Key.
    CoseKey,
    /// An OTrP JSON message (its outer name).
    Otrp(String),
    /// Shaped like `what` but not valid under the current drafts (an older draft's
    /// layout, or a peer's deviation): shown and round-tripped as plain CBOR.
    Nonconforming {
        /// What it looks like.
        what: &'static str,
        /// Why the codec refused it.
        reason: String,
    },
    /// Well-formed CBOR of no known kind.
    Cbor,
    /// Bytes that are not CBOR (e.g. a detached payload of a signature).
    Opaque,
}

impl core::fmt::Display for Kind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Kind::Teep(t) => write!(f, "TEEP {t}"),
            Kind::CoseSign1(inner) => write!(f, "COSE_Sign1 around {inner}"),
            Kind::CoseSign(inner) => write!(f, "COSE_Sign around {inner}"),
            Kind::CoseMac0(inner) => write!(f, "COSE_Mac0 around {inner}"),
            Kind::CoseEncrypt => f.write_str("COSE_Encrypt (SUIT encryption info)"),
            Kind::CoseEncrypt0 => f.write_str("COSE_Encrypt0"),
            Kind::Suit => f.write_str("SUIT envelope"),
            Kind::SuitReport => f.write_str("SUIT report"),
            Kind::Eat => f.write_str("EAT claims"),
            Kind::CoseKey => f.write_str("COSE_Key"),
            Kind::Otrp(name) => write!(f, "OTrP {name}"),
            Kind::Nonconforming { what, reason } => {
                write!(f, "{what} NOT conforming to the current draft ({reason})")
            }
            Kind::Cbor => f.write_str("CBOR"),
            Kind::Opaque => f.write_str("opaque bytes"),
        }
    }
}

/// A failed check: where (a path such as `payload/manifest-list[0]`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Path of the object inside the input.
    pub path: String,
    /// What went wrong.
    pub what: String,
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.what)
        } else {
            write!(f, "{}: {}", self.path, self.what)
        }
    }
}

fn fail(path: &str, what: impl Into<String>) -> Failure {
    Failure {
        path: path.to_string(),
        what: what.into(),
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}/{part}")
    }
}

/// Whether `bytes` look like JSON text (an OTrP message).
pub fn is_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Recognises `bytes`; `Err` when they are malformed, with a one-line reason.
pub fn recognise(bytes: &[u8]) -> Result<Kind, String> {
    if is_json(bytes) {
        return otrp_json::decode_any(bytes)
            .map(|m| Kind::Otrp(m.name().to_string()))
            .map_err(|e| format!("OTrP JSON: {e}"));
    }
    let value = cbor::parse(bytes).map_err(|e| e.to_string())?;
    recognise_value(bytes, &value)
}

fn recognise_value(bytes: &[u8], value: &Value) -> Result<Kind, String> {
    let (shape, _) = view::classify(value);
    Ok(match shape {
        "COSE_Sign1" => {
            let msg = otrp_cose::parse_sign1(bytes).map_err(|e| e.to_string())?;
            Kind::CoseSign1(Box::new(payload_kind(msg.payload.as_deref())?))
        }
        "COSE_Sign" => {
            let msg = otrp_cose::parse_sign(bytes).map_err(|e| e.to_string())?;
            Kind::CoseSign(Box::new(payload_kind(msg.payload.as_deref())?))
        }
        "COSE_Mac0" => {
            let msg = otrp_cose::parse_mac0(bytes).map_err(|e| e.to_string())?;
            Kind::CoseMac0(Box::new(payload_kind(msg.payload.as_deref())?))
        }
        "COSE_Encrypt" => match otrp_cose::peek(bytes).map_err(|e| e.to_string())? {
            otrp_cose::CoseMessage::Encrypt(_) => Kind::CoseEncrypt,
            _ => Kind::Cbor,
        },
        "COSE_Encrypt0" => match otrp_cose::peek(bytes).map_err(|e| e.to_string())? {
            otrp_cose::CoseMessage::Encrypt0(_) => Kind::CoseEncrypt0,
            _ => Kind::Cbor,
        },
        "SUIT envelope" => {
            otrp_suit::Envelope::decode(bytes).map_err(|e| e.to_string())?;
            Kind::Suit
        }
        "SUIT report" => {
            otrp_suit::SuitReport::from_cbor(bytes).map_err(|e| e.to_string())?;
            Kind::SuitReport
        }
        "TEEP message" => match otrp_teep::decode_any(bytes) {
            Ok(msg) => Kind::Teep(teep_name(&msg)),
            Err(e) => Kind::Nonconforming {
                what: "TEEP message",
                reason: e.to_string(),
            },
        },
        "EAT claims" => match otrp_eat::EatClaims::decode(bytes) {
            Ok(_) => Kind::Eat,
            Err(e) => Kind::Nonconforming {
                what: "EAT claims",
                reason: e.to_string(),
            },
        },
        "COSE_Key" => {
            otrp_cose::cose_key_from_slice(bytes).map_err(|e| e.to_string())?;
            Kind::CoseKey
        }
        _ => Kind::Cbor,
    })
}

fn payload_kind(payload: Option<&[u8]>) -> Result<Kind, String> {
    match payload {
        None => Ok(Kind::Opaque),
        Some(p) => match cbor::parse(p) {
            Ok(v) => recognise_value(p, &v).map_err(|e| format!("payload: {e}")),
            Err(_) => Ok(Kind::Opaque),
        },
    }
}

fn teep_name(msg: &otrp_teep::TeepMessage) -> &'static str {
    match msg {
        otrp_teep::TeepMessage::QueryRequest(_) => "QueryRequest",
        otrp_teep::TeepMessage::QueryResponse(_) => "QueryResponse",
        otrp_teep::TeepMessage::Update(_) => "Update",
        otrp_teep::TeepMessage::Success(_) => "Success",
        otrp_teep::TeepMessage::Error(_) => "Error",
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn compare(path: &str, what: &str, input: &[u8], encoded: &[u8]) -> Result<(), Failure> {
    if input == encoded {
        Ok(())
    } else {
        Err(fail(
            path,
            format!(
                "{what} re-encodes differently: first difference at byte {} ({} bytes in, {} bytes out)",
                first_difference(input, encoded),
                input.len(),
                encoded.len()
            ),
        ))
    }
}

fn generic_reencode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for a decoded Value.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

/// Checks that decoding then re-encoding gives back `bytes` exactly, for the object and
/// every nested object that has a codec (COSE payloads, SUIT envelopes in an Update).
pub fn roundtrip(bytes: &[u8]) -> Result<(), Failure> {
    roundtrip_at("", bytes)
}

fn roundtrip_at(path: &str, bytes: &[u8]) -> Result<(), Failure> {
    if is_json(bytes) {
        let msg = otrp_json::decode_any(bytes).map_err(|e| fail(path, e.to_string()))?;
        let out = otrp_json::encode(&msg).map_err(|e| fail(path, e.to_string()))?;
        // JSON whitespace between tokens carries nothing: compare the compact forms.
        return compare(
            path,
            "OTrP message (whitespace ignored)",
            &json_compact(bytes),
            &out,
        );
    }
    let value = cbor::parse(bytes).map_err(|e| fail(path, e.to_string()))?;
    let kind = recognise_value(bytes, &value).map_err(|e| fail(path, e))?;
    match &kind {
        Kind::CoseSign1(_) | Kind::CoseSign(_) | Kind::CoseMac0(_) => {
            compare(path, "COSE structure", bytes, &generic_reencode(&value))?;
            let payload = match otrp_cose::peek(bytes) {
                Ok(otrp_cose::CoseMessage::Sign1(m)) => m.payload,
                Ok(otrp_cose::CoseMessage::Sign(m)) => m.payload,
                _ => otrp_cose::parse_mac0(bytes).ok().and_then(|m| m.payload),
            };
            if let Some(p) = payload {
                if cbor::parse(&p).is_ok() {
                    roundtrip_at(&join(path, "payload"), &p)?;
                }
            }
            Ok(())
        }
        Kind::Teep(_) => {
            let msg = otrp_teep::decode_any(bytes).map_err(|e| fail(path, e.to_string()))?;
            let out = msg.to_vec().map_err(|e| fail(path, e.to_string()))?;
            compare(path, "TEEP message", bytes, &out)?;
            if let otrp_teep::TeepMessage::Update(u) = &msg {
                for (i, env) in u.manifest_list.iter().flatten().enumerate() {
                    roundtrip_at(&join(path, &format!("manifest-list[{i}]")), env)?;
                }
            }
            Ok(())
        }
        Kind::Suit => {
            let env = otrp_suit::Envelope::decode(bytes).map_err(|e| fail(path, e.to_string()))?;
            let out = env.encode().map_err(|e| fail(path, e.to_string()))?;
            compare(path, "SUIT envelope", bytes, &out)
        }
        Kind::SuitReport => {
            let r =
                otrp_suit::SuitReport::from_cbor(bytes).map_err(|e| fail(path, e.to_string()))?;
            let out = r.to_cbor().map_err(|e| fail(path, e.to_string()))?;
            compare(path, "SUIT report", bytes, &out)
        }
        Kind::Eat => {
            let c = otrp_eat::EatClaims::decode(bytes).map_err(|e| fail(path, e.to_string()))?;
            let out = c.to_vec().map_err(|e| fail(path, e.to_string()))?;
            compare(path, "EAT claims", bytes, &out)
        }
        _ => compare(path, "CBOR item", bytes, &generic_reencode(&value)),
    }
}

/// `bytes` with the whitespace outside JSON strings removed.
pub fn json_compact(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !b.is_ascii_whitespace() {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
    out
}

/// A signature that verified: where, and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Path of the signed object.
    pub path: String,
    /// E.g. `COSE_Sign1 ESP256, key 1`.
    pub what: String,
}

/// Verifies every signature found in `bytes` (nested ones included) under `keys`.
/// Fails on the first signature that does not verify, or when none is found.
pub fn verify(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    keys: &[VerifyKey],
) -> Result<Vec<Verified>, Failure> {
    let public: Vec<PublicKey> = keys
        .iter()
        .filter_map(|k| match k {
            VerifyKey::Public(p) => Some(p.clone()),
            VerifyKey::Secret(_) => None,
        })
        .collect();
    let secret: Vec<&[u8]> = keys
        .iter()
        .filter_map(|k| match k {
            VerifyKey::Secret(s) => Some(s.as_slice()),
            VerifyKey::Public(_) => None,
        })
        .collect();
    let keys = Keys {
        public: &public,
        secret: &secret,
    };
    let mut found = Vec::new();
    verify_at(provider, "", bytes, &keys, &mut found)?;
    if found.is_empty() {
        return Err(fail("", "no signature found to verify"));
    }
    Ok(found)
}

/// The keys given on the command line, by kind.
struct Keys<'a> {
    public: &'a [PublicKey],
    secret: &'a [&'a [u8]],
}

fn describe_alg(alg: otrp_crypto::SigAlg) -> &'static str {
    alg.jose_name()
}

fn verify_at(
    provider: &dyn CryptoProvider,
    path: &str,
    bytes: &[u8],
    keys: &Keys<'_>,
    found: &mut Vec<Verified>,
) -> Result<(), Failure> {
    if is_json(bytes) {
        return verify_otrp(provider, path, bytes, keys, found);
    }
    let Ok(value) = cbor::parse(bytes) else {
        return Ok(());
    };
    let kind = recognise_value(bytes, &value).map_err(|e| fail(path, e))?;
    match kind {
        Kind::CoseSign1(_) => {
            let here = if path.is_empty() {
                "COSE_Sign1".to_string()
            } else {
                path.to_string()
            };
            let v = otrp_cose::verify_sign1(provider, bytes, None, keys.public)
                .map_err(|e| fail(&here, format!("COSE_Sign1 signature does not verify: {e}")))?;
            found.push(Verified {
                path: here.clone(),
                what: format!(
                    "COSE_Sign1 {} by key {}",
                    describe_alg(v.alg),
                    v.key_index + 1
                ),
            });
            if cbor::parse(&v.payload).is_ok() {
                verify_at(provider, &join(path, "payload"), &v.payload, keys, found)?;
            }
        }
        Kind::CoseSign(_) => {
            let here = if path.is_empty() {
                "COSE_Sign".to_string()
            } else {
                path.to_string()
            };
            let v = otrp_cose::verify_sign(
                provider,
                bytes,
                None,
                keys.public,
                otrp_cose::SignPolicy::All,
            )
            .map_err(|e| fail(&here, format!("COSE_Sign signature does not verify: {e}")))?;
            for s in &v.signers {
                found.push(Verified {
                    path: format!("{here}/signatures[{}]", s.signature_index),
                    what: format!(
                        "COSE_Signature {} by key {}",
                        describe_alg(s.alg),
                        s.key_index + 1
                    ),
                });
            }
            if cbor::parse(&v.payload).is_ok() {
                verify_at(provider, &join(path, "payload"), &v.payload, keys, found)?;
            }
        }
        Kind::Suit => verify_suit(provider, path, bytes, keys, found)?,
        Kind::Teep(_) => {
            let msg = otrp_teep::decode_any(bytes).map_err(|e| fail(path, e.to_string()))?;
            match &msg {
                otrp_teep::TeepMessage::Update(u) => {
                    for (i, env) in u.manifest_list.iter().flatten().enumerate() {
                        verify_at(
                            provider,
                            &join(path, &format!("manifest-list[{i}]")),
                            env,
                            keys,
                            found,
                        )?;
                    }
                    if let Some(p) = &u.attestation_payload {
                        verify_at(provider, &join(path, "attestation-payload"), p, keys, found)?;
                    }
                }
                otrp_teep::TeepMessage::QueryResponse(r) => {
                    if let Some(p) = &r.attestation_payload {
                        verify_at(provider, &join(path, "attestation-payload"), p, keys, found)?;
                    }
                }
                otrp_teep::TeepMessage::QueryRequest(q) => {
                    if let Some(p) = &q.attestation_payload {
                        verify_at(provider, &join(path, "attestation-payload"), p, keys, found)?;
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

fn verify_suit(
    provider: &dyn CryptoProvider,
    path: &str,
    bytes: &[u8],
    keys: &Keys<'_>,
    found: &mut Vec<Verified>,
) -> Result<(), Failure> {
    let here = if path.is_empty() {
        "SUIT envelope".to_string()
    } else {
        path.to_string()
    };
    let env = otrp_suit::Envelope::decode(bytes).map_err(|e| fail(&here, e.to_string()))?;
    env.check_integrity()
        .map_err(|e| fail(&here, format!("integrity check failed: {e}")))?;
    let auth = env.authentication.value();
    let digest = auth.digest.bytes();
    for (i, block) in auth.blocks.iter().enumerate() {
        let block_path = format!("{here}/authentication[{}]", i + 1);
        let result = match otrp_cose::peek(block) {
            Ok(otrp_cose::CoseMessage::Sign1(_)) => {
                otrp_cose::verify_sign1(provider, block, Some(digest), keys.public).map(|v| {
                    format!(
                        "COSE_Sign1 {} by key {}",
                        describe_alg(v.alg),
                        v.key_index + 1
                    )
                })
            }
            Ok(otrp_cose::CoseMessage::Sign(_)) => otrp_cose::verify_sign(
                provider,
                block,
                Some(digest),
                keys.public,
                otrp_cose::SignPolicy::All,
            )
            .map(|v| format!("COSE_Sign with {} signature(s)", v.signers.len())),
            Ok(_) if otrp_cose::parse_mac0(block).is_ok() => {
                otrp_cose::verify_mac0(provider, block, Some(digest), keys.secret)
                    .map(|v| format!("COSE_Mac0 HMAC 256/256 by key {}", v.key_index + 1))
            }
            Ok(_) => {
                return Err(fail(
                    &block_path,
                    "authentication block is neither COSE_Sign1, COSE_Sign nor COSE_Mac0",
                ))
            }
            Err(e) => Err(e),
        };
        let what = result.map_err(|e| {
            fail(
                &block_path,
                format!("SUIT authentication signature does not verify: {e}"),
            )
        })?;
        found.push(Verified {
            path: block_path,
            what,
        });
    }
    // Integrated dependencies are envelopes of their own.
    for (key, payload) in &env.integrated {
        if otrp_suit::Envelope::decode(payload).is_ok() {
            verify_suit(provider, &format!("{here}/{key:?}"), payload, keys, found)?;
        }
    }
    Ok(())
}

fn verify_otrp(
    provider: &dyn CryptoProvider,
    path: &str,
    bytes: &[u8],
    keys: &Keys<'_>,
    found: &mut Vec<Verified>,
) -> Result<(), Failure> {
    use otrp_json::OtrpMessage;
    let msg = otrp_json::decode_any(bytes).map_err(|e| fail(path, e.to_string()))?;
    let name = msg.name().to_string();
    let here = if path.is_empty() {
        name.clone()
    } else {
        path.to_string()
    };
    let policy = otrp_json::VerifyPolicy::AnyOne;
    let signatures = match &msg {
        OtrpMessage::Request(r) => r
            .verify(provider, keys.public, policy)
            .map(|v| v.signatures),
        OtrpMessage::Response(r) => r
            .verify(provider, keys.public, policy)
            .map(|v| v.signatures),
        _ => return Ok(()),
    }
    .map_err(|e| fail(&here, format!("JWS signature does not verify: {e}")))?;
    for (i, _) in signatures.iter().enumerate() {
        found.push(Verified {
            path: format!("{here}/signatures[{i}]"),
            what: format!("JWS signature of {name}"),
        });
    }
    Ok(())
}
