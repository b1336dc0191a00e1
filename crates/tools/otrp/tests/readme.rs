//! The README's "Running a real TAM and a device" commands, run as written by
//! `scripts/readme-check.sh` against the `otrp` binary of this build: the TA installs on
//! the provisioned device, the Client App's invoke answers, the rollout completes.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::process::Command;

#[test]
fn readme_real_tam_and_device_commands_work_as_written() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let out = Command::new("bash")
        .arg(repo.join("scripts/readme-check.sh"))
        .arg(env!("CARGO_BIN_EXE_otrp"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/readme-check.sh failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("readme-check: OK (3 README blocks"),
        "{stdout}"
    );
}
