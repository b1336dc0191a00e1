//! Fault suite (issue #8): the Broker's network goes dark in the middle of a CoAP
//! block-wise transfer. The real TAM server (SQLite) serves `/teep` over CoAP at 64-byte
//! blocks; a relay between it and the Broker (`run_session` with a `coap://` URL and a real
//! Agent) forwards everything until the TAM has processed the QueryResponse and two blocks
//! of its Update have gone out, then drops every datagram both ways for a while, then
//! forwards again.
//!
//! - short outage (1.5 s, inside the CoAP retransmission window): the same session
//!   resumes the block-wise transfer and the TA installs exactly once;
//! - long outage (3 s, beyond the window of a Broker that gives up after ~1 s): the
//!   session fails cleanly (an error, no install, no hang) and the next session, once the
//!   network is back, installs it exactly once.
//!
//! In both, no TEEP message reaches the TAM twice and the TAM counts the device once.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

#[path = "common/coap_support.rs"]
mod coap_support;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coap_support::{counting_handler, AgentLink};
use common::*;
use otrp_broker::{run_session, Http};
use otrp_coap::Config;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::UdpSocket;

/// What the relay saw.
#[derive(Default)]
struct Outage {
    /// When the network went dark.
    since: Mutex<Option<Instant>>,
    /// TEEP messages the TAM had processed at that moment.
    tam_messages_at_dark: AtomicUsize,
    /// Datagrams dropped while dark (both ways).
    dropped: AtomicUsize,
    /// Datagrams from the TAM after it processed its first message, up to the outage.
    update_blocks: AtomicUsize,
}

impl Outage {
    fn dark(&self, dark_for: Duration) -> bool {
        matches!(*self.since.lock().unwrap(), Some(t) if t.elapsed() < dark_for)
    }
}

/// A UDP relay in front of `server`. Once the TAM has processed one TEEP message (`seen`
/// holds one digest: the QueryResponse) and `after_blocks` datagrams of its answer (the
/// Update, block-wise) went to the Broker, everything is dropped both ways for
/// `dark_for`, then forwarded again.
async fn dark_relay(
    server: SocketAddr,
    seen: Arc<Mutex<Vec<[u8; 32]>>>,
    after_blocks: usize,
    dark_for: Duration,
) -> (SocketAddr, Arc<Outage>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let outage = Arc::new(Outage::default());
    let o = outage.clone();
    tokio::spawn(async move {
        let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf).await else {
                continue;
            };
            let up = match upstreams.get(&client) {
                Some(u) => u.clone(),
                None => {
                    let u = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    upstreams.insert(client, u.clone());
                    let (u2, front2, o2, seen2) =
                        (u.clone(), front.clone(), o.clone(), seen.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_535];
                        loop {
                            let Ok((n, _)) = u2.recv_from(&mut buf).await else {
                                continue;
                            };
                            // TAM -> Broker.
                            if o2.dark(dark_for) {
                                o2.dropped.fetch_add(1, Ordering::SeqCst);
                                continue;
                            }
                            let processed = seen2.lock().unwrap().len();
                            if processed == 1 && o2.since.lock().unwrap().is_none() {
                                let k = o2.update_blocks.fetch_add(1, Ordering::SeqCst) + 1;
                                if k > after_blocks {
                                    *o2.since.lock().unwrap() = Some(Instant::now());
                                    o2.tam_messages_at_dark.store(processed, Ordering::SeqCst);
                                    o2.dropped.fetch_add(1, Ordering::SeqCst);
                                    continue;
                                }
                            }
                            let _ = front2.send_to(&buf[..n], client).await;
                        }
                    });
                    u
                }
            };
            // Broker -> TAM.
            if o.dark(dark_for) {
                o.dropped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let _ = up.send_to(&buf[..n], server).await;
        }
    });
    (addr, outage)
}

/// CoAP at 64-byte blocks with `max_retransmit` retransmissions from `ack` on.
fn coap(ack: Duration, max_retransmit: u32) -> Config {
    Config {
        block_szx: Config::with_block_size(64).unwrap().block_szx,
        max_body: 64 * 1024,
        max_retransmit,
        ..Config::fast(ack)
    }
}

struct Run {
    f: Fixture,
    api: Api,
    sp: String,
    dep: i64,
    dev: Device,
    seen: Arc<Mutex<Vec<[u8; 32]>>>,
    server: otrp_tam_server::RunningServer,
    coap_addr: SocketAddr,
}

/// The TAM over CoAP (every TEEP message it processes recorded), one device registered,
/// `sd1/hello-ta` published and deployed to it.
async fn setup(tag: &str, seed: u64) -> Run {
    let mut f = Fixture::new(tag, Backend::Sqlite);
    let (store, backend) = f.store().await;
    let (state, server) = f.start_with_state(store, backend).await;
    let (counting, seen) = counting_handler(state.clone());
    // The server side keeps the default-ish fast timers; only the relay misbehaves.
    let coap_server = otrp_coap::CoapServer::bind_with(
        "127.0.0.1:0",
        coap(Duration::from_millis(150), 8),
        counting,
    )
    .await
    .unwrap();
    let server = server.with_coap(coap_server);
    let coap_addr = server.coap_addr().unwrap();
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let dev = provision_device(&mut f, seed);
    register_device(&api, &t.oem, &dev, &["eu"]).await;
    let dep = publish_and_deploy(&f, &api, &t, 1).await;
    Run {
        f,
        api,
        sp: t.sp,
        dep,
        dev,
        seen,
        server,
        coap_addr,
    }
}

fn installs(dev: &Device) -> usize {
    dev.events
        .iter()
        .filter(|e| matches!(e, otrp_agent::Event::Installed { component } if component.0 == [b"sd1".to_vec(), b"hello-ta".to_vec()]))
        .count()
}

impl Run {
    async fn done(&self) -> Value {
        self.api
            .ok(
                StatusCode::OK,
                self.api
                    .get(&format!("/api/v1/deployments/{}", self.dep), &self.sp)
                    .await,
            )
            .await
    }

    /// No TEEP message reached the TAM twice.
    fn distinct_messages(&self) -> usize {
        let seen = self.seen.lock().unwrap().clone();
        let mut d = seen.clone();
        d.sort();
        d.dedup();
        assert_eq!(
            d.len(),
            seen.len(),
            "the TAM processed a TEEP message twice"
        );
        seen.len()
    }

    async fn finish(self) {
        self.server.shutdown(Duration::from_secs(5)).await;
        self.f.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_network_dark_mid_blockwise_update_session_resumes_and_installs_once() {
    let mut r = setup("coapdark", 501).await;
    let dark_for = Duration::from_millis(1500);
    let (relay, outage) = dark_relay(r.coap_addr, r.seen.clone(), 2, dark_for).await;
    let url = format!("coap://{relay}/teep");
    // 150 ms, 8 retransmissions: the Broker keeps trying for far longer than 1.5 s.
    let http = Http::new(None, Duration::from_secs(30))
        .unwrap()
        .with_coap_config(coap(Duration::from_millis(150), 8));
    let t0 = Instant::now();
    let report = run_session(&http, &url, &mut AgentLink(&mut r.dev))
        .await
        .unwrap_or_else(|e| panic!("the session did not survive the outage: {e}"));
    let took = t0.elapsed();
    let stats = http.coap_stats();

    assert!(
        outage.since.lock().unwrap().is_some(),
        "the network never went dark"
    );
    assert_eq!(
        outage.tam_messages_at_dark.load(Ordering::SeqCst),
        1,
        "the outage came while the Update was in transfer"
    );
    assert!(
        outage.dropped.load(Ordering::SeqCst) >= 2,
        "dropped nothing?"
    );
    assert!(stats.retransmissions >= 1, "{stats:?}");
    assert!(
        took >= dark_for,
        "the session ended within the outage ({took:?})"
    );
    assert_eq!(report.count("installed"), 1, "{report:?}");
    assert_eq!(installs(&r.dev), 1, "{:?}", r.dev.events);
    // QueryResponse and Success, each once.
    assert_eq!(r.distinct_messages(), 2);
    let p = r.done().await;
    assert_eq!(
        (p["done"].as_u64(), p["failed"].as_u64()),
        (Some(1), Some(0)),
        "{p}"
    );
    // Nothing more to do.
    let again = run_session(&http, &url, &mut AgentLink(&mut r.dev))
        .await
        .unwrap();
    assert_eq!(again.count("installed"), 0, "{again:?}");
    assert_eq!(installs(&r.dev), 1);
    eprintln!(
        "FIGURE coap outage {:?} mid-Update (block 64): session resumed, {} datagrams dropped, {} retransmissions, session took {:.2} s",
        dark_for,
        outage.dropped.load(Ordering::SeqCst),
        stats.retransmissions,
        took.as_secs_f64()
    );
    r.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_network_dark_too_long_session_fails_cleanly_next_session_installs_once() {
    let mut r = setup("coapdarklong", 502).await;
    let dark_for = Duration::from_secs(3);
    let (relay, outage) = dark_relay(r.coap_addr, r.seen.clone(), 2, dark_for).await;
    let url = format!("coap://{relay}/teep");
    // 100 ms, 2 retransmissions: this Broker gives up after at most ~1 s of silence.
    let http = Http::new(None, Duration::from_secs(30))
        .unwrap()
        .with_coap_config(coap(Duration::from_millis(100), 2));
    let t0 = Instant::now();
    let first = run_session(&http, &url, &mut AgentLink(&mut r.dev)).await;
    let failed_after = t0.elapsed();
    let err = match first {
        Ok(rep) => panic!("the session succeeded through a 3 s outage: {rep:?}"),
        Err(e) => e.to_string(),
    };
    assert_eq!(outage.tam_messages_at_dark.load(Ordering::SeqCst), 1);
    assert!(
        failed_after < dark_for,
        "it failed after {failed_after:?}: not on its own timeout"
    );
    assert_eq!(
        installs(&r.dev),
        0,
        "a half-transferred Update installed something"
    );
    assert_eq!(r.distinct_messages(), 1);

    // The network comes back; the next session completes the install, once.
    while outage.dark(dark_for) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = run_session(&http, &url, &mut AgentLink(&mut r.dev))
        .await
        .unwrap_or_else(|e| panic!("the session after the outage failed: {e}"));
    assert_eq!(report.count("installed"), 1, "{report:?}");
    assert_eq!(installs(&r.dev), 1, "{:?}", r.dev.events);
    // Second QueryResponse and the Success: three distinct messages in all.
    assert_eq!(r.distinct_messages(), 3);
    let p = r.done().await;
    assert_eq!(
        (p["done"].as_u64(), p["failed"].as_u64()),
        (Some(1), Some(0)),
        "{p}"
    );
    eprintln!(
        "FIGURE coap outage {:?} mid-Update (block 64): first session failed after {:.2} s ({err}), next session installed once",
        dark_for,
        failed_after.as_secs_f64()
    );
    r.finish().await;
}
