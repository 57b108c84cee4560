//! `atp-bundler create --simulate`: right after a bundle is written, prove it
//! self-sufficient from its own bytes, as the site will see it:
//! - its kustomize layer unpacks and the overlay renders (`kubectl kustomize`)
//!   with nothing but the bundle's tree: no remote bases, components or charts;
//! - every image field of the rendered objects (standard pod fields and the
//!   spec's extra field paths for custom resources) names an image the bundle
//!   carries (the completeness check), so no object points at a registry
//!   outside the bundle.
//!
//! Reads the finished bundle only and never modifies it; the tree is
//! unpacked into a temp dir that is removed, and nothing is contacted.

use std::path::{Component, Path, PathBuf};

use atp_bundle::format::{annotation, media};
use atp_bundle::image_ref::{self, Carried};
use atp_bundle::kustomize::{self, ExtraField};
use atp_bundle::open::Bundle;
use atp_bundle::Digest;
use serde::Serialize;

/// What the self-check found.
#[derive(Debug, Clone, Serialize)]
pub struct SelfCheck {
    pub ok: bool,
    pub bundle: PathBuf,
    /// The overlay rendered, when the bundle ships manifests.
    pub overlay: Option<String>,
    pub objects: usize,
    /// Image fields checked.
    pub image_fields: usize,
    /// One line per problem, naming the object and field.
    pub findings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelfCheckError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Open(#[from] atp_bundle::open::OpenError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `create --simulate`: check the bundle just written from `spec`, with the
/// spec's extra image field paths.
pub fn after_create(spec: &Path, bundle: &Path) -> Result<SelfCheck, SelfCheckError> {
    let spec = crate::spec::Spec::load(spec)?;
    let extra: Vec<ExtraField> = spec
        .manifests
        .iter()
        .flat_map(|m| m.image_fields.iter())
        .map(|f| f.to_bundle())
        .collect();
    selfcheck(bundle, &extra)
}

impl SelfCheck {
    pub fn to_text(&self) -> String {
        match (&self.overlay, self.ok) {
            (None, _) => "self-check: the bundle ships no manifests; nothing to render\n".into(),
            (Some(o), true) => format!(
                "self-check: overlay {o} renders from the bundle alone: {} objects, {} image fields, every image carried\n",
                self.objects, self.image_fields
            ),
            (Some(o), false) => {
                let mut s = format!(
                    "self-check FAILED: overlay {o}: {} problem(s):\n",
                    self.findings.len()
                );
                for f in &self.findings {
                    s.push_str(&format!("  {f}\n"));
                }
                s
            }
        }
    }
}

/// Check the bundle at `path`. `extra` are the spec's image field paths.
pub fn selfcheck(path: &Path, extra: &[ExtraField]) -> Result<SelfCheck, SelfCheckError> {
    let bundle = Bundle::open(path)?;
    let mut check = SelfCheck {
        ok: false,
        bundle: path.to_path_buf(),
        overlay: None,
        objects: 0,
        image_fields: 0,
        findings: Vec::new(),
    };
    let overlay = bundle
        .config
        .as_ref()
        .and_then(|c| c.manifests.as_ref())
        .and_then(|m| m.overlay.clone());
    let layer = bundle
        .blobs
        .iter()
        .find(|b| b.media_type == media::KUSTOMIZE_TAR);
    let (Some(overlay), Some(layer)) = (overlay, layer) else {
        check.ok = true;
        return Ok(check);
    };
    check.overlay = Some(overlay.clone());
    let tar = bundle.read_blob(layer)?;
    let tmp = tempfile::Builder::new()
        .prefix("atp-selfcheck-")
        .tempdir()
        .map_err(|source| SelfCheckError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    if let Err(f) = unpack(&tar, tmp.path()) {
        check.findings.push(f);
        return Ok(check);
    }
    check.findings.extend(remote_references(tmp.path()));

    let dir = tmp.path().join(&overlay);
    let yaml = match kustomize::render(&dir) {
        Ok(y) => y,
        Err(e) => {
            check.findings.push(format!(
                "the overlay {overlay} does not render from the bundle's own tree: {e}"
            ));
            return Ok(check);
        }
    };
    let objects = match kustomize::parse_objects(&yaml, &dir) {
        Ok(o) => o,
        Err(e) => {
            check.findings.push(e.to_string());
            return Ok(check);
        }
    };
    check.objects = objects.len();

    // What the bundle carries: reference, root digest, source digest.
    let carried: Vec<(String, Digest, Option<Digest>)> = bundle
        .config
        .as_ref()
        .map(|c| {
            c.images
                .iter()
                .map(|i| {
                    let source = bundle
                        .index
                        .manifests
                        .iter()
                        .find(|d| d.digest == i.digest)
                        .and_then(|d| d.annotation(annotation::SOURCE_DIGEST))
                        .and_then(|s| s.parse().ok());
                    (i.reference.clone(), i.digest.clone(), source)
                })
                .collect()
        })
        .unwrap_or_default();
    // The fields the bundle records for the site, and any the caller adds.
    let mut fields: Vec<ExtraField> = bundle
        .config
        .as_ref()
        .map(|c| c.image_fields().to_vec())
        .unwrap_or_default();
    fields.extend(extra.iter().cloned());
    fields.sort();
    fields.dedup();
    let uses = kustomize::image_uses(&objects, &fields);
    check.image_fields = uses.len();
    for u in &uses {
        let Ok(norm) = crate::resolve::normalize(&u.image) else {
            check.findings.push(format!(
                "{} {}: {:?} is not a valid image reference",
                u.object, u.field, u.image
            ));
            continue;
        };
        let found = image_ref::find(
            &norm,
            carried.iter().map(|(r, d, s)| Carried {
                reference: r,
                digest: d,
                source_digest: s.as_ref(),
            }),
        );
        match found {
            Err(e) => check
                .findings
                .push(format!("{} {}: {e}", u.object, u.field)),
            Ok(None) => check.findings.push(format!(
                "{} {}: {:?} is not carried by the bundle; the site would pull it from {}",
                u.object,
                u.field,
                u.image,
                norm.split('/').next().unwrap_or("?")
            )),
            Ok(Some(_)) => {}
        }
    }
    check.ok = check.findings.is_empty();
    Ok(check)
}

/// Unpack the kustomize tar, refusing anything but relative regular files.
fn unpack(tar_bytes: &[u8], dest: &Path) -> Result<(), String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive
        .entries()
        .map_err(|e| format!("the kustomize layer is not a tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the kustomize layer: {e}"))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = PathBuf::from(&raw);
        if raw.is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
            || !entry.header().entry_type().is_file()
        {
            return Err(format!(
                "the kustomize layer has an unsafe entry {raw:?}; the installer would refuse it"
            ));
        }
        let out = dest.join(&rel);
        let res = out
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(&out))
            .and_then(|mut f| std::io::copy(&mut entry, &mut f));
        res.map_err(|e| format!("unpacking {raw}: {e}"))?;
    }
    Ok(())
}

/// Is a kustomize `resources`/`components`/`bases` entry fetched from elsewhere?
fn is_remote(entry: &str) -> bool {
    let e = entry.trim();
    e.contains("://")
        || e.starts_with("git@")
        || e.contains("?ref=")
        || ["github.com/", "gitlab.com/", "bitbucket.org/"]
            .iter()
            .any(|h| e.starts_with(h))
}

/// Every remote reference in any kustomization of the tree: the site could
/// not render it, and the connected side would silently fetch it.
fn remote_references(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        let name = e.file_name().to_string_lossy();
        if !matches!(
            name.as_ref(),
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        ) {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let Ok(doc) = serde_yaml_ng::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        for key in ["resources", "components", "bases"] {
            for item in doc[key].as_array().into_iter().flatten() {
                if let Some(s) = item.as_str().filter(|s| is_remote(s)) {
                    found.push(format!(
                        "{rel}: {key} entry {s:?} is fetched from outside the bundle"
                    ));
                }
            }
        }
        for chart in doc["helmCharts"].as_array().into_iter().flatten() {
            if let Some(repo) = chart["repo"].as_str() {
                found.push(format!(
                    "{rel}: helm chart {:?} is fetched from {repo}",
                    chart["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_kustomize_entries_are_named() {
        assert!(is_remote("https://example.invalid/x.yaml"));
        assert!(is_remote("github.com/org/repo//deploy?ref=v1"));
        assert!(is_remote("git@github.com:org/repo.git"));
        assert!(!is_remote("../../base"));
        assert!(!is_remote("deployment.yaml"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("o")).unwrap();
        std::fs::write(
            dir.path().join("o/kustomization.yaml"),
            "resources:\n- ../base\n- https://example.invalid/crd.yaml\nhelmCharts:\n- {name: redis, repo: https://charts.invalid}\n",
        )
        .unwrap();
        let found = remote_references(dir.path());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("o/kustomization.yaml") && found[0].contains("crd.yaml"));
        assert!(found[1].contains("redis"));
    }

    #[test]
    fn unpack_refuses_escaping_paths() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../x.ya");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&b.into_inner().unwrap(), &dir.path().join("t")).unwrap_err();
        assert!(err.contains("unsafe"), "{err}");
    }
}
