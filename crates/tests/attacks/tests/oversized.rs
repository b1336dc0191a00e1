//! Threat T6 (resource exhaustion by the rich OS, the Broker or the network): oversized
//! and deeply nested inputs — 64 MiB and 4 GiB declared lengths, 100 000 nested arrays,
//! maps and tags, maps declaring 1 000 000 entries, a 10 MiB message — given to every
//! decoder and to the Agent, TAM and OTrP entry points are refused with a typed error
//! within bounded memory and without exhausting the 2 MiB test-thread stack.
//!
//! Memory is measured with a counting global allocator (`cap`; the workspace forbids
//! `unsafe` in our code). For each call the allocator's limit is set to the live heap
//! plus [`PEAK_BOUND`] (64 MiB), so any allocation that would take the call's peak over
//! the bound fails (and aborts the test binary); the sum of all bytes allocated during
//! the call — an upper bound of its peak — is printed next to it. One test per binary,
//! so no other test allocates meanwhile.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::alloc::System;
use std::fmt::Debug;

use cap::Cap;
use otrp_attack_tests::agent::{key, provider, AgentDevice, ScriptedTam};
use otrp_attack_tests::pair::Pair;
use otrp_attack_tests::tam::NOW;
use otrp_crypto::KeyKind;
use otrp_suit::CborItem;
use otrp_teep::ErrCode;
#[allow(unused_imports)]
use otrp_teep::TeepCodec;

#[global_allocator]
static GLOBAL: Cap<System> = Cap::new(System, usize::MAX);

/// Peak heap one call may add on top of the live heap (its input included by the caller).
const PEAK_BOUND: usize = 64 << 20;
/// Hard stop: an allocation past this aborts the test binary instead of the machine.
const HARD_LIMIT: usize = 512 << 20;

const MIB: usize = 1 << 20;

/// A CBOR item header (major type `major`, argument `n`, always the 8-byte form when
/// `n` does not fit 4 bytes).
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
        0x1_0000..=0xffff_ffff => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 27];
            v.extend_from_slice(&n.to_be_bytes());
            v
        }
    }
}

/// The hostile CBOR inputs: (name, bytes).
fn cbor_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let mut b = head(2, 64 * MIB as u64);
    b.extend_from_slice(b"short");
    v.push(("bstr declaring 64 MiB", b));
    let mut b = head(3, u32::MAX as u64);
    b.extend_from_slice(b"short");
    v.push(("tstr declaring 4 GiB", b));
    let mut b = head(4, u64::MAX);
    b.push(0);
    v.push(("array declaring 2^64-1 items", b));
    let mut b = head(5, 1_000_000);
    b.extend_from_slice(&[0x01, 0x02]);
    v.push(("map declaring 1e6 entries", b));
    // A COSE_Sign1 shape whose payload declares 64 MiB.
    let mut b = vec![0xd2, 0x84, 0x43, 0xa1, 0x01, 0x28, 0xa0];
    b.extend(head(2, 64 * MIB as u64));
    b.extend_from_slice(&[0; 16]);
    v.push(("COSE_Sign1 with a payload declaring 64 MiB", b));
    // A TEEP Update shape with a manifest list declaring 1e6 entries.
    let mut b = vec![0x82, 0x03, 0xa1, 0x0a];
    b.extend(head(4, 1_000_000));
    b.extend_from_slice(&[0x40]);
    v.push(("Update whose manifest-list declares 1e6 entries", b));
    let mut b = vec![0x81; 100_000];
    b.push(0);
    v.push(("100 000 nested arrays", b));
    let mut b = Vec::with_capacity(200_001);
    for _ in 0..100_000 {
        b.extend_from_slice(&[0xa1, 0x01]);
    }
    b.push(0);
    v.push(("100 000 nested maps", b));
    let mut b = vec![0xc6; 100_000];
    b.push(0);
    v.push(("100 000 nested tags", b));
    let mut b = vec![0x9f; 100_000];
    b.push(0);
    v.push(("100 000 nested indefinite arrays", b));
    let mut b = head(2, 10 * MIB as u64);
    b.resize(b.len() + 10 * MIB, 0x5a);
    v.push(("10 MiB bstr", b));
    v
}

struct Meter {
    base: usize,
    rows: Vec<String>,
    max_churn: usize,
}

impl Meter {
    /// Runs `f` under the bound; it must refuse `input`.
    fn case<T, E: Debug>(&mut self, what: &str, input: &str, f: impl FnOnce() -> Result<T, E>) {
        self.run(what, input, true, f)
    }

    /// Runs `f` under the bound; `input` is well-formed for it (a structural parser on
    /// a genuinely signed message), so it may be accepted.
    fn bounded<T, E: Debug>(&mut self, what: &str, input: &str, f: impl FnOnce() -> Result<T, E>) {
        self.run(what, input, false, f)
    }

    fn run<T, E: Debug>(
        &mut self,
        what: &str,
        input: &str,
        refuse: bool,
        f: impl FnOnce() -> Result<T, E>,
    ) {
        let live = GLOBAL.allocated();
        GLOBAL.set_limit(live + PEAK_BOUND).unwrap();
        let before = GLOBAL.total_allocated();
        let r = f();
        let churn = GLOBAL.total_allocated() - before;
        GLOBAL.set_limit(self.base + HARD_LIMIT).unwrap();
        let err = match r {
            Ok(_) if refuse => panic!("{what} accepted {input}"),
            Ok(_) => "parsed (well-formed COSE; refused by the verifiers below)".to_string(),
            Err(e) => format!("{e:?}"),
        };
        self.max_churn = self.max_churn.max(churn);
        self.rows.push(format!(
            "{what:<30} {input:<48} alloc {:>6.2} MiB  {}",
            churn as f64 / MIB as f64,
            err.chars().take(60).collect::<String>()
        ));
    }
}

/// Refusals of the Agent core are Error messages (typed by their err-code).
fn agent_refusal(dev: &mut AgentDevice, msg: &[u8]) -> Result<(), ErrCode> {
    match dev.refusal(msg, NOW) {
        Some(code) => Err(code),
        None => Ok(()),
    }
}

#[test]
fn oversized_and_nested_inputs_are_refused_within_bounded_memory() {
    let base = GLOBAL.allocated();
    GLOBAL.set_limit(base + HARD_LIMIT).unwrap();
    let mut m = Meter {
        base,
        rows: Vec::new(),
        max_churn: 0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut p = rt.block_on(Pair::new(61));
    let keys = otrp_attack_tests::tam::tam_keys(1);
    let trusted = [keys.p256.public_key(), keys.ed25519.public_key()];
    let tee = key(62, KeyKind::P256);
    let anchors = otrp_attack_tests::pki::tam_anchors(&otrp_attack_tests::pki::pki(63, "A"));

    let mut inputs = cbor_inputs();
    // Signed and well-formed but oversized: a 10 MiB Update from the trusted TAM whose
    // manifest is 10 MiB of garbage, and the same signed by an unknown key.
    let big = vec![0x5au8; 10 * MIB];
    let mut tam = ScriptedTam::new(keys.p256.clone());
    inputs.push((
        "10 MiB Update from the TAM",
        tam.update(vec![big.clone()], vec![]),
    ));
    let mut rogue = ScriptedTam::new(key(64, KeyKind::P256));
    inputs.push((
        "10 MiB Update from a rogue",
        rogue.update(vec![big], vec![]),
    ));

    for (input, bytes) in &inputs {
        let peek = || match otrp_cose::peek(bytes) {
            Ok(otrp_cose::CoseMessage::Unknown) => Err("not a COSE message".to_string()),
            Ok(m) => Ok(m),
            Err(e) => Err(e.to_string()),
        };
        if input.starts_with("10 MiB Update") {
            m.bounded("otrp_cose::peek", input, peek);
            m.bounded("otrp_cose::parse_sign1", input, || {
                otrp_cose::parse_sign1(bytes)
            });
        } else {
            m.case("otrp_cose::peek", input, peek);
            m.case("otrp_cose::parse_sign1", input, || {
                otrp_cose::parse_sign1(bytes)
            });
        }
        m.case("otrp_cose::parse_sign", input, || {
            otrp_cose::parse_sign(bytes)
        });
        m.case("otrp_cose::cose_key_from_slice", input, || {
            otrp_cose::cose_key_from_slice(bytes)
        });
        m.case("otrp_teep::decode_any", input, || {
            otrp_teep::decode_any(bytes)
        });
        m.case("otrp_teep::Update::decode", input, || {
            otrp_teep::Update::decode(bytes)
        });
        m.case("otrp_teep::signed::verify", input, || {
            otrp_teep::signed::verify(provider(), bytes, &trusted)
        });
        m.case("otrp_suit::Envelope::decode", input, || {
            otrp_suit::Envelope::decode(bytes)
        });
        m.case("otrp_suit::SuitReport", input, || {
            otrp_suit::SuitReport::from_cbor(bytes)
        });
        m.case("otrp_eat::EatClaims::decode", input, || {
            otrp_eat::EatClaims::decode(bytes)
        });
        m.case("otrp_eat::signed::verify", input, || {
            otrp_eat::signed::verify(provider(), bytes, &trusted)
        });
        m.case("SdDescriptor::from_cbor", input, || {
            otrp_agent::SdDescriptor::from_cbor(bytes)
        });
        let before = p.dev.snapshot();
        m.case("Agent::handle", input, || agent_refusal(&mut p.dev, bytes));
        assert!(p.dev.snapshot() == before, "Agent store changed by {input}");
        m.case("Tam::process", input, || {
            rt.block_on(p.world.step(bytes, NOW))
        });
    }

    // JSON for the OTrP side.
    let mut json: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = vec![b'['; 100_000];
    b.extend(vec![b']'; 100_000]);
    json.push(("100 000 nested JSON arrays", b));
    let mut b = b"{\"InstallTARequest\":".to_vec();
    for _ in 0..50_000 {
        b.extend_from_slice(b"{\"a\":");
    }
    b.push(b'1');
    b.extend(vec![b'}'; 50_001]);
    json.push(("50 000 nested JSON objects", b));
    let mut b = b"{\"InstallTARequest\":{\"payload\":\"".to_vec();
    b.resize(b.len() + 10 * MIB, b'A');
    b.extend_from_slice(b"\",\"protected\":\"e30\",\"signature\":\"AA\"}}");
    json.push(("10 MiB JWS payload", b));
    for (input, bytes) in &json {
        if input.starts_with("10 MiB") {
            // Well-formed JSON of the signed-request shape: the decoder keeps it (it has
            // no size limit of its own; the HTTP shell's body limit is the bound), the
            // verifiers below refuse it.
            m.bounded("otrp_json::decode_any", input, || {
                otrp_json::decode_any(bytes)
            });
        } else {
            m.case("otrp_json::decode_any", input, || {
                otrp_json::decode_any(bytes)
            });
        }
        m.case("otrp_json::verify_request", input, || {
            otrp_json::verify_request(provider(), bytes, &[tee.public_key()])
        });
        m.case("OTrP InstallTA path", input, || {
            otrp_attack_tests::otrp::verify_install_ta(
                provider(),
                bytes,
                &anchors,
                &tee,
                otrp_attack_tests::pki::now(),
            )
        });
    }
    for r in &m.rows {
        println!("{r}");
    }
    println!(
        "{} refusals, each within live heap + {} MiB; most bytes allocated by one call {:.2} MiB; \
         process high-water mark {:.1} MiB (fixtures and inputs included)",
        m.rows.len(),
        PEAK_BOUND / MIB,
        m.max_churn as f64 / MIB as f64,
        GLOBAL.max_allocated().saturating_sub(base) as f64 / MIB as f64
    );
    assert_eq!(m.rows.len(), inputs.len() * 14 + json.len() * 3);
}
