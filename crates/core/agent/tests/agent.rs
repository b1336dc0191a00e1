//! The Agent driven by a scripted TAM: install, update, personalization, delete, and
//! every attack of DESIGN.md §6 refused with the store unchanged.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use otrp_agent::{Event, Management, SdDescriptor, TrustedTam};
use otrp_cose::SignOptions;
use otrp_crypto::{KeyKind, SigAlg};
use otrp_suit::{CborItem, ReportReason, ReportResult, SuitReport, TaManifestBuilder};
use otrp_teep::{DataItemRequested, ErrCode, TeepCipherSuite, TeepMessage};

fn tam_only(tam: &ScriptedTam) -> Vec<TrustedTam> {
    vec![TrustedTam {
        key: tam.public(),
        oem: false,
    }]
}

/// A device managed by one (OEM) TAM with SD "TEEP-Device" for the vector signer.
fn provisioned() -> (Device, ScriptedTam) {
    let mut tam = ScriptedTam::new(1);
    let mut d = device(
        vec![TrustedTam {
            key: tam.public(),
            oem: true,
        }],
        vec![],
        Management::OemOwnedSds,
    );
    let mut desc = descriptor(b"TEEP-Device", "acme", vec![vector_signer().public_key()]);
    desc.tam = Some(tam.kid());
    let sd = tam.sd_manifest(&desc, 1);
    let out = d.agent.handle(&tam.update(vec![sd], vec![]), 1);
    expect_success(&d, &out.send);
    assert!(out.events.contains(&Event::SdCreated {
        name: b"TEEP-Device".to_vec()
    }));
    (d, tam)
}

fn reports(bytes: &Option<Vec<Vec<u8>>>) -> Vec<SuitReport> {
    bytes
        .iter()
        .flatten()
        .map(|b| SuitReport::from_cbor(b).unwrap())
        .collect()
}

fn failure_reason(r: &SuitReport) -> ReportReason {
    match &r.result {
        ReportResult::Failure { reason, .. } => *reason,
        ReportResult::Success => panic!("report says success"),
    }
}

fn ta_v(seq: u64, image: &[u8]) -> Vec<u8> {
    TaManifestBuilder::new(ta_id(), seq)
        .vendor_id(VENDOR)
        .class_id(CLASS)
        .image_of(image)
        .integrated_payload("#tc", image.to_vec())
        .manifest_component_id(ta_manifest_id())
        .uninstall(true)
        .build_signed(provider(), &vector_signer(), &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn query_response_carries_attestation_and_tc_list() {
    let (mut d, mut tam) = provisioned();
    let items = DataItemRequested(
        DataItemRequested::ATTESTATION.bits() | DataItemRequested::TRUSTED_COMPONENTS.bits(),
    );
    d.agent.request_ta(ta_id());
    let qr = tam.query_request(items);
    let out = d.agent.handle(&qr, 10);
    let TeepMessage::QueryResponse(resp) = answer(&d, &out.send) else {
        panic!("expected QueryResponse");
    };
    assert_eq!(resp.token.as_deref(), Some(&b"token-00001002"[..]));
    // Evidence: signed by the attestation key, nonce = challenge, cnf = the Agent's key
    // as a whole COSE_Key (its thumbprint alone could not authenticate a first contact).
    let evidence = resp.attestation_payload.unwrap();
    let v = otrp_eat::signed::verify(provider(), &evidence, &[d.attestation_key.clone()]).unwrap();
    assert_eq!(v.claims.nonce(), Some(&b"challenge-0123456789"[..]));
    let cnf_key = v
        .claims
        .cnf
        .as_ref()
        .and_then(|c| c.cose_key())
        .unwrap()
        .unwrap();
    assert_eq!(
        otrp_cose::public_from_cose_key(&cnf_key).unwrap(),
        d.agent_key
    );
    assert_eq!(v.claims.ueid, Some(vec![0x01; 33]));
    // The TEE firmware is always listed, so `manifests` is never empty (RFC 9711 `[+ ...]`).
    assert!(v.claims.manifests.as_ref().is_some_and(|m| !m.is_empty()));
    let msg = otrp_cose::parse_sign1(&evidence).unwrap();
    assert!(msg
        .unprotected
        .rest
        .iter()
        .any(|(l, _)| *l == coset::Label::Int(33)));
    // The SD manifest is the only installed component; the TA is requested.
    let tcs = resp.tc_list.unwrap();
    assert_eq!(tcs.len(), 1);
    let req = resp.requested_tc_list.unwrap();
    assert_eq!(req[0].component_id.0, ta_id().0);
}

#[test]
fn install_update_personalize_and_delete() {
    let (mut d, mut tam) = provisioned();
    d.agent.request_ta(ta_id());
    // Install by URI: the Agent asks the Broker to fetch.
    let out = d
        .agent
        .handle(&tam.update(vec![vector("suit_uri.hex")], vec![]), 20);
    assert_eq!(out.send, None);
    assert_eq!(out.events, vec![Event::NeedFetch { uri: TA_URI.into() }]);
    let ta = vector("tc_8d82573a-926d-4754-9353-32dc29997f74.ta.hex");
    let out = d.agent.provide_fetch(TA_URI, ta.clone(), 21);
    let s = expect_success(&d, &out.send);
    assert_eq!(s.token.as_deref(), Some(&b"token-00001002"[..]));
    let rs = reports(&s.suit_reports);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].nonce.as_deref(), Some(&b"token-00001002"[..]));
    assert!(out
        .events
        .contains(&Event::Installed { component: ta_id() }));
    assert_eq!(d.agent.store().images.get(&ta_id()).unwrap(), &ta);

    // The tc-list reports it; it is no longer requested.
    let out = d.agent.handle(
        &tam.query_request(DataItemRequested::TRUSTED_COMPONENTS),
        22,
    );
    let TeepMessage::QueryResponse(resp) = answer(&d, &out.send) else {
        panic!()
    };
    assert!(resp
        .tc_list
        .unwrap()
        .iter()
        .any(|c| c.component_id.0 == ta_id().0));
    assert!(resp.requested_tc_list.is_none());

    // Personalization through a dependency (already installed: no fetch), decrypted.
    let out = d.agent.handle(
        &tam.update(vec![vector("suit_personalization.hex")], vec![]),
        23,
    );
    expect_success(&d, &out.send);
    assert_eq!(
        d.agent.store().images.get(&config_id()).unwrap(),
        CONFIG_PLAINTEXT
    );

    // Update the TA to sequence number 4.
    let out = d
        .agent
        .handle(&tam.update(vec![ta_v(4, b"TA version 4")], vec![]), 24);
    expect_success(&d, &out.send);
    assert_eq!(
        d.agent.store().images.get(&ta_id()).unwrap(),
        b"TA version 4"
    );

    // Delete the personalization, then the TA (UnrequestTA lists it first).
    d.agent.unrequest_ta(ta_manifest_id());
    let out = d.agent.handle(
        &tam.query_request(DataItemRequested::TRUSTED_COMPONENTS),
        25,
    );
    let TeepMessage::QueryResponse(resp) = answer(&d, &out.send) else {
        panic!()
    };
    assert_eq!(
        resp.unneeded_manifest_list.unwrap()[0].0,
        ta_manifest_id().0
    );
    let out = d
        .agent
        .handle(&tam.update(vec![], vec![config_manifest_id()]), 26);
    expect_success(&d, &out.send);
    assert!(out.events.contains(&Event::Removed {
        component: config_id()
    }));
    assert!(d.agent.store().images.contains_key(&ta_id()));
    let out = d
        .agent
        .handle(&tam.update(vec![], vec![ta_manifest_id()]), 27);
    expect_success(&d, &out.send);
    assert!(out.events.contains(&Event::Removed { component: ta_id() }));
    assert!(!d.agent.store().images.contains_key(&ta_id()));
    // Re-installing the old version after deletion is still a rollback.
    let before = d.agent.store().clone();
    let out = d
        .agent
        .handle(&tam.update(vec![ta_v(3, b"old")], vec![]), 28);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(*d.agent.store(), before);
}

#[test]
fn personalization_fetches_its_dependency_through_the_broker() {
    let (mut d, mut tam) = provisioned();
    let suit_uri = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit";
    let out = d.agent.handle(
        &tam.update(vec![vector("suit_personalization.hex")], vec![]),
        1,
    );
    assert_eq!(
        out.events,
        vec![Event::NeedFetch {
            uri: suit_uri.into()
        }]
    );
    let out = d.agent.provide_fetch(suit_uri, vector("suit_uri.hex"), 2);
    assert_eq!(out.events, vec![Event::NeedFetch { uri: TA_URI.into() }]);
    let out = d.agent.provide_fetch(
        TA_URI,
        vector("tc_8d82573a-926d-4754-9353-32dc29997f74.ta.hex"),
        3,
    );
    expect_success(&d, &out.send);
    assert_eq!(
        d.agent.store().images.get(&config_id()).unwrap(),
        CONFIG_PLAINTEXT
    );
}

#[test]
fn tampered_update_is_refused() {
    let (mut d, mut tam) = provisioned();
    let before = d.agent.store().clone();
    let mut msg = tam.update(vec![vector("suit_integrated.hex")], vec![]);
    let n = msg.len();
    msg[n / 2] ^= 0x01;
    let out = d.agent.handle(&msg, 1);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    assert_eq!(*d.agent.store(), before);
    // A tampered SUIT envelope inside a validly signed Update: 17 with a report.
    let mut env = vector("suit_integrated.hex");
    let pos = env.windows(2).position(|w| w == [0x0e, 0x14]).unwrap();
    env[pos + 1] = 0x15;
    let out = d.agent.handle(&tam.update(vec![env], vec![]), 2);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    let rs = reports(&e.suit_reports);
    assert_eq!(failure_reason(&rs[0]), ReportReason::Unauthorised);
    assert_eq!(*d.agent.store(), before);
}

#[test]
fn rogue_tam_is_refused() {
    let (mut d, _tam) = provisioned();
    let before = d.agent.store().clone();
    let mut rogue = ScriptedTam::new(66);
    let out = d.agent.handle(
        &rogue.update(vec![vector("suit_integrated.hex")], vec![]),
        1,
    );
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::BadCertificate);
    let out = d
        .agent
        .handle(&rogue.query_request(DataItemRequested::ATTESTATION), 1);
    assert_eq!(
        expect_error(&d, &out.send).err_code,
        ErrCode::BadCertificate
    );
    assert_eq!(*d.agent.store(), before);
    // Not a COSE message at all.
    let out = d.agent.handle(&[0x83, 0x01, 0xa0, 0x00], 1);
    assert_eq!(
        expect_error(&d, &out.send).err_code,
        ErrCode::PermanentError
    );
    assert_eq!(*d.agent.store(), before);
}

#[test]
fn replayed_and_duplicated_messages_are_refused() {
    let (mut d, mut tam) = provisioned();
    let msg = tam.update(vec![vector("suit_integrated.hex")], vec![]);
    d.success(&msg, 1);
    let after_first = d.agent.store().clone();
    // The Broker duplicates the Update.
    let out = d.agent.handle(&msg, 2);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    assert!(e.err_msg.unwrap().contains("replayed"));
    assert_eq!(*d.agent.store(), after_first);
    // A replayed QueryRequest too.
    let qr = tam.query_request(DataItemRequested::TRUSTED_COMPONENTS);
    assert!(matches!(d.reply(&qr, 3), TeepMessage::QueryResponse(_)));
    let after_qr = d.agent.store().clone();
    assert_eq!(d.error(&qr, 4).err_code, ErrCode::PermanentError);
    assert_eq!(*d.agent.store(), after_qr);
}

#[test]
fn reordered_and_rolled_back_updates_are_refused() {
    let (mut d, mut tam) = provisioned();
    let older = tam.update(vec![ta_v(5, b"v5")], vec![]);
    let newer = tam.update(vec![ta_v(6, b"v6")], vec![]);
    d.success(&newer, 1);
    let before = d.agent.store().clone();
    // The Broker delivers the older Update late.
    let out = d.agent.handle(&older, 2);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    let rs = reports(&e.suit_reports);
    assert_eq!(failure_reason(&rs[0]), ReportReason::Unauthorised);
    assert_eq!(rs[0].nonce, e.token);
    assert_eq!(*d.agent.store(), before);
    // An Update whose second manifest rolls back commits nothing of the first.
    let new_sd = descriptor(b"other", "acme", vec![vector_signer().public_key()]);
    let mixed = tam.update(vec![tam.sd_manifest(&new_sd, 1), ta_v(2, b"v2")], vec![]);
    let e = d.error(&mixed, 3);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(reports(&e.suit_reports).len(), 2);
    assert_eq!(*d.agent.store(), before);
}

#[test]
fn dropped_fetch_and_failed_fetch_leave_nothing() {
    let (mut d, mut tam) = provisioned();
    let before = d.agent.store().clone();
    let out = d
        .agent
        .handle(&tam.update(vec![vector("suit_uri.hex")], vec![]), 1);
    assert!(matches!(out.events[0], Event::NeedFetch { .. }));
    // The Broker drops the fetch and moves on: the next message discards the pending Update.
    let out = d
        .agent
        .handle(&tam.query_request(DataItemRequested::TRUSTED_COMPONENTS), 2);
    assert!(matches!(
        answer(&d, &out.send),
        TeepMessage::QueryResponse(_)
    ));
    assert_eq!(d.agent.store().images, before.images);
    assert_eq!(
        d.agent.provide_fetch(TA_URI, b"late".to_vec(), 3),
        otrp_agent::Output::default()
    );
    // A fetch that fails: Error 17 with a report.
    let out = d
        .agent
        .handle(&tam.update(vec![vector("suit_uri.hex")], vec![]), 4);
    assert!(matches!(out.events[0], Event::NeedFetch { .. }));
    let out = d.agent.fetch_failed(TA_URI, 5);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(
        failure_reason(&reports(&e.suit_reports)[0]),
        ReportReason::OperationFailed
    );
    assert_eq!(d.agent.store().images, before.images);
    assert_eq!(d.agent.store().manifests, before.manifests);
}

#[test]
fn unsupported_cipher_suite_is_answered_with_our_suites() {
    let (mut d, mut tam) = provisioned();
    let qr = otrp_teep::QueryRequest::new(
        vec![TeepCipherSuite::SIGN1_ED25519],
        vec![otrp_teep::SuitCoseProfile::SHA256_ED25519_ECDH_A128CTR],
        DataItemRequested::TRUSTED_COMPONENTS,
    )
    .with_token(tam.token());
    let out = d.agent.handle(&tam.sign(&TeepMessage::QueryRequest(qr)), 1);
    let e = expect_error(&d, &out.send);
    assert_eq!(e.err_code, ErrCode::UnsupportedCipherSuites);
    assert!(e
        .supported_teep_cipher_suites
        .unwrap()
        .contains(&TeepCipherSuite::SIGN1_ESP256));
}

/// Two SPs with their own TAMs and SDs under the OEM-gated configuration.
fn two_sps() -> (
    Device,
    ScriptedTam,
    ScriptedTam,
    otrp_crypto::PrivateKey,
    otrp_crypto::PrivateKey,
    otrp_crypto::PrivateKey,
) {
    let oem = key(500, KeyKind::P256);
    let mut tam_a = ScriptedTam::new(2);
    let mut tam_b = ScriptedTam::new(3);
    let signer_a = key(600, KeyKind::P256);
    let signer_b = key(601, KeyKind::P256);
    let mut tams = tam_only(&tam_a);
    tams.extend(tam_only(&tam_b));
    let mut d = device(tams, vec![oem.public_key()], Management::OemGated);
    for (tam, name, sp, signer) in [
        (&mut tam_a, b"sp-a".as_slice(), "a", &signer_a),
        (&mut tam_b, b"sp-b".as_slice(), "b", &signer_b),
    ] {
        let mut desc = descriptor(name, sp, vec![signer.public_key()]);
        desc.authorization = Some(oem_authorization(&oem, sp, &tam.public()));
        let out = d
            .agent
            .handle(&tam.update(vec![tam.sd_manifest(&desc, 1)], vec![]), 1);
        expect_success(&d, &out.send);
    }
    (d, tam_a, tam_b, oem, signer_a, signer_b)
}

fn ta_in(sd: &[u8], seq: u64, signer: &otrp_crypto::PrivateKey) -> Vec<u8> {
    TaManifestBuilder::new(otrp_suit::ComponentId::new([sd, b"app"]), seq)
        .image_of(b"app")
        .integrated_payload("#tc", b"app".to_vec())
        .build_signed(provider(), signer, &SignOptions::default())
        .unwrap()
        .encode()
        .unwrap()
}

#[test]
fn an_sp_cannot_reach_into_another_sps_sd() {
    let (mut d, mut tam_a, mut tam_b, _oem, signer_a, signer_b) = two_sps();
    // Each SP installs into its own SD.
    d.success(&tam_a.update(vec![ta_in(b"sp-a", 1, &signer_a)], vec![]), 1);
    d.success(&tam_b.update(vec![ta_in(b"sp-b", 1, &signer_b)], vec![]), 1);
    let before = d.agent.store().clone();
    let refused_17 = |d: &mut Device, msg: Vec<u8>, reason: ReportReason| {
        let e = d.error(&msg, 2);
        assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
        assert_eq!(failure_reason(&reports(&e.suit_reports)[0]), reason);
    };
    // SP B's signer into SP A's SD, through SP B's TAM or SP A's TAM.
    refused_17(
        &mut d,
        tam_b.update(vec![ta_in(b"sp-a", 2, &signer_b)], vec![]),
        ReportReason::ComponentUnauthorised,
    );
    refused_17(
        &mut d,
        tam_a.update(vec![ta_in(b"sp-a", 2, &signer_b)], vec![]),
        ReportReason::ComponentUnauthorised,
    );
    // SP A's genuine manifest replayed through SP B's TAM.
    refused_17(
        &mut d,
        tam_b.update(vec![ta_in(b"sp-a", 2, &signer_a)], vec![]),
        ReportReason::ComponentUnauthorised,
    );
    // SP B's TAM re-creating SP A's SD with its own signer.
    let hijack = descriptor(b"sp-a", "a", vec![signer_b.public_key()]);
    refused_17(
        &mut d,
        tam_b.update(vec![tam_b.sd_manifest(&hijack, 2)], vec![]),
        ReportReason::Unauthorised,
    );
    // A manifest into an SD that does not exist.
    refused_17(
        &mut d,
        tam_a.update(vec![ta_in(b"sp-c", 1, &signer_a)], vec![]),
        ReportReason::ComponentUnauthorised,
    );
    // SP B's TAM deleting SP A's TA or SD.
    let app_a = otrp_suit::ComponentId::new([b"sp-a".as_slice(), b"app"]);
    let e = d.error(&tam_b.update(vec![], vec![app_a]), 3);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    let sd_a = otrp_agent::sd::sd_component_id(b"sp-a");
    let e = d.error(&tam_b.update(vec![], vec![sd_a.clone()]), 3);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    assert_eq!(*d.agent.store(), before);
    // SP A deletes its SD: refused while it holds a TA, then allowed.
    let e = d.error(&tam_a.update(vec![], vec![sd_a.clone()]), 4);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    let app_a = otrp_suit::ComponentId::new([b"sp-a".as_slice(), b"app"]);
    let out = d.agent.handle(&tam_a.update(vec![], vec![app_a, sd_a]), 5);
    expect_success(&d, &out.send);
    assert!(out.events.contains(&Event::SdDeleted {
        name: b"sp-a".to_vec()
    }));
    assert_eq!(d.agent.security_domains().len(), 1);
}

#[test]
fn oem_gated_needs_the_oem_authorization_once() {
    let oem = key(500, KeyKind::P256);
    let mut tam = ScriptedTam::new(4);
    let mut d = device(tam_only(&tam), vec![oem.public_key()], Management::OemGated);
    let signer = key(602, KeyKind::P256);
    let before = d.agent.store().clone();
    // No authorization.
    let desc = descriptor(b"sd1", "sp", vec![signer.public_key()]);
    let e = d.error(&tam.update(vec![tam.sd_manifest(&desc, 1)], vec![]), 1);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    // An authorization signed by someone else, or for another TAM.
    let mut bad = desc.clone();
    bad.authorization = Some(oem_authorization(
        &key(501, KeyKind::P256),
        "sp",
        &tam.public(),
    ));
    let e = d.error(&tam.update(vec![tam.sd_manifest(&bad, 1)], vec![]), 1);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    bad.authorization = Some(oem_authorization(
        &oem,
        "sp",
        &key(9, KeyKind::P256).public_key(),
    ));
    let e = d.error(&tam.update(vec![tam.sd_manifest(&bad, 1)], vec![]), 1);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(*d.agent.store(), before);
    // With it: accepted, and a second SD needs none.
    let mut good = desc;
    good.authorization = Some(oem_authorization(&oem, "sp", &tam.public()));
    d.success(&tam.update(vec![tam.sd_manifest(&good, 1)], vec![]), 2);
    let second = descriptor(b"sd2", "sp", vec![signer.public_key()]);
    d.success(&tam.update(vec![tam.sd_manifest(&second, 1)], vec![]), 3);
    assert_eq!(d.agent.security_domains().len(), 2);
}

#[test]
fn oem_owned_sds_only_the_oem_tam_creates_and_deletes() {
    let mut oem_tam = ScriptedTam::new(5);
    let mut sp_tam = ScriptedTam::new(6);
    let tams = vec![
        TrustedTam {
            key: oem_tam.public(),
            oem: true,
        },
        TrustedTam {
            key: sp_tam.public(),
            oem: false,
        },
    ];
    let mut d = device(tams, vec![], Management::OemOwnedSds);
    let signer = key(603, KeyKind::P256);
    let before = d.agent.store().clone();
    // The SP's TAM may not create an SD.
    let desc = descriptor(b"granted", "sp", vec![signer.public_key()]);
    let e = d.error(
        &sp_tam.update(vec![sp_tam.sd_manifest(&desc, 1)], vec![]),
        1,
    );
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(*d.agent.store(), before);
    // The OEM's TAM grants it to the SP's TAM.
    let mut grant = desc;
    grant.tam = Some(sp_tam.kid());
    d.success(
        &oem_tam.update(vec![oem_tam.sd_manifest(&grant, 1)], vec![]),
        2,
    );
    // The SP manages TAs inside…
    d.success(
        &sp_tam.update(vec![ta_in(b"granted", 1, &signer)], vec![]),
        3,
    );
    // …but cannot delete the SD.
    let before = d.agent.store().clone();
    let sd = otrp_agent::sd::sd_component_id(b"granted");
    let e = d.error(&sp_tam.update(vec![], vec![sd]), 4);
    assert_eq!(e.err_code, ErrCode::PermanentError);
    assert_eq!(*d.agent.store(), before);
}

/// Adds an OEM signature block to a SUIT envelope (what `Admin::cosign_manifest` stores).
fn cosign(envelope: &[u8], oem: &otrp_crypto::PrivateKey) -> Vec<u8> {
    let mut env = otrp_suit::Envelope::decode(envelope).unwrap();
    env.add_signature(provider(), oem, &SignOptions::default())
        .unwrap();
    env.encode().unwrap()
}

#[test]
fn dual_control_needs_both_signatures() {
    let oem = key(510, KeyKind::P256);
    let mut tam = ScriptedTam::new(7);
    let mut d = device(
        tam_only(&tam),
        vec![oem.public_key()],
        Management::DualControl,
    );
    let signer = key(604, KeyKind::P256);
    let desc = descriptor(b"dual", "sp", vec![signer.public_key()]);
    let before = d.agent.store().clone();
    // SP TAM alone (COSE_Sign1, SD manifest signed by the TAM only).
    let e = d.error(&tam.update(vec![tam.sd_manifest(&desc, 1)], vec![]), 1);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert!(e.err_msg.unwrap().contains("dual control"));
    assert_eq!(
        failure_reason(&reports(&e.suit_reports)[0]),
        ReportReason::Unauthorised
    );
    // OEM alone (not a TAM): refused as untrusted.
    let up = tam.update_msg(vec![tam.sd_manifest(&desc, 1)], vec![]);
    let payload = TeepMessage::Update(up).to_vec().unwrap();
    let oem_only = otrp_cose::sign(
        provider(),
        &[(&oem, SigAlg::P256Sha256)],
        &payload,
        &SignOptions::default(),
    )
    .unwrap();
    let e = d.error(&oem_only, 2);
    assert_eq!(e.err_code, ErrCode::BadCertificate);
    assert_eq!(*d.agent.store(), before);
    // Both on the Update (COSE_Sign form): accepted.
    let up = tam.update_msg(vec![tam.sd_manifest(&desc, 1)], vec![]);
    let payload = TeepMessage::Update(up).to_vec().unwrap();
    let both = otrp_cose::sign(
        provider(),
        &[(&tam.key, SigAlg::P256Sha256), (&oem, SigAlg::P256Sha256)],
        &payload,
        &SignOptions::default(),
    )
    .unwrap();
    d.success(&both, 3);
    assert_eq!(d.agent.security_domains().len(), 1);
}

#[test]
fn dual_control_accepts_oem_cosigned_manifests_from_the_tam_alone() {
    let oem = key(511, KeyKind::P256);
    let mut tam = ScriptedTam::new(8);
    let mut d = device(
        tam_only(&tam),
        vec![oem.public_key()],
        Management::DualControl,
    );
    let signer = key(605, KeyKind::P256);
    // The SD manifest co-signed by the OEM, sent by the SP's TAM alone: accepted.
    let desc = descriptor(b"dual", "sp", vec![signer.public_key()]);
    let sd = cosign(&tam.sd_manifest(&desc, 1), &oem);
    d.success(&tam.update(vec![sd], vec![]), 1);
    // A TA signed by the SP only: refused, nothing stored.
    let before = d.agent.store().clone();
    let sp_only = ta_in(b"dual", 1, &signer);
    let e = d.error(&tam.update(vec![sp_only.clone()], vec![]), 2);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert!(e.err_msg.unwrap().contains("co-signed by the OEM"));
    assert_eq!(
        failure_reason(&reports(&e.suit_reports)[0]),
        ReportReason::Unauthorised
    );
    assert_eq!(*d.agent.store(), before);
    // Co-signed by a key that is not the OEM's: refused.
    let e = d.error(
        &tam.update(vec![cosign(&sp_only, &key(512, KeyKind::P256))], vec![]),
        3,
    );
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(*d.agent.store(), before);
    // An OEM signature alone (no authorized SP signer): refused.
    let oem_signed =
        TaManifestBuilder::new(otrp_suit::ComponentId::new([b"dual".as_slice(), b"app"]), 1)
            .image_of(b"app")
            .integrated_payload("#tc", b"app".to_vec())
            .build_signed(provider(), &oem, &SignOptions::default())
            .unwrap()
            .encode()
            .unwrap();
    let e = d.error(&tam.update(vec![oem_signed], vec![]), 4);
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
    assert_eq!(*d.agent.store(), before);
    // SP + OEM co-signed: accepted.
    let out = d
        .agent
        .handle(&tam.update(vec![cosign(&sp_only, &oem)], vec![]), 5);
    expect_success(&d, &out.send);
    let app = otrp_suit::ComponentId::new([b"dual".as_slice(), b"app"]);
    assert!(out.events.contains(&Event::Installed {
        component: app.clone()
    }));
    // Deletion from the managing TAM alone: allowed under dual control.
    let out = d.agent.handle(&tam.update(vec![], vec![app.clone()]), 6);
    expect_success(&d, &out.send);
    assert!(out.events.contains(&Event::Removed { component: app }));
}

#[test]
fn sd_descriptor_round_trips_and_rejects_garbage() {
    let mut desc = SdDescriptor {
        name: b"x".to_vec(),
        sp_id: "sp".into(),
        signers: vec![
            key(1, KeyKind::P256).public_key(),
            key(2, KeyKind::Ed25519).public_key(),
        ],
        authorization: Some(vec![1, 2, 3]),
        tam: Some([7; 32]),
    };
    assert_eq!(
        SdDescriptor::from_cbor(&desc.to_cbor().unwrap()).unwrap(),
        desc
    );
    desc.signers.clear();
    assert!(SdDescriptor::from_cbor(&desc.to_cbor().unwrap()).is_err());
    for garbage in [&[][..], &[0xa0], &[0x80], &[0xa1, 0x01, 0x01], &[0xff]] {
        assert!(SdDescriptor::from_cbor(garbage).is_err());
    }
}
