//! The records of the state dir: install receipts (`receipts/<index hex>.json`,
//! typed and versioned), the kept render, and the events of `rollback` and
//! `uninstall` (`events/`); written atomically, read strictly or leniently.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{StateDir, StateError};
use crate::metrics::write_atomic;

/// The receipt format written by this version. 2 adds `referrers` and
/// `index_entries` (a format-1 receipt reads with both empty).
pub const RECEIPT_FORMAT: u32 = 2;

fn receipt_format_1() -> u32 {
    1
}

/// One image as it landed in the site registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushedImage {
    pub source: String,
    /// The target reference by tag (or by digest when the source had no tag).
    pub target: String,
    pub digest: atp_bundle::Digest,
}

/// One carried referrer as an install placed it: by digest in a repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlacedReferrer {
    /// `host[:port]/name` of the repository.
    pub repository: String,
    pub digest: atp_bundle::Digest,
    pub subject: atp_bundle::Digest,
}

/// An entry an install added to a subject's fallback tag index (one that
/// was not listed before it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    /// `host[:port]/name` of the repository.
    pub repository: String,
    /// The subject whose `sha256-<hex>` index lists it.
    pub subject: atp_bundle::Digest,
    pub digest: atp_bundle::Digest,
}

/// `receipts/<index digest hex>.json`: what one install of one bundle did.
/// Written by `install`, read by `inventory` and the delta pre-check.
/// Receipts without `receipt_format` are format 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(default = "receipt_format_1")]
    pub receipt_format: u32,
    pub index_digest: atp_bundle::Digest,
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    /// `host[:port]` of the site registry.
    pub registry: String,
    #[serde(default)]
    pub images: Vec<PushedImage>,
    /// The carried referrers placed (format 2; older receipts lack it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<PlacedReferrer>,
    /// The fallback tag index entries installs of this bundle added
    /// (format 2; older receipts lack it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_entries: Vec<IndexEntry>,
    /// What the copy did.
    #[serde(flatten)]
    pub copy: atp_registry::copy::CopyStats,
    #[serde(default)]
    pub rendered: Option<PathBuf>,
    #[serde(default)]
    pub objects: Vec<String>,
    #[serde(default)]
    pub applied: bool,
    /// What the model-file steps did (as `install --json` prints it).
    #[serde(default)]
    pub model_files: serde_json::Value,
    pub result: String,
    pub started: String,
    pub finished: String,
    /// Every file of the bundle's file sets.
    #[serde(default)]
    pub files: Vec<atp_bundle::format::config::FileEntry>,
    /// Every blob the bundle carries.
    #[serde(default)]
    pub blobs: Vec<atp_bundle::Digest>,
    /// Blobs a delta bundle relies on without carrying them.
    #[serde(default)]
    pub omitted: Vec<atp_bundle::Digest>,
    /// Fingerprint of the key the bundle verified against (older receipts
    /// do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The rendered output kept in the state dir (older receipts, and
    /// bundles that ship no manifests, have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_render: Option<KeptRender>,
}

/// The copy of an install's rendered output kept in the state dir.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeptRender {
    /// Relative to the state dir: `render/<index digest hex>/rendered.yaml`.
    pub path: PathBuf,
    pub digest: atp_bundle::Digest,
    pub size: u64,
}

impl KeptRender {
    /// The kept bytes, checked against the recorded size and digest.
    pub fn read(&self, state_root: &Path) -> Result<Vec<u8>, StateError> {
        let path = state_root.join(&self.path);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    path,
                    what: "the rendered output a receipt kept".into(),
                })
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let found = atp_bundle::Digest::of(&bytes);
        if bytes.len() as u64 != self.size || found != self.digest {
            return Err(StateError::Corrupt {
                path,
                message: format!(
                    "the receipt pins {} ({} bytes), the file is {found} ({} bytes)",
                    self.digest,
                    self.size,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }
}

/// A rollback or an uninstall, as `events/<NNNNNN>-<kind>.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub event_format: u32,
    /// `rollback` or `uninstall`.
    pub kind: String,
    pub channel: String,
    /// The release in the cluster before (none: nothing was applied).
    pub from: Option<Release>,
    /// The release in the cluster after (none after an uninstall).
    pub to: Option<Release>,
    /// The highest installed release of the channel when this happened
    /// (an event never lowers it).
    pub installed: Option<Release>,
    /// The objects applied (rollback) or deleted (uninstall).
    pub objects: Vec<String>,
    /// Objects left in place (an uninstall without `--delete-data`).
    #[serde(default)]
    pub kept: Vec<String>,
    /// Manifests deleted from the site registry (`--prune-registry`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    pub result: String,
    pub started: String,
    pub finished: String,
}

/// One release, as events name it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub name: String,
    pub version: String,
    pub sequence: u64,
    pub index_digest: atp_bundle::Digest,
}

impl From<&Receipt> for Release {
    fn from(r: &Receipt) -> Self {
        Release {
            name: r.name.clone(),
            version: r.version.clone(),
            sequence: r.sequence,
            index_digest: r.index_digest.clone(),
        }
    }
}

/// The event format written by this version.
pub const EVENT_FORMAT: u32 = 1;

impl StateDir {
    /// The receipt of the bundle `index_digest`, if there is a readable one.
    pub fn read_receipt(&self, index_digest: &atp_bundle::Digest) -> Option<Receipt> {
        let bytes = std::fs::read(self.receipt_path(index_digest.hex())).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write the receipt of `r.index_digest`, atomically.
    pub fn write_receipt(&self, r: &Receipt) -> Result<(), StateError> {
        let path = self.receipt_path(r.index_digest.hex());
        let bytes = serde_json::to_vec_pretty(r).expect("a receipt serializes");
        write_atomic(&path, &bytes, 0o644).map_err(|source| StateError::Io { path, source })
    }

    /// Keep `rendered` as `render/<index hex>/rendered.yaml` (mode 0600: it
    /// holds the pull secret) unless it is that file already, and say what
    /// was kept. A folder made here carries the render marker, so a later
    /// render of the same bundle may replace it.
    pub fn keep_render(
        &self,
        index: &atp_bundle::Digest,
        rendered: &Path,
    ) -> Result<KeptRender, StateError> {
        let rel = Path::new("render").join(index.hex()).join("rendered.yaml");
        let dest = self.root.join(&rel);
        let bytes = std::fs::read(rendered).map_err(|source| StateError::Io {
            path: rendered.to_path_buf(),
            source,
        })?;
        let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
        if !same(rendered, &dest) {
            let dir = dest.parent().expect("a file in a folder");
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| StateError::Io { path, source }
            };
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let marker = dir.join(crate::render::MARKER);
            if !marker.exists() {
                std::fs::write(
                    &marker,
                    "made by atp-installer: a later render replaces this whole folder\n",
                )
                .map_err(io(&marker))?;
            }
            write_atomic(&dest, &bytes, 0o600).map_err(io(&dest))?;
        }
        Ok(KeptRender {
            path: rel,
            digest: atp_bundle::Digest::of(&bytes),
            size: bytes.len() as u64,
        })
    }

    /// Record a rollback or an uninstall as the next `events/` file.
    pub fn write_event(&self, e: &Event) -> Result<PathBuf, StateError> {
        let dir = self.root.join("events");
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        let next = read_events(&self.root)?.last().map_or(1, |(n, _, _)| n + 1);
        let path = dir.join(format!("{next:06}-{}.json", e.kind));
        let bytes = serde_json::to_vec_pretty(e).expect("an event serializes");
        write_atomic(&path, &bytes, 0o644).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// Every event under `root`, in order, with its number and file; a file
/// that does not parse is an error naming it. No `events/` is no events.
pub fn read_events(root: &Path) -> Result<Vec<(u64, PathBuf, Event)>, StateError> {
    let dir = root.join("events");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StateError::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_suffix(".json")
            .and_then(|s| s.split_once('-'))
            .and_then(|(n, _)| n.parse::<u64>().ok())
        else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        let e = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        out.push((n, path, e));
    }
    out.sort_by_key(|(n, _, _)| *n);
    Ok(out)
}

/// Every receipt under `root` with its file, strictly: a receipt that does
/// not read or parse is an error naming its file (for the commands that
/// act on the history: status, rollback, uninstall). Creates nothing.
pub fn read_receipts_strict(root: &Path) -> Result<Vec<(PathBuf, Receipt)>, StateError> {
    let dir = root.join("receipts");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StateError::Io { path: dir, source }),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let bytes = std::fs::read(&p).map_err(|source| StateError::Io {
            path: p.clone(),
            source,
        })?;
        let r = serde_json::from_slice::<Receipt>(&bytes).map_err(|e| StateError::Corrupt {
            path: p.clone(),
            message: e.to_string(),
        })?;
        out.push((p, r));
    }
    Ok(out)
}

/// Every receipt under `root` this version can read, without taking the
/// lock (the caller may hold it) and without creating anything. A receipt
/// that does not parse is skipped with a warning: a smaller inventory only
/// makes the next delta larger.
pub fn read_receipts(root: &Path) -> Vec<Receipt> {
    let dir = root.join("receipts");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        match std::fs::read(&p).map(|b| serde_json::from_slice::<Receipt>(&b)) {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(e)) => tracing::warn!("skipping receipt {}: {e}", p.display()),
            Err(e) => tracing::warn!("skipping unreadable receipt {}: {e}", p.display()),
        }
    }
    out
}
