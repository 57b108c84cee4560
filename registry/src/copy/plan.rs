//! Plan: what a copy moves. One [`ImageCopy`] per image (manifests children
//! first, exact bytes; configs and layers), and a [`Plan`] that groups the
//! blobs of all images by digest, each with the repositories needing it.
//!
//! Pure: reads manifests through the caller's closure, sends nothing.

use std::collections::{HashMap, HashSet};

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{Descriptor, ManifestKind};
use atp_bundle::Digest;

use super::CopyError;
use crate::reference::Repository;

/// One image to copy.
#[derive(Debug, Clone)]
pub struct ImageCopy {
    /// The name the image is known by (a normalized reference).
    pub source: String,
    pub target: Repository,
    pub tag: Option<String>,
    pub root: Descriptor,
    /// Manifests and indexes, children before parents, root last.
    pub manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Configs and layers, each once, in walk order: digest and size.
    pub blobs: Vec<(Digest, u64)>,
}

impl ImageCopy {
    /// `TARGET/repo:tag`, or `TARGET/repo@digest` when untagged.
    pub fn target_reference(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.target),
            None => format!("{}@{}", self.target, self.root.digest),
        }
    }
}

/// An image's manifests and blobs, as [`walk_image`] finds them.
#[derive(Debug, Clone, Default)]
pub struct Walked {
    /// Children before parents, root last.
    pub manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Configs and layers, each once, in walk order.
    pub blobs: Vec<(Digest, u64)>,
    /// Blobs in `omitted` that the image references (a delta bundle's).
    pub relied_on: Vec<Digest>,
}

/// Walk an image from its root: every manifest and index (read through
/// `read`, parsed, children first), every config and layer. Blobs listed in
/// `omitted` are reported in `relied_on` instead of `blobs`.
pub fn walk_image(
    image: &str,
    root: &Descriptor,
    read: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, String>,
    omitted: &HashSet<Digest>,
) -> Result<Walked, CopyError> {
    let mut out = Walked::default();
    let mut seen = HashSet::new();
    let mut blob_seen = HashSet::new();
    let fail = |d: &Descriptor, reason: String| CopyError::Manifest {
        image: image.to_string(),
        digest: d.digest.clone(),
        reason,
    };
    // Post-order walk: a node is emitted after its children. The bytes read
    // on the way down are kept for the way up.
    let mut stack: Vec<(Descriptor, Option<Vec<u8>>)> = vec![(root.clone(), None)];
    while let Some((d, bytes)) = stack.pop() {
        if let Some(bytes) = bytes {
            out.manifests.push((d, bytes));
            continue;
        }
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let bytes = read(&d).map_err(|e| fail(&d, e))?;
        let parsed = Manifest::parse(&d.media_type, &bytes, &d.digest.to_string())
            .map_err(|e| fail(&d, e.to_string()))?;
        let children: Vec<Descriptor> = parsed.children().into_iter().cloned().collect();
        stack.push((d, Some(bytes)));
        for c in children {
            if ManifestKind::of(&c.media_type).is_some() {
                stack.push((c, None));
            } else if omitted.contains(&c.digest) {
                if !out.relied_on.contains(&c.digest) {
                    out.relied_on.push(c.digest);
                }
            } else if blob_seen.insert(c.digest.clone()) {
                out.blobs.push((c.digest, c.size));
            }
        }
    }
    Ok(out)
}

/// One blob and every repository that needs it, in image order.
#[derive(Debug, Clone)]
pub struct BlobNeed {
    pub digest: Digest,
    pub size: u64,
    pub repositories: Vec<Repository>,
}

/// Every image of a copy, and its blobs grouped by digest.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub images: Vec<ImageCopy>,
}

impl Plan {
    pub fn new(images: Vec<ImageCopy>) -> Self {
        Self { images }
    }

    /// Each distinct blob once, in the order images first need it, with
    /// the repositories that need it in image order.
    pub fn blob_needs(&self) -> Vec<BlobNeed> {
        let mut order: Vec<BlobNeed> = Vec::new();
        let mut at: HashMap<&Digest, usize> = HashMap::new();
        for img in &self.images {
            for (d, size) in &img.blobs {
                let i = *at.entry(d).or_insert_with(|| {
                    order.push(BlobNeed {
                        digest: d.clone(),
                        size: *size,
                        repositories: Vec::new(),
                    });
                    order.len() - 1
                });
                if !order[i].repositories.contains(&img.target) {
                    order[i].repositories.push(img.target.clone());
                }
            }
        }
        order
    }

    /// Bytes and count of blob copies (a blob needed in two repositories
    /// counts twice), for progress totals.
    pub fn totals(&self) -> (u64, u64) {
        let needs = self.blob_needs();
        let bytes = needs
            .iter()
            .map(|n| n.size.saturating_mul(n.repositories.len() as u64))
            .fold(0u64, u64::saturating_add);
        (bytes, needs.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_bundle::format::media;

    fn desc(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor::of_bytes(media_type, bytes)
    }

    fn manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": Digest::of(l).to_string(), "size": l.len()})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(config).to_string(), "size": config.len()},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn walks_children_first_and_lists_each_blob_once() {
        let m1 = manifest(b"c1", &[b"l1", b"shared"]);
        let m2 = manifest(b"c2", &[b"shared"]);
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "manifests": [
                {"mediaType": media::OCI_MANIFEST, "digest": Digest::of(&m1).to_string(), "size": m1.len()},
                {"mediaType": media::OCI_MANIFEST, "digest": Digest::of(&m2).to_string(), "size": m2.len()},
            ]
        }))
        .unwrap();
        let docs: HashMap<Digest, Vec<u8>> = [&m1, &m2, &index]
            .into_iter()
            .map(|b| (Digest::of(b), b.clone()))
            .collect();
        let root = desc(media::OCI_INDEX, &index);
        let omitted: HashSet<Digest> = [Digest::of(b"c2")].into();
        let walked =
            walk_image("x", &root, &mut |d| Ok(docs[&d.digest].clone()), &omitted).unwrap();
        let order: Vec<Digest> = walked
            .manifests
            .iter()
            .map(|(d, _)| d.digest.clone())
            .collect();
        assert_eq!(order.last(), Some(&Digest::of(&index)));
        assert_eq!(order.len(), 3);
        let blobs: Vec<Digest> = walked.blobs.iter().map(|b| b.0.clone()).collect();
        assert_eq!(blobs.len(), 3, "c1, l1 and shared, once each: {blobs:?}");
        assert!(!blobs.contains(&Digest::of(b"c2")));
        assert_eq!(walked.relied_on, vec![Digest::of(b"c2")]);
    }

    #[test]
    fn groups_blobs_by_digest_in_image_order() {
        let img = |repo: &str, blobs: &[&[u8]]| ImageCopy {
            source: repo.into(),
            target: format!("127.0.0.1:5000/{repo}").parse().unwrap(),
            tag: None,
            root: desc(media::OCI_MANIFEST, b"m"),
            manifests: vec![],
            blobs: blobs
                .iter()
                .map(|b| (Digest::of(b), b.len() as u64))
                .collect(),
        };
        let plan = Plan::new(vec![img("a", &[b"x", b"y"]), img("b", &[b"y", b"zz"])]);
        let needs = plan.blob_needs();
        let got: Vec<(Digest, usize)> = needs
            .iter()
            .map(|n| (n.digest.clone(), n.repositories.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Digest::of(b"x"), 1),
                (Digest::of(b"y"), 2),
                (Digest::of(b"zz"), 1)
            ]
        );
        assert_eq!(plan.totals(), (1 + 2 + 2, 3));
    }
}
