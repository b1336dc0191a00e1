//! The three byte channels of [`crate::apply`]: patch in (sequential), old image (bounded
//! random access), new image out (sequential).

use alloc::vec::Vec;

/// A failure reported by a [`PatchSource`], [`OldImage`] or [`ImageSink`] implementation
/// (flash read error, staging slot full, …), with a short static description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError(pub &'static str);

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// The patch, read strictly front to back.
pub trait PatchSource {
    /// Fills some prefix of `buf` and returns its length; `Ok(0)` means end of patch.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError>;
}

impl PatchSource for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let n = buf.len().min(self.len());
        let (head, rest) = self.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(head);
        }
        *self = rest;
        Ok(n)
    }
}

impl<P: PatchSource + ?Sized> PatchSource for &mut P {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        (**self).read(buf)
    }
}

/// The installed image, read in place (e.g. from flash) in small pieces.
pub trait OldImage {
    /// Size of the image in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset..offset + buf.len()` (always within `size`).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError>;
}

impl OldImage for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let start = usize::try_from(offset).map_err(|_| IoError("offset beyond the image"))?;
        let end = start
            .checked_add(buf.len())
            .ok_or(IoError("offset beyond the image"))?;
        let src = self
            .get(start..end)
            .ok_or(IoError("read beyond the end of the image"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Where the new image goes, written strictly front to back (a staging slot).
pub trait ImageSink {
    /// Appends `data`.
    fn write(&mut self, data: &[u8]) -> Result<(), IoError>;
}

impl ImageSink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        self.extend_from_slice(data);
        Ok(())
    }
}

impl<S: ImageSink + ?Sized> ImageSink for &mut S {
    fn write(&mut self, data: &[u8]) -> Result<(), IoError> {
        (**self).write(data)
    }
}

/// Adapts a [`PatchSource`] to `ciborium_io::Read` (exact reads; end of input is an error).
pub(crate) struct Reader<P>(pub(crate) P);

/// Why an exact read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    /// The patch ended early.
    Eof,
    /// The source failed.
    Io(IoError),
}

impl<P: PatchSource> ciborium_io::Read for Reader<P> {
    type Error = ReadFailure;
    fn read_exact(&mut self, mut data: &mut [u8]) -> Result<(), ReadFailure> {
        while !data.is_empty() {
            let n = self.0.read(data).map_err(ReadFailure::Io)?;
            if n == 0 {
                return Err(ReadFailure::Eof);
            }
            data = data.get_mut(n..).ok_or(ReadFailure::Io(IoError(
                "patch source returned more bytes than asked",
            )))?;
        }
        Ok(())
    }
}
