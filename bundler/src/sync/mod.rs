//! `atp-bundler sync`: copy images straight from a source registry into a
//! site registry, for sites with a link, under the same repository mapping
//! as `atp-installer install` ([`atp_registry::mapping`]), so a synced site
//! and a bundle-installed site hold the same references and digests.
//!
//! Order of work: resolve every image (the bundle spec's, its overlay's, and
//! `--image`s, through the same code as `create`), map names, then the copy
//! engine ([`atp_registry::copy`]): `--dry-run` prints its decision step
//! (HEAD only: skip / mount / upload per blob, skip / push per manifest); a
//! real run executes the plan: blobs stream from the source response into
//! the upload request (up to `concurrency` at once), manifests follow as
//! exact bytes, children first, then the tag.
//!
//! Referrers (signatures, attestations, SBOMs) come along as `create`
//! carries them (`gather::attach_referrers`; `--referrers`, else the spec's
//! `referrers`, else all): each an image copy after the images, into its image's
//! target repository, by digest (a cosign-tagged one too: no tag is written
//! before the whole copy is in place); then, as `install` does, each cosign
//! tag is written once, merged with the target's own cosign manifest under
//! it (never replacing it; anything else there stops sync, left as it is),
//! and each subject's `sha256-<hex>` fallback index is merged and written
//! once where the target has no referrers API (`--dry-run`: read and
//! reported, not written).
//!
//! - `report`: what sync did or would do, as text or JSON
//! - `source`: where each blob is read (a source registry, an OCI layout)
//! - `tags`: the cosign tags and fallback indexes written after the copy
//!
//! Never writes to disk (no temp files; only `--metrics-file`), never writes
//! to any registry in `--dry-run` (only GET and HEAD), and never pushes a
//! manifest before every blob and child it references is in place.

mod report;
mod source;
mod tags;

pub use report::{image_reports, ImageReport, IndexReport, SyncSummary, TagReport};
use tags::{CosignTag, FallbackAddition};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use atp_bundle::format::Descriptor;
use atp_bundle::metrics::{self, Histogram};
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use atp_registry::copy::{self, CopyError, ImageCopy, Plan};
use atp_registry::mapping::{self, Layout, MappingError, SourceRef};
use atp_registry::referrers::Holders;
use atp_registry::{Client, ClientOptions, RegistryConfig, Repository, RetryPolicy};

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
    /// `--referrers`: overrides the spec's `referrers.mode` (all without it).
    pub referrers: Option<crate::spec::ReferrerMode>,
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
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("no images to sync\nhint: pass --spec SPEC.yaml or --image REF, or list images in the --config file")]
    NoImages,
    #[error("image {image} comes from {kind}, which sync cannot read\nhint: {hint}")]
    Unsupported {
        image: String,
        kind: String,
        hint: String,
    },
    #[error("writing metrics {path}: {source}")]
    Metrics {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
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
    let Planned {
        plan,
        from,
        sources,
        additions,
        cosign,
    } = plan(opts, images)?;
    if opts.dry_run {
        let d = copy::decide(&target, &plan, opts.concurrency).await?;
        let reports = image_reports(&plan.images, &from, &d.blobs, &d.manifests, None);
        let tags = tags::cosign_tags(&target, &cosign, true).await?;
        let indexes = tags::fallback_indexes(&target, &additions, true).await?;
        return Ok(
            SyncSummary::new(true, &opts.target_registry, reports, &d.stats())
                .with_tags(tags)
                .with_indexes(indexes),
        );
    }
    let done = copy::execute(&target, &plan, &sources, opts.concurrency, "sync", progress).await?;
    let tags = tags::cosign_tags(&target, &cosign, false).await?;
    let indexes = tags::fallback_indexes(&target, &additions, false).await?;
    let reports = image_reports(
        &plan.images,
        &from,
        &done.blobs,
        &done.manifests,
        Some(&done.seconds),
    );
    if let Some(path) = &opts.metrics_file {
        let mut hist: BTreeMap<String, Histogram> = BTreeMap::new();
        for (img, secs) in plan.images.iter().zip(&done.seconds) {
            hist.entry(img.target.to_string())
                .or_default()
                .observe(*secs);
        }
        let mut text = String::new();
        metrics::render_image_sync(&mut text, &hist);
        metrics::write_atomic(path, text.as_bytes(), 0o644).map_err(|source| {
            SyncError::Metrics {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(
        SyncSummary::new(false, &opts.target_registry, reports, &done.stats)
            .with_tags(tags)
            .with_indexes(indexes),
    )
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
    let mut referrers = crate::spec::ReferrerOptions::default();
    if let Some(p) = &opts.spec {
        let spec = Spec::load(p)?;
        if platforms.is_empty() {
            platforms = spec.platforms.clone();
        }
        referrers = spec.referrers.clone();
        for s in &spec.images {
            specs.push(redirect(s, src)?);
        }
        overlay = spec.manifests.clone();
    }
    if let Some(mode) = opts.referrers {
        referrers.mode = mode;
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
    let images = gather::gather_with_referrers(
        &specs,
        overlay.as_ref(),
        client,
        &platforms,
        opts.concurrency,
        &discovered,
        &referrers,
    )
    .await
    .map_err(CreateError::from)?;
    if images.is_empty() {
        return Err(SyncError::NoImages);
    }
    Ok(images)
}

/// The copy plan and what follows it.
struct Planned {
    plan: Plan,
    /// Where each image copy is read from.
    from: Vec<String>,
    sources: source::SyncSources,
    /// What each subject's fallback index must list.
    additions: Vec<FallbackAddition>,
    /// The carried cosign tags, written after the copy.
    cosign: Vec<CosignTag>,
}

/// Map names and build the copy plan: one image copy per image, then one
/// per referrer (by digest); where each is read from, the blob sources,
/// what each subject's fallback index must list, and the cosign tags.
fn plan(opts: &SyncOptions, images: Vec<ResolvedImage>) -> Result<Planned, SyncError> {
    let sources: Vec<SourceRef> = images
        .iter()
        .map(|i| SourceRef::parse(&i.reference))
        .collect::<Result<_, _>>()?;
    let map = mapping::map_repositories(&sources, &opts.layout, opts.repo_prefix.as_deref())?;
    let mut copies = Vec::new();
    let mut from = Vec::new();
    let mut origins = HashMap::new();
    // Each referrer as its image's copy would carry it, with its subject,
    // how a fallback index lists it (OCI referrers) and where it is read.
    let mut pending: Vec<(ImageCopy, Digest, Option<Descriptor>, String)> = Vec::new();
    for (img, src) in images.into_iter().zip(&sources) {
        from.push(match &img.origin {
            Origin::Registry(_, repo) => repo.to_string(),
            Origin::Layout(l) => format!("oci:{}", l.dir().display()),
            Origin::Archive(_) => {
                return Err(SyncError::Unsupported {
                    image: img.reference.clone(),
                    kind: "a docker archive".into(),
                    hint: "bundle it with `atp-bundler create`, or push it to a registry and sync from there".into(),
                })
            }
        });
        let walked = walk_resolved(
            &img,
            &img.reference,
            &img.root,
            "the manifest was not resolved",
            &mut origins,
        )?;
        let target = Repository::new(&opts.target_registry, &map[&src.repository()])?;
        for r in &img.referrers {
            let source = format!("{} (referrer {})", img.reference, r.descriptor.digest);
            let walked = walk_resolved(
                &img,
                &source,
                &r.descriptor,
                "the referrer's manifest was not resolved",
                &mut origins,
            )?;
            let listed = match r.tag {
                Some(_) => None,
                None => {
                    let bytes = &walked.manifests.last().expect("the root is walked").1;
                    Some(atp_registry::referrers::referrer_descriptor(
                        &r.descriptor.media_type,
                        bytes,
                    )?)
                }
            };
            let copy = ImageCopy {
                source,
                target: target.clone(),
                tag: r.tag.clone(),
                root: r.descriptor.clone(),
                manifests: walked.manifests,
                blobs: walked.blobs,
            };
            let read_from = from.last().cloned().unwrap_or_default();
            pending.push((copy, r.subject.clone(), listed, read_from));
        }
        copies.push(ImageCopy {
            source: img.reference.clone(),
            target,
            tag: src.tag.clone(),
            root: img.root.clone(),
            manifests: walked.manifests,
            blobs: walked.blobs,
        });
    }
    let (additions, cosign) = place_referrers(pending, &mut copies, &mut from);
    Ok(Planned {
        plan: Plan::new(copies),
        from,
        sources: source::SyncSources { origins },
        additions,
        cosign,
    })
}

/// Walk `root` (`img` itself or one of its referrers, named `source` in
/// messages) through the manifests `img` resolved (`missing`: why one that
/// is not there fails), and read each of its blobs from `img`'s origin
/// unless an earlier image already gives one.
fn walk_resolved(
    img: &ResolvedImage,
    source: &str,
    root: &Descriptor,
    missing: &str,
    origins: &mut HashMap<Digest, Origin>,
) -> Result<copy::Walked, SyncError> {
    let walked = copy::walk_image(
        source,
        root,
        &mut |d| {
            img.manifests
                .get(&d.digest)
                .cloned()
                .ok_or_else(|| missing.to_string())
        },
        &HashSet::new(),
    )?;
    for (d, _) in &walked.blobs {
        origins
            .entry(d.clone())
            .or_insert_with(|| img.origin.clone());
    }
    Ok(walked)
}

/// Append each referrer's copy after the images, into its image's target
/// repository and every other one that holds its subject (the rule is
/// [`Holders`]: one image under two names, the referrer is found once, both
/// names get it), and list the OCI referrers for
/// each target's fallback index. A cosign-tagged referrer is copied by
/// digest only; its tag is returned, to write after the copy.
fn place_referrers(
    pending: Vec<(ImageCopy, Digest, Option<Descriptor>, String)>,
    copies: &mut Vec<ImageCopy>,
    from: &mut Vec<String>,
) -> (Vec<FallbackAddition>, Vec<CosignTag>) {
    let mut holders = Holders::new(copies);
    let mut additions: Vec<FallbackAddition> = Vec::new();
    let mut cosign: Vec<CosignTag> = Vec::new();
    for (mut copy, subject, listed, read_from) in pending {
        let tag = copy.tag.take();
        let targets = holders.place(&copy.target, &subject, &copy.root.digest);
        for target in targets {
            if let Some(listed) = &listed {
                match additions
                    .iter_mut()
                    .find(|(t, s, _)| t == &target && s == &subject)
                {
                    Some(a) => a.2.push(listed.clone()),
                    None => additions.push((target.clone(), subject.clone(), vec![listed.clone()])),
                }
            }
            if let (Some(tag), Some((d, bytes))) = (&tag, copy.manifests.last()) {
                let t = CosignTag {
                    repo: target.clone(),
                    tag: tag.clone(),
                    manifest: bytes.clone(),
                    media_type: d.media_type.clone(),
                };
                if !cosign.contains(&t) {
                    cosign.push(t);
                }
            }
            from.push(read_from.clone());
            copies.push(ImageCopy {
                target,
                ..copy.clone()
            });
        }
    }
    (additions, cosign)
}

#[cfg(test)]
mod tests;
