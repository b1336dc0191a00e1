//! Safe wrappers over the host API (wasm32 only).

use alloc::vec;
use alloc::vec::Vec;

use crate::{abi, Error};

const NOT_FOUND: i32 = -1;
const TOO_LARGE: i32 = -2;
const INVALID: i32 = -3;

/// Calls an "out" host function with a growing buffer until the value fits.
fn read_out(mut call: impl FnMut(&mut [u8]) -> i32) -> Result<Option<Vec<u8>>, Error> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = call(&mut buf);
        if n == NOT_FOUND {
            return Ok(None);
        }
        let len = usize::try_from(n)
            .map_err(|_| Error::GENERIC.with_message("host returned an error code"))?;
        if len <= buf.len() {
            buf.truncate(len);
            return Ok(Some(buf));
        }
        buf.resize(len, 0);
    }
}

/// Sealed storage private to this TA (the runtime namespaces it by TA id; no other TA
/// can read or write it). Keys are at most 256 bytes.
pub mod storage {
    use super::*;

    /// Reads the value stored under `key`, `None` if there is none.
    pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        read_out(|out| abi::storage_get(key, out))
    }

    /// Stores `value` under `key` (durable and atomic when this returns).
    pub fn put(key: &[u8], value: &[u8]) -> Result<(), Error> {
        match abi::storage_put(key, value) {
            0 => Ok(()),
            TOO_LARGE => Err(Error::STORAGE_NO_SPACE.with_message("value too large")),
            INVALID => Err(Error::BAD_PARAMETERS.with_message("invalid storage key")),
            _ => Err(Error::GENERIC.with_message("storage_put failed")),
        }
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(key: &[u8]) -> Result<bool, Error> {
        match abi::storage_delete(key) {
            0 => Ok(true),
            NOT_FOUND => Ok(false),
            INVALID => Err(Error::BAD_PARAMETERS.with_message("invalid storage key")),
            _ => Err(Error::GENERIC.with_message("storage_delete failed")),
        }
    }
}

/// Crypto services: the TA's own P-256 key (generated and kept by the TEE), SHA-256 and
/// the TEE's RNG.
pub mod crypto {
    use super::*;

    /// The TA's public key: the 65-byte SEC1 uncompressed P-256 point.
    pub fn public_key() -> Result<Vec<u8>, Error> {
        read_out(abi::public_key)?.ok_or(Error::ITEM_NOT_FOUND.with_message("no TA key"))
    }

    /// Signs `msg` with the TA's key: ECDSA P-256 over SHA-256(`msg`), 64 bytes `r || s`.
    pub fn sign(msg: &[u8]) -> Result<Vec<u8>, Error> {
        read_out(|out| abi::sign(msg, out))?.ok_or(Error::ITEM_NOT_FOUND.with_message("no TA key"))
    }

    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        abi::sha256(data)
    }

    /// Fills `buf` with random bytes from the TEE's RNG.
    pub fn random(buf: &mut [u8]) {
        abi::random(buf)
    }
}

/// Milliseconds since the Unix epoch, from the TEE's clock.
pub fn time_ms() -> u64 {
    u64::try_from(abi::time_ms()).unwrap_or(0)
}

/// Writes a line to the TA's log (kept by the runtime per session).
pub fn log(msg: &str) {
    abi::log(msg)
}

/// The personalization data installed with this TA (e.g. through a SUIT dependency),
/// `None` if there is none.
pub fn personalization() -> Result<Option<Vec<u8>>, Error> {
    read_out(abi::personalization)
}
