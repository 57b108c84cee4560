//! Upload sources over a [`BundleInput`]: a blob's bytes read by position from
//! the plain tar, the volumes or the seekable zstd stream, handed to the
//! registry client as an `AsyncRead`.
//!
//! The blocking positional reads (and zstd decompression) run on tokio's
//! blocking pool, never on the async executor. Reads only; never writes to
//! the source media.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use atp_bundle::media::{BundleInput, ReadAt};
use atp_bundle::verify::BlobLocation;
use atp_registry::{BlobSource, FileSource};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes per read handed from the blocking reader to the upload.
const PIECE: usize = 1 << 20;

/// A source of the blob at `loc` of a bundle on any media: a plain tar
/// keeps the file fast path; volumes and zstd streams read by position.
pub fn blob_source(input: &BundleInput, loc: &BlobLocation) -> Box<dyn BlobSource> {
    match &input.plain_file {
        Some(path) => Box::new(FileSource {
            path: path.clone(),
            start: loc.data_offset,
        }),
        None => Box::new(ReadAtSource {
            src: input.tar(),
            start: loc.data_offset,
            size: loc.size,
        }),
    }
}

/// A blob at `start..start + size` of a [`ReadAt`].
pub struct ReadAtSource {
    pub src: Arc<dyn ReadAt>,
    pub start: u64,
    pub size: u64,
}

impl BlobSource for ReadAtSource {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(4);
        let src = self.src.clone();
        let end = self.start + self.size;
        let mut pos = (self.start + offset).min(end);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                while pos < end {
                    let mut buf = vec![0u8; PIECE.min((end - pos) as usize)];
                    let piece = match src.read_at(&mut buf, pos) {
                        Ok(0) => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("bundle ends early at {}", src.describe(pos)),
                        )),
                        Ok(n) => {
                            buf.truncate(n);
                            pos += n as u64;
                            Ok(buf)
                        }
                        Err(e) => Err(e),
                    };
                    let failed = piece.is_err();
                    if tx.blocking_send(piece).is_err() || failed {
                        return;
                    }
                }
            });
            Ok(Box::new(ChannelReader {
                rx,
                buf: Vec::new(),
                at: 0,
            }) as Box<dyn AsyncRead + Send + Unpin>)
        })
    }
}

/// Reads the pieces the blocking reader sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    at: usize,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.at < self.buf.len() {
                let n = out.remaining().min(self.buf.len() - self.at);
                let at = self.at;
                out.put_slice(&self.buf[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(v))) => {
                    self.buf = v;
                    self.at = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_the_blob_window_from_any_offset() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
        let src = ReadAtSource {
            src: Arc::new(data.clone()),
            start: 100,
            size: 2_500_000,
        };
        for offset in [0u64, 1, 1_048_576, 2_499_999, 2_500_000] {
            let mut r = src.open(offset).await.unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, &data[(100 + offset) as usize..2_500_100]);
        }
    }
}
