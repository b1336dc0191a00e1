//! Decoding and encoding of the option members shared by several messages, each checked
//! against the CDDL on the way in and on the way out (so we never emit what we refuse).

use alloc::string::String;
use alloc::vec::Vec;
use otrp_cbor::CborError;

use ciborium::value::Value;

use crate::cbor::{self, KeyOrder};
use crate::error::TeepError;
use crate::types::{
    ComponentId, FreshnessMechanism, RequestedTcInfo, SuitCoseProfile, SystemPropertyClaims,
    TeepCipherSuite,
};

/// `token`: `bstr .size (8..64)`.
pub(crate) const TOKEN_SIZE: (usize, usize) = (8, 64);
/// `challenge`: `bstr .size (8..512)`.
pub(crate) const CHALLENGE_SIZE: (usize, usize) = (8, 512);
/// `err-msg` / `msg`: `text .size (1..128)`.
pub(crate) const MSG_SIZE: (usize, usize) = (1, 128);
/// `err-lang`: `text .size (1..35)`.
pub(crate) const LANG_SIZE: (usize, usize) = (1, 35);

pub(crate) fn sized_bytes(
    v: &Value,
    path: &str,
    (min, max): (usize, usize),
) -> Result<Vec<u8>, TeepError> {
    let b = cbor::as_bytes(v, path)?;
    cbor::check_size(b.len(), min, max, path)?;
    Ok(b.to_vec())
}

pub(crate) fn enc_sized_bytes(
    b: &[u8],
    path: &str,
    (min, max): (usize, usize),
) -> Result<Value, TeepError> {
    cbor::check_size(b.len(), min, max, path)?;
    Ok(cbor::bytes(b))
}

pub(crate) fn sized_text(
    v: &Value,
    path: &str,
    (min, max): (usize, usize),
) -> Result<String, TeepError> {
    let t = cbor::as_text(v, path)?;
    cbor::check_size(t.len(), min, max, path)?;
    Ok(t.into())
}

pub(crate) fn enc_sized_text(
    t: &str,
    path: &str,
    (min, max): (usize, usize),
) -> Result<Value, TeepError> {
    cbor::check_size(t.len(), min, max, path)?;
    Ok(Value::Text(t.into()))
}

pub(crate) fn text(v: &Value, path: &str) -> Result<String, TeepError> {
    Ok(cbor::as_text(v, path)?.into())
}

pub(crate) fn bytes(v: &Value, path: &str) -> Result<Vec<u8>, TeepError> {
    Ok(cbor::as_bytes(v, path)?.to_vec())
}

fn nonempty<T>(list: &[T], path: &str) -> Result<(), TeepError> {
    if list.is_empty() {
        return Err(TeepError::Cbor(CborError::EmptyArray { path: path.into() }));
    }
    Ok(())
}

/// `[+ version]` / `[+ ext-info]` (`uint .size 4`).
pub(crate) fn u32_list(v: &Value, path: &str) -> Result<Vec<u32>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| Ok(cbor::as_u32(x, &cbor::idx(path, i))?))
        .collect()
}

pub(crate) fn enc_u32_list(list: &[u32], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    Ok(Value::Array(
        list.iter().map(|x| cbor::uint(u64::from(*x))).collect(),
    ))
}

/// `[+ $freshness-mechanism]`.
pub(crate) fn freshness_list(v: &Value, path: &str) -> Result<Vec<FreshnessMechanism>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| Ok(FreshnessMechanism(cbor::as_u64(x, &cbor::idx(path, i))?)))
        .collect()
}

pub(crate) fn enc_freshness_list(
    list: &[FreshnessMechanism],
    path: &str,
) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    Ok(Value::Array(list.iter().map(|x| cbor::uint(x.0)).collect()))
}

/// `[+ bstr]` (suit-reports, manifest-list).
pub(crate) fn bytes_list(v: &Value, path: &str) -> Result<Vec<Vec<u8>>, TeepError> {
    Ok(cbor::bytes_list(v, path)?)
}

pub(crate) fn enc_bytes_list(list: &[Vec<u8>], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    Ok(cbor::bytes_array(list))
}

/// `[+ $teep-cipher-suite]`.
pub(crate) fn suites(v: &Value, path: &str) -> Result<Vec<TeepCipherSuite>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| TeepCipherSuite::decode(x, &cbor::idx(path, i)))
        .collect()
}

pub(crate) fn enc_suites(list: &[TeepCipherSuite], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        out.push(s.encode(&cbor::idx(path, i))?);
    }
    Ok(Value::Array(out))
}

/// `[+ $suit-cose-profile]`.
pub(crate) fn profiles(v: &Value, path: &str) -> Result<Vec<SuitCoseProfile>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| SuitCoseProfile::decode(x, &cbor::idx(path, i)))
        .collect()
}

pub(crate) fn enc_profiles(list: &[SuitCoseProfile], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    Ok(Value::Array(
        list.iter().map(SuitCoseProfile::encode).collect(),
    ))
}

/// `[+ SUIT_Component_Identifier]`.
pub(crate) fn component_ids(v: &Value, path: &str) -> Result<Vec<ComponentId>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| ComponentId::decode(x, &cbor::idx(path, i)))
        .collect()
}

pub(crate) fn enc_component_ids(list: &[ComponentId], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    Ok(Value::Array(list.iter().map(ComponentId::encode).collect()))
}

/// `[+ system-property-claims]`.
pub(crate) fn tc_list(v: &Value, path: &str) -> Result<Vec<SystemPropertyClaims>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| SystemPropertyClaims::decode(x, &cbor::idx(path, i)))
        .collect()
}

pub(crate) fn enc_tc_list(list: &[SystemPropertyClaims], path: &str) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        out.push(c.encode()?);
    }
    Ok(Value::Array(out))
}

/// `[+ requested-tc-info]`.
pub(crate) fn requested_tc_list(v: &Value, path: &str) -> Result<Vec<RequestedTcInfo>, TeepError> {
    cbor::as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| RequestedTcInfo::decode(x, &cbor::idx(path, i)))
        .collect()
}

pub(crate) fn enc_requested_tc_list(
    list: &[RequestedTcInfo],
    path: &str,
) -> Result<Value, TeepError> {
    nonempty(list, path)?;
    let mut out = Vec::with_capacity(list.len());
    for c in list {
        out.push(c.encode()?);
    }
    Ok(Value::Array(out))
}

/// Collects the options map of a message being encoded: typed members plus extensions.
pub(crate) struct OptionsWriter {
    entries: Vec<(Value, Value)>,
    path: String,
}

impl OptionsWriter {
    pub(crate) fn new(path: String) -> Self {
        OptionsWriter {
            entries: Vec::new(),
            path,
        }
    }

    /// Path of a member, for error messages.
    pub(crate) fn path(&self, name: &str) -> String {
        cbor::member(&self.path, name)
    }

    pub(crate) fn put(&mut self, label: u64, value: Value) {
        self.entries.push((cbor::uint(label), value));
    }

    /// Adds unknown/extension options and builds the map (rejecting duplicate labels).
    pub(crate) fn finish(
        mut self,
        extensions: &[(u64, Value)],
        order: &KeyOrder,
    ) -> Result<Value, TeepError> {
        for (l, v) in extensions {
            self.entries.push((cbor::uint(*l), v.clone()));
        }
        cbor::check_no_duplicates(&self.entries, &self.path)?;
        Ok(cbor::build_map(self.entries, order)?)
    }
}

/// The `(label, value)` pairs of a decoded options map and its key order.
pub(crate) type OptionEntries<'a> = (Vec<(u64, &'a Value)>, KeyOrder);

/// Splits the options map of a decoded message into `(label, value)` pairs.
pub(crate) fn option_entries<'a>(v: &'a Value, path: &str) -> Result<OptionEntries<'a>, TeepError> {
    let map = cbor::as_map(v, path)?;
    let mut out = Vec::with_capacity(map.len());
    for (k, val) in map {
        let label = match k {
            Value::Integer(i) => u64::try_from(*i).ok(),
            _ => None,
        };
        match label {
            Some(l) => out.push((l, val)),
            None => {
                return Err(TeepError::Cbor(CborError::WrongType {
                    path: alloc::format!("{path} key {}", cbor::key_diag(k)),
                    expected: "unsigned integer option label",
                }))
            }
        }
    }
    Ok((out, KeyOrder::from_entries(map)))
}
