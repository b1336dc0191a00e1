//! The TEE's to-be-signed responses (spec §2.2–§2.8, §5.1). The templates leave room
//! (status values, `reason` placement, §9 items 3–4), so unknown members are kept.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::common::{Content, KeyType, Reason, Status};
use super::dsi::{Dsi, DsiDocument};
use super::Extra;

/// `GetDeviceTEEStateTBSResponse` (§9.1.5, error form §9.1.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetDeviceTeeStateTbsResponse {
    /// Message format version.
    pub ver: String,
    /// `pass` or `fail`.
    pub status: Status,
    /// Request ID from the request.
    pub rid: String,
    /// Transaction ID from the request.
    pub tid: String,
    /// Whether the TAM must send its signer data again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signerreq: Option<bool>,
    /// The DSI, JWE-encrypted to the TAM (absent on error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edsi: Option<Content<DsiDocument>>,
    /// Error reason (error form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Algorithms the TEE can verify (error form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supportedsigalgs: Option<Vec<String>>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A TBS response of an SD or TA command; `C` is the `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "C: Serialize",
    deserialize = "C: serde::de::DeserializeOwned"
))]
pub struct CommandTbsResponse<C> {
    /// Message format version.
    pub ver: String,
    /// Operation result.
    pub status: Status,
    /// Request ID received.
    pub rid: String,
    /// Transaction ID received.
    pub tid: String,
    /// The response body, JWE-encrypted (absent when the TEE could not encrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content<C>>,
    /// Clear `reason` as in the §7.6 common template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `CreateSDTBSResponse` (§9.2.1.3).
pub type CreateSdTbsResponse = CommandTbsResponse<CreateSdResponseContent>;
/// `UpdateSDTBSResponse` (§9.2.2.3).
pub type UpdateSdTbsResponse = CommandTbsResponse<UpdateSdResponseContent>;
/// `DeleteSDTBSResponse` (§9.2.3.3).
pub type DeleteSdTbsResponse = CommandTbsResponse<ResponseContent>;
/// `InstallTATBSResponse` (§9.3.1.2).
pub type InstallTaTbsResponse = CommandTbsResponse<ResponseContent>;
/// `UpdateTATBSResponse` (§9.3.2.2).
pub type UpdateTaTbsResponse = CommandTbsResponse<ResponseContent>;
/// `DeleteTATBSResponse` (§9.3.3.3).
pub type DeleteTaTbsResponse = CommandTbsResponse<ResponseContent>;

/// CreateSD response `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSdResponseContent {
    /// Failure reason detail (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The device id received in the request (mandatory).
    pub did: String,
    /// Name of the SD created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdname: Option<String>,
    /// BASE64 TEE SP AIK public key (absent if the SP already had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teespaik: Option<String>,
    /// Updated DSI (when `nextdsi` was true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsi: Option<Dsi>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// UpdateSD response `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSdResponseContent {
    /// Failure reason detail (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The device id hash.
    pub did: String,
    /// TEE certificate (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// BASE64 TEE SP AIK public key (when renewed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teespaik: Option<String>,
    /// Its key type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teespaiktype: Option<KeyType>,
    /// Updated DSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsi: Option<Dsi>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// DeleteSD / InstallTA / UpdateTA / DeleteTA response `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseContent {
    /// Failure reason detail (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The device id hash.
    pub did: String,
    /// Updated DSI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsi: Option<Dsi>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}
