//! Single-bit flips over ≥ 500 positions of each signed message (every bit of the COSE /
//! JWS structure, headers and signature; a stride over the payload): each is refused by
//! the party that receives it, and nothing changes in its store.
//!
//! The one exception, measured and bounded here: flips inside a COSE_Sign1's
//! *unprotected* header (the `kid` label or value), which RFC 9052 leaves outside the
//! signature. `otrp-cose` treats the kid as a hint (a kid naming no trusted key falls
//! back to trying every key), so such a message still verifies. Each of those flips
//! must leave the protected header, payload and signature byte-identical to the genuine
//! message, and its effect must be exactly the genuine message's effect.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::ops::Range;

use otrp_attack_tests::flips::{
    around, cose_sign1_authenticated, cose_sign1_payload_range, cose_sign1_unprotected_range,
    sample, BitFlip,
};
use otrp_attack_tests::pair::Pair;
use otrp_attack_tests::tam::NOW;
use otrp_tam::Outcome;
use otrp_teep::TeepMessage;

/// The flips of a COSE_Sign1 message: all bits outside the payload, a stride inside.
fn cose_flips(msg: &[u8]) -> Vec<BitFlip> {
    let payload = cose_sign1_payload_range(msg).expect("COSE_Sign1 with a payload");
    let flips = sample(msg.len(), &around(msg.len(), &payload), 500);
    assert!(flips.len() >= 500, "only {} flips", flips.len());
    flips
}

/// Checks a flip that was not refused: it lies in the unprotected header and left every
/// authenticated byte as it was.
fn only_unauthenticated(f: &BitFlip, genuine: &[u8], unprotected: &Range<usize>) {
    assert!(
        unprotected.contains(&f.byte),
        "flip {f:?} outside the unprotected header {unprotected:?} was accepted"
    );
    assert_eq!(
        cose_sign1_authenticated(&f.apply(genuine)),
        cose_sign1_authenticated(genuine),
        "flip {f:?} changed authenticated bytes and was accepted"
    );
}

/// Threat T1 (tampering by the rich OS / Broker / network) against the Agent: a TEEP
/// Update built and signed by the TAM core, every sampled bit flipped, is refused by the
/// Agent with an Error and the Agent's component store (images, manifests, sequence
/// numbers, SDs, answered tokens) is unchanged; the genuine Update still installs.
#[tokio::test]
async fn update_bit_flips_are_refused_by_the_agent() {
    let mut p = Pair::new(11).await;
    let (_, _, update) = p.until_update(NOW).await;
    let unprotected = cose_sign1_unprotected_range(&update).unwrap();
    let before = p.dev.snapshot();
    let flips = cose_flips(&update);
    let mut refused = 0;
    let mut unauthenticated = Vec::new();
    for f in &flips {
        let out = p.dev.agent.handle(&f.apply(&update), NOW + 2);
        match p.dev.open(out.send.as_deref()) {
            Some(TeepMessage::Error(_)) => {
                assert!(
                    p.dev.snapshot() == before,
                    "refused flip {f:?} changed the store"
                );
                refused += 1;
            }
            _ => {
                only_unauthenticated(f, &update, &unprotected);
                unauthenticated.push(p.dev.snapshot());
                *p.dev.agent.store_mut() = before.clone();
            }
        }
    }
    // The genuine Update installs, with exactly the effect of the unauthenticated flips.
    let out = p.dev.agent.handle(&update, NOW + 3);
    let success = out.send.unwrap();
    assert!(matches!(
        p.dev.open(Some(&success)),
        Some(TeepMessage::Success(_))
    ));
    let installed = p.dev.snapshot();
    assert!(installed != before);
    assert!(unauthenticated.iter().all(|s| *s == installed));
    assert_eq!(
        p.world.step(&success, NOW + 4).await.unwrap(),
        Outcome::Done
    );
    println!(
        "Update: {} bytes, {} flips: {refused} refused with the store unchanged, {} in the \
         unprotected header ({unprotected:?}) processed as the genuine Update",
        update.len(),
        flips.len(),
        unauthenticated.len()
    );
    assert!(refused >= 500);
}

/// Opens a TAM session and returns the Agent's QueryResponse and the store snapshot.
async fn open_session(p: &mut Pair) -> (Vec<u8>, Vec<(String, Vec<String>)>) {
    let qr = match p.world.step(&[], NOW).await.unwrap() {
        Outcome::Reply(b) => b,
        Outcome::Done => panic!("no QueryRequest"),
    };
    let resp = p.dev.agent.handle(&qr, NOW).send.unwrap();
    let before = p.world.snapshot().await;
    (resp, before)
}

/// Threat T1 against the TAM: the Agent's QueryResponse (with EAT evidence, signed by
/// the Agent key) with every sampled bit flipped is refused by the TAM core and no row
/// of any table of its SQLite store changes; the genuine one is then accepted.
#[tokio::test]
async fn query_response_bit_flips_are_refused_by_the_tam() {
    let mut seed = 12;
    let mut p = Pair::new(seed).await;
    let (mut resp, mut before) = open_session(&mut p).await;
    let unprotected = cose_sign1_unprotected_range(&resp).unwrap();
    let flips = cose_flips(&resp);
    let mut refused = 0;
    let mut unauthenticated = 0;
    for f in &flips {
        match p.world.step(&f.apply(&resp), NOW + 1).await {
            Err(_) => {
                assert!(
                    p.world.snapshot().await == before,
                    "refused flip {f:?} changed the TAM store"
                );
                refused += 1;
            }
            Ok(out) => {
                only_unauthenticated(f, &resp, &unprotected);
                assert!(matches!(out, Outcome::Reply(_)), "{out:?}");
                unauthenticated += 1;
                // The session is consumed: start over with a fresh TAM and Agent.
                seed += 1000;
                p = Pair::new(seed).await;
                (resp, before) = open_session(&mut p).await;
            }
        }
    }
    assert!(matches!(
        p.world.step(&resp, NOW + 1).await.unwrap(),
        Outcome::Reply(_)
    ));
    println!(
        "QueryResponse: {} bytes, {} flips: {refused} refused with the store unchanged, \
         {unauthenticated} in the unprotected header ({unprotected:?}) accepted as the genuine one",
        resp.len(),
        flips.len(),
    );
    assert!(refused >= 500);
}

/// Threat T1 against the OTrP profile: a signed InstallTA (JWS flattened over JWE
/// content, TAM certificate chain in `x5c`), every sampled bit flipped — all bits of
/// the JSON structure, protected header and signature, a stride over the payload and
/// the `x5c` certificates — is refused by the OTrP verification path (chain to the TEE's
/// TAM anchors, JWS, JWE). The path is a pure function of its input: there is no store.
#[test]
fn install_ta_bit_flips_are_refused_by_the_otrp_path() {
    use otrp_attack_tests::otrp::{install_ta_request, json_value_range, verify_install_ta};
    use otrp_attack_tests::pki;
    let mut a = pki::pki(1, "Operator A");
    let tam = pki::tam_signer(&mut a, 2, "tam2", "tam2.opentrust.test");
    let anchors = pki::tam_anchors(&a);
    let tee = otrp_attack_tests::agent::key(3, otrp_crypto::KeyKind::P256);
    let provider = otrp_attack_tests::agent::provider();
    let msg = install_ta_request(
        provider,
        &tam.key,
        pki::x5c(&pki::tam_chain(&a, &tam)),
        &tee.public_key(),
        "sd.bank.com",
        "sd.bank.com.ta",
        4,
    );
    let ok = verify_install_ta(provider, &msg, &anchors, &tee, pki::now()).unwrap();
    assert_eq!(ok.content.taid, "sd.bank.com.ta");
    assert_eq!(ok.tamid.as_deref(), Some("tam2.opentrust.test"));
    let payload = json_value_range(&msg, "payload").unwrap();
    let x5c = json_value_range(&msg, "x5c").unwrap();
    let dense: Vec<Range<usize>> =
        vec![0..payload.start, payload.end..x5c.start, x5c.end..msg.len()];
    let flips = sample(msg.len(), &dense, 500);
    assert!(flips.len() >= 500);
    let mut accepted = Vec::new();
    for f in &flips {
        if let Ok(v) = verify_install_ta(provider, &f.apply(&msg), &anchors, &tee, pki::now()) {
            accepted.push((*f, v.content.taid));
        }
    }
    assert!(
        accepted.is_empty(),
        "{} of {} flips accepted: {:?}",
        accepted.len(),
        flips.len(),
        &accepted[..accepted.len().min(10)]
    );
    println!(
        "InstallTA: {} bytes, {} flips refused",
        msg.len(),
        flips.len()
    );
}
