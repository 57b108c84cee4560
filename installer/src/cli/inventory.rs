//! `atp-installer inventory`: flags, the call to `atp_installer::inventory`,
//! the file it writes and the summary. Reads the registry; writes only the
//! inventory file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::site::SiteArgs;

/// Flags of `atp-installer inventory`.
#[derive(Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    site: SiteArgs,
    /// The installer's state dir, whose install receipts say what was pushed.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Where to write the inventory (plain JSON, no secrets) to carry out of the site.
    #[arg(long, value_name = "site-inventory.json")]
    output: PathBuf,
    /// Registry requests in flight.
    #[arg(long, value_name = "N", default_value_t = 8)]
    concurrency: usize,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: InventoryArgs) -> Result<i32> {
    let opts = atp_installer::inventory::InventoryOptions {
        site: a.site.site(a.concurrency)?,
        state_dir: a.state_dir,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let inv = rt.block_on(atp_installer::inventory::inventory(&opts))?;
    atp_installer::inventory::write(&a.output, &inv)
        .with_context(|| format!("writing {}", a.output.display()))?;
    if a.json {
        atp_cli::print_json(&inv)?;
        return Ok(0);
    }
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
    Ok(0)
}
