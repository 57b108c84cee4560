//! A channel's history as the state dir records it: the install receipts,
//! the rollbacks and uninstalls (`events/`), and `channels.json`. Shared by
//! `status`, `rollback` and `uninstall`, which all need to know which
//! release is in the cluster now and which came before it.
//!
//! Reads only, without the lock and without creating anything. Strict where
//! `inventory` is lenient: a receipt or event that does not parse, or a
//! receipt `channels.json` names that is not there, is an error naming the
//! file, because acting on half a history could re-apply or delete the
//! wrong release.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::state::{self, Event, Receipt, StateError};

/// One channel's receipts and events.
#[derive(Debug, Clone)]
pub struct History {
    pub channel: String,
    /// Receipts with their files, oldest sequence first (then by when).
    pub receipts: Vec<(PathBuf, Receipt)>,
    /// Rollbacks and uninstalls, in the order they happened.
    pub events: Vec<(PathBuf, Event)>,
    /// The highest sequence `channels.json` records for the channel (over
    /// every key).
    pub installed_sequence: Option<u64>,
}

/// Why the history could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no install receipts in {path}\nhint: pass the --state-dir that `atp-installer install` used")]
    Empty { path: PathBuf },
    #[error(
        "the state dir holds receipts of several channels ({channels}); say which with --channel"
    )]
    WhichChannel { channels: String },
    #[error("no install receipt of channel {channel:?} in {path} (channels: {known})")]
    NoChannel {
        channel: String,
        path: PathBuf,
        known: String,
    },
}

/// Every channel's history under `root`, channels in name order.
pub fn read(root: &Path) -> Result<Vec<History>, HistoryError> {
    let receipts = state::read_receipts_strict(root)?;
    let events = state::read_events(root)?;
    let installed = state::read_installed(root)?;
    // Each bundle `channels.json` names must have its receipt.
    for (key, i) in &installed {
        let hex = i.index.strip_prefix("sha256:").unwrap_or(&i.index);
        let path = root.join("receipts").join(format!("{hex}.json"));
        if !receipts.iter().any(|(p, _)| *p == path) {
            return Err(StateError::Missing {
                path,
                what: format!(
                    "the receipt of sequence {} ({key} in channels.json)",
                    i.sequence
                ),
            }
            .into());
        }
    }
    let channels: BTreeSet<String> = receipts.iter().map(|(_, r)| r.channel.clone()).collect();
    Ok(channels
        .into_iter()
        .map(|channel| {
            let mut rs: Vec<(PathBuf, Receipt)> = receipts
                .iter()
                .filter(|(_, r)| r.channel == channel)
                .cloned()
                .collect();
            rs.sort_by(|(_, a), (_, b)| (a.sequence, &a.finished).cmp(&(b.sequence, &b.finished)));
            let installed_sequence = installed
                .iter()
                .filter(|(k, _)| k.split_once(' ').map(|(c, _)| c) == Some(channel.as_str()))
                .map(|(_, i)| i.sequence)
                .max();
            History {
                events: events
                    .iter()
                    .filter(|(_, _, e)| e.channel == channel)
                    .map(|(_, p, e)| (p.clone(), e.clone()))
                    .collect(),
                channel,
                receipts: rs,
                installed_sequence,
            }
        })
        .collect())
}

/// The history of `channel`, or of the only channel there is.
pub fn read_channel(root: &Path, channel: Option<&str>) -> Result<History, HistoryError> {
    let all = read(root)?;
    let names = || {
        all.iter()
            .map(|h| h.channel.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match channel {
        Some(c) => {
            let known = names();
            all.into_iter()
                .find(|h| h.channel == c)
                .ok_or_else(|| HistoryError::NoChannel {
                    channel: c.to_string(),
                    path: root.to_path_buf(),
                    known,
                })
        }
        None if all.is_empty() => Err(HistoryError::Empty {
            path: root.to_path_buf(),
        }),
        None if all.len() > 1 => Err(HistoryError::WhichChannel { channels: names() }),
        None => Ok(all.into_iter().next().expect("one channel")),
    }
}

impl History {
    /// The receipt of the bundle with this index digest.
    pub fn receipt(&self, index: &atp_bundle::Digest) -> Option<&Receipt> {
        self.receipts
            .iter()
            .map(|(_, r)| r)
            .rev()
            .find(|r| &r.index_digest == index)
    }

    /// The highest installed release (whatever is in the cluster).
    pub fn latest(&self) -> Option<&Receipt> {
        self.receipts.last().map(|(_, r)| r)
    }

    /// The release in the cluster now, as far as this state dir knows: the
    /// last applied install, unless a rollback or an uninstall came after
    /// it. `None`: nothing applied, or uninstalled since.
    pub fn deployed(&self) -> Option<&Receipt> {
        let install = self
            .receipts
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.applied)
            .max_by(|a, b| (&a.finished, a.sequence).cmp(&(&b.finished, b.sequence)));
        let Some((_, event)) = self.events.last() else {
            return install;
        };
        let install_came_after = install.is_some_and(|i| {
            i.finished > event.finished
                || (i.finished == event.finished
                    && event
                        .installed
                        .as_ref()
                        .is_none_or(|e| i.sequence > e.sequence))
        });
        if install_came_after {
            return install;
        }
        event
            .to
            .as_ref()
            .and_then(|t| self.receipt(&t.index_digest))
    }

    /// The release before `of`: the highest sequence below it.
    pub fn before(&self, of: &Receipt) -> Option<&Receipt> {
        self.receipts
            .iter()
            .map(|(_, r)| r)
            .rev()
            .find(|r| r.sequence < of.sequence)
    }

    /// The latest receipt of sequence `n`.
    pub fn at_sequence(&self, n: u64) -> Option<&Receipt> {
        self.receipts
            .iter()
            .map(|(_, r)| r)
            .rev()
            .find(|r| r.sequence == n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Release, StateDir, EVENT_FORMAT};

    fn receipt(seq: u64, finished: &str, applied: bool) -> Receipt {
        serde_json::from_value(serde_json::json!({
            "index_digest": atp_bundle::Digest::of(&seq.to_be_bytes()),
            "name": "atp", "version": format!("1.{seq}"), "channel": "stable",
            "sequence": seq, "registry": "r:5000", "applied": applied,
            "result": "success", "started": finished, "finished": finished
        }))
        .unwrap()
    }

    fn event(kind: &str, to: Option<&Receipt>, installed: &Receipt, finished: &str) -> Event {
        Event {
            event_format: EVENT_FORMAT,
            kind: kind.into(),
            channel: "stable".into(),
            from: None,
            to: to.map(Release::from),
            installed: Some(Release::from(installed)),
            objects: vec![],
            kept: vec![],
            pruned: vec![],
            result: "success".into(),
            started: finished.into(),
            finished: finished.into(),
        }
    }

    #[test]
    fn deployed_follows_installs_rollbacks_and_uninstalls() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let (v1, v2) = (receipt(1, "t1", true), receipt(2, "t2", true));
        s.write_receipt(&v1).unwrap();
        s.write_receipt(&v2).unwrap();
        let h = read_channel(dir.path(), None).unwrap();
        assert_eq!(h.deployed().unwrap().sequence, 2);
        assert_eq!(h.before(h.deployed().unwrap()).unwrap().sequence, 1);

        // A rollback in the same second as the install still comes after it.
        s.write_event(&event("rollback", Some(&v1), &v2, "t2"))
            .unwrap();
        let h = read_channel(dir.path(), None).unwrap();
        assert_eq!(h.deployed().unwrap().sequence, 1);
        assert_eq!(h.latest().unwrap().sequence, 2);

        s.write_event(&event("uninstall", None, &v2, "t3")).unwrap();
        assert!(read_channel(dir.path(), None).unwrap().deployed().is_none());

        let v3 = receipt(3, "t3", true);
        s.write_receipt(&v3).unwrap();
        assert_eq!(
            read_channel(dir.path(), None)
                .unwrap()
                .deployed()
                .unwrap()
                .sequence,
            3
        );
    }

    #[test]
    fn a_corrupt_receipt_and_a_missing_one_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let v1 = receipt(1, "t1", true);
        s.write_receipt(&v1).unwrap();
        s.record_installed("stable", "k", 1, &v1.index_digest.to_string())
            .unwrap();
        let path = s.receipt_path(v1.index_digest.hex());
        std::fs::write(&path, "{ not json").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("missing"), "{err}");
    }
}
