//! Store tests: SQLite always; PostgreSQL when `OTRP_TEST_DATABASE_URL` is set (each run
//! in its own schema, dropped at the end).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use otrp_store::*;

mod common;
use common::Pair;

fn token(t: &[u8], expires_at: u64) -> TokenRecord {
    TokenRecord {
        token: t.to_vec(),
        kind: TokenKind::Query,
        device_id: None,
        challenge: Some(b"challenge-0123456789".to_vec()),
        data_items: 3,
        sent: vec![SentItem {
            component: vec![0x81, 0x41, 0x78],
            seq: 2,
            deployment_id: 1,
            delete: false,
        }],
        created_at: 100,
        expires_at,
        consumed_at: None,
    }
}

async fn token_consumed_once_across_replicas(p: &Pair) {
    let s: Arc<dyn Store> = Arc::new(p.a.clone());
    let s2: Arc<dyn Store> = Arc::new(p.b.clone());
    for round in 0..5u8 {
        let t = vec![round; 16];
        s.insert_token(&token(&t, 1000)).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let st = if i % 2 == 0 { s.clone() } else { s2.clone() };
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                st.consume_token(&t, 200).await.unwrap()
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(rec) => {
                    wins += 1;
                    assert_eq!(rec.consumed_at, Some(200));
                    assert_eq!(rec.sent.len(), 1);
                }
                Err(refusal) => assert_eq!(refusal, ConsumeRefusal::Replayed),
            }
        }
        assert_eq!(
            wins, 1,
            "round {round}: exactly one replica accepts the token"
        );
    }
}

async fn token_refusals(p: &Pair) {
    let s = &p.a;
    s.insert_token(&token(b"expiring-token-1", 150))
        .await
        .unwrap();
    assert_eq!(
        s.consume_token(b"expiring-token-1", 150).await.unwrap(),
        Err(ConsumeRefusal::Expired)
    );
    assert_eq!(
        s.consume_token(b"never-issued-tok", 10).await.unwrap(),
        Err(ConsumeRefusal::Unknown)
    );
    assert!(matches!(
        s.insert_token(&token(b"expiring-token-1", 150)).await,
        Err(StoreError::Exists { .. })
    ));
    let c = ChallengeRecord {
        challenge: b"nonce-0123456789".to_vec(),
        token: b"expiring-token-1".to_vec(),
        created_at: 1,
        expires_at: 100,
        consumed_at: None,
    };
    s.insert_challenge(&c).await.unwrap();
    assert!(p
        .b
        .consume_challenge(&c.challenge, 50)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(
        s.consume_challenge(&c.challenge, 51).await.unwrap(),
        Err(ConsumeRefusal::Replayed)
    );
    assert_eq!(s.purge_expired(1000).await.unwrap(), 2);
    assert_eq!(
        s.consume_token(b"expiring-token-1", 10).await.unwrap(),
        Err(ConsumeRefusal::Unknown)
    );
}

async fn catalog_and_sequence_numbers(p: &Pair) {
    let s = &p.a;
    let comp = ComponentRecord {
        id: vec![0x81, 0x42, 1, 2],
        sp_id: "sp1".into(),
        sd_name: "sd1".into(),
        name: "hello".into(),
        created_at: 1,
    };
    s.insert_component(&comp).await.unwrap();
    assert!(matches!(
        s.insert_component(&comp).await,
        Err(StoreError::Exists { .. })
    ));
    let m = |seq| ManifestRecord {
        component: comp.id.clone(),
        seq,
        envelope: vec![seq as u8; 4],
        image_digest: None,
        status: ManifestStatus::Ready,
        created_at: 2,
    };
    s.add_manifest(&m(3)).await.unwrap();
    match p.b.add_manifest(&m(3)).await {
        Err(StoreError::SequenceNotGrowing { seq: 3, latest: 3 }) => {}
        other => panic!("{other:?}"),
    }
    match s.add_manifest(&m(2)).await {
        Err(StoreError::SequenceNotGrowing { seq: 2, latest: 3 }) => {}
        other => panic!("{other:?}"),
    }
    let mut m5 = m(5);
    m5.status = ManifestStatus::AwaitingCosign;
    s.add_manifest(&m5).await.unwrap();
    assert_eq!(
        s.latest_manifest(&comp.id, true)
            .await
            .unwrap()
            .unwrap()
            .seq,
        3
    );
    assert_eq!(
        s.latest_manifest(&comp.id, false)
            .await
            .unwrap()
            .unwrap()
            .seq,
        5
    );
    s.update_manifest(&comp.id, 5, b"cosigned", ManifestStatus::Ready)
        .await
        .unwrap();
    let l = s.latest_manifest(&comp.id, true).await.unwrap().unwrap();
    assert_eq!((l.seq, l.envelope.as_slice()), (5, &b"cosigned"[..]));
    assert_eq!(s.components(Some("sp2")).await.unwrap(), vec![]);
    assert_eq!(s.components(Some("sp1")).await.unwrap(), vec![comp.clone()]);
}

async fn records_round_trip(p: &Pair) {
    let s = &p.a;
    let d = DeviceRecord {
        id: "01ab".into(),
        ueid: vec![1, 0xab],
        model: "door-lock".into(),
        hwversion: "1.0".into(),
        tags: vec!["beta".into(), "eu".into()],
        suite_alg: None,
        revoked: false,
        created_at: 5,
    };
    s.put_device(&d).await.unwrap();
    assert_eq!(p.b.device("01ab").await.unwrap(), Some(d.clone()));
    s.set_device_suite("01ab", -9).await.unwrap();
    s.set_device_revoked("01ab", true).await.unwrap();
    let got = s.devices().await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].suite_alg, got[0].revoked), (Some(-9), true));
    assert_eq!(got[0].tags, d.tags);
    assert!(matches!(
        s.set_device_suite("nope", -9).await,
        Err(StoreError::NotFound { .. })
    ));

    let a = AttestationRecord {
        device_id: "01ab".into(),
        status: ArStatus::Affirming,
        tee_version: "1.0".into(),
        measurement: vec![9; 32],
        agent_kid: vec![7; 32],
        verified_at: 10,
        expires_at: 20,
    };
    s.put_attestation(&a).await.unwrap();
    assert_eq!(s.attestation("01ab").await.unwrap(), Some(a));
    let k = AgentKeyRecord {
        kid: vec![7; 32],
        device_id: "01ab".into(),
        cose_key: vec![0xa0],
        bound_at: 10,
    };
    s.put_agent_key(&k).await.unwrap();
    assert_eq!(s.agent_key(&[7; 32]).await.unwrap(), Some(k.clone()));
    assert_eq!(s.agent_keys("01ab").await.unwrap(), vec![k]);

    let acc = AccountRecord {
        id: "sp1".into(),
        kind: AccountKind::Sp,
        token_hash: vec![1; 32],
        approved: false,
        created_at: 1,
    };
    s.insert_account(&acc).await.unwrap();
    s.set_account_approved("sp1", true).await.unwrap();
    let got = s.account_by_token_hash(&[1; 32]).await.unwrap().unwrap();
    assert!(got.approved);
    assert_eq!(s.accounts().await.unwrap().len(), 1);

    let sd = SdRecord {
        name: "sd1".into(),
        sp_id: "sp1".into(),
        granted: false,
        created_at: 1,
    };
    s.insert_sd(&sd).await.unwrap();
    s.set_sd_granted("sd1", true).await.unwrap();
    assert!(s.sd("sd1").await.unwrap().unwrap().granted);
    assert_eq!(s.sds(Some("sp2")).await.unwrap().len(), 0);

    let dep = DeploymentRecord {
        id: 0,
        sp_id: "sp1".into(),
        component: vec![0x81, 0x41, 0x61],
        action: DeploymentAction::Install,
        target: Target::Tag("beta".into()),
        rollout: Rollout::Percent(50),
        state: DeploymentState::Active,
        created_at: 3,
    };
    let id = s.insert_deployment(&dep).await.unwrap();
    let id2 = s.insert_deployment(&dep).await.unwrap();
    assert_ne!(id, id2);
    s.set_deployment_state(id, DeploymentState::Paused)
        .await
        .unwrap();
    let got = s.deployment(id).await.unwrap().unwrap();
    assert_eq!(got.state, DeploymentState::Paused);
    assert_eq!(got.target, dep.target);
    assert_eq!(got.rollout, dep.rollout);
    assert_eq!(s.deployments(Some("sp1")).await.unwrap().len(), 2);

    let pr = ProgressRecord {
        deployment_id: id,
        device_id: "01ab".into(),
        component: dep.component.clone(),
        seq: 1,
        state: ProgressState::Sent,
        detail: String::new(),
        updated_at: 4,
    };
    s.put_progress(&pr).await.unwrap();
    let mut done = pr.clone();
    done.state = ProgressState::Done;
    s.put_progress(&done).await.unwrap();
    assert_eq!(
        s.progress(id, "01ab", &dep.component).await.unwrap(),
        Some(done)
    );
    assert_eq!(
        s.progress_counts(id).await.unwrap(),
        ProgressCounts {
            sent: 0,
            done: 1,
            failed: 0
        }
    );
    assert_eq!(s.device_progress("01ab").await.unwrap().len(), 1);

    for i in 0..3 {
        s.append_audit(&AuditRecord {
            id: 0,
            at: i,
            actor: "oem".into(),
            action: "sp.approve".into(),
            object: format!("sp{i}"),
            detail: "ok".into(),
        })
        .await
        .unwrap();
    }
    let log = p.b.audit(2).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].object, "sp2");
}

/// OTrP records (migration 0002): device state with dsihash, one-time rids consumed by
/// exactly one replica, SP certificates.
async fn otrp_records(p: &Pair) {
    let dev = OtrpDeviceRecord {
        device_id: "d1".into(),
        did: "ZGlk".into(),
        tee_name: "tee".into(),
        tee_cert: vec![1, 2, 3],
        dsi: "{}".into(),
        dsihash: "aGFzaA==".into(),
        tid: "t1".into(),
        updated_at: 5,
    };
    p.a.put_otrp_device(&dev).await.unwrap();
    let mut later = dev.clone();
    later.dsihash = "bmV3".into();
    p.b.put_otrp_device(&later).await.unwrap();
    assert_eq!(p.a.otrp_device("d1").await.unwrap(), Some(later));
    assert_eq!(p.a.otrp_device("d2").await.unwrap(), None);
    let req = OtrpRequestRecord {
        rid: "r1".into(),
        device_id: None,
        tid: "t1".into(),
        kind: "GetDeviceState".into(),
        sent: vec![SentItem {
            component: vec![9],
            seq: 2,
            deployment_id: 3,
            delete: false,
        }],
        created_at: 10,
        expires_at: 100,
        consumed_at: None,
    };
    p.a.insert_otrp_request(&req).await.unwrap();
    assert!(matches!(
        p.b.insert_otrp_request(&req).await,
        Err(StoreError::Exists { .. })
    ));
    assert_eq!(
        p.b.otrp_request("r1").await.unwrap().unwrap().sent,
        req.sent
    );
    let (x, y) = tokio::join!(
        p.a.consume_otrp_request("r1", 20),
        p.b.consume_otrp_request("r1", 20)
    );
    let wins = [x.unwrap(), y.unwrap()];
    assert_eq!(wins.iter().filter(|w| w.is_ok()).count(), 1);
    assert_eq!(
        p.a.consume_otrp_request("r1", 21).await.unwrap(),
        Err(ConsumeRefusal::Replayed)
    );
    assert_eq!(
        p.a.consume_otrp_request("nope", 21).await.unwrap(),
        Err(ConsumeRefusal::Unknown)
    );
    let mut late = req.clone();
    late.rid = "r2".into();
    p.a.insert_otrp_request(&late).await.unwrap();
    assert_eq!(
        p.a.consume_otrp_request("r2", 100).await.unwrap(),
        Err(ConsumeRefusal::Expired)
    );
    let cert = SpCertRecord {
        sp_id: "sp1".into(),
        cert: vec![0x30, 1],
        created_at: 1,
    };
    p.a.add_sp_cert(&cert).await.unwrap();
    p.b.add_sp_cert(&cert).await.unwrap();
    assert_eq!(p.a.sp_certs("sp1").await.unwrap(), vec![cert]);
    assert!(p.a.sp_certs("sp2").await.unwrap().is_empty());
}

/// OTrP batch (migration 0005): model keys, packages whose sequence numbers must grow per
/// model (also across two replicas racing), results counted per package, devices by did.
async fn otrp_batch_records(p: &Pair) {
    let m = OtrpBatchModelRecord {
        model: "door-lock".into(),
        public_key: vec![0x30, 0x59],
        tee: "OpenTrust-Sim".into(),
        registered_by: "oem".into(),
        updated_at: 1,
    };
    p.a.put_otrp_batch_model(&m).await.unwrap();
    let mut m2 = m.clone();
    m2.public_key = vec![0x30, 0x5a];
    p.b.put_otrp_batch_model(&m2).await.unwrap();
    assert_eq!(p.a.otrp_batch_model("door-lock").await.unwrap(), Some(m2));
    assert_eq!(p.a.otrp_batch_model("other").await.unwrap(), None);

    let pkg = |model: &str, seq: u64| BatchPackageRecord {
        batch_id: model.into(),
        seq,
        owner: "sp1".into(),
        contents: "create sd1, install sd1/ta#1".into(),
        bytes: vec![b'{', seq as u8],
        etag: format!("\"{seq}\""),
        tam_signatures: 1,
        created_at: 10 + seq,
    };
    p.a.insert_otrp_batch_package(&pkg("door-lock", 1))
        .await
        .unwrap();
    // The same or a lower sequence number is refused; a TEEP batch of the same name is
    // another counter.
    assert!(matches!(
        p.b.insert_otrp_batch_package(&pkg("door-lock", 1)).await,
        Err(StoreError::SequenceNotGrowing { seq: 1, latest: 1 })
    ));
    assert!(p
        .a
        .latest_batch_package("door-lock")
        .await
        .unwrap()
        .is_none());
    let two = pkg("door-lock", 2);
    let (x, y) = tokio::join!(
        p.a.insert_otrp_batch_package(&two),
        p.b.insert_otrp_batch_package(&two)
    );
    assert_eq!([x.is_ok(), y.is_ok()].iter().filter(|o| **o).count(), 1);
    assert!(matches!(
        p.a.insert_otrp_batch_package(&pkg("door-lock", 1)).await,
        Err(StoreError::SequenceNotGrowing { seq: 1, latest: 2 })
    ));
    p.a.insert_otrp_batch_package(&pkg("thermostat", 1))
        .await
        .unwrap();
    assert_eq!(
        p.b.latest_otrp_batch_package("door-lock").await.unwrap(),
        Some(pkg("door-lock", 2))
    );
    assert_eq!(
        p.b.otrp_batch_package("door-lock", 1).await.unwrap(),
        Some(pkg("door-lock", 1))
    );
    assert_eq!(p.b.otrp_batch_package("door-lock", 3).await.unwrap(), None);
    let all: Vec<_> =
        p.a.otrp_batch_packages(None)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.batch_id.clone(), r.seq))
            .collect();
    assert_eq!(
        all,
        vec![
            ("door-lock".into(), 1),
            ("door-lock".into(), 2),
            ("thermostat".into(), 1)
        ]
    );
    assert_eq!(
        p.a.otrp_batch_packages(Some("thermostat"))
            .await
            .unwrap()
            .len(),
        1
    );

    let res = |dev: &str, success: bool, at: u64| BatchReportRecord {
        batch_id: "door-lock".into(),
        seq: 2,
        device_id: dev.into(),
        success,
        detail: if success {
            String::new()
        } else {
            "ERR_REQUEST_INVALID".into()
        },
        received_at: at,
    };
    p.a.put_otrp_batch_result(&res("d1", false, 1))
        .await
        .unwrap();
    p.b.put_otrp_batch_result(&res("d1", true, 2))
        .await
        .unwrap();
    p.a.put_otrp_batch_result(&res("d2", false, 3))
        .await
        .unwrap();
    assert_eq!(
        p.a.otrp_batch_result_counts("door-lock", 2).await.unwrap(),
        BatchReportCounts {
            applied: 1,
            failed: 1
        }
    );
    assert_eq!(
        p.a.otrp_batch_results("door-lock", 2).await.unwrap(),
        vec![res("d1", true, 2), res("d2", false, 3)]
    );
    assert_eq!(
        p.a.otrp_batch_result_counts("door-lock", 1).await.unwrap(),
        BatchReportCounts::default()
    );
    // The TEEP batch counts are separate.
    assert_eq!(
        p.a.batch_report_counts("door-lock", 2).await.unwrap(),
        BatchReportCounts::default()
    );

    let dev = OtrpDeviceRecord {
        device_id: "d9".into(),
        did: "ZGlkOQ==".into(),
        tee_name: "tee".into(),
        tee_cert: vec![9],
        dsi: "{}".into(),
        dsihash: String::new(),
        tid: "t".into(),
        updated_at: 7,
    };
    p.a.put_otrp_device(&dev).await.unwrap();
    assert_eq!(p.b.otrp_device_by_did("ZGlkOQ==").await.unwrap(), Some(dev));
    assert_eq!(p.b.otrp_device_by_did("bm9uZQ==").await.unwrap(), None);
}

async fn all(p: &Pair) {
    token_consumed_once_across_replicas(p).await;
    token_refusals(p).await;
    catalog_and_sequence_numbers(p).await;
    records_round_trip(p).await;
    otrp_records(p).await;
    otrp_batch_records(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store() {
    let p = Pair::sqlite("otrp_store").await;
    all(&p).await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store() {
    let Some(p) = Pair::postgres("otrp_test").await else {
        return;
    };
    all(&p).await;
    p.finish().await;
}

#[tokio::test]
async fn unsupported_url_is_refused() {
    assert!(matches!(
        SqlStore::connect("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}
