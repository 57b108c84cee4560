//! `atp-installer uninstall`: flags, the call to `atp_installer::uninstall`,
//! and what it prints.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::rollback::ClusterArgs;

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
    };
    let r = atp_installer::uninstall::uninstall(&opts)?;
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
    if let Some(e) = &r.event {
        println!("recorded in {}", e.display());
    }
    Ok(0)
}
