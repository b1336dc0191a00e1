//! The TA runtime of OpenTrust: Trusted Applications are WebAssembly modules run by
//! `wasmi` inside the simulated TEE (`otrp-tee-platform`).
//!
//! * **Limits**: a fuel budget per entry-point call ([`TaError::OutOfFuel`]), a linear
//!   memory limit ([`TaError::MemoryLimit`]; growing past it traps), module, I/O, key and
//!   value size limits ([`RuntimeConfig`]). Any other trap is [`TaError::Trap`]. A trap
//!   kills the session; the TA's sealed storage is unaffected (every write is atomic).
//! * **Host API** (import module `otrp`): sealed per-TA storage (namespaced by TA id in the
//!   platform store: one TA cannot name another's objects), signing with a per-TA P-256
//!   key generated in the platform key store at install (never exported; the public key
//!   is), random bytes (injected RNG), time (injected [`Clock`]), SHA-256, log, and the
//!   TA's personalization data.
//! * **Entry points and ABI**: documented in the `otrp-ta-sdk` crate, whose
//!   `export_ta!` macro generates them: exports `memory`, `alloc(len) -> ptr`,
//!   `invoke(cmd, ptr, len) -> status`, optional `open_session() -> status` and
//!   `close_session()`; output goes back through `otrp.set_output(ptr, len)`.
//! * **Client API** (GlobalPlatform TEE Client API in spirit): [`Session::open`] /
//!   [`TaRuntime::open_session`], [`Session::invoke`], [`Session::close`].
//! * **Lifecycle** for the Agent: [`TaRuntime::install`] (or [`TaRuntime::validate`] +
//!   [`TaRuntime::stage_install`] inside the Agent's own platform transaction),
//!   [`TaRuntime::set_personalization`], [`TaRuntime::uninstall`],
//!   [`TaRuntime::ta_public_key`], [`TaRuntime::ta_measurement`].
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use otrp_crypto::rand_core::CryptoRngCore;
//! use otrp_tee_platform::Platform;
//! use otrp_ta_runtime::{RuntimeConfig, TaError, TaId, TaRuntime};
//!
//! fn sign_payment(
//!     platform: Platform,
//!     rng: Box<dyn CryptoRngCore + Send>,
//!     wasm: &[u8],
//! ) -> Result<Vec<u8>, TaError> {
//!     let clock = Box::new(|| 1_700_000_000_000u64);
//!     let rt = TaRuntime::new(Arc::new(Mutex::new(platform)), rng, clock, RuntimeConfig::default())?;
//!     let id = TaId::new("payment-signer")?;
//!     rt.install(&id, wasm)?;
//!     let mut session = rt.open_session(&id)?;
//!     let sig = session.invoke(2, b"pay 10 EUR to Bob")?;
//!     session.close()?;
//!     Ok(sig)
//! }
//! ```

mod error;
mod host;
mod runtime;

pub use error::TaError;
pub use runtime::{Clock, RuntimeConfig, Session, SharedPlatform, TaId, TaRuntime};

/// SEC1 uncompressed encoding (65 bytes) of a P-256 public key, the format the
/// `otrp.public_key` host function returns; `None` for other key types.
pub fn sec1_uncompressed(key: &otrp_crypto::PublicKey) -> Option<Vec<u8>> {
    host::sec1_uncompressed(key)
}
