//! COSE_Key (RFC 9052 §7, RFC 9053 §7, RFC 8230 for RSA) <-> `otrp_crypto` keys.

use alloc::format;
use alloc::vec::Vec;

use coset::cbor::Value;
use coset::iana::{self, EnumI64};
use coset::{CoseKey, CoseKeyBuilder, KeyType, Label};
use otrp_crypto::rsa::traits::PrivateKeyParts;
use otrp_crypto::rsa::BigUint;
use otrp_crypto::{PrivateKey, PublicComponents, PublicKey};

use crate::CoseError;

// RFC 9053 §7.1 / §7.2 and RFC 8230 §4 key parameter labels.
const CRV: i64 = -1;
const X: i64 = -2;
const Y: i64 = -3;
const D: i64 = -4;
const RSA_N: i64 = -1;
const RSA_E: i64 = -2;
const RSA_D: i64 = -3;
const RSA_P: i64 = -4;
const RSA_Q: i64 = -5;
const RSA_DP: i64 = -6;
const RSA_DQ: i64 = -7;
const RSA_QINV: i64 = -8;

fn key_err(what: impl Into<alloc::string::String>) -> CoseError {
    CoseError::Key { what: what.into() }
}

/// A public key as a COSE_Key: EC2 P-256 `{1:2,-1:1,-2:x,-3:y}`, OKP Ed25519
/// `{1:1,-1:6,-2:x}`, RSA `{1:3,-1:n,-2:e}`. No `kid` or `alg` is set.
pub fn cose_key_from_public(key: &PublicKey) -> CoseKey {
    match key.components() {
        PublicComponents::P256 { x, y } => {
            CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.to_vec(), y.to_vec())
                .build()
        }
        PublicComponents::Ed25519 { x } => CoseKeyBuilder::new_okp_key()
            .param(CRV, Value::from(iana::EllipticCurve::Ed25519.to_i64()))
            .param(X, Value::Bytes(x.to_vec()))
            .build(),
        PublicComponents::Rsa { n, e } => CoseKeyBuilder::new()
            .key_type(iana::KeyType::RSA)
            .param(RSA_N, Value::Bytes(n))
            .param(RSA_E, Value::Bytes(e))
            .build(),
    }
}

/// A private key as a COSE_Key: the public parameters plus `d` (-4) for EC2/OKP, and
/// `d`, `p`, `q`, `dP`, `dQ`, `qInv` (-3 … -8) for RSA.
pub fn cose_key_from_private(key: &PrivateKey) -> CoseKey {
    let mut ck = cose_key_from_public(&key.public_key());
    match key {
        PrivateKey::P256(k) => ck
            .params
            .push((Label::Int(D), Value::Bytes(k.to_bytes().to_vec()))),
        PrivateKey::Ed25519(k) => ck
            .params
            .push((Label::Int(D), Value::Bytes(k.to_bytes().to_vec()))),
        PrivateKey::Rsa(k) => {
            ck.params
                .push((Label::Int(RSA_D), Value::Bytes(k.d().to_bytes_be())));
            if let [p, q] = k.primes() {
                let one = BigUint::from(1u8);
                let dp = k.d() % (p - &one);
                let dq = k.d() % (q - &one);
                ck.params
                    .push((Label::Int(RSA_P), Value::Bytes(p.to_bytes_be())));
                ck.params
                    .push((Label::Int(RSA_Q), Value::Bytes(q.to_bytes_be())));
                ck.params
                    .push((Label::Int(RSA_DP), Value::Bytes(dp.to_bytes_be())));
                ck.params
                    .push((Label::Int(RSA_DQ), Value::Bytes(dq.to_bytes_be())));
                if let Some(qi) = k.crt_coefficient() {
                    ck.params
                        .push((Label::Int(RSA_QINV), Value::Bytes(qi.to_bytes_be())));
                }
            }
        }
    }
    ck
}

fn param(key: &CoseKey, label: i64) -> Option<&Value> {
    key.params
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

fn bytes_param<'a>(key: &'a CoseKey, label: i64, name: &str) -> Result<&'a [u8], CoseError> {
    match param(key, label) {
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(key_err(format!("parameter {name} ({label}) is not a bstr"))),
        None => Err(key_err(format!("parameter {name} ({label}) missing"))),
    }
}

fn curve(key: &CoseKey) -> Result<i64, CoseError> {
    match param(key, CRV) {
        Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| key_err("crv (-1) out of range")),
        Some(_) => Err(key_err("crv (-1) is not an integer")),
        None => Err(key_err("crv (-1) missing")),
    }
}

fn kty(key: &CoseKey) -> Result<iana::KeyType, CoseError> {
    match &key.kty {
        KeyType::Assigned(k) => Ok(*k),
        other => Err(key_err(format!("unsupported kty {other:?}"))),
    }
}

/// A COSE_Key → public key (EC2 P-256 with x and y as bstr, OKP Ed25519, RSA).
pub fn public_from_cose_key(key: &CoseKey) -> Result<PublicKey, CoseError> {
    let convert = |e: otrp_crypto::CryptoError| key_err(format!("{e}"));
    match kty(key)? {
        iana::KeyType::EC2 => {
            let crv = curve(key)?;
            if crv != iana::EllipticCurve::P_256.to_i64() {
                return Err(key_err(format!(
                    "EC2 curve {crv} unsupported (only P-256, 1)"
                )));
            }
            if let Some(Value::Bool(_)) = param(key, Y) {
                return Err(key_err(
                    "EC2 y (-3) as a sign bit (compressed point) is unsupported",
                ));
            }
            PublicKey::p256_from_coordinates(bytes_param(key, X, "x")?, bytes_param(key, Y, "y")?)
                .map_err(convert)
        }
        iana::KeyType::OKP => {
            let crv = curve(key)?;
            if crv != iana::EllipticCurve::Ed25519.to_i64() {
                return Err(key_err(format!(
                    "OKP curve {crv} unsupported (only Ed25519, 6)"
                )));
            }
            PublicKey::ed25519_from_bytes(bytes_param(key, X, "x")?).map_err(convert)
        }
        iana::KeyType::RSA => PublicKey::rsa_from_components(
            bytes_param(key, RSA_N, "n")?,
            bytes_param(key, RSA_E, "e")?,
        )
        .map_err(convert),
        other => Err(key_err(format!("unsupported kty {}", other.to_i64()))),
    }
}

/// A COSE_Key with private parameters → private key. Where the public parameters are
/// present they must match the private key.
pub fn private_from_cose_key(key: &CoseKey) -> Result<PrivateKey, CoseError> {
    let convert = |e: otrp_crypto::CryptoError| key_err(format!("{e}"));
    let private = match kty(key)? {
        iana::KeyType::EC2 => {
            let crv = curve(key)?;
            if crv != iana::EllipticCurve::P_256.to_i64() {
                return Err(key_err(format!(
                    "EC2 curve {crv} unsupported (only P-256, 1)"
                )));
            }
            PrivateKey::p256_from_scalar(bytes_param(key, D, "d")?).map_err(convert)?
        }
        iana::KeyType::OKP => {
            let crv = curve(key)?;
            if crv != iana::EllipticCurve::Ed25519.to_i64() {
                return Err(key_err(format!(
                    "OKP curve {crv} unsupported (only Ed25519, 6)"
                )));
            }
            PrivateKey::ed25519_from_seed(bytes_param(key, D, "d")?).map_err(convert)?
        }
        iana::KeyType::RSA => {
            let n = BigUint::from_bytes_be(bytes_param(key, RSA_N, "n")?);
            let e = BigUint::from_bytes_be(bytes_param(key, RSA_E, "e")?);
            let d = BigUint::from_bytes_be(bytes_param(key, RSA_D, "d")?);
            let primes = if param(key, RSA_P).is_some() || param(key, RSA_Q).is_some() {
                alloc::vec![
                    BigUint::from_bytes_be(bytes_param(key, RSA_P, "p")?),
                    BigUint::from_bytes_be(bytes_param(key, RSA_Q, "q")?),
                ]
            } else {
                Vec::new()
            };
            otrp_crypto::rsa::RsaPrivateKey::from_components(n, e, d, primes)
                .map(PrivateKey::Rsa)
                .map_err(|e| key_err(format!("RSA private key rejected: {e}")))?
        }
        other => return Err(key_err(format!("unsupported kty {}", other.to_i64()))),
    };
    let has_public = match kty(key)? {
        iana::KeyType::EC2 => param(key, X).is_some() || param(key, Y).is_some(),
        iana::KeyType::OKP => param(key, X).is_some(),
        _ => false,
    };
    if has_public && public_from_cose_key(key)? != private.public_key() {
        return Err(key_err("private key d (-4) does not match x/y"));
    }
    Ok(private)
}

/// Reads a COSE_Key from CBOR bytes (`coset` parsing; no trailing data allowed).
pub fn cose_key_from_slice(bytes: &[u8]) -> Result<CoseKey, CoseError> {
    use coset::CborSerializable;
    CoseKey::from_slice(bytes).map_err(CoseError::coset("COSE_Key"))
}
