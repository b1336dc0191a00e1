//! The server under a flood from forged addresses (anyone can send UDP from any source):
//! uploads that never finish, requests whose large answers are never fetched, block
//! requests with fresh message ids, plain requests, from 20 000 peers. Whatever arrives,
//! the server holds at most `Config::max_held_bytes`, answers what it cannot take 5.03
//! with Max-Age, and serves a genuine client again once the flood's exchanges expire.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use otrp_coap::{Code, Config, Response, ServerCore, ServerEvent};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// A small bound, so that a test-sized flood reaches it.
const BOUND: usize = 256 << 10;

fn config() -> Config {
    Config {
        block_szx: 1, // 32-byte blocks
        max_body: 64 << 10,
        max_held_bytes: BOUND,
        exchange_lifetime: Duration::from_secs(30),
        ..Config::default()
    }
}

/// Forged source `i`.
fn peer(i: u32) -> SocketAddr {
    let [a, b, c, d] = i.to_be_bytes();
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, a ^ b, c, d)),
        5683 + u16::from(b),
    )
}

fn packet(mid: u16, token: &[u8], get: bool, f: impl FnOnce(&mut Packet)) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(if get {
        RequestType::Get
    } else {
        RequestType::Post
    });
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    p.add_option(CoapOption::UriPath, b"teep".to_vec());
    f(&mut p);
    p.to_bytes_unlimited().unwrap()
}

/// Answers every request the application got with a `len`-byte body (a Block2 download
/// the client never fetches, when larger than a block).
fn answer_all(s: &mut ServerCore, len: usize, now: Instant) -> usize {
    let mut n = 0;
    while let Some(ServerEvent::Request { id, .. }) = s.poll_event() {
        s.respond(id, Response::changed(vec![0x5a; len]), now);
        n += 1;
    }
    n
}

/// Drains the server's datagrams; returns how many were 5.03 with a Max-Age option.
fn drain(s: &mut ServerCore) -> usize {
    let mut busy = 0;
    while let Some(t) = s.poll_transmit() {
        let p = Packet::from_bytes(&t.data).unwrap();
        if p.header.code == MessageClass::Response(Code::ServiceUnavailable) {
            assert!(
                p.get_first_option(CoapOption::MaxAge).is_some(),
                "a 5.03 says when to retry"
            );
            busy += 1;
        }
    }
    busy
}

#[test]
fn a_flood_from_forged_addresses_is_held_within_the_bound() {
    let mut s = ServerCore::new(config());
    let start = Instant::now();
    let mut now = start;
    let (mut delivered, mut busy, mut peak) = (0usize, 0usize, 0usize);
    for i in 0..20_000u32 {
        let from = peer(i);
        let mid = i as u16;
        let token = i.to_be_bytes();
        let dgram = match i % 4 {
            // An upload that declares 64 KiB and never sends its second block.
            0 => packet(mid, &token, false, |p| {
                p.add_option(CoapOption::Block1, vec![0x09]); // num 0, more, 32 B
                p.add_option(CoapOption::Size1, vec![0x01, 0x00, 0x00]); // 64 KiB
                p.payload = vec![1; 32];
            }),
            // A request whose 4 KiB answer is never fetched past block 0.
            1 => packet(mid, &token, true, |_| {}),
            // A request for block 1 of a response this peer never asked for.
            2 => packet(mid, &token, true, |p| {
                p.add_option(CoapOption::Block2, vec![0x11]);
            }),
            // A plain POST with a body.
            _ => packet(mid, &token, false, |p| p.payload = vec![2; 24]),
        };
        s.handle_datagram(from, &dgram, now);
        delivered += answer_all(&mut s, 4096, now);
        busy += drain(&mut s);
        peak = peak.max(s.held_bytes());
        assert!(
            s.held_bytes() <= BOUND,
            "after datagram {i}: {} held > {BOUND}",
            s.held_bytes()
        );
        now += Duration::from_micros(100);
        s.handle_timeout(now);
    }
    // Unbounded, the 5,000 unfetched answers alone would hold 20 MB (5,000 x 4 KiB).
    assert!(delivered > 0, "requests were served until the bound");
    assert!(busy > 10_000, "the rest were refused 5.03: {busy}");
    assert_eq!(s.busy_refusals() as usize, busy);
    assert!(peak > BOUND / 2, "the flood filled the server: peak {peak}");

    // The flood's exchanges expire; a genuine client is served again, block-wise.
    now += Duration::from_secs(31);
    s.handle_timeout(now);
    assert_eq!(s.held_bytes(), 0, "everything expired");
    let me = "192.0.2.1:5683".parse().unwrap();
    s.handle_datagram(
        me,
        &packet(1, b"me", false, |p| p.payload = vec![3; 8]),
        now,
    );
    let Some(ServerEvent::Request { id, request }) = s.poll_event() else {
        panic!("a genuine request is delivered after the flood");
    };
    assert_eq!(request.body, vec![3; 8]);
    s.respond(id, Response::changed(vec![7; 100]), now);
    let first = Packet::from_bytes(&s.poll_transmit().unwrap().data).unwrap();
    assert_eq!(first.header.code, MessageClass::Response(Code::Changed));
    assert_eq!(first.payload, vec![7; 32]);
}

#[test]
fn an_upload_is_refused_when_it_would_grow_beyond_the_bound() {
    let mut s = ServerCore::new(Config {
        max_held_bytes: 8 << 10,
        ..config()
    });
    let now = Instant::now();
    let me: SocketAddr = "192.0.2.1:5683".parse().unwrap();
    // Size1 says 64 KiB: the server does not allocate that up front.
    s.handle_datagram(
        me,
        &packet(1, b"up", false, |p| {
            p.add_option(CoapOption::Block1, vec![0x09]);
            p.add_option(CoapOption::Size1, vec![0x01, 0x00, 0x00]); // 64 KiB
            p.payload = vec![1; 32];
        }),
        now,
    );
    let r = Packet::from_bytes(&s.poll_transmit().unwrap().data).unwrap();
    assert_eq!(r.header.code, MessageClass::Response(Code::Continue));
    assert!(s.held_bytes() < 8 << 10, "held {}", s.held_bytes());
    // Blocks come until the body would no longer fit: that block gets 5.03, and the
    // upload is dropped with everything it held.
    let mut refused_at = None;
    for num in 1u32..1024 {
        let block1 = {
            let v = (num << 4) | 0x08 | 0x01; // more, 32 B
            let b = v.to_be_bytes();
            let first = b.iter().position(|x| *x != 0).unwrap_or(3);
            b[first..].to_vec()
        };
        s.handle_datagram(
            me,
            &packet(1 + num as u16, b"up", false, |p| {
                p.add_option(CoapOption::Block1, block1);
                p.payload = vec![1; 32];
            }),
            now,
        );
        let r = Packet::from_bytes(&s.poll_transmit().unwrap().data).unwrap();
        assert!(s.held_bytes() <= 8 << 10);
        if r.header.code == MessageClass::Response(Code::ServiceUnavailable) {
            refused_at = Some(num);
            break;
        }
        assert_eq!(r.header.code, MessageClass::Response(Code::Continue));
    }
    let num = refused_at.expect("the upload hit the bound");
    assert!(num > 64, "a few KiB were taken first: {num} blocks");
    assert_eq!(s.uploads_in_progress(), 0);
    assert_eq!(s.busy_refusals(), 1);
}

/// Runs `clients` block-wise GETs of `/batch/lot-1` at once (the server answering each
/// with `body` under `etag`, or under `other_etag` for every second client); returns
/// the bodies they got and the server.
fn fetch_all(
    clients: usize,
    body: &[u8],
    bound: usize,
    other: Option<&[u8]>,
) -> (Vec<Vec<u8>>, ServerCore, usize) {
    use otrp_coap::{ClientCore, ClientEvent};
    use rand::SeedableRng;
    let config = Config {
        max_held_bytes: bound,
        ..config()
    };
    let mut s = ServerCore::new(config.clone());
    let server: SocketAddr = "10.0.0.2:5683".parse().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let now = Instant::now();
    let mut cores: Vec<(SocketAddr, ClientCore)> = (0..clients as u32)
        .map(|i| {
            let mut c = ClientCore::new(config.clone(), &mut rng);
            c.get(server, "/batch/lot-1", Vec::new(), now);
            (peer(i), c)
        })
        .collect();
    let mut got = vec![Vec::new(); clients];
    let mut peak = 0;
    for _round in 0..1000 {
        let mut moved = false;
        for (from, c) in cores.iter_mut() {
            while let Some(t) = c.poll_transmit() {
                s.handle_datagram(*from, &t.data, now);
                moved = true;
            }
        }
        while let Some(ServerEvent::Request { id, request }) = s.poll_event() {
            let n = cores.iter().position(|(a, _)| *a == request.peer).unwrap();
            let (bytes, etag) = match other {
                Some(o) if n % 2 == 1 => (o.to_vec(), b"lot-1#1".to_vec()),
                _ => (body.to_vec(), b"lot-1#1".to_vec()),
            };
            s.respond(id, Response::content(bytes, Some(etag)), now);
        }
        peak = peak.max(s.held_bytes());
        while let Some(t) = s.poll_transmit() {
            if let Some((_, c)) = cores.iter_mut().find(|(a, _)| *a == t.peer) {
                c.handle_datagram(server, &t.data, now);
            }
        }
        for (i, (_, c)) in cores.iter_mut().enumerate() {
            while let Some(ClientEvent::Completed { result, .. }) = c.poll_event() {
                got[i] = result.unwrap().body;
            }
        }
        if !moved {
            break;
        }
    }
    (got, s, peak)
}

#[test]
fn clients_fetching_one_representation_share_its_body() {
    // 300 devices fetch the same 8 KiB package at once, in 32-byte blocks: held once,
    // it fits a 256 KiB bound that 300 copies (2.4 MB) would not.
    let package: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
    let (got, s, peak) = fetch_all(300, &package, BOUND, None);
    assert!(
        got.iter().all(|b| *b == package),
        "every device got the package"
    );
    assert_eq!(s.busy_refusals(), 0);
    assert!(peak < BOUND, "peak {peak}");
    println!("300 clients fetching one 8 KiB body: peak held {peak} B");

    // Other bytes under the same ETag are served as they are, not as the shared body.
    let other: Vec<u8> = vec![0xee; 3000];
    let (got, s, _) = fetch_all(20, &package, 4 << 20, Some(&other));
    for (i, b) in got.iter().enumerate() {
        assert_eq!(b, if i % 2 == 1 { &other } else { &package }, "client {i}");
    }
    assert_eq!(s.busy_refusals(), 0);
}
