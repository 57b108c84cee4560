//! The artifacts that refer to each image a bundle or sync carries
//! (signatures, attestations, SBOMs; issue 19): found in the source registry
//! through `atp_registry::referrers`, for the image's root and every
//! platform manifest kept, then for each referrer found (nested), to
//! [`MAX_DEPTH`]. A referrer already carried is not carried twice, so a loop
//! of referrers ends. Their manifests and blobs join the image's, so the
//! writer (and sync's copy plan) treat them like the image's own.
//!
//! Only registry sources have referrers: an OCI layout or a docker archive
//! carries none. A pruned index is not what upstream signed, so the
//! referrers of the source index are not carried (its platform manifests'
//! are); `cosign` checks `spec.verify` against the source index's.
//! Fetches manifests and small signature payloads only; writes nothing.

pub mod cosign;

use std::collections::HashSet;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::referrer::{is_signature_tag, ReferrerFacts, SIGNATURE_TYPES};
use atp_bundle::format::{Descriptor, ManifestKind};
use atp_bundle::Digest;
use atp_registry::referrers::{self as upstream, DiscoverOptions, Found};
use atp_registry::{Client, Repository};

pub use crate::resolve::ResolvedReferrer;
use crate::resolve::{Origin, ResolvedImage};
pub use crate::spec::{ReferrerMode, ReferrerOptions};

/// Nesting followed at most: a signature (1) of an SBOM (2) of a signature (3).
pub const MAX_DEPTH: usize = 3;

impl ReferrerOptions {
    /// Whether a referrer of this type (and cosign tag) is carried.
    pub fn wants(&self, artifact_type: &str, tag: Option<&str>) -> bool {
        let signature =
            tag.is_some_and(is_signature_tag) || SIGNATURE_TYPES.contains(&artifact_type);
        let by_mode = match self.mode {
            ReferrerMode::All => true,
            ReferrerMode::Signatures => signature,
            ReferrerMode::None => false,
        };
        by_mode
            && (self.artifact_types.is_empty()
                || self.artifact_types.iter().any(|t| t == artifact_type))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReferrerError {
    #[error("image {image}: referrers of {subject}: {source}")]
    Registry {
        image: String,
        subject: Digest,
        #[source]
        source: atp_registry::Error,
    },
    #[error("image {image}: referrer {digest} of {subject}: {message}\nhint: the source registry's referrer is not a manifest ATP Offline can carry; pass --referrers none to leave referrers out")]
    Invalid {
        image: String,
        digest: Digest,
        subject: Digest,
        message: String,
    },
}

/// Find and attach the referrers of `img` that `opts` wants (see the module
/// doc). Returns what was skipped, each already logged as a warning.
pub async fn attach(
    img: &mut ResolvedImage,
    opts: &ReferrerOptions,
) -> Result<Vec<String>, ReferrerError> {
    let Origin::Registry(client, repo) = img.origin.clone() else {
        return Ok(Vec::new());
    };
    if opts.mode == ReferrerMode::None {
        return Ok(Vec::new());
    }
    let mut skipped = Vec::new();
    let mut level = subjects_in_walk_order(img);
    if img.source_digest.is_some() {
        // The pruned root is ours, not upstream's: nothing refers to it.
        level.retain(|d| *d != img.root.digest);
    }
    let mut carried: HashSet<Digest> = img.manifests.keys().cloned().collect();
    for _depth in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for subject in level {
            let found = discover(&client, &repo, &img.reference, &subject, &mut skipped).await?;
            let mut here = Vec::new();
            for f in found {
                if carried.contains(&f.descriptor.digest) {
                    continue; // already carried (or part of the image): a loop ends here
                }
                // The listing's type decides when it gives one: nothing
                // unwanted is fetched.
                if let Some(t) = f
                    .descriptor
                    .artifact_type
                    .as_deref()
                    .filter(|t| !t.is_empty())
                {
                    if !opts.wants(t, f.tag()) {
                        continue;
                    }
                }
                let r = fetch(&client, &repo, img, &subject, &f).await?;
                if !opts.wants(
                    r.0.descriptor.artifact_type.as_deref().unwrap_or(""),
                    r.0.tag.as_deref(),
                ) {
                    continue;
                }
                carried.insert(r.0.descriptor.digest.clone());
                here.push(r);
            }
            // Deterministic: by artifact type, then digest, under each subject.
            here.sort_by(|a, b| {
                (&a.0.descriptor.artifact_type, &a.0.descriptor.digest)
                    .cmp(&(&b.0.descriptor.artifact_type, &b.0.descriptor.digest))
            });
            for (r, bytes) in here {
                next.push(r.descriptor.digest.clone());
                crate::resolve::walk_referrer(img, r.descriptor.clone(), bytes)
                    .await
                    .map_err(|e| ReferrerError::Invalid {
                        image: img.reference.clone(),
                        digest: r.descriptor.digest.clone(),
                        subject: subject.clone(),
                        message: e.to_string(),
                    })?;
                img.referrers.push(r);
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    if !img.referrers.is_empty() {
        tracing::info!(image = %img.reference, "carrying {} referrer(s)", img.referrers.len());
    }
    Ok(skipped)
}

/// The image's manifests, root first, depth-first in index order.
fn subjects_in_walk_order(img: &ResolvedImage) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut stack = vec![img.root.clone()];
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let Some(bytes) = img.manifests.get(&d.digest) else {
            continue;
        };
        out.push(d.digest.clone());
        if let Ok(Manifest::Index(i)) = Manifest::parse(&d.media_type, bytes, "") {
            stack.extend(i.manifests.into_iter().rev());
        }
    }
    out
}

async fn discover(
    client: &Client,
    repo: &Repository,
    image: &str,
    subject: &Digest,
    skipped: &mut Vec<String>,
) -> Result<Vec<Found>, ReferrerError> {
    // One cache per client, that is per run: the API probed once per
    // registry, each repository's tags listed once.
    let cache = upstream::DiscoveryCache::of(client);
    let d = upstream::discover_cached(client, repo, subject, &DiscoverOptions::default(), &cache)
        .await
        .map_err(|source| ReferrerError::Registry {
            image: image.to_string(),
            subject: subject.clone(),
            source,
        })?;
    skipped.extend(d.skipped.into_iter().map(|s| format!("{image}: {s}")));
    Ok(d.found)
}

/// Fetch a found referrer (digest-checked, its `subject` checked by the
/// registry crate) and describe it.
async fn fetch(
    client: &Client,
    repo: &Repository,
    img: &ResolvedImage,
    subject: &Digest,
    f: &Found,
) -> Result<(ResolvedReferrer, Vec<u8>), ReferrerError> {
    let m = upstream::fetch_referrer(client, repo, subject, f)
        .await
        .map_err(|source| ReferrerError::Registry {
            image: img.reference.clone(),
            subject: subject.clone(),
            source,
        })?;
    let invalid = |message: String| ReferrerError::Invalid {
        image: img.reference.clone(),
        digest: f.descriptor.digest.clone(),
        subject: subject.clone(),
        message,
    };
    if ManifestKind::of(&m.media_type).is_none() {
        return Err(invalid(format!(
            "media type {:?} is not a manifest",
            m.media_type
        )));
    }
    let facts = ReferrerFacts::of(&m.bytes).ok_or_else(|| invalid("not a JSON manifest".into()))?;
    let mut descriptor = Descriptor::of_bytes(&m.media_type, &m.bytes);
    descriptor.artifact_type = f
        .descriptor
        .artifact_type
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| facts.artifact_type().map(str::to_string));
    Ok((
        ResolvedReferrer {
            descriptor,
            subject: subject.clone(),
            tag: f.tag().map(str::to_string),
        },
        m.bytes.to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_artifact_type_filter() {
        let sig_tag = format!("sha256-{}.sig", "a".repeat(64));
        let att_tag = format!("sha256-{}.att", "a".repeat(64));
        let all = ReferrerOptions::default();
        assert!(all.wants("application/spdx+json", None));
        let sigs = ReferrerOptions {
            mode: ReferrerMode::Signatures,
            artifact_types: vec![],
        };
        assert!(sigs.wants("application/vnd.oci.image.config.v1+json", Some(&sig_tag)));
        assert!(!sigs.wants("application/vnd.oci.image.config.v1+json", Some(&att_tag)));
        assert!(sigs.wants("application/vnd.dev.sigstore.bundle.v0.3+json", None));
        assert!(!sigs.wants("application/spdx+json", None));
        let none = ReferrerOptions {
            mode: ReferrerMode::None,
            artifact_types: vec![],
        };
        assert!(!none.wants("application/spdx+json", None));
        let only_spdx = ReferrerOptions {
            mode: ReferrerMode::All,
            artifact_types: vec!["application/spdx+json".into()],
        };
        assert!(only_spdx.wants("application/spdx+json", None));
        assert!(!only_spdx.wants("application/vnd.in-toto+json", None));
    }
}
