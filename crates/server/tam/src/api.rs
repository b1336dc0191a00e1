//! The admin REST API (JSON) under `/api/v1`, for the OEM, SPs and device admins.
//!
//! Every call carries `Authorization: Bearer <API token>` (tokens are made by
//! `POST /api/v1/accounts`; the first OEM token is written to `DATA_DIR/oem-api-token`
//! when the store is empty). Tenancy is the TAM core's ([`otrp_tam::Admin`]): an SP
//! sees and changes only its own SDs, components and deployments; another SP's objects
//! answer 404 (the same as objects that do not exist), role refusals answer 403.
//! Errors are `{"error": "...", "hint": "what to do next"}`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use coset::CborSerializable;
use otrp_agent::SdDescriptor;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::PublicKey;
use otrp_store::{
    AccountKind, AuditRecord, ComponentRecord, DeploymentAction, DeploymentRecord, DeploymentState,
    DeviceRecord, ManifestRecord, ManifestStatus, Rollout, StoreError, Target,
};
use otrp_suit::{CborItem, Envelope};
use otrp_tam::{component_id_of, component_key, AdminError, Caller};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::metrics::ADMIN_ACTIONS;
use crate::sd;
use crate::state::{now, AppState};

/// An API error: status, message, and what to do next.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// What to do next.
    pub hint: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
    fn bad(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, hint)
    }
    fn internal(error: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            error.to_string(),
            "check the TAM server log; retry once the store is reachable",
        )
    }
}

impl IntoResponse for ApiError {
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

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let msg = e.to_string();
        match e {
            AdminError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                msg,
                "send `Authorization: Bearer <API token>` with a token made by the OEM",
            ),
            AdminError::Forbidden(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                msg,
                "this action needs another role (OEM, SP or device admin); ask the OEM",
            ),
            AdminError::NotApproved(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                msg,
                "ask the OEM to run `otrp oem approve-sp <your SP id>`",
            ),
            AdminError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                msg,
                "list what you can see with GET /api/v1/components, /sds or /deployments",
            ),
            AdminError::Envelope(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                msg,
                "sign the manifest with an SP key authorized for the SD (`otrp sp publish`)",
            ),
            AdminError::Invalid(_) => ApiError::bad(msg, "fix the request and retry"),
            AdminError::Store(StoreError::SequenceNotGrowing { latest, .. }) => ApiError::new(
                StatusCode::CONFLICT,
                msg,
                format!("publish again with a sequence number above {latest} (--seq)"),
            ),
            AdminError::Store(StoreError::Exists { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                msg,
                "pick another name, or use the existing object",
            ),
            AdminError::Store(s) => ApiError::internal(s),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AdminError::Store(e).into()
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    Ok(authenticate(state, headers).await?)
}

/// The account named by the request's `Authorization: Bearer` API token (the admin and
/// batch APIs).
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Caller, AdminError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(AdminError::Unauthenticated)?;
    state.admin.authenticate(token).await
}

/// Counts an admin action (`result` `refused` when `detail` starts so, else `ok`) and
/// appends it to the audit log (the admin and batch APIs).
pub(crate) async fn audit(state: &AppState, actor: &str, action: &str, object: &str, detail: &str) {
    let result = if detail.starts_with("refused") {
        "refused"
    } else {
        "ok"
    };
    metrics::counter!(ADMIN_ACTIONS, "action" => action.to_owned(), "result" => result)
        .increment(1);
    if let Err(e) = state
        .store
        .append_audit(&AuditRecord {
            id: 0,
            at: now(),
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            detail: detail.into(),
        })
        .await
    {
        tracing::error!(error = %e, action, "audit entry could not be written");
    }
}

async fn audited<T>(
    state: &AppState,
    c: &Caller,
    action: &str,
    object: &str,
    r: ApiResult<T>,
) -> ApiResult<T> {
    let detail = match &r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("refused: {}", e.error),
    };
    audit(state, &c.account.id, action, object, &detail).await;
    r
}

fn is_oem(c: &Caller) -> bool {
    c.account.kind == AccountKind::Oem
}

fn require_device_admin(c: &Caller) -> ApiResult<()> {
    match c.account.kind {
        AccountKind::Oem | AccountKind::DeviceAdmin => Ok(()),
        AccountKind::Sp => Err(AdminError::Forbidden(
            "only the OEM or a device admin manages devices".into(),
        )
        .into()),
    }
}

fn valid_name(what: &str, s: &str) -> ApiResult<()> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::bad(
            format!("invalid {what} {s:?}"),
            "use 1 to 64 characters among A-Z a-z 0-9 - _ .",
        ));
    }
    Ok(())
}

// --- component ids ------------------------------------------------------------------

/// A component id for people: its segments joined by `/` when they are printable text,
/// else the hex of the component key.
pub fn component_display(key: &[u8]) -> String {
    match component_id_of(key) {
        Some(segs)
            if !segs.is_empty()
                && segs.iter().all(|s| {
                    !s.is_empty()
                        && s.iter()
                            .all(|b| b.is_ascii_graphic() && *b != b'/' && *b != b'%')
                }) =>
        {
            segs.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        }
        _ => hex::encode(key),
    }
}

/// Parses a component reference: `sd/name/...` (segments) or the hex of a component key.
pub fn parse_component(s: &str) -> ApiResult<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ApiError::bad(
            "empty component id",
            "name a component as SD/NAME (e.g. sd1/hello-ta)",
        ));
    }
    if !s.contains('/') {
        if let Ok(bytes) = hex::decode(s) {
            if component_id_of(&bytes).is_some() {
                return Ok(bytes);
            }
        }
    }
    let segs: Vec<Vec<u8>> = s.split('/').map(|p| p.as_bytes().to_vec()).collect();
    if segs.iter().any(Vec::is_empty) {
        return Err(ApiError::bad(
            format!("component id {s:?} has an empty segment"),
            "name a component as SD/NAME (e.g. sd1/hello-ta)",
        ));
    }
    Ok(component_key(&segs))
}

// --- accounts ------------------------------------------------------------------------

/// An account as the API shows it (never the token).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountOut {
    /// Account id.
    pub id: String,
    /// `oem`, `sp` or `device-admin`.
    pub kind: String,
    /// OEM approval (SPs).
    pub approved: bool,
    /// Creation time (Unix seconds).
    pub created_at: u64,
}

/// `POST /api/v1/accounts`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateAccount {
    /// Account id (unique).
    pub id: String,
    /// `sp`, `device-admin` or `oem`.
    pub kind: String,
}

/// A new account and its API token (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAccount {
    /// Account id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// The API token: keep it, it is not stored.
    pub token: String,
}

fn account_out(a: &otrp_store::AccountRecord) -> AccountOut {
    AccountOut {
        id: a.id.clone(),
        kind: a.kind.as_str().into(),
        approved: a.approved,
        created_at: a.created_at,
    }
}

/// Who am I.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "accounts",
    responses((status = 200, body = AccountOut), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn whoami(State(s): State<Arc<AppState>>, h: HeaderMap) -> ApiResult<Json<AccountOut>> {
    let c = caller(&s, &h).await?;
    Ok(Json(account_out(&c.account)))
}

/// Creates an account (OEM only) and returns its API token once.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = CreateAccount,
    responses((status = 201, body = CreatedAccount), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_account(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<CreateAccount>,
) -> ApiResult<(StatusCode, Json<CreatedAccount>)> {
    let c = caller(&s, &h).await?;
    let kind = AccountKind::parse(&req.kind).ok_or_else(|| {
        ApiError::bad(
            format!("unknown account kind {:?}", req.kind),
            "kind is one of sp, device-admin, oem",
        )
    })?;
    valid_name("account id", &req.id)?;
    let mut rng = rand::rngs::OsRng;
    let token = s
        .admin
        .create_account(Some(&c), &req.id, kind, now(), &mut rng)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount {
            id: req.id,
            kind: kind.as_str().into(),
            token,
        }),
    ))
}

/// Lists accounts (OEM: all; others: themselves).
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    responses((status = 200, body = [AccountOut])), security(("bearer" = [])))]
async fn list_accounts(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> ApiResult<Json<Vec<AccountOut>>> {
    let c = caller(&s, &h).await?;
    if !is_oem(&c) {
        return Ok(Json(vec![account_out(&c.account)]));
    }
    Ok(Json(
        s.store.accounts().await?.iter().map(account_out).collect(),
    ))
}

/// `POST /api/v1/sps/{id}/approve`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Approve {
    /// Approve (true, default) or withdraw approval (false).
    #[serde(default = "yes")]
    pub approved: bool,
}

fn yes() -> bool {
    true
}

/// The OEM approves an SP (or withdraws approval).
#[utoipa::path(post, path = "/api/v1/sps/{id}/approve", tag = "accounts", request_body = Approve,
    params(("id" = String, Path, description = "SP account id")),
    responses((status = 200, body = AccountOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn approve_sp(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<Approve>,
) -> ApiResult<Json<AccountOut>> {
    let c = caller(&s, &h).await?;
    s.admin.approve_sp(&c, &id, req.approved, now()).await?;
    let a = s
        .store
        .account(&id)
        .await?
        .ok_or_else(|| ApiError::from(AdminError::NotFound(format!("SP {id}"))))?;
    Ok(Json(account_out(&a)))
}

// --- SDs ---------------------------------------------------------------------------

/// `POST /api/v1/sds`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateSd {
    /// SD name (first segment of every component id inside it).
    pub name: String,
    /// The SP it is for.
    pub sp_id: String,
    /// The SP's TA-signer certificate chain (PEM, leaf first), chained to the SP root.
    pub signer_chain_pem: String,
}

/// An SD.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SdOut {
    /// Name.
    pub name: String,
    /// Owning SP.
    pub sp_id: String,
    /// Granted.
    pub granted: bool,
    /// Authorized signer keys (RFC 9679 thumbprints, hex).
    pub signers: Vec<String>,
    /// Sequence number of the SD manifest the TAM signed.
    pub manifest_seq: Option<u64>,
}

fn thumbs(s: &AppState, keys: &[PublicKey]) -> Vec<String> {
    keys.iter()
        .map(|k| hex::encode(cose_key_thumbprint(k, s.provider)))
        .collect()
}

fn pem_chain(pem: &str, what: &str) -> ApiResult<Vec<Vec<u8>>> {
    let ders = otrp_pki::cert::certs_from_pem(pem).map_err(|e| {
        ApiError::bad(
            format!("{what}: {e}"),
            "send the certificate chain as PEM, leaf first",
        )
    })?;
    if ders.is_empty() {
        return Err(ApiError::bad(
            format!("{what}: no certificate"),
            "send the certificate chain as PEM, leaf first",
        ));
    }
    Ok(ders)
}

/// Validates an SP signer chain against the SP roots now; returns the leaf key.
fn sp_signer(s: &AppState, pem: &str) -> ApiResult<PublicKey> {
    let chain = pem_chain(pem, "SP signer chain")?;
    let roots = s.identity.sp_roots.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this TAM has no SP roots configured",
            "start the TAM with --pki DIR or sp_roots in its config file",
        )
    })?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| ApiError::bad("empty SP signer chain", "send the chain, leaf first"))?;
    let v = roots
        .verify(leaf, rest, otrp_pki::Usage::SpSigner, SystemTime::now())
        .map_err(|e| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("SP signer certificate refused: {e}"),
                "use a TA-signer certificate issued by the SP CA (`otrp pki issue --kind sp`)",
            )
        })?;
    Ok(v.public_key)
}

/// Creates an SD for an SP (the OEM always; an approved SP for itself unless the policy is
/// oem-owned-sd) and the TAM-signed SD manifest that creates it on devices.
#[utoipa::path(post, path = "/api/v1/sds", tag = "sds", request_body = CreateSd,
    responses((status = 201, body = SdOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_sd(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<CreateSd>,
) -> ApiResult<(StatusCode, Json<SdOut>)> {
    let c = caller(&s, &h).await?;
    valid_name("SD name", &req.name)?;
    let signer = match sp_signer(&s, &req.signer_chain_pem) {
        Ok(k) => k,
        Err(e) => return audited(&s, &c, "sd.create", &req.name, Err(e)).await,
    };
    let rec = s.admin.create_sd(&c, &req.name, &req.sp_id, now()).await?;
    // The same signer is the SP's OTrP `spcert` (CreateSD content).
    if let Some(leaf) = pem_chain(&req.signer_chain_pem, "SP signer chain")?.first() {
        crate::otrp::register_sp_cert(&s, &req.sp_id, leaf).await?;
    }
    let r = async {
        let desc = SdDescriptor {
            name: req.name.as_bytes().to_vec(),
            sp_id: req.sp_id.clone(),
            signers: vec![signer],
            authorization: None,
            tam: None,
        };
        let seq = sd::current_descriptor(s.store.as_ref(), &req.name)
            .await
            .map_err(ApiError::internal)?
            .map_or(1, |(_, seq)| seq + 1);
        let env = sd::sd_manifest(s.provider, &s.identity.signing_key, &desc, seq)
            .map_err(ApiError::internal)?;
        let payload = desc.to_cbor().map_err(ApiError::internal)?;
        let key = sd::sd_component_key(&req.name);
        if s.store.component(&key).await?.is_none() {
            s.store
                .insert_component(&ComponentRecord {
                    id: key.clone(),
                    sp_id: req.sp_id.clone(),
                    sd_name: req.name.clone(),
                    name: format!("SD {}", req.name),
                    created_at: now(),
                })
                .await?;
        }
        s.store
            .add_manifest(&ManifestRecord {
                component: key,
                seq,
                envelope: env,
                image_digest: otrp_suit::Digest::sha256(&payload).to_cbor().ok(),
                status: ManifestStatus::Ready,
                created_at: now(),
            })
            .await?;
        Ok(SdOut {
            name: rec.name.clone(),
            sp_id: rec.sp_id.clone(),
            granted: rec.granted,
            signers: thumbs(&s, &desc.signers),
            manifest_seq: Some(seq),
        })
    }
    .await;
    let out = audited(&s, &c, "sd.manifest", &req.name, r).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// `POST /api/v1/sp/certs`: an SP's TA-signer certificate for OTrP.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpCertIn {
    /// The SP (default: the caller; only the OEM may name another SP).
    #[serde(default)]
    pub sp_id: Option<String>,
    /// The TA-signer certificate chain (PEM, leaf first), chained to the SP root; the
    /// leaf is sent as `spcert` in the OTrP CreateSD of the SP's SDs.
    pub cert_pem: String,
}

/// A registered SP certificate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpCertOut {
    /// The SP.
    pub sp_id: String,
    /// Subject of the certificate.
    pub subject: String,
    /// RFC 9679 thumbprint of its key (hex).
    pub key_thumbprint: String,
}

/// Registers an SP's TA-signer certificate as its OTrP `spcert` (CreateSD). The chain
/// must lead to the SP root. Idempotent; the newest registration is used.
#[utoipa::path(post, path = "/api/v1/sp/certs", tag = "sds", request_body = SpCertIn,
    responses((status = 201, body = SpCertOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn register_sp_cert(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<SpCertIn>,
) -> ApiResult<(StatusCode, Json<SpCertOut>)> {
    let c = caller(&s, &h).await?;
    let sp_id = match (&req.sp_id, c.account.kind) {
        (Some(id), AccountKind::Oem) => id.clone(),
        (None, AccountKind::Sp) => c.account.id.clone(),
        (Some(id), AccountKind::Sp) if *id == c.account.id => id.clone(),
        (None, _) => {
            return Err(ApiError::bad(
                "sp_id missing",
                "the OEM names the SP the certificate is for (`sp_id`)",
            ))
        }
        _ => {
            return audited(
                &s,
                &c,
                "sp.cert",
                req.sp_id.as_deref().unwrap_or(""),
                Err(
                    AdminError::Forbidden("an SP registers certificates for itself only".into())
                        .into(),
                ),
            )
            .await
        }
    };
    let r = async {
        let key = sp_signer(&s, &req.cert_pem)?;
        let chain = pem_chain(&req.cert_pem, "SP signer chain")?;
        let leaf = chain
            .first()
            .ok_or_else(|| ApiError::bad("empty chain", "send the chain, leaf first"))?;
        let info = otrp_pki::cert::CertInfo::from_der(leaf).map_err(|e| {
            ApiError::bad(
                format!("SP certificate: {e}"),
                "send a DER/PEM X.509 certificate",
            )
        })?;
        crate::otrp::register_sp_cert(&s, &sp_id, leaf).await?;
        Ok(SpCertOut {
            sp_id: sp_id.clone(),
            subject: info.subject,
            key_thumbprint: hex::encode(cose_key_thumbprint(&key, s.provider)),
        })
    }
    .await;
    let out = audited(&s, &c, "sp.cert", &sp_id, r).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Lists the SDs the caller may see.
#[utoipa::path(get, path = "/api/v1/sds", tag = "sds",
    responses((status = 200, body = [SdOut])), security(("bearer" = [])))]
async fn list_sds(State(s): State<Arc<AppState>>, h: HeaderMap) -> ApiResult<Json<Vec<SdOut>>> {
    let c = caller(&s, &h).await?;
    let mut out = Vec::new();
    for sd_rec in s.admin.sds(&c).await? {
        let d = sd::current_descriptor(s.store.as_ref(), &sd_rec.name)
            .await
            .map_err(ApiError::internal)?;
        out.push(SdOut {
            signers: d
                .as_ref()
                .map(|(d, _)| thumbs(&s, &d.signers))
                .unwrap_or_default(),
            manifest_seq: d.map(|(_, seq)| seq),
            name: sd_rec.name,
            sp_id: sd_rec.sp_id,
            granted: sd_rec.granted,
        });
    }
    Ok(Json(out))
}

// --- SD signer rotation ------------------------------------------------------------------

/// `POST /api/v1/sds/{name}/rotate-signer`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotateSigner {
    /// The new TA-signer certificate chain (PEM, leaf first), chained to the SP root.
    pub signer_chain_pem: String,
    /// Thumbprints (hex, as `GET /api/v1/sds` lists them) of the signers to retire;
    /// default: every current signer other than the new one.
    #[serde(default)]
    pub retire: Option<Vec<String>>,
}

/// The SD after a signer rotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedSigner {
    /// The SD (its signers and new SD manifest sequence number).
    pub sd: SdOut,
    /// Thumbprint of the added signer (hex).
    pub added: String,
    /// Thumbprints of the retired signers (hex).
    pub retired: Vec<String>,
}

/// Who may change the signers of SD `sd`: the OEM always; the owning SP, approved, unless
/// the policy is oem-owned-sd. Another SP's SD is "not found".
async fn may_change_sd_signers(
    s: &AppState,
    c: &Caller,
    name: &str,
) -> ApiResult<otrp_store::SdRecord> {
    if c.account.kind == AccountKind::DeviceAdmin {
        return Err(AdminError::Forbidden(
            "only the SD's SP or the OEM changes its signers".into(),
        )
        .into());
    }
    let Some(rec) = s.admin.sds(c).await?.into_iter().find(|x| x.name == name) else {
        return Err(AdminError::NotFound(format!("SD {name}")).into());
    };
    match c.account.kind {
        AccountKind::Oem | AccountKind::DeviceAdmin => Ok(rec),
        AccountKind::Sp if !c.account.approved => {
            Err(AdminError::NotApproved(c.account.id.clone()).into())
        }
        AccountKind::Sp if s.policy == otrp_tam::Policy::OemOwnedSd => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "under the oem-owned-sd policy only the OEM changes an SD's signers",
            "ask the OEM to run `otrp sp sd rotate-signer` with its token",
        )),
        AccountKind::Sp => Ok(rec),
    }
}

/// Rotates an SD's TA-signer keys: adds the new signer (its chain must lead to the SP root)
/// and retires the old ones, in a new TAM-signed SD manifest (sequence number + 1).
/// Uploads signed by a retired key are refused from now on; manifests already delivered
/// stay installed on devices. Devices get the new SD manifest at their next TEEP session
/// through the SD's deployment, before any TA signed by the new key.
#[utoipa::path(post, path = "/api/v1/sds/{name}/rotate-signer", tag = "sds", request_body = RotateSigner,
    params(("name" = String, Path, description = "SD name")),
    responses((status = 200, body = RotatedSigner), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rotate_sd_signer(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(name): Path<String>,
    Json(req): Json<RotateSigner>,
) -> ApiResult<Json<RotatedSigner>> {
    let c = caller(&s, &h).await?;
    let r = async {
        let rec = may_change_sd_signers(&s, &c, &name).await?;
        let new_key = sp_signer(&s, &req.signer_chain_pem)?;
        let new_thumb = hex::encode(cose_key_thumbprint(&new_key, s.provider));
        let (mut desc, seq) = sd::current_descriptor(s.store.as_ref(), &name)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("SD {name} has no SD manifest to rotate"),
                    "create the SD with POST /api/v1/sds first",
                )
            })?;
        let current: Vec<(String, PublicKey)> = desc
            .signers
            .iter()
            .map(|k| (hex::encode(cose_key_thumbprint(k, s.provider)), k.clone()))
            .collect();
        let retire: Vec<String> = match &req.retire {
            Some(list) => {
                let list: Vec<String> = list.iter().map(|t| t.trim().to_lowercase()).collect();
                if let Some(unknown) = list.iter().find(|t| !current.iter().any(|(c, _)| c == *t)) {
                    return Err(ApiError::bad(
                        format!("signer {unknown} is not a signer of SD {name}"),
                        "name signers by the thumbprints `GET /api/v1/sds` lists",
                    ));
                }
                if list.contains(&new_thumb) {
                    return Err(ApiError::bad(
                        "the new signer cannot also be retired",
                        "retire the old signers only",
                    ));
                }
                list
            }
            None => current
                .iter()
                .map(|(t, _)| t.clone())
                .filter(|t| *t != new_thumb)
                .collect(),
        };
        let mut signers: Vec<PublicKey> = current
            .iter()
            .filter(|(t, _)| !retire.contains(t))
            .map(|(_, k)| k.clone())
            .collect();
        if !signers.contains(&new_key) {
            signers.push(new_key.clone());
        } else if retire.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("signer {new_thumb} is already authorized for SD {name} and nothing is retired"),
                "nothing to rotate; pass a new certificate, or name the signers to retire",
            ));
        }
        desc.signers = signers;
        let next = seq + 1;
        let env = sd::sd_manifest(s.provider, &s.identity.signing_key, &desc, next)
            .map_err(ApiError::internal)?;
        let payload = desc.to_cbor().map_err(ApiError::internal)?;
        s.store
            .add_manifest(&ManifestRecord {
                component: sd::sd_component_key(&name),
                seq: next,
                envelope: env,
                image_digest: otrp_suit::Digest::sha256(&payload).to_cbor().ok(),
                status: ManifestStatus::Ready,
                created_at: now(),
            })
            .await
            .map_err(|e| match e {
                StoreError::SequenceNotGrowing { .. } => ApiError::new(
                    StatusCode::CONFLICT,
                    format!("SD {name} changed meanwhile: {e}"),
                    "list the SD's signers again (`GET /api/v1/sds`) and retry",
                ),
                other => other.into(),
            })?;
        // New OTrP SDs of the SP are created with the new signer (`spcert`).
        if let Some(leaf) = pem_chain(&req.signer_chain_pem, "SP signer chain")?.first() {
            crate::otrp::register_sp_cert(&s, &rec.sp_id, leaf).await?;
        }
        tracing::info!(sd = %name, added = %new_thumb, retired = ?retire, seq = next, "SD signers rotated");
        Ok(RotatedSigner {
            sd: SdOut {
                name: rec.name,
                sp_id: rec.sp_id,
                granted: rec.granted,
                signers: thumbs(&s, &desc.signers),
                manifest_seq: Some(next),
            },
            added: new_thumb,
            retired: retire,
        })
    }
    .await;
    let detail = match &r {
        Ok(o) => format!(
            "ok: added {}, retired [{}], SD manifest #{}",
            o.added,
            o.retired.join(", "),
            o.sd.manifest_seq.unwrap_or(0)
        ),
        Err(e) => format!("refused: {}", e.error),
    };
    audit(&s, &c.account.id, "sd.rotate-signer", &name, &detail).await;
    Ok(Json(r?))
}

// --- devices -------------------------------------------------------------------------

/// `POST /api/v1/devices`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterDevice {
    /// The device's `device.json` (from `otrp device provision`).
    #[schema(value_type = Object)]
    pub device: serde_json::Value,
    /// Its TEE certificate chain (`tee-chain.pem`: TEE certificate, TEE issuing CA).
    pub tee_chain_pem: String,
    /// Tags deployments can target.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The TEEP Agent's public key (SPKI PEM), when the device's evidence names it by
    /// `kid` only (as `otrp-agent`'s EAT attester does): it is bound to this device, and
    /// the evidence's `cnf` must still name it.
    #[serde(default)]
    pub agent_key_pem: Option<String>,
}

/// A device.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceOut {
    /// Device id (hex UEID).
    pub id: String,
    /// Model.
    pub model: String,
    /// Hardware version.
    pub hwversion: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Revoked.
    pub revoked: bool,
    /// First seen or registered (Unix seconds).
    pub created_at: u64,
}

fn device_out(d: &DeviceRecord) -> DeviceOut {
    DeviceOut {
        id: d.id.clone(),
        model: d.model.clone(),
        hwversion: d.hwversion.clone(),
        tags: d.tags.clone(),
        revoked: d.revoked,
        created_at: d.created_at,
    }
}

/// Registers a provisioned device (OEM or device admin): its TEE chain must lead to the
/// TEE root and name the UEID of `device.json`.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = RegisterDevice,
    responses((status = 201, body = DeviceOut), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn register_device(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<RegisterDevice>,
) -> ApiResult<(StatusCode, Json<DeviceOut>)> {
    let c = caller(&s, &h).await?;
    let object = req
        .device
        .get("ueid")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    let r = async {
        require_device_admin(&c)?;
        let public: otrp_pki::device::DevicePublic = serde_json::from_value(req.device.clone())
            .map_err(|e| {
                ApiError::bad(
                    format!("device.json: {e}"),
                    "send the device.json written by `otrp device provision`",
                )
            })?;
        let ueid = hex::decode(&public.ueid).map_err(|_| {
            ApiError::bad("device.json: ueid is not hex", "send an unmodified device.json")
        })?;
        for t in &req.tags {
            valid_name("tag", t)?;
        }
        let chain = pem_chain(&req.tee_chain_pem, "TEE chain")?;
        let roots = s.identity.tee_roots.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this TAM has no TEE roots configured",
                "start the TAM with --pki DIR or tee_roots in its config file",
            )
        })?;
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| ApiError::bad("empty TEE chain", "send tee-chain.pem"))?;
        let v = roots
            .verify(leaf, rest, otrp_pki::Usage::TeeAttestation, SystemTime::now())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("TEE certificate refused: {e}"),
                    "register devices provisioned from this TAM's PKI (`otrp device provision --pki DIR`)",
                )
            })?;
        if v.info.ueid.as_deref() != Some(ueid.as_slice()) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the TEE certificate names another UEID than device.json",
                "send the device.json and tee-chain.pem of the same device directory",
            ));
        }
        let id = hex::encode(&ueid);
        let agent_key = match &req.agent_key_pem {
            Some(pem) => Some(PublicKey::from_pem(pem).map_err(|e| {
                ApiError::bad(
                    format!("agent_key_pem: {e}"),
                    "send the Agent's public key as SPKI PEM (BEGIN PUBLIC KEY)",
                )
            })?),
            None => None,
        };
        let existing = s.store.device(&id).await?;
        let rec = DeviceRecord {
            id: id.clone(),
            ueid,
            model: public.model.clone(),
            hwversion: public.hwversion.clone(),
            tags: req.tags.clone(),
            suite_alg: existing.as_ref().and_then(|d| d.suite_alg),
            revoked: existing.as_ref().is_some_and(|d| d.revoked),
            created_at: existing.as_ref().map_or(now(), |d| d.created_at),
        };
        s.store.put_device(&rec).await?;
        if let Some(k) = agent_key {
            let cose_key = otrp_cose::cose_key_from_public(&k)
                .to_vec()
                .map_err(ApiError::internal)?;
            s.store
                .put_agent_key(&otrp_store::AgentKeyRecord {
                    kid: cose_key_thumbprint(&k, s.provider).to_vec(),
                    device_id: id.clone(),
                    cose_key,
                    bound_at: now(),
                })
                .await?;
        }
        Ok(rec)
    }
    .await;
    let rec = audited(&s, &c, "device.register", &object, r).await?;
    Ok((StatusCode::CREATED, Json(device_out(&rec))))
}

/// Lists devices.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    responses((status = 200, body = [DeviceOut])), security(("bearer" = [])))]
async fn list_devices(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> ApiResult<Json<Vec<DeviceOut>>> {
    caller(&s, &h).await?;
    Ok(Json(
        s.store.devices().await?.iter().map(device_out).collect(),
    ))
}

/// `POST /api/v1/devices/{id}/tags`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SetTags {
    /// The new tag set.
    pub tags: Vec<String>,
}

/// Replaces a device's tags (OEM or device admin).
#[utoipa::path(post, path = "/api/v1/devices/{id}/tags", tag = "devices", request_body = SetTags,
    params(("id" = String, Path, description = "device id (hex UEID)")),
    responses((status = 200, body = DeviceOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn set_tags(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<SetTags>,
) -> ApiResult<Json<DeviceOut>> {
    let c = caller(&s, &h).await?;
    let r = async {
        require_device_admin(&c)?;
        for t in &req.tags {
            valid_name("tag", t)?;
        }
        let mut d = s
            .store
            .device(&id)
            .await?
            .ok_or_else(|| ApiError::from(AdminError::NotFound(format!("device {id}"))))?;
        d.tags = req.tags.clone();
        s.store.put_device(&d).await?;
        Ok(d)
    }
    .await;
    let d = audited(&s, &c, "device.tags", &id, r).await?;
    Ok(Json(device_out(&d)))
}

/// `POST /api/v1/devices/{id}/revoke`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoke {
    /// Revoke (true, default) or reinstate (false).
    #[serde(default = "yes")]
    pub revoked: bool,
}

/// Revokes (or reinstates) a device: a revoked device is refused by the TEEP core.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices", request_body = Revoke,
    params(("id" = String, Path, description = "device id (hex UEID)")),
    responses((status = 200, body = DeviceOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn revoke_device(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<Revoke>,
) -> ApiResult<Json<DeviceOut>> {
    let c = caller(&s, &h).await?;
    let r = async {
        require_device_admin(&c)?;
        if s.store.device(&id).await?.is_none() {
            return Err(AdminError::NotFound(format!("device {id}")).into());
        }
        s.store.set_device_revoked(&id, req.revoked).await?;
        s.store
            .device(&id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("device {id}")).into())
    }
    .await;
    let action = if req.revoked {
        "device.revoke"
    } else {
        "device.reinstate"
    };
    let d = audited(&s, &c, action, &id, r).await?;
    Ok(Json(device_out(&d)))
}

// --- components ----------------------------------------------------------------------

/// `POST /api/v1/components`: a signed SUIT envelope.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadManifest {
    /// The signed SUIT envelope (base64).
    pub envelope: String,
    /// The SP signer's certificate chain (PEM, leaf first), chained to the SP root; its
    /// key must be authorized for the SD (the first component-id segment).
    pub signer_chain_pem: String,
    /// Display name (default: the component id).
    #[serde(default)]
    pub name: Option<String>,
}

/// What was registered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// Component id (`sd/name`, or hex).
    pub component: String,
    /// Hex of the component key (for URLs).
    pub component_key: String,
    /// Sequence number.
    pub seq: u64,
    /// `ready` or `awaiting-cosign`.
    pub status: String,
}

/// A component.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentOut {
    /// Component id (`sd/name`, or hex).
    pub component: String,
    /// Hex of the component key.
    pub component_key: String,
    /// Owning SP.
    pub sp_id: String,
    /// SD.
    pub sd: String,
    /// Display name.
    pub name: String,
    /// Latest sequence number.
    pub latest_seq: Option<u64>,
    /// Status of the latest manifest.
    pub status: Option<String>,
}

async fn component_out(s: &AppState, c: &ComponentRecord) -> ApiResult<ComponentOut> {
    let latest = s.store.latest_manifest(&c.id, false).await?;
    Ok(ComponentOut {
        component: component_display(&c.id),
        component_key: hex::encode(&c.id),
        sp_id: c.sp_id.clone(),
        sd: c.sd_name.clone(),
        name: c.name.clone(),
        latest_seq: latest.as_ref().map(|m| m.seq),
        status: latest.map(|m| m.status.as_str().to_owned()),
    })
}

/// What an upload is, once its checks before the core passed.
struct Checked {
    envelope: Vec<u8>,
    sd_name: String,
    key: PublicKey,
    display: String,
}

async fn check_envelope(
    s: &AppState,
    c: &Caller,
    envelope_b64: &str,
    chain_pem: &str,
) -> ApiResult<Checked> {
    let envelope = base64::engine::general_purpose::STANDARD
        .decode(envelope_b64.trim())
        .map_err(|e| ApiError::bad(format!("envelope: {e}"), "send the envelope as base64"))?;
    let env = Envelope::decode(&envelope).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("SUIT envelope: {e}"),
            "build the envelope with `otrp sp publish` (TaManifestBuilder)",
        )
    })?;
    let comp = env
        .manifest()
        .components()
        .first()
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the manifest names no component",
                "name the component as SD/NAME",
            )
        })?;
    let segs = comp.segments();
    if segs.len() == 2 && segs.get(1).map(Vec::as_slice) == Some(b"sd".as_slice()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "[sd-name, \"sd\"] is the SD manifest, which only the TAM signs",
            "create or update SDs with POST /api/v1/sds",
        ));
    }
    let sd_name = segs
        .first()
        .and_then(|f| std::str::from_utf8(f).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the first component-id segment (the SD name) is not text",
                "name the component as SD/NAME",
            )
        })?
        .to_owned();
    // Tenancy first: another SP's SD is "not found", before anything else is said.
    if !s.admin.sds(c).await?.iter().any(|x| x.name == sd_name) {
        let e = AdminError::NotFound(format!("SD {sd_name}"));
        let detail = format!("refused: {e}");
        audit(s, &c.account.id, "manifest.upload", &sd_name, &detail).await;
        return Err(e.into());
    }
    let key = sp_signer(s, chain_pem)?;
    let authorized = sd::signers(s.store.as_ref(), &sd_name)
        .await
        .map_err(ApiError::internal)?;
    if !authorized.contains(&key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the signer certificate's key is not authorized for SD {sd_name}"),
            "sign with a key the SD lists (`otrp sp sd list`); add a new one with `otrp sp sd rotate-signer`",
        ));
    }
    let display = component_display(&component_key(segs));
    Ok(Checked {
        envelope,
        sd_name,
        key,
        display,
    })
}

/// Checks an upload, then registers it with the core; every refusal is audited once
/// (the core audits its own).
async fn register_envelope(
    s: &AppState,
    c: &Caller,
    envelope_b64: &str,
    chain_pem: &str,
    name: Option<&str>,
) -> ApiResult<otrp_tam::Registered> {
    let ch = match check_envelope(s, c, envelope_b64, chain_pem).await {
        Ok(x) => x,
        Err(e) => {
            // A 404 (another SP's SD) was audited where it was decided.
            if e.status != StatusCode::NOT_FOUND {
                let detail = format!("refused: {}", e.error);
                audit(s, &c.account.id, "manifest.upload", "-", &detail).await;
            }
            return Err(e);
        }
    };
    let name = name.unwrap_or(&ch.display);
    Ok(s.admin
        .register_manifest(c, &ch.sd_name, name, &ch.envelope, &[ch.key], now())
        .await?)
}

/// Registers a signed SUIT envelope (approved SP): signature against the SP signer
/// chained to the SP root and authorized for the SD, sequence number growing.
#[utoipa::path(post, path = "/api/v1/components", tag = "components", request_body = UploadManifest,
    responses((status = 201, body = Registered), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_component(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<UploadManifest>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let c = caller(&s, &h).await?;
    let r = register_envelope(
        &s,
        &c,
        &req.envelope,
        &req.signer_chain_pem,
        req.name.as_deref(),
    )
    .await;
    let r = r?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            component: component_display(&r.component),
            component_key: hex::encode(&r.component),
            seq: r.seq,
            status: r.status.as_str().into(),
        }),
    ))
}

/// Lists the caller's components (OEM: all).
#[utoipa::path(get, path = "/api/v1/components", tag = "components",
    responses((status = 200, body = [ComponentOut])), security(("bearer" = [])))]
async fn list_components(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> ApiResult<Json<Vec<ComponentOut>>> {
    let c = caller(&s, &h).await?;
    let mut out = Vec::new();
    for comp in s.admin.components(&c).await? {
        out.push(component_out(&s, &comp).await?);
    }
    Ok(Json(out))
}

/// One component (404 when it is another SP's).
#[utoipa::path(get, path = "/api/v1/components/{component}", tag = "components",
    params(("component" = String, Path, description = "hex component key, or SD/NAME URL-encoded")),
    responses((status = 200, body = ComponentOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_component(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(component): Path<String>,
) -> ApiResult<Json<ComponentOut>> {
    let c = caller(&s, &h).await?;
    let key = parse_component(&component)?;
    let comp = s.admin.component(&c, &key).await?;
    Ok(Json(component_out(&s, &comp).await?))
}

/// `POST /api/v1/components/{component}/cosign`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Cosign {
    /// Sequence number of the manifest.
    pub seq: u64,
    /// The same manifest with the OEM's signature added (base64).
    pub envelope: String,
}

/// The OEM co-signs a manifest waiting under the dual-control policy.
#[utoipa::path(post, path = "/api/v1/components/{component}/cosign", tag = "components", request_body = Cosign,
    params(("component" = String, Path, description = "hex component key, or SD/NAME URL-encoded")),
    responses((status = 200, body = ComponentOut), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn cosign(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(component): Path<String>,
    Json(req): Json<Cosign>,
) -> ApiResult<Json<ComponentOut>> {
    let c = caller(&s, &h).await?;
    let key = parse_component(&component)?;
    let env = base64::engine::general_purpose::STANDARD
        .decode(req.envelope.trim())
        .map_err(|e| ApiError::bad(format!("envelope: {e}"), "send the envelope as base64"))?;
    s.admin
        .cosign_manifest(&c, &key, req.seq, &env, &s.identity.oem_keys, now())
        .await?;
    let comp = s.admin.component(&c, &key).await?;
    Ok(Json(component_out(&s, &comp).await?))
}

// --- deployments ---------------------------------------------------------------------

/// `POST /api/v1/deployments`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateDeployment {
    /// Component (`sd/name` or hex key).
    pub component: String,
    /// `install` (default) or `remove`.
    #[serde(default)]
    pub action: Option<String>,
    /// `all`, `device:ID`, `tag:TAG` or `model:NAME`.
    pub target: String,
    /// `full` (default), `N%` or `count:N`.
    #[serde(default)]
    pub rollout: Option<String>,
}

/// A deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeploymentOut {
    /// Id.
    pub id: i64,
    /// Owning SP.
    pub sp_id: String,
    /// Component (`sd/name` or hex).
    pub component: String,
    /// `install` or `remove`.
    pub action: String,
    /// Target (`all`, `device:ID`, `tag:TAG`, `model:NAME`).
    pub target: String,
    /// Rollout (`full`, `N%`, `count:N`).
    pub rollout: String,
    /// `active`, `paused` or `aborted`.
    pub state: String,
    /// Creation time.
    pub created_at: u64,
}

/// Parses `all`, `device:ID`, `tag:TAG`, `model:NAME`.
pub fn parse_target(s: &str) -> Option<Target> {
    let s = s.trim();
    if s == "all" {
        return Some(Target::All);
    }
    let (k, v) = s.split_once(':')?;
    if v.is_empty() {
        return None;
    }
    Target::from_parts(k, v.to_owned()).filter(|t| *t != Target::All)
}

/// Renders a target as [`parse_target`] reads it.
pub fn target_str(t: &Target) -> String {
    match t {
        Target::All => "all".into(),
        other => {
            let (k, v) = other.to_parts();
            format!("{k}:{v}")
        }
    }
}

/// Parses `full`, `N%` or `count:N`.
pub fn parse_rollout(s: &str) -> Option<Rollout> {
    let s = s.trim();
    if s == "full" || s == "100%" {
        return Some(Rollout::Full);
    }
    if let Some(p) = s.strip_suffix('%') {
        return p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 100)
            .map(Rollout::Percent);
    }
    if let Some(n) = s.strip_prefix("count:") {
        return n.trim().parse::<u64>().ok().map(Rollout::Count);
    }
    None
}

/// Renders a rollout as [`parse_rollout`] reads it.
pub fn rollout_str(r: Rollout) -> String {
    match r {
        Rollout::Full => "full".into(),
        Rollout::Percent(p) => format!("{p}%"),
        Rollout::Count(n) => format!("count:{n}"),
    }
}

fn deployment_out(d: &DeploymentRecord) -> DeploymentOut {
    DeploymentOut {
        id: d.id,
        sp_id: d.sp_id.clone(),
        component: component_display(&d.component),
        action: match d.action {
            DeploymentAction::Install => "install".into(),
            DeploymentAction::Remove => "remove".into(),
        },
        target: target_str(&d.target),
        rollout: rollout_str(d.rollout),
        state: d.state.as_str().into(),
        created_at: d.created_at,
    }
}

/// Makes sure the SD of `component` reaches `target` before it (full rollout).
async fn ensure_sd_deployment(
    s: &AppState,
    comp: &ComponentRecord,
    target: &Target,
) -> ApiResult<()> {
    let sd_key = sd::sd_component_key(&comp.sd_name);
    if comp.id == sd_key || s.store.latest_manifest(&sd_key, true).await?.is_none() {
        return Ok(());
    }
    let exists = s
        .store
        .deployments(Some(&comp.sp_id))
        .await?
        .iter()
        .any(|d| {
            d.component == sd_key
                && d.target == *target
                && d.state == DeploymentState::Active
                && d.action == DeploymentAction::Install
        });
    if !exists {
        s.store
            .insert_deployment(&DeploymentRecord {
                id: 0,
                sp_id: comp.sp_id.clone(),
                component: sd_key,
                action: DeploymentAction::Install,
                target: target.clone(),
                rollout: Rollout::Full,
                state: DeploymentState::Active,
                created_at: now(),
            })
            .await?;
    }
    Ok(())
}

async fn create_deployment_inner(
    s: &AppState,
    c: &Caller,
    req: &CreateDeployment,
) -> ApiResult<DeploymentRecord> {
    let key = parse_component(&req.component)?;
    let target = parse_target(&req.target).ok_or_else(|| {
        ApiError::bad(
            format!("invalid target {:?}", req.target),
            "target is all, device:ID, tag:TAG or model:NAME",
        )
    })?;
    let rollout = match req.rollout.as_deref() {
        None => Rollout::Full,
        Some(r) => parse_rollout(r).ok_or_else(|| {
            ApiError::bad(
                format!("invalid rollout {r:?}"),
                "rollout is full, N% (0..100) or count:N",
            )
        })?,
    };
    let action = match req.action.as_deref().unwrap_or("install") {
        "install" => DeploymentAction::Install,
        "remove" => DeploymentAction::Remove,
        other => {
            return Err(ApiError::bad(
                format!("invalid action {other:?}"),
                "action is install or remove",
            ))
        }
    };
    // Ownership first (404 for another SP's component), then the SD, then the deployment.
    let comp = s.admin.component(c, &key).await?;
    if action == DeploymentAction::Install && (is_oem(c) || c.account.approved) {
        ensure_sd_deployment(s, &comp, &target).await?;
    }
    let id = s
        .admin
        .create_deployment(c, &key, action, target, rollout, now())
        .await?;
    s.store
        .deployment(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("deployment {id}")).into())
}

/// Creates a deployment of the caller's component (an install also deploys its SD first).
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", request_body = CreateDeployment,
    responses((status = 201, body = DeploymentOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_deployment(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<CreateDeployment>,
) -> ApiResult<(StatusCode, Json<DeploymentOut>)> {
    let c = caller(&s, &h).await?;
    let d = create_deployment_inner(&s, &c, &req).await?;
    Ok((StatusCode::CREATED, Json(deployment_out(&d))))
}

/// Lists the caller's deployments (OEM: all).
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    responses((status = 200, body = [DeploymentOut])), security(("bearer" = [])))]
async fn list_deployments(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> ApiResult<Json<Vec<DeploymentOut>>> {
    let c = caller(&s, &h).await?;
    Ok(Json(
        s.admin
            .deployments(&c)
            .await?
            .iter()
            .map(deployment_out)
            .collect(),
    ))
}

/// Progress of a deployment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProgressOut {
    /// The deployment.
    pub deployment: DeploymentOut,
    /// Devices the target matches now.
    pub targeted: u64,
    /// Updates sent, not answered yet.
    pub sent: u64,
    /// Devices that installed (or removed) it.
    pub done: u64,
    /// Devices that reported an error.
    pub failed: u64,
}

/// A deployment and its progress (404 when it is another SP's).
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = i64, Path, description = "deployment id")),
    responses((status = 200, body = ProgressOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_deployment(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<ProgressOut>> {
    let c = caller(&s, &h).await?;
    let (targeted, counts) = s.admin.deployment_progress(&c, id).await?;
    let d = s
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::from(AdminError::NotFound(format!("deployment {id}"))))?;
    Ok(Json(ProgressOut {
        deployment: deployment_out(&d),
        targeted,
        sent: counts.sent,
        done: counts.done,
        failed: counts.failed,
    }))
}

async fn set_state(
    s: Arc<AppState>,
    h: HeaderMap,
    id: i64,
    state: DeploymentState,
) -> ApiResult<Json<DeploymentOut>> {
    let c = caller(&s, &h).await?;
    s.admin.set_deployment_state(&c, id, state, now()).await?;
    let d = s
        .store
        .deployment(id)
        .await?
        .ok_or_else(|| ApiError::from(AdminError::NotFound(format!("deployment {id}"))))?;
    Ok(Json(deployment_out(&d)))
}

/// Pauses a deployment: no new device gets it.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/pause", tag = "deployments",
    params(("id" = i64, Path, description = "deployment id")),
    responses((status = 200, body = DeploymentOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn pause(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentOut>> {
    set_state(s, h, id, DeploymentState::Paused).await
}

/// Resumes a paused deployment.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/resume", tag = "deployments",
    params(("id" = i64, Path, description = "deployment id")),
    responses((status = 200, body = DeploymentOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn resume(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentOut>> {
    set_state(s, h, id, DeploymentState::Active).await
}

/// Aborts a deployment for good.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/abort", tag = "deployments",
    params(("id" = i64, Path, description = "deployment id")),
    responses((status = 200, body = DeploymentOut), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn abort(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentOut>> {
    set_state(s, h, id, DeploymentState::Aborted).await
}

// --- personalization -------------------------------------------------------------------

/// `POST /api/v1/personalization`: data for one device or a group (tag).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Personalize {
    /// A signed SUIT envelope carrying the data (typically encrypted to the device), whose
    /// component lies in one of the caller's SDs (e.g. `sd1/config/<device>`).
    pub envelope: String,
    /// The SP signer's certificate chain (PEM, leaf first).
    pub signer_chain_pem: String,
    /// `device:ID` or `tag:TAG`.
    pub target: String,
}

/// Registered personalization data and the deployment that delivers it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Personalized {
    /// The data manifest.
    pub registered: Registered,
    /// Its deployment.
    pub deployment: DeploymentOut,
}

/// Registers personalization data and deploys it to one device or a tagged group.
#[utoipa::path(post, path = "/api/v1/personalization", tag = "components", request_body = Personalize,
    responses((status = 201, body = Personalized), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn personalize(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Json(req): Json<Personalize>,
) -> ApiResult<(StatusCode, Json<Personalized>)> {
    let c = caller(&s, &h).await?;
    match parse_target(&req.target) {
        Some(Target::Device(_)) | Some(Target::Tag(_)) => {}
        _ => {
            return Err(ApiError::bad(
                format!("invalid personalization target {:?}", req.target),
                "personalization goes to device:ID or tag:TAG",
            ))
        }
    }
    let r = register_envelope(&s, &c, &req.envelope, &req.signer_chain_pem, None).await?;
    let d = create_deployment_inner(
        &s,
        &c,
        &CreateDeployment {
            component: hex::encode(&r.component),
            action: None,
            target: req.target.clone(),
            rollout: None,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Personalized {
            registered: Registered {
                component: component_display(&r.component),
                component_key: hex::encode(&r.component),
                seq: r.seq,
                status: r.status.as_str().into(),
            },
            deployment: deployment_out(&d),
        }),
    ))
}

// --- reference values ------------------------------------------------------------------

/// The verifier's reference values of one device model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReferenceValuesOut {
    /// Model (EAT `hwmodel`).
    pub model: String,
    /// Accepted TEE measurements (hex); empty: any.
    pub measurements: Vec<String>,
    /// Accepted hardware versions; empty: any.
    pub hwversions: Vec<String>,
    /// Last change (Unix seconds).
    pub updated_at: u64,
    /// Who made it (account id, or `config` when seeded from a TAM's config file).
    pub updated_by: String,
}

/// `PUT /api/v1/reference-values/{model}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SetReferenceValues {
    /// Accepted TEE measurements (hex digests of TEE images); empty: any.
    #[serde(default)]
    pub measurements: Vec<String>,
    /// Accepted hardware versions; empty: any.
    #[serde(default)]
    pub hwversions: Vec<String>,
    /// Add to the model's current values instead of replacing them.
    #[serde(default)]
    pub add: bool,
}

fn reference_out(r: &otrp_store::ReferenceValuesRecord) -> ReferenceValuesOut {
    ReferenceValuesOut {
        model: r.model.clone(),
        measurements: r.measurements.iter().map(hex::encode).collect(),
        hwversions: r.hwversions.clone(),
        updated_at: r.updated_at,
        updated_by: r.updated_by.clone(),
    }
}

fn require_oem(c: &Caller, what: &str) -> ApiResult<()> {
    if is_oem(c) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(format!("only the OEM {what}")).into())
    }
}

/// A model name as devices report it (`hwmodel`): 1 to 128 bytes of text, no control
/// characters.
fn valid_model(m: &str) -> ApiResult<()> {
    if m.is_empty() || m.len() > 128 || m.chars().any(char::is_control) {
        return Err(ApiError::bad(
            format!("invalid model name {m:?}"),
            "name the model as its devices report it (EAT hwmodel), 1 to 128 characters",
        ));
    }
    Ok(())
}

fn parse_measurements(list: &[String]) -> ApiResult<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for m in list {
        let bytes = hex::decode(m.trim()).map_err(|_| {
            ApiError::bad(
                format!("measurement {m:?} is not hex"),
                "give TEE measurements as hex digests (e.g. SHA-256: 64 hex digits)",
            )
        })?;
        if bytes.is_empty() || bytes.len() > 64 {
            return Err(ApiError::bad(
                format!("measurement {m:?} is {} bytes long", bytes.len()),
                "a measurement is a digest of 1 to 64 bytes",
            ));
        }
        if !out.contains(&bytes) {
            out.push(bytes);
        }
    }
    Ok(out)
}

fn parse_hwversions(list: &[String]) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for v in list {
        if v.is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
            return Err(ApiError::bad(
                format!("invalid hardware version {v:?}"),
                "a hardware version is 1 to 64 characters, as devices report it (EAT hwversion)",
            ));
        }
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(out)
}

/// Lists the verifier's reference values per model (OEM and device admins). This is what
/// every TAM replica appraises evidence with (each within `reference_refresh_secs`).
#[utoipa::path(get, path = "/api/v1/reference-values", tag = "reference-values",
    responses((status = 200, body = [ReferenceValuesOut]), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_reference_values(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
) -> ApiResult<Json<Vec<ReferenceValuesOut>>> {
    let c = caller(&s, &h).await?;
    if c.account.kind == AccountKind::Sp {
        return Err(AdminError::Forbidden(
            "reference values are the OEM's (SPs do not see them)".into(),
        )
        .into());
    }
    Ok(Json(
        s.store
            .all_reference_values()
            .await?
            .iter()
            .filter(|r| !r.removed)
            .map(reference_out)
            .collect(),
    ))
}

/// Sets (or, with `add`, extends) the reference values of a model (OEM only, audited).
/// This replica appraises with them at once, the others within `reference_refresh_secs`.
/// The model `*` holds the values of every model without a record of its own (models
/// removed with DELETE stay refused).
#[utoipa::path(put, path = "/api/v1/reference-values/{model}", tag = "reference-values",
    request_body = SetReferenceValues,
    params(("model" = String, Path, description = "device model (EAT hwmodel)")),
    responses((status = 200, body = ReferenceValuesOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_reference_values(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(model): Path<String>,
    Json(req): Json<SetReferenceValues>,
) -> ApiResult<Json<ReferenceValuesOut>> {
    let c = caller(&s, &h).await?;
    let r = async {
        require_oem(&c, "sets reference values")?;
        valid_model(&model)?;
        let mut measurements = parse_measurements(&req.measurements)?;
        let mut hwversions = parse_hwversions(&req.hwversions)?;
        if req.add {
            if let Some(cur) = s
                .store
                .reference_values(&model)
                .await?
                .filter(|r| !r.removed)
            {
                for m in cur.measurements.into_iter().rev() {
                    if !measurements.contains(&m) {
                        measurements.insert(0, m);
                    }
                }
                for v in cur.hwversions.into_iter().rev() {
                    if !hwversions.contains(&v) {
                        hwversions.insert(0, v);
                    }
                }
            }
        }
        if measurements.len() > 256 || hwversions.len() > 256 {
            return Err(ApiError::bad(
                "more than 256 measurements or hardware versions for one model",
                "remove the values no device runs any more",
            ));
        }
        let rec = otrp_store::ReferenceValuesRecord {
            model: model.clone(),
            measurements,
            hwversions,
            removed: false,
            updated_at: now(),
            updated_by: c.account.id.clone(),
        };
        s.store.put_reference_values(&rec).await?;
        s.verifier.apply(&rec);
        Ok(rec)
    }
    .await;
    let detail = match &r {
        Ok(rec) => format!(
            "ok: measurements [{}], hwversions [{}]",
            rec.measurements
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>()
                .join(", "),
            rec.hwversions.join(", ")
        ),
        Err(e) => format!("refused: {}", e.error),
    };
    audit(&s, &c.account.id, "reference.set", &model, &detail).await;
    Ok(Json(reference_out(&r?)))
}

/// Removes the reference values of a model (OEM only, audited): its devices are refused
/// (unless the TAM accepts unlisted models). The removal is kept, so a TAM's config file
/// does not bring the model back at its next start.
#[utoipa::path(delete, path = "/api/v1/reference-values/{model}", tag = "reference-values",
    params(("model" = String, Path, description = "device model (EAT hwmodel)")),
    responses((status = 200, body = ReferenceValuesOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_reference_values(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Path(model): Path<String>,
) -> ApiResult<Json<ReferenceValuesOut>> {
    let c = caller(&s, &h).await?;
    let r = async {
        require_oem(&c, "removes reference values")?;
        let Some(old) = s
            .store
            .reference_values(&model)
            .await?
            .filter(|r| !r.removed)
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no reference values for model {model:?}"),
                "list them with GET /api/v1/reference-values",
            ));
        };
        let tomb = otrp_store::ReferenceValuesRecord {
            model: model.clone(),
            measurements: Vec::new(),
            hwversions: Vec::new(),
            removed: true,
            updated_at: now(),
            updated_by: c.account.id.clone(),
        };
        s.store.put_reference_values(&tomb).await?;
        s.verifier.apply(&tomb);
        Ok(old)
    }
    .await;
    let out = audited(&s, &c, "reference.remove", &model, r).await?;
    Ok(Json(reference_out(&out)))
}

// --- audit and status ------------------------------------------------------------------

/// An audit entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditOut {
    /// Id.
    pub id: i64,
    /// When (Unix seconds).
    pub at: u64,
    /// Account that acted.
    pub actor: String,
    /// Action.
    pub action: String,
    /// Object.
    pub object: String,
    /// Outcome.
    pub detail: String,
}

/// `?limit=N`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Newest N entries (default 100, at most 10000).
    pub limit: Option<u32>,
}

/// The audit log, newest first (an SP sees its own actions only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditOut])), security(("bearer" = [])))]
async fn audit_log(
    State(s): State<Arc<AppState>>,
    h: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditOut>>> {
    let c = caller(&s, &h).await?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let entries = s.store.audit(limit).await?;
    Ok(Json(
        entries
            .into_iter()
            .filter(|a| is_oem(&c) || a.actor == c.account.id)
            .map(|a| AuditOut {
                id: a.id,
                at: a.at,
                actor: a.actor,
                action: a.action,
                object: a.object,
                detail: a.detail,
            })
            .collect(),
    ))
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusOut {
    /// Server version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Management configuration.
    pub policy: String,
    /// The caller.
    pub account: AccountOut,
    /// Devices known.
    pub devices: u64,
    /// Components the caller sees.
    pub components: u64,
    /// Deployments the caller sees (active ones).
    pub active_deployments: u64,
    /// Deployments the caller sees (all).
    pub deployments: u64,
}

/// Server status for the caller.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = StatusOut)), security(("bearer" = [])))]
async fn status(State(s): State<Arc<AppState>>, h: HeaderMap) -> ApiResult<Json<StatusOut>> {
    let c = caller(&s, &h).await?;
    let deps = s.admin.deployments(&c).await?;
    Ok(Json(StatusOut {
        version: env!("CARGO_PKG_VERSION").into(),
        backend: s.backend.into(),
        policy: format!("{:?}", s.policy),
        account: account_out(&c.account),
        devices: s.store.devices().await?.len() as u64,
        components: s.admin.components(&c).await?.len() as u64,
        active_deployments: deps
            .iter()
            .filter(|d| d.state == DeploymentState::Active)
            .count() as u64,
        deployments: deps.len() as u64,
    }))
}

// --- OpenAPI -----------------------------------------------------------------------------

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document of the admin API (served at `/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(title = "OpenTrust TAM admin API", description = "Accounts, SDs, devices, the TA catalog, deployments and the audit log of an OpenTrust TAM. TEEP itself is served at POST /tam (application/teep+cbor), and OTrP at the same URI (application/otrp+json)."),
    paths(whoami, create_account, list_accounts, approve_sp, create_sd, list_sds, register_sp_cert,
        register_device, list_devices, set_tags, revoke_device,
        upload_component, list_components, get_component, cosign,
        create_deployment, list_deployments, get_deployment, pause, resume, abort,
        personalize, audit_log, status,
        rotate_sd_signer, list_reference_values, put_reference_values, delete_reference_values),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The `/api/v1` routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/accounts", post(create_account).get(list_accounts))
        .route("/api/v1/sps/{id}/approve", post(approve_sp))
        .route("/api/v1/sds", post(create_sd).get(list_sds))
        .route("/api/v1/sp/certs", post(register_sp_cert))
        .route("/api/v1/devices", post(register_device).get(list_devices))
        .route("/api/v1/devices/{id}/tags", post(set_tags))
        .route("/api/v1/devices/{id}/revoke", post(revoke_device))
        .route(
            "/api/v1/components",
            post(upload_component).get(list_components),
        )
        .route("/api/v1/components/{component}", get(get_component))
        .route("/api/v1/components/{component}/cosign", post(cosign))
        .route(
            "/api/v1/deployments",
            post(create_deployment).get(list_deployments),
        )
        .route("/api/v1/deployments/{id}", get(get_deployment))
        .route("/api/v1/deployments/{id}/pause", post(pause))
        .route("/api/v1/deployments/{id}/resume", post(resume))
        .route("/api/v1/deployments/{id}/abort", post(abort))
        .route("/api/v1/personalization", post(personalize))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/status", get(status))
        .route("/api/v1/sds/{name}/rotate-signer", post(rotate_sd_signer))
        .route("/api/v1/reference-values", get(list_reference_values))
        .route(
            "/api/v1/reference-values/{model}",
            axum::routing::put(put_reference_values).delete(delete_reference_values),
        )
}

/// How long a CLI waits between progress polls by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_rollouts_round_trip() {
        for t in ["all", "device:ab01", "tag:eu", "model:door-lock"] {
            let parsed = parse_target(t);
            assert_eq!(parsed.as_ref().map(target_str).as_deref(), Some(t));
        }
        assert_eq!(parse_target("model:"), None);
        assert_eq!(parse_target("planet:mars"), None);
        for r in ["full", "10%", "count:3"] {
            assert_eq!(parse_rollout(r).map(rollout_str).as_deref(), Some(r));
        }
        assert_eq!(parse_rollout("101%"), None);
    }

    #[test]
    fn component_ids_parse_as_paths_or_hex() {
        let k = parse_component("sd1/hello-ta").ok();
        let expected = component_key(&[b"sd1".to_vec(), b"hello-ta".to_vec()]);
        assert_eq!(k.as_deref(), Some(expected.as_slice()));
        assert_eq!(component_display(&expected), "sd1/hello-ta");
        let via_hex = parse_component(&hex::encode(&expected)).ok();
        assert_eq!(via_hex, Some(expected));
        assert!(parse_component("sd1//x").is_err());
    }
}
