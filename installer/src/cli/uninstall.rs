//! `atp-installer uninstall`: flags, the call to `atp_installer::uninstall`,
//! and what it prints.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::rollback::ClusterArgs;
use super::status::OptionalSiteArgs;

/// Flags of `atp-installer uninstall`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["apply", "dry_run"]))]
pub struct UninstallArgs {
    /// The channel (needed only when the state dir holds several).
    #[arg(long, value_name = "C")]
    channel: Option<String>,
    /// The installer's state dir, whose receipts list each release's objects.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Delete the objects with kubectl.
    #[arg(long)]
    apply: bool,
    /// Print the kubectl commands; delete and record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete the PersistentVolumeClaims (the model cache) and their namespace too.
    #[arg(long)]
    delete_data: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Also delete from the site registry (--registry) the image manifests only this channel's receipts name, where the registry allows deletes.
    #[arg(long, requires = "registry")]
    prune_registry: bool,
    #[command(flatten)]
    site: OptionalSiteArgs,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: UninstallArgs) -> Result<i32> {
    let opts = atp_installer::uninstall::UninstallOptions {
        state_dir: a.state_dir,
        channel: a.channel,
        delete_data: a.delete_data,
        apply: a.cluster.options(String::new()),
        dry_run: a.dry_run,
        prune: if a.prune_registry {
            a.site.site()?
        } else {
            None
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    let r = rt.block_on(atp_installer::uninstall::uninstall(&opts))?;
    if a.json {
        atp_cli::print_json(&r)?;
        return Ok(0);
    }
    let verb = if r.applied { "deleted" } else { "would delete" };
    println!(
        "{verb} {} object(s) of channel {} sequence {} ({})",
        r.deleted.len(),
        r.channel,
        r.release.sequence,
        r.release.version
    );
    for c in &r.commands {
        println!("  {c}");
    }
    if !r.kept.is_empty() {
        println!("kept (pass --delete-data to delete them too):");
        for k in &r.kept {
            println!("  {k}");
        }
    }
    if let Some(p) = &r.prune {
        if p.unsupported {
            println!("the registry does not allow deletes (distribution: storage.delete.enabled): nothing was pruned");
        }
        let verb = if r.applied {
            "deleted from the registry"
        } else {
            "would delete from the registry"
        };
        println!("{verb}: {} manifest(s)", p.deleted.len());
        for m in &p.deleted {
            println!("  {m}");
        }
        for i in &p.indexes {
            println!("  referrers index {i}");
        }
        if !p.shared.is_empty() {
            println!(
                "kept in the registry, another channel uses them: {}",
                p.shared.len()
            );
        }
        if !p.deleted.is_empty() {
            println!("the layers stay until the registry's garbage collection runs");
        }
    }
    if let Some(e) = &r.event {
        println!("recorded in {}", e.display());
    }
    Ok(0)
}
