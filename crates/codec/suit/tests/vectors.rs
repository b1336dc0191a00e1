//! Published SUIT vectors: byte-exact round trips, digests, decoded fields.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_suit::labels::{digest_alg, manifest as ml};
use otrp_suit::{
    Action, CborItem, Command, ComponentId, Condition, Envelope, IndexArg, Parameter,
    ReportingPolicy, Severable, VendorId,
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

const SUIT_VECTORS: &[&str] = &[
    "suit/example0.hex",
    "suit/example0_unsigned.hex",
    "suit/example1.hex",
    "suit/example1_unsigned.hex",
    "suit/example2.hex",
    "suit/example2_severed.hex",
    "suit/example2_severed_unsigned.hex",
    "suit/example3.hex",
    "suit/example3_unsigned.hex",
    "suit/example4.hex",
    "suit/example4_unsigned.hex",
    "suit/example5.hex",
    "suit/example5_unsigned.hex",
    "teep/suit_uri.hex",
    "teep/suit_uri_d21.hex",
    "teep/suit_integrated.hex",
    "teep/suit_integrated_d21.hex",
    "teep/suit_personalization.hex",
    "teep/suit_personalization_d21.hex",
];

#[test]
fn every_vector_round_trips_byte_for_byte() {
    for v in SUIT_VECTORS {
        let bytes = vector(v);
        let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(env.encode().unwrap(), bytes, "{v}: re-encoding differs");
        // the manifest bytes are the original ones
        let again = Envelope::decode(&env.encode().unwrap()).unwrap();
        assert_eq!(again, env, "{v}");
    }
}

#[test]
fn every_vector_digest_and_severed_members_match() {
    for v in SUIT_VECTORS {
        let env = Envelope::decode(&vector(v)).unwrap();
        env.check_integrity().unwrap_or_else(|e| panic!("{v}: {e}"));
    }
}

#[test]
fn signed_vectors_carry_one_sign1_block_unsigned_none() {
    for v in SUIT_VECTORS {
        let env = Envelope::decode(&vector(v)).unwrap();
        let blocks = &env.authentication.value().blocks;
        if v.contains("unsigned") {
            assert!(blocks.is_empty(), "{v}");
        } else {
            assert_eq!(blocks.len(), 1, "{v}");
            assert_eq!(blocks[0][0], 0xd2, "{v}: COSE_Sign1 tag 18");
        }
    }
}

#[test]
fn tagging_is_remembered() {
    let env = Envelope::decode(&vector("suit/example0.hex")).unwrap();
    assert!(env.tagged);
    let env = Envelope::decode(&vector("teep/suit_uri.hex")).unwrap();
    assert!(!env.tagged);
}

#[test]
fn example0_fields() {
    let env = Envelope::decode(&vector("suit/example0.hex")).unwrap();
    let d = env.authentication.value().digest.value();
    assert_eq!(d.alg, digest_alg::SHA256);
    assert_eq!(
        hex::encode(&d.bytes),
        "6658ea560262696dd1f13b782239a064da7c6c5cbaf52fded428a6fc83c7e5af"
    );
    let m = env.manifest();
    assert_eq!(m.version, 1);
    assert_eq!(m.sequence_number, 0);
    assert_eq!(m.components(), &[ComponentId::new([[0u8]])]);
    let shared = m.common.value().shared_sequence.as_ref().unwrap().value();
    let Command::OverrideParameters(p) = &shared.0[0] else {
        panic!("first shared command: {:?}", shared.0[0]);
    };
    assert_eq!(
        p.get(1),
        Some(&Parameter::VendorId(VendorId::Uuid(
            hex::decode("fa6b4a53d5ad5fdfbe9de663e4d41ffe")
                .unwrap()
                .try_into()
                .unwrap()
        )))
    );
    assert_eq!(p.image_size(), Some(34768));
    assert_eq!(
        hex::encode(&p.image_digest().unwrap().bytes),
        "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
    );
    assert_eq!(
        shared.0[1],
        Command::Condition(Condition::VendorIdentifier, ReportingPolicy(15))
    );
    assert_eq!(
        m.validate.as_ref().unwrap().value().0,
        vec![Command::Condition(
            Condition::ImageMatch,
            ReportingPolicy(15)
        )]
    );
    assert_eq!(
        m.invoke.as_ref().unwrap().value().0,
        vec![Command::Action(Action::Invoke, ReportingPolicy(2))]
    );
}

#[test]
fn example2_severable_members() {
    let severed = Envelope::decode(&vector("suit/example2_severed.hex")).unwrap();
    let full = Envelope::decode(&vector("suit/example2.hex")).unwrap();
    assert_eq!(severed.manifest, full.manifest);
    let m = full.manifest();
    assert_eq!(m.reference_uri.as_deref(), Some("https://git.io/JJYoj"));
    assert!(matches!(m.install, Some(Severable::Digest(_))));
    assert!(matches!(m.text, Some(Severable::Digest(_))));
    assert_eq!(
        hex::encode(&m.severable_digest(ml::INSTALL).unwrap().bytes),
        "cfa90c5c58595e7f5119a72f803fd0370b3e6abbec6315cd38f63135281bc498"
    );
    // the full envelope carries install and text; the severed one does not
    let install = full.install().unwrap().unwrap();
    assert_eq!(install.0.len(), 3);
    let Command::OverrideParameters(p) = &install.0[0] else {
        panic!()
    };
    assert_eq!(
        p.uri(),
        Some("http://example.com/very/long/path/to/file/file.bin")
    );
    assert_eq!(
        install.0[1],
        Command::Action(Action::Fetch, ReportingPolicy(2))
    );
    assert!(severed.install().is_err());
    let text = full.severed.text.as_ref().unwrap().value();
    let (lang, l) = &text.0[0];
    assert_eq!(lang, "en-US");
    assert!(l.text[0].1.starts_with("## Example 2"));
    assert_eq!(l.components[0].0, ComponentId::new([[0u8]]));
    assert_eq!(l.components[0].1[0], (3, "arm.com".to_string()));
    // severing the full envelope gives exactly the severed vector
    let mut cut = full.clone();
    cut.sever();
    assert_eq!(cut.encode().unwrap(), vector("suit/example2_severed.hex"));
}

#[test]
fn example3_try_each() {
    let env = Envelope::decode(&vector("suit/example3.hex")).unwrap();
    let m = env.manifest();
    assert_eq!(m.sequence_number, 3);
    let shared = m.common.value().shared_sequence.as_ref().unwrap().value();
    let Command::TryEach(t) = &shared.0[1] else {
        panic!("{:?}", shared.0[1])
    };
    assert_eq!(t.sequences.len(), 2);
    assert!(!t.nil_default);
    let alt = t.sequences[1].value();
    assert_eq!(
        alt.0[1],
        Command::Condition(Condition::ComponentSlot, ReportingPolicy(5))
    );
    let Command::OverrideParameters(p) = &alt.0[2] else {
        panic!()
    };
    assert_eq!(p.image_size(), Some(76834));
    let install = env.install().unwrap().unwrap();
    let Command::TryEach(t) = &install.0[0] else {
        panic!()
    };
    let Command::OverrideParameters(p) = &t.sequences[1].value().0[2] else {
        panic!()
    };
    assert_eq!(p.uri(), Some("http://example.com/file2.bin"));
}

#[test]
fn example5_two_components() {
    let env = Envelope::decode(&vector("suit/example5.hex")).unwrap();
    let m = env.manifest();
    assert_eq!(m.components().len(), 2);
    let shared = m.common.value().shared_sequence.as_ref().unwrap().value();
    assert_eq!(shared.0[0], Command::SetComponentIndex(IndexArg::One(0)));
}

#[test]
fn teep_integrated_payload() {
    let env = Envelope::decode(&vector("teep/suit_integrated.hex")).unwrap();
    assert_eq!(
        env.integrated_payload("#tc"),
        Some(&b"Hello, Secure World!"[..])
    );
    let m = env.manifest();
    assert_eq!(m.sequence_number, 3);
    assert_eq!(
        m.manifest_component_id,
        Some(ComponentId::new([
            &b"TEEP-Device"[..],
            b"SecureFS",
            &hex::decode("8D82573A926D4754935332DC29997F74").unwrap(),
            b"suit"
        ]))
    );
    let install = env.install().unwrap().unwrap();
    let Command::OverrideParameters(p) = &install.0[0] else {
        panic!()
    };
    assert_eq!(p.uri(), Some("#tc"));
    assert_eq!(
        m.uninstall.as_ref().unwrap().value().0,
        vec![Command::Action(Action::Unlink, ReportingPolicy(15))]
    );
    let shared = m.common.value().shared_sequence.as_ref().unwrap().value();
    let Command::OverrideParameters(p) = &shared.0[0] else {
        panic!()
    };
    assert_eq!(p.image_size(), Some(20));
    // image digest = SHA-256 of the integrated payload
    assert!(p
        .image_digest()
        .unwrap()
        .matches(b"Hello, Secure World!")
        .unwrap());
}

#[test]
fn teep_personalization_dependency_and_encryption() {
    let env = Envelope::decode(&vector("teep/suit_personalization.hex")).unwrap();
    let m = env.manifest();
    let deps = m.common.value().dependencies.as_ref().unwrap();
    assert_eq!(deps[0].0, 1);
    assert_eq!(
        deps[0].1.prefix,
        Some(ComponentId::new([
            &b"TEEP-Device"[..],
            b"SecureFS",
            &hex::decode("8D82573A926D4754935332DC29997F74").unwrap(),
            b"suit"
        ]))
    );
    let dr = env
        .severable_sequence(ml::DEPENDENCY_RESOLUTION)
        .unwrap()
        .unwrap();
    let Command::OverrideParameters(p) = &dr.0[1] else {
        panic!()
    };
    assert_eq!(
        p.uri(),
        Some("https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit")
    );
    assert_eq!(p.image_size(), Some(389));
    let install = env.install().unwrap().unwrap();
    assert_eq!(
        install.0[1],
        Command::Action(Action::ProcessDependency, ReportingPolicy(0))
    );
    let Command::OverrideParameters(p) = &install.0[3] else {
        panic!()
    };
    let Some(Parameter::EncryptionInfo(info)) = p.get(19) else {
        panic!("{p:?}")
    };
    assert_eq!(info[0], 0xd8, "tag 96");
    assert_eq!(info[1], 96);
    let Some(Parameter::Content(ct)) = p.get(18) else {
        panic!()
    };
    assert_eq!(ct.len(), 61);
    assert_eq!(
        install.0[4],
        Command::Action(Action::Write, ReportingPolicy(15))
    );
    // the URI manifest it depends on has the digest named in dependency-resolution
    let uri = Envelope::decode(&vector("teep/suit_uri.hex")).unwrap();
    let Some(Parameter::ImageDigest(d)) = p_of(dr, 3) else {
        panic!()
    };
    // trust-domains §5.2.2: a dependency's image digest is over its bstr-wrapped manifest
    assert!(d.value().matches(&uri.manifest_wrapped_bytes()).unwrap());
    assert_eq!(d.value(), uri.authentication.value().digest.value());
}

fn p_of(seq: &otrp_suit::CommandSequence, label: i64) -> Option<&Parameter> {
    seq.parameters().find(|p| p.label() == label)
}

#[test]
fn d21_and_current_teep_vectors_share_the_manifest() {
    for (a, b) in [
        ("teep/suit_uri.hex", "teep/suit_uri_d21.hex"),
        ("teep/suit_integrated.hex", "teep/suit_integrated_d21.hex"),
    ] {
        let a = Envelope::decode(&vector(a)).unwrap();
        let b = Envelope::decode(&vector(b)).unwrap();
        assert_eq!(a.manifest.bytes(), b.manifest.bytes());
        assert!(matches!(b.manifest().install, Some(Severable::Inline(_))));
    }
}

#[test]
fn legacy_install_label_17_is_preserved() {
    // a manifest using the pre-20 install key: kept as an unknown member, re-encoded as is
    let env = Envelope::decode(&vector("teep/suit_uri.hex")).unwrap();
    let mut m = env.manifest().clone();
    let Some(Severable::Inline(install)) = m.install.take() else {
        panic!()
    };
    m.extensions.push((
        otrp_suit::Value::from(17),
        otrp_suit::Value::Bytes(install.bytes().to_vec()),
    ));
    let bytes = m.to_cbor().unwrap();
    let back = otrp_suit::Manifest::from_cbor(&bytes).unwrap();
    assert_eq!(back, m);
    assert!(back.install.is_none());
    assert_eq!(back.to_cbor().unwrap(), bytes);
}
