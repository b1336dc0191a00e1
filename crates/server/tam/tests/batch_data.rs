//! Fleet data updates in batch packages through the real TAM server: an SP publishes the
//! drone geofence TA (`tas/dist/drone-geofence.wasm`) with its no-fly zones as batch data
//! (`data: ["SD/TA"]`, component `SD/TA/perso`, encrypted to the batch key), then new
//! zones alone. Real TEEs (the daemon's `Tee`, as the fleet runs them) fetch the package
//! over HTTPS through their Brokers, every one the same bytes, install the data for the
//! TA, and the TA answers from the new zones; a replayed or tampered package is refused
//! and changes nothing; the TAM refuses plaintext data (the package is public) and data
//! for another SP's TA. SQLite.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;

use common::*;
use otrp_broker::{batch_round, batch_url, BatchState};
use otrp_fleet::{Fleet, FleetOptions};
use otrp_pki::device::MgmtConfig;
use otrp_tam_server::publish;
use reqwest::{header, StatusCode};
use serde_json::json;

const BATCH: &str = "drones-7";
const MODEL: &str = "batch-drone";
const DEVICES: usize = 4;
const TA: &str = "sd1/geofence";

const ZONES_V1: &str = r#"{"version": 1, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}}
]}"#;

const ZONES_V2: &str = r#"{"version": 2, "zones": [
  {"name": "airport", "circle": {"lat": 48.3538, "lon": 11.7861, "radius_m": 5000}},
  {"name": "old town", "circle": {"lat": 48.1374, "lon": 11.5755, "radius_m": 1500}}
]}"#;

fn geofence_wasm() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tas/dist/drone-geofence.wasm"
    ))
    .expect("tas/dist/drone-geofence.wasm")
}

fn point(lat: f64, lon: f64) -> Vec<u8> {
    let mut p = lat.to_le_bytes().to_vec();
    p.extend_from_slice(&lon.to_le_bytes());
    p
}

fn batch_public_pem(f: &Fixture) -> String {
    let rec = f
        .pki
        .index()
        .batches
        .iter()
        .find(|b| b.name == BATCH)
        .expect("batch key made at provisioning");
    String::from_utf8(f.pki.file(&rec.public).unwrap().to_vec()).unwrap()
}

async fn upload(api: &Api, sp: &str, f: &Fixture, env: &[u8]) {
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            sp,
            publish::upload_body(env, &f.sp_chain_pem(), None),
        )
        .await,
    )
    .await;
}

async fn upload_zones(api: &Api, sp: &str, f: &Fixture, zones: &str, seq: u64) {
    let env = publish::data_envelope_for_batch(
        provider(),
        &f.sp_key(),
        TA,
        seq,
        zones.as_bytes(),
        BATCH,
        &batch_public_pem(f),
    )
    .unwrap();
    upload(api, sp, f, &env).await;
}

/// The geofence TA's answer for a point: `[0]` allowed, `[1, zone index (u32 BE)]` refused.
fn check(d: &otrp_fleet::FleetDevice, p: &[u8]) -> Vec<u8> {
    d.invoke("geofence", 1, p).unwrap()
}

/// The TA's zone set: version (u32 BE) || zone count (u32 BE).
fn zone_version(d: &otrp_fleet::FleetDevice) -> Vec<u8> {
    d.invoke("geofence", 2, &[]).unwrap()
}

/// (manifest id, sequence number) of everything installed on a device.
fn manifests(d: &otrp_fleet::FleetDevice) -> Vec<(String, u64)> {
    d.status()
        .unwrap()
        .manifests
        .iter()
        .map(|m| (m.id.clone(), m.sequence_number))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_no_fly_zones_travel_in_batch_packages() {
    let mut f = Fixture::new("batch-data", Backend::Sqlite);
    f.config
        .reference
        .push(otrp_tam_server::config::ReferenceConfig {
            model: MODEL.into(),
            measurements: vec![hex::encode(otrp_tee_daemon::tee_measurement())],
            hwversions: Vec::new(),
        });
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let mut opts = FleetOptions::new(MODEL, MgmtConfig::OemOwnedSd);
    opts.batch = Some(BATCH.into());
    opts.tams = oem_tams(&f.pki);
    let fleet = Fleet::provision_with(&mut f.pki, DEVICES, &opts, None).unwrap();
    let http = broker_http(&f.pki);
    // First contact binds the Agent keys the reports are checked with.
    let s = fleet
        .run_with(&http, &server.tam_url(), &Default::default(), None)
        .await;
    assert!(s.all_converged(), "{s}");
    let web = client(&f.pki);
    let url = batch_url(&server.tam_url(), BATCH);

    // Package 1: the geofence TA and its zones v1, both encrypted to the batch key.
    let ta = publish::ta_envelope_for_batch(
        provider(),
        &f.sp_key(),
        TA,
        1,
        &geofence_wasm(),
        BATCH,
        &batch_public_pem(&f),
    )
    .unwrap();
    upload(&api, &t.sp, &f, &ta).await;
    upload_zones(&api, &t.sp, &f, ZONES_V1, 1).await;
    let publish_pkg = |body: serde_json::Value| {
        let api = &api;
        let sp = t.sp.clone();
        async move {
            api.post(&format!("/api/v1/batches/{BATCH}/packages"), &sp, body)
                .await
        }
    };
    let p1 = api
        .ok(
            StatusCode::CREATED,
            publish_pkg(json!({"components": [TA], "data": [TA]})).await,
        )
        .await;
    let contents = p1["contents"].as_str().unwrap();
    assert!(
        contents.contains("sd1/geofence#1") && contents.ends_with("sd1/geofence/perso#1"),
        "{p1}"
    );
    assert_eq!(p1["tam_signatures"], 1, "{p1}");
    let r = web.get(&url).send().await.unwrap();
    let v1 = r.bytes().await.unwrap().to_vec();
    let v1_etag = format!("\"{}\"", hex::encode(&provider().sha256(&v1)[..16]));
    assert_eq!(p1["etag"].as_str(), Some(v1_etag.as_str()));

    let airport = point(48.3538, 11.7861);
    let old_town = point(48.1374, 11.5755);
    let mut states = Vec::new();
    for d in fleet.devices() {
        let mut tee = d.tee().clone();
        let mut st = BatchState::default();
        let round = batch_round(&http, &server.tam_url(), &mut tee, &mut st)
            .await
            .unwrap();
        assert_eq!(
            round.applied.clone().unwrap().outcome,
            "applied",
            "{round:?}"
        );
        assert_eq!(round.reports_sent, 1, "{round:?}");
        // The same bytes for every device: the ETag is their hash.
        assert_eq!(round.package_bytes, v1.len());
        assert_eq!(st.etag.as_deref(), Some(v1_etag.as_str()));
        // The TA reads its zones: the airport is refused (zone 0), the old town allowed.
        assert_eq!(check(d, &airport), [1, 0, 0, 0, 0]);
        assert_eq!(check(d, &old_town), [0]);
        assert_eq!(zone_version(d), [0, 0, 0, 1, 0, 0, 0, 1]);
        states.push(st);
    }

    // Package 2: new zones alone, for the installed TA.
    upload_zones(&api, &t.sp, &f, ZONES_V2, 2).await;
    let p2 = api
        .ok(
            StatusCode::CREATED,
            publish_pkg(json!({"data": [TA]})).await,
        )
        .await;
    let contents = p2["contents"].as_str().unwrap();
    assert!(
        !contents.contains("sd1/geofence#") && contents.ends_with("sd1/geofence/perso#2"),
        "{p2}"
    );
    let v2 = get_bytes(&web, &url).await;
    for (d, st) in fleet.devices().iter().zip(states.iter_mut()) {
        let mut tee = d.tee().clone();
        let round = batch_round(&http, &server.tam_url(), &mut tee, st)
            .await
            .unwrap();
        assert_eq!(
            round.applied.clone().unwrap().outcome,
            "applied",
            "{round:?}"
        );
        assert_eq!(round.package_bytes, v2.len());
        assert_eq!(st.etag.as_deref(), p2["etag"].as_str());
        // The old town, allowed before, is refused now (zone 1).
        assert_eq!(check(d, &old_town), [1, 0, 0, 0, 1]);
        assert_eq!(zone_version(d), [0, 0, 0, 2, 0, 0, 0, 2]);
        let ta_seq = d
            .status()
            .unwrap()
            .manifests
            .iter()
            .find(|m| m.id.ends_with("geofence"))
            .map(|m| m.sequence_number);
        assert_eq!(ta_seq, Some(1), "the TA itself was not re-installed");
    }
    api.batch_all_applied(BATCH, &t.sp, 1, DEVICES).await;

    // Replayed package 1 (zones v1) and a tampered package 2: refused, nothing changes.
    let d0 = &fleet.devices()[0];
    let mut tampered = v2.clone();
    let at = tampered.len() - 80;
    tampered[at] ^= 1;
    for (pkg, expected) in [(&v1, "rollback"), (&v2, "already-applied"), (&tampered, "")] {
        let before = manifests(d0);
        let r = d0
            .tee()
            .0
            .lock()
            .unwrap()
            .apply_batch(pkg, None, now())
            .unwrap();
        if expected.is_empty() {
            assert!(
                ["untrusted", "not-batch"].contains(&r.outcome.as_str()),
                "{r:?}"
            );
        } else {
            assert_eq!(r.outcome, expected, "{r:?}");
        }
        assert_eq!(manifests(d0), before);
        assert_eq!(zone_version(d0), [0, 0, 0, 2, 0, 0, 0, 2]);
    }

    // The TAM refuses plaintext data (anyone may fetch a batch package)…
    let plain = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/geofence/perso",
        3,
        ZONES_V1.as_bytes(),
        &publish::Payload::Integrated,
    )
    .unwrap();
    upload(&api, &t.sp, &f, &plain).await;
    let (st, body) = publish_pkg(json!({"data": [TA]})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["hint"].as_str().unwrap().contains("--batch-key"),
        "{body}"
    );
    // …and data for another SP's TA.
    let sp2 = approved_sp(&api, &t.oem, "sp2").await;
    let (st, body) = api
        .post(
            "/api/v1/batches/lot-x/packages",
            &sp2,
            json!({"data": [TA]}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    // No new package was made by the refusals.
    let r = web
        .get(&url)
        .header(header::IF_NONE_MATCH, p2["etag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    drop(server);
    f.cleanup().await;
}
