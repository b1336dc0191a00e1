//! Device provisioning, the factory step: one device's identity, written as the simulated
//! TEE's sealed initial state.
//!
//! [`provision`] makes, for one device:
//! * a TEE attestation key and certificate (TEE issuing CA) and a TFW key and certificate
//!   (TFW/OEM issuing CA), both bound to the device by a SAN URI `urn:otrp:ueid:<hex>`;
//! * the device-unique 32-byte storage key, the simulated eFuse key, returned apart from
//!   the state (written to `efuse.key` because it stands for hardware);
//! * `ueid` = 0x01 followed by 16 random bytes (RFC 9711 §4.2.1, type RAND), `oemid` (the
//!   PKI's, 16 bytes), `hwmodel` (the model name), `hwversion`;
//! * the trust anchors the TEE accepts: the TAM root(s), the SP root(s), the OEM public key;
//! * its management configuration ([`MgmtConfig`], DESIGN §3.1) and an optional batch key
//!   (P-256, shared by every device of the batch, DESIGN §3.2).
//!
//! # Sealed state format (`sealed-state.cbor`)
//!
//! ```text
//! SealedState = [
//!   "OTRP-SEALED",        ; magic
//!   1,                    ; format version
//!   ueid: bstr .size 17,  ; in the clear, so the Broker can tell devices apart
//!   nonce: bstr .size 12,
//!   ciphertext: bstr      ; AES-256-GCM(storage key, nonce, aad, plaintext) || tag
//! ]
//! aad = CBOR(["OTRP-SEALED", 1, ueid])
//! plaintext = CBOR map with text keys:
//! {
//!   "v": 1,
//!   "ueid": bstr, "oemid": bstr, "hwmodel": tstr, "hwversion": tstr,
//!   "config": "oem-gated" / "oem-owned-sd" / "dual-control",
//!   "provisioned": uint,                         ; Unix seconds
//!   "tee": { "key": bstr, "cert": bstr, "chain": [* bstr] },   ; PKCS#8 DER, X.509 DER
//!   "tfw": { "key": bstr, "cert": bstr, "chain": [* bstr] },   ; chain = issuing CA(s)
//!   "anchors": { "tam": [* bstr], "sp": [* bstr], "oem": [* bstr] },  ; root certs, SPKI
//!   "batch": null / { "name": tstr, "key": bstr,                ; P-256 PKCS#8 DER
//!                     ? "report-key": bstr .size 32 }          ; MAC'd batch reports
//! }
//! ```
//!
//! [`load_sealed`] opens it with the storage key; [`DeviceIdentity::seal`] writes it again
//! (for the TEE platform, which keeps its state in the same container).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciborium::Value;
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::alg::{self, KeyAlg};
use crate::pki::{check_name, unix_secs, CaLevel, CaRole, CertKind, DeviceCertSpec, Pki};
use crate::{DeviceError, PkiError};

/// Magic first element of the sealed container.
pub const SEALED_MAGIC: &str = "OTRP-SEALED";
/// Version of the sealed container and of the state inside it.
pub const SEALED_VERSION: u64 = 1;
/// The `format` value of `device.json`.
pub const DEVICE_FORMAT: &str = "otrp-device-v1";
/// UEID type byte for a random UEID (RFC 9711 §4.2.1).
pub const UEID_TYPE_RAND: u8 = 0x01;

/// The three TA/SD management configurations (DESIGN §3.1), set by the OEM at provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MgmtConfig {
    /// An SP needs an OEM-signed authorization once, then manages SDs and TAs alone.
    #[default]
    OemGated,
    /// Only the OEM's TAM creates or deletes SDs; approved SPs manage TAs inside them.
    OemOwnedSd,
    /// Every operation carries both an OEM and an SP signature.
    DualControl,
}

impl MgmtConfig {
    /// The spelling used on the command line, in `device.json` and in the sealed state.
    pub fn as_str(self) -> &'static str {
        match self {
            MgmtConfig::OemGated => "oem-gated",
            MgmtConfig::OemOwnedSd => "oem-owned-sd",
            MgmtConfig::DualControl => "dual-control",
        }
    }
}

impl fmt::Display for MgmtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MgmtConfig {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oem-gated" => Ok(MgmtConfig::OemGated),
            "oem-owned-sd" => Ok(MgmtConfig::OemOwnedSd),
            "dual-control" => Ok(MgmtConfig::DualControl),
            _ => Err(PkiError::UnknownValue {
                what: "management configuration",
                value: s.to_owned(),
                expected: "oem-gated, oem-owned-sd, dual-control",
            }),
        }
    }
}

/// A key and its certificate chain, as the device holds them.
#[derive(Debug, Clone)]
pub struct KeyAndCert {
    /// The private key.
    pub key: PrivateKey,
    /// The leaf certificate (DER).
    pub cert: Vec<u8>,
    /// The issuing CA certificate(s) up to, not including, the root (DER).
    pub chain: Vec<Vec<u8>>,
}

/// The trust anchors a device's TEE accepts.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// TAM root CA certificates (DER): a TAM may manage this TEE only if its certificate
    /// chains to one of these (OTrP §4.2).
    pub tam_roots: Vec<Vec<u8>>,
    /// SP signer root CA certificates (DER).
    pub sp_roots: Vec<Vec<u8>>,
    /// OEM public keys (authorizations, dual-control co-signatures).
    pub oem_keys: Vec<PublicKey>,
}

impl TrustAnchors {
    /// The TAM roots as a trust store (no CRLs: the TEE learns revocation out of band,
    /// OTrP's `ocspdat`), for checking a TAM signer with [`crate::Usage::TamSigner`].
    pub fn tam_store(&self) -> Result<crate::TrustStore, crate::ChainError> {
        crate::TrustStore::without_revocation(self.tam_roots.clone())
    }

    /// The SP roots as a trust store, for [`crate::Usage::SpSigner`].
    pub fn sp_store(&self) -> Result<crate::TrustStore, crate::ChainError> {
        crate::TrustStore::without_revocation(self.sp_roots.clone())
    }
}

/// A device's batch membership.
#[derive(Debug, Clone)]
pub struct BatchKey {
    /// Batch name.
    pub name: String,
    /// The shared P-256 private key (ECDH-ES recipient key for batch payloads).
    pub key: PrivateKey,
    /// This device's report key (`otrp_crypto::report_key`, derived from the batch's
    /// report master and the UEID), when it was provisioned with one: its batch reports
    /// are then MAC'd with it instead of signed.
    pub report_key: Option<Zeroizing<[u8; 32]>>,
}

/// Everything the simulated TEE knows about itself after provisioning: the plaintext of
/// the sealed state.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    /// UEID: 0x01 + 16 random bytes.
    pub ueid: Vec<u8>,
    /// OEM id (16 bytes).
    pub oemid: Vec<u8>,
    /// Hardware model (EAT `hwmodel`; the model name, UTF-8).
    pub hwmodel: String,
    /// Hardware version (EAT `hwversion`).
    pub hwversion: String,
    /// Management configuration.
    pub config: MgmtConfig,
    /// When it was provisioned (Unix seconds).
    pub provisioned_at: u64,
    /// TEE attestation key and certificate.
    pub tee: KeyAndCert,
    /// Trusted-firmware key and certificate.
    pub tfw: KeyAndCert,
    /// Trust anchors.
    pub anchors: TrustAnchors,
    /// Batch key, when the device belongs to a batch.
    pub batch: Option<BatchKey>,
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// Device model (EAT `hwmodel`).
    pub model: String,
    /// Hardware version (EAT `hwversion`).
    pub hwversion: String,
    /// Management configuration.
    pub config: MgmtConfig,
    /// Batch to join (its key is created in the PKI on first use).
    pub batch: Option<String>,
    /// With a batch: also give the device a report key derived from the batch's report
    /// master (created in the PKI on first use), so that it MACs its batch reports.
    pub report_key: bool,
    /// Validity of the device certificates in days (default 3650).
    pub days: Option<u32>,
}

impl ProvisionRequest {
    /// A request with hwversion "1.0", OEM-gated, no batch.
    pub fn new(model: impl Into<String>) -> Self {
        ProvisionRequest {
            model: model.into(),
            hwversion: "1.0".into(),
            config: MgmtConfig::OemGated,
            batch: None,
            report_key: false,
            days: None,
        }
    }
}

/// The public, non-secret description of a device (`device.json`): what the Broker and
/// tests read. Paths are relative to the device directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePublic {
    /// Always [`DEVICE_FORMAT`].
    pub format: String,
    /// UEID (hex).
    pub ueid: String,
    /// OEM id (hex).
    pub oemid: String,
    /// Model.
    pub model: String,
    /// Hardware version.
    pub hwversion: String,
    /// Management configuration.
    pub config: MgmtConfig,
    /// Batch name, if any.
    pub batch: Option<String>,
    /// Key algorithm of the device keys.
    pub alg: KeyAlg,
    /// OTrP `did`: SHA-256 of the TEE certificate DER (hex).
    pub did: String,
    /// RFC 9679 COSE Key thumbprint of the TEE public key (hex): its COSE `kid`.
    pub tee_kid: String,
    /// When it was provisioned (Unix seconds).
    pub provisioned_at: u64,
    /// notAfter of the device certificates (Unix seconds).
    pub cert_not_after: u64,
    /// The files of the device directory.
    pub files: DeviceFiles,
}

/// File names inside a device directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFiles {
    /// TEE attestation certificate (PEM).
    pub tee_cert: String,
    /// TEE certificate followed by the TEE issuing CA (PEM).
    pub tee_chain: String,
    /// TEE public key (SPKI PEM).
    pub tee_public_key: String,
    /// TFW certificate (PEM).
    pub tfw_cert: String,
    /// TFW certificate followed by the TFW issuing CA (PEM).
    pub tfw_chain: String,
    /// The sealed state (CBOR, AES-256-GCM).
    pub sealed_state: String,
    /// The simulated eFuse: the 32-byte storage key (raw bytes). Hardware, not a file, on
    /// a real device.
    pub efuse_key: String,
}

impl Default for DeviceFiles {
    fn default() -> Self {
        DeviceFiles {
            tee_cert: "tee.pem".into(),
            tee_chain: "tee-chain.pem".into(),
            tee_public_key: "tee.pub.pem".into(),
            tfw_cert: "tfw.pem".into(),
            tfw_chain: "tfw-chain.pem".into(),
            sealed_state: "sealed-state.cbor".into(),
            efuse_key: "efuse.key".into(),
        }
    }
}

/// The outcome of [`provision`]: the identity, its storage key, the sealed bytes and the
/// public description.
pub struct Provisioned {
    /// The identity (plaintext of the sealed state).
    pub identity: DeviceIdentity,
    /// The storage ("eFuse") key.
    pub storage_key: Zeroizing<[u8; 32]>,
    /// `sealed-state.cbor`.
    pub sealed: Vec<u8>,
    /// `device.json`.
    pub public: DevicePublic,
    /// Whether this call created the batch key in the PKI (the PKI must then be saved).
    pub batch_created: bool,
}

impl fmt::Debug for Provisioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provisioned")
            .field("public", &self.public)
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// Provisions one device from `pki`: keys, certificates, identity, sealed state.
/// `pki` is changed only when a new batch key is created.
pub fn provision(
    pki: &mut Pki,
    req: &ProvisionRequest,
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    now: SystemTime,
) -> Result<Provisioned, PkiError> {
    if req.model.is_empty() || req.model.len() > 64 || req.model.chars().any(char::is_control) {
        return Err(PkiError::InvalidName {
            what: "model",
            value: req.model.clone(),
        });
    }
    if req.hwversion.is_empty() || req.hwversion.chars().any(char::is_control) {
        return Err(PkiError::InvalidName {
            what: "hwversion",
            value: req.hwversion.clone(),
        });
    }
    if let Some(b) = &req.batch {
        check_name("batch name", b)?;
    }
    let mut ueid = vec![UEID_TYPE_RAND; 17];
    if let Some(rest) = ueid.get_mut(1..) {
        rng.fill_bytes(rest);
    }
    let mut storage_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(storage_key.as_mut());

    let alg = pki.alg();
    let tee_key = alg::generate(alg, "TEE attestation key", rng)?;
    let tee_cert = pki.issue_device_cert(
        &DeviceCertSpec {
            kind: CertKind::Tee,
            public: &tee_key.public_key(),
            ueid: &ueid,
            model: &req.model,
            days: req.days,
        },
        rng,
        now,
    )?;
    let tfw_key = alg::generate(alg, "TFW key", rng)?;
    let tfw_cert = pki.issue_device_cert(
        &DeviceCertSpec {
            kind: CertKind::Tfw,
            public: &tfw_key.public_key(),
            ueid: &ueid,
            model: &req.model,
            days: req.days,
        },
        rng,
        now,
    )?;
    let anchors = TrustAnchors {
        tam_roots: vec![pki.ca_cert_der(CaRole::Tam, CaLevel::Root)?],
        sp_roots: vec![pki.ca_cert_der(CaRole::Sp, CaLevel::Root)?],
        oem_keys: vec![pki.oem_public_key()?],
    };
    let (batch, batch_created) = match &req.batch {
        Some(name) => {
            let (key, created) = pki.batch_key(name, rng, now)?;
            let (report_key, master_created) = if req.report_key {
                let (master, made) = pki.batch_report_master(name, rng)?;
                let k = otrp_crypto::report_key::derive(provider, &master, name, &ueid).map_err(
                    |source| PkiError::Key {
                        what: format!("report key of batch {name:?}"),
                        source,
                    },
                )?;
                (Some(k), made)
            } else {
                (None, false)
            };
            (
                Some(BatchKey {
                    name: name.clone(),
                    key,
                    report_key,
                }),
                created || master_created,
            )
        }
        None => (None, false),
    };
    let identity = DeviceIdentity {
        ueid: ueid.clone(),
        oemid: pki.oemid()?,
        hwmodel: req.model.clone(),
        hwversion: req.hwversion.clone(),
        config: req.config,
        provisioned_at: unix_secs(now),
        tee: KeyAndCert {
            key: tee_key,
            cert: tee_cert,
            chain: vec![pki.ca_cert_der(CaRole::Tee, CaLevel::Issuing)?],
        },
        tfw: KeyAndCert {
            key: tfw_key,
            cert: tfw_cert,
            chain: vec![pki.ca_cert_der(CaRole::Tfw, CaLevel::Issuing)?],
        },
        anchors,
        batch,
    };
    let sealed = identity.seal(&storage_key[..], provider, rng)?;
    let public = identity.public_description(alg, provider)?;
    Ok(Provisioned {
        identity,
        storage_key,
        sealed,
        public,
        batch_created,
    })
}

/// Opens a sealed state with the device's storage key.
pub fn load_sealed(
    sealed: &[u8],
    storage_key: &[u8],
    provider: &dyn CryptoProvider,
) -> Result<DeviceIdentity, DeviceError> {
    if storage_key.len() != 32 {
        return Err(DeviceError::StorageKeyLength {
            len: storage_key.len(),
        });
    }
    let container: Value =
        ciborium::de::from_reader(sealed).map_err(|e| DeviceError::Container {
            what: format!("not CBOR: {e}"),
        })?;
    let Value::Array(items) = container else {
        return Err(DeviceError::Container {
            what: "top level is not an array".into(),
        });
    };
    let [magic, version, ueid, nonce, ciphertext] = items.as_slice() else {
        return Err(DeviceError::Container {
            what: format!("expected 5 elements, got {}", items.len()),
        });
    };
    if magic.as_text() != Some(SEALED_MAGIC) {
        return Err(DeviceError::Container {
            what: format!("element 0 is not {SEALED_MAGIC:?}"),
        });
    }
    let version_ok = version
        .as_integer()
        .is_some_and(|v| u64::try_from(v).ok() == Some(SEALED_VERSION));
    if !version_ok {
        return Err(DeviceError::Container {
            what: format!("element 1 (version) is not {SEALED_VERSION}"),
        });
    }
    let bytes = |v: &Value, idx: usize, name: &str| -> Result<Vec<u8>, DeviceError> {
        v.as_bytes().cloned().ok_or_else(|| DeviceError::Container {
            what: format!("element {idx} ({name}) is not a byte string"),
        })
    };
    let ueid = bytes(ueid, 2, "ueid")?;
    let nonce = bytes(nonce, 3, "nonce")?;
    let ciphertext = bytes(ciphertext, 4, "ciphertext")?;
    if nonce.len() != 12 {
        return Err(DeviceError::Container {
            what: format!("element 3 (nonce) has {} bytes, expected 12", nonce.len()),
        });
    }
    let aad = sealed_aad(&ueid)?;
    let plaintext = Zeroizing::new(
        provider
            .aes_gcm_open(storage_key, &nonce, &aad, &ciphertext)
            .map_err(|_| DeviceError::Unseal)?,
    );
    let identity = DeviceIdentity::from_cbor(&plaintext)?;
    if identity.ueid != ueid {
        return Err(DeviceError::Field {
            path: "ueid".into(),
            what: "differs from the container's ueid".into(),
        });
    }
    Ok(identity)
}

fn sealed_aad(ueid: &[u8]) -> Result<Vec<u8>, DeviceError> {
    let header = Value::Array(vec![
        Value::Text(SEALED_MAGIC.into()),
        Value::Integer(SEALED_VERSION.into()),
        Value::Bytes(ueid.to_vec()),
    ]);
    encode(&header)
}

fn encode(v: &Value) -> Result<Vec<u8>, DeviceError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| DeviceError::Encode {
        detail: e.to_string(),
    })?;
    Ok(out)
}

fn key_der(key: &PrivateKey, what: &str) -> Result<Vec<u8>, DeviceError> {
    alg::private_der(key, what).map_err(|e| DeviceError::Encode {
        detail: e.to_string(),
    })
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

impl DeviceIdentity {
    /// Seals the identity under `storage_key` (32 bytes) with a fresh nonce from `rng`.
    pub fn seal(
        &self,
        storage_key: &[u8],
        provider: &dyn CryptoProvider,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, DeviceError> {
        if storage_key.len() != 32 {
            return Err(DeviceError::StorageKeyLength {
                len: storage_key.len(),
            });
        }
        let plaintext = Zeroizing::new(self.to_cbor()?);
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let aad = sealed_aad(&self.ueid)?;
        let ciphertext = provider
            .aes_gcm_seal(storage_key, &nonce, &aad, &plaintext)
            .map_err(|source| DeviceError::Crypto {
                what: "AES-256-GCM seal",
                source,
            })?;
        encode(&Value::Array(vec![
            Value::Text(SEALED_MAGIC.into()),
            Value::Integer(SEALED_VERSION.into()),
            Value::Bytes(self.ueid.clone()),
            Value::Bytes(nonce.to_vec()),
            Value::Bytes(ciphertext),
        ]))
    }

    /// The plaintext CBOR of the state (see the module docs).
    pub fn to_cbor(&self) -> Result<Vec<u8>, DeviceError> {
        let kc = |k: &KeyAndCert, what: &str| -> Result<Value, DeviceError> {
            Ok(Value::Map(vec![
                (text("key"), Value::Bytes(key_der(&k.key, what)?)),
                (text("cert"), Value::Bytes(k.cert.clone())),
                (
                    text("chain"),
                    Value::Array(k.chain.iter().cloned().map(Value::Bytes).collect()),
                ),
            ]))
        };
        let mut oem = Vec::new();
        for k in &self.anchors.oem_keys {
            oem.push(Value::Bytes(k.to_spki_der().map_err(|source| {
                DeviceError::Crypto {
                    what: "SPKI encoding of an OEM key",
                    source,
                }
            })?));
        }
        let batch = match &self.batch {
            None => Value::Null,
            Some(b) => {
                let mut m = vec![
                    (text("name"), text(&b.name)),
                    (text("key"), Value::Bytes(key_der(&b.key, "batch key")?)),
                ];
                if let Some(k) = &b.report_key {
                    m.push((text("report-key"), Value::Bytes(k.to_vec())));
                }
                Value::Map(m)
            }
        };
        let bstrs = |v: &[Vec<u8>]| Value::Array(v.iter().cloned().map(Value::Bytes).collect());
        let state = Value::Map(vec![
            (text("v"), Value::Integer(SEALED_VERSION.into())),
            (text("ueid"), Value::Bytes(self.ueid.clone())),
            (text("oemid"), Value::Bytes(self.oemid.clone())),
            (text("hwmodel"), text(&self.hwmodel)),
            (text("hwversion"), text(&self.hwversion)),
            (text("config"), text(self.config.as_str())),
            (
                text("provisioned"),
                Value::Integer(self.provisioned_at.into()),
            ),
            (text("tee"), kc(&self.tee, "TEE key")?),
            (text("tfw"), kc(&self.tfw, "TFW key")?),
            (
                text("anchors"),
                Value::Map(vec![
                    (text("tam"), bstrs(&self.anchors.tam_roots)),
                    (text("sp"), bstrs(&self.anchors.sp_roots)),
                    (text("oem"), Value::Array(oem)),
                ]),
            ),
            (text("batch"), batch),
        ]);
        encode(&state)
    }

    /// Parses the plaintext CBOR of the state.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, DeviceError> {
        let v: Value = ciborium::de::from_reader(bytes).map_err(|e| DeviceError::Field {
            path: "(state)".into(),
            what: format!("not CBOR: {e}"),
        })?;
        let root = Map::new(&v, "")?;
        let version = root.uint("v")?;
        if version != SEALED_VERSION {
            return Err(DeviceError::Field {
                path: "v".into(),
                what: format!("version {version}, expected {SEALED_VERSION}"),
            });
        }
        let config_s = root.text("config")?;
        let config = MgmtConfig::from_str(&config_s).map_err(|e| DeviceError::Field {
            path: "config".into(),
            what: e.to_string(),
        })?;
        let kc = |name: &str| -> Result<KeyAndCert, DeviceError> {
            let m = root.map(name)?;
            Ok(KeyAndCert {
                key: m.private_key("key")?,
                cert: m.bytes("cert")?,
                chain: m.bytes_array("chain")?,
            })
        };
        let anchors_map = root.map("anchors")?;
        let mut oem_keys = Vec::new();
        for (i, der) in anchors_map.bytes_array("oem")?.iter().enumerate() {
            oem_keys.push(
                PublicKey::from_spki_der(der).map_err(|e| DeviceError::Field {
                    path: format!("anchors.oem[{i}]"),
                    what: e.to_string(),
                })?,
            );
        }
        let batch = match root.get("batch")? {
            Value::Null => None,
            _ => {
                let b = root.map("batch")?;
                Some(BatchKey {
                    name: b.text("name")?,
                    key: b.private_key("key")?,
                    report_key: b.report_key("report-key")?,
                })
            }
        };
        Ok(DeviceIdentity {
            ueid: root.bytes("ueid")?,
            oemid: root.bytes("oemid")?,
            hwmodel: root.text("hwmodel")?,
            hwversion: root.text("hwversion")?,
            config,
            provisioned_at: root.uint("provisioned")?,
            tee: kc("tee")?,
            tfw: kc("tfw")?,
            anchors: TrustAnchors {
                tam_roots: anchors_map.bytes_array("tam")?,
                sp_roots: anchors_map.bytes_array("sp")?,
                oem_keys,
            },
            batch,
        })
    }

    /// The public description (`device.json`) of this identity.
    pub fn public_description(
        &self,
        alg: KeyAlg,
        provider: &dyn CryptoProvider,
    ) -> Result<DevicePublic, PkiError> {
        let info = crate::cert::CertInfo::from_der(&self.tee.cert)?;
        let kid =
            otrp_crypto::thumbprint::cose_key_thumbprint(&self.tee.key.public_key(), provider);
        Ok(DevicePublic {
            format: DEVICE_FORMAT.into(),
            ueid: hex::encode(&self.ueid),
            oemid: hex::encode(&self.oemid),
            model: self.hwmodel.clone(),
            hwversion: self.hwversion.clone(),
            config: self.config,
            batch: self.batch.as_ref().map(|b| b.name.clone()),
            alg,
            did: hex::encode(provider.sha256(&self.tee.cert)),
            tee_kid: hex::encode(kid),
            provisioned_at: self.provisioned_at,
            cert_not_after: info.not_after,
            files: DeviceFiles::default(),
        })
    }

    /// OTrP `did`: SHA-256 of the TEE certificate.
    pub fn did(&self, provider: &dyn CryptoProvider) -> [u8; 32] {
        provider.sha256(&self.tee.cert)
    }

    /// When it was provisioned.
    pub fn provisioned_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.provisioned_at)
    }
}

/// A CBOR map with text keys, read with the field path in every error.
struct Map<'a> {
    entries: &'a [(Value, Value)],
    path: String,
}

impl<'a> Map<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, DeviceError> {
        match v {
            Value::Map(entries) => Ok(Map {
                entries,
                path: path.to_owned(),
            }),
            _ => Err(DeviceError::Field {
                path: if path.is_empty() {
                    "(state)".into()
                } else {
                    path.to_owned()
                },
                what: "not a map".into(),
            }),
        }
    }

    fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn err(&self, key: &str, what: &str) -> DeviceError {
        DeviceError::Field {
            path: self.field_path(key),
            what: what.to_owned(),
        }
    }

    fn get(&self, key: &str) -> Result<&'a Value, DeviceError> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
            .ok_or_else(|| self.err(key, "missing"))
    }

    fn map(&self, key: &str) -> Result<Map<'a>, DeviceError> {
        Map::new(self.get(key)?, &self.field_path(key))
    }

    fn bytes(&self, key: &str) -> Result<Vec<u8>, DeviceError> {
        self.get(key)?
            .as_bytes()
            .cloned()
            .ok_or_else(|| self.err(key, "not a byte string"))
    }

    /// An optional 32-byte key (absent: `None`).
    fn report_key(&self, key: &str) -> Result<Option<Zeroizing<[u8; 32]>>, DeviceError> {
        let Some((_, v)) = self.entries.iter().find(|(k, _)| k.as_text() == Some(key)) else {
            return Ok(None);
        };
        let mut out = Zeroizing::new([0u8; 32]);
        match v.as_bytes() {
            Some(b) if b.len() == 32 => out.copy_from_slice(b),
            _ => return Err(self.err(key, "not a 32-byte string")),
        }
        Ok(Some(out))
    }

    fn text(&self, key: &str) -> Result<String, DeviceError> {
        self.get(key)?
            .as_text()
            .map(str::to_owned)
            .ok_or_else(|| self.err(key, "not a text string"))
    }

    fn uint(&self, key: &str) -> Result<u64, DeviceError> {
        self.get(key)?
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.err(key, "not an unsigned integer"))
    }

    fn bytes_array(&self, key: &str) -> Result<Vec<Vec<u8>>, DeviceError> {
        let Some(items) = self.get(key)?.as_array() else {
            return Err(self.err(key, "not an array"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_bytes().cloned().ok_or_else(|| DeviceError::Field {
                    path: format!("{}[{i}]", self.field_path(key)),
                    what: "not a byte string".into(),
                })
            })
            .collect()
    }

    fn private_key(&self, key: &str) -> Result<PrivateKey, DeviceError> {
        let der = Zeroizing::new(self.bytes(key)?);
        PrivateKey::from_pkcs8_der(&der).map_err(|e| self.err(key, &e.to_string()))
    }
}
