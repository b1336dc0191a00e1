//! The sans-IO cores driven without sockets: a simulated network with virtual time,
//! seeded loss, duplication and reordering. Fully deterministic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use otrp_coap::{
    ClientCore, ClientError, ClientEvent, Code, Config, ExchangeId, Response, ServerCore,
    ServerEvent, WireStats, TEEP_PATH,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENT: &str = "10.0.0.1:5683";
const SERVER: &str = "10.0.0.2:5683";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A datagram in flight, delivered at `at`.
struct Flight {
    at: Instant,
    to_server: bool,
    data: Vec<u8>,
}

struct Net {
    rng: ChaCha8Rng,
    loss: f64,
    dup: f64,
    max_delay_ms: u64,
}

/// One client core and one server core joined by a simulated network.
struct Sim {
    now: Instant,
    client: ClientCore,
    server: ServerCore,
    net: Net,
    flights: Vec<Flight>,
    /// handler invocations per request body
    calls: HashMap<Vec<u8>, usize>,
    done: BTreeMap<ExchangeId, (Result<Response, ClientError>, WireStats)>,
    /// the application answers with this function of the request body
    app: fn(&[u8]) -> Vec<u8>,
    server_alive: bool,
}

impl Sim {
    fn new(client_cfg: Config, server_cfg: Config, net: Net, seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Sim {
            now: Instant::now(),
            client: ClientCore::new(client_cfg, &mut rng),
            server: ServerCore::new(server_cfg),
            net,
            flights: Vec::new(),
            calls: HashMap::new(),
            done: BTreeMap::new(),
            app: |b| b.iter().rev().copied().collect(),
            server_alive: true,
        }
    }

    fn send(&mut self, to_server: bool, data: Vec<u8>) {
        if self.net.rng.gen_bool(self.net.loss) {
            return;
        }
        let copies = if self.net.rng.gen_bool(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay =
                Duration::from_micros(self.net.rng.gen_range(100..=self.net.max_delay_ms * 1000));
            self.flights.push(Flight {
                at: self.now + delay,
                to_server,
                data: data.clone(),
            });
        }
    }

    fn pump(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            assert_eq!(t.peer, addr(SERVER));
            self.send(true, t.data);
        }
        while let Some(ev) = self.server.poll_event() {
            let ServerEvent::Request { id, request } = ev;
            assert_eq!(request.peer, addr(CLIENT));
            assert_eq!(request.path, TEEP_PATH);
            *self.calls.entry(request.body.clone()).or_default() += 1;
            let body = (self.app)(&request.body);
            self.server.respond(id, Response::changed(body), self.now);
        }
        while let Some(t) = self.server.poll_transmit() {
            assert_eq!(t.peer, addr(CLIENT));
            self.send(false, t.data);
        }
        while let Some(ClientEvent::Completed { id, result, stats }) = self.client.poll_event() {
            self.done.insert(id, (result, stats));
        }
    }

    /// Runs until the client has no exchange left (or `limit` of virtual time passed).
    fn run(&mut self, limit: Duration) {
        let start = self.now;
        self.pump();
        while self.client.in_progress() > 0 {
            assert!(self.now - start < limit, "simulation did not finish");
            let next_flight = self.flights.iter().map(|f| f.at).min();
            let next = [
                next_flight,
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something to wait for");
            self.now = self.now.max(next);
            // deliver every datagram due, in delivery-time order
            self.flights.sort_by_key(|f| f.at);
            let due: Vec<Flight> = {
                let split = self
                    .flights
                    .iter()
                    .position(|f| f.at > self.now)
                    .unwrap_or(self.flights.len());
                self.flights.drain(..split).collect()
            };
            for f in due {
                if f.to_server {
                    if self.server_alive {
                        self.server.handle_datagram(addr(CLIENT), &f.data, self.now);
                    }
                } else {
                    self.client.handle_datagram(addr(SERVER), &f.data, self.now);
                }
                self.pump();
            }
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.pump();
        }
    }
}

fn fast(szx_bytes: usize) -> Config {
    Config {
        block_szx: otrp_coap::Config::with_block_size(szx_bytes)
            .unwrap()
            .block_szx,
        ..Config::fast(Duration::from_millis(20))
    }
}

fn lossless() -> Net {
    Net {
        rng: ChaCha8Rng::seed_from_u64(0),
        loss: 0.0,
        dup: 0.0,
        max_delay_ms: 1,
    }
}

fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut v = seed.to_be_bytes().to_vec();
    v.extend((8..len.max(8)).map(|_| r.gen::<u8>()));
    v.truncate(len.max(8));
    v
}

#[test]
fn lossless_exchanges_at_every_block_size() {
    for size in [16usize, 32, 64, 128, 256, 512, 1024] {
        let mut sim = Sim::new(fast(size), fast(size), lossless(), 1);
        let mut ids = Vec::new();
        for (i, len) in [8usize, size - 1, size, size + 1, 3 * size, 5000]
            .into_iter()
            .enumerate()
        {
            let b = body(i as u64 * 1000 + size as u64, len);
            ids.push((
                sim.client.post(addr(SERVER), TEEP_PATH, b.clone(), sim.now),
                b,
            ));
        }
        sim.run(Duration::from_secs(60));
        for (id, b) in ids {
            let (res, stats) = sim.done.remove(&id).unwrap();
            let resp = res.unwrap();
            assert_eq!(resp.code, Code::Changed);
            assert_eq!(
                resp.body,
                b.iter().rev().copied().collect::<Vec<_>>(),
                "size {size}"
            );
            assert_eq!(stats.retransmissions, 0);
            assert_eq!(sim.calls[&b], 1);
        }
    }
}

#[test]
fn lossy_duplicating_reordering_network_delivers_exactly_once() {
    for (i, size) in [16usize, 64, 256, 1024].into_iter().enumerate() {
        let net = Net {
            rng: ChaCha8Rng::seed_from_u64(42 + i as u64),
            loss: 0.10,
            dup: 0.05,
            max_delay_ms: 30, // > ack timeout: reorders and causes spurious retransmissions
        };
        let mut sim = Sim::new(fast(size), fast(size), net, 7);
        let mut r = ChaCha8Rng::seed_from_u64(99);
        let mut ids = Vec::new();
        for k in 0..6u64 {
            let b = body(k * 7919 + size as u64, r.gen_range(1..20_000));
            ids.push((
                sim.client.post(addr(SERVER), TEEP_PATH, b.clone(), sim.now),
                b,
            ));
        }
        sim.run(Duration::from_secs(3600));
        let mut retrans = 0;
        for (id, b) in ids {
            let (res, stats) = sim.done.remove(&id).unwrap();
            let resp = res.unwrap_or_else(|e| panic!("size {size}: {e}"));
            assert_eq!(resp.body, b.iter().rev().copied().collect::<Vec<_>>());
            assert_eq!(sim.calls[&b], 1, "handler ran more than once");
            retrans += stats.retransmissions;
        }
        assert!(
            retrans > 0,
            "the network should have forced retransmissions"
        );
    }
}

#[test]
fn client_and_server_block_sizes_negotiate_down() {
    // client prefers 1024, server 64: uploads switch to 64 after block 0, downloads use 64
    let mut sim = Sim::new(fast(1024), fast(64), lossless(), 3);
    let b = body(5, 10_000);
    let id = sim.client.post(addr(SERVER), TEEP_PATH, b.clone(), sim.now);
    sim.run(Duration::from_secs(60));
    let (res, stats) = sim.done.remove(&id).unwrap();
    assert_eq!(
        res.unwrap().body,
        b.iter().rev().copied().collect::<Vec<_>>()
    );
    // 1 block of 1024, then (10000-1024)/64 = 141 blocks up; 157 blocks down
    assert_eq!(stats.datagrams_sent, 1 + 141 + 156);
    // client prefers 16, server 1024: both directions use 16
    let mut sim = Sim::new(fast(16), fast(1024), lossless(), 4);
    let id = sim.client.post(addr(SERVER), TEEP_PATH, b.clone(), sim.now);
    sim.run(Duration::from_secs(60));
    let (res, stats) = sim.done.remove(&id).unwrap();
    assert_eq!(
        res.unwrap().body,
        b.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(stats.datagrams_sent, 625 + 624);
}

#[test]
fn empty_body_opens_a_session_and_empty_response_ends_it() {
    let mut sim = Sim::new(fast(64), fast(64), lossless(), 5);
    sim.app = |b| {
        if b.is_empty() {
            b"QueryRequest".to_vec()
        } else {
            Vec::new()
        }
    };
    let open = sim
        .client
        .post(addr(SERVER), TEEP_PATH, Vec::new(), sim.now);
    sim.run(Duration::from_secs(10));
    assert_eq!(
        sim.done.remove(&open).unwrap().0.unwrap().body,
        b"QueryRequest"
    );
    let next = sim
        .client
        .post(addr(SERVER), TEEP_PATH, b"QueryResponse".to_vec(), sim.now);
    sim.run(Duration::from_secs(10));
    let done = sim.done.remove(&next).unwrap().0.unwrap();
    assert_eq!(done.code, Code::Changed);
    assert!(done.body.is_empty());
}

#[test]
fn unanswered_requests_time_out_after_max_retransmit() {
    let cfg = Config {
        ack_random_factor: 1.0,
        max_retransmit: 4,
        ..fast(64)
    };
    let mut sim = Sim::new(cfg.clone(), cfg, lossless(), 6);
    sim.server_alive = false;
    let start = sim.now;
    let id = sim
        .client
        .post(addr(SERVER), TEEP_PATH, b"hello".to_vec(), sim.now);
    sim.run(Duration::from_secs(60));
    let (res, stats) = sim.done.remove(&id).unwrap();
    match res {
        Err(ClientError::Timeout {
            retransmissions, ..
        }) => assert_eq!(retransmissions, 4),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(stats.datagrams_sent, 5);
    // 20 + 40 + 80 + 160 + 320 ms of exponential back-off
    assert_eq!(sim.now - start, Duration::from_millis(620));
    let msg = ClientError::Timeout {
        peer: addr(SERVER),
        retransmissions: 4,
        waited: Duration::from_millis(620),
    }
    .to_string();
    assert!(msg.contains("timeout"), "{msg}");
}

fn request(mid: u16, token: &[u8], f: impl FnOnce(&mut Packet)) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = mid;
    p.set_token(token.to_vec());
    p.add_option(CoapOption::UriPath, b"teep".to_vec());
    f(&mut p);
    p.to_bytes_unlimited().unwrap()
}

fn reply_of(server: &mut ServerCore) -> Packet {
    let t = server.poll_transmit().expect("a reply");
    Packet::from_bytes(&t.data).unwrap()
}

#[test]
fn server_refusals() {
    let now = Instant::now();
    let peer = addr(CLIENT);
    let mut s = ServerCore::new(Config {
        max_body: 1000,
        ..fast(64)
    });
    // wrong content-format
    s.handle_datagram(
        peer,
        &request(1, b"t1", |p| {
            p.add_option(CoapOption::ContentFormat, vec![50]);
            p.payload = b"{}".to_vec();
        }),
        now,
    );
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::UnsupportedContentFormat)
    );
    // PUT is not allowed (POST and GET go to the application: GET serves cacheable
    // resources such as batch packages).
    let mut put = Packet::from_bytes(&request(2, b"t2", |_| {})).unwrap();
    put.header.code = MessageClass::Request(RequestType::Put);
    s.handle_datagram(peer, &put.to_bytes().unwrap(), now);
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::MethodNotAllowed)
    );
    // Size1 over the limit
    s.handle_datagram(
        peer,
        &request(3, b"t3", |p| {
            p.add_option(CoapOption::Block1, vec![0x0a]); // num 0, more, szx 2 (64)
            p.add_option(CoapOption::Size1, vec![0x10, 0x00]); // 4096
            p.payload = vec![0; 64];
        }),
        now,
    );
    let r = reply_of(&mut s);
    assert_eq!(
        r.header.code,
        MessageClass::Response(Code::RequestEntityTooLarge)
    );
    assert_eq!(
        r.get_first_option(CoapOption::Size1).unwrap(),
        &vec![0x03, 0xe8]
    );
    // a block that does not follow the previous one
    s.handle_datagram(
        peer,
        &request(4, b"t4", |p| {
            p.add_option(CoapOption::Block1, vec![0x0a]);
            p.payload = vec![1; 64];
        }),
        now,
    );
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::Continue)
    );
    s.handle_datagram(
        peer,
        &request(5, b"t4", |p| {
            p.add_option(CoapOption::Block1, vec![0x2a]); // num 2: block 1 is missing
            p.payload = vec![1; 64];
        }),
        now,
    );
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::RequestEntityIncomplete)
    );
    assert_eq!(s.uploads_in_progress(), 0);
    // Block2 continuation of an unknown response
    s.handle_datagram(
        peer,
        &request(6, b"t6", |p| {
            p.add_option(CoapOption::Block2, vec![0x12]);
        }),
        now,
    );
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::RequestEntityIncomplete)
    );
    // a retransmission gets the cached answer again, not a second delivery
    s.handle_datagram(
        peer,
        &request(6, b"t6", |p| {
            p.add_option(CoapOption::Block2, vec![0x12]);
        }),
        now,
    );
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::RequestEntityIncomplete)
    );
    assert!(s.poll_event().is_none());
    // CoAP ping gets a Reset
    let mut ping = Packet::new();
    ping.header.set_type(MessageType::Confirmable);
    ping.header.code = MessageClass::Empty;
    ping.header.message_id = 77;
    s.handle_datagram(peer, &ping.to_bytes().unwrap(), now);
    assert_eq!(reply_of(&mut s).header.get_type(), MessageType::Reset);
}

#[test]
fn duplicate_request_is_delivered_once_and_answered_from_cache() {
    let now = Instant::now();
    let peer = addr(CLIENT);
    let mut s = ServerCore::new(fast(64));
    let req = request(9, b"tok", |p| p.payload = b"msg".to_vec());
    s.handle_datagram(peer, &req, now);
    s.handle_datagram(peer, &req, now); // retransmitted while the application works
    let Some(ServerEvent::Request {
        id,
        request: first_req,
    }) = s.poll_event()
    else {
        panic!("no request");
    };
    assert_eq!(first_req.body, b"msg");
    assert!(s.poll_event().is_none());
    assert!(s.poll_transmit().is_none());
    s.respond(id, Response::changed(b"answer".to_vec()), now);
    let first = s.poll_transmit().unwrap().data;
    s.handle_datagram(peer, &req, now); // the ACK was lost: retransmission
    assert_eq!(s.poll_transmit().unwrap().data, first);
    assert!(s.poll_event().is_none());
    // a different message reusing the id (16-bit wrap) is a new request, not a duplicate
    let other = request(9, b"tok", |p| p.payload = b"msg2".to_vec());
    s.handle_datagram(peer, &other, now);
    let Some(ServerEvent::Request {
        id: second_id,
        request: second,
    }) = s.poll_event()
    else {
        panic!("a reused message id was taken for a duplicate");
    };
    assert_eq!(second.body, b"msg2");
    s.respond(second_id, Response::changed(Vec::new()), now);
    assert_eq!(s.requests_pending(), 0);
    // after EXCHANGE_LIFETIME the caches are gone
    let later = now + Duration::from_secs(31);
    s.handle_timeout(later);
    s.handle_timeout(later + Duration::from_secs(5));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn client_accepts_a_separate_response() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut c = ClientCore::new(fast(64), &mut rng);
    let now = Instant::now();
    let server = addr(SERVER);
    let id = c.post(server, TEEP_PATH, b"slow".to_vec(), now);
    let sent = Packet::from_bytes(&c.poll_transmit().unwrap().data).unwrap();
    // empty ACK: the server will answer later
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.code = MessageClass::Empty;
    ack.header.message_id = sent.header.message_id;
    c.handle_datagram(server, &ack.to_bytes().unwrap(), now);
    // no retransmission any more
    c.handle_timeout(now + Duration::from_secs(1));
    assert!(c.poll_transmit().is_none());
    // the separate response, confirmable, sent twice
    let mut resp = Packet::new();
    resp.header.set_type(MessageType::Confirmable);
    resp.header.message_id = 4242;
    resp.header.code = MessageClass::Response(Code::Changed);
    resp.set_token(sent.get_token().to_vec());
    resp.payload = b"done".to_vec();
    let bytes = resp.to_bytes().unwrap();
    c.handle_datagram(server, &bytes, now);
    let ack = Packet::from_bytes(&c.poll_transmit().unwrap().data).unwrap();
    assert_eq!(ack.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(ack.header.message_id, 4242);
    match c.poll_event() {
        Some(ClientEvent::Completed {
            id: done, result, ..
        }) => {
            assert_eq!(done, id);
            assert_eq!(result.unwrap().body, b"done");
        }
        other => panic!("{other:?}"),
    }
    // the duplicate is acknowledged (reset: exchange is over) and not reported again
    c.handle_datagram(server, &bytes, now);
    assert!(c.poll_transmit().is_some());
    assert!(c.poll_event().is_none());
}

#[test]
fn client_reports_reset_and_ignores_strangers() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut c = ClientCore::new(fast(64), &mut rng);
    let now = Instant::now();
    let server = addr(SERVER);
    let id = c.post(server, TEEP_PATH, b"x".to_vec(), now);
    let sent = Packet::from_bytes(&c.poll_transmit().unwrap().data).unwrap();
    // a datagram from someone else with the right message id is ignored
    let mut rst = Packet::new();
    rst.header.set_type(MessageType::Reset);
    rst.header.code = MessageClass::Empty;
    rst.header.message_id = sent.header.message_id;
    c.handle_datagram(addr("10.9.9.9:5683"), &rst.to_bytes().unwrap(), now);
    assert!(c.poll_event().is_none());
    c.handle_datagram(server, &rst.to_bytes().unwrap(), now);
    match c.poll_event() {
        Some(ClientEvent::Completed {
            id: done,
            result: Err(ClientError::Reset { .. }),
            ..
        }) => {
            assert_eq!(done, id)
        }
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let now = Instant::now();
        let mut s = ServerCore::new(fast(16));
        s.handle_datagram(addr(CLIENT), &data, now);
        while s.poll_transmit().is_some() {}
        if let Some(ServerEvent::Request { id, .. }) = s.poll_event() {
            s.respond(id, Response::changed(vec![1; 100]), now);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut c = ClientCore::new(fast(16), &mut rng);
        c.post(addr(SERVER), TEEP_PATH, vec![0; 40], now);
        c.handle_datagram(addr(SERVER), &data, now);
        c.handle_timeout(now);
    }
}

/// A path with a query becomes Uri-Path + Uri-Query options on every Block1 block; the
/// server hands the query to the application with the reassembled body.
#[test]
fn uri_query_travels_with_a_block1_upload() {
    let now = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut client = ClientCore::new(fast(16), &mut rng);
    let mut server = ServerCore::new(fast(16));
    let b = body(9, 100);
    let id = client.post(
        addr(SERVER),
        "/batch/lot-1/reports?seq=3&x=",
        b.clone(),
        now,
    );
    let mut got = None;
    for _ in 0..64 {
        while let Some(t) = client.poll_transmit() {
            server.handle_datagram(addr(CLIENT), &t.data, now);
        }
        while let Some(ev) = server.poll_event() {
            let ServerEvent::Request { id: rid, request } = ev;
            got = Some(request);
            server.respond(rid, Response::changed(Vec::new()), now);
        }
        while let Some(t) = server.poll_transmit() {
            client.handle_datagram(addr(SERVER), &t.data, now);
        }
        if let Some(ClientEvent::Completed {
            id: done, result, ..
        }) = client.poll_event()
        {
            assert_eq!(done, id);
            assert_eq!(result.unwrap().code, Code::Changed);
            break;
        }
    }
    let req = got.expect("the server saw the request");
    assert_eq!(req.path, "/batch/lot-1/reports");
    assert_eq!(req.query, vec!["seq=3".to_string(), "x=".to_string()]);
    assert_eq!(req.query_param("seq"), Some("3"));
    assert_eq!(req.query_param("x"), Some(""));
    assert_eq!(req.query_param("y"), None);
    assert_eq!(req.body, b);
}

/// Every request of one exchange (each Block1 block up, each Block2 request down) carries
/// the same options apart from Block1, Block2 and Size1: a server that keys its
/// reassembly on the request's options (libcoap does) would otherwise start a new body at
/// the block whose options changed (the final block once carried Accept alone).
#[test]
fn every_request_of_a_block_wise_exchange_carries_the_same_options() {
    let now = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut client = ClientCore::new(fast(16), &mut rng);
    let mut server = ServerCore::new(fast(16));
    let id = client.post(addr(SERVER), "/teep?x=1", body(3, 100), now);
    let mut sent = Vec::new();
    let mut done = false;
    for _ in 0..64 {
        while let Some(t) = client.poll_transmit() {
            sent.push(t.data.clone());
            server.handle_datagram(addr(CLIENT), &t.data, now);
        }
        while let Some(ServerEvent::Request { id: rid, .. }) = server.poll_event() {
            server.respond(rid, Response::changed(body(4, 100)), now);
        }
        while let Some(t) = server.poll_transmit() {
            client.handle_datagram(addr(SERVER), &t.data, now);
        }
        if let Some(ClientEvent::Completed { id: d, result, .. }) = client.poll_event() {
            assert_eq!(d, id);
            assert_eq!(result.unwrap().body, body(4, 100));
            done = true;
            break;
        }
    }
    assert!(done, "the exchange completed");
    // 7 blocks up, then blocks 1..6 of the response down.
    assert_eq!(sent.len(), 13);
    let options = |data: &[u8]| {
        let p = Packet::from_bytes(data).unwrap();
        p.options()
            .filter(|(n, _)| {
                ![CoapOption::Block1, CoapOption::Block2, CoapOption::Size1]
                    .contains(&CoapOption::from(**n))
            })
            .filter(|(n, _)| CoapOption::from(**n) != CoapOption::ContentFormat)
            .map(|(n, v)| (*n, v.clone()))
            .collect::<Vec<_>>()
    };
    let first = options(&sent[0]);
    assert!(
        first
            .iter()
            .any(|(n, _)| CoapOption::from(*n) == CoapOption::UriPath),
        "{first:?}"
    );
    for (i, d) in sent.iter().enumerate() {
        assert_eq!(options(d), first, "request {i}");
    }
}

/// A client may send each Block2 request of one response with a new token (libcoap
/// does): the server serves the one download in progress for that request (same peer,
/// method, path and query); with two of them it cannot tell which is meant and says 4.08.
#[test]
fn block2_follow_ups_with_new_tokens_are_matched_on_the_request() {
    let now = Instant::now();
    let peer = addr(CLIENT);
    let mut s = ServerCore::new(fast(16));
    let block2 = |num: u32| {
        move |p: &mut Packet| {
            p.add_option(CoapOption::Block2, vec![((num << 4) as u8) & 0xf0]);
        }
    };
    // The request and the first 16-byte block of its 40-byte answer.
    s.handle_datagram(
        peer,
        &request(1, b"first", |p| p.payload = b"q".to_vec()),
        now,
    );
    let Some(ServerEvent::Request { id, .. }) = s.poll_event() else {
        panic!("no request");
    };
    let answer = body(5, 40);
    s.respond(id, Response::changed(answer.clone()), now);
    let r = reply_of(&mut s);
    assert_eq!(r.payload, answer[..16]);
    // Blocks 1 and 2, each asked for with another token.
    let mut got = r.payload.clone();
    for (mid, num) in [(2u16, 1u32), (3, 2)] {
        let token = [b'n', mid as u8];
        s.handle_datagram(peer, &request(mid, &token, block2(num)), now);
        let r = reply_of(&mut s);
        assert_eq!(
            r.header.code,
            MessageClass::Response(Code::Changed),
            "block {num}"
        );
        assert_eq!(
            r.get_token(),
            token,
            "the answer echoes the request's token"
        );
        got.extend_from_slice(&r.payload);
    }
    assert_eq!(got, answer);
    // Finished: another follow-up has nothing to continue.
    s.handle_datagram(peer, &request(4, b"late", block2(1)), now);
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::RequestEntityIncomplete)
    );

    // Two answers in progress for the same request: an unknown token is ambiguous, each
    // known token still gets its own answer.
    for (mid, token, fill) in [(10u16, b"aa", 1u64), (11, b"bb", 2)] {
        s.handle_datagram(
            peer,
            &request(mid, token, |p| p.payload = b"q".to_vec()),
            now,
        );
        let Some(ServerEvent::Request { id, .. }) = s.poll_event() else {
            panic!("no request");
        };
        s.respond(id, Response::changed(body(fill, 40)), now);
        reply_of(&mut s);
    }
    s.handle_datagram(peer, &request(12, b"cc", block2(1)), now);
    assert_eq!(
        reply_of(&mut s).header.code,
        MessageClass::Response(Code::RequestEntityIncomplete)
    );
    s.handle_datagram(peer, &request(13, b"bb", block2(1)), now);
    assert_eq!(reply_of(&mut s).payload, body(2, 40)[16..32]);
}

/// Block1 blocks sent each with a new token (as libcoap sends them, with a Request-Tag)
/// make one body; two bodies in progress to the same resource are told apart by their
/// Request-Tags.
#[test]
fn block1_blocks_with_new_tokens_are_matched_on_the_request_and_its_tag() {
    let now = Instant::now();
    let peer = addr(CLIENT);
    let mut s = ServerCore::new(fast(16));
    let whole = body(6, 40);
    let other = body(7, 40);
    let block = |tag: &'static [u8], num: u32, more: bool, part: Vec<u8>| {
        move |p: &mut Packet| {
            let v = ((num << 4) as u8) | (u8::from(more) << 3);
            p.add_option(CoapOption::Block1, vec![v]);
            p.add_option(CoapOption::Unknown(292), tag.to_vec());
            p.payload = part.clone();
        }
    };
    let mut mid = 100u16;
    let mut send = |s: &mut ServerCore, token: &[u8], f: &dyn Fn(&mut Packet)| {
        mid += 1;
        s.handle_datagram(peer, &request(mid, token, f), now);
    };
    // Two bodies interleaved, tags A and B, a new token on every block.
    send(&mut s, b"a0", &block(b"A", 0, true, whole[..16].to_vec()));
    send(&mut s, b"b0", &block(b"B", 0, true, other[..16].to_vec()));
    send(&mut s, b"a1", &block(b"A", 1, true, whole[16..32].to_vec()));
    send(&mut s, b"b1", &block(b"B", 1, true, other[16..32].to_vec()));
    send(&mut s, b"a2", &block(b"A", 2, false, whole[32..].to_vec()));
    send(&mut s, b"b2", &block(b"B", 2, false, other[32..].to_vec()));
    let mut bodies = Vec::new();
    while let Some(ServerEvent::Request { request, .. }) = s.poll_event() {
        bodies.push(request.body);
    }
    assert_eq!(bodies, vec![whole, other]);
    let mut codes = Vec::new();
    while let Some(t) = s.poll_transmit() {
        codes.push(Packet::from_bytes(&t.data).unwrap().header.code);
    }
    assert_eq!(
        codes,
        vec![MessageClass::Response(Code::Continue); 4],
        "2.31 for the four blocks with more to come"
    );
    assert_eq!(s.uploads_in_progress(), 0);
}

/// A request with Block1 and no Block2 (libcoap's way) gets its response in blocks no
/// larger than its own: a client on a small frame uploading in 16-byte blocks takes
/// 16-byte blocks back, even from a server whose own size is 64.
#[test]
fn the_clients_block1_size_bounds_the_responses_blocks() {
    let now = Instant::now();
    let peer = addr(CLIENT);
    let mut s = ServerCore::new(fast(64));
    // One block of 16 (M clear): the whole body, sent block-wise all the same.
    s.handle_datagram(
        peer,
        &request(1, b"t", |p| {
            p.add_option(CoapOption::Block1, vec![0x00]);
            p.payload = b"0123456789abcdef".to_vec();
        }),
        now,
    );
    let Some(ServerEvent::Request { id, request }) = s.poll_event() else {
        panic!("no request");
    };
    assert_eq!(request.body, b"0123456789abcdef");
    s.respond(id, Response::changed(body(8, 100)), now);
    let r = reply_of(&mut s);
    let b2 = r
        .get_option(CoapOption::Block2)
        .unwrap()
        .front()
        .unwrap()
        .clone();
    assert_eq!(b2, vec![0x08], "block 0, more, 16 bytes");
    assert_eq!(r.payload, body(8, 100)[..16]);
}
