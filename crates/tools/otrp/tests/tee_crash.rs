//! Crash test of the TEE daemon: `otrp tee run` is killed during installs and updates —
//! with SIGKILL after a random delay, or by aborting at a random step of the platform's
//! commit protocol (`OTRP_TEE_CRASH_AT`) — then restarted; every time the store must hold
//! the old TA with its old manifest, or the new TA with the new one (image, manifest
//! sequence number and the TA runtime's code agree), never a mix, and the Agent must still
//! answer. 24 runs by default; `OTRP_CRASH_RUNS=100 cargo test -p otrp --test tee_crash`
//! for more.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otrp_broker::mini_tam::{MiniTam, MiniTamKeys};
use otrp_tee_daemon::{TeeClient, TeeStatus};
use rand::{Rng, SeedableRng};

const OTRP: &str = env!("CARGO_BIN_EXE_otrp");
const TA: &str = "payments:payment-signer";
/// Steps of the platform's commit protocol (otrp-tee-platform `Platform` docs).
const STEPS: &[&str] = &[
    "journal:begin",
    "journal:partial",
    "journal:written",
    "journal:synced",
    "journal:renamed",
    "commit",
    "apply:0:written",
    "apply:0:renamed",
    "apply:1:renamed",
    "apply:2:written",
    "apply:3:renamed",
    "apply:4:renamed",
    "apply:synced",
    "apply:journal-removed",
];

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../../tas/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn otrp(args: &[&str]) {
    let out = Command::new(OTRP).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "otrp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(dir: &Path, crash_at: Option<&str>) -> Child {
    let sock = dir.join("tee.sock");
    let _ = std::fs::remove_file(&sock);
    let mut cmd = Command::new(OTRP);
    cmd.args([
        "tee",
        "run",
        "--device",
        dir.join("dev").to_str().unwrap(),
        "--listen",
        &format!("unix:{}", sock.display()),
        "--pki",
        dir.join("pki").to_str().unwrap(),
        "--no-fsync",
    ])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("tee.log")).unwrap())
    .env_remove("OTRP_TEE_CRASH_AT");
    if let Some(step) = crash_at {
        cmd.env("OTRP_TEE_CRASH_AT", step);
    }
    let mut child = cmd.spawn().unwrap();
    let t = Instant::now();
    // Ready when it accepts a connection: the socket file appears at bind(), a moment
    // before listen(), and a loaded machine can stretch that moment.
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the daemon exited while starting ({status}): {}",
                std::fs::read_to_string(dir.join("tee.log")).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// Runs one TEEP session between the mini TAM core and the daemon (errors once it dies).
async fn session(tam: &MiniTam, sock: &Path) -> Result<(), String> {
    let mut c = TeeClient::connect(sock).await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    for _ in 0..8 {
        let Some(msg) = tam.process(&body).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let reply = c
            .process_teep_message(msg)
            .await
            .map_err(|e| e.to_string())?;
        match reply.send {
            Some(b) => body = b,
            None => return Ok(()),
        }
    }
    Err("session did not end".into())
}

async fn status(sock: &Path) -> TeeStatus {
    TeeClient::connect(sock)
        .await
        .unwrap()
        .status()
        .await
        .unwrap()
}

/// The store is consistent: the TA's image, its manifest's sequence number and the TA
/// runtime's code belong to one version; returns that sequence number (0: not installed).
fn check(st: &TeeStatus, versions: &HashMap<u64, String>, run: usize) -> u64 {
    let man = st.manifests.iter().find(|m| m.id == TA);
    let comp = st.components.iter().find(|c| c.id == TA);
    match (man, comp) {
        (None, None) => {
            assert!(
                !st.tas.iter().any(|t| t == TA),
                "run {run}: TA code without manifest: {st:?}"
            );
            0
        }
        (Some(m), Some(c)) => {
            let want = versions.get(&m.sequence_number).unwrap();
            assert_eq!(
                &c.digest, want,
                "run {run}: image of another version than the manifest"
            );
            assert_eq!(
                c.ta_code_digest.as_ref(),
                Some(want),
                "run {run}: TA runtime code differs from the image"
            );
            assert!(st.tas.iter().any(|t| t == TA));
            m.sequence_number
        }
        _ => panic!("run {run}: manifest and component disagree: {st:?}"),
    }
}

#[test]
fn killed_daemon_always_restarts_with_the_old_or_the_new_ta() {
    let runs: usize = std::env::var("OTRP_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = dir.join("pki");
    otrp(&["pki", "init", pki.to_str().unwrap()]);
    otrp(&[
        "device",
        "provision",
        "--pki",
        pki.to_str().unwrap(),
        "--model",
        "phone",
        "--out",
        dir.join("dev").to_str().unwrap(),
    ]);
    let loaded = otrp_pki::fs::load_pki(&pki).unwrap();
    let tam = MiniTam::new(MiniTamKeys::from_pki(&loaded).unwrap(), "payments", "sp1").unwrap();
    let images = [wasm("payment-signer"), wasm("smart-lock")];
    let mut versions: HashMap<u64, String> = HashMap::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed);
    let sock = dir.join("tee.sock");
    // Boot once without a crash point (makes the Agent key).
    let mut child = start(dir, None);
    let mut installed = 0u64;
    let (mut kept_old, mut got_new) = (0, 0);
    for run in 0..runs {
        let seq = run as u64 + 1;
        let img = &images[run % 2];
        versions.insert(
            seq,
            hex::encode(otrp_crypto::default_provider().sha256(img)),
        );
        tam.publish("payment-signer", img, seq, true).unwrap();
        let by_failpoint = run % 2 == 0;
        if by_failpoint {
            let _ = child.kill();
            let _ = child.wait();
            let step = STEPS[rng.gen_range(0..STEPS.len())];
            child = start(dir, Some(step));
            let _ = rt.block_on(session(&tam, &sock));
        } else {
            let pid = child.id();
            let delay = Duration::from_micros(rng.gen_range(0..40_000));
            let killer = std::thread::spawn(move || {
                std::thread::sleep(delay);
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            });
            let _ = rt.block_on(session(&tam, &sock));
            killer.join().unwrap();
        }
        // Dead by now (abort at the step, or SIGKILL) unless the crash point was not
        // reached; make sure, then restart.
        let _ = child.kill();
        let _ = child.wait();
        child = start(dir, None);
        let st = rt.block_on(status(&sock));
        let now = check(&st, &versions, run);
        assert!(
            now == installed || now == seq,
            "run {run}: holds version {now}, expected {installed} (old) or {seq} (new)"
        );
        if now == seq {
            got_new += 1;
        } else {
            kept_old += 1;
        }
        // The Agent still answers, and a clean session completes the update.
        rt.block_on(session(&tam, &sock)).unwrap();
        let st = rt.block_on(status(&sock));
        installed = check(&st, &versions, run);
        assert_eq!(
            installed, seq,
            "run {run}: the update did not complete after restart"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("{runs} runs: {kept_old} restarted with the old TA, {got_new} with the new one");
    if runs >= 10 {
        assert!(
            kept_old > 0 && got_new > 0,
            "crash points did not cover both outcomes"
        );
    }
}
