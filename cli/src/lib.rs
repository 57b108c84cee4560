//! What the two binaries, `atp-bundler` and `atp-installer`, share and the
//! libraries must never see: terminal progress and logging ([`ui`]), the
//! error printer ([`report`]), passwords read from standard input
//! ([`password`]), the repository-mapping flags and mapping-file loader
//! ([`mapping`]), the flag groups and help texts both commands use
//! ([`args`]), the completions and man pages generated from them
//! ([`generated`]), and the rules every command line keeps, for the
//! binaries' unit tests ([`conformance`]).
//!
//! Used only by the binaries: no library crate of the workspace depends on
//! it, so clap and indicatif stay out of them.

pub mod args;
pub mod conformance;
pub mod generated;
pub mod mapping;
pub mod password;
pub mod report;
pub mod ui;

/// Print `v` as pretty JSON on stdout (the `--json` output).
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
