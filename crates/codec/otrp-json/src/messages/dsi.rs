//! Device State Information (spec §3.1, [IETF-03] §9.1.5) and TFW-signed data (§9.1.3).
//!
//! The DSI is a device report that TEE vendors may extend, so unknown members are kept
//! (in `extra`) rather than refused; they are re-emitted after the known members.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::common::{string_u32, KeyType};
use super::Extra;

/// The decrypted `edsi` plaintext: `{"dsi": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsiDocument {
    /// The DSI.
    pub dsi: Dsi,
}

/// Device State Information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dsi {
    /// Firmware-signed data over the request `tid` (optional: the TFW key is optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tfwdata: Option<TfwData>,
    /// The TEE's description, certificate and the SDs owned by the requesting TAM.
    pub tee: TeeInfo,
    /// Members not defined by the draft, kept as-is.
    #[serde(flatten)]
    pub extra: Extra,
}

/// TFW-signed data (`tfwdata`, §9.1.3). Not a JWS: `sig` signs the raw `tbs` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TfwData {
    /// BASE64 of the to-be-signed data (the UTF-8 request `tid`).
    pub tbs: String,
    /// BASE64 TFW certificate.
    pub cert: String,
    /// Signing method, `RS256` or `ES256` (§9.1.3.1).
    pub sigalg: String,
    /// BASE64 signature.
    pub sig: String,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `tee` member of the DSI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeInfo {
    /// TEE name (the routing name later used as `tee` in requests).
    pub name: String,
    /// TEE version.
    pub ver: String,
    /// BASE64 TEE device certificate.
    pub cert: String,
    /// BASE64 CA certificates up to the root.
    pub cacert: Vec<String>,
    /// The SDs owned by the requesting TAM.
    pub sdlist: SdList,
    /// Per-SP anonymous attestation keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teeaiklist: Option<Vec<SpAik>>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `sdlist`: count and SDs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdList {
    /// Number of SDs owned by this TAM, carried as a decimal string (`"cnt": "1"`).
    #[serde(with = "string_u32")]
    pub cnt: u32,
    /// The SDs.
    pub sd: Vec<SdInfo>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One SD in the DSI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SdInfo {
    /// SD name.
    pub name: String,
    /// SP owner ID of this SD.
    pub spid: String,
    /// TAs installed in the SD.
    pub talist: Vec<TaInfo>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One TA in an SD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaInfo {
    /// TA application identifier.
    pub taid: String,
    /// Friendly name (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taname: Option<String>,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One entry of `teeaiklist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpAik {
    /// BASE64 SP AIK public key.
    pub spaik: String,
    /// `RSA` or `ECC`.
    pub spaiktype: KeyType,
    /// The SP it belongs to.
    pub spid: String,
    /// Members not defined by the draft.
    #[serde(flatten)]
    pub extra: Extra,
}
