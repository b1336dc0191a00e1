//! COSE_Key conversions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use otrp_cose::coset::{self, CborSerializable};
use otrp_cose::{
    cose_key_from_private, cose_key_from_public, cose_key_from_slice, private_from_cose_key,
    public_from_cose_key, CoseError,
};
use otrp_crypto::thumbprint::cose_key_thumbprint_input;
use otrp_crypto::{KeyKind, PrivateKey};
use rand_chacha::rand_core::SeedableRng;

#[test]
fn round_trips_for_every_key_type() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    for kind in [KeyKind::P256, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let key = PrivateKey::generate(kind, &mut rng).unwrap();
        let public = key.public_key();
        let ck = cose_key_from_public(&public);
        let bytes = ck.clone().to_vec().unwrap();
        let back = cose_key_from_slice(&bytes).unwrap();
        assert_eq!(public_from_cose_key(&back).unwrap(), public, "{kind:?}");
        // the public COSE_Key holds exactly the RFC 9679 required parameters, in order
        assert_eq!(bytes, cose_key_thumbprint_input(&public), "{kind:?}");
        assert!(private_from_cose_key(&ck).is_err(), "{kind:?}: no d");

        let cp = cose_key_from_private(&key);
        let back =
            private_from_cose_key(&cose_key_from_slice(&cp.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(back.public_key(), public, "{kind:?}");
    }
}

#[test]
fn published_kek_parses() {
    let hex_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../testdata/vectors/teep/keys/personalization_kek_p256.cose_key.derived.hex"
    ))
    .unwrap();
    let key = cose_key_from_slice(&hex::decode(hex_text.trim()).unwrap()).unwrap();
    let private = private_from_cose_key(&key).unwrap();
    assert_eq!(public_from_cose_key(&key).unwrap(), private.public_key());
}

#[test]
fn errors_name_the_parameter() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let key = PrivateKey::generate(KeyKind::P256, &mut rng).unwrap();
    let mut ck = cose_key_from_private(&key);
    // d of another key
    let other = cose_key_from_private(&PrivateKey::p256_from_scalar(&[4u8; 32]).unwrap());
    let d = other
        .params
        .iter()
        .find(|(l, _)| *l == coset::Label::Int(-4))
        .unwrap()
        .clone();
    ck.params.retain(|(l, _)| *l != coset::Label::Int(-4));
    ck.params.push(d);
    let err = private_from_cose_key(&ck).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    let mut ck = cose_key_from_public(&key.public_key());
    ck.params.retain(|(l, _)| *l != coset::Label::Int(-3));
    let err = public_from_cose_key(&ck).unwrap_err();
    assert!(
        matches!(&err, CoseError::Key { what } if what.contains("y (-3) missing")),
        "{err}"
    );

    let ck = coset::CoseKeyBuilder::new_ec2_pub_key(
        coset::iana::EllipticCurve::P_384,
        vec![0; 48],
        vec![0; 48],
    )
    .build();
    let err = public_from_cose_key(&ck).unwrap_err();
    assert!(err.to_string().contains("curve 2"), "{err}");

    let ck = coset::CoseKeyBuilder::new_ec2_pub_key_y_sign(
        coset::iana::EllipticCurve::P_256,
        vec![0; 32],
        true,
    )
    .build();
    assert!(public_from_cose_key(&ck)
        .unwrap_err()
        .to_string()
        .contains("compressed"));

    let ck = coset::CoseKeyBuilder::new_symmetric_key(vec![0; 16]).build();
    assert!(public_from_cose_key(&ck)
        .unwrap_err()
        .to_string()
        .contains("kty"));

    // a point not on the curve
    let ck = coset::CoseKeyBuilder::new_ec2_pub_key(
        coset::iana::EllipticCurve::P_256,
        vec![1; 32],
        vec![2; 32],
    )
    .build();
    assert!(public_from_cose_key(&ck)
        .unwrap_err()
        .to_string()
        .contains("curve"));
}
