//! The compact TEEP wire profile chosen in the TAM server's configuration (`compact`,
//! `compact_models`; docs/CONSTRAINED.md), seen through the real HTTPS server: the Broker
//! loop keeps the bytes the TAM sent, and the Update among them is kid-less with an
//! 8-byte token for a device whose model is listed (or with `compact = "all"`), and has a
//! kid and a 16-byte token otherwise. Every device installs the TA either way. With
//! `compact_transports = ["coap"]`, the same server sends compact Updates to the device
//! that reaches it over CoAP and standard ones to the device on HTTPS.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "common/coap_support.rs"]
mod coap_support;
mod common;

use std::time::Duration;

use coap_support::AgentLink;
use common::*;
use otrp_broker::{run_session, Http, TeeLink};
use otrp_tam_server::config::{CompactConfig, TransportConfig};
use otrp_tee_daemon::{TeeError, TeepReply};
use otrp_teep::TeepMessage;
use reqwest::StatusCode;

/// Runs one device's session through the server and returns every 200 body the TAM sent.
async fn tam_messages(
    compact: CompactConfig,
    compact_models: &[&str],
    seed: u64,
) -> (Vec<Vec<u8>>, Vec<otrp_crypto::PublicKey>) {
    let mut f = Fixture::new("compact", Backend::Sqlite);
    f.config.compact = compact;
    f.config.compact_models = compact_models.iter().map(|m| m.to_string()).collect();
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let mut dev = provision_device(&mut f, seed);
    register_device(&api, &t.oem, &dev, &[]).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    let http = client(&f.pki);
    let mut next = Vec::new();
    let mut relayed = Vec::new();
    for _ in 0..32 {
        let mut req = http
            .post(server.tam_url())
            .header(reqwest::header::ACCEPT, TEEP);
        if !next.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, TEEP);
        }
        let resp = req.body(next.clone()).send().await.unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap().to_vec();
        if status == StatusCode::NO_CONTENT {
            assert!(
                installed(&dev, &[b"sd1", b"hello-ta"]),
                "session ended without the TA: {:?}",
                dev.events
            );
            let keys = vec![
                f.identity.keys.p256.public_key(),
                f.identity.keys.ed25519.public_key(),
            ];
            f.cleanup().await;
            return (relayed, keys);
        }
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let out = dev.agent.handle(&body, now());
        dev.events.extend(out.events.iter().cloned());
        relayed.push(body);
        next = out
            .send
            .unwrap_or_else(|| panic!("the Agent sent nothing back: {:?}", dev.events));
    }
    panic!("the session did not end in 32 requests");
}

/// The Update among the TAM's messages: (has a kid, token length, size in bytes).
fn update_shape(messages: &[Vec<u8>], tam_keys: &[otrp_crypto::PublicKey]) -> (bool, usize, usize) {
    let updates: Vec<_> = messages
        .iter()
        .filter_map(|bytes| {
            // The Agent already verified every message; this decodes them again.
            let v = otrp_teep::signed::verify(provider(), bytes, tam_keys).unwrap();
            match v.message {
                TeepMessage::Update(u) => {
                    // The Update is one COSE_Sign1 (the QueryRequest is a COSE_Sign).
                    let cose = otrp_cose::parse_sign1(bytes).unwrap();
                    let has_kid = !cose.unprotected.key_id.is_empty()
                        || !cose.protected.header.key_id.is_empty();
                    assert_eq!(has_kid, v.kid.is_some());
                    Some((has_kid, u.token.map_or(0, |t| t.len()), bytes.len()))
                }
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        updates.len(),
        1,
        "expected one Update among {} messages",
        messages.len()
    );
    updates[0]
}

#[tokio::test]
async fn compact_models_get_kidless_updates_with_8_byte_tokens_over_http() {
    // The device's model (MODEL) is listed: compact.
    let (listed, keys) = tam_messages(CompactConfig::None, &[MODEL, "lock-v1"], 301).await;
    let (kid, token, compact_len) = update_shape(&listed, &keys);
    assert_eq!((kid, token), (false, 8), "listed model");
    // Only another model is listed: standard, on a server configured the same otherwise.
    let (other, keys) = tam_messages(CompactConfig::None, &["lock-v1"], 302).await;
    let (kid, token, standard_len) = update_shape(&other, &keys);
    assert_eq!((kid, token), (true, 16), "unlisted model");
    // Nothing configured: the default is the standard profile.
    let (default, keys) = tam_messages(CompactConfig::None, &[], 303).await;
    assert!(update_shape(&default, &keys).0, "default");
    // `compact = "all"`: every device, listed or not.
    let (all, keys) = tam_messages(CompactConfig::All, &[], 304).await;
    let (kid, token, _) = update_shape(&all, &keys);
    assert_eq!((kid, token), (false, 8), "compact = all");
    // The same TA and manifest: the kid (35 B with its header) and 8 token bytes go.
    assert_eq!(standard_len - compact_len, 43);
}

/// A device's Agent as the Broker's TEE, keeping every TAM message it is given.
struct Recording<'a> {
    link: AgentLink<'a>,
    seen: Vec<Vec<u8>>,
}

impl TeeLink for Recording<'_> {
    async fn process(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.seen.push(message.clone());
        self.link.process(message).await
    }
    async fn provide_fetch(&mut self, uri: String, bytes: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.link.provide_fetch(uri, bytes).await
    }
    async fn fetch_failed(&mut self, uri: String) -> Result<TeepReply, TeeError> {
        self.link.fetch_failed(uri).await
    }
    async fn process_error(&mut self, detail: String) -> Result<(), TeeError> {
        self.link.process_error(detail).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_transports_coap_gets_compact_updates_and_https_keeps_standard() {
    let mut f = Fixture::new("compact-coap", Backend::Sqlite);
    f.config.compact_transports = vec![TransportConfig::Coap];
    let (store, backend) = f.store().await;
    let (state, server) = f.start_with_state(store, backend).await;
    let coap_config = otrp_coap::Config {
        max_body: 64 * 1024,
        ..otrp_coap::Config::fast(Duration::from_millis(150))
    };
    let coap = otrp_coap::CoapServer::bind_with(
        "127.0.0.1:0",
        coap_config.clone(),
        otrp_tam_server::coap::handler(state.clone()),
    )
    .await
    .unwrap();
    let server = server.with_coap(coap);
    let url = format!("coap://{}/teep", server.coap_addr().unwrap());
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    // Two devices of the same model (listed nowhere), one per transport.
    let mut over_coap = provision_device(&mut f, 311);
    let mut over_https = provision_device(&mut f, 312);
    register_device(&api, &t.oem, &over_coap, &[]).await;
    register_device(&api, &t.oem, &over_https, &[]).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    let keys = vec![
        f.identity.keys.p256.public_key(),
        f.identity.keys.ed25519.public_key(),
    ];

    let http = Http::new(None, Duration::from_secs(30))
        .unwrap()
        .with_coap_config(coap_config);
    let mut rec = Recording {
        link: AgentLink(&mut over_coap),
        seen: Vec::new(),
    };
    let report = run_session(&http, &url, &mut rec)
        .await
        .unwrap_or_else(|e| panic!("session over {url} failed: {e}"));
    assert_eq!(report.count("installed"), 1, "{report:?}");
    let coap_seen = rec.seen;
    assert!(installed(&over_coap, &[b"sd1", b"hello-ta"]));
    let (kid, token, compact_len) = update_shape(&coap_seen, &keys);
    assert_eq!((kid, token), (false, 8), "device over CoAP");

    // The same server, the same TA, over HTTPS: standard.
    let mut relayed = Vec::new();
    let client = client(&f.pki);
    let mut next = Vec::new();
    for _ in 0..32 {
        let mut req = client
            .post(server.tam_url())
            .header(reqwest::header::ACCEPT, TEEP);
        if !next.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, TEEP);
        }
        let resp = req.body(next.clone()).send().await.unwrap();
        if resp.status() == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.bytes().await.unwrap().to_vec();
        let out = over_https.agent.handle(&body, now());
        over_https.events.extend(out.events.iter().cloned());
        relayed.push(body);
        next = out.send.unwrap();
    }
    assert!(installed(&over_https, &[b"sd1", b"hello-ta"]));
    let (kid, token, standard_len) = update_shape(&relayed, &keys);
    assert_eq!((kid, token), (true, 16), "device over HTTPS");
    assert_eq!(standard_len - compact_len, 43);
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
