//! The simulated secure world: sealed object store with crash-safe transactions,
//! monotonic counters, key store and TFW measurement.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use otrp_crypto::zeroize::Zeroizing;
use otrp_crypto::{rust_crypto_provider, KeyKind, PrivateKey, PublicKey};
use rand_core::CryptoRngCore;

use crate::journal::{self, Op, JOURNAL_NAME};
use crate::seal::Sealer;
use crate::PlatformError;

/// Environment variable naming a failpoint at which the process aborts (crash tests).
pub const CRASH_ENV: &str = "OTRP_TEE_CRASH_AT";

/// Largest plaintext accepted for one sealed object (16 MiB).
pub const MAX_OBJECT_LEN: usize = 16 * 1024 * 1024;

/// Largest object, counter or key name in bytes.
pub const MAX_NAME_LEN: usize = 1024;

const OBJECTS_DIR: &str = "objects";
const JOURNAL_FILE: &str = "journal";
const JOURNAL_TMP: &str = "journal.tmp";
const LOCK_FILE: &str = "lock";
const OBJ_EXT: &str = "obj";
const TMP_EXT: &str = "tmp";

const PREFIX_OBJECT: &str = "o/";
const PREFIX_COUNTER: &str = "c/";
const PREFIX_KEY: &str = "k/";

/// How to boot the simulated TEE.
#[derive(Clone)]
pub struct PlatformConfig {
    /// Directory of the store (created if missing). Everything in it is visible to, and
    /// modifiable by, the rich OS; sealing is what protects it.
    pub dir: PathBuf,
    /// The device storage key (the simulated eFuse key).
    pub device_key: Zeroizing<[u8; 32]>,
    /// The TEE firmware image whose SHA-256 is the TFW measurement.
    pub tee_image: Vec<u8>,
    /// Failpoint at which to `abort()` the process; [`PlatformConfig::new`] reads it from
    /// [`CRASH_ENV`].
    pub crash_at: Option<String>,
    /// Record every failpoint passed (see [`Platform::failpoint_trace`]).
    pub trace_failpoints: bool,
    /// fsync files and directories (default). Turning it off keeps the same write order
    /// and atomic renames, so the store still survives a killed *process* (the page cache
    /// survives it), but not a power cut; for tests that kill processes by the hundred.
    pub fsync: bool,
}

impl PlatformConfig {
    /// A configuration for `dir` with the given device key and TEE image; `crash_at` is
    /// taken from the `OTRP_TEE_CRASH_AT` environment variable, tracing is off.
    pub fn new(dir: impl Into<PathBuf>, device_key: [u8; 32], tee_image: &[u8]) -> Self {
        PlatformConfig {
            dir: dir.into(),
            device_key: Zeroizing::new(device_key),
            tee_image: tee_image.to_vec(),
            crash_at: std::env::var(CRASH_ENV).ok().filter(|s| !s.is_empty()),
            trace_failpoints: false,
            fsync: true,
        }
    }

    /// Turns fsync of files and directories on (default) or off (see [`PlatformConfig::fsync`]).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Sets (or clears) the failpoint at which the process aborts.
    pub fn crash_at(mut self, step: Option<&str>) -> Self {
        self.crash_at = step.map(str::to_string);
        self
    }

    /// Turns failpoint tracing on or off.
    pub fn trace_failpoints(mut self, on: bool) -> Self {
        self.trace_failpoints = on;
        self
    }
}

impl std::fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformConfig")
            .field("dir", &self.dir)
            .field("tee_image_len", &self.tee_image.len())
            .field("crash_at", &self.crash_at)
            .finish_non_exhaustive()
    }
}

struct Failpoints {
    crash_at: Option<String>,
    trace: Option<Vec<String>>,
}

impl Failpoints {
    fn hit(&mut self, step: &str) {
        if let Some(trace) = &mut self.trace {
            trace.push(step.to_string());
        }
        if self.crash_at.as_deref() == Some(step) {
            // Simulated power cut / process kill: no unwinding, no destructors, no flush.
            std::process::abort();
        }
    }
}

/// The simulated secure world of one device.
///
/// # Storage layout (`dir`)
///
/// * `objects/<hex(SHA-256(name))[..40]>.obj`: one sealed object per file
///   (AES-256-GCM, name as AAD; see the crate docs).
/// * `journal.tmp`: a transaction journal being written (incomplete: discarded at open).
/// * `journal`: a committed journal (rolled forward at open).
/// * `lock`: held (`flock`) while a `Platform` owns the directory.
///
/// # Crash safety
///
/// Every change goes through [`Platform::transaction`]: the changes are sealed, written
/// to `journal.tmp`, fsynced, renamed to `journal` (the commit point: from then on
/// recovery rolls forward; durable against power loss once the directory is fsynced,
/// step `commit`), then each object is written to a temp file, fsynced and renamed over its
/// target, the objects directory is fsynced and the journal removed. Replaying a
/// committed journal is idempotent, so a crash at any point leaves either the old or the
/// new state once the store is reopened. The named steps ([`Platform::failpoint_trace`])
/// are: `journal:begin`, `journal:partial`, `journal:written`, `journal:synced`,
/// `journal:renamed`, `commit`, then `apply:<i>:written` / `apply:<i>:renamed` /
/// `apply:<i>:deleted` per op, `apply:synced`, `apply:journal-removed`; recovery at open
/// passes the same apply steps with the `recover` prefix.
///
/// # What sealing does not give
///
/// Freshness: the rich OS can put back an older copy of the whole directory (or of one
/// object). Real hardware keeps the monotonic counters in RPMB or fuses for that; here
/// they live in the same store, which the threat model of the simulation accepts.
pub struct Platform {
    dir: PathBuf,
    objects: PathBuf,
    sealer: Sealer,
    rng: Box<dyn CryptoRngCore + Send>,
    failpoints: Failpoints,
    measurement: [u8; 32],
    needs_recovery: bool,
    fsync: bool,
    _lock: File,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("dir", &self.dir)
            .field("measurement", &hex::encode(self.measurement))
            .finish_non_exhaustive()
    }
}

fn sync_dir(path: &Path, on: bool) -> Result<(), PlatformError> {
    if !on {
        return Ok(());
    }
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| PlatformError::io("fsync directory", path, e))
}

fn check_name(name: &str) -> Result<(), PlatformError> {
    let bad = |reason| PlatformError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 1024 bytes"));
    }
    if name.contains('\0') {
        return Err(bad("contains NUL"));
    }
    Ok(())
}

fn check_len(name: &str, len: usize) -> Result<(), PlatformError> {
    if len > MAX_OBJECT_LEN {
        return Err(PlatformError::TooLarge {
            name: name.to_string(),
            len,
            max: MAX_OBJECT_LEN,
        });
    }
    Ok(())
}

fn internal(prefix: &str, name: &str) -> Result<String, PlatformError> {
    check_name(name)?;
    Ok(format!("{prefix}{name}"))
}

fn decode_counter(name: &str, bytes: &[u8]) -> Result<u64, PlatformError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| PlatformError::tampered(name, "counter value is not 8 bytes"))
}

fn decode_key(name: &str, bytes: &[u8]) -> Result<PrivateKey, PlatformError> {
    let pem = std::str::from_utf8(bytes)
        .map_err(|_| PlatformError::tampered(name, "stored key is not PEM text"))?;
    PrivateKey::from_pem(pem).map_err(|_| PlatformError::tampered(name, "stored key is not PKCS#8"))
}

impl Platform {
    /// Boots the simulated TEE on `config.dir`: locks the directory, derives the storage
    /// key, measures the TEE image and recovers from any interrupted transaction.
    /// `rng` is the device's hardware RNG (nonces, key generation).
    pub fn open(
        config: PlatformConfig,
        rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Platform, PlatformError> {
        let dir = config.dir;
        let objects = dir.join(OBJECTS_DIR);
        fs::create_dir_all(&objects).map_err(|e| PlatformError::io("create", &objects, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| PlatformError::io("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PlatformError::Locked { path: dir });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PlatformError::io("lock", lock_path, e));
            }
        }
        sync_dir(&dir, config.fsync)?;
        let sealer = Sealer::new(&config.device_key)?;
        let measurement = rust_crypto_provider().sha256(&config.tee_image);
        let mut platform = Platform {
            dir,
            objects,
            sealer,
            rng,
            failpoints: Failpoints {
                crash_at: config.crash_at,
                trace: config.trace_failpoints.then(Vec::new),
            },
            measurement,
            needs_recovery: true,
            fsync: config.fsync,
            _lock: lock,
        };
        platform.recover()?;
        Ok(platform)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TFW measurement: SHA-256 of the TEE image given at boot (for attestation).
    pub fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    /// Fills `buf` from the device RNG.
    pub fn fill_random(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }

    /// The failpoints passed since boot (or the last [`Platform::take_failpoint_trace`])
    /// when tracing is on; empty otherwise.
    pub fn failpoint_trace(&self) -> &[String] {
        self.failpoints.trace.as_deref().unwrap_or_default()
    }

    /// Returns and clears the failpoint trace.
    pub fn take_failpoint_trace(&mut self) -> Vec<String> {
        self.failpoints
            .trace
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    // ---- low-level object files -------------------------------------------------------

    fn object_path(&self, internal_name: &str) -> PathBuf {
        let digest = rust_crypto_provider().sha256(internal_name.as_bytes());
        let file = hex::encode(digest.get(..20).unwrap_or(&digest));
        self.objects.join(format!("{file}.{OBJ_EXT}"))
    }

    fn read_internal(&self, internal_name: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        let path = self.object_path(internal_name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PlatformError::io("read", path, e)),
        };
        self.sealer.open(internal_name, &bytes).map(Some)
    }

    fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<File, PlatformError> {
        let mut f = File::create(path).map_err(|e| PlatformError::io("create", path, e))?;
        f.write_all(bytes)
            .map_err(|e| PlatformError::io("write", path, e))?;
        Ok(f)
    }

    /// Applies journal ops (idempotent), then removes the journal.
    fn apply(&mut self, ops: &[Op], prefix: &str) -> Result<(), PlatformError> {
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Put { name, sealed } => {
                    let path = self.object_path(name);
                    let tmp = path.with_extension(TMP_EXT);
                    let f = Self::write_file_synced(&tmp, sealed)?;
                    self.failpoints.hit(&format!("{prefix}:{i}:written"));
                    if self.fsync {
                        f.sync_all()
                            .map_err(|e| PlatformError::io("fsync", &tmp, e))?;
                    }
                    drop(f);
                    fs::rename(&tmp, &path).map_err(|e| PlatformError::io("rename", &tmp, e))?;
                    self.failpoints.hit(&format!("{prefix}:{i}:renamed"));
                }
                Op::Delete { name } => {
                    let path = self.object_path(name);
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(PlatformError::io("remove", path, e)),
                    }
                    self.failpoints.hit(&format!("{prefix}:{i}:deleted"));
                }
            }
        }
        sync_dir(&self.objects, self.fsync)?;
        self.failpoints.hit(&format!("{prefix}:synced"));
        let journal = self.dir.join(JOURNAL_FILE);
        fs::remove_file(&journal).map_err(|e| PlatformError::io("remove", &journal, e))?;
        self.failpoints.hit(&format!("{prefix}:journal-removed"));
        sync_dir(&self.dir, self.fsync)
    }

    /// Discards an incomplete journal, rolls a committed one forward, removes stray
    /// temp files.
    fn recover(&mut self) -> Result<(), PlatformError> {
        let tmp = self.dir.join(JOURNAL_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => sync_dir(&self.dir, self.fsync)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(PlatformError::io("remove", tmp, e)),
        }
        let journal = self.dir.join(JOURNAL_FILE);
        match fs::read(&journal) {
            Ok(sealed) => {
                let plain = self.sealer.open(JOURNAL_NAME, &sealed)?;
                let ops = journal::decode(&plain)?;
                self.apply(&ops, "recover")?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(PlatformError::io("read", journal, e)),
        }
        let entries =
            fs::read_dir(&self.objects).map_err(|e| PlatformError::io("list", &self.objects, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PlatformError::io("list", &self.objects, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|x| x == TMP_EXT) {
                fs::remove_file(&path).map_err(|e| PlatformError::io("remove", &path, e))?;
            }
        }
        self.needs_recovery = false;
        Ok(())
    }

    /// Makes `pending` durable, all or nothing.
    fn commit(
        &mut self,
        pending: BTreeMap<String, Option<Zeroizing<Vec<u8>>>>,
    ) -> Result<(), PlatformError> {
        if pending.is_empty() {
            return Ok(());
        }
        if self.needs_recovery {
            self.recover()?;
        }
        let mut ops = Vec::with_capacity(pending.len());
        for (name, value) in pending {
            ops.push(match value {
                Some(v) => Op::Put {
                    sealed: self.sealer.seal(&name, &v, &mut *self.rng)?,
                    name,
                },
                None => Op::Delete { name },
            });
        }
        let plain = Zeroizing::new(journal::encode(&ops)?);
        let sealed = self.sealer.seal(JOURNAL_NAME, &plain, &mut *self.rng)?;

        self.failpoints.hit("journal:begin");
        let tmp = self.dir.join(JOURNAL_TMP);
        let (first, rest) = sealed.split_at(sealed.len() / 2);
        let mut f = Self::write_file_synced(&tmp, first)?;
        self.failpoints.hit("journal:partial");
        f.write_all(rest)
            .map_err(|e| PlatformError::io("write", &tmp, e))?;
        self.failpoints.hit("journal:written");
        if self.fsync {
            f.sync_all()
                .map_err(|e| PlatformError::io("fsync", &tmp, e))?;
        }
        drop(f);
        self.failpoints.hit("journal:synced");
        let journal = self.dir.join(JOURNAL_FILE);
        // From here on an error leaves a committed journal behind: roll it forward before
        // anything else touches the store.
        self.needs_recovery = true;
        fs::rename(&tmp, &journal).map_err(|e| PlatformError::io("rename", &tmp, e))?;
        self.failpoints.hit("journal:renamed");
        sync_dir(&self.dir, self.fsync)?;
        self.failpoints.hit("commit");
        self.apply(&ops, "apply")?;
        self.needs_recovery = false;
        Ok(())
    }

    fn ensure_recovered(&mut self) -> Result<(), PlatformError> {
        if self.needs_recovery {
            self.recover()?;
        }
        Ok(())
    }

    // ---- transactions -----------------------------------------------------------------

    /// Runs `f` on a transaction and commits every change it made, all or nothing. If `f`
    /// returns an error nothing is written. Reads inside `f` see its own pending writes.
    ///
    /// ```ignore
    /// platform.transaction(|tx| {
    ///     tx.put("ta/x/code", &wasm)?;
    ///     tx.delete("ta/y/code")?;
    ///     tx.advance_counter("suit/x", 7)
    /// })?;
    /// ```
    pub fn transaction<R>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, PlatformError>,
    ) -> Result<R, PlatformError> {
        self.ensure_recovered()?;
        let mut tx = Transaction {
            platform: self,
            pending: BTreeMap::new(),
        };
        let out = f(&mut tx)?;
        let pending = std::mem::take(&mut tx.pending);
        self.commit(pending)?;
        Ok(out)
    }

    // ---- user objects -----------------------------------------------------------------

    /// Reads user object `name`; `Ok(None)` if absent, `Tampered` if it fails to unseal.
    pub fn get(&mut self, name: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        self.ensure_recovered()?;
        self.read_internal(&internal(PREFIX_OBJECT, name)?)
    }

    /// Writes user object `name` (a one-op transaction).
    pub fn put(&mut self, name: &str, value: &[u8]) -> Result<(), PlatformError> {
        self.transaction(|tx| tx.put(name, value))
    }

    /// Deletes user object `name` (no error if absent).
    pub fn delete(&mut self, name: &str) -> Result<(), PlatformError> {
        self.transaction(|tx| tx.delete(name))
    }

    /// Names of the user objects starting with `prefix`, sorted. Every object file is
    /// unsealed on the way, so a tampered file makes this fail with `Tampered`.
    pub fn list(&mut self, prefix: &str) -> Result<Vec<String>, PlatformError> {
        self.ensure_recovered()?;
        let entries =
            fs::read_dir(&self.objects).map_err(|e| PlatformError::io("list", &self.objects, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PlatformError::io("list", &self.objects, e))?;
            let path = entry.path();
            if path.extension().is_none_or(|x| x != OBJ_EXT) {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| PlatformError::io("read", &path, e))?;
            let label = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let (name, _) = self.sealer.open_any(label, &bytes)?;
            if self.object_path(&name) != path {
                return Err(PlatformError::tampered(&name, "object file renamed"));
            }
            if let Some(user) = name.strip_prefix(PREFIX_OBJECT) {
                if user.starts_with(prefix) {
                    names.push(user.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    // ---- monotonic counters -----------------------------------------------------------

    /// Current value of counter `name` (0 if never set).
    pub fn counter(&mut self, name: &str) -> Result<u64, PlatformError> {
        self.ensure_recovered()?;
        let iname = internal(PREFIX_COUNTER, name)?;
        match self.read_internal(&iname)? {
            Some(v) => decode_counter(&iname, &v),
            None => Ok(0),
        }
    }

    /// Increments counter `name` and returns the new value.
    pub fn increment_counter(&mut self, name: &str) -> Result<u64, PlatformError> {
        self.transaction(|tx| tx.increment_counter(name))
    }

    /// Raises counter `name` to `value`; `CounterRollback` if it is already higher.
    pub fn advance_counter(&mut self, name: &str, value: u64) -> Result<(), PlatformError> {
        self.transaction(|tx| tx.advance_counter(name, value))
    }

    // ---- key store --------------------------------------------------------------------

    /// Generates key `name` inside the TEE and returns its public key; `KeyExists` if a
    /// key of that name exists.
    pub fn generate_key(&mut self, name: &str, kind: KeyKind) -> Result<PublicKey, PlatformError> {
        self.transaction(|tx| tx.generate_key(name, kind))
    }

    /// Returns the public key of `name`, generating a key of `kind` first if there is none.
    pub fn ensure_key(&mut self, name: &str, kind: KeyKind) -> Result<PublicKey, PlatformError> {
        match self.public_key(name) {
            Err(PlatformError::KeyNotFound { .. }) => self.generate_key(name, kind),
            other => other,
        }
    }

    fn load_key(&mut self, name: &str) -> Result<PrivateKey, PlatformError> {
        self.ensure_recovered()?;
        let iname = internal(PREFIX_KEY, name)?;
        let bytes = Zeroizing::new(self.read_internal(&iname)?.ok_or_else(|| {
            PlatformError::KeyNotFound {
                name: name.to_string(),
            }
        })?);
        decode_key(&iname, &bytes)
    }

    /// The public key of `name` (the private key never leaves the platform).
    pub fn public_key(&mut self, name: &str) -> Result<PublicKey, PlatformError> {
        Ok(self.load_key(name)?.public_key())
    }

    /// Signs `msg` with key `name` under the key's default algorithm (P-256: ECDSA with
    /// SHA-256 over `msg`, raw `r || s`; Ed25519: EdDSA; RSA: RS256).
    pub fn sign(&mut self, name: &str, msg: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let key = self.load_key(name)?;
        rust_crypto_provider()
            .sign(key.default_alg(), &key, msg)
            .map_err(|e| PlatformError::crypto("sign", e))
    }

    /// Deletes key `name` (no error if absent).
    pub fn delete_key(&mut self, name: &str) -> Result<(), PlatformError> {
        self.transaction(|tx| tx.delete_key(name))
    }
}

/// A set of changes committed together by [`Platform::transaction`].
pub struct Transaction<'p> {
    platform: &'p mut Platform,
    /// Internal name -> new plaintext (`None` = delete).
    pending: BTreeMap<String, Option<Zeroizing<Vec<u8>>>>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("pending", &self.pending.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Transaction<'_> {
    fn read(&self, iname: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        match self.pending.get(iname) {
            Some(v) => Ok(v.as_ref().map(|v| v.to_vec())),
            None => self.platform.read_internal(iname),
        }
    }

    fn stage(&mut self, iname: String, value: Option<Vec<u8>>) -> Result<(), PlatformError> {
        if let Some(v) = &value {
            check_len(&iname, v.len())?;
        }
        self.pending.insert(iname, value.map(Zeroizing::new));
        Ok(())
    }

    /// Reads user object `name`, seeing this transaction's own pending writes.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, PlatformError> {
        self.read(&internal(PREFIX_OBJECT, name)?)
    }

    /// Stages a write of user object `name`.
    pub fn put(&mut self, name: &str, value: &[u8]) -> Result<(), PlatformError> {
        let iname = internal(PREFIX_OBJECT, name)?;
        self.stage(iname, Some(value.to_vec()))
    }

    /// Stages the deletion of user object `name`.
    pub fn delete(&mut self, name: &str) -> Result<(), PlatformError> {
        let iname = internal(PREFIX_OBJECT, name)?;
        self.stage(iname, None)
    }

    /// Value of counter `name` as this transaction sees it.
    pub fn counter(&self, name: &str) -> Result<u64, PlatformError> {
        let iname = internal(PREFIX_COUNTER, name)?;
        match self.read(&iname)? {
            Some(v) => decode_counter(&iname, &v),
            None => Ok(0),
        }
    }

    /// Stages counter `name` + 1 and returns the new value.
    pub fn increment_counter(&mut self, name: &str) -> Result<u64, PlatformError> {
        let next =
            self.counter(name)?
                .checked_add(1)
                .ok_or_else(|| PlatformError::CounterOverflow {
                    name: name.to_string(),
                })?;
        self.stage(
            internal(PREFIX_COUNTER, name)?,
            Some(next.to_be_bytes().to_vec()),
        )?;
        Ok(next)
    }

    /// Stages counter `name` = `value`; `CounterRollback` if the counter is higher.
    pub fn advance_counter(&mut self, name: &str, value: u64) -> Result<(), PlatformError> {
        let current = self.counter(name)?;
        if value < current {
            return Err(PlatformError::CounterRollback {
                name: name.to_string(),
                current,
                requested: value,
            });
        }
        self.stage(
            internal(PREFIX_COUNTER, name)?,
            Some(value.to_be_bytes().to_vec()),
        )
    }

    /// Whether key `name` exists (as this transaction sees it).
    pub fn key_exists(&self, name: &str) -> Result<bool, PlatformError> {
        Ok(self.read(&internal(PREFIX_KEY, name)?)?.is_some())
    }

    /// Stages a new key `name` generated from the device RNG; returns its public key.
    pub fn generate_key(&mut self, name: &str, kind: KeyKind) -> Result<PublicKey, PlatformError> {
        let iname = internal(PREFIX_KEY, name)?;
        if self.read(&iname)?.is_some() {
            return Err(PlatformError::KeyExists {
                name: name.to_string(),
            });
        }
        let key = PrivateKey::generate(kind, &mut self.platform.rng)
            .map_err(|e| PlatformError::crypto("key generation", e))?;
        let pem = Zeroizing::new(
            key.to_pkcs8_pem()
                .map_err(|e| PlatformError::crypto("key encoding", e))?,
        );
        self.stage(iname, Some(pem.as_bytes().to_vec()))?;
        Ok(key.public_key())
    }

    /// Stages the deletion of key `name`.
    pub fn delete_key(&mut self, name: &str) -> Result<(), PlatformError> {
        let iname = internal(PREFIX_KEY, name)?;
        self.stage(iname, None)
    }
}
