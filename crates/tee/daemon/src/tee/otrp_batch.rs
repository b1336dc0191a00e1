//! The OTrP-profile batch command package in the TEE daemon (our extension,
//! docs/CONSTRAINED.md). The device's **model** is its provisioned batch (`otrp device
//! provision --batch MODEL`): its shared key is the key every `content` and TA key of the
//! model's packages is encrypted to, and the model name is the package id (`pkgid`).
//!
//! A package the Broker fetched from `GET /tam/otrp-batch/<model>` goes to
//! [`otrp_agent::otrp::OtrpAgent::handle_batch`] with that key. The agent applies every
//! command or none; the TEE-signed `OTrPBatchResult` it returns is **queued in the same
//! store commit** (state key [`OTRP_BATCH_RESULTS_KEY`], at most
//! [`MAX_QUEUED_RESULTS`]), so a crash can never leave a package applied without its
//! result, or a result for a package that was not applied. The Broker POSTs each queued
//! result to `POST /tam/otrp-batch/<model>/results` and acknowledges it
//! (`AckOtrpBatchResult`).
//!
//! A package whose `seq` is not above the one applied (a replay, or an older package) is
//! refused by the agent with the store unchanged, and its `fail` result is **not**
//! queued: it would otherwise overwrite, at the TAM, the `pass` this device reported for
//! that very package.

use otrp_agent::otrp::batch::BATCH_SEQ_PREFIX;
use otrp_agent::otrp::OtrpEvent;
use otrp_suit_processor::{ChangeSet, ComponentStore, Staged};
use serde::{Deserialize, Serialize};

use super::{Tee, TeeEvent};
use crate::TeeError;

/// State key of the queued OTrP batch results.
pub const OTRP_BATCH_RESULTS_KEY: &str = "otrp/batch-results";
/// Most results kept queued (the oldest are dropped first).
pub const MAX_QUEUED_RESULTS: usize = 16;

/// The device's OTrP batch state, as `OtrpBatchStatus` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OtrpBatchStatus {
    /// The device's model (its provisioned batch; None: provisioned without `--batch`).
    pub model: Option<String>,
    /// The `seq` of the last package of the model applied here.
    pub applied_seq: Option<u64>,
    /// Results waiting to be sent to the TAM.
    pub pending_results: u64,
}

/// What applying an OTrP batch package did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OtrpBatchApplied {
    /// `applied` (a `pass` result is queued), `failed` (a `fail` result is queued),
    /// `already-applied` / `rollback` (refused, store unchanged, nothing queued) or
    /// `not-batch` (not an `OTrPBatchPackage` at all).
    pub outcome: String,
    /// The package id, when readable.
    pub pkgid: Option<String>,
    /// The package's `seq`, when readable.
    pub seq: Option<u64>,
    /// Why (failures and refusals): the OTrP error code and detail.
    pub detail: String,
    /// What changed (`sd-created`, `installed`, `updated`, …).
    pub events: Vec<TeeEvent>,
}

impl OtrpBatchApplied {
    /// Whether the package is now applied here (just now, or before).
    pub fn is_applied(&self) -> bool {
        self.outcome == "applied" || self.outcome == "already-applied"
    }
}

/// A TEE-signed `OTrPBatchResult` waiting for the TAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOtrpBatchResult {
    /// Package id (the model).
    pub pkgid: String,
    /// The package's `seq`.
    pub seq: u64,
    /// `{"OTrPBatchResult": JWS}` (`POST /tam/otrp-batch/<pkgid>/results`).
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

fn encode_results(results: &[PendingOtrpBatchResult]) -> Result<Vec<u8>, TeeError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(results, &mut out)
        .map_err(|e| TeeError::Protocol(format!("encoding the OTrP batch results: {e}")))?;
    Ok(out)
}

fn decode_results(bytes: &[u8]) -> Vec<PendingOtrpBatchResult> {
    ciborium::de::from_reader(bytes).unwrap_or_default()
}

/// `pkgid` and `seq` of a package, read without verification (the agent verifies).
fn package_ids(package: &[u8]) -> Option<(String, u64)> {
    let jws = otrp_json::batch::decode_batch(package).ok()?;
    let payload = otrp_json::json::b64url_decode(jws.payload_b64(), "payload").ok()?;
    let tbs: otrp_json::batch::BatchTbs = otrp_json::json::from_slice(&payload).ok()?;
    Some((tbs.pkgid, tbs.seq))
}

fn seq_key(pkgid: &str) -> String {
    format!("{BATCH_SEQ_PREFIX}{}", hex::encode(pkgid.as_bytes()))
}

/// The OTrP agent's events as the daemon reports them.
pub(super) fn tee_events(events: Vec<OtrpEvent>) -> Vec<TeeEvent> {
    events
        .into_iter()
        .map(|e| {
            let (kind, detail) = match e {
                OtrpEvent::SdCreated { name } => ("sd-created", name),
                OtrpEvent::SdUpdated { name } => ("sd-updated", name),
                OtrpEvent::SdDeleted { name } => ("sd-deleted", name),
                OtrpEvent::AikCreated { spid } => ("aik-created", spid),
                OtrpEvent::AikDeleted { spid } => ("aik-deleted", spid),
                OtrpEvent::TaInstalled { sd, taid } => ("installed", format!("{sd}:{taid}")),
                OtrpEvent::TaUpdated { sd, taid } => ("updated", format!("{sd}:{taid}")),
                OtrpEvent::TaDeleted { sd, taid } => ("removed", format!("{sd}:{taid}")),
                OtrpEvent::Refused { code, detail } => {
                    ("refused", format!("{}: {detail}", code.as_str()))
                }
            };
            tracing::info!(kind, %detail, "OTrP agent event");
            TeeEvent {
                kind: kind.into(),
                detail,
            }
        })
        .collect()
}

impl Tee {
    /// The `seq` of the last OTrP batch package `pkgid` applied here.
    pub fn otrp_batch_seq(&self, pkgid: &str) -> Option<u64> {
        let bytes = self.agent.store().state(&seq_key(pkgid)).ok()??;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// The device's model, the last package of it applied, the queued results.
    pub fn otrp_batch_status(&self) -> OtrpBatchStatus {
        let model = self.identity.batch.as_ref().map(|b| b.name.clone());
        OtrpBatchStatus {
            applied_seq: model.as_deref().and_then(|m| self.otrp_batch_seq(m)),
            pending_results: self.otrp_batch_results().len() as u64,
            model,
        }
    }

    /// The results queued for the TAM, oldest first.
    pub fn otrp_batch_results(&self) -> Vec<PendingOtrpBatchResult> {
        self.agent
            .store()
            .state(OTRP_BATCH_RESULTS_KEY)
            .ok()
            .flatten()
            .map(|b| decode_results(&b))
            .unwrap_or_default()
    }

    /// Applies an OTrP batch package (bytes exactly as fetched) with the device's shared
    /// model key; queues its signed result in the same commit (see the module docs).
    pub fn apply_otrp_batch(
        &mut self,
        package: &[u8],
        now: u64,
    ) -> Result<OtrpBatchApplied, TeeError> {
        let key = self
            .identity
            .batch
            .as_ref()
            .map(|b| b.key.clone())
            .ok_or_else(|| {
                TeeError::Identity(
                    "this device has no model key (provision it with `otrp device provision --batch MODEL`)"
                        .into(),
                )
            })?;
        let mut r = OtrpBatchApplied::default();
        let Some((pkgid, seq)) = package_ids(package) else {
            r.outcome = "not-batch".into();
            r.detail = "not an OTrPBatchPackage".into();
            return Ok(r);
        };
        r.pkgid = Some(pkgid.clone());
        r.seq = Some(seq);
        let applied_before = self.otrp_batch_seq(&pkgid);
        if self.otrp.is_none() {
            self.otrp = Some(self.build_otrp()?);
        }
        let Some(otrp) = self.otrp.as_ref() else {
            return Err(TeeError::Identity("OTrP Agent unavailable".into()));
        };
        let mut rng = rand::rngs::OsRng;
        let mut held = Staged::new(self.agent.store());
        let out = otrp.handle_batch(&mut held, package, &key, now, &mut rng);
        let mut changes = held.changes;
        let refused = out.events.iter().find_map(|e| match e {
            OtrpEvent::Refused { code, detail } => Some(format!("{}: {detail}", code.as_str())),
            _ => None,
        });
        let stale = applied_before.filter(|a| seq <= *a);
        r.outcome = match (&refused, stale) {
            (None, _) => "applied",
            (Some(_), Some(a)) if a == seq => "already-applied",
            (Some(_), Some(_)) => "rollback",
            (Some(_), None) => "failed",
        }
        .into();
        r.detail = refused.unwrap_or_default();
        if stale.is_none() {
            if let Some(message) = out.send {
                let mut results = self.otrp_batch_results();
                results.retain(|q| !(q.pkgid == pkgid && q.seq == seq));
                results.push(PendingOtrpBatchResult {
                    pkgid: pkgid.clone(),
                    seq,
                    message,
                });
                let excess = results.len().saturating_sub(MAX_QUEUED_RESULTS);
                results.drain(..excess);
                changes.state.insert(
                    OTRP_BATCH_RESULTS_KEY.into(),
                    Some(encode_results(&results)?),
                );
            }
        }
        self.agent
            .store_mut()
            .commit(changes)
            .map_err(|e| TeeError::Protocol(format!("committing the OTrP batch package: {e}")))?;
        r.events = tee_events(out.events);
        tracing::info!(%pkgid, seq, outcome = %r.outcome, detail = %r.detail, "OTrP batch package");
        Ok(r)
    }

    /// Drops the queued result of (`pkgid`, `seq`) once the TAM has it.
    pub fn ack_otrp_batch_result(&mut self, pkgid: &str, seq: u64) -> Result<(), TeeError> {
        let mut results = self.otrp_batch_results();
        results.retain(|q| !(q.pkgid == pkgid && q.seq == seq));
        let mut changes = ChangeSet::default();
        changes.state.insert(
            OTRP_BATCH_RESULTS_KEY.into(),
            Some(encode_results(&results)?),
        );
        self.agent
            .store_mut()
            .commit(changes)
            .map_err(|e| TeeError::Protocol(format!("acknowledging the OTrP batch result: {e}")))
    }
}
