//! `atp-bundler fingerprint`: the fingerprint of a public key, as `inspect`
//! and the installer's `verify` show it, to compare with a published one.
//! Reads the public key only.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Print the fingerprint of a public key (the one inspect and verify show).
#[derive(Args)]
pub struct FingerprintArgs {
    /// The public key: PREFIX.pub from keygen, or a cosign/PEM public key.
    #[arg(value_name = "KEY.pub")]
    key: PathBuf,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: FingerprintArgs) -> Result<()> {
    // Its errors name the file.
    let key = atp_bundle::keys::load_public_file(&a.key)?;
    let fingerprint = atp_bundle::keys::fingerprint(&key);
    if a.json {
        atp_cli::print_json(&serde_json::json!({
            "key": a.key,
            "fingerprint": fingerprint,
        }))?;
    } else {
        println!("{fingerprint}");
    }
    Ok(())
}
