//! The storage seen by the processor: component images, per-manifest records, sequence
//! number high-water marks and opaque state entries, all changed through one atomic
//! [`ComponentStore::commit`] of a [`ChangeSet`].

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use ciborium::value::Value;
use otrp_suit::ComponentId;

/// A storage failure (the platform's error rendered as text, with the operation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {op}: {detail}")]
pub struct StoreError {
    /// The operation that failed (`"read image"`, `"commit"`, `"decode record"` …).
    pub op: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl StoreError {
    /// A store error for `op`.
    pub fn new(op: &'static str, detail: impl Into<String>) -> Self {
        StoreError {
            op,
            detail: detail.into(),
        }
    }
}

/// Who holds a reference on an installed manifest (trust-domains §5.6.5 reference count).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// The TAM installed it directly (root manifest of a TEEP Update).
    Tam,
    /// Another manifest depends on it (by its manifest component id).
    Manifest(ComponentId),
}

/// The anti-rollback high-water mark of one manifest component id; it survives the
/// manifest's uninstallation, so a deleted TA cannot be re-installed at an older version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqMark {
    /// Highest `suit-manifest-sequence-number` accepted.
    pub sequence_number: u64,
    /// Encoded `SUIT_Digest` of the manifest accepted at that number (re-applying the very
    /// same manifest is allowed, another one with the same number is not).
    pub digest: Vec<u8>,
}

/// What is known about one installed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// `suit-manifest-component-id` (or the manifest's first component id without one).
    pub manifest_id: ComponentId,
    /// `suit-manifest-sequence-number`.
    pub sequence_number: u64,
    /// Encoded `SUIT_Digest` of the bstr-wrapped manifest (the authentication digest).
    pub digest: Vec<u8>,
    /// The envelope as received (needed for suit-uninstall, invocation and the tc-list).
    pub envelope: Vec<u8>,
    /// Components this manifest installed.
    pub components: Vec<ComponentId>,
    /// Reference holders; the reference count is `holders.len()`.
    pub holders: Vec<Holder>,
    /// Manifest ids of the dependencies this manifest processed.
    pub dependencies: Vec<ComponentId>,
}

fn id_value(id: &ComponentId) -> Value {
    Value::Array(
        id.segments()
            .iter()
            .map(|s| Value::Bytes(s.clone()))
            .collect(),
    )
}

fn id_from(v: Value, what: &'static str) -> Result<ComponentId, StoreError> {
    match v {
        Value::Array(items) => {
            let mut segs = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Value::Bytes(b) => segs.push(b),
                    _ => return Err(StoreError::new("decode record", what)),
                }
            }
            Ok(ComponentId(segs))
        }
        _ => Err(StoreError::new("decode record", what)),
    }
}

fn ids_value(ids: &[ComponentId]) -> Value {
    Value::Array(ids.iter().map(id_value).collect())
}

fn ids_from(v: Value, what: &'static str) -> Result<Vec<ComponentId>, StoreError> {
    match v {
        Value::Array(items) => items.into_iter().map(|i| id_from(i, what)).collect(),
        _ => Err(StoreError::new("decode record", what)),
    }
}

impl ManifestRecord {
    /// The reference count (trust-domains §5.6.5).
    pub fn refcount(&self) -> usize {
        self.holders.len()
    }

    /// Encodes the record as CBOR `[id, seq, digest, envelope, [components], [holders],
    /// [dependencies]]` (a holder is `null` for the TAM or a component id), for stores
    /// that keep blobs.
    pub fn to_cbor(&self) -> Result<Vec<u8>, StoreError> {
        let holders = Value::Array(
            self.holders
                .iter()
                .map(|h| match h {
                    Holder::Tam => Value::Null,
                    Holder::Manifest(id) => id_value(id),
                })
                .collect(),
        );
        let v = Value::Array(alloc::vec![
            id_value(&self.manifest_id),
            Value::Integer(self.sequence_number.into()),
            Value::Bytes(self.digest.clone()),
            Value::Bytes(self.envelope.clone()),
            ids_value(&self.components),
            holders,
            ids_value(&self.dependencies),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out)
            .map_err(|e| StoreError::new("encode record", e.to_string()))?;
        Ok(out)
    }

    /// Decodes [`ManifestRecord::to_cbor`] output.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, StoreError> {
        let v: Value = ciborium::de::from_reader(bytes)
            .map_err(|e| StoreError::new("decode record", e.to_string()))?;
        let items = match v {
            Value::Array(a) if a.len() == 7 => a,
            _ => return Err(StoreError::new("decode record", "not a 7-element array")),
        };
        let mut it = items.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| StoreError::new("decode record", "missing element"))
        };
        let manifest_id = id_from(next()?, "manifest id")?;
        let sequence_number = match next()? {
            Value::Integer(i) => u64::try_from(i)
                .map_err(|_| StoreError::new("decode record", "sequence number out of range"))?,
            _ => return Err(StoreError::new("decode record", "sequence number")),
        };
        let digest = match next()? {
            Value::Bytes(b) => b,
            _ => return Err(StoreError::new("decode record", "digest")),
        };
        let envelope = match next()? {
            Value::Bytes(b) => b,
            _ => return Err(StoreError::new("decode record", "envelope")),
        };
        let components = ids_from(next()?, "components")?;
        let holders = match next()? {
            Value::Array(hs) => {
                let mut out = Vec::with_capacity(hs.len());
                for h in hs {
                    out.push(match h {
                        Value::Null => Holder::Tam,
                        other => Holder::Manifest(id_from(other, "holder")?),
                    });
                }
                out
            }
            _ => return Err(StoreError::new("decode record", "holders")),
        };
        let dependencies = ids_from(next()?, "dependencies")?;
        Ok(ManifestRecord {
            manifest_id,
            sequence_number,
            digest,
            envelope,
            components,
            holders,
            dependencies,
        })
    }
}

/// Every change of one operation, staged in memory and committed at once. `None` values
/// delete. Later stages overwrite earlier ones ([`ChangeSet::merge`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeSet {
    /// Component images written (`Some`) or removed (`None`).
    pub images: BTreeMap<ComponentId, Option<Vec<u8>>>,
    /// Manifest records written or removed, by manifest id.
    pub manifests: BTreeMap<ComponentId, Option<ManifestRecord>>,
    /// Sequence-number high-water marks (never removed).
    pub sequence_marks: BTreeMap<ComponentId, SeqMark>,
    /// Opaque state entries of the layer above (the Agent's SD registry, tokens …).
    pub state: BTreeMap<String, Option<Vec<u8>>>,
}

impl ChangeSet {
    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.manifests.is_empty()
            && self.sequence_marks.is_empty()
            && self.state.is_empty()
    }
    /// Applies `later` on top of `self`.
    pub fn merge(&mut self, later: ChangeSet) {
        self.images.extend(later.images);
        self.manifests.extend(later.manifests);
        self.sequence_marks.extend(later.sequence_marks);
        self.state.extend(later.state);
    }
}

/// The device's component store. Implementations must make [`ComponentStore::commit`]
/// atomic: after a crash either all of a change set is visible or none of it.
pub trait ComponentStore {
    /// The image of a component, if installed.
    fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The record of an installed manifest.
    fn manifest(&self, manifest_id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError>;
    /// The ids of all installed manifests.
    fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError>;
    /// The anti-rollback mark of a manifest id.
    fn sequence_mark(&self, manifest_id: &ComponentId) -> Result<Option<SeqMark>, StoreError>;
    /// An opaque state entry of the layer above.
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The keys of state entries starting with `prefix`.
    fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Applies every change atomically.
    fn commit(&mut self, changes: ChangeSet) -> Result<(), StoreError>;
}

/// A store in memory (tests, and a reference for platform implementations). `Clone` +
/// `PartialEq` make before/after snapshots easy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryStore {
    /// Component images.
    pub images: BTreeMap<ComponentId, Vec<u8>>,
    /// Manifest records.
    pub manifests: BTreeMap<ComponentId, ManifestRecord>,
    /// Sequence marks.
    pub sequence_marks: BTreeMap<ComponentId, SeqMark>,
    /// State entries.
    pub state: BTreeMap<String, Vec<u8>>,
    /// Number of successful commits.
    pub commits: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn apply<K: Ord, V>(map: &mut BTreeMap<K, V>, changes: BTreeMap<K, Option<V>>) {
    for (k, v) in changes {
        match v {
            Some(v) => {
                map.insert(k, v);
            }
            None => {
                map.remove(&k);
            }
        }
    }
}

impl ComponentStore for MemoryStore {
    fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.images.get(id).cloned())
    }
    fn manifest(&self, manifest_id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError> {
        Ok(self.manifests.get(manifest_id).cloned())
    }
    fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        Ok(self.manifests.keys().cloned().collect())
    }
    fn sequence_mark(&self, manifest_id: &ComponentId) -> Result<Option<SeqMark>, StoreError> {
        Ok(self.sequence_marks.get(manifest_id).cloned())
    }
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.get(key).cloned())
    }
    fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .state
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    fn commit(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        apply(&mut self.images, changes.images);
        apply(&mut self.manifests, changes.manifests);
        self.sequence_marks.extend(changes.sequence_marks);
        apply(&mut self.state, changes.state);
        self.commits += 1;
        Ok(())
    }
}

/// A store whose commits are held back: reads see `base` with the held changes on top,
/// and [`ComponentStore::commit`] merges into [`Staged::changes`] instead of writing. A
/// caller runs several steps against it and commits `changes` to `base` once, all or
/// nothing.
pub struct Staged<'a> {
    /// The real store, unchanged until the caller commits.
    pub base: &'a dyn ComponentStore,
    /// What the steps committed so far.
    pub changes: ChangeSet,
}

impl<'a> Staged<'a> {
    /// Nothing held yet.
    pub fn new(base: &'a dyn ComponentStore) -> Self {
        Staged {
            base,
            changes: ChangeSet::default(),
        }
    }
}

impl ComponentStore for Staged<'_> {
    fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError> {
        View::new(self.base, &self.changes).image(id)
    }
    fn manifest(&self, id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError> {
        View::new(self.base, &self.changes).manifest(id)
    }
    fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        View::new(self.base, &self.changes).manifest_ids()
    }
    fn sequence_mark(&self, id: &ComponentId) -> Result<Option<SeqMark>, StoreError> {
        View::new(self.base, &self.changes).sequence_mark(id)
    }
    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        View::new(self.base, &self.changes).state(key)
    }
    fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        View::new(self.base, &self.changes).state_keys(prefix)
    }
    fn commit(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        self.changes.merge(changes);
        Ok(())
    }
}

/// A read view of a store with staged changes on top (what the store will hold after
/// the change set commits).
pub struct View<'a> {
    store: &'a dyn ComponentStore,
    changes: &'a ChangeSet,
}

impl<'a> View<'a> {
    /// The store as it will be after `changes`.
    pub fn new(store: &'a dyn ComponentStore, changes: &'a ChangeSet) -> Self {
        View { store, changes }
    }
    /// See [`ComponentStore::image`].
    pub fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError> {
        match self.changes.images.get(id) {
            Some(v) => Ok(v.clone()),
            None => self.store.image(id),
        }
    }
    /// See [`ComponentStore::manifest`].
    pub fn manifest(&self, id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError> {
        match self.changes.manifests.get(id) {
            Some(v) => Ok(v.clone()),
            None => self.store.manifest(id),
        }
    }
    /// See [`ComponentStore::manifest_ids`].
    pub fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        let mut ids = self.store.manifest_ids()?;
        for (k, v) in &self.changes.manifests {
            let present = ids.iter().position(|i| i == k);
            match (v, present) {
                (Some(_), None) => ids.push(k.clone()),
                (None, Some(p)) => {
                    ids.remove(p);
                }
                _ => {}
            }
        }
        ids.sort();
        Ok(ids)
    }
    /// See [`ComponentStore::sequence_mark`].
    pub fn sequence_mark(&self, id: &ComponentId) -> Result<Option<SeqMark>, StoreError> {
        match self.changes.sequence_marks.get(id) {
            Some(v) => Ok(Some(v.clone())),
            None => self.store.sequence_mark(id),
        }
    }
    /// See [`ComponentStore::state`].
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.changes.state.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.state(key),
        }
    }
    /// See [`ComponentStore::state_keys`].
    pub fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.store.state_keys(prefix)?;
        for (k, v) in self.changes.state.range(String::from(prefix)..) {
            if !k.starts_with(prefix) {
                break;
            }
            let present = keys.iter().position(|i| i == k);
            match (v, present) {
                (Some(_), None) => keys.push(k.clone()),
                (None, Some(p)) => {
                    keys.remove(p);
                }
                _ => {}
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Renders a component id as text (`[54454550, ...]` hex segments joined by `/`), for
/// store keys and messages.
pub fn component_id_text(id: &ComponentId) -> String {
    let mut out = String::new();
    for (i, seg) in id.segments().iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let printable = !seg.is_empty() && seg.iter().all(|b| b.is_ascii_graphic() && *b != b'/');
        if printable {
            out.extend(seg.iter().map(|b| char::from(*b)));
        } else {
            out.push_str("h'");
            for b in seg {
                let _ = write!(out, "{b:02x}");
            }
            out.push('\'');
        }
    }
    out
}
