//! `atp-installer install`: verify → refuse rollbacks → push → render →
//! air-gap gate → apply (optional) → receipt and metrics.
//!
//! Fail closed: nothing is sent to the registry until the whole bundle has
//! verified, and nothing is rendered or applied unless every image is in
//! place. Every run, refusals included, is counted in the metrics.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::format::{media, role};
use atp_bundle::progress::Progress;
use atp_bundle::verify::{BlobLocation, Report, TopLevel};
use atp_bundle::Digest;
use atp_registry::{Client, ClientOptions, Credentials, RegistryConfig, Repository, RetryPolicy};
use serde::Serialize;

use crate::apply::{self, ApplyOptions};
use crate::gate::{self, Offence, Presence};
use crate::metrics::{write_atomic, Metrics};
use crate::push::{self, ImagePush, PushStats};
use crate::render::{self, PlacedImage};
use crate::state::{SequenceCheck, StateDir};
use atp_registry::mapping::{self, Layout, SourceRef};

/// Everything `install` needs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub bundle: PathBuf,
    /// More folders to look for volumes in (`--volumes-from`).
    pub volumes_from: Vec<PathBuf>,
    pub key: PathBuf,
    /// Target registry, `host[:port]`.
    pub registry: String,
    pub plain_http: bool,
    pub registry_ca: Option<PathBuf>,
    pub credentials: Option<(String, String)>,
    pub repo_prefix: Option<String>,
    pub layout: Layout,
    pub concurrency: usize,
    pub render_to: Option<PathBuf>,
    pub apply: Option<ApplyOptions>,
    pub state_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
    pub allow_downgrade: bool,
    /// Retry policy override (tests use fast retries).
    pub retry: Option<RetryPolicy>,
    /// Verify and push in one read of the media (see [`crate::single_pass`]).
    pub single_pass: bool,
    /// Write the bundle's file sets under this folder (`DIR/<set>/<path>`).
    pub model_cache_dir: Option<PathBuf>,
    /// Push the file-set artifacts to the registry, mapped like images.
    pub files_to_registry: bool,
    /// With `model_cache_dir`: remove files the bundle's sets no longer list.
    pub prune: bool,
}

/// One pushed image, for `--json` and the receipt.
#[derive(Debug, Clone, Serialize)]
pub struct PushedImage {
    pub source: String,
    /// The target reference by tag (or by digest when the source had no tag).
    pub target: String,
    pub digest: Digest,
}

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallSummary {
    pub bundle: PathBuf,
    pub index_digest: Digest,
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    pub registry: String,
    pub images: Vec<PushedImage>,
    pub uploaded: u64,
    pub skipped: u64,
    pub mounted: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
    pub rendered: Option<PathBuf>,
    pub objects: Vec<String>,
    pub applied: bool,
    /// What `--model-cache-dir` and `--files-to-registry` did.
    pub model_files: crate::files::FilesOutcome,
    pub result: String,
    pub started: String,
    pub finished: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("bundle {path} failed verification; nothing was pushed:\n{}\nhint: do not install this bundle; get a fresh copy from release engineering", .findings.join("\n"))]
    Rejected {
        path: PathBuf,
        findings: Vec<String>,
    },
    #[error("refusing a rollback on channel {channel:?}: sequence {offered} is not newer than the installed {installed}\nhint: install a newer bundle, or pass --allow-downgrade if going back is intended")]
    Rollback {
        channel: String,
        installed: u64,
        offered: u64,
    },
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error(transparent)]
    Push(#[from] push::PushError),
    #[error("delta bundle relies on {} blob(s) the registry {registry} does not have; nothing was pushed:\n{}\nhint: install the base bundle first ({bases})", .missing.len(), .missing.join("\n"))]
    DeltaBaseMissing {
        registry: String,
        missing: Vec<String>,
        bases: String,
    },
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Kustomize(#[from] atp_bundle::kustomize::RenderError),
    #[error("air-gap gate: {} image field(s) in the rendered output would reach outside the site registry; nothing was applied:\n{}\nhint: every image the manifests use must be in the bundle", .offences.len(), .offences.iter().map(|o| format!("  {o}")).collect::<Vec<_>>().join("\n"))]
    Gate { offences: Vec<Offence> },
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Build the client for the site registry.
pub fn target_client(opts: &InstallOptions) -> Result<Client, InstallError> {
    Ok(site_client(
        &opts.registry,
        opts.plain_http,
        opts.registry_ca.as_deref(),
        opts.credentials.as_ref(),
        opts.concurrency,
        opts.retry.as_ref(),
    )?)
}

/// A client for one site registry with the installer's flags: plain HTTP
/// only when asked, an extra CA, credentials, concurrency and retries.
pub fn site_client(
    registry: &str,
    plain_http: bool,
    ca_file: Option<&std::path::Path>,
    credentials: Option<&(String, String)>,
    concurrency: usize,
    retry: Option<&RetryPolicy>,
) -> Result<Client, atp_registry::Error> {
    let mut copts = ClientOptions {
        concurrency: concurrency.max(1),
        ..ClientOptions::default()
    };
    if let Some(r) = retry {
        copts.retry = r.clone();
    }
    copts.registries.insert(
        registry.to_string(),
        RegistryConfig {
            plain_http,
            ca_file: ca_file.map(Into::into),
            credentials: credentials.map(|(u, p)| Credentials::new(u, p)),
            ..Default::default()
        },
    );
    Client::new(copts)
}

/// Run `install`, counting the run in the metrics whatever the outcome.
pub async fn install(
    opts: &InstallOptions,
    progress: Arc<dyn Progress>,
) -> Result<InstallSummary, InstallError> {
    let state = StateDir::open(&opts.state_dir)?;
    let mut durations = Vec::new();
    let result = run(opts, &state, progress, &mut durations).await;
    let mut metrics = Metrics::load(&state.metrics_path()).unwrap_or_default();
    metrics.record_run(result.is_ok());
    for (image, secs) in durations {
        metrics.observe_image(&image, secs);
    }
    let saved = metrics.save(&state.metrics_path());
    if let Err(e) = saved {
        tracing::warn!("could not save metrics in the state dir: {e}");
    }
    if let Some(path) = &opts.metrics_file {
        metrics
            .write_textfile(path)
            .map_err(|source| InstallError::Io {
                path: path.clone(),
                source,
            })?;
    }
    result
}

/// The plan phase, shared by `install` and `simulate` so both decide the
/// same way: the fully verified bundle, the rollback verdict, the mapping,
/// one push plan per image, and the blobs a delta bundle relies on.
pub struct Prepared {
    pub report: Report,
    pub info: atp_bundle::BundleInfo,
    pub index_digest: Digest,
    pub sequence: SequenceCheck,
    pub locations: HashMap<Digest, BlobLocation>,
    pub images: Vec<TopLevel>,
    /// One per image, in the order of `images`.
    pub plans: Vec<ImagePush>,
    /// Omitted blobs (delta bundle) with the repository that needs them.
    pub relied_on: Vec<(Repository, Digest)>,
    /// The bundle as verified (a tar, volumes or zstd), read in place.
    pub input: Arc<atp_bundle::media::BundleInput>,
    /// Blobs pushed while verifying (`--single-pass` only).
    pub early: PushStats,
}

/// How the rollback check reads the installed sequence.
pub type SequenceLookup<'a> = dyn Fn(&atp_bundle::BundleInfo, &Digest) -> Result<SequenceCheck, crate::state::StateError>
    + Sync
    + 'a;

/// Verify → refuse rollbacks → map → plan every image. Sends nothing.
pub async fn prepare(
    opts: &InstallOptions,
    sequence: &SequenceLookup<'_>,
    progress: Arc<dyn Progress>,
) -> Result<Prepared, InstallError> {
    // 1. Verify everything before any request leaves this machine (or, with
    // --single-pass, push each blob as it verifies; still no manifest yet).
    let (report, input, early) = if opts.single_pass {
        let key = atp_bundle::keys::load_public_file(&opts.key).map_err(|source| {
            crate::verify::VerifyError::Key {
                path: opts.key.clone(),
                source,
            }
        })?;
        let client = target_client(opts)?;
        let (mut report, input, early) =
            crate::single_pass::verify_and_push(opts, &key, &client, progress.clone()).await?;
        report
            .findings
            .extend(crate::verify::volume_findings(&input));
        (report, input, early)
    } else {
        let (bundle, key) = (opts.bundle.clone(), opts.key.clone());
        let volumes_from = opts.volumes_from.clone();
        let p = progress.clone();
        let (report, input) = tokio::task::spawn_blocking(move || {
            let now = time::OffsetDateTime::now_utc();
            crate::verify::verify_input(&bundle, &volumes_from, &key, now, p)
        })
        .await
        .expect("verify task panicked")?;
        (report, input, PushStats::default())
    };
    if !report.is_ok() {
        return Err(InstallError::Rejected {
            path: opts.bundle.clone(),
            findings: report.findings.iter().map(|f| format!("  {f}")).collect(),
        });
    }
    let info = report
        .info
        .clone()
        .expect("a verified bundle has annotations");
    let index_digest = report
        .index_digest
        .clone()
        .expect("a verified bundle has an index digest");

    // 2. Rollback protection.
    let check = sequence(&info, &index_digest)?;
    match check {
        SequenceCheck::Rollback { installed, offered } if !opts.allow_downgrade => {
            return Err(InstallError::Rollback {
                channel: info.channel.clone(),
                installed,
                offered,
            })
        }
        SequenceCheck::Same => tracing::info!("this bundle is already installed; re-checking"),
        _ => {}
    }

    // 3. Plan the push.
    let locations: HashMap<Digest, BlobLocation> = report
        .blobs
        .iter()
        .map(|b| (b.digest.clone(), b.clone()))
        .collect();
    let images: Vec<TopLevel> = report.images().cloned().collect();
    let sources: Vec<SourceRef> = images
        .iter()
        .map(|t| SourceRef::parse(&t.reference))
        .collect::<Result<_, _>>()?;
    let map = mapping::map_repositories(&sources, &opts.layout, opts.repo_prefix.as_deref())?;
    let omitted: HashSet<Digest> = report.omitted.iter().cloned().collect();
    let mut prepared = Prepared {
        report,
        info,
        index_digest,
        sequence: check,
        locations,
        images: Vec::new(),
        plans: Vec::new(),
        relied_on: Vec::new(),
        input: Arc::new(input),
        early,
    };
    let read = |d: &Digest| prepared.read(d);
    let mut plans = Vec::new();
    let mut relied_on = Vec::new();
    for (top, src) in images.iter().zip(&sources) {
        let target = Repository::new(&opts.registry, &map[&src.repository()])?;
        let (plan, relies) = push::plan_image(
            &top.reference,
            target.clone(),
            src.tag.clone(),
            &top.descriptor,
            &read,
            &omitted,
        )?;
        relied_on.extend(relies.into_iter().map(|d| (target.clone(), d)));
        plans.push(plan);
    }
    prepared.images = images;
    prepared.plans = plans;
    prepared.relied_on = relied_on;
    Ok(prepared)
}

impl Prepared {
    /// The bytes of a verified blob of the bundle.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, String> {
        let loc = self
            .locations
            .get(d)
            .ok_or_else(|| format!("blob {d} is not in the bundle"))?;
        let mut buf = vec![0u8; loc.size as usize];
        self.input
            .tar()
            .read_exact_at(&mut buf, loc.data_offset)
            .map_err(|e| format!("reading {d}: {e}"))?;
        Ok(buf)
    }

    /// Every image as it lands in the site registry (for the summary).
    pub fn pushed_images(&self) -> Vec<PushedImage> {
        self.plans
            .iter()
            .map(|p| PushedImage {
                source: p.source.clone(),
                target: match &p.tag {
                    Some(t) => format!("{}:{t}", p.target),
                    None => format!("{}@{}", p.target, p.root.digest),
                },
                digest: p.root.digest.clone(),
            })
            .collect()
    }

    /// Every image as the render step rewrites it.
    pub fn placed_images(&self) -> Vec<PlacedImage> {
        self.images
            .iter()
            .zip(&self.plans)
            .map(|(top, p)| PlacedImage {
                source: top.reference.clone(),
                digest: top.descriptor.digest.clone(),
                source_digest: top
                    .descriptor
                    .annotation(atp_bundle::format::annotation::SOURCE_DIGEST)
                    .and_then(|d| d.parse().ok()),
                target_repo: p.target.to_string(),
            })
            .collect()
    }

    /// The kustomize layer's digest and the overlay path, when the bundle ships manifests.
    pub fn overlay(&self) -> Option<(Digest, String)> {
        let layer = self
            .report
            .top_level
            .iter()
            .find(|t| t.role == role::BUNDLE)
            .and_then(|t| self.read(&t.descriptor.digest).ok())
            .and_then(|b| serde_json::from_slice::<atp_bundle::format::ImageManifest>(&b).ok())
            .and_then(|m| {
                m.layers
                    .into_iter()
                    .find(|l| l.media_type == media::KUSTOMIZE_TAR)
            })?;
        let overlay = self
            .report
            .config
            .as_ref()
            .and_then(|c| c.manifests.as_ref())
            .and_then(|m| m.overlay.clone())?;
        Some((layer.digest, overlay))
    }
}

/// The base bundles a delta relies on (empty for a full bundle).
pub fn delta_bases(prepared: &Prepared) -> Vec<Digest> {
    let config = prepared.report.config.as_ref();
    config
        .and_then(|c| c.delta.as_ref())
        .map(|d| d.bases.clone())
        .unwrap_or_default()
}

/// A delta bundle: every omitted blob must already be in the registry, in
/// its repository or in another one the receipts in the state dir name
/// (mountable from there). HEAD only: changes nothing.
pub async fn check_delta(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
) -> Result<(), InstallError> {
    delta_in_place(client, opts, prepared, false).await
}

/// [`check_delta`], then (with `mount`, and only when nothing is missing)
/// mount each omitted blob found only in another repository.
async fn delta_in_place(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
    mount: bool,
) -> Result<(), InstallError> {
    let relied_on = &prepared.relied_on;
    if relied_on.is_empty() {
        return Ok(());
    }
    let bases = delta_bases(prepared);
    let candidates =
        crate::inventory::receipt_repositories(&opts.state_dir, &opts.registry, &bases)?;
    let missing = crate::inventory::confirm_omitted(client, relied_on, &candidates, mount).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let bases = bases
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(InstallError::DeltaBaseMissing {
        registry: opts.registry.clone(),
        missing,
        bases,
    })
}

/// Render the shipped overlay for this site into `out_dir` (created if
/// needed). `None` when the bundle ships no manifests.
pub fn render_overlay(
    opts: &InstallOptions,
    prepared: &Prepared,
    out_dir: &Path,
) -> Result<Option<render::Rendered>, InstallError> {
    let Some((layer, overlay)) = prepared.overlay() else {
        return Ok(None);
    };
    let tar = prepared.read(&layer).map_err(push::PushError::Bundle)?;
    std::fs::create_dir_all(out_dir).map_err(|source| InstallError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let placed = prepared.placed_images();
    let creds = opts
        .credentials
        .as_ref()
        .map(|(u, p)| (u.as_str(), p.as_str()));
    Ok(Some(render::render(&render::RenderRequest {
        kustomize_tar: &tar,
        overlay: &overlay,
        images: &placed,
        registry: &opts.registry,
        registry_ca: opts.registry_ca.as_deref(),
        credentials: creds,
        image_fields: prepared
            .report
            .config
            .as_ref()
            .map_or(&[], |c| c.image_fields()),
        out_dir,
    })?))
}

async fn run(
    opts: &InstallOptions,
    state: &StateDir,
    progress: Arc<dyn Progress>,
    durations: &mut Vec<(String, f64)>,
) -> Result<InstallSummary, InstallError> {
    let started = time::OffsetDateTime::now_utc();
    let fmt = atp_bundle::format::info::format_time;

    // 1-3. Verify, refuse rollbacks, plan.
    let lookup = |info: &atp_bundle::BundleInfo, index: &Digest| {
        state.check_sequence(
            &info.channel,
            &info.key_fingerprint,
            info.sequence,
            &index.to_string(),
        )
    };
    let prepared = prepare(opts, &lookup, progress.clone()).await?;
    let (report, info, index_digest) = (
        &prepared.report,
        &prepared.info,
        prepared.index_digest.clone(),
    );
    let (plans, locations) = (&prepared.plans, &prepared.locations);
    let client = target_client(opts)?;

    // 3b. A delta bundle: every omitted blob must already be in the registry
    // (or be mountable from a repository the receipts name).
    delta_in_place(&client, opts, &prepared, true).await?;

    // 4. Push: blobs, then manifests, then tags.
    let (mut stats, seconds): (PushStats, Vec<f64>) = push::push_all(
        &client,
        plans,
        &*prepared.input,
        locations,
        opts.concurrency,
        progress.clone(),
    )
    .await?;
    // Blobs pushed while verifying were found in place by push_all.
    let early = &prepared.early;
    stats.skipped = stats.skipped.saturating_sub(early.uploaded + early.mounted);
    stats.uploaded += early.uploaded;
    stats.mounted += early.mounted;
    stats.bytes_uploaded += early.bytes_uploaded;
    for (p, s) in plans.iter().zip(&seconds) {
        durations.push((p.target.to_string(), *s));
    }
    let pushed = prepared.pushed_images();

    // 4b. Model files: file-set artifacts to the registry, files to the cache.
    let read_blob = |d: &Digest| prepared.read(d);
    let model_files = crate::files::install(
        opts,
        report,
        &client,
        locations,
        &read_blob,
        prepared.input.clone(),
        progress.clone(),
    )
    .await?;

    // 5. Render and gate.
    let mut rendered_path = None;
    let mut objects = Vec::new();
    let mut applied = false;
    let out_dir = opts
        .render_to
        .clone()
        .unwrap_or_else(|| state.root().join("render").join(index_digest.hex()));
    if let Some(rendered) = render_overlay(opts, &prepared, &out_dir)? {
        let offences = gate::check(
            &rendered.yaml,
            &opts.registry,
            &rendered.image_fields,
            Presence::Registry(&client),
        )
        .await?;
        if !offences.is_empty() {
            return Err(InstallError::Gate { offences });
        }
        objects = rendered.objects.iter().map(ToString::to_string).collect();
        if let Some(a) = &opts.apply {
            let path = rendered.path.clone();
            let objs = rendered.objects.clone();
            let a = a.clone();
            tokio::task::spawn_blocking(move || apply::apply(&path, &objs, &a))
                .await
                .expect("apply task panicked")?;
            applied = true;
        }
        rendered_path = Some(rendered.path);
    }

    // 6. Record.
    let summary = InstallSummary {
        bundle: opts.bundle.clone(),
        index_digest: index_digest.clone(),
        name: info.name.clone(),
        version: info.version.clone(),
        channel: info.channel.clone(),
        sequence: info.sequence,
        registry: opts.registry.clone(),
        images: pushed,
        uploaded: stats.uploaded,
        skipped: stats.skipped,
        mounted: stats.mounted,
        bytes_uploaded: stats.bytes_uploaded,
        manifests_pushed: stats.manifests_pushed,
        manifests_skipped: stats.manifests_skipped,
        rendered: rendered_path,
        objects,
        applied,
        model_files,
        result: "success".into(),
        started: fmt(started),
        finished: fmt(time::OffsetDateTime::now_utc()),
    };
    let receipt = state.receipt_path(index_digest.hex());
    write_receipt(&receipt, &summary, report)?;
    state.record_installed(
        &info.channel,
        &info.key_fingerprint,
        info.sequence,
        &index_digest.to_string(),
    )?;
    Ok(summary)
}

fn write_receipt(
    path: &Path,
    summary: &InstallSummary,
    report: &Report,
) -> Result<(), InstallError> {
    let files = report
        .config
        .as_ref()
        .map(|c| serde_json::to_value(&c.files).unwrap_or_default())
        .unwrap_or_default();
    let blobs: Vec<String> = report.blobs.iter().map(|b| b.digest.to_string()).collect();
    let mut v = serde_json::to_value(summary).expect("summary serializes");
    v["files"] = files;
    v["blobs"] = serde_json::to_value(blobs).expect("strings serialize");
    v["omitted"] = serde_json::to_value(&report.omitted).expect("digests serialize");
    let bytes = serde_json::to_vec_pretty(&v).expect("json");
    write_atomic(path, &bytes, 0o644).map_err(|source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    })
}
