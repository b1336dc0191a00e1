//! Choosing the single-bit flips to try on a message.
//!
//! Every bit of the *dense* byte ranges (headers, signatures: where a decoder or a
//! signature check could be fooled) is flipped; the remaining bytes (payloads) are
//! sampled with a stride, one bit per sampled byte, the bit rotating with the position
//! so all eight bit positions are exercised. The stride is chosen so that the total is
//! at least the requested minimum.

use std::ops::Range;

/// One single-bit flip: byte offset and bit (0 = least significant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitFlip {
    /// Byte offset in the message.
    pub byte: usize,
    /// Bit index 0..8.
    pub bit: u8,
}

impl BitFlip {
    /// A copy of `msg` with this bit flipped.
    pub fn apply(&self, msg: &[u8]) -> Vec<u8> {
        let mut out = msg.to_vec();
        if let Some(b) = out.get_mut(self.byte) {
            *b ^= 1 << self.bit;
        }
        out
    }
}

/// The flips for a message of `len` bytes: all 8 bits of every byte in `dense`, plus a
/// stride over the other bytes so that there are at least `min_total` flips (or every
/// byte is covered). Sorted, without duplicates.
pub fn sample(len: usize, dense: &[Range<usize>], min_total: usize) -> Vec<BitFlip> {
    let in_dense = |i: usize| dense.iter().any(|r| r.contains(&i));
    let mut out: Vec<BitFlip> = Vec::new();
    for i in (0..len).filter(|&i| in_dense(i)) {
        out.extend((0..8).map(|bit| BitFlip { byte: i, bit }));
    }
    let sparse: Vec<usize> = (0..len).filter(|&i| !in_dense(i)).collect();
    let want = min_total
        .saturating_sub(out.len())
        .max(64.min(sparse.len()));
    if want > 0 && !sparse.is_empty() {
        let stride = (sparse.len() / want).max(1);
        for (k, &i) in sparse.iter().step_by(stride).enumerate() {
            out.push(BitFlip {
                byte: i,
                bit: (k % 8) as u8,
            });
        }
        // Always the last byte too (trailing structure).
        if let Some(&last) = sparse.last() {
            out.push(BitFlip { byte: last, bit: 0 });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// For a COSE_Sign1 with an attached payload: the byte range of the payload's content
/// (everything else — tag, array header, protected and unprotected headers, the
/// payload's bstr header, the signature — is structure to flip densely).
pub fn cose_sign1_payload_range(msg: &[u8]) -> Option<Range<usize>> {
    let parsed = otrp_cose::parse_sign1(msg).ok()?;
    let payload = parsed.payload?;
    let at = find(msg, &payload)?;
    Some(at..at + payload.len())
}

/// For a COSE_Sign1: the byte range of its unprotected header map (the only bytes
/// that neither the signature nor the payload covers).
pub fn cose_sign1_unprotected_range(msg: &[u8]) -> Option<Range<usize>> {
    use coset::AsCborValue;
    let parsed = otrp_cose::parse_sign1(msg).ok()?;
    let protected_len = parsed.protected.original_data.as_ref().map_or(0, Vec::len);
    let value = parsed.unprotected.to_cbor_value().ok()?;
    let mut encoded = Vec::new();
    ciborium::into_writer(&value, &mut encoded).ok()?;
    // The map follows the protected bstr (skip at least its content).
    let from = protected_len.min(msg.len());
    let at = from + find(msg.get(from..)?, &encoded)?;
    Some(at..at + encoded.len())
}

/// The authenticated parts of a COSE_Sign1 (protected header bytes, payload,
/// signature), for comparing a tampered message with the genuine one.
pub fn cose_sign1_authenticated(msg: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let parsed = otrp_cose::parse_sign1(msg).ok()?;
    Some((
        parsed.protected.original_data.unwrap_or_default(),
        parsed.payload.unwrap_or_default(),
        parsed.signature,
    ))
}

/// The complement of `inner` within `0..len`: the dense ranges around a payload.
pub fn around(len: usize, inner: &Range<usize>) -> Vec<Range<usize>> {
    vec![0..inner.start.min(len), inner.end.min(len)..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_bytes_get_every_bit_and_the_rest_is_strided() {
        let flips = sample(1000, &[0..10, 990..1000], 500);
        let dense = flips
            .iter()
            .filter(|f| f.byte < 10 || f.byte >= 990)
            .count();
        assert_eq!(dense, 160);
        assert!(flips.len() >= 500, "{}", flips.len());
        // The stride reaches the end of the payload.
        assert!(flips.iter().any(|f| (900..990).contains(&f.byte)));
        // Every bit position is used in the sparse part.
        for bit in 0..8 {
            assert!(flips
                .iter()
                .any(|f| (10..990).contains(&f.byte) && f.bit == bit));
        }
        assert_eq!(BitFlip { byte: 1, bit: 7 }.apply(&[0, 0]), vec![0, 0x80]);
    }
}
