//! `atp-installer serve`: a verified bundle served in place as a read-only
//! OCI registry, for a site that has no registry yet (or to seed one).
//!
//! Order, and what it guarantees:
//!
//! 1. [`check_listen`]: plain HTTP only on a loopback address unless asked
//!    for explicitly; the TLS files and the access log are opened (fast
//!    failures before the long verification).
//! 2. [`crate::prepare::verify`] then [`crate::prepare::prepare`]: the whole
//!    bundle is verified and every image mapped as install maps it, with the
//!    listen address as the site registry. The socket opens only after a
//!    clean verification: a bundle that fails is never served.
//! 3. [`run`]: HTTP/1.1 (hyper), one task per connection, until the shutdown
//!    future (SIGINT/SIGTERM in the CLI) completes; open connections then
//!    finish their current response, up to [`DRAIN`].
//!
//! `route` parses paths and headers, `content` indexes what is served by
//! repository, `files` adds the file sets as install would push them, `handle` answers
//! one request, `blob` streams blob bodies in
//! bounded chunks and hashes whole ones, `log` writes the access log, `tls`
//! reads the certificate. Never writes to the bundle's media, never extracts
//! or copies it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atp_bundle::progress::Progress;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::InstallError;
use crate::files::FilesError;
use crate::options::{FilesOptions, InstallOptions};
use crate::prepare;
use crate::site::Site;
use crate::state::SequenceCheck;

pub mod blob;
pub mod content;
pub mod files;
pub mod handle;
pub mod log;
pub mod route;
pub mod tls;

pub use content::Content;
pub use log::AccessLog;
pub use tls::TlsFiles;

/// How long open connections may take to finish after a stop signal.
pub const DRAIN: Duration = Duration::from_secs(10);
/// A client must send its request headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `atp-installer serve` is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bundle: PathBuf,
    /// More folders to look for volumes in (`--volumes-from`).
    pub volumes_from: Vec<PathBuf>,
    pub key: PathBuf,
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Plain HTTP on a non-loopback address, asked for explicitly.
    pub plain_http: bool,
    /// Repository prefix and layout; its `registry` is set to `listen`.
    pub site: Site,
    /// Access log file (default: stderr).
    pub access_log: Option<PathBuf>,
}

/// Why serve did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to serve plain HTTP on {addr}, which is not a loopback address\nhint: give --tls-cert and --tls-key, or --plain-http to serve plain HTTP on it anyway")]
    PlainHttpNotLoopback { addr: SocketAddr },
    #[error("--plain-http and --tls-cert both given; choose one")]
    PlainHttpAndTls,
    #[error("TLS file {path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("access log {path}: {source}")]
    AccessLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listening on {addr}: {source}\nhint: is another server using that port? choose another with --listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("this is a delta bundle: {omitted} blob(s) it relies on are not in it, so its images cannot be served whole\nhint: serve the full bundle (atp-bundler create without --base / --site-inventory)")]
    Delta { omitted: usize },
    #[error(transparent)]
    Bundle(#[from] InstallError),
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// What was served, for the final message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServeSummary {
    pub address: SocketAddr,
    pub repositories: usize,
    pub images: usize,
    pub file_sets: usize,
}

/// Plain HTTP only on loopback, unless `--plain-http`; not both.
pub fn check_listen(opts: &ServeOptions) -> Result<(), ServeError> {
    match (&opts.tls, opts.plain_http) {
        (Some(_), true) => Err(ServeError::PlainHttpAndTls),
        (None, false) if !opts.listen.ip().is_loopback() => {
            Err(ServeError::PlainHttpNotLoopback { addr: opts.listen })
        }
        _ => Ok(()),
    }
}

/// Check the flags, verify and prepare the bundle, bind, and serve until
/// `shutdown` completes. `on_listening` is called once the socket is open.
pub async fn serve(
    opts: &ServeOptions,
    progress: Arc<dyn Progress>,
    on_listening: impl FnOnce(&ServeSummary),
    shutdown: impl Future<Output = ()>,
) -> Result<ServeSummary, ServeError> {
    check_listen(opts)?;
    let acceptor = opts.tls.as_ref().map(tls::acceptor).transpose()?;
    let log = match &opts.access_log {
        Some(path) => AccessLog::file(path).map_err(|source| ServeError::AccessLog {
            path: path.clone(),
            source,
        })?,
        None => AccessLog::stderr(),
    };
    let content = load(opts, progress).await?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(opts.listen);
    let summary = ServeSummary {
        address,
        repositories: content.repos.len(),
        images: content.images,
        file_sets: content.file_sets,
    };
    on_listening(&summary);
    run(content, listener, acceptor, Arc::new(log), shutdown).await;
    Ok(summary)
}

/// Verify the whole bundle and index it under the install mapping.
pub async fn load(opts: &ServeOptions, progress: Arc<dyn Progress>) -> Result<Content, ServeError> {
    let mut site = opts.site.clone();
    site.registry = opts.listen.to_string();
    let install = InstallOptions {
        bundle: opts.bundle.clone(),
        volumes_from: opts.volumes_from.clone(),
        key: opts.key.clone(),
        site: site.clone(),
        render_to: None,
        apply: None,
        state_dir: PathBuf::new(),
        metrics_file: None,
        allow_downgrade: true,
        single_pass: false,
        files: FilesOptions::default(),
        mirrors_to: None,
    };
    let bundle = prepare::verify(&install, progress).await?;
    // Serving installs nothing: no rollback question.
    let prepared = prepare::prepare(bundle, &site, &|_, _| Ok(SequenceCheck::First), true)?;
    let omitted = prepared.bundle.report.omitted.len();
    if omitted > 0 {
        return Err(ServeError::Delta { omitted });
    }
    let sets = files::set_copies(&site, &prepared.bundle)?;
    Ok(Content::new(prepared, sets))
}

/// Accept connections on `listener` until `shutdown`, then drain.
pub async fn run(
    content: Content,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    log: Arc<AccessLog>,
    shutdown: impl Future<Output = ()>,
) {
    let content = Arc::new(content);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (content, log, tls, stop) =
                    (content.clone(), log.clone(), tls.clone(), stop_rx.clone());
                conns.spawn(async move {
                    match tls {
                        None => connection(stream, peer, content, log, stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => connection(s, peer, content, log, stop).await,
                                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "{} connection(s) still open after {}s; closing them",
            conns.len(),
            DRAIN.as_secs()
        );
        conns.shutdown().await;
    }
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    content: Arc<Content>,
    log: Arc<AccessLog>,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle::handle(content.clone(), log.clone(), peer, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection from {peer}: {e}");
    }
}
