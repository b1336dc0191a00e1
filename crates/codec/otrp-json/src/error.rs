//! Typed errors: every variant names what was wrong and where (JSON path, line/column,
//! or the JOSE member).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// Everything that can go wrong when decoding, encoding, signing, verifying,
/// encrypting or decrypting OTrP messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not JSON at all (or is truncated / has trailing characters).
    #[error("invalid JSON at line {line}, column {column}: {msg}")]
    Syntax {
        /// 1-based line of the offending byte.
        line: usize,
        /// 1-based column of the offending byte.
        column: usize,
        /// serde_json's description.
        msg: String,
    },
    /// The JSON is well formed but a member has the wrong shape, is missing or unknown.
    #[error("invalid OTrP JSON at `{path}` (line {line}, column {column}): {msg}")]
    Data {
        /// Path of the offending member, e.g. `CreateSDTBSRequest.nextdsi`.
        path: String,
        /// 1-based line (0 when the value was decoded from a nested base64url payload).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was wrong.
        msg: String,
    },
    /// Serialising a value to JSON failed.
    #[error("JSON encoding failed: {0}")]
    Encode(String),
    /// The unsigned outer name does not match the type of the signed payload.
    #[error("outer name `{outer}` does not match the signed payload `{inner}`")]
    NameMismatch {
        /// The outer (unsigned) member name.
        outer: String,
        /// The name found inside the signed payload.
        inner: String,
    },
    /// A different kind of message was expected here.
    #[error("expected {expected}, found `{found}`")]
    UnexpectedMessage {
        /// What the caller asked for.
        expected: &'static str,
        /// The message name found.
        found: String,
    },
    /// A base64url (or base64) member is malformed.
    #[error("`{member}` is not valid {encoding}: {msg}")]
    Base64 {
        /// The JOSE/OTrP member.
        member: String,
        /// `base64url` (unpadded) or `base64`.
        encoding: &'static str,
        /// Decoder message.
        msg: String,
    },
    /// A JOSE header is not acceptable.
    #[error("JOSE header `{member}`: {msg}")]
    Header {
        /// Where the header was (e.g. `signatures[1].protected`).
        member: String,
        /// What was wrong.
        msg: String,
    },
    /// An algorithm outside the allow-list.
    #[error("JOSE `{param}` value `{value}` is not allowed at `{member}`")]
    AlgorithmNotAllowed {
        /// Where (e.g. `protected` or `recipients[0].header`).
        member: String,
        /// `alg` or `enc`.
        param: &'static str,
        /// The refused value.
        value: String,
    },
    /// The protected header carries `crit`; no extension is understood.
    #[error("JOSE header at `{member}` lists critical extensions {names:?}, none is supported")]
    CriticalHeader {
        /// Where.
        member: String,
        /// The names listed in `crit`.
        names: Vec<String>,
    },
    /// RSA1_5 key transport is refused unless [`LegacyMode::Allow`](crate::LegacyMode::Allow).
    #[error("RSA1_5 key transport at `{member}` is refused (enable LegacyMode::Allow for legacy devices)")]
    LegacyRsa15Refused {
        /// The recipient.
        member: String,
    },
    /// No signature verified with any trusted key (or the policy was not met).
    #[error("JWS signature verification failed: {0}")]
    BadSignature(String),
    /// The JWE could not be decrypted (wrong key, tampered key, IV, ciphertext or tag).
    /// The cause is deliberately not detailed, to give no decryption oracle.
    #[error("JWE decryption failed")]
    Decrypt,
    /// No recipient of the JWE can be opened with the given key.
    #[error("no JWE recipient matches the {0} key")]
    NoRecipient(&'static str),
    /// A key of an unsupported type was given for this operation.
    #[error("unsupported key for {0}")]
    UnsupportedKey(&'static str),
    /// A message that must be encrypted on the wire still carries plaintext `content`.
    #[error("`{member}` must be encrypted before signing")]
    PlaintextContent {
        /// Path of the plaintext member.
        member: String,
    },
    /// A crypto primitive failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl Error {
    pub(crate) fn from_json(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => Error::Syntax {
                line: e.line(),
                column: e.column(),
                msg: strip_position(&e),
            },
            Category::Data => Error::Data {
                path: String::from("."),
                line: e.line(),
                column: e.column(),
                msg: strip_position(&e),
            },
        }
    }

    pub(crate) fn from_path(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match Error::from_json(inner) {
            Error::Data {
                line, column, msg, ..
            } => Error::Data {
                path,
                line,
                column,
                msg,
            },
            other => other,
        }
    }

    pub(crate) fn crypto(e: impl fmt::Display) -> Self {
        Error::Crypto(e.to_string())
    }

    pub(crate) fn header(member: &str, msg: impl Into<String>) -> Self {
        Error::Header {
            member: member.into(),
            msg: msg.into(),
        }
    }
}

/// serde_json appends " at line X column Y" to its messages; we keep the position in
/// dedicated fields.
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(pos) if e.line() != 0 => full.get(..pos).unwrap_or(&full).to_string(),
        _ => full,
    }
}
