//! The sqlx backends. Every statement is written once with `$n` placeholders, which both
//! SQLite and PostgreSQL understand, and runs on whichever pool the store holds.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

use crate::batch::*;
use crate::model::*;
use crate::write::{ConsumeFailure, StoreWrite};
use crate::{Result, Store, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite (one file, WAL).
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// The sqlx implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqlStore {
    backend: Backend,
    schema: Option<String>,
    /// SQLite: the connection grouped writes ([`Store::apply`],
    /// [`Store::consume_and_apply`]) run on, outside the pool. SQLite lets one writer in
    /// at a time anyway; queueing the TAM's writers on this lock instead of on the
    /// database's (whose busy handler sleeps between retries) keeps them from waiting
    /// longer than the writer before them, and spares each write group the ping sqlx
    /// sends when a connection goes back to its pool.
    writer: Option<Writer>,
    /// SQLite: the connections of an exchange's reads (see `sql_readers.rs`).
    readers: Option<readers::Readers>,
}

/// The SQLite write connection and how to open it again.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    conn: std::sync::Arc<tokio::sync::Mutex<write::WriterConn>>,
    opts: SqliteConnectOptions,
}

/// Runs `$body` with `$p` bound to the pool of either backend (the body is compiled twice).
macro_rules! on_pool {
    ($self:expr, $p:ident => $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($p) => $body,
            Backend::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$p` bound to an executor for one of an exchange's reads: a SQLite
/// read connection (see `sql_readers.rs`) or the PostgreSQL pool. `$body` evaluates to a
/// `Result`; `$p` may be used once.
macro_rules! on_reader {
    ($self:expr, $p:ident => $body:expr) => {
        match (&$self.backend, &$self.readers) {
            (Backend::Sqlite(_), Some(readers)) => {
                let mut conn = readers.get().await;
                let r = {
                    let $p = &mut *conn;
                    $body
                };
                readers.recover(&mut conn, &r).await;
                r
            }
            (Backend::Sqlite($p), None) => $body,
            (Backend::Postgres($p), _) => $body,
        }
    };
}

#[path = "sql_write.rs"]
mod write;

#[path = "sql_readers.rs"]
mod readers;

#[path = "sql_exchange.rs"]
mod exchange;

#[path = "sql_batch.rs"]
mod batch_tables;
use batch_tables::{OTRP_BATCH, TEEP_BATCH};

#[path = "sql_otrp_batch.rs"]
mod otrp_batch;

/// Whether a failed call found its SQLite connection's worker thread gone (the
/// connection must be opened again).
fn worker_gone<T>(r: &Result<T>) -> bool {
    matches!(
        r,
        Err(StoreError::Db(
            sqlx::Error::WorkerCrashed | sqlx::Error::Io(_)
        ))
    )
}

fn u(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn un(v: i64, table: &'static str, column: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        table,
        column,
        detail: format!("negative value {v}"),
    })
}

fn corrupt(table: &'static str, column: &'static str, v: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        detail: format!("unexpected value {v:?}"),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// An INSERT's result: a unique-key violation is [`StoreError::Exists`] (`what`, and the
/// `id` of the row, computed only then), any other database error is passed on.
fn exists_on_conflict<T>(
    r: std::result::Result<T, sqlx::Error>,
    what: &'static str,
    id: impl FnOnce() -> String,
) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Exists { what, id: id() }),
        Err(e) => Err(e.into()),
    }
}

/// Encodes the items an Update carried: per item `u32 len | component | u64 seq |
/// i64 deployment | u8 delete`, big-endian.
fn encode_sent(items: &[SentItem]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        let len = u32::try_from(i.component.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&i.component);
        out.extend_from_slice(&i.seq.to_be_bytes());
        out.extend_from_slice(&i.deployment_id.to_be_bytes());
        out.push(u8::from(i.delete));
    }
    out
}

fn decode_sent(mut b: &[u8]) -> Result<Vec<SentItem>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if b.len() < n {
            return Err(corrupt("tokens", "sent", "truncated item list"));
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(h)
    }
    fn arr<const N: usize>(s: &[u8]) -> Result<[u8; N]> {
        s.try_into()
            .map_err(|_| corrupt("tokens", "sent", "bad field length"))
    }
    let mut items = Vec::new();
    while !b.is_empty() {
        let len = u32::from_be_bytes(arr(take(&mut b, 4)?)?) as usize;
        let component = take(&mut b, len)?.to_vec();
        let seq = u64::from_be_bytes(arr(take(&mut b, 8)?)?);
        let deployment_id = i64::from_be_bytes(arr(take(&mut b, 8)?)?);
        let delete = take(&mut b, 1)?.first().copied().unwrap_or(0) != 0;
        items.push(SentItem {
            component,
            seq,
            deployment_id,
            delete,
        });
    }
    Ok(items)
}

type TokenRow = (
    Vec<u8>,
    String,
    Option<String>,
    Option<Vec<u8>>,
    i64,
    Vec<u8>,
    i64,
    i64,
    Option<i64>,
);
const TOKEN_COLS: &str =
    "token, kind, device_id, challenge, data_items, sent, created_at, expires_at, consumed_at";

fn token_from(r: TokenRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        token: r.0,
        kind: TokenKind::parse(&r.1).ok_or_else(|| corrupt("tokens", "kind", &r.1))?,
        device_id: r.2,
        challenge: r.3,
        data_items: un(r.4, "tokens", "data_items")?,
        sent: decode_sent(&r.5)?,
        created_at: un(r.6, "tokens", "created_at")?,
        expires_at: un(r.7, "tokens", "expires_at")?,
        consumed_at: r.8.map(|v| un(v, "tokens", "consumed_at")).transpose()?,
    })
}

type ChallengeRow = (Vec<u8>, Vec<u8>, i64, i64, Option<i64>);

fn challenge_from(r: ChallengeRow) -> Result<ChallengeRecord> {
    Ok(ChallengeRecord {
        challenge: r.0,
        token: r.1,
        created_at: un(r.2, "challenges", "created_at")?,
        expires_at: un(r.3, "challenges", "expires_at")?,
        consumed_at: r
            .4
            .map(|v| un(v, "challenges", "consumed_at"))
            .transpose()?,
    })
}

type DeviceRow = (String, Vec<u8>, String, String, Option<i64>, bool, i64);

type AccountRow = (String, String, Vec<u8>, bool, i64);
fn account_from(r: AccountRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.0,
        kind: AccountKind::parse(&r.1).ok_or_else(|| corrupt("accounts", "kind", &r.1))?,
        token_hash: r.2,
        approved: r.3,
        created_at: un(r.4, "accounts", "created_at")?,
    })
}

type SdRow = (String, String, bool, i64);
fn sd_from(r: SdRow) -> Result<SdRecord> {
    Ok(SdRecord {
        name: r.0,
        sp_id: r.1,
        granted: r.2,
        created_at: un(r.3, "sds", "created_at")?,
    })
}

type ComponentRow = (Vec<u8>, String, String, String, i64);
fn component_from(r: ComponentRow) -> Result<ComponentRecord> {
    Ok(ComponentRecord {
        id: r.0,
        sp_id: r.1,
        sd_name: r.2,
        name: r.3,
        created_at: un(r.4, "components", "created_at")?,
    })
}

type ManifestRow = (Vec<u8>, i64, Vec<u8>, Option<Vec<u8>>, String, i64);
fn manifest_from(r: ManifestRow) -> Result<ManifestRecord> {
    Ok(ManifestRecord {
        component: r.0,
        seq: un(r.1, "manifests", "seq")?,
        envelope: r.2,
        image_digest: r.3,
        status: ManifestStatus::parse(&r.4),
        created_at: un(r.5, "manifests", "created_at")?,
    })
}

type DeploymentRow = (
    i64,
    String,
    Vec<u8>,
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
);
const DEPLOYMENT_COLS: &str = "id, sp_id, component, action, target_kind, target_value, \
     rollout_kind, rollout_value, state, created_at";
fn deployment_from(r: DeploymentRow) -> Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: r.0,
        sp_id: r.1,
        component: r.2,
        action: match r.3.as_str() {
            "install" => DeploymentAction::Install,
            "remove" => DeploymentAction::Remove,
            other => return Err(corrupt("deployments", "action", other)),
        },
        target: Target::from_parts(&r.4, r.5)
            .ok_or_else(|| corrupt("deployments", "target_kind", &r.4))?,
        rollout: Rollout::from_parts(&r.6, r.7)
            .ok_or_else(|| corrupt("deployments", "rollout_kind", &r.6))?,
        state: DeploymentState::parse(&r.8).ok_or_else(|| corrupt("deployments", "state", &r.8))?,
        created_at: un(r.9, "deployments", "created_at")?,
    })
}

type ProgressRow = (i64, String, Vec<u8>, i64, String, String, i64);
fn progress_from(r: ProgressRow) -> Result<ProgressRecord> {
    Ok(ProgressRecord {
        deployment_id: r.0,
        device_id: r.1,
        component: r.2,
        seq: un(r.3, "progress", "seq")?,
        state: ProgressState::parse(&r.4).ok_or_else(|| corrupt("progress", "state", &r.4))?,
        detail: r.5,
        updated_at: un(r.6, "progress", "updated_at")?,
    })
}

type AuditRow = (i64, i64, String, String, String, String);

type OtrpDeviceRow = (String, String, String, Vec<u8>, String, String, String, i64);

/// An `otrp_devices` row (columns in the order the queries select them) as its record.
fn otrp_device_record(r: OtrpDeviceRow) -> Result<OtrpDeviceRecord> {
    Ok(OtrpDeviceRecord {
        device_id: r.0,
        did: r.1,
        tee_name: r.2,
        tee_cert: r.3,
        dsi: r.4,
        dsihash: r.5,
        tid: r.6,
        updated_at: un(r.7, "otrp_devices", "updated_at")?,
    })
}

type OtrpRequestRow = (
    String,
    Option<String>,
    String,
    String,
    Vec<u8>,
    i64,
    i64,
    Option<i64>,
);
const OTRP_REQUEST_COLS: &str =
    "rid, device_id, tid, kind, sent, created_at, expires_at, consumed_at";

fn otrp_request_from(r: OtrpRequestRow) -> Result<OtrpRequestRecord> {
    Ok(OtrpRequestRecord {
        rid: r.0,
        device_id: r.1,
        tid: r.2,
        kind: r.3,
        sent: decode_sent(&r.4)?,
        created_at: un(r.5, "otrp_requests", "created_at")?,
        expires_at: un(r.6, "otrp_requests", "expires_at")?,
        consumed_at: r
            .7
            .map(|v| un(v, "otrp_requests", "consumed_at"))
            .transpose()?,
    })
}

impl SqlStore {
    /// Opens the store named by `url` and runs the migrations: `sqlite:PATH` (created if
    /// missing, WAL mode) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?;
            Self::sqlite_with(opts).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            Self::postgres_with(opts, None).await
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Opens (creating) a SQLite file in WAL mode and runs the migrations.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<SqlStore> {
        Self::sqlite_with(SqliteConnectOptions::new().filename(path)).await
    }

    async fn sqlite_with(opts: SqliteConnectOptions) -> Result<SqlStore> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // No ping when a connection is taken from the pool: for SQLite a ping is one more
        // round trip to the connection's worker thread per statement and can find nothing
        // a statement would not (sqlx still pings when a connection is given back).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        // As many read connections as the pool may hold.
        let readers = readers::Readers::open(&opts, 4).await?;
        let writer = Writer {
            conn: std::sync::Arc::new(tokio::sync::Mutex::new(write::WriterConn::new(
                opts.connect().await?,
            ))),
            opts,
        };
        Ok(SqlStore {
            backend: Backend::Sqlite(pool),
            schema: None,
            writer: Some(writer),
            readers: Some(readers),
        })
    }

    async fn postgres_with(opts: PgConnectOptions, schema: Option<String>) -> Result<SqlStore> {
        let opts = match &schema {
            Some(s) => opts.options([("search_path", s.as_str())]),
            None => opts,
        };
        // A ping when a connection is taken from the pool (sqlx's default): a connection
        // the server closed while it was idle (a restart, an administrator's
        // pg_terminate_backend) is replaced instead of failing the request that draws it
        // with a 500 (`otrp-tam-server --test fault`). It costs one network round trip
        // per checkout; SQLite, whose connections cannot break that way, skips it.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .test_before_acquire(true)
            .connect_with(opts)
            .await?;
        PG_MIGRATIONS.run(&pool).await?;
        Ok(SqlStore {
            backend: Backend::Postgres(pool),
            schema,
            writer: None,
            readers: None,
        })
    }

    /// Opens PostgreSQL at `url` inside schema `schema` (created if missing; the name
    /// must be `[a-z0-9_]+`), so concurrent test runs do not collide.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<SqlStore> {
        if schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Corrupt {
                table: "-",
                column: "schema",
                detail: format!("invalid schema name {schema:?}"),
            });
        }
        let opts = PgConnectOptions::from_str(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Self::postgres_with(opts, Some(schema.to_owned())).await
    }

    /// Drops the schema this store was opened in (PostgreSQL test isolation) and closes
    /// the pool. A no-op for SQLite or the default schema.
    pub async fn drop_schema(self) -> Result<()> {
        if let (Backend::Postgres(pool), Some(schema)) = (&self.backend, &self.schema) {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(pool)
                .await?;
            pool.close().await;
        }
        Ok(())
    }

    /// The backend (to run extra queries, e.g. in tests).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// "sqlite" or "postgres".
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    async fn not_found_if_zero(&self, n: u64, what: &'static str, id: String) -> Result<()> {
        if n == 0 {
            Err(StoreError::NotFound { what, id })
        } else {
            Ok(())
        }
    }
}

const DEVICE_COLS: &str = "id, ueid, model, hwversion, suite_alg, revoked, created_at";

#[async_trait]
impl Store for SqlStore {
    async fn apply(&self, writes: &[StoreWrite]) -> Result<()> {
        write::apply(self, writes).await
    }

    async fn consume_and_apply(
        &self,
        token: &[u8],
        challenge: Option<&[u8]>,
        now: u64,
        writes: &[StoreWrite],
    ) -> Result<std::result::Result<TokenRecord, ConsumeFailure>> {
        write::consume_and_apply(self, token, challenge, now, writes).await
    }

    async fn put_device(&self, d: &DeviceRecord) -> Result<()> {
        on_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO devices (id, ueid, model, hwversion, suite_alg, revoked, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET ueid = excluded.ueid, model = excluded.model, \
                 hwversion = excluded.hwversion, suite_alg = excluded.suite_alg, \
                 revoked = excluded.revoked")
                .bind(&d.id).bind(&d.ueid).bind(&d.model).bind(&d.hwversion)
                .bind(d.suite_alg).bind(d.revoked).bind(u(d.created_at))
                .execute(&mut *tx).await?;
            sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
                .bind(&d.id).execute(&mut *tx).await?;
            for t in &d.tags {
                sqlx::query("INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING")
                    .bind(&d.id).bind(t).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        on_pool!(self, p => async {
            let rows = sqlx::query(exchange::DEVICE).bind(id).fetch_all(p).await?;
            exchange::device_from(&rows)
        }.await)
    }

    async fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices ORDER BY id");
        let rows: Vec<DeviceRow> = on_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        let tags: Vec<(String, String)> = on_pool!(self, p => sqlx::query_as(
            "SELECT device_id, tag FROM device_tags ORDER BY device_id, tag")
            .fetch_all(p).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let t = tags
                .iter()
                .filter(|(d, _)| *d == r.0)
                .map(|(_, t)| t.clone())
                .collect();
            out.push(DeviceRecord {
                id: r.0,
                ueid: r.1,
                model: r.2,
                hwversion: r.3,
                tags: t,
                suite_alg: r.4,
                revoked: r.5,
                created_at: un(r.6, "devices", "created_at")?,
            });
        }
        Ok(out)
    }

    async fn set_device_suite(&self, id: &str, alg: i64) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query("UPDATE devices SET suite_alg = $1 WHERE id = $2")
            .bind(alg).bind(id).execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "device", id.into()).await
    }

    async fn set_device_revoked(&self, id: &str, revoked: bool) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query("UPDATE devices SET revoked = $1 WHERE id = $2")
            .bind(revoked).bind(id).execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "device", id.into()).await
    }

    async fn put_attestation(&self, a: &AttestationRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO attestations (device_id, status, tee_version, measurement, agent_kid, \
             verified_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (device_id) DO UPDATE SET status = excluded.status, \
             tee_version = excluded.tee_version, measurement = excluded.measurement, \
             agent_kid = excluded.agent_kid, verified_at = excluded.verified_at, \
             expires_at = excluded.expires_at")
            .bind(&a.device_id).bind(a.status.as_str()).bind(&a.tee_version)
            .bind(&a.measurement).bind(&a.agent_kid).bind(u(a.verified_at)).bind(u(a.expires_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn attestation(&self, device_id: &str) -> Result<Option<AttestationRecord>> {
        let row: Option<(String, String, String, Vec<u8>, Vec<u8>, i64, i64)> = on_pool!(self, p => sqlx::query_as(
                "SELECT device_id, status, tee_version, measurement, agent_kid, verified_at, \
                 expires_at FROM attestations WHERE device_id = $1")
                .bind(device_id).fetch_optional(p).await)?;
        row.map(|r| {
            Ok(AttestationRecord {
                device_id: r.0,
                status: ArStatus::parse(&r.1),
                tee_version: r.2,
                measurement: r.3,
                agent_kid: r.4,
                verified_at: un(r.5, "attestations", "verified_at")?,
                expires_at: un(r.6, "attestations", "expires_at")?,
            })
        })
        .transpose()
    }

    async fn put_agent_key(&self, k: &AgentKeyRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO agent_keys (kid, device_id, cose_key, bound_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kid) DO UPDATE SET device_id = excluded.device_id, \
             cose_key = excluded.cose_key, bound_at = excluded.bound_at")
            .bind(&k.kid).bind(&k.device_id).bind(&k.cose_key).bind(u(k.bound_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn agent_key(&self, kid: &[u8]) -> Result<Option<AgentKeyRecord>> {
        let row: Option<(Vec<u8>, String, Vec<u8>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT kid, device_id, cose_key, bound_at FROM agent_keys WHERE kid = $1")
            .bind(kid).fetch_optional(p).await)?;
        row.map(|r| {
            Ok(AgentKeyRecord {
                kid: r.0,
                device_id: r.1,
                cose_key: r.2,
                bound_at: un(r.3, "agent_keys", "bound_at")?,
            })
        })
        .transpose()
    }

    async fn agent_keys(&self, device_id: &str) -> Result<Vec<AgentKeyRecord>> {
        let rows: Vec<(Vec<u8>, String, Vec<u8>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT kid, device_id, cose_key, bound_at FROM agent_keys WHERE device_id = $1 \
             ORDER BY bound_at DESC")
            .bind(device_id).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(AgentKeyRecord {
                    kid: r.0,
                    device_id: r.1,
                    cose_key: r.2,
                    bound_at: un(r.3, "agent_keys", "bound_at")?,
                })
            })
            .collect()
    }

    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let sent = encode_sent(&t.sent);
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO tokens (token, kind, device_id, challenge, data_items, sent, created_at, \
             expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&t.token).bind(t.kind.as_str()).bind(&t.device_id).bind(&t.challenge)
            .bind(u(t.data_items)).bind(&sent).bind(u(t.created_at)).bind(u(t.expires_at))
            .bind(t.consumed_at.map(u))
            .execute(p).await.map(|r| r.rows_affected()));
        exists_on_conflict(r, "token", || hex_of(&t.token))
    }

    async fn token(&self, token: &[u8]) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens WHERE token = $1");
        let row: Option<TokenRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(token).fetch_optional(p).await)?;
        row.map(token_from).transpose()
    }

    async fn token_with_keys(
        &self,
        token: &[u8],
    ) -> Result<Option<(TokenRecord, Vec<AgentKeyRecord>)>> {
        // The token and its device's keys in one query: one row per key (one with NULL
        // key columns when there is none).
        type Row = (
            Vec<u8>,
            String,
            Option<String>,
            Option<Vec<u8>>,
            i64,
            Vec<u8>,
            i64,
            i64,
            Option<i64>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Option<i64>,
        );
        let rows: Vec<Row> = on_reader!(self, p => sqlx::query_as(
            "SELECT t.token, t.kind, t.device_id, t.challenge, t.data_items, t.sent, \
             t.created_at, t.expires_at, t.consumed_at, k.kid, k.cose_key, k.bound_at \
             FROM tokens t LEFT JOIN agent_keys k ON k.device_id = t.device_id \
             WHERE t.token = $1 ORDER BY k.bound_at DESC")
            .bind(token).fetch_all(p).await.map_err(StoreError::from))?;
        let mut tok = None;
        let mut keys = Vec::new();
        for r in rows {
            if let (Some(kid), Some(cose_key), Some(bound_at), Some(device_id)) =
                (r.9, r.10, r.11, r.2.clone())
            {
                keys.push(AgentKeyRecord {
                    kid,
                    device_id,
                    cose_key,
                    bound_at: un(bound_at, "agent_keys", "bound_at")?,
                });
            }
            if tok.is_none() {
                tok = Some(token_from((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8))?);
            }
        }
        Ok(tok.map(|t| (t, keys)))
    }

    async fn known_agent(&self, kid: &[u8]) -> Result<Option<KnownAgent>> {
        on_reader!(self, p => async {
            let rows = sqlx::query(exchange::KNOWN_AGENT).bind(kid).fetch_all(p).await?;
            exchange::known_agent_from(&rows)
        }.await)
    }

    async fn consume_token(
        &self,
        token: &[u8],
        now: u64,
    ) -> Result<std::result::Result<TokenRecord, ConsumeRefusal>> {
        let sql = format!(
            "UPDATE tokens SET consumed_at = $1 WHERE token = $2 AND consumed_at IS NULL \
             AND expires_at > $1 RETURNING {TOKEN_COLS}"
        );
        let row: Option<TokenRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(u(now)).bind(token).fetch_optional(p).await)?;
        if let Some(r) = row {
            return Ok(Ok(token_from(r)?));
        }
        Ok(Err(match self.token(token).await? {
            None => ConsumeRefusal::Unknown,
            Some(t) if t.consumed_at.is_some() => ConsumeRefusal::Replayed,
            Some(_) => ConsumeRefusal::Expired,
        }))
    }

    async fn insert_challenge(&self, c: &ChallengeRecord) -> Result<()> {
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO challenges (challenge, token, created_at, expires_at, consumed_at) \
             VALUES ($1, $2, $3, $4, $5)")
            .bind(&c.challenge).bind(&c.token).bind(u(c.created_at)).bind(u(c.expires_at))
            .bind(c.consumed_at.map(u))
            .execute(p).await.map(|r| r.rows_affected()));
        exists_on_conflict(r, "challenge", || hex_of(&c.challenge))
    }

    async fn consume_challenge(
        &self,
        challenge: &[u8],
        now: u64,
    ) -> Result<std::result::Result<ChallengeRecord, ConsumeRefusal>> {
        let row: Option<ChallengeRow> = on_pool!(self, p => sqlx::query_as(
            "UPDATE challenges SET consumed_at = $1 WHERE challenge = $2 AND consumed_at IS NULL \
             AND expires_at > $1 RETURNING challenge, token, created_at, expires_at, consumed_at")
            .bind(u(now)).bind(challenge).fetch_optional(p).await)?;
        if let Some(r) = row {
            return Ok(Ok(challenge_from(r)?));
        }
        let row: Option<ChallengeRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT challenge, token, created_at, expires_at, consumed_at FROM challenges \
             WHERE challenge = $1")
            .bind(challenge).fetch_optional(p).await)?;
        Ok(Err(match row {
            None => ConsumeRefusal::Unknown,
            Some(r) if r.4.is_some() => ConsumeRefusal::Replayed,
            Some(_) => ConsumeRefusal::Expired,
        }))
    }

    async fn purge_expired(&self, before: u64) -> Result<u64> {
        let a = on_pool!(self, p => sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
            .bind(u(before)).execute(p).await?.rows_affected());
        let b = on_pool!(self, p => sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(u(before)).execute(p).await?.rows_affected());
        let c = on_pool!(self, p => sqlx::query("DELETE FROM otrp_requests WHERE expires_at < $1")
            .bind(u(before)).execute(p).await?.rows_affected());
        Ok(a + b + c)
    }

    async fn insert_account(&self, a: &AccountRecord) -> Result<()> {
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO accounts (id, kind, token_hash, approved, created_at) \
             VALUES ($1, $2, $3, $4, $5)")
            .bind(&a.id).bind(a.kind.as_str()).bind(&a.token_hash).bind(a.approved)
            .bind(u(a.created_at)).execute(p).await.map(|r| r.rows_affected()));
        exists_on_conflict(r, "account", || a.id.clone())
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>> {
        let row: Option<AccountRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, kind, token_hash, approved, created_at FROM accounts WHERE id = $1")
            .bind(id).fetch_optional(p).await)?;
        row.map(account_from).transpose()
    }

    async fn account_by_token_hash(&self, hash: &[u8]) -> Result<Option<AccountRecord>> {
        let row: Option<AccountRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, kind, token_hash, approved, created_at FROM accounts \
             WHERE token_hash = $1")
            .bind(hash).fetch_optional(p).await)?;
        row.map(account_from).transpose()
    }

    async fn set_account_approved(&self, id: &str, approved: bool) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query("UPDATE accounts SET approved = $1 WHERE id = $2")
            .bind(approved).bind(id).execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "account", id.into()).await
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>> {
        let rows: Vec<AccountRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, kind, token_hash, approved, created_at FROM accounts ORDER BY id")
            .fetch_all(p).await)?;
        rows.into_iter().map(account_from).collect()
    }

    async fn insert_sd(&self, sd: &SdRecord) -> Result<()> {
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO sds (name, sp_id, granted, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&sd.name).bind(&sd.sp_id).bind(sd.granted).bind(u(sd.created_at))
            .execute(p).await.map(|r| r.rows_affected()));
        exists_on_conflict(r, "security domain", || sd.name.clone())
    }

    async fn sd(&self, name: &str) -> Result<Option<SdRecord>> {
        let row: Option<SdRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, sp_id, granted, created_at FROM sds WHERE name = $1")
            .bind(name).fetch_optional(p).await)?;
        row.map(sd_from).transpose()
    }

    async fn sds(&self, sp_id: Option<&str>) -> Result<Vec<SdRecord>> {
        let rows: Vec<SdRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT name, sp_id, granted, created_at FROM sds \
             WHERE ($1 IS NULL OR sp_id = $1) ORDER BY name")
            .bind(sp_id).fetch_all(p).await)?;
        rows.into_iter().map(sd_from).collect()
    }

    async fn set_sd_granted(&self, name: &str, granted: bool) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query("UPDATE sds SET granted = $1 WHERE name = $2")
            .bind(granted).bind(name).execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "security domain", name.into())
            .await
    }

    async fn insert_component(&self, c: &ComponentRecord) -> Result<()> {
        let r = on_pool!(self, p => sqlx::query(
            "INSERT INTO components (id, sp_id, sd_name, name, created_at) \
             VALUES ($1, $2, $3, $4, $5)")
            .bind(&c.id).bind(&c.sp_id).bind(&c.sd_name).bind(&c.name).bind(u(c.created_at))
            .execute(p).await.map(|r| r.rows_affected()));
        exists_on_conflict(r, "component", || hex_of(&c.id))
    }

    async fn component(&self, id: &[u8]) -> Result<Option<ComponentRecord>> {
        let row: Option<ComponentRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, sp_id, sd_name, name, created_at FROM components WHERE id = $1")
            .bind(id).fetch_optional(p).await)?;
        row.map(component_from).transpose()
    }

    async fn components(&self, sp_id: Option<&str>) -> Result<Vec<ComponentRecord>> {
        let rows: Vec<ComponentRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, sp_id, sd_name, name, created_at FROM components \
             WHERE ($1 IS NULL OR sp_id = $1) ORDER BY name")
            .bind(sp_id).fetch_all(p).await)?;
        rows.into_iter().map(component_from).collect()
    }

    async fn add_manifest(&self, m: &ManifestRecord) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO manifests (component, seq, envelope, image_digest, status, created_at) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS \
             (SELECT 1 FROM manifests WHERE component = $1 AND seq >= $2)")
            .bind(&m.component).bind(u(m.seq)).bind(&m.envelope).bind(&m.image_digest)
            .bind(m.status.as_str()).bind(u(m.created_at))
            .execute(p).await.map(|r| r.rows_affected()));
        match n {
            Ok(1) => Ok(()),
            Ok(_) => {
                let latest = self
                    .latest_manifest(&m.component, false)
                    .await?
                    .map_or(0, |l| l.seq);
                Err(StoreError::SequenceNotGrowing { seq: m.seq, latest })
            }
            Err(e) if is_unique_violation(&e) => Err(StoreError::SequenceNotGrowing {
                seq: m.seq,
                latest: m.seq,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn latest_manifest(
        &self,
        component: &[u8],
        ready_only: bool,
    ) -> Result<Option<ManifestRecord>> {
        let row: Option<ManifestRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT component, seq, envelope, image_digest, status, created_at FROM manifests \
             WHERE component = $1 AND ($2 = 0 OR status = 'ready') ORDER BY seq DESC LIMIT 1")
            .bind(component).bind(i64::from(ready_only)).fetch_optional(p).await)?;
        row.map(manifest_from).transpose()
    }

    async fn manifest(&self, component: &[u8], seq: u64) -> Result<Option<ManifestRecord>> {
        let row: Option<ManifestRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT component, seq, envelope, image_digest, status, created_at FROM manifests \
             WHERE component = $1 AND seq = $2")
            .bind(component).bind(u(seq)).fetch_optional(p).await)?;
        row.map(manifest_from).transpose()
    }

    async fn update_manifest(
        &self,
        component: &[u8],
        seq: u64,
        envelope: &[u8],
        status: ManifestStatus,
    ) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query(
            "UPDATE manifests SET envelope = $1, status = $2 WHERE component = $3 AND seq = $4")
            .bind(envelope).bind(status.as_str()).bind(component).bind(u(seq))
            .execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "manifest", format!("{}#{seq}", hex_of(component)))
            .await
    }

    async fn insert_deployment(&self, d: &DeploymentRecord) -> Result<i64> {
        let (tk, tv) = d.target.to_parts();
        let (rk, rv) = d.rollout.to_parts();
        let action = match d.action {
            DeploymentAction::Install => "install",
            DeploymentAction::Remove => "remove",
        };
        let row: (i64,) = on_pool!(self, p => sqlx::query_as(
            "INSERT INTO deployments (sp_id, component, action, target_kind, target_value, \
             rollout_kind, rollout_value, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
            .bind(&d.sp_id).bind(&d.component).bind(action).bind(tk).bind(tv).bind(rk).bind(rv)
            .bind(d.state.as_str()).bind(u(d.created_at))
            .fetch_one(p).await)?;
        Ok(row.0)
    }

    async fn deployment(&self, id: i64) -> Result<Option<DeploymentRecord>> {
        let sql = format!("SELECT {DEPLOYMENT_COLS} FROM deployments WHERE id = $1");
        let row: Option<DeploymentRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await)?;
        row.map(deployment_from).transpose()
    }

    async fn deployments(&self, sp_id: Option<&str>) -> Result<Vec<DeploymentRecord>> {
        let sql = format!(
            "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE ($1 IS NULL OR sp_id = $1) \
             ORDER BY id"
        );
        let rows: Vec<DeploymentRow> =
            on_pool!(self, p => sqlx::query_as(&sql).bind(sp_id).fetch_all(p).await)?;
        rows.into_iter().map(deployment_from).collect()
    }

    async fn set_deployment_state(&self, id: i64, state: DeploymentState) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query("UPDATE deployments SET state = $1 WHERE id = $2")
            .bind(state.as_str()).bind(id).execute(p).await?.rows_affected());
        self.not_found_if_zero(n, "deployment", id.to_string())
            .await
    }

    async fn put_progress(&self, r: &ProgressRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO progress (deployment_id, device_id, component, seq, state, detail, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (deployment_id, device_id, component) DO UPDATE SET \
             seq = excluded.seq, state = excluded.state, detail = excluded.detail, \
             updated_at = excluded.updated_at")
            .bind(r.deployment_id).bind(&r.device_id).bind(&r.component).bind(u(r.seq))
            .bind(r.state.as_str()).bind(&r.detail).bind(u(r.updated_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn progress(
        &self,
        deployment_id: i64,
        device_id: &str,
        component: &[u8],
    ) -> Result<Option<ProgressRecord>> {
        let row: Option<ProgressRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT deployment_id, device_id, component, seq, state, detail, updated_at \
             FROM progress WHERE deployment_id = $1 AND device_id = $2 AND component = $3")
            .bind(deployment_id).bind(device_id).bind(component).fetch_optional(p).await)?;
        row.map(progress_from).transpose()
    }

    async fn deployment_plans(&self, device: &DeviceRecord) -> Result<Vec<DeploymentPlan>> {
        on_reader!(self, p => async {
            let rows = sqlx::query(exchange::PLANS)
                .bind(&device.id)
                .bind(&device.model)
                .fetch_all(p)
                .await?;
            exchange::plans_from(&rows, device)
        }.await)
    }

    async fn device_and_plans(
        &self,
        id: &str,
        model: &str,
    ) -> Result<(Option<DeviceRecord>, Vec<DeploymentPlan>)> {
        match (&self.backend, &self.readers) {
            (Backend::Sqlite(_), Some(readers)) => {
                let mut conn = readers.get().await;
                let r = exchange::device_and_plans_sqlite(&mut conn, id, model).await;
                readers.recover(&mut conn, &r).await;
                r
            }
            _ => crate::device_then_plans(self, id, model).await,
        }
    }

    async fn device_progress(&self, device_id: &str) -> Result<Vec<ProgressRecord>> {
        let rows: Vec<ProgressRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT deployment_id, device_id, component, seq, state, detail, updated_at \
             FROM progress WHERE device_id = $1 ORDER BY deployment_id")
            .bind(device_id).fetch_all(p).await)?;
        rows.into_iter().map(progress_from).collect()
    }

    async fn progress_counts(&self, deployment_id: i64) -> Result<ProgressCounts> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT state, COUNT(*) FROM progress WHERE deployment_id = $1 GROUP BY state")
            .bind(deployment_id).fetch_all(p).await)?;
        let mut c = ProgressCounts::default();
        for (state, n) in rows {
            let n = un(n, "progress", "count")?;
            match ProgressState::parse(&state) {
                Some(ProgressState::Sent) => c.sent += n,
                Some(ProgressState::Done) => c.done += n,
                Some(ProgressState::Failed) => c.failed += n,
                None => return Err(corrupt("progress", "state", &state)),
            }
        }
        Ok(c)
    }

    async fn append_audit(&self, a: &AuditRecord) -> Result<i64> {
        let row: (i64,) = on_pool!(self, p => sqlx::query_as(
            "INSERT INTO audit (at, actor, action, object, detail) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id")
            .bind(u(a.at)).bind(&a.actor).bind(&a.action).bind(&a.object).bind(&a.detail)
            .fetch_one(p).await)?;
        Ok(row.0)
    }

    async fn audit(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT id, at, actor, action, object, detail FROM audit ORDER BY id DESC LIMIT $1")
            .bind(i64::from(limit)).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.0,
                    at: un(r.1, "audit", "at")?,
                    actor: r.2,
                    action: r.3,
                    object: r.4,
                    detail: r.5,
                })
            })
            .collect()
    }

    async fn put_otrp_device(&self, d: &OtrpDeviceRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO otrp_devices (device_id, did, tee_name, tee_cert, dsi, dsihash, tid, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id) DO UPDATE SET did = excluded.did, \
             tee_name = excluded.tee_name, tee_cert = excluded.tee_cert, dsi = excluded.dsi, \
             dsihash = excluded.dsihash, tid = excluded.tid, updated_at = excluded.updated_at")
            .bind(&d.device_id).bind(&d.did).bind(&d.tee_name).bind(&d.tee_cert)
            .bind(&d.dsi).bind(&d.dsihash).bind(&d.tid).bind(u(d.updated_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn otrp_device(&self, device_id: &str) -> Result<Option<OtrpDeviceRecord>> {
        let row: Option<OtrpDeviceRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT device_id, did, tee_name, tee_cert, dsi, dsihash, tid, updated_at \
             FROM otrp_devices WHERE device_id = $1")
            .bind(device_id).fetch_optional(p).await)?;
        row.map(otrp_device_record).transpose()
    }

    async fn insert_otrp_request(&self, r: &OtrpRequestRecord) -> Result<()> {
        let res = on_pool!(self, p => sqlx::query(
            "INSERT INTO otrp_requests (rid, device_id, tid, kind, sent, created_at, \
             expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&r.rid).bind(&r.device_id).bind(&r.tid).bind(&r.kind)
            .bind(encode_sent(&r.sent)).bind(u(r.created_at)).bind(u(r.expires_at))
            .bind(r.consumed_at.map(u))
            .execute(p).await.map(|x| x.rows_affected()));
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Exists {
                what: "OTrP request",
                id: r.rid.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn otrp_request(&self, rid: &str) -> Result<Option<OtrpRequestRecord>> {
        let sql = format!("SELECT {OTRP_REQUEST_COLS} FROM otrp_requests WHERE rid = $1");
        let row: Option<OtrpRequestRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(rid).fetch_optional(p).await)?;
        row.map(otrp_request_from).transpose()
    }

    async fn consume_otrp_request(
        &self,
        rid: &str,
        now: u64,
    ) -> Result<std::result::Result<OtrpRequestRecord, ConsumeRefusal>> {
        let sql = format!(
            "UPDATE otrp_requests SET consumed_at = $1 WHERE rid = $2 AND consumed_at IS NULL \
             AND expires_at > $1 RETURNING {OTRP_REQUEST_COLS}"
        );
        let row: Option<OtrpRequestRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(u(now)).bind(rid).fetch_optional(p).await)?;
        if let Some(r) = row {
            return Ok(Ok(otrp_request_from(r)?));
        }
        Ok(Err(match self.otrp_request(rid).await? {
            None => ConsumeRefusal::Unknown,
            Some(t) if t.consumed_at.is_some() => ConsumeRefusal::Replayed,
            Some(_) => ConsumeRefusal::Expired,
        }))
    }

    async fn add_sp_cert(&self, c: &SpCertRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO sp_certs (sp_id, cert, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sp_id, cert) DO NOTHING")
            .bind(&c.sp_id).bind(&c.cert).bind(u(c.created_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn sp_certs(&self, sp_id: &str) -> Result<Vec<SpCertRecord>> {
        let rows: Vec<(String, Vec<u8>, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT sp_id, cert, created_at FROM sp_certs WHERE sp_id = $1 \
             ORDER BY created_at, cert")
            .bind(sp_id).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(SpCertRecord {
                    sp_id: r.0,
                    cert: r.1,
                    created_at: un(r.2, "sp_certs", "created_at")?,
                })
            })
            .collect()
    }

    // --- reference values ---
    async fn put_reference_values(&self, r: &ReferenceValuesRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO reference_values (model, measurements, hwversions, removed, \
             updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (model) DO UPDATE SET measurements = excluded.measurements, \
             hwversions = excluded.hwversions, removed = excluded.removed, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by")
            .bind(&r.model).bind(encode_list(&r.measurements))
            .bind(encode_list(&r.hwversions)).bind(r.removed).bind(u(r.updated_at))
            .bind(&r.updated_by)
            .execute(p).await.map(|x| x.rows_affected()))?;
        Ok(())
    }

    async fn seed_reference_values(&self, r: &ReferenceValuesRecord) -> Result<bool> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO reference_values (model, measurements, hwversions, removed, \
             updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (model) DO NOTHING")
            .bind(&r.model).bind(encode_list(&r.measurements))
            .bind(encode_list(&r.hwversions)).bind(r.removed).bind(u(r.updated_at))
            .bind(&r.updated_by)
            .execute(p).await.map(|x| x.rows_affected()))?;
        Ok(n > 0)
    }

    async fn reference_values(&self, model: &str) -> Result<Option<ReferenceValuesRecord>> {
        let sql = format!("SELECT {REFERENCE_COLS} FROM reference_values WHERE model = $1");
        let row: Option<ReferenceRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(model).fetch_optional(p).await)?;
        row.map(reference_from).transpose()
    }

    async fn all_reference_values(&self) -> Result<Vec<ReferenceValuesRecord>> {
        let sql = format!("SELECT {REFERENCE_COLS} FROM reference_values ORDER BY model");
        let rows: Vec<ReferenceRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .fetch_all(p).await)?;
        rows.into_iter().map(reference_from).collect()
    }

    // --- batch ---
    async fn insert_batch_package(&self, b: &BatchPackageRecord) -> Result<()> {
        self.insert_package(&TEEP_BATCH, b).await
    }

    async fn latest_batch_package(&self, batch_id: &str) -> Result<Option<BatchPackageRecord>> {
        self.latest_package(&TEEP_BATCH, batch_id).await
    }

    async fn batch_package(&self, batch_id: &str, seq: u64) -> Result<Option<BatchPackageRecord>> {
        self.package_at(&TEEP_BATCH, batch_id, seq).await
    }

    async fn batch_packages(&self, batch_id: Option<&str>) -> Result<Vec<BatchPackageRecord>> {
        self.packages_of(&TEEP_BATCH, batch_id).await
    }

    async fn put_batch_report(&self, r: &BatchReportRecord) -> Result<()> {
        self.put_report(&TEEP_BATCH, r).await
    }

    async fn put_batch_reports(&self, rs: &[BatchReportRecord]) -> Result<()> {
        self.put_reports(&TEEP_BATCH, rs).await
    }

    async fn batch_package_exists(&self, batch_id: &str, seq: u64) -> Result<bool> {
        self.package_exists(&TEEP_BATCH, batch_id, seq).await
    }

    async fn agent_keys_by_kid(&self, kids: &[Vec<u8>]) -> Result<Vec<AgentKeyRecord>> {
        self.agent_keys_by_kid_impl(kids).await
    }

    async fn batch_reports(&self, batch_id: &str, seq: u64) -> Result<Vec<BatchReportRecord>> {
        self.reports_of(&TEEP_BATCH, batch_id, seq).await
    }

    async fn batch_report_counts(&self, batch_id: &str, seq: u64) -> Result<BatchReportCounts> {
        self.report_counts(&TEEP_BATCH, batch_id, seq).await
    }

    // --- OTrP-profile batch (sql_otrp_batch.rs) ---
    async fn put_otrp_batch_model(&self, m: &OtrpBatchModelRecord) -> Result<()> {
        self.put_otrp_batch_model_impl(m).await
    }

    async fn otrp_batch_model(&self, model: &str) -> Result<Option<OtrpBatchModelRecord>> {
        self.otrp_batch_model_impl(model).await
    }

    async fn insert_otrp_batch_package(&self, p: &BatchPackageRecord) -> Result<()> {
        self.insert_package(&OTRP_BATCH, p).await
    }

    async fn latest_otrp_batch_package(&self, model: &str) -> Result<Option<BatchPackageRecord>> {
        self.latest_package(&OTRP_BATCH, model).await
    }

    async fn otrp_batch_package(
        &self,
        model: &str,
        seq: u64,
    ) -> Result<Option<BatchPackageRecord>> {
        self.package_at(&OTRP_BATCH, model, seq).await
    }

    async fn otrp_batch_packages(&self, model: Option<&str>) -> Result<Vec<BatchPackageRecord>> {
        self.packages_of(&OTRP_BATCH, model).await
    }

    async fn put_otrp_batch_result(&self, r: &BatchReportRecord) -> Result<()> {
        self.put_report(&OTRP_BATCH, r).await
    }

    async fn otrp_batch_results(&self, model: &str, seq: u64) -> Result<Vec<BatchReportRecord>> {
        self.reports_of(&OTRP_BATCH, model, seq).await
    }

    async fn otrp_batch_result_counts(&self, model: &str, seq: u64) -> Result<BatchReportCounts> {
        self.report_counts(&OTRP_BATCH, model, seq).await
    }

    async fn otrp_device_by_did(&self, did: &str) -> Result<Option<OtrpDeviceRecord>> {
        self.otrp_device_by_did_impl(did).await
    }
}

const REFERENCE_COLS: &str = "model, measurements, hwversions, removed, updated_at, updated_by";

type ReferenceRow = (String, Vec<u8>, Vec<u8>, bool, i64, String);

/// Encodes a list of byte strings: per item `u32 len | bytes`, big-endian.
fn encode_list<T: AsRef<[u8]>>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        let i = i.as_ref();
        out.extend_from_slice(&u32::try_from(i.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(i);
    }
    out
}

fn decode_list(mut b: &[u8], column: &'static str) -> Result<Vec<Vec<u8>>> {
    let bad = |d: &str| corrupt("reference_values", column, d);
    let mut out = Vec::new();
    while !b.is_empty() {
        let (len, rest) = b
            .split_at_checked(4)
            .ok_or_else(|| bad("truncated length"))?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| bad("bad length"))?) as usize;
        let (item, rest) = rest
            .split_at_checked(len)
            .ok_or_else(|| bad("truncated item"))?;
        out.push(item.to_vec());
        b = rest;
    }
    Ok(out)
}

fn reference_from(r: ReferenceRow) -> Result<ReferenceValuesRecord> {
    let hwversions = decode_list(&r.2, "hwversions")?
        .into_iter()
        .map(|v| {
            String::from_utf8(v).map_err(|_| corrupt("reference_values", "hwversions", "not UTF-8"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ReferenceValuesRecord {
        model: r.0,
        measurements: decode_list(&r.1, "measurements")?,
        hwversions,
        removed: r.3,
        updated_at: un(r.4, "reference_values", "updated_at")?,
        updated_by: r.5,
    })
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_items_round_trip_and_truncation_is_an_error() {
        let items = vec![
            SentItem {
                component: vec![0x81, 0x41, 0x61],
                seq: 7,
                deployment_id: 3,
                delete: false,
            },
            SentItem {
                component: vec![],
                seq: 0,
                deployment_id: 0,
                delete: true,
            },
        ];
        let enc = encode_sent(&items);
        assert_eq!(decode_sent(&enc).ok(), Some(items));
        for cut in 1..enc.len() {
            let r = decode_sent(&enc[..cut]);
            // Every strict prefix either fails or decodes to fewer items, never panics.
            if let Ok(v) = r {
                assert!(v.len() < 2, "prefix {cut} decoded to {v:?}");
            }
        }
    }
}
