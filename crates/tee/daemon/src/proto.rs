//! The local protocol between the rich OS (Broker, Client Apps) and the TEE daemon.
//!
//! # Framing
//!
//! Over a unix stream socket, each frame is a 4-byte big-endian length followed by that
//! many bytes of CBOR (serde, externally tagged enums: `{"ProcessTeepMessage": {...}}`).
//! A client sends a [`Request`] and reads exactly one [`Response`]; requests on one
//! connection are answered in order. Frames over [`MAX_FRAME`] bytes are refused and the
//! connection closed. Sessions opened on a connection are closed when it closes.
//!
//! # Requests (RFC 9397 §6.2.1 conceptual Broker APIs, plus the Client API)
//!
//! | request | answer |
//! |---|---|
//! | `ProcessTeepMessage { message }` — bytes from the TAM, untouched | `Teep(TeepReply)`: the bytes to relay back, or `need_fetch`, or nothing (session over) |
//! | `ProcessOtrpMessage { message }` — an OTrP JSON request from the TAM, untouched | `Teep(TeepReply)`: the TEE-signed OTrP response to relay (`send`), and events |
//! | `ProvideFetch { uri, bytes }` / `FetchFailed { uri }` | `Teep(TeepReply)` |
//! | `RequestTa { component }` / `UnrequestTa { component }` | `Ok` |
//! | `RequestPolicyCheck { after, timeout_ms }` — wait until RequestTA/UnrequestTA moved the work generation past `after` (or the timeout) | `Work { seq }` |
//! | `ProcessError { detail }` — the Broker could not deliver to the TAM | `Ok` |
//! | `OpenSession { ta }` / `Invoke { session, cmd, data }` / `CloseSession { session }` | `Session { session }` / `Output { data }` / `Ok` |
//! | `Status` | `Status(TeeStatus)` |
//! | `BatchStatus` — which batch this device belongs to (batch mode) | `Batch(BatchStatus)` |
//! | `ApplyBatch { package, fetched }` — a package from `GET /tam/batch/<id>` | `BatchApplied(BatchApplied)` |
//! | `BatchReports` / `AckBatchReport { batch_id, sequence }` — the signed reports queued for the TAM | `BatchReports(list)` / `Ok` |
//! | `OtrpBatchStatus` — the device's model and its OTrP batch state | `OtrpBatch(OtrpBatchStatus)` |
//! | `ApplyOtrpBatch { package }` — an `OTrPBatchPackage` from `GET /tam/otrp-batch/<model>` | `OtrpBatchApplied(OtrpBatchApplied)` |
//! | `OtrpBatchResults` / `AckOtrpBatchResult { pkgid, seq }` — the TEE-signed results queued for the TAM | `OtrpBatchResults(list)` / `Ok` |
//!
//! Any failure is `Error { code, message }` with a GlobalPlatform-style code.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tee::{
    BatchApplied, BatchStatus, OtrpBatchApplied, OtrpBatchStatus, PendingBatchReport,
    PendingOtrpBatchResult, TeeStatus, TeepReply,
};
use crate::TeeError;

/// Largest frame accepted (32 MiB: a TA image plus CBOR overhead).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// A component id on the wire: its segments.
pub type WireComponentId = Vec<serde_bytes::ByteBuf>;

/// A request to the TEE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// A TEEP message from the TAM (ProcessTeepMessage).
    ProcessTeepMessage {
        /// The bytes, exactly as received.
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// An OTrP request from the TAM (`application/otrp+json`), answered with
    /// [`Response::Teep`] carrying the TEE-signed OTrP response.
    ProcessOtrpMessage {
        /// The bytes, exactly as received.
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// The bytes of a URI the Agent asked for.
    ProvideFetch {
        /// The URI.
        uri: String,
        /// Its content.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The Broker could not fetch the URI.
    FetchFailed {
        /// The URI.
        uri: String,
    },
    /// RequestTA.
    RequestTa {
        /// The component a Client App needs.
        component: WireComponentId,
    },
    /// UnrequestTA.
    UnrequestTa {
        /// The manifest a Client App no longer needs.
        component: WireComponentId,
    },
    /// RequestPolicyCheck: wait for Client App work past generation `after`.
    RequestPolicyCheck {
        /// The last generation the Broker handled.
        after: u64,
        /// How long to wait at most (0: answer at once).
        timeout_ms: u64,
    },
    /// ProcessError: the Broker could not deliver an outbound message to the TAM.
    ProcessError {
        /// What failed.
        detail: String,
    },
    /// Opens a session with a TA (by full id or unique last segment).
    OpenSession {
        /// The TA.
        ta: String,
    },
    /// Invokes a command in a session.
    Invoke {
        /// The session handle.
        session: u64,
        /// The command number.
        cmd: u32,
        /// Input bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Closes a session.
    CloseSession {
        /// The session handle.
        session: u64,
    },
    /// Asks for the TEE's status.
    Status,
    /// Batch mode: which batch this device belongs to.
    BatchStatus,
    /// Batch mode: a package fetched from the TAM, exactly as received.
    ApplyBatch {
        /// The package bytes.
        #[serde(with = "serde_bytes")]
        package: Vec<u8>,
        /// The bytes of the URI the package asked for (after `need-fetch`).
        fetched: Option<(String, serde_bytes::ByteBuf)>,
    },
    /// Batch mode: the signed reports queued for the TAM.
    BatchReports,
    /// Batch mode: the TAM has the report of (`batch_id`, `sequence`).
    AckBatchReport {
        /// Batch id.
        batch_id: String,
        /// Batch sequence number.
        sequence: u64,
    },
    /// OTrP batch: the device's model and its OTrP batch state.
    OtrpBatchStatus,
    /// OTrP batch: an `OTrPBatchPackage` fetched from the TAM, exactly as received.
    ApplyOtrpBatch {
        /// The package bytes.
        #[serde(with = "serde_bytes")]
        package: Vec<u8>,
    },
    /// OTrP batch: the TEE-signed results queued for the TAM.
    OtrpBatchResults,
    /// OTrP batch: the TAM has the result of (`pkgid`, `seq`).
    AckOtrpBatchResult {
        /// Package id (the model).
        pkgid: String,
        /// The package's `seq`.
        seq: u64,
    },
}

/// The TEE's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// The Agent's answer to a TEEP message or a fetch hand-over.
    Teep(TeepReply),
    /// The current work generation.
    Work {
        /// Generation of RequestTA / UnrequestTA calls.
        seq: u64,
    },
    /// A session was opened.
    Session {
        /// Its handle.
        session: u64,
    },
    /// A TA's output.
    Output {
        /// The bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The TEE's status.
    Status(Box<TeeStatus>),
    /// The device's batch.
    Batch(BatchStatus),
    /// What a batch package did.
    BatchApplied(Box<BatchApplied>),
    /// Queued batch reports.
    BatchReports(Vec<PendingBatchReport>),
    /// The device's OTrP batch state.
    OtrpBatch(OtrpBatchStatus),
    /// What an OTrP batch package did.
    OtrpBatchApplied(Box<OtrpBatchApplied>),
    /// Queued OTrP batch results.
    OtrpBatchResults(Vec<PendingOtrpBatchResult>),
    /// The request failed.
    Error {
        /// GlobalPlatform-style result code.
        code: u32,
        /// What went wrong.
        message: String,
    },
}

impl Response {
    /// The error response for `e`.
    pub fn from_error(e: &TeeError) -> Response {
        Response::Error {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Encodes a value as one frame.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, TeeError> {
    let mut body = vec![0u8; 4];
    ciborium::ser::into_writer(value, &mut body)
        .map_err(|e| TeeError::Protocol(format!("encode: {e}")))?;
    let len = body.len() - 4;
    if len > MAX_FRAME {
        return Err(TeeError::Protocol(format!(
            "frame of {len} bytes over the {MAX_FRAME}-byte limit"
        )));
    }
    let len32 = u32::try_from(len).map_err(|_| TeeError::Protocol("frame too large".into()))?;
    body.splice(0..4, len32.to_be_bytes());
    Ok(body)
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> Result<(), TeeError> {
    let bytes = encode_frame(value)?;
    w.write_all(&bytes).await.map_err(TeeError::Connection)?;
    w.flush().await.map_err(TeeError::Connection)
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<Option<T>, TeeError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(TeeError::Connection(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(TeeError::Protocol(format!(
            "frame of {len} bytes over the {MAX_FRAME}-byte limit"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(TeeError::Connection)?;
    ciborium::de::from_reader(body.as_slice())
        .map(Some)
        .map_err(|e| TeeError::Protocol(format!("decode: {e}")))
}
