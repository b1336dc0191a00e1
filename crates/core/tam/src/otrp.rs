//! OTrP session rules of the TAM (draft-ietf-teep-opentrustprotocol-03; spec notes §2,
//! §3), over the same store, catalog and deployments as TEEP.
//!
//! # The HTTP shell's contract
//!
//! [`OtrpSession::process_otrp`] has the shape of [`crate::Tam::process`]: POST body in
//! (media type [`MEDIA_TYPE`], `application/otrp+json`), an [`Outcome`] out — a reply to
//! return with 200 and that media type, or [`Outcome::Done`] for 204. An empty body opens
//! a session (the TAM sends GetDeviceStateRequest); every later body is the Broker's
//! relay of the TEE's response (`GetDeviceStateResponse` array, a bare
//! `GetDeviceTEEStateResponse`, or `xyzResponse`). Errors map to 400 (refused input) or
//! 500 ([`OtrpError::http_status`]). All session state lives in the store (one-time
//! `rid`s, the device's last DSI and `dsihash`), so any replica takes the next message.
//!
//! # Session rules
//!
//! 1. GetDeviceState first. Its response is opened as §9.1.7 says: decrypt `edsi` with
//!    the TAM key, take the TEE certificate from it, validate its chain to the TEE roots
//!    ([`OtrpTamConfig::tee_roots`], otrp-pki `TrustStore`, usage TEE attestation) when
//!    configured, verify the JWS with it; check `tfwdata` (its `tbs` must be the `tid`
//!    this TAM issued — one-time, so a replayed DSI is refused —, its certificate (with
//!    the extension member `tfwdata.cacert`, the CAs above it) chains
//!    to the TFW roots, names the same device (ueid) as the TEE certificate, and its
//!    signature over the `tid` verifies); record the DSI and its `dsihash`
//!    ([`otrp_agent::otrp::dsi_hash`]).
//! 2. Then one command per round trip, chosen from the active deployments that target
//!    the device (same targeting and staged rollout as TEEP): CreateSD when a deployed
//!    TA's SD is missing (the SP's registered `spcert`, [`OtrpSession::register_sp_cert`]),
//!    InstallTA when the TA is missing, UpdateTA when a newer manifest is ready,
//!    DeleteTA for removal deployments, then DeleteSD for an empty SD no deployment
//!    needs. Every command carries the session's `tid`, the last `dsihash` and
//!    `nextdsi: true`, so the TAM tracks the device state from each response. On
//!    OEM-gated devices a CreateSD carries the OEM's authorization of this TAM for the
//!    SP ([`OtrpTamConfig::oem_authorizations`], header member `oemauth`).
//! 3. TAs: an OTrP TA is a catalog component whose id is `[sdname, taid]` (UTF-8); the
//!    latest ready SUIT envelope (SP-signed; OEM co-signed under dual control) is sealed
//!    to the SP's AIK from the DSI ([`otrp_agent::otrp::package`]).
//! 4. Answers are verified with the TEE certificate recorded for the device, and their
//!    `rid` consumed once (a replayed or foreign response is refused, nothing recorded).
//!    A `fail` answer ends the session and marks the deployment progress failed with
//!    the error code.
//!
//! Not done: OCSP stapling (`ocspdat` is sent empty; the TEE side checks revocation out
//! of band), several TEEs per device (the first response of the array is used), and
//! dual-control CreateSD/UpdateSD (they need an OEM JWS signature per request, which
//! this TAM does not hold: the OEM's TAM creates SDs in that configuration).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use otrp_agent::otrp::{did_of, dsi_hash, package};
use otrp_crypto::{CryptoProvider, PrivateKey, PublicKey, SigAlg};
use otrp_json::{
    CommandTbsResponse, Content, ContentEnc, Dsi, DsiDocument, LegacyMode, MessageKind,
    OtrpMessage, Reason, RecipientKey, SignedResponse, Signer, Status, TbsRequest, TbsResponse,
    VerifyPolicy, OTRP_VERSION,
};
use otrp_pki::cert::CertInfo;
use otrp_pki::{TrustStore, Usage};
use otrp_store::{
    ConsumeRefusal, DeploymentAction, DeploymentState, DeviceRecord, OtrpDeviceRecord,
    OtrpRequestRecord, ProgressRecord, ProgressState, Rollout, SentItem, SpCertRecord, Store,
    StoreError,
};
use rand_core::CryptoRngCore;

use crate::session::{progress_record, Outcome};

/// The OTrP media type ([IETF-03] §13).
pub const MEDIA_TYPE: &str = "application/otrp+json";

/// Why an OTrP message was refused (nothing is recorded unless noted).
#[derive(Debug, thiserror::Error)]
pub enum OtrpError {
    /// Not an OTrP response this TAM can read.
    #[error("malformed OTrP message: {0}")]
    Malformed(String),
    /// The response names a request this TAM never sent.
    #[error("unknown rid {0}")]
    UnknownRequest(String),
    /// The request was already answered (replay).
    #[error("rid {0} was already answered")]
    Replayed(String),
    /// The request expired.
    #[error("rid {0} expired")]
    Expired(String),
    /// The response does not answer the request its rid names.
    #[error("response mismatch: {0}")]
    Mismatch(String),
    /// The TEE certificate does not chain to the TEE roots (or is unreadable).
    #[error("TEE certificate refused: {0}")]
    TeeCert(String),
    /// The TEE's signature does not verify.
    #[error("TEE signature refused: {0}")]
    BadSignature(String),
    /// `edsi` / `content` could not be decrypted.
    #[error("decryption failed: {0}")]
    Decrypt(String),
    /// The firmware evidence (`tfwdata`) is missing, stale or does not verify.
    #[error("TFW evidence refused: {0}")]
    Tfw(String),
    /// Building or signing the next request failed.
    #[error("building the request: {0}")]
    Build(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl OtrpError {
    /// 400 for refused input, 500 for the TAM's own failures.
    pub fn http_status(&self) -> u16 {
        match self {
            OtrpError::Build(_) | OtrpError::Store(_) => 500,
            _ => 400,
        }
    }
}

/// The TAM's OTrP identity and policy.
#[derive(Clone)]
pub struct OtrpTamConfig {
    /// The TAM signing key (P-256 or RSA); `edsi` and responses are encrypted to it.
    pub key: PrivateKey,
    /// Its certificate chain (DER, leaf first), sent as `x5c`.
    pub chain: Vec<Vec<u8>>,
    /// Its `tamid` (from its certificate).
    pub tamid: String,
    /// TEE roots: when set, the TEE certificate must chain to one of them.
    pub tee_roots: Option<TrustStore>,
    /// TFW roots: when set, the TFW certificate must chain to one of them.
    pub tfw_roots: Option<TrustStore>,
    /// Refuse a DSI without `tfwdata`.
    pub require_tfw: bool,
    /// Lifetime of a request (seconds).
    pub request_ttl: u64,
    /// Accept RSA1_5 key transport in TEE responses (legacy devices only).
    pub legacy: LegacyMode,
    /// OEM authorizations of this TAM per SP (`(sp_id, OemAuthorization COSE bytes)`,
    /// OEM-gated devices): sent with that SP's CreateSD in the unprotected JWS header
    /// member `oemauth` (standard BASE64), as the Agent expects.
    pub oem_authorizations: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for OtrpTamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtrpTamConfig")
            .field("tamid", &self.tamid)
            .field("require_tfw", &self.require_tfw)
            .finish_non_exhaustive()
    }
}

/// The OTrP side of the TAM core.
pub struct OtrpSession {
    store: Arc<dyn Store>,
    config: OtrpTamConfig,
    provider: &'static dyn CryptoProvider,
}

impl std::fmt::Debug for OtrpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtrpSession")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn random_id(rng: &mut impl CryptoRngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

fn refusal(r: ConsumeRefusal, rid: &str) -> OtrpError {
    match r {
        ConsumeRefusal::Unknown => OtrpError::UnknownRequest(rid.into()),
        ConsumeRefusal::Replayed => OtrpError::Replayed(rid.into()),
        ConsumeRefusal::Expired => OtrpError::Expired(rid.into()),
    }
}

fn bucket(provider: &dyn CryptoProvider, deployment_id: i64, device_id: &str) -> u8 {
    let mut input = deployment_id.to_be_bytes().to_vec();
    input.extend_from_slice(device_id.as_bytes());
    let h = provider.sha256(&input);
    (u16::from_be_bytes([h[0], h[1]]) % 100) as u8
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, OtrpError> {
    STANDARD
        .decode(text)
        .map_err(|e| OtrpError::Malformed(format!("{what}: {e}")))
}

fn system_time(now: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(now)
}

/// The `(sdname, taid)` of an OTrP TA component id `[sdname, taid]`. An
/// `[sdname, "sd"]` component is the TEEP SD manifest of that SD
/// ([`otrp_agent::sd::SD_SEGMENT`]), not a TA: OTrP creates SDs with CreateSD.
pub fn ta_of_component(id: &[Vec<u8>]) -> Option<(String, String)> {
    match id {
        [_, ta] if ta.as_slice() == otrp_agent::sd::SD_SEGMENT => None,
        [sd, ta] => Some((
            String::from_utf8(sd.clone()).ok()?,
            String::from_utf8(ta.clone()).ok()?,
        )),
        _ => None,
    }
}

/// The next command chosen for a device.
enum Next {
    CreateSd {
        sdname: String,
        spid: String,
        spcert: Vec<u8>,
    },
    InstallTa {
        sdname: String,
        spid: String,
        taid: String,
        envelope: Vec<u8>,
        item: SentItem,
        update: bool,
    },
    DeleteTa {
        sdname: String,
        taid: String,
        item: SentItem,
    },
    DeleteSd {
        sdname: String,
    },
}

impl OtrpSession {
    /// The OEM authorizations per SP this TAM sends with a CreateSD
    /// ([`OtrpTamConfig::oem_authorizations`]; the batch package carries them too).
    pub fn oem_authorizations(&self) -> &[(String, Vec<u8>)] {
        &self.config.oem_authorizations
    }

    /// The OTrP session rules over `store`.
    pub fn new(
        store: Arc<dyn Store>,
        config: OtrpTamConfig,
        provider: &'static dyn CryptoProvider,
    ) -> Self {
        OtrpSession {
            store,
            config,
            provider,
        }
    }

    /// Registers an SP's TA-signer certificate (DER): the `spcert` of its SDs.
    pub async fn register_sp_cert(
        &self,
        sp_id: &str,
        cert_der: &[u8],
        now: u64,
    ) -> Result<(), OtrpError> {
        CertInfo::from_der(cert_der).map_err(|e| OtrpError::Malformed(format!("spcert: {e}")))?;
        self.store
            .add_sp_cert(&SpCertRecord {
                sp_id: sp_id.into(),
                cert: cert_der.to_vec(),
                created_at: now,
            })
            .await?;
        Ok(())
    }

    fn signer(&self) -> Signer<'_> {
        let kid = otrp_crypto::jwk::thumbprint_b64(&self.config.key.public_key(), self.provider);
        Signer::new(&self.config.key).with_kid(kid).with_x5c(
            self.config
                .chain
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect(),
        )
    }

    fn sign(&self, tbs: &TbsRequest) -> Result<Vec<u8>, OtrpError> {
        otrp_json::sign_request(self.provider, &self.signer(), tbs)
            .map_err(|e| OtrpError::Build(e.to_string()))
    }

    /// Processes one HTTP body: empty opens a session (GetDeviceStateRequest), otherwise
    /// a TEE response relayed by the Broker. `device_hint` only helps logging; identity
    /// always comes from the TEE certificate and signatures.
    pub async fn process_otrp<R: CryptoRngCore + Send>(
        &self,
        device_hint: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, OtrpError> {
        let _ = device_hint;
        if body.is_empty() {
            return self.get_device_state(now, rng).await;
        }
        let signed: SignedResponse =
            match otrp_json::decode_any(body).map_err(|e| OtrpError::Malformed(e.to_string()))? {
                OtrpMessage::Response(s) => s,
                OtrpMessage::DeviceStateResponses(items) => {
                    let first = items.into_iter().next().ok_or_else(|| {
                        OtrpError::Malformed("empty GetDeviceStateResponse array".into())
                    })?;
                    SignedResponse {
                        kind: MessageKind::GetDeviceState,
                        jws: first.jws,
                    }
                }
                other => {
                    return Err(OtrpError::Malformed(format!(
                        "`{}` is not a TEE response",
                        other.name()
                    )))
                }
            };
        let unverified = signed
            .unverified_payload()
            .map_err(|e| OtrpError::Malformed(e.to_string()))?;
        let (rid, tid) = unverified.ids();
        let req = self
            .store
            .otrp_request(rid)
            .await?
            .ok_or_else(|| OtrpError::UnknownRequest(rid.into()))?;
        if req.consumed_at.is_some() {
            return Err(OtrpError::Replayed(rid.into()));
        }
        if now >= req.expires_at {
            return Err(OtrpError::Expired(rid.into()));
        }
        if req.kind != signed.kind.command() || req.tid != tid {
            return Err(OtrpError::Mismatch(format!(
                "{} (tid {tid}) answers a {} (tid {})",
                signed.kind.command(),
                req.kind,
                req.tid
            )));
        }
        if signed.kind == MessageKind::GetDeviceState {
            self.device_state(&signed, &req, now, rng).await
        } else {
            self.command_response(&signed, &req, now, rng).await
        }
    }

    async fn get_device_state(
        &self,
        now: u64,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<Outcome, OtrpError> {
        let rid = random_id(rng);
        let tid = random_id(rng);
        let bytes = self.sign(&TbsRequest::GetDeviceState(
            otrp_json::GetDeviceStateTbsRequest {
                ver: OTRP_VERSION.into(),
                rid: rid.clone(),
                tid: tid.clone(),
                ocspdat: Vec::new(),
                supportedsigalgs: None,
            },
        ))?;
        self.store
            .insert_otrp_request(&OtrpRequestRecord {
                rid,
                device_id: None,
                tid,
                kind: MessageKind::GetDeviceState.command().into(),
                sent: Vec::new(),
                created_at: now,
                expires_at: now.saturating_add(self.config.request_ttl),
                consumed_at: None,
            })
            .await?;
        Ok(Outcome::Reply(bytes))
    }

    fn tee_key(&self, cert: &[u8], chain: &[Vec<u8>], now: u64) -> Result<PublicKey, OtrpError> {
        match &self.config.tee_roots {
            Some(roots) => roots
                .verify(cert, chain, Usage::TeeAttestation, system_time(now))
                .map(|v| v.public_key)
                .map_err(|e| OtrpError::TeeCert(e.to_string())),
            None => CertInfo::from_der(cert)
                .and_then(|c| c.public_key())
                .map_err(|e| OtrpError::TeeCert(e.to_string())),
        }
    }

    fn check_tfw(&self, dsi: &Dsi, tid: &str, tee_cert: &[u8], now: u64) -> Result<(), OtrpError> {
        let Some(tfw) = &dsi.tfwdata else {
            return if self.config.require_tfw {
                Err(OtrpError::Tfw("the DSI carries no tfwdata".into()))
            } else {
                Ok(())
            };
        };
        if b64(&tfw.tbs, "tfwdata.tbs")? != tid.as_bytes() {
            return Err(OtrpError::Tfw(
                "tfwdata.tbs is not the tid of this GetDeviceState (stale or replayed)".into(),
            ));
        }
        let cert = b64(&tfw.cert, "tfwdata.cert")?;
        let info = CertInfo::from_der(&cert).map_err(|e| OtrpError::Tfw(e.to_string()))?;
        let mut chain = Vec::new();
        if let Some(list) = tfw.extra.get("cacert").and_then(|v| v.as_array()) {
            for (i, c) in list.iter().enumerate() {
                let text = c
                    .as_str()
                    .ok_or_else(|| OtrpError::Malformed(format!("tfwdata.cacert[{i}]")))?;
                chain.push(b64(text, "tfwdata.cacert")?);
            }
        }
        let key = match &self.config.tfw_roots {
            Some(roots) => {
                roots
                    .verify(&cert, &chain, Usage::TfwAttestation, system_time(now))
                    .map_err(|e| OtrpError::Tfw(format!("certificate: {e}")))?
                    .public_key
            }
            None => info
                .public_key()
                .map_err(|e| OtrpError::Tfw(e.to_string()))?,
        };
        let tee_ueid = CertInfo::from_der(tee_cert).ok().and_then(|c| c.ueid);
        if let (Some(a), Some(b)) = (&info.ueid, &tee_ueid) {
            if a != b {
                return Err(OtrpError::Tfw(
                    "the TFW certificate is another device's".into(),
                ));
            }
        }
        let alg = SigAlg::from_jose(&tfw.sigalg)
            .ok_or_else(|| OtrpError::Tfw(format!("sigalg `{}`", tfw.sigalg)))?;
        self.provider
            .verify(alg, &key, tid.as_bytes(), &b64(&tfw.sig, "tfwdata.sig")?)
            .map_err(|e| OtrpError::Tfw(format!("signature over the tid: {e}")))
    }

    async fn device_state(
        &self,
        signed: &SignedResponse,
        req: &OtrpRequestRecord,
        now: u64,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<Outcome, OtrpError> {
        let TbsResponse::GetDeviceState(g) = signed
            .unverified_payload()
            .map_err(|e| OtrpError::Malformed(e.to_string()))?
        else {
            return Err(OtrpError::Mismatch("not a GetDeviceState response".into()));
        };
        // §9.1.7: the verification key is inside the encrypted DSI.
        let jwe = g
            .edsi
            .as_ref()
            .and_then(Content::jwe)
            .ok_or_else(|| OtrpError::Malformed(format!("no edsi (reason {:?})", g.reason)))?;
        let (doc, _) = otrp_json::decrypt_content::<DsiDocument>(
            self.provider,
            rng,
            jwe,
            &self.config.key,
            self.config.legacy,
        )
        .map_err(|e| OtrpError::Decrypt(format!("edsi: {e}")))?;
        let dsi = doc.dsi;
        let tee_cert = b64(&dsi.tee.cert, "dsi.tee.cert")?;
        let mut chain = Vec::new();
        for (i, c) in dsi.tee.cacert.iter().enumerate() {
            chain.push(b64(c, &format!("dsi.tee.cacert[{i}]"))?);
        }
        let tee_key = self.tee_key(&tee_cert, &chain, now)?;
        signed
            .verify(
                self.provider,
                std::slice::from_ref(&tee_key),
                VerifyPolicy::AnyOne,
            )
            .map_err(|e| OtrpError::BadSignature(e.to_string()))?;
        self.check_tfw(&dsi, &req.tid, &tee_cert, now)?;
        self.store
            .consume_otrp_request(&req.rid, now)
            .await?
            .map_err(|r| refusal(r, &req.rid))?;
        let info = CertInfo::from_der(&tee_cert).map_err(|e| OtrpError::TeeCert(e.to_string()))?;
        let device_id = match &info.ueid {
            Some(u) => hex::encode(u),
            None => hex::encode(self.provider.sha256(&tee_cert)),
        };
        let existing = self.store.device(&device_id).await?;
        let device = match existing {
            Some(d) => d,
            None => {
                let d = DeviceRecord {
                    id: device_id.clone(),
                    ueid: info.ueid.clone().unwrap_or_default(),
                    model: dsi.tee.name.clone(),
                    hwversion: dsi.tee.ver.clone(),
                    tags: Vec::new(),
                    suite_alg: None,
                    revoked: false,
                    created_at: now,
                };
                self.store.put_device(&d).await?;
                d
            }
        };
        if device.revoked {
            return Err(OtrpError::TeeCert(format!("device {device_id} is revoked")));
        }
        let mut state = dsi.clone();
        state.tfwdata = None;
        let rec = OtrpDeviceRecord {
            device_id: device_id.clone(),
            did: did_of(self.provider, &tee_cert),
            tee_name: dsi.tee.name.clone(),
            tee_cert,
            dsi: String::from_utf8(
                otrp_json::json::to_vec(&state).map_err(|e| OtrpError::Build(e.to_string()))?,
            )
            .map_err(|e| OtrpError::Build(e.to_string()))?,
            dsihash: dsi_hash(self.provider, &state),
            tid: req.tid.clone(),
            updated_at: now,
        };
        self.store.put_otrp_device(&rec).await?;
        self.next(&device, &rec, &state, now, rng).await
    }

    async fn command_response(
        &self,
        signed: &SignedResponse,
        req: &OtrpRequestRecord,
        now: u64,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<Outcome, OtrpError> {
        let device_id = req
            .device_id
            .clone()
            .ok_or_else(|| OtrpError::Mismatch("the request named no device".into()))?;
        let mut rec = self
            .store
            .otrp_device(&device_id)
            .await?
            .ok_or_else(|| OtrpError::Mismatch(format!("no OTrP state for {device_id}")))?;
        let tee_key = CertInfo::from_der(&rec.tee_cert)
            .and_then(|c| c.public_key())
            .map_err(|e| OtrpError::TeeCert(e.to_string()))?;
        let v = signed
            .verify(
                self.provider,
                std::slice::from_ref(&tee_key),
                VerifyPolicy::AnyOne,
            )
            .map_err(|e| OtrpError::BadSignature(e.to_string()))?;
        let (status, reason, content) = match &v.message {
            TbsResponse::CreateSd(r) => parts(r),
            TbsResponse::UpdateSd(r) => parts(r),
            TbsResponse::DeleteSd(r) => parts(r),
            TbsResponse::InstallTa(r) => parts(r),
            TbsResponse::UpdateTa(r) => parts(r),
            TbsResponse::DeleteTa(r) => parts(r),
            TbsResponse::GetDeviceState(_) => {
                return Err(OtrpError::Mismatch("GetDeviceState response".into()))
            }
        };
        let dsi = match (status, content) {
            (Status::Pass, Some(jwe)) => {
                let d = otrp_json::jose::decrypt(
                    self.provider,
                    rng,
                    &jwe,
                    &self.config.key,
                    self.config.legacy,
                )
                .map_err(|e| OtrpError::Decrypt(format!("content: {e}")))?;
                let body: ContentView = otrp_json::json::from_slice(&d.plaintext)
                    .map_err(|e| OtrpError::Malformed(format!("content: {e}")))?;
                if body.did != rec.did {
                    return Err(OtrpError::Mismatch(
                        "content.did names another device".into(),
                    ));
                }
                Some(
                    body.dsi
                        .ok_or_else(|| OtrpError::Malformed("no dsi (nextdsi was true)".into()))?,
                )
            }
            (Status::Pass, None) => {
                return Err(OtrpError::Malformed("pass without content".into()))
            }
            (Status::Fail, _) => None,
        };
        self.store
            .consume_otrp_request(&req.rid, now)
            .await?
            .map_err(|r| refusal(r, &req.rid))?;
        let Some(mut dsi) = dsi else {
            let code = match reason {
                Some(Reason::Coded(c)) => c.error_code.as_str().to_string(),
                Some(Reason::Detail(d)) => d,
                None => "fail".into(),
            };
            self.record(&device_id, &req.sent, ProgressState::Failed, &code, now)
                .await?;
            return Ok(Outcome::Done);
        };
        self.record(
            &device_id,
            &req.sent,
            ProgressState::Done,
            "otrp: pass",
            now,
        )
        .await?;
        dsi.tfwdata = None;
        rec.dsihash = dsi_hash(self.provider, &dsi);
        rec.dsi = String::from_utf8(
            otrp_json::json::to_vec(&dsi).map_err(|e| OtrpError::Build(e.to_string()))?,
        )
        .map_err(|e| OtrpError::Build(e.to_string()))?;
        rec.updated_at = now;
        self.store.put_otrp_device(&rec).await?;
        let device = self
            .store
            .device(&device_id)
            .await?
            .ok_or_else(|| OtrpError::Mismatch(format!("unknown device {device_id}")))?;
        self.next(&device, &rec, &dsi, now, rng).await
    }

    async fn record(
        &self,
        device_id: &str,
        sent: &[SentItem],
        state: ProgressState,
        detail: &str,
        now: u64,
    ) -> Result<(), OtrpError> {
        for s in sent {
            self.store
                .put_progress(&progress_record(s, device_id, state, detail, now))
                .await?;
        }
        Ok(())
    }

    /// What the device must change next, per the deployments (one command).
    async fn plan(
        &self,
        device: &DeviceRecord,
        dsi: &Dsi,
        now: u64,
    ) -> Result<Option<Next>, OtrpError> {
        let sd_of = |name: &str| dsi.tee.sdlist.sd.iter().find(|s| s.name == name);
        let mut needed_sds: Vec<String> = Vec::new();
        let mut actions: Vec<Next> = Vec::new();
        for dep in self.store.deployments(None).await? {
            if dep.state != DeploymentState::Active || !dep.target.matches(device) {
                continue;
            }
            let Some(comp) = self.store.component(&dep.component).await? else {
                continue;
            };
            let Some((sdname, taid)) =
                crate::component_id_of(&dep.component).and_then(|id| ta_of_component(&id))
            else {
                continue; // not an OTrP-shaped TA
            };
            if sdname != comp.sd_name {
                continue;
            }
            let prior = self
                .store
                .progress(dep.id, &device.id, &dep.component)
                .await?;
            let included = match dep.rollout {
                Rollout::Full => true,
                Rollout::Percent(p) => bucket(self.provider, dep.id, &device.id) < p,
                Rollout::Count(n) => {
                    let c = self.store.progress_counts(dep.id).await?;
                    prior.is_some() || c.sent + c.done + c.failed < n
                }
            };
            if !included {
                continue;
            }
            let present = sd_of(&sdname).is_some_and(|sd| sd.talist.iter().any(|t| t.taid == taid));
            match dep.action {
                DeploymentAction::Install => {
                    let Some(m) = self.store.latest_manifest(&dep.component, true).await? else {
                        continue;
                    };
                    needed_sds.push(sdname.clone());
                    let item = SentItem {
                        component: dep.component.clone(),
                        seq: m.seq,
                        deployment_id: dep.id,
                        delete: false,
                    };
                    if sd_of(&sdname).is_none() {
                        let Some(cert) = self.store.sp_certs(&comp.sp_id).await?.pop() else {
                            continue; // no spcert registered: cannot create the SD
                        };
                        actions.push(Next::CreateSd {
                            sdname,
                            spid: comp.sp_id.clone(),
                            spcert: cert.cert,
                        });
                    } else if !present {
                        actions.push(Next::InstallTa {
                            sdname,
                            spid: comp.sp_id.clone(),
                            taid,
                            envelope: m.envelope,
                            item,
                            update: false,
                        });
                    } else {
                        match &prior {
                            Some(p) if p.state == ProgressState::Done && p.seq < m.seq => actions
                                .push(Next::InstallTa {
                                    sdname,
                                    spid: comp.sp_id.clone(),
                                    taid,
                                    envelope: m.envelope,
                                    item,
                                    update: true,
                                }),
                            Some(p) if p.state == ProgressState::Done => {}
                            _ => {
                                // Installed by an earlier exchange we have no record of.
                                self.store
                                    .put_progress(&ProgressRecord {
                                        deployment_id: dep.id,
                                        device_id: device.id.clone(),
                                        component: dep.component.clone(),
                                        seq: m.seq,
                                        state: ProgressState::Done,
                                        detail: "already installed".into(),
                                        updated_at: now,
                                    })
                                    .await?;
                            }
                        }
                    }
                }
                DeploymentAction::Remove => {
                    if present {
                        actions.push(Next::DeleteTa {
                            sdname,
                            taid,
                            item: SentItem {
                                component: dep.component.clone(),
                                seq: 0,
                                deployment_id: dep.id,
                                delete: true,
                            },
                        });
                    }
                }
            }
        }
        if let Some(a) = actions.into_iter().next() {
            return Ok(Some(a));
        }
        // An empty SD no deployment needs any more.
        Ok(dsi
            .tee
            .sdlist
            .sd
            .iter()
            .find(|sd| sd.talist.is_empty() && !needed_sds.contains(&sd.name))
            .map(|sd| Next::DeleteSd {
                sdname: sd.name.clone(),
            }))
    }

    async fn next(
        &self,
        device: &DeviceRecord,
        rec: &OtrpDeviceRecord,
        dsi: &Dsi,
        now: u64,
        rng: &mut (impl CryptoRngCore + Send),
    ) -> Result<Outcome, OtrpError> {
        let Some(next) = self.plan(device, dsi, now).await? else {
            return Ok(Outcome::Done);
        };
        let tee = CertInfo::from_der(&rec.tee_cert)
            .and_then(|c| c.public_key())
            .map_err(|e| OtrpError::TeeCert(e.to_string()))?;
        let rid = random_id(rng);
        let build = |e: otrp_json::Error| OtrpError::Build(e.to_string());
        let to = [RecipientKey::new(&tee)];
        let enc = ContentEnc::A128CbcHs256;
        let tamid = self.config.tamid.clone();
        let mut created_spid = None;
        let (tbs, kind, sent) = match next {
            Next::CreateSd {
                sdname,
                spid,
                spcert,
            } => {
                created_spid = Some(spid.clone());
                let c = otrp_json::CreateSdContent {
                    spid,
                    sdname,
                    spcert: STANDARD.encode(spcert),
                    tamid,
                    did: rec.did.clone(),
                };
                let (content, _) =
                    otrp_json::encrypt_content(self.provider, rng, &c, enc, &to).map_err(build)?;
                (
                    TbsRequest::CreateSd(otrp_json::CreateSdTbsRequest {
                        ver: OTRP_VERSION.into(),
                        rid: rid.clone(),
                        tid: rec.tid.clone(),
                        tee: rec.tee_name.clone(),
                        nextdsi: true,
                        dsihash: rec.dsihash.clone(),
                        content,
                    }),
                    MessageKind::CreateSd,
                    Vec::new(),
                )
            }
            Next::InstallTa {
                sdname,
                spid,
                taid,
                envelope,
                item,
                update,
            } => {
                let aik = dsi
                    .tee
                    .teeaiklist
                    .iter()
                    .flatten()
                    .find(|a| a.spid == spid)
                    .ok_or_else(|| OtrpError::Malformed(format!("no AIK for SP {spid}")))?;
                let aik = PublicKey::from_spki_der(&b64(&aik.spaik, "spaik")?)
                    .map_err(|e| OtrpError::Malformed(format!("spaik: {e}")))?;
                let sealed = package::seal(self.provider, rng, &aik, Some(&envelope), None)
                    .map_err(|e| OtrpError::Build(e.to_string()))?;
                let c = otrp_json::TaContent {
                    tamid,
                    spid,
                    sdname,
                    spcert: None,
                    taid,
                };
                let (content, _) =
                    otrp_json::encrypt_content(self.provider, rng, &c, enc, &to).map_err(build)?;
                let (ver, tid, tee, dsihash) = (
                    OTRP_VERSION.to_string(),
                    rec.tid.clone(),
                    rec.tee_name.clone(),
                    rec.dsihash.clone(),
                );
                if update {
                    (
                        TbsRequest::UpdateTa(otrp_json::UpdateTaTbsRequest {
                            ver,
                            rid: rid.clone(),
                            tid,
                            tee,
                            nextdsi: true,
                            dsihash,
                            content,
                            encrypted_ta: sealed
                                .into_update()
                                .map_err(|e| OtrpError::Build(e.to_string()))?,
                        }),
                        MessageKind::UpdateTa,
                        vec![item],
                    )
                } else {
                    (
                        TbsRequest::InstallTa(otrp_json::InstallTaTbsRequest {
                            ver,
                            rid: rid.clone(),
                            tid,
                            tee,
                            nextdsi: true,
                            dsihash,
                            content,
                            encrypted_ta: sealed
                                .into_install()
                                .map_err(|e| OtrpError::Build(e.to_string()))?,
                        }),
                        MessageKind::InstallTa,
                        vec![item],
                    )
                }
            }
            Next::DeleteTa { sdname, taid, item } => {
                let c = otrp_json::DeleteTaContent {
                    tamid,
                    sdname,
                    taid,
                };
                let (content, _) =
                    otrp_json::encrypt_content(self.provider, rng, &c, enc, &to).map_err(build)?;
                (
                    TbsRequest::DeleteTa(otrp_json::DeleteTaTbsRequest {
                        ver: OTRP_VERSION.into(),
                        rid: rid.clone(),
                        tid: rec.tid.clone(),
                        tee: rec.tee_name.clone(),
                        nextdsi: true,
                        dsihash: rec.dsihash.clone(),
                        content,
                    }),
                    MessageKind::DeleteTa,
                    vec![item],
                )
            }
            Next::DeleteSd { sdname } => {
                let c = otrp_json::DeleteSdContent {
                    tamid,
                    sdname,
                    deleteta: false,
                };
                let (content, _) =
                    otrp_json::encrypt_content(self.provider, rng, &c, enc, &to).map_err(build)?;
                (
                    TbsRequest::DeleteSd(otrp_json::DeleteSdTbsRequest {
                        ver: OTRP_VERSION.into(),
                        rid: rid.clone(),
                        tid: rec.tid.clone(),
                        tee: rec.tee_name.clone(),
                        nextdsi: true,
                        dsihash: rec.dsihash.clone(),
                        content,
                    }),
                    MessageKind::DeleteSd,
                    Vec::new(),
                )
            }
        };
        let mut bytes = self.sign(&tbs)?;
        if let TbsRequest::CreateSd(c) = &tbs {
            let spid = match &c.content {
                Content::Plain(p) => Some(p.spid.clone()),
                Content::Encrypted(_) => created_spid.clone(),
            };
            if let Some(auth) = spid.and_then(|sp| {
                self.config
                    .oem_authorizations
                    .iter()
                    .find(|(s, _)| *s == sp)
                    .map(|(_, a)| a.clone())
            }) {
                bytes = with_oemauth(&bytes, &auth)?;
            }
        }
        self.store
            .insert_otrp_request(&OtrpRequestRecord {
                rid,
                device_id: Some(device.id.clone()),
                tid: rec.tid.clone(),
                kind: kind.command().into(),
                sent: sent.clone(),
                created_at: now,
                expires_at: now.saturating_add(self.config.request_ttl),
                consumed_at: None,
            })
            .await?;
        self.record(&device.id, &sent, ProgressState::Sent, "", now)
            .await?;
        Ok(Outcome::Reply(bytes))
    }
}

/// Adds `oemauth` to the unprotected header of a signed request (the header is not
/// signed; the authorization carries the OEM's own signature).
fn with_oemauth(bytes: &[u8], auth: &[u8]) -> Result<Vec<u8>, OtrpError> {
    put_oemauth(
        bytes,
        serde_json::Value::String(STANDARD.encode(auth)),
        "oemauth",
    )
}

/// Puts `value` as the unprotected header member `oemauth` of the signed OTrP message
/// `bytes` (`{"<Message>": JWS}`): in the header of a flattened JWS, or of the first
/// signature of a general one. `what` names the step in errors.
pub(crate) fn put_oemauth(
    bytes: &[u8],
    value: serde_json::Value,
    what: &str,
) -> Result<Vec<u8>, OtrpError> {
    let build = |e: String| OtrpError::Build(format!("{what}: {e}"));
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| build(e.to_string()))?;
    let jws = v
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|j| j.as_object_mut())
        .ok_or_else(|| build("not a signed message".into()))?;
    let sig = if jws.contains_key("signatures") {
        jws.get_mut("signatures")
            .and_then(|s| s.as_array_mut())
            .and_then(|s| s.first_mut())
            .and_then(|s| s.as_object_mut())
            .ok_or_else(|| build("no signature".into()))?
    } else {
        jws
    };
    let header = sig
        .entry("header")
        .or_insert_with(|| serde_json::Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| build("header is not an object".into()))?;
    header.insert("oemauth".into(), value);
    serde_json::to_vec(&v).map_err(|e| build(e.to_string()))
}

/// The members of any SD/TA response content the TAM reads.
#[derive(serde::Deserialize)]
struct ContentView {
    did: String,
    #[serde(default)]
    dsi: Option<Dsi>,
}

fn parts<C>(r: &CommandTbsResponse<C>) -> (Status, Option<Reason>, Option<otrp_json::JweJson>) {
    (
        r.status,
        r.reason.clone(),
        r.content.as_ref().and_then(|c| c.jwe().cloned()),
    )
}
