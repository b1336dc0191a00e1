//! [`SqlStore`]'s OTrP-profile batch tables (migration `0005_otrp_batch`): the models'
//! shared device keys and the TEE lookup by `did`. Packages and results share the TEEP
//! batch queries (`sql_batch.rs`).

use super::{otrp_device_record, u, un, Backend, OtrpDeviceRow, SqlStore};
use crate::batch::OtrpBatchModelRecord;
use crate::model::OtrpDeviceRecord;
use crate::Result;

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
        row.map(otrp_device_record).transpose()
    }
}
