//! A fleet of 200 simulated devices converges on a mini TAM over HTTP on loopback; an
//! offline device catches up when it comes back; lossy links still converge; devices on
//! the host's crypto provider converge as well.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::{Duration, SystemTime};

use otrp_broker::mini_tam::{MiniTam, MiniTamKeys};
use otrp_broker::{Http, NetSim};
use otrp_crypto::{KeyKind, PrivateKey, SigAlg};
use otrp_fleet::{Fleet, FleetOptions, Outcome, RunOptions, TeeCrypto};
use otrp_pki::device::MgmtConfig;
use otrp_pki::{InitOptions, Pki};
use rand::SeedableRng;

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tas/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn start(tam: &MiniTam) -> (String, tokio::sync::oneshot::Sender<()>) {
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
    (url, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_converge_and_an_offline_one_catches_up() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, SystemTime::now()).unwrap();
    let fleet = Fleet::provision(&mut pki, 200, "door-lock", MgmtConfig::OemGated).unwrap();
    assert_eq!(fleet.len(), 200);
    let tam = MiniTam::new(MiniTamKeys::from_pki(&pki).unwrap(), "locks", "lockco").unwrap();
    tam.publish("smart-lock", &wasm("smart-lock"), 1, true)
        .unwrap();
    let (url, _stop) = start(&tam).await;

    let offline = fleet.device(7).unwrap().clone();
    offline.set_online(false);
    let s = fleet.run_sessions(&url, 32).await.unwrap();
    assert!(s.all_converged(), "{s}");
    assert_eq!(s.converged, 199, "{s}");
    assert_eq!(s.offline, 1);
    assert_eq!(s.installed, 199);
    assert_eq!(offline.outcome(), Outcome::Offline);
    assert!(offline.invoke("smart-lock", 3, b"").is_err());
    // Every online lock runs the TA.
    let tries = fleet
        .device(0)
        .unwrap()
        .invoke("smart-lock", 3, b"")
        .unwrap();
    assert_eq!(tries.len(), 1);

    // Update to v2 (seq 2); the offline lock comes back and gets v2 directly.
    let v2 = wasm("payment-signer");
    tam.publish("smart-lock", &v2, 2, true).unwrap();
    offline.set_online(true);
    let s = fleet.run_sessions(&url, 32).await.unwrap();
    assert!(s.all_converged(), "{s}");
    assert_eq!(s.installed, 200, "{s}");
    let digest = hex::encode(otrp_crypto::default_provider().sha256(&v2));
    for d in fleet.devices() {
        let st = d.status().unwrap();
        let c = st
            .components
            .iter()
            .find(|c| c.id == "locks:smart-lock")
            .unwrap();
        assert_eq!(c.digest, digest);
        assert_eq!(c.ta_code_digest.as_deref(), Some(digest.as_str()));
    }
    assert_eq!(tam.stats().errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_still_converge() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, SystemTime::now()).unwrap();
    let fleet = Fleet::provision(&mut pki, 20, "drone", MgmtConfig::OemGated).unwrap();
    let tam = MiniTam::new(MiniTamKeys::from_pki(&pki).unwrap(), "drones", "droneco").unwrap();
    tam.publish("geofence", &wasm("drone-geofence"), 1, true)
        .unwrap();
    let (url, _stop) = start(&tam).await;
    let http = Http::new(None, Duration::from_secs(10)).unwrap();
    let opts = RunOptions {
        concurrency: 8,
        attempts: 20,
        net: NetSim {
            delay: Duration::from_millis(2),
            loss: 0.2,
        },
        ..RunOptions::default()
    };
    let mut converged = 0;
    for _ in 0..3 {
        let s = fleet.run_with(&http, &url, &opts, None).await;
        converged = s.converged;
        if s.all_converged() {
            break;
        }
    }
    assert_eq!(converged, 20);
    for d in fleet.devices() {
        assert!(d
            .status()
            .unwrap()
            .components
            .iter()
            .any(|c| c.id == "drones:geofence"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_on_the_host_provider_converge() {
    // The dev-dependency turns ring on: `Host` is ring here, told apart from RustCrypto
    // by its ECDSA nonces (random in ring, RFC 6979 in RustCrypto).
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
    let key = PrivateKey::generate(KeyKind::P256, &mut rng).unwrap();
    let sign = |c: TeeCrypto| c.provider().sign(SigAlg::P256Sha256, &key, b"m").unwrap();
    assert_eq!(sign(TeeCrypto::RustCrypto), sign(TeeCrypto::RustCrypto));
    assert_ne!(sign(TeeCrypto::Host), sign(TeeCrypto::Host));
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, SystemTime::now()).unwrap();
    let mut opts = FleetOptions::new("door-lock", MgmtConfig::OemGated);
    opts.crypto = TeeCrypto::Host;
    let fleet = Fleet::provision_with(&mut pki, 20, &opts, None).unwrap();
    let tam = MiniTam::new(MiniTamKeys::from_pki(&pki).unwrap(), "locks", "lockco").unwrap();
    tam.publish("smart-lock", &wasm("smart-lock"), 1, true)
        .unwrap();
    let (url, _stop) = start(&tam).await;
    let s = fleet.run_sessions(&url, 8).await.unwrap();
    assert!(s.all_converged(), "{s}");
    assert_eq!(s.installed, 20, "{s}");
    for d in fleet.devices() {
        assert_eq!(d.invoke("smart-lock", 3, b"").unwrap().len(), 1);
    }
    assert_eq!(tam.stats().errors, 0);
}
