//! Tests: the draft's vectors, negative cases, limits, property tests.
#![allow(clippy::unwrap_used, clippy::panic)]

extern crate std;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use otrp_cbor::CborError;

const VECTORS: &[&str] = &[
    "query_request",
    "query_request_d21",
    "query_response",
    "update",
    "success",
    "error",
];

fn vector(name: &str) -> Vec<u8> {
    let path = std::format!(
        "{}/../../../testdata/vectors/teep/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    hex::decode(text.trim()).unwrap()
}

const TOKEN: [u8; 16] = [
    0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
];

#[test]
fn every_vector_round_trips_byte_for_byte() {
    for name in VECTORS {
        let bytes = vector(name);
        let msg = decode_any(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.to_vec().unwrap(), bytes, "{name}");
        // The vectors are in preferred serialization, so strict decoding accepts them too.
        assert_eq!(TeepMessage::decode_strict(&bytes).unwrap(), msg, "{name}");
        std::println!("{name}: {} bytes", bytes.len());
    }
}

#[test]
fn deterministic_re_encoding_of_every_vector() {
    for name in VECTORS {
        let bytes = vector(name);
        let mut msg = decode_any(&bytes).unwrap();
        msg.make_deterministic();
        let det = msg.to_vec().unwrap();
        // Reordering keys never changes the size; the draft's examples are not all in
        // deterministic key order (token 20 is written first).
        assert_eq!(det.len(), bytes.len(), "{name}");
        assert_eq!(decode_any(&det).unwrap(), msg, "{name}");
        std::println!(
            "{name}: draft {} bytes, decoded+re-encoded {} bytes (identical), deterministic {} bytes ({})",
            bytes.len(),
            msg.to_vec().unwrap().len(),
            det.len(),
            if det == bytes { "identical" } else { "same size, keys reordered" }
        );
    }
}

#[test]
fn huge_maps_decode_and_encode_in_n_log_n() {
    // [5, {24: 0, 25: 0, ..., 24+n: 0}]: distinct unknown labels, kept and re-encoded.
    let n = 100_000u64;
    let entries: Vec<(Value, Value)> = (0..n)
        .map(|i| (Value::Integer((24 + i).into()), int(0)))
        .collect();
    let bytes = enc(&Value::Array(vec![int(5), Value::Map(entries)]));
    let s = Success::decode(&bytes).unwrap();
    assert_eq!(s.extensions.len(), n as usize);
    assert_eq!(s.to_vec().unwrap(), bytes);
    // ... and a duplicate at the very end is found.
    let mut entries: Vec<(Value, Value)> = (0..n)
        .map(|i| (Value::Integer((24 + i).into()), int(0)))
        .collect();
    entries.push((int(24), int(1)));
    let bytes = enc(&Value::Array(vec![int(5), Value::Map(entries)]));
    assert!(
        matches!(Success::decode(&bytes), Err(TeepError::Cbor(CborError::DuplicateKey { ref key, .. })) if key == "24")
    );
}

#[test]
fn query_request_vector_fields() {
    let m = QueryRequest::decode(&vector("query_request")).unwrap();
    assert_eq!(m.token.as_deref(), Some(&TOKEN[..]));
    assert_eq!(m.versions, Some(vec![0]));
    assert_eq!(
        m.supported_teep_cipher_suites,
        vec![
            TeepCipherSuite::SIGN1_ESP256,
            TeepCipherSuite::SIGN1_ED25519
        ]
    );
    assert_eq!(
        m.supported_suit_cose_profiles,
        vec![
            SuitCoseProfile::SHA256_ESP256_ECDH_A128CTR,
            SuitCoseProfile::SHA256_ED25519_ECDH_A128CTR,
            SuitCoseProfile::SHA256_ESP256_ECDH_A128GCM,
            SuitCoseProfile::SHA256_ED25519_ECDH_CHACHA_POLY,
        ]
    );
    assert_eq!(
        m.data_item_requested,
        DataItemRequested::ATTESTATION | DataItemRequested::TRUSTED_COMPONENTS
    );
    assert!(m.challenge.is_none() && m.extensions.is_empty());
    assert_eq!(
        m.supported_teep_cipher_suites[0].sign1_alg(),
        Some(cose_alg::ESP256)
    );
}

#[test]
fn query_request_d21_vector_uses_old_alg_ids() {
    let m = QueryRequest::decode(&vector("query_request_d21")).unwrap();
    assert_eq!(
        m.supported_teep_cipher_suites,
        vec![TeepCipherSuite::SIGN1_ES256, TeepCipherSuite::SIGN1_EDDSA]
    );
    assert_eq!(
        m.supported_suit_cose_profiles,
        vec![
            SuitCoseProfile::SHA256_ES256_ECDH_A128CTR,
            SuitCoseProfile::SHA256_EDDSA_ECDH_A128CTR,
            SuitCoseProfile::SHA256_ES256_ECDH_A128GCM,
            SuitCoseProfile::SHA256_EDDSA_ECDH_CHACHA_POLY,
        ]
    );
}

#[test]
fn query_response_vector_fields() {
    let m = QueryResponse::decode(&vector("query_response")).unwrap();
    assert_eq!(m.token.as_deref(), Some(&TOKEN[..]));
    assert_eq!(m.selected_version, Some(0));
    assert_eq!(m.attestation_payload, Some(Vec::new()));
    let tc = m.tc_list.as_ref().unwrap();
    assert_eq!(tc.len(), 1);
    assert_eq!(
        tc[0].component_id,
        ComponentId::new([hex::decode("0102030405060708090A0B0C0D0E0F").unwrap()])
    );
    let digest = tc[0].image_digest().unwrap();
    // << [-16, h'A7FD...'] >>
    assert_eq!(&digest[..4], &[0x82, 0x2F, 0x58, 0x20]);
    assert_eq!(digest[4], 0xA7);
}

#[test]
fn update_vector_fields() {
    let bytes = vector("update");
    let m = Update::decode(&bytes).unwrap();
    assert_eq!(m.token.as_deref(), Some(&TOKEN[..]));
    let list = m.manifest_list.as_ref().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].len(), 0x14E);
    // The SUIT envelope starts with a map of two entries holding the authentication wrapper.
    assert_eq!(&list[0][..3], &[0xA2, 0x02, 0x58]);
    assert!(m.err_code.is_none() && m.unneeded_manifest_list.is_none());
}

#[test]
fn success_and_error_vector_fields() {
    let s = Success::decode(&vector("success")).unwrap();
    assert_eq!(s.token.as_deref(), Some(&TOKEN[..]));
    assert!(s.msg.is_none());
    let e = Error::decode(&vector("error")).unwrap();
    assert_eq!(e.token.as_deref(), Some(&TOKEN[..]));
    assert_eq!(e.err_msg.as_deref(), Some("disk-full"));
    assert_eq!(e.err_code, ErrCode::ManifestProcessingFailed);
}

#[test]
fn built_messages_equal_the_vectors() {
    let qr = QueryRequest::new(
        vec![
            TeepCipherSuite::SIGN1_ESP256,
            TeepCipherSuite::SIGN1_ED25519,
        ],
        vec![
            SuitCoseProfile::SHA256_ESP256_ECDH_A128CTR,
            SuitCoseProfile::SHA256_ED25519_ECDH_A128CTR,
            SuitCoseProfile::SHA256_ESP256_ECDH_A128GCM,
            SuitCoseProfile::SHA256_ED25519_ECDH_CHACHA_POLY,
        ],
        DataItemRequested::ATTESTATION | DataItemRequested::TRUSTED_COMPONENTS,
    )
    .with_token(TOKEN)
    .with_versions(vec![0]);
    // The draft writes token (20) before versions (3); deterministic order sorts 3 first.
    let built = qr.to_vec().unwrap();
    let vector_bytes = vector("query_request");
    assert_eq!(built.len(), vector_bytes.len());
    assert_ne!(built, vector_bytes);
    assert_eq!(
        QueryRequest::decode(&built).unwrap(),
        QueryRequest::decode(&vector_bytes).unwrap()
    );
    assert_eq!(&built[..6], &[0x85, 0x01, 0xA2, 0x03, 0x81, 0x00]);

    // Messages with a single option are byte-identical when built.
    assert_eq!(
        Success::new().with_token(TOKEN).to_vec().unwrap(),
        vector("success")
    );
    let e = Error::new(ErrCode::ManifestProcessingFailed)
        .with_token(TOKEN)
        .with_err_msg("disk-full");
    // err-msg (12) sorts before token (20): same size, different order.
    let eb = e.to_vec().unwrap();
    assert_eq!(eb.len(), vector("error").len());
    assert_eq!(Error::decode(&eb).unwrap(), e);
}

#[test]
fn decode_reports_wrong_type_with_path() {
    // token as text instead of bytes
    let v = Value::Array(vec![
        int(5),
        Value::Map(vec![(int(20), Value::Text("0123456789".into()))]),
    ]);
    match Success::decode(&enc(&v)) {
        Err(TeepError::Cbor(CborError::WrongType { path, .. })) => {
            assert_eq!(path, "success.options.token")
        }
        other => panic!("{other:?}"),
    }
}

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

#[test]
fn token_and_challenge_sizes_are_checked() {
    for (len, ok) in [(7, false), (8, true), (64, true), (65, false)] {
        let v = Value::Array(vec![
            int(5),
            Value::Map(vec![(int(20), Value::Bytes(vec![1; len]))]),
        ]);
        let r = decode_any(&enc(&v));
        assert_eq!(r.is_ok(), ok, "token {len}: {r:?}");
        if !ok {
            assert!(
                matches!(r, Err(TeepError::Cbor(CborError::SizeOutOfRange { ref path, .. })) if path == "success.options.token")
            );
        }
    }
    for (len, ok) in [(7, false), (8, true), (512, true), (513, false)] {
        let e = Error::new(ErrCode::AttestationRequired).with_challenge(vec![9; len]);
        assert_eq!(e.to_vec().is_ok(), ok, "encode challenge {len}");
        let v = Value::Array(vec![
            int(6),
            Value::Map(vec![(int(2), Value::Bytes(vec![1; len]))]),
            int(7),
        ]);
        assert_eq!(decode_any(&enc(&v)).is_ok(), ok, "decode challenge {len}");
    }
}

#[test]
fn err_msg_and_lang_sizes_are_checked() {
    for (len, ok) in [(0, false), (1, true), (128, true), (129, false)] {
        let s: String = "x".repeat(len);
        let v = Value::Array(vec![
            int(6),
            Value::Map(vec![(int(12), Value::Text(s.clone()))]),
            int(1),
        ]);
        let r = decode_any(&enc(&v));
        assert_eq!(r.is_ok(), ok, "err-msg {len}");
        assert_eq!(
            Error::new(ErrCode::PermanentError)
                .with_err_msg(s.clone())
                .to_vec()
                .is_ok(),
            ok
        );
        assert_eq!(Success::new().with_msg(s).to_vec().is_ok(), ok);
    }
    let v = Value::Array(vec![
        int(3),
        Value::Map(vec![(int(22), Value::Text("x".repeat(36)))]),
    ]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::Cbor(CborError::SizeOutOfRange { ref path, .. })) if path == "update.options.err-lang")
    );
}

#[test]
fn err_code_zero_is_refused() {
    let v = Value::Array(vec![int(6), Value::Map(vec![]), int(0)]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::InvalidValue { ref path, .. }) if path == "error.err-code")
    );
    let v = Value::Array(vec![int(3), Value::Map(vec![(int(23), int(0))])]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::InvalidValue { ref path, .. }) if path == "update.options.err-code")
    );
    assert!(Error::new(ErrCode::Unknown(0)).to_vec().is_err());
    // unknown non-zero codes are kept
    let v = Value::Array(vec![int(6), Value::Map(vec![]), int(99)]);
    let e = Error::decode(&enc(&v)).unwrap();
    assert_eq!(e.err_code, ErrCode::Unknown(99));
    assert_eq!(ErrCode::from_u64(17), ErrCode::ManifestProcessingFailed);
}

#[test]
fn framing_errors() {
    // missing positional elements of a QueryRequest
    let v = Value::Array(vec![int(1), Value::Map(vec![]), Value::Array(vec![])]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::MissingElement { ref path }) if path == "query-request.supported-suit-cose-profiles")
    );
    let v = Value::Array(vec![int(6), Value::Map(vec![])]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::MissingElement { ref path }) if path == "error.err-code")
    );
    let v = Value::Array(vec![int(5)]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::MissingElement { ref path }) if path == "success.options")
    );
    // extra element
    let v = Value::Array(vec![int(5), Value::Map(vec![]), int(1)]);
    assert!(matches!(
        decode_any(&enc(&v)),
        Err(TeepError::ExtraElements { count: 1, .. })
    ));
    // options not a map
    let v = Value::Array(vec![int(5), Value::Array(vec![])]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::Cbor(CborError::WrongType { ref path, expected: "map" })) if path == "success.options")
    );
    // non-uint label
    let v = Value::Array(vec![
        int(5),
        Value::Map(vec![(Value::Text("x".into()), int(1))]),
    ]);
    assert!(matches!(
        decode_any(&enc(&v)),
        Err(TeepError::Cbor(CborError::WrongType { .. }))
    ));
    // duplicate label
    let v = Value::Array(vec![
        int(5),
        Value::Map(vec![
            (int(11), Value::Text("a".into())),
            (int(11), Value::Text("b".into())),
        ]),
    ]);
    assert!(matches!(
        decode_any(&enc(&v)),
        Err(TeepError::Cbor(CborError::DuplicateKey { .. }))
    ));
    // unknown and wrong message types
    let v = Value::Array(vec![int(4), Value::Map(vec![])]);
    assert_eq!(decode_any(&enc(&v)), Err(TeepError::UnknownMessageType(4)));
    assert_eq!(
        Success::decode(&vector("error")),
        Err(TeepError::WrongMessageType {
            expected: 5,
            found: 6
        })
    );
    // not an array
    assert!(matches!(
        decode_any(&enc(&int(1))),
        Err(TeepError::Cbor(CborError::WrongType { .. }))
    ));
    // empty [+ ...] arrays
    let v = Value::Array(vec![
        int(2),
        Value::Map(vec![(int(3), Value::Array(vec![]))]),
    ]);
    assert!(
        decode_any(&enc(&v)).is_ok(),
        "versions is not a QueryResponse option: kept"
    );
    let v = Value::Array(vec![
        int(1),
        Value::Map(vec![(int(3), Value::Array(vec![]))]),
        Value::Array(vec![]),
        Value::Array(vec![]),
        int(0),
    ]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::Cbor(CborError::EmptyArray { ref path })) if path == "query-request.options.versions")
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = vector("success");
    bytes.push(0x00);
    assert_eq!(
        decode_any(&bytes),
        Err(TeepError::Cbor(CborError::TrailingBytes {
            offset: 21,
            count: 1
        }))
    );
}

#[test]
fn unknown_options_are_kept_in_order() {
    // [5, {99: "x", 20: token, 0: [1]}]
    let v = Value::Array(vec![
        int(5),
        Value::Map(vec![
            (int(99), Value::Text("x".into())),
            (int(20), Value::Bytes(TOKEN.to_vec())),
            (int(0), Value::Array(vec![int(1)])),
        ]),
    ]);
    let bytes = enc(&v);
    let s = Success::decode(&bytes).unwrap();
    assert_eq!(
        s.extensions,
        vec![
            (99, Value::Text("x".into())),
            (0, Value::Array(vec![int(1)]))
        ]
    );
    assert_eq!(s.to_vec().unwrap(), bytes);
    // Once the decoded order is forgotten the encoding is deterministic.
    let mut s2 = s.clone();
    s2.key_order.clear();
    let det = s2.to_vec().unwrap();
    assert_eq!(det[3], 0x00, "label 0 first");
    // Adding a member also switches to deterministic order.
    let s3 = s.with_msg("ok");
    let b3 = s3.to_vec().unwrap();
    assert_eq!(b3[3], 0x00);
    // An extension that collides with a typed member is refused on encode.
    let mut s4 = Success::new().with_token(TOKEN);
    s4.extensions.push((20, Value::Null));
    assert!(matches!(
        s4.to_vec(),
        Err(TeepError::Cbor(CborError::DuplicateKey { .. }))
    ));
}

#[test]
fn strict_decoding_refuses_non_preferred_encodings() {
    // 0x18 0x05 = non-preferred 5 as the message type
    let bytes = hex::decode("821805A0").unwrap();
    assert!(decode_any(&bytes).is_ok());
    assert!(matches!(
        TeepMessage::decode_strict(&bytes),
        Err(TeepError::Cbor(CborError::NotDeterministic { offset: 1 }))
    ));
    // indefinite-length options map
    let bytes = hex::decode("8205BFFF").unwrap();
    assert!(Success::decode(&bytes).is_ok());
    assert!(Success::decode_strict(&bytes).is_err());
}

#[test]
fn huge_declared_lengths_fail_without_allocating() {
    // bstr of length 2^64-1, array of 2^64-1 items, map of 2^32 entries: all truncated.
    for h in [
        "8205A1145BFFFFFFFFFFFFFFFF00",
        "9BFFFFFFFFFFFFFFFF05",
        "8205BAFFFFFFFF",
        "8205A10B7BFFFFFFFFFFFFFFFF",
    ] {
        let bytes = hex::decode(h).unwrap();
        assert_eq!(
            decode_any(&bytes),
            Err(TeepError::Cbor(CborError::Truncated)),
            "{h}"
        );
    }
}

#[test]
fn nesting_and_size_limits() {
    // [5, {0: [[[[...]]]]}] nested 100 deep
    let mut inner = Value::Array(vec![]);
    for _ in 0..100 {
        inner = Value::Array(vec![inner]);
    }
    let v = Value::Array(vec![int(5), Value::Map(vec![(int(0), inner)])]);
    let bytes = enc(&v);
    assert_eq!(
        decode_any(&bytes),
        Err(TeepError::Cbor(CborError::TooDeep { max: 16 }))
    );
    let lim = DecodeLimits {
        max_input_len: 1 << 20,
        max_depth: 200,
    };
    assert!(TeepMessage::decode_with_limits(&bytes, &lim).is_ok());
    let small = DecodeLimits {
        max_input_len: 10,
        max_depth: 16,
    };
    assert_eq!(
        TeepMessage::decode_with_limits(&vector("success"), &small),
        Err(TeepError::Cbor(CborError::InputTooLarge {
            len: 21,
            max: 10
        }))
    );
    // Deeply nested indefinite arrays do not overflow the stack either.
    let bytes = vec![0x9F; 100_000];
    assert_eq!(
        decode_any(&bytes),
        Err(TeepError::Cbor(CborError::TooDeep { max: 16 }))
    );
}

#[test]
fn truncation_of_every_vector_at_every_length_is_an_error() {
    for name in VECTORS {
        let bytes = vector(name);
        for n in 0..bytes.len() {
            assert!(decode_any(&bytes[..n]).is_err(), "{name} truncated to {n}");
        }
    }
}

#[test]
fn bit_flips_never_panic() {
    for name in VECTORS {
        let bytes = vector(name);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(m) = decode_any(&b) {
                    // Anything we accept re-encodes and decodes to the same value.
                    let again = m.to_vec().unwrap();
                    assert_eq!(decode_any(&again).unwrap(), m);
                }
            }
        }
    }
}

#[test]
fn requested_tc_info_and_unneeded_list_round_trip() {
    let m = QueryResponse::new()
        .with_token(TOKEN)
        .with_requested_tc_list(vec![RequestedTcInfo::new(ComponentId::new([
            b"TEEP-Device".to_vec(),
            b"ta".to_vec(),
        ]))
        .with_sequence_number(3)
        .with_have_binary(true)])
        .with_unneeded_manifest_list(vec![ComponentId::new([b"old".to_vec()])])
        .with_ext_list(vec![1])
        .with_tc_list(vec![SystemPropertyClaims::new(ComponentId::new([vec![
            1, 2,
        ]]))
        .with_parameter(SystemPropertyClaims::IMAGE_SIZE, int(20))])
        .with_suit_reports(vec![vec![0xA0]]);
    let bytes = m.to_vec().unwrap();
    let d = QueryResponse::decode_strict(&bytes).unwrap();
    assert_eq!(d, m);
    let r = &d.requested_tc_list.as_ref().unwrap()[0];
    assert_eq!(r.tc_manifest_sequence_number, Some(3));
    assert_eq!(r.have_binary, Some(true));
    // requested-tc-info without component-id
    let v = Value::Array(vec![
        int(2),
        Value::Map(vec![(
            int(14),
            Value::Array(vec![Value::Map(vec![(int(18), Value::Bool(true))])]),
        )]),
    ]);
    assert!(
        matches!(decode_any(&enc(&v)), Err(TeepError::MissingMember { ref path }) if path == "query-response.options.requested-tc-list[0].component-id")
    );
}

mod prop {
    use super::*;
    use proptest::collection::vec as pvec;
    use proptest::option::of;
    use proptest::prelude::*;

    fn token() -> impl Strategy<Value = Vec<u8>> {
        pvec(any::<u8>(), 8..=64)
    }
    fn challenge() -> impl Strategy<Value = Vec<u8>> {
        pvec(any::<u8>(), 8..=80)
    }
    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&std::format!("[a-zA-Z0-9 é-]{{1,{}}}", max / 2)).unwrap()
    }
    fn suite() -> impl Strategy<Value = TeepCipherSuite> {
        prop_oneof![
            Just(TeepCipherSuite::SIGN1_ESP256),
            Just(TeepCipherSuite::SIGN1_ED25519),
            pvec((any::<u64>(), any::<i64>()), 1..3).prop_map(|ops| TeepCipherSuite::from_ops(
                ops.into_iter()
                    .map(|(cose_type, alg)| CipherOperation { cose_type, alg })
                    .collect()
            )),
        ]
    }
    fn profile() -> impl Strategy<Value = SuitCoseProfile> {
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()).prop_map(|(d, a, k, e)| {
            SuitCoseProfile {
                digest: d,
                auth: a,
                key_exchange: k,
                encryption: e,
            }
        })
    }
    fn cid() -> impl Strategy<Value = ComponentId> {
        pvec(pvec(any::<u8>(), 0..6), 0..4).prop_map(ComponentId)
    }
    fn bytes_list() -> impl Strategy<Value = Vec<Vec<u8>>> {
        pvec(pvec(any::<u8>(), 0..20), 1..3)
    }
    fn ext() -> impl Strategy<Value = Vec<(u64, Value)>> {
        // labels 24.. are unused by every message
        pvec((24u64..1000, any::<i64>()), 0..3).prop_map(|mut v| {
            // deterministic encoding sorts labels, so generate them sorted
            v.sort_by_key(|(l, _)| *l);
            let mut seen = Vec::new();
            v.into_iter()
                .filter(|(l, _)| {
                    let fresh = !seen.contains(l);
                    seen.push(*l);
                    fresh
                })
                .map(|(l, x)| (l, Value::Integer(x.into())))
                .collect()
        })
    }
    fn err_code() -> impl Strategy<Value = ErrCode> {
        (1u64..40).prop_map(ErrCode::from_u64)
    }

    fn query_request() -> impl Strategy<Value = QueryRequest> {
        (
            (
                of(token()),
                of(pvec((0u64..3).prop_map(FreshnessMechanism), 1..3)),
                of(challenge()),
                of(pvec(any::<u32>(), 1..3)),
            ),
            (
                of(text(40)),
                of(pvec(any::<u8>(), 0..30)),
                of(bytes_list()),
                ext(),
            ),
            (pvec(suite(), 1..3), pvec(profile(), 1..3), any::<u64>()),
        )
            .prop_map(
                |((t, fm, c, v), (apf, ap, sr, ex), (s, p, d))| QueryRequest {
                    token: t,
                    supported_freshness_mechanisms: fm,
                    challenge: c,
                    versions: v,
                    attestation_payload_format: apf,
                    attestation_payload: ap,
                    suit_reports: sr,
                    extensions: ex,
                    key_order: KeyOrder::default(),
                    supported_teep_cipher_suites: s,
                    supported_suit_cose_profiles: p,
                    data_item_requested: DataItemRequested(d),
                },
            )
    }

    fn query_response() -> impl Strategy<Value = QueryResponse> {
        (
            (
                of(token()),
                of(any::<u32>()),
                of(text(30)),
                of(pvec(any::<u8>(), 0..30)),
                of(bytes_list()),
            ),
            (
                of(pvec((cid(), of(pvec(any::<u8>(), 0..10))), 1..3)),
                of(pvec((cid(), of(any::<u64>()), of(any::<bool>())), 1..3)),
                of(pvec(cid(), 1..3)),
                of(pvec(any::<u32>(), 1..3)),
                ext(),
            ),
        )
            .prop_map(
                |((t, sv, apf, ap, sr), (tc, rq, un, el, ex))| QueryResponse {
                    token: t,
                    selected_version: sv,
                    attestation_payload_format: apf,
                    attestation_payload: ap,
                    suit_reports: sr,
                    tc_list: tc.map(|l| {
                        l.into_iter()
                            .map(|(c, d)| {
                                let s = SystemPropertyClaims::new(c);
                                match d {
                                    Some(d) => s.with_parameter(3, Value::Bytes(d)),
                                    None => s,
                                }
                            })
                            .collect()
                    }),
                    requested_tc_list: rq.map(|l| {
                        l.into_iter()
                            .map(|(c, n, h)| RequestedTcInfo {
                                component_id: c,
                                tc_manifest_sequence_number: n,
                                have_binary: h,
                                ..Default::default()
                            })
                            .collect()
                    }),
                    unneeded_manifest_list: un,
                    ext_list: el,
                    extensions: ex,
                    key_order: KeyOrder::default(),
                },
            )
    }

    fn update() -> impl Strategy<Value = Update> {
        (
            (
                of(token()),
                of(pvec(cid(), 1..3)),
                of(bytes_list()),
                of(text(30)),
                of(pvec(any::<u8>(), 0..30)),
            ),
            (of(err_code()), of(text(128)), of(text(35)), ext()),
        )
            .prop_map(|((t, un, ml, apf, ap), (ec, em, el, ex))| Update {
                token: t,
                unneeded_manifest_list: un,
                manifest_list: ml,
                attestation_payload_format: apf,
                attestation_payload: ap,
                err_code: ec,
                err_msg: em,
                err_lang: el,
                extensions: ex,
                key_order: KeyOrder::default(),
            })
    }

    fn success() -> impl Strategy<Value = Success> {
        (of(token()), of(text(128)), of(bytes_list()), ext()).prop_map(|(t, m, sr, ex)| Success {
            token: t,
            msg: m,
            suit_reports: sr,
            extensions: ex,
            key_order: KeyOrder::default(),
        })
    }

    fn error() -> impl Strategy<Value = Error> {
        (
            (
                of(token()),
                of(text(128)),
                of(text(35)),
                of(pvec(suite(), 1..3)),
                of(pvec((0u64..3).prop_map(FreshnessMechanism), 1..3)),
            ),
            (
                of(pvec(profile(), 1..3)),
                of(challenge()),
                of(pvec(any::<u32>(), 1..3)),
                of(bytes_list()),
                ext(),
                err_code(),
            ),
        )
            .prop_map(|((t, em, el, s, fm), (p, c, v, sr, ex, ec))| Error {
                token: t,
                err_msg: em,
                err_lang: el,
                supported_teep_cipher_suites: s,
                supported_freshness_mechanisms: fm,
                supported_suit_cose_profiles: p,
                challenge: c,
                versions: v,
                suit_reports: sr,
                extensions: ex,
                key_order: KeyOrder::default(),
                err_code: ec,
            })
    }

    fn message() -> impl Strategy<Value = TeepMessage> {
        prop_oneof![
            query_request().prop_map(TeepMessage::from),
            query_response().prop_map(TeepMessage::from),
            update().prop_map(TeepMessage::from),
            success().prop_map(TeepMessage::from),
            error().prop_map(TeepMessage::from),
        ]
    }

    proptest! {
        #[test]
        fn generated_messages_round_trip(m in message()) {
            let bytes = m.to_vec().unwrap();
            let d = TeepMessage::decode_strict(&bytes).unwrap();
            prop_assert_eq!(&d, &m);
            prop_assert_eq!(d.to_vec().unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in pvec(any::<u8>(), 0..200)) {
            let _ = decode_any(&bytes);
        }

        #[test]
        fn mutated_vectors_never_panic(idx in 0usize..6, pos in any::<usize>(), byte in any::<u8>()) {
            let mut b = vector(VECTORS[idx]);
            let p = pos % b.len();
            b[p] = byte;
            if let Ok(m) = decode_any(&b) {
                prop_assert_eq!(decode_any(&m.to_vec().unwrap()).unwrap(), m);
            }
        }
    }
}

mod signed_tests {
    use super::*;
    use crate::signed::{self, Protection, SignedError};
    use otrp_crypto::{
        default_provider, thumbprint::cose_key_thumbprint, AlgIdGeneration, KeyKind, PrivateKey,
        SigAlg,
    };
    use rand_chacha::rand_core::SeedableRng;

    fn p256() -> PrivateKey {
        let path = std::format!(
            "{}/../../../testdata/vectors/teep/keys/suit_signer_p256_private.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        PrivateKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn ed25519() -> PrivateKey {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        PrivateKey::generate(KeyKind::Ed25519, &mut rng).unwrap()
    }

    #[test]
    fn sign1_verify_decode_round_trip_for_every_vector() {
        let provider = default_provider();
        let (p, e) = (p256(), ed25519());
        let keys = [p.public_key(), e.public_key()];
        for name in VECTORS {
            let bytes = vector(name);
            let msg = decode_any(&bytes).unwrap();
            for (key, gen, suite, idx) in [
                (&p, AlgIdGeneration::New, TeepCipherSuite::SIGN1_ESP256, 0),
                (&p, AlgIdGeneration::Legacy, TeepCipherSuite::SIGN1_ES256, 0),
                (&e, AlgIdGeneration::New, TeepCipherSuite::SIGN1_ED25519, 1),
                (&e, AlgIdGeneration::Legacy, TeepCipherSuite::SIGN1_EDDSA, 1),
            ] {
                let signed_bytes = signed::sign1(provider, key, &msg, gen).unwrap();
                assert_eq!(signed_bytes[0], 0xD2, "tag 18");
                let v = signed::verify(provider, &signed_bytes, &keys).unwrap();
                assert_eq!(v.message, msg, "{name}");
                assert_eq!(v.message.to_vec().unwrap(), bytes, "{name}: payload bytes");
                assert_eq!(v.suite, suite);
                assert_eq!(v.key_index, idx);
                assert_eq!(v.protection, Protection::Sign1);
                assert_eq!(
                    v.kid.as_deref(),
                    Some(&cose_key_thumbprint(&key.public_key(), provider)[..])
                );
                if gen == AlgIdGeneration::New {
                    std::println!(
                        "{name}: {} bytes, COSE_Sign1 {:?}: {} bytes",
                        bytes.len(),
                        v.alg,
                        signed_bytes.len()
                    );
                }
            }
        }
    }

    #[test]
    fn first_query_request_as_cose_sign_with_both_algorithms() {
        let provider = default_provider();
        let (p, e) = (p256(), ed25519());
        let qr = QueryRequest::decode(&vector("query_request")).unwrap();
        let signed_bytes = signed::sign_query_request(provider, &[&e, &p], &qr).unwrap();
        assert_eq!(&signed_bytes[..2], &[0xD8, 0x62], "tag 98");
        std::println!(
            "query_request as COSE_Sign (ESP256 + Ed25519): {} bytes",
            signed_bytes.len()
        );
        // An Agent that only knows the Ed25519 key verifies one of the two signatures.
        let v = signed::verify(provider, &signed_bytes, &[e.public_key()]).unwrap();
        assert_eq!(
            v.protection,
            Protection::Sign {
                verified: 1,
                total: 2
            }
        );
        assert_eq!(v.suite, TeepCipherSuite::SIGN1_ED25519);
        assert_eq!(v.message, TeepMessage::QueryRequest(qr.clone()));
        let v = signed::verify(provider, &signed_bytes, &[p.public_key(), e.public_key()]).unwrap();
        assert_eq!(
            v.protection,
            Protection::Sign {
                verified: 2,
                total: 2
            }
        );
        assert_eq!(v.alg, SigAlg::P256Sha256);
        // -21 suites give the legacy ids.
        let qr21 = QueryRequest::decode(&vector("query_request_d21")).unwrap();
        let s21 = signed::sign_query_request(provider, &[&p, &e], &qr21).unwrap();
        let v = signed::verify(provider, &s21, &[p.public_key()]).unwrap();
        assert_eq!(v.suite, TeepCipherSuite::SIGN1_ES256);
        // A suite without a key is an error.
        assert_eq!(
            signed::sign_query_request(provider, &[&p], &qr),
            Err(SignedError::NoKeyFor(SigAlg::Ed25519))
        );
    }

    #[test]
    fn tampering_wrong_keys_and_mismatches_are_refused() {
        let provider = default_provider();
        let (p, e) = (p256(), ed25519());
        let msg = decode_any(&vector("update")).unwrap();
        let good = signed::sign1(provider, &p, &msg, AlgIdGeneration::New).unwrap();
        // wrong key
        assert!(matches!(
            signed::verify(provider, &good, &[e.public_key()]),
            Err(SignedError::Cose(_))
        ));
        // No single-bit flip changes the verified message: flips in the protected header,
        // payload or signature are refused; the unprotected header (kid) is not signed, so
        // a flip there may still verify, with the same message. Never a panic.
        let payload = msg.to_vec().unwrap();
        let payload_at = good
            .windows(payload.len())
            .position(|w| w == &payload[..])
            .unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            if let Ok(v) = signed::verify(provider, &b, &[p.public_key()]) {
                assert_eq!(v.message, msg, "flip at {i}");
                assert!(
                    i < payload_at && i > 5,
                    "flip at {i} outside the unprotected header"
                );
            }
        }
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(signed::verify(provider, &b, &[p.public_key()]).is_err());
        for n in 0..good.len() {
            assert!(signed::verify(provider, &good[..n], &[p.public_key()]).is_err());
        }
        // a plain TEEP message is not signed
        assert!(signed::verify(provider, &vector("success"), &[p.public_key()]).is_err());
        // key/suite mismatch
        assert_eq!(
            signed::sign1_with_suite(provider, &p, &msg, &TeepCipherSuite::SIGN1_ED25519),
            Err(SignedError::KeyMismatch {
                key: SigAlg::P256Sha256,
                suite: SigAlg::Ed25519
            })
        );
        let odd = TeepCipherSuite::from_ops(vec![CipherOperation {
            cose_type: 18,
            alg: -35,
        }]);
        assert!(matches!(
            signed::sign1_with_suite(provider, &p, &msg, &odd),
            Err(SignedError::UnsupportedSuite(_))
        ));
        // an invalid message is refused before signing
        let bad = TeepMessage::Success(Success::new().with_token(vec![1; 3]));
        assert!(matches!(
            signed::sign1(provider, &p, &bad, AlgIdGeneration::New),
            Err(SignedError::Teep(TeepError::Cbor(
                CborError::SizeOutOfRange { .. }
            )))
        ));
        // A validly signed payload that is not a TEEP message is a TEEP error.
        let not_teep = otrp_cose::sign1(
            provider,
            &p,
            &[0xA0],
            false,
            &otrp_cose::SignOptions::default(),
        )
        .unwrap();
        assert!(matches!(
            signed::verify(provider, &not_teep, &[p.public_key()]),
            Err(SignedError::Teep(TeepError::Cbor(
                CborError::WrongType { .. }
            )))
        ));
        assert_eq!(
            TeepCipherSuite::SIGN1_ESP256.signing(),
            Some((SigAlg::P256Sha256, AlgIdGeneration::New))
        );
        assert_eq!(
            TeepCipherSuite::for_alg(SigAlg::Ed25519, AlgIdGeneration::Legacy),
            TeepCipherSuite::SIGN1_EDDSA
        );
    }
}
