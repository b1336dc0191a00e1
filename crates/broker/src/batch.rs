//! Batch mode in the Broker (DESIGN.md §3.2): when the TEE says it belongs to a batch, the
//! Broker fetches the batch's package from the TAM (`GET /tam/batch/<id>` with
//! `If-None-Match`, so an unchanged package costs a 304 and no body), hands a new one to
//! the TEE (`ApplyBatch`), and POSTs the reports the Agent queued
//! (`POST /tam/batch/<id>/reports?seq=N`), acknowledging each one the TAM took.
//!
//! The batch URL is derived from the TAM URL: its last path segment (`/tam`) is replaced
//! by `/tam/batch/<id>`; `https://tam.example/tam` → `https://tam.example/tam/batch/lot-7`.

use std::future::Future;

use otrp_tee_daemon::{BatchApplied, BatchStatus, PendingBatchReport, TeeClient, TeeError};

use crate::session::{error_chain, read_limited, Http, LocalTee, TEEP_CBOR};
use crate::BrokerError;

/// Most URIs a batch package may ask to fetch before it is given up.
pub const MAX_BATCH_FETCHES: usize = 16;

/// The TEE side of batch mode: the daemon over its socket, or an in-process TEE (fleet).
pub trait BatchLink: Send {
    /// BatchStatus.
    fn batch_status(&mut self) -> impl Future<Output = Result<BatchStatus, TeeError>> + Send;
    /// ApplyBatch.
    fn apply_batch(
        &mut self,
        package: Vec<u8>,
        fetched: Option<(String, Vec<u8>)>,
    ) -> impl Future<Output = Result<BatchApplied, TeeError>> + Send;
    /// BatchReports.
    fn batch_reports(
        &mut self,
    ) -> impl Future<Output = Result<Vec<PendingBatchReport>, TeeError>> + Send;
    /// AckBatchReport.
    fn ack_batch_report(
        &mut self,
        batch_id: String,
        sequence: u64,
    ) -> impl Future<Output = Result<(), TeeError>> + Send;
}

impl BatchLink for TeeClient {
    async fn batch_status(&mut self) -> Result<BatchStatus, TeeError> {
        TeeClient::batch_status(self).await
    }
    async fn apply_batch(
        &mut self,
        package: Vec<u8>,
        fetched: Option<(String, Vec<u8>)>,
    ) -> Result<BatchApplied, TeeError> {
        TeeClient::apply_batch(self, package, fetched).await
    }
    async fn batch_reports(&mut self) -> Result<Vec<PendingBatchReport>, TeeError> {
        TeeClient::batch_reports(self).await
    }
    async fn ack_batch_report(&mut self, batch_id: String, sequence: u64) -> Result<(), TeeError> {
        TeeClient::ack_batch_report(self, &batch_id, sequence).await
    }
}

impl LocalTee {
    async fn run_batch<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut otrp_tee_daemon::Tee) -> R + Send + 'static,
    ) -> Result<R, TeeError> {
        let tee = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut t = tee.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut t)
        })
        .await
        .map_err(|e| TeeError::Protocol(format!("TEE task failed: {e}")))
    }
}

impl BatchLink for LocalTee {
    async fn batch_status(&mut self) -> Result<BatchStatus, TeeError> {
        self.run_batch(|t| t.batch_status()).await
    }
    async fn apply_batch(
        &mut self,
        package: Vec<u8>,
        fetched: Option<(String, Vec<u8>)>,
    ) -> Result<BatchApplied, TeeError> {
        self.run_batch(move |t| t.apply_batch(&package, fetched, otrp_tee_daemon::unix_now()))
            .await?
    }
    async fn batch_reports(&mut self) -> Result<Vec<PendingBatchReport>, TeeError> {
        self.run_batch(|t| t.batch_reports()).await
    }
    async fn ack_batch_report(&mut self, batch_id: String, sequence: u64) -> Result<(), TeeError> {
        self.run_batch(move |t| t.ack_batch_report(&batch_id, sequence))
            .await?
    }
}

/// What the Broker remembers between batch rounds: the ETag of the last package the TEE
/// took (applied, already applied or refused), so unchanged packages answer 304.
#[derive(Debug, Clone, Default)]
pub struct BatchState {
    /// ETag of the last package handed to the TEE.
    pub etag: Option<String>,
}

/// What one batch round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRound {
    /// The TEE's batch (None: not a batch member, nothing was fetched).
    pub batch: Option<String>,
    /// HTTP status of the package fetch (200, 304, 404), when one was made.
    pub fetch_status: Option<u16>,
    /// Package bytes received (0 for 304).
    pub package_bytes: usize,
    /// What the TEE did with a new package.
    pub applied: Option<BatchApplied>,
    /// Reports the TAM took (and the TEE dropped from its queue).
    pub reports_sent: usize,
    /// Reports the TAM refused (kept queued for the next round; a 404 drops it).
    pub reports_refused: Vec<String>,
}

/// `GET` URL of `batch_id`'s package for the TAM at `tam_url` (`.../tam`).
pub fn batch_url(tam_url: &str, batch_id: &str) -> String {
    let base = tam_url.trim_end_matches('/');
    let base = base.strip_suffix("/tam").unwrap_or(base);
    format!("{base}/tam/batch/{batch_id}")
}

async fn get_package(
    http: &Http,
    url: &str,
    etag: Option<&str>,
) -> Result<(u16, Vec<u8>, Option<String>), BrokerError> {
    let mut req = http
        .client
        .get(url)
        .header(reqwest::header::ACCEPT, TEEP_CBOR);
    if let Some(e) = etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, e);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| BrokerError::Tam(format!("GET {url}: {}", error_chain(&e))))?;
    let status = resp.status().as_u16();
    let new_etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match status {
        200 => Ok((200, read_limited(resp).await?, new_etag)),
        304 | 404 => Ok((status, Vec::new(), new_etag)),
        s => Err(BrokerError::Tam(format!("GET {url}: HTTP {s}"))),
    }
}

async fn post_report(http: &Http, url: &str, r: &PendingBatchReport) -> Result<u16, BrokerError> {
    let u = format!("{url}/reports?seq={}", r.sequence);
    let resp = http
        .client
        .post(&u)
        .header(reqwest::header::CONTENT_TYPE, TEEP_CBOR)
        .body(r.message.clone())
        .send()
        .await
        .map_err(|e| BrokerError::Tam(format!("POST {u}: {}", error_chain(&e))))?;
    Ok(resp.status().as_u16())
}

/// One batch round for one TEE: ask its batch, fetch the package (`If-None-Match` with
/// `state.etag`), apply a new one (fetching URIs it asks for), then send queued reports.
pub async fn batch_round<T: BatchLink>(
    http: &Http,
    tam_url: &str,
    tee: &mut T,
    state: &mut BatchState,
) -> Result<BatchRound, BrokerError> {
    let mut round = BatchRound::default();
    let status = tee.batch_status().await.map_err(BrokerError::Tee)?;
    let Some(batch) = status.batch else {
        return Ok(round);
    };
    round.batch = Some(batch.clone());
    if crate::is_coap_url(tam_url) {
        return Err(BrokerError::Config(
            "batch packages are fetched over HTTP(S) only in this build".into(),
        ));
    }
    let url = batch_url(tam_url, &batch);
    let (code, bytes, etag) = get_package(http, &url, state.etag.as_deref()).await?;
    round.fetch_status = Some(code);
    round.package_bytes = bytes.len();
    if code == 200 {
        let mut applied = tee
            .apply_batch(bytes.clone(), None)
            .await
            .map_err(BrokerError::Tee)?;
        let mut fetches = 0;
        while let Some(uri) = applied.need_fetch.clone() {
            fetches += 1;
            if fetches > MAX_BATCH_FETCHES {
                return Err(BrokerError::Fetch(format!(
                    "the batch package asked for more than {MAX_BATCH_FETCHES} URIs"
                )));
            }
            let data = http.fetch(&uri).await?;
            applied = tee
                .apply_batch(bytes.clone(), Some((uri, data)))
                .await
                .map_err(BrokerError::Tee)?;
        }
        tracing::info!(%batch, outcome = %applied.outcome, sequence = ?applied.sequence, size = bytes.len(), "batch package handed to the TEE");
        state.etag = etag;
        round.applied = Some(applied);
    }
    for r in tee.batch_reports().await.map_err(BrokerError::Tee)? {
        let burl = batch_url(tam_url, &r.batch_id);
        match post_report(http, &burl, &r).await {
            Ok(s) if (200..300).contains(&s) || s == 404 => {
                tee.ack_batch_report(r.batch_id.clone(), r.sequence)
                    .await
                    .map_err(BrokerError::Tee)?;
                if s == 404 {
                    round
                        .reports_refused
                        .push(format!("{}#{}: HTTP 404 (dropped)", r.batch_id, r.sequence));
                } else {
                    round.reports_sent += 1;
                }
            }
            Ok(s) => round
                .reports_refused
                .push(format!("{}#{}: HTTP {s}", r.batch_id, r.sequence)),
            Err(e) => round
                .reports_refused
                .push(format!("{}#{}: {e}", r.batch_id, r.sequence)),
        }
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::batch_url;

    #[test]
    fn batch_urls_replace_the_tam_path() {
        assert_eq!(
            batch_url("https://t.example:8443/tam", "lot-7"),
            "https://t.example:8443/tam/batch/lot-7"
        );
        assert_eq!(
            batch_url("http://127.0.0.1:1/", "b"),
            "http://127.0.0.1:1/tam/batch/b"
        );
    }
}
