//! The Agent's store on the platform: TA mirroring in the same commit, personalization,
//! removal, the read-only TEE OS component; TA ids; local-protocol framing.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};

use otrp_suit::ComponentId;
use otrp_suit_processor::{ChangeSet, ComponentStore};
use otrp_tee_daemon::proto::{encode_frame, read_frame, Request, Response, MAX_FRAME};
use otrp_tee_daemon::store::PERSO_SEGMENT;
use otrp_tee_daemon::{os_component_id, ta_id_for, PlatformStore, TEE_IMAGE};
use otrp_tee_platform::{Platform, PlatformConfig};
use rand_chacha::rand_core::SeedableRng;

fn platform(dir: &std::path::Path) -> Arc<Mutex<Platform>> {
    let rng = Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(1));
    let cfg = PlatformConfig::new(dir, [7u8; 32], TEE_IMAGE).fsync(false);
    Arc::new(Mutex::new(Platform::open(cfg, rng).unwrap()))
}

fn id(segs: &[&[u8]]) -> ComponentId {
    ComponentId(segs.iter().map(|s| s.to_vec()).collect())
}

const WASM: &[u8] = b"\0asm\x01\0\0\0 not a real module, but it starts like one";

#[test]
fn ta_ids_and_perso_targets() {
    assert_eq!(
        ta_id_for(&id(&[b"payments", b"payment-signer"]))
            .unwrap()
            .as_str(),
        "payments:payment-signer"
    );
    assert_eq!(
        ta_id_for(&id(&[b"sd", &[0xde, 0xad]])).unwrap().as_str(),
        "sd:xdead"
    );
    let long = vec![b'a'; 200];
    assert!(ta_id_for(&id(&[&long])).unwrap().as_str().starts_with("h:"));
    assert_eq!(
        id(&[b"drones", b"geofence", PERSO_SEGMENT]).perso_target(),
        Some(id(&[b"drones", b"geofence"]))
    );
    assert_eq!(id(&[PERSO_SEGMENT]).perso_target(), None);
    assert_eq!(id(&[b"drones", b"geofence"]).perso_target(), None);
}

#[test]
fn one_commit_installs_personalizes_and_removes_the_ta() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path());
    let mut store = PlatformStore::open(p.clone()).unwrap();
    let ta = id(&[b"drones", b"geofence"]);
    let perso = id(&[b"drones", b"geofence", PERSO_SEGMENT]);
    let mut c = ChangeSet::default();
    c.images.insert(ta.clone(), Some(WASM.to_vec()));
    c.images.insert(perso.clone(), Some(b"zone list".to_vec()));
    c.state.insert("agent/tokens".into(), Some(vec![1, 2, 3]));
    store.commit(c).unwrap();
    {
        let mut pl = p.lock().unwrap();
        assert_eq!(
            pl.get("ta/drones:geofence/code").unwrap().as_deref(),
            Some(WASM)
        );
        assert_eq!(
            pl.get("ta/drones:geofence/perso").unwrap().as_deref(),
            Some(&b"zone list"[..])
        );
        assert!(
            pl.public_key("ta/drones:geofence").is_ok(),
            "per-TA key made at install"
        );
    }
    assert_eq!(store.image(&ta).unwrap().as_deref(), Some(WASM));
    assert_eq!(store.state("agent/tokens").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(
        store.state_keys("agent/").unwrap(),
        vec!["agent/tokens".to_string()]
    );
    // A reopened store sees the same (the index is rebuilt from the sealed objects).
    drop(store);
    let mut store = PlatformStore::open(p.clone()).unwrap();
    assert_eq!(store.component_ids().unwrap().len(), 3, "tee-os, TA, perso");
    // Removing the TA removes its code, storage and key in the same commit.
    p.lock()
        .unwrap()
        .put("ta/drones:geofence/data/00", b"x")
        .unwrap();
    let mut c = ChangeSet::default();
    c.images.insert(ta.clone(), None);
    c.images.insert(perso, None);
    store.commit(c).unwrap();
    let mut pl = p.lock().unwrap();
    assert!(pl.list("ta/drones:geofence/").unwrap().is_empty());
    assert!(pl.public_key("ta/drones:geofence").is_err());
    drop(pl);
    assert_eq!(store.image(&ta).unwrap(), None);
}

#[test]
fn the_tee_os_is_reported_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = PlatformStore::open(platform(dir.path())).unwrap();
    let os = os_component_id();
    assert_eq!(store.manifest_ids().unwrap(), vec![os.clone()]);
    assert_eq!(store.image(&os).unwrap().as_deref(), Some(TEE_IMAGE));
    assert_eq!(
        store.manifest(&os).unwrap().unwrap().components,
        vec![os.clone()]
    );
    let mut c = ChangeSet::default();
    c.images.insert(os.clone(), None);
    let err = store.commit(c).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(store.image(&os).unwrap().as_deref(), Some(TEE_IMAGE));
}

#[tokio::test]
async fn frames_round_trip_and_oversized_ones_are_refused() {
    let req = Request::Invoke {
        session: 3,
        cmd: 2,
        data: vec![0xab; 100],
    };
    let bytes = encode_frame(&req).unwrap();
    let mut r = bytes.as_slice();
    let back: Option<Request> = read_frame(&mut r).await.unwrap();
    assert_eq!(back, Some(req));
    // End of stream before a frame: None.
    let mut empty: &[u8] = &[];
    assert_eq!(read_frame::<_, Request>(&mut empty).await.unwrap(), None);
    // A length over the limit is refused before reading the body.
    let len = u32::try_from(MAX_FRAME + 1).unwrap().to_be_bytes();
    let mut big = len.as_slice();
    assert!(read_frame::<_, Request>(&mut big).await.is_err());
    // Garbage is a protocol error, not a panic.
    let mut junk: &[u8] = &[0, 0, 0, 3, 0xff, 0xff, 0xff];
    assert!(read_frame::<_, Response>(&mut junk).await.is_err());
}
