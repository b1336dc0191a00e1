//! `otrp quickstart`: the whole system living through the seed's use cases, in one
//! process, for real over HTTPS on loopback.
//!
//! A development PKI, the real TAM server (`otrp-tam-server`) on SQLite over HTTPS, and
//! simulated devices (`otrp-fleet`: a TEE and a Broker each) that talk TEEP to it. Each
//! scenario prints one plain line per step and ends in a row of the summary table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use otrp_broker::Http;
use otrp_fleet::{Fleet, FleetOptions, RunOptions, Summary};
use otrp_pki::device::MgmtConfig;
use otrp_pki::{CaLevel, CaRole, CertKind, InitOptions, Pki};
use otrp_tam_server::config::{BatchReportMasterConfig, PolicyConfig, ReferenceConfig};
use otrp_tam_server::publish::{self, Payload};
use otrp_tam_server::{RunningServer, ServerConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod mgmt;
mod scenarios;

/// Play the seed's use cases end to end on this machine.
#[derive(Args, Debug)]
#[command(after_help = HELP)]
pub struct QuickstartArgs {
    /// Work in DIR (PKI, TAM databases, device stores) instead of a temporary directory
    /// that is removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Device counts in percent of the defaults (100: 3 phones, 100 locks, 20 drones, 2
    /// devices per management configuration). Small values keep a minimum per scenario.
    #[arg(long, value_name = "N", default_value_t = 100)]
    devices_scale: u32,
}

const HELP: &str = "\
Plays the OpenTrust use cases end to end, in this process, over HTTPS on loopback:

  * creates a development PKI (TEE, OEM/TFW, TAM and SP certificate authorities);
  * starts the real TAM server (otrp-tam-server) on SQLite over HTTPS on 127.0.0.1;
  * provisions simulated devices (a TEE with its Agent and TA runtime, and a Broker each)
    that run TEEP sessions with the TAM;
  * plays the scenarios, one plain line per step, with a progress bar for rollouts:
    1. Payment: an SP publishes the payment-signer TA (signed on the SP's side); the
       payment app on each phone asks for it (RequestTA); the phones install it through
       their Brokers; the app has it sign a transaction; the signature is checked against
       the TA key the TEE reports.
    2. Smart locks: smart-lock v1 reaches every lock, then v2 in a staged rollout (10%,
       then all) while one lock is offline; it catches up when it comes back.
    3. Drones: the drone-geofence TA with its no-fly zones as personalization data; the
       zones change, the new data reaches every drone, and a coordinate inside the new
       zone is refused where it was accepted before.
    4. Management configurations: a device model under each of OEM-gated, OEM-owned SDs
       and dual control, with one refused and one allowed operation each.
    5. Batch: one package signed once by the TAM for a batch of delivery drones (the
       geofence TA and its no-fly zones, encrypted to the batch key); their Brokers fetch
       it (HTTP, ETag), every TEE applies it and reports back (MAC'd under its own report
       key: one HMAC for the TAM to check, no signature); then a second package
       with new zones alone updates the whole fleet's data, and every drone refuses the
       new zone.
  * ends with a summary table (scenario, devices, result, time).

Exits 0 when every scenario passed; otherwise non-zero with the reason.
Examples:
  cargo run --release -- quickstart
  otrp quickstart --dir ./qs --devices-scale 20";

/// One row of the summary table.
pub(crate) struct Row {
    pub scenario: &'static str,
    pub devices: usize,
    pub result: String,
    pub time: Duration,
}

/// Prints one step of a scenario.
pub(crate) fn step(text: impl AsRef<str>) {
    println!("  - {}", text.as_ref());
}

/// The TAM root and the HTTP clients that trust it.
pub(crate) struct Harness {
    pub root: PathBuf,
    pub pki: Pki,
    pub pki_dir: PathBuf,
    pub scale: u32,
    /// Devices' Broker HTTP client (trusts only the PKI's TAM root).
    pub http: Http,
    /// Admin API client (trusts only the PKI's TAM root).
    pub api: reqwest::Client,
    pub sp_key: otrp_crypto::PrivateKey,
    pub sp_chain_pem: String,
    servers: Vec<RunningServer>,
    tams: usize,
    fleets: usize,
}

/// A running TAM and its OEM token.
pub(crate) struct Tam {
    pub base: String,
    pub url: String,
    pub oem: String,
}

/// The reference models every quickstart TAM knows.
const MODELS: &[&str] = &[
    "phone",
    "smart-lock",
    "drone",
    "gated-tablet",
    "oem-sd-kiosk",
    "dual-car",
    "delivery-drone",
];

impl Harness {
    fn new(root: PathBuf, scale: u32) -> Result<Harness> {
        std::fs::create_dir_all(&root).with_context(|| format!("{}", root.display()))?;
        let pki = Pki::init(
            &InitOptions::default(),
            &mut rand::rngs::OsRng,
            SystemTime::now() - Duration::from_secs(3600),
        )
        .context("creating the PKI")?;
        let pki_dir = root.join("pki");
        otrp_pki::fs::create_pki(&pki_dir, &pki, true).context("writing the PKI")?;
        let tam_root = pki
            .ca_cert_der(CaRole::Tam, CaLevel::Root)
            .context("TAM root")?;
        let root_pem = otrp_pki::cert::to_pem("CERTIFICATE", &tam_root).context("TAM root")?;
        let http = Http::new(Some(root_pem.as_bytes()), Duration::from_secs(30))
            .context("Broker HTTP client")?;
        let api = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_der(&tam_root).context("TAM root certificate")?,
            )
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("admin HTTP client")?;
        let rec = pki.first_issued(CertKind::Sp).context("SP signer")?;
        let sp_chain_pem = String::from_utf8(pki.file(&rec.chain).context("SP chain")?.to_vec())
            .context("SP chain is not UTF-8")?;
        let sp_key = pki.private_key(&rec.key).context("SP key")?;
        Ok(Harness {
            root,
            pki,
            pki_dir,
            scale,
            http,
            api,
            sp_key,
            sp_chain_pem,
            servers: Vec::new(),
            tams: 0,
            fleets: 0,
        })
    }

    /// `default` devices scaled by `--devices-scale`, at least `min`.
    pub fn count(&self, default: usize, min: usize) -> usize {
        (default * self.scale as usize / 100).max(min)
    }

    /// Starts a TAM server (SQLite, HTTPS, 127.0.0.1:0) under `policy`.
    pub async fn start_tam(&mut self, policy: PolicyConfig) -> Result<Tam> {
        self.tams += 1;
        let data_dir = self.root.join(format!("tam{}", self.tams));
        let measurement = hex::encode(otrp_tee_daemon::tee_measurement());
        // The drones of scenario 5 get report keys: the TAM checks their MAC'd reports
        // with the batch's report master, as the OEM hands it over (tam.toml
        // [[batch_report_master]]).
        let mut rng = rand::rngs::OsRng;
        let (_, key_made) = self
            .pki
            .batch_key(scenarios::BATCH, &mut rng, SystemTime::now())
            .context("batch key")?;
        let (_, master_made) = self
            .pki
            .batch_report_master(scenarios::BATCH, &mut rng)
            .context("batch report master")?;
        if key_made || master_made {
            otrp_pki::fs::save_pki(&self.pki_dir, &self.pki).context("saving the PKI")?;
        }
        let master_file = self
            .pki_dir
            .join(format!("batch/{}.report-master.key", scenarios::BATCH));
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().context("listen address")?,
            data_dir: data_dir.clone(),
            pki: Some(self.pki_dir.clone()),
            // Every simulated TEE sends its trusted firmware's endorsement of its image.
            require_tfw_endorsement: true,
            policy,
            reference: MODELS
                .iter()
                .map(|m| ReferenceConfig {
                    model: (*m).into(),
                    measurements: vec![measurement.clone()],
                    hwversions: Vec::new(),
                })
                .collect(),
            batch_report_master: vec![BatchReportMasterConfig {
                batch: scenarios::BATCH.into(),
                file: master_file,
            }],
            ..ServerConfig::default()
        };
        let server = otrp_tam_server::start(config)
            .await
            .context("starting the TAM server")?;
        let oem = std::fs::read_to_string(data_dir.join("oem-api-token"))
            .context("reading the OEM API token")?
            .trim()
            .to_owned();
        let tam = Tam {
            base: server.base_url(),
            url: server.tam_url(),
            oem,
        };
        self.servers.push(server);
        Ok(tam)
    }

    /// Provisions `count` devices of `model` under `config`.
    pub fn provision(&mut self, count: usize, model: &str, config: MgmtConfig) -> Result<Fleet> {
        self.provision_in(count, model, config, None)
    }

    /// Provisions `count` devices of `model` under `config`, in `batch` when given (one
    /// batch key shared by all of them, made in the PKI on first use, and a report key
    /// each, derived from the batch's report master).
    pub fn provision_in(
        &mut self,
        count: usize,
        model: &str,
        config: MgmtConfig,
        batch: Option<&str>,
    ) -> Result<Fleet> {
        self.fleets += 1;
        let mut opts = FleetOptions::new(model, config);
        opts.batch = batch.map(str::to_owned);
        opts.report_key = batch.is_some();
        // The quickstart's TAM is the one the OEM operates (SPs have accounts on it).
        opts.tams = otrp_fleet::pki_tam_certs(&self.pki)
            .context("TAM certificates")?
            .into_iter()
            .map(|mut t| {
                t.oem = true;
                t
            })
            .collect();
        opts.store_root = Some(self.root.join(format!("devices{}-{model}", self.fleets)));
        let pb = bar(count, "provision");
        let fleet = Fleet::provision_with(&mut self.pki, count, &opts, Some(&pb))
            .with_context(|| format!("provisioning {count} {model} device(s)"))?;
        pb.finish_and_clear();
        Ok(fleet)
    }

    /// One TEEP session per online device, with a progress bar.
    pub async fn sessions(&self, fleet: &Fleet, tam: &Tam, what: &str) -> Summary {
        self.sessions_with(fleet, tam, what, 16).await
    }

    /// One TEEP session per online device, `concurrency` at a time.
    pub async fn sessions_with(
        &self,
        fleet: &Fleet,
        tam: &Tam,
        what: &str,
        concurrency: usize,
    ) -> Summary {
        let pb = bar(fleet.len(), what);
        let opts = RunOptions {
            concurrency,
            ..RunOptions::default()
        };
        let s = fleet.run_with(&self.http, &tam.url, &opts, Some(&pb)).await;
        pb.finish_and_clear();
        s
    }

    /// Like [`Harness::sessions`], failing unless every online device converged.
    pub async fn converge(&self, fleet: &Fleet, tam: &Tam, what: &str) -> Result<Summary> {
        let s = self.sessions(fleet, tam, what).await;
        if !s.all_converged() {
            bail!("{what}: not every device converged: {s}");
        }
        Ok(s)
    }

    /// An admin API call; returns the status and the JSON body.
    pub async fn call(
        &self,
        tam: &Tam,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self
            .api
            .request(method, format!("{}{path}", tam.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading {path}"))?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    /// POST expecting `want`; returns the body.
    pub async fn post_ok(
        &self,
        tam: &Tam,
        path: &str,
        token: &str,
        body: Value,
        want: StatusCode,
    ) -> Result<Value> {
        let (st, v) = self
            .call(tam, reqwest::Method::POST, path, token, Some(body))
            .await?;
        if st != want {
            bail!("POST {path}: expected {want}, the TAM answered {st}: {v}");
        }
        Ok(v)
    }

    /// GET expecting 200; returns the body.
    pub async fn get_ok(&self, tam: &Tam, path: &str, token: &str) -> Result<Value> {
        let (st, v) = self
            .call(tam, reqwest::Method::GET, path, token, None)
            .await?;
        if st != StatusCode::OK {
            bail!("GET {path}: the TAM answered {st}: {v}");
        }
        Ok(v)
    }

    /// Creates SP account `sp` (returns its token); approves it when `approve`.
    pub async fn sp_account(&self, tam: &Tam, sp: &str, approve: bool) -> Result<String> {
        let v = self
            .post_ok(
                tam,
                "/api/v1/accounts",
                &tam.oem,
                json!({"id": sp, "kind": "sp"}),
                StatusCode::CREATED,
            )
            .await?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("account {sp}: no token in {v}"))?
            .to_owned();
        if approve {
            self.post_ok(
                tam,
                &format!("/api/v1/sps/{sp}/approve"),
                &tam.oem,
                json!({}),
                StatusCode::OK,
            )
            .await?;
        }
        Ok(token)
    }

    /// The OEM grants Security Domain `sd` to `sp` (signer: the PKI's SP signer).
    pub async fn grant_sd(&self, tam: &Tam, sd: &str, sp: &str) -> Result<()> {
        self.post_ok(
            tam,
            "/api/v1/sds",
            &tam.oem,
            json!({"name": sd, "sp_id": sp, "signer_chain_pem": self.sp_chain_pem}),
            StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }

    /// Signs the SUIT envelope of `image` as `component` on the SP side.
    pub fn sign_ta(&self, component: &str, seq: u64, image: &[u8]) -> Result<Vec<u8>> {
        publish::ta_envelope(
            otrp_crypto::default_provider(),
            &self.sp_key,
            component,
            seq,
            image,
            &Payload::Integrated,
        )
        .map_err(|e| anyhow!("signing {component}: {e}"))
    }

    /// Uploads a signed envelope; returns the TAM's status and body.
    pub async fn upload(
        &self,
        tam: &Tam,
        token: &str,
        envelope: &[u8],
        name: &str,
    ) -> Result<(StatusCode, Value)> {
        self.call(
            tam,
            reqwest::Method::POST,
            "/api/v1/components",
            token,
            Some(publish::upload_body(
                envelope,
                &self.sp_chain_pem,
                Some(name),
            )),
        )
        .await
    }

    /// Creates a deployment; returns its id.
    pub async fn deploy(
        &self,
        tam: &Tam,
        token: &str,
        component: &str,
        target: &str,
        rollout: &str,
    ) -> Result<i64> {
        let v = self
            .post_ok(
                tam,
                "/api/v1/deployments",
                token,
                json!({"component": component, "target": target, "rollout": rollout}),
                StatusCode::CREATED,
            )
            .await?;
        v["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("deployment without an id: {v}"))
    }

    async fn shutdown(self) {
        for s in self.servers {
            s.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// A progress bar over `len` devices.
pub(crate) fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("    {msg:>24} [{bar:32}] {pos}/{len} devices ({elapsed})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// A sample TA from `tas/dist` (next to the workspace, or under `OTRP_TAS_DIR`).
pub(crate) fn wasm(name: &str) -> Result<Vec<u8>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("OTRP_TAS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tas/dist"));
    dirs.push(PathBuf::from("tas/dist"));
    for d in &dirs {
        let p = d.join(format!("{name}.wasm"));
        if let Ok(b) = std::fs::read(&p) {
            return Ok(b);
        }
    }
    bail!("sample TA {name}.wasm not found in tas/dist (set OTRP_TAS_DIR)")
}

/// Runs `otrp quickstart`.
pub fn run(args: &QuickstartArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("otrp quickstart: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(play(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otrp quickstart: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn play(args: &QuickstartArgs) -> Result<()> {
    let start = Instant::now();
    let (root, _tmp) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("otrp-quickstart-")
                .tempdir()
                .context("temporary directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!("OpenTrust quickstart — working in {}", root.display());
    let mut h = Harness::new(root, args.devices_scale.max(1))?;
    step("Created a development PKI: TEE, OEM/TFW, TAM and SP certificate authorities.");
    let tam = h.start_tam(PolicyConfig::OemGated).await?;
    step(format!(
        "Started the TAM (otrp-tam-server, SQLite, OEM-gated) at {} over HTTPS.",
        tam.base
    ));
    let mut rows = Vec::new();
    let result = scenarios::all(&mut h, &tam, &mut rows).await;
    h.shutdown().await;
    print_table(&rows);
    println!("Total time: {:.1}s", start.elapsed().as_secs_f64());
    result?;
    println!("Every scenario passed.");
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!();
    println!("Summary");
    println!(
        "  {:<28} {:>7}  {:<44} {:>7}",
        "scenario", "devices", "result", "time"
    );
    for r in rows {
        println!(
            "  {:<28} {:>7}  {:<44} {:>6.2}s",
            r.scenario,
            r.devices,
            r.result,
            r.time.as_secs_f64()
        );
    }
}
