//! Shared by the process-level end-to-end tests (`e2e_scenarios`, `e2e_faults`, `e2e_otrp`,
//! `e2e_vendor`): the built `otrp` binary playing every role as a user would run it on
//! loopback:
//!
//! - a real `otrp tam serve` (SQLite in its data dir, HTTPS with the certificate of an
//!   `otrp pki init` PKI, a free loopback port) that can be SIGKILLed and restarted on the
//!   same data dir and port;
//! - devices made by `otrp device provision`, each with its own `otrp tee run` on a unix
//!   socket, TEEP sessions by `otrp broker run --once` (or a long-running Broker);
//! - admin work only through `otrp oem ...` / `otrp sp ...`; Client Apps through
//!   `otrp client ...`.
//!
//! What a device installed is read from two places: `otrp client status` (what the TEE
//! holds now) and the TEE daemon's log, where the Agent's every `installed` event is one
//! line (`agent event kind="installed" detail=SD:NAME`), so "installed exactly once"
//! counts real installs, also those of sessions that failed afterwards.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `otrp` binary Cargo built for this test run (in `CARGO_TARGET_DIR` when set).
pub const OTRP: &str = env!("CARGO_BIN_EXE_otrp");

/// `otrp ARGS` with logs in plain text.
pub fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(OTRP);
    c.args(args).env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "otrp {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `otrp ARGS`, which must succeed; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = cmd(args).output().unwrap();
    assert!(
        out.status.success(),
        "expected success: {}",
        show(args, &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `otrp ARGS`, which must fail with exit code 1; returns its stderr.
pub fn refused(args: &[&str]) -> String {
    let out = cmd(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal: {}",
        show(args, &out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `f` every 50 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Text without ANSI escape sequences.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A long-running `otrp` process, logging to a file; SIGKILLed when dropped.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `otrp ARGS` with `RUST_LOG=info`, stderr appended to `log`.
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        writeln!(f, "=== otrp {}", args.join(" ")).unwrap();
        let child = cmd(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL (std's `Child::kill` on Unix) and reap: a crash, no clean shutdown.
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The log so far, without colours.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// `path` as &str (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `otrp pki init DIR`.
pub fn pki_init(dir: &Path) -> PathBuf {
    let pki = dir.join("pki");
    ok(&["pki", "init", s(&pki)]);
    pki
}

/// A sample TA of `tas/dist`.
pub fn ta_path(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/../../../tas/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// `image` with a Wasm custom section `otrp-version`: a new build of the same TA
/// (another digest, same behaviour), written to `out`.
pub fn rebuilt(image: &Path, version: &str, out: &Path) -> PathBuf {
    let mut v = std::fs::read(image).unwrap();
    let name = b"otrp-version";
    let body = 1 + name.len() + version.len();
    assert!(body < 0x80);
    v.extend_from_slice(&[0x00, body as u8, name.len() as u8]);
    v.extend_from_slice(name);
    v.extend_from_slice(version.as_bytes());
    std::fs::write(out, v).unwrap();
    out.to_path_buf()
}

/// Hex SHA-256 of a file, as `otrp client status` shows component digests.
pub fn digest_of(path: &Path) -> String {
    hex::encode(otrp_crypto::default_provider().sha256(&std::fs::read(path).unwrap()))
}

/// A GET over HTTPS trusting the PKI's TAM root: (status, body); None if unreachable.
pub fn https_get(pki: &Path, url: &str) -> Option<(u16, String)> {
    let ca = std::fs::read(pki.join("tam").join("root-ca.pem")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let r = http.get(url).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.unwrap_or_default()))
    })
}

/// A running `otrp tam serve` (SQLite in `data`, HTTPS on 127.0.0.1:`port`).
pub struct Tam {
    pub pki: PathBuf,
    pub data: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    pub base: String,
    extra: Vec<String>,
    pub proc: Proc,
}

impl Tam {
    /// Writes `DIR/NAME.toml` (`accept_unlisted_models = true` plus `toml`) and starts the
    /// TAM with `--data-dir DIR/NAME` and `extra` arguments (e.g. `--policy dual-control`);
    /// returns once `/healthz` answers 200.
    pub fn start(dir: &Path, name: &str, pki: &Path, toml: &str, extra: &[&str]) -> Tam {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, format!("accept_unlisted_models = true\n{toml}")).unwrap();
        let port = free_port();
        let data = dir.join(name);
        let proc = Self::spawn_serve(
            pki,
            &data,
            &config,
            port,
            extra,
            &dir.join(format!("{name}.log")),
        );
        let mut tam = Tam {
            pki: pki.to_path_buf(),
            data,
            config,
            port,
            base: format!("https://127.0.0.1:{port}"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            proc,
        };
        tam.wait_ready();
        tam
    }

    fn spawn_serve(
        pki: &Path,
        data: &Path,
        config: &Path,
        port: u16,
        extra: &[&str],
        log: &Path,
    ) -> Proc {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "tam",
            "serve",
            "--pki",
            s(pki),
            "--data-dir",
            s(data),
            "--config",
            s(config),
            "--listen",
            &listen,
        ];
        args.extend_from_slice(extra);
        Proc::spawn(&args, log)
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/healthz", self.base);
        let start = Instant::now();
        loop {
            if let Some((200, _)) = https_get(&self.pki, &url) {
                return;
            }
            assert!(
                self.proc.running(),
                "otrp tam serve exited:\n{}",
                self.proc.log_text()
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the TAM did not become ready:\n{}",
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TEEP URL Brokers use.
    pub fn url(&self) -> String {
        format!("{}/tam", self.base)
    }

    /// SIGKILL: the TAM process dies at whatever it was doing.
    pub fn sigkill(&mut self) {
        self.proc.sigkill();
    }

    /// Starts the TAM again on the same data dir, config and port.
    pub fn restart(&mut self) {
        self.proc.sigkill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let log = self.proc.log.clone();
        // The port was just released; rebinding can race a socket in TIME_WAIT, retry.
        for _ in 0..50 {
            self.proc =
                Self::spawn_serve(&self.pki, &self.data, &self.config, self.port, &extra, &log);
            std::thread::sleep(Duration::from_millis(100));
            if self.proc.running() {
                break;
            }
        }
        self.wait_ready();
    }

    /// The OEM's API token file (written by the TAM on an empty store).
    pub fn oem_token_file(&self) -> PathBuf {
        self.data.join("oem-api-token")
    }

    fn admin_args<'a>(
        &'a self,
        role: &'a str,
        token: &'a [&'a str],
        args: &[&'a str],
    ) -> Vec<&'a str> {
        let mut v = vec![role, "--tam", &self.base, "--pki", s(&self.pki)];
        v.extend_from_slice(token);
        v.extend_from_slice(args);
        v
    }

    /// `otrp oem --token-file DATA/oem-api-token ARGS`, which must succeed.
    pub fn oem(&self, args: &[&str]) -> String {
        let tf = self.oem_token_file();
        ok(&self.admin_args("oem", &["--token-file", s(&tf)], args))
    }

    /// `otrp sp --token TOKEN ARGS`, which must succeed.
    pub fn sp(&self, token: &str, args: &[&str]) -> String {
        ok(&self.admin_args("sp", &["--token", token], args))
    }

    /// `otrp sp --token TOKEN ARGS`, which must be refused; returns stderr.
    pub fn sp_refused(&self, token: &str, args: &[&str]) -> String {
        refused(&self.admin_args("sp", &["--token", token], args))
    }

    /// `otrp oem --token TOKEN ARGS` run with another account's token, which must be
    /// refused; returns stderr.
    pub fn oem_cmd_refused(&self, token: &str, args: &[&str]) -> String {
        refused(&self.admin_args("oem", &["--token", token], args))
    }

    /// The OEM creates an SP account (and approves it when `approve`); returns its token.
    pub fn sp_account(&self, sp: &str, approve: bool) -> String {
        let out = self.oem(&["create-account", sp, "--kind", "sp"]);
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("API token (shown once): "))
            .unwrap_or_else(|| panic!("no token in:\n{out}"))
            .trim()
            .to_owned();
        if approve {
            let out = self.oem(&["approve-sp", sp]);
            assert!(out.contains(&format!("SP {sp} approved")), "{out}");
        }
        token
    }

    /// The OEM grants SD `sd` to `sp` with the PKI's SP signer sp1.
    pub fn grant_sd(&self, sd: &str, sp: &str) {
        let chain = self.pki.join("issued/sp/sp1.chain.pem");
        let out = self.oem(&["grant-sd", sd, "--sp", sp, "--signer-chain", s(&chain)]);
        assert!(out.contains(&format!("SD {sd} granted to {sp}")), "{out}");
    }

    /// The SP key arguments of the PKI's signer sp1.
    pub fn signer(&self) -> [String; 4] {
        [
            "--key".into(),
            s(&self.pki.join("issued/sp/sp1.key.pem")).into(),
            "--cert".into(),
            s(&self.pki.join("issued/sp/sp1.chain.pem")).into(),
        ]
    }

    /// `otrp sp --token TOKEN ARGS` followed by sp1's key arguments, which must succeed.
    pub fn sp_signed(&self, token: &str, args: &[&str]) -> String {
        let k = self.signer();
        let mut args = args.to_vec();
        args.extend(k.iter().map(String::as_str));
        self.sp(token, &args)
    }

    /// `otrp sp publish TA --component C --seq N` signed with sp1; returns stdout.
    pub fn publish(&self, token: &str, ta: &Path, component: &str, seq: u64) -> String {
        self.publish_with(token, ta, component, seq, &[])
    }

    /// [`Tam::publish`] with `extra` arguments before the key ones (e.g. `--compact`).
    pub fn publish_with(
        &self,
        token: &str,
        ta: &Path,
        component: &str,
        seq: u64,
        extra: &[&str],
    ) -> String {
        let seq = seq.to_string();
        let mut args = vec!["publish", s(ta), "--component", component, "--seq", &seq];
        args.extend_from_slice(extra);
        let out = self.sp_signed(token, &args);
        assert!(
            out.contains(&format!("published {component} #{seq}")),
            "{out}"
        );
        out
    }

    /// `otrp sp deploy`; returns the deployment id.
    pub fn deploy(&self, token: &str, component: &str, target: &str, stage: Option<&str>) -> i64 {
        let mut args = vec!["deploy", "--component", component, "--target", target];
        if let Some(st) = stage {
            args.extend_from_slice(&["--stage", st]);
        }
        let out = self.sp(token, &args);
        out.lines()
            .find_map(|l| l.strip_prefix("deployment "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no deployment id in:\n{out}"))
    }

    /// `otrp sp rollout status ID` parsed: (state, done, sent, failed).
    pub fn rollout(&self, token: &str, id: i64) -> (String, u64, u64, u64) {
        let out = self.sp(token, &["rollout", "status", &id.to_string()]);
        // "#ID COMPONENT: STATE · X/Y · done D · sent S · failed F"
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("#{id} ")))
            .unwrap_or_else(|| panic!("no line for #{id} in:\n{out}"));
        let field = |name: &str| -> u64 {
            line.split(" · ")
                .find_map(|p| p.strip_prefix(&format!("{name} ")))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let state = line
            .split(": ")
            .nth(1)
            .and_then(|r| r.split(" · ").next())
            .unwrap_or("?")
            .to_owned();
        (state, field("done"), field("sent"), field("failed"))
    }
}

/// The start of most scenarios: a temp dir with an `otrp pki init` PKI, a TAM ("tam",
/// default configuration) and one approved SP account granted one SD.
pub struct SpTam {
    pub tam: Tam,
    /// The SP account's API token.
    pub token: String,
    pub pki: PathBuf,
    // Last: dropped after the TAM is killed.
    tmp: tempfile::TempDir,
}

impl SpTam {
    /// Starts it for SP `sp`, granted SD `sd`.
    pub fn start(sp: &str, sd: &str) -> SpTam {
        Self::start_after(sp, sd, |_, _| String::new())
    }

    /// [`SpTam::start`], running `before(dir, pki)` between `otrp pki init` and the TAM's
    /// start; it returns more TOML for the TAM's config file.
    pub fn start_after(sp: &str, sd: &str, before: impl FnOnce(&Path, &Path) -> String) -> SpTam {
        let tmp = tempfile::tempdir().unwrap();
        let pki = pki_init(tmp.path());
        let toml = before(tmp.path(), &pki);
        let tam = Tam::start(tmp.path(), "tam", &pki, &toml, &[]);
        let token = tam.sp_account(sp, true);
        tam.grant_sd(sd, sp);
        SpTam {
            tam,
            token,
            pki,
            tmp,
        }
    }

    /// The temp dir everything lives in (devices go here too).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// One provisioned device and its `otrp tee run`.
pub struct Device {
    pub name: String,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub tee: Option<Proc>,
    tam_cert: PathBuf,
}

/// `otrp device provision --count N` of `model` under `DIR/model/`; `config` is the
/// management configuration (`oem-gated`, `oem-owned-sd`, `dual-control`).
pub fn provision(dir: &Path, pki: &Path, model: &str, n: usize, config: &str) -> Vec<Device> {
    provision_with(dir, pki, model, n, &["--config", config])
}

/// `otrp device provision --count N` of `model` under `DIR/model/` with `extra` arguments
/// (e.g. `--batch NAME`).
pub fn provision_with(
    dir: &Path,
    pki: &Path,
    model: &str,
    n: usize,
    extra: &[&str],
) -> Vec<Device> {
    let parent = dir.join(model);
    let count = n.to_string();
    let mut args = vec![
        "device",
        "provision",
        "--pki",
        s(pki),
        "--model",
        model,
        "--count",
        &count,
        "--out",
        s(&parent),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    (1..=n)
        .map(|i| {
            let name = format!("dev-{i:04}");
            let d = parent.join(&name);
            assert!(d.join("device.json").exists(), "no {}", d.display());
            Device {
                name: format!("{model}/{name}"),
                sock: d.join("tee.sock"),
                dir: d,
                tee: None,
                tam_cert: pki.join("issued/tam/tam1.chain.pem"),
            }
        })
        .collect()
}

impl Device {
    /// `unix:SOCK`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    /// Starts `otrp tee run --oem-tam-cert TAM1_CHAIN` on the device's socket.
    pub fn start_tee(&mut self) {
        self.start_tee_with(&[]);
    }

    /// [`Device::start_tee`] with `extra` arguments (e.g. `--vendor-pen N`).
    pub fn start_tee_with(&mut self, extra: &[&str]) {
        let _ = std::fs::remove_file(&self.sock);
        let addr = self.addr();
        let mut args = vec![
            "tee",
            "run",
            "--device",
            s(&self.dir),
            "--listen",
            &addr,
            "--oem-tam-cert",
            s(&self.tam_cert),
        ];
        args.extend_from_slice(extra);
        self.tee = Some(Proc::spawn(&args, &self.dir.join("tee.log")));
        let sock = self.sock.clone();
        wait_for("the TEE socket", Duration::from_secs(30), || sock.exists());
    }

    /// The device's UEID (hex) from device.json.
    pub fn ueid(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join("device.json")).unwrap())
                .unwrap();
        v["ueid"].as_str().unwrap().to_owned()
    }

    /// The Broker command of one session against `tam`.
    pub fn broker_once(&self, tam: &Tam) -> Command {
        let ca = tam.pki.join("tam/root-ca.pem");
        cmd(&[
            "broker",
            "run",
            "--tam",
            &tam.url(),
            "--tee",
            &self.addr(),
            "--tam-ca",
            s(&ca),
            "--once",
        ])
    }

    /// A long-running Broker polling `tam` every `interval` seconds, fast backoff.
    pub fn broker(&self, tam: &Tam, interval: &str) -> Proc {
        let ca = tam.pki.join("tam/root-ca.pem");
        Proc::spawn(
            &[
                "broker",
                "run",
                "--tam",
                &tam.url(),
                "--tee",
                &self.addr(),
                "--tam-ca",
                s(&ca),
                "--interval",
                interval,
                "--jitter",
                "0.1",
                "--backoff-min",
                "0.1",
                "--backoff-max",
                "0.5",
                "--http-timeout",
                "5",
            ],
            &self.dir.join("broker.log"),
        )
    }

    /// `otrp client status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(&["client", "status", "--tee", &self.addr()])).unwrap()
    }

    /// The digest of component `id` (`SD:NAME`) the TEE holds, if any.
    pub fn digest(&self, id: &str) -> Option<String> {
        self.status()["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["digest"].as_str().unwrap().to_owned())
    }

    /// `otrp client invoke --ta TA --cmd CMD --data HEX`: Ok(output hex) or Err(stderr).
    pub fn invoke(&self, ta: &str, command: u32, data_hex: &str) -> Result<String, String> {
        let c = command.to_string();
        let out = cmd(&[
            "client",
            "invoke",
            "--tee",
            &self.addr(),
            "--ta",
            ta,
            "--cmd",
            &c,
            "--data",
            data_hex,
        ])
        .output()
        .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// How many times the Agent reported installing `id` (`SD:NAME`), from the TEE
    /// daemon's log (every run of it on this device).
    pub fn installs(&self, id: &str) -> usize {
        let log =
            strip_ansi(&std::fs::read_to_string(self.dir.join("tee.log")).unwrap_or_default());
        log.lines()
            .filter(|l| {
                l.contains("agent event")
                    && l.contains("kind=\"installed\"")
                    && l.split_whitespace().any(|w| w == format!("detail={id}"))
            })
            .count()
    }
}

/// One `otrp broker run --once` session per device, all at once; each must succeed.
/// Returns each Broker's stdout (its session report: `installed: SD:NAME` lines).
pub fn sessions(devices: &[&Device], tam: &Tam) -> Vec<String> {
    let children: Vec<_> = devices
        .iter()
        .map(|d| {
            d.broker_once(tam)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .zip(devices)
        .map(|(c, d)| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "session of {}: {}",
                d.name,
                show(&["broker", "run", "--once"], &out)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// Hex of a drone geofence point: lat, lon as f64 little-endian.
pub fn point_hex(lat: f64, lon: f64) -> String {
    let mut v = lat.to_le_bytes().to_vec();
    v.extend_from_slice(&lon.to_le_bytes());
    hex::encode(v)
}
