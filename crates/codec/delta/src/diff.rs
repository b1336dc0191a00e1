//! TAM side: building deltas (suffix-array matching) and compressed full images.

use crate::digest;
use crate::format::enc::Enc;
use crate::format::{PatchHeader, PatchKind};
use alloc::vec::Vec;

/// Default uncompressed chunk size of [`compress_full`]: 4 KiB keeps the device's inflate
/// buffer small and costs a few percent of ratio against one 32 KiB-window stream.
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;

/// Tuning of [`diff_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// Shortest match worth a COPY (a COPY costs 2–9 bytes plus splitting an ADD).
    pub min_match: usize,
    /// Longest single COPY (bounds the work of one suffix comparison).
    pub max_match: usize,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            min_match: 8,
            max_match: 1 << 16,
        }
    }
}

/// A delta turning `old` into `new` (see [`diff_with`]).
pub fn diff(old: &[u8], new: &[u8]) -> Vec<u8> {
    diff_with(old, new, &DiffOptions::default())
}

/// A delta turning `old` into `new`.
///
/// Builds a suffix array of `old` (divsufsort, `O(n log n)`), then walks `new` greedily:
/// at each position it first tries to continue the previous COPY's alignment (the common
/// case of a changed region followed by unchanged bytes), otherwise binary-searches the
/// suffix array for the longest match; matches of at least `min_match` bytes become a COPY,
/// everything else accumulates into ADD literals.
pub fn diff_with(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    let min_match = opts.min_match.max(1);
    let max_match = opts.max_match.max(min_match);
    let sa = suffix_array(old);
    let mut ops = Enc::new();
    ops.header(&PatchHeader {
        kind: PatchKind::Delta {
            old_size: old.len() as u64,
            old_digest: digest(old),
        },
        new_size: new.len() as u64,
        new_digest: digest(new),
    });
    let mut i = 0usize; // position in new
    let mut lit_start = 0usize; // first byte of the pending ADD
    let mut cursor = 0usize; // end of the last COPY in old
    while i < new.len() {
        let rest = new.get(i..).unwrap_or(&[]);
        let rest = rest.get(..rest.len().min(max_match)).unwrap_or(rest);
        // Same alignment as the previous COPY, shifted by the literal run.
        let aligned_pos = cursor + (i - lit_start);
        let aligned = old
            .get(aligned_pos..)
            .map(|o| common_prefix(o, rest))
            .unwrap_or(0);
        let (pos, len) = if aligned >= min_match {
            (aligned_pos, aligned)
        } else {
            longest_match(&sa, old, rest)
        };
        if len >= min_match {
            if lit_start < i {
                ops.bytes(new.get(lit_start..i).unwrap_or(&[]));
            }
            ops.int(pos as i64 - cursor as i64);
            ops.head(ciborium_ll::Header::Positive(len as u64));
            cursor = pos + len;
            i += len;
            lit_start = i;
        } else {
            i += 1;
        }
    }
    if lit_start < new.len() {
        ops.bytes(new.get(lit_start..).unwrap_or(&[]));
    }
    ops.finish()
}

fn suffix_array(text: &[u8]) -> Vec<i32> {
    if text.is_empty() || text.len() > i32::MAX as usize {
        return Vec::new();
    }
    let mut sa = alloc::vec![0i32; text.len()];
    divsufsort::sort_in_place(text, &mut sa);
    sa
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn suffix<'a>(old: &'a [u8], sa: &[i32], k: usize) -> &'a [u8] {
    sa.get(k)
        .and_then(|p| usize::try_from(*p).ok())
        .and_then(|p| old.get(p..))
        .unwrap_or(&[])
}

/// Longest prefix of `pat` occurring in `old`: (position in old, length).
fn longest_match(sa: &[i32], old: &[u8], pat: &[u8]) -> (usize, usize) {
    if sa.is_empty() || pat.is_empty() {
        return (0, 0);
    }
    // Binary search for the insertion point of `pat` among the sorted suffixes; the
    // longest common prefix is with one of the two neighbours.
    let (mut lo, mut hi) = (0usize, sa.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let s = suffix(old, sa, mid);
        let n = s.len().min(pat.len());
        if s.get(..n) < pat.get(..n) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut best = (0usize, 0usize);
    for k in [lo, hi] {
        let s = suffix(old, sa, k);
        let l = common_prefix(s, pat);
        if l > best.1 {
            let p = sa
                .get(k)
                .and_then(|p| usize::try_from(*p).ok())
                .unwrap_or(0);
            best = (p, l);
        }
    }
    best
}

/// The full image `new` as independent raw-DEFLATE chunks of `chunk_size` bytes
/// (`chunk_size` 0 means [`DEFAULT_CHUNK_SIZE`]); `level` is miniz's 0–10.
pub fn compress_full(new: &[u8], chunk_size: u32, level: u8) -> Vec<u8> {
    let chunk_size = if chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        chunk_size
    };
    let mut out = Enc::new();
    out.header(&PatchHeader {
        kind: PatchKind::Deflate { chunk_size },
        new_size: new.len() as u64,
        new_digest: digest(new),
    });
    let step = usize::try_from(chunk_size).unwrap_or(usize::MAX);
    for chunk in new.chunks(step) {
        out.bytes(&miniz_oxide::deflate::compress_to_vec(chunk, level.min(10)));
    }
    out.finish()
}
