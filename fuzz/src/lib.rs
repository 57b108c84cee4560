//! The fuzz target bodies, for the libFuzzer binaries in `fuzz_targets/`.
//! They live in the bundler crate (`atp_bundler::fuzz_bodies`) so that the
//! stable test suite runs the very same bodies over a corpus
//! (`tests/tests/reliability_fuzz.rs`).

pub use atp_bundler::fuzz_bodies::*;
