//! One request to one response: the pull API over [`Content`], read-only.
//!
//! GET and HEAD only; any other method is 405 with an OCI error body. A HEAD
//! answers the same status and headers as the GET would, without a body. An
//! OCI manifest whose type a request's `Accept` does not list is 404
//! `MANIFEST_UNKNOWN`, as distribution answers ([`route::accepts`]).
//! Never serves a blob for a repository none of whose images references it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::blob::{self, Body, Slice};
use super::content::{page, Content, Repo};
use super::log::{AccessLog, Entry};
use super::route::{self, BadPath, RangeAsk, Reference, Route};

const API_VERSION: &str = "registry/2.0";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A response not yet sent: whole bytes, or a slice of a blob to stream.
enum Reply {
    Bytes {
        status: StatusCode,
        headers: Vec<(header::HeaderName, String)>,
        body: Bytes,
    },
    Blob {
        status: StatusCode,
        headers: Vec<(header::HeaderName, String)>,
        slice: Slice,
    },
}

/// Answer `req` from `content`, writing its access line when done.
pub async fn handle(
    content: Arc<Content>,
    log: Arc<AccessLog>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut entry = Entry::new(log, peer, req.method().as_str(), path_and_query);
    let head = req.method() == Method::HEAD;
    let reply = answer(&content, &req);
    let (status, headers) = match &reply {
        Reply::Bytes {
            status, headers, ..
        }
        | Reply::Blob {
            status, headers, ..
        } => (*status, headers),
    };
    let mut builder = Response::builder()
        .status(status)
        .header("Docker-Distribution-API-Version", API_VERSION);
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            builder = builder.header(name, v);
        }
    }
    entry.status = status.as_u16();
    let body: Body = match reply {
        Reply::Bytes { body, .. } => {
            let body = if head { Bytes::new() } else { body };
            entry.sent = body.len() as u64;
            drop(entry);
            full(body)
        }
        Reply::Blob { .. } if head => {
            drop(entry);
            full(Bytes::new())
        }
        Reply::Blob { slice, .. } => blob::stream(content.input.tar(), slice, entry),
    };
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| Response::new(full(Bytes::new()))))
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

fn answer(content: &Content, req: &Request<Incoming>) -> Reply {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is a served bundle and read-only: only GET and HEAD are allowed",
        );
        if let Reply::Bytes { headers, .. } = &mut r {
            headers.push((header::ALLOW, "GET, HEAD".into()));
        }
        return r;
    }
    let route = match route::parse(req.uri().path()) {
        Ok(r) => r,
        Err(BadPath::NotFound) => {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
        }
        Err(BadPath::Name(n)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                &format!("invalid repository name {n:?}"),
            )
        }
        Err(BadPath::Digest(d)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                &format!("invalid digest {d:?}: expected sha256:<64 lowercase hex characters>"),
            )
        }
        Err(BadPath::Tag(t)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                &format!("invalid tag {t:?}"),
            )
        }
    };
    let query = Query::parse(req.uri().query());
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    match route {
        Route::Base => json(StatusCode::OK, "application/json", b"{}".to_vec()),
        Route::Catalog => {
            let repos = page(content.repos.keys(), query.n, query.last.as_deref());
            let body = serde_json::json!({ "repositories": repos });
            json(StatusCode::OK, "application/json", body.to_string().into())
        }
        Route::Tags { name } => with_repo(content, &name, |repo| {
            let tags = page(repo.tags.keys(), query.n, query.last.as_deref());
            let body = serde_json::json!({ "name": name, "tags": tags });
            json(StatusCode::OK, "application/json", body.to_string().into())
        }),
        Route::Manifest { name, reference } => with_repo(content, &name, |repo| {
            let digest = match &reference {
                Reference::Tag(t) => repo.tags.get(t),
                Reference::Digest(d) => Some(d),
            };
            let accept = req.headers().get_all(header::ACCEPT).iter();
            let accept = accept.map(|v| v.to_str().unwrap_or(""));
            match digest.and_then(|d| repo.manifests.get(d)) {
                Some(m) if !route::accepts(accept, &m.media_type) => error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    &format!(
                        "manifest {} in {name} is {}, which the request's Accept header does not list\nhint: add {} to Accept",
                        reference_text(&reference),
                        m.media_type,
                        m.media_type
                    ),
                ),
                Some(m) => Reply::Bytes {
                    status: StatusCode::OK,
                    headers: vec![
                        (header::CONTENT_TYPE, m.media_type.clone()),
                        (header::CONTENT_LENGTH, m.bytes.len().to_string()),
                        (digest_header(), m.digest.to_string()),
                        (header::ETAG, format!("\"{}\"", m.digest)),
                    ],
                    body: m.bytes.clone(),
                },
                None => error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    &format!("no manifest {} in {name}", reference_text(&reference)),
                ),
            }
        }),
        Route::Blob { name, digest } => with_repo(content, &name, |repo| {
            if let Some(m) = repo.manifests.get(&digest) {
                return Reply::Bytes {
                    status: StatusCode::OK,
                    headers: vec![
                        (header::CONTENT_TYPE, "application/octet-stream".into()),
                        (header::CONTENT_LENGTH, m.bytes.len().to_string()),
                        (digest_header(), m.digest.to_string()),
                    ],
                    body: m.bytes.clone(),
                };
            }
            let Some(loc) = content.blob(repo, &digest) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "BLOB_UNKNOWN",
                    &format!("no blob {digest} in {name}"),
                );
            };
            let size = loc.size;
            let mut headers = vec![
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::ACCEPT_RANGES, "bytes".to_owned()),
                (digest_header(), digest.to_string()),
                (header::ETAG, format!("\"{digest}\"")),
            ];
            let (status, start, len, check) = match route::range(range, size) {
                RangeAsk::Whole => (StatusCode::OK, 0, size, true),
                RangeAsk::Part { start, end } => {
                    headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
                    (StatusCode::PARTIAL_CONTENT, start, end - start + 1, false)
                }
                RangeAsk::Unsatisfiable => {
                    headers.push((header::CONTENT_RANGE, format!("bytes */{size}")));
                    headers.push((header::CONTENT_LENGTH, "0".into()));
                    return Reply::Bytes {
                        status: StatusCode::RANGE_NOT_SATISFIABLE,
                        headers,
                        body: Bytes::new(),
                    };
                }
            };
            headers.push((header::CONTENT_LENGTH, len.to_string()));
            Reply::Blob {
                status,
                headers,
                slice: Slice {
                    digest: digest.clone(),
                    data_offset: loc.data_offset,
                    start,
                    len,
                    check,
                },
            }
        }),
        Route::Referrers { name, digest } => with_repo(content, &name, |repo| {
            let want = query.artifact_type.as_deref();
            let listed: Vec<_> = repo
                .referrers
                .get(&digest)
                .into_iter()
                .flatten()
                .filter(|d| want.is_none() || d.artifact_type.as_deref() == want)
                .collect();
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": listed,
            });
            let mut reply = json(StatusCode::OK, OCI_INDEX, body.to_string().into());
            if let (Some(_), Reply::Bytes { headers, .. }) = (want, &mut reply) {
                headers.push((
                    header::HeaderName::from_static("oci-filters-applied"),
                    "artifactType".to_owned(),
                ));
            }
            reply
        }),
    }
}

fn with_repo(content: &Content, name: &str, f: impl FnOnce(&Repo) -> Reply) -> Reply {
    match content.repos.get(name) {
        Some(repo) => f(repo),
        None => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!("repository {name} is not in the served bundle"),
        ),
    }
}

fn digest_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

fn reference_text(r: &Reference) -> String {
    match r {
        Reference::Tag(t) => t.clone(),
        Reference::Digest(d) => d.to_string(),
    }
}

fn json(status: StatusCode, media_type: &str, body: Vec<u8>) -> Reply {
    Reply::Bytes {
        status,
        headers: vec![
            (header::CONTENT_TYPE, media_type.to_owned()),
            (header::CONTENT_LENGTH, body.len().to_string()),
        ],
        body: body.into(),
    }
}

/// An OCI distribution error body.
fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": {} }]
    });
    json(status, "application/json", body.to_string().into())
}

/// `n` and `last` of a list request.
struct Query {
    n: Option<usize>,
    last: Option<String>,
    /// The referrers API's filter.
    artifact_type: Option<String>,
}

/// `%2B` and friends, as a query value carries `+` in a media type.
fn percent_decoded(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = || std::str::from_utf8(b.get(i + 1..i + 3)?).ok();
        match (b[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(c)) => {
                out.push(c);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    fn parse(q: Option<&str>) -> Query {
        let mut out = Query {
            n: None,
            last: None,
            artifact_type: None,
        };
        for pair in q.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("n", v)) => out.n = v.parse().ok(),
                Some(("last", v)) => out.last = Some(v.to_owned()),
                Some(("artifactType", v)) => out.artifact_type = Some(percent_decoded(v)),
                _ => {}
            }
        }
        out
    }
}
