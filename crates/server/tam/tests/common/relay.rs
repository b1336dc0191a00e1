//! The lossy, reordering UDP relay of `otrp_coap::relay`, as the CoAP tests call it
//! (included with `#[path]`).
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;

use otrp_coap::relay::LinkModel;

/// A UDP relay in front of `server` that drops `loss` of all datagrams (both ways) and
/// delays `reorder` of them by 1–15 ms so later ones overtake them; seeded.
pub async fn lossy_relay(server: SocketAddr, loss: f64, reorder: f64, seed: u64) -> SocketAddr {
    let link = LinkModel {
        loss,
        reorder,
        seed,
    };
    otrp_coap::relay::lossy_relay(server, link).await.unwrap()
}
