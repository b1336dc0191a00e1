//! JOSE: sign/verify and encrypt/decrypt for every algorithm combination, the
//! encrypt-then-sign flow, tampering, outer-name mismatch, RSA1_5 legacy gating,
//! header checks, and the RFC known-answer tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{keys, provider, rng};
use otrp_crypto::{PrivateKey, PublicKey, SigAlg};
use otrp_json::jose::{self, primitives, JoseHeader, RecipientKey};
use otrp_json::json::{b64url_decode, b64url_encode};
use otrp_json::*;

const ENCS: [ContentEnc; 2] = [ContentEnc::A128CbcHs256, ContentEnc::A256CbcHs512];

fn tee_keys() -> [(&'static PrivateKey, &'static str); 2] {
    let k = keys();
    [(&k.tee_ec, "ECDH-ES+A128KW"), (&k.tee_rsa, "RSA-OAEP")]
}

#[test]
fn sign_verify_every_request_es256_and_rs256() {
    let k = keys();
    for key in [&k.tam_ec, &k.tam_rsa] {
        let signer = Signer::new(key).with_kid("tam-1");
        for tbs in common::all_requests(true) {
            let bytes = sign_request(provider(), &signer, &tbs).unwrap();
            let got = verify_request(provider(), &bytes, &[key.public_key()]).unwrap();
            assert_eq!(got, tbs);
            // kid is protected; the verified header says which key signed.
            let v = verify_request_with(
                provider(),
                &bytes,
                &[k.oem_ec.public_key(), key.public_key()],
                VerifyPolicy::AnyOne,
            )
            .unwrap();
            assert_eq!(v.signatures[0].key_index, 1);
            assert_eq!(v.signatures[0].protected.kid.as_deref(), Some("tam-1"));
            // Not trusted: refused.
            assert!(matches!(
                verify_request(provider(), &bytes, &[k.oem_ec.public_key()]),
                Err(Error::BadSignature(_))
            ));
        }
    }
}

#[test]
fn protected_header_is_exactly_alg() {
    let k = keys();
    let tbs = &common::all_requests(true)[0];
    for (key, expected) in [
        (&k.tam_ec, "eyJhbGciOiJFUzI1NiJ9"),
        (&k.tam_rsa, "eyJhbGciOiJSUzI1NiJ9"),
    ] {
        let bytes = sign_request(provider(), &Signer::new(key), tbs).unwrap();
        let OtrpMessage::Request(SignedRequest {
            jws: Jws::Flattened(f),
            ..
        }) = decode_any(&bytes).unwrap()
        else {
            panic!("flattened expected")
        };
        assert_eq!(f.protected, expected, "the draft's §7.5 values");
    }
}

#[test]
fn sign_verify_every_response() {
    let k = keys();
    for key in [&k.tee_ec, &k.tee_rsa] {
        for tbs in common::all_responses(true) {
            let bytes = sign_response(provider(), &Signer::new(key), &tbs).unwrap();
            assert_eq!(
                verify_response(provider(), &bytes, &[key.public_key()]).unwrap(),
                tbs
            );
        }
    }
}

#[test]
fn encrypt_decrypt_every_combination() {
    for enc in ENCS {
        for (tee, alg) in tee_keys() {
            let pk = tee.public_key();
            let content = common::create_sd_content();
            let (c, cek) = encrypt_content(
                provider(),
                &mut rng(1),
                &content,
                enc,
                &[RecipientKey::new(&pk)],
            )
            .unwrap();
            let jwe = c.jwe().unwrap();
            assert_eq!(
                jwe.recipients[0].header.as_ref().unwrap().alg.as_deref(),
                Some(alg)
            );
            let (back, cek2): (CreateSdContent, _) =
                decrypt_content(provider(), &mut rng(2), jwe, tee, LegacyMode::Deny).unwrap();
            assert_eq!(back, content, "{enc:?} {alg}");
            assert_eq!(cek, cek2);
            assert_eq!(cek.enc(), enc);
            let again: CreateSdContent = decrypt_content_with_cek(jwe, &cek).unwrap();
            assert_eq!(again, content);
        }
    }
}

#[test]
fn multi_recipient_jwe_opens_for_each_recipient() {
    let k = keys();
    let (ec, rsa) = (k.tee_ec.public_key(), k.tam_rsa.public_key());
    let recipients = [
        RecipientKey {
            key: &ec,
            kid: Some("tee"),
        },
        RecipientKey {
            key: &rsa,
            kid: Some("tam"),
        },
    ];
    let (jwe, _) = jose::encrypt(
        provider(),
        &mut rng(3),
        b"{\"a\":1}",
        ContentEnc::A256CbcHs512,
        &recipients,
    )
    .unwrap();
    for key in [&k.tee_ec, &k.tam_rsa] {
        let d = jose::decrypt(provider(), &mut rng(4), &jwe, key, LegacyMode::Deny).unwrap();
        assert_eq!(d.plaintext, b"{\"a\":1}");
    }
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(4), &jwe, &k.tee_rsa, LegacyMode::Deny),
        Err(Error::Decrypt)
    ));
}

/// The draft's full order: TAM encrypts `content` to the TEE, signs; TEE verifies,
/// decrypts, answers under the same CEK re-wrapped to the TAM, signs; TAM verifies
/// and decrypts (with its key, or with the CEK it kept).
#[test]
fn encrypt_then_sign_flow_with_cek_reuse() {
    let k = keys();
    for enc in ENCS {
        for (tee, _) in tee_keys() {
            let (tee_pub, tam_pub) = (tee.public_key(), k.tam_rsa.public_key());
            let (content, tam_cek) = encrypt_content(
                provider(),
                &mut rng(5),
                &common::delete_sd_content(),
                enc,
                &[RecipientKey::new(&tee_pub)],
            )
            .unwrap();
            let tbs = TbsRequest::DeleteSd(DeleteSdTbsRequest {
                ver: OTRP_VERSION.into(),
                rid: "r1".into(),
                tid: "t1".into(),
                tee: "Primary TEE".into(),
                nextdsi: false,
                dsihash: "AAEC".into(),
                content,
            });
            let wire = sign_request(provider(), &Signer::new(&k.tam_rsa), &tbs).unwrap();

            // TEE.
            let TbsRequest::DeleteSd(req) =
                verify_request(provider(), &wire, std::slice::from_ref(&tam_pub)).unwrap()
            else {
                panic!("kind")
            };
            let (plain, cek): (DeleteSdContent, _) = decrypt_content(
                provider(),
                &mut rng(6),
                req.content.jwe().unwrap(),
                tee,
                LegacyMode::Deny,
            )
            .unwrap();
            assert_eq!(plain, common::delete_sd_content());
            let body = ResponseContent {
                reason: None,
                did: "did".into(),
                dsi: None,
                extra: Default::default(),
            };
            let content = encrypt_content_with_cek(
                provider(),
                &mut rng(7),
                &body,
                &cek,
                &[RecipientKey::new(&tam_pub)],
            )
            .unwrap();
            let resp = TbsResponse::DeleteSd(CommandTbsResponse {
                ver: OTRP_VERSION.into(),
                status: Status::Pass,
                rid: req.rid.clone(),
                tid: req.tid.clone(),
                content: Some(content),
                reason: None,
                extra: Default::default(),
            });
            let wire = sign_response(provider(), &Signer::new(tee), &resp).unwrap();

            // TAM.
            let TbsResponse::DeleteSd(got) =
                verify_response(provider(), &wire, &[tee_pub]).unwrap()
            else {
                panic!("kind")
            };
            let jwe = got.content.as_ref().unwrap().jwe().unwrap();
            let via_cek: ResponseContent = decrypt_content_with_cek(jwe, &tam_cek).unwrap();
            let (via_key, _): (ResponseContent, _) =
                decrypt_content(provider(), &mut rng(8), jwe, &k.tam_rsa, LegacyMode::Deny)
                    .unwrap();
            assert_eq!(via_cek, body);
            assert_eq!(via_key, body);
        }
    }
}

#[test]
fn plaintext_content_is_never_signed() {
    let k = keys();
    for tbs in common::all_requests(false).into_iter().skip(1) {
        let err = sign_request(provider(), &Signer::new(&k.tam_ec), &tbs).unwrap_err();
        assert!(
            matches!(err, Error::PlaintextContent { ref member } if member.ends_with(".content")),
            "{err}"
        );
    }
    for tbs in common::all_responses(false) {
        assert!(matches!(
            sign_response(provider(), &Signer::new(&k.tee_ec), &tbs),
            Err(Error::PlaintextContent { .. })
        ));
    }
}

#[test]
fn dual_control_general_jws() {
    let k = keys();
    let (oem, sp) = (k.oem_ec.public_key(), k.tam_rsa.public_key());
    let tbs = &common::all_requests(true)[1];
    let signers = [
        Signer::new(&k.oem_ec).with_kid("oem"),
        Signer::new(&k.tam_rsa).with_kid("sp"),
    ];
    let bytes = sign_request_multi(provider(), &signers, tbs).unwrap();
    let OtrpMessage::Request(SignedRequest {
        jws: Jws::General(g),
        ..
    }) = decode_any(&bytes).unwrap()
    else {
        panic!("general expected")
    };
    assert_eq!(g.signatures.len(), 2);
    let v = verify_request_with(
        provider(),
        &bytes,
        &[oem.clone(), sp.clone()],
        VerifyPolicy::AllKeys,
    )
    .unwrap();
    assert_eq!(&v.message, tbs);
    assert_eq!(v.signatures.len(), 2);

    // Only the OEM signed: AnyOne passes, AllKeys refuses.
    let one = sign_request_multi(provider(), &signers[..1], tbs).unwrap();
    assert!(verify_request_with(
        provider(),
        &one,
        &[oem.clone(), sp.clone()],
        VerifyPolicy::AnyOne
    )
    .is_ok());
    assert!(matches!(
        verify_request_with(
            provider(),
            &one,
            &[oem.clone(), sp.clone()],
            VerifyPolicy::AllKeys
        ),
        Err(Error::BadSignature(_))
    ));
    // One signature tampered: AllKeys refuses.
    let mut bad = g.clone();
    let mut sig = b64url_decode(&bad.signatures[1].signature, "s").unwrap();
    sig[10] ^= 1;
    bad.signatures[1].signature = b64url_encode(&sig);
    let bytes = encode(&OtrpMessage::Request(SignedRequest {
        kind: tbs.kind(),
        jws: Jws::General(bad),
    }))
    .unwrap();
    assert!(verify_request_with(provider(), &bytes, &[oem, sp], VerifyPolicy::AllKeys).is_err());
}

fn flattened(bytes: &[u8]) -> (MessageKind, jose::JwsFlattened) {
    match decode_any(bytes).unwrap() {
        OtrpMessage::Request(SignedRequest {
            kind,
            jws: Jws::Flattened(f),
        }) => (kind, f),
        other => panic!("{}", other.name()),
    }
}

fn reassemble(kind: MessageKind, f: jose::JwsFlattened) -> Vec<u8> {
    encode(&OtrpMessage::Request(SignedRequest {
        kind,
        jws: Jws::Flattened(f),
    }))
    .unwrap()
}

#[test]
fn tampered_signature_payload_or_header_is_refused() {
    let k = keys();
    for key in [&k.tam_ec, &k.tam_rsa] {
        let trusted = [key.public_key()];
        let bytes = sign_request(
            provider(),
            &Signer::new(key),
            &common::all_requests(true)[3],
        )
        .unwrap();
        let (kind, f) = flattened(&bytes);

        let mut t = f.clone();
        let mut sig = b64url_decode(&t.signature, "signature").unwrap();
        sig[5] ^= 0x80;
        t.signature = b64url_encode(&sig);
        assert!(matches!(
            verify_request(provider(), &reassemble(kind, t), &trusted),
            Err(Error::BadSignature(_))
        ));

        let mut t = f.clone();
        let payload = String::from_utf8(b64url_decode(&t.payload, "payload").unwrap()).unwrap();
        t.payload = b64url_encode(payload.replace("AAEC", "AAED").as_bytes());
        assert!(matches!(
            verify_request(provider(), &reassemble(kind, t), &trusted),
            Err(Error::BadSignature(_))
        ));

        let mut t = f.clone();
        t.protected = b64url_encode(br#"{"alg":"ES256","kid":"x"}"#);
        assert!(verify_request(provider(), &reassemble(kind, t), &trusted).is_err());

        let mut t = f.clone();
        t.signature.push('A');
        assert!(verify_request(provider(), &reassemble(kind, t), &trusted).is_err());
    }
}

#[test]
fn tampered_ciphertext_tag_iv_or_key_is_refused() {
    for enc in ENCS {
        for (tee, _) in tee_keys() {
            let pk = tee.public_key();
            let (jwe, _) = jose::encrypt(
                provider(),
                &mut rng(9),
                b"{\"dsi\":0}",
                enc,
                &[RecipientKey::new(&pk)],
            )
            .unwrap();
            let flip = |s: &str| {
                let mut b = b64url_decode(s, "m").unwrap();
                b[0] ^= 1;
                b64url_encode(&b)
            };
            let mut cases = Vec::new();
            let mut t = jwe.clone();
            t.ciphertext = flip(&t.ciphertext);
            cases.push(("ciphertext", t));
            let mut t = jwe.clone();
            t.tag = flip(&t.tag);
            cases.push(("tag", t));
            let mut t = jwe.clone();
            t.iv = flip(&t.iv);
            cases.push(("iv", t));
            let mut t = jwe.clone();
            t.recipients[0].encrypted_key =
                Some(flip(t.recipients[0].encrypted_key.as_ref().unwrap()));
            cases.push(("encrypted_key", t));
            let mut t = jwe.clone();
            t.aad = Some("eHl6".into());
            cases.push(("aad", t));
            for (what, t) in cases {
                let r = jose::decrypt(provider(), &mut rng(10), &t, tee, LegacyMode::Deny);
                assert!(matches!(r, Err(Error::Decrypt)), "{what} {enc:?}: {r:?}");
            }
            // A protected header changed to the other enc is refused too (the AAD differs).
            let mut t = jwe.clone();
            let other = if enc == ContentEnc::A128CbcHs256 {
                "A256CBC-HS512"
            } else {
                "A128CBC-HS256"
            };
            t.protected = Some(b64url_encode(format!("{{\"enc\":\"{other}\"}}").as_bytes()));
            assert!(jose::decrypt(provider(), &mut rng(10), &t, tee, LegacyMode::Deny).is_err());
        }
    }
}

#[test]
fn wrong_outer_name_is_refused() {
    let k = keys();
    let trusted = [k.tam_ec.public_key()];
    let bytes = sign_request(
        provider(),
        &Signer::new(&k.tam_ec),
        &common::all_requests(true)[1],
    )
    .unwrap();
    let renamed =
        String::from_utf8(bytes)
            .unwrap()
            .replacen("CreateSDRequest", "DeleteSDRequest", 1);
    match verify_request(provider(), renamed.as_bytes(), &trusted) {
        Err(Error::NameMismatch { outer, inner }) => {
            assert_eq!(outer, "DeleteSDRequest");
            assert_eq!(inner, "CreateSDTBSRequest");
        }
        other => panic!("{other:?}"),
    }
    // A response payload under a request name.
    let resp = sign_response(
        provider(),
        &Signer::new(&k.tam_ec),
        &common::all_responses(true)[1],
    )
    .unwrap();
    let renamed =
        String::from_utf8(resp)
            .unwrap()
            .replacen("CreateSDResponse", "CreateSDRequest", 1);
    assert!(matches!(
        verify_request(provider(), renamed.as_bytes(), &trusted),
        Err(Error::NameMismatch { .. })
    ));
    // And the unverified view checks it too.
    let OtrpMessage::Request(s) = decode_any(renamed.as_bytes()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        s.unverified_payload(),
        Err(Error::NameMismatch { .. })
    ));
    // A request given to verify_response.
    let req = sign_request(
        provider(),
        &Signer::new(&k.tam_ec),
        &common::all_requests(true)[0],
    )
    .unwrap();
    assert!(matches!(
        verify_response(provider(), &req, &trusted),
        Err(Error::UnexpectedMessage { .. })
    ));
}

/// Builds a JWE whose CEK is wrapped with RSA1_5 (composition as in RFC 7516 A.2).
fn rsa1_5_jwe(enc: ContentEnc, key: &PublicKey, plaintext: &[u8]) -> (JweJson, Cek) {
    let PublicKey::Rsa(pk) = key else {
        panic!("RSA key")
    };
    let mut r = rng(11);
    let cek = Cek::generate(enc, &mut r);
    let wrapped = primitives::rsa1_5_encrypt(&mut r, pk, cek.as_bytes()).unwrap();
    let protected = b64url_encode(format!("{{\"enc\":\"{}\"}}", enc.name()).as_bytes());
    let iv = [7u8; 16];
    let (ct, tag) =
        primitives::cbc_hmac_encrypt(enc, cek.as_bytes(), &iv, protected.as_bytes(), plaintext)
            .unwrap();
    let jwe = JweJson {
        protected: Some(protected),
        unprotected: None,
        recipients: vec![jose::JweRecipient {
            header: Some(JoseHeader {
                alg: Some("RSA1_5".into()),
                ..Default::default()
            }),
            encrypted_key: Some(b64url_encode(&wrapped)),
        }],
        aad: None,
        iv: b64url_encode(&iv),
        ciphertext: b64url_encode(&ct),
        tag: b64url_encode(&tag),
    };
    (jwe, cek)
}

#[test]
fn rsa1_5_only_with_legacy_mode() {
    let k = keys();
    for enc in ENCS {
        let (jwe, cek) = rsa1_5_jwe(enc, &k.tee_rsa.public_key(), b"{\"x\":1}");
        match jose::decrypt(provider(), &mut rng(12), &jwe, &k.tee_rsa, LegacyMode::Deny) {
            Err(Error::LegacyRsa15Refused { member }) => assert_eq!(member, "recipients[0]"),
            other => panic!("{other:?}"),
        }
        let d = jose::decrypt(
            provider(),
            &mut rng(12),
            &jwe,
            &k.tee_rsa,
            LegacyMode::Allow,
        )
        .unwrap();
        assert_eq!(d.plaintext, b"{\"x\":1}");
        assert_eq!(d.cek, cek);
        // A corrupted RSA1_5 key fails exactly like any other tampering.
        let mut t = jwe.clone();
        let mut ek = b64url_decode(t.recipients[0].encrypted_key.as_ref().unwrap(), "ek").unwrap();
        ek[3] ^= 0x55;
        t.recipients[0].encrypted_key = Some(b64url_encode(&ek));
        assert!(matches!(
            jose::decrypt(provider(), &mut rng(13), &t, &k.tee_rsa, LegacyMode::Allow),
            Err(Error::Decrypt)
        ));
    }
    // Our encoders never emit RSA1_5.
    let pk = k.tee_rsa.public_key();
    let (jwe, _) = jose::encrypt(
        provider(),
        &mut rng(14),
        b"x",
        ContentEnc::A128CbcHs256,
        &[RecipientKey::new(&pk)],
    )
    .unwrap();
    assert_eq!(
        jwe.recipients[0].header.as_ref().unwrap().alg.as_deref(),
        Some("RSA-OAEP")
    );
}

fn signed_with_protected(
    key: &PrivateKey,
    alg: SigAlg,
    protected_json: &str,
    header: Option<JoseHeader>,
) -> Vec<u8> {
    let payload = b64url_encode(&common::all_requests(true)[0].to_json().unwrap());
    let protected = b64url_encode(protected_json.as_bytes());
    let sig = provider()
        .sign(alg, key, format!("{protected}.{payload}").as_bytes())
        .unwrap();
    reassemble(
        MessageKind::GetDeviceState,
        jose::JwsFlattened {
            payload,
            protected,
            header,
            signature: b64url_encode(&sig),
        },
    )
}

#[test]
fn header_checks_crit_alg_and_duplicates() {
    let k = keys();
    let trusted = [k.tam_ec.public_key()];
    let ok = signed_with_protected(&k.tam_ec, SigAlg::P256Sha256, r#"{"alg":"ES256"}"#, None);
    assert!(verify_request(provider(), &ok, &trusted).is_ok());

    let crit = signed_with_protected(
        &k.tam_ec,
        SigAlg::P256Sha256,
        r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
        None,
    );
    match verify_request(provider(), &crit, &trusted) {
        Err(Error::CriticalHeader { names, .. }) => assert_eq!(names, vec!["exp".to_string()]),
        other => panic!("{other:?}"),
    }
    for alg in ["none", "HS256", "EdDSA", "PS256"] {
        let bad = signed_with_protected(
            &k.tam_ec,
            SigAlg::P256Sha256,
            &format!(r#"{{"alg":"{alg}"}}"#),
            None,
        );
        assert!(
            matches!(verify_request(provider(), &bad, &trusted), Err(Error::AlgorithmNotAllowed { ref value, .. }) if value == alg),
            "{alg}"
        );
    }
    let no_alg = signed_with_protected(&k.tam_ec, SigAlg::P256Sha256, r#"{"kid":"a"}"#, None);
    assert!(matches!(
        verify_request(provider(), &no_alg, &trusted),
        Err(Error::Header { .. })
    ));
    let dup = signed_with_protected(
        &k.tam_ec,
        SigAlg::P256Sha256,
        r#"{"alg":"ES256","kid":"a"}"#,
        Some(JoseHeader {
            kid: Some("b".into()),
            ..Default::default()
        }),
    );
    assert!(matches!(
        verify_request(provider(), &dup, &trusted),
        Err(Error::Header { .. })
    ));
    // An unprotected header passes x5c/kid and unknown parameters through.
    let pass = signed_with_protected(
        &k.tam_ec,
        SigAlg::P256Sha256,
        r#"{"alg":"ES256"}"#,
        Some(JoseHeader {
            x5c: Some(vec!["Y2VydA==".into()]),
            kid: Some("k".into()),
            ..Default::default()
        }),
    );
    let v = verify_request_with(provider(), &pass, &trusted, VerifyPolicy::AnyOne).unwrap();
    let h = v.signatures[0].header.as_ref().unwrap();
    assert_eq!(h.x5c.as_deref(), Some(&["Y2VydA==".to_string()][..]));
    // EdDSA is not in the profile: refused when signing.
    let ed = PrivateKey::generate(otrp_crypto::KeyKind::Ed25519, &mut rng(15)).unwrap();
    assert!(matches!(
        sign_request(
            provider(),
            &Signer::new(&ed),
            &common::all_requests(true)[0]
        ),
        Err(Error::AlgorithmNotAllowed { .. })
    ));
}

#[test]
fn jwe_header_checks() {
    let k = keys();
    let pk = k.tee_ec.public_key();
    let (jwe, _) = jose::encrypt(
        provider(),
        &mut rng(16),
        b"x",
        ContentEnc::A128CbcHs256,
        &[RecipientKey::new(&pk)],
    )
    .unwrap();
    let mut t = jwe.clone();
    t.protected = Some(b64url_encode(br#"{"enc":"A128GCM"}"#));
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow),
        Err(Error::AlgorithmNotAllowed { param: "enc", .. })
    ));
    let mut t = jwe.clone();
    t.protected = Some(b64url_encode(
        br#"{"enc":"A128CBC-HS256","crit":["b64"],"b64":false}"#,
    ));
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow),
        Err(Error::CriticalHeader { .. })
    ));
    let mut t = jwe.clone();
    t.protected = Some(b64url_encode(br#"{"enc":"A128CBC-HS256","zip":"DEF"}"#));
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow),
        Err(Error::Header { .. })
    ));
    let mut t = jwe.clone();
    t.recipients[0].header.as_mut().unwrap().alg = Some("A128KW".into());
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow),
        Err(Error::AlgorithmNotAllowed { param: "alg", .. })
    ));
    let mut t = jwe.clone();
    t.recipients[0].header.as_mut().unwrap().enc = Some("A128CBC-HS256".into());
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow),
        Err(Error::Header { .. })
    ));
    let mut t = jwe.clone();
    t.recipients[0]
        .header
        .as_mut()
        .unwrap()
        .epk
        .as_mut()
        .unwrap()
        .x = b64url_encode(&[1u8; 32]);
    assert!(jose::decrypt(provider(), &mut rng(1), &t, &k.tee_ec, LegacyMode::Allow).is_err());
    // Wrong key type: no recipient.
    assert!(matches!(
        jose::decrypt(provider(), &mut rng(1), &jwe, &k.tee_rsa, LegacyMode::Allow),
        Err(Error::NoRecipient("RSA"))
    ));
}

/// RFC 7516 Appendix B: AES_128_CBC_HMAC_SHA_256 with the Appendix A.3 inputs.
#[test]
fn kat_rfc7516_appendix_b_a128cbc_hs256() {
    let k: [u8; 32] = [
        4, 211, 31, 197, 84, 157, 252, 254, 11, 100, 157, 250, 63, 170, 106, 206, 107, 124, 212,
        45, 111, 107, 9, 219, 200, 177, 0, 240, 143, 156, 44, 207,
    ];
    let p = b"Live long and prosper.";
    let iv: [u8; 16] = [
        3, 22, 60, 12, 43, 67, 104, 105, 108, 108, 105, 99, 111, 116, 104, 101,
    ];
    let aad = b"eyJhbGciOiJBMTI4S1ciLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0";
    let e: [u8; 32] = [
        40, 57, 83, 181, 119, 33, 133, 148, 198, 185, 243, 24, 152, 230, 6, 75, 129, 223, 127, 19,
        210, 82, 183, 230, 168, 33, 215, 104, 143, 112, 56, 102,
    ];
    let t: [u8; 16] = [
        83, 73, 191, 98, 104, 205, 211, 128, 201, 189, 199, 133, 32, 38, 194, 85,
    ];
    let (ct, tag) =
        primitives::cbc_hmac_encrypt(ContentEnc::A128CbcHs256, &k, &iv, aad, p).unwrap();
    assert_eq!(ct, e);
    assert_eq!(tag, t);
    assert_eq!(
        b64url_encode(&ct),
        "KDlTtXchhZTGufMYmOYGS4HffxPSUrfmqCHXaI9wOGY"
    );
    assert_eq!(b64url_encode(&tag), "U0m_YmjN04DJvceFICbCVQ");
    let back =
        primitives::cbc_hmac_decrypt(ContentEnc::A128CbcHs256, &k, &iv, aad, &e, &t).unwrap();
    assert_eq!(back, p);
}

/// RFC 7518 Appendix C: Concat KDF for ECDH-ES ("A128GCM", apu "Alice", apv "Bob").
#[test]
fn kat_rfc7518_appendix_c_concat_kdf() {
    let z: [u8; 32] = [
        158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110,
        163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ];
    let mut out = [0u8; 16];
    primitives::concat_kdf_sha256(&z, "A128GCM", b"Alice", b"Bob", &mut out).unwrap();
    assert_eq!(b64url_encode(&out), "VqqN6vgjbSBcIijNcacQGg");
}
