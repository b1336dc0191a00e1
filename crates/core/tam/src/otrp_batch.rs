//! The OTrP batch command package, TAM side — **our extension** (the OTrP drafts define
//! no batch message; [UC-01] §5.3, spec notes `otrp.md` §6; wire format in
//! [`otrp_json::batch`], device side in [`otrp_agent::otrp::batch`]).
//!
//! [`build_batch_package`] builds one package for every device of one model sharing a
//! device key ([UC-00]): a CreateSD and/or InstallTA/UpdateTA per [`BatchCommand`], each
//! `content` a JWE to the shared key, each `encrypted_ta` key wrapped to the same key, no
//! `did` and no `dsihash`, `tid` = the package id; then **one** TAM signature over the
//! whole list. The same bytes go to every device (HTTP, CoAP, caches, multicast).
//!
//! [`with_oem_authorizations`] then adds, as a per-device CreateSD carries it, the OEM's
//! authorization of each SP whose SD the package creates (for OEM-gated devices; the
//! unprotected header member `oemauth`, outside the TAM signature: the authorization
//! carries the OEM's own).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use otrp_agent::otrp::package;
use otrp_crypto::{CryptoProvider, PublicKey};
use otrp_json::batch::BatchTbs;
use otrp_json::{ContentEnc, RecipientKey, Signer, TbsRequest, OTRP_VERSION};
use rand_core::CryptoRngCore;

use crate::otrp::OtrpError;

/// One command of a batch package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchCommand {
    /// Create SD `sdname` for SP `spid` (its certificate `spcert`, DER), managed by the
    /// TAM `tamid`.
    CreateSd {
        /// SD name.
        sdname: String,
        /// SP id.
        spid: String,
        /// SP certificate (DER).
        spcert: Vec<u8>,
        /// The managing TAM's `tamid`.
        tamid: String,
    },
    /// Install (or, with `update`, update) TA `taid` in SD `sdname` from the SP-signed
    /// SUIT envelope `envelope` (payload integrated).
    InstallTa {
        /// SD name.
        sdname: String,
        /// SP id.
        spid: String,
        /// TA id.
        taid: String,
        /// The managing TAM's `tamid`.
        tamid: String,
        /// The SUIT envelope.
        envelope: Vec<u8>,
        /// UpdateTA instead of InstallTA.
        update: bool,
    },
}

/// What a package is: its id, sequence number, target model and the TEE name its
/// devices route by (`tee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    /// Package id (the devices' anti-rollback counter).
    pub pkgid: String,
    /// Sequence number (must grow from one package to the next of the same id).
    pub seq: u64,
    /// Device model.
    pub model: String,
    /// The `tee` routing name of the model's TEE.
    pub tee: String,
}

/// Builds and signs (once) a batch package of `commands` for the devices holding the
/// private half of `batch_key`. Returns the `OTrPBatchPackage` JSON bytes.
pub fn build_batch_package(
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    signers: &[Signer<'_>],
    batch_key: &PublicKey,
    header: &BatchHeader,
    commands: &[BatchCommand],
) -> Result<Vec<u8>, OtrpError> {
    if commands.is_empty() {
        return Err(OtrpError::Build("a batch package needs a command".into()));
    }
    let build = |e: otrp_json::Error| OtrpError::Build(format!("batch package: {e}"));
    let to = [RecipientKey::new(batch_key)];
    let enc = ContentEnc::A128CbcHs256;
    let mut requests = Vec::with_capacity(commands.len());
    for (i, cmd) in commands.iter().enumerate() {
        let rid = format!("{}-{}-{i}", header.pkgid, header.seq);
        let req = match cmd {
            BatchCommand::CreateSd {
                sdname,
                spid,
                spcert,
                tamid,
            } => {
                let c = otrp_json::CreateSdContent {
                    spid: spid.clone(),
                    sdname: sdname.clone(),
                    spcert: STANDARD.encode(spcert),
                    tamid: tamid.clone(),
                    did: String::new(),
                };
                let (content, _) =
                    otrp_json::encrypt_content(provider, rng, &c, enc, &to).map_err(build)?;
                TbsRequest::CreateSd(otrp_json::CreateSdTbsRequest {
                    ver: OTRP_VERSION.into(),
                    rid,
                    tid: header.pkgid.clone(),
                    tee: header.tee.clone(),
                    nextdsi: false,
                    dsihash: String::new(),
                    content,
                })
            }
            BatchCommand::InstallTa {
                sdname,
                spid,
                taid,
                tamid,
                envelope,
                update,
            } => {
                let sealed = package::seal(provider, rng, batch_key, Some(envelope), None)
                    .map_err(|e| OtrpError::Build(e.to_string()))?;
                let c = otrp_json::TaContent {
                    tamid: tamid.clone(),
                    spid: spid.clone(),
                    sdname: sdname.clone(),
                    spcert: None,
                    taid: taid.clone(),
                };
                let (content, _) =
                    otrp_json::encrypt_content(provider, rng, &c, enc, &to).map_err(build)?;
                let seal_err = |e: package::PackageError| OtrpError::Build(e.to_string());
                if *update {
                    TbsRequest::UpdateTa(otrp_json::UpdateTaTbsRequest {
                        ver: OTRP_VERSION.into(),
                        rid,
                        tid: header.pkgid.clone(),
                        tee: header.tee.clone(),
                        nextdsi: false,
                        dsihash: String::new(),
                        content,
                        encrypted_ta: sealed.into_update().map_err(seal_err)?,
                    })
                } else {
                    TbsRequest::InstallTa(otrp_json::InstallTaTbsRequest {
                        ver: OTRP_VERSION.into(),
                        rid,
                        tid: header.pkgid.clone(),
                        tee: header.tee.clone(),
                        nextdsi: false,
                        dsihash: String::new(),
                        content,
                        encrypted_ta: sealed.into_install().map_err(seal_err)?,
                    })
                }
            }
        };
        requests.push(req);
    }
    let tbs = BatchTbs {
        ver: OTRP_VERSION.into(),
        pkgid: header.pkgid.clone(),
        seq: header.seq,
        model: header.model.clone(),
        requests,
    };
    otrp_json::batch::sign_batch(provider, signers, &tbs).map_err(build)
}

/// Adds to the signed package `package` (built from `commands`) the OEM authorizations
/// (`(sp_id, OemAuthorization COSE bytes)`, [`crate::OtrpTamConfig::oem_authorizations`])
/// of the SPs its CreateSD commands name, in the unprotected header of its (first)
/// signature: member `oemauth`, standard BASE64, one string as in a single CreateSD
/// request, an array when SDs of several SPs are created. An SP without one gets none
/// (an OEM-gated device then refuses its CreateSD with `ERR_TAM_NOT_AUTHORIZED`);
/// `package` is returned as is when no authorization applies.
pub fn with_oem_authorizations(
    package: &[u8],
    commands: &[BatchCommand],
    authorizations: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, OtrpError> {
    let mut auths: Vec<String> = Vec::new();
    for c in commands {
        if let BatchCommand::CreateSd { spid, .. } = c {
            for (_, a) in authorizations.iter().filter(|(s, _)| s == spid) {
                let a = STANDARD.encode(a);
                if !auths.contains(&a) {
                    auths.push(a);
                }
            }
        }
    }
    if auths.is_empty() {
        return Ok(package.to_vec());
    }
    let value = if auths.len() == 1 {
        serde_json::Value::String(auths.remove(0))
    } else {
        serde_json::Value::Array(auths.into_iter().map(serde_json::Value::String).collect())
    };
    crate::otrp::put_oemauth(package, value, "batch package oemauth")
}
