//! The copy engine: the one place that moves images into a registry.
//!
//! Every command that writes images (`install`, `install --single-pass`,
//! `sync`, file sets with `--files-to-registry`) and every command that
//! predicts what such a write would do (`simulate`, `install --dry-run`,
//! `sync --dry-run`) goes through here, in three steps:
//!
//! 1. **Plan** ([`plan`]): one [`ImageCopy`] per image: its target
//!    repository and tag, its manifests children first (exact bytes), and its
//!    configs and layers. [`Plan`] groups the blobs by digest, each with the
//!    repositories that need it, in image order.
//! 2. **Decide** ([`decide()`]): HEAD requests only; for every blob and
//!    repository one [`Action`] (skip / mount / upload) and for every manifest
//!    and tag one (skip / push). This is what dry runs print. It never sends a
//!    write.
//! 3. **Execute** ([`execute()`]): blobs first (up to `concurrency` at once),
//!    read from a [`BlobSources`] (a verified bundle read in place, split
//!    volumes, a seekable zstd stream, a source registry), then manifests as
//!    exact bytes, children before parents, then the tag. Each blob and
//!    manifest is decided again at the moment it is written, the same way
//!    [`decide()`] does, so what is reported is what happened. Its first
//!    question, one HEAD of each image's root reference, can be asked on
//!    its own ([`check_roots`], read only) and handed to
//!    [`execute_checked`], so a caller can time it or ask it earlier.
//!
//! Progress and counting live in one type, [`CopyStats`], and one reader
//! that counts the high-water mark of bytes sent (a retry never counts twice).
//!
//! Never pushes a manifest before every blob and child it references is in
//! place; never stores a manifest the registry files under another digest
//! without failing.

mod decide;
mod execute;
mod plan;
mod progress;

pub use decide::{decide, decide_from, Decisions};
pub use execute::{
    check_roots, copy_blob, execute, execute_checked, BlobSources, Executed, RootChecks,
};
pub use plan::{walk_image, BlobNeed, ImageCopy, Plan, Walked};

use atp_bundle::Digest;
use serde::Serialize;

use crate::reference::Repository;

/// What happens (or happened) to one blob in one repository, or to one
/// manifest reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The blob is sent.
    Upload,
    /// The blob is mounted from another repository of the same registry.
    Mount,
    /// Already there: nothing is sent.
    Skip,
    /// The manifest (or tag) is written.
    Push,
}

/// One blob in one target repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobStep {
    pub digest: Digest,
    pub size: u64,
    pub repository: String,
    pub action: Action,
    /// The repository a mount takes the blob from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// One manifest reference (a digest, or the tag) in one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestStep {
    pub repository: String,
    /// A digest (manifests and indexes, children first) or the tag (last).
    pub reference: String,
    pub digest: Digest,
    pub action: Action,
}

/// Counts of a copy, planned or done.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct CopyStats {
    pub uploaded: u64,
    pub mounted: u64,
    pub skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_mounted: u64,
    pub bytes_skipped: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
}

impl CopyStats {
    /// Count one blob step.
    pub fn add_blob(&mut self, step: &BlobStep) {
        match step.action {
            Action::Upload => {
                self.uploaded += 1;
                self.bytes_uploaded += step.size;
            }
            Action::Mount => {
                self.mounted += 1;
                self.bytes_mounted += step.size;
            }
            Action::Skip | Action::Push => {
                self.skipped += 1;
                self.bytes_skipped += step.size;
            }
        }
    }

    /// Count one manifest step.
    pub fn add_manifest(&mut self, step: &ManifestStep) {
        if step.action == Action::Skip {
            self.manifests_skipped += 1;
        } else {
            self.manifests_pushed += 1;
        }
    }

    /// Counts of these steps.
    pub fn of(blobs: &[BlobStep], manifests: &[ManifestStep]) -> Self {
        let mut s = Self::default();
        blobs.iter().for_each(|b| s.add_blob(b));
        manifests.iter().for_each(|m| s.add_manifest(m));
        s
    }
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    // The registry error is part of the message, not a `source()`: shown
    // through anyhow's `{:#}` it would otherwise be printed twice.
    #[error("{what} to {target}: {cause}")]
    Registry {
        what: String,
        target: String,
        cause: crate::Error,
    },
    #[error("registry stored manifest {reference} of {target} as {found}, expected {expected}")]
    StoredDigest {
        target: String,
        reference: String,
        expected: Digest,
        found: Digest,
    },
    #[error("blob {digest} has no source to copy it from\nhint: this is a bug in the caller's plan; report it")]
    NoSource { digest: Digest },
    #[error("manifest {digest} of {image} could not be read: {reason}")]
    Manifest {
        image: String,
        digest: Digest,
        reason: String,
    },
}

impl CopyError {
    fn registry(what: impl Into<String>, target: &Repository, cause: crate::Error) -> Self {
        CopyError::Registry {
            what: what.into(),
            target: target.to_string(),
            cause,
        }
    }
}
