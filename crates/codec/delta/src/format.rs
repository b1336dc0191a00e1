//! The patch container: a CBOR sequence (RFC 8742) of one header and instruction items.
//!
//! ```text
//! patch   = header, *item
//! header  = [ version: 1, kind: 0 / 1, new-size: uint, new-digest: bstr .size 32,
//!             old-size: uint, old-digest: bstr .size 32 / bstr .size 0, param: uint ]
//! ; kind 0 (delta):   old-size/old-digest describe the required installed image, param = 0
//! ;   item = add / copy
//! ;   add  = bstr                    ; append these bytes
//! ;   copy = (delta: int, len: uint) ; append old[cursor+delta .. cursor+delta+len],
//! ;                                  ; then cursor = cursor+delta+len (cursor starts at 0)
//! ; kind 1 (deflate): old-size 0, old-digest h'', param = chunk-size
//! ;   item = bstr                    ; raw DEFLATE of the next min(chunk-size, rest) bytes
//! ```
//!
//! Items stop exactly when `new-size` bytes have been produced; anything after that is an
//! error. All lengths are definite. Digests are SHA-256.

use crate::error::ApplyError;
use crate::Digest;
use ciborium_ll::{Decoder, Header};

/// The container version this crate writes and reads.
pub const VERSION: u64 = 1;
/// `kind` value of a delta patch.
pub const KIND_DELTA: u64 = 0;
/// `kind` value of a chunked-DEFLATE full image.
pub const KIND_DEFLATE: u64 = 1;
/// Number of elements in the header array.
pub const HEADER_LEN: usize = 7;

/// What a patch contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// COPY/ADD instructions against an installed image.
    Delta {
        /// Size in bytes of the image the patch applies to.
        old_size: u64,
        /// SHA-256 of the image the patch applies to.
        old_digest: Digest,
    },
    /// The full image as independent raw-DEFLATE chunks.
    Deflate {
        /// Uncompressed bytes per chunk (the last one may be shorter).
        chunk_size: u32,
    },
}

/// The decoded patch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchHeader {
    /// Delta or compressed full image.
    pub kind: PatchKind,
    /// Size in bytes of the image the patch produces.
    pub new_size: u64,
    /// SHA-256 of the image the patch produces.
    pub new_digest: Digest,
}

pub(crate) fn pull_uint<R: ciborium_io::Read>(
    dec: &mut Decoder<R>,
    what: &'static str,
) -> Result<u64, ApplyError>
where
    R::Error: Into<crate::error::ReadFailure>,
{
    let offset = dec.offset();
    match dec.pull().map_err(|e| ApplyError::from_decode(e, offset))? {
        Header::Positive(v) => Ok(v),
        _ => Err(ApplyError::Malformed { offset, what }),
    }
}

fn pull_bstr_into<R: ciborium_io::Read>(
    dec: &mut Decoder<R>,
    buf: &mut [u8],
    what: &'static str,
) -> Result<usize, ApplyError>
where
    R::Error: Into<crate::error::ReadFailure>,
{
    let offset = dec.offset();
    match dec.pull().map_err(|e| ApplyError::from_decode(e, offset))? {
        Header::Bytes(Some(len)) if len <= buf.len() => {
            let dst = buf
                .get_mut(..len)
                .ok_or(ApplyError::Malformed { offset, what })?;
            let at = dec.offset();
            ciborium_io::Read::read_exact(dec, dst)
                .map_err(|e| ApplyError::from_read(e.into(), at))?;
            Ok(len)
        }
        _ => Err(ApplyError::Malformed { offset, what }),
    }
}

/// Reads the header item from `dec`.
pub(crate) fn decode_header<R: ciborium_io::Read>(
    dec: &mut Decoder<R>,
) -> Result<PatchHeader, ApplyError>
where
    R::Error: Into<crate::error::ReadFailure>,
{
    let offset = dec.offset();
    match dec.pull().map_err(|e| ApplyError::from_decode(e, offset))? {
        Header::Array(Some(HEADER_LEN)) => {}
        _ => {
            return Err(ApplyError::Malformed {
                offset,
                what: "header: expected an array of 7 elements",
            })
        }
    }
    let version = pull_uint(dec, "header.version: expected uint")?;
    if version != VERSION {
        return Err(ApplyError::UnsupportedVersion(version));
    }
    let kind_at = dec.offset();
    let kind = pull_uint(dec, "header.kind: expected uint")?;
    let new_size = pull_uint(dec, "header.new-size: expected uint")?;
    let mut new_digest = [0u8; 32];
    let n = pull_bstr_into(dec, &mut new_digest, "header.new-digest: expected bstr(32)")?;
    if n != 32 {
        return Err(ApplyError::Malformed {
            offset: kind_at,
            what: "header.new-digest: expected 32 bytes",
        });
    }
    let old_size = pull_uint(dec, "header.old-size: expected uint")?;
    let old_at = dec.offset();
    let mut old_digest = [0u8; 32];
    let old_len = pull_bstr_into(dec, &mut old_digest, "header.old-digest: expected bstr")?;
    let param_at = dec.offset();
    let param = pull_uint(dec, "header.param: expected uint")?;
    let kind = match kind {
        KIND_DELTA => {
            if old_len != 32 {
                return Err(ApplyError::Malformed {
                    offset: old_at,
                    what: "header.old-digest: a delta needs 32 bytes",
                });
            }
            if param != 0 {
                return Err(ApplyError::Malformed {
                    offset: param_at,
                    what: "header.param: must be 0 for a delta",
                });
            }
            PatchKind::Delta {
                old_size,
                old_digest,
            }
        }
        KIND_DEFLATE => {
            if old_len != 0 || old_size != 0 {
                return Err(ApplyError::Malformed {
                    offset: old_at,
                    what: "header.old-*: a full image has old-size 0 and an empty old-digest",
                });
            }
            let chunk_size =
                u32::try_from(param)
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or(ApplyError::Malformed {
                        offset: param_at,
                        what: "header.param: chunk size must be 1..2^32",
                    })?;
            PatchKind::Deflate { chunk_size }
        }
        _ => {
            return Err(ApplyError::Malformed {
                offset: kind_at,
                what: "header.kind: expected 0 (delta) or 1 (deflate)",
            })
        }
    };
    Ok(PatchHeader {
        kind,
        new_size,
        new_digest,
    })
}

/// CBOR writing for the TAM side.
#[cfg(feature = "std")]
pub(crate) mod enc {
    use super::*;
    use alloc::vec::Vec;
    use core::convert::Infallible;

    /// A growable buffer whose writes cannot fail.
    pub(crate) struct VecWriter<'a>(&'a mut Vec<u8>);

    impl ciborium_io::Write for VecWriter<'_> {
        type Error = Infallible;
        fn write_all(&mut self, data: &[u8]) -> Result<(), Infallible> {
            self.0.extend_from_slice(data);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    /// A CBOR encoder into a byte vector.
    pub(crate) struct Enc(Vec<u8>);

    impl Enc {
        pub(crate) fn new() -> Self {
            Enc(Vec::new())
        }
        pub(crate) fn head(&mut self, h: Header) {
            match ciborium_ll::Encoder::from(VecWriter(&mut self.0)).push(h) {
                Ok(()) => {}
                Err(never) => match never {},
            }
        }
        pub(crate) fn bytes(&mut self, b: &[u8]) {
            match ciborium_ll::Encoder::from(VecWriter(&mut self.0)).bytes(b, None) {
                Ok(()) => {}
                Err(never) => match never {},
            }
        }
        pub(crate) fn int(&mut self, v: i64) {
            if v >= 0 {
                self.head(Header::Positive(v.unsigned_abs()));
            } else {
                // CBOR negative n encodes -1 - n.
                self.head(Header::Negative(v.unsigned_abs() - 1));
            }
        }
        pub(crate) fn header(&mut self, h: &PatchHeader) {
            self.head(Header::Array(Some(HEADER_LEN)));
            self.head(Header::Positive(VERSION));
            match h.kind {
                PatchKind::Delta { .. } => self.head(Header::Positive(KIND_DELTA)),
                PatchKind::Deflate { .. } => self.head(Header::Positive(KIND_DEFLATE)),
            }
            self.head(Header::Positive(h.new_size));
            self.bytes(&h.new_digest);
            match h.kind {
                PatchKind::Delta {
                    old_size,
                    old_digest,
                } => {
                    self.head(Header::Positive(old_size));
                    self.bytes(&old_digest);
                    self.head(Header::Positive(0));
                }
                PatchKind::Deflate { chunk_size } => {
                    self.head(Header::Positive(0));
                    self.bytes(&[]);
                    self.head(Header::Positive(u64::from(chunk_size)));
                }
            }
        }
        pub(crate) fn finish(self) -> Vec<u8> {
            self.0
        }
    }
}
