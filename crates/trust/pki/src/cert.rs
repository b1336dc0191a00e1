//! Facts read out of a DER certificate (x509-cert): subject, issuer, serial, validity, the
//! OpenTrust SAN URIs (`urn:otrp:tamid:<id>`, `urn:otrp:ueid:<hex>`) and the public key.

use der::{Decode, Encode};
use otrp_crypto::PublicKey;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, ExtendedKeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use crate::PkiError;

/// The SAN URI prefix that carries a TAM's `tamid` (OTrP §5.4; see the crate docs for why
/// a URI and not `registeredID`).
pub const TAMID_URN_PREFIX: &str = "urn:otrp:tamid:";
/// The SAN URI prefix that binds a device certificate (TEE or TFW) to its UEID (hex).
pub const UEID_URN_PREFIX: &str = "urn:otrp:ueid:";

/// id-kp-serverAuth.
pub const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// id-kp-codeSigning.
pub const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

/// What OpenTrust reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject DN (RFC 4514 string).
    pub subject: String,
    /// Issuer DN (RFC 4514 string).
    pub issuer: String,
    /// DER of the subject Name (to match an issuer byte for byte).
    pub subject_der: Vec<u8>,
    /// DER of the issuer Name.
    pub issuer_der: Vec<u8>,
    /// Serial number bytes (big-endian, as encoded).
    pub serial: Vec<u8>,
    /// notBefore, seconds since the Unix epoch.
    pub not_before: u64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: u64,
    /// Every SAN URI.
    pub uris: Vec<String>,
    /// Every SAN DNS name.
    pub dns_names: Vec<String>,
    /// The `tamid` from a `urn:otrp:tamid:` SAN URI.
    pub tamid: Option<String>,
    /// The UEID from a `urn:otrp:ueid:` SAN URI.
    pub ueid: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Subject key identifier, when the extension is present.
    pub subject_key_id: Option<Vec<u8>>,
    /// Authority key identifier (keyIdentifier field), when present.
    pub authority_key_id: Option<Vec<u8>>,
    /// Extended key usages (dotted OIDs), when the extension is present.
    pub extended_key_usages: Option<Vec<String>>,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let parse = |detail: String| PkiError::Parse {
            what: "certificate".into(),
            detail,
        };
        let cert = Certificate::from_der(der).map_err(|e| parse(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let subject_der = tbs.subject.to_der().map_err(|e| parse(e.to_string()))?;
        let issuer_der = tbs.issuer.to_der().map_err(|e| parse(e.to_string()))?;
        let spki_der = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| parse(e.to_string()))?;
        let mut uris = Vec::new();
        let mut dns_names = Vec::new();
        if let Some((_critical, san)) = tbs
            .get::<SubjectAltName>()
            .map_err(|e| parse(format!("subjectAltName: {e}")))?
        {
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(u) => uris.push(u.to_string()),
                    GeneralName::DnsName(d) => dns_names.push(d.to_string()),
                    _ => {}
                }
            }
        }
        let subject_key_id = tbs
            .get::<SubjectKeyIdentifier>()
            .map_err(|e| parse(format!("subjectKeyIdentifier: {e}")))?
            .map(|(_, ski)| ski.0.as_bytes().to_vec());
        let authority_key_id = tbs
            .get::<AuthorityKeyIdentifier>()
            .map_err(|e| parse(format!("authorityKeyIdentifier: {e}")))?
            .and_then(|(_, aki)| aki.key_identifier.map(|k| k.as_bytes().to_vec()));
        let extended_key_usages = tbs
            .get::<ExtendedKeyUsage>()
            .map_err(|e| parse(format!("extKeyUsage: {e}")))?
            .map(|(_, eku)| eku.0.iter().map(|o| o.to_string()).collect());
        let tamid = uris
            .iter()
            .find_map(|u| u.strip_prefix(TAMID_URN_PREFIX))
            .map(str::to_owned);
        let ueid = uris
            .iter()
            .find_map(|u| u.strip_prefix(UEID_URN_PREFIX))
            .and_then(|h| hex::decode(h).ok());
        Ok(CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            subject_der,
            issuer_der,
            serial: tbs.serial_number.as_bytes().to_vec(),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            uris,
            dns_names,
            tamid,
            ueid,
            spki_der,
            subject_key_id,
            authority_key_id,
            extended_key_usages,
        })
    }

    /// The subject public key as an otrp-crypto key.
    pub fn public_key(&self) -> Result<PublicKey, PkiError> {
        PublicKey::from_spki_der(&self.spki_der).map_err(|source| PkiError::Key {
            what: format!("in the certificate of {}", self.subject),
            source,
        })
    }

    /// The serial number as lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
}

/// Splits a PEM file into the DER of each `CERTIFICATE` block, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    pem_blocks(pem, "CERTIFICATE")
}

/// The DER of every PEM block with `label`, in order (other labels are skipped).
pub fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start..];
        let Some(stop) = after.find(&end) else {
            return Err(PkiError::Parse {
                what: format!("PEM {label} block #{}", out.len() + 1),
                detail: format!("no {end} line"),
            });
        };
        let block = &after[..stop + end.len()];
        let (_l, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| PkiError::Parse {
            what: format!("PEM {label} block #{}", out.len() + 1),
            detail: e.to_string(),
        })?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

/// PEM-encodes DER with `label` (64-column base64, LF).
pub fn to_pem(label: &str, der: &[u8]) -> Result<String, PkiError> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| PkiError::Parse {
        what: format!("PEM encoding of {label}"),
        detail: e.to_string(),
    })
}
