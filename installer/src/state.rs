//! The installer's state dir (default `/var/lib/atp-installer`): the highest
//! sequence installed per channel and signing key, install receipts, and the
//! persisted metric counters. Holds no secrets.
//!
//! Layout:
//! - `channels.json`: `{"<channel> <key fingerprint>": {"sequence": N, "index": "sha256:..."}}`
//! - `receipts/<index digest hex>.json`: one receipt per installed bundle
//! - `render/<index digest hex>/rendered.yaml`: the rendered output of that
//!   install, kept whatever `--render-to` was; its digest is in the receipt
//!   ([`KeptRender`]), so a rollback re-applies exactly these bytes
//! - `events/<NNNNNN>-<kind>.json`: each rollback and uninstall ([`Event`])
//! - `metrics.json`: cumulative counters for the textfile
//! - `lock`: held (flock) for the whole run, so two installs never interleave

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::write_atomic;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/atp-installer";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installed {
    pub sequence: u64,
    /// Digest of the signed `index.json` of the bundle that set this sequence.
    pub index: String,
}

/// What the rollback check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Nothing installed on this channel with this key yet.
    First,
    /// A newer sequence than the installed one.
    Newer { installed: u64 },
    /// The very same signed payload again: allowed, a no-op re-run.
    Same,
    /// An older or equal sequence from a different bundle.
    Rollback { installed: u64, offered: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state dir {path}: {source}\nhint: pass --state-dir DIR to a folder you can write")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state dir {path} is in use by another atp-installer run\nhint: wait for it to finish"
    )]
    Locked { path: PathBuf },
    #[error("state file {path} is corrupt: {message}\nhint: restore it from backup; without it rollback protection cannot work")]
    Corrupt { path: PathBuf, message: String },
    #[error("state file {path} is missing: {what}\nhint: restore it from backup, or pass the --state-dir that `atp-installer install` used")]
    Missing { path: PathBuf, what: String },
}

/// An opened, locked state dir.
pub struct StateDir {
    root: PathBuf,
    _lock: std::fs::File,
}

impl StateDir {
    /// Create (if needed) and lock the state dir.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        let io = |source| StateError::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root.join("receipts")).map_err(io)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    path: root.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.json")
    }

    fn channels_path(&self) -> PathBuf {
        self.root.join("channels.json")
    }

    fn channels(&self) -> Result<BTreeMap<String, Installed>, StateError> {
        read_channels(self.channels_path())
    }

    /// Compare an offered bundle against what is installed.
    pub fn check_sequence(
        &self,
        channel: &str,
        key_fingerprint: &str,
        sequence: u64,
        index_digest: &str,
    ) -> Result<SequenceCheck, StateError> {
        Ok(decide(
            &self.channels()?,
            channel,
            key_fingerprint,
            sequence,
            index_digest,
        ))
    }

    /// Record a successful install.
    pub fn record_installed(
        &self,
        channel: &str,
        key_fingerprint: &str,
        sequence: u64,
        index_digest: &str,
    ) -> Result<(), StateError> {
        let mut all = self.channels()?;
        all.insert(
            format!("{channel} {key_fingerprint}"),
            Installed {
                sequence,
                index: index_digest.to_string(),
            },
        );
        let bytes = serde_json::to_vec_pretty(&all).expect("serializable");
        let path = self.channels_path();
        write_atomic(&path, &bytes, 0o644).map_err(|source| StateError::Io { path, source })
    }

    /// Path of the receipt for a bundle.
    pub fn receipt_path(&self, index_digest_hex: &str) -> PathBuf {
        self.root
            .join("receipts")
            .join(format!("{index_digest_hex}.json"))
    }

    /// Every receipt, parsed as JSON.
    pub fn receipts(&self) -> Result<Vec<serde_json::Value>, StateError> {
        let dir = self.root.join("receipts");
        let io = |source| StateError::Io {
            path: dir.clone(),
            source,
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let b = std::fs::read(&p).map_err(|source| StateError::Io {
                    path: p.clone(),
                    source,
                })?;
                serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
                    path: p,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

/// The receipt format written by this version.
pub const RECEIPT_FORMAT: u32 = 1;

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

/// What `channels.json` records, read without the lock; missing is empty.
pub fn read_installed(root: &Path) -> Result<BTreeMap<String, Installed>, StateError> {
    read_channels(root.join("channels.json"))
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

fn read_channels(path: PathBuf) -> Result<BTreeMap<String, Installed>, StateError> {
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| StateError::Corrupt {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

fn decide(
    all: &BTreeMap<String, Installed>,
    channel: &str,
    key_fingerprint: &str,
    sequence: u64,
    index_digest: &str,
) -> SequenceCheck {
    match all.get(&format!("{channel} {key_fingerprint}")) {
        None => SequenceCheck::First,
        Some(i) if i.index == index_digest => SequenceCheck::Same,
        Some(i) if sequence > i.sequence => SequenceCheck::Newer {
            installed: i.sequence,
        },
        Some(i) => SequenceCheck::Rollback {
            installed: i.sequence,
            offered: sequence,
        },
    }
}

/// The rollback verdict without opening the state dir: creates nothing,
/// takes no lock (for `simulate`, which must change nothing). A missing
/// dir or `channels.json` means nothing is installed yet.
pub fn peek_sequence(
    root: &Path,
    channel: &str,
    key_fingerprint: &str,
    sequence: u64,
    index_digest: &str,
) -> Result<SequenceCheck, StateError> {
    let all = read_channels(root.join("channels.json"))?;
    Ok(decide(
        &all,
        channel,
        key_fingerprint,
        sequence,
        index_digest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rules_first_newer_same_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(
            s.check_sequence("stable", "k", 5, "d5").unwrap(),
            SequenceCheck::First
        );
        s.record_installed("stable", "k", 5, "d5").unwrap();
        assert_eq!(
            s.check_sequence("stable", "k", 5, "d5").unwrap(),
            SequenceCheck::Same
        );
        assert_eq!(
            s.check_sequence("stable", "k", 6, "d6").unwrap(),
            SequenceCheck::Newer { installed: 5 }
        );
        assert_eq!(
            s.check_sequence("stable", "k", 5, "other").unwrap(),
            SequenceCheck::Rollback {
                installed: 5,
                offered: 5
            }
        );
        assert_eq!(
            s.check_sequence("stable", "k", 4, "d4").unwrap(),
            SequenceCheck::Rollback {
                installed: 4 + 1,
                offered: 4
            }
        );
        // Other channels and other keys are independent.
        assert_eq!(
            s.check_sequence("beta", "k", 1, "x").unwrap(),
            SequenceCheck::First
        );
        assert_eq!(
            s.check_sequence("stable", "k2", 1, "x").unwrap(),
            SequenceCheck::First
        );
    }

    #[test]
    fn a_render_elsewhere_is_kept_pinned_and_a_changed_copy_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(&dir.path().join("state")).unwrap();
        let elsewhere = dir.path().join("rendered.yaml");
        std::fs::write(&elsewhere, "kind: ConfigMap\n").unwrap();
        let index = atp_bundle::Digest::of(b"index");
        let kept = s.keep_render(&index, &elsewhere).unwrap();
        assert_eq!(
            kept.path,
            Path::new("render").join(index.hex()).join("rendered.yaml")
        );
        assert_eq!(kept.read(s.root()).unwrap(), b"kind: ConfigMap\n");
        // Keeping the kept file itself writes nothing new.
        let again = s.keep_render(&index, &s.root().join(&kept.path)).unwrap();
        assert_eq!(again, kept);
        std::fs::write(s.root().join(&kept.path), "kind: Secret\n").unwrap();
        let err = kept.read(s.root()).unwrap_err().to_string();
        assert!(
            err.contains("rendered.yaml") && err.contains("pins"),
            "{err}"
        );
        std::fs::remove_file(s.root().join(&kept.path)).unwrap();
        let err = kept.read(s.root()).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
    }

    #[test]
    fn a_receipt_without_the_new_fields_still_reads() {
        let old = serde_json::json!({
            "index_digest": atp_bundle::Digest::of(b"i"), "name": "atp", "version": "1",
            "channel": "stable", "sequence": 1, "registry": "r:5000",
            "result": "success", "started": "t", "finished": "t"
        });
        let r: Receipt = serde_json::from_value(old).unwrap();
        assert_eq!((r.key_fingerprint, r.kept_render), (None, None));
    }

    #[test]
    fn a_second_run_on_the_same_state_dir_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateDir::open(dir.path()).unwrap();
        assert!(matches!(
            StateDir::open(dir.path()),
            Err(StateError::Locked { .. })
        ));
    }
}
