//! JWK (RFC 7517/7518/8037) import and export, and the RFC 7638 JWK thumbprint.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BigUint;
use serde_json::{Map, Value};

use crate::{CryptoError, CryptoProvider, PrivateKey, PublicComponents, PublicKey};

fn jwk_err(what: impl Into<String>) -> CryptoError {
    CryptoError::Jwk { what: what.into() }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(URL_SAFE_NO_PAD.encode(bytes))
}

fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, CryptoError> {
    obj.get(name)
        .ok_or_else(|| jwk_err(format!("missing member \"{name}\"")))?
        .as_str()
        .ok_or_else(|| jwk_err(format!("member \"{name}\" is not a string")))
}

fn member_b64(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD.decode(member(obj, name)?).map_err(|_| {
        jwk_err(format!(
            "member \"{name}\" is not base64url without padding"
        ))
    })
}

fn as_object(jwk: &Value) -> Result<&Map<String, Value>, CryptoError> {
    jwk.as_object().ok_or_else(|| jwk_err("not a JSON object"))
}

/// Public key → JWK object (`kty` EC/OKP/RSA with `crv`, `x`, `y` / `n`, `e`).
pub fn public_to_jwk(key: &PublicKey) -> Value {
    let mut m = Map::new();
    match key.components() {
        PublicComponents::P256 { x, y } => {
            m.insert("kty".into(), "EC".into());
            m.insert("crv".into(), "P-256".into());
            m.insert("x".into(), b64(&x));
            m.insert("y".into(), b64(&y));
        }
        PublicComponents::Ed25519 { x } => {
            m.insert("kty".into(), "OKP".into());
            m.insert("crv".into(), "Ed25519".into());
            m.insert("x".into(), b64(&x));
        }
        PublicComponents::Rsa { n, e } => {
            m.insert("kty".into(), "RSA".into());
            m.insert("n".into(), b64(&n));
            m.insert("e".into(), b64(&e));
        }
    }
    Value::Object(m)
}

/// JWK object → public key. Private members, if present, are ignored.
pub fn public_from_jwk(jwk: &Value) -> Result<PublicKey, CryptoError> {
    let obj = as_object(jwk)?;
    match member(obj, "kty")? {
        "EC" => {
            let crv = member(obj, "crv")?;
            if crv != "P-256" {
                return Err(jwk_err(format!("unsupported EC curve \"{crv}\"")));
            }
            PublicKey::p256_from_coordinates(&member_b64(obj, "x")?, &member_b64(obj, "y")?)
        }
        "OKP" => {
            let crv = member(obj, "crv")?;
            if crv != "Ed25519" {
                return Err(jwk_err(format!("unsupported OKP curve \"{crv}\"")));
            }
            PublicKey::ed25519_from_bytes(&member_b64(obj, "x")?)
        }
        "RSA" => PublicKey::rsa_from_components(&member_b64(obj, "n")?, &member_b64(obj, "e")?),
        other => Err(jwk_err(format!("unsupported kty \"{other}\""))),
    }
}

/// Private key → JWK object (public members plus `d`; RSA also `p`, `q`, `dp`, `dq`, `qi`).
pub fn private_to_jwk(key: &PrivateKey) -> Value {
    let mut v = public_to_jwk(&key.public_key());
    if let Value::Object(m) = &mut v {
        match key {
            PrivateKey::P256(k) => {
                m.insert("d".into(), b64(&k.to_bytes()));
            }
            PrivateKey::Ed25519(k) => {
                m.insert("d".into(), b64(&k.to_bytes()));
            }
            PrivateKey::Rsa(k) => {
                m.insert("d".into(), b64(&k.d().to_bytes_be()));
                if let [p, q] = k.primes() {
                    m.insert("p".into(), b64(&p.to_bytes_be()));
                    m.insert("q".into(), b64(&q.to_bytes_be()));
                    let one = BigUint::from(1u8);
                    let dp = k.d() % (p - &one);
                    let dq = k.d() % (q - &one);
                    m.insert("dp".into(), b64(&dp.to_bytes_be()));
                    m.insert("dq".into(), b64(&dq.to_bytes_be()));
                    if let Some(qi) = k.crt_coefficient() {
                        m.insert("qi".into(), b64(&qi.to_bytes_be()));
                    }
                }
            }
        }
    }
    v
}

/// JWK object with private members → private key (checked against the public members).
pub fn private_from_jwk(jwk: &Value) -> Result<PrivateKey, CryptoError> {
    let obj = as_object(jwk)?;
    let public = public_from_jwk(jwk)?;
    let key = match &public {
        PublicKey::P256(_) => PrivateKey::p256_from_scalar(&member_b64(obj, "d")?)?,
        PublicKey::Ed25519(_) => PrivateKey::ed25519_from_seed(&member_b64(obj, "d")?)?,
        PublicKey::Rsa(pk) => {
            let d = BigUint::from_bytes_be(&member_b64(obj, "d")?);
            let primes = if obj.contains_key("p") || obj.contains_key("q") {
                alloc::vec![
                    BigUint::from_bytes_be(&member_b64(obj, "p")?),
                    BigUint::from_bytes_be(&member_b64(obj, "q")?),
                ]
            } else {
                Vec::new()
            };
            rsa::RsaPrivateKey::from_components(pk.n().clone(), pk.e().clone(), d, primes)
                .map(PrivateKey::Rsa)
                .map_err(|e| jwk_err(format!("RSA private key rejected: {e}")))?
        }
    };
    if key.public_key() != public {
        return Err(jwk_err("\"d\" does not match the public members"));
    }
    Ok(key)
}

/// Parses a JWK from JSON text.
pub fn parse(json: &str) -> Result<Value, CryptoError> {
    serde_json::from_str(json).map_err(|e| jwk_err(format!("invalid JSON: {e}")))
}

/// The RFC 7638 thumbprint input: the required members in lexicographic order,
/// no whitespace (`{"crv","kty","x","y"}`, `{"crv","kty","x"}`, `{"e","kty","n"}`).
///
/// Built explicitly rather than through `serde_json::Map`, whose member order depends
/// on whether some crate in the build enables `preserve_order`.
pub fn thumbprint_input(key: &PublicKey) -> String {
    let s = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match key.components() {
        PublicComponents::P256 { x, y } => format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            s(&x),
            s(&y)
        ),
        PublicComponents::Ed25519 { x } => {
            format!(
                "{{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"{}\"}}",
                s(&x)
            )
        }
        PublicComponents::Rsa { n, e } => {
            format!(
                "{{\"e\":\"{}\",\"kty\":\"RSA\",\"n\":\"{}\"}}",
                s(&e),
                s(&n)
            )
        }
    }
}

/// RFC 7638 JWK thumbprint (SHA-256).
pub fn thumbprint(key: &PublicKey, provider: &dyn CryptoProvider) -> [u8; 32] {
    provider.sha256(thumbprint_input(key).as_bytes())
}

/// RFC 7638 JWK thumbprint, base64url without padding (the usual `kid` string).
pub fn thumbprint_b64(key: &PublicKey, provider: &dyn CryptoProvider) -> String {
    URL_SAFE_NO_PAD
        .encode(thumbprint(key, provider))
        .to_string()
}
