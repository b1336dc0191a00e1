//! Errors of the TEE glue and of the local protocol.

use std::path::PathBuf;

/// What went wrong booting or driving the TEE, or talking to it.
#[derive(Debug, thiserror::Error)]
pub enum TeeError {
    /// The device directory or its sealed state could not be read.
    #[error("device {dir}: {source}")]
    Device {
        /// The device directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: otrp_pki::PkiError,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The simulated platform failed (tampered storage, locked directory …).
    #[error("platform: {0}")]
    Platform(#[from] otrp_tee_platform::PlatformError),
    /// The Agent's store failed.
    #[error("{0}")]
    Store(#[from] otrp_suit_processor::StoreError),
    /// A TA could not be opened or invoked.
    #[error("{0}")]
    Ta(#[from] otrp_ta_runtime::TaError),
    /// A TAM certificate was refused.
    #[error("TAM certificate {what}: {detail}")]
    TamCert {
        /// Which certificate.
        what: String,
        /// Why.
        detail: String,
    },
    /// The device identity is inconsistent or unusable.
    #[error("device identity: {0}")]
    Identity(String),
    /// No TA, or more than one, matches the name a Client App gave.
    #[error("TA `{name}`: {reason}")]
    UnknownTa {
        /// The name given.
        name: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// No open session has that handle.
    #[error("no open session {0}")]
    NoSession(u64),
    /// A local-protocol frame was malformed or too large.
    #[error("local protocol: {0}")]
    Protocol(String),
    /// The TEE answered with an error.
    #[error("TEE error {code:#010x}: {message}")]
    Remote {
        /// GlobalPlatform-style result code.
        code: u32,
        /// The TEE's message.
        message: String,
    },
    /// The connection to the TEE failed.
    #[error("TEE connection: {0}")]
    Connection(#[source] std::io::Error),
}

/// GlobalPlatform TEE Client API codes used on the local protocol.
pub mod gp {
    /// TEEC_ERROR_GENERIC.
    pub const GENERIC: u32 = 0xFFFF_0000;
    /// TEEC_ERROR_BAD_PARAMETERS.
    pub const BAD_PARAMETERS: u32 = 0xFFFF_0006;
    /// TEEC_ERROR_ITEM_NOT_FOUND.
    pub const ITEM_NOT_FOUND: u32 = 0xFFFF_0008;
    /// TEEC_ERROR_BAD_STATE.
    pub const BAD_STATE: u32 = 0xFFFF_0007;
    /// TEEC_ERROR_BAD_FORMAT.
    pub const BAD_FORMAT: u32 = 0xFFFF_0005;
    /// TEEC_ERROR_SECURITY.
    pub const SECURITY: u32 = 0xFFFF_000F;
}

impl TeeError {
    /// The GlobalPlatform-style code sent to a local client for this error.
    pub fn code(&self) -> u32 {
        match self {
            TeeError::Ta(e) => e.gp_code(),
            TeeError::UnknownTa { .. } => gp::ITEM_NOT_FOUND,
            TeeError::NoSession(_) => gp::BAD_STATE,
            TeeError::Protocol(_) => gp::BAD_FORMAT,
            TeeError::Platform(_) | TeeError::Store(_) => gp::SECURITY,
            TeeError::Remote { code, .. } => *code,
            _ => gp::GENERIC,
        }
    }
}
