//! The ATP Offline bundle format: one signed, content-addressed tar that holds
//! an OCI image layout. See `docs/bundle-format.md` for the specification.
//!
//! File overview (what reads and writes each part of a bundle):
//! - `oci-layout`, entry order, tar headers: [`format::ustar`], [`writer`], [`verify`]
//! - `index.json` (annotations, descriptors): [`format::info`], [`assemble`]
//! - `index.json.sig`: [`sign`], keys in [`keys`]
//! - bundle config and artifact manifests: [`format::config`], [`assemble`]
//! - reading one blob back for `inspect`/`install`: [`open`]
//! - split volumes, `volumes.json`, seekable zstd: [`media`]
//! - size limits on keys, signatures and `volumes.json` read from disk: [`small_input`]
//! - which bundled image a manifest's image spelling means: [`image_ref`]
//!
//! This crate is a pure library: no network, no image pulling.

pub mod assemble;
pub mod digest;
pub mod format;
pub mod image_ref;
pub mod keys;
pub mod kubectl;
pub mod kustomize;
pub mod media;
pub mod metrics;
pub mod open;
pub mod progress;
pub mod sample;
pub mod sign;
pub mod small_input;
pub mod verify;
pub mod writer;

pub use digest::Digest;
pub use format::BundleInfo;
pub use verify::{
    verify_file, verify_reader, BlobLocation, Finding, FindingKind, Report, VisitBlob,
};
pub use writer::{BlobSlot, BundleWriter, SignedIndex, WriteError};
