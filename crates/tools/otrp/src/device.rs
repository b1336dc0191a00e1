//! `otrp device`: the factory step (provision) and a look inside a provisioned device.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::{Args, Subcommand, ValueEnum};
use otrp_crypto::default_provider;
use otrp_pki::device::{provision, MgmtConfig, ProvisionRequest, Provisioned};
use otrp_pki::{fs, CaRole, Usage};

/// Provision simulated devices (TEE and TFW identities, sealed state) and inspect them.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// Provision one device (or --count N) from a PKI: the factory step.
    #[command(long_about = PROVISION_HELP)]
    Provision(ProvisionArgs),
    /// Open a device directory as its TEE would and show what it holds (no secrets).
    #[command(long_about = SHOW_HELP)]
    Show(ShowArgs),
}

const PROVISION_HELP: &str = "\
Provision one device (or --count N) from the PKI in --pki DIR: the factory step.

For each device this makes a TEE attestation key and certificate (TEE CA), a TFW key
and certificate (TFW/OEM CA), both bound to the device by a SAN URI urn:otrp:ueid:<hex>;
a device-unique 32-byte storage key (the simulated eFuse); a ueid (0x01 + 16 random
bytes, RFC 9711 RAND); the PKI's oemid, --model as hwmodel, --hw-version; the trust
anchors it accepts (TAM root, SP root, OEM public key); its management configuration;
and, with --batch NAME, the batch key shared by every device of that batch (created in
DIR/batch/ on first use).

Writes into DEVDIR (or DEVDIR/dev-0001 ... with --count):
  device.json          public facts: ueid, oemid, model, config, did, tee_kid, files
  tee.pem, tee-chain.pem, tee.pub.pem, tfw.pem, tfw-chain.pem
  sealed-state.cbor    the TEE's initial state, AES-256-GCM under the storage key
  efuse.key            the storage key (hardware on a real device; mode 0600)
and DEVDIR/fleet.json listing the devices when --count is given.

Next: `otrp device show DEVDIR` opens the sealed state; the TEE daemon boots from it.";

const SHOW_HELP: &str = "\
Open a device directory as its TEE does at boot: read efuse.key, unseal
sealed-state.cbor, and show the identity (ueid, model, configuration, certificates,
trust anchors, batch). With --pki DIR the TEE and TFW certificates are also validated
against that PKI's roots and CRLs. Private keys are never printed.";

/// `--config`: the management configuration of DESIGN §3.1 (also `otrp fleet run`).
#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ConfigArg {
    /// SP needs an OEM authorization once, then manages SDs and TAs alone
    OemGated,
    /// only the OEM's TAM creates SDs; approved SPs manage TAs inside them
    OemOwnedSd,
    /// every operation needs both an OEM and an SP signature
    DualControl,
}

impl From<ConfigArg> for MgmtConfig {
    fn from(c: ConfigArg) -> Self {
        match c {
            ConfigArg::OemGated => MgmtConfig::OemGated,
            ConfigArg::OemOwnedSd => MgmtConfig::OemOwnedSd,
            ConfigArg::DualControl => MgmtConfig::DualControl,
        }
    }
}

#[derive(Args, Debug)]
struct ProvisionArgs {
    /// The PKI directory (from `otrp pki init`).
    #[arg(long = "pki", value_name = "DIR")]
    pki: PathBuf,
    /// Device model (EAT hwmodel).
    #[arg(long)]
    model: String,
    /// Output directory: the device itself, or the parent of dev-0001 ... with --count.
    #[arg(long, value_name = "DEVDIR")]
    out: PathBuf,
    /// Provision N devices into DEVDIR/dev-0001 ... DEVDIR/dev-NNNN.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: Option<u32>,
    /// Management configuration (DESIGN §3.1).
    #[arg(long, value_enum, default_value_t = ConfigArg::OemGated)]
    config: ConfigArg,
    /// Join batch NAME: its key is shared by all its devices.
    #[arg(long, value_name = "NAME")]
    batch: Option<String>,
    /// With --batch: also give each device a report key derived from the batch's report
    /// master secret (PKI_DIR/batch/NAME.report-master.key, created on first use). The
    /// devices then MAC their batch reports (one HMAC for the TAM to check, not a
    /// signature); the TAM needs the master in tam.toml ([[batch_report_master]]).
    #[arg(long, requires = "batch")]
    report_key: bool,
    /// Hardware version (EAT hwversion).
    #[arg(long, default_value = "1.0")]
    hw_version: String,
    /// Validity of the device certificates in days.
    #[arg(long, default_value_t = otrp_pki::DEVICE_DAYS)]
    days: u32,
    /// Overwrite devices already in the output directory.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The device directory.
    dir: PathBuf,
    /// Also validate the device certificates against this PKI.
    #[arg(long = "pki", value_name = "DIR")]
    pki: Option<PathBuf>,
}

/// Runs `otrp device ...`.
pub fn run(args: &DeviceArgs) -> ExitCode {
    let result = match &args.command {
        DeviceCommand::Provision(a) => provision_cmd(a),
        DeviceCommand::Show(a) => show(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn provision_cmd(a: &ProvisionArgs) -> anyhow::Result<()> {
    let mut pki = fs::load_pki(&a.pki)?;
    let req = ProvisionRequest {
        model: a.model.clone(),
        hwversion: a.hw_version.clone(),
        config: a.config.into(),
        batch: a.batch.clone(),
        report_key: a.report_key,
        days: Some(a.days),
    };
    let dirs: Vec<PathBuf> = match a.count {
        None => vec![a.out.clone()],
        Some(n) => (1..=n).map(|i| a.out.join(format!("dev-{i:04}"))).collect(),
    };
    if !a.force {
        if let Some(d) = dirs.iter().find(|d| d.join(fs::DEVICE_JSON).exists()) {
            anyhow::bail!(
                "{} already holds a device; pass --force to replace it (or choose another --out)",
                d.display()
            );
        }
    }
    let bar = if dirs.len() > 1 {
        let bar = indicatif::ProgressBar::new(dirs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} provisioning [{bar:40}] {pos}/{len} devices, {per_sec}, eta {eta}",
            )
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let mut rng = rand::rngs::OsRng;
    let mut fleet = Vec::with_capacity(dirs.len());
    let mut last: Option<Provisioned> = None;
    let mut batch_created = false;
    for dir in &dirs {
        let dev = provision(
            &mut pki,
            &req,
            default_provider(),
            &mut rng,
            SystemTime::now(),
        )?;
        batch_created |= dev.batch_created;
        if batch_created && fleet.is_empty() {
            // Save the new batch key before any device depends on it.
            fs::save_pki(&a.pki, &pki)?;
        }
        fs::write_device(dir, &dev, a.force)?;
        fleet.push(serde_json::json!({
            "dir": dir.file_name().map(|f| f.to_string_lossy().into_owned()),
            "ueid": dev.public.ueid,
            "did": dev.public.did,
        }));
        if let Some(b) = &bar {
            b.inc(1);
        }
        last = Some(dev);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed();
    if a.count.is_some() {
        let doc = serde_json::json!({
            "model": a.model,
            "config": MgmtConfig::from(a.config).as_str(),
            "batch": a.batch,
            "devices": fleet,
        });
        fs::write_file(
            &a.out.join("fleet.json"),
            serde_json::to_string_pretty(&doc)?.as_bytes(),
            false,
        )?;
    }
    let Some(dev) = last else {
        anyhow::bail!("no device provisioned");
    };
    let p = &dev.public;
    if dirs.len() == 1 {
        let d = dirs.first().map_or(a.out.as_path(), PathBuf::as_path);
        println!(
            "Provisioned device {} ({} {}) in {}.",
            p.ueid,
            p.model,
            p.hwversion,
            d.display()
        );
        print_device(d, &dev)?;
    } else {
        println!(
            "Provisioned {} {} devices into {}/dev-0001 .. dev-{:04} in {:.2} s ({:.0} devices/s); list in {}/fleet.json.",
            dirs.len(),
            p.model,
            a.out.display(),
            dirs.len(),
            elapsed.as_secs_f64(),
            dirs.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            a.out.display()
        );
        println!(
            "Each: TEE cert {} bytes, TFW cert {} bytes, sealed state {} bytes.",
            dev.identity.tee.cert.len(),
            dev.identity.tfw.cert.len(),
            dev.sealed.len()
        );
    }
    if let Some(b) = &a.batch {
        println!(
            "Batch {b:?}: key {} in {}/batch/{b}.pub.pem.",
            if batch_created { "created" } else { "reused" },
            a.pki.display()
        );
        if a.report_key {
            println!(
                "Report keys: derived from {}/batch/{b}.report-master.key; give that file to the TAM \
                 (tam.toml: [[batch_report_master]] batch = {b:?}, file = ...).",
                a.pki.display()
            );
        }
    }
    let example = dirs.first().map_or(a.out.clone(), Clone::clone);
    println!("\nNext:");
    println!(
        "  otrp device show {} --pki {}",
        example.display(),
        a.pki.display()
    );
    println!(
        "  openssl verify -CAfile {p}/tee/root-ca.pem -untrusted {d}/tee-chain.pem {d}/tee.pem",
        p = a.pki.display(),
        d = example.display()
    );
    Ok(())
}

fn print_device(dir: &Path, dev: &Provisioned) -> anyhow::Result<()> {
    let p = &dev.public;
    let f = &p.files;
    let d = dir.display();
    println!("  config      {}", p.config);
    println!("  oemid       {}", p.oemid);
    println!("  did         {} (SHA-256 of the TEE certificate)", p.did);
    println!("  TEE kid     {} (RFC 9679 thumbprint)", p.tee_kid);
    println!(
        "  {d}/{}  TEE certificate, {} bytes",
        f.tee_cert,
        dev.identity.tee.cert.len()
    );
    println!(
        "  {d}/{}  TFW certificate, {} bytes",
        f.tfw_cert,
        dev.identity.tfw.cert.len()
    );
    println!(
        "  {d}/{}  sealed state, {} bytes (AES-256-GCM)",
        f.sealed_state,
        dev.sealed.len()
    );
    println!("  {d}/{}  storage key (simulated eFuse)", f.efuse_key);
    println!("  {d}/{}  public description", fs::DEVICE_JSON);
    Ok(())
}

fn show(a: &ShowArgs) -> anyhow::Result<()> {
    let (public, id) = fs::load_device(&a.dir, default_provider())?;
    println!("Device {} in {}", public.ueid, a.dir.display());
    println!("  model       {} (hwversion {})", id.hwmodel, id.hwversion);
    println!("  oemid       {}", hex::encode(&id.oemid));
    println!("  config      {}", id.config);
    println!("  provisioned {}", otrp_pki::rfc3339(id.provisioned_at));
    println!("  did         {}", public.did);
    println!("  TEE kid     {}", public.tee_kid);
    for (name, kc) in [("TEE", &id.tee), ("TFW", &id.tfw)] {
        let info = otrp_pki::cert::CertInfo::from_der(&kc.cert)?;
        println!(
            "  {name} key     {} ; cert {} ({} bytes, valid to {})",
            kc.key.key_type(),
            info.subject,
            kc.cert.len(),
            otrp_pki::rfc3339(info.not_after)
        );
    }
    println!(
        "  anchors     {} TAM root(s), {} SP root(s), {} OEM key(s)",
        id.anchors.tam_roots.len(),
        id.anchors.sp_roots.len(),
        id.anchors.oem_keys.len()
    );
    for der in id.anchors.tam_roots.iter().chain(&id.anchors.sp_roots) {
        let info = otrp_pki::cert::CertInfo::from_der(der)?;
        println!("              {}", info.subject);
    }
    match &id.batch {
        Some(b) => println!(
            "  batch       {} ({} key{})",
            b.name,
            b.key.key_type(),
            if b.report_key.is_some() {
                ", report key: MAC'd reports"
            } else {
                ", signed reports"
            }
        ),
        None => println!("  batch       none"),
    }
    if let Some(pki_dir) = &a.pki {
        let pki = fs::load_pki(pki_dir)?;
        let now = SystemTime::now();
        for (name, role, usage, kc) in [
            ("TEE", CaRole::Tee, Usage::TeeAttestation, &id.tee),
            ("TFW", CaRole::Tfw, Usage::TfwAttestation, &id.tfw),
        ] {
            match pki
                .trust_store(role)?
                .verify(&kc.cert, &kc.chain, usage, now)
            {
                Ok(_) => println!("  {name} chain   OK under {}", pki_dir.display()),
                Err(e) => println!("  {name} chain   REFUSED: {e}"),
            }
        }
    }
    Ok(())
}
