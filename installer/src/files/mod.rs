//! Model files from a verified bundle, installed two ways, each optional:
//!
//! - `--model-cache-dir DIR`: every file of set `<name>` goes to
//!   `DIR/<name>/<relative path>`. It is streamed from the bundle into a temp
//!   name in its destination folder, its size and sha256 are checked there,
//!   it is fsynced and only then renamed over the previous version. Files
//!   already present with the right digest are not touched; files the bundle
//!   no longer lists stay unless `--prune` is given.
//! - `--files-to-registry`: the file-set artifacts (one OCI manifest per set,
//!   one layer per file, ORAS-style) are pushed to the site registry under the
//!   same mapping as images, from the set's reference name
//!   `atp-offline/files/<name>:<version>`, so `oras pull` can fetch them.
//!
//! Only ever called after the whole bundle verified. Even so, every payload
//! is checked again as it is copied, and a file that does not match never
//! reaches its final name. This module never writes outside DIR: it refuses
//! paths that would escape it, never follows a symbolic link that leads out
//! of it, never writes through a link, and prune removes only regular files
//! under the folders of the bundle's own sets.
//!
//! - this file: the sets as the bundle lists them, the registry push;
//! - `cache`: the model cache writer (paths, links, atomic writes, prune).

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::digest::BlobMismatch;
use atp_bundle::format::ref_name::FILE_SET_PREFIX;
use atp_bundle::format::{annotation as ann, role, Descriptor, FileSetRef, ImageManifest};
use atp_bundle::media::Cursor;
use atp_bundle::progress::Progress;
use atp_bundle::verify::{BlobLocation, Report};
use atp_bundle::Digest;
use atp_registry::mapping::{self, SourceRef};
use atp_registry::{Client, Repository};
use serde::Serialize;

use atp_registry::copy::{self, CopyError, CopyStats, ImageCopy, Plan};

use crate::options::FilesOptions;
use crate::site::Site;
use crate::verified::VerifiedBundle;

mod cache;
#[cfg(test)]
mod cache_tests;
pub use cache::{write_cache, CacheRequest, OpenPayload};

/// Copy buffer: large reads, still small next to any model file.
const BUFFER: usize = 1 << 20;

/// One file of a set, as its artifact lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetFile {
    /// `/`-separated path relative to the set's folder.
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// One file set of the bundle.
#[derive(Debug, Clone)]
pub struct FileSet {
    pub name: String,
    /// `atp-offline/files/<name>:<version>`.
    pub reference: String,
    /// The set's manifest in `index.json`.
    pub descriptor: Descriptor,
    pub files: Vec<SetFile>,
}

/// One file as it stands in the model cache after the install.
#[derive(Debug, Clone, Serialize)]
pub struct CachedFile {
    pub set: String,
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// False when the right content was already there.
    pub written: bool,
}

/// What `--model-cache-dir` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheSummary {
    pub dir: PathBuf,
    pub written: u64,
    pub unchanged: u64,
    pub bytes_written: u64,
    /// `<set>/<path>` of every file `--prune` removed.
    pub pruned: Vec<String>,
    pub files: Vec<CachedFile>,
}

/// One file set pushed with `--files-to-registry`.
#[derive(Debug, Clone, Serialize)]
pub struct PushedFileSet {
    pub set: String,
    pub source: String,
    /// `REGISTRY/REPO:<version>`.
    pub target: String,
    pub digest: Digest,
}

/// What the model-file steps did (both empty when neither was asked for).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilesOutcome {
    pub registry: Vec<PushedFileSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_stats: Option<CopyStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<CacheSummary>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file set {reference}: {reason}\nhint: the bundle was not written by a compatible atp-bundler; get a fresh one from release engineering")]
    BadSet { reference: String, reason: String },
    #[error(
        "refusing to write {path}: {reason}; nothing was written to the model cache\nhint: {hint}"
    )]
    Unsafe {
        path: PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the {stage} does not match the bundle ({source}); the previous version, if any, was left in place\nhint: {hint}")]
    Mismatch {
        path: PathBuf,
        stage: &'static str,
        source: BlobMismatch,
        hint: &'static str,
    },
    #[error("file set {set:?}: {path} ({digest}) is not carried by this delta bundle and is not in the model cache; nothing was written\nhint: install the base bundle with --model-cache-dir first")]
    NotCarried {
        set: String,
        path: String,
        digest: Digest,
    },
    #[error("delta bundle relies on {} file blob(s) the registry {registry} does not have; no file set was pushed:\n{}\nhint: install the base bundle with --files-to-registry first", .missing.len(), .missing.join("\n"))]
    DeltaBaseMissing {
        registry: String,
        missing: Vec<String>,
    },
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error(transparent)]
    Copy(#[from] CopyError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The bundle's file sets, from its verified top-level manifests.
pub fn file_sets(
    report: &Report,
    read: &(dyn Fn(&Digest) -> Result<Vec<u8>, String> + Sync),
) -> Result<Vec<FileSet>, FilesError> {
    let mut sets = Vec::new();
    for top in report.top_level.iter().filter(|t| t.role == role::FILES) {
        let bad = |reason: String| FilesError::BadSet {
            reference: top.reference.clone(),
            reason,
        };
        let name = FileSetRef::parse(&top.reference)
            .map(|r| r.name.to_string())
            .ok_or_else(|| {
                bad(format!(
                    "reference is not {FILE_SET_PREFIX}<name>:<version>"
                ))
            })?;
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
            return Err(bad(format!("{name:?} cannot name a folder")));
        }
        let bytes = read(&top.descriptor.digest).map_err(&bad)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest: {e}")))?;
        let mut files = Vec::new();
        let mut seen = HashSet::new();
        for layer in &manifest.layers {
            let path = layer
                .annotation(ann::TITLE)
                .ok_or_else(|| bad(format!("layer {} has no {}", layer.digest, ann::TITLE)))?;
            atp_bundle::assemble::check_file_path(path)
                .map_err(|reason| bad(format!("path {path:?}: {reason}")))?;
            if !seen.insert(path) {
                return Err(bad(format!("{path:?} is listed twice")));
            }
            files.push(SetFile {
                path: path.to_string(),
                digest: layer.digest.clone(),
                size: layer.size,
            });
        }
        // A path cannot be both a file and the folder of another file.
        for f in &files {
            let mut dir = f.path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                if seen.contains(parent) {
                    return Err(bad(format!("{parent:?} is both a file and a folder")));
                }
                dir = parent;
            }
        }
        sets.push(FileSet {
            name,
            reference: top.reference.clone(),
            descriptor: top.descriptor.clone(),
            files,
        });
    }
    Ok(sets)
}

/// Run the model-file steps `opts` asks for: the registry push first, then
/// the model cache. Payloads are read only through the verified bundle, as
/// opened for verification (plain tar, seekable zstd or split volumes).
pub async fn install(
    opts: &FilesOptions,
    site: &Site,
    client: &Client,
    bundle: &VerifiedBundle,
    progress: Arc<dyn Progress>,
) -> Result<FilesOutcome, FilesError> {
    let report = &bundle.report;
    let mut outcome = FilesOutcome::default();
    if !opts.to_registry && opts.model_cache_dir.is_none() {
        let n = report
            .top_level
            .iter()
            .filter(|t| t.role == role::FILES)
            .count();
        if n > 0 {
            tracing::info!("the bundle carries {n} file set(s); pass --model-cache-dir or --files-to-registry to install them");
        }
        return Ok(outcome);
    }
    let read = |d: &Digest| bundle.read_text_err(d);
    let sets = file_sets(report, &read)?;
    let omitted: HashSet<Digest> = report.omitted.iter().cloned().collect();
    if opts.to_registry {
        let (pushed, stats) =
            push_sets(site, client, bundle, &sets, &omitted, progress.clone()).await?;
        outcome.registry = pushed;
        outcome.registry_stats = Some(stats);
    }
    if let Some(dir) = &opts.model_cache_dir {
        let req = CacheRequest {
            dir: dir.clone(),
            prune: opts.prune,
            sets,
            locations: bundle.locations.clone(),
            omitted,
        };
        let tar = bundle.input.tar();
        let summary = tokio::task::spawn_blocking(move || {
            // Positional reads over the bundle's tar stream, wherever it lives.
            let open = |loc: &BlobLocation| -> io::Result<Box<dyn Read + '_>> {
                let end = loc.data_offset + loc.size;
                Ok(Box::new(Cursor::new(tar.clone(), loc.data_offset, end)))
            };
            write_cache(&req, &open, progress)
        })
        .await
        .expect("model cache task panicked")?;
        outcome.model_cache = Some(summary);
    }
    Ok(outcome)
}

/// Where each set lands in the site registry: the images' mapping, applied
/// to the sets' reference names (together with the images, so the flat
/// layout refuses a set and an image that would share a repository).
pub fn map_sets(
    site: &Site,
    report: &Report,
    sets: &[FileSet],
) -> Result<Vec<(SourceRef, Repository)>, FilesError> {
    let set_refs: Vec<SourceRef> = sets
        .iter()
        .map(|s| SourceRef::parse(&s.reference))
        .collect::<Result<_, _>>()?;
    let image_refs: Vec<SourceRef> = report
        .images()
        .map(|t| SourceRef::parse(&t.reference))
        .collect::<Result<_, _>>()?;
    let map = mapping::map_repositories(
        image_refs.iter().chain(&set_refs),
        &site.layout,
        site.repo_prefix.as_deref(),
    )?;
    set_refs
        .into_iter()
        .map(|s| {
            let repo = site.repository(&map[&s.repository()])?;
            Ok((s, repo))
        })
        .collect()
}

/// Push the file-set artifacts through the copy engine, after checking
/// that every blob a delta leaves out is already in the registry.
async fn push_sets(
    site: &Site,
    client: &Client,
    bundle: &VerifiedBundle,
    sets: &[FileSet],
    omitted: &HashSet<Digest>,
    progress: Arc<dyn Progress>,
) -> Result<(Vec<PushedFileSet>, CopyStats), FilesError> {
    let mut copies = Vec::new();
    let mut relied_on = Vec::new();
    for (set, (src, target)) in sets.iter().zip(map_sets(site, &bundle.report, sets)?) {
        if let Some(tag) = &src.tag {
            target.tag(tag)?;
        }
        let walked = copy::walk_image(
            &set.reference,
            &set.descriptor,
            &mut |d| bundle.read_text_err(&d.digest),
            omitted,
        )?;
        relied_on.extend(walked.relied_on.into_iter().map(|d| (target.clone(), d)));
        copies.push(ImageCopy {
            source: set.reference.clone(),
            target,
            tag: src.tag.clone(),
            root: set.descriptor.clone(),
            manifests: walked.manifests,
            blobs: walked.blobs,
        });
    }
    let mut missing = Vec::new();
    for (repo, d) in &relied_on {
        if client.blob_exists(repo, d).await?.is_none() {
            missing.push(format!("  {d} (for {repo})"));
        }
    }
    if !missing.is_empty() {
        return Err(FilesError::DeltaBaseMissing {
            registry: site.registry.clone(),
            missing,
        });
    }
    let plan = Plan::new(copies);
    let done = copy::execute(client, &plan, bundle, site.concurrency, "files", progress).await?;
    let pushed = sets
        .iter()
        .zip(&plan.images)
        .map(|(set, p)| PushedFileSet {
            set: set.name.clone(),
            source: p.source.clone(),
            target: p.target_reference(),
            digest: p.root.digest.clone(),
        })
        .collect();
    Ok((pushed, done.stats))
}
