//! The runtime's error type.

use otrp_tee_platform::PlatformError;

/// What went wrong installing, opening or invoking a TA. Every variant names the TA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaError {
    /// The TA id is not acceptable.
    #[error("invalid TA id `{id}`: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No TA of that id is installed.
    #[error("TA `{ta}` is not installed")]
    NotInstalled {
        /// The TA id.
        ta: String,
    },
    /// The module is not valid WebAssembly or does not follow the TA ABI.
    #[error("TA `{ta}`: module rejected: {reason}")]
    InvalidModule {
        /// The TA id.
        ta: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TA used up its fuel budget for one call (e.g. an endless loop).
    #[error("TA `{ta}` ran out of fuel in `{entry}` (budget {fuel} per call)")]
    OutOfFuel {
        /// The TA id.
        ta: String,
        /// The entry point that was running.
        entry: &'static str,
        /// The per-call budget.
        fuel: u64,
    },
    /// The TA tried to grow its memory past the limit.
    #[error("TA `{ta}` hit the memory limit of {limit} bytes in `{entry}`")]
    MemoryLimit {
        /// The TA id.
        ta: String,
        /// The entry point that was running.
        entry: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The TA trapped (panic, `unreachable`, bad pointer passed to the host, ...).
    #[error("TA `{ta}` trapped in `{entry}`: {reason}")]
    Trap {
        /// The TA id.
        ta: String,
        /// The entry point that was running.
        entry: &'static str,
        /// The trap.
        reason: String,
    },
    /// The TA returned an error status.
    #[error("TA `{ta}` returned error {code:#010x}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Ta {
        /// The TA id.
        ta: String,
        /// The TA's error code (GlobalPlatform `TEE_ERROR_*` values for the common ones).
        code: u32,
        /// The TA's message, if it gave one.
        message: Option<String>,
    },
    /// The input of an invoke is over the runtime's limit.
    #[error("TA `{ta}`: input of {len} bytes is over the {max}-byte limit")]
    InputTooLarge {
        /// The TA id.
        ta: String,
        /// The input size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The session is closed, or died after a trap, fuel or memory error.
    #[error("TA `{ta}`: session is {state}")]
    SessionUnusable {
        /// The TA id.
        ta: String,
        /// `closed` or `dead`.
        state: &'static str,
    },
    /// The platform (sealed storage, key store) failed, e.g. `Tampered`.
    #[error("TA `{ta}`: platform error: {source}")]
    Platform {
        /// The TA id.
        ta: String,
        /// The platform error.
        #[source]
        source: PlatformError,
    },
}

impl TaError {
    /// The GlobalPlatform TEE Client API result code closest to this error.
    pub fn gp_code(&self) -> u32 {
        match self {
            TaError::Ta { code, .. } => *code,
            TaError::InvalidId { .. } | TaError::InputTooLarge { .. } => 0xFFFF_0006, // BAD_PARAMETERS
            TaError::NotInstalled { .. } => 0xFFFF_0008, // ITEM_NOT_FOUND
            TaError::InvalidModule { .. } => 0xFFFF_0005, // BAD_FORMAT
            TaError::MemoryLimit { .. } => 0xFFFF_000C,  // OUT_OF_MEMORY
            TaError::OutOfFuel { .. } | TaError::Trap { .. } => 0xFFFF_3024, // TARGET_DEAD
            TaError::SessionUnusable { .. } => 0xFFFF_0007, // BAD_STATE
            TaError::Platform { .. } => 0xFFFF_000F,     // SECURITY
        }
    }
}
