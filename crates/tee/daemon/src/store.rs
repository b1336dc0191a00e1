//! The Agent's [`ComponentStore`] on the platform's sealed, crash-safe object store.
//!
//! # Layout (platform user objects)
//!
//! | object | content |
//! |---|---|
//! | `agent/img/<hex(cbor(component id))>` | component image |
//! | `agent/man/<hex(cbor(manifest id))>` | [`ManifestRecord::to_cbor`] |
//! | `agent/seq/<hex(cbor(manifest id))>` | CBOR `[sequence number, SUIT_Digest]` |
//! | `agent/st/<key>` | opaque Agent state (SD registry, answered tokens …) |
//! | `ta/<ta id>/code`, key `ta/<ta id>` | the TA runtime's copy of a Wasm component |
//! | `ta/<ta id>/perso` | personalization data of a TA |
//!
//! # One commit, one platform transaction
//!
//! [`PlatformStore::commit`] writes every change of a [`ChangeSet`] **and** the TA
//! runtime's view of it (code, per-TA key, personalization data, removal of a TA's
//! storage) in a single [`Platform::transaction`]. The platform journals the whole set, so
//! after a crash at any point the device holds the old TA with its old manifest record and
//! sequence mark, or the new ones — never a mix.
//!
//! # The TEE OS component
//!
//! The store also reports the TEE OS itself, read-only: manifest and component `tee-os`
//! with [`crate::TEE_IMAGE`] as its image and sequence number 0. A device's software
//! includes its OS (RFC 9397 §2 "Trusted Component"; RFC 9711 `manifests`), and the
//! `tc-list` of a QueryResponse and the EAT `manifests` claim, both `[+ ...]` in their
//! CDDL, are never empty. A commit that touches `tee-os` is refused.
//!
//! # Which components are TAs
//!
//! A component whose image starts with the Wasm magic `\0asm` is a TA; its [`TaId`] is
//! [`ta_id_for`] of its component id. A component whose last segment is `perso` is the
//! personalization data of the TA named by the other segments (e.g. `[drones, geofence,
//! perso]` personalizes `[drones, geofence]`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use ciborium::value::Value;
use otrp_suit::ComponentId;
use otrp_suit_processor::{ChangeSet, ComponentStore, ManifestRecord, SeqMark, StoreError};
use otrp_ta_runtime::{TaId, TaRuntime};
use otrp_tee_platform::{Platform, PlatformError};

const IMG: &str = "agent/img/";
const MAN: &str = "agent/man/";
const SEQ: &str = "agent/seq/";
const ST: &str = "agent/st/";
const WASM_MAGIC: &[u8] = b"\0asm";
pub use otrp_suit::PERSO_SEGMENT;

/// The component and manifest id of the TEE OS.
pub fn os_component_id() -> ComponentId {
    ComponentId(vec![b"tee-os".to_vec()])
}

fn os_record() -> Result<ManifestRecord, StoreError> {
    use otrp_suit::CborItem;
    let digest = otrp_suit::Digest::sha256(crate::TEE_IMAGE)
        .to_cbor()
        .map_err(|e| StoreError::new("encode TEE OS digest", e.to_string()))?;
    Ok(ManifestRecord {
        manifest_id: os_component_id(),
        sequence_number: 0,
        digest,
        envelope: Vec::new(),
        components: vec![os_component_id()],
        holders: Vec::new(),
        dependencies: Vec::new(),
    })
}

fn id_cbor(id: &ComponentId) -> Result<Vec<u8>, StoreError> {
    let v = Value::Array(
        id.segments()
            .iter()
            .map(|s| Value::Bytes(s.clone()))
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::ser::into_writer(&v, &mut out)
        .map_err(|e| StoreError::new("encode component id", e.to_string()))?;
    Ok(out)
}

fn id_name(prefix: &str, id: &ComponentId) -> Result<String, StoreError> {
    Ok(format!("{prefix}{}", hex::encode(id_cbor(id)?)))
}

fn id_from_name(prefix: &str, name: &str) -> Result<ComponentId, StoreError> {
    let hexed = name
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::new("decode object name", name.to_string()))?;
    let bytes =
        hex::decode(hexed).map_err(|e| StoreError::new("decode object name", e.to_string()))?;
    match ciborium::de::from_reader::<Value, _>(bytes.as_slice()) {
        Ok(Value::Array(items)) => {
            let mut segs = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Value::Bytes(b) => segs.push(b),
                    _ => {
                        return Err(StoreError::new(
                            "decode object name",
                            format!("{name}: segment is not a byte string"),
                        ))
                    }
                }
            }
            Ok(ComponentId(segs))
        }
        _ => Err(StoreError::new(
            "decode object name",
            format!("{name}: not a component id"),
        )),
    }
}

fn seq_to_cbor(m: &SeqMark) -> Result<Vec<u8>, StoreError> {
    let v = Value::Array(vec![
        Value::Integer(m.sequence_number.into()),
        Value::Bytes(m.digest.clone()),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&v, &mut out)
        .map_err(|e| StoreError::new("encode sequence mark", e.to_string()))?;
    Ok(out)
}

fn seq_from_cbor(bytes: &[u8]) -> Result<SeqMark, StoreError> {
    let bad = |what: &str| StoreError::new("decode sequence mark", what.to_string());
    match ciborium::de::from_reader::<Value, _>(bytes) {
        Ok(Value::Array(items)) => match items.as_slice() {
            [Value::Integer(n), Value::Bytes(d)] => Ok(SeqMark {
                sequence_number: u64::try_from(*n).map_err(|_| bad("sequence number range"))?,
                digest: d.clone(),
            }),
            _ => Err(bad("expected [uint, bstr]")),
        },
        _ => Err(bad("not a CBOR array")),
    }
}

fn platform_err(op: &'static str) -> impl Fn(PlatformError) -> StoreError {
    move |e| StoreError::new(op, e.to_string())
}

/// A component id written as text: segments joined by `:`, a segment outside
/// `A-Z a-z 0-9 . _ -` written as `x` + hex (`["payments", "payment-signer"]` →
/// `payments:payment-signer`).
pub fn component_label(id: &ComponentId) -> String {
    let mut parts = Vec::with_capacity(id.segments().len());
    for s in id.segments() {
        let plain = !s.is_empty()
            && s.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        parts.push(if plain {
            String::from_utf8_lossy(s).into_owned()
        } else {
            format!("x{}", hex::encode(s))
        });
    }
    parts.join(":")
}

/// The [`TaId`] under which the TA runtime keeps component `id`: its
/// [`component_label`]; labels longer than 128 characters become `h:` + the first 40 hex
/// digits of SHA-256 of the CBOR id.
pub fn ta_id_for(id: &ComponentId) -> Option<TaId> {
    let joined = component_label(id);
    if joined.len() <= 128 {
        return TaId::new(&joined).ok();
    }
    let cbor = id_cbor(id).ok()?;
    let digest = otrp_crypto::rust_crypto_provider().sha256(&cbor);
    let hexed = hex::encode(digest);
    TaId::new(&format!("h:{}", hexed.get(..40).unwrap_or(&hexed))).ok()
}

/// Whether `image` is a Wasm module (a TA for the runtime).
pub fn is_wasm(image: &[u8]) -> bool {
    image.starts_with(WASM_MAGIC)
}

/// Names the TA runtime uses (documented in `otrp-ta-runtime`: everything of a TA lives
/// under `ta/<id>/`, its key is `ta/<id>`).
fn ta_code(ta: &TaId) -> String {
    format!("ta/{ta}/code")
}
fn ta_prefix(ta: &TaId) -> String {
    format!("ta/{ta}/")
}
fn ta_key(ta: &TaId) -> String {
    format!("ta/{ta}")
}

/// The Agent's component store on a shared [`Platform`] (see the module docs).
#[derive(Debug)]
pub struct PlatformStore {
    platform: Arc<Mutex<Platform>>,
    /// Names of the `agent/` objects (loaded once at open, kept up to date by commits),
    /// so that listing never unseals the whole store.
    index: BTreeSet<String>,
    commits: u64,
}

impl PlatformStore {
    /// Opens the store on `platform`, indexing the Agent's objects.
    pub fn open(platform: Arc<Mutex<Platform>>) -> Result<Self, StoreError> {
        let names = {
            let mut p = lock(&platform);
            p.list("agent/").map_err(platform_err("list objects"))?
        };
        Ok(PlatformStore {
            platform,
            index: names.into_iter().collect(),
            commits: 0,
        })
    }

    /// The shared platform.
    pub fn platform(&self) -> &Arc<Mutex<Platform>> {
        &self.platform
    }

    /// Commits made through this handle since open.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Ids of every component with an image.
    pub fn component_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        let mut ids = vec![os_component_id()];
        ids.extend(self.ids_with(IMG)?);
        Ok(ids)
    }

    fn get(&self, name: &str, op: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.index.contains(name) {
            return Ok(None);
        }
        lock(&self.platform).get(name).map_err(platform_err(op))
    }

    fn ids_with(&self, prefix: &str) -> Result<Vec<ComponentId>, StoreError> {
        self.index
            .range(prefix.to_string()..)
            .take_while(|n| n.starts_with(prefix))
            .map(|n| id_from_name(prefix, n))
            .collect()
    }
}

fn lock(p: &Arc<Mutex<Platform>>) -> MutexGuard<'_, Platform> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TA-runtime operation derived from a change set.
enum TaOp {
    Install(TaId, Vec<u8>),
    Remove(TaId, Vec<String>),
    Perso(TaId, Option<Vec<u8>>),
}

impl ComponentStore for PlatformStore {
    fn image(&self, id: &ComponentId) -> Result<Option<Vec<u8>>, StoreError> {
        if *id == os_component_id() {
            return Ok(Some(crate::TEE_IMAGE.to_vec()));
        }
        self.get(&id_name(IMG, id)?, "read image")
    }

    fn manifest(&self, manifest_id: &ComponentId) -> Result<Option<ManifestRecord>, StoreError> {
        if *manifest_id == os_component_id() {
            return os_record().map(Some);
        }
        match self.get(&id_name(MAN, manifest_id)?, "read manifest record")? {
            Some(b) => ManifestRecord::from_cbor(&b).map(Some),
            None => Ok(None),
        }
    }

    fn manifest_ids(&self) -> Result<Vec<ComponentId>, StoreError> {
        let mut ids = vec![os_component_id()];
        ids.extend(self.ids_with(MAN)?);
        Ok(ids)
    }

    fn sequence_mark(&self, manifest_id: &ComponentId) -> Result<Option<SeqMark>, StoreError> {
        match self.get(&id_name(SEQ, manifest_id)?, "read sequence mark")? {
            Some(b) => seq_from_cbor(&b).map(Some),
            None => Ok(None),
        }
    }

    fn state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&format!("{ST}{key}"), "read state")
    }

    fn state_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{ST}{prefix}");
        Ok(self
            .index
            .range(full.clone()..)
            .take_while(|n| n.starts_with(&full))
            .filter_map(|n| n.strip_prefix(ST).map(str::to_string))
            .collect())
    }

    fn commit(&mut self, changes: ChangeSet) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let os = os_component_id();
        if changes.images.contains_key(&os)
            || changes.manifests.contains_key(&os)
            || changes.sequence_marks.contains_key(&os)
        {
            return Err(StoreError::new(
                "commit",
                "the TEE OS component is read-only (it is updated with the firmware)",
            ));
        }
        let mut writes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut ta_ops: Vec<TaOp> = Vec::new();
        let mut guard = lock(&self.platform);
        for (id, image) in &changes.images {
            writes.push((id_name(IMG, id)?, image.clone()));
            if let Some(target) = id.perso_target() {
                if let Some(ta) = ta_id_for(&target) {
                    ta_ops.push(TaOp::Perso(ta, image.clone()));
                }
                continue;
            }
            let Some(ta) = ta_id_for(id) else { continue };
            match image {
                Some(img) if is_wasm(img) => ta_ops.push(TaOp::Install(ta, img.clone())),
                _ => {
                    // Removed, or replaced by something that is not a TA: drop the TA
                    // with everything it stored.
                    let installed = guard
                        .get(&ta_code(&ta))
                        .map_err(platform_err("read TA code"))?
                        .is_some();
                    if installed {
                        let owned = guard
                            .list(&ta_prefix(&ta))
                            .map_err(platform_err("list TA objects"))?;
                        ta_ops.push(TaOp::Remove(ta, owned));
                    }
                }
            }
        }
        for (id, rec) in &changes.manifests {
            let bytes = match rec {
                Some(r) => Some(r.to_cbor()?),
                None => None,
            };
            writes.push((id_name(MAN, id)?, bytes));
        }
        for (id, mark) in &changes.sequence_marks {
            writes.push((id_name(SEQ, id)?, Some(seq_to_cbor(mark)?)));
        }
        for (key, value) in &changes.state {
            writes.push((format!("{ST}{key}"), value.clone()));
        }
        guard
            .transaction(|tx| {
                for (name, value) in &writes {
                    match value {
                        Some(v) => tx.put(name, v)?,
                        None => tx.delete(name)?,
                    }
                }
                for op in &ta_ops {
                    match op {
                        TaOp::Install(ta, wasm) => TaRuntime::stage_install(tx, ta, wasm)?,
                        TaOp::Remove(ta, owned) => {
                            for name in owned {
                                tx.delete(name)?;
                            }
                            tx.delete_key(&ta_key(ta))?;
                        }
                        TaOp::Perso(ta, data) => {
                            TaRuntime::stage_personalization(tx, ta, data.as_deref())?
                        }
                    }
                }
                Ok(())
            })
            .map_err(platform_err("commit"))?;
        drop(guard);
        for (name, value) in writes {
            if value.is_some() {
                self.index.insert(name);
            } else {
                self.index.remove(&name);
            }
        }
        self.commits += 1;
        Ok(())
    }
}
