//! `atp-installer install` and `simulate`: their flags (the ones both take,
//! and each one's own), the library's [`InstallOptions`], the calls to
//! `atp_installer::install` and `simulate`, and the output. Simulate is
//! given only the flags that mean something to it; an install command line
//! still simulates as is (the install-only flags are accepted, hidden and
//! change nothing).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use atp_cli::args::BundleArgs;
use atp_cli::mapping::MappingArgs;
use atp_installer::apply::ApplyOptions;
use atp_installer::options::{FilesOptions, InstallOptions};
use clap::Args;

use super::site::SiteArgs;

/// What install and simulate both take: the bundle, the site, where images
/// land, the steps' inputs and the cluster to talk to.
#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    input: BundleArgs,
    /// The publisher's public key; the bundle must verify against it.
    #[arg(long, value_name = "PREFIX.pub")]
    key: PathBuf,
    #[command(flatten)]
    site: SiteArgs,
    #[command(flatten)]
    mapping: MappingArgs,
    /// Blob uploads in flight.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    /// Where to render the overlay (default: under the state dir).
    #[arg(long, value_name = "DIR")]
    render_to: Option<PathBuf>,
    /// kubectl's cluster config for --apply (default: kubectl's own, KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE", requires = "apply")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context for --apply (default: its current context).
    #[arg(long, value_name = "NAME", requires = "apply")]
    context: Option<String>,
    /// The installer's state: install receipts, the installed sequence, the lock.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Accept a bundle whose sequence is not newer than the installed one.
    #[arg(long)]
    allow_downgrade: bool,
    /// Retries per registry request after the first attempt (default 5).
    #[arg(long, value_name = "N")]
    retries: Option<u32>,
    /// Start no retry of a request later than this many seconds after its first attempt (default 300).
    #[arg(long, value_name = "SECS")]
    retry_max_time: Option<u64>,
    /// Give up on a registry request (then retry it) after this many seconds without progress: no byte sent, no answer (default 60).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: Option<u64>,
    /// Write the bundle's model files to DIR/<set>/<path> (the folder behind the model cache volume).
    #[arg(long, value_name = "DIR")]
    model_cache_dir: Option<PathBuf>,
    /// Push the bundle's file sets to the registry as ORAS artifacts (REGISTRY/atp-offline/files/<set>:<version> by default).
    #[arg(long)]
    files_to_registry: bool,
    /// With --model-cache-dir: remove files under DIR/<set>/ that the bundle no longer lists.
    #[arg(long, requires = "model_cache_dir")]
    prune: bool,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Flags of `atp-installer install`.
#[derive(Args)]
pub struct InstallArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Apply the rendered overlay with kubectl and wait for rollouts.
    #[arg(long)]
    apply: bool,
    /// With --apply: how long to wait for each workload's rollout.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "300s",
        requires = "apply"
    )]
    rollout_timeout: String,
    /// Write Prometheus textfile metrics here (atomically).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// For slow media: push each blob as soon as it verifies, in one read.
    /// Still no manifest, tag, render or apply unless the whole bundle verified;
    /// a late failure leaves unreferenced blobs in the registry (see docs/guide.md).
    #[arg(long)]
    single_pass: bool,
    /// Simulate instead of installing: the same as `atp-installer simulate`.
    #[arg(long)]
    dry_run: bool,
    /// Also write node mirror configuration to DIR (as `atp-installer mirrors` does).
    #[arg(long, value_name = "DIR")]
    mirrors_to: Option<PathBuf>,
}

/// Flags of `atp-installer simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Check the cluster too, as the install would apply: a server-side dry run (needs --kubeconfig).
    #[arg(long)]
    apply: bool,
    /// Install only: accepted so that an install command line simulates as is.
    #[arg(long, hide = true, value_name = "DURATION", default_value = "300s")]
    rollout_timeout: String,
    /// Install only: accepted so that an install command line simulates as is.
    #[arg(long, hide = true, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Install only (the plan is the same): accepted so that an install command line simulates as is.
    #[arg(long, hide = true)]
    single_pass: bool,
    /// Install only: accepted so that an install command line simulates as is.
    #[arg(long, hide = true)]
    dry_run: bool,
    /// Install only: accepted so that an install command line simulates as is.
    #[arg(long, hide = true, value_name = "DIR")]
    mirrors_to: Option<PathBuf>,
}

/// `install`, or `simulate` with `--dry-run`. Exit code 0 on success.
pub fn install(a: InstallArgs, quiet: bool) -> Result<i32> {
    let json = a.plan.json;
    let mut opts = options(
        a.plan,
        Steps {
            apply: a.apply,
            rollout_timeout: a.rollout_timeout,
            metrics_file: a.metrics_file,
            single_pass: a.single_pass,
        },
    )?;
    opts.mirrors_to = a.mirrors_to;
    if a.dry_run {
        return simulate_with(&opts, json, quiet);
    }
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet || json));
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(atp_installer::install::install(&opts, progress))?;
    if json {
        atp_cli::print_json(&summary)?;
        return Ok(0);
    }
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
    if !summary.referrers.pushed.is_empty() {
        let written = summary
            .referrers
            .indexes
            .iter()
            .filter(|i| i.outcome == "written");
        println!(
            "referrers: {} carried; fallback tag indexes: {} written, {} already complete",
            summary.referrers.pushed.len(),
            written.count(),
            summary
                .referrers
                .indexes
                .iter()
                .filter(|i| i.outcome != "written")
                .count()
        );
    }
    if let Some(r) = &summary.rendered {
        println!(
            "rendered {} ({} objects)",
            r.display(),
            summary.objects.len()
        );
    }
    if summary.rendered.is_some() {
        if summary.secrets.is_empty() {
            println!("secrets: none generated (no --username, no --registry-ca)");
        }
        for s in &summary.secrets {
            println!("secret {} generated: {}", s.name, s.holds);
        }
    }
    if summary.applied {
        println!("applied and rolled out");
    }
    if let Some(d) = &opts.mirrors_to {
        println!("node mirror configuration written to {}", d.display());
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
    // The profile of this run, last (`--json` has it as `timings_ms`).
    if !quiet {
        eprintln!("{}", summary.timings_ms.line());
    }
    Ok(0)
}

/// `simulate`: exit code 0 when the install would succeed, 1 otherwise.
pub fn simulate(a: SimulateArgs, quiet: bool) -> Result<i32> {
    let json = a.plan.json;
    let opts = options(
        a.plan,
        Steps {
            apply: a.apply,
            rollout_timeout: a.rollout_timeout,
            metrics_file: a.metrics_file,
            single_pass: a.single_pass,
        },
    )?;
    simulate_with(&opts, json, quiet)
}

fn simulate_with(opts: &InstallOptions, json: bool, quiet: bool) -> Result<i32> {
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet || json));
    let rt = tokio::runtime::Runtime::new()?;
    let sim = rt.block_on(atp_installer::simulate::simulate(opts, progress));
    if json {
        atp_cli::print_json(&sim)?;
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

/// The install-only steps, as each command's flags give them.
struct Steps {
    apply: bool,
    rollout_timeout: String,
    metrics_file: Option<PathBuf>,
    single_pass: bool,
}

fn options(a: PlanArgs, steps: Steps) -> Result<InstallOptions> {
    let mut site = a.site.site(a.concurrency)?;
    if let Some(layout) = a.mapping.layout()? {
        site.layout = layout;
    }
    site.repo_prefix = a.mapping.repo_prefix;
    site.retry = retry_policy(a.retries, a.retry_max_time);
    if let Some(secs) = a.idle_timeout {
        site.retry.get_or_insert_with(Default::default).idle_timeout =
            std::time::Duration::from_secs(secs);
    }
    Ok(InstallOptions {
        bundle: a.input.bundle,
        volumes_from: a.input.volumes_from,
        key: a.key,
        site,
        render_to: a.render_to,
        apply: steps.apply.then_some(ApplyOptions {
            kubeconfig: a.kubeconfig,
            context: a.context,
            timeout: steps.rollout_timeout,
        }),
        state_dir: a.state_dir,
        metrics_file: steps.metrics_file,
        allow_downgrade: a.allow_downgrade,
        single_pass: steps.single_pass,
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
