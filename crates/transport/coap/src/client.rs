//! Sans-IO CoAP client: POST a body (Block1 when it exceeds one block), follow a Block2
//! response, retransmit confirmable messages with exponential back-off.

use crate::block::{set_uint, Block, MAX_NUM};
use crate::{path_and_query, Code, Config, Response, Transmit};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Token length in bytes (RFC 7252 §5.3.1 asks for ≥ 32 random bits on the Internet).
const TOKEN_LEN: usize = 4;

/// Identifies one request/response exchange of a [`ClientCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExchangeId(pub u64);

/// Bytes and datagrams one exchange put on the wire (CoAP messages, no UDP/IP headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Datagrams sent, retransmissions included.
    pub datagrams_sent: u64,
    /// Bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Datagrams received for this exchange.
    pub datagrams_received: u64,
    /// Bytes received for this exchange.
    pub bytes_received: u64,
    /// Retransmitted datagrams.
    pub retransmissions: u64,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A confirmable message was never acknowledged.
    #[error("timeout: no acknowledgement from {peer} after {retransmissions} retransmissions ({waited:?})")]
    Timeout {
        /// The server.
        peer: SocketAddr,
        /// Retransmissions made.
        retransmissions: u32,
        /// Time spent on the last message.
        waited: Duration,
    },
    /// The server acknowledged but its separate response never came.
    #[error("timeout: {peer} acknowledged but sent no response within {0:?}", .waited)]
    ResponseTimeout {
        /// The server.
        peer: SocketAddr,
        /// How long the client waited.
        waited: Duration,
    },
    /// The server answered with a Reset message.
    #[error("{peer} reset the exchange")]
    Reset {
        /// The server.
        peer: SocketAddr,
    },
    /// The server refused a block of the transfer.
    #[error("{peer} refused block-wise transfer with {code}")]
    Refused {
        /// The server.
        peer: SocketAddr,
        /// The code it answered with.
        code: String,
    },
    /// The server's response broke the protocol.
    #[error("protocol error from {peer}: {what}")]
    Protocol {
        /// The server.
        peer: SocketAddr,
        /// What was wrong.
        what: &'static str,
    },
    /// The body does not fit in 2^20 blocks, or the response exceeds `Config::max_body`.
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Size of the body.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request could not be encoded (e.g. a path segment over 255 bytes).
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// Socket error in the I/O shell.
    #[error("I/O error: {0}")]
    Io(String),
}

/// What a [`ClientCore`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// An exchange ended.
    Completed {
        /// Which one.
        id: ExchangeId,
        /// The reassembled response, or why there is none.
        result: Result<Response, ClientError>,
        /// What it cost on the wire.
        stats: WireStats,
    },
}

#[derive(Debug)]
struct Inflight {
    mid: u16,
    data: Vec<u8>,
    retransmits: u32,
    timeout: Duration,
    deadline: Instant,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Sending the request body (or the single request).
    Upload,
    /// Fetching further blocks of a response that had this code.
    Download(Code),
}

#[derive(Debug)]
struct Exchange {
    peer: SocketAddr,
    path: Vec<String>,
    query: Vec<String>,
    token: Vec<u8>,
    body: Vec<u8>,
    /// Bytes of `body` the server has acknowledged.
    up_offset: usize,
    up_szx: u8,
    /// The Block1 value and payload length of the message in flight, if block-wise.
    sent_block: Option<(Block, usize)>,
    phase: Phase,
    inflight: Option<Inflight>,
    /// Waiting for a separate response until then.
    wait_deadline: Option<Instant>,
    down: Vec<u8>,
    down_szx: u8,
    stats: WireStats,
    /// GET (with these ETag options) instead of POST.
    get: Option<Vec<Vec<u8>>>,
    /// The ETag option of the response.
    etag: Option<Vec<u8>>,
}

/// The client state machine. Feed it datagrams ([`ClientCore::handle_datagram`]) and
/// timer expiries ([`ClientCore::handle_timeout`]); drain [`ClientCore::poll_transmit`]
/// and [`ClientCore::poll_event`] after each call, and wake it at
/// [`ClientCore::poll_timeout`].
#[derive(Debug)]
pub struct ClientCore {
    config: Config,
    rng: ChaCha8Rng,
    next_mid: u16,
    next_id: u64,
    exchanges: BTreeMap<ExchangeId, Exchange>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    /// Recently processed separate responses (peer, message id), for deduplication.
    seen: VecDeque<(SocketAddr, u16)>,
}

/// How many separate responses are remembered for deduplication.
const SEEN_CAP: usize = 64;

impl ClientCore {
    /// A client with `config`; `rng` seeds message ids, tokens and timer jitter.
    pub fn new(config: Config, rng: &mut impl RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut rng = ChaCha8Rng::from_seed(seed);
        let next_mid = (rng.next_u32() & 0xffff) as u16;
        ClientCore {
            config,
            rng,
            next_mid,
            next_id: 0,
            exchanges: BTreeMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            seen: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Starts a GET of `path` at `peer` naming the representations the client has
    /// (`etags`: 2.03 Valid when one is current); the body comes block-wise (Block2).
    pub fn get(
        &mut self,
        peer: SocketAddr,
        path: &str,
        etags: Vec<Vec<u8>>,
        now: Instant,
    ) -> ExchangeId {
        self.start(peer, path, Vec::new(), Some(etags), now)
    }

    /// Starts a POST of `body` to `path` at `peer`.
    pub fn post(
        &mut self,
        peer: SocketAddr,
        path: &str,
        body: Vec<u8>,
        now: Instant,
    ) -> ExchangeId {
        self.start(peer, path, body, None, now)
    }

    fn start(
        &mut self,
        peer: SocketAddr,
        path: &str,
        body: Vec<u8>,
        get: Option<Vec<Vec<u8>>>,
        now: Instant,
    ) -> ExchangeId {
        let id = ExchangeId(self.next_id);
        self.next_id += 1;
        let mut token = vec![0u8; TOKEN_LEN];
        self.rng.fill_bytes(&mut token);
        let szx = self.config.szx();
        let (path, query) = path_and_query(path);
        let ex = Exchange {
            peer,
            path,
            query,
            token,
            body,
            up_offset: 0,
            up_szx: szx,
            sent_block: None,
            phase: Phase::Upload,
            inflight: None,
            wait_deadline: None,
            down: Vec::new(),
            down_szx: szx,
            stats: WireStats::default(),
            get,
            etag: None,
        };
        let limit = (MAX_NUM as usize + 1) * crate::block::szx_size(szx);
        let size = ex.body.len();
        self.exchanges.insert(id, ex);
        if size > limit {
            self.complete(id, Err(ClientError::TooLarge { size, limit }));
        } else {
            self.send_next(id, now);
        }
        id
    }

    /// Abandons an exchange (no event is reported for it).
    pub fn cancel(&mut self, id: ExchangeId) {
        self.exchanges.remove(&id);
    }

    /// Number of exchanges in progress.
    pub fn in_progress(&self) -> usize {
        self.exchanges.len()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.exchanges
            .values()
            .filter_map(|e| e.inflight.as_ref().map(|i| i.deadline).or(e.wait_deadline))
            .min()
    }

    /// Retransmits what is due and fails exchanges whose retransmissions are exhausted.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<ExchangeId> = self.exchanges.keys().copied().collect();
        for id in ids {
            let Some(ex) = self.exchanges.get_mut(&id) else {
                continue;
            };
            if let Some(w) = ex.wait_deadline {
                if w <= now && ex.inflight.is_none() {
                    let peer = ex.peer;
                    let waited = self.config.exchange_lifetime;
                    self.complete(id, Err(ClientError::ResponseTimeout { peer, waited }));
                    continue;
                }
            }
            let Some(inf) = ex.inflight.as_mut() else {
                continue;
            };
            if inf.deadline > now {
                continue;
            }
            if inf.retransmits >= self.config.max_retransmit {
                let err = ClientError::Timeout {
                    peer: ex.peer,
                    retransmissions: inf.retransmits,
                    waited: now.saturating_duration_since(inf.started),
                };
                self.complete(id, Err(err));
                continue;
            }
            inf.retransmits += 1;
            inf.timeout = inf.timeout.saturating_mul(2);
            inf.deadline = now + inf.timeout;
            ex.stats.retransmissions += 1;
            ex.stats.datagrams_sent += 1;
            ex.stats.bytes_sent += inf.data.len() as u64;
            self.outbox.push_back(Transmit {
                peer: ex.peer,
                data: inf.data.clone(),
            });
        }
    }

    /// Processes a datagram from `peer`.
    pub fn handle_datagram(&mut self, peer: SocketAddr, data: &[u8], now: Instant) {
        let Ok(p) = Packet::from_bytes(data) else {
            tracing::debug!(%peer, "ignoring a datagram that is not CoAP");
            return;
        };
        let mid = p.header.message_id;
        match p.header.get_type() {
            MessageType::Acknowledgement | MessageType::Reset => {
                let found = self.exchanges.iter().find_map(|(id, e)| {
                    (e.peer == peer && e.inflight.as_ref().is_some_and(|i| i.mid == mid))
                        .then_some(*id)
                });
                let Some(id) = found else {
                    return; // stale: an ACK of a message we no longer wait for
                };
                self.count_rx(id, data.len());
                if p.header.get_type() == MessageType::Reset {
                    self.complete(id, Err(ClientError::Reset { peer }));
                    return;
                }
                if p.header.code == MessageClass::Empty {
                    // Separate response will follow.
                    if let Some(ex) = self.exchanges.get_mut(&id) {
                        ex.inflight = None;
                        ex.wait_deadline = Some(now + self.config.exchange_lifetime);
                    }
                    return;
                }
                if self
                    .exchanges
                    .get(&id)
                    .is_some_and(|e| e.token != p.get_token())
                {
                    self.protocol(id, "piggybacked response with a foreign token");
                    return;
                }
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    ex.inflight = None;
                }
                self.on_response(id, &p, now);
            }
            MessageType::Confirmable | MessageType::NonConfirmable => {
                if !matches!(p.header.code, MessageClass::Response(_)) {
                    return;
                }
                let found = self.exchanges.iter().find_map(|(id, e)| {
                    (e.peer == peer && e.token == p.get_token()).then_some(*id)
                });
                let confirmable = p.header.get_type() == MessageType::Confirmable;
                if confirmable {
                    // ACK a known separate response; reset an unknown one.
                    let mut reply = Packet::new();
                    reply.header.set_type(if found.is_some() {
                        MessageType::Acknowledgement
                    } else {
                        MessageType::Reset
                    });
                    reply.header.code = MessageClass::Empty;
                    reply.header.message_id = mid;
                    if let Ok(bytes) = reply.to_bytes() {
                        if let Some(id) = found {
                            self.count_tx(id, bytes.len());
                        }
                        self.outbox.push_back(Transmit { peer, data: bytes });
                    }
                }
                let Some(id) = found else {
                    return;
                };
                self.count_rx(id, data.len());
                if self.seen.contains(&(peer, mid)) {
                    return; // a retransmitted separate response, already processed
                }
                self.seen.push_back((peer, mid));
                if self.seen.len() > SEEN_CAP {
                    self.seen.pop_front();
                }
                if let Some(ex) = self.exchanges.get_mut(&id) {
                    // A separate response also acknowledges the request implicitly.
                    ex.inflight = None;
                    ex.wait_deadline = None;
                }
                self.on_response(id, &p, now);
            }
        }
    }

    fn count_rx(&mut self, id: ExchangeId, n: usize) {
        if let Some(ex) = self.exchanges.get_mut(&id) {
            ex.stats.datagrams_received += 1;
            ex.stats.bytes_received += n as u64;
        }
    }

    fn count_tx(&mut self, id: ExchangeId, n: usize) {
        if let Some(ex) = self.exchanges.get_mut(&id) {
            ex.stats.datagrams_sent += 1;
            ex.stats.bytes_sent += n as u64;
        }
    }

    fn protocol(&mut self, id: ExchangeId, what: &'static str) {
        let peer = match self.exchanges.get(&id) {
            Some(e) => e.peer,
            None => return,
        };
        self.complete(id, Err(ClientError::Protocol { peer, what }));
    }

    fn complete(&mut self, id: ExchangeId, result: Result<Response, ClientError>) {
        if let Some(ex) = self.exchanges.remove(&id) {
            self.events.push_back(ClientEvent::Completed {
                id,
                result,
                stats: ex.stats,
            });
        }
    }

    fn on_response(&mut self, id: ExchangeId, p: &Packet, now: Instant) {
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let peer = ex.peer;
        if ex.etag.is_none() {
            ex.etag = p
                .get_option(CoapOption::ETag)
                .and_then(|l| l.front().cloned());
        }
        let MessageClass::Response(code) = p.header.code else {
            self.protocol(id, "expected a response code");
            return;
        };
        let (Ok(b1), Ok(b2)) = (
            Block::get(p, CoapOption::Block1),
            Block::get(p, CoapOption::Block2),
        ) else {
            self.protocol(id, "malformed Block1/Block2 option");
            return;
        };
        match ex.phase {
            Phase::Upload => {
                if code == Code::Continue {
                    let (Some(b1), Some((sent, len))) = (b1, ex.sent_block) else {
                        self.protocol(id, "2.31 Continue without a block in flight");
                        return;
                    };
                    if b1.num != sent.num || !sent.more {
                        self.protocol(id, "2.31 Continue for another block");
                        return;
                    }
                    ex.up_offset += len;
                    // The server may ask for smaller blocks (RFC 7959 §2.5).
                    ex.up_szx = ex.up_szx.min(b1.szx);
                    self.send_next(id, now);
                    return;
                }
                self.start_download_or_finish(id, code, b2, &p.payload, now);
            }
            Phase::Download(code0) => {
                if code.is_error() {
                    self.complete(
                        id,
                        Err(ClientError::Refused {
                            peer,
                            code: coap_lite::MessageClass::Response(code).to_string(),
                        }),
                    );
                    return;
                }
                let Some(b2) = b2 else {
                    self.protocol(id, "block of a response without Block2");
                    return;
                };
                if b2.offset() != ex.down.len() {
                    self.protocol(id, "Block2 block at an unexpected offset");
                    return;
                }
                self.start_download_or_finish(id, code0, Some(b2), &p.payload, now);
            }
        }
    }

    fn start_download_or_finish(
        &mut self,
        id: ExchangeId,
        code: Code,
        b2: Option<Block>,
        payload: &[u8],
        now: Instant,
    ) {
        let limit = self.config.max_body;
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        if let Some(b2) = b2 {
            if b2.offset() != ex.down.len() {
                self.protocol(id, "first Block2 block is not block 0");
                return;
            }
            if b2.more && payload.len() != b2.size() {
                self.protocol(id, "Block2 block shorter than its size");
                return;
            }
        }
        if ex.down.len() + payload.len() > limit {
            let size = ex.down.len() + payload.len();
            self.complete(id, Err(ClientError::TooLarge { size, limit }));
            return;
        }
        ex.down.extend_from_slice(payload);
        match b2 {
            Some(b2) if b2.more => {
                ex.phase = Phase::Download(code);
                ex.down_szx = b2.szx.min(ex.down_szx);
                self.send_next(id, now);
            }
            _ => {
                let body = std::mem::take(&mut ex.down);
                let etag = ex.etag.take();
                self.complete(id, Ok(Response { code, body, etag }));
            }
        }
    }

    /// Builds and sends the next message of exchange `id`.
    fn send_next(&mut self, id: ExchangeId, now: Instant) {
        let cf = self.config.content_format;
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        let jitter = (self.rng.next_u32() as f64) / (u32::MAX as f64);
        let factor = 1.0 + jitter * (self.config.ack_random_factor.max(1.0) - 1.0);
        let timeout = self.config.ack_timeout.mul_f64(factor);
        let Some(ex) = self.exchanges.get_mut(&id) else {
            return;
        };
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.code = MessageClass::Request(if ex.get.is_some() {
            RequestType::Get
        } else {
            RequestType::Post
        });
        if let (Some(tags), Phase::Upload) = (&ex.get, ex.phase) {
            for t in tags {
                p.add_option(CoapOption::ETag, t.clone());
            }
        }
        p.header.message_id = mid;
        p.set_token(ex.token.clone());
        for seg in &ex.path {
            p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
        }
        for q in &ex.query {
            p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
        }
        // No Accept: the resource has one format, and every request of an exchange must
        // carry the same options (apart from Block1/Block2/Size1), or a server that keys
        // reassembly on them (libcoap does) starts another body; on it, Accept would cost
        // 3 bytes in every datagram of a 51-byte frame.
        match ex.phase {
            Phase::Upload => {
                let size = crate::block::szx_size(ex.up_szx);
                if !ex.body.is_empty() {
                    set_uint(&mut p, CoapOption::ContentFormat, u32::from(cf));
                }
                if ex.up_offset == 0 && ex.body.len() <= size {
                    p.payload = ex.body.clone();
                    ex.sent_block = None;
                } else {
                    let end = (ex.up_offset + size).min(ex.body.len());
                    let block = Block {
                        num: (ex.up_offset / size) as u32,
                        more: end < ex.body.len(),
                        szx: ex.up_szx,
                    };
                    p.payload = ex.body.get(ex.up_offset..end).unwrap_or(&[]).to_vec();
                    block.set(&mut p, CoapOption::Block1);
                    if block.num == 0 {
                        set_uint(&mut p, CoapOption::Size1, ex.body.len() as u32);
                    }
                    ex.sent_block = Some((block, end - ex.up_offset));
                }
                if ex.sent_block.is_none_or(|(b, _)| !b.more) {
                    // Ask for our block size for the response (RFC 7959 §2.4).
                    Block {
                        num: 0,
                        more: false,
                        szx: ex.down_szx,
                    }
                    .set(&mut p, CoapOption::Block2);
                }
            }
            Phase::Download(_) => {
                Block {
                    num: (ex.down.len() / crate::block::szx_size(ex.down_szx)) as u32,
                    more: false,
                    szx: ex.down_szx,
                }
                .set(&mut p, CoapOption::Block2);
            }
        }
        let data = match p.to_bytes_unlimited() {
            Ok(d) => d,
            Err(e) => {
                let msg = e.to_string();
                self.complete(id, Err(ClientError::Encode(msg)));
                return;
            }
        };
        ex.stats.datagrams_sent += 1;
        ex.stats.bytes_sent += data.len() as u64;
        ex.wait_deadline = None;
        ex.inflight = Some(Inflight {
            mid,
            data: data.clone(),
            retransmits: 0,
            timeout,
            deadline: now + timeout,
            started: now,
        });
        self.outbox.push_back(Transmit {
            peer: ex.peer,
            data,
        });
    }
}
