//! A repeatable cost of full TEEP exchanges through the TAM core on SQLite, for
//! before/after comparisons on a busy machine (not criterion: a fixed amount of work).
//!
//! Each exchange is the one the TAM server runs for a Broker (empty body → QueryRequest
//! as COSE_Sign ESP256 + Ed25519 with a challenge; QueryResponse with EAT evidence whose
//! TEE certificate chain (`x5chain`) is validated to the TEE root of a development PKI
//! with its CRLs, as `otrp-tam-server` does → Update signed, one TA; Success → 204).
//! `DEVICES` provisioned devices take turns.
//!
//! ```sh
//! cargo bench -p otrp-tam --bench exchange_cost -- 200               # CPU per exchange
//! cargo bench -p otrp-tam --bench exchange_cost -- 200 --statements  # + SQL statements
//! # instructions (user space, every thread), independent of the machine's load:
//! B=$(ls -t target/release/deps/exchange_cost-* | grep -v '\.d$' | head -1)
//! for a in "0" "100 --exchanges-only" "100 --device-only"; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $a 2>&1 | grep refs
//! done
//! # TAM instructions per exchange = (I[exchanges-only] - I[device-only]) / 100
//! ```
//!
//! Prints, per exchange: the CPU time of every thread of the process (the TAM core, the
//! scripted devices' signing and sqlx's SQLite worker threads, from
//! `/proc/self/task/*/schedstat`), the part of it the device side takes (measured
//! alone), and with `--statements` the SQL commands sqlx logged (`sqlx::query` events: a
//! SQLite write group sent as one multi-statement command counts once; BEGIN/COMMIT and
//! pool pings are not among them). Statement logging costs CPU itself,
//! so the CPU figure of a `--statements` run is not comparable.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use common::{fresh_dir, key, reply, runtime, tam_keys, tam_with_one_ta, Device, MODEL, NOW};
use otrp_crypto::KeyKind;
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_pki::{CaRole, InitOptions, Pki};
use otrp_tam::{EatVerifier, Outcome};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const DEVICES: u64 = 8;

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts sqlx's per-statement log events.
struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// CPU nanoseconds of every live thread of this process.
fn cpu_ns() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200);
    let statements = args.iter().any(|a| a == "--statements");
    let device_loop = !args.iter().any(|a| a == "--exchanges-only");
    let exchange_loop = !args.iter().any(|a| a == "--device-only");
    if statements {
        use tracing_subscriber::layer::SubscriberExt;
        let sub = tracing_subscriber::registry().with(CountStatements);
        tracing::subscriber::set_global_default(sub).unwrap();
    }
    let p = otrp_crypto::default_provider();
    let rt = runtime();
    let dir = fresh_dir("otrp_tam_cost");

    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, at(NOW - 1000)).unwrap();
    let devices: Vec<Device> = (0..DEVICES)
        .map(|i| {
            let prov = provision(
                &mut pki,
                &ProvisionRequest::new(MODEL),
                p,
                &mut rng,
                at(NOW - 1000),
            )
            .unwrap();
            let id = prov.identity;
            let mut chain = vec![id.tee.cert.clone()];
            chain.extend(id.tee.chain.iter().cloned());
            Device {
                ueid: id.ueid.clone(),
                tee: id.tee.key.clone(),
                chain,
                agent: key(100 + i, KeyKind::P256),
            }
        })
        .collect();
    let (keys, tam_pub) = tam_keys();
    let v = EatVerifier::new(p, 3600).with_roots(pki.trust_store(CaRole::Tee).unwrap());
    let tam = rt.block_on(tam_with_one_ta(&dir, &keys, v, 2048, &mut rng));

    // The devices' side alone (the TAM's replies are reused), to subtract it.
    let mut replies = Vec::new();
    rt.block_on(async {
        for (i, dev) in devices.iter().enumerate() {
            let qr = reply(tam.process(None, &[], NOW, &mut rng).await.unwrap());
            let body = dev.query_response(&qr, &tam_pub);
            let up = reply(tam.process(None, &body, NOW + 1, &mut rng).await.unwrap());
            let done = tam
                .process(None, &dev.success(&up, &tam_pub), NOW + 2, &mut rng)
                .await
                .unwrap();
            assert_eq!(done, Outcome::Done, "device {i}");
            replies.push((qr, up));
        }
    });
    let c0 = cpu_ns();
    for i in (0..n).filter(|_| device_loop) {
        let (qr, up) = &replies[(i % DEVICES) as usize];
        let dev = &devices[(i % DEVICES) as usize];
        std::hint::black_box((dev.query_response(qr, &tam_pub), dev.success(up, &tam_pub)));
    }
    let device_ns = cpu_ns() - c0;

    STATEMENTS.store(0, Ordering::Relaxed);
    let c0 = cpu_ns();
    rt.block_on(async {
        for i in (0..n).filter(|_| exchange_loop) {
            let dev = &devices[(i % DEVICES) as usize];
            let qr = reply(tam.process(None, &[], NOW + 10, &mut rng).await.unwrap());
            let body = dev.query_response(&qr, &tam_pub);
            let up = reply(tam.process(None, &body, NOW + 11, &mut rng).await.unwrap());
            let done = tam
                .process(None, &dev.success(&up, &tam_pub), NOW + 12, &mut rng)
                .await
                .unwrap();
            assert_eq!(done, Outcome::Done);
        }
    });
    let all_ns = cpu_ns() - c0;
    if !(device_loop && exchange_loop) {
        println!("exchange_cost: {n} iterations (exchanges: {exchange_loop}, device side alone: {device_loop})");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let per = |ns: u64| ns as f64 / n.max(1) as f64 / 1e3;
    println!(
        "exchange_cost: {n} full TEEP exchanges on SQLite ({DEVICES} devices with x5chain evidence, after one warm-up exchange each)"
    );
    println!(
        "  CPU per exchange, every thread: {:.0} µs; device side alone: {:.0} µs; TAM (difference): {:.0} µs",
        per(all_ns),
        per(device_ns),
        per(all_ns.saturating_sub(device_ns))
    );
    if statements {
        println!(
            "  SQL commands per exchange (sqlx::query events: a multi-statement write group is one; BEGIN/COMMIT and pool pings not counted): {:.1}",
            STATEMENTS.load(Ordering::Relaxed) as f64 / n.max(1) as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
