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
    fn command_line_conformance() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        atp_cli::conformance::check(
            crate::Cli::command(),
            &docs,
            &[super::CREATE_VOCABULARY, super::sync::VOCABULARY],
        );
    }
}
