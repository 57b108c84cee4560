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
    fn every_flag_of_every_subcommand_has_help() {
        let missing = atp_cli::args::missing_help(&crate::Cli::command());
        assert!(missing.is_empty(), "flags without help: {missing:#?}");
    }

    #[test]
    fn completions_and_man_pages_are_current() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        atp_cli::generated::check_or_write(crate::Cli::command(), &docs);
    }

    #[test]
    fn help_names_the_environment_variables() {
        let help = crate::Cli::command().render_long_help().to_string();
        for var in [
            "ATP_KEY_PASSWORD",
            "COSIGN_PASSWORD",
            "SOURCE_DATE_EPOCH",
            "DOCKER_CONFIG",
        ] {
            assert!(help.contains(var), "--help does not mention {var}:\n{help}");
        }
    }

    #[test]
    fn every_library_setting_a_hint_names_has_a_flag() {
        for setting in atp_registry::error::HINT_SETTINGS {
            assert!(
                super::VOCABULARY.iter().any(|(s, _)| s == setting),
                "{setting} has no flag"
            );
        }
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
