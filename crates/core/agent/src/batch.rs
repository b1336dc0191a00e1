//! Batch mode on the device (DESIGN.md §3.2; the TAM side is `otrp-tam`'s `batch`).
//!
//! A batch package is a TAM-signed TEEP Update with **no token** and the option
//! [`BATCH_OPTION`] (`otrp-batch`, 70100) = `[batch-id, batch-sequence]`, identical for
//! every device of the batch. [`Agent::handle_batch`] accepts it only when
//!
//! 1. its COSE signature verifies with a trusted TAM key (the same keys as for sessions);
//! 2. it carries no token, and its `otrp-batch` option names this device's batch;
//! 3. its sequence number is above the last batch package this device applied
//!    (kept in the store under `agent/batch/<hex id>`); an equal one is "already applied",
//!    a lower one a rollback — both refused before any manifest is looked at;
//!
//! then it runs the ordinary Update processing (SUIT signature, Security Domain policy,
//! per-manifest anti-rollback) with the batch private key added to the KEKs for this one
//! package, so payloads encrypted to the batch key decrypt only here.
//!
//! **Data** (personalization for the whole batch: a lock's access list, a drone's no-fly
//! zones) is a component `[..TA segments, "perso"]` ([`otrp_suit::PERSO_SEGMENT`]) whose manifest
//! the package carries like a TA's. In a batch package it is installed only for a TA
//! that is installed already or installed by the same package (and not removed by it):
//! otherwise the whole package fails (SUIT report `component-unauthorised` for the data
//! manifest), nothing changes, the package is not marked applied, and an Error report is
//! queued. Its own SUIT sequence number must grow like any manifest's. The signed Success
//! or Error the Agent would have answered is **queued** in the store
//! (`agent/batch-reports`, at most [`MAX_QUEUED_REPORTS`]) for the shell to send
//! asynchronously (`POST /tam/batch/<id>/report`, or at the next session), then
//! acknowledged with [`Agent::ack_batch_report`].
//!
//! **Report keys.** A device provisioned with a [`ReportKey`] (its membership's `report`)
//! queues a COSE_Mac0 under that key instead of a signed report: `kid` = its UEID, the
//! package's batch id and sequence number as external_aad
//! ([`otrp_teep::signed::batch_report_aad`]). The TAM, holding the batch's report master,
//! checks it with one HMAC instead of a signature (docs/CONSTRAINED.md, "MAC'd reports").

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ciborium::value::Value;
use otrp_suit_processor::{ChangeSet, ComponentStore, DeviceKek, View};
use otrp_teep::{ErrCode, TeepMessage};

use crate::agent::{Agent, Event, Output};
use crate::attest::Attester;

/// TEEP Update option `otrp-batch` = `[batch-id: tstr, batch-sequence: uint]`.
pub const BATCH_OPTION: u64 = 70100;
/// State key of the queued asynchronous reports.
pub const BATCH_REPORTS_KEY: &str = "agent/batch-reports";
/// Most reports kept queued (the oldest are dropped first).
pub const MAX_QUEUED_REPORTS: usize = 16;

/// `a/b/c` (lossy UTF-8) for log and error messages.
pub(crate) fn display(id: &otrp_suit::ComponentId) -> String {
    id.segments()
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn seq_key(batch_id: &str) -> String {
    format!("agent/batch/{}", hex::encode(batch_id.as_bytes()))
}

/// This device's batch membership (from its provisioned identity).
#[derive(Clone)]
pub struct BatchMembership {
    /// Batch id.
    pub id: String,
    /// The batch's shared P-256 private key (ECDH-ES recipient of batch payloads).
    pub key: otrp_crypto::p256::SecretKey,
    /// This device's report key, when it was provisioned with one: its batch reports are
    /// then COSE_Mac0 under it rather than signed with the Agent key.
    pub report: Option<ReportKey>,
}

/// A device's batch report key ([`otrp_crypto::report_key`]): the OEM derived it from the
/// batch's report master secret and this device's id, and the TAM, holding the master,
/// derives it again from the id the report names.
///
/// A report under it is a tagged COSE_Mac0 (HMAC 256/256) of the Success or Error, `kid` =
/// `device_id`, external_aad = [`otrp_teep::signed::batch_report_aad`] of the package, so
/// that the TAM checks it with one HMAC instead of a signature. The trade-off: a MAC
/// proves the report to the TAM (and to whoever holds the master) but not to a third
/// party, as a signature would.
#[derive(Clone)]
pub struct ReportKey {
    /// The device id the key was derived for (its UEID): the report's `kid`.
    pub device_id: Vec<u8>,
    /// The 32-byte HMAC key.
    pub key: zeroize::Zeroizing<[u8; otrp_crypto::report_key::REPORT_KEY_LEN]>,
}

impl core::fmt::Debug for ReportKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReportKey")
            .field("device_id", &hex::encode(&self.device_id))
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for BatchMembership {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BatchMembership")
            .field("id", &self.id)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Why a batch package was refused before processing (nothing queued, nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRefusal {
    /// Not a TAM-signed TEEP Update from a trusted TAM.
    Untrusted(String),
    /// Not a batch package (no `otrp-batch` option, or it carries a token).
    NotBatch(&'static str),
    /// A package for another batch.
    OtherBatch {
        /// The batch it is for.
        id: String,
    },
    /// This package was applied already.
    AlreadyApplied {
        /// Its sequence number.
        sequence: u64,
    },
    /// An older package than the one applied (replay or rollback).
    Rollback {
        /// The package's sequence number.
        sequence: u64,
        /// The last applied one.
        applied: u64,
    },
    /// The store failed.
    Store(String),
}

/// What [`Agent::handle_batch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Installed; a Success report is queued.
    Applied {
        /// The package's sequence number.
        sequence: u64,
        /// What changed.
        events: Vec<Event>,
    },
    /// Processing failed, nothing changed; an Error report (with SUIT reports) is queued.
    Failed {
        /// The package's sequence number.
        sequence: u64,
        /// The TEEP error code.
        code: ErrCode,
        /// Why.
        detail: String,
    },
    /// A manifest needs a payload fetched: fetch `uri`, then call
    /// [`Agent::provide_batch_fetch`] with the same package.
    NeedFetch {
        /// The URI.
        uri: String,
    },
    /// Refused before processing.
    Refused(BatchRefusal),
}

/// A signed Success/Error waiting to be sent to the TAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedReport {
    /// Batch id.
    pub batch_id: String,
    /// Package sequence number.
    pub sequence: u64,
    /// The Agent-signed TEEP Success or Error.
    pub message: Vec<u8>,
}

fn encode_reports(reports: &[QueuedReport]) -> Option<Vec<u8>> {
    let v = Value::Array(
        reports
            .iter()
            .map(|r| {
                Value::Array(alloc::vec![
                    Value::Text(r.batch_id.clone()),
                    Value::Integer(r.sequence.into()),
                    Value::Bytes(r.message.clone()),
                ])
            })
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::ser::into_writer(&v, &mut out).ok()?;
    Some(out)
}

fn decode_reports(bytes: &[u8]) -> Vec<QueuedReport> {
    let Ok(Value::Array(items)) = ciborium::de::from_reader::<Value, _>(bytes) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::Array(f) => match f.as_slice() {
                [Value::Text(id), Value::Integer(seq), Value::Bytes(m)] => Some(QueuedReport {
                    batch_id: id.clone(),
                    sequence: u64::try_from(*seq).ok()?,
                    message: m.clone(),
                }),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The `otrp-batch` option of a decoded Update.
fn option_of(up: &otrp_teep::Update) -> Option<(String, u64)> {
    let (_, v) = up.extensions.iter().find(|(k, _)| *k == BATCH_OPTION)?;
    let Value::Array(items) = v else { return None };
    match items.as_slice() {
        [Value::Text(id), Value::Integer(seq)] => Some((id.clone(), u64::try_from(*seq).ok()?)),
        _ => None,
    }
}

impl<S: ComponentStore, A: Attester> Agent<S, A> {
    /// The sequence number of the last batch package of `batch_id` applied here.
    pub fn batch_sequence(&self, batch_id: &str) -> Option<u64> {
        let empty = ChangeSet::default();
        let bytes = View::new(self.store(), &empty)
            .state(&seq_key(batch_id))
            .ok()
            .flatten()?;
        let arr: [u8; 8] = bytes.as_slice().try_into().ok()?;
        Some(u64::from_be_bytes(arr))
    }

    /// The reports queued for the TAM, oldest first.
    pub fn batch_reports(&self) -> Vec<QueuedReport> {
        let empty = ChangeSet::default();
        View::new(self.store(), &empty)
            .state(BATCH_REPORTS_KEY)
            .ok()
            .flatten()
            .map(|b| decode_reports(&b))
            .unwrap_or_default()
    }

    /// Drops the queued report of (`batch_id`, `sequence`) once the TAM has it.
    pub fn ack_batch_report(&mut self, batch_id: &str, sequence: u64) -> Result<(), String> {
        let mut reports = self.batch_reports();
        reports.retain(|r| !(r.batch_id == batch_id && r.sequence == sequence));
        let mut changes = ChangeSet::default();
        let bytes = encode_reports(&reports).ok_or("report queue encoding")?;
        changes
            .state
            .insert(BATCH_REPORTS_KEY.to_string(), Some(bytes));
        self.store_mut().commit(changes).map_err(|e| e.to_string())
    }

    /// Checks a batch package (signature, batch id, token, sequence); returns its sequence.
    fn check_batch(&self, m: &BatchMembership, package: &[u8]) -> Result<u64, BatchRefusal> {
        let keys: Vec<_> = self.config().tams.iter().map(|t| t.key.clone()).collect();
        let v = otrp_teep::signed::verify(self.provider(), package, &keys)
            .map_err(|e| BatchRefusal::Untrusted(e.to_string()))?;
        let TeepMessage::Update(up) = &v.message else {
            return Err(BatchRefusal::NotBatch("not an Update"));
        };
        if up.token.is_some() {
            return Err(BatchRefusal::NotBatch("a batch package carries no token"));
        }
        let (id, sequence) = option_of(up).ok_or(BatchRefusal::NotBatch(
            "no otrp-batch option [batch-id, sequence]",
        ))?;
        if id != m.id {
            return Err(BatchRefusal::OtherBatch { id });
        }
        match self.batch_sequence(&m.id) {
            Some(applied) if sequence == applied => Err(BatchRefusal::AlreadyApplied { sequence }),
            Some(applied) if sequence < applied => {
                Err(BatchRefusal::Rollback { sequence, applied })
            }
            _ => Ok(sequence),
        }
    }

    /// Applies a batch package (see the module docs); `now` as for [`Agent::handle`].
    pub fn handle_batch(&mut self, m: &BatchMembership, package: &[u8], now: u64) -> BatchOutcome {
        let sequence = match self.check_batch(m, package) {
            Ok(s) => s,
            Err(r) => return BatchOutcome::Refused(r),
        };
        self.with_batch_kek(m, sequence, |agent| agent.handle(package, now))
            .finish(self, m, sequence)
    }

    /// Resumes a batch package after [`BatchOutcome::NeedFetch`].
    pub fn provide_batch_fetch(
        &mut self,
        m: &BatchMembership,
        package: &[u8],
        uri: &str,
        bytes: Vec<u8>,
        now: u64,
    ) -> BatchOutcome {
        let sequence = match self.check_batch(m, package) {
            Ok(s) => s,
            Err(r) => return BatchOutcome::Refused(r),
        };
        self.with_batch_kek(m, sequence, |agent| agent.provide_fetch(uri, bytes, now))
            .finish(self, m, sequence)
    }

    fn with_batch_kek(
        &mut self,
        m: &BatchMembership,
        sequence: u64,
        f: impl FnOnce(&mut Self) -> Output,
    ) -> Pending {
        self.config_mut()
            .processor
            .keks
            .push(DeviceKek::EcdhP256(m.key.clone()));
        self.set_data_needs_ta(true);
        self.set_report_mac(
            m.report
                .clone()
                .map(|r| (r, otrp_teep::signed::batch_report_aad(&m.id, sequence))),
        );
        let out = f(self);
        self.set_report_mac(None);
        self.set_data_needs_ta(false);
        self.config_mut().processor.keks.pop();
        Pending(out)
    }
}

/// The Output of one batch run, before its report is queued.
struct Pending(Output);

impl Pending {
    fn finish<S: ComponentStore, A: Attester>(
        self,
        agent: &mut Agent<S, A>,
        m: &BatchMembership,
        sequence: u64,
    ) -> BatchOutcome {
        let out = self.0;
        if let Some(uri) = out.events.iter().find_map(|e| match e {
            Event::NeedFetch { uri } => Some(uri.clone()),
            _ => None,
        }) {
            return BatchOutcome::NeedFetch { uri };
        }
        let refused = out.events.iter().find_map(|e| match e {
            Event::Refused { code, detail } => Some((*code, detail.clone())),
            _ => None,
        });
        let mut changes = ChangeSet::default();
        if refused.is_none() {
            changes
                .state
                .insert(seq_key(&m.id), Some(sequence.to_be_bytes().to_vec()));
        }
        if let Some(message) = out.send.clone() {
            let mut reports = agent.batch_reports();
            reports.retain(|r| !(r.batch_id == m.id && r.sequence == sequence));
            reports.push(QueuedReport {
                batch_id: m.id.clone(),
                sequence,
                message,
            });
            let excess = reports.len().saturating_sub(MAX_QUEUED_REPORTS);
            reports.drain(..excess);
            if let Some(b) = encode_reports(&reports) {
                changes.state.insert(BATCH_REPORTS_KEY.to_string(), Some(b));
            }
        }
        if let Err(e) = agent.store_mut().commit(changes) {
            return BatchOutcome::Refused(BatchRefusal::Store(e.to_string()));
        }
        match refused {
            None => BatchOutcome::Applied {
                sequence,
                events: out.events,
            },
            Some((code, detail)) => BatchOutcome::Failed {
                sequence,
                code,
                detail,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otrp_suit::ComponentId;

    #[test]
    fn data_components_display_as_paths() {
        let data = ComponentId::new([&b"drones"[..], b"geofence", b"perso"]);
        assert_eq!(display(&data), "drones/geofence/perso");
    }
}
