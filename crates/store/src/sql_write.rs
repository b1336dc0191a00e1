//! [`SqlStore`]'s grouped writes: one transaction per group (see `crate::write`).

use super::{exists_on_conflict, hex_of, token_from, u, Backend, SqlStore, TokenRow, TOKEN_COLS};
use crate::model::{ConsumeRefusal, TokenRecord};
use crate::write::{ConsumeFailure, StoreWrite};
use crate::{Result, StoreError};

/// Runs one write on the open transaction `$tx` (the statements of the single-row
/// methods, on the transaction instead of the pool). Returns from the enclosing function
/// on error, which drops (rolls back) the transaction.
macro_rules! write_on {
    ($tx:ident, $w:expr) => {
        match $w {
            StoreWrite::PutDevice(d) => {
                sqlx::query(
                    "INSERT INTO devices (id, ueid, model, hwversion, suite_alg, revoked, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET ueid = excluded.ueid, \
                     model = excluded.model, hwversion = excluded.hwversion, \
                     suite_alg = excluded.suite_alg, revoked = excluded.revoked",
                )
                .bind(&d.id)
                .bind(&d.ueid)
                .bind(&d.model)
                .bind(&d.hwversion)
                .bind(d.suite_alg)
                .bind(d.revoked)
                .bind(u(d.created_at))
                .execute(&mut *$tx)
                .await?;
                sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
                    .bind(&d.id)
                    .execute(&mut *$tx)
                    .await?;
                for t in &d.tags {
                    sqlx::query(
                        "INSERT INTO device_tags (device_id, tag) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&d.id)
                    .bind(t)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
            StoreWrite::PutDeviceKeepTags(d) => {
                sqlx::query(
                    "INSERT INTO devices (id, ueid, model, hwversion, suite_alg, revoked, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (id) DO UPDATE SET ueid = excluded.ueid, \
                     model = excluded.model, hwversion = excluded.hwversion, \
                     suite_alg = excluded.suite_alg, revoked = excluded.revoked",
                )
                .bind(&d.id)
                .bind(&d.ueid)
                .bind(&d.model)
                .bind(&d.hwversion)
                .bind(d.suite_alg)
                .bind(d.revoked)
                .bind(u(d.created_at))
                .execute(&mut *$tx)
                .await?;
            }
            StoreWrite::PutAttestation(a) => {
                sqlx::query(
                    "INSERT INTO attestations (device_id, status, tee_version, measurement, \
                     agent_kid, verified_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (device_id) DO UPDATE SET status = excluded.status, \
                     tee_version = excluded.tee_version, measurement = excluded.measurement, \
                     agent_kid = excluded.agent_kid, verified_at = excluded.verified_at, \
                     expires_at = excluded.expires_at",
                )
                .bind(&a.device_id)
                .bind(a.status.as_str())
                .bind(&a.tee_version)
                .bind(&a.measurement)
                .bind(&a.agent_kid)
                .bind(u(a.verified_at))
                .bind(u(a.expires_at))
                .execute(&mut *$tx)
                .await?;
            }
            StoreWrite::PutAgentKey(k) => {
                sqlx::query(
                    "INSERT INTO agent_keys (kid, device_id, cose_key, bound_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (kid) DO UPDATE SET \
                     device_id = excluded.device_id, cose_key = excluded.cose_key, \
                     bound_at = excluded.bound_at",
                )
                .bind(&k.kid)
                .bind(&k.device_id)
                .bind(&k.cose_key)
                .bind(u(k.bound_at))
                .execute(&mut *$tx)
                .await?;
            }
            StoreWrite::SetDeviceSuite { id, alg } => {
                let n = sqlx::query("UPDATE devices SET suite_alg = $1 WHERE id = $2")
                    .bind(*alg)
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound {
                        what: "device",
                        id: id.clone(),
                    });
                }
            }
            StoreWrite::PutProgress(r) => {
                sqlx::query(
                    "INSERT INTO progress (deployment_id, device_id, component, seq, state, \
                     detail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (deployment_id, device_id, component) DO UPDATE SET \
                     seq = excluded.seq, state = excluded.state, detail = excluded.detail, \
                     updated_at = excluded.updated_at",
                )
                .bind(r.deployment_id)
                .bind(&r.device_id)
                .bind(&r.component)
                .bind(u(r.seq))
                .bind(r.state.as_str())
                .bind(&r.detail)
                .bind(u(r.updated_at))
                .execute(&mut *$tx)
                .await?;
            }
            StoreWrite::InsertToken(t) => {
                let r = sqlx::query(
                    "INSERT INTO tokens (token, kind, device_id, challenge, data_items, sent, \
                     created_at, expires_at, consumed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&t.token)
                .bind(t.kind.as_str())
                .bind(&t.device_id)
                .bind(&t.challenge)
                .bind(u(t.data_items))
                .bind(super::encode_sent(&t.sent))
                .bind(u(t.created_at))
                .bind(u(t.expires_at))
                .bind(t.consumed_at.map(u))
                .execute(&mut *$tx)
                .await;
                exists_on_conflict(r, "token", || hex_of(&t.token))?;
            }
            StoreWrite::InsertChallenge(c) => {
                let r = sqlx::query(
                    "INSERT INTO challenges (challenge, token, created_at, expires_at, \
                     consumed_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&c.challenge)
                .bind(&c.token)
                .bind(u(c.created_at))
                .bind(u(c.expires_at))
                .bind(c.consumed_at.map(u))
                .execute(&mut *$tx)
                .await;
                exists_on_conflict(r, "challenge", || hex_of(&c.challenge))?;
            }
        }
    };
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
    match &store.backend {
        Backend::Sqlite(p) => {
            let mut tx = p.begin().await?;
            for w in writes {
                write_on!(tx, w);
            }
            tx.commit().await?;
        }
        Backend::Postgres(p) => {
            let mut tx = p.begin().await?;
            for w in writes {
                write_on!(tx, w);
            }
            tx.commit().await?;
        }
    }
    Ok(())
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
    let consume_token = format!(
        "UPDATE tokens SET consumed_at = $1 WHERE token = $2 AND consumed_at IS NULL \
         AND expires_at > $1 RETURNING {TOKEN_COLS}"
    );
    const CONSUME_CHALLENGE: &str = "UPDATE challenges SET consumed_at = $1 \
         WHERE challenge = $2 AND consumed_at IS NULL AND expires_at > $1 RETURNING consumed_at";
    const TOKEN_STATE: &str = "SELECT consumed_at FROM tokens WHERE token = $1";
    const CHALLENGE_STATE: &str = "SELECT consumed_at FROM challenges WHERE challenge = $1";
    macro_rules! body {
        ($p:ident) => {{
            let mut tx = $p.begin().await?;
            let row: Option<TokenRow> = sqlx::query_as(&consume_token)
                .bind(u(now))
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
                    .bind(u(now))
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
            for w in writes {
                write_on!(tx, w);
            }
            tx.commit().await?;
            Ok(Ok(rec))
        }};
    }
    match &store.backend {
        Backend::Sqlite(p) => body!(p),
        Backend::Postgres(p) => body!(p),
    }
}
