//! The HTTP(S) shell: routes, request metrics, TLS (rustls, ring), graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use utoipa::OpenApi;

use crate::api;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS};
use crate::state::{now, AppState, StartError};
use crate::teep::{self, TAM_PATH};

async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    if route == TAM_PATH {
        // Also on 405 and 413 answers produced outside the handler.
        teep::security_headers(resp.headers_mut());
    }
    resp
}

async fn healthz(State(s): State<Arc<AppState>>) -> Response {
    match s.store.audit(1).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text() -> Response {
    let mut r = crate::metrics::render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = api::ApiDoc::openapi();
    doc.merge(crate::batch::BatchApiDoc::openapi());
    doc.merge(crate::otrp_batch::OtrpBatchApiDoc::openapi());
    Json(doc)
}

/// The whole router: `POST /tam`, `/api/v1/…`, batch mode (`/tam/batch/…`, [`crate::batch`]),
/// `/openapi.json`, `/healthz`, `/metrics`.
pub fn router(state: Arc<AppState>) -> Router {
    crate::metrics::handle();
    let api_limit = state.config.max_api_body_bytes;
    Router::new()
        .route(TAM_PATH, post(teep::post_tam))
        .merge(api::routes().layer(DefaultBodyLimit::max(api_limit)))
        .merge(crate::batch::routes().layer(DefaultBodyLimit::max(api_limit)))
        .merge(crate::otrp_batch::routes().layer(DefaultBodyLimit::max(api_limit)))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route_layer(middleware::from_fn(track))
        .with_state(state)
}

/// The rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN h2 and
/// http/1.1) for the identity's TLS chain.
pub fn tls_config(
    identity: &crate::identity::Identity,
) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let (chain, key) = identity.tls.as_ref().ok_or_else(|| {
        StartError::Tls(
            "no TLS certificate: pass --pki DIR or --cert/--key, or --plain-http to serve HTTP"
                .into(),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| StartError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    coap: Option<otrp_coap::CoapServer>,
}

impl RunningServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://…`).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The TAM URI.
    pub fn tam_url(&self) -> String {
        format!("{}{TAM_PATH}", self.base_url())
    }

    /// Adds a CoAP listener (see [`crate::coap`]) that stops with this server.
    pub fn with_coap(mut self, coap: otrp_coap::CoapServer) -> RunningServer {
        self.coap = Some(coap);
        self
    }

    /// The CoAP listener's address, when TEEP is also served over CoAP.
    pub fn coap_addr(&self) -> Option<SocketAddr> {
        self.coap.as_ref().map(otrp_coap::CoapServer::local_addr)
    }

    /// The CoAP TAM URI (`coap://ADDR/teep`), when TEEP is also served over CoAP.
    pub fn coap_url(&self) -> Option<String> {
        self.coap_addr()
            .map(|a| format!("coap://{a}{}", otrp_coap::TEEP_PATH))
    }

    /// Stops accepting, lets open requests finish (at most `grace`), then returns.
    pub async fn shutdown(mut self, grace: Duration) {
        if let Some(coap) = self.coap.take() {
            coap.shutdown().await;
        }
        let _ = self.shutdown.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] from elsewhere, or a
    /// signal handled by [`serve_until_signal`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that triggers the shutdown.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Serves `router` on `listener` (TLS when `tls` is given) until shutdown.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<RunningServer> {
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let is_tls = tls.is_some();
    let acceptor = tls.map(TlsAcceptor::from);
    let task = tokio::spawn(accept_loop(listener, router, acceptor, rx));
    Ok(RunningServer {
        addr,
        tls: is_tls,
        shutdown: tx,
        task,
        coap: None,
    })
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    acceptor: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        let rx = shutdown.clone();
        conns.spawn(async move {
            match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    Ok(tls) => serve_conn(TokioIo::new(tls), svc, rx).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
                None => serve_conn(TokioIo::new(stream), svc, rx).await,
            }
        });
    }
    drop(listener);
    // Let open connections finish their requests.
    while conns.join_next().await.is_some() {}
}

async fn serve_conn<I>(io: I, svc: TowerToHyperService<Router>, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                if changed.is_err() {
                    // Sender gone: finish this connection without further notice.
                    let _ = conn.as_mut().await;
                    return;
                }
            }
        }
    }
}

/// Deletes expired tokens and challenges every `every` until the server stops.
pub fn spawn_purger(state: Arc<AppState>, every: Duration, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            match state.store.purge_expired(now()).await {
                Ok(n) if n > 0 => {
                    tracing::info!(purged = n, "expired tokens and challenges deleted")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired tokens failed"),
            }
        }
    });
}

/// Binds `config.listen`, builds the state from the configuration, bootstraps the OEM
/// account on an empty store, and starts serving (HTTPS unless `plain_http`).
pub async fn start(config: crate::config::ServerConfig) -> Result<RunningServer, StartError> {
    let identity = crate::identity::Identity::load(&config)?;
    let tls = if config.plain_http {
        None
    } else {
        Some(tls_config(&identity)?)
    };
    let data_dir = config.data_dir.clone();
    let listen = config.listen;
    let coap_listen = config.coap_listen;
    let state = Arc::new(AppState::open(config, identity).await?);
    if let Some(path) = state.bootstrap_oem(&data_dir).await? {
        tracing::warn!(path = %path, "empty store: created the OEM account `oem`; its API token is in this file");
    }
    // CoAP first: a bad block size or busy UDP port fails before HTTP serves anything
    // (a dropped CoapServer stops itself if the TCP bind fails next).
    let coap = match coap_listen {
        Some(addr) => Some(crate::coap::start_coap(state.clone(), addr).await.map_err(
            |source| StartError::Bind {
                addr: format!("coap://{addr}"),
                source,
            },
        )?),
        None => None,
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen.to_string(),
            source,
        })?;
    let mut server =
        spawn(listener, router(state.clone()), tls).map_err(|source| StartError::Bind {
            addr: listen.to_string(),
            source,
        })?;
    if let Some(coap) = coap {
        server = server.with_coap(coap);
    }
    spawn_purger(state, Duration::from_secs(600), server.shutdown.subscribe());
    tracing::info!(url = %server.tam_url(), backend = %server_backend(&server), "TAM serving");
    Ok(server)
}

fn server_backend(s: &RunningServer) -> &'static str {
    if s.tls {
        "https"
    } else {
        "http"
    }
}

/// Runs until SIGINT or SIGTERM, then shuts down gracefully (open requests get `grace`).
pub async fn serve_until_signal(server: RunningServer, grace: Duration) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
    server.shutdown(grace).await;
}
