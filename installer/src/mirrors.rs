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
//! The mapping is the installer's own (the plan `install` pushes by, see
//! [`crate::prepare`]). A mirror can only add one path prefix per upstream
//! registry, so a layout that renames repositories (flat, most mapping files)
//! is refused naming every image it cannot express; so is an upstream whose
//! name cannot be a folder, one whose mirror would overlap another's, and the
//! site registry as an upstream of itself.
//!
//! Never writes inside the bundle's folder, never leaves a half-written DIR:
//! everything is written to a temp folder beside DIR and renamed into place.
//! Never writes credentials: nodes authenticate to the site registry their
//! own way (image pull secrets, auth files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::progress::Progress;
use atp_registry::mapping::SourceRef;
use serde::Serialize;

use crate::error::InstallError;
use crate::options::{FilesOptions, InstallOptions};
use crate::prepare::{self, Prepared};
use crate::site::Site;
use crate::state::SequenceCheck;

/// The CRI-O / podman drop-in's file name.
pub const DROP_IN: &str = "50-atp-offline.conf";
/// The CA's file name next to each `hosts.toml`.
const CONTAINERD_CA: &str = "site-ca.crt";
/// First line of the README: marks a folder as an earlier output, which a
/// new run may replace.
const README_TITLE: &str = "# Node mirror configuration written by atp-installer";

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

/// Why no mirror configuration was written.
#[derive(Debug, thiserror::Error)]
pub enum MirrorsError {
    #[error("upstream registry {host:?} (of {reference}) cannot be a folder name under certs.d: {why}; nothing was written\nhint: mirror configuration needs a lower-case host[:port] name; deploy this bundle with the rewritten references (install's rendered output) instead")]
    BadUpstream {
        host: String,
        reference: String,
        why: &'static str,
    },
    #[error("site registry {registry:?} is not a usable host[:port] name: {why}")]
    BadSite { registry: String, why: &'static str },
    #[error("{reference} comes from the site registry {registry} itself; a mirror for it would redirect the site registry's own (rewritten) references; nothing was written\nhint: deploy this bundle with the rewritten references (install's rendered output)")]
    SiteIsUpstream { registry: String, reference: String },
    #[error("{} image(s) land where a per-registry mirror cannot point (a mirror only adds one path prefix per upstream registry); nothing was written:\n{}\nhint: use the nested layout (the default, with or without --repo-prefix) or a mapping file that keeps each source path under one prefix per upstream registry; or deploy with the rewritten references (install's rendered output)", .items.len(), .items.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Inexpressible { items: Vec<String> },
    #[error("the mirrors of {first} ({first_location}) and {second} ({second_location}) overlap: {second}'s images would also be found as {first}/{suffix}/…; nothing was written\nhint: give each upstream registry its own prefix (the nested layout does)")]
    Overlap {
        first: String,
        first_location: String,
        second: String,
        second_location: String,
        suffix: String,
    },
    #[error("--output {output} is inside the bundle's folder {bundle_dir}; nothing was written\nhint: write the mirror configuration to local disk, not to the bundle's media")]
    OutputInBundle {
        output: PathBuf,
        bundle_dir: PathBuf,
    },
    #[error("--output {output} exists and is not an earlier mirror configuration; nothing was written\nhint: name a new folder (or an empty one)")]
    OutputTaken { output: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MirrorsError + '_ {
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
    check_output(&opts.output, &bundle_dirs(&install))?;
    let bundle = crate::install::verify(&install, progress).await?;
    // Writing node config changes nothing installed: no rollback question.
    let prepared = prepare::prepare(bundle, &opts.site, &|_, _| Ok(SequenceCheck::First), true)?;
    Ok(write_prepared(&prepared, &install, &opts.output)?)
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
fn location(registry: &str, path: &str) -> String {
    if path.is_empty() {
        registry.to_owned()
    } else {
        format!("{registry}/{path}")
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MirrorPlan {
    fn scheme(&self) -> &'static str {
        if self.plain_http {
            "http"
        } else {
            "https"
        }
    }

    /// The `[host."…"]` URL for `up`: the site registry, plus `/v2/PATH`
    /// (with `override_path`) when the mapping adds a path.
    pub fn host_url(&self, up: &Upstream) -> String {
        if up.path.is_empty() {
            format!("{}://{}", self.scheme(), self.registry)
        } else {
            format!("{}://{}/v2/{}", self.scheme(), self.registry, up.path)
        }
    }

    /// containerd's `certs.d/<upstream>/hosts.toml` for `up`; `ca` names a
    /// CA file beside it.
    pub fn hosts_toml(&self, up: &Upstream, ca: Option<&str>) -> String {
        // containerd reaches Docker Hub's API at registry-1.docker.io.
        let server = match up.host.as_str() {
            "docker.io" => "https://registry-1.docker.io".to_owned(),
            h => format!("https://{h}"),
        };
        let mut t = format!(
            "# Written by atp-installer mirrors: images of {host} come from the site registry\n\
             # {registry}. Goes to /etc/containerd/certs.d/{host}/hosts.toml on every node.\n\
             # Bundle references: {refs}\n\
             server = {server}\n\n\
             [host.{url}]\n  capabilities = [\"pull\", \"resolve\"]\n",
            host = up.host,
            registry = self.registry,
            refs = up.references.join(", "),
            server = toml_str(&server),
            url = toml_str(&self.host_url(up)),
        );
        if !up.path.is_empty() {
            t.push_str("  override_path = true\n");
        }
        if let Some(ca) = ca {
            t.push_str(&format!("  ca = {}\n", toml_str(ca)));
        }
        t
    }

    /// The CRI-O / podman drop-in: one `[[registry]]` per upstream.
    pub fn registries_conf(&self) -> String {
        let mut t = format!(
            "# Written by atp-installer mirrors: images of {} come from the site\n\
             # registry {}. Goes to /etc/containers/registries.conf.d/{DROP_IN} on every node.\n",
            self.upstreams
                .iter()
                .map(|u| u.host.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.registry
        );
        for up in &self.upstreams {
            t.push_str(&format!(
                "\n# {}\n[[registry]]\nprefix = {host}\nlocation = {host}\n\n[[registry.mirror]]\nlocation = {}\n",
                up.references.join(", "),
                toml_str(&location(&self.registry, &up.path)),
                host = toml_str(&up.host),
            ));
            if self.plain_http {
                t.push_str("insecure = true\n");
            }
        }
        t
    }

    /// `README.md`: where each file goes.
    pub fn readme(&self, ca: bool) -> String {
        let mut t = format!(
            "{README_TITLE}\n\n\
             Nodes pull the bundle's images by their upstream names; these files send\n\
             those pulls to the site registry `{reg}`. Copy them to every node.\n\n\
             | upstream | served from | images |\n|---|---|---|\n",
            reg = self.registry
        );
        for up in &self.upstreams {
            t.push_str(&format!(
                "| `{}` | `{}` | {} |\n",
                up.host,
                location(&self.registry, &up.path),
                up.references
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        t.push_str(
            "\n## containerd\n\n\
             Copy `containerd/certs.d/*` to `/etc/containerd/certs.d/` and make sure\n\
             containerd's CRI config names that folder (restart containerd after changing it;\n\
             files under it are read on every pull):\n\n\
             ```toml\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n```\n\n\
             ## CRI-O and podman\n\n",
        );
        t.push_str(&format!(
            "Copy `containers/registries.conf.d/{DROP_IN}` to\n\
             `/etc/containers/registries.conf.d/` (reload CRI-O afterwards). Its `[[registry]]`\n\
             tables replace any with the same prefix in `/etc/containers/registries.conf`.\n"
        ));
        if ca {
            t.push_str(&format!(
                "Copy `containers/certs.d/{reg}/ca.crt` to `/etc/containers/certs.d/{reg}/ca.crt`.\n\
                 (containerd's copy of the CA sits beside each `hosts.toml`.)\n",
                reg = self.registry
            ));
        }
        t.push_str(
            "\n## Good to know\n\n\
             - Tags resolve against the site registry: a tag moved there moves on every node.\n\
             - No credentials are written here; if the site registry needs them, give nodes\n  \
             their own (image pull secrets, or the runtime's auth file for the site registry).\n\
             - If the site registry cannot serve an image, runtimes fall back to the upstream\n  \
             registry, which an air-gapped node cannot reach: the pull fails.\n",
        );
        t
    }
}

/// Write the plan's files into a temp folder beside `output`, then rename it
/// into place (replacing an earlier output, never anything else).
pub fn write(
    plan: &MirrorPlan,
    ca: Option<&Path>,
    output: &Path,
    bundle_dirs: &[PathBuf],
) -> Result<MirrorsSummary, MirrorsError> {
    check_output(output, bundle_dirs)?;
    let ca_pem = ca.map(|p| std::fs::read(p).map_err(io(p))).transpose()?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".atp-mirrors-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for up in &plan.upstreams {
        let dir = Path::new("containerd/certs.d").join(&up.host);
        let ca_name = ca_pem.as_ref().map(|_| CONTAINERD_CA);
        files.push((
            dir.join("hosts.toml"),
            plan.hosts_toml(up, ca_name).into_bytes(),
        ));
        if let Some(pem) = &ca_pem {
            files.push((dir.join(CONTAINERD_CA), pem.clone()));
        }
    }
    files.push((
        Path::new("containers/registries.conf.d").join(DROP_IN),
        plan.registries_conf().into_bytes(),
    ));
    if let Some(pem) = &ca_pem {
        files.push((
            Path::new("containers/certs.d")
                .join(&plan.registry)
                .join("ca.crt"),
            pem.clone(),
        ));
    }
    files.push((
        "README.md".into(),
        plan.readme(ca_pem.is_some()).into_bytes(),
    ));
    for (rel, bytes) in &files {
        let path = staging.path().join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    // Readable by the runtimes' admins; a temp dir is created 0700.
    set_mode(staging.path(), 0o755)?;
    replace(staging, output)?;
    Ok(MirrorsSummary {
        output: output.to_path_buf(),
        registry: plan.registry.clone(),
        upstreams: plan.upstreams.clone(),
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), MirrorsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Move the finished staging folder to `output`: straight there when
/// nothing is in the way, swapping out an empty folder or an earlier
/// output; anything else is refused (and the staging folder removed).
fn replace(staging: tempfile::TempDir, output: &Path) -> Result<(), MirrorsError> {
    match std::fs::symlink_metadata(output) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kept = staging.keep();
            std::fs::rename(&kept, output).map_err(|source| {
                let _ = std::fs::remove_dir_all(&kept);
                MirrorsError::Io {
                    path: output.to_path_buf(),
                    source,
                }
            })
        }
        Err(e) => Err(io(output)(e)),
        Ok(m) if !m.is_dir() => Err(MirrorsError::OutputTaken {
            output: output.to_path_buf(),
        }),
        Ok(_) => {
            let empty = std::fs::read_dir(output)
                .map_err(io(output))?
                .next()
                .is_none();
            if !empty && !is_earlier_output(output) {
                return Err(MirrorsError::OutputTaken {
                    output: output.to_path_buf(),
                });
            }
            // Swap: the old folder moves aside, the new one in, the old goes.
            let aside = output.with_file_name(format!(
                ".{}.old-{}",
                output
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            std::fs::rename(output, &aside).map_err(io(output))?;
            let kept = staging.keep();
            if let Err(source) = std::fs::rename(&kept, output) {
                let _ = std::fs::rename(&aside, output);
                let _ = std::fs::remove_dir_all(&kept);
                return Err(MirrorsError::Io {
                    path: output.to_path_buf(),
                    source,
                });
            }
            std::fs::remove_dir_all(&aside).map_err(io(&aside))
        }
    }
}

fn is_earlier_output(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("README.md"))
        .map(|t| t.lines().next() == Some(README_TITLE))
        .unwrap_or(false)
}

/// Refuse an `output` inside any of the bundle's folders.
fn check_output(output: &Path, bundle_dirs: &[PathBuf]) -> Result<(), MirrorsError> {
    let out = resolve(output);
    for dir in bundle_dirs {
        let Ok(dir) = dir.canonicalize() else {
            continue;
        };
        if out.starts_with(&dir) {
            return Err(MirrorsError::OutputInBundle {
                output: output.to_path_buf(),
                bundle_dir: dir,
            });
        }
    }
    Ok(())
}

/// `path` made absolute with its links resolved as far as it exists.
fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                existing = p;
            }
            _ => return abs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_registry::mapping::{self, Layout};

    /// The images of `refs` placed as install's mapping places them.
    fn placed(refs: &[&str], layout: &Layout, prefix: Option<&str>) -> Vec<Placed> {
        let srcs: Vec<SourceRef> = refs.iter().map(|r| SourceRef::parse(r).unwrap()).collect();
        let map = mapping::map_repositories(&srcs, layout, prefix).unwrap();
        refs.iter()
            .zip(&srcs)
            .map(|(r, s)| Placed {
                source: (*r).to_owned(),
                target_repo: map[&s.repository()].clone(),
            })
            .collect()
    }

    fn site(plain: bool) -> Site {
        let mut s = Site::new("registry.site:5000");
        s.plain_http = plain;
        s
    }

    const DEMO: &[&str] = &[
        "docker.io/atp/router:1.4.0",
        "docker.io/atp/model-loader:1.4.0",
        "ghcr.io/other/tool:2",
    ];

    #[test]
    fn nested_layout_mirrors_each_upstream_at_its_host_path() {
        let p = plan(&placed(DEMO, &Layout::Nested, Some("atp/")), &site(true)).unwrap();
        let hosts: Vec<(&str, &str)> = p
            .upstreams
            .iter()
            .map(|u| (u.host.as_str(), u.path.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [("docker.io", "atp/docker.io"), ("ghcr.io", "atp/ghcr.io")]
        );
        let toml = p.hosts_toml(&p.upstreams[0], Some(CONTAINERD_CA));
        assert!(
            toml.contains("server = \"https://registry-1.docker.io\"\n"),
            "{toml}"
        );
        assert!(
            toml.contains("[host.\"http://registry.site:5000/v2/atp/docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n  ca = \"site-ca.crt\"\n"),
            "{toml}"
        );
        let conf = p.registries_conf();
        assert!(
            conf.contains("[[registry]]\nprefix = \"ghcr.io\"\nlocation = \"ghcr.io\"\n\n[[registry.mirror]]\nlocation = \"registry.site:5000/atp/ghcr.io\"\ninsecure = true\n"),
            "{conf}"
        );
    }

    #[test]
    fn tls_is_https_and_never_insecure() {
        let p = plan(&placed(DEMO, &Layout::Nested, None), &site(false)).unwrap();
        assert!(p
            .hosts_toml(&p.upstreams[1], None)
            .contains("[host.\"https://registry.site:5000/v2/ghcr.io\"]"));
        assert!(!p.hosts_toml(&p.upstreams[1], None).contains("ca ="));
        assert!(!p.registries_conf().contains("insecure"));
    }

    #[test]
    fn a_mapping_that_keeps_paths_at_the_root_needs_no_override_path() {
        let map = Layout::Explicit(
            [
                ("docker.io/atp/router".into(), "atp/router".into()),
                (
                    "docker.io/atp/model-loader".into(),
                    "atp/model-loader".into(),
                ),
            ]
            .into(),
        );
        let p = plan(&placed(&DEMO[..2], &map, None), &site(true)).unwrap();
        assert_eq!(p.upstreams[0].path, "");
        let toml = p.hosts_toml(&p.upstreams[0], None);
        assert!(
            toml.contains("[host.\"http://registry.site:5000\"]"),
            "{toml}"
        );
        assert!(!toml.contains("override_path"), "{toml}");
        assert!(p
            .registries_conf()
            .contains("location = \"registry.site:5000\"\n"));
    }

    #[test]
    fn flat_layout_and_renaming_mapping_files_are_refused_naming_each_image() {
        let err = plan(&placed(&DEMO[..2], &Layout::Flat, None), &site(true)).unwrap_err();
        let text = err.to_string();
        for r in &DEMO[..2] {
            assert!(text.contains(r), "{text}");
        }
        assert!(text.contains("registry.site:5000/router"), "{text}");
        // Two prefixes for one upstream: every image of it is named.
        let map = Layout::Explicit(
            [
                ("docker.io/atp/router".into(), "a/atp/router".into()),
                (
                    "docker.io/atp/model-loader".into(),
                    "b/atp/model-loader".into(),
                ),
            ]
            .into(),
        );
        let err = plan(&placed(&DEMO[..2], &map, None), &site(true)).unwrap_err();
        assert!(
            matches!(&err, MirrorsError::Inexpressible { items } if items.len() == 2),
            "{err}"
        );
    }

    #[test]
    fn upstreams_whose_mirrors_overlap_are_refused() {
        let map = Layout::Explicit(
            [
                ("docker.io/atp/router".into(), "m/atp/router".into()),
                ("ghcr.io/other/tool".into(), "m/ghcr/other/tool".into()),
            ]
            .into(),
        );
        let refs = ["docker.io/atp/router:1", "ghcr.io/other/tool:2"];
        let err = plan(&placed(&refs, &map, None), &site(true)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "docker.io (registry.site:5000/m) and ghcr.io (registry.site:5000/m/ghcr)"
            ),
            "{text}"
        );
        // Both at the same place.
        let map = Layout::Explicit(
            [
                ("docker.io/atp/router".into(), "atp/router".into()),
                ("ghcr.io/other/tool".into(), "other/tool".into()),
            ]
            .into(),
        );
        assert!(matches!(
            plan(&placed(&refs, &map, None), &site(true)),
            Err(MirrorsError::Overlap { .. })
        ));
    }

    #[test]
    fn upstream_names_that_cannot_be_folders_are_refused() {
        for (host, bad) in [
            ("docker.io", false),
            ("127.0.0.1:5000", false),
            ("my-registry.example", false),
            ("Quay.IO", true),
            ("..", true),
            ("a..b", true),
            ("host:99999", true),
            ("host:", true),
            ("-x.io", true),
            ("x_y.io", true),
        ] {
            let placed = [Placed {
                source: format!("{host}/a/b:1"),
                target_repo: "x/a/b".into(),
            }];
            let r = plan(&placed, &site(true));
            assert_eq!(
                matches!(r, Err(MirrorsError::BadUpstream { .. })),
                bad,
                "{host}: {r:?}"
            );
        }
    }

    #[test]
    fn the_site_registry_cannot_mirror_itself() {
        let placed = [Placed {
            source: "registry.site:5000/a/b:1".into(),
            target_repo: "registry.site-5000/a/b".into(),
        }];
        assert!(matches!(
            plan(&placed, &site(true)),
            Err(MirrorsError::SiteIsUpstream { .. })
        ));
    }

    #[test]
    fn writes_every_file_or_nothing_and_replaces_only_its_own_output() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca.crt");
        std::fs::write(&ca, "PEM").unwrap();
        let p = plan(&placed(DEMO, &Layout::Nested, None), &site(false)).unwrap();
        let out = tmp.path().join("out/mirrors");
        let s = write(&p, Some(&ca), &out, &[]).unwrap();
        for f in [
            "containerd/certs.d/docker.io/hosts.toml",
            "containerd/certs.d/docker.io/site-ca.crt",
            "containerd/certs.d/ghcr.io/hosts.toml",
            "containers/registries.conf.d/50-atp-offline.conf",
            "containers/certs.d/registry.site:5000/ca.crt",
            "README.md",
        ] {
            assert!(out.join(f).is_file(), "{f}");
            assert!(s.files.contains(&PathBuf::from(f)), "{f}");
        }
        // Again: the earlier output is replaced.
        write(&p, None, &out, &[]).unwrap();
        assert!(!out.join("containers/certs.d").exists());
        // A folder of someone else's is not.
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("notes"), "keep").unwrap();
        let err = write(&p, None, &theirs, &[]).unwrap_err();
        assert!(matches!(err, MirrorsError::OutputTaken { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(theirs.join("notes")).unwrap(),
            "keep"
        );
        // No staging folder is left behind.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn output_inside_the_bundles_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let media = tmp.path().join("usb");
        std::fs::create_dir(&media).unwrap();
        let p = plan(&placed(DEMO, &Layout::Nested, None), &site(true)).unwrap();
        let err = write(&p, None, &media.join("new/mirrors"), &[media.clone()]).unwrap_err();
        assert!(matches!(err, MirrorsError::OutputInBundle { .. }), "{err}");
        assert!(!media.join("new").exists());
        write(&p, None, &tmp.path().join("mirrors"), &[media]).unwrap();
    }
}
