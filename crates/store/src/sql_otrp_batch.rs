//! [`SqlStore`]'s OTrP-profile batch tables (migration `0005_otrp_batch`): the models'
//! shared device keys, the packages and the devices' results.

use super::{is_unique_violation, u, un, Backend, OtrpDeviceRow, SqlStore};
use crate::batch::{
    BatchPackageRecord, BatchReportCounts, BatchReportRecord, OtrpBatchModelRecord,
};
use crate::model::OtrpDeviceRecord;
use crate::{Result, StoreError};

const PACKAGE_COLS: &str = "model, seq, owner, contents, bytes, etag, tam_signatures, created_at";
type PackageRow = (String, i64, String, String, Vec<u8>, String, i64, i64);

fn package_from(r: PackageRow) -> Result<BatchPackageRecord> {
    Ok(BatchPackageRecord {
        batch_id: r.0,
        seq: un(r.1, "otrp_batch_packages", "seq")?,
        owner: r.2,
        contents: r.3,
        bytes: r.4,
        etag: r.5,
        tam_signatures: un(r.6, "otrp_batch_packages", "tam_signatures")?,
        created_at: un(r.7, "otrp_batch_packages", "created_at")?,
    })
}

impl SqlStore {
    pub(super) async fn put_otrp_batch_model_impl(&self, m: &OtrpBatchModelRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO otrp_batch_models (model, public_key, tee, registered_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model) DO UPDATE SET \
             public_key = excluded.public_key, tee = excluded.tee, \
             registered_by = excluded.registered_by, updated_at = excluded.updated_at")
            .bind(&m.model).bind(&m.public_key).bind(&m.tee).bind(&m.registered_by)
            .bind(u(m.updated_at))
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub(super) async fn otrp_batch_model_impl(
        &self,
        model: &str,
    ) -> Result<Option<OtrpBatchModelRecord>> {
        let row: Option<(String, Vec<u8>, String, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT model, public_key, tee, registered_by, updated_at FROM otrp_batch_models \
             WHERE model = $1")
            .bind(model).fetch_optional(p).await)?;
        row.map(|r| {
            Ok(OtrpBatchModelRecord {
                model: r.0,
                public_key: r.1,
                tee: r.2,
                registered_by: r.3,
                updated_at: un(r.4, "otrp_batch_models", "updated_at")?,
            })
        })
        .transpose()
    }

    pub(super) async fn insert_otrp_batch_package_impl(
        &self,
        b: &BatchPackageRecord,
    ) -> Result<()> {
        let n = on_pool!(self, p => sqlx::query(
            "INSERT INTO otrp_batch_packages (model, seq, owner, contents, bytes, etag, \
             tam_signatures, created_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS \
             (SELECT 1 FROM otrp_batch_packages WHERE model = $1 AND seq >= $2)")
            .bind(&b.batch_id).bind(u(b.seq)).bind(&b.owner).bind(&b.contents)
            .bind(&b.bytes).bind(&b.etag).bind(u(b.tam_signatures)).bind(u(b.created_at))
            .execute(p).await.map(|r| r.rows_affected()));
        match n {
            Ok(1) => Ok(()),
            Ok(_) => {
                let latest = self
                    .latest_otrp_batch_package_impl(&b.batch_id)
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

    pub(super) async fn latest_otrp_batch_package_impl(
        &self,
        model: &str,
    ) -> Result<Option<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {PACKAGE_COLS} FROM otrp_batch_packages WHERE model = $1 \
             ORDER BY seq DESC LIMIT 1"
        );
        let row: Option<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(model).fetch_optional(p).await)?;
        row.map(package_from).transpose()
    }

    pub(super) async fn otrp_batch_package_impl(
        &self,
        model: &str,
        seq: u64,
    ) -> Result<Option<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {PACKAGE_COLS} FROM otrp_batch_packages \
             WHERE model = $1 AND seq = $2"
        );
        let row: Option<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(model).bind(u(seq)).fetch_optional(p).await)?;
        row.map(package_from).transpose()
    }

    pub(super) async fn otrp_batch_packages_impl(
        &self,
        model: Option<&str>,
    ) -> Result<Vec<BatchPackageRecord>> {
        let sql = format!(
            "SELECT {PACKAGE_COLS} FROM otrp_batch_packages \
             WHERE ($1 IS NULL OR model = $1) ORDER BY model, seq"
        );
        let rows: Vec<PackageRow> = on_pool!(self, p => sqlx::query_as(&sql)
            .bind(model).fetch_all(p).await)?;
        rows.into_iter().map(package_from).collect()
    }

    pub(super) async fn put_otrp_batch_result_impl(&self, r: &BatchReportRecord) -> Result<()> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO otrp_batch_results (model, seq, device_id, success, detail, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (model, seq, device_id) DO UPDATE SET success = excluded.success, \
             detail = excluded.detail, received_at = excluded.received_at")
            .bind(&r.batch_id).bind(u(r.seq)).bind(&r.device_id).bind(r.success)
            .bind(&r.detail).bind(u(r.received_at))
            .execute(p).await.map(|x| x.rows_affected()))?;
        Ok(())
    }

    pub(super) async fn otrp_batch_results_impl(
        &self,
        model: &str,
        seq: u64,
    ) -> Result<Vec<BatchReportRecord>> {
        let rows: Vec<(String, i64, String, bool, String, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT model, seq, device_id, success, detail, received_at FROM otrp_batch_results \
             WHERE model = $1 AND seq = $2 ORDER BY device_id")
            .bind(model).bind(u(seq)).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(BatchReportRecord {
                    batch_id: r.0,
                    seq: un(r.1, "otrp_batch_results", "seq")?,
                    device_id: r.2,
                    success: r.3,
                    detail: r.4,
                    received_at: un(r.5, "otrp_batch_results", "received_at")?,
                })
            })
            .collect()
    }

    pub(super) async fn otrp_batch_result_counts_impl(
        &self,
        model: &str,
        seq: u64,
    ) -> Result<BatchReportCounts> {
        let rows: Vec<(bool, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT success, COUNT(*) FROM otrp_batch_results WHERE model = $1 AND seq = $2 \
             GROUP BY success")
            .bind(model).bind(u(seq)).fetch_all(p).await)?;
        let mut c = BatchReportCounts::default();
        for (success, n) in rows {
            let n = un(n, "otrp_batch_results", "count")?;
            if success {
                c.applied += n;
            } else {
                c.failed += n;
            }
        }
        Ok(c)
    }

    pub(super) async fn otrp_device_by_did_impl(
        &self,
        did: &str,
    ) -> Result<Option<OtrpDeviceRecord>> {
        // `did` is a hash of the TEE certificate: one device, unless the same certificate
        // was recorded under two ids; the newest record wins then.
        let row: Option<OtrpDeviceRow> = on_pool!(self, p => sqlx::query_as(
            "SELECT device_id, did, tee_name, tee_cert, dsi, dsihash, tid, updated_at \
             FROM otrp_devices WHERE did = $1 ORDER BY updated_at DESC LIMIT 1")
            .bind(did).fetch_optional(p).await)?;
        row.map(|r| {
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
        })
        .transpose()
    }
}
