//! The TAM's identity: TLS certificate and key, TEEP signing keys, and the roots it
//! checks others against (TEE roots for attestation, SP roots for TA signers, the OEM key
//! for co-signatures). Loaded from a development PKI (`--pki DIR`) or from files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hkdf::Hkdf;
use otrp_crypto::{KeyKind, PrivateKey, PublicKey};
use otrp_pki::{CaRole, CertKind, Pki, TrustStore};
use otrp_tam::TamKeys;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Sha256;

use crate::config::ServerConfig;

/// Identity problems (each names the file or PKI entry).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PKI refused.
    #[error("PKI: {0}")]
    Pki(#[from] otrp_pki::PkiError),
    /// A root set could not be built.
    #[error("trust roots ({what}): {source}")]
    Roots {
        /// Which roots.
        what: &'static str,
        /// Why.
        source: otrp_pki::ChainError,
    },
    /// A PEM file holds no usable item.
    #[error("{what} in {path}: {reason}")]
    Pem {
        /// What was expected.
        what: &'static str,
        /// Where.
        path: String,
        /// Why.
        reason: String,
    },
    /// Something is missing.
    #[error("{0}")]
    Missing(String),
}

/// Everything the server proves itself with and checks others against.
#[derive(Clone)]
pub struct Identity {
    /// TLS server chain (leaf first) and key; None when only plain HTTP is possible.
    pub tls: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
    /// The certified TEEP signing key (signs SD manifests too).
    pub signing_key: PrivateKey,
    /// Both TEEP keys (P-256 and Ed25519).
    pub keys: TamKeys,
    /// The certificate chain of `signing_key` (DER, leaf first; empty when unknown): OTrP
    /// sends it as `x5c` and its leaf carries the `tamid`.
    pub tam_chain: Vec<Vec<u8>>,
    /// Roots for TEE attestation certificates.
    pub tee_roots: Option<TrustStore>,
    /// Roots for trusted-firmware (TFW) certificates, which endorse the TEE measurement.
    pub tfw_roots: Option<TrustStore>,
    /// Roots for SP TA-signer certificates.
    pub sp_roots: Option<TrustStore>,
    /// OEM public keys (dual-control co-signatures).
    pub oem_keys: Vec<PublicKey>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("tls", &self.tls.as_ref().map(|(c, _)| c.len()))
            .field("signing_key", &self.signing_key.key_type())
            .field("tam_chain", &self.tam_chain.len())
            .field("tee_roots", &self.tee_roots.as_ref().map(TrustStore::len))
            .field("sp_roots", &self.sp_roots.as_ref().map(TrustStore::len))
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(pem: &[u8], path: &str) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| IdentityError::Pem {
            what: "certificates",
            path: path.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(IdentityError::Pem {
            what: "certificates",
            path: path.into(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn tls_key(pem: &[u8], path: &str) -> Result<PrivateKeyDer<'static>, IdentityError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| IdentityError::Pem {
        what: "TLS private key",
        path: path.into(),
        reason: e.to_string(),
    })
}

fn signing_key(pem: &[u8], path: &str) -> Result<PrivateKey, IdentityError> {
    let text = std::str::from_utf8(pem).map_err(|_| IdentityError::Pem {
        what: "signing key",
        path: path.into(),
        reason: "not UTF-8 PEM".into(),
    })?;
    PrivateKey::from_pem(text).map_err(|e| IdentityError::Pem {
        what: "signing key",
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Both mandatory TEEP keys from the certified one: the other algorithm's key is derived
/// from it with HKDF-SHA256 (so every replica holding the signing key agrees), unless
/// `second` gives it.
pub fn tam_keys(
    signing: &PrivateKey,
    second: Option<PrivateKey>,
) -> Result<TamKeys, IdentityError> {
    let derive = |info: &[u8]| -> Result<[u8; 32], IdentityError> {
        let der = signing
            .to_pkcs8_pem()
            .map_err(|e| IdentityError::Missing(format!("signing key export: {e}")))?;
        let hk = Hkdf::<Sha256>::new(Some(b"otrp-tam-server second TEEP key"), der.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(info, &mut okm)
            .map_err(|_| IdentityError::Missing("HKDF output length".into()))?;
        Ok(okm)
    };
    let kind = match signing {
        PrivateKey::P256(_) => KeyKind::P256,
        PrivateKey::Ed25519(_) => KeyKind::Ed25519,
        PrivateKey::Rsa(_) => {
            return Err(IdentityError::Missing(
                "the TAM signing key must be P-256 or Ed25519, not RSA".into(),
            ))
        }
    };
    let (p256, ed25519) = match kind {
        KeyKind::P256 => {
            let ed = match second {
                Some(k) => k,
                None => PrivateKey::ed25519_from_seed(&derive(b"ed25519")?)
                    .map_err(|e| IdentityError::Missing(format!("derived Ed25519 key: {e}")))?,
            };
            (signing.clone(), ed)
        }
        _ => {
            let p = match second {
                Some(k) => k,
                None => PrivateKey::p256_from_scalar(&derive(b"p256")?)
                    .map_err(|e| IdentityError::Missing(format!("derived P-256 key: {e}")))?,
            };
            (p, signing.clone())
        }
    };
    Ok(TamKeys { p256, ed25519 })
}

impl Identity {
    /// From an in-memory development PKI: its first server certificate and TAM signer,
    /// its TEE and SP roots (with CRLs) and its OEM key.
    pub fn from_pki(pki: &Pki) -> Result<Identity, IdentityError> {
        let server = pki.first_issued(CertKind::Server)?;
        let chain = certs(pki.file(&server.chain)?, &server.chain)?;
        let key = tls_key(pki.file(&server.key)?, &server.key)?;
        let tam = pki.first_issued(CertKind::Tam)?;
        let signing = pki.private_key(&tam.key)?;
        let keys = tam_keys(&signing, None)?;
        let tam_chain = certs(pki.file(&tam.chain)?, &tam.chain)?
            .into_iter()
            .map(|c| c.to_vec())
            .collect();
        Ok(Identity {
            tls: Some((chain, Arc::new(key))),
            signing_key: signing,
            keys,
            tam_chain,
            tee_roots: Some(pki.trust_store(CaRole::Tee)?),
            tfw_roots: Some(pki.trust_store(CaRole::Tfw)?),
            sp_roots: Some(pki.trust_store(CaRole::Sp)?),
            oem_keys: vec![pki.oem_public_key()?],
        })
    }

    /// As the configuration says: `pki`, then the individual files override.
    pub fn load(config: &ServerConfig) -> Result<Identity, IdentityError> {
        let mut id = match &config.pki {
            Some(dir) => Some(Self::from_pki(&otrp_pki::fs::load_pki(dir)?)?),
            None => None,
        };
        let signing = match &config.signing_key {
            Some(p) => Some(signing_key(&read(p)?, &p.display().to_string())?),
            None => None,
        };
        let second = match &config.second_signing_key {
            Some(p) => Some(signing_key(&read(p)?, &p.display().to_string())?),
            None => None,
        };
        let mut id = match (id.take(), signing) {
            (Some(mut id), Some(s)) => {
                id.keys = tam_keys(&s, second)?;
                id.signing_key = s;
                // The PKI's TAM certificate is another key's now.
                id.tam_chain = Vec::new();
                id
            }
            (Some(mut id), None) => {
                if second.is_some() {
                    id.keys = tam_keys(&id.signing_key, second)?;
                }
                id
            }
            (None, Some(s)) => Identity {
                tls: None,
                keys: tam_keys(&s, second)?,
                signing_key: s,
                tam_chain: Vec::new(),
                tee_roots: None,
                tfw_roots: None,
                sp_roots: None,
                oem_keys: Vec::new(),
            },
            (None, None) => return Err(IdentityError::Missing(
                "no TAM signing key: pass --pki DIR (from `otrp pki init`) or --signing-key FILE"
                    .into(),
            )),
        };
        if let Some(p) = &config.signing_cert {
            id.tam_chain = certs(&read(p)?, &p.display().to_string())?
                .into_iter()
                .map(|c| c.to_vec())
                .collect();
        }
        match (&config.cert, &config.key) {
            (Some(c), Some(k)) => {
                let chain = certs(&read(c)?, &c.display().to_string())?;
                let key = tls_key(&read(k)?, &k.display().to_string())?;
                id.tls = Some((chain, Arc::new(key)));
            }
            (None, None) => {}
            _ => {
                return Err(IdentityError::Missing(
                    "--cert and --key go together (the TLS chain and its private key)".into(),
                ))
            }
        }
        if let Some(p) = &config.tee_roots {
            id.tee_roots = Some(roots(p, "TEE")?);
        }
        if let Some(p) = &config.sp_roots {
            id.sp_roots = Some(roots(p, "SP")?);
        }
        if let Some(p) = &config.oem_key {
            let text = String::from_utf8_lossy(&read(p)?).into_owned();
            id.oem_keys = vec![PublicKey::from_pem(&text).map_err(|e| IdentityError::Pem {
                what: "OEM public key",
                path: p.display().to_string(),
                reason: e.to_string(),
            })?];
        }
        Ok(id)
    }
}

fn roots(path: &Path, what: &'static str) -> Result<TrustStore, IdentityError> {
    let ders = certs(&read(path)?, &path.display().to_string())?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    TrustStore::without_revocation(ders).map_err(|source| IdentityError::Roots { what, source })
}
