//! `atp-installer`: thin command-line wrapper over the `atp_installer` library.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use atp_installer::apply::ApplyOptions;
use atp_installer::options::{FilesOptions, InstallOptions};
use atp_installer::site::{Site, SiteCredentials};
use atp_registry::mapping::Layout;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[path = "../../bundler/src/cli/ui.rs"]
mod ui;

/// ATP Offline installer: verify a bundle, push it to the internal registry, render the overlay (disconnected side).
#[derive(Parser)]
#[command(name = "atp-installer", version, about)]
struct Cli {
    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every byte of a bundle against the trusted public key. Contacts nothing.
    Verify {
        /// FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
        #[arg(value_name = "FILE.tar")]
        bundle: PathBuf,
        #[arg(long, value_name = "PREFIX.pub")]
        key: PathBuf,
        /// Another folder to look for volumes in (repeatable).
        #[arg(long = "volumes-from", value_name = "DIR")]
        volumes_from: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check split volumes against their signed volumes.json: good, missing, truncated, foreign or corrupt. Writes nothing.
    VerifyMedia {
        /// The folder with the volumes (or FILE.tar.volumes.json, or a volume).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "PREFIX.pub")]
        key: PathBuf,
        /// Another folder to look for volumes in (repeatable).
        #[arg(long = "volumes-from", value_name = "DIR")]
        volumes_from: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Verify, push every image to the site registry, render the overlay, optionally apply it.
    Install(InstallArgs),
    /// Every step of install except the writes: prove it would work and print the plan. Changes nothing.
    Simulate(InstallArgs),
    /// Write what the site registry holds (per the install receipts, confirmed by HEAD), for delta bundles.
    Inventory(InventoryArgs),
}

#[derive(Args)]
struct InventoryArgs {
    #[command(flatten)]
    site: SiteArgs,
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Where to write the inventory (plain JSON, no secrets) to carry out of the site.
    #[arg(long, value_name = "site-inventory.json")]
    output: PathBuf,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long)]
    json: bool,
}

/// The site registry and how to reach it: shared by install, simulate and inventory.
#[derive(Args)]
struct SiteArgs {
    /// The site registry.
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: String,
    /// Talk plain HTTP to the site registry (TLS is verified otherwise).
    #[arg(long)]
    plain_http: bool,
    /// CA certificate of the site registry (also shipped to the cluster as the registry-certs secret).
    #[arg(long, value_name = "CA.crt")]
    registry_ca: Option<PathBuf>,
    #[arg(long, value_name = "U", requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl SiteArgs {
    /// User and password, the password read from standard input.
    fn credentials(&self) -> Result<Option<SiteCredentials>> {
        match (&self.username, self.password_stdin) {
            (Some(u), true) => Ok(Some(SiteCredentials::new(u, read_password()?))),
            _ => Ok(None),
        }
    }

    /// The site registry with these flags (the password read from stdin).
    fn site(&self, concurrency: usize) -> Result<Site> {
        let mut site = Site::new(&self.registry);
        site.plain_http = self.plain_http;
        site.registry_ca = self.registry_ca.clone();
        site.credentials = self.credentials()?;
        site.concurrency = concurrency;
        Ok(site)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    /// REGISTRY/[PREFIX/]<source host>/<source path> (never collides)
    Nested,
    /// REGISTRY/[PREFIX/]<last path component> (collisions are refused)
    Flat,
}

#[derive(Args)]
struct InstallArgs {
    /// FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
    #[arg(value_name = "FILE.tar")]
    bundle: PathBuf,
    /// Another folder to look for volumes in (repeatable).
    #[arg(long = "volumes-from", value_name = "DIR")]
    volumes_from: Vec<PathBuf>,
    #[arg(long, value_name = "PREFIX.pub")]
    key: PathBuf,
    #[command(flatten)]
    site: SiteArgs,
    /// Put every repository under this path in the site registry.
    #[arg(long, value_name = "PREFIX")]
    repo_prefix: Option<String>,
    /// Repository layout in the site registry.
    #[arg(
        long,
        value_enum,
        default_value = "nested",
        conflicts_with = "mapping_file"
    )]
    layout: LayoutArg,
    /// Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}.
    #[arg(long, value_name = "FILE")]
    mapping_file: Option<PathBuf>,
    /// Blob uploads in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Where to render the overlay (default: under the state dir).
    #[arg(long, value_name = "DIR")]
    render_to: Option<PathBuf>,
    /// Apply the rendered overlay with kubectl and wait for rollouts.
    #[arg(long)]
    apply: bool,
    #[arg(long, requires = "apply")]
    kubeconfig: Option<PathBuf>,
    #[arg(long, requires = "apply")]
    context: Option<String>,
    /// Rollout wait per workload.
    #[arg(long, default_value = "300s", requires = "apply")]
    rollout_timeout: String,
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Write Prometheus textfile metrics here (atomically).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Accept a bundle whose sequence is not newer than the installed one.
    #[arg(long)]
    allow_downgrade: bool,
    /// For slow media: push each blob as soon as it verifies, in one read.
    /// Still no manifest, tag, render or apply unless the whole bundle verified;
    /// a late failure leaves unreferenced blobs in the registry (see docs/guide.md).
    #[arg(long)]
    single_pass: bool,
    /// Simulate instead of installing: the same as `atp-installer simulate`.
    #[arg(long)]
    dry_run: bool,
    /// Retries per registry request after the first attempt (default 5).
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// Start no retry of a request later than this many seconds after its first attempt (default 300).
    #[arg(long, value_name = "SECS")]
    retry_max_time: Option<u64>,
    /// Write the bundle's model files to DIR/<set>/<path> (the folder behind the model cache volume).
    #[arg(long, value_name = "DIR")]
    model_cache_dir: Option<PathBuf>,
    /// Push the bundle's file sets to the registry as ORAS artifacts (REGISTRY/atp-offline/files/<set>:<version> by default).
    #[arg(long)]
    files_to_registry: bool,
    /// With --model-cache-dir: remove files under DIR/<set>/ that the bundle no longer lists.
    #[arg(long, requires = "model_cache_dir")]
    prune: bool,
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    ui::init_logging(cli.quiet);
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Verify {
            bundle,
            key,
            volumes_from,
            json,
        } => {
            let progress = Arc::new(ui::Ui::new(cli.quiet || json));
            let (report, _) = atp_installer::verify::verify_input(
                &bundle,
                &volumes_from,
                &key,
                time::OffsetDateTime::now_utc(),
                progress,
            )?;
            let summary = atp_installer::verify::summarize(&bundle, &report);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_text());
            }
            Ok(if summary.ok { 0 } else { 1 })
        }
        Command::VerifyMedia {
            dir,
            key,
            volumes_from,
            json,
        } => {
            let progress = ui::Ui::new(cli.quiet || json);
            let report =
                atp_installer::verify_media::verify_media(&dir, &volumes_from, &key, &progress)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", atp_installer::verify_media::to_text(&report));
            }
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Inventory(a) => {
            let opts = atp_installer::inventory::InventoryOptions {
                site: a.site.site(a.concurrency)?,
                state_dir: a.state_dir,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let inv = rt.block_on(atp_installer::inventory::inventory(&opts))?;
            atp_installer::inventory::write(&a.output, &inv)
                .with_context(|| format!("writing {}", a.output.display()))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
            } else {
                let complete = inv.bundles.iter().filter(|b| b.complete).count();
                println!(
                    "wrote {}: {} blobs present in {}; {} bundle(s), {} whole",
                    a.output.display(),
                    inv.blobs.len(),
                    inv.registry,
                    inv.bundles.len(),
                    complete
                );
                if !inv.gone.images.is_empty() || !inv.gone.blobs.is_empty() {
                    println!(
                        "gone since installed (left out): {} manifest(s), {} blob(s)",
                        inv.gone.images.len(),
                        inv.gone.blobs.len()
                    );
                    for i in &inv.gone.images {
                        println!("  {i}");
                    }
                }
            }
            Ok(0)
        }
        Command::Simulate(a) => simulate(a, cli.quiet),
        Command::Install(a) if a.dry_run => simulate(a, cli.quiet),
        Command::Install(a) => {
            let json = a.json;
            let opts = install_options(a)?;
            let progress = Arc::new(ui::Ui::new(cli.quiet || json));
            let rt = tokio::runtime::Runtime::new()?;
            let summary = rt.block_on(atp_installer::install::install(&opts, progress))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                for i in &summary.images {
                    println!("{} -> {} ({})", i.source, i.target, i.digest);
                }
                println!(
                    "blobs: {} uploaded, {} skipped, {} mounted; manifests: {} pushed, {} already there",
                    summary.uploaded,
                    summary.skipped,
                    summary.mounted,
                    summary.manifests_pushed,
                    summary.manifests_skipped
                );
                if let Some(r) = &summary.rendered {
                    println!(
                        "rendered {} ({} objects)",
                        r.display(),
                        summary.objects.len()
                    );
                }
                if summary.applied {
                    println!("applied and rolled out");
                }
                for f in &summary.model_files.registry {
                    println!("files {} -> {} ({})", f.set, f.target, f.digest);
                }
                if let Some(c) = &summary.model_files.model_cache {
                    println!(
                        "model cache {}: {} written ({} bytes), {} unchanged, {} pruned",
                        c.dir.display(),
                        c.written,
                        c.bytes_written,
                        c.unchanged,
                        c.pruned.len()
                    );
                }
            }
            Ok(0)
        }
    }
}

/// The registry password from standard input (for --password-stdin).
fn read_password() -> Result<String> {
    let mut p = String::new();
    std::io::stdin()
        .read_to_string(&mut p)
        .context("reading the password from standard input")?;
    let p = p.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        bail!("--password-stdin: standard input was empty\nhint: echo \"$PASSWORD\" | atp-installer ... --password-stdin");
    }
    Ok(p)
}

fn simulate(a: InstallArgs, quiet: bool) -> Result<i32> {
    let json = a.json;
    let opts = install_options(a)?;
    let progress = Arc::new(ui::Ui::new(quiet || json));
    let rt = tokio::runtime::Runtime::new()?;
    let sim = rt.block_on(atp_installer::simulate::simulate(&opts, progress));
    if json {
        println!("{}", serde_json::to_string_pretty(&sim)?);
    } else {
        print!("{}", sim.to_text());
    }
    if sim.ok {
        return Ok(0);
    }
    eprintln!(
        "error: the install would fail: {} problem(s) found; nothing was changed",
        sim.findings.len()
    );
    for f in &sim.findings {
        eprintln!("  {f}");
    }
    Ok(1)
}

fn install_options(a: InstallArgs) -> Result<InstallOptions> {
    let mut site = a.site.site(a.concurrency)?;
    let layout = match (&a.mapping_file, a.layout) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading mapping file {}", path.display()))?;
            let map = serde_yaml_ng::from_str(&text).with_context(|| {
                format!("mapping file {} is not a JSON or YAML map", path.display())
            })?;
            Layout::Explicit(map)
        }
        (None, LayoutArg::Nested) => Layout::Nested,
        (None, LayoutArg::Flat) => Layout::Flat,
    };
    site.repo_prefix = a.repo_prefix;
    site.layout = layout;
    site.retry = retry_policy(a.retries, a.retry_max_time);
    Ok(InstallOptions {
        bundle: a.bundle,
        volumes_from: a.volumes_from,
        key: a.key,
        site,
        render_to: a.render_to,
        apply: a.apply.then_some(ApplyOptions {
            kubeconfig: a.kubeconfig,
            context: a.context,
            timeout: a.rollout_timeout,
        }),
        state_dir: a.state_dir,
        metrics_file: a.metrics_file,
        allow_downgrade: a.allow_downgrade,
        single_pass: a.single_pass,
        files: FilesOptions {
            model_cache_dir: a.model_cache_dir,
            to_registry: a.files_to_registry,
            prune: a.prune,
        },
        mirrors_to: None,
    })
}

/// The default retry policy with the limits given on the command line.
fn retry_policy(retries: Option<u32>, max_time: Option<u64>) -> Option<atp_registry::RetryPolicy> {
    if retries.is_none() && max_time.is_none() {
        return None;
    }
    let mut p = atp_registry::RetryPolicy::default();
    if let Some(n) = retries {
        p.max_retries = n;
    }
    if let Some(s) = max_time {
        p.max_total = std::time::Duration::from_secs(s);
        p.max_retry_after = p.max_retry_after.min(p.max_total);
    }
    Some(p)
}
