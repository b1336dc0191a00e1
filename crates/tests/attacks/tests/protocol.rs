//! Replays, rollback, a rogue TAM and cross-SP access, with the real TAM core (SQLite)
//! and the real Agent; every refusal leaves the refusing party's store unchanged.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_agent::{Management, TrustedTam};
use otrp_attack_tests::agent::{
    component, key, oem_tams, provider, ta_manifest, AgentDevice, ScriptedTam,
};
use otrp_attack_tests::pair::{image, Pair};
use otrp_attack_tests::pki;
use otrp_attack_tests::tam::{TamWorld, NOW};
use otrp_crypto::KeyKind;
use otrp_store::{DeploymentAction, DeploymentState, ProgressState, Rollout, StoreError, Target};
use otrp_suit::{CborItem, ReportReason, ReportResult, SuitReport};
use otrp_tam::{AdminError, Outcome, Policy, TamError, TamKeys};
use otrp_teep::{ErrCode, TeepMessage};

fn failure_reasons(e: &otrp_teep::Error) -> Vec<ReportReason> {
    e.suit_reports
        .iter()
        .flatten()
        .filter_map(|b| match SuitReport::from_cbor(b).ok()?.result {
            ReportResult::Failure { reason, .. } => Some(reason),
            ReportResult::Success => None,
        })
        .collect()
}

fn agent_error(d: &AgentDevice, send: Option<&[u8]>) -> otrp_teep::Error {
    match d.open(send) {
        Some(TeepMessage::Error(e)) => e,
        other => panic!("expected an Error, got {other:?}"),
    }
}

/// Threat T2 (replay by the Broker or the network): the TAM core's Update delivered a
/// second time is refused by the Agent (its token was answered) with the store as after
/// the first delivery; the same holds for a replayed QueryRequest.
#[tokio::test]
async fn replayed_update_and_query_request_are_refused_by_the_agent() {
    let mut p = Pair::new(21).await;
    let (qr, _, update) = p.until_update(NOW).await;
    assert!(p.dev.succeeds(&update, NOW + 2));
    let after = p.dev.snapshot();
    let out = p.dev.agent.handle(&update, NOW + 3);
    let e = agent_error(&p.dev, out.send.as_deref());
    assert_eq!(e.err_code, ErrCode::PermanentError);
    assert!(e.err_msg.unwrap_or_default().contains("replayed"));
    assert!(p.dev.snapshot() == after);
    assert_eq!(p.dev.refusal(&qr, NOW + 4), Some(ErrCode::PermanentError));
    assert!(p.dev.snapshot() == after);
}

/// Threat T2 against the TAM: a Success replayed, a QueryResponse replayed with its
/// (consumed) token, an Error replayed, and a QueryResponse answering a session whose
/// token expired are each refused, and no row of the store changes.
#[tokio::test]
async fn replayed_success_and_query_response_are_refused_by_the_tam() {
    let mut p = Pair::new(22).await;
    let (_, resp, update) = p.until_update(NOW).await;
    let success = p.dev.agent.handle(&update, NOW + 2).send.unwrap();
    assert_eq!(
        p.world.step(&success, NOW + 3).await.unwrap(),
        Outcome::Done
    );
    let before = p.world.snapshot().await;
    assert!(matches!(
        p.world.step(&success, NOW + 4).await,
        Err(TamError::TokenReplayed)
    ));
    assert!(matches!(
        p.world.step(&resp, NOW + 5).await,
        Err(TamError::TokenReplayed)
    ));
    assert!(p.world.snapshot().await == before);
    // A later session: the old QueryResponse (old token, old evidence) is still refused.
    let Outcome::Reply(qr2) = p.world.step(&[], NOW + 10).await.unwrap() else {
        panic!("no QueryRequest")
    };
    let before = p.world.snapshot().await;
    assert!(matches!(
        p.world.step(&resp, NOW + 11).await,
        Err(TamError::TokenReplayed)
    ));
    assert!(p.world.snapshot().await == before);
    // The Agent's answer after the token expired (TTL 6 h).
    let late = p.dev.agent.handle(&qr2, NOW + 12).send.unwrap();
    assert!(matches!(
        p.world.step(&late, NOW + 7 * 3600).await,
        Err(TamError::TokenExpired)
    ));
    assert!(p.world.snapshot().await == before);
}

/// Threat T3 (rollback): after installing sequence number N = 5, a validly signed
/// manifest with each earlier sequence number 0..=4 — and the same number 5 with other
/// content — is refused by the Agent (Error 17 with a SUIT report) and the store is
/// unchanged.
#[tokio::test]
async fn rollback_to_each_earlier_sequence_number_is_refused_by_the_agent() {
    let keys = otrp_attack_tests::tam::tam_keys(1);
    let mut tam = ScriptedTam::new(keys.p256.clone());
    let mut dev = AgentDevice::new(
        31,
        oem_tams(&[keys.p256.public_key()]),
        vec![],
        Management::OemGated,
    );
    let signer = key(3105, KeyKind::P256);
    tam.create_sd(&mut dev, b"sd-a", "sp-a", vec![signer.public_key()], NOW);
    let c = component(b"sd-a", b"app");
    for seq in [1, 3, 5] {
        let msg = tam.update(vec![ta_manifest(&c, seq, &image(seq), &signer)], vec![]);
        assert!(dev.succeeds(&msg, NOW + seq), "seq {seq}");
    }
    let installed = dev.snapshot();
    assert_eq!(installed.images.get(&c).unwrap(), &image(5));
    for seq in 0..=5u64 {
        let body = if seq == 5 {
            b"other".to_vec()
        } else {
            image(seq)
        };
        let msg = tam.update(vec![ta_manifest(&c, seq, &body, &signer)], vec![]);
        let out = dev.agent.handle(&msg, NOW + 10 + seq);
        let e = agent_error(&dev, out.send.as_deref());
        assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed, "seq {seq}");
        assert_eq!(
            failure_reasons(&e),
            vec![ReportReason::Unauthorised],
            "seq {seq}"
        );
        assert!(dev.snapshot() == installed, "seq {seq} changed the store");
    }
}

/// Threat T3 at the TAM: once sequence number 5 is registered, registering the same
/// component with 1..=5 is refused (the catalog's sequence numbers must grow).
#[tokio::test]
async fn the_tam_refuses_a_manifest_whose_sequence_number_does_not_grow() {
    let p = Pair::new(32).await;
    let env5 = ta_manifest(&p.component, 5, &image(5), &p.signer);
    p.world
        .admin
        .register_manifest(&p.sp, "sd-a", "app", &env5, &[p.signer.public_key()], NOW)
        .await
        .unwrap();
    for seq in 1..=5u64 {
        let env = ta_manifest(&p.component, seq, b"older", &p.signer);
        let r = p
            .world
            .admin
            .register_manifest(&p.sp, "sd-a", "app", &env, &[p.signer.public_key()], NOW)
            .await;
        assert!(
            matches!(
                r,
                Err(AdminError::Store(StoreError::SequenceNotGrowing { .. }))
            ),
            "seq {seq}: {r:?}"
        );
    }
    let latest = p
        .world
        .store
        .latest_manifest(&p.component_key, true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.seq, 5);
}

/// Threat T4 (rogue TAM): a TAM holding a *valid* certificate from another PKI (same
/// tamid, its own root) is not accepted by the TEE shell's chain check against the
/// device's TAM anchors, so the Agent does not trust its key: its QueryRequest and
/// Updates — from a whole rogue TAM core, and hand-made ones claiming the genuine TAM's
/// kid — are refused and the Agent's store is unchanged. The genuine TAM, validated the
/// same way, is accepted.
#[tokio::test]
async fn a_rogue_tam_with_a_certificate_from_another_root_is_refused_by_the_agent() {
    let mut pki_a = pki::pki(41, "Device OEM");
    let mut pki_b = pki::pki(42, "Rogue Operator");
    let genuine = pki::tam_signer(&mut pki_a, 43, "tam", "tam.opentrust.test");
    let rogue = pki::tam_signer(&mut pki_b, 44, "tam", "tam.opentrust.test");
    let anchors = pki::tam_anchors(&pki_a);
    // The TEE shell: only TAM keys whose chain validates to the anchors are trusted.
    let validate = |chain: &[Vec<u8>]| {
        anchors.verify(
            &chain[0],
            &chain[1..],
            otrp_pki::Usage::TamSigner,
            pki::now(),
        )
    };
    let ok = validate(&pki::tam_chain(&pki_a, &genuine)).unwrap();
    let refused = validate(&pki::tam_chain(&pki_b, &rogue));
    assert!(
        matches!(refused, Err(otrp_pki::ChainError::UnknownIssuer)),
        "{refused:?}"
    );
    // Even the rogue leaf presented with the genuine issuing CA does not chain.
    assert!(validate(&[
        rogue.cert_der.clone(),
        pki_a
            .ca_cert_der(otrp_pki::CaRole::Tam, otrp_pki::CaLevel::Issuing)
            .unwrap()
    ])
    .is_err());
    let mut dev = AgentDevice::new(
        45,
        vec![TrustedTam {
            key: ok.public_key.clone(),
            oem: true,
        }],
        vec![],
        Management::OemGated,
    );
    let signer = key(4505, KeyKind::P256);
    let mut good = ScriptedTam::new(genuine.key.clone());
    good.create_sd(&mut dev, b"sd-a", "sp-a", vec![signer.public_key()], NOW);
    let before = dev.snapshot();
    // A whole rogue TAM core with the rogue key, talking to the device.
    let mut rogue_world = TamWorld::with_keys(
        Policy::OemGated,
        &[(dev.ueid.as_slice(), dev.attestation_key.public_key())],
        TamKeys {
            p256: rogue.key.clone(),
            ed25519: key(4402, KeyKind::Ed25519),
        },
    )
    .await;
    let Outcome::Reply(qr) = rogue_world.step(&[], NOW).await.unwrap() else {
        panic!("no QueryRequest")
    };
    assert_eq!(dev.refusal(&qr, NOW), Some(ErrCode::BadCertificate));
    // Hand-made rogue Updates: a TA into the genuine SD, and an SD takeover.
    let mut r = ScriptedTam::new(rogue.key.clone());
    let c = component(b"sd-a", b"app");
    let ta = ta_manifest(&c, 1, &image(1), &signer);
    assert_eq!(
        dev.refusal(&r.update(vec![ta.clone()], vec![]), NOW),
        Some(ErrCode::BadCertificate)
    );
    let takeover = otrp_agent::SdDescriptor {
        name: b"sd-a".to_vec(),
        sp_id: "sp-a".into(),
        signers: vec![rogue.key.public_key()],
        authorization: None,
        tam: None,
    };
    let msg = r.update(vec![r.sd_manifest(&takeover, 2)], vec![]);
    assert_eq!(dev.refusal(&msg, NOW), Some(ErrCode::BadCertificate));
    // The rogue claims the genuine TAM's kid: the signature does not verify.
    let up = otrp_teep::Update::new()
        .with_token(b"rogue-token".to_vec())
        .with_manifests(vec![ta.clone()]);
    let payload = TeepMessage::Update(up).to_vec().unwrap();
    let spoofed = otrp_cose::sign1(
        provider(),
        &rogue.key,
        &payload,
        false,
        &otrp_cose::SignOptions {
            kid: otrp_cose::KidMode::Explicit(
                otrp_attack_tests::agent::kid(&ok.public_key).to_vec(),
            ),
            ..otrp_cose::SignOptions::default()
        },
    )
    .unwrap();
    assert_eq!(dev.refusal(&spoofed, NOW), Some(ErrCode::PermanentError));
    assert!(dev.snapshot() == before);
    // The genuine TAM's Update with the same manifest installs.
    assert!(dev.succeeds(&good.update(vec![ta], vec![]), NOW + 1));
}

/// Threat T4 in the OTrP profile: an InstallTA signed by a TAM whose valid certificate
/// chains to another root is refused by the OTrP path (chain check), while the same
/// request from the genuine TAM is accepted.
#[test]
fn a_rogue_tam_install_ta_is_refused_by_the_otrp_path() {
    use otrp_attack_tests::otrp::{install_ta_request, verify_install_ta, OtrpRefusal};
    let mut pki_a = pki::pki(46, "Device OEM");
    let mut pki_b = pki::pki(47, "Rogue Operator");
    let genuine = pki::tam_signer(&mut pki_a, 48, "tam", "tam.opentrust.test");
    let rogue = pki::tam_signer(&mut pki_b, 49, "tam", "tam.opentrust.test");
    let anchors = pki::tam_anchors(&pki_a);
    let tee = key(50, KeyKind::P256);
    let req = |k: &otrp_crypto::PrivateKey, chain| {
        install_ta_request(provider(), k, chain, &tee.public_key(), "sd", "sd.ta", 1)
    };
    let good = req(&genuine.key, pki::x5c(&pki::tam_chain(&pki_a, &genuine)));
    assert!(verify_install_ta(provider(), &good, &anchors, &tee, pki::now()).is_ok());
    let bad = req(&rogue.key, pki::x5c(&pki::tam_chain(&pki_b, &rogue)));
    let r = verify_install_ta(provider(), &bad, &anchors, &tee, pki::now());
    assert!(
        matches!(
            r,
            Err(OtrpRefusal::Chain(otrp_pki::ChainError::UnknownIssuer))
        ),
        "{r:?}"
    );
    // The rogue signs but presents the genuine chain: the JWS does not verify.
    let mixed = req(&rogue.key, pki::x5c(&pki::tam_chain(&pki_a, &genuine)));
    let r = verify_install_ta(provider(), &mixed, &anchors, &tee, pki::now());
    assert!(matches!(r, Err(OtrpRefusal::Signature(_))), "{r:?}");
}

/// Threat T5 (an SP reaching into another SP's SD) at the TAM: SP A cannot register
/// into SP B's SD, take over B's component, create an SD for B, deploy, pause or read
/// B's deployments, or co-sign; every refusal is audited and nothing of B's changes.
#[tokio::test]
async fn sp_a_cannot_reach_into_sp_bs_sd_at_the_tam() {
    let mut p = Pair::new(51).await;
    let (sp_b, signer_b) = p.world.sp("sp-b", "sd-b", 5105).await;
    let c_b = component(b"sd-b", b"app");
    let env_b = ta_manifest(&c_b, 1, &image(1), &signer_b);
    let reg_b = p
        .world
        .admin
        .register_manifest(
            &sp_b,
            "sd-b",
            "b-app",
            &env_b,
            &[signer_b.public_key()],
            NOW,
        )
        .await
        .unwrap();
    let dep_b = p
        .world
        .admin
        .create_deployment(
            &sp_b,
            &reg_b.component,
            DeploymentAction::Install,
            Target::All,
            Rollout::Full,
            NOW,
        )
        .await
        .unwrap();
    let before = p.world.store.components(Some("sp-b")).await.unwrap();
    let sp_a = p.sp.clone();
    let a_key = p.signer.public_key();
    let admin = &p.world.admin;
    // Into B's SD, with A's signature or with a copy of B's genuine envelope.
    let env = ta_manifest(&c_b, 2, b"evil", &p.signer);
    for (e, keys) in [
        (&env, vec![a_key.clone()]),
        (&env_b, vec![signer_b.public_key()]),
    ] {
        assert!(matches!(
            admin
                .register_manifest(&sp_a, "sd-b", "x", e, &keys, NOW)
                .await,
            Err(AdminError::NotFound(_))
        ));
    }
    // B's component through A's own SD.
    assert!(matches!(
        admin
            .register_manifest(&sp_a, "sd-a", "x", &env, std::slice::from_ref(&a_key), NOW)
            .await,
        Err(AdminError::Forbidden(_))
    ));
    assert!(matches!(
        admin.create_sd(&sp_a, "sd-b2", "sp-b", NOW).await,
        Err(AdminError::Forbidden(_))
    ));
    assert!(matches!(
        admin
            .create_deployment(
                &sp_a,
                &reg_b.component,
                DeploymentAction::Remove,
                Target::All,
                Rollout::Full,
                NOW
            )
            .await,
        Err(AdminError::NotFound(_))
    ));
    for state in [DeploymentState::Paused, DeploymentState::Aborted] {
        assert!(matches!(
            admin.set_deployment_state(&sp_a, dep_b, state, NOW).await,
            Err(AdminError::NotFound(_))
        ));
    }
    assert!(matches!(
        admin.deployment_progress(&sp_a, dep_b).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin.component(&sp_a, &reg_b.component).await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        admin
            .cosign_manifest(&sp_a, &reg_b.component, 1, &env_b, &[a_key], NOW)
            .await,
        Err(AdminError::Forbidden(_))
    ));
    assert!(admin
        .sds(&sp_a)
        .await
        .unwrap()
        .iter()
        .all(|s| s.sp_id == "sp-a"));
    assert_eq!(
        p.world.store.components(Some("sp-b")).await.unwrap(),
        before
    );
    let d = p.world.store.deployment(dep_b).await.unwrap().unwrap();
    assert_eq!(d.state, DeploymentState::Active);
    let refused = p
        .world
        .store
        .audit(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.actor == "sp-a" && a.detail.starts_with("refused"))
        .count();
    assert!(refused >= 7, "{refused} audited refusals");
}

/// Threat T5 at the Agent, through the TAM core: SP A's manifest (signed by A's TA
/// signer) for a component in SP B's SD, delivered by the device's own TAM, is refused
/// by the Agent (Error 17, component unauthorised: A's signer is not one of the SD's
/// signers); B's TA stays as it was and the TAM records the failure.
#[tokio::test]
async fn sp_a_cannot_reach_into_sp_bs_sd_at_the_agent() {
    let mut p = Pair::new(52).await;
    // SP B, its SD on the device, and its TA installed.
    let signer_b = key(5205, KeyKind::P256);
    p.scripted.create_sd(
        &mut p.dev,
        b"sd-b",
        "sp-b",
        vec![signer_b.public_key()],
        NOW - 5,
    );
    let c_b = component(b"sd-b", b"app");
    let msg = p
        .scripted
        .update(vec![ta_manifest(&c_b, 1, b"B's TA", &signer_b)], vec![]);
    assert!(p.dev.succeeds(&msg, NOW - 4));
    // Install A's deployed TA first (a clean exchange).
    let log = otrp_attack_tests::tam::exchange(&mut p.world, &mut p.dev, NOW).await;
    assert!(log.done);
    // SP A registers, in its own TAM SD, a manifest whose component lies in the
    // device's SD "sd-b", and deploys it.
    let evil = ta_manifest(&c_b, 2, b"A's code in B's SD", &p.signer);
    let reg = p
        .world
        .admin
        .register_manifest(&p.sp, "sd-a", "evil", &evil, &[p.signer.public_key()], NOW)
        .await
        .unwrap();
    p.world
        .admin
        .create_deployment(
            &p.sp,
            &reg.component,
            DeploymentAction::Install,
            Target::All,
            Rollout::Full,
            NOW,
        )
        .await
        .unwrap();
    let (_, _, update) = p.until_update(NOW + 100).await;
    let before = p.dev.snapshot();
    let out = p.dev.agent.handle(&update, NOW + 102);
    let e = agent_error(&p.dev, out.send.as_deref());
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(
        failure_reasons(&e),
        vec![ReportReason::ComponentUnauthorised]
    );
    assert!(p.dev.snapshot() == before);
    assert_eq!(
        p.dev.agent.store().images.get(&c_b).map(Vec::as_slice),
        Some(&b"B's TA"[..])
    );
    assert_eq!(
        p.world.step(&out.send.unwrap(), NOW + 103).await.unwrap(),
        Outcome::Done
    );
    let device_id = hex::encode(&p.dev.ueid);
    let progress = p.world.store.device_progress(&device_id).await.unwrap();
    assert!(progress
        .iter()
        .any(|r| r.component == reg.component && r.state == ProgressState::Failed));
}
