//! Our CoAP client against libcoap's `coap-server` (an independent C implementation of
//! RFC 7252 and RFC 7959, Debian `libcoap3-bin`): bodies POSTed block-wise (Block1) come
//! back byte for byte from a block-wise GET (Block2), at every block size from 16 to
//! 1024 bytes and through a lossy, reordering link. The other direction (libcoap's
//! `coap-client` against the TAM's endpoint) is in otrp-tam-server's `coap` and `batch`
//! tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use otrp_coap::libcoap::{self, LibCoapClient, LibCoapServer, Req};
use otrp_coap::relay::LinkModel;
use otrp_coap::{CoapClient, Code, Config};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.gen()).collect()
}

fn server_or_skip(test: &str) -> Option<LibCoapServer> {
    match LibCoapServer::start(16).unwrap() {
        Some(s) => Some(s),
        None if libcoap::required() => panic!("{}", libcoap::missing_message(test)),
        None => {
            eprintln!("SKIPPED {}", libcoap::missing_message(test));
            None
        }
    }
}

/// libcoap's own client PUTs `body` to `path` of `server` at `block`-byte blocks: the
/// server creates the resource (2.01).
async fn libcoap_put(server: &LibCoapServer, path: &str, body: &[u8], block: usize) {
    let put = LibCoapClient::find()
        .unwrap()
        .run(
            &std::env::temp_dir(),
            Req {
                method: "put",
                uri: format!("coap://{}{path}", server.addr()),
                body: Some(body.to_vec()),
                block: Some(block),
                ..Req::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(put.code, "2.01", "{}", put.log);
}

fn client(block: usize, ack_timeout: Duration, seed: u64) -> CoapClient {
    let cfg = Config {
        block_szx: Config::with_block_size(block).unwrap().block_szx,
        ..Config::fast(ack_timeout)
    };
    CoapClient::new(cfg, &mut ChaCha8Rng::seed_from_u64(seed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_wise_post_and_get_against_libcoap_server_at_every_block_size() {
    let Some(server) = server_or_skip("block_wise_post_and_get_against_libcoap_server") else {
        return;
    };
    let addr = server.addr();
    for (i, block) in [16usize, 32, 64, 128, 256, 512, 1024]
        .into_iter()
        .enumerate()
    {
        let path = format!("/otrp-{block}");
        let body = bytes(i as u64, 3 * block + block / 2 + 7);
        let c = client(block, Duration::from_millis(500), i as u64);
        // libcoap creates a dynamic resource on PUT; POST then replaces its content.
        libcoap_put(&server, &path, b"seed", block).await;

        let (r, up) = c.post_with_stats(addr, &path, body.clone()).await;
        let r = r.unwrap();
        assert!(
            matches!(r.code, Code::Changed | Code::Created),
            "POST at {block} B: {:?}",
            r.code
        );
        assert!(
            up.datagrams_sent >= 4,
            "{} B at {block}-byte blocks in {} datagrams",
            body.len(),
            up.datagrams_sent
        );
        let (r, down) = c.get_with_stats(addr, &path, Vec::new()).await;
        let r = r.unwrap();
        assert_eq!(r.code, Code::Content, "GET at {block} B");
        assert!(r.body == body, "GET at {block} B returned other bytes");
        assert!(down.datagrams_received >= 4, "{down:?}");
        eprintln!(
            "FIGURE libcoap-server block={block}: POST {} B in {} datagrams, GET in {} datagrams",
            body.len(),
            up.datagrams_sent,
            down.datagrams_received
        );
    }
}

/// Our client's Block2 reassembly against libcoap's server through a link losing 10 % of
/// the datagrams each way and reordering 10 %: three GETs of a 2,000-byte body at 32-byte
/// blocks, each byte for byte. libcoap's own client PUTs the body (Block1 at 64 bytes).
/// Our POST stays on the clean link: libcoap's example server runs its handler again
/// for a retransmitted final Block1 request (RFC 7252 §4.5 only says it SHOULD process
/// a duplicate once), and that handler then stores the final block alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_wise_get_against_libcoap_server_through_lossy_link() {
    let Some(server) = server_or_skip("block_wise_get_against_libcoap_server_through_lossy_link")
    else {
        return;
    };
    let body = bytes(99, 2_000);
    let path = "/lossy";
    libcoap_put(&server, path, &body, 64).await;
    let mut retransmissions = 0;
    for seed in 1..=3 {
        let link = LinkModel {
            loss: 0.10,
            reorder: 0.10,
            seed,
        };
        let front = otrp_coap::relay::lossy_relay(server.addr(), link)
            .await
            .unwrap();
        // 50 ms: each lost datagram costs one timeout; 8 retransmissions with backoff.
        let c = client(32, Duration::from_millis(50), seed);
        let (r, down) = c.get_with_stats(front, path, Vec::new()).await;
        let r = r.unwrap();
        assert_eq!(r.code, Code::Content, "seed {seed}");
        let first_diff = r.body.iter().zip(&body).position(|(a, b)| a != b);
        assert!(
            r.body == body,
            "seed {seed}: {} B for {} B, first difference at {first_diff:?}; {down:?}",
            r.body.len(),
            body.len()
        );
        retransmissions += down.retransmissions;
        eprintln!("FIGURE libcoap-server GET 2000 B at 32 B, 10% loss, seed {seed}: {down:?}");
    }
    assert!(
        retransmissions > 0,
        "10 % loss on ~380 datagrams should cost retransmissions"
    );
}
