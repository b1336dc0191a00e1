//! Patch/apply round trips, refusals and mutation tests for otrp-delta.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{change_clustered, insert_delete, rng, wasm_like};
use otrp_delta::{
    apply, apply_full, compress_full, diff, digest, read_header, ApplyError, Expected, ImageSink,
    IoError, Limits, PatchKind,
};
use proptest::prelude::*;
use rand::Rng;

fn expected(old: &[u8], new: &[u8]) -> Expected {
    Expected {
        old_digest: Some(digest(old)),
        new_digest: digest(new),
    }
}

fn roundtrip(old: &[u8], new: &[u8]) -> usize {
    let patch = diff(old, new);
    let mut out = Vec::new();
    let report = apply(
        patch.as_slice(),
        &mut &old[..],
        &mut out,
        &expected(old, new),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out, new);
    assert_eq!(report.copied + report.added, new.len() as u64);
    patch.len()
}

/// A sink that records how many bytes it was given.
#[derive(Default)]
struct CountingSink(usize);

impl ImageSink for CountingSink {
    fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        self.0 += data.len();
        Ok(())
    }
}

#[test]
fn empty_and_tiny_images() {
    roundtrip(b"", b"");
    roundtrip(b"", b"hello");
    roundtrip(b"hello", b"");
    roundtrip(b"hello world, hello world", b"hello world, hello there");
}

#[test]
fn random_images_roundtrip() {
    let mut r = rng(1);
    for size in [1usize, 100, 4096, 65_536] {
        let old: Vec<u8> = (0..size).map(|_| r.gen()).collect();
        let new: Vec<u8> = (0..size + 17).map(|_| r.gen()).collect();
        roundtrip(&old, &new);
        let changed = change_clustered(&mut r, &old, 0.05, 1.max(size / 20_000));
        roundtrip(&old, &changed);
    }
}

#[test]
fn wasm_like_256k_five_percent_clustered_change() {
    let mut r = rng(7);
    let old = wasm_like(&mut r, 256 << 10);
    let new = change_clustered(&mut r, &old, 0.05, 4);
    let delta = roundtrip(&old, &new);
    let full = compress_full(&new, 0, 10);
    let mut out = Vec::new();
    apply_full(full.as_slice(), &mut out, &digest(&new), &Limits::default()).unwrap();
    assert_eq!(out, new);
    eprintln!(
        "FIGURE 256 KiB TA, 5% changed in 4 clusters: full {} B, compressed full {} B ({:.1}%), delta {} B ({:.2}% of full, {:.1}% of compressed)",
        new.len(),
        full.len(),
        100.0 * full.len() as f64 / new.len() as f64,
        delta,
        100.0 * delta as f64 / new.len() as f64,
        100.0 * delta as f64 / full.len() as f64
    );
    assert!(
        delta * 10 <= new.len(),
        "delta {delta} > 10% of {}",
        new.len()
    );
}

#[test]
fn wasm_like_insertions_and_deletions() {
    let mut r = rng(8);
    let old = wasm_like(&mut r, 256 << 10);
    let new = insert_delete(&mut r, &old, 3000, 2000);
    let new = insert_delete(&mut r, &new, 500, 7000);
    let delta = roundtrip(&old, &new);
    eprintln!("FIGURE 256 KiB TA with 2 insertions + 2 deletions: delta {delta} B");
    assert!(delta < 8000, "delta {delta}");
}

#[test]
fn full_image_roundtrip_at_several_chunk_sizes() {
    let mut r = rng(9);
    let img = wasm_like(&mut r, 100_000);
    for chunk in [1u32, 100, 1024, 4096, 32_768, 1 << 20] {
        let full = compress_full(&img, chunk, 6);
        let mut out = Vec::new();
        let limits = Limits {
            max_chunk_size: 1 << 20,
            ..Limits::default()
        };
        let rep = apply_full(full.as_slice(), &mut out, &digest(&img), &limits).unwrap();
        assert_eq!(out, img, "chunk {chunk}");
        assert_eq!(rep.header.kind, PatchKind::Deflate { chunk_size: chunk });
        // apply() with an old image ignores it for a full image
        let mut out2 = Vec::new();
        apply(
            full.as_slice(),
            &mut &b"unrelated"[..],
            &mut out2,
            &Expected {
                old_digest: None,
                new_digest: digest(&img),
            },
            &limits,
        )
        .unwrap();
        assert_eq!(out2, img);
    }
    // empty image
    let full = compress_full(b"", 0, 6);
    let mut out = Vec::new();
    apply_full(full.as_slice(), &mut out, &digest(b""), &Limits::default()).unwrap();
    assert!(out.is_empty());
}

#[test]
fn wrong_old_image_is_refused_before_any_output() {
    let mut r = rng(10);
    let old = wasm_like(&mut r, 50_000);
    let new = change_clustered(&mut r, &old, 0.05, 2);
    let patch = diff(&old, &new);
    let mut other = old.clone();
    other[12_345] ^= 1;
    let mut sink = CountingSink::default();
    // the device's image differs from what the patch was made for
    let err = apply(
        patch.as_slice(),
        &mut &other[..],
        &mut sink,
        &expected(&old, &new),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ApplyError::OldDigestMismatch);
    assert_eq!(sink.0, 0);
    // the caller expects another old image than the header names
    let err = apply(
        patch.as_slice(),
        &mut &other[..],
        &mut sink,
        &expected(&other, &new),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ApplyError::HeaderDigestMismatch {
            field: "old-digest"
        }
    );
    // ... or another new image
    let err = apply(
        patch.as_slice(),
        &mut &old[..],
        &mut sink,
        &expected(&old, &other),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ApplyError::HeaderDigestMismatch {
            field: "new-digest"
        }
    );
    // a shorter image
    let err = apply(
        patch.as_slice(),
        &mut &old[..100],
        &mut sink,
        &expected(&old, &new),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::OldSizeMismatch { .. }), "{err:?}");
    // no expected old digest, or no old image at all
    let err = apply(
        patch.as_slice(),
        &mut &old[..],
        &mut sink,
        &Expected {
            old_digest: None,
            new_digest: digest(&new),
        },
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ApplyError::MissingExpectedOldDigest);
    let err = apply_full(
        patch.as_slice(),
        &mut sink,
        &digest(&new),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ApplyError::NeedsOldImage);
    assert_eq!(sink.0, 0);
}

#[test]
fn device_limits_are_enforced_from_the_header() {
    let img = vec![7u8; 10_000];
    let full = compress_full(&img, 8192, 6);
    let mut sink = CountingSink::default();
    let tight = Limits {
        max_new_size: 1 << 20,
        max_chunk_size: 4096,
    };
    let err = apply_full(full.as_slice(), &mut sink, &digest(&img), &tight).unwrap_err();
    assert_eq!(
        err,
        ApplyError::ChunkTooLarge {
            chunk_size: 8192,
            max: 4096
        }
    );
    let small = Limits {
        max_new_size: 9_999,
        max_chunk_size: 1 << 15,
    };
    let err = apply_full(full.as_slice(), &mut sink, &digest(&img), &small).unwrap_err();
    assert!(matches!(err, ApplyError::NewTooLarge { .. }));
    assert_eq!(sink.0, 0);
}

#[test]
fn header_is_readable_alone() {
    let old = b"the installed TA image".to_vec();
    let new = b"the installed TA image, version 2".to_vec();
    let h = read_header(diff(&old, &new).as_slice()).unwrap();
    assert_eq!(
        h.kind,
        PatchKind::Delta {
            old_size: old.len() as u64,
            old_digest: digest(&old)
        }
    );
    assert_eq!(h.new_size, new.len() as u64);
    assert_eq!(h.new_digest, digest(&new));
}

/// Applying any mutation of a valid patch either fails with an error or yields exactly
/// the new image (the digest check makes anything else impossible); it never panics.
fn check_mutant(patch: &[u8], old: &[u8], new: &[u8]) {
    let mut out = Vec::new();
    let res = apply(
        patch,
        &mut &old[..],
        &mut out,
        &expected(old, new),
        &Limits::default(),
    );
    if res.is_ok() {
        assert_eq!(out, new);
    }
    let mut out = Vec::new();
    if apply_full(patch, &mut out, &digest(new), &Limits::default()).is_ok() {
        assert_eq!(out, new);
    }
}

#[test]
fn truncations_and_bit_flips_are_refused() {
    let mut r = rng(11);
    let old = wasm_like(&mut r, 8_000);
    let new = change_clustered(&mut r, &old, 0.05, 2);
    for patch in [diff(&old, &new), compress_full(&new, 1024, 6)] {
        for cut in 0..patch.len() {
            let mut out = Vec::new();
            let res = apply(
                &patch[..cut],
                &mut &old[..],
                &mut out,
                &expected(&old, &new),
                &Limits::default(),
            );
            assert!(res.is_err(), "truncated at {cut} accepted");
        }
        let mut longer = patch.clone();
        longer.push(0);
        let err = apply(
            longer.as_slice(),
            &mut &old[..],
            &mut Vec::new(),
            &expected(&old, &new),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ApplyError::TrailingData { .. }), "{err:?}");
        for i in 0..patch.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut m = patch.clone();
                m[i] ^= bit;
                check_mutant(&m, &old, &new);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn diff_apply_roundtrip_prop(
        old in proptest::collection::vec(any::<u8>(), 0..3000),
        edits in proptest::collection::vec((any::<u16>(), 0usize..64, proptest::collection::vec(any::<u8>(), 0..64)), 0..8),
    ) {
        let mut new = old.clone();
        for (at, del, ins) in edits {
            let at = if new.is_empty() { 0 } else { usize::from(at) % new.len() };
            let end = (at + del).min(new.len());
            new.splice(at..end, ins);
        }
        let patch = diff(&old, &new);
        let mut out = Vec::new();
        apply(patch.as_slice(), &mut &old[..], &mut out, &expected(&old, &new), &Limits::default()).unwrap();
        prop_assert_eq!(out, new);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let old = b"some installed image bytes".to_vec();
        check_mutant(&bytes, &old, b"new");
    }

    #[test]
    fn mutated_patches_never_panic(seed in any::<u64>(), n in 1usize..8) {
        let mut r = rng(seed);
        let old = wasm_like(&mut r, 2000);
        let new = change_clustered(&mut r, &old, 0.1, 2);
        let mut patch = if seed % 2 == 0 { diff(&old, &new) } else { compress_full(&new, 256, 6) };
        for _ in 0..n {
            let i = r.gen_range(0..patch.len());
            match r.gen_range(0..3) {
                0 => patch[i] = r.gen(),
                1 => { patch.remove(i); }
                _ => patch.insert(i, r.gen()),
            }
        }
        check_mutant(&patch, &old, &new);
    }
}
