//! Fault suite (issue #8): the PostgreSQL SERVER restarted while the TAM serves a rollout
//! under load (8 concurrent Broker loops). Every connection of the TAM's pool dies and
//! the database is unreachable for the length of the restart; the TAM must answer errors
//! meanwhile (no crash), reconnect by itself, and every device must converge with exactly
//! one install (the Agent's `Installed` events), the TAM counting each device once.
//!
//! It restarts the machine's PostgreSQL, so it never runs by default (`#[ignore]`) and
//! needs the restart command in OTRP_PG_RESTART_CMD (run with `sh -c`), e.g. on Debian:
//!
//! ```sh
//! OTRP_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! OTRP_PG_RESTART_CMD="pg_ctlcluster 15 main restart" \
//! cargo test -p otrp-tam-server --test pg_restart -- --ignored --nocapture
//! ```
//!
//! OTRP_PG_RESTART_DEVICES (default 120) and OTRP_PG_RESTARTS (default 1) scale it.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use otrp_agent::Event;
use reqwest::StatusCode;

/// One session of `dev` against `url`; Err(why) when it broke off.
async fn session(http: &reqwest::Client, url: &str, dev: &mut Device) -> Result<(), String> {
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
            .map_err(|e| format!("transport: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("transport: {e}"))?;
        match status {
            StatusCode::NO_CONTENT => return Ok(()),
            StatusCode::OK => {
                let out = dev.agent.handle(&body, now());
                dev.events.extend(out.events.iter().cloned());
                match out.send {
                    Some(m) => next = m,
                    None => return Err(format!("the Agent sent nothing back: {:?}", out.events)),
                }
            }
            other => return Err(format!("status {}", other.as_u16())),
        }
    }
    Err("the session did not end in 32 requests".into())
}

fn installs(dev: &Device) -> usize {
    dev.events
        .iter()
        .filter(|e| matches!(e, Event::Installed { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the PostgreSQL server: set OTRP_PG_RESTART_CMD and run with --ignored"]
async fn postgres_server_restarted_under_load_every_device_converges_once() {
    let (Some(url), Ok(restart)) = (pg_url(), std::env::var("OTRP_PG_RESTART_CMD")) else {
        panic!("set OTRP_TEST_DATABASE_URL and OTRP_PG_RESTART_CMD (see the file's doc)");
    };
    let n = env_usize("OTRP_PG_RESTART_DEVICES", 120);
    let restarts = env_usize("OTRP_PG_RESTARTS", 1);
    let mut f = Fixture::new("pgrestart", Backend::Postgres);
    let sql = Arc::new(
        otrp_store::SqlStore::connect_postgres_schema(&url, f.schema.as_deref().unwrap())
            .await
            .unwrap(),
    );
    let server = f.start_on(sql.clone(), "postgres").await;
    let api = Api::new(&f.pki, &server);
    let t = tenants(&f, &api).await;
    let deployment = publish_and_deploy(&f, &api, &t, 1).await;
    let devices = register_fleet(&mut f, &api, &t.oem, n, 70_000).await;
    let tam_url = server.tam_url();
    let done = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicUsize::new(0));
    let reasons = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, usize>::new(),
    ));
    let queue = Arc::new(Mutex::new(devices));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let http = client(&f.pki);
        let (u, done, broken, reasons, queue, finished) = (
            tam_url.clone(),
            done.clone(),
            broken.clone(),
            reasons.clone(),
            queue.clone(),
            finished.clone(),
        );
        workers.spawn(async move {
            loop {
                let Some(mut d) = queue.lock().unwrap().pop() else {
                    return;
                };
                let started = Instant::now();
                loop {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "device {} never converged",
                        d.id
                    );
                    match session(&http, &u, &mut d).await {
                        Ok(()) if installs(&d) > 0 => break,
                        Ok(()) => {}
                        Err(why) => {
                            broken.fetch_add(1, Ordering::Relaxed);
                            let kind = why.split(':').next().unwrap_or("").to_owned();
                            *reasons.lock().unwrap().entry(kind).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                finished.lock().unwrap().push(d);
            }
        });
    }

    let mut restart_times = Vec::new();
    for k in 1..=restarts {
        let at = n * k / (restarts + 1);
        while done.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let cmd = restart.clone();
        let r0 = Instant::now();
        let before = done.load(Ordering::Relaxed);
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            out.status.success(),
            "{restart}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        restart_times.push(r0.elapsed());
        println!(
            "PostgreSQL restarted ({restart}) in {:.2} s: {before}/{n} devices done when it began, {}/{n} when it returned",
            r0.elapsed().as_secs_f64(),
            done.load(Ordering::Relaxed)
        );
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let devices = std::mem::take(&mut *finished.lock().unwrap());
    assert_eq!(devices.len(), n, "devices lost");
    let broken = broken.load(Ordering::Relaxed);
    println!(
        "FIGURE PostgreSQL restart under load: {n} devices converged in {:.1} s, {restarts} restart(s) of {:?}, {broken} sessions broken ({:?})",
        t0.elapsed().as_secs_f64(),
        restart_times,
        reasons.lock().unwrap()
    );
    assert!(
        broken > 0,
        "no session broke: the restart did not hit the load"
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
    assert_eq!(p["failed"], 0, "TAM progress: {p}");
    let (st, _) = api.get("/api/v1/status", &t.oem).await;
    assert_eq!(st, StatusCode::OK, "the TAM's store did not come back");
    server.shutdown(Duration::from_secs(5)).await;
    f.cleanup().await;
}
