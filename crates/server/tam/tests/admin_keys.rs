//! Admin keys over HTTP against real TAM servers: the verifier's reference values in the
//! store (changed without restart, shared by two replicas, the store winning over a
//! replica's config), and SD signer rotation (tenancy, the new key accepted, the retired
//! one refused, the device getting the new signer list before a TA signed by it).
//! SQLite always; PostgreSQL when `OTRP_TEST_DATABASE_URL` is set.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use otrp_pki::{CertKind, IssueRequest};
use otrp_tam_server::publish::{self, Payload};
use reqwest::StatusCode;
use serde_json::{json, Value};

const OTHER_MEASUREMENT: [u8; 32] = [0x11; 32];

/// What the TAM said to one attestation attempt of `dev` (a fresh TEEP session).
#[derive(Debug, PartialEq, Eq)]
enum Attested {
    /// The session ran to its end.
    Accepted,
    /// The QueryResponse was refused with this body.
    Refused(String),
}

async fn attest(http: &reqwest::Client, url: &str, dev: &mut Device) -> Attested {
    let (mut s, r) = post_query_response(http, url, dev).await;
    match r.status() {
        StatusCode::BAD_REQUEST => Attested::Refused(r.text().await.unwrap()),
        StatusCode::NO_CONTENT => Attested::Accepted,
        StatusCode::OK => {
            // An Update to process: let the session finish.
            let body = r.bytes().await.unwrap();
            let out = dev.agent.handle(&body, now());
            s.next = out.send.unwrap();
            for _ in 0..16 {
                if s.step(http, url, dev).await == Step::Done {
                    return Attested::Accepted;
                }
            }
            panic!("the session did not end");
        }
        other => panic!("TAM answered {other}: {}", r.text().await.unwrap()),
    }
}

/// Retries `attest` until it gives `want` or `within` passes (other replicas reload
/// reference values every `reference_refresh_secs`).
async fn attest_until(
    http: &reqwest::Client,
    url: &str,
    dev: &mut Device,
    accepted: bool,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = attest(http, url, dev).await;
        if matches!(got, Attested::Accepted) == accepted {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still {got:?} after {:?} (wanted accepted = {accepted})",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn put(api: &Api, model: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/reference-values/{model}");
    api.call(reqwest::Method::PUT, &path, token, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_values_set_over_the_api_change_the_verifier_without_restart() {
    let mut f = Fixture::new("refs", Backend::Sqlite);
    // tam.toml accepts another TEE image than the device runs.
    f.config.reference[0].measurements = vec![hex::encode(OTHER_MEASUREMENT)];
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let http = client(&f.pki);
    let mut dev = provision_device(&mut f, 61);
    register_device(&api, &t.oem, &dev, &[]).await;

    // The config file seeded the store.
    let list = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/reference-values", &t.oem).await,
        )
        .await;
    assert_eq!(list[0]["model"], MODEL, "{list}");
    assert_eq!(
        list[0]["measurements"],
        json!([hex::encode(OTHER_MEASUREMENT)])
    );
    assert_eq!(list[0]["updated_by"], "config");

    match attest(&http, &server.tam_url(), &mut dev).await {
        Attested::Refused(body) => assert!(body.contains("measurement"), "{body}"),
        other => panic!("{other:?}"),
    }

    // SPs and device admins may not change them; SPs do not even see them.
    let r = put(
        &api,
        MODEL,
        &t.sp,
        json!({"measurements": [hex::encode(MEASUREMENT)]}),
    )
    .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert_eq!(
        api.get("/api/v1/reference-values", &t.sp).await.0,
        StatusCode::FORBIDDEN
    );
    let admin = create_account(&api, &t.oem, "ops", "device-admin").await;
    assert_eq!(
        api.get("/api/v1/reference-values", &admin).await.0,
        StatusCode::OK
    );
    let r = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/reference-values/{MODEL}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // Bad input.
    let r = put(&api, MODEL, &t.oem, json!({"measurements": ["not hex"]})).await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);

    // The OEM adds the device's measurement: accepted at once, no restart.
    let v = api
        .ok(
            StatusCode::OK,
            put(
                &api,
                MODEL,
                &t.oem,
                json!({"measurements": [hex::encode(MEASUREMENT)], "add": true}),
            )
            .await,
        )
        .await;
    assert_eq!(
        v["measurements"],
        json!([hex::encode(OTHER_MEASUREMENT), hex::encode(MEASUREMENT)])
    );
    assert_eq!(v["updated_by"], "oem");
    assert_eq!(
        attest(&http, &server.tam_url(), &mut dev).await,
        Attested::Accepted
    );

    // A hardware version the device does not have: refused again.
    api.ok(
        StatusCode::OK,
        put(
            &api,
            MODEL,
            &t.oem,
            json!({"hwversions": ["9.9-never"], "add": true}),
        )
        .await,
    )
    .await;
    match attest(&http, &server.tam_url(), &mut dev).await {
        Attested::Refused(body) => assert!(body.contains("version"), "{body}"),
        other => panic!("{other:?}"),
    }
    // Removed: its devices are refused (the TAM does not accept unlisted models).
    api.ok(
        StatusCode::OK,
        api.call(
            reqwest::Method::DELETE,
            &format!("/api/v1/reference-values/{MODEL}"),
            &t.oem,
            None,
        )
        .await,
    )
    .await;
    match attest(&http, &server.tam_url(), &mut dev).await {
        Attested::Refused(body) => assert!(body.contains("model"), "{body}"),
        other => panic!("{other:?}"),
    }
    let r = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/reference-values/{MODEL}"),
            &t.oem,
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    // Set again (replacing): accepted.
    api.ok(
        StatusCode::OK,
        put(
            &api,
            MODEL,
            &t.oem,
            json!({"measurements": [hex::encode(MEASUREMENT)]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        attest(&http, &server.tam_url(), &mut dev).await,
        Attested::Accepted
    );

    // Every change and refusal is audited.
    let audit = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/audit?limit=200", &t.oem).await,
        )
        .await;
    let entries: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"].as_str().unwrap().starts_with("reference."))
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_owned(),
                a["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        entries
            .iter()
            .any(|(a, d)| a == "sp1" && d.starts_with("refused")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(a, d)| a == "ops" && d.starts_with("refused")),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .filter(|(a, d)| a == "oem" && d.starts_with("ok"))
            .count()
            >= 4,
        "{entries:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;

    // A restart with the same tam.toml: the store wins over the config file.
    let again = f.start().await;
    let http = client(&f.pki);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        attest(&http, &again.tam_url(), &mut dev).await,
        Attested::Accepted
    );
    let api = Api::new(&f.pki, &again);
    let list = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/reference-values", &t.oem).await,
        )
        .await;
    assert_eq!(
        list[0]["measurements"],
        json!([hex::encode(MEASUREMENT)]),
        "{list}"
    );
    again.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_agree_on_reference_values() {
    if skip_without_pg("two_servers_on_one_postgres_agree_on_reference_values") {
        return;
    }
    let mut f = Fixture::new("refs_pg", Backend::Postgres);
    f.config.reference[0].measurements = vec![hex::encode(OTHER_MEASUREMENT)];
    f.config.reference_refresh_secs = 1;
    let a = f.start().await;
    let b = f.start().await;
    let api_a = Api::new(&f.pki, &a);
    let api_b = Api::new(&f.pki, &b);
    let t = tenants(&f, &api_a).await;
    let http = client(&f.pki);
    let mut dev = provision_device(&mut f, 62);
    register_device(&api_a, &t.oem, &dev, &[]).await;
    attest_until(&http, &b.tam_url(), &mut dev, false, Duration::from_secs(1)).await;

    // Added through A: A accepts at once, B within its refresh period.
    api_a
        .ok(
            StatusCode::OK,
            put(
                &api_a,
                MODEL,
                &t.oem,
                json!({"measurements": [hex::encode(MEASUREMENT)], "add": true}),
            )
            .await,
        )
        .await;
    assert_eq!(
        attest(&http, &a.tam_url(), &mut dev).await,
        Attested::Accepted
    );
    let took = attest_until(&http, &b.tam_url(), &mut dev, true, Duration::from_secs(5)).await;
    println!(
        "replica B accepted the new measurement {took:?} after A's change (refresh period 1 s)"
    );
    // B's API reads the same store at once.
    let list = api_b
        .ok(
            StatusCode::OK,
            api_b.get("/api/v1/reference-values", &t.oem).await,
        )
        .await;
    assert_eq!(
        list[0]["measurements"].as_array().unwrap().len(),
        2,
        "{list}"
    );

    // Removed through B: A refuses within its refresh period.
    api_b
        .ok(
            StatusCode::OK,
            api_b
                .call(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/reference-values/{MODEL}"),
                    &t.oem,
                    None,
                )
                .await,
        )
        .await;
    assert!(matches!(
        attest(&http, &b.tam_url(), &mut dev).await,
        Attested::Refused(_)
    ));
    attest_until(&http, &a.tam_url(), &mut dev, false, Duration::from_secs(5)).await;

    // A third replica started with the same tam.toml does not seed the removed model back.
    let c = f.start().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(
        attest(&http, &c.tam_url(), &mut dev).await,
        Attested::Refused(_)
    ));
    for s in [a, b, c] {
        s.shutdown(Duration::from_secs(5)).await;
    }
    f.cleanup().await;
}

/// Issues another SP TA-signer certificate from the fixture's SP CA; returns (key, chain).
fn new_sp_signer(f: &mut Fixture, name: &str) -> (otrp_crypto::PrivateKey, String) {
    let issued = f
        .pki
        .issue(
            &IssueRequest::new(CertKind::Sp, name),
            &mut rng(7_000 + name.len() as u64),
            SystemTime::now() - Duration::from_secs(60),
        )
        .unwrap();
    let chain = String::from_utf8(f.pki.file(&issued.record.chain).unwrap().to_vec()).unwrap();
    (issued.key, chain)
}

async fn upload(
    api: &Api,
    token: &str,
    key: &otrp_crypto::PrivateKey,
    chain: &str,
    seq: u64,
) -> (StatusCode, Value) {
    // Each sequence number carries another image (the TAM skips a device whose
    // installed image digest is the latest's).
    let image = [TA, format!(" v{seq}").as_bytes()].concat();
    let env = publish::ta_envelope(
        provider(),
        key,
        "sd1/hello-ta",
        seq,
        &image,
        &Payload::Integrated,
    )
    .unwrap();
    api.post(
        "/api/v1/components",
        token,
        publish::upload_body(&env, chain, None),
    )
    .await
}

fn rotate_path() -> &'static str {
    "/api/v1/sds/sd1/rotate-signer"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_signer_rotation_tenancy_new_key_accepted_retired_key_refused() {
    let mut f = Fixture::new("rotate", Backend::Sqlite);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let (new_key, new_chain) = new_sp_signer(&mut f, "sp1-2027");
    let old_key = f.sp_key();
    let old_chain = f.sp_chain_pem();

    // A device gets sd1 (old signer) and a TA signed by the old key.
    let http = client(&f.pki);
    let mut dev = provision_device(&mut f, 71);
    register_device(&api, &t.oem, &dev, &[]).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    Session::new()
        .run(&http, &[server.tam_url()], &mut dev)
        .await;
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);

    // Another SP cannot touch sd1's signers: 404 (as for objects that do not exist);
    // a device admin: 403.
    let sp2 = approved_sp(&api, &t.oem, "sp2").await;
    let r = api
        .post(rotate_path(), &sp2, json!({"signer_chain_pem": new_chain}))
        .await;
    assert_eq!(r.0, StatusCode::NOT_FOUND, "{}", r.1);
    let ops = create_account(&api, &t.oem, "ops", "device-admin").await;
    let r = api
        .post(rotate_path(), &ops, json!({"signer_chain_pem": new_chain}))
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    // A chain outside the SP root, an unknown signer to retire: refused.
    let server_rec = f.pki.first_issued(CertKind::Server).unwrap();
    let foreign = String::from_utf8(f.pki.file(&server_rec.chain).unwrap().to_vec()).unwrap();
    let r = api
        .post(rotate_path(), &t.sp, json!({"signer_chain_pem": foreign}))
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    let r = api
        .post(
            rotate_path(),
            &t.sp,
            json!({"signer_chain_pem": new_chain, "retire": ["00ff"]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    // Before the rotation the new key is refused at upload.
    let r = upload(&api, &t.sp, &new_key, &new_chain, 2).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);

    // The owning SP rotates: new key in, old key retired, SD manifest #2.
    let before = api
        .ok(StatusCode::OK, api.get("/api/v1/sds", &t.sp).await)
        .await;
    let old_thumb = before[0]["signers"][0].as_str().unwrap().to_owned();
    let rot = api
        .ok(
            StatusCode::OK,
            api.post(rotate_path(), &t.sp, json!({"signer_chain_pem": new_chain}))
                .await,
        )
        .await;
    assert_eq!(rot["retired"], json!([old_thumb]), "{rot}");
    assert_eq!(rot["sd"]["manifest_seq"], 2, "{rot}");
    assert_eq!(rot["sd"]["signers"], json!([rot["added"].clone()]), "{rot}");
    // Nothing left to rotate with the same key.
    let r = api
        .post(rotate_path(), &t.sp, json!({"signer_chain_pem": new_chain}))
        .await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);

    // Retired key refused at upload, new key accepted.
    let r = upload(&api, &t.sp, &old_key, &old_chain, 2).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert!(
        r.1["error"].as_str().unwrap().contains("not authorized"),
        "{}",
        r.1
    );
    let r = upload(&api, &t.sp, &new_key, &new_chain, 2).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);

    // The device: the TA signed by the old key stayed installed; at its next session it
    // gets SD manifest #2 (the new signer list) and the TA signed by the new key, which
    // its Agent accepts only because the SD manifest came first.
    dev.events.clear();
    Session::new()
        .run(&http, &[server.tam_url()], &mut dev)
        .await;
    // (The Agent reports an SD manifest it registered, first or updated, as SdCreated.)
    let sd_at = dev
        .events
        .iter()
        .position(|e| matches!(e, otrp_agent::Event::SdCreated { name } if name == b"sd1"));
    let ta_at = dev.events.iter().position(|e| {
        matches!(e, otrp_agent::Event::Installed { component } if component.0.get(1).map(Vec::as_slice) == Some(b"hello-ta".as_slice()))
    });
    assert!(sd_at.is_some() && ta_at.is_some(), "{:?}", dev.events);
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);

    // Audit: the refusals and the rotation.
    let audit = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/audit?limit=200", &t.oem).await,
        )
        .await;
    let rot: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "sd.rotate-signer")
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_owned(),
                a["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        rot.iter()
            .any(|(a, d)| a == "sp2" && d.starts_with("refused")),
        "{rot:?}"
    );
    assert!(
        rot.iter()
            .any(|(a, d)| a == "ops" && d.starts_with("refused")),
        "{rot:?}"
    );
    assert!(
        rot.iter()
            .any(|(a, d)| a == "sp1" && d.starts_with("ok: added")),
        "{rot:?}"
    );

    // The OpenAPI document lists the new endpoints.
    let doc: Value = http
        .get(format!("{}/openapi.json", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/sds/{name}/rotate-signer",
        "/api/v1/reference-values",
        "/api/v1/reference-values/{model}",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from /openapi.json"
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_oem_owned_sds_only_the_oem_rotates_signers() {
    let mut f = Fixture::new("rotate_oem", Backend::Sqlite);
    f.config.policy = otrp_tam_server::config::PolicyConfig::OemOwnedSd;
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let (new_key, new_chain) = new_sp_signer(&mut f, "sp1-next");
    let r = api
        .post(rotate_path(), &t.sp, json!({"signer_chain_pem": new_chain}))
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert!(
        r.1["error"].as_str().unwrap().contains("oem-owned-sd"),
        "{}",
        r.1
    );
    // The OEM keeps the old signer too (explicit, empty retire list).
    let rot = api
        .ok(
            StatusCode::OK,
            api.post(
                rotate_path(),
                &t.oem,
                json!({"signer_chain_pem": new_chain, "retire": []}),
            )
            .await,
        )
        .await;
    assert_eq!(rot["sd"]["signers"].as_array().unwrap().len(), 2, "{rot}");
    assert_eq!(rot["retired"], json!([]));
    let r = upload(&api, &t.sp, &new_key, &new_chain, 1).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    let r = upload(&api, &t.sp, &f.sp_key(), &f.sp_chain_pem(), 2).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
