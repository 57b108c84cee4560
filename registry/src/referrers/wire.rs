//! The HTTP side of `referrers`: the referrers API (every page) and a
//! manifest by tag, each read bounded to [`MAX_INDEX_BYTES`]; nothing here
//! decides what a skip or an error is.

use atp_bundle::format::media;
use atp_bundle::Digest;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};
use url::Url;

use super::{parse_index, MAX_INDEX_BYTES};
use crate::auth::Scope;
use crate::client::{header_map, resp_header, transport_error, unexpected, Client, ReqBody};
use crate::error::Error;
use crate::manifest::Descriptor;
use crate::pull::DOCKER_CONTENT_DIGEST;
use crate::reference::Repository;

/// Pages of the referrers API followed at most.
const MAX_PAGES: usize = 16;

pub(super) enum Api {
    Listed(Vec<Descriptor>),
    Skip(String),
    /// Not answered with an index; `not_found` when the first page was a
    /// plain 404, which a registry with the API must not answer (it answers
    /// an empty index), so the registry has no referrers API at all.
    Unsupported {
        not_found: bool,
    },
}

/// The referrers API's answer, every page. Anything but a 200 with an
/// image index on the first page means the registry does not support it.
pub(super) async fn api_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    max_entries: usize,
) -> Result<Api, Error> {
    let reg = client.registry(repo)?;
    let mut url = reg.url(repo, &format!("referrers/{subject}"));
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let (got, next, not_found) = get_url(client, repo, &url, media::OCI_INDEX).await?;
        let (bytes, media_type) = match got {
            Got::Body { bytes, media_type } => (bytes, media_type),
            Got::Missing if page == 0 => return Ok(Api::Unsupported { not_found }),
            Got::TooLarge(_) | Got::Missing if page > 0 => {
                return Ok(Api::Skip(format!(
                    "the referrers API's page {url} is not usable"
                )))
            }
            Got::TooLarge(n) => {
                return Ok(Api::Skip(format!(
                    "the referrers API answered {n} bytes, over the {MAX_INDEX_BYTES} byte limit"
                )))
            }
            Got::Missing => unreachable!("handled above"),
        };
        match parse_index(&media_type, &bytes, max_entries.saturating_sub(all.len())) {
            Ok(entries) => all.extend(entries),
            Err(_) if page == 0 && !media_type.is_empty() && media_type != media::OCI_INDEX => {
                return Ok(Api::Unsupported { not_found: false })
            }
            Err(why) => return Ok(Api::Skip(format!("the referrers API's answer: {why}"))),
        }
        match next {
            Some(n) if reg.base.origin() == n.origin() => url = n,
            Some(n) => {
                return Ok(Api::Skip(format!(
                    "the referrers API's next page {n} is on another host"
                )))
            }
            None => return Ok(Api::Listed(all)),
        }
    }
    Ok(Api::Skip(format!(
        "more than {MAX_PAGES} pages from the referrers API"
    )))
}

pub(super) enum Got {
    Body { bytes: Vec<u8>, media_type: String },
    TooLarge(u64),
    Missing,
}

/// GET a manifest by tag, bounded; 404 is `Missing`.
pub(super) async fn get_bounded(
    client: &Client,
    repo: &Repository,
    tag: &str,
    accept: &str,
) -> Result<Got, Error> {
    let reg = client.registry(repo)?;
    let url = reg.url(repo, &format!("manifests/{tag}"));
    Ok(get_url(client, repo, &url, accept).await?.0)
}

/// One bounded GET: what came, the `Link: rel="next"` page, and whether the
/// answer was a 404. 404 (and, for the API, any non-200 that is not an auth
/// or server failure) is `Missing`; the body is read up to the limit only.
pub(super) async fn get_url(
    client: &Client,
    repo: &Repository,
    url: &Url,
    accept: &str,
) -> Result<(Got, Option<Url>, bool), Error> {
    let reg = client.registry(repo)?;
    let method = Method::GET;
    let is_api = url.path().contains("/referrers/");
    client
        .retrying(&method, url, || async {
            let resp = client
                .send(
                    &reg,
                    Method::GET,
                    url,
                    header_map(&[(ACCEPT, accept)]),
                    ReqBody::Empty,
                    &Scope::pull(repo.name()),
                )
                .await?;
            let s = resp.status();
            if s == StatusCode::NOT_FOUND
                || (is_api
                    && !s.is_success()
                    && !matches!(s, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN))
            {
                return Ok((Got::Missing, None, s == StatusCode::NOT_FOUND));
            }
            if s != StatusCode::OK {
                return Err(unexpected(&method, url, resp).await);
            }
            if let Some(n) = resp_header(&resp, CONTENT_LENGTH)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > MAX_INDEX_BYTES)
            {
                return Ok((Got::TooLarge(n), None, false));
            }
            let media_type = resp_header(&resp, CONTENT_TYPE)
                .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
                .filter(|c| c != "application/json")
                .unwrap_or_default();
            let next = resp_header(&resp, LINK)
                .and_then(|l| next_link(&l))
                .and_then(|l| url.join(&l).ok());
            let reported = resp_header(&resp, DOCKER_CONTENT_DIGEST);
            let mut bytes = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| transport_error(&method, url, e))?;
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > MAX_INDEX_BYTES {
                    return Ok((Got::TooLarge(bytes.len() as u64), None, false));
                }
            }
            if let Some(rep) = reported.filter(|r| r.starts_with("sha256:") && !is_api) {
                let d = Digest::of(&bytes);
                if rep != d.to_string() {
                    return Err(Error::ReportedDigest {
                        url: url.to_string(),
                        expected: d,
                        reported: rep,
                    });
                }
            }
            Ok((Got::Body { bytes, media_type }, next, false))
        })
        .await
}

/// The target of a `Link: <...>; rel="next"` header.
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let rel_next = params.split(';').any(|p| {
            matches!(
                p.trim().replace(' ', "").as_str(),
                "rel=\"next\"" | "rel=next"
            )
        });
        let t = target.trim();
        (rel_next && t.starts_with('<') && t.ends_with('>')).then(|| t[1..t.len() - 1].to_string())
    })
}
