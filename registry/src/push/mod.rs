//! Writing to a registry: blobs (HEAD skip, cross-repository mount, monolithic
//! PUT or chunked PATCH with resume) and manifests (exact bytes, last).
//!
//! Each upload request is retried on its own, rebuilding its body from the
//! [`BlobSource`]; after a reset, 416 or 5xx the upload resumes from the
//! offset the registry reports. Never sends credentials to a host other than
//! the registry (see `client`), never reports success without the registry's
//! 201 and a matching `Docker-Content-Digest`.

use std::io;
use std::path::PathBuf;

use atp_bundle::Digest;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::header::{HeaderName, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncSeekExt};
use url::Url;

use crate::auth::Scope;
use crate::client::{
    first_line, header_map, is_transient, resp_header, unexpected, Client, Registry, ReqBody,
};
use crate::error::Error;
use crate::pull::DOCKER_CONTENT_DIGEST;
use crate::reference::Repository;

const CHUNK_MIN_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-min-length");

/// Where a blob's bytes come from. `open` may be called many times: once per
/// attempt, at the offset to resume from.
pub trait BlobSource: Send + Sync {
    /// The content from `offset` to the end of the blob.
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>>;
}

impl BlobSource for Bytes {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        let rest = self.slice((offset as usize).min(self.len())..);
        Box::pin(async move { Ok(Box::new(io::Cursor::new(rest)) as Box<_>) })
    }
}

/// A blob stored in a file, starting at byte `start` (e.g. inside a bundle tar).
#[derive(Clone, Debug)]
pub struct FileSource {
    pub path: PathBuf,
    pub start: u64,
}

impl FileSource {
    /// The whole file is the blob.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            start: 0,
        }
    }
}

impl BlobSource for FileSource {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let mut f = tokio::fs::File::open(&self.path)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
            f.seek(io::SeekFrom::Start(self.start + offset)).await?;
            Ok(Box::new(f) as Box<_>)
        })
    }
}

/// What [`Client::push_blob`] had to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry already had the blob in this repository.
    Skipped,
    /// Mounted from another repository on the same registry; no bytes sent.
    Mounted { from: Repository },
    /// Uploaded.
    Uploaded,
}

struct Session {
    url: Url,
    /// `OCI-Chunk-Min-Length`, when the registry announced one.
    min_chunk: Option<u64>,
}

fn reported_range_end(resp: &Response) -> Option<Option<u64>> {
    // `Range: 0-N` means bytes 0..=N are stored. Distribution reports `0-0`
    // for both zero and one byte, so that value is "unknown".
    let v = resp_header(resp, RANGE)?;
    let v = v.trim().strip_prefix("bytes=").unwrap_or(v.trim());
    let (a, b) = v.split_once('-')?;
    if a != "0" {
        return None;
    }
    let end: u64 = b.parse().ok()?;
    Some(if end == 0 { None } else { Some(end + 1) })
}

enum Step {
    /// Blob committed.
    Done,
    /// Chunk accepted; continue from this offset.
    Next(u64),
}

impl Client {
    /// Upload one blob unless the registry already has it. Tries to mount it
    /// from `mount_from` (same registry only) first. The body is rebuilt from
    /// `source` for every attempt.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        d: &Digest,
        size: u64,
        source: &dyn BlobSource,
        mount_from: &[Repository],
    ) -> Result<PushOutcome, Error> {
        let _permit = self
            .inner
            .transfers
            .acquire()
            .await
            .expect("semaphore never closed");
        let reg = self.registry(repo)?;
        let mounts: Vec<&Repository> = mount_from
            .iter()
            .filter(|m| m.registry() == repo.registry() && *m != repo)
            .collect();
        let mut scope = Scope::push(repo.name());
        for m in &mounts {
            scope = scope.with_pull(m.name());
        }
        if let Some(found) = self.head_blob(&reg, repo, d, &scope).await? {
            if found == size || found == 0 {
                tracing::debug!(%repo, digest = %d, "blob already present");
                return Ok(PushOutcome::Skipped);
            }
        }
        let mut session = None;
        for from in mounts {
            let url = reg.url(
                repo,
                &format!("blobs/uploads/?mount={d}&from={}", from.name()),
            );
            let resp = self
                .send(&reg, Method::POST, &url, len0(), ReqBody::Empty, &scope)
                .await?;
            match resp.status() {
                StatusCode::CREATED => {
                    check_digest_header(&resp, &url, d)?;
                    tracing::debug!(%repo, digest = %d, %from, "blob mounted");
                    return Ok(PushOutcome::Mounted { from: from.clone() });
                }
                StatusCode::ACCEPTED if session.is_none() => {
                    session = Some(self.session_from(&reg, &url, &resp)?);
                }
                StatusCode::ACCEPTED => {
                    // A second fallback session: abandon it, best effort.
                    if let Ok(s) = self.session_from(&reg, &url, &resp) {
                        let _ = reg.http.delete(s.url).send().await;
                    }
                }
                status => tracing::debug!(%from, status = status.as_u16(), "mount refused"),
            }
        }
        let session = match session {
            Some(s) => s,
            None => self.start_upload(&reg, repo, &scope).await?,
        };
        self.upload(&reg, repo, d, size, source, &scope, session)
            .await?;
        Ok(PushOutcome::Uploaded)
    }

    fn session_from(&self, reg: &Registry, req: &Url, resp: &Response) -> Result<Session, Error> {
        let loc = resp_header(resp, LOCATION).ok_or_else(|| Error::Protocol {
            url: req.to_string(),
            reason: "upload response has no Location".into(),
        })?;
        Ok(Session {
            url: reg.resolve_location(req, &loc)?,
            min_chunk: min_chunk(resp),
        })
    }

    async fn start_upload(
        &self,
        reg: &Registry,
        repo: &Repository,
        scope: &Scope,
    ) -> Result<Session, Error> {
        let url = reg.url(repo, "blobs/uploads/");
        let resp = self
            .send(reg, Method::POST, &url, len0(), ReqBody::Empty, scope)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(unexpected(&Method::POST, &url, resp).await);
        }
        self.session_from(reg, &url, &resp)
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload(
        &self,
        reg: &Registry,
        repo: &Repository,
        d: &Digest,
        size: u64,
        source: &dyn BlobSource,
        scope: &Scope,
        mut session: Session,
    ) -> Result<(), Error> {
        let opts = &self.inner.opts;
        let monolithic = size <= opts.monolithic_max;
        let mut offset = 0u64;
        let mut backoff = opts.retry.start();
        loop {
            let chunk = opts.chunk_size.max(session.min_chunk.unwrap_or(0));
            let remaining = size - offset;
            let last = monolithic || remaining <= chunk;
            let attempt = if last {
                self.put_final(reg, d, source, offset, remaining, scope, &mut session)
                    .await
            } else {
                self.patch_chunk(reg, d, source, offset, chunk, scope, &mut session)
                    .await
            };
            let err = match attempt {
                Ok(Step::Done) => return Ok(()),
                Ok(Step::Next(n)) => {
                    offset = n;
                    backoff = opts.retry.start();
                    continue;
                }
                Err(e) => e,
            };
            let range_error = err.status() == Some(416);
            if !range_error && !is_transient(&err) {
                return Err(err);
            }
            let ra = match &err {
                Error::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let Some(delay) = backoff.next_delay(ra) else {
                return Err(Error::RetriesExhausted {
                    method: if last { "PUT" } else { "PATCH" }.into(),
                    url: session.url.to_string(),
                    attempts: backoff.attempts(),
                    elapsed: backoff.elapsed(),
                    last: Box::new(err),
                });
            };
            tracing::warn!(
                url = %session.url, offset, error = %first_line(&err), ?delay,
                "upload interrupted; retrying ({} tries left)", backoff.tries_left()
            );
            tokio::time::sleep(delay).await;
            match self
                .upload_status(reg, repo, d, scope, &mut session)
                .await?
            {
                Resume::Committed => return Ok(()),
                Resume::At(n) => offset = n.min(size),
                Resume::Restart(s) => {
                    session = s;
                    offset = 0;
                }
            }
        }
    }

    /// Ask the registry where an interrupted upload stands.
    async fn upload_status(
        &self,
        reg: &Registry,
        repo: &Repository,
        d: &Digest,
        scope: &Scope,
        session: &mut Session,
    ) -> Result<Resume, Error> {
        let resp = self
            .send(
                reg,
                Method::GET,
                &session.url,
                Default::default(),
                ReqBody::Empty,
                scope,
            )
            .await?;
        match resp.status() {
            StatusCode::NO_CONTENT => {
                if let Some(loc) = resp_header(&resp, LOCATION) {
                    session.url = reg.resolve_location(&session.url, &loc)?;
                }
                match reported_range_end(&resp) {
                    Some(Some(n)) => {
                        tracing::debug!(url = %session.url, offset = n, "resuming upload");
                        Ok(Resume::At(n))
                    }
                    // Nothing (or an ambiguous single byte) stored: start over,
                    // and tell the registry it may drop the old session.
                    _ => {
                        let old = session.url.clone();
                        let _ = self
                            .send_once(
                                reg,
                                &Method::DELETE,
                                &old,
                                &Default::default(),
                                &ReqBody::Empty,
                                scope,
                            )
                            .await;
                        Ok(Resume::Restart(self.start_upload(reg, repo, scope).await?))
                    }
                }
            }
            StatusCode::NOT_FOUND => {
                // The session is gone: perhaps our last PUT did commit.
                if self.head_blob(reg, repo, d, scope).await?.is_some() {
                    return Ok(Resume::Committed);
                }
                Ok(Resume::Restart(self.start_upload(reg, repo, scope).await?))
            }
            _ => Err(unexpected(&Method::GET, &session.url, resp).await),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn patch_chunk(
        &self,
        reg: &Registry,
        d: &Digest,
        source: &dyn BlobSource,
        offset: u64,
        len: u64,
        scope: &Scope,
        session: &mut Session,
    ) -> Result<Step, Error> {
        let end = offset + len - 1;
        let headers = header_map(&[
            (CONTENT_TYPE, "application/octet-stream"),
            (CONTENT_RANGE, &format!("{offset}-{end}")),
        ]);
        let body = ReqBody::Source {
            src: source,
            digest: d,
            offset,
            len,
        };
        let resp = self
            .send_once(reg, &Method::PATCH, &session.url, &headers, &body, scope)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(unexpected(&Method::PATCH, &session.url, resp).await);
        }
        if let Some(n) = min_chunk(&resp) {
            session.min_chunk = Some(n);
        }
        let next = match reported_range_end(&resp) {
            Some(Some(n)) => n,
            _ => end + 1,
        };
        if let Some(loc) = resp_header(&resp, LOCATION) {
            session.url = reg.resolve_location(&session.url, &loc)?;
        }
        Ok(Step::Next(next))
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_final(
        &self,
        reg: &Registry,
        d: &Digest,
        source: &dyn BlobSource,
        offset: u64,
        len: u64,
        scope: &Scope,
        session: &mut Session,
    ) -> Result<Step, Error> {
        let mut url = session.url.clone();
        url.query_pairs_mut().append_pair("digest", &d.to_string());
        let (headers, body) = if len == 0 {
            (len0(), ReqBody::Empty)
        } else {
            (
                header_map(&[(CONTENT_TYPE, "application/octet-stream")]),
                ReqBody::Source {
                    src: source,
                    digest: d,
                    offset,
                    len,
                },
            )
        };
        let resp = self
            .send_once(reg, &Method::PUT, &url, &headers, &body, scope)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(unexpected(&Method::PUT, &url, resp).await);
        }
        check_digest_header(&resp, &url, d)?;
        tracing::debug!(digest = %d, "blob committed");
        Ok(Step::Done)
    }

    /// Push a manifest or index as exact bytes under a tag or its digest.
    /// Push every blob and child manifest it references first. Returns the
    /// digest, after checking the registry's `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        tag_or_digest: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error> {
        let digest = Digest::of(bytes);
        match tag_or_digest.parse::<Digest>() {
            Ok(want) if want != digest => {
                return Err(Error::ManifestDigest {
                    url: format!("{repo}@{want}"),
                    expected: want,
                    found: digest,
                })
            }
            Ok(_) => {}
            Err(_) => {
                repo.tag(tag_or_digest)?;
            }
        }
        if media_type.is_empty() || crate::manifest::is_schema1(media_type) {
            return Err(Error::UnsupportedMediaType {
                context: format!("pushing {repo}:{tag_or_digest}"),
                media_type: media_type.into(),
            });
        }
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("manifests/{tag_or_digest}"));
        let resp = self
            .send(
                &reg,
                Method::PUT,
                &url,
                header_map(&[(CONTENT_TYPE, media_type)]),
                ReqBody::Bytes(Bytes::copy_from_slice(bytes)),
                &Scope::push(repo.name()),
            )
            .await?;
        if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
            return Err(unexpected(&Method::PUT, &url, resp).await);
        }
        check_digest_header(&resp, &url, &digest)?;
        Ok(digest)
    }
}

enum Resume {
    Committed,
    At(u64),
    Restart(Session),
}

fn min_chunk(resp: &Response) -> Option<u64> {
    resp_header(resp, CHUNK_MIN_LENGTH).and_then(|v| v.trim().parse().ok())
}

fn len0() -> reqwest::header::HeaderMap {
    header_map(&[(CONTENT_LENGTH, "0")])
}

fn check_digest_header(resp: &Response, url: &Url, d: &Digest) -> Result<(), Error> {
    match resp_header(resp, DOCKER_CONTENT_DIGEST) {
        Some(rep) if rep != d.to_string() => Err(Error::ReportedDigest {
            url: url.to_string(),
            expected: d.clone(),
            reported: rep,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
