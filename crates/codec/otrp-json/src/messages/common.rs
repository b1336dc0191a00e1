//! Members shared by several OTrP messages: status, reason, error codes, the
//! encrypted-or-plain `content`, and key types.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::jose::JweJson;
use crate::json::from_value;

/// The only message format version defined by the draft (`"ver": "1.0"`, §9.1.1).
pub const OTRP_VERSION: &str = "1.0";

/// Operation result of a response (`"status": "pass | fail"`, §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The operation succeeded.
    #[serde(rename = "pass")]
    Pass,
    /// The operation failed; see `reason`.
    #[serde(rename = "fail")]
    Fail,
}

/// Key type of a TEE SP AIK (`spaiktype` / `teespaiktype`: `RSA | ECC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// RSA key.
    #[serde(rename = "RSA")]
    Rsa,
    /// Elliptic-curve key.
    #[serde(rename = "ECC")]
    Ecc,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal $(| $alias:literal)* ,)*) => {
        /// Every OTrP error code of spec §5.2 (TEE-signed codes of [IETF-03] §13.1.1,
        /// the codes used only in the per-message lists, and the Broker/Agent codes),
        /// with its exact string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[serde(rename = $text $(, alias = $alias)*)] $variant, )*
        }

        impl ErrorCode {
            /// All codes, in spec order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The exact wire string.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }
        }

        impl FromStr for ErrorCode {
            type Err = UnknownErrorCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text $(| $alias)* => Ok(ErrorCode::$variant),)*
                    _ => Err(UnknownErrorCode(String::from(s))),
                }
            }
        }
    };
}

error_codes! {
    /// DSI hash from the TAM differs from the device's current DSI.
    DevStateMismatch = "ERR_DEV_STATE_MISMATCH",
    /// The SD to create already exists (the §9.2.1.4 spelling `ERR_SD_ALREADY_EXIST`
    /// is accepted on input).
    SdAlreadyExists = "ERR_SD_ALREADY_EXISTS" | "ERR_SD_ALREADY_EXIST",
    /// The SD still holds TAs and `deleteta` is false.
    SdNotEmpty = "ERR_SD_NOT_EMPTY",
    /// The new SD name is already used.
    SdNameAlreadyUsed = "ERR_SDNAME_ALREADY_USED",
    /// The SD does not exist.
    SdNotFound = "ERR_SD_NOT_FOUND",
    /// Bad structure, missing or unknown member, bad signature or failed decryption.
    RequestInvalid = "ERR_REQUEST_INVALID",
    /// The new SP certificate is invalid.
    SpCertInvalid = "ERR_SPCERT_INVALID",
    /// The TA is already installed in the SD.
    TaAlreadyInstalled = "ERR_TA_ALREADY_INSTALLED",
    /// Unrecognised TA format, TA decryption failure, or SP not registered with the SD.
    TaInvalid = "ERR_TA_INVALID",
    /// The TA is not in the SD.
    TaNotFound = "ERR_TA_NOT_FOUND",
    /// Internal TEE error (the TEE can still sign).
    TeeFail = "ERR_TEE_FAIL",
    /// TEE resources (e.g. storage) exhausted.
    TeeResourceFull = "ERR_TEE_RESOURCE_FULL",
    /// The TEE deems its firmware untrustworthy.
    TfwNotTrusted = "ERR_TFW_NOT_TRUSTED",
    /// TAM certificate or OCSP data invalid.
    TamNotTrusted = "ERR_TAM_NOT_TRUSTED",
    /// The TAM is not authorised for this SD.
    TamNotAuthorized = "ERR_TAM_NOT_AUTHORIZED",
    /// The request uses an unsupported algorithm.
    UnsupportedCryptoAlg = "ERR_UNSUPPORTED_CRYPTO_ALG",
    /// Unsupported `ver`.
    UnsupportedMsgVersion = "ERR_UNSUPPORTED_MSG_VERSION",
    /// Broker: the TEE is not the intended recipient.
    AgentTeeUnknown = "ERR_AGENT_TEE_UNKNOWN",
    /// Broker: the TEE is busy; retry.
    AgentTeeBusy = "ERR_AGENT_TEE_BUSY",
    /// Broker: the TEE failed ([IETF-02] §13.1.2).
    AgentTeeFail = "ERR_AGENT_TEE_FAIL",
    /// [PEI-03] Agent code: the TEE is busy.
    TeeBusy = "ERR_TEE_BUSY",
    /// [PEI-03] Agent code: unknown TEE.
    TeeUnknown = "ERR_TEE_UNKNOWN",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not an OTrP error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OTrP error code `{0}`")]
pub struct UnknownErrorCode(pub String);

/// The coded form of `reason` (§7.6): `{"error-code": …, "error-message": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodedReason {
    /// The error code.
    #[serde(rename = "error-code")]
    pub error_code: ErrorCode,
    /// Optional human-readable message.
    #[serde(
        rename = "error-message",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub error_message: Option<String>,
}

/// `reason`: the §7.6 coded object, or the free-text "failure reason detail" that the
/// SD/TA response templates (§9.2.1.3) put inside `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `{"error-code": …, "error-message": …}`.
    Coded(CodedReason),
    /// A free-text detail string.
    Detail(String),
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reason::Coded(c) => c.serialize(s),
            Reason::Detail(d) => s.serialize_str(d),
        }
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Reason::Detail(s)),
            v @ serde_json::Value::Object(_) => {
                from_value(v).map(Reason::Coded).map_err(D::Error::custom)
            }
            _ => Err(D::Error::custom(
                "expected an {\"error-code\": …} object or a detail string",
            )),
        }
    }
}

/// A member that is JWE-encrypted on the wire (`content`, `edsi`) but shown in plain
/// JSON in the draft's "TBS before encryption" samples.
///
/// Decoding picks `Encrypted` when the object has a `ciphertext` member.
// Plain data, built once per message: boxing would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<T> {
    /// General JWE JSON serialization (the wire form).
    Encrypted(JweJson),
    /// The plaintext structure (before encryption / after decryption).
    Plain(T),
}

impl<T> Content<T> {
    /// True for the encrypted (wire) form.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Content::Encrypted(_))
    }

    /// The JWE, if encrypted.
    pub fn jwe(&self) -> Option<&JweJson> {
        match self {
            Content::Encrypted(j) => Some(j),
            Content::Plain(_) => None,
        }
    }

    /// The plaintext, if not encrypted.
    pub fn plain(&self) -> Option<&T> {
        match self {
            Content::Encrypted(_) => None,
            Content::Plain(t) => Some(t),
        }
    }
}

impl<T: Serialize> Serialize for Content<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Content::Encrypted(j) => j.serialize(s),
            Content::Plain(t) => t.serialize(s),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Content<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let encrypted = v.as_object().is_some_and(|o| o.contains_key("ciphertext"));
        if encrypted {
            from_value(v)
                .map(Content::Encrypted)
                .map_err(|e| D::Error::custom(alloc::format!("JWE: {e}")))
        } else {
            from_value(v).map(Content::Plain).map_err(D::Error::custom)
        }
    }
}

/// `u32` carried as a decimal string (DSI `sdlist.cnt`: `"cnt": "1"`).
pub(crate) mod string_u32 {
    use alloc::string::{String, ToString};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(D::Error::custom(alloc::format!(
                "expected a decimal count as a string, found `{text}`"
            )));
        }
        text.parse()
            .map_err(|_| D::Error::custom(alloc::format!("count `{text}` out of range")))
    }
}
