//! Delta updates on the TAM side (DESIGN.md §3.3, `docs/DELTA.md`).
//!
//! An SP publishes a **delta-capable** manifest
//! ([`otrp_suit_processor::delta::make_delta_capable`], or [`delta_capable_envelope`]):
//! signed once, its install sequence accepts a `#delta` payload against each of the bases
//! it lists (custom parameter `otrp-delta-base`, -70100) and otherwise the full image
//! `#tc` (compressed when it says `otrp-compressed`, -70101). Integrated payloads lie
//! outside the SUIT signature (the manifest's image digest covers the result), so the TAM
//! chooses, per device, which payload the envelope carries:
//!
//! * the device reports (tc-list) an image digest that the manifest lists as a base and
//!   whose image the TAM has (an earlier stored version of the component with that image
//!   digest and an integrated payload): the TAM computes `otrp_delta::diff(old, new)` and
//!   sends the envelope with only `#delta` — if that is smaller than the full payload;
//! * otherwise the envelope with only `#tc` (the fallback), as the SP registered it.
//!
//! The Agent applies a delta only over the installed image with the base digest and
//! checks the produced image against the manifest's digest and size; a refused delta
//! leaves the device unchanged and the next session can fall back to the full image.

use otrp_cose::SignOptions;
use otrp_crypto::{CryptoProvider, PrivateKey};
use otrp_store::{ManifestRecord, Store};
use otrp_suit::{CborItem, ComponentId, Digest, Envelope, TaManifestBuilder, Wrapped};
use otrp_suit_processor::delta::{
    delta_offer, make_delta_capable_keyed, COMPACT_FULL_KEY, DELTA_KEY, FULL_KEY, FULL_KEYS,
};
use otrp_teep::WireProfile;

use crate::session::TamError;

/// How many earlier sequence numbers of a component are searched for a base image.
pub const MAX_BASE_SCAN: u64 = 32;

/// DEFLATE level for full images (miniz_oxide's best).
pub const COMPRESSION_LEVEL: u8 = 10;

/// What the TAM chose to send for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The envelope as registered (full image, or no delta offer).
    Full,
    /// A delta against the reported image.
    Delta {
        /// Patch size in bytes.
        patch: usize,
        /// Size of the full payload it replaced.
        full: usize,
    },
}

/// Builds and signs a delta-capable TA envelope (the SP tool's side): image digest and
/// size of `new`, `#tc` = `new` compressed (or as is when `compress` is false), and a
/// delta alternative per base in `bases` (images of earlier versions the TAM holds).
pub fn delta_capable_envelope(
    provider: &dyn CryptoProvider,
    signer: &PrivateKey,
    component: &ComponentId,
    seq: u64,
    new: &[u8],
    bases: &[&[u8]],
    compress: bool,
) -> Result<Vec<u8>, otrp_suit::SuitError> {
    delta_capable_envelope_profile(
        provider,
        signer,
        component,
        seq,
        new,
        bases,
        compress,
        WireProfile::Standard,
    )
}

/// [`delta_capable_envelope`] under a wire profile: [`WireProfile::Compact`] omits
/// `image-size` (the payload is integrated), sets the image digest in the install
/// sequence instead of a shared sequence, carries the full image under
/// [`COMPACT_FULL_KEY`] (`#`) and signs without a kid (`TaManifestBuilder::compact`,
/// `otrp_suit::compact_sign_options`).
#[allow(clippy::too_many_arguments)]
pub fn delta_capable_envelope_profile(
    provider: &dyn CryptoProvider,
    signer: &PrivateKey,
    component: &ComponentId,
    seq: u64,
    new: &[u8],
    bases: &[&[u8]],
    compress: bool,
    profile: WireProfile,
) -> Result<Vec<u8>, otrp_suit::SuitError> {
    delta_capable_envelope_from(
        provider,
        signer,
        TaManifestBuilder::new(component.clone(), seq),
        new,
        bases,
        compress,
        profile,
    )
}

/// [`delta_capable_envelope_profile`] from a builder that already names the component
/// and sequence number and may carry more of the manifest, such as the vendor and class
/// ids the device checks (`otrp sp publish --vendor-pen`): the image, its payload and
/// the delta alternatives are added here.
pub fn delta_capable_envelope_from(
    provider: &dyn CryptoProvider,
    signer: &PrivateKey,
    base: TaManifestBuilder,
    new: &[u8],
    bases: &[&[u8]],
    compress: bool,
    profile: WireProfile,
) -> Result<Vec<u8>, otrp_suit::SuitError> {
    let compact = profile == WireProfile::Compact;
    let full_key = if compact { COMPACT_FULL_KEY } else { FULL_KEY };
    let mut manifest = base
        .image_of(new)
        .uri(full_key)
        .uninstall(true)
        .compact(compact)
        .build_manifest()?;
    let bases: Vec<Digest> = bases.iter().map(|b| Digest::sha256(b)).collect();
    make_delta_capable_keyed(&mut manifest, &bases, compress, full_key)?;
    let mut env = Envelope::unsigned(Wrapped::new(manifest)?)?;
    let payload = if compress {
        otrp_delta::compress_full(new, otrp_delta::DEFAULT_CHUNK_SIZE, COMPRESSION_LEVEL)
    } else {
        new.to_vec()
    };
    env.integrated.push((full_key.into(), payload));
    let opts = if compact {
        otrp_suit::compact_sign_options()
    } else {
        SignOptions::default()
    };
    env.add_signature(provider, signer, &opts)?;
    env.encode()
}

/// The full-image payload of an envelope: under `#tc` ([`FULL_KEY`]) or, in the compact
/// profile, `#` ([`COMPACT_FULL_KEY`]).
pub fn full_payload(env: &Envelope) -> Option<&[u8]> {
    FULL_KEYS.iter().find_map(|k| env.integrated_payload(k))
}

/// The plaintext image carried by an envelope's `#tc` (or compact `#`) payload (inflated
/// when the manifest marks it compressed), if it carries one that matches its image
/// digest.
pub fn full_image(env: &Envelope) -> Option<Vec<u8>> {
    let payload = full_payload(env)?;
    let digest = image_digest(env)?;
    if delta_offer(env).full_compressed {
        let mut out = Vec::new();
        otrp_delta::apply_full(payload, &mut out, &digest, &otrp_delta::Limits::default()).ok()?;
        Some(out)
    } else {
        (otrp_delta::digest(payload) == digest).then(|| payload.to_vec())
    }
}

/// The SHA-256 image digest a manifest sets (shared sequence, or the compact profile's
/// install sequence: [`Envelope::image_digest`]).
fn image_digest(env: &Envelope) -> Option<[u8; 32]> {
    let d = env.image_digest()?.value();
    if d.alg != otrp_suit::labels::digest_alg::SHA256 {
        return None;
    }
    d.bytes.as_slice().try_into().ok()
}

/// Decodes a reported `image-digest` (encoded SUIT_Digest) into SHA-256 bytes.
fn reported_sha256(reported: &[u8]) -> Option<[u8; 32]> {
    let d = Digest::from_cbor(reported).ok()?;
    if d.alg != otrp_suit::labels::digest_alg::SHA256 {
        return None;
    }
    d.bytes.as_slice().try_into().ok()
}

/// Finds the stored image of `component` whose digest is `reported` (encoded SUIT_Digest):
/// first at `hint` (the sequence number last sent to the device), then the
/// [`MAX_BASE_SCAN`] sequence numbers below `below`.
async fn base_image(
    store: &dyn Store,
    component: &[u8],
    reported: &[u8],
    hint: Option<u64>,
    below: u64,
) -> Result<Option<Vec<u8>>, TamError> {
    let mut seqs: Vec<u64> = hint.into_iter().filter(|s| *s < below).collect();
    seqs.extend((below.saturating_sub(MAX_BASE_SCAN)..below).rev());
    let mut tried = Vec::new();
    for seq in seqs {
        if tried.contains(&seq) {
            continue;
        }
        tried.push(seq);
        let Some(rec) = store.manifest(component, seq).await? else {
            continue;
        };
        if rec.image_digest.as_deref() != Some(reported) {
            continue;
        }
        if let Some(img) = Envelope::decode(&rec.envelope)
            .ok()
            .as_ref()
            .and_then(full_image)
        {
            return Ok(Some(img));
        }
    }
    Ok(None)
}

/// The envelope to send for `latest` to a device that reported `reported` (the encoded
/// SUIT_Digest of its installed image, from tc-list), `hint` being the sequence number
/// the TAM last sent it: a `#delta` variant when the manifest offers the reported base,
/// the TAM holds that image and the delta is smaller, else the registered envelope.
pub async fn envelope_for(
    store: &dyn Store,
    latest: &ManifestRecord,
    reported: Option<&[u8]>,
    hint: Option<u64>,
) -> Result<(Vec<u8>, Payload), TamError> {
    let full = || Ok((latest.envelope.clone(), Payload::Full));
    let (Some(reported), Ok(mut env)) = (reported, Envelope::decode(&latest.envelope)) else {
        return full();
    };
    let offer = delta_offer(&env);
    let Some(base) = reported_sha256(reported) else {
        return full();
    };
    if !offer.bases.contains(&base) {
        return full();
    }
    let Some(full_payload) = full_payload(&env).map(<[u8]>::len) else {
        return full();
    };
    let Some(new) = full_image(&env) else {
        return full();
    };
    let Some(old) = base_image(store, &latest.component, reported, hint, latest.seq).await? else {
        return full();
    };
    let patch = otrp_delta::diff(&old, &new);
    if patch.len() >= full_payload {
        return full();
    }
    let patch_len = patch.len();
    env.integrated
        .retain(|(k, _)| !FULL_KEYS.contains(&k.as_str()) && k != DELTA_KEY);
    env.integrated.push((DELTA_KEY.into(), patch));
    let bytes = env
        .encode()
        .map_err(|e| TamError::Malformed(format!("delta envelope: {e}")))?;
    Ok((
        bytes,
        Payload::Delta {
            patch: patch_len,
            full: full_payload,
        },
    ))
}
