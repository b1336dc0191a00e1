//! OpenSSL accepts every chain `pki init` and `device provision` write (with and without
//! CRL checks), and refuses a revoked one. Skipped, with a message, when there is no
//! `openssl` binary.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use common::rng;
use otrp_crypto::default_provider;
use otrp_pki::device::{provision, MgmtConfig, ProvisionRequest};
use otrp_pki::{fs, CertKind, InitOptions, KeyAlg, Pki};

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `openssl verify`; returns (success, combined output).
fn verify(
    root: &Path,
    issuing: Option<&Path>,
    crls: &[&Path],
    purpose: Option<&str>,
    leaf: &Path,
) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(root);
    if let Some(i) = issuing {
        cmd.arg("-untrusted").arg(i);
    }
    if !crls.is_empty() {
        cmd.arg("-crl_check_all");
        for c in crls {
            cmd.arg("-CRLfile").arg(c);
        }
    }
    if let Some(p) = purpose {
        cmd.arg("-purpose").arg(p);
    }
    cmd.arg(leaf);
    let out = cmd.output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains(": OK"), text)
}

/// Checks every chain of the PKI in `dir` and of the devices in `devs`; returns how many.
fn check_all(dir: &Path, pki: &Pki, devs: &[&Path]) -> usize {
    let mut n = 0;
    let ca = |role: &str, f: &str| dir.join(role).join(f);
    for role in ["tee", "tfw", "tam", "sp"] {
        let root = ca(role, "root-ca.pem");
        let root_crl = ca(role, "root-ca.crl.pem");
        // The issuing CA under its root.
        for crls in [vec![], vec![root_crl.as_path()]] {
            let (ok, out) = verify(&root, None, &crls, None, &ca(role, "issuing-ca.pem"));
            assert!(ok, "{role} issuing CA: {out}");
            n += 1;
        }
    }
    for rec in &pki.index().issued {
        let role = rec.kind.ca().as_str();
        let root = ca(role, "root-ca.pem");
        let issuing = ca(role, "issuing-ca.pem");
        let crls = [ca(role, "root-ca.crl.pem"), ca(role, "issuing-ca.crl.pem")];
        let purpose = (rec.kind == CertKind::Server).then_some("sslserver");
        let leaf = dir.join(&rec.cert);
        let (ok, out) = verify(&root, Some(&issuing), &[], purpose, &leaf);
        assert!(ok, "{}: {out}", rec.cert);
        let (ok, out) = verify(&root, Some(&issuing), &[&crls[0], &crls[1]], purpose, &leaf);
        assert!(ok, "{} with CRLs: {out}", rec.cert);
        // The chain file works as the untrusted set too.
        let (ok, out) = verify(&root, Some(&dir.join(&rec.chain)), &[], purpose, &leaf);
        assert!(ok, "{} with its chain file: {out}", rec.chain);
        n += 3;
    }
    for dev in devs {
        for (role, leaf, chain) in [
            ("tee", "tee.pem", "tee-chain.pem"),
            ("tfw", "tfw.pem", "tfw-chain.pem"),
        ] {
            let root = ca(role, "root-ca.pem");
            let crls = [ca(role, "root-ca.crl.pem"), ca(role, "issuing-ca.crl.pem")];
            let (ok, out) = verify(
                &root,
                Some(&ca(role, "issuing-ca.pem")),
                &[&crls[0], &crls[1]],
                None,
                &dev.join(leaf),
            );
            assert!(ok, "{}: {out}", dev.join(leaf).display());
            let (ok, out) = verify(&root, Some(&dev.join(chain)), &[], None, &dev.join(leaf));
            assert!(ok, "{}: {out}", dev.join(chain).display());
            n += 2;
        }
    }
    n
}

fn run(alg: KeyAlg, seed: u64) {
    if !openssl_available() {
        eprintln!("SKIPPED: no openssl binary; OpenSSL interop of {alg} chains not checked");
        return;
    }
    // OpenSSL checks validity against the real clock, so issue at the real time.
    let now = SystemTime::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let mut r = rng(seed);
    let mut pki = Pki::init(
        &InitOptions {
            alg,
            ..InitOptions::default()
        },
        &mut r,
        now,
    )
    .unwrap();
    let mut devs = Vec::new();
    for (i, config) in [MgmtConfig::OemGated, MgmtConfig::DualControl]
        .into_iter()
        .enumerate()
    {
        let mut req = ProvisionRequest::new("doorlock");
        req.config = config;
        req.batch = Some("b1".into());
        let dev = provision(&mut pki, &req, default_provider(), &mut r, now).unwrap();
        let d = tmp.path().join(format!("dev-{i}"));
        fs::write_device(&d, &dev, false).unwrap();
        devs.push(d);
    }
    fs::create_pki(&dir, &pki, false).unwrap();
    let dev_refs: Vec<&Path> = devs.iter().map(|d| d.as_path()).collect();
    let n = check_all(&dir, &pki, &dev_refs);
    eprintln!("{alg}: openssl verify accepted {n} chains");

    // Revoke the TAM certificate and the first device's TEE certificate: OpenSSL now
    // refuses them with CRL checks, and still accepts the rest.
    let tam = pki.issued_cert_der(CertKind::Tam, "tam1").unwrap();
    pki.revoke(&tam, now).unwrap();
    let tee_pem = std::fs::read_to_string(devs[0].join("tee.pem")).unwrap();
    let tee = otrp_pki::cert::certs_from_pem(&tee_pem).unwrap().remove(0);
    pki.revoke(&tee, now).unwrap();
    fs::save_pki(&dir, &pki).unwrap();
    let ca = |role: &str, f: &str| dir.join(role).join(f);
    for (role, leaf) in [
        ("tam", dir.join("issued/tam/tam1.pem")),
        ("tee", devs[0].join("tee.pem")),
    ] {
        let (ok, out) = verify(
            &ca(role, "root-ca.pem"),
            Some(&ca(role, "issuing-ca.pem")),
            &[
                &ca(role, "root-ca.crl.pem"),
                &ca(role, "issuing-ca.crl.pem"),
            ],
            None,
            &leaf,
        );
        assert!(!ok, "revoked {} accepted: {out}", leaf.display());
        assert!(out.contains("certificate revoked"), "{out}");
    }
    let (ok, out) = verify(
        &ca("tee", "root-ca.pem"),
        Some(&ca("tee", "issuing-ca.pem")),
        &[
            &ca("tee", "root-ca.crl.pem"),
            &ca("tee", "issuing-ca.crl.pem"),
        ],
        None,
        &devs[1].join("tee.pem"),
    );
    assert!(ok, "unrevoked device refused: {out}");
}

#[test]
fn openssl_verifies_p256_chains() {
    run(KeyAlg::P256, 41);
}

#[test]
fn openssl_verifies_ed25519_chains() {
    run(KeyAlg::Ed25519, 42);
}

#[test]
fn openssl_verifies_rsa2048_chains() {
    run(KeyAlg::Rsa2048, 43);
}
