//! The subcommands of `atp-installer`: each module holds one command's flags,
//! turns them into the library's options, calls the library and prints the
//! result. No operation is implemented here (those live in `atp_installer`).

pub mod install;
pub mod inventory;
pub mod mirrors;
pub mod rollback;
pub mod serve;
pub mod site;
pub mod status;
pub mod uninstall;
pub mod verify;

use atp_cli::report::Vocabulary;

/// The environment variables `atp-installer` reads, for `--help`.
pub const ENVIRONMENT: &str = "\
Environment:
  DOCKER_CONFIG  folder whose config.json has the site registry's credentials when --username is not given (default ~/.docker)
  KUBECONFIG     kubectl's cluster config when --kubeconfig is not given
  ATP_KUBECTL    the kubectl to run (default: kubectl on PATH)
  RUST_LOG       log filter on stderr (default info; warn with --quiet)
The bundle's signing key needs no password here: verification uses the public key only.
ATP_KEY_PASSWORD, COSIGN_PASSWORD and SOURCE_DATE_EPOCH matter to atp-bundler, not to the installer.";

/// What a registry hint tells the user to do, in this binary's flags.
pub const VOCABULARY: Vocabulary = &[
    ("`ca_file`", "--registry-ca"),
    ("`plain_http`", "--plain-http"),
    ("`credentials`", "--username and --password-stdin"),
];

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_conformance() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        atp_cli::conformance::check(crate::Cli::command(), &docs, &[super::VOCABULARY]);
    }

    /// Flags of `name`'s help, as `--flag`.
    fn flags(name: &str) -> Vec<String> {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let sub = cmd.find_subcommand(name).expect("subcommand");
        sub.get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect()
    }

    #[test]
    fn simulate_help_lists_no_install_only_flag() {
        let sim = flags("simulate");
        for f in [
            "--dry-run",
            "--rollout-timeout",
            "--metrics-file",
            "--single-pass",
        ] {
            assert!(!sim.contains(&f.to_string()), "simulate --help lists {f}");
        }
        let install = flags("install");
        for f in &sim {
            assert!(install.contains(f), "simulate has {f}, install has not");
        }
        let help = {
            let mut cmd = crate::Cli::command();
            cmd.build();
            let mut sim = cmd.find_subcommand("simulate").unwrap().clone();
            sim.render_long_help().to_string()
        };
        assert!(!help.contains("wait for rollouts"), "{help}");
    }
}
