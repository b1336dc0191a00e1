//! `otrp oem`: the OEM's (and device admins') side of a TAM: accounts, SP approval, SD
//! grants, device registration, reference values, the audit log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::tam::{block_on, fail, print_json, ApiClient, CliError, ClientArgs};

/// Manage a TAM as the OEM: accounts, SP approval, SD grants, devices, audit.
#[derive(Args, Debug)]
pub struct OemArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: OemCommand,
}

#[derive(Subcommand, Debug)]
enum OemCommand {
    /// Create an SP, device-admin or OEM account; prints its API token once.
    #[command(long_about = CREATE_HELP)]
    CreateAccount(CreateAccountArgs),
    /// Approve an SP (or withdraw approval with --revoke).
    #[command(long_about = APPROVE_HELP)]
    ApproveSp(ApproveArgs),
    /// Grant a Security Domain to an SP, naming the SP key allowed to sign its TAs.
    #[command(long_about = GRANT_HELP)]
    GrantSd(GrantArgs),
    /// Register a provisioned device (its device.json and TEE certificate chain).
    #[command(long_about = REGISTER_HELP)]
    RegisterDevice(RegisterArgs),
    /// List the devices the TAM knows.
    Devices,
    /// Show the audit log, newest first.
    Audit(AuditArgs),
    /// List, set or remove the verifier's reference values per device model.
    #[command(long_about = REFERENCE_HELP)]
    ReferenceValues(ReferenceArgs),
}

const REFERENCE_HELP: &str = "\
Reference values are the TAM's appraisal policy per device model (the EAT hwmodel its
devices report): the TEE measurements (digests of TEE images) and hardware versions it
accepts. A device whose evidence names another measurement is refused at attestation.
They live in the TAM's store, so every TAM replica on it applies a change, without
restart: the replica you call at once, the others within their reference_refresh_secs
(2 s by default). `[[reference]]` entries of tam.toml only seed models the store does not
know yet; afterwards the store wins.

Examples:
  otrp oem --pki pki --token-file tam-data/oem-api-token reference-values list
  # a new TEE image for door-lock: accept it too (keeps the current ones)
  otrp oem ... reference-values set door-lock --add --measurement 5a5a...5a
  # replace everything the model accepts
  otrp oem ... reference-values set door-lock --measurement 6b6b...6b --hwversion 1.0
  otrp oem ... reference-values remove door-lock

An empty list accepts any value: `set MODEL` without --measurement accepts every TEE
image of the model. Every change is in the audit log (`otrp oem audit`).";

#[derive(Args, Debug)]
struct ReferenceArgs {
    #[command(subcommand)]
    command: ReferenceCommand,
}

#[derive(Subcommand, Debug)]
enum ReferenceCommand {
    /// List the reference values of every model.
    List,
    /// Set (replace, or with --add extend) the accepted values of a model.
    Set(SetReferenceArgs),
    /// Remove a model: its devices are refused (unless the TAM accepts unlisted models).
    Remove(RemoveReferenceArgs),
}

#[derive(Args, Debug)]
struct SetReferenceArgs {
    /// Device model, as its devices report it (EAT hwmodel, e.g. door-lock).
    model: String,
    /// Accepted TEE measurement, hex (repeatable); none: any measurement.
    #[arg(long = "measurement", value_name = "HEX")]
    measurements: Vec<String>,
    /// Accepted hardware version (repeatable); none: any version.
    #[arg(long = "hwversion", value_name = "VERSION")]
    hwversions: Vec<String>,
    /// Add to the model's current values instead of replacing them.
    #[arg(long)]
    add: bool,
}

#[derive(Args, Debug)]
struct RemoveReferenceArgs {
    /// Device model.
    model: String,
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters stay).
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_reference(v: &serde_json::Value) {
    let list = |k: &str| {
        let items: Vec<&str> = v[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        if items.is_empty() {
            "any".to_owned()
        } else {
            items.join(", ")
        }
    };
    println!("{}", v["model"].as_str().unwrap_or("?"));
    println!("  measurements: {}", list("measurements"));
    println!("  hwversions:   {}", list("hwversions"));
    println!(
        "  updated {} by {}",
        otrp_pki::rfc3339(v["updated_at"].as_u64().unwrap_or(0)),
        v["updated_by"].as_str().unwrap_or("?")
    );
}

fn reference_values(client: &ApiClient, cmd: &ReferenceCommand) -> Result<(), CliError> {
    match cmd {
        ReferenceCommand::List => {
            let v = block_on(client.get("/api/v1/reference-values"))??;
            let items = v.as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no reference values: every device is refused unless the TAM accepts unlisted models");
                println!("next: otrp oem reference-values set MODEL --measurement HEX");
            }
            for r in &items {
                print_reference(r);
            }
        }
        ReferenceCommand::Set(a) => {
            let v = block_on(client.call(
                reqwest::Method::PUT,
                &format!("/api/v1/reference-values/{}", path_segment(&a.model)),
                Some(&json!({
                    "measurements": a.measurements,
                    "hwversions": a.hwversions,
                    "add": a.add,
                })),
            ))??;
            print_reference(&v);
            println!("every TAM replica applies it within its reference_refresh_secs");
        }
        ReferenceCommand::Remove(a) => {
            block_on(client.call(
                reqwest::Method::DELETE,
                &format!("/api/v1/reference-values/{}", path_segment(&a.model)),
                None,
            ))??;
            println!(
                "model {} removed: its devices are refused at attestation (unless the TAM accepts unlisted models)",
                a.model
            );
        }
    }
    Ok(())
}

const CREATE_HELP: &str = "\
Create an account on the TAM (OEM only) and print its API token. The token is shown
once: the TAM keeps only its hash. Give it to the SP or device admin.

Example:
  otrp oem --pki pki --token-file tam-data/oem-api-token create-account sp1 --kind sp

Next: `otrp oem approve-sp sp1`, then `otrp oem grant-sd sd1 --sp sp1 --signer-chain ...`.";

const APPROVE_HELP: &str = "\
Approve an SP account: only approved SPs may publish TAs and create deployments.

Example:
  otrp oem --pki pki --token-file tam-data/oem-api-token approve-sp sp1

Next: `otrp oem grant-sd sd1 --sp sp1 --signer-chain pki/issued/sp/sp1.chain.pem`.";

const GRANT_HELP: &str = "\
Create a Security Domain for an SP. The TAM signs the SD manifest that creates the SD on
devices; it lists the SP's TA-signer key (from --signer-chain, which must chain to the SP
root). Only TAs signed by that key can be published into the SD, and the TEE checks the
same list.

Example:
  otrp oem --pki pki --token-file tam-data/oem-api-token \\
      grant-sd sd1 --sp sp1 --signer-chain pki/issued/sp/sp1.chain.pem

Next: the SP runs `otrp sp publish TA.wasm --component sd1/NAME ...`.";

const REGISTER_HELP: &str = "\
Register a device made by `otrp device provision`: the TEE certificate chain must lead to
the TEE root the TAM trusts and name the UEID of device.json. Tags let deployments
target groups (--target tag:NAME). When the device's Agent names its key by kid only,
pass its public key with --agent-key.

Example:
  otrp oem --pki pki --token-file tam-data/oem-api-token \\
      register-device devices/dev-0001 --tag pilot

Next: an SP deploys to it: `otrp sp deploy --component sd1/NAME --target tag:pilot`.";

#[derive(ValueEnum, Clone, Copy, Debug)]
enum KindArg {
    /// a Service Provider
    Sp,
    /// a device administrator
    DeviceAdmin,
    /// another OEM operator
    Oem,
}

#[derive(Args, Debug)]
struct CreateAccountArgs {
    /// Account id (1-64 of A-Z a-z 0-9 - _ .).
    id: String,
    /// Kind of account.
    #[arg(long, value_enum, default_value = "sp")]
    kind: KindArg,
}

#[derive(Args, Debug)]
struct ApproveArgs {
    /// The SP account id.
    sp: String,
    /// Withdraw approval instead.
    #[arg(long)]
    revoke: bool,
}

#[derive(Args, Debug)]
struct GrantArgs {
    /// SD name (the first segment of every component id inside it).
    name: String,
    /// The SP it is for.
    #[arg(long)]
    sp: String,
    /// The SP's TA-signer certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE")]
    signer_chain: PathBuf,
}

#[derive(Args, Debug)]
struct RegisterArgs {
    /// Device directory (with device.json and tee-chain.pem).
    device_dir: PathBuf,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The Agent's public key (SPKI PEM), when its evidence names it by kid only.
    #[arg(long, value_name = "FILE")]
    agent_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// How many entries.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

fn read(path: &std::path::Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            format!("cannot read {what} {}: {e}", path.display()),
            "check the path",
        )
    })
}

/// `otrp oem`.
pub fn run(args: &OemArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn run_inner(args: &OemArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.client)?;
    match &args.command {
        OemCommand::CreateAccount(a) => {
            let kind = match a.kind {
                KindArg::Sp => "sp",
                KindArg::DeviceAdmin => "device-admin",
                KindArg::Oem => "oem",
            };
            let v = block_on(client.post("/api/v1/accounts", &json!({"id": a.id, "kind": kind})))??;
            println!("account {} ({kind}) created", a.id);
            println!(
                "API token (shown once): {}",
                v["token"].as_str().unwrap_or("?")
            );
            if kind == "sp" {
                println!("next: otrp oem approve-sp {}", a.id);
            }
        }
        OemCommand::ApproveSp(a) => {
            block_on(client.post(
                &format!("/api/v1/sps/{}/approve", a.sp),
                &json!({"approved": !a.revoke}),
            ))??;
            if a.revoke {
                println!("SP {} is no longer approved", a.sp);
            } else {
                println!("SP {} approved", a.sp);
                println!(
                    "next: otrp oem grant-sd SD --sp {} --signer-chain SP_CHAIN.pem",
                    a.sp
                );
            }
        }
        OemCommand::GrantSd(a) => {
            let chain = read(&a.signer_chain, "signer chain")?;
            let v = block_on(client.post(
                "/api/v1/sds",
                &json!({"name": a.name, "sp_id": a.sp, "signer_chain_pem": chain}),
            ))??;
            println!(
                "SD {} granted to {} (SD manifest #{}; signer {})",
                a.name,
                a.sp,
                v["manifest_seq"],
                v["signers"][0].as_str().unwrap_or("?")
            );
            println!(
                "next: the SP publishes with `otrp sp publish TA.wasm --component {}/NAME --seq 1 --key KEY --cert CHAIN`",
                a.name
            );
        }
        OemCommand::RegisterDevice(a) => {
            let device: serde_json::Value =
                serde_json::from_str(&read(&a.device_dir.join("device.json"), "device.json")?)
                    .map_err(|e| {
                        CliError::new(
                            format!("device.json: {e}"),
                            "pass a directory written by `otrp device provision`",
                        )
                    })?;
            let chain_file = device["files"]["tee_chain"]
                .as_str()
                .unwrap_or("tee-chain.pem")
                .to_owned();
            let chain = read(&a.device_dir.join(chain_file), "TEE chain")?;
            let agent_key = match &a.agent_key {
                Some(p) => Some(read(p, "Agent key")?),
                None => None,
            };
            let v = block_on(client.post(
                "/api/v1/devices",
                &json!({"device": device, "tee_chain_pem": chain, "tags": a.tags, "agent_key_pem": agent_key}),
            ))??;
            println!(
                "device {} ({}) registered{}",
                v["id"].as_str().unwrap_or("?"),
                v["model"].as_str().unwrap_or("?"),
                if a.tags.is_empty() {
                    String::new()
                } else {
                    format!(" with tags {}", a.tags.join(", "))
                }
            );
            println!(
                "next: `otrp sp deploy --component SD/NAME --target device:{}`",
                v["id"].as_str().unwrap_or("ID")
            );
        }
        OemCommand::Devices => print_json(&block_on(client.get("/api/v1/devices"))??),
        OemCommand::ReferenceValues(a) => reference_values(&client, &a.command)?,
        OemCommand::Audit(a) => {
            let v = block_on(client.get(&format!("/api/v1/audit?limit={}", a.limit)))??;
            for e in v.as_array().into_iter().flatten() {
                println!(
                    "{}  {:<14} {:<20} {:<30} {}",
                    otrp_pki::rfc3339(e["at"].as_u64().unwrap_or(0)),
                    e["actor"].as_str().unwrap_or(""),
                    e["action"].as_str().unwrap_or(""),
                    e["object"].as_str().unwrap_or(""),
                    e["detail"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
