//! The OTrP batch command package (our extension, `otrp_tam::otrp_batch`,
//! `otrp_agent::otrp::batch`): the TAM builds and signs ONE package (CreateSD + InstallTA)
//! for a model whose devices share a device key; several real OTrP Agents apply it and
//! answer signed results; a replayed or older package, a tampered one, and one read by a
//! device of another model/key are refused with the device store unchanged; a package
//! whose second command fails leaves no half-created SD.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use otrp_agent::otrp::{OtrpAgent, OtrpConfig, OtrpEvent, OtrpTam};
use otrp_agent::suit_processor::{MemoryStore, ProcessorConfig};
use otrp_agent::Management;
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey};
use otrp_json::batch::{verify_batch_result, BatchResultTbs};
use otrp_json::{ErrorCode, LegacyMode, Signer, Status};
use otrp_pki::{CertKind, InitOptions, Pki};
use otrp_suit::ComponentId;
use otrp_tam::otrp_batch::{
    build_batch_package, with_oem_authorizations, BatchCommand, BatchHeader,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_800_000_000;
const TEE: &str = "OpenTrust-Sim";

fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::default_provider()
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

struct World {
    tam_key: PrivateKey,
    tamid: String,
    sp_key: PrivateKey,
    sp_cert: Vec<u8>,
    /// The model's shared device key.
    batch_key: PrivateKey,
    /// The OEM's key (it signs OEM authorizations).
    oem_key: PrivateKey,
}

fn world() -> World {
    let p = Pki::init(
        &InitOptions {
            organization: "OTrP batch test".into(),
            ..InitOptions::default()
        },
        &mut rng(1),
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW - 3600),
    )
    .unwrap();
    let tam_rec = p.first_issued(CertKind::Tam).unwrap().clone();
    let sp_rec = p.first_issued(CertKind::Sp).unwrap().clone();
    World {
        tam_key: p.private_key(&tam_rec.key).unwrap(),
        tamid: tam_rec.tamid.clone().unwrap(),
        sp_key: p.private_key(&sp_rec.key).unwrap(),
        sp_cert: p.issued_cert_der(CertKind::Sp, &sp_rec.name).unwrap(),
        batch_key: PrivateKey::generate(KeyKind::P256, &mut rng(9)).unwrap(),
        oem_key: p.oem_key().unwrap(),
    }
}

fn envelope(sp_key: &PrivateKey, seq: u64, body: &[u8]) -> Vec<u8> {
    otrp_suit::TaManifestBuilder::new(ComponentId::new([b"sd.bank".as_slice(), b"wallet"]), seq)
        .image_of(body)
        .integrated_payload("#tc", body.to_vec())
        .build_signed(provider(), sp_key, &Default::default())
        .unwrap()
        .encode()
        .unwrap()
}

/// A device of the model: its own TEE key and certificate (so its own `did`).
fn agent(w: &World, n: u8) -> OtrpAgent {
    OtrpAgent::new(
        provider(),
        OtrpConfig {
            tams: vec![OtrpTam {
                key: w.tam_key.public_key(),
                tamid: w.tamid.clone(),
                oem: true,
            }],
            oem_keys: Vec::new(),
            management: Management::OemOwnedSds,
            tee_key: PrivateKey::generate(KeyKind::P256, &mut rng(100 + u64::from(n))).unwrap(),
            tee_cert: vec![0x30, n],
            tee_cacerts: Vec::new(),
            tee_name: TEE.into(),
            tee_version: "1.0".into(),
            tfw: None,
            legacy: LegacyMode::Deny,
            max_rids: 64,
            processor: ProcessorConfig::default(),
        },
    )
}

fn commands(w: &World, ta_signer: &PrivateKey, ta_seq: u64) -> Vec<BatchCommand> {
    vec![
        BatchCommand::CreateSd {
            sdname: "sd.bank".into(),
            spid: "bank".into(),
            spcert: w.sp_cert.clone(),
            tamid: w.tamid.clone(),
        },
        BatchCommand::InstallTa {
            sdname: "sd.bank".into(),
            spid: "bank".into(),
            taid: "wallet".into(),
            tamid: w.tamid.clone(),
            envelope: envelope(ta_signer, ta_seq, b"wasm wallet v1"),
            update: false,
        },
    ]
}

fn package(w: &World, seq: u64, cmds: &[BatchCommand]) -> Vec<u8> {
    build_batch_package(
        provider(),
        &mut rng(1000 + seq),
        &[Signer::new(&w.tam_key)],
        &w.batch_key.public_key(),
        &BatchHeader {
            pkgid: "door-lock/bank".into(),
            seq,
            model: "door-lock".into(),
            tee: TEE.into(),
        },
        cmds,
    )
    .unwrap()
}

/// Applies `pkg` on `dev` with `key`; returns the verified result and the events.
fn apply(
    a: &OtrpAgent,
    dev: &mut MemoryStore,
    pkg: &[u8],
    key: &PrivateKey,
    tee_pub: &otrp_crypto::PublicKey,
) -> (BatchResultTbs, Vec<OtrpEvent>) {
    let out = a.handle_batch(dev, pkg, key, NOW, &mut rng(7));
    let res = verify_batch_result(provider(), &out.send.expect("a signed result"), tee_pub)
        .expect("the result verifies with the device's TEE key");
    (res, out.events)
}

fn tee_pub(a: &OtrpAgent) -> otrp_crypto::PublicKey {
    a.config().tee_key.public_key()
}

fn installed(a: &OtrpAgent, dev: &MemoryStore) -> bool {
    a.security_domains(dev)
        .iter()
        .any(|sd| sd.name == "sd.bank" && sd.tas.iter().any(|t| t == "wallet"))
}

#[test]
fn one_signed_package_applies_on_every_device_sharing_the_key() {
    let w = world();
    let pkg = package(&w, 1, &commands(&w, &w.sp_key, 1));
    // One JWS signature for the whole fleet; no device data inside.
    let jws = otrp_json::batch::decode_batch(&pkg).unwrap();
    assert_eq!(jws.signatures().len(), 1);
    println!("batch package: {} bytes, 1 TAM signature", pkg.len());
    let mut dids = Vec::new();
    for n in 0..3u8 {
        let a = agent(&w, n);
        let mut dev = MemoryStore::new();
        let (res, events) = apply(&a, &mut dev, &pkg, &w.batch_key, &tee_pub(&a));
        assert_eq!(res.status, Status::Pass, "{res:?}");
        assert_eq!((res.applied, res.seq), (2, 1));
        assert_eq!(res.did, a.did());
        assert!(events.contains(&OtrpEvent::SdCreated {
            name: "sd.bank".into()
        }));
        assert!(events.contains(&OtrpEvent::TaInstalled {
            sd: "sd.bank".into(),
            taid: "wallet".into()
        }));
        assert!(installed(&a, &dev));
        assert_eq!(dev.commits, 1, "one atomic commit");
        dids.push(res.did);
    }
    dids.dedup();
    assert_eq!(dids.len(), 3, "every device answered for itself");
}

#[test]
fn replayed_older_tampered_and_foreign_packages_are_refused() {
    let w = world();
    let a = agent(&w, 1);
    let mut dev = MemoryStore::new();
    let p1 = package(&w, 1, &commands(&w, &w.sp_key, 1));
    let p2 = package(
        &w,
        2,
        &[BatchCommand::InstallTa {
            sdname: "sd.bank".into(),
            spid: "bank".into(),
            taid: "wallet".into(),
            tamid: w.tamid.clone(),
            envelope: envelope(&w.sp_key, 2, b"wasm wallet v2"),
            update: true,
        }],
    );
    assert_eq!(
        apply(&a, &mut dev, &p1, &w.batch_key, &tee_pub(&a))
            .0
            .status,
        Status::Pass
    );
    // Replay of the same package.
    let before = dev.clone();
    let (res, _) = apply(&a, &mut dev, &p1, &w.batch_key, &tee_pub(&a));
    assert_eq!(
        (res.status, res.code),
        (Status::Fail, Some(ErrorCode::RequestInvalid))
    );
    assert!(res.detail.unwrap().contains("replay"));
    assert_eq!(dev, before);
    // The next package (UpdateTA) applies; then the older one is a rollback.
    assert_eq!(
        apply(&a, &mut dev, &p2, &w.batch_key, &tee_pub(&a))
            .0
            .status,
        Status::Pass
    );
    let before = dev.clone();
    let (res, _) = apply(&a, &mut dev, &p1, &w.batch_key, &tee_pub(&a));
    assert_eq!(res.status, Status::Fail);
    assert_eq!(dev, before);

    // Tampered: one payload character changed.
    let p3 = package(&w, 3, &commands(&w, &w.sp_key, 3));
    let mut bad = p3.clone();
    let at = bad.windows(10).position(|x| x == b"\"payload\":").unwrap() + 40;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    let fresh = agent(&w, 2);
    let mut dev2 = MemoryStore::new();
    let (res, _) = apply(&fresh, &mut dev2, &bad, &w.batch_key, &tee_pub(&fresh));
    assert_eq!(res.status, Status::Fail, "{res:?}");
    assert!(matches!(
        res.code,
        Some(ErrorCode::RequestInvalid | ErrorCode::TamNotTrusted)
    ));
    assert_eq!(dev2, MemoryStore::new());
    // Signed by a TAM the device does not trust.
    let rogue = PrivateKey::generate(KeyKind::P256, &mut rng(66)).unwrap();
    let w_rogue = World {
        tam_key: rogue,
        tamid: w.tamid.clone(),
        sp_key: w.sp_key.clone(),
        sp_cert: w.sp_cert.clone(),
        batch_key: w.batch_key.clone(),
        oem_key: w.oem_key.clone(),
    };
    let (res, _) = apply(
        &fresh,
        &mut dev2,
        &package(&w_rogue, 1, &commands(&w, &w.sp_key, 1)),
        &w.batch_key,
        &tee_pub(&fresh),
    );
    assert_eq!(res.code, Some(ErrorCode::TamNotTrusted), "{res:?}");
    assert_eq!(dev2, MemoryStore::new());

    // A device of another model (another shared key) cannot read it.
    let other_key = PrivateKey::generate(KeyKind::P256, &mut rng(77)).unwrap();
    let (res, _) = apply(&fresh, &mut dev2, &p3, &other_key, &tee_pub(&fresh));
    assert_eq!(res.code, Some(ErrorCode::RequestInvalid), "{res:?}");
    assert!(res.detail.unwrap().contains("batch key"));
    assert_eq!(dev2, MemoryStore::new());
    // The untouched package still applies on that device with the right key.
    assert_eq!(
        apply(&fresh, &mut dev2, &p3, &w.batch_key, &tee_pub(&fresh))
            .0
            .status,
        Status::Pass
    );
}

#[test]
fn a_failing_command_leaves_no_half_created_sd() {
    let w = world();
    let a = agent(&w, 4);
    let mut dev = MemoryStore::new();
    // The TA is signed by a key that is not the SP's: InstallTA fails after CreateSD ran.
    let wrong = PrivateKey::generate(KeyKind::P256, &mut rng(55)).unwrap();
    let pkg = package(&w, 1, &commands(&w, &wrong, 1));
    let (res, events) = apply(&a, &mut dev, &pkg, &w.batch_key, &tee_pub(&a));
    assert_eq!((res.status, res.applied), (Status::Fail, 0), "{res:?}");
    assert_eq!(res.code, Some(ErrorCode::TaInvalid), "{res:?}");
    assert!(res.detail.unwrap().contains("request 1"));
    assert!(matches!(events.as_slice(), [OtrpEvent::Refused { .. }]));
    assert_eq!(dev, MemoryStore::new(), "no SD, no TA, no sequence number");
    assert!(a.security_domains(&dev).is_empty());
    // Fixed package with the same seq: applies (the failed one consumed nothing).
    let good = package(&w, 1, &commands(&w, &w.sp_key, 1));
    assert_eq!(
        apply(&a, &mut dev, &good, &w.batch_key, &tee_pub(&a))
            .0
            .status,
        Status::Pass
    );
    assert!(installed(&a, &dev));
}

#[test]
fn the_tam_refuses_to_batch_per_device_commands() {
    let w = world();
    let err = build_batch_package(
        provider(),
        &mut rng(3),
        &[Signer::new(&w.tam_key)],
        &w.batch_key.public_key(),
        &BatchHeader {
            pkgid: "p".into(),
            seq: 1,
            model: "m".into(),
            tee: TEE.into(),
        },
        &[],
    );
    assert!(err.is_err());
    // GetDeviceState is per device: the codec refuses to sign it into a batch.
    let tbs = otrp_json::batch::BatchTbs {
        ver: "1.0".into(),
        pkgid: "p".into(),
        seq: 1,
        model: "m".into(),
        requests: vec![otrp_json::TbsRequest::GetDeviceState(
            otrp_json::GetDeviceStateTbsRequest {
                ver: "1.0".into(),
                rid: "r".into(),
                tid: "t".into(),
                ocspdat: Vec::new(),
                supportedsigalgs: None,
            },
        )],
    };
    let e = otrp_json::batch::sign_batch(provider(), &[Signer::new(&w.tam_key)], &tbs);
    assert!(e.unwrap_err().to_string().contains("cannot be batched"));
}

/// OEM-gated devices that trust the TAM as an SP's TAM: a package creating the SDs of two
/// SPs carries the OEM's authorization of each (an `oemauth` array in the signature's
/// unprotected header); every device creates both. Without the second SP's, the whole
/// package is refused (`ERR_TAM_NOT_AUTHORIZED`, request 1) and nothing is created.
#[test]
fn oem_gated_devices_create_the_sds_of_every_sp_the_package_carries_an_authorization_for() {
    let w = world();
    let gated = |n: u8| {
        let a = agent(&w, n);
        let mut c = a.config().clone();
        c.tams[0].oem = false;
        c.oem_keys = vec![w.oem_key.public_key()];
        c.management = Management::OemGated;
        OtrpAgent::new(provider(), c)
    };
    let cmds: Vec<BatchCommand> = ["bank", "shop"]
        .into_iter()
        .map(|sp| BatchCommand::CreateSd {
            sdname: format!("sd.{sp}"),
            spid: sp.into(),
            spcert: w.sp_cert.clone(),
            tamid: w.tamid.clone(),
        })
        .collect();
    let auth = |sp: &str| {
        (
            sp.to_owned(),
            otrp_agent::OemAuthorization::sign(provider(), &w.oem_key, sp, &w.tam_key.public_key())
                .unwrap(),
        )
    };
    let signed = package(&w, 1, &cmds);
    // Without any: refused on the first CreateSD.
    let a = gated(0);
    let mut dev = MemoryStore::new();
    let (res, _) = apply(&a, &mut dev, &signed, &w.batch_key, &tee_pub(&a));
    assert_eq!(res.status, Status::Fail, "{res:?}");
    assert_eq!(res.code, Some(ErrorCode::TamNotAuthorized), "{res:?}");
    // The bank's only (and an unrelated SP's, which is left out): refused on the second.
    let one = with_oem_authorizations(&signed, &cmds, &[auth("bank"), auth("other")]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
    assert!(
        v["OTrPBatchPackage"]["header"]["oemauth"].is_string(),
        "{v}"
    );
    let (res, _) = apply(&a, &mut dev, &one, &w.batch_key, &tee_pub(&a));
    assert_eq!(res.code, Some(ErrorCode::TamNotAuthorized), "{res:?}");
    assert!(
        res.detail.as_deref().unwrap_or("").starts_with("request 1"),
        "{res:?}"
    );
    assert!(a.security_domains(&dev).is_empty());
    assert_eq!(dev.commits, 0);
    // Both: an array of two; every device creates both SDs in one commit.
    let both = with_oem_authorizations(&signed, &cmds, &[auth("bank"), auth("shop")]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&both).unwrap();
    assert_eq!(
        v["OTrPBatchPackage"]["header"]["oemauth"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{v}"
    );
    for n in 0..2u8 {
        let a = gated(n);
        let mut dev = MemoryStore::new();
        let (res, events) = apply(&a, &mut dev, &both, &w.batch_key, &tee_pub(&a));
        assert_eq!(res.status, Status::Pass, "{res:?}");
        assert_eq!(res.applied, 2);
        for sd in ["sd.bank", "sd.shop"] {
            assert!(events.contains(&OtrpEvent::SdCreated { name: sd.into() }));
        }
        assert_eq!(dev.commits, 1);
    }
    // A package creating no SD is left as it is.
    let install = &commands(&w, &w.sp_key, 1)[1..];
    let pkg = package(&w, 2, install);
    assert_eq!(
        with_oem_authorizations(&pkg, install, &[auth("bank")]).unwrap(),
        pkg
    );
}
