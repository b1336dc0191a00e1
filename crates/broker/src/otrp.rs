//! The OTrP profile of the Broker: one device-initiated OTrP session over HTTP(S)
//! (draft-ietf-teep-opentrustprotocol-03 carried as draft-ietf-teep-otrp-over-http
//! carries TEEP, with `application/otrp+json`).
//!
//! An empty POST with `Accept: application/otrp+json` opens the session; the TAM answers
//! 200 with a signed OTrP request (GetDeviceStateRequest first, then CreateSD,
//! InstallTA, …), which goes to the TEE daemon untouched (ProcessOtrpMessage); the TEE's
//! signed response is POSTed back (`Content-Type: application/otrp+json`) until the TAM
//! answers 204. As the OTrP Broker (§8 of the draft), it wraps the TEE's
//! `GetDeviceTEEStateResponse` into the `GetDeviceStateResponse` array (one entry: one
//! TEE per device); every other response is relayed byte for byte. Nothing is ever
//! resent: the TAM's `rid`s are one-time at both ends.

use std::future::Future;

use otrp_tee_daemon::{unix_now, TeeClient, TeeError, TeepReply};

use crate::session::{Http, LocalTee, SessionReport, MAX_ROUND_TRIPS};
use crate::BrokerError;

/// The OTrP media type.
pub const OTRP_JSON: &str = "application/otrp+json";

/// Which protocol a Broker speaks with its TAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// TEEP (CBOR/COSE, `application/teep+cbor`), over HTTP(S) or CoAP.
    #[default]
    Teep,
    /// OTrP (JSON/JOSE, `application/otrp+json`), over HTTP(S).
    Otrp,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "teep" => Ok(Profile::Teep),
            "otrp" => Ok(Profile::Otrp),
            other => Err(format!("unknown profile `{other}` (teep or otrp)")),
        }
    }
}

/// The TEE side of an OTrP session.
pub trait OtrpLink: Send {
    /// ProcessOtrpMessage.
    fn process_otrp(
        &mut self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send;
}

impl OtrpLink for TeeClient {
    fn process_otrp(
        &mut self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send {
        self.process_otrp_message(message)
    }
}

impl OtrpLink for LocalTee {
    async fn process_otrp(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.run(move |t| t.process_otrp_message(&message, unix_now()))
            .await?
    }
}

impl Http {
    /// One OTrP POST to the TAM: `None` for 204 / empty body (session over).
    pub async fn post_otrp(
        &self,
        tam: &str,
        body: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, BrokerError> {
        if crate::is_coap_url(tam) {
            return Err(BrokerError::Config(format!(
                "{tam}: the OTrP profile runs over HTTP(S) only"
            )));
        }
        self.post_http(tam, body, OTRP_JSON, 300, || Ok(())).await
    }
}

/// Wraps a TEE's `GetDeviceTEEStateResponse` into the Broker's `GetDeviceStateResponse`
/// array; any other response goes back as it is.
pub fn to_tam(response: Vec<u8>) -> Vec<u8> {
    match otrp_json::decode_any(&response) {
        Ok(otrp_json::OtrpMessage::Response(r))
            if r.kind == otrp_json::MessageKind::GetDeviceState =>
        {
            match otrp_json::device_state_responses(std::slice::from_ref(&response)) {
                Ok(wrapped) => wrapped,
                Err(e) => {
                    tracing::warn!(error = %e, "could not wrap GetDeviceTEEStateResponse");
                    response
                }
            }
        }
        _ => response,
    }
}

/// Runs one OTrP session (see the module docs) until the TAM answers 204.
pub async fn run_otrp_session<T: OtrpLink>(
    http: &Http,
    tam: &str,
    tee: &mut T,
) -> Result<SessionReport, BrokerError> {
    let mut report = SessionReport::default();
    let mut outbound: Vec<u8> = Vec::new();
    for _ in 0..MAX_ROUND_TRIPS {
        let posted_reply = !outbound.is_empty();
        let incoming = http.post_otrp(tam, std::mem::take(&mut outbound)).await?;
        if posted_reply {
            report.tee_replies += 1;
        }
        let Some(message) = incoming else {
            return Ok(report);
        };
        report.tam_messages += 1;
        let mut reply = tee.process_otrp(message).await.map_err(BrokerError::Tee)?;
        report.events.append(&mut reply.events);
        match reply.send {
            Some(bytes) => outbound = to_tam(bytes),
            None => {
                return Err(BrokerError::Tam(
                    "the TEE did not answer the TAM's message (not a signed OTrP request)".into(),
                ))
            }
        }
    }
    Err(BrokerError::Tam(format!(
        "the TAM did not end the OTrP session within {MAX_ROUND_TRIPS} round trips"
    )))
}
