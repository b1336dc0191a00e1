//! TEEP over CoAP, the TAM side (binary profile for constrained links, DESIGN.md §3.3):
//! the `/teep` resource of an [`otrp_coap::CoapServer`] runs exactly the same session
//! processing as `POST /tam` ([`crate::teep::process_teep`]).
//!
//! * POST with an empty payload opens a session; a payload is a TEEP message. Other
//!   methods get 4.05, a content-format other than TEEP/CBOR 4.15 (both in `otrp-coap`).
//! * A message back is **2.04 Changed** with the TEEP message as payload; nothing back
//!   (HTTP's 204) is **2.04 Changed with an empty payload**.
//! * Refused input maps to 4.xx (400 → 4.00, 401 → 4.01, 403 → 4.03, 404 → 4.04,
//!   409 → 4.09, 413 → 4.13, 415 → 4.15, 429 → 4.29, other 4xx → 4.00), the TAM's own
//!   failure to 5.xx (503 → 5.03, other 5xx → 5.00). Error responses carry no payload.
//! * Batch mode: `GET /batch/<batch-id>` answers the batch's newest package (2.05 Content,
//!   ETag option = first 8 bytes of its SHA-256, Block2 for large packages) or 2.03 Valid
//!   when the client's ETag option names it, 4.04 when the batch has none
//!   ([`crate::batch::coap_get`]).
//! * Batch reports: `POST /batch/<batch-id>/reports?seq=N` (Uri-Query `seq=N`, Block1
//!   for reports larger than a block) is verified and counted exactly like
//!   `POST /tam/batch/<id>/reports?seq=N` ([`crate::batch::record_report`]): 2.04 Changed
//!   when recorded, 4.03 for a report not signed by the device's bound Agent key, 4.04
//!   for an unknown package, 4.00 without a numeric `seq`.
//! * Other paths get 4.04. Bodies are reassembled by `otrp-coap` (block-wise, RFC 7959)
//!   up to `max_teep_body_bytes` (beyond: 4.13); the block size is `coap_block_size`.
//! * All the endpoint holds is bounded by `coap_max_held_bytes` (beyond: 5.03 with
//!   Max-Age); `/metrics` shows it every second as `otrp_coap_held_bytes{endpoint}` and
//!   the requests refused so as `otrp_coap_busy_refusals_total{endpoint}`.

use std::net::SocketAddr;
use std::sync::Arc;

use otrp_coap::{CoapServer, Code, Config, Handler, Request, Response, TEEP_PATH};

use crate::state::AppState;
use crate::teep::{process_teep, Exchange};

/// The CoAP response code for an HTTP error status of the TEEP binding.
pub fn coap_code(http_status: u16) -> Code {
    match http_status {
        401 => Code::Unauthorized,
        403 => Code::Forbidden,
        404 => Code::NotFound,
        409 => Code::Conflict,
        413 => Code::RequestEntityTooLarge,
        415 => Code::UnsupportedContentFormat,
        429 => Code::TooManyRequests,
        400..=499 => Code::BadRequest,
        503 => Code::ServiceUnavailable,
        _ => Code::InternalServerError,
    }
}

/// The CoAP [`Handler`] serving [`TEEP_PATH`] from `state`.
pub fn handler(state: Arc<AppState>) -> Handler {
    Arc::new(move |req: Request| {
        let state = state.clone();
        Box::pin(async move {
            if let Some(rest) = req.path.strip_prefix(crate::batch::COAP_BATCH_PREFIX) {
                if let Some(batch_id) = rest.strip_suffix("/reports") {
                    return batch_report(&state, batch_id, &req).await;
                }
                let batch_id = rest;
                if !req.get {
                    return Response::error(Code::MethodNotAllowed);
                }
                let (code, body, etag) = crate::batch::coap_get(&state, batch_id, &req.etags).await;
                return match code {
                    Code::Content => Response::content(body, etag),
                    Code::Valid => Response::valid(etag.unwrap_or_default()),
                    other => Response::error(other),
                };
            }
            if req.path != TEEP_PATH {
                return Response::error(Code::NotFound);
            }
            if req.get {
                return Response::error(Code::MethodNotAllowed);
            }
            match process_teep(&state, &req.body, otrp_tam::Transport::Coap).await {
                Exchange::Reply(bytes) => Response::changed(bytes),
                Exchange::Done => Response::changed(Vec::new()),
                Exchange::Failed { status, message } => {
                    tracing::debug!(peer = %req.peer, status, %message, "CoAP TEEP error");
                    Response::error(coap_code(status))
                }
            }
        })
    })
}

/// `POST /batch/<id>/reports?seq=N`: the same verification and recording as the HTTP
/// route ([`crate::batch::record_report`]); 2.04 Changed when recorded, the HTTP refusal
/// mapped by [`coap_code`] otherwise (4.00 without a numeric `seq`).
async fn batch_report(state: &AppState, batch_id: &str, req: &Request) -> Response {
    if req.get {
        return Response::error(Code::MethodNotAllowed);
    }
    let Some(seq) = req.query_param("seq").and_then(|v| v.parse::<u64>().ok()) else {
        tracing::debug!(peer = %req.peer, batch = batch_id, query = ?req.query, "CoAP batch report without ?seq=N");
        return Response::error(Code::BadRequest);
    };
    if req.body.len() > crate::batch::MAX_REPORT_BYTES {
        return Response::error(Code::RequestEntityTooLarge);
    }
    match crate::batch::record_report(state, batch_id, seq, &req.body).await {
        crate::batch::ReportOutcome::Recorded(..) => Response::changed(Vec::new()),
        crate::batch::ReportOutcome::Refused(status, why) => {
            tracing::debug!(peer = %req.peer, batch = batch_id, seq, status, %why, "CoAP batch report refused");
            Response::error(coap_code(status))
        }
    }
}

/// The `otrp-coap` configuration for `block_size` bytes (16–1024, a power of two), a
/// request body limit of `max_body` bytes and at most `max_held` bytes held in all
/// ([`Config::max_held_bytes`], at least `max_body`).
pub fn coap_config(block_size: usize, max_body: usize, max_held: usize) -> std::io::Result<Config> {
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
    let mut cfg = Config::with_block_size(block_size).ok_or_else(|| {
        invalid(format!(
            "CoAP block size {block_size}: must be 16, 32, 64, 128, 256, 512 or 1024"
        ))
    })?;
    if max_held < max_body {
        return Err(invalid(format!(
            "coap_max_held_bytes {max_held} is below max_teep_body_bytes {max_body}: \
             the largest message could never be received"
        )));
    }
    cfg.max_body = max_body;
    cfg.max_held_bytes = max_held;
    Ok(cfg)
}

/// Binds `addr` (UDP) and serves TEEP at `/teep` with the state's configured block size.
pub async fn start_coap(state: Arc<AppState>, addr: SocketAddr) -> std::io::Result<CoapServer> {
    let cfg = coap_config(
        state.config.coap_block_size,
        state.config.max_teep_body_bytes,
        state.config.coap_max_held_bytes,
    )?;
    start_coap_with(state, addr, cfg).await
}

/// Like [`start_coap`] with an explicit `otrp-coap` configuration (tests use fast timers).
pub async fn start_coap_with(
    state: Arc<AppState>,
    addr: SocketAddr,
    config: Config,
) -> std::io::Result<CoapServer> {
    let server = CoapServer::bind_with(addr, config, handler(state)).await?;
    tracing::info!(addr = %server.local_addr(), "TAM serving TEEP over CoAP at coap://{}{TEEP_PATH}", server.local_addr());
    export_stats(server.stats_handle(), server.local_addr().to_string());
    Ok(server)
}

/// Sets the endpoint's metrics from its stats every second, until it stops.
fn export_stats(stats: otrp_coap::StatsHandle, endpoint: String) {
    crate::metrics::handle();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(s) = stats.get() else {
                return;
            };
            metrics::gauge!(crate::metrics::COAP_HELD_BYTES, "endpoint" => endpoint.clone())
                .set(s.held_bytes as f64);
            metrics::counter!(crate::metrics::COAP_BUSY_REFUSALS, "endpoint" => endpoint.clone())
                .absolute(s.busy_refusals);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_and_block_sizes() {
        assert_eq!(coap_code(400), Code::BadRequest);
        assert_eq!(coap_code(413), Code::RequestEntityTooLarge);
        assert_eq!(coap_code(418), Code::BadRequest);
        assert_eq!(coap_code(500), Code::InternalServerError);
        assert_eq!(coap_code(503), Code::ServiceUnavailable);
        assert!(coap_config(64, 1000, 4000)
            .is_ok_and(|c| c.block_size() == 64 && c.max_held_bytes == 4000));
        assert!(coap_config(100, 1000, 4000).is_err());
        assert!(coap_config(2048, 1000, 4000).is_err());
        assert!(coap_config(8, 1000, 4000).is_err());
        assert!(coap_config(64, 1000, 999)
            .is_err_and(|e| e.to_string().contains("coap_max_held_bytes")));
    }
}
