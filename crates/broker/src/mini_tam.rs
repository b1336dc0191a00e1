//! A minimal TEEP TAM speaking the Agent's Security-Domain model, for tests, demos and
//! load runs of the Broker, the TEE daemon and the fleet when no TAM server is at hand.
//!
//! It is deliberately small and **not a security boundary**: it signs with a TAM signer
//! key of the PKI (so the devices' Agents accept it), creates one SD for one SP (with the
//! OEM's authorization when it has the OEM key, which the OEM-gated configuration needs),
//! and installs, updates and removes the TAs it publishes; its tokens are one-time like a
//! real TAM's. It does not appraise evidence or verify the Agents' signatures (it never
//! learns their keys): the real TAM (`otrp tam serve`) does all of that.
//!
//! Components are `[sd-name, ta-name]`; personalization data for a TA is
//! `[sd-name, ta-name, "perso"]` (see `otrp_tee_daemon::store`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use otrp_agent::{OemAuthorization, SdDescriptor};
use otrp_cose::{CoseMessage, SignOptions};
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey};
use otrp_suit::{CborItem, ComponentId, Digest, TaManifestBuilder};
use otrp_teep::{
    DataItemRequested, QueryRequest, QueryResponse, SuitCoseProfile, TeepCipherSuite, TeepMessage,
    Update,
};
use rand::RngCore;

use crate::session::TEEP_CBOR;

/// Why the mini TAM refused a message (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum MiniTamError {
    /// Not a COSE-signed TEEP message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No token, an unknown one, or one already used.
    #[error("unknown or already used token")]
    Token,
    /// A message that does not answer what the token was sent with.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// Building or signing a message failed.
    #[error("signing: {0}")]
    Sign(String),
}

/// The keys of the mini TAM.
#[derive(Clone)]
pub struct MiniTamKeys {
    /// TAM signer (its certificate must chain to the devices' TAM root).
    pub tam: PrivateKey,
    /// SP TA signer (authorized for the SD).
    pub sp: PrivateKey,
    /// OEM signer, to authorize the SP (OEM-gated devices).
    pub oem: Option<PrivateKey>,
}

impl std::fmt::Debug for MiniTamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniTamKeys").finish_non_exhaustive()
    }
}

impl MiniTamKeys {
    /// The PKI's first TAM signer, first SP signer and OEM signer.
    pub fn from_pki(pki: &otrp_pki::Pki) -> Result<MiniTamKeys, otrp_pki::PkiError> {
        let tam = pki.private_key(&pki.first_issued(otrp_pki::CertKind::Tam)?.key.clone())?;
        let sp = pki.private_key(&pki.first_issued(otrp_pki::CertKind::Sp)?.key.clone())?;
        Ok(MiniTamKeys {
            tam,
            sp,
            oem: pki.oem_key().ok(),
        })
    }
}

#[derive(Debug, Clone)]
struct Published {
    component: ComponentId,
    envelope: Vec<u8>,
    digest: Vec<u8>,
    deploy: bool,
    retired: bool,
}

/// A component a device reported: its id segments and encoded image digest.
type Installed = (Vec<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug)]
enum Pending {
    Query,
    Update,
}

/// Counters of the mini TAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MiniTamStats {
    /// Sessions opened (empty POSTs).
    pub sessions: u64,
    /// Updates sent.
    pub updates: u64,
    /// Success messages received.
    pub successes: u64,
    /// Error messages received.
    pub errors: u64,
    /// Messages refused (bad or replayed token, malformed).
    pub refused: u64,
}

struct Inner {
    catalog: BTreeMap<String, Published>,
    tokens: HashMap<Vec<u8>, Pending>,
    blobs: HashMap<String, Vec<u8>>,
    stats: MiniTamStats,
    base_url: Option<String>,
    sd_manifest: Vec<u8>,
}

/// The mini TAM (cheap to clone; shared state).
#[derive(Clone)]
pub struct MiniTam {
    provider: &'static dyn CryptoProvider,
    keys: MiniTamKeys,
    sd: Vec<u8>,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MiniTam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniTam")
            .field("sd", &String::from_utf8_lossy(&self.sd))
            .finish_non_exhaustive()
    }
}

fn sign_err(e: impl std::fmt::Display) -> MiniTamError {
    MiniTamError::Sign(e.to_string())
}

impl MiniTam {
    /// A TAM managing SD `sd_name` for SP `sp_id`.
    pub fn new(keys: MiniTamKeys, sd_name: &str, sp_id: &str) -> Result<MiniTam, MiniTamError> {
        let provider = otrp_crypto::default_provider();
        let authorization = match &keys.oem {
            Some(oem) => Some(
                OemAuthorization::sign(provider, oem, sp_id, &keys.tam.public_key())
                    .map_err(sign_err)?,
            ),
            None => None,
        };
        let desc = SdDescriptor {
            name: sd_name.as_bytes().to_vec(),
            sp_id: sp_id.into(),
            signers: vec![keys.sp.public_key()],
            authorization,
            tam: None,
        };
        let bytes = desc.to_cbor().map_err(sign_err)?;
        let sd_manifest = TaManifestBuilder::new(otrp_agent::sd::sd_component_id(&desc.name), 1)
            .image_of(&bytes)
            .integrated_payload("#sd", bytes)
            .uninstall(true)
            .build_signed(provider, &keys.tam, &SignOptions::default())
            .map_err(sign_err)?
            .encode()
            .map_err(sign_err)?;
        Ok(MiniTam {
            provider,
            keys,
            sd: sd_name.as_bytes().to_vec(),
            inner: Arc::new(Mutex::new(Inner {
                catalog: BTreeMap::new(),
                tokens: HashMap::new(),
                blobs: HashMap::new(),
                stats: MiniTamStats::default(),
                base_url: None,
                sd_manifest,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters.
    pub fn stats(&self) -> MiniTamStats {
        self.lock().stats
    }

    /// The component id of TA `name`: `[sd-name, name]`.
    pub fn component(&self, name: &str) -> ComponentId {
        ComponentId(vec![self.sd.clone(), name.as_bytes().to_vec()])
    }

    fn put(
        &self,
        name: &str,
        component: ComponentId,
        b: TaManifestBuilder,
        image: &[u8],
        deploy: bool,
    ) -> Result<ComponentId, MiniTamError> {
        let envelope = b
            .uninstall(true)
            .build_signed(self.provider, &self.keys.sp, &SignOptions::default())
            .map_err(sign_err)?
            .encode()
            .map_err(sign_err)?;
        let digest = Digest::sha256(image).to_cbor().map_err(sign_err)?;
        self.lock().catalog.insert(
            name.to_string(),
            Published {
                component: component.clone(),
                envelope,
                digest,
                deploy,
                retired: false,
            },
        );
        Ok(component)
    }

    /// Publishes (or updates, with a higher `seq`) TA `name` with its image in the
    /// manifest. With `deploy` every device gets it; otherwise only devices whose Client
    /// App requests it (RequestTA).
    pub fn publish(
        &self,
        name: &str,
        image: &[u8],
        seq: u64,
        deploy: bool,
    ) -> Result<ComponentId, MiniTamError> {
        let c = self.component(name);
        let b = TaManifestBuilder::new(c.clone(), seq)
            .image_of(image)
            .integrated_payload("#tc", image.to_vec());
        self.put(name, c, b, image, deploy)
    }

    /// Like [`MiniTam::publish`], but the image is fetched by the Broker from this TAM's
    /// `/blobs/` URI (needs [`MiniTam::serve`] or [`MiniTam::set_base_url`] first).
    pub fn publish_by_uri(
        &self,
        name: &str,
        image: &[u8],
        seq: u64,
        deploy: bool,
    ) -> Result<ComponentId, MiniTamError> {
        let base = self
            .lock()
            .base_url
            .clone()
            .ok_or_else(|| MiniTamError::Sign("no base URL yet".into()))?;
        let blob = format!("{name}-{seq}.wasm");
        let uri = format!("{base}/blobs/{blob}");
        self.lock().blobs.insert(blob, image.to_vec());
        let c = self.component(name);
        let b = TaManifestBuilder::new(c.clone(), seq)
            .image_of(image)
            .uri(uri);
        self.put(name, c, b, image, deploy)
    }

    /// Publishes personalization data for TA `ta_name` (component `[sd, ta, "perso"]`),
    /// deployed to every device.
    pub fn publish_perso(
        &self,
        ta_name: &str,
        data: &[u8],
        seq: u64,
    ) -> Result<ComponentId, MiniTamError> {
        let c = ComponentId(vec![
            self.sd.clone(),
            ta_name.as_bytes().to_vec(),
            b"perso".to_vec(),
        ]);
        let b = TaManifestBuilder::new(c.clone(), seq)
            .image_of(data)
            .integrated_payload("#perso", data.to_vec());
        self.put(&format!("{ta_name}/perso"), c, b, data, true)
    }

    /// Removes TA `name` from every device that has it.
    pub fn retire(&self, name: &str) {
        if let Some(p) = self.lock().catalog.get_mut(name) {
            p.retired = true;
            p.deploy = false;
        }
    }

    /// Sets the URL under which this TAM is reached (for [`MiniTam::publish_by_uri`]).
    pub fn set_base_url(&self, url: &str) {
        self.lock().base_url = Some(url.trim_end_matches('/').to_string());
    }

    fn token(&self, inner: &mut Inner, pending: Pending) -> Vec<u8> {
        let mut t = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut t);
        inner.tokens.insert(t.clone(), pending);
        t
    }

    fn sign(&self, msg: &TeepMessage) -> Result<Vec<u8>, MiniTamError> {
        otrp_teep::signed::sign1(self.provider, &self.keys.tam, msg, AlgIdGeneration::New)
            .map_err(sign_err)
    }

    /// One TEEP-over-HTTP step: an empty body opens a session (QueryRequest); a message
    /// gets the next message, or `None` (204) when the session is over.
    pub fn process(&self, body: &[u8]) -> Result<Option<Vec<u8>>, MiniTamError> {
        let r = self.process_inner(body);
        if r.is_err() {
            self.lock().stats.refused += 1;
        }
        r
    }

    fn process_inner(&self, body: &[u8]) -> Result<Option<Vec<u8>>, MiniTamError> {
        let mut inner = self.lock();
        if body.is_empty() {
            inner.stats.sessions += 1;
            let token = self.token(&mut inner, Pending::Query);
            let mut challenge = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut challenge);
            let qr = QueryRequest::new(
                vec![
                    TeepCipherSuite::SIGN1_ESP256,
                    TeepCipherSuite::SIGN1_ED25519,
                ],
                vec![SuitCoseProfile::SHA256_ESP256_ECDH_A128CTR],
                DataItemRequested(
                    DataItemRequested::ATTESTATION.bits()
                        | DataItemRequested::TRUSTED_COMPONENTS.bits(),
                ),
            )
            .with_token(token)
            .with_challenge(challenge);
            drop(inner);
            return self.sign(&TeepMessage::QueryRequest(qr)).map(Some);
        }
        let payload = match otrp_cose::peek(body) {
            Ok(CoseMessage::Sign1(m)) => m.payload.unwrap_or_default(),
            Ok(_) => return Err(MiniTamError::Malformed("not a COSE_Sign1".into())),
            Err(e) => return Err(MiniTamError::Malformed(e.to_string())),
        };
        let msg =
            otrp_teep::decode_any(&payload).map_err(|e| MiniTamError::Malformed(e.to_string()))?;
        let token = match &msg {
            TeepMessage::QueryResponse(m) => m.token.clone(),
            TeepMessage::Success(m) => m.token.clone(),
            TeepMessage::Error(m) => m.token.clone(),
            _ => return Err(MiniTamError::Unexpected("message from an Agent")),
        };
        let pending = token
            .and_then(|t| inner.tokens.remove(&t))
            .ok_or(MiniTamError::Token)?;
        match (pending, msg) {
            (Pending::Query, TeepMessage::QueryResponse(qr)) => {
                let Some(update) = self.plan(&inner, &qr) else {
                    return Ok(None);
                };
                let token = self.token(&mut inner, Pending::Update);
                inner.stats.updates += 1;
                drop(inner);
                self.sign(&TeepMessage::Update(update.with_token(token)))
                    .map(Some)
            }
            (Pending::Update, TeepMessage::Success(_)) => {
                inner.stats.successes += 1;
                Ok(None)
            }
            (Pending::Update, TeepMessage::Error(e)) => {
                inner.stats.errors += 1;
                tracing::warn!(code = ?e.err_code, msg = ?e.err_msg, "Agent answered Error");
                Ok(None)
            }
            (Pending::Query, TeepMessage::Error(e)) => {
                inner.stats.errors += 1;
                tracing::warn!(code = ?e.err_code, msg = ?e.err_msg, "Agent refused the QueryRequest");
                Ok(None)
            }
            _ => Err(MiniTamError::Unexpected("message for this token")),
        }
    }

    /// The Update a device needs, from its QueryResponse (None: nothing to do).
    fn plan(&self, inner: &Inner, qr: &QueryResponse) -> Option<Update> {
        let installed: Vec<Installed> = qr
            .tc_list
            .iter()
            .flatten()
            .map(|tc| {
                let digest = tc.parameters.iter().find_map(|(k, v)| {
                    (k.as_integer() == Some(otrp_teep::SystemPropertyClaims::IMAGE_DIGEST.into()))
                        .then(|| v.as_bytes().cloned())
                        .flatten()
                });
                (tc.component_id.0.clone(), digest)
            })
            .collect();
        let has = |c: &ComponentId| installed.iter().find(|(i, _)| *i == c.0);
        let requested: Vec<Vec<Vec<u8>>> = qr
            .requested_tc_list
            .iter()
            .flatten()
            .map(|r| r.component_id.0.clone())
            .collect();
        let mut manifests = Vec::new();
        let mut unneeded: Vec<otrp_teep::ComponentId> = qr
            .unneeded_manifest_list
            .iter()
            .flatten()
            .filter(|id| has(&ComponentId(id.0.clone())).is_some())
            .cloned()
            .collect();
        for p in inner.catalog.values() {
            let present = has(&p.component);
            if p.retired {
                if present.is_some() && !unneeded.iter().any(|u| u.0 == p.component.0) {
                    unneeded.push(otrp_teep::ComponentId(p.component.0.clone()));
                }
                continue;
            }
            let wanted = p.deploy || requested.contains(&p.component.0);
            let unwanted = unneeded.iter().any(|u| u.0 == p.component.0);
            let current = present.is_some_and(|(_, d)| d.as_deref() == Some(p.digest.as_slice()));
            if wanted && !unwanted && !current {
                manifests.push(p.envelope.clone());
            }
        }
        if manifests.is_empty() && unneeded.is_empty() {
            return None;
        }
        let sd_id = otrp_agent::sd::sd_component_id(&self.sd);
        if !manifests.is_empty() && has(&sd_id).is_none() {
            manifests.insert(0, inner.sd_manifest.clone());
        }
        let mut up = Update::new();
        if !manifests.is_empty() {
            up = up.with_manifests(manifests);
        }
        if !unneeded.is_empty() {
            up = up.with_unneeded_manifest_list(unneeded);
        }
        Some(up)
    }

    /// The axum router: `POST /tam` (TEEP over HTTP) and `GET /blobs/{name}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/tam", post(teep_post))
            .route("/blobs/{name}", get(blob_get))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown`; sets the base URL from the bound address.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr: SocketAddr = listener.local_addr()?;
        self.set_base_url(&format!("http://{addr}"));
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn teep_post(State(tam): State<MiniTam>, headers: HeaderMap, body: Bytes) -> Response {
    if !body.is_empty() {
        let ok = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(TEEP_CBOR));
        if !ok {
            return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
        }
    }
    let result = tokio::task::spawn_blocking(move || tam.process(&body)).await;
    match result {
        Ok(Ok(Some(bytes))) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(TEEP_CBOR)),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'"),
                ),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Ok(None)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn blob_get(State(tam): State<MiniTam>, Path(name): Path<String>) -> Response {
    match tam.lock().blobs.get(&name) {
        Some(b) => (StatusCode::OK, b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
