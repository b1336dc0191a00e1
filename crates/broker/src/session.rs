//! One device-initiated TEEP session over HTTP (draft-ietf-teep-otrp-over-http §5).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otrp_tee_daemon::server::SharedTee;
use otrp_tee_daemon::{unix_now, TeeClient, TeeError, TeeEvent, TeepReply};
use rand::Rng;

use crate::BrokerError;

/// The TEEP media type.
pub const TEEP_CBOR: &str = "application/teep+cbor";

/// Most HTTP round trips in one session (a TAM that never says 204 is cut off).
pub const MAX_ROUND_TRIPS: usize = 64;

/// Largest TAM message or fetched payload accepted (16 MiB).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The TEE side of a session: the daemon over its socket, or an in-process TEE (fleet).
pub trait TeeLink: Send {
    /// ProcessTeepMessage.
    fn process(
        &mut self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send;
    /// Hands over fetched bytes.
    fn provide_fetch(
        &mut self,
        uri: String,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send;
    /// Reports a failed fetch.
    fn fetch_failed(
        &mut self,
        uri: String,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send;
    /// ProcessError: an outbound message could not be delivered.
    fn process_error(
        &mut self,
        detail: String,
    ) -> impl Future<Output = Result<(), TeeError>> + Send;
}

impl TeeLink for TeeClient {
    fn process(
        &mut self,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send {
        self.process_teep_message(message)
    }
    fn provide_fetch(
        &mut self,
        uri: String,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send {
        TeeClient::provide_fetch(self, uri, bytes)
    }
    fn fetch_failed(
        &mut self,
        uri: String,
    ) -> impl Future<Output = Result<TeepReply, TeeError>> + Send {
        TeeClient::fetch_failed(self, uri)
    }
    fn process_error(
        &mut self,
        detail: String,
    ) -> impl Future<Output = Result<(), TeeError>> + Send {
        TeeClient::process_error(self, detail)
    }
}

/// An in-process TEE (the fleet's devices): each call runs on tokio's blocking pool.
#[derive(Clone)]
pub struct LocalTee(pub SharedTee);

impl LocalTee {
    /// Runs `f` on the shared TEE on tokio's blocking pool (TEEP, OTrP and batch links).
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut otrp_tee_daemon::Tee) -> R + Send + 'static,
    ) -> Result<R, TeeError> {
        let tee = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut t = tee.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut t)
        })
        .await
        .map_err(|e| TeeError::Protocol(format!("TEE task failed: {e}")))
    }
}

impl TeeLink for LocalTee {
    async fn process(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.run(move |t| t.process_teep_message(&message, unix_now()))
            .await
    }
    async fn provide_fetch(&mut self, uri: String, bytes: Vec<u8>) -> Result<TeepReply, TeeError> {
        self.run(move |t| t.provide_fetch(&uri, bytes, unix_now()))
            .await
    }
    async fn fetch_failed(&mut self, uri: String) -> Result<TeepReply, TeeError> {
        self.run(move |t| t.fetch_failed(&uri, unix_now())).await
    }
    async fn process_error(&mut self, detail: String) -> Result<(), TeeError> {
        tracing::warn!(%detail, "could not deliver a message to the TAM");
        Ok(())
    }
}

/// Simulated network conditions (fleet and fault tests): a delay before each request and
/// a probability of losing it (half the losses drop the request before it leaves, half
/// drop the response after the TAM handled it).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetSim {
    /// Added to every HTTP request.
    pub delay: Duration,
    /// Probability in [0, 1] that a request or its response is lost.
    pub loss: f64,
}

/// What one session did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// TAM messages handed to the TEE.
    pub tam_messages: usize,
    /// TEE replies posted to the TAM.
    pub tee_replies: usize,
    /// URIs fetched for the Agent.
    pub fetches: usize,
    /// What the Agent did.
    pub events: Vec<TeeEvent>,
}

impl SessionReport {
    /// Events of one kind (`installed`, `refused` …).
    pub fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }
}

/// The HTTP side shared by sessions: one client (connection pool, TLS config) for any
/// number of devices.
///
/// A TAM URL `coap://HOST:PORT/PATH` (e.g. `coap://127.0.0.1:5683/teep`) is reached over
/// CoAP instead (`otrp-coap`: confirmable POSTs with retransmission, block-wise transfer
/// both ways): 2.04/2.05 with a payload is the TAM's next message, without one the
/// session is over (HTTP's 204), 4.xx/5.xx is an error. The relay semantics are the
/// same as over HTTP; the bytes CoAP put on the wire add up in [`Http::coap_stats`].
#[derive(Clone, Debug)]
pub struct Http {
    pub(crate) client: reqwest::Client,
    net: NetSim,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    coap: Arc<otrp_coap::CoapClient>,
    coap_stats: Arc<Mutex<otrp_coap::WireStats>>,
}

impl Http {
    /// A client trusting only `tam_ca_pem` (when given; else the built-in web roots), with
    /// no redirects and no cookies (otrp-over-http §4).
    pub fn new(tam_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Http, BrokerError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .user_agent(concat!("otrp-broker/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = tam_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| BrokerError::Config(format!("--tam-ca: {e}")))?;
            if certs.is_empty() {
                return Err(BrokerError::Config(
                    "--tam-ca: no certificate in the PEM".into(),
                ));
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| BrokerError::Config(format!("HTTP client: {e}")))?;
        let mut rng: rand::rngs::StdRng = rand::SeedableRng::from_entropy();
        let coap = otrp_coap::CoapClient::new(otrp_coap::Config::default(), &mut rng);
        Ok(Http {
            client,
            net: NetSim::default(),
            rng: Arc::new(Mutex::new(rng)),
            coap: Arc::new(coap),
            coap_stats: Arc::new(Mutex::new(otrp_coap::WireStats::default())),
        })
    }

    /// The same client with `config` for `coap://` TAM URLs (block size, timers).
    pub fn with_coap_config(mut self, config: otrp_coap::Config) -> Http {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        self.coap = Arc::new(otrp_coap::CoapClient::new(config, &mut *rng));
        drop(rng);
        self
    }

    /// The same client with a CoAP block size of `size` bytes (16, 32, …, 1024).
    pub fn with_coap_block_size(self, size: usize) -> Result<Http, BrokerError> {
        let config = otrp_coap::Config::with_block_size(size).ok_or_else(|| {
            BrokerError::Config(format!(
                "CoAP block size {size}: use 16, 32, 64, 128, 256, 512 or 1024"
            ))
        })?;
        Ok(self.with_coap_config(config))
    }

    /// What all CoAP exchanges of this client (and its clones) put on the wire so far.
    pub fn coap_stats(&self) -> otrp_coap::WireStats {
        *self.coap_stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One CoAP exchange with the host of the `coap://` TAM URL `tam` at `path` (which may
    /// carry a `?query`): a GET naming `etags` when given, else a POST of `body`. Error
    /// codes are returned as responses; only transport failures are errors.
    pub(crate) async fn coap_request(
        &self,
        tam: &str,
        path: &str,
        body: Vec<u8>,
        etags: Option<Vec<Vec<u8>>>,
    ) -> Result<otrp_coap::Response, BrokerError> {
        let (authority, _) = parse_coap_url(tam)?;
        let addr = tokio::net::lookup_host(authority.as_str())
            .await
            .map_err(|e| BrokerError::Tam(format!("{tam}: resolving {authority}: {e}")))?
            .next()
            .ok_or_else(|| BrokerError::Tam(format!("{tam}: {authority} has no address")))?;
        let (result, stats) = match etags {
            Some(tags) => self.coap.get_with_stats(addr, path, tags).await,
            None => self.coap.post_with_stats(addr, path, body).await,
        };
        self.add_coap_stats(stats);
        result.map_err(|e| BrokerError::Tam(format!("CoAP {path} at {authority}: {e}")))
    }

    fn add_coap_stats(&self, stats: otrp_coap::WireStats) {
        let mut total = self.coap_stats.lock().unwrap_or_else(|p| p.into_inner());
        total.datagrams_sent += stats.datagrams_sent;
        total.bytes_sent += stats.bytes_sent;
        total.datagrams_received += stats.datagrams_received;
        total.bytes_received += stats.bytes_received;
        total.retransmissions += stats.retransmissions;
    }

    /// One CoAP POST to a `coap://` TAM URL: `None` when the TAM has nothing more to say.
    async fn post_coap(&self, tam: &str, body: Vec<u8>) -> Result<Option<Vec<u8>>, BrokerError> {
        let (authority, path) = parse_coap_url(tam)?;
        let addr = tokio::net::lookup_host(authority.as_str())
            .await
            .map_err(|e| BrokerError::Tam(format!("{tam}: resolving {authority}: {e}")))?
            .next()
            .ok_or_else(|| BrokerError::Tam(format!("{tam}: {authority} has no address")))?;
        let (result, stats) = self.coap.post_with_stats(addr, path, body).await;
        self.add_coap_stats(stats);
        let resp = result.map_err(|e| BrokerError::Tam(format!("CoAP POST {tam}: {e}")))?;
        if resp.code == otrp_coap::Code::ServiceUnavailable {
            return Err(BrokerError::Tam(format!(
                "CoAP POST {tam}: 5.03 Service Unavailable: the TAM's CoAP endpoint is \
                 holding all it may (coap_max_held_bytes); the session is tried again later"
            )));
        }
        if resp.code.is_error() {
            return Err(BrokerError::Tam(format!(
                "CoAP POST {tam}: {:?}",
                resp.code
            )));
        }
        if resp.body.len() > MAX_BODY {
            return Err(BrokerError::Tam(format!("body over {MAX_BODY} bytes")));
        }
        Ok((!resp.body.is_empty()).then_some(resp.body))
    }

    /// The same client under simulated network conditions.
    pub fn with_net(mut self, net: NetSim) -> Http {
        self.net = net;
        self
    }

    fn lose(&self) -> bool {
        self.net.loss > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen_bool(self.net.loss.clamp(0.0, 1.0))
    }

    /// One POST to the TAM: `None` for 204 / empty body (session over).
    pub async fn post(&self, tam: &str, body: Vec<u8>) -> Result<Option<Vec<u8>>, BrokerError> {
        if !self.net.delay.is_zero() {
            tokio::time::sleep(self.net.delay).await;
        }
        if self.lose() {
            return Err(BrokerError::Tam("simulated loss of the request".into()));
        }
        if is_coap_url(tam) {
            let r = self.post_coap(tam, body).await?;
            if self.lose() {
                return Err(BrokerError::Tam("simulated loss of the response".into()));
            }
            return Ok(r);
        }
        self.post_http(tam, body, TEEP_CBOR, 200, || {
            if self.lose() {
                return Err(BrokerError::Tam("simulated loss of the response".into()));
            }
            Ok(())
        })
        .await
    }

    /// One HTTP POST of `body` to `tam` as `media` (the TEEP and OTrP profiles): `None`
    /// for 204 / an empty body (session over). An error status keeps at most
    /// `max_error_chars` of the TAM's text; `after_read` runs once the body is read
    /// (the network simulation's loss of the response), before the checks on it.
    pub(crate) async fn post_http(
        &self,
        tam: &str,
        body: Vec<u8>,
        media: &str,
        max_error_chars: usize,
        after_read: impl FnOnce() -> Result<(), BrokerError>,
    ) -> Result<Option<Vec<u8>>, BrokerError> {
        let mut req = self.client.post(tam).header(reqwest::header::ACCEPT, media);
        if !body.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, media);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| BrokerError::Tam(format!("POST {tam}: {}", error_chain(&e))))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(max_error_chars).collect();
            return Err(BrokerError::Tam(format!(
                "POST {tam}: HTTP {status}: {text}"
            )));
        }
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(resp).await?;
        after_read()?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if !ctype.starts_with(media) {
            return Err(BrokerError::Tam(format!(
                "POST {tam}: Content-Type {ctype:?}, expected {media}"
            )));
        }
        Ok(Some(bytes))
    }

    /// GET a URI for the Agent (http and https only).
    pub async fn fetch(&self, uri: &str) -> Result<Vec<u8>, BrokerError> {
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(BrokerError::Fetch(format!(
                "{uri}: only http(s) URIs are fetched"
            )));
        }
        if !self.net.delay.is_zero() {
            tokio::time::sleep(self.net.delay).await;
        }
        let resp = self
            .client
            .get(uri)
            .send()
            .await
            .map_err(|e| BrokerError::Fetch(format!("GET {uri}: {}", error_chain(&e))))?;
        if !resp.status().is_success() {
            return Err(BrokerError::Fetch(format!(
                "GET {uri}: HTTP {}",
                resp.status()
            )));
        }
        read_limited(resp).await
    }
}

/// Whether a TAM URL selects CoAP (`coap://…`).
pub fn is_coap_url(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("coap://"))
}

/// Splits `coap://HOST[:PORT][/PATH]` into (`HOST:PORT`, `/PATH`); the port defaults to
/// 5683 (RFC 7252 §6.1) and the path to `/teep`.
fn parse_coap_url(url: &str) -> Result<(String, &str), BrokerError> {
    let rest = url
        .get(7..)
        .filter(|_| is_coap_url(url))
        .ok_or_else(|| BrokerError::Config(format!("{url}: not a coap:// URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, otrp_coap::TEEP_PATH),
    };
    let path = if path.is_empty() || path == "/" {
        otrp_coap::TEEP_PATH
    } else {
        path
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
        return Err(BrokerError::Config(format!(
            "{url}: use coap://HOST:PORT/PATH, e.g. coap://127.0.0.1:5683/teep"
        )));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!host.starts_with('[') || host.ends_with(']'))
    });
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:5683")
    };
    Ok((authority, path))
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

pub(crate) async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, BrokerError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BrokerError::Tam(format!("body over {MAX_BODY} bytes")));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BrokerError::Tam(format!("reading the body: {}", error_chain(&e))))?
    {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(BrokerError::Tam(format!("body over {MAX_BODY} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Runs one session: POST an empty body, then relay each TAM message to the TEE untouched
/// and each TEE reply to the TAM, fetching what the Agent asks for, until the TAM answers
/// 204 or the Agent has nothing to send.
///
/// # Never twice
///
/// Each TAM message is handed to the TEE at most once and each TEE reply posted at most
/// once: on any failure the session is abandoned (the TEE is told through ProcessError)
/// and the next session starts from an empty POST, in which the TAM learns the device's
/// real state from a fresh QueryResponse. Even a Broker that did resend could not apply an
/// Update twice: tokens are one-time at both ends — the Agent keeps the tokens it answered
/// (committed with the Update's changes) and refuses a repeated one, and the TAM consumes
/// a token with the first answer carrying it and refuses a repeated answer.
pub async fn run_session<T: TeeLink>(
    http: &Http,
    tam: &str,
    tee: &mut T,
) -> Result<SessionReport, BrokerError> {
    let mut report = SessionReport::default();
    let mut outbound: Vec<u8> = Vec::new();
    for _ in 0..MAX_ROUND_TRIPS {
        let posted_reply = !outbound.is_empty();
        let incoming = match http.post(tam, std::mem::take(&mut outbound)).await {
            Ok(b) => b,
            Err(e) => {
                if let Err(te) = tee.process_error(e.to_string()).await {
                    tracing::debug!(error = %te, "ProcessError not delivered");
                }
                return Err(e);
            }
        };
        if posted_reply {
            report.tee_replies += 1;
        }
        let Some(message) = incoming else {
            return Ok(report);
        };
        report.tam_messages += 1;
        let mut reply = tee.process(message).await.map_err(BrokerError::Tee)?;
        // The Agent may ask for several URIs in turn.
        let mut fetches = 0;
        while let Some(uri) = reply.need_fetch.take() {
            report.events.append(&mut reply.events);
            fetches += 1;
            if fetches > MAX_ROUND_TRIPS {
                return Err(BrokerError::Fetch("too many fetches in one message".into()));
            }
            reply = match http.fetch(&uri).await {
                Ok(bytes) => {
                    report.fetches += 1;
                    tee.provide_fetch(uri, bytes).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed");
                    tee.fetch_failed(uri).await
                }
            }
            .map_err(BrokerError::Tee)?;
        }
        report.events.append(&mut reply.events);
        match reply.send {
            Some(bytes) => outbound = bytes,
            None => return Ok(report),
        }
    }
    Err(BrokerError::Tam(format!(
        "the TAM did not end the session within {MAX_ROUND_TRIPS} round trips"
    )))
}

/// Exponential backoff with full jitter and a cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles per failure up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }
    /// The next delay (random in [current/2, current]), then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = d / 2;
        half + d
            .saturating_sub(half)
            .mul_f64(rand::thread_rng().gen::<f64>())
    }
    /// After a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::{is_coap_url, parse_coap_url};

    #[test]
    fn coap_urls() {
        assert!(is_coap_url("coap://127.0.0.1:5683/teep"));
        assert!(is_coap_url("CoAP://h/teep"));
        assert!(!is_coap_url("https://h/tam"));
        let p = |u| parse_coap_url(u).ok();
        assert_eq!(
            p("coap://127.0.0.1:5683/teep"),
            Some(("127.0.0.1:5683".to_owned(), "/teep"))
        );
        assert_eq!(
            p("coap://tam.example"),
            Some(("tam.example:5683".into(), "/teep"))
        );
        assert_eq!(
            p("coap://[::1]:7000/x/y"),
            Some(("[::1]:7000".into(), "/x/y"))
        );
        assert_eq!(p("coap://[::1]/"), Some(("[::1]:5683".into(), "/teep")));
        assert_eq!(p("coap:///teep"), None);
        assert_eq!(p("coap://h:1/teep?x"), None);
        assert_eq!(p("http://h:1/teep"), None);
    }
}
