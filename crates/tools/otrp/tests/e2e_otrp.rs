//! The OTrP profile end to end as separate processes on loopback: the real `otrp tam
//! serve` (SQLite, HTTPS, PKI from `otrp pki init`), a device from `otrp device
//! provision` with its `otrp tee run`, and `otrp broker run --profile otrp --once`
//! sessions (OTrP JSON over HTTPS: GetDeviceState, CreateSD, InstallTA, 204). The TA the
//! TEE then holds is the published one and runs; a second session installs nothing.
//!
//! `cargo test -p otrp --test e2e_otrp`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::process::Output;

use common::*;

fn otrp_session(d: &Device, tam: &Tam) -> Output {
    let ca = tam.pki.join("tam/root-ca.pem");
    cmd(&[
        "broker",
        "run",
        "--profile",
        "otrp",
        "--tam",
        &tam.url(),
        "--tee",
        &d.addr(),
        "--tam-ca",
        s(&ca),
        "--once",
    ])
    .output()
    .unwrap()
}

#[test]
fn broker_otrp_profile_installs_a_ta_through_the_real_tam_and_tee() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = pki_init(dir);
    let tam = Tam::start(dir, "tam", &pki, "require_tfw_endorsement = true\n", &[]);
    let payco = tam.sp_account("payco", true);
    // Granting the SD with the signer chain also registers the SP's OTrP spcert.
    tam.grant_sd("payments", "payco");
    // The SP may also register it itself.
    let chain = pki.join("issued/sp/sp1.chain.pem");
    let out = tam.sp(&payco, &["sd", "otrp-cert", "--cert", s(&chain)]);
    assert!(out.contains("OTrP spcert of payco registered"), "{out}");
    let ta = ta_path("payment-signer");
    tam.publish(&payco, &ta, "payments/payment-signer", 1);
    let mut devices = provision(dir, &pki, "phone", 1, "oem-gated");
    let d = &mut devices[0];
    d.start_tee();
    tam.oem(&["register-device", s(&d.dir)]);
    let dep = tam.deploy(&payco, "payments/payment-signer", "model:phone", None);

    let out = otrp_session(d, &tam);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "broker: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // GetDeviceState, CreateSD, InstallTA: three TAM messages, three answers.
    assert!(
        stdout.contains("session complete: 3 TAM message(s), 3 repl(ies)"),
        "{stdout}"
    );
    assert!(stdout.contains("sd-created: payments"), "{stdout}");
    assert!(
        stdout.contains("installed: payments:payment-signer"),
        "{stdout}"
    );
    assert_eq!(
        d.digest("payments:payment-signer"),
        Some(digest_of(&ta)),
        "{}",
        d.status()
    );
    assert_eq!(d.installs("payments:payment-signer"), 1);
    let (_, done, _, failed) = tam.rollout(&payco, dep);
    assert_eq!((done, failed), (1, 0));

    // The TA installed over OTrP runs like one installed over TEEP.
    let pk = hex::decode(d.invoke("payment-signer", 1, "").unwrap()).unwrap();
    assert_eq!(pk.len(), 65, "SEC1 uncompressed P-256 point");

    // Nothing left: GetDeviceState, then 204.
    let out = otrp_session(d, &tam);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("session complete: 1 TAM message(s), 1 repl(ies)"),
        "{stdout}"
    );
    assert_eq!(d.installs("payments:payment-signer"), 1);
}
