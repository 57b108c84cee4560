//! Decide: what executing a [`Plan`] would do, from HEAD requests alone.
//!
//! The same rules as [`super::execute()`] applies at write time: a blob the
//! repository has is skipped; one that another repository of this copy has
//! (or gets earlier in it) is mounted from the first such repository; the
//! rest are uploaded. A manifest or tag already pointing at the digest (or
//! written earlier in this copy) is skipped; the rest are pushed.
//!
//! Sends GET/HEAD only: never a write.

use std::collections::{HashMap, HashSet};

use atp_bundle::Digest;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::{Action, BlobStep, CopyError, CopyStats, ManifestStep, Plan};
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

/// HEAD every blob and manifest of `plan` in its target and decide.
pub async fn decide(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
) -> Result<Decisions, CopyError> {
    let needs = plan.blob_needs();
    // What the target already has: every (repository, blob) pair, HEADed.
    let pairs: Vec<(Repository, Digest, u64)> = needs
        .iter()
        .flat_map(|n| {
            n.repositories
                .iter()
                .map(|r| (r.clone(), n.digest.clone(), n.size))
        })
        .collect();
    let present: HashSet<(Repository, Digest)> = futures_util::stream::iter(pairs)
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

    let mut out = Decisions::default();
    for need in &needs {
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

    // Manifests and tags already in place.
    let mut checks: Vec<(Repository, String)> = Vec::new();
    for img in &plan.images {
        for (d, _) in &img.manifests {
            checks.push((img.target.clone(), d.digest.to_string()));
        }
        if let Some(tag) = &img.tag {
            checks.push((img.target.clone(), tag.clone()));
        }
    }
    let unique: HashSet<(Repository, String)> = checks.into_iter().collect();
    let existing: HashMap<(Repository, String), Digest> = futures_util::stream::iter(unique)
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
    Ok(out)
}
