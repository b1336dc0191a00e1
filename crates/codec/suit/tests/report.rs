//! SUIT Report encode/decode (draft-ietf-suit-report -18 labels).
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_suit::{
    CborItem, ComponentId, Digest, Envelope, Parameter, Parameters, ReportEntry, ReportReason,
    ReportResult, SuitError, SuitRecord, SuitReport, SystemPropertyClaims, Value, Wrapped,
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

fn tc_claims() -> SystemPropertyClaims {
    SystemPropertyClaims {
        component_id: ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"ta"]),
        properties: Parameters(vec![
            Parameter::ImageDigest(Wrapped::new(Digest::sha256(b"Hello, Secure World!")).unwrap()),
            Parameter::ImageSize(20),
        ]),
    }
}

#[test]
fn success_report_round_trips_with_expected_labels() {
    let env = Envelope::decode(&vector("suit/example2.hex")).unwrap();
    let mut rep = SuitReport::for_envelope(&env, Some(vec![0xa0, 0xa1]), ReportResult::Success);
    rep.records.push(ReportEntry::System(tc_claims()));
    assert_eq!(rep.reference_uri, "https://git.io/JJYoj");
    let bytes = rep.to_cbor().unwrap();
    // {2: nonce, 3: records, 4: true, 99: [uri, digest]} in deterministic order
    assert_eq!(&bytes[..6], &[0xa4, 0x02, 0x42, 0xa0, 0xa1, 0x03]);
    assert!(bytes.windows(3).any(|w| w == [0x04, 0xf5, 0x18]));
    let back = SuitReport::from_cbor(&bytes).unwrap();
    assert_eq!(back, rep);
    assert_eq!(back.to_cbor().unwrap(), bytes);
}

#[test]
fn failure_report_round_trips() {
    let env = Envelope::decode(&vector("teep/suit_personalization.hex")).unwrap();
    let record = SuitRecord {
        manifest_id: vec![0, 1],
        manifest_section: 20,
        section_offset: 12,
        component_index: 0,
        properties: Parameters(vec![Parameter::Uri("#tc".into())]),
        extensions: vec![],
    };
    let rep = SuitReport {
        records: vec![ReportEntry::Record(record.clone())],
        ..SuitReport::for_envelope(
            &env,
            None,
            ReportResult::Failure {
                code: 3,
                record,
                reason: ReportReason::ConditionFailed,
            },
        )
    };
    let bytes = rep.to_cbor().unwrap();
    let back = SuitReport::from_cbor(&bytes).unwrap();
    assert_eq!(back, rep);
    let ReportResult::Failure { reason, .. } = back.result else {
        panic!()
    };
    assert_eq!(reason.code(), 10);
    assert_eq!(ReportReason::from_code(99), ReportReason::Other(99));
}

#[test]
fn system_property_claims_alone() {
    let c = tc_claims();
    let b = c.to_cbor().unwrap();
    assert_eq!(b[0], 0xa3);
    assert_eq!(b[1], 0x00, "system-component-id first");
    assert_eq!(SystemPropertyClaims::from_cbor(&b).unwrap(), c);
}

#[test]
fn old_appendix_f_layout_is_rejected_with_a_path() {
    // {1: << digest >>, 2: uri, 4: []} — the TEEP ED App. F layout (old labels)
    let d = Digest::sha256(b"x").to_cbor().unwrap();
    let v = Value::Map(vec![
        (1.into(), Value::Bytes(d)),
        (
            2.into(),
            Value::Text("tam.teep.example/personalisation".into()),
        ),
        (4.into(), Value::Array(vec![])),
    ]);
    let mut b = Vec::new();
    ciborium::ser::into_writer(&v, &mut b).unwrap();
    let err = SuitReport::from_cbor(&b).unwrap_err();
    assert!(
        matches!(err, SuitError::Type { ref path, .. } if path == "SuitReport/nonce"),
        "{err}"
    );
}
