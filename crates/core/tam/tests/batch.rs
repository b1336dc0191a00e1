//! Batch mode: one TAM-signed package (CreateSD + InstallTA as SUIT manifests, payload
//! encrypted to the batch key) applied by 100 real Agents of the batch; devices of other
//! batches cannot use it; older packages are refused; reports come back asynchronously.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pair;

use otrp_agent::{BatchMembership, BatchOutcome, BatchRefusal};
use otrp_cose::SignOptions;
use otrp_crypto::{KeyKind, PrivateKey};
use otrp_suit::{ComponentId, TaManifestBuilder};
use otrp_tam::batch::{
    build_package, encrypt_for_batch, record_reports, record_reports_with, verify_report,
    verify_reports, BatchError, BatchFetch, BatchPackage, BatchPublisher, CountingProvider,
    ReportAuth, ReportContext,
};
use otrp_teep::ErrCode;
use pair::*;
use rand_chacha::rand_core::SeedableRng;

const BATCH: &str = "lot-7";

fn component() -> ComponentId {
    ComponentId::new([&b"sd-a"[..], b"app"])
}

fn image(v: u64) -> Vec<u8> {
    let mut img = format!("\0asm smart-lock TA v{v} ").into_bytes();
    img.resize(1024, b'x');
    img
}

fn batch_key(seed: u64) -> PrivateKey {
    key(seed, KeyKind::P256)
}

fn p256(k: &PrivateKey) -> otrp_crypto::p256::SecretKey {
    match k {
        PrivateKey::P256(sk) => sk.clone(),
        _ => panic!("P-256 expected"),
    }
}

fn p256_pub(k: &PrivateKey) -> otrp_crypto::p256::PublicKey {
    p256(k).public_key()
}

/// The SP's TA manifest for version `v`, payload encrypted to `batch`'s key.
fn ta_manifest(signer: &PrivateKey, batch: &PrivateKey, v: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(v);
    encrypt_for_batch(
        TaManifestBuilder::new(component(), v).uninstall(true),
        agent_provider(),
        &mut rng,
        &image(v),
        BATCH,
        &p256_pub(batch),
    )
    .expect("encryption")
    .build_signed(agent_provider(), signer, &SignOptions::default())
    .expect("signing")
    .encode()
    .expect("encoding")
}

fn signer() -> PrivateKey {
    key(55, KeyKind::P256)
}

/// Package `seq`: SD creation + TA version `v`, signed by the TAM through `provider`.
fn package(
    provider: &dyn otrp_crypto::CryptoProvider,
    batch: &PrivateKey,
    seq: u64,
    v: u64,
) -> BatchPackage {
    let sd = sd_manifest(b"sd-a", "sp-a", vec![signer().public_key()], 1);
    build_package(
        provider,
        &tam_keys().p256,
        BATCH,
        seq,
        vec![sd, ta_manifest(&signer(), batch, v)],
        vec![],
    )
    .expect("package")
}

fn tam_public() -> Vec<otrp_crypto::PublicKey> {
    vec![
        tam_keys().p256.public_key(),
        tam_keys().ed25519.public_key(),
    ]
}

fn member(id: &str, k: &PrivateKey) -> BatchMembership {
    BatchMembership {
        id: id.into(),
        key: p256(k),
        report: None,
    }
}

/// The batch's report master in these tests.
const MASTER: [u8; 32] = [0x42; 32];

/// `member` with the report key the OEM derives for `dev` from `master`.
fn member_with_report_key(
    id: &str,
    k: &PrivateKey,
    dev: &Device,
    master: &[u8; 32],
) -> BatchMembership {
    BatchMembership {
        report: Some(otrp_agent::ReportKey {
            device_id: dev.ueid.clone(),
            key: otrp_crypto::report_key::derive(agent_provider(), master, id, &dev.ueid)
                .expect("derive"),
        }),
        ..member(id, k)
    }
}

#[test]
fn option_label_is_the_same_on_both_sides() {
    assert_eq!(
        otrp_tam::batch::BATCH_OPTION,
        otrp_agent::batch::BATCH_OPTION
    );
}

#[tokio::test]
async fn one_package_is_applied_by_a_hundred_devices_of_the_batch() {
    let bk = batch_key(700);
    let mut devices: Vec<Device> = (0..100)
        .map(|i| Device::new(1000 + i, &tam_public(), vec![]))
        .collect();
    let w = World::new(&devices.iter().collect::<Vec<_>>()).await;
    let counting: &'static CountingProvider = Box::leak(Box::new(CountingProvider::new(
        otrp_crypto::default_provider(),
    )));
    // The SP's manifest and the SD manifest are made before; the TAM signs once here.
    let sd = sd_manifest(b"sd-a", "sp-a", vec![signer().public_key()], 1);
    let ta = ta_manifest(&signer(), &bk, 1);
    let pkg =
        build_package(counting, &tam_keys().p256, BATCH, 1, vec![sd, ta], vec![]).expect("package");
    assert_eq!(counting.signatures(), 1, "one TAM signature per batch");
    let publisher = BatchPublisher::new();
    publisher.publish(pkg.clone()).expect("publish");
    let m = member(BATCH, &bk);
    for dev in &mut devices {
        let fetched = publisher.get(BATCH, None);
        assert_eq!(fetched.http_status(), 200);
        assert_eq!(fetched.body(), pkg.bytes.as_slice(), "identical bytes");
        assert!(fetched.http_headers().contains(&("etag", pkg.etag.clone())));
        match dev.agent.handle_batch(&m, fetched.body(), NOW) {
            BatchOutcome::Applied { sequence, .. } => assert_eq!(sequence, 1),
            other => panic!("expected Applied, got {other:?}"),
        }
        assert_eq!(dev.image(&component()), Some(image(1)));
        assert_eq!(dev.agent.batch_sequence(BATCH), Some(1));
        // The asynchronous report: verified by the TAM against the bound Agent key.
        let reports = dev.agent.batch_reports();
        assert_eq!(reports.len(), 1);
        let r = verify_report(w.store.as_ref(), agent_provider(), &reports[0].message)
            .await
            .expect("report");
        assert!(r.success);
        assert_eq!(r.device_id, hex::encode(&dev.ueid));
        assert!(!r.suit_reports.is_empty());
        dev.agent.ack_batch_report(BATCH, 1).expect("ack");
        assert!(dev.agent.batch_reports().is_empty());
    }
    assert_eq!(counting.signatures(), 1, "no signature per device");
    // A cache revalidating with the ETag gets 304; CoAP likewise with its ETag option.
    assert_eq!(publisher.get(BATCH, Some(&pkg.etag)).http_status(), 304);
    assert!(matches!(
        publisher.coap_get(BATCH, &[&pkg.coap_etag[..]]),
        BatchFetch::NotModified { .. }
    ));
    assert_eq!(publisher.get("lot-8", None).http_status(), 404);
}

/// Checks that verifying `bodies` as one group gives each the outcome it gets alone.
async fn grouped_as_alone(w: &World, bodies: &[&[u8]]) {
    let verified = verify_reports(w.store.as_ref(), agent_provider(), bodies)
        .await
        .expect("store");
    assert_eq!(verified.len(), bodies.len());
    for (i, (v, body)) in verified.iter().zip(bodies).enumerate() {
        let alone = verify_report(w.store.as_ref(), agent_provider(), body).await;
        match (v, &alone) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "report {i}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "report {i}"),
            other => panic!("report {i}: grouped and single verification differ: {other:?}"),
        }
    }
}

/// The report a device queues after handling package `pkg` as a member of `m`.
fn report_of(dev: &mut Device, m: &BatchMembership, pkg: &BatchPackage) -> Vec<u8> {
    let _ = dev.agent.handle_batch(m, &pkg.bytes, NOW);
    let reports = dev.agent.batch_reports();
    assert_eq!(reports.len(), 1);
    reports[0].message.clone()
}

/// A group of reports verified with one key lookup and recorded with one write: good
/// ones (Success and Error), a forged one, one signed by an Agent key the TAM never bound,
/// a signed message that is no report and bytes that are no COSE message. Each gets its
/// own outcome, the same as verifying it alone; only the good ones are recorded.
#[tokio::test]
async fn a_group_of_reports_fails_only_its_bad_reports() {
    let bk = batch_key(700);
    let pkg = package(otrp_crypto::default_provider(), &bk, 1, 1);
    let m = member(BATCH, &bk);
    let mut good: Vec<Device> = (0..3)
        .map(|i| Device::new(3000 + i, &tam_public(), vec![]))
        .collect();
    let mut failing = Device::new(3010, &tam_public(), vec![]);
    let mut stranger = Device::new(3020, &tam_public(), vec![]);
    let mut bound: Vec<&Device> = good.iter().collect();
    bound.push(&failing);
    let w = World::new(&bound).await;
    let ok: Vec<Vec<u8>> = good.iter_mut().map(|d| report_of(d, &m, &pkg)).collect();
    // Another batch key: the payload does not decrypt, the device reports an Error.
    let error = report_of(&mut failing, &member(BATCH, &batch_key(800)), &pkg);
    let unknown = report_of(&mut stranger, &m, &pkg);
    let mut forged = ok[0].clone();
    *forged.last_mut().expect("signature") ^= 0x01;
    let not_a_report = otrp_teep::signed::sign1(
        agent_provider(),
        &good[1].agent_key,
        &otrp_teep::TeepMessage::Update(otrp_teep::Update::new()),
        otrp_crypto::AlgIdGeneration::New,
    )
    .expect("signed Update");
    let bodies: Vec<&[u8]> = vec![
        &ok[0],
        &forged,
        &unknown,
        &ok[1],
        &not_a_report,
        &error,
        &ok[2],
        b"no COSE message",
    ];
    grouped_as_alone(&w, &bodies).await;
    let outcomes = record_reports(
        w.store.as_ref(),
        agent_provider(),
        BATCH,
        1,
        &bodies,
        NOW + 5,
    )
    .await
    .expect("store");
    let device = |d: &Device| hex::encode(&d.ueid);
    let expect_ok = |i: usize, dev: &Device, success: bool| match &outcomes[i] {
        Ok(r) => {
            assert_eq!(r.device_id, device(dev));
            assert_eq!(r.success, success);
        }
        Err(e) => panic!("report {i} refused: {e}"),
    };
    let expect_refused = |i: usize, why: &str| match &outcomes[i] {
        Err(BatchError::Report(e)) => assert!(e.contains(why), "report {i}: {e}"),
        other => panic!("report {i}: expected a refusal ({why}), got {other:?}"),
    };
    expect_ok(0, &good[0], true);
    expect_refused(1, "");
    expect_refused(2, "unknown Agent kid");
    expect_ok(3, &good[1], true);
    expect_refused(4, "a report is a Success or an Error");
    expect_ok(5, &failing, false);
    expect_ok(6, &good[2], true);
    expect_refused(7, "");
    match &outcomes[5] {
        Ok(r) => assert!(r.detail.starts_with("err-code "), "{}", r.detail),
        Err(e) => panic!("{e}"),
    }
    // Only the four good reports are recorded, once each, at the time given.
    let mut want: Vec<(String, bool)> = good.iter().map(|d| (device(d), true)).collect();
    want.push((device(&failing), false));
    want.sort();
    let recorded = w.store.batch_reports(BATCH, 1).await.expect("reports");
    assert_eq!(
        recorded
            .iter()
            .map(|r| (r.device_id.clone(), r.success))
            .collect::<Vec<_>>(),
        want
    );
    assert!(recorded.iter().all(|r| r.received_at == NOW + 5));
    assert!(!recorded.iter().any(|r| r.device_id == device(&stranger)));
    // A group with nothing good writes nothing.
    let none = record_reports(
        w.store.as_ref(),
        agent_provider(),
        BATCH,
        2,
        &[&forged, &unknown],
        NOW,
    )
    .await
    .expect("store");
    assert!(none.iter().all(Result::is_err));
    assert!(w
        .store
        .batch_reports(BATCH, 2)
        .await
        .expect("reports")
        .is_empty());
}

/// Devices provisioned with report keys MAC their reports: the TAM, holding the batch's
/// report master, checks each with one HMAC and no signature and records it under the
/// device id the report names, without the device's Agent key being bound. A MAC'd report
/// is refused when the TAM has no master for the batch, under another master, for another
/// package (the MAC covers batch id and sequence number), with a tampered tag or payload,
/// or when it names another device; signed reports in the same group are still checked
/// against their bound keys.
#[tokio::test]
async fn mac_reports_are_checked_with_the_batch_report_master() {
    let bk = batch_key(700);
    let pkg = package(otrp_crypto::default_provider(), &bk, 1, 1);
    let mut maced: Vec<Device> = (0..3)
        .map(|i| Device::new(4000 + i, &tam_public(), vec![]))
        .collect();
    let mut signer_dev = Device::new(4010, &tam_public(), vec![]);
    let mut failing = Device::new(4020, &tam_public(), vec![]);
    // Only the signing device is bound: MAC'd reports need no Agent key at the TAM.
    let w = World::new(&[&signer_dev]).await;
    let mut ok = Vec::new();
    for d in &mut maced {
        let m = member_with_report_key(BATCH, &bk, d, &MASTER);
        ok.push(report_of(d, &m, &pkg));
    }
    assert!(ok.iter().all(|r| r[0] == 0xd1), "COSE_Mac0 (tag 17)");
    let signed = report_of(&mut signer_dev, &member(BATCH, &bk), &pkg);
    assert_eq!(signed[0], 0xd2, "COSE_Sign1 (tag 18)");
    // A 32-byte tag and a 17-byte UEID kid against a 64-byte signature and a
    // 32-byte thumbprint kid: 48 bytes fewer for the same Success.
    assert_eq!(
        signed.len() - ok[0].len(),
        48,
        "{} vs {}",
        signed.len(),
        ok[0].len()
    );
    // Another batch key: the payload does not decrypt; the Error is MAC'd too.
    let fm = member_with_report_key(BATCH, &batch_key(800), &failing, &MASTER);
    let error = report_of(&mut failing, &fm, &pkg);
    let counting: &'static CountingProvider = Box::leak(Box::new(CountingProvider::new(
        otrp_crypto::default_provider(),
    )));
    let ctx = ReportContext {
        batch_id: BATCH,
        seq: 1,
        master: Some(&MASTER),
    };
    let bodies: Vec<&[u8]> = vec![&ok[0], &signed, &ok[1], &error, &ok[2]];
    let out = record_reports_with(w.store.as_ref(), counting, &ctx, &bodies, NOW + 3)
        .await
        .expect("store");
    assert_eq!(
        counting.verifications(),
        1,
        "one signature check: the signed report"
    );
    let ids: Vec<(String, bool)> = out
        .iter()
        .map(|o| {
            let r = o.as_ref().expect("recorded");
            (r.device_id.clone(), r.success)
        })
        .collect();
    let auths: Vec<ReportAuth> = out.iter().flatten().map(|r| r.auth).collect();
    use ReportAuth::{Mac, Signature};
    assert_eq!(auths, vec![Mac, Signature, Mac, Mac, Mac]);
    let hexid = |d: &Device| hex::encode(&d.ueid);
    assert_eq!(
        ids,
        vec![
            (hexid(&maced[0]), true),
            (hexid(&signer_dev), true),
            (hexid(&maced[1]), true),
            (hexid(&failing), false),
            (hexid(&maced[2]), true),
        ]
    );
    let recorded = w.store.batch_reports(BATCH, 1).await.expect("reports");
    assert_eq!(recorded.len(), 5);
    // Refusals, each naming what is wrong; nothing of them is recorded.
    let refused = |ctx: ReportContext<'static>, body: Vec<u8>, why: &'static str| {
        let store = w.store.clone();
        async move {
            let out = record_reports_with(store.as_ref(), agent_provider(), &ctx, &[&body], NOW)
                .await
                .expect("store");
            match &out[0] {
                Err(BatchError::Report(e)) => assert!(e.contains(why), "{e}"),
                other => panic!("expected a refusal ({why}), got {other:?}"),
            }
        }
    };
    static OTHER: [u8; 32] = [0x43; 32];
    static M: [u8; 32] = MASTER;
    let at = |seq, master| ReportContext {
        batch_id: BATCH,
        seq,
        master,
    };
    refused(at(2, None), ok[0].clone(), "has no report master for batch").await;
    refused(at(2, Some(&OTHER)), ok[0].clone(), "does not verify").await;
    refused(at(2, Some(&M)), ok[0].clone(), "does not verify").await; // another package
    let mut tag = ok[0].clone();
    *tag.last_mut().expect("tag") ^= 1;
    refused(at(2, Some(&M)), tag, "does not verify").await;
    // A report naming another device: that device's key does not verify it.
    let mut mac = otrp_cose::parse_mac0(&ok[0]).expect("mac0");
    mac.unprotected.key_id = maced[1].ueid.clone();
    let renamed = otrp_cose::coset::TaggedCborSerializable::to_tagged_vec(mac).expect("encode");
    refused(at(1, Some(&M)), renamed, "does not verify").await;
    let mut mac = otrp_cose::parse_mac0(&ok[0]).expect("mac0");
    mac.unprotected.key_id.clear();
    let anonymous = otrp_cose::coset::TaggedCborSerializable::to_tagged_vec(mac).expect("encode");
    refused(at(1, Some(&M)), anonymous, "names its device").await;
    assert!(w.store.batch_reports(BATCH, 2).await.expect("r").is_empty());
    // `record_reports` (no master) refuses MAC'd reports and still takes signed ones.
    let plain = record_reports(
        w.store.as_ref(),
        agent_provider(),
        BATCH,
        1,
        &[&ok[0], &signed],
        NOW,
    )
    .await
    .expect("store");
    assert!(plain[0].is_err() && plain[1].is_ok());
}

/// Reports signed with Ed25519 Agent keys are checked together: a group of good ones
/// gets the outcomes each gets alone; one bad report among them (a flipped signature bit,
/// a flipped payload bit) fails the batch check and then only itself; a P-256 report and
/// groups below the batch threshold are checked one by one, with the same outcomes.
#[tokio::test]
async fn ed25519_reports_are_checked_together_and_a_bad_one_fails_only_itself() {
    let bk = batch_key(700);
    let pkg = package(otrp_crypto::default_provider(), &bk, 1, 1);
    let m = member(BATCH, &bk);
    let mut ed: Vec<Device> = (0..8)
        .map(|i| Device::with_agent_key(4000 + i, &tam_public(), vec![], KeyKind::Ed25519))
        .collect();
    let mut p256 = Device::new(4100, &tam_public(), vec![]);
    let mut bound: Vec<&Device> = ed.iter().collect();
    bound.push(&p256);
    let w = World::new(&bound).await;
    let ok: Vec<Vec<u8>> = ed.iter_mut().map(|d| report_of(d, &m, &pkg)).collect();
    let p256_report = report_of(&mut p256, &m, &pkg);
    let mut bad_sig = ok[2].clone();
    *bad_sig.last_mut().expect("signature") ^= 0x01;
    let mut bad_payload = ok[5].clone();
    let at = bad_payload.len() - 70;
    bad_payload[at] ^= 0x01;

    let good: Vec<&[u8]> = ok.iter().map(Vec::as_slice).collect();
    let mut mixed = good.clone();
    mixed[2] = &bad_sig;
    mixed.insert(4, &p256_report);
    mixed[6] = &bad_payload;
    let few: Vec<&[u8]> = good[..otrp_tam::batch::MIN_ED25519_BATCH - 1].to_vec();
    for bodies in [&good, &mixed, &few] {
        grouped_as_alone(&w, bodies).await;
    }
    // Which signatures were checked one by one (the counting provider sees those, not a
    // batch check): none of the good group, all of the mixed one after its batch check
    // failed, all of a group below the threshold.
    let counting: &'static CountingProvider =
        Box::leak(Box::new(CountingProvider::new(agent_provider())));
    let mut singly = Vec::new();
    for bodies in [&good, &mixed, &few] {
        counting.reset();
        let verified = verify_reports(w.store.as_ref(), counting, bodies)
            .await
            .expect("store");
        singly.push(counting.verifications());
        if bodies.len() == mixed.len() {
            let refused: Vec<usize> = (0..mixed.len()).filter(|&i| verified[i].is_err()).collect();
            assert_eq!(refused, vec![2, 6], "only the two bad reports fail");
            assert!(verified.iter().flatten().all(|r| r.success));
        } else {
            assert!(verified.iter().all(Result::is_ok));
        }
    }
    assert_eq!(singly, vec![0, mixed.len() as u64, few.len() as u64]);
}

#[tokio::test]
async fn a_device_of_another_batch_cannot_use_the_package() {
    let bk = batch_key(700);
    let other = batch_key(800);
    let pkg = package(otrp_crypto::default_provider(), &bk, 1, 1);
    // Another batch id: refused before processing.
    let mut dev = Device::new(2000, &tam_public(), vec![]);
    let before = dev.agent.store().clone();
    assert_eq!(
        dev.agent
            .handle_batch(&member("lot-8", &other), &pkg.bytes, NOW),
        BatchOutcome::Refused(BatchRefusal::OtherBatch { id: BATCH.into() })
    );
    assert_eq!(*dev.agent.store(), before);
    // The right id but another batch's key: the payload does not decrypt, nothing is
    // installed, the package is not marked applied, and an Error report is queued.
    let mut dev = Device::new(2001, &tam_public(), vec![]);
    match dev
        .agent
        .handle_batch(&member(BATCH, &other), &pkg.bytes, NOW)
    {
        BatchOutcome::Failed { code, .. } => {
            assert_eq!(code, ErrCode::ManifestProcessingFailed)
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(dev.image(&component()), None);
    assert!(dev.agent.security_domains().is_empty());
    assert_eq!(dev.agent.batch_sequence(BATCH), None);
    assert_eq!(dev.agent.batch_reports().len(), 1);
}

#[tokio::test]
async fn replayed_older_packages_are_refused() {
    let bk = batch_key(700);
    let m = member(BATCH, &bk);
    let p = otrp_crypto::default_provider();
    let pkg1 = package(p, &bk, 1, 1);
    let pkg2 = package(p, &bk, 2, 2);
    let mut dev = Device::new(3000, &tam_public(), vec![]);
    assert!(matches!(
        dev.agent.handle_batch(&m, &pkg1.bytes, NOW),
        BatchOutcome::Applied { .. }
    ));
    assert!(matches!(
        dev.agent.handle_batch(&m, &pkg2.bytes, NOW + 1),
        BatchOutcome::Applied { .. }
    ));
    assert_eq!(dev.image(&component()), Some(image(2)));
    let before = dev.agent.store().clone();
    assert_eq!(
        dev.agent.handle_batch(&m, &pkg1.bytes, NOW + 2),
        BatchOutcome::Refused(BatchRefusal::Rollback {
            sequence: 1,
            applied: 2
        })
    );
    assert_eq!(
        dev.agent.handle_batch(&m, &pkg2.bytes, NOW + 2),
        BatchOutcome::Refused(BatchRefusal::AlreadyApplied { sequence: 2 })
    );
    assert_eq!(*dev.agent.store(), before);
    // A newer package number cannot smuggle in an older TA: the SUIT sequence refuses it.
    let pkg3 = package(p, &bk, 3, 1);
    assert!(matches!(
        dev.agent.handle_batch(&m, &pkg3.bytes, NOW + 3),
        BatchOutcome::Failed { .. }
    ));
    assert_eq!(dev.image(&component()), Some(image(2)));
    assert_eq!(dev.agent.batch_sequence(BATCH), Some(2));
    // A token-bearing or untrusted package is no batch package.
    let rogue = build_package(
        p,
        &key(999, KeyKind::P256),
        BATCH,
        9,
        vec![vec![0xa0]],
        vec![],
    )
    .expect("package");
    assert!(matches!(
        dev.agent.handle_batch(&m, &rogue.bytes, NOW + 4),
        BatchOutcome::Refused(BatchRefusal::Untrusted(_))
    ));
    // The publisher refuses a package that does not move the batch forward.
    let publisher = BatchPublisher::new();
    publisher.publish(pkg2).expect("publish");
    assert!(publisher.publish(pkg1).is_err());
}

// --- data (personalization for the whole batch) ------------------------------------------

fn data_id() -> ComponentId {
    component().perso()
}

fn zones(v: u64) -> Vec<u8> {
    format!("{{\"version\": {v}, \"zones\": []}}").into_bytes()
}

/// The SP's data manifest `v` for the TA, encrypted to `batch`'s key (or, with
/// `encrypted = false`, carried in plaintext).
fn data_manifest(batch: &PrivateKey, v: u64, encrypted: bool) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(100 + v);
    let b = TaManifestBuilder::new(data_id(), v);
    let b = if encrypted {
        encrypt_for_batch(
            b,
            agent_provider(),
            &mut rng,
            &zones(v),
            BATCH,
            &p256_pub(batch),
        )
        .expect("encryption")
    } else {
        b.image_of(&zones(v)).integrated_payload("#tc", zones(v))
    };
    b.build_signed(agent_provider(), &signer(), &SignOptions::default())
        .expect("signing")
        .encode()
        .expect("encoding")
}

fn sd() -> Vec<u8> {
    sd_manifest(b"sd-a", "sp-a", vec![signer().public_key()], 1)
}

fn signed(seq: u64, manifests: Vec<Vec<u8>>, unneeded: Vec<otrp_teep::ComponentId>) -> Vec<u8> {
    build_package(
        otrp_crypto::default_provider(),
        &tam_keys().p256,
        BATCH,
        seq,
        manifests,
        unneeded,
    )
    .expect("package")
    .bytes
}

#[test]
fn the_tam_accepts_only_data_encrypted_to_the_batch() {
    use otrp_tam::batch::{check_data_for_batch, BatchError};
    let bk = batch_key(700);
    check_data_for_batch(&data_manifest(&bk, 1, true), BATCH).expect("encrypted to the batch");
    for (env, batch) in [
        // Plaintext: anyone fetching the public package could read it.
        (data_manifest(&bk, 1, false), BATCH),
        // Encrypted, but to another batch's kid.
        (data_manifest(&bk, 1, true), "lot-8"),
        // Not a SUIT envelope.
        (vec![0xa0], BATCH),
    ] {
        assert!(
            matches!(
                check_data_for_batch(&env, batch),
                Err(BatchError::DataNotEncrypted { .. })
            ),
            "{batch}"
        );
    }
}

#[test]
fn fleet_data_is_installed_for_the_ta_identically_on_every_device() {
    let bk = batch_key(700);
    let m = member(BATCH, &bk);
    let mut devices: Vec<Device> = (0..5)
        .map(|i| Device::new(4000 + i, &tam_public(), vec![]))
        .collect();
    let publisher = BatchPublisher::new();
    // Package 1: the SD, the TA and its data v1; package 2: data v2 alone.
    let p1 = signed(
        1,
        vec![
            sd(),
            ta_manifest(&signer(), &bk, 1),
            data_manifest(&bk, 1, true),
        ],
        vec![],
    );
    let p2 = signed(2, vec![sd(), data_manifest(&bk, 2, true)], vec![]);
    for (seq, pkg) in [(1u64, &p1), (2, &p2)] {
        let built = BatchPackage {
            batch_id: BATCH.into(),
            sequence: seq,
            etag: format!("\"{seq}\""),
            coap_etag: [0; 8],
            bytes: pkg.clone(),
        };
        publisher.publish(built).expect("publish");
        for dev in &mut devices {
            let fetched = publisher.get(BATCH, None);
            assert_eq!(fetched.body(), pkg.as_slice(), "identical bytes");
            match dev.agent.handle_batch(&m, fetched.body(), NOW + seq) {
                BatchOutcome::Applied { sequence, .. } => assert_eq!(sequence, seq),
                other => panic!("package {seq}: expected Applied, got {other:?}"),
            }
            assert_eq!(dev.image(&data_id()), Some(zones(seq)));
            assert_eq!(dev.image(&component()), Some(image(1)));
        }
    }
    let dev = &mut devices[0];
    // Replaying package 1 (data v1) changes nothing.
    let before = dev.agent.store().clone();
    assert_eq!(
        dev.agent.handle_batch(&m, &p1, NOW + 5),
        BatchOutcome::Refused(BatchRefusal::Rollback {
            sequence: 1,
            applied: 2
        })
    );
    assert_eq!(*dev.agent.store(), before);
    // A tampered package (one byte of the signed payload changed) changes nothing.
    let mut tampered = p2.clone();
    let at = tampered.len() - 80;
    tampered[at] ^= 1;
    assert!(matches!(
        dev.agent.handle_batch(&m, &tampered, NOW + 5),
        BatchOutcome::Refused(_)
    ));
    assert_eq!(*dev.agent.store(), before);
    // A newer package cannot bring older data: the data manifest's own sequence refuses.
    let p3 = signed(3, vec![sd(), data_manifest(&bk, 1, true)], vec![]);
    assert!(matches!(
        dev.agent.handle_batch(&m, &p3, NOW + 6),
        BatchOutcome::Failed { .. }
    ));
    assert_eq!(dev.image(&data_id()), Some(zones(2)));
    assert_eq!(dev.agent.batch_sequence(BATCH), Some(2));
}

#[test]
fn data_for_a_ta_the_device_lacks_is_refused_and_reported() {
    let bk = batch_key(700);
    let m = member(BATCH, &bk);
    // A device that never got the TA: the data-only package fails, nothing changes but
    // the queued Error report, and the package is not marked applied.
    let mut dev = Device::new(5000, &tam_public(), vec![]);
    let data_only = signed(1, vec![sd(), data_manifest(&bk, 1, true)], vec![]);
    match dev.agent.handle_batch(&m, &data_only, NOW) {
        BatchOutcome::Failed { code, detail, .. } => {
            assert_eq!(code, ErrCode::ManifestProcessingFailed);
            assert!(detail.contains("neither installed"), "{detail}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(dev.image(&data_id()), None);
    assert!(
        dev.agent.security_domains().is_empty(),
        "the SD came with the failed package"
    );
    assert_eq!(dev.agent.batch_sequence(BATCH), None);
    assert_eq!(dev.agent.batch_reports().len(), 1);
    // The next package brings the TA too: both are installed.
    let with_ta = signed(
        2,
        vec![
            sd(),
            ta_manifest(&signer(), &bk, 1),
            data_manifest(&bk, 1, true),
        ],
        vec![],
    );
    assert!(matches!(
        dev.agent.handle_batch(&m, &with_ta, NOW + 1),
        BatchOutcome::Applied { .. }
    ));
    assert_eq!(dev.image(&data_id()), Some(zones(1)));
    // A package removing the TA cannot install data for it.
    let removing = signed(
        3,
        vec![data_manifest(&bk, 2, true)],
        vec![otrp_teep::ComponentId::new(component().segments().to_vec())],
    );
    match dev.agent.handle_batch(&m, &removing, NOW + 2) {
        BatchOutcome::Failed { detail, .. } => {
            assert!(detail.contains("neither installed"), "{detail}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(dev.image(&data_id()), Some(zones(1)));
    assert_eq!(dev.image(&component()), Some(image(1)));
    assert_eq!(dev.agent.batch_sequence(BATCH), Some(2));
    // Error, Success, Error: every outcome is reported.
    assert_eq!(dev.agent.batch_reports().len(), 3);
}
