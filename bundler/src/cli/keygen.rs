//! `atp-bundler keygen`: flags, the call to `atp_bundler::keygen`, the
//! output. Takes the password from the environment only; never prints it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub.
#[derive(Args)]
#[command(
    after_help = "The password comes from ATP_KEY_PASSWORD (or COSIGN_PASSWORD) and may be empty."
)]
pub struct KeygenArgs {
    /// Where to write the pair: PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(long, value_name = "PREFIX")]
    output: PathBuf,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: KeygenArgs) -> Result<()> {
    let password = atp_bundle::keys::password_from_env().unwrap_or_default();
    let pair = atp_bundler::keygen::keygen(&a.output, &password)?;
    if a.json {
        atp_cli::print_json(&pair)?;
    } else {
        println!(
            "wrote {} and {}\nfingerprint {}",
            pair.private_key.display(),
            pair.public_key.display(),
            pair.fingerprint
        );
    }
    Ok(())
}
