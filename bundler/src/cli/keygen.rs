//! `atp-bundler keygen`: flags, the password (a variable, a prompt on the
//! terminal, or `--no-password`), the call to `atp_bundler::keygen`, the
//! output. Never prints or logs the password.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

/// Make a signing key pair: PREFIX.key (cosign encrypted format) and PREFIX.pub.
#[derive(Args)]
#[command(
    after_help = "The password comes from ATP_KEY_PASSWORD (or COSIGN_PASSWORD); without either, it is asked for twice on the terminal. Off a terminal, keygen refuses unless --no-password is given."
)]
pub struct KeygenArgs {
    /// Where to write the pair: PREFIX.key and PREFIX.pub (neither may exist).
    #[arg(long, value_name = "PREFIX")]
    output: PathBuf,
    /// Write the private key with an empty password (anyone holding the file can sign with it).
    #[arg(long)]
    no_password: bool,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

pub fn run(a: KeygenArgs) -> Result<()> {
    let password = match source(
        atp_bundle::keys::password_from_env(),
        a.no_password,
        std::io::stdin().is_terminal(),
    )? {
        Source::Given(p) => p,
        Source::Empty => String::new(),
        Source::Prompt => prompt()?,
    };
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

/// Where the new key's password comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// A password variable holds it.
    Given(String),
    /// `--no-password`.
    Empty,
    /// Ask on the terminal, twice.
    Prompt,
}

/// Decide where the password comes from: never an empty password the user
/// did not ask for by `--no-password`.
fn source(from_env: Option<String>, no_password: bool, terminal: bool) -> Result<Source> {
    Ok(match (from_env, no_password) {
        (Some(p), true) if !p.is_empty() => bail!(
            "--no-password, but ATP_KEY_PASSWORD (or COSIGN_PASSWORD) holds a password\nhint: unset the variable, or drop --no-password"
        ),
        (_, true) => Source::Empty,
        (Some(p), false) if !p.is_empty() => Source::Given(p),
        (Some(_), false) => bail!(
            "the key password variable (ATP_KEY_PASSWORD or COSIGN_PASSWORD) is set but empty\nhint: for a key without a password pass --no-password; otherwise set the variable to the password"
        ),
        (None, false) if terminal => Source::Prompt,
        (None, false) => bail!(
            "no password for the new key: ATP_KEY_PASSWORD (or COSIGN_PASSWORD) is not set, and there is no terminal to ask on\nhint: set ATP_KEY_PASSWORD, or pass --no-password for a key without a password"
        ),
    })
}

fn prompt() -> Result<String> {
    let first = atp_cli::password::prompt_hidden("Password for the new key: ")?;
    if first.is_empty() {
        bail!("the password was empty\nhint: for a key without a password pass --no-password");
    }
    let again = atp_cli::password::prompt_hidden("The same password again: ")?;
    if again != first {
        bail!("the two passwords differ; nothing was written");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::{source, Source};

    #[test]
    fn an_empty_password_is_only_ever_asked_for() {
        let some = || Some("pw".to_string());
        let empty = || Some(String::new());
        assert_eq!(
            source(some(), false, false).unwrap(),
            Source::Given("pw".into())
        );
        assert_eq!(source(None, true, false).unwrap(), Source::Empty);
        assert_eq!(source(empty(), true, true).unwrap(), Source::Empty);
        assert_eq!(source(None, false, true).unwrap(), Source::Prompt);
        for (env, terminal) in [(None, false), (empty(), false), (empty(), true)] {
            let e = source(env, false, terminal).unwrap_err().to_string();
            assert!(e.contains("--no-password"), "{e}");
        }
        assert!(source(some(), true, false).is_err());
    }
}
