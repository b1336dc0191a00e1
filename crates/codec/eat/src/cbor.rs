//! CBOR plumbing: bounded decoding into [`Value`], typed accessors that name the field
//! path on error, and map encoding that either replays the decoded key order or emits
//! deterministic order (RFC 8949 §4.2.1: keys sorted by their encoded bytes).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use ciborium::value::Value;

use crate::error::EatError;

/// Resource limits applied while decoding untrusted bytes.
///
/// The CBOR decoder never pre-allocates from a declared length: byte strings are read in
/// chunks and arrays/maps grow one element at a time, so a huge declared length in a short
/// input fails with [`EatError::Truncated`] after reading what is there. Memory is
/// therefore bounded by a small multiple of `max_input_len`; stack use is bounded by
/// `max_depth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input in bytes.
    pub max_input_len: usize,
    /// Deepest accepted nesting of arrays, maps and tags (the claims map is level 1).
    pub max_depth: usize,
}

impl DecodeLimits {
    /// Default limits: 64 KiB of input, nesting 16.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_input_len: 64 * 1024,
        max_depth: 16,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Decodes exactly one CBOR item from `bytes` under `limits`.
pub(crate) fn decode_value(bytes: &[u8], limits: &DecodeLimits) -> Result<Value, EatError> {
    if bytes.len() > limits.max_input_len {
        return Err(EatError::InputTooLarge {
            len: bytes.len(),
            max: limits.max_input_len,
        });
    }
    let mut reader = bytes;
    let value: Value =
        ciborium::de::from_reader_with_recursion_limit(&mut reader, limits.max_depth)
            .map_err(|e| map_de_error(e, limits.max_depth))?;
    if !reader.is_empty() {
        return Err(EatError::TrailingBytes {
            offset: bytes.len() - reader.len(),
            count: reader.len(),
        });
    }
    Ok(value)
}

fn map_de_error<E: fmt::Debug>(e: ciborium::de::Error<E>, max_depth: usize) -> EatError {
    match e {
        ciborium::de::Error::Io(_) => EatError::Truncated,
        ciborium::de::Error::Syntax(offset) => EatError::Syntax { offset },
        ciborium::de::Error::Semantic(offset, reason) => EatError::Semantic { offset, reason },
        ciborium::de::Error::RecursionLimitExceeded => EatError::TooDeep { max: max_depth },
    }
}

/// Encodes one value (preferred serialization of integers, lengths and floats).
pub(crate) fn encode_value(value: &Value) -> Result<Vec<u8>, EatError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|e| EatError::Encode(e.to_string()))?;
    Ok(out)
}

/// Checks that `input` equals `reencoded`, as `decode_strict` requires.
pub(crate) fn require_same(input: &[u8], reencoded: &[u8]) -> Result<(), EatError> {
    if input == reencoded {
        return Ok(());
    }
    let offset = input
        .iter()
        .zip(reencoded.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(input.len().min(reencoded.len()));
    Err(EatError::NotDeterministic { offset })
}

/// The key order of a map as it was decoded.
///
/// Encoding replays this order when the map still holds exactly these keys; otherwise (and
/// always for values built in code, where it is empty) keys are emitted in deterministic
/// order (RFC 8949 §4.2.1). Key order carries no meaning, so two `KeyOrder`s always compare
/// equal.
#[derive(Clone, Default)]
pub struct KeyOrder(Vec<Value>);

impl KeyOrder {
    /// Records the keys of a decoded map.
    pub(crate) fn from_entries(entries: &[(Value, Value)]) -> Self {
        KeyOrder(entries.iter().map(|(k, _)| k.clone()).collect())
    }

    /// True when no order was recorded (deterministic encoding).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Forgets the decoded order so that the next encoding is deterministic.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl PartialEq for KeyOrder {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for KeyOrder {}

impl fmt::Debug for KeyOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyOrder").field(&self.0.len()).finish()
    }
}

/// The encoded bytes of every key of `entries`.
fn encoded_keys(entries: &[(Value, Value)]) -> Result<Vec<Vec<u8>>, EatError> {
    entries.iter().map(|(k, _)| encode_value(k)).collect()
}

/// Builds a map value from `entries`, ordered by `order` if it holds exactly the same keys,
/// else deterministically (keys sorted by their encoded bytes). O(n log n).
pub(crate) fn build_map(entries: Vec<(Value, Value)>, order: &KeyOrder) -> Result<Value, EatError> {
    let keys = encoded_keys(&entries)?;
    if !order.0.is_empty() && order.0.len() == entries.len() {
        if let Some(ranks) = ranks_in(order, &keys)? {
            let mut ranked: Vec<(usize, (Value, Value))> = ranks.into_iter().zip(entries).collect();
            ranked.sort_by_key(|(r, _)| *r);
            return Ok(Value::Map(ranked.into_iter().map(|(_, e)| e).collect()));
        }
    }
    let mut keyed: Vec<(Vec<u8>, (Value, Value))> = keys.into_iter().zip(entries).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Map(keyed.into_iter().map(|(_, e)| e).collect()))
}

/// The position in `order` of each key, or `None` when the keys are not a permutation of
/// the recorded ones.
fn ranks_in(order: &KeyOrder, keys: &[Vec<u8>]) -> Result<Option<Vec<usize>>, EatError> {
    let mut recorded = Vec::with_capacity(order.0.len());
    for (i, k) in order.0.iter().enumerate() {
        recorded.push((encode_value(k)?, i));
    }
    recorded.sort();
    let mut used = alloc::vec![false; recorded.len()];
    let mut ranks = Vec::with_capacity(keys.len());
    for kb in keys {
        let Ok(pos) = recorded.binary_search_by(|(b, _)| b.as_slice().cmp(kb)) else {
            return Ok(None);
        };
        let Some(&(_, rank)) = recorded.get(pos) else {
            return Ok(None);
        };
        match used.get_mut(rank) {
            Some(seen) if !*seen => *seen = true,
            _ => return Ok(None),
        }
        ranks.push(rank);
    }
    Ok(Some(ranks))
}

/// Short diagnostic rendering of a key for error messages.
pub(crate) fn key_diag(key: &Value) -> String {
    match key {
        Value::Integer(i) => format!("{}", i128::from(*i)),
        Value::Text(t) => format!("{t:?}"),
        Value::Bytes(b) => format!(
            "h'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        _ => "<complex key>".to_string(),
    }
}

/// Fails when a map repeats a key. O(n log n): keys are compared by their encoding.
pub(crate) fn check_no_duplicates(entries: &[(Value, Value)], path: &str) -> Result<(), EatError> {
    let keys = encoded_keys(entries)?;
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|&a, &b| keys.get(a).cmp(&keys.get(b)));
    for pair in idx.windows(2) {
        if let [a, b] = pair {
            if keys.get(*a) == keys.get(*b) {
                return Err(EatError::DuplicateKey {
                    path: path.to_string(),
                    key: entries
                        .get(*a)
                        .map(|(k, _)| key_diag(k))
                        .unwrap_or_default(),
                });
            }
        }
    }
    Ok(())
}

fn wrong(path: &str, expected: &'static str) -> EatError {
    EatError::WrongType {
        path: path.to_string(),
        expected,
    }
}

/// Unsigned integer.
pub(crate) fn as_u64(v: &Value, path: &str) -> Result<u64, EatError> {
    match v {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| EatError::IntegerOutOfRange {
            path: path.to_string(),
            reason: "expected an unsigned integer below 2^64",
        }),
        _ => Err(wrong(path, "unsigned integer")),
    }
}

/// Signed integer that fits i64.
pub(crate) fn as_i64(v: &Value, path: &str) -> Result<i64, EatError> {
    match v {
        Value::Integer(i) => i64::try_from(*i).map_err(|_| EatError::IntegerOutOfRange {
            path: path.to_string(),
            reason: "does not fit a 64-bit signed integer",
        }),
        _ => Err(wrong(path, "integer")),
    }
}

/// Byte string.
pub(crate) fn as_bytes<'a>(v: &'a Value, path: &str) -> Result<&'a [u8], EatError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(wrong(path, "byte string")),
    }
}

/// Text string.
pub(crate) fn as_text<'a>(v: &'a Value, path: &str) -> Result<&'a str, EatError> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(wrong(path, "text string")),
    }
}

/// Array.
pub(crate) fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], EatError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(wrong(path, "array")),
    }
}

/// Non-empty array (`[+ ...]`).
pub(crate) fn as_nonempty_array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], EatError> {
    let a = as_array(v, path)?;
    if a.is_empty() {
        return Err(EatError::EmptyArray {
            path: path.to_string(),
        });
    }
    Ok(a)
}

/// Map without duplicate keys.
pub(crate) fn as_map<'a>(v: &'a Value, path: &str) -> Result<&'a [(Value, Value)], EatError> {
    match v {
        Value::Map(m) => {
            check_no_duplicates(m, path)?;
            Ok(m)
        }
        _ => Err(wrong(path, "map")),
    }
}

/// Checks a length against an inclusive range.
pub(crate) fn check_size(len: usize, min: usize, max: usize, path: &str) -> Result<(), EatError> {
    if len < min || len > max {
        return Err(EatError::SizeOutOfRange {
            path: path.to_string(),
            len,
            min,
            max,
        });
    }
    Ok(())
}

/// Indexed child path.
pub(crate) fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Member child path.
pub(crate) fn member(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// Integer value helper.
pub(crate) fn uint(x: u64) -> Value {
    Value::Integer(x.into())
}

/// Signed integer value helper.
pub(crate) fn int(x: i64) -> Value {
    Value::Integer(x.into())
}

/// Byte string value helper.
pub(crate) fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}
