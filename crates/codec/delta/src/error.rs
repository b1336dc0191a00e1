//! Why a patch was refused.

use crate::io::IoError;
pub(crate) use crate::io::ReadFailure;

/// Why [`crate::apply`] refused a patch. Offsets are byte offsets into the patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The patch source, old image or sink failed.
    #[error("I/O error while {stage}: {err}")]
    Io {
        /// What was being done.
        stage: &'static str,
        /// The implementation's error.
        err: IoError,
    },
    /// The patch ended before the new image was complete.
    #[error("patch truncated at byte {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// The patch is not well-formed.
    #[error("malformed patch at byte {offset}: {what}")]
    Malformed {
        /// Where the bad item starts.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A container version this crate does not know.
    #[error("unsupported patch version {0}")]
    UnsupportedVersion(u64),
    /// The patch is a delta but no old image was given ([`crate::apply_full`]).
    #[error("the patch is a delta and needs the installed image")]
    NeedsOldImage,
    /// A delta was offered but the caller did not say which old image it expects.
    #[error("a delta needs the expected digest of the installed image")]
    MissingExpectedOldDigest,
    /// A digest in the header is not the one the caller expects (wrong patch for this
    /// device or manifest).
    #[error("header.{field} is not the expected digest")]
    HeaderDigestMismatch {
        /// `old-digest` or `new-digest`.
        field: &'static str,
    },
    /// The installed image has another size than the patch was made for.
    #[error("installed image is {actual} bytes, the patch needs {expected}")]
    OldSizeMismatch {
        /// Size from the header.
        expected: u64,
        /// Size of the installed image.
        actual: u64,
    },
    /// The installed image's digest is not the one the patch was made for.
    #[error("installed image digest does not match header.old-digest")]
    OldDigestMismatch,
    /// The produced image's digest is not the expected one.
    #[error("new image digest does not match the expected digest")]
    NewDigestMismatch,
    /// The new image is larger than the device accepts.
    #[error("new image of {size} bytes exceeds the limit of {max}")]
    NewTooLarge {
        /// Size from the header.
        size: u64,
        /// [`crate::Limits::max_new_size`].
        max: u64,
    },
    /// The compressed image's chunk size is larger than the device accepts.
    #[error("chunk size {chunk_size} exceeds the limit of {max}")]
    ChunkTooLarge {
        /// Chunk size from the header.
        chunk_size: u32,
        /// [`crate::Limits::max_chunk_size`].
        max: u32,
    },
    /// A COPY reaches outside the old image.
    #[error("COPY at byte {offset} reads outside the installed image")]
    CopyOutOfRange {
        /// Where the COPY starts.
        offset: usize,
    },
    /// An instruction would produce more than `new-size` bytes.
    #[error("instruction at byte {offset} overruns header.new-size")]
    Overrun {
        /// Where the instruction starts.
        offset: usize,
    },
    /// Bytes follow the last needed item.
    #[error("trailing bytes after the image is complete (byte {offset})")]
    TrailingData {
        /// Offset of the first extra byte.
        offset: usize,
    },
    /// A DEFLATE chunk did not inflate to exactly its size.
    #[error("chunk at byte {offset} does not inflate: {what}")]
    Inflate {
        /// Where the chunk starts.
        offset: usize,
        /// What went wrong.
        what: &'static str,
    },
}

impl ApplyError {
    pub(crate) fn from_read(e: ReadFailure, offset: usize) -> Self {
        match e {
            ReadFailure::Eof => ApplyError::Truncated { offset },
            ReadFailure::Io(err) => ApplyError::Io {
                stage: "reading the patch",
                err,
            },
        }
    }

    pub(crate) fn from_decode<E: Into<ReadFailure>>(
        e: ciborium_ll::Error<E>,
        offset: usize,
    ) -> Self {
        match e {
            ciborium_ll::Error::Io(e) => Self::from_read(e.into(), offset),
            ciborium_ll::Error::Syntax(at) => ApplyError::Malformed {
                offset: at,
                what: "not well-formed CBOR",
            },
        }
    }
}
