//! Progress of a copy, counted once: a [`BlobSource`] wrapper that reports
//! the high-water mark of the bytes read, so a retry that re-sends bytes
//! never counts them twice and the bar never goes backwards.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atp_bundle::progress::Progress;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, ReadBuf};

use crate::push::BlobSource;

/// A blob source that moves `progress` as its bytes are read.
pub(super) struct Counted<'a> {
    inner: &'a dyn BlobSource,
    progress: Arc<dyn Progress>,
    high: Arc<AtomicU64>,
}

impl<'a> Counted<'a> {
    pub(super) fn new(inner: &'a dyn BlobSource, progress: Arc<dyn Progress>) -> Self {
        Self {
            inner,
            progress,
            high: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The blob is in place (sent, skipped or mounted): count the rest.
    pub(super) fn finish(&self, size: u64) {
        advance_to(&self.high, size, &*self.progress);
    }
}

fn advance_to(high: &AtomicU64, pos: u64, progress: &dyn Progress) {
    let prev = high.fetch_max(pos, Ordering::Relaxed);
    if pos > prev {
        progress.advance(pos - prev);
    }
}

impl BlobSource for Counted<'_> {
    fn open(
        &self,
        offset: u64,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let inner = self.inner.open(offset).await?;
            Ok(Box::new(CountingReader {
                inner,
                pos: offset,
                high: self.high.clone(),
                progress: self.progress.clone(),
            }) as Box<_>)
        })
    }
}

struct CountingReader {
    inner: Box<dyn AsyncRead + Send + Unpin>,
    pos: u64,
    high: Arc<AtomicU64>,
    progress: Arc<dyn Progress>,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            self.pos = self
                .pos
                .saturating_add((buf.filled().len() - before) as u64);
            advance_to(&self.high, self.pos, &*self.progress);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;

    #[derive(Default)]
    struct Sum(Mutex<u64>);
    impl Progress for Sum {
        fn advance(&self, bytes: u64) {
            *self.0.lock().unwrap() += bytes;
        }
    }

    #[tokio::test]
    async fn a_retried_read_is_counted_once() {
        let blob = bytes::Bytes::from(vec![7u8; 1000]);
        let sum = Arc::new(Sum::default());
        let counted = Counted::new(&blob, sum.clone());
        let mut first = counted.open(0).await.unwrap();
        let mut buf = vec![0u8; 600];
        first.read_exact(&mut buf).await.unwrap();
        // A retry resumes at 400 and reads to the end.
        let mut again = counted.open(400).await.unwrap();
        let mut rest = Vec::new();
        again.read_to_end(&mut rest).await.unwrap();
        counted.finish(1000);
        assert_eq!(*sum.0.lock().unwrap(), 1000);
    }
}
