//! `otrp tam`: run the TAM server (`serve`) and ask it how it is doing (`status`); the
//! admin-API client shared by `otrp oem` and `otrp sp`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use otrp_tam_server::config::{PolicyConfig, ServerConfig, DEFAULT_LISTEN};
use serde_json::Value;

/// Run an OpenTrust TAM server, or query one.
#[derive(Args, Debug)]
pub struct TamArgs {
    #[command(subcommand)]
    command: TamCommand,
}

#[derive(Subcommand, Debug)]
enum TamCommand {
    /// Run the TAM: TEEP over HTTPS at /tam, the admin API at /api/v1, /metrics.
    #[command(long_about = SERVE_HELP)]
    Serve(ServeArgs),
    /// Show what a running TAM knows (backend, policy, devices, components, deployments).
    #[command(long_about = STATUS_HELP)]
    Status(StatusArgs),
}

const SERVE_HELP: &str = "\
Run the TAM server until SIGINT or SIGTERM (then open requests finish, at most 10 s).

It serves TEEP over HTTP(S) at POST /tam (draft-ietf-teep-otrp-over-http-15:
application/teep+cbor; an empty body opens a session; 200 with a message, 204 when done),
the admin REST API at /api/v1 (OpenAPI document at /openapi.json), Prometheus metrics
at /metrics and /healthz. Everything is kept in the store (SQLite in --data-dir by
default, or PostgreSQL with --database postgres://...), so a restarted TAM continues every
open session and several TAMs on one PostgreSQL serve one fleet.

HTTPS is the default, with the server certificate and TAM signing key of a development
PKI (--pki DIR from `otrp pki init`) or given files (--cert/--key/--signing-key).

On an empty store it creates the OEM account `oem` and writes its API token to
DATA_DIR/oem-api-token (mode 0600).

Example:
  otrp pki init --out pki
  otrp tam serve --pki pki --data-dir tam-data --config tam.toml

tam.toml holds the rest (reference values per model, policy, limits), e.g.:
  policy = \"oem-gated\"
  [[reference]]
  model = \"door-lock\"
  measurements = []        # hex SHA-256 of accepted TEE images; empty accepts any

Next: `otrp tam status --pki pki --token-file tam-data/oem-api-token`, then
`otrp oem create-account sp1 --kind sp` and `otrp oem approve-sp sp1`.";

const STATUS_HELP: &str = "\
Ask a running TAM for its status as seen by your account: version, store backend,
management policy, devices, the components and deployments you may see.

Example:
  otrp tam status --tam https://127.0.0.1:8443 --pki pki --token-file tam-data/oem-api-token

Next: `otrp sp rollout status --watch` for the progress of deployments.";

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PolicyArg {
    /// an approved SP creates its own SDs
    OemGated,
    /// only the OEM creates (grants) SDs
    OemOwnedSd,
    /// new manifests wait for the OEM's co-signature
    DualControl,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Data directory (the SQLite file and the bootstrap OEM token live here).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store: sqlite:PATH or postgres://USER@HOST/DB (default: SQLite in --data-dir).
    #[arg(long, value_name = "URL", env = "OTRP_TAM_DATABASE")]
    database: Option<String>,
    /// Development PKI directory: server certificate, TAM signer, TEE and SP roots.
    #[arg(long, value_name = "DIR")]
    pki: Option<PathBuf>,
    /// TLS certificate chain (PEM), instead of the PKI's server certificate.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// TLS private key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// TAM TEEP signing key (PKCS#8 PEM), instead of the PKI's TAM signer.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Certificate chain (PEM, leaf first) of --signing-key: OTrP sends it as x5c and
    /// takes the TAM's tamid from it (without it, OTrP JSON is answered 415).
    #[arg(long, value_name = "FILE")]
    signing_cert: Option<PathBuf>,
    /// Serve plain HTTP (TEEP messages stay signed end to end; the admin API does not).
    #[arg(long)]
    plain_http: bool,
    /// Management configuration (overrides the config file).
    #[arg(long, value_enum)]
    policy: Option<PolicyArg>,
    /// Accept evidence of models without reference values (any measurement).
    #[arg(long)]
    accept_unlisted_models: bool,
    /// Also serve TEEP over CoAP (UDP) at coap://ADDR/teep, e.g. 127.0.0.1:5683.
    #[arg(long, value_name = "ADDR")]
    coap_listen: Option<String>,
    /// CoAP block size in bytes for block-wise transfer: 16, 32, 64, 128, 256, 512 or 1024.
    #[arg(long, value_name = "BYTES")]
    coap_block_size: Option<usize>,
    /// TOML file with everything else (see --help).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// How to reach a TAM's admin API.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the TAM.
    #[arg(
        long,
        value_name = "URL",
        env = "OTRP_TAM_URL",
        default_value = "https://127.0.0.1:8443"
    )]
    pub tam: String,
    /// API token (or --token-file; OTRP_API_TOKEN works too).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "OTRP_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// File holding the API token (e.g. DATA_DIR/oem-api-token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust this root certificate (PEM) for the TAM's HTTPS certificate.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Trust the TAM root of this development PKI (DIR/tam/root-ca.pem).
    #[arg(long, value_name = "DIR")]
    pub pki: Option<PathBuf>,
}

/// A failed CLI step: what happened and what to do next.
pub struct CliError {
    /// What went wrong.
    pub what: String,
    /// What to do next.
    pub next: String,
}

impl CliError {
    /// A new error.
    pub fn new(what: impl Into<String>, next: impl Into<String>) -> Self {
        CliError {
            what: what.into(),
            next: next.into(),
        }
    }
}

/// Prints an error with its next step; exit code 1.
pub fn fail(e: CliError) -> ExitCode {
    eprintln!("error: {}", e.what);
    if !e.next.is_empty() {
        eprintln!("next: {}", e.next);
    }
    ExitCode::FAILURE
}

/// The admin-API client.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ApiClient {
    /// From the command-line arguments.
    pub fn new(args: &ClientArgs) -> Result<ApiClient, CliError> {
        let token = match (&args.token, &args.token_file) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| {
                    CliError::new(
                        format!("cannot read {}: {e}", f.display()),
                        "pass the file the OEM gave you, or --token",
                    )
                })?
                .trim()
                .to_owned(),
            (None, None) => {
                return Err(CliError::new(
                    "no API token",
                    "pass --token TOKEN, --token-file FILE or set OTRP_API_TOKEN (the OEM's is in DATA_DIR/oem-api-token)",
                ))
            }
        };
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60));
        let ca = match (&args.ca, &args.pki) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(dir)) => Some(dir.join("tam").join("root-ca.pem")),
            (None, None) => None,
        };
        if let Some(f) = ca {
            let pem = std::fs::read(&f).map_err(|e| {
                CliError::new(
                    format!("cannot read {}: {e}", f.display()),
                    "pass the TAM root certificate with --ca FILE or the PKI with --pki DIR",
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CliError::new(format!("{}: {e}", f.display()), "pass a PEM certificate")
            })?;
            b = b.tls_built_in_root_certs(false).add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| CliError::new(e.to_string(), ""))?;
        Ok(ApiClient {
            http,
            base: args.tam.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// One call; returns the JSON body of a 2xx answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            CliError::new(
                format!("cannot reach the TAM at {}: {e}", self.base),
                "check --tam URL, that `otrp tam serve` runs, and --pki/--ca for its certificate",
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(v);
        }
        let what = v["error"]
            .as_str()
            .map_or_else(|| format!("{status}: {v}"), |e| format!("{status}: {e}"));
        let next = v["hint"].as_str().unwrap_or("").to_owned();
        Err(CliError::new(what, next))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// POST.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("tokio runtime: {e}"), ""))?;
    Ok(rt.block_on(f))
}

/// Prints JSON for people.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// `otrp tam`.
pub fn run(args: &TamArgs) -> ExitCode {
    match &args.command {
        TamCommand::Serve(a) => match serve(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        TamCommand::Status(a) => match status(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
    }
}

fn serve(a: &ServeArgs) -> Result<(), CliError> {
    let mut config = match &a.config {
        Some(f) => ServerConfig::from_file(f).map_err(|e| {
            CliError::new(
                e.to_string(),
                "fix the config file (see `otrp tam serve --help`)",
            )
        })?,
        None => ServerConfig::default(),
    };
    config.listen = a.listen.parse().map_err(|_| {
        CliError::new(
            format!("--listen {:?} is not an address", a.listen),
            "use HOST:PORT, e.g. 127.0.0.1:8443",
        )
    })?;
    if let Some(d) = &a.data_dir {
        config.data_dir = d.clone();
    }
    if a.database.is_some() {
        config.database = a.database.clone();
    }
    if a.pki.is_some() {
        config.pki = a.pki.clone();
    }
    if a.cert.is_some() {
        config.cert = a.cert.clone();
    }
    if a.key.is_some() {
        config.key = a.key.clone();
    }
    if a.signing_key.is_some() {
        config.signing_key = a.signing_key.clone();
    }
    if a.signing_cert.is_some() {
        config.signing_cert = a.signing_cert.clone();
    }
    config.plain_http |= a.plain_http;
    config.accept_unlisted_models |= a.accept_unlisted_models;
    if let Some(c) = &a.coap_listen {
        config.coap_listen = Some(c.parse().map_err(|_| {
            CliError::new(
                format!("--coap-listen {c:?} is not an address"),
                "use HOST:PORT, e.g. 127.0.0.1:5683",
            )
        })?);
    }
    if let Some(b) = a.coap_block_size {
        config.coap_block_size = b;
    }
    if otrp_tam_server::coap::coap_config(config.coap_block_size, 0, 0).is_err() {
        return Err(CliError::new(
            format!(
                "--coap-block-size {}: not a CoAP block size",
                config.coap_block_size
            ),
            "use 16, 32, 64, 128, 256, 512 or 1024",
        ));
    }
    if config.coap_max_held_bytes < config.max_teep_body_bytes {
        return Err(CliError::new(
            format!(
                "coap_max_held_bytes {} is below max_teep_body_bytes {}: the largest TEEP \
                 message could never be received over CoAP",
                config.coap_max_held_bytes, config.max_teep_body_bytes
            ),
            "raise coap_max_held_bytes in tam.toml (default 67108864)",
        ));
    }
    if let Some(p) = a.policy {
        config.policy = match p {
            PolicyArg::OemGated => PolicyConfig::OemGated,
            PolicyArg::OemOwnedSd => PolicyConfig::OemOwnedSd,
            PolicyArg::DualControl => PolicyConfig::DualControl,
        };
    }
    if config.reference.is_empty() && !config.accept_unlisted_models {
        eprintln!(
            "warning: no [[reference]] values and no --accept-unlisted-models: every device's \
             evidence will be refused (unknown model); add reference values to --config"
        );
    }
    let data_dir = config.data_dir.clone();
    block_on(async move {
        let server = otrp_tam_server::start(config).await.map_err(|e| {
            CliError::new(
                e.to_string(),
                "check --pki/--cert/--key/--signing-key, --database and that the port is free",
            )
        })?;
        eprintln!("TAM listening: TEEP at {} (Ctrl-C stops)", server.tam_url());
        if let Some(url) = server.coap_url() {
            eprintln!("TEEP over CoAP at {url}");
        }
        let token = data_dir.join("oem-api-token");
        if token.exists() {
            eprintln!("OEM API token file: {}", token.display());
        }
        otrp_tam_server::serve_until_signal(server, Duration::from_secs(10)).await;
        Ok(())
    })?
}

fn status(a: &StatusArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&a.client)?;
    let v = block_on(async move { client.get("/api/v1/status").await })??;
    println!(
        "TAM {}  store: {}  policy: {}",
        v["version"].as_str().unwrap_or("?"),
        v["backend"].as_str().unwrap_or("?"),
        v["policy"].as_str().unwrap_or("?")
    );
    println!(
        "you: {} ({}{})",
        v["account"]["id"].as_str().unwrap_or("?"),
        v["account"]["kind"].as_str().unwrap_or("?"),
        if v["account"]["approved"].as_bool() == Some(false) {
            ", not approved yet"
        } else {
            ""
        }
    );
    println!(
        "devices: {}  components: {}  deployments: {} ({} active)",
        v["devices"], v["components"], v["deployments"], v["active_deployments"]
    );
    Ok(())
}
