//! Sans-IO CoAP server: message-id deduplication, Block1 reassembly per (peer, token),
//! Block2 delivery of large responses, piggybacked answers. A block whose token is new
//! continues the one transfer in progress for the same peer, method, path and query (and,
//! for Block1, Request-Tag): clients may change the token between blocks (RFC 9175 §3.3;
//! libcoap does).

use crate::block::{get_uint, set_uint, szx_size, Block};
use crate::{Code, Config, Request, Response, Transmit, CBOR_CONTENT_FORMAT};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a complete request handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What a [`ServerCore`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A complete request (all Block1 blocks reassembled); answer it with
    /// [`ServerCore::respond`]. Each request is reported exactly once, however often the
    /// network duplicated or the client retransmitted it.
    Request {
        /// Pass it back to [`ServerCore::respond`].
        id: RequestId,
        /// The request.
        request: Request,
    },
}

#[derive(Debug)]
enum Dedup {
    /// The application has the request; retransmissions are ignored meanwhile.
    InProgress,
    /// The answer, sent again for every retransmission.
    Replied(Vec<u8>),
}

#[derive(Debug)]
struct DedupEntry {
    state: Dedup,
    expires: Instant,
    /// Hash of the request datagram: a retransmission is byte-identical, a different
    /// message reusing the id (16-bit wrap within a long transfer) is not.
    fingerprint: u64,
}

fn fingerprint(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

#[derive(Debug)]
struct Upload {
    buf: Vec<u8>,
    expires: Instant,
    request: UploadKey,
}

/// The Request-Tag option (RFC 9175 §3): tells apart concurrent block-wise bodies of one
/// client to one resource.
const REQUEST_TAG: CoapOption = CoapOption::Unknown(292);

/// A Block1 body apart from its token: the request and its Request-Tag (RFC 9175 §3.3:
/// a client may send each block with a new token; libcoap does, with a Request-Tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct UploadKey {
    request: RequestKey,
    tag: Option<Vec<u8>>,
}

impl UploadKey {
    fn of(peer: SocketAddr, p: &Packet) -> UploadKey {
        UploadKey {
            request: RequestKey::of(peer, p),
            tag: p.get_option(REQUEST_TAG).and_then(|l| l.front().cloned()),
        }
    }
}

/// The tokens of the transfers in progress for each request key, to find the transfer a
/// block with an unknown token continues: the one in progress for that key, if only one.
#[derive(Debug)]
struct TokensByRequest<K>(HashMap<K, Vec<Vec<u8>>>);

impl<K: std::hash::Hash + Eq> TokensByRequest<K> {
    fn new() -> Self {
        TokensByRequest(HashMap::new())
    }
    fn add(&mut self, key: K, token: Vec<u8>) {
        self.0.entry(key).or_default().push(token);
    }
    fn remove(&mut self, key: &K, token: &[u8]) {
        if let Some(tokens) = self.0.get_mut(key) {
            tokens.retain(|t| t != token);
            if tokens.is_empty() {
                self.0.remove(key);
            }
        }
    }
    /// The token of the one transfer in progress for `key`.
    fn only(&self, key: &K) -> Option<&Vec<u8>> {
        match self.0.get(key).map(Vec::as_slice) {
            Some([token]) => Some(token),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Download {
    code: Code,
    body: Arc<[u8]>,
    etag: Option<Vec<u8>>,
    expires: Instant,
    request: RequestKey,
    /// `body` is the one of [`ServerCore::shared`] under `etag`, counted there once for
    /// all the downloads of that representation.
    shared: bool,
}

/// One representation (a body with an ETag, such as a batch package every device
/// fetches) served to several clients at once: held once, whatever their number.
#[derive(Debug)]
struct SharedBody {
    body: Arc<[u8]>,
    /// Downloads serving it.
    users: usize,
}

impl SharedBody {
    fn cost(&self, etag: &[u8]) -> usize {
        ENTRY_COST + self.body.len() + etag.len()
    }
}

/// A request apart from its token: clients may send each Block2 request of one response
/// with a new token (RFC 7959 §2.4 asks only for the same options; libcoap does), so a
/// follow-up whose token we do not know is matched on this.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    peer: SocketAddr,
    get: bool,
    path: String,
    query: Vec<String>,
}

impl RequestKey {
    fn of(peer: SocketAddr, p: &Packet) -> RequestKey {
        RequestKey {
            peer,
            get: p.header.code == MessageClass::Request(RequestType::Get),
            path: format!("/{}", option_strings(p, CoapOption::UriPath).join("/")),
            query: option_strings(p, CoapOption::UriQuery),
        }
    }
}

/// The values of a repeatable string option (Uri-Path, Uri-Query), lossily as UTF-8.
fn option_strings(p: &Packet, option: CoapOption) -> Vec<String> {
    p.get_option(option)
        .map(|l| {
            l.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug)]
struct Pending {
    peer: SocketAddr,
    mid: u16,
    token: Vec<u8>,
    confirmable: bool,
    block1: Option<Block>,
    b2_szx: u8,
    request: RequestKey,
}

type PeerToken = (SocketAddr, Vec<u8>);

/// The keys of `table` whose entries expire at or before `now`.
fn expired<V>(
    table: &HashMap<PeerToken, V>,
    now: Instant,
    expires: impl Fn(&V) -> Instant,
) -> Vec<PeerToken> {
    table
        .iter()
        .filter(|(_, v)| expires(v) <= now)
        .map(|(k, _)| k.clone())
        .collect()
}

/// What one entry of the server's tables costs beyond its buffers (map slot, key, token,
/// timer; an estimate), counted against [`Config::max_held_bytes`].
const ENTRY_COST: usize = 128;
/// Room kept for the answer to a request with the application, beyond one block.
const ANSWER_HEADROOM: usize = 64;
/// At most this much is allocated up front for a Block1 body, whatever its Size1 says;
/// the rest as the blocks come.
const UPLOAD_PREALLOC: usize = 4 << 10;

impl RequestKey {
    /// Its strings, held once in its table and once in the table's index.
    fn cost(&self) -> usize {
        2 * (self.path.len() + self.query.iter().map(String::len).sum::<usize>())
    }
}

impl DedupEntry {
    fn cost(&self) -> usize {
        ENTRY_COST
            + match &self.state {
                Dedup::InProgress => 0,
                Dedup::Replied(bytes) => bytes.capacity(),
            }
    }
}

impl Upload {
    fn cost(&self) -> usize {
        ENTRY_COST
            + self.buf.capacity()
            + self.request.request.cost()
            + self.request.tag.as_ref().map_or(0, Vec::len)
    }
}

impl Download {
    fn cost(&self) -> usize {
        ENTRY_COST
            + if self.shared { 0 } else { self.body.len() }
            + self.request.cost()
            + self.etag.as_ref().map_or(0, Vec::len)
    }
}

impl Pending {
    /// With room for its answer (one block), which replaces it in the dedup table.
    fn cost(&self) -> usize {
        ENTRY_COST + self.request.cost() + szx_size(self.b2_szx) + ANSWER_HEADROOM
    }
}

/// The server state machine. Feed it datagrams ([`ServerCore::handle_datagram`]), answers
/// ([`ServerCore::respond`]) and timer expiries ([`ServerCore::handle_timeout`]); drain
/// [`ServerCore::poll_transmit`] and [`ServerCore::poll_event`] after each call.
#[derive(Debug)]
pub struct ServerCore {
    config: Config,
    next_id: u64,
    next_mid: u16,
    dedup: HashMap<(SocketAddr, u16), DedupEntry>,
    uploads: HashMap<PeerToken, Upload>,
    uploads_by_request: TokensByRequest<UploadKey>,
    downloads: HashMap<PeerToken, Download>,
    downloads_by_request: TokensByRequest<RequestKey>,
    /// Bodies with an ETag being served, by ETag.
    shared: HashMap<Vec<u8>, SharedBody>,
    pending: HashMap<RequestId, Pending>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    next_sweep: Option<Instant>,
    /// Fingerprint of the datagram being handled.
    current_print: u64,
    /// Bytes held for the entries of the tables above ([`Config::max_held_bytes`]).
    held: usize,
    /// Requests refused for want of room.
    busy_refusals: u64,
    /// No warning about refusals for want of room before this.
    quiet_until: Option<Instant>,
}

impl ServerCore {
    /// A server with `config`.
    pub fn new(config: Config) -> Self {
        ServerCore {
            config,
            next_id: 0,
            next_mid: 0,
            dedup: HashMap::new(),
            uploads: HashMap::new(),
            uploads_by_request: TokensByRequest::new(),
            downloads: HashMap::new(),
            downloads_by_request: TokensByRequest::new(),
            shared: HashMap::new(),
            pending: HashMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: None,
            current_print: 0,
            held: 0,
            busy_refusals: 0,
            quiet_until: None,
        }
    }

    /// Bytes held for exchanges in progress, as counted against
    /// [`Config::max_held_bytes`].
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Requests answered 5.03 Service Unavailable because the server held
    /// [`Config::max_held_bytes`] or [`Config::max_uploads`] already.
    pub fn busy_refusals(&self) -> u64 {
        self.busy_refusals
    }

    /// Whether `extra` more bytes stay within [`Config::max_held_bytes`].
    fn fits(&self, extra: usize) -> bool {
        self.held.saturating_add(extra) <= self.config.max_held_bytes
    }

    /// [`ServerCore::held_bytes`] counted afresh from the tables.
    fn recount(&self) -> usize {
        self.dedup.values().map(DedupEntry::cost).sum::<usize>()
            + self.uploads.values().map(Upload::cost).sum::<usize>()
            + self.downloads.values().map(Download::cost).sum::<usize>()
            + self.shared.iter().map(|(e, b)| b.cost(e)).sum::<usize>()
            + self.pending.values().map(Pending::cost).sum::<usize>()
    }

    /// Gives back `bytes` of [`ServerCore::held_bytes`] (saturating: a miscount must not
    /// wrap into a server that refuses everything; the next sweep counts afresh).
    fn release(&mut self, bytes: usize) {
        debug_assert!(self.held >= bytes, "released more than held");
        self.held = self.held.saturating_sub(bytes);
    }

    fn put_dedup(&mut self, key: (SocketAddr, u16), entry: DedupEntry) {
        self.held += entry.cost();
        if let Some(old) = self.dedup.insert(key, entry) {
            self.release(old.cost());
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`ServerCore::handle_timeout`] must be called next (cache expiry), if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Number of Block1 uploads in progress.
    pub fn uploads_in_progress(&self) -> usize {
        self.uploads.len()
    }

    /// Number of requests handed out and not yet answered.
    pub fn requests_pending(&self) -> usize {
        self.pending.len()
    }

    fn sweep_interval(&self) -> Duration {
        (self.config.exchange_lifetime / 8).max(Duration::from_millis(10))
    }

    fn arm_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.sweep_interval());
        }
    }

    /// Drops expired deduplication entries, abandoned uploads and unfetched responses.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| t > now) {
            return;
        }
        debug_assert_eq!(self.held, self.recount(), "held bytes drifted");
        self.dedup
            .retain(|_, e| e.expires > now || matches!(e.state, Dedup::InProgress));
        // Expired transfers go through remove_*, which keep their indexes and the count
        // of shared bodies.
        for key in expired(&self.uploads, now, |u| u.expires) {
            self.remove_upload(&key);
        }
        for key in expired(&self.downloads, now, |d| d.expires) {
            self.remove_download(&key);
        }
        self.held = self.recount();
        self.next_sweep = None;
        if !(self.dedup.is_empty() && self.uploads.is_empty() && self.downloads.is_empty()) {
            self.arm_sweep(now);
        }
    }

    /// Processes a datagram from `peer`.
    pub fn handle_datagram(&mut self, peer: SocketAddr, data: &[u8], now: Instant) {
        let Ok(p) = Packet::from_bytes(data) else {
            tracing::debug!(%peer, "ignoring a datagram that is not CoAP");
            return;
        };
        let ty = p.header.get_type();
        if matches!(ty, MessageType::Acknowledgement | MessageType::Reset) {
            return; // we send no confirmable messages
        }
        let mid = p.header.message_id;
        let print = fingerprint(data);
        if let Some(entry) = self
            .dedup
            .get(&(peer, mid))
            .filter(|e| e.fingerprint == print)
        {
            if let Dedup::Replied(bytes) = &entry.state {
                self.outbox.push_back(Transmit {
                    peer,
                    data: bytes.clone(),
                });
            }
            return;
        }
        self.current_print = print;
        let method = match p.header.code {
            MessageClass::Request(m) => m,
            MessageClass::Empty if ty == MessageType::Confirmable => {
                // CoAP ping: answer with Reset (RFC 7252 §4.3).
                let mut rst = Packet::new();
                rst.header.set_type(MessageType::Reset);
                rst.header.code = MessageClass::Empty;
                rst.header.message_id = mid;
                if let Ok(bytes) = rst.to_bytes() {
                    self.outbox.push_back(Transmit { peer, data: bytes });
                }
                return;
            }
            _ => return,
        };
        if method != RequestType::Post && method != RequestType::Get {
            self.reply(peer, &p, Code::MethodNotAllowed, now, |_| {});
            return;
        }
        if let Some(cf) = get_uint(&p, CoapOption::ContentFormat) {
            if cf != u32::from(self.config.content_format) && cf != u32::from(CBOR_CONTENT_FORMAT) {
                self.reply(peer, &p, Code::UnsupportedContentFormat, now, |_| {});
                return;
            }
        }
        let (Ok(b1), Ok(b2)) = (
            Block::get(&p, CoapOption::Block1),
            Block::get(&p, CoapOption::Block2),
        ) else {
            self.reply(peer, &p, Code::BadOption, now, |_| {});
            return;
        };
        let key: PeerToken = (peer, p.get_token().to_vec());
        if let Some(b2) = b2.filter(|b| b.num > 0) {
            self.serve_block2(peer, &p, key, b2, now);
            return;
        }
        // The response's block size: what the client asked for in Block2, else the size
        // it sends its own blocks in (a client on a 51-byte LoRaWAN frame that uploads in
        // 32-byte blocks cannot take 64-byte ones back; libcoap asks no Block2 size up
        // front), never more than ours.
        let b2_szx = b2.or(b1).map(|b| b.szx).unwrap_or(6).min(self.config.szx());
        let Some(b1) = b1 else {
            self.deliver(peer, &p, p.payload.clone(), None, b2_szx, now);
            return;
        };
        if b1.more && p.payload.len() != b1.size() {
            self.reply(peer, &p, Code::BadRequest, now, |_| {});
            return;
        }
        let max = self.config.max_body;
        if b1.num == 0 {
            let size1 = get_uint(&p, CoapOption::Size1).map(|s| s as usize);
            if size1.is_some_and(|s| s > max) {
                self.reply(peer, &p, Code::RequestEntityTooLarge, now, |r| {
                    set_uint(r, CoapOption::Size1, u32::try_from(max).unwrap_or(u32::MAX));
                });
                return;
            }
            if self.uploads.len() >= self.config.max_uploads && !self.uploads.contains_key(&key) {
                self.refuse_busy(peer, &p, now);
                return;
            }
            let cap = size1.unwrap_or(0).min(max).min(UPLOAD_PREALLOC);
            self.remove_upload(&key);
            let request = UploadKey::of(peer, &p);
            let upload = Upload {
                buf: Vec::with_capacity(cap),
                expires: now + self.config.exchange_lifetime,
                request,
            };
            if !self.fits(upload.cost()) {
                self.refuse_busy(peer, &p, now);
                return;
            }
            self.held += upload.cost();
            self.uploads_by_request
                .add(upload.request.clone(), key.1.clone());
            self.uploads.insert(key.clone(), upload);
            self.arm_sweep(now);
        }
        // The body this block continues: by its token, or (a client that sends each
        // block with a new token) the one body in progress for this request.
        let key = if self.uploads.contains_key(&key) {
            key
        } else {
            match self.uploads_by_request.only(&UploadKey::of(peer, &p)) {
                Some(token) => (peer, token.clone()),
                None => key,
            }
        };
        let lifetime = self.config.exchange_lifetime;
        let Some(up) = self.uploads.get_mut(&key) else {
            self.reply(peer, &p, Code::RequestEntityIncomplete, now, |_| {});
            return;
        };
        let offset = b1.offset();
        if offset != up.buf.len() {
            let dup = up
                .buf
                .get(offset..offset + p.payload.len())
                .is_some_and(|have| have == p.payload.as_slice());
            if dup && b1.more {
                let echo = Block {
                    szx: b1.szx.min(self.config.szx()),
                    ..b1
                };
                self.reply(peer, &p, Code::Continue, now, |r| {
                    echo.set(r, CoapOption::Block1)
                });
            } else {
                self.remove_upload(&key);
                self.reply(peer, &p, Code::RequestEntityIncomplete, now, |_| {});
            }
            return;
        }
        let need = up.buf.len() + p.payload.len();
        if need > max {
            self.remove_upload(&key);
            self.reply(peer, &p, Code::RequestEntityTooLarge, now, |r| {
                set_uint(r, CoapOption::Size1, u32::try_from(max).unwrap_or(u32::MAX));
            });
            return;
        }
        let (len, capacity) = (up.buf.len(), up.buf.capacity());
        if need > capacity {
            // Grow by doubling (amortized), within the bound on what the server holds.
            let want = need.max(capacity.saturating_mul(2)).min(max);
            if !self.fits(want - capacity) {
                self.remove_upload(&key);
                self.refuse_busy(peer, &p, now);
                return;
            }
            let Some(up) = self.uploads.get_mut(&key) else {
                return;
            };
            up.buf.reserve_exact(want - len);
            self.held += up.buf.capacity() - capacity;
        }
        let Some(up) = self.uploads.get_mut(&key) else {
            return;
        };
        up.buf.extend_from_slice(&p.payload);
        up.expires = now + lifetime;
        if b1.more {
            // Ask for smaller blocks if the client's are larger than ours (RFC 7959 §2.5).
            let echo = Block {
                szx: b1.szx.min(self.config.szx()),
                ..b1
            };
            self.reply(peer, &p, Code::Continue, now, |r| {
                echo.set(r, CoapOption::Block1)
            });
            return;
        }
        let body = self.remove_upload(&key).map(|u| u.buf).unwrap_or_default();
        self.deliver(peer, &p, body, Some(b1), b2_szx, now);
    }

    /// Hands a complete request to the application.
    fn deliver(
        &mut self,
        peer: SocketAddr,
        p: &Packet,
        body: Vec<u8>,
        block1: Option<Block>,
        b2_szx: u8,
        now: Instant,
    ) {
        let request = RequestKey::of(peer, p);
        let mid = p.header.message_id;
        let pending = Pending {
            peer,
            mid,
            token: p.get_token().to_vec(),
            confirmable: p.header.get_type() == MessageType::Confirmable,
            block1: block1.map(|b| Block { more: false, ..b }),
            b2_szx,
            request: request.clone(),
        };
        let in_progress = DedupEntry {
            state: Dedup::InProgress,
            expires: now + self.config.exchange_lifetime,
            fingerprint: self.current_print,
        };
        if !self.fits(pending.cost() + in_progress.cost()) {
            self.refuse_busy(peer, p, now);
            return;
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let etags: Vec<Vec<u8>> = p
            .get_option(CoapOption::ETag)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        self.held += pending.cost();
        self.pending.insert(id, pending);
        self.put_dedup((peer, mid), in_progress);
        self.arm_sweep(now);
        self.events.push_back(ServerEvent::Request {
            id,
            request: Request {
                path: request.path,
                body,
                peer,
                get: request.get,
                etags,
                query: request.query,
            },
        });
    }

    /// Answers request `id` (unknown ids are ignored). A body larger than one block goes
    /// out block-wise: the first block now, the rest when the client asks (Block2). When
    /// keeping the rest would go beyond [`Config::max_held_bytes`], the answer is 5.03
    /// Service Unavailable with Max-Age instead.
    pub fn respond(&mut self, id: RequestId, response: Response, now: Instant) {
        let Some(pd) = self.pending.remove(&id) else {
            return;
        };
        self.release(pd.cost());
        let Response { code, body, etag } = response;
        let size = szx_size(pd.b2_szx);
        if body.len() <= size {
            let mut r = self.answer(&pd, code, etag.as_ref(), !body.is_empty());
            r.payload = body;
            self.send_reply(pd.peer, pd.mid, r, now);
            return;
        }
        let key = (pd.peer, pd.token.clone());
        self.remove_download(&key);
        // A body with an ETag that is being served already (the same bytes) is shared.
        let (body, shared, new_shared) = match etag.as_ref().map(|e| (e, self.shared.get(e))) {
            Some((_, Some(b))) if *b.body == *body => (b.body.clone(), true, 0),
            Some((_, Some(_))) => (Arc::from(body), false, 0),
            Some((e, None)) => {
                let body: Arc<[u8]> = Arc::from(body);
                let cost = SharedBody {
                    body: body.clone(),
                    users: 0,
                }
                .cost(e);
                (body, true, cost)
            }
            None => (Arc::from(body), false, 0),
        };
        let download = Download {
            code,
            body,
            etag,
            expires: now + self.config.exchange_lifetime,
            request: pd.request.clone(),
            shared,
        };
        // Room for the rest of the body, and for its first block, kept to answer
        // retransmissions.
        if !self.fits(download.cost() + new_shared + size + ANSWER_HEADROOM) {
            self.note_busy(now);
            let mut r =
                self.base_reply(pd.confirmable, pd.mid, &pd.token, Code::ServiceUnavailable);
            self.set_max_age(&mut r);
            self.send_reply(pd.peer, pd.mid, r, now);
            return;
        }
        let mut r = self.answer(&pd, download.code, download.etag.as_ref(), true);
        Block {
            num: 0,
            more: true,
            szx: pd.b2_szx,
        }
        .set(&mut r, CoapOption::Block2);
        set_uint(
            &mut r,
            CoapOption::Size2,
            u32::try_from(download.body.len()).unwrap_or(u32::MAX),
        );
        r.payload = download.body.get(..size).unwrap_or(&[]).to_vec();
        self.held += download.cost();
        if let Some(e) = download.etag.as_ref().filter(|_| download.shared) {
            let entry = self.shared.entry(e.clone()).or_insert_with(|| SharedBody {
                body: download.body.clone(),
                users: 0,
            });
            entry.users += 1;
            self.held += new_shared;
        }
        self.downloads_by_request.add(pd.request, pd.token);
        self.downloads.insert(key, download);
        self.send_reply(pd.peer, pd.mid, r, now);
    }

    /// The answer's header for the request `pd`: code, echoed Block1, ETag, and the
    /// content-format when it carries a body.
    fn answer(&mut self, pd: &Pending, code: Code, etag: Option<&Vec<u8>>, body: bool) -> Packet {
        let mut r = self.base_reply(pd.confirmable, pd.mid, &pd.token, code);
        if let Some(b1) = pd.block1 {
            b1.set(&mut r, CoapOption::Block1);
        }
        if let Some(e) = etag {
            r.add_option(CoapOption::ETag, e.clone());
        }
        if body {
            set_uint(
                &mut r,
                CoapOption::ContentFormat,
                u32::from(self.config.content_format),
            );
        }
        r
    }

    /// Counts a refusal for want of room, and warns about it at most once per sweep
    /// interval (a flood would otherwise flood the log too).
    fn note_busy(&mut self, now: Instant) {
        self.busy_refusals += 1;
        if self.quiet_until.is_none_or(|t| now >= t) {
            tracing::warn!(
                held_bytes = self.held,
                max_held_bytes = self.config.max_held_bytes,
                uploads = self.uploads.len(),
                refused = self.busy_refusals,
                "CoAP server at its bound: answering new requests 5.03 until exchanges in \
                 progress finish or expire (raise Config::max_held_bytes if this is not a flood)"
            );
            self.quiet_until = Some(now + self.sweep_interval());
        }
    }

    /// Max-Age on a 5.03: retry after the next sweep, which frees what expired.
    fn set_max_age(&self, r: &mut Packet) {
        let secs = self.sweep_interval().as_secs().max(1);
        set_uint(
            r,
            CoapOption::MaxAge,
            u32::try_from(secs).unwrap_or(u32::MAX),
        );
    }

    /// Refuses `p` for want of room: 5.03 Service Unavailable with Max-Age, sent at once
    /// and not kept (a retransmission is refused again, or served if room was made).
    fn refuse_busy(&mut self, peer: SocketAddr, p: &Packet, now: Instant) {
        self.note_busy(now);
        let confirmable = p.header.get_type() == MessageType::Confirmable;
        let mut r = self.base_reply(
            confirmable,
            p.header.message_id,
            p.get_token(),
            Code::ServiceUnavailable,
        );
        self.set_max_age(&mut r);
        match r.to_bytes_unlimited() {
            Ok(data) => self.outbox.push_back(Transmit { peer, data }),
            Err(_) => tracing::warn!(%peer, "could not encode a 5.03 response"),
        }
    }

    fn serve_block2(
        &mut self,
        peer: SocketAddr,
        p: &Packet,
        key: PeerToken,
        b2: Block,
        now: Instant,
    ) {
        let lifetime = self.config.exchange_lifetime;
        let our = self.config.szx();
        let cf = self.config.content_format;
        // The token of the first request, or (a client that sends each block request
        // with a new token) the one download in progress for this request.
        let key = if self.downloads.contains_key(&key) {
            key
        } else {
            match self.downloads_by_request.only(&RequestKey::of(peer, p)) {
                Some(token) => (peer, token.clone()),
                None => key,
            }
        };
        let Some(d) = self.downloads.get_mut(&key) else {
            self.reply(peer, p, Code::RequestEntityIncomplete, now, |_| {});
            return;
        };
        let szx = b2.szx.min(our);
        let size = szx_size(szx);
        let offset = b2.offset();
        if offset >= d.body.len() {
            self.reply(peer, p, Code::BadOption, now, |_| {});
            return;
        }
        let end = (offset + size).min(d.body.len());
        let block = Block {
            num: (offset / size) as u32,
            more: end < d.body.len(),
            szx,
        };
        let code = d.code;
        let etag = d.etag.clone();
        let payload = d.body.get(offset..end).unwrap_or(&[]).to_vec();
        d.expires = now + lifetime;
        if !block.more {
            self.remove_download(&key);
        }
        let confirmable = p.header.get_type() == MessageType::Confirmable;
        let mut r = self.base_reply(confirmable, p.header.message_id, p.get_token(), code);
        set_uint(&mut r, CoapOption::ContentFormat, u32::from(cf));
        if let Some(e) = etag {
            r.add_option(CoapOption::ETag, e);
        }
        block.set(&mut r, CoapOption::Block2);
        r.payload = payload;
        if block.more {
            // The download is kept: a retransmitted request gets the same block from it
            // again, so the answer need not be kept too (a large body in small blocks
            // would otherwise keep one answer per block for the exchange lifetime).
            match r.to_bytes_unlimited() {
                Ok(data) => self.outbox.push_back(Transmit { peer, data }),
                Err(_) => tracing::warn!(%peer, "could not encode a response"),
            }
        } else {
            // The last block ends the download: its answer is kept for retransmissions.
            self.send_reply(peer, p.header.message_id, r, now);
        }
    }

    /// Forgets the download of `key` (a finished or replaced response), index included.
    fn remove_download(&mut self, key: &PeerToken) {
        if let Some(d) = self.downloads.remove(key) {
            self.release(d.cost());
            self.downloads_by_request.remove(&d.request, &key.1);
            if let Some(etag) = d.etag.filter(|_| d.shared) {
                let last = self.shared.get_mut(&etag).is_some_and(|b| {
                    b.users -= 1;
                    b.users == 0
                });
                if last {
                    if let Some(b) = self.shared.remove(&etag) {
                        self.release(b.cost(&etag));
                    }
                }
            }
        }
    }

    /// Forgets the upload of `key` (finished, refused or restarted), index included.
    fn remove_upload(&mut self, key: &PeerToken) -> Option<Upload> {
        let u = self.uploads.remove(key)?;
        self.release(u.cost());
        self.uploads_by_request.remove(&u.request, &key.1);
        Some(u)
    }

    fn base_reply(&mut self, confirmable: bool, mid: u16, token: &[u8], code: Code) -> Packet {
        let mut r = Packet::new();
        if confirmable {
            r.header.set_type(MessageType::Acknowledgement);
            r.header.message_id = mid;
        } else {
            r.header.set_type(MessageType::NonConfirmable);
            r.header.message_id = self.next_mid;
            self.next_mid = self.next_mid.wrapping_add(1);
        }
        r.header.code = MessageClass::Response(code);
        r.set_token(token.to_vec());
        r
    }

    /// Sends an immediate answer to `p`, built by `f` on top of the code.
    fn reply(
        &mut self,
        peer: SocketAddr,
        p: &Packet,
        code: Code,
        now: Instant,
        f: impl FnOnce(&mut Packet),
    ) {
        let confirmable = p.header.get_type() == MessageType::Confirmable;
        let mut r = self.base_reply(confirmable, p.header.message_id, p.get_token(), code);
        f(&mut r);
        self.send_reply(peer, p.header.message_id, r, now);
    }

    /// Encodes, caches for deduplication of `request_mid`, and queues `r`.
    fn send_reply(&mut self, peer: SocketAddr, request_mid: u16, r: Packet, now: Instant) {
        let Ok(bytes) = r.to_bytes_unlimited() else {
            tracing::warn!(%peer, "could not encode a response");
            return;
        };
        // An answer to a delivered request keeps that request's fingerprint; an immediate
        // answer belongs to the datagram being handled.
        let delivered = self
            .dedup
            .get(&(peer, request_mid))
            .filter(|e| matches!(e.state, Dedup::InProgress))
            .map(|e| e.fingerprint);
        let entry = DedupEntry {
            state: Dedup::Replied(bytes.clone()),
            expires: now + self.config.exchange_lifetime,
            fingerprint: delivered.unwrap_or(self.current_print),
        };
        // The answer to a delivered request had its room kept with the request. Other
        // answers (errors, Continue, blocks of a response) are kept only while there is
        // room: a retransmission of their request is then handled again, which gives the
        // same answer.
        if delivered.is_some() || self.fits(entry.cost()) {
            self.put_dedup((peer, request_mid), entry);
            self.arm_sweep(now);
        }
        self.outbox.push_back(Transmit { peer, data: bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientCore, ClientEvent};
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Genuine block-wise clients and a flood of forged requests share a server with a
    /// small bound: after every call the bytes it counts as held equal a count afresh
    /// of its tables, and stay within the bound.
    #[test]
    fn held_bytes_are_counted_exactly_and_stay_within_the_bound() {
        for seed in 0..4u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let config = Config {
                block_szx: 1,
                max_body: 4096,
                max_held_bytes: 24 << 10,
                exchange_lifetime: Duration::from_secs(4),
                ..Config::fast(Duration::from_millis(50))
            };
            let mut server = ServerCore::new(config.clone());
            let server_addr: SocketAddr = "10.0.0.2:5683".parse().unwrap();
            let clients: Vec<SocketAddr> = (1..=3)
                .map(|i| format!("10.0.1.{i}:5683").parse().unwrap())
                .collect();
            let mut cores: Vec<ClientCore> = clients
                .iter()
                .map(|_| ClientCore::new(config.clone(), &mut rng))
                .collect();
            let start = Instant::now();
            let mut now = start;
            let check = |s: &ServerCore, step: &str| {
                assert_eq!(s.held_bytes(), s.recount(), "seed {seed}, {step}");
                assert!(
                    s.held_bytes() <= s.config.max_held_bytes,
                    "seed {seed}, {step}"
                );
            };
            for (c, core) in cores.iter_mut().enumerate() {
                let len = 200 + 700 * c;
                core.post(server_addr, "/teep", vec![c as u8; len], now);
            }
            let mut completed = 0;
            for step in 0..20_000u32 {
                now += Duration::from_millis(1);
                // A forged datagram now and then: a new upload, a request, a block
                // request, or random bytes, from one of 500 addresses.
                if rng.next_u32() % 3 == 0 {
                    let from: SocketAddr =
                        format!("10.9.{}.{}:5683", rng.next_u32() % 2, rng.next_u32() % 250)
                            .parse()
                            .unwrap();
                    let mut p = Packet::new();
                    p.header.set_type(MessageType::Confirmable);
                    p.header.message_id = rng.next_u32() as u16;
                    p.set_token((rng.next_u32() % 8).to_be_bytes().to_vec());
                    p.add_option(CoapOption::UriPath, b"teep".to_vec());
                    let get = rng.next_u32() % 2 == 0;
                    p.header.code = MessageClass::Request(if get {
                        RequestType::Get
                    } else {
                        RequestType::Post
                    });
                    match rng.next_u32() % 4 {
                        0 => {
                            let num = rng.next_u32() % 8;
                            Block {
                                num,
                                more: true,
                                szx: 1,
                            }
                            .set(&mut p, CoapOption::Block1);
                            p.payload = vec![1; 32];
                        }
                        1 => Block {
                            num: rng.next_u32() % 4,
                            more: false,
                            szx: 1,
                        }
                        .set(&mut p, CoapOption::Block2),
                        2 => p.payload = vec![2; (rng.next_u32() % 40) as usize],
                        _ => {}
                    }
                    if let Ok(bytes) = p.to_bytes() {
                        server.handle_datagram(from, &bytes, now);
                    }
                    check(&server, "forged datagram");
                }
                // The application answers, with bodies of up to 3 KiB (Block2).
                // GETs get one of two representations with an ETag (shared while served;
                // now and then other bytes under the same ETag, which are not).
                while let Some(ServerEvent::Request { id, request }) = server.poll_event() {
                    let response = if request.get {
                        let v = (rng.next_u32() % 3) as u8;
                        let etag = vec![b'v', v.min(1)];
                        Response::content(vec![v; 1500 + usize::from(v) * 300], Some(etag))
                    } else {
                        let len = (request.body.len() * 3).min(3072);
                        Response::changed(vec![9; len])
                    };
                    server.respond(id, response, now);
                    check(&server, "respond");
                }
                // Datagrams between the genuine clients and the server, lossless.
                while let Some(t) = server.poll_transmit() {
                    if let Some(i) = clients.iter().position(|a| *a == t.peer) {
                        if let Some(core) = cores.get_mut(i) {
                            core.handle_datagram(server_addr, &t.data, now);
                        }
                    }
                }
                for (i, core) in cores.iter_mut().enumerate() {
                    core.handle_timeout(now);
                    while let Some(t) = core.poll_transmit() {
                        if let Some(from) = clients.get(i) {
                            server.handle_datagram(*from, &t.data, now);
                        }
                        check(&server, "client datagram");
                    }
                    while let Some(ClientEvent::Completed { result, .. }) = core.poll_event() {
                        completed += 1;
                        // Start another exchange: the clients keep the server busy.
                        let len = (rng.next_u32() % 2048) as usize;
                        core.post(server_addr, "/teep", vec![7; len], now);
                        let _ = result;
                    }
                }
                server.handle_timeout(now);
                check(&server, "timeout");
                if step % 5000 == 4999 {
                    // A quiet spell: everything of the flood expires.
                    now += Duration::from_secs(5);
                    server.handle_timeout(now);
                    check(&server, "quiet");
                }
            }
            assert!(
                completed > 10,
                "seed {seed}: the clients got through ({completed})"
            );
            assert!(
                server.busy_refusals() > 0,
                "seed {seed}: the bound was reached"
            );
        }
    }
}
