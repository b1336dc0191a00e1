//! Typed errors: [`PkiError`] for issuing and the PKI directory, [`ChainError`] for chain
//! validation, [`DeviceError`] for provisioning and the sealed device state.

use std::path::PathBuf;

/// Why a PKI operation (init, issue, revoke, load, store) failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The target directory already holds a PKI (`pki.json`).
    #[error("{} already holds a PKI; pass --force to replace it", dir.display())]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds no `pki.json`.
    #[error("{} holds no PKI (no pki.json); create one with `otrp pki init {}`", dir.display(), dir.display())]
    NotAPki {
        /// The directory.
        dir: PathBuf,
    },
    /// A certificate of this kind and name was already issued.
    #[error("a {kind} certificate named {name:?} already exists; pass --force to replace it")]
    AlreadyIssued {
        /// Kind (`tam`, `sp`, ...).
        kind: &'static str,
        /// Name.
        name: String,
    },
    /// A name used in a file name has characters other than `A-Z a-z 0-9 . _ -`.
    #[error("invalid {what} {value:?}: use 1 to 64 characters from A-Z a-z 0-9 . _ - (not starting with '.')")]
    InvalidName {
        /// What the name is for.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// An unknown value for an enumerated option.
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownValue {
        /// The option.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// `pki.json` is malformed or inconsistent.
    #[error("pki.json: {what}")]
    Index {
        /// What was wrong (with the field path).
        what: String,
    },
    /// A file the index names is missing from the PKI.
    #[error("the PKI has no file {path} (named by pki.json)")]
    MissingFile {
        /// Relative path.
        path: String,
    },
    /// A PEM or DER object could not be parsed.
    #[error("{what}: {detail}")]
    Parse {
        /// Which object (file or field).
        what: String,
        /// Parser message.
        detail: String,
    },
    /// The certificate was not issued by any CA of this PKI.
    #[error("{what} was not issued by any CA of this PKI (issuer {issuer})")]
    ForeignCertificate {
        /// The certificate (file name or subject).
        what: String,
        /// Its issuer DN.
        issuer: String,
    },
    /// The certificate is already on its CA's CRL.
    #[error("certificate serial {serial} is already revoked by {ca}")]
    AlreadyRevoked {
        /// Serial number (hex).
        serial: String,
        /// The CA's label.
        ca: String,
    },
    /// rcgen refused to build or sign a certificate or CRL.
    #[error("issuing {what}: {detail}")]
    Issue {
        /// What was being issued.
        what: String,
        /// rcgen's message.
        detail: String,
    },
    /// Key generation or conversion failed.
    #[error("key {what}: {source}")]
    Key {
        /// Which key.
        what: String,
        /// The crypto error.
        source: otrp_crypto::CryptoError,
    },
    /// A validity period outside what X.509 can express.
    #[error("invalid validity: {what}")]
    Validity {
        /// What was wrong.
        what: String,
    },
    /// File-system error (only from [`crate::fs`]).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Provisioning failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Why a certificate chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain does not lead to any of the trust anchors (wrong root, or a missing
    /// intermediate).
    #[error("certificate chain does not lead to a trusted root (unknown issuer)")]
    UnknownIssuer,
    /// A certificate in the chain has expired at the time given.
    #[error(
        "a certificate in the chain expired at {} (checked at {})",
        crate::rfc3339(*not_after),
        crate::rfc3339(*now)
    )]
    Expired {
        /// Its notAfter, seconds since the Unix epoch.
        not_after: u64,
        /// The time of the check.
        now: u64,
    },
    /// A certificate in the chain is not valid yet at the time given.
    #[error(
        "a certificate in the chain is not valid before {} (checked at {})",
        crate::rfc3339(*not_before),
        crate::rfc3339(*now)
    )]
    NotYetValid {
        /// Its notBefore.
        not_before: u64,
        /// The time of the check.
        now: u64,
    },
    /// A certificate in the chain is on its issuer's CRL.
    #[error("a certificate in the chain is revoked (listed on its issuer's CRL)")]
    Revoked,
    /// A CRL needed for the check has passed its nextUpdate.
    #[error(
        "a CRL expired at {} (checked at {}); reissue the CRLs with `otrp pki crl`",
        crate::rfc3339(*next_update),
        crate::rfc3339(*now)
    )]
    CrlExpired {
        /// The CRL's nextUpdate.
        next_update: u64,
        /// The time of the check.
        now: u64,
    },
    /// No CRL for one of the chain's issuers was supplied.
    #[error("revocation status unknown: no CRL from the issuer of a certificate in the chain")]
    RevocationUnknown,
    /// A signature in the chain (or on a CRL) does not verify.
    #[error("a signature in the certificate chain (or on a CRL) does not verify")]
    BadSignature,
    /// The leaf is not meant for this use (wrong extended key usage, or a CA certificate).
    #[error("certificate is not valid for {usage}: {detail}")]
    WrongUsage {
        /// The usage checked.
        usage: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A TAM certificate without the `urn:otrp:tamid:` SAN.
    #[error("TAM certificate carries no tamid (SAN URI urn:otrp:tamid:<id>)")]
    MissingTamId,
    /// A device (TEE or TFW) certificate without the `urn:otrp:ueid:` SAN.
    #[error("device certificate carries no ueid (SAN URI urn:otrp:ueid:<hex>)")]
    MissingUeid,
    /// A certificate or CRL is not well-formed DER X.509.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which object (leaf, intermediate #n, root #n, CRL #n).
        what: String,
        /// Parser message.
        detail: String,
    },
    /// Any other refusal by the path validator.
    #[error("certificate chain refused: {detail}")]
    Rejected {
        /// The validator's reason.
        detail: String,
    },
}

/// Why provisioning or opening a device's sealed state failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The storage ("eFuse") key has the wrong length.
    #[error("storage key must be 32 bytes, got {len}")]
    StorageKeyLength {
        /// Its length.
        len: usize,
    },
    /// The sealed container is not the expected CBOR structure.
    #[error("sealed state: {what}")]
    Container {
        /// What was wrong (with the element path).
        what: String,
    },
    /// AES-256-GCM authentication failed: wrong key, or the file was modified.
    #[error(
        "sealed state does not open with this storage key (wrong device, or the file was modified)"
    )]
    Unseal,
    /// The decrypted state is missing a field or has one of the wrong type.
    #[error("sealed state field {path}: {what}")]
    Field {
        /// Field path, e.g. `tee.key`.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// A crypto operation failed.
    #[error("{what}: {source}")]
    Crypto {
        /// What was being done.
        what: &'static str,
        /// The crypto error.
        source: otrp_crypto::CryptoError,
    },
    /// CBOR encoding failed.
    #[error("CBOR encoding of the sealed state failed: {detail}")]
    Encode {
        /// ciborium's message.
        detail: String,
    },
}
