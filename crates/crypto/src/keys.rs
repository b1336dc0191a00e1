//! Key types and PEM import/export (PKCS#8, SEC1, PKCS#1, SPKI).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use p256::elliptic_curve::sec1::FromEncodedPoint;
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::CryptoRngCore;
use rsa::pkcs1::{
    DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, EncodeRsaPublicKey,
};
use rsa::traits::PublicKeyParts;
use rsa::BigUint;

use crate::{CryptoError, SigAlg};

/// Which kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// NIST P-256 (secp256r1).
    P256,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus and e = 65537.
    Rsa2048,
}

/// A public (verification) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// NIST P-256.
    P256(p256::PublicKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA.
    Rsa(rsa::RsaPublicKey),
}

/// A private (signing) key. `Debug` never prints secret material.
#[derive(Clone)]
pub enum PrivateKey {
    /// NIST P-256.
    P256(p256::SecretKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// RSA.
    Rsa(rsa::RsaPrivateKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("type", &self.key_type())
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

const OID_EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn pem_err(what: &str, e: impl fmt::Display) -> CryptoError {
    CryptoError::Pem {
        what: alloc::format!("{what}: {e}"),
    }
}

/// Splits a PEM document into its label and DER bytes.
fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), CryptoError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| pem_err("decoding failed", e))?;
    Ok((label.to_string(), der))
}

impl PrivateKey {
    /// Generates a fresh key of `kind` from `rng`.
    pub fn generate(kind: KeyKind, rng: &mut impl CryptoRngCore) -> Result<Self, CryptoError> {
        Ok(match kind {
            KeyKind::P256 => PrivateKey::P256(p256::SecretKey::random(rng)),
            KeyKind::Ed25519 => PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(rng)),
            KeyKind::Rsa2048 => PrivateKey::Rsa(
                rsa::RsaPrivateKey::new(rng, 2048)
                    .map_err(|_| CryptoError::KeyGeneration { what: "RSA-2048" })?,
            ),
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(k.public_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
        }
    }

    /// The algorithm this key signs with: ES256 / EdDSA / RS256.
    pub fn default_alg(&self) -> SigAlg {
        match self {
            PrivateKey::P256(_) => SigAlg::P256Sha256,
            PrivateKey::Ed25519(_) => SigAlg::Ed25519,
            PrivateKey::Rsa(_) => SigAlg::Rs256,
        }
    }

    /// Short name of the key type ("P-256", "Ed25519", "RSA").
    pub fn key_type(&self) -> &'static str {
        match self {
            PrivateKey::P256(_) => "P-256",
            PrivateKey::Ed25519(_) => "Ed25519",
            PrivateKey::Rsa(_) => "RSA",
        }
    }

    /// Reads a private key from PEM: PKCS#8 "PRIVATE KEY" (P-256, Ed25519, RSA),
    /// SEC1 "EC PRIVATE KEY" (P-256) or PKCS#1 "RSA PRIVATE KEY".
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map(PrivateKey::P256)
                .map_err(|_| pem_err("SEC1 EC PRIVATE KEY", "not a valid P-256 key")),
            "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_der(&der)
                .map(PrivateKey::Rsa)
                .map_err(|e| pem_err("PKCS#1 RSA PRIVATE KEY", e)),
            other => Err(pem_err("unsupported private key label", other)),
        }
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (DER), dispatching on its algorithm OID.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| pem_err("PKCS#8", e))?;
        let oid = info.algorithm.oid;
        if oid == OID_EC_PUBLIC_KEY {
            p256::SecretKey::from_pkcs8_der(der)
                .map(PrivateKey::P256)
                .map_err(|e| pem_err("PKCS#8 EC key (only P-256 is supported)", e))
        } else if oid == OID_ED25519 {
            ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::Ed25519)
                .map_err(|e| pem_err("PKCS#8 Ed25519 key", e))
        } else if oid == OID_RSA {
            rsa::RsaPrivateKey::from_pkcs8_der(der)
                .map(PrivateKey::Rsa)
                .map_err(|e| pem_err("PKCS#8 RSA key", e))
        } else {
            Err(pem_err("PKCS#8 unsupported algorithm OID", oid))
        }
    }

    /// Writes the key as PKCS#8 "PRIVATE KEY" PEM (LF line endings).
    pub fn to_pkcs8_pem(&self) -> Result<String, CryptoError> {
        let pem = match self {
            PrivateKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| pem_err("PKCS#8 encoding", e))?;
        Ok(pem.as_str().to_string())
    }

    /// Writes a P-256 key as SEC1 "EC PRIVATE KEY" PEM.
    pub fn to_sec1_pem(&self) -> Result<String, CryptoError> {
        match self {
            PrivateKey::P256(k) => {
                let pem = k
                    .to_sec1_pem(LineEnding::LF)
                    .map_err(|e| pem_err("SEC1 encoding", e))?;
                Ok(pem.as_str().to_string())
            }
            _ => Err(pem_err("SEC1 encoding", "only P-256 keys have a SEC1 form")),
        }
    }

    /// Writes an RSA key as PKCS#1 "RSA PRIVATE KEY" PEM.
    pub fn to_pkcs1_pem(&self) -> Result<String, CryptoError> {
        match self {
            PrivateKey::Rsa(k) => {
                let pem = k
                    .to_pkcs1_pem(LineEnding::LF)
                    .map_err(|e| pem_err("PKCS#1 encoding", e))?;
                Ok(pem.as_str().to_string())
            }
            _ => Err(pem_err(
                "PKCS#1 encoding",
                "only RSA keys have a PKCS#1 form",
            )),
        }
    }
}

impl PublicKey {
    /// Reads a public key from PEM: SPKI "PUBLIC KEY" (P-256, Ed25519, RSA) or PKCS#1 "RSA PUBLIC KEY".
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "RSA PUBLIC KEY" => rsa::RsaPublicKey::from_pkcs1_der(&der)
                .map(PublicKey::Rsa)
                .map_err(|e| pem_err("PKCS#1 RSA PUBLIC KEY", e)),
            other => Err(pem_err("unsupported public key label", other)),
        }
    }

    /// Reads a DER `SubjectPublicKeyInfo`, dispatching on its algorithm OID.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|e| pem_err("SPKI", e))?;
        let oid = info.algorithm.oid;
        if oid == OID_EC_PUBLIC_KEY {
            p256::PublicKey::from_public_key_der(der)
                .map(PublicKey::P256)
                .map_err(|e| pem_err("SPKI EC key (only P-256 is supported)", e))
        } else if oid == OID_ED25519 {
            ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| pem_err("SPKI Ed25519 key", e))
        } else if oid == OID_RSA {
            rsa::RsaPublicKey::from_public_key_der(der)
                .map(PublicKey::Rsa)
                .map_err(|e| pem_err("SPKI RSA key", e))
        } else {
            Err(pem_err("SPKI unsupported algorithm OID", oid))
        }
    }

    /// Writes the key as SPKI "PUBLIC KEY" PEM (LF line endings).
    pub fn to_spki_pem(&self) -> Result<String, CryptoError> {
        match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| pem_err("SPKI encoding", e))
    }

    /// Writes the key as DER `SubjectPublicKeyInfo`.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        match self {
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        }
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| pem_err("SPKI encoding", e))
    }

    /// Writes an RSA key as PKCS#1 "RSA PUBLIC KEY" PEM.
    pub fn to_pkcs1_pem(&self) -> Result<String, CryptoError> {
        match self {
            PublicKey::Rsa(k) => k
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|e| pem_err("PKCS#1 encoding", e)),
            _ => Err(pem_err(
                "PKCS#1 encoding",
                "only RSA keys have a PKCS#1 form",
            )),
        }
    }

    /// The algorithm this key verifies: ES256 / EdDSA / RS256.
    pub fn default_alg(&self) -> SigAlg {
        match self {
            PublicKey::P256(_) => SigAlg::P256Sha256,
            PublicKey::Ed25519(_) => SigAlg::Ed25519,
            PublicKey::Rsa(_) => SigAlg::Rs256,
        }
    }

    /// Short name of the key type ("P-256", "Ed25519", "RSA").
    pub fn key_type(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "P-256",
            PublicKey::Ed25519(_) => "Ed25519",
            PublicKey::Rsa(_) => "RSA",
        }
    }

    /// Builds a P-256 key from its affine coordinates (32 bytes each, big-endian).
    pub fn p256_from_coordinates(x: &[u8], y: &[u8]) -> Result<Self, CryptoError> {
        if x.len() != 32 || y.len() != 32 {
            return Err(CryptoError::InvalidKey {
                what: "P-256 coordinates must be 32 bytes each",
            });
        }
        let point = p256::EncodedPoint::from_affine_coordinates(
            p256::FieldBytes::from_slice(x),
            p256::FieldBytes::from_slice(y),
            false,
        );
        Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&point))
            .map(PublicKey::P256)
            .ok_or(CryptoError::InvalidKey {
                what: "P-256 point is not on the curve",
            })
    }

    /// Builds an Ed25519 key from its 32-byte encoding.
    pub fn ed25519_from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::InvalidKey {
            what: "Ed25519 public key must be 32 bytes",
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(PublicKey::Ed25519)
            .map_err(|_| CryptoError::InvalidKey {
                what: "Ed25519 public key is not a valid point",
            })
    }

    /// Builds an RSA key from modulus and public exponent (unsigned big-endian).
    pub fn rsa_from_components(n: &[u8], e: &[u8]) -> Result<Self, CryptoError> {
        rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
            .map(PublicKey::Rsa)
            .map_err(|_| CryptoError::InvalidKey {
                what: "RSA modulus/exponent rejected",
            })
    }

    /// The key's raw components, as used by COSE_Key and JWK.
    pub fn components(&self) -> PublicComponents {
        match self {
            PublicKey::P256(k) => {
                let point = p256::EncodedPoint::from(k);
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                if let (Some(px), Some(py)) = (point.x(), point.y()) {
                    x.copy_from_slice(px);
                    y.copy_from_slice(py);
                }
                PublicComponents::P256 { x, y }
            }
            PublicKey::Ed25519(k) => PublicComponents::Ed25519 { x: k.to_bytes() },
            PublicKey::Rsa(k) => PublicComponents::Rsa {
                n: k.n().to_bytes_be(),
                e: k.e().to_bytes_be(),
            },
        }
    }
}

/// Raw public key components (big-endian, unpadded for RSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicComponents {
    /// P-256 affine coordinates.
    P256 {
        /// x coordinate.
        x: [u8; 32],
        /// y coordinate.
        y: [u8; 32],
    },
    /// Ed25519 public key bytes.
    Ed25519 {
        /// The 32-byte public key.
        x: [u8; 32],
    },
    /// RSA modulus and exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

impl PrivateKey {
    /// Builds a P-256 private key from its 32-byte scalar.
    pub fn p256_from_scalar(d: &[u8]) -> Result<Self, CryptoError> {
        if d.len() != 32 {
            return Err(CryptoError::InvalidKey {
                what: "P-256 private scalar must be 32 bytes",
            });
        }
        p256::SecretKey::from_slice(d)
            .map(PrivateKey::P256)
            .map_err(|_| CryptoError::InvalidKey {
                what: "P-256 private scalar out of range",
            })
    }

    /// Builds an Ed25519 private key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = seed.try_into().map_err(|_| CryptoError::InvalidKey {
            what: "Ed25519 seed must be 32 bytes",
        })?;
        Ok(PrivateKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &arr,
        )))
    }
}
