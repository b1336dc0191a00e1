//! Every message type round-trips: decode(encode(x)) == x, and what we produce
//! re-encodes byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use otrp_json::*;

fn roundtrip(msg: OtrpMessage) {
    let bytes = encode(&msg).unwrap();
    let decoded = decode_any(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", msg.name(), String::from_utf8_lossy(&bytes)));
    assert_eq!(decoded, msg, "{}", msg.name());
    assert_eq!(encode(&decoded).unwrap(), bytes, "{}", msg.name());
}

#[test]
fn tbs_requests_roundtrip_plain_and_encrypted() {
    for encrypted in [false, true] {
        for tbs in common::all_requests(encrypted) {
            assert_eq!(
                tbs.is_protected(),
                encrypted || tbs.kind() == MessageKind::GetDeviceState
            );
            let bytes = tbs.to_json().unwrap();
            assert!(
                bytes.starts_with(format!("{{\"{}\":", tbs.kind().tbs_request_name()).as_bytes())
            );
            assert_eq!(TbsRequest::from_json(&bytes).unwrap(), tbs);
            roundtrip(OtrpMessage::TbsRequest(tbs));
        }
    }
}

#[test]
fn tbs_responses_roundtrip_plain_and_encrypted() {
    for encrypted in [false, true] {
        for tbs in common::all_responses(encrypted) {
            let bytes = tbs.to_json().unwrap();
            assert!(
                bytes.starts_with(format!("{{\"{}\":", tbs.kind().tbs_response_name()).as_bytes())
            );
            assert_eq!(TbsResponse::from_json(&bytes).unwrap(), tbs);
            roundtrip(OtrpMessage::TbsResponse(tbs));
        }
    }
}

#[test]
fn signed_wrappers_roundtrip() {
    let k = common::keys();
    let signer = Signer::new(&k.tam_ec).with_x5c(vec!["Y2VydA==".into()]);
    for tbs in common::all_requests(true) {
        let bytes = sign_request(common::provider(), &signer, &tbs).unwrap();
        let msg = decode_any(&bytes).unwrap();
        assert_eq!(msg.name(), tbs.kind().request_name());
        assert_eq!(encode(&msg).unwrap(), bytes, "signed output is canonical");
        roundtrip(msg);
    }
    let tee = Signer::new(&k.tee_ec);
    let mut tee_state = Vec::new();
    for tbs in common::all_responses(true) {
        let bytes = sign_response(common::provider(), &tee, &tbs).unwrap();
        let msg = decode_any(&bytes).unwrap();
        assert_eq!(msg.name(), tbs.kind().response_name());
        assert_eq!(encode(&msg).unwrap(), bytes);
        if tbs.kind() == MessageKind::GetDeviceState {
            tee_state.push(bytes);
        }
        roundtrip(msg);
    }
    let array = device_state_responses(&tee_state).unwrap();
    assert!(array.starts_with(b"{\"GetDeviceStateResponse\":[{\"GetDeviceTEEStateResponse\":{"));
    roundtrip(decode_any(&array).unwrap());
}

#[test]
fn local_messages_roundtrip() {
    roundtrip(OtrpMessage::TaQuery(TaQuery {
        spid: "bank.com".into(),
        taid: "bank.ta".into(),
    }));
    let info = TaInformationTbs {
        taid: "bank.ta".into(),
        tamid: "TAM1".into(),
        spid: "bank.com".into(),
        signercert: "c2lnbmVy".into(),
        signercacerts: vec!["Y2E=".into()],
        tamcert: "dGFt".into(),
        tamcacerts: vec![],
    };
    roundtrip(OtrpMessage::TaInformationTbs(info.clone()));
    for code in [ErrorCode::AgentTeeUnknown, ErrorCode::AgentTeeBusy] {
        let e = BrokerError {
            ver: OTRP_VERSION.into(),
            rid: String::new(),
            tid: String::new(),
            errcode: code,
        };
        roundtrip(OtrpMessage::BrokerError(e.clone()));
        roundtrip(OtrpMessage::AgentError(e));
    }
    roundtrip(OtrpMessage::Dsi(common::dsi()));

    // TAInformation: signed by the TEE SP AIK, `signer` JWK passed through.
    let k = common::keys();
    let aik = Signer::new(&k.tee_ec);
    let jwk = otrp_crypto::jwk::public_to_jwk(&k.tee_ec.public_key());
    let bytes = sign_ta_information(common::provider(), &aik, Some(jwk.clone()), &info).unwrap();
    let msg = decode_any(&bytes).unwrap();
    let OtrpMessage::TaInformation(Jws::Flattened(f)) = &msg else {
        panic!("wrong variant")
    };
    assert_eq!(f.header.as_ref().unwrap().extra["signer"], jwk);
    roundtrip(msg);
    let verified =
        verify_ta_information(common::provider(), &bytes, &[k.tee_ec.public_key()]).unwrap();
    assert_eq!(verified, info);
}

#[test]
fn error_form_of_get_device_state_response_roundtrips() {
    let tbs = TbsResponse::GetDeviceState(GetDeviceTeeStateTbsResponse {
        ver: OTRP_VERSION.into(),
        status: Status::Fail,
        rid: "r".into(),
        tid: "t".into(),
        signerreq: None,
        edsi: None,
        reason: Some(Reason::Coded(CodedReason {
            error_code: ErrorCode::TamNotTrusted,
            error_message: None,
        })),
        supportedsigalgs: Some(vec!["RS256".into()]),
        extra: Default::default(),
    });
    let bytes = tbs.to_json().unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"GetDeviceTEEStateTBSResponse":{"ver":"1.0","status":"fail","rid":"r","tid":"t","reason":{"error-code":"ERR_TAM_NOT_TRUSTED"},"supportedsigalgs":["RS256"]}}"#
    );
    roundtrip(OtrpMessage::TbsResponse(tbs));
}
