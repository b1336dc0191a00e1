//! Peak heap use of `apply` is a small constant, independent of the image size
//! (one test per binary: the counting allocator is process-wide). `cap` counts; the
//! workspace forbids `unsafe` in our own code, so no hand-written GlobalAlloc.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use cap::Cap;
use otrp_delta::{
    apply, apply_full, compress_full, diff, digest, Expected, ImageSink, IoError, Limits,
};
use std::alloc::System;

/// Counts every allocation of the process (`stats` feature: running totals).
#[global_allocator]
static GLOBAL: Cap<System> = Cap::new(System, usize::MAX);

/// Consumes the image without keeping it (a flash slot in the real device).
struct Discard;

impl ImageSink for Discard {
    fn write(&mut self, _: &[u8]) -> Result<(), IoError> {
        Ok(())
    }
}

/// Sum of all heap allocations made while `f` runs: an upper bound of its peak heap use.
fn peak_during(f: impl FnOnce()) -> usize {
    let before = GLOBAL.total_allocated();
    f();
    GLOBAL.total_allocated() - before
}

#[test]
fn apply_peak_heap_is_bounded_and_size_independent() {
    let mut r = common::rng(3);
    for size in [16usize << 10, 256 << 10, 1 << 20] {
        let old = common::wasm_like(&mut r, size);
        let new = common::change_clustered(&mut r, &old, 0.05, 4);
        let patch = diff(&old, &new);
        let exp = Expected {
            old_digest: Some(digest(&old)),
            new_digest: digest(&new),
        };
        let delta_peak = peak_during(|| {
            apply(
                patch.as_slice(),
                &mut &old[..],
                &mut Discard,
                &exp,
                &Limits::default(),
            )
            .unwrap();
        });
        let full = compress_full(&new, 4096, 10);
        let full_peak = peak_during(|| {
            apply_full(
                full.as_slice(),
                &mut Discard,
                &exp.new_digest,
                &Limits::default(),
            )
            .unwrap();
        });
        eprintln!("FIGURE image {size} B: apply peak heap delta {delta_peak} B, full (4 KiB chunks) {full_peak} B");
        // delta: no heap at all (stack buffers only)
        assert!(delta_peak <= 1024, "delta apply peak {delta_peak}");
        // full image: the 4 KiB chunk buffer + the inflate state (~11 KiB)
        assert!(full_peak <= 4096 + 16 * 1024, "full apply peak {full_peak}");
    }
}
