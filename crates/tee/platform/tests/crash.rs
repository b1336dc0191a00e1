//! Crash tests: a child process (this test binary re-executing its ignored `crash_child`
//! test) applies a multi-object update and is aborted (`OTRP_TEE_CRASH_AT`) at a named
//! step; the parent reopens the store and checks it holds exactly the old state or
//! exactly the new one.
//!
//! `OTRP_CRASH_ITERATIONS` sets the number of randomized runs (default 200).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use otrp_crypto::rust_crypto_provider;
use otrp_tee_platform::{KeyKind, Platform, PlatformConfig, PlatformError, CRASH_ENV};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY: [u8; 32] = [0x33; 32];
const ENV_DIR: &str = "OTRP_CRASH_CHILD_DIR";
/// "0" turns fsync off in the child (see `PlatformConfig::fsync`).
const ENV_FSYNC: &str = "OTRP_CRASH_CHILD_FSYNC";
/// Path of a file holding the encoded changes (too long for an environment variable).
const ENV_OPS: &str = "OTRP_CRASH_CHILD_OPS_FILE";

/// One change of the update under test.
#[derive(Debug, Clone)]
enum Change {
    Put(String, Vec<u8>),
    Delete(String),
    Counter(String, u64),
    Key(String),
}

/// What the parent compares: user objects, counters, key names (with public keys).
#[derive(Clone, PartialEq, Eq, Default)]
struct State {
    objects: BTreeMap<String, Vec<u8>>,
    counters: BTreeMap<String, u64>,
    keys: BTreeMap<String, bool>,
}

/// Short form: object values as length and digest prefix.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let objects: BTreeMap<&String, String> = self
            .objects
            .iter()
            .map(|(k, v)| {
                let d = rust_crypto_provider().sha256(v);
                (
                    k,
                    format!(
                        "{} bytes {}",
                        v.len(),
                        hex::encode(d.get(..4).unwrap_or_default())
                    ),
                )
            })
            .collect();
        f.debug_struct("State")
            .field("objects", &objects)
            .field("counters", &self.counters)
            .field("keys", &self.keys)
            .finish()
    }
}

/// The commit point: once `journal.tmp` is renamed to `journal`, recovery rolls forward.
const COMMIT_STEP: &str = "journal:renamed";

fn encode_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| match c {
            Change::Put(n, v) => format!("p:{n}={}", hex::encode(v)),
            Change::Delete(n) => format!("d:{n}"),
            Change::Counter(n, v) => format!("c:{n}={v}"),
            Change::Key(n) => format!("k:{n}"),
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn decode_changes(s: &str) -> Result<Vec<Change>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for item in s.split(';').filter(|i| !i.is_empty()) {
        let (kind, rest) = item.split_once(':').ok_or("bad change")?;
        out.push(match kind {
            "p" => {
                let (n, v) = rest.split_once('=').ok_or("bad put")?;
                Change::Put(n.into(), hex::decode(v)?)
            }
            "d" => Change::Delete(rest.into()),
            "c" => {
                let (n, v) = rest.split_once('=').ok_or("bad counter")?;
                Change::Counter(n.into(), v.parse()?)
            }
            "k" => Change::Key(rest.into()),
            _ => return Err("unknown change".into()),
        });
    }
    Ok(out)
}

fn fresh_rng() -> ChaCha20Rng {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = rust_crypto_provider().sha256(format!("{}-{nanos}", std::process::id()).as_bytes());
    ChaCha20Rng::from_seed(seed)
}

fn open(dir: &Path, crash_at: Option<&str>, trace: bool) -> Result<Platform, PlatformError> {
    let cfg = PlatformConfig::new(dir, KEY, b"img")
        .crash_at(crash_at)
        .trace_failpoints(trace)
        .fsync(false);
    Platform::open(cfg, Box::new(fresh_rng()))
}

fn apply(p: &mut Platform, changes: &[Change]) -> Result<(), PlatformError> {
    p.transaction(|tx| {
        for c in changes {
            match c {
                Change::Put(n, v) => tx.put(n, v)?,
                Change::Delete(n) => tx.delete(n)?,
                Change::Counter(n, v) => tx.advance_counter(n, *v)?,
                Change::Key(n) => {
                    tx.generate_key(n, KeyKind::P256)?;
                }
            }
        }
        Ok(())
    })
}

/// The model: what `changes` do to `state`.
fn model(state: &State, changes: &[Change]) -> State {
    let mut s = state.clone();
    for c in changes {
        match c {
            Change::Put(n, v) => {
                s.objects.insert(n.clone(), v.clone());
            }
            Change::Delete(n) => {
                s.objects.remove(n);
            }
            // an absent counter reads as 0
            Change::Counter(n, v) if *v != 0 => {
                s.counters.insert(n.clone(), *v);
            }
            Change::Counter(..) => {}
            Change::Key(n) => {
                s.keys.insert(n.clone(), true);
            }
        }
    }
    s
}

fn snapshot(p: &mut Platform, counters: &[&str], keys: &[&str]) -> Result<State, PlatformError> {
    let mut s = State::default();
    for n in p.list("")? {
        let v = p.get(&n)?.unwrap_or_default();
        s.objects.insert(n, v);
    }
    for c in counters {
        let v = p.counter(c)?;
        if v != 0 {
            s.counters.insert((*c).to_string(), v);
        }
    }
    for k in keys {
        match p.public_key(k) {
            Ok(_) => {
                s.keys.insert((*k).to_string(), true);
            }
            Err(PlatformError::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(s)
}

/// Child side: run when re-executed by a parent test (ignored in normal runs).
#[test]
#[ignore = "child process of the crash tests; run by them with OTRP_CRASH_CHILD_DIR set"]
fn crash_child() -> TestResult {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return Ok(());
    };
    let ops_file = std::env::var(ENV_OPS)?;
    let changes = decode_changes(&std::fs::read_to_string(ops_file)?)?;
    // crash_at comes from OTRP_TEE_CRASH_AT, read by PlatformConfig::new
    let fsync = std::env::var(ENV_FSYNC).map_or(true, |v| v != "0");
    let cfg = PlatformConfig::new(&dir, KEY, b"img").fsync(fsync);
    let mut p = Platform::open(cfg, Box::new(fresh_rng()))?;
    apply(&mut p, &changes)?;
    Ok(())
}

/// Runs the child on `dir`: opens (recovering) and applies `changes`, aborting at
/// `crash_at`. Returns whether the child exited normally.
fn run_child(
    dir: &Path,
    changes: &[Change],
    crash_at: &str,
    fsync: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let ops = tempfile::NamedTempFile::new()?;
    std::fs::write(ops.path(), encode_changes(changes))?;
    let out = Command::new(exe)
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--test-threads",
            "1",
            "--quiet",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_OPS, ops.path())
        .env(CRASH_ENV, crash_at)
        .env(ENV_FSYNC, if fsync { "1" } else { "0" })
        .output()?;
    Ok(out.status.success())
}

/// The failpoints an update passes, learnt from a traced in-process run on a copy.
fn steps_of(old: &[Change], update: &[Change]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut p = open(tmp.path(), None, true)?;
    apply(&mut p, old)?;
    p.take_failpoint_trace();
    apply(&mut p, update)?;
    Ok(p.take_failpoint_trace())
}

fn check_after_crash(
    dir: &Path,
    old: &State,
    new: &State,
    counters: &[&str],
    keys: &[&str],
) -> Result<State, Box<dyn std::error::Error>> {
    let mut p = open(dir, None, false)?;
    let got = snapshot(&mut p, counters, keys)?;
    if &got != old && &got != new {
        return Err(
            format!("mixed state after crash:\n got {got:?}\n old {old:?}\n new {new:?}").into(),
        );
    }
    assert!(!dir.join("journal").exists(), "journal left after recovery");
    assert!(
        !dir.join("journal.tmp").exists(),
        "journal.tmp left after recovery"
    );
    Ok(got)
}

fn fixed_scenario() -> (Vec<Change>, Vec<Change>) {
    let old = vec![
        Change::Put("a".into(), b"old a".to_vec()),
        Change::Put("b".into(), b"old b".to_vec()),
        Change::Put("c".into(), vec![0xcc; 3000]),
        Change::Counter("seq".into(), 1),
    ];
    let update = vec![
        Change::Put("a".into(), b"new a".to_vec()),
        Change::Delete("b".into()),
        Change::Put("d".into(), vec![0xdd; 70_000]),
        Change::Put("e/f".into(), b"nested".to_vec()),
        Change::Counter("seq".into(), 2),
        Change::Key("ta-key".into()),
    ];
    (old, update)
}

/// Aborts the child (fsync on) at every step of the update; after the `commit` step also
/// aborts the recovery at each of its steps.
#[test]
fn crash_at_every_step_leaves_old_or_new_state() -> TestResult {
    let (old_changes, update) = fixed_scenario();
    let counters = ["seq"];
    let keys = ["ta-key"];
    let old = model(&State::default(), &old_changes);
    let new = model(&old, &update);
    let steps = steps_of(&old_changes, &update)?;
    assert!(steps.len() >= 15, "steps: {steps:?}");
    let commit_index = steps
        .iter()
        .position(|s| s == COMMIT_STEP)
        .ok_or("no commit step")?;
    let recover_steps: Vec<String> = steps
        .iter()
        .filter_map(|s| s.strip_prefix("apply:").map(|r| format!("recover:{r}")))
        .collect();
    let (mut saw_old, mut saw_new) = (0, 0);
    for (i, step) in steps.iter().enumerate() {
        let tmp = tempfile::tempdir()?;
        {
            let mut p = open(tmp.path(), None, false)?;
            apply(&mut p, &old_changes)?;
        }
        let exited = run_child(tmp.path(), &update, step, true)?;
        assert!(!exited, "child passed step {step} without aborting");
        let expect_new = i >= commit_index;
        if step == "commit" {
            // crash the recovery too, at each of its steps, before the final check (the
            // randomized test crashes recoveries after other steps)
            for r in &recover_steps {
                let copy = tempfile::tempdir()?;
                copy_dir(tmp.path(), copy.path())?;
                let exited = run_child(copy.path(), &[], r, true)?;
                assert!(!exited, "recovery passed step {r} without aborting");
                let got = check_after_crash(copy.path(), &old, &new, &counters, &keys)?;
                assert_eq!(got, new, "after crash at {step} then in recovery at {r}");
            }
        }
        let got = check_after_crash(tmp.path(), &old, &new, &counters, &keys)?;
        if expect_new {
            assert_eq!(got, new, "crash at {step} (after commit) must roll forward");
            saw_new += 1;
        } else {
            assert_eq!(got, old, "crash at {step} (before commit) must roll back");
            saw_old += 1;
        }
    }
    assert!(
        saw_old >= 4 && saw_new >= 10,
        "old {saw_old}, new {saw_new}"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

const POOL: [&str; 8] = [
    "a",
    "b",
    "c",
    "d",
    "dir/x",
    "dir/y",
    "z",
    "long-name-object",
];

fn random_changes(rng: &mut ChaCha20Rng, max: u32, counter_base: u64) -> Vec<Change> {
    let n = 1 + rng.next_u32() % max;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = POOL
            .get(rng.next_u32() as usize % POOL.len())
            .copied()
            .unwrap_or("a")
            .to_string();
        match rng.next_u32() % 6 {
            0..=2 => {
                let len = match rng.next_u32() % 4 {
                    0 => 0,
                    1 => rng.next_u32() % 64,
                    2 => rng.next_u32() % 4096,
                    _ => rng.next_u32() % 100_000,
                } as usize;
                let mut v = vec![0u8; len];
                rng.fill_bytes(&mut v);
                out.push(Change::Put(name, v));
            }
            3 | 4 => out.push(Change::Delete(name)),
            _ => out.push(Change::Counter(
                "cnt".into(),
                counter_base + u64::from(rng.next_u32() % 5),
            )),
        }
    }
    // a counter may only move forward inside one transaction too
    let mut last = counter_base;
    out.retain(|c| match c {
        Change::Counter(_, v) if *v < last => false,
        Change::Counter(_, v) => {
            last = *v;
            true
        }
        _ => true,
    });
    out
}

/// Randomized: random old state, random update, abort at a random step (sometimes at
/// none, sometimes again during recovery); the store must hold the old or the new state.
/// fsync is off here: a killed process loses no page cache, and the write order, which is
/// what this checks, is the same.
#[test]
fn randomized_crashes_never_mix_states() -> TestResult {
    let iterations: u64 = std::env::var("OTRP_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let counters = ["cnt"];
    let (mut olds, mut news) = (0u32, 0u32);
    for it in 0..iterations {
        let mut rng = ChaCha20Rng::seed_from_u64(0xC0FFEE ^ it);
        let old_changes = random_changes(&mut rng, 6, 10);
        let old = model(&State::default(), &old_changes);
        let base = old.counters.get("cnt").copied().unwrap_or(0);
        let update = random_changes(&mut rng, 6, base);
        let new = model(&old, &update);
        let steps = steps_of(&old_changes, &update)?;
        let pick = rng.next_u32() as usize % (steps.len() + 1);
        let step = steps.get(pick).cloned().unwrap_or_else(|| "none".into());

        let tmp = tempfile::tempdir()?;
        {
            let mut p = open(tmp.path(), None, false)?;
            apply(&mut p, &old_changes)?;
        }
        let exited = run_child(tmp.path(), &update, &step, false)?;
        assert_eq!(exited, step == "none", "iteration {it}, step {step}");
        let committed = steps
            .iter()
            .position(|s| s == COMMIT_STEP)
            .is_some_and(|c| pick >= c);
        if tmp.path().join("journal").exists() && rng.next_u32() % 3 == 0 {
            let rsteps: Vec<String> = steps
                .iter()
                .filter_map(|s| s.strip_prefix("apply:").map(|r| format!("recover:{r}")))
                .collect();
            if let Some(r) = rsteps.get(rng.next_u32() as usize % rsteps.len().max(1)) {
                assert!(
                    !run_child(tmp.path(), &[], r, false)?,
                    "iteration {it}: recovery {r}"
                );
            }
        }
        let got = check_after_crash(tmp.path(), &old, &new, &counters, &[])
            .map_err(|e| format!("iteration {it}, crash at {step}: {e}"))?;
        if old == new {
            continue;
        }
        if committed {
            assert_eq!(got, new, "iteration {it}: crash at {step} after commit");
            news += 1;
        } else {
            assert_eq!(got, old, "iteration {it}: crash at {step} before commit");
            olds += 1;
        }
    }
    if iterations >= 50 {
        assert!(olds > 5 && news > 5, "olds {olds}, news {news}");
    }
    Ok(())
}
