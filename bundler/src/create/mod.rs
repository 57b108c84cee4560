//! `atp-bundler create`: spec → resolved images, rendered overlay, file sets →
//! one signed bundle.
//!
//! Order of work: resolve every manifest first (small) and run the
//! completeness check on the rendered overlay ([`crate::gather`]), pack the
//! kustomize tree ([`kustomize_tree`]), assemble and sign `index.json`, plan the
//! whole archive, then stream every blob straight into its place in the
//! output, several at a time, each checked by size and digest as it lands
//! ([`blobs`]). The output appears under its final name only after a full
//! re-read.

mod blobs;
mod kustomize_tree;
mod timings;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::assemble::{self, BundlePlan, ImageInput};
use atp_bundle::format::{BundleInfo, ManifestsRoot};
use atp_bundle::media::write::{MediaOptions, MediaOutput, MediaWriteError};
use atp_bundle::progress::Progress;
use atp_bundle::{keys, BundleWriter, Digest, SignedIndex};
use atp_registry::{Client, ClientOptions, RegistryConfig};
use futures_util::{StreamExt, TryStreamExt};

use crate::gather::{self, GatherError};
use crate::spec::Spec;
use blobs::{fill, BlobFrom};
use kustomize_tree::kustomize_files;
pub use timings::Timings;
use timings::{ms, Lap};

/// Everything `create` needs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub spec: PathBuf,
    pub key: PathBuf,
    pub password: String,
    pub output: PathBuf,
    /// Source registries (`host[:port]`) that speak plain HTTP.
    pub plain_http: Vec<String>,
    /// Overrides `spec.platforms` when not empty.
    pub platforms: Vec<String>,
    /// Blob transfers in flight.
    pub concurrency: usize,
    /// `SOURCE_DATE_EPOCH`: the bundle's creation time, for reproducible output.
    pub source_date_epoch: Option<i64>,
    /// Make a delta: leave out the layers these bases and inventories hold.
    pub delta: crate::delta::DeltaSources,
    /// Volumes and compression (`--split-size`, `--compress`); plain when
    /// neither is asked for.
    pub media: MediaOptions,
    /// `--with-installer`: the installer binary to carry beside the bundle
    /// (listed in `volumes.json` when there are volumes).
    pub installer: Option<PathBuf>,
    /// `--referrers`: overrides `spec.referrers.mode` when given.
    pub referrers: Option<crate::spec::ReferrerMode>,
}

/// What `create` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreateSummary {
    pub output: PathBuf,
    pub index_digest: Digest,
    pub size: u64,
    pub images: Vec<ImageSummary>,
    pub files: usize,
    pub blobs: usize,
    /// Layers a delta leaves out, and their bytes.
    pub omitted: usize,
    pub omitted_bytes: u64,
    /// The volumes, when `media` asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaOutput>,
    /// Where the carried installer was written (`--with-installer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installer: Option<PathBuf>,
    /// Wall time of each phase, in milliseconds (the profile of this run).
    #[serde(rename = "timings_ms")]
    pub timings: Timings,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageSummary {
    pub reference: String,
    pub digest: Digest,
    pub platforms: Vec<String>,
    /// The referrers carried with it (signatures, attestations, SBOMs).
    pub referrers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("signing key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: keys::KeyError,
    },
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("kustomize root {path}: {message}")]
    Manifests { path: PathBuf, message: String },
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error(transparent)]
    Plan(#[from] assemble::PlanError),
    #[error(transparent)]
    Write(#[from] atp_bundle::WriteError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error("blob {digest} from {from}: {message}")]
    Blob {
        digest: Digest,
        from: String,
        message: String,
    },
    #[error(transparent)]
    Delta(#[from] crate::delta::DeltaError),
    #[error("invalid SOURCE_DATE_EPOCH {0}")]
    Epoch(i64),
    #[error("spec {spec}: spec.expires {expires} has passed (it is now {now}); every site would refuse the bundle\nhint: set a later spec.expires, or remove it")]
    Expired {
        spec: PathBuf,
        expires: String,
        now: String,
    },
    #[error(transparent)]
    Media(#[from] MediaWriteError),
    #[error("{path}: {source}")]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] crate::referrers::cosign::UpstreamError),
}

/// Build a registry client for source registries.
pub fn source_client(plain_http: &[String], concurrency: usize) -> Result<Client, CreateError> {
    let mut opts = ClientOptions {
        concurrency: concurrency.max(1),
        ..ClientOptions::default()
    };
    for host in plain_http {
        opts.registries.insert(
            host.clone(),
            RegistryConfig {
                plain_http: true,
                ..Default::default()
            },
        );
    }
    Ok(Client::new(opts)?)
}

/// Run `create`. With `opts.media` asking for volumes or compression, the
/// bundle is written into a staging folder beside the output first, then
/// cut into the final volumes (`volumes`); the summary's `output` is
/// then the `volumes.json`, which every command that takes a bundle accepts.
/// The signing key is decrypted once, here.
pub async fn create(
    opts: &CreateOptions,
    progress: Arc<dyn Progress>,
) -> Result<CreateSummary, CreateError> {
    let started = std::time::Instant::now();
    let spec = Spec::load(&opts.spec)?;
    let now = time::OffsetDateTime::now_utc();
    if let Some(expires) = spec.expires.filter(|e| *e <= now) {
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.to_string())
        };
        return Err(CreateError::Expired {
            spec: opts.spec.clone(),
            expires: rfc3339(expires),
            now: rfc3339(now.replace_nanosecond(0).unwrap_or(now)),
        });
    }
    let signing =
        keys::load_private_file(&opts.key, &opts.password).map_err(|source| CreateError::Key {
            path: opts.key.clone(),
            source,
        })?;
    // A plain bundle with --with-installer still gets a signed volumes.json
    // (one volume: the tar itself), so `verify-media` can vouch for the
    // binary beside it.
    if opts.media.is_plain() && opts.installer.is_none() {
        let mut summary = write_bundle(opts, &spec, &signing, &opts.output, progress).await?;
        summary.timings.total = ms(started.elapsed());
        return Ok(summary);
    }
    let (staging, tar) = volumes::staging(&opts.output)?;
    let mut summary = write_bundle(opts, &spec, &signing, &tar, progress.clone()).await?;
    let cutting = std::time::Instant::now();
    let written = volumes::write(
        &tar,
        &opts.output,
        opts.media,
        &summary.index_digest,
        opts.installer.as_deref(),
        signing,
        progress,
    )
    .await?;
    drop(staging);
    summary.installer = written.installer.clone();
    // A plain tar is still the bundle to name (`--simulate` checks it).
    summary.output = match opts.media.is_plain() {
        true => opts.output.clone(),
        false => written.volumes_json.clone(),
    };
    summary.media = Some(written);
    summary.timings.volumes = ms(cutting.elapsed());
    summary.timings.total = ms(started.elapsed());
    Ok(summary)
}

/// Write the plain bundle to `output`.
async fn write_bundle(
    opts: &CreateOptions,
    spec: &Spec,
    signing: &p256::ecdsa::SigningKey,
    output: &Path,
    progress: Arc<dyn Progress>,
) -> Result<CreateSummary, CreateError> {
    let mut timings = Timings::default();
    let mut lap = Lap::start();
    let client = source_client(&opts.plain_http, opts.concurrency)?;
    let platforms = if opts.platforms.is_empty() {
        spec.platforms.clone()
    } else {
        opts.platforms.clone()
    };
    let created = match opts.source_date_epoch {
        Some(e) => {
            time::OffsetDateTime::from_unix_timestamp(e).map_err(|_| CreateError::Epoch(e))?
        }
        None => {
            let now = time::OffsetDateTime::now_utc();
            now.replace_nanosecond(0).unwrap_or(now)
        }
    };

    let mut images = gather::gather(
        &spec.images,
        spec.manifests.as_ref(),
        &client,
        &platforms,
        opts.concurrency,
        &|r| Ok(gather::from_registry(r)),
    )
    .await?;
    timings.resolve = lap.lap();
    crate::referrers::cosign::verify_spec(spec, &images).await?;
    let mut referrers = spec.referrers.clone();
    if let Some(mode) = opts.referrers {
        referrers.mode = mode;
    }
    gather::attach_referrers(&mut images, &referrers, opts.concurrency).await?;
    timings.referrers = lap.lap();

    let mut kustomize_layer = None;
    if let Some(m) = &spec.manifests {
        let files = kustomize_files(&m.root)?;
        let root_name = m
            .root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "manifests".into());
        let tar = atp_bundle::format::ustar::encode_archive(
            &files,
            created.unix_timestamp().max(0) as u64,
        )
        .map_err(|e| CreateError::Manifests {
            path: m.root.clone(),
            message: e.to_string(),
        })?;
        kustomize_layer = Some((
            ManifestsRoot {
                root: root_name,
                overlay: Some(m.overlay.clone()),
                image_fields: m.image_fields.iter().map(|f| f.to_bundle()).collect(),
            },
            tar,
        ));
    }

    let scanned = crate::files::scan(&spec.files)?;
    let delta = crate::delta::for_create(&opts.delta, &images, &scanned.sets)?;

    let plan = BundlePlan {
        info: BundleInfo {
            name: spec.name.clone(),
            version: spec.version.clone(),
            channel: spec.channel.clone(),
            sequence: spec.sequence,
            created,
            expires: spec.expires,
            key_fingerprint: String::new(),
            platforms: platforms.clone(),
            delta: false,
        },
        images: images
            .iter()
            .map(|i| ImageInput {
                reference: i.reference.clone(),
                descriptor: i.root.clone(),
                source_digest: i.source_digest.clone(),
                platforms: i.platforms.clone(),
                used_by: i.used_by.clone(),
                referrers: i
                    .referrers
                    .iter()
                    .map(|r| assemble::ReferrerInput {
                        descriptor: r.descriptor.clone(),
                        subject: r.subject.clone(),
                        tag: r.tag.clone(),
                    })
                    .collect(),
            })
            .collect(),
        file_sets: scanned.sets.clone(),
        kustomize: kustomize_layer,
        delta: delta.as_ref().map(|(d, _)| d.clone()),
    };
    let assembled = assemble::assemble(&plan, signing)?;

    // Where each blob of the archive comes from.
    let mut from: HashMap<Digest, BlobFrom> = HashMap::new();
    let mut manifests: HashMap<Digest, Vec<u8>> = HashMap::new();
    for (d, bytes) in &assembled.generated {
        manifests.insert(d.clone(), bytes.clone());
        from.insert(d.clone(), BlobFrom::Memory(Arc::new(bytes.clone())));
    }
    for img in &images {
        for (d, bytes) in &img.manifests {
            manifests.insert(d.clone(), bytes.clone());
            from.entry(d.clone())
                .or_insert_with(|| BlobFrom::Memory(Arc::new(bytes.clone())));
        }
        for d in img.blobs.keys() {
            from.entry(d.clone())
                .or_insert_with(|| BlobFrom::Origin(img.origin.clone()));
        }
    }
    for (d, p) in &scanned.paths {
        from.entry(d.clone())
            .or_insert_with(|| BlobFrom::File(p.clone()));
    }
    let omitted: HashSet<Digest> = plan.delta.iter().flat_map(|d| d.omitted.clone()).collect();
    let order = assemble::blob_order(&assembled.index, &manifests, &omitted)?;

    let signed = SignedIndex {
        index_json: assembled.index_json.clone(),
        signature: assembled.signature.clone(),
    };
    let writer = BundleWriter::create(output, &signed, &order)?;
    timings.plan = lap.lap();
    let total: u64 = order.iter().map(|(_, s)| s).sum();
    progress.phase("create", total, order.len() as u64);
    let writer = Arc::new(writer);
    futures_util::stream::iter(order.iter().cloned().map(|(digest, size)| {
        let writer = writer.clone();
        let source = from.get(&digest).cloned();
        let progress = progress.clone();
        async move {
            let source = source.ok_or_else(|| CreateError::Blob {
                digest: digest.clone(),
                from: "plan".into(),
                message: "no source holds this blob".into(),
            })?;
            let slot = writer.slot(&digest)?;
            fill(slot, &digest, size, source, progress.clone()).await?;
            progress.item_done(&digest.to_string());
            Ok::<(), CreateError>(())
        }
    }))
    .buffer_unordered(opts.concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    progress.finish_phase();
    timings.download = lap.lap();

    let writer = Arc::into_inner(writer).expect("all blob tasks finished");
    let verifying = *signing.verifying_key();
    let (report, commit) = tokio::task::spawn_blocking(move || {
        writer.commit_timed(
            &verifying,
            time::OffsetDateTime::now_utc(),
            &atp_bundle::progress::NoProgress,
        )
    })
    .await
    .expect("commit task panicked")?;
    timings.commit = lap.lap();
    timings.fsync = ms(commit.fsync);
    timings.read_back = ms(commit.read_back);
    timings.rename = ms(commit.rename);

    Ok(CreateSummary {
        output: output.to_path_buf(),
        index_digest: Digest::of(&assembled.index_json),
        size: report.total_bytes,
        images: images
            .iter()
            .map(|i| ImageSummary {
                reference: i.reference.clone(),
                digest: i.root.digest.clone(),
                platforms: i.platforms.clone(),
                // As carried: a referrer two images share is counted once.
                referrers: assembled
                    .config
                    .images
                    .iter()
                    .find(|e| e.reference == i.reference)
                    .map_or(0, |e| e.referrers.len()),
            })
            .collect(),
        files: scanned.sets.iter().map(|s| s.files.len()).sum(),
        blobs: order.len(),
        omitted: omitted.len(),
        omitted_bytes: delta.map_or(0, |(_, n)| n),
        media: None,
        installer: None,
        timings,
    })
}
