//! The committed sample TAs (`tas/dist/*.wasm`) and hostile WAT modules on the runtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use otrp_crypto::{rust_crypto_provider, PublicKey, SigAlg};
use otrp_ta_runtime::{sec1_uncompressed, RuntimeConfig, TaError, TaId, TaRuntime};
use otrp_tee_platform::{Platform, PlatformConfig, PlatformError};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DEVICE_KEY: [u8; 32] = [0x42; 32];
const NOW_MS: u64 = 1_764_000_000_000;

fn dist(name: &str) -> Result<Vec<u8>, std::io::Error> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../tas/dist")
        .join(name);
    std::fs::read(path)
}

fn boot_with(dir: &Path, config: RuntimeConfig) -> Result<TaRuntime, Box<dyn std::error::Error>> {
    let cfg = PlatformConfig::new(dir, DEVICE_KEY, b"TEE image").crash_at(None);
    let platform = Platform::open(cfg, Box::new(ChaCha20Rng::seed_from_u64(7)))?;
    Ok(TaRuntime::new(
        Arc::new(Mutex::new(platform)),
        Box::new(ChaCha20Rng::seed_from_u64(8)),
        Box::new(|| NOW_MS),
        config,
    )?)
}

fn boot(dir: &Path) -> Result<TaRuntime, Box<dyn std::error::Error>> {
    boot_with(dir, RuntimeConfig::default())
}

fn id(s: &str) -> Result<TaId, TaError> {
    TaId::new(s)
}

#[test]
fn payment_signature_verifies_under_the_reported_public_key() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("payment-signer")?;
    let installed_pk = rt.install(&ta, &dist("payment-signer.wasm")?)?;
    let mut s = rt.open_session(&ta)?;
    let pk_bytes = s.invoke(1, &[])?;
    assert_eq!(pk_bytes.len(), 65);
    assert_eq!(Some(pk_bytes.clone()), sec1_uncompressed(&installed_pk));
    let (x, y) = pk_bytes
        .get(1..33)
        .zip(pk_bytes.get(33..65))
        .ok_or("short key")?;
    let pk = PublicKey::p256_from_coordinates(x, y)?;
    let tx = br#"{"from":"alice","to":"bob","amount":"10.00","currency":"EUR"}"#;
    let sig = s.invoke(2, tx)?;
    assert_eq!(sig.len(), 64);
    rust_crypto_provider().verify(SigAlg::P256Sha256, &pk, tx, &sig)?;
    // a different transaction does not verify under that signature
    assert!(rust_crypto_provider()
        .verify(SigAlg::P256Sha256, &pk, b"pay 1000 EUR", &sig)
        .is_err());
    assert_eq!(s.invoke(3, &[])?, 1u64.to_be_bytes());
    assert!(s.logs().iter().any(|l| l.contains("signed a transaction")));
    assert!(s.last_fuel_used() > 0);
    // errors from the TA carry its code and message
    match s.invoke(2, &[]) {
        Err(TaError::Ta { code, message, .. }) => {
            assert_eq!(code, 0xFFFF_0006);
            assert!(message.unwrap_or_default().contains("1..=4096"));
        }
        other => return Err(format!("expected a TA error, got {other:?}").into()),
    }
    assert!(matches!(
        s.invoke(99, &[]),
        Err(TaError::Ta {
            code: 0xFFFF_000A,
            ..
        })
    ));
    s.close()?;
    // the key is stable across sessions and is the runtime's view of the TA key
    assert_eq!(rt.ta_public_key(&ta)?, installed_pk);
    Ok(())
}

fn lock_request(template: &[u8; 32], pin: &[u8]) -> Vec<u8> {
    let mut v = template.to_vec();
    v.extend_from_slice(pin);
    v
}

#[test]
fn smart_lock_refuses_after_three_bad_pins_and_keeps_the_count_across_restart() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let template = rust_crypto_provider().sha256(b"fingerprint template of alice");
    let ta = id("smart-lock")?;
    {
        let rt = boot(tmp.path())?;
        rt.install(&ta, &dist("smart-lock.wasm")?)?;
        let mut s = rt.open_session(&ta)?;
        s.invoke(1, &lock_request(&template, b"1234"))?;
        assert!(matches!(
            s.invoke(1, &lock_request(&template, b"9999")),
            Err(TaError::Ta {
                code: 0xFFFF_0001,
                ..
            })
        ));
        assert_eq!(s.invoke(2, &lock_request(&template, b"1234"))?, vec![1]);
        assert_eq!(s.invoke(3, &[])?, vec![3]);
        assert_eq!(s.invoke(2, &lock_request(&template, b"0000"))?, vec![0, 2]);
        // wrong template with the right PIN also counts
        let other = rust_crypto_provider().sha256(b"mallory");
        assert_eq!(s.invoke(2, &lock_request(&other, b"1234"))?, vec![0, 1]);
        s.close()?;
        // a new session sees the same counter (it lives in sealed storage)
        let mut s = rt.open_session(&ta)?;
        assert_eq!(s.invoke(3, &[])?, vec![1]);
        assert_eq!(s.invoke(2, &lock_request(&template, b"1111"))?, vec![0, 0]);
        // locked: even the right credential is refused
        match s.invoke(2, &lock_request(&template, b"1234")) {
            Err(TaError::Ta { code, message, .. }) => {
                assert_eq!(code, 0xFFFF_0001);
                assert_eq!(message.as_deref(), Some("locked"));
            }
            other => return Err(format!("expected locked, got {other:?}").into()),
        }
    }
    // restart the TEE: platform and runtime rebuilt from the directory
    let rt = boot(tmp.path())?;
    let mut s = rt.open_session(&ta)?;
    assert_eq!(s.invoke(3, &[])?, vec![0]);
    assert!(matches!(
        s.invoke(2, &lock_request(&template, b"1234")),
        Err(TaError::Ta {
            code: 0xFFFF_0001,
            ..
        })
    ));
    Ok(())
}

#[test]
fn smart_lock_success_resets_the_counter() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("smart-lock")?;
    rt.install(&ta, &dist("smart-lock.wasm")?)?;
    let template = [7u8; 32];
    let mut s = rt.open_session(&ta)?;
    assert!(matches!(
        s.invoke(2, &lock_request(&template, b"1234")),
        Err(TaError::Ta {
            code: 0xFFFF_0007,
            ..
        })
    ));
    s.invoke(1, &lock_request(&template, b"123456"))?;
    assert_eq!(
        s.invoke(2, &lock_request(&template, b"000000"))?,
        vec![0, 2]
    );
    assert_eq!(
        s.invoke(2, &lock_request(&template, b"000001"))?,
        vec![0, 1]
    );
    assert_eq!(s.invoke(2, &lock_request(&template, b"123456"))?, vec![1]);
    assert_eq!(s.invoke(3, &[])?, vec![3]);
    assert!(matches!(
        s.invoke(2, &lock_request(&template, b"12")),
        Err(TaError::Ta {
            code: 0xFFFF_0006,
            ..
        })
    ));
    Ok(())
}

fn point(lat: f64, lon: f64) -> Vec<u8> {
    let mut v = lat.to_le_bytes().to_vec();
    v.extend_from_slice(&lon.to_le_bytes());
    v
}

const ZONES_V1: &str = r#"{"version": 1, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}},
  {"name": "stadium", "polygon": [[48.2180, 11.6220], [48.2180, 11.6270], [48.2220, 11.6270], [48.2220, 11.6220]]}
]}"#;

const ZONES_V2: &str = r#"{"version": 2, "zones": [
  {"name": "old town", "circle": {"lat": 48.1374, "lon": 11.5755, "radius_m": 1500}}
]}"#;

#[test]
fn geofence_refuses_inside_accepts_outside_and_new_zone_data_changes_behaviour() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("drone-geofence")?;
    rt.install(&ta, &dist("drone-geofence.wasm")?)?;
    let near_airport = point(48.3600, 11.7800); // ~0.8 km from the airport centre
    let in_stadium = point(48.2200, 11.6245);
    let old_town = point(48.1380, 11.5760);
    let countryside = point(47.9000, 11.0000);

    // no zone data yet: fail closed
    let mut s = rt.open_session(&ta)?;
    assert!(matches!(
        s.invoke(1, &countryside),
        Err(TaError::Ta {
            code: 0xFFFF_0007,
            ..
        })
    ));
    s.close()?;

    rt.set_personalization(&ta, Some(ZONES_V1.as_bytes()))?;
    let mut s = rt.open_session(&ta)?;
    assert_eq!(s.invoke(1, &near_airport)?, vec![1, 0, 0, 0, 0]);
    assert_eq!(s.invoke(1, &in_stadium)?, vec![1, 0, 0, 0, 1]);
    assert_eq!(s.invoke(1, &countryside)?, vec![0]);
    assert_eq!(s.invoke(1, &old_town)?, vec![0]);
    assert_eq!(
        s.invoke(2, &[])?,
        [1u32.to_be_bytes(), 2u32.to_be_bytes()].concat()
    );
    assert!(matches!(
        s.invoke(1, &point(91.0, 0.0)),
        Err(TaError::Ta {
            code: 0xFFFF_0006,
            ..
        })
    ));
    assert!(matches!(
        s.invoke(1, b"short"),
        Err(TaError::Ta {
            code: 0xFFFF_0006,
            ..
        })
    ));
    s.close()?;

    // update: a second data set
    rt.set_personalization(&ta, Some(ZONES_V2.as_bytes()))?;
    let mut s = rt.open_session(&ta)?;
    assert_eq!(s.invoke(1, &near_airport)?, vec![0]);
    assert_eq!(s.invoke(1, &in_stadium)?, vec![0]);
    assert_eq!(s.invoke(1, &old_town)?, vec![1, 0, 0, 0, 0]);
    assert_eq!(
        s.invoke(2, &[])?,
        [2u32.to_be_bytes(), 1u32.to_be_bytes()].concat()
    );

    // malformed data is refused, not trusted
    rt.set_personalization(&ta, Some(b"{\"zones\": [{\"circle\": null}]}"))?;
    let mut s = rt.open_session(&ta)?;
    assert!(matches!(
        s.invoke(1, &old_town),
        Err(TaError::Ta {
            code: 0xFFFF_0005,
            ..
        })
    ));
    Ok(())
}

/// A minimal TA in WAT following the ABI; `body` is the `invoke` function body.
fn wat_ta(body: &str, memory_pages: u32) -> Result<Vec<u8>, wat::Error> {
    wat::parse_str(format!(
        r#"(module
            (import "otrp" "set_output" (func $set_output (param i32 i32)))
            (import "otrp" "storage_get" (func $storage_get (param i32 i32 i32 i32) (result i32)))
            (import "otrp" "storage_put" (func $storage_put (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") {memory_pages})
            (data (i32.const 16) "credential")
            (data (i32.const 32) "tries-left")
            (func (export "alloc") (param i32) (result i32) (i32.const 4096))
            (func (export "invoke") (param $cmd i32) (param $ptr i32) (param $len i32) (result i32)
                {body}))"#
    ))
}

#[test]
fn endless_loop_runs_out_of_fuel_and_kills_the_session() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let config = RuntimeConfig {
        fuel_per_call: 2_000_000,
        ..RuntimeConfig::default()
    };
    let rt = boot_with(tmp.path(), config)?;
    let ta = id("spinner")?;
    rt.install(&ta, &wat_ta("(loop $l (br $l)) (i32.const 0)", 1)?)?;
    let mut s = rt.open_session(&ta)?;
    let started = std::time::Instant::now();
    assert!(matches!(
        s.invoke(1, b"x"),
        Err(TaError::OutOfFuel {
            entry: "invoke",
            fuel: 2_000_000,
            ..
        })
    ));
    assert!(started.elapsed().as_secs() < 10);
    assert!(matches!(
        s.invoke(1, b"x"),
        Err(TaError::SessionUnusable { state: "dead", .. })
    ));
    Ok(())
}

#[test]
fn allocating_too_much_hits_the_memory_limit() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let config = RuntimeConfig {
        max_memory_bytes: 2 * 1024 * 1024,
        ..RuntimeConfig::default()
    };
    let rt = boot_with(tmp.path(), config)?;
    // grows by 64 KiB pages until the limit
    let hog = id("hog")?;
    rt.install(
        &hog,
        &wat_ta(
            "(loop $l (drop (memory.grow (i32.const 1))) (br $l)) (i32.const 0)",
            1,
        )?,
    )?;
    let mut s = rt.open_session(&hog)?;
    assert!(matches!(
        s.invoke(1, &[]),
        Err(TaError::MemoryLimit {
            entry: "invoke",
            limit: 2097152,
            ..
        })
    ));
    // a module declaring more initial memory than allowed never starts
    let big = id("big")?;
    rt.install(&big, &wat_ta("(i32.const 0)", 64)?)?;
    assert!(matches!(
        rt.open_session(&big),
        Err(TaError::MemoryLimit { .. })
    ));
    // a Rust TA whose input would need more memory than the limit: the input is refused
    // up front when over the I/O limit ...
    let signer = id("payment-signer")?;
    rt.install(&signer, &dist("payment-signer.wasm")?)?;
    let mut s = rt.open_session(&signer)?;
    assert!(matches!(
        s.invoke(2, &vec![0u8; 2 * 1024 * 1024]),
        Err(TaError::InputTooLarge { .. })
    ));
    Ok(())
}

#[test]
fn rust_ta_allocation_failure_is_a_memory_limit() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // the I/O limit lets a 1.5 MiB input through, the 1 MiB memory limit cannot hold it
    let config = RuntimeConfig {
        max_memory_bytes: 1024 * 1024,
        max_io_bytes: 4 * 1024 * 1024,
        ..RuntimeConfig::default()
    };
    let rt = boot_with(tmp.path(), config)?;
    let signer = id("payment-signer")?;
    rt.install(&signer, &dist("payment-signer.wasm")?)?;
    let mut s = rt.open_session(&signer)?;
    assert!(matches!(
        s.invoke(2, &vec![1u8; 1536 * 1024]),
        Err(TaError::MemoryLimit { entry: "alloc", .. })
    ));
    Ok(())
}

#[test]
fn one_ta_cannot_read_another_tas_storage() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let template = [1u8; 32];
    // the same smart-lock code installed twice: separate storage and separate keys
    let a = id("lock-a")?;
    let b = id("lock-b")?;
    let wasm = dist("smart-lock.wasm")?;
    let pk_a = rt.install(&a, &wasm)?;
    let pk_b = rt.install(&b, &wasm)?;
    assert_ne!(pk_a, pk_b);
    rt.open_session(&a)?
        .invoke(1, &lock_request(&template, b"4321"))?;
    let mut sb = rt.open_session(&b)?;
    assert!(matches!(
        sb.invoke(2, &lock_request(&template, b"4321")),
        Err(TaError::Ta {
            code: 0xFFFF_0007,
            ..
        })
    ));
    // a spy asking for the smart-lock's storage keys only sees its own (empty) name space
    let spy = id("spy")?;
    rt.install(
        &spy,
        &wat_ta(
            "(call $storage_get (i32.const 16) (i32.const 10) (i32.const 1024) (i32.const 256))",
            1,
        )?,
    )?;
    let mut s = rt.open_session(&spy)?;
    // status -1 = NOT_FOUND comes back as the TA's status
    assert!(matches!(
        s.invoke(0, &[]),
        Err(TaError::Ta {
            code: 0xFFFF_FFFF,
            ..
        })
    ));
    // a TA id cannot climb out of its name space
    assert!(matches!(
        TaId::new("lock-a/../x"),
        Err(TaError::InvalidId { .. })
    ));
    assert!(matches!(TaId::new(""), Err(TaError::InvalidId { .. })));
    Ok(())
}

#[test]
fn updating_ta_code_changes_behaviour_and_keeps_key_and_storage() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("lock")?;
    let pk1 = rt.install(&ta, &dist("smart-lock.wasm")?)?;
    let m1 = rt.ta_measurement(&ta)?;
    rt.open_session(&ta)?
        .invoke(1, &lock_request(&[3u8; 32], b"2468"))?;
    // v2: returns the stored retry counter of the same TA id as output
    let v2 = wat_ta(
        "(drop (call $storage_get (i32.const 32) (i32.const 10) (i32.const 1024) (i32.const 16)))
         (call $set_output (i32.const 1024) (i32.const 1))
         (i32.const 0)",
        1,
    )?;
    let pk2 = rt.install(&ta, &v2)?;
    assert_eq!(pk1, pk2);
    assert_ne!(rt.ta_measurement(&ta)?, m1);
    assert_eq!(rt.open_session(&ta)?.invoke(3, &[])?, vec![3]);
    Ok(())
}

#[test]
fn invalid_modules_are_rejected_at_install() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("bad")?;
    assert!(matches!(
        rt.install(&ta, b"\0asm garbage"),
        Err(TaError::InvalidModule { .. })
    ));
    let wasi = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (func (export "alloc") (param i32) (result i32) (i32.const 0))
            (func (export "invoke") (param i32 i32 i32) (result i32) (i32.const 0)))"#,
    )?;
    match rt.install(&ta, &wasi) {
        Err(TaError::InvalidModule { reason, .. }) => assert!(reason.contains("fd_write")),
        other => return Err(format!("expected InvalidModule, got {other:?}").into()),
    }
    let no_invoke = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0)))"#,
    )?;
    assert!(matches!(
        rt.install(&ta, &no_invoke),
        Err(TaError::InvalidModule { .. })
    ));
    assert!(matches!(
        rt.open_session(&ta),
        Err(TaError::NotInstalled { .. })
    ));
    assert!(rt.installed()?.is_empty());
    Ok(())
}

#[test]
fn bad_pointers_trap_and_kill_the_session() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("wild")?;
    rt.install(
        &ta,
        &wat_ta(
            "(call $storage_put (i32.const 16) (i32.const 10) (i32.const 65500) (i32.const 100))",
            1,
        )?,
    )?;
    let mut s = rt.open_session(&ta)?;
    match s.invoke(0, &[]) {
        Err(TaError::Trap { entry, reason, .. }) => {
            assert_eq!(entry, "invoke");
            assert!(reason.contains("out of bounds"), "{reason}");
        }
        other => return Err(format!("expected Trap, got {other:?}").into()),
    }
    assert!(matches!(
        s.invoke(0, &[]),
        Err(TaError::SessionUnusable { .. })
    ));
    Ok(())
}

#[test]
fn tampered_ta_code_is_detected() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let ta = id("payment-signer")?;
    rt.install(&ta, &dist("payment-signer.wasm")?)?;
    // the rich OS edits every sealed object file
    for entry in std::fs::read_dir(tmp.path().join("objects"))? {
        let path = entry?.path();
        let mut bytes = std::fs::read(&path)?;
        if let Some(b) = bytes.last_mut() {
            *b ^= 1;
        }
        std::fs::write(&path, bytes)?;
    }
    assert!(matches!(
        rt.open_session(&ta),
        Err(TaError::Platform {
            source: PlatformError::Tampered { .. },
            ..
        })
    ));
    Ok(())
}

#[test]
fn uninstall_removes_code_storage_and_key() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let rt = boot(tmp.path())?;
    let lock = id("smart-lock")?;
    let geo = id("drone-geofence")?;
    rt.install(&lock, &dist("smart-lock.wasm")?)?;
    rt.install(&geo, &dist("drone-geofence.wasm")?)?;
    rt.set_personalization(&geo, Some(ZONES_V1.as_bytes()))?;
    rt.open_session(&lock)?
        .invoke(1, &lock_request(&[9u8; 32], b"0000"))?;
    assert_eq!(rt.installed()?, vec![geo.clone(), lock.clone()]);
    rt.uninstall(&lock)?;
    assert_eq!(rt.installed()?, vec![geo.clone()]);
    assert!(matches!(
        rt.open_session(&lock),
        Err(TaError::NotInstalled { .. })
    ));
    assert!(matches!(
        rt.ta_public_key(&lock),
        Err(TaError::NotInstalled { .. })
    ));
    assert!(matches!(
        rt.uninstall(&lock),
        Err(TaError::NotInstalled { .. })
    ));
    let left = rt
        .platform()
        .lock()
        .map_err(|_| "poisoned")?
        .list("ta/smart-lock/")?;
    assert!(left.is_empty(), "{left:?}");
    // reinstalling starts from scratch: not provisioned, new key
    rt.install(&lock, &dist("smart-lock.wasm")?)?;
    assert_eq!(rt.open_session(&lock)?.invoke(3, &[])?, vec![3]);
    assert!(matches!(
        rt.set_personalization(&id("nope")?, None),
        Err(TaError::NotInstalled { .. })
    ));
    Ok(())
}
