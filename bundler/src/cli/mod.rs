//! The subcommands of `atp-bundler`: each module holds one command's flags,
//! turns them into the library's options, calls the library and prints the
//! result. No operation is implemented here (those live in `atp_bundler`).

pub mod create;
pub mod fingerprint;
pub mod inspect;
pub mod keygen;
pub mod sign_file;
pub mod sync;

use atp_cli::report::Vocabulary;

/// The environment variables `atp-bundler` reads, for `--help`.
pub const ENVIRONMENT: &str = "\
Environment:
  ATP_KEY_PASSWORD   password of the signing key (keygen writes it, create reads it)
  COSIGN_PASSWORD    the same, when ATP_KEY_PASSWORD is not set
  SOURCE_DATE_EPOCH  create: the time (Unix seconds) recorded in the bundle, for reproducible output
  DOCKER_CONFIG      folder whose config.json has the source registries' credentials (default ~/.docker)
  RUST_LOG           log filter on stderr (default info; warn with --quiet)";

/// What a source-registry hint from `create` tells the user to do.
pub const CREATE_VOCABULARY: Vocabulary = &[
    (
        "`ca_file`",
        "the system trust store (create trusts the CAs installed there)",
    ),
    ("`plain_http`", "--plain-http HOST"),
    (
        "`credentials`",
        "an auths entry or credential helper in the docker config (DOCKER_CONFIG)",
    ),
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
        for vocabulary in [super::CREATE_VOCABULARY, super::sync::VOCABULARY] {
            for setting in atp_registry::error::HINT_SETTINGS {
                assert!(
                    vocabulary.iter().any(|(s, _)| s == setting),
                    "{setting} has no flag"
                );
            }
        }
    }
}
