//! In-process chain validation: good chains accepted; wrong root, expiry, revocation,
//! CRL expiry, missing CRL, wrong usage and a bad signature each refused with a typed error.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{pki, rng, t0};
use otrp_pki::{
    days_after, fs, CaLevel, CaRole, CertKind, ChainError, IssueRequest, KeyAlg, Pki, PkiError,
    TrustStore, Usage,
};
use std::time::Duration;

fn chain(p: &Pki, kind: CertKind, name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let leaf = p.issued_cert_der(kind, name).unwrap();
    let inter = p.ca_cert_der(kind.ca(), CaLevel::Issuing).unwrap();
    (leaf, vec![inter])
}

fn usage(kind: CertKind) -> Usage {
    match kind {
        CertKind::Tam => Usage::TamSigner,
        CertKind::Sp => Usage::SpSigner,
        CertKind::Tee => Usage::TeeAttestation,
        CertKind::Tfw => Usage::TfwAttestation,
        CertKind::Server => Usage::TlsServer,
        CertKind::Oem => Usage::OemSigner,
    }
}

#[test]
fn init_issues_every_role_and_good_chains_verify() {
    let p = pki(KeyAlg::P256, 1, t0());
    assert_eq!(p.index().cas.len(), 8);
    let kinds: Vec<_> = p
        .index()
        .issued
        .iter()
        .map(|r| (r.kind, r.name.clone()))
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    for (kind, name) in kinds {
        let store = p.trust_store(kind.ca()).unwrap();
        let (leaf, inter) = chain(&p, kind, &name);
        let v = store
            .verify(&leaf, &inter, usage(kind), t0() + Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        assert_eq!(v.path_len, 3);
        assert!(v.info.subject.contains(&format!(
            "OU={}",
            match kind.ca() {
                CaRole::Tee => "TEE",
                CaRole::Tfw => "TFW-OEM",
                CaRole::Tam => "TAM",
                CaRole::Sp => "SP",
            }
        )));
    }
    let tam = p.first_issued(CertKind::Tam).unwrap();
    assert_eq!(tam.tamid.as_deref(), Some("tam1.opentrust.test"));
    let (leaf, inter) = chain(&p, CertKind::Tam, "tam1");
    let v = p
        .trust_store(CaRole::Tam)
        .unwrap()
        .verify(&leaf, &inter, Usage::TamSigner, t0())
        .unwrap();
    assert_eq!(v.info.tamid.as_deref(), Some("tam1.opentrust.test"));
    assert!(v.info.subject.contains("CN=tam1.opentrust.test"));
    let (srv, inter) = chain(&p, CertKind::Server, "localhost");
    let v = p
        .trust_store(CaRole::Tam)
        .unwrap()
        .verify(&srv, &inter, Usage::TlsServer, t0())
        .unwrap();
    assert_eq!(v.info.dns_names, vec!["localhost".to_owned()]);
}

#[test]
fn ed25519_and_rsa_pkis_verify() {
    for (alg, seed) in [(KeyAlg::Ed25519, 2), (KeyAlg::Rsa2048, 3)] {
        let p = pki(alg, seed, t0());
        let (leaf, inter) = chain(&p, CertKind::Tam, "tam1");
        let v = p
            .trust_store(CaRole::Tam)
            .unwrap()
            .verify(&leaf, &inter, Usage::TamSigner, t0())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            KeyAlg::of_key(&p.private_key("issued/tam/tam1.key.pem").unwrap()),
            alg
        );
        assert_eq!(
            v.public_key,
            p.private_key("issued/tam/tam1.key.pem")
                .unwrap()
                .public_key()
        );
    }
}

#[test]
fn wrong_root_is_refused() {
    let p = pki(KeyAlg::P256, 4, t0());
    let other = pki(KeyAlg::P256, 5, t0());
    let (leaf, inter) = chain(&p, CertKind::Tam, "tam1");
    // Another PKI's TAM root.
    let err = other
        .trust_store(CaRole::Tam)
        .unwrap()
        .verify(&leaf, &inter, Usage::TamSigner, t0())
        .unwrap_err();
    assert_eq!(err, ChainError::UnknownIssuer);
    // The same PKI, but the SP root: a TAM certificate is no SP signer.
    let err =
        TrustStore::without_revocation(vec![p.ca_cert_der(CaRole::Sp, CaLevel::Root).unwrap()])
            .unwrap()
            .verify(&leaf, &inter, Usage::TamSigner, t0())
            .unwrap_err();
    assert_eq!(err, ChainError::UnknownIssuer);
    // The right root but no intermediate.
    let err = p
        .trust_store(CaRole::Tam)
        .unwrap()
        .verify(&leaf, &[], Usage::TamSigner, t0())
        .unwrap_err();
    assert_eq!(err, ChainError::UnknownIssuer);
}

#[test]
fn expired_and_not_yet_valid_are_refused() {
    let p = pki(KeyAlg::P256, 6, t0());
    let (leaf, inter) = chain(&p, CertKind::Tam, "tam1");
    let store =
        TrustStore::without_revocation(vec![p.ca_cert_der(CaRole::Tam, CaLevel::Root).unwrap()])
            .unwrap();
    let later = days_after(t0(), otrp_pki::SIGNER_DAYS + 1);
    match store
        .verify(&leaf, &inter, Usage::TamSigner, later)
        .unwrap_err()
    {
        ChainError::Expired { not_after, now } => {
            assert!(not_after < now);
            assert_eq!(now, otrp_pki::unix_secs(later));
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    let earlier = t0() - Duration::from_secs(3600);
    assert!(matches!(
        store.verify(&leaf, &inter, Usage::TamSigner, earlier),
        Err(ChainError::NotYetValid { .. })
    ));
    // A short-lived certificate from `issue --days 1`.
    let mut p = p;
    let mut req = IssueRequest::new(CertKind::Sp, "short");
    req.days = Some(1);
    p.issue(&req, &mut rng(7), t0()).unwrap();
    let (leaf, inter) = chain(&p, CertKind::Sp, "short");
    let store = p.trust_store(CaRole::Sp).unwrap();
    store.verify(&leaf, &inter, Usage::SpSigner, t0()).unwrap();
    assert!(matches!(
        store.verify(&leaf, &inter, Usage::SpSigner, days_after(t0(), 2)),
        Err(ChainError::Expired { .. })
    ));
}

#[test]
fn revoked_leaf_and_revoked_intermediate_are_refused() {
    let mut p = pki(KeyAlg::P256, 8, t0());
    let mut req = IssueRequest::new(CertKind::Tam, "tam2");
    req.tamid = Some("tam2.example".into());
    p.issue(&req, &mut rng(9), t0()).unwrap();
    let (tam1, inter) = chain(&p, CertKind::Tam, "tam1");
    let (tam2, _) = chain(&p, CertKind::Tam, "tam2");
    let revoked = p.revoke(&tam2, t0() + Duration::from_secs(10)).unwrap();
    assert_eq!((revoked.0, revoked.1), (CaRole::Tam, CaLevel::Issuing));
    let store = p.trust_store(CaRole::Tam).unwrap();
    let now = t0() + Duration::from_secs(20);
    assert_eq!(
        store
            .verify(&tam2, &inter, Usage::TamSigner, now)
            .unwrap_err(),
        ChainError::Revoked
    );
    store.verify(&tam1, &inter, Usage::TamSigner, now).unwrap();
    // Revoking twice is refused.
    assert!(matches!(
        p.revoke(&tam2, now),
        Err(PkiError::AlreadyRevoked { .. })
    ));
    // Without revocation checking the revoked certificate still chains.
    TrustStore::without_revocation(vec![p.ca_cert_der(CaRole::Tam, CaLevel::Root).unwrap()])
        .unwrap()
        .verify(&tam2, &inter, Usage::TamSigner, now)
        .unwrap();
    // Revoke the issuing CA itself (on the root's CRL): every leaf under it falls.
    let issuing = p.ca_cert_der(CaRole::Tam, CaLevel::Issuing).unwrap();
    let r = p.revoke(&issuing, now).unwrap();
    assert_eq!((r.0, r.1), (CaRole::Tam, CaLevel::Root));
    let store = p.trust_store(CaRole::Tam).unwrap();
    assert_eq!(
        store
            .verify(&tam1, &inter, Usage::TamSigner, now)
            .unwrap_err(),
        ChainError::Revoked
    );
    // A certificate of another PKI cannot be revoked here.
    let other = pki(KeyAlg::P256, 10, t0());
    let (foreign, _) = chain(&other, CertKind::Sp, "sp1");
    assert!(matches!(
        p.revoke(&foreign, now),
        Err(PkiError::ForeignCertificate { .. })
    ));
}

#[test]
fn stale_or_missing_crl_is_refused() {
    let mut p = pki(KeyAlg::P256, 11, t0());
    let (leaf, inter) = chain(&p, CertKind::Tam, "tam1");
    let store = p.trust_store(CaRole::Tam).unwrap();
    let late = days_after(t0(), otrp_pki::CRL_DAYS + 1);
    assert!(matches!(
        store.verify(&leaf, &inter, Usage::TamSigner, late),
        Err(ChainError::CrlExpired { .. })
    ));
    // Refreshing the CRLs fixes it.
    p.refresh_crls(late).unwrap();
    p.trust_store(CaRole::Tam)
        .unwrap()
        .verify(&leaf, &inter, Usage::TamSigner, late)
        .unwrap();
    // Only the root's CRL: the leaf's status is unknown.
    let store = TrustStore::with_crls(
        vec![p.ca_cert_der(CaRole::Tam, CaLevel::Root).unwrap()],
        vec![p.crl_der(CaRole::Tam, CaLevel::Root).unwrap()],
    )
    .unwrap();
    assert_eq!(
        store
            .verify(&leaf, &inter, Usage::TamSigner, late)
            .unwrap_err(),
        ChainError::RevocationUnknown
    );
}

#[test]
fn wrong_usage_is_refused() {
    let p = pki(KeyAlg::P256, 12, t0());
    let store = p.trust_store(CaRole::Tam).unwrap();
    // The TLS server certificate is no TAM signer (serverAuth EKU, and no tamid).
    let (srv, inter) = chain(&p, CertKind::Server, "localhost");
    assert!(matches!(
        store.verify(&srv, &inter, Usage::TamSigner, t0()),
        Err(ChainError::WrongUsage { .. })
    ));
    // The TAM signer is no TLS server (no serverAuth EKU).
    let (tam, inter) = chain(&p, CertKind::Tam, "tam1");
    assert!(matches!(
        store.verify(&tam, &inter, Usage::TlsServer, t0()),
        Err(ChainError::WrongUsage { .. })
    ));
    // The SP signer (codeSigning) is no TLS server either.
    let (sp, inter) = chain(&p, CertKind::Sp, "sp1");
    assert!(matches!(
        p.trust_store(CaRole::Sp)
            .unwrap()
            .verify(&sp, &inter, Usage::TlsServer, t0()),
        Err(ChainError::WrongUsage { .. })
    ));
    // The OEM signer is under the TFW/OEM CA but carries no tamid.
    let (oem, inter) = chain(&p, CertKind::Oem, "oem");
    let tfw_store = p.trust_store(CaRole::Tfw).unwrap();
    assert_eq!(
        tfw_store
            .verify(&oem, &inter, Usage::TamSigner, t0())
            .unwrap_err(),
        ChainError::MissingTamId
    );
    assert_eq!(
        tfw_store
            .verify(&oem, &inter, Usage::TfwAttestation, t0())
            .unwrap_err(),
        ChainError::MissingUeid
    );
    // A CA certificate as a leaf.
    let ca = p.ca_cert_der(CaRole::Tam, CaLevel::Issuing).unwrap();
    assert!(matches!(
        store.verify(&ca, &[], Usage::TamSigner, t0()),
        Err(ChainError::WrongUsage { .. }) | Err(ChainError::Rejected { .. })
    ));
}

#[test]
fn tampered_signature_and_garbage_are_refused() {
    let p = pki(KeyAlg::P256, 13, t0());
    let (mut leaf, inter) = chain(&p, CertKind::Tam, "tam1");
    // The last bytes of the DER are the signature's s value.
    let n = leaf.len();
    leaf[n - 2] ^= 0x01;
    let store = p.trust_store(CaRole::Tam).unwrap();
    assert_eq!(
        store
            .verify(&leaf, &inter, Usage::TamSigner, t0())
            .unwrap_err(),
        ChainError::BadSignature
    );
    assert!(matches!(
        store.verify(b"not a certificate", &inter, Usage::TamSigner, t0()),
        Err(ChainError::Malformed { .. })
    ));
    assert!(matches!(
        TrustStore::with_crls(vec![], vec![b"junk".to_vec()]),
        Err(ChainError::Malformed { .. })
    ));
    assert!(matches!(
        TrustStore::without_revocation(vec![vec![0x30, 0x03, 0x02, 0x01, 0x00]]),
        Err(ChainError::Malformed { .. })
    ));
}

#[test]
fn issue_names_and_duplicates() {
    let mut p = pki(KeyAlg::P256, 14, t0());
    let mut r = rng(15);
    assert!(matches!(
        p.issue(&IssueRequest::new(CertKind::Sp, "../evil"), &mut r, t0()),
        Err(PkiError::InvalidName { .. })
    ));
    assert!(matches!(
        p.issue(&IssueRequest::new(CertKind::Sp, "sp1"), &mut r, t0()),
        Err(PkiError::AlreadyIssued { .. })
    ));
    let mut again = IssueRequest::new(CertKind::Sp, "sp1");
    again.replace = true;
    let old = p.issued(CertKind::Sp, "sp1").unwrap().serial.clone();
    let new = p.issue(&again, &mut r, t0()).unwrap();
    assert_ne!(new.record.serial, old);
    assert_eq!(
        p.index()
            .issued
            .iter()
            .filter(|i| i.kind == CertKind::Sp)
            .count(),
        1
    );
    // A renewed TAM keeps its tamid.
    let mut tam = IssueRequest::new(CertKind::Tam, "tam1");
    tam.replace = true;
    tam.tamid = Some("tam1.opentrust.test".into());
    let renewed = p.issue(&tam, &mut r, t0()).unwrap();
    assert_eq!(renewed.record.tamid.as_deref(), Some("tam1.opentrust.test"));
    // A stand-alone TEE certificate carries a ueid and verifies as a device certificate.
    let tee = p
        .issue(&IssueRequest::new(CertKind::Tee, "bench-tee"), &mut r, t0())
        .unwrap();
    let v = p
        .trust_store(CaRole::Tee)
        .unwrap()
        .verify(
            &tee.cert_der,
            &[p.ca_cert_der(CaRole::Tee, CaLevel::Issuing).unwrap()],
            Usage::TeeAttestation,
            t0(),
        )
        .unwrap();
    assert_eq!(v.info.ueid.as_ref().map(Vec::len), Some(17));
    // A server certificate with extra names.
    let mut srv = IssueRequest::new(CertKind::Server, "tam.example.org");
    srv.ips.push("10.0.0.5".parse().unwrap());
    let s = p.issue(&srv, &mut r, t0()).unwrap();
    let info = otrp_pki::cert::CertInfo::from_der(&s.cert_der).unwrap();
    assert_eq!(
        info.dns_names,
        vec!["localhost".to_owned(), "tam.example.org".to_owned()]
    );
}

#[test]
fn directory_round_trip_and_refusal_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki(KeyAlg::P256, 16, t0());
    fs::create_pki(dir.path(), &p, false).unwrap();
    // Every file the index names exists, and nothing else but pki.json.
    let mut on_disk = Vec::new();
    for entry in walk(dir.path()) {
        on_disk.push(
            entry
                .strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    on_disk.sort();
    let mut listed: Vec<String> = p.index().files.iter().map(|f| f.path.clone()).collect();
    listed.push("pki.json".into());
    listed.sort();
    assert_eq!(on_disk, listed);
    // 8 CAs x (cert, key, CRL) + 4 leaves x (cert, key, chain).
    assert_eq!(p.index().files.len(), 8 * 3 + 4 * 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tam/root-ca.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let loaded = fs::load_pki(dir.path()).unwrap();
    assert_eq!(loaded.index_json().unwrap(), p.index_json().unwrap());
    assert!(loaded.files().eq(p.files()));
    let err = fs::create_pki(dir.path(), &p, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("already holds a PKI; pass --force to replace it"),
        "{err}"
    );
    let p2 = pki(KeyAlg::Ed25519, 17, t0());
    fs::create_pki(dir.path(), &p2, true).unwrap();
    assert_eq!(fs::load_pki(dir.path()).unwrap().alg(), KeyAlg::Ed25519);
    let empty = tempfile::tempdir().unwrap();
    let err = fs::load_pki(empty.path()).unwrap_err();
    assert!(matches!(err, PkiError::NotAPki { .. }), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
