//! The rules every binary's command line keeps, checked by one unit test in
//! each binary (`cli::tests::command_line_conformance`): every flag has help,
//! the completions and man pages in `docs/` are current (rewritten by `make
//! generated`), `--help` names the environment variables the commands read,
//! and every library setting a `hint:` can name has a flag in one of the
//! binary's vocabularies.
//!
//! A test helper: it panics with what is wrong, and writes nothing unless
//! `make generated` asks it to.

use std::path::Path;

use crate::report::Vocabulary;

/// The environment variables both binaries read, which `--help` must name.
pub const ENVIRONMENT: [&str; 4] = [
    "ATP_KEY_PASSWORD",
    "COSIGN_PASSWORD",
    "SOURCE_DATE_EPOCH",
    "DOCKER_CONFIG",
];

/// Panics with every broken rule of `cmd`; `docs` is the workspace's
/// `docs/` folder and `vocabularies` the binary's hint vocabularies.
pub fn check(cmd: clap::Command, docs: &Path, vocabularies: &[Vocabulary]) {
    let missing = crate::args::missing_help(&cmd);
    assert!(missing.is_empty(), "flags without help: {missing:#?}");

    // A clone: rendering help builds the command, which changes what the
    // completions are generated from.
    let help = cmd.clone().render_long_help().to_string();
    for var in ENVIRONMENT {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }

    for vocabulary in vocabularies {
        for setting in atp_registry::error::HINT_SETTINGS {
            assert!(
                vocabulary.iter().any(|(s, _)| s == setting),
                "the hint setting {setting} has no flag"
            );
        }
    }

    crate::generated::check_or_write(cmd, docs);
}
