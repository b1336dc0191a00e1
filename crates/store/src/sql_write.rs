//! [`SqlStore`]'s grouped writes: one transaction per group (see `crate::write`).
//!
//! Every write is first turned into data ([`Stmt`]: SQL, values, and what its outcome
//! means), then run:
//!
//! * on **PostgreSQL** one statement after the other on the open transaction;
//! * on **SQLite** as *one* multi-statement query: sqlx runs each SQLite connection on its
//!   own worker thread and every command sent to it is a round trip between threads
//!   (~20–25 µs on a shared 2-vCPU machine, more than the statement itself). A group of
//!   six writes costs `BEGIN`, one command and `COMMIT` instead of eight commands. The
//!   statements' `$n` placeholders are renumbered so each statement binds its own slice
//!   of one argument list (sqlx-sqlite binds `$n` to the n-th argument of the query).
//!   sqlx stops at the first failing statement and reports one result per finished
//!   statement, so an error is still attributed to the write it came from, and the open
//!   transaction is rolled back as before.

use std::fmt::Write as _;

use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, ConnectOptions, Connection, Either, FromRow};

use super::{hex_of, is_unique_violation, token_from, u, Backend, SqlStore, TokenRow};
use crate::model::{ConsumeRefusal, TokenRecord};
use crate::write::{ConsumeFailure, StoreWrite};
use crate::{Result, StoreError};

/// A value bound to one `$n` parameter.
#[derive(Debug)]
enum Val<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Blob(&'a [u8]),
    OptBlob(Option<&'a [u8]>),
    OwnedBlob(Vec<u8>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// What a statement's outcome means for its write.
#[derive(Debug)]
enum Check<'a> {
    /// Any success is fine.
    Any,
    /// A unique-key violation is [`StoreError::Exists`] for `what`, keyed by `key`.
    Unique { what: &'static str, key: &'a [u8] },
    /// No row changed is [`StoreError::NotFound`] for `what` `id`.
    Changes { what: &'static str, id: &'a str },
}

/// One statement of a write.
#[derive(Debug)]
struct Stmt<'a> {
    /// SQL with placeholders `$1`..`$k`, k = `vals.len()`.
    sql: &'static str,
    vals: Vec<Val<'a>>,
    check: Check<'a>,
}

impl Stmt<'_> {
    /// A statement without parameters whose success is all that matters.
    fn bare(sql: &'static str) -> Self {
        Stmt {
            sql,
            vals: Vec::new(),
            check: Check::Any,
        }
    }

    /// The write's result from the statement's: rows changed, or the database's error.
    fn judge(&self, r: std::result::Result<u64, sqlx::Error>) -> Result<()> {
        match (r, &self.check) {
            (Err(e), Check::Unique { what, key }) if is_unique_violation(&e) => {
                Err(StoreError::Exists {
                    what,
                    id: hex_of(key),
                })
            }
            (Err(e), _) => Err(e.into()),
            (Ok(0), Check::Changes { what, id }) => Err(StoreError::NotFound {
                what,
                id: (*id).to_owned(),
            }),
            (Ok(_), _) => Ok(()),
        }
    }
}

const UPSERT_DEVICE: &str = "INSERT INTO devices (id, ueid, model, hwversion, suite_alg, \
     revoked, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET ueid = excluded.ueid, model = excluded.model, \
     hwversion = excluded.hwversion, suite_alg = excluded.suite_alg, revoked = excluded.revoked";
const DELETE_TAGS: &str = "DELETE FROM device_tags WHERE device_id = $1";
const INSERT_TAG: &str =
    "INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const UPSERT_ATTESTATION: &str = "INSERT INTO attestations (device_id, status, tee_version, \
     measurement, agent_kid, verified_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (device_id) DO UPDATE SET status = excluded.status, \
     tee_version = excluded.tee_version, measurement = excluded.measurement, \
     agent_kid = excluded.agent_kid, verified_at = excluded.verified_at, \
     expires_at = excluded.expires_at";
const UPSERT_AGENT_KEY: &str = "INSERT INTO agent_keys (kid, device_id, cose_key, bound_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO UPDATE SET device_id = excluded.device_id, \
     cose_key = excluded.cose_key, bound_at = excluded.bound_at";
const SET_SUITE: &str = "UPDATE devices SET suite_alg = $1 WHERE id = $2";
const UPSERT_PROGRESS: &str = "INSERT INTO progress (deployment_id, device_id, component, seq, \
     state, detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (deployment_id, device_id, component) DO UPDATE SET seq = excluded.seq, \
     state = excluded.state, detail = excluded.detail, updated_at = excluded.updated_at";
const INSERT_TOKEN: &str = "INSERT INTO tokens (token, kind, device_id, challenge, data_items, \
     sent, created_at, expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const INSERT_CHALLENGE: &str = "INSERT INTO challenges (challenge, token, created_at, \
     expires_at, consumed_at) VALUES ($1, $2, $3, $4, $5)";
const CONSUME_TOKEN: &str = "UPDATE tokens SET consumed_at = $1 WHERE token = $2 \
     AND consumed_at IS NULL AND expires_at > $1 RETURNING token, kind, device_id, challenge, \
     data_items, sent, created_at, expires_at, consumed_at";
const CONSUME_CHALLENGE: &str = "UPDATE challenges SET consumed_at = $1 \
     WHERE challenge = $2 AND consumed_at IS NULL AND expires_at > $1 RETURNING consumed_at";
/// SQLite: fails ("malformed JSON") unless the token `$2` can be consumed at `$1`; the
/// argument of `json()` depends on the row, so SQLite cannot evaluate it ahead of time.
const GUARD_TOKEN: &str = "SELECT json(CASE WHEN EXISTS (SELECT 1 FROM tokens \
     WHERE token = $2 AND consumed_at IS NULL AND expires_at > $1) THEN '1' ELSE 'refused' END)";
/// SQLite: fails unless the challenge `$2` can be consumed at `$1` (as [`GUARD_TOKEN`]).
const GUARD_CHALLENGE: &str = "SELECT json(CASE WHEN EXISTS (SELECT 1 FROM challenges \
     WHERE challenge = $2 AND consumed_at IS NULL AND expires_at > $1) THEN '1' ELSE \
     'refused' END)";
const TOKEN_STATE: &str = "SELECT consumed_at FROM tokens WHERE token = $1";
const CHALLENGE_STATE: &str = "SELECT consumed_at FROM challenges WHERE challenge = $1";

/// The device row of `PutDevice` / `PutDeviceKeepTags`.
fn device_row(d: &crate::model::DeviceRecord) -> Stmt<'_> {
    Stmt {
        sql: UPSERT_DEVICE,
        vals: vec![
            Val::Text(&d.id),
            Val::Blob(&d.ueid),
            Val::Text(&d.model),
            Val::Text(&d.hwversion),
            Val::OptInt(d.suite_alg),
            Val::Bool(d.revoked),
            Val::Int(u(d.created_at)),
        ],
        check: Check::Any,
    }
}

/// Appends the statements of one write (those of the single-row method of the same name).
fn statements<'a>(w: &'a StoreWrite, out: &mut Vec<Stmt<'a>>) {
    let any = |sql, vals| Stmt {
        sql,
        vals,
        check: Check::Any,
    };
    match w {
        StoreWrite::PutDevice(d) => {
            out.push(device_row(d));
            out.push(any(DELETE_TAGS, vec![Val::Text(&d.id)]));
            for t in &d.tags {
                out.push(any(INSERT_TAG, vec![Val::Text(&d.id), Val::Text(t)]));
            }
        }
        StoreWrite::PutDeviceKeepTags(d) => out.push(device_row(d)),
        StoreWrite::PutAttestation(a) => out.push(any(
            UPSERT_ATTESTATION,
            vec![
                Val::Text(&a.device_id),
                Val::Text(a.status.as_str()),
                Val::Text(&a.tee_version),
                Val::Blob(&a.measurement),
                Val::Blob(&a.agent_kid),
                Val::Int(u(a.verified_at)),
                Val::Int(u(a.expires_at)),
            ],
        )),
        StoreWrite::PutAgentKey(k) => out.push(any(
            UPSERT_AGENT_KEY,
            vec![
                Val::Blob(&k.kid),
                Val::Text(&k.device_id),
                Val::Blob(&k.cose_key),
                Val::Int(u(k.bound_at)),
            ],
        )),
        StoreWrite::SetDeviceSuite { id, alg } => out.push(Stmt {
            sql: SET_SUITE,
            vals: vec![Val::Int(*alg), Val::Text(id)],
            check: Check::Changes { what: "device", id },
        }),
        StoreWrite::PutProgress(r) => out.push(any(
            UPSERT_PROGRESS,
            vec![
                Val::Int(r.deployment_id),
                Val::Text(&r.device_id),
                Val::Blob(&r.component),
                Val::Int(u(r.seq)),
                Val::Text(r.state.as_str()),
                Val::Text(&r.detail),
                Val::Int(u(r.updated_at)),
            ],
        )),
        StoreWrite::InsertToken(t) => out.push(Stmt {
            sql: INSERT_TOKEN,
            vals: vec![
                Val::Blob(&t.token),
                Val::Text(t.kind.as_str()),
                Val::OptText(t.device_id.as_deref()),
                Val::OptBlob(t.challenge.as_deref()),
                Val::Int(u(t.data_items)),
                Val::OwnedBlob(super::encode_sent(&t.sent)),
                Val::Int(u(t.created_at)),
                Val::Int(u(t.expires_at)),
                Val::OptInt(t.consumed_at.map(u)),
            ],
            check: Check::Unique {
                what: "token",
                key: &t.token,
            },
        }),
        StoreWrite::InsertChallenge(c) => out.push(Stmt {
            sql: INSERT_CHALLENGE,
            vals: vec![
                Val::Blob(&c.challenge),
                Val::Blob(&c.token),
                Val::Int(u(c.created_at)),
                Val::Int(u(c.expires_at)),
                Val::OptInt(c.consumed_at.map(u)),
            ],
            check: Check::Unique {
                what: "challenge",
                key: &c.challenge,
            },
        }),
    }
}

/// Binds `v` as the next argument of `args` (either backend's argument list).
macro_rules! push_val {
    ($args:expr, $v:expr) => {{
        let r = match $v {
            Val::Text(s) => $args.add(*s),
            Val::OptText(s) => $args.add(*s),
            Val::Blob(b) => $args.add(*b),
            Val::OptBlob(b) => $args.add(*b),
            Val::OwnedBlob(b) => $args.add(b.as_slice()),
            Val::Int(i) => $args.add(*i),
            Val::OptInt(i) => $args.add(*i),
            Val::Bool(b) => $args.add(*b),
        };
        r.map_err(sqlx::Error::Encode)?;
    }};
}

/// Appends `sql` to `out` with every `$n` renumbered to `$(n + base)`.
fn renumbered(sql: &str, base: usize, out: &mut String) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                let _ = write!(out, "{}", n + base);
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

/// `stmts` as one SQLite query and its arguments.
fn sqlite_batch<'a>(stmts: &'a [Stmt<'a>]) -> Result<(String, SqliteArguments<'a>)> {
    let mut sql = String::new();
    let mut args = SqliteArguments::default();
    let mut base = 0;
    for s in stmts {
        renumbered(s.sql, base, &mut sql);
        sql.push_str(";\n");
        for v in &s.vals {
            push_val!(args, v);
        }
        base += s.vals.len();
    }
    Ok((sql, args))
}

/// An unexpected answer of the driver (a bug, not bad input).
fn protocol(what: String) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(what))
}

/// Runs `stmts` as one command on `conn` (an open transaction, or statements that
/// open and commit their own), judging each statement's outcome by its [`Check`];
/// `on_done(i, rows)` sees the rows statement `i` returned once it has finished.
async fn run_sqlite(
    conn: &mut sqlx::SqliteConnection,
    stmts: &[Stmt<'_>],
    mut on_done: impl FnMut(usize, &[sqlx::sqlite::SqliteRow]),
) -> Result<()> {
    if stmts.is_empty() {
        return Ok(());
    }
    let (sql, args) = sqlite_batch(stmts)?;
    // sqlx 0.8 marks several statements in one prepared query as deprecated
    // (launchbadge/sqlx#3108: only its SQLite driver supports it; `raw_sql` has no bind
    // parameters). It is the one way to send a transaction's statements to the connection's
    // worker in one command; `tests/grouped_writes.rs` pins the behaviour relied on here
    // (results per statement, a stop at the first error). If a later sqlx removes it, the
    // per-statement path `run_pg` takes (one command per statement) serves SQLite as well.
    #[allow(deprecated)]
    let mut stream = sqlx::query_with(&sql, args).fetch_many(&mut *conn);
    let mut i = 0;
    let mut rows = Vec::new();
    loop {
        match stream.try_next().await {
            Ok(Some(Either::Right(row))) => rows.push(row),
            Ok(Some(Either::Left(done))) => {
                let Some(s) = stmts.get(i) else {
                    return Err(protocol(
                        "a grouped write returned more results than it has statements".into(),
                    ));
                };
                s.judge(Ok(done.rows_affected()))?;
                on_done(i, &rows);
                i += 1;
                rows.clear();
            }
            Ok(None) => break,
            Err(e) => {
                return match stmts.get(i) {
                    Some(s) => s.judge(Err(e)),
                    None => Err(e.into()),
                }
            }
        }
    }
    if i != stmts.len() {
        return Err(protocol(format!(
            "a grouped write ran {i} of its {} statements",
            stmts.len()
        )));
    }
    Ok(())
}

/// Runs `stmts` one by one on the open PostgreSQL transaction.
async fn run_pg(tx: &mut sqlx::PgConnection, stmts: &[Stmt<'_>]) -> Result<()> {
    for s in stmts {
        let mut args = sqlx::postgres::PgArguments::default();
        for v in &s.vals {
            push_val!(args, v);
        }
        let r = sqlx::query_with(s.sql, args)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected());
        s.judge(r)?;
    }
    Ok(())
}

fn statements_of(writes: &[StoreWrite]) -> Vec<Stmt<'_>> {
    let mut stmts = Vec::with_capacity(writes.len() + 2);
    for w in writes {
        statements(w, &mut stmts);
    }
    stmts
}

/// The SQLite store's write connection.
fn writer(store: &SqlStore) -> Result<&super::Writer> {
    store
        .writer
        .as_ref()
        .ok_or_else(|| protocol("a SQLite store without its write connection".into()))
}

/// SQLite's write connection, with nothing left open on it, for writes of the store's
/// other modules that should queue with the grouped ones rather than meet them in
/// SQLite's busy handler (the caller opens and commits its own transaction; a dead worker
/// is reopened by the next group).
pub(super) async fn sqlite_write_conn(
    store: &SqlStore,
) -> Result<tokio::sync::MappedMutexGuard<'_, sqlx::SqliteConnection>> {
    let mut g = writer(store)?.conn.lock().await;
    g.settle().await?;
    Ok(tokio::sync::MutexGuard::map(g, |w| &mut w.conn))
}

/// SQLite's write connection, and whether a transaction sent on it may still be open.
#[derive(Debug)]
pub(crate) struct WriterConn {
    conn: sqlx::SqliteConnection,
    /// Set while a group that opens and commits its own transaction runs (cleared when it
    /// is done): if its caller gave up part way, the next group rolls back first.
    maybe_open: bool,
}

impl WriterConn {
    pub(super) fn new(conn: sqlx::SqliteConnection) -> Self {
        WriterConn {
            conn,
            maybe_open: false,
        }
    }

    /// Rolls back what an abandoned group may have left open ("no transaction is
    /// active" when it had committed after all: nothing to do).
    async fn settle(&mut self) -> Result<()> {
        if self.maybe_open {
            match sqlx::query("ROLLBACK").execute(&mut self.conn).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.message().contains("no transaction") => {}
                Err(e) => return Err(e.into()),
            }
            self.maybe_open = false;
        }
        Ok(())
    }
}

impl super::Writer {
    /// After a failed group: a write connection whose worker thread is gone is opened
    /// again (best effort; the group's own error is what the caller sees).
    async fn recover<T>(&self, w: &mut WriterConn, r: &Result<T>) {
        if super::worker_gone(r) {
            // Failing that, the next group tries again.
            if let Ok(fresh) = self.opts.connect().await {
                *w = WriterConn::new(fresh);
            }
        }
    }
}

/// `apply` on SQLite's write connection. A group whose statements can all be judged by
/// their errors goes as *one* command, `BEGIN IMMEDIATE` and `COMMIT` included (sqlx
/// stops at the first error, before `COMMIT`, and the group is rolled back); one with a
/// rows-changed check ([`Check::Changes`], judged after the statement ran) commits in a
/// step of its own.
async fn apply_sqlite(w: &mut WriterConn, mut stmts: Vec<Stmt<'_>>) -> Result<()> {
    w.settle().await?;
    if stmts
        .iter()
        .any(|s| matches!(s.check, Check::Changes { .. }))
    {
        let mut tx = w.conn.begin().await?;
        run_sqlite(&mut tx, &stmts, |_, _| {}).await?;
        tx.commit().await?;
        return Ok(());
    }
    stmts.insert(0, Stmt::bare("BEGIN IMMEDIATE"));
    stmts.push(Stmt::bare("COMMIT"));
    w.maybe_open = true;
    match run_sqlite(&mut w.conn, &stmts, |_, _| {}).await {
        Ok(_) => {
            w.maybe_open = false;
            Ok(())
        }
        Err(e) => {
            w.settle().await?;
            Err(e)
        }
    }
}

/// Why a one-time value whose conditional UPDATE matched no row was refused, from its
/// `consumed_at` (None: no such row).
fn refusal(row: Option<(Option<i64>,)>) -> ConsumeRefusal {
    match row {
        None => ConsumeRefusal::Unknown,
        Some((Some(_),)) => ConsumeRefusal::Replayed,
        Some((None,)) => ConsumeRefusal::Expired,
    }
}

/// `Store::apply`: every write in one transaction.
pub(super) async fn apply(store: &SqlStore, writes: &[StoreWrite]) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let stmts = statements_of(writes);
    match &store.backend {
        Backend::Sqlite(_) => {
            let w = writer(store)?;
            let mut conn = w.conn.lock().await;
            let r = apply_sqlite(&mut conn, stmts).await;
            w.recover(&mut conn, &r).await;
            r?;
        }
        Backend::Postgres(p) => {
            let mut tx = p.begin().await?;
            run_pg(&mut tx, &stmts).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// The token and challenge consumes of [`consume_and_apply`] as statements.
fn consumes<'a>(now: &'a i64, token: &'a [u8], challenge: Option<&'a [u8]>) -> Vec<Stmt<'a>> {
    let mut v = vec![Stmt {
        sql: CONSUME_TOKEN,
        vals: vec![Val::Int(*now), Val::Blob(token)],
        check: Check::Any,
    }];
    if let Some(c) = challenge {
        v.push(Stmt {
            sql: CONSUME_CHALLENGE,
            vals: vec![Val::Int(*now), Val::Blob(c)],
            check: Check::Any,
        });
    }
    v
}

/// `Store::consume_and_apply`: the token's and the challenge's conditional UPDATEs, then
/// the writes, in one transaction.
pub(super) async fn consume_and_apply(
    store: &SqlStore,
    token: &[u8],
    challenge: Option<&[u8]>,
    now: u64,
    writes: &[StoreWrite],
) -> Result<std::result::Result<TokenRecord, ConsumeFailure>> {
    let now_i = u(now);
    match &store.backend {
        Backend::Sqlite(_) => {
            let w = writer(store)?;
            let mut conn = w.conn.lock().await;
            let r = consume_and_apply_sqlite(&mut conn, token, challenge, now_i, writes).await;
            w.recover(&mut conn, &r).await;
            r
        }
        Backend::Postgres(p) => {
            let mut tx = p.begin().await?;
            let row: Option<TokenRow> = sqlx::query_as(CONSUME_TOKEN)
                .bind(now_i)
                .bind(token)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                let st: Option<(Option<i64>,)> = sqlx::query_as(TOKEN_STATE)
                    .bind(token)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(Err(ConsumeFailure::Token(refusal(st))));
            };
            let rec = token_from(row)?;
            if let Some(c) = challenge {
                let done: Option<(Option<i64>,)> = sqlx::query_as(CONSUME_CHALLENGE)
                    .bind(now_i)
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await?;
                if done.is_none() {
                    let st: Option<(Option<i64>,)> = sqlx::query_as(CHALLENGE_STATE)
                        .bind(c)
                        .fetch_optional(&mut *tx)
                        .await?;
                    // The token stays consumed, as with separate consume calls.
                    tx.commit().await?;
                    return Ok(Err(ConsumeFailure::Challenge(refusal(st))));
                }
            }
            run_pg(&mut tx, &statements_of(writes)).await?;
            tx.commit().await?;
            Ok(Ok(rec))
        }
    }
}

/// `consume_and_apply` on SQLite's write connection, as one command: `BEGIN IMMEDIATE`,
/// per one-time value a guard and its consume, the writes, `COMMIT`. A guard is a
/// statement that fails when its value cannot be consumed (unknown, spent or expired), so
/// sqlx stops the command there, before anything is committed; the group is rolled back
/// and the refusal worked out by `refused_sqlite`. Inside the `IMMEDIATE` transaction no
/// other writer runs between a guard and its consume.
async fn consume_and_apply_sqlite(
    w: &mut WriterConn,
    token: &[u8],
    challenge: Option<&[u8]>,
    now: i64,
    writes: &[StoreWrite],
) -> Result<std::result::Result<TokenRecord, ConsumeFailure>> {
    w.settle().await?;
    let guard = |sql, key| Stmt {
        sql,
        vals: vec![Val::Int(now), Val::Blob(key)],
        check: Check::Any,
    };
    let mut stmts = vec![Stmt::bare("BEGIN IMMEDIATE"), guard(GUARD_TOKEN, token)];
    let consumes = consumes(&now, token, challenge);
    let mut consumes = consumes.into_iter();
    stmts.extend(consumes.next());
    if let Some(c) = challenge {
        stmts.push(guard(GUARD_CHALLENGE, c));
        stmts.extend(consumes.next());
    }
    stmts.extend(statements_of(writes));
    stmts.push(Stmt::bare("COMMIT"));
    // Statement indexes: 1 token guard, 2 token consume, 3 challenge guard.
    let mut rec = None;
    let mut finished = 0;
    w.maybe_open = true;
    let r = run_sqlite(&mut w.conn, &stmts, |i, rows| {
        finished = i + 1;
        if i == 2 {
            rec = rows.first().map(TokenRow::from_row);
        }
    })
    .await;
    match r {
        Ok(_) => {
            w.maybe_open = false;
            match rec {
                Some(row) => Ok(Ok(token_from(row?)?)),
                None => Err(protocol("a guarded token consume returned no row".into())),
            }
        }
        Err(e) => {
            w.settle().await?;
            let target = match finished {
                1 => ConsumeTarget::Token,
                3 if challenge.is_some() => ConsumeTarget::Challenge,
                _ => return Err(e),
            };
            refused_sqlite(&mut w.conn, token, challenge, now, target).await
        }
    }
}

/// Which one-time value an optimistic SQLite batch found unusable.
enum ConsumeTarget {
    Token,
    Challenge,
}

/// The rare path after a refused consume on SQLite (the batch was rolled back): a refused
/// token changes nothing; a refused challenge leaves the token consumed, as with separate
/// consume calls (if another caller took the token meanwhile, that is the refusal).
async fn refused_sqlite(
    conn: &mut sqlx::SqliteConnection,
    token: &[u8],
    challenge: Option<&[u8]>,
    now: i64,
    target: ConsumeTarget,
) -> Result<std::result::Result<TokenRecord, ConsumeFailure>> {
    let mut tx = conn.begin().await?;
    let failure = match (target, challenge) {
        (ConsumeTarget::Challenge, Some(c)) => {
            let row: Option<TokenRow> = sqlx::query_as(CONSUME_TOKEN)
                .bind(now)
                .bind(token)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                let st: Option<(Option<i64>,)> = sqlx::query_as(CHALLENGE_STATE)
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await?;
                ConsumeFailure::Challenge(refusal(st))
            } else {
                ConsumeFailure::Token(token_state(&mut tx, token).await?)
            }
        }
        _ => ConsumeFailure::Token(token_state(&mut tx, token).await?),
    };
    tx.commit().await?;
    Ok(Err(failure))
}

/// Why a token was refused, from its row (SQLite).
async fn token_state(tx: &mut sqlx::SqliteConnection, token: &[u8]) -> Result<ConsumeRefusal> {
    let st: Option<(Option<i64>,)> = sqlx::query_as(TOKEN_STATE)
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(refusal(st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceRecord;
    use crate::sql::TOKEN_COLS;
    use crate::Store;

    fn dev(id: &str) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            ueid: vec![1],
            model: "m".into(),
            hwversion: "1".into(),
            tags: vec!["t".into()],
            suite_alg: None,
            revoked: false,
            created_at: 1,
        }
    }

    /// A group abandoned with its transaction open (the caller's future dropped between
    /// `BEGIN` and `COMMIT`) is rolled back by the next group, which applies.
    #[tokio::test]
    async fn the_next_group_rolls_back_an_abandoned_one() {
        let dir = std::env::temp_dir().join(format!("otrp_writer_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqlStore::open_sqlite(&dir.join("w.db")).await.unwrap();
        {
            let w = writer(&store).unwrap();
            let mut g = w.conn.lock().await;
            g.maybe_open = true;
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut g.conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO devices (id, ueid, model, hwversion, revoked, created_at) VALUES ('ghost', x'01', 'm', '1', false, 1)")
                .execute(&mut g.conn)
                .await
                .unwrap();
        }
        store
            .apply(&[StoreWrite::PutDevice(dev("real"))])
            .await
            .unwrap();
        assert!(store.device("ghost").await.unwrap().is_none());
        assert_eq!(store.device("real").await.unwrap(), Some(dev("real")));
        // A flag left set after a group that did commit: the ROLLBACK finds nothing open.
        writer(&store).unwrap().conn.lock().await.maybe_open = true;
        store
            .apply(&[StoreWrite::PutDevice(dev("next"))])
            .await
            .unwrap();
        assert!(store.device("next").await.unwrap().is_some());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_token_consume_returns_the_columns_a_token_row_reads() {
        assert_eq!(
            CONSUME_TOKEN,
            format!(
                "UPDATE tokens SET consumed_at = $1 WHERE token = $2 AND consumed_at IS NULL \
                 AND expires_at > $1 RETURNING {TOKEN_COLS}"
            )
        );
    }

    #[test]
    fn placeholders_are_renumbered_and_each_template_binds_all_its_values() {
        let mut s = String::new();
        renumbered("a = $1 AND b > $1 AND c = $12, $", 7, &mut s);
        assert_eq!(s, "a = $8 AND b > $8 AND c = $19, $");
        for (sql, n) in [
            (UPSERT_DEVICE, 7),
            (DELETE_TAGS, 1),
            (INSERT_TAG, 2),
            (UPSERT_ATTESTATION, 7),
            (UPSERT_AGENT_KEY, 4),
            (SET_SUITE, 2),
            (UPSERT_PROGRESS, 7),
            (INSERT_TOKEN, 9),
            (INSERT_CHALLENGE, 5),
            (CONSUME_TOKEN, 2),
            (CONSUME_CHALLENGE, 2),
            (GUARD_TOKEN, 2),
            (GUARD_CHALLENGE, 2),
        ] {
            let max = (1..=20)
                .filter(|k| {
                    sql.match_indices(&format!("${k}")).any(|(at, m)| {
                        !sql[at + m.len()..].starts_with(|c: char| c.is_ascii_digit())
                    })
                })
                .max();
            assert_eq!(max, Some(n), "{sql}");
        }
    }
}
