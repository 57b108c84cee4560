//! Reading from a registry: manifests (exact bytes, digest-checked) and
//! existence checks of manifests and blobs. Blob bodies are in
//! `pull_blob`, which uses this module's header checks.
//!
//! Never hands out a manifest whose digest disagrees with the reference or
//! `Docker-Content-Digest`.

use atp_bundle::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::auth::Scope;
use crate::client::{header_map, resp_header, transport_error, unexpected, Client, ReqBody};
use crate::error::Error;
use crate::manifest::{is_schema1, sniff_media_type, Manifest, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use crate::reference::{Reference, Repository};

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");

pub(crate) fn content_length(resp: &Response) -> Option<u64> {
    resp_header(resp, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

pub(crate) fn check_reported_digest(
    resp: &Response,
    url: &Url,
    expected: &Digest,
) -> Result<(), Error> {
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
            crate::manifest::ParsedManifest::parse(&media_type, &body)?;
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
}
