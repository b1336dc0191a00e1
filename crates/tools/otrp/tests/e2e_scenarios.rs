//! The quickstart's use cases end to end as separate processes on loopback, one test per
//! scenario (issue #6): the real `otrp tam serve` (SQLite, HTTPS, PKI from `otrp pki
//! init`), devices from `otrp device provision`, each with its own `otrp tee run` and
//! `otrp broker run --once` sessions, admin work only through `otrp oem` / `otrp sp`, Client
//! Apps through `otrp client`. Each scenario checks what a user would see: the TA the TEE
//! holds (digest), invoke outputs, the TAM's refusals (HTTP status in the CLI's error) and
//! the rollout counters, and that every install happened exactly once (the Agent's
//! `installed` events in the TEE daemon's log).
//!
//! Small fleets (1-4 devices per scenario) keep the file well under a minute on 2 cores:
//! `cargo test -p otrp --test e2e_scenarios`.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::*;

/// Payment: the SP publishes the payment-signer TA, the app asks for it (RequestTA), the
/// Broker installs it, the TA signs a transaction and the signature verifies under the
/// key the TA reports (and not for another amount).
#[test]
fn payment_request_ta_installs_the_signer_and_its_signature_verifies() {
    let w = SpTam::start("payco", "payments");
    let (dir, pki, tam, payco) = (w.dir(), &w.pki, &w.tam, w.token.as_str());
    let ta = ta_path("payment-signer");
    tam.publish(payco, &ta, "payments/payment-signer", 1);
    // The SD goes to every phone; the TA itself only where an app asks for it.
    tam.deploy(payco, "payments/sd", "model:phone", None);

    let mut phones = provision(dir, pki, "phone", 2, "oem-gated");
    for p in &mut phones {
        p.start_tee();
        let out = ok(&[
            "client",
            "request-ta",
            "--tee",
            &p.addr(),
            "--ta",
            "payments:payment-signer",
        ]);
        assert!(out.contains("requested payments:payment-signer"), "{out}");
        assert_eq!(p.status()["requested"][0], "payments:payment-signer");
    }
    let reports = sessions(&phones.iter().collect::<Vec<_>>(), tam);
    let want = digest_of(&ta);
    let tx = br#"{"from":"alice","to":"bob","amount":"42.00","currency":"EUR"}"#;
    let tampered = br#"{"from":"alice","to":"bob","amount":"4200.00","currency":"EUR"}"#;
    let provider = otrp_crypto::default_provider();
    let mut keys = Vec::new();
    for (p, report) in phones.iter().zip(&reports) {
        assert!(
            report.contains("installed: payments:payment-signer"),
            "{report}"
        );
        assert_eq!(p.digest("payments:payment-signer"), Some(want.clone()));
        assert_eq!(p.installs("payments:payment-signer"), 1);
        let st = p.status();
        assert!(st["requested"].as_array().unwrap().is_empty(), "{st}");
        assert!(
            st["security_domains"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "payments"),
            "{st}"
        );

        let pk = hex::decode(p.invoke("payment-signer", 1, "").unwrap()).unwrap();
        assert_eq!(pk.len(), 65, "SEC1 uncompressed P-256 point");
        let key = otrp_crypto::PublicKey::P256(
            otrp_crypto::p256::PublicKey::from_sec1_bytes(&pk).unwrap(),
        );
        let sig = hex::decode(p.invoke("payment-signer", 2, &hex::encode(tx)).unwrap()).unwrap();
        assert_eq!(sig.len(), 64);
        provider
            .verify(otrp_crypto::SigAlg::P256Sha256, &key, tx, &sig)
            .unwrap_or_else(|e| panic!("{}: signature does not verify: {e}", p.name));
        assert!(provider
            .verify(otrp_crypto::SigAlg::P256Sha256, &key, tampered, &sig)
            .is_err());
        // The TA counted one signature (sealed storage).
        assert_eq!(
            p.invoke("payment-signer", 3, "").unwrap(),
            "0000000000000001"
        );
        keys.push(pk);
    }
    assert_ne!(keys[0], keys[1], "each TEE generated its own TA key");

    // A second session finds nothing to do.
    for r in sessions(&phones.iter().collect::<Vec<_>>(), tam) {
        assert!(!r.contains("installed:"), "{r}");
    }
    // The TAM's view through the admin CLI.
    let devices: serde_json::Value = serde_json::from_str(&tam.oem(&["devices"])).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 2, "{devices}");
}

/// Smart locks: v1 to every lock; v2 staged (a first stage of one lock, 10% of a fleet of
/// ten, then all): only the first stage gets it, then every online lock; the offline lock
/// keeps v1 until it comes back and catches up. Every lock installs each version once.
#[test]
fn smart_locks_staged_rollout_and_an_offline_lock_catches_up() {
    let w = SpTam::start("lockco", "locks");
    let (dir, pki, tam, lockco) = (w.dir(), &w.pki, &w.tam, w.token.as_str());
    let mut locks = provision(dir, pki, "smart-lock", 4, "oem-gated");
    for l in &mut locks {
        l.start_tee();
        let out = tam.oem(&["register-device", s(&l.dir)]);
        assert!(out.contains("(smart-lock) registered"), "{out}");
    }
    let all: Vec<&Device> = locks.iter().collect();
    let (online, offline) = (&all[..3], all[3]);

    let v1 = ta_path("smart-lock");
    tam.publish(lockco, &v1, "locks/smart-lock", 1);
    let d1 = tam.deploy(lockco, "locks/smart-lock", "model:smart-lock", None);
    sessions(&all, tam);
    for l in &all {
        assert_eq!(
            l.digest("locks:smart-lock"),
            Some(digest_of(&v1)),
            "{}",
            l.name
        );
        // The TA runs: 3 PIN tries left on a fresh lock.
        assert_eq!(l.invoke("smart-lock", 3, "").unwrap(), "03");
    }
    let (state, done, _, failed) = tam.rollout(lockco, d1);
    assert_eq!((state.as_str(), done, failed), ("active", 4, 0));

    // v2: a new build; the v1 deployment is closed, v2 starts with a stage of one lock.
    let ok_abort = tam.sp(lockco, &["deployment", &d1.to_string(), "abort"]);
    assert!(ok_abort.contains("is aborted"), "{ok_abort}");
    let v2 = rebuilt(&v1, "2", &dir.join("smart-lock-v2.wasm"));
    tam.publish(lockco, &v2, "locks/smart-lock", 2);
    let d2 = tam.deploy(lockco, "locks/smart-lock", "model:smart-lock", Some("1"));
    // One session at a time: the TAM counts a stage's devices as it sends.
    for l in online {
        sessions(&[*l], tam);
    }
    let on_v2 = online
        .iter()
        .filter(|l| l.digest("locks:smart-lock") == Some(digest_of(&v2)))
        .count();
    assert_eq!(on_v2, 1, "the first stage reaches exactly one lock");
    let (_, done, _, _) = tam.rollout(lockco, d2);
    assert_eq!(done, 1);

    // Second stage: everyone; the offline lock runs no session.
    let d3 = tam.deploy(lockco, "locks/smart-lock", "model:smart-lock", None);
    sessions(online, tam);
    for l in online {
        assert_eq!(
            l.digest("locks:smart-lock"),
            Some(digest_of(&v2)),
            "{}",
            l.name
        );
    }
    assert_eq!(offline.digest("locks:smart-lock"), Some(digest_of(&v1)));
    let (_, done, _, _) = tam.rollout(lockco, d3);
    assert!(done >= 2, "the second stage counted {done} locks");

    // The offline lock comes back: its next session brings it to v2.
    let r = sessions(&[offline], tam);
    assert!(r[0].contains("installed: locks:smart-lock"), "{}", r[0]);
    assert_eq!(offline.digest("locks:smart-lock"), Some(digest_of(&v2)));
    assert_eq!(offline.invoke("smart-lock", 3, "").unwrap(), "03");
    for l in &all {
        // v1 once and v2 once: two installs, never a repeat.
        assert_eq!(l.installs("locks:smart-lock"), 2, "{}", l.name);
        let m = l.status()["manifests"].clone();
        assert!(
            m.as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == "locks:smart-lock" && m["sequence_number"] == 2),
            "{m}"
        );
    }
}

const ZONES_V1: &str = r#"{"version": 1, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}}
]}"#;

const ZONES_V2: &str = r#"{"version": 2, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}},
  {"name": "old town", "circle": {"lat": 48.1374, "lon": 11.5755, "radius_m": 1500}}
]}"#;

/// Drones: the geofence TA fails closed without zones; no-fly zones arrive as
/// personalization data for a tag (`otrp sp personalize`); the airport is refused, the
/// old town allowed; zones v2 add the old town, which `otrp client invoke` then refuses.
#[test]
fn drones_personalization_data_refuses_a_point_in_the_new_zone() {
    let w = SpTam::start("droneco", "drones");
    let (dir, pki, tam, droneco) = (w.dir(), &w.pki, &w.tam, w.token.as_str());
    let mut drones = provision(dir, pki, "drone", 2, "oem-gated");
    for d in &mut drones {
        d.start_tee();
        let out = tam.oem(&["register-device", s(&d.dir), "--tag", "munich-fleet"]);
        assert!(out.contains("with tags munich-fleet"), "{out}");
    }
    let all: Vec<&Device> = drones.iter().collect();
    let ta = ta_path("drone-geofence");
    tam.publish(droneco, &ta, "drones/geofence", 1);
    tam.deploy(droneco, "drones/geofence", "model:drone", None);
    sessions(&all, tam);
    let airport = point_hex(48.3538, 11.7861);
    let old_town = point_hex(48.1374, 11.5755);
    for d in &all {
        assert_eq!(d.digest("drones:geofence"), Some(digest_of(&ta)));
        // No zones yet: the TA fails closed.
        let err = d.invoke("geofence", 1, &airport).unwrap_err();
        assert!(!err.is_empty());
    }

    let k = tam.signer();
    let personalize = |file: &str, zones: &str, seq: &str| {
        let path = dir.join(file);
        std::fs::write(&path, zones).unwrap();
        let mut args = vec![
            "personalize",
            s(&path),
            "--component",
            "drones/geofence/perso",
            "--seq",
            seq,
            "--target",
            "tag:munich-fleet",
        ];
        args.extend(k.iter().map(String::as_str));
        let out = tam.sp(droneco, &args);
        assert!(
            out.contains(&format!("personalization drones/geofence/perso #{seq}")),
            "{out}"
        );
    };
    personalize("zones-v1.json", ZONES_V1, "1");
    sessions(&all, tam);
    for d in &all {
        // [1, zone 0 (u32 BE)]: inside the airport zone.
        assert_eq!(d.invoke("geofence", 1, &airport).unwrap(), "0100000000");
        assert_eq!(d.invoke("geofence", 1, &old_town).unwrap(), "00");
        // info: version 1, one zone.
        assert_eq!(d.invoke("geofence", 2, "").unwrap(), "0000000100000001");
    }

    personalize("zones-v2.json", ZONES_V2, "2");
    sessions(&all, tam);
    for d in &all {
        // The old town, allowed before, is now refused: zone index 1.
        assert_eq!(d.invoke("geofence", 1, &old_town).unwrap(), "0100000001");
        assert_eq!(d.invoke("geofence", 2, "").unwrap(), "0000000200000002");
        assert_eq!(d.installs("drones:geofence"), 1, "{}", d.name);
    }
    // The data can only go to devices or tags.
    let path = dir.join("zones-v2.json");
    let mut args = vec![
        "personalize",
        s(&path),
        "--component",
        "drones/geofence/perso",
        "--seq",
        "3",
        "--target",
        "model:drone",
    ];
    args.extend(k.iter().map(String::as_str));
    let err = tam.sp_refused(droneco, &args);
    assert!(err.contains("400"), "{err}");
}

/// Management configurations, one TAM per configuration (it is TAM-wide), one refused
/// operation each, shown as a user sees it (the CLI's error with the HTTP status), and
/// the allowed operation that follows.
#[test]
fn management_configurations_refuse_one_operation_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = pki_init(dir);
    let image = ta_path("smart-lock");

    // OEM-gated: an SP the OEM has not approved cannot publish.
    let tam = Tam::start(dir, "gated", &pki, "", &["--policy", "oem-gated"]);
    let newco = tam.sp_account("newco", false);
    tam.grant_sd("newco", "newco");
    let k = tam.signer();
    let mut args = vec![
        "publish",
        s(&image),
        "--component",
        "newco/app",
        "--seq",
        "1",
    ];
    args.extend(k.iter().map(String::as_str));
    let err = tam.sp_refused(&newco, &args);
    assert!(err.contains("403"), "{err}");
    tam.oem(&["approve-sp", "newco"]);
    tam.publish(&newco, &image, "newco/app", 1);
    let mut tablets = provision(dir, &pki, "gated-tablet", 1, "oem-gated");
    tablets[0].start_tee();
    tam.deploy(&newco, "newco/app", "model:gated-tablet", None);
    sessions(&[&tablets[0]], &tam);
    assert_eq!(tablets[0].digest("newco:app"), Some(digest_of(&image)));
    drop(tam);

    // OEM-owned SDs: an approved SP cannot create its own SD; the OEM creates it.
    let tam = Tam::start(dir, "oemsd", &pki, "", &["--policy", "oem-owned-sd"]);
    let kioskco = tam.sp_account("kioskco", true);
    let chain = pki.join("issued/sp/sp1.chain.pem");
    let err = tam.oem_cmd_refused(
        &kioskco,
        &[
            "grant-sd",
            "kiosk",
            "--sp",
            "kioskco",
            "--signer-chain",
            s(&chain),
        ],
    );
    assert!(err.contains("403"), "{err}");
    tam.grant_sd("kiosk", "kioskco");
    let out = tam.publish(&kioskco, &image, "kiosk/app", 1);
    assert!(out.contains("status ready"), "{out}");
    drop(tam);

    // Dual control: the SP's manifest alone waits for the OEM's co-signature and is not
    // delivered: after a session the car holds nothing of it.
    let tam = Tam::start(dir, "dual", &pki, "", &["--policy", "dual-control"]);
    let carco = tam.sp_account("carco", true);
    tam.grant_sd("car", "carco");
    let out = tam.publish(&carco, &image, "car/app", 1);
    assert!(out.contains("status awaiting-cosign"), "{out}");
    let mut cars = provision(dir, &pki, "dual-car", 1, "dual-control");
    cars[0].start_tee();
    let d = tam.deploy(&carco, "car/app", "model:dual-car", None);
    let r = sessions(&[&cars[0]], &tam);
    assert!(!r[0].contains("installed: car:app"), "{}", r[0]);
    assert_eq!(cars[0].digest("car:app"), None);
    assert_eq!(cars[0].installs("car:app"), 0);
    let (_, done, _, _) = tam.rollout(&carco, d);
    assert_eq!(done, 0);
}

/// Batch: sensors provisioned in one batch share a batch key; after their first attested
/// session the SP publishes ONE package (`otrp sp batch publish --ta ...`: the TA is
/// encrypted to the batch key and signed here, the TAM signs the package once); every
/// sensor's Broker fetches the same bytes, its TEE installs the TA, the reports come back
/// (`otrp sp batch status`: applied by every sensor, one TAM signature), and later rounds
/// apply nothing again.
#[test]
fn batch_one_package_signed_once_installs_on_every_sensor() {
    let w = SpTam::start("sensorco", "sensors");
    let sensors = provision_with(w.dir(), &w.pki, "sensor", 3, &["--batch", "lot-7"]);
    batch_flow(&w, sensors);
}

/// The same with sensors provisioned with report keys (`otrp device provision --batch
/// lot-7 --report-key`) and the TAM given the batch's report master
/// (`[[batch_report_master]]` in tam.toml): their reports are MAC'd, and counted alike.
#[test]
fn batch_with_report_keys_counts_maced_reports() {
    let mut sensors = Vec::new();
    let w = SpTam::start_after("sensorco", "sensors", |dir, pki| {
        sensors = provision_with(dir, pki, "sensor", 3, &["--batch", "lot-7", "--report-key"]);
        let master = pki.join("batch/lot-7.report-master.key");
        assert!(master.is_file(), "the PKI holds the batch's report master");
        format!(
            "[[batch_report_master]]\nbatch = \"lot-7\"\nfile = {:?}\n",
            s(&master)
        )
    });
    let shown = ok(&["device", "show", s(&sensors[0].dir), "--pki", s(&w.pki)]);
    assert!(shown.contains("report key: MAC'd reports"), "{shown}");
    batch_flow(&w, sensors);
}

fn batch_flow(w: &SpTam, mut sensors: Vec<Device>) {
    let (pki, tam, sensorco) = (&w.pki, &w.tam, w.token.as_str());
    let n = sensors.len();
    for d in &mut sensors {
        d.start_tee();
    }
    let brokers: Vec<Proc> = sensors.iter().map(|d| d.broker(tam, "0.3")).collect();
    // First contact: one attested TEEP session each makes the TAM know their Agent keys.
    wait_for(
        "the sensors' first sessions",
        Duration::from_secs(60),
        || {
            let v: serde_json::Value = serde_json::from_str(&tam.oem(&["devices"])).unwrap();
            v.as_array().map_or(0, Vec::len) == n
        },
    );
    let image = ta_path("smart-lock");
    let batch_key = pki.join("batch/lot-7.pub.pem");
    let args = [
        "batch",
        "publish",
        "--batch",
        "lot-7",
        "--component",
        "sensors/sensor-ta",
        "--ta",
        s(&image),
        "--seq",
        "1",
        "--batch-key",
        s(&batch_key),
    ];
    let out = tam.sp_signed(sensorco, &args);
    assert!(out.contains("image encrypted to batch lot-7"), "{out}");
    assert!(out.contains("published lot-7 #1"), "{out}");
    assert!(out.contains("1 TAM signature(s)"), "{out}");

    let want = digest_of(&image);
    wait_for(
        "every sensor to install the TA",
        Duration::from_secs(60),
        || {
            sensors
                .iter()
                .all(|d| d.digest("sensors:sensor-ta").as_deref() == Some(want.as_str()))
        },
    );
    wait_for("every sensor's report", Duration::from_secs(60), || {
        tam.sp(sensorco, &["batch", "status", "--batch", "lot-7"])
            .contains(&format!("applied {n} · failed 0"))
    });
    // More rounds pass (brokers poll every 0.3 s): nothing is applied twice.
    std::thread::sleep(Duration::from_millis(1000));
    drop(brokers);
    let st = tam.sp(sensorco, &["batch", "status", "--batch", "lot-7"]);
    assert!(st.contains("1 TAM signature(s)"), "{st}");
    assert!(st.contains(&format!("applied {n} · failed 0")), "{st}");
    assert!(
        st.contains(&format!("reports on the newest package: {n}")),
        "{st}"
    );
    for d in &sensors {
        assert_eq!(d.digest("sensors:sensor-ta"), Some(want.clone()));
        assert_eq!(d.invoke("sensor-ta", 3, "").unwrap(), "03");
    }
}
