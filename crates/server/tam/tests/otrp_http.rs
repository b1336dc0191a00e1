//! OTrP JSON over HTTPS through the real TAM server (127.0.0.1:0, TLS from a fresh PKI):
//! a device provisioned as `otrp device provision` does (otrp-pki), booted as the real
//! simulated TEE (`otrp-tee-daemon`, trusting the TAM certificate with its tamid), an SP
//! that publishes and deploys a TA through the admin API, and the OTrP session
//! GetDeviceState → CreateSD → InstallTA → 204 carried by hand (to check each answer)
//! and by the Broker's `run_otrp_session`. Replayed responses are refused with 400 and
//! nothing recorded; wrong media types get 415 / 406; a TAM whose key cannot do OTrP
//! answers 415 with the reason. SQLite always, PostgreSQL when `OTRP_TEST_DATABASE_URL`
//! is set.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

mod common;
#[path = "common/otrp_tee.rs"]
mod otrp_tee;

use std::time::{Duration, SystemTime};

use common::*;
use otrp_broker::run_otrp_session;
use otrp_json::OtrpMessage;
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_tee::{boot_otrp, OtrpDevice};
use otrp_tee_daemon::TeepReply;
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use serde_json::json;

const OTRP: &str = "application/otrp+json";

fn assert_draft_headers(h: &HeaderMap) {
    assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
    assert_eq!(
        h.get(header::CONTENT_SECURITY_POLICY).unwrap(),
        "default-src 'none'"
    );
    assert_eq!(h.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
    assert!(h.get(header::SET_COOKIE).is_none());
}

fn otrp_device(f: &mut Fixture, seed: u64) -> OtrpDevice {
    boot_otrp(f, seed, &ProvisionRequest::new(MODEL), true)
}

impl OtrpDevice {
    fn process(&self, message: &[u8]) -> TeepReply {
        self.tee
            .lock()
            .unwrap()
            .process_otrp_message(message, now())
            .unwrap()
    }

    /// The TEE's answer as the Broker posts it.
    fn answer(&self, message: &[u8]) -> (Vec<u8>, TeepReply) {
        let reply = self.process(message);
        let send = reply
            .send
            .clone()
            .unwrap_or_else(|| panic!("the TEE sent nothing: {:?}", reply.events));
        (otrp_broker::otrp::to_tam(send), reply)
    }
}

async fn register(api: &Api, token: &str, d: &OtrpDevice) {
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/devices",
            token,
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
}

/// One OTrP POST; returns status, headers and body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = http.post(url);
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// A 200 OTrP answer's request name.
fn request_name(status: StatusCode, h: &HeaderMap, body: &[u8]) -> String {
    assert_eq!(
        status,
        StatusCode::OK,
        "TAM answered: {}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), OTRP);
    assert_draft_headers(h);
    match otrp_json::decode_any(body).unwrap() {
        m @ OtrpMessage::Request(_) => m.name().to_string(),
        other => panic!("not a signed request: {}", other.name()),
    }
}

fn metric(text: &str, outcome: &str) -> f64 {
    let prefix = format!("otrp_otrp_exchanges_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    get_text(http, format!("{base}/metrics")).await
}

async fn install_over_otrp(backend: Backend) {
    let mut f = Fixture::new("otrp", backend);
    f.config.require_tfw_endorsement = true;
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let dev = otrp_device(&mut f, 501);
    register(&api, &t.oem, &dev).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;
    let http = client(&f.pki);
    let url = server.tam_url();
    let before = metrics_text(&http, &server.base_url()).await;

    // Empty POST (Accept only) opens the session: GetDeviceStateRequest.
    let (s, h, body) = post(&http, &url, None, Some(OTRP), Vec::new()).await;
    assert_eq!(request_name(s, &h, &body), "GetDeviceStateRequest");
    let (state_resp, _) = dev.answer(&body);
    assert!(String::from_utf8_lossy(&state_resp).starts_with("{\"GetDeviceStateResponse\""));

    // GetDeviceStateResponse → CreateSDRequest (the SD is missing).
    let (s, h, body) = post(&http, &url, Some(OTRP), Some(OTRP), state_resp.clone()).await;
    assert_eq!(request_name(s, &h, &body), "CreateSDRequest");
    let (created, reply) = dev.answer(&body);
    assert!(
        reply
            .events
            .iter()
            .any(|e| e.kind == "sd-created" && e.detail == "sd1"),
        "{:?}",
        reply.events
    );

    // CreateSDResponse → InstallTARequest.
    let (s, h, body) = post(&http, &url, Some(OTRP), Some(OTRP), created).await;
    assert_eq!(request_name(s, &h, &body), "InstallTARequest");
    let (installed, reply) = dev.answer(&body);
    assert!(
        reply
            .events
            .iter()
            .any(|e| e.kind == "installed" && e.detail == "sd1:hello-ta"),
        "{:?}",
        reply.events
    );

    // InstallTAResponse → 204: nothing left.
    let (s, h, body) = post(&http, &url, Some(OTRP), Some(OTRP), installed.clone()).await;
    assert_eq!(
        s,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(body.is_empty());
    assert_draft_headers(&h);
    let progress = api.deployment(dep, &t.sp).await;
    assert_eq!(progress["done"], 1, "{progress}");

    // Replays are refused (400) and change nothing.
    for replayed in [&installed, &state_resp] {
        let (s, h, body) = post(&http, &url, Some(OTRP), Some(OTRP), replayed.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_draft_headers(&h);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("already answered"), "{text}");
    }
    let after_replay = api.deployment(dep, &t.sp).await;
    assert_eq!(after_replay, progress);

    // The TA is in the TEE's sealed store, runnable like a TEEP-installed one.
    let status = dev.tee.lock().unwrap().status().unwrap();
    assert!(
        status.components.iter().any(|c| c.id.contains("hello-ta")),
        "{status:?}"
    );

    // A new session through the Broker's OTrP relay finds nothing to do:
    // GetDeviceState, then 204.
    let broker = broker_http(&f.pki);
    let report = run_otrp_session(&broker, &url, &mut dev.link())
        .await
        .unwrap();
    assert_eq!(
        (report.tam_messages, report.tee_replies),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(report.count("installed"), 0);

    // Counted: one of each command, the done answers, the refusals.
    let after = metrics_text(&http, &server.base_url()).await;
    for (outcome, at_least) in [
        ("get_device_state", 2.0),
        ("create_sd", 1.0),
        ("install_ta", 1.0),
        ("done", 2.0),
        ("refused", 2.0),
    ] {
        let d = metric(&after, outcome) - metric(&before, outcome);
        assert!(d >= at_least, "{outcome}: +{d}");
    }

    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_installs_a_ta_over_https_sqlite() {
    install_over_otrp(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_installs_a_ta_over_https_postgres() {
    if skip_without_pg("otrp_installs_a_ta_over_https_postgres") {
        return;
    }
    install_over_otrp(Backend::Postgres).await;
}

/// A fresh device through the Broker's relay, end to end: CreateSD and InstallTA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_relays_a_whole_otrp_session() {
    let mut f = Fixture::new("otrp_broker", Backend::Sqlite);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    // An SP may register its TA-signer certificate itself (here again: idempotent).
    let r = api
        .post(
            "/api/v1/sp/certs",
            &t.sp,
            json!({"cert_pem": f.sp_chain_pem()}),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["sp_id"], "sp1");
    // … but not for another SP.
    let r = api
        .post(
            "/api/v1/sp/certs",
            &t.sp,
            json!({"sp_id": "sp2", "cert_pem": f.sp_chain_pem()}),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // A certificate outside the SP PKI is refused.
    let r = api
        .post(
            "/api/v1/sp/certs",
            &t.sp,
            json!({"cert_pem": dev_chain_pem(&mut f)}),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);

    // The endpoint is in the OpenAPI document.
    let doc = get_text(&api.http, format!("{}/openapi.json", server.base_url())).await;
    assert!(
        doc.contains("/api/v1/sp/certs"),
        "not in the OpenAPI document"
    );

    let dev = otrp_device(&mut f, 601);
    register(&api, &t.oem, &dev).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    let broker = broker_http(&f.pki);
    let report = run_otrp_session(&broker, &server.tam_url(), &mut dev.link())
        .await
        .unwrap();
    // GetDeviceState, CreateSD, InstallTA; three answers, then 204.
    assert_eq!(
        (report.tam_messages, report.tee_replies),
        (3, 3),
        "{report:?}"
    );
    assert_eq!(report.count("sd-created"), 1, "{report:?}");
    assert_eq!(report.count("installed"), 1, "{report:?}");
    assert_eq!(report.count("refused"), 0, "{report:?}");
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

fn dev_chain_pem(f: &mut Fixture) -> String {
    let p = provision(
        &mut f.pki,
        &ProvisionRequest::new(MODEL),
        provider(),
        &mut rng(999),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap();
    otrp_pki::cert::to_pem("CERTIFICATE", &p.identity.tee.cert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otrp_media_types_and_refusals() {
    let f = Fixture::new("otrp_codes", Backend::Sqlite);
    let server = f.start().await;
    let http = client(&f.pki);
    let url = server.tam_url();
    // OTrP body, but the client only takes TEEP: 406.
    let (s, h, _) = post(
        &http,
        &url,
        Some(OTRP),
        Some("application/teep+cbor"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
    assert_draft_headers(&h);
    // Accept picks OTrP, a body without Content-Type: 415.
    let (s, _, _) = post(&http, &url, None, Some(OTRP), b"{}".to_vec()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Malformed OTrP JSON: 400.
    let (s, _, body) = post(
        &http,
        &url,
        Some(OTRP),
        Some(OTRP),
        b"{\"nope\": 1}".to_vec(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A response to a request this TAM never sent: 400.
    let (s, _, _) = post(
        &http,
        &url,
        Some(OTRP),
        Some(OTRP),
        b"{\"GetDeviceStateResponse\": []}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Too large: 413. The server reads a modest overage to its end before answering
    // (teep::read_limited), so one try gets the 413, not a broken pipe.
    let big = vec![b' '; f.config.max_teep_body_bytes + 1];
    let r = http
        .post(&url)
        .header(header::CONTENT_TYPE, OTRP)
        .header(header::ACCEPT, OTRP)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_draft_headers(r.headers());
    assert!(
        r.headers().get(header::CONNECTION).is_none(),
        "{:?}",
        r.headers()
    );
    // Wildcard Accept and an empty body stay TEEP (QueryRequest as CBOR).
    let (s, h, _) = post(&http, &url, None, Some("*/*"), Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get(header::CONTENT_TYPE).unwrap(),
        "application/teep+cbor"
    );
    server.shutdown(Duration::from_secs(5)).await;

    // A TAM whose signing key is Ed25519 cannot do OTrP: 415 saying why, TEEP still served.
    let mut g = Fixture::new("otrp_ed25519", Backend::Sqlite);
    let ed = otrp_crypto::PrivateKey::generate(otrp_crypto::KeyKind::Ed25519, &mut rng(3)).unwrap();
    let key_path = g.dir.join("ed25519.pem");
    std::fs::write(&key_path, ed.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    g.config.signing_key = Some(key_path);
    g.identity = otrp_tam_server::Identity::load(&g.config).unwrap();
    let server = g.start().await;
    let http = client(&g.pki);
    let (s, _, body) = post(&http, &server.tam_url(), None, Some(OTRP), Vec::new()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Ed25519"), "{text}");
    let (s, _, _) = post(
        &http,
        &server.tam_url(),
        None,
        Some("application/teep+cbor"),
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
    g.cleanup().await;
}
