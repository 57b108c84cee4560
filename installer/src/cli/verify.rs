//! `atp-installer verify` and `verify-media`: flags, the calls to
//! `atp_installer::verify` and `verify_media`, the reports. Contact nothing
//! and write nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use atp_cli::args::BundleArgs;
use clap::Args;

/// Flags of `atp-installer verify`.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    input: BundleArgs,
    /// The publisher's public key; every signature must verify against it.
    #[arg(long, value_name = "PREFIX.pub")]
    key: PathBuf,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Flags of `atp-installer verify-media`.
#[derive(Args)]
pub struct VerifyMediaArgs {
    /// The folder with the volumes (or FILE.tar.volumes.json, or a volume).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The publisher's public key; volumes.json's signature must verify against it.
    #[arg(long, value_name = "PREFIX.pub")]
    key: PathBuf,
    /// Another folder to look for volumes in (repeatable).
    #[arg(long = "volumes-from", value_name = "DIR")]
    volumes_from: Vec<PathBuf>,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Exit code 0 when every check passed, 1 otherwise.
pub fn verify(a: VerifyArgs, quiet: bool) -> Result<i32> {
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet || a.json));
    let (report, _) = atp_installer::verify::verify_input(
        &a.input.bundle,
        &a.input.volumes_from,
        &a.key,
        time::OffsetDateTime::now_utc(),
        progress,
    )?;
    let summary = atp_installer::verify::summarize(&a.input.bundle, &report);
    if a.json {
        atp_cli::print_json(&summary)?;
    } else {
        print!("{}", summary.to_text());
    }
    Ok(if summary.ok { 0 } else { 1 })
}

/// Exit code 0 when every volume is good, 1 otherwise.
pub fn verify_media(a: VerifyMediaArgs, quiet: bool) -> Result<i32> {
    let progress = atp_cli::ui::Ui::new(quiet || a.json);
    let report =
        atp_installer::verify_media::verify_media(&a.dir, &a.volumes_from, &a.key, &progress)?;
    if a.json {
        atp_cli::print_json(&report)?;
    } else {
        print!("{}", atp_installer::verify_media::to_text(&report));
    }
    Ok(if report.ok { 0 } else { 1 })
}
