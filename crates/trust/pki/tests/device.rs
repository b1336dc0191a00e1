//! Device provisioning: identity, certificates bound to the ueid, sealed state that opens
//! only with the device's storage key, batch keys, and the device directory.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{pki, rng, t0};
use otrp_crypto::{default_provider, PublicKey};
use otrp_pki::device::{
    load_sealed, provision, DeviceIdentity, MgmtConfig, ProvisionRequest, SEALED_MAGIC,
};
use otrp_pki::{fs, CaLevel, CaRole, ChainError, DeviceError, KeyAlg, PkiError, Usage};

#[test]
fn provisioned_identity_is_complete_and_chains() {
    let mut p = pki(KeyAlg::P256, 21, t0());
    let mut req = ProvisionRequest::new("doorlock-x1");
    req.hwversion = "rev-b".into();
    req.config = MgmtConfig::DualControl;
    let dev = provision(&mut p, &req, default_provider(), &mut rng(22), t0()).unwrap();
    let id = &dev.identity;
    assert_eq!(id.ueid.len(), 17);
    assert_eq!(id.ueid[0], 0x01, "RFC 9711 RAND ueid type");
    assert_eq!(id.oemid, p.oemid().unwrap());
    assert_eq!(id.oemid.len(), 16);
    assert_eq!(id.hwmodel, "doorlock-x1");
    assert_eq!(id.hwversion, "rev-b");
    assert_eq!(id.config, MgmtConfig::DualControl);
    assert!(id.batch.is_none());
    assert!(!dev.batch_created);
    // Trust anchors: the TAM root, the SP root, the OEM key.
    assert_eq!(
        id.anchors.tam_roots,
        vec![p.ca_cert_der(CaRole::Tam, CaLevel::Root).unwrap()]
    );
    assert_eq!(
        id.anchors.sp_roots,
        vec![p.ca_cert_der(CaRole::Sp, CaLevel::Root).unwrap()]
    );
    assert_eq!(id.anchors.oem_keys, vec![p.oem_public_key().unwrap()]);
    // The TEE accepts the PKI's TAM signer and SP signer through its anchors, and
    // refuses the TLS server certificate as a TAM signer.
    let tam = p.issued_cert_der(otrp_pki::CertKind::Tam, "tam1").unwrap();
    let tam_ca = p.ca_cert_der(CaRole::Tam, CaLevel::Issuing).unwrap();
    let v = id
        .anchors
        .tam_store()
        .unwrap()
        .verify(&tam, std::slice::from_ref(&tam_ca), Usage::TamSigner, t0())
        .unwrap();
    assert_eq!(v.info.tamid.as_deref(), Some("tam1.opentrust.test"));
    let srv = p
        .issued_cert_der(otrp_pki::CertKind::Server, "localhost")
        .unwrap();
    assert!(id
        .anchors
        .tam_store()
        .unwrap()
        .verify(&srv, &[tam_ca], Usage::TamSigner, t0())
        .is_err());
    let sp = p.issued_cert_der(otrp_pki::CertKind::Sp, "sp1").unwrap();
    let sp_ca = p.ca_cert_der(CaRole::Sp, CaLevel::Issuing).unwrap();
    id.anchors
        .sp_store()
        .unwrap()
        .verify(&sp, &[sp_ca], Usage::SpSigner, t0())
        .unwrap();
    // TEE and TFW certificates chain to their roots and carry the ueid.
    let tee = p
        .trust_store(CaRole::Tee)
        .unwrap()
        .verify(&id.tee.cert, &id.tee.chain, Usage::TeeAttestation, t0())
        .unwrap();
    assert_eq!(tee.info.ueid.as_deref(), Some(id.ueid.as_slice()));
    assert_eq!(tee.public_key, id.tee.key.public_key());
    let tfw = p
        .trust_store(CaRole::Tfw)
        .unwrap()
        .verify(&id.tfw.cert, &id.tfw.chain, Usage::TfwAttestation, t0())
        .unwrap();
    assert_eq!(tfw.info.ueid.as_deref(), Some(id.ueid.as_slice()));
    // The TEE certificate does not chain to the TFW root (separate CAs).
    assert_eq!(
        p.trust_store(CaRole::Tfw)
            .unwrap()
            .verify(&id.tee.cert, &id.tee.chain, Usage::TeeAttestation, t0())
            .unwrap_err(),
        ChainError::UnknownIssuer
    );
    // The public description.
    let public = &dev.public;
    assert_eq!(public.ueid, hex::encode(&id.ueid));
    assert_eq!(public.config, MgmtConfig::DualControl);
    assert_eq!(
        public.did,
        hex::encode(default_provider().sha256(&id.tee.cert))
    );
    assert_eq!(
        public.tee_kid,
        hex::encode(otrp_crypto::thumbprint::cose_key_thumbprint(
            &id.tee.key.public_key(),
            default_provider()
        ))
    );
    eprintln!(
        "P-256 device: TEE cert {} bytes, TFW cert {} bytes, sealed state {} bytes",
        id.tee.cert.len(),
        id.tfw.cert.len(),
        dev.sealed.len()
    );
}

#[test]
fn sealed_state_round_trips_and_opens_only_with_its_key() {
    let mut p = pki(KeyAlg::Ed25519, 23, t0());
    let mut req = ProvisionRequest::new("phone");
    req.batch = Some("lot-7".into());
    let dev = provision(&mut p, &req, default_provider(), &mut rng(24), t0()).unwrap();
    assert!(dev.batch_created);
    let opened = load_sealed(&dev.sealed, &dev.storage_key[..], default_provider()).unwrap();
    assert_eq!(opened.to_cbor().unwrap(), dev.identity.to_cbor().unwrap());
    assert_eq!(
        opened.tee.key.public_key(),
        dev.identity.tee.key.public_key()
    );
    assert_eq!(
        opened.batch.as_ref().map(|b| b.name.as_str()),
        Some("lot-7")
    );
    // The container shows magic, version and ueid in the clear.
    let v: ciborium::Value = ciborium::de::from_reader(dev.sealed.as_slice()).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items[0].as_text(), Some(SEALED_MAGIC));
    assert_eq!(items[2].as_bytes(), Some(&dev.identity.ueid));

    // Another device's key.
    let mut wrong = *dev.storage_key;
    wrong[0] ^= 1;
    assert!(matches!(
        load_sealed(&dev.sealed, &wrong, default_provider()),
        Err(DeviceError::Unseal)
    ));
    // A flipped ciphertext bit.
    let mut tampered = dev.sealed.clone();
    let n = tampered.len();
    tampered[n - 1] ^= 0x80;
    assert!(matches!(
        load_sealed(&tampered, &dev.storage_key[..], default_provider()),
        Err(DeviceError::Unseal)
    ));
    // A swapped ueid in the header (the AAD binds it).
    let mut swapped = v.clone();
    if let ciborium::Value::Array(a) = &mut swapped {
        a[2] = ciborium::Value::Bytes(vec![0x01; 17]);
    }
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&swapped, &mut bytes).unwrap();
    assert!(matches!(
        load_sealed(&bytes, &dev.storage_key[..], default_provider()),
        Err(DeviceError::Unseal)
    ));
    // Truncated, wrong shapes, wrong key length.
    assert!(matches!(
        load_sealed(&dev.sealed[..10], &dev.storage_key[..], default_provider()),
        Err(DeviceError::Container { .. })
    ));
    assert!(matches!(
        load_sealed(&[0x80], &dev.storage_key[..], default_provider()),
        Err(DeviceError::Container { .. })
    ));
    assert!(matches!(
        load_sealed(&dev.sealed, &[0u8; 16], default_provider()),
        Err(DeviceError::StorageKeyLength { len: 16 })
    ));
    // Re-sealing (as the TEE platform will) gives a new nonce and opens again.
    let resealed = opened
        .seal(&dev.storage_key[..], default_provider(), &mut rng(25))
        .unwrap();
    assert_ne!(resealed, dev.sealed);
    load_sealed(&resealed, &dev.storage_key[..], default_provider()).unwrap();
}

#[test]
fn state_decoding_names_the_bad_field() {
    let mut p = pki(KeyAlg::P256, 26, t0());
    let dev = provision(
        &mut p,
        &ProvisionRequest::new("m"),
        default_provider(),
        &mut rng(27),
        t0(),
    )
    .unwrap();
    let cbor = dev.identity.to_cbor().unwrap();
    let mut v: ciborium::Value = ciborium::de::from_reader(cbor.as_slice()).unwrap();
    let set = |v: &mut ciborium::Value, path: &[&str], new: Option<ciborium::Value>| {
        let mut cur = v;
        for (i, key) in path.iter().enumerate() {
            let ciborium::Value::Map(m) = cur else {
                panic!("not a map")
            };
            let idx = m
                .iter()
                .position(|(k, _)| k.as_text() == Some(key))
                .unwrap();
            if i + 1 == path.len() {
                match &new {
                    Some(n) => m[idx].1 = n.clone(),
                    None => {
                        m.remove(idx);
                    }
                }
                return;
            }
            cur = &mut m[idx].1;
        }
    };
    let check = |v: &ciborium::Value, want: &str| {
        let mut b = Vec::new();
        ciborium::ser::into_writer(v, &mut b).unwrap();
        match DeviceIdentity::from_cbor(&b) {
            Err(DeviceError::Field { path, .. }) => assert_eq!(path, want),
            other => panic!("expected Field {want}, got {other:?}"),
        }
    };
    let mut a = v.clone();
    set(&mut a, &["tee"], None);
    check(&a, "tee");
    let mut b = v.clone();
    set(
        &mut b,
        &["tfw", "key"],
        Some(ciborium::Value::Bytes(vec![1, 2, 3])),
    );
    check(&b, "tfw.key");
    let mut c = v.clone();
    set(
        &mut c,
        &["config"],
        Some(ciborium::Value::Text("anarchy".into())),
    );
    check(&c, "config");
    set(
        &mut v,
        &["anchors", "oem"],
        Some(ciborium::Value::Array(vec![ciborium::Value::Bytes(vec![
            0,
        ])])),
    );
    check(&v, "anchors.oem[0]");
}

#[test]
fn batch_devices_share_one_key_and_others_do_not() {
    let mut p = pki(KeyAlg::P256, 28, t0());
    let mut r = rng(29);
    let mut req = ProvisionRequest::new("sensor");
    req.batch = Some("b1".into());
    let d1 = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    let d2 = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    req.batch = Some("b2".into());
    let d3 = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    let k = |d: &otrp_pki::device::Provisioned| d.identity.batch.as_ref().unwrap().key.public_key();
    assert!(d1.batch_created && !d2.batch_created && d3.batch_created);
    assert_eq!(k(&d1), k(&d2));
    assert_ne!(k(&d1), k(&d3));
    assert!(matches!(k(&d1), PublicKey::P256(_)));
    assert_ne!(d1.identity.ueid, d2.identity.ueid);
    assert_ne!(*d1.storage_key, *d2.storage_key);
    assert_eq!(p.index().batches.len(), 2);
    assert!(p.file("batch/b1.pub.pem").is_ok());
    assert!(matches!(
        p.batch_key("../x", &mut r, t0()),
        Err(PkiError::InvalidName { .. })
    ));
}

/// `report_key`: each device of the batch gets its own report key, derived from the
/// batch's report master (created once, a secret file of the PKI) and its UEID; the key
/// survives sealing; devices provisioned without the option have none.
#[test]
fn report_keys_are_derived_per_device_from_the_batch_master() {
    let mut p = pki(KeyAlg::P256, 30, t0());
    let mut r = rng(31);
    let mut req = ProvisionRequest::new("lock");
    req.batch = Some("b1".into());
    let plain = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    assert!(plain.identity.batch.as_ref().unwrap().report_key.is_none());
    assert!(p.index().batches[0].report_master.is_none());
    req.report_key = true;
    let d1 = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    let d2 = provision(&mut p, &req, default_provider(), &mut r, t0()).unwrap();
    assert!(
        d1.batch_created,
        "the master was created: the PKI must be saved"
    );
    assert!(!d2.batch_created);
    let path = p.index().batches[0].report_master.clone().unwrap();
    assert_eq!(path, "batch/b1.report-master.key");
    assert!(p.index().files.iter().any(|f| f.path == path && f.secret));
    let master =
        otrp_pki::read_report_master(std::str::from_utf8(p.file(&path).unwrap()).unwrap(), &path)
            .unwrap();
    let key = |d: &otrp_pki::device::Provisioned| {
        **d.identity
            .batch
            .as_ref()
            .unwrap()
            .report_key
            .as_ref()
            .unwrap()
    };
    for d in [&d1, &d2] {
        let want =
            otrp_crypto::report_key::derive(default_provider(), &master, "b1", &d.identity.ueid)
                .unwrap();
        assert_eq!(key(d), *want);
        let opened = load_sealed(&d.sealed, &d.storage_key[..], default_provider()).unwrap();
        assert_eq!(
            **opened.batch.as_ref().unwrap().report_key.as_ref().unwrap(),
            *want
        );
    }
    assert_ne!(key(&d1), key(&d2));
    let (again, created) = p.batch_report_master("b1", &mut r).unwrap();
    assert!(!created);
    assert_eq!(*again, *master);
    assert!(p.batch_report_master("nope", &mut r).is_err());
    assert!(otrp_pki::read_report_master("abcd", "x").is_err());
}

#[test]
fn device_directory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pki(KeyAlg::P256, 30, t0());
    let dev = provision(
        &mut p,
        &ProvisionRequest::new("tv"),
        default_provider(),
        &mut rng(31),
        t0(),
    )
    .unwrap();
    let d = dir.path().join("dev");
    fs::write_device(&d, &dev, false).unwrap();
    let (public, identity) = fs::load_device(&d, default_provider()).unwrap();
    assert_eq!(public, dev.public);
    assert_eq!(identity.to_cbor().unwrap(), dev.identity.to_cbor().unwrap());
    assert_eq!(std::fs::read(d.join("efuse.key")).unwrap().len(), 32);
    assert!(matches!(
        fs::write_device(&d, &dev, false),
        Err(PkiError::AlreadyExists { .. })
    ));
    // The public TEE key file matches the sealed key.
    let pem = std::fs::read_to_string(d.join("tee.pub.pem")).unwrap();
    assert_eq!(
        PublicKey::from_pem(&pem).unwrap(),
        identity.tee.key.public_key()
    );
    // Another device's eFuse key does not open this state.
    let dev2 = provision(
        &mut p,
        &ProvisionRequest::new("tv"),
        default_provider(),
        &mut rng(32),
        t0(),
    )
    .unwrap();
    std::fs::write(d.join("efuse.key"), &dev2.storage_key[..]).unwrap();
    assert!(matches!(
        fs::load_device(&d, default_provider()),
        Err(PkiError::Device(DeviceError::Unseal))
    ));
}

#[test]
fn revoked_device_certificate_is_refused() {
    let mut p = pki(KeyAlg::P256, 33, t0());
    let dev = provision(
        &mut p,
        &ProvisionRequest::new("m"),
        default_provider(),
        &mut rng(34),
        t0(),
    )
    .unwrap();
    let id = dev.identity;
    p.revoke(&id.tee.cert, t0()).unwrap();
    assert_eq!(
        p.trust_store(CaRole::Tee)
            .unwrap()
            .verify(&id.tee.cert, &id.tee.chain, Usage::TeeAttestation, t0())
            .unwrap_err(),
        ChainError::Revoked
    );
    // The TFW certificate of the same device is still good.
    p.trust_store(CaRole::Tfw)
        .unwrap()
        .verify(&id.tfw.cert, &id.tfw.chain, Usage::TfwAttestation, t0())
        .unwrap();
}

#[test]
fn bad_requests_are_refused() {
    let mut p = pki(KeyAlg::P256, 35, t0());
    let mut r = rng(36);
    let bad_model = ProvisionRequest::new("");
    assert!(matches!(
        provision(&mut p, &bad_model, default_provider(), &mut r, t0()),
        Err(PkiError::InvalidName { what: "model", .. })
    ));
    let mut bad_batch = ProvisionRequest::new("m");
    bad_batch.batch = Some("a/b".into());
    assert!(matches!(
        provision(&mut p, &bad_batch, default_provider(), &mut r, t0()),
        Err(PkiError::InvalidName { .. })
    ));
    assert!("anarchy".parse::<MgmtConfig>().is_err());
    assert_eq!(
        "oem-owned-sd".parse::<MgmtConfig>().unwrap(),
        MgmtConfig::OemOwnedSd
    );
}
