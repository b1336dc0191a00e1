//! Server configuration: command-line flags plus an optional TOML file for the rest.
//!
//! ```toml
//! # tam.toml (every key optional)
//! listen = "127.0.0.1:8443"
//! data_dir = "/var/lib/otrp-tam"
//! database = "postgres://tam@db/tam"     # default: sqlite:<data_dir>/tam.db
//! pki = "/etc/otrp/pki"                  # or cert/key/signing_key/tee_roots/sp_roots
//! plain_http = false
//! policy = "oem-gated"                   # oem-gated | oem-owned-sd | dual-control
//! token_ttl_secs = 21600
//! stateless_query_tokens = true          # false: store each QueryRequest's token when sent
//! attestation_ttl_secs = 86400
//! max_teep_body_bytes = 1048576
//! max_api_body_bytes = 16777216
//! accept_unlisted_models = false
//! reference_refresh_secs = 2              # reload reference values from the store
//! coap_listen = "127.0.0.1:5683"         # optional TEEP over CoAP (UDP) at /teep
//! coap_block_size = 1024                 # 16–1024 (power of two)
//! coap_max_held_bytes = 67108864         # all the CoAP endpoint holds; beyond: 5.03
//! signing_cert = "/etc/otrp/tam-chain.pem" # TAM certificate chain of signing_key (OTrP)
//! compact = "none"                       # none | all: TEEP wire profile of every Update
//! compact_models = ["lock-v1"]           # models (EAT hwmodel) that get compact Updates
//! compact_transports = ["coap"]          # http | coap: devices over these get compact Updates
//!
//! [[otrp_oem_authorization]]             # OTrP CreateSD on OEM-gated devices
//! sp = "bank"
//! file = "/etc/otrp/oemauth-bank.cose"   # the OEM's OemAuthorization (COSE_Sign1)
//!
//! [[batch_report_master]]                # MAC'd batch reports of devices with report keys
//! batch = "lot-1"
//! file = "/etc/otrp/pki/batch/lot-1.report-master.key"   # 64 hex digits (secret)
//!
//! [[reference]]
//! model = "door-lock"
//! measurements = ["5a5a…"]               # hex SHA-256 of accepted TEE images; empty: any
//! hwversions = ["1.0"]                   # empty: any
//! ```
//!
//! `[[reference]]` entries only **seed** the store: a model the store already has a record
//! of (set or removed through `/api/v1/reference-values`) follows the store, which every
//! replica shares (see [`crate::reference`]).
//!
//! `compact` and `compact_models` choose the compact TEEP wire profile for Updates
//! (no kid, 8-byte token; docs/CONSTRAINED.md): `compact = "all"` for every device (a TAM
//! instance that serves only constrained links), otherwise only devices whose model is in
//! `compact_models`, or whose session runs over a transport in `compact_transports`
//! (e.g. `["coap"]`: every device reaching the TAM over CoAP, whatever its model, while
//! HTTP devices keep the standard profile); everything else gets the standard profile.
//! Agents accept both, so this is the TAM's choice alone.
//!
//! `accept_unlisted_models` is per replica (this file), unlike the reference values,
//! which live in the store: replicas of one fleet must set it alike, or a device of an
//! unlisted model is accepted by some replicas and refused by others (docs/SECURITY.md,
//! G6). The fleet-wide alternative is the store's `*` reference-values record
//! (`PUT /api/v1/reference-values/*`, [`crate::reference::WILDCARD_MODEL`]): the reference
//! values of every model without its own record, removed models excepted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use otrp_tam::Policy;
use serde::Deserialize;

/// Reference values of one device model (the TAM's appraisal policy).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// Model name (EAT `hwmodel`).
    pub model: String,
    /// Accepted TEE measurements (hex); empty accepts any.
    #[serde(default)]
    pub measurements: Vec<String>,
    /// Accepted hardware versions; empty accepts any.
    #[serde(default)]
    pub hwversions: Vec<String>,
}

/// An OEM authorization of this TAM for one SP (OTrP, OEM-gated devices): the OEM's
/// `OemAuthorization` COSE_Sign1 over (SP, TAM key), sent with that SP's CreateSD.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OemAuthorizationConfig {
    /// The SP account id.
    pub sp: String,
    /// File holding the COSE_Sign1 bytes (binary).
    pub file: PathBuf,
}

/// `[[batch_report_master]]`: the report master secret of one batch (the OEM's
/// `PKI_DIR/batch/<batch>.report-master.key`), with which the TAM checks the MAC'd
/// reports of the batch's devices provisioned with report keys
/// (`otrp device provision --batch B --report-key`; docs/CONSTRAINED.md).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchReportMasterConfig {
    /// The batch id.
    pub batch: String,
    /// File holding the master secret (64 hex digits).
    pub file: PathBuf,
}

/// The management configuration, as spelled in the config file and on the command line.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyConfig {
    /// [`Policy::OemGated`].
    #[default]
    OemGated,
    /// [`Policy::OemOwnedSd`].
    OemOwnedSd,
    /// [`Policy::DualControl`].
    DualControl,
}

/// A transport named in `compact_transports`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TransportConfig {
    /// TEEP over HTTP(S) (`POST /tam`).
    Http,
    /// TEEP over CoAP (`/teep`, `coap_listen`).
    Coap,
}

impl From<TransportConfig> for otrp_tam::Transport {
    fn from(t: TransportConfig) -> otrp_tam::Transport {
        match t {
            TransportConfig::Http => otrp_tam::Transport::Http,
            TransportConfig::Coap => otrp_tam::Transport::Coap,
        }
    }
}

/// Which devices get compact Updates regardless of model (`compact` in the config file).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CompactConfig {
    /// Only the models listed in `compact_models`.
    #[default]
    None,
    /// Every device.
    All,
}

impl From<PolicyConfig> for Policy {
    fn from(p: PolicyConfig) -> Policy {
        match p {
            PolicyConfig::OemGated => Policy::OemGated,
            PolicyConfig::OemOwnedSd => Policy::OemOwnedSd,
            PolicyConfig::DualControl => Policy::DualControl,
        }
    }
}

/// Everything `otrp tam serve` needs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory (SQLite file, bootstrap OEM token).
    pub data_dir: PathBuf,
    /// Database URL (`sqlite:…` or `postgres://…`); default: SQLite in `data_dir`.
    pub database: Option<String>,
    /// Development PKI directory (server certificate, TAM signer, TEE and SP roots).
    pub pki: Option<PathBuf>,
    /// TLS certificate chain (PEM), when not taken from `pki`.
    pub cert: Option<PathBuf>,
    /// TLS private key (PKCS#8 PEM), when not taken from `pki`.
    pub key: Option<PathBuf>,
    /// TAM signing key (PKCS#8 PEM), when not taken from `pki`.
    pub signing_key: Option<PathBuf>,
    /// TAM certificate chain (PEM, leaf first) of `signing_key`, when not taken from
    /// `pki`: OTrP sends it as `x5c` and takes the TAM's `tamid` from its SAN. Without it
    /// (and without `pki`) OTrP JSON is answered 415.
    pub signing_cert: Option<PathBuf>,
    /// Second TAM signing key of the other mandatory algorithm (PKCS#8 PEM); default:
    /// derived from `signing_key` with HKDF so every replica holds the same one.
    pub second_signing_key: Option<PathBuf>,
    /// TEE root certificates (PEM) that attestation chains must lead to.
    pub tee_roots: Option<PathBuf>,
    /// SP root certificates (PEM) that SP signer chains must lead to.
    pub sp_roots: Option<PathBuf>,
    /// OEM public key (SPKI PEM) that co-signs under dual control.
    pub oem_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (TEEP stays signed end to end).
    pub plain_http: bool,
    /// Management configuration.
    pub policy: PolicyConfig,
    /// Lifetime of tokens and challenges (seconds).
    pub token_ttl_secs: u64,
    /// QueryRequest tokens the TAM keeps no row for until they are answered: an empty POST
    /// writes nothing (`otrp_tam::query_token`). Their key is derived from the TAM's
    /// signing keys, so replicas that share a fleet must share those keys; `false` stores
    /// every token when it is sent (replicas with different keys).
    pub stateless_query_tokens: bool,
    /// How long an attestation result is reused (seconds).
    pub attestation_ttl_secs: u64,
    /// Largest TEEP request body (bytes); larger ones get 413.
    pub max_teep_body_bytes: usize,
    /// Largest admin API request body (bytes); larger ones get 413.
    pub max_api_body_bytes: usize,
    /// Accept evidence from models without a `[[reference]]` entry (any measurement).
    ///
    /// Per replica, unlike the reference values (which are in the store): every replica
    /// of a fleet must be configured alike (docs/SECURITY.md, G6); the store's `*`
    /// reference-values record does the same for every replica at once, with measurements.
    pub accept_unlisted_models: bool,
    /// Require the trusted firmware's endorsement of the TEE measurement in the evidence
    /// (EAT claim -70001, chained to the PKI's TFW root; needs `pki`).
    pub require_tfw_endorsement: bool,
    /// Reference values per model, seeded into the store at start for models the store
    /// does not know yet (the store wins afterwards; see [`crate::reference`]).
    pub reference: Vec<ReferenceConfig>,
    /// How often (seconds, at least 1) the reference values are reloaded from the store, so
    /// a change made through another replica applies here without restart.
    pub reference_refresh_secs: u64,
    /// Also serve TEEP over CoAP (UDP) at `/teep` on this address.
    pub coap_listen: Option<SocketAddr>,
    /// CoAP block size in bytes (16, 32, …, 1024; RFC 7959).
    pub coap_block_size: usize,
    /// All the CoAP endpoint holds for exchanges in progress, whatever the number of
    /// peers (UDP sources can be forged): bodies, cached answers, requests being
    /// processed. Beyond it new requests get 5.03 with Max-Age. At least
    /// `max_teep_body_bytes`.
    pub coap_max_held_bytes: usize,
    /// OEM authorizations of this TAM per SP for OTrP CreateSD on OEM-gated devices.
    pub otrp_oem_authorization: Vec<OemAuthorizationConfig>,
    /// Report master secrets per batch, for MAC'd batch reports.
    pub batch_report_master: Vec<BatchReportMasterConfig>,
    /// `all`: every Update in the compact wire profile (docs/CONSTRAINED.md).
    pub compact: CompactConfig,
    /// Device models (EAT `hwmodel`) whose Updates use the compact wire profile.
    pub compact_models: Vec<String>,
    /// Transports whose devices get Updates in the compact wire profile (`["coap"]`).
    pub compact_transports: Vec<TransportConfig>,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("tam-data"),
            database: None,
            pki: None,
            cert: None,
            key: None,
            signing_key: None,
            signing_cert: None,
            second_signing_key: None,
            tee_roots: None,
            require_tfw_endorsement: false,
            sp_roots: None,
            oem_key: None,
            plain_http: false,
            policy: PolicyConfig::OemGated,
            token_ttl_secs: 6 * 3600,
            stateless_query_tokens: true,
            attestation_ttl_secs: 24 * 3600,
            max_teep_body_bytes: 1024 * 1024,
            max_api_body_bytes: 16 * 1024 * 1024,
            accept_unlisted_models: false,
            reference: Vec::new(),
            reference_refresh_secs: 2,
            coap_listen: None,
            coap_block_size: 1024,
            coap_max_held_bytes: 64 << 20,
            otrp_oem_authorization: Vec::new(),
            batch_report_master: Vec::new(),
            compact: CompactConfig::None,
            compact_models: Vec::new(),
            compact_transports: Vec::new(),
        }
    }
}

/// Configuration problems.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (names the key and line).
        message: String,
    },
    /// A reference measurement is not hex.
    #[error("reference values of model {model:?}: measurement {value:?} is not hex")]
    BadMeasurement {
        /// The model.
        model: String,
        /// The value.
        value: String,
    },
    /// An option needs another one that is missing.
    #[error("{0}")]
    Missing(String),
}

impl ServerConfig {
    /// Reads a TOML file (missing keys keep their defaults).
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<ServerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The database URL: the configured one, else SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", self.data_dir.join("tam.db").display()),
        }
    }

    /// The OTrP OEM authorizations, read from their files (`(sp, COSE bytes)`).
    pub fn otrp_oem_authorizations(&self) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        self.otrp_oem_authorization
            .iter()
            .map(|a| {
                std::fs::read(&a.file)
                    .map(|bytes| (a.sp.clone(), bytes))
                    .map_err(|source| ConfigError::Read {
                        path: a.file.clone(),
                        source,
                    })
            })
            .collect()
    }

    /// The batch report masters, read from their files (batch id → secret). A batch
    /// named twice, an invalid batch id or a file that is not 64 hex digits is an error.
    pub fn batch_report_masters(&self) -> Result<crate::batch::ReportMasters, ConfigError> {
        let mut out = crate::batch::ReportMasters::default();
        for m in &self.batch_report_master {
            if !otrp_tam::batch::is_valid_batch_id(&m.batch) {
                return Err(ConfigError::Missing(format!(
                    "[[batch_report_master]]: invalid batch id {:?}",
                    m.batch
                )));
            }
            let text = std::fs::read_to_string(&m.file).map_err(|source| ConfigError::Read {
                path: m.file.clone(),
                source,
            })?;
            let key = otrp_pki::read_report_master(&text, &m.file.display().to_string()).map_err(
                |e| ConfigError::Missing(format!("[[batch_report_master]] {}: {e}", m.batch)),
            )?;
            if out.insert(m.batch.clone(), key).is_some() {
                return Err(ConfigError::Missing(format!(
                    "[[batch_report_master]]: batch {:?} is named twice",
                    m.batch
                )));
            }
        }
        Ok(out)
    }

    /// The TAM core's compact wire-profile policy from `compact`, `compact_models` and
    /// `compact_transports`.
    pub fn compact_policy(&self) -> otrp_tam::CompactPolicy {
        let mut transports: Vec<otrp_tam::Transport> = Vec::new();
        for t in &self.compact_transports {
            let t = otrp_tam::Transport::from(*t);
            if !transports.contains(&t) {
                transports.push(t);
            }
        }
        otrp_tam::CompactPolicy {
            all: self.compact == CompactConfig::All,
            models: self.compact_models.clone(),
            transports,
        }
    }

    /// The TAM core's session policy from `token_ttl_secs`, `stateless_query_tokens` and
    /// the compact keys.
    pub fn tam_config(&self) -> otrp_tam::TamConfig {
        otrp_tam::TamConfig {
            token_ttl: self.token_ttl_secs,
            compact: self.compact_policy(),
            stateless_query_tokens: self.stateless_query_tokens,
            ..otrp_tam::TamConfig::default()
        }
    }

    /// The reference values, decoded.
    pub fn references(&self) -> Result<Vec<(String, otrp_tam::ReferenceValues)>, ConfigError> {
        self.reference
            .iter()
            .map(|r| {
                let measurements = r
                    .measurements
                    .iter()
                    .map(|m| {
                        hex::decode(m.trim()).map_err(|_| ConfigError::BadMeasurement {
                            model: r.model.clone(),
                            value: m.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((
                    r.model.clone(),
                    otrp_tam::ReferenceValues {
                        measurements,
                        hwversions: r.hwversions.clone(),
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = ServerConfig::from_toml(
            "listen = \"127.0.0.1:9000\"\npolicy = \"oem-owned-sd\"\n[[reference]]\nmodel = \"m\"\nmeasurements = [\"0a0b\"]\n",
        )
        .unwrap_or_default();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.policy, PolicyConfig::OemOwnedSd);
        assert_eq!(c.max_teep_body_bytes, 1024 * 1024);
        let refs = c.references().unwrap_or_default();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].1.measurements, vec![vec![0x0a, 0x0b]]);
        let e = ServerConfig::from_toml("lisen = 1")
            .err()
            .unwrap_or_default();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn session_keys_build_the_core_config() {
        let d = ServerConfig::default().tam_config();
        assert!(d.stateless_query_tokens);
        assert_eq!(d.token_ttl, 6 * 3600);
        let c = ServerConfig::from_toml(
            "stateless_query_tokens = false
token_ttl_secs = 60
",
        )
        .unwrap_or_default()
        .tam_config();
        assert!(!c.stateless_query_tokens);
        assert_eq!(c.token_ttl, 60);
    }

    #[test]
    fn compact_keys_build_the_core_policy() {
        let none = ServerConfig::default().compact_policy();
        assert_eq!(none.profile_for("lock-v1"), otrp_tam::WireProfile::Standard);
        let some = ServerConfig::from_toml("compact_models = [\"lock-v1\"]\n")
            .unwrap_or_default()
            .compact_policy();
        assert_eq!(some.profile_for("lock-v1"), otrp_tam::WireProfile::Compact);
        assert_eq!(some.profile_for("gateway"), otrp_tam::WireProfile::Standard);
        let all = ServerConfig::from_toml("compact = \"all\"\n")
            .unwrap_or_default()
            .compact_policy();
        assert_eq!(all.profile_for("gateway"), otrp_tam::WireProfile::Compact);
        let coap = ServerConfig::from_toml("compact_transports = [\"coap\", \"coap\"]\n")
            .unwrap_or_default()
            .compact_policy();
        assert_eq!(coap.transports, vec![otrp_tam::Transport::Coap]);
        assert_eq!(
            coap.profile("gateway", Some(otrp_tam::Transport::Coap)),
            otrp_tam::WireProfile::Compact
        );
        assert_eq!(
            coap.profile("gateway", Some(otrp_tam::Transport::Http)),
            otrp_tam::WireProfile::Standard
        );
        let e = ServerConfig::from_toml("compact_transports = [\"udp\"]\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("compact_transports"), "{e}");
        let e = ServerConfig::from_toml("compact = \"some\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("compact"), "{e}");
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let c = ServerConfig {
            data_dir: PathBuf::from("/tmp/x"),
            ..ServerConfig::default()
        };
        assert_eq!(c.database_url(), "sqlite:/tmp/x/tam.db");
    }

    #[test]
    fn otrp_oem_authorizations_are_read_from_their_files() {
        let dir = std::env::temp_dir().join(format!("otrp_cfg_oemauth_{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("bank.cose");
        let _ = std::fs::write(&file, [0xd2, 0x84, 0x01]);
        let c = ServerConfig::from_toml(&format!(
            "[[otrp_oem_authorization]]\nsp = \"bank\"\nfile = {:?}\n",
            file.display().to_string()
        ))
        .unwrap_or_default();
        let auths = c.otrp_oem_authorizations().unwrap_or_default();
        assert_eq!(auths, vec![("bank".to_string(), vec![0xd2, 0x84, 0x01])]);
        let missing = ServerConfig {
            otrp_oem_authorization: vec![OemAuthorizationConfig {
                sp: "bank".into(),
                file: dir.join("absent.cose"),
            }],
            ..ServerConfig::default()
        };
        assert!(matches!(
            missing.otrp_oem_authorizations(),
            Err(ConfigError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn batch_report_masters_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("otrp_cfg_master_{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let good = dir.join("lot-1.report-master.key");
        let _ = std::fs::write(&good, format!("{}\n", "ab".repeat(32)));
        let short = dir.join("short.key");
        let _ = std::fs::write(&short, "abcd\n");
        let cfg = |entries: &[(&str, &Path)]| {
            let text: String = entries
                .iter()
                .map(|(b, f)| {
                    format!(
                        "[[batch_report_master]]\nbatch = {b:?}\nfile = {:?}\n",
                        f.display().to_string()
                    )
                })
                .collect();
            ServerConfig::from_toml(&text).unwrap_or_default()
        };
        let ok = cfg(&[("lot-1", &good)]).batch_report_masters();
        let ok = ok.unwrap_or_default();
        assert_eq!(ok.get("lot-1").map(|k| k[0]), Some(0xab));
        for (entries, want) in [
            (vec![("lot-1", short.as_path())], "64 hex digits"),
            (
                vec![("lot-1", good.as_path()), ("lot-1", good.as_path())],
                "twice",
            ),
            (vec![("bad id!", good.as_path())], "invalid batch id"),
        ] {
            let e = cfg(&entries)
                .batch_report_masters()
                .err()
                .map(|e| e.to_string());
            assert!(e.as_deref().unwrap_or("").contains(want), "{e:?}");
        }
        let absent = cfg(&[("lot-1", &dir.join("absent.key"))]).batch_report_masters();
        assert!(matches!(absent, Err(ConfigError::Read { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
