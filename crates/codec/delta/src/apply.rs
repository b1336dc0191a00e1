//! Device side: streaming, bounded-memory application of a patch.

use crate::error::ApplyError;
use crate::format::{decode_header, pull_uint, PatchHeader, PatchKind};
use crate::io::{ImageSink, OldImage, PatchSource, Reader};
use crate::Digest;
use alloc::boxed::Box;
use alloc::vec;
use ciborium_ll::{Decoder, Header};
use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use sha2::{Digest as _, Sha256};
use subtle_eq::ct_eq;

/// Size of the stack buffer used to move bytes (old image → sink, patch → sink/inflate).
const BUF: usize = 256;

/// What the caller knows the patch must do, from the signed manifest and its own records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// SHA-256 of the installed image a delta must apply to (required for a delta).
    pub old_digest: Option<Digest>,
    /// SHA-256 of the image the patch must produce.
    pub new_digest: Digest,
}

/// Device resource limits, checked from the header before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest new image accepted (bytes).
    pub max_new_size: u64,
    /// Largest DEFLATE chunk accepted: the apply allocates one buffer of this size.
    pub max_chunk_size: u32,
}

impl Default for Limits {
    /// 16 MiB images, 32 KiB chunks.
    fn default() -> Self {
        Limits {
            max_new_size: 16 << 20,
            max_chunk_size: 32 << 10,
        }
    }
}

/// What an applied patch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyReport {
    /// The patch header.
    pub header: PatchHeader,
    /// Bytes copied from the old image.
    pub copied: u64,
    /// Bytes taken from the patch (ADD literals, or inflated bytes of a full image).
    pub added: u64,
    /// Number of instructions (delta) or chunks (full image).
    pub items: u64,
}

mod subtle_eq {
    /// Equality of two digests without an early exit.
    pub(super) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

/// Reads only the header of a patch (e.g. to decide whether an old image is needed).
pub fn read_header<P: PatchSource>(patch: P) -> Result<PatchHeader, ApplyError> {
    let mut dec = Decoder::from(Reader(patch));
    decode_header(&mut dec)
}

/// Applies a compressed full image; a delta is refused with [`ApplyError::NeedsOldImage`].
pub fn apply_full<P: PatchSource, W: ImageSink>(
    patch: P,
    sink: &mut W,
    new_digest: &Digest,
    limits: &Limits,
) -> Result<ApplyReport, ApplyError> {
    run::<P, NoImage, W>(
        patch,
        None,
        sink,
        &Expected {
            old_digest: None,
            new_digest: *new_digest,
        },
        limits,
    )
}

/// Applies a delta against `old` or a compressed full image (then `old` is not read),
/// streaming into `sink`. See the crate docs for the order of checks; on `Err` the sink
/// may hold a partial image and must be discarded.
pub fn apply<P: PatchSource, O: OldImage, W: ImageSink>(
    patch: P,
    old: &mut O,
    sink: &mut W,
    expected: &Expected,
    limits: &Limits,
) -> Result<ApplyReport, ApplyError> {
    run(patch, Some(old), sink, expected, limits)
}

/// Stand-in old image for [`apply_full`].
struct NoImage;

impl OldImage for NoImage {
    fn size(&self) -> u64 {
        0
    }
    fn read_at(&mut self, _: u64, _: &mut [u8]) -> Result<(), crate::IoError> {
        Err(crate::IoError("no old image"))
    }
}

fn run<P: PatchSource, O: OldImage, W: ImageSink>(
    patch: P,
    old: Option<&mut O>,
    sink: &mut W,
    expected: &Expected,
    limits: &Limits,
) -> Result<ApplyReport, ApplyError> {
    let mut dec = Decoder::from(Reader(patch));
    let header = decode_header(&mut dec)?;
    if !ct_eq(&header.new_digest, &expected.new_digest) {
        return Err(ApplyError::HeaderDigestMismatch {
            field: "new-digest",
        });
    }
    if header.new_size > limits.max_new_size {
        return Err(ApplyError::NewTooLarge {
            size: header.new_size,
            max: limits.max_new_size,
        });
    }
    let mut report = ApplyReport {
        header,
        copied: 0,
        added: 0,
        items: 0,
    };
    let mut hasher = Sha256::new();
    match header.kind {
        PatchKind::Delta {
            old_size,
            old_digest,
        } => {
            let old = old.ok_or(ApplyError::NeedsOldImage)?;
            let want = expected
                .old_digest
                .ok_or(ApplyError::MissingExpectedOldDigest)?;
            if !ct_eq(&old_digest, &want) {
                return Err(ApplyError::HeaderDigestMismatch {
                    field: "old-digest",
                });
            }
            verify_old(old, old_size, &old_digest)?;
            apply_delta(&mut dec, old, old_size, sink, &mut hasher, &mut report)?;
        }
        PatchKind::Deflate { chunk_size } => {
            if chunk_size > limits.max_chunk_size {
                return Err(ApplyError::ChunkTooLarge {
                    chunk_size,
                    max: limits.max_chunk_size,
                });
            }
            apply_deflate(&mut dec, chunk_size, sink, &mut hasher, &mut report)?;
        }
    }
    // Nothing may follow the last item.
    let end = dec.offset();
    let mut probe = [0u8; 1];
    match ciborium_io::Read::read_exact(&mut dec, &mut probe) {
        Err(crate::error::ReadFailure::Eof) => {}
        Err(crate::error::ReadFailure::Io(err)) => {
            return Err(ApplyError::Io {
                stage: "reading the patch",
                err,
            })
        }
        Ok(()) => return Err(ApplyError::TrailingData { offset: end }),
    }
    let got: Digest = hasher.finalize().into();
    if !ct_eq(&got, &expected.new_digest) {
        return Err(ApplyError::NewDigestMismatch);
    }
    Ok(report)
}

/// Checks the installed image's size and digest before anything is written.
fn verify_old<O: OldImage>(old: &mut O, size: u64, digest: &Digest) -> Result<(), ApplyError> {
    let actual = old.size();
    if actual != size {
        return Err(ApplyError::OldSizeMismatch {
            expected: size,
            actual,
        });
    }
    let mut hasher = Sha256::new();
    let mut buf = [0u8; BUF];
    let mut pos = 0u64;
    while pos < size {
        let n = usize::try_from((size - pos).min(BUF as u64)).unwrap_or(BUF);
        let chunk = buf.get_mut(..n).unwrap_or(&mut []);
        old.read_at(pos, chunk).map_err(|err| ApplyError::Io {
            stage: "reading the installed image",
            err,
        })?;
        hasher.update(&*chunk);
        pos += n as u64;
    }
    let got: Digest = hasher.finalize().into();
    if ct_eq(&got, digest) {
        Ok(())
    } else {
        Err(ApplyError::OldDigestMismatch)
    }
}

fn emit<W: ImageSink>(sink: &mut W, hasher: &mut Sha256, data: &[u8]) -> Result<(), ApplyError> {
    hasher.update(data);
    sink.write(data).map_err(|err| ApplyError::Io {
        stage: "writing the new image",
        err,
    })
}

fn apply_delta<P: PatchSource, O: OldImage, W: ImageSink>(
    dec: &mut Decoder<Reader<P>>,
    old: &mut O,
    old_size: u64,
    sink: &mut W,
    hasher: &mut Sha256,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let new_size = report.header.new_size;
    let mut produced = 0u64;
    let mut cursor = 0u64;
    let mut buf = [0u8; BUF];
    while produced < new_size {
        let at = dec.offset();
        let head = dec.pull().map_err(|e| ApplyError::from_decode(e, at))?;
        report.items += 1;
        match head {
            Header::Bytes(Some(len)) => {
                let len64 = len as u64;
                if len == 0 || len64 > new_size - produced {
                    return Err(if len == 0 {
                        ApplyError::Malformed {
                            offset: at,
                            what: "empty ADD",
                        }
                    } else {
                        ApplyError::Overrun { offset: at }
                    });
                }
                let mut left = len;
                while left > 0 {
                    let n = left.min(BUF);
                    let chunk = buf.get_mut(..n).unwrap_or(&mut []);
                    let pos = dec.offset();
                    ciborium_io::Read::read_exact(dec, chunk)
                        .map_err(|e| ApplyError::from_read(e, pos))?;
                    emit(sink, hasher, chunk)?;
                    left -= n;
                }
                produced += len64;
                report.added += len64;
            }
            Header::Positive(_) | Header::Negative(_) => {
                let start = match head {
                    Header::Positive(d) => cursor.checked_add(d),
                    // CBOR negative n is -1 - n.
                    Header::Negative(n) => n.checked_add(1).and_then(|d| cursor.checked_sub(d)),
                    _ => None,
                }
                .ok_or(ApplyError::CopyOutOfRange { offset: at })?;
                let len = pull_uint(dec, "COPY: expected uint length after the offset")?;
                if len == 0 {
                    return Err(ApplyError::Malformed {
                        offset: at,
                        what: "empty COPY",
                    });
                }
                let end = start
                    .checked_add(len)
                    .filter(|e| *e <= old_size)
                    .ok_or(ApplyError::CopyOutOfRange { offset: at })?;
                if len > new_size - produced {
                    return Err(ApplyError::Overrun { offset: at });
                }
                let mut pos = start;
                while pos < end {
                    let n = usize::try_from((end - pos).min(BUF as u64)).unwrap_or(BUF);
                    let chunk = buf.get_mut(..n).unwrap_or(&mut []);
                    old.read_at(pos, chunk).map_err(|err| ApplyError::Io {
                        stage: "reading the installed image",
                        err,
                    })?;
                    emit(sink, hasher, chunk)?;
                    pos += n as u64;
                }
                cursor = end;
                produced += len;
                report.copied += len;
            }
            _ => {
                return Err(ApplyError::Malformed {
                    offset: at,
                    what: "expected an ADD (bstr) or a COPY (int, uint)",
                })
            }
        }
    }
    Ok(())
}

fn apply_deflate<P: PatchSource, W: ImageSink>(
    dec: &mut Decoder<Reader<P>>,
    chunk_size: u32,
    sink: &mut W,
    hasher: &mut Sha256,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let new_size = report.header.new_size;
    if new_size == 0 {
        return Ok(());
    }
    let chunk_cap = usize::try_from(chunk_size)
        .unwrap_or(usize::MAX)
        .min(usize::try_from(new_size).unwrap_or(usize::MAX));
    let mut out = vec![0u8; chunk_cap];
    let mut state: Box<DecompressorOxide> = Box::default();
    let mut inbuf = [0u8; BUF];
    let mut produced = 0u64;
    while produced < new_size {
        let at = dec.offset();
        let want = usize::try_from((new_size - produced).min(u64::from(chunk_size)))
            .unwrap_or(chunk_cap)
            .min(chunk_cap);
        let clen = match dec.pull().map_err(|e| ApplyError::from_decode(e, at))? {
            Header::Bytes(Some(n)) if n > 0 => n,
            _ => {
                return Err(ApplyError::Malformed {
                    offset: at,
                    what: "expected a non-empty DEFLATE chunk (bstr)",
                })
            }
        };
        report.items += 1;
        state.init();
        let target = out.get_mut(..want).unwrap_or(&mut []);
        let mut out_pos = 0usize;
        let mut left = clen;
        let mut done = false;
        while !done {
            if left == 0 {
                return Err(ApplyError::Inflate {
                    offset: at,
                    what: "compressed data ends before the chunk is complete",
                });
            }
            let n = left.min(BUF);
            let piece = inbuf.get_mut(..n).unwrap_or(&mut []);
            let pos = dec.offset();
            ciborium_io::Read::read_exact(dec, piece).map_err(|e| ApplyError::from_read(e, pos))?;
            left -= n;
            let mut input: &[u8] = piece;
            loop {
                let mut flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
                if left > 0 {
                    flags |= TINFL_FLAG_HAS_MORE_INPUT;
                }
                let (status, used, written) = decompress(&mut state, input, target, out_pos, flags);
                out_pos += written;
                input = input.get(used..).unwrap_or(&[]);
                match status {
                    TINFLStatus::Done => {
                        if !input.is_empty() || left > 0 {
                            return Err(ApplyError::Inflate {
                                offset: at,
                                what: "bytes after the end of the DEFLATE stream",
                            });
                        }
                        if out_pos != want {
                            return Err(ApplyError::Inflate {
                                offset: at,
                                what: "chunk inflates to fewer bytes than its size",
                            });
                        }
                        done = true;
                        break;
                    }
                    TINFLStatus::NeedsMoreInput => {
                        if input.is_empty() {
                            break;
                        }
                        if used == 0 && written == 0 {
                            return Err(ApplyError::Inflate {
                                offset: at,
                                what: "no progress",
                            });
                        }
                    }
                    TINFLStatus::HasMoreOutput => {
                        return Err(ApplyError::Inflate {
                            offset: at,
                            what: "chunk inflates to more bytes than its size",
                        })
                    }
                    TINFLStatus::FailedCannotMakeProgress => {
                        return Err(ApplyError::Inflate {
                            offset: at,
                            what: "compressed data ends before the chunk is complete",
                        })
                    }
                    _ => {
                        return Err(ApplyError::Inflate {
                            offset: at,
                            what: "invalid DEFLATE data",
                        })
                    }
                }
            }
        }
        let data = out.get(..want).unwrap_or(&[]);
        emit(sink, hasher, data)?;
        produced += want as u64;
        report.added += want as u64;
    }
    Ok(())
}
