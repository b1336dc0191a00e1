//! TEEP over HTTP, the TAM side (draft-ietf-teep-otrp-over-http-15 §4, §6).
//!
//! * Only `POST` on the TAM URI (`/tam`); other methods get 405 with `Allow: POST`.
//! * `Content-Type: application/otrp+json`, or no `Content-Type` with an `Accept` that
//!   names `application/otrp+json` and not `application/teep+cbor`, is OTrP JSON and
//!   handled by [`crate::otrp`] (415 with the reason when the TAM's identity cannot do
//!   OTrP). Everything else is TEEP:
//! * A non-empty body must be `Content-Type: application/teep+cbor`, else **415**; the
//!   request must accept `application/teep+cbor` (`Accept` with that type,
//!   `application/*` or `*/*`), else **406** (§6.1: "SHOULD fail the request").
//! * An empty body opens a session (ProcessConnect, §6.2); a non-empty one is a TEEP
//!   message (ProcessTeepMessage, §6.3).
//! * A message back is **200** with `Content-Type: application/teep+cbor`; nothing back is
//!   **204** without a body (§6.4). Refused input is 400, the TAM's own failure 500 (§6.4:
//!   "5xx" when no message can be produced).
//! * Bodies larger than `max_teep_body_bytes` get **413**, after reading a modest overage
//!   to its end so the client receives the answer rather than a broken pipe
//!   ([`read_limited`]).
//! * Every response carries `X-Content-Type-Options: nosniff`,
//!   `Content-Security-Policy: default-src 'none'` and `Referrer-Policy: no-referrer`
//!   (§4); no cookies, no redirects, and no `Cache-Control` (§4 of the draft says it is
//!   not to be used: POST answers are not cacheable anyway).
//! * The device is identified per session by the token and the Agent's signature (the
//!   TAM core never trusts a client-supplied id); no device hint is taken from HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use otrp_tam::{AttestationError, Outcome, TamError};
use otrp_teep::TeepMessage;

use crate::metrics::{ATTESTATION_FAILURES, TEEP_EXCHANGES, TEEP_PROCESSING};
use crate::state::{now, AppState};

/// The TEEP media type.
pub const TEEP_CBOR: &str = "application/teep+cbor";
/// The OTrP JSON media type.
pub const OTRP_JSON: &str = "application/otrp+json";
/// The TAM URI path.
pub const TAM_PATH: &str = "/tam";

/// Adds the response headers of draft-ietf-teep-otrp-over-http §4.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A `text/plain` answer with the security headers (TEEP and OTrP refusals).
pub(crate) fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut r = (status, msg.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    security_headers(r.headers_mut());
    r
}

fn media_type(v: &HeaderValue) -> String {
    v.to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether an `Accept` value admits `application/teep+cbor` (q > 0).
pub fn accepts_teep(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !q_zero && (mt == TEEP_CBOR || mt == "application/*" || mt == "*/*")
    })
}

fn attestation_reason(e: &AttestationError) -> &'static str {
    match e {
        AttestationError::Malformed(_) => "malformed",
        AttestationError::WrongRoot => "wrong_root",
        AttestationError::CertExpired(_) => "cert_expired",
        AttestationError::Revoked(_) => "revoked",
        AttestationError::Chain(_) => "chain",
        AttestationError::UnknownAttester { .. } => "unknown_attester",
        AttestationError::BadSignature => "bad_signature",
        AttestationError::OtherDevice { .. } => "other_device",
        AttestationError::MissingNonce => "missing_nonce",
        AttestationError::NonceMismatch => "nonce_mismatch",
        AttestationError::MissingClaim(_) => "missing_claim",
        AttestationError::UnknownModel(_) => "unknown_model",
        AttestationError::UnknownMeasurement { .. } => "unknown_measurement",
        AttestationError::UnknownHwVersion { .. } => "unknown_hwversion",
        AttestationError::CnfMismatch { .. } => "cnf_mismatch",
        // Variants added to the core later are counted until they get their own label.
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// How many bytes beyond the limit are still read (and thrown away) before answering 413.
///
/// Answering before the body is consumed makes hyper close the connection while the
/// client may still be writing: the client then sees a broken pipe or a reset (which can
/// discard the 413 it had already received) instead of the answer, and a pooled
/// connection can be reused after the server closed it. Reading a modest overage to its
/// end lets the client finish, read the 413 and keep the connection. Bodies declared
/// larger than `limit + DRAIN_BEYOND_LIMIT` are refused without reading them (the
/// response says `Connection: close`).
pub const DRAIN_BEYOND_LIMIT: u64 = 1024 * 1024;

/// How long an over-limit body may take to be drained before the 413 goes out anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the body up to `limit` bytes; `Err(413 response)` beyond it.
///
/// An over-limit body of at most [`DRAIN_BEYOND_LIMIT`] extra bytes is read to its end
/// (within [`DRAIN_TIMEOUT`]) before the 413, so the client gets the answer instead of a
/// broken pipe; otherwise the 413 carries `Connection: close`.
pub async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let limit64 = limit as u64;
    let too_large = |drained: bool| {
        let mut r = plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        );
        if !drained {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > limit64.saturating_add(DRAIN_BEYOND_LIMIT) {
            tracing::debug!(
                declared = len,
                limit,
                "request body far above the limit: 413 without reading it"
            );
            return Err(too_large(false));
        }
    }
    let mut seen: u64 = 0;
    if declared.is_none_or(|len| len <= limit64) {
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| plain(StatusCode::BAD_REQUEST, format!("reading the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > limit64 {
                    break;
                }
                buf.extend_from_slice(&data);
            }
        }
        if seen <= limit64 {
            return Ok(Bytes::from(buf));
        }
    }
    let drain = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len() as u64);
                if seen > limit64.saturating_add(DRAIN_BEYOND_LIMIT) {
                    return false;
                }
            }
        }
        true
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, drain)
        .await
        .unwrap_or(false);
    tracing::debug!(limit, drained, "request body above the limit: 413");
    Err(too_large(drained))
}

fn message_kind(bytes: &[u8]) -> &'static str {
    let payload = match otrp_cose::peek(bytes) {
        Ok(otrp_cose::CoseMessage::Sign1(m)) => m.payload,
        Ok(otrp_cose::CoseMessage::Sign(m)) => m.payload,
        _ => None,
    };
    match payload.as_deref().map(TeepMessage::decode) {
        Some(Ok(TeepMessage::QueryRequest(_))) => "query_request",
        Some(Ok(TeepMessage::Update(_))) => "update",
        _ => "other",
    }
}

/// `POST /tam`.
pub async fn post_tam(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).map(media_type);
    if crate::otrp::selects_otrp(&headers, content_type.as_deref()) {
        return crate::otrp::post_otrp(&state, &headers, content_type.as_deref(), body).await;
    }
    let accept_ok = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_teep);
    if !accept_ok {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "the request must carry `Accept: application/teep+cbor` \
             (draft-ietf-teep-otrp-over-http §5.1, §6.1)",
        );
    }
    let body = match read_limited(&headers, body, state.config.max_teep_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !body.is_empty() && content_type.as_deref() != Some(TEEP_CBOR) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type must be {TEEP_CBOR} (got {})",
                content_type.as_deref().unwrap_or("none")
            ),
        );
    }
    exchange_response(
        process_teep(&state, &body, otrp_tam::Transport::Http).await,
        TEEP_CBOR,
    )
}

/// The HTTP answer to an exchange (`POST /tam`, `POST /otrp`): 200 with the reply as
/// `media`, 204 when the session is over, the failure's status as text otherwise.
pub(crate) fn exchange_response(exchange: Exchange, media: &'static str) -> Response {
    match exchange {
        Exchange::Reply(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
            security_headers(r.headers_mut());
            r
        }
        Exchange::Done => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            security_headers(r.headers_mut());
            r
        }
        Exchange::Failed { status, message } => plain(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message,
        ),
    }
}

/// The transport-independent result of one TEEP exchange (HTTP and CoAP map it to their
/// status codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// The TAM's next TEEP message (HTTP 200, CoAP 2.04 with payload).
    Reply(Vec<u8>),
    /// Nothing more to say: the session is over (HTTP 204, CoAP 2.04 without payload).
    Done,
    /// The message was refused (4xx) or the TAM failed (5xx).
    Failed {
        /// HTTP status code (400–599).
        status: u16,
        /// Human-readable reason.
        message: String,
    },
}

/// One TEEP exchange with the TAM core, shared by `POST /tam` and the CoAP `/teep`
/// resource: an empty `body` opens a session (ProcessConnect), anything else is a TEEP
/// message (ProcessTeepMessage). `transport` is the link the message came over (it
/// selects the wire profile of an Update: `compact_transports`). Records the exchange
/// metrics and logs.
pub async fn process_teep(
    state: &AppState,
    body: &[u8],
    transport: otrp_tam::Transport,
) -> Exchange {
    let started = Instant::now();
    let mut rng = rand::rngs::OsRng;
    let result = state
        .tam
        .process_over(transport, None, body, now(), &mut rng)
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    finish_exchange(
        &TEEP_KIND,
        result,
        elapsed,
        message_kind,
        TamError::http_status,
        |e| match e {
            TamError::Attestation(a) => {
                metrics::counter!(ATTESTATION_FAILURES, "reason" => attestation_reason(a))
                    .increment(1);
            }
            TamError::MissingEvidence => {
                metrics::counter!(ATTESTATION_FAILURES, "reason" => "missing_evidence")
                    .increment(1);
            }
            _ => {}
        },
    )
}

/// The metric names and log wording of one profile's exchanges (TEEP or OTrP).
pub(crate) struct ExchangeKind {
    /// The profile's name in logs and refusal messages (`TEEP`, `OTrP`).
    pub(crate) name: &'static str,
    /// Counter of exchanges, labelled by outcome.
    pub(crate) exchanges: &'static str,
    /// Histogram of processing time, labelled by outcome.
    pub(crate) processing: &'static str,
    /// Debug log line of a reply.
    pub(crate) reply_log: &'static str,
}

/// The TEEP profile's metrics and log wording.
const TEEP_KIND: ExchangeKind = ExchangeKind {
    name: "TEEP",
    exchanges: TEEP_EXCHANGES,
    processing: TEEP_PROCESSING,
    reply_log: "TEEP reply",
};

/// Turns the core's answer to one exchange into an [`Exchange`], recording the exchange
/// counter and processing histogram (outcome: the reply's `reply_label`, `done`,
/// `refused` for 4xx or `failed` for 5xx) and logging. `on_error` records what a profile
/// counts beyond that for an error (TEEP's attestation failures).
pub(crate) fn finish_exchange<E: std::fmt::Display>(
    kind: &ExchangeKind,
    result: Result<Outcome, E>,
    elapsed: f64,
    reply_label: fn(&[u8]) -> &'static str,
    http_status: fn(&E) -> u16,
    on_error: impl FnOnce(&E),
) -> Exchange {
    let record = |outcome: &'static str| {
        metrics::counter!(kind.exchanges, "outcome" => outcome).increment(1);
        metrics::histogram!(kind.processing, "outcome" => outcome).record(elapsed);
    };
    match result {
        Ok(Outcome::Reply(bytes)) => {
            let outcome = reply_label(&bytes);
            record(outcome);
            tracing::debug!(outcome, bytes = bytes.len(), "{}", kind.reply_log);
            Exchange::Reply(bytes)
        }
        Ok(Outcome::Done) => {
            record("done");
            tracing::debug!("{} session done", kind.name);
            Exchange::Done
        }
        Err(e) => {
            let status = match http_status(&e) {
                s @ 400..=599 => s,
                _ => 500,
            };
            record(if status >= 500 { "failed" } else { "refused" });
            on_error(&e);
            if status >= 500 {
                tracing::error!(error = %e, "{} message could not be processed", kind.name);
            } else {
                tracing::info!(error = %e, "{} message refused", kind.name);
            }
            Exchange::Failed {
                status,
                message: format!("{} message refused: {e}", kind.name),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    /// A body of `chunks` chunks of `size` bytes that counts the chunks read from it.
    struct Counted {
        left: usize,
        size: usize,
        read: Arc<AtomicUsize>,
    }

    impl hyper::body::Body for Counted {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.read.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(vec![
                0u8;
                self.size
            ])))))
        }
    }

    fn counted(chunks: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let body = Body::new(Counted {
            left: chunks,
            size,
            read: read.clone(),
        });
        (body, read)
    }

    fn length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        h
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        let (body, _) = counted(4, 1000);
        let got = read_limited(&length(4000), body, 4000).await;
        assert_eq!(got.map(|b| b.len()).ok(), Some(4000));
        // Without Content-Length (chunked) too.
        let (body, _) = counted(4, 1000);
        let got = read_limited(&HeaderMap::new(), body, 4000).await;
        assert_eq!(got.map(|b| b.len()).ok(), Some(4000));
    }

    #[tokio::test]
    async fn a_small_overage_is_drained_before_413_and_the_connection_kept() {
        for headers in [length(5000), HeaderMap::new()] {
            let (body, read) = counted(5, 1000);
            let r = read_limited(&headers, body, 4000).await.err();
            let r = r.unwrap_or_else(|| Response::new(Body::empty()));
            assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert!(r.headers().get(header::CONNECTION).is_none());
            assert_eq!(read.load(Ordering::Relaxed), 5, "every chunk read");
        }
    }

    #[tokio::test]
    async fn a_body_far_above_the_limit_is_refused_unread_with_connection_close() {
        let chunk = 64 * 1024;
        let chunks = (4000 + DRAIN_BEYOND_LIMIT as usize) / chunk + 2;
        // Declared: nothing is read.
        let (body, read) = counted(chunks, chunk);
        let r = read_limited(&length(chunks * chunk), body, 4000)
            .await
            .err();
        let r = r.unwrap_or_else(|| Response::new(Body::empty()));
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers().get(header::CONNECTION).unwrap(), "close");
        assert_eq!(read.load(Ordering::Relaxed), 0);
        // Chunked: reading stops once the drain allowance is used up.
        let (body, read) = counted(chunks, chunk);
        let r = read_limited(&HeaderMap::new(), body, 4000).await.err();
        let r = r.unwrap_or_else(|| Response::new(Body::empty()));
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.headers().get(header::CONNECTION).unwrap(), "close");
        assert!(read.load(Ordering::Relaxed) < chunks);
    }

    #[test]
    fn accept_ranges() {
        assert!(accepts_teep("application/teep+cbor"));
        assert!(accepts_teep("text/html, application/*;q=0.5"));
        assert!(accepts_teep("*/*"));
        assert!(!accepts_teep("application/json"));
        assert!(!accepts_teep("application/teep+cbor;q=0"));
    }
}
