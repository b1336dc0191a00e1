//! HTTP-level test harness: a fresh otrp-pki PKI on disk, a TAM server on 127.0.0.1:0
//! with TLS from it, an API client, devices provisioned with `otrp_pki::device::provision`
//! running real `otrp-agent` Agents, and a Broker loop (reqwest + rustls trusting only the
//! PKI's TAM root) that carries their TEEP messages.
#![allow(clippy::unwrap_used, clippy::panic, dead_code, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otrp_agent::suit_processor::{MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, AgentError, Attester, EatAttester, EatIdentity, Event, InstalledManifest,
    Management, TrustedTam,
};
use otrp_crypto::{AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey};
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_pki::{CertKind, InitOptions, Pki};
use otrp_store::{SqlStore, Store};
use otrp_tam_server::publish::{self, Payload};
use otrp_tam_server::{AppState, Identity, RunningServer, ServerConfig};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const MODEL: &str = "door-lock";
pub const MEASUREMENT: [u8; 32] = [0x5a; 32];
pub const TEEP: &str = "application/teep+cbor";
pub const TA: &[u8] = b"\0asm\x01\0\0\0 a tiny trusted application for the HTTP tests";

static N: AtomicU32 = AtomicU32::new(0);

pub fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::default_provider()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        now() % 100_000
    )
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("otrp_tam_server_{}", unique(tag)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// True (and says so) when `OTRP_TEST_DATABASE_URL` is not set: the PostgreSQL test
/// `name` is skipped.
pub fn skip_without_pg(name: &str) -> bool {
    if pg_url().is_none() {
        println!("SKIPPED {name}: OTRP_TEST_DATABASE_URL is not set");
        return true;
    }
    false
}

/// `name`'s value as a number, or `default` (unset or not a number).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The PostgreSQL URL of the test machine, or None (the test prints SKIPPED).
pub fn pg_url() -> Option<String> {
    std::env::var("OTRP_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A PKI on disk and the TAM configuration pointing at it.
pub struct Fixture {
    pub dir: PathBuf,
    pub pki: Pki,
    pub pki_dir: PathBuf,
    pub config: ServerConfig,
    pub identity: Identity,
    pub backend: Backend,
    pub schema: Option<String>,
}

impl Fixture {
    pub fn new(tag: &str, backend: Backend) -> Fixture {
        let dir = temp_dir(tag);
        let pki = Pki::init(
            &InitOptions::default(),
            &mut rng(u64::from(N.fetch_add(1, Ordering::Relaxed)) + 11),
            SystemTime::now() - Duration::from_secs(3600),
        )
        .unwrap();
        let pki_dir = dir.join("pki");
        otrp_pki::fs::create_pki(&pki_dir, &pki, false).unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.join("data"),
            pki: Some(pki_dir.clone()),
            reference: vec![otrp_tam_server::config::ReferenceConfig {
                model: MODEL.into(),
                measurements: vec![hex::encode(MEASUREMENT)],
                hwversions: Vec::new(),
            }],
            max_teep_body_bytes: 64 * 1024,
            ..ServerConfig::default()
        };
        // The server loads its identity from the PKI directory, as `--pki DIR` does.
        let identity = Identity::load(&config).unwrap();
        let schema = (backend == Backend::Postgres).then(|| unique("tamsrv").to_lowercase());
        Fixture {
            dir,
            pki,
            pki_dir,
            config,
            identity,
            backend,
            schema,
        }
    }

    /// Opens (another handle on) the test's store.
    pub async fn store(&self) -> (Arc<dyn Store>, &'static str) {
        match self.backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(&self.config.data_dir).unwrap();
                let s = SqlStore::open_sqlite(&self.config.data_dir.join("tam.db"))
                    .await
                    .unwrap();
                (Arc::new(s), "sqlite")
            }
            Backend::Postgres => {
                let url = pg_url().unwrap();
                let s = SqlStore::connect_postgres_schema(&url, self.schema.as_deref().unwrap())
                    .await
                    .unwrap();
                (Arc::new(s), "postgres")
            }
        }
    }

    /// Starts a TAM server on 127.0.0.1:0 over this fixture's store (HTTPS).
    pub async fn start(&self) -> RunningServer {
        let (store, backend) = self.store().await;
        self.start_on(store, backend).await
    }

    /// Starts a TAM server on 127.0.0.1:0 over `store` (its `backend` name), for tests
    /// that keep a handle on the store (HTTPS, OEM bootstrapped).
    pub async fn start_on(&self, store: Arc<dyn Store>, backend: &'static str) -> RunningServer {
        self.start_with_state(store, backend).await.1
    }

    /// [`Fixture::start_on`], also giving the server's state (for tests that serve it
    /// over CoAP too).
    pub async fn start_with_state(
        &self,
        store: Arc<dyn Store>,
        backend: &'static str,
    ) -> (Arc<AppState>, RunningServer) {
        let state = Arc::new(
            AppState::with_store(self.config.clone(), self.identity.clone(), store, backend)
                .unwrap(),
        );
        state.bootstrap_oem(&self.config.data_dir).await.unwrap();
        let tls = otrp_tam_server::tls_config(&self.identity).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server =
            otrp_tam_server::spawn(listener, otrp_tam_server::router(state.clone()), Some(tls))
                .unwrap();
        (state, server)
    }

    pub fn oem_token(&self) -> String {
        std::fs::read_to_string(self.config.data_dir.join("oem-api-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn sp_chain_pem(&self) -> String {
        let rec = self.pki.first_issued(CertKind::Sp).unwrap();
        String::from_utf8(self.pki.file(&rec.chain).unwrap().to_vec()).unwrap()
    }

    pub fn sp_key(&self) -> PrivateKey {
        let rec = self.pki.first_issued(CertKind::Sp).unwrap();
        self.pki.private_key(&rec.key).unwrap()
    }

    /// Drops the PostgreSQL schema of the test.
    pub async fn cleanup(self) {
        if self.backend == Backend::Postgres {
            if let (Some(url), Some(schema)) = (pg_url(), &self.schema) {
                if let Ok(s) = SqlStore::connect_postgres_schema(&url, schema).await {
                    let _ = s.drop_schema().await;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTPS client that trusts only the PKI's TAM root, follows no redirects, keeps no
/// cookies (draft-ietf-teep-otrp-over-http §4, §5).
pub fn client(pki: &Pki) -> reqwest::Client {
    let root = pki
        .ca_cert_der(otrp_pki::CaRole::Tam, otrp_pki::CaLevel::Root)
        .unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&root).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The Broker's HTTPS transport, trusting only the PKI's TAM root.
pub fn broker_http(pki: &Pki) -> otrp_broker::Http {
    let root = pki
        .ca_cert_der(otrp_pki::CaRole::Tam, otrp_pki::CaLevel::Root)
        .unwrap();
    let root_pem = otrp_pki::cert::to_pem("CERTIFICATE", &root).unwrap();
    otrp_broker::Http::new(Some(root_pem.as_bytes()), Duration::from_secs(30)).unwrap()
}

/// The PKI's TAM certificates as the devices of a fleet trust them: as the OEM's TAM
/// (`otrp tee run --oem-tam-cert`), which signs the SD manifests.
pub fn oem_tams(pki: &Pki) -> Vec<otrp_tee_daemon::TamCert> {
    otrp_fleet::pki_tam_certs(pki)
        .unwrap()
        .into_iter()
        .map(|mut t| {
            t.oem = true;
            t
        })
        .collect()
}

/// The admin API as a test calls it.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(pki: &Pki, server: &RunningServer) -> Api {
        Api {
            http: client(pki),
            base: server.base_url(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// Expects `status`, returns the body.
    pub async fn ok(&self, status: StatusCode, r: (StatusCode, Value)) -> Value {
        assert_eq!(r.0, status, "unexpected answer: {}", r.1);
        r.1
    }

    /// Deployment `id` with its progress, as `token` sees it (`GET /api/v1/deployments/{id}`,
    /// which must answer 200).
    pub async fn deployment(&self, id: i64, token: &str) -> Value {
        self.ok(
            StatusCode::OK,
            self.get(&format!("/api/v1/deployments/{id}"), token).await,
        )
        .await
    }

    /// Batch `id` as `token` sees it (`GET /api/v1/batches/{id}`), once checked that its
    /// package number `index` (from 0) has `applied` devices applied and none failed.
    pub async fn batch_all_applied(
        &self,
        id: &str,
        token: &str,
        index: usize,
        applied: usize,
    ) -> Value {
        let b = self
            .ok(
                StatusCode::OK,
                self.get(&format!("/api/v1/batches/{id}"), token).await,
            )
            .await;
        assert_eq!(b["packages"][index]["applied"], applied as u64, "{b}");
        assert_eq!(b["packages"][index]["failed"], 0, "{b}");
        b
    }
}

/// OEM, one approved SP with SD `sd1` (signer: the PKI's SP signer).
pub struct Tenants {
    pub oem: String,
    pub sp: String,
}

/// Creates account `id` of `kind` (`sp`, `device-admin`, …) with the OEM's token `oem`:
/// its API token.
pub async fn create_account(api: &Api, oem: &str, id: &str, kind: &str) -> String {
    api.ok(
        StatusCode::CREATED,
        api.post("/api/v1/accounts", oem, json!({"id": id, "kind": kind}))
            .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates SP account `id` (with the OEM's token `oem`) and approves it: its API token.
pub async fn approved_sp(api: &Api, oem: &str, id: &str) -> String {
    let sp = create_account(api, oem, id, "sp").await;
    api.ok(
        StatusCode::OK,
        api.post(&format!("/api/v1/sps/{id}/approve"), oem, json!({}))
            .await,
    )
    .await;
    sp
}

pub async fn tenants(f: &Fixture, api: &Api) -> Tenants {
    let oem = f.oem_token();
    let sp = approved_sp(api, &oem, "sp1").await;
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/sds",
            &oem,
            json!({"name": "sd1", "sp_id": "sp1", "signer_chain_pem": f.sp_chain_pem()}),
        )
        .await,
    )
    .await;
    Tenants { oem, sp }
}

/// The SP publishes `TA` as `sd1/hello-ta` (seq) and deploys it to the model.
pub async fn publish_and_deploy(f: &Fixture, api: &Api, t: &Tenants, seq: u64) -> i64 {
    let env = publish::ta_envelope(
        provider(),
        &f.sp_key(),
        "sd1/hello-ta",
        seq,
        TA,
        &Payload::Integrated,
    )
    .unwrap();
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/components",
            &t.sp,
            publish::upload_body(&env, &f.sp_chain_pem(), Some("hello")),
        )
        .await,
    )
    .await;
    let d = api
        .ok(
            StatusCode::CREATED,
            api.post(
                "/api/v1/deployments",
                &t.sp,
                json!({"component": "sd1/hello-ta", "target": format!("model:{MODEL}")}),
            )
            .await,
        )
        .await;
    d["id"].as_i64().unwrap()
}

/// `EatAttester`, except that a device with nothing installed yet leaves the `manifests`
/// claim out: otrp-eat refuses an empty array there, so `EatAttester` (as of this
/// writing) cannot attest a fresh device at all. Same key, same claims, same x5chain.
pub struct FreshDeviceAttester {
    inner: EatAttester,
    key: PrivateKey,
    x5chain: Vec<Vec<u8>>,
}

impl Attester for FreshDeviceAttester {
    fn evidence(
        &mut self,
        nonce: &[u8],
        installed: &[InstalledManifest],
    ) -> Result<Vec<u8>, AgentError> {
        let mut claims = self.inner.claims(nonce, installed)?;
        if claims.manifests.as_ref().is_some_and(Vec::is_empty) {
            claims.manifests = None;
        }
        let signed = otrp_eat::signed::sign(provider(), &self.key, &claims, &Default::default())
            .map_err(|e| AgentError::Encode(e.to_string()))?;
        let mut msg =
            otrp_cose::parse_sign1(&signed).map_err(|e| AgentError::Encode(e.to_string()))?;
        msg.unprotected.rest.push((
            coset::Label::Int(otrp_agent::attest::X5CHAIN),
            ciborium::value::Value::Array(
                self.x5chain
                    .iter()
                    .map(|c| ciborium::value::Value::Bytes(c.clone()))
                    .collect(),
            ),
        ));
        coset::CborSerializable::to_vec(msg).map_err(|e| AgentError::Encode(e.to_string()))
    }
}

pub type TestAgent = Agent<MemoryStore, FreshDeviceAttester>;

/// A device from `otrp_pki::device::provision`, running a real Agent.
pub struct Device {
    pub agent: TestAgent,
    pub id: String,
    pub public: Value,
    pub tee_chain_pem: String,
    pub agent_key_pem: String,
    pub events: Vec<Event>,
}

pub fn provision_device(f: &mut Fixture, seed: u64) -> Device {
    let p = provision(
        &mut f.pki,
        &ProvisionRequest::new(MODEL),
        provider(),
        &mut rng(seed),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap();
    let id = p.identity;
    let mut x5chain = vec![id.tee.cert.clone()];
    x5chain.extend(id.tee.chain.iter().cloned());
    let tee_chain_pem = x5chain
        .iter()
        .map(|c| otrp_pki::cert::to_pem("CERTIFICATE", c).unwrap())
        .collect::<String>();
    let oemid: [u8; 16] = id.oemid.as_slice().try_into().unwrap_or([0; 16]);
    let identity = EatIdentity {
        ueid: id.ueid.clone(),
        oemid: otrp_eat::OemId::Random(oemid),
        hwmodel: id.hwmodel.as_bytes().to_vec(),
        hwversion: id.hwversion.clone(),
        measurement: MEASUREMENT,
        x5chain,
        tfw_endorsement: None,
    };
    let agent_key = PrivateKey::generate(KeyKind::P256, &mut rng(seed + 1_000_000)).unwrap();
    let agent_key_pem = agent_key.public_key().to_spki_pem().unwrap();
    let attester = FreshDeviceAttester {
        inner: EatAttester::new(
            provider(),
            id.tee.key.clone(),
            identity.clone(),
            &agent_key.public_key(),
        ),
        key: id.tee.key.clone(),
        x5chain: identity.x5chain.clone(),
    };
    let config = AgentConfig {
        tams: vec![TrustedTam {
            key: f.identity.signing_key.public_key(),
            oem: true,
        }],
        oem_keys: id.anchors.oem_keys.clone(),
        management: Management::OemGated,
        agent_key,
        alg_gen: AlgIdGeneration::New,
        processor: ProcessorConfig::default(),
        max_tokens: 64,
    };
    Device {
        agent: Agent::new(provider(), config, MemoryStore::new(), attester),
        id: hex::encode(&id.ueid),
        public: serde_json::to_value(&p.public).unwrap(),
        tee_chain_pem,
        agent_key_pem,
        events: Vec::new(),
    }
}

/// Provisions `n` devices (seeds `first_seed`, `first_seed + 1`, …) and registers them
/// with the OEM's token `oem`, untagged.
pub async fn register_fleet(
    f: &mut Fixture,
    api: &Api,
    oem: &str,
    n: usize,
    first_seed: u64,
) -> Vec<Device> {
    let devices: Vec<Device> = (0..n)
        .map(|i| provision_device(f, first_seed + i as u64))
        .collect();
    for d in &devices {
        register_device(api, oem, d, &[]).await;
    }
    devices
}

pub async fn register_device(api: &Api, token: &str, d: &Device, tags: &[&str]) -> Value {
    api.ok(
        StatusCode::CREATED,
        api.post(
            "/api/v1/devices",
            token,
            json!({
                "device": d.public,
                "tee_chain_pem": d.tee_chain_pem,
                "agent_key_pem": d.agent_key_pem,
                "tags": tags,
            }),
        )
        .await,
    )
    .await
}

/// What one Broker request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The TAM answered with a message; the Agent produced the next one.
    Continue,
    /// 204: the session is over.
    Done,
}

/// The Broker side of one TEEP session: `next` is the body of the next POST (empty at
/// first: ProcessConnect).
pub struct Session {
    pub next: Vec<u8>,
    pub requests: usize,
}

impl Session {
    pub fn new() -> Session {
        Session {
            next: Vec::new(),
            requests: 0,
        }
    }

    /// One POST to `url` and the Agent's processing of the answer.
    pub async fn step(&mut self, http: &reqwest::Client, url: &str, dev: &mut Device) -> Step {
        let mut req = http.post(url).header(reqwest::header::ACCEPT, TEEP);
        if !self.next.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, TEEP);
        }
        let resp = req.body(self.next.clone()).send().await.unwrap();
        self.requests += 1;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap();
        match status {
            StatusCode::NO_CONTENT => {
                assert!(body.is_empty(), "204 with a body");
                Step::Done
            }
            StatusCode::OK => {
                assert_eq!(
                    headers.get(reqwest::header::CONTENT_TYPE).unwrap(),
                    TEEP,
                    "200 without the TEEP content type"
                );
                let out = dev.agent.handle(&body, now());
                dev.events.extend(out.events.iter().cloned());
                self.next = out
                    .send
                    .unwrap_or_else(|| panic!("the Agent sent nothing back: {:?}", out.events));
                Step::Continue
            }
            other => panic!("TAM answered {other}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Runs to the end, the Broker taking the next URL of `urls` for each request.
    pub async fn run(&mut self, http: &reqwest::Client, urls: &[String], dev: &mut Device) {
        for i in 0..32 {
            let url = &urls[i % urls.len()];
            if self.step(http, url, dev).await == Step::Done {
                return;
            }
        }
        panic!("the session did not end in 32 requests");
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// Opens a session for `dev` at `url` and POSTs the Agent's QueryResponse: the session
/// (to go on with) and the TAM's answer to it, not yet processed.
pub async fn post_query_response(
    http: &reqwest::Client,
    url: &str,
    dev: &mut Device,
) -> (Session, reqwest::Response) {
    let mut s = Session::new();
    assert_eq!(s.step(http, url, dev).await, Step::Continue);
    let r = http
        .post(url)
        .header(reqwest::header::ACCEPT, TEEP)
        .header(reqwest::header::CONTENT_TYPE, TEEP)
        .body(s.next.clone())
        .send()
        .await
        .unwrap();
    (s, r)
}

/// The body of `GET url` with `client`, whatever the status.
pub async fn get_bytes(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Vec<u8> {
    client
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// The body of `GET url` with `client` as text (`/metrics`, `/openapi.json`).
pub async fn get_text(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Whether the device's Agent reported installing `segments`.
pub fn installed(dev: &Device, segments: &[&[u8]]) -> bool {
    dev.events.iter().any(|e| match e {
        Event::Installed { component } => {
            component.0.len() == segments.len()
                && component
                    .0
                    .iter()
                    .zip(segments)
                    .all(|(a, b)| a.as_slice() == *b)
        }
        _ => false,
    })
}
