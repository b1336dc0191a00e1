//! Single-bit flips over ≥ 500 positions of each signed message (every bit of the COSE /
//! JWS structure, headers and signature; a stride over the payload): each is refused by
//! the party that receives it, and nothing changes in its store.
//!
//! That includes flips inside a COSE_Sign1's *unprotected* header, which RFC 9052 leaves
//! outside the signature: `otrp-cose` refuses a `kid` that names no given key and any
//! header parameter that has no meaning on a signature, so a changed kid value or label
//! is refused like any other change.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_attack_tests::flips::{around, cose_sign1_payload_range, sample, BitFlip};
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

/// Threat T1 (tampering by the rich OS / Broker / network) against the Agent: a TEEP
/// Update built and signed by the TAM core, every sampled bit flipped, is refused by the
/// Agent with an Error and the Agent's component store (images, manifests, sequence
/// numbers, SDs, answered tokens) is unchanged; the genuine Update still installs.
#[tokio::test]
async fn update_bit_flips_are_refused_by_the_agent() {
    let mut p = Pair::new(11).await;
    let (_, _, update) = p.until_update(NOW).await;
    let before = p.dev.snapshot();
    let flips = cose_flips(&update);
    for f in &flips {
        let out = p.dev.agent.handle(&f.apply(&update), NOW + 2);
        assert!(
            matches!(p.dev.open(out.send.as_deref()), Some(TeepMessage::Error(_))),
            "flip {f:?} was not refused"
        );
        assert!(
            p.dev.snapshot() == before,
            "refused flip {f:?} changed the store"
        );
    }
    // The genuine Update still installs and the TAM ends the session.
    let out = p.dev.agent.handle(&update, NOW + 3);
    let success = out.send.unwrap();
    assert!(matches!(
        p.dev.open(Some(&success)),
        Some(TeepMessage::Success(_))
    ));
    assert!(p.dev.snapshot() != before);
    assert_eq!(
        p.world.step(&success, NOW + 4).await.unwrap(),
        Outcome::Done
    );
    println!(
        "Update: {} bytes, {} flips, all refused with the store unchanged",
        update.len(),
        flips.len()
    );
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
    let mut p = Pair::new(12).await;
    let (resp, before) = open_session(&mut p).await;
    let flips = cose_flips(&resp);
    for f in &flips {
        assert!(
            p.world.step(&f.apply(&resp), NOW + 1).await.is_err(),
            "flip {f:?} was not refused"
        );
        assert!(
            p.world.snapshot().await == before,
            "refused flip {f:?} changed the TAM store"
        );
    }
    assert!(matches!(
        p.world.step(&resp, NOW + 1).await.unwrap(),
        Outcome::Reply(_)
    ));
    println!(
        "QueryResponse: {} bytes, {} flips, all refused with the store unchanged",
        resp.len(),
        flips.len(),
    );
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
    let dense: Vec<std::ops::Range<usize>> =
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
