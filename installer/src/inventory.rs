//! What the site registry already holds, for delta bundles (`docs/delta.md`).
//!
//! - [`inventory`]: `atp-installer inventory` walks every image the install
//!   receipts name, in the registry itself (manifest GETs by digest, blob
//!   HEADs), and writes a small plain-JSON [`SiteInventory`] to carry back
//!   out of the gap. What the receipts promise but the registry no longer has
//!   (a wiped or garbage-collected registry) is left out and reported.
//! - [`receipt_repositories`]: the repositories the receipts name, where
//!   install's delta pre-check (the `delta` module) looks for omitted blobs.
//!
//! Reads the state dir, never writes it; the inventory never holds a
//! credential; nothing here uploads a byte of blob data.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use atp_bundle::format::info::format_time;
use atp_bundle::format::inventory::{
    Gone, InventoryBundle, SiteInventory, INVENTORY_FORMAT, INVENTORY_KIND,
};
use atp_bundle::Digest;
use atp_registry::{Client, ParsedManifest, Reference, Repository};
use futures_util::{StreamExt, TryStreamExt};

use crate::site::Site;
use crate::state::{read_receipts, Receipt, StateDir};

/// Everything `inventory` needs.
#[derive(Debug, Clone)]
pub struct InventoryOptions {
    /// The site registry, as given to `install` (its `concurrency` bounds
    /// the requests in flight).
    pub site: Site,
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("no installer state in {path}\nhint: pass the --state-dir that `atp-installer install` used")]
    NoState { path: PathBuf },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("receipt {index}: image target {target:?} is not a reference: {source}")]
    BadTarget {
        index: String,
        target: String,
        #[source]
        source: atp_registry::Error,
    },
    #[error("asking {what} of the registry: {source}")]
    Registry {
        what: String,
        #[source]
        source: atp_registry::Error,
    },
}

/// An image's target repository and root digest.
type Placed = (Repository, Digest);

/// The receipts of bundles installed into `registry`, each with the
/// repository and root digest of its images.
fn receipts_for(
    receipts: Vec<Receipt>,
    registry: &str,
) -> Result<Vec<(Receipt, Vec<Placed>)>, InventoryError> {
    let mut out = Vec::new();
    for r in receipts {
        if r.registry != registry {
            tracing::info!(
                "skipping receipt {} {}: installed into {}, not {registry}",
                r.name,
                r.version,
                r.registry
            );
            continue;
        }
        let mut images = Vec::new();
        for i in &r.images {
            let reference: Reference =
                i.target
                    .parse()
                    .map_err(|source| InventoryError::BadTarget {
                        index: r.index_digest.to_string(),
                        target: i.target.clone(),
                        source,
                    })?;
            images.push((reference.repository().clone(), i.digest.clone()));
        }
        out.push((r, images));
    }
    Ok(out)
}

/// One image as found in the registry.
#[derive(Debug, Default)]
struct Walked {
    /// Configs and layers present.
    present: Vec<Digest>,
    /// Manifests (`repo@digest`) no longer there.
    gone_manifests: Vec<String>,
    /// Configs and layers of present manifests no longer there.
    gone_blobs: Vec<Digest>,
}

impl Walked {
    fn whole(&self) -> bool {
        self.gone_manifests.is_empty() && self.gone_blobs.is_empty()
    }
}

/// Walk one image in the registry from its root: GET every manifest by
/// digest (digest-checked by the client), HEAD every config and layer.
async fn walk(client: &Client, repo: &Repository, root: &Digest) -> Result<Walked, InventoryError> {
    let mut w = Walked::default();
    let mut stack = vec![root.clone()];
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let m = match client.get_manifest_by_digest(repo, &d).await {
            Ok(m) => m,
            Err(atp_registry::Error::NotFound { .. }) => {
                w.gone_manifests.push(format!("{repo}@{d}"));
                continue;
            }
            Err(source) => {
                return Err(InventoryError::Registry {
                    what: format!("manifest {repo}@{d}"),
                    source,
                })
            }
        };
        let kind = m.kind().map_err(|source| InventoryError::Registry {
            what: format!("manifest {repo}@{d}"),
            source,
        })?;
        match kind {
            ParsedManifest::Index { manifests } => {
                stack.extend(manifests.into_iter().map(|c| c.digest));
            }
            ParsedManifest::Image { config, layers } => {
                for c in std::iter::once(config).chain(layers) {
                    let found = client
                        .blob_exists(repo, &c.digest)
                        .await
                        .map_err(|source| InventoryError::Registry {
                            what: format!("blob {repo}@{}", c.digest),
                            source,
                        })?;
                    match found {
                        Some(_) => w.present.push(c.digest),
                        None => w.gone_blobs.push(c.digest),
                    }
                }
            }
        }
    }
    Ok(w)
}

/// Take the inventory of the site registry (see the module docs).
pub async fn inventory(opts: &InventoryOptions) -> Result<SiteInventory, InventoryError> {
    if !opts.state_dir.join("receipts").is_dir() {
        return Err(InventoryError::NoState {
            path: opts.state_dir.clone(),
        });
    }
    // Held for the walk, so no install changes the receipts meanwhile.
    let _state = StateDir::open(&opts.state_dir)?;
    let receipts = receipts_for(read_receipts(&opts.state_dir), &opts.site.registry)?;
    let client = opts
        .site
        .client()
        .map_err(|source| InventoryError::Registry {
            what: "a client".into(),
            source,
        })?;
    let images: BTreeSet<(Repository, Digest)> = receipts
        .iter()
        .flat_map(|(_, imgs)| imgs.iter().cloned())
        .collect();
    let walked: BTreeMap<(Repository, Digest), Walked> = futures_util::stream::iter(images)
        .map(|(repo, root)| {
            let client = &client;
            async move {
                let w = walk(client, &repo, &root).await?;
                Ok::<_, InventoryError>(((repo, root), w))
            }
        })
        .buffer_unordered(opts.site.concurrency.max(1))
        .try_collect()
        .await?;

    let mut blobs = BTreeSet::new();
    let mut gone = Gone::default();
    let mut gone_blobs = BTreeSet::new();
    for w in walked.values() {
        blobs.extend(w.present.iter().cloned());
        gone.images.extend(w.gone_manifests.iter().cloned());
        gone_blobs.extend(w.gone_blobs.iter().cloned());
    }
    // A blob gone from one repository may still be present in another.
    gone.blobs = gone_blobs.difference(&blobs).cloned().collect();
    gone.images.sort();
    gone.images.dedup();

    let mut bundles = Vec::new();
    let mut channels: BTreeMap<String, u64> = BTreeMap::new();
    for (r, imgs) in &receipts {
        let complete = imgs
            .iter()
            .all(|k| walked.get(k).is_some_and(Walked::whole));
        if complete {
            let s = channels.entry(r.channel.clone()).or_default();
            *s = (*s).max(r.sequence);
        } else {
            tracing::warn!(
                "bundle {} {} (#{} on {}) is no longer whole in {}",
                r.name,
                r.version,
                r.sequence,
                r.channel,
                opts.site.registry
            );
        }
        bundles.push(InventoryBundle {
            index: r.index_digest.clone(),
            name: r.name.clone(),
            version: r.version.clone(),
            channel: r.channel.clone(),
            sequence: r.sequence,
            complete,
        });
    }
    bundles.sort_by(|a, b| (&a.channel, a.sequence).cmp(&(&b.channel, b.sequence)));
    Ok(SiteInventory {
        kind: INVENTORY_KIND.into(),
        format: INVENTORY_FORMAT,
        registry: opts.site.registry.clone(),
        created: format_time(time::OffsetDateTime::now_utc()),
        bundles,
        channels,
        blobs: blobs.into_iter().collect(),
        gone,
    })
}

/// Repositories of `registry` that the receipts in `state_dir` say hold
/// images: those of the `bases` first, then every other bundle's. Reads the
/// receipts without taking the state dir's lock (the caller may hold it);
/// none when there is no state dir yet.
pub fn receipt_repositories(
    state_dir: &Path,
    registry: &str,
    bases: &[Digest],
) -> Result<Vec<Repository>, InventoryError> {
    let mut all = receipts_for(read_receipts(state_dir), registry)?;
    all.sort_by_key(|(r, _)| !bases.contains(&r.index_digest));
    let mut out: Vec<Repository> = Vec::new();
    for (_, imgs) in all {
        for (repo, _) in imgs {
            if !out.contains(&repo) {
                out.push(repo);
            }
        }
    }
    Ok(out)
}

/// Write an inventory as pretty JSON, atomically, mode 0644.
pub fn write(path: &std::path::Path, inv: &SiteInventory) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(inv).expect("an inventory serializes");
    bytes.push(b'\n');
    crate::metrics::write_atomic(path, &bytes, 0o644)
}
