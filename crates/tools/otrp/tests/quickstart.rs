//! `otrp quickstart` end to end (small scale): every scenario against the real TAM server
//! over HTTPS, exit 0, the key lines of each scenario and the summary table.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::process::Command;

const OTRP: &str = env!("CARGO_BIN_EXE_otrp");

#[test]
fn quickstart_plays_every_scenario_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(OTRP)
        .args(["quickstart", "--devices-scale", "10", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for line in [
        "Started the TAM (otrp-tam-server, SQLite, OEM-gated) at https://127.0.0.1:",
        "asked its Broker for the payment-signer TA (RequestTA)",
        "3/3 phones run it",
        "each signature verifies under the TA key the TEE reports",
        "10/10 run it",
        "started a staged rollout, first stage 10%: 1 locks updated",
        "the offline lock still runs v1",
        "caught up: 10/10 locks run v2",
        "every drone refuses the airport and accepts the old town",
        "accepted before, is now refused",
        "not yet approved by the OEM, uploads a TA: refused (403",
        "tries to create its own SD `kiosk`: refused (403",
        "is `awaiting-cosign`; after a TEEP session the cars hold nothing",
        "1/1 cars install it",
        "in batch `drones-lot-1`: they share one batch key",
        "the geofence TA and its no-fly zones v1, both encrypted to the batch key",
        "every TEE checked the TAM signature and the batch sequence and installed the TA",
        "A second round answered 304 Not Modified",
        "TAM signatures: 1 for ",
        "as a data-only batch package",
        "drones applied it without re-installing the TA, and each now refuses the old town",
        "Every scenario passed.",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // The summary table: a row per scenario with device counts.
    let table = stdout.split("Summary").nth(1).unwrap();
    for row in [
        "1. Payment",
        "2. Smart locks",
        "3. Drones",
        "4. Management configs",
        "5. Batch",
    ] {
        assert!(table.contains(row), "no row {row:?} in:\n{table}");
    }
    assert!(!table.contains("FAILED"), "{table}");
    // --dir keeps the PKI and the TAM databases.
    assert!(dir.path().join("pki").is_dir());
    assert!(dir.path().join("tam1").join("tam.db").exists());
}

#[test]
fn quickstart_help_explains_the_scenarios() {
    let out = Command::new(OTRP)
        .args(["quickstart", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "Payment",
        "Smart locks",
        "Drones",
        "Management configurations",
        "--devices-scale",
        "--dir",
    ] {
        assert!(help.contains(word), "missing {word:?} in:\n{help}");
    }
}
