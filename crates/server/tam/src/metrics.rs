//! Prometheus metrics (names prefixed `otrp_`), rendered at `/metrics`.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `otrp_http_requests_total` | counter | `route`, `method`, `status` |
//! | `otrp_http_request_duration_seconds` | histogram | `route` |
//! | `otrp_teep_exchanges_total` | counter | `outcome` = `query_request` \| `update` \| `done` \| `refused` \| `failed` |
//! | `otrp_teep_processing_seconds` | histogram | `outcome` |
//! | `otrp_otrp_exchanges_total` | counter | `outcome` = `get_device_state` \| `create_sd` \| `update_sd` \| `delete_sd` \| `install_ta` \| `update_ta` \| `delete_ta` \| `done` \| `refused` \| `failed` |
//! | `otrp_otrp_processing_seconds` | histogram | `outcome` |
//! | `otrp_attestation_failures_total` | counter | `reason` |
//! | `otrp_admin_actions_total` | counter | `action`, `result` |
//! | `otrp_coap_held_bytes` | gauge | `endpoint` (the CoAP listen address) |
//! | `otrp_coap_busy_refusals_total` | counter | `endpoint` |
//!
//! One process-wide recorder is installed on first use (tests start several servers in
//! one process; their counts add up).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP request counter.
pub const HTTP_REQUESTS: &str = "otrp_http_requests_total";
/// HTTP latency histogram.
pub const HTTP_DURATION: &str = "otrp_http_request_duration_seconds";
/// TEEP exchange counter.
pub const TEEP_EXCHANGES: &str = "otrp_teep_exchanges_total";
/// TEEP core processing latency.
pub const TEEP_PROCESSING: &str = "otrp_teep_processing_seconds";
/// OTrP JSON exchange counter.
pub const OTRP_EXCHANGES: &str = "otrp_otrp_exchanges_total";
/// OTrP session core processing latency.
pub const OTRP_PROCESSING: &str = "otrp_otrp_processing_seconds";
/// Attestation failures.
pub const ATTESTATION_FAILURES: &str = "otrp_attestation_failures_total";
/// Admin actions.
pub const ADMIN_ACTIONS: &str = "otrp_admin_actions_total";
/// Bytes the CoAP endpoint holds for exchanges in progress.
pub const COAP_HELD_BYTES: &str = "otrp_coap_held_bytes";
/// CoAP requests answered 5.03 because the endpoint held `coap_max_held_bytes`.
pub const COAP_BUSY_REFUSALS: &str = "otrp_coap_busy_refusals_total";

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus handle (None if another recorder was installed first).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status");
            metrics::describe_histogram!(
                HTTP_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency by route"
            );
            metrics::describe_counter!(TEEP_EXCHANGES, "TEEP messages processed by outcome");
            metrics::describe_histogram!(
                TEEP_PROCESSING,
                metrics::Unit::Seconds,
                "TAM core processing time of one TEEP message"
            );
            metrics::describe_counter!(OTRP_EXCHANGES, "OTrP JSON messages processed by outcome");
            metrics::describe_histogram!(
                OTRP_PROCESSING,
                metrics::Unit::Seconds,
                "TAM core processing time of one OTrP message"
            );
            metrics::describe_counter!(ATTESTATION_FAILURES, "refused evidence by reason");
            metrics::describe_counter!(ADMIN_ACTIONS, "admin API actions by result");
            metrics::describe_gauge!(
                COAP_HELD_BYTES,
                metrics::Unit::Bytes,
                "bytes the CoAP endpoint holds for exchanges in progress (bound: coap_max_held_bytes)"
            );
            metrics::describe_counter!(
                COAP_BUSY_REFUSALS,
                "CoAP requests answered 5.03 because the endpoint held coap_max_held_bytes"
            );
            Some(handle)
        })
        .as_ref()
}

/// The text exposition.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}
