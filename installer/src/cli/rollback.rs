//! `atp-installer rollback`: flags, the call to `atp_installer::rollback`,
//! and what it prints. The cluster flags ([`ClusterArgs`]) are shared with
//! `uninstall`.

use std::path::PathBuf;

use anyhow::Result;
use atp_installer::apply::ApplyOptions;
use atp_installer::rollback::Target;
use clap::Args;

use super::site::SiteArgs;

/// The cluster kubectl talks to, for rollback and uninstall.
#[derive(Args)]
pub struct ClusterArgs {
    /// kubectl's cluster config (default: kubectl's own, KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

impl ClusterArgs {
    pub fn options(&self, timeout: String) -> ApplyOptions {
        ApplyOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            timeout,
        }
    }
}

/// Flags of `atp-installer rollback`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["apply", "dry_run"]))]
pub struct RollbackArgs {
    /// The release to go back to: a sequence number, or `previous` (the one below the release in the cluster).
    #[arg(long, value_name = "SEQUENCE|previous", default_value = "previous")]
    to: Target,
    /// The channel (needed only when the state dir holds several).
    #[arg(long, value_name = "C")]
    channel: Option<String>,
    /// The installer's state dir, whose receipts keep each release's rendered output.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(flatten)]
    site: SiteArgs,
    /// Re-apply the kept manifests with kubectl and wait for rollouts.
    #[arg(long)]
    apply: bool,
    /// Check the registry and print the kubectl commands; apply and record nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// How long to wait for each workload's rollout.
    #[arg(long, value_name = "DURATION", default_value = "300s")]
    rollout_timeout: String,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: RollbackArgs) -> Result<i32> {
    let opts = atp_installer::rollback::RollbackOptions {
        state_dir: a.state_dir,
        channel: a.channel,
        to: a.to,
        site: a.site.site(8)?,
        apply: a.cluster.options(a.rollout_timeout),
        dry_run: a.dry_run,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(atp_installer::rollback::rollback(&opts))?;
    if a.json {
        atp_cli::print_json(&r)?;
        return Ok(0);
    }
    let from = r.from.as_ref().map_or_else(
        || "nothing applied".to_string(),
        |f| format!("sequence {} ({})", f.sequence, f.version),
    );
    let verb = if r.applied {
        "rolled back"
    } else {
        "would roll back"
    };
    println!(
        "{verb} channel {} from {from} to sequence {} ({}): every image is in {}",
        r.channel, r.to.sequence, r.to.version, opts.site.registry
    );
    println!("  {} ({})", r.rendered.display(), r.digest);
    for c in &r.commands {
        println!("  {c}");
    }
    if let Some(e) = &r.event {
        println!("recorded in {}", e.display());
    }
    Ok(0)
}
