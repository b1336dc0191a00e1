//! End to end on loopback, as separate processes: a TAM (the mini TAM of otrp-broker,
//! served by this test process over HTTP), `otrp tee run` (the TEE daemon of a device made
//! by `otrp pki init` + `otrp device provision`) and `otrp broker run`; the payment app is
//! `otrp client`. The Broker installs the payment-signer TA on the app's RequestTA, the app
//! has it sign a transaction (checked against the TA's key), the Broker recovers from a
//! TAM that drops it mid-session and from a TEE daemon killed with SIGKILL, and an update
//! reaches the device.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use otrp_broker::mini_tam::{MiniTam, MiniTamKeys};

const OTRP: &str = env!("CARGO_BIN_EXE_otrp");

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../../tas/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn otrp(args: &[&str]) -> Output {
    let out = Command::new(OTRP).args(args).output().unwrap();
    if !out.status.success() {
        panic!(
            "otrp {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Kills a child process when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    let child = Command::new(OTRP)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .unwrap();
    Proc(child)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn start_tee(dir: &Path, pki: &Path, sock: &Path, log: &str) -> Proc {
    let _ = std::fs::remove_file(sock);
    let p = spawn(
        &[
            "tee",
            "run",
            "--device",
            dir.join("dev").to_str().unwrap(),
            "--listen",
            &format!("unix:{}", sock.display()),
            "--pki",
            pki.to_str().unwrap(),
        ],
        &dir.join(log),
    );
    wait_for("the TEE socket", Duration::from_secs(30), || sock.exists());
    p
}

fn status(sock: &str) -> serde_json::Value {
    serde_json::from_str(&stdout(&otrp(&["client", "status", "--tee", sock]))).unwrap()
}

fn component_digest(sock: &str, id: &str) -> Option<String> {
    status(sock)["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["digest"].as_str().unwrap().to_string())
}

/// A TAM front that drops the first `drops` QueryResponses (503, as a TAM going away
/// mid-session would), then passes everything to the mini TAM.
#[derive(Clone)]
struct Flaky {
    tam: MiniTam,
    drops: Arc<AtomicUsize>,
}

async fn flaky_post(State(f): State<Flaky>, _h: HeaderMap, body: Bytes) -> Response {
    if !body.is_empty() && f.drops.load(Ordering::SeqCst) > 0 {
        f.drops.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "going away").into_response();
    }
    let tam = f.tam.clone();
    match tokio::task::spawn_blocking(move || tam.process(&body)).await {
        Ok(Ok(Some(b))) => (
            StatusCode::OK,
            [("content-type", otrp_broker::TEEP_CBOR)],
            b,
        )
            .into_response(),
        Ok(Ok(None)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[test]
fn broker_installs_a_ta_the_app_invokes_it_and_sessions_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = dir.join("pki");
    otrp(&["pki", "init", pki.to_str().unwrap()]);
    otrp(&[
        "device",
        "provision",
        "--pki",
        pki.to_str().unwrap(),
        "--model",
        "phone",
        "--out",
        dir.join("dev").to_str().unwrap(),
    ]);

    // The TAM, in this process.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let loaded = otrp_pki::fs::load_pki(&pki).unwrap();
    let tam = MiniTam::new(MiniTamKeys::from_pki(&loaded).unwrap(), "payments", "sp1").unwrap();
    tam.publish("payment-signer", &wasm("payment-signer"), 1, false)
        .unwrap();
    let flaky = Flaky {
        tam: tam.clone(),
        drops: Arc::new(AtomicUsize::new(0)),
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/tam", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/tam", post(flaky_post))
        .with_state(flaky.clone());
    rt.spawn(async move { axum::serve(listener, app).await });

    let sock_path: PathBuf = dir.join("tee.sock");
    let sock = format!("unix:{}", sock_path.display());
    let mut tee = start_tee(dir, &pki, &sock_path, "tee.log");

    // The payment app asks for its TA; one Broker session installs it.
    otrp(&[
        "client",
        "request-ta",
        "--tee",
        &sock,
        "--ta",
        "payments:payment-signer",
    ]);
    let out = otrp(&["broker", "run", "--tam", &url, "--tee", &sock, "--once"]);
    let text = stdout(&out);
    assert!(
        text.contains("installed: payments:payment-signer"),
        "{text}"
    );

    // The app has it sign a transaction; the signature verifies with the TA's key.
    let pk = hex::decode(stdout(&otrp(&[
        "client",
        "invoke",
        "--tee",
        &sock,
        "--ta",
        "payment-signer",
        "--cmd",
        "1",
    ])))
    .unwrap();
    assert_eq!(pk.len(), 65);
    let tx = b"pay 42.00 EUR to ACME, ref 7";
    let tx_file = dir.join("tx.bin");
    std::fs::write(&tx_file, tx).unwrap();
    let sig = hex::decode(stdout(&otrp(&[
        "client",
        "invoke",
        "--tee",
        &sock,
        "--ta",
        "payments:payment-signer",
        "--cmd",
        "2",
        "--data",
        &format!("@{}", tx_file.display()),
    ])))
    .unwrap();
    let key =
        otrp_crypto::PublicKey::P256(otrp_crypto::p256::PublicKey::from_sec1_bytes(&pk).unwrap());
    otrp_crypto::default_provider()
        .verify(otrp_crypto::SigAlg::P256Sha256, &key, tx, &sig)
        .unwrap();

    // A long-running Broker; the TAM drops it mid-session twice; it backs off, retries
    // with fresh sessions, and the update (seq 2) arrives exactly once.
    flaky.drops.store(2, Ordering::SeqCst);
    let v2 = wasm("smart-lock");
    tam.publish("payment-signer", &v2, 2, true).unwrap();
    let v2_digest = hex::encode(otrp_crypto::default_provider().sha256(&v2));
    let _broker = spawn(
        &[
            "broker",
            "run",
            "--tam",
            &url,
            "--tee",
            &sock,
            "--interval",
            "0.3",
            "--backoff-min",
            "0.1",
            "--backoff-max",
            "0.4",
        ],
        &dir.join("broker.log"),
    );
    wait_for("the update", Duration::from_secs(60), || {
        component_digest(&sock, "payments:payment-signer").as_deref() == Some(v2_digest.as_str())
    });
    assert_eq!(flaky.drops.load(Ordering::SeqCst), 0);

    // The TEE daemon dies (SIGKILL) and comes back; the running Broker reconnects and a
    // new version still arrives.
    drop(tee);
    tee = start_tee(dir, &pki, &sock_path, "tee2.log");
    let v3 = wasm("payment-signer");
    tam.publish("payment-signer", &v3, 3, true).unwrap();
    let v3_digest = hex::encode(otrp_crypto::default_provider().sha256(&v3));
    wait_for(
        "the update after the TEE restart",
        Duration::from_secs(60),
        || {
            component_digest(&sock, "payments:payment-signer").as_deref()
                == Some(v3_digest.as_str())
        },
    );
    let st = status(&sock);
    assert!(st["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "payments:payment-signer" && m["sequence_number"] == 3));
    // The Agent never refused anything (no replay ever reached it).
    assert_eq!(tam.stats().errors, 0, "{:?}", tam.stats());
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap();
    assert!(log.contains("session failed"), "the drops were seen: {log}");
    drop(tee);
}
