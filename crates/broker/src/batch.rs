//! Batch mode in the Broker (DESIGN.md §3.2): when the TEE says it belongs to a batch, the
//! Broker fetches the batch's package from the TAM (`GET /tam/batch/<id>` with
//! `If-None-Match`, so an unchanged package costs a 304 and no body), hands a new one to
//! the TEE (`ApplyBatch`), and POSTs the reports the Agent queued
//! (`POST /tam/batch/<id>/reports?seq=N`), acknowledging each one the TAM took.
//!
//! The batch URL is derived from the TAM URL: its last path segment (`/tam`) is replaced
//! by `/tam/batch/<id>`; `https://tam.example/tam` → `https://tam.example/tam/batch/lot-7`.
//!
//! With a `coap://` TAM URL the same round runs over CoAP on the TAM URL's host: a GET of
//! `/batch/<id>` naming the held package's ETag option (2.03 Valid costs no body; a new
//! package comes block-wise, Block2), then one POST of `/batch/<id>/reports?seq=N` per
//! queued report (Uri-Query, Block1 when larger than a block). The codes are reported as
//! their HTTP equivalents in [`BatchRound`] (2.05 → 200, 2.03 → 304, 2.04 → 204).

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

impl BatchLink for LocalTee {
    async fn batch_status(&mut self) -> Result<BatchStatus, TeeError> {
        self.run(|t| t.batch_status()).await
    }
    async fn apply_batch(
        &mut self,
        package: Vec<u8>,
        fetched: Option<(String, Vec<u8>)>,
    ) -> Result<BatchApplied, TeeError> {
        self.run(move |t| t.apply_batch(&package, fetched, otrp_tee_daemon::unix_now()))
            .await?
    }
    async fn batch_reports(&mut self) -> Result<Vec<PendingBatchReport>, TeeError> {
        self.run(|t| t.batch_reports()).await
    }
    async fn ack_batch_report(&mut self, batch_id: String, sequence: u64) -> Result<(), TeeError> {
        self.run(move |t| t.ack_batch_report(&batch_id, sequence))
            .await?
    }
}

/// What the Broker remembers between batch rounds: the ETag of the last package the TEE
/// took (applied, already applied or refused), so unchanged packages answer 304.
#[derive(Debug, Clone, Default)]
pub struct BatchState {
    /// ETag of the last package handed to the TEE (HTTP).
    pub etag: Option<String>,
    /// ETag option of the last package handed to the TEE (CoAP).
    pub coap_etag: Option<Vec<u8>>,
}

/// What one batch round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRound {
    /// The TEE's batch (None: not a batch member, nothing was fetched).
    pub batch: Option<String>,
    /// HTTP status of the package fetch (200, 304, 404), when one was made; over CoAP the
    /// equivalent of its code (2.05 Content → 200, 2.03 Valid → 304, 4.04 → 404).
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
    tam_resource_url(tam_url, "batch", batch_id)
}

/// `<TAM origin>/tam/<kind>/<id>` for the TAM at `tam_url` (`.../tam`).
pub(crate) fn tam_resource_url(tam_url: &str, kind: &str, id: &str) -> String {
    let base = tam_url.trim_end_matches('/');
    let base = base.strip_suffix("/tam").unwrap_or(base);
    format!("{base}/tam/{kind}/{id}")
}

/// Conditional `GET` of a batch package of media type `accept`: (status, body, ETag).
/// 304 and 404 come back with an empty body; any other non-200 status is an error.
pub(crate) async fn get_package(
    http: &Http,
    url: &str,
    accept: &str,
    etag: Option<&str>,
) -> Result<(u16, Vec<u8>, Option<String>), BrokerError> {
    let mut req = http.client.get(url).header(reqwest::header::ACCEPT, accept);
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

/// CoAP path of `batch_id`'s package (`/batch/<id>`, on the host of the `coap://` TAM URL).
pub fn coap_batch_path(batch_id: &str) -> String {
    format!("/batch/{batch_id}")
}

/// The HTTP status a CoAP response code stands for in [`BatchRound`] (2.05 → 200,
/// 2.03 → 304, 2.04 → 204, 4.04 → 404, …; other errors 400/500, other successes 200).
fn coap_status(code: otrp_coap::Code) -> u16 {
    use otrp_coap::Code;
    match code {
        Code::Content => 200,
        Code::Valid => 304,
        Code::Changed | Code::Created | Code::Deleted => 204,
        Code::BadRequest => 400,
        Code::Unauthorized => 401,
        Code::Forbidden => 403,
        Code::NotFound => 404,
        Code::MethodNotAllowed => 405,
        Code::Conflict => 409,
        Code::RequestEntityTooLarge => 413,
        Code::UnsupportedContentFormat => 415,
        Code::TooManyRequests => 429,
        Code::ServiceUnavailable => 503,
        Code::InternalServerError
        | Code::NotImplemented
        | Code::BadGateway
        | Code::GatewayTimeout
        | Code::ProxyingNotSupported => 500,
        c if c.is_error() => 400,
        _ => 200,
    }
}

async fn get_package_coap(
    http: &Http,
    tam_url: &str,
    batch_id: &str,
    etag: Option<&[u8]>,
) -> Result<(u16, Vec<u8>, Option<Vec<u8>>), BrokerError> {
    let path = coap_batch_path(batch_id);
    let tags = etag.map(|e| vec![e.to_vec()]).unwrap_or_default();
    let resp = http
        .coap_request(tam_url, &path, Vec::new(), Some(tags))
        .await?;
    match coap_status(resp.code) {
        200 => {
            if resp.body.len() > crate::MAX_BODY {
                return Err(BrokerError::Tam(format!(
                    "CoAP GET {path}: package over {} bytes",
                    crate::MAX_BODY
                )));
            }
            Ok((200, resp.body, resp.etag))
        }
        s @ (304 | 404) => Ok((s, Vec::new(), resp.etag)),
        s => Err(BrokerError::Tam(format!(
            "CoAP GET {path}: {:?} ({s})",
            resp.code
        ))),
    }
}

async fn post_report_coap(
    http: &Http,
    tam_url: &str,
    r: &PendingBatchReport,
) -> Result<u16, BrokerError> {
    let path = format!(
        "{}/reports?seq={}",
        coap_batch_path(&r.batch_id),
        r.sequence
    );
    let resp = http
        .coap_request(tam_url, &path, r.message.clone(), None)
        .await?;
    Ok(coap_status(resp.code))
}

async fn post_report(http: &Http, url: &str, r: &PendingBatchReport) -> Result<u16, BrokerError> {
    let u = format!("{url}/reports?seq={}", r.sequence);
    post_signed(http, &u, TEEP_CBOR, r.message.clone()).await
}

/// `POST` of a device's signed report or result of media type `content_type`: the status.
pub(crate) async fn post_signed(
    http: &Http,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<u16, BrokerError> {
    let resp = http
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .map_err(|e| BrokerError::Tam(format!("POST {url}: {}", error_chain(&e))))?;
    Ok(resp.status().as_u16())
}

/// One batch round for one TEE: ask its batch, fetch the package (`If-None-Match` with
/// `state.etag`, or the CoAP ETag option with `state.coap_etag` for a `coap://` TAM URL),
/// apply a new one (fetching URIs it asks for), then send queued reports.
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
    let coap = crate::is_coap_url(tam_url);
    let (code, bytes, etag, coap_etag) = if coap {
        let (c, b, e) = get_package_coap(http, tam_url, &batch, state.coap_etag.as_deref()).await?;
        (c, b, None, e)
    } else {
        let url = batch_url(tam_url, &batch);
        let (c, b, e) = get_package(http, &url, TEEP_CBOR, state.etag.as_deref()).await?;
        (c, b, e, None)
    };
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
        state.coap_etag = coap_etag;
        round.applied = Some(applied);
    }
    for r in tee.batch_reports().await.map_err(BrokerError::Tee)? {
        let sent = if coap {
            post_report_coap(http, tam_url, &r).await
        } else {
            post_report(http, &batch_url(tam_url, &r.batch_id), &r).await
        };
        match sent {
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
