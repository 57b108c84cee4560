//! Buffered input for the verifier: one large read buffer, an absolute
//! offset, and slices of the buffer handed straight to the hasher so blob
//! bytes are never copied twice.
//!
//! Never reads ahead more than one buffer, so memory stays flat. A source
//! that can move ahead without reading (a file read by position) is told to
//! when the verifier leaves a blob's data to the parallel hashers.

use std::io::{self, Read};

use crate::format::ustar::BLOCK;

use super::READ_BUFFER;

/// Buffered input that tracks the absolute offset and hands out slices of
/// its buffer, so data is hashed without being copied again.
pub(super) struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pub(super) offset: u64,
    /// Moves the source ahead without reading, when it can.
    skip: Option<fn(&mut R, u64)>,
}

impl<R: Read> Input<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            offset: 0,
            skip: None,
        }
    }

    /// Input over a source that `skip` moves ahead without reading.
    pub(super) fn skipping(inner: R, skip: fn(&mut R, u64)) -> Self {
        Self {
            skip: Some(skip),
            ..Self::new(inner)
        }
    }

    /// Bytes read from the source and not yet handed out.
    pub(super) fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Move `n` bytes ahead: what is buffered is dropped, the rest skipped
    /// at the source when it can (else read and dropped). The caller knows
    /// the source holds them.
    pub(super) fn skip_ahead(&mut self, n: u64) -> io::Result<()> {
        let buffered = ((self.end - self.start) as u64).min(n);
        self.consume(buffered as usize);
        let rest = n - buffered;
        match self.skip {
            Some(skip) if rest > 0 => {
                skip(&mut self.inner, rest);
                self.offset += rest;
            }
            _ => {
                self.stream(rest, |_| {})?;
            }
        }
        Ok(())
    }

    pub(super) fn fill(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => {
                        self.end = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Feed up to `n` bytes to `f`; returns how many there were.
    pub(super) fn stream(&mut self, n: u64, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut done = 0;
        while done < n {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min((n - done).min(usize::MAX as u64) as usize);
            f(&chunk[..take]);
            self.consume(take);
            done += take as u64;
        }
        Ok(done)
    }

    /// Read one block; returns the number of bytes read (512 unless at EOF).
    pub(super) fn block(&mut self, out: &mut [u8; 512]) -> io::Result<usize> {
        let mut got = 0;
        self.stream(BLOCK, |c| {
            out[got..got + c.len()].copy_from_slice(c);
            got += c.len();
        })?;
        Ok(got)
    }
}
