//! `atp-bundler sign-file --key KEY --input FILE --output FILE.sig`: sign any
//! file (the release's `SHA256SUMS`) in the scheme of `index.json.sig`
//! (base64 of a DER ECDSA P-256 / SHA-256 signature, spec section 7), so a
//! site checks it with `openssl dgst -sha256 -verify`. Reads the key
//! password from the environment only; never prints it. Writes only the
//! signature, complete or not at all.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// Flags of `atp-bundler sign-file`.
#[derive(Args)]
pub struct SignFileArgs {
    /// Private key (cosign format or PKCS#8 PEM); password from ATP_KEY_PASSWORD or COSIGN_PASSWORD.
    #[arg(long, value_name = "PREFIX.key")]
    key: PathBuf,
    /// The file to sign, e.g. SHA256SUMS.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the signature (base64 DER, as index.json.sig).
    #[arg(long, value_name = "FILE.sig")]
    output: PathBuf,
}

pub fn run(a: SignFileArgs) -> Result<()> {
    let password = atp_bundle::keys::password_from_env().unwrap_or_default();
    let key = atp_bundle::keys::load_private_file(&a.key, &password)
        .with_context(|| format!("signing key {}", a.key.display()))?;
    let payload =
        std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let sig = atp_bundle::sign::sign(&key, &payload);
    let dir = match a.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing beside {}", a.output.display()))?;
    // A signature is public: readable by all, as the file it signs.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|_| temp.write_all(sig.as_bytes()))
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", temp.path().display()))?;
    temp.persist(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "signed {} -> {} (key {})",
        a.input.display(),
        a.output.display(),
        atp_bundle::keys::fingerprint(key.verifying_key())
    );
    Ok(())
}
