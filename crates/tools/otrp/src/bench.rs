//! `otrp bench wire` and `otrp bench batch`: the constrained-device figures of issue 7.
//!
//! * `wire` builds the TAM → device message of each operation (install, update, update as
//!   a delta, personalization, delete) with the real encoders and signers — OTrP JSON/JOSE
//!   (`otrp-json`, the OTrP TA package of `otrp-agent`), TEEP CBOR/COSE with SUIT
//!   (`otrp-teep`, `otrp-suit`, `otrp-delta`), and TEEP over CoAP, whose bytes and
//!   datagrams are counted by running `otrp-coap`'s sans-IO client and server cores
//!   against each other in memory (Block2 download of the message at the largest block
//!   size whose datagrams fit the LoRaWAN frame) — and counts LoRaWAN frames at DR0 (51 B
//!   payload) and DR5 (222 B). TEEP is built in both wire profiles (standard and compact,
//!   docs/CONSTRAINED.md), over incompressible images and over the real sample TAs
//!   (`tas/dist/*.wasm`) published compressed; the overhead of a signed Update is its
//!   size minus its payload.
//! * `batch` compares the TAM's CPU time and signatures per device in batch mode (one
//!   package per batch, then one verified report per device: signed with the Agent key,
//!   or MAC'd by a device with a report key) and per-device mode (a whole TEEP session
//!   per device on the TAM core over a SQLite temp store).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use otrp_agent::suit_processor::{MemoryStore, ProcessorConfig};
use otrp_agent::{
    Agent, AgentConfig, BatchMembership, BatchOutcome, EatAttester, EatIdentity, Management,
    SdDescriptor, TrustedTam,
};
use otrp_coap::{ClientCore, ClientEvent, Config as CoapConfig, Response, ServerCore, ServerEvent};
use otrp_cose::SignOptions;
use otrp_crypto::{AlgIdGeneration, CryptoProvider, KeyKind, PrivateKey, PublicKey};
use otrp_store::{AccountKind, AgentKeyRecord, DeploymentAction, Rollout, SqlStore, Store, Target};
use otrp_suit::{ComponentId, Envelope, ManifestDependency, TaManifestBuilder};
use otrp_suit_processor::delta::{COMPACT_FULL_KEY, DELTA_KEY, FULL_KEY, FULL_KEYS};
use otrp_tam::batch::{
    build_package, encrypt_for_batch, record_reports_with, CountingProvider, MAX_REPORT_GROUP,
};
use otrp_tam::{Admin, EatVerifier, Outcome, Policy, ReferenceValues, Tam, TamConfig, TamKeys};
use otrp_teep::{TeepMessage, Update, WireProfile};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

/// `otrp bench …`
#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Bytes and LoRaWAN frames per operation: OTrP JSON vs TEEP CBOR vs TEEP over CoAP,
    /// full vs delta, for TAs of 1 KiB, 64 KiB and 256 KiB.
    Wire(WireArgs),
    /// TAM CPU time and signatures per device, batch mode (with signed and with MAC'd
    /// reports) vs per-device mode, for N = 1, 100, 10 000 devices.
    Batch(BatchArgs),
    /// The TAM server over HTTPS: full TEEP exchanges/s with K devices and C concurrent
    /// Brokers, p50/p99 latency, TAM CPU per exchange, and the signature bound.
    Tam(crate::bench_tam::BenchTamArgs),
}

/// `otrp bench wire`.
#[derive(Args)]
pub struct WireArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the plain Updates of the overhead table to this directory
    /// (`update-<profile>-<size>.cbor`), for `otrp inspect`.
    #[arg(long, value_name = "DIR")]
    dump: Option<std::path::PathBuf>,
}

/// `otrp bench batch`.
#[derive(Args)]
pub struct BatchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Device counts.
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    devices: Vec<usize>,
    /// Per-device sessions (and batch reports) actually run per N; the per-device cost
    /// measured on them is multiplied by N beyond it (the cost is per device).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// The devices' Agent key type (both modes): `p256` (ES256, the default) or `ed25519`
    /// (EdDSA; the TAM then checks each group's report signatures together).
    #[arg(long, default_value = "p256", value_parser = ["p256", "ed25519"])]
    agent_key: String,
}

/// Runs `otrp bench`.
pub fn run(args: &BenchArgs) -> ExitCode {
    let r = match &args.command {
        BenchCommand::Wire(a) => wire(a),
        BenchCommand::Batch(a) => batch(a),
        BenchCommand::Tam(a) => return crate::bench_tam::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otrp bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared fixtures.

const DR0: usize = 51;
const DR5: usize = 222;
const SIZES: [usize; 3] = [1024, 64 * 1024, 256 * 1024];
const PDATA_LEN: usize = 256;

fn provider() -> &'static dyn CryptoProvider {
    otrp_crypto::default_provider()
}

fn key(seed: u64, kind: KeyKind) -> Result<PrivateKey> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    PrivateKey::generate(kind, &mut rng).map_err(|e| anyhow!("key generation: {e}"))
}

fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A WebAssembly-like TA image of `size` bytes: function bodies of plausible opcodes
/// with LEB128 immediates and some text (compresses like real code, not like zeros).
fn ta_image(seed: u64, size: usize) -> Vec<u8> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    while out.len() < size {
        if r.gen_ratio(1, 20) {
            for _ in 0..r.gen_range(16..256) {
                out.push(b"abcdefghijklmnopqrstuvwxyz _-:ok0123456789"[r.gen_range(0..42)]);
            }
            continue;
        }
        let body = r.gen_range(20..400u32);
        leb(&mut out, body);
        for _ in 0..body / 3 {
            match r.gen_range(0..6) {
                0..=2 => {
                    out.push(0x20);
                    leb(&mut out, r.gen_range(0..8));
                }
                3 => {
                    out.push(0x41);
                    leb(&mut out, r.gen_range(0..100_000));
                }
                4 => {
                    out.push(0x10);
                    leb(&mut out, r.gen_range(0..300));
                }
                _ => out.push(r.gen_range(0x45..0xc4)),
            }
        }
        out.push(0x0b);
    }
    out.truncate(size);
    out
}

/// `old` with 5 % of its bytes changed, in four clustered regions (a rebuilt function).
fn five_percent_changed(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let total = old.len() / 20;
    let region = total.div_ceil(4).max(1);
    for i in 0..4 {
        let start = (old.len() / 4) * i + old.len() / 16;
        for b in new.iter_mut().skip(start).take(region) {
            *b = r.gen();
        }
    }
    new
}

fn component() -> ComponentId {
    ComponentId::new([&b"sd-lock"[..], b"smart-lock"])
}

fn config_component() -> ComponentId {
    ComponentId::new([&b"sd-lock"[..], b"config.json"])
}

struct Keys {
    tam: PrivateKey,
    sp: PrivateKey,
    /// The device's TEE SP AIK (OTrP) / personalization KEK (TEEP).
    device: PrivateKey,
}

fn sign_update(keys: &Keys, up: Update, profile: WireProfile) -> Result<Vec<u8>> {
    otrp_teep::signed::sign1_profile(
        provider(),
        &keys.tam,
        &TeepMessage::Update(up),
        AlgIdGeneration::New,
        profile,
    )
    .map_err(|e| anyhow!("TEEP signing: {e}"))
}

/// A token of the profile's length (the TAM draws it at random; its value does not
/// change the size).
fn token(profile: WireProfile) -> Vec<u8> {
    vec![0x5a; profile.token_len()]
}

/// The SUIT signing options of a profile (compact: no kid).
fn suit_opts(profile: WireProfile) -> SignOptions {
    match profile {
        WireProfile::Standard => SignOptions::default(),
        WireProfile::Compact => otrp_suit::compact_sign_options(),
    }
}

/// A delta-capable SP-signed envelope of `image` (bases: images it can patch), with the
/// given integrated payload variant; `#tc` compressed when `compress`, as `otrp sp
/// publish --compress` signs it (the TAM forwards the SP's envelope as registered).
fn ta_envelope(
    keys: &Keys,
    seq: u64,
    image: &[u8],
    bases: &[&[u8]],
    delta: Option<&[u8]>,
    compress: bool,
    profile: WireProfile,
) -> Result<Vec<u8>> {
    let full = otrp_tam::delta::delta_capable_envelope_profile(
        provider(),
        &keys.sp,
        &component(),
        seq,
        image,
        bases,
        compress,
        profile,
    )
    .map_err(|e| anyhow!("SUIT: {e}"))?;
    let Some(base) = delta else { return Ok(full) };
    let mut env = Envelope::decode(&full).map_err(|e| anyhow!("SUIT: {e}"))?;
    env.integrated
        .retain(|(k, _)| !FULL_KEYS.contains(&k.as_str()));
    env.integrated
        .push((DELTA_KEY.into(), otrp_delta::diff(base, image)));
    env.encode().map_err(|e| anyhow!("SUIT: {e}"))
}

/// A plain (uncompressed, integrated) SP-signed envelope: the payload-overhead baseline
/// (`#tc`, compact: `#`).
fn plain_envelope(keys: &Keys, image: &[u8], profile: WireProfile) -> Result<Vec<u8>> {
    let key = match profile {
        WireProfile::Standard => FULL_KEY,
        WireProfile::Compact => COMPACT_FULL_KEY,
    };
    TaManifestBuilder::new(component(), 1)
        .image_of(image)
        .integrated_payload(key, image.to_vec())
        .compact(profile == WireProfile::Compact)
        .build_signed(provider(), &keys.sp, &suit_opts(profile))
        .and_then(|e| e.encode())
        .map_err(|e| anyhow!("SUIT: {e}"))
}

/// The personalization manifest of TEEP App. E example 3: data encrypted to the device
/// (ECDH-ES+A128KW, A128GCM), depending on the TA's manifest.
fn pdata_envelope(
    keys: &Keys,
    ta_env: &[u8],
    pdata: &[u8],
    profile: WireProfile,
) -> Result<Vec<u8>> {
    let ta = Envelope::decode(ta_env).map_err(|e| anyhow!("SUIT: {e}"))?;
    let PrivateKey::P256(sk) = &keys.device else {
        bail!("the device key is P-256")
    };
    let pk = sk.public_key();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    TaManifestBuilder::new(config_component(), 1)
        .dependency(ManifestDependency {
            prefix: component(),
            digest: ta.authentication.value().digest.value().clone(),
            size: ta_env.len() as u64,
            uri: "https://tam.example/ta.suit".into(),
        })
        .compact(profile == WireProfile::Compact)
        .encrypt_payload(
            provider(),
            &mut rng,
            pdata,
            otrp_cose::encrypt::Recipient::EcdhEs {
                recipient_public: &pk,
                kid: None,
            },
            otrp_cose::encrypt::ContentAlg::A128Gcm,
        )
        .and_then(|b| b.build_signed(provider(), &keys.sp, &suit_opts(profile)))
        .and_then(|e| e.encode())
        .map_err(|e| anyhow!("SUIT: {e}"))
}

fn teep_install(keys: &Keys, env: Vec<u8>, profile: WireProfile) -> Result<Vec<u8>> {
    sign_update(
        keys,
        Update::new()
            .with_token(token(profile))
            .with_manifests(vec![env]),
        profile,
    )
}

fn teep_delete(keys: &Keys, profile: WireProfile) -> Result<Vec<u8>> {
    sign_update(
        keys,
        Update::new()
            .with_token(token(profile))
            .with_unneeded_manifest_list(vec![otrp_teep::ComponentId(component().0)]),
        profile,
    )
}

// OTrP: the TAM's signed request (ES256 JWS, kid only: no x5c chain, which would add
// ~1 KiB per message), `content` JWE to the TEE (A128CBC-HS256, ECDH-ES+A128KW), the TA
// package sealed to the TEE SP AIK (otrp-agent's package format, a SUIT envelope inside).

fn otrp_ta_content() -> otrp_json::TaContent {
    otrp_json::TaContent {
        tamid: "tam.opentrust.example".into(),
        spid: "sp-lock".into(),
        sdname: "sd-lock".into(),
        spcert: None,
        taid: "smart-lock".into(),
    }
}

fn otrp_sign(keys: &Keys, tbs: &otrp_json::TbsRequest) -> Result<Vec<u8>> {
    otrp_json::sign_request(
        provider(),
        &otrp_json::Signer::new(&keys.tam).with_kid("tam-key-1"),
        tbs,
    )
    .map_err(|e| anyhow!("OTrP signing: {e}"))
}

fn otrp_ta_content_jwe(keys: &Keys) -> Result<otrp_json::Content<otrp_json::TaContent>> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    otrp_json::encrypt_content(
        provider(),
        &mut rng,
        &otrp_ta_content(),
        otrp_json::ContentEnc::A128CbcHs256,
        &[otrp_json::RecipientKey::new(&keys.device.public_key())],
    )
    .map(|(c, _)| c)
    .map_err(|e| anyhow!("OTrP content: {e}"))
}

fn otrp_delete_content_jwe(keys: &Keys) -> Result<otrp_json::Content<otrp_json::DeleteTaContent>> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let c = otrp_json::DeleteTaContent {
        tamid: "tam.opentrust.example".into(),
        sdname: "sd-lock".into(),
        taid: "smart-lock".into(),
    };
    otrp_json::encrypt_content(
        provider(),
        &mut rng,
        &c,
        otrp_json::ContentEnc::A128CbcHs256,
        &[otrp_json::RecipientKey::new(&keys.device.public_key())],
    )
    .map(|(c, _)| c)
    .map_err(|e| anyhow!("OTrP content: {e}"))
}

fn otrp_seal(
    keys: &Keys,
    ta: Option<&[u8]>,
    pdata: Option<&[u8]>,
) -> Result<otrp_agent::otrp::package::SealedTa> {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    otrp_agent::otrp::package::seal(provider(), &mut rng, &keys.device.public_key(), ta, pdata)
        .map_err(|e| anyhow!("OTrP TA package: {e}"))
}

fn otrp_install(keys: &Keys, suit: &[u8]) -> Result<Vec<u8>> {
    let sealed = otrp_seal(keys, Some(suit), None)?;
    let tbs = otrp_json::TbsRequest::InstallTa(otrp_json::InstallTaTbsRequest {
        ver: otrp_json::OTRP_VERSION.into(),
        rid: "8c6f9e1a-rid".into(),
        tid: "tid-0001".into(),
        tee: "OpenTrust-Sim".into(),
        nextdsi: false,
        dsihash: "q1ZcWr4o3G2oE1cSxqZk0Q".into(),
        content: otrp_ta_content_jwe(keys)?,
        encrypted_ta: sealed
            .into_install()
            .map_err(|e| anyhow!("OTrP TA package: {e}"))?,
    });
    otrp_sign(keys, &tbs)
}

fn otrp_update(keys: &Keys, suit: Option<&[u8]>, pdata: Option<&[u8]>) -> Result<Vec<u8>> {
    let sealed = otrp_seal(keys, suit, pdata)?;
    let tbs = otrp_json::TbsRequest::UpdateTa(otrp_json::UpdateTaTbsRequest {
        ver: otrp_json::OTRP_VERSION.into(),
        rid: "8c6f9e1a-rid".into(),
        tid: "tid-0002".into(),
        tee: "OpenTrust-Sim".into(),
        nextdsi: false,
        dsihash: "q1ZcWr4o3G2oE1cSxqZk0Q".into(),
        content: otrp_ta_content_jwe(keys)?,
        encrypted_ta: sealed
            .into_update()
            .map_err(|e| anyhow!("OTrP TA package: {e}"))?,
    });
    otrp_sign(keys, &tbs)
}

fn otrp_delete(keys: &Keys) -> Result<Vec<u8>> {
    let tbs = otrp_json::TbsRequest::DeleteTa(otrp_json::DeleteTaTbsRequest {
        ver: otrp_json::OTRP_VERSION.into(),
        rid: "8c6f9e1a-rid".into(),
        tid: "tid-0003".into(),
        tee: "OpenTrust-Sim".into(),
        nextdsi: false,
        dsihash: "q1ZcWr4o3G2oE1cSxqZk0Q".into(),
        content: otrp_delete_content_jwe(keys)?,
    });
    otrp_sign(keys, &tbs)
}

// ---------------------------------------------------------------------------------------
// CoAP: the real cores, stepped in memory.

/// What one CoAP exchange cost.
#[derive(Debug, Clone, Copy)]
struct CoapCost {
    block: usize,
    bytes: u64,
    datagrams: u64,
    largest: usize,
}

/// POSTs an empty body (the Broker's request) and downloads `message` as the response,
/// at `block` bytes per block; counts every datagram both ways.
fn coap_download(message: &[u8], block: usize) -> Result<CoapCost> {
    let cfg = CoapConfig::with_block_size(block).ok_or_else(|| anyhow!("block size {block}"))?;
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let mut client = ClientCore::new(cfg.clone(), &mut rng);
    let mut server = ServerCore::new(cfg);
    let c_addr: std::net::SocketAddr = "10.0.0.2:5683".parse()?;
    let s_addr: std::net::SocketAddr = "10.0.0.1:5683".parse()?;
    let now = Instant::now();
    client.post(s_addr, otrp_coap::TEEP_PATH, Vec::new(), now);
    let mut largest = 0usize;
    for _ in 0..1_000_000 {
        let mut moved = false;
        while let Some(t) = client.poll_transmit() {
            largest = largest.max(t.data.len());
            server.handle_datagram(c_addr, &t.data, now);
            moved = true;
        }
        while let Some(ServerEvent::Request { id, .. }) = server.poll_event() {
            server.respond(id, Response::changed(message.to_vec()), now);
        }
        while let Some(t) = server.poll_transmit() {
            largest = largest.max(t.data.len());
            client.handle_datagram(s_addr, &t.data, now);
            moved = true;
        }
        if let Some(ClientEvent::Completed { result, stats, .. }) = client.poll_event() {
            let resp = result.map_err(|e| anyhow!("CoAP: {e}"))?;
            if resp.body != message {
                bail!("CoAP delivered other bytes");
            }
            return Ok(CoapCost {
                block,
                bytes: stats.bytes_sent + stats.bytes_received,
                datagrams: stats.datagrams_sent + stats.datagrams_received,
                largest,
            });
        }
        if !moved {
            bail!("CoAP exchange stalled");
        }
    }
    bail!("CoAP exchange did not finish")
}

/// The exchange at the largest block size whose datagrams all fit `frame` bytes.
fn coap_for_frame(message: &[u8], frame: usize) -> Result<Option<CoapCost>> {
    for block in [1024, 512, 256, 128, 64, 32, 16] {
        let c = coap_download(message, block)?;
        if c.largest <= frame {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// bench wire

/// Where the TA image of a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Random bytes: incompressible. The SP publishes them uncompressed (DEFLATE would
    /// only add its chunk framing).
    Random,
    /// The real sample TAs (`tas/dist/*.wasm`, 86,872 B), concatenated and cycled to the
    /// size; the SP publishes the image DEFLATE-compressed (`otrp sp publish --compress`).
    Wasm,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Random => "random",
            Source::Wasm => "wasm",
        }
    }
    fn compress(self) -> bool {
        self == Source::Wasm
    }
    fn image(self, seed: u64, size: usize) -> Vec<u8> {
        match self {
            Source::Random => {
                let mut v = vec![0u8; size];
                ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut v);
                v
            }
            Source::Wasm => real_tas().iter().copied().cycle().take(size).collect(),
        }
    }
}

/// The three sample TAs as built and committed (`scripts/build-tas.sh`), concatenated.
/// Each 4 KiB chunk is compressed on its own, so the repeats beyond 86,872 B (at 256 KiB)
/// compress no better than the first copy.
fn real_tas() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(include_bytes!("../../../../tas/dist/drone-geofence.wasm"));
    v.extend_from_slice(include_bytes!("../../../../tas/dist/smart-lock.wasm"));
    v.extend_from_slice(include_bytes!("../../../../tas/dist/payment-signer.wasm"));
    v
}

/// One operation's messages in both TEEP profiles: (TEEP standard, TEEP compact), and
/// the OTrP messages carrying the same SUIT envelopes as each.
struct Case {
    op: &'static str,
    otrp: Option<(Vec<u8>, Vec<u8>)>,
    /// OTrP carrying the uncompressed image (OTrP itself defines no compression).
    otrp_raw: Option<usize>,
    teep: Vec<u8>,
    compact: Vec<u8>,
    payload: usize,
}

struct Overhead {
    size: usize,
    profile: WireProfile,
    total: usize,
    teep_cose: usize,
    suit: usize,
}

struct Row {
    op: &'static str,
    source: Source,
    size: usize,
    otrp: Option<usize>,
    otrp_compact: Option<usize>,
    otrp_raw: Option<usize>,
    teep: usize,
    compact: usize,
    payload: usize,
    dr0: Option<CoapCost>,
    dr5: Option<CoapCost>,
    dr0_compact: Option<CoapCost>,
    dr5_compact: Option<CoapCost>,
}

fn frames(bytes: usize, frame: usize) -> usize {
    bytes.div_ceil(frame)
}

fn profile_name(p: WireProfile) -> &'static str {
    match p {
        WireProfile::Standard => "standard",
        WireProfile::Compact => "compact",
    }
}

fn payload_len(env: &[u8], key: &str) -> usize {
    Envelope::decode(env)
        .ok()
        .and_then(|e| e.integrated_payload(key).map(<[u8]>::len))
        .unwrap_or(0)
}

fn cases(keys: &Keys, source: Source, i: usize, size: usize, pdata: &[u8]) -> Result<Vec<Case>> {
    use WireProfile::{Compact, Standard};
    let seed = 10 + i as u64 + if source == Source::Random { 100 } else { 0 };
    let v1 = source.image(seed, size);
    let v2 = five_percent_changed(&v1, 20 + i as u64);
    let c = source.compress();
    let env1 = |p| ta_envelope(keys, 1, &v1, &[], None, c, p);
    let env2_full = |p| ta_envelope(keys, 2, &v2, &[&v1], None, c, p);
    let env2_delta = |p| ta_envelope(keys, 2, &v2, &[&v1], Some(&v1), c, p);
    let (e1s, e1c) = (env1(Standard)?, env1(Compact)?);
    let (e2s, e2c) = (env2_full(Standard)?, env2_full(Compact)?);
    let (pds, pdc) = (
        pdata_envelope(keys, &e1s, pdata, Standard)?,
        pdata_envelope(keys, &e1c, pdata, Compact)?,
    );
    // OTrP has no compression of its own: what it would carry for the plain image.
    let raw = |seq, img: &[u8], bases: &[&[u8]]| -> Result<Option<Vec<u8>>> {
        if !c {
            return Ok(None);
        }
        ta_envelope(keys, seq, img, bases, None, false, Standard).map(Some)
    };
    let raw1 = raw(1, &v1, &[])?;
    let raw2 = raw(2, &v2, &[&v1])?;
    Ok(vec![
        Case {
            op: "install",
            otrp: Some((otrp_install(keys, &e1s)?, otrp_install(keys, &e1c)?)),
            otrp_raw: raw1
                .as_deref()
                .map(|e| otrp_install(keys, e).map(|m| m.len()))
                .transpose()?,
            payload: payload_len(&e1s, FULL_KEY),
            teep: teep_install(keys, e1s, Standard)?,
            compact: teep_install(keys, e1c, Compact)?,
        },
        Case {
            op: "update (full)",
            otrp: Some((
                otrp_update(keys, Some(&e2s), None)?,
                otrp_update(keys, Some(&e2c), None)?,
            )),
            otrp_raw: raw2
                .as_deref()
                .map(|e| otrp_update(keys, Some(e), None).map(|m| m.len()))
                .transpose()?,
            payload: payload_len(&e2s, FULL_KEY),
            teep: teep_install(keys, e2s, Standard)?,
            compact: teep_install(keys, e2c, Compact)?,
        },
        {
            let (ds, dc) = (env2_delta(Standard)?, env2_delta(Compact)?);
            Case {
                op: "update (delta 5%)",
                otrp: None,
                otrp_raw: None,
                payload: payload_len(&ds, DELTA_KEY),
                teep: teep_install(keys, ds, Standard)?,
                compact: teep_install(keys, dc, Compact)?,
            }
        },
        Case {
            op: "personalization",
            otrp: Some((
                otrp_update(keys, None, Some(pdata))?,
                otrp_update(keys, None, Some(pdata))?,
            )),
            otrp_raw: None,
            payload: pdata.len(),
            teep: teep_install(keys, pds, Standard)?,
            compact: teep_install(keys, pdc, Compact)?,
        },
        Case {
            op: "delete",
            otrp: Some((otrp_delete(keys)?, otrp_delete(keys)?)),
            otrp_raw: None,
            payload: 0,
            teep: teep_delete(keys, Standard)?,
            compact: teep_delete(keys, Compact)?,
        },
    ])
}

/// The limit of TEEP/OTrP for a large payload carried by both: OTrP encrypts it
/// (AES-CBC, +≤16 B), base64-encodes it into the TA package, and the package travels
/// inside the base64url JWS payload: 4/3 · 4/3 = 16/9 bytes per payload byte, where
/// CBOR carries the bytes once. 9/16 = 0.5625.
const STRUCTURAL_FLOOR: f64 = 9.0 / 16.0;

fn wire(args: &WireArgs) -> Result<()> {
    let keys = Keys {
        tam: key(1, KeyKind::P256)?,
        sp: key(2, KeyKind::P256)?,
        device: key(3, KeyKind::P256)?,
    };
    let mut rows = Vec::new();
    let mut overheads = Vec::new();
    let mut pdata = vec![0u8; PDATA_LEN];
    ChaCha20Rng::seed_from_u64(4).fill_bytes(&mut pdata);
    for (i, &size) in SIZES.iter().enumerate() {
        // Overhead of a signed TEEP Update beyond its payload: plain integrated image.
        let v1 = Source::Random.image(10 + i as u64, size);
        for profile in [WireProfile::Standard, WireProfile::Compact] {
            let plain_env = plain_envelope(&keys, &v1, profile)?;
            let plain = teep_install(&keys, plain_env.clone(), profile)?;
            if let Some(dir) = &args.dump {
                let name = format!("update-{}-{size}.cbor", profile_name(profile));
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(dir.join(&name), &plain))
                    .with_context(|| format!("writing {}", dir.join(&name).display()))?;
            }
            overheads.push(Overhead {
                size,
                profile,
                total: plain.len() - size,
                teep_cose: plain.len() - plain_env.len(),
                suit: plain_env.len() - size,
            });
        }
    }
    for source in [Source::Random, Source::Wasm] {
        for (i, &size) in SIZES.iter().enumerate() {
            for c in cases(&keys, source, i, size, &pdata)? {
                rows.push(Row {
                    op: c.op,
                    source,
                    size,
                    otrp: c.otrp.as_ref().map(|o| o.0.len()),
                    otrp_compact: c.otrp.as_ref().map(|o| o.1.len()),
                    otrp_raw: c.otrp_raw,
                    dr0: coap_for_frame(&c.teep, DR0)?,
                    dr5: coap_for_frame(&c.teep, DR5)?,
                    dr0_compact: coap_for_frame(&c.compact, DR0)?,
                    dr5_compact: coap_for_frame(&c.compact, DR5)?,
                    teep: c.teep.len(),
                    compact: c.compact.len(),
                    payload: c.payload,
                });
            }
        }
    }
    let ratio = |t: usize, o: Option<usize>| o.map(|o| t as f64 / o as f64);
    if args.json {
        let coap = |c: Option<CoapCost>| {
            c.map(|c| json!({"block": c.block, "bytes": c.bytes, "frames": c.datagrams, "largest_datagram": c.largest}))
        };
        let out = json!({
            "frame_payload": {"DR0": DR0, "DR5": DR5},
            "structural_floor_teep_vs_otrp": STRUCTURAL_FLOOR,
            "teep_update_overhead_beyond_payload": overheads.iter().map(|o| json!({"ta_size": o.size, "profile": profile_name(o.profile), "bytes": o.total, "teep_update_cose_sign1": o.teep_cose, "suit_envelope": o.suit})).collect::<Vec<_>>(),
            "rows": rows.iter().map(|r| json!({
                "operation": r.op,
                "image": r.source.name(),
                "ta_size": r.size,
                "payload_bytes": r.payload,
                "otrp_json_bytes": r.otrp,
                "otrp_json_bytes_compact_envelope": r.otrp_compact,
                "otrp_json_bytes_uncompressed_image": r.otrp_raw,
                "teep_cbor_bytes": r.teep,
                "teep_compact_bytes": r.compact,
                "teep_cbor_vs_otrp": ratio(r.teep, r.otrp),
                "teep_compact_vs_otrp": ratio(r.compact, r.otrp_compact),
                "teep_compact_vs_otrp_uncompressed_image": ratio(r.compact, r.otrp_raw),
                "frames_raw": {
                    "otrp_DR0": r.otrp.map(|o| frames(o, DR0)),
                    "otrp_DR5": r.otrp.map(|o| frames(o, DR5)),
                    "teep_DR0": frames(r.teep, DR0),
                    "teep_DR5": frames(r.teep, DR5),
                    "teep_compact_DR0": frames(r.compact, DR0),
                    "teep_compact_DR5": frames(r.compact, DR5),
                },
                "coap": { "DR0": coap(r.dr0), "DR5": coap(r.dr5) },
                "coap_compact": { "DR0": coap(r.dr0_compact), "DR5": coap(r.dr5_compact) },
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("Signed TEEP Update overhead beyond its payload (plain integrated image, ESP256 TAM and SP signatures):");
    println!(
        "{:<8} {:>9} {:>9} {:>18} {:>14}",
        "TA", "profile", "overhead", "TEEP COSE_Sign1", "SUIT envelope"
    );
    for o in &overheads {
        println!(
            "{:<8} {:>9} {:>7} B {:>16} B {:>12} B",
            kib(o.size),
            profile_name(o.profile),
            o.total,
            o.teep_cose,
            o.suit
        );
    }
    println!("(bound: 300 B; standard = thumbprint kids, 16-byte token; compact = no kids, 8-byte token, no image-size for an integrated payload)\n");
    println!("Bytes TAM -> device per operation (real encoders and signers; OTrP signed with kid, no x5c, carrying the same SUIT envelope as the TEEP message it is compared with)");
    println!("image: random = incompressible, published uncompressed; wasm = tas/dist/*.wasm cycled, published DEFLATE-compressed (sp publish --compress)");
    println!("T/O = TEEP standard / OTrP; C/O = TEEP compact / OTrP; C/Ou = TEEP compact / OTrP carrying the uncompressed image (OTrP has no compression)");
    println!("frames: ceil(bytes / frame payload); CoAP = datagrams both ways at the largest block that fits the frame (TEEP standard | compact)\n");
    println!(
        "{:<18} {:<6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>5} {:>5} {:>5} | {:>6} {:>6} {:>6} | {:>16} {:>16} | {:>16} {:>16}",
        "operation",
        "image",
        "TA",
        "payload",
        "OTrP",
        "TEEP",
        "compact",
        "T/O",
        "C/O",
        "C/Ou",
        "OTrP@0",
        "TEEP@0",
        "cmp@0",
        "CoAP DR0 std",
        "CoAP DR0 cmp",
        "CoAP DR5 std",
        "CoAP DR5 cmp"
    );
    let coap = |c: Option<CoapCost>| {
        c.map(|c| format!("{}/{}({})", c.bytes, c.datagrams, c.block))
            .unwrap_or_else(|| "does not fit".into())
    };
    let r2 = |x: Option<f64>| x.map_or_else(|| "-".into(), |x| format!("{x:.2}"));
    for r in &rows {
        println!(
            "{:<18} {:<6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>5} {:>5} {:>5} | {:>6} {:>6} {:>6} | {:>16} {:>16} | {:>16} {:>16}",
            r.op,
            r.source.name(),
            kib(r.size),
            r.payload,
            r.otrp.map_or_else(|| "-".into(), |x| x.to_string()),
            r.teep,
            r.compact,
            r2(ratio(r.teep, r.otrp)),
            r2(ratio(r.compact, r.otrp_compact)),
            r2(ratio(r.compact, r.otrp_raw)),
            r.otrp.map_or_else(|| "-".into(), |x| frames(x, DR0).to_string()),
            frames(r.teep, DR0),
            frames(r.compact, DR0),
            coap(r.dr0),
            coap(r.dr0_compact),
            coap(r.dr5),
            coap(r.dr5_compact),
        );
    }
    println!();
    println!("payload = bytes the operation carries (install/update: the image as published, compressed for wasm; delta: patch; personalization: plaintext data)");
    println!(
        "structural floor of TEEP/OTrP when both carry the same large payload: 9/16 = {STRUCTURAL_FLOOR:.4} (OTrP base64-encodes it twice, 4/3 * 4/3)"
    );
    Ok(())
}

fn kib(n: usize) -> String {
    format!("{} KiB", n / 1024)
}

// ---------------------------------------------------------------------------------------
// bench batch

const NOW: u64 = 1_800_000_000;
const MODEL: &str = "bench-lock";
const HW: &str = "1.0";
const MEASUREMENT: [u8; 32] = [0x42; 32];

type BenchAgent = Agent<MemoryStore, EatAttester>;

struct Dev {
    agent: BenchAgent,
    agent_key: PrivateKey,
    tee_key: PrivateKey,
    ueid: Vec<u8>,
}

/// The store record binding `d`'s Agent key (what its first attested session would bind).
fn agent_key_record(d: &Dev) -> Result<AgentKeyRecord> {
    Ok(AgentKeyRecord {
        kid: otrp_crypto::thumbprint::cose_key_thumbprint(&d.agent_key.public_key(), provider())
            .to_vec(),
        device_id: hex::encode(&d.ueid),
        cose_key: otrp_cose::coset::CborSerializable::to_vec(otrp_cose::cose_key_from_public(
            &d.agent_key.public_key(),
        ))
        .map_err(|e| anyhow!("{e}"))?,
        bound_at: NOW,
    })
}

fn device(i: u64, tam: &[PublicKey], agent: KeyKind) -> Result<Dev> {
    let agent_key = key(1_000_000 + 2 * i, agent)?;
    let tee_key = key(1_000_001 + 2 * i, KeyKind::P256)?;
    let mut ueid = vec![0x01];
    ueid.extend_from_slice(&i.to_be_bytes());
    ueid.extend_from_slice(&[0xb5; 8]);
    let attester = EatAttester::new(
        otrp_crypto::rust_crypto_provider(),
        tee_key.clone(),
        EatIdentity {
            ueid: ueid.clone(),
            oemid: otrp_eat::OemId::Pen(32473),
            hwmodel: MODEL.as_bytes().to_vec(),
            hwversion: HW.into(),
            measurement: MEASUREMENT,
            x5chain: Vec::new(),
            tfw_endorsement: None,
        },
        &agent_key.public_key(),
    );
    let config = AgentConfig {
        tams: tam
            .iter()
            .map(|k| TrustedTam {
                key: k.clone(),
                oem: true,
            })
            .collect(),
        oem_keys: vec![],
        management: Management::OemGated,
        agent_key: agent_key.clone(),
        alg_gen: AlgIdGeneration::New,
        processor: ProcessorConfig::default(),
        max_tokens: 16,
    };
    Ok(Dev {
        agent: Agent::new(provider(), config, MemoryStore::new(), attester),
        agent_key,
        tee_key,
        ueid,
    })
}

fn sd_manifest(tam: &PrivateKey, sp: &PublicKey) -> Result<Vec<u8>> {
    let desc = SdDescriptor {
        name: b"sd-lock".to_vec(),
        sp_id: "sp-lock".into(),
        signers: vec![sp.clone()],
        authorization: None,
        tam: None,
    };
    let bytes = desc.to_cbor().map_err(|e| anyhow!("SD: {e}"))?;
    TaManifestBuilder::new(otrp_agent::sd::sd_component_id(b"sd-lock"), 1)
        .image_of(&bytes)
        .integrated_payload("#sd", bytes)
        .uninstall(true)
        .build_signed(provider(), tam, &SignOptions::default())
        .and_then(|e| e.encode())
        .map_err(|e| anyhow!("SD manifest: {e}"))
}

struct Measured {
    n: usize,
    run: usize,
    cpu: Duration,
    signatures: u64,
}

impl Measured {
    fn per_device_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.n as f64
    }
    fn sigs_per_device(&self) -> f64 {
        self.signatures as f64 / self.n as f64
    }
}

fn tam_keys() -> Result<TamKeys> {
    Ok(TamKeys {
        p256: key(101, KeyKind::P256)?,
        ed25519: key(102, KeyKind::Ed25519)?,
    })
}

/// Per-device mode: `run` whole TEEP sessions (QueryRequest, QueryResponse with EAT →
/// Update, Success → done) on the TAM core over a fresh SQLite store; only the TAM's
/// `process` calls are timed. Extrapolated to `n` devices.
async fn per_device(
    n: usize,
    run: usize,
    dir: &std::path::Path,
    agent: KeyKind,
) -> Result<Measured> {
    let counting: &'static CountingProvider =
        Box::leak(Box::new(CountingProvider::new(provider())));
    let keys = tam_keys()?;
    let tam_pub = [keys.p256.public_key(), keys.ed25519.public_key()];
    let sp = key(55, KeyKind::P256)?;
    let mut devs = Vec::with_capacity(run);
    for i in 0..run {
        devs.push(device(i as u64, &tam_pub, agent)?);
    }
    let db = dir.join(format!("per-device-{n}.db"));
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&db).await?);
    let mut verifier = EatVerifier::new(provider(), 3600);
    for d in &devs {
        verifier.register_device(&d.ueid, d.tee_key.public_key());
    }
    verifier.set_reference(
        MODEL,
        ReferenceValues {
            measurements: vec![MEASUREMENT.to_vec()],
            hwversions: vec![HW.into()],
        },
    );
    let tam = Tam::new(
        store.clone(),
        Arc::new(verifier),
        keys.clone(),
        TamConfig::default(),
        counting,
    );
    let admin = Admin::new(store.clone(), provider(), Policy::OemGated);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let oem_t = admin
        .create_account(None, "oem", AccountKind::Oem, NOW, &mut rng)
        .await?;
    let oem = admin.authenticate(&oem_t).await?;
    let sp_t = admin
        .create_account(Some(&oem), "sp-lock", AccountKind::Sp, NOW, &mut rng)
        .await?;
    admin.approve_sp(&oem, "sp-lock", true, NOW).await?;
    admin.create_sd(&oem, "sd-lock", "sp-lock", NOW).await?;
    let spc = admin.authenticate(&sp_t).await?;
    let image = ta_image(1, 1024);
    let env = TaManifestBuilder::new(component(), 1)
        .image_of(&image)
        .integrated_payload(FULL_KEY, image.clone())
        .uninstall(true)
        .build_signed(provider(), &sp, &SignOptions::default())
        .and_then(|e| e.encode())
        .map_err(|e| anyhow!("SUIT: {e}"))?;
    let reg = admin
        .register_manifest(&spc, "sd-lock", "smart-lock", &env, &[sp.public_key()], NOW)
        .await?;
    admin
        .create_deployment(
            &spc,
            &reg.component,
            DeploymentAction::Install,
            Target::All,
            Rollout::Full,
            NOW,
        )
        .await?;
    // Devices are provisioned (SD created, Agent key bound) before the timed sessions.
    let sd = sd_manifest(&keys.p256, &sp.public_key())?;
    for d in &mut devs {
        let up = Update::new()
            .with_token(d.ueid.clone())
            .with_manifests(vec![sd.clone()]);
        let msg = otrp_teep::signed::sign1(
            provider(),
            &keys.p256,
            &TeepMessage::Update(up),
            AlgIdGeneration::New,
        )
        .map_err(|e| anyhow!("{e}"))?;
        d.agent.handle(&msg, NOW);
        store.put_agent_key(&agent_key_record(d)?).await?;
    }
    counting.reset();
    let mut cpu = Duration::ZERO;
    for d in &mut devs {
        let mut body = Vec::new();
        for step in 0..6 {
            let t = Instant::now();
            let out = tam.process(None, &body, NOW + step, &mut rng).await;
            cpu += t.elapsed();
            let Outcome::Reply(msg) = out.map_err(|e| anyhow!("TAM: {e}"))? else {
                break;
            };
            match d.agent.handle(&msg, NOW + step).send {
                Some(s) => body = s,
                None => break,
            }
        }
        if d.agent.store().images.get(&component()) != Some(&image) {
            bail!("per-device session did not install the TA");
        }
    }
    let per = cpu.as_secs_f64() / run as f64;
    Ok(Measured {
        n,
        run,
        cpu: Duration::from_secs_f64(per * n as f64),
        signatures: counting.signatures() * n as u64 / run as u64,
    })
}

/// Batch mode: the TAM builds, signs and stores one package for `n` devices (timed),
/// `2 run` devices apply it (not timed) and the TAM verifies **and records** their reports
/// the way the TAM server does (timed, extrapolated to `n`): one package existence check
/// (the server remembers a package it has seen), then groups of [`MAX_REPORT_GROUP`]
/// reports through `record_reports_with` (one write of the group's report rows each).
/// `run` devices sign their reports with their Agent keys (one Agent-key query per group,
/// a signature check per report); `run` devices hold report keys and MAC them (one key
/// derivation and one HMAC per report, no query).
async fn batch_mode(
    n: usize,
    run: usize,
    dir: &std::path::Path,
    agent: KeyKind,
) -> Result<BatchRuns> {
    let counting: &'static CountingProvider =
        Box::leak(Box::new(CountingProvider::new(provider())));
    let keys = tam_keys()?;
    let tam_pub = [keys.p256.public_key(), keys.ed25519.public_key()];
    let sp = key(55, KeyKind::P256)?;
    let bk = key(700, KeyKind::P256)?;
    let PrivateKey::P256(bsk) = &bk else {
        bail!("batch key is P-256")
    };
    let image = ta_image(1, 1024);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    // The SP's manifest (payload encrypted to the batch key) and the SD manifest exist
    // before the batch; the TAM's work per batch is the package.
    let ta = encrypt_for_batch(
        TaManifestBuilder::new(component(), 1).uninstall(true),
        provider(),
        &mut rng,
        &image,
        "lot-1",
        &bsk.public_key(),
    )?
    .build_signed(provider(), &sp, &SignOptions::default())
    .and_then(|e| e.encode())
    .map_err(|e| anyhow!("SUIT: {e}"))?;
    let sd = sd_manifest(&keys.p256, &sp.public_key())?;
    let db = dir.join(format!("batch-{n}.db"));
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&db).await?);
    counting.reset();
    let t = Instant::now();
    let pkg = build_package(counting, &keys.p256, "lot-1", 1, vec![sd, ta], vec![])?;
    store
        .insert_batch_package(&otrp_store::BatchPackageRecord {
            batch_id: "lot-1".into(),
            seq: 1,
            owner: "oem".into(),
            contents: "sd#1, app#1".into(),
            bytes: pkg.bytes.clone(),
            etag: pkg.etag.clone(),
            tam_signatures: counting.signatures(),
            created_at: NOW,
        })
        .await?;
    let package_cpu = t.elapsed();
    let package_sigs = counting.signatures();
    // Devices `0..run` sign their reports; devices `run..2 run` were provisioned with a
    // report key (derived from the batch's report master) and MAC them.
    let master = [0x5au8; otrp_crypto::report_key::REPORT_KEY_LEN];
    let mut signed = Vec::with_capacity(run);
    let mut maced = Vec::with_capacity(run);
    for i in 0..2 * run {
        let mut d = device(i as u64, &tam_pub, agent)?;
        let report = if i < run {
            store.put_agent_key(&agent_key_record(&d)?).await?;
            None
        } else {
            Some(otrp_agent::ReportKey {
                device_id: d.ueid.clone(),
                key: otrp_crypto::report_key::derive(provider(), &master, "lot-1", &d.ueid)
                    .map_err(|e| anyhow!("{e}"))?,
            })
        };
        let m = BatchMembership {
            id: "lot-1".into(),
            key: bsk.clone(),
            report,
        };
        match d.agent.handle_batch(&m, &pkg.bytes, NOW) {
            BatchOutcome::Applied { .. } => {}
            other => bail!("batch package not applied: {other:?}"),
        }
        let r = d
            .agent
            .batch_reports()
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no report"))?;
        if i < run {
            signed.push(r.message);
        } else {
            maced.push(r.message);
        }
    }
    let mut report_cpu = [0f64; 2];
    for (k, (reports, master)) in [(&signed, None), (&maced, Some(&master))]
        .into_iter()
        .enumerate()
    {
        let ctx = otrp_tam::batch::ReportContext {
            batch_id: "lot-1",
            seq: 1,
            master,
        };
        let t = Instant::now();
        if !store.batch_package_exists("lot-1", 1).await? {
            bail!("the package is not stored");
        }
        for group in reports.chunks(MAX_REPORT_GROUP) {
            let bodies: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            for v in record_reports_with(store.as_ref(), counting, &ctx, &bodies, NOW).await? {
                let v = v?;
                if !v.success {
                    bail!("a device reported failure: {}", v.detail);
                }
            }
        }
        if let Some(slot) = report_cpu.get_mut(k) {
            *slot = t.elapsed().as_secs_f64() / run as f64 * n as f64;
        }
    }
    let recorded = store.batch_report_counts("lot-1", 1).await?;
    if recorded.applied != 2 * run as u64 {
        bail!("{} of {} reports recorded", recorded.applied, 2 * run);
    }
    let with = |cpu: f64| Measured {
        n,
        run,
        cpu: package_cpu + Duration::from_secs_f64(cpu),
        signatures: package_sigs,
    };
    Ok(BatchRuns {
        package: Measured {
            n,
            run: 1,
            cpu: package_cpu,
            signatures: package_sigs,
        },
        signed_reports: with(report_cpu[0]),
        mac_reports: with(report_cpu[1]),
    })
}

/// What [`batch_mode`] measured: the package alone, and with every device's report
/// verified and recorded, signed or MAC'd.
struct BatchRuns {
    package: Measured,
    signed_reports: Measured,
    mac_reports: Measured,
}

fn batch(args: &BatchArgs) -> Result<()> {
    let agent = match args.agent_key.as_str() {
        "ed25519" => KeyKind::Ed25519,
        _ => KeyKind::P256,
    };
    let dir = tempfile::tempdir().context("temp dir")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    let mut results = Vec::new();
    for &n in &args.devices {
        if n == 0 {
            bail!("N must be at least 1");
        }
        let run = n.min(args.sample.max(1));
        let b = rt.block_on(batch_mode(n, run, dir.path(), agent))?;
        let per = rt.block_on(per_device(n, run, dir.path(), agent))?;
        results.push((n, per, b));
    }
    if args.json {
        let mode = |m: &Measured| json!({"tam_cpu_us_per_device": m.per_device_us(), "signatures_per_device": m.sigs_per_device(), "tam_cpu_total_s": m.cpu.as_secs_f64()});
        let rows: Vec<Value> = results
            .iter()
            .map(|(n, per, b)| {
                json!({
                    "devices": n,
                    "sampled_devices": per.run,
                    "per_device_mode": mode(per),
                    "batch_mode_package_only": mode(&b.package),
                    "batch_mode_with_reports": mode(&b.signed_reports),
                    "batch_mode_with_mac_reports": mode(&b.mac_reports),
                    "cpu_ratio_per_device_vs_batch_with_reports": per.per_device_us() / b.signed_reports.per_device_us(),
                    "cpu_ratio_per_device_vs_batch_with_mac_reports": per.per_device_us() / b.mac_reports.per_device_us(),
                    "reports_verified_and_recorded_in_groups_of": MAX_REPORT_GROUP,
                    "agent_key": args.agent_key,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "rows": rows }))?
        );
        return Ok(());
    }
    println!("TAM CPU (wall time of the TAM's own calls, one thread, SQLite temp store) and TAM signatures per device");
    println!("per-device: whole TEEP sessions on the TAM core (QueryRequest, EAT appraisal, Update, Success)");
    println!("batch: one signed and stored package per batch; '+signed' adds verifying and recording each device's");
    println!("async report as the TAM server does: groups of {MAX_REPORT_GROUP} reports, one key query and one write each;");
    println!("'+MAC' the same for devices provisioned with report keys: one key derivation and one HMAC per report");
    println!(
        "Agent keys: {} (ed25519: each group's report signatures are checked together)\n",
        args.agent_key
    );
    println!(
        "{:>6} {:>7} | {:>11} {:>7} | {:>9} {:>7} | {:>10} {:>6} | {:>10} {:>6}",
        "N",
        "sampled",
        "per-dev µs",
        "sig/dev",
        "batch µs",
        "sig/dev",
        "+signed µs",
        "ratio",
        "+MAC µs",
        "ratio"
    );
    for (n, per, b) in &results {
        println!(
            "{:>6} {:>7} | {:>11.1} {:>7.4} | {:>9.3} {:>7.4} | {:>10.1} {:>5.1}x | {:>10.1} {:>5.1}x",
            n,
            per.run,
            per.per_device_us(),
            per.sigs_per_device(),
            b.package.per_device_us(),
            b.package.sigs_per_device(),
            b.signed_reports.per_device_us(),
            per.per_device_us() / b.signed_reports.per_device_us(),
            b.mac_reports.per_device_us(),
            per.per_device_us() / b.mac_reports.per_device_us(),
        );
    }
    Ok(())
}
