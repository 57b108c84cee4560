//! `atp-installer install`: pre-flight (flags and output paths) → verify →
//! refuse rollbacks → plan → tools → delta check → copy (the registry copy
//! engine; images, then their referrers, cosign's by digest) → the cosign
//! tags, merged with the site's own, and the referrers' fallback tag
//! indexes → model files → render → air-gap gate → apply (optional) →
//! receipt and metrics.
//!
//! Fail closed: nothing is sent to the registry until the whole bundle has
//! verified (with `--single-pass`, blobs go as each verifies, but no
//! manifest, no tag, until all of it has), and nothing is rendered or
//! applied unless every image is in place. Every run, refusals included,
//! is counted in the metrics.

use std::collections::HashSet;
use std::sync::Arc;

use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use atp_registry::copy::{self, CopyStats};
use serde::Serialize;

pub use crate::error::InstallError;
use crate::gate::{self, Presence};
use crate::metrics::Metrics;
pub use crate::options::{FilesOptions, InstallOptions};
use crate::preflight::Probe;
use crate::prepare::{self, IndexOutcome, Prepared, TagOutcome};
pub use crate::prepare::{PushedReferrer, ReferrersOutcome};
use crate::state::{IndexEntry, PushedImage, Receipt, StateDir, RECEIPT_FORMAT};
use crate::verified::VerifiedBundle;

pub mod timings;
use timings::Clock;
pub use timings::Timings;

/// What an install did (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct InstallSummary {
    pub bundle: std::path::PathBuf,
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
    pub rendered: Option<std::path::PathBuf>,
    pub objects: Vec<String>,
    pub applied: bool,
    /// The secrets the render generated (none without credentials or a CA).
    pub secrets: Vec<crate::render::GeneratedSecret>,
    /// What `--model-cache-dir` and `--files-to-registry` did.
    pub model_files: crate::files::FilesOutcome,
    /// The carried referrers pushed, and the fallback indexes kept.
    pub referrers: ReferrersOutcome,
    pub result: String,
    pub started: String,
    pub finished: String,
    /// Wall time per phase, in milliseconds (the profile of this run).
    pub timings_ms: Timings,
}

/// After the copy: write each carried cosign tag, merged with the site's
/// own cosign manifest under it (never replacing it), then keep the
/// fallback tag index of every subject that got OCI referrers, one subject
/// at a time, merging with what is there (`atp_registry::referrers`).
///
/// Also returns the fallback index entries this run added (for the
/// receipt, so `uninstall --prune-registry` takes out only those).
pub(crate) async fn referrer_indexes(
    client: &atp_registry::Client,
    prepared: &Prepared,
) -> Result<(ReferrersOutcome, Vec<IndexEntry>), InstallError> {
    use atp_registry::referrers::{
        fallback_tag, update_cosign_tag, update_fallback_index, CosignUpdate, FallbackUpdate,
    };
    let mut out = ReferrersOutcome {
        pushed: prepared.pushed_referrers(),
        ..Default::default()
    };
    for (repo, tag, bytes, media_type) in prepared.cosign_tags() {
        let outcome = match update_cosign_tag(client, repo, tag, bytes, media_type).await? {
            CosignUpdate::Written(_) => "written",
            CosignUpdate::Merged { .. } => "merged",
            CosignUpdate::Unchanged => "unchanged",
        };
        out.tags.push(TagOutcome {
            tag: format!("{repo}:{tag}"),
            outcome,
        });
    }
    let mut added = Vec::new();
    for (repo, subject, add) in prepared.fallback_additions() {
        let outcome = match update_fallback_index(client, repo, subject, &add).await? {
            FallbackUpdate::Written { added: new, .. } => {
                added.extend(new.into_iter().map(|digest| IndexEntry {
                    repository: repo.to_string(),
                    subject: subject.clone(),
                    digest,
                }));
                "written"
            }
            FallbackUpdate::Unchanged => "unchanged",
            FallbackUpdate::ApiSupported => "referrers-api",
        };
        out.indexes.push(IndexOutcome {
            index: format!("{repo}:{}", fallback_tag(subject)),
            outcome,
        });
    }
    Ok((out, added))
}

/// Run `install`, counting the run in the metrics whatever the outcome
/// (an interruption included). A run that pre-flight stops never started:
/// nothing is counted, nothing is sent.
pub async fn install(
    opts: &InstallOptions,
    progress: Arc<dyn Progress>,
) -> Result<InstallSummary, InstallError> {
    let begun = std::time::Instant::now();
    let problems = crate::preflight::check(opts, Probe::Write);
    if !problems.is_empty() {
        return Err(InstallError::Preflight { problems });
    }
    let state = StateDir::open(&opts.state_dir)?;
    let mut durations = Vec::new();
    // SIGINT (Ctrl-C) ends the run here, not the process: the uploads in
    // flight are dropped (the registry keeps what it committed), and the
    // run is counted as failed before the caller exits.
    let result = tokio::select! {
        r = run(opts, &state, progress, &mut durations) => r,
        _ = tokio::signal::ctrl_c() => Err(InstallError::Interrupted),
    };
    let metrics_started = std::time::Instant::now();
    let mut metrics = Metrics::load_or_set_aside(&state.metrics_path());
    metrics.record_run(result.is_ok());
    for (image, secs) in durations {
        metrics.observe_image(&image, secs);
    }
    let saved = metrics.save(&state.metrics_path());
    if let Err(e) = saved {
        tracing::warn!("could not save metrics in the state dir: {e}");
    }
    if let Some(path) = &opts.metrics_file {
        let written = metrics
            .write_textfile(path)
            .map_err(|source| InstallError::Io {
                path: path.clone(),
                source,
            });
        // The run's own error comes first; a textfile that could not be
        // written is then only a warning.
        match (&result, written) {
            (Ok(_), Err(e)) => return Err(e),
            (Err(_), Err(e)) => tracing::warn!("{e}"),
            _ => {}
        }
    }
    let mut result = result;
    if let Ok(summary) = &mut result {
        let t = &mut summary.timings_ms;
        t.state = timings::round(t.state + timings::ms(metrics_started.elapsed()));
        t.total = timings::ms(begun.elapsed());
    }
    result
}

/// `--single-pass`: verify and push blobs in one read of the media. Returns
/// the verified bundle and what was pushed on the way.
async fn verify_pushing(
    opts: &InstallOptions,
    client: &atp_registry::Client,
    progress: Arc<dyn Progress>,
) -> Result<(VerifiedBundle, CopyStats), InstallError> {
    let key = atp_bundle::keys::load_public_file(&opts.key).map_err(|source| {
        crate::verify::VerifyError::Key {
            path: opts.key.clone(),
            source,
        }
    })?;
    use crate::single_pass::SinglePassError as E;
    let (mut report, input, early) = crate::single_pass::verify_and_push(
        &opts.bundle,
        &opts.volumes_from,
        &key,
        &opts.site,
        client,
        progress,
    )
    .await
    .map_err(|e| match e {
        E::Verify(e) => InstallError::Verify(e),
        E::Mapping(e) => InstallError::Mapping(e),
        E::Registry(e) => InstallError::Registry(e),
        E::Copy(e) => InstallError::Copy(e),
    })?;
    report
        .findings
        .extend(crate::verify::volume_findings(&input));
    Ok((prepare::accept(opts, report, input)?, early))
}

async fn run(
    opts: &InstallOptions,
    state: &StateDir,
    progress: Arc<dyn Progress>,
    durations: &mut Vec<(String, f64)>,
) -> Result<InstallSummary, InstallError> {
    let started = time::OffsetDateTime::now_utc();
    let mut clock = Clock::start();
    let mut t = Timings::default();
    let fmt = atp_bundle::format::info::format_time;
    let site = &opts.site;
    let client = site.client()?;
    if opts.single_pass {
        // Requests start while verifying: every tool the run will start is
        // looked for now (kubectl renders a bundle that ships manifests).
        crate::single_pass::check_tools(opts)
            .map_err(|e| InstallError::Preflight { problems: vec![e] })?;
    }

    // 1. Verify everything before any request leaves this machine (or, with
    // --single-pass, push each blob as it verifies; still no manifest yet).
    let (bundle, early) = if opts.single_pass {
        verify_pushing(opts, &client, progress.clone()).await?
    } else {
        (
            prepare::verify(opts, progress.clone()).await?,
            CopyStats::default(),
        )
    };
    t.verify = clock.lap();

    // 2-3. Refuse rollbacks, plan.
    let lookup = |info: &atp_bundle::BundleInfo, index: &Digest| {
        state.check_sequence(
            &info.channel,
            &info.key_fingerprint,
            info.sequence,
            &index.to_string(),
        )
    };
    let prepared = prepare::prepare(bundle, site, &lookup, opts.allow_downgrade)?;

    // 3a. Every tool the rest of the run starts, before any request (with
    // --single-pass, before any manifest): kubectl renders the manifests.
    let ships_manifests = prepared.overlay()?.is_some();
    crate::preflight::check_tools(ships_manifests, opts.apply.is_some())
        .map_err(|e| InstallError::Preflight { problems: vec![e] })?;
    let plan = prepared.push_plan();
    t.plan = clock.lap();

    // 3b. A delta bundle: every omitted blob must already be in the registry
    // (or be mountable from a repository the receipts name).
    crate::delta::check(&client, &opts.state_dir, &prepared, true).await?;
    // 3c. One HEAD of each image's root reference (read only).
    let roots = copy::check_roots(&client, &plan, site.concurrency).await?;
    t.registry_check = clock.lap();

    // 4. Copy: blobs, then manifests, then tags.
    // A cosign-tagged referrer goes by digest here; its tag is merged in 4a.
    let done = copy::execute_checked(
        &client,
        &plan,
        roots,
        &prepared.bundle,
        site.concurrency,
        "push",
        progress.clone(),
    )
    .await?;
    t.copy = clock.lap();
    // Blobs pushed while verifying were found in place by the copy.
    let mut stats = done.stats.clone();
    stats.skipped = stats.skipped.saturating_sub(early.uploaded + early.mounted);
    stats.uploaded += early.uploaded;
    stats.mounted += early.mounted;
    stats.bytes_uploaded += early.bytes_uploaded;
    for (p, s) in prepared.plan.images.iter().zip(&done.seconds) {
        durations.push((p.target.to_string(), *s));
    }
    // 4a. Referrers: each cosign tag, merged with the site's own cosign
    // manifest there; the fallback tag index of each subject, where the site
    // registry has no referrers API (one PUT each, only on a change).
    let (referrers, mut index_entries) = referrer_indexes(&client, &prepared).await?;
    // A re-install rewrites this bundle's receipt: keep what an earlier run
    // of it added (this run found those entries already there).
    if let Some(earlier) = state.read_receipt(&prepared.index_digest) {
        index_entries.extend(earlier.index_entries);
    }
    index_entries.sort();
    index_entries.dedup();
    t.referrers = clock.lap();

    // 4b. Model files: file-set artifacts to the registry, files to the cache.
    let model_files = crate::files::install(
        &opts.files,
        site,
        &client,
        &prepared.bundle,
        progress.clone(),
    )
    .await?;
    t.files = clock.lap();

    // 5. Render and gate.
    let (rendered, objects, applied, secrets) =
        render_and_apply(opts, state, &prepared, &client, &mut clock, &mut t).await?;
    // 5a. Keep a digest-pinned copy in the state dir, for rollback.
    let kept_render = rendered
        .as_deref()
        .map(|p| state.keep_render(&prepared.index_digest, p))
        .transpose()?;
    let kept_ms = clock.lap();

    // 6. Record.
    let (info, report) = (&prepared.info, &prepared.bundle.report);
    let summary = InstallSummary {
        bundle: opts.bundle.clone(),
        index_digest: prepared.index_digest.clone(),
        name: info.name.clone(),
        version: info.version.clone(),
        channel: info.channel.clone(),
        sequence: info.sequence,
        registry: site.registry.clone(),
        images: prepared.pushed_images(),
        uploaded: stats.uploaded,
        skipped: stats.skipped,
        mounted: stats.mounted,
        bytes_uploaded: stats.bytes_uploaded,
        manifests_pushed: stats.manifests_pushed,
        manifests_skipped: stats.manifests_skipped,
        rendered,
        objects,
        applied,
        secrets,
        model_files,
        referrers,
        result: "success".into(),
        started: fmt(started),
        finished: fmt(time::OffsetDateTime::now_utc()),
        timings_ms: Timings::default(),
    };
    state.write_receipt(&Receipt {
        receipt_format: RECEIPT_FORMAT,
        index_digest: summary.index_digest.clone(),
        name: summary.name.clone(),
        version: summary.version.clone(),
        channel: summary.channel.clone(),
        sequence: summary.sequence,
        registry: summary.registry.clone(),
        images: summary.images.clone(),
        referrers: prepared.placed_referrers(),
        index_entries,
        copy: stats,
        rendered: summary.rendered.clone(),
        objects: summary.objects.clone(),
        applied,
        model_files: serde_json::to_value(&summary.model_files).unwrap_or_default(),
        result: summary.result.clone(),
        started: summary.started.clone(),
        finished: summary.finished.clone(),
        files: report
            .config
            .as_ref()
            .map(|c| c.files.clone())
            .unwrap_or_default(),
        blobs: report.blobs.iter().map(|b| b.digest.clone()).collect(),
        omitted: report.omitted.clone(),
        key_fingerprint: Some(info.key_fingerprint.clone()),
        kept_render,
    })?;
    state.record_installed(
        &info.channel,
        &info.key_fingerprint,
        info.sequence,
        &prepared.index_digest.to_string(),
    )?;
    // 7. Node mirror configuration (--mirrors-to), from the same mapping.
    crate::mirrors::write_for(&prepared, opts).map_err(InstallError::MirrorsAfterInstall)?;
    t.state = timings::round(kept_ms + clock.lap());
    let mut summary = summary;
    summary.timings_ms = t;
    Ok(summary)
}

/// Render the overlay (into `--render-to` or the state dir), gate it
/// against the registry, and apply it when asked. Returns the rendered
/// file, its objects, whether it was applied, and the secrets it generated.
async fn render_and_apply(
    opts: &InstallOptions,
    state: &StateDir,
    prepared: &Prepared,
    client: &atp_registry::Client,
    clock: &mut Clock,
    t: &mut Timings,
) -> Result<
    (
        Option<std::path::PathBuf>,
        Vec<String>,
        bool,
        Vec<crate::render::GeneratedSecret>,
    ),
    InstallError,
> {
    let out_dir = opts.render_to.clone().unwrap_or_else(|| {
        state
            .root()
            .join("render")
            .join(prepared.index_digest.hex())
    });
    if opts.render_to.is_none() {
        adopt_state_render_dir(&out_dir)?;
    }
    let rendered = prepared.render_overlay(&opts.site, &out_dir)?;
    t.render = clock.lap();
    let Some(rendered) = rendered else {
        return Ok((None, Vec::new(), false, Vec::new()));
    };
    // Every manifest of the plan is in place now: the copy wrote it, or the
    // registry said it was there. The gate asks only about the rest.
    let placed: HashSet<(String, Digest)> = prepared
        .plan
        .images
        .iter()
        .flat_map(|img| {
            img.manifests
                .iter()
                .map(|(d, _)| (img.target.name().to_string(), d.digest.clone()))
        })
        .collect();
    let offences = gate::check(
        &rendered.yaml,
        &opts.site.registry,
        &rendered.image_fields,
        Presence::Copied {
            client,
            placed: &placed,
        },
    )
    .await?;
    t.gate = clock.lap();
    if !offences.is_empty() {
        return Err(InstallError::Gate { offences });
    }
    let objects = rendered.objects.iter().map(ToString::to_string).collect();
    let mut applied = false;
    if let Some(a) = &opts.apply {
        let path = rendered.path.clone();
        let objs = rendered.objects.clone();
        let a = a.clone();
        tokio::task::spawn_blocking(move || crate::apply::apply(&path, &objs, &a))
            .await
            .expect("apply task panicked")?;
        applied = true;
    }
    t.apply = clock.lap();
    Ok((Some(rendered.path), objects, applied, rendered.secrets))
}

/// The render dir inside the state dir is the installer's own, whoever made
/// it: a render left there by an installer from before the marker existed
/// gets the marker, so that a re-run replaces it instead of refusing. A
/// link or a file there is still refused by the render.
fn adopt_state_render_dir(out_dir: &std::path::Path) -> Result<(), InstallError> {
    let is_dir = std::fs::symlink_metadata(out_dir).is_ok_and(|m| m.is_dir());
    let marker = out_dir.join(crate::render::MARKER);
    if is_dir && std::fs::symlink_metadata(&marker).is_err() {
        std::fs::write(&marker, b"").map_err(|source| InstallError::Io {
            path: marker,
            source,
        })?;
    }
    Ok(())
}
