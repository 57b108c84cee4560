//! `atp-bundler`: thin command-line wrapper over the `atp_bundler` library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[path = "cli/sync.rs"]
mod sync_cmd;
#[path = "cli/ui.rs"]
mod ui;

/// ATP Offline bundler: pull images, manifests and files into one signed bundle (connected side).
#[derive(Parser)]
#[command(name = "atp-bundler", version, about)]
struct Cli {
    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub.
    /// The password comes from ATP_KEY_PASSWORD (or COSIGN_PASSWORD) and may be empty.
    Keygen {
        #[arg(long, value_name = "PREFIX")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Build a signed bundle from a spec file.
    Create {
        #[arg(long, value_name = "SPEC.yaml")]
        spec: PathBuf,
        /// Private key (cosign format or PKCS#8 PEM); password from ATP_KEY_PASSWORD or COSIGN_PASSWORD.
        #[arg(long, value_name = "PREFIX.key")]
        key: PathBuf,
        #[arg(long, value_name = "FILE.tar")]
        output: PathBuf,
        /// A source registry that speaks plain HTTP (repeatable). Only these hosts get plain HTTP.
        #[arg(long = "plain-http", value_name = "HOST[:PORT]")]
        plain_http: Vec<String>,
        /// Keep only this platform of multi-platform images (repeatable); overrides spec.platforms.
        #[arg(long, value_name = "OS/ARCH")]
        platform: Vec<String>,
        /// Blob downloads in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Cut the output into volumes FILE.tar.001, ... of at most SIZE (4GiB, 700MB, bytes, or fat32), with a signed FILE.tar.volumes.json.
        #[arg(long, value_name = "SIZE")]
        split_size: Option<String>,
        /// Compress as seekable zstd (adds .zst to the output name), or none.
        #[arg(long, value_name = "zstd|none")]
        compress: Option<String>,
        /// Make a delta: leave out every layer this earlier bundle carries (repeatable).
        #[arg(long, value_name = "PREVIOUS.tar")]
        base: Vec<PathBuf>,
        /// Make a delta: leave out every layer `atp-installer inventory` found at the site (repeatable).
        #[arg(long, value_name = "site-inventory.json")]
        site_inventory: Vec<PathBuf>,
        /// Right after writing, prove the bundle self-sufficient: its overlay renders from its own
        /// tree, every image it uses is carried, nothing points outside it. Needs a single plain tar.
        #[arg(long, conflicts_with_all = ["split_size", "compress"])]
        simulate: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show what a bundle holds (without verifying it).
    Inspect {
        /// FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
        #[arg(value_name = "FILE.tar")]
        bundle: PathBuf,
        /// Another folder to look for volumes in (repeatable).
        #[arg(long = "volumes-from", value_name = "DIR")]
        volumes_from: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Copy images from a source registry straight into the site registry, mapped as install maps them.
    Sync(sync_cmd::SyncArgs),
}

fn main() {
    let cli = Cli::parse();
    ui::init_logging(cli.quiet);
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn password() -> String {
    atp_bundle::keys::password_from_env().unwrap_or_default()
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen { output, json } => {
            let pair = atp_bundler::keygen::keygen(&output, &password())?;
            if json {
                print_json(&pair)?;
            } else {
                println!(
                    "wrote {} and {}\nfingerprint {}",
                    pair.private_key.display(),
                    pair.public_key.display(),
                    pair.fingerprint
                );
            }
        }
        Command::Create {
            spec,
            key,
            output,
            plain_http,
            platform,
            concurrency,
            split_size,
            compress,
            base,
            site_inventory,
            simulate,
            json,
        } => {
            let media = atp_bundler::media::options(split_size.as_deref(), compress.as_deref())?;
            let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.is_empty() => Some(
                    v.parse::<i64>()
                        .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number"))?,
                ),
                _ => None,
            };
            let opts = atp_bundler::create::CreateOptions {
                spec,
                key,
                password: password(),
                output,
                plain_http,
                platforms: platform,
                concurrency,
                source_date_epoch,
                delta: atp_bundler::delta::DeltaSources {
                    bases: base,
                    inventories: site_inventory,
                },
                media,
            };
            let progress = Arc::new(ui::Ui::new(cli.quiet || json));
            let rt = tokio::runtime::Runtime::new()?;
            let summary = rt.block_on(atp_bundler::create::create(&opts, progress))?;
            let check = match simulate {
                true => Some(atp_bundler::selfcheck::after_create(
                    &opts.spec,
                    &summary.output,
                )?),
                false => None,
            };
            if json {
                let mut v = serde_json::to_value(&summary)?;
                if let Some(c) = &check {
                    v["selfcheck"] = serde_json::to_value(c)?;
                }
                print_json(&v)?;
            } else {
                println!(
                    "wrote {} ({} bytes, {} blobs, {} images, {} files)\nindex {}",
                    summary.output.display(),
                    summary.size,
                    summary.blobs,
                    summary.images.len(),
                    summary.files,
                    summary.index_digest
                );
                for v in summary.media.iter().flat_map(|m| &m.volumes) {
                    println!("volume {}", v.display());
                }
                if summary.omitted > 0 {
                    println!(
                        "delta: {} layer(s), {} bytes left out (the site has them)",
                        summary.omitted, summary.omitted_bytes
                    );
                }
            }
            if let Some(c) = check {
                if !json {
                    print!("{}", c.to_text());
                }
                if !c.ok {
                    anyhow::bail!(
                        "{} was written but is not self-sufficient:\n{}\nhint: do not ship it; add the missing images to spec.images and vendor remote kustomize bases into the tree",
                        c.bundle.display(),
                        c.findings.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        Command::Sync(args) => sync_cmd::run(args, cli.quiet)?,
        Command::Inspect {
            bundle,
            volumes_from,
            json,
        } => {
            let report = atp_bundler::inspect::inspect_media(&bundle, &volumes_from)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
        }
    }
    Ok(())
}
