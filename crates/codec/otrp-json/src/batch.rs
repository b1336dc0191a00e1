//! The OTrP batch command package — **our extension**: the OTrP drafts define no batch
//! message ([UC-01] §5.3, spec notes `otrp.md` §6).
//!
//! One TAM signature covers a list of ordinary TBS requests for every device of one model
//! that shares a device key (the premise of [UC-00]: identical DSI, same device key):
//!
//! ```text
//! {"OTrPBatchPackage": <JWS (flattened, or general for dual control) over
//!     {"ver": "1.0", "pkgid": "<package id>", "seq": <uint>, "model": "<model>",
//!      "requests": [ {"CreateSDTBSRequest": {…}}, {"InstallTATBSRequest": {…}} ]}>}
//! ```
//!
//! * Every request's `content` is a JWE to the **shared model/batch public key** (not to
//!   one device), so only devices holding that key can read it; an `encrypted_ta` key is
//!   wrapped to the same key (not to a per-device TEE SP AIK, which the TAM cannot know
//!   for an SD the package itself creates).
//! * There is no per-device data: `did` in a CreateSD content is empty, `dsihash` is
//!   empty, `tid` is the package id; `rid`s are per request, for the result.
//! * `pkgid` + `seq` protect against replay and rollback: a device applies package
//!   `pkgid` only with a `seq` above the last one it applied.
//! * Only CreateSD, InstallTA and UpdateTA may be batched (GetDeviceState is per device).
//!
//! The device answers with `{"OTrPBatchResult": <JWS by the TEE key over`
//! [`BatchResultTbs`]`>}`.

use alloc::string::String;
use alloc::vec::Vec;

use otrp_crypto::{CryptoProvider, PublicKey};
use serde::{Deserialize, Serialize};

use crate::jose::{self, Jws, Signer, VerifiedJws, VerifyPolicy};
use crate::json::{from_slice, to_vec};
use crate::{Error, ErrorCode, MessageKind, Status, TbsRequest};

/// Outer member name of a batch package.
pub const BATCH_PACKAGE: &str = "OTrPBatchPackage";
/// Outer member name of a device's batch result.
pub const BATCH_RESULT: &str = "OTrPBatchResult";

/// The signed body of a batch package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchTbs {
    /// Message version (`1.0`).
    pub ver: String,
    /// Package id (one anti-rollback counter per id on the device).
    pub pkgid: String,
    /// Sequence number: a device applies only a higher one than its last.
    pub seq: u64,
    /// The device model the package is for (informative; the key decides who can read it).
    pub model: String,
    /// The commands, applied in order, all or nothing.
    pub requests: Vec<TbsRequest>,
}

/// The signed body of a device's result on a batch package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResultTbs {
    /// Message version (`1.0`).
    pub ver: String,
    /// The package id.
    pub pkgid: String,
    /// The package's sequence number.
    pub seq: u64,
    /// The device (`did`: BASE64 of SHA-256 of its TEE certificate).
    pub did: String,
    /// `pass` when every command was applied, `fail` when none was.
    pub status: Status,
    /// Number of commands applied (all of them on `pass`, 0 on `fail`).
    pub applied: u64,
    /// The OTrP error code on `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Why, on `fail` (for logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageEnvelope {
    #[serde(rename = "OTrPBatchPackage")]
    jws: Jws,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultEnvelope {
    #[serde(rename = "OTrPBatchResult")]
    jws: Jws,
}

/// Signs a batch package with `signers` (one: flattened JWS; several: general JWS).
/// Refuses GetDeviceState / DeleteSD / UpdateSD / DeleteTA requests and any request whose
/// `content` is not a JWE.
pub fn sign_batch(
    provider: &dyn CryptoProvider,
    signers: &[Signer<'_>],
    tbs: &BatchTbs,
) -> Result<Vec<u8>, Error> {
    for r in &tbs.requests {
        if !matches!(
            r.kind(),
            MessageKind::CreateSd | MessageKind::InstallTa | MessageKind::UpdateTa
        ) {
            return Err(Error::header(
                "requests",
                alloc::format!(
                    "{} cannot be batched (CreateSD, InstallTA, UpdateTA only)",
                    r.kind().tbs_request_name()
                ),
            ));
        }
        if !r.is_protected() {
            return Err(Error::header(
                "requests",
                alloc::format!("{}: content must be a JWE", r.kind().tbs_request_name()),
            ));
        }
    }
    let payload = to_vec(tbs)?;
    let jws = match signers {
        [one] => Jws::Flattened(jose::sign_flattened(provider, one, &payload)?),
        many => Jws::General(jose::sign_general(provider, many, &payload)?),
    };
    to_vec(&PackageEnvelope { jws })
}

/// Decodes `{"OTrPBatchPackage": <JWS>}` without verifying it.
pub fn decode_batch(bytes: &[u8]) -> Result<Jws, Error> {
    from_slice::<PackageEnvelope>(bytes).map(|e| e.jws)
}

/// Verifies a batch package's JWS with `trusted` keys under `policy` and decodes its body.
pub fn verify_batch(
    provider: &dyn CryptoProvider,
    jws: &Jws,
    trusted: &[PublicKey],
    policy: VerifyPolicy,
) -> Result<(BatchTbs, VerifiedJws), Error> {
    let v = jose::verify(provider, jws, trusted, policy)?;
    let tbs: BatchTbs = from_slice(&v.payload)?;
    Ok((tbs, v))
}

/// Signs a device's batch result (flattened JWS by the TEE key).
pub fn sign_batch_result(
    provider: &dyn CryptoProvider,
    tee_key: &Signer<'_>,
    tbs: &BatchResultTbs,
) -> Result<Vec<u8>, Error> {
    let jws = Jws::Flattened(jose::sign_flattened(provider, tee_key, &to_vec(tbs)?)?);
    to_vec(&ResultEnvelope { jws })
}

/// Verifies a device's batch result with its TEE key.
pub fn verify_batch_result(
    provider: &dyn CryptoProvider,
    bytes: &[u8],
    tee_key: &PublicKey,
) -> Result<BatchResultTbs, Error> {
    let env: ResultEnvelope = from_slice(bytes)?;
    let v = jose::verify(
        provider,
        &env.jws,
        core::slice::from_ref(tee_key),
        VerifyPolicy::AnyOne,
    )?;
    from_slice(&v.payload)
}
