//! Execute: move a [`Plan`] into its target registry. Blobs first (up to
//! `concurrency` at once, each digest once, to its first repository by
//! upload and to the others by mount), then every image's manifests as exact
//! bytes, children before parents, then its tag.
//!
//! One HEAD of each image's root reference (its tag, else its root digest)
//! comes first: an image already in place is skipped whole on that answer
//! (no blob or manifest request; see [`super::decide()`] for why the answer
//! vouches for the rest). Every other write is decided at the moment it
//! happens (HEAD, then mount, then upload; HEAD, then push) and reported as
//! what happened, so a re-run of a finished copy reports only skips and
//! writes nothing. A manifest that references a blob or child this copy just
//! wrote cannot be in the registry yet: it is pushed without a HEAD, and a
//! root with a tag is pushed by its tag alone (which files it under its
//! digest too), since the first HEAD already said the tag is not in place.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atp_bundle::format::Descriptor;
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use futures_util::{StreamExt, TryStreamExt};

use super::decide::{complete, head_roots, references, vouched_blobs, RootAnswers};
use super::plan::{BlobNeed, ImageCopy};
use super::progress::Counted;
use super::{Action, BlobStep, CopyError, CopyStats, ManifestStep, Plan};
use crate::client::Client;
use crate::push::{BlobSource, PushOutcome};
use crate::reference::Repository;

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
    copy_blob_to(client, need, source, progress, &[]).await
}

/// [`copy_blob`], knowing that the repositories in `present` already hold
/// the blob: they are skipped without a request, and the first of them is
/// where the others mount it from.
async fn copy_blob_to(
    client: &Client,
    need: &BlobNeed,
    source: &dyn BlobSource,
    progress: Arc<dyn Progress>,
    present: &[Repository],
) -> Result<Vec<BlobStep>, CopyError> {
    let mut holder: Option<Repository> = present.first().cloned();
    let mut steps = Vec::with_capacity(need.repositories.len());
    for repo in &need.repositories {
        let step = |action, from: Option<String>| BlobStep {
            digest: need.digest.clone(),
            size: need.size,
            repository: repo.to_string(),
            action,
            from,
        };
        if present.contains(repo) {
            progress.advance(need.size);
            steps.push(step(Action::Skip, None));
            continue;
        }
        let mount_from: Vec<Repository> = holder.iter().cloned().collect();
        let counted = Counted::new(source, progress.clone());
        let outcome = client
            .push_blob(repo, &need.digest, need.size, &counted, &mount_from)
            .await
            .map_err(|e| CopyError::registry(format!("pushing blob {}", need.digest), repo, e))?;
        counted.finish(need.size);
        holder.get_or_insert_with(|| repo.clone());
        steps.push(match outcome {
            PushOutcome::Skipped => step(Action::Skip, None),
            PushOutcome::Mounted { from } => step(Action::Mount, Some(from.to_string())),
            PushOutcome::Uploaded => step(Action::Upload, None),
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
    let roots = check_roots(client, plan, concurrency).await?;
    execute_checked(client, plan, roots, sources, concurrency, phase, progress).await
}

/// What the target answered for each image's root reference (its tag, else
/// its root digest): the one read-only question [`execute()`] asks first,
/// asked on its own so a caller can time it, or ask it early.
#[derive(Debug, Clone, Default)]
pub struct RootChecks {
    answers: RootAnswers,
}

impl RootChecks {
    /// How many root references were asked about.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

/// One HEAD of each distinct root reference of `plan`. Sends nothing else.
pub async fn check_roots(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
) -> Result<RootChecks, CopyError> {
    let answers = head_roots(client, plan, None, concurrency).await?;
    Ok(RootChecks { answers })
}

/// [`execute()`] with the root references already asked ([`check_roots`]):
/// a root reference of `plan` that `roots` does not answer is asked now, and
/// an answer is used only as what the registry said that reference points
/// at (an image is in place only when it points at the plan's own root).
pub async fn execute_checked(
    client: &Client,
    plan: &Plan,
    roots: RootChecks,
    sources: &dyn BlobSources,
    concurrency: usize,
    phase: &str,
    progress: Arc<dyn Progress>,
) -> Result<Executed, CopyError> {
    let started = Instant::now();
    // One HEAD per image decides the images already in place, whole.
    let mut roots = roots.answers;
    let missing = head_roots(client, plan, Some(&roots), concurrency).await?;
    roots.extend(missing);
    let done = complete(plan, &roots);
    let vouched = vouched_blobs(plan, &done);
    let needs = plan.blob_needs();
    let (bytes, count) = plan.totals();
    progress.phase(phase, bytes, count);
    let mut blob_steps: Vec<(usize, Vec<BlobStep>)> = futures_util::stream::iter(needs)
        .enumerate()
        .map(|(i, need)| {
            let progress = progress.clone();
            let present: Vec<Repository> = need
                .repositories
                .iter()
                .filter(|r| vouched.contains(&((*r).clone(), need.digest.clone())))
                .cloned()
                .collect();
            let source = (present.len() < need.repositories.len())
                .then(|| sources.blob_source(&need.digest, need.size));
            async move {
                let steps = match source {
                    None => {
                        let nothing = bytes::Bytes::new();
                        copy_blob_to(client, &need, &nothing, progress.clone(), &present).await?
                    }
                    Some(source) => {
                        let source = source.ok_or_else(|| CopyError::NoSource {
                            digest: need.digest.clone(),
                        })?;
                        copy_blob_to(client, &need, &*source, progress.clone(), &present).await?
                    }
                };
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
    // What this copy wrote: a manifest referencing one of these is not there.
    let written: HashSet<(String, Digest)> = blob_steps
        .iter()
        .flat_map(|(_, s)| s)
        .filter(|b| matches!(b.action, Action::Upload | Action::Mount))
        .map(|b| (b.repository.clone(), b.digest.clone()))
        .collect();

    // Manifests last: exact bytes, by digest, children first, then the tag.
    let placed = Mutex::new(HashMap::new());
    let per_image: Vec<(Vec<ManifestStep>, f64)> =
        futures_util::stream::iter(plan.images.iter().zip(done))
            .map(|(img, done)| {
                let m = Manifests {
                    client,
                    img,
                    written: &written,
                    placed: &placed,
                };
                async move {
                    let steps = if done { m.in_place() } else { m.push().await? };
                    Ok::<_, CopyError>((steps, started.elapsed().as_secs_f64()))
                }
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

/// One image's manifest step: its references, children first, then the tag.
struct Manifests<'a> {
    client: &'a Client,
    img: &'a ImageCopy,
    /// `(repository, blob)` pairs this copy uploaded or mounted.
    written: &'a HashSet<(String, Digest)>,
    /// References this copy pushed, to the digest they point at.
    placed: &'a Mutex<HashMap<(String, String), Digest>>,
}

impl Manifests<'_> {
    fn step(&self, reference: &str, digest: &Digest, action: Action) -> ManifestStep {
        ManifestStep {
            repository: self.img.target.to_string(),
            reference: reference.to_string(),
            digest: digest.clone(),
            action,
        }
    }

    /// Every reference of an image in place: skipped, no request.
    fn in_place(&self) -> Vec<ManifestStep> {
        let img = self.img;
        let mut steps: Vec<ManifestStep> = img
            .manifests
            .iter()
            .map(|(d, _)| self.step(&d.digest.to_string(), &d.digest, Action::Skip))
            .collect();
        if let Some(tag) = &img.tag {
            steps.push(self.step(tag, &img.root.digest, Action::Skip));
        }
        steps
    }

    /// Whether this copy already pushed `reference` pointing at `digest`.
    fn was_placed(&self, reference: &str, digest: &Digest) -> bool {
        let key = (self.img.target.to_string(), reference.to_string());
        self.placed.lock().expect("not poisoned").get(&key) == Some(digest)
    }

    fn place(&self, reference: &str, digest: &Digest) {
        let key = (self.img.target.to_string(), reference.to_string());
        self.placed
            .lock()
            .expect("not poisoned")
            .insert(key, digest.clone());
    }

    /// An image not in place (its root reference said so): each manifest is
    /// pushed unless this copy or the registry already has it, children
    /// first, then the tag.
    async fn push(&self) -> Result<Vec<ManifestStep>, CopyError> {
        let img = self.img;
        let repo = img.target.to_string();
        let last = img
            .manifests
            .len()
            .checked_sub(1)
            .ok_or_else(|| CopyError::Manifest {
                image: img.source.clone(),
                digest: img.root.digest.clone(),
                reason: "the plan holds no manifest for the root".into(),
            })?;
        let mut steps = Vec::new();
        let mut tagged = false;
        // Manifests not in the registry before this copy: a parent of one is not either.
        let mut fresh: HashSet<&Digest> = HashSet::new();
        for (i, (d, bytes)) in img.manifests.iter().enumerate() {
            let reference = d.digest.to_string();
            if self.was_placed(&reference, &d.digest) {
                steps.push(self.step(&reference, &d.digest, Action::Skip));
                continue;
            }
            let is_fresh = references(d, bytes)
                .iter()
                .any(|c| fresh.contains(c) || self.written.contains(&(repo.clone(), c.clone())));
            let tag = img.tag.as_deref().filter(|_| i == last);
            // The first HEAD said an untagged root is not there.
            let ask = !is_fresh && (i < last || tag.is_some());
            if ask && self.there(&reference, &d.digest).await? {
                steps.push(self.step(&reference, &d.digest, Action::Skip));
                continue;
            }
            fresh.insert(&d.digest);
            match tag {
                // The tag is the last write; the registry files the manifest
                // under its digest with the same request.
                Some(tag) => {
                    self.put(tag, d, bytes).await?;
                    self.place(&reference, &d.digest);
                    tagged = true;
                    steps.push(self.step(&reference, &d.digest, Action::Push));
                }
                None => {
                    self.put(&reference, d, bytes).await?;
                    steps.push(self.step(&reference, &d.digest, Action::Push));
                }
            }
        }
        if let Some(tag) = &img.tag {
            let (root, bytes) = &img.manifests[last];
            if !tagged && self.was_placed(tag, &root.digest) {
                steps.push(self.step(tag, &root.digest, Action::Skip));
            } else {
                if !tagged {
                    // The root was there by digest: the tag still is not.
                    self.put(tag, root, bytes).await?;
                }
                steps.push(self.step(tag, &root.digest, Action::Push));
            }
        }
        Ok(steps)
    }

    /// HEAD `reference`: does it point at `digest`?
    async fn there(&self, reference: &str, digest: &Digest) -> Result<bool, CopyError> {
        let repo = &self.img.target;
        let found = self
            .client
            .manifest_exists(repo, reference)
            .await
            .map_err(|e| CopyError::registry(format!("pushing manifest {reference}"), repo, e))?;
        Ok(found.as_ref() == Some(digest))
    }

    /// PUT the manifest's exact bytes under `reference`, and check the
    /// digest the registry filed it under.
    async fn put(&self, reference: &str, d: &Descriptor, bytes: &[u8]) -> Result<(), CopyError> {
        let repo = &self.img.target;
        let got = self
            .client
            .push_manifest(repo, reference, bytes, &d.media_type)
            .await
            .map_err(|e| CopyError::registry(format!("pushing manifest {reference}"), repo, e))?;
        if got != d.digest {
            return Err(CopyError::StoredDigest {
                target: repo.to_string(),
                reference: reference.to_string(),
                expected: d.digest.clone(),
                found: got,
            });
        }
        self.place(reference, &d.digest);
        Ok(())
    }
}
