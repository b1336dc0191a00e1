//! A repeatable cost of full TEEP exchanges through the TAM core on SQLite, for
//! before/after comparisons on a busy machine (not criterion: a fixed amount of work).
//!
//! Each exchange is the one the TAM server runs for a Broker (empty body → QueryRequest
//! as COSE_Sign ESP256 + Ed25519 with a challenge; QueryResponse with EAT evidence whose
//! TEE certificate chain (`x5chain`) is validated to the TEE root of a development PKI
//! with its CRLs, as `otrp-tam-server` does → Update signed, one TA; Success → 204).
//! `DEVICES` provisioned devices take turns.
//!
//! ```sh
//! cargo bench -p otrp-tam --bench exchange_cost -- 200               # CPU per exchange
//! cargo bench -p otrp-tam --bench exchange_cost -- 200 --statements  # + SQL statements
//! # instructions (user space, every thread), independent of the machine's load:
//! B=$(ls -t target/release/deps/exchange_cost-* | grep -v '\.d$' | head -1)
//! for a in "0" "100 --exchanges-only" "100 --device-only"; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $a 2>&1 | grep refs
//! done
//! # TAM instructions per exchange = (I[exchanges-only] - I[device-only]) / 100
//! ```
//!
//! Prints, per exchange: the CPU time of every thread of the process (the TAM core, the
//! scripted devices' signing and sqlx's SQLite worker threads, from
//! `/proc/self/task/*/schedstat`), the part of it the device side takes (measured
//! alone), and with `--statements` the SQL statements sqlx logged (`sqlx::query` events:
//! BEGIN/COMMIT and pool pings are not among them). Statement logging costs CPU itself,
//! so the CPU figure of a `--statements` run is not comparable.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ciborium::value::Value;
use coset::{CborSerializable, Label};
use otrp_crypto::{CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_eat::{Confirmation, ContentFormat, EatClaims, OemId, Profile};
use otrp_pki::device::{provision, ProvisionRequest};
use otrp_pki::{CaRole, InitOptions, Pki};
use otrp_store::{AccountKind, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_suit::{CborItem, ComponentId as SuitId, ReportResult, SuitReport};
use otrp_tam::{
    Admin, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys, X5CHAIN,
};
use otrp_teep::{QueryResponse, Success, TeepMessage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const NOW: u64 = 1_800_000_000;
const MODEL: &str = "bench";
const DEVICES: u64 = 8;

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts sqlx's per-statement log events.
struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn key(seed: u64, kind: KeyKind) -> PrivateKey {
    PrivateKey::generate(kind, &mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// CPU nanoseconds of every live thread of this process.
fn cpu_ns() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

struct Device {
    ueid: Vec<u8>,
    tee: PrivateKey,
    chain: Vec<Vec<u8>>,
    agent: PrivateKey,
}

impl Device {
    fn sign(&self, p: &dyn CryptoProvider, m: &TeepMessage) -> Vec<u8> {
        otrp_teep::signed::sign1(p, &self.agent, m, Default::default()).unwrap()
    }
    fn evidence(&self, p: &dyn CryptoProvider, nonce: &[u8]) -> Vec<u8> {
        let cnf =
            Confirmation::from_cose_key(otrp_cose::cose_key_from_public(&self.agent.public_key()))
                .unwrap();
        let claims = EatClaims::new()
            .with_nonce(nonce.to_vec())
            .with_ueid(self.ueid.clone())
            .with_oemid(OemId::Random([7; 16]))
            .with_hwmodel(MODEL.as_bytes().to_vec())
            .with_hwversion("1.0", None)
            .with_profile(Profile::Uri(otrp_eat::TEEP_EAT_PROFILE.into()))
            .with_measurements(vec![ContentFormat {
                content_type: 0,
                content: Value::Bytes(vec![0x5a; 32]),
            }])
            .with_cnf(cnf);
        let signed = otrp_eat::signed::sign(p, &self.tee, &claims, &Default::default()).unwrap();
        let mut msg = otrp_cose::parse_sign1(&signed).unwrap();
        msg.unprotected.rest.push((
            Label::Int(X5CHAIN),
            Value::Array(self.chain.iter().map(|c| Value::Bytes(c.clone())).collect()),
        ));
        msg.to_vec().unwrap()
    }
}

fn reply(o: Outcome) -> Vec<u8> {
    match o {
        Outcome::Reply(b) => b,
        Outcome::Done => panic!("unexpected 204"),
    }
}

/// The device's side of one exchange, given the TAM's message; None at the end.
struct Script<'a> {
    dev: &'a Device,
    tam_pub: &'a [PublicKey],
}

impl Script<'_> {
    fn query_response(&self, qr: &[u8]) -> Vec<u8> {
        let p = otrp_crypto::default_provider();
        let TeepMessage::QueryRequest(qr) = otrp_teep::signed::verify(p, qr, self.tam_pub)
            .unwrap()
            .message
        else {
            panic!("QueryRequest expected")
        };
        let resp = QueryResponse::new()
            .with_token(qr.token.clone().unwrap())
            .with_attestation(None, self.dev.evidence(p, qr.challenge.as_deref().unwrap()));
        self.dev.sign(p, &TeepMessage::QueryResponse(resp))
    }
    fn success(&self, up: &[u8]) -> Vec<u8> {
        let p = otrp_crypto::default_provider();
        let TeepMessage::Update(up) = otrp_teep::signed::verify(p, up, self.tam_pub)
            .unwrap()
            .message
        else {
            panic!("Update expected")
        };
        let token = up.token.clone().unwrap();
        let reports: Vec<Vec<u8>> = up
            .manifest_list
            .iter()
            .flatten()
            .map(|m| {
                let env = otrp_suit::Envelope::decode(m).unwrap();
                SuitReport::for_envelope(&env, Some(token.clone()), ReportResult::Success)
                    .to_cbor()
                    .unwrap()
            })
            .collect();
        assert_eq!(reports.len(), 1, "one TA per Update");
        self.dev.sign(
            p,
            &TeepMessage::Success(Success::new().with_token(token).with_suit_reports(reports)),
        )
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200);
    let statements = args.iter().any(|a| a == "--statements");
    let device_loop = !args.iter().any(|a| a == "--exchanges-only");
    let exchange_loop = !args.iter().any(|a| a == "--device-only");
    if statements {
        use tracing_subscriber::layer::SubscriberExt;
        let sub = tracing_subscriber::registry().with(CountStatements);
        tracing::subscriber::set_global_default(sub).unwrap();
    }
    let p = otrp_crypto::default_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("otrp_tam_cost_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut pki = Pki::init(&InitOptions::default(), &mut rng, at(NOW - 1000)).unwrap();
    let devices: Vec<Device> = (0..DEVICES)
        .map(|i| {
            let prov = provision(
                &mut pki,
                &ProvisionRequest::new(MODEL),
                p,
                &mut rng,
                at(NOW - 1000),
            )
            .unwrap();
            let id = prov.identity;
            let mut chain = vec![id.tee.cert.clone()];
            chain.extend(id.tee.chain.iter().cloned());
            Device {
                ueid: id.ueid.clone(),
                tee: id.tee.key.clone(),
                chain,
                agent: key(100 + i, KeyKind::P256),
            }
        })
        .collect();
    let keys = TamKeys {
        p256: key(1, KeyKind::P256),
        ed25519: key(2, KeyKind::Ed25519),
    };
    let tam_pub = [keys.p256.public_key(), keys.ed25519.public_key()];
    let tam = rt.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(SqlStore::open_sqlite(&dir.join("tam.db")).await.unwrap());
        let mut v = EatVerifier::new(p, 3600).with_roots(pki.trust_store(CaRole::Tee).unwrap());
        v.set_reference(
            MODEL,
            ReferenceValues {
                measurements: vec![vec![0x5a; 32]],
                hwversions: vec!["1.0".into()],
            },
        );
        let tam = Tam::new(
            store.clone(),
            Arc::new(v),
            keys.clone(),
            TamConfig::default(),
            p,
        );
        let admin = Admin::new(store, p, Policy::OemGated);
        let oem = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut rng)
            .await
            .unwrap();
        let oem = admin.authenticate(&oem).await.unwrap();
        let sp = admin
            .create_account(Some(&oem), "sp", AccountKind::Sp, NOW, &mut rng)
            .await
            .unwrap();
        admin.approve_sp(&oem, "sp", true, NOW).await.unwrap();
        let sp = admin.authenticate(&sp).await.unwrap();
        admin.create_sd(&oem, "sd", "sp", NOW).await.unwrap();
        let signer = key(6, KeyKind::P256);
        let ta = vec![0x5a; 2048];
        let env =
            otrp_suit::TaManifestBuilder::new(SuitId(vec![b"sd".to_vec(), b"app".to_vec()]), 1)
                .image_of(&ta)
                .integrated_payload("#tc", ta.clone())
                .build_signed(p, &signer, &Default::default())
                .unwrap()
                .encode()
                .unwrap();
        let reg = admin
            .register_manifest(&sp, "sd", "app", &env, &[signer.public_key()], NOW)
            .await
            .unwrap();
        admin
            .create_deployment(
                &sp,
                &reg.component,
                DeploymentAction::Install,
                Target::All,
                Rollout::Full,
                NOW,
            )
            .await
            .unwrap();
        tam
    });

    // The devices' side alone (the TAM's replies are reused), to subtract it.
    let mut replies = Vec::new();
    rt.block_on(async {
        for (i, dev) in devices.iter().enumerate() {
            let s = Script {
                dev,
                tam_pub: &tam_pub,
            };
            let qr = reply(tam.process(None, &[], NOW, &mut rng).await.unwrap());
            let body = s.query_response(&qr);
            let up = reply(tam.process(None, &body, NOW + 1, &mut rng).await.unwrap());
            let done = tam
                .process(None, &s.success(&up), NOW + 2, &mut rng)
                .await
                .unwrap();
            assert_eq!(done, Outcome::Done, "device {i}");
            replies.push((qr, up));
        }
    });
    let c0 = cpu_ns();
    for i in (0..n).filter(|_| device_loop) {
        let (qr, up) = &replies[(i % DEVICES) as usize];
        let s = Script {
            dev: &devices[(i % DEVICES) as usize],
            tam_pub: &tam_pub,
        };
        std::hint::black_box((s.query_response(qr), s.success(up)));
    }
    let device_ns = cpu_ns() - c0;

    STATEMENTS.store(0, Ordering::Relaxed);
    let c0 = cpu_ns();
    rt.block_on(async {
        for i in (0..n).filter(|_| exchange_loop) {
            let dev = &devices[(i % DEVICES) as usize];
            let s = Script {
                dev,
                tam_pub: &tam_pub,
            };
            let qr = reply(tam.process(None, &[], NOW + 10, &mut rng).await.unwrap());
            let body = s.query_response(&qr);
            let up = reply(tam.process(None, &body, NOW + 11, &mut rng).await.unwrap());
            let done = tam
                .process(None, &s.success(&up), NOW + 12, &mut rng)
                .await
                .unwrap();
            assert_eq!(done, Outcome::Done);
        }
    });
    let all_ns = cpu_ns() - c0;
    if !(device_loop && exchange_loop) {
        println!("exchange_cost: {n} iterations (exchanges: {exchange_loop}, device side alone: {device_loop})");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let per = |ns: u64| ns as f64 / n.max(1) as f64 / 1e3;
    println!(
        "exchange_cost: {n} full TEEP exchanges on SQLite ({DEVICES} devices with x5chain evidence, after one warm-up exchange each)"
    );
    println!(
        "  CPU per exchange, every thread: {:.0} µs; device side alone: {:.0} µs; TAM (difference): {:.0} µs",
        per(all_ns),
        per(device_ns),
        per(all_ns.saturating_sub(device_ns))
    );
    if statements {
        println!(
            "  SQL statements per exchange (sqlx::query events; BEGIN/COMMIT and pool pings not counted): {:.1}",
            STATEMENTS.load(Ordering::Relaxed) as f64 / n.max(1) as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
