//! Malformed input never panics; errors carry field paths; limits hold.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_suit::{
    CborItem, Command, CommandSequence, ComponentId, Envelope, Limits, Manifest, Parameter,
    Parameters, SuitError, TaManifestBuilder, Value, Wrapped,
};

fn vector(rel: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../testdata/vectors/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let clean: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex::decode(clean).unwrap()
}

const SAMPLE: &[&str] = &[
    "suit/example0.hex",
    "suit/example2.hex",
    "suit/example3.hex",
    "teep/suit_integrated.hex",
    "teep/suit_personalization.hex",
];

#[test]
fn truncations_are_errors_not_panics() {
    for v in SAMPLE {
        let bytes = vector(v);
        for n in 0..bytes.len() {
            assert!(
                Envelope::decode(&bytes[..n]).is_err(),
                "{v}: prefix {n} decoded"
            );
        }
    }
}

#[test]
fn bit_flips_never_panic_and_flips_in_the_manifest_break_the_digest() {
    for v in SAMPLE {
        let bytes = vector(v);
        let orig = Envelope::decode(&bytes).unwrap();
        let mbytes = orig.manifest.bytes();
        let start = bytes
            .windows(mbytes.len())
            .position(|w| w == mbytes)
            .unwrap();
        let mut decoded = 0usize;
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut m = bytes.clone();
                m[i] ^= 1 << bit;
                if let Ok(env) = Envelope::decode(&m) {
                    decoded += 1;
                    let _ = env.encode();
                    let _ = env.check_severed();
                    let _ = env.install();
                    if (start..start + mbytes.len()).contains(&i) {
                        assert!(
                            env.check_digest().is_err(),
                            "{v}: flip at {i} bit {bit} inside the manifest kept the digest"
                        );
                    }
                }
            }
        }
        assert!(decoded > 0, "{v}: no mutant decoded at all");
    }
}

#[test]
fn errors_name_the_field_path() {
    // image-size as text inside the shared sequence
    let seq = CommandSequence(vec![Command::OverrideParameters(Parameters(vec![
        Parameter::Other {
            label: 14,
            value: Value::Text("big".into()),
        },
    ]))]);
    let mut m = TaManifestBuilder::new(ComponentId::new([b"a"]), 1)
        .uri("https://x.example/a")
        .build_manifest()
        .unwrap();
    let mut common = m.common.value().clone();
    common.shared_sequence = Some(Wrapped::new(seq).unwrap());
    m.common = Wrapped::new(common).unwrap();
    let env = Envelope::unsigned(Wrapped::new(m).unwrap()).unwrap();
    let err = Envelope::decode(&env.encode().unwrap()).unwrap_err();
    assert_eq!(
        err,
        SuitError::Type {
            path: "envelope/manifest/common/shared-sequence[0]/20/14".into(),
            expected: "unsigned integer"
        }
    );
    assert_eq!(
        err.to_string(),
        "envelope/manifest/common/shared-sequence[0]/20/14: expected unsigned integer"
    );
}

#[test]
fn missing_and_wrong_members_are_typed() {
    // manifest without common
    let v = Value::Map(vec![(1.into(), 1.into()), (2.into(), 5.into())]);
    let bytes = {
        let mut b = Vec::new();
        ciborium::ser::into_writer(&v, &mut b).unwrap();
        b
    };
    assert_eq!(
        Manifest::from_cbor(&bytes).unwrap_err(),
        SuitError::Missing {
            path: "Manifest/common".into()
        }
    );
    // version 2 rejected
    let v = Value::Map(vec![(1.into(), 2.into())]);
    let mut b = Vec::new();
    ciborium::ser::into_writer(&v, &mut b).unwrap();
    assert!(matches!(
        Manifest::from_cbor(&b).unwrap_err(),
        SuitError::Invalid { ref path, .. } if path == "Manifest/manifest-version"
    ));
    // trailing bytes
    let mut t = vector("suit/example0.hex");
    t.push(0);
    assert!(matches!(
        Envelope::decode(&t).unwrap_err(),
        SuitError::TrailingBytes { len: 1, .. }
    ));
    // duplicate key
    let dup = hex::decode("a2014100014100").unwrap();
    assert!(matches!(
        Envelope::decode(&dup).unwrap_err(),
        SuitError::Duplicate { .. }
    ));
    // wrong tag
    let tagged = hex::decode("d86ca0").unwrap();
    assert!(matches!(
        Envelope::decode(&tagged).unwrap_err(),
        SuitError::Invalid { .. }
    ));
}

#[test]
fn limits_hold() {
    let bytes = vector("suit/example2.hex");
    let small = Limits {
        max_input_len: 100,
        ..Limits::default()
    };
    assert!(matches!(
        Envelope::decode_with(&bytes, &small).unwrap_err(),
        SuitError::TooLarge { max: 100, .. }
    ));
    // run-sequence nested 40 deep exceeds the wrap depth limit
    let mut seq = CommandSequence(vec![Command::Condition(
        otrp_suit::Condition::Abort,
        otrp_suit::ReportingPolicy(0),
    )]);
    for _ in 0..40 {
        seq = CommandSequence(vec![Command::RunSequence(Wrapped::new(seq).unwrap())]);
    }
    let enc = seq.to_cbor().unwrap();
    assert!(matches!(
        CommandSequence::from_cbor(&enc).unwrap_err(),
        SuitError::TooDeep { .. }
    ));
    // deep CBOR arrays exceed the recursion limit
    let mut deep = vec![0x81u8; 500];
    deep.push(0x00);
    assert!(matches!(
        Envelope::decode(&deep).unwrap_err(),
        SuitError::TooDeep { .. }
    ));
    // a huge claimed length does not allocate or panic
    let huge = hex::decode("a1025bffffffffffffff00").unwrap();
    assert!(Envelope::decode(&huge).is_err());
}
