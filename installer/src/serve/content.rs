//! What is served, by repository: built once from a prepared (verified and
//! mapped) bundle, then read-only for the life of the server.
//!
//! Repository names are the install plan's targets, so a served bundle
//! answers under exactly the names an install would push to. Manifests are
//! the plan's bytes, which were hashed again when the plan read them; blobs
//! are only positions in the bundle, and a blob is listed for a repository
//! only if one of that repository's images references it.
//!
//! Carried referrers are served like images (by digest; a cosign tag as a
//! tag), and the referrers API lists each subject's OCI referrers with the
//! descriptors an install would put in the fallback tag index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use atp_bundle::media::BundleInput;
use atp_bundle::verify::BlobLocation;
use atp_bundle::Digest;
use atp_registry::copy::ImageCopy;
use bytes::Bytes;

use crate::prepare::Prepared;

/// One manifest or index, exactly as verified.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Bytes,
}

/// One repository's tags, manifests and blobs.
#[derive(Debug, Default)]
pub struct Repo {
    pub tags: BTreeMap<String, Digest>,
    pub manifests: HashMap<Digest, Manifest>,
    pub blobs: BTreeSet<Digest>,
    /// Per subject: its OCI referrers, as the referrers API lists them.
    pub referrers: HashMap<Digest, Vec<atp_bundle::format::Descriptor>>,
}

/// Everything served.
pub struct Content {
    pub repos: BTreeMap<String, Repo>,
    /// Where each blob sits in the bundle (from the verifier).
    pub locations: HashMap<Digest, BlobLocation>,
    pub input: Arc<BundleInput>,
    /// How many images the bundle maps to these repositories.
    pub images: usize,
    /// How many file sets (OCI artifacts).
    pub file_sets: usize,
}

impl Content {
    /// Index a prepared bundle's copy plan, and `more` copies (the file
    /// sets), by target repository.
    pub fn new(prepared: Prepared, more: Vec<ImageCopy>) -> Content {
        let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
        for (target, subject, listed) in prepared.fallback_additions() {
            let repo = repos.entry(target.name().to_owned()).or_default();
            repo.referrers
                .entry(subject.clone())
                .or_default()
                .extend(listed);
        }
        for img in prepared.plan.images.iter().chain(&more) {
            let repo = repos.entry(img.target.name().to_owned()).or_default();
            for (desc, bytes) in &img.manifests {
                repo.manifests
                    .entry(desc.digest.clone())
                    .or_insert_with(|| Manifest {
                        media_type: desc.media_type.clone(),
                        digest: desc.digest.clone(),
                        bytes: Bytes::from(bytes.clone()),
                    });
            }
            repo.blobs.extend(img.blobs.iter().map(|(d, _)| d.clone()));
            if let Some(tag) = &img.tag {
                repo.tags.insert(tag.clone(), img.root.digest.clone());
            }
        }
        Content {
            repos,
            locations: prepared.bundle.locations,
            input: prepared.bundle.input,
            images: prepared.images.len(),
            file_sets: more.len(),
        }
    }

    /// A blob of `repo`: its location, if the repository references it.
    pub fn blob(&self, repo: &Repo, digest: &Digest) -> Option<&BlobLocation> {
        if repo.blobs.contains(digest) {
            self.locations.get(digest)
        } else {
            None
        }
    }
}

/// A page of a sorted list: entries after `last`, at most `n`.
pub fn page<'a>(
    items: impl Iterator<Item = &'a String>,
    n: Option<usize>,
    last: Option<&str>,
) -> Vec<String> {
    items
        .filter(|i| last.is_none_or(|l| i.as_str() > l))
        .take(n.unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_after_last() {
        let v: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(page(v.iter(), Some(2), None), ["a", "b"]);
        assert_eq!(page(v.iter(), Some(2), Some("b")), ["c", "d"]);
        assert_eq!(page(v.iter(), None, Some("c")), ["d"]);
        assert!(page(v.iter(), Some(0), None).is_empty());
    }
}
