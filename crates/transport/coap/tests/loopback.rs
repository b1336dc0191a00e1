//! The tokio shells on loopback, through a lossy, reordering UDP relay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use otrp_coap::relay::LinkModel;
use otrp_coap::{
    ClientError, CoapClient, CoapServer, Config, Handler, Request, Response, TEEP_PATH,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The crate's relay, as the tests here call it.
async fn lossy_relay(server: SocketAddr, loss: f64, reorder: f64, seed: u64) -> SocketAddr {
    let link = LinkModel {
        loss,
        reorder,
        seed,
    };
    otrp_coap::relay::lossy_relay(server, link).await.unwrap()
}

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.gen()).collect()
}

/// The application: the request body starts with an 8-byte exchange number; the answer is
/// `bytes(!n, response_len(n))`. Counts calls per exchange number.
fn counting_handler(calls: Arc<Mutex<HashMap<u64, usize>>>, resp_len: fn(u64) -> usize) -> Handler {
    Arc::new(move |req: Request| {
        let calls = calls.clone();
        Box::pin(async move {
            assert_eq!(req.path, TEEP_PATH);
            let n = u64::from_be_bytes(req.body[..8].try_into().unwrap());
            assert!(req.body == request_body(n), "request {n} corrupted");
            *calls.lock().unwrap().entry(n).or_default() += 1;
            Response::changed(bytes(!n, resp_len(n)))
        })
    })
}

/// Block sizes of the lossy-relay test, by `n / 100` (the exchange number's hundreds).
const LOSSY_BLOCKS: [usize; 4] = [16, 64, 256, 1024];

/// 1 KiB up to 100 KiB, and at most 640 blocks of exchange `n`'s block size: every body
/// still spans hundreds of blocks, without 16-byte blocks making a 100 KiB body 6,400
/// round trips (each loss costs an ACK timeout, which made this test take 40 s).
fn max_len(n: u64) -> usize {
    let block = LOSSY_BLOCKS.get(n as usize / 100).copied().unwrap_or(1024);
    (640 * block).clamp(2 * 1024, 100 * 1024)
}

fn request_len(n: u64) -> usize {
    let mut r = ChaCha8Rng::seed_from_u64(n ^ 0x5eed);
    r.gen_range(1024..=max_len(n))
}

fn response_len(n: u64) -> usize {
    let mut r = ChaCha8Rng::seed_from_u64(n ^ 0xfeed);
    r.gen_range(1024..=max_len(n))
}

fn request_body(n: u64) -> Vec<u8> {
    let mut b = n.to_be_bytes().to_vec();
    b.extend(bytes(n, request_len(n) - 8));
    b
}

fn test_config(block: usize) -> Config {
    config_with(block, Duration::from_millis(10))
}

/// Lossless loopback measured for its bytes: an ACK timeout long enough that a busy machine
/// does not cause retransmissions (which would count as overhead).
fn quiet_link(block: usize) -> Config {
    config_with(block, Duration::from_secs(2))
}

fn config_with(block: usize, ack_timeout: Duration) -> Config {
    Config {
        // loopback: a short first timeout, plenty of retransmissions for 10 % loss
        max_retransmit: 10,
        ..Config {
            block_szx: Config::with_block_size(block).unwrap().block_szx,
            ..Config::fast(ack_timeout)
        }
    }
}

/// 50 exchanges of 1 KiB to 100 KiB bodies both ways (at most 640 blocks each), spread
/// over block sizes 16, 64, 256 and 1024, run concurrently (one socket each) through a
/// relay losing 10 % and reordering 10 % of the datagrams: every response is exact and
/// every request handled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_exchanges_through_a_lossy_reordering_relay() {
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let mut servers = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    // 5 ms: 16-byte blocks make up to ~1,300 round trips per exchange; spurious
    // retransmissions under load are harmless (and exercise deduplication).
    let cfg = |block| config_with(block, Duration::from_millis(5));
    for (i, block) in LOSSY_BLOCKS.into_iter().enumerate() {
        let server = CoapServer::bind_with(
            "127.0.0.1:0",
            cfg(block),
            counting_handler(calls.clone(), response_len),
        )
        .await
        .unwrap();
        let relay = lossy_relay(server.local_addr(), 0.10, 0.10, 77 + i as u64).await;
        servers.push(server);
        let client = Arc::new(CoapClient::new(cfg(block), &mut rng));
        // 13 + 13 + 12 + 12 = 50 exchanges
        let count = if block <= 64 { 13 } else { 12 };
        for k in 0..count {
            let n = (i * 100 + k) as u64;
            let client = client.clone();
            tasks.spawn(async move {
                let body = request_body(n);
                let (res, stats) = client.post_with_stats(relay, TEEP_PATH, body).await;
                (n, block, res, stats)
            });
        }
    }
    let mut total = 0;
    let mut retrans = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, block, res, stats) = joined.unwrap();
        let resp = res.unwrap_or_else(|e| panic!("exchange {n} at block {block}: {e}"));
        assert!(
            resp.body == bytes(!n, response_len(n)),
            "response {n} corrupted"
        );
        retrans += stats.retransmissions;
        total += 1;
    }
    assert_eq!(total, 50);
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 50);
    assert!(
        calls.values().all(|c| *c == 1),
        "a request was applied twice: {calls:?}"
    );
    assert!(retrans > 0, "10 % loss must have caused retransmissions");
    eprintln!("FIGURE lossy relay: 50 exchanges, {retrans} retransmissions");
}

#[tokio::test]
async fn stopped_server_gives_a_timeout_error() {
    let server = CoapServer::bind_with(
        "127.0.0.1:0",
        test_config(64),
        counting_handler(Arc::new(Mutex::new(HashMap::new())), |_| 10),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    server.shutdown().await;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cfg = Config {
        max_retransmit: 3,
        ..test_config(64)
    };
    let client = CoapClient::new(cfg, &mut rng);
    let started = std::time::Instant::now();
    let err = client
        .post(addr, TEEP_PATH, request_body(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                retransmissions: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_and_a_panicking_handler() {
    let handler: Handler = Arc::new(|req: Request| {
        Box::pin(async move {
            if req.body == b"boom" {
                panic!("handler bug");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            Response::changed(req.body.iter().rev().copied().collect())
        })
    });
    let server = CoapServer::bind_with("127.0.0.1:0", test_config(256), handler)
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let client = Arc::new(CoapClient::new(test_config(256), &mut rng));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100u64 {
        let client = client.clone();
        tasks.spawn(async move {
            let body = bytes(n, 100 + (n as usize * 37) % 3000);
            let resp = client.post(addr, TEEP_PATH, body.clone()).await.unwrap();
            assert_eq!(resp.body, body.iter().rev().copied().collect::<Vec<_>>());
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let resp = client
        .post(addr, TEEP_PATH, b"boom".to_vec())
        .await
        .unwrap();
    assert_eq!(resp.code, otrp_coap::Code::InternalServerError);
}

/// Bytes on the wire (CoAP messages, without UDP/IP headers) for one exchange carrying a
/// 64 KiB body, lossless, at block sizes 16/64/256/1024 — for `otrp bench wire`.
#[tokio::test]
async fn wire_bytes_for_a_64k_body() {
    let body = bytes(64, 64 * 1024);
    for block in [16usize, 64, 256, 1024] {
        let (up_handler, down_handler): (Handler, Handler) = (
            Arc::new(|_req: Request| Box::pin(async { Response::changed(Vec::new()) })),
            Arc::new(|_req: Request| Box::pin(async { Response::changed(bytes(64, 64 * 1024)) })),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(block as u64);
        let client = CoapClient::new(quiet_link(block), &mut rng);
        let up = CoapServer::bind_with("127.0.0.1:0", quiet_link(block), up_handler)
            .await
            .unwrap();
        let (res, upload) = client
            .post_with_stats(up.local_addr(), TEEP_PATH, body.clone())
            .await;
        res.unwrap();
        let down = CoapServer::bind_with("127.0.0.1:0", quiet_link(block), down_handler)
            .await
            .unwrap();
        let (res, download) = client
            .post_with_stats(down.local_addr(), TEEP_PATH, Vec::new())
            .await;
        assert_eq!(res.unwrap().body, body);
        let blocks = body.len().div_ceil(block) as u64;
        // a busy machine may still delay an ACK past the timeout: count first transmissions.
        assert_eq!(upload.datagrams_sent - upload.retransmissions, blocks);
        assert_eq!(download.datagrams_received, blocks);
        let up_total = upload.bytes_sent + upload.bytes_received;
        let down_total = download.bytes_sent + download.bytes_received;
        eprintln!(
            "FIGURE 64 KiB at block {block:>4}: upload {blocks} blocks, {} B sent + {} B acks = {up_total} B ({:.1}% overhead); download {} B requests + {} B received = {down_total} B ({:.1}% overhead)",
            upload.bytes_sent,
            upload.bytes_received,
            100.0 * (up_total as f64 / body.len() as f64 - 1.0),
            download.bytes_sent,
            download.bytes_received,
            100.0 * (down_total as f64 / body.len() as f64 - 1.0),
        );
    }
}
