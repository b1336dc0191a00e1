//! Key algorithms of a PKI and the bridge from otrp-crypto keys to rcgen signers.

use core::fmt;
use core::str::FromStr;

use otrp_crypto::{KeyKind, PrivateKey, PublicKey};
use rand_core::CryptoRngCore;

use crate::PkiError;

/// The key algorithm of every key a PKI issues (CAs, leaves and device keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256 (ES256); the default.
    P256,
    /// Ed25519 (EdDSA).
    Ed25519,
    /// RSA-2048, PKCS#1 v1.5 with SHA-256 (RS256).
    Rsa2048,
}

impl KeyAlg {
    /// The name used on the command line and in `pki.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::P256 => "p256",
            KeyAlg::Ed25519 => "ed25519",
            KeyAlg::Rsa2048 => "rsa2048",
        }
    }

    /// The otrp-crypto key kind.
    pub fn key_kind(self) -> KeyKind {
        match self {
            KeyAlg::P256 => KeyKind::P256,
            KeyAlg::Ed25519 => KeyKind::Ed25519,
            KeyAlg::Rsa2048 => KeyKind::Rsa2048,
        }
    }

    /// The X.509 signature algorithm rcgen uses for keys of this kind.
    pub(crate) fn rcgen_alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlg::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// The algorithm of an existing key (RSA keys of any size map to `Rsa2048`).
    pub fn of_key(key: &PrivateKey) -> KeyAlg {
        match key {
            PrivateKey::P256(_) => KeyAlg::P256,
            PrivateKey::Ed25519(_) => KeyAlg::Ed25519,
            PrivateKey::Rsa(_) => KeyAlg::Rsa2048,
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlg {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "es256" => Ok(KeyAlg::P256),
            "ed25519" | "eddsa" => Ok(KeyAlg::Ed25519),
            "rsa2048" | "rsa" | "rs256" => Ok(KeyAlg::Rsa2048),
            _ => Err(PkiError::UnknownValue {
                what: "key algorithm",
                value: s.to_owned(),
                expected: "p256, ed25519, rsa2048",
            }),
        }
    }
}

/// Generates a key of `alg` from `rng`.
pub(crate) fn generate(
    alg: KeyAlg,
    what: &str,
    rng: &mut impl CryptoRngCore,
) -> Result<PrivateKey, PkiError> {
    PrivateKey::generate(alg.key_kind(), rng).map_err(|source| PkiError::Key {
        what: format!("generation for {what}"),
        source,
    })
}

/// PKCS#8 PEM of a private key.
pub(crate) fn private_pem(key: &PrivateKey, what: &str) -> Result<String, PkiError> {
    key.to_pkcs8_pem().map_err(|source| PkiError::Key {
        what: format!("PKCS#8 encoding of {what}"),
        source,
    })
}

/// SPKI DER of a public key.
pub(crate) fn spki_der(key: &PublicKey, what: &str) -> Result<Vec<u8>, PkiError> {
    key.to_spki_der().map_err(|source| PkiError::Key {
        what: format!("SPKI encoding of {what}"),
        source,
    })
}

/// SPKI PEM of a public key.
pub(crate) fn public_pem(key: &PublicKey, what: &str) -> Result<String, PkiError> {
    key.to_spki_pem().map_err(|source| PkiError::Key {
        what: format!("SPKI encoding of {what}"),
        source,
    })
}

/// PKCS#8 DER of a private key (for the sealed device state).
pub(crate) fn private_der(key: &PrivateKey, what: &str) -> Result<Vec<u8>, PkiError> {
    let pem = private_pem(key, what)?;
    let (_label, der) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| PkiError::Parse {
        what: format!("PKCS#8 PEM of {what}"),
        detail: e.to_string(),
    })?;
    Ok(der)
}

/// An rcgen signer for a CA key.
pub(crate) fn rcgen_signer(key: &PrivateKey, what: &str) -> Result<rcgen::KeyPair, PkiError> {
    let pem = private_pem(key, what)?;
    rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, KeyAlg::of_key(key).rcgen_alg()).map_err(
        |e| PkiError::Issue {
            what: format!("signer for {what}"),
            detail: e.to_string(),
        },
    )
}
