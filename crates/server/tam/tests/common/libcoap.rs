//! libcoap's `coap-client` ([`otrp_coap::libcoap`]) as the CoAP tests call it (included
//! with `#[path]`).
#![allow(clippy::panic, dead_code)]

pub use otrp_coap::libcoap::{LibCoapClient, Req};

/// libcoap's client, or `None` after printing that `test` is skipped; a failure instead
/// when `OTRP_TEST_REQUIRE_LIBCOAP` is set (as `.ci/run` sets it).
pub fn coap_client_or_skip(test: &str) -> Option<LibCoapClient> {
    match LibCoapClient::find() {
        Some(c) => Some(c),
        None if otrp_coap::libcoap::required() => {
            panic!("{}", otrp_coap::libcoap::missing_message(test))
        }
        None => {
            eprintln!("SKIPPED {}", otrp_coap::libcoap::missing_message(test));
            None
        }
    }
}
