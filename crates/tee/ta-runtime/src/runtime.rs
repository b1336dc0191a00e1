//! The runtime: installed TAs, module cache, sessions.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use otrp_crypto::{rust_crypto_provider, KeyKind, PublicKey};
use otrp_tee_platform::{Platform, PlatformError, Transaction};
use rand_core::CryptoRngCore;
use wasmi::{
    Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimitsBuilder, TrapCode,
    TypedFunc,
};

use crate::host::{self, HostState, HOST_FUNCTIONS};
use crate::TaError;

/// The platform as the runtime shares it (sessions and the Agent use it concurrently).
pub type SharedPlatform = Arc<Mutex<Platform>>;

/// The TEE's clock as TAs see it (`otrp.time_ms`).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

impl<F: Fn() -> u64 + Send + Sync> Clock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// Resource limits of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Fuel (roughly: wasm instructions) for one entry-point call.
    pub fuel_per_call: u64,
    /// Largest linear memory of a TA, in bytes.
    pub max_memory_bytes: usize,
    /// Largest TA module, in bytes.
    pub max_module_bytes: usize,
    /// Largest invoke input or output, in bytes.
    pub max_io_bytes: usize,
    /// Largest value a TA can store under one key.
    pub max_value_bytes: usize,
    /// Longest storage key.
    pub max_key_bytes: usize,
    /// Log lines kept per session.
    pub max_log_lines: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            fuel_per_call: 100_000_000,
            max_memory_bytes: 16 * 1024 * 1024,
            max_module_bytes: 4 * 1024 * 1024,
            max_io_bytes: 1024 * 1024,
            max_value_bytes: 256 * 1024,
            max_key_bytes: 256,
            max_log_lines: 256,
        }
    }
}

/// A TA identifier: 1 to 128 characters of `A-Z a-z 0-9 . _ - :` (a UUID, or a name
/// derived from a SUIT component id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaId(String);

impl TaId {
    /// Checks and wraps `id`.
    pub fn new(id: &str) -> Result<TaId, TaError> {
        let bad = |reason| TaError::InvalidId {
            id: id.to_string(),
            reason,
        };
        if id.is_empty() || id.len() > 128 {
            return Err(bad("must be 1..=128 characters"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        {
            return Err(bad("only A-Z a-z 0-9 . _ - : are allowed"));
        }
        Ok(TaId(id.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TaId {
    type Err = TaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaId::new(s)
    }
}

/// Where a TA's things live in the platform.
pub(crate) mod names {
    use super::TaId;

    /// Prefix of everything a TA owns in the object store.
    pub(crate) fn prefix(ta: &TaId) -> String {
        format!("ta/{ta}/")
    }
    /// The module bytes.
    pub(crate) fn code(ta: &TaId) -> String {
        format!("ta/{ta}/code")
    }
    /// The personalization data.
    pub(crate) fn perso(ta: &TaId) -> String {
        format!("ta/{ta}/perso")
    }
    /// A TA storage object (key hex-encoded, so any bytes are fine).
    pub(crate) fn data(ta: &TaId, key: &[u8]) -> String {
        format!("ta/{ta}/data/{}", hex::encode(key))
    }
    /// The TA's signing key in the platform key store.
    pub(crate) fn key(ta: &TaId) -> String {
        format!("ta/{ta}")
    }
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) platform: SharedPlatform,
    pub(crate) rng: Mutex<Box<dyn CryptoRngCore + Send>>,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) config: RuntimeConfig,
    /// TA id -> (SHA-256 of the code, compiled module).
    modules: Mutex<HashMap<TaId, ([u8; 32], Module)>>,
}

/// The TA runtime of one TEE: installs TAs into the platform's sealed storage and runs
/// them in sessions. Cheap to clone (shared state).
#[derive(Clone)]
pub struct TaRuntime {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for TaRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn platform_err(ta: &TaId) -> impl Fn(PlatformError) -> TaError + '_ {
    move |source| TaError::Platform {
        ta: ta.to_string(),
        source,
    }
}

impl TaRuntime {
    /// A runtime over `platform`; `rng` serves `otrp.random`, `clock` serves `otrp.time_ms`.
    pub fn new(
        platform: SharedPlatform,
        rng: Box<dyn CryptoRngCore + Send>,
        clock: Box<dyn Clock>,
        config: RuntimeConfig,
    ) -> Result<TaRuntime, TaError> {
        let mut wasm_config = Config::default();
        wasm_config.consume_fuel(true);
        let engine = Engine::new(&wasm_config);
        let mut linker = Linker::new(&engine);
        host::define(&mut linker).map_err(|e| TaError::InvalidModule {
            ta: String::new(),
            reason: format!("host API definition failed: {e}"),
        })?;
        Ok(TaRuntime {
            inner: Arc::new(Inner {
                engine,
                linker,
                platform,
                rng: Mutex::new(rng),
                clock,
                config,
                modules: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The platform this runtime stores TAs in.
    pub fn platform(&self) -> &SharedPlatform {
        &self.inner.platform
    }

    /// The limits in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn lock_platform(&self) -> std::sync::MutexGuard<'_, Platform> {
        self.inner
            .platform
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks that `wasm` is a valid module that follows the TA ABI: exports `memory`,
    /// `alloc` and `invoke` with the right types, imports only `otrp` host functions,
    /// and declares no more memory than the limit.
    pub fn validate(&self, ta: &TaId, wasm: &[u8]) -> Result<(), TaError> {
        self.compile(ta, wasm).map(|_| ())
    }

    fn compile(&self, ta: &TaId, wasm: &[u8]) -> Result<Module, TaError> {
        let bad = |reason: String| TaError::InvalidModule {
            ta: ta.to_string(),
            reason,
        };
        let max = self.inner.config.max_module_bytes;
        if wasm.len() > max {
            return Err(bad(format!(
                "{} bytes, over the {max}-byte limit",
                wasm.len()
            )));
        }
        let module = Module::new(&self.inner.engine, wasm).map_err(|e| bad(e.to_string()))?;
        for import in module.imports() {
            if import.module() != "otrp" || !HOST_FUNCTIONS.contains(&import.name()) {
                return Err(bad(format!(
                    "imports `{}.{}`, which the host does not provide",
                    import.module(),
                    import.name()
                )));
            }
        }
        let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
        for required in ["memory", "alloc", "invoke"] {
            if !exports.iter().any(|e| e == required) {
                return Err(bad(format!("does not export `{required}`")));
            }
        }
        Ok(module)
    }

    /// Stages the installation (or update) of TA `ta` with module `wasm` in a platform
    /// transaction: stores the code sealed and creates the TA's P-256 key unless it has one
    /// (an update keeps the key and the TA's storage). Call [`TaRuntime::validate`] first;
    /// the Agent uses this to install a TA atomically with its SUIT sequence number.
    pub fn stage_install(
        tx: &mut Transaction<'_>,
        ta: &TaId,
        wasm: &[u8],
    ) -> Result<(), PlatformError> {
        tx.put(&names::code(ta), wasm)?;
        if !tx.key_exists(&names::key(ta))? {
            tx.generate_key(&names::key(ta), KeyKind::P256)?;
        }
        Ok(())
    }

    /// Stages setting (`Some`) or removing (`None`) the personalization data of `ta`.
    pub fn stage_personalization(
        tx: &mut Transaction<'_>,
        ta: &TaId,
        data: Option<&[u8]>,
    ) -> Result<(), PlatformError> {
        match data {
            Some(d) => tx.put(&names::perso(ta), d),
            None => tx.delete(&names::perso(ta)),
        }
    }

    /// Validates and installs (or updates) TA `ta`; returns its public key.
    pub fn install(&self, ta: &TaId, wasm: &[u8]) -> Result<PublicKey, TaError> {
        self.compile(ta, wasm)?;
        let mut p = self.lock_platform();
        p.transaction(|tx| Self::stage_install(tx, ta, wasm))
            .map_err(platform_err(ta))?;
        p.public_key(&names::key(ta)).map_err(platform_err(ta))
    }

    /// Sets (`Some`) or removes (`None`) the personalization data of an installed TA.
    pub fn set_personalization(&self, ta: &TaId, data: Option<&[u8]>) -> Result<(), TaError> {
        let mut p = self.lock_platform();
        if p.get(&names::code(ta)).map_err(platform_err(ta))?.is_none() {
            return Err(TaError::NotInstalled { ta: ta.to_string() });
        }
        p.transaction(|tx| Self::stage_personalization(tx, ta, data))
            .map_err(platform_err(ta))
    }

    /// Removes TA `ta` with its code, personalization data, storage and key, atomically.
    pub fn uninstall(&self, ta: &TaId) -> Result<(), TaError> {
        let mut p = self.lock_platform();
        let owned = p.list(&names::prefix(ta)).map_err(platform_err(ta))?;
        if !owned.contains(&names::code(ta)) {
            return Err(TaError::NotInstalled { ta: ta.to_string() });
        }
        p.transaction(|tx| {
            for name in &owned {
                tx.delete(name)?;
            }
            tx.delete_key(&names::key(ta))
        })
        .map_err(platform_err(ta))?;
        drop(p);
        self.inner
            .modules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(ta);
        Ok(())
    }

    /// Ids of the installed TAs, sorted.
    pub fn installed(&self) -> Result<Vec<TaId>, TaError> {
        let mut p = self.lock_platform();
        let names = p.list("ta/").map_err(|source| TaError::Platform {
            ta: String::new(),
            source,
        })?;
        Ok(names
            .iter()
            .filter_map(|n| n.strip_prefix("ta/")?.strip_suffix("/code"))
            .filter_map(|id| TaId::new(id).ok())
            .collect())
    }

    /// The public key of TA `ta` (its private key never leaves the platform).
    pub fn ta_public_key(&self, ta: &TaId) -> Result<PublicKey, TaError> {
        self.lock_platform()
            .public_key(&names::key(ta))
            .map_err(|e| match e {
                PlatformError::KeyNotFound { .. } => TaError::NotInstalled { ta: ta.to_string() },
                other => platform_err(ta)(other),
            })
    }

    /// SHA-256 of the installed module of `ta` (its measurement for attestation).
    pub fn ta_measurement(&self, ta: &TaId) -> Result<[u8; 32], TaError> {
        let code = self.load_code(ta)?;
        Ok(rust_crypto_provider().sha256(&code))
    }

    fn load_code(&self, ta: &TaId) -> Result<Vec<u8>, TaError> {
        self.lock_platform()
            .get(&names::code(ta))
            .map_err(platform_err(ta))?
            .ok_or_else(|| TaError::NotInstalled { ta: ta.to_string() })
    }

    /// The compiled module of `ta`, from the cache when the sealed code is unchanged.
    fn module(&self, ta: &TaId) -> Result<Module, TaError> {
        let code = self.load_code(ta)?;
        let digest = rust_crypto_provider().sha256(&code);
        let mut cache = self
            .inner
            .modules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((d, m)) = cache.get(ta) {
            if *d == digest {
                return Ok(m.clone());
            }
        }
        let module = self.compile(ta, &code)?;
        cache.insert(ta.clone(), (digest, module.clone()));
        Ok(module)
    }

    /// Opens a session with TA `ta` (see [`Session::open`]).
    pub fn open_session(&self, ta: &TaId) -> Result<Session, TaError> {
        Session::open(self, ta)
    }
}

/// Maps a wasmi error of entry point `entry` to a [`TaError`].
fn map_call_error(store: &mut Store<HostState>, entry: &'static str, e: wasmi::Error) -> TaError {
    let ta = store.data().ta.to_string();
    if let Some(source) = store.data_mut().platform_error.take() {
        return TaError::Platform { ta, source };
    }
    let config = &store.data().rt.config;
    let is_fuel = matches!(e.as_trap_code(), Some(TrapCode::OutOfFuel))
        || matches!(e.kind(), wasmi::errors::ErrorKind::Fuel(_));
    if is_fuel {
        return TaError::OutOfFuel {
            ta,
            entry,
            fuel: config.fuel_per_call,
        };
    }
    let is_memory = matches!(e.as_trap_code(), Some(TrapCode::GrowthOperationLimited))
        || matches!(e.kind(), wasmi::errors::ErrorKind::Memory(_));
    if is_memory {
        return TaError::MemoryLimit {
            ta,
            entry,
            limit: config.max_memory_bytes,
        };
    }
    TaError::Trap {
        ta,
        entry,
        reason: e.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Open,
    Closed,
    Dead,
}

/// A session with one TA, in the spirit of the GlobalPlatform TEE Client API
/// (`TEEC_OpenSession` / `TEEC_InvokeCommand` / `TEEC_CloseSession`). Each session runs
/// its own instance of the TA; state that must outlive it goes to the TA's storage. A
/// trap, fuel exhaustion or memory-limit hit kills the session (GP `TARGET_DEAD`).
pub struct Session {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    invoke: TypedFunc<(i32, i32, i32), i32>,
    close: Option<TypedFunc<(), ()>>,
    state: SessionState,
    last_fuel: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("ta", &self.store.data().ta)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Instantiates TA `ta` (from sealed storage) and calls its `open_session` export if
    /// it has one; an error status refuses the session.
    pub fn open(runtime: &TaRuntime, ta: &TaId) -> Result<Session, TaError> {
        let module = runtime.module(ta)?;
        let inner = Arc::clone(&runtime.inner);
        let config = inner.config.clone();
        let limits = StoreLimitsBuilder::new()
            .memory_size(config.max_memory_bytes)
            .memories(1)
            .tables(1)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &inner.engine,
            HostState {
                rt: Arc::clone(&inner),
                ta: ta.clone(),
                limits,
                output: None,
                logs: Vec::new(),
                platform_error: None,
            },
        );
        store.limiter(|s| &mut s.limits);
        let fuel = config.fuel_per_call;
        store
            .set_fuel(fuel)
            .map_err(|e| map_call_error(&mut store, "instantiate", e))?;
        let instance: Instance = inner
            .linker
            .instantiate_and_start(&mut store, &module)
            .map_err(|e| {
                let msg = e.to_string();
                match map_call_error(&mut store, "instantiate", e) {
                    TaError::Trap { .. } if msg.contains("memory") => TaError::MemoryLimit {
                        ta: ta.to_string(),
                        entry: "instantiate",
                        limit: config.max_memory_bytes,
                    },
                    other => other,
                }
            })?;
        let bad = |reason: &str| TaError::InvalidModule {
            ta: ta.to_string(),
            reason: reason.to_string(),
        };
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or_else(|| bad("`memory` is not a memory"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&store, "alloc")
            .map_err(|_| bad("`alloc` must be (i32) -> i32"))?;
        let invoke = instance
            .get_typed_func::<(i32, i32, i32), i32>(&store, "invoke")
            .map_err(|_| bad("`invoke` must be (i32, i32, i32) -> i32"))?;
        let open = match instance.get_func(&store, "open_session") {
            Some(f) => Some(
                f.typed::<(), i32>(&store)
                    .map_err(|_| bad("`open_session` must be () -> i32"))?,
            ),
            None => None,
        };
        let close = match instance.get_func(&store, "close_session") {
            Some(f) => Some(
                f.typed::<(), ()>(&store)
                    .map_err(|_| bad("`close_session` must be () -> ()"))?,
            ),
            None => None,
        };
        let mut session = Session {
            store,
            memory,
            alloc,
            invoke,
            close,
            state: SessionState::Open,
            last_fuel: 0,
        };
        if let Some(open) = open {
            session.reset_call()?;
            let status = open
                .call(&mut session.store, ())
                .map_err(|e| map_call_error(&mut session.store, "open_session", e))?;
            session.finish(status)?;
        }
        Ok(session)
    }

    /// The TA this session talks to.
    pub fn ta(&self) -> &TaId {
        &self.store.data().ta
    }

    /// Lines the TA logged (`otrp.log`) in this session.
    pub fn logs(&self) -> &[String] {
        &self.store.data().logs
    }

    /// Fuel the last entry-point call consumed.
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel
    }

    fn reset_call(&mut self) -> Result<(), TaError> {
        let fuel = self.store.data().rt.config.fuel_per_call;
        self.store.data_mut().output = None;
        self.store.data_mut().platform_error = None;
        self.store
            .set_fuel(fuel)
            .map_err(|e| map_call_error(&mut self.store, "invoke", e))
    }

    fn usable(&self) -> Result<(), TaError> {
        match self.state {
            SessionState::Open => Ok(()),
            SessionState::Closed => Err(TaError::SessionUnusable {
                ta: self.ta().to_string(),
                state: "closed",
            }),
            SessionState::Dead => Err(TaError::SessionUnusable {
                ta: self.ta().to_string(),
                state: "dead",
            }),
        }
    }

    /// Turns a status and the output the TA set into the result.
    fn finish(&mut self, status: i32) -> Result<Vec<u8>, TaError> {
        let fuel = self.store.data().rt.config.fuel_per_call;
        self.last_fuel = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let out = self.store.data_mut().output.take().unwrap_or_default();
        if status == 0 {
            Ok(out)
        } else {
            Err(TaError::Ta {
                ta: self.ta().to_string(),
                code: u32::from_ne_bytes(status.to_ne_bytes()),
                message: (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned()),
            })
        }
    }

    /// Runs command `cmd` of the TA on `input` and returns its output
    /// (`TEEC_InvokeCommand`). A TA error status comes back as [`TaError::Ta`].
    pub fn invoke(&mut self, cmd: u32, input: &[u8]) -> Result<Vec<u8>, TaError> {
        self.usable()?;
        let max = self.store.data().rt.config.max_io_bytes;
        let len = i32::try_from(input.len())
            .ok()
            .filter(|_| input.len() <= max)
            .ok_or_else(|| TaError::InputTooLarge {
                ta: self.ta().to_string(),
                len: input.len(),
                max,
            })?;
        self.reset_call()?;
        let result = self.call_invoke(cmd, input, len);
        if matches!(
            result,
            Err(TaError::Trap { .. }
                | TaError::OutOfFuel { .. }
                | TaError::MemoryLimit { .. }
                | TaError::Platform { .. })
        ) {
            self.state = SessionState::Dead;
        }
        result
    }

    fn call_invoke(&mut self, cmd: u32, input: &[u8], len: i32) -> Result<Vec<u8>, TaError> {
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| map_call_error(&mut self.store, "alloc", e))?;
        let offset = u32::from_ne_bytes(ptr.to_ne_bytes()) as usize;
        self.memory
            .write(&mut self.store, offset, input)
            .map_err(|_| TaError::Trap {
                ta: self.store.data().ta.to_string(),
                entry: "alloc",
                reason: "alloc returned a buffer outside memory".into(),
            })?;
        let cmd = i32::from_ne_bytes(cmd.to_ne_bytes());
        let status = self
            .invoke
            .call(&mut self.store, (cmd, ptr, len))
            .map_err(|e| map_call_error(&mut self.store, "invoke", e))?;
        self.finish(status)
    }

    /// Calls the TA's `close_session` export (if any) and ends the session
    /// (`TEEC_CloseSession`).
    pub fn close(mut self) -> Result<(), TaError> {
        self.usable()?;
        self.state = SessionState::Closed;
        if let Some(close) = self.close {
            self.reset_call()?;
            close
                .call(&mut self.store, ())
                .map_err(|e| map_call_error(&mut self.store, "close_session", e))?;
        }
        Ok(())
    }
}
