//! Certificate chain validation with rustls-webpki: path building to a trust anchor,
//! signatures, validity at a time the caller passes in, CRL revocation of every
//! certificate in the chain, and the usage each OpenTrust role needs.

use std::time::SystemTime;

use otrp_crypto::PublicKey;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use crate::cert::{CertInfo, OID_SERVER_AUTH};
use crate::pki::unix_secs;
use crate::ChainError;

/// DER content of id-kp-codeSigning (1.3.6.1.5.5.7.3.3).
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// DER content of id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// What the leaf certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TAM signer: must carry a tamid; no EKU other than codeSigning.
    TamSigner,
    /// An SP TA-signer: no EKU other than codeSigning.
    SpSigner,
    /// A TEE attestation key: must carry a ueid SAN.
    TeeAttestation,
    /// A trusted-firmware key: must carry a ueid SAN.
    TfwAttestation,
    /// The OEM signer.
    OemSigner,
    /// A TLS server (EKU serverAuth required).
    TlsServer,
}

impl Usage {
    fn name(self) -> &'static str {
        match self {
            Usage::TamSigner => "TAM signing",
            Usage::SpSigner => "SP TA signing",
            Usage::TeeAttestation => "TEE attestation",
            Usage::TfwAttestation => "trusted-firmware attestation",
            Usage::OemSigner => "OEM signing",
            Usage::TlsServer => "TLS server authentication",
        }
    }
}

/// What a successful validation tells about the leaf.
#[derive(Debug, Clone)]
pub struct VerifiedCert {
    /// The leaf's facts (subject, serial, validity, tamid, ueid, SANs).
    pub info: CertInfo,
    /// The leaf's public key.
    pub public_key: PublicKey,
    /// Length of the path found, leaf and anchor included.
    pub path_len: usize,
}

/// Trust anchors (root certificates) and, optionally, the CRLs to check revocation with.
#[derive(Debug, Clone)]
pub struct TrustStore {
    roots: Vec<CertificateDer<'static>>,
    crls: Option<Vec<OwnedCertRevocationList>>,
    /// The earliest nextUpdate of the CRLs (Unix seconds); None without CRLs.
    crls_current_until: Option<u64>,
}

fn malformed(what: String) -> impl FnOnce(webpki::Error) -> ChainError {
    move |e| ChainError::Malformed {
        what,
        detail: format!("{e:?}"),
    }
}

impl TrustStore {
    /// Anchors without revocation checking.
    pub fn without_revocation(roots: Vec<Vec<u8>>) -> Result<Self, ChainError> {
        let store = TrustStore {
            roots: roots.into_iter().map(CertificateDer::from).collect(),
            crls: None,
            crls_current_until: None,
        };
        store.check_roots()?;
        Ok(store)
    }

    /// Anchors plus CRLs. Every certificate of a chain (intermediates too) must then be
    /// covered by a current CRL from its issuer, or validation fails with
    /// [`ChainError::RevocationUnknown`].
    pub fn with_crls(roots: Vec<Vec<u8>>, crls: Vec<Vec<u8>>) -> Result<Self, ChainError> {
        let mut parsed = Vec::with_capacity(crls.len());
        let mut until = u64::MAX;
        for (i, der) in crls.iter().enumerate() {
            parsed.push(
                OwnedCertRevocationList::from_der(der).map_err(malformed(format!("CRL #{i}")))?,
            );
            // webpki keeps nextUpdate to itself: read it again (0, i.e. never current,
            // if it cannot be: webpki requires it).
            let next = <x509_cert::crl::CertificateList as der::Decode>::from_der(der)
                .ok()
                .and_then(|c| c.tbs_cert_list.next_update)
                .map_or(0, |t| t.to_unix_duration().as_secs());
            until = until.min(next);
        }
        let store = TrustStore {
            roots: roots.into_iter().map(CertificateDer::from).collect(),
            crls: Some(parsed),
            crls_current_until: Some(until),
        };
        store.check_roots()?;
        Ok(store)
    }

    fn check_roots(&self) -> Result<(), ChainError> {
        for (i, root) in self.roots.iter().enumerate() {
            webpki::anchor_from_trusted_cert(root).map_err(malformed(format!("root #{i}")))?;
        }
        Ok(())
    }

    /// With CRLs: the earliest nextUpdate among them (Unix seconds), from which on
    /// [`TrustStore::verify`] refuses chains as [`ChainError::CrlExpired`]; None when the
    /// store checks no revocation. A validation result stays what it was until then, the
    /// validity of the certificates, or another store (callers that cache results).
    pub fn crls_current_until(&self) -> Option<u64> {
        self.crls_current_until
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// True when there is no anchor.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Validates `leaf` (DER) with `intermediates` (DER, any order) at `now` for `usage`.
    pub fn verify(
        &self,
        leaf: &[u8],
        intermediates: &[Vec<u8>],
        usage: Usage,
        now: SystemTime,
    ) -> Result<VerifiedCert, ChainError> {
        let anchors: Vec<TrustAnchor<'_>> = self
            .roots
            .iter()
            .enumerate()
            .map(|(i, r)| {
                webpki::anchor_from_trusted_cert(r).map_err(malformed(format!("root #{i}")))
            })
            .collect::<Result<_, _>>()?;
        let leaf_der = CertificateDer::from(leaf);
        let ee =
            EndEntityCert::try_from(&leaf_der).map_err(malformed("leaf certificate".into()))?;
        let inter: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let crl_refs: Vec<CertRevocationList<'_>> = self
            .crls
            .iter()
            .flatten()
            .map(|c| CertRevocationList::from(c.clone()))
            .collect();
        let crl_refs2: Vec<&CertRevocationList<'_>> = crl_refs.iter().collect();
        let revocation = match &self.crls {
            None => None,
            Some(_) => Some(
                RevocationOptionsBuilder::new(&crl_refs2)
                    .map_err(|_| ChainError::RevocationUnknown)?
                    .with_depth(RevocationCheckDepth::Chain)
                    .with_status_policy(UnknownStatusPolicy::Deny)
                    .with_expiration_policy(ExpirationPolicy::Enforce)
                    .build(),
            ),
        };
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix_secs(now)));
        // webpki applies the EKU rule to every certificate of the path, and CAs carry no
        // EKU, so it checks "if present"; that the leaf of a TLS server really has
        // serverAuth is checked below.
        let eku = match usage {
            Usage::TlsServer => KeyUsage::required_if_present(EKU_SERVER_AUTH),
            _ => KeyUsage::required_if_present(EKU_CODE_SIGNING),
        };
        let path = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &inter,
                time,
                eku,
                revocation,
                None,
            )
            .map_err(|e| map_webpki(e, usage))?;
        let path_len = path.intermediate_certificates().count() + 2;
        let info = CertInfo::from_der(leaf).map_err(|e| ChainError::Malformed {
            what: "leaf certificate".into(),
            detail: e.to_string(),
        })?;
        match usage {
            Usage::TlsServer
                if !info
                    .extended_key_usages
                    .as_ref()
                    .is_some_and(|e| e.iter().any(|o| o == OID_SERVER_AUTH)) =>
            {
                return Err(ChainError::WrongUsage {
                    usage: usage.name(),
                    detail: "the leaf has no serverAuth extended key usage".into(),
                })
            }
            Usage::TamSigner if info.tamid.is_none() => return Err(ChainError::MissingTamId),
            Usage::TeeAttestation | Usage::TfwAttestation if info.ueid.is_none() => {
                return Err(ChainError::MissingUeid)
            }
            _ => {}
        }
        let public_key = info.public_key().map_err(|e| ChainError::Malformed {
            what: "leaf public key".into(),
            detail: e.to_string(),
        })?;
        Ok(VerifiedCert {
            info,
            public_key,
            path_len,
        })
    }
}

fn map_webpki(e: webpki::Error, usage: Usage) -> ChainError {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => ChainError::UnknownIssuer,
        E::CertExpired { time, not_after } => ChainError::Expired {
            not_after: not_after.as_secs(),
            now: time.as_secs(),
        },
        E::CertNotValidYet { time, not_before } => ChainError::NotYetValid {
            not_before: not_before.as_secs(),
            now: time.as_secs(),
        },
        E::CertRevoked => ChainError::Revoked,
        E::CrlExpired { time, next_update } => ChainError::CrlExpired {
            next_update: next_update.as_secs(),
            now: time.as_secs(),
        },
        E::UnknownRevocationStatus => ChainError::RevocationUnknown,
        E::InvalidSignatureForPublicKey | E::InvalidCrlSignatureForPublicKey => {
            ChainError::BadSignature
        }
        E::CaUsedAsEndEntity => ChainError::WrongUsage {
            usage: usage.name(),
            detail: "the leaf is a CA certificate".into(),
        },
        other @ E::RequiredEkuNotFoundContext(_) => ChainError::WrongUsage {
            usage: usage.name(),
            detail: format!("extended key usage does not allow it ({other:?})"),
        },
        other => ChainError::Rejected {
            detail: format!("{other:?}"),
        },
    }
}
