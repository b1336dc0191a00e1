//! The TEE glue and daemon of OpenTrust: what turns a provisioned device directory into a
//! running (simulated) TEE that a Broker and Client Apps talk to.
//!
//! * [`Tee`] boots a device: unseals the factory state (`sealed-state.cbor` with
//!   `efuse.key`, via `otrp-pki`), opens the platform's sealed store (`DEVDIR/tee-store`),
//!   makes or loads the Agent's TEEP key inside it, validates the TAM certificates it is
//!   told to trust against the sealed TAM roots, and runs the TEEP [`otrp_agent::Agent`]
//!   with an [`otrp_agent::EatAttester`] over the device's TEE key (x5chain, TFW
//!   endorsement, measurement of [`TEE_IMAGE`]).
//! * [`PlatformStore`] is the Agent's store on the platform's crash-safe transactions:
//!   one Update = one journaled transaction that also installs, updates or removes the TA
//!   in the TA runtime — after a crash at any point the old TA or the new one, never a mix.
//! * OTrP (JSON/JOSE) runs on the same store: [`Tee::process_otrp_message`]
//!   (ProcessOtrpMessage) drives an [`otrp_agent::OtrpAgent`] built from the device's TEE
//!   key and certificate, its TFW key and the trusted TAMs' certificates (their `tamid`).
//! * TAs the Agent installed run in the `wasmi` runtime ([`Tee::open_session`],
//!   [`Tee::invoke`]).
//! * [`server::serve`] serves the framed local protocol ([`proto`]: length-prefixed CBOR
//!   over a unix socket), [`TeeClient`] is its client (Broker, `otrp client`).
//!
//! ```no_run
//! # async fn run() -> Result<(), otrp_tee_daemon::TeeError> {
//! use std::sync::{Arc, Mutex};
//! use otrp_tee_daemon::{server, Tee, TeeOptions, TamCert};
//! let opts = TeeOptions {
//!     tams: vec![TamCert::from_file("pki/issued/tam/tam.chain.pem".as_ref(), false)?],
//!     ..TeeOptions::default()
//! };
//! let tee = Arc::new(Mutex::new(Tee::open_device_dir("dev0".as_ref(), &opts)?));
//! let path = std::path::PathBuf::from("/tmp/dev0.sock");
//! let listener = server::bind(&path)?;
//! let stop = async { /* e.g. tokio::signal::ctrl_c() */ };
//! server::serve(tee, listener, path, stop).await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod proto;
pub mod server;
pub mod store;
mod tee;

pub use client::{parse_unix_addr, TeeClient};
pub use error::TeeError;
pub use store::{component_label, os_component_id, ta_id_for, PlatformStore};
pub use tee::{
    component_from_name, model_class_id, tee_measurement, unix_now, BatchApplied, BatchStatus,
    ComponentStatus, ManifestStatus, OtrpBatchApplied, OtrpBatchStatus, PendingBatchReport,
    PendingOtrpBatchResult, TamCert, Tee, TeeCrypto, TeeEvent, TeeOptions, TeeStatus, TeepReply,
    OTRP_TEE_NAME, STORE_DIR, TEE_IMAGE,
};
