//! Blob bodies, streamed from the bundle by position in bounded chunks: at
//! most a few chunks per response are in memory, whatever the blob's size.
//!
//! A whole-blob response is hashed as it is read, and its last chunk is held
//! back until the digest is checked: a blob whose bytes changed on the media
//! after verification is never finished as good. The body then ends with an
//! error, which closes the connection short of its `Content-Length`, and the
//! digest is logged. (A range cannot be checked on its own; the client
//! checks the whole blob.) Reads are blocking, so they run on the blocking
//! pool, never on the executor; a client that goes away stops the reads.

use std::io;
use std::sync::Arc;

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
            Err(_) => entry.aborted = true,
        }
        Some((item.map(Frame::data), (rx, entry)))
    });
    StreamBody::new(chunks).boxed_unsync()
}

fn produce(tar: &dyn ReadAt, s: &Slice, tx: &mpsc::Sender<io::Result<Bytes>>) {
    let mut hasher = s.check.then(Hasher::new);
    let mut held: Option<Bytes> = None;
    let mut pos = 0u64;
    while pos < s.len {
        let n = (s.len - pos).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        let at = s.data_offset + s.start + pos;
        if let Err(e) = tar.read_exact_at(&mut buf, at) {
            tracing::error!(
                "reading blob {} at {}: {e}; the response was aborted",
                s.digest,
                tar.describe(at)
            );
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if let Some(h) = &mut hasher {
            h.update(&buf);
        }
        pos += n as u64;
        if let Some(prev) = held.replace(Bytes::from(buf)) {
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
