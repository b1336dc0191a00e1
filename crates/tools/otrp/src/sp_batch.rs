//! `otrp sp batch`: batch mode for an SP (or the OEM with its token) — publish one
//! package for every device of a batch, follow the devices' reports.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use otrp_tam_server::publish;
use serde_json::json;

use crate::tam::{block_on, print_json, ApiClient, CliError};

/// `otrp sp batch`.
#[derive(Args, Debug)]
pub struct BatchArgs {
    #[command(subcommand)]
    command: BatchCommand,
}

#[derive(Subcommand, Debug)]
enum BatchCommand {
    /// Publish the next package of a batch: the TAM signs it once for all its devices.
    #[command(long_about = PUBLISH_HELP)]
    Publish(PublishArgs),
    /// Packages of a batch (or of all your batches) with applied/failed report counts.
    #[command(long_about = STATUS_HELP)]
    Status(StatusArgs),
}

const PUBLISH_HELP: &str = "\
Batch mode: devices provisioned with `otrp device provision --batch NAME` share a batch
key. For their batch the TAM builds ONE TEEP Update (the newest ready manifest of each
--component, after its SD's manifest), signs it ONCE, and serves the same bytes to every
device at GET /tam/batch/NAME (cacheable, ETag). Each package gets the next batch
sequence number; a device applies only a newer package than the last it applied, so an
old package can never roll it back. Devices report back asynchronously; see
`otrp sp batch status`.

With --ta, the TA is first built and signed HERE with your key, its image encrypted to the
batch public key (--batch-key, PKI_DIR/batch/NAME.pub.pem) so that only devices of the
batch can install it, and uploaded as manifest --seq of --component.

The first account that publishes to a batch owns it; other SPs cannot publish into it.
Devices must have run one attested TEEP session (their first contact) before the TAM
accepts their reports.

Examples:
  # the TA is already in the catalog
  otrp sp --pki pki --token $SP_TOKEN batch publish --batch lot-7 --component sd1/sensor-ta

  # build, encrypt to the batch, sign, upload, then publish the package
  otrp sp --pki pki --token $SP_TOKEN batch publish --batch lot-7 \\
      --component sd1/sensor-ta --ta sensor.wasm --seq 3 \\
      --key pki/issued/sp/sp1.key.pem --cert pki/issued/sp/sp1.chain.pem \\
      --batch-key pki/batch/lot-7.pub.pem

Next: `otrp sp batch status --batch lot-7`.";

const STATUS_HELP: &str = "\
Show the packages of a batch (sequence number, contents, size, TAM signatures) with how
many devices reported each one applied or failed, and the reports on the newest package.
Without --batch, the newest package of each batch you own.

Example:
  otrp sp --pki pki --token $SP_TOKEN batch status --batch lot-7";

#[derive(Args, Debug)]
struct PublishArgs {
    /// The batch id (as given to `otrp device provision --batch`).
    #[arg(long, value_name = "ID")]
    batch: String,
    /// Component to install, SD/NAME (repeatable): its newest ready manifest.
    #[arg(long, value_name = "ID")]
    component: Vec<String>,
    /// Component to remove from the batch's devices, SD/NAME (repeatable).
    #[arg(long, value_name = "ID")]
    remove: Vec<String>,
    /// First build, batch-encrypt, sign and upload this TA image as --component.
    #[arg(long, value_name = "TA", requires_all = ["seq", "key", "cert", "batch_key"])]
    ta: Option<PathBuf>,
    /// Manifest sequence number of --ta (must exceed the last published one).
    #[arg(long, value_name = "N")]
    seq: Option<u64>,
    /// Your SP signing key (PKCS#8 PEM), with --ta; it is only read here.
    #[arg(long, value_name = "SP_KEY")]
    key: Option<PathBuf>,
    /// Your signer certificate chain (PEM, leaf first), with --ta.
    #[arg(long, value_name = "SP_CERT")]
    cert: Option<PathBuf>,
    /// The batch public key (SPKI PEM, PKI_DIR/batch/ID.pub.pem), with --ta.
    #[arg(long, value_name = "PUB_PEM")]
    batch_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// The batch id (default: every batch you own).
    #[arg(long, value_name = "ID")]
    batch: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

fn read_text(path: &Option<PathBuf>, what: &str, flag: &str) -> Result<String, CliError> {
    let path = path
        .as_ref()
        .ok_or_else(|| CliError::new(format!("--ta needs {flag}"), format!("pass {flag}")))?;
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            format!("cannot read {what} {}: {e}", path.display()),
            "check the path",
        )
    })
}

fn upload_ta(client: &ApiClient, a: &PublishArgs, ta: &PathBuf) -> Result<(), CliError> {
    let [component] = a.component.as_slice() else {
        return Err(CliError::new(
            "--ta needs exactly one --component",
            "name the component the TA is published as",
        ));
    };
    let image = std::fs::read(ta).map_err(|e| {
        CliError::new(
            format!("cannot read TA {}: {e}", ta.display()),
            "check the path",
        )
    })?;
    let key = otrp_crypto::PrivateKey::from_pem(&read_text(&a.key, "SP key", "--key")?)
        .map_err(|e| CliError::new(format!("SP key: {e}"), "pass a PKCS#8 PEM key"))?;
    let chain = read_text(&a.cert, "signer chain", "--cert")?;
    let public = read_text(&a.batch_key, "batch public key", "--batch-key")?;
    let seq = a
        .seq
        .ok_or_else(|| CliError::new("--ta needs --seq", "pass --seq N"))?;
    let env = publish::ta_envelope_for_batch(
        otrp_crypto::default_provider(),
        &key,
        component,
        seq,
        &image,
        &a.batch,
        &public,
    )
    .map_err(|e| CliError::new(e, "use --component SD/NAME and the batch's .pub.pem"))?;
    let v = block_on(client.post(
        "/api/v1/components",
        &publish::upload_body(&env, &chain, None),
    ))??;
    println!(
        "uploaded {} #{} ({} bytes, image encrypted to batch {}; status {})",
        v["component"].as_str().unwrap_or("?"),
        v["seq"],
        env.len(),
        a.batch,
        v["status"].as_str().unwrap_or("?")
    );
    Ok(())
}

fn print_package(p: &serde_json::Value) {
    println!(
        "{} #{}: {} · {} bytes · {} TAM signature(s) · applied {} · failed {}",
        p["batch_id"].as_str().unwrap_or("?"),
        p["seq"],
        p["contents"].as_str().unwrap_or("?"),
        p["size"],
        p["tam_signatures"],
        p["applied"],
        p["failed"]
    );
}

/// Runs `otrp sp batch …`.
pub fn run(client: &ApiClient, args: &BatchArgs) -> Result<(), CliError> {
    match &args.command {
        BatchCommand::Publish(a) => {
            if let Some(ta) = &a.ta {
                upload_ta(client, a, ta)?;
            }
            let v = block_on(client.post(
                &format!("/api/v1/batches/{}/packages", a.batch),
                &json!({"components": a.component, "remove": a.remove}),
            ))??;
            print!("published ");
            print_package(&v);
            println!(
                "devices of batch {} fetch it at {}",
                a.batch,
                v["url"].as_str().unwrap_or("?")
            );
            println!("next: otrp sp batch status --batch {}", a.batch);
            Ok(())
        }
        BatchCommand::Status(s) => {
            let path = match &s.batch {
                Some(b) => format!("/api/v1/batches/{b}"),
                None => "/api/v1/batches".into(),
            };
            let v = block_on(client.get(&path))??;
            if s.json {
                print_json(&v);
                return Ok(());
            }
            if s.batch.is_none() {
                let all = v.as_array().cloned().unwrap_or_default();
                if all.is_empty() {
                    println!("no batch packages yet; publish one with `otrp sp batch publish`");
                }
                for p in &all {
                    print_package(p);
                }
                return Ok(());
            }
            for p in v["packages"].as_array().into_iter().flatten() {
                print_package(p);
            }
            let reports = v["latest_reports"].as_array().cloned().unwrap_or_default();
            println!("reports on the newest package: {}", reports.len());
            for r in reports.iter().filter(|r| r["success"] != true) {
                println!(
                    "  failed on {}: {}",
                    r["device_id"].as_str().unwrap_or("?"),
                    r["detail"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}
