//! Load measurement (ignored by default; run it in release):
//!
//! ```text
//! OTRP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo test --release -p otrp-tam-server --test load -- --ignored --nocapture
//! ```
//!
//! Full TEEP exchanges per second over HTTPS against a real server (SQLite, and
//! PostgreSQL when `OTRP_TEST_DATABASE_URL` is set), each exchange = empty POST →
//! QueryRequest, QueryResponse (with evidence) → Update (SD + TA), Success → 204, driven by
//! real Agents in this process; then the up-to-date exchange (QueryRequest,
//! QueryResponse → 204). Next to each figure, the signature cost of one exchange measured
//! in the same run: the number of sign/verify operations it needs (TAM and Agent, both on
//! this machine) times their measured cost.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use otrp_crypto::{KeyKind, PrivateKey, SigAlg};

const DEVICES: usize = 240;
const CONCURRENCY: usize = 8;

/// Mean seconds of `f` over `n` runs.
fn time<F: FnMut()>(n: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(n)
}

struct Costs {
    p256_sign: f64,
    p256_verify: f64,
    ed_sign: f64,
    chain: f64,
}

fn measure_costs(f: &Fixture, dev: &Device) -> Costs {
    let p = provider();
    let k = PrivateKey::generate(KeyKind::P256, &mut rng(1)).unwrap();
    let e = PrivateKey::generate(KeyKind::Ed25519, &mut rng(2)).unwrap();
    let msg = [0x42u8; 200];
    let sig = p.sign(SigAlg::P256Sha256, &k, &msg).unwrap();
    let pk = k.public_key();
    let chain = otrp_pki::cert::certs_from_pem(&dev.tee_chain_pem).unwrap();
    let roots = f.identity.tee_roots.clone().unwrap();
    let now = SystemTime::now();
    Costs {
        p256_sign: time(300, || {
            let _ = p.sign(SigAlg::P256Sha256, &k, &msg);
        }),
        p256_verify: time(300, || {
            let _ = p.verify(SigAlg::P256Sha256, &pk, &msg, &sig);
        }),
        ed_sign: time(300, || {
            let _ = p.sign(SigAlg::Ed25519, &e, &msg);
        }),
        chain: time(100, || {
            let _ = roots.verify(&chain[0], &chain[1..], otrp_pki::Usage::TeeAttestation, now);
        }),
    }
}

async fn run(backend: Backend) {
    let mut f = Fixture::new("load", backend);
    let server = f.start().await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    publish_and_deploy(&f, &api, &t, 1).await;
    let mut devices = register_fleet(&mut f, &api, &t.oem, DEVICES, 10_000).await;
    let costs = measure_costs(&f, &devices[0]);
    let url = server.tam_url();

    let mut results = Vec::new();
    for phase in ["install", "up-to-date"] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        let per = DEVICES.div_ceil(CONCURRENCY);
        while !devices.is_empty() {
            let chunk: Vec<Device> = devices.drain(..per.min(devices.len())).collect();
            let http = client(&f.pki);
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let mut chunk = chunk;
                let mut requests = 0;
                for d in chunk.iter_mut() {
                    let mut s = Session::new();
                    s.run(&http, std::slice::from_ref(&url), d).await;
                    requests += s.requests;
                }
                (chunk, requests)
            }));
        }
        let mut requests = 0;
        for task in tasks {
            let (chunk, r) = task.await.unwrap();
            requests += r;
            devices.extend(chunk);
        }
        let secs = started.elapsed().as_secs_f64();
        if phase == "install" {
            assert!(devices.iter().all(|d| installed(d, &[b"sd1", b"hello-ta"])));
        }
        results.push((phase, secs, requests));
    }

    let c = &costs;
    // TAM: QueryRequest as COSE_Sign (P-256 + Ed25519, the device is not known in advance
    // from HTTP), EAT signature + x5chain (two certificates and their CRLs), QueryResponse
    // and Success signatures; the Update signature.
    let tam_install = 2.0 * c.p256_sign + c.ed_sign + 3.0 * c.p256_verify + c.chain;
    // Agent: QueryRequest, Update and two SUIT manifests verified; EAT, QueryResponse and
    // Success signed.
    let agent_install = 4.0 * c.p256_verify + 3.0 * c.p256_sign;
    // Up to date: QueryRequest (COSE_Sign) and the QueryResponse with evidence.
    let tam_noop = c.p256_sign + c.ed_sign + 2.0 * c.p256_verify + c.chain;
    let agent_noop = c.p256_verify + 2.0 * c.p256_sign;
    println!(
        "\n[{backend:?}] {DEVICES} devices, {CONCURRENCY} concurrent Brokers, HTTPS on 127.0.0.1, 2 cores shared by TAM and Agents"
    );
    println!(
        "  measured here: P-256 sign {:.1} µs, P-256 verify {:.1} µs, Ed25519 sign {:.1} µs, TEE chain validation {:.1} µs",
        c.p256_sign * 1e6,
        c.p256_verify * 1e6,
        c.ed_sign * 1e6,
        c.chain * 1e6
    );
    for (phase, secs, requests) in &results {
        let (tam, agent) = if *phase == "install" {
            (tam_install, agent_install)
        } else {
            (tam_noop, agent_noop)
        };
        let rate = DEVICES as f64 / secs;
        println!(
            "  {phase:>10}: {rate:8.1} exchanges/s ({requests} HTTP requests in {secs:.2} s); signatures per exchange: TAM {:.0} µs + Agent {:.0} µs = {:.0} µs → bound {:.0} exchanges/s on 2 cores",
            tam * 1e6,
            agent * 1e6,
            (tam + agent) * 1e6,
            2.0 / (tam + agent)
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load measurement: run in release with --ignored --nocapture"]
async fn exchanges_per_second_sqlite_and_postgres() {
    run(Backend::Sqlite).await;
    if pg_url().is_some() {
        run(Backend::Postgres).await;
    } else {
        println!("SKIPPED PostgreSQL: OTRP_TEST_DATABASE_URL is not set");
    }
}
