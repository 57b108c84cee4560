//! The disconnected side of ATP Offline: every `atp-installer` operation as a
//! library function, so the CLI in `main.rs` stays a thin wrapper.
//!
//! - [`verify`]: check every byte of a bundle against the trusted key
//! - [`verify_media`]: split volumes against their signed `volumes.json`
//! - [`media_source`]: push sources over volumes and seekable zstd
//! - [`install`]: verify → push → render → air-gap gate → apply → record
//! - [`simulate`]: every step of install except the writes, and the plan
//! - [`inventory`]: what the site registry holds, for delta bundles
//! - [`push`]: bundled images into the site registry, digests preserved
//! - [`files`]: model files into the model cache folder and the registry
//! - [`render`]: the shipped overlay rewritten for the site
//! - [`gate`]: the air-gap gate over rendered output
//! - [`apply`]: the kubectl boundary
//! - [`state`], [`metrics`]: rollback protection, receipts, Prometheus textfile

pub mod apply;
pub mod files;
pub mod gate;
pub mod install;
pub mod inventory;
pub mod media_source;
pub mod metrics;
pub mod push;
pub mod render;
pub mod simulate;
pub mod single_pass;
pub mod state;
pub mod verify;
pub mod verify_media;
