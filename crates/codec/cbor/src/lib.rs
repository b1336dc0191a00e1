//! CBOR plumbing shared by the TEEP and EAT codecs: bounded decoding into [`Value`],
//! typed accessors that name the field path on error, and map encoding that either replays
//! the decoded key order or emits deterministic order (RFC 8949 §4.2.1: keys sorted by
//! their encoded bytes).
//!
//! Every fallible function returns [`CborError`]; each codec converts it into its own
//! error type with `From`, so `?` works at the call sites.
//!
//! ```
//! use otrp_cbor::{as_u64, decode_value, CborError};
//!
//! let v = decode_value(&[0x18, 0x2a], 64, 4).unwrap();
//! assert_eq!(as_u64(&v, "answer").unwrap(), 42);
//! assert!(matches!(decode_value(&[0x18], 64, 4), Err(CborError::Truncated)));
//! ```
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod error;

pub use error::CborError;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use ciborium::value::Value;

/// Decodes exactly one CBOR item from `bytes`, refusing inputs longer than
/// `max_input_len` and nesting deeper than `max_depth`.
///
/// The decoder never pre-allocates from a declared length: byte strings are read in
/// chunks and arrays/maps grow one element at a time, so a huge declared length in a
/// short input fails with [`CborError::Truncated`] after reading what is there. Memory is
/// bounded by a small multiple of `max_input_len`; stack use by `max_depth`.
pub fn decode_value(
    bytes: &[u8],
    max_input_len: usize,
    max_depth: usize,
) -> Result<Value, CborError> {
    if bytes.len() > max_input_len {
        return Err(CborError::InputTooLarge {
            len: bytes.len(),
            max: max_input_len,
        });
    }
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, max_depth)
        .map_err(|e| map_de_error(e, max_depth))?;
    if !reader.is_empty() {
        return Err(CborError::TrailingBytes {
            offset: bytes.len() - reader.len(),
            count: reader.len(),
        });
    }
    Ok(value)
}

fn map_de_error<E: fmt::Debug>(e: ciborium::de::Error<E>, max_depth: usize) -> CborError {
    match e {
        ciborium::de::Error::Io(_) => CborError::Truncated,
        ciborium::de::Error::Syntax(offset) => CborError::Syntax { offset },
        ciborium::de::Error::Semantic(offset, reason) => CborError::Semantic { offset, reason },
        ciborium::de::Error::RecursionLimitExceeded => CborError::TooDeep { max: max_depth },
    }
}

/// Encodes one value (preferred serialization of integers, lengths and floats).
pub fn encode_value(value: &Value) -> Result<Vec<u8>, CborError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|e| CborError::Encode(e.to_string()))?;
    Ok(out)
}

/// Checks that `input` equals `reencoded`, as `decode_strict` requires.
pub fn require_same(input: &[u8], reencoded: &[u8]) -> Result<(), CborError> {
    if input == reencoded {
        return Ok(());
    }
    let offset = input
        .iter()
        .zip(reencoded.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(input.len().min(reencoded.len()));
    Err(CborError::NotDeterministic { offset })
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
    pub fn from_entries(entries: &[(Value, Value)]) -> Self {
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
fn encoded_keys(entries: &[(Value, Value)]) -> Result<Vec<Vec<u8>>, CborError> {
    entries.iter().map(|(k, _)| encode_value(k)).collect()
}

/// Builds a map value from `entries`, ordered by `order` if it holds exactly the same keys,
/// else deterministically (keys sorted by their encoded bytes). O(n log n).
pub fn build_map(entries: Vec<(Value, Value)>, order: &KeyOrder) -> Result<Value, CborError> {
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
fn ranks_in(order: &KeyOrder, keys: &[Vec<u8>]) -> Result<Option<Vec<usize>>, CborError> {
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
pub fn key_diag(key: &Value) -> String {
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
pub fn check_no_duplicates(entries: &[(Value, Value)], path: &str) -> Result<(), CborError> {
    let keys = encoded_keys(entries)?;
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|&a, &b| keys.get(a).cmp(&keys.get(b)));
    for pair in idx.windows(2) {
        if let [a, b] = pair {
            if keys.get(*a) == keys.get(*b) {
                return Err(CborError::DuplicateKey {
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

fn wrong(path: &str, expected: &'static str) -> CborError {
    CborError::WrongType {
        path: path.to_string(),
        expected,
    }
}

/// Unsigned integer.
pub fn as_u64(v: &Value, path: &str) -> Result<u64, CborError> {
    match v {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| CborError::IntegerOutOfRange {
            path: path.to_string(),
            reason: "expected an unsigned integer below 2^64",
        }),
        _ => Err(wrong(path, "unsigned integer")),
    }
}

/// `uint .size 4`.
pub fn as_u32(v: &Value, path: &str) -> Result<u32, CborError> {
    let x = as_u64(v, path)?;
    u32::try_from(x).map_err(|_| CborError::IntegerOutOfRange {
        path: path.to_string(),
        reason: "uint .size 4",
    })
}

/// Signed integer that fits i64.
pub fn as_i64(v: &Value, path: &str) -> Result<i64, CborError> {
    match v {
        Value::Integer(i) => i64::try_from(*i).map_err(|_| CborError::IntegerOutOfRange {
            path: path.to_string(),
            reason: "does not fit a 64-bit signed integer",
        }),
        _ => Err(wrong(path, "integer")),
    }
}

/// Byte string.
pub fn as_bytes<'a>(v: &'a Value, path: &str) -> Result<&'a [u8], CborError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(wrong(path, "byte string")),
    }
}

/// Text string.
pub fn as_text<'a>(v: &'a Value, path: &str) -> Result<&'a str, CborError> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(wrong(path, "text string")),
    }
}

/// Boolean.
pub fn as_bool(v: &Value, path: &str) -> Result<bool, CborError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong(path, "bool")),
    }
}

/// Array.
pub fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], CborError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(wrong(path, "array")),
    }
}

/// Non-empty array (`[+ ...]`).
pub fn as_nonempty_array<'a>(v: &'a Value, path: &str) -> Result<&'a [Value], CborError> {
    let a = as_array(v, path)?;
    if a.is_empty() {
        return Err(CborError::EmptyArray {
            path: path.to_string(),
        });
    }
    Ok(a)
}

/// Map without duplicate keys.
pub fn as_map<'a>(v: &'a Value, path: &str) -> Result<&'a [(Value, Value)], CborError> {
    match v {
        Value::Map(m) => {
            check_no_duplicates(m, path)?;
            Ok(m)
        }
        _ => Err(wrong(path, "map")),
    }
}

/// Checks a length against an inclusive range.
pub fn check_size(len: usize, min: usize, max: usize, path: &str) -> Result<(), CborError> {
    if len < min || len > max {
        return Err(CborError::SizeOutOfRange {
            path: path.to_string(),
            len,
            min,
            max,
        });
    }
    Ok(())
}

/// Indexed child path.
pub fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Member child path.
pub fn member(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// `[+ bstr]`.
pub fn bytes_list(v: &Value, path: &str) -> Result<Vec<Vec<u8>>, CborError> {
    as_nonempty_array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, x)| as_bytes(x, &idx(path, i)).map(<[u8]>::to_vec))
        .collect()
}

/// Integer value helper.
pub fn uint(x: u64) -> Value {
    Value::Integer(x.into())
}

/// Signed integer value helper.
pub fn int(x: i64) -> Value {
    Value::Integer(x.into())
}

/// Byte string value helper.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Array of byte strings.
pub fn bytes_array(list: &[Vec<u8>]) -> Value {
    Value::Array(list.iter().map(|b| bytes(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(i64, u64)]) -> Vec<(Value, Value)> {
        entries.iter().map(|&(k, v)| (int(k), uint(v))).collect()
    }

    #[test]
    fn decode_refuses_large_deep_truncated_and_trailing_input() {
        assert_eq!(
            decode_value(&[0x01; 10], 4, 4),
            Err(CborError::InputTooLarge { len: 10, max: 4 })
        );
        // [[[[1]]]] nests four arrays.
        assert_eq!(
            decode_value(&[0x81, 0x81, 0x81, 0x81, 0x01], 64, 3),
            Err(CborError::TooDeep { max: 3 })
        );
        // a byte string declaring 2^32 bytes in a 6-byte input: no allocation from the length.
        assert_eq!(
            decode_value(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00], 64, 4),
            Err(CborError::Truncated)
        );
        assert_eq!(
            decode_value(&[0x01, 0x02, 0x03], 64, 4),
            Err(CborError::TrailingBytes {
                offset: 1,
                count: 2
            })
        );
    }

    #[test]
    fn maps_replay_decoded_order_else_are_deterministic() {
        let decoded = map(&[(3, 0), (1, 0), (-1, 0)]);
        let order = KeyOrder::from_entries(&decoded);
        let replayed = build_map(map(&[(-1, 1), (3, 1), (1, 1)]), &order).unwrap();
        let keys = |v: &Value| match v {
            Value::Map(m) => m
                .iter()
                .map(|(k, _)| as_i64(k, "k").unwrap())
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(keys(&replayed), [3, 1, -1]);
        // a different key set falls back to RFC 8949 §4.2.1 order (by encoded bytes).
        let fresh = build_map(map(&[(-1, 1), (3, 1), (24, 1)]), &order).unwrap();
        assert_eq!(keys(&fresh), [3, 24, -1]);
        assert!(KeyOrder::default().is_empty());
    }

    #[test]
    fn accessors_name_the_path() {
        let dup = Value::Map(map(&[(1, 0), (1, 1)]));
        assert_eq!(
            as_map(&dup, "options"),
            Err(CborError::DuplicateKey {
                path: "options".into(),
                key: "1".into()
            })
        );
        assert_eq!(
            as_text(&uint(1), "m.name"),
            Err(CborError::WrongType {
                path: "m.name".into(),
                expected: "text string"
            })
        );
        assert_eq!(
            as_nonempty_array(&Value::Array(Vec::new()), "list"),
            Err(CborError::EmptyArray {
                path: "list".into()
            })
        );
        assert!(matches!(
            as_u32(&uint(1 << 33), "v"),
            Err(CborError::IntegerOutOfRange { .. })
        ));
        assert_eq!(
            check_size(3, 8, 64, "token").unwrap_err().to_string(),
            "token: size 3 outside 8..=64"
        );
        assert_eq!(idx(&member("a", "b"), 2), "a.b[2]");
        assert_eq!(
            require_same(&[1, 2, 3], &[1, 2, 4]),
            Err(CborError::NotDeterministic { offset: 2 })
        );
    }
}
