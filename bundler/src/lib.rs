//! The connected side of ATP Offline: every `atp-bundler` operation as a
//! library function, so the CLI in `main.rs` stays a thin wrapper.
//!
//! - [`create`]: spec → signed bundle
//! - [`media`]: `create --split-size/--compress`: volumes, seekable zstd
//! - [`delta`]: what a delta bundle leaves out (`--base`, `--site-inventory`)
//! - [`selfcheck`]: `create --simulate`, the bundle proves itself self-sufficient
//! - [`gather`]: which images a bundle or sync carries (the spec's, the
//!   overlay's) and the completeness check, shared by `create` and `sync`
//! - [`referrers`]: the signatures, attestations and SBOMs that refer to
//!   each image, and `spec.verify`'s upstream signature check
//! - [`resolve`]: images from registries, OCI layouts, docker archives
//! - [`files`]: scan model files and other file sets
//! - [`spec`]: the bundle spec file
//! - [`sync`], [`sync_config`]: registry-to-registry sync for sites with a link
//! - [`source`]: local image sources

pub mod create;
pub mod delta;
pub mod files;
#[doc(hidden)]
pub mod fuzz_bodies;
pub mod gather;
pub mod inspect;
pub mod keygen;
pub mod media;
pub mod referrers;
pub mod resolve;
pub mod selfcheck;
pub mod source;
pub mod spec;
pub mod sync;
pub mod sync_config;
