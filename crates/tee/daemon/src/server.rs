//! The daemon: serves the local protocol ([`crate::proto`]) for one [`Tee`] on a unix
//! socket. Every request runs on tokio's blocking pool under the TEE's lock (Agent steps,
//! store commits and TA calls are synchronous); RequestPolicyCheck waits without holding
//! it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use otrp_suit::ComponentId;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::proto::{read_frame, write_frame, Request, Response, WireComponentId};
use crate::tee::{unix_now, Tee};
use crate::TeeError;

/// A [`Tee`] shared between connections.
pub type SharedTee = Arc<Mutex<Tee>>;

fn lock(tee: &SharedTee) -> MutexGuard<'_, Tee> {
    tee.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn component(c: WireComponentId) -> ComponentId {
    ComponentId(c.into_iter().map(|b| b.into_vec()).collect())
}

/// Handles one request synchronously (the server calls it on the blocking pool; tests and
/// the fleet may call it directly). RequestPolicyCheck answers at once here.
pub fn handle(tee: &mut Tee, req: Request, sessions: &mut Vec<u64>) -> Response {
    let now = unix_now();
    let result: Result<Response, TeeError> = match req {
        Request::ProcessTeepMessage { message } => {
            Ok(Response::Teep(tee.process_teep_message(&message, now)))
        }
        Request::ProcessOtrpMessage { message } => {
            tee.process_otrp_message(&message, now).map(Response::Teep)
        }
        Request::ProvideFetch { uri, bytes } => {
            Ok(Response::Teep(tee.provide_fetch(&uri, bytes, now)))
        }
        Request::FetchFailed { uri } => Ok(Response::Teep(tee.fetch_failed(&uri, now))),
        Request::RequestTa { component: c } => {
            tee.request_ta(component(c));
            Ok(Response::Ok)
        }
        Request::UnrequestTa { component: c } => {
            tee.unrequest_ta(component(c));
            Ok(Response::Ok)
        }
        Request::RequestPolicyCheck { .. } => Ok(Response::Work {
            seq: *tee.work_watch().borrow(),
        }),
        Request::ProcessError { detail } => {
            tracing::warn!(%detail, "Broker could not deliver a message to the TAM");
            Ok(Response::Ok)
        }
        Request::OpenSession { ta } => tee.open_session(&ta).map(|s| {
            sessions.push(s);
            Response::Session { session: s }
        }),
        Request::Invoke { session, cmd, data } => {
            if sessions.contains(&session) {
                tee.invoke(session, cmd, &data)
                    .map(|data| Response::Output { data })
            } else {
                Err(TeeError::NoSession(session))
            }
        }
        Request::CloseSession { session } => {
            if sessions.contains(&session) {
                sessions.retain(|s| *s != session);
                tee.close_session(session).map(|()| Response::Ok)
            } else {
                Err(TeeError::NoSession(session))
            }
        }
        Request::Status => tee.status().map(|s| Response::Status(Box::new(s))),
        Request::BatchStatus => Ok(Response::Batch(tee.batch_status())),
        Request::ApplyBatch { package, fetched } => tee
            .apply_batch(&package, fetched.map(|(u, b)| (u, b.into_vec())), now)
            .map(|r| Response::BatchApplied(Box::new(r))),
        Request::BatchReports => Ok(Response::BatchReports(tee.batch_reports())),
        Request::AckBatchReport { batch_id, sequence } => tee
            .ack_batch_report(&batch_id, sequence)
            .map(|()| Response::Ok),
        Request::OtrpBatchStatus => Ok(Response::OtrpBatch(tee.otrp_batch_status())),
        Request::ApplyOtrpBatch { package } => tee
            .apply_otrp_batch(&package, now)
            .map(|r| Response::OtrpBatchApplied(Box::new(r))),
        Request::OtrpBatchResults => Ok(Response::OtrpBatchResults(tee.otrp_batch_results())),
        Request::AckOtrpBatchResult { pkgid, seq } => tee
            .ack_otrp_batch_result(&pkgid, seq)
            .map(|()| Response::Ok),
    };
    result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "request failed");
        Response::from_error(&e)
    })
}

async fn wait_work(mut rx: watch::Receiver<u64>, after: u64, timeout_ms: u64) -> u64 {
    let wait = async {
        loop {
            if *rx.borrow_and_update() > after {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(timeout_ms), wait).await;
    let seq = *rx.borrow();
    seq
}

async fn connection(tee: SharedTee, mut stream: UnixStream, mut stop: watch::Receiver<bool>) {
    let sessions: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    loop {
        // An idle connection is cut at shutdown; a request being handled finishes.
        let next = tokio::select! {
            r = read_frame(&mut stream) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let req: Request = match next {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "closing connection");
                let _ = write_frame(&mut stream, &Response::from_error(&e)).await;
                break;
            }
        };
        let resp = if let Request::RequestPolicyCheck { after, timeout_ms } = req {
            let rx = lock(&tee).work_watch();
            Response::Work {
                seq: wait_work(rx, after, timeout_ms).await,
            }
        } else {
            let tee = tee.clone();
            let sessions = sessions.clone();
            tokio::task::spawn_blocking(move || {
                let mut s = sessions.lock().unwrap_or_else(|p| p.into_inner());
                handle(&mut lock(&tee), req, &mut s)
            })
            .await
            .unwrap_or_else(|e| Response::Error {
                code: crate::error::gp::GENERIC,
                message: format!("request task failed: {e}"),
            })
        };
        if let Err(e) = write_frame(&mut stream, &resp).await {
            tracing::debug!(error = %e, "client went away");
            break;
        }
    }
    let open: Vec<u64> = std::mem::take(&mut *sessions.lock().unwrap_or_else(|p| p.into_inner()));
    if !open.is_empty() {
        let _ = tokio::task::spawn_blocking(move || {
            let mut t = lock(&tee);
            for s in open {
                let _ = t.close_session(s);
            }
        })
        .await;
    }
}

/// Binds the unix socket at `path` (a stale socket file is replaced).
pub fn bind(path: &Path) -> Result<UnixListener, TeeError> {
    if path.exists() {
        std::fs::remove_file(path).map_err(|source| TeeError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    UnixListener::bind(path).map_err(|source| TeeError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Serves `tee` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish and removes the socket file `path`.
pub async fn serve(
    tee: SharedTee,
    listener: UnixListener,
    path: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TeeError> {
    let mut tasks = tokio::task::JoinSet::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(connection(tee.clone(), stream, stop_rx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tracing::info!("shutting down: waiting for requests in flight");
    drop(listener);
    let _ = std::fs::remove_file(&path);
    let _ = stop_tx.send(true);
    // Requests in flight finish (each is atomic at the store); idle connections are cut.
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut grace => { tasks.abort_all(); break; }
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
    Ok(())
}
