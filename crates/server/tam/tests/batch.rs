//! Batch mode through the real TAM server: an SP publishes one package for a batch (the TAM
//! signs it once), the devices' Brokers fetch it over HTTPS (200, then 304 with the ETag),
//! real TEEs (the daemon's `Tee` with its Agent, as the fleet runs them) apply it, their
//! signed reports come back and are counted; an older package is refused at the device
//! (rollback); an SP cannot publish another SP's component or into another SP's batch.
//! Over CoAP (SQLite): the Brokers of the same kind of devices fetch the package with
//! `GET /batch/<id>` (Block2 at 32-byte blocks, ETag option, 2.03 Valid next round) and
//! POST their reports to `/batch/<id>/reports?seq=N` (Block1) through a relay losing 10 %
//! of the datagrams; the admin API counts every device.
//! libcoap's `coap-client` (an independent C implementation) fetches the package at 16-byte
//! blocks and POSTs the devices' MAC'd reports block-wise.
//! SQLite always, PostgreSQL when `OTRP_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;
#[path = "common/libcoap.rs"]
mod libcoap;
#[path = "common/relay.rs"]
mod relay;

use common::*;
use otrp_broker::{batch_round, batch_url, BatchState, Http};
use otrp_fleet::{Fleet, FleetOptions};
use otrp_pki::device::MgmtConfig;
use otrp_tam_server::{publish, RunningServer};
use reqwest::header;
use reqwest::StatusCode;
use serde_json::json;

const BATCH: &str = "lot-7";
const BATCH_MODEL: &str = "batch-lock";
const DEVICES: usize = 6;

fn image(v: u64) -> Vec<u8> {
    let mut img = format!("\0asm batch TA v{v} ").into_bytes();
    img.resize(2048, b'b');
    img
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

async fn upload_batch_ta(f: &Fixture, api: &Api, sp: &str, seq: u64) {
    let env = publish::ta_envelope_for_batch(
        provider(),
        &f.sp_key(),
        "sd1/batch-ta",
        seq,
        &image(seq),
        BATCH,
        &batch_public_pem(f),
    )
    .unwrap();
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            sp,
            publish::upload_body(&env, &f.sp_chain_pem(), Some("batch TA")),
        )
        .await,
    )
    .await;
}

fn installed_version(dev: &otrp_fleet::FleetDevice) -> Option<u64> {
    let st = dev.status().unwrap();
    st.manifests
        .iter()
        .find(|m| m.id.contains("batch-ta"))
        .map(|m| m.sequence_number)
}

/// A TAM server, its tenants, a fleet of `DEVICES` devices of `BATCH` that each ran one
/// attested TEEP session (binding their Agent keys), and an HTTPS Broker client.
struct Setup {
    f: Fixture,
    server: RunningServer,
    api: Api,
    t: Tenants,
    fleet: Fleet,
    http: Http,
}

async fn setup(tag: &str, backend: Backend) -> Setup {
    setup_with(tag, backend, false).await
}

/// [`setup`]; with `report_keys` the devices get report keys and the TAM the batch's
/// report master (`[[batch_report_master]]`, the PKI's file).
async fn setup_with(tag: &str, backend: Backend, report_keys: bool) -> Setup {
    let mut f = Fixture::new(tag, backend);
    if report_keys {
        let mut r = rng(5);
        f.pki
            .batch_key(BATCH, &mut r, std::time::SystemTime::now())
            .unwrap();
        let (master, _) = f.pki.batch_report_master(BATCH, &mut r).unwrap();
        let file = f.dir.join("lot-7.report-master.key");
        std::fs::write(&file, hex::encode(master.as_slice())).unwrap();
        f.config
            .batch_report_master
            .push(otrp_tam_server::config::BatchReportMasterConfig {
                batch: BATCH.into(),
                file,
            });
    }
    f.config
        .reference
        .push(otrp_tam_server::config::ReferenceConfig {
            model: BATCH_MODEL.into(),
            measurements: vec![hex::encode(otrp_tee_daemon::tee_measurement())],
            hwversions: Vec::new(),
        });
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;

    // Devices of one batch (the OEM provisions the batch key with them).
    // The TAM is the OEM's (it signs the SD manifests); approved SPs manage TAs in SDs.
    let mut opts = FleetOptions::new(BATCH_MODEL, MgmtConfig::OemOwnedSd);
    opts.batch = Some(BATCH.into());
    opts.report_key = report_keys;
    opts.tams = oem_tams(&f.pki);
    let fleet = Fleet::provision_with(&mut f.pki, DEVICES, &opts, None).unwrap();
    let http = broker_http(&f.pki);
    // First contact: one attested TEEP session each binds the Agent keys reports are
    // checked with.
    let s = fleet
        .run_with(&http, &server.tam_url(), &Default::default(), None)
        .await;
    assert!(s.all_converged(), "{s}");
    Setup {
        f,
        server,
        api,
        t,
        fleet,
        http,
    }
}

/// The SP uploads the batch TA version `seq` and publishes a package of it.
async fn publish_package(f: &Fixture, api: &Api, sp: &str, seq: u64) -> serde_json::Value {
    upload_batch_ta(f, api, sp, seq).await;
    api.ok(
        StatusCode::CREATED,
        api.post(
            &format!("/api/v1/batches/{BATCH}/packages"),
            sp,
            json!({"components": ["sd1/batch-ta"]}),
        )
        .await,
    )
    .await
}

async fn batch_flow(backend: Backend) {
    let Setup {
        f,
        server,
        api,
        t,
        fleet,
        http,
    } = setup("batch", backend).await;

    // Nothing published yet: 404, and a Broker round does nothing.
    let url = batch_url(&server.tam_url(), BATCH);
    let web = client(&f.pki);
    assert_eq!(
        web.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The SP publishes the TA (encrypted to the batch key) and one package of it.
    let pkg = publish_package(&f, &api, &t.sp, 1).await;
    assert_eq!(pkg["seq"], 1, "{pkg}");
    assert_eq!(
        pkg["tam_signatures"], 1,
        "one TAM signature per package: {pkg}"
    );
    assert!(
        pkg["contents"].as_str().unwrap().contains("sd1/sd#"),
        "{pkg}"
    );

    // HTTP: 200 with ETag and a public Cache-Control, then 304 for that ETag.
    let r = web.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, pkg["etag"].as_str().unwrap());
    assert!(r.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("public"));
    let v1 = r.bytes().await.unwrap().to_vec();
    assert_eq!(v1.len() as u64, pkg["size"].as_u64().unwrap());
    let r = web
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());

    // CoAP: GET /batch/<id> block-wise (64-byte blocks), ETag option, then 2.03 Valid.
    {
        let (store, backend) = f.store().await;
        let state = std::sync::Arc::new(
            otrp_tam_server::AppState::with_store(
                f.config.clone(),
                f.identity.clone(),
                store,
                backend,
            )
            .unwrap(),
        );
        let mut cfg = otrp_coap::Config::fast(std::time::Duration::from_millis(200));
        cfg.block_szx = otrp_coap::Config::with_block_size(64).unwrap().block_szx;
        let coap = otrp_tam_server::coap::start_coap_with(
            state,
            "127.0.0.1:0".parse().unwrap(),
            cfg.clone(),
        )
        .await
        .unwrap();
        let client = otrp_coap::CoapClient::new(cfg, &mut rng(77));
        let path = format!("/batch/{BATCH}");
        let (r, stats) = client
            .get_with_stats(coap.local_addr(), &path, Vec::new())
            .await;
        let r = r.unwrap();
        assert_eq!(r.code, otrp_coap::Code::Content);
        assert_eq!(r.body, v1, "the same bytes as over HTTP");
        let tag = r.etag.clone().unwrap();
        assert_eq!(hex::encode(&tag), etag.trim_matches('"')[..16]);
        assert!(
            stats.datagrams_received as usize >= v1.len() / 64,
            "{stats:?}"
        );
        let (r, stats2) = client
            .get_with_stats(coap.local_addr(), &path, vec![tag])
            .await;
        assert_eq!(r.unwrap().code, otrp_coap::Code::Valid);
        assert_eq!(stats2.datagrams_received, 1);
        let (r, _) = client
            .get_with_stats(coap.local_addr(), "/batch/no-such-batch", Vec::new())
            .await;
        assert_eq!(r.unwrap().code, otrp_coap::Code::NotFound);
        coap.shutdown().await;
    }

    // Every device's Broker fetches the same bytes, its TEE applies them, reports go back.
    let mut states = Vec::new();
    for d in fleet.devices() {
        let mut tee = d.tee().clone();
        let mut st = BatchState::default();
        let round = batch_round(&http, &server.tam_url(), &mut tee, &mut st)
            .await
            .unwrap();
        assert_eq!(round.batch.as_deref(), Some(BATCH));
        assert_eq!(round.fetch_status, Some(200));
        assert_eq!(round.package_bytes, v1.len());
        let applied = round.applied.clone().unwrap();
        assert_eq!(applied.outcome, "applied", "{applied:?}");
        assert_eq!(round.reports_sent, 1, "{round:?}");
        assert_eq!(installed_version(d), Some(1));
        // Next round: 304, nothing applied, nothing to report.
        let again = batch_round(&http, &server.tam_url(), &mut tee, &mut st)
            .await
            .unwrap();
        assert_eq!(again.fetch_status, Some(304));
        assert!(again.applied.is_none() && again.reports_sent == 0);
        states.push(st);
    }
    let b = api.batch_all_applied(BATCH, &t.sp, 0, DEVICES).await;
    assert_eq!(b["latest_reports"].as_array().unwrap().len(), DEVICES);

    // Version 2: a new package; devices move to it all at once, so their reports reach
    // the TAM's report recorder together (grouped: one key lookup, one write), along with
    // a report no bound Agent key signed (403, only that one) and one on a package that
    // does not exist (404); then the old package is a rollback.
    let pkg2 = publish_package(&f, &api, &t.sp, 2).await;
    assert_eq!(pkg2["seq"], 2, "{pkg2}");
    let mut rounds = tokio::task::JoinSet::new();
    for (i, st) in states.into_iter().enumerate() {
        let (http, tam_url) = (http.clone(), server.tam_url());
        let mut tee = fleet.devices()[i].tee().clone();
        rounds.spawn(async move {
            let mut st = st;
            batch_round(&http, &tam_url, &mut tee, &mut st).await
        });
    }
    let stray = web
        .post(format!("{url}/reports?seq=2"))
        .body(v1.clone())
        .send();
    let missing = web
        .post(format!("{url}/reports?seq=9"))
        .body(v1.clone())
        .send();
    let (stray, missing) = tokio::join!(stray, missing);
    assert_eq!(stray.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(missing.unwrap().status(), StatusCode::NOT_FOUND);
    while let Some(round) = rounds.join_next().await {
        let round = round.unwrap().unwrap();
        assert_eq!(round.fetch_status, Some(200));
        assert_eq!(round.reports_sent, 1, "{round:?}");
        assert_eq!(round.applied.unwrap().outcome, "applied");
    }
    for d in fleet.devices() {
        assert_eq!(installed_version(d), Some(2));
    }
    let b = api.batch_all_applied(BATCH, &t.sp, 1, DEVICES).await;
    assert_eq!(b["latest_reports"].as_array().unwrap().len(), DEVICES);
    let d0 = &fleet.devices()[0];
    let old = d0
        .tee()
        .0
        .lock()
        .unwrap()
        .apply_batch(&v1, None, now())
        .unwrap();
    assert_eq!(old.outcome, "rollback", "{old:?}");
    assert_eq!(installed_version(d0), Some(2));

    // A report signed by a key the TAM never saw attested is refused.
    let r = web
        .post(format!("{url}/reports?seq=1"))
        .body(v1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Tenancy: another SP cannot use sp1's component, nor publish into sp1's batch.
    let sp2 = approved_sp(&api, &t.oem, "sp2").await;
    let (st, body) = api
        .post(
            "/api/v1/batches/lot-x/packages",
            &sp2,
            json!({"components": ["sd1/batch-ta"]}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let (st, body) = api
        .post(
            &format!("/api/v1/batches/{BATCH}/packages"),
            &sp2,
            json!({"components": ["sd1/batch-ta"]}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    let (st, _) = api.get(&format!("/api/v1/batches/{BATCH}"), &sp2).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Every attempt is audited.
    let audit = api
        .ok(StatusCode::OK, api.get("/api/v1/audit", &t.oem).await)
        .await;
    let publishes = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "batch.publish")
        .count();
    assert_eq!(publishes, 4, "{audit}");
    // The OpenAPI document lists the batch API.
    let doc: serde_json::Value = web
        .get(format!("{}/openapi.json", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/batches/{batch_id}/packages"].is_object());

    drop(server);
    f.cleanup().await;
}

/// Devices provisioned with report keys MAC their reports; the server, configured with
/// the batch's report master, checks and counts them. A MAC'd report posted for another
/// package of the batch is refused (the MAC covers the sequence number), and a tampered
/// one too; neither is counted.
async fn mac_report_flow(backend: Backend) {
    let Setup {
        f,
        server,
        api,
        t,
        fleet,
        http,
    } = setup_with("batch-mac", backend, true).await;
    let url = batch_url(&server.tam_url(), BATCH);
    let web = client(&f.pki);
    publish_package(&f, &api, &t.sp, 1).await;
    publish_package(&f, &api, &t.sp, 2).await;
    let v2 = get_bytes(&web, &url).await;
    // Device 0 by hand: its queued report is a COSE_Mac0 naming its UEID.
    let d0 = &fleet.devices()[0];
    let report = {
        let mut tee = d0.tee().0.lock().unwrap();
        let applied = tee.apply_batch(&v2, None, now()).unwrap();
        assert_eq!(applied.outcome, "applied", "{applied:?}");
        let reports = tee.batch_reports();
        assert_eq!(reports.len(), 1);
        reports[0].message.clone()
    };
    assert_eq!(report[0], 0xd1, "COSE_Mac0 (tag 17)");
    let mac = otrp_cose::parse_mac0(&report).unwrap();
    assert_eq!(hex::encode(&mac.unprotected.key_id), d0.ueid());
    let post = |seq: u64, body: Vec<u8>| {
        web.post(format!("{url}/reports?seq={seq}"))
            .body(body)
            .send()
    };
    // For package 1 (which exists) the MAC does not verify: 403, nothing counted.
    let r = post(1, report.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("does not verify"));
    let mut tampered = report.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert_eq!(
        post(2, tampered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(2, report).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    // The other devices through their Brokers: fetch, apply, MAC'd report, ack.
    for d in &fleet.devices()[1..] {
        let mut tee = d.tee().clone();
        let round = batch_round(
            &http,
            &server.tam_url(),
            &mut tee,
            &mut BatchState::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            round.applied.clone().unwrap().outcome,
            "applied",
            "{round:?}"
        );
        assert_eq!(round.reports_sent, 1, "{round:?}");
        assert!(
            d.tee().0.lock().unwrap().batch_reports().is_empty(),
            "acknowledged"
        );
    }
    let b = api.batch_all_applied(BATCH, &t.sp, 1, DEVICES).await;
    assert_eq!(b["latest_reports"].as_array().unwrap().len(), DEVICES);
    let b1 = api
        .ok(
            StatusCode::OK,
            api.get(&format!("/api/v1/batches/{BATCH}"), &t.sp).await,
        )
        .await;
    assert_eq!(
        b1["packages"][0]["applied"], 0,
        "nothing counted for package 1: {b1}"
    );
    // Prometheus tells MAC'd reports from signed ones.
    let m = get_text(&web, format!("{}/metrics", server.base_url())).await;
    for result in ["applied", "refused"] {
        assert!(
            m.lines().any(|l| l.starts_with("otrp_batch_reports_total{")
                && l.contains(&format!("result=\"{result}\""))
                && l.contains("auth=\"mac\"")),
            "{result}: {m}"
        );
    }
    drop(server);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_batch_reports_checked_with_the_report_master_sqlite() {
    mac_report_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_batch_reports_checked_with_the_report_master_postgres() {
    if skip_without_pg("batch mac postgres") {
        return;
    }
    mac_report_flow(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_package_published_fetched_applied_and_reported_sqlite() {
    batch_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_package_published_fetched_applied_and_reported_postgres() {
    if skip_without_pg("batch postgres") {
        return;
    }
    batch_flow(Backend::Postgres).await;
}

/// Batch mode over CoAP only: package and reports through a 10 %-loss relay at 32-byte
/// blocks, counted by the admin API; a report for an unknown package is 4.04, a report
/// signed by an unbound key 4.03, one without `?seq` 4.00.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_package_fetched_and_reported_over_coap_through_lossy_relay() {
    let Setup {
        f,
        server,
        api,
        t,
        fleet,
        http: _,
    } = setup("batch-coap", Backend::Sqlite).await;
    let pkg = publish_package(&f, &api, &t.sp, 1).await;
    assert_eq!(pkg["tam_signatures"], 1, "{pkg}");

    let (store, backend) = f.store().await;
    let state = std::sync::Arc::new(
        otrp_tam_server::AppState::with_store(f.config.clone(), f.identity.clone(), store, backend)
            .unwrap(),
    );
    let block = 32;
    // 20 ms: each lost datagram costs one ACK timeout (8 retransmissions with backoff
    // still allow 10 s for a slow debug build); 100 ms made this test take 29 s.
    let mut cfg = otrp_coap::Config::fast(std::time::Duration::from_millis(20));
    cfg.block_szx = otrp_coap::Config::with_block_size(block).unwrap().block_szx;
    cfg.max_body = 256 * 1024;
    let coap =
        otrp_tam_server::coap::start_coap_with(state, "127.0.0.1:0".parse().unwrap(), cfg.clone())
            .await
            .unwrap();
    let relay = relay::lossy_relay(coap.local_addr(), 0.10, 0.0, 21).await;
    let tam_url = format!("coap://{relay}/teep");
    let http = Http::new(None, std::time::Duration::from_secs(30))
        .unwrap()
        .with_coap_config(cfg.clone());

    let size = pkg["size"].as_u64().unwrap() as usize;
    for d in fleet.devices() {
        let mut tee = d.tee().clone();
        let mut st = BatchState::default();
        let round = batch_round(&http, &tam_url, &mut tee, &mut st)
            .await
            .unwrap();
        assert_eq!(round.batch.as_deref(), Some(BATCH));
        assert_eq!(round.fetch_status, Some(200), "{round:?}");
        assert_eq!(round.package_bytes, size);
        assert_eq!(
            round.applied.clone().unwrap().outcome,
            "applied",
            "{round:?}"
        );
        assert_eq!(round.reports_sent, 1, "{round:?}");
        assert!(round.reports_refused.is_empty(), "{round:?}");
        assert_eq!(installed_version(d), Some(1));
        assert!(st.coap_etag.is_some());
        // Next round: 2.03 Valid, no body, nothing applied or reported.
        let again = batch_round(&http, &tam_url, &mut tee, &mut st)
            .await
            .unwrap();
        assert_eq!(again.fetch_status, Some(304), "{again:?}");
        assert!(again.applied.is_none() && again.reports_sent == 0 && again.package_bytes == 0);
    }
    let stats = http.coap_stats();
    // The package alone needs size/32 blocks per device; the loss costs retransmissions.
    assert!(
        stats.datagrams_received as usize >= DEVICES * (size / block),
        "{stats:?}"
    );
    assert!(
        stats.retransmissions > 0,
        "10 % loss should cost retransmissions: {stats:?}"
    );
    println!("batch over CoAP: {DEVICES} devices, package {size} B at {block}-byte blocks, 10% loss: {stats:?}");

    let b = api.batch_all_applied(BATCH, &t.sp, 0, DEVICES).await;
    assert_eq!(b["latest_reports"].as_array().unwrap().len(), DEVICES);

    // Refusals map to CoAP codes (straight to the server, no relay).
    let client = otrp_coap::CoapClient::new(cfg, &mut rng(5));
    let path = format!("/batch/{BATCH}/reports");
    let unbound = vec![0xa0u8; 100];
    for (target, code) in [
        (format!("{path}?seq=1"), otrp_coap::Code::Forbidden),
        (format!("{path}?seq=9"), otrp_coap::Code::NotFound),
        (path.clone(), otrp_coap::Code::BadRequest),
        (format!("{path}?seq=x"), otrp_coap::Code::BadRequest),
    ] {
        let r = client
            .post(coap.local_addr(), &target, unbound.clone())
            .await
            .unwrap();
        assert_eq!(r.code, code, "{target}");
    }
    coap.shutdown().await;
    drop(server);
    f.cleanup().await;
}

/// libcoap's `coap-client` as the Broker of a batch (an independent CoAP implementation
/// against the TAM's endpoint): `GET /batch/<id>` at 16-byte blocks gives the very bytes of
/// the HTTPS GET, every device applies them, and libcoap POSTs each device's MAC'd report
/// (Block1, 16-byte blocks) with `?seq=1`, which the TAM checks and counts; a tampered
/// report is 4.03, a report for a package that does not exist 4.04.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_package_and_maced_reports_over_libcoap_client() {
    let Some(lc) = libcoap::coap_client_or_skip("batch_package_and_maced_reports_over_libcoap")
    else {
        return;
    };
    let Setup {
        f,
        server,
        api,
        t,
        fleet,
        http: _,
    } = setup_with("batch-libcoap", Backend::Sqlite, true).await;
    let pkg = publish_package(&f, &api, &t.sp, 1).await;
    let over_https = get_bytes(&client(&f.pki), batch_url(&server.tam_url(), BATCH)).await;
    assert_eq!(over_https.len() as u64, pkg["size"].as_u64().unwrap());

    let (store, backend) = f.store().await;
    let state = std::sync::Arc::new(
        otrp_tam_server::AppState::with_store(f.config.clone(), f.identity.clone(), store, backend)
            .unwrap(),
    );
    let cfg = otrp_coap::Config {
        block_szx: otrp_coap::Config::with_block_size(64).unwrap().block_szx,
        max_body: 256 * 1024,
        ..otrp_coap::Config::default()
    };
    let coap = otrp_tam_server::coap::start_coap_with(state, "127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap();
    let base = format!("coap://{}/batch/{BATCH}", coap.local_addr());
    let dir = f.dir.join("libcoap");

    let got = lc
        .run(
            &dir,
            libcoap::Req {
                method: "get",
                uri: base.clone(),
                block: Some(16),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got.code, "2.05", "{}", got.log);
    assert!(
        got.body == over_https,
        "the CoAP package differs from the HTTPS one"
    );
    assert!(
        got.datagrams_received >= over_https.len().div_ceil(16),
        "{} datagrams for {} B",
        got.datagrams_received,
        over_https.len()
    );

    let report_to = |seq: u64, body: Vec<u8>| libcoap::Req {
        method: "post",
        uri: format!("{base}/reports?seq={seq}"),
        body: Some(body),
        block: Some(16),
        content_format: Some(otrp_coap::TEEP_CBOR_CONTENT_FORMAT),
        drop: None,
    };
    for (i, d) in fleet.devices().iter().enumerate() {
        let report = {
            let mut tee = d.tee().0.lock().unwrap();
            let applied = tee.apply_batch(&got.body, None, now()).unwrap();
            assert_eq!(applied.outcome, "applied", "{applied:?}");
            let reports = tee.batch_reports();
            assert_eq!(reports.len(), 1);
            reports[0].message.clone()
        };
        assert_eq!(report[0], 0xd1, "COSE_Mac0 (tag 17)");
        if i == 0 {
            let mut tampered = report.clone();
            *tampered.last_mut().unwrap() ^= 1;
            let ex = lc.run(&dir, report_to(1, tampered)).await.unwrap();
            assert_eq!(ex.code, "4.03", "{}", ex.log);
            let ex = lc.run(&dir, report_to(9, report.clone())).await.unwrap();
            assert_eq!(ex.code, "4.04", "{}", ex.log);
        }
        let ex = lc.run(&dir, report_to(1, report.clone())).await.unwrap();
        assert_eq!(ex.code, "2.04", "{}", ex.log);
        assert!(
            ex.datagrams_sent >= report.len().div_ceil(16),
            "{} B report in {} datagrams",
            report.len(),
            ex.datagrams_sent
        );
        d.tee()
            .0
            .lock()
            .unwrap()
            .ack_batch_report(BATCH, 1)
            .unwrap();
        assert_eq!(installed_version(d), Some(1));
    }
    let b = api.batch_all_applied(BATCH, &t.sp, 0, DEVICES).await;
    assert_eq!(b["latest_reports"].as_array().unwrap().len(), DEVICES);
    coap.shutdown().await;
    drop(server);
    f.cleanup().await;
}
