//! `atp-installer`: thin command-line wrapper over the `atp_installer` library.

use clap::Parser;

/// ATP Offline installer: verify a bundle, push it to the internal registry, render the overlay (disconnected side).
#[derive(Parser)]
#[command(name = "atp-installer", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
