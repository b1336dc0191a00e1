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
    tfw: otrp_pki::device::KeyAndCert,
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
        tfw: id.tfw.clone(),
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

/// The TFW's endorsement of `measurement` for `ueid`: a COSE_Sign1 by `tfw` over
/// `ueid || measurement` with the TFW chain in x5chain (as `otrp_agent::tfw_endorsement`).
fn endorsement(tfw: &otrp_pki::device::KeyAndCert, ueid: &[u8], measurement: &[u8]) -> Vec<u8> {
    let mut payload = ueid.to_vec();
    payload.extend_from_slice(measurement);
    let opts = otrp_cose::SignOptions {
        tagged: false,
        ..Default::default()
    };
    let signed = otrp_cose::sign1(provider(), &tfw.key, &payload, false, &opts).unwrap();
    let mut chain = vec![tfw.cert.clone()];
    chain.extend(tfw.chain.iter().cloned());
    with_x5chain(&signed, &chain)
}

/// Evidence of `p` carrying `endorsement` as claim -70001 (or none).
fn endorsed_evidence(p: &Provisioned, endorsement: Option<Vec<u8>>) -> Vec<u8> {
    use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
    let mut claims = EatClaims::new()
        .with_nonce(NONCE.to_vec())
        .with_ueid(p.dev.ueid.clone())
        .with_oemid(OemId::Random([7; 16]))
        .with_hwmodel(MODEL.as_bytes().to_vec())
        .with_hwversion("1.0", None)
        .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
        .with_manifests(vec![ContentFormat {
            content_type: 60,
            content: Value::Bytes(b"tee-os-manifest".to_vec()),
        }])
        .with_measurements(vec![ContentFormat {
            content_type: 0,
            content: Value::Bytes(MEASUREMENT.to_vec()),
        }])
        .with_cnf(
            Confirmation::from_cose_key(otrp_cose::cose_key_from_public(
                &p.dev.agent_key.public_key(),
            ))
            .unwrap(),
        );
    if let Some(e) = endorsement {
        claims = claims.with_claim(
            Value::Integer(otrp_tam::TFW_ENDORSEMENT_CLAIM.into()),
            Value::Bytes(e),
        );
    }
    let signed =
        otrp_eat::signed::sign(provider(), &p.dev.tee_key, &claims, &Default::default()).unwrap();
    with_x5chain(&signed, &p.chain)
}

fn tfw_verifier(pki: &Pki) -> EatVerifier {
    pki_verifier(pki).with_tfw_roots(pki.trust_store(CaRole::Tfw).unwrap())
}

#[test]
fn tfw_endorsement_of_the_measurement_is_required_and_checked() {
    let mut dev_pki = pki(40);
    let p = provisioned(&mut dev_pki, 41, None);
    let other = provisioned(&mut dev_pki, 42, None);
    let v = tfw_verifier(&dev_pki);
    // Endorsed by the device's own TFW, for its measurement: accepted.
    let good = endorsed_evidence(&p, Some(endorsement(&p.tfw, &p.dev.ueid, &MEASUREMENT)));
    assert!(v.verify(&good, NONCE, NOW).is_ok());
    // Without the endorsement: refused once TFW roots are required (accepted otherwise).
    let none = endorsed_evidence(&p, None);
    assert!(matches!(
        v.verify(&none, NONCE, NOW),
        Err(AttestationError::TfwEndorsement(_))
    ));
    assert!(pki_verifier(&dev_pki).verify(&none, NONCE, NOW).is_ok());
    // Another device's TFW vouching for this device: refused.
    let foreign = endorsed_evidence(&p, Some(endorsement(&other.tfw, &p.dev.ueid, &MEASUREMENT)));
    assert!(matches!(
        v.verify(&foreign, NONCE, NOW),
        Err(AttestationError::TfwEndorsement(_))
    ));
    // The TFW vouching for another TEE image: refused.
    let other_image = endorsed_evidence(&p, Some(endorsement(&p.tfw, &p.dev.ueid, &[0x11; 32])));
    assert!(matches!(
        v.verify(&other_image, NONCE, NOW),
        Err(AttestationError::TfwEndorsement(_))
    ));
    // A TFW chain from another PKI: refused.
    let mut rogue_pki = pki(43);
    let rogue = provisioned(&mut rogue_pki, 44, None);
    let rogue_tfw = endorsed_evidence(&p, Some(endorsement(&rogue.tfw, &p.dev.ueid, &MEASUREMENT)));
    assert!(matches!(
        v.verify(&rogue_tfw, NONCE, NOW),
        Err(AttestationError::TfwEndorsement(_))
    ));
}

/// A validated TEE chain is remembered (one entry per chain) and reused only while its
/// result cannot change: the certificates' validity and the CRLs' nextUpdate bound it,
/// and the per-evidence checks (nonce, revoked list) still run on every call.
#[test]
fn validated_chains_are_remembered_only_while_they_hold() {
    let mut pki = pki(50);
    let p = provisioned(&mut pki, 51, Some(2));
    let mut v = pki_verifier(&pki);
    assert_eq!(v.cached_chains(), 0);
    let first = v.verify(&evidence(&p, NONCE), NONCE, NOW).unwrap();
    assert_eq!(v.cached_chains(), 1);
    // Same chain, new evidence: same result, still one entry.
    let again = v.verify(&evidence(&p, NONCE), NONCE, NOW + 5).unwrap();
    assert_eq!(again.ueid, first.ueid);
    assert_eq!(again.agent_key_kid, first.agent_key_kid);
    assert_eq!(v.cached_chains(), 1);
    // The per-evidence checks are not cached.
    assert_eq!(
        v.verify(&evidence(&p, b"another-nonce"), NONCE, NOW + 6),
        Err(AttestationError::NonceMismatch)
    );
    // After the leaf's notAfter the chain is validated again, and refused.
    match v.verify(&evidence(&p, NONCE), NONCE, p.not_after + 1) {
        Err(AttestationError::CertExpired(_)) => {}
        other => panic!("{other:?}"),
    }
    // A device put on the revoked list is refused although its chain is remembered.
    v.revoke(&p.dev.ueid);
    match v.verify(&evidence(&p, NONCE), NONCE, NOW + 7) {
        Err(AttestationError::Revoked(d)) => assert!(d.contains("device")),
        other => panic!("{other:?}"),
    }
    // Another chain, another entry.
    let q = provisioned(&mut pki, 52, None);
    v.verify(&evidence(&q, NONCE), NONCE, NOW).unwrap();
    assert_eq!(v.cached_chains(), 2);
}

#[test]
fn a_remembered_chain_is_not_used_past_the_crls_next_update() {
    let mut pki = pki(53);
    let p = provisioned(&mut pki, 54, None);
    let roots = pki.trust_store(CaRole::Tee).unwrap();
    let crl_until = roots.crls_current_until().unwrap();
    assert!(crl_until > NOW && crl_until < p.not_after);
    let v = pki_verifier(&pki);
    v.verify(&evidence(&p, NONCE), NONCE, NOW).unwrap();
    v.verify(&evidence(&p, NONCE), NONCE, crl_until - 1)
        .unwrap();
    assert_eq!(v.cached_chains(), 1);
    match v.verify(&evidence(&p, NONCE), NONCE, crl_until) {
        Err(AttestationError::Chain(d)) => assert!(d.contains("CRL"), "{d}"),
        other => panic!("{other:?}"),
    }
}
