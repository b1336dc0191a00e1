//! `SUIT_Envelope` and `SUIT_Authentication`.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cbor::{
    check_unique, decode_value, int, int_of, sort_canonical, to_array, CborItem, Ctx, Limits,
    Opaque, Path, Value, Wrapped,
};
use crate::command::CommandSequence;
use crate::digest::Digest;
use crate::error::{Result, SuitError};
use crate::labels::{envelope as e, manifest as m, tag};
use crate::manifest::{Manifest, Severable, TextMap};

/// `SUIT_Authentication = [bstr .cbor SUIT_Digest, * bstr .cbor SUIT_Authentication_Block]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Authentication {
    /// Digest of the bstr-wrapped manifest.
    pub digest: Wrapped<Digest>,
    /// The COSE authentication blocks (tagged COSE_Sign1 / COSE_Sign / COSE_Mac0 /
    /// COSE_Mac), each the exact bytes inside its bstr wrapper.
    pub blocks: Vec<Vec<u8>>,
}

impl CborItem for Authentication {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let mut items = to_array(value, path)?.into_iter();
        let digest = Wrapped::from_bstr(
            items.next().ok_or_else(|| path.key("digest").missing())?,
            &path.key("digest"),
            ctx,
        )?;
        let mut blocks = Vec::new();
        for (i, it) in items.enumerate() {
            let bpath = path.index(i + 1);
            match it {
                Value::Bytes(b) => {
                    // must be one well-formed CBOR item; the COSE layer parses it further
                    decode_value(&b, &bpath, &ctx.limits)?;
                    blocks.push(b);
                }
                _ => return Err(bpath.ty("bstr-wrapped COSE authentication block")),
            }
        }
        Ok(Authentication { digest, blocks })
    }
    fn to_value(&self) -> Result<Value> {
        let mut a = Vec::with_capacity(1 + self.blocks.len());
        a.push(self.digest.to_bstr_value());
        a.extend(self.blocks.iter().map(|b| Value::Bytes(b.clone())));
        Ok(Value::Array(a))
    }
}

/// Severable members carried in the envelope (after severing they are simply absent).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeveredMembers {
    /// 14: `suit-coswid`.
    pub coswid: Option<Wrapped<Opaque>>,
    /// 15: `suit-dependency-resolution`.
    pub dependency_resolution: Option<Wrapped<CommandSequence>>,
    /// 16: `suit-payload-fetch`.
    pub payload_fetch: Option<Wrapped<CommandSequence>>,
    /// 18: `suit-candidate-verification`.
    pub candidate_verification: Option<Wrapped<CommandSequence>>,
    /// 20: `suit-install`.
    pub install: Option<Wrapped<CommandSequence>>,
    /// 23: `suit-text`.
    pub text: Option<Wrapped<TextMap>>,
}

impl SeveredMembers {
    fn sequence(&self, label: i64) -> Option<&Wrapped<CommandSequence>> {
        match label {
            m::DEPENDENCY_RESOLUTION => self.dependency_resolution.as_ref(),
            m::PAYLOAD_FETCH => self.payload_fetch.as_ref(),
            m::CANDIDATE_VERIFICATION => self.candidate_verification.as_ref(),
            m::INSTALL => self.install.as_ref(),
            _ => None,
        }
    }

    /// (label, name, bstr-wrapped bytes) of every member present.
    fn present(&self) -> Vec<(i64, &'static str, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(w) = &self.coswid {
            out.push((m::COSWID, "coswid", w.wrapped_bytes()));
        }
        for (l, n, w) in [
            (
                m::DEPENDENCY_RESOLUTION,
                "dependency-resolution",
                &self.dependency_resolution,
            ),
            (m::PAYLOAD_FETCH, "payload-fetch", &self.payload_fetch),
            (
                m::CANDIDATE_VERIFICATION,
                "candidate-verification",
                &self.candidate_verification,
            ),
            (m::INSTALL, "install", &self.install),
        ] {
            if let Some(w) = w {
                out.push((l, n, w.wrapped_bytes()));
            }
        }
        if let Some(w) = &self.text {
            out.push((m::TEXT, "text", w.wrapped_bytes()));
        }
        out
    }
}

/// `SUIT_Envelope` (optionally `#6.107`).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Whether the envelope carried (and will be encoded with) tag 107.
    pub tagged: bool,
    /// `suit-authentication-wrapper`.
    pub authentication: Wrapped<Authentication>,
    /// `suit-manifest`.
    pub manifest: Wrapped<Manifest>,
    /// Severable members present in the envelope.
    pub severed: SeveredMembers,
    /// Integrated payloads (and integrated dependencies): text key → bytes, in order.
    pub integrated: Vec<(String, Vec<u8>)>,
    /// Unknown members (e.g. `suit-delegation`), kept as is.
    pub extensions: Vec<(Value, Value)>,
    /// Key order seen when decoding, reproduced on encoding.
    key_order: Vec<Value>,
}

impl Envelope {
    /// An envelope around a manifest and its authentication wrapper.
    pub fn new(authentication: Wrapped<Authentication>, manifest: Wrapped<Manifest>) -> Self {
        Envelope {
            tagged: false,
            authentication,
            manifest,
            severed: SeveredMembers::default(),
            integrated: Vec::new(),
            extensions: Vec::new(),
            key_order: Vec::new(),
        }
    }

    /// An envelope whose authentication wrapper holds only the SHA-256 digest of the
    /// manifest (no COSE block yet).
    pub fn unsigned(manifest: Wrapped<Manifest>) -> Result<Self> {
        let auth = Authentication {
            digest: Wrapped::new(Digest::sha256(&manifest.wrapped_bytes()))?,
            blocks: Vec::new(),
        };
        Ok(Envelope::new(Wrapped::new(auth)?, manifest))
    }

    /// Decodes an envelope with default limits.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_with(bytes, &Limits::default())
    }

    /// Decodes an envelope with explicit limits.
    pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Self> {
        let path = Path::root("envelope");
        let value = decode_value(bytes, &path, limits)?;
        Self::from_value(value, &path, &Ctx::new(*limits))
    }

    /// Encodes the envelope: bstr-wrapped members byte for byte as decoded, map keys in
    /// the decoded order (deterministic order for built envelopes).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.to_cbor()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        self.manifest.value()
    }

    /// The bstr-wrapped manifest, as covered by the digest.
    pub fn manifest_wrapped_bytes(&self) -> Vec<u8> {
        self.manifest.wrapped_bytes()
    }

    /// The encoded `SUIT_Digest`: the detached payload of the COSE blocks (their
    /// Sig_structure wraps it in a bstr).
    pub fn cose_payload(&self) -> &[u8] {
        self.authentication.value().digest.bytes()
    }

    /// Checks that the authentication digest matches the bstr-wrapped manifest.
    pub fn check_digest(&self) -> Result<()> {
        self.authentication
            .value()
            .digest
            .value()
            .check(&self.manifest.wrapped_bytes(), "manifest")
    }

    /// Checks every severable member present in the envelope against the digest the
    /// manifest records for it.
    pub fn check_severed(&self) -> Result<()> {
        let man = self.manifest.value();
        for (label, name, bytes) in self.severed.present() {
            match man.severable_digest(label) {
                Some(d) => d.check(&bytes, name)?,
                None => {
                    return Err(SuitError::Invalid {
                        path: alloc::format!("envelope/{name}"),
                        reason: "envelope member has no digest in the manifest",
                    })
                }
            }
        }
        Ok(())
    }

    /// Checks the manifest digest and all severable members.
    pub fn check_integrity(&self) -> Result<()> {
        self.check_digest()?;
        self.check_severed()
    }

    /// A severable command sequence (payload-fetch 16, install 20, dependency-resolution
    /// 15, candidate-verification 18): inline in the manifest, or from the envelope after
    /// its digest was checked. `Ok(None)` if the manifest has no such member.
    pub fn severable_sequence(&self, label: i64) -> Result<Option<&CommandSequence>> {
        let man = self.manifest.value();
        let (member, name) = match label {
            m::DEPENDENCY_RESOLUTION => (&man.dependency_resolution, "dependency-resolution"),
            m::PAYLOAD_FETCH => (&man.payload_fetch, "payload-fetch"),
            m::CANDIDATE_VERIFICATION => (&man.candidate_verification, "candidate-verification"),
            m::INSTALL => (&man.install, "install"),
            _ => return Ok(None),
        };
        match member {
            None => Ok(None),
            Some(Severable::Inline(w)) => Ok(Some(w.value())),
            Some(Severable::Digest(d)) => match self.severed.sequence(label) {
                Some(w) => {
                    d.check(&w.wrapped_bytes(), name)?;
                    Ok(Some(w.value()))
                }
                None => Err(SuitError::SeveredMissing { what: name.into() }),
            },
        }
    }

    /// The install sequence (inline or severed), see [`Envelope::severable_sequence`].
    pub fn install(&self) -> Result<Option<&CommandSequence>> {
        self.severable_sequence(m::INSTALL)
    }

    /// The image digest the manifest sets for its component: the first `image-digest`
    /// that the shared sequence sets, else the first one the install sequence sets at
    /// top level before fetching (where the compact profile puts it,
    /// [`crate::TaManifestBuilder::compact`]). `None` if neither sets one (or the
    /// install sequence is severed and missing).
    pub fn image_digest(&self) -> Option<&Wrapped<Digest>> {
        fn find(seq: &CommandSequence) -> Option<&Wrapped<Digest>> {
            seq.parameters().find_map(|p| match p {
                crate::params::Parameter::ImageDigest(d) => Some(d),
                _ => None,
            })
        }
        let common = self.manifest.value().common.value();
        if let Some(d) = common
            .shared_sequence
            .as_ref()
            .and_then(|s| find(s.value()))
        {
            return Some(d);
        }
        self.install().ok().flatten().and_then(find)
    }

    /// The integrated payload under `key` (e.g. `"#tc"`).
    pub fn integrated_payload(&self, key: &str) -> Option<&[u8]> {
        self.integrated
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Removes every severable member from the envelope (the manifest keeps the digests).
    pub fn sever(&mut self) {
        self.severed = SeveredMembers::default();
    }
}

impl CborItem for Envelope {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let (tagged, inner) = match value {
            Value::Tag(tag::ENVELOPE, inner) => (true, *inner),
            Value::Tag(_, _) => return Err(path.invalid("unexpected tag (expected 107)")),
            other => (false, other),
        };
        let entries = match inner {
            Value::Map(m) => m,
            _ => return Err(path.ty("map")),
        };
        check_unique(&entries, path)?;
        let key_order = entries.iter().map(|(k, _)| k.clone()).collect();
        let mut auth = None;
        let mut manifest = None;
        let mut severed = SeveredMembers::default();
        let mut integrated = Vec::new();
        let mut extensions = Vec::new();
        for (k, v) in entries {
            match (int_of(&k), k) {
                (Some(e::AUTHENTICATION_WRAPPER), _) => {
                    auth = Some(Wrapped::from_bstr(
                        v,
                        &path.key("authentication-wrapper"),
                        ctx,
                    )?);
                }
                (Some(e::MANIFEST), _) => {
                    manifest = Some(Wrapped::from_bstr(v, &path.key("manifest"), ctx)?);
                }
                (Some(m::COSWID), _) => {
                    severed.coswid = Some(Wrapped::from_bstr(v, &path.key("coswid"), ctx)?);
                }
                (Some(m::DEPENDENCY_RESOLUTION), _) => {
                    severed.dependency_resolution = Some(Wrapped::from_bstr(
                        v,
                        &path.key("dependency-resolution"),
                        ctx,
                    )?);
                }
                (Some(m::PAYLOAD_FETCH), _) => {
                    severed.payload_fetch =
                        Some(Wrapped::from_bstr(v, &path.key("payload-fetch"), ctx)?);
                }
                (Some(m::CANDIDATE_VERIFICATION), _) => {
                    severed.candidate_verification = Some(Wrapped::from_bstr(
                        v,
                        &path.key("candidate-verification"),
                        ctx,
                    )?);
                }
                (Some(m::INSTALL), _) => {
                    severed.install = Some(Wrapped::from_bstr(v, &path.key("install"), ctx)?);
                }
                (Some(m::TEXT), _) => {
                    severed.text = Some(Wrapped::from_bstr(v, &path.key("text"), ctx)?);
                }
                (None, Value::Text(key)) => match v {
                    Value::Bytes(b) => integrated.push((key, b)),
                    _ => return Err(path.text().ty("bstr (integrated payload)")),
                },
                (_, k) => extensions.push((k, v)),
            }
        }
        Ok(Envelope {
            tagged,
            authentication: auth.ok_or_else(|| path.key("authentication-wrapper").missing())?,
            manifest: manifest.ok_or_else(|| path.key("manifest").missing())?,
            severed,
            integrated,
            extensions,
            key_order,
        })
    }

    fn to_value(&self) -> Result<Value> {
        let mut ent = vec![
            (
                int(e::AUTHENTICATION_WRAPPER),
                self.authentication.to_bstr_value(),
            ),
            (int(e::MANIFEST), self.manifest.to_bstr_value()),
        ];
        let s = &self.severed;
        if let Some(w) = &s.coswid {
            ent.push((int(m::COSWID), w.to_bstr_value()));
        }
        for (l, w) in [
            (m::DEPENDENCY_RESOLUTION, &s.dependency_resolution),
            (m::PAYLOAD_FETCH, &s.payload_fetch),
            (m::CANDIDATE_VERIFICATION, &s.candidate_verification),
            (m::INSTALL, &s.install),
        ] {
            if let Some(w) = w {
                ent.push((int(l), w.to_bstr_value()));
            }
        }
        if let Some(w) = &s.text {
            ent.push((int(m::TEXT), w.to_bstr_value()));
        }
        ent.extend(self.extensions.iter().cloned());
        ent.extend(
            self.integrated
                .iter()
                .map(|(k, v)| (Value::Text(k.clone()), Value::Bytes(v.clone()))),
        );
        let mut ent = sort_canonical(ent)?;
        if !self.key_order.is_empty() {
            let pos = |k: &Value| {
                self.key_order
                    .iter()
                    .position(|o| o == k)
                    .unwrap_or(usize::MAX)
            };
            ent.sort_by_key(|(k, _)| pos(k));
        }
        let map = Value::Map(ent);
        Ok(if self.tagged {
            Value::Tag(tag::ENVELOPE, crate::cbor::boxed(map))
        } else {
            map
        })
    }
}
