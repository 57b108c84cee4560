//! Execute: move a [`Plan`] into its target registry. Blobs first (up to
//! `concurrency` at once, each digest once, to its first repository by
//! upload and to the others by mount), then every image's manifests as exact
//! bytes, children before parents, then its tag.
//!
//! Each write is decided at the moment it happens (HEAD, then mount, then
//! upload; HEAD, then push) and reported as what happened, so a re-run of a
//! finished copy reports only skips and writes nothing.

use std::sync::Arc;
use std::time::Instant;

use atp_bundle::format::Descriptor;
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use futures_util::{StreamExt, TryStreamExt};

use super::plan::{BlobNeed, ImageCopy};
use super::progress::Counted;
use super::{Action, BlobStep, CopyError, CopyStats, ManifestStep, Plan};
use crate::client::Client;
use crate::push::{BlobSource, PushOutcome};

/// Where [`execute()`] reads each blob's bytes.
pub trait BlobSources: Sync {
    /// A re-openable source of the blob, or `None` when there is none.
    fn blob_source(&self, digest: &Digest, size: u64) -> Option<Box<dyn BlobSource>>;
}

/// What [`execute()`] did.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub blobs: Vec<BlobStep>,
    pub manifests: Vec<ManifestStep>,
    pub stats: CopyStats,
    /// Per image, in plan order: seconds from the start of the copy until
    /// its manifests and tag were in place.
    pub seconds: Vec<f64>,
}

/// Copy one blob into every repository of `need`: the first gets it by
/// upload (unless it is there), the others by mount from the first.
pub async fn copy_blob(
    client: &Client,
    need: &BlobNeed,
    source: &dyn BlobSource,
    progress: Arc<dyn Progress>,
) -> Result<Vec<BlobStep>, CopyError> {
    let repos = &need.repositories;
    let mut steps = Vec::with_capacity(repos.len());
    for (i, repo) in repos.iter().enumerate() {
        let mount_from = if i == 0 { &[][..] } else { &repos[..1] };
        let counted = Counted::new(source, progress.clone());
        let outcome = client
            .push_blob(repo, &need.digest, need.size, &counted, mount_from)
            .await
            .map_err(|e| CopyError::registry(format!("pushing blob {}", need.digest), repo, e))?;
        counted.finish(need.size);
        let (action, from) = match outcome {
            PushOutcome::Skipped => (Action::Skip, None),
            PushOutcome::Mounted { from } => (Action::Mount, Some(from.to_string())),
            PushOutcome::Uploaded => (Action::Upload, None),
        };
        steps.push(BlobStep {
            digest: need.digest.clone(),
            size: need.size,
            repository: repo.to_string(),
            action,
            from,
        });
    }
    Ok(steps)
}

/// Copy every image of `plan` into its target, reading blobs from `sources`.
/// `phase` names the progress phase.
pub async fn execute(
    client: &Client,
    plan: &Plan,
    sources: &dyn BlobSources,
    concurrency: usize,
    phase: &str,
    progress: Arc<dyn Progress>,
) -> Result<Executed, CopyError> {
    let started = Instant::now();
    let needs = plan.blob_needs();
    let (bytes, count) = plan.totals();
    progress.phase(phase, bytes, count);
    let mut blob_steps: Vec<(usize, Vec<BlobStep>)> = futures_util::stream::iter(needs)
        .enumerate()
        .map(|(i, need)| {
            let progress = progress.clone();
            let source = sources.blob_source(&need.digest, need.size);
            async move {
                let source = source.ok_or_else(|| CopyError::NoSource {
                    digest: need.digest.clone(),
                })?;
                let steps = copy_blob(client, &need, &*source, progress.clone()).await?;
                progress.item_done(&need.digest.to_string());
                Ok::<_, CopyError>((i, steps))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish_phase();
    // Report in plan order, whatever order the transfers finished in.
    blob_steps.sort_by_key(|(i, _)| *i);

    // Manifests last: exact bytes, by digest, children first, then the tag.
    let per_image: Vec<(Vec<ManifestStep>, f64)> = futures_util::stream::iter(&plan.images)
        .map(|img| async move {
            let mut steps = Vec::new();
            for (d, bytes) in &img.manifests {
                steps.push(push_manifest(client, img, &d.digest.to_string(), d, bytes).await?);
            }
            if let Some(tag) = &img.tag {
                let (root, bytes) = img.manifests.last().ok_or_else(|| CopyError::Manifest {
                    image: img.source.clone(),
                    digest: img.root.digest.clone(),
                    reason: "the plan holds no manifest for the root".into(),
                })?;
                steps.push(push_manifest(client, img, tag, root, bytes).await?);
            }
            Ok::<_, CopyError>((steps, started.elapsed().as_secs_f64()))
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;

    let mut out = Executed {
        blobs: blob_steps.into_iter().flat_map(|(_, s)| s).collect(),
        ..Default::default()
    };
    for (steps, secs) in per_image {
        out.manifests.extend(steps);
        out.seconds.push(secs);
    }
    out.stats = CopyStats::of(&out.blobs, &out.manifests);
    Ok(out)
}

/// Push a manifest under `reference` unless it already points at this
/// digest, and check the digest the registry filed it under.
async fn push_manifest(
    client: &Client,
    img: &ImageCopy,
    reference: &str,
    d: &Descriptor,
    bytes: &[u8],
) -> Result<ManifestStep, CopyError> {
    let repo = &img.target;
    let err = |e| CopyError::registry(format!("pushing manifest {reference}"), repo, e);
    let step = |action| ManifestStep {
        repository: repo.to_string(),
        reference: reference.to_string(),
        digest: d.digest.clone(),
        action,
    };
    if client.manifest_exists(repo, reference).await.map_err(err)? == Some(d.digest.clone()) {
        return Ok(step(Action::Skip));
    }
    let got = client
        .push_manifest(repo, reference, bytes, &d.media_type)
        .await
        .map_err(err)?;
    if got != d.digest {
        return Err(CopyError::StoredDigest {
            target: repo.to_string(),
            reference: reference.to_string(),
            expected: d.digest.clone(),
            found: got,
        });
    }
    Ok(step(Action::Push))
}
