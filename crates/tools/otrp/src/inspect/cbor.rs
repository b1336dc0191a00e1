//! Strict one-item CBOR parsing for inspection, with byte offsets in errors.

use ciborium::value::Value;

/// Deepest nesting accepted; deeper input is refused rather than recursed into.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not one well-formed CBOR item.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// The input ends inside an item.
    #[error("truncated CBOR: input ends inside an item ({len} bytes read)")]
    Truncated {
        /// Input length.
        len: usize,
    },
    /// A malformed header or value.
    #[error("malformed CBOR at byte {offset}")]
    Syntax {
        /// Byte offset of the bad header.
        offset: usize,
    },
    /// Well-formed but not acceptable (e.g. too deep, bad UTF-8).
    #[error("invalid CBOR{}: {msg}", offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Semantic {
        /// Byte offset when known.
        offset: Option<usize>,
        /// What was wrong.
        msg: String,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("CBOR nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes follow the first complete item.
    #[error("{extra} trailing byte(s) after the CBOR item at byte {offset}")]
    Trailing {
        /// Where the first item ends.
        offset: usize,
        /// How many bytes follow.
        extra: usize,
    },
}

/// Parses exactly one CBOR item from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Value, CborError> {
    if bytes.is_empty() {
        return Err(CborError::Empty);
    }
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| match e {
            ciborium::de::Error::Io(_) => CborError::Truncated { len: bytes.len() },
            ciborium::de::Error::Syntax(offset) => CborError::Syntax { offset },
            ciborium::de::Error::Semantic(offset, msg) => CborError::Semantic { offset, msg },
            ciborium::de::Error::RecursionLimitExceeded => CborError::TooDeep,
        })?;
    if !reader.is_empty() {
        let offset = bytes.len() - reader.len();
        return Err(CborError::Trailing {
            offset,
            extra: reader.len(),
        });
    }
    Ok(value)
}

/// Parses `bytes` only if they are one complete CBOR item (used for `bstr .cbor` members).
pub fn parse_embedded(bytes: &[u8]) -> Option<Value> {
    parse(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_located() {
        assert_eq!(
            parse(&[0x01, 0x02]),
            Err(CborError::Trailing {
                offset: 1,
                extra: 1
            })
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(parse(&[0x82, 0x01]), Err(CborError::Truncated { len: 2 }));
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating() {
        // byte string claiming 2^63 bytes
        let input = [0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        assert!(parse(&input).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let input = vec![0x81; 10_000];
        assert!(parse(&input).is_err());
    }
}
