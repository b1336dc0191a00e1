//! TEEP over CoAP end to end: the real TAM server (SQLite) serving `/teep` over UDP, a
//! lossy, reordering relay in front of it, and a real Agent behind the Broker's
//! `run_session` with a `coap://` TAM URL.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

#[path = "common/coap_support.rs"]
mod coap_support;
mod common;
#[path = "common/libcoap.rs"]
mod libcoap;
#[path = "common/relay.rs"]
mod relay;

use std::time::Duration;

use coap_support::{counting_handler, AgentLink};
use common::*;
use otrp_broker::{run_session, Http};
use otrp_coap::{Config, WireStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use relay::lossy_relay;

/// CoAP timers for loopback: 150 ms initial timeout, 8 retransmissions.
fn fast(block: usize) -> Config {
    with_timeout(block, Duration::from_millis(150))
}

/// CoAP timers for a lossy link: every lost datagram costs one ACK timeout, so 30 ms
/// (8 retransmissions with backoff still allow 15 s for a slow debug build).
fn lossy(block: usize) -> Config {
    with_timeout(block, Duration::from_millis(30))
}

fn with_timeout(block: usize, ack_timeout: Duration) -> Config {
    Config {
        block_szx: Config::with_block_size(block).unwrap().block_szx,
        max_body: 64 * 1024,
        ..Config::fast(ack_timeout)
    }
}

/// The TAM (SQLite) serving TEEP over CoAP with `cfg`, its handler recording every TEEP
/// message it processes (`seen`), an SP that has deployed `sd1/hello-ta` to the model,
/// and a device (provisioned with `seed`) registered for it.
struct CoapTam {
    f: Fixture,
    server: otrp_tam_server::RunningServer,
    addr: std::net::SocketAddr,
    api: Api,
    t: Tenants,
    dev: Device,
    dep: i64,
    seen: std::sync::Arc<std::sync::Mutex<Vec<[u8; 32]>>>,
}

async fn coap_tam(tag: &str, cfg: Config, seed: u64) -> CoapTam {
    let mut f = Fixture::new(tag, Backend::Sqlite);
    let (store, backend) = f.store().await;
    let (state, server) = f.start_with_state(store, backend).await;
    let (counting, seen) = counting_handler(state.clone());
    let coap = otrp_coap::CoapServer::bind_with("127.0.0.1:0", cfg, counting)
        .await
        .unwrap();
    let server = server.with_coap(coap);
    let addr = server.coap_addr().unwrap();
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let dev = provision_device(&mut f, seed);
    register_device(&api, &t.oem, &dev, &["eu"]).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;
    CoapTam {
        f,
        server,
        addr,
        api,
        t,
        dev,
        dep,
        seen,
    }
}

/// Publishes a TA, installs it on a fresh device through the Broker over CoAP at `block`
/// bytes through a relay losing `loss` (and reordering as much), checks that it installed
/// exactly once with no TEEP message processed twice, and returns the Broker's wire stats.
async fn install_over_coap(block: usize, loss: f64, seed: u64) -> WireStats {
    // Without loss no timer fires: the long timeout keeps the clean runs free of
    // spurious retransmissions (they are asserted to be 0) on a busy machine.
    let cfg = if loss > 0.0 {
        lossy(block)
    } else {
        fast(block)
    };
    let CoapTam {
        f,
        server,
        addr: coap_addr,
        api,
        t,
        mut dev,
        dep,
        seen,
    } = coap_tam("coap", cfg.clone(), 300 + seed).await;

    let relay = if loss > 0.0 {
        lossy_relay(coap_addr, loss, loss, seed).await
    } else {
        coap_addr
    };
    let url = format!("coap://{relay}/teep");
    let http = Http::new(None, Duration::from_secs(30))
        .unwrap()
        .with_coap_config(cfg);
    let report = run_session(&http, &url, &mut AgentLink(&mut dev))
        .await
        .unwrap_or_else(|e| panic!("session over {url} failed: {e}"));
    let stats = http.coap_stats();

    assert_eq!(report.count("installed"), 1, "{report:?}");
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);
    // QueryRequest → QueryResponse, Update → Success, then the TAM says nothing more.
    assert_eq!(report.tam_messages, 2, "{report:?}");
    assert_eq!(report.tee_replies, 2, "{report:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the TAM processed {} TEEP messages",
        seen.len()
    );
    assert_ne!(seen[0], seen[1]);

    let p = api.deployment(dep, &t.sp).await;
    assert_eq!(p["done"], 1, "{p}");
    assert_eq!(p["targeted"], 1, "{p}");

    // A second session finds nothing to do and installs nothing again.
    let again = run_session(&http, &url, &mut AgentLink(&mut dev))
        .await
        .unwrap();
    assert_eq!(again.count("installed"), 0, "{again:?}");
    assert_eq!(again.tam_messages, 1, "{again:?}");

    eprintln!(
        "FIGURE coap install block={block} loss={:.0}%: sent {} datagrams / {} B, received {} datagrams / {} B, {} retransmissions, total {} B in {} datagrams",
        loss * 100.0,
        stats.datagrams_sent,
        stats.bytes_sent,
        stats.datagrams_received,
        stats.bytes_received,
        stats.retransmissions,
        stats.bytes_sent + stats.bytes_received,
        stats.datagrams_sent + stats.datagrams_received,
    );
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ta_installs_once_over_coap_block_64_through_lossy_reordering_relay() {
    let stats = install_over_coap(64, 0.10, 7).await;
    // Block-wise at 64 B: the Update alone needs many blocks.
    assert!(stats.datagrams_sent > 10, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_install_wire_figures_64_and_256_with_and_without_loss() {
    let clean64 = install_over_coap(64, 0.0, 11).await;
    let clean256 = install_over_coap(256, 0.0, 12).await;
    let lossy256 = install_over_coap(256, 0.10, 13).await;
    assert_eq!(clean64.retransmissions, 0, "{clean64:?}");
    assert_eq!(clean256.retransmissions, 0, "{clean256:?}");
    // Smaller blocks: more datagrams, more header bytes.
    assert!(
        clean64.datagrams_sent + clean64.datagrams_received
            > clean256.datagrams_sent + clean256.datagrams_received
    );
    assert!(
        lossy256.datagrams_sent >= clean256.datagrams_sent,
        "{lossy256:?} vs {clean256:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_coap_listen_serves_teep_and_maps_errors() {
    let f = Fixture::new("coapstart", Backend::Sqlite);
    let config = otrp_tam_server::ServerConfig {
        coap_listen: Some("127.0.0.1:0".parse().unwrap()),
        coap_block_size: 64,
        ..f.config.clone()
    };
    let server = otrp_tam_server::start(config).await.unwrap();
    let url = server.coap_url().unwrap();
    assert!(
        url.starts_with("coap://127.0.0.1:") && url.ends_with("/teep"),
        "{url}"
    );
    let addr = server.coap_addr().unwrap();
    let client = otrp_coap::CoapClient::new(fast(64), &mut ChaCha8Rng::seed_from_u64(5));

    // Empty body: a session opens with a QueryRequest, sent block-wise (> 64 B).
    let (r, stats) = client.post_with_stats(addr, "/teep", Vec::new()).await;
    let r = r.unwrap();
    assert_eq!(r.code, otrp_coap::Code::Changed);
    assert!(r.body.len() > 64, "{} bytes", r.body.len());
    assert!(stats.datagrams_received > 1, "{stats:?}");

    // Not a TEEP message: 4.00 without payload.
    let r = client.post(addr, "/teep", vec![0xa0; 10]).await.unwrap();
    assert_eq!(r.code, otrp_coap::Code::BadRequest);
    assert!(r.body.is_empty());

    // Another resource: 4.04.
    let r = client.post(addr, "/tam", Vec::new()).await.unwrap();
    assert_eq!(r.code, otrp_coap::Code::NotFound);

    // An invalid block size refuses to start.
    let bad = otrp_tam_server::ServerConfig {
        coap_listen: Some("127.0.0.1:0".parse().unwrap()),
        coap_block_size: 100,
        ..f.config.clone()
    };
    assert!(otrp_tam_server::start(bad).await.is_err());
    // So does a bound on what the endpoint holds below the largest message.
    let bad = otrp_tam_server::ServerConfig {
        coap_listen: Some("127.0.0.1:0".parse().unwrap()),
        coap_max_held_bytes: f.config.max_teep_body_bytes - 1,
        ..f.config.clone()
    };
    let err = otrp_tam_server::start(bad).await.err().unwrap();
    assert!(
        format!("{err:#}").contains("coap_max_held_bytes"),
        "{err:#}"
    );

    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

/// One confirmable POST to `/teep` with message id and token `i`, set up by `f`, sent
/// from `sock`; the answer.
async fn post_raw(
    sock: &tokio::net::UdpSocket,
    addr: std::net::SocketAddr,
    i: u16,
    f: impl FnOnce(&mut coap_lite::Packet),
) -> coap_lite::Packet {
    use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = i;
    p.set_token(i.to_be_bytes().to_vec());
    p.add_option(CoapOption::UriPath, b"teep".to_vec());
    f(&mut p);
    sock.send_to(&p.to_bytes().unwrap(), addr).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer to every request")
        .unwrap();
    Packet::from_bytes(&buf[..n]).unwrap()
}

/// A flood of uploads that never finish (each with its own token, as if from its own
/// forged address) fills the CoAP endpoint up to `coap_max_held_bytes`; from then on it
/// answers 5.03 Service Unavailable with Max-Age instead of holding more, and keeps
/// answering; a Broker opening a session then gets an error that says why, and
/// `/metrics` shows what the endpoint holds and how many requests it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_uploads_gets_5_03_at_the_bound() {
    use coap_lite::{CoapOption, MessageClass, ResponseType};
    let f = Fixture::new("coapflood", Backend::Sqlite);
    let config = otrp_tam_server::ServerConfig {
        coap_listen: Some("127.0.0.1:0".parse().unwrap()),
        coap_block_size: 64,
        max_teep_body_bytes: 16 << 10,
        coap_max_held_bytes: 32 << 10,
        ..f.config.clone()
    };
    let server = otrp_tam_server::start(config).await.unwrap();
    let addr = server.coap_addr().unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cont = MessageClass::Response(ResponseType::Continue);
    let busy = MessageClass::Response(ResponseType::ServiceUnavailable);
    let mut codes = Vec::new();
    for i in 0..40u16 {
        let r = post_raw(&sock, addr, i, |p| {
            p.add_option(CoapOption::Block1, vec![0x0a]); // num 0, more, 64 B
            p.add_option(CoapOption::Size1, vec![0x40, 0x00]); // 16 KiB
            p.payload = vec![0xa5; 64];
        })
        .await;
        if r.header.code == busy {
            assert!(r.get_first_option(CoapOption::MaxAge).is_some());
        }
        codes.push(r.header.code);
    }
    let taken = codes.iter().take_while(|c| **c == cont).count();
    // 4 KiB is set aside for each body: the first few fit, then every one is refused.
    assert!((2..=8).contains(&taken), "{codes:?}");
    assert!(codes[taken..].iter().all(|c| *c == busy), "{codes:?}");
    // Sessions opened and never followed (each QueryRequest answer held for its Block2
    // follow-ups) take what room the uploads left.
    let mut filled = false;
    for i in 100..140u16 {
        if post_raw(&sock, addr, i, |_| {}).await.header.code == busy {
            filled = true;
            break;
        }
    }
    assert!(filled, "unfollowed sessions fill the rest");
    // A Broker opening a session meanwhile is told why, and retries later.
    let http = otrp_broker::Http::new(None, Duration::from_secs(30)).unwrap();
    let err = http
        .post(&server.coap_url().unwrap(), Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("5.03") && err.contains("coap_max_held_bytes"),
        "{err}"
    );
    // Prometheus sees it (the endpoint's stats are exported every second).
    let http = client(&f.pki);
    let url = format!("{}/metrics", server.base_url());
    let refused = format!("otrp_coap_busy_refusals_total{{endpoint=\"{addr}\"}} ");
    let held = format!("otrp_coap_held_bytes{{endpoint=\"{addr}\"}} ");
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let mut seen = None;
    for _ in 0..50 {
        let text = get_text(&http, &url).await;
        if let (Some(r), Some(h)) = (value(&text, &refused), value(&text, &held)) {
            if r >= 30.0 {
                seen = Some((r, h));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (r, h) = seen.expect("the CoAP stats in /metrics");
    assert!(h > 16_000.0 && h <= f64::from(32u32 << 10), "held {h}");
    assert!(r >= 30.0, "refused {r}");
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

/// libcoap's `coap-client` (an independent C implementation of RFC 7252 and RFC 7959) as
/// the Broker: it carries a whole TEEP session between a real Agent and the TAM's CoAP
/// endpoint in 32-byte blocks where the TAM's own block size is 64, so every message goes
/// block-wise both ways (Block1 up, Block2 down, both at 32). Two of its datagrams are
/// dropped by libcoap itself, so the TAM also sees retransmitted blocks; the TA must
/// install exactly once, with no TEEP message processed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_client_carries_a_teep_session_block_wise_both_ways() {
    libcoap_teep_session(32, Some("2,5"), 411).await;
}

/// [`libcoap_client_carries_a_teep_session_block_wise_both_ways`] at the smallest block
/// size, 16 bytes (the QueryResponse goes up in over 100 blocks), without drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcoap_client_carries_a_teep_session_in_16_byte_blocks() {
    libcoap_teep_session(16, None, 412).await;
}

/// A TEEP session carried by libcoap at `block` bytes, the QueryResponse's datagrams
/// `drop` (libcoap's `-l`) lost on the way; device seed `seed`.
async fn libcoap_teep_session(block: usize, drop: Option<&'static str>, seed: u64) {
    let Some(client) = libcoap::coap_client_or_skip("libcoap_teep_session") else {
        return;
    };
    // The TAM's timers stay at RFC 7252's: libcoap's retransmissions (2-3 s) set the pace.
    let cfg = Config {
        block_szx: Config::with_block_size(64).unwrap().block_szx,
        max_body: 64 * 1024,
        ..Config::default()
    };
    let CoapTam {
        f,
        server,
        addr,
        api,
        t,
        mut dev,
        dep,
        seen,
    } = coap_tam("libcoap", cfg, seed).await;

    let uri = format!("coap://{addr}/teep");
    let dir = f.dir.join("libcoap");
    let mut body: Option<Vec<u8>> = None;
    let mut exchanges = Vec::new();
    let mut sent_lens = Vec::new();
    for round in 0..6 {
        sent_lens.push(body.as_ref().map_or(0, Vec::len));
        let req = libcoap::Req {
            method: "post",
            uri: uri.clone(),
            body: body.clone(),
            block: Some(block),
            content_format: Some(otrp_coap::TEEP_CBOR_CONTENT_FORMAT),
            // The QueryResponse goes up in many blocks: lose some of its datagrams.
            drop: drop.filter(|_| round == 1),
        };
        let ex = client.run(&dir, req).await.unwrap();
        assert_eq!(
            ex.code, "2.04",
            "round {round}: libcoap got no 2.04 Changed; its log:\n{}",
            ex.log
        );
        exchanges.push(ex.clone());
        if ex.body.is_empty() {
            break;
        }
        let out = dev.agent.handle(&ex.body, now());
        dev.events.extend(out.events.iter().cloned());
        body = out.send;
        assert!(
            body.is_some(),
            "round {round}: the Agent had nothing to send: {:?}",
            out.events
        );
    }

    // Empty POST → QueryRequest, QueryResponse → Update, Success → nothing.
    assert_eq!(exchanges.len(), 3, "{exchanges:#?}");
    assert!(installed(&dev, &[b"sd1", b"hello-ta"]), "{:?}", dev.events);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the TAM processed a TEEP message twice or not at all"
    );
    // Block-wise both ways: the QueryResponse (Block1) and the Update (Block2) each took
    // more than one datagram; the dropped ones were sent again.
    let up = &exchanges[1];
    assert!(up.datagrams_sent >= sent_lens[1].div_ceil(block), "{up:?}");
    assert!(
        up.datagrams_received >= up.body.len().div_ceil(block),
        "{up:?}"
    );
    let dropped = drop.map_or(0, |d| d.split(',').count());
    assert_eq!(up.dropped, dropped, "{}", up.log);
    assert!(up.retransmissions >= dropped, "{}", up.log);
    // libcoap sends `block`-byte blocks and asks no Block2 size: the TAM (64) answers in
    // blocks of the same size.
    for ex in &exchanges {
        assert!(
            ex.response_block_sizes.iter().all(|&b| b == block),
            "{:?}",
            ex.response_block_sizes
        );
    }
    assert!(up.response_block_sizes.contains(&block), "{}", up.log);
    let p = api.deployment(dep, &t.sp).await;
    assert_eq!(p["done"], 1, "{p}");
    for (i, ex) in exchanges.iter().enumerate() {
        eprintln!(
            "FIGURE libcoap exchange {i}: {} B back, {} datagrams sent ({} dropped, {} retransmissions), {} received",
            ex.body.len(),
            ex.datagrams_sent,
            ex.dropped,
            ex.retransmissions,
            ex.datagrams_received
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
