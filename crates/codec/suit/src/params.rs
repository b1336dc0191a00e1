//! `$$SUIT_Parameters`: typed parameters, unknown and custom ones preserved.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::cbor::{
    boxed, check_unique, int, int_of, sort_canonical, to_array, to_bool, to_bytes, to_int, to_map,
    to_text, to_uint, uint, uuid, CborItem, Ctx, Path, Value, Wrapped,
};
use crate::digest::Digest;
use crate::error::Result;
use crate::labels::{parameter as p, tag};

/// A vendor identifier: an RFC 4122 UUID or a `cbor-pen` (tag 112) OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorId {
    /// 16-byte UUID (usually a v5 UUID over the vendor's domain name).
    Uuid([u8; 16]),
    /// Private Enterprise Number as the bytes of a relative OID (`#6.112(bstr)`).
    Pen(Vec<u8>),
}

impl VendorId {
    /// A vendor identified by its IANA Private Enterprise Number, as SUIT's `cbor-pen`
    /// (`#6.112(bstr)`, RFC 9090): the bytes of the relative OID with the single arc
    /// `number` (base 128, most significant group first, the high bit set on every
    /// byte but the last). PEN 32473 is `81 FD 59`: 6 bytes encoded, against 17 for a
    /// UUID.
    pub fn pen(number: u64) -> VendorId {
        let mut groups = Vec::new();
        let mut n = number;
        loop {
            groups.push((n & 0x7f) as u8);
            n >>= 7;
            if n == 0 {
                break;
            }
        }
        groups.reverse();
        let last = groups.len() - 1;
        for g in &mut groups[..last] {
            *g |= 0x80;
        }
        VendorId::Pen(groups)
    }
}

/// `SUIT_Parameter_Version_Match = [comparison-type, [+int]]` (update-management).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMatch {
    /// 1 greater, 2 greater-equal, 3 equal, 4 lesser-equal, 5 lesser.
    pub comparison: i64,
    /// Version components.
    pub value: Vec<i64>,
}

impl CborItem for VersionMatch {
    fn from_value(value: Value, path: &Path<'_>, _ctx: &Ctx) -> Result<Self> {
        let a = to_array(value, path)?;
        let [cmp, val]: [Value; 2] = a
            .try_into()
            .map_err(|_| path.invalid("version match must have 2 elements"))?;
        let comparison = to_int(cmp, &path.key("comparison-type"))?;
        let vpath = path.key("comparison-value");
        let mut value = Vec::new();
        for (i, v) in to_array(val, &vpath)?.into_iter().enumerate() {
            value.push(to_int(v, &vpath.index(i))?);
        }
        Ok(VersionMatch { comparison, value })
    }
    fn to_value(&self) -> Result<Value> {
        Ok(Value::Array(vec![
            int(self.comparison),
            Value::Array(self.value.iter().map(|v| int(*v)).collect()),
        ]))
    }
}

/// One SUIT parameter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Parameter {
    /// 1: vendor identifier.
    VendorId(VendorId),
    /// 2: class identifier (UUID).
    ClassId([u8; 16]),
    /// 3: image digest (`bstr .cbor SUIT_Digest`).
    ImageDigest(Wrapped<Digest>),
    /// 4: use-before timestamp (update-management).
    UseBefore(u64),
    /// 5: component slot.
    ComponentSlot(u64),
    /// 12: strict order.
    StrictOrder(bool),
    /// 13: soft failure.
    SoftFailure(bool),
    /// 14: image size.
    ImageSize(u64),
    /// 18: content (payload bytes for `write`).
    Content(Vec<u8>),
    /// 19: encryption info: the bytes of a `SUIT_Encryption_Info` (tagged COSE_Encrypt /
    /// COSE_Encrypt0), kept as the bstr's contents for the COSE layer.
    EncryptionInfo(Vec<u8>),
    /// 21: URI (a `#key` URI names an integrated payload).
    Uri(String),
    /// 22: source component index.
    SourceComponent(u64),
    /// 23: invoke arguments.
    InvokeArgs(Vec<u8>),
    /// 24: device identifier (UUID).
    DeviceId([u8; 16]),
    /// 25: fetch arguments.
    FetchArguments(Vec<u8>),
    /// 26: minimum battery (update-management).
    MinimumBattery(u64),
    /// 27: update priority (update-management).
    UpdatePriority(i64),
    /// 28: version match (update-management, `bstr .cbor`).
    Version(Wrapped<VersionMatch>),
    /// 29: wait info (`bstr .cbor SUIT_Wait_Event`, raw contents).
    WaitInfo(Vec<u8>),
    /// 30: component metadata (`bstr .cbor SUIT_Component_Metadata`, raw contents).
    ComponentMetadata(Vec<u8>),
    /// A custom (negative) or unknown parameter, kept as is.
    Other {
        /// Parameter number.
        label: i64,
        /// Its value.
        value: Value,
    },
}

impl Parameter {
    /// The parameter number.
    pub fn label(&self) -> i64 {
        match self {
            Parameter::VendorId(_) => p::VENDOR_IDENTIFIER,
            Parameter::ClassId(_) => p::CLASS_IDENTIFIER,
            Parameter::ImageDigest(_) => p::IMAGE_DIGEST,
            Parameter::UseBefore(_) => p::USE_BEFORE,
            Parameter::ComponentSlot(_) => p::COMPONENT_SLOT,
            Parameter::StrictOrder(_) => p::STRICT_ORDER,
            Parameter::SoftFailure(_) => p::SOFT_FAILURE,
            Parameter::ImageSize(_) => p::IMAGE_SIZE,
            Parameter::Content(_) => p::CONTENT,
            Parameter::EncryptionInfo(_) => p::ENCRYPTION_INFO,
            Parameter::Uri(_) => p::URI,
            Parameter::SourceComponent(_) => p::SOURCE_COMPONENT,
            Parameter::InvokeArgs(_) => p::INVOKE_ARGS,
            Parameter::DeviceId(_) => p::DEVICE_IDENTIFIER,
            Parameter::FetchArguments(_) => p::FETCH_ARGUMENTS,
            Parameter::MinimumBattery(_) => p::MINIMUM_BATTERY,
            Parameter::UpdatePriority(_) => p::UPDATE_PRIORITY,
            Parameter::Version(_) => p::VERSION,
            Parameter::WaitInfo(_) => p::WAIT_INFO,
            Parameter::ComponentMetadata(_) => p::COMPONENT_METADATA,
            Parameter::Other { label, .. } => *label,
        }
    }

    /// Decodes the value of parameter `label`.
    pub fn from_label_value(label: i64, v: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        Ok(match label {
            p::VENDOR_IDENTIFIER => Parameter::VendorId(match v {
                Value::Tag(tag::PEN, inner) => VendorId::Pen(to_bytes(*inner, path)?),
                other => VendorId::Uuid(uuid(other, path)?),
            }),
            p::CLASS_IDENTIFIER => Parameter::ClassId(uuid(v, path)?),
            p::IMAGE_DIGEST => Parameter::ImageDigest(Wrapped::from_bstr(v, path, ctx)?),
            p::USE_BEFORE => Parameter::UseBefore(to_uint(v, path)?),
            p::COMPONENT_SLOT => Parameter::ComponentSlot(to_uint(v, path)?),
            p::STRICT_ORDER => Parameter::StrictOrder(to_bool(v, path)?),
            p::SOFT_FAILURE => Parameter::SoftFailure(to_bool(v, path)?),
            p::IMAGE_SIZE => Parameter::ImageSize(to_uint(v, path)?),
            p::CONTENT => Parameter::Content(to_bytes(v, path)?),
            p::ENCRYPTION_INFO => Parameter::EncryptionInfo(to_bytes(v, path)?),
            p::URI => Parameter::Uri(to_text(v, path)?),
            p::SOURCE_COMPONENT => Parameter::SourceComponent(to_uint(v, path)?),
            p::INVOKE_ARGS => Parameter::InvokeArgs(to_bytes(v, path)?),
            p::DEVICE_IDENTIFIER => Parameter::DeviceId(uuid(v, path)?),
            p::FETCH_ARGUMENTS => Parameter::FetchArguments(to_bytes(v, path)?),
            p::MINIMUM_BATTERY => Parameter::MinimumBattery(to_uint(v, path)?),
            p::UPDATE_PRIORITY => Parameter::UpdatePriority(to_int(v, path)?),
            p::VERSION => Parameter::Version(Wrapped::from_bstr(v, path, ctx)?),
            p::WAIT_INFO => Parameter::WaitInfo(to_bytes(v, path)?),
            p::COMPONENT_METADATA => Parameter::ComponentMetadata(to_bytes(v, path)?),
            label => Parameter::Other { label, value: v },
        })
    }

    /// The parameter's value as CBOR.
    pub fn value_cbor(&self) -> Value {
        match self {
            Parameter::VendorId(VendorId::Uuid(u)) => Value::Bytes(u.to_vec()),
            Parameter::VendorId(VendorId::Pen(b)) => {
                Value::Tag(tag::PEN, boxed(Value::Bytes(b.clone())))
            }
            Parameter::ClassId(u) | Parameter::DeviceId(u) => Value::Bytes(u.to_vec()),
            Parameter::ImageDigest(w) => w.to_bstr_value(),
            Parameter::Version(w) => w.to_bstr_value(),
            Parameter::UseBefore(n)
            | Parameter::ComponentSlot(n)
            | Parameter::ImageSize(n)
            | Parameter::SourceComponent(n)
            | Parameter::MinimumBattery(n) => uint(*n),
            Parameter::UpdatePriority(n) => int(*n),
            Parameter::StrictOrder(b) | Parameter::SoftFailure(b) => Value::Bool(*b),
            Parameter::Content(b)
            | Parameter::EncryptionInfo(b)
            | Parameter::InvokeArgs(b)
            | Parameter::FetchArguments(b)
            | Parameter::WaitInfo(b)
            | Parameter::ComponentMetadata(b) => Value::Bytes(b.clone()),
            Parameter::Uri(s) => Value::Text(s.clone()),
            Parameter::Other { value, .. } => value.clone(),
        }
    }
}

/// A parameter map (`{+ $$SUIT_Parameters}`), in decoded order; encoded in
/// deterministic key order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters(pub Vec<Parameter>);

impl Parameters {
    /// The parameter with number `label`, if present.
    pub fn get(&self, label: i64) -> Option<&Parameter> {
        self.0.iter().find(|p| p.label() == label)
    }
    /// Iterates over the parameters.
    pub fn iter(&self) -> core::slice::Iter<'_, Parameter> {
        self.0.iter()
    }
    /// The URI parameter, if present.
    pub fn uri(&self) -> Option<&str> {
        self.0.iter().find_map(|p| match p {
            Parameter::Uri(u) => Some(u.as_str()),
            _ => None,
        })
    }
    /// The image digest parameter, if present.
    pub fn image_digest(&self) -> Option<&Digest> {
        self.0.iter().find_map(|p| match p {
            Parameter::ImageDigest(d) => Some(d.value()),
            _ => None,
        })
    }
    /// The image size parameter, if present.
    pub fn image_size(&self) -> Option<u64> {
        self.0.iter().find_map(|p| match p {
            Parameter::ImageSize(n) => Some(*n),
            _ => None,
        })
    }
}

impl CborItem for Parameters {
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let entries = to_map(value, path)?;
        check_unique(&entries, path)?;
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let label = int_of(&k).ok_or_else(|| path.ty("integer parameter label"))?;
            out.push(Parameter::from_label_value(
                label,
                v,
                &path.label(label),
                ctx,
            )?);
        }
        Ok(Parameters(out))
    }
    fn to_value(&self) -> Result<Value> {
        let entries = self
            .0
            .iter()
            .map(|p| (int(p.label()), p.value_cbor()))
            .collect();
        Ok(Value::Map(sort_canonical(entries)?))
    }
}

/// Decodes a map `{+ uint => T}` helper used by override-multiple / copy-params.
pub(crate) fn uint_keyed<T>(
    value: Value,
    path: &Path<'_>,
    mut f: impl FnMut(Value, &Path<'_>) -> Result<T>,
) -> Result<Vec<(u64, T)>> {
    let entries = to_map(value, path)?;
    check_unique(&entries, path)?;
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let idx = to_uint(k, path)?;
        let label = i64::try_from(idx).unwrap_or(i64::MAX);
        out.push((idx, f(v, &path.label(label))?));
    }
    Ok(out)
}

/// Decodes `[+ int]`.
pub(crate) fn int_list(value: Value, path: &Path<'_>) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for (i, v) in to_array(value, path)?.into_iter().enumerate() {
        out.push(to_int(v, &path.index(i))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pen_is_the_relative_oid_of_the_number() {
        assert_eq!(VendorId::pen(32473), VendorId::Pen(vec![0x81, 0xFD, 0x59]));
        assert_eq!(VendorId::pen(0), VendorId::Pen(vec![0x00]));
        assert_eq!(VendorId::pen(127), VendorId::Pen(vec![0x7f]));
        assert_eq!(VendorId::pen(128), VendorId::Pen(vec![0x81, 0x00]));
        // Encoded as #6.112(bstr) and decoded back to the same identifier.
        let p = Parameter::VendorId(VendorId::pen(32473));
        let v = p.value_cbor();
        assert_eq!(
            v,
            Value::Tag(tag::PEN, boxed(Value::Bytes(vec![0x81, 0xFD, 0x59])))
        );
        let ctx = Ctx::new(crate::cbor::Limits::default());
        let back = Parameter::from_label_value(p.label(), v, &Path::root("t"), &ctx).unwrap();
        assert_eq!(back, p);
    }
}
