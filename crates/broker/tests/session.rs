//! In-process sessions: mini TAM over HTTP on loopback, the Broker's session logic, and a
//! real TEE (Agent on the sealed platform store, TA runtime).
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use otrp_broker::mini_tam::{MiniTam, MiniTamKeys};
use otrp_broker::{run_session, Http, LocalTee, NetSim};
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_pki::{CertKind, InitOptions, Pki};
use otrp_tee_daemon::{TamCert, Tee, TeeOptions};
use rand::SeedableRng;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tas/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct World {
    tam: MiniTam,
    url: String,
    tee: LocalTee,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn world(seed: u64) -> World {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let now = SystemTime::now();
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, now).unwrap();
    let dev = provision(
        &mut pki,
        &ProvisionRequest::new("phone"),
        otrp_crypto::default_provider(),
        &mut rng,
        now,
    )
    .unwrap();
    let chain = pki
        .file(&pki.first_issued(CertKind::Tam).unwrap().chain.clone())
        .unwrap()
        .to_vec();
    let opts = TeeOptions {
        tams: vec![TamCert::from_pem(std::str::from_utf8(&chain).unwrap(), false).unwrap()],
        fsync: false,
        ..TeeOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let tee = Tee::boot(dev.identity, *dev.storage_key, dir.path(), &opts).unwrap();
    let tam = MiniTam::new(MiniTamKeys::from_pki(&pki).unwrap(), "payments", "sp1").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tam", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tam.clone();
    tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    // serve() sets the base URL; wait until it has.
    tokio::time::sleep(Duration::from_millis(20)).await;
    World {
        tam,
        url,
        tee: LocalTee(Arc::new(Mutex::new(tee))),
        _dir: dir,
        stop: Some(tx),
    }
}

fn http() -> Http {
    Http::new(None, Duration::from_secs(10)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_invoke_update_and_remove() {
    let mut w = world(1).await;
    w.tam
        .publish("payment-signer", &wasm("payment-signer"), 1, true)
        .unwrap();
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!(
        r.tam_messages,
        2,
        "QueryRequest and Update: {:?} {:?}",
        r.events,
        w.tam.stats()
    );
    assert_eq!(r.tee_replies, 2, "QueryResponse and Success");
    assert_eq!(r.count("installed"), 1, "{:?}", r.events);
    assert_eq!(r.count("sd-created"), 1, "{:?}", r.events);
    let pk = {
        let mut t = w.tee.0.lock().unwrap();
        t.invoke_once("payment-signer", 1, b"").unwrap()
    };
    assert_eq!(pk.len(), 65, "SEC1 public key");
    let sig = w
        .tee
        .0
        .lock()
        .unwrap()
        .invoke_once("payments:payment-signer", 2, b"pay 10 EUR")
        .unwrap();
    assert!(!sig.is_empty());

    // Nothing left to do: QueryRequest, QueryResponse, 204.
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!((r.tam_messages, r.tee_replies), (1, 1));
    assert!(r.events.is_empty());

    // Update: a new image under the same component, higher sequence number.
    let v2 = wasm("smart-lock");
    w.tam.publish("payment-signer", &v2, 2, true).unwrap();
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!(r.count("installed"), 1, "{:?}", r.events);
    let st = w.tee.0.lock().unwrap().status().unwrap();
    let c = st
        .components
        .iter()
        .find(|c| c.id == "payments:payment-signer")
        .unwrap();
    assert_eq!(c.ta_code_digest.as_deref(), Some(c.digest.as_str()));
    assert_eq!(
        c.digest,
        hex::encode(otrp_crypto::default_provider().sha256(&v2))
    );
    assert!(st.manifests.iter().any(|m| m.sequence_number == 2));

    // Removal.
    w.tam.retire("payment-signer");
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!(r.count("removed"), 1, "{:?}", r.events);
    let err = w
        .tee
        .0
        .lock()
        .unwrap()
        .invoke_once("payment-signer", 1, b"");
    assert!(err.is_err());
    assert_eq!(w.tam.stats().errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ta_and_fetch_by_uri() {
    let mut w = world(2).await;
    w.tam
        .publish_by_uri("payment-signer", &wasm("payment-signer"), 1, false)
        .unwrap();
    // Not deployed: a session installs nothing.
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert!(r.events.is_empty(), "{:?}", r.events);
    // The payment app asks for its TA: the next session fetches it by URI.
    let c = w.tam.component("payment-signer");
    w.tee.0.lock().unwrap().request_ta(c);
    assert_eq!(w.tee.0.lock().unwrap().status().unwrap().requested.len(), 1);
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!(r.fetches, 1);
    assert_eq!(r.count("installed"), 1, "{:?}", r.events);
    let st = w.tee.0.lock().unwrap().status().unwrap();
    assert!(st.requested.is_empty());
    // UnrequestTA removes it at the next session.
    let c = w.tam.component("payment-signer");
    w.tee.0.lock().unwrap().unrequest_ta(c);
    let r = run_session(&http(), &w.url, &mut w.tee).await.unwrap();
    assert_eq!(r.count("removed"), 1, "{:?}", r.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_network_never_applies_twice_and_converges() {
    let mut w = world(3).await;
    w.tam
        .publish("payment-signer", &wasm("payment-signer"), 1, true)
        .unwrap();
    let lossy = http().with_net(NetSim {
        delay: Duration::from_millis(1),
        loss: 0.3,
    });
    let mut installed = 0;
    let mut ok = 0;
    for _ in 0..60 {
        match run_session(&lossy, &w.url, &mut w.tee).await {
            Ok(r) => {
                installed += r.count("installed");
                ok += 1;
                if ok >= 3 {
                    break;
                }
            }
            Err(e) => assert!(e.to_string().contains("simulated loss"), "{e}"),
        }
    }
    assert!(ok >= 3, "sessions kept failing");
    let st = w.tee.0.lock().unwrap().status().unwrap();
    assert!(st
        .components
        .iter()
        .any(|c| c.id == "payments:payment-signer"));
    // Installed at most once per reported session, and the Agent never refused a replay.
    assert!(installed <= 1);
    assert_eq!(w.tam.stats().errors, 0);
}
