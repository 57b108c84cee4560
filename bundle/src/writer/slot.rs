//! One blob's write handle: its bytes go to the blob's planned place in the
//! archive (positioned writes, so many slots fill at once) and through its
//! SHA-256 and CRC-32; `finish` checks size then digest and marks the slot
//! done for the commit.

use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{io_err, Shared, WriteError, DONE, FREE};
use crate::digest::Hasher;
use crate::Digest;

/// The write handle of one blob: bytes written go to the blob's place in the
/// archive and through a hasher. Call [`BlobSlot::finish`] at the end.
pub struct BlobSlot {
    pub(super) shared: Arc<Shared>,
    pub(super) index: usize,
    pub(super) written: u64,
    pub(super) hasher: Hasher,
    pub(super) crc: crc32fast::Hasher,
    pub(super) done: bool,
}

impl BlobSlot {
    pub fn digest(&self) -> &Digest {
        &self.shared.slots[self.index].digest
    }

    /// Announced size of the blob.
    pub fn size(&self) -> u64 {
        self.shared.slots[self.index].size
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Check size then digest; on success the blob is complete.
    pub fn finish(mut self) -> Result<(), WriteError> {
        let slot = &self.shared.slots[self.index];
        if self.written != self.hasher.len() {
            // A write past the end was refused; report the attempted size.
            return Err(WriteError::SizeMismatch {
                digest: slot.digest.clone(),
                expected: slot.size,
                found: self.written,
            });
        }
        std::mem::take(&mut self.hasher)
            .check(&slot.digest, slot.size)
            .map_err(WriteError::from_mismatch)?;
        let crc = std::mem::take(&mut self.crc).finalize();
        slot.crc.store(crc, Ordering::Release);
        slot.state.store(DONE, Ordering::Release);
        self.done = true;
        Ok(())
    }
}

impl Write for BlobSlot {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let slot = &self.shared.slots[self.index];
        let end = self.written + buf.len() as u64;
        if end > slot.size {
            self.written = end;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                WriteError::SizeMismatch {
                    digest: slot.digest.clone(),
                    expected: slot.size,
                    found: end,
                },
            ));
        }
        // Name the bundle's file: a full disk is the output's problem, not
        // the blob source's.
        self.shared
            .file
            .write_all_at(buf, slot.data_offset + self.hasher.len())
            .map_err(|e| io::Error::new(e.kind(), io_err(&self.shared.path)(e)))?;
        self.hasher.update(buf);
        self.crc.update(buf);
        self.written = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobSlot {
    fn drop(&mut self) {
        if !self.done {
            self.shared.slots[self.index]
                .state
                .store(FREE, Ordering::Release);
        }
    }
}
