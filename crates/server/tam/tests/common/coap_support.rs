//! What the CoAP tests share (included with `#[path]`): a test device's in-process Agent
//! as the Broker's TEE, and the TAM's CoAP handler wrapped to record what it processes.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::{Arc, Mutex};

use otrp_broker::TeeLink;
use otrp_coap::{Handler, Request};
use otrp_tam_server::AppState;
use otrp_tee_daemon::{TeeError, TeeEvent, TeepReply};
use sha2::{Digest, Sha256};

use crate::common::{now, Device};

/// The in-process Agent of a test device as the Broker's TEE.
pub struct AgentLink<'a>(pub &'a mut Device);

pub fn reply(out: otrp_agent::Output) -> TeepReply {
    TeepReply {
        send: out.send,
        need_fetch: None,
        events: out
            .events
            .iter()
            .map(|e| match e {
                otrp_agent::Event::Installed { component } => TeeEvent {
                    kind: "installed".into(),
                    detail: format!("{component:?}"),
                },
                other => TeeEvent {
                    kind: "other".into(),
                    detail: format!("{other:?}"),
                },
            })
            .collect(),
    }
}

impl TeeLink for AgentLink<'_> {
    async fn process(&mut self, message: Vec<u8>) -> Result<TeepReply, TeeError> {
        let out = self.0.agent.handle(&message, now());
        self.0.events.extend(out.events.iter().cloned());
        Ok(reply(out))
    }
    async fn provide_fetch(&mut self, uri: String, bytes: Vec<u8>) -> Result<TeepReply, TeeError> {
        let out = self.0.agent.provide_fetch(&uri, bytes, now());
        self.0.events.extend(out.events.iter().cloned());
        Ok(reply(out))
    }
    async fn fetch_failed(&mut self, uri: String) -> Result<TeepReply, TeeError> {
        Err(TeeError::Protocol(format!("fetch of {uri} failed")))
    }
    async fn process_error(&mut self, _detail: String) -> Result<(), TeeError> {
        Ok(())
    }
}

/// The TAM's CoAP handler over `state`, recording the SHA-256 of every TEEP message
/// (non-empty body) it is given, in order.
pub fn counting_handler(state: Arc<AppState>) -> (Handler, Arc<Mutex<Vec<[u8; 32]>>>) {
    let seen: Arc<Mutex<Vec<[u8; 32]>>> = Arc::default();
    let inner = otrp_tam_server::coap::handler(state);
    let seen2 = seen.clone();
    let counting: Handler = Arc::new(move |req: Request| {
        if !req.body.is_empty() {
            seen2.lock().unwrap().push(Sha256::digest(&req.body).into());
        }
        inner(req)
    });
    (counting, seen)
}
