//! The write-ahead journal's plaintext encoding (sealed as a whole before it is written).
//!
//! ```text
//! magic "OTRPJNL1" (8) | op_count u32 | op*
//! op = 0x01 name_len u16 name sealed_len u32 sealed     (put: the already sealed object file)
//!    | 0x02 name_len u16 name                            (delete)
//! ```
//!
//! The journal is authenticated by its seal, so a decode error here means a bug or a
//! device-key mismatch; it is still reported as a typed error, never a panic.

use crate::PlatformError;

const MAGIC: &[u8; 8] = b"OTRPJNL1";
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
pub(crate) const JOURNAL_NAME: &str = "journal";

/// One change of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Write the sealed file bytes of object `name`.
    Put { name: String, sealed: Vec<u8> },
    /// Remove object `name`.
    Delete { name: String },
}

pub(crate) fn encode(ops: &[Op]) -> Result<Vec<u8>, PlatformError> {
    let too_large = |name: &str, len: usize| PlatformError::TooLarge {
        name: name.to_string(),
        len,
        max: u32::MAX as usize,
    };
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    let count = u32::try_from(ops.len()).map_err(|_| too_large(JOURNAL_NAME, ops.len()))?;
    out.extend_from_slice(&count.to_be_bytes());
    for op in ops {
        let (tag, name) = match op {
            Op::Put { name, .. } => (TAG_PUT, name),
            Op::Delete { name } => (TAG_DELETE, name),
        };
        out.push(tag);
        let name_len = u16::try_from(name.len()).map_err(|_| PlatformError::InvalidName {
            name: name.clone(),
            reason: "longer than 65535 bytes",
        })?;
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        if let Op::Put { sealed, .. } = op {
            let len = u32::try_from(sealed.len()).map_err(|_| too_large(name, sealed.len()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(sealed);
        }
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, reason: &'static str) -> Result<&'a [u8], PlatformError> {
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or_else(|| PlatformError::tampered(JOURNAL_NAME, reason))?;
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, reason: &'static str) -> Result<[u8; N], PlatformError> {
        let bytes = self.take(N, reason)?;
        <[u8; N]>::try_from(bytes).map_err(|_| PlatformError::tampered(JOURNAL_NAME, reason))
    }
}

pub(crate) fn decode(buf: &[u8]) -> Result<Vec<Op>, PlatformError> {
    let bad = |reason| PlatformError::tampered(JOURNAL_NAME, reason);
    let mut r = Reader { buf };
    if r.take(MAGIC.len(), "journal truncated in magic")? != MAGIC {
        return Err(bad("journal bad magic"));
    }
    let count = u32::from_be_bytes(r.array::<4>("journal truncated in op count")?);
    let mut ops = Vec::new();
    for _ in 0..count {
        let [tag] = r.array::<1>("journal truncated in op tag")?;
        let name_len = u16::from_be_bytes(r.array::<2>("journal truncated in name length")?);
        let name = std::str::from_utf8(r.take(usize::from(name_len), "journal truncated in name")?)
            .map_err(|_| bad("journal name not UTF-8"))?
            .to_string();
        match tag {
            TAG_PUT => {
                let len = u32::from_be_bytes(r.array::<4>("journal truncated in value length")?);
                let len = usize::try_from(len).map_err(|_| bad("journal value length"))?;
                let sealed = r.take(len, "journal truncated in value")?.to_vec();
                ops.push(Op::Put { name, sealed });
            }
            TAG_DELETE => ops.push(Op::Delete { name }),
            _ => return Err(bad("journal unknown op tag")),
        }
    }
    if !r.buf.is_empty() {
        return Err(bad("journal trailing bytes"));
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_roundtrip_and_truncations() -> Result<(), PlatformError> {
        let ops = vec![
            Op::Put {
                name: "o/a".into(),
                sealed: vec![1, 2, 3],
            },
            Op::Delete { name: "c/x".into() },
        ];
        let bytes = encode(&ops)?;
        assert_eq!(decode(&bytes)?, ops);
        for n in 0..bytes.len() {
            assert!(
                decode(bytes.get(..n).unwrap_or_default()).is_err(),
                "prefix {n}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        Ok(())
    }
}
