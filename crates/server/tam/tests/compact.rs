//! The compact TEEP wire profile chosen in the TAM server's configuration (`compact`,
//! `compact_models`; docs/CONSTRAINED.md), seen through the real HTTPS server: the Broker
//! loop keeps the bytes the TAM sent, and the Update among them is kid-less with an
//! 8-byte token for a device whose model is listed (or with `compact = "all"`), and has a
//! kid and a 16-byte token otherwise. Every device installs the TA either way.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use otrp_tam_server::config::CompactConfig;
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
