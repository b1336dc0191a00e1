//! Transmission parameters (RFC 7252 §4.8) and limits.

use crate::block::size_szx;
use std::time::Duration;

/// Transmission parameters and limits shared by client and server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Initial retransmission timeout (RFC 7252 `ACK_TIMEOUT`, default 2 s).
    pub ack_timeout: Duration,
    /// Random factor ≥ 1 applied to the initial timeout (`ACK_RANDOM_FACTOR`, default 1.5).
    pub ack_random_factor: f64,
    /// Retransmissions before giving up (`MAX_RETRANSMIT`, default 4).
    pub max_retransmit: u32,
    /// How long a client waits for a separate response after an empty ACK, and how long a
    /// server keeps its deduplication and block caches (`EXCHANGE_LIFETIME`, default 247 s).
    pub exchange_lifetime: Duration,
    /// Preferred block size exponent: block = `2^(szx+4)` bytes, 0–6 (16–1024 B);
    /// default 6. Bodies up to one block go in a single message.
    pub block_szx: u8,
    /// Content-format sent with TEEP payloads (default [`crate::TEEP_CBOR_CONTENT_FORMAT`]).
    pub content_format: u16,
    /// Largest request body the server reassembles, and largest response body the client
    /// accepts (default 16 MiB).
    pub max_body: usize,
    /// Largest number of Block1 uploads the server keeps in progress at once (default 1024).
    pub max_uploads: usize,
    /// Largest number of bytes the server holds for exchanges in progress (default 64
    /// MiB): Block1 bodies being reassembled, Block2 bodies being served, answers kept
    /// for retransmissions, requests with the application (each with room for its
    /// answer), and a fixed cost per entry. A request that would go beyond it gets 5.03
    /// Service Unavailable with Max-Age instead, and nothing is kept for it: over UDP any
    /// address can be forged, so no number of peers may make the server hold more.
    pub max_held_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            exchange_lifetime: Duration::from_secs(247),
            block_szx: 6,
            content_format: crate::TEEP_CBOR_CONTENT_FORMAT,
            max_body: 16 << 20,
            max_uploads: 1024,
            max_held_bytes: 64 << 20,
        }
    }
}

impl Config {
    /// The default configuration with a block size of `size` bytes (16, 32, …, 1024);
    /// `None` if `size` is not one of those.
    pub fn with_block_size(size: usize) -> Option<Config> {
        Some(Config {
            block_szx: size_szx(size)?,
            ..Config::default()
        })
    }

    /// Fast timers for tests on loopback: `ack_timeout` as given, 8 retransmissions,
    /// 30 s lifetime.
    pub fn fast(ack_timeout: Duration) -> Config {
        Config {
            ack_timeout,
            max_retransmit: 8,
            exchange_lifetime: Duration::from_secs(30),
            ..Config::default()
        }
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        crate::block::szx_size(self.block_szx)
    }

    /// Clamped block size exponent (0–6).
    pub(crate) fn szx(&self) -> u8 {
        self.block_szx.min(6)
    }

    /// The time a client waits in total before declaring a confirmable message lost
    /// (`MAX_TRANSMIT_WAIT`).
    pub fn max_transmit_wait(&self) -> Duration {
        let factor = self.ack_random_factor.max(1.0);
        let k = (1u64 << (self.max_retransmit.min(20) + 1)) - 1;
        self.ack_timeout.mul_f64(factor * k as f64)
    }
}
