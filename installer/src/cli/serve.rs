//! `atp-installer serve`: its flags, the library's
//! [`atp_installer::serve::ServeOptions`], the stop signals (SIGINT,
//! SIGTERM) and the messages. The server itself is `atp_installer::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use atp_cli::mapping::MappingArgs;
use atp_installer::serve::{self, ServeOptions, TlsFiles};
use atp_installer::site::Site;
use clap::Args;

/// Flags of `atp-installer serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The bundle: FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
    #[arg(value_name = "FILE.tar")]
    bundle: PathBuf,
    /// Another folder to look for volumes in (repeatable).
    #[arg(long = "volumes-from", value_name = "DIR")]
    volumes_from: Vec<PathBuf>,
    /// The publisher's public key; the bundle must verify against it before anything is served.
    #[arg(long, value_name = "PREFIX.pub")]
    key: PathBuf,
    /// Address to listen on (IP:PORT; `localhost:PORT` is 127.0.0.1). Plain HTTP needs a loopback address unless --plain-http.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:5000")]
    listen: String,
    /// Certificate chain (PEM, leaf first) to serve HTTPS with.
    #[arg(long, value_name = "CRT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback --listen address (anyone on the network can read the bundle's images).
    #[arg(long, conflicts_with = "tls_cert")]
    plain_http: bool,
    #[command(flatten)]
    mapping: MappingArgs,
    /// Append access log lines here instead of stderr.
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
}

fn listen_addr(s: &str) -> Result<SocketAddr> {
    let s = match s.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_owned(),
    };
    s.parse()
        .with_context(|| format!("--listen {s}: expected IP:PORT, e.g. 127.0.0.1:5000"))
}

/// Verify the bundle, then serve it until SIGINT or SIGTERM.
pub fn run(a: ServeArgs, quiet: bool) -> Result<i32> {
    let listen = listen_addr(&a.listen)?;
    let mut site = Site::new(listen.to_string());
    if let Some(layout) = a.mapping.layout()? {
        site.layout = layout;
    }
    site.repo_prefix = a.mapping.repo_prefix;
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let opts = ServeOptions {
        bundle: a.bundle,
        volumes_from: a.volumes_from,
        key: a.key,
        listen,
        tls,
        plain_http: a.plain_http,
        site,
        access_log: a.access_log,
    };
    serve::check_listen(&opts)?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet));
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(async {
        let stop = stop_signal()?;
        let on_listening = |s: &serve::ServeSummary| {
            tracing::info!(
                "serving {} image(s) and {} file set(s) in {} repositor{} on {scheme}://{}/v2/ (Ctrl-C or SIGTERM stops)",
                s.images,
                s.file_sets,
                s.repositories,
                if s.repositories == 1 { "y" } else { "ies" },
                s.address
            );
        };
        anyhow::Ok(serve::serve(&opts, progress, on_listening, stop).await?)
    })?;
    tracing::info!("stopped serving on {}", summary.address);
    Ok(0)
}

/// Completes on the first SIGINT or SIGTERM.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
