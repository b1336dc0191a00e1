//! Shared helpers of the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otrp_pki::{InitOptions, KeyAlg, Pki};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A deterministic RNG.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A fixed time: 2026-01-01T00:00:00Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A PKI of `alg` made at `now`.
pub fn pki(alg: KeyAlg, seed: u64, now: SystemTime) -> Pki {
    let opts = InitOptions {
        alg,
        ..InitOptions::default()
    };
    Pki::init(&opts, &mut rng(seed), now).unwrap()
}
