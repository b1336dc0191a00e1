//! `otrp broker run`: the TEEP Broker of a device.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use otrp_broker::{Broker, BrokerConfig};
use otrp_tee_daemon::parse_unix_addr;

/// Relay TEEP messages between a TAM and the device's TEE daemon.
#[derive(Args, Debug)]
pub struct BrokerArgs {
    #[command(subcommand)]
    command: BrokerCommand,
}

#[derive(Subcommand, Debug)]
enum BrokerCommand {
    /// Run device-initiated TEEP sessions with a TAM over HTTP(S).
    #[command(long_about = RUN_HELP)]
    Run(RunArgs),
}

const RUN_HELP: &str = "\
Run device-initiated TEEP sessions (draft-ietf-teep-otrp-over-http): POST an empty body
to --tam, hand each TAM message to the TEE daemon at --tee untouched and POST each TEE
reply back, until the TAM answers 204. URIs the Agent asks for are fetched and handed
over. A session runs at start, then every --interval seconds (with jitter), and at once
when a Client App calls `otrp client request-ta` / `unrequest-ta`. Failures back off
exponentially up to --backoff-max; TAM and TEE restarts are survived. Nothing is ever
resent: TEEP tokens are one-time at both ends, so an Update cannot apply twice.

With --profile otrp the Broker speaks OTrP (JSON/JOSE, application/otrp+json) instead of
TEEP, over HTTP(S): the empty POST opens an OTrP session, the TAM's signed requests
(GetDeviceState, CreateSD, InstallTA, ...) go to the TEE daemon untouched
(ProcessOtrpMessage) and its signed responses go back (the GetDeviceTEEStateResponse
wrapped in the GetDeviceStateResponse array) until 204. The TEE must trust the TAM's
certificate (`otrp tee run --tam-cert`), which carries the TAM's tamid. After each
session, when the device has a model key (`otrp device provision --batch MODEL`), the
Broker also fetches the model's OTrP batch package (GET /tam/otrp-batch/MODEL with
If-None-Match), hands a new one to the TEE and POSTs the TEE-signed result.

With --once, one session runs and the exit code tells whether it succeeded.";

/// The protocol a Broker speaks with its TAM.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileArg {
    /// TEEP: CBOR/COSE, application/teep+cbor, over HTTP(S) or CoAP.
    Teep,
    /// OTrP: JSON/JOSE, application/otrp+json, over HTTP(S).
    Otrp,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The TAM's TEEP URI (e.g. https://tam.example:8443/tam, or coap://HOST:PORT/teep
    /// for TEEP over CoAP).
    #[arg(long, value_name = "URL")]
    tam: String,
    /// The TEE daemon: unix:PATH.
    #[arg(long, value_name = "unix:PATH")]
    tee: String,
    /// CA certificate(s) (PEM) the TAM's HTTPS certificate must chain to.
    #[arg(long = "tam-ca", value_name = "PEM")]
    tam_ca: Option<PathBuf>,
    /// Seconds between policy checks.
    #[arg(long, default_value_t = 300.0)]
    interval: f64,
    /// Random spread of the interval (0.2 = ±20%).
    #[arg(long, default_value_t = 0.2)]
    jitter: f64,
    /// First retry delay after a failure, in seconds.
    #[arg(long, default_value_t = 1.0)]
    backoff_min: f64,
    /// Largest retry delay, in seconds.
    #[arg(long, default_value_t = 300.0)]
    backoff_max: f64,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 30.0)]
    http_timeout: f64,
    /// CoAP block size in bytes (16–1024) for a coap:// TAM.
    #[arg(long, default_value_t = 1024)]
    coap_block_size: usize,
    /// Run one session and exit (0 on success).
    #[arg(long)]
    once: bool,
    /// The protocol spoken with the TAM: teep (CBOR/COSE) or otrp (JSON/JOSE, HTTP(S)
    /// only; the TAM must serve application/otrp+json).
    #[arg(long, value_enum, default_value = "teep")]
    profile: ProfileArg,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("otrp broker: {msg}");
    ExitCode::FAILURE
}

fn secs(v: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|e| format!("--{what}: {e}"))
}

/// Runs `otrp broker`.
pub fn run(args: &BrokerArgs) -> ExitCode {
    match &args.command {
        BrokerCommand::Run(a) => match run_broker(a) {
            Ok(code) => code,
            Err(e) => fail(e),
        },
    }
}

fn run_broker(a: &RunArgs) -> Result<ExitCode, String> {
    let mut cfg = BrokerConfig::new(a.tam.clone(), parse_unix_addr(&a.tee));
    if let Some(p) = &a.tam_ca {
        cfg.tam_ca = Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    cfg.interval = secs(a.interval, "interval")?;
    cfg.jitter = a.jitter;
    cfg.backoff_min = secs(a.backoff_min, "backoff-min")?;
    cfg.backoff_max = secs(a.backoff_max, "backoff-max")?;
    cfg.http_timeout = secs(a.http_timeout, "http-timeout")?;
    cfg.coap_block_size = a.coap_block_size;
    cfg.profile = match a.profile {
        ProfileArg::Teep => otrp_broker::Profile::Teep,
        ProfileArg::Otrp => {
            if otrp_broker::is_coap_url(&a.tam) {
                return Err("--profile otrp runs over HTTP(S) only, not coap://".into());
            }
            otrp_broker::Profile::Otrp
        }
    };
    let mut broker = Broker::new(cfg).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        if a.once {
            let r = broker.session().await.map_err(|e| e.to_string())?;
            println!(
                "session complete: {} TAM message(s), {} repl(ies), {} fetch(es)",
                r.tam_messages, r.tee_replies, r.fetches
            );
            for e in &r.events {
                println!("  {}: {}", e.kind, e.detail);
            }
            let refused = r.count("refused") + r.count("tam-error");
            return Ok(if refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        eprintln!("otrp broker: relaying {} <-> {}", a.tam, a.tee);
        broker
            .run(crate::tee::shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        let (ok, failed) = broker.counts();
        eprintln!("otrp broker: stopped after {ok} session(s), {failed} failure(s)");
        Ok(ExitCode::SUCCESS)
    })
}
