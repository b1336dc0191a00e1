//! Threat T6 over CoAP: a flood from forged UDP addresses (anyone can send from any
//! source) of uploads that never finish, requests whose block-wise answers are never
//! fetched, block requests with fresh message ids and plain requests, given to the CoAP
//! server core. The live heap it adds stays within a small multiple of
//! `Config::max_held_bytes` (its count of what it holds is an estimate: map slots and
//! keys are costed at a fixed 128 bytes), while the same flood against a server without
//! that bound grows with the flood. Measured with a counting global allocator (`cap`);
//! one test per binary, so nothing else allocates meanwhile.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cap::Cap;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use otrp_coap::{Config, Response, ServerCore, ServerEvent};

#[global_allocator]
static GLOBAL: Cap<System> = Cap::new(System, usize::MAX);

/// The bound the flood runs against.
const BOUND: usize = 1 << 20;
/// Datagrams in the flood.
const DATAGRAMS: u32 = 40_000;

fn datagram(i: u32) -> (SocketAddr, Vec<u8>) {
    let [a, b, c, d] = i.to_be_bytes();
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a ^ b, c, d)), 5683);
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = i as u16;
    p.set_token(i.to_be_bytes().to_vec());
    p.add_option(CoapOption::UriPath, b"teep".to_vec());
    p.header.code = MessageClass::Request(RequestType::Post);
    match i % 4 {
        0 => {
            p.add_option(CoapOption::Block1, vec![0x0a]); // num 0, more, 64 B
            p.add_option(CoapOption::Size1, vec![0x40, 0x00]); // 16 KiB
            p.payload = vec![1; 64];
        }
        1 => p.header.code = MessageClass::Request(RequestType::Get),
        2 => {
            p.header.code = MessageClass::Request(RequestType::Get);
            p.add_option(CoapOption::Block2, vec![0x12]); // block 1 of nothing
        }
        _ => p.payload = vec![2; 48],
    }
    (from, p.to_bytes().unwrap())
}

/// Runs the flood against a server holding at most `bound` bytes; returns (the peak
/// live heap it added, sampled after every datagram; its own count at that point;
/// requests refused 5.03).
fn flood(bound: usize) -> (usize, usize, u64) {
    let base = GLOBAL.allocated();
    let mut s = ServerCore::new(Config {
        block_szx: 2, // 64-byte blocks
        max_body: 16 << 10,
        max_uploads: usize::MAX,
        max_held_bytes: bound,
        ..Config::default()
    });
    let mut now = Instant::now();
    let (mut peak, mut held_at_peak) = (0, 0);
    for i in 0..DATAGRAMS {
        let (from, data) = datagram(i);
        s.handle_datagram(from, &data, now);
        while let Some(ServerEvent::Request { id, .. }) = s.poll_event() {
            s.respond(id, Response::changed(vec![0x5a; 1024]), now);
        }
        while s.poll_transmit().is_some() {}
        let live = GLOBAL.allocated().saturating_sub(base);
        if live > peak {
            (peak, held_at_peak) = (live, s.held_bytes());
        }
        now += Duration::from_micros(50);
        s.handle_timeout(now);
    }
    let refused = s.busy_refusals();
    drop(s);
    (peak, held_at_peak, refused)
}

#[test]
fn a_coap_flood_from_forged_addresses_adds_a_bounded_heap() {
    let (unbounded, _, none_refused) = flood(usize::MAX);
    let (bounded, held, refused) = flood(BOUND);
    println!(
        "{DATAGRAMS} forged datagrams: live heap added, peak: {:.1} MiB without a bound, \
         {:.2} MiB with max_held_bytes = {:.0} MiB (its count then {:.2} MiB); {refused} \
         requests refused 5.03",
        unbounded as f64 / (1 << 20) as f64,
        bounded as f64 / (1 << 20) as f64,
        BOUND as f64 / (1 << 20) as f64,
        held as f64 / (1 << 20) as f64,
    );
    assert_eq!(none_refused, 0);
    assert!(
        unbounded > 10 * BOUND,
        "the flood holds {unbounded} B unbounded"
    );
    assert!(refused > u64::from(DATAGRAMS) / 2, "{refused} refused");
    assert!(held <= BOUND);
    assert!(
        bounded <= 2 * BOUND,
        "the bounded server added {bounded} B of heap for a bound of {BOUND} B"
    );
}
