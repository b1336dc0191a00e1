//! A lossy, reordering UDP relay: a bad constrained link on loopback, for testing CoAP
//! clients and servers (ours or a peer's) against loss and reordering.
//!
//! ```no_run
//! # async fn demo(tam: std::net::SocketAddr) -> std::io::Result<()> {
//! use otrp_coap::relay::{lossy_relay, LinkModel};
//!
//! // Clients talk to `front`; 10 % of the datagrams (each way) are dropped and 10 % are
//! // delayed by 1–15 ms so that later ones overtake them. Same seed, same losses.
//! let front = lossy_relay(tam, LinkModel { loss: 0.10, reorder: 0.10, seed: 7 }).await?;
//! # let _ = front; Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;

/// What the link does to each datagram, decided by a seeded RNG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// Probability (0–1) that a datagram is dropped, in either direction.
    pub loss: f64,
    /// Probability (0–1) that a datagram that is not dropped is delayed by 1–15 ms.
    pub reorder: f64,
    /// RNG seed: the same seed and traffic give the same losses.
    pub seed: u64,
}

/// Starts a relay in front of `server` on an ephemeral loopback port and returns that
/// port's address. Each client address gets its own upstream socket, so the server sees
/// distinct peers. The relay runs on the current Tokio runtime until it is shut down.
///
/// # Errors
///
/// Binding the front socket failed.
pub async fn lossy_relay(server: SocketAddr, link: LinkModel) -> std::io::Result<SocketAddr> {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let addr = front.local_addr()?;
    let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(link.seed)));
    tokio::spawn(async move {
        let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf).await else {
                continue;
            };
            let up = match upstreams.get(&client) {
                Some(u) => u.clone(),
                None => {
                    let u = match UdpSocket::bind("127.0.0.1:0").await {
                        Ok(u) => Arc::new(u),
                        Err(e) => {
                            tracing::warn!(%client, error = %e, "relay: no upstream socket; datagram dropped");
                            continue;
                        }
                    };
                    upstreams.insert(client, u.clone());
                    // server -> client direction
                    let (u2, front2, rng2) = (u.clone(), front.clone(), rng.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_535];
                        loop {
                            let Ok((n, _)) = u2.recv_from(&mut buf).await else {
                                continue;
                            };
                            let data = buf.get(..n).unwrap_or_default().to_vec();
                            forward(&front2, client, data, &rng2, link);
                        }
                    });
                    u
                }
            };
            let data = buf.get(..n).unwrap_or_default().to_vec();
            forward(&up, server, data, &rng, link);
        }
    });
    Ok(addr)
}

/// A uniform draw in [0, 1) below `p`.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    // 53 random bits, the precision of an f64 mantissa.
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

fn forward(
    sock: &Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
    rng: &Arc<Mutex<ChaCha8Rng>>,
    link: LinkModel,
) {
    let (drop, delay) = {
        let mut r = rng.lock().unwrap_or_else(PoisonError::into_inner);
        let drop = chance(&mut r, link.loss);
        let delay =
            chance(&mut r, link.reorder).then(|| Duration::from_millis(1 + r.next_u64() % 15));
        (drop, delay)
    };
    if drop {
        return;
    }
    let sock = sock.clone();
    match delay {
        None => {
            let _ = sock.try_send_to(&data, to);
        }
        Some(d) => {
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                let _ = sock.send_to(&data, to).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_follows_the_probability() {
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let hits = (0..10_000).filter(|_| chance(&mut r, 0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| chance(&mut r, 0.0)));
        assert!((0..1000).all(|_| chance(&mut r, 1.0)));
    }
}
