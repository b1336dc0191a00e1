//! CoAP (RFC 7252) binding of the binary TEEP profile, with block-wise transfer
//! (RFC 7959) both ways, for TAMs and Brokers on constrained links (DESIGN.md §3.3).
//!
//! # Session semantics (mirroring TEEP over HTTP, `spec/teep-suit.md` §4)
//!
//! The Broker POSTs to the TAM resource (`/teep` by default, [`TEEP_PATH`]): an empty body
//! opens a session ("ProcessConnect"), a non-empty body carries a TEEP message. The
//! response carries the next TEEP message, or no payload when the TAM has nothing more to
//! say (the HTTP binding's 204). Payloads use content-format [`TEEP_CBOR_CONTENT_FORMAT`].
//!
//! A path given to the client may carry a query (`/batch/b/reports?seq=3`): each
//! `&`-separated argument becomes one Uri-Query option, and the server hands them to the
//! application in [`Request::query`].
//!
//! GET is for cacheable resources (batch packages, `GET /batch/<id>`): the request carries
//! the client's ETag options ([`Request::etags`]), the response an ETag
//! ([`Response::etag`], repeated on every Block2 block) and is 2.05 Content or 2.03 Valid
//! ([`ClientCore::get`], [`CoapClient::get_with_stats`]).
//!
//! # Layers
//!
//! * [`ClientCore`] and [`ServerCore`] are sans-IO state machines: datagrams and the
//!   current time go in, datagrams ([`Transmit`]), the next timer deadline and completed
//!   requests/responses come out. They implement confirmable messages with exponential
//!   back-off retransmission (`ACK_TIMEOUT`, `ACK_RANDOM_FACTOR`, `MAX_RETRANSMIT`, all in
//!   [`Config`]), message-id deduplication (the server answers a retransmitted request from
//!   its cache and never delivers it twice), random tokens, Block1 uploads and Block2
//!   downloads with a configurable block size of 16–1024 bytes (SZX 0–6, with the peer's
//!   smaller size honoured), and Size1/Size2.
//! * [`CoapServer`] and [`CoapClient`] are thin tokio shells around them. The server
//!   reassembles Block1 uploads per (peer, token), runs the handler once per complete
//!   request (concurrently across clients) and answers piggybacked.
//!
//! [`relay`] is a lossy, reordering UDP relay for testing both on loopback; [`libcoap`]
//! drives libcoap's command-line client and server as an independent peer.
//!
//! # Interoperability
//!
//! Tested against libcoap 4.3.1 (Debian `libcoap3-bin`) both ways: its `coap-client`
//! carries a whole TEEP session to the TAM's `/teep` (Block1 up, Block2 down, with
//! datagrams it drops itself) and fetches and reports batch packages at 16-byte blocks
//! (otrp-tam-server's `coap` and `batch` tests); our client POSTs and GETs block-wise
//! against its `coap-server` at every block size and through a lossy link
//! (`tests/libcoap.rs`). Three things these tests taught us:
//!
//! * A client may send each block with a new token (RFC 9175 §3.3; libcoap does, with a
//!   Request-Tag on Block1). A block with an unknown token continues the one transfer in
//!   progress for the same peer, method, path and query (and Request-Tag); when there are
//!   several, the token decides, and a block that matches none is 4.08.
//! * Every request of one exchange carries the same options apart from Block1, Block2 and
//!   Size1: servers may key reassembly on them. (Our client sent Accept on the final
//!   Block1 request only; it now sends none, which also saves 3 bytes a datagram.)
//! * A client may name no Block2 size up front (libcoap names none). The server then answers
//!   in blocks no larger than the client's own Block1 blocks: a device that uploads in
//!   32-byte blocks to fit a 51-byte LoRaWAN frame cannot take 64-byte ones back.
//!
//! # Content-format
//!
//! `application/teep+cbor` is a registered media type (IANA, RFC-ietf-teep-protocol), but
//! neither the TEEP draft's IANA section (checked at the editor's copy, Feb 2026) nor the
//! CoAP Content-Formats registry assigns it a CoAP content-format number. Until one is
//! assigned we send 65000 from the registry's *Experimental Use* range (65000–65535,
//! RFC 7252 §12.3), configurable in [`Config::content_format`]; the server also accepts
//! `application/cbor` (60) and requests without a Content-Format option.
//!
//! # Limits
//!
//! Block numbers are 20-bit (RFC 7959), so a body holds at most 2^20 blocks (16 MiB at
//! 16-byte blocks); [`Config::max_body`] bounds what the server buffers per upload and
//! [`Config::max_uploads`] how many uploads it keeps at once; [`Config::max_held_bytes`]
//! bounds all the server keeps (bodies, cached answers, requests with the application),
//! however many peers, forged addresses included, send to it: beyond it a new request
//! gets 5.03 Service Unavailable with Max-Age. A body with an ETag that several clients
//! fetch at once (a batch package) is held once for all of them, and only the last
//! block's answer of a Block2 transfer is kept for retransmissions (the body serves the
//! others again). NSTART is 1 per exchange
//! (one outstanding confirmable message each); a [`ClientCore`] may run several exchanges.
#![cfg_attr(not(feature = "std"), allow(unused))]

mod block;
mod client;
mod config;
pub mod libcoap;
pub mod relay;
mod server;
mod shell;

pub use block::Block;
pub use client::{ClientCore, ClientError, ClientEvent, ExchangeId, WireStats};
pub use coap_lite::ResponseType as Code;
pub use config::Config;
pub use server::{RequestId, ServerCore, ServerEvent};
pub use shell::{BoxFuture, CoapClient, CoapServer, Handler, ServerStats, StatsHandle};

/// The TAM's TEEP resource path.
pub const TEEP_PATH: &str = "/teep";

/// CoAP content-format used for `application/teep+cbor` (experimental-use number; see the
/// crate docs).
pub const TEEP_CBOR_CONTENT_FORMAT: u16 = 65000;

/// CoAP content-format of `application/cbor` (RFC 8949), also accepted by the server.
pub const CBOR_CONTENT_FORMAT: u16 = 60;

/// One datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: std::net::SocketAddr,
    /// The CoAP message bytes.
    pub data: Vec<u8>,
}

/// A complete request as the server hands it to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The Uri-Path, `/`-joined with a leading `/` (e.g. `/teep`).
    pub path: String,
    /// The reassembled request body (empty: open a TEEP session).
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// GET (true: a cacheable resource such as a batch package) or POST (false).
    pub get: bool,
    /// The client's ETag options (GET: the representations it already has).
    pub etags: Vec<Vec<u8>>,
    /// The Uri-Query options in order (e.g. `["seq=3"]` for `/batch/b/reports?seq=3`).
    pub query: Vec<String>,
}

impl Request {
    /// The value of the first Uri-Query option `name=value` (None when absent).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find_map(|q| {
            q.split_once('=')
                .and_then(|(k, v)| (k == name).then_some(v))
        })
    }
}

/// A response: the application's answer on the server, the result on the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// CoAP response code (e.g. [`Code::Changed`] 2.04, [`Code::Content`] 2.05).
    pub code: Code,
    /// The (reassembled) body; empty when the TAM has nothing more to send.
    pub body: Vec<u8>,
    /// The ETag option (GET of a cacheable resource; sent with every Block2 block).
    pub etag: Option<Vec<u8>>,
}

impl Response {
    /// 2.04 Changed carrying `body` (a TEEP message, or empty when the session is done).
    pub fn changed(body: Vec<u8>) -> Response {
        Response {
            code: Code::Changed,
            body,
            etag: None,
        }
    }

    /// 2.05 Content carrying `body` with an ETag (answer to a GET).
    pub fn content(body: Vec<u8>, etag: Option<Vec<u8>>) -> Response {
        Response {
            code: Code::Content,
            body,
            etag,
        }
    }

    /// 2.03 Valid: the client's ETag names the current representation (RFC 7252 §5.10.6).
    pub fn valid(etag: Vec<u8>) -> Response {
        Response {
            code: Code::Valid,
            body: Vec::new(),
            etag: Some(etag),
        }
    }

    /// An error response without body.
    pub fn error(code: Code) -> Response {
        Response {
            code,
            body: Vec::new(),
            etag: None,
        }
    }
}

/// Splits a path such as `/teep` or `a/b` into Uri-Path segments.
pub(crate) fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Splits `path?q1&q2` into its Uri-Path segments and Uri-Query options (RFC 7252 §6.4:
/// one Uri-Query option per `&`-separated argument, empty ones dropped).
pub(crate) fn path_and_query(target: &str) -> (Vec<String>, Vec<String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .collect();
    (path_segments(path), query)
}
