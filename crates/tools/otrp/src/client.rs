//! `otrp client`: what a Client App in the rich OS does: call its TA, ask for it, give it up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use otrp_tee_daemon::{component_from_name, parse_unix_addr, TeeClient};

/// The local Client API: invoke a TA, RequestTA / UnrequestTA, TEE status.
#[derive(Args, Debug)]
pub struct ClientArgs {
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Open a session with a TA, invoke one command, close it; print the output as hex.
    Invoke(InvokeArgs),
    /// RequestTA: this app needs the TA; the Broker asks the TAM for it at once.
    RequestTa(TaArgs),
    /// UnrequestTA: this app no longer needs the TA.
    UnrequestTa(TaArgs),
    /// Show what the TEE holds (components, manifests, SDs, pending requests) as JSON.
    Status(TeeAddr),
}

#[derive(Args, Debug)]
struct TeeAddr {
    /// The TEE daemon: unix:PATH.
    #[arg(long, value_name = "unix:PATH")]
    tee: String,
}

#[derive(Args, Debug)]
struct InvokeArgs {
    #[command(flatten)]
    tee: TeeAddr,
    /// The TA: its full id (`payments:payment-signer`) or, when unique, its last segment.
    #[arg(long)]
    ta: String,
    /// The command number.
    #[arg(long)]
    cmd: u32,
    /// Input: hex, or @FILE for a file's bytes (empty by default).
    #[arg(long, default_value = "")]
    data: String,
    /// Write the raw output to FILE instead of printing hex.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TaArgs {
    #[command(flatten)]
    tee: TeeAddr,
    /// The TA component id, segments separated by `:` (e.g. `payments:payment-signer`).
    #[arg(long)]
    ta: String,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("otrp client: {msg}");
    ExitCode::FAILURE
}

fn input(data: &str) -> Result<Vec<u8>, String> {
    if let Some(path) = data.strip_prefix('@') {
        return std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    }
    let clean: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean.trim_start_matches("0x"))
        .map_err(|e| format!("--data: not hex ({e}); use @FILE for a file"))
}

/// Runs `otrp client`.
pub fn run(args: &ClientArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("runtime: {e}")),
    };
    match rt.block_on(run_async(&args.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn connect(addr: &TeeAddr) -> Result<TeeClient, String> {
    let path = parse_unix_addr(&addr.tee);
    TeeClient::connect(&path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

async fn run_async(cmd: &ClientCommand) -> Result<(), String> {
    match cmd {
        ClientCommand::Invoke(a) => {
            let data = input(&a.data)?;
            let mut c = connect(&a.tee).await?;
            let out = c
                .invoke_once(&a.ta, a.cmd, data)
                .await
                .map_err(|e| e.to_string())?;
            match &a.out {
                Some(p) => std::fs::write(p, &out).map_err(|e| format!("{}: {e}", p.display()))?,
                None => println!("{}", hex::encode(&out)),
            }
        }
        ClientCommand::RequestTa(a) => {
            let id = component_from_name(&a.ta).map_err(|e| e.to_string())?;
            let mut c = connect(&a.tee).await?;
            c.request_ta(&id).await.map_err(|e| e.to_string())?;
            println!("requested {}", a.ta);
        }
        ClientCommand::UnrequestTa(a) => {
            let id = component_from_name(&a.ta).map_err(|e| e.to_string())?;
            let mut c = connect(&a.tee).await?;
            c.unrequest_ta(&id).await.map_err(|e| e.to_string())?;
            println!("unrequested {}", a.ta);
        }
        ClientCommand::Status(a) => {
            let mut c = connect(a).await?;
            let s = c.status().await.map_err(|e| e.to_string())?;
            let json = serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?;
            println!("{json}");
        }
    }
    Ok(())
}
