//! Criterion: SUIT envelope decode, and decode + signature verification, of the signed
//! SUIT examples and the TEEP App. E envelopes. `cargo bench -p otrp-suit --bench envelope`.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use otrp_crypto::PublicKey;
use otrp_suit::Envelope;

fn read(rel: &str) -> String {
    let path = format!(
        "{}/../../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn envelopes(c: &mut Criterion) {
    let p = otrp_crypto::rust_crypto_provider();
    let suit_key = PublicKey::from_pem(&read("suit/keys/signer_p256_public.pem")).unwrap();
    let teep_key = PublicKey::from_pem(&read("teep/keys/suit_signer_p256_public.pem")).unwrap();
    let cases = [
        ("suit/example0", &suit_key),
        ("suit/example2", &suit_key),
        ("suit/example4", &suit_key),
        ("teep/suit_integrated", &teep_key),
        ("teep/suit_personalization", &teep_key),
    ];
    let mut g = c.benchmark_group("suit_envelope");
    for (name, key) in cases {
        let bytes = hex::decode(read(&format!("{name}.hex")).trim()).unwrap();
        let keys = [key.clone()];
        Envelope::decode(&bytes).unwrap().verify(p, &keys).unwrap();
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| Envelope::decode(black_box(&bytes)).unwrap())
        });
        g.bench_function(format!("decode+verify/{name}"), |b| {
            b.iter(|| {
                let env = Envelope::decode(black_box(&bytes)).unwrap();
                env.verify(p, &keys).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, envelopes);
criterion_main!(benches);
