//! A TA signed for one vendor by its IANA Private Enterprise Number, end to end as
//! separate processes: `otrp sp publish --vendor-pen N --class-model M` and
//! `otrp tee run --vendor-pen N`. The device configured with that PEN installs it; a
//! device of the same model that answers to its oemid UUID (the default) refuses it on
//! the vendor condition, and so does one of another PEN; neither holds any of it.
//! `cargo test -p otrp --test e2e_vendor`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use common::*;

#[test]
fn a_pen_vendor_manifest_installs_on_devices_of_that_pen_only() {
    let w = SpTam::start("lockco", "locks");
    let (dir, pki, tam, lockco) = (w.dir(), &w.pki, &w.tam, w.token.as_str());
    let ta = ta_path("smart-lock");
    let pen = [
        "--compact",
        "--vendor-pen",
        "32473",
        "--class-model",
        "pen-lock",
    ];
    tam.publish_with(lockco, &ta, "locks/smart-lock", 1, &pen);
    tam.deploy(lockco, "locks/smart-lock", "model:pen-lock", None);

    let mut locks = provision(dir, pki, "pen-lock", 3, "oem-gated");
    locks[0].start_tee_with(&["--vendor-pen", "32473"]);
    locks[1].start_tee();
    locks[2].start_tee_with(&["--vendor-pen", "32474"]);
    let report = &sessions(&[&locks[0]], tam)[0];
    assert!(report.contains("installed: locks:smart-lock"), "{report}");
    assert_eq!(locks[0].digest("locks:smart-lock"), Some(digest_of(&ta)));
    // The others' sessions end in the refusal (the Broker exits non-zero on it).
    for lock in &locks[1..] {
        let out = lock.broker_once(tam).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{report}");
        assert!(
            report.contains("refused: ManifestProcessingFailed: condition VendorIdentifier failed"),
            "{report}"
        );
        assert!(!report.contains("installed: locks:smart-lock"), "{report}");
        assert_eq!(lock.digest("locks:smart-lock"), None);
        assert_eq!(lock.installs("locks:smart-lock"), 0);
    }
}
