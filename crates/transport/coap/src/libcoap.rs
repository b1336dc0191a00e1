//! libcoap's command-line client and server (Debian package `libcoap3-bin`) as an
//! independent CoAP peer: interop tests run our server against `coap-client` and our
//! client against `coap-server`, as [`crate::relay`] runs either against a bad link.
//!
//! [`LibCoapClient::request`] runs `coap-client` once at verbosity 7 and reads its log:
//! the code of the last response it processed, the datagrams it sent and received, its
//! retransmissions and the datagrams it was told to drop. `coap-client` exits 0 whatever
//! the response, so the code comes from that log, never from the exit status.
//!
//! ```no_run
//! use otrp_coap::libcoap::{LibCoapClient, Req};
//!
//! let client = LibCoapClient::find().expect("apt-get install libcoap3-bin");
//! let ex = client.request(std::path::Path::new("/tmp"), &Req {
//!     method: "post",
//!     uri: "coap://127.0.0.1:5683/teep".into(),
//!     block: Some(32),
//!     content_format: Some(otrp_coap::TEEP_CBOR_CONTENT_FORMAT),
//!     ..Req::default()
//! })?;
//! assert_eq!(ex.code, "2.04");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tests that need libcoap fail instead of skipping when this variable is set (`.ci/run`
/// sets it; `scripts/setup.sh` installs the package).
pub const REQUIRE_ENV: &str = "OTRP_TEST_REQUIRE_LIBCOAP";

/// `libcoap3-bin`'s clients, the one without (D)TLS first: plain CoAP is all we test.
const CLIENTS: [&str; 4] = [
    "coap-client-notls",
    "coap-client",
    "coap-client-openssl",
    "coap-client-gnutls",
];

/// `libcoap3-bin`'s servers, in the same order.
const SERVERS: [&str; 4] = [
    "coap-server-notls",
    "coap-server",
    "coap-server-openssl",
    "coap-server-gnutls",
];

static SEQ: AtomicU64 = AtomicU64::new(0);

fn find_on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Whether a test that did not find libcoap must fail rather than skip.
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some()
}

/// The message a test prints (when skipping) or fails with (when [`required`]).
pub fn missing_message(test: &str) -> String {
    format!(
        "{test}: libcoap's command-line tools are not on PATH; install them with \
         `apt-get install libcoap3-bin` (scripts/setup.sh does)"
    )
}

/// libcoap's `coap-client`.
#[derive(Clone, Debug)]
pub struct LibCoapClient {
    /// The binary.
    pub bin: PathBuf,
}

/// One request for [`LibCoapClient::request`].
#[derive(Clone, Debug, Default)]
pub struct Req {
    /// `-m`: `get`, `post`, `put`…
    pub method: &'static str,
    /// The `coap://` URI, with its path and query.
    pub uri: String,
    /// `-f`: the payload.
    pub body: Option<Vec<u8>>,
    /// `-b`: the block size libcoap sends Block1 with and asks for in Block2.
    pub block: Option<usize>,
    /// `-t`: the Content-Format of the payload.
    pub content_format: Option<u16>,
    /// `-l`: the datagrams libcoap must not send (1-based list, e.g. `"2,5"`).
    pub drop: Option<&'static str>,
}

/// One request as libcoap saw it.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// The code of the last response it processed (`"2.04"`, `"4.03"`…), empty if none.
    pub code: String,
    /// The payload it wrote, reassembled from all Block2 blocks.
    pub body: Vec<u8>,
    /// Datagrams it sent, the dropped ones included.
    pub datagrams_sent: usize,
    /// Datagrams it received.
    pub datagrams_received: usize,
    /// Its retransmissions.
    pub retransmissions: usize,
    /// Datagrams it dropped as [`Req::drop`] told it.
    pub dropped: usize,
    /// The block sizes of the Block2 options in the responses it received.
    pub response_block_sizes: std::collections::BTreeSet<usize>,
    /// Its whole log, for failure messages.
    pub log: String,
}

impl LibCoapClient {
    /// `coap-client` from `PATH`.
    pub fn find() -> Option<LibCoapClient> {
        find_on_path(&CLIENTS).map(|bin| LibCoapClient { bin })
    }

    /// Runs `req` (blocking), with its payload and output in files under `dir` that are
    /// removed again.
    ///
    /// # Errors
    ///
    /// `dir` or a file in it could not be written, or the binary could not be run.
    pub fn request(&self, dir: &Path, req: &Req) -> std::io::Result<Exchange> {
        std::fs::create_dir_all(dir)?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let stamp = format!("{}-{n}", std::process::id());
        let out = dir.join(format!("libcoap-out-{stamp}.bin"));
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-v", "7", "-B", "60", "-m", req.method, "-o"])
            .arg(&out);
        let input = dir.join(format!("libcoap-in-{stamp}.bin"));
        if let Some(body) = &req.body {
            std::fs::write(&input, body)?;
            cmd.arg("-f").arg(&input);
        }
        if let Some(b) = req.block {
            cmd.args(["-b", &b.to_string()]);
        }
        if let Some(cf) = req.content_format {
            cmd.args(["-t", &cf.to_string()]);
        }
        if let Some(d) = req.drop {
            cmd.args(["-l", d]);
        }
        cmd.arg(&req.uri).stdin(Stdio::null());
        let output = cmd.output()?;
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let body = std::fs::read(&out).unwrap_or_default();
        // Both files are this call's alone; a missing one is no error.
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&input);
        Ok(Exchange {
            code: last_code(&log),
            body,
            datagrams_sent: count(&log, |l| l.contains(" sent ") && l.ends_with(" bytes")),
            datagrams_received: count(&log, |l| l.contains(" received ") && l.ends_with(" bytes")),
            retransmissions: count(&log, |l| l.contains("retransmission #")),
            dropped: count(&log, |l| l.contains("Packet ") && l.ends_with(" dropped")),
            response_block_sizes: response_block_sizes(&log),
            log,
        })
    }

    /// [`LibCoapClient::request`] on Tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`LibCoapClient::request`]; also when the blocking task could not finish.
    pub async fn run(&self, dir: &Path, req: Req) -> std::io::Result<Exchange> {
        let (me, dir) = (self.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || me.request(&dir, &req))
            .await
            .map_err(std::io::Error::other)?
    }
}

fn count(log: &str, pred: impl Fn(&str) -> bool) -> usize {
    log.lines().filter(|l| pred(l.trim_end())).count()
}

/// The SZX sizes of the Block2 options of the responses in the log's PDU dumps
/// (`v:1 t:ACK c:2.04 i:… [ …, Block2:3/M/32, … ]`).
fn response_block_sizes(log: &str) -> std::collections::BTreeSet<usize> {
    log.lines()
        .filter(|l| l.starts_with("v:1 t:ACK c:2.") || l.starts_with("v:1 t:NON c:2."))
        .filter_map(|l| {
            let b2 = l.split("Block2:").nth(1)?;
            let value = b2.split([',', ' ', ']']).next()?;
            value.rsplit('/').next()?.parse().ok()
        })
        .collect()
}

/// The code of the last "process incoming X.YY response" line of the log.
fn last_code(log: &str) -> String {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("process incoming ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .next_back()
        .unwrap_or_default()
}

/// libcoap's `coap-server` on a loopback port, with dynamic resources (`-d`): a `PUT`
/// creates one, a `GET` serves it block-wise. Killed on drop.
#[derive(Debug)]
pub struct LibCoapServer {
    child: Child,
    addr: SocketAddr,
}

impl LibCoapServer {
    /// Starts `coap-server` from `PATH` on a free loopback port, allowing up to
    /// `resources` dynamic resources; `None` when it is not installed.
    ///
    /// # Errors
    ///
    /// It could not be started, or did not answer within 5 s.
    pub fn start(resources: usize) -> std::io::Result<Option<LibCoapServer>> {
        let Some(bin) = find_on_path(&SERVERS) else {
            return Ok(None);
        };
        // A port the OS just handed out and released is free unless something takes it in
        // between (coap-server also listens on TCP at that number): then try another.
        let mut last = None;
        for _ in 0..3 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new(&bin)
                .args(["-A", "127.0.0.1", "-p", &port.to_string()])
                .args(["-d", &resources.to_string(), "-v", "3"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let mut server = LibCoapServer {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match server.wait_ready() {
                Ok(()) => return Ok(Some(server)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("coap-server did not start")))
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Polls with an empty confirmable message (a CoAP ping, answered with RST) until the
    /// server answers; fails at once if it exited (say, its port was taken).
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut buf = [0u8; 64];
        for mid in 0..50u16 {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "libcoap's coap-server on {} exited: {status}",
                    self.addr
                )));
            }
            let [hi, lo] = mid.to_be_bytes();
            // Version 1, CON, token length 0; code 0.00; message id.
            sock.send_to(&[0x40, 0x00, hi, lo], self.addr)?;
            if sock.recv_from(&mut buf).is_ok() {
                return Ok(());
            }
            // A refusal (ICMP) can come back at once: give the server time to bind.
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("libcoap's coap-server did not answer on {}", self.addr),
        ))
    }
}

impl Drop for LibCoapServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_response_code_and_the_datagrams_are_read_off_the_log() {
        let log = "\
Nov 27 DEBG *  127.0.0.1:1 <-> 127.0.0.1:2 UDP : sent 40 bytes
Nov 27 DEBG Packet 2 dropped
Nov 27 DEBG *  127.0.0.1:1 <-> 127.0.0.1:2 UDP : sent 40 bytes
Nov 27 DEBG ** 127.0.0.1:1 <-> 127.0.0.1:2 UDP : mid=0x1: retransmission #1
Nov 27 DEBG *  127.0.0.1:1 <-> 127.0.0.1:2 UDP : received 20 bytes
Nov 27 DEBG ** process incoming 2.31 response:
Nov 27 DEBG *  127.0.0.1:1 <-> 127.0.0.1:2 UDP : received 12 bytes
Nov 27 DEBG ** process incoming 2.04 response:
";
        assert_eq!(last_code(log), "2.04");
        assert_eq!(
            count(log, |l| l.contains(" sent ") && l.ends_with(" bytes")),
            2
        );
        assert_eq!(count(log, |l| l.contains("retransmission #")), 1);
        assert_eq!(
            count(log, |l| l.contains("Packet ") && l.ends_with(" dropped")),
            1
        );
        assert_eq!(last_code("no response at all"), "");
        let dumps = "\
v:1 t:ACK c:2.04 i:247e {01} [ Content-Format:65000, Block2:0/M/64, Block1:0/_/32 ]
v:1 t:CON c:POST i:247f {02} [ Uri-Path:teep, Block2:1/_/16 ]
v:1 t:ACK c:2.04 i:247f {02} [ Block2:1/_/32 ]
v:1 t:ACK c:4.08 i:2480 {03} [ ]
";
        assert_eq!(
            response_block_sizes(dumps).into_iter().collect::<Vec<_>>(),
            vec![32, 64],
            "responses only, not the request's Block2"
        );
    }
}
