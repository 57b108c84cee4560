//! Flag groups and help texts both binaries use, so the same idea is spelled
//! and explained the same way, and [`missing_help`], the check that every
//! flag of a command line says what it does. Parsing only: no I/O here.

use std::path::PathBuf;

use clap::Args;

/// Help of every `--json` flag.
pub const JSON_HELP: &str = "Print the result as JSON on stdout (progress and logs stay on stderr)";

/// A bundle on disk: one file, split volumes, or their folder.
#[derive(Args, Debug, Clone)]
pub struct BundleArgs {
    /// The bundle: FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
    #[arg(value_name = "FILE.tar")]
    pub bundle: PathBuf,
    /// Another folder to look for volumes in (repeatable).
    #[arg(long = "volumes-from", value_name = "DIR")]
    pub volumes_from: Vec<PathBuf>,
}

/// Every argument of `cmd` and its subcommands, at any depth, that has no
/// help text, as `<command path> <--flag or VALUE>`.
pub fn missing_help(cmd: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(cmd, cmd.get_name(), &mut missing);
    missing
}

fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if a.get_help().is_none() && a.get_long_help().is_none() {
            let name = match a.get_long() {
                Some(l) => format!("--{l}"),
                None => a.get_id().to_string(),
            };
            missing.push(format!("{path} {name}"));
        }
    }
    for sub in cmd.get_subcommands() {
        walk(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Documented.
        Go {
            #[command(flatten)]
            bundle: BundleArgs,
            #[arg(long)]
            quiet: bool,
        },
    }

    #[test]
    fn a_flag_without_help_is_named_with_its_command() {
        assert_eq!(
            missing_help(&Cli::command()),
            [format!("{} go --quiet", Cli::command().get_name())]
        );
    }
}
