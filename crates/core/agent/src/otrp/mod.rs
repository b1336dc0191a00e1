//! The OTrP (JSON/JOSE) profile of the Agent: draft-ietf-teep-opentrustprotocol-03's
//! seven commands, on the same component store as TEEP.
//!
//! # Driving it
//!
//! [`OtrpAgent::handle`] takes the store, the bytes of a signed TAM request
//! (`{"xyzRequest": …}`, media type `application/otrp+json`), the time and an RNG (JWE
//! encryption, SP AIK generation, RSA blinding) and returns an [`OtrpOutput`]: the signed
//! response to send back and [`OtrpEvent`]s. [`crate::Agent::handle_otrp`] runs it on the
//! TEEP Agent's own store. Every request is answered with a TEE-signed response (status
//! `pass`, or `fail` with a §5.2 error code in the clear `reason`, §7.6); input that is
//! not a signed OTrP request at all gets no answer (an event only). A refusal never
//! commits anything: the store is unchanged.
//!
//! # What it checks, in order
//!
//! 1. The JWS (flattened, or general for dual control) verifies with the keys of
//!    [`OtrpConfig::tams`] / [`OtrpConfig::oem_keys`] (the std shell validates the TAM's
//!    X.509 chain to the TEE's anchors with otrp-pki and passes the keys and `tamid`s in):
//!    `ERR_TAM_NOT_TRUSTED` when no trusted TAM signed, `ERR_REQUEST_INVALID` when the
//!    header names a trusted key but the signature fails (tampered bytes) or the payload
//!    is malformed or does not match the outer name, `ERR_UNSUPPORTED_CRYPTO_ALG` for an
//!    algorithm off the allow-list, `ERR_UNSUPPORTED_MSG_VERSION` for `ver` ≠ `1.0`.
//! 2. `rid` replay: the `rid`s a TAM already used are kept (bounded by
//!    [`OtrpConfig::max_rids`]): `ERR_REQUEST_INVALID`.
//! 3. Transaction and state: every SD/TA command must carry the `tid` of the TAM's last
//!    GetDeviceState (none yet, or an older one: `ERR_DEV_STATE_MISMATCH`, out-of-order
//!    state) and a `dsihash` equal to the hash of the DSI the TEE would report to that
//!    TAM now (`ERR_DEV_STATE_MISMATCH`), then `tee` must name this TEE.
//! 4. `content` decrypts with the TEE key (`ERR_REQUEST_INVALID`; an RSA1_5 recipient is
//!    refused with `ERR_UNSUPPORTED_CRYPTO_ALG` unless [`OtrpConfig::legacy`] allows it)
//!    and names this device (`did`) and the SD's owner (`tamid`).
//! 5. The command's own rules (SD exists / is owned by the TAM / is empty, TA present,
//!    SP certificate well formed, TA package opens and its SUIT envelope verifies with
//!    the SD's SP signers, sequence numbers grow) and the management configuration.
//!
//! # Our definitions where the draft is silent (spec notes §9)
//!
//! * `dsihash` (§9 item 1) = standard BASE64 of SHA-256 over the compact JSON of
//!   `{"dsi": …}` **without `tfwdata`** (per-request attestation, not state) as this
//!   TEE encodes it ([`dsi_hash`]). It is computed on the fly from the store for the
//!   requesting TAM's view (its SDs and their SPs' AIKs), never cached, so any change
//!   made by another TAM to what this TAM sees is detected.
//! * `did` (§9 item 2) = standard BASE64 of SHA-256 of the TEE certificate (DER).
//! * Responses to SD/TA commands are encrypted with the request's CEK re-wrapped to the
//!   requesting TAM's key (otrp-json's reading of §9 item 3); failures carry the coded
//!   `reason` in the clear (§7.6 template) and no `content`.
//! * The TA package (`encrypted_ta`) is defined in [`package`]: an SP-signed SUIT
//!   envelope, installed by the SUIT processor as component `[sdname, taid]`; its
//!   personalization data is component `[sdname, taid, "pdata"]`.
//! * TEE SP AIKs are P-256 keys (`spaiktype` `ECC`), reported as BASE64 SPKI DER.
//! * SD renaming (`newsdname`) is allowed only while the SD holds no TA (the TAs' SUIT
//!   manifests name the SD in their signed component ids): `ERR_SD_NOT_EMPTY`.
//! * OCSP data (`ocspdat`) is not checked in the core (no clock, no OCSP parser); the std
//!   shell checks revocation when it validates the TAM chain.
//!
//! # Management configurations (DESIGN.md §3) for OTrP
//!
//! * [`Management::OemGated`]: a non-OEM TAM's CreateSD for an SP needs an OEM
//!   authorization of (SP, TAM key) once: an [`OemAuthorization`] (COSE_Sign1 by an OEM
//!   key) in the unprotected JWS header member `oemauth` (standard BASE64; in a batch
//!   package, an array of them when it creates SDs of several SPs); it is
//!   recorded (shared with TEEP) and later SDs of that SP need none.
//!   `ERR_TAM_NOT_AUTHORIZED` otherwise.
//! * [`Management::OemOwnedSds`]: only an OEM TAM creates or deletes SDs; its CreateSD
//!   may name another trusted TAM's `tamid`, which then owns the SD and manages its TAs.
//! * [`Management::DualControl`]: CreateSD, UpdateSD, InstallTA and UpdateTA need a
//!   general JWS with both an OEM signature (OEM key or OEM TAM) and an SP TAM
//!   signature; InstallTA/UpdateTA are also accepted from the TAM alone when the TA's
//!   SUIT envelope is co-signed by an OEM key and an authorized SP signer (as the TAM's
//!   co-signing workflow produces). DeleteTA/DeleteSD need the managing TAM only (as in
//!   TEEP: dual control governs what code runs in the TEE). GetDeviceState changes
//!   nothing and needs one TAM signature.

pub mod batch;
pub mod package;
pub mod state;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_json::{
    Cek, CodedReason, CommandTbsResponse, Content, ContentEnc, Dsi, DsiDocument, ErrorCode,
    GetDeviceTeeStateTbsResponse, JweJson, KeyType, LegacyMode, MessageKind, OtrpMessage, Reason,
    RecipientKey, ResponseContent, SdInfo, SdList, Signer, SpAik, Status, TaInfo, TbsRequest,
    TbsResponse, TeeInfo, TfwData, VerifyPolicy, OTRP_VERSION,
};
use otrp_suit::{ComponentId, Manifest, ReportReason, VerifiedBlock};
use otrp_suit_processor::{
    ChangeSet, ComponentStore, Holder, ManifestPolicy, Processor, ProcessorConfig, Refusal, Step,
    View,
};
use rand_core::CryptoRngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sd::{auth_state_key, sd_state_key, OemAuthorization};
use crate::Management;
use state::{OtrpSd, TamSession};

/// The most `oemauth` authorizations read from one signature's unprotected header.
pub const MAX_OEMAUTH: usize = 16;

/// A TAM the OTrP Agent trusts (the std shell validated its certificate chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtrpTam {
    /// Its JWS signing key (also the key responses are encrypted to).
    pub key: PublicKey,
    /// Its `tamid` (from its certificate, §5.4).
    pub tamid: String,
    /// Whether the OEM operates it.
    pub oem: bool,
}

/// The trusted-firmware key that signs the `tid` (§9.1.3).
#[derive(Clone)]
pub struct TfwKey {
    /// The TFW private key.
    pub key: PrivateKey,
    /// Its certificate (DER).
    pub cert: Vec<u8>,
    /// The CA certificates above it (DER), sent as the extension member
    /// `tfwdata.cacert` (like `tee.cacert`) so a TAM can validate the chain.
    pub chain: Vec<Vec<u8>>,
}

/// OTrP Agent configuration.
#[derive(Clone)]
pub struct OtrpConfig {
    /// Trusted TAMs.
    pub tams: Vec<OtrpTam>,
    /// OEM keys (authorizations, dual-control signatures).
    pub oem_keys: Vec<PublicKey>,
    /// The management configuration.
    pub management: Management,
    /// The TEE device key (signs responses, decrypts `content`).
    pub tee_key: PrivateKey,
    /// The TEE certificate (DER).
    pub tee_cert: Vec<u8>,
    /// The CA certificates above it (DER), up to the root.
    pub tee_cacerts: Vec<Vec<u8>>,
    /// TEE name (the routing name `tee`).
    pub tee_name: String,
    /// TEE version.
    pub tee_version: String,
    /// The TFW key, when the device has one (it is optional in the draft).
    pub tfw: Option<TfwKey>,
    /// Whether RSA1_5 key transport may be decrypted (legacy peers only).
    pub legacy: LegacyMode,
    /// How many `rid`s per TAM are remembered against replay.
    pub max_rids: usize,
    /// SUIT processor configuration (device identity, limits).
    pub processor: ProcessorConfig,
}

/// Something the OTrP Agent reports to its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrpEvent {
    /// An SD was created.
    SdCreated {
        /// Its name.
        name: String,
    },
    /// An SD was changed (possibly renamed to `name`).
    SdUpdated {
        /// Its (new) name.
        name: String,
    },
    /// An SD was deleted.
    SdDeleted {
        /// Its name.
        name: String,
    },
    /// A TEE SP AIK was created or renewed.
    AikCreated {
        /// The SP.
        spid: String,
    },
    /// A TEE SP AIK was deleted (the SP's last SD went).
    AikDeleted {
        /// The SP.
        spid: String,
    },
    /// A TA was installed.
    TaInstalled {
        /// Its SD.
        sd: String,
        /// Its id.
        taid: String,
    },
    /// A TA (or its personalization data) was updated.
    TaUpdated {
        /// Its SD.
        sd: String,
        /// Its id.
        taid: String,
    },
    /// A TA was deleted.
    TaDeleted {
        /// Its SD.
        sd: String,
        /// Its id.
        taid: String,
    },
    /// A request was refused (a `fail` response was sent when there was a request to
    /// answer).
    Refused {
        /// The OTrP error code.
        code: ErrorCode,
        /// Why.
        detail: String,
    },
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtrpOutput {
    /// The signed OTrP response (`application/otrp+json`).
    pub send: Option<Vec<u8>>,
    /// Events for the shell.
    pub events: Vec<OtrpEvent>,
}

/// A refusal: the code and a detail for the shell's log.
#[derive(Debug, Clone)]
struct Refused {
    code: ErrorCode,
    detail: String,
}

fn refused(code: ErrorCode, detail: impl Into<String>) -> Refused {
    Refused {
        code,
        detail: detail.into(),
    }
}

type R<T> = Result<T, Refused>;

/// Who signed a request.
#[derive(Debug, Clone, Default)]
struct Senders {
    /// Indices into `config.tams` of the TAMs that signed.
    tams: Vec<usize>,
    /// An OEM key or an OEM TAM signed.
    oem: bool,
    /// A non-OEM TAM signed.
    sp: bool,
    /// `oemauth` header members, decoded.
    oemauth: Vec<Vec<u8>>,
}

/// The request being answered.
struct Ctx {
    kind: MessageKind,
    rid: String,
    tid: String,
    senders: Senders,
    /// The TAM answered (the first non-OEM TAM that signed, else the first TAM).
    tam: OtrpTam,
}

/// What a successful command produced.
struct Done {
    response: TbsResponse,
    changes: ChangeSet,
    events: Vec<OtrpEvent>,
}

/// The `dsihash` of a DSI: standard BASE64 of SHA-256 over the compact JSON of
/// `{"dsi": …}` with `tfwdata` left out (see the module docs).
pub fn dsi_hash(provider: &dyn CryptoProvider, dsi: &Dsi) -> String {
    let mut d = dsi.clone();
    d.tfwdata = None;
    let bytes = otrp_json::json::to_vec(&DsiDocument { dsi: d }).unwrap_or_default();
    STANDARD.encode(provider.sha256(&bytes))
}

/// The `did` of a TEE certificate: standard BASE64 of its SHA-256.
pub fn did_of(provider: &dyn CryptoProvider, tee_cert: &[u8]) -> String {
    STANDARD.encode(provider.sha256(tee_cert))
}

/// The public key of an X.509 certificate given as standard BASE64 DER (an `spcert`).
pub fn cert_key(b64: &str) -> Result<PublicKey, String> {
    use x509_cert::der::{Decode, Encode};
    let der = STANDARD.decode(b64).map_err(|e| e.to_string())?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| e.to_string())?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    PublicKey::from_spki_der(&spki).map_err(|e| e.to_string())
}

fn ver_of(r: &TbsRequest) -> &str {
    match r {
        TbsRequest::GetDeviceState(r) => &r.ver,
        TbsRequest::CreateSd(r) => &r.ver,
        TbsRequest::UpdateSd(r) => &r.ver,
        TbsRequest::DeleteSd(r) => &r.ver,
        TbsRequest::InstallTa(r) => &r.ver,
        TbsRequest::UpdateTa(r) => &r.ver,
        TbsRequest::DeleteTa(r) => &r.ver,
    }
}

fn json_err(code: ErrorCode, what: &str, e: &otrp_json::Error) -> Refused {
    refused(code, alloc::format!("{what}: {e}"))
}

/// The state every SD/TA request carries in the clear.
struct Clear<'a> {
    tee: &'a str,
    nextdsi: bool,
    dsihash: &'a str,
}

/// The SUIT policy of an OTrP TA: manifest id `[sdname, taid]`, every component in the
/// SD, signed by one of the SD's SP signers (the first `sp` anchors) and, when
/// `needs_oem`, co-signed by an OEM key (the other anchors).
struct TaPolicy<'a> {
    expected: &'a ComponentId,
    sd: &'a [u8],
    sp: usize,
    needs_oem: bool,
}

impl ManifestPolicy for TaPolicy<'_> {
    fn authorize(
        &self,
        manifest_id: &ComponentId,
        manifest: &Manifest,
        signers: &[VerifiedBlock],
    ) -> Result<(), Refusal> {
        let refuse = |reason, detail: &str| Refusal {
            reason,
            detail: detail.to_string(),
        };
        if manifest_id != self.expected {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "the TA's manifest id is not [sdname, taid]",
            ));
        }
        if manifest
            .components()
            .iter()
            .any(|c| c.segments().first().map(Vec::as_slice) != Some(self.sd))
        {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "components of a TA must lie in its Security Domain",
            ));
        }
        let Some(sp) = signers.iter().find(|b| b.key_index < self.sp) else {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "the TA is not signed by an SP signer of its Security Domain",
            ));
        };
        if self.needs_oem
            && !signers
                .iter()
                .any(|b| b.key_index >= self.sp && b.block_index != sp.block_index)
        {
            return Err(refuse(
                ReportReason::Unauthorised,
                "dual control: the TA is not co-signed by the OEM",
            ));
        }
        Ok(())
    }
}

/// The OTrP Agent (stateless itself: its state lives in the component store).
pub struct OtrpAgent {
    provider: &'static dyn CryptoProvider,
    config: OtrpConfig,
}

impl OtrpAgent {
    /// An OTrP Agent with `config`.
    pub fn new(provider: &'static dyn CryptoProvider, config: OtrpConfig) -> Self {
        OtrpAgent { provider, config }
    }

    /// The configuration.
    pub fn config(&self) -> &OtrpConfig {
        &self.config
    }

    /// This device's `did`.
    pub fn did(&self) -> String {
        did_of(self.provider, &self.config.tee_cert)
    }

    /// The OTrP SDs in `store`.
    pub fn security_domains<S: ComponentStore>(&self, store: &S) -> Vec<OtrpSd> {
        let empty = ChangeSet::default();
        load_sds(&View::new(store, &empty)).unwrap_or_default()
    }

    /// The DSI (without `tfwdata`) the TEE reports now to the TAM `tamid`.
    pub fn dsi_for<S: ComponentStore>(&self, store: &S, tamid: &str) -> Result<Dsi, String> {
        let empty = ChangeSet::default();
        self.dsi(&View::new(store, &empty), tamid)
    }

    fn oem_keys(&self) -> Vec<PublicKey> {
        let mut keys = self.config.oem_keys.clone();
        keys.extend(
            self.config
                .tams
                .iter()
                .filter(|t| t.oem)
                .map(|t| t.key.clone()),
        );
        keys
    }

    fn dsi(&self, view: &View<'_>, tamid: &str) -> Result<Dsi, String> {
        let sds: Vec<OtrpSd> = load_sds(view)?
            .into_iter()
            .filter(|sd| sd.tamid == tamid)
            .collect();
        let mut aiks = Vec::new();
        for sd in &sds {
            if aiks.iter().any(|a: &SpAik| a.spid == sd.spid) {
                continue;
            }
            if let Some(aik) = load_aik(view, &sd.spid)? {
                let spki = aik.public_key().to_spki_der().map_err(|e| e.to_string())?;
                aiks.push(SpAik {
                    spaik: STANDARD.encode(spki),
                    spaiktype: KeyType::Ecc,
                    spid: sd.spid.clone(),
                    extra: Default::default(),
                });
            }
        }
        let list: Vec<SdInfo> = sds
            .into_iter()
            .map(|sd| SdInfo {
                name: sd.name,
                spid: sd.spid,
                talist: sd
                    .tas
                    .into_iter()
                    .map(|taid| TaInfo {
                        taid,
                        taname: None,
                        extra: Default::default(),
                    })
                    .collect(),
                extra: Default::default(),
            })
            .collect();
        Ok(Dsi {
            tfwdata: None,
            tee: TeeInfo {
                name: self.config.tee_name.clone(),
                ver: self.config.tee_version.clone(),
                cert: STANDARD.encode(&self.config.tee_cert),
                cacert: self
                    .config
                    .tee_cacerts
                    .iter()
                    .map(|c| STANDARD.encode(c))
                    .collect(),
                sdlist: SdList {
                    cnt: u32::try_from(list.len()).unwrap_or(u32::MAX),
                    sd: list,
                    extra: Default::default(),
                },
                teeaiklist: Some(aiks),
                extra: Default::default(),
            },
            extra: Default::default(),
        })
    }

    fn sign(&self, tbs: &TbsResponse) -> Option<Vec<u8>> {
        otrp_json::sign_response(self.provider, &Signer::new(&self.config.tee_key), tbs).ok()
    }

    /// A signed `fail` response of `kind` with the code in the clear `reason`.
    fn failure(&self, kind: MessageKind, rid: &str, tid: &str, r: &Refused) -> Option<Vec<u8>> {
        let reason = Some(Reason::Coded(CodedReason {
            error_code: r.code,
            error_message: Some(r.detail.chars().take(200).collect()),
        }));
        let tbs = match kind {
            MessageKind::GetDeviceState => {
                TbsResponse::GetDeviceState(GetDeviceTeeStateTbsResponse {
                    ver: OTRP_VERSION.into(),
                    status: Status::Fail,
                    rid: rid.into(),
                    tid: tid.into(),
                    signerreq: None,
                    edsi: None,
                    reason,
                    supportedsigalgs: Some(alloc::vec![self
                        .config
                        .tee_key
                        .default_alg()
                        .jose_name()
                        .to_string()]),
                    extra: Default::default(),
                })
            }
            MessageKind::CreateSd => TbsResponse::CreateSd(fail_tbs(rid, tid, reason)),
            MessageKind::UpdateSd => TbsResponse::UpdateSd(fail_tbs(rid, tid, reason)),
            MessageKind::DeleteSd => TbsResponse::DeleteSd(fail_tbs(rid, tid, reason)),
            MessageKind::InstallTa => TbsResponse::InstallTa(fail_tbs(rid, tid, reason)),
            MessageKind::UpdateTa => TbsResponse::UpdateTa(fail_tbs(rid, tid, reason)),
            MessageKind::DeleteTa => TbsResponse::DeleteTa(fail_tbs(rid, tid, reason)),
        };
        self.sign(&tbs)
    }

    /// Processes one OTrP request (ProcessOTrPMessage) against `store`.
    pub fn handle<S: ComponentStore>(
        &self,
        store: &mut S,
        message: &[u8],
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> OtrpOutput {
        let _ = now; // no clock-based checks in the core (see the module docs)
        let signed = match otrp_json::decode_any(message) {
            Ok(OtrpMessage::Request(s)) => s,
            Ok(other) => {
                return OtrpOutput {
                    send: None,
                    events: alloc::vec![OtrpEvent::Refused {
                        code: ErrorCode::RequestInvalid,
                        detail: alloc::format!("`{}` is not a signed request", other.name()),
                    }],
                }
            }
            Err(e) => {
                return OtrpOutput {
                    send: None,
                    events: alloc::vec![OtrpEvent::Refused {
                        code: ErrorCode::RequestInvalid,
                        detail: alloc::format!("not an OTrP message: {e}"),
                    }],
                }
            }
        };
        let kind = signed.kind;
        let (rid, tid) = match signed.unverified_payload() {
            Ok(tbs) => {
                let (r, t) = tbs.ids();
                (r.to_string(), t.to_string())
            }
            Err(_) => (String::new(), String::new()),
        };
        match self.process(store, &signed, now, rng) {
            Ok((send, events)) => OtrpOutput { send, events },
            Err(r) => OtrpOutput {
                send: self.failure(kind, &rid, &tid, &r),
                events: alloc::vec![OtrpEvent::Refused {
                    code: r.code,
                    detail: r.detail,
                }],
            },
        }
    }

    fn trusted_keys(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self.config.tams.iter().map(|t| t.key.clone()).collect();
        keys.extend(self.config.oem_keys.iter().cloned());
        keys
    }

    /// Does a header of the JWS name one of the trusted keys (kid = JWK thumbprint, or
    /// x5c leaf with that key)? Then a failing signature means tampering.
    fn names_trusted_key(&self, jws: &otrp_json::Jws, keys: &[PublicKey]) -> bool {
        jws.signatures().iter().any(|(protected, header, _)| {
            let prot: Option<otrp_json::jose::JoseHeader> =
                otrp_json::json::b64url_decode(protected, "protected")
                    .ok()
                    .and_then(|b| otrp_json::json::from_slice(&b).ok());
            let kids = [prot.and_then(|p| p.kid), header.and_then(|h| h.kid.clone())];
            let by_kid = kids.iter().flatten().any(|kid| {
                keys.iter()
                    .any(|k| otrp_crypto::jwk::thumbprint_b64(k, self.provider) == *kid)
            });
            let by_x5c = header
                .and_then(|h| h.x5c.as_ref())
                .and_then(|c| c.first())
                .and_then(|leaf| cert_key(leaf).ok())
                .is_some_and(|k| keys.contains(&k));
            by_kid || by_x5c
        })
    }

    fn verify(&self, signed: &otrp_json::SignedRequest) -> R<(TbsRequest, Senders, OtrpTam)> {
        let keys = self.trusted_keys();
        let v = match signed.verify(self.provider, &keys, VerifyPolicy::AnyOne) {
            Ok(v) => v,
            Err(e @ otrp_json::Error::AlgorithmNotAllowed { .. }) => {
                return Err(json_err(ErrorCode::UnsupportedCryptoAlg, "JWS", &e))
            }
            Err(e @ otrp_json::Error::BadSignature(_)) => {
                let code = if self.names_trusted_key(&signed.jws, &keys) {
                    ErrorCode::RequestInvalid
                } else {
                    ErrorCode::TamNotTrusted
                };
                return Err(json_err(code, "JWS", &e));
            }
            Err(e) => return Err(json_err(ErrorCode::RequestInvalid, "request", &e)),
        };
        let (senders, answered) = self.senders(&v.signatures)?;
        Ok((v.message, senders, answered))
    }

    /// Who signed (the verified signatures) and which TAM is answered.
    fn senders(&self, signatures: &[otrp_json::jose::VerifiedSignature]) -> R<(Senders, OtrpTam)> {
        let mut senders = Senders::default();
        for s in signatures {
            match self.config.tams.get(s.key_index) {
                Some(t) => {
                    if !senders.tams.contains(&s.key_index) {
                        senders.tams.push(s.key_index);
                    }
                    senders.oem |= t.oem;
                    senders.sp |= !t.oem;
                }
                None => senders.oem = true,
            }
            // One authorization (a request, a batch package creating one SP's SD) or an
            // array of them (a batch package creating SDs of several SPs). The header is
            // not signed: each is checked with the OEM's signature where it is used, so
            // at most MAX_OEMAUTH are read (each costs a verification).
            if let Some(v) = s.header.as_ref().and_then(|h| h.extra.get("oemauth")) {
                let many = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str());
                for a in v
                    .as_str()
                    .into_iter()
                    .chain(many)
                    .filter_map(|t| STANDARD.decode(t).ok())
                {
                    if senders.oemauth.len() < MAX_OEMAUTH {
                        senders.oemauth.push(a);
                    }
                }
            }
        }
        let answered = senders
            .tams
            .iter()
            .filter_map(|i| self.config.tams.get(*i))
            .find(|t| !t.oem)
            .or_else(|| senders.tams.first().and_then(|i| self.config.tams.get(*i)))
            .cloned()
            .ok_or_else(|| {
                refused(
                    ErrorCode::TamNotTrusted,
                    "no trusted TAM signed the request",
                )
            })?;
        Ok((senders, answered))
    }

    fn process<S: ComponentStore>(
        &self,
        store: &mut S,
        signed: &otrp_json::SignedRequest,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> R<(Option<Vec<u8>>, Vec<OtrpEvent>)> {
        let _ = now;
        let (tbs, senders, tam) = self.verify(signed)?;
        if ver_of(&tbs) != OTRP_VERSION {
            return Err(refused(
                ErrorCode::UnsupportedMsgVersion,
                alloc::format!("ver `{}` (only {OTRP_VERSION})", ver_of(&tbs)),
            ));
        }
        let (rid, tid) = tbs.ids();
        let ctx = Ctx {
            kind: tbs.kind(),
            rid: rid.to_string(),
            tid: tid.to_string(),
            senders,
            tam,
        };
        let session = {
            let empty = ChangeSet::default();
            load_session(&View::new(&*store, &empty), &ctx.tam.tamid)?
        };
        if ctx.rid.is_empty() || session.rids.contains(&ctx.rid) {
            return Err(refused(
                ErrorCode::RequestInvalid,
                "replayed rid: this request was already answered",
            ));
        }
        // A command request: its clear header (`tee`, `nextdsi`, `dsihash`, checked
        // against this TEE) and encrypted content, run by `$run` in the TAM's transaction.
        macro_rules! command {
            ($r:expr, $run:expr) => {
                self.command(
                    &*store,
                    &ctx,
                    &session,
                    &Clear {
                        tee: &$r.tee,
                        nextdsi: $r.nextdsi,
                        dsihash: &$r.dsihash,
                    },
                    &$r.content,
                    rng,
                    $run,
                )?
            };
        }
        let done = match &tbs {
            TbsRequest::GetDeviceState(r) => {
                self.get_device_state(&*store, &ctx, r.supportedsigalgs.as_deref(), rng)?
            }
            TbsRequest::CreateSd(r) => {
                command!(r, |me, st, c, rng| me.create_sd(st, &ctx, c, rng))
            }
            TbsRequest::UpdateSd(r) => {
                command!(r, |me, st, c, rng| me.update_sd(st, &ctx, c, rng))
            }
            TbsRequest::DeleteSd(r) => {
                command!(r, |me, st, c, _rng| me.delete_sd(st, &ctx, c))
            }
            TbsRequest::InstallTa(r) => {
                let sealed = package::SealedTa::from_install(&r.encrypted_ta);
                command!(r, |me, st, c, rng| me
                    .install_ta(st, &ctx, c, &sealed, false, None, rng))
            }
            TbsRequest::UpdateTa(r) => {
                let sealed = package::SealedTa::from_update(&r.encrypted_ta);
                command!(r, |me, st, c, rng| me
                    .install_ta(st, &ctx, c, &sealed, true, None, rng))
            }
            TbsRequest::DeleteTa(r) => {
                command!(r, |me, st, c, _rng| me.delete_ta(st, &ctx, c))
            }
        };
        let Done {
            response,
            mut changes,
            events,
        } = done;
        // Bookkeeping: the rid (and, for GetDeviceState, the new transaction).
        let view_session = {
            let v = View::new(&*store, &changes);
            load_session(&v, &ctx.tam.tamid)?
        };
        let mut session = view_session;
        if ctx.kind == MessageKind::GetDeviceState {
            session.tid = Some(ctx.tid.clone());
        }
        session.rids.push(ctx.rid.clone());
        let excess = session
            .rids
            .len()
            .saturating_sub(self.config.max_rids.max(1));
        session.rids.drain(..excess);
        changes
            .state
            .insert(state::tam_key(&ctx.tam.tamid), Some(to_json(&session)?));
        let send = self
            .sign(&response)
            .ok_or_else(|| refused(ErrorCode::TeeFail, "signing the response failed"))?;
        store
            .commit(changes)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("store: {e}")))?;
        Ok((Some(send), events))
    }

    fn get_device_state<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        algs: Option<&[String]>,
        rng: &mut impl CryptoRngCore,
    ) -> R<Done> {
        let ours = self.config.tee_key.default_alg().jose_name();
        if algs.is_some_and(|a| !a.iter().any(|x| x == ours)) {
            return Err(refused(
                ErrorCode::UnsupportedCryptoAlg,
                alloc::format!("the TEE signs with {ours} only"),
            ));
        }
        let empty = ChangeSet::default();
        let mut dsi = self
            .dsi(&View::new(store, &empty), &ctx.tam.tamid)
            .map_err(|e| refused(ErrorCode::TeeFail, e))?;
        if let Some(tfw) = &self.config.tfw {
            let alg = tfw.key.default_alg();
            let sig = self
                .provider
                .sign(alg, &tfw.key, ctx.tid.as_bytes())
                .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("TFW: {e}")))?;
            let mut extra = otrp_json::Extra::new();
            if !tfw.chain.is_empty() {
                extra.insert(
                    "cacert".into(),
                    serde_json::Value::Array(
                        tfw.chain
                            .iter()
                            .map(|c| serde_json::Value::String(STANDARD.encode(c)))
                            .collect(),
                    ),
                );
            }
            dsi.tfwdata = Some(TfwData {
                tbs: STANDARD.encode(ctx.tid.as_bytes()),
                cert: STANDARD.encode(&tfw.cert),
                sigalg: alg.jose_name().into(),
                sig: STANDARD.encode(sig),
                extra,
            });
        }
        let (edsi, _) = otrp_json::encrypt_content(
            self.provider,
            rng,
            &DsiDocument { dsi },
            ContentEnc::A128CbcHs256,
            &[RecipientKey::new(&ctx.tam.key)],
        )
        .map_err(|e| json_err(ErrorCode::TeeFail, "edsi", &e))?;
        Ok(Done {
            response: TbsResponse::GetDeviceState(GetDeviceTeeStateTbsResponse {
                ver: OTRP_VERSION.into(),
                status: Status::Pass,
                rid: ctx.rid.clone(),
                tid: ctx.tid.clone(),
                signerreq: Some(false),
                edsi: Some(edsi),
                reason: None,
                supportedsigalgs: None,
                extra: Default::default(),
            }),
            changes: ChangeSet::default(),
            events: Vec::new(),
        })
    }

    /// The steps shared by the six SD/TA commands: transaction, `dsihash`, `tee`,
    /// decryption; then `run`, then the encrypted response (with the new DSI when
    /// `nextdsi`).
    #[allow(clippy::too_many_arguments)]
    fn command<S: ComponentStore, C: DeserializeOwned, Rng: CryptoRngCore>(
        &self,
        store: &S,
        ctx: &Ctx,
        session: &TamSession,
        clear: &Clear<'_>,
        content: &Content<C>,
        rng: &mut Rng,
        run: impl FnOnce(&Self, &S, C, &mut Rng) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)>,
    ) -> R<Done> {
        match &session.tid {
            None => {
                return Err(refused(
                    ErrorCode::DevStateMismatch,
                    "out of order: no GetDeviceState from this TAM yet",
                ))
            }
            Some(t) if *t != ctx.tid => {
                return Err(refused(
                    ErrorCode::DevStateMismatch,
                    "stale tid: not the transaction of the TAM's last GetDeviceState",
                ))
            }
            Some(_) => {}
        }
        let empty = ChangeSet::default();
        let current = self
            .dsi(&View::new(store, &empty), &ctx.tam.tamid)
            .map_err(|e| refused(ErrorCode::TeeFail, e))?;
        if dsi_hash(self.provider, &current) != clear.dsihash {
            return Err(refused(
                ErrorCode::DevStateMismatch,
                "dsihash does not match the device state",
            ));
        }
        if clear.tee != self.config.tee_name {
            return Err(refused(
                ErrorCode::RequestInvalid,
                alloc::format!("tee `{}` is not this TEE", clear.tee),
            ));
        }
        let jwe: &JweJson = content
            .jwe()
            .ok_or_else(|| refused(ErrorCode::RequestInvalid, "content is not encrypted"))?;
        let (plain, cek) = otrp_json::decrypt_content::<C>(
            self.provider,
            rng,
            jwe,
            &self.config.tee_key,
            self.config.legacy,
        )
        .map_err(|e| match e {
            otrp_json::Error::LegacyRsa15Refused { .. }
            | otrp_json::Error::AlgorithmNotAllowed { .. } => {
                json_err(ErrorCode::UnsupportedCryptoAlg, "content", &e)
            }
            other => json_err(ErrorCode::RequestInvalid, "content", &other),
        })?;
        let (body, changes, events) = run(self, store, plain, rng)?;
        let dsi = if clear.nextdsi {
            let v = View::new(store, &changes);
            Some(
                self.dsi(&v, &ctx.tam.tamid)
                    .map_err(|e| refused(ErrorCode::TeeFail, e))?,
            )
        } else {
            None
        };
        let response = self.response(ctx, body, dsi, &cek, rng)?;
        Ok(Done {
            response,
            changes,
            events,
        })
    }

    fn response(
        &self,
        ctx: &Ctx,
        body: ResponseBody,
        dsi: Option<Dsi>,
        cek: &Cek,
        rng: &mut impl CryptoRngCore,
    ) -> R<TbsResponse> {
        let did = self.did();
        let to = [RecipientKey::new(&ctx.tam.key)];
        let enc_err = |e: otrp_json::Error| json_err(ErrorCode::TeeFail, "response content", &e);
        let plain = ResponseContent {
            reason: None,
            did: did.clone(),
            dsi: dsi.clone(),
            extra: Default::default(),
        };
        Ok(match (ctx.kind, body) {
            (MessageKind::CreateSd, ResponseBody::CreateSd { sdname, teespaik }) => {
                let c = otrp_json::CreateSdResponseContent {
                    reason: None,
                    did,
                    sdname: Some(sdname),
                    teespaik,
                    dsi,
                    extra: Default::default(),
                };
                let content = otrp_json::encrypt_content_with_cek(self.provider, rng, &c, cek, &to)
                    .map_err(enc_err)?;
                TbsResponse::CreateSd(pass_tbs(ctx, content))
            }
            (MessageKind::UpdateSd, ResponseBody::UpdateSd { teespaik }) => {
                let c = otrp_json::UpdateSdResponseContent {
                    reason: None,
                    did,
                    cert: None,
                    teespaiktype: teespaik.as_ref().map(|_| KeyType::Ecc),
                    teespaik,
                    dsi,
                    extra: Default::default(),
                };
                let content = otrp_json::encrypt_content_with_cek(self.provider, rng, &c, cek, &to)
                    .map_err(enc_err)?;
                TbsResponse::UpdateSd(pass_tbs(ctx, content))
            }
            (kind, ResponseBody::Plain) => {
                let content =
                    otrp_json::encrypt_content_with_cek(self.provider, rng, &plain, cek, &to)
                        .map_err(enc_err)?;
                match kind {
                    MessageKind::DeleteSd => TbsResponse::DeleteSd(pass_tbs(ctx, content)),
                    MessageKind::InstallTa => TbsResponse::InstallTa(pass_tbs(ctx, content)),
                    MessageKind::UpdateTa => TbsResponse::UpdateTa(pass_tbs(ctx, content)),
                    MessageKind::DeleteTa => TbsResponse::DeleteTa(pass_tbs(ctx, content)),
                    _ => return Err(refused(ErrorCode::TeeFail, "response of the wrong kind")),
                }
            }
            _ => return Err(refused(ErrorCode::TeeFail, "response of the wrong kind")),
        })
    }

    /// The TAM owns `sd`, or is an OEM TAM; and the request's `tamid` names the owner.
    fn check_owner(&self, ctx: &Ctx, sd: &OtrpSd, tamid: &str) -> R<()> {
        let sender_tamids: Vec<&OtrpTam> = ctx
            .senders
            .tams
            .iter()
            .filter_map(|i| self.config.tams.get(*i))
            .collect();
        let owns = sender_tamids.iter().any(|t| t.tamid == sd.tamid || t.oem);
        if !owns || tamid != sd.tamid {
            return Err(refused(
                ErrorCode::TamNotAuthorized,
                alloc::format!("SD `{}` is managed by another TAM", sd.name),
            ));
        }
        Ok(())
    }

    fn dual_signed(&self, ctx: &Ctx) -> bool {
        ctx.senders.oem && ctx.senders.sp
    }

    fn require_dual(&self, ctx: &Ctx, what: &str) -> R<()> {
        if self.config.management == Management::DualControl && !self.dual_signed(ctx) {
            return Err(refused(
                ErrorCode::TamNotAuthorized,
                alloc::format!("dual control: {what} needs both an OEM and an SP TAM signature"),
            ));
        }
        Ok(())
    }

    fn check_did(&self, did: &str) -> R<()> {
        if did != self.did() {
            return Err(refused(
                ErrorCode::RequestInvalid,
                "did names another device",
            ));
        }
        Ok(())
    }

    fn new_aik(
        &self,
        spid: &str,
        changes: &mut ChangeSet,
        events: &mut Vec<OtrpEvent>,
        rng: &mut impl CryptoRngCore,
    ) -> R<String> {
        let key = PrivateKey::generate(KeyKind::P256, rng)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("AIK: {e}")))?;
        let PrivateKey::P256(sk) = &key else {
            return Err(refused(ErrorCode::TeeFail, "AIK is not P-256"));
        };
        changes
            .state
            .insert(state::aik_key(spid), Some(sk.to_bytes().to_vec()));
        events.push(OtrpEvent::AikCreated { spid: spid.into() });
        let spki = key
            .public_key()
            .to_spki_der()
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("AIK: {e}")))?;
        Ok(STANDARD.encode(spki))
    }

    fn create_sd<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        c: otrp_json::CreateSdContent,
        rng: &mut impl CryptoRngCore,
    ) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        self.check_did(&c.did)?;
        if c.sdname.is_empty() || c.spid.is_empty() {
            return Err(refused(ErrorCode::RequestInvalid, "empty sdname or spid"));
        }
        cert_key(&c.spcert).map_err(|e| refused(ErrorCode::SpCertInvalid, e))?;
        let empty = ChangeSet::default();
        let view = View::new(store, &empty);
        let sender = &ctx.tam;
        // Who may create it, for whom.
        match self.config.management {
            Management::OemOwnedSds => {
                if !sender.oem {
                    return Err(refused(
                        ErrorCode::TamNotAuthorized,
                        "only the OEM's TAM creates Security Domains",
                    ));
                }
                if !self.config.tams.iter().any(|t| t.tamid == c.tamid) {
                    return Err(refused(
                        ErrorCode::TamNotAuthorized,
                        "the SD is granted to a TAM this TEE does not trust",
                    ));
                }
            }
            _ if c.tamid != sender.tamid => {
                return Err(refused(
                    ErrorCode::TamNotAuthorized,
                    "tamid does not name the requesting TAM",
                ))
            }
            _ => {}
        }
        self.require_dual(ctx, "CreateSD")?;
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        if self.config.management == Management::OemGated && !sender.oem {
            let kid = cose_key_thumbprint(&sender.key, self.provider);
            let recorded = view
                .state(&auth_state_key(&c.spid))
                .map_err(store_err)?
                .is_some_and(|k| k[..] == kid[..]);
            if !recorded {
                let oem_keys = self.oem_keys();
                let ok = ctx.senders.oemauth.iter().find_map(|bytes| {
                    OemAuthorization::verify(self.provider, bytes, &oem_keys)
                        .ok()
                        .filter(|a| a.sp_id == c.spid && a.tam_kid == kid)
                });
                let Some(a) = ok else {
                    return Err(refused(
                        ErrorCode::TamNotAuthorized,
                        "OEM-gated: the SP has no OEM authorization for this TAM",
                    ));
                };
                changes
                    .state
                    .insert(auth_state_key(&c.spid), Some(a.tam_kid.to_vec()));
            }
        }
        let exists = view
            .state(&state::sd_key(&c.sdname))
            .map_err(store_err)?
            .is_some()
            || view
                .state(&sd_state_key(c.sdname.as_bytes()))
                .map_err(store_err)?
                .is_some();
        if exists {
            return Err(refused(
                ErrorCode::SdAlreadyExists,
                alloc::format!("SD `{}` already exists", c.sdname),
            ));
        }
        let teespaik = if load_aik(&view, &c.spid)
            .map_err(|e| refused(ErrorCode::TeeFail, e))?
            .is_none()
        {
            Some(self.new_aik(&c.spid, &mut changes, &mut events, rng)?)
        } else {
            None
        };
        let sd = OtrpSd {
            name: c.sdname.clone(),
            spid: c.spid,
            tamid: c.tamid,
            spcerts: alloc::vec![c.spcert],
            tas: Vec::new(),
        };
        changes
            .state
            .insert(state::sd_key(&sd.name), Some(to_json(&sd)?));
        events.push(OtrpEvent::SdCreated {
            name: sd.name.clone(),
        });
        Ok((
            ResponseBody::CreateSd {
                sdname: sd.name,
                teespaik,
            },
            changes,
            events,
        ))
    }

    fn update_sd<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        c: otrp_json::UpdateSdContent,
        rng: &mut impl CryptoRngCore,
    ) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        let empty = ChangeSet::default();
        let view = View::new(store, &empty);
        let mut sd = load_sd(&view, &c.sdname)?
            .filter(|sd| sd.spid == c.spid)
            .ok_or_else(|| refused(ErrorCode::SdNotFound, alloc::format!("SD `{}`", c.sdname)))?;
        self.check_owner(ctx, &sd, &c.tamid)?;
        self.require_dual(ctx, "UpdateSD")?;
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        let ch = c.changes;
        let old_name = sd.name.clone();
        if let Some(new) = ch.newsdname.filter(|n| *n != sd.name) {
            if new.is_empty() {
                return Err(refused(ErrorCode::RequestInvalid, "empty newsdname"));
            }
            let used = load_sd(&view, &new)?.is_some()
                || view
                    .state(&sd_state_key(new.as_bytes()))
                    .map_err(store_err)?
                    .is_some();
            if used {
                return Err(refused(
                    ErrorCode::SdNameAlreadyUsed,
                    alloc::format!("SD name `{new}` is in use"),
                ));
            }
            if !sd.tas.is_empty() {
                return Err(refused(
                    ErrorCode::SdNotEmpty,
                    "an SD holding TAs cannot be renamed (its TAs' signed ids name it)",
                ));
            }
            changes.state.insert(state::sd_key(&old_name), None);
            sd.name = new;
        }
        let mut renew = ch.renewteespaik;
        if let Some(newspid) = ch.newspid.filter(|s| *s != sd.spid) {
            if newspid.is_empty() {
                return Err(refused(ErrorCode::RequestInvalid, "empty newspid"));
            }
            let old = core::mem::replace(&mut sd.spid, newspid);
            self.drop_aik_if_unused(&view, &old, &old_name, &mut changes, &mut events)?;
            renew = true; // "a new SPID … will always trigger a new teespaik generation"
        }
        for cert in ch.spcert.iter().flatten() {
            cert_key(cert).map_err(|e| refused(ErrorCode::SpCertInvalid, e))?;
            if !sd.spcerts.contains(cert) {
                sd.spcerts.push(cert.clone());
            }
        }
        for fp in ch.deloldspcert.iter().flatten() {
            let before = sd.spcerts.len();
            sd.spcerts.retain(|c| {
                STANDARD
                    .decode(c)
                    .map(|der| !hex::encode(self.provider.sha256(&der)).eq_ignore_ascii_case(fp))
                    .unwrap_or(true)
            });
            if sd.spcerts.len() == before {
                return Err(refused(
                    ErrorCode::SpCertInvalid,
                    alloc::format!("no SP certificate with SHA-256 {fp} in the SD"),
                ));
            }
        }
        let teespaik = if renew {
            Some(self.new_aik(&sd.spid, &mut changes, &mut events, rng)?)
        } else {
            None
        };
        changes
            .state
            .insert(state::sd_key(&sd.name), Some(to_json(&sd)?));
        events.push(OtrpEvent::SdUpdated {
            name: sd.name.clone(),
        });
        Ok((ResponseBody::UpdateSd { teespaik }, changes, events))
    }

    /// Deletes the AIK of `spid` when no SD other than `except` belongs to it.
    fn drop_aik_if_unused(
        &self,
        view: &View<'_>,
        spid: &str,
        except: &str,
        changes: &mut ChangeSet,
        events: &mut Vec<OtrpEvent>,
    ) -> R<()> {
        let others = load_sds(view)
            .map_err(|e| refused(ErrorCode::TeeFail, e))?
            .into_iter()
            .any(|s| s.spid == spid && s.name != except);
        if !others {
            changes.state.insert(state::aik_key(spid), None);
            events.push(OtrpEvent::AikDeleted { spid: spid.into() });
        }
        Ok(())
    }

    fn delete_sd<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        c: otrp_json::DeleteSdContent,
    ) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        let empty = ChangeSet::default();
        let view = View::new(store, &empty);
        let sd = load_sd(&view, &c.sdname)?
            .ok_or_else(|| refused(ErrorCode::SdNotFound, alloc::format!("SD `{}`", c.sdname)))?;
        self.check_owner(ctx, &sd, &c.tamid)?;
        if self.config.management == Management::OemOwnedSds && !ctx.tam.oem {
            return Err(refused(
                ErrorCode::TamNotAuthorized,
                "only the OEM's TAM deletes Security Domains",
            ));
        }
        if !sd.tas.is_empty() && !c.deleteta {
            return Err(refused(
                ErrorCode::SdNotEmpty,
                alloc::format!("SD `{}` holds {} TA(s)", sd.name, sd.tas.len()),
            ));
        }
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        for taid in &sd.tas {
            let c = self.remove_ta(store, &changes, &sd.name, taid)?;
            changes.merge(c);
            events.push(OtrpEvent::TaDeleted {
                sd: sd.name.clone(),
                taid: taid.clone(),
            });
        }
        changes.state.insert(state::sd_key(&sd.name), None);
        self.drop_aik_if_unused(&view, &sd.spid, &sd.name, &mut changes, &mut events)?;
        events.push(OtrpEvent::SdDeleted { name: sd.name });
        Ok((ResponseBody::Plain, changes, events))
    }

    fn remove_ta<S: ComponentStore>(
        &self,
        store: &S,
        staged: &ChangeSet,
        sdname: &str,
        taid: &str,
    ) -> R<ChangeSet> {
        let id = state::ta_component(sdname, taid);
        let view = View::new(store, staged);
        let mut changes = match view.manifest(&id).map_err(store_err)? {
            Some(_) => {
                let none: [PublicKey; 0] = [];
                Processor::new(
                    self.provider,
                    &self.config.processor,
                    &none,
                    &otrp_suit_processor::AllowAll,
                )
                .unlink(store, staged, &id, &Holder::Tam)
                .map_err(|e| refused(ErrorCode::TeeFail, e.detail))?
            }
            None => ChangeSet::default(),
        };
        changes
            .images
            .insert(state::pdata_component(sdname, taid), None);
        Ok(changes)
    }

    #[allow(clippy::too_many_arguments)]
    fn install_ta<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        c: otrp_json::TaContent,
        sealed: &package::SealedTa,
        update: bool,
        ta_key: Option<&PrivateKey>,
        rng: &mut impl CryptoRngCore,
    ) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        let empty = ChangeSet::default();
        let view = View::new(store, &empty);
        let mut sd = load_sd(&view, &c.sdname)?
            .filter(|sd| sd.spid == c.spid)
            .ok_or_else(|| refused(ErrorCode::SdNotFound, alloc::format!("SD `{}`", c.sdname)))?;
        self.check_owner(ctx, &sd, &c.tamid)?;
        let present = sd.tas.contains(&c.taid);
        if update && !present {
            return Err(refused(
                ErrorCode::TaNotFound,
                alloc::format!("TA `{}` is not in SD `{}`", c.taid, sd.name),
            ));
        }
        if !update && present {
            return Err(refused(
                ErrorCode::TaAlreadyInstalled,
                alloc::format!("TA `{}` is already in SD `{}`", c.taid, sd.name),
            ));
        }
        if c.taid.is_empty() {
            return Err(refused(ErrorCode::RequestInvalid, "empty taid"));
        }
        if let Some(cert) = &c.spcert {
            cert_key(cert).map_err(|e| refused(ErrorCode::SpCertInvalid, e))?;
            if !sd.spcerts.contains(cert) {
                sd.spcerts.push(cert.clone());
            }
        }
        // A batch package wraps the TA key to the shared batch key (see `batch`).
        let aik = match ta_key {
            Some(k) => k.clone(),
            None => load_aik(&view, &sd.spid)
                .map_err(|e| refused(ErrorCode::TeeFail, e))?
                .ok_or_else(|| refused(ErrorCode::TaInvalid, "the SP has no TEE SP AIK"))?,
        };
        let opened = package::open(self.provider, rng, &aik, sealed, self.config.legacy).map_err(
            |e| match e {
                package::PackageError::Jwe(otrp_json::Error::LegacyRsa15Refused { .. })
                | package::PackageError::Jwe(otrp_json::Error::AlgorithmNotAllowed { .. }) => {
                    refused(ErrorCode::UnsupportedCryptoAlg, e.to_string())
                }
                other => refused(ErrorCode::TaInvalid, other.to_string()),
            },
        )?;
        let needs_oem = self.config.management == Management::DualControl && !self.dual_signed(ctx);
        let mut changes = ChangeSet::default();
        if let Some(env) = &opened.ta {
            let mut anchors = Vec::new();
            for cert in &sd.spcerts {
                anchors.push(cert_key(cert).map_err(|e| refused(ErrorCode::SpCertInvalid, e))?);
            }
            let sp = anchors.len();
            if needs_oem {
                anchors.extend(self.oem_keys());
            }
            let expected = state::ta_component(&sd.name, &c.taid);
            let policy = TaPolicy {
                expected: &expected,
                sd: sd.name.as_bytes(),
                sp,
                needs_oem,
            };
            let p = Processor::new(self.provider, &self.config.processor, &anchors, &policy);
            match p.update(store, &changes, env, None) {
                Step::Done(a) => changes.merge(a.changes),
                Step::Failed(f) => {
                    return Err(refused(
                        ErrorCode::TaInvalid,
                        alloc::format!("TA manifest refused: {}", f.error.detail),
                    ))
                }
                Step::NeedFetch { uri } => {
                    return Err(refused(
                        ErrorCode::TaInvalid,
                        alloc::format!("an OTrP TA carries its payload; it asks to fetch {uri}"),
                    ))
                }
            }
        } else if !update {
            return Err(refused(ErrorCode::TaInvalid, "InstallTA without the TA"));
        }
        // Personalization data alone changes no code: under dual control it needs the
        // managing TAM only, like a deletion.
        if let Some(p) = opened.pdata {
            changes
                .images
                .insert(state::pdata_component(&sd.name, &c.taid), Some(p));
        }
        if !present {
            sd.tas.push(c.taid.clone());
        }
        changes
            .state
            .insert(state::sd_key(&sd.name), Some(to_json(&sd)?));
        let event = if update {
            OtrpEvent::TaUpdated {
                sd: sd.name.clone(),
                taid: c.taid,
            }
        } else {
            OtrpEvent::TaInstalled {
                sd: sd.name.clone(),
                taid: c.taid,
            }
        };
        Ok((ResponseBody::Plain, changes, alloc::vec![event]))
    }

    fn delete_ta<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        c: otrp_json::DeleteTaContent,
    ) -> R<(ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        let empty = ChangeSet::default();
        let view = View::new(store, &empty);
        let mut sd = load_sd(&view, &c.sdname)?
            .ok_or_else(|| refused(ErrorCode::SdNotFound, alloc::format!("SD `{}`", c.sdname)))?;
        self.check_owner(ctx, &sd, &c.tamid)?;
        if !sd.tas.contains(&c.taid) {
            return Err(refused(
                ErrorCode::TaNotFound,
                alloc::format!("TA `{}` is not in SD `{}`", c.taid, sd.name),
            ));
        }
        let mut changes = self.remove_ta(store, &empty, &sd.name, &c.taid)?;
        sd.tas.retain(|t| *t != c.taid);
        changes
            .state
            .insert(state::sd_key(&sd.name), Some(to_json(&sd)?));
        Ok((
            ResponseBody::Plain,
            changes,
            alloc::vec![OtrpEvent::TaDeleted {
                sd: sd.name,
                taid: c.taid,
            }],
        ))
    }
}

/// The command-specific part of a successful response.
enum ResponseBody {
    CreateSd {
        sdname: String,
        teespaik: Option<String>,
    },
    UpdateSd {
        teespaik: Option<String>,
    },
    Plain,
}

fn fail_tbs<C>(rid: &str, tid: &str, reason: Option<Reason>) -> CommandTbsResponse<C> {
    CommandTbsResponse {
        ver: OTRP_VERSION.into(),
        status: Status::Fail,
        rid: rid.into(),
        tid: tid.into(),
        content: None,
        reason,
        extra: Default::default(),
    }
}

fn pass_tbs<C>(ctx: &Ctx, content: Content<C>) -> CommandTbsResponse<C> {
    CommandTbsResponse {
        ver: OTRP_VERSION.into(),
        status: Status::Pass,
        rid: ctx.rid.clone(),
        tid: ctx.tid.clone(),
        content: Some(content),
        reason: None,
        extra: Default::default(),
    }
}

fn store_err(e: otrp_suit_processor::StoreError) -> Refused {
    refused(ErrorCode::TeeFail, alloc::format!("store: {e}"))
}

fn to_json<T: Serialize>(v: &T) -> R<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("{e}")))
}

fn load_sds(view: &View<'_>) -> Result<Vec<OtrpSd>, String> {
    let mut out = Vec::new();
    for k in view
        .state_keys(state::SD_PREFIX)
        .map_err(|e| e.to_string())?
    {
        if let Some(bytes) = view.state(&k).map_err(|e| e.to_string())? {
            out.push(serde_json::from_slice(&bytes).map_err(|e| alloc::format!("{k}: {e}"))?);
        }
    }
    Ok(out)
}

fn load_sd(view: &View<'_>, name: &str) -> R<Option<OtrpSd>> {
    match view.state(&state::sd_key(name)).map_err(store_err)? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("SD record: {e}"))),
        None => Ok(None),
    }
}

fn load_aik(view: &View<'_>, spid: &str) -> Result<Option<PrivateKey>, String> {
    match view
        .state(&state::aik_key(spid))
        .map_err(|e| e.to_string())?
    {
        Some(b) => PrivateKey::p256_from_scalar(&b)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

fn load_session(view: &View<'_>, tamid: &str) -> R<TamSession> {
    match view.state(&state::tam_key(tamid)).map_err(store_err)? {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("TAM session: {e}"))),
        None => Ok(TamSession::default()),
    }
}
