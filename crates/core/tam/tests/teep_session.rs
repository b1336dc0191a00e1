//! The TAM core driven in memory against scripted Agent messages over a SQLite store.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use otrp_crypto::{KeyKind, PrivateKey};
use otrp_store::{
    ConsumeRefusal, DeploymentAction, DeploymentState, ProgressState, Rollout, SqlStore, Store,
    Target,
};
use otrp_tam::{AdminError, AttestationError, Outcome, Policy, Tam, TamConfig, TamError};
use otrp_teep::signed::Protection;
use otrp_teep::{DataItemRequested, QueryResponse, TeepMessage};

/// QueryRequest → QueryResponse with evidence → Update with the TA → Success → Done.
async fn full_exchange(w: &mut World, dev: &mut Device, now: u64) {
    let (v, _) = w.open_session(None, now).await;
    assert_eq!(
        v.protection,
        Protection::Sign {
            verified: 2,
            total: 2
        },
        "first QueryRequest: COSE_Sign with ESP256 and Ed25519"
    );
    let qr = query_request(&v);
    assert!(qr
        .data_item_requested
        .contains(DataItemRequested::ATTESTATION));
    assert_eq!(qr.challenge.as_ref().map(Vec::len), Some(32));
    let resp = query_response(dev, &qr);
    let body = dev.sign(&TeepMessage::QueryResponse(resp), !dev.cnf_cose_key);
    let out = w.step(None, &body, now + 1).await.unwrap();
    let Outcome::Reply(up_bytes) = out else {
        panic!("expected an Update")
    };
    let uv = open(&w.tam_pub, &up_bytes);
    assert_eq!(uv.protection, Protection::Sign1);
    assert_eq!(
        uv.alg,
        dev.agent_key.default_alg(),
        "answers in the Agent's suite"
    );
    let up = update(&uv);
    assert_eq!(up.manifest_list.as_ref().map(Vec::len), Some(1));
    let succ = success(dev, &up);
    let out = w.step(None, &succ, now + 2).await.unwrap();
    assert_eq!(out, Outcome::Done);
    assert_eq!(out.http_status(), 204);
}

#[tokio::test]
async fn full_exchange_installs_the_deployed_ta() {
    let mut dev = Device::new(1, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    full_exchange(&mut w, &mut dev, NOW).await;
    assert_eq!(dev.installed.len(), 1);
    let deps = w.admin.deployments(&w.sp).await.unwrap();
    let (targeted, counts) = w
        .admin
        .deployment_progress(&w.sp, deps[0].id)
        .await
        .unwrap();
    assert_eq!((targeted, counts.done, counts.sent), (1, 1, 0));
    let d = w.store.device(&dev.id()).await.unwrap().unwrap();
    assert_eq!(d.suite_alg, Some(-9), "negotiated suite stored");
    let a = w.store.attestation(&dev.id()).await.unwrap().unwrap();
    assert_eq!(a.agent_kid, dev.agent_kid().to_vec());
    // Next session: nothing to do.
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 10).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    assert_eq!(w.step(None, &body, NOW + 11).await.unwrap(), Outcome::Done);
}

#[tokio::test]
async fn full_exchange_with_ed25519_agent_and_kid_cnf_in_kccs() {
    let mut dev = Device::new(2, KeyKind::Ed25519);
    dev.cnf_cose_key = false;
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    full_exchange(&mut w, &mut dev, NOW).await;
    let d = w.store.device(&dev.id()).await.unwrap().unwrap();
    assert_eq!(d.suite_alg, Some(-19));
}

#[tokio::test]
async fn token_replay_is_refused() {
    let mut dev = Device::new(3, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let Outcome::Reply(up) = w.step(None, &body, NOW + 1).await.unwrap() else {
        panic!()
    };
    match w.step(None, &body, NOW + 2).await {
        Err(TamError::TokenReplayed) => {}
        other => panic!("replayed QueryResponse: {other:?}"),
    }
    let up = update(&open(&w.tam_pub, &up));
    let succ = success(&mut dev, &up);
    assert_eq!(w.step(None, &succ, NOW + 3).await.unwrap(), Outcome::Done);
    match w.step(None, &succ, NOW + 4).await {
        Err(TamError::TokenReplayed) => {}
        other => panic!("replayed Success: {other:?}"),
    }
    // A message whose token was never issued.
    let forged = QueryResponse::new().with_token(vec![9u8; 16]);
    let body = dev.sign(&TeepMessage::QueryResponse(forged), false);
    assert!(matches!(
        w.step(None, &body, NOW).await,
        Err(TamError::TokenUnknown)
    ));
}

async fn expired_token_is_refused_with(stateless_query_tokens: bool) {
    let dev = Device::new(4, KeyKind::P256);
    let config = TamConfig {
        token_ttl: 60,
        stateless_query_tokens,
        ..TamConfig::default()
    };
    let mut w = World::new(&[&dev], config, Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    match w.step(None, &body, NOW + 60).await {
        Err(TamError::TokenExpired) => {}
        other => panic!("{other:?}"),
    }
    let t = qr.token.unwrap();
    let want = if stateless_query_tokens {
        // Nothing was written for it: the expiry is in the (authenticated) token.
        ConsumeRefusal::Unknown
    } else {
        // The store refuses it too (a racing replica checking later).
        ConsumeRefusal::Expired
    };
    assert_eq!(
        w.store.consume_token(&t, NOW + 61).await.unwrap(),
        Err(want)
    );
}

#[tokio::test]
async fn expired_token_is_refused() {
    expired_token_is_refused_with(true).await;
}

#[tokio::test]
async fn expired_stored_token_is_refused() {
    expired_token_is_refused_with(false).await;
}

#[tokio::test]
async fn attestation_is_reused_while_fresh_and_required_again_after_expiry() {
    let mut dev = Device::new(5, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    full_exchange(&mut w, &mut dev, NOW).await;
    // Within the result's lifetime (3600 s): Sign1 in the known suite, no attestation.
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 100).await;
    assert_eq!(v.protection, Protection::Sign1);
    let qr = query_request(&v);
    assert!(!qr
        .data_item_requested
        .contains(DataItemRequested::ATTESTATION));
    assert!(qr.challenge.is_none());
    let resp = query_response(&dev, &qr);
    assert!(resp.attestation_payload.is_none());
    let body = dev.sign(&TeepMessage::QueryResponse(resp), false);
    assert_eq!(w.step(None, &body, NOW + 101).await.unwrap(), Outcome::Done);
    // Its token is spent with the step's outcome: a replay is refused.
    assert!(matches!(
        w.step(None, &body, NOW + 102).await,
        Err(TamError::TokenReplayed)
    ));

    // After expiry, the hint no longer avoids attestation.
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 4000).await;
    let qr = query_request(&v);
    assert!(qr
        .data_item_requested
        .contains(DataItemRequested::ATTESTATION));
    // And a QueryResponse without evidence to an evidence-free QueryRequest issued while
    // fresh but answered after expiry gets a new QueryRequest that asks for attestation.
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 3500).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let Outcome::Reply(again) = w.step(None, &body, NOW + 3700).await.unwrap() else {
        panic!()
    };
    let qr2 = query_request(&open(&w.tam_pub, &again));
    assert!(qr2
        .data_item_requested
        .contains(DataItemRequested::ATTESTATION));
    assert!(qr2.challenge.is_some());
    // The answer that was sent back for evidence was spent too.
    assert!(matches!(
        w.step(None, &body, NOW + 3701).await,
        Err(TamError::TokenReplayed)
    ));
}

#[tokio::test]
async fn evidence_is_required_when_requested_and_cannot_be_replayed() {
    let dev = Device::new(6, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let mut resp = query_response(&dev, &qr);
    let evidence = resp.attestation_payload.take().unwrap();
    let body = dev.sign(&TeepMessage::QueryResponse(resp.clone()), false);
    assert!(matches!(
        w.step(None, &body, NOW + 1).await,
        Err(TamError::MissingEvidence)
    ));
    // Evidence of this session replayed into the next one: stale nonce.
    let (v2, _) = w.open_session(None, NOW + 2).await;
    let qr2 = query_request(&v2);
    let replay = QueryResponse::new()
        .with_token(qr2.token.clone().unwrap())
        .with_attestation(None, evidence);
    let body = dev.sign(&TeepMessage::QueryResponse(replay), false);
    match w.step(None, &body, NOW + 3).await {
        Err(TamError::Attestation(AttestationError::NonceMismatch)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cnf_mismatch_is_refused() {
    let dev = Device::new(7, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    // The evidence binds the Agent key; the message is signed by another key.
    let rogue = PrivateKey::generate(KeyKind::P256, &mut rng(77)).unwrap();
    let body = dev.sign_with(
        &rogue,
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    match w.step(None, &body, NOW + 1).await {
        Err(TamError::Attestation(AttestationError::CnfMismatch { .. })) => {}
        other => panic!("{other:?}"),
    }
    // Refusal consumed nothing: the genuine answer still works.
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    assert!(matches!(
        w.step(None, &body, NOW + 2).await,
        Ok(Outcome::Reply(_))
    ));
}

#[tokio::test]
async fn restarting_the_core_mid_session_loses_nothing() {
    let mut dev = Device::new(8, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );

    // "Restart": a new store handle on the same file and a new core instance.
    let store2: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&w.db).await.unwrap());
    let tam2 = Tam::new(
        store2.clone(),
        Arc::new(verifier_for(&[&dev], 3600)),
        tam_keys(),
        TamConfig::default(),
        provider(),
    );
    let mut r = rng(5);
    let Outcome::Reply(up) = tam2.process(None, &body, NOW + 1, &mut r).await.unwrap() else {
        panic!()
    };
    drop(tam2);
    let up = update(&open(&w.tam_pub, &up));
    let succ = success(&mut dev, &up);
    let store3: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&w.db).await.unwrap());
    let tam3 = Tam::new(
        store3.clone(),
        Arc::new(verifier_for(&[&dev], 3600)),
        tam_keys(),
        TamConfig::default(),
        provider(),
    );
    assert_eq!(
        tam3.process(None, &succ, NOW + 2, &mut r).await.unwrap(),
        Outcome::Done
    );
    let p = store3.device_progress(&dev.id()).await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].state, ProgressState::Done);
}

#[tokio::test]
async fn sp_cannot_read_or_change_another_sps_components() {
    let dev = Device::new(9, KeyKind::P256);
    let w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let mut r = rng(8);
    let tok = w
        .admin
        .create_account(
            Some(&w.oem),
            "sp2",
            otrp_store::AccountKind::Sp,
            NOW,
            &mut r,
        )
        .await
        .unwrap();
    let sp2 = w.admin.authenticate(&tok).await.unwrap();
    // Not approved yet.
    assert!(matches!(
        w.admin.create_sd(&sp2, "sd2", "sp2", NOW).await,
        Err(AdminError::NotApproved(_))
    ));
    w.admin.approve_sp(&w.oem, "sp2", true, NOW).await.unwrap();
    let sp2 = w.admin.authenticate(&tok).await.unwrap();
    w.admin.create_sd(&sp2, "sd2", "sp2", NOW).await.unwrap();

    assert_eq!(w.admin.components(&sp2).await.unwrap(), vec![]);
    assert_eq!(w.admin.components(&w.sp).await.unwrap().len(), 1);
    assert_eq!(w.admin.components(&w.oem).await.unwrap().len(), 1);
    assert!(matches!(
        w.admin.component(&sp2, &w.component).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        w.admin
            .create_deployment(
                &sp2,
                &w.component,
                DeploymentAction::Remove,
                Target::All,
                Rollout::Full,
                NOW
            )
            .await,
        Err(AdminError::NotFound(_))
    ));
    let dep = w.admin.deployments(&w.sp).await.unwrap()[0].id;
    assert!(w.admin.deployments(&sp2).await.unwrap().is_empty());
    assert!(matches!(
        w.admin
            .set_deployment_state(&sp2, dep, DeploymentState::Aborted, NOW)
            .await,
        Err(AdminError::NotFound(_))
    ));
    // sp2 signs a newer manifest for sp1's component: into sp1's SD, then into its own.
    let sp2_key = PrivateKey::generate(KeyKind::P256, &mut r).unwrap();
    let env = signed_envelope(&sp2_key, &w.component_id, 9, b"evil");
    assert!(matches!(
        w.admin
            .register_manifest(&sp2, "sd1", "x", &env, &[sp2_key.public_key()], NOW)
            .await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        w.admin
            .register_manifest(&sp2, "sd2", "x", &env, &[sp2_key.public_key()], NOW)
            .await,
        Err(AdminError::Forbidden(_))
    ));
    // An envelope not signed by the SP's key is refused; sequence numbers must grow.
    let env_sp1 = signed_envelope(&w.sp_key, &w.component_id, 1, b"again");
    assert!(matches!(
        w.admin
            .register_manifest(
                &w.sp,
                "sd1",
                "hello",
                &env_sp1,
                &[sp2_key.public_key()],
                NOW
            )
            .await,
        Err(AdminError::Envelope(_))
    ));
    assert!(matches!(
        w.admin
            .register_manifest(
                &w.sp,
                "sd1",
                "hello",
                &env_sp1,
                &[w.sp_key.public_key()],
                NOW
            )
            .await,
        Err(AdminError::Store(
            otrp_store::StoreError::SequenceNotGrowing { .. }
        ))
    ));
    assert_eq!(w.admin.sds(&sp2).await.unwrap().len(), 1);
    // Every action, refusals included, is in the audit log.
    let log = w.store.audit(100).await.unwrap();
    assert!(log.iter().any(|a| a.actor == "sp2"
        && a.action == "deployment.aborted"
        && a.detail.starts_with("refused")));
    assert!(log.iter().any(|a| a.actor == "sp2"
        && a.action == "manifest.register"
        && a.detail.starts_with("refused")));
    assert!(log
        .iter()
        .any(|a| a.actor == "oem" && a.action == "sp.approve"));
}

#[tokio::test]
async fn unneeded_and_removed_components_are_deleted() {
    let mut dev = Device::new(10, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    full_exchange(&mut w, &mut dev, NOW).await;
    // The device no longer needs an extra component it has (UnrequestTA).
    dev.installed
        .push((vec![b"old-ta".to_vec()], vec![1, 2, 3]));
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 10).await;
    let qr = query_request(&v);
    let resp = query_response(&dev, &qr)
        .with_unneeded_manifest_list(vec![otrp_teep::ComponentId(vec![b"old-ta".to_vec()])]);
    let body = dev.sign(&TeepMessage::QueryResponse(resp), false);
    let Outcome::Reply(up) = w.step(None, &body, NOW + 11).await.unwrap() else {
        panic!()
    };
    let up = update(&open(&w.tam_pub, &up));
    assert!(up.manifest_list.is_none());
    assert_eq!(up.unneeded_manifest_list.as_ref().map(Vec::len), Some(1));
    let succ = success(&mut dev, &up);
    assert_eq!(w.step(None, &succ, NOW + 12).await.unwrap(), Outcome::Done);
    assert_eq!(dev.installed.len(), 1);

    // The SP removes its TA from the fleet.
    let dep = w.admin.deployments(&w.sp).await.unwrap()[0].id;
    w.admin
        .set_deployment_state(&w.sp, dep, DeploymentState::Aborted, NOW)
        .await
        .unwrap();
    w.admin
        .create_deployment(
            &w.sp,
            &w.component,
            DeploymentAction::Remove,
            Target::Device(dev.id()),
            Rollout::Full,
            NOW,
        )
        .await
        .unwrap();
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 20).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let Outcome::Reply(up) = w.step(None, &body, NOW + 21).await.unwrap() else {
        panic!()
    };
    let up = update(&open(&w.tam_pub, &up));
    assert_eq!(
        up.unneeded_manifest_list.unwrap()[0].0,
        w.component_id,
        "the deployed TA is unlinked"
    );
}

#[tokio::test]
async fn staged_rollout_pause_and_requested_components() {
    let mut a = Device::new(11, KeyKind::P256);
    let mut b = Device::new(12, KeyKind::P256);
    let mut w = World::new(&[&a, &b], TamConfig::default(), Policy::OemGated).await;
    let dep = w.admin.deployments(&w.sp).await.unwrap()[0].id;
    // Replace the full rollout with one limited to a single device.
    w.admin
        .set_deployment_state(&w.sp, dep, DeploymentState::Aborted, NOW)
        .await
        .unwrap();
    let staged = w
        .admin
        .create_deployment(
            &w.sp,
            &w.component,
            DeploymentAction::Install,
            Target::Model(MODEL.into()),
            Rollout::Count(1),
            NOW,
        )
        .await
        .unwrap();
    full_exchange(&mut w, &mut a, NOW).await;
    // b is beyond the count: nothing for it.
    let (v, _) = w.open_session(None, NOW + 5).await;
    let body = b.sign(
        &TeepMessage::QueryResponse(query_response(&b, &query_request(&v))),
        false,
    );
    assert_eq!(w.step(None, &body, NOW + 6).await.unwrap(), Outcome::Done);
    let (targeted, counts) = w.admin.deployment_progress(&w.sp, staged).await.unwrap();
    assert_eq!((targeted, counts.done), (2, 1));
    // Paused deployments deliver nothing either; but b can still request the TA itself.
    w.admin
        .set_deployment_state(&w.sp, staged, DeploymentState::Paused, NOW)
        .await
        .unwrap();
    let (v, _) = w.open_session(Some(&b.id()), NOW + 7).await;
    let resp = with_requested(query_response(&b, &query_request(&v)), &w.component_id);
    let body = b.sign(&TeepMessage::QueryResponse(resp), false);
    let Outcome::Reply(up) = w.step(None, &body, NOW + 8).await.unwrap() else {
        panic!()
    };
    let up = update(&open(&w.tam_pub, &up));
    let succ = success(&mut b, &up);
    assert_eq!(w.step(None, &succ, NOW + 9).await.unwrap(), Outcome::Done);
    assert_eq!(b.installed.len(), 1);
    // Percent 0 reaches nobody.
    w.admin
        .set_deployment_state(&w.sp, staged, DeploymentState::Aborted, NOW)
        .await
        .unwrap();
    let p0 = w
        .admin
        .create_deployment(
            &w.sp,
            &w.component,
            DeploymentAction::Remove,
            Target::All,
            Rollout::Percent(0),
            NOW,
        )
        .await
        .unwrap();
    let (v, _) = w.open_session(Some(&a.id()), NOW + 10).await;
    let body = a.sign(
        &TeepMessage::QueryResponse(query_response(&a, &query_request(&v))),
        false,
    );
    assert_eq!(w.step(None, &body, NOW + 11).await.unwrap(), Outcome::Done);
    assert_eq!(
        w.admin.deployment_progress(&w.sp, p0).await.unwrap().1.sent,
        0
    );
}

#[tokio::test]
async fn dual_control_delivers_only_cosigned_manifests() {
    let dev = Device::new(13, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::DualControl).await;
    w.admin
        .create_deployment(
            &w.sp,
            &w.component,
            DeploymentAction::Install,
            Target::All,
            Rollout::Full,
            NOW,
        )
        .await
        .unwrap();
    let (v, _) = w.open_session(None, NOW).await;
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &query_request(&v))),
        false,
    );
    assert_eq!(
        w.step(None, &body, NOW + 1).await.unwrap(),
        Outcome::Done,
        "nothing deliverable before the OEM co-signs"
    );
    let m = w.store.manifest(&w.component, 1).await.unwrap().unwrap();
    let mut env = otrp_suit::Envelope::decode(&m.envelope).unwrap();
    let oem_key = PrivateKey::generate(KeyKind::P256, &mut rng(31)).unwrap();
    // The SP cannot co-sign in the OEM's place.
    assert!(matches!(
        w.admin
            .cosign_manifest(
                &w.sp,
                &w.component,
                1,
                &m.envelope,
                &[oem_key.public_key()],
                NOW
            )
            .await,
        Err(AdminError::Forbidden(_))
    ));
    env.add_signature(provider(), &oem_key, &Default::default())
        .unwrap();
    let cosigned = env.encode().unwrap();
    w.admin
        .cosign_manifest(
            &w.oem,
            &w.component,
            1,
            &cosigned,
            &[oem_key.public_key()],
            NOW,
        )
        .await
        .unwrap();
    let (v, _) = w.open_session(Some(&dev.id()), NOW + 2).await;
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &query_request(&v))),
        false,
    );
    let Outcome::Reply(up) = w.step(None, &body, NOW + 3).await.unwrap() else {
        panic!()
    };
    let up = update(&open(&w.tam_pub, &up));
    assert_eq!(up.manifest_list.unwrap()[0], cosigned);
}

/// Stateless QueryRequest tokens (`otrp_tam::query_token`): an empty POST writes
/// nothing; the answer is accepted by any TAM with the same signing keys and store (a
/// replica, or this TAM restarted), spent once, and refused by a TAM with other keys.
#[tokio::test]
async fn opening_a_session_writes_nothing_and_a_replica_accepts_the_answer_once() {
    let dev = Device::new(21, KeyKind::P256);
    let mut w = World::new(&[&dev], TamConfig::default(), Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let qr = query_request(&v);
    let t = qr.token.clone().unwrap();
    assert_eq!(t.len(), 16);
    assert!(
        w.store.token(&t).await.unwrap().is_none(),
        "an empty POST wrote a token row"
    );
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let replica = w.replica();
    let out = replica
        .process(None, &body, NOW + 1, &mut rng(5))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Reply(_)), "{out:?}");
    let spent = w.store.token(&t).await.unwrap().unwrap();
    assert_eq!(spent.consumed_at, Some(NOW + 1));
    // The first TAM refuses the same answer: the token is spent in the shared store.
    match w.step(None, &body, NOW + 2).await {
        Err(TamError::TokenReplayed) => {}
        other => panic!("replayed QueryResponse: {other:?}"),
    }

    // A TAM with other signing keys did not issue the next token.
    let (v, _) = w.open_session(None, NOW + 3).await;
    let qr = query_request(&v);
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(&dev, &qr)),
        false,
    );
    let mut r = rng(77);
    let stranger = Tam::new(
        w.store.clone(),
        w.verifier.clone(),
        otrp_tam::TamKeys {
            p256: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
            ed25519: PrivateKey::generate(KeyKind::Ed25519, &mut r).unwrap(),
        },
        TamConfig::default(),
        provider(),
    );
    match stranger.process(None, &body, NOW + 4, &mut r).await {
        Err(TamError::TokenUnknown) => {}
        other => panic!("token of another TAM: {other:?}"),
    }
    // Nor did this TAM issue a token with one bit changed.
    let mut flipped = qr.token.clone().unwrap();
    flipped[3] ^= 0x01;
    let mut forged = query_response(&dev, &qr);
    forged.token = Some(flipped);
    let body = dev.sign(&TeepMessage::QueryResponse(forged), false);
    match w.step(None, &body, NOW + 4).await {
        Err(TamError::TokenUnknown) => {}
        other => panic!("tampered token: {other:?}"),
    }
}

/// With `stateless_query_tokens = false` the token and challenge are stored when the
/// QueryRequest is sent, and the exchange works as before.
#[tokio::test]
async fn stored_query_tokens_still_work() {
    let mut dev = Device::new(22, KeyKind::P256);
    let config = TamConfig {
        stateless_query_tokens: false,
        ..TamConfig::default()
    };
    let mut w = World::new(&[&dev], config, Policy::OemGated).await;
    let (v, _) = w.open_session(None, NOW).await;
    let t = query_request(&v).token.unwrap();
    let rec = w.store.token(&t).await.unwrap().unwrap();
    assert_eq!(rec.consumed_at, None);
    assert!(rec.challenge.is_some());
    full_exchange(&mut w, &mut dev, NOW + 10).await;
}

/// Runs a session up to the Update (evidence sent) and returns it.
async fn up_to_update(w: &mut World, dev: &Device, now: u64) -> otrp_teep::Update {
    let (v, _) = w.open_session(None, now).await;
    let body = dev.sign(
        &TeepMessage::QueryResponse(query_response(dev, &query_request(&v))),
        false,
    );
    let Outcome::Reply(up) = w.step(None, &body, now + 1).await.unwrap() else {
        panic!("expected an Update")
    };
    update(&open(&w.tam_pub, &up))
}

/// The TAM remembers the Update tokens it issued, so that the answer is checked without
/// reading the token back; what it remembers never changes what is accepted. An answer
/// signed with another key bound to the device is checked against the store's keys; a
/// forged one is refused without spending the token, and the genuine one is accepted
/// after it; an accepted Success is spent in the store, where a replica refuses it.
#[tokio::test]
async fn answers_to_remembered_updates_are_judged_as_the_store_would() {
    let mut a = Device::new(23, KeyKind::P256);
    let mut b = Device::new(24, KeyKind::P256);
    let mut w = World::new(&[&a, &b], TamConfig::default(), Policy::OemGated).await;
    let mut r = rng(23);

    // a: its Agent has a second key bound since the QueryResponse, and signs with it.
    let up = up_to_update(&mut w, &a, NOW).await;
    let second = PrivateKey::generate(KeyKind::P256, &mut r).unwrap();
    let second_pub = second.public_key();
    w.store
        .put_agent_key(&otrp_store::model::AgentKeyRecord {
            kid: otrp_crypto::thumbprint::cose_key_thumbprint(&second_pub, provider()).to_vec(),
            device_id: a.id(),
            cose_key: otrp_cose::coset::CborSerializable::to_vec(otrp_cose::cose_key_from_public(
                &second_pub,
            ))
            .unwrap(),
            bound_at: NOW + 1,
        })
        .await
        .unwrap();
    a.agent_key = second;
    let succ = success(&mut a, &up);
    assert_eq!(w.step(None, &succ, NOW + 2).await.unwrap(), Outcome::Done);

    // b: a Success signed by a key bound to no device is refused and spends nothing.
    let up = up_to_update(&mut w, &b, NOW + 10).await;
    let token = up.token.clone().unwrap();
    let genuine = std::mem::replace(
        &mut b.agent_key,
        PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
    );
    let forged = success(&mut b, &up);
    match w.step(None, &forged, NOW + 12).await {
        Err(TamError::BadSignature(_) | TamError::UnknownAgentKey(_)) => {}
        other => panic!("forged Success: {other:?}"),
    }
    let stored = w.store.token(&token).await.unwrap().unwrap();
    assert_eq!(
        stored.consumed_at, None,
        "a refused Success spent the token"
    );
    b.agent_key = genuine;
    let succ = success(&mut b, &up);
    assert_eq!(w.step(None, &succ, NOW + 13).await.unwrap(), Outcome::Done);

    // Both answers are recorded and spent in the store: this TAM and a replica refuse
    // them again.
    for d in [&a, &b] {
        let p = w.store.device_progress(&d.id()).await.unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].state, ProgressState::Done, "{}", d.id());
    }
    let replica = w.replica();
    for tam in [&w.tam, &replica] {
        match tam.process(None, &succ, NOW + 14, &mut r).await {
            Err(TamError::TokenReplayed) => {}
            other => panic!("replayed Success: {other:?}"),
        }
    }
}
