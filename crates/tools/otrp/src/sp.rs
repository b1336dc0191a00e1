//! `otrp sp`: the Service Provider's side: publish a TA (the manifest is built and signed
//! here, on the SP's machine), deploy it, follow the rollout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use otrp_tam_server::publish::{self, Payload};
use serde_json::{json, Value};

use crate::tam::{block_on, fail, print_json, ApiClient, CliError, ClientArgs};

/// Publish TAs to a TAM, deploy them, follow rollouts.
#[derive(Args, Debug)]
pub struct SpArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: SpCommand,
}

#[derive(Subcommand, Debug)]
enum SpCommand {
    /// Build and sign a TA's SUIT manifest here, then upload the signed envelope.
    #[command(long_about = PUBLISH_HELP)]
    Publish(PublishArgs),
    /// Deploy a published component to a device, tag, model or all, optionally staged.
    #[command(long_about = DEPLOY_HELP)]
    Deploy(DeployArgs),
    /// Sign personalization data for a TA here and deliver it to a device or a tag.
    #[command(long_about = PERSONALIZE_HELP)]
    Personalize(PersonalizeArgs),
    /// Pause, resume or abort a deployment.
    #[command(long_about = CONTROL_HELP)]
    Deployment(ControlArgs),
    /// Rollout progress.
    Rollout(RolloutArgs),
    /// List your components.
    Components,
    /// Batch mode: publish one package for a whole batch of devices, follow its reports.
    Batch(crate::sp_batch::BatchArgs),
    /// Your Security Domains: list them, rotate their TA-signer keys.
    Sd(SdArgs),
}

#[derive(Args, Debug)]
struct SdArgs {
    #[command(subcommand)]
    command: SdCommand,
}

#[derive(Subcommand, Debug)]
enum SdCommand {
    /// List your SDs and the thumbprints of their authorized signer keys.
    List,
    /// Authorize a new TA-signer key for an SD and retire the old one(s).
    #[command(long_about = ROTATE_HELP)]
    RotateSigner(RotateSignerArgs),
    /// Register your TA-signer certificate as the `spcert` of your OTrP SDs.
    #[command(long_about = OTRP_CERT_HELP)]
    OtrpCert(OtrpCertArgs),
}

const OTRP_CERT_HELP: &str = "\
Register your TA-signer certificate with the TAM as the `spcert` it sends in OTrP
CreateSD (draft-ietf-teep-opentrustprotocol-03): a device served over OTrP (`otrp broker
run --profile otrp`) checks your TAs against the certificates of their SD. The chain must
lead to the SP root. The signer chain given when the SD was granted (`otrp oem grant-sd
--signer-chain`) or rotated (`otrp sp sd rotate-signer`) is registered already; use this
for another signer. The newest registration is used for new SDs.

Example:
  otrp sp --pki pki --token $SP_TOKEN sd otrp-cert --cert pki/issued/sp/sp1.chain.pem";

#[derive(Args, Debug)]
struct OtrpCertArgs {
    /// The signer's certificate chain (PEM, leaf first).
    #[arg(long, value_name = "CHAIN")]
    cert: PathBuf,
}

const ROTATE_HELP: &str = "\
Rotate the key that signs your TAs in a Security Domain: the TAM adds the new signer
(its certificate chain must lead to the SP root) and retires the old ones (all others by
default, or only those named with --retire), in a new SD manifest it signs.

From then on the TAM refuses uploads signed by a retired key and accepts the new one.
TAs already delivered stay installed on devices. Devices learn the new signer list
through the SD manifest, which the TAM sends at their next TEEP session (before any TA
of the SD signed by the new key), because the TEE checks the same list when it installs.
Publish new TAs with the new key and a higher --seq.

Example:
  otrp sp --pki pki --token $SP_TOKEN sd rotate-signer sd1 \\
      --cert pki/issued/sp/sp1-2027.chain.pem

Next: `otrp sp publish TA.wasm --component sd1/NAME --key NEW_KEY --cert NEW_CHAIN --seq N`.
Under the oem-owned-sd policy only the OEM may do this (with its token).";

#[derive(Args, Debug)]
struct RotateSignerArgs {
    /// The SD name.
    sd: String,
    /// The new signer's certificate chain (PEM, leaf first).
    #[arg(long, value_name = "NEW_CHAIN")]
    cert: PathBuf,
    /// Retire only this signer (thumbprint from `otrp sp sd list`; repeatable). Default:
    /// every signer other than the new one.
    #[arg(long, value_name = "THUMBPRINT")]
    retire: Vec<String>,
}

fn sd_command(client: &ApiClient, cmd: &SdCommand) -> Result<(), CliError> {
    match cmd {
        SdCommand::List => {
            let v = block_on(client.get("/api/v1/sds"))??;
            for sd in v.as_array().into_iter().flatten() {
                println!(
                    "{} (SP {}, SD manifest #{})",
                    sd["name"].as_str().unwrap_or("?"),
                    sd["sp_id"].as_str().unwrap_or("?"),
                    sd["manifest_seq"]
                );
                for t in sd["signers"].as_array().into_iter().flatten() {
                    println!("  signer {}", t.as_str().unwrap_or("?"));
                }
            }
        }
        SdCommand::OtrpCert(a) => {
            let chain = String::from_utf8(read_bytes(&a.cert, "signer chain")?).map_err(|_| {
                CliError::new("the signer chain is not PEM text", "pass a PEM chain")
            })?;
            let v = block_on(client.post("/api/v1/sp/certs", &json!({ "cert_pem": chain })))??;
            println!(
                "OTrP spcert of {} registered: {} (key {})",
                v["sp_id"].as_str().unwrap_or("?"),
                v["subject"].as_str().unwrap_or("?"),
                v["key_thumbprint"].as_str().unwrap_or("?")
            );
        }
        SdCommand::RotateSigner(a) => {
            let chain = String::from_utf8(read_bytes(&a.cert, "signer chain")?).map_err(|_| {
                CliError::new("the signer chain is not PEM text", "pass a PEM chain")
            })?;
            let retire = (!a.retire.is_empty()).then(|| a.retire.clone());
            let v = block_on(client.post(
                &format!("/api/v1/sds/{}/rotate-signer", a.sd),
                &json!({"signer_chain_pem": chain, "retire": retire}),
            ))??;
            println!(
                "SD {}: signer {} added (SD manifest #{})",
                a.sd,
                v["added"].as_str().unwrap_or("?"),
                v["sd"]["manifest_seq"]
            );
            for t in v["retired"].as_array().into_iter().flatten() {
                println!("  retired {}", t.as_str().unwrap_or("?"));
            }
            println!(
                "next: publish with the new key (`otrp sp publish ... --component {}/NAME --key NEW_KEY --cert {}`); devices get the new signer list at their next TEEP session",
                a.sd,
                a.cert.display()
            );
        }
    }
    Ok(())
}

const PUBLISH_HELP: &str = "\
Build the SUIT manifest of TA.wasm (component id, sequence number, image digest and
size, the image integrated in the envelope or fetched from --uri), sign it with your SP
key HERE, and upload only the signed envelope with your signer certificate chain. Your
key never leaves this machine. The TAM checks the chain against the SP root, that the
key is authorized for the SD (the first segment of --component) and that --seq grows.

For constrained devices (LoRaWAN, NB-IoT, CoAP):
  --compress  carry the image DEFLATE-compressed (4 KiB chunks, SUIT parameter
              -70101); the device inflates it and checks the image digest. The TAM
              sends your envelope as signed: it never compresses by itself.
  --compact   the compact SUIT profile (docs/CONSTRAINED.md): the signature carries no
              kid (devices try the signers of the SD, a small set) and an integrated
              image has no image-size (the digest covers the exact bytes). Saves about
              40 B per manifest; every Agent accepts both profiles.

Which devices may install it (SUIT vendor and class conditions, signed with the rest):
  --vendor-pen N      your vendor's IANA Private Enterprise Number (iana.org/assignments/
                      enterprise-numbers; e.g. 32473, the number IANA reserves for
                      documentation). It travels as SUIT's cbor-pen, a relative OID:
                      #6.112(h'81FD59') for 32473 is 6 bytes, against 17 for a vendor
                      UUID, which counts on a 51-byte LoRaWAN frame.
  --vendor-uuid UUID  the same check with a 16-byte vendor UUID (the device's oemid by
                      default). Give one vendor form or the other, not both.
  --class-model NAME  the device model (class id = SHA-256(NAME)[..16], as the TEE
                      derives it from its EAT hwmodel).
  A device compares the vendor id byte for byte with the one it is configured with
  (`otrp tee run --vendor-pen N`; by default its oemid as a UUID) and REFUSES the
  manifest on any difference (condition-vendor-identifier failed): a device set up with
  a UUID refuses a PEN manifest, and one of another PEN refuses it too. Configure the
  fleet with the same vendor id before publishing with it.

Example:
  otrp sp --pki pki --token $SP_TOKEN publish ta.wasm \\
      --key pki/issued/sp/sp1.key.pem --cert pki/issued/sp/sp1.chain.pem \\
      --component sd1/door-lock-ta --seq 1 [--compress] [--compact] \\
      [--vendor-pen 32473 --class-model door-lock]

Next: `otrp sp deploy --component sd1/door-lock-ta --target model:door-lock --stage 10%`.";

const DEPLOY_HELP: &str = "\
Deploy a published component: every device the target matches gets it at its next TEEP
session (the SD first). --stage limits the rollout to a stable pseudo-random share
(10%) or a number of devices (25); raise it later with a new deployment, or pause,
resume and abort it.

Targets: all, device:ID, tag:TAG, model:NAME.

Example:
  otrp sp --pki pki --token $SP_TOKEN deploy --component sd1/door-lock-ta \\
      --target model:door-lock --stage 10%

Next: `otrp sp rollout status --watch`.";

const PERSONALIZE_HELP: &str = "\
Personalization data (a TA's configuration, e.g. a drone's no-fly zones) travels like a
TA: its SUIT manifest is built and signed with your SP key HERE, for a component inside
your SD (by convention SD/TA/NAME, e.g. drones/geofence/perso), and the TAM delivers it
to one device or to every device with a tag at their next TEEP session. A new data set
needs a higher --seq; devices replace the old one.

Example:
  otrp sp --pki pki --token $SP_TOKEN personalize zones.json \\
      --key pki/issued/sp/sp1.key.pem --cert pki/issued/sp/sp1.chain.pem \\
      --component drones/geofence/perso --seq 1 --target tag:munich-fleet

Next: `otrp sp rollout status --watch`; the TA reads the data on its next invocation.";

const CONTROL_HELP: &str = "\
Pause (no new device gets it), resume, or abort (for good) a deployment.

Example:
  otrp sp --pki pki --token $SP_TOKEN deployment 3 pause

Next: `otrp sp rollout status 3`.";

#[derive(Args, Debug)]
struct PublishArgs {
    /// The TA image (e.g. a .wasm module).
    ta: PathBuf,
    /// Your SP signing key (PKCS#8 PEM); it is only read here.
    #[arg(long, value_name = "SP_KEY")]
    key: PathBuf,
    /// Your signer certificate chain (PEM, leaf first).
    #[arg(long, value_name = "SP_CERT")]
    cert: PathBuf,
    /// Component id SD/NAME (the first segment names the Security Domain).
    #[arg(long, value_name = "ID")]
    component: String,
    /// Manifest sequence number (must exceed the last published one).
    #[arg(long, value_name = "N")]
    seq: u64,
    /// Let devices fetch the image from this URI instead of carrying it in the envelope.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Also write the signed envelope to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Carry the image DEFLATE-compressed in the envelope (not with --uri).
    #[arg(long, conflicts_with = "uri")]
    compress: bool,
    /// Sign a compact manifest for constrained links: no kid, no image-size for an
    /// integrated image.
    #[arg(long)]
    compact: bool,
    /// Only devices of this vendor may install it: your IANA Private Enterprise Number,
    /// signed as a SUIT `cbor-pen` (6 B on the wire; see the long help).
    #[arg(long, value_name = "PEN", conflicts_with = "vendor_uuid")]
    vendor_pen: Option<u64>,
    /// Only devices of this vendor may install it: a 16-byte vendor UUID (32 hex digits,
    /// dashes allowed), e.g. the oemid `otrp device show` prints (17 B on the wire).
    #[arg(long, value_name = "UUID")]
    vendor_uuid: Option<String>,
    /// Only devices of this model may install it (class id: the first 16 bytes of
    /// SHA-256 of the model name, as the TEE derives its own).
    #[arg(long, value_name = "MODEL")]
    class_model: Option<String>,
}

#[derive(Args, Debug)]
struct DeployArgs {
    /// Component id SD/NAME.
    #[arg(long, value_name = "ID")]
    component: String,
    /// all, device:ID, tag:TAG or model:NAME.
    #[arg(long, default_value = "all")]
    target: String,
    /// Staged rollout: N% or a device count N (default: every targeted device).
    #[arg(long, value_name = "N%|N")]
    stage: Option<String>,
    /// Remove the component instead of installing it.
    #[arg(long)]
    remove: bool,
}

#[derive(Args, Debug)]
struct PersonalizeArgs {
    /// The data file (any bytes; the TA defines the format).
    data: PathBuf,
    /// Your SP signing key (PKCS#8 PEM); it is only read here.
    #[arg(long, value_name = "SP_KEY")]
    key: PathBuf,
    /// Your signer certificate chain (PEM, leaf first).
    #[arg(long, value_name = "SP_CERT")]
    cert: PathBuf,
    /// Component id of the data, inside your SD (e.g. drones/geofence/perso).
    #[arg(long, value_name = "ID")]
    component: String,
    /// Manifest sequence number (must exceed the last one of this component).
    #[arg(long, value_name = "N")]
    seq: u64,
    /// device:ID or tag:TAG.
    #[arg(long)]
    target: String,
}

#[derive(Args, Debug)]
struct ControlArgs {
    /// Deployment id.
    id: i64,
    /// pause, resume or abort.
    #[arg(value_parser = ["pause", "resume", "abort"])]
    action: String,
}

#[derive(Args, Debug)]
struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Subcommand, Debug)]
enum RolloutCommand {
    /// Progress of your deployments (one, or all) with a progress bar each.
    #[command(long_about = STATUS_HELP)]
    Status(RolloutStatusArgs),
}

const STATUS_HELP: &str = "\
Show how far your deployments got: targeted devices, updates sent, installed, failed.
With --watch, progress bars follow until every deployment is complete (or Ctrl-C).

Example:
  otrp sp --pki pki --token $SP_TOKEN rollout status --watch

Next: `otrp sp deployment ID pause` if failures pile up.";

#[derive(Args, Debug)]
struct RolloutStatusArgs {
    /// Deployment id (default: all of yours).
    id: Option<i64>,
    /// Follow until complete.
    #[arg(long)]
    watch: bool,
    /// Poll interval in milliseconds (with --watch).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

/// `otrp sp`.
pub fn run(args: &SpArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn read_bytes(path: &std::path::Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| {
        CliError::new(
            format!("cannot read {what} {}: {e}", path.display()),
            "check the path",
        )
    })
}

fn run_inner(args: &SpArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.client)?;
    match &args.command {
        SpCommand::Publish(a) => publish_ta(&client, a),
        SpCommand::Deploy(a) => {
            let rollout = match a.stage.as_deref() {
                None => "full".to_owned(),
                Some(s) if s.ends_with('%') => s.to_owned(),
                Some(s) => format!("count:{s}"),
            };
            let v = block_on(client.post(
                "/api/v1/deployments",
                &json!({
                    "component": a.component,
                    "target": a.target,
                    "rollout": rollout,
                    "action": if a.remove { "remove" } else { "install" },
                }),
            ))??;
            println!(
                "deployment {} created: {} {} to {} ({})",
                v["id"],
                v["action"].as_str().unwrap_or("?"),
                v["component"].as_str().unwrap_or("?"),
                v["target"].as_str().unwrap_or("?"),
                v["rollout"].as_str().unwrap_or("?")
            );
            println!("next: otrp sp rollout status {} --watch", v["id"]);
            Ok(())
        }
        SpCommand::Personalize(a) => personalize(&client, a),
        SpCommand::Deployment(a) => {
            let v = block_on(client.post(
                &format!("/api/v1/deployments/{}/{}", a.id, a.action),
                &json!({}),
            ))??;
            println!(
                "deployment {} is {}",
                a.id,
                v["state"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        SpCommand::Rollout(r) => match &r.command {
            RolloutCommand::Status(s) => block_on(rollout_status(&client, s))?,
        },
        SpCommand::Batch(b) => crate::sp_batch::run(&client, b),
        SpCommand::Components => {
            print_json(&block_on(client.get("/api/v1/components"))??);
            Ok(())
        }
        SpCommand::Sd(a) => sd_command(&client, &a.command),
    }
}

/// The SP key and signer chain, read on this machine.
fn signer(
    key: &std::path::Path,
    cert: &std::path::Path,
) -> Result<(otrp_crypto::PrivateKey, String), CliError> {
    let key_pem = String::from_utf8(read_bytes(key, "SP key")?)
        .map_err(|_| CliError::new("the SP key is not PEM text", "pass a PKCS#8 PEM key"))?;
    let k = otrp_crypto::PrivateKey::from_pem(&key_pem).map_err(|e| {
        CliError::new(
            format!("SP key {}: {e}", key.display()),
            "pass the .key.pem issued with your signer certificate (`otrp pki issue --kind sp`)",
        )
    })?;
    let chain = String::from_utf8(read_bytes(cert, "signer chain")?)
        .map_err(|_| CliError::new("the signer chain is not PEM text", "pass a PEM chain"))?;
    Ok((k, chain))
}

fn personalize(client: &ApiClient, a: &PersonalizeArgs) -> Result<(), CliError> {
    let data = read_bytes(&a.data, "data")?;
    let (key, chain) = signer(&a.key, &a.cert)?;
    let env = publish::ta_envelope(
        otrp_crypto::default_provider(),
        &key,
        &a.component,
        a.seq,
        &data,
        &Payload::Integrated,
    )
    .map_err(|e| CliError::new(e, "use --component SD/TA/NAME"))?;
    let mut body = publish::upload_body(&env, &chain, None);
    body["target"] = json!(a.target);
    let v = block_on(client.post("/api/v1/personalization", &body))??;
    println!(
        "personalization {} #{} ({} bytes of data, signed here; status {}) deployed to {} as deployment {}",
        v["registered"]["component"].as_str().unwrap_or("?"),
        v["registered"]["seq"],
        data.len(),
        v["registered"]["status"].as_str().unwrap_or("?"),
        a.target,
        v["deployment"]["id"]
    );
    println!(
        "next: otrp sp rollout status {} --watch",
        v["deployment"]["id"]
    );
    Ok(())
}

fn publish_ta(client: &ApiClient, a: &PublishArgs) -> Result<(), CliError> {
    let image = read_bytes(&a.ta, "TA")?;
    let (key, chain) = signer(&a.key, &a.cert)?;
    let payload = match &a.uri {
        Some(u) => Payload::Uri(u.clone()),
        None => Payload::Integrated,
    };
    let env = if a.compress || a.compact {
        constrained_envelope(&key, a, &image, &payload)
    } else if a.vendor_pen.is_some() || a.vendor_uuid.is_some() || a.class_model.is_some() {
        standard_envelope(&key, a, &image, &payload)
    } else {
        publish::ta_envelope(
            otrp_crypto::default_provider(),
            &key,
            &a.component,
            a.seq,
            &image,
            &payload,
        )
    }
    .map_err(|e| CliError::new(e, "use --component SD/NAME, --vendor-uuid of 32 hex digits"))?;
    if let Some(out) = &a.out {
        std::fs::write(out, &env)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", out.display()), ""))?;
    }
    let v = block_on(client.post(
        "/api/v1/components",
        &publish::upload_body(&env, &chain, a.name.as_deref()),
    ))??;
    println!(
        "published {} #{} ({} bytes signed here; status {})",
        v["component"].as_str().unwrap_or("?"),
        v["seq"],
        env.len(),
        v["status"].as_str().unwrap_or("?")
    );
    println!(
        "next: otrp sp deploy --component {} --target model:MODEL --stage 10%",
        a.component
    );
    Ok(())
}

/// The manifest builder of `a`: component id, sequence number, and the vendor and class
/// ids (`--vendor-pen` / `--vendor-uuid`, `--class-model`) when given.
fn base_builder(a: &PublishArgs) -> Result<otrp_suit::TaManifestBuilder, String> {
    let id = otrp_suit::ComponentId(publish::component_segments(&a.component)?);
    let mut b = otrp_suit::TaManifestBuilder::new(id, a.seq);
    if let Some(pen) = a.vendor_pen {
        b = b.vendor(otrp_suit::VendorId::pen(pen));
    }
    if let Some(u) = &a.vendor_uuid {
        b = b.vendor_id(parse_uuid(u)?);
    }
    if let Some(model) = &a.class_model {
        b = b.class_id(otrp_tee_daemon::model_class_id(
            otrp_crypto::default_provider(),
            model,
        ));
    }
    Ok(b)
}

/// A 16-byte UUID from 32 hex digits, dashes ignored.
fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    hex::decode(&digits)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| format!("--vendor-uuid {s}: expected 32 hex digits"))
}

/// The standard envelope (`publish::ta_envelope`: the image integrated under `#tc` or
/// fetched from `--uri`) with the vendor and class conditions of `a`.
fn standard_envelope(
    key: &otrp_crypto::PrivateKey,
    a: &PublishArgs,
    image: &[u8],
    payload: &Payload,
) -> Result<Vec<u8>, String> {
    let b = base_builder(a)?.image_of(image);
    let b = match payload {
        Payload::Integrated => b.integrated_payload(publish::TA_PAYLOAD_KEY, image.to_vec()),
        Payload::Uri(u) => b.uri(u.clone()),
    };
    b.build_signed(
        otrp_crypto::default_provider(),
        key,
        &otrp_cose::SignOptions::default(),
    )
    .and_then(|e| e.encode())
    .map_err(|e| format!("building the SUIT manifest: {e}"))
}

/// The envelope of `--compress` / `--compact`: the integrated image as the TAM's delta
/// machinery expects it (`#tc`, compressed when asked, unlinked by `suit-uninstall`), or
/// a compact manifest fetching from `--uri`.
fn constrained_envelope(
    key: &otrp_crypto::PrivateKey,
    a: &PublishArgs,
    image: &[u8],
    payload: &Payload,
) -> Result<Vec<u8>, String> {
    use otrp_teep::WireProfile;
    let provider = otrp_crypto::default_provider();
    let base = base_builder(a)?;
    let profile = if a.compact {
        WireProfile::Compact
    } else {
        WireProfile::Standard
    };
    let built = match payload {
        Payload::Integrated => otrp_tam::delta::delta_capable_envelope_from(
            provider,
            key,
            base,
            image,
            &[],
            a.compress,
            profile,
        ),
        Payload::Uri(u) => base
            .image_of(image)
            .uri(u.clone())
            .compact(a.compact)
            .build_signed(provider, key, &otrp_suit::compact_sign_options())
            .and_then(|e| e.encode()),
    };
    built.map_err(|e| format!("building the SUIT manifest: {e}"))
}

async fn rollout_status(client: &ApiClient, a: &RolloutStatusArgs) -> Result<(), CliError> {
    let ids: Vec<i64> = match a.id {
        Some(id) => vec![id],
        None => client
            .get("/api/v1/deployments")
            .await?
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| !d["component"].as_str().unwrap_or("").ends_with("/sd"))
            .filter_map(|d| d["id"].as_i64())
            .collect(),
    };
    if ids.is_empty() {
        println!("no deployments yet; create one with `otrp sp deploy`");
        return Ok(());
    }
    let multi = indicatif::MultiProgress::new();
    let style =
        indicatif::ProgressStyle::with_template("{prefix:>32} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    let bars: Vec<indicatif::ProgressBar> = ids
        .iter()
        .map(|_| {
            let b = multi.add(indicatif::ProgressBar::new(0));
            b.set_style(style.clone());
            b
        })
        .collect();
    let mut lines = vec![String::new(); ids.len()];
    loop {
        let mut complete = true;
        for ((id, bar), line) in ids.iter().zip(&bars).zip(lines.iter_mut()) {
            let p: Value = client.get(&format!("/api/v1/deployments/{id}")).await?;
            let d = &p["deployment"];
            let total = match d["rollout"].as_str().unwrap_or("full") {
                r if r.starts_with("count:") => r
                    .trim_start_matches("count:")
                    .parse::<u64>()
                    .unwrap_or(0)
                    .min(p["targeted"].as_u64().unwrap_or(0)),
                r if r.ends_with('%') => {
                    let pct = r.trim_end_matches('%').parse::<u64>().unwrap_or(100);
                    (p["targeted"].as_u64().unwrap_or(0) * pct).div_ceil(100)
                }
                _ => p["targeted"].as_u64().unwrap_or(0),
            };
            let done = p["done"].as_u64().unwrap_or(0);
            let failed = p["failed"].as_u64().unwrap_or(0);
            bar.set_prefix(format!("#{id} {}", d["component"].as_str().unwrap_or("?")));
            bar.set_length(total.max(done + failed));
            bar.set_position(done + failed);
            bar.set_message(format!(
                "{} · done {done} · sent {} · failed {failed}",
                d["state"].as_str().unwrap_or("?"),
                p["sent"]
            ));
            *line = format!(
                "#{id} {}: {} · {}/{} · done {done} · sent {} · failed {failed}",
                d["component"].as_str().unwrap_or("?"),
                d["state"].as_str().unwrap_or("?"),
                done + failed,
                total.max(done + failed),
                p["sent"]
            );
            let state = d["state"].as_str().unwrap_or("");
            if state == "active" && done + failed < total {
                complete = false;
            }
        }
        if !a.watch || complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(a.interval_ms.max(100))).await;
    }
    let hidden = bars.first().is_some_and(indicatif::ProgressBar::is_hidden);
    for b in &bars {
        b.abandon();
    }
    if hidden {
        // Not a terminal: plain lines instead of bars.
        for l in &lines {
            println!("{l}");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn args(compress: bool, compact: bool, uri: Option<&str>) -> PublishArgs {
        PublishArgs {
            ta: PathBuf::from("ta.wasm"),
            key: PathBuf::from("k.pem"),
            cert: PathBuf::from("c.pem"),
            component: "sd1/lock".into(),
            seq: 3,
            uri: uri.map(str::to_owned),
            name: None,
            out: None,
            compress,
            compact,
            vendor_pen: None,
            vendor_uuid: None,
            class_model: None,
        }
    }

    #[test]
    fn compressed_and_compact_envelopes_verify_and_carry_the_image() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = otrp_crypto::PrivateKey::generate(otrp_crypto::KeyKind::P256, &mut rng).unwrap();
        let image = include_bytes!("../../../../tas/dist/smart-lock.wasm").to_vec();
        let provider = otrp_crypto::default_provider();
        let mut sizes = Vec::new();
        for (compress, compact) in [(true, false), (true, true), (false, true)] {
            let a = args(compress, compact, None);
            let bytes = constrained_envelope(&key, &a, &image, &Payload::Integrated).unwrap();
            let env = otrp_suit::Envelope::decode(&bytes).unwrap();
            let v = env.verify(provider, &[key.public_key()]).unwrap();
            assert_eq!(v[0].kid.is_none(), compact);
            assert_eq!(
                otrp_suit_processor::delta::delta_offer(&env).full_compressed,
                compress
            );
            // What the TAM (and the device) inflate is the image the SP signed.
            assert_eq!(otrp_tam::delta::full_image(&env), Some(image.clone()));
            sizes.push(bytes.len());
        }
        // Compressed wasm is smaller; the compact profile saves the kid and image-size.
        assert!(sizes[0] < image.len() && sizes[0] - sizes[1] >= 35 + 3);
        // A compact manifest fetching from a URI keeps image-size (it bounds the download).
        let a = args(false, true, Some("https://cdn.example/lock.wasm"));
        let bytes = constrained_envelope(
            &key,
            &a,
            &image,
            &Payload::Uri("https://cdn.example/lock.wasm".into()),
        )
        .unwrap();
        let env = otrp_suit::Envelope::decode(&bytes).unwrap();
        assert!(env.verify(provider, &[key.public_key()]).unwrap()[0]
            .kid
            .is_none());
        // (Compact: set in the install sequence, with the URI, before the fetch.)
        let install = env.install().unwrap().unwrap();
        assert!(matches!(
            &install.commands()[0],
            otrp_suit::Command::OverrideParameters(ps)
                if ps.image_size() == Some(image.len() as u64)
                    && ps.uri() == Some("https://cdn.example/lock.wasm")
        ));
    }

    /// The vendor and class conditions of the shared sequence of `bytes`, with the
    /// vendor id and class id they check.
    fn vendor_conditions(
        bytes: &[u8],
    ) -> (
        Vec<otrp_suit::Condition>,
        Option<otrp_suit::VendorId>,
        Option<[u8; 16]>,
    ) {
        let env = otrp_suit::Envelope::decode(bytes).unwrap();
        let shared = env
            .manifest()
            .common
            .value()
            .shared_sequence
            .clone()
            .unwrap();
        let mut conditions = Vec::new();
        let (mut vendor, mut class) = (None, None);
        for c in shared.value().commands() {
            match c {
                otrp_suit::Command::Condition(k, _) => conditions.push(*k),
                otrp_suit::Command::OverrideParameters(ps) => {
                    for p in &ps.0 {
                        match p {
                            otrp_suit::Parameter::VendorId(v) => vendor = Some(v.clone()),
                            otrp_suit::Parameter::ClassId(c) => class = Some(*c),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        (conditions, vendor, class)
    }

    #[test]
    fn vendor_pen_envelopes_carry_the_pen_and_its_vendor_condition() {
        use otrp_suit::{Condition, VendorId};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let key = otrp_crypto::PrivateKey::generate(otrp_crypto::KeyKind::P256, &mut rng).unwrap();
        let image = include_bytes!("../../../../tas/dist/smart-lock.wasm").to_vec();
        let provider = otrp_crypto::default_provider();
        let class = otrp_tee_daemon::model_class_id(otrp_crypto::default_provider(), "door-lock");
        let with = |compress, compact, pen: Option<u64>, uuid: Option<&str>| {
            let mut a = args(compress, compact, None);
            a.vendor_pen = pen;
            a.vendor_uuid = uuid.map(str::to_owned);
            a.class_model = Some("door-lock".into());
            if compress || compact {
                constrained_envelope(&key, &a, &image, &Payload::Integrated).unwrap()
            } else {
                standard_envelope(&key, &a, &image, &Payload::Integrated).unwrap()
            }
        };
        let uuid = "c0c0c0c0-c0c0-c0c0-c0c0-c0c0c0c0c0c0";
        for (compress, compact) in [(false, false), (true, false), (false, true)] {
            let pen = with(compress, compact, Some(32473), None);
            let by_uuid = with(compress, compact, None, Some(uuid));
            // cbor-pen #6.112(h'81FD59'): 6 bytes, against 17 for the UUID.
            assert!(pen
                .windows(6)
                .any(|w| w == [0xd8, 0x70, 0x43, 0x81, 0xfd, 0x59]));
            assert_eq!(by_uuid.len() - pen.len(), 11, "{compress} {compact}");
            let (conditions, vendor, got_class) = vendor_conditions(&pen);
            assert_eq!(
                conditions,
                vec![Condition::VendorIdentifier, Condition::ClassIdentifier]
            );
            assert_eq!(vendor, Some(VendorId::pen(32473)));
            assert_eq!(got_class, Some(class));
            assert_eq!(
                vendor_conditions(&by_uuid).1,
                Some(VendorId::Uuid([0xc0; 16]))
            );
            let env = otrp_suit::Envelope::decode(&pen).unwrap();
            assert_eq!(
                env.verify(provider, &[key.public_key()]).unwrap()[0]
                    .kid
                    .is_none(),
                compact
            );

            // What the TAM (and the device) read back is the image the SP signed.
            assert_eq!(otrp_tam::delta::full_image(&env), Some(image.clone()));
        }
        // (Installed by a device of that PEN only: tests/e2e_vendor.rs.)
        assert!(parse_uuid("c0c0").is_err());
    }
}
