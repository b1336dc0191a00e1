//! Batch mode in the TEE daemon (DESIGN.md §3.2): the device's batch membership comes from
//! its provisioned identity (`otrp device provision --batch NAME`); a package the Broker
//! fetched from `GET /tam/batch/<id>` goes to [`otrp_agent::Agent::handle_batch`] with
//! that membership; the signed reports the Agent queued are handed to the Broker and
//! acknowledged once the TAM has them.

use otrp_agent::{BatchMembership, BatchOutcome, BatchRefusal, ReportKey};
use otrp_crypto::PrivateKey;
use serde::{Deserialize, Serialize};

use super::{Tee, TeeEvent};
use crate::TeeError;

/// The device's batch, as `BatchStatus` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The batch this device belongs to (None: provisioned without `--batch`).
    pub batch: Option<String>,
    /// The batch sequence number of the last package applied here.
    pub applied_seq: Option<u64>,
    /// Reports waiting to be sent to the TAM.
    pub pending_reports: u64,
}

/// What applying a batch package did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchApplied {
    /// `applied`, `failed` (a report is queued for both), `need-fetch`, or a refusal:
    /// `already-applied`, `rollback`, `other-batch`, `not-batch`, `untrusted`, `store`.
    pub outcome: String,
    /// The package's batch sequence number, when known.
    pub sequence: Option<u64>,
    /// Why (failures and refusals).
    pub detail: String,
    /// The URI to fetch before applying again (`need-fetch`).
    pub need_fetch: Option<String>,
    /// What changed (installed, removed, sd-created …).
    pub events: Vec<TeeEvent>,
}

impl BatchApplied {
    /// Whether the package is now applied here (just now, or before).
    pub fn is_applied(&self) -> bool {
        self.outcome == "applied" || self.outcome == "already-applied"
    }
}

/// A signed report waiting for the TAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBatchReport {
    /// Batch id.
    pub batch_id: String,
    /// Batch sequence number of the package it reports on.
    pub sequence: u64,
    /// The Agent's TEEP Success or Error (`POST /tam/batch/<id>/reports?seq=N`): signed
    /// with the Agent key, or a COSE_Mac0 under the device's report key.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

impl Tee {
    /// This device's batch membership (from its provisioned identity), if any.
    pub fn batch_membership(&self) -> Option<BatchMembership> {
        let b = self.identity.batch.as_ref()?;
        match &b.key {
            PrivateKey::P256(sk) => Some(BatchMembership {
                id: b.name.clone(),
                key: sk.clone(),
                report: b.report_key.as_ref().map(|k| ReportKey {
                    device_id: self.identity.ueid.clone(),
                    key: k.clone(),
                }),
            }),
            _ => None,
        }
    }

    /// The batch this device belongs to, the last package applied and the queued reports.
    pub fn batch_status(&self) -> BatchStatus {
        let batch = self.batch_membership().map(|m| m.id);
        BatchStatus {
            applied_seq: batch
                .as_deref()
                .and_then(|id| self.agent.batch_sequence(id)),
            pending_reports: self.agent.batch_reports().len() as u64,
            batch,
        }
    }

    /// Applies a batch package (bytes exactly as fetched). With `fetched`, resumes a
    /// package that asked for a URI (`need-fetch`) with that URI's bytes.
    pub fn apply_batch(
        &mut self,
        package: &[u8],
        fetched: Option<(String, Vec<u8>)>,
        now: u64,
    ) -> Result<BatchApplied, TeeError> {
        let m = self.batch_membership().ok_or_else(|| {
            TeeError::Identity(
                "this device belongs to no batch (provision it with `otrp device provision --batch NAME`)"
                    .into(),
            )
        })?;
        let outcome = match fetched {
            None => self.agent.handle_batch(&m, package, now),
            Some((uri, bytes)) => self
                .agent
                .provide_batch_fetch(&m, package, &uri, bytes, now),
        };
        let mut r = BatchApplied::default();
        match outcome {
            BatchOutcome::Applied { sequence, events } => {
                r.outcome = "applied".into();
                r.sequence = Some(sequence);
                r.events = self
                    .finish(otrp_agent::Output { send: None, events })
                    .events;
            }
            BatchOutcome::Failed {
                sequence,
                code,
                detail,
            } => {
                r.outcome = "failed".into();
                r.sequence = Some(sequence);
                r.detail = format!("{code:?}: {detail}");
            }
            BatchOutcome::NeedFetch { uri } => {
                r.outcome = "need-fetch".into();
                r.need_fetch = Some(uri);
            }
            BatchOutcome::Refused(why) => {
                let (kind, seq, detail) = match why {
                    BatchRefusal::AlreadyApplied { sequence } => {
                        ("already-applied", Some(sequence), String::new())
                    }
                    BatchRefusal::Rollback { sequence, applied } => (
                        "rollback",
                        Some(sequence),
                        format!("package {sequence} is older than the applied {applied}"),
                    ),
                    BatchRefusal::OtherBatch { id } => {
                        ("other-batch", None, format!("package for batch {id}"))
                    }
                    BatchRefusal::NotBatch(d) => ("not-batch", None, d.to_string()),
                    BatchRefusal::Untrusted(d) => ("untrusted", None, d),
                    BatchRefusal::Store(d) => ("store", None, d),
                };
                r.outcome = kind.into();
                r.sequence = seq;
                r.detail = detail;
            }
        }
        tracing::info!(batch = %m.id, outcome = %r.outcome, sequence = ?r.sequence, detail = %r.detail, "batch package");
        Ok(r)
    }

    /// The signed reports queued for the TAM, oldest first.
    pub fn batch_reports(&self) -> Vec<PendingBatchReport> {
        self.agent
            .batch_reports()
            .into_iter()
            .map(|q| PendingBatchReport {
                batch_id: q.batch_id,
                sequence: q.sequence,
                message: q.message,
            })
            .collect()
    }

    /// Drops the queued report of (`batch_id`, `sequence`) once the TAM has it.
    pub fn ack_batch_report(&mut self, batch_id: &str, sequence: u64) -> Result<(), TeeError> {
        self.agent
            .ack_batch_report(batch_id, sequence)
            .map_err(|e| TeeError::Protocol(format!("acknowledging the batch report: {e}")))
    }
}
