//! `SUIT_Manifest`, `SUIT_Common`, dependencies, severable members and the text map.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cbor::{
    check_unique, int, int_of, sort_canonical, to_array, to_map, to_text, to_uint, uint, CborItem,
    Ctx, Opaque, Path, Value, Wrapped,
};
use crate::command::CommandSequence;
use crate::digest::{ComponentId, Digest};
use crate::error::Result;
use crate::labels::{common as lc, manifest as m};
use crate::params::int_list;

/// A severable member inside the manifest: either its digest (the member itself travels
/// in the envelope, or was severed) or the member inline.
#[derive(Debug, Clone, PartialEq)]
pub enum Severable<T> {
    /// `SUIT_Digest` of the bstr-wrapped member.
    Digest(Digest),
    /// The member itself (`bstr .cbor T`).
    Inline(Wrapped<T>),
}

impl<T: CborItem> Severable<T> {
    fn decode(v: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        match v {
            Value::Array(_) => Ok(Severable::Digest(Digest::from_value(v, path, ctx)?)),
            Value::Bytes(_) => Ok(Severable::Inline(Wrapped::from_bstr(v, path, ctx)?)),
            _ => Err(path.ty("SUIT_Digest or bstr-wrapped member")),
        }
    }
    fn to_value(&self) -> Result<Value> {
        match self {
            Severable::Digest(d) => d.to_value(),
            Severable::Inline(w) => Ok(w.to_bstr_value()),
        }
    }
    /// The inline member, if not severed.
    pub fn inline(&self) -> Option<&T> {
        match self {
            Severable::Inline(w) => Some(w.value()),
            Severable::Digest(_) => None,
        }
    }
}

/// Metadata of one dependency (trust-domains `SUIT_Dependency_Metadata`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DependencyMetadata {
    /// `suit-dependency-prefix`: where the dependency's components live.
    pub prefix: Option<ComponentId>,
    /// Unknown members, kept.
    pub extensions: Vec<(Value, Value)>,
}

/// `SUIT_Common`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Common {
    /// `suit-dependencies`: component index → metadata (trust-domains).
    pub dependencies: Option<Vec<(u64, DependencyMetadata)>>,
    /// `suit-components`.
    pub components: Option<Vec<ComponentId>>,
    /// `suit-shared-sequence`.
    pub shared_sequence: Option<Wrapped<CommandSequence>>,
    /// Unknown members, kept.
    pub extensions: Vec<(Value, Value)>,
}

impl CborItem for Common {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let entries = to_map(value, path)?;
        check_unique(&entries, path)?;
        let mut out = Common::default();
        for (k, v) in entries {
            match int_of(&k) {
                Some(lc::DEPENDENCIES) => {
                    let dpath = path.key("dependencies");
                    let map = to_map(v, &dpath)?;
                    check_unique(&map, &dpath)?;
                    let mut deps = Vec::with_capacity(map.len());
                    for (dk, dv) in map {
                        let idx = to_uint(dk, &dpath)?;
                        let ipath = dpath.label(i64::try_from(idx).unwrap_or(i64::MAX));
                        let meta = to_map(dv, &ipath)?;
                        check_unique(&meta, &ipath)?;
                        let mut md = DependencyMetadata::default();
                        for (mk, mv) in meta {
                            if int_of(&mk) == Some(lc::DEPENDENCY_PREFIX) {
                                md.prefix = Some(ComponentId::from_value(
                                    mv,
                                    &ipath.key("dependency-prefix"),
                                    ctx,
                                )?);
                            } else {
                                md.extensions.push((mk, mv));
                            }
                        }
                        deps.push((idx, md));
                    }
                    out.dependencies = Some(deps);
                }
                Some(lc::COMPONENTS) => {
                    let cpath = path.key("components");
                    let items = to_array(v, &cpath)?;
                    let mut comps = Vec::with_capacity(items.len());
                    for (i, c) in items.into_iter().enumerate() {
                        comps.push(ComponentId::from_value(c, &cpath.index(i), ctx)?);
                    }
                    out.components = Some(comps);
                }
                Some(lc::SHARED_SEQUENCE) => {
                    out.shared_sequence =
                        Some(Wrapped::from_bstr(v, &path.key("shared-sequence"), ctx)?);
                }
                _ => out.extensions.push((k, v)),
            }
        }
        Ok(out)
    }
    fn to_value(&self) -> Result<Value> {
        let mut e = Vec::new();
        if let Some(deps) = &self.dependencies {
            let mut dm = Vec::with_capacity(deps.len());
            for (idx, md) in deps {
                let mut inner = Vec::new();
                if let Some(p) = &md.prefix {
                    inner.push((int(lc::DEPENDENCY_PREFIX), p.to_value()?));
                }
                inner.extend(md.extensions.iter().cloned());
                dm.push((uint(*idx), Value::Map(sort_canonical(inner)?)));
            }
            e.push((int(lc::DEPENDENCIES), Value::Map(sort_canonical(dm)?)));
        }
        if let Some(comps) = &self.components {
            let mut a = Vec::with_capacity(comps.len());
            for c in comps {
                a.push(c.to_value()?);
            }
            e.push((int(lc::COMPONENTS), Value::Array(a)));
        }
        if let Some(s) = &self.shared_sequence {
            e.push((int(lc::SHARED_SEQUENCE), s.to_bstr_value()));
        }
        e.extend(self.extensions.iter().cloned());
        Ok(Value::Map(sort_canonical(e)?))
    }
}

/// Text for one language (`SUIT_Text_LMap`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextLMap {
    /// Manifest-level text keys (1 manifest-description … 4 yaml-source).
    pub text: Vec<(i64, String)>,
    /// Per-component text (1 vendor-name … 8 current-version).
    pub components: Vec<(ComponentId, Vec<(i64, String)>)>,
    /// Members of other shapes, kept.
    pub extensions: Vec<(Value, Value)>,
}

/// `SUIT_Text_Map = {+ language-tag => SUIT_Text_LMap}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextMap(pub Vec<(String, TextLMap)>);

fn text_keys(v: Value, path: &Path<'_>) -> Result<Vec<(i64, String)>> {
    let map = to_map(v, path)?;
    check_unique(&map, path)?;
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let l = int_of(&k).ok_or_else(|| path.ty("integer text key"))?;
        out.push((l, to_text(v, &path.label(l))?));
    }
    Ok(out)
}

impl CborItem for TextMap {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let langs = to_map(value, path)?;
        check_unique(&langs, path)?;
        let mut out = Vec::with_capacity(langs.len());
        for (lang, lmap) in langs {
            let lpath = path.text();
            let lang = to_text(lang, &lpath)?;
            let entries = to_map(lmap, &lpath)?;
            check_unique(&entries, &lpath)?;
            let mut l = TextLMap::default();
            for (k, v) in entries {
                match (&k, int_of(&k)) {
                    (_, Some(label)) => l.text.push((label, to_text(v, &lpath.label(label))?)),
                    (Value::Array(_), None) => {
                        let cpath = lpath.key("component");
                        let cid = ComponentId::from_value(k, &cpath, ctx)?;
                        l.components.push((cid, text_keys(v, &cpath)?));
                    }
                    _ => l.extensions.push((k, v)),
                }
            }
            out.push((lang, l));
        }
        Ok(TextMap(out))
    }
    fn to_value(&self) -> Result<Value> {
        let mut langs = Vec::with_capacity(self.0.len());
        for (lang, l) in &self.0 {
            let mut e: Vec<(Value, Value)> = l
                .text
                .iter()
                .map(|(k, v)| (int(*k), Value::Text(v.clone())))
                .collect();
            for (cid, keys) in &l.components {
                let inner = keys
                    .iter()
                    .map(|(k, v)| (int(*k), Value::Text(v.clone())))
                    .collect();
                e.push((cid.to_value()?, Value::Map(sort_canonical(inner)?)));
            }
            e.extend(l.extensions.iter().cloned());
            langs.push((Value::Text(lang.clone()), Value::Map(sort_canonical(e)?)));
        }
        Ok(Value::Map(sort_canonical(langs)?))
    }
}

/// `SUIT_Parameter_Version_Match` value list used by `suit-set-version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionValue(pub Vec<i64>);

impl CborItem for VersionValue {
    fn from_value(value: Value, path: &Path<'_>, _ctx: &Ctx) -> Result<Self> {
        Ok(VersionValue(int_list(value, path)?))
    }
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Array(self.0.iter().map(|v| int(*v)).collect()))
    }
}

/// `SUIT_Manifest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `suit-manifest-version` (must be 1).
    pub version: u64,
    /// `suit-manifest-sequence-number` (anti-rollback).
    pub sequence_number: u64,
    /// `suit-common`.
    pub common: Wrapped<Common>,
    /// `suit-reference-uri`.
    pub reference_uri: Option<String>,
    /// `suit-manifest-component-id` (trust-domains): where this manifest is stored.
    pub manifest_component_id: Option<ComponentId>,
    /// `suit-set-version` (update-management).
    pub set_version: Option<Wrapped<VersionValue>>,
    /// `suit-validate`.
    pub validate: Option<Wrapped<CommandSequence>>,
    /// `suit-load`.
    pub load: Option<Wrapped<CommandSequence>>,
    /// `suit-invoke`.
    pub invoke: Option<Wrapped<CommandSequence>>,
    /// `suit-uninstall` (trust-domains).
    pub uninstall: Option<Wrapped<CommandSequence>>,
    /// `suit-dependency-resolution` (trust-domains, severable).
    pub dependency_resolution: Option<Severable<CommandSequence>>,
    /// `suit-payload-fetch` (severable).
    pub payload_fetch: Option<Severable<CommandSequence>>,
    /// `suit-candidate-verification` (trust-domains, severable).
    pub candidate_verification: Option<Severable<CommandSequence>>,
    /// `suit-install` (severable).
    pub install: Option<Severable<CommandSequence>>,
    /// `suit-text` (severable).
    pub text: Option<Severable<TextMap>>,
    /// `suit-coswid` (update-management, severable).
    pub coswid: Option<Severable<Opaque>>,
    /// Unknown members (e.g. install under the pre-20 label 17), kept as is.
    pub extensions: Vec<(Value, Value)>,
}

impl Manifest {
    /// A minimal manifest (version 1) around a common block.
    pub fn new(sequence_number: u64, common: Wrapped<Common>) -> Self {
        Manifest {
            version: 1,
            sequence_number,
            common,
            reference_uri: None,
            manifest_component_id: None,
            set_version: None,
            validate: None,
            load: None,
            invoke: None,
            uninstall: None,
            dependency_resolution: None,
            payload_fetch: None,
            candidate_verification: None,
            install: None,
            text: None,
            coswid: None,
            extensions: Vec::new(),
        }
    }

    /// The components listed in common (empty if absent).
    pub fn components(&self) -> &[ComponentId] {
        self.common.value().components.as_deref().unwrap_or(&[])
    }

    /// The digest recorded for severable member `label`, if the manifest holds a digest.
    pub fn severable_digest(&self, label: i64) -> Option<&Digest> {
        fn d(s: &Option<Severable<CommandSequence>>) -> Option<&Digest> {
            match s {
                Some(Severable::Digest(d)) => Some(d),
                _ => None,
            }
        }
        match label {
            m::DEPENDENCY_RESOLUTION => d(&self.dependency_resolution),
            m::PAYLOAD_FETCH => d(&self.payload_fetch),
            m::CANDIDATE_VERIFICATION => d(&self.candidate_verification),
            m::INSTALL => d(&self.install),
            m::TEXT => match &self.text {
                Some(Severable::Digest(d)) => Some(d),
                _ => None,
            },
            m::COSWID => match &self.coswid {
                Some(Severable::Digest(d)) => Some(d),
                _ => None,
            },
            _ => None,
        }
    }
}

impl CborItem for Manifest {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let entries = to_map(value, path)?;
        check_unique(&entries, path)?;
        let mut version = None;
        let mut seq = None;
        let mut common = None;
        let mut man = Manifest::new(0, Wrapped::new(Common::default())?);
        for (k, v) in entries {
            match int_of(&k) {
                Some(m::VERSION) => {
                    let p = path.key("manifest-version");
                    let ver = to_uint(v, &p)?;
                    if ver != 1 {
                        return Err(p.invalid("unsupported manifest version (must be 1)"));
                    }
                    version = Some(ver);
                }
                Some(m::SEQUENCE_NUMBER) => {
                    seq = Some(to_uint(v, &path.key("sequence-number"))?);
                }
                Some(m::COMMON) => common = Some(Wrapped::from_bstr(v, &path.key("common"), ctx)?),
                Some(m::REFERENCE_URI) => {
                    man.reference_uri = Some(to_text(v, &path.key("reference-uri"))?);
                }
                Some(m::MANIFEST_COMPONENT_ID) => {
                    man.manifest_component_id = Some(ComponentId::from_value(
                        v,
                        &path.key("manifest-component-id"),
                        ctx,
                    )?);
                }
                Some(m::SET_VERSION) => {
                    man.set_version = Some(Wrapped::from_bstr(v, &path.key("set-version"), ctx)?);
                }
                Some(m::VALIDATE) => {
                    man.validate = Some(Wrapped::from_bstr(v, &path.key("validate"), ctx)?);
                }
                Some(m::LOAD) => man.load = Some(Wrapped::from_bstr(v, &path.key("load"), ctx)?),
                Some(m::INVOKE) => {
                    man.invoke = Some(Wrapped::from_bstr(v, &path.key("invoke"), ctx)?);
                }
                Some(m::UNINSTALL) => {
                    man.uninstall = Some(Wrapped::from_bstr(v, &path.key("uninstall"), ctx)?);
                }
                Some(m::DEPENDENCY_RESOLUTION) => {
                    man.dependency_resolution = Some(Severable::decode(
                        v,
                        &path.key("dependency-resolution"),
                        ctx,
                    )?);
                }
                Some(m::PAYLOAD_FETCH) => {
                    man.payload_fetch =
                        Some(Severable::decode(v, &path.key("payload-fetch"), ctx)?);
                }
                Some(m::CANDIDATE_VERIFICATION) => {
                    man.candidate_verification = Some(Severable::decode(
                        v,
                        &path.key("candidate-verification"),
                        ctx,
                    )?);
                }
                Some(m::INSTALL) => {
                    man.install = Some(Severable::decode(v, &path.key("install"), ctx)?);
                }
                Some(m::TEXT) => man.text = Some(Severable::decode(v, &path.key("text"), ctx)?),
                Some(m::COSWID) => {
                    man.coswid = Some(Severable::decode(v, &path.key("coswid"), ctx)?);
                }
                _ => man.extensions.push((k, v)),
            }
        }
        man.version = version.ok_or_else(|| path.key("manifest-version").missing())?;
        man.sequence_number = seq.ok_or_else(|| path.key("sequence-number").missing())?;
        man.common = common.ok_or_else(|| path.key("common").missing())?;
        Ok(man)
    }

    fn to_value(&self) -> Result<Value> {
        let mut e = vec![
            (int(m::VERSION), uint(self.version)),
            (int(m::SEQUENCE_NUMBER), uint(self.sequence_number)),
            (int(m::COMMON), self.common.to_bstr_value()),
        ];
        if let Some(u) = &self.reference_uri {
            e.push((int(m::REFERENCE_URI), Value::Text(u.clone())));
        }
        if let Some(c) = &self.manifest_component_id {
            e.push((int(m::MANIFEST_COMPONENT_ID), c.to_value()?));
        }
        let wrapped = [
            (
                m::SET_VERSION,
                self.set_version.as_ref().map(Wrapped::to_bstr_value),
            ),
            (
                m::VALIDATE,
                self.validate.as_ref().map(Wrapped::to_bstr_value),
            ),
            (m::LOAD, self.load.as_ref().map(Wrapped::to_bstr_value)),
            (m::INVOKE, self.invoke.as_ref().map(Wrapped::to_bstr_value)),
            (
                m::UNINSTALL,
                self.uninstall.as_ref().map(Wrapped::to_bstr_value),
            ),
        ];
        for (l, v) in wrapped {
            if let Some(v) = v {
                e.push((int(l), v));
            }
        }
        let sev = [
            (m::DEPENDENCY_RESOLUTION, &self.dependency_resolution),
            (m::PAYLOAD_FETCH, &self.payload_fetch),
            (m::CANDIDATE_VERIFICATION, &self.candidate_verification),
            (m::INSTALL, &self.install),
        ];
        for (l, s) in sev {
            if let Some(s) = s {
                e.push((int(l), s.to_value()?));
            }
        }
        if let Some(t) = &self.text {
            e.push((int(m::TEXT), t.to_value()?));
        }
        if let Some(c) = &self.coswid {
            e.push((int(m::COSWID), c.to_value()?));
        }
        e.extend(self.extensions.iter().cloned());
        Ok(Value::Map(sort_canonical(e)?))
    }
}
