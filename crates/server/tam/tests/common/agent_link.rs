//! A test device's in-process Agent as the Broker's TEE, for the CoAP tests (included
//! with `#[path]`).
#![allow(clippy::unwrap_used, dead_code)]

use otrp_broker::TeeLink;
use otrp_tee_daemon::{TeeError, TeeEvent, TeepReply};

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
