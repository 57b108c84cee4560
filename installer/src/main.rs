//! `atp-installer`: parses the command line, runs one subcommand (each in its
//! `cli` module) and prints the error, if any. Nothing else happens here.

use clap::{Parser, Subcommand};

mod cli;

/// ATP Offline installer: verify a bundle, push it to the internal registry, render the overlay (disconnected side).
#[derive(Parser)]
#[command(name = "atp-installer", version, about, after_help = cli::ENVIRONMENT)]
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
    Verify(cli::verify::VerifyArgs),
    /// Check split volumes against their signed volumes.json: good, missing, truncated, foreign or corrupt. Writes nothing.
    VerifyMedia(cli::verify::VerifyMediaArgs),
    /// Verify, push every image to the site registry, render the overlay, optionally apply it.
    Install(cli::install::InstallArgs),
    /// Every step of install except the writes: prove it would work and print the plan. Changes nothing.
    Simulate(cli::install::SimulateArgs),
    /// Write what the site registry holds (per the install receipts, confirmed by HEAD), for delta bundles.
    Inventory(cli::inventory::InventoryArgs),
    /// Write node mirror config (containerd hosts.toml, CRI-O/podman registries.conf.d) so unmodified image references pull from the site registry.
    Mirrors(cli::mirrors::MirrorsArgs),
    /// Show each channel's installed history, the release in the cluster and, with --registry, whether its images are still there. Writes nothing.
    Status(cli::status::StatusArgs),
    /// Re-apply an earlier release's kept manifests, after checking the site registry still holds its images.
    Rollback(cli::rollback::RollbackArgs),
    /// Delete the objects of the release in the cluster (its receipt's list), keeping the data unless --delete-data.
    Uninstall(cli::uninstall::UninstallArgs),
    /// Verify a bundle, then serve it in place as a read-only OCI registry (pull API only) until SIGINT or SIGTERM.
    Serve(cli::serve::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    atp_cli::ui::init_logging(cli.quiet);
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Verify(a) => cli::verify::verify(a, quiet),
        Command::VerifyMedia(a) => cli::verify::verify_media(a, quiet),
        Command::Install(a) => cli::install::install(a, quiet),
        Command::Simulate(a) => cli::install::simulate(a, quiet),
        Command::Inventory(a) => cli::inventory::run(a),
        Command::Mirrors(a) => cli::mirrors::run(a, quiet),
        Command::Status(a) => cli::status::run(a),
        Command::Rollback(a) => cli::rollback::run(a),
        Command::Uninstall(a) => cli::uninstall::run(a),
        Command::Serve(a) => cli::serve::run(a, quiet),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            atp_cli::report::print(&e, cli::VOCABULARY);
            // 128 + SIGINT, as a shell reports a run Ctrl-C stopped.
            let interrupted = matches!(
                e.downcast_ref(),
                Some(atp_installer::install::InstallError::Interrupted)
            );
            std::process::exit(if interrupted { 130 } else { 1 });
        }
    }
}
