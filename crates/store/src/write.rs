//! Grouped writes: what one step of a TEEP exchange records, applied as one unit
//! ([`Store::apply`], [`Store::consume_and_apply`]) instead of one commit per row.
//!
//! [`SqlStore`](crate::SqlStore) runs a group in one transaction (one commit, one fsync
//! at most); the trait's default methods run the writes one by one, for stores that have
//! no transactions (not atomic, same end state when nothing fails).

use crate::model::*;
use crate::{Result, Store};

/// One write of a group. Each variant does what the [`Store`] method of the same name
/// does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// [`Store::put_device`] (tags included).
    PutDevice(DeviceRecord),
    /// The device row of [`Store::put_device`] only: the device's stored tags stay as
    /// they are and the record's `tags` are ignored (for a record read from the store and
    /// changed in other fields: one statement instead of rewriting every tag).
    PutDeviceKeepTags(DeviceRecord),
    /// [`Store::put_attestation`].
    PutAttestation(AttestationRecord),
    /// [`Store::put_agent_key`].
    PutAgentKey(AgentKeyRecord),
    /// [`Store::set_device_suite`] (fails with `NotFound` for an unknown device).
    SetDeviceSuite {
        /// Device id.
        id: String,
        /// COSE algorithm id.
        alg: i64,
    },
    /// [`Store::put_progress`].
    PutProgress(ProgressRecord),
    /// [`Store::insert_token`] (fails with `Exists` for a reused token).
    InsertToken(TokenRecord),
    /// [`Store::insert_challenge`] (fails with `Exists` for a reused challenge).
    InsertChallenge(ChallengeRecord),
}

/// Which one-time value [`Store::consume_and_apply`] could not consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFailure {
    /// The token (nothing was changed).
    Token(ConsumeRefusal),
    /// The challenge (the token stays consumed; the writes were not applied).
    Challenge(ConsumeRefusal),
}

/// Runs one write through the single-row [`Store`] methods (the default, non-atomic path).
pub(crate) async fn apply_one<S: Store + ?Sized>(store: &S, w: &StoreWrite) -> Result<()> {
    match w {
        StoreWrite::PutDevice(d) => store.put_device(d).await,
        StoreWrite::PutDeviceKeepTags(d) => {
            let tags = match store.device(&d.id).await? {
                Some(stored) => stored.tags,
                None => Vec::new(),
            };
            store.put_device(&DeviceRecord { tags, ..d.clone() }).await
        }
        StoreWrite::PutAttestation(a) => store.put_attestation(a).await,
        StoreWrite::PutAgentKey(k) => store.put_agent_key(k).await,
        StoreWrite::SetDeviceSuite { id, alg } => store.set_device_suite(id, *alg).await,
        StoreWrite::PutProgress(p) => store.put_progress(p).await,
        StoreWrite::InsertToken(t) => store.insert_token(t).await,
        StoreWrite::InsertChallenge(c) => store.insert_challenge(c).await,
    }
}
