//! Batch mode (DESIGN.md §3.2): one signed TEEP Update per batch of devices.
//!
//! Devices of a batch share a P-256 batch key provisioned by the OEM (`otrp-pki`'s
//! `BatchKey`); the TAM holds its public half. For a batch the TAM signs **one** package:
//!
//! * a TEEP Update (COSE_Sign1 by the TAM) with **no token** and the option
//!   [`BATCH_OPTION`] (`otrp-batch`, label 70100) = `[batch-id: tstr, batch-sequence:
//!   uint]`: the Agent accepts it only when the id is its batch and the sequence number is
//!   above the last batch package it applied (anti-rollback at the package level, on top
//!   of each SUIT manifest's own sequence number);
//! * its manifests carry their payloads encrypted to the batch key (ECDH-ES+A128KW,
//!   A128GCM; [`encrypt_for_batch`]), so only devices holding the batch private key can
//!   install them; they are SUIT-signed by the SP as usual (the TAM signs SD manifests).
//!
//! The bytes are the same for every device: the HTTP server serves them as
//! `GET /tam/batch/<batch-id>` with a strong `ETag` and `Cache-Control: public` (any CDN
//! or proxy may cache them, and a multicast sender may push them), the CoAP server as the
//! resource `tam/batch/<batch-id>` with the ETag option ([`BatchPublisher::get`]).
//! Devices report back asynchronously: the Agent queues its signed Success or Error (with
//! SUIT reports) and the Broker POSTs it (`POST /tam/batch/<batch-id>/report`, checked by
//! [`verify_report`]) or sends it at the next session. A device provisioned with a report
//! key MACs it instead (COSE_Mac0 over the report and the package); the TAM checks it
//! with one HMAC under the key it derives from the batch's report master
//! ([`ReportContext`], [`record_reports_with`]; docs/CONSTRAINED.md, "MAC'd reports").
//!
//! The TAM's signing cost is one signature per batch package, not one per device.
//!
//! # Data updates (personalization for a whole batch)
//!
//! A package may also carry **data** for a TA (a smart lock's access list, a drone's
//! no-fly zones): the SP-signed SUIT manifest of the component `[..TA segments, "perso"]`
//! ([`otrp_suit::ComponentId::perso`], the same convention as per-device personalization), whose
//! payload is encrypted to the batch key like a TA image. It is the same data for every
//! device of the batch (per-device data does not fit a package that is identical for
//! all; it goes through per-device personalization). A batch package is public
//! (cacheable), so [`check_data_for_batch`] refuses data whose payload is not encrypted to
//! the batch. The Agent installs the data only for a TA that is installed or installed
//! by the same package; the data manifest's sequence number and the batch sequence number
//! both must grow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use ciborium::value::Value;
use otrp_crypto::report_key::REPORT_KEY_LEN;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, PrivateKey, PublicKey, SigAlg};
use otrp_store::Store;
use otrp_suit::TaManifestBuilder;
use otrp_teep::{ComponentId, TeepMessage, Update};
use rand_core::CryptoRngCore;

/// TEEP Update option `otrp-batch` = `[batch-id: tstr, batch-sequence: uint]` (our
/// extension; TEEP ignores unknown option labels).
pub const BATCH_OPTION: u64 = 70100;

/// The `Content-Type` of a batch package (a TEEP message).
pub const CONTENT_TYPE: &str = "application/teep+cbor";

/// `Cache-Control` of a batch package: public (same bytes for everyone, signed), revalidated
/// every minute so a new sequence number reaches devices quickly.
pub const CACHE_CONTROL: &str = "public, max-age=60, must-revalidate";

/// Why a batch package could not be built, published or reported on.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The batch id is empty or too long (1..=64 bytes of `[A-Za-z0-9._-]`).
    #[error("invalid batch id {0:?}")]
    BadId(String),
    /// The package has nothing to do.
    #[error("a batch package needs manifests or deletions")]
    Empty,
    /// A package with this or a higher sequence number is already published.
    #[error("batch {id}: sequence {sequence} is not above the published {published}")]
    SequenceNotGrowing {
        /// Batch id.
        id: String,
        /// Refused sequence number.
        sequence: u64,
        /// Published one.
        published: u64,
    },
    /// Encryption, encoding or signing failed.
    #[error("{0}")]
    Crypto(String),
    /// A report was refused.
    #[error("report refused: {0}")]
    Report(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] otrp_store::StoreError),
    /// A data manifest that would travel readable by anyone who fetches the package.
    #[error("data manifest not encrypted to batch {batch_id}: {why}")]
    DataNotEncrypted {
        /// The batch.
        batch_id: String,
        /// What is wrong.
        why: String,
    },
}

fn collect_encryption_infos<'a>(
    seq: &'a otrp_suit::command::CommandSequence,
    out: &mut Vec<&'a [u8]>,
) {
    use otrp_suit::command::Command;
    for c in seq.commands() {
        match c {
            Command::OverrideParameters(p) | Command::SetParameters(p) => {
                out.extend(p.0.iter().filter_map(|p| match p {
                    otrp_suit::Parameter::EncryptionInfo(b) => Some(b.as_slice()),
                    _ => None,
                }));
            }
            Command::RunSequence(w) => collect_encryption_infos(w.value(), out),
            Command::TryEach(t) => {
                for w in &t.sequences {
                    collect_encryption_infos(w.value(), out);
                }
            }
            _ => {}
        }
    }
}

/// Checks that the SUIT envelope `envelope` (a data manifest) carries its payload
/// encrypted to batch `batch_id`: it sets `encryption-info` (in its shared or install
/// sequence) and every one names a recipient with kid [`batch_kid`], and it carries no
/// plaintext integrated payload or URI for the device to fetch.
pub fn check_data_for_batch(envelope: &[u8], batch_id: &str) -> Result<(), BatchError> {
    check_id(batch_id)?;
    let bad = |why: String| BatchError::DataNotEncrypted {
        batch_id: batch_id.into(),
        why,
    };
    let env = otrp_suit::Envelope::decode(envelope).map_err(|e| bad(format!("envelope: {e}")))?;
    let mut infos = Vec::new();
    if let Some(shared) = &env.manifest().common.value().shared_sequence {
        collect_encryption_infos(shared.value(), &mut infos);
    }
    let install = env
        .install()
        .map_err(|e| bad(format!("install sequence: {e}")))?;
    if let Some(install) = install {
        collect_encryption_infos(install, &mut infos);
        let plain = install
            .parameters()
            .any(|p| matches!(p, otrp_suit::Parameter::Uri(_)));
        if plain {
            return Err(bad(
                "the manifest fetches a payload (integrated or by URI) instead of writing encrypted content".into(),
            ));
        }
    }
    if infos.is_empty() {
        return Err(bad(
            "its payload is not encrypted (no encryption-info)".into()
        ));
    }
    let kid = batch_kid(batch_id);
    for info in infos {
        let enc = otrp_cose::encrypt::parse_encryption_info(info)
            .map_err(|e| bad(format!("encryption-info: {e}")))?;
        if !enc
            .recipients
            .iter()
            .any(|r| r.unprotected.key_id == kid || r.protected.header.key_id == kid)
        {
            return Err(bad(format!(
                "no recipient with kid {:?} (encrypt it with the batch public key)",
                String::from_utf8_lossy(&kid)
            )));
        }
    }
    Ok(())
}

/// The `kid` put in the recipient header of batch-encrypted payloads.
pub fn batch_kid(batch_id: &str) -> Vec<u8> {
    format!("otrp-batch:{batch_id}").into_bytes()
}

/// True when `id` can name a batch: 1 to 64 characters among `A-Z a-z 0-9 - _ .` (the
/// rule of the TAM core and of the batch API).
pub fn is_valid_batch_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn check_id(id: &str) -> Result<(), BatchError> {
    if is_valid_batch_id(id) {
        Ok(())
    } else {
        Err(BatchError::BadId(id.into()))
    }
}

/// Makes `builder`'s payload `image` encrypted to the batch public key (ECDH-ES+A128KW,
/// A128GCM): image digest and size are the plaintext's, content and encryption-info go
/// into the manifest. The SP then signs the manifest as usual.
pub fn encrypt_for_batch(
    builder: TaManifestBuilder,
    provider: &dyn CryptoProvider,
    rng: &mut impl CryptoRngCore,
    image: &[u8],
    batch_id: &str,
    batch_public: &otrp_crypto::p256::PublicKey,
) -> Result<TaManifestBuilder, BatchError> {
    check_id(batch_id)?;
    builder
        .encrypt_payload(
            provider,
            rng,
            image,
            otrp_cose::encrypt::Recipient::EcdhEs {
                recipient_public: batch_public,
                kid: Some(batch_kid(batch_id)),
            },
            otrp_cose::encrypt::ContentAlg::A128Gcm,
        )
        .map_err(|e| BatchError::Crypto(e.to_string()))
}

/// One signed batch package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPackage {
    /// The batch.
    pub batch_id: String,
    /// Its sequence number (grows with every package of the batch).
    pub sequence: u64,
    /// The COSE_Sign1 TEEP Update every device of the batch gets.
    pub bytes: Vec<u8>,
    /// Strong HTTP entity tag: `"` + hex of the first 16 bytes of SHA-256(bytes) + `"`.
    pub etag: String,
    /// CoAP ETag option value: the first 8 bytes of SHA-256(bytes).
    pub coap_etag: [u8; 8],
}

/// The `otrp-batch` option of an Update: (batch id, sequence number).
pub fn batch_option(update: &Update) -> Option<(String, u64)> {
    let (_, v) = update.extensions.iter().find(|(k, _)| *k == BATCH_OPTION)?;
    let Value::Array(items) = v else { return None };
    match items.as_slice() {
        [Value::Text(id), Value::Integer(seq)] => Some((id.clone(), u64::try_from(*seq).ok()?)),
        _ => None,
    }
}

/// Builds and signs (once, with `key`) the batch package: a token-less Update carrying
/// `manifests` (envelopes whose payloads are encrypted to the batch key), deleting
/// `unneeded`, with the `otrp-batch` option.
pub fn build_package(
    provider: &dyn CryptoProvider,
    key: &PrivateKey,
    batch_id: &str,
    sequence: u64,
    manifests: Vec<Vec<u8>>,
    unneeded: Vec<ComponentId>,
) -> Result<BatchPackage, BatchError> {
    check_id(batch_id)?;
    if manifests.is_empty() && unneeded.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut up = Update::new();
    if !manifests.is_empty() {
        up = up.with_manifests(manifests);
    }
    if !unneeded.is_empty() {
        up = up.with_unneeded_manifest_list(unneeded);
    }
    up.extensions.push((
        BATCH_OPTION,
        Value::Array(vec![
            Value::Text(batch_id.into()),
            Value::Integer(sequence.into()),
        ]),
    ));
    let bytes = otrp_teep::signed::sign1(
        provider,
        key,
        &TeepMessage::Update(up),
        AlgIdGeneration::New,
    )
    .map_err(|e| BatchError::Crypto(e.to_string()))?;
    let h = provider.sha256(&bytes);
    let mut coap_etag = [0u8; 8];
    coap_etag.copy_from_slice(&h[..8]);
    Ok(BatchPackage {
        batch_id: batch_id.into(),
        sequence,
        etag: format!("\"{}\"", hex::encode(&h[..16])),
        coap_etag,
        bytes,
    })
}

/// What a `GET /tam/batch/<batch-id>` (or the CoAP GET) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFetch {
    /// 200 with the package (CoAP 2.05 Content).
    Found(BatchPackage),
    /// 304: the client's `If-None-Match` names the current package (CoAP 2.03 Valid).
    NotModified {
        /// The current ETag.
        etag: String,
    },
    /// 404: no package for this batch (CoAP 4.04).
    NotFound,
}

impl BatchFetch {
    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        match self {
            BatchFetch::Found(_) => 200,
            BatchFetch::NotModified { .. } => 304,
            BatchFetch::NotFound => 404,
        }
    }
    /// The HTTP response headers (`Content-Type`, `ETag`, `Cache-Control`).
    pub fn http_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            BatchFetch::Found(p) => vec![
                ("content-type", CONTENT_TYPE.into()),
                ("etag", p.etag.clone()),
                ("cache-control", CACHE_CONTROL.into()),
            ],
            BatchFetch::NotModified { etag } => vec![
                ("etag", etag.clone()),
                ("cache-control", CACHE_CONTROL.into()),
            ],
            BatchFetch::NotFound => vec![],
        }
    }
    /// The body (empty unless found).
    pub fn body(&self) -> &[u8] {
        match self {
            BatchFetch::Found(p) => &p.bytes,
            _ => &[],
        }
    }
}

/// The current package of every batch, as the HTTP and CoAP servers serve them. Packages
/// are deterministic for their inputs (RFC 6979 / Ed25519 signatures), so replicas that
/// publish the same package serve the same bytes and ETag.
#[derive(Debug, Default)]
pub struct BatchPublisher {
    packages: RwLock<HashMap<String, BatchPackage>>,
}

impl BatchPublisher {
    /// An empty publisher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `pkg` as its batch's current package; its sequence number must grow.
    pub fn publish(&self, pkg: BatchPackage) -> Result<(), BatchError> {
        let mut map = self
            .packages
            .write()
            .map_err(|_| BatchError::Crypto("publisher lock poisoned".into()))?;
        if let Some(cur) = map.get(&pkg.batch_id) {
            if pkg.sequence <= cur.sequence {
                return Err(BatchError::SequenceNotGrowing {
                    id: pkg.batch_id,
                    sequence: pkg.sequence,
                    published: cur.sequence,
                });
            }
        }
        map.insert(pkg.batch_id.clone(), pkg);
        Ok(())
    }

    /// `GET /tam/batch/<batch_id>` with an optional `If-None-Match` value (a list of
    /// ETags or `*`).
    pub fn get(&self, batch_id: &str, if_none_match: Option<&str>) -> BatchFetch {
        let Ok(map) = self.packages.read() else {
            return BatchFetch::NotFound;
        };
        let Some(pkg) = map.get(batch_id) else {
            return BatchFetch::NotFound;
        };
        let matches = if_none_match.is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t == pkg.etag || t.strip_prefix("W/") == Some(pkg.etag.as_str())
            })
        });
        if matches {
            BatchFetch::NotModified {
                etag: pkg.etag.clone(),
            }
        } else {
            BatchFetch::Found(pkg.clone())
        }
    }

    /// The CoAP GET of `tam/batch/<batch_id>` with the client's ETag options: `Found`
    /// (2.05, send `coap_etag` as the ETag option) or `NotModified` (2.03 Valid).
    pub fn coap_get(&self, batch_id: &str, etags: &[&[u8]]) -> BatchFetch {
        match self.get(batch_id, None) {
            BatchFetch::Found(p) if etags.contains(&&p.coap_etag[..]) => {
                BatchFetch::NotModified { etag: p.etag }
            }
            other => other,
        }
    }
}

/// A verified asynchronous report of one device on a batch package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// The device (hex UEID) whose bound Agent key signed the report.
    pub device_id: String,
    /// Success (true) or Error (false).
    pub success: bool,
    /// The Error's code and message, or empty.
    pub detail: String,
    /// The SUIT reports it carries.
    pub suit_reports: Vec<Vec<u8>>,
    /// How the device authenticated it.
    pub auth: ReportAuth,
}

/// How a batch report was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAuth {
    /// Signed with the device's bound Agent key (COSE_Sign1).
    Signature,
    /// MAC'd under the device's report key (COSE_Mac0).
    Mac,
}

impl ReportAuth {
    /// How `body` claims to be authenticated (before any check): [`ReportAuth::Mac`] for
    /// a tagged COSE_Mac0, else [`ReportAuth::Signature`].
    pub fn claimed_by(body: &[u8]) -> ReportAuth {
        if body.first() == Some(&MAC0_TAG_BYTE) {
            ReportAuth::Mac
        } else {
            ReportAuth::Signature
        }
    }

    /// `signature` or `mac` (log fields, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ReportAuth::Signature => "signature",
            ReportAuth::Mac => "mac",
        }
    }
}

/// Reports per group: what the TAM server verifies and records together (one key lookup,
/// one write), and the group size the batch benchmark measures.
pub const MAX_REPORT_GROUP: usize = 64;

/// Verifies a report (`POST /tam/batch/<batch-id>/report` body: the Agent's signed
/// Success or Error) against the Agent key bound in the store: [`verify_reports`] for one
/// report.
pub async fn verify_report(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    body: &[u8],
) -> Result<BatchReport, BatchError> {
    verify_reports(store, provider, &[body])
        .await?
        .pop()
        .unwrap_or_else(|| Err(BatchError::Report("no report".into())))
}

/// The `kid` a report is signed with (protected header first).
fn report_kid(body: &[u8]) -> Result<Vec<u8>, BatchError> {
    let bad = |e: String| BatchError::Report(e);
    match otrp_cose::peek(body).map_err(|e| bad(e.to_string()))? {
        otrp_cose::CoseMessage::Sign1(m) => [m.protected.header.key_id, m.unprotected.key_id]
            .into_iter()
            .find(|k| !k.is_empty()),
        _ => None,
    }
    .ok_or_else(|| bad("the report names no kid".into()))
}

/// Verifies a group of reports with **one** store lookup of their Agent keys
/// ([`Store::agent_keys_by_kid`]): one outcome per body, in order; a report that is
/// malformed, signed by an unknown or wrong key, or neither a Success nor an Error fails
/// only itself ([`BatchError::Report`]). Only the store failing fails the group.
///
/// Reports signed with Ed25519 Agent keys (at least [`MIN_ED25519_BATCH`] of them) have
/// their signatures checked together ([`otrp_crypto::ed25519_verify_batch`], about a third
/// of the CPU of checking each); if that check fails, each is checked alone, so a bad
/// report still fails only itself. Other reports are checked one by one.
pub async fn verify_reports(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    bodies: &[&[u8]],
) -> Result<Vec<Result<BatchReport, BatchError>>, otrp_store::StoreError> {
    verify_reports_with(store, provider, None, bodies).await
}

/// The package a group of reports is about, and the batch's report master secret when
/// the TAM holds one: what [`verify_reports_with`] needs for MAC'd reports.
#[derive(Clone, Copy)]
pub struct ReportContext<'a> {
    /// Batch id.
    pub batch_id: &'a str,
    /// Package sequence number.
    pub seq: u64,
    /// The batch's report master secret ([`otrp_crypto::report_key`]), if configured.
    pub master: Option<&'a [u8; REPORT_KEY_LEN]>,
}

impl std::fmt::Debug for ReportContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportContext")
            .field("batch_id", &self.batch_id)
            .field("seq", &self.seq)
            .field("master", &self.master.map(|_| "<secret>"))
            .finish()
    }
}

/// The first byte of a tagged COSE_Mac0 (tag 17).
const MAC0_TAG_BYTE: u8 = 0xd1;

/// A report that is a COSE_Mac0 (tag 17): a device with a report key sent it.
fn parse_mac_report(body: &[u8]) -> Option<otrp_cose::coset::CoseMac0> {
    (ReportAuth::claimed_by(body) == ReportAuth::Mac)
        .then(|| otrp_cose::parse_mac0(body).ok())
        .flatten()
}

/// Checks a MAC'd report: the TAM derives the key of the device its `kid` names from the
/// batch's report master and checks the HMAC over the report and the package
/// ([`otrp_teep::signed::batch_report_aad`]). No store lookup and no signature.
fn verify_mac_report(
    provider: &dyn CryptoProvider,
    ctx: Option<&ReportContext<'_>>,
    aad: &[u8],
    body: &[u8],
    mac: &otrp_cose::coset::CoseMac0,
) -> Result<BatchReport, BatchError> {
    let bad = |e: String| BatchError::Report(e);
    if body.len() > otrp_teep::DecodeLimits::DEFAULT.max_input_len {
        return Err(bad(format!("report of {} bytes is too long", body.len())));
    }
    let ctx = ctx.ok_or_else(|| bad("a MAC'd report needs its batch and package".into()))?;
    let master = ctx.master.ok_or_else(|| {
        bad(format!(
            "report under a device report key, but this TAM has no report master for batch {:?} \
             (configure it, or provision the devices without report keys)",
            ctx.batch_id
        ))
    })?;
    let device = &mac.unprotected.key_id;
    if device.is_empty() || device.len() > 64 {
        return Err(bad(
            "a MAC'd report names its device in `kid` (1..=64 bytes)".into(),
        ));
    }
    let key = otrp_crypto::report_key::derive(provider, master, ctx.batch_id, device)
        .map_err(|e| bad(e.to_string()))?;
    let v = otrp_cose::verify_parsed_mac0(provider, mac, None, aad, &[key.as_slice()]).map_err(
        |_| {
            bad(format!(
                "the MAC of device {}'s report does not verify for batch {:?} package {}",
                hex::encode(device),
                ctx.batch_id,
                ctx.seq
            ))
        },
    )?;
    let message = TeepMessage::decode_with_limits(&v.payload, &otrp_teep::DecodeLimits::DEFAULT)
        .map_err(|e| bad(e.to_string()))?;
    report_of(message, &hex::encode(device), ReportAuth::Mac)
}

/// [`verify_reports`] for reports that may also be MAC'd: a COSE_Mac0 report
/// (`otrp_agent::batch::ReportKey`) is checked with one HMAC under the key derived from
/// `ctx`'s report master and the device id it names; signed reports as
/// [`verify_reports`] checks them (one store lookup for the group's Agent keys).
pub async fn verify_reports_with(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    ctx: Option<&ReportContext<'_>>,
    bodies: &[&[u8]],
) -> Result<Vec<Result<BatchReport, BatchError>>, otrp_store::StoreError> {
    let macs: Vec<Option<otrp_cose::coset::CoseMac0>> =
        bodies.iter().map(|b| parse_mac_report(b)).collect();
    let signed: Vec<&[u8]> = bodies
        .iter()
        .zip(&macs)
        .filter(|(_, m)| m.is_none())
        .map(|(b, _)| *b)
        .collect();
    let mut signed_out = verify_signed_reports(store, provider, &signed)
        .await?
        .into_iter();
    // The package every MAC'd report of the group must cover, encoded once.
    let aad = ctx
        .map(|c| otrp_teep::signed::batch_report_aad(c.batch_id, c.seq))
        .unwrap_or_default();
    Ok(bodies
        .iter()
        .zip(macs)
        .map(|(body, mac)| match mac {
            Some(mac) => verify_mac_report(provider, ctx, &aad, body, &mac),
            None => signed_out
                .next()
                .unwrap_or_else(|| Err(BatchError::Report("no report".into()))),
        })
        .collect())
}

/// Signed reports: [`verify_reports`].
async fn verify_signed_reports(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    bodies: &[&[u8]],
) -> Result<Vec<Result<BatchReport, BatchError>>, otrp_store::StoreError> {
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    let kids: Vec<Result<Vec<u8>, BatchError>> = bodies.iter().map(|b| report_kid(b)).collect();
    let wanted: Vec<Vec<u8>> = kids
        .iter()
        .filter_map(|k| k.as_ref().ok().cloned())
        .collect();
    let keys: HashMap<Vec<u8>, otrp_store::AgentKeyRecord> = if wanted.is_empty() {
        HashMap::new()
    } else {
        store
            .agent_keys_by_kid(&wanted)
            .await?
            .into_iter()
            .map(|k| (k.kid.clone(), k))
            .collect()
    };
    // Each report's Agent key record and key, decoded once.
    let recs: Vec<Result<(&otrp_store::AgentKeyRecord, PublicKey), BatchError>> = kids
        .into_iter()
        .map(|kid| {
            let kid = kid?;
            let rec = keys.get(&kid).ok_or_else(|| {
                BatchError::Report(format!("unknown Agent kid {}", hex::encode(&kid)))
            })?;
            let bad = |e: String| BatchError::Report(e);
            let ck =
                otrp_cose::cose_key_from_slice(&rec.cose_key).map_err(|e| bad(e.to_string()))?;
            let key = otrp_cose::public_from_cose_key(&ck).map_err(|e| bad(e.to_string()))?;
            Ok((rec, key))
        })
        .collect();
    // Ed25519 reports whose signature alone is left to check, with their key.
    let mut ed25519: Vec<(usize, otrp_cose::PreparedSign1, &PublicKey)> = Vec::new();
    for (i, (body, rec)) in bodies.iter().zip(&recs).enumerate() {
        if let Ok((_, key)) = rec {
            if let Some(p) = prepared_ed25519(provider, body, key) {
                ed25519.push((i, p, key));
            }
        }
    }
    if ed25519.len() < MIN_ED25519_BATCH {
        ed25519.clear();
    }
    let all_good = !ed25519.is_empty() && {
        let msgs: Vec<&[u8]> = ed25519.iter().map(|(_, p, _)| p.tbs.as_slice()).collect();
        let sigs: Vec<&[u8]> = ed25519
            .iter()
            .map(|(_, p, _)| p.signature.as_slice())
            .collect();
        let ks: Vec<&PublicKey> = ed25519.iter().map(|(_, _, k)| *k).collect();
        otrp_crypto::ed25519_verify_batch(&msgs, &sigs, &ks).is_ok()
    };
    let mut batched: HashMap<usize, Vec<u8>> = if all_good {
        ed25519
            .into_iter()
            .map(|(i, p, _)| (i, p.payload))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(bodies
        .iter()
        .zip(recs)
        .enumerate()
        .map(|(i, (body, rec))| {
            let (rec, key) = rec?;
            match batched.remove(&i) {
                Some(payload) => {
                    let message = TeepMessage::decode_with_limits(
                        &payload,
                        &otrp_teep::DecodeLimits::DEFAULT,
                    )
                    .map_err(|e| BatchError::Report(e.to_string()))?;
                    report_of(message, &rec.device_id, ReportAuth::Signature)
                }
                None => verify_with(provider, body, &key, rec),
            }
        })
        .collect())
}

/// Ed25519 reports in a group below this many are checked one by one (a batch check of
/// very few costs about as much).
pub const MIN_ED25519_BATCH: usize = 4;

/// A report signed with Ed25519 Agent key `key`, checked as [`verify_with`] checks it
/// (size, COSE_Sign1, algorithm, kid) but for its signature; `None` for anything else
/// (checked one by one, which names what is wrong).
fn prepared_ed25519(
    provider: &dyn CryptoProvider,
    body: &[u8],
    key: &PublicKey,
) -> Option<otrp_cose::PreparedSign1> {
    if body.len() > otrp_teep::DecodeLimits::DEFAULT.max_input_len
        || !matches!(key, PublicKey::Ed25519(_))
    {
        return None;
    }
    let p = otrp_cose::prepare_sign1(provider, body, None, std::slice::from_ref(key)).ok()?;
    (p.alg == SigAlg::Ed25519 && p.candidates == [0]).then_some(p)
}

/// Verifies one report against `key`, the Agent key `rec` binds with its kid.
fn verify_with(
    provider: &dyn CryptoProvider,
    body: &[u8],
    key: &PublicKey,
    rec: &otrp_store::AgentKeyRecord,
) -> Result<BatchReport, BatchError> {
    let v = otrp_teep::signed::verify(provider, body, std::slice::from_ref(key))
        .map_err(|e| BatchError::Report(e.to_string()))?;
    report_of(v.message, &rec.device_id, ReportAuth::Signature)
}

/// The report a verified Success or Error of device `device_id` (hex UEID) makes.
fn report_of(
    message: TeepMessage,
    device_id: &str,
    auth: ReportAuth,
) -> Result<BatchReport, BatchError> {
    match message {
        TeepMessage::Success(s) => Ok(BatchReport {
            device_id: device_id.to_owned(),
            success: true,
            detail: String::new(),
            suit_reports: s.suit_reports.unwrap_or_default(),
            auth,
        }),
        TeepMessage::Error(e) => Ok(BatchReport {
            device_id: device_id.to_owned(),
            success: false,
            detail: format!(
                "err-code {}{}",
                e.err_code.to_u64(),
                e.err_msg.map(|m| format!(": {m}")).unwrap_or_default()
            ),
            suit_reports: e.suit_reports.unwrap_or_default(),
            auth,
        }),
        _ => Err(BatchError::Report(
            "a report is a Success or an Error".into(),
        )),
    }
}

/// Verifies a group of reports on package `seq` of `batch_id` ([`verify_reports`]) and
/// records the verified ones, received at `now`, with **one** write
/// ([`Store::put_batch_reports`]): one outcome per body, in order. The caller checks that
/// the package exists (the report's signature does not cover `seq`). When the store fails
/// nothing of the group is recorded.
pub async fn record_reports(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    batch_id: &str,
    seq: u64,
    bodies: &[&[u8]],
    now: u64,
) -> Result<Vec<Result<BatchReport, BatchError>>, otrp_store::StoreError> {
    let ctx = ReportContext {
        batch_id,
        seq,
        master: None,
    };
    record_reports_with(store, provider, &ctx, bodies, now).await
}

/// [`record_reports`] that also takes MAC'd reports ([`verify_reports_with`]) when `ctx`
/// holds the batch's report master.
pub async fn record_reports_with(
    store: &dyn Store,
    provider: &dyn CryptoProvider,
    ctx: &ReportContext<'_>,
    bodies: &[&[u8]],
    now: u64,
) -> Result<Vec<Result<BatchReport, BatchError>>, otrp_store::StoreError> {
    let (batch_id, seq) = (ctx.batch_id, ctx.seq);
    let outcomes = verify_reports_with(store, provider, Some(ctx), bodies).await?;
    let records: Vec<otrp_store::BatchReportRecord> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|r| otrp_store::BatchReportRecord {
            batch_id: batch_id.into(),
            seq,
            device_id: r.device_id.clone(),
            success: r.success,
            detail: r.detail.clone(),
            received_at: now,
        })
        .collect();
    if !records.is_empty() {
        store.put_batch_reports(&records).await?;
    }
    Ok(outcomes)
}

/// A provider that counts signatures and signature checks and delegates to another
/// (benchmarks and tests: how many signatures the TAM made and checked one by one).
pub struct CountingProvider {
    inner: &'static dyn CryptoProvider,
    signatures: AtomicU64,
    verifications: AtomicU64,
}

impl std::fmt::Debug for CountingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingProvider")
            .field("signatures", &self.signatures())
            .field("verifications", &self.verifications())
            .finish_non_exhaustive()
    }
}

impl CountingProvider {
    /// Counts the signatures made and checked through `inner`.
    pub fn new(inner: &'static dyn CryptoProvider) -> Self {
        CountingProvider {
            inner,
            signatures: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
        }
    }
    /// Signatures made so far.
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
    /// Signatures checked one by one so far (not those of a batch check).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
    /// Resets both counts.
    pub fn reset(&self) {
        self.signatures.store(0, Ordering::Relaxed);
        self.verifications.store(0, Ordering::Relaxed);
    }
}

impl CryptoProvider for CountingProvider {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        self.inner.sha256(data)
    }
    fn sign(
        &self,
        alg: SigAlg,
        key: &PrivateKey,
        msg: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        self.signatures.fetch_add(1, Ordering::Relaxed);
        self.inner.sign(alg, key, msg)
    }
    fn verify(
        &self,
        alg: SigAlg,
        key: &PublicKey,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        self.inner.verify(alg, key, msg, sig)
    }
    fn ecdh_p256(
        &self,
        private: &otrp_crypto::p256::SecretKey,
        peer: &otrp_crypto::p256::PublicKey,
    ) -> Result<otrp_crypto::zeroize::Zeroizing<[u8; 32]>, otrp_crypto::CryptoError> {
        self.inner.ecdh_p256(private, peer)
    }
    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
        out: &mut [u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        self.inner.hkdf_sha256(salt, ikm, info, out)
    }
    fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> [u8; 32] {
        self.inner.hmac_sha256(key, data)
    }
    fn aes_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        self.inner.aes_kw_wrap(kek, key)
    }
    fn aes_kw_unwrap(
        &self,
        kek: &[u8],
        wrapped: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        self.inner.aes_kw_unwrap(kek, wrapped)
    }
    fn aes_gcm_seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        self.inner.aes_gcm_seal(key, nonce, aad, plaintext)
    }
    fn aes_gcm_open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, otrp_crypto::CryptoError> {
        self.inner.aes_gcm_open(key, nonce, aad, ciphertext)
    }
    fn aes_ctr_apply(
        &self,
        key: &[u8],
        iv: &[u8; 16],
        data: &mut [u8],
    ) -> Result<(), otrp_crypto::CryptoError> {
        self.inner.aes_ctr_apply(key, iv, data)
    }
}
