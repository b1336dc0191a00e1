//! OTrP over HTTP, the TAM side: `POST /tam` with `application/otrp+json` runs the OTrP
//! session core ([`otrp_tam::OtrpSession`], draft-ietf-teep-opentrustprotocol-03) the
//! way [`crate::teep`] runs TEEP, following draft-ietf-teep-otrp-over-http with the OTrP
//! media type in place of `application/teep+cbor`.
//!
//! # Which profile a request gets
//!
//! * `Content-Type: application/otrp+json` (empty body or not) is OTrP.
//! * A request without `Content-Type` whose `Accept` names `application/otrp+json`
//!   explicitly (q > 0) and does not name `application/teep+cbor` is OTrP: this is how
//!   the Broker opens an OTrP session (an empty POST, as TEEP's ProcessConnect). Wildcard
//!   `Accept` values (`*/*`, `application/*`) and everything else stay TEEP, unchanged.
//!
//! # The exchange
//!
//! * An OTrP request must accept `application/otrp+json` (`Accept` with that type,
//!   `application/*` or `*/*`), else **406**; a non-empty body must be
//!   `Content-Type: application/otrp+json`, else **415**; bodies over
//!   `max_teep_body_bytes` get **413**.
//! * An empty body opens a session: **200** with the TAM-signed `GetDeviceStateRequest`.
//!   A non-empty body is the Broker's relay of the TEE's response (the
//!   `GetDeviceStateResponse` array or an `xyzResponse`): **200** with the next command
//!   (CreateSD, InstallTA, UpdateTA, DeleteTA, DeleteSD), or **204** when nothing is left
//!   to do. Refused input is **400**, the TAM's own failure **500**
//!   ([`otrp_tam::OtrpError::http_status`]); a replayed response is refused and nothing
//!   is recorded.
//! * Answers carry the §4 security headers of [`crate::teep::security_headers`].
//! * When the TAM's identity cannot do OTrP (an Ed25519 signing key: JOSE key transport
//!   needs P-256 or RSA; no TAM certificate to send as `x5c` or no `tamid` in it), OTrP
//!   requests are answered **415** with the reason, and TEEP is served as before.
//!
//! # Configuration
//!
//! The [`otrp_tam::OtrpTamConfig`] is built from the server's identity and
//! configuration ([`session_config`]): the TAM signing key and its certificate chain
//! (`--pki DIR`, or `signing_key` + `signing_cert`), the `tamid` from that certificate,
//! the TEE and TFW roots already loaded for TEEP attestation, `require_tfw_endorsement`
//! (a DSI without `tfwdata` is then refused), `token_ttl_secs` as the lifetime of a
//! request, and `[[otrp_oem_authorization]]` entries. SPs register their TA-signer
//! certificate (`spcert` of CreateSD) with `POST /api/v1/sp/certs`; the leaf of the
//! signer chain given at `POST /api/v1/sds` is registered too.
//!
//! Metrics: `otrp_otrp_exchanges_total{outcome}` (`outcome` = the command sent:
//! `get_device_state`, `create_sd`, `update_sd`, `delete_sd`, `install_ta`, `update_ta`,
//! `delete_ta`; or `done`, `refused`, `failed`) and `otrp_otrp_processing_seconds`.

use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use otrp_crypto::PrivateKey;
use otrp_json::{LegacyMode, MessageKind, OtrpMessage};
use otrp_pki::cert::CertInfo;
use otrp_store::SpCertRecord;
use otrp_tam::OtrpTamConfig;

use crate::config::ServerConfig;
use crate::identity::Identity;
use crate::metrics::{OTRP_EXCHANGES, OTRP_PROCESSING};
use crate::state::{now, AppState};
use crate::teep::{
    exchange_response, finish_exchange, plain, read_limited, Exchange, ExchangeKind, OTRP_JSON,
    TEEP_CBOR,
};

/// The OTrP session configuration of this server, or why it cannot serve OTrP.
pub fn session_config(
    identity: &Identity,
    config: &ServerConfig,
    oem_authorizations: Vec<(String, Vec<u8>)>,
) -> Result<OtrpTamConfig, String> {
    if let PrivateKey::Ed25519(_) = identity.signing_key {
        return Err(
            "the TAM signing key is Ed25519; OTrP (JOSE) needs a P-256 or RSA key \
                    (JWS signature and ECDH-ES / RSA-OAEP key transport)"
                .into(),
        );
    }
    let leaf = identity.tam_chain.first().ok_or_else(|| {
        "no TAM certificate: OTrP sends it as x5c and takes the tamid from it; start the \
         TAM with --pki DIR or give signing_cert (PEM chain of signing_key)"
            .to_string()
    })?;
    let info = CertInfo::from_der(leaf).map_err(|e| format!("TAM certificate: {e}"))?;
    let cert_key = info
        .public_key()
        .map_err(|e| format!("TAM certificate: {e}"))?;
    if cert_key != identity.signing_key.public_key() {
        return Err("the TAM certificate (signing_cert) is not the signing key's".into());
    }
    let tamid = info.tamid.ok_or_else(|| {
        "the TAM certificate carries no tamid (SAN URI urn:otrp:tamid:<id>); issue it with \
         `otrp pki issue --kind tam`"
            .to_string()
    })?;
    Ok(OtrpTamConfig {
        key: identity.signing_key.clone(),
        chain: identity.tam_chain.clone(),
        tamid,
        tee_roots: identity.tee_roots.clone(),
        tfw_roots: identity.tfw_roots.clone(),
        require_tfw: config.require_tfw_endorsement,
        request_ttl: config.token_ttl_secs,
        legacy: LegacyMode::Deny,
        oem_authorizations,
    })
}

/// The q > 0 media ranges of an `Accept` value, lower-cased.
fn ranges(accept: &str) -> impl Iterator<Item = String> + '_ {
    accept.split(',').filter_map(|range| {
        let mut parts = range.split(';');
        let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q_zero = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (!q_zero && !mt.is_empty()).then_some(mt)
    })
}

/// Whether an `Accept` value admits `application/otrp+json` (q > 0).
pub fn accepts_otrp(accept: &str) -> bool {
    ranges(accept).any(|mt| mt == OTRP_JSON || mt == "application/*" || mt == "*/*")
}

/// Whether a request is for the OTrP profile (see the module docs): its media type is
/// `application/otrp+json`, or it has none and its `Accept` names OTrP and not TEEP.
pub fn selects_otrp(headers: &HeaderMap, content_type: Option<&str>) -> bool {
    match content_type {
        Some(ct) => ct == OTRP_JSON,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                let named: Vec<String> = ranges(a).collect();
                named.iter().any(|m| m == OTRP_JSON) && !named.iter().any(|m| m == TEEP_CBOR)
            }),
    }
}

/// `POST /tam` for a request [`selects_otrp`] chose.
pub async fn post_otrp(
    state: &AppState,
    headers: &HeaderMap,
    content_type: Option<&str>,
    body: Body,
) -> Response {
    if let Err(why) = &state.otrp {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "application/otrp+json is not served by this TAM: {why}; send TEEP messages \
                 as application/teep+cbor"
            ),
        );
    }
    let accept_ok = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_otrp);
    if !accept_ok {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "an OTrP request must carry `Accept: application/otrp+json`",
        );
    }
    let body = match read_limited(headers, body, state.config.max_teep_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !body.is_empty() && content_type != Some(OTRP_JSON) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type must be {OTRP_JSON} (got {})",
                content_type.unwrap_or("none")
            ),
        );
    }
    exchange_response(process_otrp(state, &body).await, OTRP_JSON)
}

/// The metrics label of the command a reply carries.
fn command_label(bytes: &[u8]) -> &'static str {
    match otrp_json::decode_any(bytes) {
        Ok(OtrpMessage::Request(r)) => match r.kind {
            MessageKind::GetDeviceState => "get_device_state",
            MessageKind::CreateSd => "create_sd",
            MessageKind::UpdateSd => "update_sd",
            MessageKind::DeleteSd => "delete_sd",
            MessageKind::InstallTa => "install_ta",
            MessageKind::UpdateTa => "update_ta",
            MessageKind::DeleteTa => "delete_ta",
        },
        _ => "other",
    }
}

/// One OTrP exchange with the session core: an empty `body` opens a session, anything
/// else is a TEE response relayed by the Broker. Records the metrics and logs.
pub async fn process_otrp(state: &AppState, body: &[u8]) -> Exchange {
    let Ok(session) = &state.otrp else {
        return Exchange::Failed {
            status: 415,
            message: "OTrP is not served by this TAM".into(),
        };
    };
    let started = Instant::now();
    let mut rng = rand::rngs::OsRng;
    let result = session.process_otrp(None, body, now(), &mut rng).await;
    let elapsed = started.elapsed().as_secs_f64();
    finish_exchange(
        &OTRP_KIND,
        result,
        elapsed,
        command_label,
        |e| e.http_status(),
        |_| {},
    )
}

/// The OTrP profile's metrics and log wording.
const OTRP_KIND: ExchangeKind = ExchangeKind {
    name: "OTrP",
    exchanges: OTRP_EXCHANGES,
    processing: OTRP_PROCESSING,
    reply_log: "OTrP request sent",
};

/// Registers an SP's TA-signer certificate (DER), the `spcert` its OTrP SDs are created
/// with (idempotent).
pub async fn register_sp_cert(
    state: &AppState,
    sp_id: &str,
    cert_der: &[u8],
) -> Result<(), otrp_store::StoreError> {
    state
        .store
        .add_sp_cert(&SpCertRecord {
            sp_id: sp_id.into(),
            cert: cert_der.to_vec(),
            created_at: now(),
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(accept) {
            m.insert(header::ACCEPT, v);
        }
        m
    }

    #[test]
    fn profile_selection() {
        assert!(selects_otrp(&h("*/*"), Some(OTRP_JSON)));
        assert!(selects_otrp(&h("application/otrp+json"), None));
        assert!(!selects_otrp(
            &h("application/otrp+json, application/teep+cbor"),
            None
        ));
        assert!(!selects_otrp(&h("*/*"), None));
        assert!(!selects_otrp(&h("application/otrp+json;q=0"), None));
        assert!(!selects_otrp(&h("application/otrp+json"), Some(TEEP_CBOR)));
        assert!(accepts_otrp("application/*"));
        assert!(!accepts_otrp("application/teep+cbor"));
    }
}
