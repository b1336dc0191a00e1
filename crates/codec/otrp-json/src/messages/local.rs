//! Local (non-TAM) messages: `TAQuery` / `TAInformation` (§2.9, [IETF-03] §6.4.2) and
//! the unsigned Broker error (§10).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::common::ErrorCode;

/// `TAQuery`: a Client App asks the TEE about an installed TA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaQuery {
    /// SP identifier of the TA.
    pub spid: String,
    /// TA identifier.
    pub taid: String,
}

/// `TAInformationTBS`: the TEE's answer before it signs it with the TEE SP AIK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaInformationTbs {
    /// TA identifier.
    pub taid: String,
    /// TAM ID of the SD holding the TA.
    pub tamid: String,
    /// SP identifier.
    pub spid: String,
    /// BASE64 TA signer certificate.
    pub signercert: String,
    /// BASE64 CA certificates of the signer, up to the root.
    pub signercacerts: Vec<String>,
    /// BASE64 TAM certificate.
    pub tamcert: String,
    /// BASE64 CA certificates of the TAM, up to the root.
    pub tamcacerts: Vec<String>,
}

/// `OTrPBrokerError` (or the [PEI-03] `OTrPAgentError`): unsigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerError {
    /// Message format version.
    pub ver: String,
    /// Request ID (may be empty).
    pub rid: String,
    /// Transaction ID (may be empty).
    pub tid: String,
    /// `ERR_AGENT_TEE_UNKNOWN`, `ERR_AGENT_TEE_BUSY`, …
    pub errcode: ErrorCode,
}
