//! Unlisted device models, fleet-wide: the OEM's `*` reference-values record (in the store,
//! shared by every replica) covers every model without a record of its own, removed
//! models excepted; without it, an unlisted model is refused (`accept_unlisted_models`
//! stays off). Through the real HTTPS server, a real Agent and the admin API.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// One attestation attempt: the answer to the QueryResponse (status, body text).
async fn attest(http: &reqwest::Client, url: &str, dev: &mut Device) -> (StatusCode, String) {
    let (_, r) = post_query_response(http, url, dev).await;
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wildcard_record_admits_unlisted_models_except_removed_ones() {
    let mut f = Fixture::new("unlisted", Backend::Sqlite);
    // No [[reference]] for the device's model, accept_unlisted_models off.
    f.config.reference.clear();
    assert!(!f.config.accept_unlisted_models);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let http = client(&f.pki);
    let url = server.tam_url();
    let mut dev = provision_device(&mut f, 501);
    register_device(&api, &t.oem, &dev, &[]).await;
    publish_and_deploy(&f, &api, &t, 1).await;

    // Unlisted and no wildcard: refused.
    let (s, text) = attest(&http, &url, &mut dev).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains(MODEL), "{text}");

    // A wildcard with another measurement: appraised with it, so refused for the
    // measurement (the SP cannot set it).
    let path = "/api/v1/reference-values/*";
    let (s, _) = api
        .call(
            reqwest::Method::PUT,
            path,
            &t.sp,
            Some(json!({"measurements": [hex::encode(MEASUREMENT)]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let put = |m: [u8; 32]| {
        api.call(
            reqwest::Method::PUT,
            path,
            &t.oem,
            Some(json!({"measurements": [hex::encode(m)]})),
        )
    };
    assert_eq!(put([0x11; 32]).await.0, StatusCode::OK);
    let (s, text) = attest(&http, &url, &mut dev).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("measurement"), "{text}");

    // The wildcard with the device's measurement: the whole session installs the TA.
    assert_eq!(put(MEASUREMENT).await.0, StatusCode::OK);
    Session::new()
        .run(&http, std::slice::from_ref(&url), &mut dev)
        .await;
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);
    // Not cached under the model: the wildcard's own record is all there is.
    let list = api
        .ok(
            StatusCode::OK,
            api.get("/api/v1/reference-values", &t.oem).await,
        )
        .await;
    let listed = list.to_string();
    assert!(
        listed.contains("\"*\"") && !listed.contains(MODEL),
        "{listed}"
    );

    // A second replica on the same store learns the wildcard from the store (its config
    // file has none) once its first reload is done (milliseconds after start).
    let second = f.start().await;
    let second_url = second.tam_url();
    let mut dev2 = provision_device(&mut f, 502);
    register_device(&api, &t.oem, &dev2, &[]).await;
    let mut admitted = false;
    for _ in 0..50 {
        if attest(&http, &second_url, &mut dev2).await.0 == StatusCode::OK {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        admitted,
        "the second replica never admitted the unlisted model"
    );
    Session::new()
        .run(&http, std::slice::from_ref(&second_url), &mut dev2)
        .await;
    assert!(
        installed(&dev2, &[b"sd1", b"hello-ta"]),
        "{:?}",
        dev2.events
    );

    // A model the OEM removed stays refused despite the wildcard.
    let model_path = format!("/api/v1/reference-values/{MODEL}");
    let (s, _) = api
        .call(
            reqwest::Method::PUT,
            &model_path,
            &t.oem,
            Some(json!({"measurements": [hex::encode(MEASUREMENT)]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call(reqwest::Method::DELETE, &model_path, &t.oem, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, text) = attest(&http, &url, &mut dev).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains(MODEL), "{text}");

    second.shutdown(Duration::from_secs(5)).await;
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
