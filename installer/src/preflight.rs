//! Pre-flight: what `install` and `simulate` can check before the first
//! request leaves this machine, so a typo never surfaces after an hour of
//! pushing. The `--registry` spelling, every output path (`--metrics-file`,
//! `--render-to`, `--model-cache-dir`, `--mirrors-to`, the state dir), and,
//! once the bundle
//! is known to ship manifests, the tools the run will start (kubectl).
//!
//! Reads metadata only. The one write is [`Probe::Write`]: an unnamed temp
//! file in an output folder, gone when closed, so a read-only folder is found
//! now; `simulate` never asks for it.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::error::PreflightError;
use crate::options::InstallOptions;

/// Something that would make the real install fail, and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Which check: `bundle`, `rollback`, `registry`, `tls`, `credentials`,
    /// `push`, `delta`, `host`, `space`, `overlay`, `air-gap gate`, `cluster`.
    pub check: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}\n  fix: {}", self.check, self.problem, self.fix)
    }
}

/// Whether to prove an output folder writable by writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Metadata only (`simulate`).
    ReadOnly,
    /// Also create (and drop) an unnamed temp file in each output folder.
    Write,
}

/// Everything that needs no bundle: the registry spelling and the outputs.
/// Returns every problem found, not just the first.
pub fn check(opts: &InstallOptions, probe: Probe) -> Vec<PreflightError> {
    let mut found = Vec::new();
    if let Err(e) = registry(&opts.site.registry) {
        found.push(e);
    }
    let outputs: [(&'static str, Option<&Path>, Kind); 4] = [
        ("--state-dir", Some(&opts.state_dir), Kind::Folder),
        ("--metrics-file", opts.metrics_file.as_deref(), Kind::File),
        ("--render-to", opts.render_to.as_deref(), Kind::RenderFolder),
        (
            "--model-cache-dir",
            opts.files.model_cache_dir.as_deref(),
            Kind::Folder,
        ),
    ];
    for (flag, path, kind) in outputs {
        if let Some(path) = path {
            if let Err(e) = output(flag, path, kind, probe) {
                found.push(e);
            }
        }
    }
    // --mirrors-to: the mirrors module's own check (not on the bundle's
    // media, nothing in the way but an earlier output).
    if let Err(e) = crate::mirrors::check_mirrors_to(opts) {
        found.push(PreflightError::Mirrors(e));
    }
    found
}

/// [`check`] for `simulate` (metadata only), as simulation findings.
pub fn simulate_findings(opts: &InstallOptions) -> Vec<Finding> {
    check(opts, Probe::ReadOnly)
        .into_iter()
        .map(|e| {
            let check = match e {
                PreflightError::Registry { .. } => "registry",
                _ => "outputs",
            };
            let text = e.to_string();
            let (problem, fix) = text.split_once("\nhint: ").unwrap_or((&text, ""));
            Finding {
                check: check.into(),
                problem: problem
                    .replace("; nothing was sent to the registry", "")
                    .replace("; nothing was sent", ""),
                fix: fix.into(),
            }
        })
        .collect()
}

/// The tools a run will start, checked once the bundle is verified and
/// before any request: kubectl renders the bundle's manifests (`kubectl
/// kustomize`, every install that ships manifests) and applies them
/// (`--apply`).
pub fn check_tools(ships_manifests: bool, apply: bool) -> Result<(), PreflightError> {
    let needed = match (ships_manifests, apply) {
        (true, true) => "render the bundle's manifests (kubectl kustomize) and apply them",
        (true, false) => "render the bundle's manifests (kubectl kustomize), even without --apply",
        (false, true) => "apply (--apply)",
        (false, false) => return Ok(()),
    };
    let located = atp_bundle::kubectl::locate();
    if located.found.is_some() {
        return Ok(());
    }
    Err(PreflightError::Tool {
        tool: located.tool.to_string_lossy().into_owned(),
        looked: located.looked.to_string(),
        needed: needed.into(),
    })
}

/// `--registry` takes `HOST[:PORT]`: not a URL, not a path.
pub fn registry(given: &str) -> Result<(), PreflightError> {
    let refuse = |reason: &str, hint: &'static str| PreflightError::Registry {
        given: given.to_string(),
        reason: reason.to_string(),
        hint,
    };
    if given.trim().is_empty() {
        return Err(refuse(
            "is empty",
            "pass the site registry as HOST[:PORT], e.g. --registry registry.site.example:5000",
        ));
    }
    if let Some((scheme, _)) = given.split_once("://") {
        let hint = if scheme.eq_ignore_ascii_case("http") {
            "drop the scheme: --registry HOST[:PORT] --plain-http (TLS is the default)"
        } else {
            "drop the scheme: --registry HOST[:PORT] (TLS is the default)"
        };
        return Err(refuse(
            &format!("is a URL ({scheme}://); it takes HOST[:PORT] only"),
            hint,
        ));
    }
    if given.contains('/') {
        return Err(refuse(
            "has a path; it takes HOST[:PORT] only",
            "put a repository path under the registry with --repo-prefix PREFIX",
        ));
    }
    atp_registry::Repository::new(given, "atp-offline/preflight").map_err(|e| {
        let reason = match e {
            atp_registry::Error::InvalidReference { reason, .. } => reason,
            other => other.to_string(),
        };
        refuse(
            &format!("is not a registry address ({reason})"),
            "HOST is a DNS name or an IP address ([::1] for IPv6), PORT a number: --registry HOST[:PORT]",
        )
    })?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A file the run writes (temp file beside it, then rename).
    File,
    /// A folder the run creates if needed and writes into.
    Folder,
    /// `--render-to`: a folder the installer made, or a new or empty one.
    RenderFolder,
}

fn output(flag: &'static str, path: &Path, kind: Kind, probe: Probe) -> Result<(), PreflightError> {
    let refuse = |reason: String, hint: String| PreflightError::Output {
        flag,
        path: path.to_path_buf(),
        reason,
        hint,
    };
    let meta = std::fs::metadata(path).ok();
    let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
    match kind {
        Kind::File if is_dir => {
            return Err(refuse(
                "is a folder".into(),
                format!(
                    "{flag} takes a file name, e.g. {}",
                    path.join("atp.prom").display()
                ),
            ))
        }
        Kind::Folder if meta.is_some() && !is_dir => {
            return Err(refuse(
                "exists and is not a folder".into(),
                format!("give {flag} a folder (it is created if missing)"),
            ))
        }
        Kind::RenderFolder => {
            crate::render::check_out_dir(path).map_err(|e| {
                let text = e.to_string();
                let (reason, hint) = text.split_once("\nhint: ").unwrap_or((&text, ""));
                let reason = reason
                    .trim_end_matches("; nothing was written there")
                    .to_string();
                refuse(reason, hint.to_string())
            })?;
        }
        _ => {}
    }
    // The folder the run writes in: the path itself for a folder that
    // exists, else the nearest existing ancestor (the run creates the rest).
    let start = if kind == Kind::File {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    let start = if start.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        start
    };
    let mut dir = start.as_path();
    loop {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(refuse(
                    format!("{} is not a folder", dir.display()),
                    format!("give {flag} a path under a folder"),
                ))
            }
            Err(_) => match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir = p,
                _ => {
                    dir = Path::new(".");
                    break;
                }
            },
        }
    }
    if probe == Probe::Write {
        if let Err(e) = tempfile::tempfile_in(dir) {
            return Err(refuse(
                format!("cannot write in {}: {e}", dir.display()),
                format!("give {flag} a path in a folder this user can write to"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls_paths_and_bad_hosts_are_refused_with_the_flag_to_use() {
        assert!(registry("127.0.0.1:5000").is_ok());
        assert!(registry("registry.site.example").is_ok());
        assert!(registry("[::1]:5000").is_ok());
        let e = registry("http://127.0.0.1:5000").unwrap_err().to_string();
        assert!(
            e.contains("is a URL (http://)") && e.contains("--plain-http"),
            "{e}"
        );
        assert!(!e.contains("image reference"), "{e}");
        let e = registry("https://r.example").unwrap_err().to_string();
        assert!(e.contains("is a URL") && !e.contains("--plain-http"), "{e}");
        let e = registry("r.example/team").unwrap_err().to_string();
        assert!(e.contains("--repo-prefix"), "{e}");
        let e = registry("r.example:port").unwrap_err().to_string();
        assert!(e.contains("not a registry address"), "{e}");
        assert!(registry("").is_err());
    }

    #[test]
    fn output_paths_are_checked_for_kind_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = output("--metrics-file", dir.path(), Kind::File, Probe::Write).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        assert!(output(
            "--metrics-file",
            &dir.path().join("m.prom"),
            Kind::File,
            Probe::Write
        )
        .is_ok());
        let e = output(
            "--metrics-file",
            &file.join("m.prom"),
            Kind::File,
            Probe::Write,
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not a folder"), "{e}");
        let e = output("--state-dir", &file, Kind::Folder, Probe::ReadOnly).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
        assert!(output(
            "--state-dir",
            &dir.path().join("a/b/c"),
            Kind::Folder,
            Probe::Write
        )
        .is_ok());
        let e = output(
            "--render-to",
            dir.path(),
            Kind::RenderFolder,
            Probe::ReadOnly,
        )
        .unwrap_err();
        assert!(e.to_string().contains("render marker"), "{e}");
    }
}
