//! The package and report queries both batch modes share. The TEEP batch tables
//! (`batch_packages`, `batch_reports`, keyed by `batch_id`, migration `0004_batch`) and the
//! OTrP ones (`otrp_batch_packages`, `otrp_batch_results`, keyed by `model`, migration
//! `0005_otrp_batch`) have the same shape; [`BatchTables`] names which.
//! The TAM records device reports in groups: Agent keys by kid with one `IN (…)` query,
//! many reports with one multi-row upsert ([`SqlStore::put_reports`]).

use super::{is_unique_violation, u, un, Backend, SqlStore};
use crate::batch::{BatchPackageRecord, BatchReportCounts, BatchReportRecord};
use crate::model::AgentKeyRecord;
use crate::{Result, StoreError};

/// The tables of one batch mode (constant names: never user input).
pub(super) struct BatchTables {
    /// Packages: `(key, seq, owner, contents, bytes, etag, tam_signatures, created_at)`.
    packages: &'static str,
    /// Device reports: `(key, seq, device_id, success, detail, received_at)`.
    reports: &'static str,
    /// The column naming the batch (TEEP: batch id; OTrP: device model).
    key: &'static str,
}

/// TEEP batch packages and their reports.
pub(super) const TEEP_BATCH: BatchTables = BatchTables {
    packages: "batch_packages",
    reports: "batch_reports",
    key: "batch_id",
};

/// OTrP batch command packages and their `OTrPBatchResult`s.
pub(super) const OTRP_BATCH: BatchTables = BatchTables {
    packages: "otrp_batch_packages",
    reports: "otrp_batch_results",
    key: "model",
};

type PackageRow = (String, i64, String, String, Vec<u8>, String, i64, i64);
type ReportRow = (String, i64, String, bool, String, i64);

impl BatchTables {
    fn package_cols(&self) -> String {
        format!(
            "{}, seq, owner, contents, bytes, etag, tam_signatures, created_at",
            self.key
        )
    }

    fn package_from(&self, r: PackageRow) -> Result<BatchPackageRecord> {
        Ok(BatchPackageRecord {
            batch_id: r.0,
            seq: un(r.1, self.packages, "seq")?,
            owner: r.2,
            contents: r.3,
            bytes: r.4,
            etag: r.5,
            tam_signatures: un(r.6, self.packages, "tam_signatures")?,
            created_at: un(r.7, self.packages, "created_at")?,
        })
    }

    fn report_from(&self, r: ReportRow) -> Result<BatchReportRecord> {
        Ok(BatchReportRecord {
            batch_id: r.0,
            seq: un(r.1, self.reports, "seq")?,
            device_id: r.2,
            success: r.3,
            detail: r.4,
            received_at: un(r.5, self.reports, "received_at")?,
        })
    }
}

impl SqlStore {
    /// Inserts a package whose sequence number is above every earlier one of its batch
    /// (checked by the database, also when two replicas race).
    pub(super) async fn insert_package(
        &self,
        t: &BatchTables,
        b: &BatchPackageRecord,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {p} ({cols}) SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS \
             (SELECT 1 FROM {p} WHERE {k} = $1 AND seq >= $2)",
            p = t.packages,
            k = t.key,
            cols = t.package_cols()
        );
        let n = on_pool!(self, p => sqlx::query(&sql)
            .bind(&b.batch_id).bind(u(b.seq)).bind(&b.owner).bind(&b.contents)
            .bind(&b.bytes).bind(&b.etag).bind(u(b.tam_signatures)).bind(u(b.created_at))
            .execute(p).await.map(|r| r.rows_affected()));
        match n {
            Ok(1) => Ok(()),
            Ok(_) => {
                let latest = self
                    .latest_package(t, &b.batch_id)
                    .await?
                    .map_or(0, |l| l.seq);
                Err(StoreError::SequenceNotGrowing { seq: b.seq, latest })
            }
            Err(e) if is_unique_violation(&e) => Err(StoreError::SequenceNotGrowing {
                seq: b.seq,
                latest: b.seq,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The newest package of batch `id`.
    pub(super) async fn latest_package(
        &self,
        t: &BatchTables,
        id: &str,
    ) -> Result<Option<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1 ORDER BY seq DESC LIMIT 1",
            t.package_cols(),
            t.packages,
            t.key
        );
        let row: Option<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).fetch_optional(p).await)?;
        row.map(|r| t.package_from(r)).transpose()
    }

    /// Package `seq` of batch `id`.
    pub(super) async fn package_at(
        &self,
        t: &BatchTables,
        id: &str,
        seq: u64,
    ) -> Result<Option<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = $1 AND seq = $2",
            t.package_cols(),
            t.packages,
            t.key
        );
        let row: Option<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).bind(u(seq)).fetch_optional(p).await)?;
        row.map(|r| t.package_from(r)).transpose()
    }

    /// Every package (of batch `id`, when given), by batch and sequence number.
    pub(super) async fn packages_of(
        &self,
        t: &BatchTables,
        id: Option<&str>,
    ) -> Result<Vec<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {cols} FROM {p} WHERE ($1 IS NULL OR {k} = $1) ORDER BY {k}, seq",
            cols = t.package_cols(),
            p = t.packages,
            k = t.key
        );
        let rows: Vec<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).fetch_all(p).await)?;
        rows.into_iter().map(|r| t.package_from(r)).collect()
    }

    /// Records (or replaces) a device's report on a package.
    pub(super) async fn put_report(&self, t: &BatchTables, r: &BatchReportRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO {rep} ({k}, seq, device_id, success, detail, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT ({k}, seq, device_id) DO UPDATE SET success = excluded.success, \
             detail = excluded.detail, received_at = excluded.received_at",
            rep = t.reports,
            k = t.key
        );
        on_pool!(self, p => sqlx::query(&sql)
            .bind(&r.batch_id).bind(u(r.seq)).bind(&r.device_id).bind(r.success)
            .bind(&r.detail).bind(u(r.received_at))
            .execute(p).await.map(|x| x.rows_affected()))?;
        Ok(())
    }

    /// The reports on package `seq` of batch `id`, by device.
    pub(super) async fn reports_of(
        &self,
        t: &BatchTables,
        id: &str,
        seq: u64,
    ) -> Result<Vec<BatchReportRecord>> {
        let sql = format!(
            "SELECT {k}, seq, device_id, success, detail, received_at FROM {rep} \
             WHERE {k} = $1 AND seq = $2 ORDER BY device_id",
            rep = t.reports,
            k = t.key
        );
        let rows: Vec<ReportRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).bind(u(seq)).fetch_all(p).await)?;
        rows.into_iter().map(|r| t.report_from(r)).collect()
    }

    /// How many devices reported package `seq` of batch `id` applied, and how many failed.
    pub(super) async fn report_counts(
        &self,
        t: &BatchTables,
        id: &str,
        seq: u64,
    ) -> Result<BatchReportCounts> {
        let sql = format!(
            "SELECT success, COUNT(*) FROM {rep} WHERE {k} = $1 AND seq = $2 GROUP BY success",
            rep = t.reports,
            k = t.key
        );
        let rows: Vec<(bool, i64)> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).bind(u(seq)).fetch_all(p).await)?;
        let mut c = BatchReportCounts::default();
        for (success, n) in rows {
            let n = un(n, t.reports, "count")?;
            if success {
                c.applied += n;
            } else {
                c.failed += n;
            }
        }
        Ok(c)
    }
}

/// Kids per `agent_keys … WHERE kid IN (…)` statement: one bind each, well under SQLite's
/// oldest default limit of 999 bound parameters (PostgreSQL allows 65 535).
const KID_CHUNK: usize = 500;
/// Reports per multi-row upsert: six binds each (900 per statement, as above).
const REPORT_CHUNK: usize = 150;

type AgentKeyRow = (Vec<u8>, String, Vec<u8>, i64);

/// `$from, $from+1, …` (`n` placeholders).
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlStore {
    /// The Agent keys with these kids: one `WHERE kid IN (…)` statement per
    /// [`KID_CHUNK`] distinct kids (one for every group the TAM makes).
    pub(super) async fn agent_keys_by_kid_impl(
        &self,
        kids: &[Vec<u8>],
    ) -> Result<Vec<AgentKeyRecord>> {
        let mut distinct: Vec<&[u8]> = kids.iter().map(Vec::as_slice).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut out = Vec::with_capacity(distinct.len());
        for chunk in distinct.chunks(KID_CHUNK) {
            let sql = format!(
                "SELECT kid, device_id, cose_key, bound_at FROM agent_keys WHERE kid IN ({})",
                placeholders(1, chunk.len())
            );
            let rows: Vec<AgentKeyRow> = on_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for k in chunk {
                    q = q.bind(*k);
                }
                q.fetch_all(p).await
            })?;
            for r in rows {
                out.push(AgentKeyRecord {
                    kid: r.0,
                    device_id: r.1,
                    cose_key: r.2,
                    bound_at: un(r.3, "agent_keys", "bound_at")?,
                });
            }
        }
        Ok(out)
    }

    /// Whether package `seq` of batch `id` exists (reads the key only, from the primary
    /// key index).
    pub(super) async fn package_exists(&self, t: &BatchTables, id: &str, seq: u64) -> Result<bool> {
        let sql = format!(
            "SELECT seq FROM {} WHERE {} = $1 AND seq = $2",
            t.packages, t.key
        );
        let row: Option<(i64,)> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(id).bind(u(seq)).fetch_optional(p).await)?;
        Ok(row.is_some())
    }

    /// Records (or replaces) many reports in one transaction: one multi-row upsert per
    /// [`REPORT_CHUNK`] reports, the same semantics as [`SqlStore::put_report`] one after
    /// the other (when a (batch, seq, device) appears twice, the later report wins; it is
    /// written once, as PostgreSQL refuses to upsert one row twice in a statement).
    pub(super) async fn put_reports(
        &self,
        t: &BatchTables,
        rs: &[BatchReportRecord],
    ) -> Result<()> {
        let mut last = std::collections::HashMap::with_capacity(rs.len());
        for (i, r) in rs.iter().enumerate() {
            last.insert((r.batch_id.as_str(), r.seq, r.device_id.as_str()), i);
        }
        let kept: Vec<&BatchReportRecord> = rs
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                last.get(&(r.batch_id.as_str(), r.seq, r.device_id.as_str())) == Some(i)
            })
            .map(|(_, r)| r)
            .collect();
        if kept.is_empty() {
            return Ok(());
        }
        let sql_of = |n: usize| {
            let values = (0..n)
                .map(|i| format!("({})", placeholders(i * 6 + 1, 6)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO {rep} ({k}, seq, device_id, success, detail, received_at) \
                 VALUES {values} \
                 ON CONFLICT ({k}, seq, device_id) DO UPDATE SET success = excluded.success, \
                 detail = excluded.detail, received_at = excluded.received_at",
                rep = t.reports,
                k = t.key
            )
        };
        macro_rules! insert_chunks {
            ($tx:expr) => {
                for chunk in kept.chunks(REPORT_CHUNK) {
                    let sql = sql_of(chunk.len());
                    let mut q = sqlx::query(&sql);
                    for r in chunk {
                        q = q
                            .bind(&r.batch_id)
                            .bind(u(r.seq))
                            .bind(&r.device_id)
                            .bind(r.success)
                            .bind(&r.detail)
                            .bind(u(r.received_at));
                    }
                    q.execute(&mut *$tx).await?;
                }
            };
        }
        match &self.backend {
            // Queued with the TAM's other write groups on the write connection.
            Backend::Sqlite(_) => {
                let mut conn = super::write::sqlite_write_conn(self).await?;
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                insert_chunks!(tx);
                tx.commit().await?;
                Ok(())
            }
            Backend::Postgres(p) => {
                let mut tx = p.begin().await?;
                insert_chunks!(tx);
                tx.commit().await?;
                Ok(())
            }
        }
    }
}
