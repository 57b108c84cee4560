//! Blob bodies, streamed from the bundle by position in bounded chunks: at
//! most a few chunks per response are in memory, whatever the blob's size,
//! and their buffers go round (read into, hashed, sent, read into again).
//!
//! A whole-blob response is hashed as it is read, and its last chunk is held
//! back until the digest is checked: a blob whose bytes changed on the media
//! after verification is never finished as good. The body then ends with an
//! error, which closes the connection short of its `Content-Length`, and the
//! digest is logged. (A range cannot be checked on its own; the client
//! checks the whole blob.) Reads are blocking, so they run on the blocking
//! pool, never on the executor; a client that goes away stops the reads.

use std::io;
use std::sync::{Arc, Mutex};

use atp_bundle::digest::Hasher;
use atp_bundle::media::ReadAt;
use atp_bundle::Digest;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use super::log::Entry;

/// A response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, io::Error>;

/// Bytes read from the media per chunk.
pub const CHUNK: usize = 256 << 10;
/// Chunks queued per response ahead of a slow client.
const QUEUE: usize = 4;

/// What to send of one blob.
pub struct Slice {
    pub digest: Digest,
    /// The blob's first byte in the bundle's tar stream.
    pub data_offset: u64,
    /// Bytes `start..start+len` of the blob.
    pub start: u64,
    pub len: u64,
    /// The whole blob: hash it and hold the last chunk until it matches.
    pub check: bool,
}

/// Stream `slice` from `tar`; `entry` is logged when the body is done.
pub fn stream(tar: Arc<dyn ReadAt>, slice: Slice, mut entry: Entry) -> Body {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::task::spawn_blocking(move || produce(tar.as_ref(), &slice, &tx));
    entry.sent = 0;
    let chunks = futures_util::stream::unfold((rx, entry), |(mut rx, mut entry)| async move {
        let item: io::Result<Bytes> = rx.recv().await?;
        match &item {
            Ok(b) => entry.sent += b.len() as u64,
            Err(_) => {
                entry.aborted = true;
                // Let hyper flush what it holds (the head, when the error is
                // the first frame) before the error closes the connection:
                // the client sees a cut 200, not a connection with no answer.
                tokio::task::yield_now().await;
            }
        }
        Some((item.map(Frame::data), (rx, entry)))
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// Buffers a response has had back from hyper, ready to be read into again:
/// a chunk is neither allocated nor zero-filled per read.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// One chunk's bytes; the buffer goes back to its response's pool when
/// hyper has written (and dropped) the chunk.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(std::mem::take(&mut self.buf));
        }
    }
}

fn produce(tar: &dyn ReadAt, s: &Slice, tx: &mpsc::Sender<io::Result<Bytes>>) {
    let pool: Pool = Arc::default();
    let mut hasher = s.check.then(Hasher::new);
    let mut held: Option<Bytes> = None;
    let mut pos = 0u64;
    while pos < s.len {
        let n = (s.len - pos).min(CHUNK as u64) as usize;
        let reused = pool.lock().ok().and_then(|mut p| p.pop());
        let mut buf = reused.unwrap_or_else(|| vec![0u8; s.len.min(CHUNK as u64) as usize]);
        let at = s.data_offset + s.start + pos;
        if let Err(e) = tar.read_exact_at(&mut buf[..n], at) {
            tracing::error!(
                "reading blob {} at {}: {e}; the response was aborted",
                s.digest,
                tar.describe(at)
            );
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if let Some(h) = &mut hasher {
            h.update(&buf[..n]);
        }
        pos += n as u64;
        let chunk = Bytes::from_owner(Pooled {
            buf,
            len: n,
            pool: pool.clone(),
        });
        if let Some(prev) = held.replace(chunk) {
            if tx.blocking_send(Ok(prev)).is_err() {
                return; // the client went away
            }
        }
    }
    if let Some(h) = hasher {
        let (found, _) = h.finish();
        if found != s.digest {
            tracing::error!(
                "blob {} changed on the media after it was verified (now {found}); the response was aborted, not finished\nhint: the bundle file is being modified; stop serve, copy it to local disk that nothing else writes, and serve that",
                s.digest
            );
            let _ = tx.blocking_send(Err(io::Error::other(format!(
                "blob {} changed on the media after it was verified",
                s.digest
            ))));
            return;
        }
    }
    if let Some(last) = held {
        let _ = tx.blocking_send(Ok(last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::log::AccessLog;

    /// The body's bytes, and whether it ended with an error.
    async fn collect(tar: Vec<u8>, slice: Slice) -> (Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AccessLog::file(&dir.path().join("access.log")).unwrap());
        let entry = Entry::new(log, "127.0.0.1:1".parse().unwrap(), "GET", "/");
        let mut body = stream(Arc::new(tar), slice, entry);
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(f.data_ref().unwrap()),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    fn tar_with_blob(len: usize) -> (Vec<u8>, Digest) {
        let blob: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4093) as u8).collect();
        let digest = Digest::of(&blob);
        let mut tar = vec![0xAA; 512];
        tar.extend_from_slice(&blob);
        tar.extend_from_slice(&[0xBB; 100]);
        (tar, digest)
    }

    #[tokio::test]
    async fn a_blob_of_many_chunks_comes_out_whole_through_reused_buffers() {
        let len = 5 * CHUNK + 1234;
        let (tar, digest) = tar_with_blob(len);
        let whole = Slice {
            digest: digest.clone(),
            data_offset: 512,
            start: 0,
            len: len as u64,
            check: true,
        };
        let (out, failed) = collect(tar.clone(), whole).await;
        assert!(!failed);
        assert_eq!(out, tar[512..512 + len]);
        let part = Slice {
            digest,
            data_offset: 512,
            start: CHUNK as u64 - 3,
            len: 2 * CHUNK as u64 + 10,
            check: false,
        };
        let (out, failed) = collect(tar.clone(), part).await;
        assert!(!failed);
        assert_eq!(out, tar[512 + CHUNK - 3..512 + 3 * CHUNK + 7]);
    }

    #[tokio::test]
    async fn a_changed_blob_ends_in_an_error_before_its_last_chunk() {
        let len = 3 * CHUNK + 99;
        let (mut tar, digest) = tar_with_blob(len);
        tar[512 + 2 * CHUNK + 5] ^= 1;
        let slice = Slice {
            digest,
            data_offset: 512,
            start: 0,
            len: len as u64,
            check: true,
        };
        let (out, failed) = collect(tar, slice).await;
        assert!(failed);
        assert_eq!(out.len(), 3 * CHUNK, "the last chunk was held back");
    }
}
