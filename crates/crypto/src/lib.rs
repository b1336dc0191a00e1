//! Crypto provider trait for OpenTrust, key types and formats, thumbprints.
//!
//! * [`CryptoProvider`]: the primitives OpenTrust uses (SHA-256, ES256/EdDSA/RS256
//!   sign+verify, ECDH P-256, HKDF/HMAC-SHA-256, AES-KW, AES-GCM, AES-CTR), object safe.
//! * [`RustCryptoProvider`]: pure Rust, `no_std` + `alloc`, deterministic ECDSA (RFC 6979).
//! * `RingProvider` (feature `ring`, std): ring for SHA-256, signatures and AES-GCM.
//! * [`default_provider`]: ring when the feature is on, else RustCrypto.
//! * [`PrivateKey`] / [`PublicKey`]: P-256, Ed25519, RSA; PEM (PKCS#8, SEC1, PKCS#1, SPKI).
//! * [`thumbprint::cose_key_thumbprint`] (RFC 9679, the COSE `kid`) and [`jwk`]
//!   (RFC 7517 import/export, RFC 7638 thumbprint).
//!
//! Randomness only enters through `&mut impl CryptoRngCore` arguments
//! ([`PrivateKey::generate`]); the one exception is `RingProvider`, whose ECDSA and RSA
//! signing draw from ring's `SystemRandom` because ring takes no caller RNG.
//!
//! Deviations from the contract in `notes/crypto-api.md`: none in names or signatures.
//! Additions: [`SigAlg::from_jose`], [`PublicKey::components`] / [`PublicComponents`],
//! constructors from raw components (`p256_from_coordinates`, `ed25519_from_bytes`,
//! `rsa_from_components`, `p256_from_scalar`, `ed25519_from_seed`), DER helpers,
//! `to_sec1_pem` / `to_pkcs1_pem`, `key_type()`, and the COSE id constants.
//!
//! RSA uses the `rsa` 0.9 crate, which is not constant-time (RUSTSEC-2023-0071,
//! "Marvin"); OpenTrust only signs and verifies with RSA (OTrP RS256), it never decrypts.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod alg;
#[cfg(feature = "std")]
mod batch;
mod error;
pub mod jwk;
mod keys;
mod provider;
pub mod report_key;
#[cfg(feature = "ring")]
mod ring_provider;
pub mod thumbprint;

pub use alg::{
    AlgIdGeneration, SigAlg, COSE_ED25519, COSE_EDDSA, COSE_ES256, COSE_ESP256, COSE_RS256,
};
#[cfg(feature = "std")]
pub use batch::ed25519_verify_batch;
pub use error::CryptoError;
pub use keys::{KeyKind, PrivateKey, PublicComponents, PublicKey};
pub use provider::{CryptoProvider, RustCryptoProvider};
#[cfg(feature = "ring")]
pub use ring_provider::RingProvider;

// Re-exported so callers name the same crate versions as the key types.
pub use {ed25519_dalek, p256, rand_core, rsa, zeroize};

static RUST_CRYPTO: RustCryptoProvider = RustCryptoProvider;
#[cfg(feature = "ring")]
static RING: RingProvider = RingProvider;

/// The provider to use when the caller has no preference: `RingProvider` when the
/// `ring` feature is on, else `RustCryptoProvider`.
pub fn default_provider() -> &'static dyn CryptoProvider {
    #[cfg(feature = "ring")]
    {
        &RING
    }
    #[cfg(not(feature = "ring"))]
    {
        &RUST_CRYPTO
    }
}

/// The pure-Rust provider as a `'static` trait object (always available).
pub fn rust_crypto_provider() -> &'static dyn CryptoProvider {
    &RUST_CRYPTO
}
