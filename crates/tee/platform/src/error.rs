//! The platform's error type.

use std::path::PathBuf;

use otrp_crypto::CryptoError;

/// Everything that can go wrong in the simulated secure world; each variant names the
/// object, counter, key or file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// A sealed object (or the journal) failed authentication or was malformed: it was
    /// edited, truncated, or swapped with another object from the rich OS.
    #[error("sealed object `{name}` was tampered with outside the TEE ({reason})")]
    Tampered {
        /// Internal name of the object (`o/…` user object, `c/…` counter, `k/…` key,
        /// `journal` for the transaction journal).
        name: String,
        /// What check failed.
        reason: &'static str,
    },
    /// A file system operation failed.
    #[error("I/O error during {op} on {path}: {source}")]
    Io {
        /// What the platform was doing.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Platform` value) holds the store directory.
    #[error("store directory {path} is in use by another platform instance")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// An object, counter or key name is not acceptable.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A value is over the size limit of sealed objects.
    #[error("object `{name}` is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The object name.
        name: String,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A monotonic counter would have gone backwards.
    #[error("counter `{name}` cannot go back from {current} to {requested}")]
    CounterRollback {
        /// The counter name.
        name: String,
        /// Its current value.
        current: u64,
        /// The value asked for.
        requested: u64,
    },
    /// A monotonic counter is at `u64::MAX`.
    #[error("counter `{name}` overflowed")]
    CounterOverflow {
        /// The counter name.
        name: String,
    },
    /// No key of that name in the key store.
    #[error("key `{name}` not found")]
    KeyNotFound {
        /// The key name.
        name: String,
    },
    /// A key of that name already exists.
    #[error("key `{name}` already exists")]
    KeyExists {
        /// The key name.
        name: String,
    },
    /// A cryptographic operation failed.
    #[error("crypto operation `{op}` failed: {source}")]
    Crypto {
        /// What the platform was doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: CryptoError,
    },
    /// The transaction closure asked to abort; nothing was written.
    #[error("transaction aborted: {reason}")]
    Aborted {
        /// Why the caller aborted.
        reason: String,
    },
}

impl PlatformError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PlatformError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn tampered(name: &str, reason: &'static str) -> Self {
        PlatformError::Tampered {
            name: name.to_string(),
            reason,
        }
    }

    pub(crate) fn crypto(op: &'static str, source: CryptoError) -> Self {
        PlatformError::Crypto { op, source }
    }
}
