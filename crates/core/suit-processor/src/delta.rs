//! Delta updates and compressed full images in SUIT (our extension, DESIGN.md §3.3).
//!
//! Two custom SUIT parameters (negative labels, i.e. private use) mark a payload that is
//! not the image itself but an [`otrp_delta`] container producing it:
//!
//! | label | name | value |
//! |---|---|---|
//! | `-70100` | `otrp-delta-base` | `bstr .cbor SUIT_Digest`: the image the patch applies to |
//! | `-70101` | `otrp-compressed` | `true`: the payload is a chunked-DEFLATE full image |
//!
//! When either is set on the component a `fetch` or `write` targets, the (decrypted)
//! payload goes through [`otrp_delta::apply`] before it is staged:
//!
//! * `otrp-delta-base`: the component's installed image must exist and its SHA-256 must
//!   equal the base digest (checked by `apply` before the first output byte); the patch's
//!   own header must name the same base and the manifest's image digest as its result.
//! * `otrp-compressed`: the payload is inflated chunk by chunk.
//!
//! Both need the manifest's `image-digest` (SHA-256) on that component: the produced
//! image must hash to it, otherwise nothing is staged. The manifest's `image-digest` and
//! `image-size` are always those of the **new** image, so the usual `condition-image-match`
//! after the fetch checks the result like any other image.
//!
//! A manifest that can be installed from several bases lists one `try-each` alternative
//! per base (`override-parameters {uri: "#delta", otrp-delta-base: …}, fetch`) and a last
//! one fetching the full image: an alternative whose base does not match, or whose payload
//! is absent from the envelope, fails and the next one runs (see `otrp-tam`'s `delta`).

use alloc::string::ToString;
use alloc::vec::Vec;

use otrp_suit::labels::digest_alg;
use otrp_suit::{CborItem, Digest, Parameter, Value};

/// `otrp-delta-base`: `bstr .cbor SUIT_Digest` of the image a delta payload patches.
pub const DELTA_BASE: i64 = -70100;
/// `otrp-compressed`: `true` when the payload is a compressed (chunked-DEFLATE) full image.
pub const COMPRESSED: i64 = -70101;

/// Largest DEFLATE chunk a device accepts (one buffer of this size is allocated).
pub const MAX_CHUNK: u32 = 32 << 10;

/// How a payload must be unpacked before it is staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packing {
    /// The payload is the image.
    Plain,
    /// The payload is a delta against the image with this SHA-256 digest.
    Delta([u8; 32]),
    /// The payload is a compressed full image.
    Compressed,
}

/// Why a payload could not be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    /// A parameter had the wrong shape.
    #[error("parameter {label}: {what}")]
    Parameter {
        /// The parameter label.
        label: i64,
        /// What was wrong.
        what: &'static str,
    },
    /// A delta targets a component with no installed image.
    #[error("delta payload but the component has no installed image")]
    NoBase,
    /// The installed image is not the delta's base.
    #[error("the installed image is not the delta's base")]
    BaseMismatch,
    /// `otrp_delta` refused the patch.
    #[error("patch refused: {0}")]
    Patch(otrp_delta::ApplyError),
}

fn sha256_of(v: &Digest) -> Option<[u8; 32]> {
    if v.alg != digest_alg::SHA256 {
        return None;
    }
    v.bytes.as_slice().try_into().ok()
}

/// Reads the packing parameters of a component (`params` are its current parameters).
pub fn packing<'a>(
    mut param: impl FnMut(i64) -> Option<&'a Parameter>,
) -> Result<Packing, UnpackError> {
    let base = match param(DELTA_BASE) {
        None => None,
        Some(Parameter::Other {
            value: Value::Bytes(b),
            ..
        }) => {
            let d = Digest::from_cbor(b).map_err(|_| UnpackError::Parameter {
                label: DELTA_BASE,
                what: "not a SUIT_Digest",
            })?;
            Some(sha256_of(&d).ok_or(UnpackError::Parameter {
                label: DELTA_BASE,
                what: "only SHA-256 digests are supported",
            })?)
        }
        Some(_) => {
            return Err(UnpackError::Parameter {
                label: DELTA_BASE,
                what: "must be a bstr holding a SUIT_Digest",
            })
        }
    };
    let compressed = match param(COMPRESSED) {
        None => false,
        Some(Parameter::Other {
            value: Value::Bool(b),
            ..
        }) => *b,
        Some(_) => {
            return Err(UnpackError::Parameter {
                label: COMPRESSED,
                what: "must be a bool",
            })
        }
    };
    match (base, compressed) {
        (Some(_), true) => Err(UnpackError::Parameter {
            label: COMPRESSED,
            what: "a payload is either a delta or a compressed image, not both",
        }),
        (Some(b), false) => Ok(Packing::Delta(b)),
        (None, true) => Ok(Packing::Compressed),
        (None, false) => Ok(Packing::Plain),
    }
}

/// Produces the image from `payload` under `packing`: `new_digest` is the manifest's
/// image digest (required unless plain), `installed` the component's current image.
pub fn unpack(
    packing: &Packing,
    payload: Vec<u8>,
    new_digest: Option<&Digest>,
    installed: Option<&[u8]>,
    max_image_size: usize,
) -> Result<Vec<u8>, UnpackError> {
    if *packing == Packing::Plain {
        return Ok(payload);
    }
    let new = new_digest
        .and_then(sha256_of)
        .ok_or(UnpackError::Parameter {
            label: otrp_suit::labels::parameter::IMAGE_DIGEST,
            what: "a delta or compressed payload needs a SHA-256 image-digest",
        })?;
    let limits = otrp_delta::Limits {
        max_new_size: max_image_size as u64,
        max_chunk_size: MAX_CHUNK,
    };
    let mut out = Vec::new();
    match packing {
        Packing::Plain => return Ok(payload),
        Packing::Compressed => {
            otrp_delta::apply_full(payload.as_slice(), &mut out, &new, &limits)
                .map_err(UnpackError::Patch)?;
        }
        Packing::Delta(base) => {
            let old = installed.ok_or(UnpackError::NoBase)?;
            if otrp_delta::digest(old) != *base {
                return Err(UnpackError::BaseMismatch);
            }
            let mut old = old;
            otrp_delta::apply(
                payload.as_slice(),
                &mut old,
                &mut out,
                &otrp_delta::Expected {
                    old_digest: Some(*base),
                    new_digest: new,
                },
                &limits,
            )
            .map_err(UnpackError::Patch)?;
        }
    }
    Ok(out)
}

impl UnpackError {
    /// The SUIT report reason for this error.
    pub fn reason(&self) -> otrp_suit::ReportReason {
        match self {
            UnpackError::Parameter { .. } => otrp_suit::ReportReason::ParameterUnsupported,
            UnpackError::NoBase | UnpackError::BaseMismatch => {
                otrp_suit::ReportReason::ConditionFailed
            }
            UnpackError::Patch(_) => otrp_suit::ReportReason::OperationFailed,
        }
    }
    /// A description for the report.
    pub fn detail(&self) -> alloc::string::String {
        self.to_string()
    }
}

/// Envelope key of a delta payload in a delta-capable manifest.
pub const DELTA_KEY: &str = "#delta";
/// Envelope key of the full image in a delta-capable manifest.
pub const FULL_KEY: &str = "#tc";
/// Envelope key of the full image in a compact-profile manifest (docs/CONSTRAINED.md):
/// a fragment-only URI like `#tc`, one key byte instead of three, written twice (the
/// envelope key and the manifest's `uri`). Agents resolve any `#…` URI against the
/// envelope, so both keys work everywhere.
pub const COMPACT_FULL_KEY: &str = "#";
/// The keys a full image may be carried under, [`FULL_KEY`] first.
pub const FULL_KEYS: [&str; 2] = [FULL_KEY, COMPACT_FULL_KEY];

/// `otrp-delta-base` as a SUIT parameter.
pub fn delta_base_parameter(base: &Digest) -> otrp_suit::Result<Parameter> {
    Ok(Parameter::Other {
        label: DELTA_BASE,
        value: Value::Bytes(base.to_cbor()?),
    })
}

/// Makes `manifest` (a TA manifest whose shared sequence sets the new image's digest and
/// size, as [`otrp_suit::TaManifestBuilder`] without a dependency does) installable from
/// a delta against any of `bases` or from the full image (compressed when
/// `full_compressed`): its install sequence becomes
///
/// ```text
/// try-each [ [override {uri: "#delta", otrp-delta-base: base}, fetch] per base,
///            [override {uri: "#tc", otrp-compressed: true}, fetch] ],
/// condition-image-match
/// ```
///
/// The manifest is signed once; the TAM then puts either a `#delta` (for the base the
/// device reported) or the `#tc` payload into the envelope it sends.
pub fn make_delta_capable(
    manifest: &mut otrp_suit::Manifest,
    bases: &[Digest],
    full_compressed: bool,
) -> otrp_suit::Result<()> {
    make_delta_capable_keyed(manifest, bases, full_compressed, FULL_KEY)
}

/// [`make_delta_capable`] with the full image under `full_key` ([`FULL_KEY`], or
/// [`COMPACT_FULL_KEY`] in the compact profile). Image parameters (`image-digest`,
/// `image-size`) that the manifest's install sequence sets at top level — the compact
/// profile's place for them, see `TaManifestBuilder::compact` — are kept: set before the
/// `try-each` (or with the full image's URI when there is no base), so every alternative
/// and the final `condition-image-match` see them.
pub fn make_delta_capable_keyed(
    manifest: &mut otrp_suit::Manifest,
    bases: &[Digest],
    full_compressed: bool,
    full_key: &str,
) -> otrp_suit::Result<()> {
    use otrp_suit::{
        Action, Command, CommandSequence, Condition, Parameters, ReportingPolicy, Severable,
        TryEach, Wrapped,
    };
    let image: Vec<Parameter> = match &manifest.install {
        Some(Severable::Inline(w)) => w
            .value()
            .parameters()
            .filter(|p| matches!(p, Parameter::ImageDigest(_) | Parameter::ImageSize(_)))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let fetch = Command::Action(Action::Fetch, ReportingPolicy::ALL);
    let mut full = Vec::new();
    if bases.is_empty() {
        full.extend(image.iter().cloned());
    }
    full.push(Parameter::Uri(full_key.into()));
    if full_compressed {
        full.push(Parameter::Other {
            label: COMPRESSED,
            value: Value::Bool(true),
        });
    }
    let full_seq = alloc::vec![Command::OverrideParameters(Parameters(full)), fetch.clone()];
    let mut install = Vec::new();
    if bases.is_empty() {
        install.extend(full_seq);
    } else {
        if !image.is_empty() {
            install.push(Command::OverrideParameters(Parameters(image)));
        }
        let mut sequences = Vec::with_capacity(bases.len() + 1);
        for b in bases {
            sequences.push(Wrapped::new(CommandSequence(alloc::vec![
                Command::OverrideParameters(Parameters(alloc::vec![
                    Parameter::Uri(DELTA_KEY.into()),
                    delta_base_parameter(b)?,
                ])),
                fetch.clone(),
            ]))?);
        }
        sequences.push(Wrapped::new(CommandSequence(full_seq))?);
        install.push(Command::TryEach(TryEach {
            sequences,
            nil_default: false,
        }));
    }
    install.push(Command::Condition(
        Condition::ImageMatch,
        ReportingPolicy::ALL,
    ));
    manifest.install = Some(Severable::Inline(Wrapped::new(CommandSequence(install))?));
    Ok(())
}

/// What a delta-capable manifest offers: the SHA-256 digests of the bases it accepts
/// deltas against, and whether its full image is compressed (read from the install
/// sequence, see [`make_delta_capable`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaOffer {
    /// Bases a `#delta` payload may patch.
    pub bases: Vec<[u8; 32]>,
    /// Whether the `#tc` payload is compressed.
    pub full_compressed: bool,
}

/// Reads the [`DeltaOffer`] of an envelope's install sequence (empty when it has none).
pub fn delta_offer(env: &otrp_suit::Envelope) -> DeltaOffer {
    use otrp_suit::Command;
    fn walk(seq: &otrp_suit::CommandSequence, out: &mut DeltaOffer, depth: usize) {
        if depth > 4 {
            return;
        }
        for cmd in seq.commands() {
            match cmd {
                Command::OverrideParameters(ps) | Command::SetParameters(ps) => {
                    for p in ps.iter() {
                        match p {
                            Parameter::Other {
                                label: DELTA_BASE,
                                value: Value::Bytes(b),
                            } => {
                                if let Some(d) =
                                    Digest::from_cbor(b).ok().as_ref().and_then(sha256_of)
                                {
                                    out.bases.push(d);
                                }
                            }
                            Parameter::Other {
                                label: COMPRESSED,
                                value: Value::Bool(true),
                            } => out.full_compressed = true,
                            _ => {}
                        }
                    }
                }
                Command::TryEach(t) => {
                    for s in &t.sequences {
                        walk(s.value(), out, depth + 1);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = DeltaOffer::default();
    if let Ok(Some(seq)) = env.install() {
        walk(seq, &mut out, 0);
    }
    out
}
