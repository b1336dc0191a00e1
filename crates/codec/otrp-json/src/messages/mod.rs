//! OTrP JSON messages ([IETF-03] §7, §9): to-be-signed payloads, signed wrappers, local
//! messages, and [`decode_any`], which recognises every message by its outer name.

pub mod common;
pub mod dsi;
pub mod local;
pub mod requests;
pub mod responses;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::jose::Jws;
use crate::Error;

pub use common::*;
pub use dsi::*;
pub use local::*;
pub use requests::*;
pub use responses::*;

/// Members the draft does not define, kept in input order-independent form.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The seven OTrP commands (§7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// GetDeviceState.
    GetDeviceState,
    /// CreateSD.
    CreateSd,
    /// UpdateSD.
    UpdateSd,
    /// DeleteSD.
    DeleteSd,
    /// InstallTA.
    InstallTa,
    /// UpdateTA.
    UpdateTa,
    /// DeleteTA.
    DeleteTa,
}

impl MessageKind {
    /// All seven commands.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::GetDeviceState,
        MessageKind::CreateSd,
        MessageKind::UpdateSd,
        MessageKind::DeleteSd,
        MessageKind::InstallTa,
        MessageKind::UpdateTa,
        MessageKind::DeleteTa,
    ];

    /// The command name (`xyz` in the §7.2 naming rule).
    pub fn command(self) -> &'static str {
        match self {
            MessageKind::GetDeviceState => "GetDeviceState",
            MessageKind::CreateSd => "CreateSD",
            MessageKind::UpdateSd => "UpdateSD",
            MessageKind::DeleteSd => "DeleteSD",
            MessageKind::InstallTa => "InstallTA",
            MessageKind::UpdateTa => "UpdateTA",
            MessageKind::DeleteTa => "DeleteTA",
        }
    }

    /// `xyzTBSRequest`.
    pub fn tbs_request_name(self) -> &'static str {
        match self {
            MessageKind::GetDeviceState => "GetDeviceStateTBSRequest",
            MessageKind::CreateSd => "CreateSDTBSRequest",
            MessageKind::UpdateSd => "UpdateSDTBSRequest",
            MessageKind::DeleteSd => "DeleteSDTBSRequest",
            MessageKind::InstallTa => "InstallTATBSRequest",
            MessageKind::UpdateTa => "UpdateTATBSRequest",
            MessageKind::DeleteTa => "DeleteTATBSRequest",
        }
    }

    /// `xyzRequest` (the signed wrapper).
    pub fn request_name(self) -> &'static str {
        match self {
            MessageKind::GetDeviceState => "GetDeviceStateRequest",
            MessageKind::CreateSd => "CreateSDRequest",
            MessageKind::UpdateSd => "UpdateSDRequest",
            MessageKind::DeleteSd => "DeleteSDRequest",
            MessageKind::InstallTa => "InstallTARequest",
            MessageKind::UpdateTa => "UpdateTARequest",
            MessageKind::DeleteTa => "DeleteTARequest",
        }
    }

    /// `xyzTBSResponse` (`GetDeviceTEEStateTBSResponse` for GetDeviceState).
    pub fn tbs_response_name(self) -> &'static str {
        match self {
            MessageKind::GetDeviceState => "GetDeviceTEEStateTBSResponse",
            MessageKind::CreateSd => "CreateSDTBSResponse",
            MessageKind::UpdateSd => "UpdateSDTBSResponse",
            MessageKind::DeleteSd => "DeleteSDTBSResponse",
            MessageKind::InstallTa => "InstallTATBSResponse",
            MessageKind::UpdateTa => "UpdateTATBSResponse",
            MessageKind::DeleteTa => "DeleteTATBSResponse",
        }
    }

    /// `xyzResponse` (`GetDeviceTEEStateResponse` for GetDeviceState; the Broker's
    /// array of those is [`DEVICE_STATE_RESPONSES`]).
    pub fn response_name(self) -> &'static str {
        match self {
            MessageKind::GetDeviceState => "GetDeviceTEEStateResponse",
            MessageKind::CreateSd => "CreateSDResponse",
            MessageKind::UpdateSd => "UpdateSDResponse",
            MessageKind::DeleteSd => "DeleteSDResponse",
            MessageKind::InstallTa => "InstallTAResponse",
            MessageKind::UpdateTa => "UpdateTAResponse",
            MessageKind::DeleteTa => "DeleteTAResponse",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.command())
    }
}

/// Outer name of the Broker's array of per-TEE GetDeviceState responses.
pub const DEVICE_STATE_RESPONSES: &str = "GetDeviceStateResponse";
/// Outer name of the Broker error.
pub const BROKER_ERROR: &str = "OTrPBrokerError";
/// [PEI-03] outer name of the Broker (then "Agent") error.
pub const AGENT_ERROR: &str = "OTrPAgentError";

/// A to-be-signed request, serialised as `{"xyzTBSRequest": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TbsRequest {
    /// `GetDeviceStateTBSRequest`.
    #[serde(rename = "GetDeviceStateTBSRequest")]
    GetDeviceState(GetDeviceStateTbsRequest),
    /// `CreateSDTBSRequest`.
    #[serde(rename = "CreateSDTBSRequest")]
    CreateSd(CreateSdTbsRequest),
    /// `UpdateSDTBSRequest`.
    #[serde(rename = "UpdateSDTBSRequest")]
    UpdateSd(UpdateSdTbsRequest),
    /// `DeleteSDTBSRequest`.
    #[serde(rename = "DeleteSDTBSRequest")]
    DeleteSd(DeleteSdTbsRequest),
    /// `InstallTATBSRequest`.
    #[serde(rename = "InstallTATBSRequest")]
    InstallTa(InstallTaTbsRequest),
    /// `UpdateTATBSRequest`.
    #[serde(rename = "UpdateTATBSRequest")]
    UpdateTa(UpdateTaTbsRequest),
    /// `DeleteTATBSRequest`.
    #[serde(rename = "DeleteTATBSRequest")]
    DeleteTa(DeleteTaTbsRequest),
}

impl TbsRequest {
    /// Which command this is.
    pub fn kind(&self) -> MessageKind {
        match self {
            TbsRequest::GetDeviceState(_) => MessageKind::GetDeviceState,
            TbsRequest::CreateSd(_) => MessageKind::CreateSd,
            TbsRequest::UpdateSd(_) => MessageKind::UpdateSd,
            TbsRequest::DeleteSd(_) => MessageKind::DeleteSd,
            TbsRequest::InstallTa(_) => MessageKind::InstallTa,
            TbsRequest::UpdateTa(_) => MessageKind::UpdateTa,
            TbsRequest::DeleteTa(_) => MessageKind::DeleteTa,
        }
    }

    /// `(rid, tid)` of the request.
    pub fn ids(&self) -> (&str, &str) {
        match self {
            TbsRequest::GetDeviceState(r) => (&r.rid, &r.tid),
            TbsRequest::CreateSd(r) => (&r.rid, &r.tid),
            TbsRequest::UpdateSd(r) => (&r.rid, &r.tid),
            TbsRequest::DeleteSd(r) => (&r.rid, &r.tid),
            TbsRequest::InstallTa(r) => (&r.rid, &r.tid),
            TbsRequest::UpdateTa(r) => (&r.rid, &r.tid),
            TbsRequest::DeleteTa(r) => (&r.rid, &r.tid),
        }
    }

    /// True when every member the draft encrypts (`content`) is a JWE.
    /// GetDeviceState has nothing to encrypt.
    pub fn is_protected(&self) -> bool {
        match self {
            TbsRequest::GetDeviceState(_) => true,
            TbsRequest::CreateSd(r) => r.content.is_encrypted(),
            TbsRequest::UpdateSd(r) => r.content.is_encrypted(),
            TbsRequest::DeleteSd(r) => r.content.is_encrypted(),
            TbsRequest::InstallTa(r) => r.content.is_encrypted(),
            TbsRequest::UpdateTa(r) => r.content.is_encrypted(),
            TbsRequest::DeleteTa(r) => r.content.is_encrypted(),
        }
    }

    /// Strict decoding of `{"xyzTBSRequest": {…}}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        crate::json::from_slice(bytes)
    }

    /// Compact JSON encoding.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        crate::json::to_vec(self)
    }
}

/// A to-be-signed response, serialised as `{"xyzTBSResponse": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TbsResponse {
    /// `GetDeviceTEEStateTBSResponse`.
    #[serde(rename = "GetDeviceTEEStateTBSResponse")]
    GetDeviceState(GetDeviceTeeStateTbsResponse),
    /// `CreateSDTBSResponse`.
    #[serde(rename = "CreateSDTBSResponse")]
    CreateSd(CreateSdTbsResponse),
    /// `UpdateSDTBSResponse`.
    #[serde(rename = "UpdateSDTBSResponse")]
    UpdateSd(UpdateSdTbsResponse),
    /// `DeleteSDTBSResponse`.
    #[serde(rename = "DeleteSDTBSResponse")]
    DeleteSd(DeleteSdTbsResponse),
    /// `InstallTATBSResponse`.
    #[serde(rename = "InstallTATBSResponse")]
    InstallTa(InstallTaTbsResponse),
    /// `UpdateTATBSResponse`.
    #[serde(rename = "UpdateTATBSResponse")]
    UpdateTa(UpdateTaTbsResponse),
    /// `DeleteTATBSResponse`.
    #[serde(rename = "DeleteTATBSResponse")]
    DeleteTa(DeleteTaTbsResponse),
}

impl TbsResponse {
    /// Which command this answers.
    pub fn kind(&self) -> MessageKind {
        match self {
            TbsResponse::GetDeviceState(_) => MessageKind::GetDeviceState,
            TbsResponse::CreateSd(_) => MessageKind::CreateSd,
            TbsResponse::UpdateSd(_) => MessageKind::UpdateSd,
            TbsResponse::DeleteSd(_) => MessageKind::DeleteSd,
            TbsResponse::InstallTa(_) => MessageKind::InstallTa,
            TbsResponse::UpdateTa(_) => MessageKind::UpdateTa,
            TbsResponse::DeleteTa(_) => MessageKind::DeleteTa,
        }
    }

    /// `(rid, tid)` echoed from the request.
    pub fn ids(&self) -> (&str, &str) {
        match self {
            TbsResponse::GetDeviceState(r) => (&r.rid, &r.tid),
            TbsResponse::CreateSd(r) => (&r.rid, &r.tid),
            TbsResponse::UpdateSd(r) => (&r.rid, &r.tid),
            TbsResponse::DeleteSd(r) => (&r.rid, &r.tid),
            TbsResponse::InstallTa(r) => (&r.rid, &r.tid),
            TbsResponse::UpdateTa(r) => (&r.rid, &r.tid),
            TbsResponse::DeleteTa(r) => (&r.rid, &r.tid),
        }
    }

    /// The response status.
    pub fn status(&self) -> Status {
        match self {
            TbsResponse::GetDeviceState(r) => r.status,
            TbsResponse::CreateSd(r) => r.status,
            TbsResponse::UpdateSd(r) => r.status,
            TbsResponse::DeleteSd(r) => r.status,
            TbsResponse::InstallTa(r) => r.status,
            TbsResponse::UpdateTa(r) => r.status,
            TbsResponse::DeleteTa(r) => r.status,
        }
    }

    /// True when no plaintext `content`/`edsi` is present.
    pub fn is_protected(&self) -> bool {
        fn ok<T>(c: &Option<Content<T>>) -> bool {
            c.as_ref().is_none_or(Content::is_encrypted)
        }
        match self {
            TbsResponse::GetDeviceState(r) => ok(&r.edsi),
            TbsResponse::CreateSd(r) => ok(&r.content),
            TbsResponse::UpdateSd(r) => ok(&r.content),
            TbsResponse::DeleteSd(r) => ok(&r.content),
            TbsResponse::InstallTa(r) => ok(&r.content),
            TbsResponse::UpdateTa(r) => ok(&r.content),
            TbsResponse::DeleteTa(r) => ok(&r.content),
        }
    }

    /// Strict decoding of `{"xyzTBSResponse": {…}}`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        crate::json::from_slice(bytes)
    }

    /// Compact JSON encoding.
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        crate::json::to_vec(self)
    }
}

/// A signed request `{"xyzRequest": <JWS>}`. The outer name is not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The command named by the outer (unsigned) name.
    pub kind: MessageKind,
    /// Flattened (single signer) or general (dual control) JWS JSON serialization.
    pub jws: Jws,
}

/// A signed response `{"xyzResponse": <JWS>}` (`GetDeviceTEEStateResponse` for
/// GetDeviceState).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    /// The command named by the outer (unsigned) name.
    pub kind: MessageKind,
    /// The JWS.
    pub jws: Jws,
}

/// One element of the Broker's `GetDeviceStateResponse` array:
/// `{"GetDeviceTEEStateResponse": <JWS>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeeStateResponse {
    /// The TEE-signed JWS.
    #[serde(rename = "GetDeviceTEEStateResponse")]
    pub jws: Jws,
}

/// Any OTrP JSON message, recognised by its outer name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrpMessage {
    /// `xyzTBSRequest`.
    TbsRequest(TbsRequest),
    /// `xyzRequest`.
    Request(SignedRequest),
    /// `xyzTBSResponse` / `GetDeviceTEEStateTBSResponse`.
    TbsResponse(TbsResponse),
    /// `xyzResponse` / `GetDeviceTEEStateResponse`.
    Response(SignedResponse),
    /// `GetDeviceStateResponse`: the Broker's array of per-TEE responses.
    DeviceStateResponses(Vec<TeeStateResponse>),
    /// `TAQuery`.
    TaQuery(TaQuery),
    /// `TAInformationTBS`.
    TaInformationTbs(TaInformationTbs),
    /// `TAInformation` (JWS by the TEE SP AIK).
    TaInformation(Jws),
    /// `OTrPBrokerError`.
    BrokerError(BrokerError),
    /// `OTrPAgentError` ([PEI-03] name of the same error).
    AgentError(BrokerError),
    /// `dsi` (the decrypted `edsi` plaintext).
    Dsi(Dsi),
}

impl OtrpMessage {
    /// The outer member name this message is serialised under.
    pub fn name(&self) -> &'static str {
        match self {
            OtrpMessage::TbsRequest(r) => r.kind().tbs_request_name(),
            OtrpMessage::Request(r) => r.kind.request_name(),
            OtrpMessage::TbsResponse(r) => r.kind().tbs_response_name(),
            OtrpMessage::Response(r) => r.kind.response_name(),
            OtrpMessage::DeviceStateResponses(_) => DEVICE_STATE_RESPONSES,
            OtrpMessage::TaQuery(_) => "TAQuery",
            OtrpMessage::TaInformationTbs(_) => "TAInformationTBS",
            OtrpMessage::TaInformation(_) => "TAInformation",
            OtrpMessage::BrokerError(_) => BROKER_ERROR,
            OtrpMessage::AgentError(_) => AGENT_ERROR,
            OtrpMessage::Dsi(_) => "dsi",
        }
    }

    /// Compact JSON encoding (`{"<name>": …}`).
    pub fn to_json(&self) -> Result<Vec<u8>, Error> {
        crate::json::to_vec(self)
    }
}

/// Decodes any OTrP JSON message, recognising it by its (single) outer member name.
/// Errors carry the JSON path and line/column of the offending member.
pub fn decode_any(bytes: &[u8]) -> Result<OtrpMessage, Error> {
    crate::json::from_slice(bytes)
}

/// Encodes any OTrP message as compact JSON.
pub fn encode(message: &OtrpMessage) -> Result<Vec<u8>, Error> {
    message.to_json()
}

impl Serialize for OtrpMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OtrpMessage::TbsRequest(r) => r.serialize(s),
            OtrpMessage::TbsResponse(r) => r.serialize(s),
            other => {
                let mut map = s.serialize_map(Some(1))?;
                match other {
                    OtrpMessage::Request(r) => map.serialize_entry(other.name(), &r.jws)?,
                    OtrpMessage::Response(r) => map.serialize_entry(other.name(), &r.jws)?,
                    OtrpMessage::DeviceStateResponses(v) => map.serialize_entry(other.name(), v)?,
                    OtrpMessage::TaQuery(v) => map.serialize_entry(other.name(), v)?,
                    OtrpMessage::TaInformationTbs(v) => map.serialize_entry(other.name(), v)?,
                    OtrpMessage::TaInformation(v) => map.serialize_entry(other.name(), v)?,
                    OtrpMessage::BrokerError(v) | OtrpMessage::AgentError(v) => {
                        map.serialize_entry(other.name(), v)?
                    }
                    OtrpMessage::Dsi(v) => map.serialize_entry(other.name(), v)?,
                    OtrpMessage::TbsRequest(_) | OtrpMessage::TbsResponse(_) => {}
                }
                map.end()
            }
        }
    }
}

impl Serialize for SignedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.request_name(), &self.jws)?;
        map.end()
    }
}

impl Serialize for SignedResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.kind.response_name(), &self.jws)?;
        map.end()
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = OtrpMessage;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with one member named after an OTrP message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OtrpMessage, A::Error> {
        let Some(name) = map.next_key::<String>()? else {
            return Err(A::Error::custom(
                "empty object: an OTrP message has one member naming it",
            ));
        };
        let msg = decode_named(&name, &mut map)?;
        if let Some(second) = map.next_key::<String>()? {
            return Err(A::Error::custom(format!(
                "second top-level member `{second}` after `{name}`: an OTrP message has exactly one"
            )));
        }
        Ok(msg)
    }
}

fn decode_named<'de, A: MapAccess<'de>>(name: &str, map: &mut A) -> Result<OtrpMessage, A::Error> {
    use MessageKind as K;
    for kind in K::ALL {
        if name == kind.request_name() {
            return Ok(OtrpMessage::Request(SignedRequest {
                kind,
                jws: map.next_value()?,
            }));
        }
        if name == kind.response_name() {
            return Ok(OtrpMessage::Response(SignedResponse {
                kind,
                jws: map.next_value()?,
            }));
        }
    }
    let m = match name {
        "GetDeviceStateTBSRequest" => {
            OtrpMessage::TbsRequest(TbsRequest::GetDeviceState(map.next_value()?))
        }
        "CreateSDTBSRequest" => OtrpMessage::TbsRequest(TbsRequest::CreateSd(map.next_value()?)),
        "UpdateSDTBSRequest" => OtrpMessage::TbsRequest(TbsRequest::UpdateSd(map.next_value()?)),
        "DeleteSDTBSRequest" => OtrpMessage::TbsRequest(TbsRequest::DeleteSd(map.next_value()?)),
        "InstallTATBSRequest" => OtrpMessage::TbsRequest(TbsRequest::InstallTa(map.next_value()?)),
        "UpdateTATBSRequest" => OtrpMessage::TbsRequest(TbsRequest::UpdateTa(map.next_value()?)),
        "DeleteTATBSRequest" => OtrpMessage::TbsRequest(TbsRequest::DeleteTa(map.next_value()?)),
        "GetDeviceTEEStateTBSResponse" => {
            OtrpMessage::TbsResponse(TbsResponse::GetDeviceState(map.next_value()?))
        }
        "CreateSDTBSResponse" => OtrpMessage::TbsResponse(TbsResponse::CreateSd(map.next_value()?)),
        "UpdateSDTBSResponse" => OtrpMessage::TbsResponse(TbsResponse::UpdateSd(map.next_value()?)),
        "DeleteSDTBSResponse" => OtrpMessage::TbsResponse(TbsResponse::DeleteSd(map.next_value()?)),
        "InstallTATBSResponse" => {
            OtrpMessage::TbsResponse(TbsResponse::InstallTa(map.next_value()?))
        }
        "UpdateTATBSResponse" => OtrpMessage::TbsResponse(TbsResponse::UpdateTa(map.next_value()?)),
        "DeleteTATBSResponse" => OtrpMessage::TbsResponse(TbsResponse::DeleteTa(map.next_value()?)),
        DEVICE_STATE_RESPONSES => OtrpMessage::DeviceStateResponses(map.next_value()?),
        "TAQuery" => OtrpMessage::TaQuery(map.next_value()?),
        "TAInformationTBS" => OtrpMessage::TaInformationTbs(map.next_value()?),
        "TAInformation" => OtrpMessage::TaInformation(map.next_value()?),
        BROKER_ERROR => OtrpMessage::BrokerError(map.next_value()?),
        AGENT_ERROR => OtrpMessage::AgentError(map.next_value()?),
        "dsi" => OtrpMessage::Dsi(map.next_value()?),
        other => {
            return Err(A::Error::custom(format!(
                "unknown OTrP message name `{other}`"
            )))
        }
    };
    Ok(m)
}

impl<'de> Deserialize<'de> for OtrpMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}
