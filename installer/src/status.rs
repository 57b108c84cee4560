//! `atp-installer status`: per channel, what was installed (from the
//! receipts), what was rolled back or uninstalled (from the events), which
//! release is in the cluster now and, given the site registry, whether the
//! registry still holds every image of the current and the previous
//! release.
//!
//! Reads the state dir without locking or creating anything; asks the
//! registry with HEAD requests by digest only. Never writes anywhere.

use std::path::PathBuf;

use atp_bundle::Digest;
use atp_registry::{Client, Reference};
use serde::Serialize;

use crate::history::{self, History, HistoryError};
use crate::site::Site;
use crate::state::Receipt;

/// What `status` is asked.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub state_dir: PathBuf,
    /// Check the images in this registry too.
    pub site: Option<Site>,
}

/// Everything `status` found (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state_dir: PathBuf,
    pub channels: Vec<ChannelStatus>,
}

/// One channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub channel: String,
    /// The highest sequence installed (what a new bundle must exceed).
    pub installed_sequence: Option<u64>,
    /// The sequence in the cluster now, as far as the state dir knows.
    pub deployed_sequence: Option<u64>,
    /// Every install, oldest sequence first.
    pub history: Vec<Entry>,
    /// Every rollback and uninstall, in order.
    pub events: Vec<EventEntry>,
    /// With a registry: the current and the previous release's images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub registry: Vec<ReleaseImages>,
}

/// One install, from its receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub sequence: u64,
    pub index_digest: Digest,
    /// When the install finished (UTC).
    pub installed: String,
    /// The signing key's fingerprint, when the receipt records it.
    pub key_fingerprint: Option<String>,
    /// The rendered output is kept in the state dir (rollback can use it).
    pub rendered_kept: bool,
    /// The install applied its output to the cluster.
    pub applied: bool,
    pub receipt: PathBuf,
}

/// One rollback or uninstall.
#[derive(Debug, Clone, Serialize)]
pub struct EventEntry {
    pub kind: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub when: String,
    pub objects: usize,
    pub file: PathBuf,
}

/// The images of one release in the site registry.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseImages {
    /// `current` or `previous`.
    pub role: &'static str,
    pub sequence: u64,
    pub version: String,
    /// Every image is there.
    pub complete: bool,
    pub images: Vec<ImageCheck>,
}

/// One image, by digest.
#[derive(Debug, Clone, Serialize)]
pub struct ImageCheck {
    /// `host/repo@sha256:...`
    pub image: String,
    /// `present`, `missing`, or why it could not be told.
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
}

/// Read the history and, with a site registry, check its images.
pub async fn status(opts: &StatusOptions) -> Result<Status, StatusError> {
    let histories = history::read(&opts.state_dir)?;
    if histories.is_empty() {
        return Err(HistoryError::Empty {
            path: opts.state_dir.clone(),
        }
        .into());
    }
    let client = opts.site.as_ref().map(Site::client).transpose()?;
    let mut channels = Vec::new();
    for h in &histories {
        let mut c = summarize(h);
        if let (Some(site), Some(client)) = (&opts.site, &client) {
            for (role, r) in current_and_previous(h) {
                c.registry
                    .push(check_release(client, &site.registry, role, r).await);
            }
        }
        channels.push(c);
    }
    Ok(Status {
        state_dir: opts.state_dir.clone(),
        channels,
    })
}

fn summarize(h: &History) -> ChannelStatus {
    ChannelStatus {
        channel: h.channel.clone(),
        installed_sequence: h
            .installed_sequence
            .or_else(|| h.latest().map(|r| r.sequence)),
        deployed_sequence: h.deployed().map(|r| r.sequence),
        history: h
            .receipts
            .iter()
            .map(|(path, r)| Entry {
                name: r.name.clone(),
                version: r.version.clone(),
                sequence: r.sequence,
                index_digest: r.index_digest.clone(),
                installed: r.finished.clone(),
                key_fingerprint: r.key_fingerprint.clone(),
                rendered_kept: r.kept_render.is_some(),
                applied: r.applied,
                receipt: path.clone(),
            })
            .collect(),
        events: h
            .events
            .iter()
            .map(|(file, e)| EventEntry {
                kind: e.kind.clone(),
                from: e.from.as_ref().map(|r| r.sequence),
                to: e.to.as_ref().map(|r| r.sequence),
                when: e.finished.clone(),
                objects: e.objects.len(),
                file: file.clone(),
            })
            .collect(),
        registry: Vec::new(),
    }
}

/// The release in the cluster (else the latest installed) and the one
/// before it.
fn current_and_previous(h: &History) -> Vec<(&'static str, &Receipt)> {
    let Some(current) = h.deployed().or_else(|| h.latest()) else {
        return Vec::new();
    };
    let mut out = vec![("current", current)];
    if let Some(p) = h.before(current) {
        out.push(("previous", p));
    }
    out
}

/// HEAD every image of `r` by digest in `registry`.
pub async fn check_release(
    client: &Client,
    registry: &str,
    role: &'static str,
    r: &Receipt,
) -> ReleaseImages {
    let mut images = Vec::new();
    for i in &r.images {
        let state = match i.target.parse::<Reference>() {
            Err(e) => format!("not checked: target {:?} is not a reference: {e}", i.target),
            Ok(t) if t.repository().registry() != registry => format!(
                "not checked: installed into {}, not {registry}",
                t.repository().registry()
            ),
            Ok(t) => match client
                .manifest_exists(t.repository(), &i.digest.to_string())
                .await
            {
                Ok(Some(_)) => "present".into(),
                Ok(None) => "missing".into(),
                Err(e) => format!("not checked: {e}"),
            },
        };
        let image = match i.target.parse::<Reference>() {
            Ok(t) => format!("{}@{}", t.repository(), i.digest),
            Err(_) => format!("{}@{}", i.target, i.digest),
        };
        images.push(ImageCheck { image, state });
    }
    ReleaseImages {
        role,
        sequence: r.sequence,
        version: r.version.clone(),
        complete: images.iter().all(|i| i.state == "present"),
        images,
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.channels {
            let seq = |s: Option<u64>| s.map_or_else(|| "none".to_string(), |s| s.to_string());
            writeln!(
                f,
                "channel {}: installed sequence {}, in the cluster {}",
                c.channel,
                seq(c.installed_sequence),
                seq(c.deployed_sequence)
            )?;
            for e in &c.history {
                let mark = if Some(e.sequence) == c.deployed_sequence {
                    "*"
                } else {
                    " "
                };
                writeln!(
                    f,
                    " {mark} {:>4}  {} {}  {}  {}  key {}  render {}  {}",
                    e.sequence,
                    e.name,
                    e.version,
                    e.installed,
                    e.index_digest,
                    e.key_fingerprint.as_deref().unwrap_or("not recorded"),
                    if e.rendered_kept { "kept" } else { "not kept" },
                    if e.applied { "applied" } else { "not applied" },
                )?;
            }
            for e in &c.events {
                writeln!(
                    f,
                    "   {} {}: {} -> {} ({} objects)",
                    e.when,
                    e.kind,
                    seq(e.from),
                    seq(e.to),
                    e.objects
                )?;
            }
            for r in &c.registry {
                let missing: Vec<&ImageCheck> =
                    r.images.iter().filter(|i| i.state != "present").collect();
                writeln!(
                    f,
                    "   registry, {} release {} ({}): {}",
                    r.role,
                    r.sequence,
                    r.version,
                    if r.complete {
                        format!("all {} images present", r.images.len())
                    } else {
                        format!("{} of {} images not present", missing.len(), r.images.len())
                    }
                )?;
                for i in missing {
                    writeln!(f, "     {}: {}", i.image, i.state)?;
                }
            }
        }
        Ok(())
    }
}
