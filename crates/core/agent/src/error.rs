//! Errors of the Agent's helpers (SD records, evidence, configuration). Protocol failures
//! are answered with TEEP Error messages, not Rust errors.

use alloc::string::String;

/// An Agent helper error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// A record or payload failed to decode or is inconsistent.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Encoding or signing failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] otrp_suit_processor::StoreError),
}
