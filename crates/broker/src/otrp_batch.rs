//! The OTrP-profile batch command package in the Broker (our extension,
//! docs/CONSTRAINED.md): with `--profile otrp`, after each session, when the TEE has a
//! model (its provisioned batch), the Broker fetches the model's newest package
//! (`GET /tam/otrp-batch/<model>`, `Accept: application/otrp+json`, `If-None-Match` with
//! the ETag of the last package it handed over, so an unchanged package costs a 304 and
//! no body), hands a new one to the TEE (`ApplyOtrpBatch`), then POSTs each TEE-signed
//! result the TEE queued (`POST /tam/otrp-batch/<pkgid>/results`) and acknowledges the
//! ones the TAM took (`AckOtrpBatchResult`).
//!
//! The URL is derived from the TAM URL as for TEEP batch mode: `https://tam.example/tam`
//! → `https://tam.example/tam/otrp-batch/door-lock`. HTTP(S) only, as the OTrP profile.

use std::future::Future;

use otrp_tee_daemon::{
    OtrpBatchApplied, OtrpBatchStatus, PendingOtrpBatchResult, TeeClient, TeeError,
};

use crate::batch::{get_package, post_signed, tam_resource_url};
use crate::otrp::OTRP_JSON;
use crate::session::{Http, LocalTee};
use crate::BrokerError;

/// The TEE side of the OTrP batch: the daemon over its socket, or an in-process TEE.
pub trait OtrpBatchLink: Send {
    /// OtrpBatchStatus.
    fn otrp_batch_status(
        &mut self,
    ) -> impl Future<Output = Result<OtrpBatchStatus, TeeError>> + Send;
    /// ApplyOtrpBatch.
    fn apply_otrp_batch(
        &mut self,
        package: Vec<u8>,
    ) -> impl Future<Output = Result<OtrpBatchApplied, TeeError>> + Send;
    /// OtrpBatchResults.
    fn otrp_batch_results(
        &mut self,
    ) -> impl Future<Output = Result<Vec<PendingOtrpBatchResult>, TeeError>> + Send;
    /// AckOtrpBatchResult.
    fn ack_otrp_batch_result(
        &mut self,
        pkgid: String,
        seq: u64,
    ) -> impl Future<Output = Result<(), TeeError>> + Send;
}

impl OtrpBatchLink for TeeClient {
    async fn otrp_batch_status(&mut self) -> Result<OtrpBatchStatus, TeeError> {
        TeeClient::otrp_batch_status(self).await
    }
    async fn apply_otrp_batch(&mut self, package: Vec<u8>) -> Result<OtrpBatchApplied, TeeError> {
        TeeClient::apply_otrp_batch(self, package).await
    }
    async fn otrp_batch_results(&mut self) -> Result<Vec<PendingOtrpBatchResult>, TeeError> {
        TeeClient::otrp_batch_results(self).await
    }
    async fn ack_otrp_batch_result(&mut self, pkgid: String, seq: u64) -> Result<(), TeeError> {
        TeeClient::ack_otrp_batch_result(self, &pkgid, seq).await
    }
}

impl OtrpBatchLink for LocalTee {
    async fn otrp_batch_status(&mut self) -> Result<OtrpBatchStatus, TeeError> {
        self.run(|t| t.otrp_batch_status()).await
    }
    async fn apply_otrp_batch(&mut self, package: Vec<u8>) -> Result<OtrpBatchApplied, TeeError> {
        self.run(move |t| t.apply_otrp_batch(&package, otrp_tee_daemon::unix_now()))
            .await?
    }
    async fn otrp_batch_results(&mut self) -> Result<Vec<PendingOtrpBatchResult>, TeeError> {
        self.run(|t| t.otrp_batch_results()).await
    }
    async fn ack_otrp_batch_result(&mut self, pkgid: String, seq: u64) -> Result<(), TeeError> {
        self.run(move |t| t.ack_otrp_batch_result(&pkgid, seq))
            .await?
    }
}

/// What the Broker remembers between OTrP batch rounds: the ETag of the last package the
/// TEE took (applied, already applied or refused), so unchanged packages answer 304.
#[derive(Debug, Clone, Default)]
pub struct OtrpBatchState {
    /// ETag of the last package handed to the TEE.
    pub etag: Option<String>,
}

/// What one OTrP batch round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtrpBatchRound {
    /// The TEE's model (None: no model key, nothing was fetched).
    pub model: Option<String>,
    /// HTTP status of the package fetch (200, 304, 404), when one was made.
    pub fetch_status: Option<u16>,
    /// Package bytes received (0 for 304).
    pub package_bytes: usize,
    /// What the TEE did with a new package.
    pub applied: Option<OtrpBatchApplied>,
    /// Results the TAM took (and the TEE dropped from its queue).
    pub results_sent: usize,
    /// Results the TAM refused (kept queued for the next round; a 404 drops it).
    pub results_refused: Vec<String>,
}

/// `GET` URL of `model`'s OTrP batch package for the TAM at `tam_url` (`.../tam`).
pub fn otrp_batch_url(tam_url: &str, model: &str) -> String {
    tam_resource_url(tam_url, "otrp-batch", model)
}

async fn post_result(
    http: &Http,
    tam_url: &str,
    r: &PendingOtrpBatchResult,
) -> Result<u16, BrokerError> {
    let u = format!("{}/results", otrp_batch_url(tam_url, &r.pkgid));
    post_signed(http, &u, OTRP_JSON, r.message.clone()).await
}

/// One OTrP batch round for one TEE (see the module docs).
pub async fn otrp_batch_round<T: OtrpBatchLink>(
    http: &Http,
    tam_url: &str,
    tee: &mut T,
    state: &mut OtrpBatchState,
) -> Result<OtrpBatchRound, BrokerError> {
    if crate::is_coap_url(tam_url) {
        return Err(BrokerError::Config(format!(
            "{tam_url}: the OTrP profile runs over HTTP(S) only"
        )));
    }
    let mut round = OtrpBatchRound::default();
    let status = tee.otrp_batch_status().await.map_err(BrokerError::Tee)?;
    let Some(model) = status.model else {
        return Ok(round);
    };
    round.model = Some(model.clone());
    let url = otrp_batch_url(tam_url, &model);
    let (code, bytes, etag) = get_package(http, &url, OTRP_JSON, state.etag.as_deref()).await?;
    round.fetch_status = Some(code);
    round.package_bytes = bytes.len();
    if code == 200 {
        let size = bytes.len();
        let applied = tee
            .apply_otrp_batch(bytes)
            .await
            .map_err(BrokerError::Tee)?;
        tracing::info!(%model, outcome = %applied.outcome, seq = ?applied.seq, size, "OTrP batch package handed to the TEE");
        state.etag = etag;
        round.applied = Some(applied);
    }
    for r in tee.otrp_batch_results().await.map_err(BrokerError::Tee)? {
        match post_result(http, tam_url, &r).await {
            Ok(s) if (200..300).contains(&s) || s == 404 => {
                tee.ack_otrp_batch_result(r.pkgid.clone(), r.seq)
                    .await
                    .map_err(BrokerError::Tee)?;
                if s == 404 {
                    round
                        .results_refused
                        .push(format!("{}#{}: HTTP 404 (dropped)", r.pkgid, r.seq));
                } else {
                    round.results_sent += 1;
                }
            }
            Ok(s) => round
                .results_refused
                .push(format!("{}#{}: HTTP {s}", r.pkgid, r.seq)),
            Err(e) => round
                .results_refused
                .push(format!("{}#{}: {e}", r.pkgid, r.seq)),
        }
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::otrp_batch_url;

    #[test]
    fn otrp_batch_urls_replace_the_tam_path() {
        assert_eq!(
            otrp_batch_url("https://t.example:8443/tam", "door-lock"),
            "https://t.example:8443/tam/otrp-batch/door-lock"
        );
        assert_eq!(
            otrp_batch_url("http://127.0.0.1:1/", "m"),
            "http://127.0.0.1:1/tam/otrp-batch/m"
        );
    }
}
