//! Verifier reference values shared by every TAM replica through the store.
//!
//! * **Source of truth**: the store's `reference_values` table (one record per device
//!   model: accepted TEE measurements and hardware versions, or a tombstone when the OEM
//!   removed the model). The OEM edits it with the admin API
//!   (`/api/v1/reference-values`, `otrp oem reference-values`).
//! * **Config seeding**: at start, each `[[reference]]` of `tam.toml` is inserted only for
//!   a model the store has no record of (not even a tombstone). Once a model is in the
//!   store, **the store wins**: a replica whose `tam.toml` says otherwise logs a warning
//!   naming the model and follows the store. Existing `tam.toml` files keep working; an
//!   edit of `[[reference]]` for a model already in the store has no effect (use the API).
//! * **Cache**: the verifier is synchronous (it runs inside the TEEP core), so each
//!   replica keeps a copy in memory ([`ServerVerifier`]) and a background task reloads it
//!   from the store every `reference_refresh_secs` (default 2 s). A change made through a
//!   replica's API applies to that replica at once and to every other replica within that
//!   period, without restart. Until the first load after start (milliseconds), the
//!   replica appraises with its own `tam.toml` values.
//! * **Unlisted models, fleet-wide**: a record for the model [`WILDCARD_MODEL`] (`*`,
//!   set like any other: `PUT /api/v1/reference-values/*`) holds the reference values of
//!   every model that has no record of its own. A model the OEM removed (tombstone) stays
//!   refused. Being in the store, it is shared by every replica like the other records.
//! * `accept_unlisted_models` stays a per-replica setting of `tam.toml` (give every
//!   replica the same file, or use the `*` record instead): a model without reference
//!   values, or removed, is then accepted with any measurement (the TEE certificate chain
//!   still has to hold). It is not in the store because flipping an existing file's
//!   meaning (seeding a store record from it, after which the store would win over a
//!   later `false`) would silently keep accepting models a replica was told to refuse.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use otrp_store::{ReferenceValuesRecord, Store, StoreError};
use otrp_tam::{AttestationError, AttestationResult, EatVerifier, ReferenceValues, Verifier};

/// The model name whose record holds the reference values of every model without a record
/// of its own (removed models excepted).
pub const WILDCARD_MODEL: &str = "*";

/// Who a record seeded from a config file is attributed to.
pub const CONFIG_ACTOR: &str = "config";

/// The server's evidence verifier: [`EatVerifier`] over the TEE roots and a cached copy of
/// the store's reference values; with `accept_unlisted_models`, a model without reference
/// values is accepted with any measurement (its chain to the TEE root still has to hold).
pub struct ServerVerifier {
    inner: RwLock<EatVerifier>,
    accept_unlisted: bool,
    /// Models the OEM removed (tombstones): the [`WILDCARD_MODEL`] record does not cover them.
    removed: RwLock<HashSet<String>>,
    /// Bumped by every local change, so a reload read before it does not undo it.
    generation: AtomicU64,
}

impl std::fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("accept_unlisted", &self.accept_unlisted)
            .finish_non_exhaustive()
    }
}

fn poisoned() -> AttestationError {
    AttestationError::Malformed("verifier lock poisoned".into())
}

fn values_of(r: &ReferenceValuesRecord) -> ReferenceValues {
    ReferenceValues {
        measurements: r.measurements.clone(),
        hwversions: r.hwversions.clone(),
    }
}

impl ServerVerifier {
    /// Wraps `inner` (which holds the config file's reference values until the first load).
    pub fn new(inner: EatVerifier, accept_unlisted: bool) -> Self {
        ServerVerifier {
            inner: RwLock::new(inner),
            accept_unlisted,
            removed: RwLock::new(HashSet::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The counter of local changes (read it before reading the store for [`Self::replace`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Applies one record at once (a change made through this replica's API).
    pub fn apply(&self, r: &ReferenceValuesRecord) {
        match self.inner.write() {
            Ok(mut v) => {
                if let Ok(mut removed) = self.removed.write() {
                    if r.removed {
                        removed.insert(r.model.clone());
                    } else {
                        removed.remove(&r.model);
                    }
                }
                if r.removed {
                    v.remove_reference(&r.model);
                } else {
                    v.set_reference(r.model.clone(), values_of(r));
                }
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => tracing::error!("verifier lock poisoned: reference values not applied"),
        }
    }

    /// Replaces the cached values with `records` read from the store, unless a local change
    /// happened since `generation` was read (then the next reload brings both). Returns
    /// whether it replaced them.
    pub fn replace(&self, records: &[ReferenceValuesRecord], generation: u64) -> bool {
        let Ok(mut v) = self.inner.write() else {
            tracing::error!("verifier lock poisoned: reference values not reloaded");
            return false;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return false;
        }
        if let Ok(mut removed) = self.removed.write() {
            *removed = records
                .iter()
                .filter(|r| r.removed)
                .map(|r| r.model.clone())
                .collect();
        }
        v.replace_references(
            records
                .iter()
                .filter(|r| !r.removed)
                .map(|r| (r.model.clone(), values_of(r)))
                .collect::<HashMap<_, _>>(),
        );
        true
    }
}

impl ServerVerifier {
    /// The cached reference values of a model (None: unknown or removed).
    pub fn reference(&self, model: &str) -> Option<ReferenceValues> {
        self.inner.read().ok()?.reference(model).cloned()
    }
}

impl Verifier for ServerVerifier {
    fn verify(
        &self,
        evidence: &[u8],
        expected_nonce: &[u8],
        now: u64,
    ) -> Result<AttestationResult, AttestationError> {
        let first = match self.inner.read() {
            Ok(v) => v.verify(evidence, expected_nonce, now),
            Err(_) => return Err(poisoned()),
        };
        match first {
            Err(AttestationError::UnknownModel(model)) if self.accept_unlisted => {
                let mut w = self.inner.write().map_err(|_| poisoned())?;
                w.set_reference(model, ReferenceValues::default());
                w.verify(evidence, expected_nonce, now)
            }
            Err(AttestationError::UnknownModel(model)) => {
                let removed = self
                    .removed
                    .read()
                    .map_err(|_| poisoned())?
                    .contains(&model);
                let mut w = self.inner.write().map_err(|_| poisoned())?;
                if w.reference(&model).is_some() {
                    // Set through the API since the first attempt: appraise with it.
                    return w.verify(evidence, expected_nonce, now);
                }
                let wildcard = w.reference(WILDCARD_MODEL).cloned();
                match wildcard {
                    Some(values) if !removed && model != WILDCARD_MODEL => {
                        // Appraised with the wildcard's values, not cached under the model:
                        // a later change of `*` applies at once.
                        w.set_reference(model.clone(), values);
                        let r = w.verify(evidence, expected_nonce, now);
                        w.remove_reference(&model);
                        r
                    }
                    _ => Err(AttestationError::UnknownModel(model)),
                }
            }
            other => other,
        }
    }
}

/// The config file's reference values as store records (attributed to [`CONFIG_ACTOR`]).
pub fn config_records(refs: &[(String, ReferenceValues)], now: u64) -> Vec<ReferenceValuesRecord> {
    refs.iter()
        .map(|(model, v)| ReferenceValuesRecord {
            model: model.clone(),
            measurements: v.measurements.clone(),
            hwversions: v.hwversions.clone(),
            removed: false,
            updated_at: now,
            updated_by: CONFIG_ACTOR.into(),
        })
        .collect()
}

/// Seeds the store with the config file's records (models the store does not know yet);
/// logs every model where the store, which wins, differs from the config file.
pub async fn seed(store: &dyn Store, config: &[ReferenceValuesRecord]) -> Result<(), StoreError> {
    for r in config {
        if store.seed_reference_values(r).await? {
            tracing::info!(model = %r.model, "reference values seeded into the store from the config file");
            continue;
        }
        match store.reference_values(&r.model).await? {
            Some(s) if s.removed => tracing::warn!(
                model = %r.model, by = %s.updated_by,
                "the config file lists reference values for a model removed in the store; the store wins (model stays removed)"
            ),
            Some(s) if s.measurements != r.measurements || s.hwversions != r.hwversions => {
                tracing::warn!(
                    model = %r.model, by = %s.updated_by,
                    "the config file's reference values differ from the store's; the store wins"
                )
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reloads `verifier` from the store once; returns how many models it now knows.
pub async fn reload(store: &dyn Store, verifier: &ServerVerifier) -> Result<usize, StoreError> {
    let generation = verifier.generation();
    let records = store.all_reference_values().await?;
    verifier.replace(&records, generation);
    Ok(records.iter().filter(|r| !r.removed).count())
}

/// Starts the task that seeds the store from the config file, then reloads the verifier
/// every `period` until the verifier is dropped (the server state went away). Needs a
/// tokio runtime; without one, nothing is started and a warning says so (the replica then
/// sees changes made through its own API only).
pub fn spawn_refresher(
    store: Arc<dyn Store>,
    verifier: Weak<ServerVerifier>,
    config: Vec<ReferenceValuesRecord>,
    period: Duration,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: reference values are not reloaded from the store");
        return;
    };
    handle.spawn(async move {
        let mut seeded = false;
        let mut last_count = None;
        loop {
            let Some(v) = verifier.upgrade() else {
                return;
            };
            if !seeded {
                match seed(store.as_ref(), &config).await {
                    Ok(()) => seeded = true,
                    Err(e) => tracing::warn!(error = %e, "seeding reference values failed; retrying"),
                }
            }
            if seeded {
                match reload(store.as_ref(), &v).await {
                    Ok(n) => {
                        if last_count != Some(n) {
                            tracing::info!(models = n, "reference values loaded from the store");
                            last_count = Some(n);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reloading reference values failed; keeping the cached ones"),
                }
            }
            drop(v);
            tokio::time::sleep(period).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, m: u8, removed: bool) -> ReferenceValuesRecord {
        ReferenceValuesRecord {
            model: model.into(),
            measurements: vec![vec![m; 32]],
            hwversions: Vec::new(),
            removed,
            updated_at: 1,
            updated_by: "oem".into(),
        }
    }

    fn verifier() -> ServerVerifier {
        ServerVerifier::new(EatVerifier::new(otrp_crypto::default_provider(), 60), false)
    }

    #[test]
    fn a_reload_read_before_a_local_change_does_not_undo_it() {
        let v = verifier();
        let stale_gen = v.generation();
        let stale_snapshot = vec![rec("m", 1, false)];
        // A change through this replica's API lands between the read and the apply.
        v.apply(&rec("m", 2, false));
        assert!(!v.replace(&stale_snapshot, stale_gen));
        assert_eq!(
            v.reference("m").map(|r| r.measurements),
            Some(vec![vec![2; 32]])
        );
        // The next reload (read after the change) applies.
        let gen = v.generation();
        assert!(v.replace(&[rec("m", 2, false), rec("n", 3, false)], gen));
        assert!(v.reference("n").is_some());
    }

    #[test]
    fn tombstones_and_absent_models_are_unknown_after_a_reload() {
        let v = verifier();
        v.apply(&rec("m", 1, false));
        v.apply(&rec("gone", 1, false));
        v.apply(&rec("gone", 0, true));
        assert!(v.reference("gone").is_none());
        let gen = v.generation();
        assert!(v.replace(&[rec("n", 3, false), rec("m", 0, true)], gen));
        assert!(v.reference("m").is_none());
        assert!(v.reference("n").is_some());
    }

    #[test]
    fn config_records_are_attributed_to_the_config_file() {
        let refs = vec![(
            "door-lock".to_string(),
            ReferenceValues {
                measurements: vec![vec![0x5a; 32]],
                hwversions: vec!["1.0".into()],
            },
        )];
        let r = config_records(&refs, 7);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].updated_by, CONFIG_ACTOR);
        assert!(!r[0].removed);
        assert_eq!(r[0].hwversions, vec!["1.0".to_string()]);
    }
}
