//! `atp-bundler inspect`: flags, the call to `atp_bundler::inspect`, the
//! output. Reads the bundle only; verifies nothing and writes nothing.

use anyhow::Result;
use atp_cli::args::BundleArgs;
use clap::Args;

/// Show what a bundle holds (without verifying it).
#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    input: BundleArgs,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let report = atp_bundler::inspect::inspect_media(&a.input.bundle, &a.input.volumes_from)?;
    if a.json {
        atp_cli::print_json(&report)?;
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
