//! EatVerifier refusals, each with its typed error: evidence chained (x5chain) to the TEE
//! root of a development PKI made by otrp-pki, or signed by a registered TEE key.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use ciborium::value::Value;
use common::*;
use coset::{CborSerializable, Label};
use otrp_crypto::KeyKind;
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_pki::{CaRole, InitOptions, Pki};
use otrp_tam::{AttestationError, EatVerifier, ReferenceValues, Verifier, X5CHAIN};

const NONCE: &[u8] = b"challenge-0123456789abcdef-0123456";

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

struct Provisioned {
    dev: Device,
    chain: Vec<Vec<u8>>,
    not_after: u64,
}

fn pki(seed: u64) -> Pki {
    Pki::init(&InitOptions::default(), &mut rng(seed), at(NOW - 1000)).unwrap()
}

fn provisioned(pki: &mut Pki, seed: u64, days: Option<u32>) -> Provisioned {
    let mut req = ProvisionRequest::new(MODEL);
    req.days = days;
    let p = provision(pki, &req, provider(), &mut rng(seed), at(NOW - 1000)).unwrap();
    let id = p.identity;
    let mut dev = Device::new(seed, KeyKind::P256);
    dev.ueid = id.ueid.clone();
    dev.tee_key = id.tee.key.clone();
    let info = otrp_pki::cert::CertInfo::from_der(&id.tee.cert).unwrap();
    let mut chain = vec![id.tee.cert.clone()];
    chain.extend(id.tee.chain.iter().cloned());
    Provisioned {
        dev,
        chain,
        not_after: info.not_after,
    }
}

/// Adds the x5chain (unprotected, not covered by the signature) to a COSE_Sign1.
fn with_x5chain(evidence: &[u8], chain: &[Vec<u8>]) -> Vec<u8> {
    let mut msg = otrp_cose::parse_sign1(evidence).unwrap();
    msg.unprotected.rest.push((
        Label::Int(X5CHAIN),
        Value::Array(chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
    ));
    msg.to_vec().unwrap()
}

fn references(v: &mut EatVerifier) {
    v.set_reference(
        MODEL,
        ReferenceValues {
            measurements: vec![MEASUREMENT.to_vec()],
            hwversions: vec!["1.0".into()],
        },
    );
}

fn pki_verifier(pki: &Pki) -> EatVerifier {
    let mut v = EatVerifier::new(provider(), 600).with_roots(pki.trust_store(CaRole::Tee).unwrap());
    references(&mut v);
    v
}

fn evidence(p: &Provisioned, nonce: &[u8]) -> Vec<u8> {
    let e = p
        .dev
        .evidence(nonce, &p.dev.ueid, &p.dev.agent_key.public_key());
    with_x5chain(&e, &p.chain)
}

#[test]
fn chained_evidence_is_accepted_and_binds_the_agent_key() {
    let mut pki = pki(1);
    let p = provisioned(&mut pki, 2, None);
    let v = pki_verifier(&pki);
    let ev = evidence(&p, NONCE);
    let ar = v.verify(&ev, NONCE, NOW).unwrap();
    assert_eq!(ar.ueid, p.dev.ueid);
    assert_eq!(ar.model, MODEL);
    assert_eq!(ar.agent_key_kid, p.dev.agent_kid());
    assert_eq!(ar.expires_at, NOW + 600);
    assert_eq!(ar.status, otrp_store::ArStatus::Affirming);
    eprintln!("evidence size with x5chain: {} bytes", ev.len());
}

#[test]
fn wrong_root_is_refused() {
    let mut pki_a = pki(3);
    let pki_b = pki(4);
    let p = provisioned(&mut pki_a, 5, None);
    assert_eq!(
        pki_verifier(&pki_b).verify(&evidence(&p, NONCE), NONCE, NOW),
        Err(AttestationError::WrongRoot)
    );
}

#[test]
fn expired_certificate_is_refused() {
    let mut pki = pki(6);
    let p = provisioned(&mut pki, 7, Some(1));
    let later = p.not_after + 10;
    match pki_verifier(&pki).verify(&evidence(&p, NONCE), NONCE, later) {
        Err(AttestationError::CertExpired(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn revoked_certificate_and_revoked_device_are_refused() {
    let mut pki = pki(8);
    let p = provisioned(&mut pki, 9, None);
    let ev = evidence(&p, NONCE);
    let mut v = pki_verifier(&pki);
    v.revoke(&p.dev.ueid);
    match v.verify(&ev, NONCE, NOW) {
        Err(AttestationError::Revoked(d)) => assert!(d.contains("device")),
        other => panic!("{other:?}"),
    }
    pki.revoke(&p.chain[0], at(NOW - 10)).unwrap();
    match pki_verifier(&pki).verify(&ev, NONCE, NOW) {
        Err(AttestationError::Revoked(d)) => assert!(d.contains("CRL")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_or_replayed_nonce_is_refused() {
    let mut pki = pki(10);
    let p = provisioned(&mut pki, 11, None);
    let v = pki_verifier(&pki);
    let old = evidence(&p, b"an-older-challenge-00000000000000");
    assert_eq!(
        v.verify(&old, NONCE, NOW),
        Err(AttestationError::NonceMismatch)
    );
}

#[test]
fn unknown_measurement_and_hwversion_are_refused() {
    let mut pki = pki(12);
    let mut p = provisioned(&mut pki, 13, None);
    let v = pki_verifier(&pki);
    p.dev.measurement = vec![0xee; 32];
    assert!(matches!(
        v.verify(&evidence(&p, NONCE), NONCE, NOW),
        Err(AttestationError::UnknownMeasurement { .. })
    ));
    p.dev.measurement = MEASUREMENT.to_vec();
    p.dev.hwversion = "0.9".into();
    assert!(matches!(
        v.verify(&evidence(&p, NONCE), NONCE, NOW),
        Err(AttestationError::UnknownHwVersion { .. })
    ));
    let bare = EatVerifier::new(provider(), 600).with_roots(pki.trust_store(CaRole::Tee).unwrap());
    assert!(matches!(
        bare.verify(&evidence(&p, NONCE), NONCE, NOW),
        Err(AttestationError::UnknownModel(_))
    ));
}

#[test]
fn evidence_of_another_device_is_refused() {
    let mut pki = pki(14);
    let a = provisioned(&mut pki, 15, None);
    let b = provisioned(&mut pki, 16, None);
    // A's TEE key and chain, B's ueid in the claims.
    let e = a
        .dev
        .evidence(NONCE, &b.dev.ueid, &a.dev.agent_key.public_key());
    match pki_verifier(&pki).verify(&with_x5chain(&e, &a.chain), NONCE, NOW) {
        Err(AttestationError::OtherDevice { signer, claimed }) => {
            assert_eq!(signer, hex::encode(&a.dev.ueid));
            assert_eq!(claimed, hex::encode(&b.dev.ueid));
        }
        other => panic!("{other:?}"),
    }
    // The same with registered keys instead of certificates.
    let mut v = EatVerifier::new(provider(), 600);
    references(&mut v);
    v.register_device(&a.dev.ueid, a.dev.tee_key.public_key());
    v.register_device(&b.dev.ueid, b.dev.tee_key.public_key());
    assert!(matches!(
        v.verify(&e, NONCE, NOW),
        Err(AttestationError::OtherDevice { .. })
    ));
}

#[test]
fn bad_signature_and_unknown_attester_are_refused() {
    let dev = Device::new(17, KeyKind::P256);
    let mut v = EatVerifier::new(provider(), 600);
    references(&mut v);
    let e = dev.evidence(NONCE, &dev.ueid, &dev.agent_key.public_key());
    assert!(matches!(
        v.verify(&e, NONCE, NOW),
        Err(AttestationError::UnknownAttester { .. })
    ));
    v.register_device(&dev.ueid, dev.tee_key.public_key());
    assert!(v.verify(&e, NONCE, NOW).is_ok());
    let mut bad = e.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        v.verify(&bad, NONCE, NOW),
        Err(AttestationError::BadSignature)
    );
    assert!(matches!(
        v.verify(b"\x01\x02", NONCE, NOW),
        Err(AttestationError::Malformed(_))
    ));
    // Truncations never panic.
    for cut in 0..e.len() {
        let _ = v.verify(&e[..cut], NONCE, NOW);
    }
}
