//! `atp-installer mirrors` and `install --mirrors-to`: node mirror
//! configuration, the other way to deploy a bundle. Instead of rewriting
//! image references (the rendered output pins `REGISTRY/…@sha256:…`), each
//! node's runtime is told where the unmodified upstream references
//! (`docker.io/atp/router:1.4.0`) live in the site registry:
//!
//! - containerd: `DIR/containerd/certs.d/<upstream>/hosts.toml`, one per
//!   upstream registry, its `[host]` the site registry at the mapped path
//!   (`override_path` when the mapping adds a path), `ca` when a CA is given;
//! - CRI-O and podman: `DIR/containers/registries.conf.d/50-atp-offline.conf`
//!   with one `[[registry]]` per upstream and its `[[registry.mirror]]`, and
//!   the CA as `DIR/containers/certs.d/<site registry>/ca.crt`;
//! - `DIR/README.md`: where each file goes on a node.
//!
//! The mapping is the installer's own: the plan `install` pushes by (see
//! [`crate::prepare`]), or, without the bundle, where the state dir's last
//! receipt for the site registry says each image went ([`from_receipt`]). A mirror can only add one path prefix per upstream
//! registry, so a layout that renames repositories (flat, most mapping files)
//! is refused naming every image it cannot express; so is an upstream whose
//! name cannot be a folder, one whose mirror would overlap another's, and the
//! site registry as an upstream of itself.
//!
//! Never writes inside the bundle's folder, never leaves a half-written DIR:
//! everything is written to a temp folder beside DIR and renamed into place.
//! Never writes credentials: nodes authenticate to the site registry their
//! own way (image pull secrets, auth files).
//!
//! `text` renders each file's contents from a [`MirrorPlan`]; `write` puts
//! them in place (and guards `--output`); `tests` holds the unit tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::progress::Progress;
use atp_registry::mapping::SourceRef;
use serde::Serialize;

use crate::error::InstallError;
pub use crate::error::MirrorsError;
use crate::options::{FilesOptions, InstallOptions};
use crate::prepare::{self, Prepared};
use crate::site::Site;
use crate::state::SequenceCheck;

mod text;
mod write;

use write::check_output;
pub use write::write;

/// The CRI-O / podman drop-in's file name.
pub const DROP_IN: &str = "50-atp-offline.conf";
/// The CA's file name next to each `hosts.toml`.
pub(crate) const CONTAINERD_CA: &str = "site-ca.crt";
/// First line of the README: marks a folder as an earlier output, which a
/// new run may replace.
pub(crate) const README_TITLE: &str = "# Node mirror configuration written by atp-installer";

/// What `atp-installer mirrors` is asked to do.
#[derive(Debug, Clone)]
pub struct MirrorsOptions {
    pub bundle: PathBuf,
    /// More folders to look for volumes in (`--volumes-from`).
    pub volumes_from: Vec<PathBuf>,
    pub key: PathBuf,
    /// The site registry and where images land in it (prefix, layout).
    pub site: Site,
    /// The folder to write (`--output`).
    pub output: PathBuf,
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MirrorsError + '_ {
    move |source| MirrorsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One image as install places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The upstream reference, e.g. `docker.io/atp/router:1.4.0`.
    pub source: String,
    /// Its repository in the site registry, without the registry host.
    pub target_repo: String,
}

/// One upstream registry and where its repositories sit in the site registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// `docker.io`, `ghcr.io`, `host:5000`.
    pub host: String,
    /// The path prefix in the site registry (`""`: at its root).
    pub path: String,
    /// The bundle's references from this upstream.
    pub references: Vec<String>,
}

/// Mirror configuration for every upstream registry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorPlan {
    /// The site registry, `host[:port]`.
    pub registry: String,
    pub plain_http: bool,
    pub upstreams: Vec<Upstream>,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorsSummary {
    pub output: PathBuf,
    pub registry: String,
    pub upstreams: Vec<Upstream>,
    /// Every file written, relative to `output`.
    pub files: Vec<PathBuf>,
}

/// Verify the bundle (sends nothing), map its images as install does, and
/// write the mirror configuration to `opts.output`.
pub async fn mirrors(
    opts: &MirrorsOptions,
    progress: Arc<dyn Progress>,
) -> Result<MirrorsSummary, InstallError> {
    let install = InstallOptions {
        bundle: opts.bundle.clone(),
        volumes_from: opts.volumes_from.clone(),
        key: opts.key.clone(),
        site: opts.site.clone(),
        render_to: None,
        apply: None,
        state_dir: PathBuf::new(),
        metrics_file: None,
        allow_downgrade: true,
        single_pass: false,
        files: FilesOptions::default(),
        mirrors_to: Some(opts.output.clone()),
    };
    // Refuse a bad --output before the (long) verification.
    check_mirrors_to(&install)?;
    let bundle = prepare::verify(&install, progress).await?;
    // Writing node config changes nothing installed: no rollback question.
    let prepared = prepare::prepare(bundle, &opts.site, &|_, _| Ok(SequenceCheck::First), true)?;
    Ok(write_prepared(&prepared, &install, &opts.output)?)
}

/// `install --mirrors-to DIR`, checked before anything is sent: `DIR` is
/// not on the bundle's media and holds nothing but an earlier output. (For
/// the install's pre-flight; the write checks again.)
pub fn check_mirrors_to(opts: &InstallOptions) -> Result<(), MirrorsError> {
    match &opts.mirrors_to {
        Some(output) => check_output(output, &bundle_dirs(opts)),
        None => Ok(()),
    }
}

/// `install --mirrors-to`: the mirror configuration for a prepared bundle.
/// Writes nothing unless `opts.mirrors_to` is set.
pub fn write_for(
    prepared: &Prepared,
    opts: &InstallOptions,
) -> Result<Option<MirrorsSummary>, MirrorsError> {
    match &opts.mirrors_to {
        Some(output) => write_prepared(prepared, opts, output).map(Some),
        None => Ok(None),
    }
}

/// Map as the plan does, plan the mirrors, write them to `output`.
fn write_prepared(
    prepared: &Prepared,
    opts: &InstallOptions,
    output: &Path,
) -> Result<MirrorsSummary, MirrorsError> {
    let placed: Vec<Placed> = prepared
        .plan
        .images
        .iter()
        .map(|p| Placed {
            source: p.source.clone(),
            target_repo: p.target.name().to_owned(),
        })
        .collect();
    let plan = plan(&placed, &opts.site)?;
    let summary = write(
        &plan,
        opts.site.registry_ca.as_deref(),
        output,
        &bundle_dirs(opts),
    )?;
    tracing::info!(
        "wrote node mirror configuration for {} upstream registr{} to {}",
        summary.upstreams.len(),
        if summary.upstreams.len() == 1 {
            "y"
        } else {
            "ies"
        },
        output.display()
    );
    Ok(summary)
}

/// `atp-installer mirrors --state-dir DIR`: the mirror configuration for the
/// last install into `site.registry` that the state dir records, from its
/// receipt: the images where that install put them, no bundle needed.
pub fn from_receipt(
    state_dir: &Path,
    site: &Site,
    output: &Path,
) -> Result<MirrorsSummary, MirrorsError> {
    let receipts = crate::state::read_receipts_strict(state_dir)?;
    let last = receipts
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.registry == site.registry && r.result == "success")
        .max_by(|a, b| (&a.finished, a.sequence).cmp(&(&b.finished, b.sequence)))
        .ok_or_else(|| MirrorsError::NoReceipt {
            state_dir: state_dir.to_path_buf(),
            registry: site.registry.clone(),
        })?;
    let placed = last
        .images
        .iter()
        .map(|i| {
            target_repo(&i.target, &last.registry)
                .map(|target_repo| Placed {
                    source: i.source.clone(),
                    target_repo,
                })
                .ok_or_else(|| MirrorsError::ForeignTarget {
                    receipt: last.index_digest.to_string(),
                    target: i.target.clone(),
                    registry: last.registry.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan(&placed, site)?;
    write(&plan, site.registry_ca.as_deref(), output, &[])
}

/// `REGISTRY/repo:tag` or `REGISTRY/repo@digest` → `repo`.
fn target_repo(target: &str, registry: &str) -> Option<String> {
    let rest = target.strip_prefix(registry)?.strip_prefix('/')?;
    let rest = rest.split_once('@').map_or(rest, |(r, _)| r);
    let repo = match rest.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => rest,
    };
    (!repo.is_empty()).then(|| repo.to_owned())
}

/// The folders the bundle's media occupy (the bundle's own, `--volumes-from`).
fn bundle_dirs(opts: &InstallOptions) -> Vec<PathBuf> {
    let own = if opts.bundle.is_dir() {
        opts.bundle.clone()
    } else {
        let parent = opts.bundle.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_path_buf()
        }
    };
    std::iter::once(own)
        .chain(opts.volumes_from.iter().cloned())
        .collect()
}

/// Group the placed images by upstream registry and find the one path
/// prefix each upstream's repositories sit under. Pure; reads nothing.
pub fn plan(images: &[Placed], site: &Site) -> Result<MirrorPlan, MirrorsError> {
    check_host(&site.registry).map_err(|why| MirrorsError::BadSite {
        registry: site.registry.clone(),
        why,
    })?;
    // host -> [(reference, path under the prefix, target repo, prefix if expressible)]
    let mut by_host: BTreeMap<String, Vec<(&Placed, Option<String>)>> = BTreeMap::new();
    for p in images {
        // The plan's sources parsed once already; a failure here cannot happen.
        let Ok(src) = SourceRef::parse(&p.source) else {
            continue;
        };
        check_host(&src.host).map_err(|why| MirrorsError::BadUpstream {
            host: src.host.clone(),
            reference: p.source.clone(),
            why,
        })?;
        if src.host == site.registry {
            return Err(MirrorsError::SiteIsUpstream {
                registry: site.registry.clone(),
                reference: p.source.clone(),
            });
        }
        let prefix = if p.target_repo == src.path {
            Some(String::new())
        } else {
            p.target_repo
                .strip_suffix(&format!("/{}", src.path))
                .map(str::to_owned)
        };
        by_host.entry(src.host).or_default().push((p, prefix));
    }
    let mut items = Vec::new();
    let mut upstreams = Vec::new();
    for (host, placed) in by_host {
        let prefixes: std::collections::BTreeSet<&Option<String>> =
            placed.iter().map(|(_, pre)| pre).collect();
        match prefixes.into_iter().collect::<Vec<_>>()[..] {
            [Some(path)] => {
                let mut references: Vec<String> =
                    placed.iter().map(|(p, _)| p.source.clone()).collect();
                references.dedup();
                upstreams.push(Upstream {
                    host,
                    path: path.clone(),
                    references,
                });
            }
            _ => {
                for (p, pre) in &placed {
                    let at = format!("{}/{}", site.registry, p.target_repo);
                    items.push(match pre {
                        None => format!(
                            "{} lands on {at}, which no prefix before its path gives",
                            p.source
                        ),
                        Some(pre) => format!(
                            "{} lands on {at} (under {:?}), other images of {host} under another prefix",
                            p.source, pre
                        ),
                    });
                }
            }
        }
    }
    if !items.is_empty() {
        return Err(MirrorsError::Inexpressible { items });
    }
    check_overlaps(&site.registry, &upstreams)?;
    Ok(MirrorPlan {
        registry: site.registry.clone(),
        plain_http: site.plain_http,
        upstreams,
    })
}

/// Two upstreams whose mirror locations are equal, or one inside the other,
/// would serve each other's repositories.
fn check_overlaps(registry: &str, upstreams: &[Upstream]) -> Result<(), MirrorsError> {
    for a in upstreams {
        for b in upstreams {
            if a.host == b.host {
                continue;
            }
            let suffix = if a.path.is_empty() {
                Some(b.path.as_str())
            } else {
                b.path
                    .strip_prefix(&format!("{}/", a.path))
                    .or_else(|| (a.path == b.path).then_some(""))
            };
            if let Some(suffix) = suffix {
                if suffix.is_empty() && a.host > b.host {
                    continue; // an equal pair is reported once
                }
                return Err(MirrorsError::Overlap {
                    first: a.host.clone(),
                    first_location: location(registry, &a.path),
                    second: b.host.clone(),
                    second_location: location(registry, &b.path),
                    suffix: if suffix.is_empty() {
                        "<repository>".into()
                    } else {
                        suffix.to_owned()
                    },
                });
            }
        }
    }
    Ok(())
}

/// A registry host as containerd looks it up under `certs.d` and podman
/// under `certs.d`: `name[:port]`, lower-case DNS labels or an IPv4 address.
fn check_host(host: &str) -> Result<(), &'static str> {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err("the port must be a number up to 65535");
        }
    }
    if name.is_empty() || name.len() > 253 {
        return Err("the name must be 1 to 253 characters");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("runtimes look the folder up in lower case");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("each dot-separated part must be letters, digits and inner dashes");
        }
    }
    Ok(())
}

/// `REGISTRY[/PATH]`, the mirror location in podman's terms.
pub(crate) fn location(registry: &str, path: &str) -> String {
    if path.is_empty() {
        registry.to_owned()
    } else {
        format!("{registry}/{path}")
    }
}

#[cfg(test)]
mod tests;
