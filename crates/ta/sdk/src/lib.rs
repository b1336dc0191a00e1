//! SDK for OpenTrust Trusted Applications.
//!
//! A TA is a WebAssembly module (`wasm32-unknown-unknown`, `cdylib`) run by the TEE's
//! `otrp-ta-runtime`. With this crate a TA author writes safe Rust only:
//!
//! ```ignore
//! #![no_std]
//! extern crate alloc;
//! use alloc::vec::Vec;
//! use otrp_ta_sdk::{crypto, export_ta, Error, TrustedApp};
//!
//! struct Signer;
//! impl TrustedApp for Signer {
//!     fn invoke(cmd: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
//!         match cmd {
//!             1 => crypto::public_key(),
//!             2 => crypto::sign(input),
//!             _ => Err(Error::NOT_SUPPORTED),
//!         }
//!     }
//! }
//! export_ta!(Signer);
//! ```
//!
//! On `wasm32` the crate also provides the global allocator (dlmalloc) and a panic
//! handler that traps, so a TA needs nothing else.
//!
//! # The ABI (what `export_ta!` generates, and what the runtime expects)
//!
//! Exports of the module:
//!
//! | export | signature | meaning |
//! |---|---|---|
//! | `memory` | memory | the linear memory |
//! | `alloc` | `(len: i32) -> i32` | allocate `len` bytes for the input, return the pointer |
//! | `open_session` | `() -> i32` | status (0 = success) |
//! | `invoke` | `(cmd: i32, ptr: i32, len: i32) -> i32` | run a command on the input at `ptr..ptr+len` (ownership passes to the TA); status |
//! | `close_session` | `() -> ()` | session end |
//!
//! A status is 0 for success or a `u32` error code (GlobalPlatform `TEE_ERROR_*` values,
//! see [`Error`]) bit-cast to `i32`. Output bytes (the result on success, a UTF-8 message
//! on error) are handed over by calling the host import `otrp.set_output(ptr, len)`
//! before returning; the host copies them.
//!
//! Imports, module `otrp` (all pointers and lengths `i32`; "out" functions copy at most
//! `cap` bytes and return the full length, so a caller can retry with a larger buffer;
//! `-1` means not found):
//!
//! | import | signature |
//! |---|---|
//! | `set_output` | `(ptr, len)` |
//! | `storage_get` | `(key_ptr, key_len, out_ptr, out_cap) -> i32` (length or -1) |
//! | `storage_put` | `(key_ptr, key_len, val_ptr, val_len) -> i32` (0, or -2 too large, -3 invalid key) |
//! | `storage_delete` | `(key_ptr, key_len) -> i32` (0 deleted, -1 not found) |
//! | `personalization` | `(out_ptr, out_cap) -> i32` (length or -1) |
//! | `public_key` | `(out_ptr, out_cap) -> i32` (65: SEC1 uncompressed P-256 point) |
//! | `sign` | `(msg_ptr, msg_len, out_ptr, out_cap) -> i32` (64: ECDSA P-256 over SHA-256(msg), `r \|\| s`) |
//! | `random` | `(out_ptr, len)` |
//! | `time_ms` | `() -> i64` (milliseconds since the Unix epoch, from the TEE clock) |
//! | `sha256` | `(ptr, len, out_ptr)` (writes 32 bytes) |
//! | `log` | `(ptr, len)` (UTF-8 text) |
//!
//! A host call with an out-of-bounds pointer traps the TA.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
pub use api::{crypto, log, personalization, storage, time_ms};

/// A TA error: a GlobalPlatform-style `u32` code and an optional message that the
/// runtime reports to the Client App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The code (`TEE_ERROR_*` values for the predefined ones; a TA may define others).
    pub code: u32,
    /// Human-readable detail, passed to the client.
    pub message: Option<String>,
}

impl Error {
    /// `TEE_ERROR_GENERIC`.
    pub const GENERIC: Error = Error::code(0xFFFF_0000);
    /// `TEE_ERROR_ACCESS_DENIED`.
    pub const ACCESS_DENIED: Error = Error::code(0xFFFF_0001);
    /// `TEE_ERROR_BAD_FORMAT`.
    pub const BAD_FORMAT: Error = Error::code(0xFFFF_0005);
    /// `TEE_ERROR_BAD_PARAMETERS`.
    pub const BAD_PARAMETERS: Error = Error::code(0xFFFF_0006);
    /// `TEE_ERROR_BAD_STATE`.
    pub const BAD_STATE: Error = Error::code(0xFFFF_0007);
    /// `TEE_ERROR_ITEM_NOT_FOUND`.
    pub const ITEM_NOT_FOUND: Error = Error::code(0xFFFF_0008);
    /// `TEE_ERROR_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: Error = Error::code(0xFFFF_000A);
    /// `TEE_ERROR_OUT_OF_MEMORY`.
    pub const OUT_OF_MEMORY: Error = Error::code(0xFFFF_000C);
    /// `TEE_ERROR_SECURITY`.
    pub const SECURITY: Error = Error::code(0xFFFF_000F);
    /// `TEE_ERROR_SHORT_BUFFER`.
    pub const SHORT_BUFFER: Error = Error::code(0xFFFF_0010);
    /// `TEE_ERROR_STORAGE_NO_SPACE`.
    pub const STORAGE_NO_SPACE: Error = Error::code(0xFFFF_3041);

    /// An error with `code` and no message.
    pub const fn code(code: u32) -> Error {
        Error {
            code,
            message: None,
        }
    }

    /// The same error with a message attached.
    pub fn with_message(mut self, message: impl Into<String>) -> Error {
        self.message = Some(message.into());
        self
    }
}

/// The entry points of a TA. Implement it on a unit type and name the type in
/// [`export_ta!`]; state that must outlive a session goes in [`storage`] (wasm32 only).
pub trait TrustedApp {
    /// Called once when a client opens a session; an error refuses the session.
    fn open_session() -> Result<(), Error> {
        Ok(())
    }

    /// Runs command `cmd` on `input` and returns the output bytes.
    fn invoke(cmd: u32, input: &[u8]) -> Result<Vec<u8>, Error>;

    /// Called once when the client closes the session.
    fn close_session() {}
}

/// Exports a [`TrustedApp`] implementation as the module's `open_session`, `invoke`,
/// `close_session` and `alloc` functions (see the ABI in the crate docs).
#[macro_export]
macro_rules! export_ta {
    ($ta:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[allow(unsafe_code)]
            #[export_name = "alloc"]
            extern "C" fn __otrp_alloc(len: i32) -> i32 {
                $crate::__private::alloc_input(len)
            }

            #[allow(unsafe_code)]
            #[export_name = "open_session"]
            extern "C" fn __otrp_open_session() -> i32 {
                $crate::__private::status(
                    <$ta as $crate::TrustedApp>::open_session()
                        .map(|()| $crate::__private::Vec::new()),
                )
            }

            #[allow(unsafe_code)]
            #[export_name = "invoke"]
            extern "C" fn __otrp_invoke(cmd: i32, ptr: i32, len: i32) -> i32 {
                let input = $crate::__private::take_input(ptr, len);
                $crate::__private::status(<$ta as $crate::TrustedApp>::invoke(cmd as u32, &input))
            }

            #[allow(unsafe_code)]
            #[export_name = "close_session"]
            extern "C" fn __otrp_close_session() {
                <$ta as $crate::TrustedApp>::close_session()
            }
        };
    };
}

/// Support code for [`export_ta!`]; not part of the public API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use alloc::vec::Vec;

    use crate::Error;

    /// Allocates the input buffer of the next `invoke`.
    pub fn alloc_input(len: i32) -> i32 {
        crate::abi::alloc_input(len)
    }

    /// Takes ownership of the buffer `alloc_input` returned.
    pub fn take_input(ptr: i32, len: i32) -> alloc::boxed::Box<[u8]> {
        crate::abi::take_input(ptr, len)
    }

    /// Hands the output (or the error message) to the host and returns the status.
    pub fn status(result: Result<Vec<u8>, Error>) -> i32 {
        match result {
            Ok(out) => {
                crate::abi::set_output(&out);
                0
            }
            Err(e) => {
                if let Some(m) = &e.message {
                    crate::abi::set_output(m.as_bytes());
                }
                // bit-cast: error codes use the full u32 range
                i32::from_ne_bytes(e.code.to_ne_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_and_messages() {
        assert_eq!(Error::BAD_PARAMETERS.code, 0xFFFF_0006);
        let e = Error::ACCESS_DENIED.with_message("locked");
        assert_eq!(e.code, 0xFFFF_0001);
        assert_eq!(e.message.as_deref(), Some("locked"));
        assert_ne!(Error::GENERIC, Error::SECURITY);
    }
}
