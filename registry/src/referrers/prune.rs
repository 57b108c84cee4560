//! Taking our entries out of a site's fallback tag index (`uninstall
//! --prune-registry`): [`prune_fallback_index`] is pure; [`remove_from_fallback_index`]
//! reads the index, then writes it once without the given digests, or
//! deletes the tag's manifest when nothing else is left in it. What another
//! tool listed stays, in its order. Nothing is sent when none of the digests
//! is listed (or the tag is gone).

use atp_bundle::format::ImageIndex;
use atp_bundle::Digest;

use super::wire::{get_bounded, Got};
use super::{fallback_tag, parse_index, MAX_INDEX_BYTES};
use crate::client::Client;
use crate::delete::Deleted;
use crate::error::Error;
use crate::manifest::MANIFEST_ACCEPT;
use crate::reference::Repository;

/// What taking `remove` out of `existing` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pruned {
    /// None of them is listed.
    Unchanged,
    /// Nothing else is listed: delete the tag's manifest.
    Empty,
    /// The index without them (every other entry kept, in its order).
    Rest(ImageIndex),
}

/// `existing` without the entries whose digest is in `remove`.
pub fn prune_fallback_index(existing: &ImageIndex, remove: &[Digest]) -> Pruned {
    let mut out = existing.clone();
    out.manifests.retain(|d| !remove.contains(&d.digest));
    if out.manifests.len() == existing.manifests.len() {
        Pruned::Unchanged
    } else if out.manifests.is_empty() {
        Pruned::Empty
    } else {
        Pruned::Rest(out)
    }
}

/// What [`remove_from_fallback_index`] did (or, `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The tag is not there, or lists none of them: nothing sent.
    Unchanged,
    /// Written once, with `left` entries.
    Rewritten { removed: usize, left: usize },
    /// Nothing else was listed: the tag's manifest was deleted.
    Deleted { removed: usize },
    /// The registry does not allow deletes.
    Unsupported,
}

/// Take `remove` out of `subject`'s fallback tag index in `repo` (see the
/// module doc). Something under the tag that is not an image index is left
/// alone (an error naming it).
pub async fn remove_from_fallback_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    remove: &[Digest],
    dry_run: bool,
) -> Result<Removal, Error> {
    let tag = fallback_tag(subject);
    let hostile = |reason: String| {
        Error::InvalidManifest {
        context: format!("the referrers index {repo}:{tag}"),
        reason: format!(
            "{reason}; it was left as it is\nhint: another tool wrote something else under this tag; inspect it"
        ),
    }
    };
    let (bytes, media_type) = match get_bounded(client, repo, &tag, &MANIFEST_ACCEPT).await? {
        Got::Missing => return Ok(Removal::Unchanged),
        Got::TooLarge(n) => {
            return Err(hostile(format!(
                "it is {n} bytes, over the {MAX_INDEX_BYTES} byte limit"
            )))
        }
        Got::Body { bytes, media_type } => (bytes, media_type),
    };
    parse_index(&media_type, &bytes, usize::MAX).map_err(hostile)?;
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| hostile(e.to_string()))?;
    let before = index.manifests.len();
    match prune_fallback_index(&index, remove) {
        Pruned::Unchanged => Ok(Removal::Unchanged),
        Pruned::Empty => {
            if !dry_run {
                let d = Digest::of(&bytes);
                if client.delete_manifest(repo, &d).await? == Deleted::Unsupported {
                    return Ok(Removal::Unsupported);
                }
            }
            Ok(Removal::Deleted { removed: before })
        }
        Pruned::Rest(rest) => {
            if !dry_run {
                let out = atp_bundle::format::json::to_canonical_vec(&rest)
                    .map_err(|e| hostile(e.to_string()))?;
                client
                    .push_manifest(repo, &tag, &out, atp_bundle::format::media::OCI_INDEX)
                    .await?;
            }
            Ok(Removal::Rewritten {
                removed: before - rest.manifests.len(),
                left: rest.manifests.len(),
            })
        }
    }
}
