//! The OTrP batch command package (our extension) through the real TAM server over HTTPS:
//! the OEM registers the shared device key of a model, the SP publishes one package
//! (CreateSD + InstallTA; the TAM builds and signs it once), several real simulated TEEs
//! of the model (provisioned with `--batch`, booted as `otrp tee run` does, each bound to
//! the TAM by one OTrP GetDeviceState) get the same bytes through the Broker's
//! `otrp_batch_round` (200, then 304 with the ETag), install, and their TEE-signed
//! results are counted in the admin API. An UpdateTA package follows; a replayed or older
//! package is refused by the device with nothing changed and nothing reported; a device
//! of another model cannot decrypt it and reports `fail`; results signed by a key the TAM
//! never bound, for a package never published or for another model are refused.
//! SQLite always, PostgreSQL when `OTRP_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;
#[path = "common/otrp_tee.rs"]
mod otrp_tee;

use std::time::Duration;

use common::*;
use otrp_broker::{otrp_batch_round, otrp_batch_url, run_otrp_session, Http};
use otrp_broker::{OtrpBatchRound, OtrpBatchState};
use otrp_pki::device::{MgmtConfig, ProvisionRequest};
use otrp_tam_server::publish::{self, Payload};
use otrp_tam_server::RunningServer;
use otrp_tee::{boot_otrp, OtrpDevice};
use otrp_tee_daemon::OtrpBatchApplied;
use reqwest::header;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The device model (= the batch its devices were provisioned with = the package id).
const LOCKS: &str = "door-lock-b";
/// Another model, with its own shared key.
const OTHER: &str = "thermostat-b";
const DEVICES: usize = 4;

fn boot(f: &mut Fixture, seed: u64, batch: &str) -> OtrpDevice {
    boot_with(f, seed, batch, MgmtConfig::OemOwnedSd, true)
}

/// A device of batch `batch` under management configuration `config`, trusting the TAM
/// as the OEM's TAM (`oem_tam`, `otrp tee run --oem-tam-cert`) or as an SP's.
fn boot_with(
    f: &mut Fixture,
    seed: u64,
    batch: &str,
    config: MgmtConfig,
    oem_tam: bool,
) -> OtrpDevice {
    let mut req = ProvisionRequest::new(MODEL);
    req.batch = Some(batch.into());
    req.config = config;
    boot_otrp(f, seed, &req, oem_tam)
}

impl OtrpDevice {
    fn version(&self) -> Option<u64> {
        let st = self.tee.lock().unwrap().status().unwrap();
        st.manifests
            .iter()
            .find(|m| m.id.contains("hello-ta"))
            .map(|m| m.sequence_number)
    }

    /// Applies `package` (bytes as fetched) in this device's TEE directly, without a Broker.
    fn apply(&self, package: &[u8]) -> OtrpBatchApplied {
        let mut tee = self.tee.lock().unwrap();
        tee.apply_otrp_batch(package, now()).unwrap()
    }

    /// Whether the TEE holds a component of security domain `sd1`.
    fn holds_sd1(&self) -> bool {
        let st = self.tee.lock().unwrap().status().unwrap();
        st.components.iter().any(|c| c.id.starts_with("sd1"))
    }
}

fn batch_public_pem(f: &Fixture, name: &str) -> String {
    let rec = f
        .pki
        .index()
        .batches
        .iter()
        .find(|b| b.name == name)
        .expect("batch key made at provisioning");
    String::from_utf8(f.pki.file(&rec.public).unwrap().to_vec()).unwrap()
}

/// The body of `PUT /api/v1/otrp-batches/{model}/key`: the model's shared public key.
fn key_body(f: &Fixture, model: &str) -> Value {
    json!({"public_key_pem": batch_public_pem(f, model), "tee": otrp_tee_daemon::OTRP_TEE_NAME})
}

/// The OEM registers `model`'s shared key (200); returns the TAM's answer.
async fn register_key(f: &Fixture, api: &Api, t: &Tenants, model: &str) -> Value {
    let path = format!("/api/v1/otrp-batches/{model}/key");
    api.ok(
        StatusCode::OK,
        put(api, &path, &t.oem, key_body(f, model)).await,
    )
    .await
}

/// sp1 publishes a package for `model` (`body`: components, update flag) (201); returns it.
async fn publish_package(api: &Api, t: &Tenants, model: &str, body: Value) -> Value {
    let path = format!("/api/v1/otrp-batches/{model}/packages");
    api.ok(StatusCode::CREATED, api.post(&path, &t.sp, body).await)
        .await
}

/// `model`'s batch (packages and their counters) as `token` sees it (200).
async fn batch_record(api: &Api, token: &str, model: &str) -> Value {
    let path = format!("/api/v1/otrp-batches/{model}");
    api.ok(StatusCode::OK, api.get(&path, token).await).await
}

/// The body of `GET url` (a package as the TAM serves it).
async fn fetch(web: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = web.get(url).send().await.unwrap();
    r.bytes().await.unwrap().to_vec()
}

/// Whether `applied` reports the event `kind` with `detail`.
fn has_event(applied: &OtrpBatchApplied, kind: &str, detail: &str) -> bool {
    applied
        .events
        .iter()
        .any(|e| e.kind == kind && e.detail == detail)
}

/// A Broker round that applied the first package: SD `sd1` created, its one result taken
/// by the TAM, the device at version 1.
fn assert_first_package_applied(round: &OtrpBatchRound, d: &OtrpDevice) {
    let applied = round.applied.clone().unwrap();
    assert_eq!(applied.outcome, "applied", "{applied:?}");
    assert!(has_event(&applied, "sd-created", "sd1"), "{applied:?}");
    assert_eq!(
        (round.results_sent, round.results_refused.len()),
        (1, 0),
        "{round:?}"
    );
    assert_eq!(d.version(), Some(1));
}

/// A started server with what every test here talks to it with.
struct Started {
    server: RunningServer,
    api: Api,
    t: Tenants,
    /// The TAM URL (`.../tam`).
    url: String,
    /// The Brokers' HTTP client.
    http: Http,
}

/// Starts `f`'s server and makes its OEM and SP (sp1) tenants.
async fn start(f: &Fixture) -> Started {
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(f, &api).await;
    let url = server.tam_url();
    let http = broker_http(&f.pki);
    Started {
        server,
        api,
        t,
        url,
        http,
    }
}

async fn upload(f: &Fixture, api: &Api, t: &Tenants, seq: u64) {
    let body = format!("\0asm\x01\0\0\0 hello TA v{seq}");
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        seq,
        body.as_bytes(),
        &Payload::Integrated,
    )
    .unwrap();
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            &t.sp,
            publish::upload_body(&env, &f.sp_chain_pem(), Some("hello")),
        )
        .await,
    )
    .await;
}

async fn put(api: &Api, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    api.call(reqwest::Method::PUT, path, token, Some(body))
        .await
}

/// Registers the device and runs its first OTrP session (GetDeviceState binds its TEE
/// certificate; nothing is deployed, so the TAM answers 204 next).
async fn first_contact(api: &Api, t: &Tenants, http: &Http, url: &str, d: &OtrpDevice) {
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/devices",
            &t.oem,
            json!({
                "device": d.public,
                "tee_chain_pem": d.tee_chain_pem,
                "agent_key_pem": d.agent_key_pem(),
                "tags": [],
            }),
        )
        .await,
    )
    .await;
    let r = run_otrp_session(http, url, &mut d.link()).await.unwrap();
    assert_eq!((r.tam_messages, r.tee_replies), (1, 1), "{r:?}");
}

async fn otrp_batch_flow(backend: Backend) {
    let mut f = Fixture::new("otrp_batch", backend);
    let Started {
        server,
        api,
        t,
        url,
        http,
    } = start(&f).await;
    let web = client(&f.pki);

    let devs: Vec<OtrpDevice> = (0..DEVICES as u64)
        .map(|i| boot(&mut f, 700 + i, LOCKS))
        .collect();
    let other = boot(&mut f, 790, OTHER);
    for d in devs.iter().chain(std::iter::once(&other)) {
        first_contact(&api, &t, &http, &url, d).await;
    }
    upload(&f, &api, &t, 1).await;

    // No key registered yet: publishing is refused (409); only the OEM may register one.
    let publish_path = format!("/api/v1/otrp-batches/{LOCKS}/packages");
    let (st, body) = api
        .post(
            &publish_path,
            &t.sp,
            json!({"components": ["sd1/hello-ta"]}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let key_path = format!("/api/v1/otrp-batches/{LOCKS}/key");
    let (st, body) = put(&api, &key_path, &t.sp, key_body(&f, LOCKS)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let k = register_key(&f, &api, &t, LOCKS).await;
    assert_eq!(k["key_type"], "P-256", "{k}");

    // Nothing published: 404, and a Broker round does nothing.
    let pkg_url = otrp_batch_url(&url, LOCKS);
    assert_eq!(
        web.get(&pkg_url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // One package: CreateSD + InstallTA, one TAM signature.
    let p1 = publish_package(&api, &t, LOCKS, json!({"components": ["sd1/hello-ta"]})).await;
    assert_eq!(p1["seq"], 1, "{p1}");
    assert_eq!(
        p1["tam_signatures"], 1,
        "one TAM signature per package: {p1}"
    );
    assert_eq!(
        p1["contents"], "create-sd sd1, install sd1/hello-ta#1",
        "{p1}"
    );

    // HTTP: 200 with ETag, the OTrP media type and a public Cache-Control; then 304.
    let r = web.get(&pkg_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/otrp+json");
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, p1["etag"].as_str().unwrap());
    assert!(r.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("public"));
    let v1 = r.bytes().await.unwrap().to_vec();
    assert!(v1.starts_with(b"{\"OTrPBatchPackage\""));
    let r = web
        .get(&pkg_url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // Every device's Broker gets the same bytes; its TEE installs; the result is counted.
    let mut states = Vec::new();
    for d in &devs {
        let mut st = OtrpBatchState::default();
        let round = otrp_batch_round(&http, &url, &mut d.link(), &mut st)
            .await
            .unwrap();
        assert_eq!(round.model.as_deref(), Some(LOCKS));
        assert_eq!(round.fetch_status, Some(200));
        assert_eq!(
            round.package_bytes,
            v1.len(),
            "the same bytes for every device"
        );
        assert_first_package_applied(&round, d);
        let applied = round.applied.clone().unwrap();
        assert!(
            has_event(&applied, "installed", "sd1:hello-ta"),
            "{applied:?}"
        );
        let again = otrp_batch_round(&http, &url, &mut d.link(), &mut st)
            .await
            .unwrap();
        assert_eq!(again.fetch_status, Some(304));
        assert!(
            again.applied.is_none() && again.results_sent == 0,
            "{again:?}"
        );
        states.push(st);
    }
    let b = batch_record(&api, &t.sp, LOCKS).await;
    assert_eq!(b["packages"][0]["applied"], DEVICES as u64, "{b}");
    assert_eq!(b["packages"][0]["failed"], 0, "{b}");
    assert_eq!(
        b["latest_results"].as_array().unwrap().len(),
        DEVICES,
        "{b}"
    );

    // A device of another model (another shared key) cannot read the package: it fails
    // with nothing installed, and its fail result is counted.
    {
        let r = other.apply(&v1);
        assert_eq!(r.outcome, "failed", "{r:?}");
        assert!(r.detail.contains("ERR_REQUEST_INVALID"), "{r:?}");
        assert_eq!(other.version(), None);
        let st = other.tee.lock().unwrap().status().unwrap();
        assert!(st.security_domains.is_empty(), "{st:?}");
        let mut ost = OtrpBatchState::default();
        let round = otrp_batch_round(&http, &url, &mut other.link(), &mut ost)
            .await
            .unwrap();
        assert_eq!(round.model.as_deref(), Some(OTHER));
        assert_eq!(
            round.fetch_status,
            Some(404),
            "nothing published for its model"
        );
        assert_eq!(round.results_sent, 1, "{round:?}");
    }
    let b = batch_record(&api, &t.oem, LOCKS).await;
    assert_eq!(b["packages"][0]["failed"], 1, "{b}");

    // Version 2 as UpdateTA: the sequence number grows, devices move to it.
    upload(&f, &api, &t, 2).await;
    let p2 = publish_package(
        &api,
        &t,
        LOCKS,
        json!({"components": ["sd1/hello-ta"], "update": true}),
    )
    .await;
    assert_eq!(p2["seq"], 2, "{p2}");
    assert_eq!(p2["contents"], "update sd1/hello-ta#2", "{p2}");
    for (d, st) in devs.iter().zip(states.iter_mut()) {
        let round = otrp_batch_round(&http, &url, &mut d.link(), st)
            .await
            .unwrap();
        assert_eq!(round.fetch_status, Some(200));
        let applied = round.applied.unwrap();
        assert_eq!(applied.outcome, "applied", "{applied:?}");
        assert_eq!(round.results_sent, 1);
        assert_eq!(d.version(), Some(2));
    }
    let v2 = fetch(&web, &pkg_url).await;

    // Replayed and older packages: refused by the device, nothing changed, nothing queued.
    let d0 = &devs[0];
    let before = d0.tee.lock().unwrap().status().unwrap();
    for (bytes, outcome) in [(&v2, "already-applied"), (&v1, "rollback")] {
        let r = d0.apply(bytes);
        assert_eq!(r.outcome, outcome, "{r:?}");
        assert!(r.detail.contains("replay or rollback"), "{r:?}");
        assert_eq!(d0.tee.lock().unwrap().otrp_batch_results().len(), 0);
    }
    let after = d0.tee.lock().unwrap().status().unwrap();
    assert_eq!(before.manifests, after.manifests);
    assert_eq!(before.security_domains, after.security_domains);
    assert_eq!(d0.version(), Some(2));
    let b = batch_record(&api, &t.sp, LOCKS).await;
    assert_eq!(b["packages"][1]["applied"], DEVICES as u64, "{b}");
    assert_eq!(b["packages"][1]["failed"], 0, "{b}");
    assert_eq!(b["packages"][0]["applied"], DEVICES as u64, "{b}");

    // The results route refuses what it cannot check.
    let results_url = format!("{pkg_url}/results");
    let (st, _) = post_raw(&web, &results_url, b"{}".to_vec()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // A result signed by a key the TAM never bound (a fresh, unregistered device).
    let stranger = boot(&mut f, 799, LOCKS);
    let r = stranger.apply(&v1);
    assert_eq!(r.outcome, "applied", "{r:?}");
    let queued = stranger.tee.lock().unwrap().otrp_batch_results();
    let (st, text) = post_raw(&web, &results_url, queued[0].message.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{text}");
    // The same result posted for another model.
    let (st, text) = post_raw(
        &web,
        &format!("{}/results", otrp_batch_url(&url, OTHER)),
        queued[0].message.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");

    // Tenancy: another SP can neither publish into sp1's model nor see it.
    let sp2 = approved_sp(&api, &t.oem, "sp2").await;
    let (st, body) = api
        .post(&publish_path, &sp2, json!({"components": ["sd1/hello-ta"]}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, body) = api
        .get(&format!("/api/v1/otrp-batches/{LOCKS}"), &sp2)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let listed = api
        .ok(StatusCode::OK, api.get("/api/v1/otrp-batches", &t.sp).await)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["seq"], 2, "{listed}");

    // Persisted: a restarted server (same store) serves the same newest package.
    server.shutdown(Duration::from_secs(5)).await;
    let server = f.start().await;
    let r = client(&f.pki)
        .get(otrp_batch_url(&server.tam_url(), LOCKS))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), v2);
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

async fn post_raw(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (StatusCode, String) {
    let r = http
        .post(url)
        .header(header::CONTENT_TYPE, "application/otrp+json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// OEM-gated devices that trust this TAM as an SP's TAM (not the OEM's): the CreateSD of a
/// batch package needs the OEM's authorization of (SP, TAM key), as a single CreateSD
/// does. The TAM is configured with it (`[[otrp_oem_authorization]]`) and puts it in the
/// package's `oemauth` header member; every device creates the SD and installs the TA.
/// The member is outside the TAM signature: without it the same package still verifies,
/// and the device refuses it (`ERR_TAM_NOT_AUTHORIZED`) with nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_batch_create_sd_on_oem_gated_devices_carries_the_oem_authorization() {
    const GATED: &str = "gated-lock-b";
    let mut f = Fixture::new("otrp_batch_gated", Backend::Sqlite);
    let auth = otrp_agent::OemAuthorization::sign(
        provider(),
        &f.pki.oem_key().unwrap(),
        "sp1",
        &f.identity.signing_key.public_key(),
    )
    .unwrap();
    let file = f.dir.join("oemauth-sp1.cose");
    std::fs::write(&file, &auth).unwrap();
    f.config
        .otrp_oem_authorization
        .push(otrp_tam_server::config::OemAuthorizationConfig {
            sp: "sp1".into(),
            file,
        });
    let Started {
        server: _server,
        api,
        t,
        url,
        http,
    } = start(&f).await;
    let devs: Vec<OtrpDevice> = (0..3)
        .map(|i| boot_with(&mut f, 800 + i, GATED, MgmtConfig::OemGated, false))
        .collect();
    for d in &devs {
        first_contact(&api, &t, &http, &url, d).await;
    }
    upload(&f, &api, &t, 1).await;
    register_key(&f, &api, &t, GATED).await;
    let p = publish_package(&api, &t, GATED, json!({"components": ["sd1/hello-ta"]})).await;
    assert_eq!(
        p["contents"], "create-sd sd1, install sd1/hello-ta#1",
        "{p}"
    );
    assert_eq!(p["tam_signatures"], 1, "{p}");
    let bytes = fetch(&client(&f.pki), &otrp_batch_url(&url, GATED)).await;
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    let header = &mut v["OTrPBatchPackage"]["header"];
    assert_eq!(
        header["oemauth"].as_str(),
        Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &auth).as_str()),
        "{header}"
    );

    // Two devices through their Brokers: SD created, TA installed, results counted.
    for d in &devs[..2] {
        let mut st = OtrpBatchState::default();
        let round = otrp_batch_round(&http, &url, &mut d.link(), &mut st)
            .await
            .unwrap();
        assert_first_package_applied(&round, d);
    }
    let b = batch_record(&api, &t.sp, GATED).await;
    assert_eq!(b["packages"][0]["applied"], 2, "{b}");

    // The third: the same package without `oemauth` verifies but is refused.
    header.as_object_mut().unwrap().remove("oemauth");
    let stripped = serde_json::to_vec(&v).unwrap();
    let last = &devs[2];
    let r = last.apply(&stripped);
    assert_eq!(r.outcome, "failed", "{r:?}");
    assert!(
        r.detail.contains("TAM_NOT_AUTHORIZED") && r.detail.contains("OEM authorization"),
        "{r:?}"
    );
    assert_eq!(last.version(), None);
    assert!(!last.holds_sd1());
    // With it (the bytes as served), the same device applies the package.
    let r = last.apply(&bytes);
    assert_eq!(r.outcome, "applied", "{r:?}");
    assert_eq!(last.version(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_batch_package_served_to_real_tees_sqlite() {
    otrp_batch_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_batch_package_served_to_real_tees_postgres() {
    if skip_without_pg("otrp_batch_package_served_to_real_tees_postgres") {
        return;
    }
    otrp_batch_flow(Backend::Postgres).await;
}
