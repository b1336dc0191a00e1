//! Shared test fixtures: keys, a deterministic RNG, and one instance of every message.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey};
use otrp_json::jose::RecipientKey;
use otrp_json::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::rust_crypto_provider()
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub struct Keys {
    pub tam_ec: PrivateKey,
    pub tam_rsa: PrivateKey,
    pub tee_ec: PrivateKey,
    pub tee_rsa: PrivateKey,
    pub oem_ec: PrivateKey,
}

/// RSA generation is slow: make the keys once per test binary.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut r = rng(7);
        Keys {
            tam_ec: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
            tam_rsa: PrivateKey::generate(KeyKind::Rsa2048, &mut r).unwrap(),
            tee_ec: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
            tee_rsa: PrivateKey::generate(KeyKind::Rsa2048, &mut r).unwrap(),
            oem_ec: PrivateKey::generate(KeyKind::P256, &mut r).unwrap(),
        }
    })
}

pub fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn dsi() -> Dsi {
    match decode_any(&data("a112_dsi.json")).unwrap() {
        OtrpMessage::Dsi(d) => d,
        other => panic!("not a DSI: {}", other.name()),
    }
}

pub fn create_sd_content() -> CreateSdContent {
    CreateSdContent {
        spid: "bank.com".into(),
        sdname: "sd.bank.com".into(),
        spcert: "MIIBsample".into(),
        tamid: "TAM_x.acme.com".into(),
        did: "zAHkb0-SQh9U_OT8mR5dB-tygcqpUJ9_x07pIiw8WoM".into(),
    }
}

pub fn update_sd_content() -> UpdateSdContent {
    UpdateSdContent {
        tamid: "id1.TAMxyz.com".into(),
        spid: "com.acmebank.spid1".into(),
        sdname: "com.acmebank.sdname1".into(),
        changes: SdChanges {
            newsdname: Some("com.acmebank.sdname2".into()),
            newspid: None,
            spcert: Some(vec!["MIIBnew".into()]),
            deloldspcert: Some(vec!["22ef9cd3".into()]),
            renewteespaik: true,
        },
    }
}

pub fn delete_sd_content() -> DeleteSdContent {
    DeleteSdContent {
        tamid: "TAM1.com".into(),
        sdname: "default.acmebank.com".into(),
        deleteta: true,
    }
}

pub fn ta_content() -> TaContent {
    TaContent {
        tamid: "TAM1.acme.com".into(),
        spid: "bank.com".into(),
        sdname: "sd.bank.com".into(),
        spcert: Some("MIIBsp".into()),
        taid: "sd.bank.com.ta".into(),
    }
}

pub fn delete_ta_content() -> DeleteTaContent {
    DeleteTaContent {
        tamid: "TAM1.acme.com".into(),
        sdname: "sd.bank.com".into(),
        taid: "sd.bank.com.ta".into(),
    }
}

fn enc<T: serde::Serialize + Clone>(c: &T, encrypted: bool) -> Content<T> {
    if encrypted {
        let tee = keys().tee_ec.public_key();
        encrypt_content(
            provider(),
            &mut rng(99),
            c,
            ContentEnc::A128CbcHs256,
            &[RecipientKey::new(&tee)],
        )
        .unwrap()
        .0
    } else {
        Content::Plain(c.clone())
    }
}

/// One TBS request of each of the seven kinds; `content` encrypted to the TEE EC key
/// when `encrypted`.
pub fn all_requests(encrypted: bool) -> Vec<TbsRequest> {
    vec![
        TbsRequest::GetDeviceState(GetDeviceStateTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "8C6F9DBB".into(),
            tid: "4F454A7F".into(),
            ocspdat: vec!["b2NzcA==".into()],
            supportedsigalgs: Some(vec!["ES256".into(), "RS256".into()]),
        }),
        TbsRequest::CreateSd(CreateSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-01".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: false,
            dsihash: "Iu-c0-fGrpMmzbbtiWI1U8u7wMJE7IK8wkJpsVuf2js".into(),
            content: enc(&create_sd_content(), encrypted),
        }),
        TbsRequest::UpdateSd(UpdateSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-02".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: true,
            dsihash: "AAEC".into(),
            content: enc(&update_sd_content(), encrypted),
        }),
        TbsRequest::DeleteSd(DeleteSdTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-03".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: false,
            dsihash: "AAEC".into(),
            content: enc(&delete_sd_content(), encrypted),
        }),
        TbsRequest::InstallTa(InstallTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-04".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: true,
            dsihash: "AAEC".into(),
            content: enc(&ta_content(), encrypted),
            encrypted_ta: EncryptedTa {
                key: "a2V5".into(),
                iv: "4F5472504973426F726E496E32303135".into(),
                alg: "AESCBC".into(),
                ciphertadata: "dGE=".into(),
                cipherpdata: Some("cGQ=".into()),
            },
        }),
        TbsRequest::UpdateTa(UpdateTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-05".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: false,
            dsihash: "AAEC".into(),
            content: enc(&ta_content(), encrypted),
            encrypted_ta: EncryptedTaUpdate {
                key: "a2V5".into(),
                iv: "4F5472504973426F726E496E32303135".into(),
                alg: "AESCBC".into(),
                ciphernewtadata: None,
                ciphernewpdata: Some("cGQ=".into()),
            },
        }),
        TbsRequest::DeleteTa(DeleteTaTbsRequest {
            ver: OTRP_VERSION.into(),
            rid: "req-06".into(),
            tid: "tran-01".into(),
            tee: "SecuriTEE".into(),
            nextdsi: false,
            dsihash: "AAEC".into(),
            content: enc(&delete_ta_content(), encrypted),
        }),
    ]
}

fn cmd<C: Clone + serde::Serialize>(c: C, encrypted: bool) -> CommandTbsResponse<C> {
    CommandTbsResponse {
        ver: OTRP_VERSION.into(),
        status: Status::Pass,
        rid: "req-01".into(),
        tid: "tran-01".into(),
        content: Some(enc(&c, encrypted)),
        reason: None,
        extra: Default::default(),
    }
}

pub fn response_content() -> ResponseContent {
    ResponseContent {
        reason: None,
        did: "zAHkb0".into(),
        dsi: Some(dsi()),
        extra: Default::default(),
    }
}

/// One TBS response of each of the seven kinds.
pub fn all_responses(encrypted: bool) -> Vec<TbsResponse> {
    vec![
        TbsResponse::GetDeviceState(GetDeviceTeeStateTbsResponse {
            ver: OTRP_VERSION.into(),
            status: Status::Pass,
            rid: "8C6F9DBB".into(),
            tid: "4F454A7F".into(),
            signerreq: Some(false),
            edsi: Some(enc(&DsiDocument { dsi: dsi() }, encrypted)),
            reason: None,
            supportedsigalgs: None,
            extra: Default::default(),
        }),
        TbsResponse::CreateSd(cmd(
            CreateSdResponseContent {
                reason: None,
                did: "zAHkb0".into(),
                sdname: Some("sd.bank.com".into()),
                teespaik: Some("AQAB".into()),
                dsi: None,
                extra: Default::default(),
            },
            encrypted,
        )),
        TbsResponse::UpdateSd(cmd(
            UpdateSdResponseContent {
                reason: Some(Reason::Detail("renamed".into())),
                did: "zAHkb0".into(),
                cert: None,
                teespaik: Some("AQAB".into()),
                teespaiktype: Some(KeyType::Rsa),
                dsi: None,
                extra: Default::default(),
            },
            encrypted,
        )),
        TbsResponse::DeleteSd(cmd(response_content(), encrypted)),
        TbsResponse::InstallTa(cmd(response_content(), encrypted)),
        TbsResponse::UpdateTa(cmd(response_content(), encrypted)),
        TbsResponse::DeleteTa(CommandTbsResponse {
            ver: OTRP_VERSION.into(),
            status: Status::Fail,
            rid: "req-06".into(),
            tid: "tran-01".into(),
            content: Some(enc(
                &ResponseContent {
                    reason: Some(Reason::Coded(CodedReason {
                        error_code: ErrorCode::TaNotFound,
                        error_message: Some("no such TA".into()),
                    })),
                    did: "zAHkb0".into(),
                    dsi: None,
                    extra: Default::default(),
                },
                encrypted,
            )),
            reason: None,
            extra: Default::default(),
        }),
    ]
}
