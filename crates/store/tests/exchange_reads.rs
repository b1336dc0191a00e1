//! The reads one TEEP exchange makes, each one query in [`SqlStore`]: `device` (row and
//! tags), `known_agent`, `token_with_keys`, `deployment_plans`, the two of
//! `device_and_plans` (one command on SQLite), and the `PutDeviceKeepTags` write.
//! SQLite always; PostgreSQL when `OTRP_TEST_DATABASE_URL` is set (own schema, dropped
//! at the end).
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_store::*;

mod common;
use common::Pair;

fn device(id: &str, model: &str, tags: &[&str]) -> DeviceRecord {
    DeviceRecord {
        id: id.into(),
        ueid: id.as_bytes().to_vec(),
        model: model.into(),
        hwversion: "1".into(),
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        suite_alg: None,
        revoked: false,
        created_at: 100,
    }
}

fn token(t: &[u8], device_id: Option<&str>) -> TokenRecord {
    TokenRecord {
        token: t.to_vec(),
        kind: TokenKind::Update,
        device_id: device_id.map(str::to_string),
        challenge: None,
        data_items: 0,
        sent: vec![SentItem {
            component: b"c".to_vec(),
            seq: 3,
            deployment_id: 1,
            delete: false,
        }],
        created_at: 100,
        expires_at: 1000,
        consumed_at: None,
    }
}

fn key(kid: u8, device_id: &str, bound_at: u64) -> AgentKeyRecord {
    AgentKeyRecord {
        kid: vec![kid; 32],
        device_id: device_id.into(),
        cose_key: vec![kid, 0xa1],
        bound_at,
    }
}

fn manifest(component: &[u8], seq: u64, status: ManifestStatus) -> ManifestRecord {
    ManifestRecord {
        component: component.to_vec(),
        seq,
        envelope: vec![seq as u8; 40],
        image_digest: Some(vec![seq as u8; 32]),
        status,
        created_at: 100 + seq,
    }
}

fn deployment(component: &[u8], action: DeploymentAction, target: Target) -> DeploymentRecord {
    DeploymentRecord {
        id: 0,
        sp_id: "sp".into(),
        component: component.to_vec(),
        action,
        target,
        rollout: Rollout::Full,
        state: DeploymentState::Active,
        created_at: 100,
    }
}

async fn reads(s: &dyn Store) {
    // device: the row and its tags, sorted; none, and an unknown device.
    s.put_device(&device("d1", "m1", &["zeta", "alpha"]))
        .await
        .unwrap();
    s.put_device(&device("d2", "m2", &[])).await.unwrap();
    let d1 = s.device("d1").await.unwrap().unwrap();
    assert_eq!(d1.tags, vec!["alpha".to_string(), "zeta".to_string()]);
    assert_eq!(d1.model, "m1");
    assert_eq!(
        s.device("d2").await.unwrap().unwrap().tags,
        Vec::<String>::new()
    );
    assert!(s.device("nobody").await.unwrap().is_none());

    // PutDeviceKeepTags writes the row and leaves the stored tags alone.
    let mut changed = device("d1", "m1b", &["ignored"]);
    changed.suite_alg = Some(-9);
    s.apply(&[StoreWrite::PutDeviceKeepTags(changed)])
        .await
        .unwrap();
    let d1 = s.device("d1").await.unwrap().unwrap();
    assert_eq!(d1.model, "m1b");
    assert_eq!(d1.suite_alg, Some(-9));
    assert_eq!(d1.tags, vec!["alpha".to_string(), "zeta".to_string()]);
    s.apply(&[StoreWrite::PutDeviceKeepTags(device("d3", "m1", &["x"]))])
        .await
        .unwrap();
    assert_eq!(
        s.device("d3").await.unwrap().unwrap().tags,
        Vec::<String>::new()
    );

    // token_with_keys: the token as `token` reads it, with `agent_keys` of its device.
    s.put_agent_key(&key(1, "d1", 10)).await.unwrap();
    s.put_agent_key(&key(2, "d1", 20)).await.unwrap();
    s.put_agent_key(&key(3, "d2", 30)).await.unwrap();

    // known_agent: the key with its device's attestation and device (tags included), as
    // the separate reads return them; no attestation, no device row, unknown kid.
    s.put_attestation(&AttestationRecord {
        device_id: "d1".into(),
        status: ArStatus::Affirming,
        tee_version: "1.2".into(),
        measurement: vec![7; 32],
        agent_kid: vec![2; 8],
        verified_at: 40,
        expires_at: 4000,
    })
    .await
    .unwrap();
    s.put_agent_key(&key(4, "gone", 40)).await.unwrap();
    for kid in [1u8, 2, 3, 4] {
        let k = key(kid, "x", 0).kid;
        let got = s.known_agent(&k).await.unwrap().unwrap();
        let stored = s.agent_key(&k).await.unwrap().unwrap();
        assert_eq!(
            got.attestation,
            s.attestation(&stored.device_id).await.unwrap()
        );
        assert_eq!(got.device, s.device(&stored.device_id).await.unwrap());
        assert_eq!(got.key, stored);
    }
    let d1_agent = s.known_agent(&key(1, "x", 0).kid).await.unwrap().unwrap();
    assert!(d1_agent.attestation.is_some());
    assert_eq!(d1_agent.device.unwrap().tags.len(), 2);
    let gone = s.known_agent(&key(4, "x", 0).kid).await.unwrap().unwrap();
    assert!(gone.device.is_none() && gone.attestation.is_none());
    assert!(s.known_agent(b"never-bound").await.unwrap().is_none());
    s.insert_token(&token(b"tok-d1", Some("d1"))).await.unwrap();
    s.insert_token(&token(b"tok-none", None)).await.unwrap();
    s.insert_token(&token(b"tok-d3", Some("d3"))).await.unwrap();
    let (t, keys) = s.token_with_keys(b"tok-d1").await.unwrap().unwrap();
    assert_eq!(Some(t), s.token(b"tok-d1").await.unwrap());
    assert_eq!(keys, s.agent_keys("d1").await.unwrap());
    assert_eq!(keys, vec![key(2, "d1", 20), key(1, "d1", 10)]);
    let (t, keys) = s.token_with_keys(b"tok-none").await.unwrap().unwrap();
    assert_eq!(t, token(b"tok-none", None));
    assert!(keys.is_empty());
    assert!(s
        .token_with_keys(b"tok-d3")
        .await
        .unwrap()
        .unwrap()
        .1
        .is_empty());
    assert!(s.token_with_keys(b"never").await.unwrap().is_none());

    // deployment_plans: active deployments that target the device, with its progress
    // and the latest ready manifest of an install.
    let (a, b, c) = (b"comp-a".to_vec(), b"comp-b".to_vec(), b"comp-c".to_vec());
    s.add_manifest(&manifest(&a, 1, ManifestStatus::Ready))
        .await
        .unwrap();
    s.add_manifest(&manifest(&a, 2, ManifestStatus::Ready))
        .await
        .unwrap();
    s.add_manifest(&manifest(&a, 3, ManifestStatus::AwaitingCosign))
        .await
        .unwrap();
    let all_a = s
        .insert_deployment(&deployment(&a, DeploymentAction::Install, Target::All))
        .await
        .unwrap();
    let tag_b = s
        .insert_deployment(&deployment(
            &b,
            DeploymentAction::Install,
            Target::Tag("zeta".into()),
        ))
        .await
        .unwrap();
    let other_tag = s
        .insert_deployment(&deployment(
            &a,
            DeploymentAction::Install,
            Target::Tag("nope".into()),
        ))
        .await
        .unwrap();
    let model_c = s
        .insert_deployment(&deployment(
            &c,
            DeploymentAction::Remove,
            Target::Model("m1b".into()),
        ))
        .await
        .unwrap();
    let other_model = s
        .insert_deployment(&deployment(
            &c,
            DeploymentAction::Remove,
            Target::Model("m2".into()),
        ))
        .await
        .unwrap();
    let by_id = s
        .insert_deployment(&deployment(
            &a,
            DeploymentAction::Install,
            Target::Device("d1".into()),
        ))
        .await
        .unwrap();
    let aborted = s
        .insert_deployment(&deployment(&a, DeploymentAction::Install, Target::All))
        .await
        .unwrap();
    s.set_deployment_state(aborted, DeploymentState::Aborted)
        .await
        .unwrap();
    let prog = ProgressRecord {
        deployment_id: all_a,
        device_id: "d1".into(),
        component: a.clone(),
        seq: 2,
        state: ProgressState::Done,
        detail: "ok".into(),
        updated_at: 300,
    };
    s.put_progress(&prog).await.unwrap();
    // Progress of another device does not show.
    s.put_progress(&ProgressRecord {
        device_id: "d2".into(),
        ..prog.clone()
    })
    .await
    .unwrap();

    let d1 = s.device("d1").await.unwrap().unwrap();
    let plans = s.deployment_plans(&d1).await.unwrap();
    let ids: Vec<i64> = plans.iter().map(|p| p.deployment.id).collect();
    assert_eq!(ids, vec![all_a, tag_b, model_c, by_id]);
    assert!(!ids.contains(&other_tag) && !ids.contains(&other_model));
    for p in &plans {
        assert_eq!(
            Some(&p.deployment),
            s.deployment(p.deployment.id).await.unwrap().as_ref()
        );
        assert_eq!(
            p.progress,
            s.progress(p.deployment.id, "d1", &p.deployment.component)
                .await
                .unwrap()
        );
        let latest = match p.deployment.action {
            DeploymentAction::Install => s
                .latest_manifest(&p.deployment.component, true)
                .await
                .unwrap(),
            DeploymentAction::Remove => None,
        };
        assert_eq!(p.latest_ready, latest);
    }
    assert_eq!(plans[0].progress, Some(prog));
    assert_eq!(
        plans[0].latest_ready,
        Some(manifest(&a, 2, ManifestStatus::Ready))
    );
    assert_eq!(plans[1].latest_ready, None, "comp-b has no manifest");
    let d2 = s.device("d2").await.unwrap().unwrap();
    let ids: Vec<i64> = s
        .deployment_plans(&d2)
        .await
        .unwrap()
        .iter()
        .map(|p| p.deployment.id)
        .collect();
    assert_eq!(ids, vec![all_a, other_model]);

    // device_and_plans: what device and then deployment_plans return (on SQLite one
    // command of two statements), the plans judged for the device as a device of the
    // model given: its own, another one, and a device not stored yet (no tags).
    for (id, model) in [("d1", "m1b"), ("d1", "m2"), ("d2", "m2"), ("new", "m1b")] {
        let stored = s.device(id).await.unwrap();
        let as_model = match &stored {
            Some(d) => DeviceRecord {
                model: model.into(),
                ..d.clone()
            },
            None => device(id, model, &[]),
        };
        let plans = s.deployment_plans(&as_model).await.unwrap();
        let (got_device, got_plans) = s.device_and_plans(id, model).await.unwrap();
        assert_eq!(got_device, stored, "{id} as {model}");
        assert_eq!(got_plans, plans, "{id} as {model}");
        let ids: Vec<i64> = got_plans.iter().map(|p| p.deployment.id).collect();
        let expected = match (id, model) {
            ("d1", "m1b") => vec![all_a, tag_b, model_c, by_id],
            ("d1", _) => vec![all_a, tag_b, other_model, by_id],
            _ if model == "m2" => vec![all_a, other_model],
            _ => vec![all_a, model_c],
        };
        assert_eq!(ids, expected, "{id} as {model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_exchange_reads() {
    let p = Pair::sqlite("otrp_reads").await;
    reads(&p.a).await;
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exchange_reads() {
    let Some(p) = Pair::postgres("otrp_reads").await else {
        return;
    };
    reads(&p.a).await;
    p.finish().await;
}
