//! Thin tokio shells: a UDP socket, a clock and a task around the sans-IO cores.

use crate::client::{ClientCore, ClientError, ClientEvent, WireStats};
use crate::server::{ServerCore, ServerEvent};
use crate::{Code, Config, Request, Response};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio::net::{ToSocketAddrs, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The application behind a [`CoapServer`]: called once per complete request.
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;

/// Largest datagram we read.
const MAX_DATAGRAM: usize = 65_535;

/// What a running [`CoapServer`] holds and has refused, as of its last step
/// ([`ServerCore::held_bytes`], [`ServerCore::busy_refusals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Bytes held for exchanges in progress (bounded by [`Config::max_held_bytes`]).
    pub held_bytes: usize,
    /// Requests answered 5.03 for want of room since the server started.
    pub busy_refusals: u64,
}

#[derive(Debug, Default)]
struct SharedStats {
    held_bytes: AtomicUsize,
    busy_refusals: AtomicU64,
}

impl SharedStats {
    fn get(&self) -> ServerStats {
        ServerStats {
            held_bytes: self.held_bytes.load(Ordering::Relaxed),
            busy_refusals: self.busy_refusals.load(Ordering::Relaxed),
        }
    }
}

/// Reads a [`CoapServer`]'s [`ServerStats`] from elsewhere (a metrics task) without
/// keeping the server alive.
#[derive(Debug, Clone)]
pub struct StatsHandle(Weak<SharedStats>);

impl StatsHandle {
    /// The server's stats; `None` once it has stopped.
    pub fn get(&self) -> Option<ServerStats> {
        self.0.upgrade().map(|s| s.get())
    }
}

/// A CoAP server on a UDP socket; the TAM plugs its TEEP session processing in as the
/// [`Handler`]. Dropping it stops the server.
#[derive(Debug)]
pub struct CoapServer {
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    stats: Arc<SharedStats>,
}

impl CoapServer {
    /// Binds `addr` with the default [`Config`] and serves `handler`.
    pub async fn bind(addr: impl ToSocketAddrs, handler: Handler) -> io::Result<CoapServer> {
        Self::bind_with(addr, Config::default(), handler).await
    }

    /// Binds `addr` with `config` and serves `handler`.
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        config: Config,
        handler: Handler,
    ) -> io::Result<CoapServer> {
        let socket = UdpSocket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let stats = Arc::new(SharedStats::default());
        let task = tokio::spawn(serve(
            socket,
            ServerCore::new(config),
            handler,
            stats.clone(),
        ));
        Ok(CoapServer {
            local_addr,
            task: Some(task),
            stats,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the server holds and has refused.
    pub fn stats(&self) -> ServerStats {
        self.stats.get()
    }

    /// A handle reading [`CoapServer::stats`] until the server stops.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::downgrade(&self.stats))
    }

    /// Stops the server and waits until its socket is closed.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for CoapServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn serve(socket: UdpSocket, mut core: ServerCore, handler: Handler, stats: Arc<SharedStats>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        stats.held_bytes.store(core.held_bytes(), Ordering::Relaxed);
        stats
            .busy_refusals
            .store(core.busy_refusals(), Ordering::Relaxed);
        while let Some(t) = core.poll_transmit() {
            if let Err(e) = socket.send_to(&t.data, t.peer).await {
                tracing::debug!(peer = %t.peer, error = %e, "send failed");
            }
        }
        while let Some(ServerEvent::Request { id, request }) = core.poll_event() {
            let handler = handler.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A panicking handler still gets the request answered (5.00).
                let response = match tokio::spawn((handler)(request)).await {
                    Ok(r) => r,
                    Err(_) => Response::error(Code::InternalServerError),
                };
                let _ = tx.send((id, response));
            });
        }
        let deadline = core.poll_timeout();
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => {
                    let data = buf.get(..n).unwrap_or(&[]);
                    core.handle_datagram(peer, data, Instant::now());
                }
                Err(e) => tracing::debug!(error = %e, "recv failed"),
            },
            Some((id, response)) = rx.recv() => core.respond(id, response, Instant::now()),
            _ = sleep_until(deadline), if deadline.is_some() => core.handle_timeout(Instant::now()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// A CoAP client (the Broker's side). Each [`CoapClient::post`] uses its own ephemeral
/// UDP socket, so one client can run many exchanges concurrently.
#[derive(Debug)]
pub struct CoapClient {
    config: Config,
    rng: Mutex<ChaCha8Rng>,
}

impl CoapClient {
    /// A client with `config`; `rng` seeds tokens, message ids and retransmission jitter.
    pub fn new(config: Config, rng: &mut impl RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        CoapClient {
            config,
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// POSTs `body` to `path` at `addr` and returns the reassembled response.
    pub async fn post(
        &self,
        addr: SocketAddr,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        self.post_with_stats(addr, path, body).await.0
    }

    /// Like [`CoapClient::post`], also returning the bytes the exchange put on the wire.
    pub async fn post_with_stats(
        &self,
        addr: SocketAddr,
        path: &str,
        body: Vec<u8>,
    ) -> (Result<Response, ClientError>, WireStats) {
        self.exchange(addr, path, body, None).await
    }

    /// GETs `path` at `addr` naming the representations held (`etags`): 2.05 Content with
    /// the reassembled body and its ETag, or 2.03 Valid; also the bytes on the wire.
    pub async fn get_with_stats(
        &self,
        addr: SocketAddr,
        path: &str,
        etags: Vec<Vec<u8>>,
    ) -> (Result<Response, ClientError>, WireStats) {
        self.exchange(addr, path, Vec::new(), Some(etags)).await
    }

    async fn exchange(
        &self,
        addr: SocketAddr,
        path: &str,
        body: Vec<u8>,
        get: Option<Vec<Vec<u8>>>,
    ) -> (Result<Response, ClientError>, WireStats) {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = match UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => return (Err(ClientError::Io(e.to_string())), WireStats::default()),
        };
        let mut core = {
            let mut rng = match self.rng.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            ClientCore::new(self.config.clone(), &mut *rng)
        };
        let id = match get {
            Some(etags) => core.get(addr, path, etags, Instant::now()),
            None => core.post(addr, path, body, Instant::now()),
        };
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            while let Some(t) = core.poll_transmit() {
                if let Err(e) = socket.send_to(&t.data, t.peer).await {
                    tracing::debug!(peer = %t.peer, error = %e, "send failed");
                }
            }
            while let Some(ClientEvent::Completed {
                id: done,
                result,
                stats,
            }) = core.poll_event()
            {
                if done == id {
                    return (result, stats);
                }
            }
            let Some(deadline) = core.poll_timeout() else {
                return (
                    Err(ClientError::Protocol {
                        peer: addr,
                        what: "exchange stalled without a timer",
                    }),
                    WireStats::default(),
                );
            };
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, peer)) => {
                        let data = buf.get(..n).unwrap_or(&[]);
                        core.handle_datagram(peer, data, Instant::now());
                    }
                    Err(e) => tracing::debug!(error = %e, "recv failed"),
                },
                _ = sleep_until(Some(deadline)) => core.handle_timeout(Instant::now()),
            }
        }
    }
}
