//! A client of the local protocol: what the Broker and `otrp client` use to reach the TEE.

use std::path::{Path, PathBuf};

use otrp_suit::ComponentId;
use tokio::net::UnixStream;

use crate::proto::{read_frame, write_frame, Request, Response, WireComponentId};
use crate::tee::{
    BatchApplied, BatchStatus, OtrpBatchApplied, OtrpBatchStatus, PendingBatchReport,
    PendingOtrpBatchResult, TeeStatus, TeepReply,
};
use crate::TeeError;

/// Parses a `unix:PATH` address (a bare path is accepted too).
pub fn parse_unix_addr(addr: &str) -> PathBuf {
    PathBuf::from(addr.strip_prefix("unix:").unwrap_or(addr))
}

fn wire(id: &ComponentId) -> WireComponentId {
    id.segments()
        .iter()
        .map(|s| serde_bytes::ByteBuf::from(s.clone()))
        .collect()
}

/// One connection to the TEE daemon.
#[derive(Debug)]
pub struct TeeClient {
    stream: UnixStream,
}

impl TeeClient {
    /// Connects to the daemon's socket.
    pub async fn connect(path: &Path) -> Result<TeeClient, TeeError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(TeeError::Connection)?;
        Ok(TeeClient { stream })
    }

    /// Sends one request and reads its response; a TEE-side failure is
    /// [`TeeError::Remote`].
    pub async fn call(&mut self, req: &Request) -> Result<Response, TeeError> {
        write_frame(&mut self.stream, req).await?;
        match read_frame::<_, Response>(&mut self.stream).await? {
            Some(Response::Error { code, message }) => Err(TeeError::Remote { code, message }),
            Some(r) => Ok(r),
            None => Err(TeeError::Connection(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the TEE closed the connection",
            ))),
        }
    }

    fn unexpected(r: Response) -> TeeError {
        TeeError::Protocol(format!("unexpected response {r:?}"))
    }

    async fn teep(&mut self, req: Request) -> Result<TeepReply, TeeError> {
        match self.call(&req).await? {
            Response::Teep(r) => Ok(r),
            other => Err(Self::unexpected(other)),
        }
    }

    async fn ok(&mut self, req: Request) -> Result<(), TeeError> {
        match self.call(&req).await? {
            Response::Ok => Ok(()),
            other => Err(Self::unexpected(other)),
        }
    }

    /// ProcessTeepMessage.
    pub async fn process_teep_message(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.teep(Request::ProcessTeepMessage { message }).await
    }

    /// ProcessOtrpMessage: an OTrP request from the TAM; the reply's `send` is the
    /// TEE-signed OTrP response.
    pub async fn process_otrp_message(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.teep(Request::ProcessOtrpMessage { message }).await
    }

    /// Hands over fetched bytes.
    pub async fn provide_fetch(
        &mut self,
        uri: String,
        bytes: Vec<u8>,
    ) -> Result<TeepReply, TeeError> {
        self.teep(Request::ProvideFetch { uri, bytes }).await
    }

    /// Reports a failed fetch.
    pub async fn fetch_failed(&mut self, uri: String) -> Result<TeepReply, TeeError> {
        self.teep(Request::FetchFailed { uri }).await
    }

    /// RequestTA.
    pub async fn request_ta(&mut self, component: &ComponentId) -> Result<(), TeeError> {
        self.ok(Request::RequestTa {
            component: wire(component),
        })
        .await
    }

    /// UnrequestTA.
    pub async fn unrequest_ta(&mut self, component: &ComponentId) -> Result<(), TeeError> {
        self.ok(Request::UnrequestTa {
            component: wire(component),
        })
        .await
    }

    /// RequestPolicyCheck: waits up to `timeout_ms` for the work generation to pass
    /// `after`; returns the current generation.
    pub async fn request_policy_check(
        &mut self,
        after: u64,
        timeout_ms: u64,
    ) -> Result<u64, TeeError> {
        match self
            .call(&Request::RequestPolicyCheck { after, timeout_ms })
            .await?
        {
            Response::Work { seq } => Ok(seq),
            other => Err(Self::unexpected(other)),
        }
    }

    /// ProcessError.
    pub async fn process_error(&mut self, detail: String) -> Result<(), TeeError> {
        self.ok(Request::ProcessError { detail }).await
    }

    /// Opens a session with a TA.
    pub async fn open_session(&mut self, ta: &str) -> Result<u64, TeeError> {
        match self.call(&Request::OpenSession { ta: ta.into() }).await? {
            Response::Session { session } => Ok(session),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Invokes a command.
    pub async fn invoke(
        &mut self,
        session: u64,
        cmd: u32,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, TeeError> {
        match self.call(&Request::Invoke { session, cmd, data }).await? {
            Response::Output { data } => Ok(data),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Closes a session.
    pub async fn close_session(&mut self, session: u64) -> Result<(), TeeError> {
        self.ok(Request::CloseSession { session }).await
    }

    /// Opens a session, invokes once, closes it.
    pub async fn invoke_once(
        &mut self,
        ta: &str,
        cmd: u32,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, TeeError> {
        let s = self.open_session(ta).await?;
        let out = self.invoke(s, cmd, data).await;
        let closed = self.close_session(s).await;
        let out = out?;
        match closed {
            Ok(()) | Err(TeeError::Remote { .. }) => Ok(out),
            Err(e) => Err(e),
        }
    }

    /// The TEE's status.
    pub async fn status(&mut self) -> Result<TeeStatus, TeeError> {
        match self.call(&Request::Status).await? {
            Response::Status(s) => Ok(*s),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Batch mode: which batch this device belongs to.
    pub async fn batch_status(&mut self) -> Result<BatchStatus, TeeError> {
        match self.call(&Request::BatchStatus).await? {
            Response::Batch(b) => Ok(b),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Batch mode: applies a package fetched from the TAM (with the bytes of the URI it
    /// asked for, after `need-fetch`).
    pub async fn apply_batch(
        &mut self,
        package: Vec<u8>,
        fetched: Option<(String, Vec<u8>)>,
    ) -> Result<BatchApplied, TeeError> {
        let fetched = fetched.map(|(u, b)| (u, serde_bytes::ByteBuf::from(b)));
        match self.call(&Request::ApplyBatch { package, fetched }).await? {
            Response::BatchApplied(b) => Ok(*b),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Batch mode: the signed reports queued for the TAM.
    pub async fn batch_reports(&mut self) -> Result<Vec<PendingBatchReport>, TeeError> {
        match self.call(&Request::BatchReports).await? {
            Response::BatchReports(r) => Ok(r),
            other => Err(Self::unexpected(other)),
        }
    }

    /// Batch mode: the TAM has the report of (`batch_id`, `sequence`).
    pub async fn ack_batch_report(
        &mut self,
        batch_id: &str,
        sequence: u64,
    ) -> Result<(), TeeError> {
        match self
            .call(&Request::AckBatchReport {
                batch_id: batch_id.into(),
                sequence,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(Self::unexpected(other)),
        }
    }

    /// OTrP batch: the device's model and its OTrP batch state.
    pub async fn otrp_batch_status(&mut self) -> Result<OtrpBatchStatus, TeeError> {
        match self.call(&Request::OtrpBatchStatus).await? {
            Response::OtrpBatch(b) => Ok(b),
            other => Err(Self::unexpected(other)),
        }
    }

    /// OTrP batch: applies an `OTrPBatchPackage` fetched from the TAM.
    pub async fn apply_otrp_batch(
        &mut self,
        package: Vec<u8>,
    ) -> Result<OtrpBatchApplied, TeeError> {
        match self.call(&Request::ApplyOtrpBatch { package }).await? {
            Response::OtrpBatchApplied(b) => Ok(*b),
            other => Err(Self::unexpected(other)),
        }
    }

    /// OTrP batch: the TEE-signed results queued for the TAM.
    pub async fn otrp_batch_results(&mut self) -> Result<Vec<PendingOtrpBatchResult>, TeeError> {
        match self.call(&Request::OtrpBatchResults).await? {
            Response::OtrpBatchResults(r) => Ok(r),
            other => Err(Self::unexpected(other)),
        }
    }

    /// OTrP batch: the TAM has the result of (`pkgid`, `seq`).
    pub async fn ack_otrp_batch_result(&mut self, pkgid: &str, seq: u64) -> Result<(), TeeError> {
        match self
            .call(&Request::AckOtrpBatchResult {
                pkgid: pkgid.into(),
                seq,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(Self::unexpected(other)),
        }
    }
}
