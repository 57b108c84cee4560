//! What `sync` did, or in a dry run would do: per image, every blob and
//! manifest step of the copy engine, and the totals; as text or JSON.

use std::collections::HashSet;
use std::fmt::Write as _;

use atp_bundle::Digest;
use atp_registry::copy::{Action, BlobStep, CopyStats, ImageCopy, ManifestStep};
use serde::Serialize;

/// One image: where it came from, where it goes, what moves.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// The normalized reference, as a bundle records it.
    pub reference: String,
    /// Where the bytes are read.
    pub from: String,
    /// `TARGET/repo:tag` (or `@digest` when untagged).
    pub target: String,
    pub digest: Digest,
    pub blobs: Vec<BlobStep>,
    pub manifests: Vec<ManifestStep>,
    /// Bytes uploaded (or, in a dry run, that would be).
    pub bytes: u64,
    /// Seconds this image took (real runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// What `sync` did, or in a dry run would do.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    pub dry_run: bool,
    pub target_registry: String,
    pub images: Vec<ImageReport>,
    pub uploaded: u64,
    pub mounted: u64,
    pub skipped: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
    /// Each subject's fallback tag index at the target (only when some
    /// referrer is an OCI referrer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrer_indexes: Vec<IndexReport>,
    /// Each carried cosign tag at the target, written once after the copy
    /// and merged with the target's own cosign manifest under it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cosign_tags: Vec<TagReport>,
}

/// What became (or would become) of one carried cosign tag.
#[derive(Debug, Clone, Serialize)]
pub struct TagReport {
    /// `TARGET/repo:sha256-<hex>.sig` (or `.att`, `.sbom`).
    pub tag: String,
    /// `written`, `merged`, `unchanged`; in a dry run `to write`,
    /// `to merge`, `unchanged` or `refused`.
    pub outcome: &'static str,
    /// Why it was refused (dry run): the error a real run stops with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became (or would become) of one subject's fallback tag index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    /// `TARGET/repo:sha256-<hex>`.
    pub index: String,
    /// `written`, `to write` (dry run), `unchanged` or `referrers-api`.
    pub outcome: &'static str,
}

/// Per image, in plan order: its blob steps (a blob an earlier image of
/// the same repository already claimed shows as a skip, so totals add up)
/// and its manifest steps (they come per image in order: digests, then the
/// tag).
pub fn image_reports(
    images: &[ImageCopy],
    from: &[String],
    blobs: &[BlobStep],
    manifests: &[ManifestStep],
    seconds: Option<&[f64]>,
) -> Vec<ImageReport> {
    let mut claimed: HashSet<(String, Digest)> = HashSet::new();
    let mut manifest_steps = manifests.iter();
    let mut out = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let repo = img.target.to_string();
        let mut steps = Vec::new();
        for (d, size) in &img.blobs {
            let found = blobs
                .iter()
                .find(|b| b.repository == repo && &b.digest == d);
            let first = claimed.insert((repo.clone(), d.clone()));
            steps.push(match found {
                Some(step) if first => step.clone(),
                _ => BlobStep {
                    digest: d.clone(),
                    size: *size,
                    repository: repo.clone(),
                    action: Action::Skip,
                    from: None,
                },
            });
        }
        let n = img.manifests.len() + usize::from(img.tag.is_some());
        let msteps: Vec<ManifestStep> = manifest_steps.by_ref().take(n).cloned().collect();
        out.push(ImageReport {
            reference: img.source.clone(),
            from: from[i].clone(),
            target: img.target_reference(),
            digest: img.root.digest.clone(),
            bytes: steps
                .iter()
                .filter(|b| b.action == Action::Upload)
                .map(|b| b.size)
                .sum(),
            blobs: steps,
            manifests: msteps,
            seconds: seconds.and_then(|s| s.get(i).copied()),
        });
    }
    out
}

impl SyncSummary {
    /// The summary of `images`, with the totals of `stats`.
    pub fn new(
        dry_run: bool,
        target_registry: &str,
        images: Vec<ImageReport>,
        stats: &CopyStats,
    ) -> Self {
        Self {
            dry_run,
            target_registry: target_registry.to_string(),
            images,
            uploaded: stats.uploaded,
            mounted: stats.mounted,
            skipped: stats.skipped,
            bytes_uploaded: stats.bytes_uploaded,
            manifests_pushed: stats.manifests_pushed,
            manifests_skipped: stats.manifests_skipped,
            referrer_indexes: Vec::new(),
            cosign_tags: Vec::new(),
        }
    }

    /// With the referrers' fallback tag indexes.
    pub fn with_indexes(mut self, indexes: Vec<IndexReport>) -> Self {
        self.referrer_indexes = indexes;
        self
    }

    /// With the carried cosign tags.
    pub fn with_tags(mut self, tags: Vec<TagReport>) -> Self {
        self.cosign_tags = tags;
        self
    }

    /// The first refused cosign tag's error (a dry run that a real run
    /// would stop at).
    pub fn refusal(&self) -> Option<&str> {
        self.cosign_tags.iter().find_map(|t| t.error.as_deref())
    }
}

impl SyncSummary {
    /// The human-readable plan or result.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run { "would" } else { "did" };
        for i in &self.images {
            let count = |a: Action| i.blobs.iter().filter(|b| b.action == a).count();
            let pushes = i
                .manifests
                .iter()
                .filter(|m| m.action == Action::Push)
                .count();
            let _ = writeln!(
                s,
                "{} -> {} ({})\n  from {}\n  {verb} upload {} blob(s), {} bytes; mount {}; skip {}; push {} manifest reference(s){}",
                i.reference,
                i.target,
                i.digest,
                i.from,
                count(Action::Upload),
                i.bytes,
                count(Action::Mount),
                count(Action::Skip),
                pushes,
                i.seconds.map(|t| format!(" in {t:.2}s")).unwrap_or_default()
            );
        }
        for t in &self.cosign_tags {
            let _ = writeln!(s, "cosign tag {}: {}", t.tag, t.outcome);
        }
        for x in &self.referrer_indexes {
            let _ = writeln!(s, "fallback tag index {}: {}", x.index, x.outcome);
        }
        let _ = writeln!(
            s,
            "{} image(s) to {}: {verb} upload {} blob(s) ({} bytes), mount {}, skip {}; push {} manifest reference(s), {} already in place{}",
            self.images.len(),
            self.target_registry,
            self.uploaded,
            self.bytes_uploaded,
            self.mounted,
            self.skipped,
            self.manifests_pushed,
            self.manifests_skipped,
            if self.dry_run { " (dry run: nothing written)" } else { "" }
        );
        s
    }
}
