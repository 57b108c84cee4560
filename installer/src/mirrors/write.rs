//! Put a [`MirrorPlan`]'s files in place: all of them in a fresh folder
//! beside `--output`, renamed into place ([`crate::swap`], as the render
//! does); an earlier output (its `README.md` title is the marker) is swapped
//! out, anything else in the way refused. Never writes inside the bundle's
//! folders, never follows `--output` into someone else's files.

use std::path::{Path, PathBuf};

use crate::swap::{Marker, SwapError, Target};

use super::{io, MirrorPlan, MirrorsError, MirrorsSummary, CONTAINERD_CA, DROP_IN, README_TITLE};

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
    let target = target(output);
    let parent = target.parent();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = target.stage().map_err(|e| swap_error(output, e))?;
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
    target
        .put_in_place(staging)
        .map_err(|e| swap_error(output, e))?;
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

/// `--output` as [`crate::swap`] writes it: fresh `.atp-mirrors-*`
/// folders beside it, replaced only when it is an earlier output.
fn target(output: &Path) -> Target<'_> {
    Target {
        path: output,
        prefix: ".atp-mirrors-",
        marker: Marker {
            file: "README.md",
            first_line: Some(README_TITLE),
        },
    }
}

fn swap_error(output: &Path, e: SwapError) -> MirrorsError {
    match e {
        SwapError::Io { path, source } => MirrorsError::Io { path, source },
        SwapError::Taken { .. } => MirrorsError::OutputTaken {
            output: output.to_path_buf(),
        },
    }
}

/// Refuse an `output` inside any of the bundle's folders, and one that
/// holds something other than an earlier output (a file, a link, a folder
/// of other files). [`write`] checks again as it renames.
pub(super) fn check_output(output: &Path, bundle_dirs: &[PathBuf]) -> Result<(), MirrorsError> {
    target(output).check().map_err(|e| swap_error(output, e))?;
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
