//! The OpenTrust TAM server: the I/O shell around the sans-IO TAM core (`otrp-tam`).
//!
//! * **TEEP over HTTP** at `POST /tam`, per draft-ietf-teep-otrp-over-http-15 ([`teep`]):
//!   `application/teep+cbor`, an empty body opens a session, 200 with a message, 204 when
//!   done, 415 / 406 / 413, the §4 response headers.
//! * **OTrP JSON over HTTP** at the same `POST /tam` ([`otrp`]): `application/otrp+json`
//!   runs the OTrP session core (GetDeviceState, CreateSD, InstallTA, …) over the same
//!   catalog and deployments; answered 415 with the reason when the TAM key cannot do
//!   OTrP (Ed25519, or no TAM certificate).
//! * **TEEP over CoAP** (optional, `coap_listen`) at `/teep` ([`coap`]): the same session
//!   processing over UDP with block-wise transfer (2.04 with or without payload, 4.xx/5.xx).
//! * **Admin REST API** under `/api/v1` ([`api`]) with bearer API tokens, tenancy from the
//!   core, OpenAPI at `/openapi.json`.
//! * **Security Domains** ([`sd`]): the TAM signs the SD manifests that create SDs on
//!   devices; their descriptors list the SP signers a TA of the SD may be signed by (an SP
//!   rotates them with `POST /api/v1/sds/{name}/rotate-signer`).
//! * **Reference values** ([`mod@reference`]): the verifier's accepted TEE measurements and
//!   hardware versions per model live in the store (the OEM edits them through the API);
//!   each replica caches them for at most `reference_refresh_secs`.
//! * **Batch mode** ([`batch`]): one TAM-signed package per batch of devices, published
//!   through the admin API, served (cacheable, ETag) at `GET /tam/batch/{id}` and over
//!   CoAP at `/batch/{id}`, with asynchronous device reports.
//! * **OTrP batch command package** ([`otrp_batch`], our extension): one TAM-signed
//!   `OTrPBatchPackage` per device model sharing a device key, served (cacheable, ETag)
//!   at `GET /tam/otrp-batch/{model}`, with TEE-signed `OTrPBatchResult`s counted.
//! * **Operations**: Prometheus `/metrics` ([`metrics`]), `/healthz`, `tracing` logs,
//!   HTTPS with rustls by default, graceful shutdown ([`serve`]).
//! * All state is in the store (SQLite or PostgreSQL), so several servers share a fleet
//!   and a restarted server continues every open session.
//!
//! Start one with [`serve::start`] (from a [`config::ServerConfig`]) or, in tests, with
//! [`state::AppState::with_store`] + [`serve::router`] + [`serve::spawn`].
#![forbid(unsafe_code)]

pub mod api;
pub mod batch;
pub mod coap;
pub mod config;
pub mod identity;
pub mod metrics;
pub mod otrp;
pub mod otrp_batch;
pub mod publish;
pub mod reference;
pub mod sd;
pub mod serve;
pub mod state;
pub mod teep;

pub use config::ServerConfig;
pub use identity::Identity;
pub use serve::{router, serve_until_signal, spawn, start, tls_config, RunningServer};
pub use state::{AppState, StartError};
