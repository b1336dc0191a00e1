//! The TEEP Agent state machine.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ciborium::value::Value;
use otrp_cose::{CoseMessage, SignPolicy};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey};
use otrp_suit::{
    CborItem, ComponentId, Envelope, Manifest, ReportReason, ReportResult, SuitRecord, SuitReport,
    VerifiedBlock,
};
use otrp_suit_processor::{
    manifest_id_of, ChangeSet, ComponentStore, Holder, ManifestPolicy, Processor, ProcessorConfig,
    Refusal, Step, View,
};
use otrp_teep::signed::{Protection, Verified};
use otrp_teep::{
    DataItemRequested, ErrCode, FreshnessMechanism, QueryRequest, QueryResponse, RequestedTcInfo,
    Success, SystemPropertyClaims, TeepCipherSuite, TeepMessage, Update,
};

use crate::attest::{Attester, InstalledManifest};
use crate::sd::{
    auth_state_key, sd_component_id, sd_name_of_manifest, sd_state_key, OemAuthorization,
    SdDescriptor, SecurityDomain, SD_SEGMENT, SD_STATE_PREFIX,
};

/// State key of the answered-token list.
pub const TOKENS_STATE_KEY: &str = "agent/tokens";

/// The management configuration of DESIGN.md §3, set by the OEM at provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Management {
    /// An SP needs an OEM-signed authorization once; then its TAM creates SDs itself.
    OemGated,
    /// Only the OEM's TAM creates and deletes SDs; SPs manage TAs in SDs granted to them.
    OemOwnedSds,
    /// Every install carries both an OEM and an SP signature: each manifest co-signed
    /// (SUIT authentication by an OEM key and an authorized SP signer), or the Update a
    /// COSE_Sign by an OEM key and an SP TAM. Deletions need the managing TAM only.
    DualControl,
}

/// A TAM the Agent trusts (its key chains to the Agent's anchors; the std shell validates
/// the X.509 chain with otrp-pki and passes the key in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedTam {
    /// The TAM's TEEP signing key.
    pub key: PublicKey,
    /// Whether this TAM is operated by the OEM.
    pub oem: bool,
}

/// Agent configuration.
#[derive(Clone)]
pub struct AgentConfig {
    /// Trusted TAM keys.
    pub tams: Vec<TrustedTam>,
    /// OEM keys: sign SP authorizations and co-sign dual-control Updates.
    pub oem_keys: Vec<PublicKey>,
    /// The management configuration.
    pub management: Management,
    /// The key signing the Agent's QueryResponse, Success and Error.
    pub agent_key: PrivateKey,
    /// Algorithm id generation used when the TAM's suite is unknown.
    pub alg_gen: AlgIdGeneration,
    /// SUIT processor configuration (device ids, KEKs, limits).
    pub processor: ProcessorConfig,
    /// How many answered tokens are remembered against replay.
    pub max_tokens: usize,
}

/// Something the Agent reports to its shell besides the bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A component was installed or updated.
    Installed {
        /// The component id.
        component: ComponentId,
    },
    /// A component was removed.
    Removed {
        /// The component id.
        component: ComponentId,
    },
    /// A Security Domain was created or updated.
    SdCreated {
        /// Its name.
        name: Vec<u8>,
    },
    /// A Security Domain was deleted.
    SdDeleted {
        /// Its name.
        name: Vec<u8>,
    },
    /// Processing waits for the bytes at `uri`: fetch them and call
    /// [`Agent::provide_fetch`] (or [`Agent::fetch_failed`]).
    NeedFetch {
        /// The URI.
        uri: String,
    },
    /// A message was refused (an Error was sent when `send` is set).
    Refused {
        /// The TEEP error code.
        code: ErrCode,
        /// Why.
        detail: String,
    },
    /// The TAM reported an error in an Update (err-code); nothing is sent back.
    TamError {
        /// The code.
        code: ErrCode,
        /// The TAM's message.
        msg: Option<String>,
    },
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// A signed TEEP message to send to the TAM.
    pub send: Option<Vec<u8>>,
    /// Events for the shell.
    pub events: Vec<Event>,
}

struct Pending {
    message: Vec<u8>,
    fetched: Vec<(String, Vec<u8>)>,
    awaiting: String,
    envelope: Vec<u8>,
}

/// Who signed a TAM message.
struct Senders {
    keys: Vec<PublicKey>,
    kids: Vec<[u8; 32]>,
    oem: bool,
    sp: bool,
}

/// The TEEP Agent.
pub struct Agent<S: ComponentStore, A: Attester> {
    provider: &'static dyn CryptoProvider,
    config: AgentConfig,
    store: S,
    attester: A,
    requested: Vec<ComponentId>,
    unrequested: Vec<ComponentId>,
    pending: Option<Pending>,
    last_reports: Vec<Vec<u8>>,
    /// Batch mode: data components (`[..TA, "perso"]`) install only for a TA that is
    /// installed or installed by the same Update (see [`crate::batch`]).
    data_needs_ta: bool,
    /// Batch mode with a report key: the Success or Error is a COSE_Mac0 under it, with
    /// this external_aad (see [`crate::batch`]), instead of a signature.
    report_mac: Option<(crate::batch::ReportKey, Vec<u8>)>,
}

struct SdPolicy<'a> {
    anchors: &'a [PublicKey],
    senders: &'a Senders,
    sds: &'a [SecurityDomain],
    /// OEM keys (configured OEM keys and OEM TAM keys).
    oem_keys: &'a [PublicKey],
    /// Dual control and the Update itself is not signed by both an OEM and an SP TAM:
    /// every manifest must then carry an OEM signature besides its SP/TAM one.
    manifest_needs_oem: bool,
}

impl SdPolicy<'_> {
    /// Dual control: some block other than `other` verified with an OEM key.
    fn oem_cosigned(&self, signers: &[VerifiedBlock], other: Option<usize>) -> bool {
        signers.iter().any(|b| {
            Some(b.block_index) != other
                && self
                    .anchors
                    .get(b.key_index)
                    .is_some_and(|k| self.oem_keys.contains(k))
        })
    }
}

fn refuse(reason: ReportReason, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

impl ManifestPolicy for SdPolicy<'_> {
    fn authorize(
        &self,
        manifest_id: &ComponentId,
        manifest: &Manifest,
        signers: &[VerifiedBlock],
    ) -> Result<(), Refusal> {
        let Some(name) = manifest_id.segments().first() else {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "empty manifest id",
            ));
        };
        let components = manifest.components();
        let is_sd = components.iter().any(|c| {
            c.segments().get(1).map(Vec::as_slice) == Some(SD_SEGMENT) && c.segments().len() == 2
        });
        if is_sd {
            let expected = sd_component_id(name);
            if components != [expected.clone()] || *manifest_id != expected {
                return Err(refuse(
                    ReportReason::ComponentUnauthorised,
                    "an SD manifest names exactly [sd-name, \"sd\"]",
                ));
            }
            let by_sender = signers.iter().find(|b| {
                self.anchors
                    .get(b.key_index)
                    .is_some_and(|k| self.senders.keys.contains(k))
            });
            let Some(by_sender) = by_sender else {
                return Err(refuse(
                    ReportReason::Unauthorised,
                    "an SD manifest must be signed by the TAM that sends it",
                ));
            };
            // An OEM TAM's own signature is the OEM's.
            if self.manifest_needs_oem
                && !self.senders.oem
                && !self.oem_cosigned(signers, Some(by_sender.block_index))
            {
                return Err(refuse(
                    ReportReason::Unauthorised,
                    "dual control: the SD manifest lacks the OEM co-signature",
                ));
            }
            return Ok(());
        }
        if components
            .iter()
            .any(|c| c.segments().first() != Some(name))
        {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "components of one manifest must lie in one Security Domain",
            ));
        }
        let Some(sd) = self.sds.iter().find(|sd| sd.name == *name) else {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "no Security Domain of that name",
            ));
        };
        if !self.senders.oem && !self.senders.kids.contains(&sd.owner_tam) {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "the sending TAM does not manage this Security Domain",
            ));
        }
        let authorized = signers.iter().find(|b| {
            self.anchors
                .get(b.key_index)
                .is_some_and(|k| sd.signers.contains(k))
        });
        let Some(sp_block) = authorized else {
            return Err(refuse(
                ReportReason::ComponentUnauthorised,
                "the manifest signer is not authorized for this Security Domain",
            ));
        };
        if self.manifest_needs_oem && !self.oem_cosigned(signers, Some(sp_block.block_index)) {
            return Err(refuse(
                ReportReason::Unauthorised,
                "dual control: the manifest is not co-signed by the OEM",
            ));
        }
        Ok(())
    }
}

fn failure_from(report: &SuitReport, reason: ReportReason) -> SuitReport {
    let mut r = report.clone();
    r.records.clear();
    r.result = ReportResult::Failure {
        code: reason.code(),
        record: SuitRecord::default(),
        reason,
    };
    r
}

impl<S: ComponentStore, A: Attester> Agent<S, A> {
    /// An Agent over `store`, attesting with `attester`.
    pub fn new(
        provider: &'static dyn CryptoProvider,
        config: AgentConfig,
        store: S,
        attester: A,
    ) -> Self {
        Agent {
            provider,
            config,
            store,
            attester,
            requested: Vec::new(),
            unrequested: Vec::new(),
            pending: None,
            last_reports: Vec::new(),
            data_needs_ta: false,
            report_mac: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (for the shell; not for bypassing the Agent).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The configuration, mutably (batch mode adds the batch KEK for one package).
    pub(crate) fn config_mut(&mut self) -> &mut AgentConfig {
        &mut self.config
    }

    /// Batch mode: whether data components need their TA (set for one package).
    pub(crate) fn set_data_needs_ta(&mut self, yes: bool) {
        self.data_needs_ta = yes;
    }

    pub(crate) fn set_report_mac(&mut self, mac: Option<(crate::batch::ReportKey, Vec<u8>)>) {
        self.report_mac = mac;
    }

    /// The crypto provider.
    pub(crate) fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    /// RequestTA (RFC 9397 §6.2.1): a Client App needs `component_id`; it is listed in the
    /// next QueryResponse's requested-tc-list until installed.
    pub fn request_ta(&mut self, component_id: ComponentId) {
        self.unrequested.retain(|c| *c != component_id);
        if !self.requested.contains(&component_id) {
            self.requested.push(component_id);
        }
    }

    /// UnrequestTA: the manifest `manifest_component_id` is no longer needed; it is listed
    /// in the next QueryResponse's unneeded-manifest-list until removed.
    pub fn unrequest_ta(&mut self, manifest_component_id: ComponentId) {
        if !self.unrequested.contains(&manifest_component_id) {
            self.unrequested.push(manifest_component_id);
        }
    }

    /// Processes one OTrP request (`application/otrp+json`) with `otrp` on this Agent's
    /// component store (see [`crate::otrp`]).
    pub fn handle_otrp(
        &mut self,
        otrp: &crate::otrp::OtrpAgent,
        message: &[u8],
        now: u64,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> crate::otrp::OtrpOutput {
        otrp.handle(&mut self.store, message, now, rng)
    }

    /// The registered Security Domains.
    pub fn security_domains(&self) -> Vec<SecurityDomain> {
        let empty = ChangeSet::default();
        self.load_sds(&empty).unwrap_or_default()
    }

    fn suite_for_key(&self) -> TeepCipherSuite {
        TeepCipherSuite::for_alg(self.config.agent_key.default_alg(), self.config.alg_gen)
    }

    fn our_suites(&self) -> Vec<TeepCipherSuite> {
        let alg = self.config.agent_key.default_alg();
        alloc::vec![
            TeepCipherSuite::for_alg(alg, AlgIdGeneration::New),
            TeepCipherSuite::for_alg(alg, AlgIdGeneration::Legacy),
        ]
    }

    /// The suite to answer with: the one the TAM used if our key fits it.
    fn answer_suite(&self, used: Option<&TeepCipherSuite>) -> TeepCipherSuite {
        match used.and_then(|s| s.signing().map(|(alg, _)| (s, alg))) {
            Some((s, alg)) if alg == self.config.agent_key.default_alg() => s.clone(),
            _ => self.suite_for_key(),
        }
    }

    fn sign(&self, msg: &TeepMessage, suite: &TeepCipherSuite) -> Option<Vec<u8>> {
        if let Some((rk, aad)) = &self.report_mac {
            if matches!(msg, TeepMessage::Success(_) | TeepMessage::Error(_)) {
                return otrp_teep::signed::mac0(
                    self.provider,
                    rk.key.as_slice(),
                    &rk.device_id,
                    aad,
                    msg,
                )
                .ok();
            }
        }
        otrp_teep::signed::sign1_with_suite(self.provider, &self.config.agent_key, msg, suite).ok()
    }

    fn error_output(
        &self,
        mut err: otrp_teep::Error,
        token: Option<&[u8]>,
        suite: &TeepCipherSuite,
        detail: String,
        mut events: Vec<Event>,
    ) -> Output {
        if let Some(t) = token {
            err = err.with_token(t.to_vec());
        }
        let mut msg: String = detail.chars().take(128).collect();
        while msg.len() > 128 {
            msg.pop();
        }
        if !msg.is_empty() {
            err = err.with_err_msg(msg);
        }
        events.push(Event::Refused {
            code: err.err_code,
            detail,
        });
        Output {
            send: self.sign(&TeepMessage::Error(err), suite),
            events,
        }
    }

    fn error(
        &self,
        code: ErrCode,
        token: Option<&[u8]>,
        suite: &TeepCipherSuite,
        detail: impl Into<String>,
    ) -> Output {
        self.error_output(
            otrp_teep::Error::new(code),
            token,
            suite,
            detail.into(),
            Vec::new(),
        )
    }

    fn all_keys(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self.config.tams.iter().map(|t| t.key.clone()).collect();
        keys.extend(self.config.oem_keys.iter().cloned());
        keys
    }

    /// Verifies the TAM signature(s). Errors are the Output to send.
    fn verify_tam(&self, bytes: &[u8]) -> Result<(Verified, Senders), Output> {
        let suite = self.suite_for_key();
        let keys = self.all_keys();
        let kid_known = |kid: &Option<Vec<u8>>| {
            kid.as_ref().is_some_and(|k| {
                keys.iter()
                    .any(|key| cose_key_thumbprint(key, self.provider)[..] == k[..])
            })
        };
        let peeked = match otrp_cose::peek(bytes) {
            Ok(m @ (CoseMessage::Sign1(_) | CoseMessage::Sign(_))) => m,
            Ok(_) => {
                return Err(self.error(
                    ErrCode::PermanentError,
                    None,
                    &suite,
                    "not a COSE_Sign1 or COSE_Sign message",
                ))
            }
            Err(e) => {
                return Err(self.error(
                    ErrCode::PermanentError,
                    None,
                    &suite,
                    alloc::format!("malformed COSE: {e}"),
                ))
            }
        };
        let verified = match otrp_teep::signed::verify(self.provider, bytes, &keys) {
            Ok(v) => v,
            Err(e) => {
                // A kid of a trusted key whose signature fails: tampered bytes. Otherwise
                // the signer is not a trusted TAM.
                let known = match &peeked {
                    CoseMessage::Sign1(m) => {
                        kid_known(&Some(m.unprotected.key_id.clone()))
                            || kid_known(&Some(m.protected.header.key_id.clone()))
                    }
                    CoseMessage::Sign(m) => m.signatures.iter().any(|s| {
                        kid_known(&Some(s.unprotected.key_id.clone()))
                            || kid_known(&Some(s.protected.header.key_id.clone()))
                    }),
                    _ => false,
                };
                let code = match (&e, known) {
                    (otrp_teep::signed::SignedError::Teep(_), _) | (_, true) => {
                        ErrCode::PermanentError
                    }
                    _ => ErrCode::BadCertificate,
                };
                return Err(self.error(
                    code,
                    None,
                    &suite,
                    alloc::format!("TAM message refused: {e}"),
                ));
            }
        };
        let indices: Vec<usize> = match verified.protection {
            Protection::Sign1 => alloc::vec![verified.key_index],
            Protection::Sign { .. } => {
                match otrp_cose::verify_sign(self.provider, bytes, None, &keys, SignPolicy::AnyOne)
                {
                    Ok(v) => v.signers.iter().map(|s| s.key_index).collect(),
                    Err(e) => {
                        return Err(self.error(
                            ErrCode::PermanentError,
                            None,
                            &suite,
                            alloc::format!("COSE_Sign: {e}"),
                        ))
                    }
                }
            }
        };
        let tams = self.config.tams.len();
        let mut senders = Senders {
            keys: Vec::new(),
            kids: Vec::new(),
            oem: false,
            sp: false,
        };
        let mut any_tam = false;
        for i in indices {
            let Some(key) = keys.get(i) else { continue };
            match self.config.tams.get(i) {
                Some(t) if i < tams => {
                    any_tam = true;
                    senders.oem |= t.oem;
                    senders.sp |= !t.oem;
                    senders.keys.push(key.clone());
                    senders.kids.push(cose_key_thumbprint(key, self.provider));
                }
                _ => senders.oem = true,
            }
        }
        if !any_tam {
            return Err(self.error(
                ErrCode::BadCertificate,
                None,
                &suite,
                "no trusted TAM signed the message",
            ));
        }
        Ok((verified, senders))
    }

    fn answered_tokens(&self, staged: &ChangeSet) -> Vec<Vec<u8>> {
        let view = View::new(&self.store, staged);
        let Ok(Some(bytes)) = view.state(TOKENS_STATE_KEY) else {
            return Vec::new();
        };
        match ciborium::de::from_reader::<Value, _>(bytes.as_slice()) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Bytes(b) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    fn remember_token(&self, staged: &mut ChangeSet, token: &[u8]) {
        let mut tokens = self.answered_tokens(staged);
        tokens.push(token.to_vec());
        let excess = tokens.len().saturating_sub(self.config.max_tokens.max(1));
        tokens.drain(..excess);
        let mut out = Vec::new();
        let v = Value::Array(tokens.into_iter().map(Value::Bytes).collect());
        if ciborium::ser::into_writer(&v, &mut out).is_ok() {
            staged.state.insert(TOKENS_STATE_KEY.to_string(), Some(out));
        }
    }

    /// Processes one message from the TAM (ProcessTeepMessage). `now` is the time in
    /// seconds (reserved for token expiry and time-based conditions; the signing the
    /// Agent does is deterministic, so no randomness is needed).
    pub fn handle(&mut self, message: &[u8], now: u64) -> Output {
        self.pending = None;
        self.handle_inner(message, Vec::new(), now)
    }

    /// Resumes processing after [`Event::NeedFetch`] with the fetched bytes.
    pub fn provide_fetch(&mut self, uri: &str, bytes: Vec<u8>, now: u64) -> Output {
        let Some(mut p) = self.pending.take() else {
            return Output::default();
        };
        if p.awaiting != uri {
            self.pending = Some(p);
            return Output::default();
        }
        p.fetched.push((uri.to_string(), bytes));
        self.handle_inner(&p.message.clone(), p.fetched, now)
    }

    /// The Broker could not fetch `uri`: the pending Update fails with
    /// ERR_MANIFEST_PROCESSING_FAILED and a SUIT report.
    pub fn fetch_failed(&mut self, uri: &str, _now: u64) -> Output {
        let Some(p) = self.pending.take() else {
            return Output::default();
        };
        let Ok((verified, _)) = self.verify_tam(&p.message) else {
            return Output::default();
        };
        let suite = self.answer_suite(Some(&verified.suite));
        let token = verified.message.token().map(<[u8]>::to_vec);
        let detail = alloc::format!("fetch of {uri} failed");
        let mut err = otrp_teep::Error::new(ErrCode::ManifestProcessingFailed);
        if let Ok(env) = Envelope::decode(&p.envelope) {
            let report = SuitReport::for_envelope(
                &env,
                token.clone(),
                ReportResult::Failure {
                    code: ReportReason::OperationFailed.code(),
                    record: SuitRecord::default(),
                    reason: ReportReason::OperationFailed,
                },
            );
            if let Ok(b) = report.to_cbor() {
                err = err.with_suit_reports(alloc::vec![b]);
            }
        }
        self.error_output(err, token.as_deref(), &suite, detail, Vec::new())
    }

    fn handle_inner(
        &mut self,
        message: &[u8],
        fetched: Vec<(String, Vec<u8>)>,
        now: u64,
    ) -> Output {
        let (verified, senders) = match self.verify_tam(message) {
            Ok(v) => v,
            Err(out) => return out,
        };
        let suite = self.answer_suite(Some(&verified.suite));
        let token = verified.message.token().map(<[u8]>::to_vec);
        if let Some(t) = &token {
            if self.answered_tokens(&ChangeSet::default()).contains(t) {
                return self.error(
                    ErrCode::PermanentError,
                    Some(t),
                    &suite,
                    "replayed token: this message was already answered",
                );
            }
        }
        match &verified.message {
            TeepMessage::QueryRequest(qr) => self.query(qr, now),
            TeepMessage::Update(up) => self.update(message, up, &verified, &senders, fetched, now),
            other => self.error(
                ErrCode::PermanentError,
                token.as_deref(),
                &suite,
                alloc::format!(
                    "unexpected message type {} from a TAM",
                    other.message_type()
                ),
            ),
        }
    }

    fn installed(&self) -> (Vec<InstalledManifest>, Vec<SystemPropertyClaims>) {
        let mut manifests = Vec::new();
        let mut tcs = Vec::new();
        let ids = self.store.manifest_ids().unwrap_or_default();
        for id in ids {
            let Ok(Some(rec)) = self.store.manifest(&id) else {
                continue;
            };
            let reference_uri = Envelope::decode(&rec.envelope)
                .ok()
                .and_then(|e| e.manifest().reference_uri.clone());
            manifests.push(InstalledManifest {
                manifest_id: rec.manifest_id.clone(),
                sequence_number: rec.sequence_number,
                digest: rec.digest.clone(),
                reference_uri,
            });
            for c in &rec.components {
                let Ok(Some(img)) = self.store.image(c) else {
                    continue;
                };
                let mut claims = SystemPropertyClaims::new(otrp_teep::ComponentId(c.0.clone()));
                if let Ok(d) = otrp_suit::Digest::sha256(&img).to_cbor() {
                    claims =
                        claims.with_parameter(SystemPropertyClaims::IMAGE_DIGEST, Value::Bytes(d));
                }
                claims = claims.with_parameter(
                    SystemPropertyClaims::IMAGE_SIZE,
                    Value::Integer((img.len() as u64).into()),
                );
                tcs.push(claims);
            }
        }
        (manifests, tcs)
    }

    fn query(&mut self, qr: &QueryRequest, _now: u64) -> Output {
        let token = qr.token.clone();
        let key_alg = self.config.agent_key.default_alg();
        let chosen = qr
            .supported_teep_cipher_suites
            .iter()
            .find(|s| s.signing().is_some_and(|(alg, _)| alg == key_alg))
            .cloned();
        let Some(suite) = chosen else {
            let err = otrp_teep::Error::new(ErrCode::UnsupportedCipherSuites)
                .with_cipher_suites(self.our_suites());
            return self.error_output(
                err,
                token.as_deref(),
                &self.suite_for_key(),
                "no common TEEP cipher suite".into(),
                Vec::new(),
            );
        };
        let want = qr.data_item_requested;
        let mut resp = QueryResponse::new();
        if let Some(t) = &token {
            resp = resp.with_token(t.clone());
        }
        let (manifests, tcs) = self.installed();
        if want.contains(DataItemRequested::ATTESTATION) {
            if let Some(m) = &qr.supported_freshness_mechanisms {
                if !m.contains(&FreshnessMechanism::NONCE) {
                    let err = otrp_teep::Error::new(ErrCode::UnsupportedFreshnessMechanisms)
                        .with_freshness_mechanisms(alloc::vec![FreshnessMechanism::NONCE]);
                    return self.error_output(
                        err,
                        token.as_deref(),
                        &suite,
                        "only the nonce freshness mechanism is supported".into(),
                        Vec::new(),
                    );
                }
            }
            let Some(nonce) = qr.challenge.clone().or_else(|| token.clone()) else {
                return self.error(
                    ErrCode::PermanentError,
                    None,
                    &suite,
                    "attestation requested without challenge or token",
                );
            };
            match self.attester.evidence(&nonce, &manifests) {
                Ok(evidence) => resp = resp.with_attestation(None, evidence),
                Err(e) => {
                    return self.error(
                        ErrCode::TemporaryError,
                        token.as_deref(),
                        &suite,
                        alloc::format!("attestation failed: {e}"),
                    )
                }
            }
        }
        // tc-list is `[ + system-property-claims ]`: a device with nothing installed
        // leaves it out (an empty list does not encode).
        if want.contains(DataItemRequested::TRUSTED_COMPONENTS) && !tcs.is_empty() {
            resp = resp.with_tc_list(tcs.clone());
        }
        if want.contains(DataItemRequested::SUIT_REPORTS) && !self.last_reports.is_empty() {
            resp = resp.with_suit_reports(self.last_reports.clone());
        }
        let installed_ids: Vec<&otrp_teep::ComponentId> =
            tcs.iter().map(|c| &c.component_id).collect();
        let requested: Vec<RequestedTcInfo> = self
            .requested
            .iter()
            .filter(|c| !installed_ids.iter().any(|i| i.0 == c.0))
            .map(|c| RequestedTcInfo::new(otrp_teep::ComponentId(c.0.clone())))
            .collect();
        if !requested.is_empty() {
            resp = resp.with_requested_tc_list(requested);
        }
        let unneeded: Vec<otrp_teep::ComponentId> = self
            .unrequested
            .iter()
            .filter(|m| manifests.iter().any(|i| i.manifest_id == **m))
            .map(|m| otrp_teep::ComponentId(m.0.clone()))
            .collect();
        if !unneeded.is_empty() {
            resp = resp.with_unneeded_manifest_list(unneeded);
        }
        let mut staged = ChangeSet::default();
        if let Some(t) = &token {
            self.remember_token(&mut staged, t);
            if let Err(e) = self.store.commit(staged) {
                return self.error(
                    ErrCode::TemporaryError,
                    Some(t),
                    &suite,
                    alloc::format!("store: {e}"),
                );
            }
        }
        Output {
            send: self.sign(&TeepMessage::QueryResponse(resp), &suite),
            events: Vec::new(),
        }
    }

    fn load_sds(&self, staged: &ChangeSet) -> Result<Vec<SecurityDomain>, String> {
        let view = View::new(&self.store, staged);
        let keys = view
            .state_keys(SD_STATE_PREFIX)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(bytes) = view.state(&k).map_err(|e| e.to_string())? {
                out.push(SecurityDomain::from_cbor(&bytes).map_err(|e| e.to_string())?);
            }
        }
        Ok(out)
    }

    fn oem_keys(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self.config.oem_keys.clone();
        keys.extend(
            self.config
                .tams
                .iter()
                .filter(|t| t.oem)
                .map(|t| t.key.clone()),
        );
        keys
    }

    /// Validates the descriptor of an SD manifest that processed, and returns the
    /// registry changes.
    fn register_sd(
        &self,
        name: &[u8],
        changes: &ChangeSet,
        staged: &ChangeSet,
        senders: &Senders,
    ) -> Result<ChangeSet, String> {
        let bytes = match changes.images.get(&sd_component_id(name)) {
            Some(Some(b)) => b.clone(),
            _ => return Err("the SD manifest wrote no descriptor".into()),
        };
        let d = SdDescriptor::from_cbor(&bytes).map_err(|e| e.to_string())?;
        if d.name != name {
            return Err("the descriptor names another SD".into());
        }
        let view = View::new(&self.store, staged);
        let existing = match view.state(&sd_state_key(name)).map_err(|e| e.to_string())? {
            Some(b) => Some(SecurityDomain::from_cbor(&b).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut out = ChangeSet::default();
        match self.config.management {
            Management::OemOwnedSds if !senders.oem => {
                return Err("only the OEM's TAM creates Security Domains".into());
            }
            Management::OemGated if !senders.oem => {
                let recorded = view
                    .state(&auth_state_key(&d.sp_id))
                    .map_err(|e| e.to_string())?
                    .is_some_and(|kid| senders.kids.iter().any(|k| k[..] == kid[..]));
                if !recorded {
                    let Some(auth) = &d.authorization else {
                        return Err("the SP has no OEM authorization".into());
                    };
                    let a = OemAuthorization::verify(self.provider, auth, &self.oem_keys())
                        .map_err(|e| e.to_string())?;
                    if a.sp_id != d.sp_id || !senders.kids.contains(&a.tam_kid) {
                        return Err("the OEM authorization is for another SP or TAM".into());
                    }
                    out.state
                        .insert(auth_state_key(&d.sp_id), Some(a.tam_kid.to_vec()));
                }
            }
            _ => {}
        }
        if let Some(e) = &existing {
            if !senders.oem && !senders.kids.contains(&e.owner_tam) {
                return Err("the Security Domain belongs to another TAM".into());
            }
            if e.sp_id != d.sp_id {
                return Err("a Security Domain cannot change its SP".into());
            }
        }
        let creator = senders.kids.first().copied().ok_or("no sending TAM")?;
        let owner = d
            .tam
            .or(existing.as_ref().map(|e| e.owner_tam))
            .unwrap_or(creator);
        let sd = SecurityDomain {
            name: name.to_vec(),
            sp_id: d.sp_id,
            signers: d.signers,
            owner_tam: owner,
        };
        out.state.insert(
            sd_state_key(name),
            Some(sd.to_cbor().map_err(|e| e.to_string())?),
        );
        Ok(out)
    }

    fn delete_sd(
        &self,
        name: &[u8],
        staged: &ChangeSet,
        senders: &Senders,
        p: &Processor<'_>,
    ) -> Result<ChangeSet, String> {
        let view = View::new(&self.store, staged);
        let Some(bytes) = view.state(&sd_state_key(name)).map_err(|e| e.to_string())? else {
            return Ok(ChangeSet::default());
        };
        let sd = SecurityDomain::from_cbor(&bytes).map_err(|e| e.to_string())?;
        match self.config.management {
            Management::OemOwnedSds if !senders.oem => {
                return Err("only the OEM's TAM deletes Security Domains".into())
            }
            _ if !senders.oem && !senders.kids.contains(&sd.owner_tam) => {
                return Err("the Security Domain belongs to another TAM".into())
            }
            _ => {}
        }
        let sd_id = sd_component_id(name);
        for id in view.manifest_ids().map_err(|e| e.to_string())? {
            if id.segments().first().map(Vec::as_slice) == Some(name) && id != sd_id {
                return Err("the Security Domain still holds Trusted Components".into());
            }
        }
        let mut changes = match view.manifest(&sd_id).map_err(|e| e.to_string())? {
            Some(_) => p
                .unlink(&self.store, staged, &sd_id, &Holder::Tam)
                .map_err(|e| e.to_string())?,
            None => ChangeSet::default(),
        };
        changes.state.insert(sd_state_key(name), None);
        Ok(changes)
    }

    fn update(
        &mut self,
        message: &[u8],
        up: &Update,
        verified: &Verified,
        senders: &Senders,
        fetched: Vec<(String, Vec<u8>)>,
        _now: u64,
    ) -> Output {
        let suite = self.answer_suite(Some(&verified.suite));
        let token = up.token.clone();
        let tok = token.as_deref();
        if let Some(code) = up.err_code {
            return Output {
                send: None,
                events: alloc::vec![Event::TamError {
                    code,
                    msg: up.err_msg.clone()
                }],
            };
        }
        // Dual control (DESIGN.md §3): either the Update is a COSE_Sign by an OEM and an
        // SP TAM, or every manifest is co-signed (SUIT authentication blocks by an OEM key
        // and by an SP signer authorized for its SD), as `Admin::cosign_manifest` makes
        // them. Deletions need the managing TAM only: dual control governs what code runs
        // in the TEE, and removing a component is already within its managing TAM's power
        // (it could stop serving it anyway); the OEM co-signs what gets installed.
        let manifest_needs_oem =
            self.config.management == Management::DualControl && !(senders.oem && senders.sp);
        let oem_keys = self.oem_keys();
        let mut staged = ChangeSet::default();
        let mut events = Vec::new();
        // 1. Unlink unneeded manifests.
        let cfg: &ProcessorConfig = &self.config.processor;
        let no_anchors: [PublicKey; 0] = [];
        let unlinker = Processor::new(
            self.provider,
            cfg,
            &no_anchors,
            &otrp_suit_processor::AllowAll,
        );
        for id in up.unneeded_manifest_list.iter().flatten() {
            let id = ComponentId(id.0.clone());
            if let Some(name) = sd_name_of_manifest(&id) {
                match self.delete_sd(name, &staged, senders, &unlinker) {
                    Ok(c) => {
                        staged.merge(c);
                        events.push(Event::SdDeleted {
                            name: name.to_vec(),
                        });
                    }
                    Err(e) => return self.error(ErrCode::PermanentError, tok, &suite, e),
                }
                continue;
            }
            let view = View::new(&self.store, &staged);
            let manifest_id = match view.manifest(&id) {
                Ok(Some(_)) => Some(id.clone()),
                // A component id names the manifest that installed it.
                _ => view
                    .manifest_ids()
                    .unwrap_or_default()
                    .into_iter()
                    .find(|m| {
                        view.manifest(m)
                            .ok()
                            .flatten()
                            .is_some_and(|r| r.components.contains(&id))
                    }),
            };
            let Some(mid) = manifest_id else {
                continue; // not installed: deleting is idempotent
            };
            let sds = match self.load_sds(&staged) {
                Ok(s) => s,
                Err(e) => return self.error(ErrCode::TemporaryError, tok, &suite, e),
            };
            let owner_ok = senders.oem
                || sds.iter().any(|sd| {
                    mid.segments().first() == Some(&sd.name) && senders.kids.contains(&sd.owner_tam)
                });
            if !owner_ok {
                return self.error(
                    ErrCode::PermanentError,
                    tok,
                    &suite,
                    "unneeded manifest lies in a Security Domain the TAM does not manage",
                );
            }
            match unlinker.unlink(&self.store, &staged, &mid, &Holder::Tam) {
                Ok(c) => staged.merge(c),
                Err(e) => {
                    return self.error(
                        ErrCode::ManifestProcessingFailed,
                        tok,
                        &suite,
                        e.to_string(),
                    )
                }
            }
        }
        // 2. SUIT processing of each manifest, staged on top of each other.
        let mut reports: Vec<SuitReport> = Vec::new();
        let mut installed: Vec<ComponentId> = Vec::new();
        // Data components written, with the index of their manifest's report.
        let mut data: Vec<(usize, ComponentId)> = Vec::new();
        for env_bytes in up.manifest_list.iter().flatten() {
            let sds = match self.load_sds(&staged) {
                Ok(s) => s,
                Err(e) => return self.error(ErrCode::TemporaryError, tok, &suite, e),
            };
            let mut anchors: Vec<PublicKey> = senders.keys.clone();
            for sd in &sds {
                anchors.extend(sd.signers.iter().cloned());
            }
            if manifest_needs_oem {
                anchors.extend(oem_keys.iter().cloned());
            }
            let policy = SdPolicy {
                anchors: &anchors,
                senders,
                sds: &sds,
                oem_keys: &oem_keys,
                manifest_needs_oem,
            };
            let mut p = Processor::new(self.provider, cfg, &anchors, &policy);
            for (u, b) in &fetched {
                p.provide(u.clone(), b.clone());
            }
            match p.update(&self.store, &staged, env_bytes, tok) {
                Step::NeedFetch { uri } => {
                    self.pending = Some(Pending {
                        message: message.to_vec(),
                        fetched,
                        awaiting: uri.clone(),
                        envelope: env_bytes.clone(),
                    });
                    return Output {
                        send: None,
                        events: alloc::vec![Event::NeedFetch { uri }],
                    };
                }
                Step::Failed(f) => {
                    reports.push(f.report);
                    return self.manifest_failure(reports, tok, &suite, f.error.detail);
                }
                Step::Done(a) => {
                    if let Some(name) = sd_name_of_manifest(&a.manifest_id) {
                        match self.register_sd(name, &a.changes, &staged, senders) {
                            Ok(reg) => {
                                staged.merge(a.changes);
                                staged.merge(reg);
                                events.push(Event::SdCreated {
                                    name: name.to_vec(),
                                });
                            }
                            Err(e) => {
                                reports.push(failure_from(&a.report, ReportReason::Unauthorised));
                                return self.manifest_failure(reports, tok, &suite, e);
                            }
                        }
                    } else {
                        staged.merge(a.changes);
                        for c in &a.installed {
                            if c.perso_target().is_some() {
                                data.push((reports.len(), c.clone()));
                            }
                            if !installed.contains(c) {
                                installed.push(c.clone());
                            }
                        }
                    }
                    reports.push(a.report);
                }
            }
        }
        // 2b. Batch mode: data only for a TA installed before or by this Update (and not
        // removed by it).
        if self.data_needs_ta {
            let view = View::new(&self.store, &staged);
            for (i, c) in &data {
                let Some(ta) = c.perso_target() else {
                    continue;
                };
                let present = view
                    .image(&ta)
                    .ok()
                    .flatten()
                    .is_some_and(|img| !img.is_empty());
                if !present {
                    reports.truncate(i + 1);
                    if let Some(r) = reports.get_mut(*i) {
                        *r = failure_from(r, ReportReason::ComponentUnauthorised);
                    }
                    let detail = alloc::format!(
                        "data {} is for TA {}, which is neither installed nor installed by this package",
                        crate::batch::display(c),
                        crate::batch::display(&ta)
                    );
                    return self.manifest_failure(reports, tok, &suite, detail);
                }
            }
        }
        // 3. Commit once.
        if let Some(t) = tok {
            self.remember_token(&mut staged, t);
        }
        let removed: Vec<ComponentId> = staged
            .images
            .iter()
            .filter(|(c, v)| v.is_none() && sd_name_of_manifest(c).is_none())
            .map(|(c, _)| c.clone())
            .collect();
        let removed_manifests: Vec<ComponentId> = staged
            .manifests
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(c, _)| c.clone())
            .collect();
        if let Err(e) = self.store.commit(staged) {
            return self.error(
                ErrCode::TemporaryError,
                tok,
                &suite,
                alloc::format!("store: {e}"),
            );
        }
        for c in installed {
            self.requested.retain(|r| *r != c);
            events.push(Event::Installed { component: c });
        }
        for c in removed {
            events.push(Event::Removed { component: c });
        }
        self.unrequested.retain(|m| !removed_manifests.contains(m));
        let encoded: Vec<Vec<u8>> = reports.iter().filter_map(|r| r.to_cbor().ok()).collect();
        self.last_reports = encoded.clone();
        let mut success = Success::new();
        if let Some(t) = tok {
            success = success.with_token(t.to_vec());
        }
        if !encoded.is_empty() {
            success = success.with_suit_reports(encoded);
        }
        Output {
            send: self.sign(&TeepMessage::Success(success), &suite),
            events,
        }
    }

    fn manifest_failure(
        &mut self,
        reports: Vec<SuitReport>,
        token: Option<&[u8]>,
        suite: &TeepCipherSuite,
        detail: String,
    ) -> Output {
        let encoded: Vec<Vec<u8>> = reports.iter().filter_map(|r| r.to_cbor().ok()).collect();
        self.last_reports = encoded.clone();
        let mut err = otrp_teep::Error::new(ErrCode::ManifestProcessingFailed);
        if !encoded.is_empty() {
            err = err.with_suit_reports(encoded);
        }
        self.error_output(err, token, suite, detail, Vec::new())
    }
}

/// The manifest id of an envelope without verifying it (for the shell's bookkeeping only).
pub fn peek_manifest_id(envelope: &[u8]) -> Option<ComponentId> {
    Envelope::decode(envelope)
        .ok()
        .and_then(|e| manifest_id_of(e.manifest()))
}
