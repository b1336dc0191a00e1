//! TEEP session rules of the TAM (draft-ietf-teep-protocol §7.1; spec notes §2.11, §2.13).
//!
//! [`Tam::process`] is the whole protocol surface an HTTP shell needs
//! (draft-ietf-teep-otrp-over-http §6): an empty body opens a session (ProcessConnect), a
//! non-empty body is a TEEP message (ProcessTeepMessage); the [`Outcome`] is either a
//! message to return with 200 or "done" (204). Every piece of session state lives in the
//! store (tokens carry it), so any replica can take the next message, and a restarted
//! TAM continues where it stopped.

use std::sync::Arc;

use ciborium::value::Value;
use coset::{AsCborValue, CborSerializable, Label};
use otrp_crypto::thumbprint::cose_key_thumbprint;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey, SigAlg};
use otrp_store::{
    AgentKeyRecord, ArStatus, AttestationRecord, ChallengeRecord, ConsumeFailure, ConsumeRefusal,
    DeploymentAction, DeploymentPlan, DeploymentState, DeviceRecord, KnownAgent, ProgressRecord,
    ProgressState, Rollout, SentItem, Store, StoreError, StoreWrite, TokenKind, TokenRecord,
};
use otrp_suit::CborItem;
use otrp_teep::signed::{self, Verified, WireProfile};
use otrp_teep::{
    ComponentId, DataItemRequested, QueryRequest, QueryResponse, SuitCoseProfile, TeepCipherSuite,
    TeepMessage, Update,
};
use rand_core::CryptoRngCore;

use crate::recent_updates::RecentUpdates;

use crate::attest::{AttestationError, Verifier};
use crate::component_key;
use crate::query_token::QueryTokenKey;

/// COSE header label `kccs` (RFC 9528): a CWT Claims Set whose `cnf` holds a COSE_Key.
/// An Agent may put its TEEP key there when its evidence's `cnf` is only a `kid`.
pub const KCCS: i64 = 14;

/// What the HTTP layer sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A TEEP message (HTTP 200, `application/teep+cbor`).
    Reply(Vec<u8>),
    /// The session is over (HTTP 204, no body).
    Done,
}

impl Outcome {
    /// 200 for a reply, 204 when done.
    pub fn http_status(&self) -> u16 {
        match self {
            Outcome::Reply(_) => 200,
            Outcome::Done => 204,
        }
    }
    /// The body (empty when done).
    pub fn body(&self) -> &[u8] {
        match self {
            Outcome::Reply(b) => b,
            Outcome::Done => &[],
        }
    }
}

/// Why a message was refused (the session state is unchanged unless noted).
#[derive(Debug, thiserror::Error)]
pub enum TamError {
    /// Not a COSE-protected TEEP message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message carries no token (this TAM always sends one).
    #[error("the message carries no token")]
    MissingToken,
    /// The token was never issued (or was purged).
    #[error("unknown token")]
    TokenUnknown,
    /// The token was already answered once.
    #[error("token replayed: it was already consumed")]
    TokenReplayed,
    /// The token expired.
    #[error("token expired")]
    TokenExpired,
    /// The challenge was already used or expired.
    #[error("challenge refused: {0:?}")]
    Challenge(ConsumeRefusal),
    /// The message does not answer what the token was sent in.
    #[error("unexpected {got} in answer to a {expected}")]
    UnexpectedMessage {
        /// What the token was sent in.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// Attestation was requested and the QueryResponse has no evidence.
    #[error("attestation was requested but the QueryResponse carries no attestation-payload")]
    MissingEvidence,
    /// Evidence was refused.
    #[error("attestation refused: {0}")]
    Attestation(#[from] AttestationError),
    /// No key is known for the signer of the message.
    #[error("no Agent key known for kid {0}")]
    UnknownAgentKey(String),
    /// The Agent's signature does not verify.
    #[error("Agent signature refused: {0}")]
    BadSignature(String),
    /// The Agent selected a TEEP version this TAM does not speak.
    #[error("unsupported TEEP version {0}")]
    UnsupportedVersion(u32),
    /// A SUIT report does not carry the token as its nonce.
    #[error("SUIT report #{index}: nonce is not the token of this exchange")]
    ReportNonce {
        /// Index in suit-reports.
        index: usize,
    },
    /// The device is revoked.
    #[error("device {0} is revoked")]
    DeviceRevoked(String),
    /// Signing the answer failed.
    #[error("signing: {0}")]
    Signing(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl TamError {
    /// The HTTP status a shell should answer with: 400 for refused input, 500 for the
    /// TAM's own failures (draft-ietf-teep-otrp-over-http §6.4).
    pub fn http_status(&self) -> u16 {
        match self {
            TamError::Signing(_) | TamError::Store(_) => 500,
            _ => 400,
        }
    }
}

/// Session policy.
#[derive(Debug, Clone)]
pub struct TamConfig {
    /// Lifetime of tokens and challenges in seconds (the draft recommends hours).
    pub token_ttl: u64,
    /// TEEP versions spoken (0 = the draft).
    pub versions: Vec<u32>,
    /// SUIT COSE profiles offered.
    pub suit_profiles: Vec<SuitCoseProfile>,
    /// Id generation for the suites offered in the first QueryRequest.
    pub alg_gen: AlgIdGeneration,
    /// Which devices get Updates in the compact wire profile (docs/CONSTRAINED.md).
    pub compact: CompactPolicy,
    /// QueryRequest tokens the TAM keeps no row for until they are answered
    /// ([`crate::query_token`]): an empty POST writes nothing. `false` stores every
    /// token and challenge when it is issued, as before.
    pub stateless_query_tokens: bool,
}

/// The transport a TEEP message reached the TAM over, as the shell that received it
/// tells [`Tam::process_over`]. It selects nothing but the wire profile
/// ([`CompactPolicy::transports`]): identity and authorization always come from
/// signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// TEEP over HTTP(S) (draft-ietf-teep-otrp-over-http).
    Http,
    /// TEEP over CoAP (UDP, Block-wise transfer): the constrained links.
    Coap,
}

impl Transport {
    /// The transport's name in configuration files and logs (`http`, `coap`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Coap => "coap",
        }
    }
}

/// Which devices the TAM sends Updates in [`WireProfile::Compact`] (no kid, 8-byte
/// token); every other device gets [`WireProfile::Standard`]. Agents accept both, so the
/// choice is the TAM's alone: per device model (constrained hardware), per transport (the
/// session's Update goes back over the link its QueryResponse came in on, e.g. CoAP), or
/// for every device (a TAM instance that serves only constrained links).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactPolicy {
    /// Every device.
    pub all: bool,
    /// Devices whose model (EAT `hwmodel`, as stored) is one of these.
    pub models: Vec<String>,
    /// Devices whose QueryResponse reached the TAM over one of these transports.
    pub transports: Vec<Transport>,
}

impl CompactPolicy {
    /// The profile for a device of `model`, whatever its transport (the policy's
    /// `transports` only apply when the transport is known: [`Self::profile`]).
    pub fn profile_for(&self, model: &str) -> WireProfile {
        self.profile(model, None)
    }

    /// The profile for a device of `model` whose message came over `transport` (None:
    /// the shell did not say).
    pub fn profile(&self, model: &str, transport: Option<Transport>) -> WireProfile {
        let by_transport = transport.is_some_and(|t| self.transports.contains(&t));
        if self.all || by_transport || self.models.iter().any(|m| m == model) {
            WireProfile::Compact
        } else {
            WireProfile::Standard
        }
    }
}

impl Default for TamConfig {
    fn default() -> Self {
        TamConfig {
            token_ttl: 6 * 3600,
            versions: vec![0],
            suit_profiles: vec![
                SuitCoseProfile::SHA256_ESP256_ECDH_A128CTR,
                SuitCoseProfile::SHA256_ED25519_ECDH_A128CTR,
            ],
            alg_gen: AlgIdGeneration::New,
            compact: CompactPolicy::default(),
            stateless_query_tokens: true,
        }
    }
}

/// The TAM's TEEP signing keys: both mandatory algorithms (ED §8.1).
#[derive(Clone)]
pub struct TamKeys {
    /// ECDSA P-256 key (ESP256 / ES256).
    pub p256: PrivateKey,
    /// Ed25519 key.
    pub ed25519: PrivateKey,
}

impl std::fmt::Debug for TamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TamKeys").finish_non_exhaustive()
    }
}

impl TamKeys {
    fn for_alg(&self, alg: SigAlg) -> Option<&PrivateKey> {
        match alg {
            SigAlg::P256Sha256 => Some(&self.p256),
            SigAlg::Ed25519 => Some(&self.ed25519),
            SigAlg::Rs256 => None,
        }
    }
}

/// The TAM core: session rules over a [`Store`] and a [`Verifier`].
pub struct Tam {
    store: Arc<dyn Store>,
    verifier: Arc<dyn Verifier>,
    keys: TamKeys,
    config: TamConfig,
    provider: &'static dyn CryptoProvider,
    query_tokens: Option<QueryTokenKey>,
    recent_updates: RecentUpdates,
}

/// A token a device answered with: the TAM's record of it, and whether that record is in
/// the store (else it is a stateless QueryRequest token, spent by inserting it).
struct Presented {
    rec: TokenRecord,
    stored: bool,
}

/// What a QueryResponse leaves to commit with the step's outcome (the Update's progress
/// rows and token, or nothing): its token (and, with evidence, challenge) to spend and the
/// rows it changes (device, attestation, Agent key, cipher suite). A replayed answer is
/// refused by that commit, before anything is sent.
struct Pending<'a> {
    tok: &'a Presented,
    challenge: Option<Vec<u8>>,
    writes: Vec<StoreWrite>,
}

impl std::ops::Deref for Presented {
    type Target = TokenRecord;
    fn deref(&self) -> &TokenRecord {
        &self.rec
    }
}

impl std::fmt::Debug for Tam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tam")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

/// The unverified view of an incoming message: enough to find its session and key.
struct Peeked {
    message: TeepMessage,
    kid: Option<Vec<u8>>,
    kccs_key: Option<PublicKey>,
}

fn kccs_key(h: &coset::Header) -> Option<PublicKey> {
    let (_, v) = h.rest.iter().find(|(l, _)| *l == Label::Int(KCCS))?;
    let Value::Map(ccs) = v else { return None };
    let (_, cnf) = ccs.iter().find(|(k, _)| *k == Value::Integer(8.into()))?;
    let Value::Map(cnf) = cnf else { return None };
    let (_, key) = cnf.iter().find(|(k, _)| *k == Value::Integer(1.into()))?;
    let ck = coset::CoseKey::from_cbor_value(key.clone()).ok()?;
    otrp_cose::public_from_cose_key(&ck).ok()
}

fn peek(body: &[u8]) -> Result<Peeked, TamError> {
    let bad = |e: String| TamError::Malformed(e);
    let (payload, kid, kccs) = match otrp_cose::peek(body).map_err(|e| bad(e.to_string()))? {
        otrp_cose::CoseMessage::Sign1(m) => {
            let kid = [&m.protected.header.key_id, &m.unprotected.key_id]
                .into_iter()
                .find(|k| !k.is_empty())
                .cloned();
            let kccs = kccs_key(&m.unprotected).or_else(|| kccs_key(&m.protected.header));
            (m.payload, kid, kccs)
        }
        otrp_cose::CoseMessage::Sign(m) => {
            let kid = m.signatures.iter().find_map(|s| {
                [&s.protected.header.key_id, &s.unprotected.key_id]
                    .into_iter()
                    .find(|k| !k.is_empty())
                    .cloned()
            });
            (m.payload, kid, None)
        }
        _ => return Err(bad("neither COSE_Sign1 nor COSE_Sign".into())),
    };
    let payload = payload.ok_or_else(|| bad("detached payload".into()))?;
    let message = TeepMessage::decode(&payload).map_err(|e| bad(e.to_string()))?;
    Ok(Peeked {
        message,
        kid,
        kccs_key: kccs,
    })
}

fn msg_name(m: &TeepMessage) -> &'static str {
    match m {
        TeepMessage::QueryRequest(_) => "QueryRequest",
        TeepMessage::QueryResponse(_) => "QueryResponse",
        TeepMessage::Update(_) => "Update",
        TeepMessage::Success(_) => "Success",
        TeepMessage::Error(_) => "Error",
    }
}

fn token_of(m: &TeepMessage) -> Option<&[u8]> {
    match m {
        TeepMessage::QueryRequest(x) => x.token.as_deref(),
        TeepMessage::QueryResponse(x) => x.token.as_deref(),
        TeepMessage::Update(x) => x.token.as_deref(),
        TeepMessage::Success(x) => x.token.as_deref(),
        TeepMessage::Error(x) => x.token.as_deref(),
    }
}

fn refusal(r: ConsumeRefusal) -> TamError {
    match r {
        ConsumeRefusal::Unknown => TamError::TokenUnknown,
        ConsumeRefusal::Replayed => TamError::TokenReplayed,
        ConsumeRefusal::Expired => TamError::TokenExpired,
    }
}

fn consume_failure(f: ConsumeFailure) -> TamError {
    match f {
        ConsumeFailure::Token(r) => refusal(r),
        ConsumeFailure::Challenge(r) => TamError::Challenge(r),
    }
}

/// Checks that every SUIT report carries `token` as its nonce (ED §4.3, §4.5).
fn check_reports(reports: &Option<Vec<Vec<u8>>>, token: &[u8]) -> Result<(), TamError> {
    for (index, r) in reports.iter().flatten().enumerate() {
        let report = otrp_suit::SuitReport::from_cbor(r)
            .map_err(|e| TamError::Malformed(format!("suit-reports[{index}]: {e}")))?;
        if report.nonce.as_deref() != Some(token) {
            return Err(TamError::ReportNonce { index });
        }
    }
    Ok(())
}

/// Stable pseudo-random bucket 0..100 of a device in a deployment (staged rollout).
fn bucket(provider: &dyn CryptoProvider, deployment_id: i64, device_id: &str) -> u8 {
    let mut input = deployment_id.to_be_bytes().to_vec();
    input.extend_from_slice(device_id.as_bytes());
    let h = provider.sha256(&input);
    let v = u16::from_be_bytes([h[0], h[1]]);
    (v % 100) as u8
}

impl Tam {
    /// A TAM core over `store`, appraising evidence with `verifier`.
    pub fn new(
        store: Arc<dyn Store>,
        verifier: Arc<dyn Verifier>,
        keys: TamKeys,
        config: TamConfig,
        provider: &'static dyn CryptoProvider,
    ) -> Self {
        let query_tokens = if config.stateless_query_tokens {
            QueryTokenKey::derive(&keys, provider)
        } else {
            None
        };
        Tam {
            store,
            verifier,
            keys,
            config,
            provider,
            query_tokens,
            recent_updates: RecentUpdates::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Processes one HTTP request body: empty opens a session (QueryRequest), otherwise a
    /// TEEP message from an Agent. `device_hint` is the device id when the transport knows
    /// it (a client certificate, a previous session); it only chooses the cipher suite and
    /// whether attestation can be reused, identity always comes from signatures.
    pub async fn process<R: CryptoRngCore + Send>(
        &self,
        device_hint: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        self.process_inner(None, device_hint, body, now, rng).await
    }

    /// [`Self::process`] for a message that arrived over `transport`: the same rules,
    /// and an Update to this session follows [`CompactPolicy::profile`] for that
    /// transport (e.g. compact Updates for devices reaching the TAM over CoAP).
    pub async fn process_over<R: CryptoRngCore + Send>(
        &self,
        transport: Transport,
        device_hint: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        self.process_inner(Some(transport), device_hint, body, now, rng)
            .await
    }

    async fn process_inner<R: CryptoRngCore + Send>(
        &self,
        transport: Option<Transport>,
        device_hint: Option<&str>,
        body: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        if body.is_empty() {
            return self.open_session(device_hint, now, rng).await;
        }
        let peeked = peek(body)?;
        let token = token_of(&peeked.message).ok_or(TamError::MissingToken)?;
        let (tok, keys, remembered) = match self.stateless_token(token, now)? {
            Some(rec) => (Presented { rec, stored: false }, Vec::new(), false),
            None => match self.recent_updates.take(token) {
                Some((rec, key)) => (Presented { rec, stored: true }, vec![key], true),
                None => {
                    let (tok, keys) = self.stored_token(token).await?;
                    (tok, keys, false)
                }
            },
        };
        check_live(&tok, now)?;
        match (tok.kind, &peeked.message) {
            (TokenKind::Query, TeepMessage::QueryResponse(qr)) => {
                self.query_response(&tok, qr, &peeked, body, transport, now, rng)
                    .await
            }
            (TokenKind::Update, TeepMessage::Success(s)) => {
                let tok = self
                    .verify_answer(tok, keys, remembered, &peeked, body, now)
                    .await?;
                check_reports(&s.suit_reports, &tok.token)?;
                self.consume_recording(&tok, ProgressState::Done, "success", now)
                    .await?;
                Ok(Outcome::Done)
            }
            (_, TeepMessage::Error(e)) => {
                let tok = self
                    .verify_answer(tok, keys, remembered, &peeked, body, now)
                    .await?;
                let detail = format!(
                    "err-code {}{}",
                    e.err_code.to_u64(),
                    e.err_msg
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                self.consume_recording(&tok, ProgressState::Failed, &detail, now)
                    .await?;
                Ok(Outcome::Done)
            }
            (kind, m) => Err(TamError::UnexpectedMessage {
                expected: match kind {
                    TokenKind::Query => "QueryRequest",
                    TokenKind::Update => "Update",
                },
                got: msg_name(m),
            }),
        }
    }

    /// The stored record of `token` and the Agent keys of the device it names: one read.
    async fn stored_token(
        &self,
        token: &[u8],
    ) -> Result<(Presented, Vec<AgentKeyRecord>), TamError> {
        let (rec, keys) = self
            .store
            .token_with_keys(token)
            .await?
            .ok_or(TamError::TokenUnknown)?;
        Ok((Presented { rec, stored: true }, keys))
    }

    /// Verifies a device's Success or Error with the keys of its token's device. When
    /// the token and key came from [`RecentUpdates`] (`remembered`) and the answer does
    /// not verify with that key, both are read from the store, which holds all of the
    /// device's keys, and the answer is checked again: the cache never refuses what the
    /// store would accept.
    async fn verify_answer(
        &self,
        tok: Presented,
        keys: Vec<AgentKeyRecord>,
        remembered: bool,
        peeked: &Peeked,
        body: &[u8],
        now: u64,
    ) -> Result<Presented, TamError> {
        match self.verify_known(&tok, keys, peeked, body).await {
            Ok(_) => Ok(tok),
            Err(_) if remembered => {
                let (tok, keys) = self.stored_token(&tok.token).await?;
                check_live(&tok, now)?;
                self.verify_known(&tok, keys, peeked, body).await?;
                Ok(tok)
            }
            Err(e) => Err(e),
        }
    }

    /// Spends `tok` (with the challenge of a stored QueryRequest token) and applies
    /// `writes`, in one transaction. A stored token is consumed in the store; a stateless
    /// one is inserted as spent, so a second answer with it finds the row and is refused.
    async fn spend(
        &self,
        tok: &Presented,
        challenge: Option<&[u8]>,
        now: u64,
        writes: &[StoreWrite],
    ) -> Result<(), TamError> {
        if !tok.stored {
            // A stateless token's challenge is derived from it: spent with it.
            let mut all = Vec::with_capacity(writes.len() + 1);
            all.push(StoreWrite::InsertToken(TokenRecord {
                consumed_at: Some(now),
                ..tok.rec.clone()
            }));
            all.extend_from_slice(writes);
            return match self.store.apply(&all).await {
                Err(StoreError::Exists { what: "token", .. }) => Err(TamError::TokenReplayed),
                r => Ok(r?),
            };
        }
        if challenge.is_none() && writes.is_empty() {
            return self
                .store
                .consume_token(&tok.token, now)
                .await?
                .map(|_| ())
                .map_err(refusal);
        }
        self.store
            .consume_and_apply(&tok.token, challenge, now, writes)
            .await?
            .map(|_| ())
            .map_err(consume_failure)
    }

    /// The record of a stateless QueryRequest token this TAM issued (`None`: not one,
    /// look it up in the store). An expiry further away than a token's lifetime was not
    /// set by this TAM.
    fn stateless_token(&self, token: &[u8], now: u64) -> Result<Option<TokenRecord>, TamError> {
        let Some(key) = &self.query_tokens else {
            return Ok(None);
        };
        let Some(o) = key.open(token) else {
            return Ok(None);
        };
        if o.expires_at > now.saturating_add(self.config.token_ttl) {
            return Err(TamError::TokenUnknown);
        }
        let data_items = u64::from(o.data_items);
        Ok(Some(TokenRecord {
            token: token.to_vec(),
            kind: TokenKind::Query,
            device_id: None,
            challenge: DataItemRequested(data_items)
                .contains(DataItemRequested::ATTESTATION)
                .then(|| key.challenge(token)),
            data_items,
            sent: Vec::new(),
            created_at: o.expires_at.saturating_sub(self.config.token_ttl),
            expires_at: o.expires_at,
            consumed_at: None,
        }))
    }

    /// Verifies a message from a device whose Agent key is already bound; `records` are
    /// the Agent keys of the token's device (read with the token).
    async fn verify_known(
        &self,
        tok: &Presented,
        mut records: Vec<AgentKeyRecord>,
        peeked: &Peeked,
        body: &[u8],
    ) -> Result<(String, Verified), TamError> {
        if records.is_empty() {
            if let Some(kid) = &peeked.kid {
                records.extend(self.store.agent_key(kid).await?);
            }
        }
        if let (Some(d), true) = (&tok.device_id, records.is_empty()) {
            return Err(TamError::UnknownAgentKey(format!("(device {d})")));
        }
        let mut keys = Vec::with_capacity(records.len());
        for r in &records {
            keys.push(self.decode_key(&r.cose_key)?);
        }
        if keys.is_empty() {
            return Err(TamError::UnknownAgentKey(
                peeked.kid.as_deref().map(hexs).unwrap_or_default(),
            ));
        }
        let v = signed::verify(self.provider, body, &keys)
            .map_err(|e| TamError::BadSignature(e.to_string()))?;
        let device = records
            .get(v.key_index)
            .map(|r| r.device_id.clone())
            .unwrap_or_default();
        Ok((device, v))
    }

    fn decode_key(&self, cose_key: &[u8]) -> Result<PublicKey, TamError> {
        let ck = otrp_cose::cose_key_from_slice(cose_key)
            .map_err(|e| TamError::Malformed(format!("stored Agent key: {e}")))?;
        otrp_cose::public_from_cose_key(&ck)
            .map_err(|e| TamError::Malformed(format!("stored Agent key: {e}")))
    }

    async fn open_session<R: CryptoRngCore + Send>(
        &self,
        device_hint: Option<&str>,
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        let device = match device_hint {
            Some(d) => self.store.device(d).await?,
            None => None,
        };
        let fresh = match &device {
            Some(d) if !d.revoked => self
                .store
                .attestation(&d.id)
                .await?
                .is_some_and(|a| a.expires_at > now && a.status == ArStatus::Affirming),
            _ => false,
        };
        let suite = device.as_ref().and_then(|d| d.suite_alg).and_then(|alg| {
            let sig = SigAlg::from_cose(alg)?;
            Some(TeepCipherSuite::for_alg(sig, signed::alg_generation(alg)))
        });
        self.query_request(device.map(|d| d.id), suite, !fresh, now, rng)
            .await
    }

    async fn query_request<R: CryptoRngCore + Send>(
        &self,
        device_id: Option<String>,
        suite: Option<TeepCipherSuite>,
        attest: bool,
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        let mut data = DataItemRequested::TRUSTED_COMPONENTS.bits();
        if attest {
            data |= DataItemRequested::ATTESTATION.bits();
        }
        let expires_at = now.saturating_add(self.config.token_ttl);
        // Stateless (nothing written) unless tokens are configured to be stored.
        let stateless = self
            .query_tokens
            .as_ref()
            .zip(u8::try_from(data).ok())
            .map(|(k, d)| (k, k.issue(expires_at, d, rng)));
        let (token, challenge) = match &stateless {
            Some((k, t)) => (t.to_vec(), attest.then(|| k.challenge(t))),
            None => {
                let mut token = vec![0u8; 16];
                rng.fill_bytes(&mut token);
                let challenge = attest.then(|| {
                    let mut c = vec![0u8; 32];
                    rng.fill_bytes(&mut c);
                    c
                });
                (token, challenge)
            }
        };
        let suites = match &suite {
            Some(s) => vec![s.clone()],
            None => vec![
                TeepCipherSuite::for_alg(SigAlg::P256Sha256, self.config.alg_gen),
                TeepCipherSuite::for_alg(SigAlg::Ed25519, self.config.alg_gen),
            ],
        };
        let mut qr = QueryRequest::new(
            suites,
            self.config.suit_profiles.clone(),
            DataItemRequested(data),
        )
        .with_token(token.clone())
        .with_versions(self.config.versions.clone());
        if let Some(c) = &challenge {
            qr = qr.with_challenge(c.clone());
        }
        let bytes = match &suite {
            Some(s) => {
                let (alg, _) = s
                    .signing()
                    .ok_or_else(|| TamError::Signing(format!("suite {s:?}")))?;
                let key = self
                    .keys
                    .for_alg(alg)
                    .ok_or_else(|| TamError::Signing(format!("no key for {alg:?}")))?;
                signed::sign1_with_suite(self.provider, key, &TeepMessage::QueryRequest(qr), s)
            }
            None => signed::sign_query_request(
                self.provider,
                &[&self.keys.p256, &self.keys.ed25519],
                &qr,
            ),
        }
        .map_err(|e| TamError::Signing(e.to_string()))?;
        if stateless.is_some() {
            return Ok(Outcome::Reply(bytes));
        }
        // The token and its challenge: one transaction.
        let mut writes = vec![StoreWrite::InsertToken(TokenRecord {
            token: token.clone(),
            kind: TokenKind::Query,
            device_id,
            challenge: challenge.clone(),
            data_items: data,
            sent: Vec::new(),
            created_at: now,
            expires_at,
            consumed_at: None,
        })];
        if let Some(c) = challenge {
            writes.push(StoreWrite::InsertChallenge(ChallengeRecord {
                challenge: c,
                token,
                created_at: now,
                expires_at,
                consumed_at: None,
            }));
        }
        self.store.apply(&writes).await?;
        Ok(Outcome::Reply(bytes))
    }

    #[allow(clippy::too_many_arguments)]
    async fn query_response<R: CryptoRngCore + Send>(
        &self,
        tok: &Presented,
        qr: &QueryResponse,
        peeked: &Peeked,
        body: &[u8],
        transport: Option<Transport>,
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        let requested = DataItemRequested(tok.data_items);
        // The device, the verified message, the suite the store already holds for it, and
        // what is still to be committed with the outcome.
        let (mut device, verified, suite_stored, mut pending, agent_key, plans) = match &qr
            .attestation_payload
        {
            Some(evidence) => {
                let challenge = tok
                    .challenge
                    .clone()
                    .ok_or(TamError::Attestation(AttestationError::NonceMismatch))?;
                let ar = self.verifier.verify(evidence, &challenge, now)?;
                let device_id = hexs(&ar.ueid);
                if let Some(kid) = &peeked.kid {
                    if kid.as_slice() != ar.agent_key_kid.as_slice() {
                        return Err(AttestationError::CnfMismatch {
                            signer: hexs(kid),
                            bound: hexs(&ar.agent_key_kid),
                        }
                        .into());
                    }
                }
                let key = match (&ar.agent_key, &peeked.kccs_key) {
                    (Some(k), _) | (None, Some(k)) => k.clone(),
                    (None, None) => {
                        let rec = self
                            .store
                            .agent_key(&ar.agent_key_kid)
                            .await?
                            .filter(|r| r.device_id == device_id)
                            .ok_or_else(|| TamError::UnknownAgentKey(hexs(&ar.agent_key_kid)))?;
                        self.decode_key(&rec.cose_key)?
                    }
                };
                let thumb = cose_key_thumbprint(&key, self.provider);
                if thumb != ar.agent_key_kid {
                    return Err(AttestationError::CnfMismatch {
                        signer: hexs(&thumb),
                        bound: hexs(&ar.agent_key_kid),
                    }
                    .into());
                }
                let v = signed::verify(self.provider, body, std::slice::from_ref(&key))
                    .map_err(|e| TamError::BadSignature(e.to_string()))?;
                // The device's record and the deployments that may target it as a device
                // of the model its evidence names: one read.
                let (existing, plans) = self.store.device_and_plans(&device_id, &ar.model).await?;
                if existing.as_ref().is_some_and(|d| d.revoked) {
                    // One-time values are spent even when the device is refused.
                    self.spend(tok, Some(&challenge), now, &[]).await?;
                    return Err(TamError::DeviceRevoked(device_id));
                }
                let mut dev = existing.unwrap_or(DeviceRecord {
                    id: device_id.clone(),
                    ueid: ar.ueid.clone(),
                    model: ar.model.clone(),
                    hwversion: ar.tee_version.clone(),
                    tags: Vec::new(),
                    suite_alg: None,
                    revoked: false,
                    created_at: now,
                });
                dev.model = ar.model.clone();
                dev.hwversion = ar.tee_version.clone();
                // The suite is recorded with the device when the version will be accepted
                // below (as the separate update after the version check did).
                if self
                    .config
                    .versions
                    .contains(&qr.selected_version.unwrap_or(0))
                {
                    if let Some(alg) = v.suite.sign1_alg() {
                        dev.suite_alg = Some(alg);
                    }
                }
                let cose_key = otrp_cose::cose_key_from_public(&key)
                    .to_vec()
                    .map_err(|e| TamError::Malformed(format!("Agent key: {e}")))?;
                let agent_key = AgentKeyRecord {
                    kid: ar.agent_key_kid.to_vec(),
                    device_id: device_id.clone(),
                    cose_key,
                    bound_at: now,
                };
                let suite_stored = dev.suite_alg;
                // One-time: the token, then the challenge (atomic across replicas), and
                // what this step records, in one transaction. The device's tags are those
                // just read (none for a new device): only its row is written.
                let writes = [
                    StoreWrite::PutDeviceKeepTags(dev.clone()),
                    StoreWrite::PutAttestation(AttestationRecord {
                        device_id: device_id.clone(),
                        status: ar.status,
                        tee_version: ar.tee_version.clone(),
                        measurement: ar.measurement.clone(),
                        agent_kid: ar.agent_key_kid.to_vec(),
                        verified_at: now,
                        expires_at: ar.expires_at,
                    }),
                    StoreWrite::PutAgentKey(agent_key.clone()),
                ];
                // Spent and written with the Update (or the end of the session): one
                // transaction for the whole step.
                let pending = Pending {
                    tok,
                    challenge: Some(challenge),
                    writes: writes.into(),
                };
                (dev, v, suite_stored, Some(pending), agent_key, Some(plans))
            }
            None => {
                if requested.contains(DataItemRequested::ATTESTATION) {
                    return Err(TamError::MissingEvidence);
                }
                let kid = peeked.kid.clone().unwrap_or_default();
                // The key, its device's attestation and record: one read.
                let Some(KnownAgent {
                    key: rec,
                    attestation: ar,
                    device: dev,
                }) = self.store.known_agent(&kid).await?
                else {
                    // Unknown Agent: ask again, with attestation.
                    self.spend(tok, None, now, &[]).await?;
                    return self.query_request(None, None, true, now, rng).await;
                };
                let key = self.decode_key(&rec.cose_key)?;
                let v = signed::verify(self.provider, body, std::slice::from_ref(&key))
                    .map_err(|e| TamError::BadSignature(e.to_string()))?;
                let fresh = ar.is_some_and(|a| {
                    a.expires_at > now && a.status == ArStatus::Affirming && a.agent_kid == kid
                });
                if dev.as_ref().is_some_and(|d| d.revoked) {
                    self.spend(tok, None, now, &[]).await?;
                    return Err(TamError::DeviceRevoked(rec.device_id));
                }
                let Some(dev) = dev.filter(|_| fresh) else {
                    self.spend(tok, None, now, &[]).await?;
                    let suite = Some(v.suite.clone());
                    return self
                        .query_request(Some(rec.device_id), suite, true, now, rng)
                        .await;
                };
                let suite_stored = dev.suite_alg;
                // Spent with the step's outcome (one transaction, as with evidence).
                let pending = Pending {
                    tok,
                    challenge: None,
                    writes: Vec::new(),
                };
                (dev, v, suite_stored, Some(pending), rec, None)
            }
        };
        // Version and cipher-suite negotiation.
        let version = qr.selected_version.unwrap_or(0);
        if !self.config.versions.contains(&version) {
            return Err(TamError::UnsupportedVersion(version));
        }
        if let Some(alg) = verified.suite.sign1_alg() {
            if suite_stored != Some(alg) {
                let w = StoreWrite::SetDeviceSuite {
                    id: device.id.clone(),
                    alg,
                };
                match pending.as_mut() {
                    Some(p) => p.writes.push(w),
                    None => self.store.apply(&[w]).await?,
                }
                device.suite_alg = Some(alg);
            }
        }
        check_reports(&qr.suit_reports, &tok.token)?;
        let plans = match plans {
            Some(p) => p,
            None => self.store.deployment_plans(&device).await?,
        };
        self.plan_update(
            &device,
            &agent_key,
            plans,
            qr,
            &verified.suite,
            pending,
            transport,
            now,
            rng,
        )
        .await
    }

    /// Commits a step's outcome: spends the QueryResponse's token (and challenge) if
    /// `pending` holds it, with its writes and `more`, in one transaction.
    async fn commit(
        &self,
        pending: Option<Pending<'_>>,
        now: u64,
        more: Vec<StoreWrite>,
    ) -> Result<(), TamError> {
        match pending {
            Some(p) => {
                let mut writes = p.writes;
                writes.extend(more);
                self.spend(p.tok, p.challenge.as_deref(), now, &writes)
                    .await
            }
            None if more.is_empty() => Ok(()),
            None => Ok(self.store.apply(&more).await?),
        }
    }

    /// Decides what the device (as just read or written by this step) must change and
    /// sends it as an Update (or ends).
    #[allow(clippy::too_many_arguments)]
    async fn plan_update<R: CryptoRngCore + Send>(
        &self,
        device: &DeviceRecord,
        agent_key: &AgentKeyRecord,
        plans: Vec<DeploymentPlan>,
        qr: &QueryResponse,
        suite: &TeepCipherSuite,
        pending: Option<Pending<'_>>,
        transport: Option<Transport>,
        now: u64,
        rng: &mut R,
    ) -> Result<Outcome, TamError> {
        let device_id = device.id.as_str();
        // What the device reports.
        let installed: Vec<(Vec<u8>, Option<Vec<u8>>)> = qr
            .tc_list
            .iter()
            .flatten()
            .map(|c| {
                (
                    component_key(&c.component_id.0),
                    c.image_digest().map(<[u8]>::to_vec),
                )
            })
            .collect();
        let has = |k: &[u8]| installed.iter().find(|(c, _)| c == k);
        let mut manifests: Vec<Vec<u8>> = Vec::new();
        let mut unneeded: Vec<ComponentId> = Vec::new();
        let mut sent: Vec<SentItem> = Vec::new();
        let mut required: Vec<Vec<u8>> = Vec::new();

        // Active deployments for the device, with its progress and the latest ready
        // manifest of each (read with the device).
        for plan in plans {
            let DeploymentPlan {
                deployment: dep,
                progress: prior,
                latest_ready,
            } = plan;
            if dep.state != DeploymentState::Active || !dep.target.matches(device) {
                continue;
            }
            let included = match dep.rollout {
                Rollout::Full => true,
                Rollout::Percent(p) => bucket(self.provider, dep.id, device_id) < p,
                Rollout::Count(n) => {
                    let c = self.store.progress_counts(dep.id).await?;
                    prior.is_some() || c.sent + c.done + c.failed < n
                }
            };
            if !included {
                continue;
            }
            match dep.action {
                DeploymentAction::Install => {
                    let Some(m) = latest_ready else {
                        continue;
                    };
                    required.push(dep.component.clone());
                    let up_to_date = match has(&dep.component) {
                        Some((_, Some(d))) => m.image_digest.as_deref() == Some(d.as_slice()),
                        Some((_, None)) => prior
                            .as_ref()
                            .is_some_and(|p| p.state == ProgressState::Done && p.seq >= m.seq),
                        None => false,
                    };
                    if up_to_date {
                        if prior
                            .as_ref()
                            .is_none_or(|p| p.state != ProgressState::Done)
                        {
                            self.store
                                .put_progress(&ProgressRecord {
                                    deployment_id: dep.id,
                                    device_id: device_id.into(),
                                    component: dep.component.clone(),
                                    seq: m.seq,
                                    state: ProgressState::Done,
                                    detail: "already installed".into(),
                                    updated_at: now,
                                })
                                .await?;
                        }
                        continue;
                    }
                    if sent.iter().any(|s| s.component == dep.component) {
                        continue;
                    }
                    // A delta against the reported image when the manifest offers one.
                    let reported = has(&dep.component).and_then(|(_, d)| d.as_deref());
                    let hint = prior.as_ref().map(|p| p.seq);
                    let (envelope, _) =
                        crate::delta::envelope_for(self.store.as_ref(), &m, reported, hint).await?;
                    manifests.push(envelope);
                    sent.push(SentItem {
                        component: dep.component.clone(),
                        seq: m.seq,
                        deployment_id: dep.id,
                        delete: false,
                    });
                }
                DeploymentAction::Remove => {
                    if has(&dep.component).is_some()
                        && !sent.iter().any(|s| s.component == dep.component)
                    {
                        if let Some(id) = crate::component_id_of(&dep.component) {
                            unneeded.push(ComponentId(id));
                            sent.push(SentItem {
                                component: dep.component.clone(),
                                seq: 0,
                                deployment_id: dep.id,
                                delete: true,
                            });
                        }
                    }
                }
            }
        }
        // Components the device asks for (RequestTA).
        for req in qr.requested_tc_list.iter().flatten() {
            let key = component_key(&req.component_id.0);
            if sent.iter().any(|s| s.component == key) {
                continue;
            }
            let Some(m) = self.store.latest_manifest(&key, true).await? else {
                continue;
            };
            if m.seq < req.tc_manifest_sequence_number.unwrap_or(0) {
                continue;
            }
            manifests.push(m.envelope.clone());
            sent.push(SentItem {
                component: key,
                seq: m.seq,
                deployment_id: 0,
                delete: false,
            });
        }
        // Components the device no longer needs (UnrequestTA), unless policy requires them.
        for id in qr.unneeded_manifest_list.iter().flatten() {
            let key = component_key(&id.0);
            if required.contains(&key) || sent.iter().any(|s| s.component == key) {
                continue;
            }
            unneeded.push(id.clone());
            sent.push(SentItem {
                component: key,
                seq: 0,
                deployment_id: 0,
                delete: true,
            });
        }
        if sent.is_empty() {
            self.commit(pending, now, Vec::new()).await?;
            return Ok(Outcome::Done);
        }
        let profile = self.config.compact.profile(&device.model, transport);
        let mut token = vec![0u8; profile.token_len()];
        rng.fill_bytes(&mut token);
        // An Update token is looked up in the store; one that also opened as a stateless
        // QueryRequest token (a 2^-40 chance for 16 random bytes) would be taken for one.
        while self
            .query_tokens
            .as_ref()
            .is_some_and(|k| k.open(&token).is_some())
        {
            rng.fill_bytes(&mut token);
        }
        let mut update = Update::new().with_token(token.clone());
        if !manifests.is_empty() {
            update = update.with_manifests(manifests);
        }
        if !unneeded.is_empty() {
            update = update.with_unneeded_manifest_list(unneeded);
        }
        let (alg, _) = suite
            .signing()
            .ok_or_else(|| TamError::Signing(format!("suite {suite:?}")))?;
        let key = self
            .keys
            .for_alg(alg)
            .ok_or_else(|| TamError::Signing(format!("no key for {alg:?}")))?;
        let bytes = signed::sign1_with_suite_profile(
            self.provider,
            key,
            &TeepMessage::Update(update),
            suite,
            profile,
        )
        .map_err(|e| TamError::Signing(e.to_string()))?;
        // The progress rows and the Update's token: one transaction.
        let mut writes: Vec<StoreWrite> = sent
            .iter()
            .map(|s| {
                StoreWrite::PutProgress(ProgressRecord {
                    deployment_id: s.deployment_id,
                    device_id: device_id.into(),
                    component: s.component.clone(),
                    seq: s.seq,
                    state: ProgressState::Sent,
                    detail: if s.delete {
                        "delete".into()
                    } else {
                        String::new()
                    },
                    updated_at: now,
                })
            })
            .collect();
        let record = TokenRecord {
            token,
            kind: TokenKind::Update,
            device_id: Some(device_id.into()),
            challenge: None,
            data_items: 0,
            sent,
            created_at: now,
            expires_at: now.saturating_add(self.config.token_ttl),
            consumed_at: None,
        };
        writes.push(StoreWrite::InsertToken(record.clone()));
        self.commit(pending, now, writes).await?;
        // Committed: the device's answer can be checked without reading it back.
        self.recent_updates.insert(record, agent_key.clone());
        Ok(Outcome::Reply(bytes))
    }

    /// Consumes the Update token and records the device's result for every item it
    /// carried, in one transaction (so a result is recorded exactly once).
    async fn consume_recording(
        &self,
        tok: &Presented,
        state: ProgressState,
        detail: &str,
        now: u64,
    ) -> Result<(), TamError> {
        let writes: Vec<StoreWrite> = match &tok.device_id {
            None => Vec::new(),
            Some(device_id) => tok
                .sent
                .iter()
                .map(|s| StoreWrite::PutProgress(progress_record(s, device_id, state, detail, now)))
                .collect(),
        };
        self.spend(tok, None, now, &writes).await
    }
}

/// Refuses a token already answered or expired.
fn check_live(tok: &TokenRecord, now: u64) -> Result<(), TamError> {
    if tok.consumed_at.is_some() {
        return Err(TamError::TokenReplayed);
    }
    if now >= tok.expires_at {
        return Err(TamError::TokenExpired);
    }
    Ok(())
}

/// The progress row of one item an Update carried (TEEP and OTrP sessions): a deletion's
/// `detail` is prefixed with `delete: `.
pub(crate) fn progress_record(
    item: &SentItem,
    device_id: &str,
    state: ProgressState,
    detail: &str,
    now: u64,
) -> ProgressRecord {
    ProgressRecord {
        deployment_id: item.deployment_id,
        device_id: device_id.into(),
        component: item.component.clone(),
        seq: item.seq,
        state,
        detail: if item.delete {
            format!("delete: {detail}")
        } else {
            detail.into()
        },
        updated_at: now,
    }
}
