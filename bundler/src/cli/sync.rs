//! `atp-bundler sync` flags: parsed here, merged with `--config` by
//! `atp_bundler::sync_config`, run by `atp_bundler::sync`. Only flag
//! plumbing and printing; never reads a password from anywhere but stdin
//! (or the config's named sources), never echoes one.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use atp_bundler::sync_config::{self, Overrides, SyncConfig};
use atp_registry::mapping::Layout;
use atp_registry::Credentials;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
pub enum LayoutArg {
    /// TARGET/[PREFIX/]<source host>/<source path> (never collides)
    Nested,
    /// TARGET/[PREFIX/]<last path component> (collisions are refused)
    Flat,
}

/// Copy images from a source registry straight into the site registry (no bundle, no temp disk).
#[derive(Args)]
pub struct SyncArgs {
    /// YAML config (docs/sync.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sync the images of this bundle spec (and its overlay's, when it discovers them).
    #[arg(long, value_name = "SPEC.yaml")]
    spec: Option<PathBuf>,
    /// An image to sync (repeatable).
    #[arg(long = "image", value_name = "REF")]
    images: Vec<String>,
    /// The registry serving unqualified and docker.io names (a Docker Hub mirror).
    #[arg(long, value_name = "HOST[:PORT]")]
    source_registry: Option<String>,
    /// The site registry.
    #[arg(long, value_name = "HOST[:PORT]")]
    target_registry: Option<String>,
    /// A registry that speaks plain HTTP (repeatable). Only these hosts get plain HTTP.
    #[arg(long = "plain-http", value_name = "HOST[:PORT]")]
    plain_http: Vec<String>,
    /// CA certificate of the target registry.
    #[arg(long, value_name = "CA.crt")]
    target_ca: Option<PathBuf>,
    #[arg(long, value_name = "U", requires = "target_password_stdin")]
    target_username: Option<String>,
    /// Read the target registry password from standard input.
    #[arg(long, requires = "target_username")]
    target_password_stdin: bool,
    /// Put every repository under this path in the target registry.
    #[arg(long, value_name = "PREFIX")]
    repo_prefix: Option<String>,
    /// Repository layout in the target registry (default: nested).
    #[arg(long, value_enum, conflicts_with = "mapping_file")]
    layout: Option<LayoutArg>,
    /// Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}.
    #[arg(long, value_name = "FILE")]
    mapping_file: Option<PathBuf>,
    /// Keep only this platform of multi-platform images (repeatable).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Vec<String>,
    /// Blob transfers in flight (default 4).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Print the plan after checking the target; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the onprem_image_sync_duration_seconds histogram here (atomically).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: SyncArgs, quiet: bool) -> Result<()> {
    let file = a.config.as_deref().map(SyncConfig::load).transpose()?;
    let target_credentials = match a.target_username {
        Some(u) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("reading the target registry password from stdin")?;
            let p = p.trim_end_matches(['\n', '\r']).to_string();
            if p.is_empty() {
                bail!("--target-password-stdin: standard input was empty");
            }
            Some(Credentials::new(u, p))
        }
        None => None,
    };
    let opts = sync_config::resolve_options(
        file.as_ref(),
        Overrides {
            spec: a.spec,
            images: a.images,
            source_registry: a.source_registry,
            target_registry: a.target_registry,
            plain_http: a.plain_http,
            target_ca: a.target_ca,
            target_credentials,
            repo_prefix: a.repo_prefix,
            layout: a.layout.map(|l| match l {
                LayoutArg::Nested => Layout::Nested,
                LayoutArg::Flat => Layout::Flat,
            }),
            mapping_file: a.mapping_file,
            platforms: a.platform,
            concurrency: a.concurrency,
            metrics_file: a.metrics_file,
            dry_run: a.dry_run,
        },
    )?;
    let progress = Arc::new(crate::ui::Ui::new(quiet || a.json));
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(atp_bundler::sync::sync(&opts, progress))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
