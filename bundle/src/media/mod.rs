//! Removable media (spec section 9): a bundle split into volumes
//! `FILE.tar.001`, `FILE.tar.002`, ... with a signed `FILE.tar.volumes.json`,
//! optionally compressed as seekable zstd (`FILE.tar.zst`).
//!
//! - [`volumes`]: the `volumes.json` model, its signature, names and sizes
//! - [`multi`]: the volumes read in place as one stream, each one hashed
//! - [`seekable`]: the seekable zstd writer and the bounded reader
//! - [`input`]: [`BundleInput`], one way to open any of these for reading
//! - [`write`]: turn a finished bundle into volumes (the `create` side)
//! - [`check`]: `verify-media`, every volume against `volumes.json`
//!
//! The reading side opens every file read-only. It never writes, renames or
//! deletes anything on the source media and never reassembles the volumes on
//! disk: the tar is presented as one stream with positional reads.

pub mod check;
pub mod input;
pub mod multi;
pub mod seekable;
pub mod volumes;
pub mod write;

use std::io;

pub use input::{BundleInput, MediaError};
pub use volumes::{parse_split_size, Compression, VolumeEntry, VolumesFile};

/// Positional reads over something that holds a bundle's bytes (a file, a
/// set of volumes, a seekable zstd stream). Shared by many readers at once.
pub trait ReadAt: Send + Sync {
    /// Read up to `buf.len()` bytes at `offset`; 0 only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Total length in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `offset` sits, for messages ("byte N of volume X").
    fn describe(&self, offset: u64) -> String {
        format!("byte {offset}")
    }

    /// Fill `buf` from `offset` or fail with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("unexpected end of data at {}", self.describe(offset)),
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = (offset.min(self.len() as u64)) as usize;
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

/// A sequential `Read` over a [`ReadAt`], from `pos` up to `end`.
pub struct Cursor {
    src: std::sync::Arc<dyn ReadAt>,
    pos: u64,
    end: u64,
}

impl Cursor {
    pub fn new(src: std::sync::Arc<dyn ReadAt>, start: u64, end: u64) -> Self {
        Self {
            src,
            pos: start,
            end,
        }
    }
}

impl io::Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("data ends early at {}", self.src.describe(self.pos)),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}
