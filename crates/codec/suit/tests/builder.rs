//! The TA manifest builder reproduces the TEEP Appendix E manifests byte for byte.
#![allow(clippy::unwrap_used, clippy::panic)]

use otrp_suit::{
    CborItem, ComponentId, Envelope, ManifestDependency, Parameter, Severable, TaManifestBuilder,
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

fn uuid(h: &str) -> [u8; 16] {
    hex::decode(h).unwrap().try_into().unwrap()
}

const TC_UUID: &str = "8D82573A926D4754935332DC29997F74";
const VENDOR: &str = "C0DDD5F15243566087DB4F5B0AA26C2F";
const CLASS: &str = "DB42F7093D8C55BAA8C5265FC5820F4E";
const TA: &[u8] = b"Hello, Secure World!";

fn ta_builder() -> TaManifestBuilder {
    let tc = hex::decode(TC_UUID).unwrap();
    TaManifestBuilder::new(
        ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &tc, b"ta"]),
        3,
    )
    .vendor_id(uuid(VENDOR))
    .class_id(uuid(CLASS))
    .image_of(TA)
    .manifest_component_id(ComponentId::new([
        &b"TEEP-Device"[..],
        b"SecureFS",
        &tc,
        b"suit",
    ]))
    .uninstall(true)
}

#[test]
fn builder_reproduces_integrated_payload_example() {
    let env = ta_builder()
        .integrated_payload("#tc", TA.to_vec())
        .build_unsigned()
        .unwrap();
    let published = Envelope::decode(&vector("teep/suit_integrated.hex")).unwrap();
    assert_eq!(env.manifest.bytes(), published.manifest.bytes());
    assert_eq!(
        env.authentication.value().digest.bytes(),
        published.authentication.value().digest.bytes()
    );
    assert_eq!(env.integrated, published.integrated);
    env.check_integrity().unwrap();
    // with the published signature block added, the whole envelope is the vector
    let mut signed = env.clone();
    let mut auth = signed.authentication.value().clone();
    auth.blocks = published.authentication.value().blocks.clone();
    signed.authentication.set(auth).unwrap();
    assert_eq!(signed.encode().unwrap(), vector("teep/suit_integrated.hex"));
}

#[test]
fn builder_reproduces_uri_example() {
    let env = ta_builder()
        .uri("https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta")
        .build_unsigned()
        .unwrap();
    let published = Envelope::decode(&vector("teep/suit_uri.hex")).unwrap();
    assert_eq!(env.manifest.bytes(), published.manifest.bytes());
}

#[test]
fn builder_reproduces_personalization_example() {
    let published = Envelope::decode(&vector("teep/suit_personalization.hex")).unwrap();
    let install = published.install().unwrap().unwrap();
    let p = install.parameters().collect::<Vec<_>>();
    let ct = p.iter().find_map(|p| match p {
        Parameter::Content(c) => Some(c.clone()),
        _ => None,
    });
    let info = p.iter().find_map(|p| match p {
        Parameter::EncryptionInfo(c) => Some(c.clone()),
        _ => None,
    });
    let uri_env = Envelope::decode(&vector("teep/suit_uri.hex")).unwrap();
    let tc = hex::decode(TC_UUID).unwrap();
    let plaintext = br#"{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}"#;
    let env = TaManifestBuilder::new(
        ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", b"config.json"]),
        3,
    )
    .vendor_id(uuid(VENDOR))
    .class_id(uuid(CLASS))
    .image_of(plaintext)
    .encrypted_content(ct.unwrap(), info.unwrap())
    .dependency(ManifestDependency {
        prefix: ComponentId::new([&b"TEEP-Device"[..], b"SecureFS", &tc, b"suit"]),
        digest: uri_env.authentication.value().digest.value().clone(),
        size: 389,
        uri: "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit".into(),
    })
    .manifest_component_id(ComponentId::new([
        &b"TEEP-Device"[..],
        b"SecureFS",
        b"config.suit",
    ]))
    .uninstall(true)
    .build_unsigned()
    .unwrap();
    assert_eq!(env.manifest.bytes(), published.manifest.bytes());
}

#[test]
fn built_manifest_without_payload_is_an_error() {
    let err = TaManifestBuilder::new(ComponentId::new([b"x"]), 1)
        .build_manifest()
        .unwrap_err();
    assert!(err.to_string().contains("builder/payload"), "{err}");
}

#[test]
fn built_values_are_deterministic_and_decode_back() {
    let m = ta_builder()
        .uri("https://x.example/ta")
        .build_manifest()
        .unwrap();
    let a = m.to_cbor().unwrap();
    let b = m.clone().to_cbor().unwrap();
    assert_eq!(a, b);
    let back = otrp_suit::Manifest::from_cbor(&a).unwrap();
    assert_eq!(back, m);
    assert!(matches!(back.install, Some(Severable::Inline(_))));
    assert_eq!(
        back.common
            .value()
            .shared_sequence
            .as_ref()
            .unwrap()
            .value()
            .parameters()
            .count(),
        4
    );
}
