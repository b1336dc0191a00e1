//! The OpenTrust TAM store: everything the TAM core keeps, behind one async trait
//! ([`Store`]), with two backends through sqlx ([`SqlStore`]): SQLite (a file in WAL
//! mode, the default) and PostgreSQL (so several TAM processes serve one fleet).
//!
//! * Design choice: **one async trait** (`async-trait`, object safe: `Arc<dyn Store>` fits
//!   an axum state). The TAM core calls it between its pure decisions; it never opens
//!   sockets or reads clocks itself (times are arguments of every call).
//! * Records are plain data ([`model`]); the core gives them meaning.
//! * One-time values ([`Store::consume_token`], [`Store::consume_challenge`]) are consumed
//!   with one conditional `UPDATE … WHERE consumed_at IS NULL AND expires_at > now
//!   RETURNING …`, so when two replicas race on the same token exactly one wins.
//! * Sequence numbers of a component's manifests must grow: [`Store::add_manifest`]
//!   inserts only when no manifest of that component has an equal or higher number.
//! * Migrations are embedded per backend (`migrations/sqlite`, `migrations/postgres`) and
//!   run by [`SqlStore::connect`].
//! * PostgreSQL isolation for tests: [`SqlStore::connect_postgres_schema`] works in its own
//!   schema (`search_path`), [`SqlStore::drop_schema`] removes it.
#![forbid(unsafe_code)]

pub mod batch;
pub mod model;
mod sql;
pub mod write;

use async_trait::async_trait;

pub use batch::*;
pub use model::*;
pub use sql::{Backend, SqlStore};
pub use write::{ConsumeFailure, StoreWrite};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back (bad enum text, negative number, …).
    #[error("corrupt stored value in {table}.{column}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The object already exists.
    #[error("{what} {id} already exists")]
    Exists {
        /// Kind of object.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The object does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// Kind of object.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A manifest's sequence number does not grow.
    #[error("sequence number {seq} does not exceed the latest one ({latest})")]
    SequenceNotGrowing {
        /// The number offered.
        seq: u64,
        /// The highest stored number.
        latest: u64,
    },
    /// The database URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme in {0:?} (want sqlite: or postgres:)")]
    UnsupportedUrl(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the TAM core needs to keep. All times are Unix seconds passed by the caller.
#[async_trait]
pub trait Store: Send + Sync {
    // --- devices ---------------------------------------------------------------------
    /// Inserts or replaces a device (tags included).
    async fn put_device(&self, d: &DeviceRecord) -> Result<()>;
    /// One device.
    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>>;
    /// Every device (ordered by id).
    async fn devices(&self) -> Result<Vec<DeviceRecord>>;
    /// Records the negotiated cipher suite (COSE algorithm id).
    async fn set_device_suite(&self, id: &str, alg: i64) -> Result<()>;
    /// Marks a device revoked (or not).
    async fn set_device_revoked(&self, id: &str, revoked: bool) -> Result<()>;

    // --- attestation and agent keys ----------------------------------------------------
    /// Stores the newest attestation result of a device.
    async fn put_attestation(&self, a: &AttestationRecord) -> Result<()>;
    /// The newest attestation result of a device.
    async fn attestation(&self, device_id: &str) -> Result<Option<AttestationRecord>>;
    /// Binds an Agent key to a device (replaces a key with the same kid).
    async fn put_agent_key(&self, k: &AgentKeyRecord) -> Result<()>;
    /// The Agent key with this kid.
    async fn agent_key(&self, kid: &[u8]) -> Result<Option<AgentKeyRecord>>;
    /// The Agent keys with these kids (a kid bound to no key has no record; order
    /// unspecified, each key once). For the TAM's grouped batch reports
    /// ([`Store::put_batch_reports`]); [`SqlStore`]: one `WHERE kid IN (…)` statement per
    /// 500 distinct kids.
    async fn agent_keys_by_kid(&self, kids: &[Vec<u8>]) -> Result<Vec<AgentKeyRecord>> {
        let mut out: Vec<AgentKeyRecord> = Vec::with_capacity(kids.len());
        for kid in kids {
            if !out.iter().any(|k| &k.kid == kid) {
                out.extend(self.agent_key(kid).await?);
            }
        }
        Ok(out)
    }
    /// Every Agent key of a device.
    async fn agent_keys(&self, device_id: &str) -> Result<Vec<AgentKeyRecord>>;

    // --- tokens and challenges -------------------------------------------------------
    /// Records an issued token.
    async fn insert_token(&self, t: &TokenRecord) -> Result<()>;
    /// Reads a token without consuming it.
    async fn token(&self, token: &[u8]) -> Result<Option<TokenRecord>>;
    /// Reads a token without consuming it, with every Agent key of the device it names
    /// (as [`Store::agent_keys`]: newest first; none when the token names no device).
    /// [`SqlStore`]: one query.
    async fn token_with_keys(
        &self,
        token: &[u8],
    ) -> Result<Option<(TokenRecord, Vec<AgentKeyRecord>)>> {
        let Some(t) = self.token(token).await? else {
            return Ok(None);
        };
        let keys = match &t.device_id {
            Some(d) => self.agent_keys(d).await?,
            None => Vec::new(),
        };
        Ok(Some((t, keys)))
    }
    /// The Agent key with this kid, with the attestation result and the record of the
    /// device it is bound to (what a QueryResponse from a known Agent needs before
    /// planning). [`SqlStore`]: one query.
    async fn known_agent(&self, kid: &[u8]) -> Result<Option<KnownAgent>> {
        let Some(key) = self.agent_key(kid).await? else {
            return Ok(None);
        };
        Ok(Some(KnownAgent {
            attestation: self.attestation(&key.device_id).await?,
            device: self.device(&key.device_id).await?,
            key,
        }))
    }
    /// Consumes a token atomically: succeeds once, before expiry, across all replicas.
    async fn consume_token(
        &self,
        token: &[u8],
        now: u64,
    ) -> Result<std::result::Result<TokenRecord, ConsumeRefusal>>;
    /// Records an issued challenge.
    async fn insert_challenge(&self, c: &ChallengeRecord) -> Result<()>;
    /// Consumes a challenge atomically (as [`Store::consume_token`]).
    async fn consume_challenge(
        &self,
        challenge: &[u8],
        now: u64,
    ) -> Result<std::result::Result<ChallengeRecord, ConsumeRefusal>>;
    /// Deletes tokens and challenges that expired before `before`; returns how many.
    async fn purge_expired(&self, before: u64) -> Result<u64>;

    // --- grouped writes ----------------------------------------------------------------
    /// Applies `writes` in order as one unit: all or none ([`SqlStore`]: one transaction,
    /// one commit). The default runs them one by one through the single-row methods (not
    /// atomic).
    async fn apply(&self, writes: &[StoreWrite]) -> Result<()> {
        for w in writes {
            write::apply_one(self, w).await?;
        }
        Ok(())
    }
    /// Consumes `token` (as [`Store::consume_token`]: once, before expiry, across all
    /// replicas), then `challenge` when given (as [`Store::consume_challenge`]), and only
    /// when both were consumed applies `writes`; [`SqlStore`] does all of it in one
    /// transaction. A refused token changes nothing; a refused challenge leaves the token
    /// consumed and applies no write (what two separate consume calls did).
    async fn consume_and_apply(
        &self,
        token: &[u8],
        challenge: Option<&[u8]>,
        now: u64,
        writes: &[StoreWrite],
    ) -> Result<std::result::Result<TokenRecord, ConsumeFailure>> {
        let tok = match self.consume_token(token, now).await? {
            Ok(t) => t,
            Err(r) => return Ok(Err(ConsumeFailure::Token(r))),
        };
        if let Some(c) = challenge {
            if let Err(r) = self.consume_challenge(c, now).await? {
                return Ok(Err(ConsumeFailure::Challenge(r)));
            }
        }
        self.apply(writes).await?;
        Ok(Ok(tok))
    }

    // --- accounts, SDs -----------------------------------------------------------------
    /// Creates an account.
    async fn insert_account(&self, a: &AccountRecord) -> Result<()>;
    /// One account.
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>>;
    /// The account whose API-token hash is `hash`.
    async fn account_by_token_hash(&self, hash: &[u8]) -> Result<Option<AccountRecord>>;
    /// Sets the OEM approval flag of an account.
    async fn set_account_approved(&self, id: &str, approved: bool) -> Result<()>;
    /// Every account.
    async fn accounts(&self) -> Result<Vec<AccountRecord>>;
    /// Creates an SD.
    async fn insert_sd(&self, sd: &SdRecord) -> Result<()>;
    /// One SD.
    async fn sd(&self, name: &str) -> Result<Option<SdRecord>>;
    /// SDs, all or of one SP.
    async fn sds(&self, sp_id: Option<&str>) -> Result<Vec<SdRecord>>;
    /// Sets the grant flag of an SD.
    async fn set_sd_granted(&self, name: &str, granted: bool) -> Result<()>;

    // --- catalog -----------------------------------------------------------------------
    /// Creates a component.
    async fn insert_component(&self, c: &ComponentRecord) -> Result<()>;
    /// One component.
    async fn component(&self, id: &[u8]) -> Result<Option<ComponentRecord>>;
    /// Components, all or of one SP.
    async fn components(&self, sp_id: Option<&str>) -> Result<Vec<ComponentRecord>>;
    /// Adds a manifest; its sequence number must exceed every stored one of the component
    /// ([`StoreError::SequenceNotGrowing`]).
    async fn add_manifest(&self, m: &ManifestRecord) -> Result<()>;
    /// The manifest with the highest sequence number (only `Ready` ones when asked).
    async fn latest_manifest(
        &self,
        component: &[u8],
        ready_only: bool,
    ) -> Result<Option<ManifestRecord>>;
    /// One manifest.
    async fn manifest(&self, component: &[u8], seq: u64) -> Result<Option<ManifestRecord>>;
    /// Replaces a manifest's envelope and status (co-signing workflow).
    async fn update_manifest(
        &self,
        component: &[u8],
        seq: u64,
        envelope: &[u8],
        status: ManifestStatus,
    ) -> Result<()>;

    // --- deployments and progress -------------------------------------------------------
    /// Creates a deployment; returns its id.
    async fn insert_deployment(&self, d: &DeploymentRecord) -> Result<i64>;
    /// One deployment.
    async fn deployment(&self, id: i64) -> Result<Option<DeploymentRecord>>;
    /// Deployments, all or of one SP.
    async fn deployments(&self, sp_id: Option<&str>) -> Result<Vec<DeploymentRecord>>;
    /// Changes a deployment's state.
    async fn set_deployment_state(&self, id: i64, state: DeploymentState) -> Result<()>;
    /// Inserts or replaces progress of (deployment, device, component).
    async fn put_progress(&self, p: &ProgressRecord) -> Result<()>;
    /// Progress of one device in one deployment.
    async fn progress(
        &self,
        deployment_id: i64,
        device_id: &str,
        component: &[u8],
    ) -> Result<Option<ProgressRecord>>;
    /// What planning an Update for `device` reads: every `Active` deployment that may
    /// target it (a superset: a caller still checks [`Target::matches`]; deployments by
    /// tag are judged on the store's tags of the device), ordered by id, each with the
    /// device's progress and, for an install, the component's latest `Ready` manifest.
    /// [`SqlStore`]: one query.
    async fn deployment_plans(&self, device: &DeviceRecord) -> Result<Vec<DeploymentPlan>> {
        let mut out = Vec::new();
        for d in self.deployments(None).await? {
            if d.state != DeploymentState::Active || !d.target.matches(device) {
                continue;
            }
            let progress = self.progress(d.id, &device.id, &d.component).await?;
            let latest_ready = match d.action {
                DeploymentAction::Install => self.latest_manifest(&d.component, true).await?,
                DeploymentAction::Remove => None,
            };
            out.push(DeploymentPlan {
                deployment: d,
                progress,
                latest_ready,
            });
        }
        Ok(out)
    }
    /// The record of device `id` (as [`Store::device`]) and the [`Store::deployment_plans`]
    /// of that device as a device of `model` (a new device: without tags): what a
    /// QueryResponse with evidence reads, `model` being the one its evidence names, which
    /// the step records. [`SqlStore`] on SQLite: one command (two statements).
    async fn device_and_plans(
        &self,
        id: &str,
        model: &str,
    ) -> Result<(Option<DeviceRecord>, Vec<DeploymentPlan>)> {
        device_then_plans(self, id, model).await
    }
    /// Every progress row of a device.
    async fn device_progress(&self, device_id: &str) -> Result<Vec<ProgressRecord>>;
    /// Counts of a deployment.
    async fn progress_counts(&self, deployment_id: i64) -> Result<ProgressCounts>;

    // --- OTrP ----------------------------------------------------------------------------
    /// Inserts or replaces the OTrP state of a device.
    async fn put_otrp_device(&self, d: &OtrpDeviceRecord) -> Result<()>;
    /// The OTrP state of a device.
    async fn otrp_device(&self, device_id: &str) -> Result<Option<OtrpDeviceRecord>>;
    /// Records an OTrP request sent ([`StoreError::Exists`] for a reused rid).
    async fn insert_otrp_request(&self, r: &OtrpRequestRecord) -> Result<()>;
    /// Reads an OTrP request without consuming it.
    async fn otrp_request(&self, rid: &str) -> Result<Option<OtrpRequestRecord>>;
    /// Consumes an OTrP request atomically (as [`Store::consume_token`]).
    async fn consume_otrp_request(
        &self,
        rid: &str,
        now: u64,
    ) -> Result<std::result::Result<OtrpRequestRecord, ConsumeRefusal>>;
    /// Registers an SP TA-signer certificate (idempotent).
    async fn add_sp_cert(&self, c: &SpCertRecord) -> Result<()>;
    /// The TA-signer certificates of an SP, oldest first.
    async fn sp_certs(&self, sp_id: &str) -> Result<Vec<SpCertRecord>>;

    // --- reference values ---
    /// Inserts or replaces the reference values of a model (a tombstone too: `removed`).
    async fn put_reference_values(&self, r: &ReferenceValuesRecord) -> Result<()>;
    /// Inserts the reference values of a model only when the store has no record of it
    /// (not even a tombstone); returns whether it did. Seeding from a TAM's config file.
    async fn seed_reference_values(&self, r: &ReferenceValuesRecord) -> Result<bool>;
    /// The record of one model (tombstones included).
    async fn reference_values(&self, model: &str) -> Result<Option<ReferenceValuesRecord>>;
    /// Every record (tombstones included), ordered by model.
    async fn all_reference_values(&self) -> Result<Vec<ReferenceValuesRecord>>;

    // --- audit -------------------------------------------------------------------------
    /// Appends to the audit log; returns the id.
    async fn append_audit(&self, a: &AuditRecord) -> Result<i64>;
    /// The newest `limit` entries, newest first.
    async fn audit(&self, limit: u32) -> Result<Vec<AuditRecord>>;

    // --- batch ---
    /// Stores a batch package; its sequence number must exceed every stored one of the
    /// batch ([`StoreError::SequenceNotGrowing`], also when another replica won the race).
    async fn insert_batch_package(&self, p: &BatchPackageRecord) -> Result<()>;
    /// The package of a batch with the highest sequence number.
    async fn latest_batch_package(&self, batch_id: &str) -> Result<Option<BatchPackageRecord>>;
    /// One package of a batch.
    async fn batch_package(&self, batch_id: &str, seq: u64) -> Result<Option<BatchPackageRecord>>;
    /// Whether a package of a batch exists, without reading it (a report names the
    /// package it is about).
    async fn batch_package_exists(&self, batch_id: &str, seq: u64) -> Result<bool> {
        Ok(self.batch_package(batch_id, seq).await?.is_some())
    }
    /// Every package (of one batch, or all), ordered by batch id then sequence number.
    async fn batch_packages(&self, batch_id: Option<&str>) -> Result<Vec<BatchPackageRecord>>;
    /// Inserts or replaces the report of (batch, sequence, device).
    async fn put_batch_report(&self, r: &BatchReportRecord) -> Result<()>;
    /// Inserts or replaces many reports as [`Store::put_batch_report`] one after the other
    /// would (when a (batch, sequence, device) appears twice, the later one wins).
    /// [`SqlStore`]: one transaction, one multi-row upsert per 150 reports.
    async fn put_batch_reports(&self, rs: &[BatchReportRecord]) -> Result<()> {
        for r in rs {
            self.put_batch_report(r).await?;
        }
        Ok(())
    }
    /// The reports on one package, ordered by device id.
    async fn batch_reports(&self, batch_id: &str, seq: u64) -> Result<Vec<BatchReportRecord>>;
    /// Applied / failed counts of one package.
    async fn batch_report_counts(&self, batch_id: &str, seq: u64) -> Result<BatchReportCounts>;

    // --- OTrP-profile batch (migration 0005; `batch_id` of the records = the model) ---
    /// Inserts or replaces the shared device key of a model.
    async fn put_otrp_batch_model(&self, m: &OtrpBatchModelRecord) -> Result<()>;
    /// The shared device key of a model.
    async fn otrp_batch_model(&self, model: &str) -> Result<Option<OtrpBatchModelRecord>>;
    /// Stores an OTrP batch package; its sequence number must exceed every stored one of
    /// the model ([`StoreError::SequenceNotGrowing`], also when another replica won).
    async fn insert_otrp_batch_package(&self, p: &BatchPackageRecord) -> Result<()>;
    /// The OTrP batch package of a model with the highest sequence number.
    async fn latest_otrp_batch_package(&self, model: &str) -> Result<Option<BatchPackageRecord>>;
    /// One OTrP batch package.
    async fn otrp_batch_package(&self, model: &str, seq: u64)
        -> Result<Option<BatchPackageRecord>>;
    /// Every OTrP batch package (of one model, or all), ordered by model then sequence.
    async fn otrp_batch_packages(&self, model: Option<&str>) -> Result<Vec<BatchPackageRecord>>;
    /// Inserts or replaces the result of (model, sequence, device).
    async fn put_otrp_batch_result(&self, r: &BatchReportRecord) -> Result<()>;
    /// The results on one OTrP batch package, ordered by device id.
    async fn otrp_batch_results(&self, model: &str, seq: u64) -> Result<Vec<BatchReportRecord>>;
    /// Pass / fail counts of one OTrP batch package.
    async fn otrp_batch_result_counts(&self, model: &str, seq: u64) -> Result<BatchReportCounts>;
    /// The OTrP state of the device whose TEE certificate hashes to `did`.
    async fn otrp_device_by_did(&self, did: &str) -> Result<Option<OtrpDeviceRecord>>;
}

/// [`Store::device_and_plans`] as two reads.
async fn device_then_plans<S: Store + ?Sized>(
    store: &S,
    id: &str,
    model: &str,
) -> Result<(Option<DeviceRecord>, Vec<DeploymentPlan>)> {
    let device = store.device(id).await?;
    let plans = store
        .deployment_plans(&device_as_model(device.as_ref(), id, model))
        .await?;
    Ok((device, plans))
}

/// The device whose plans [`Store::device_and_plans`] judges: the stored one (or a new
/// one, without tags) as a device of `model`.
fn device_as_model(stored: Option<&DeviceRecord>, id: &str, model: &str) -> DeviceRecord {
    match stored {
        Some(d) => DeviceRecord {
            model: model.into(),
            ..d.clone()
        },
        None => DeviceRecord {
            id: id.into(),
            ueid: Vec::new(),
            model: model.into(),
            hwversion: String::new(),
            tags: Vec::new(),
            suite_alg: None,
            revoked: false,
            created_at: 0,
        },
    }
}
