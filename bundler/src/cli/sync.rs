//! `atp-bundler sync` flags: parsed here, merged with `--config` by
//! `atp_bundler::sync_config`, run by `atp_bundler::sync`. Only flag
//! plumbing and printing; never reads a password from anywhere but stdin
//! (or the config's named sources), never echoes one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use atp_bundler::sync_config::{self, Overrides, SyncConfig};
use atp_cli::mapping::MappingArgs;
use atp_cli::report::Vocabulary;
use atp_registry::Credentials;
use clap::Args;

/// What a registry hint from `sync` tells the user to do.
pub const VOCABULARY: Vocabulary = &[
    (
        "`ca_file`",
        "--registry-ca for the site registry (or registries.<host>.ca in the --config file)",
    ),
    (
        "`plain_http`",
        "--plain-http (the site registry) or --plain-http HOST (or registries.<host>.plainHttp in the --config file)",
    ),
    (
        "`credentials`",
        "--username with --password-stdin for the site registry (or registries.<host>.credentials in the --config file)",
    ),
];

/// Flags of `atp-bundler sync`.
#[derive(Args)]
#[command(after_help = "\
Environment:
  DOCKER_CONFIG  folder whose config.json has registry credentials the --config file does not name")]
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
    // The site registry's flags are spelled as install spells them; the
    // `--target-*` spellings of earlier releases stay as hidden aliases.
    /// The site registry (the target).
    #[arg(
        long = "registry",
        alias = "target-registry",
        value_name = "HOST[:PORT]"
    )]
    target_registry: Option<String>,
    /// Plain HTTP: alone, for the site registry (as install's --plain-http); with HOST, for that registry (repeatable). Only these get plain HTTP.
    #[arg(
        long = "plain-http",
        value_name = "HOST[:PORT]",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    plain_http: Vec<String>,
    /// CA certificate of the site registry.
    #[arg(long = "registry-ca", alias = "target-ca", value_name = "CA.crt")]
    target_ca: Option<PathBuf>,
    /// User name for the site registry (the password comes from --password-stdin).
    #[arg(
        long = "username",
        alias = "target-username",
        value_name = "U",
        requires = "target_password_stdin"
    )]
    target_username: Option<String>,
    /// Read the site registry's password from standard input.
    #[arg(
        long = "password-stdin",
        alias = "target-password-stdin",
        requires = "target_username"
    )]
    target_password_stdin: bool,
    #[command(flatten)]
    mapping: MappingArgs,
    /// Keep only this platform of multi-platform images (repeatable).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Vec<String>,
    /// Blob transfers in flight (default 4).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Print the plan after checking the target; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the onprem_image_sync_duration_seconds histogram here (atomically).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Which artifacts that refer to the images to carry (signatures, attestations, SBOMs);
    /// overrides spec.referrers.mode [default: all].
    #[arg(long, value_enum, value_name = "all|signatures|none")]
    referrers: Option<atp_bundler::spec::ReferrerMode>,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: SyncArgs, quiet: bool) -> Result<()> {
    let file = a.config.as_deref().map(SyncConfig::load).transpose()?;
    let target_credentials = match a.target_username {
        Some(u) => Some(Credentials::new(
            u,
            atp_cli::password::from_stdin("--password-stdin")?,
        )),
        None => None,
    };
    let mut opts = sync_config::resolve_options(
        file.as_ref(),
        Overrides {
            spec: a.spec,
            images: a.images,
            source_registry: a.source_registry,
            target_registry: a.target_registry,
            plain_http: a.plain_http,
            target_ca: a.target_ca,
            target_credentials,
            layout: a.mapping.layout()?,
            repo_prefix: a.mapping.repo_prefix,
            platforms: a.platform,
            concurrency: a.concurrency,
            metrics_file: a.metrics_file,
            dry_run: a.dry_run,
        },
    )?;
    opts.referrers = a.referrers;
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet || a.json));
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(atp_bundler::sync::sync(&opts, progress))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    if let Some(e) = summary.refusal() {
        anyhow::bail!("{e}");
    }
    Ok(())
}
