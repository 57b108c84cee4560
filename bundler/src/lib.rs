//! The connected side of ATP Offline: every `atp-bundler` operation as a
//! library function, so the CLI in `main.rs` stays a thin wrapper.

pub mod kustomize;
pub mod source;
pub mod spec;
