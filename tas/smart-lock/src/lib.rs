//! Smart-lock credential checker TA: a biometric template hash and a PIN, checked with a
//! retry counter kept in sealed storage (locks after 3 failures, reset on success).
//!
//! | cmd | input | output |
//! |---|---|---|
//! | 1 provision | template hash (32) \|\| PIN (4..=16 bytes) | empty; `ACCESS_DENIED` if already provisioned |
//! | 2 check | template hash (32) \|\| PIN | `[1]` granted, or `[0, tries_left]`; `ACCESS_DENIED` "locked" once no tries are left |
//! | 3 tries | - | `[tries_left]` |
//!
//! The PIN is stored as SHA-256(salt \|\| PIN) with a random salt; comparisons do not
//! stop at the first differing byte.
#![no_std]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use otrp_ta_sdk::{crypto, export_ta, log, storage, Error, TrustedApp};

const CMD_PROVISION: u32 = 1;
const CMD_CHECK: u32 = 2;
const CMD_TRIES: u32 = 3;
const MAX_TRIES: u8 = 3;
const CRED_KEY: &[u8] = b"credential";
const TRIES_KEY: &[u8] = b"tries-left";
const HASH_LEN: usize = 32;
const SALT_LEN: usize = 16;

struct SmartLock;

/// Stored credential: template hash, salt, SHA-256(salt || PIN).
struct Credential {
    template: [u8; HASH_LEN],
    salt: [u8; SALT_LEN],
    pin_hash: [u8; HASH_LEN],
}

impl Credential {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HASH_LEN * 2 + SALT_LEN);
        v.extend_from_slice(&self.template);
        v.extend_from_slice(&self.salt);
        v.extend_from_slice(&self.pin_hash);
        v
    }

    fn decode(v: &[u8]) -> Result<Credential, Error> {
        let bad = || Error::BAD_STATE.with_message("corrupt credential");
        let (template, rest) = v.split_at_checked(HASH_LEN).ok_or_else(bad)?;
        let (salt, pin_hash) = rest.split_at_checked(SALT_LEN).ok_or_else(bad)?;
        Ok(Credential {
            template: template.try_into().map_err(|_| bad())?,
            salt: salt.try_into().map_err(|_| bad())?,
            pin_hash: pin_hash.try_into().map_err(|_| bad())?,
        })
    }
}

fn pin_hash(salt: &[u8], pin: &[u8]) -> [u8; HASH_LEN] {
    let mut m = vec![0u8; 0];
    m.extend_from_slice(salt);
    m.extend_from_slice(pin);
    crypto::sha256(&m)
}

/// Equality without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn split_request(input: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (template, pin) = input
        .split_at_checked(HASH_LEN)
        .ok_or_else(|| Error::BAD_PARAMETERS.with_message("need template hash (32) || PIN"))?;
    if !(4..=16).contains(&pin.len()) {
        return Err(Error::BAD_PARAMETERS.with_message("PIN must be 4..=16 bytes"));
    }
    Ok((template, pin))
}

fn tries_left() -> Result<u8, Error> {
    match storage::get(TRIES_KEY)?.as_deref() {
        None => Ok(MAX_TRIES),
        Some([n]) => Ok(*n),
        Some(_) => Err(Error::BAD_STATE.with_message("corrupt retry counter")),
    }
}

impl TrustedApp for SmartLock {
    fn invoke(cmd: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        match cmd {
            CMD_PROVISION => {
                if storage::get(CRED_KEY)?.is_some() {
                    return Err(Error::ACCESS_DENIED.with_message("already provisioned"));
                }
                let (template, pin) = split_request(input)?;
                let mut salt = [0u8; SALT_LEN];
                crypto::random(&mut salt);
                let cred = Credential {
                    template: template
                        .try_into()
                        .map_err(|_| Error::BAD_PARAMETERS.with_message("template hash"))?,
                    salt,
                    pin_hash: pin_hash(&salt, pin),
                };
                storage::put(CRED_KEY, &cred.encode())?;
                storage::put(TRIES_KEY, &[MAX_TRIES])?;
                log("smart-lock: provisioned");
                Ok(Vec::new())
            }
            CMD_CHECK => {
                let cred = Credential::decode(
                    &storage::get(CRED_KEY)?
                        .ok_or_else(|| Error::BAD_STATE.with_message("not provisioned"))?,
                )?;
                let left = tries_left()?;
                if left == 0 {
                    return Err(Error::ACCESS_DENIED.with_message("locked"));
                }
                let (template, pin) = split_request(input)?;
                let template_ok = ct_eq(template, &cred.template);
                let pin_ok = ct_eq(&pin_hash(&cred.salt, pin), &cred.pin_hash);
                if template_ok & pin_ok {
                    storage::put(TRIES_KEY, &[MAX_TRIES])?;
                    Ok(vec![1])
                } else {
                    let left = left - 1;
                    // persisted before answering: a reset of the device cannot undo it
                    storage::put(TRIES_KEY, &[left])?;
                    log("smart-lock: credential refused");
                    Ok(vec![0, left])
                }
            }
            CMD_TRIES => Ok(vec![tries_left()?]),
            _ => Err(Error::NOT_SUPPORTED.with_message("unknown command")),
        }
    }
}

export_ta!(SmartLock);
