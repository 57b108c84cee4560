//! Reading from a registry: manifests (exact bytes, digest-checked), existence
//! checks, and blobs streamed with size then sha256 verification, resumable
//! with `Range`.
//!
//! Never hands out a manifest whose digest disagrees with the reference or
//! `Docker-Content-Digest`, never accepts a resumed response other than a 206
//! with exactly the requested `Content-Range`, and never reports a blob good
//! before its last byte has been hashed.

use std::pin::Pin;
use std::task::{Context, Poll};

use atp_bundle::digest::{BlobMismatch, Hasher};
use atp_bundle::Digest;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::auth::Scope;
use crate::client::{header_map, resp_header, transport_error, unexpected, Client, ReqBody};
use crate::error::Error;
use crate::manifest::{is_schema1, sniff_media_type, Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use crate::reference::{Reference, Repository};

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");

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

fn content_length(resp: &Response) -> Option<u64> {
    resp_header(resp, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

fn check_reported_digest(resp: &Response, url: &Url, expected: &Digest) -> Result<(), Error> {
    if let Some(reported) = resp_header(resp, DOCKER_CONTENT_DIGEST) {
        // Only sha256 is comparable; other algorithms are not ours to judge.
        if reported.starts_with("sha256:") && reported != expected.to_string() {
            return Err(Error::ReportedDigest {
                url: url.to_string(),
                expected: expected.clone(),
                reported,
            });
        }
    }
    Ok(())
}

impl Client {
    /// Fetch a manifest or index by tag or digest, as exact bytes. When the
    /// reference has a digest the content must hash to it.
    pub async fn get_manifest(&self, r: &Reference) -> Result<Manifest, Error> {
        self.fetch_manifest(r.repository(), &r.url_reference(), r.digest())
            .await
    }

    /// Fetch a manifest by digest and verify it.
    pub async fn get_manifest_by_digest(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Manifest, Error> {
        self.fetch_manifest(repo, &digest.to_string(), Some(digest))
            .await
    }

    async fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Manifest, Error> {
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("manifests/{reference}"));
        let scope = Scope::pull(repo.name());
        let method = Method::GET;
        self.retrying(&method, &url, || async {
            let resp = self
                .send(
                    &reg,
                    Method::GET,
                    &url,
                    header_map(&[(ACCEPT, MANIFEST_ACCEPT.as_str())]),
                    ReqBody::Empty,
                    &scope,
                )
                .await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(Error::NotFound {
                        what: format!("manifest {repo}:{reference}"),
                        url: url.to_string(),
                    })
                }
                _ => return Err(unexpected(&method, &url, resp).await),
            }
            if let Some(n) = content_length(&resp).filter(|n| *n > MAX_MANIFEST_SIZE) {
                return Err(Error::ManifestTooLarge {
                    url: url.to_string(),
                    size: n,
                    limit: MAX_MANIFEST_SIZE,
                });
            }
            let content_type = resp_header(&resp, CONTENT_TYPE)
                .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
                .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
            let reported = resp_header(&resp, DOCKER_CONTENT_DIGEST);
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| transport_error(&method, &url, e))?;
                body.extend_from_slice(&chunk);
                if body.len() as u64 > MAX_MANIFEST_SIZE {
                    return Err(Error::ManifestTooLarge {
                        url: url.to_string(),
                        size: body.len() as u64,
                        limit: MAX_MANIFEST_SIZE,
                    });
                }
            }
            let media_type = content_type
                .or_else(|| sniff_media_type(&body))
                .unwrap_or_default();
            if is_schema1(&media_type) || sniff_media_type(&body).as_deref().is_some_and(is_schema1)
            {
                return Err(Error::Schema1 {
                    url: url.to_string(),
                });
            }
            let digest = Digest::of(&body);
            if let Some(exp) = expected {
                if exp != &digest {
                    return Err(Error::ManifestDigest {
                        url: url.to_string(),
                        expected: exp.clone(),
                        found: digest,
                    });
                }
            }
            if let Some(rep) = reported {
                if rep.starts_with("sha256:") && rep != digest.to_string() {
                    return Err(Error::ReportedDigest {
                        url: url.to_string(),
                        expected: digest,
                        reported: rep,
                    });
                }
            }
            // Validate the type now so callers never see one we cannot walk.
            crate::manifest::ManifestKind::parse(&media_type, &body)?;
            Ok(Manifest {
                bytes: Bytes::from(body),
                media_type,
                digest,
            })
        })
        .await
    }

    /// `HEAD` a manifest by tag or digest: its digest if present, `None` on 404.
    pub async fn manifest_exists(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Digest>, Error> {
        let parsed = match reference.parse::<Digest>() {
            Ok(d) => repo.digest(&d),
            Err(_) => repo.tag(reference)?,
        };
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("manifests/{reference}"));
        let resp = self
            .send(
                &reg,
                Method::HEAD,
                &url,
                header_map(&[(ACCEPT, MANIFEST_ACCEPT.as_str())]),
                ReqBody::Empty,
                &Scope::pull(repo.name()),
            )
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(unexpected(&Method::HEAD, &url, resp).await),
        }
        if let Some(d) = resp_header(&resp, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse().ok()) {
            if let Some(want) = parsed.digest() {
                if want != &d {
                    return Err(Error::ReportedDigest {
                        url: url.to_string(),
                        expected: want.clone(),
                        reported: d.to_string(),
                    });
                }
            }
            return Ok(Some(d));
        }
        // No usable header: fetch the bytes and hash them ourselves.
        Ok(Some(self.get_manifest(&parsed).await?.digest))
    }

    /// `HEAD` a blob: its size if present, `None` on 404.
    pub async fn blob_exists(&self, repo: &Repository, d: &Digest) -> Result<Option<u64>, Error> {
        let reg = self.registry(repo)?;
        self.head_blob(&reg, repo, d, &Scope::pull(repo.name()))
            .await
    }

    pub(crate) async fn head_blob(
        &self,
        reg: &crate::client::Registry,
        repo: &Repository,
        d: &Digest,
        scope: &Scope,
    ) -> Result<Option<u64>, Error> {
        let url = reg.url(repo, &format!("blobs/{d}"));
        let resp = self
            .send(
                reg,
                Method::HEAD,
                &url,
                Default::default(),
                ReqBody::Empty,
                scope,
            )
            .await?;
        match resp.status() {
            StatusCode::OK => {
                check_reported_digest(&resp, &url, d)?;
                Ok(Some(content_length(&resp).unwrap_or(0)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected(&Method::HEAD, &url, resp).await),
        }
    }

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
