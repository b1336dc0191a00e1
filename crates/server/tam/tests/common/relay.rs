//! A seeded lossy, reordering UDP relay for CoAP tests (included with `#[path]`).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;

/// A UDP relay in front of `server` that drops `loss` of all datagrams (both ways) and
/// delays `reorder` of them by 1–15 ms so later ones overtake them; seeded.
pub async fn lossy_relay(server: SocketAddr, loss: f64, reorder: f64, seed: u64) -> SocketAddr {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
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
                    let u = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    upstreams.insert(client, u.clone());
                    let (u2, front2, rng2) = (u.clone(), front.clone(), rng.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_535];
                        loop {
                            let Ok((n, _)) = u2.recv_from(&mut buf).await else {
                                continue;
                            };
                            forward(&front2, client, buf[..n].to_vec(), &rng2, loss, reorder);
                        }
                    });
                    u
                }
            };
            forward(&up, server, buf[..n].to_vec(), &rng, loss, reorder);
        }
    });
    addr
}

fn forward(
    sock: &Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
    rng: &Arc<Mutex<ChaCha8Rng>>,
    loss: f64,
    reorder: f64,
) {
    let (drop, delay) = {
        let mut r = rng.lock().unwrap();
        let drop = r.gen_bool(loss);
        let delay = r
            .gen_bool(reorder)
            .then(|| Duration::from_millis(r.gen_range(1..=15)));
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
                let _ = sock.try_send_to(&data, to);
            });
        }
    }
}
