//! Criterion: decode and encode of each TEEP message vector (the CBOR payloads of
//! `testdata/vectors/teep`). `cargo bench -p otrp-teep --bench codec`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use otrp_teep::{decode_any, TeepMessage};

const VECTORS: &[&str] = &[
    "query_request",
    "query_request_d21",
    "query_response",
    "update",
    "success",
    "error",
];

fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../testdata/vectors/teep/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex::decode(text.trim()).unwrap()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("teep");
    for name in VECTORS {
        let bytes = vector(name);
        let msg: TeepMessage = decode_any(&bytes).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode_any(black_box(&bytes)).unwrap())
        });
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&msg).to_vec().unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
