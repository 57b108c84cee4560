//! The artifacts that refer to a manifest (signatures, attestations, SBOMs):
//! finding them in a source registry, and keeping the referrers tag schema
//! up to date in a site registry that has no referrers API.
//!
//! Found three ways, in this order ([`discover`]):
//! 1. the OCI 1.1 referrers API, `GET /v2/<name>/referrers/<digest>` (an image
//!    index; `Link: rel="next"` pages followed, same origin only);
//! 2. when the registry does not answer it with an index (404, 405, HTML, ...),
//!    the referrers tag schema: the tag `sha256-<hex>` holding an image index;
//! 3. cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom` (HEAD, then GET).
//!
//! Within a run ([`discover_cached`] with the client's [`DiscoveryCache`],
//! as `create` and `sync` do; `listing`), fewer requests find the same:
//! a registry that answered the referrers API with a plain 404 (one that
//! has the API answers an empty index instead) is not asked again, its
//! subjects go straight to the fallback tag; anything else (401, 5xx, ...)
//! is asked again for every subject, as before. Each repository's tags are
//! listed once (`GET /v2/<name>/tags/list`, `Link: rel="next"` pages, same
//! origin, bounded to [`MAX_TAGS`] tags and [`MAX_LIST_BYTES`]), and only
//! the fallback and cosign tags it holds are fetched (GET, no HEAD); when
//! the listing is refused, fails or is over its bounds, that repository's
//! tags are asked one by one as above.
//!
//! Bounded: a referrers or fallback index over [`MAX_INDEX_BYTES`], or with
//! more than [`DiscoverOptions::max_entries`] entries, or that is not an
//! image index at all, is skipped with a warning (`tracing::warn!`, and in
//! [`Discovery::skipped`]), never an error and never a hang. An entry whose
//! media type is not a manifest type is skipped the same way. A listed
//! manifest that does not exist is an error naming it, from
//! [`fetch_referrer`] (discovery lists, fetching proves): the source said it
//! was there, so the bundle would otherwise be silently short of it.
//!
//! At the site ([`update_fallback_index`]): when the registry answers the
//! referrers API it indexes pushed referrers itself and nothing is written.
//! Otherwise the `sha256-<hex>` index is read, merged ([`merge_fallback_index`]:
//! existing entries kept in their order with every descriptor field the
//! format knows (mediaType, digest, size, artifactType, platform,
//! annotations; `urls` and `data` are not kept), new ones appended, by
//! digest) and written with one manifest PUT, only when something changed,
//! so a re-run sends no PUT and the index is never half-updated. A site index
//! that is too large or not an image index is an error (we will not replace
//! what another tool wrote). Two writers racing on the same subject can
//! still lose an entry: the distribution API has no conditional PUT.
//!
//! A carried cosign tag is merged the way cosign adds a signature, never
//! replacing the site's own (`cosign`: [`update_cosign_tag`]).
//!
//! Which repositories a carried referrer lands in is one rule, [`Holders`]
//! (`placement`), for `install` and `sync` alike.

use std::collections::BTreeMap;

use atp_bundle::format::referrer::ReferrerFacts;
use atp_bundle::format::{media, ImageIndex};
use atp_bundle::Digest;
use serde::Deserialize;

use crate::client::Client;
use crate::error::Error;
use crate::manifest::{Descriptor, Manifest, MANIFEST_ACCEPT};
use crate::reference::Repository;
use wire::{api_index, get_bounded, Api, Got};

/// The tag names are the bundle format's (`atp_bundle::format::referrer`).
pub use atp_bundle::format::referrer::{cosign_tag, fallback_tag, COSIGN_SUFFIXES};

/// A referrers or fallback index larger than this is skipped at discovery and
/// refused at the site (the bundle format's manifest limit).
pub const MAX_INDEX_BYTES: u64 = atp_bundle::format::MAX_MANIFEST_SIZE;
/// Default bound on the entries of one referrers index.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;

/// What [`discover`] looks for.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The referrers API, else the fallback tag.
    pub oci: bool,
    /// cosign's `sha256-<hex>.sig|.att|.sbom` tags.
    pub cosign: bool,
    /// An index with more entries than this is skipped with a warning.
    pub max_entries: usize,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self {
            oci: true,
            cosign: true,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// How a referrer was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundVia {
    /// Listed by `GET /v2/<name>/referrers/<digest>`.
    Api,
    /// Listed in the `sha256-<hex>` fallback tag's index.
    FallbackTag,
    /// Under cosign's tag, e.g. `sha256-<hex>.sig`.
    CosignTag(String),
}

/// One referrer of a subject: its descriptor (digest, size, mediaType,
/// artifactType, annotations) and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub descriptor: Descriptor,
    pub via: FoundVia,
}

impl Found {
    /// The upstream tag (cosign's convention), if it was found by one.
    pub fn tag(&self) -> Option<&str> {
        match &self.via {
            FoundVia::CosignTag(t) => Some(t),
            _ => None,
        }
    }
}

/// What [`discover_all`] found, and what it skipped (each already warned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub found: Vec<Found>,
    pub skipped: Vec<String>,
}

/// The referrers of `subject` in `repo` (see the module doc), deduplicated
/// by digest: an OCI referrer first as listed, then cosign's tags. Skips are
/// logged as warnings.
pub async fn discover(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    opts: &DiscoverOptions,
) -> Result<Vec<Found>, Error> {
    Ok(discover_all(client, repo, subject, opts).await?.found)
}

/// [`discover`], also returning what was skipped and why.
pub async fn discover_all(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    opts: &DiscoverOptions,
) -> Result<Discovery, Error> {
    discover::discover_in(client, repo, subject, opts, None).await
}

/// [`discover_all`] within a run: what `cache` learned (a registry without
/// the referrers API, a repository's tags) is not asked again (see the
/// module doc). Finds what [`discover_all`] finds.
pub async fn discover_cached(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    opts: &DiscoverOptions,
    cache: &DiscoveryCache,
) -> Result<Discovery, Error> {
    discover::discover_in(client, repo, subject, opts, Some(cache)).await
}

/// Fetch a found referrer's manifest, digest-checked. A listed manifest that
/// does not exist is an error naming it and its subject; an OCI referrer
/// whose own `subject` is not `subject` is an error too.
pub async fn fetch_referrer(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    found: &Found,
) -> Result<Manifest, Error> {
    let d = &found.descriptor.digest;
    let m = match client.get_manifest_by_digest(repo, d).await {
        Err(Error::NotFound { url, .. }) => {
            return Err(Error::NotFound {
                what: format!(
                "referrer {d} of {repo}@{subject} (listed by {}, but the manifest is not there)",
                match &found.via {
                    FoundVia::Api => "the referrers API".to_string(),
                    FoundVia::FallbackTag => format!("the tag {}", fallback_tag(subject)),
                    FoundVia::CosignTag(t) => format!("the tag {t}"),
                }
            ),
                url,
            })
        }
        other => other?,
    };
    if found.tag().is_none() {
        let named = subject_of(&m.bytes)?;
        if named.as_ref() != Some(subject) {
            return Err(Error::InvalidManifest {
                context: format!("referrer {repo}@{d}"),
                reason: format!(
                    "listed as a referrer of {subject} but its subject is {}\nhint: the source's referrers index is wrong; remove the entry there",
                    named.map_or("absent".to_string(), |s| s.to_string())
                ),
            });
        }
    }
    Ok(m)
}

/// The descriptor a referrers index lists for a referrer manifest: its
/// digest, size and media type, `artifactType` (the manifest's, else its
/// config's media type) and the manifest's own annotations.
pub fn referrer_descriptor(media_type: &str, bytes: &[u8]) -> Result<Descriptor, Error> {
    let digest = Digest::of(bytes);
    let invalid = |reason: String| Error::InvalidManifest {
        context: format!("referrer {digest}"),
        reason,
    };
    let facts = ReferrerFacts::of(bytes)
        .ok_or_else(|| invalid("not a manifest with well-formed subject and config".into()))?;
    let own: Annotations = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let mut d = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
    d.artifact_type = facts.artifact_type().map(str::to_string);
    d.annotations = own.annotations;
    Ok(d)
}

/// The `subject` a manifest names, if any.
pub fn subject_of(bytes: &[u8]) -> Result<Option<Digest>, Error> {
    let facts = ReferrerFacts::of(bytes).ok_or_else(|| Error::InvalidManifest {
        context: format!("referrer {}", Digest::of(bytes)),
        reason: "not a manifest with well-formed subject and config".into(),
    })?;
    Ok(facts.subject.map(|s| s.digest))
}

/// The fallback index after adding `add`: `None` when nothing changes.
/// Existing entries are never dropped and keep their order; new ones (by
/// digest) are appended in the given order.
pub fn merge_fallback_index(
    existing: Option<&ImageIndex>,
    add: &[Descriptor],
) -> Option<ImageIndex> {
    let mut out = existing.cloned().unwrap_or_else(|| ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: Vec::new(),
        annotations: BTreeMap::new(),
    });
    let before = out.manifests.len();
    for d in add {
        if !out.manifests.iter().any(|e| e.digest == d.digest) {
            out.manifests.push(d.clone());
        }
    }
    (out.manifests.len() != before).then_some(out)
}

/// What [`update_fallback_index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackUpdate {
    /// The registry answers the referrers API: nothing to maintain.
    ApiSupported,
    /// Every referrer was already listed: nothing sent.
    Unchanged,
    /// The index was written once under `tag`, now with `entries` entries,
    /// `added` the ones this write listed (not there before).
    Written {
        tag: String,
        digest: Digest,
        entries: usize,
        added: Vec<Digest>,
    },
}

/// What [`update_fallback_index`] would do, found by reads only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackPlan {
    ApiSupported,
    Unchanged,
    /// Put this index under `tag` (existing entries first, then the new:
    /// `added`).
    Write {
        tag: String,
        index: ImageIndex,
        added: Vec<Digest>,
    },
}

/// Read what is at the site and decide (GETs only): the referrers API, then
/// the fallback tag, merged with `add`. A fallback tag holding something
/// too large or not an OCI image index is an error: it is not ours to
/// replace.
pub async fn plan_fallback_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    add: &[Descriptor],
) -> Result<FallbackPlan, Error> {
    if add.is_empty() {
        return Ok(FallbackPlan::Unchanged);
    }
    if !matches!(
        api_index(client, repo, subject, usize::MAX).await?,
        Api::Unsupported { .. }
    ) {
        return Ok(FallbackPlan::ApiSupported);
    }
    let tag = fallback_tag(subject);
    let hostile = |reason: String| {
        Error::InvalidManifest {
        context: format!("the referrers index {repo}:{tag}"),
        reason: format!(
            "{reason}; it was left as it is\nhint: another tool wrote something else under this tag; inspect it, and delete it if nothing needs it, then run again"
        ),
    }
    };
    let existing = match get_bounded(client, repo, &tag, &MANIFEST_ACCEPT).await? {
        Got::Missing => None,
        Got::TooLarge(n) => {
            return Err(hostile(format!(
                "it is {n} bytes, over the {MAX_INDEX_BYTES} byte limit"
            )))
        }
        Got::Body { bytes, media_type } => {
            let media_type = if media_type.is_empty() {
                crate::manifest::sniff_media_type(&bytes).unwrap_or_default()
            } else {
                media_type
            };
            if media_type != media::OCI_INDEX {
                return Err(hostile(format!(
                    "it is {media_type:?}, not an OCI image index"
                )));
            }
            let i: ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| hostile(format!("it does not parse as an image index: {e}")))?;
            if i.schema_version != 2 {
                return Err(hostile(format!("schemaVersion is {}", i.schema_version)));
            }
            Some(i)
        }
    };
    let before = existing.as_ref().map_or(0, |i| i.manifests.len());
    Ok(match merge_fallback_index(existing.as_ref(), add) {
        Some(index) => FallbackPlan::Write {
            tag,
            added: index.manifests[before..]
                .iter()
                .map(|d| d.digest.clone())
                .collect(),
            index,
        },
        None => FallbackPlan::Unchanged,
    })
}

/// Keep `subject`'s fallback tag index in `repo` listing `add` (see the
/// module doc): [`plan_fallback_index`], then one PUT when it says so. The
/// referrers must already be in `repo`.
pub async fn update_fallback_index(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    add: &[Descriptor],
) -> Result<FallbackUpdate, Error> {
    let (tag, merged, added) = match plan_fallback_index(client, repo, subject, add).await? {
        FallbackPlan::ApiSupported => return Ok(FallbackUpdate::ApiSupported),
        FallbackPlan::Unchanged => return Ok(FallbackUpdate::Unchanged),
        FallbackPlan::Write { tag, index, added } => (tag, index, added),
    };
    let bytes = atp_bundle::format::json::to_canonical_vec(&merged).map_err(|e| {
        Error::InvalidManifest {
            context: format!("the referrers index {repo}:{tag}"),
            reason: e.to_string(),
        }
    })?;
    let digest = client
        .push_manifest(repo, &tag, &bytes, media::OCI_INDEX)
        .await?;
    Ok(FallbackUpdate::Written {
        tag,
        digest,
        entries: merged.manifests.len(),
        added,
    })
}

/// Parse a referrers or fallback index, bounded: its entries, or why it is
/// skipped.
pub fn parse_index(
    media_type: &str,
    bytes: &[u8],
    max_entries: usize,
) -> Result<Vec<Descriptor>, String> {
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(format!(
            "{} bytes, over the {MAX_INDEX_BYTES} byte limit",
            bytes.len()
        ));
    }
    let sniffed = crate::manifest::sniff_media_type(bytes);
    let mt = if media_type.is_empty() {
        sniffed.as_deref().unwrap_or_default()
    } else {
        media_type
    };
    if mt != media::OCI_INDEX {
        return Err(format!("{mt:?} is not an OCI image index"));
    }
    let i: ImageIndex =
        serde_json::from_slice(bytes).map_err(|e| format!("not an image index: {e}"))?;
    if i.schema_version != 2 {
        return Err(format!("schemaVersion is {}, expected 2", i.schema_version));
    }
    if i.manifests.len() > max_entries {
        return Err(format!(
            "{} entries, over the limit of {max_entries}",
            i.manifests.len()
        ));
    }
    Ok(i.manifests)
}

/// A manifest's own annotations.
#[derive(Deserialize)]
struct Annotations {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

mod cosign;
mod discover;
mod listing;
mod placement;
mod prune;
mod wire;

pub use listing::{DiscoveryCache, MAX_LIST_BYTES, MAX_LIST_PAGES, MAX_TAGS};
pub use placement::Holders;
pub use prune::{prune_fallback_index, remove_from_fallback_index, Pruned, Removal};

pub use cosign::{
    cosign_config, merge_cosign_manifest, plan_cosign_tag, update_cosign_tag, CosignPlan,
    CosignUpdate, Merged,
};

#[cfg(test)]
mod tests;
