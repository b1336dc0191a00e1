//! The OpenTrust TEEP Broker: the rich-OS program that relays TEEP messages between a TAM
//! and the device's TEE (RFC 9397 §6, draft-ietf-teep-otrp-over-http).
//!
//! * [`run_session`] is one device-initiated session: an empty POST opens it, each TAM
//!   message goes to the TEE untouched (ProcessTeepMessage), each TEE reply goes back to
//!   the TAM, until 204. URIs the Agent needs (NeedFetch) are fetched with the same HTTP
//!   client and handed back. Nothing is ever resent (see [`run_session`] for why an
//!   Update can never apply twice).
//! * [`Broker`] runs sessions for one TEE daemon: at start, every interval (with jitter),
//!   and on demand when a Client App calls RequestTA/UnrequestTA (the daemon's
//!   RequestPolicyCheck long-poll); after a failure it backs off exponentially with a cap,
//!   and it reconnects to a restarted TEE daemon or TAM.
//! * A `coap://HOST:PORT/teep` TAM URL runs the same sessions over CoAP (`otrp-coap`,
//!   block-wise, confirmable with retransmission); see [`Http`].
//! * [`Http`] is the HTTP(S) side (reqwest + rustls, trusting only `--tam-ca` when given,
//!   no redirects, no cookies), shared by any number of devices (the fleet).
//! * [`batch`]: batch mode — when the TEE belongs to a batch, the Broker fetches the
//!   batch package (`GET /tam/batch/<id>`, If-None-Match), hands a new one to the TEE and
//!   POSTs the Agent's queued reports, after every session.
//! * [`otrp_batch`]: the OTrP batch command package — with [`Profile::Otrp`], when the
//!   TEE has a model key, the Broker fetches `GET /tam/otrp-batch/<model>`
//!   (If-None-Match), hands a new package to the TEE and POSTs its signed results.
//! * [`mini_tam`] is a minimal TAM for tests and demos.
//! * With [`Profile::Otrp`] ([`BrokerConfig::profile`]) the Broker speaks OTrP JSON
//!   (`application/otrp+json`) over HTTP(S) instead: [`run_otrp_session`] ([`otrp`]).
#![forbid(unsafe_code)]

pub mod batch;
mod broker;
pub mod mini_tam;
pub mod otrp;
pub mod otrp_batch;
mod session;

pub use batch::{batch_round, batch_url, BatchLink, BatchRound, BatchState};
pub use broker::{Broker, BrokerConfig};
pub use otrp::{run_otrp_session, OtrpLink, Profile, OTRP_JSON};
pub use otrp_batch::{
    otrp_batch_round, otrp_batch_url, OtrpBatchLink, OtrpBatchRound, OtrpBatchState,
};
pub use session::{
    is_coap_url, run_session, Backoff, Http, LocalTee, NetSim, SessionReport, TeeLink, MAX_BODY,
    MAX_ROUND_TRIPS, TEEP_CBOR,
};

/// What went wrong in a session.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Configuration (CA file, HTTP client).
    #[error("configuration: {0}")]
    Config(String),
    /// The TAM could not be reached or answered badly.
    #[error("TAM: {0}")]
    Tam(String),
    /// The TEE could not be reached or failed.
    #[error("TEE: {0}")]
    Tee(#[source] otrp_tee_daemon::TeeError),
    /// A URI the Agent asked for could not be fetched.
    #[error("fetch: {0}")]
    Fetch(String),
}
