//! CBOR plumbing on top of ciborium: limits, field paths, the codec trait and the
//! bstr-wrapped value type that keeps its original bytes.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

pub use ciborium::value::Value;

use crate::error::{Result, SuitError};

/// Decoding limits; every decoder in this crate enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted by one top-level decode call (bytes).
    pub max_input_len: usize,
    /// Deepest CBOR nesting inside one encoded item (ciborium recursion limit).
    pub max_cbor_depth: usize,
    /// Deepest chain of bstr-wrapped items (envelope → manifest → sequence → try-each …).
    pub max_wrap_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_len: 16 * 1024 * 1024,
            max_cbor_depth: 32,
            max_wrap_depth: 12,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Seg {
    Name(&'static str),
    Label(i64),
    Index(usize),
    Text,
}

/// A field path (e.g. `envelope/manifest/common/shared-sequence[2]`) used in errors.
#[derive(Clone, Copy, Debug)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg,
}

impl<'a> Path<'a> {
    /// A root path segment.
    pub const fn root(name: &'static str) -> Path<'static> {
        Path {
            parent: None,
            seg: Seg::Name(name),
        }
    }
    /// Child named `name`.
    pub fn key(&'a self, name: &'static str) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Name(name),
        }
    }
    /// Child with a numeric label (unknown map key, command number).
    pub fn label(&'a self, label: i64) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Label(label),
        }
    }
    /// Array element `i`.
    pub fn index(&'a self, i: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
    /// Child under a text key.
    pub fn text(&'a self) -> Path<'a> {
        Path {
            parent: Some(self),
            seg: Seg::Text,
        }
    }
    /// Renders the path.
    pub fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for (i, seg) in segs.iter().rev().enumerate() {
            match seg {
                Seg::Name(n) => {
                    if i > 0 {
                        out.push('/');
                    }
                    out.push_str(n);
                }
                Seg::Label(l) => {
                    let _ = write!(out, "/{l}");
                }
                Seg::Index(ix) => {
                    let _ = write!(out, "[{ix}]");
                }
                Seg::Text => out.push_str("/<text>"),
            }
        }
        out
    }

    pub(crate) fn ty(&self, expected: &'static str) -> SuitError {
        SuitError::Type {
            path: self.render(),
            expected,
        }
    }
    pub(crate) fn invalid(&self, reason: &'static str) -> SuitError {
        SuitError::Invalid {
            path: self.render(),
            reason,
        }
    }
    pub(crate) fn missing(&self) -> SuitError {
        SuitError::Missing {
            path: self.render(),
        }
    }
    pub(crate) fn duplicate(&self) -> SuitError {
        SuitError::Duplicate {
            path: self.render(),
        }
    }
}

/// Decoding context: limits and the current bstr-wrapping depth.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Limits in force.
    pub limits: Limits,
    depth: usize,
}

impl Ctx {
    /// A fresh context.
    pub fn new(limits: Limits) -> Self {
        Ctx { limits, depth: 0 }
    }
    fn deeper(&self, path: &Path<'_>) -> Result<Ctx> {
        let depth = self.depth + 1;
        if depth > self.limits.max_wrap_depth {
            return Err(SuitError::TooDeep {
                path: path.render(),
                max: self.limits.max_wrap_depth,
            });
        }
        Ok(Ctx {
            limits: self.limits,
            depth,
        })
    }
}

/// Decodes exactly one CBOR item from `bytes` (no trailing bytes) within the limits.
pub fn decode_value(bytes: &[u8], path: &Path<'_>, limits: &Limits) -> Result<Value> {
    if bytes.len() > limits.max_input_len {
        return Err(SuitError::TooLarge {
            path: path.render(),
            len: bytes.len(),
            max: limits.max_input_len,
        });
    }
    let mut rest = bytes;
    let value: Value =
        ciborium::de::from_reader_with_recursion_limit(&mut rest, limits.max_cbor_depth).map_err(
            |e| match e {
                ciborium::de::Error::RecursionLimitExceeded => SuitError::TooDeep {
                    path: path.render(),
                    max: limits.max_cbor_depth,
                },
                ciborium::de::Error::Io(_) => SuitError::Cbor {
                    path: path.render(),
                    offset: None,
                    msg: "unexpected end of input".to_string(),
                },
                ciborium::de::Error::Syntax(off) => SuitError::Cbor {
                    path: path.render(),
                    offset: Some(off),
                    msg: "syntax error".to_string(),
                },
                ciborium::de::Error::Semantic(off, msg) => SuitError::Cbor {
                    path: path.render(),
                    offset: off,
                    msg,
                },
            },
        )?;
    if !rest.is_empty() {
        return Err(SuitError::TrailingBytes {
            path: path.render(),
            len: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes a value (definite lengths, shortest integer and length headers).
pub fn encode_value(value: &Value, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|_| SuitError::Encode {
        path: what.to_string(),
    })?;
    Ok(out)
}

/// Sorts map entries in the deterministic order of RFC 8949 §4.2.1 (bytewise order of
/// the encoded keys).
pub fn sort_canonical(entries: Vec<(Value, Value)>) -> Result<Vec<(Value, Value)>> {
    let mut keyed: Vec<(Vec<u8>, (Value, Value))> = Vec::with_capacity(entries.len());
    for e in entries {
        keyed.push((encode_value(&e.0, "map key")?, e));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed.into_iter().map(|(_, e)| e).collect())
}

/// The codec trait: conversion between a typed value and a ciborium [`Value`].
pub trait CborItem: Sized {
    /// Builds the typed value from a decoded CBOR value.
    fn from_value(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self>;
    /// Converts to a CBOR value (deterministic for values built in code).
    fn to_value(&self) -> Result<Value>;

    /// Decodes from bytes with default limits.
    fn from_cbor(bytes: &[u8]) -> Result<Self> {
        Self::from_cbor_with(bytes, &Limits::default())
    }
    /// Decodes from bytes with the given limits.
    fn from_cbor_with(bytes: &[u8], limits: &Limits) -> Result<Self> {
        let path = Path::root(
            core::any::type_name::<Self>()
                .rsplit("::")
                .next()
                .unwrap_or("item"),
        );
        let value = decode_value(bytes, &path, limits)?;
        Self::from_value(value, &path, &Ctx::new(*limits))
    }
    /// Encodes to bytes.
    fn to_cbor(&self) -> Result<Vec<u8>> {
        encode_value(&self.to_value()?, core::any::type_name::<Self>())
    }
}

/// A `bstr .cbor T` member: the typed value together with the exact bytes it was
/// decoded from (or deterministically encoded to), so re-encoding and digests use the
/// original bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped<T> {
    value: T,
    bytes: Vec<u8>,
}

impl<T: CborItem> Wrapped<T> {
    /// Wraps a value built in code, encoding it deterministically.
    pub fn new(value: T) -> Result<Self> {
        let bytes = value.to_cbor()?;
        Ok(Wrapped { value, bytes })
    }
    /// Decodes the inner bytes (the bstr contents) with default limits.
    pub fn from_inner_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::decode_inner(bytes, &Path::root("wrapped"), &Ctx::new(Limits::default()))
    }
    pub(crate) fn decode_inner(bytes: Vec<u8>, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        let ctx = ctx.deeper(path)?;
        let value = decode_value(&bytes, path, &ctx.limits)?;
        let value = T::from_value(value, path, &ctx)?;
        Ok(Wrapped { value, bytes })
    }
    /// Decodes from a CBOR value that must be a bstr.
    pub(crate) fn from_bstr(value: Value, path: &Path<'_>, ctx: &Ctx) -> Result<Self> {
        match value {
            Value::Bytes(b) => Self::decode_inner(b, path, ctx),
            _ => Err(path.ty("bstr-wrapped CBOR")),
        }
    }
    /// Replaces the value, re-encoding it.
    pub fn set(&mut self, value: T) -> Result<()> {
        *self = Self::new(value)?;
        Ok(())
    }
}

impl<T> Wrapped<T> {
    /// The typed value.
    pub fn value(&self) -> &T {
        &self.value
    }
    /// The inner CBOR bytes (the bstr's contents).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The value, dropping the bytes.
    pub fn into_value(self) -> T {
        self.value
    }
    /// The bstr as a CBOR value.
    pub fn to_bstr_value(&self) -> Value {
        Value::Bytes(self.bytes.clone())
    }
    /// The bstr-wrapped encoding (bstr header + inner bytes), e.g. what digests cover.
    pub fn wrapped_bytes(&self) -> Vec<u8> {
        let mut out = bstr_header(self.bytes.len());
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// The CBOR head of a definite-length byte string of `len` bytes (major type 2).
pub fn bstr_header(len: usize) -> Vec<u8> {
    let len = len as u64;
    let mut out = Vec::with_capacity(9);
    if len < 24 {
        out.push(0x40 | len as u8);
    } else if len <= 0xff {
        out.push(0x58);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(0x59);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else if len <= 0xffff_ffff {
        out.push(0x5a);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x5b);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out
}

/// An arbitrary CBOR item kept as a value (e.g. CoSWID, capability details).
#[derive(Debug, Clone, PartialEq)]
pub struct Opaque(pub Value);

impl CborItem for Opaque {
    fn from_value(value: Value, _path: &Path<'_>, _ctx: &Ctx) -> Result<Self> {
        Ok(Opaque(value))
    }
    fn to_value(&self) -> Result<Value> {
        Ok(self.0.clone())
    }
}

// ---- small typed accessors ----

pub(crate) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

pub(crate) fn to_int(v: Value, path: &Path<'_>) -> Result<i64> {
    int_of(&v).ok_or_else(|| path.ty("integer"))
}

pub(crate) fn to_uint(v: Value, path: &Path<'_>) -> Result<u64> {
    match v {
        Value::Integer(i) => u64::try_from(i128::from(i)).map_err(|_| path.ty("unsigned integer")),
        _ => Err(path.ty("unsigned integer")),
    }
}

pub(crate) fn to_bytes(v: Value, path: &Path<'_>) -> Result<Vec<u8>> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(path.ty("bstr")),
    }
}

pub(crate) fn to_text(v: Value, path: &Path<'_>) -> Result<String> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(path.ty("tstr")),
    }
}

pub(crate) fn to_bool(v: Value, path: &Path<'_>) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(b),
        _ => Err(path.ty("bool")),
    }
}

pub(crate) fn to_array(v: Value, path: &Path<'_>) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(path.ty("array")),
    }
}

pub(crate) fn to_map(v: Value, path: &Path<'_>) -> Result<Vec<(Value, Value)>> {
    match v {
        Value::Map(m) => Ok(m),
        _ => Err(path.ty("map")),
    }
}

pub(crate) fn uuid(v: Value, path: &Path<'_>) -> Result<[u8; 16]> {
    let b = to_bytes(v, path)?;
    <[u8; 16]>::try_from(b.as_slice()).map_err(|_| path.invalid("UUID must be 16 bytes"))
}

/// Rejects duplicate keys in a decoded map.
pub(crate) fn check_unique(entries: &[(Value, Value)], path: &Path<'_>) -> Result<()> {
    let mut seen = alloc::collections::BTreeSet::new();
    for (k, _) in entries {
        let key = encode_value(k, "map key")?;
        if !seen.insert(key) {
            return Err(match int_of(k) {
                Some(l) => path.label(l).duplicate(),
                None => path.duplicate(),
            });
        }
    }
    Ok(())
}

pub(crate) fn int(v: i64) -> Value {
    Value::Integer(v.into())
}

pub(crate) fn uint(v: u64) -> Value {
    Value::Integer(v.into())
}

pub(crate) fn boxed(v: Value) -> Box<Value> {
    Box::new(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bstr_header_matches_ciborium_at_every_length_boundary() {
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000] {
            let v = Value::Bytes(alloc::vec![0u8; len]);
            let enc = encode_value(&v, "t").unwrap();
            let head = bstr_header(len);
            assert_eq!(&enc[..head.len()], head.as_slice(), "len {len}");
            assert_eq!(enc.len(), head.len() + len);
        }
    }

    #[test]
    fn paths_render() {
        let root = Path::root("envelope");
        let m = root.key("manifest");
        let s = m.key("install");
        let i = s.index(3);
        let l = i.label(20);
        assert_eq!(l.render(), "envelope/manifest/install[3]/20");
        assert_eq!(root.text().render(), "envelope/<text>");
    }
}
