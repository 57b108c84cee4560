//! Push verified images from the bundle file to the site registry: blobs
//! first (skip what the registry has, mount what another repository of this
//! run already got, upload the rest straight from the tar at its offset, or
//! from the volumes or zstd stream through [`crate::media_source`]),
//! manifests last as the exact bundled bytes, children before parents, then
//! the tag. Every digest is preserved.
//!
//! Only ever called after the whole bundle verified (or, in single-pass mode,
//! after every blob verified): it trusts the locations it is given.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{Descriptor, ManifestKind};
use atp_bundle::progress::Progress;
use atp_bundle::verify::BlobLocation;
use atp_bundle::Digest;
use atp_registry::{BlobSource, Client, PushOutcome, Repository};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};

/// One image to push.
#[derive(Debug, Clone)]
pub struct ImagePush {
    pub source: String,
    pub target: Repository,
    pub tag: Option<String>,
    pub root: Descriptor,
    /// Manifests and indexes, children before parents, root last.
    pub manifests: Vec<(Descriptor, Vec<u8>)>,
    /// Configs and layers: digest → size.
    pub blobs: BTreeMap<Digest, u64>,
}

/// Counts of what the push did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PushStats {
    pub uploaded: u64,
    pub skipped: u64,
    pub mounted: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    // The registry error is part of the message, not a `source()`: shown
    // through anyhow's `{:#}` it would otherwise be printed twice.
    #[error("pushing {what} to {target}: {cause}")]
    Registry {
        what: String,
        target: String,
        cause: atp_registry::Error,
    },
    #[error("bundle: {0}")]
    Bundle(String),
}

/// Build the push plan of one image by walking its manifests in the bundle.
pub fn plan_image(
    source: &str,
    target: Repository,
    tag: Option<String>,
    root: &Descriptor,
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, String>,
    omitted: &std::collections::HashSet<Digest>,
) -> Result<(ImagePush, Vec<Digest>), PushError> {
    let mut manifests = Vec::new();
    let mut blobs = BTreeMap::new();
    let mut relied_on = Vec::new();
    // Post-order walk: push a node after its children.
    let mut stack = vec![(root.clone(), false)];
    let mut seen = std::collections::HashSet::new();
    while let Some((d, expanded)) = stack.pop() {
        if expanded {
            let bytes = read(&d.digest).map_err(PushError::Bundle)?;
            manifests.push((d, bytes));
            continue;
        }
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let bytes = read(&d.digest).map_err(PushError::Bundle)?;
        let parsed = Manifest::parse(&d.media_type, &bytes, &d.digest.to_string())
            .map_err(|e| PushError::Bundle(e.to_string()))?;
        stack.push((d.clone(), true));
        for c in parsed.children() {
            if ManifestKind::of(&c.media_type).is_some() {
                stack.push((c.clone(), false));
            } else if omitted.contains(&c.digest) {
                relied_on.push(c.digest.clone());
            } else {
                blobs.insert(c.digest.clone(), c.size);
            }
        }
    }
    Ok((
        ImagePush {
            source: source.to_string(),
            target,
            tag,
            root: root.clone(),
            manifests,
            blobs,
        },
        relied_on,
    ))
}

/// Push every image. Returns the stats and, per image, seconds until its
/// manifests were in place.
pub async fn push_all(
    client: &Client,
    images: &[ImagePush],
    bundle: &dyn crate::media_source::BlobSources,
    locations: &HashMap<Digest, BlobLocation>,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<(PushStats, Vec<f64>), PushError> {
    let started = Instant::now();
    // digest → every target repository that needs it, in image order.
    let mut needs: BTreeMap<Digest, (u64, Vec<Repository>)> = BTreeMap::new();
    for img in images {
        for (d, size) in &img.blobs {
            let e = needs.entry(d.clone()).or_insert((*size, Vec::new()));
            if !e.1.contains(&img.target) {
                e.1.push(img.target.clone());
            }
        }
    }
    let total: u64 = needs.values().map(|(s, r)| s * r.len() as u64).sum();
    progress.phase("push", total, needs.len() as u64);
    let results: Vec<Vec<(PushOutcome, u64)>> = futures_util::stream::iter(needs)
        .map(|(digest, (size, repos))| {
            let progress = progress.clone();
            let source = locations.get(&digest).map(|loc| bundle.blob_source(loc));
            async move {
                let source = source.ok_or_else(|| {
                    PushError::Bundle(format!("blob {digest} is not in the verified bundle"))
                })?;
                let mut out = Vec::new();
                for (i, repo) in repos.iter().enumerate() {
                    let mount_from = if i == 0 { &[][..] } else { &repos[..1] };
                    // Progress moves with the bytes sent, not per blob.
                    let counted = Counted::new(&*source, progress.clone());
                    let outcome = client
                        .push_blob(repo, &digest, size, &counted, mount_from)
                        .await
                        .map_err(|cause| PushError::Registry {
                            what: format!("blob {digest}"),
                            target: repo.to_string(),
                            cause,
                        })?;
                    counted.finish(size);
                    out.push((outcome, size));
                }
                progress.item_done(&digest.to_string());
                Ok::<_, PushError>(out)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    progress.finish_phase();
    let mut stats = PushStats::default();
    for (outcome, size) in results.into_iter().flatten() {
        match outcome {
            PushOutcome::Skipped => stats.skipped += 1,
            PushOutcome::Mounted { .. } => stats.mounted += 1,
            PushOutcome::Uploaded => {
                stats.uploaded += 1;
                stats.bytes_uploaded += size;
            }
        }
    }

    // Manifests last: exact bytes, by digest, children first, then the tag.
    let per_image: Vec<(u64, u64, f64)> = futures_util::stream::iter(images.iter())
        .map(|img| async move {
            let (mut pushed, mut skipped) = (0u64, 0u64);
            for (d, bytes) in &img.manifests {
                let reference = d.digest.to_string();
                if push_manifest_once(client, img, &reference, d, bytes).await? {
                    pushed += 1;
                } else {
                    skipped += 1;
                }
            }
            if let Some(tag) = &img.tag {
                let root_bytes = &img.manifests.last().expect("the root is always planned").1;
                if push_manifest_once(client, img, tag, &img.root, root_bytes).await? {
                    pushed += 1;
                } else {
                    skipped += 1;
                }
            }
            Ok::<_, PushError>((pushed, skipped, started.elapsed().as_secs_f64()))
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut seconds = Vec::new();
    for (p, s, t) in per_image {
        stats.manifests_pushed += p;
        stats.manifests_skipped += s;
        seconds.push(t);
    }
    Ok((stats, seconds))
}

/// Push a manifest under `reference` unless it is already there with this
/// digest. Returns whether it was pushed.
async fn push_manifest_once(
    client: &Client,
    img: &ImagePush,
    reference: &str,
    d: &Descriptor,
    bytes: &[u8],
) -> Result<bool, PushError> {
    let err = |cause| PushError::Registry {
        what: format!("manifest {reference}"),
        target: img.target.to_string(),
        cause,
    };
    if client
        .manifest_exists(&img.target, reference)
        .await
        .map_err(err)?
        .as_ref()
        == Some(&d.digest)
    {
        return Ok(false);
    }
    let got = client
        .push_manifest(&img.target, reference, bytes, &d.media_type)
        .await
        .map_err(err)?;
    if got != d.digest {
        return Err(PushError::Bundle(format!(
            "registry stored manifest {reference} as {got}, expected {}",
            d.digest
        )));
    }
    Ok(true)
}

/// A blob source that reports progress as its bytes are read: the high-water
/// mark of the offsets reached, so a retry that re-sends bytes never counts
/// them twice and progress never goes backwards.
struct Counted<'a> {
    inner: &'a dyn BlobSource,
    progress: Arc<dyn Progress>,
    high: Arc<AtomicU64>,
}

impl<'a> Counted<'a> {
    fn new(inner: &'a dyn BlobSource, progress: Arc<dyn Progress>) -> Self {
        Self {
            inner,
            progress,
            high: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The blob is in place (sent, skipped or mounted): count the rest.
    fn finish(&self, size: u64) {
        let prev = self.high.fetch_max(size, Ordering::Relaxed);
        if size > prev {
            self.progress.advance(size - prev);
        }
    }
}

impl BlobSource for Counted<'_> {
    fn open(
        &self,
        offset: u64,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let inner = self.inner.open(offset).await?;
            Ok(Box::new(CountingReader {
                inner,
                pos: offset,
                high: self.high.clone(),
                progress: self.progress.clone(),
            }) as Box<_>)
        })
    }
}

struct CountingReader {
    inner: Box<dyn AsyncRead + Send + Unpin>,
    pos: u64,
    high: Arc<AtomicU64>,
    progress: Arc<dyn Progress>,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r {
            self.pos += (buf.filled().len() - before) as u64;
            let prev = self.high.fetch_max(self.pos, Ordering::Relaxed);
            if self.pos > prev {
                self.progress.advance(self.pos - prev);
            }
        }
        r
    }
}
