//! JSON plumbing: strict decoding with JSON paths, compact encoding, base64 helpers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// Decodes `bytes` as one JSON value of type `T`; errors name the JSON path of the
/// offending member and its line/column; trailing characters are refused.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(Error::from_path)?;
    de.end().map_err(Error::from_json)?;
    Ok(value)
}

/// Encodes `value` as compact JSON (members in declaration order, no whitespace).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes a `serde_json::Value` already parsed into `T`, with the JSON path of the
/// first error. Used where a member's type is chosen by looking at the value first.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("at `{path}`: {inner}")
        }
    })
}

/// base64url without padding (RFC 7515 §2), as JWS/JWE members use.
pub fn b64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Strict base64url-without-padding decoding; `member` names the JOSE member in errors.
pub fn b64url_decode(text: &str, member: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD.decode(text).map_err(|e| Error::Base64 {
        member: member.to_string(),
        encoding: "base64url (unpadded)",
        msg: e.to_string(),
    })
}

/// Standard padded base64, as OTrP uses for certificates, keys and hashes (§7.4).
pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Strict standard base64 decoding; `member` names the OTrP member in errors.
pub fn b64_decode(text: &str, member: &str) -> Result<Vec<u8>, Error> {
    STANDARD.decode(text).map_err(|e| Error::Base64 {
        member: member.to_string(),
        encoding: "base64",
        msg: e.to_string(),
    })
}
