//! Sealed storage, tamper detection, transactions, counters, key store, measurement.

use std::fs;
use std::path::Path;

use otrp_crypto::{rust_crypto_provider, KeyKind, SigAlg};
use otrp_tee_platform::{Platform, PlatformConfig, PlatformError};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const KEY: [u8; 32] = [0x5a; 32];

fn open(dir: &Path) -> Result<Platform, PlatformError> {
    open_with_key(dir, KEY)
}

fn open_with_key(dir: &Path, key: [u8; 32]) -> Result<Platform, PlatformError> {
    let cfg = PlatformConfig::new(dir, key, b"TEE image v1").crash_at(None);
    Platform::open(cfg, Box::new(ChaCha20Rng::seed_from_u64(9)))
}

fn object_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir.join("objects"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn put_get_list_delete_persist_across_reopen() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let mut p = open(tmp.path())?;
        assert_eq!(p.get("a")?, None);
        p.put("a", b"alpha")?;
        p.put("dir/b", b"beta")?;
        p.put("dir/c", b"")?;
        assert_eq!(p.get("a")?.as_deref(), Some(&b"alpha"[..]));
        assert_eq!(p.list("")?, vec!["a", "dir/b", "dir/c"]);
        assert_eq!(p.list("dir/")?, vec!["dir/b", "dir/c"]);
        p.delete("a")?;
        p.delete("never-existed")?;
        assert_eq!(p.get("a")?, None);
    }
    let mut p = open(tmp.path())?;
    assert_eq!(p.list("")?, vec!["dir/b", "dir/c"]);
    assert_eq!(p.get("dir/c")?.as_deref(), Some(&b""[..]));
    // nothing in the directory shows the plaintext
    for f in object_files(tmp.path()) {
        let bytes = fs::read(&f)?;
        assert!(!bytes.windows(4).any(|w| w == b"beta"));
    }
    Ok(())
}

#[test]
fn edits_swaps_truncations_and_foreign_keys_are_detected() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut p = open(tmp.path())?;
    p.put("x", b"secret x")?;
    p.put("y", b"secret y")?;
    let files = object_files(tmp.path());
    assert_eq!(files.len(), 2);
    let (fx, fy) = match files.as_slice() {
        [a, b] => (a.clone(), b.clone()),
        _ => return Err("expected two files".into()),
    };
    let orig_x = fs::read(&fx)?;
    let orig_y = fs::read(&fy)?;

    // 1. the rich OS flips a ciphertext byte
    let mut edited = orig_x.clone();
    if let Some(b) = edited.last_mut() {
        *b ^= 0x80;
    }
    fs::write(&fx, &edited)?;
    let which = |p: &mut Platform| -> Result<String, Box<dyn std::error::Error>> {
        for n in ["x", "y"] {
            if let Err(PlatformError::Tampered { name, .. }) = p.get(n) {
                return Ok(name);
            }
        }
        Err("no tampering reported".into())
    };
    let name = which(&mut p)?;
    assert!(name == "o/x" || name == "o/y");
    assert!(matches!(p.list(""), Err(PlatformError::Tampered { .. })));

    // 2. swap the two files
    fs::write(&fx, &orig_y)?;
    fs::write(&fy, &orig_x)?;
    assert!(matches!(p.get("x"), Err(PlatformError::Tampered { .. })));
    assert!(matches!(p.get("y"), Err(PlatformError::Tampered { .. })));

    // 3. truncation
    fs::write(&fx, orig_x.get(..orig_x.len() / 2).unwrap_or_default())?;
    fs::write(&fy, &orig_y)?;
    let _ = which(&mut p)?;

    // restore: everything reads again
    fs::write(&fx, &orig_x)?;
    assert_eq!(p.get("x")?.as_deref(), Some(&b"secret x"[..]));
    assert_eq!(p.get("y")?.as_deref(), Some(&b"secret y"[..]));
    drop(p);

    // 4. another device (other storage key) cannot read them
    let mut other = open_with_key(tmp.path(), [0x11; 32])?;
    assert!(matches!(other.get("x"), Err(PlatformError::Tampered { name, .. }) if name == "o/x"));
    drop(other);

    // 5. a journal planted by the rich OS is refused at boot
    fs::write(tmp.path().join("journal"), b"OTRPSEAL garbage")?;
    assert!(matches!(
        open(tmp.path()),
        Err(PlatformError::Tampered { name, .. }) if name == "journal"
    ));
    Ok(())
}

#[test]
fn transaction_is_all_or_nothing_and_reads_its_writes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut p = open(tmp.path())?;
    p.put("keep", b"1")?;
    let r = p.transaction(|tx| {
        tx.put("new", b"2")?;
        tx.delete("keep")?;
        assert_eq!(tx.get("new")?.as_deref(), Some(&b"2"[..]));
        assert_eq!(tx.get("keep")?, None);
        Err::<(), _>(PlatformError::Aborted {
            reason: "test".into(),
        })
    });
    assert!(matches!(r, Err(PlatformError::Aborted { .. })));
    assert_eq!(p.list("")?, vec!["keep"]);
    let n = p.transaction(|tx| {
        tx.put("new", b"2")?;
        tx.delete("keep")?;
        tx.advance_counter("seq", 5)?;
        tx.increment_counter("seq")
    })?;
    assert_eq!(n, 6);
    assert_eq!(p.list("")?, vec!["new"]);
    assert_eq!(p.counter("seq")?, 6);
    assert!(!tmp.path().join("journal").exists());
    Ok(())
}

#[test]
fn counters_are_monotonic_and_persist() -> TestResult {
    let tmp = tempfile::tempdir()?;
    {
        let mut p = open(tmp.path())?;
        assert_eq!(p.counter("tc")?, 0);
        assert_eq!(p.increment_counter("tc")?, 1);
        p.advance_counter("tc", 10)?;
        p.advance_counter("tc", 10)?;
        assert!(matches!(
            p.advance_counter("tc", 9),
            Err(PlatformError::CounterRollback {
                current: 10,
                requested: 9,
                ..
            })
        ));
        p.advance_counter("max", u64::MAX)?;
        assert!(matches!(
            p.increment_counter("max"),
            Err(PlatformError::CounterOverflow { .. })
        ));
        // counters and objects have separate name spaces
        p.put("tc", b"object")?;
    }
    let mut p = open(tmp.path())?;
    assert_eq!(p.counter("tc")?, 10);
    assert_eq!(p.get("tc")?.as_deref(), Some(&b"object"[..]));
    Ok(())
}

#[test]
fn key_store_signs_without_exporting() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let pk = {
        let mut p = open(tmp.path())?;
        let pk = p.generate_key("attest", KeyKind::P256)?;
        assert!(matches!(
            p.generate_key("attest", KeyKind::P256),
            Err(PlatformError::KeyExists { .. })
        ));
        assert_eq!(p.ensure_key("attest", KeyKind::P256)?, pk);
        assert!(matches!(
            p.sign("nope", b"m"),
            Err(PlatformError::KeyNotFound { .. })
        ));
        let ed = p.ensure_key("ed", KeyKind::Ed25519)?;
        let sig = p.sign("ed", b"msg")?;
        rust_crypto_provider().verify(SigAlg::Ed25519, &ed, b"msg", &sig)?;
        pk
    };
    let mut p = open(tmp.path())?;
    assert_eq!(p.public_key("attest")?, pk);
    let sig = p.sign("attest", b"transaction")?;
    assert_eq!(sig.len(), 64);
    rust_crypto_provider().verify(SigAlg::P256Sha256, &pk, b"transaction", &sig)?;
    // the private key is not in any file in clear
    for f in object_files(tmp.path()) {
        let bytes = fs::read(&f)?;
        assert!(!bytes.windows(5).any(|w| w == b"BEGIN"));
    }
    p.delete_key("attest")?;
    assert!(matches!(
        p.public_key("attest"),
        Err(PlatformError::KeyNotFound { .. })
    ));
    Ok(())
}

#[test]
fn measurement_is_sha256_of_image_and_store_is_single_owner() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let p = open(tmp.path())?;
    assert_eq!(
        p.measurement(),
        rust_crypto_provider().sha256(b"TEE image v1")
    );
    assert!(matches!(
        open(tmp.path()),
        Err(PlatformError::Locked { .. })
    ));
    drop(p);
    let p = open(tmp.path())?;
    assert_eq!(p.dir(), tmp.path());
    Ok(())
}

#[test]
fn names_and_sizes_are_checked() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut p = open(tmp.path())?;
    assert!(matches!(
        p.put("", b"x"),
        Err(PlatformError::InvalidName { .. })
    ));
    assert!(matches!(
        p.put("a\0b", b"x"),
        Err(PlatformError::InvalidName { .. })
    ));
    assert!(matches!(
        p.put(&"n".repeat(2000), b"x"),
        Err(PlatformError::InvalidName { .. })
    ));
    let big = vec![0u8; otrp_tee_platform::MAX_OBJECT_LEN + 1];
    assert!(matches!(
        p.put("big", &big),
        Err(PlatformError::TooLarge { .. })
    ));
    assert_eq!(p.list("")?, Vec::<String>::new());
    Ok(())
}

#[test]
fn failpoint_trace_lists_the_commit_steps() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cfg = PlatformConfig::new(tmp.path(), KEY, b"img")
        .crash_at(None)
        .trace_failpoints(true);
    let mut p = Platform::open(cfg, Box::new(ChaCha20Rng::seed_from_u64(1)))?;
    p.put("seed", b"0")?;
    p.take_failpoint_trace();
    p.transaction(|tx| {
        tx.put("a", b"1")?;
        tx.delete("seed")
    })?;
    let trace = p.failpoint_trace().to_vec();
    assert_eq!(
        trace,
        vec![
            "journal:begin",
            "journal:partial",
            "journal:written",
            "journal:synced",
            "journal:renamed",
            "commit",
            "apply:0:written",
            "apply:0:renamed",
            "apply:1:deleted",
            "apply:synced",
            "apply:journal-removed",
        ]
    );
    Ok(())
}
