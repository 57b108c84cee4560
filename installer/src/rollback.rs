//! `atp-installer rollback`: re-apply the rendered output an earlier install
//! kept in the state dir (the bytes its receipt pins by digest), after
//! checking that the site registry still holds every image those manifests
//! reference and every image that install pushed; then record an event
//! saying what was rolled back from and to.
//!
//! Never re-renders, never pushes, never lowers the channel's installed
//! sequence (`channels.json` is not touched, so an old bundle replayed is
//! still refused by `install`). A missing image, a kept file that changed
//! or went missing, or a receipt that does not read stops it before
//! kubectl is run.

use std::path::PathBuf;

use atp_bundle::kustomize::ObjectRef;
use serde::Serialize;

use crate::apply::{self, ApplyError, ApplyOptions};
use crate::gate::{self, Presence};
use crate::history::{self, HistoryError};
use crate::site::Site;
use crate::state::{Event, Release, StateDir, StateError, EVENT_FORMAT};

/// Which release to go back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The highest sequence below the release in the cluster now.
    Previous,
    Sequence(u64),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "previous" => Ok(Target::Previous),
            n => n
                .parse()
                .map(Target::Sequence)
                .map_err(|_| format!("{s:?} is neither a sequence number nor `previous`")),
        }
    }
}

/// What `rollback` is asked to do.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub state_dir: PathBuf,
    pub channel: Option<String>,
    pub to: Target,
    /// The site registry the images must still be in.
    pub site: Site,
    pub apply: ApplyOptions,
    /// Check and print the kubectl commands; apply and record nothing.
    pub dry_run: bool,
}

/// What a rollback did, or would do (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub channel: String,
    /// The release in the cluster before (none: nothing applied).
    pub from: Option<Release>,
    pub to: Release,
    /// The kept rendered output applied, and its digest.
    pub rendered: PathBuf,
    pub digest: atp_bundle::Digest,
    pub objects: Vec<String>,
    /// The kubectl commands, run or (dry run) not.
    pub commands: Vec<String>,
    pub applied: bool,
    /// The event recorded (none on a dry run).
    pub event: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("channel {channel}: no release below sequence {sequence} to roll back to")]
    NothingBefore { channel: String, sequence: u64 },
    #[error("channel {channel}: no install receipt of sequence {sequence} (installed: {known})")]
    NoSuchSequence {
        channel: String,
        sequence: u64,
        known: String,
    },
    #[error("sequence {sequence} ({version}) has no rendered output kept in the state dir (receipt {receipt})\nhint: it was installed by a version that did not keep it, or shipped no manifests; install that bundle again with --allow-downgrade instead")]
    NotKept {
        sequence: u64,
        version: String,
        receipt: PathBuf,
    },
    #[error("refusing to roll back to sequence {sequence} ({version}): the site registry {registry} no longer holds:\n{}\nnothing was applied\nhint: push those images again (install that bundle again with --allow-downgrade), then roll back", missing.join("\n"))]
    ImagesMissing {
        sequence: u64,
        version: String,
        registry: String,
        missing: Vec<String>,
    },
    #[error("kept rendered output {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: atp_bundle::kustomize::RenderError,
    },
    #[error("receipt {receipt} records an object {object:?} that is not Kind/namespace/name")]
    BadObject { receipt: PathBuf, object: String },
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error("{0}\nthe rollback stopped part way: run it again, or install the release you want")]
    Apply(#[from] ApplyError),
}

/// Check, then (unless a dry run) apply the kept output and record it.
pub async fn rollback(opts: &RollbackOptions) -> Result<RollbackReport, RollbackError> {
    // The lock keeps an install from running meanwhile; a dry run writes
    // nothing and takes no lock.
    let state = if opts.dry_run {
        None
    } else {
        Some(StateDir::open(&opts.state_dir)?)
    };
    let h = history::read_channel(&opts.state_dir, opts.channel.as_deref())?;
    let from = h.deployed();
    let target = match opts.to {
        Target::Previous => {
            let base = from
                .or_else(|| h.latest())
                .expect("a channel has a receipt");
            h.before(base).ok_or_else(|| RollbackError::NothingBefore {
                channel: h.channel.clone(),
                sequence: base.sequence,
            })?
        }
        Target::Sequence(n) => h
            .at_sequence(n)
            .ok_or_else(|| RollbackError::NoSuchSequence {
                channel: h.channel.clone(),
                sequence: n,
                known: h
                    .receipts
                    .iter()
                    .map(|(_, r)| r.sequence.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
    };
    let receipt_path = h
        .receipts
        .iter()
        .find(|(_, r)| r.index_digest == target.index_digest)
        .map(|(p, _)| p.clone())
        .expect("the target came from these receipts");
    let kept = target
        .kept_render
        .as_ref()
        .ok_or_else(|| RollbackError::NotKept {
            sequence: target.sequence,
            version: target.version.clone(),
            receipt: receipt_path.clone(),
        })?;
    let bytes = kept.read(&opts.state_dir)?;
    let rendered = opts.state_dir.join(&kept.path);

    // Every image the manifests reference, and every image the install
    // pushed, must still be in the site registry.
    let client = opts.site.client()?;
    let yaml = String::from_utf8_lossy(&bytes);
    let offences = gate::check(&yaml, &opts.site.registry, &[], Presence::Registry(&client))
        .await
        .map_err(|source| RollbackError::Parse {
            path: rendered.clone(),
            source,
        })?;
    let mut missing: Vec<String> = offences.iter().map(|o| format!("  {o}")).collect();
    let pushed = crate::status::check_release(&client, &opts.site.registry, "target", target).await;
    missing.extend(
        pushed
            .images
            .iter()
            .filter(|i| i.state != "present")
            .map(|i| format!("  {} (pushed by this release): {}", i.image, i.state)),
    );
    if !missing.is_empty() {
        return Err(RollbackError::ImagesMissing {
            sequence: target.sequence,
            version: target.version.clone(),
            registry: opts.site.registry.clone(),
            missing,
        });
    }

    let objects: Vec<ObjectRef> = target
        .objects
        .iter()
        .map(|o| {
            apply::parse_object(o).ok_or_else(|| RollbackError::BadObject {
                receipt: receipt_path.clone(),
                object: o.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let commands = apply::apply_plan(&rendered, &objects, &opts.apply);
    let mut report = RollbackReport {
        channel: h.channel.clone(),
        from: from.map(Release::from),
        to: Release::from(target),
        rendered: rendered.clone(),
        digest: kept.digest.clone(),
        objects: target.objects.clone(),
        commands,
        applied: false,
        event: None,
    };
    let Some(state) = state else {
        return Ok(report);
    };
    let started = atp_bundle::format::info::format_time(time::OffsetDateTime::now_utc());
    let a = opts.apply.clone();
    let path = rendered.clone();
    tokio::task::spawn_blocking(move || apply::apply(&path, &objects, &a))
        .await
        .expect("apply task panicked")?;
    report.applied = true;
    report.event = Some(state.write_event(&Event {
        event_format: EVENT_FORMAT,
        kind: "rollback".into(),
        channel: h.channel.clone(),
        from: report.from.clone(),
        to: Some(report.to.clone()),
        installed: h.latest().map(Release::from),
        objects: report.objects.clone(),
        kept: Vec::new(),
        pruned: Vec::new(),
        result: "success".into(),
        started,
        finished: atp_bundle::format::info::format_time(time::OffsetDateTime::now_utc()),
    })?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!("previous".parse(), Ok(Target::Previous));
        assert_eq!("7".parse(), Ok(Target::Sequence(7)));
        assert!("last".parse::<Target>().is_err());
    }
}
