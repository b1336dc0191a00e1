//! The draft's samples (spec §7, fixed per tests/data/README.md) decode into the types,
//! re-encode, and malformed input gives typed errors with path and line/column.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::data;
use otrp_json::*;

/// decode → encode → decode is stable, and our own encoding re-encodes byte for byte.
fn reencode(msg: &OtrpMessage) {
    let bytes = encode(msg).unwrap();
    let again = decode_any(&bytes).unwrap();
    assert_eq!(&again, msg);
    assert_eq!(encode(&again).unwrap(), bytes);
}

fn sample(name: &str) -> OtrpMessage {
    let msg = decode_any(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    reencode(&msg);
    msg
}

#[test]
fn a111_get_device_state_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::GetDeviceState(r)) =
        sample("a111_get_device_state_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert_eq!(r.rid, "8C6F9DBB-FC39-435c-BC89-4D3614DA2F0B");
    assert_eq!(r.ocspdat.len(), 2);
    assert_eq!(r.supportedsigalgs, Some(vec!["RS256".to_string()]));
}

#[test]
fn a111_signed_request_payload_error_has_path_and_position() {
    let OtrpMessage::Request(signed) = sample("a111_get_device_state_request.json") else {
        panic!("wrong variant")
    };
    assert_eq!(signed.kind, MessageKind::GetDeviceState);
    let Jws::Flattened(f) = &signed.jws else {
        panic!("flattened expected")
    };
    assert_eq!(
        f.header.as_ref().unwrap().x5c.as_ref().unwrap().len(),
        2,
        "x5c passes through"
    );
    // The published payload has an unquoted `rid` (`{8C6F…}`) on its fourth line: the
    // streaming decoder reports it there, with its path.
    match signed.unverified_payload() {
        Err(Error::Data {
            path, line, column, ..
        }) => {
            assert_eq!(path, "GetDeviceStateTBSRequest.rid");
            assert_eq!((line, column), (4, 9));
        }
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn a112_dsi_decodes() {
    let OtrpMessage::Dsi(dsi) = sample("a112_dsi.json") else {
        panic!("wrong variant")
    };
    assert_eq!(dsi.tee.name, "Primary TEE");
    assert_eq!(dsi.tee.sdlist.cnt, 1);
    assert_eq!(dsi.tee.sdlist.sd[0].talist.len(), 2);
    let aik = &dsi.tee.teeaiklist.as_ref().unwrap()[0];
    assert_eq!(aik.spaiktype, KeyType::Rsa);
    assert_eq!(dsi.tfwdata.as_ref().unwrap().sigalg, "RS256");
}

#[test]
fn a112_tee_state_tbs_response_decodes() {
    let OtrpMessage::TbsResponse(TbsResponse::GetDeviceState(r)) =
        sample("a112_get_device_tee_state_tbs_response.json")
    else {
        panic!("wrong variant")
    };
    assert_eq!(r.status, Status::Pass);
    assert_eq!(r.signerreq, Some(false));
    let jwe = r.edsi.as_ref().unwrap().jwe().unwrap();
    assert_eq!(
        jwe.recipients[0].header.as_ref().unwrap().alg.as_deref(),
        Some("RSA1_5")
    );
}

#[test]
fn a112_broker_array_splits_and_payload_matches_tbs_sample() {
    let msg = sample("a112_get_device_state_response.json");
    assert!(matches!(msg, OtrpMessage::DeviceStateResponses(ref v) if v.len() == 1));
    let items = split_device_state_responses(&data("a112_get_device_state_response.json")).unwrap();
    let tbs = items[0].unverified_payload().unwrap();
    let OtrpMessage::TbsResponse(expected) =
        decode_any(&data("a112_get_device_tee_state_tbs_response.json")).unwrap()
    else {
        panic!("wrong variant")
    };
    assert_eq!(tbs, expected);
}

#[test]
fn a121_create_sd_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::CreateSd(r)) =
        sample("a121_create_sd_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert!(!r.nextdsi);
    let c = r.content.plain().unwrap();
    assert_eq!(c.tamid, "TAM_x.acme.com");
    assert!(c.spcert.starts_with("MIIDFjCCAn-gAwIBAgIJ"));
}

#[test]
fn a122_create_sd_tbs_response_decodes() {
    let OtrpMessage::TbsResponse(TbsResponse::CreateSd(r)) =
        sample("a122_create_sd_tbs_response.json")
    else {
        panic!("wrong variant")
    };
    let c = r.content.as_ref().unwrap().plain().unwrap();
    assert_eq!(c.sdname.as_deref(), Some("sd.bank.com"));
    assert!(c.teespaik.as_ref().unwrap().starts_with("AQAB"));
}

#[test]
fn a141_delete_sd_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::DeleteSd(r)) =
        sample("a141_delete_sd_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert!(r.content.plain().unwrap().deleteta);
}

#[test]
fn a141_signed_request_payload_string_boolean_is_a_typed_path_error() {
    let OtrpMessage::Request(signed) = sample("a141_delete_sd_request.json") else {
        panic!("wrong variant")
    };
    assert_eq!(signed.kind, MessageKind::DeleteSd);
    match signed.unverified_payload() {
        Err(Error::Data { path, line, .. }) => {
            assert_eq!(path, "DeleteSDTBSRequest.nextdsi");
            assert_eq!(line, 7);
        }
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn a142_delete_sd_tbs_response_decodes() {
    let OtrpMessage::TbsResponse(TbsResponse::DeleteSd(r)) =
        sample("a142_delete_sd_tbs_response.json")
    else {
        panic!("wrong variant")
    };
    assert_eq!(
        r.content.as_ref().unwrap().plain().unwrap().did,
        "MTZENTE5Qzc0Qzk0NkUxMzYxNzk0NjY4NTc3OTY4NTI="
    );
}

#[test]
fn a211_install_ta_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::InstallTa(r)) =
        sample("a211_install_ta_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert!(r.nextdsi);
    assert_eq!(r.encrypted_ta.alg, "AESCBC");
    assert_eq!(r.encrypted_ta.iv, "4F5472504973426F726E496E32303135");
}

#[test]
fn a221_update_ta_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::UpdateTa(r)) =
        sample("a221_update_ta_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert!(r.encrypted_ta.ciphernewtadata.is_some());
    assert!(r.encrypted_ta.ciphernewpdata.is_none());
}

#[test]
fn a222_a232_ta_responses_decode() {
    for (name, kind) in [
        ("a222_update_ta_tbs_response.json", MessageKind::UpdateTa),
        ("a232_delete_ta_tbs_response.json", MessageKind::DeleteTa),
    ] {
        let OtrpMessage::TbsResponse(r) = sample(name) else {
            panic!("wrong variant")
        };
        assert_eq!(r.kind(), kind);
        assert_eq!(r.ids(), ("req-2", "tran-01"));
    }
}

#[test]
fn a231_delete_ta_tbs_request_decodes() {
    let OtrpMessage::TbsRequest(TbsRequest::DeleteTa(r)) =
        sample("a231_delete_ta_tbs_request.json")
    else {
        panic!("wrong variant")
    };
    assert_eq!(r.content.plain().unwrap().taid, "sd.bank.com.ta");
}

#[test]
fn ta_query_and_broker_error_decode() {
    let OtrpMessage::TaQuery(q) = sample("s642_ta_query.json") else {
        panic!("wrong variant")
    };
    assert_eq!(q.spid, "<SP identifier value of the TA>");
    let OtrpMessage::BrokerError(e) = sample("s10_broker_error.json") else {
        panic!("wrong variant")
    };
    assert_eq!(e.errcode, ErrorCode::AgentTeeBusy);
}

#[test]
fn invalid_json_reports_line_and_column() {
    let err = decode_any(b"{\n  \"CreateSDTBSRequest\": {\n    \"ver\": ,\n").unwrap_err();
    match err {
        Error::Syntax { line, column, .. } => assert_eq!((line, column), (3, 12)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decode_any(b"{\"TAQuery\": {\"spid\": \"a\", \"taid\": \"b\"}} x"),
        Err(Error::Syntax { .. })
    ));
}

#[test]
fn unknown_request_member_is_refused_with_its_path() {
    let mut text = String::from_utf8(data("a231_delete_ta_tbs_request.json")).unwrap();
    text = text.replace(
        "\"tee\": \"SecuriTEE\",",
        "\"tee\": \"SecuriTEE\", \"extra\": 1,",
    );
    match decode_any(text.as_bytes()) {
        Err(Error::Data { path, msg, .. }) => {
            assert_eq!(path, "DeleteTATBSRequest.extra");
            assert!(msg.contains("unknown field `extra`"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    let text = String::from_utf8(data("a231_delete_ta_tbs_request.json"))
        .unwrap()
        .replace("\"taid\": \"sd.bank.com.ta\"", "\"taid\": \"t\", \"x\": 2");
    match decode_any(text.as_bytes()) {
        Err(Error::Data { path, msg, .. }) => {
            assert_eq!(path, "DeleteTATBSRequest.content");
            assert!(msg.contains("unknown field `x`"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_member_names_the_path() {
    let text = String::from_utf8(data("a231_delete_ta_tbs_request.json"))
        .unwrap()
        .replace(
            "\"dsihash\": \"gwjul_9MZks3pqUSN1-eL1aViwGXNAxk0AIKW79dn4U\",",
            "",
        );
    match decode_any(text.as_bytes()) {
        Err(Error::Data { path, msg, .. }) => {
            assert_eq!(path, "DeleteTATBSRequest");
            assert!(msg.contains("missing field `dsihash`"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_keeps_unknown_members() {
    let text = String::from_utf8(data("a222_update_ta_tbs_response.json"))
        .unwrap()
        .replace(
            "\"status\": \"pass\",",
            "\"status\": \"pass\", \"vendor\": {\"x\": [1]},",
        );
    let msg = decode_any(text.as_bytes()).unwrap();
    let OtrpMessage::TbsResponse(TbsResponse::UpdateTa(r)) = &msg else {
        panic!("wrong variant")
    };
    assert_eq!(r.extra["vendor"]["x"][0], 1);
    reencode(&msg);
}

#[test]
fn envelope_errors() {
    assert!(matches!(decode_any(b"{}"), Err(Error::Data { .. })));
    match decode_any(b"{\"NoSuchMessage\": {}}") {
        Err(Error::Data { msg, .. }) => assert!(msg.contains("NoSuchMessage"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let two = br#"{"TAQuery": {"spid": "a", "taid": "b"}, "TAQuery2": 1}"#;
    match decode_any(two) {
        Err(Error::Data { msg, .. }) => assert!(msg.contains("exactly one"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(decode_any(b"[1]").is_err());
}

#[test]
fn update_ta_needs_one_ciphertext() {
    let text = String::from_utf8(data("a221_update_ta_tbs_request.json")).unwrap();
    let start = text.find(",\n      \"ciphernewtadata\"").unwrap();
    let end = text[start..].find("HADo\"").unwrap() + start + 5;
    let cut = format!("{}{}", &text[..start], &text[end..]);
    match decode_any(cut.as_bytes()) {
        Err(Error::Data { path, msg, .. }) => {
            assert_eq!(path, "UpdateTATBSRequest.encrypted_ta");
            assert!(msg.contains("ciphernewtadata"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_codes_have_their_exact_strings() {
    assert_eq!(ErrorCode::ALL.len(), 22);
    for code in ErrorCode::ALL {
        let json = serde_json::to_string(code).unwrap();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *code);
        assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), *code);
    }
    assert_eq!(
        ErrorCode::DevStateMismatch.as_str(),
        "ERR_DEV_STATE_MISMATCH"
    );
    assert_eq!(
        ErrorCode::SdNameAlreadyUsed.as_str(),
        "ERR_SDNAME_ALREADY_USED"
    );
    assert_eq!(
        serde_json::from_str::<ErrorCode>("\"ERR_SD_ALREADY_EXIST\"").unwrap(),
        ErrorCode::SdAlreadyExists
    );
    assert!("ERR_NOPE".parse::<ErrorCode>().is_err());
}

#[test]
fn coded_reason_and_detail_reason() {
    let coded: Reason =
        serde_json::from_str(r#"{"error-code":"ERR_SD_NOT_EMPTY","error-message":"has TAs"}"#)
            .unwrap();
    assert!(matches!(
        coded,
        Reason::Coded(CodedReason {
            error_code: ErrorCode::SdNotEmpty,
            ..
        })
    ));
    let detail: Reason = serde_json::from_str(r#""disk full""#).unwrap();
    assert_eq!(detail, Reason::Detail("disk full".into()));
    let err = serde_json::from_str::<Reason>(r#"{"error-code":"ERR_BOGUS"}"#).unwrap_err();
    assert!(err.to_string().contains("ERR_BOGUS"), "{err}");
}

/// No input makes the decoder panic: every prefix and single-byte corruption of every
/// sample gives a value or a typed error.
#[test]
fn truncated_and_corrupted_samples_never_panic() {
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0usize;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for len in 0..bytes.len() {
            let _ = decode_any(&bytes[..len]);
        }
        for i in (0..bytes.len()).step_by(3) {
            for b in [b'"', b'{', b'}', b'0', 0xff] {
                let mut c = bytes.clone();
                c[i] = b;
                if let Ok(OtrpMessage::Request(s)) = decode_any(&c) {
                    let _ = s.unverified_payload();
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
