//! `otrp fleet run`: N simulated devices (TEE + Broker each) in one process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use otrp_broker::mini_tam::{MiniTam, MiniTamKeys};
use otrp_broker::{Http, NetSim};
use otrp_fleet::{resident_bytes, Fleet, FleetOptions, RunOptions};

use crate::device::ConfigArg;

/// Simulate a fleet of devices against a TAM.
#[derive(Args, Debug)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand, Debug)]
enum FleetCommand {
    /// Provision N devices from a PKI and run one TEEP session per device (per round).
    #[command(long_about = RUN_HELP)]
    Run(RunArgs),
}

const RUN_HELP: &str = "\
Provision --devices N simulated devices from the PKI in --pki DIR (model --model,
management configuration --config), each a TEE (the TEE daemon's glue, store in a
temporary directory) with a Broker loop, all in this process; then run one TEEP session
per device against --tam (--rounds times), --concurrency at a time, over one shared
HTTP(S) client (--tam-ca PEM for HTTPS), with optional simulated network delay and loss.
Prints a summary: devices converged, failures with reasons, sessions per second, and
memory per simulated device.

Without a TAM server, --demo-tam NAME=FILE.wasm starts a minimal in-process TAM on
loopback that deploys those TAs (signed with the PKI's TAM and SP keys).";

#[derive(Args, Debug)]
struct RunArgs {
    /// The TAM's TEEP URI.
    #[arg(long, value_name = "URL", required_unless_present = "demo_tam")]
    tam: Option<String>,
    /// Number of devices.
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// The PKI directory (from `otrp pki init`).
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// Device model (EAT hwmodel).
    #[arg(long, default_value = "sim-device")]
    model: String,
    /// Management configuration.
    #[arg(long, value_enum, default_value = "oem-gated")]
    config: ConfigArg,
    /// Sessions in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Delay added to every HTTP request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Probability of losing a request or its response (0..1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Session attempts per device when the transport fails.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Rounds of sessions (one session per device each).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// CA certificate(s) (PEM) the TAM's HTTPS certificate must chain to.
    #[arg(long = "tam-ca", value_name = "PEM")]
    tam_ca: Option<PathBuf>,
    /// Start an in-process mini TAM deploying NAME=FILE.wasm (repeatable).
    #[arg(long = "demo-tam", value_name = "NAME=FILE")]
    demo_tam: Vec<String>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("otrp fleet: {msg}");
    ExitCode::FAILURE
}

/// Runs `otrp fleet`.
pub fn run(args: &FleetArgs) -> ExitCode {
    match &args.command {
        FleetCommand::Run(a) => match run_fleet(a) {
            Ok(code) => code,
            Err(e) => fail(e),
        },
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

fn run_fleet(a: &RunArgs) -> Result<ExitCode, String> {
    let mut pki =
        otrp_pki::fs::load_pki(&a.pki).map_err(|e| format!("{}: {e}", a.pki.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let _guard = rt.enter();

    let mut demo: Option<(MiniTam, String, tokio::sync::oneshot::Sender<()>)> = None;
    if !a.demo_tam.is_empty() {
        let keys = MiniTamKeys::from_pki(&pki).map_err(|e| e.to_string())?;
        let tam = MiniTam::new(keys, "demo", "demo-sp").map_err(|e| e.to_string())?;
        for spec in &a.demo_tam {
            let (name, file) = spec
                .split_once('=')
                .ok_or_else(|| format!("--demo-tam {spec}: expected NAME=FILE"))?;
            let wasm = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
            tam.publish(name, &wasm, 1, true)
                .map_err(|e| e.to_string())?;
        }
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("bind: {e}"))?;
        let url = format!(
            "http://{}/tam",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tam.clone();
        rt.spawn(async move {
            let _ = server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        println!("mini TAM on {url}");
        demo = Some((tam, url, tx));
    }
    let tam_url = match (&a.tam, &demo) {
        (Some(u), _) => u.clone(),
        (None, Some((_, u, _))) => u.clone(),
        (None, None) => return Err("give --tam URL or --demo-tam NAME=FILE".into()),
    };

    let rss0 = resident_bytes();
    let t0 = Instant::now();
    let pb = bar(a.devices as u64, "provision");
    let mut opts = FleetOptions::new(a.model.clone(), a.config.into());
    let fleet =
        Fleet::provision_with(&mut pki, a.devices, &opts, Some(&pb)).map_err(|e| e.to_string())?;
    opts.tams.clear();
    pb.finish();
    let provision_time = t0.elapsed();
    let rss1 = resident_bytes();

    let tam_ca = match &a.tam_ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    let http = Http::new(tam_ca.as_deref(), Duration::from_secs(30)).map_err(|e| e.to_string())?;
    let run_opts = RunOptions {
        concurrency: a.concurrency,
        attempts: a.attempts,
        net: NetSim {
            delay: Duration::from_millis(a.delay_ms),
            loss: a.loss,
        },
        ..RunOptions::default()
    };
    let mut all_ok = true;
    for round in 1..=a.rounds.max(1) {
        let pb = bar(fleet.len() as u64, &format!("round {round}"));
        let summary = rt.block_on(fleet.run_with(&http, &tam_url, &run_opts, Some(&pb)));
        pb.finish();
        println!("round {round}: {summary}");
        all_ok &= summary.all_converged();
    }
    let rss2 = resident_bytes();
    println!(
        "provisioned {} device(s) in {:.2}s",
        fleet.len(),
        provision_time.as_secs_f64()
    );
    if let (Some(r0), Some(r1), Some(r2)) = (rss0, rss1, rss2) {
        let n = fleet.len().max(1) as f64;
        println!(
            "memory: {:.1} KiB per device after provisioning, {:.1} KiB per device after sessions (process RSS {:.1} MiB)",
            r1.saturating_sub(r0) as f64 / n / 1024.0,
            r2.saturating_sub(r0) as f64 / n / 1024.0,
            r2 as f64 / 1048576.0
        );
    }
    if let Some((tam, _, stop)) = demo {
        let s = tam.stats();
        println!(
            "mini TAM: {} session(s), {} update(s), {} success(es), {} error(s), {} refused",
            s.sessions, s.updates, s.successes, s.errors, s.refused
        );
        let _ = stop.send(());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
