//! Batch mode served (DESIGN.md §3.2, `spec/otrp.md` §6): one TAM-signed package for
//! every device of a batch, fetched by their Brokers, with asynchronous reports.
//!
//! # Publishing (admin API)
//!
//! `POST /api/v1/batches/{batch_id}/packages` names ready catalog components. The TAM takes
//! the newest ready manifest of each (and, first, the newest SD manifest of each
//! component's Security Domain, so a device without the SD gets it from the same package),
//! builds **one** token-less TEEP Update with the `otrp-batch` option `[batch-id,
//! batch-sequence]` ([`otrp_tam::batch::build_package`]) and signs it **once**. The package
//! is stored (`batch_packages`, so every replica serves the same bytes) with the next
//! batch sequence number of the batch; the store refuses a sequence number that does not
//! grow, also when two replicas race. The SP manifests are used as they are: for
//! confidentiality the SP encrypts the payload to the batch public key before signing
//! (`otrp sp publish --batch-key`, [`otrp_tam::batch::encrypt_for_batch`]).
//!
//! **Data** (personalization for the whole batch, e.g. the access list of every lock of a
//! lot or the no-fly zones of every drone): `"data": ["SD/TA"]` adds the newest ready
//! manifest of the TA's data component `SD/TA/perso` (uploaded like any manifest, e.g. by
//! `otrp sp batch publish --data FILE --for-ta SD/TA`), after the TAs. The caller must own
//! the TA. Since the package is public and cacheable, the TAM refuses (422) a data
//! manifest whose payload is not encrypted to this batch's key
//! ([`otrp_tam::batch::check_data_for_batch`]); the same holds for a data component named
//! in `components`. Devices install the data only for a TA they have or get in the same
//! package. Per-device data does not fit here (the package is the same for every device):
//! use `POST /api/v1/personalization`.
//!
//! Tenancy: an SP publishes only its own components (another SP's answer 404, as
//! everywhere in the API) and must be approved; the first account that publishes to a
//! batch id owns it (another SP gets 403 for that batch); the OEM may publish to any batch
//! and any component. Device admins cannot publish. Every attempt is in the audit log
//! (`batch.publish`).
//!
//! # Serving (devices)
//!
//! `GET /tam/batch/{batch_id}` answers the newest package: 200 with
//! `application/teep+cbor`, a strong `ETag` and `Cache-Control: public, max-age=60,
//! must-revalidate`; `If-None-Match` naming it answers 304; no package 404. **Why this GET
//! may be cached while `POST /tam` may not** (draft-ietf-teep-otrp-over-http §4 forbids
//! caching TEEP session responses): a session response is for one device and one token,
//! whereas a batch package is, by construction, the same signed bytes for every device of
//! the batch, carries no token and no device data, and is protected end to end by the
//! TAM's COSE signature plus the Agent's batch-sequence anti-rollback; a cache serving a
//! stale copy can only delay an update by `max-age`, never roll one back. So CDNs, proxies
//! and multicast senders may carry it. The CoAP server serves the same bytes as
//! `GET /batch/{batch_id}` with an ETag option and Block2 ([`coap_get`]), and takes
//! reports at `POST /batch/{batch_id}/reports?seq=N` (Uri-Query, Block1), verified and
//! counted by the same [`record_report`] (`crate::coap`).
//!
//! # Reports
//!
//! `POST /tam/batch/{batch_id}/reports?seq=N` takes the Agent-signed TEEP Success or
//! Error a device queued after applying package `N`. Decision: it is verified against
//! the Agent key the TAM **bound at an earlier attested TEEP session** of that device
//! ([`otrp_tam::batch::verify_report`]); a report signed by a key the TAM never saw
//! attested answers 403 (the device must run one TEEP session first, once per device
//! lifetime, not per package). We chose this over verifying the report against evidence
//! sent with it, because the report then stays a few hundred bytes (constrained links)
//! and the TAM verifies one signature per report instead of a certificate chain. `seq`
//! is not inside the signed report: it only selects the package the report is counted
//! for, and must name a published package of the batch (else 404). Reports are idempotent
//! per (batch, seq, device); the newest wins. Counts per package are in the admin API.
//!
//! Reports arrive one per request, often thousands at once after a package is published.
//! The handlers hand them to one recorder task that takes whatever is
//! queued (up to [`MAX_REPORT_GROUP`]), groups it by package and, per group, checks the
//! package once (a positive answer is remembered: package rows never change), looks the
//! Agent keys up with one query and records the verified reports with one write
//! ([`otrp_tam::batch::record_reports`]); each request still gets its own answer (204,
//! 403, 404 or 503). Under light load a group is a single report.
//!
//! # Metrics
//!
//! `otrp_batch_packages_total`, `otrp_batch_signatures_total` (TAM signatures made for
//! batch packages), `otrp_batch_fetches_total{transport,status}`,
//! `otrp_batch_reports_total{result,auth}` (`result`: applied, failed, refused; `auth`:
//! `signature`, or `mac` for devices with report keys: for a refused report, what it
//! claimed to be).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use otrp_store::{AccountKind, BatchPackageRecord, ManifestStatus, StoreError};
use otrp_tam::batch::{
    build_package, check_data_for_batch, record_reports_with, BatchError, CountingProvider,
    ReportAuth, ReportContext, MAX_REPORT_GROUP,
};
use otrp_tam::{component_id_of, AdminError, Caller};
use otrp_teep::ComponentId;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa::{OpenApi, ToSchema};

use crate::api::{component_display, parse_component, ErrorBody};
use crate::sd::sd_component_key;
use crate::state::{now, AppState};

/// Report master secrets per batch id (`[[batch_report_master]]`).
pub type ReportMasters = std::collections::HashMap<
    String,
    zeroize::Zeroizing<[u8; otrp_crypto::report_key::REPORT_KEY_LEN]>,
>;

/// Batch packages published.
pub const BATCH_PACKAGES: &str = "otrp_batch_packages_total";
/// TAM signatures made to build batch packages.
pub const BATCH_SIGNATURES: &str = "otrp_batch_signatures_total";
/// Package fetches by transport (`http`, `coap`) and status (`200`, `304`, `404`).
pub const BATCH_FETCHES: &str = "otrp_batch_fetches_total";
/// Device reports by result (`applied`, `failed`, `refused`).
pub const BATCH_REPORTS: &str = "otrp_batch_reports_total";

/// The device-facing path prefix (`GET /tam/batch/{id}`, `POST /tam/batch/{id}/reports`).
pub const BATCH_PATH: &str = "/tam/batch";
/// The CoAP resource prefix (`GET /batch/{id}`).
pub const COAP_BATCH_PREFIX: &str = "/batch/";

/// Largest report body accepted (a signed Success/Error with SUIT reports).
pub const MAX_REPORT_BYTES: usize = 64 * 1024;

/// An error of the batch API, in the admin API's `{"error", "hint"}` shape.
#[derive(Debug)]
pub struct BatchApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

impl BatchApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        BatchApiError {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "check the TAM server log; retry once the store is reachable",
        )
    }
}

impl From<AdminError> for BatchApiError {
    fn from(e: AdminError) -> Self {
        let msg = e.to_string();
        match e {
            AdminError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                msg,
                "send `Authorization: Bearer <API token>` with a token made by the OEM",
            ),
            AdminError::Forbidden(_) | AdminError::NotApproved(_) => Self::new(
                StatusCode::FORBIDDEN,
                msg,
                "publishing batch packages needs the OEM or an approved SP",
            ),
            AdminError::NotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                msg,
                "list your components with GET /api/v1/components",
            ),
            AdminError::Store(s) => s.into(),
            other => Self::new(
                StatusCode::BAD_REQUEST,
                other.to_string(),
                "fix the request",
            ),
        }
    }
}

impl From<StoreError> for BatchApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SequenceNotGrowing { latest, .. } => Self::new(
                StatusCode::CONFLICT,
                e.to_string(),
                format!("another package of this batch was published meanwhile (sequence {latest}); retry"),
            ),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for BatchApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.error,
                hint: self.hint,
            }),
        )
            .into_response()
    }
}

type BatchResult<T> = Result<T, BatchApiError>;

async fn caller(state: &AppState, headers: &HeaderMap) -> BatchResult<Caller> {
    Ok(crate::api::authenticate(state, headers).await?)
}

async fn audit(state: &AppState, actor: &str, object: &str, detail: &str) {
    crate::api::audit(state, actor, "batch.publish", object, detail).await;
}

fn check_batch_id(id: &str) -> BatchResult<()> {
    if otrp_tam::batch::is_valid_batch_id(id) {
        Ok(())
    } else {
        Err(BatchApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid batch id {id:?}"),
            "use 1 to 64 characters among A-Z a-z 0-9 - _ . (the name given to `otrp device provision --batch`)",
        ))
    }
}

// --- admin API -----------------------------------------------------------------------

/// `POST /api/v1/batches/{batch_id}/packages`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishBatch {
    /// Components to install (SD/NAME or the hex of a component key): the newest ready
    /// manifest of each goes into the package, after its SD's manifest.
    #[serde(default)]
    pub components: Vec<String>,
    /// Components to remove from the devices of the batch.
    #[serde(default)]
    pub remove: Vec<String>,
    /// TAs (SD/NAME) whose data goes into the package: the newest ready manifest of each
    /// TA's data component `SD/NAME/perso`, encrypted to the batch key (else 422), after
    /// the components. The same data for every device of the batch.
    #[serde(default)]
    pub data: Vec<String>,
}

/// One batch package as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchPackageOut {
    /// Batch id.
    pub batch_id: String,
    /// Batch sequence number.
    pub seq: u64,
    /// Who published it.
    pub owner: String,
    /// What it carries (`component#manifest-seq`, `-component` for removals).
    pub contents: String,
    /// Size of the signed package in bytes (the same for every device).
    pub size: usize,
    /// Its HTTP entity tag.
    pub etag: String,
    /// Signatures the TAM made to build it.
    pub tam_signatures: u64,
    /// Devices that reported it applied.
    pub applied: u64,
    /// Devices that reported a failure.
    pub failed: u64,
    /// Publication time (Unix seconds).
    pub created_at: u64,
    /// Where devices fetch the newest package.
    pub url: String,
}

/// One device report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchReportOut {
    /// Device (hex UEID).
    pub device_id: String,
    /// Applied (true) or failed.
    pub success: bool,
    /// The Error's code and message, or empty.
    pub detail: String,
    /// When the TAM received it (Unix seconds).
    pub received_at: u64,
}

/// A batch: its packages (oldest first) and the reports on its newest package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchOut {
    /// Batch id.
    pub batch_id: String,
    /// Packages, oldest first, with report counts.
    pub packages: Vec<BatchPackageOut>,
    /// The reports on the newest package.
    pub latest_reports: Vec<BatchReportOut>,
}

async fn package_out(s: &AppState, p: &BatchPackageRecord) -> BatchResult<BatchPackageOut> {
    let counts = s.store.batch_report_counts(&p.batch_id, p.seq).await?;
    Ok(BatchPackageOut {
        batch_id: p.batch_id.clone(),
        seq: p.seq,
        owner: p.owner.clone(),
        contents: p.contents.clone(),
        size: p.bytes.len(),
        etag: p.etag.clone(),
        tam_signatures: p.tam_signatures,
        applied: counts.applied,
        failed: counts.failed,
        created_at: p.created_at,
        url: format!("{BATCH_PATH}/{}", p.batch_id),
    })
}

fn component_key_of(name: &str) -> BatchResult<Vec<u8>> {
    parse_component(name).map_err(|_| {
        BatchApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid component id {name:?}"),
            "name a component as SD/NAME (e.g. sd1/door-lock-ta)",
        )
    })
}

fn is_oem(c: &Caller) -> bool {
    c.account.kind == AccountKind::Oem
}

/// The owner of a batch: the publisher of its first package.
async fn batch_owner(s: &AppState, batch_id: &str) -> BatchResult<Option<String>> {
    Ok(s.store
        .batch_packages(Some(batch_id))
        .await?
        .first()
        .map(|p| p.owner.clone()))
}

fn may_see(c: &Caller, owner: &str) -> bool {
    is_oem(c) || c.account.id == owner
}

/// The newest ready manifest of a component the caller may use: (envelope, seq, key).
async fn ready_manifest(s: &AppState, c: &Caller, key: &[u8]) -> BatchResult<(Vec<u8>, u64)> {
    let name = component_display(key);
    s.admin.component(c, key).await?;
    let m = s.store.latest_manifest(key, true).await?.ok_or_else(|| {
        BatchApiError::new(
            StatusCode::CONFLICT,
            format!("component {name} has no ready manifest"),
            "publish it first (`otrp sp publish`), and co-sign it when the policy asks",
        )
    })?;
    debug_assert_eq!(m.status, ManifestStatus::Ready);
    Ok((m.envelope, m.seq))
}

/// What a package being built carries so far.
#[derive(Default)]
struct Contents {
    manifests: Vec<Vec<u8>>,
    included: Vec<Vec<u8>>,
    contents: Vec<String>,
}

impl Contents {
    fn push(&mut self, key: Vec<u8>, seq: u64, envelope: Vec<u8>) {
        self.contents
            .push(format!("{}#{seq}", component_display(&key)));
        self.manifests.push(envelope);
        self.included.push(key);
    }
}

/// Adds the newest SD manifest of the SD a component (its segments) lies in, once, so a
/// device without the SD gets it from the same package.
async fn include_sd(s: &AppState, segs: &[Vec<u8>], pkg: &mut Contents) -> BatchResult<()> {
    if let Some(sd) = segs
        .first()
        .filter(|_| segs.len() > 1 && segs.get(1).map(Vec::as_slice) != Some(b"sd"))
    {
        let sd_key = sd_component_key(&String::from_utf8_lossy(sd));
        if !pkg.included.contains(&sd_key) {
            if let Some(m) = s.store.latest_manifest(&sd_key, true).await? {
                pkg.push(sd_key, m.seq, m.envelope);
            }
        }
    }
    Ok(())
}

/// A data manifest must be encrypted to the batch: the package is public (cacheable).
fn check_data(envelope: &[u8], batch_id: &str) -> BatchResult<()> {
    check_data_for_batch(envelope, batch_id).map_err(|e| {
        BatchApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
            format!("a batch package is public: encrypt the data to the batch key (`otrp sp batch publish --data FILE --for-ta SD/TA --batch-key PKI_DIR/batch/{batch_id}.pub.pem`)"),
        )
    })
}

async fn publish_inner(
    s: &AppState,
    c: &Caller,
    batch_id: &str,
    req: &PublishBatch,
) -> BatchResult<BatchPackageRecord> {
    check_batch_id(batch_id)?;
    match c.account.kind {
        AccountKind::Oem => {}
        AccountKind::Sp if c.account.approved => {}
        AccountKind::Sp => {
            return Err(AdminError::NotApproved(format!("SP {}", c.account.id)).into());
        }
        AccountKind::DeviceAdmin => {
            return Err(AdminError::Forbidden(
                "only the OEM or an SP publishes batch packages".into(),
            )
            .into());
        }
    }
    if let Some(owner) = batch_owner(s, batch_id).await? {
        if !may_see(c, &owner) {
            return Err(BatchApiError::new(
                StatusCode::FORBIDDEN,
                format!("batch {batch_id} belongs to {owner}"),
                "publish to a batch id of your own, or ask the OEM",
            ));
        }
    }
    if req.components.is_empty() && req.remove.is_empty() && req.data.is_empty() {
        return Err(BatchApiError::new(
            StatusCode::BAD_REQUEST,
            "a batch package needs components to install or remove, or data",
            "name them with \"components\": [\"SD/NAME\"], \"remove\" or \"data\"",
        ));
    }
    let mut pkg = Contents::default();
    for name in &req.components {
        let key = component_key_of(name)?;
        // Ownership of the TA first: another SP's component answers 404.
        s.admin.component(c, &key).await?;
        let segs = component_id_of(&key).unwrap_or_default();
        include_sd(s, &segs, &mut pkg).await?;
        if pkg.included.contains(&key) {
            continue;
        }
        let (env, seq) = ready_manifest(s, c, &key).await?;
        if otrp_suit::ComponentId(segs.clone())
            .perso_target()
            .is_some()
        {
            check_data(&env, batch_id)?;
        }
        pkg.push(key, seq, env);
    }
    for name in &req.data {
        let ta_key = component_key_of(name)?;
        // The TA must be the caller's (another SP's answers 404).
        s.admin.component(c, &ta_key).await?;
        let segs = component_id_of(&ta_key).unwrap_or_default();
        let data_key =
            otrp_tam::component_key(otrp_suit::ComponentId(segs.clone()).perso().segments());
        if pkg.included.contains(&data_key) {
            continue;
        }
        include_sd(s, &segs, &mut pkg).await?;
        let m = s.store.latest_manifest(&data_key, true).await?.ok_or_else(|| {
            BatchApiError::new(
                StatusCode::CONFLICT,
                format!("TA {name} has no ready data manifest ({})", component_display(&data_key)),
                format!("upload it first: `otrp sp batch publish --batch {batch_id} --data FILE --for-ta {name} --data-seq N ...`"),
            )
        })?;
        check_data(&m.envelope, batch_id)?;
        pkg.push(data_key, m.seq, m.envelope);
    }
    let Contents {
        manifests,
        included: _,
        mut contents,
    } = pkg;
    let mut unneeded = Vec::new();
    for name in &req.remove {
        let key = component_key_of(name)?;
        s.admin.component(c, &key).await?;
        let segs = component_id_of(&key).ok_or_else(|| {
            BatchApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} is not a component id"),
                "name it as SD/NAME",
            )
        })?;
        contents.push(format!("-{}", component_display(&key)));
        unneeded.push(ComponentId::new(segs));
    }
    // Sign once; retry when another replica published the same sequence number meanwhile.
    for _ in 0..3 {
        let seq = s
            .store
            .latest_batch_package(batch_id)
            .await?
            .map_or(1, |p| p.seq + 1);
        let counting = CountingProvider::new(s.provider);
        let pkg = build_package(
            &counting,
            &s.identity.signing_key,
            batch_id,
            seq,
            manifests.clone(),
            unneeded.clone(),
        )
        .map_err(|e| match e {
            BatchError::BadId(_) | BatchError::Empty => {
                BatchApiError::new(StatusCode::BAD_REQUEST, e.to_string(), "fix the request")
            }
            other => BatchApiError::internal(other),
        })?;
        let signatures = counting.signatures();
        metrics::counter!(BATCH_SIGNATURES).increment(signatures);
        let rec = BatchPackageRecord {
            batch_id: batch_id.into(),
            seq,
            owner: c.account.id.clone(),
            contents: contents.join(", "),
            bytes: pkg.bytes,
            etag: pkg.etag,
            tam_signatures: signatures,
            created_at: now(),
        };
        match s.store.insert_batch_package(&rec).await {
            Ok(()) => {
                metrics::counter!(BATCH_PACKAGES).increment(1);
                tracing::info!(batch = batch_id, seq, size = rec.bytes.len(), signatures, contents = %rec.contents, "batch package published");
                return Ok(rec);
            }
            Err(StoreError::SequenceNotGrowing { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(BatchApiError::new(
        StatusCode::CONFLICT,
        format!("batch {batch_id}: other packages kept being published meanwhile"),
        "retry",
    ))
}

/// Builds, signs (once) and stores the next package of a batch from ready catalog
/// manifests; devices of the batch fetch it at `GET /tam/batch/{batch_id}`.
#[utoipa::path(post, path = "/api/v1/batches/{batch_id}/packages", tag = "batches",
    request_body = PublishBatch,
    params(("batch_id" = String, Path, description = "Batch id (as provisioned on the devices)")),
    responses((status = 201, body = BatchPackageOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn publish(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(batch_id): Path<String>,
    Json(req): Json<PublishBatch>,
) -> BatchResult<(StatusCode, Json<BatchPackageOut>)> {
    let c = caller(&s, &h).await?;
    let r = publish_inner(&s, &c, &batch_id, &req).await;
    let detail = match &r {
        Ok(p) => format!("seq {} ({} bytes): {}", p.seq, p.bytes.len(), p.contents),
        Err(e) => format!("refused: {}", e.error),
    };
    audit(&s, &c.account.id, &batch_id, &detail).await;
    let rec = r?;
    Ok((StatusCode::CREATED, Json(package_out(&s, &rec).await?)))
}

/// Lists the batches the caller may see (an SP: the ones it owns), newest package each.
#[utoipa::path(get, path = "/api/v1/batches", tag = "batches",
    responses((status = 200, body = [BatchPackageOut])), security(("bearer" = [])))]
async fn list_batches(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> BatchResult<Json<Vec<BatchPackageOut>>> {
    let c = caller(&s, &h).await?;
    let all = s.store.batch_packages(None).await?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let id = &all[i].batch_id;
        let mut j = i;
        while j + 1 < all.len() && &all[j + 1].batch_id == id {
            j += 1;
        }
        if may_see(&c, &all[i].owner) {
            out.push(package_out(&s, &all[j]).await?);
        }
        i = j + 1;
    }
    Ok(Json(out))
}

/// One batch: every package with its applied/failed counts, and the newest package's
/// reports.
#[utoipa::path(get, path = "/api/v1/batches/{batch_id}", tag = "batches",
    params(("batch_id" = String, Path, description = "Batch id")),
    responses((status = 200, body = BatchOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_batch(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(batch_id): Path<String>,
) -> BatchResult<Json<BatchOut>> {
    let c = caller(&s, &h).await?;
    let packages = s.store.batch_packages(Some(&batch_id)).await?;
    let visible = packages.first().is_some_and(|p| may_see(&c, &p.owner));
    if !visible {
        return Err(AdminError::NotFound(format!("batch {batch_id}")).into());
    }
    let mut out = Vec::new();
    for p in &packages {
        out.push(package_out(&s, p).await?);
    }
    let latest_reports = match packages.last() {
        Some(p) => s
            .store
            .batch_reports(&batch_id, p.seq)
            .await?
            .into_iter()
            .map(|r| BatchReportOut {
                device_id: r.device_id,
                success: r.success,
                detail: r.detail,
                received_at: r.received_at,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(BatchOut {
        batch_id,
        packages: out,
        latest_reports,
    }))
}

// --- device side -----------------------------------------------------------------------

/// Whether an `If-None-Match` value names `etag` (a list of tags, weak or strong, or `*`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
    })
}

/// The CoAP ETag of a package: the first 8 bytes of SHA-256 of its bytes, i.e. the first
/// 16 hex digits of its HTTP entity tag.
pub fn coap_etag(etag: &str) -> Option<Vec<u8>> {
    hex::decode(etag.trim_matches('"').get(..16)?).ok()
}

fn fetch_metric(transport: &'static str, status: u16) {
    metrics::counter!(BATCH_FETCHES, "transport" => transport, "status" => status.to_string())
        .increment(1);
}

async fn get_package(
    State(s): State<Arc<AppState>>,
    Path(batch_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let pkg = match s.store.latest_batch_package(&batch_id).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            fetch_metric("http", 404);
            return (StatusCode::NOT_FOUND, "no package for this batch\n").into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "batch package lookup failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    };
    let cache = HeaderValue::from_static(otrp_tam::batch::CACHE_CONTROL);
    let etag = HeaderValue::from_str(&pkg.etag).ok();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &pkg.etag));
    let mut r = if not_modified {
        fetch_metric("http", 304);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fetch_metric("http", 200);
        let mut r = pkg.bytes.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(otrp_tam::batch::CONTENT_TYPE),
        );
        r
    };
    if let Some(e) = etag {
        r.headers_mut().insert(header::ETAG, e);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, cache);
    r
}

/// `?seq=N` of a report.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// The batch sequence number the report is about.
    pub seq: u64,
}

/// What recording a report did, for HTTP and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Recorded: (device, applied).
    Recorded(String, bool),
    /// Refused: (HTTP status, why).
    Refused(u16, String),
}

/// Verifies and records a device's report on package `seq` of `batch_id` (a group of
/// one: the same checks, outcomes and metrics as the HTTP route's grouped recording).
pub async fn record_report(s: &AppState, batch_id: &str, seq: u64, body: &[u8]) -> ReportOutcome {
    record_group(s, &mut KnownPackages::default(), batch_id, seq, &[body])
        .await
        .pop()
        .unwrap_or_else(|| ReportOutcome::Refused(503, "no outcome".into()))
}

/// Packages the report recorder has seen in the store. Package rows are never changed nor
/// deleted once stored, so a positive answer stays true: this caches the database, it
/// does not replace it (an unknown package is asked again every time).
#[derive(Debug, Default)]
struct KnownPackages(HashSet<(String, u64)>);

impl KnownPackages {
    /// Packages remembered at most (then forgotten all at once).
    const MAX: usize = 1024;

    async fn exists(&mut self, s: &AppState, batch_id: &str, seq: u64) -> Result<bool, StoreError> {
        if self.0.contains(&(batch_id.to_owned(), seq)) {
            return Ok(true);
        }
        let found = s.store.batch_package_exists(batch_id, seq).await?;
        if found {
            if self.0.len() >= Self::MAX {
                self.0.clear();
            }
            self.0.insert((batch_id.to_owned(), seq));
        }
        Ok(found)
    }
}

/// Verifies and records reports on one package with one key lookup and one write
/// ([`otrp_tam::batch::record_reports`]): one outcome per body, in order. 404 when the
/// package does not exist, 403 for a report that does not verify (only that one), 503
/// for all when the store fails.
async fn record_group(
    s: &AppState,
    known: &mut KnownPackages,
    batch_id: &str,
    seq: u64,
    bodies: &[&[u8]],
) -> Vec<ReportOutcome> {
    let all = |o: ReportOutcome| vec![o; bodies.len()];
    match known.exists(s, batch_id, seq).await {
        Ok(true) => {}
        Ok(false) => {
            return all(ReportOutcome::Refused(
                404,
                format!("batch {batch_id} has no package {seq}"),
            ))
        }
        Err(e) => return all(ReportOutcome::Refused(503, format!("store: {e}"))),
    }
    let ctx = ReportContext {
        batch_id,
        seq,
        master: s.report_masters.get(batch_id).map(|k| &**k),
    };
    let outcomes =
        match record_reports_with(s.store.as_ref(), s.provider, &ctx, bodies, now()).await {
            Ok(o) => o,
            Err(e) => return all(ReportOutcome::Refused(503, format!("store: {e}"))),
        };
    outcomes
        .into_iter()
        .zip(bodies)
        .map(|(o, body)| match o {
            Ok(report) => {
                let result = if report.success { "applied" } else { "failed" };
                let auth = report.auth.as_str();
                metrics::counter!(BATCH_REPORTS, "result" => result, "auth" => auth).increment(1);
                tracing::debug!(batch = batch_id, seq, device = %report.device_id, result, auth, "batch report");
                ReportOutcome::Recorded(report.device_id, report.success)
            }
            Err(BatchError::Store(e)) => ReportOutcome::Refused(503, format!("store: {e}")),
            Err(e) => {
                let auth = ReportAuth::claimed_by(body).as_str();
                metrics::counter!(BATCH_REPORTS, "result" => "refused", "auth" => auth).increment(1);
                ReportOutcome::Refused(
                    403,
                    format!("{e} (signed reports are checked with the Agent key a device's first TEEP session binds, MAC'd ones with the batch's [[batch_report_master]])"),
                )
            }
        })
        .collect()
}

/// One report waiting for the recorder, and where its outcome goes.
struct PendingReport {
    batch_id: String,
    seq: u64,
    body: Bytes,
    reply: oneshot::Sender<ReportOutcome>,
}

/// Reports that may wait for the recorder (a handler beyond it waits to queue).
const REPORT_QUEUE: usize = 4 * MAX_REPORT_GROUP;

/// Coalesces the reports of concurrent `POST /tam/batch/{id}/reports` into groups: the
/// handlers queue them to one task that takes what is queued (up to
/// [`MAX_REPORT_GROUP`]), groups it by package and records each group with one package
/// check, one Agent-key lookup and one write ([`record_group`]), then answers each
/// handler. Under light load a group is one report. The task starts with the first
/// report and ends when the routes are dropped.
#[derive(Debug, Default)]
struct ReportRecorder {
    tx: OnceLock<mpsc::Sender<PendingReport>>,
}

impl ReportRecorder {
    async fn record(
        &self,
        s: &Arc<AppState>,
        batch_id: String,
        seq: u64,
        body: Bytes,
    ) -> ReportOutcome {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(REPORT_QUEUE);
            tokio::spawn(run_recorder(s.clone(), rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let pending = PendingReport {
            batch_id: batch_id.clone(),
            seq,
            body: body.clone(),
            reply,
        };
        if tx.send(pending).await.is_ok() {
            if let Ok(outcome) = answer.await {
                return outcome;
            }
        }
        // The recorder is gone (its runtime stopped): record here (reports are idempotent).
        record_report(s, &batch_id, seq, &body).await
    }
}

async fn run_recorder(s: Arc<AppState>, mut rx: mpsc::Receiver<PendingReport>) {
    let mut known = KnownPackages::default();
    let mut queued = Vec::with_capacity(MAX_REPORT_GROUP);
    while rx.recv_many(&mut queued, MAX_REPORT_GROUP).await > 0 {
        let mut groups: Vec<Vec<PendingReport>> = Vec::new();
        for p in queued.drain(..) {
            match groups
                .iter_mut()
                .find(|g| g[0].batch_id == p.batch_id && g[0].seq == p.seq)
            {
                Some(g) => g.push(p),
                None => groups.push(vec![p]),
            }
        }
        for group in groups {
            let bodies: Vec<&[u8]> = group.iter().map(|p| p.body.as_ref()).collect();
            let (batch_id, seq) = (group[0].batch_id.as_str(), group[0].seq);
            tracing::debug!(
                batch = batch_id,
                seq,
                reports = group.len(),
                "batch report group"
            );
            let outcomes = record_group(&s, &mut known, batch_id, seq, &bodies).await;
            for (p, o) in group.into_iter().zip(outcomes) {
                // The handler may have gone (client disconnected): the report stays recorded.
                let _ = p.reply.send(o);
            }
        }
    }
}

async fn post_report(
    State(s): State<Arc<AppState>>,
    Extension(recorder): Extension<Arc<ReportRecorder>>,
    Path(batch_id): Path<String>,
    Query(q): Query<ReportQuery>,
    body: Bytes,
) -> Response {
    match recorder.record(&s, batch_id, q.seq, body).await {
        ReportOutcome::Recorded(..) => StatusCode::NO_CONTENT.into_response(),
        ReportOutcome::Refused(status, why) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{why}\n"),
        )
            .into_response(),
    }
}

/// The CoAP GET of `/batch/{id}`: (code, body, ETag option). `etags` are the client's
/// ETag options (2.03 Valid when one names the current package).
pub async fn coap_get(
    s: &AppState,
    batch_id: &str,
    etags: &[Vec<u8>],
) -> (otrp_coap::Code, Vec<u8>, Option<Vec<u8>>) {
    match s.store.latest_batch_package(batch_id).await {
        Ok(Some(p)) => {
            let tag = coap_etag(&p.etag);
            if tag.as_ref().is_some_and(|t| etags.contains(t)) {
                fetch_metric("coap", 304);
                (otrp_coap::Code::Valid, Vec::new(), tag)
            } else {
                fetch_metric("coap", 200);
                (otrp_coap::Code::Content, p.bytes, tag)
            }
        }
        Ok(None) => {
            fetch_metric("coap", 404);
            (otrp_coap::Code::NotFound, Vec::new(), None)
        }
        Err(e) => {
            tracing::error!(error = %e, "batch package lookup failed");
            (otrp_coap::Code::ServiceUnavailable, Vec::new(), None)
        }
    }
}

/// The OpenAPI paths of the batch admin API (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(publish, list_batches, get_batch),
    components(schemas(PublishBatch, BatchPackageOut, BatchReportOut, BatchOut)),
    tags((name = "batches", description = "Batch mode: one TAM-signed package for every device of a batch, served at GET /tam/batch/{batch_id} (cacheable, ETag) and over CoAP at /batch/{batch_id}; devices report at POST /tam/batch/{batch_id}/reports?seq=N (over CoAP: POST /batch/{batch_id}/reports?seq=N)."))
)]
pub struct BatchApiDoc;

/// The batch routes: the admin API and the device-facing `GET /tam/batch/{id}` and
/// `POST /tam/batch/{id}/reports`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/batches", get(list_batches))
        .route("/api/v1/batches/{batch_id}", get(get_batch))
        .route("/api/v1/batches/{batch_id}/packages", post(publish))
        .route("/tam/batch/{batch_id}", get(get_package))
        .route(
            "/tam/batch/{batch_id}/reports",
            post(post_report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
        )
        // The report recorder of these routes (its task ends when they are dropped).
        .layer(Extension(Arc::new(ReportRecorder::default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_lists_weak_tags_and_star() {
        let e = "\"0011\"";
        assert!(etag_matches("\"0011\"", e));
        assert!(etag_matches("\"ffff\", W/\"0011\"", e));
        assert!(etag_matches("*", e));
        assert!(!etag_matches("\"0012\"", e));
        assert_eq!(
            coap_etag("\"00112233445566778899aabbccddeeff\""),
            Some(vec![0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77])
        );
        assert_eq!(coap_etag("\"0011\""), None);
    }
}
