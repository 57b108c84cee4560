//! `atp-bundler`: thin command-line wrapper over the `atp_bundler` library.

use clap::Parser;

/// ATP Offline bundler: pull images, manifests and files into one signed bundle (connected side).
#[derive(Parser)]
#[command(name = "atp-bundler", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
