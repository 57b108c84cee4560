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

mod records;
pub use records::*;

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

    /// Record a successful install. A re-install of the bundle already
    /// recorded changes nothing, and writes nothing.
    pub fn record_installed(
        &self,
        channel: &str,
        key_fingerprint: &str,
        sequence: u64,
        index_digest: &str,
    ) -> Result<(), StateError> {
        let mut all = self.channels()?;
        let now = Installed {
            sequence,
            index: index_digest.to_string(),
        };
        if all.insert(format!("{channel} {key_fingerprint}"), now.clone()) == Some(now) {
            return Ok(());
        }
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

/// What `channels.json` records, read without the lock; missing is empty.
pub fn read_installed(root: &Path) -> Result<BTreeMap<String, Installed>, StateError> {
    read_channels(root.join("channels.json"))
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
    fn recording_the_installed_bundle_again_leaves_channels_json_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        s.record_installed("stable", "k", 5, "d5").unwrap();
        let path = dir.path().join("channels.json");
        // A marker the writer would drop: the file is not rewritten.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(b'\n');
        std::fs::write(&path, &bytes).unwrap();
        s.record_installed("stable", "k", 5, "d5").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        // A new bundle on the channel is written.
        s.record_installed("stable", "k", 6, "d6").unwrap();
        assert_eq!(
            s.check_sequence("stable", "k", 6, "d6").unwrap(),
            SequenceCheck::Same
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
        assert!(r.referrers.is_empty() && r.index_entries.is_empty());
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
