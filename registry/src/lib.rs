//! `atp-registry`: the OCI distribution client used by the bundler (pull) and
//! the installer (push).
//!
//! # API at a glance
//!
//! ```no_run
//! # async fn demo() -> Result<(), atp_registry::Error> {
//! use atp_registry::{Client, ClientOptions, ParsedManifest, Reference, RegistryConfig, Repository};
//!
//! let mut opts = ClientOptions::default();
//! opts.registries.insert(
//!     "127.0.0.1:5000".into(),
//!     RegistryConfig { plain_http: true, ..Default::default() },
//! );
//! let client = Client::new(opts)?; // cheap to clone
//!
//! // Pull: exact manifest bytes, digest-verified; walk children with ParsedManifest.
//! let r: Reference = "127.0.0.1:5000/atp/router:1.4.0".parse()?;
//! let m = client.get_manifest(&r).await?;
//! for child in m.kind()?.children() {
//!     let mut sink = Vec::new();
//!     if atp_registry::is_manifest_type(&child.media_type) {
//!         client.get_manifest_by_digest(r.repository(), &child.digest).await?;
//!     } else {
//!         client.fetch_blob_to(r.repository(), &child.digest, child.size, &mut sink).await?;
//!     }
//! }
//!
//! // Push: blobs first (skip / mount / upload), manifests last, exact bytes.
//! let dst: Repository = "127.0.0.1:5001/atp/router".parse()?;
//! let blob = bytes::Bytes::from_static(b"{}");
//! let d = atp_bundle::Digest::of(&blob);
//! client.push_blob(&dst, &d, blob.len() as u64, &blob, &[]).await?;
//! client.push_manifest(&dst, "1.4.0", &m.bytes, &m.media_type).await?;
//! # Ok(()) }
//! ```
//!
//! * [`Client`]: `new`, `get_manifest`, `get_manifest_by_digest`,
//!   `manifest_exists`, `blob_exists`, `blob_reader` (verifying [`BlobStream`],
//!   also as `AsyncRead`), `fetch_blob_to` (verifying, resumes with `Range`),
//!   `push_blob` (-> [`PushOutcome`]), `push_manifest`, `probe_push` (open
//!   and cancel an upload session: push permission without writing),
//!   `delete_manifest` (by digest only; -> [`Deleted`], 405 included).
//! * [`ClientOptions`] / [`RegistryConfig`] / [`Credentials`] /
//!   [`DefaultCredentials`] / [`RetryPolicy`]: settings; `concurrency` bounds
//!   blob transfers across the whole client.
//! * [`Reference`], [`Repository`]: Docker-style parsing and normalization.
//! * [`Manifest`], [`ParsedManifest`], [`Platform`]: walking images and
//!   selecting platforms. [`Descriptor`] and the [`media`] types are the
//!   bundle format's (`atp_bundle::format`), re-exported.
//! * [`BlobSource`] ([`FileSource`], `Bytes`): re-openable upload bodies.
//! * [`Error`]: one enum, structured fields, `hint:` lines, no secrets.
//!
//! # Modules
//! `reference` (names), `mapping` (where images land in a target registry,
//! shared by install and sync), `config` (settings), `credstore` (docker/containers
//! auth files and helpers), `auth` (challenges and tokens), `retry` (what is
//! retried), `client` (request path), `pull`, `push`, `delete`, `manifest`, `error`,
//! `referrers` (the artifacts that refer to a manifest: discovery through the
//! referrers API, its fallback tag and cosign's tags, and keeping the
//! fallback tag index at a site), and `copy`: the copy engine (plan / decide /
//! execute) that every command writing images into a registry goes through.

mod auth;
mod client;
pub mod config;
pub mod copy;
mod credstore;
mod delete;
mod discovery_cache;
pub mod error;
mod idle;
pub mod manifest;
pub mod mapping;
mod probe;
mod pull;
mod pull_blob;
mod push;
pub mod reference;
pub mod referrers;
pub mod retry;

pub use atp_bundle::format::media;
pub use client::Client;
pub use config::{ClientOptions, Credentials, DefaultCredentials, RegistryConfig};
pub use delete::Deleted;
pub use error::Error;
pub use manifest::{is_manifest_type, Descriptor, Manifest, ParsedManifest, Platform};
pub use probe::PushProbe;
pub use pull_blob::{parse_content_range, BlobStream};
pub use push::{BlobSource, FileSource, PushOutcome};
pub use reference::{Reference, Repository};
pub use retry::RetryPolicy;

/// Re-exported so callers need not depend on `atp-bundle` just for digests.
pub use atp_bundle::Digest;
/// Re-exported: `Bytes` is a [`BlobSource`] and the type of manifest bytes.
pub use bytes::Bytes;
