//! Delta updates and compressed full images for Trusted Application binaries, shaped for a
//! microcontroller-class TEE on an LPWAN link (DESIGN.md §3.3).
//!
//! # Two kinds of patch, one container
//!
//! A patch is a CBOR sequence (RFC 8742): one header array, then instruction items.
//!
//! * [`PatchKind::Delta`]: the new image as `COPY(offset, len)` / `ADD(bytes)` instructions
//!   against the image the device has installed (VCDIFF-like, our own CBOR encoding).
//!   The TAM builds it with [`diff`] (std feature: suffix array over the old image,
//!   `O(n log n)` to build, `O(log n)` per probed position).
//! * [`PatchKind::Deflate`]: the full image as independent raw-DEFLATE chunks of at most
//!   `chunk_size` bytes each (the fallback when the device's version is unknown or a
//!   delta would not pay off). The TAM builds it with [`compress_full`].
//!
//! The exact byte layout is documented in `docs/DELTA.md` and in [`format`].
//!
//! # Applying on the device: streaming, bounded memory
//!
//! [`apply`] (and [`apply_full`] when there is no old image) reads the patch strictly
//! sequentially through [`PatchSource`], reads the old image through bounded random access
//! ([`OldImage::read_at`] into a 256-byte buffer) and writes the new image strictly
//! sequentially through [`ImageSink`]. Working memory is a constant independent of image
//! size: a 256-byte copy buffer, one SHA-256 state and the CBOR header decoder for a delta;
//! plus one `chunk_size` output buffer and the ~11 KiB inflate state for a compressed full
//! image (`chunk_size` ≤ [`Limits::max_chunk_size`], chosen by the device).
//!
//! Order of checks for a delta, all before the first byte is written:
//! 1. the header's old and new digests equal the digests the caller expects
//!    ([`Expected`], from the signed SUIT manifest and the device's own record);
//! 2. the installed image's size and SHA-256 digest equal the header's;
//!
//! then the instructions are streamed, every COPY bounds-checked, and finally
//! 3. the produced image's SHA-256 equals the expected new digest. The sink has received
//!    unverified bytes until [`apply`] returns `Ok`: write into a staging slot and commit
//!    only on success (the SUIT processor's ChangeSet does exactly this).
//!
//! Malformed input of any kind yields an [`ApplyError`] naming the byte offset in the
//! patch; nothing panics and no allocation is sized from an untrusted length beyond the
//! device's [`Limits`].
//!
//! # Why these choices
//!
//! * Not bsdiff: bsdiff's apply needs the whole old and new images (and the
//!   bzip2-compressed control/diff/extra streams) in memory. A COPY/ADD stream applies
//!   with a few hundred bytes of RAM, old image read from flash in place.
//! * DEFLATE (via `miniz_oxide`'s `no_std` inflate) rather than LZ4 for full images: on an
//!   LPWAN link every byte is airtime and duty cycle, and DEFLATE compresses TA code
//!   markedly better than LZ4; its cost is the ~11 KiB Huffman tables, once. Chunking caps
//!   the back-reference window at `chunk_size`, so the device needs a `chunk_size` output
//!   buffer instead of DEFLATE's 32 KiB window.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod apply;
mod error;
pub mod format;
mod io;

#[cfg(feature = "std")]
mod diff;

pub use apply::{apply, apply_full, read_header, ApplyReport, Expected, Limits};
pub use error::ApplyError;
pub use format::{PatchHeader, PatchKind};
pub use io::{ImageSink, IoError, OldImage, PatchSource};

#[cfg(feature = "std")]
pub use diff::{compress_full, diff, diff_with, DiffOptions, DEFAULT_CHUNK_SIZE};

/// A SHA-256 digest of an image.
pub type Digest = [u8; 32];

/// SHA-256 of `data` (the digest the patch header and [`Expected`] carry).
pub fn digest(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}
