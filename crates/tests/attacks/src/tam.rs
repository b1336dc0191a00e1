//! The TAM side: the real `otrp-tam` core over a SQLite `otrp-store`, a snapshot of
//! every table (to prove that a refused message changed nothing), and the driver of a
//! whole TEEP exchange between the TAM core and a real Agent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use coset::CborSerializable;
use otrp_crypto::{KeyKind, PrivateKey, PublicKey};
use otrp_store::{AccountKind, AgentKeyRecord, Backend, SqlStore, Store};
use otrp_tam::{
    Admin, Caller, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamError, TamKeys,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sqlx::Row;

use crate::agent::{key, AgentDevice, HWVERSION, MEASUREMENT, MODEL};

/// The time the tests run at (Unix seconds).
pub const NOW: u64 = 1_800_000_000;

static N: AtomicU32 = AtomicU32::new(0);

/// A fresh SQLite file path under the temp dir.
pub fn temp_db(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "otrp_attacks_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("tam.db")
}

/// The TAM's TEEP keys (deterministic).
pub fn tam_keys(seed: u64) -> TamKeys {
    TamKeys {
        p256: key(seed * 100 + 1, KeyKind::P256),
        ed25519: key(seed * 100 + 2, KeyKind::Ed25519),
    }
}

/// A TAM core over SQLite with an OEM account, and the devices its verifier knows.
pub struct TamWorld {
    /// The SQLite file.
    pub db: PathBuf,
    /// The store (SQLite).
    pub sql: SqlStore,
    /// The same store as the trait object the core uses.
    pub store: Arc<dyn Store>,
    /// The TAM core.
    pub tam: Tam,
    /// The admin side.
    pub admin: Admin,
    /// The TAM's keys.
    pub keys: TamKeys,
    /// The OEM account.
    pub oem: Caller,
    /// Randomness for tokens and challenges.
    pub rng: ChaCha20Rng,
}

impl TamWorld {
    /// A TAM under `policy` whose verifier knows `devices` (UEID, TEE attestation key).
    pub async fn new(policy: Policy, devices: &[(&[u8], PublicKey)]) -> TamWorld {
        TamWorld::with_keys(policy, devices, tam_keys(1)).await
    }

    /// [`TamWorld::new`] with the given TEEP signing keys.
    pub async fn with_keys(
        policy: Policy,
        devices: &[(&[u8], PublicKey)],
        keys: TamKeys,
    ) -> TamWorld {
        let db = temp_db("tam");
        let sql = SqlStore::open_sqlite(&db).await.expect("SQLite store");
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let mut verifier = EatVerifier::new(otrp_crypto::default_provider(), 3600);
        for (ueid, k) in devices {
            verifier.register_device(ueid, k.clone());
        }
        verifier.set_reference(
            MODEL,
            ReferenceValues {
                measurements: vec![MEASUREMENT.to_vec()],
                hwversions: vec![HWVERSION.into()],
            },
        );
        let tam = Tam::new(
            store.clone(),
            Arc::new(verifier),
            keys.clone(),
            TamConfig::default(),
            otrp_crypto::default_provider(),
        );
        let admin = Admin::new(store.clone(), otrp_crypto::default_provider(), policy);
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let oem_token = admin
            .create_account(None, "oem", AccountKind::Oem, NOW, &mut rng)
            .await
            .expect("OEM account");
        let oem = admin.authenticate(&oem_token).await.expect("OEM login");
        TamWorld {
            db,
            sql,
            store,
            tam,
            admin,
            keys,
            oem,
            rng,
        }
    }

    /// The TAM's public TEEP keys (P-256, Ed25519).
    pub fn public_keys(&self) -> Vec<PublicKey> {
        vec![self.keys.p256.public_key(), self.keys.ed25519.public_key()]
    }

    /// An approved SP account `id` with SD `sd` (created by the OEM), and its TA signer.
    pub async fn sp(&mut self, id: &str, sd: &str, signer_seed: u64) -> (Caller, PrivateKey) {
        let token = self
            .admin
            .create_account(Some(&self.oem), id, AccountKind::Sp, NOW, &mut self.rng)
            .await
            .expect("SP account");
        self.admin
            .approve_sp(&self.oem, id, true, NOW)
            .await
            .expect("SP approval");
        self.admin
            .create_sd(&self.oem, sd, id, NOW)
            .await
            .expect("SD grant");
        let caller = self.admin.authenticate(&token).await.expect("SP login");
        (caller, key(signer_seed, KeyKind::P256))
    }

    /// Binds a device's Agent key in the store (what provisioning does), so the TAM
    /// verifies the Agent whose evidence names its key by `kid`.
    pub async fn bind_agent(&self, dev: &AgentDevice) {
        let public = dev.agent_key.public_key();
        self.store
            .put_agent_key(&AgentKeyRecord {
                kid: crate::agent::kid(&public).to_vec(),
                device_id: hex::encode(&dev.ueid),
                cose_key: otrp_cose::cose_key_from_public(&public)
                    .to_vec()
                    .expect("COSE_Key"),
                bound_at: NOW,
            })
            .await
            .expect("agent key");
    }

    /// One request to the TAM core.
    pub async fn step(&mut self, body: &[u8], now: u64) -> Result<Outcome, TamError> {
        self.tam.process(None, body, now, &mut self.rng).await
    }

    /// Every row of every table, each row as SQLite `quote()`d columns, rows sorted:
    /// equal snapshots mean the database did not change.
    pub async fn snapshot(&self) -> Vec<(String, Vec<String>)> {
        let Backend::Sqlite(pool) = self.sql.backend() else {
            panic!("SQLite expected")
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .expect("table list");
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{t}\")"))
                .fetch_all(pool)
                .await
                .expect("table info")
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            let expr = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let mut rows: Vec<String> = sqlx::query_scalar(&format!("SELECT {expr} FROM \"{t}\""))
                .fetch_all(pool)
                .await
                .expect("table rows");
            rows.sort();
            out.push((t, rows));
        }
        out
    }
}

/// The messages of one TEEP exchange between the TAM core and an Agent.
#[derive(Debug, Default, Clone)]
pub struct Exchange {
    /// TAM → Agent messages (QueryRequest(s), Update).
    pub from_tam: Vec<Vec<u8>>,
    /// Agent → TAM messages (QueryResponse, Success or Error).
    pub from_agent: Vec<Vec<u8>>,
    /// Whether the TAM ended with 204.
    pub done: bool,
}

/// Runs a whole exchange (empty body → QueryRequest → … → Done), at most `max_steps`
/// round trips; stops at the first refusal of either side (the Agent's Error is still
/// passed to the TAM).
pub async fn exchange(world: &mut TamWorld, dev: &mut AgentDevice, now: u64) -> Exchange {
    let mut log = Exchange::default();
    let mut body: Vec<u8> = Vec::new();
    for step in 0..8u64 {
        let out = match world.step(&body, now + step).await {
            Ok(o) => o,
            Err(e) => panic!("TAM refused step {step}: {e}"),
        };
        let Outcome::Reply(msg) = out else {
            log.done = true;
            return log;
        };
        log.from_tam.push(msg.clone());
        let answer = dev.agent.handle(&msg, now + step);
        let Some(send) = answer.send else {
            return log;
        };
        log.from_agent.push(send.clone());
        body = send;
    }
    log
}
