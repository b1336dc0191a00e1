//! Criterion: the Agent's handling of a TEEP Update carrying the TEEP draft's published
//! SUIT envelopes (testdata/vectors/teep): `suit_integrated` (TA in the envelope) and
//! `suit_personalization` (dependency and TA fetched through the Broker, config decrypted
//! with ECDH-ES+A128KW / A128CTR). Each iteration starts from a freshly provisioned
//! device (setup not timed). `cargo bench -p otrp-agent --bench vectors`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use otrp_agent::{Management, TrustedTam};

fn provisioned() -> (Device, ScriptedTam) {
    let mut tam = ScriptedTam::new(1);
    let mut d = device(
        vec![TrustedTam {
            key: tam.public(),
            oem: true,
        }],
        vec![],
        Management::OemOwnedSds,
    );
    let desc = descriptor(b"TEEP-Device", "acme", vec![vector_signer().public_key()]);
    d.success(&tam.update(vec![tam.sd_manifest(&desc, 1)], vec![]), 1);
    (d, tam)
}

fn vectors(c: &mut Criterion) {
    let mut g = c.benchmark_group("agent-vectors");
    g.bench_function("update/suit_integrated", |b| {
        b.iter_batched(
            || {
                let (d, mut tam) = provisioned();
                let up = tam.update(vec![vector("suit_integrated.hex")], vec![]);
                (d, up)
            },
            |(mut d, up)| {
                let out = d.agent.handle(&up, 2);
                assert!(out.send.is_some());
            },
            BatchSize::LargeInput,
        )
    });
    let suit_uri = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit";
    let dep = vector("suit_uri.hex");
    let ta = vector("tc_8d82573a-926d-4754-9353-32dc29997f74.ta.hex");
    g.bench_function("update/suit_personalization", |b| {
        b.iter_batched(
            || {
                let (d, mut tam) = provisioned();
                let up = tam.update(vec![vector("suit_personalization.hex")], vec![]);
                (d, up)
            },
            |(mut d, up)| {
                let _ = d.agent.handle(&up, 2);
                let _ = d.agent.provide_fetch(suit_uri, dep.clone(), 3);
                let out = d.agent.provide_fetch(TA_URI, ta.clone(), 4);
                assert!(out.send.is_some());
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, vectors);
criterion_main!(benches);
