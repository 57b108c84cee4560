//! Decide: what executing a [`Plan`] would do, from HEAD requests alone.
//!
//! The same rules as [`super::execute()`] applies at write time: an image
//! whose root reference (tag, else root digest) already points at its root
//! is in place, all of it, from that one answer; a blob the repository has
//! is skipped; one that another repository of this copy has (or gets earlier
//! in it) is mounted from the first such repository; the rest are uploaded.
//! A manifest or tag already pointing at the digest (or written earlier in
//! this copy) is skipped; the rest are pushed, without asking first when the
//! manifest references something this copy writes.
//!
//! Sends GET/HEAD only: never a write.

use std::collections::{HashMap, HashSet};

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::Descriptor;
use atp_bundle::Digest;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::{Action, BlobStep, CopyError, CopyStats, ImageCopy, ManifestStep, Plan};
use crate::client::Client;
use crate::reference::Repository;

/// Every decision of a plan, in execution order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Decisions {
    pub blobs: Vec<BlobStep>,
    pub manifests: Vec<ManifestStep>,
}

impl Decisions {
    pub fn stats(&self) -> CopyStats {
        CopyStats::of(&self.blobs, &self.manifests)
    }

    /// The blob steps of one repository.
    pub fn blobs_of<'a>(&'a self, repo: &'a Repository) -> impl Iterator<Item = &'a BlobStep> {
        let name = repo.to_string();
        self.blobs.iter().filter(move |b| b.repository == name)
    }
}

/// What the target answered for each image's root reference (its tag, or
/// its root digest when untagged): one HEAD per distinct reference.
pub(super) type RootAnswers = HashMap<(Repository, String), Option<Digest>>;

/// The one reference that decides a whole image: its tag, else its root
/// digest.
pub(super) fn root_reference(img: &ImageCopy) -> String {
    img.tag
        .clone()
        .unwrap_or_else(|| img.root.digest.to_string())
}

/// HEAD every image's root reference, each distinct one once, except those
/// `known` already answers.
pub(super) async fn head_roots(
    client: &Client,
    plan: &Plan,
    known: Option<&RootAnswers>,
    concurrency: usize,
) -> Result<RootAnswers, CopyError> {
    let refs: HashSet<(Repository, String)> = plan
        .images
        .iter()
        .map(|img| (img.target.clone(), root_reference(img)))
        .filter(|k| !known.is_some_and(|m| m.contains_key(k)))
        .collect();
    futures_util::stream::iter(refs)
        .map(|(repo, reference)| async move {
            let found = client
                .manifest_exists(&repo, &reference)
                .await
                .map_err(|e| {
                    CopyError::registry(format!("checking manifest {reference}"), &repo, e)
                })?;
            Ok::<_, CopyError>(((repo, reference), found))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// Per image: is it wholly in place? True when its root reference already
/// points at its root digest. A registry stores a manifest only once every
/// blob and child it references is in the repository (distribution checks
/// this on every manifest PUT, and this engine pushes the tag last), so that
/// one answer vouches for the image's every manifest and blob.
pub(super) fn complete(plan: &Plan, roots: &RootAnswers) -> Vec<bool> {
    plan.images
        .iter()
        .map(|img| {
            let key = (img.target.clone(), root_reference(img));
            matches!(roots.get(&key), Some(Some(d)) if *d == img.root.digest)
        })
        .collect()
}

/// The `(repository, blob)` pairs that complete images vouch for.
pub(super) fn vouched_blobs(plan: &Plan, complete: &[bool]) -> HashSet<(Repository, Digest)> {
    plan.images
        .iter()
        .zip(complete)
        .filter(|(_, done)| **done)
        .flat_map(|(img, _)| {
            img.blobs
                .iter()
                .map(|(d, _)| (img.target.clone(), d.clone()))
        })
        .collect()
}

/// The digests a manifest references (blobs and child manifests), or none
/// when its bytes do not parse (then nothing is assumed about it).
pub(super) fn references(d: &Descriptor, bytes: &[u8]) -> Vec<Digest> {
    Manifest::parse(&d.media_type, bytes, &d.digest.to_string())
        .map(|m| m.children().into_iter().map(|c| c.digest.clone()).collect())
        .unwrap_or_default()
}

/// HEAD what the answers so far leave open, and decide.
///
/// One HEAD of each image's root reference first: an image already in place
/// is decided by it alone (every blob and reference skipped). Then every
/// remaining `(repository, blob)` pair. Last, each remaining manifest,
/// except one that references a blob or child this copy writes: the
/// registry cannot hold it yet, so it is pushed without asking.
pub async fn decide(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
) -> Result<Decisions, CopyError> {
    let roots = head_roots(client, plan, None, concurrency).await?;
    let done = complete(plan, &roots);
    let vouched = vouched_blobs(plan, &done);
    let needs = plan.blob_needs();
    let pairs: Vec<(Repository, Digest, u64)> = needs
        .iter()
        .flat_map(|n| {
            n.repositories
                .iter()
                .map(|r| (r.clone(), n.digest.clone(), n.size))
        })
        .filter(|(r, d, _)| !vouched.contains(&(r.clone(), d.clone())))
        .collect();
    let mut present: HashSet<(Repository, Digest)> = futures_util::stream::iter(pairs)
        .map(|(repo, d, size)| async move {
            let found = client
                .blob_exists(&repo, &d)
                .await
                .map_err(|e| CopyError::registry(format!("checking blob {d}"), &repo, e))?;
            Ok::<_, CopyError>(matches!(found, Some(n) if n == size || n == 0).then_some((repo, d)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    present.extend(vouched);

    // What the blob decisions say this copy writes, per repository.
    let written: HashSet<(String, Digest)> = decide_from(plan, &present, HashMap::new())
        .blobs
        .into_iter()
        .filter(|b| matches!(b.action, Action::Upload | Action::Mount))
        .map(|b| (b.repository, b.digest))
        .collect();
    let mut existing: HashMap<(Repository, String), Digest> = HashMap::new();
    let mut checks: HashSet<(Repository, String)> = HashSet::new();
    for (img, done) in plan.images.iter().zip(&done) {
        let repo = img.target.to_string();
        if *done {
            for (d, _) in &img.manifests {
                existing.insert((img.target.clone(), d.digest.to_string()), d.digest.clone());
            }
        }
        let mut fresh: HashSet<&Digest> = HashSet::new();
        for (d, bytes) in &img.manifests {
            let is_fresh = references(d, bytes)
                .iter()
                .any(|c| fresh.contains(c) || written.contains(&(repo.clone(), c.clone())));
            if is_fresh {
                fresh.insert(&d.digest);
            } else if !*done {
                checks.insert((img.target.clone(), d.digest.to_string()));
            }
        }
    }
    for ((repo, reference), found) in roots {
        if let Some(d) = found {
            existing.insert((repo.clone(), reference), d);
        }
    }
    checks.retain(|k| !existing.contains_key(k));
    let headed: Vec<((Repository, String), Digest)> = futures_util::stream::iter(checks)
        .map(|(repo, reference)| async move {
            let found = client
                .manifest_exists(&repo, &reference)
                .await
                .map_err(|e| {
                    CopyError::registry(format!("checking manifest {reference}"), &repo, e)
                })?;
            Ok::<_, CopyError>(found.map(|d| ((repo, reference), d)))
        })
        .buffer_unordered(concurrency.max(1))
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    existing.extend(headed);
    Ok(decide_from(plan, &present, existing))
}

/// The decisions, given which `(repository, blob)` pairs the target has and
/// which manifest references already point where. Pure.
pub fn decide_from(
    plan: &Plan,
    present: &HashSet<(Repository, Digest)>,
    existing: HashMap<(Repository, String), Digest>,
) -> Decisions {
    let mut out = Decisions::default();
    for need in &plan.blob_needs() {
        let mut holders: Vec<&Repository> = need
            .repositories
            .iter()
            .filter(|r| present.contains(&((*r).clone(), need.digest.clone())))
            .collect();
        for repo in &need.repositories {
            let (action, from) = if holders.contains(&repo) {
                (Action::Skip, None)
            } else {
                let step = match holders.first() {
                    Some(from) => (Action::Mount, Some(from.to_string())),
                    None => (Action::Upload, None),
                };
                holders.push(repo);
                step
            };
            out.blobs.push(BlobStep {
                digest: need.digest.clone(),
                size: need.size,
                repository: repo.to_string(),
                action,
                from,
            });
        }
    }

    let mut placed = existing;
    for img in &plan.images {
        let refs = img
            .manifests
            .iter()
            .map(|(d, _)| (d.digest.to_string(), &d.digest))
            .chain(img.tag.iter().map(|t| (t.clone(), &img.root.digest)));
        for (reference, digest) in refs {
            let key = (img.target.clone(), reference.clone());
            let action = if placed.get(&key) == Some(digest) {
                Action::Skip
            } else {
                placed.insert(key, digest.clone());
                Action::Push
            };
            out.manifests.push(ManifestStep {
                repository: img.target.to_string(),
                reference,
                digest: digest.clone(),
                action,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::ImageCopy;
    use atp_bundle::format::Descriptor;

    fn image(repo: &str, tag: &str, root: &[u8], blobs: &[&[u8]]) -> ImageCopy {
        let root = Descriptor::of_bytes("application/vnd.oci.image.manifest.v1+json", root);
        ImageCopy {
            source: format!("docker.io/{repo}:{tag}"),
            target: repo.parse().unwrap(),
            tag: Some(tag.into()),
            manifests: vec![(root.clone(), Vec::new())],
            root,
            blobs: blobs
                .iter()
                .map(|b| (Digest::of(b), b.len() as u64))
                .collect(),
        }
    }

    #[test]
    fn skip_what_is_there_mount_what_this_copy_placed_upload_the_rest() {
        let plan = Plan::new(vec![
            image("t:1/a", "1", b"ra", &[b"x", b"y"]),
            image("t:1/b", "1", b"rb", &[b"y", b"z"]),
            image("t:1/a", "2", b"ra", &[b"x"]),
        ]);
        let (ta, tb) = (plan.images[0].target.clone(), plan.images[1].target.clone());
        let present = HashSet::from([(tb.clone(), Digest::of(b"z"))]);
        let existing = HashMap::from([((ta.clone(), "1".to_string()), Digest::of(b"ra"))]);
        let d = decide_from(&plan, &present, existing);
        let blobs: Vec<(String, Digest, Action, Option<String>)> = d
            .blobs
            .iter()
            .map(|b| {
                (
                    b.repository.clone(),
                    b.digest.clone(),
                    b.action,
                    b.from.clone(),
                )
            })
            .collect();
        let (a, b) = (ta.to_string(), tb.to_string());
        assert_eq!(
            blobs,
            [
                (a.clone(), Digest::of(b"x"), Action::Upload, None),
                (a.clone(), Digest::of(b"y"), Action::Upload, None),
                (b.clone(), Digest::of(b"y"), Action::Mount, Some(a.clone())),
                (b.clone(), Digest::of(b"z"), Action::Skip, None),
            ]
        );
        let manifests: Vec<(String, String, Action)> = d
            .manifests
            .iter()
            .map(|m| (m.repository.clone(), m.reference.clone(), m.action))
            .collect();
        let ra = Digest::of(b"ra").to_string();
        let rb = Digest::of(b"rb").to_string();
        assert_eq!(
            manifests,
            [
                // Image a's tag 1 is already in place; its manifest is not.
                (a.clone(), ra.clone(), Action::Push),
                (a.clone(), "1".into(), Action::Skip),
                (b.clone(), rb, Action::Push),
                (b.clone(), "1".into(), Action::Push),
                // The same manifest under a second tag: pushed once, tagged again.
                (a.clone(), ra, Action::Skip),
                (a, "2".into(), Action::Push),
            ]
        );
        let stats = d.stats();
        assert_eq!((stats.uploaded, stats.mounted, stats.skipped), (2, 1, 1));
        assert_eq!(stats.bytes_uploaded, 2);
    }

    #[test]
    fn an_image_whose_tag_points_at_its_root_is_in_place_with_all_its_blobs() {
        let plan = Plan::new(vec![
            image("t:1/a", "1", b"ra", &[b"x", b"y"]),
            image("t:1/b", "1", b"rb", &[b"y", b"z"]),
            image("t:1/c", "1", b"rc", &[b"w"]),
        ]);
        let [a, b, c] = [0, 1, 2].map(|i| plan.images[i].target.clone());
        let roots: RootAnswers = HashMap::from([
            ((a.clone(), "1".to_string()), Some(Digest::of(b"ra"))),
            // The tag points elsewhere: not in place.
            ((b.clone(), "1".to_string()), Some(Digest::of(b"other"))),
            ((c.clone(), "1".to_string()), None),
        ]);
        let done = complete(&plan, &roots);
        assert_eq!(done, [true, false, false]);
        let vouched = vouched_blobs(&plan, &done);
        assert_eq!(
            vouched,
            HashSet::from([(a.clone(), Digest::of(b"x")), (a, Digest::of(b"y"))])
        );
        // b's copy of y is not vouched for: only a's image is in place.
        assert!(!vouched.contains(&(b, Digest::of(b"y"))));
    }
}
