//! The simulated TEE platform (secure world) of OpenTrust: what the Agent and the TA
//! runtime stand on.
//!
//! * **Sealed storage**: named objects in a directory of the rich OS, each sealed with
//!   AES-256-GCM under a key derived by HKDF-SHA256 from the device storage key (the
//!   simulated eFuse key) with the object name as AAD. Edits, truncations and swaps made
//!   from the rich OS surface as [`PlatformError::Tampered`].
//! * **Crash-safe transactions**: [`Platform::transaction`] commits all of its changes or
//!   none (write-ahead journal, fsync, atomic rename, directory fsync; recovery at
//!   [`Platform::open`]). Failpoints: set `OTRP_TEE_CRASH_AT=<step>` (or
//!   [`PlatformConfig::crash_at`]) to `abort()` the process at a named step; turn on
//!   [`PlatformConfig::trace_failpoints`] to learn the steps of an operation.
//! * **Monotonic counters** for anti-rollback ([`Platform::advance_counter`],
//!   [`Transaction::advance_counter`]), sealed and updated inside transactions.
//! * **Key store**: keys generated inside ([`Platform::generate_key`]), used by name
//!   ([`Platform::sign`]); only public keys leave ([`Platform::public_key`]).
//! * **TFW measurement**: SHA-256 of the TEE image given at boot ([`Platform::measurement`]).
//!
//! Name spaces: user objects, counters and keys have separate name spaces (stored as
//! `o/<name>`, `c/<name>`, `k/<name>`); the TA runtime puts each TA under `ta/<id>/…`.
//!
//! ```no_run
//! use otrp_crypto::rand_core::CryptoRngCore;
//! use otrp_tee_platform::{Platform, PlatformConfig, PlatformError};
//!
//! fn boot(rng: Box<dyn CryptoRngCore + Send>) -> Result<Platform, PlatformError> {
//!     let mut p = Platform::open(PlatformConfig::new("/tmp/dev0", [0x42; 32], b"tee image"), rng)?;
//!     p.transaction(|tx| {
//!         tx.put("a", b"1")?;
//!         tx.put("b", b"2")?;
//!         tx.advance_counter("seq", 3)
//!     })?;
//!     assert_eq!(p.get("a")?.as_deref(), Some(&b"1"[..]));
//!     Ok(p)
//! }
//! ```

mod error;
mod journal;
mod platform;
mod seal;

pub use error::PlatformError;
pub use otrp_crypto::{KeyKind, PublicKey};
pub use platform::{
    Platform, PlatformConfig, Transaction, CRASH_ENV, MAX_NAME_LEN, MAX_OBJECT_LEN,
};
