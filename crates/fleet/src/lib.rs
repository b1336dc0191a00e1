//! The OpenTrust fleet simulator: N provisioned simulated devices in one process, each a
//! TEE (the same glue as the TEE daemon: Agent on the sealed platform store, TA runtime)
//! and a Broker loop, for tests, the quickstart and benchmarks.
//!
//! * Light: a device is its unsealed identity, an Agent and a platform store in a
//!   temporary directory (fsync off: it survives a killed process, not a power cut); the
//!   TA runtime is created only when a TA is first invoked. Sessions are tokio tasks
//!   sharing one HTTP client (connection pool), with bounded concurrency; the TEE steps
//!   run on tokio's blocking pool.
//! * [`Fleet::provision`] makes the devices from a PKI (model, management configuration);
//!   they trust every TAM signer certificate of the PKI.
//! * [`Fleet::run_sessions`] runs one TEEP session per online device (retrying transport
//!   failures with backoff) and returns a [`Summary`]; [`Fleet::device`] gives per-device
//!   access: invoke a TA, RequestTA, take the device offline or back online.
//!
//! ```no_run
//! # async fn demo(pki: &mut otrp_pki::Pki) -> Result<(), otrp_fleet::FleetError> {
//! use otrp_fleet::Fleet;
//! use otrp_pki::device::MgmtConfig;
//! let fleet = Fleet::provision(pki, 100, "door-lock", MgmtConfig::OemGated)?;
//! let summary = fleet.run_sessions("https://tam.example/tam", 32).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::ProgressBar;
use otrp_broker::{run_session, Http, LocalTee, NetSim, SessionReport};
use otrp_pki::device::{provision, MgmtConfig, ProvisionRequest};
use otrp_pki::{CertKind, Pki};
use otrp_suit::ComponentId;
pub use otrp_tee_daemon::TeeCrypto;
use otrp_tee_daemon::{TamCert, Tee, TeeOptions, TeeStatus};
use tokio::sync::Semaphore;

/// What went wrong building or driving the fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Provisioning from the PKI failed.
    #[error("provisioning device #{index}: {source}")]
    Provision {
        /// Which device.
        index: usize,
        /// Why.
        #[source]
        source: otrp_pki::PkiError,
    },
    /// The PKI holds no usable TAM certificate.
    #[error("PKI: {0}")]
    Pki(String),
    /// A TEE failed to boot or answer.
    #[error("{0}")]
    Tee(#[from] otrp_tee_daemon::TeeError),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Broker(#[from] otrp_broker::BrokerError),
    /// The temporary directory could not be made.
    #[error("store directory: {0}")]
    Io(#[from] std::io::Error),
}

/// How to build a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Device model (EAT `hwmodel`).
    pub model: String,
    /// Management configuration.
    pub config: MgmtConfig,
    /// Batch to put the devices in.
    pub batch: Option<String>,
    /// With a batch: give each device a report key (MAC'd batch reports).
    pub report_key: bool,
    /// TAMs the devices trust; empty = every TAM signer certificate of the PKI.
    pub tams: Vec<TamCert>,
    /// Where device stores go; `None` = a temporary directory removed with the fleet.
    pub store_root: Option<PathBuf>,
    /// The devices' crypto provider (default RustCrypto, as the TEE daemon's).
    pub crypto: TeeCrypto,
}

impl FleetOptions {
    /// Options for `model` under `config`.
    pub fn new(model: impl Into<String>, config: MgmtConfig) -> Self {
        FleetOptions {
            model: model.into(),
            config,
            batch: None,
            report_key: false,
            tams: Vec::new(),
            store_root: None,
            crypto: TeeCrypto::default(),
        }
    }
}

/// How sessions run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Sessions in flight at once.
    pub concurrency: usize,
    /// Attempts per device when the transport fails.
    pub attempts: u32,
    /// Simulated network conditions.
    pub net: NetSim,
    /// Timeout of one HTTP request.
    pub http_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 32,
            attempts: 5,
            net: NetSim::default(),
            http_timeout: Duration::from_secs(30),
        }
    }
}

/// The outcome of a device's last session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No session yet.
    Idle,
    /// Offline: no session was attempted.
    Offline,
    /// The session completed with no refusal.
    Converged,
    /// The session completed, but the Agent refused something.
    Refused(String),
    /// Every attempt failed.
    Failed(String),
}

/// One simulated device.
pub struct FleetDevice {
    ueid: String,
    tee: LocalTee,
    online: AtomicBool,
    outcome: Mutex<Outcome>,
    sessions: AtomicU64,
}

impl fmt::Debug for FleetDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetDevice")
            .field("ueid", &self.ueid)
            .field("online", &self.is_online())
            .finish_non_exhaustive()
    }
}

impl FleetDevice {
    /// UEID (hex).
    pub fn ueid(&self) -> &str {
        &self.ueid
    }
    /// Whether sessions run for it.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }
    /// Takes the device offline (`false`) or back online.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }
    /// Its last outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Sessions completed.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
    fn with_tee<R>(&self, f: impl FnOnce(&mut Tee) -> R) -> R {
        let mut t = self.tee.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t)
    }
    /// Opens a session with TA `ta`, invokes `cmd` once, closes it (the local Client API).
    pub fn invoke(&self, ta: &str, cmd: u32, data: &[u8]) -> Result<Vec<u8>, FleetError> {
        Ok(self.with_tee(|t| t.invoke_once(ta, cmd, data))?)
    }
    /// The public key of an installed TA.
    pub fn ta_public_key(&self, ta: &str) -> Result<otrp_crypto::PublicKey, FleetError> {
        Ok(self.with_tee(|t| t.ta_public_key(ta))?)
    }
    /// RequestTA on behalf of a Client App.
    pub fn request_ta(&self, component: ComponentId) {
        self.with_tee(|t| t.request_ta(component));
    }
    /// UnrequestTA on behalf of a Client App.
    pub fn unrequest_ta(&self, component: ComponentId) {
        self.with_tee(|t| t.unrequest_ta(component));
    }
    /// The TEE's status.
    pub fn status(&self) -> Result<TeeStatus, FleetError> {
        Ok(self.with_tee(|t| t.status())?)
    }
    /// The in-process TEE (as the Broker sees it).
    pub fn tee(&self) -> &LocalTee {
        &self.tee
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Devices in the fleet.
    pub devices: usize,
    /// Devices offline (skipped).
    pub offline: usize,
    /// Devices whose session completed without refusal.
    pub converged: usize,
    /// Devices that did not converge, with the reason (UEID, reason).
    pub failures: Vec<(String, String)>,
    /// Sessions completed.
    pub sessions: u64,
    /// Session attempts that failed (and were retried or gave up).
    pub failed_attempts: u64,
    /// TAM messages relayed to TEEs.
    pub tam_messages: u64,
    /// Components installed or updated.
    pub installed: u64,
    /// Components removed.
    pub removed: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Completed sessions per second.
    pub fn sessions_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.sessions as f64 / s
        } else {
            0.0
        }
    }
    /// Whether every online device converged.
    pub fn all_converged(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "devices {} (offline {}), converged {}, failed {}",
            self.devices,
            self.offline,
            self.converged,
            self.failures.len()
        )?;
        writeln!(
            f,
            "sessions {} ({:.1}/s over {:.2}s), failed attempts {}, TAM messages {}, installed {}, removed {}",
            self.sessions,
            self.sessions_per_sec(),
            self.elapsed.as_secs_f64(),
            self.failed_attempts,
            self.tam_messages,
            self.installed,
            self.removed
        )?;
        for (ueid, why) in self.failures.iter().take(20) {
            writeln!(f, "  {ueid}: {why}")?;
        }
        if self.failures.len() > 20 {
            writeln!(f, "  … and {} more", self.failures.len() - 20)?;
        }
        Ok(())
    }
}

/// A fleet of simulated devices.
pub struct Fleet {
    devices: Vec<Arc<FleetDevice>>,
    _tmp: Option<tempfile::TempDir>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// Every TAM signer certificate chain of the PKI.
pub fn pki_tam_certs(pki: &Pki) -> Result<Vec<TamCert>, FleetError> {
    let mut out = Vec::new();
    for rec in pki
        .index()
        .issued
        .iter()
        .filter(|r| r.kind == CertKind::Tam)
    {
        let pem = pki
            .file(&rec.chain)
            .map_err(|e| FleetError::Pki(e.to_string()))?;
        let text = std::str::from_utf8(pem).map_err(|e| FleetError::Pki(e.to_string()))?;
        out.push(TamCert::from_pem(text, false)?);
    }
    if out.is_empty() {
        return Err(FleetError::Pki("no TAM certificate issued".into()));
    }
    Ok(out)
}

impl Fleet {
    /// Provisions `count` devices of `model` under `config` from `pki`.
    pub fn provision(
        pki: &mut Pki,
        count: usize,
        model: &str,
        config: MgmtConfig,
    ) -> Result<Fleet, FleetError> {
        Self::provision_with(pki, count, &FleetOptions::new(model, config), None)
    }

    /// Provisions `count` devices with `options`, ticking `progress` per device.
    pub fn provision_with(
        pki: &mut Pki,
        count: usize,
        options: &FleetOptions,
        progress: Option<&ProgressBar>,
    ) -> Result<Fleet, FleetError> {
        let tams = if options.tams.is_empty() {
            pki_tam_certs(pki)?
        } else {
            options.tams.clone()
        };
        let (tmp, root) = match &options.store_root {
            Some(r) => {
                std::fs::create_dir_all(r)?;
                (None, r.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("otrp-fleet-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let tee_options = TeeOptions {
            tams,
            fsync: false,
            crypto: options.crypto,
            ..TeeOptions::default()
        };
        let mut req = ProvisionRequest::new(options.model.clone());
        req.config = options.config;
        req.batch = options.batch.clone();
        req.report_key = options.report_key;
        let provider = otrp_crypto::default_provider();
        let mut rng = rand::rngs::OsRng;
        let mut devices = Vec::with_capacity(count);
        for index in 0..count {
            let dev = provision(pki, &req, provider, &mut rng, SystemTime::now())
                .map_err(|source| FleetError::Provision { index, source })?;
            let ueid = hex::encode(&dev.identity.ueid);
            let tee = Tee::boot(
                dev.identity,
                *dev.storage_key,
                &root.join(&ueid),
                &tee_options,
            )?;
            devices.push(Arc::new(FleetDevice {
                ueid,
                tee: LocalTee(Arc::new(Mutex::new(tee))),
                online: AtomicBool::new(true),
                outcome: Mutex::new(Outcome::Idle),
                sessions: AtomicU64::new(0),
            }));
            if let Some(p) = progress {
                p.inc(1);
            }
        }
        Ok(Fleet { devices, _tmp: tmp })
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the fleet is empty.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Device `i`.
    pub fn device(&self, i: usize) -> Option<&Arc<FleetDevice>> {
        self.devices.get(i)
    }

    /// Every device.
    pub fn devices(&self) -> &[Arc<FleetDevice>] {
        &self.devices
    }

    /// One session per online device against `tam_url`, `concurrency` at a time.
    pub async fn run_sessions(
        &self,
        tam_url: &str,
        concurrency: usize,
    ) -> Result<Summary, FleetError> {
        let http = Http::new(None, RunOptions::default().http_timeout)?;
        let opts = RunOptions {
            concurrency,
            ..RunOptions::default()
        };
        Ok(self.run_with(&http, tam_url, &opts, None).await)
    }

    /// One session per online device with a given HTTP client (TLS trust, network
    /// simulation) and options, ticking `progress` per device.
    pub async fn run_with(
        &self,
        http: &Http,
        tam_url: &str,
        opts: &RunOptions,
        progress: Option<&ProgressBar>,
    ) -> Summary {
        let start = Instant::now();
        let http = http.clone().with_net(opts.net);
        let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut summary = Summary {
            devices: self.devices.len(),
            ..Summary::default()
        };
        for d in &self.devices {
            if !d.is_online() {
                summary.offline += 1;
                *d.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Outcome::Offline;
                if let Some(p) = progress {
                    p.inc(1);
                }
                continue;
            }
            let d = d.clone();
            let http = http.clone();
            let tam = tam_url.to_string();
            let sem = sem.clone();
            let attempts = opts.attempts.max(1);
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                device_session(&d, &http, &tam, attempts).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Some(p) = progress {
                p.inc(1);
            }
            let Ok((ueid, failed_attempts, result)) = joined else {
                summary
                    .failures
                    .push(("?".into(), "session task panicked".into()));
                continue;
            };
            summary.failed_attempts += failed_attempts;
            match result {
                Ok(report) => {
                    summary.sessions += 1;
                    summary.tam_messages += report.tam_messages as u64;
                    summary.installed += report.count("installed") as u64;
                    summary.removed += report.count("removed") as u64;
                    let refused: Vec<String> = report
                        .events
                        .iter()
                        .filter(|e| e.kind == "refused" || e.kind == "tam-error")
                        .map(|e| e.detail.clone())
                        .collect();
                    if refused.is_empty() {
                        summary.converged += 1;
                    } else {
                        summary.failures.push((ueid, refused.join("; ")));
                    }
                }
                Err(why) => summary.failures.push((ueid, why)),
            }
        }
        summary.failures.sort();
        summary.elapsed = start.elapsed();
        summary
    }
}

async fn device_session(
    d: &FleetDevice,
    http: &Http,
    tam: &str,
    attempts: u32,
) -> (String, u64, Result<SessionReport, String>) {
    let mut tee = d.tee.clone();
    let mut failed = 0u64;
    let mut delay = Duration::from_millis(50);
    let mut last = String::new();
    for _ in 0..attempts {
        match run_session(http, tam, &mut tee).await {
            Ok(report) => {
                d.sessions.fetch_add(1, Ordering::Relaxed);
                let refused = report
                    .events
                    .iter()
                    .find(|e| e.kind == "refused" || e.kind == "tam-error")
                    .map(|e| e.detail.clone());
                *d.outcome.lock().unwrap_or_else(|p| p.into_inner()) = match refused {
                    Some(r) => Outcome::Refused(r),
                    None => Outcome::Converged,
                };
                return (d.ueid.clone(), failed, Ok(report));
            }
            Err(e) => {
                failed += 1;
                last = e.to_string();
                tracing::debug!(ueid = %d.ueid, error = %last, "session attempt failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
    *d.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Outcome::Failed(last.clone());
    (d.ueid.clone(), failed, Err(last))
}

/// Resident memory of this process in bytes (Linux `/proc/self/status` VmRSS), for the
/// memory-per-device figure.
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
