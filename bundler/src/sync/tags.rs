//! After the copy, the tags `sync` writes for referrers, as `install` does
//! (through the same [`atp_registry::referrers`] functions): each carried
//! cosign tag, merged with the target's own cosign manifest under it (never
//! replacing it), then each subject's `sha256-<hex>` fallback tag index
//! where the target has no referrers API; each written once, nothing when
//! already in place. A dry run reads and decides only (GET).

use atp_bundle::format::Descriptor;
use atp_bundle::Digest;
use atp_registry::{Client, Repository};

use super::report::{IndexReport, TagReport};
use super::SyncError;

/// A subject's OCI referrers for its fallback tag index at the target.
pub(super) type FallbackAddition = (Repository, Digest, Vec<Descriptor>);

/// A carried cosign tag: its referrer is pushed by digest in the copy, and
/// the tag is written after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CosignTag {
    pub repo: Repository,
    pub tag: String,
    /// The carried manifest, exact bytes.
    pub manifest: Vec<u8>,
    pub media_type: String,
}

/// Each carried cosign tag at the target: planned (`plan_only`: a refusal
/// is reported with its error, and the others are still planned) or
/// written (a refusal stops sync, the tag left as it is).
pub(super) async fn cosign_tags(
    target: &Client,
    tags: &[CosignTag],
    plan_only: bool,
) -> Result<Vec<TagReport>, SyncError> {
    use atp_registry::referrers::{plan_cosign_tag, update_cosign_tag, CosignPlan, CosignUpdate};
    let mut out = Vec::new();
    for t in tags {
        let mut error = None;
        let outcome = if plan_only {
            match plan_cosign_tag(target, &t.repo, &t.tag, &t.manifest).await {
                Ok(CosignPlan::Write) => "to write",
                Ok(CosignPlan::Merge(_)) => "to merge",
                Ok(CosignPlan::Unchanged) => "unchanged",
                Err(e @ atp_registry::Error::InvalidManifest { .. }) => {
                    error = Some(e.to_string());
                    "refused"
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            match update_cosign_tag(target, &t.repo, &t.tag, &t.manifest, &t.media_type).await? {
                CosignUpdate::Written(_) => "written",
                CosignUpdate::Merged { .. } => "merged",
                CosignUpdate::Unchanged => "unchanged",
            }
        };
        out.push(TagReport {
            tag: format!("{}:{}", t.repo, t.tag),
            outcome,
            error,
        });
    }
    Ok(out)
}

/// Each subject's OCI referrers, listed in its fallback tag index at the
/// target: merged and written once (`plan_only`: read and decided only).
pub(super) async fn fallback_indexes(
    target: &Client,
    additions: &[FallbackAddition],
    plan_only: bool,
) -> Result<Vec<IndexReport>, SyncError> {
    use atp_registry::referrers::{self as r, FallbackPlan, FallbackUpdate};
    let mut out = Vec::new();
    for (repo, subject, add) in additions {
        let outcome = if plan_only {
            match r::plan_fallback_index(target, repo, subject, add).await? {
                FallbackPlan::Write { .. } => "to write",
                FallbackPlan::Unchanged => "unchanged",
                FallbackPlan::ApiSupported => "referrers-api",
            }
        } else {
            match r::update_fallback_index(target, repo, subject, add).await? {
                FallbackUpdate::Written { .. } => "written",
                FallbackUpdate::Unchanged => "unchanged",
                FallbackUpdate::ApiSupported => "referrers-api",
            }
        };
        out.push(IndexReport {
            index: format!("{repo}:{}", r::fallback_tag(subject)),
            outcome,
        });
    }
    Ok(out)
}
