//! `atp-installer uninstall`: delete the objects of the release in the
//! cluster (the list its receipt recorded when it was applied), in reverse
//! dependency order, then record an event.
//!
//! Deletes nothing it did not record. Keeps the data (PersistentVolumeClaims
//! and PersistentVolumes, and any Namespace that holds one, since deleting
//! a namespace deletes what is in it) unless `--delete-data`. Never lowers
//! the channel's installed sequence. Touches the site registry only with
//! `--prune-registry`, and then deletes by digest only the image and
//! referrer manifests this channel's receipts name and no other channel's
//! receipt does, and takes only our entries out of the fallback tag indexes
//! (format-1 receipts name images only).

use std::path::PathBuf;

use atp_bundle::kustomize::ObjectRef;
use serde::Serialize;

use crate::apply::{self, ApplyError, ApplyOptions};
use crate::history::{self, History, HistoryError};
use crate::site::Site;
use crate::state::{Event, Release, StateDir, StateError, EVENT_FORMAT};

/// What `uninstall` is asked to do.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    pub state_dir: PathBuf,
    pub channel: Option<String>,
    /// Delete PersistentVolumeClaims (and their namespace) too.
    pub delete_data: bool,
    pub apply: ApplyOptions,
    /// Print the kubectl commands; delete and record nothing.
    pub dry_run: bool,
    /// `--prune-registry`: this site registry's manifests that only this
    /// channel used are deleted too.
    pub prune: Option<Site>,
}

/// What an uninstall did, or would do (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct UninstallReport {
    pub channel: String,
    pub release: Release,
    /// The objects deleted, in the order deleted.
    pub deleted: Vec<String>,
    /// The objects left in place (the data, without `--delete-data`).
    pub kept: Vec<String>,
    pub commands: Vec<String>,
    pub applied: bool,
    /// With `--prune-registry`: what happened to each manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
    pub event: Option<PathBuf>,
}

/// What `--prune-registry` did, or (dry run) would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// `repo@digest` deleted (a dry run: to delete): the carried referrers
    /// first, then the images.
    pub deleted: Vec<String>,
    /// Each fallback tag index our entries were taken out of
    /// (`repo:sha256-<hex>: N entries removed, M left`, or `deleted` when
    /// none was left).
    pub indexes: Vec<String>,
    /// Already gone.
    pub not_found: Vec<String>,
    /// Left because another channel's receipt names them too.
    pub shared: Vec<String>,
    /// The registry does not allow deletes: nothing was pruned.
    pub unsupported: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UninstallError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("channel {channel}: no release is in the cluster as far as {state_dir} knows (none applied, or uninstalled already)")]
    NothingApplied { channel: String, state_dir: PathBuf },
    #[error("receipt {receipt} records an object {object:?} that is not Kind/namespace/name")]
    BadObject { receipt: PathBuf, object: String },
    #[error("{0}\nthe uninstall stopped part way: run it again to delete the rest")]
    Apply(#[from] ApplyError),
    #[error("pruning the registry: {0}\nthe objects were deleted and the uninstall recorded; the registry was not fully pruned\nhint: atp-installer status --registry ... lists the images still there; delete them with the registry's API")]
    Registry(#[from] atp_registry::Error),
}

/// Where a kind comes in the order objects are created; deleting goes the
/// other way, so what depends on a thing goes before the thing.
fn create_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => 2,
        "PriorityClass" | "StorageClass" | "PersistentVolume" => 3,
        "ConfigMap" | "Secret" | "PersistentVolumeClaim" => 4,
        "Service" => 5,
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "Pod" | "ReplicaSet" => 6,
        _ => 7,
    }
}

fn is_data(kind: &str) -> bool {
    matches!(kind, "PersistentVolumeClaim" | "PersistentVolume")
}

/// The objects to delete, in order, and the objects to keep.
pub fn order(objects: &[ObjectRef], delete_data: bool) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
    let kept_data: Vec<&ObjectRef> = objects
        .iter()
        .filter(|o| !delete_data && is_data(&o.kind))
        .collect();
    let keep = |o: &ObjectRef| {
        kept_data.contains(&o)
            || (o.kind == "Namespace" && kept_data.iter().any(|d| d.namespace == o.name))
    };
    let mut delete: Vec<(usize, &ObjectRef)> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| !keep(o))
        .collect();
    // Highest rank first; within a rank, the reverse of the recorded order.
    delete.sort_by(|(i, a), (j, b)| {
        create_rank(&b.kind)
            .cmp(&create_rank(&a.kind))
            .then(j.cmp(i))
    });
    (
        delete.into_iter().map(|(_, o)| o.clone()).collect(),
        objects.iter().filter(|o| keep(o)).cloned().collect(),
    )
}

/// Delete (unless a dry run) the deployed release's objects, prune the
/// registry when asked, and record it.
pub async fn uninstall(opts: &UninstallOptions) -> Result<UninstallReport, UninstallError> {
    let state = if opts.dry_run {
        None
    } else {
        Some(StateDir::open(&opts.state_dir)?)
    };
    let h = history::read_channel(&opts.state_dir, opts.channel.as_deref())?;
    let release = h.deployed().ok_or_else(|| UninstallError::NothingApplied {
        channel: h.channel.clone(),
        state_dir: opts.state_dir.clone(),
    })?;
    let receipt = h
        .receipts
        .iter()
        .find(|(_, r)| r.index_digest == release.index_digest)
        .map(|(p, _)| p.clone())
        .expect("the release came from these receipts");
    let objects: Vec<ObjectRef> = release
        .objects
        .iter()
        .map(|o| {
            apply::parse_object(o).ok_or_else(|| UninstallError::BadObject {
                receipt: receipt.clone(),
                object: o.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let (delete, kept) = order(&objects, opts.delete_data);
    let mut report = UninstallReport {
        channel: h.channel.clone(),
        release: Release::from(release),
        deleted: delete.iter().map(ToString::to_string).collect(),
        kept: kept.iter().map(ToString::to_string).collect(),
        commands: apply::delete_plan(&delete, &opts.apply),
        applied: false,
        prune: None,
        event: None,
    };
    let Some(state) = state else {
        if let Some(site) = &opts.prune {
            report.prune = Some(prune(&opts.state_dir, &h, site, true).await?);
        }
        return Ok(report);
    };
    let started = atp_bundle::format::info::format_time(time::OffsetDateTime::now_utc());
    let a = opts.apply.clone();
    tokio::task::spawn_blocking(move || apply::delete(&delete, &a))
        .await
        .expect("delete task panicked")?;
    report.applied = true;
    // The objects are gone whatever the registry says: record that first.
    let pruned = match &opts.prune {
        Some(site) => Some(prune(&opts.state_dir, &h, site, false).await),
        None => None,
    };
    let failed = match pruned {
        Some(Ok(p)) => {
            report.prune = Some(p);
            None
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    report.event = Some(
        state.write_event(&Event {
            event_format: EVENT_FORMAT,
            kind: "uninstall".into(),
            channel: h.channel.clone(),
            from: Some(report.release.clone()),
            to: None,
            installed: h.latest().map(Release::from),
            objects: report.deleted.clone(),
            kept: report.kept.clone(),
            pruned: report
                .prune
                .as_ref()
                .map(|p| p.deleted.clone())
                .unwrap_or_default(),
            result: "success".into(),
            started,
            finished: atp_bundle::format::info::format_time(time::OffsetDateTime::now_utc()),
        })?,
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// A manifest in the site registry: registry, repository name, digest.
type Placed = (String, String, atp_bundle::Digest);
/// A fallback index entry: registry, repository name, subject, digest.
type Entry = (String, String, atp_bundle::Digest, atp_bundle::Digest);

/// `host[:port]/name` split at the first `/`, when on `registry`.
fn on_site(repository: &str, registry: &str) -> Option<(String, String)> {
    let (r, n) = repository.split_once('/')?;
    (r == registry).then(|| (r.to_string(), n.to_string()))
}

/// What one receipt placed in `site`: the manifests (images, then
/// referrers) and the fallback index entries it added.
fn placed(r: &crate::state::Receipt, site: &Site) -> (Vec<Placed>, Vec<Entry>) {
    let mut manifests: Vec<Placed> = r
        .referrers
        .iter()
        .filter_map(|p| {
            let (reg, name) = on_site(&p.repository, &site.registry)?;
            Some((reg, name, p.digest.clone()))
        })
        .collect();
    manifests.extend(r.images.iter().filter_map(|i| {
        let t: atp_registry::Reference = i.target.parse().ok()?;
        let repo = t.repository();
        (repo.registry() == site.registry).then(|| {
            (
                repo.registry().to_string(),
                repo.name().to_string(),
                i.digest.clone(),
            )
        })
    }));
    let entries = r
        .index_entries
        .iter()
        .filter_map(|e| {
            let (reg, name) = on_site(&e.repository, &site.registry)?;
            Some((reg, name, e.subject.clone(), e.digest.clone()))
        })
        .collect();
    (manifests, entries)
}

/// Delete (or, `dry_run`, list) what the receipts of `h`'s channel placed
/// in `site` and no other channel's receipt names: first our entries in
/// each fallback tag index (the index rewritten once without them, or
/// deleted when nothing else is left), then the referrer manifests, then
/// the image manifests, by digest.
async fn prune(
    state_dir: &std::path::Path,
    h: &History,
    site: &Site,
    dry_run: bool,
) -> Result<PruneReport, UninstallError> {
    use std::collections::{BTreeMap, BTreeSet};
    let (mut others, mut others_entries) = (BTreeSet::new(), BTreeSet::new());
    for o in history::read(state_dir)?
        .iter()
        .filter(|o| o.channel != h.channel)
    {
        for (_, r) in &o.receipts {
            let (m, e) = placed(r, site);
            others.extend(m);
            others_entries.extend(e);
            // Another channel's referrer keeps its entry listed.
            others_entries.extend(r.referrers.iter().filter_map(|p| {
                let (reg, name) = on_site(&p.repository, &site.registry)?;
                Some((reg, name, p.subject.clone(), p.digest.clone()))
            }));
        }
    }
    let (mut ours, mut ours_entries) = (Vec::new(), BTreeSet::new());
    for (_, r) in &h.receipts {
        let (m, e) = placed(r, site);
        for p in m {
            if !ours.contains(&p) {
                ours.push(p);
            }
        }
        ours_entries.extend(e);
    }
    let client = site.client()?;
    let mut report = PruneReport::default();

    // 1. Our entries in the fallback tag indexes, one index at a time.
    let mut by_index: BTreeMap<(String, String, atp_bundle::Digest), Vec<atp_bundle::Digest>> =
        BTreeMap::new();
    for (reg, name, subject, digest) in ours_entries {
        let key = (reg.clone(), name.clone(), subject.clone(), digest.clone());
        let tag = atp_registry::referrers::fallback_tag(&subject);
        if others_entries.contains(&key) {
            report
                .shared
                .push(format!("{reg}/{name}:{tag} entry {digest}"));
            continue;
        }
        by_index
            .entry((reg, name, subject))
            .or_default()
            .push(digest);
    }
    for ((reg, name, subject), remove) in by_index {
        use atp_registry::referrers::{remove_from_fallback_index, Removal};
        let repo = atp_registry::Repository::new(&reg, &name)?;
        let shown = format!(
            "{reg}/{name}:{}",
            atp_registry::referrers::fallback_tag(&subject)
        );
        match remove_from_fallback_index(&client, &repo, &subject, &remove, dry_run).await? {
            Removal::Unchanged => {}
            Removal::Rewritten { removed, left } => report
                .indexes
                .push(format!("{shown}: {removed} entries removed, {left} left")),
            Removal::Deleted { removed } => report.indexes.push(format!(
                "{shown}: {removed} entries removed, none left: deleted"
            )),
            Removal::Unsupported => {
                report.unsupported = true;
                return Ok(report);
            }
        }
    }

    // 2. The referrer manifests, then the images.
    for (registry, name, digest) in ours {
        let shown = format!("{registry}/{name}@{digest}");
        if others.contains(&(registry.clone(), name.clone(), digest.clone())) {
            report.shared.push(shown);
            continue;
        }
        if dry_run {
            report.deleted.push(shown);
            continue;
        }
        let repo = atp_registry::Repository::new(&registry, &name)?;
        match client.delete_manifest(&repo, &digest).await? {
            atp_registry::Deleted::Deleted => report.deleted.push(shown),
            atp_registry::Deleted::NotFound => report.not_found.push(shown),
            atp_registry::Deleted::Unsupported => {
                report.unsupported = true;
                break;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> ObjectRef {
        apply::parse_object(s).unwrap()
    }

    #[test]
    fn dependents_go_first_and_data_stays_with_its_namespace() {
        let objects: Vec<ObjectRef> = [
            "Namespace/-/atp-system",
            "ConfigMap/atp-system/config",
            "Secret/atp-system/atp-registry-pull",
            "PersistentVolumeClaim/atp-system/model-cache",
            "Service/atp-system/router",
            "Deployment/atp-system/router",
            "HorizontalPodAutoscaler/atp-system/router",
        ]
        .map(o)
        .to_vec();
        let names = |v: &[ObjectRef]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let (delete, kept) = order(&objects, false);
        assert_eq!(
            names(&delete),
            [
                "HorizontalPodAutoscaler/atp-system/router",
                "Deployment/atp-system/router",
                "Service/atp-system/router",
                "Secret/atp-system/atp-registry-pull",
                "ConfigMap/atp-system/config",
            ]
        );
        assert_eq!(
            names(&kept),
            [
                "Namespace/-/atp-system",
                "PersistentVolumeClaim/atp-system/model-cache"
            ]
        );
        let (delete, kept) = order(&objects, true);
        assert!(kept.is_empty());
        assert_eq!(
            names(&delete[3..]),
            [
                "PersistentVolumeClaim/atp-system/model-cache",
                "Secret/atp-system/atp-registry-pull",
                "ConfigMap/atp-system/config",
                "Namespace/-/atp-system",
            ]
        );
    }
}
