//! The `otrp` host API seen by TAs (see the ABI table in the crate docs).

use std::sync::Arc;

use otrp_crypto::p256::elliptic_curve::sec1::ToEncodedPoint;
use otrp_crypto::{rust_crypto_provider, PublicKey};
use otrp_tee_platform::PlatformError;
use wasmi::{Caller, Extern, Linker, Memory, StoreLimits, TrapCode};

use crate::runtime::{names, Inner};
use crate::TaId;

/// Return codes of the host functions.
pub(crate) const NOT_FOUND: i32 = -1;
pub(crate) const TOO_LARGE: i32 = -2;
pub(crate) const INVALID: i32 = -3;

/// Fuel charged per host call, and per byte moved across the boundary.
const CALL_FUEL: u64 = 1_000;
const SIGN_FUEL: u64 = 200_000;
const MAX_LOG_LINE: usize = 1024;
const MAX_RANDOM: usize = 64 * 1024;

/// The imports a TA may use (module `otrp`).
pub(crate) const HOST_FUNCTIONS: &[&str] = &[
    "set_output",
    "storage_get",
    "storage_put",
    "storage_delete",
    "personalization",
    "public_key",
    "sign",
    "random",
    "time_ms",
    "sha256",
    "log",
];

/// Per-session state behind a wasmi `Store`.
pub(crate) struct HostState {
    pub(crate) rt: Arc<Inner>,
    pub(crate) ta: TaId,
    pub(crate) limits: StoreLimits,
    pub(crate) output: Option<Vec<u8>>,
    pub(crate) logs: Vec<String>,
    /// A platform failure seen by a host function (reported instead of the trap).
    pub(crate) platform_error: Option<PlatformError>,
}

type Cx<'a> = Caller<'a, HostState>;
type HostResult<T> = Result<T, wasmi::Error>;

fn memory(caller: &Cx<'_>) -> HostResult<Memory> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmi::Error::new("TA exports no memory"))
}

fn charge(caller: &mut Cx<'_>, units: u64) -> HostResult<()> {
    let fuel = caller.get_fuel()?;
    if fuel < units {
        caller.set_fuel(0)?;
        return Err(TrapCode::OutOfFuel.into());
    }
    caller.set_fuel(fuel - units)?;
    Ok(())
}

fn len_of(len: i32, max: usize, what: &str) -> HostResult<usize> {
    let len =
        usize::try_from(len).map_err(|_| wasmi::Error::new(format!("negative {what} length")))?;
    if len > max {
        return Err(wasmi::Error::new(format!(
            "{what} of {len} bytes over the {max}-byte limit"
        )));
    }
    Ok(len)
}

fn offset(ptr: i32) -> usize {
    // wasm32 pointers are unsigned 32-bit offsets
    u32::from_ne_bytes(ptr.to_ne_bytes()) as usize
}

fn read(caller: &mut Cx<'_>, ptr: i32, len: i32, max: usize, what: &str) -> HostResult<Vec<u8>> {
    let len = len_of(len, max, what)?;
    charge(caller, CALL_FUEL + len as u64 / 8)?;
    let mut buf = vec![0u8; len];
    memory(caller)?
        .read(&*caller, offset(ptr), &mut buf)
        .map_err(|_| wasmi::Error::new(format!("{what}: pointer out of bounds")))?;
    Ok(buf)
}

fn write(caller: &mut Cx<'_>, ptr: i32, data: &[u8], what: &str) -> HostResult<()> {
    charge(caller, data.len() as u64 / 8)?;
    memory(caller)?
        .write(&mut *caller, offset(ptr), data)
        .map_err(|_| wasmi::Error::new(format!("{what}: pointer out of bounds")))
}

/// Copies `data` to `out` if it fits `cap`; returns the full length.
fn write_out(caller: &mut Cx<'_>, out: i32, cap: i32, data: &[u8], what: &str) -> HostResult<i32> {
    let cap = usize::try_from(cap).map_err(|_| wasmi::Error::new("negative capacity"))?;
    if data.len() <= cap {
        write(caller, out, data, what)?;
    }
    i32::try_from(data.len()).map_err(|_| wasmi::Error::new("value too large for the ABI"))
}

/// Records a platform failure and turns it into a trap.
fn platform_failure(caller: &mut Cx<'_>, e: PlatformError) -> wasmi::Error {
    let msg = format!("platform: {e}");
    caller.data_mut().platform_error = Some(e);
    wasmi::Error::new(msg)
}

fn storage_name(caller: &Cx<'_>, key: &[u8]) -> String {
    names::data(&caller.data().ta, key)
}

fn with_platform<R>(
    caller: &mut Cx<'_>,
    f: impl FnOnce(&mut otrp_tee_platform::Platform) -> Result<R, PlatformError>,
) -> HostResult<R> {
    let rt = Arc::clone(&caller.data().rt);
    let result = {
        let mut p = rt
            .platform
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut p)
    };
    result.map_err(|e| platform_failure(caller, e))
}

/// Registers every host function in `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> Result<(), wasmi::errors::LinkerError> {
    linker.func_wrap(
        "otrp",
        "set_output",
        |mut c: Cx<'_>, ptr: i32, len: i32| -> HostResult<()> {
            let max = c.data().rt.config.max_io_bytes;
            let out = read(&mut c, ptr, len, max, "output")?;
            c.data_mut().output = Some(out);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "otrp",
        "storage_get",
        |mut c: Cx<'_>, kp: i32, kl: i32, op: i32, cap: i32| -> HostResult<i32> {
            let max_key = c.data().rt.config.max_key_bytes;
            let key = read(&mut c, kp, kl, max_key, "storage key")?;
            if key.is_empty() {
                return Ok(INVALID);
            }
            let name = storage_name(&c, &key);
            match with_platform(&mut c, |p| p.get(&name))? {
                Some(v) => write_out(&mut c, op, cap, &v, "storage_get output"),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "otrp",
        "storage_put",
        |mut c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| -> HostResult<i32> {
            let cfg = c.data().rt.config.clone();
            let key = read(&mut c, kp, kl, cfg.max_key_bytes, "storage key")?;
            if key.is_empty() {
                return Ok(INVALID);
            }
            if usize::try_from(vl).is_ok_and(|l| l > cfg.max_value_bytes) {
                return Ok(TOO_LARGE);
            }
            let value = read(&mut c, vp, vl, cfg.max_value_bytes, "storage value")?;
            let name = storage_name(&c, &key);
            with_platform(&mut c, |p| p.put(&name, &value))?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        "otrp",
        "storage_delete",
        |mut c: Cx<'_>, kp: i32, kl: i32| -> HostResult<i32> {
            let max_key = c.data().rt.config.max_key_bytes;
            let key = read(&mut c, kp, kl, max_key, "storage key")?;
            if key.is_empty() {
                return Ok(INVALID);
            }
            let name = storage_name(&c, &key);
            let existed = with_platform(&mut c, |p| {
                let existed = p.get(&name)?.is_some();
                if existed {
                    p.delete(&name)?;
                }
                Ok(existed)
            })?;
            Ok(if existed { 0 } else { NOT_FOUND })
        },
    )?;
    linker.func_wrap(
        "otrp",
        "personalization",
        |mut c: Cx<'_>, op: i32, cap: i32| -> HostResult<i32> {
            charge(&mut c, CALL_FUEL)?;
            let name = names::perso(&c.data().ta);
            match with_platform(&mut c, |p| p.get(&name))? {
                Some(v) => write_out(&mut c, op, cap, &v, "personalization output"),
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "otrp",
        "public_key",
        |mut c: Cx<'_>, op: i32, cap: i32| -> HostResult<i32> {
            charge(&mut c, CALL_FUEL)?;
            let name = names::key(&c.data().ta);
            let pk = with_platform(&mut c, |p| p.public_key(&name))?;
            let bytes = sec1_uncompressed(&pk)
                .ok_or_else(|| wasmi::Error::new("TA key is not a P-256 key"))?;
            write_out(&mut c, op, cap, &bytes, "public_key output")
        },
    )?;
    linker.func_wrap(
        "otrp",
        "sign",
        |mut c: Cx<'_>, mp: i32, ml: i32, op: i32, cap: i32| -> HostResult<i32> {
            let max = c.data().rt.config.max_io_bytes;
            let msg = read(&mut c, mp, ml, max, "message")?;
            charge(&mut c, SIGN_FUEL)?;
            let name = names::key(&c.data().ta);
            let sig = with_platform(&mut c, |p| p.sign(&name, &msg))?;
            write_out(&mut c, op, cap, &sig, "sign output")
        },
    )?;
    linker.func_wrap(
        "otrp",
        "random",
        |mut c: Cx<'_>, op: i32, len: i32| -> HostResult<()> {
            let len = len_of(len, MAX_RANDOM, "random")?;
            charge(&mut c, CALL_FUEL)?;
            let mut buf = vec![0u8; len];
            {
                let rt = Arc::clone(&c.data().rt);
                let mut rng = rt
                    .rng
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                rng.fill_bytes(&mut buf);
            }
            write(&mut c, op, &buf, "random output")
        },
    )?;
    linker.func_wrap("otrp", "time_ms", |mut c: Cx<'_>| -> HostResult<i64> {
        charge(&mut c, CALL_FUEL)?;
        Ok(i64::try_from(c.data().rt.clock.now_ms()).unwrap_or(i64::MAX))
    })?;
    linker.func_wrap(
        "otrp",
        "sha256",
        |mut c: Cx<'_>, p: i32, l: i32, op: i32| -> HostResult<()> {
            let max = c.data().rt.config.max_io_bytes;
            let data = read(&mut c, p, l, max, "sha256 input")?;
            let digest = rust_crypto_provider().sha256(&data);
            write(&mut c, op, &digest, "sha256 output")
        },
    )?;
    linker.func_wrap(
        "otrp",
        "log",
        |mut c: Cx<'_>, p: i32, l: i32| -> HostResult<()> {
            let bytes = read(&mut c, p, l, MAX_LOG_LINE, "log line")?;
            let max_lines = c.data().rt.config.max_log_lines;
            let state = c.data_mut();
            if state.logs.len() < max_lines {
                state
                    .logs
                    .push(String::from_utf8_lossy(&bytes).into_owned());
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// SEC1 uncompressed encoding (65 bytes) of a P-256 key.
pub(crate) fn sec1_uncompressed(pk: &PublicKey) -> Option<Vec<u8>> {
    match pk {
        PublicKey::P256(k) => Some(k.to_encoded_point(false).as_bytes().to_vec()),
        _ => None,
    }
}
