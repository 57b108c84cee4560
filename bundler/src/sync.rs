//! `atp-bundler sync`: copy images straight from a source registry into a
//! site registry, for sites with a link, under the same repository mapping
//! as `atp-installer install` ([`atp_registry::mapping`]), so a synced site
//! and a bundle-installed site hold the same references and digests.
//!
//! Order of work: resolve every image (the bundle spec's, its overlay's, and
//! `--image`s, through the same code as `create`), map names, HEAD-check the
//! target, decide per blob (skip / mount / upload) and per manifest
//! (skip / push): that decision is the plan `--dry-run` prints. A real run
//! then executes the plan image by image: blobs stream from the source
//! response into the upload request (up to `concurrency` at once), manifests
//! follow as exact bytes, children first, then the tag.
//!
//! Never writes to disk (no temp files; only `--metrics-file`), never writes
//! to any registry in `--dry-run` (only GET and HEAD), and never pushes a
//! manifest before every blob and child it references is in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{Descriptor, ManifestKind};
use atp_bundle::metrics::{self, Histogram};
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use atp_registry::mapping::{self, Layout, MappingError, SourceRef};
use atp_registry::{
    BlobSource, Client, ClientOptions, FileSource, PushOutcome, RegistryConfig, Repository,
    RetryPolicy,
};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::create::CreateError;
use crate::gather;
use crate::resolve::{self, Origin, ResolvedImage};
use crate::spec::{ImageSource, ImageSpec, Spec};

/// Everything `sync` needs (see `sync_config` for how flags and the config
/// file become these).
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// A bundle spec: its images, and its overlay's when it discovers them.
    pub spec: Option<PathBuf>,
    /// More image references.
    pub images: Vec<String>,
    /// The registry that serves unqualified and `docker.io` names (a Docker
    /// Hub mirror). Names keep `docker.io`, so they map as a bundle would.
    pub source_registry: Option<String>,
    /// `host[:port]` of the site registry.
    pub target_registry: String,
    /// Per-registry transport and credentials, source and target alike.
    pub registries: HashMap<String, RegistryConfig>,
    pub repo_prefix: Option<String>,
    pub layout: Layout,
    /// Keep only these platforms (overrides the spec's).
    pub platforms: Vec<String>,
    /// Blob transfers in flight.
    pub concurrency: usize,
    /// Plan only: GET and HEAD, nothing written.
    pub dry_run: bool,
    pub metrics_file: Option<PathBuf>,
    /// Overrides the client's retry policy (tests).
    pub retry: Option<RetryPolicy>,
}

/// What happens (or happened) to one blob in one target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    Upload,
    Mount,
    Skip,
}

/// What happens (or happened) to one manifest reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestAction {
    Push,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobReport {
    pub digest: Digest,
    pub size: u64,
    pub action: BlobAction,
    /// The repository a mount takes the blob from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestReport {
    /// A digest (manifests and indexes, children first) or the tag (last).
    pub reference: String,
    pub action: ManifestAction,
}

/// One image: where it came from, where it goes, what moves.
#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    /// The normalized reference, as a bundle records it.
    pub reference: String,
    /// Where the bytes are read.
    pub from: String,
    /// `TARGET/repo:tag` (or `@digest` when untagged).
    pub target: String,
    pub digest: Digest,
    pub blobs: Vec<BlobReport>,
    pub manifests: Vec<ManifestReport>,
    /// Bytes uploaded (or, in a dry run, that would be).
    pub bytes: u64,
    /// Seconds this image took (real runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// What `sync` did, or in a dry run would do.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    pub dry_run: bool,
    pub target_registry: String,
    pub images: Vec<ImageReport>,
    pub uploaded: u64,
    pub mounted: u64,
    pub skipped: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Client(#[from] atp_registry::Error),
    #[error("{what} to {target}: {source}")]
    Registry {
        what: String,
        target: String,
        #[source]
        source: atp_registry::Error,
    },
    #[error("no images to sync\nhint: pass --spec SPEC.yaml or --image REF, or list images in the --config file")]
    NoImages,
    #[error("image {image} comes from {kind}, which sync cannot read\nhint: {hint}")]
    Unsupported {
        image: String,
        kind: String,
        hint: String,
    },
    #[error("registry stored manifest {reference} of {target} as {found}, expected {expected}")]
    StoredDigest {
        target: String,
        reference: String,
        expected: Digest,
        found: Digest,
    },
    #[error("writing metrics {path}: {source}")]
    Metrics {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One image's plan.
struct ImagePlan {
    reference: String,
    from: String,
    target: Repository,
    tag: Option<String>,
    root: Descriptor,
    origin: Origin,
    /// Children before parents, root last; with the planned action.
    manifests: Vec<(Descriptor, Vec<u8>, ManifestAction)>,
    tag_action: Option<ManifestAction>,
    blobs: Vec<(Digest, u64, BlobAction, Option<Repository>)>,
}

/// Build a client for `opts` (one per side, so that a source read held open
/// inside a target upload never waits on the upload's own transfer permit).
fn client(opts: &SyncOptions) -> Result<Client, SyncError> {
    let mut c = ClientOptions {
        concurrency: opts.concurrency.max(1),
        registries: opts.registries.clone(),
        ..ClientOptions::default()
    };
    if let Some(r) = &opts.retry {
        c.retry = r.clone();
    }
    Ok(Client::new(c)?)
}

/// Run `sync` (or plan it, with `dry_run`).
pub async fn sync(
    opts: &SyncOptions,
    progress: Arc<dyn Progress>,
) -> Result<SyncSummary, SyncError> {
    let source = client(opts)?;
    let target = client(opts)?;
    let images = gather(opts, &source).await?;
    let mut plans = plan(opts, &target, images).await?;
    let mut reports: Vec<ImageReport> = plans.iter().map(report_of).collect();
    if !opts.dry_run {
        let moving: Vec<&(Digest, u64, BlobAction, Option<Repository>)> = plans
            .iter()
            .flat_map(|p| &p.blobs)
            .filter(|b| b.2 == BlobAction::Upload)
            .collect();
        progress.phase(
            "sync",
            moving.iter().map(|b| b.1).sum(),
            moving.len() as u64,
        );
        let mut hist: BTreeMap<String, Histogram> = BTreeMap::new();
        for (p, r) in plans.iter_mut().zip(reports.iter_mut()) {
            let started = Instant::now();
            execute(&target, p, opts.concurrency, progress.clone()).await?;
            let secs = started.elapsed().as_secs_f64();
            *r = report_of(p);
            r.seconds = Some(secs);
            hist.entry(p.target.to_string()).or_default().observe(secs);
        }
        progress.finish_phase();
        if let Some(path) = &opts.metrics_file {
            let mut text = String::new();
            metrics::render_image_sync(&mut text, &hist);
            metrics::write_atomic(path, text.as_bytes(), 0o644).map_err(|source| {
                SyncError::Metrics {
                    path: path.clone(),
                    source,
                }
            })?;
        }
    }
    let mut s = SyncSummary {
        dry_run: opts.dry_run,
        target_registry: opts.target_registry.clone(),
        images: reports,
        uploaded: 0,
        mounted: 0,
        skipped: 0,
        bytes_uploaded: 0,
        manifests_pushed: 0,
        manifests_skipped: 0,
    };
    for b in s.images.iter().flat_map(|i| &i.blobs) {
        match b.action {
            BlobAction::Upload => {
                s.uploaded += 1;
                s.bytes_uploaded += b.size;
            }
            BlobAction::Mount => s.mounted += 1,
            BlobAction::Skip => s.skipped += 1,
        }
    }
    for m in s.images.iter().flat_map(|i| &i.manifests) {
        match m.action {
            ManifestAction::Push => s.manifests_pushed += 1,
            ManifestAction::Skip => s.manifests_skipped += 1,
        }
    }
    Ok(s)
}

/// Where a registry image is read from when a Docker Hub mirror is named:
/// `docker.io/...` names (written qualified or not) come from the mirror
/// and keep their `docker.io` name.
pub fn redirect(img: &ImageSpec, source_registry: Option<&str>) -> Result<ImageSpec, SyncError> {
    let ImageSource::Registry(raw) = &img.source else {
        return Ok(img.clone());
    };
    let mirror = match source_registry.map(|m| m.trim_end_matches('/')) {
        None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io") => {
            return Ok(img.clone())
        }
        Some(m) => m,
    };
    let norm = resolve::normalize(raw)?;
    let Some(rest) = norm.strip_prefix("docker.io/") else {
        return Ok(img.clone());
    };
    Ok(ImageSpec {
        source: ImageSource::Registry(format!("{mirror}/{rest}")),
        name: Some(img.name.clone().unwrap_or(norm)),
    })
}

/// Resolve every image to sync through [`gather::gather`], as `create` does:
/// spec images and `--image`s, then the overlay's when the spec discovers
/// them (refusing an incomplete overlay as `create` would). The same image
/// twice is kept once; two different images under one name are refused.
async fn gather(opts: &SyncOptions, client: &Client) -> Result<Vec<ResolvedImage>, SyncError> {
    let src = opts.source_registry.as_deref();
    let mut specs = Vec::new();
    let mut platforms = opts.platforms.clone();
    let mut overlay = None;
    if let Some(p) = &opts.spec {
        let spec = Spec::load(p)?;
        if platforms.is_empty() {
            platforms = spec.platforms.clone();
        }
        for s in &spec.images {
            specs.push(redirect(s, src)?);
        }
        overlay = spec.manifests.clone();
    }
    for r in &opts.images {
        let s = ImageSpec {
            source: ImageSource::Registry(r.clone()),
            name: None,
        };
        specs.push(redirect(&s, src)?);
    }
    if specs.is_empty() && overlay.is_none() {
        return Err(SyncError::NoImages);
    }
    let discovered = |r: &str| -> Result<ImageSpec, gather::MapError> {
        Ok(redirect(&gather::from_registry(r), src)?)
    };
    let images = gather::gather(
        &specs,
        overlay.as_ref(),
        client,
        &platforms,
        opts.concurrency,
        &discovered,
    )
    .await
    .map_err(CreateError::from)?;
    if images.is_empty() {
        return Err(SyncError::NoImages);
    }
    Ok(images)
}

/// Manifests of an image, children before parents, root last.
fn manifests_post_order(img: &ResolvedImage) -> Result<Vec<(Descriptor, Vec<u8>)>, SyncError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(img.root.clone(), false)];
    while let Some((d, expanded)) = stack.pop() {
        let bytes = img.manifests.get(&d.digest).cloned().ok_or_else(|| {
            SyncError::Client(atp_registry::Error::Protocol {
                url: img.reference.clone(),
                reason: format!("manifest {} was not resolved", d.digest),
            })
        })?;
        if expanded {
            out.push((d, bytes));
            continue;
        }
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let parsed =
            Manifest::parse(&d.media_type, &bytes, &d.digest.to_string()).map_err(|e| {
                SyncError::Client(atp_registry::Error::Protocol {
                    url: img.reference.clone(),
                    reason: e.to_string(),
                })
            })?;
        stack.push((d.clone(), true));
        for c in parsed.children() {
            if ManifestKind::of(&c.media_type).is_some() {
                stack.push((c.clone(), false));
            }
        }
    }
    Ok(out)
}

/// Map names, HEAD-check the target, and decide every action.
async fn plan(
    opts: &SyncOptions,
    target: &Client,
    images: Vec<ResolvedImage>,
) -> Result<Vec<ImagePlan>, SyncError> {
    let sources: Vec<SourceRef> = images
        .iter()
        .map(|i| SourceRef::parse(&i.reference))
        .collect::<Result<_, _>>()?;
    let map = mapping::map_repositories(&sources, &opts.layout, opts.repo_prefix.as_deref())?;
    let mut plans = Vec::new();
    for (img, src) in images.into_iter().zip(&sources) {
        let from = match &img.origin {
            Origin::Registry(_, repo) => repo.to_string(),
            Origin::Layout(l) => format!("oci:{}", l.dir().display()),
            Origin::Archive(_) => {
                return Err(SyncError::Unsupported {
                    image: img.reference.clone(),
                    kind: "a docker archive".into(),
                    hint: "bundle it with `atp-bundler create`, or push it to a registry and sync from there".into(),
                })
            }
        };
        let manifests = manifests_post_order(&img)?
            .into_iter()
            .map(|(d, b)| (d, b, ManifestAction::Push))
            .collect();
        plans.push(ImagePlan {
            target: Repository::new(&opts.target_registry, &map[&src.repository()])?,
            tag: src.tag.clone(),
            root: img.root.clone(),
            blobs: img
                .blobs
                .iter()
                .map(|(d, s)| (d.clone(), *s, BlobAction::Upload, None))
                .collect(),
            reference: img.reference,
            from,
            origin: img.origin,
            manifests,
            tag_action: None,
        });
    }

    // What the target already has: every (repository, blob) pair, HEADed.
    let pairs: Vec<(Repository, Digest, u64)> = plans
        .iter()
        .flat_map(|p| p.blobs.iter().map(|b| (p.target.clone(), b.0.clone(), b.1)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let present: HashSet<(Repository, Digest)> = futures_util::stream::iter(pairs)
        .map(|(repo, d, size)| async move {
            let found =
                target
                    .blob_exists(&repo, &d)
                    .await
                    .map_err(|source| SyncError::Registry {
                        what: format!("checking blob {d}"),
                        target: repo.to_string(),
                        source,
                    })?;
            Ok::<_, SyncError>(matches!(found, Some(n) if n == size || n == 0).then_some((repo, d)))
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    // Manifests and tags already in place.
    let checks: Vec<(Repository, String)> = plans
        .iter()
        .flat_map(|p| {
            p.manifests
                .iter()
                .map(|m| (p.target.clone(), m.0.digest.to_string()))
                .chain(p.tag.iter().map(|t| (p.target.clone(), t.clone())))
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let existing: HashMap<(Repository, String), Digest> = futures_util::stream::iter(checks)
        .map(|(repo, reference)| async move {
            let found = target
                .manifest_exists(&repo, &reference)
                .await
                .map_err(|source| SyncError::Registry {
                    what: format!("checking manifest {reference}"),
                    target: repo.to_string(),
                    source,
                })?;
            Ok::<_, SyncError>(found.map(|d| ((repo, reference), d)))
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;

    decide(&mut plans, &present, existing);
    Ok(plans)
}

/// Decide every action from what the target has, in image order, as the
/// real run will move things: a blob the repository has is skipped; one that
/// another repository of the target has (or gets earlier in this run) is
/// mounted from the first such repository; the rest are uploaded. Manifests
/// and tags already in place (or pushed earlier in this run) are skipped.
fn decide(
    plans: &mut [ImagePlan],
    present: &HashSet<(Repository, Digest)>,
    existing: HashMap<(Repository, String), Digest>,
) {
    let mut has: HashMap<Digest, Vec<Repository>> = HashMap::new();
    for p in plans.iter() {
        for b in &p.blobs {
            if present.contains(&(p.target.clone(), b.0.clone())) {
                let e = has.entry(b.0.clone()).or_default();
                if !e.contains(&p.target) {
                    e.push(p.target.clone());
                }
            }
        }
    }
    let mut placed = existing;
    for p in plans.iter_mut() {
        for b in &mut p.blobs {
            let holders = has.entry(b.0.clone()).or_default();
            if holders.contains(&p.target) {
                b.2 = BlobAction::Skip;
            } else {
                match holders.first() {
                    Some(from) => {
                        b.2 = BlobAction::Mount;
                        b.3 = Some(from.clone());
                    }
                    None => b.2 = BlobAction::Upload,
                }
                holders.push(p.target.clone());
            }
        }
        for m in &mut p.manifests {
            let key = (p.target.clone(), m.0.digest.to_string());
            if placed.get(&key) == Some(&m.0.digest) {
                m.2 = ManifestAction::Skip;
            } else {
                placed.insert(key, m.0.digest.clone());
            }
        }
        if let Some(tag) = &p.tag {
            let key = (p.target.clone(), tag.clone());
            p.tag_action = Some(if placed.get(&key) == Some(&p.root.digest) {
                ManifestAction::Skip
            } else {
                placed.insert(key, p.root.digest.clone());
                ManifestAction::Push
            });
        }
    }
}

fn report_of(p: &ImagePlan) -> ImageReport {
    let blobs: Vec<BlobReport> = p
        .blobs
        .iter()
        .map(|(d, size, action, from)| BlobReport {
            digest: d.clone(),
            size: *size,
            action: *action,
            from: from.as_ref().map(ToString::to_string),
        })
        .collect();
    let mut manifests: Vec<ManifestReport> = p
        .manifests
        .iter()
        .map(|(d, _, action)| ManifestReport {
            reference: d.digest.to_string(),
            action: *action,
        })
        .collect();
    if let (Some(tag), Some(action)) = (&p.tag, p.tag_action) {
        manifests.push(ManifestReport {
            reference: tag.clone(),
            action,
        });
    }
    ImageReport {
        reference: p.reference.clone(),
        from: p.from.clone(),
        target: match &p.tag {
            Some(t) => format!("{}:{t}", p.target),
            None => format!("{}@{}", p.target, p.root.digest),
        },
        digest: p.root.digest.clone(),
        bytes: blobs
            .iter()
            .filter(|b| b.action == BlobAction::Upload)
            .map(|b| b.size)
            .sum(),
        blobs,
        manifests,
        seconds: None,
    }
}

/// A source registry blob as an upload body: each attempt opens a fresh,
/// digest-verifying stream. Resuming at an offset re-reads and drops the
/// bytes before it (the digest is still checked over the whole blob).
struct RegistryBlob {
    client: Client,
    repo: Repository,
    digest: Digest,
    size: u64,
}

impl BlobSource for RegistryBlob {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let stream = self
                .client
                .blob_reader(&self.repo, &self.digest, self.size)
                .await
                .map_err(io::Error::other)?;
            let mut r = stream.into_async_read();
            if offset > 0 {
                let dropped =
                    tokio::io::copy(&mut (&mut r).take(offset), &mut tokio::io::sink()).await?;
                if dropped != offset {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: blob {} ended before byte {offset}",
                            self.repo, self.digest
                        ),
                    ));
                }
            }
            Ok(Box::new(r) as Box<_>)
        })
    }
}

/// An upload body that reports the bytes it hands out to progress (a retried
/// attempt counts again: the bar shows bytes sent).
struct Counted {
    inner: Box<dyn BlobSource>,
    progress: Arc<dyn Progress>,
}

impl BlobSource for Counted {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let r = self.inner.open(offset).await?;
            Ok(Box::new(CountingReader {
                inner: r,
                progress: self.progress.clone(),
            }) as Box<_>)
        })
    }
}

struct CountingReader {
    inner: Box<dyn AsyncRead + Send + Unpin>,
    progress: Arc<dyn Progress>,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.progress.advance(n as u64);
        }
        res
    }
}

fn blob_source(origin: &Origin, d: &Digest, size: u64) -> Box<dyn BlobSource> {
    match origin {
        Origin::Registry(client, repo) => Box::new(RegistryBlob {
            client: client.clone(),
            repo: repo.clone(),
            digest: d.clone(),
            size,
        }),
        Origin::Layout(l) => Box::new(FileSource::new(l.blob_path(d))),
        Origin::Archive(_) => unreachable!("refused while planning"),
    }
}

/// Move one image as planned, recording what actually happened.
async fn execute(
    target: &Client,
    p: &mut ImagePlan,
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Result<(), SyncError> {
    let repo = p.target.clone();
    let origin = p.origin.clone();
    let outcomes: Vec<(usize, PushOutcome)> = futures_util::stream::iter(
        p.blobs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.2 != BlobAction::Skip)
            .map(|(i, b)| (i, b.clone())),
    )
    .map(|(i, (d, size, action, from))| {
        let (repo, origin, progress) = (repo.clone(), origin.clone(), progress.clone());
        async move {
            let source = Counted {
                inner: blob_source(&origin, &d, size),
                progress: progress.clone(),
            };
            let mount_from: Vec<Repository> = from.into_iter().collect();
            let outcome = target
                .push_blob(&repo, &d, size, &source, &mount_from)
                .await
                .map_err(|source| SyncError::Registry {
                    what: format!("pushing blob {d}"),
                    target: repo.to_string(),
                    source,
                })?;
            if action == BlobAction::Upload {
                progress.item_done(&d.to_string());
            }
            Ok::<_, SyncError>((i, outcome))
        }
    })
    .buffer_unordered(concurrency.max(1))
    .try_collect()
    .await?;
    for (i, outcome) in outcomes {
        let b = &mut p.blobs[i];
        (b.2, b.3) = match outcome {
            PushOutcome::Skipped => (BlobAction::Skip, None),
            PushOutcome::Mounted { from } => (BlobAction::Mount, Some(from)),
            PushOutcome::Uploaded => (BlobAction::Upload, None),
        };
    }
    for (d, bytes, action) in &p.manifests {
        if *action == ManifestAction::Push {
            push_manifest(target, &repo, &d.digest.to_string(), d, bytes).await?;
        }
    }
    if let (Some(tag), Some(ManifestAction::Push)) = (&p.tag, p.tag_action) {
        let (d, bytes, _) = p.manifests.last().expect("the root is always planned");
        push_manifest(target, &repo, tag, d, bytes).await?;
    }
    Ok(())
}

async fn push_manifest(
    target: &Client,
    repo: &Repository,
    reference: &str,
    d: &Descriptor,
    bytes: &[u8],
) -> Result<(), SyncError> {
    let got = target
        .push_manifest(repo, reference, bytes, &d.media_type)
        .await
        .map_err(|source| SyncError::Registry {
            what: format!("pushing manifest {reference}"),
            target: repo.to_string(),
            source,
        })?;
    if got != d.digest {
        return Err(SyncError::StoredDigest {
            target: repo.to_string(),
            reference: reference.into(),
            expected: d.digest.clone(),
            found: got,
        });
    }
    Ok(())
}

impl SyncSummary {
    /// The human-readable plan or result.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verb = if self.dry_run { "would" } else { "did" };
        for i in &self.images {
            let count = |a: BlobAction| i.blobs.iter().filter(|b| b.action == a).count();
            let pushes = i
                .manifests
                .iter()
                .filter(|m| m.action == ManifestAction::Push)
                .count();
            let _ = writeln!(
                s,
                "{} -> {} ({})\n  from {}\n  {verb} upload {} blob(s), {} bytes; mount {}; skip {}; push {} manifest reference(s){}",
                i.reference,
                i.target,
                i.digest,
                i.from,
                count(BlobAction::Upload),
                i.bytes,
                count(BlobAction::Mount),
                count(BlobAction::Skip),
                pushes,
                i.seconds.map(|t| format!(" in {t:.2}s")).unwrap_or_default()
            );
        }
        let _ = writeln!(
            s,
            "{} image(s) to {}: {verb} upload {} blob(s) ({} bytes), mount {}, skip {}; push {} manifest reference(s), {} already in place{}",
            self.images.len(),
            self.target_registry,
            self.uploaded,
            self.bytes_uploaded,
            self.mounted,
            self.skipped,
            self.manifests_pushed,
            self.manifests_skipped,
            if self.dry_run { " (dry run: nothing written)" } else { "" }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(r: &str) -> ImageSpec {
        ImageSpec {
            source: ImageSource::Registry(r.into()),
            name: None,
        }
    }

    fn image(repo: &str, tag: &str, root: &[u8], blobs: &[&[u8]]) -> ImagePlan {
        let target: Repository = repo.parse().unwrap();
        let root = Descriptor::of_bytes("application/vnd.oci.image.manifest.v1+json", root);
        ImagePlan {
            reference: format!("docker.io/{repo}:{tag}"),
            from: "src".into(),
            tag: Some(tag.into()),
            origin: Origin::Registry(
                Client::new(ClientOptions::default()).unwrap(),
                target.clone(),
            ),
            manifests: vec![(root.clone(), Vec::new(), ManifestAction::Push)],
            root,
            tag_action: None,
            blobs: blobs
                .iter()
                .map(|b| (Digest::of(b), b.len() as u64, BlobAction::Upload, None))
                .collect(),
            target,
        }
    }

    #[test]
    fn decisions_skip_what_is_there_mount_what_this_run_placed_and_upload_the_rest() {
        let mut plans = vec![
            image("t:1/a", "1", b"ra", &[b"x", b"y"]),
            image("t:1/b", "1", b"rb", &[b"y", b"z"]),
            image("t:1/a", "2", b"ra", &[b"x"]),
        ];
        let (ta, tb) = (plans[0].target.clone(), plans[1].target.clone());
        let present = HashSet::from([(tb.clone(), Digest::of(b"z"))]);
        let existing = HashMap::from([((ta.clone(), "1".to_string()), Digest::of(b"ra"))]);
        decide(&mut plans, &present, existing);
        let blobs = |p: &ImagePlan| -> Vec<(BlobAction, Option<Repository>)> {
            p.blobs.iter().map(|b| (b.2, b.3.clone())).collect()
        };
        use BlobAction::*;
        use ManifestAction::{Push, Skip as Kept};
        assert_eq!(blobs(&plans[0]), [(Upload, None), (Upload, None)]);
        assert_eq!(blobs(&plans[1]), [(Mount, Some(ta.clone())), (Skip, None)]);
        assert_eq!(blobs(&plans[2]), [(Skip, None)]);
        // Image a's tag 1 is already in place; its manifest is not.
        assert_eq!(plans[0].manifests[0].2, Push);
        assert_eq!(plans[0].tag_action, Some(Kept));
        assert_eq!(plans[1].tag_action, Some(Push));
        // The same manifest under a second tag: pushed once, tagged again.
        assert_eq!(plans[2].manifests[0].2, Kept);
        assert_eq!(plans[2].tag_action, Some(Push));
        let r = report_of(&plans[1]);
        assert_eq!(r.target, "t:1/b:1");
        assert_eq!(r.bytes, 0);
        assert_eq!(report_of(&plans[0]).bytes, 2);
    }

    #[test]
    fn a_mirror_serves_docker_hub_names_which_keep_their_name() {
        let s = redirect(&reg("atp/router:1.4.0"), Some("127.0.0.1:5000")).unwrap();
        assert_eq!(
            s,
            ImageSpec {
                source: ImageSource::Registry("127.0.0.1:5000/atp/router:1.4.0".into()),
                name: Some("docker.io/atp/router:1.4.0".into()),
            }
        );
        let s = redirect(&reg("nginx"), Some("mirror:5000")).unwrap();
        assert_eq!(
            s.source,
            ImageSource::Registry("mirror:5000/library/nginx:latest".into())
        );
        // Other registries, docker.io itself, and a spec's own name stay put.
        let q = reg("quay.io/x/y:1");
        assert_eq!(redirect(&q, Some("mirror:5000")).unwrap(), q);
        let d = reg("atp/router:1.4.0");
        assert_eq!(redirect(&d, Some("docker.io")).unwrap(), d);
        let named = ImageSpec {
            source: ImageSource::Registry("docker.io/vendor/router:1".into()),
            name: Some("docker.io/atp/router:1.4.0".into()),
        };
        assert_eq!(
            redirect(&named, Some("m:1")).unwrap().name.as_deref(),
            Some("docker.io/atp/router:1.4.0")
        );
    }
}
