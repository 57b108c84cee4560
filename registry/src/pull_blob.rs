//! Reading blobs from a registry: streamed with size then sha256
//! verification as they flow ([`BlobStream`]), and written to a sink with
//! resume by `Range` after a dropped connection.
//!
//! Never accepts a resumed response other than a 206 with exactly the
//! requested `Content-Range`, and never reports a blob good before its last
//! byte has been hashed.

use std::pin::Pin;
use std::task::{Context, Poll};

use atp_bundle::digest::{BlobMismatch, Hasher};
use atp_bundle::Digest;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::auth::Scope;
use crate::client::{header_map, resp_header, transport_error, unexpected, Client, ReqBody};
use crate::error::Error;
use crate::reference::Repository;

use crate::pull::{check_reported_digest, content_length};

/// A blob's bytes as a stream. Yields an error instead of the end of stream
/// when the size or digest is wrong. Holds a transfer permit while alive.
pub struct BlobStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl BlobStream {
    /// As an `AsyncRead`; a verification failure becomes an `InvalidData`
    /// I/O error wrapping [`Error`].
    pub fn into_async_read(self) -> impl tokio::io::AsyncRead + Send + Unpin {
        tokio_util::io::StreamReader::new(self.map(|r| {
            r.map_err(|e| match e {
                e @ Error::Blob { .. } => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                e => std::io::Error::other(e),
            })
        }))
    }
}

/// Parse `Content-Range: bytes <first>-<last>/<total|*>`.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (first, last) = (num(a)?, num(b)?);
    if last < first {
        return None;
    }
    let total = if total == "*" {
        None
    } else {
        Some(num(total)?)
    };
    if total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first, last, total))
}

impl Client {
    /// Stream a blob, verifying size and digest as it flows. The stream ends
    /// with an error (not a clean end) on any mismatch. No resume: use
    /// [`Client::fetch_blob_to`] for that.
    pub async fn blob_reader(
        &self,
        repo: &Repository,
        d: &Digest,
        size: u64,
    ) -> Result<BlobStream, Error> {
        let permit = self
            .inner
            .transfers
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("blobs/{d}"));
        let resp = self.blob_get(&reg, repo, &url, d, size, 0).await?;
        struct St {
            body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
            hasher: Hasher,
            digest: Digest,
            size: u64,
            url: Url,
            _permit: tokio::sync::OwnedSemaphorePermit,
        }
        let st = St {
            body: Box::pin(resp.bytes_stream()),
            hasher: Hasher::new(),
            digest: d.clone(),
            size,
            url,
            _permit: permit,
        };
        let stream = futures_util::stream::unfold(Some(st), |st| async move {
            let mut st = st?;
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    if st.hasher.len() > st.size {
                        let e = Error::Blob {
                            url: st.url.to_string(),
                            source: BlobMismatch::Size {
                                expected: st.digest.clone(),
                                expected_size: st.size,
                                found_size: st.hasher.len(),
                            },
                        };
                        return Some((Err(e), None));
                    }
                    Some((Ok(chunk), Some(st)))
                }
                Some(Err(e)) => Some((Err(transport_error(&Method::GET, &st.url, e)), None)),
                None => match st.hasher.check(&st.digest, st.size) {
                    Ok(()) => None,
                    Err(source) => Some((
                        Err(Error::Blob {
                            url: st.url.to_string(),
                            source,
                        }),
                        None,
                    )),
                },
            }
        });
        Ok(BlobStream {
            inner: Box::pin(stream),
        })
    }

    /// GET a blob from `offset`, checking status, `Content-Range` and
    /// `Content-Length` before any byte is read.
    async fn blob_get(
        &self,
        reg: &crate::client::Registry,
        repo: &Repository,
        url: &Url,
        d: &Digest,
        size: u64,
        offset: u64,
    ) -> Result<Response, Error> {
        let range = format!("bytes={offset}-");
        let headers = if offset > 0 {
            header_map(&[(RANGE, &range)])
        } else {
            Default::default()
        };
        let resp = self
            .send(
                reg,
                Method::GET,
                url,
                headers,
                ReqBody::Empty,
                &Scope::pull(repo.name()),
            )
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                what: format!("blob {d} in {repo}"),
                url: url.to_string(),
            });
        }
        if offset == 0 && status != StatusCode::OK {
            return Err(unexpected(&Method::GET, url, resp).await);
        }
        if offset > 0 {
            let want = Some((offset, size - 1, Some(size)));
            let got = resp_header(&resp, CONTENT_RANGE);
            if status != StatusCode::PARTIAL_CONTENT
                || got.as_deref().and_then(parse_content_range) != want
            {
                return Err(Error::Protocol {
                    url: url.to_string(),
                    reason: format!(
                        "asked for bytes {offset}-{} of {size}, got HTTP {} with Content-Range {:?}",
                        size - 1,
                        status.as_u16(),
                        got
                    ),
                });
            }
        }
        check_reported_digest(&resp, url, d)?;
        if let Some(n) = content_length(&resp) {
            if n != size - offset {
                return Err(Error::Blob {
                    url: url.to_string(),
                    source: BlobMismatch::Size {
                        expected: d.clone(),
                        expected_size: size,
                        found_size: offset + n,
                    },
                });
            }
        }
        Ok(resp)
    }

    /// Download a blob into `sink`, verifying size then digest, resuming with
    /// `Range` after a dropped connection. Bytes already written to `sink` are
    /// never rewritten; on a mismatch the caller must discard what it got.
    pub async fn fetch_blob_to<W>(
        &self,
        repo: &Repository,
        d: &Digest,
        size: u64,
        sink: &mut W,
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.fetch_blob_inner(repo, d, size, sink, true).await
    }

    /// [`Client::fetch_blob_to`] for a sink that hashes what it is given and
    /// refuses a digest mismatch itself (the bundle writer's blob slots), so
    /// that each byte is hashed once. The size is still enforced here: never
    /// more than `size` bytes reach `sink`, and fewer is an error.
    pub async fn fetch_blob_to_checking_sink<W>(
        &self,
        repo: &Repository,
        d: &Digest,
        size: u64,
        sink: &mut W,
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        self.fetch_blob_inner(repo, d, size, sink, false).await
    }

    async fn fetch_blob_inner<W>(
        &self,
        repo: &Repository,
        d: &Digest,
        size: u64,
        sink: &mut W,
        hash: bool,
    ) -> Result<(), Error>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let _permit = self
            .inner
            .transfers
            .acquire()
            .await
            .expect("semaphore never closed");
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("blobs/{d}"));
        let mut hasher = hash.then(Hasher::new);
        let mut got = 0u64;
        let mut backoff = self.inner.opts.retry.start();
        let blob_err = |source| Error::Blob {
            url: url.to_string(),
            source,
        };
        loop {
            let offset = got;
            let resp = self.blob_get(&reg, repo, &url, d, size, offset).await?;
            let mut body = resp.bytes_stream();
            let mut failure = None;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => {
                        got += chunk.len() as u64;
                        if got > size {
                            return Err(blob_err(BlobMismatch::Size {
                                expected: d.clone(),
                                expected_size: size,
                                found_size: got,
                            }));
                        }
                        if let Some(h) = hasher.as_mut() {
                            h.update(&chunk);
                        }
                        sink.write_all(&chunk).await.map_err(|source| Error::Sink {
                            digest: d.clone(),
                            source,
                        })?;
                    }
                    Err(e) => {
                        failure = Some(transport_error(&Method::GET, &url, e));
                        break;
                    }
                }
            }
            let Some(err) = failure else {
                break;
            };
            if !crate::client::is_transient(&err) {
                return Err(err);
            }
            match backoff.next_delay(None) {
                Some(delay) => {
                    tracing::warn!(
                        url = %url, got, of = size, error = %crate::client::first_line(&err),
                        "blob download interrupted; resuming, retrying ({} tries left)", backoff.tries_left()
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(Error::RetriesExhausted {
                        method: "GET".into(),
                        url: url.to_string(),
                        attempts: backoff.attempts(),
                        elapsed: backoff.elapsed(),
                        last: Box::new(err),
                    })
                }
            }
        }
        sink.flush().await.map_err(|source| Error::Sink {
            digest: d.clone(),
            source,
        })?;
        match hasher {
            Some(h) => h.check(d, size).map_err(blob_err),
            None if got != size => Err(blob_err(BlobMismatch::Size {
                expected: d.clone(),
                expected_size: size,
                found_size: got,
            })),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 0-99/100"),
            Some((0, 99, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19, None)));
        assert_eq!(parse_content_range("bytes 10-9/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes -1-2/3"), None);
        assert_eq!(parse_content_range("bytes 1-+2/3"), None);
    }
}
