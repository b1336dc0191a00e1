//! HTTP-level tests against a real TAM server (127.0.0.1:0, TLS from a fresh PKI) with
//! real Agents behind a reqwest+rustls Broker loop; SQLite always, PostgreSQL when
//! `OTRP_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use otrp_tam_server::publish::{self, Payload};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use serde_json::json;

async fn device_receives_published_ta(backend: Backend) {
    let mut f = Fixture::new("e2e", backend);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let mut dev = provision_device(&mut f, 101);
    register_device(&api, &t.oem, &dev, &["eu"]).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;

    let http = client(&f.pki);
    let mut s = Session::new();
    s.run(&http, &[server.tam_url()], &mut dev).await;
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);
    assert!(
        dev.events
            .iter()
            .any(|e| matches!(e, otrp_agent::Event::SdCreated { name } if name == b"sd1")),
        "{:?}",
        dev.events
    );
    // empty POST → QueryRequest, QueryResponse → Update, Success → 204.
    assert_eq!(s.requests, 3);

    let p = api.deployment(dep, &t.sp).await;
    assert_eq!(p["done"], 1, "{p}");
    assert_eq!(p["targeted"], 1, "{p}");

    // A second session finds nothing to do: QueryRequest, QueryResponse → 204.
    let mut again = Session::new();
    again.run(&http, &[server.tam_url()], &mut dev).await;
    assert_eq!(again.requests, 2);

    // An update (seq 2) reaches the device.
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        2,
        b"\0asm\x01\0\0\0 version two",
        &Payload::Integrated,
    )
    .unwrap();
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            &t.sp,
            publish::upload_body(&env, &f.sp_chain_pem(), None),
        )
        .await,
    )
    .await;
    dev.events.clear();
    Session::new()
        .run(&http, &[server.tam_url()], &mut dev)
        .await;
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);

    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_receives_published_ta_over_https_sqlite() {
    device_receives_published_ta(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_receives_published_ta_over_https_postgres() {
    if skip_without_pg("device_receives_published_ta_over_https_postgres") {
        return;
    }
    device_receives_published_ta(Backend::Postgres).await;
}

fn assert_draft_headers(h: &HeaderMap) {
    assert_eq!(h.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
    assert_eq!(
        h.get(header::CONTENT_SECURITY_POLICY).unwrap(),
        "default-src 'none'"
    );
    assert_eq!(h.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
    assert!(h.get(header::SET_COOKIE).is_none());
    assert!(h.get(header::CACHE_CONTROL).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teep_over_http_status_codes_and_headers() {
    let mut f = Fixture::new("codes", Backend::Sqlite);
    let server = f.start().await;
    let http = client(&f.pki);
    let url = server.tam_url();

    // An empty body opens a session: 200 with a QueryRequest.
    let r = http
        .post(&url)
        .header(header::ACCEPT, TEEP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), TEEP);
    assert_draft_headers(r.headers());
    assert!(!r.bytes().await.unwrap().is_empty());

    // Wrong content type: 415.
    let r = http
        .post(&url)
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_draft_headers(r.headers());

    // OTrP JSON goes to the OTrP session core (tests/otrp_http.rs): a TAM-side message
    // relayed to the TAM is refused there with 400.
    let r = http
        .post(&url)
        .header(header::ACCEPT, "application/otrp+json")
        .header(header::CONTENT_TYPE, "application/otrp+json")
        .body("{\"GetDeviceStateTBSRequest\":{}}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_draft_headers(r.headers());
    let text = r.text().await.unwrap();
    assert!(text.contains("OTrP message refused"), "{text}");

    // No suitable Accept: 406 (reqwest always sends `Accept: */*` when none is set).
    let r = http
        .post(&url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);

    // Too large: 413 (the fixture's limit is 64 KiB). The server reads a modest overage to
    // its end before answering (teep::read_limited), so the client gets the 413 rather
    // than a broken pipe, and the connection stays usable for the requests below.
    let r = http
        .post(&url)
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, TEEP)
        .body(vec![0u8; 65 * 1024])
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

    // Not a TEEP message: 400.
    let r = http
        .post(&url)
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, TEEP)
        .body(vec![0xa0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Only POST.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_draft_headers(r.headers());

    // A whole session ends with 204 and no body (asserted in Session::step).
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let mut dev = provision_device(&mut f, 7);
    register_device(&api, &t.oem, &dev, &[]).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    let mut s = Session::new();
    s.run(&http, std::slice::from_ref(&url), &mut dev).await;
    // Replaying the Success after the session: 400 (token already consumed).
    let r = http
        .post(&url)
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, TEEP)
        .body(s.next.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Operations endpoints.
    let r = http
        .get(format!("{}/healthz", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m = get_text(&http, format!("{}/metrics", server.base_url())).await;
    for name in [
        "otrp_http_requests_total",
        "otrp_http_request_duration_seconds_bucket",
        "otrp_teep_exchanges_total",
        "otrp_teep_processing_seconds_bucket",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics:\n{m}");
    }
    assert!(m.contains("outcome=\"done\""), "{m}");
    let doc: serde_json::Value = http
        .get(format!("{}/openapi.json", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/deployments"].is_object());
    assert!(doc["paths"]["/api/v1/components"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_cannot_touch_another_sps_objects() {
    let f = Fixture::new("tenancy", Backend::Sqlite);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;
    let sp2 = approved_sp(&api, &t.oem, "sp2").await;
    let key = otrp_tam::component_key(&[b"sd1".to_vec(), b"hello-ta".to_vec()]);
    let key_hex = hex::encode(&key);

    // Reading: not listed, not found.
    let list = api
        .ok(StatusCode::OK, api.get("/api/v1/components", &sp2).await)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    let r = api
        .get(&format!("/api/v1/components/{key_hex}"), &sp2)
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    let r = api.get("/api/v1/components/sd1%2Fhello-ta", &sp2).await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    assert_eq!(
        api.get(&format!("/api/v1/deployments/{dep}"), &sp2).await.0,
        StatusCode::NOT_FOUND
    );
    let deps = api
        .ok(StatusCode::OK, api.get("/api/v1/deployments", &sp2).await)
        .await;
    assert_eq!(deps.as_array().unwrap().len(), 0);
    let sds = api
        .ok(StatusCode::OK, api.get("/api/v1/sds", &sp2).await)
        .await;
    assert_eq!(sds.as_array().unwrap().len(), 0);

    // Changing: deploy, pause, abort, publish into sp1's SD.
    let r = api
        .post(
            "/api/v1/deployments",
            &sp2,
            json!({"component": "sd1/hello-ta", "target": "all"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    for action in ["pause", "resume", "abort"] {
        let r = api
            .post(
                &format!("/api/v1/deployments/{dep}/{action}"),
                &sp2,
                json!({}),
            )
            .await;
        assert_eq!(r.0, StatusCode::NOT_FOUND, "{action}: {}", r.1);
    }
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        9,
        b"evil",
        &Payload::Integrated,
    )
    .unwrap();
    let r = api
        .post(
            "/api/v1/components",
            &sp2,
            publish::upload_body(&env, &f.sp_chain_pem(), None),
        )
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);

    // Roles: an SP creates no SD for another SP, approves nobody, registers no device.
    let r = api
        .post(
            "/api/v1/sds",
            &sp2,
            json!({"name": "sdx", "sp_id": "sp1", "signer_chain_pem": f.sp_chain_pem()}),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert_eq!(
        api.post("/api/v1/sps/sp2/approve", &sp2, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.post("/api/v1/accounts", &sp2, json!({"id": "x", "kind": "sp"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // No token, bad token.
    assert_eq!(
        api.get("/api/v1/components", "nope").await.0,
        StatusCode::UNAUTHORIZED
    );

    // sp1's deployment is untouched; the refusals are in the audit log, which sp2 only
    // sees its own part of.
    let p = api.deployment(dep, &t.sp).await;
    assert_eq!(p["deployment"]["state"], "active");
    let audit = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/audit?limit=200", &t.oem).await,
        )
        .await;
    let refused_by_sp2 = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["actor"] == "sp2" && a["detail"].as_str().unwrap().starts_with("refused"))
        .count();
    assert!(refused_by_sp2 >= 5, "{audit}");
    let own = api
        .ok(StatusCode::OK, api.get("/api/v1/audit", &sp2).await)
        .await;
    assert!(own.as_array().unwrap().iter().all(|a| a["actor"] == "sp2"));

    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_checked_against_sp_root_sd_signers_and_sequence() {
    let f = Fixture::new("uploads", Backend::Sqlite);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    publish_and_deploy(&f, &api, &t, 5).await;
    let upload = |env: Vec<u8>, chain: String| {
        let api = &api;
        let token = t.sp.clone();
        async move {
            api.post(
                "/api/v1/components",
                &token,
                publish::upload_body(&env, &chain, None),
            )
            .await
        }
    };
    // Sequence numbers must grow.
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        5,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    let r = upload(env, f.sp_chain_pem()).await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);
    assert!(r.1["hint"].as_str().unwrap().contains("above 5"));
    // A key the SD does not list (signed by another SP key): 403.
    let other = otrp_crypto::PrivateKey::generate(otrp_crypto::KeyKind::P256, &mut rng(5)).unwrap();
    let env = publish::ta_envelope(
        provider(),
        &other,
        "sd1/hello-ta",
        6,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    let r = upload(env, f.sp_chain_pem()).await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.1);
    // A chain that does not lead to the SP root (the TAM server certificate): 403.
    let server_rec = f.pki.first_issued(otrp_pki::CertKind::Server).unwrap();
    let chain = String::from_utf8(f.pki.file(&server_rec.chain).unwrap().to_vec()).unwrap();
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        6,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    let r = upload(env, chain).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // The SD manifest itself is the TAM's.
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/sd",
        6,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    let r = upload(env, f.sp_chain_pem()).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // Garbage.
    let r = api
        .post(
            "/api/v1/components",
            &t.sp,
            json!({"envelope": "AAAA", "signer_chain_pem": f.sp_chain_pem()}),
        )
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.1);
    // A good one.
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        6,
        TA,
        &Payload::Uri("https://sp.example/ta.wasm".into()),
    )
    .unwrap();
    let r = upload(env, f.sp_chain_pem()).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["seq"], 6);
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

async fn restart_mid_session(backend: Backend) {
    let mut f = Fixture::new("restart", backend);
    let a = f.start().await;
    let api = Api::new(&f.pki, &a);
    let t = tenants(&f, &api).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;
    let mut dev = provision_device(&mut f, 33);
    register_device(&api, &t.oem, &dev, &[]).await;
    let http = client(&f.pki);
    let mut s = Session::new();
    assert_eq!(s.step(&http, &a.tam_url(), &mut dev).await, Step::Continue); // QueryRequest
    assert_eq!(s.step(&http, &a.tam_url(), &mut dev).await, Step::Continue); // Update
                                                                             // The Agent has answered the Update with Success; the TAM goes away before it arrives.
    a.shutdown(Duration::from_secs(5)).await;
    let b = f.start().await;
    assert_eq!(s.step(&http, &b.tam_url(), &mut dev).await, Step::Done);
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]));
    let api = Api::new(&f.pki, &b);
    let p = api.deployment(dep, &t.sp).await;
    assert_eq!(p["done"], 1, "{p}");
    assert_eq!(p["sent"], 0, "{p}");
    b.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tam_restarted_between_query_response_and_success_loses_nothing_sqlite() {
    restart_mid_session(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tam_restarted_between_query_response_and_success_loses_nothing_postgres() {
    if skip_without_pg("tam_restarted_between_query_response_and_success_loses_nothing_postgres") {
        return;
    }
    restart_mid_session(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tam_servers_on_one_postgres_serve_one_fleet() {
    if skip_without_pg("two_tam_servers_on_one_postgres_serve_one_fleet") {
        return;
    }
    let mut f = Fixture::new("replicas", Backend::Postgres);
    let a = f.start().await;
    let b = f.start().await;
    let api_a = Api::new(&f.pki, &a);
    let api_b = Api::new(&f.pki, &b);
    // Set up through A, deploy through B: one store.
    let t = tenants(&f, &api_a).await;
    let dep = publish_and_deploy(&f, &api_b, &t, 1).await;
    let http = client(&f.pki);
    let urls = [a.tam_url(), b.tam_url()];
    let mut devices: Vec<Device> = (0..4).map(|i| provision_device(&mut f, 500 + i)).collect();
    for d in &devices {
        register_device(&api_b, &t.oem, d, &[]).await;
    }
    for (i, dev) in devices.iter_mut().enumerate() {
        // Start on A for even devices, on B for odd ones; alternate on every request.
        let order = if i % 2 == 0 {
            [urls[0].clone(), urls[1].clone()]
        } else {
            [urls[1].clone(), urls[0].clone()]
        };
        Session::new().run(&http, &order, dev).await;
        assert!(installed(dev, &[b"sd1", b"hello-ta"]), "device {i}");
    }
    let p = api_a
        .ok(
            StatusCode::OK,
            api_a
                .get(&format!("/api/v1/deployments/{dep}"), &t.sp)
                .await,
        )
        .await;
    assert_eq!(p["done"], 4, "{p}");
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_rollout_pause_resume_and_device_registration() {
    let mut f = Fixture::new("rollout", Backend::Sqlite);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        1,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            &t.sp,
            publish::upload_body(&env, &f.sp_chain_pem(), None),
        )
        .await,
    )
    .await;
    let mut devs: Vec<Device> = (0..3).map(|i| provision_device(&mut f, 700 + i)).collect();
    for d in &devs {
        register_device(&api, &t.oem, d, &["pilot"]).await;
    }
    // A device admin registers; an SP may not.
    let r = api
        .post(
            "/api/v1/devices",
            &t.sp,
            json!({"device": devs[0].public, "tee_chain_pem": devs[0].tee_chain_pem}),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // A TEE chain of another device than device.json: 422.
    let r = api
        .post(
            "/api/v1/devices",
            &t.oem,
            json!({"device": devs[0].public, "tee_chain_pem": devs[1].tee_chain_pem}),
        )
        .await;
    assert_eq!(r.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.1);

    let d = api
        .ok(
            StatusCode::CREATED,
            api.post(
                "/api/v1/deployments",
                &t.sp,
                json!({"component": "sd1/hello-ta", "target": "tag:pilot", "rollout": "count:2"}),
            )
            .await,
        )
        .await;
    let id = d["id"].as_i64().unwrap();
    assert_eq!(d["rollout"], "count:2");
    // Paused: nobody gets it.
    api.ok(
        StatusCode::OK,
        api.post(&format!("/api/v1/deployments/{id}/pause"), &t.sp, json!({}))
            .await,
    )
    .await;
    let http = client(&f.pki);
    let url = [server.tam_url()];
    Session::new().run(&http, &url, &mut devs[0]).await;
    assert!(!installed(&devs[0], &[b"sd1", b"hello-ta"]));
    api.ok(
        StatusCode::OK,
        api.post(
            &format!("/api/v1/deployments/{id}/resume"),
            &t.sp,
            json!({}),
        )
        .await,
    )
    .await;
    for d in devs.iter_mut() {
        Session::new().run(&http, &url, d).await;
    }
    let got = devs
        .iter()
        .filter(|d| installed(d, &[b"sd1", b"hello-ta"]))
        .count();
    assert_eq!(got, 2, "count:2 reaches two devices");
    let p = api.deployment(id, &t.sp).await;
    assert_eq!(p["targeted"], 3, "{p}");
    assert_eq!(p["done"], 2, "{p}");
    // Abort is final.
    api.ok(
        StatusCode::OK,
        api.post(&format!("/api/v1/deployments/{id}/abort"), &t.sp, json!({}))
            .await,
    )
    .await;
    let r = api
        .post(
            &format!("/api/v1/deployments/{id}/resume"),
            &t.sp,
            json!({}),
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    // Revoked devices are refused by the TEEP core.
    let dev_id = devs[2].id.clone();
    api.ok(
        StatusCode::OK,
        api.post(
            &format!("/api/v1/devices/{dev_id}/revoke"),
            &t.oem,
            json!({}),
        )
        .await,
    )
    .await;
    let mut s = Session::new();
    assert_eq!(s.step(&http, &url[0], &mut devs[2]).await, Step::Continue);
    let r = http
        .post(&url[0])
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, TEEP)
        .body(s.next.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("revoked"));
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_with_an_unknown_measurement_is_refused_and_counted() {
    let mut f = Fixture::new("attest", Backend::Sqlite);
    f.config.reference[0].measurements = vec![hex::encode([0x11; 32])];
    let server = f.start().await;
    let http = client(&f.pki);
    let mut dev = provision_device(&mut f, 41);
    let mut s = Session::new();
    assert_eq!(
        s.step(&http, &server.tam_url(), &mut dev).await,
        Step::Continue
    );
    let r = http
        .post(server.tam_url())
        .header(header::ACCEPT, TEEP)
        .header(header::CONTENT_TYPE, TEEP)
        .body(s.next.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("measurement"));
    let m = get_text(&http, format!("{}/metrics", server.base_url())).await;
    assert!(
        m.contains("otrp_attestation_failures_total{reason=\"unknown_measurement\"}"),
        "{m}"
    );
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
