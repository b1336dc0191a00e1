//! Payment signer TA: signs transaction bytes with its own P-256 key, which the TEE
//! generated at install and never lets out.
//!
//! | cmd | input | output |
//! |---|---|---|
//! | 1 | - | public key (65-byte SEC1 uncompressed point) |
//! | 2 | transaction bytes (1..=4096) | ECDSA P-256 signature over SHA-256(tx), 64 bytes `r \|\| s` |
//! | 3 | - | number of transactions signed so far (u64 big-endian) |
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use otrp_ta_sdk::{crypto, export_ta, log, storage, Error, TrustedApp};

const CMD_PUBLIC_KEY: u32 = 1;
const CMD_SIGN: u32 = 2;
const CMD_COUNT: u32 = 3;
const MAX_TX: usize = 4096;
const COUNT_KEY: &[u8] = b"signed-count";

struct PaymentSigner;

fn signed_count() -> Result<u64, Error> {
    match storage::get(COUNT_KEY)? {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::BAD_STATE.with_message("corrupt counter")),
    }
}

impl TrustedApp for PaymentSigner {
    fn invoke(cmd: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        match cmd {
            CMD_PUBLIC_KEY => crypto::public_key(),
            CMD_SIGN => {
                if input.is_empty() || input.len() > MAX_TX {
                    return Err(
                        Error::BAD_PARAMETERS.with_message("transaction must be 1..=4096 bytes")
                    );
                }
                let sig = crypto::sign(input)?;
                let n = signed_count()?.saturating_add(1);
                storage::put(COUNT_KEY, &n.to_be_bytes())?;
                log("payment-signer: signed a transaction");
                Ok(sig)
            }
            CMD_COUNT => Ok(signed_count()?.to_be_bytes().to_vec()),
            _ => Err(Error::NOT_SUPPORTED.with_message("unknown command")),
        }
    }
}

export_ta!(PaymentSigner);
