//! Simulate's host checks: kubectl and its kustomize version, and free
//! space and inodes where the state, render and model cache dirs live.

use super::*;

/// kubectl and its kustomize version (rendering needs both).
pub(super) fn host_tools(sim: &mut Simulation) {
    let bin = atp_bundle::kubectl::binary();
    match atp_bundle::kubectl::command()
        .args(["version", "--client", "-o", "json"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            sim.host.kubectl = v["clientVersion"]["gitVersion"]
                .as_str()
                .map(str::to_string)
                .or(Some("unknown version".into()));
            sim.host.kustomize = v["kustomizeVersion"].as_str().map(str::to_string);
            if sim.host.kustomize.is_none() {
                sim.findings.push(Finding {
                    check: "host".into(),
                    problem: format!("{} reports no built-in kustomize", bin.to_string_lossy()),
                    fix: "install kubectl 1.21 or newer (kustomize v5 is built in)".into(),
                });
            }
        }
        Ok(out) => sim.findings.push(Finding {
            check: "host".into(),
            problem: format!(
                "`{} version --client` failed: {}",
                bin.to_string_lossy(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: "install a working kubectl on PATH (or point ATP_KUBECTL at one)".into(),
        }),
        Err(e) => sim.findings.push(Finding {
            check: "host".into(),
            problem: format!("cannot run {}: {e}", bin.to_string_lossy()),
            fix: "install kubectl (kustomize v5 is built in) and put it on PATH".into(),
        }),
    }
}

/// Bytes (in 4 KiB blocks) and files under `dir`.
pub(super) fn measure(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        files += 1;
        if e.file_type().is_file() {
            bytes += e
                .metadata()
                .map(|m| m.len().div_ceil(4096) * 4096)
                .unwrap_or(0);
        }
    }
    (bytes, files)
}

/// The nearest existing directory at or above `path`.
pub(super) fn existing_ancestor(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut p = abs.as_path();
    loop {
        if p.is_dir() {
            return p.to_path_buf();
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return PathBuf::from("/"),
        }
    }
}

pub(super) fn space(
    path: &Path,
    needed_bytes: u64,
    needed_inodes: u64,
    what: &str,
    sim: &mut Simulation,
) -> Option<SpaceCheck> {
    let measured = existing_ancestor(path);
    let st = match rustix::fs::statvfs(&measured) {
        Ok(s) => s,
        Err(e) => {
            sim.findings.push(Finding {
                check: "space".into(),
                problem: format!("cannot measure free space at {}: {e}", measured.display()),
                fix: format!("make sure the {what} {} can be created", path.display()),
            });
            return None;
        }
    };
    let free_bytes = st.f_bavail.saturating_mul(st.f_frsize);
    let free_inodes = (st.f_files > 0).then_some(st.f_favail);
    let check = SpaceCheck {
        path: path.to_path_buf(),
        measured: measured.clone(),
        free_bytes,
        needed_bytes,
        free_inodes,
        needed_inodes,
    };
    if free_bytes < needed_bytes || free_inodes.is_some_and(|f| f < needed_inodes) {
        sim.findings.push(Finding {
            check: "space".into(),
            problem: format!(
                "the {what} {} is on a filesystem with {free_bytes} bytes{} free; the install writes about {needed_bytes} bytes in {needed_inodes} files there",
                path.display(),
                free_inodes.map(|i| format!(" and {i} inodes")).unwrap_or_default()
            ),
            fix: format!("free space on {} or pass a {} on a larger filesystem", measured.display(), match what {
                "state dir" => "--state-dir",
                "model cache dir" => "--model-cache-dir",
                _ => "--render-to",
            }),
        });
    }
    if rustix::fs::access(&measured, rustix::fs::Access::WRITE_OK).is_err() {
        sim.findings.push(Finding {
            check: "space".into(),
            problem: format!(
                "the {what} {} cannot be written ({} is not writable)",
                path.display(),
                measured.display()
            ),
            fix: format!(
                "run as a user who may write {}, or pick another directory",
                measured.display()
            ),
        });
    }
    Some(check)
}

/// Free space where the install writes: receipt, channels, metrics and lock
/// in the state dir; the render (measured from the simulated one) in the
/// render dir, which by default is inside the state dir.
pub(super) fn space_checks(
    opts: &InstallOptions,
    prepared: &Prepared,
    render: (u64, u64),
    sim: &mut Simulation,
) {
    let report = &prepared.bundle.report;
    let files_json = report
        .config
        .as_ref()
        .map(|c| serde_json::to_vec(&c.files).map(|v| v.len()).unwrap_or(0))
        .unwrap_or(0) as u64;
    let receipt = 2048
        + files_json
        + 80 * (report.blobs.len() + report.omitted.len() + sim.objects.len()) as u64
        + 300 * sim.images.len() as u64;
    let block = |n: u64| n.div_ceil(4096).max(1) * 4096;
    // receipts/<hex>.json, channels.json, metrics.json, lock, plus temp files of atomic writes.
    let mut state_bytes = block(receipt) * 2 + 4 * 4096;
    let mut state_files = 6;
    let (render_bytes, render_files) = render;
    match &opts.render_to {
        None => {
            state_bytes += render_bytes;
            state_files += render_files;
        }
        Some(dir) => {
            sim.host.render_dir = space(dir, render_bytes, render_files, "render dir", sim);
        }
    }
    sim.host.state_dir = space(&opts.state_dir, state_bytes, state_files, "state dir", sim);
    if let Some(dir) = &opts.files.model_cache_dir {
        // An upper bound: files already there and unchanged are not rewritten.
        let files = report.config.as_ref().map(|c| &c.files[..]).unwrap_or(&[]);
        let bytes = files.iter().map(|f| block(f.size)).sum();
        sim.host.model_cache_dir = space(dir, bytes, files.len() as u64, "model cache dir", sim);
    }
    if opts.files.to_registry {
        sim.notes.push(
            "--files-to-registry: the file-set artifacts are not part of the blob plan above; push permission is checked for the image repositories only".into(),
        );
    }
}
