//! `atp-bundler`: parses the command line, runs one subcommand (each in its
//! `cli` module) and prints the error, if any. Nothing else happens here.

use clap::{Parser, Subcommand};

mod cli;

/// ATP Offline bundler: pull images, manifests and files into one signed bundle (connected side).
#[derive(Parser)]
#[command(name = "atp-bundler", version, about, after_help = cli::ENVIRONMENT)]
struct Cli {
    /// Only warnings and errors on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub.
    Keygen(cli::keygen::KeygenArgs),
    /// Build a signed bundle from a spec file.
    Create(cli::create::CreateArgs),
    /// Show what a bundle holds (without verifying it).
    Inspect(cli::inspect::InspectArgs),
    /// Print the fingerprint of a public key: the one inspect and verify show.
    Fingerprint(cli::fingerprint::FingerprintArgs),
    /// Copy images from a source registry straight into the site registry, mapped as install maps them.
    Sync(cli::sync::SyncArgs),
    /// Sign a file (a release's SHA256SUMS) as index.json.sig is signed: base64 DER ECDSA P-256.
    SignFile(cli::sign_file::SignFileArgs),
}

fn main() {
    let cli = Cli::parse();
    atp_cli::ui::init_logging(cli.quiet);
    let quiet = cli.quiet;
    let (result, vocabulary) = match cli.command {
        Command::Keygen(a) => (cli::keygen::run(a), cli::CREATE_VOCABULARY),
        Command::Create(a) => (cli::create::run(a, quiet), cli::CREATE_VOCABULARY),
        Command::Inspect(a) => (cli::inspect::run(a), cli::CREATE_VOCABULARY),
        Command::Fingerprint(a) => (cli::fingerprint::run(a), cli::CREATE_VOCABULARY),
        Command::Sync(a) => (cli::sync::run(a, quiet), cli::sync::VOCABULARY),
        Command::SignFile(a) => (cli::sign_file::run(a), cli::CREATE_VOCABULARY),
    };
    if let Err(e) = result {
        atp_cli::report::print(&e, vocabulary);
        std::process::exit(1);
    }
}
