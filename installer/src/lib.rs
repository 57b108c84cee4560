//! The disconnected side of ATP Offline: every `atp-installer` operation as a
//! library function, so the CLI in `main.rs` stays a thin wrapper.
//!
//! - [`verify`]: check every byte of a bundle against the trusted key
//! - [`verify_media`]: split volumes against their signed `volumes.json`
//! - [`verified`]: a verified bundle read in place, re-hashed on every read
//! - [`media_source`]: upload sources over a tar, volumes and seekable zstd
//! - [`site`], [`options`], [`error`]: the site registry, what install is
//!   asked to do, and why it stopped
//! - [`preflight`]: flags, output paths and tools, checked before any request
//! - [`prepare`]: the plan phase shared by install and simulate (sends nothing)
//! - [`delta`]: the delta bundle pre-check (blobs the registry must have)
//! - [`install`]: verify → plan → copy → files → render → gate → apply → record
//! - [`single_pass`]: verify and push blobs in one read of slow media
//! - [`simulate`]: every step of install except the writes, and the plan
//! - [`inventory`]: what the site registry holds, for delta bundles
//! - [`files`]: model files into the model cache folder and the registry
//! - [`render`]: the shipped overlay rewritten for the site
//! - [`gate`]: the air-gap gate over rendered output
//! - [`mirrors`]: node mirror config (containerd, CRI-O, podman) for unmodified references
//! - [`swap`]: a whole output folder written beside its target and swapped in (render, mirrors)
//! - [`serve`]: a verified bundle served in place as a read-only OCI registry
//! - [`apply`]: the kubectl boundary
//! - [`state`], [`metrics`]: rollback protection, receipts, Prometheus textfile
//! - [`history`]: a channel's receipts and events, and what is in the cluster
//! - [`status`], [`rollback`], [`uninstall`]: the installed history; re-apply
//!   an earlier release's kept output; delete the applied release's objects

pub mod apply;
pub mod delta;
pub mod error;
pub mod files;
pub mod gate;
pub mod history;
pub mod install;
pub mod inventory;
pub mod media_source;
pub mod metrics;
pub mod mirrors;
pub mod options;
pub mod preflight;
pub mod prepare;
pub mod render;
pub mod rollback;
pub mod serve;
pub mod simulate;
pub mod single_pass;
pub mod site;
pub mod state;
pub mod status;
pub mod swap;
pub mod uninstall;
pub mod verified;
pub mod verify;
pub mod verify_media;
