//! The bundle config (spec section 4): the JSON blob the bundle artifact
//! points to, describing images, files, the manifests root and delta bases.
//!
//! Written as canonical JSON; it is data, never code, and it is trusted only
//! after its digest matches the signed bundle artifact manifest.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::info::serde_time;
use crate::Digest;

/// The bundle config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleConfig {
    #[serde(with = "serde_time")]
    pub created: OffsetDateTime,
    pub images: Vec<ImageEntry>,
    pub files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<ManifestsRoot>,
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaInfo>,
}

/// One image of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// Normalized source reference.
    #[serde(rename = "ref")]
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    /// Platforms kept (empty when not pruned or single-platform).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `Kind/namespace/name` of every rendered object using the image.
    #[serde(default)]
    pub used_by: Vec<String>,
}

/// One file of a file set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub set: String,
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// Where the kustomize root and overlay sit inside the kustomize layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestsRoot {
    pub root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
}

/// Delta bundle bookkeeping (spec section 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaInfo {
    pub omitted: Vec<Digest>,
    pub bases: Vec<Digest>,
}

impl BundleConfig {
    /// Canonical JSON bytes of this config.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        super::json::to_canonical_vec(self).expect("bundle config is always serializable")
    }

    /// The omitted blob digests (empty for a full bundle).
    pub fn omitted(&self) -> &[Digest] {
        self.delta.as_ref().map(|d| &d.omitted[..]).unwrap_or(&[])
    }
}
