//! `otrp sp batch`: batch mode for an SP (or the OEM with its token) — publish one
//! package for every device of a batch, follow the devices' reports. With
//! `--profile otrp`, the OTrP batch command package (our extension): the OEM registers a
//! model's shared device key (`register-key`), an SP or the OEM publishes CreateSD +
//! InstallTA/UpdateTA for the model, and follows the devices' signed results.

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
    /// OEM: register a device model's shared key for OTrP batch packages (--profile otrp).
    #[command(long_about = REGISTER_KEY_HELP)]
    RegisterKey(RegisterKeyArgs),
}

/// Which batch package: TEEP (CBOR/COSE) or the OTrP batch command package (JSON/JOSE).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
enum ProfileArg {
    /// TEEP batch mode: one token-less TEEP Update per batch (GET /tam/batch/ID).
    #[default]
    Teep,
    /// OTrP batch command package: one OTrPBatchPackage per device model
    /// (GET /tam/otrp-batch/MODEL).
    Otrp,
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

With --data, the package also carries DATA for a TA (--for-ta SD/TA): the same bytes for
every device of the batch, e.g. the access list of every lock of a lot or the no-fly
zones of every drone of a fleet. The data is signed HERE as manifest --data-seq of the
component SD/TA/perso, encrypted to the batch public key (--batch-key), uploaded, and put
into the package after the TAs. A device installs it only for a TA it has, or gets in the
same package (add --component SD/TA for devices that may lack it); the TA reads it as its
personalization data. A new data set needs a higher --data-seq (devices refuse an older
one) and a new package. The TAM refuses data that is not encrypted to the batch, because
anyone may fetch a batch package. Data that differs per device does not belong in a
batch package: use `otrp sp personalize --target device:ID`.

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

  # fleet-wide data for an installed TA: new no-fly zones for every drone of the lot
  otrp sp --pki pki --token $SP_TOKEN batch publish --batch lot-7 \\
      --data zones.json --for-ta drones/geofence --data-seq 2 \\
      --key pki/issued/sp/sp1.key.pem --cert pki/issued/sp/sp1.chain.pem \\
      --batch-key pki/batch/lot-7.pub.pem

Next: `otrp sp batch status --batch lot-7`.

With --profile otrp (OTrP batch command package, our extension; docs/CONSTRAINED.md):
--batch names the device MODEL, i.e. the batch its devices were provisioned with (they
share its key). The TAM builds ONE OTrPBatchPackage: for each --component (SD/TA, the
newest ready manifest) a CreateSD of its SD (unless --no-create-sd; --update implies it)
and an InstallTA (UpdateTA with --update), every content and TA key encrypted to the
model's shared key, which the OEM registered first (`otrp sp batch register-key`). It is
signed ONCE with the TAM's OTrP key and served to every device of the model at
GET /tam/otrp-batch/MODEL (cacheable, ETag); each package gets the next sequence number
of the model, and a device refuses one not above the last it applied. Brokers run with
`otrp broker run --profile otrp` fetch it after each session; the TEE applies all
commands or none and its TEE-signed result comes back. Devices must have run one OTrP
session first (GetDeviceState binds the TEE certificate results are checked with).

  # first package: create sd1 and install sd1/lock-ta on every door-lock
  otrp sp --pki pki --token $SP_TOKEN batch publish --profile otrp --batch door-lock \\
      --component sd1/lock-ta
  # later: update the TA (sd1 exists on the devices)
  otrp sp --pki pki --token $SP_TOKEN batch publish --profile otrp --batch door-lock \\
      --component sd1/lock-ta --update";

const REGISTER_KEY_HELP: &str = "\
OTrP batch command package (--profile otrp): the OEM registers the public half of the
device key every device of MODEL shares (made by `otrp device provision --batch MODEL`,
in PKI_DIR/batch/MODEL.pub.pem), and the `tee` routing name of its TEE. The TAM encrypts
the content and TA key of every OTrP batch package of MODEL to this key, so only devices
of the model can read it. Registering again replaces the key (rotation; audited).

Example:
  otrp sp --pki pki --token $OEM_TOKEN batch register-key --profile otrp \\
      --batch door-lock --public-key pki/batch/door-lock.pub.pem

Next: `otrp sp batch publish --profile otrp --batch door-lock --component SD/TA`.";

const STATUS_HELP: &str = "\
Show the packages of a batch (sequence number, contents, size, TAM signatures) with how
many devices reported each one applied or failed, and the reports on the newest package.
Without --batch, the newest package of each batch you own. With --profile otrp, the
OTrP batch packages of a model (pass/fail results of its devices) and its registered key.

Example:
  otrp sp --pki pki --token $SP_TOKEN batch status --batch lot-7";

#[derive(Args, Debug)]
struct PublishArgs {
    /// teep (batch mode) or otrp (OTrP batch command package for a device model).
    #[arg(long, value_enum, default_value_t = ProfileArg::Teep)]
    profile: ProfileArg,
    /// --profile otrp: UpdateTA instead of InstallTA (and no CreateSD).
    #[arg(long)]
    update: bool,
    /// --profile otrp: do not create the TAs' SDs (the devices have them).
    #[arg(long)]
    no_create_sd: bool,
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
    /// The batch public key (SPKI PEM, PKI_DIR/batch/ID.pub.pem), with --ta or --data.
    #[arg(long, value_name = "PUB_PEM")]
    batch_key: Option<PathBuf>,
    /// Data for a TA (any bytes; the TA defines the format), the same for every device:
    /// signed and batch-encrypted here as SD/TA/perso, then put into the package.
    #[arg(long, value_name = "FILE", requires_all = ["for_ta", "data_seq", "key", "cert", "batch_key"])]
    data: Option<PathBuf>,
    /// The TA the --data is for, SD/TA (installed on the devices, or by --component).
    #[arg(long, value_name = "SD/TA", requires = "data")]
    for_ta: Option<String>,
    /// Manifest sequence number of the --data (must exceed the TA's last data set).
    #[arg(long, value_name = "N", requires = "data")]
    data_seq: Option<u64>,
}

#[derive(Args, Debug)]
struct RegisterKeyArgs {
    /// Must be otrp (the TEEP batch key stays with the SP, which encrypts its payloads).
    #[arg(long, value_enum, default_value_t = ProfileArg::Otrp)]
    profile: ProfileArg,
    /// The device model (the batch name given to `otrp device provision --batch`).
    #[arg(long, value_name = "MODEL")]
    batch: String,
    /// The model's shared public key, SPKI PEM (PKI_DIR/batch/MODEL.pub.pem).
    #[arg(long, value_name = "PUB_PEM")]
    public_key: PathBuf,
    /// The `tee` routing name of the model's TEE.
    #[arg(long, value_name = "NAME", default_value = "OpenTrust-Sim")]
    tee: String,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// teep (batch mode) or otrp (OTrP batch command packages).
    #[arg(long, value_enum, default_value_t = ProfileArg::Teep)]
    profile: ProfileArg,
    /// The batch id (default: every batch you own).
    #[arg(long, value_name = "ID")]
    batch: Option<String>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

fn read_text(path: &Option<PathBuf>, what: &str, flag: &str) -> Result<String, CliError> {
    let path = path.as_ref().ok_or_else(|| {
        CliError::new(
            format!("--ta and --data need {flag}"),
            format!("pass {flag}"),
        )
    })?;
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

/// Signs the --data for --for-ta here (encrypted to the batch key) and uploads it;
/// returns the TA it is for.
fn upload_data(client: &ApiClient, a: &PublishArgs, data: &PathBuf) -> Result<String, CliError> {
    let for_ta = a
        .for_ta
        .clone()
        .ok_or_else(|| CliError::new("--data needs --for-ta", "pass --for-ta SD/TA"))?;
    let seq = a
        .data_seq
        .ok_or_else(|| CliError::new("--data needs --data-seq", "pass --data-seq N"))?;
    let bytes = std::fs::read(data).map_err(|e| {
        CliError::new(
            format!("cannot read data {}: {e}", data.display()),
            "check the path",
        )
    })?;
    let key = otrp_crypto::PrivateKey::from_pem(&read_text(&a.key, "SP key", "--key")?)
        .map_err(|e| CliError::new(format!("SP key: {e}"), "pass a PKCS#8 PEM key"))?;
    let chain = read_text(&a.cert, "signer chain", "--cert")?;
    let public = read_text(&a.batch_key, "batch public key", "--batch-key")?;
    let env = publish::data_envelope_for_batch(
        otrp_crypto::default_provider(),
        &key,
        &for_ta,
        seq,
        &bytes,
        &a.batch,
        &public,
    )
    .map_err(|e| CliError::new(e, "use --for-ta SD/TA and the batch's .pub.pem"))?;
    let v = block_on(client.post(
        "/api/v1/components",
        &publish::upload_body(&env, &chain, None),
    ))??;
    println!(
        "uploaded data {} #{} for {for_ta} ({} bytes of data, encrypted to batch {}; status {})",
        v["component"].as_str().unwrap_or("?"),
        v["seq"],
        bytes.len(),
        a.batch,
        v["status"].as_str().unwrap_or("?")
    );
    Ok(for_ta)
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
        BatchCommand::Publish(a) if a.profile == ProfileArg::Otrp && a.data.is_some() => {
            Err(CliError::new(
                "--data is for TEEP batch packages",
                "drop --profile otrp, or send the data with `otrp sp batch publish --data`",
            ))
        }
        BatchCommand::Publish(a) if a.profile == ProfileArg::Otrp => publish_otrp(client, a),
        BatchCommand::Status(s) if s.profile == ProfileArg::Otrp => status_otrp(client, s),
        BatchCommand::RegisterKey(a) => register_key(client, a),
        BatchCommand::Publish(a) => {
            if a.update || a.no_create_sd {
                return Err(CliError::new(
                    "--update and --no-create-sd are for --profile otrp",
                    "TEEP batch packages carry the newest manifest of each component",
                ));
            }
            if let Some(ta) = &a.ta {
                upload_ta(client, a, ta)?;
            }
            let mut data = Vec::new();
            if let Some(file) = &a.data {
                data.push(upload_data(client, a, file)?);
            }
            let v = block_on(client.post(
                &format!("/api/v1/batches/{}/packages", a.batch),
                &json!({"components": a.component, "remove": a.remove, "data": data}),
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

fn print_otrp_package(p: &serde_json::Value) {
    println!(
        "{} #{}: {} · {} bytes · {} TAM signature(s) · pass {} · fail {}",
        p["model"].as_str().unwrap_or("?"),
        p["seq"],
        p["contents"].as_str().unwrap_or("?"),
        p["size"],
        p["tam_signatures"],
        p["applied"],
        p["failed"]
    );
}

fn publish_otrp(client: &ApiClient, a: &PublishArgs) -> Result<(), CliError> {
    if a.ta.is_some() || !a.remove.is_empty() {
        return Err(CliError::new(
            "--ta and --remove are for TEEP batch packages",
            "upload the TA with `otrp sp publish` first; an OTrP batch package installs or updates TAs only",
        ));
    }
    if a.component.is_empty() {
        return Err(CliError::new(
            "an OTrP batch package needs a --component",
            "name the TA as --component SD/TA",
        ));
    }
    let v = block_on(client.post(
        &format!("/api/v1/otrp-batches/{}/packages", a.batch),
        &json!({
            "components": a.component,
            "update": a.update,
            "create_sd": !(a.update || a.no_create_sd),
        }),
    ))??;
    print!("published ");
    print_otrp_package(&v);
    println!(
        "devices of model {} fetch it at {} (`otrp broker run --profile otrp`)",
        a.batch,
        v["url"].as_str().unwrap_or("?")
    );
    println!(
        "next: otrp sp batch status --profile otrp --batch {}",
        a.batch
    );
    Ok(())
}

fn status_otrp(client: &ApiClient, s: &StatusArgs) -> Result<(), CliError> {
    let path = match &s.batch {
        Some(b) => format!("/api/v1/otrp-batches/{b}"),
        None => "/api/v1/otrp-batches".into(),
    };
    let v = block_on(client.get(&path))??;
    if s.json {
        print_json(&v);
        return Ok(());
    }
    if s.batch.is_none() {
        let all = v.as_array().cloned().unwrap_or_default();
        if all.is_empty() {
            println!(
                "no OTrP batch packages yet; publish one with `otrp sp batch publish --profile otrp`"
            );
        }
        for p in &all {
            print_otrp_package(p);
        }
        return Ok(());
    }
    match v["key"].as_object() {
        Some(k) => println!(
            "model key: {} (tee {}, registered by {})",
            k.get("key_type").and_then(|x| x.as_str()).unwrap_or("?"),
            k.get("tee").and_then(|x| x.as_str()).unwrap_or("?"),
            k.get("registered_by")
                .and_then(|x| x.as_str())
                .unwrap_or("?")
        ),
        None => println!("model key: not registered (`otrp sp batch register-key`)"),
    }
    for p in v["packages"].as_array().into_iter().flatten() {
        print_otrp_package(p);
    }
    let results = v["latest_results"].as_array().cloned().unwrap_or_default();
    println!("results on the newest package: {}", results.len());
    for r in results.iter().filter(|r| r["success"] != true) {
        println!(
            "  fail on {}: {}",
            r["device_id"].as_str().unwrap_or("?"),
            r["detail"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn register_key(client: &ApiClient, a: &RegisterKeyArgs) -> Result<(), CliError> {
    if a.profile != ProfileArg::Otrp {
        return Err(CliError::new(
            "register-key is for --profile otrp",
            "in TEEP batch mode the SP encrypts payloads to the batch key itself (publish --ta --batch-key)",
        ));
    }
    let pem = std::fs::read_to_string(&a.public_key).map_err(|e| {
        CliError::new(
            format!("cannot read {}: {e}", a.public_key.display()),
            "pass PKI_DIR/batch/MODEL.pub.pem",
        )
    })?;
    let v = block_on(client.call(
        reqwest::Method::PUT,
        &format!("/api/v1/otrp-batches/{}/key", a.batch),
        Some(&json!({"public_key_pem": pem, "tee": a.tee})),
    ))??;
    println!(
        "model {}: {} key registered (tee {})",
        a.batch,
        v["key_type"].as_str().unwrap_or("?"),
        v["tee"].as_str().unwrap_or("?")
    );
    println!(
        "next: otrp sp batch publish --profile otrp --batch {} --component SD/TA",
        a.batch
    );
    Ok(())
}
