//! `otrp bench tam`: full TEEP exchanges per second against the real TAM server over
//! HTTPS on loopback, next to the signature bound measured in the same run.
//!
//! The TAM server(s) run in this process on their own Tokio runtime whose threads are
//! named `otrp-tam*` (plus SQLite's `sqlx-sqlite-worker` threads), so the TAM's CPU time is
//! read per thread from `/proc/self/task/*/stat` and separated from the devices' (TEE
//! daemons and Brokers, on `otrp-dev*` threads). Devices are `otrp-fleet` devices (a TEE
//! with its Agent and a Broker session each); C workers play C concurrent Brokers. The
//! devices sign with ring (`--device-crypto`) and keep their sealed stores on tmpfs
//! (`--device-dir`), so that they, not the TAM, are the cheap side of the exchange.
//!
//! One round = the SP publishes version n of a TA and deploys it; every device runs one
//! session: empty POST → QueryRequest, QueryResponse (with EAT evidence) → Update,
//! Success → 204. Rounds repeat until `--duration` seconds have passed (at least one).
//!
//! Two load models: closed loop (`--concurrency C`: C Brokers, each starting its next
//! session when the previous one ends) and open loop (`--rate R`: device i of a round
//! starts at i/R s whatever the TAM's state, latency counted from that scheduled start,
//! so queueing is not hidden). `--pin` puts the TAM's threads on CPU 0 and every other
//! thread (devices, Brokers) on CPU 1 (`taskset` per thread), so the TAM has one core
//! to itself and the per-core bound is measured without the load generator on it.
//!
//! The bound (the signature work of one exchange, with the TAM's provider) is timed before
//! every round on a thread on the TAM's CPU and averaged over the rounds.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use otrp_broker::Http;
use otrp_crypto::{KeyKind, PrivateKey, SigAlg};
use otrp_fleet::{Fleet, FleetOptions};
use otrp_pki::device::{provision, MgmtConfig, ProvisionRequest};
use otrp_pki::{CaLevel, CaRole, CertKind, InitOptions, Pki};
use otrp_store::{SqlStore, Store};
use otrp_tam_server::config::ReferenceConfig;
use otrp_tam_server::publish::{self, Payload};
use otrp_tam_server::{AppState, Identity, RunningServer, ServerConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

const MODEL: &str = "bench-device";
const TA_NAME: &str = "bench/ta";

/// Which store the TAM runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// SQLite file in the run's directory.
    Sqlite,
    /// PostgreSQL (`--database` or `OTRP_TEST_DATABASE_URL`), in a fresh schema.
    Postgres,
}

/// The simulated devices' crypto provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceCrypto {
    /// ring, the TAM's provider: the devices cost the load generator about half as much
    /// CPU, so they keep the TAM busy instead of limiting the rate it is measured at.
    Ring,
    /// RustCrypto, as the TEE daemon and the Agent core in `no_std` use (the figures
    /// before the seventh session were taken with it).
    RustCrypto,
}

impl DeviceCrypto {
    fn name(self) -> &'static str {
        match self {
            DeviceCrypto::Ring => "ring",
            DeviceCrypto::RustCrypto => "rust-crypto",
        }
    }
}

/// Measure the TAM: exchanges/s, latency, TAM CPU per exchange, the signature bound.
#[derive(Args, Debug, Clone)]
pub struct BenchTamArgs {
    /// Simulated devices (each runs one full exchange per round).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Concurrent Brokers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// TAM store.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    store: StoreKind,
    /// PostgreSQL URL (default: `OTRP_TEST_DATABASE_URL`); a fresh schema is created in it
    /// and dropped at the end.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// TAM replicas sharing one PostgreSQL store (the Brokers alternate between them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    replicas: u8,
    /// Keep running rounds (a new TA version to every device) for at least S seconds.
    #[arg(long, value_name = "S", default_value_t = 0)]
    duration: u64,
    /// Tokio worker threads of the TAM runtime. Default: 1 with `--pin`, which gives the
    /// TAM one CPU (as tokio itself would choose on a one-core machine; a second thread on
    /// the same CPU only adds switches between them), else 2.
    #[arg(long)]
    tam_threads: Option<usize>,
    /// Open loop: start sessions at R per second (device i of each round at i/R s, every
    /// device once per round) instead of `--concurrency` closed-loop Brokers; latency is
    /// measured from each session's scheduled start. E.g. `--devices 1000 --rate 100`.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Pin the TAM's threads (otrp-tam*, sqlx-sqlite-worker*) to CPU 0 and all other
    /// threads to CPU 1 with `taskset` (Linux, needs 2 CPUs), so the TAM's per-core
    /// figure is measured on a core the load generator does not use.
    #[arg(long)]
    pin: bool,
    /// The simulated devices' crypto provider (same algorithms and bytes on the wire).
    #[arg(long, value_enum, default_value_t = DeviceCrypto::Ring)]
    device_crypto: DeviceCrypto,
    /// Where the simulated devices' sealed stores go (a fresh directory is made in it and
    /// removed at the end). Default: `/dev/shm` (tmpfs) where it exists, else the system's
    /// temporary directory. Every device commit creates and renames files; on a disk file
    /// system the kernel's inode allocation for them, not the TAM, can limit the rate.
    #[arg(long, value_name = "DIR")]
    device_dir: Option<std::path::PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Entry point of `otrp bench tam`.
pub fn run(args: &BenchTamArgs) -> ExitCode {
    match bench(args) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                report.print();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("otrp bench tam: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Store name.
    pub store: &'static str,
    /// TAM replicas.
    pub replicas: u8,
    /// Devices.
    pub devices: usize,
    /// Concurrent Brokers.
    pub concurrency: usize,
    /// Rounds run.
    pub rounds: usize,
    /// Full exchanges completed.
    pub exchanges: usize,
    /// Wall time of the measured rounds (s).
    pub secs: f64,
    /// Latency percentiles of one exchange (s).
    pub p50: f64,
    /// 99th percentile (s).
    pub p99: f64,
    /// TAM CPU per exchange (s), from the TAM runtime's threads.
    pub tam_cpu: f64,
    /// Device-side CPU per exchange (s): the rest of the process.
    pub dev_cpu: f64,
    /// Measured primitives (s).
    pub costs: Costs,
    /// Signature time one exchange needs at the TAM (s): the mean of the per-round samples.
    pub tam_sig: f64,
    /// The lowest and highest per-round sample of `tam_sig` (s).
    pub tam_sig_range: (f64, f64),
    /// Signature time one exchange needs at the device (s).
    pub dev_sig: f64,
    /// Online CPUs.
    pub cpus: usize,
    /// Open-loop offered rate (sessions/s), `None` for closed loop.
    pub rate: Option<f64>,
    /// Whether the TAM ran pinned to CPU 0 and the generator to CPU 1.
    pub pinned: bool,
    /// The devices' crypto provider.
    pub device_crypto: DeviceCrypto,
    /// Worker threads of the TAM's runtime.
    pub tam_threads: usize,
}

/// Measured primitive costs, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// ES256 sign.
    pub p256_sign: f64,
    /// ES256 verify.
    pub p256_verify: f64,
    /// EdDSA sign.
    pub ed_sign: f64,
    /// TEE certificate chain (leaf + intermediate to the root) validation.
    pub chain: f64,
}

impl Report {
    fn rate(&self) -> f64 {
        self.exchanges as f64 / self.secs.max(1e-9)
    }

    fn print(&self) {
        let us = |s: f64| s * 1e6;
        let load = match self.rate {
            Some(r) => format!("open loop at {r:.1} sessions/s offered"),
            None => format!("{} concurrent Brokers (closed loop)", self.concurrency),
        };
        let cpus = if self.pinned {
            "TAM pinned to CPU 0, devices and Brokers to CPU 1".to_string()
        } else {
            format!("{} CPUs shared by TAM and devices", self.cpus)
        };
        println!(
            "otrp bench tam: {} devices ({} crypto), {load}, store {}, {} TAM replica(s) on {} runtime thread(s), HTTPS on 127.0.0.1, {cpus}",
            self.devices,
            self.device_crypto.name(),
            self.store,
            self.replicas,
            self.tam_threads
        );
        println!(
            "  exchanges: {} in {:.2} s over {} round(s) = {:.1} exchanges/s",
            self.exchanges,
            self.secs,
            self.rounds,
            self.rate()
        );
        println!(
            "  latency of one exchange ({}empty POST to 204): p50 {:.1} ms, p99 {:.1} ms",
            if self.rate.is_some() {
                "scheduled start to 204; "
            } else {
                ""
            },
            self.p50 * 1e3,
            self.p99 * 1e3
        );
        println!(
            "  CPU per exchange: TAM {:.0} µs (threads otrp-tam*, sqlx-sqlite-worker*), devices {:.0} µs (rest of the process); PostgreSQL's own processes not counted",
            us(self.tam_cpu),
            us(self.dev_cpu)
        );
        println!(
            "  primitives measured in this run (same provider, CPU time of a thread on {}, mean of one sample before each round): ES256 sign {:.1} µs, ES256 verify {:.1} µs, EdDSA sign {:.1} µs, TEE chain validation {:.1} µs",
            if self.pinned { "the TAM's CPU" } else { "any CPU" },
            us(self.costs.p256_sign),
            us(self.costs.p256_verify),
            us(self.costs.ed_sign),
            us(self.costs.chain)
        );
        println!(
            "  signatures one exchange needs: TAM {:.0} µs (rounds {:.0}–{:.0} µs; QueryRequest ES256+EdDSA, Update ES256; EAT, QueryResponse, Success verified; TEE chain), devices {:.0} µs",
            us(self.tam_sig),
            us(self.tam_sig_range.0),
            us(self.tam_sig_range.1),
            us(self.dev_sig)
        );
        println!(
            "  TAM per core{}: {:.0} exchanges/s per CPU-second vs bound {:.0} = {:.1}% of the signature bound; whole run {:.1} exchanges/s vs bound {:.0} on {} CPUs (TAM + devices) = {:.1}% of the bound",
            if self.pinned {
                " (TAM alone on CPU 0)"
            } else {
                ""
            },
            1.0 / self.tam_cpu.max(1e-12),
            1.0 / self.tam_sig.max(1e-12),
            100.0 * self.tam_sig / self.tam_cpu.max(1e-12),
            self.rate(),
            self.cpus as f64 / (self.tam_sig + self.dev_sig).max(1e-12),
            self.cpus,
            100.0 * self.rate() * (self.tam_sig + self.dev_sig) / self.cpus as f64
        );
    }

    fn to_json(&self) -> Value {
        json!({
            "store": self.store,
            "replicas": self.replicas,
            "devices": self.devices,
            "concurrency": self.concurrency,
            "rounds": self.rounds,
            "exchanges": self.exchanges,
            "seconds": self.secs,
            "exchanges_per_sec": self.rate(),
            "p50_ms": self.p50 * 1e3,
            "p99_ms": self.p99 * 1e3,
            "tam_cpu_us_per_exchange": self.tam_cpu * 1e6,
            "device_cpu_us_per_exchange": self.dev_cpu * 1e6,
            "es256_sign_us": self.costs.p256_sign * 1e6,
            "es256_verify_us": self.costs.p256_verify * 1e6,
            "eddsa_sign_us": self.costs.ed_sign * 1e6,
            "chain_us": self.costs.chain * 1e6,
            "tam_signature_bound_us": self.tam_sig * 1e6,
            "tam_signature_bound_us_min": self.tam_sig_range.0 * 1e6,
            "tam_signature_bound_us_max": self.tam_sig_range.1 * 1e6,
            "device_signature_us": self.dev_sig * 1e6,
            "tam_fraction_of_bound": self.tam_sig / self.tam_cpu.max(1e-12),
            "cpus": self.cpus,
            "offered_rate": self.rate,
            "pinned": self.pinned,
            "device_crypto": self.device_crypto.name(),
            "tam_threads": self.tam_threads,
        })
    }
}

/// CPU time of the calling thread (ns, `/proc/thread-self/schedstat`), if readable.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Mean seconds of `f` over `n` runs: CPU time of this thread (so other jobs on the
/// machine do not inflate the bound), wall time where it cannot be read.
fn time<F: FnMut()>(n: u32, mut f: F) -> f64 {
    let cpu0 = thread_cpu_ns();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let wall = t.elapsed().as_secs_f64();
    match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9 / f64::from(n),
        _ => wall / f64::from(n),
    }
}

/// What the bound's primitives are timed on: keys, a signature and a TEE chain, made once.
struct BoundSample {
    p256: PrivateKey,
    ed25519: PrivateKey,
    msg: [u8; 200],
    sig: Vec<u8>,
    leaf: Vec<u8>,
    chain: Vec<Vec<u8>>,
    roots: otrp_pki::TrustStore,
    now: SystemTime,
}

impl BoundSample {
    /// Keys and a TEE chain the TAM's roots accept, with the provider the TAM uses.
    fn new(pki: &mut Pki, identity: &Identity) -> Result<BoundSample> {
        let p = otrp_crypto::default_provider();
        let mut rng = rand::rngs::OsRng;
        let p256 = PrivateKey::generate(KeyKind::P256, &mut rng).map_err(|e| anyhow!("{e}"))?;
        let ed25519 =
            PrivateKey::generate(KeyKind::Ed25519, &mut rng).map_err(|e| anyhow!("{e}"))?;
        let msg = [0x42u8; 200];
        let sig = p
            .sign(SigAlg::P256Sha256, &p256, &msg)
            .map_err(|e| anyhow!("{e}"))?;
        let dev = provision(
            pki,
            &ProvisionRequest::new(MODEL),
            p,
            &mut rng,
            SystemTime::now() - Duration::from_secs(60),
        )
        .map_err(|e| anyhow!("provisioning the chain sample: {e}"))?;
        let roots = identity
            .tee_roots
            .clone()
            .ok_or_else(|| anyhow!("the TAM has no TEE roots"))?;
        let sample = BoundSample {
            p256,
            ed25519,
            msg,
            sig,
            leaf: dev.identity.tee.cert.clone(),
            chain: dev.identity.tee.chain.clone(),
            roots,
            now: SystemTime::now(),
        };
        if sample.verify_chain().is_err() {
            bail!("the sample TEE chain does not verify");
        }
        Ok(sample)
    }

    fn verify_chain(&self) -> Result<(), otrp_pki::ChainError> {
        self.roots
            .verify(
                &self.leaf,
                &self.chain,
                otrp_pki::Usage::TeeAttestation,
                self.now,
            )
            .map(|_| ())
    }

    /// Times each primitive on the calling thread.
    fn measure(&self) -> Costs {
        let p = otrp_crypto::default_provider();
        let pk = self.p256.public_key();
        Costs {
            p256_sign: time(100, || {
                let _ = p.sign(SigAlg::P256Sha256, &self.p256, &self.msg);
            }),
            p256_verify: time(100, || {
                let _ = p.verify(SigAlg::P256Sha256, &pk, &self.msg, &self.sig);
            }),
            ed_sign: time(100, || {
                let _ = p.sign(SigAlg::Ed25519, &self.ed25519, &self.msg);
            }),
            chain: time(30, || {
                let _ = self.verify_chain();
            }),
        }
    }

    /// Times the primitives on a thread of their own, pinned to the TAM's CPU with `pin`:
    /// the bound is measured on the core the TAM's CPU time is measured on, at the time
    /// of each round (a shared machine's speed drifts, and its two vCPUs may differ).
    fn measure_on_tam_cpu(&self, pin: bool) -> Result<Costs> {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("otrp-bound".into())
                .spawn_scoped(scope, || {
                    if pin {
                        pin_this_thread(TAM_CPU)?;
                    }
                    Ok(self.measure())
                })
                .context("starting the bound's thread")?
                .join()
                .map_err(|_| anyhow!("the bound's thread panicked"))?
        })
    }
}

impl Costs {
    /// The mean of several samples.
    fn mean(samples: &[Costs]) -> Costs {
        let n = samples.len().max(1) as f64;
        let sum = |f: fn(&Costs) -> f64| samples.iter().map(f).sum::<f64>() / n;
        Costs {
            p256_sign: sum(|c| c.p256_sign),
            p256_verify: sum(|c| c.p256_verify),
            ed_sign: sum(|c| c.ed_sign),
            chain: sum(|c| c.chain),
        }
    }

    /// The TAM's signature work of one exchange: the QueryRequest as COSE_Sign (ES256 +
    /// EdDSA: the device's algorithms are not known before its first answer), the Update
    /// (ES256); EAT evidence, QueryResponse and Success verified (ES256 each) and the TEE
    /// chain (x5chain) validated.
    fn tam_exchange(&self) -> f64 {
        2.0 * self.p256_sign + self.ed_sign + 3.0 * self.p256_verify + self.chain
    }

    /// The device's: QueryRequest, Update and the SUIT manifest(s) verified; EAT,
    /// QueryResponse and Success signed.
    fn device_exchange(&self) -> f64 {
        4.0 * self.p256_verify + 3.0 * self.p256_sign
    }
}

/// CPU seconds (user + system) of this process's threads, split by thread name:
/// (TAM threads, all threads).
fn thread_cpu() -> (f64, f64) {
    // USER_HZ is 100 on every Linux configuration this runs on.
    const HZ: f64 = 100.0;
    let mut tam = 0u64;
    let mut all = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... ; comm may hold spaces: split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat.get(open + 1..close).unwrap_or("");
        let rest: Vec<&str> = stat.get(close + 2..).unwrap_or("").split(' ').collect();
        // Fields after comm: state(0) ... utime(11) stime(12).
        let ticks = rest
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + rest
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        all += ticks;
        if is_tam_thread(comm) {
            tam += ticks;
        }
    }
    (tam as f64 / HZ, all as f64 / HZ)
}

/// The admin API of one TAM as the bench calls it.
struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn post(&self, path: &str, token: &str, body: Value, want: StatusCode) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let st = resp.status();
        let text = resp.text().await.with_context(|| format!("POST {path}"))?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if st != want {
            bail!("POST {path}: expected {want}, the TAM answered {st}: {v}");
        }
        Ok(v)
    }
}

/// The servers of one run and how to reach them.
struct Tams {
    servers: Vec<RunningServer>,
    urls: Vec<String>,
    base: String,
    stores: Vec<Arc<SqlStore>>,
}

async fn start_tams(
    config: ServerConfig,
    identity: Identity,
    store: StoreKind,
    database: Option<String>,
    schema: String,
    replicas: u8,
) -> Result<Tams> {
    let mut servers = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..replicas {
        let (s, backend) = match store {
            StoreKind::Sqlite => {
                std::fs::create_dir_all(&config.data_dir)?;
                (
                    SqlStore::open_sqlite(&config.data_dir.join("tam.db")).await?,
                    "sqlite",
                )
            }
            StoreKind::Postgres => {
                let url = database.as_deref().ok_or_else(|| {
                    anyhow!("--store postgres needs --database or OTRP_TEST_DATABASE_URL")
                })?;
                (
                    SqlStore::connect_postgres_schema(url, &schema).await?,
                    "postgres",
                )
            }
        };
        let s = Arc::new(s);
        stores.push(s.clone());
        let dyn_store: Arc<dyn Store> = s;
        let state = Arc::new(AppState::with_store(
            config.clone(),
            identity.clone(),
            dyn_store,
            backend,
        )?);
        state.bootstrap_oem(&config.data_dir).await?;
        let tls = otrp_tam_server::tls_config(&identity)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        servers.push(otrp_tam_server::spawn(
            listener,
            otrp_tam_server::router(state),
            Some(tls),
        )?);
    }
    let urls = servers.iter().map(RunningServer::tam_url).collect();
    let base = servers
        .first()
        .map(RunningServer::base_url)
        .ok_or_else(|| anyhow!("no server"))?;
    Ok(Tams {
        servers,
        urls,
        base,
        stores,
    })
}

fn bench(args: &BenchTamArgs) -> Result<Report> {
    if args.devices == 0 || args.concurrency == 0 {
        bail!("--devices and --concurrency must be at least 1");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of sessions per second, not {r}");
        }
    }
    if args.pin
        && std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            < 2
    {
        bail!("--pin needs at least 2 CPUs");
    }
    if args.replicas > 1 && args.store == StoreKind::Sqlite {
        bail!("--replicas 2 needs --store postgres (replicas share one PostgreSQL store)");
    }
    let database = args
        .database
        .clone()
        .or_else(|| std::env::var("OTRP_TEST_DATABASE_URL").ok())
        .filter(|u| !u.is_empty());
    let tmp = tempfile::Builder::new()
        .prefix("otrp-bench-tam")
        .tempdir()?;
    let root = tmp.path().to_path_buf();
    let device_base = args.device_dir.clone().unwrap_or_else(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    let device_tmp = tempfile::Builder::new()
        .prefix("otrp-bench-devices")
        .tempdir_in(&device_base)
        .with_context(|| format!("making the devices' directory in {}", device_base.display()))?;
    let tam_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(tam_threads(args))
        .thread_name("otrp-tam")
        .enable_all()
        .build()?;
    let dev_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("otrp-dev")
        .enable_all()
        .build()?;
    let result = dev_rt.block_on(drive(args, &root, device_tmp.path(), database, &tam_rt));
    tam_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn drive(
    args: &BenchTamArgs,
    root: &Path,
    device_root: &Path,
    database: Option<String>,
    tam_rt: &tokio::runtime::Runtime,
) -> Result<Report> {
    let mut pki = Pki::init(
        &InitOptions::default(),
        &mut rand::rngs::OsRng,
        SystemTime::now() - Duration::from_secs(3600),
    )
    .context("creating the PKI")?;
    let pki_dir = root.join("pki");
    otrp_pki::fs::create_pki(&pki_dir, &pki, true).context("writing the PKI")?;
    let data_dir = root.join("tam");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().context("listen address")?,
        data_dir: data_dir.clone(),
        pki: Some(pki_dir.clone()),
        reference: vec![ReferenceConfig {
            model: MODEL.into(),
            measurements: vec![hex::encode(otrp_tee_daemon::tee_measurement())],
            hwversions: Vec::new(),
        }],
        ..ServerConfig::default()
    };
    let identity = Identity::load(&config).context("loading the TAM identity")?;
    let schema = format!(
        "otrp_bench_{}_{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(0)
    );
    let tams = tam_rt
        .spawn(start_tams(
            config,
            identity.clone(),
            args.store,
            database.clone(),
            schema,
            args.replicas,
        ))
        .await
        .context("TAM runtime")??;
    let outcome = run_rounds(args, root, device_root, &mut pki, &identity, &tams).await;
    let Tams {
        servers, stores, ..
    } = tams;
    let _ = tam_rt
        .spawn(async move {
            for s in servers {
                s.shutdown(Duration::from_secs(5)).await;
            }
            if let Some(s) = stores.first() {
                let s: &SqlStore = s;
                if s.backend_name() == "postgres" {
                    let _ = s.clone().drop_schema().await;
                }
            }
        })
        .await;
    outcome
}

async fn run_rounds(
    args: &BenchTamArgs,
    root: &Path,
    device_root: &Path,
    pki: &mut Pki,
    identity: &Identity,
    tams: &Tams,
) -> Result<Report> {
    let tam_root = pki
        .ca_cert_der(CaRole::Tam, CaLevel::Root)
        .context("TAM root")?;
    let root_pem = otrp_pki::cert::to_pem("CERTIFICATE", &tam_root).context("TAM root")?;
    let http = Http::new(Some(root_pem.as_bytes()), Duration::from_secs(60))
        .context("Broker HTTP client")?;
    let admin = Admin {
        http: reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_der(&tam_root)?)
            .timeout(Duration::from_secs(60))
            .build()?,
        base: tams.base.clone(),
    };
    let oem = std::fs::read_to_string(root.join("tam").join("oem-api-token"))
        .context("reading the OEM API token")?
        .trim()
        .to_owned();
    let sp = admin
        .post(
            "/api/v1/accounts",
            &oem,
            json!({"id": "benchsp", "kind": "sp"}),
            StatusCode::CREATED,
        )
        .await?["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no SP token"))?
        .to_owned();
    admin
        .post(
            "/api/v1/sps/benchsp/approve",
            &oem,
            json!({}),
            StatusCode::OK,
        )
        .await?;
    let rec = pki.first_issued(CertKind::Sp).context("SP signer")?;
    let sp_chain = String::from_utf8(pki.file(&rec.chain).context("SP chain")?.to_vec())?;
    let sp_key = pki.private_key(&rec.key).context("SP key")?;
    admin
        .post(
            "/api/v1/sds",
            &oem,
            json!({"name": "bench", "sp_id": "benchsp", "signer_chain_pem": sp_chain}),
            StatusCode::CREATED,
        )
        .await?;

    eprintln!(
        "provisioning {} devices ({} crypto, sealed stores in {}) …",
        args.devices,
        args.device_crypto.name(),
        device_root.display()
    );
    let mut opts = FleetOptions::new(MODEL, MgmtConfig::OemGated);
    opts.tams = otrp_fleet::pki_tam_certs(pki)?
        .into_iter()
        .map(|mut t| {
            t.oem = true;
            t
        })
        .collect();
    opts.store_root = Some(device_root.to_path_buf());
    opts.crypto = match args.device_crypto {
        DeviceCrypto::Ring => otrp_fleet::TeeCrypto::Host,
        DeviceCrypto::RustCrypto => otrp_fleet::TeeCrypto::RustCrypto,
    };
    let fleet = Arc::new(Fleet::provision_with(pki, args.devices, &opts, None)?);
    // Counted before --pin narrows this thread's affinity to one CPU.
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let bound = BoundSample::new(pki, identity)?;
    let mut samples: Vec<Costs> = Vec::new();

    let mut latencies: Vec<f64> = Vec::new();
    let mut exchanges = 0usize;
    let mut rounds = 0usize;
    let mut secs = 0.0;
    let mut tam_cpu = 0.0;
    let mut all_cpu = 0.0;
    let image: Vec<u8> = b"\0asm\x01\0\0\0 otrp bench tam trusted application "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0x5a, 2048))
        .collect();
    let mut deployment: Option<i64> = None;
    loop {
        rounds += 1;
        let seq = rounds as u64;
        // One deployment at a time: the previous version's is aborted before the next.
        if let Some(id) = deployment.take() {
            admin
                .post(
                    &format!("/api/v1/deployments/{id}/abort"),
                    &sp,
                    json!({}),
                    StatusCode::OK,
                )
                .await?;
        }
        // Each version its own bytes (the TAM offers nothing when the digest is the same).
        let mut version = image.clone();
        version.extend_from_slice(&seq.to_be_bytes());
        let env = publish::ta_envelope(
            otrp_crypto::default_provider(),
            &sp_key,
            TA_NAME,
            seq,
            &version,
            &Payload::Integrated,
        )
        .map_err(|e| anyhow!("signing the TA: {e}"))?;
        admin
            .post(
                "/api/v1/components",
                &sp,
                publish::upload_body(&env, &sp_chain, Some("bench")),
                StatusCode::CREATED,
            )
            .await?;
        let d = admin
            .post(
                "/api/v1/deployments",
                &sp,
                json!({"component": TA_NAME, "target": format!("model:{MODEL}"), "rollout": "full"}),
                StatusCode::CREATED,
            )
            .await?;
        deployment = d["id"].as_i64();
        if args.pin {
            pin_threads()?;
        }
        samples.push(bound.measure_on_tam_cpu(args.pin)?);
        let (t0, a0) = thread_cpu();
        let started = Instant::now();
        let lat = match args.rate {
            Some(r) => open_round(&fleet, &http, &tams.urls, r).await?,
            None => round(&fleet, &http, &tams.urls, args.concurrency).await?,
        };
        secs += started.elapsed().as_secs_f64();
        let (t1, a1) = thread_cpu();
        tam_cpu += t1 - t0;
        all_cpu += a1 - a0;
        exchanges += lat.len();
        latencies.extend(lat);
        if secs >= args.duration as f64 {
            break;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).copied().unwrap_or(0.0)
    };
    let costs = Costs::mean(&samples);
    let per_round: Vec<f64> = samples.iter().map(Costs::tam_exchange).collect();
    let tam_sig = costs.tam_exchange();
    let dev_sig = costs.device_exchange();
    let n = exchanges.max(1) as f64;
    Ok(Report {
        store: match args.store {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        },
        replicas: args.replicas,
        devices: args.devices,
        concurrency: args.concurrency,
        rounds,
        exchanges,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
        tam_cpu: tam_cpu / n,
        dev_cpu: (all_cpu - tam_cpu) / n,
        costs,
        tam_sig,
        tam_sig_range: (
            per_round.iter().copied().fold(f64::INFINITY, f64::min),
            per_round.iter().copied().fold(0.0, f64::max),
        ),
        dev_sig,
        cpus,
        rate: args.rate,
        pinned: args.pin,
        device_crypto: args.device_crypto,
        tam_threads: tam_threads(args),
    })
}

/// Worker threads of the TAM's runtime: `--tam-threads`, else 1 with `--pin` and 2
/// without.
fn tam_threads(args: &BenchTamArgs) -> usize {
    args.tam_threads
        .unwrap_or(if args.pin { 1 } else { 2 })
        .max(1)
}

/// Whether a thread (by its `comm`) belongs to the TAM.
fn is_tam_thread(comm: &str) -> bool {
    comm.starts_with("otrp-tam") || comm.starts_with("sqlx-sqlite")
}

/// The CPU `--pin` gives the TAM's threads (the others get CPU 1).
const TAM_CPU: usize = 0;

/// Pins the calling thread to `cpu` (`taskset -p -c CPU TID`).
fn pin_this_thread(cpu: usize) -> Result<()> {
    let me = std::fs::read_link("/proc/thread-self").context("--pin: /proc/thread-self")?;
    let tid = me
        .file_name()
        .map(|t| t.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("--pin: no thread id in {}", me.display()))?;
    taskset(cpu, &tid)
}

/// `taskset -p -c CPU TID`.
fn taskset(cpu: usize, tid: &str) -> Result<()> {
    let cpu = cpu.to_string();
    let out = std::process::Command::new("taskset")
        .args(["-p", "-c", &cpu, tid])
        .output()
        .context("--pin: running taskset (util-linux)")?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "--pin: taskset -p -c {cpu} {tid} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// Pins every thread of this process: TAM threads to CPU 0, the others to CPU 1, with
/// `taskset -p -c CPU TID` (threads created later inherit their creator's CPU: the
/// SQLite workers are created by TAM threads). Called before every measured round.
fn pin_threads() -> Result<()> {
    let dir = std::fs::read_dir("/proc/self/task").context("--pin: reading /proc/self/task")?;
    for t in dir.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let cpu = if is_tam_thread(comm.trim()) {
            TAM_CPU
        } else {
            1 - TAM_CPU
        };
        // A thread may have exited since the directory was read.
        if let Err(e) = taskset(cpu, &tid) {
            if t.path().exists() {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Open loop: device i of the fleet starts its session at `i / rate` s after the round
/// starts, each on its own task, whatever the state of the others; returns each
/// session's latency from its scheduled start (queueing included). Fails unless every
/// device installed the new version.
async fn open_round(
    fleet: &Arc<Fleet>,
    http: &Http,
    urls: &[String],
    rate: f64,
) -> Result<Vec<f64>> {
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..fleet.len() {
        let fleet = fleet.clone();
        let http = http.clone();
        let url = urls.get(i % urls.len().max(1)).cloned().unwrap_or_default();
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tasks.spawn(async move {
            tokio::time::sleep_until(due).await;
            let d = fleet
                .device(i)
                .ok_or_else(|| anyhow!("device {i} missing from the fleet"))?;
            let mut tee = d.tee().clone();
            let report = otrp_broker::run_session(&http, &url, &mut tee)
                .await
                .with_context(|| format!("device {}", d.ueid()))?;
            let dt = due.elapsed().as_secs_f64();
            if report.count("installed") == 0 {
                bail!(
                    "device {}: the session ended without an install: {:?}",
                    d.ueid(),
                    report.events
                );
            }
            Ok::<f64, anyhow::Error>(dt)
        });
    }
    let mut lat = Vec::with_capacity(fleet.len());
    while let Some(r) = tasks.join_next().await {
        lat.push(r.context("session task")??);
    }
    Ok(lat)
}

/// One session per device, `concurrency` Brokers at a time, alternating between `urls`;
/// returns each session's latency. Fails unless every device installed the new version.
async fn round(
    fleet: &Arc<Fleet>,
    http: &Http,
    urls: &[String],
    concurrency: usize,
) -> Result<Vec<f64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(fleet.len())));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let fleet = fleet.clone();
        let http = http.clone();
        let urls = urls.to_vec();
        let next = next.clone();
        let lat = lat.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = fleet.device(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let url = urls.get(i % urls.len().max(1)).cloned().unwrap_or_default();
                let mut tee = d.tee().clone();
                let t = Instant::now();
                let report = otrp_broker::run_session(&http, &url, &mut tee)
                    .await
                    .with_context(|| format!("device {}", d.ueid()))?;
                let dt = t.elapsed().as_secs_f64();
                if report.count("installed") == 0 {
                    bail!(
                        "device {}: the session ended without an install: {:?}",
                        d.ueid(),
                        report.events
                    );
                }
                lat.lock().unwrap_or_else(|p| p.into_inner()).push(dt);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("Broker task")??;
    }
    let v = std::mem::take(&mut *lat.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_reads_this_process() {
        // Burn a little CPU on this thread; the process total must be positive.
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert!(x != 1);
        let (tam, all) = thread_cpu();
        assert!(all > 0.0, "no CPU time read from /proc/self/task");
        assert!(tam <= all);
    }

    #[test]
    #[allow(clippy::panic)]
    fn small_sqlite_run_installs_on_every_device() {
        let args = BenchTamArgs {
            devices: 4,
            concurrency: 2,
            store: StoreKind::Sqlite,
            database: None,
            replicas: 1,
            duration: 0,
            tam_threads: Some(1),
            json: true,
            rate: None,
            pin: false,
            device_crypto: DeviceCrypto::Ring,
            device_dir: None,
        };
        let r = bench(&args).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(r.exchanges, 4);
        assert_eq!(r.rounds, 1);
        assert!(r.p99 >= r.p50 && r.p50 > 0.0);
        assert!(r.tam_sig > 0.0 && r.costs.p256_sign > 0.0);
        assert!(r.tam_sig_range.0 <= r.tam_sig && r.tam_sig <= r.tam_sig_range.1);
        assert_eq!(r.to_json()["exchanges"], 4);
        assert_eq!(r.to_json()["device_crypto"], "ring");
        assert_eq!(r.to_json()["tam_threads"], 1);
    }

    #[test]
    #[allow(clippy::panic)]
    fn small_open_loop_run_installs_on_every_device() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let args = BenchTamArgs {
            devices: 3,
            concurrency: 1,
            store: StoreKind::Sqlite,
            database: None,
            replicas: 1,
            duration: 0,
            tam_threads: Some(1),
            json: true,
            rate: Some(50.0),
            pin: false,
            device_crypto: DeviceCrypto::RustCrypto,
            device_dir: Some(dir.path().to_path_buf()),
        };
        let r = bench(&args).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(r.exchanges, 3);
        assert!(r.p99 >= r.p50 && r.p50 > 0.0);
        assert_eq!(r.to_json()["offered_rate"], 50.0);
        assert_eq!(r.to_json()["device_crypto"], "rust-crypto");
        // The devices' stores were made in --device-dir and removed with the run.
        let left = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .count();
        assert_eq!(left, 0);
    }
}
