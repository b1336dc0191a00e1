//! A short, deterministic fuzz smoke run for CI: every fuzz target body of
//! `otrp::fuzzing` runs over every published example and thousands of mutations of them
//! (bit flips, byte changes, truncations, insertions, splices, random bytes). Long
//! coverage-guided runs use `cargo fuzz` (scripts/fuzz.sh); this only proves, on every
//! commit, that none of those inputs panics.
#![allow(clippy::unwrap_used, clippy::panic)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut out = Vec::new();
    let mut stack = vec![
        root.join("testdata"),
        root.join("crates/codec/otrp-json/tests/data"),
    ];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(raw) = std::fs::read(&p) else { continue };
            let name = p.to_string_lossy();
            if name.ends_with(".md") || name.ends_with(".diag") || name.ends_with(".pem") {
                continue;
            }
            let (bytes, _) = otrp::inspect::input::decode_text(raw);
            out.push(bytes);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
    let rounds = rng.gen_range(1..4);
    for _ in 0..rounds {
        match rng.gen_range(0..7) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = *[0x00, 0xff, 0x1b, 0x5b, 0x9f, 0xbf, 0xd8, 0x7f, 0x80]
                    .get(rng.gen_range(0..9))
                    .unwrap_or(&0);
            }
            2 if !b.is_empty() => {
                let n = rng.gen_range(0..b.len());
                b.truncate(n);
            }
            3 => {
                let i = rng.gen_range(0..=b.len());
                let extra: Vec<u8> = (0..rng.gen_range(1..9)).map(|_| rng.gen()).collect();
                b.splice(i..i, extra);
            }
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() && !b.is_empty() {
                    let cut = rng.gen_range(0..b.len());
                    let from = rng.gen_range(0..other.len());
                    b.truncate(cut);
                    b.extend_from_slice(&other[from..]);
                }
            }
            5 => b = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect(),
            _ => {
                // duplicate a slice (lengths and nesting drift)
                if b.len() > 2 {
                    let s = rng.gen_range(0..b.len() - 1);
                    let e = rng.gen_range(s + 1..b.len());
                    let piece = b[s..e].to_vec();
                    b.splice(s..s, piece);
                }
            }
        }
    }
    b
}

#[test]
fn every_fuzz_target_survives_seeds_and_mutations() {
    let seeds = seeds();
    assert!(seeds.len() > 80, "only {} seeds", seeds.len());
    let per_target: usize = std::env::var("OTRP_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    for (name, target) in otrp::fuzzing::TARGETS {
        let mut rng = ChaCha8Rng::seed_from_u64(0x07_7e_e9);
        let mut seeds = seeds.clone();
        seeds.extend(otrp::fuzzing::extra_seeds(name));
        for s in &seeds {
            target(s);
        }
        for _ in 0..per_target {
            target(&mutate(&mut rng, &seeds));
        }
        eprintln!(
            "fuzz smoke: {name}: {} executions, no panic",
            seeds.len() + per_target
        );
    }
}

/// `fuzz/seeds/<target>/` (what scripts/fuzz.sh adds to the corpora) holds exactly
/// `otrp::fuzzing::extra_seeds`. Regenerate with
/// `OTRP_FUZZ_WRITE_SEEDS=1 cargo test -p otrp --test fuzz_smoke committed_fuzz_seeds`.
#[test]
fn committed_fuzz_seeds_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../fuzz/seeds");
    let write = std::env::var_os("OTRP_FUZZ_WRITE_SEEDS").is_some();
    for (name, _) in otrp::fuzzing::TARGETS {
        let dir = root.join(name);
        for (i, seed) in otrp::fuzzing::extra_seeds(name).iter().enumerate() {
            let path = dir.join(format!("seed-{i}"));
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, seed).unwrap();
            }
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (regenerate, see above)", path.display()));
            assert!(
                committed == *seed,
                "{} is stale (regenerate, see above)",
                path.display()
            );
        }
    }
}

/// Why there is no `tam_message` fuzz target: the TAM core (`otrp_tam::Tam::process`)
/// keeps its sessions, tokens and devices in an `otrp_store::SqlStore`, and a fuzz
/// execution needs a fresh one (a shared store leaks state between executions, so a
/// crash would not reproduce from its input). `sqlite::memory:` gives each of the pool's
/// connections its own empty database, so the fresh store is a SQLite file with its
/// migrations; this measures what one execution would cost (store + TAM + one `process`
/// of a TEEP message, on a current-thread tokio runtime). Run with
/// `cargo test --release -p otrp --test fuzz_smoke tam_message -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (~10 s), not a check"]
fn tam_message_cost_per_execution() {
    use otrp_crypto::{KeyKind, PrivateKey};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = otrp_crypto::rust_crypto_provider();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let keys = otrp_tam::TamKeys {
        p256: PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
        ed25519: PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let message = seeds()
        .into_iter()
        .find(|s| matches!(otrp_cose::peek(s), Ok(otrp_cose::CoseMessage::Sign1(_))))
        .unwrap_or_default();
    let n = 20;
    let start = std::time::Instant::now();
    for i in 0..n {
        rt.block_on(async {
            let path = dir.path().join(format!("tam-{i}.db"));
            let store: Arc<dyn otrp_store::Store> =
                Arc::new(otrp_store::SqlStore::open_sqlite(&path).await.unwrap());
            let tam = otrp_tam::Tam::new(
                store,
                Arc::new(otrp_tam::EatVerifier::new(provider, 3600)),
                keys.clone(),
                otrp_tam::TamConfig::default(),
                provider,
            );
            let opened = tam.process(None, &[], 1_800_000_000, &mut rng).await;
            assert!(opened.is_ok(), "{opened:?}");
            let _ = tam.process(None, &message, 1_800_000_001, &mut rng).await;
        });
    }
    let per_exec = start.elapsed() / n;
    eprintln!(
        "tam_message: {per_exec:?} per execution with a fresh SQLite store = {:.0} exec/s \
         (10 M executions: {:.0} h)",
        1.0 / per_exec.as_secs_f64(),
        1e7 * per_exec.as_secs_f64() / 3600.0
    );
}
