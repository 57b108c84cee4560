//! `atp-bundler`: thin command-line wrapper over the `atp_bundler` library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[path = "cli/ui.rs"]
mod ui;
#[path = "cli/sync.rs"]
mod sync_cmd;

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
        #[arg(long)]
        json: bool,
    },
    /// Show what a bundle holds (without verifying it).
    Inspect {
        #[arg(value_name = "FILE.tar")]
        bundle: PathBuf,
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
            json,
        } => {
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
            };
            let progress = Arc::new(ui::Ui::new(cli.quiet || json));
            let rt = tokio::runtime::Runtime::new()?;
            let summary = rt.block_on(atp_bundler::create::create(&opts, progress))?;
            if json {
                print_json(&summary)?;
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
            }
        }
        Command::Sync(args) => sync_cmd::run(args, cli.quiet)?,
        Command::Inspect { bundle, json } => {
            let report = atp_bundler::inspect::inspect(&bundle)?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
        }
    }
    Ok(())
}
