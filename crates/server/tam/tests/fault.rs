//! Fault suite (issue #8 item 3): the TAM server killed and restarted on the same SQLite
//! store in the middle of a rollout.
//!
//! The server runs on its own Tokio runtime; "killed" = `Runtime::shutdown_background`,
//! which drops every task at its current await point (requests in flight, SQLite
//! transactions not committed) like a crash of the process. A new runtime then opens the
//! same SQLite file on a new port and the Brokers move to it. Every device must converge,
//! none may apply the update twice (the Agent's `Installed` events per device), the TAM's
//! progress must count each device exactly once as done, and a further round must find
//! every device up to date.
//!
//! CI: 200 devices and two kills. By hand: `OTRP_FAULT_DEVICES=1000 OTRP_FAULT_KILLS=5
//! cargo test --release -p otrp-tam-server --test fault -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use common::*;
use otrp_agent::Event;
use otrp_tam_server::{AppState, Identity, RunningServer, ServerConfig};
use reqwest::StatusCode;

/// A TAM server on a runtime of its own, so that it can be killed as a whole.
struct Killable {
    rt: tokio::runtime::Runtime,
    server: RunningServer,
}

async fn start_killable(config: ServerConfig, identity: Identity) -> Killable {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("killable-tam")
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .spawn(async move {
            std::fs::create_dir_all(&config.data_dir).unwrap();
            let store = otrp_store::SqlStore::open_sqlite(&config.data_dir.join("tam.db"))
                .await
                .unwrap();
            let state = Arc::new(
                AppState::with_store(config.clone(), identity.clone(), Arc::new(store), "sqlite")
                    .unwrap(),
            );
            state.bootstrap_oem(&config.data_dir).await.unwrap();
            let tls = otrp_tam_server::tls_config(&identity).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            otrp_tam_server::spawn(listener, otrp_tam_server::router(state), Some(tls)).unwrap()
        })
        .await
        .unwrap();
    Killable { rt, server }
}

impl Killable {
    /// Kills every task of the server at once (no graceful shutdown).
    fn kill(self) {
        let Killable { rt, server } = self;
        rt.shutdown_background();
        drop(server);
    }
}

/// Why one session attempt ended early.
#[derive(Debug)]
enum Broken {
    Transport(String),
    Status(StatusCode),
}

impl Broken {
    fn describe(&self) -> String {
        match self {
            Broken::Transport(e) => format!("transport: {e}"),
            Broken::Status(s) => format!("TAM answered {s}"),
        }
    }
}

/// One session of `dev` against the TAM at `url`; Err when the TAM went away mid-way.
async fn session(http: &reqwest::Client, url: &str, dev: &mut Device) -> Result<(), Broken> {
    let mut next: Vec<u8> = Vec::new();
    for _ in 0..32 {
        let mut req = http.post(url).header(reqwest::header::ACCEPT, TEEP);
        if !next.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, TEEP);
        }
        let resp = req
            .body(std::mem::take(&mut next))
            .send()
            .await
            .map_err(|e| Broken::Transport(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Broken::Transport(e.to_string()))?;
        match status {
            StatusCode::NO_CONTENT => return Ok(()),
            StatusCode::OK => {
                let out = dev.agent.handle(&body, now());
                dev.events.extend(out.events.iter().cloned());
                match out.send {
                    Some(m) => next = m,
                    None => panic!("the Agent sent nothing back: {:?}", out.events),
                }
            }
            other => return Err(Broken::Status(other)),
        }
    }
    panic!("the session did not end in 32 requests");
}

fn installs(dev: &Device) -> usize {
    dev.events
        .iter()
        .filter(|e| match e {
            Event::Installed { component } => {
                component.0.iter().map(Vec::as_slice).collect::<Vec<_>>()
                    == [b"sd1".as_slice(), b"hello-ta".as_slice()]
            }
            _ => false,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tam_killed_and_restarted_during_a_rollout_every_device_converges_once() {
    let n = env_usize("OTRP_FAULT_DEVICES", 200);
    let kills = env_usize("OTRP_FAULT_KILLS", 2);
    let concurrency = 8;
    let mut f = Fixture::new("fault", Backend::Sqlite);
    let first = start_killable(f.config.clone(), f.identity.clone()).await;
    let api = Api::new(&f.pki, &first.server);
    let t = tenants(&f, &api).await;
    let deployment = publish_and_deploy(&f, &api, &t, 1).await;
    let mut devices = register_fleet(&mut f, &api, &t.oem, n, 50_000).await;

    let url = Arc::new(RwLock::new(first.server.tam_url()));
    let tam = Arc::new(Mutex::new(Some(first)));
    let done = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(Mutex::new(std::mem::take(&mut devices)));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let reasons = Arc::new(Mutex::new(std::collections::BTreeSet::new()));

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let http = client(&f.pki);
        let (url, done, broken, queue, finished, reasons) = (
            url.clone(),
            done.clone(),
            broken.clone(),
            queue.clone(),
            finished.clone(),
            reasons.clone(),
        );
        workers.spawn(async move {
            loop {
                let Some(mut d) = queue.lock().unwrap().pop() else {
                    return;
                };
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 200, "device {} never converged", d.id);
                    let u = url.read().unwrap().clone();
                    match session(&http, &u, &mut d).await {
                        Ok(()) if installs(&d) > 0 => break,
                        // Ended without the update (the TAM lost track mid-way): retry.
                        Ok(()) => {}
                        Err(e) => {
                            broken.fetch_add(1, Ordering::Relaxed);
                            let why = e.describe();
                            let kind = why.split(':').next().unwrap_or("").to_owned();
                            reasons.lock().unwrap().insert(kind);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                finished.lock().unwrap().push(d);
            }
        });
    }

    // The killer: at evenly spaced points of the rollout, kill the TAM and restart it
    // on the same SQLite file.
    for k in 1..=kills {
        let at = n * k / (kills + 1);
        while done.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let old = tam.lock().unwrap().take();
        if let Some(old) = old {
            old.kill();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let fresh = start_killable(f.config.clone(), f.identity.clone()).await;
        *url.write().unwrap() = fresh.server.tam_url();
        *tam.lock().unwrap() = Some(fresh);
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let mut devices = std::mem::take(&mut *finished.lock().unwrap());
    assert_eq!(devices.len(), n, "devices lost");
    let broken = broken.load(Ordering::Relaxed);
    println!(
        "{n} devices, {kills} kills, {broken} sessions broken by the kills ({:?})",
        reasons.lock().unwrap()
    );
    assert!(
        kills == 0 || broken > 0,
        "no session was in flight at any kill: the test did not test anything"
    );

    // Exactly one install per device, and the TAM counts each device once as done.
    for d in &devices {
        assert_eq!(
            installs(d),
            1,
            "device {} installed {} times",
            d.id,
            installs(d)
        );
    }
    let server = tam.lock().unwrap().take().unwrap();
    let api = Api::new(&f.pki, &server.server);
    let p = api.deployment(deployment, &t.sp).await;
    assert_eq!(p["done"], n as u64, "TAM progress: {p}");
    assert_eq!(p["failed"], 0, "TAM progress: {p}");

    // Nothing lost, nothing pending: one more round finds every device up to date.
    let http = client(&f.pki);
    let url = server.server.tam_url();
    for d in devices.iter_mut() {
        let before = d.events.len();
        session(&http, &url, d).await.unwrap();
        assert_eq!(installs(d), 1, "device {} installed again", d.id);
        assert!(
            !d.events[before..]
                .iter()
                .any(|e| matches!(e, Event::Installed { .. })),
            "device {} got an update after converging",
            d.id
        );
    }
    server.kill();
    f.cleanup().await;
}

/// The PostgreSQL backend pids of the connections `pool` holds now: acquires every open
/// connection in turn (waiting for busy ones) and asks each for its pid.
async fn pool_pids(pool: &sqlx::PgPool) -> Vec<i32> {
    let mut held = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..pool.size() {
        let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), pool.acquire()).await
        else {
            break;
        };
        if let Ok(pid) = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut *c)
            .await
        {
            pids.push(pid);
        }
        held.push(c);
    }
    drop(held);
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_terminated_under_load_the_tam_recovers() {
    let Some(url) = pg_url() else {
        println!("SKIPPED: OTRP_TEST_DATABASE_URL is not set");
        return;
    };
    let n = env_usize("OTRP_FAULT_PG_DEVICES", 80);
    let cuts = env_usize("OTRP_FAULT_PG_CUTS", 2);
    let mut f = Fixture::new("pgfault", Backend::Postgres);
    let sql = Arc::new(
        otrp_store::SqlStore::connect_postgres_schema(&url, f.schema.as_deref().unwrap())
            .await
            .unwrap(),
    );
    let server = f.start_on(sql.clone(), "postgres").await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let deployment = publish_and_deploy(&f, &api, &t, 1).await;
    let devices = register_fleet(&mut f, &api, &t.oem, n, 90_000).await;
    let url_tam = server.tam_url();
    let done = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(Mutex::new(devices));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let http = client(&f.pki);
        let (u, done, broken, queue, finished) = (
            url_tam.clone(),
            done.clone(),
            broken.clone(),
            queue.clone(),
            finished.clone(),
        );
        workers.spawn(async move {
            loop {
                let Some(mut d) = queue.lock().unwrap().pop() else {
                    return;
                };
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 200, "device {} never converged", d.id);
                    match session(&http, &u, &mut d).await {
                        Ok(()) if installs(&d) > 0 => break,
                        Ok(()) => {}
                        Err(_) => {
                            broken.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                finished.lock().unwrap().push(d);
            }
        });
    }
    let otrp_store::Backend::Postgres(pool) = sql.backend() else {
        panic!("not PostgreSQL")
    };
    let mut terminated = 0;
    for k in 1..=cuts {
        let at = n * k / (cuts + 1);
        while done.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Only this test's TAM connections (the server's pool, in the test's schema).
        let pids = pool_pids(pool).await;
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        for pid in pids {
            let ok: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            terminated += usize::from(ok);
        }
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    assert!(terminated > 0, "no connection was terminated");
    let devices = std::mem::take(&mut *finished.lock().unwrap());
    assert_eq!(devices.len(), n, "devices lost");
    println!(
        "{n} devices, {terminated} PostgreSQL connections terminated in {cuts} cuts, {} sessions broken",
        broken.load(Ordering::Relaxed)
    );
    for d in &devices {
        assert_eq!(
            installs(d),
            1,
            "device {} installed {} times",
            d.id,
            installs(d)
        );
    }
    let p = api.deployment(deployment, &t.sp).await;
    assert_eq!(p["done"], n as u64, "TAM progress: {p}");
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
