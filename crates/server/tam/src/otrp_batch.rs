//! The OTrP-profile batch command package served (our extension; wire format in
//! [`otrp_json::batch`], built by [`otrp_tam::otrp_batch::build_batch_package`], applied
//! by `otrp_agent::otrp::OtrpAgent::handle_batch`; docs/CONSTRAINED.md).
//!
//! Devices of one **model** share a device key (provisioned with `otrp device provision
//! --batch MODEL`, the same key as TEEP batch mode). The model name is also the package
//! id (`pkgid`) of its package stream: one anti-rollback counter per model on the device,
//! one sequence of packages per model in the store (`otrp_batch_packages`).
//!
//! # Admin API
//!
//! * `PUT /api/v1/otrp-batches/{model}/key` (**OEM only**: it provisioned the devices and
//!   holds `PKI_DIR/batch/MODEL.pub.pem`): `{"public_key_pem", "tee"}` registers the
//!   model's shared device public key (P-256 or RSA) and the `tee` routing name of its TEE.
//!   Replacing it (key rotation) is allowed and audited (`otrp_batch.key`).
//! * `POST /api/v1/otrp-batches/{model}/packages`: `{"components": ["SD/TA"], "update":
//!   false, "create_sd": true}`. For each component (the caller's own; the newest ready
//!   manifest), the TAM adds a CreateSD of its SD (once per SD, unless `create_sd` is
//!   false; the SP's newest registered `spcert`), then InstallTA (UpdateTA with
//!   `update`), every `content` and TA key encrypted to the model's registered key; it
//!   signs the whole list **once** with its OTrP key (`kid` + `x5c`, as its OTrP
//!   requests) and stores it with the next sequence number of the model (the store
//!   refuses one that does not grow, also when two replicas race). Tenancy as TEEP batch:
//!   the OEM or an approved SP; the first publisher owns the model's package stream.
//!   Audited as `otrp_batch.publish`.
//! * `GET /api/v1/otrp-batches` (newest package per model the caller may see) and
//!   `GET /api/v1/otrp-batches/{model}` (every package with pass/fail result counts, the
//!   results on the newest one).
//!
//! # Devices
//!
//! * `GET /tam/otrp-batch/{model}`: the newest package, `application/otrp+json`, strong
//!   `ETag`, `Cache-Control: public, max-age=60, must-revalidate`, 304 for a matching
//!   `If-None-Match`, 404 when none. Cacheable for the reason the TEEP package is (see
//!   [`crate::batch`]): the same TAM-signed bytes for every device, no device data, and the
//!   device's per-`pkgid` sequence check refuses anything older than it applied.
//! * `POST /tam/otrp-batch/{model}/results`: a device's `{"OTrPBatchResult": JWS}`. It is
//!   verified with [`otrp_json::batch::verify_batch_result`] against the TEE certificate
//!   the TAM **bound at an earlier OTrP GetDeviceState** of that device (found by the
//!   result's `did`; the TEE certificate was then validated against the TEE roots and,
//!   when required, the TFW endorsement): unknown `did`, a revoked device or a bad
//!   signature answer 403; a `pkgid` other than `{model}` 400; a `seq` never published
//!   404. Recorded per (model, seq, device), the newest result wins; 204.
//!
//! Kept apart from [`crate::batch`] (TEEP) on purpose: other paths, other tables
//! (migration `0005_otrp_batch`), so each profile's counters and tenancy stay separate.
//!
//! Metrics: `otrp_otrp_batch_packages_total`, `otrp_otrp_batch_fetches_total{status}`,
//! `otrp_otrp_batch_results_total{result}` (`pass`, `fail`, `refused`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use otrp_crypto::PublicKey;
use otrp_json::batch::BatchResultTbs;
use otrp_json::{Signer, Status};
use otrp_pki::cert::CertInfo;
use otrp_store::{
    AccountKind, BatchPackageRecord, BatchReportRecord, OtrpBatchModelRecord, StoreError,
};
use otrp_tam::batch::CountingProvider;
use otrp_tam::otrp::ta_of_component;
use otrp_tam::otrp_batch::{
    build_batch_package, with_oem_authorizations, BatchCommand, BatchHeader,
};
use otrp_tam::{component_id_of, AdminError, Caller};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::api::{component_display, parse_component, ErrorBody};
use crate::batch::etag_matches;
use crate::state::{now, AppState};
use crate::teep::OTRP_JSON;

/// OTrP batch packages published.
pub const OTRP_BATCH_PACKAGES: &str = "otrp_otrp_batch_packages_total";
/// Package fetches by status (`200`, `304`, `404`).
pub const OTRP_BATCH_FETCHES: &str = "otrp_otrp_batch_fetches_total";
/// Device results by outcome (`pass`, `fail`, `refused`).
pub const OTRP_BATCH_RESULTS: &str = "otrp_otrp_batch_results_total";

/// The device-facing path prefix (`GET /tam/otrp-batch/{model}`, `POST …/results`).
pub const OTRP_BATCH_PATH: &str = "/tam/otrp-batch";

/// Largest result body accepted (a signed result is well under 2 KiB).
pub const MAX_RESULT_BYTES: usize = 16 * 1024;

/// An error of the OTrP batch API, in the admin API's `{"error", "hint"}` shape.
#[derive(Debug)]
pub struct OtrpBatchApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

impl OtrpBatchApiError {
    fn internal(e: impl std::fmt::Display) -> Self {
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "check the TAM server log; retry once the store is reachable",
        )
    }
}

impl From<AdminError> for OtrpBatchApiError {
    fn from(e: AdminError) -> Self {
        let msg = e.to_string();
        match e {
            AdminError::Unauthenticated => err(
                StatusCode::UNAUTHORIZED,
                msg,
                "send `Authorization: Bearer <API token>` with a token made by the OEM",
            ),
            AdminError::Forbidden(_) | AdminError::NotApproved(_) => err(
                StatusCode::FORBIDDEN,
                msg,
                "publishing OTrP batch packages needs the OEM or an approved SP; registering a model key needs the OEM",
            ),
            AdminError::NotFound(_) => err(
                StatusCode::NOT_FOUND,
                msg,
                "list your components with GET /api/v1/components, your OTrP batches with GET /api/v1/otrp-batches",
            ),
            AdminError::Store(s) => s.into(),
            other => err(StatusCode::BAD_REQUEST, other.to_string(), "fix the request"),
        }
    }
}

impl From<StoreError> for OtrpBatchApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SequenceNotGrowing { latest, .. } => err(
                StatusCode::CONFLICT,
                e.to_string(),
                format!("another package of this model was published meanwhile (sequence {latest}); retry"),
            ),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for OtrpBatchApiError {
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

type R<T> = Result<T, OtrpBatchApiError>;

fn err(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> OtrpBatchApiError {
    OtrpBatchApiError {
        status,
        error: error.into(),
        hint: hint.into(),
    }
}

fn check_model(model: &str) -> R<()> {
    if otrp_tam::batch::is_valid_batch_id(model) {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            format!("invalid model name {model:?}"),
            "use 1 to 64 characters among A-Z a-z 0-9 - _ . (the name given to `otrp device provision --batch`)",
        ))
    }
}

fn is_oem(c: &Caller) -> bool {
    c.account.kind == AccountKind::Oem
}

fn may_see(c: &Caller, owner: &str) -> bool {
    is_oem(c) || c.account.id == owner
}

// --- admin API -------------------------------------------------------------------------

/// `PUT /api/v1/otrp-batches/{model}/key`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterModelKey {
    /// The model's shared device public key, SPKI PEM (`PKI_DIR/batch/MODEL.pub.pem`).
    pub public_key_pem: String,
    /// The `tee` routing name of the model's TEE (`OpenTrust-Sim` for the simulated TEE).
    pub tee: String,
}

/// A model's registered shared key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelKeyOut {
    /// Model.
    pub model: String,
    /// The key type (`P-256`, `RSA`).
    pub key_type: String,
    /// The key, SPKI PEM.
    pub public_key_pem: String,
    /// The TEE routing name.
    pub tee: String,
    /// Who registered it.
    pub registered_by: String,
    /// When (Unix seconds).
    pub updated_at: u64,
}

/// `POST /api/v1/otrp-batches/{model}/packages`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishOtrpBatch {
    /// TAs to install, SD/TA (your components; the newest ready manifest of each).
    pub components: Vec<String>,
    /// UpdateTA instead of InstallTA (the devices have an older version).
    #[serde(default)]
    pub update: bool,
    /// Create each TA's SD first (default: true for an install, false for an update).
    #[serde(default)]
    pub create_sd: Option<bool>,
}

/// One OTrP batch package as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OtrpBatchPackageOut {
    /// Model (= package id).
    pub model: String,
    /// Sequence number.
    pub seq: u64,
    /// Who published it.
    pub owner: String,
    /// Its commands (`create-sd SD`, `install SD/TA#N`, `update SD/TA#N`).
    pub contents: String,
    /// Size in bytes (the same for every device).
    pub size: usize,
    /// HTTP entity tag.
    pub etag: String,
    /// Signatures the TAM made to build it.
    pub tam_signatures: u64,
    /// Devices that answered `pass`.
    pub applied: u64,
    /// Devices that answered `fail`.
    pub failed: u64,
    /// Publication time (Unix seconds).
    pub created_at: u64,
    /// Where devices fetch the newest package.
    pub url: String,
}

/// One device's result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OtrpBatchResultOut {
    /// Device id.
    pub device_id: String,
    /// `pass` (true) or `fail`.
    pub success: bool,
    /// The OTrP error code and detail on `fail`.
    pub detail: String,
    /// When the TAM received it (Unix seconds).
    pub received_at: u64,
}

/// A model's OTrP batch: its key, packages (oldest first) and the newest one's results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OtrpBatchOut {
    /// Model.
    pub model: String,
    /// The registered key, if any.
    pub key: Option<ModelKeyOut>,
    /// Packages with result counts.
    pub packages: Vec<OtrpBatchPackageOut>,
    /// The results on the newest package.
    pub latest_results: Vec<OtrpBatchResultOut>,
}

fn key_out(m: &OtrpBatchModelRecord) -> ModelKeyOut {
    let key = PublicKey::from_spki_der(&m.public_key).ok();
    ModelKeyOut {
        model: m.model.clone(),
        key_type: key
            .as_ref()
            .map_or("unreadable", |k| k.key_type())
            .to_string(),
        public_key_pem: key.and_then(|k| k.to_spki_pem().ok()).unwrap_or_default(),
        tee: m.tee.clone(),
        registered_by: m.registered_by.clone(),
        updated_at: m.updated_at,
    }
}

async fn package_out(s: &AppState, p: &BatchPackageRecord) -> R<OtrpBatchPackageOut> {
    let c = s.store.otrp_batch_result_counts(&p.batch_id, p.seq).await?;
    Ok(OtrpBatchPackageOut {
        model: p.batch_id.clone(),
        seq: p.seq,
        owner: p.owner.clone(),
        contents: p.contents.clone(),
        size: p.bytes.len(),
        etag: p.etag.clone(),
        tam_signatures: p.tam_signatures,
        applied: c.applied,
        failed: c.failed,
        created_at: p.created_at,
        url: format!("{OTRP_BATCH_PATH}/{}", p.batch_id),
    })
}

async fn register_key_inner(
    s: &AppState,
    c: &Caller,
    model: &str,
    req: &RegisterModelKey,
) -> R<OtrpBatchModelRecord> {
    check_model(model)?;
    if !is_oem(c) {
        return Err(AdminError::Forbidden(
            "only the OEM registers a model's shared device key (it provisioned the devices)"
                .into(),
        )
        .into());
    }
    let key = PublicKey::from_pem(&req.public_key_pem).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("public_key_pem: {e}"),
            "give the SPKI PEM of the model's key (PKI_DIR/batch/MODEL.pub.pem)",
        )
    })?;
    if matches!(key, PublicKey::Ed25519(_)) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "an Ed25519 key cannot receive JWE content",
            "use the model's P-256 (or RSA) key",
        ));
    }
    if req.tee.trim().is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "empty tee",
            "give the TEE routing name its devices report (OpenTrust-Sim for the simulated TEE)",
        ));
    }
    let public_key = key.to_spki_der().map_err(OtrpBatchApiError::internal)?;
    let rec = OtrpBatchModelRecord {
        model: model.into(),
        public_key,
        tee: req.tee.trim().into(),
        registered_by: c.account.id.clone(),
        updated_at: now(),
    };
    s.store.put_otrp_batch_model(&rec).await?;
    Ok(rec)
}

/// Registers (or replaces) a model's shared device public key (OEM only).
#[utoipa::path(put, path = "/api/v1/otrp-batches/{model}/key", tag = "otrp-batches",
    request_body = RegisterModelKey,
    params(("model" = String, Path, description = "Model (the batch name of its devices)")),
    responses((status = 200, body = ModelKeyOut), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn register_key(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(model): Path<String>,
    Json(req): Json<RegisterModelKey>,
) -> R<Json<ModelKeyOut>> {
    let c = crate::api::authenticate(&s, &h).await?;
    let r = register_key_inner(&s, &c, &model, &req).await;
    let detail = match &r {
        Ok(m) => format!("key registered (tee {})", m.tee),
        Err(e) => format!("refused: {}", e.error),
    };
    crate::api::audit(&s, &c.account.id, "otrp_batch.key", &model, &detail).await;
    Ok(Json(key_out(&r?)))
}

/// What a publish request resolves to: the commands and their description.
struct Plan {
    commands: Vec<BatchCommand>,
    contents: Vec<String>,
}

async fn plan(s: &AppState, c: &Caller, tamid: &str, req: &PublishOtrpBatch) -> R<Plan> {
    if req.components.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "an OTrP batch package needs a component",
            "name the TAs with \"components\": [\"SD/TA\"]",
        ));
    }
    let create_sd = req.create_sd.unwrap_or(!req.update);
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut plan = Plan {
        commands: Vec::new(),
        contents: Vec::new(),
    };
    for name in &req.components {
        let key = parse_component(name).map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                format!("invalid component id {name:?}"),
                "name a TA as SD/TA (e.g. sd1/door-lock-ta)",
            )
        })?;
        // Ownership first: another SP's component answers 404.
        let comp = s.admin.component(c, &key).await?;
        let (sdname, taid) = component_id_of(&key)
            .and_then(|id| ta_of_component(&id))
            .filter(|(sd, _)| *sd == comp.sd_name)
            .ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("{name} is not an OTrP-shaped TA (SD/TA in its own SD)"),
                    "name a TA component as SD/TA",
                )
            })?;
        let m = s.store.latest_manifest(&key, true).await?.ok_or_else(|| {
            err(
                StatusCode::CONFLICT,
                format!(
                    "component {} has no ready manifest",
                    component_display(&key)
                ),
                "publish it first (`otrp sp publish`), and co-sign it when the policy asks",
            )
        })?;
        if create_sd && created.insert(sdname.clone()) {
            let cert = s.store.sp_certs(&comp.sp_id).await?.pop().ok_or_else(|| {
                err(
                    StatusCode::CONFLICT,
                    format!("SP {} has no registered TA-signer certificate (spcert)", comp.sp_id),
                    "register it with POST /api/v1/sp/certs (or create the SD through POST /api/v1/sds)",
                )
            })?;
            plan.contents.push(format!("create-sd {sdname}"));
            plan.commands.push(BatchCommand::CreateSd {
                sdname: sdname.clone(),
                spid: comp.sp_id.clone(),
                spcert: cert.cert,
                tamid: tamid.into(),
            });
        }
        let verb = if req.update { "update" } else { "install" };
        plan.contents
            .push(format!("{verb} {}#{}", component_display(&key), m.seq));
        plan.commands.push(BatchCommand::InstallTa {
            sdname,
            spid: comp.sp_id.clone(),
            taid,
            tamid: tamid.into(),
            envelope: m.envelope,
            update: req.update,
        });
    }
    Ok(plan)
}

async fn publish_inner(
    s: &AppState,
    c: &Caller,
    model: &str,
    req: &PublishOtrpBatch,
) -> R<BatchPackageRecord> {
    check_model(model)?;
    match c.account.kind {
        AccountKind::Oem => {}
        AccountKind::Sp if c.account.approved => {}
        AccountKind::Sp => {
            return Err(AdminError::NotApproved(format!("SP {}", c.account.id)).into());
        }
        AccountKind::DeviceAdmin => {
            return Err(AdminError::Forbidden(
                "only the OEM or an SP publishes OTrP batch packages".into(),
            )
            .into());
        }
    }
    if let Some(first) = s.store.otrp_batch_packages(Some(model)).await?.first() {
        if !may_see(c, &first.owner) {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("the OTrP batch of model {model} belongs to {}", first.owner),
                "publish for a model of your own, or ask the OEM",
            ));
        }
    }
    // The OEM authorizations per SP this TAM sends with a CreateSD (OEM-gated devices),
    // as loaded at start for per-device OTrP.
    let oem_authorizations = s
        .otrp
        .as_ref()
        .map(|o| o.oem_authorizations().to_vec())
        .unwrap_or_default();
    let otrp = crate::otrp::session_config(&s.identity, &s.config, Vec::new()).map_err(|why| {
        err(
            StatusCode::CONFLICT,
            format!("this TAM cannot sign OTrP: {why}"),
            "start the TAM with a P-256 or RSA key and a certificate carrying a tamid (--pki DIR)",
        )
    })?;
    let model_rec = s.store.otrp_batch_model(model).await?.ok_or_else(|| {
        err(
            StatusCode::CONFLICT,
            format!("no shared device key registered for model {model}"),
            "the OEM registers it first: `otrp sp batch register-key --profile otrp --model MODEL --public-key PKI_DIR/batch/MODEL.pub.pem`",
        )
    })?;
    let batch_key =
        PublicKey::from_spki_der(&model_rec.public_key).map_err(OtrpBatchApiError::internal)?;
    let plan = plan(s, c, &otrp.tamid, req).await?;
    let kid = otrp_crypto::jwk::thumbprint_b64(&otrp.key.public_key(), s.provider);
    let x5c: Vec<String> = otrp.chain.iter().map(|d| STANDARD.encode(d)).collect();
    let signer = Signer::new(&otrp.key).with_kid(kid).with_x5c(x5c);
    // Sign once; retry when another replica published the same sequence number meanwhile.
    for _ in 0..3 {
        let seq = s
            .store
            .latest_otrp_batch_package(model)
            .await?
            .map_or(1, |p| p.seq + 1);
        let counting = CountingProvider::new(s.provider);
        let mut rng = rand::rngs::OsRng;
        let bytes = build_batch_package(
            &counting,
            &mut rng,
            std::slice::from_ref(&signer),
            &batch_key,
            &BatchHeader {
                pkgid: model.into(),
                seq,
                model: model.into(),
                tee: model_rec.tee.clone(),
            },
            &plan.commands,
        )
        .and_then(|b| with_oem_authorizations(&b, &plan.commands, &oem_authorizations))
        .map_err(|e| {
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
                "check the TAM log",
            )
        })?;
        let signatures = counting.signatures();
        let h = s.provider.sha256(&bytes);
        let rec = BatchPackageRecord {
            batch_id: model.into(),
            seq,
            owner: c.account.id.clone(),
            contents: plan.contents.join(", "),
            etag: format!("\"{}\"", hex::encode(&h[..16])),
            bytes,
            tam_signatures: signatures,
            created_at: now(),
        };
        match s.store.insert_otrp_batch_package(&rec).await {
            Ok(()) => {
                metrics::counter!(OTRP_BATCH_PACKAGES).increment(1);
                tracing::info!(model, seq, size = rec.bytes.len(), signatures, contents = %rec.contents, "OTrP batch package published");
                return Ok(rec);
            }
            Err(StoreError::SequenceNotGrowing { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(err(
        StatusCode::CONFLICT,
        format!("model {model}: other packages kept being published meanwhile"),
        "retry",
    ))
}

/// Builds, signs (once) and stores the next OTrP batch package of a model; its devices
/// fetch it at `GET /tam/otrp-batch/{model}`.
#[utoipa::path(post, path = "/api/v1/otrp-batches/{model}/packages", tag = "otrp-batches",
    request_body = PublishOtrpBatch,
    params(("model" = String, Path, description = "Model (the batch name of its devices)")),
    responses((status = 201, body = OtrpBatchPackageOut), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn publish(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(model): Path<String>,
    Json(req): Json<PublishOtrpBatch>,
) -> R<(StatusCode, Json<OtrpBatchPackageOut>)> {
    let c = crate::api::authenticate(&s, &h).await?;
    let r = publish_inner(&s, &c, &model, &req).await;
    let detail = match &r {
        Ok(p) => format!("seq {} ({} bytes): {}", p.seq, p.bytes.len(), p.contents),
        Err(e) => format!("refused: {}", e.error),
    };
    crate::api::audit(&s, &c.account.id, "otrp_batch.publish", &model, &detail).await;
    let rec = r?;
    Ok((StatusCode::CREATED, Json(package_out(&s, &rec).await?)))
}

/// The newest OTrP batch package of each model the caller may see.
#[utoipa::path(get, path = "/api/v1/otrp-batches", tag = "otrp-batches",
    responses((status = 200, body = [OtrpBatchPackageOut])), security(("bearer" = [])))]
async fn list(State(s): State<Arc<AppState>>, h: HeaderMap) -> R<Json<Vec<OtrpBatchPackageOut>>> {
    let c = crate::api::authenticate(&s, &h).await?;
    let all = s.store.otrp_batch_packages(None).await?;
    let mut out = Vec::new();
    for group in all.chunk_by(|a, b| a.batch_id == b.batch_id) {
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            if may_see(&c, &first.owner) {
                out.push(package_out(&s, last).await?);
            }
        }
    }
    Ok(Json(out))
}

/// One model: its key, every package with pass/fail counts, the newest one's results.
/// The OEM sees every model (also one with a key and no package yet); an SP the models
/// whose packages it publishes.
#[utoipa::path(get, path = "/api/v1/otrp-batches/{model}", tag = "otrp-batches",
    params(("model" = String, Path, description = "Model")),
    responses((status = 200, body = OtrpBatchOut), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_one(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(model): Path<String>,
) -> R<Json<OtrpBatchOut>> {
    let c = crate::api::authenticate(&s, &h).await?;
    let packages = s.store.otrp_batch_packages(Some(&model)).await?;
    let key = s.store.otrp_batch_model(&model).await?;
    let visible = match packages.first() {
        Some(p) => may_see(&c, &p.owner),
        None => is_oem(&c) && key.is_some(),
    };
    if !visible {
        return Err(AdminError::NotFound(format!("OTrP batch of model {model}")).into());
    }
    let mut out = Vec::new();
    for p in &packages {
        out.push(package_out(&s, p).await?);
    }
    let latest_results = match packages.last() {
        Some(p) => s
            .store
            .otrp_batch_results(&model, p.seq)
            .await?
            .into_iter()
            .map(|r| OtrpBatchResultOut {
                device_id: r.device_id,
                success: r.success,
                detail: r.detail,
                received_at: r.received_at,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(OtrpBatchOut {
        model,
        key: key.as_ref().map(key_out),
        packages: out,
        latest_results,
    }))
}

// --- devices ---------------------------------------------------------------------------

fn fetch_metric(status: u16) {
    metrics::counter!(OTRP_BATCH_FETCHES, "status" => status.to_string()).increment(1);
}

async fn get_package(
    State(s): State<Arc<AppState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Response {
    let pkg = match s.store.latest_otrp_batch_package(&model).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            fetch_metric(404);
            return (
                StatusCode::NOT_FOUND,
                "no OTrP batch package for this model\n",
            )
                .into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "OTrP batch package lookup failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
        }
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &pkg.etag));
    let mut r = if not_modified {
        fetch_metric(304);
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fetch_metric(200);
        let mut r = pkg.bytes.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(OTRP_JSON));
        r
    };
    if let Ok(e) = HeaderValue::from_str(&pkg.etag) {
        r.headers_mut().insert(header::ETAG, e);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(otrp_tam::batch::CACHE_CONTROL),
    );
    r
}

/// What recording a result did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Recorded: (device id, pass).
    Recorded(String, bool),
    /// Refused: (HTTP status, why).
    Refused(u16, String),
}

/// The result's body, read before verification only to find the device's key.
fn unverified_result(body: &[u8]) -> Result<BatchResultTbs, String> {
    #[derive(Deserialize)]
    struct Env {
        #[serde(rename = "OTrPBatchResult")]
        jws: serde_json::Value,
    }
    let env: Env = serde_json::from_slice(body)
        .map_err(|e| format!("not an {{\"OTrPBatchResult\": JWS}}: {e}"))?;
    let payload = env
        .jws
        .get("payload")
        .and_then(|p| p.as_str())
        .ok_or("the JWS has no payload")?;
    let bytes = otrp_json::json::b64url_decode(payload, "payload").map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("payload: {e}"))
}

/// Verifies and records one device's `OTrPBatchResult` on the package stream of `model`.
pub async fn record_result(s: &AppState, model: &str, body: &[u8]) -> ResultOutcome {
    let refused = |status: u16, why: String| {
        metrics::counter!(OTRP_BATCH_RESULTS, "result" => "refused").increment(1);
        ResultOutcome::Refused(status, why)
    };
    let claimed = match unverified_result(body) {
        Ok(t) => t,
        Err(why) => return refused(400, why),
    };
    if claimed.pkgid != model {
        return refused(
            400,
            format!(
                "a result on package {:?} posted for model {model}",
                claimed.pkgid
            ),
        );
    }
    match s.store.otrp_batch_package(model, claimed.seq).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refused(
                404,
                format!("model {model} has no OTrP batch package {}", claimed.seq),
            )
        }
        Err(e) => return ResultOutcome::Refused(503, format!("store: {e}")),
    }
    let dev = match s.store.otrp_device_by_did(&claimed.did).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return refused(
                403,
                "no OTrP device with this did: a device's first OTrP session (GetDeviceState) binds the TEE certificate its results are checked with".into(),
            )
        }
        Err(e) => return ResultOutcome::Refused(503, format!("store: {e}")),
    };
    match s.store.device(&dev.device_id).await {
        Ok(Some(d)) if d.revoked => {
            return refused(403, format!("device {} is revoked", dev.device_id))
        }
        Ok(_) => {}
        Err(e) => return ResultOutcome::Refused(503, format!("store: {e}")),
    }
    let key = match CertInfo::from_der(&dev.tee_cert).and_then(|c| c.public_key()) {
        Ok(k) => k,
        Err(e) => return refused(403, format!("the bound TEE certificate: {e}")),
    };
    let verified = match otrp_json::batch::verify_batch_result(s.provider, body, &key) {
        Ok(t) => t,
        Err(e) => {
            return refused(
                403,
                format!("the result does not verify with the device's TEE key: {e}"),
            )
        }
    };
    let pass = verified.status == Status::Pass;
    let detail = match (&verified.code, &verified.detail) {
        (Some(c), Some(d)) => format!("{}: {d}", c.as_str()),
        (Some(c), None) => c.as_str().to_string(),
        (None, Some(d)) => d.clone(),
        (None, None) => String::new(),
    };
    let rec = BatchReportRecord {
        batch_id: model.into(),
        seq: verified.seq,
        device_id: dev.device_id.clone(),
        success: pass,
        detail,
        received_at: now(),
    };
    if let Err(e) = s.store.put_otrp_batch_result(&rec).await {
        return ResultOutcome::Refused(503, format!("store: {e}"));
    }
    let result = if pass { "pass" } else { "fail" };
    metrics::counter!(OTRP_BATCH_RESULTS, "result" => result).increment(1);
    tracing::debug!(model, seq = verified.seq, device = %rec.device_id, result, "OTrP batch result");
    ResultOutcome::Recorded(rec.device_id, pass)
}

async fn post_result(
    State(s): State<Arc<AppState>>,
    Path(model): Path<String>,
    body: Bytes,
) -> Response {
    match record_result(&s, &model, &body).await {
        ResultOutcome::Recorded(..) => StatusCode::NO_CONTENT.into_response(),
        ResultOutcome::Refused(status, why) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{why}\n"),
        )
            .into_response(),
    }
}

/// The OpenAPI paths of the OTrP batch admin API (merged into `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(register_key, publish, list, get_one),
    components(schemas(RegisterModelKey, ModelKeyOut, PublishOtrpBatch, OtrpBatchPackageOut,
        OtrpBatchResultOut, OtrpBatchOut)),
    tags((name = "otrp-batches", description = "OTrP-profile batch command package (our extension): one TAM-signed OTrPBatchPackage per device model sharing a device key, served at GET /tam/otrp-batch/{model} (cacheable, ETag); devices post their OTrPBatchResult to POST /tam/otrp-batch/{model}/results."))
)]
pub struct OtrpBatchApiDoc;

/// The OTrP batch routes: the admin API and the device-facing GET and results POST.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/otrp-batches", get(list))
        .route("/api/v1/otrp-batches/{model}", get(get_one))
        .route("/api/v1/otrp-batches/{model}/key", put(register_key))
        .route("/api/v1/otrp-batches/{model}/packages", post(publish))
        .route("/tam/otrp-batch/{model}", get(get_package))
        .route(
            "/tam/otrp-batch/{model}/results",
            post(post_result).layer(DefaultBodyLimit::max(MAX_RESULT_BYTES)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_results_are_read_or_refused_without_panicking() {
        assert!(unverified_result(b"").is_err());
        assert!(unverified_result(b"{\"OTrPBatchResult\": {}}").is_err());
        assert!(unverified_result(b"{\"OTrPBatchResult\": {\"payload\": \"!!\"}}").is_err());
        let tbs = BatchResultTbs {
            ver: "1.0".into(),
            pkgid: "door-lock".into(),
            seq: 3,
            did: "ZGlk".into(),
            status: Status::Pass,
            applied: 2,
            code: None,
            detail: None,
        };
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&tbs).unwrap_or_default());
        let body = format!(
            "{{\"OTrPBatchResult\": {{\"payload\": \"{payload}\", \"protected\": \"\", \"signature\": \"\"}}}}"
        );
        assert_eq!(unverified_result(body.as_bytes()), Ok(tbs));
    }
}
