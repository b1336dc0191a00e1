//! The development PKI, in memory: CAs, issued certificates, CRLs, the OEM signing key and
//! batch keys, plus `pki.json`, the index that describes every file.
//!
//! [`Pki`] holds every file's bytes under its path relative to the PKI directory; the
//! [`crate::fs`] module reads and writes them. Nothing here touches the file system, reads
//! a clock or draws randomness on its own: time and `rng` are arguments. (rcgen signs with
//! ring, whose ECDSA signing draws its nonce from ring's `SystemRandom`; that is the one
//! exception, as in otrp-crypto's `RingProvider`.)

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otrp_crypto::{PrivateKey, PublicKey};
use rand_core::CryptoRngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::alg::{self, KeyAlg};
use crate::cert::{to_pem, CertInfo, TAMID_URN_PREFIX, UEID_URN_PREFIX};
use crate::verify::TrustStore;
use crate::{ChainError, PkiError};

/// The `format` value of `pki.json`.
pub const PKI_FORMAT: &str = "otrp-pki-v1";
/// The index file name inside a PKI directory.
pub const INDEX_FILE: &str = "pki.json";

/// Validity of root CAs (20 years).
pub const ROOT_DAYS: u32 = 7300;
/// Validity of issuing (intermediate) CAs (15 years).
pub const ISSUING_DAYS: u32 = 5475;
/// Validity of device certificates (TEE, TFW): 10 years, "the device's lifetime".
pub const DEVICE_DAYS: u32 = 3650;
/// Validity of TAM, SP and OEM signer certificates (2 years).
pub const SIGNER_DAYS: u32 = 730;
/// Validity of TLS server certificates (397 days, the CA/Browser Forum limit).
pub const SERVER_DAYS: u32 = 397;
/// How long a CRL stays current (its nextUpdate - thisUpdate).
pub const CRL_DAYS: u32 = 365;

/// The four certificate authorities (OTrP §4.4 "Key and Certificate Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaRole {
    /// TEE CA: device attestation keys (trusted by TAMs).
    Tee,
    /// TFW / OEM CA: trusted-firmware keys and the OEM signer (trusted by TAMs).
    Tfw,
    /// TAM CA: TAM signer keys (trusted by TEEs) and the TAM's HTTPS server certificate.
    Tam,
    /// SP signer CA: Service Provider TA-signing keys.
    Sp,
}

impl CaRole {
    /// Every role, in the order `pki init` creates them.
    pub const ALL: [CaRole; 4] = [CaRole::Tee, CaRole::Tfw, CaRole::Tam, CaRole::Sp];

    /// Directory name and CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaRole::Tee => "tee",
            CaRole::Tfw => "tfw",
            CaRole::Tam => "tam",
            CaRole::Sp => "sp",
        }
    }

    /// The organizational unit in the CA's subject.
    fn unit(self) -> &'static str {
        match self {
            CaRole::Tee => "TEE",
            CaRole::Tfw => "TFW-OEM",
            CaRole::Tam => "TAM",
            CaRole::Sp => "SP",
        }
    }

    /// What the CA's leaves are for.
    fn purpose(self) -> &'static str {
        match self {
            CaRole::Tee => "device attestation (TEE keys)",
            CaRole::Tfw => "trusted firmware (TFW keys) and the OEM signer",
            CaRole::Tam => "TAM signer keys and the TAM HTTPS server",
            CaRole::Sp => "Service Provider TA signer keys",
        }
    }
}

impl fmt::Display for CaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Root or issuing (intermediate) CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaLevel {
    /// Self-signed root (pathLen 1).
    Root,
    /// Issuing CA under the root (pathLen 0); signs the leaves and their CRL.
    Issuing,
}

impl CaLevel {
    fn as_str(self) -> &'static str {
        match self {
            CaLevel::Root => "root",
            CaLevel::Issuing => "issuing",
        }
    }
}

/// The kinds of leaf certificate a PKI issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// TAM signer; carries the `tamid` (SAN URI `urn:otrp:tamid:<id>` and subject CN).
    Tam,
    /// SP TA-signer (EKU codeSigning).
    Sp,
    /// TEE device attestation key (normally made by `device provision`).
    Tee,
    /// Trusted-firmware key (normally made by `device provision`).
    Tfw,
    /// TLS server certificate for the TAM (EKU serverAuth; localhost, 127.0.0.1, ::1).
    Server,
    /// The OEM signer (authorizations, dual-control co-signatures), under the TFW/OEM CA.
    Oem,
}

impl CertKind {
    /// Every kind.
    pub const ALL: [CertKind; 6] = [
        CertKind::Tam,
        CertKind::Sp,
        CertKind::Tee,
        CertKind::Tfw,
        CertKind::Server,
        CertKind::Oem,
    ];

    /// CLI spelling and directory name under `issued/`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertKind::Tam => "tam",
            CertKind::Sp => "sp",
            CertKind::Tee => "tee",
            CertKind::Tfw => "tfw",
            CertKind::Server => "server",
            CertKind::Oem => "oem",
        }
    }

    /// The CA that issues this kind.
    pub fn ca(self) -> CaRole {
        match self {
            CertKind::Tam | CertKind::Server => CaRole::Tam,
            CertKind::Sp => CaRole::Sp,
            CertKind::Tee => CaRole::Tee,
            CertKind::Tfw | CertKind::Oem => CaRole::Tfw,
        }
    }

    /// Default validity in days.
    pub fn default_days(self) -> u32 {
        match self {
            CertKind::Tee | CertKind::Tfw => DEVICE_DAYS,
            CertKind::Server => SERVER_DAYS,
            CertKind::Tam | CertKind::Sp | CertKind::Oem => SIGNER_DAYS,
        }
    }
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertKind {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| PkiError::UnknownValue {
                what: "certificate kind",
                value: s.to_owned(),
                expected: "tam, sp, tee, tfw, server, oem",
            })
    }
}

/// `pki.json`: the index of a PKI directory. Paths are relative to the directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PkiIndex {
    /// Always [`PKI_FORMAT`].
    pub format: String,
    /// Key algorithm of every key.
    pub alg: KeyAlg,
    /// Organization (O) in every subject.
    pub organization: String,
    /// When the PKI was created (Unix seconds).
    pub created: u64,
    /// Random id of this PKI (8 hex digits), part of every CA name so that two PKIs of
    /// one organization never share a CA subject.
    pub id: String,
    /// The OEM id devices report (EAT `oemid`, RFC 9711 §4.2.3 random form): hex of
    /// the first 16 bytes of SHA-256 over the OEM public key's SPKI.
    pub oemid: String,
    /// The eight CAs (root and issuing per role).
    pub cas: Vec<CaRecord>,
    /// Leaf certificates issued into this directory.
    pub issued: Vec<IssuedRecord>,
    /// Batch keys (created by `device provision --batch NAME`).
    pub batches: Vec<BatchRecord>,
    /// Every file of the PKI except `pki.json`, with what it is.
    pub files: Vec<FileRecord>,
}

/// One CA in `pki.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaRecord {
    /// Role.
    pub role: CaRole,
    /// Root or issuing.
    pub level: CaLevel,
    /// Subject as (attribute, value) pairs in order, e.g. `[["O", "..."], ["CN", "..."]]`.
    pub dn: Vec<(String, String)>,
    /// Subject as an RFC 4514 string (for people).
    pub subject: String,
    /// Serial number (hex).
    pub serial: String,
    /// notBefore (Unix seconds).
    pub not_before: u64,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// Certificate (PEM).
    pub cert: String,
    /// Private key (PKCS#8 PEM).
    pub key: String,
    /// Current CRL (PEM).
    pub crl: String,
    /// Number of the current CRL.
    pub crl_number: u64,
    /// The current CRL's nextUpdate (Unix seconds).
    pub crl_next_update: u64,
    /// Certificates this CA revoked.
    pub revoked: Vec<RevokedRecord>,
}

impl CaRecord {
    /// Short label, e.g. `tam issuing CA`.
    pub fn label(&self) -> String {
        format!("{} {} CA", self.role, self.level.as_str())
    }
}

/// A revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    /// Serial number (hex).
    pub serial: String,
    /// Its subject (for people).
    pub subject: String,
    /// When it was revoked (Unix seconds).
    pub revoked_at: u64,
}

/// A leaf certificate issued into the PKI directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Kind.
    pub kind: CertKind,
    /// Name (file stem).
    pub name: String,
    /// Subject.
    pub subject: String,
    /// Serial (hex).
    pub serial: String,
    /// notAfter (Unix seconds).
    pub not_after: u64,
    /// The TAM's tamid (TAM certificates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamid: Option<String>,
    /// Certificate (PEM).
    pub cert: String,
    /// Private key (PKCS#8 PEM).
    pub key: String,
    /// Chain: the leaf then the issuing CA (PEM), as a TLS server or JWS `x5c` sends it.
    pub chain: String,
}

/// A batch key shared by every device of one batch (DESIGN §3.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Batch name.
    pub name: String,
    /// P-256 private key (PKCS#8 PEM): the recipient key for ECDH-ES+A128KW.
    pub key: String,
    /// Its public key (SPKI PEM): what a TAM encrypts batch payloads to.
    pub public: String,
    /// Created (Unix seconds).
    pub created: u64,
    /// The batch's report master secret (32 bytes, hex), once a device of the batch was
    /// provisioned with a report key: what the TAM needs to check MAC'd reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_master: Option<String>,
}

/// One file of the PKI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the PKI directory.
    pub path: String,
    /// `certificate`, `chain`, `private-key`, `public-key` or `crl`.
    pub kind: String,
    /// True for private keys (written with mode 0600).
    pub secret: bool,
    /// What the file is for.
    pub description: String,
}

/// Options of [`Pki::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Key algorithm of every key.
    pub alg: KeyAlg,
    /// Organization (O).
    pub organization: String,
    /// Name of the initial TAM certificate.
    pub tam_name: String,
    /// The initial TAM's tamid.
    pub tamid: String,
    /// Name of the initial SP signer.
    pub sp_name: String,
    /// Name of the TAM HTTPS server certificate (also a DNS SAN when it looks like a host).
    pub server_name: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            alg: KeyAlg::P256,
            organization: "OpenTrust Development".into(),
            tam_name: "tam1".into(),
            tamid: "tam1.opentrust.test".into(),
            sp_name: "sp1".into(),
            server_name: "localhost".into(),
        }
    }
}

/// What to issue with [`Pki::issue`].
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Kind.
    pub kind: CertKind,
    /// Name (file stem, and the subject CN unless `tamid` says otherwise).
    pub name: String,
    /// Validity in days (default: [`CertKind::default_days`]).
    pub days: Option<u32>,
    /// TAM only: the tamid (default: the name).
    pub tamid: Option<String>,
    /// Server only: extra DNS names (localhost is always there).
    pub dns: Vec<String>,
    /// Server only: extra IP addresses (127.0.0.1 and ::1 are always there).
    pub ips: Vec<IpAddr>,
    /// Replace an existing certificate of the same kind and name.
    pub replace: bool,
}

impl IssueRequest {
    /// A request with defaults for everything but kind and name.
    pub fn new(kind: CertKind, name: impl Into<String>) -> Self {
        IssueRequest {
            kind,
            name: name.into(),
            days: None,
            tamid: None,
            dns: Vec::new(),
            ips: Vec::new(),
            replace: false,
        }
    }
}

/// What a device certificate (TEE or TFW) certifies.
#[derive(Debug, Clone, Copy)]
pub struct DeviceCertSpec<'a> {
    /// [`CertKind::Tee`] or [`CertKind::Tfw`].
    pub kind: CertKind,
    /// The device key.
    pub public: &'a PublicKey,
    /// The device's UEID (put in a SAN URI `urn:otrp:ueid:<hex>`).
    pub ueid: &'a [u8],
    /// Model name (in the subject CN).
    pub model: &'a str,
    /// Validity in days (default [`DEVICE_DAYS`]).
    pub days: Option<u32>,
}

/// A freshly issued leaf.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its record (as stored in `pki.json`).
    pub record: IssuedRecord,
    /// Certificate DER.
    pub cert_der: Vec<u8>,
    /// The private key.
    pub key: PrivateKey,
}

/// A development PKI in memory: the index and every file's bytes.
#[derive(Clone)]
pub struct Pki {
    index: PkiIndex,
    files: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("alg", &self.index.alg)
            .field("organization", &self.index.organization)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn odt(secs: u64) -> Result<OffsetDateTime, PkiError> {
    let s = i64::try_from(secs).map_err(|_| PkiError::Validity {
        what: format!("time {secs} is out of range"),
    })?;
    OffsetDateTime::from_unix_timestamp(s).map_err(|e| PkiError::Validity {
        what: format!("time {secs}: {e}"),
    })
}

fn add_days(secs: u64, days: u32) -> Result<u64, PkiError> {
    secs.checked_add(u64::from(days) * 86_400)
        .filter(|t| *t < 253_402_300_800) // 9999-12-31, the end of GeneralizedTime
        .ok_or_else(|| PkiError::Validity {
            what: format!("{days} days from {secs} is past the year 9999"),
        })
}

/// Checks a name used as a file stem.
pub fn check_name(what: &'static str, value: &str) -> Result<(), PkiError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

fn random_serial(rng: &mut impl CryptoRngCore) -> Vec<u8> {
    let mut s = [0u8; 16];
    rng.fill_bytes(&mut s);
    // Positive, 16 significant bytes: no leading zero byte, top bit clear.
    s[0] = (s[0] & 0x7f) | 0x01;
    s.to_vec()
}

fn issue_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |e| PkiError::Issue {
        what,
        detail: e.to_string(),
    }
}

fn dn_type(attr: &str) -> Result<DnType, PkiError> {
    match attr {
        "O" => Ok(DnType::OrganizationName),
        "OU" => Ok(DnType::OrganizationalUnitName),
        "CN" => Ok(DnType::CommonName),
        other => Err(PkiError::Index {
            what: format!("unsupported DN attribute {other:?} in cas[].dn"),
        }),
    }
}

fn build_dn(parts: &[(String, String)]) -> Result<DistinguishedName, PkiError> {
    let mut dn = DistinguishedName::new();
    for (attr, value) in parts {
        dn.push(dn_type(attr)?, value.as_str());
    }
    Ok(dn)
}

const CA_KEY_USAGES: [KeyUsagePurpose; 3] = [
    KeyUsagePurpose::KeyCertSign,
    KeyUsagePurpose::CrlSign,
    KeyUsagePurpose::DigitalSignature,
];

/// The subject key of a leaf as rcgen signs it: the SPKI DER from otrp-crypto.
struct LeafKey {
    spki: Vec<u8>,
    bits: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl LeafKey {
    fn new(key: &PublicKey, what: &str) -> Result<Self, PkiError> {
        let spki = alg::spki_der(key, what)?;
        let parsed = spki::SubjectPublicKeyInfoRef::try_from(spki.as_slice()).map_err(|e| {
            PkiError::Parse {
                what: format!("SPKI of {what}"),
                detail: e.to_string(),
            }
        })?;
        let bits = parsed.subject_public_key.raw_bytes().to_vec();
        let alg = match key {
            PublicKey::P256(_) => KeyAlg::P256,
            PublicKey::Ed25519(_) => KeyAlg::Ed25519,
            PublicKey::Rsa(_) => KeyAlg::Rsa2048,
        }
        .rcgen_alg();
        Ok(LeafKey { spki, bits, alg })
    }
}

impl rcgen::PublicKeyData for LeafKey {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki.clone()
    }
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// What a leaf certificate says, before signing.
struct LeafSpec {
    kind: CertKind,
    cn: String,
    sans: Vec<SanType>,
    days: u32,
}

impl Pki {
    /// Creates a complete PKI: root and issuing CAs for TEE, TFW/OEM, TAM and SP, a CRL
    /// per CA, a TAM signer carrying its tamid, the TAM's HTTPS server certificate, an SP
    /// signer and the OEM signer.
    pub fn init(
        opts: &InitOptions,
        rng: &mut impl CryptoRngCore,
        now: SystemTime,
    ) -> Result<Pki, PkiError> {
        check_name("TAM name", &opts.tam_name)?;
        check_name("SP name", &opts.sp_name)?;
        check_name("server name", &opts.server_name)?;
        let now = unix_secs(now);
        let mut pki = Pki {
            index: PkiIndex {
                format: PKI_FORMAT.into(),
                alg: opts.alg,
                organization: opts.organization.clone(),
                created: now,
                id: {
                    let mut id = [0u8; 4];
                    rng.fill_bytes(&mut id);
                    hex::encode(id)
                },
                oemid: String::new(),
                cas: Vec::new(),
                issued: Vec::new(),
                batches: Vec::new(),
                files: Vec::new(),
            },
            files: BTreeMap::new(),
        };
        for role in CaRole::ALL {
            pki.create_ca(role, rng, now)?;
        }
        pki.issue_at(&IssueRequest::new(CertKind::Oem, "oem"), rng, now)?;
        let mut tam = IssueRequest::new(CertKind::Tam, opts.tam_name.clone());
        tam.tamid = Some(opts.tamid.clone());
        pki.issue_at(&tam, rng, now)?;
        pki.issue_at(
            &IssueRequest::new(CertKind::Server, opts.server_name.clone()),
            rng,
            now,
        )?;
        pki.issue_at(
            &IssueRequest::new(CertKind::Sp, opts.sp_name.clone()),
            rng,
            now,
        )?;
        let oem_public = pki.oem_public_key()?;
        let spki = alg::spki_der(&oem_public, "OEM signer")?;
        let digest = otrp_crypto::default_provider().sha256(&spki);
        pki.index.oemid = hex::encode(digest.get(..16).unwrap_or(&digest));
        Ok(pki)
    }

    fn create_ca(
        &mut self,
        role: CaRole,
        rng: &mut impl CryptoRngCore,
        now: u64,
    ) -> Result<(), PkiError> {
        let org = self.index.organization.clone();
        let pki_id = self.index.id.clone();
        let alg = self.index.alg;
        let mut root_key_pair: Option<(Vec<(String, String)>, KeyPair)> = None;
        for level in [CaLevel::Root, CaLevel::Issuing] {
            let what = format!("{role} {} CA", level.as_str());
            let key = alg::generate(alg, &what, rng)?;
            let cn = match level {
                CaLevel::Root => format!("{} Root CA {pki_id}", role.unit()),
                CaLevel::Issuing => format!("{} Issuing CA {pki_id}-1", role.unit()),
            };
            let dn_parts = vec![
                ("O".to_owned(), org.clone()),
                ("OU".to_owned(), role.unit().to_owned()),
                ("CN".to_owned(), cn),
            ];
            let days = match level {
                CaLevel::Root => ROOT_DAYS,
                CaLevel::Issuing => ISSUING_DAYS,
            };
            let not_after = add_days(now, days)?;
            let serial = random_serial(rng);
            let mut params = CertificateParams::default();
            params.distinguished_name = build_dn(&dn_parts)?;
            params.not_before = odt(now)?;
            params.not_after = odt(not_after)?;
            params.serial_number = Some(SerialNumber::from_slice(&serial));
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(match level {
                CaLevel::Root => 1,
                CaLevel::Issuing => 0,
            }));
            params.key_usages = CA_KEY_USAGES.to_vec();
            params.use_authority_key_identifier_extension = level == CaLevel::Issuing;
            let signer = alg::rcgen_signer(&key, &what)?;
            let cert = match (level, &root_key_pair) {
                (CaLevel::Root, _) => params.self_signed(&signer),
                (CaLevel::Issuing, Some((root_dn, root_signer))) => {
                    let issuer = ca_issuer(root_dn, root_signer)?;
                    params.signed_by(&LeafKey::new(&key.public_key(), &what)?, &issuer)
                }
                (CaLevel::Issuing, None) => {
                    return Err(PkiError::Index {
                        what: format!("{role} issuing CA created before its root"),
                    })
                }
            }
            .map_err(issue_err(what.clone()))?;
            let dir = role.as_str();
            let stem = match level {
                CaLevel::Root => "root-ca",
                CaLevel::Issuing => "issuing-ca",
            };
            let cert_path = format!("{dir}/{stem}.pem");
            let key_path = format!("{dir}/{stem}.key.pem");
            let crl_path = format!("{dir}/{stem}.crl.pem");
            let info = CertInfo::from_der(cert.der())?;
            self.put(
                &cert_path,
                cert.pem().into_bytes(),
                "certificate",
                false,
                format!(
                    "{role} {} CA certificate: {}",
                    level.as_str(),
                    role.purpose()
                ),
            );
            self.put(
                &key_path,
                alg::private_pem(&key, &what)?.into_bytes(),
                "private-key",
                true,
                format!("{role} {} CA private key (PKCS#8)", level.as_str()),
            );
            self.index.cas.push(CaRecord {
                role,
                level,
                dn: dn_parts.clone(),
                subject: info.subject,
                serial: hex::encode(&serial),
                not_before: now,
                not_after,
                cert: cert_path,
                key: key_path,
                crl: crl_path.clone(),
                crl_number: 0,
                crl_next_update: 0,
                revoked: Vec::new(),
            });
            self.put(
                &crl_path,
                Vec::new(),
                "crl",
                false,
                format!(
                    "CRL of the {role} {} CA (revoked certificates it issued)",
                    level.as_str()
                ),
            );
            self.reissue_crl(role, level, now)?;
            if level == CaLevel::Root {
                root_key_pair = Some((dn_parts, signer));
            }
        }
        Ok(())
    }

    /// Adds or replaces a file (and its record).
    fn put(&mut self, path: &str, bytes: Vec<u8>, kind: &str, secret: bool, description: String) {
        self.files.insert(path.to_owned(), bytes);
        let record = FileRecord {
            path: path.to_owned(),
            kind: kind.to_owned(),
            secret,
            description,
        };
        if let Some(r) = self.index.files.iter_mut().find(|r| r.path == path) {
            *r = record;
        } else {
            self.index.files.push(record);
        }
    }

    /// The index (`pki.json`).
    pub fn index(&self) -> &PkiIndex {
        &self.index
    }

    /// The key algorithm of the PKI.
    pub fn alg(&self) -> KeyAlg {
        self.index.alg
    }

    /// The index as pretty JSON.
    pub fn index_json(&self) -> Result<String, PkiError> {
        serde_json::to_string_pretty(&self.index).map_err(|e| PkiError::Index {
            what: e.to_string(),
        })
    }

    /// Every file: relative path and bytes (without `pki.json`).
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    /// The bytes of one file.
    pub fn file(&self, path: &str) -> Result<&[u8], PkiError> {
        self.files
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| PkiError::MissingFile {
                path: path.to_owned(),
            })
    }

    fn file_str(&self, path: &str) -> Result<&str, PkiError> {
        std::str::from_utf8(self.file(path)?).map_err(|e| PkiError::Parse {
            what: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Rebuilds a PKI from `pki.json` and a reader for the files it names.
    pub fn from_parts(
        index_json: &[u8],
        mut read: impl FnMut(&str) -> Result<Vec<u8>, PkiError>,
    ) -> Result<Pki, PkiError> {
        let index: PkiIndex = serde_json::from_slice(index_json).map_err(|e| PkiError::Index {
            what: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        if index.format != PKI_FORMAT {
            return Err(PkiError::Index {
                what: format!(
                    "format is {:?}, this tool reads {PKI_FORMAT:?}",
                    index.format
                ),
            });
        }
        for role in CaRole::ALL {
            for level in [CaLevel::Root, CaLevel::Issuing] {
                if !index.cas.iter().any(|c| c.role == role && c.level == level) {
                    return Err(PkiError::Index {
                        what: format!("cas: no {role} {} CA", level.as_str()),
                    });
                }
            }
        }
        let mut files = BTreeMap::new();
        for rec in &index.files {
            if rec.path.split('/').any(|c| c.is_empty() || c == "..") || rec.path.starts_with('/') {
                return Err(PkiError::Index {
                    what: format!("files[].path {:?} is not a plain relative path", rec.path),
                });
            }
            files.insert(rec.path.clone(), read(&rec.path)?);
        }
        Ok(Pki { index, files })
    }

    /// The record of a CA.
    pub fn ca(&self, role: CaRole, level: CaLevel) -> Result<&CaRecord, PkiError> {
        self.index
            .cas
            .iter()
            .find(|c| c.role == role && c.level == level)
            .ok_or_else(|| PkiError::Index {
                what: format!("cas: no {role} {} CA", level.as_str()),
            })
    }

    fn ca_mut(&mut self, role: CaRole, level: CaLevel) -> Result<&mut CaRecord, PkiError> {
        self.index
            .cas
            .iter_mut()
            .find(|c| c.role == role && c.level == level)
            .ok_or_else(|| PkiError::Index {
                what: format!("cas: no {role} {} CA", level.as_str()),
            })
    }

    fn pem_der(&self, path: &str, label: &str) -> Result<Vec<u8>, PkiError> {
        crate::cert::pem_blocks(self.file_str(path)?, label)?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::Parse {
                what: path.to_owned(),
                detail: format!("no {label} PEM block"),
            })
    }

    /// A CA certificate (DER).
    pub fn ca_cert_der(&self, role: CaRole, level: CaLevel) -> Result<Vec<u8>, PkiError> {
        let path = self.ca(role, level)?.cert.clone();
        self.pem_der(&path, "CERTIFICATE")
    }

    /// A CA's current CRL (DER).
    pub fn crl_der(&self, role: CaRole, level: CaLevel) -> Result<Vec<u8>, PkiError> {
        let path = self.ca(role, level)?.crl.clone();
        self.pem_der(&path, "X509 CRL")
    }

    /// A private key of the PKI (PKCS#8 PEM file).
    pub fn private_key(&self, path: &str) -> Result<PrivateKey, PkiError> {
        PrivateKey::from_pem(self.file_str(path)?).map_err(|source| PkiError::Key {
            what: format!("in {path}"),
            source,
        })
    }

    /// A trust store for one role: its root as the only anchor, both CRLs of the role.
    pub fn trust_store(&self, role: CaRole) -> Result<TrustStore, PkiError> {
        let root = self.ca_cert_der(role, CaLevel::Root)?;
        let crls = vec![
            self.crl_der(role, CaLevel::Root)?,
            self.crl_der(role, CaLevel::Issuing)?,
        ];
        TrustStore::with_crls(vec![root], crls).map_err(chain_to_pki)
    }

    fn issuer(
        &self,
        role: CaRole,
        level: CaLevel,
    ) -> Result<(Vec<(String, String)>, KeyPair), PkiError> {
        let rec = self.ca(role, level)?;
        let key = self.private_key(&rec.key)?;
        let signer = alg::rcgen_signer(&key, &rec.label())?;
        Ok((rec.dn.clone(), signer))
    }

    /// Issues a leaf certificate into the PKI (files under `issued/<kind>/`).
    pub fn issue(
        &mut self,
        req: &IssueRequest,
        rng: &mut impl CryptoRngCore,
        now: SystemTime,
    ) -> Result<Issued, PkiError> {
        self.issue_at(req, rng, unix_secs(now))
    }

    fn issue_at(
        &mut self,
        req: &IssueRequest,
        rng: &mut impl CryptoRngCore,
        now: u64,
    ) -> Result<Issued, PkiError> {
        check_name("certificate name", &req.name)?;
        if !req.replace
            && self
                .index
                .issued
                .iter()
                .any(|r| r.kind == req.kind && r.name == req.name)
        {
            return Err(PkiError::AlreadyIssued {
                kind: req.kind.as_str(),
                name: req.name.clone(),
            });
        }
        let what = format!("{} certificate {:?}", req.kind, req.name);
        let key = alg::generate(self.index.alg, &what, rng)?;
        let mut sans = Vec::new();
        let mut cn = req.name.clone();
        let mut tamid = None;
        match req.kind {
            CertKind::Tam => {
                let id = req.tamid.clone().unwrap_or_else(|| req.name.clone());
                if id.is_empty() || !id.is_ascii() || id.chars().any(|c| c.is_ascii_control()) {
                    return Err(PkiError::InvalidName {
                        what: "tamid",
                        value: id,
                    });
                }
                sans.push(uri_san(&format!("{TAMID_URN_PREFIX}{id}"))?);
                cn = id.clone();
                tamid = Some(id);
            }
            CertKind::Server => {
                let mut dns = vec!["localhost".to_owned()];
                if req.name != "localhost" && looks_like_host(&req.name) {
                    dns.push(req.name.clone());
                }
                dns.extend(req.dns.iter().cloned());
                dns.dedup();
                for d in dns {
                    sans.push(SanType::DnsName(d.as_str().try_into().map_err(|e| {
                        PkiError::InvalidName {
                            what: "DNS name",
                            value: format!("{d} ({e})"),
                        }
                    })?));
                }
                let mut ips: Vec<IpAddr> =
                    vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
                ips.extend(req.ips.iter().copied());
                ips.dedup();
                sans.extend(ips.into_iter().map(SanType::IpAddress));
            }
            CertKind::Tee | CertKind::Tfw => {
                // A stand-alone device certificate (normally `device provision` makes
                // them): bound to a fresh random ueid like every device certificate.
                let mut ueid = [crate::device::UEID_TYPE_RAND; 17];
                if let Some(rest) = ueid.get_mut(1..) {
                    rng.fill_bytes(rest);
                }
                sans.push(uri_san(&format!("{UEID_URN_PREFIX}{}", hex::encode(ueid)))?);
            }
            CertKind::Sp | CertKind::Oem => {}
        }
        let spec = LeafSpec {
            kind: req.kind,
            cn,
            sans,
            days: req.days.unwrap_or_else(|| req.kind.default_days()),
        };
        let cert_der = self.sign_leaf(&spec, &key.public_key(), rng, now)?;
        let info = CertInfo::from_der(&cert_der)?;
        let serial = info.serial_hex();
        let dir = format!("issued/{}", req.kind);
        let cert_path = format!("{dir}/{}.pem", req.name);
        let key_path = format!("{dir}/{}.key.pem", req.name);
        let chain_path = format!("{dir}/{}.chain.pem", req.name);
        let cert_pem = to_pem("CERTIFICATE", &cert_der)?;
        let ca_pem = self
            .file_str(&self.ca(req.kind.ca(), CaLevel::Issuing)?.cert.clone())?
            .to_owned();
        let label = match req.kind {
            CertKind::Tam => format!(
                "TAM signer certificate (tamid {})",
                tamid.clone().unwrap_or_default()
            ),
            CertKind::Sp => "SP TA-signer certificate".to_owned(),
            CertKind::Tee => "TEE attestation certificate".to_owned(),
            CertKind::Tfw => "trusted-firmware certificate".to_owned(),
            CertKind::Server => {
                "TAM HTTPS server certificate (localhost, 127.0.0.1, ::1)".to_owned()
            }
            CertKind::Oem => "OEM signer certificate".to_owned(),
        };
        self.put(
            &cert_path,
            cert_pem.clone().into_bytes(),
            "certificate",
            false,
            label.clone(),
        );
        self.put(
            &key_path,
            alg::private_pem(&key, &what)?.into_bytes(),
            "private-key",
            true,
            format!("private key of the {label} (PKCS#8)"),
        );
        self.put(
            &chain_path,
            format!("{cert_pem}{ca_pem}").into_bytes(),
            "chain",
            false,
            format!("{label} followed by its issuing CA"),
        );
        let record = IssuedRecord {
            kind: req.kind,
            name: req.name.clone(),
            subject: info.subject,
            serial,
            not_after: info.not_after,
            tamid,
            cert: cert_path,
            key: key_path,
            chain: chain_path,
        };
        self.index
            .issued
            .retain(|r| !(r.kind == req.kind && r.name == req.name));
        self.index.issued.push(record.clone());
        Ok(Issued {
            record,
            cert_der,
            key,
        })
    }

    /// Signs a device certificate (TEE or TFW) for `spec.public`, bound to `spec.ueid` by a
    /// SAN URI. Nothing is stored in the PKI: the certificate lives in the device directory.
    pub fn issue_device_cert(
        &self,
        spec: &DeviceCertSpec<'_>,
        rng: &mut impl CryptoRngCore,
        now: SystemTime,
    ) -> Result<Vec<u8>, PkiError> {
        let label = match spec.kind {
            CertKind::Tee => "TEE",
            CertKind::Tfw => "TFW",
            other => {
                return Err(PkiError::UnknownValue {
                    what: "device certificate kind",
                    value: other.as_str().to_owned(),
                    expected: "tee, tfw",
                })
            }
        };
        let ueid_hex = hex::encode(spec.ueid);
        let leaf = LeafSpec {
            kind: spec.kind,
            cn: format!("{} {label} {ueid_hex}", spec.model),
            sans: vec![uri_san(&format!("{UEID_URN_PREFIX}{ueid_hex}"))?],
            days: spec.days.unwrap_or(DEVICE_DAYS),
        };
        self.sign_leaf(&leaf, spec.public, rng, unix_secs(now))
    }

    fn sign_leaf(
        &self,
        spec: &LeafSpec,
        public: &PublicKey,
        rng: &mut impl CryptoRngCore,
        now: u64,
    ) -> Result<Vec<u8>, PkiError> {
        let role = spec.kind.ca();
        let what = format!("{} certificate {:?}", spec.kind, spec.cn);
        let mut params = CertificateParams::default();
        params.distinguished_name = build_dn(&[
            ("O".to_owned(), self.index.organization.clone()),
            ("OU".to_owned(), role.unit().to_owned()),
            ("CN".to_owned(), spec.cn.clone()),
        ])?;
        params.not_before = odt(now)?;
        params.not_after = odt(add_days(now, spec.days)?)?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial(rng)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.subject_alt_names = spec.sans.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match spec.kind {
            CertKind::Server => {
                if matches!(public, PublicKey::Rsa(_)) {
                    params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
                }
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            CertKind::Sp => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
            }
            _ => {}
        }
        let (dn, signer) = self.issuer(role, CaLevel::Issuing)?;
        let issuer = ca_issuer(&dn, &signer)?;
        let cert = params
            .signed_by(&LeafKey::new(public, &what)?, &issuer)
            .map_err(issue_err(what))?;
        Ok(cert.der().to_vec())
    }

    /// Revokes a certificate issued by one of this PKI's CAs and reissues that CA's CRL.
    /// Returns the record added to the CA.
    pub fn revoke(
        &mut self,
        cert_der: &[u8],
        now: SystemTime,
    ) -> Result<(CaRole, CaLevel, RevokedRecord), PkiError> {
        let now = unix_secs(now);
        let info = CertInfo::from_der(cert_der)?;
        let mut found = None;
        for ca in &self.index.cas {
            let ca_der = self.pem_der(&ca.cert, "CERTIFICATE")?;
            let ca_info = CertInfo::from_der(&ca_der)?;
            let key_matches = match (&info.authority_key_id, &ca_info.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            };
            if ca_info.subject_der == info.issuer_der && key_matches {
                found = Some((ca.role, ca.level));
                break;
            }
        }
        let Some((role, level)) = found else {
            return Err(PkiError::ForeignCertificate {
                what: info.subject,
                issuer: info.issuer,
            });
        };
        let serial = info.serial_hex();
        let ca = self.ca_mut(role, level)?;
        if ca.revoked.iter().any(|r| r.serial == serial) {
            return Err(PkiError::AlreadyRevoked {
                serial,
                ca: ca.label(),
            });
        }
        let record = RevokedRecord {
            serial,
            subject: info.subject,
            revoked_at: now,
        };
        ca.revoked.push(record.clone());
        self.reissue_crl(role, level, now)?;
        Ok((role, level, record))
    }

    /// Reissues every CA's CRL (a new number, thisUpdate = now).
    pub fn refresh_crls(&mut self, now: SystemTime) -> Result<(), PkiError> {
        let now = unix_secs(now);
        for role in CaRole::ALL {
            for level in [CaLevel::Root, CaLevel::Issuing] {
                self.reissue_crl(role, level, now)?;
            }
        }
        Ok(())
    }

    fn reissue_crl(&mut self, role: CaRole, level: CaLevel, now: u64) -> Result<(), PkiError> {
        let (dn, signer) = self.issuer(role, level)?;
        let issuer = ca_issuer(&dn, &signer)?;
        let next_update = add_days(now, CRL_DAYS)?;
        let ca = self.ca_mut(role, level)?;
        let number = ca.crl_number + 1;
        let mut revoked_certs = Vec::new();
        for r in &ca.revoked {
            let serial = hex::decode(&r.serial).map_err(|e| PkiError::Index {
                what: format!("cas[{}].revoked[].serial {:?}: {e}", ca.label(), r.serial),
            })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: odt(r.revoked_at)?,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: odt(now)?,
            next_update: odt(next_update)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let label = ca.label();
        let crl = params
            .signed_by(&issuer)
            .map_err(issue_err(format!("CRL of the {label}")))?;
        let pem = crl
            .pem()
            .map_err(issue_err(format!("CRL of the {label}")))?;
        ca.crl_number = number;
        ca.crl_next_update = next_update;
        let path = ca.crl.clone();
        if let Some(bytes) = self.files.get_mut(&path) {
            *bytes = pem.into_bytes();
        } else {
            self.files.insert(path, pem.into_bytes());
        }
        Ok(())
    }

    /// An issued leaf record.
    pub fn issued(&self, kind: CertKind, name: &str) -> Result<&IssuedRecord, PkiError> {
        self.index
            .issued
            .iter()
            .find(|r| r.kind == kind && r.name == name)
            .ok_or_else(|| PkiError::MissingFile {
                path: format!("issued/{kind}/{name}.pem"),
            })
    }

    /// The first issued leaf of a kind (e.g. the TAM made by `init`).
    pub fn first_issued(&self, kind: CertKind) -> Result<&IssuedRecord, PkiError> {
        self.index
            .issued
            .iter()
            .find(|r| r.kind == kind)
            .ok_or_else(|| PkiError::MissingFile {
                path: format!("issued/{kind}/*.pem"),
            })
    }

    /// The DER of an issued leaf.
    pub fn issued_cert_der(&self, kind: CertKind, name: &str) -> Result<Vec<u8>, PkiError> {
        let path = self.issued(kind, name)?.cert.clone();
        self.pem_der(&path, "CERTIFICATE")
    }

    /// The OEM signing key (made by `init`).
    pub fn oem_key(&self) -> Result<PrivateKey, PkiError> {
        let path = self.first_issued(CertKind::Oem)?.key.clone();
        self.private_key(&path)
    }

    /// The OEM public key.
    pub fn oem_public_key(&self) -> Result<PublicKey, PkiError> {
        let path = self.first_issued(CertKind::Oem)?.cert.clone();
        CertInfo::from_der(&self.pem_der(&path, "CERTIFICATE")?)?.public_key()
    }

    /// The OEM id (16 bytes, see [`PkiIndex::oemid`]).
    pub fn oemid(&self) -> Result<Vec<u8>, PkiError> {
        hex::decode(&self.index.oemid).map_err(|e| PkiError::Index {
            what: format!("oemid {:?}: {e}", self.index.oemid),
        })
    }

    /// The batch key of `name`, created (P-256, from `rng`) on first use.
    /// Returns the key and whether it was just created.
    pub fn batch_key(
        &mut self,
        name: &str,
        rng: &mut impl CryptoRngCore,
        now: SystemTime,
    ) -> Result<(PrivateKey, bool), PkiError> {
        check_name("batch name", name)?;
        if let Some(rec) = self.index.batches.iter().find(|b| b.name == name) {
            let path = rec.key.clone();
            return Ok((self.private_key(&path)?, false));
        }
        let what = format!("batch key {name:?}");
        let key = alg::generate(KeyAlg::P256, &what, rng)?;
        let key_path = format!("batch/{name}.key.pem");
        let pub_path = format!("batch/{name}.pub.pem");
        self.put(
            &key_path,
            alg::private_pem(&key, &what)?.into_bytes(),
            "private-key",
            true,
            format!("batch key of batch {name:?} (P-256, PKCS#8), shared by its devices"),
        );
        self.put(
            &pub_path,
            alg::public_pem(&key.public_key(), &what)?.into_bytes(),
            "public-key",
            false,
            format!("public batch key of batch {name:?}: TAMs encrypt batch payloads to it"),
        );
        self.index.batches.push(BatchRecord {
            name: name.to_owned(),
            key: key_path,
            public: pub_path,
            created: unix_secs(now),
            report_master: None,
        });
        Ok((key, true))
    }

    /// The report master secret of batch `name` (created on first use, in
    /// `batch/<name>.report-master.key`, 64 hex digits): devices of the batch provisioned
    /// with a report key get one derived from it (`otrp_crypto::report_key`), and a TAM
    /// configured with it checks their MAC'd batch reports. Returns whether it was created
    /// (the PKI must then be saved). The batch key must exist already.
    pub fn batch_report_master(
        &mut self,
        name: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(zeroize::Zeroizing<[u8; 32]>, bool), PkiError> {
        let idx = self
            .index
            .batches
            .iter()
            .position(|b| b.name == name)
            .ok_or_else(|| PkiError::Parse {
                what: format!("batch {name:?}"),
                detail: "no such batch in this PKI".into(),
            })?;
        if let Some(path) = self
            .index
            .batches
            .get(idx)
            .and_then(|b| b.report_master.clone())
        {
            return Ok((read_report_master(self.file_str(&path)?, &path)?, false));
        }
        let mut master = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(master.as_mut());
        let path = format!("batch/{name}.report-master.key");
        self.put(
            &path,
            format!("{}\n", hex::encode(master.as_slice())).into_bytes(),
            "secret",
            true,
            format!(
                "report master secret of batch {name:?} (32 bytes, hex): give it to the TAM \
                 (tam.toml [[batch_report_master]]) to check the batch's MAC'd reports"
            ),
        );
        if let Some(b) = self.index.batches.get_mut(idx) {
            b.report_master = Some(path);
        }
        Ok((master, true))
    }
}

/// Parses a report master file (64 hex digits, surrounding whitespace ignored).
pub fn read_report_master(
    text: &str,
    what: &str,
) -> Result<zeroize::Zeroizing<[u8; 32]>, PkiError> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), out.as_mut()).map_err(|e| PkiError::Parse {
        what: what.to_owned(),
        detail: format!("a report master is 64 hex digits: {e}"),
    })?;
    Ok(out)
}

fn chain_to_pki(e: ChainError) -> PkiError {
    PkiError::Parse {
        what: "trust store".into(),
        detail: e.to_string(),
    }
}

fn uri_san(uri: &str) -> Result<SanType, PkiError> {
    Ok(SanType::URI(uri.try_into().map_err(|e| {
        PkiError::InvalidName {
            what: "SAN URI",
            value: format!("{uri} ({e})"),
        }
    })?))
}

fn looks_like_host(name: &str) -> bool {
    name.contains('.') && name.parse::<IpAddr>().is_err() && !name.starts_with('-')
}

fn ca_issuer<'a>(
    dn: &[(String, String)],
    signer: &'a KeyPair,
) -> Result<Issuer<'static, &'a KeyPair>, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = build_dn(dn)?;
    params.key_usages = CA_KEY_USAGES.to_vec();
    Ok(Issuer::new(params, signer))
}

/// RFC 3339 (UTC) rendering of Unix seconds, for people.
pub fn rfc3339(secs: u64) -> String {
    odt(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

/// A time `days` after `now` (for tests and tools that check expiry).
pub fn days_after(now: SystemTime, days: u32) -> SystemTime {
    now + Duration::from_secs(u64::from(days) * 86_400)
}
