//! The `Client` handle and its request path: one reqwest client per registry
//! (its own TLS settings), auth header attachment and 401 re-challenge, and
//! the retry loop around single requests.
//!
//! Never attaches credentials to a URL whose origin is not the registry's; the
//! pull and push modules build on `send` and never talk HTTP directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use atp_bundle::Digest;

use crate::auth::{RegistryAuth, Scope};
use crate::config::{ClientOptions, RegistryConfig};
use crate::error::{registry_detail, Error};
use crate::idle::{until_idle, Stamp};
use crate::reference::Repository;
use crate::retry::{self, TransportClass};
use crate::BlobSource;

/// An OCI distribution client. Cheap to clone; clones share connections,
/// tokens and the blob-transfer concurrency limit.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.opts)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) opts: ClientOptions,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
    pub(crate) transfers: Arc<Semaphore>,
    /// What referrer discovery learned in this client's run.
    pub(crate) discovery: Arc<crate::discovery_cache::DiscoveryCache>,
}

/// One registry's connection pool and auth state.
pub(crate) struct Registry {
    pub(crate) name: String,
    pub(crate) base: Url,
    pub(crate) plain_http: bool,
    pub(crate) http: reqwest::Client,
    pub(crate) auth: RegistryAuth,
}

/// A request body that can be rebuilt for every attempt.
pub(crate) enum ReqBody<'a> {
    Empty,
    Bytes(Bytes),
    Source {
        src: &'a dyn BlobSource,
        digest: &'a Digest,
        offset: u64,
        len: u64,
    },
}

fn build_http(
    opts: &ClientOptions,
    name: &str,
    cfg: &RegistryConfig,
) -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .user_agent(opts.user_agent.clone())
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout.max(opts.retry.idle_timeout))
        // Host names through /etc/hosts, then the nameservers of
        // /etc/resolv.conf, in pure Rust: never glibc's NSS modules, which a
        // static binary cannot load on the site's host. IP literals need
        // neither.
        .hickory_dns(true);
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let invalid = |reason: String| Error::InvalidConfig {
        registry: name.into(),
        reason,
    };
    if let Some(ca) = &cfg.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
            .map_err(|e| invalid(format!("{}: not a PEM CA bundle: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(invalid(format!("{}: no certificates", ca.display())));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((cert, key)) = &cfg.client_cert {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            invalid(format!(
                "client certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))
}

impl Client {
    /// Build a client. Reads CA and client-certificate files now, so bad
    /// paths fail here rather than on first use.
    pub fn new(opts: ClientOptions) -> Result<Client, Error> {
        let mut opts = opts;
        opts.concurrency = opts.concurrency.max(1);
        opts.chunk_size = opts.chunk_size.max(1);
        for (name, cfg) in &opts.registries {
            build_http(&opts, name, cfg)?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                transfers: Arc::new(Semaphore::new(opts.concurrency)),
                opts,
                registries: Mutex::new(HashMap::new()),
                discovery: Arc::default(),
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub(crate) fn registry(&self, repo: &Repository) -> Result<Arc<Registry>, Error> {
        let name = repo.registry();
        let mut map = self.inner.registries.lock().unwrap();
        if let Some(r) = map.get(name) {
            return Ok(r.clone());
        }
        let opts = &self.inner.opts;
        let cfg = opts.registry(name);
        let scheme = if cfg.plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}/", repo.api_host())).map_err(|e| {
            Error::InvalidConfig {
                registry: name.into(),
                reason: format!("not a usable host: {e}"),
            }
        })?;
        let reg = Arc::new(Registry {
            name: name.into(),
            base,
            plain_http: cfg.plain_http,
            http: build_http(opts, name, cfg)?,
            auth: RegistryAuth::new(name, cfg.credentials.clone(), opts.default_creds.clone()),
        });
        map.insert(name.into(), reg.clone());
        Ok(reg)
    }

    /// One attempt (plus at most one re-challenge after a 401).
    pub(crate) async fn send_once(
        &self,
        reg: &Registry,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: &ReqBody<'_>,
        scope: &Scope,
    ) -> Result<Response, Error> {
        let same_origin = url.origin() == reg.base.origin();
        let mut challenged = false;
        let idle = self.inner.opts.retry.idle_timeout;
        loop {
            let stamp = Arc::new(Stamp::now());
            let mut req = reg.http.request(method.clone(), url.clone());
            req = req.headers(headers.clone());
            if same_origin {
                if let Some(v) = reg.auth.header(scope).await? {
                    req = req.header(AUTHORIZATION, v);
                }
            }
            req = match body {
                ReqBody::Empty => req,
                ReqBody::Bytes(b) => req.body(b.clone()),
                ReqBody::Source {
                    src,
                    digest,
                    offset,
                    len,
                } => {
                    let reader = src.open(*offset).await.map_err(|source| Error::Source {
                        digest: (*digest).clone(),
                        offset: *offset,
                        source,
                    })?;
                    use futures_util::StreamExt as _;
                    use tokio::io::AsyncReadExt;
                    let taken = stamp.clone();
                    let stream =
                        tokio_util::io::ReaderStream::with_capacity(reader.take(*len), 256 << 10)
                            .inspect(move |_| taken.touch());
                    req.header(CONTENT_LENGTH, *len)
                        .body(reqwest::Body::wrap_stream(stream))
                }
            };
            tracing::trace!(%method, %url, "sending");
            let mut notice = |waited: std::time::Duration| {
                tracing::warn!(
                    "waiting for {method} {}: no answer for {} s (gives up after {} s without progress; --idle-timeout)",
                    &url[..url::Position::AfterPath],
                    waited.as_secs(),
                    idle.as_secs()
                )
            };
            let resp = until_idle(req.send(), &stamp, idle, &mut notice)
                .await
                .ok_or_else(|| Error::IdleTimeout {
                    method: method.to_string(),
                    url: url.to_string(),
                    idle,
                })?
                .map_err(|source| transport_error(method, url, source))?;
            tracing::debug!(%method, %url, status = resp.status().as_u16(), "response");
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let www = resp_header(&resp, WWW_AUTHENTICATE);
            let detail = registry_detail(&resp.bytes().await.unwrap_or_default());
            if !same_origin {
                return Err(Error::CrossHost {
                    registry: reg.name.clone(),
                    // host and port: the other origin may differ only by port.
                    host: url[url::Position::BeforeHost..url::Position::AfterPort].into(),
                });
            }
            if challenged {
                let hint = if reg.auth.has_credentials().await {
                    format!(
                        "{} refused the credentials; check username and password (and push/pull rights on the repository)",
                        reg.name
                    )
                } else {
                    format!(
                        "no credentials for {}: give them with `credentials`, or `docker login {}`",
                        reg.name, reg.name
                    )
                };
                return Err(Error::Unauthorized {
                    method: method.to_string(),
                    url: url.to_string(),
                    status: 401,
                    detail,
                    hint,
                });
            }
            challenged = true;
            reg.auth
                .on_challenge(
                    &reg.http,
                    www.as_deref(),
                    scope,
                    method.as_str(),
                    url.as_str(),
                    reg.plain_http,
                )
                .await?;
        }
    }

    /// Send with retries: transient transport errors and 408/429/5xx are
    /// retried per the policy; any other response is returned to the caller.
    pub(crate) async fn send(
        &self,
        reg: &Registry,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: ReqBody<'_>,
        scope: &Scope,
    ) -> Result<Response, Error> {
        self.retrying(&method, url, || async {
            let resp = self
                .send_once(reg, &method, url, &headers, &body, scope)
                .await?;
            if retry::status_is_retryable(resp.status()) {
                return Err(unexpected(&method, url, resp).await);
            }
            Ok(resp)
        })
        .await
    }

    /// Run `op` until it succeeds, fails for good, or the retry budget is
    /// spent. Transient errors (see [`is_transient`]) are retried, honoring
    /// `Retry-After` carried in `Error::Status`.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        method: &Method,
        url: &Url,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut backoff = self.inner.opts.retry.start();
        loop {
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) => e,
                Err(e) => return Err(e),
            };
            let ra = match &err {
                Error::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            match backoff.next_delay(ra) {
                Some(delay) => {
                    tracing::warn!(
                        %method, %url, error = %first_line(&err), ?delay,
                        "retrying ({} tries left)", backoff.tries_left()
                    );
                    tokio::time::sleep(delay).await;
                }
                None => {
                    return Err(Error::RetriesExhausted {
                        method: method.to_string(),
                        url: url.to_string(),
                        attempts: backoff.attempts(),
                        elapsed: backoff.elapsed(),
                        last: Box::new(err),
                    })
                }
            }
        }
    }
}

pub(crate) fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

pub(crate) fn transport_error(method: &Method, url: &Url, source: reqwest::Error) -> Error {
    match retry::classify_transport(&source) {
        TransportClass::Tls => Error::Tls {
            method: method.to_string(),
            url: url.to_string(),
            source,
        },
        TransportClass::Transient => Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            hint: "the connection failed; it was retried where safe",
            source,
        },
        TransportClass::Fatal => Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            hint: "the request could not be made; this is not retried",
            source,
        },
    }
}

/// Is this error worth another attempt?
pub(crate) fn is_transient(e: &Error) -> bool {
    match e {
        Error::Transport { source, .. } => {
            retry::classify_transport(source) == TransportClass::Transient
        }
        Error::IdleTimeout { .. } => true,
        Error::Status { status, .. } => {
            retry::status_is_retryable(StatusCode::from_u16(*status).unwrap_or_default())
        }
        _ => false,
    }
}

/// Turn an unexpected response into an error, keeping the registry's codes.
pub(crate) async fn unexpected(method: &Method, url: &Url, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let retry_after = retry::retry_after(resp.headers());
    let body = resp.bytes().await.unwrap_or_default();
    Error::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        detail: registry_detail(&body[..body.len().min(64 << 10)]),
        retry_after,
    }
}

pub(crate) fn resp_header(resp: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) fn header_map(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k.clone(), v);
        }
    }
    h
}

impl Registry {
    /// `<base>/v2/<repo>/<suffix>`.
    pub(crate) fn url(&self, repo: &Repository, suffix: &str) -> Url {
        // Names and references are validated, so joining cannot escape /v2/.
        self.base
            .join(&format!("v2/{}/{}", repo.name(), suffix))
            .expect("validated path")
    }

    /// Resolve a `Location` header against the request URL.
    pub(crate) fn resolve_location(&self, request_url: &Url, location: &str) -> Result<Url, Error> {
        request_url.join(location).map_err(|e| Error::Protocol {
            url: request_url.to_string(),
            reason: format!("bad Location header: {e}"),
        })
    }
}
