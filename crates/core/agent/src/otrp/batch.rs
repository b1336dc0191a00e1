//! The OTrP batch command package on the device — **our extension** (the OTrP drafts
//! define no batch message; format in [`otrp_json::batch`], spec notes `otrp.md` §6).
//!
//! [`OtrpAgent::handle_batch`] takes a TAM-signed `OTrPBatchPackage` identical for every
//! device of a model sharing one device key, and the private half of that shared key.
//! It accepts it only when, in order:
//!
//! 1. the JWS verifies with a trusted TAM (the same keys, chain validation and dual
//!    control rules as for OTrP requests): `ERR_TAM_NOT_TRUSTED` / `ERR_REQUEST_INVALID`
//!    (a tampered package) / `ERR_UNSUPPORTED_CRYPTO_ALG`; `ver` must be `1.0`;
//! 2. its `seq` is above the last package `pkgid` this device applied (kept in the store
//!    under `otrp/batch/<hex pkgid>`): a replayed or older package is
//!    `ERR_REQUEST_INVALID`, before anything is decrypted;
//! 3. each request names this TEE (`tee`) and its `content` decrypts with the shared key
//!    (a device of another model/key cannot read it: `ERR_REQUEST_INVALID`); a CreateSD
//!    content must carry an empty `did` (no per-device data in a batch);
//! 4. each command passes the same rules as its single-device form (SD ownership,
//!    management configuration, SUIT signature and anti-rollback of the TA, …), applied
//!    on top of the commands before it. The TA key of InstallTA/UpdateTA is wrapped to
//!    the shared key, not to the SD's TEE SP AIK (the TAM cannot know a per-device AIK
//!    of an SD the same package creates). On an OEM-gated device the CreateSD of a
//!    non-OEM TAM needs the OEM's authorization of (SP, TAM key) exactly as a single
//!    request does: the package's signature carries it in its unprotected header member
//!    `oemauth` (one, or an array for several SPs).
//!
//! All commands are applied in **one store commit** together with the new sequence
//! number, or none is: no half-created SD, no TA without its SD. The answer is an
//! `OTrPBatchResult` signed by the TEE key (`pass` with the number of commands applied,
//! or `fail` with the OTrP error code), for the shell to send back to the TAM.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use otrp_crypto::PrivateKey;
use otrp_json::batch::{BatchResultTbs, BatchTbs};
use otrp_json::{ErrorCode, JweJson, Signer, Status, TbsRequest, VerifyPolicy, OTRP_VERSION};
use otrp_suit_processor::{ChangeSet, ComponentStore, Staged};
use rand_core::CryptoRngCore;
use serde::de::DeserializeOwned;

use super::{json_err, package, refused, Ctx, OtrpAgent, OtrpEvent, OtrpOutput, Refused, R};

/// State key prefix of the last applied `seq` per package id.
pub const BATCH_SEQ_PREFIX: &str = "otrp/batch/";

fn seq_key(pkgid: &str) -> String {
    alloc::format!("{BATCH_SEQ_PREFIX}{}", hex::encode(pkgid.as_bytes()))
}

impl OtrpAgent {
    /// Applies a batch package (see the module docs) with `batch_key`, the private half of
    /// the model's shared device key. Returns the signed `OTrPBatchResult` (none when the
    /// input is not a batch package at all) and events; on any refusal the store is
    /// unchanged.
    pub fn handle_batch<S: ComponentStore>(
        &self,
        store: &mut S,
        message: &[u8],
        batch_key: &PrivateKey,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> OtrpOutput {
        let _ = now; // no clock-based checks in the core
        let jws = match otrp_json::batch::decode_batch(message) {
            Ok(j) => j,
            Err(e) => {
                return OtrpOutput {
                    send: None,
                    events: alloc::vec![OtrpEvent::Refused {
                        code: ErrorCode::RequestInvalid,
                        detail: alloc::format!("not an OTrP batch package: {e}"),
                    }],
                }
            }
        };
        // The ids for the result, read before verification (a refusal still names them).
        let ids = otrp_json::json::b64url_decode(jws.payload_b64(), "payload")
            .ok()
            .and_then(|p| otrp_json::json::from_slice::<BatchTbs>(&p).ok())
            .map(|t| (t.pkgid, t.seq))
            .unwrap_or_default();
        match self.apply_batch(store, &jws, batch_key, rng) {
            Ok((tbs, events)) => {
                let n = tbs.requests.len() as u64;
                let result = BatchResultTbs {
                    ver: OTRP_VERSION.into(),
                    pkgid: tbs.pkgid,
                    seq: tbs.seq,
                    did: self.did(),
                    status: Status::Pass,
                    applied: n,
                    code: None,
                    detail: None,
                };
                OtrpOutput {
                    send: self.sign_batch_result(&result),
                    events,
                }
            }
            Err(r) => {
                let result = BatchResultTbs {
                    ver: OTRP_VERSION.into(),
                    pkgid: ids.0,
                    seq: ids.1,
                    did: self.did(),
                    status: Status::Fail,
                    applied: 0,
                    code: Some(r.code),
                    detail: Some(r.detail.clone()),
                };
                OtrpOutput {
                    send: self.sign_batch_result(&result),
                    events: alloc::vec![OtrpEvent::Refused {
                        code: r.code,
                        detail: r.detail,
                    }],
                }
            }
        }
    }

    fn sign_batch_result(&self, tbs: &BatchResultTbs) -> Option<Vec<u8>> {
        otrp_json::batch::sign_batch_result(self.provider, &Signer::new(&self.config.tee_key), tbs)
            .ok()
    }

    fn apply_batch<S: ComponentStore>(
        &self,
        store: &mut S,
        jws: &otrp_json::Jws,
        batch_key: &PrivateKey,
        rng: &mut impl CryptoRngCore,
    ) -> R<(BatchTbs, Vec<OtrpEvent>)> {
        let keys = self.trusted_keys();
        let (tbs, v) =
            match otrp_json::batch::verify_batch(self.provider, jws, &keys, VerifyPolicy::AnyOne) {
                Ok(x) => x,
                Err(e @ otrp_json::Error::AlgorithmNotAllowed { .. }) => {
                    return Err(json_err(ErrorCode::UnsupportedCryptoAlg, "JWS", &e))
                }
                Err(e @ otrp_json::Error::BadSignature(_)) => {
                    let code = if self.names_trusted_key(jws, &keys) {
                        ErrorCode::RequestInvalid
                    } else {
                        ErrorCode::TamNotTrusted
                    };
                    return Err(json_err(code, "JWS", &e));
                }
                Err(e) => return Err(json_err(ErrorCode::RequestInvalid, "batch package", &e)),
            };
        if tbs.ver != OTRP_VERSION {
            return Err(refused(
                ErrorCode::UnsupportedMsgVersion,
                alloc::format!("ver `{}` (only {OTRP_VERSION})", tbs.ver),
            ));
        }
        let (senders, tam) = self.senders(&v.signatures)?;
        let key = seq_key(&tbs.pkgid);
        let last: Option<u64> = store
            .state(&key)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("store: {e}")))?
            .and_then(|b| core::str::from_utf8(&b).ok()?.parse().ok());
        if let Some(last) = last.filter(|l| tbs.seq <= *l) {
            return Err(refused(
                ErrorCode::RequestInvalid,
                alloc::format!(
                    "batch package {} seq {} is not above the applied seq {last} (replay or rollback)",
                    tbs.pkgid, tbs.seq
                ),
            ));
        }
        if tbs.requests.is_empty() {
            return Err(refused(ErrorCode::RequestInvalid, "empty batch package"));
        }
        let mut staged = Staged::new(&*store);
        let mut events = Vec::new();
        for (i, req) in tbs.requests.iter().enumerate() {
            let (rid, _) = req.ids();
            let ctx = Ctx {
                kind: req.kind(),
                rid: rid.to_string(),
                tid: tbs.pkgid.clone(),
                senders: senders.clone(),
                tam: tam.clone(),
            };
            let at = |r: Refused| Refused {
                code: r.code,
                detail: alloc::format!(
                    "request {i} ({}): {}",
                    req.kind().tbs_request_name(),
                    r.detail
                ),
            };
            let (_, changes, evs) = self
                .batch_command(&staged, &ctx, req, batch_key, rng)
                .map_err(at)?;
            staged.changes.merge(changes);
            events.extend(evs);
        }
        let mut changes = staged.changes;
        changes
            .state
            .insert(key, Some(tbs.seq.to_string().into_bytes()));
        store
            .commit(changes)
            .map_err(|e| refused(ErrorCode::TeeFail, alloc::format!("store: {e}")))?;
        Ok((tbs, events))
    }

    fn batch_command<S: ComponentStore>(
        &self,
        store: &S,
        ctx: &Ctx,
        req: &TbsRequest,
        batch_key: &PrivateKey,
        rng: &mut impl CryptoRngCore,
    ) -> R<(super::ResponseBody, ChangeSet, Vec<OtrpEvent>)> {
        let tee_ok = |tee: &str| {
            if tee == self.config.tee_name {
                Ok(())
            } else {
                Err(refused(
                    ErrorCode::RequestInvalid,
                    alloc::format!("tee `{tee}` is not this TEE"),
                ))
            }
        };
        match req {
            TbsRequest::CreateSd(r) => {
                tee_ok(&r.tee)?;
                let mut c: otrp_json::CreateSdContent =
                    self.open_batch_content(r.content.jwe(), batch_key, rng)?;
                if !c.did.is_empty() {
                    return Err(refused(
                        ErrorCode::RequestInvalid,
                        "a batch CreateSD names no device (`did` must be empty)",
                    ));
                }
                c.did = self.did();
                self.create_sd(store, ctx, c, rng)
            }
            TbsRequest::InstallTa(r) => {
                tee_ok(&r.tee)?;
                let c = self.open_batch_content(r.content.jwe(), batch_key, rng)?;
                let sealed = package::SealedTa::from_install(&r.encrypted_ta);
                self.install_ta(store, ctx, c, &sealed, false, Some(batch_key), rng)
            }
            TbsRequest::UpdateTa(r) => {
                tee_ok(&r.tee)?;
                let c = self.open_batch_content(r.content.jwe(), batch_key, rng)?;
                let sealed = package::SealedTa::from_update(&r.encrypted_ta);
                self.install_ta(store, ctx, c, &sealed, true, Some(batch_key), rng)
            }
            other => Err(refused(
                ErrorCode::RequestInvalid,
                alloc::format!("{} cannot be batched", other.kind().tbs_request_name()),
            )),
        }
    }

    fn open_batch_content<C: DeserializeOwned>(
        &self,
        jwe: Option<&JweJson>,
        batch_key: &PrivateKey,
        rng: &mut impl CryptoRngCore,
    ) -> R<C> {
        let jwe =
            jwe.ok_or_else(|| refused(ErrorCode::RequestInvalid, "content is not encrypted"))?;
        otrp_json::decrypt_content::<C>(self.provider, rng, jwe, batch_key, self.config.legacy)
            .map(|(c, _)| c)
            .map_err(|e| match e {
                otrp_json::Error::LegacyRsa15Refused { .. }
                | otrp_json::Error::AlgorithmNotAllowed { .. } => {
                    json_err(ErrorCode::UnsupportedCryptoAlg, "content", &e)
                }
                other => json_err(
                    ErrorCode::RequestInvalid,
                    "content (not readable with this device's batch key)",
                    &other,
                ),
            })
    }
}
