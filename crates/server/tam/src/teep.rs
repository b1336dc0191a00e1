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
//! * Bodies larger than `max_teep_body_bytes` get **413**.
//! * Every response carries `X-Content-Type-Options: nosniff`,
//!   `Content-Security-Policy: default-src 'none'` and `Referrer-Policy: no-referrer`
//!   (§4); no cookies, no redirects, and no `Cache-Control` (§4 of the draft says it is
//!   not to be used: POST answers are not cacheable anyway).
//! * The device is identified per session by the token and the Agent's signature (the
//!   TAM core never trusts a client-supplied id); no device hint is taken from HTTP.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
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

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
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

/// Reads the body up to `limit` bytes; `Err(413 response)` beyond it.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = src {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            src = s.source();
        }
        plain(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
    })
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
    match process_teep(&state, &body).await {
        Exchange::Reply(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEEP_CBOR));
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
/// message (ProcessTeepMessage). Records the exchange metrics and logs.
pub async fn process_teep(state: &AppState, body: &[u8]) -> Exchange {
    let started = Instant::now();
    let mut rng = rand::rngs::OsRng;
    let result = state.tam.process(None, body, now(), &mut rng).await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(Outcome::Reply(bytes)) => {
            let outcome = message_kind(&bytes);
            metrics::counter!(TEEP_EXCHANGES, "outcome" => outcome).increment(1);
            metrics::histogram!(TEEP_PROCESSING, "outcome" => outcome).record(elapsed);
            tracing::debug!(outcome, bytes = bytes.len(), "TEEP reply");
            Exchange::Reply(bytes)
        }
        Ok(Outcome::Done) => {
            metrics::counter!(TEEP_EXCHANGES, "outcome" => "done").increment(1);
            metrics::histogram!(TEEP_PROCESSING, "outcome" => "done").record(elapsed);
            tracing::debug!("TEEP session done");
            Exchange::Done
        }
        Err(e) => {
            let status = match e.http_status() {
                s @ 400..=599 => s,
                _ => 500,
            };
            let outcome = if status >= 500 { "failed" } else { "refused" };
            metrics::counter!(TEEP_EXCHANGES, "outcome" => outcome).increment(1);
            metrics::histogram!(TEEP_PROCESSING, "outcome" => outcome).record(elapsed);
            match &e {
                TamError::Attestation(a) => {
                    metrics::counter!(ATTESTATION_FAILURES, "reason" => attestation_reason(a))
                        .increment(1);
                }
                TamError::MissingEvidence => {
                    metrics::counter!(ATTESTATION_FAILURES, "reason" => "missing_evidence")
                        .increment(1);
                }
                _ => {}
            }
            if status >= 500 {
                tracing::error!(error = %e, "TEEP message could not be processed");
            } else {
                tracing::info!(error = %e, "TEEP message refused");
            }
            Exchange::Failed {
                status,
                message: format!("TEEP message refused: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accepts_teep;

    #[test]
    fn accept_ranges() {
        assert!(accepts_teep("application/teep+cbor"));
        assert!(accepts_teep("text/html, application/*;q=0.5"));
        assert!(accepts_teep("*/*"));
        assert!(!accepts_teep("application/json"));
        assert!(!accepts_teep("application/teep+cbor;q=0"));
    }
}
