//! `otrp tee run`: the TEE daemon of a provisioned device.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use otrp_tee_daemon::{parse_unix_addr, server, TamCert, Tee, TeeOptions};

/// Run the simulated TEE of a provisioned device.
#[derive(Args, Debug)]
pub struct TeeArgs {
    #[command(subcommand)]
    command: TeeCommand,
}

#[derive(Subcommand, Debug)]
enum TeeCommand {
    /// Boot the device's TEE and serve the local protocol on a unix socket.
    #[command(long_about = RUN_HELP)]
    Run(RunArgs),
}

const RUN_HELP: &str = "\
Boot the simulated TEE of a device made by `otrp device provision`: unseal
sealed-state.cbor with efuse.key, open the sealed store DEVDIR/tee-store (crash-safe:
an Update commits all or nothing), and serve the local protocol (length-prefixed CBOR)
on --listen unix:PATH for the Broker (ProcessTeepMessage, RequestTA, UnrequestTA,
RequestPolicyCheck) and Client Apps (OpenSession, Invoke, CloseSession, Status).

The TEE accepts TEEP messages only from the TAMs whose certificate chains are given
(--tam-cert, or every TAM certificate of --pki DIR); each must chain to the TAM root
sealed into the device at provisioning. SIGINT or SIGTERM stop it gracefully.";

#[derive(Args, Debug)]
struct RunArgs {
    /// The device directory.
    #[arg(long, value_name = "DEVDIR")]
    device: PathBuf,
    /// Where to listen: unix:PATH.
    #[arg(long, value_name = "unix:PATH")]
    listen: String,
    /// A TAM certificate chain (PEM, leaf first) to trust; repeatable.
    #[arg(long = "tam-cert", value_name = "PEM")]
    tam_certs: Vec<PathBuf>,
    /// An OEM-operated TAM's certificate chain (PEM); repeatable.
    #[arg(long = "oem-tam-cert", value_name = "PEM")]
    oem_tam_certs: Vec<PathBuf>,
    /// Trust every TAM certificate of this PKI directory.
    #[arg(long, value_name = "DIR")]
    pki: Option<PathBuf>,
    /// Do not fsync the sealed store (survives a killed process, not a power cut).
    #[arg(long)]
    no_fsync: bool,
    /// Answer to this IANA Private Enterprise Number as the SUIT vendor id instead of the
    /// oemid UUID: accept manifests signed with `otrp sp publish --vendor-pen N` of the
    /// same N, refuse those of another vendor (PEN or UUID) and those with a UUID vendor id.
    #[arg(long, value_name = "PEN")]
    vendor_pen: Option<u64>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("otrp tee: {msg}");
    ExitCode::FAILURE
}

/// Runs `otrp tee`.
pub fn run(args: &TeeArgs) -> ExitCode {
    match &args.command {
        TeeCommand::Run(a) => run_daemon(a),
    }
}

fn run_daemon(a: &RunArgs) -> ExitCode {
    let mut tams = Vec::new();
    for p in &a.tam_certs {
        match TamCert::from_file(p, false) {
            Ok(c) => tams.push(c),
            Err(e) => return fail(e),
        }
    }
    for p in &a.oem_tam_certs {
        match TamCert::from_file(p, true) {
            Ok(c) => tams.push(c),
            Err(e) => return fail(e),
        }
    }
    if let Some(dir) = &a.pki {
        let pki = match otrp_pki::fs::load_pki(dir) {
            Ok(p) => p,
            Err(e) => return fail(format!("{}: {e}", dir.display())),
        };
        match otrp_fleet::pki_tam_certs(&pki) {
            Ok(c) => tams.extend(c),
            Err(e) => return fail(e),
        }
    }
    if tams.is_empty() {
        return fail("no TAM to trust: give --tam-cert PEM (or --pki DIR)");
    }
    let opts = TeeOptions {
        tams,
        fsync: !a.no_fsync,
        vendor: a.vendor_pen.map(otrp_suit::VendorId::pen),
        ..TeeOptions::default()
    };
    let tee = match Tee::open_device_dir(&a.device, &opts) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let path = parse_unix_addr(&a.listen);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("runtime: {e}")),
    };
    let result = rt.block_on(async {
        let listener = server::bind(&path)?;
        tracing::info!(socket = %path.display(), "TEE daemon listening");
        eprintln!("otrp tee: listening on unix:{}", path.display());
        server::serve(
            Arc::new(Mutex::new(tee)),
            listener,
            path.clone(),
            shutdown_signal(),
        )
        .await
    });
    match result {
        Ok(()) => {
            eprintln!("otrp tee: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
