//! The reads of a QueryResponse: the device's record ([`Store::device`](crate::Store::device)),
//! or for a known Agent its key with its device's attestation and record
//! ([`Store::known_agent`](crate::Store::known_agent)), and the deployments that may target
//! the device with its progress and the latest ready manifests
//! ([`Store::deployment_plans`](crate::Store::deployment_plans)). On SQLite, the device and
//! its plans are one command ([`Store::device_and_plans`](crate::Store::device_and_plans)).
//!
//! The rows are decoded by the same functions for both backends.

use futures_util::TryStreamExt;
use sqlx::{ColumnIndex, Decode, Either, Row, Type};

use super::{deployment_from, manifest_from, progress_from, un};
use crate::model::*;
use crate::Result;

/// A column of a row of either backend, decoded as a `T`.
pub(super) trait Col<T> {
    /// Column `i`.
    fn col(&self, i: usize) -> Result<T>;
}

impl<R, T> Col<T> for R
where
    R: Row,
    usize: ColumnIndex<R>,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn col(&self, i: usize) -> Result<T> {
        Ok(self.try_get(i)?)
    }
}

/// A row of either backend whose columns decode into what these reads hold.
pub(super) trait ExchangeRow:
    Col<String>
    + Col<Vec<u8>>
    + Col<i64>
    + Col<bool>
    + Col<Option<String>>
    + Col<Option<Vec<u8>>>
    + Col<Option<i64>>
{
}

impl<R> ExchangeRow for R where
    R: Col<String>
        + Col<Vec<u8>>
        + Col<i64>
        + Col<bool>
        + Col<Option<String>>
        + Col<Option<Vec<u8>>>
        + Col<Option<i64>>
{
}

/// A device's row and tags: one row per tag (one with a NULL tag when there is none).
/// `$1`: the device's id.
macro_rules! device_sql {
    () => {
        "SELECT d.id, d.ueid, d.model, d.hwversion, d.suite_alg, d.revoked, d.created_at, \
         t.tag FROM devices d LEFT JOIN device_tags t ON t.device_id = d.id \
         WHERE d.id = $1 ORDER BY t.tag"
    };
}

/// The key, its device's attestation, device row and tags: one row per tag (one with a
/// NULL tag when there is none). `$1`: the kid.
macro_rules! known_agent_sql {
    () => {
        "SELECT k.kid, k.device_id, k.cose_key, k.bound_at, \
         a.status, a.tee_version, a.measurement, a.agent_kid, a.verified_at, a.expires_at, \
         d.id, d.ueid, d.model, d.hwversion, d.suite_alg, d.revoked, d.created_at, t.tag \
         FROM agent_keys k \
         LEFT JOIN attestations a ON a.device_id = k.device_id \
         LEFT JOIN devices d ON d.id = k.device_id \
         LEFT JOIN device_tags t ON t.device_id = d.id \
         WHERE k.kid = $1 ORDER BY t.tag"
    };
}

/// Active deployments that may target a device (by tag: any, judged by the caller),
/// each with the device's progress and the latest ready manifest of an install.
/// `$from` joins the table naming the device, `$id` and `$model` are its id and model.
macro_rules! plans_sql {
    ($with:expr, $from:expr, $id:expr, $model:expr) => {
        concat!(
            $with,
            "SELECT d.id, d.sp_id, d.component, d.action, d.target_kind, \
             d.target_value, d.rollout_kind, d.rollout_value, d.state, d.created_at, \
             p.seq, p.state, p.detail, p.updated_at, \
             m.seq, m.envelope, m.image_digest, m.status, m.created_at \
             FROM deployments d",
            $from,
            " LEFT JOIN progress p ON p.deployment_id = d.id AND p.device_id = ",
            $id,
            " AND p.component = d.component \
             LEFT JOIN manifests m ON d.action = 'install' AND m.component = d.component \
               AND m.status = 'ready' AND m.seq = (SELECT MAX(m2.seq) FROM manifests m2 \
               WHERE m2.component = d.component AND m2.status = 'ready') \
             WHERE d.state = 'active' AND (d.target_kind IN ('all', 'tag') \
               OR (d.target_kind = 'device' AND d.target_value = ",
            $id,
            ") OR (d.target_kind = 'model' AND d.target_value = ",
            $model,
            ")) ORDER BY d.id"
        )
    };
}

/// [`Store::device`](crate::Store::device)'s query.
pub(super) const DEVICE: &str = device_sql!();

/// [`Store::known_agent`](crate::Store::known_agent)'s query.
pub(super) const KNOWN_AGENT: &str = known_agent_sql!();

/// [`Store::deployment_plans`](crate::Store::deployment_plans)'s query: `$1` the device's
/// id, `$2` its model.
pub(super) const PLANS: &str = plans_sql!("", "", "$1", "$2");

/// [`DEVICE`] and [`PLANS`]: two statements, one command (SQLite).
const DEVICE_AND_PLANS: &str = concat!(device_sql!(), "; ", plans_sql!("", "", "$1", "$2"));

/// Decodes [`DEVICE`]'s rows.
pub(super) fn device_from<R: ExchangeRow>(rows: &[R]) -> Result<Option<DeviceRecord>> {
    if rows.is_empty() {
        return Ok(None);
    }
    device_at(rows, 0).map(Some)
}

/// Decodes the device whose columns start at `at` (id, ueid, model, hwversion,
/// suite_alg, revoked, created_at, tag) from rows that repeat it once per tag.
fn device_at<R: ExchangeRow>(rows: &[R], at: usize) -> Result<DeviceRecord> {
    let mut tags = Vec::new();
    for r in rows {
        tags.extend(Col::<Option<String>>::col(r, at + 7)?);
    }
    let first = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    Ok(DeviceRecord {
        id: first.col(at)?,
        ueid: first.col(at + 1)?,
        model: first.col(at + 2)?,
        hwversion: first.col(at + 3)?,
        tags,
        suite_alg: first.col(at + 4)?,
        revoked: first.col(at + 5)?,
        created_at: un(first.col(at + 6)?, "devices", "created_at")?,
    })
}

/// Decodes [`KNOWN_AGENT`]'s rows.
pub(super) fn known_agent_from<R: ExchangeRow>(rows: &[R]) -> Result<Option<KnownAgent>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let key = AgentKeyRecord {
        kid: first.col(0)?,
        device_id: first.col(1)?,
        cose_key: first.col(2)?,
        bound_at: un(first.col(3)?, "agent_keys", "bound_at")?,
    };
    let attestation = match Col::<Option<String>>::col(first, 4)? {
        None => None,
        Some(status) => Some(AttestationRecord {
            device_id: key.device_id.clone(),
            status: ArStatus::parse(&status),
            tee_version: first.col(5)?,
            measurement: first.col(6)?,
            agent_kid: first.col(7)?,
            verified_at: un(first.col(8)?, "attestations", "verified_at")?,
            expires_at: un(first.col(9)?, "attestations", "expires_at")?,
        }),
    };
    let device = match Col::<Option<String>>::col(first, 10)? {
        None => None,
        Some(_) => Some(device_at(rows, 10)?),
    };
    Ok(Some(KnownAgent {
        key,
        attestation,
        device,
    }))
}

/// Decodes [`PLANS`]' rows for `device`, keeping the deployments that target it.
pub(super) fn plans_from<R: ExchangeRow>(
    rows: &[R],
    device: &DeviceRecord,
) -> Result<Vec<DeploymentPlan>> {
    let mut out = Vec::new();
    for r in rows {
        let deployment = deployment_from((
            r.col(0)?,
            r.col(1)?,
            r.col(2)?,
            r.col(3)?,
            r.col(4)?,
            r.col(5)?,
            r.col(6)?,
            r.col(7)?,
            r.col(8)?,
            r.col(9)?,
        ))?;
        if !deployment.target.matches(device) {
            continue;
        }
        let progress = match (
            Col::<Option<i64>>::col(r, 10)?,
            Col::<Option<String>>::col(r, 11)?,
            Col::<Option<String>>::col(r, 12)?,
            Col::<Option<i64>>::col(r, 13)?,
        ) {
            (Some(seq), Some(state), Some(detail), Some(at)) => Some(progress_from((
                deployment.id,
                device.id.clone(),
                deployment.component.clone(),
                seq,
                state,
                detail,
                at,
            ))?),
            _ => None,
        };
        let latest_ready = match (
            Col::<Option<i64>>::col(r, 14)?,
            Col::<Option<Vec<u8>>>::col(r, 15)?,
            Col::<Option<Vec<u8>>>::col(r, 16)?,
            Col::<Option<String>>::col(r, 17)?,
            Col::<Option<i64>>::col(r, 18)?,
        ) {
            (Some(seq), Some(envelope), digest, Some(status), Some(at)) => Some(manifest_from((
                deployment.component.clone(),
                seq,
                envelope,
                digest,
                status,
                at,
            ))?),
            _ => None,
        };
        out.push(DeploymentPlan {
            deployment,
            progress,
            latest_ready,
        });
    }
    Ok(out)
}

/// [`Store::device_and_plans`](crate::Store::device_and_plans) on one SQLite connection:
/// both statements in one command, so one round trip to the connection's worker thread
/// instead of two (and no pool).
pub(super) async fn device_and_plans_sqlite(
    conn: &mut sqlx::SqliteConnection,
    id: &str,
    model: &str,
) -> Result<(Option<DeviceRecord>, Vec<DeploymentPlan>)> {
    // Several statements in one query: deprecated in sqlx 0.8 (launchbadge/sqlx#3108),
    // as for the grouped writes (`sql_write.rs`); `tests/exchange_reads.rs` pins the
    // result against the two reads it replaces.
    #[allow(deprecated)]
    let mut stream = sqlx::query(DEVICE_AND_PLANS)
        .bind(id)
        .bind(model)
        .fetch_many(&mut *conn);
    let (mut device_rows, mut plan_rows) = (Vec::new(), Vec::new());
    let mut statement = 0;
    while let Some(item) = stream.try_next().await? {
        match item {
            Either::Left(_) => statement += 1,
            Either::Right(row) if statement == 0 => device_rows.push(row),
            Either::Right(row) => plan_rows.push(row),
        }
    }
    let device = device_from(&device_rows)?;
    let plans = plans_from(
        &plan_rows,
        &crate::device_as_model(device.as_ref(), id, model),
    )?;
    Ok((device, plans))
}
