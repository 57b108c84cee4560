//! `atp-bundler create`: spec → resolved images, rendered overlay, file sets →
//! one signed bundle.
//!
//! Order of work: resolve every manifest first (small), run the completeness
//! gate on the rendered overlay, assemble and sign `index.json`, plan the
//! whole archive, then stream every blob straight into its place in the
//! output, several at a time, each checked by size and digest as it lands.
//! The output appears under its final name only after a full re-read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use atp_bundle::format::{BundleInfo, ManifestsRoot};
use atp_bundle::model::{self, BundlePlan, ImageInput};
use atp_bundle::progress::Progress;
use atp_bundle::{keys, BlobSlot, BundleWriter, Digest, SignedIndex};
use atp_registry::{Client, ClientOptions, RegistryConfig};
use futures_util::{StreamExt, TryStreamExt};
use std::io::Write;

use crate::resolve::{self, Origin, ResolvedImage};
use crate::spec::{ImageSource, ImageSpec, Spec};
use atp_bundle::kustomize::{self, ExtraField, ImageUse};

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
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageSummary {
    pub reference: String,
    pub digest: Digest,
    pub platforms: Vec<String>,
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
    Resolve(#[from] resolve::ResolveError),
    #[error(transparent)]
    Render(#[from] kustomize::RenderError),
    #[error("the overlay uses {} image(s) the bundle does not carry:\n{}\nhint: add them to spec.images, or set spec.manifests.discoverImages: true", .missing.len(), .missing.join("\n"))]
    Incomplete { missing: Vec<String> },
    #[error("overlay object {object} has image {image:?} in {field}, which is not a valid reference: {source}")]
    BadImage {
        object: String,
        field: String,
        image: String,
        #[source]
        source: atp_registry::Error,
    },
    #[error("kustomize root {path}: {message}")]
    Manifests { path: PathBuf, message: String },
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error(transparent)]
    Plan(#[from] model::PlanError),
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

/// Run `create`.
pub async fn create(
    opts: &CreateOptions,
    progress: Arc<dyn Progress>,
) -> Result<CreateSummary, CreateError> {
    let spec = Spec::load(&opts.spec)?;
    let signing =
        keys::load_private_file(&opts.key, &opts.password).map_err(|source| CreateError::Key {
            path: opts.key.clone(),
            source,
        })?;
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

    let mut images = resolve_all(&spec.images, &client, &platforms, opts.concurrency).await?;

    // Render the overlay and hold it against what the bundle carries.
    let mut kustomize_layer = None;
    if let Some(m) = &spec.manifests {
        let uses = rendered_images(&m.root.join(&m.overlay), &m.image_fields)?;
        let mut missing = gate(&uses, &mut images)?;
        if !missing.is_empty() && m.discover_images {
            let extra: Vec<ImageSpec> = missing
                .keys()
                .map(|r| ImageSpec {
                    source: ImageSource::Registry(r.clone()),
                    name: None,
                })
                .collect();
            tracing::info!(
                "discoverImages: adding {} image(s) from the overlay",
                extra.len()
            );
            images.extend(resolve_all(&extra, &client, &platforms, opts.concurrency).await?);
            missing = gate(&uses, &mut images)?;
        }
        if !missing.is_empty() {
            return Err(CreateError::Incomplete {
                missing: missing
                    .iter()
                    .map(|(img, users)| format!("  {img} (used by {})", users.join(", ")))
                    .collect(),
            });
        }
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
            })
            .collect(),
        file_sets: scanned.sets.clone(),
        kustomize: kustomize_layer,
        delta: delta.as_ref().map(|(d, _)| d.clone()),
    };
    let assembled = model::assemble(&plan, &signing)?;

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
    let order = model::blob_order(&assembled.index, &manifests, &omitted)?;

    let signed = SignedIndex {
        index_json: assembled.index_json.clone(),
        signature: assembled.signature.clone(),
    };
    let writer = BundleWriter::create(&opts.output, &signed, &order)?;
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

    let writer = Arc::into_inner(writer).expect("all blob tasks finished");
    let verifying = *signing.verifying_key();
    let report = tokio::task::spawn_blocking(move || {
        writer.commit(&verifying, time::OffsetDateTime::now_utc())
    })
    .await
    .expect("commit task panicked")?;

    Ok(CreateSummary {
        output: opts.output.clone(),
        index_digest: Digest::of(&assembled.index_json),
        size: report.total_bytes,
        images: images
            .iter()
            .map(|i| ImageSummary {
                reference: i.reference.clone(),
                digest: i.root.digest.clone(),
                platforms: i.platforms.clone(),
            })
            .collect(),
        files: scanned.sets.iter().map(|s| s.files.len()).sum(),
        blobs: order.len(),
        omitted: omitted.len(),
        omitted_bytes: delta.map_or(0, |(_, n)| n),
    })
}

/// Resolve images concurrently, keeping spec order, dropping repeats.
pub(crate) async fn resolve_all(
    specs: &[ImageSpec],
    client: &Client,
    platforms: &[String],
    concurrency: usize,
) -> Result<Vec<ResolvedImage>, CreateError> {
    let resolved: Vec<ResolvedImage> = futures_util::stream::iter(specs.iter())
        .map(|s| resolve::resolve(s, client, platforms))
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut seen = HashSet::new();
    Ok(resolved
        .into_iter()
        .filter(|i| seen.insert(i.reference.clone()))
        .collect())
}

/// Render an overlay and list its image uses.
pub fn rendered_images(
    overlay: &Path,
    fields: &[crate::spec::ImageFieldSpec],
) -> Result<Vec<ImageUse>, CreateError> {
    let yaml = kustomize::render(overlay)?;
    let objects = kustomize::parse_objects(&yaml, overlay)?;
    let extra: Vec<ExtraField> = fields
        .iter()
        .map(|f| ExtraField {
            kind: f.kind.clone(),
            path: f.path.clone(),
        })
        .collect();
    Ok(kustomize::image_uses(&objects, &extra))
}

/// Match rendered images to bundled ones; record `usedBy`; return the
/// missing ones (normalized) with the objects that use them.
pub(crate) fn gate(
    uses: &[ImageUse],
    images: &mut [ResolvedImage],
) -> Result<BTreeMap<String, Vec<String>>, CreateError> {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users: Vec<BTreeSet<String>> = vec![BTreeSet::new(); images.len()];
    for u in uses {
        let norm = resolve::normalize(&u.image).map_err(|source| CreateError::BadImage {
            object: u.object.to_string(),
            field: u.field.clone(),
            image: u.image.clone(),
            source,
        })?;
        let digest = norm
            .split_once('@')
            .and_then(|(_, d)| d.parse::<Digest>().ok());
        let found = images.iter().position(|i| {
            i.reference == norm
                || digest
                    .as_ref()
                    .is_some_and(|d| &i.root.digest == d || i.source_digest.as_ref() == Some(d))
        });
        match found {
            Some(i) => {
                users[i].insert(u.object.to_string());
            }
            None => missing
                .entry(norm)
                .or_default()
                .push(format!("{} {}", u.object, u.field)),
        }
    }
    for (img, set) in images.iter_mut().zip(users) {
        img.used_by = set.into_iter().collect();
    }
    Ok(missing)
}

/// Every regular file under the kustomize root, relative, sorted.
fn kustomize_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, CreateError> {
    let err = |message: String| CreateError::Manifests {
        path: root.to_path_buf(),
        message,
    };
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| err(e.to_string()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_str()
            .ok_or_else(|| err(format!("{} is not UTF-8", entry.path().display())))?
            .to_string();
        if !entry.file_type().is_file() {
            return Err(err(format!(
                "{rel} is not a regular file; hint: kustomize trees must hold plain files only"
            )));
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| err(format!("{rel}: {e}")))?;
        files.push((rel, bytes));
    }
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(files)
}

/// Where one blob's bytes come from.
#[derive(Clone)]
enum BlobFrom {
    Memory(Arc<Vec<u8>>),
    File(PathBuf),
    Origin(Origin),
}

/// Stream one blob into its slot.
async fn fill(
    slot: BlobSlot,
    digest: &Digest,
    size: u64,
    source: BlobFrom,
    progress: Arc<dyn Progress>,
) -> Result<(), CreateError> {
    let mut sink = Counting {
        slot,
        progress: progress.clone(),
    };
    let blocking =
        |open: Box<dyn FnOnce() -> std::io::Result<Box<dyn std::io::Read + Send>> + Send>,
         mut sink: Counting| {
            tokio::task::spawn_blocking(move || -> std::io::Result<Counting> {
                let mut r = open()?;
                std::io::copy(&mut r, &mut sink)?;
                Ok(sink)
            })
        };
    let blob_err = |from: &str, e: std::io::Error| {
        // A failed write into the bundle file (a full disk) is the output's
        // error, not the source's: report it with the output's path.
        let output = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<atp_bundle::WriteError>());
        if matches!(output, Some(atp_bundle::WriteError::Io { .. })) {
            let w = e
                .into_inner()
                .expect("checked")
                .downcast::<atp_bundle::WriteError>();
            return CreateError::Write(*w.expect("checked"));
        }
        CreateError::Blob {
            digest: digest.clone(),
            from: from.to_string(),
            message: e.to_string(),
        }
    };
    let sink = match source {
        BlobFrom::Memory(bytes) => {
            sink.write_all(&bytes).map_err(|e| blob_err("memory", e))?;
            sink
        }
        BlobFrom::File(path) => {
            let p = path.clone();
            blocking(
                Box::new(move || Ok(Box::new(std::fs::File::open(&p)?) as Box<_>)),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err(&path.display().to_string(), e))?
        }
        BlobFrom::Origin(Origin::Layout(layout)) => {
            let d = digest.clone();
            let dir = layout.dir().display().to_string();
            blocking(
                Box::new(move || {
                    layout
                        .open_blob(&d)
                        .map(|f| Box::new(f) as Box<_>)
                        .map_err(std::io::Error::other)
                }),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err(&dir, e))?
        }
        BlobFrom::Origin(Origin::Archive(archive)) => {
            let d = digest.clone();
            blocking(
                Box::new(move || {
                    archive
                        .open_blob(&d)
                        .map(|r| Box::new(r) as Box<_>)
                        .map_err(std::io::Error::other)
                }),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err("docker archive", e))?
        }
        BlobFrom::Origin(Origin::Registry(client, repo)) => {
            // The slot hashes every byte and checks the digest in `finish`.
            client
                .fetch_blob_to_checking_sink(&repo, digest, size, &mut sink)
                .await?;
            sink
        }
    };
    sink.slot.finish()?;
    Ok(())
}

/// A slot writer that reports bytes to progress; usable sync and async.
struct Counting {
    slot: BlobSlot,
    progress: Arc<dyn Progress>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.slot.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
