//! `otrp pki`: the development PKI (init, issue, revoke, crl, verify, show, export).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use otrp_crypto::{default_provider, PrivateKey, PublicKey};
use otrp_pki::cert::{certs_from_pem, CertInfo};
use otrp_pki::{
    fs, CaLevel, CaRole, CertKind, InitOptions, IssueRequest, KeyAlg, Pki, TrustStore, Usage,
};

/// Create and run a development PKI: CAs for TEE, TFW/OEM, TAM and SP (OTrP §4.4).
#[derive(Args, Debug)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// Create a complete development PKI in DIR.
    #[command(long_about = INIT_HELP)]
    Init(InitArgs),
    /// Issue another TAM, SP, server, OEM or device certificate from a PKI.
    #[command(long_about = ISSUE_HELP)]
    Issue(IssueArgs),
    /// Revoke a certificate: add it to its CA's CRL and reissue that CRL.
    #[command(long_about = REVOKE_HELP)]
    Revoke(RevokeArgs),
    /// Reissue every CRL of a PKI (new number, a fresh year of validity).
    Crl(CrlArgs),
    /// Validate a certificate chain against a PKI's roots and CRLs.
    #[command(long_about = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Show what a PKI holds: CAs, CRLs, issued certificates, batches.
    Show(ShowArgs),
    /// Convert a key between PEM, COSE_Key and JWK.
    #[command(long_about = EXPORT_HELP)]
    Export(ExportArgs),
}

const INIT_HELP: &str = "\
Create a complete development PKI in DIR.

Writes, all with keys of --alg:
  DIR/<role>/root-ca.pem, issuing-ca.pem (+ .key.pem, .crl.pem)
      for role = tee (device attestation), tfw (trusted firmware and the OEM),
      tam (TAM signers and the TAM HTTPS server), sp (Service Provider TA signers)
  DIR/issued/tam/<tam-name>.pem     TAM signer; its tamid is in a SAN URI
                                    urn:otrp:tamid:<id> and in the subject CN
  DIR/issued/server/localhost.pem   TAM HTTPS server (localhost, 127.0.0.1, ::1)
  DIR/issued/sp/<sp-name>.pem       SP TA signer (EKU codeSigning)
  DIR/issued/oem/oem.pem            OEM signer (under the TFW/OEM CA)
  each leaf with .key.pem (PKCS#8, mode 0600) and .chain.pem (leaf + issuing CA)
  DIR/pki.json                      index describing every file

Next: `otrp device provision --pki DIR --model MODEL --out DEVDIR` makes devices;
`otrp pki issue` makes more certificates; `otrp pki show DIR` lists everything.";

const ISSUE_HELP: &str = "\
Issue another certificate from the PKI in --pki DIR.

Writes DIR/issued/<kind>/<name>.pem, .key.pem and .chain.pem and records them in
DIR/pki.json. Kinds: tam (TAM signer, --tamid sets its tamid, default the name;
reuse the tamid to renew a TAM), sp (SP TA signer), server (HTTPS server: localhost,
127.0.0.1, ::1 plus --dns/--ip), oem (OEM signer), tee and tfw (device keys; normally
made by `otrp device provision`).

Next: `otrp pki verify --pki DIR DIR/issued/<kind>/<name>.chain.pem`.";

const REVOKE_HELP: &str = "\
Revoke a certificate issued by this PKI (a leaf, a device certificate or an issuing
CA): adds its serial to the issuing CA's list in DIR/pki.json and rewrites that CA's
CRL (DIR/<role>/*.crl.pem) with a new CRL number.

Next: distribute the new CRL; `otrp pki verify` and `openssl verify -crl_check` now
refuse the certificate.";

const VERIFY_HELP: &str = "\
Validate a certificate against the PKI in --pki DIR with rustls-webpki: the path to
the role's root, signatures, validity at --at (default now), every CRL of the chain,
and the usage (a TAM signer must carry a tamid, a server serverAuth, a device
certificate a ueid). The role is taken from --kind, else from the certificate's
issuer. CERT may hold the leaf alone or the leaf followed by its chain.";

const EXPORT_HELP: &str = "\
Convert a key file to another format. KEY may be a PEM private key (PKCS#8, SEC1,
PKCS#1), a PEM public key (SPKI), a certificate (its public key is taken), a JWK
(JSON) or a COSE_Key (CBOR, binary or hex).

--format pem      PKCS#8 PRIVATE KEY, or SPKI PUBLIC KEY with --public
--format jwk      RFC 7517 JSON
--format cose-key RFC 9052 COSE_Key CBOR (written as bytes with --out, else as hex)

The RFC 9679 COSE_Key thumbprint (the `kid` OpenTrust uses) and the RFC 7638 JWK
thumbprint are printed on stderr.";

#[derive(Args, Debug)]
struct InitArgs {
    /// Directory to create the PKI in (created if missing).
    dir: PathBuf,
    /// Key algorithm for every key.
    #[arg(long, value_enum, default_value_t = AlgArg::P256)]
    alg: AlgArg,
    /// Replace a PKI already in DIR (its files are removed first).
    #[arg(long)]
    force: bool,
    /// Organization (O) in every subject.
    #[arg(long, default_value = "OpenTrust Development")]
    org: String,
    /// Name of the initial TAM signer certificate.
    #[arg(long, default_value = "tam1")]
    tam_name: String,
    /// tamid of the initial TAM (OTrP §5.4).
    #[arg(long, default_value = "tam1.opentrust.test")]
    tamid: String,
    /// Name of the initial SP signer certificate.
    #[arg(long, default_value = "sp1")]
    sp_name: String,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AlgArg {
    /// ECDSA P-256 (ES256)
    P256,
    /// Ed25519 (EdDSA)
    Ed25519,
    /// RSA-2048 (RS256)
    Rsa2048,
}

impl From<AlgArg> for KeyAlg {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::P256 => KeyAlg::P256,
            AlgArg::Ed25519 => KeyAlg::Ed25519,
            AlgArg::Rsa2048 => KeyAlg::Rsa2048,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum KindArg {
    /// TAM signer (carries a tamid)
    Tam,
    /// SP TA signer
    Sp,
    /// TEE attestation key
    Tee,
    /// trusted-firmware key
    Tfw,
    /// TLS server for the TAM
    Server,
    /// OEM signer
    Oem,
}

impl From<KindArg> for CertKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Tam => CertKind::Tam,
            KindArg::Sp => CertKind::Sp,
            KindArg::Tee => CertKind::Tee,
            KindArg::Tfw => CertKind::Tfw,
            KindArg::Server => CertKind::Server,
            KindArg::Oem => CertKind::Oem,
        }
    }
}

#[derive(Args, Debug)]
struct IssueArgs {
    /// The PKI directory.
    #[arg(long = "pki", value_name = "DIR")]
    pki: PathBuf,
    /// What to issue.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Name: the file stem under DIR/issued/<kind>/ and the subject CN.
    #[arg(long)]
    name: String,
    /// Validity in days (default: tam/sp/oem 730, server 397, tee/tfw 3650).
    #[arg(long)]
    days: Option<u32>,
    /// TAM only: the tamid (default: the name).
    #[arg(long)]
    tamid: Option<String>,
    /// Server only: another DNS name (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// Server only: another IP address (repeatable).
    #[arg(long)]
    ip: Vec<std::net::IpAddr>,
    /// Replace a certificate of the same kind and name (the old one stays valid until
    /// revoked).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct RevokeArgs {
    /// The PKI directory.
    #[arg(long = "pki", value_name = "DIR")]
    pki: PathBuf,
    /// The certificate to revoke (PEM; the first certificate of the file).
    #[arg(long)]
    cert: PathBuf,
}

#[derive(Args, Debug)]
struct CrlArgs {
    /// The PKI directory.
    #[arg(long = "pki", value_name = "DIR")]
    pki: PathBuf,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The PKI directory.
    #[arg(long = "pki", value_name = "DIR")]
    pki: PathBuf,
    /// The certificate (PEM): the leaf, optionally followed by intermediates.
    cert: PathBuf,
    /// What to check it for (default: from its issuer).
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Validate at this time (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
    /// Skip the CRL check.
    #[arg(long)]
    no_crl: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The PKI directory.
    dir: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum KeyFormat {
    /// PEM (PKCS#8 or SPKI)
    Pem,
    /// COSE_Key (CBOR)
    CoseKey,
    /// JWK (JSON)
    Jwk,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The key file to convert.
    key: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = KeyFormat::Pem)]
    format: KeyFormat,
    /// Export only the public key.
    #[arg(long)]
    public: bool,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Runs `otrp pki ...`.
pub fn run(args: &PkiArgs) -> ExitCode {
    let result = match &args.command {
        PkiCommand::Init(a) => init(a),
        PkiCommand::Issue(a) => issue(a),
        PkiCommand::Revoke(a) => revoke(a),
        PkiCommand::Crl(a) => crl(a),
        PkiCommand::Verify(a) => verify(a),
        PkiCommand::Show(a) => show(a),
        PkiCommand::Export(a) => export(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub(crate) fn human_date(secs: u64) -> String {
    otrp_pki::rfc3339(secs)
}

fn init(a: &InitArgs) -> anyhow::Result<()> {
    if fs::pki_exists(&a.dir) && !a.force {
        anyhow::bail!(otrp_pki::PkiError::AlreadyExists { dir: a.dir.clone() });
    }
    let opts = InitOptions {
        alg: a.alg.into(),
        organization: a.org.clone(),
        tam_name: a.tam_name.clone(),
        tamid: a.tamid.clone(),
        sp_name: a.sp_name.clone(),
        server_name: "localhost".into(),
    };
    let started = std::time::Instant::now();
    let pki = Pki::init(&opts, &mut rand::rngs::OsRng, SystemTime::now())?;
    fs::create_pki(&a.dir, &pki, a.force)?;
    let idx = pki.index();
    let d = a.dir.display();
    println!(
        "Created a {} development PKI in {d} (id {}, {} files + pki.json, {} ms).",
        idx.alg,
        idx.id,
        idx.files.len(),
        started.elapsed().as_millis()
    );
    println!("\nCertificate authorities (root -> issuing CA, one CRL each):");
    for role in CaRole::ALL {
        let issuing = pki.ca(role, CaLevel::Issuing)?;
        let der = pki.ca_cert_der(role, CaLevel::Issuing)?;
        println!(
            "  {:<4} {d}/{}  ({} bytes, valid to {})",
            role.as_str(),
            issuing.cert,
            der.len(),
            human_date(issuing.not_after)
        );
    }
    println!("\nIssued:");
    for rec in &idx.issued {
        let der = pki.issued_cert_der(rec.kind, &rec.name)?;
        let extra = rec
            .tamid
            .as_ref()
            .map(|t| format!(", tamid {t}"))
            .unwrap_or_default();
        println!(
            "  {:<6} {d}/{}  ({} bytes{extra})",
            rec.kind.as_str(),
            rec.cert,
            der.len()
        );
    }
    println!("\nIndex: {d}/pki.json (every file, its role and whether it is secret).");
    println!("\nNext:");
    println!("  otrp device provision --pki {d} --model MODEL --out devices/d1");
    println!("  otrp pki issue --pki {d} --kind tam --name tam2 --tamid tam2.example");
    println!("  openssl verify -CAfile {d}/tam/root-ca.pem -untrusted {d}/tam/issuing-ca.pem {d}/issued/tam/{}.pem", a.tam_name);
    Ok(())
}

fn issue(a: &IssueArgs) -> anyhow::Result<()> {
    let mut pki = fs::load_pki(&a.pki)?;
    let req = IssueRequest {
        kind: a.kind.into(),
        name: a.name.clone(),
        days: a.days,
        tamid: a.tamid.clone(),
        dns: a.dns.clone(),
        ips: a.ip.clone(),
        replace: a.force,
    };
    let issued = pki.issue(&req, &mut rand::rngs::OsRng, SystemTime::now())?;
    fs::save_pki(&a.pki, &pki)?;
    let r = &issued.record;
    let d = a.pki.display();
    println!(
        "Issued {} certificate {:?}: {} ({} bytes, serial {}, valid to {}{}).",
        r.kind,
        r.name,
        r.subject,
        issued.cert_der.len(),
        r.serial,
        human_date(r.not_after),
        r.tamid
            .as_ref()
            .map(|t| format!(", tamid {t}"))
            .unwrap_or_default()
    );
    println!("  certificate {d}/{}", r.cert);
    println!("  private key {d}/{}", r.key);
    println!("  chain       {d}/{}", r.chain);
    println!("\nNext: otrp pki verify --pki {d} {d}/{}", r.chain);
    Ok(())
}

fn first_cert(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    certs_from_pem(&text)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no PEM CERTIFICATE", path.display()))
}

fn revoke(a: &RevokeArgs) -> anyhow::Result<()> {
    let mut pki = fs::load_pki(&a.pki)?;
    let der = first_cert(&a.cert)?;
    let (role, level, rec) = pki.revoke(&der, SystemTime::now())?;
    fs::save_pki(&a.pki, &pki)?;
    let ca = pki.ca(role, level)?;
    println!(
        "Revoked serial {} ({}).\nReissued {}/{} (CRL number {}, {} revoked).",
        rec.serial,
        rec.subject,
        a.pki.display(),
        ca.crl,
        ca.crl_number,
        ca.revoked.len()
    );
    println!(
        "\nNext: otrp pki verify --pki {} {} now fails with \"revoked\".",
        a.pki.display(),
        a.cert.display()
    );
    Ok(())
}

fn crl(a: &CrlArgs) -> anyhow::Result<()> {
    let mut pki = fs::load_pki(&a.pki)?;
    pki.refresh_crls(SystemTime::now())?;
    fs::save_pki(&a.pki, &pki)?;
    for ca in &pki.index().cas {
        println!(
            "  {}/{}  number {}, {} revoked, next update {}",
            a.pki.display(),
            ca.crl,
            ca.crl_number,
            ca.revoked.len(),
            human_date(ca.crl_next_update)
        );
    }
    Ok(())
}

fn usage_for(kind: CertKind) -> Usage {
    match kind {
        CertKind::Tam => Usage::TamSigner,
        CertKind::Sp => Usage::SpSigner,
        CertKind::Tee => Usage::TeeAttestation,
        CertKind::Tfw => Usage::TfwAttestation,
        CertKind::Server => Usage::TlsServer,
        CertKind::Oem => Usage::OemSigner,
    }
}

/// Guesses the kind of a leaf from its subject OU and SANs.
fn guess_kind(info: &CertInfo) -> Option<CertKind> {
    if info.tamid.is_some() {
        return Some(CertKind::Tam);
    }
    let ou = info
        .subject
        .split(',')
        .find_map(|p| p.trim().strip_prefix("OU="))?;
    Some(match ou {
        "TAM" => CertKind::Server,
        "SP" => CertKind::Sp,
        "TEE" => CertKind::Tee,
        "TFW-OEM" if info.ueid.is_some() => CertKind::Tfw,
        "TFW-OEM" => CertKind::Oem,
        _ => return None,
    })
}

fn verify(a: &VerifyArgs) -> anyhow::Result<()> {
    let pki = fs::load_pki(&a.pki)?;
    let text = std::fs::read_to_string(&a.cert)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.cert.display()))?;
    let mut certs = certs_from_pem(&text)?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM CERTIFICATE", a.cert.display());
    }
    let leaf = certs.remove(0);
    let info = CertInfo::from_der(&leaf)?;
    let kind = match a.kind {
        Some(k) => k.into(),
        None => guess_kind(&info).ok_or_else(|| {
            anyhow::anyhow!(
                "cannot tell what {} is for ({}); pass --kind",
                a.cert.display(),
                info.subject
            )
        })?,
    };
    let role = kind.ca();
    // The issuing CA is added so that a bare leaf verifies.
    certs.push(pki.ca_cert_der(role, CaLevel::Issuing)?);
    let store = if a.no_crl {
        TrustStore::without_revocation(vec![pki.ca_cert_der(role, CaLevel::Root)?])?
    } else {
        pki.trust_store(role)?
    };
    let at =
        a.at.map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .unwrap_or_else(SystemTime::now);
    let v = store.verify(&leaf, &certs, usage_for(kind), at)?;
    println!(
        "OK: {} is a valid {kind} certificate under the {role} root ({}, path of {}, valid to {}{}).",
        v.info.subject,
        if a.no_crl { "CRLs not checked" } else { "not revoked" },
        v.path_len,
        human_date(v.info.not_after),
        v.info
            .tamid
            .as_ref()
            .map(|t| format!(", tamid {t}"))
            .or_else(|| v.info.ueid.as_ref().map(|u| format!(", ueid {}", hex::encode(u))))
            .unwrap_or_default()
    );
    Ok(())
}

fn show(a: &ShowArgs) -> anyhow::Result<()> {
    let pki = fs::load_pki(&a.dir)?;
    let idx = pki.index();
    println!(
        "PKI {} in {}: {}, organization {:?}, oemid {}",
        idx.id,
        a.dir.display(),
        idx.alg,
        idx.organization,
        idx.oemid
    );
    println!("\nCAs:");
    for ca in &idx.cas {
        println!(
            "  {:<18} {}  valid to {}, CRL #{} ({} revoked, next update {})",
            ca.label(),
            ca.cert,
            human_date(ca.not_after),
            ca.crl_number,
            ca.revoked.len(),
            human_date(ca.crl_next_update)
        );
        for r in &ca.revoked {
            println!(
                "      revoked {} {} at {}",
                r.serial,
                r.subject,
                human_date(r.revoked_at)
            );
        }
    }
    println!("\nIssued:");
    for r in &idx.issued {
        println!(
            "  {:<6} {:<20} {}  serial {}, valid to {}{}",
            r.kind.as_str(),
            r.name,
            r.cert,
            r.serial,
            human_date(r.not_after),
            r.tamid
                .as_ref()
                .map(|t| format!(", tamid {t}"))
                .unwrap_or_default()
        );
    }
    if !idx.batches.is_empty() {
        println!("\nBatches:");
        for b in &idx.batches {
            println!("  {:<20} {}", b.name, b.public);
        }
    }
    Ok(())
}

enum AnyKey {
    Private(PrivateKey),
    Public(PublicKey),
}

fn read_key(path: &Path) -> anyhow::Result<AnyKey> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let text = std::str::from_utf8(&bytes).ok().map(str::trim);
    if let Some(t) = text {
        if t.starts_with("-----BEGIN") {
            if t.contains("PRIVATE KEY-----") {
                return Ok(AnyKey::Private(PrivateKey::from_pem(t)?));
            }
            if t.contains("-----BEGIN CERTIFICATE-----") {
                let der = certs_from_pem(t)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("no certificate in {}", path.display()))?;
                return Ok(AnyKey::Public(CertInfo::from_der(&der)?.public_key()?));
            }
            return Ok(AnyKey::Public(PublicKey::from_pem(t)?));
        }
        if t.starts_with('{') {
            let jwk = otrp_crypto::jwk::parse(t)?;
            let is_private = jwk.get("d").is_some();
            return Ok(if is_private {
                AnyKey::Private(otrp_crypto::jwk::private_from_jwk(&jwk)?)
            } else {
                AnyKey::Public(otrp_crypto::jwk::public_from_jwk(&jwk)?)
            });
        }
    }
    // COSE_Key: binary CBOR, or hex of it.
    let cbor = match text.map(|t| t.split_whitespace().collect::<String>()) {
        Some(h) if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) => hex::decode(&h)?,
        _ => bytes,
    };
    let key = otrp_cose::cose_key_from_slice(&cbor)
        .map_err(|e| anyhow::anyhow!("{} is neither PEM, JWK nor COSE_Key: {e}", path.display()))?;
    let has_d = key.params.iter().any(|(l, _)| {
        *l == otrp_cose::coset::Label::Int(-4) || *l == otrp_cose::coset::Label::Int(-3)
    });
    Ok(if has_d {
        match otrp_cose::private_from_cose_key(&key) {
            Ok(k) => AnyKey::Private(k),
            Err(_) => AnyKey::Public(otrp_cose::public_from_cose_key(&key)?),
        }
    } else {
        AnyKey::Public(otrp_cose::public_from_cose_key(&key)?)
    })
}

fn export(a: &ExportArgs) -> anyhow::Result<()> {
    use otrp_cose::coset::CborSerializable;
    let key = read_key(&a.key)?;
    let key = match key {
        AnyKey::Private(k) if a.public => AnyKey::Public(k.public_key()),
        other => other,
    };
    let public = match &key {
        AnyKey::Private(k) => k.public_key(),
        AnyKey::Public(k) => k.clone(),
    };
    let binary: Vec<u8> = match (a.format, &key) {
        (KeyFormat::Pem, AnyKey::Private(k)) => k.to_pkcs8_pem()?.into_bytes(),
        (KeyFormat::Pem, AnyKey::Public(k)) => k.to_spki_pem()?.into_bytes(),
        (KeyFormat::Jwk, AnyKey::Private(k)) => {
            let mut s = serde_json::to_string_pretty(&otrp_crypto::jwk::private_to_jwk(k))?;
            s.push('\n');
            s.into_bytes()
        }
        (KeyFormat::Jwk, AnyKey::Public(k)) => {
            let mut s = serde_json::to_string_pretty(&otrp_crypto::jwk::public_to_jwk(k))?;
            s.push('\n');
            s.into_bytes()
        }
        (KeyFormat::CoseKey, AnyKey::Private(k)) => otrp_cose::cose_key_from_private(k)
            .to_vec()
            .map_err(|e| anyhow::anyhow!("COSE_Key encoding: {e:?}"))?,
        (KeyFormat::CoseKey, AnyKey::Public(k)) => otrp_cose::cose_key_from_public(k)
            .to_vec()
            .map_err(|e| anyhow::anyhow!("COSE_Key encoding: {e:?}"))?,
    };
    let provider = default_provider();
    eprintln!(
        "{} {} key; kid (RFC 9679 COSE_Key thumbprint) {}; RFC 7638 JWK thumbprint {}",
        match key {
            AnyKey::Private(_) => "private",
            AnyKey::Public(_) => "public",
        },
        public.key_type(),
        hex::encode(otrp_crypto::thumbprint::cose_key_thumbprint(
            &public, provider
        )),
        otrp_crypto::jwk::thumbprint_b64(&public, provider)
    );
    match &a.out {
        Some(path) => {
            let secret = matches!(key, AnyKey::Private(_));
            fs::write_file(path, &binary, secret)?;
            eprintln!("wrote {} ({} bytes)", path.display(), binary.len());
        }
        None if a.format == KeyFormat::CoseKey => println!("{}", hex::encode(&binary)),
        None => print!("{}", String::from_utf8_lossy(&binary)),
    }
    Ok(())
}
