//! The TAM's to-be-signed requests (spec §2.2–§2.8). Their templates are closed, and the
//! TEE must refuse unknown members (`ERR_REQUEST_INVALID`), so they deny unknown fields.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::common::Content;

/// `GetDeviceStateTBSRequest` (§9.1.1). Never encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetDeviceStateTbsRequest {
    /// Message format version, `"1.0"`.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID (the TFW signs it).
    pub tid: String,
    /// OCSP stapling data for the TAM certificate and its CAs (mandatory array).
    pub ocspdat: Vec<String>,
    /// Signature algorithms the TEE must choose from (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supportedsigalgs: Option<Vec<String>>,
}

/// `CreateSDTBSRequest` (§9.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSdTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name from the DSI.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the DSI returned in the prior operation.
    pub dsihash: String,
    /// JWE to the TEE key (plain only before encryption).
    pub content: Content<CreateSdContent>,
}

/// CreateSD `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSdContent {
    /// SP ID assigned by the TAM.
    pub spid: String,
    /// SD name, unique to the SP.
    pub sdname: String,
    /// BASE64 SP TA-signer certificate.
    pub spcert: String,
    /// SD owner claim (TAM ID attribute of the TAM certificate).
    pub tamid: String,
    /// SHA-256 of the TEE certificate.
    pub did: String,
}

/// `UpdateSDTBSRequest` (§9.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSdTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the prior DSI.
    pub dsihash: String,
    /// JWE to the TEE key.
    pub content: Content<UpdateSdContent>,
}

/// UpdateSD `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSdContent {
    /// TAM ID of the SD.
    pub tamid: String,
    /// SP ID.
    pub spid: String,
    /// SD to update.
    pub sdname: String,
    /// The changes.
    pub changes: SdChanges,
}

/// UpdateSD `changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdChanges {
    /// New SD name (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newsdname: Option<String>,
    /// New SP ID (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newspid: Option<String>,
    /// BASE64 SP signer certificates to add (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spcert: Option<Vec<String>>,
    /// SHA-256 hex fingerprints of SP certificates to remove (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deloldspcert: Option<Vec<String>>,
    /// Regenerate the TEE SP AIK.
    pub renewteespaik: bool,
}

/// `DeleteSDTBSRequest` (§9.2.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSdTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the prior DSI.
    pub dsihash: String,
    /// JWE to the TEE key.
    pub content: Content<DeleteSdContent>,
}

/// DeleteSD `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSdContent {
    /// TAM ID of the SD.
    pub tamid: String,
    /// SD to delete.
    pub sdname: String,
    /// Delete the SD's TAs too (else `ERR_SD_NOT_EMPTY` when it has some).
    pub deleteta: bool,
}

/// `InstallTATBSRequest` (§9.3.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallTaTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the prior DSI.
    pub dsihash: String,
    /// JWE to the TEE key.
    pub content: Content<TaContent>,
    /// The TA encrypted to the TEE SP AIK (outside `content`).
    pub encrypted_ta: EncryptedTa,
}

/// InstallTA / UpdateTA `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaContent {
    /// TAM ID previously assigned to the SD.
    pub tamid: String,
    /// SP ID.
    pub spid: String,
    /// Target SD.
    pub sdname: String,
    /// BASE64 SP certificate not yet registered with the SD (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spcert: Option<String>,
    /// TA identifier.
    pub taid: String,
}

/// InstallTA `encrypted_ta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedTa {
    /// JWE-enveloped 256-bit key, wrapped to the TEE SP AIK.
    pub key: String,
    /// Hex of the 16-byte IV.
    pub iv: String,
    /// Encryption algorithm, `AESCBC` by default.
    pub alg: String,
    /// BASE64 encrypted TA binary.
    pub ciphertadata: String,
    /// BASE64 encrypted personalization data (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipherpdata: Option<String>,
}

/// `UpdateTATBSRequest` (§9.3.2.1); field for field InstallTA except `encrypted_ta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the prior DSI.
    pub dsihash: String,
    /// JWE to the TEE key.
    pub content: Content<TaContent>,
    /// The new TA binary and/or personalization data.
    pub encrypted_ta: EncryptedTaUpdate,
}

/// UpdateTA `encrypted_ta`: at least one of the two ciphertexts must be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "EncryptedTaUpdateWire")]
pub struct EncryptedTaUpdate {
    /// JWE-enveloped 256-bit key, wrapped to the TEE SP AIK.
    pub key: String,
    /// IV (hex per §9.3.1.1; the sample uses base64url).
    pub iv: String,
    /// Encryption algorithm, `AESCBC` by default.
    pub alg: String,
    /// BASE64 new TA binary (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphernewtadata: Option<String>,
    /// BASE64 new personalization data (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphernewpdata: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptedTaUpdateWire {
    key: String,
    iv: String,
    alg: String,
    #[serde(default)]
    ciphernewtadata: Option<String>,
    #[serde(default)]
    ciphernewpdata: Option<String>,
}

impl TryFrom<EncryptedTaUpdateWire> for EncryptedTaUpdate {
    type Error = &'static str;
    fn try_from(w: EncryptedTaUpdateWire) -> Result<Self, Self::Error> {
        if w.ciphernewtadata.is_none() && w.ciphernewpdata.is_none() {
            return Err("UpdateTA needs `ciphernewtadata` or `ciphernewpdata` (or both)");
        }
        Ok(EncryptedTaUpdate {
            key: w.key,
            iv: w.iv,
            alg: w.alg,
            ciphernewtadata: w.ciphernewtadata,
            ciphernewpdata: w.ciphernewpdata,
        })
    }
}

/// `DeleteTATBSRequest` (§9.3.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteTaTbsRequest {
    /// Message format version.
    pub ver: String,
    /// Unique request ID.
    pub rid: String,
    /// Transaction ID.
    pub tid: String,
    /// TEE routing name.
    pub tee: String,
    /// Whether the response should carry fresh DSI.
    pub nextdsi: bool,
    /// Hash of the prior DSI.
    pub dsihash: String,
    /// JWE to the TEE key.
    pub content: Content<DeleteTaContent>,
}

/// DeleteTA `content` plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteTaContent {
    /// TAM ID previously assigned to the SD.
    pub tamid: String,
    /// SD of the TA.
    pub sdname: String,
    /// TA to delete.
    pub taid: String,
}
