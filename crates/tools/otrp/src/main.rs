//! `otrp`: the OpenTrust command line.
//!
//! One binary for every role: inspect protocol messages today; the TAM, Broker, TEE,
//! PKI and SP tools join as they land.

use otrp::inspect;

/// mimalloc instead of glibc's malloc: a busy TAM spent 13 % of its CPU in glibc's
/// allocator (mostly `malloc_consolidate` and chunk unlinking across hyper, SQLite and
/// CBOR buffers); with mimalloc `otrp bench tam` measured 5 % less TAM CPU per exchange
/// (docs/PERFORMANCE.md, "Issue #8 item 8").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_tam;
mod broker;
mod client;
mod device;
mod fleet;
mod oem;
mod pki;
mod quickstart;
mod sp;
mod sp_batch;
mod tam;
mod tee;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// OpenTrust: install, update and delete Trusted Applications in TEEs (OTrP and TEEP).
#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode and explain a TEEP, SUIT, EAT, COSE or OTrP message; check round trips and
    /// signatures.
    Inspect(inspect::InspectArgs),
    /// Development PKI: CAs for TEE, TFW/OEM, TAM and SP; issue, revoke, verify, export keys.
    Pki(pki::PkiArgs),
    /// Device factory step: provision TEE/TFW identities and sealed state; show a device.
    Device(device::DeviceArgs),
    /// The TEE daemon of a provisioned device (`otrp tee run --device DEVDIR --listen unix:PATH`).
    Tee(tee::TeeArgs),
    /// The TEEP Broker: sessions between a TAM and the TEE daemon over HTTP(S).
    Broker(broker::BrokerArgs),
    /// The local Client API of Client Apps: invoke a TA, RequestTA, UnrequestTA, status.
    Client(client::ClientArgs),
    /// Fleet simulator: N devices (TEE + Broker each) in one process against a TAM.
    Fleet(fleet::FleetArgs),
    /// The TAM server (`otrp tam serve`) and its status.
    Tam(tam::TamArgs),
    /// OEM administration of a TAM: accounts, SP approval, SD grants, devices, audit.
    Oem(oem::OemArgs),
    /// Service Provider tools: publish TAs (signed here), deploy, follow rollouts.
    Sp(sp::SpArgs),
    /// Play the use cases end to end: PKI, TAM over HTTPS, simulated devices, scenarios.
    Quickstart(quickstart::QuickstartArgs),
    /// Constrained-device benchmarks: bytes and LoRaWAN frames per operation (`wire`),
    /// TAM CPU and signatures per device in batch vs per-device mode (`batch`).
    Bench(bench::BenchArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Pki(args) => pki::run(&args),
        Command::Device(args) => device::run(&args),
        Command::Tee(args) => tee::run(&args),
        Command::Broker(args) => broker::run(&args),
        Command::Client(args) => client::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Tam(args) => tam::run(&args),
        Command::Oem(args) => oem::run(&args),
        Command::Sp(args) => sp::run(&args),
        Command::Quickstart(args) => quickstart::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
