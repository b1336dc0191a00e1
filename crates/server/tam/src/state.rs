//! Shared server state: the TAM core, the admin side, the store, the identity.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use otrp_crypto::CryptoProvider;
use otrp_store::{AccountKind, SqlStore, Store};
use otrp_tam::{Admin, EatVerifier, OtrpSession, Policy, Tam};

use crate::config::ServerConfig;
use crate::identity::Identity;

/// Unix seconds now (the shell's clock; the cores take time as an argument).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub use crate::reference::ServerVerifier;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Identity (keys, certificates).
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The store.
    #[error("store ({url}): {source}")]
    Store {
        /// The URL (without password).
        url: String,
        /// Why.
        source: otrp_store::StoreError,
    },
    /// The data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Bootstrapping the OEM account failed.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS setup.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Everything the handlers share.
pub struct AppState {
    /// The TEEP session core.
    pub tam: Tam,
    /// The evidence verifier (the cached reference values the admin API updates).
    pub verifier: Arc<ServerVerifier>,
    /// The OTrP session core over the same store, or why this TAM's identity cannot serve
    /// OTrP (then `application/otrp+json` is answered 415 with that reason).
    pub otrp: Result<OtrpSession, String>,
    /// The admin side (tenancy, catalog, deployments).
    pub admin: Admin,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Keys and roots.
    pub identity: Identity,
    /// The configuration.
    pub config: ServerConfig,
    /// The management configuration.
    pub policy: Policy,
    /// Crypto provider.
    pub provider: &'static dyn CryptoProvider,
    /// "sqlite" or "postgres".
    pub backend: &'static str,
    /// Batch report master secrets (`[[batch_report_master]]`), for MAC'd batch reports.
    pub report_masters: crate::batch::ReportMasters,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Hides a password in a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}://{}:***@{}", &url[..s], &creds[..c], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl AppState {
    /// Opens the store named by the configuration (creating the data directory for
    /// SQLite) and builds the state.
    pub async fn open(config: ServerConfig, identity: Identity) -> Result<AppState, StartError> {
        let url = config.database_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?;
        }
        let store = SqlStore::connect(&url)
            .await
            .map_err(|source| StartError::Store {
                url: redact_url(&url),
                source,
            })?;
        let backend = store.backend_name();
        Self::with_store(config, identity, Arc::new(store), backend)
    }

    /// Builds the state over an open store.
    pub fn with_store(
        config: ServerConfig,
        identity: Identity,
        store: Arc<dyn Store>,
        backend: &'static str,
    ) -> Result<AppState, StartError> {
        let provider = otrp_crypto::default_provider();
        let mut eat = EatVerifier::new(provider, config.attestation_ttl_secs);
        if let Some(roots) = &identity.tee_roots {
            eat = eat.with_roots(roots.clone());
        }
        if config.require_tfw_endorsement {
            let roots = identity.tfw_roots.clone().ok_or_else(|| {
                StartError::Config(crate::config::ConfigError::Missing(
                    "require_tfw_endorsement needs the TFW root: start the TAM with --pki DIR"
                        .into(),
                ))
            })?;
            eat = eat.with_tfw_roots(roots);
        }
        let references = config.references()?;
        for (model, values) in &references {
            eat.set_reference(model.clone(), values.clone());
        }
        let verifier = Arc::new(ServerVerifier::new(eat, config.accept_unlisted_models));
        crate::reference::spawn_refresher(
            store.clone(),
            Arc::downgrade(&verifier),
            crate::reference::config_records(&references, now()),
            std::time::Duration::from_secs(config.reference_refresh_secs.max(1)),
        );
        let tam_config = config.tam_config();
        if tam_config.compact != otrp_tam::CompactPolicy::default() {
            tracing::info!(
                all = tam_config.compact.all,
                models = ?tam_config.compact.models,
                transports = ?tam_config.compact.transports,
                "compact TEEP wire profile (no kid, 8-byte token) for these Updates"
            );
        }
        let tam = Tam::new(
            store.clone(),
            verifier.clone(),
            identity.keys.clone(),
            tam_config,
            provider,
        );
        let oem_authorizations = config.otrp_oem_authorizations()?;
        let report_masters = config.batch_report_masters()?;
        if !report_masters.is_empty() {
            tracing::info!(
                batches = ?report_masters.keys().collect::<Vec<_>>(),
                "MAC'd batch reports accepted for these batches"
            );
        }
        let otrp = crate::otrp::session_config(&identity, &config, oem_authorizations)
            .map(|c| OtrpSession::new(store.clone(), c, provider));
        match &otrp {
            Ok(_) => tracing::debug!("OTrP JSON served at POST /tam"),
            Err(why) => tracing::info!(%why, "OTrP JSON not served"),
        }
        let policy: Policy = config.policy.into();
        let admin = Admin::new(store.clone(), provider, policy);
        Ok(AppState {
            tam,
            verifier,
            otrp,
            admin,
            store,
            identity,
            config,
            policy,
            provider,
            report_masters,
            backend,
        })
    }

    /// On a store without accounts, creates the OEM account `oem` and writes its API token
    /// to `DATA_DIR/oem-api-token` (mode 0600). Returns the path when it did.
    pub async fn bootstrap_oem(&self, data_dir: &Path) -> Result<Option<String>, StartError> {
        let accounts = self
            .store
            .accounts()
            .await
            .map_err(|e| StartError::Bootstrap(e.to_string()))?;
        if !accounts.is_empty() {
            return Ok(None);
        }
        let mut rng = rand::rngs::OsRng;
        let token = match self
            .admin
            .create_account(None, "oem", AccountKind::Oem, now(), &mut rng)
            .await
        {
            Ok(t) => t,
            // Another replica bootstrapped first.
            Err(otrp_tam::AdminError::Store(otrp_store::StoreError::Exists { .. })) => {
                return Ok(None)
            }
            Err(e) => return Err(StartError::Bootstrap(e.to_string())),
        };
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("oem-api-token");
        write_secret(&path, token.as_bytes()).map_err(|source| StartError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(path.display().to_string()))
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://tam:secret@db:5432/tam"),
            "postgres://tam:***@db:5432/tam"
        );
        assert_eq!(redact_url("postgres://tam@db/tam"), "postgres://tam@db/tam");
        assert_eq!(redact_url("sqlite:/x/tam.db"), "sqlite:/x/tam.db");
    }
}
