//! Tests: the TEEP draft's EAT example, constraints, limits, property tests.
#![allow(clippy::unwrap_used, clippy::panic)]

extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use otrp_cbor::CborError;

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// `testdata/vectors/teep/eat_claims.diag` (ED App. D.2) written out as a CBOR value, in
/// the diag's order.
fn draft_example_value() -> Value {
    Value::Map(vec![
        (
            int(8),
            Value::Map(vec![(
                int(3),
                Value::Bytes(h(
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                )),
            )]),
        ),
        (int(10), Value::Bytes(h("948f8860d13a463e8e"))),
        (
            int(256),
            Value::Bytes(h("0198f50a4ff6c05861c8860d13a638ea")),
        ),
        (int(258), Value::Bytes(h("894823"))),
        (
            int(259),
            Value::Bytes(h("549dcecc8b987c737b44e40f7c635ce8")),
        ),
        (
            int(260),
            Value::Array(vec![Value::Text("1.3.4".into()), int(1)]),
        ),
        (int(273), Value::Array(vec![draft_manifest_entry()])),
    ])
}

fn suit_reference() -> Value {
    Value::Map(vec![
        (
            int(1),
            Value::Text("https://example.com/manifest.cbor".into()),
        ),
        (
            int(0),
            Value::Array(vec![
                int(-16),
                Value::Bytes(h(
                    "a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609",
                )),
            ]),
        ),
    ])
}

fn draft_manifest_entry() -> Value {
    Value::Array(vec![int(60), suit_reference()])
}

fn draft_example_typed() -> EatClaims {
    EatClaims::new()
        .with_cnf(Confirmation::Kid(h(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        )))
        .with_nonce(h("948f8860d13a463e8e"))
        .with_ueid(h("0198f50a4ff6c05861c8860d13a638ea"))
        .with_oemid(OemId::Ieee([0x89, 0x48, 0x23]))
        .with_hwmodel(h("549dcecc8b987c737b44e40f7c635ce8"))
        .with_hwversion("1.3.4", Some(1))
        // The draft puts its manifests entry under key 273, which RFC 9711 assigns to
        // `measurements`.
        .with_measurements(vec![ContentFormat {
            content_type: 60,
            content: suit_reference(),
        }])
}

#[test]
fn draft_example_built_by_hand_matches_the_diag() {
    let diag_bytes = enc(&draft_example_value());
    let built = draft_example_typed().to_vec().unwrap();
    // The diag's key order is also the deterministic order, so the bytes agree.
    assert_eq!(built, diag_bytes);
    std::println!("eat_claims (draft App. D.2): {} bytes", built.len());
    // Structure: a 7-entry map starting with cnf {3: h'..32 bytes'}.
    assert_eq!(&built[..5], &[0xA7, 0x08, 0xA1, 0x03, 0x58]);
    assert_eq!(built[5], 32);

    let c = EatClaims::decode_strict(&diag_bytes).unwrap();
    assert_eq!(c, draft_example_typed());
    assert_eq!(c.nonce(), Some(&h("948f8860d13a463e8e")[..]));
    assert_eq!(c.oemid, Some(OemId::Ieee([0x89, 0x48, 0x23])));
    assert_eq!(
        c.hwversion,
        Some(HwVersion {
            version: "1.3.4".into(),
            scheme: Some(1)
        })
    );
    assert!(matches!(&c.cnf, Some(Confirmation::Kid(k)) if k.len() == 32));
    let m = c.measurements.as_ref().unwrap();
    assert_eq!(m[0].content_type, 60);
    assert!(c.manifests.is_none() && c.other.is_empty());
    assert_eq!(c.to_vec().unwrap(), diag_bytes);

    // Read with RFC 9711 keys the example lacks `manifests` (272).
    assert_eq!(
        c.check_teep_profile(),
        Err(EatError::MissingClaim { claim: "manifests" })
    );
}

#[test]
fn teep_profile_claims_pass_the_profile_check() {
    let c = EatClaims::new()
        .with_cnf(Confirmation::Kid(vec![7; 32]))
        .with_nonce(vec![1; 8])
        .with_ueid(vec![1; 17])
        .with_oemid(OemId::Pen(32473))
        .with_hwmodel(vec![2; 16])
        .with_hwversion("1.0", None)
        .with_manifests(vec![ContentFormat {
            content_type: 60,
            content: Value::Bytes(enc(&suit_reference())),
        }])
        .with_profile(Profile::Uri(TEEP_EAT_PROFILE.into()))
        .with_sw_name("https://example.com/ta.suit")
        .with_iat(1_700_000_000)
        .with_exp(1_700_003_600);
    let bytes = c.to_vec().unwrap();
    let d = EatClaims::decode_teep(&bytes).unwrap();
    assert_eq!(d, c);
    // deterministic order: exp (4), iat (6), cnf (8), ... manifests (272)
    assert_eq!(&bytes[..2], &[0xAB, 0x04], "11 claims, exp (4) first");

    let tagged = c
        .clone()
        .with_claim(int(-70000), Value::Tag(1, alloc::boxed::Box::new(int(0))));
    assert!(matches!(
        tagged.check_teep_profile(),
        Err(EatError::Profile { .. })
    ));
    let mut two = c.clone();
    two.eat_nonce = Some(EatNonce::Multiple(vec![vec![1; 8], vec![2; 8]]));
    assert!(matches!(
        two.check_teep_profile(),
        Err(EatError::Profile { .. })
    ));
    assert!(EatClaims::decode(&two.to_vec().unwrap()).is_ok());
}

#[test]
fn claim_constraints_are_checked_with_paths() {
    let cases: Vec<(Value, &str)> = vec![
        (
            Value::Map(vec![(int(256), Value::Bytes(vec![0; 6]))]),
            "eat.ueid",
        ),
        (
            Value::Map(vec![(int(256), Value::Bytes(vec![0; 34]))]),
            "eat.ueid",
        ),
        (
            Value::Map(vec![(int(10), Value::Bytes(vec![0; 7]))]),
            "eat.eat_nonce",
        ),
        (
            Value::Map(vec![(int(10), Value::Bytes(vec![0; 65]))]),
            "eat.eat_nonce",
        ),
        (
            Value::Map(vec![(int(259), Value::Bytes(vec![]))]),
            "eat.hwmodel",
        ),
        (
            Value::Map(vec![(int(258), Value::Bytes(vec![0; 4]))]),
            "eat.oemid",
        ),
        (
            Value::Map(vec![(int(260), Value::Array(vec![int(1)]))]),
            "eat.hwversion[0]",
        ),
        (
            Value::Map(vec![(int(260), Value::Array(vec![]))]),
            "eat.hwversion",
        ),
        (Value::Map(vec![(int(8), Value::Map(vec![]))]), "eat.cnf"),
        (
            Value::Map(vec![(int(8), Value::Map(vec![(int(3), int(1))]))]),
            "eat.cnf.kid",
        ),
        (
            Value::Map(vec![(int(272), Value::Array(vec![]))]),
            "eat.manifests",
        ),
        (
            Value::Map(vec![(
                int(273),
                Value::Array(vec![Value::Array(vec![int(70000), int(0)])]),
            )]),
            "eat.measurements[0][0]",
        ),
        (Value::Map(vec![(int(265), int(1))]), "eat.eat_profile"),
        (Value::Map(vec![(int(6), Value::Float(1.5))]), "eat.iat"),
    ];
    for (v, path) in cases {
        let err = EatClaims::decode(&enc(&v)).unwrap_err();
        let shown = std::format!("{err}");
        assert!(shown.starts_with(path), "{path}: {shown}");
    }
    // not a map; duplicate keys; trailing bytes
    assert!(matches!(
        EatClaims::decode(&enc(&int(1))),
        Err(EatError::Cbor(CborError::WrongType { .. }))
    ));
    let dup = Value::Map(vec![(int(6), int(1)), (int(6), int(2))]);
    assert!(matches!(
        EatClaims::decode(&enc(&dup)),
        Err(EatError::Cbor(CborError::DuplicateKey { .. }))
    ));
    let mut b = enc(&draft_example_value());
    b.push(0);
    assert!(matches!(
        EatClaims::decode(&b),
        Err(EatError::Cbor(CborError::TrailingBytes { .. }))
    ));
    // encode refuses what decode refuses
    assert!(EatClaims::new().with_ueid(vec![1; 3]).to_vec().is_err());
    let mut dup = EatClaims::new().with_iat(1);
    dup.other.push((int(6), int(2)));
    assert!(matches!(
        dup.to_vec(),
        Err(EatError::Cbor(CborError::DuplicateKey { .. }))
    ));
}

#[test]
fn unknown_claims_keep_their_order_and_bytes() {
    let v = Value::Map(vec![
        (Value::Text("vendor".into()), int(1)),
        (int(256), Value::Bytes(vec![1; 9])),
        (
            int(-65537),
            Value::Array(vec![Value::Null, Value::Bool(true)]),
        ),
        (int(1), Value::Text("issuer".into())),
    ]);
    let bytes = enc(&v);
    let c = EatClaims::decode_strict(&bytes).unwrap();
    assert_eq!(c.other.len(), 3);
    assert_eq!(c.other[0].0, Value::Text("vendor".into()));
    assert_eq!(c.to_vec().unwrap(), bytes);
    let mut d = c.clone();
    d.key_order.clear();
    let det = d.to_vec().unwrap();
    assert_eq!(&det[..2], &[0xA4, 0x01], "iss (1) sorts first");
}

#[test]
fn cose_key_confirmation_round_trips() {
    let key = coset::CoseKeyBuilder::new_ec2_pub_key(
        coset::iana::EllipticCurve::P_256,
        vec![1; 32],
        vec![2; 32],
    )
    .build();
    let cnf = Confirmation::from_cose_key(key.clone()).unwrap();
    let c = EatClaims::new().with_cnf(cnf);
    let d = EatClaims::decode_strict(&c.to_vec().unwrap()).unwrap();
    let parsed = d.cnf.as_ref().unwrap().cose_key().unwrap().unwrap();
    assert_eq!(parsed, key);
}

#[test]
fn limits_and_truncation() {
    let bytes = enc(&draft_example_value());
    for n in 0..bytes.len() {
        assert!(EatClaims::decode(&bytes[..n]).is_err(), "truncated to {n}");
    }
    assert!(matches!(
        EatClaims::decode(&[0x9F; 10_000]),
        Err(EatError::Cbor(CborError::TooDeep { .. }))
            | Err(EatError::Cbor(CborError::WrongType { .. }))
    ));
    assert_eq!(
        EatClaims::decode(&h("A1190100 5BFFFFFFFFFFFFFFFF".replace(' ', "").as_str())),
        Err(EatError::Cbor(CborError::Truncated))
    );
    let small = DecodeLimits {
        max_input_len: 8,
        max_depth: 16,
    };
    assert!(matches!(
        EatClaims::decode_with_limits(&bytes, &small),
        Err(EatError::Cbor(CborError::InputTooLarge { .. }))
    ));
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if let Ok(c) = EatClaims::decode(&b) {
                assert_eq!(EatClaims::decode(&c.to_vec().unwrap()).unwrap(), c);
            }
        }
    }
}

mod prop {
    use super::*;
    use proptest::collection::vec as pvec;
    use proptest::option::of;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9.:/]{0,20}").unwrap()
    }

    fn claims() -> impl Strategy<Value = EatClaims> {
        (
            (
                of(pvec(any::<u8>(), 8..=64)),
                of(pvec(any::<u8>(), 7..=33)),
                of(prop_oneof![
                    any::<i64>().prop_map(OemId::Pen),
                    any::<[u8; 3]>().prop_map(OemId::Ieee),
                    any::<[u8; 16]>().prop_map(OemId::Random)
                ]),
                of(pvec(any::<u8>(), 1..=32)),
                of((text(), of(any::<i64>()))),
            ),
            (
                of(pvec(any::<u8>(), 0..40)),
                of(text()),
                of(pvec((any::<u16>(), pvec(any::<u8>(), 0..10)), 1..3)),
                of(any::<i64>()),
                of(any::<i64>()),
            ),
        )
            .prop_map(|((n, u, o, m, hv), (kid, sw, man, iat, exp))| {
                let mut c = EatClaims::new();
                c.eat_nonce = n.map(EatNonce::Single);
                c.ueid = u;
                c.oemid = o;
                c.hwmodel = m;
                c.hwversion = hv.map(|(version, scheme)| HwVersion { version, scheme });
                c.cnf = kid.map(Confirmation::Kid);
                c.sw_name = sw;
                c.manifests = man.map(|l| {
                    l.into_iter()
                        .map(|(t, b)| ContentFormat {
                            content_type: t,
                            content: Value::Bytes(b),
                        })
                        .collect()
                });
                c.iat = iat;
                c.exp = exp;
                c
            })
    }

    proptest! {
        #[test]
        fn generated_claims_round_trip(c in claims()) {
            let bytes = c.to_vec().unwrap();
            let d = EatClaims::decode_strict(&bytes).unwrap();
            prop_assert_eq!(&d, &c);
            prop_assert_eq!(d.to_vec().unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in pvec(any::<u8>(), 0..200)) {
            let _ = EatClaims::decode(&bytes);
        }
    }
}

mod signed_tests {
    use super::*;
    use crate::signed::{self, EatSignOptions, SignedEatError};
    use otrp_crypto::{
        default_provider, thumbprint::cose_key_thumbprint, KeyKind, PrivateKey, SigAlg,
    };
    use rand_chacha::rand_core::SeedableRng;

    fn keys() -> (PrivateKey, PrivateKey) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        (
            PrivateKey::generate(KeyKind::P256, &mut rng).unwrap(),
            PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap(),
        )
    }

    fn teep_claims(cnf_kid: Vec<u8>) -> EatClaims {
        EatClaims::new()
            .with_cnf(Confirmation::Kid(cnf_kid))
            .with_nonce(vec![0x94; 9])
            .with_ueid(vec![1; 17])
            .with_oemid(OemId::Ieee([0x89, 0x48, 0x23]))
            .with_hwmodel(vec![0x54; 16])
            .with_hwversion("1.3.4", Some(1))
            .with_manifests(vec![ContentFormat {
                content_type: 60,
                content: Value::Bytes(enc(&suit_reference())),
            }])
    }

    #[test]
    fn sign_verify_decode_round_trip() {
        let provider = default_provider();
        let (p, e) = keys();
        let pubs = [p.public_key(), e.public_key()];
        let claims = teep_claims(cose_key_thumbprint(&e.public_key(), provider).to_vec());
        for (key, idx, alg) in [(&p, 0, SigAlg::P256Sha256), (&e, 1, SigAlg::Ed25519)] {
            let bytes = signed::sign(provider, key, &claims, &EatSignOptions::default()).unwrap();
            assert_eq!(bytes[0], 0x84, "untagged COSE_Sign1");
            std::println!(
                "EAT ({} claim bytes) as COSE_Sign1 {alg:?}: {} bytes",
                claims.to_vec().unwrap().len(),
                bytes.len()
            );
            let v = signed::verify_teep(provider, &bytes, &pubs).unwrap();
            assert_eq!(v.claims, claims);
            assert_eq!(v.key_index, idx);
            assert_eq!(v.alg, alg);
            assert_eq!(
                v.kid.as_deref(),
                Some(&cose_key_thumbprint(&key.public_key(), provider)[..])
            );
            let tagged = signed::sign(
                provider,
                key,
                &claims,
                &EatSignOptions {
                    tagged: true,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(tagged[0], 0xD2);
            assert_eq!(
                signed::verify(provider, &tagged, &pubs).unwrap().claims,
                claims
            );
        }
    }

    #[test]
    fn bad_signatures_keys_and_claims_are_refused() {
        let provider = default_provider();
        let (p, e) = keys();
        let claims = teep_claims(vec![1; 32]);
        let good = signed::sign(provider, &p, &claims, &EatSignOptions::default()).unwrap();
        assert!(matches!(
            signed::verify(provider, &good, &[e.public_key()]),
            Err(SignedEatError::Cose(_))
        ));
        // No bit flip changes the verified claims (the unprotected kid is not signed).
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x80;
            if let Ok(v) = signed::verify(provider, &b, &[p.public_key()]) {
                assert_eq!(v.claims, claims, "flip at {i}");
            }
        }
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(signed::verify(provider, &b, &[p.public_key()]).is_err());
        for n in 0..good.len() {
            assert!(signed::verify(provider, &good[..n], &[p.public_key()]).is_err());
        }
        // Claims that are not a TEEP profile EAT verify but fail the profile check.
        let partial = EatClaims::new().with_ueid(vec![1; 9]);
        let b = signed::sign(provider, &p, &partial, &EatSignOptions::default()).unwrap();
        assert!(signed::verify(provider, &b, &[p.public_key()]).is_ok());
        assert_eq!(
            signed::verify_teep(provider, &b, &[p.public_key()]),
            Err(SignedEatError::Claims(EatError::MissingClaim {
                claim: "oemid"
            }))
        );
        // An explicit kid that is not the thumbprint names no key: the COSE layer refuses it.
        let odd_kid = otrp_cose::sign1(
            provider,
            &p,
            &claims.to_vec().unwrap(),
            false,
            &otrp_cose::SignOptions {
                kid: otrp_cose::KidMode::Explicit(vec![1, 2, 3]),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(matches!(
            signed::verify_teep(provider, &odd_kid, &[p.public_key()]),
            Err(SignedEatError::Cose(
                otrp_cose::CoseError::NoMatchingKey { .. }
            ))
        ));
        // invalid claims are refused before signing
        assert!(matches!(
            signed::sign(
                provider,
                &p,
                &EatClaims::new().with_hwmodel(Vec::new()),
                &EatSignOptions::default()
            ),
            Err(SignedEatError::Claims(EatError::Cbor(
                CborError::SizeOutOfRange { .. }
            )))
        ));
    }
}
