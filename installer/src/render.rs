//! Render the shipped overlay for this site: unpack the bundle's kustomize
//! tree into the render dir, write a kustomization of our own on top of it
//! that rewrites every image spelling to `REGISTRY/repo@sha256:...`, generates
//! the `registry-certs` and `atp-registry-pull` secrets and wires the pull
//! secret into every pod template, then run `kubectl kustomize` into
//! `rendered.yaml`.
//!
//! Writes only inside the render dir, never follows a path out of it, and
//! writes files that hold credentials with mode 0600.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use atp_bundle::kustomize::{self, ObjectRef};
use atp_bundle::Digest;
use base64::Engine as _;

use crate::metrics::write_atomic;

/// One bundled image as it lands in the site registry.
#[derive(Debug, Clone)]
pub struct PlacedImage {
    /// Normalized source reference (`docker.io/atp/router:1.4.0`).
    pub source: String,
    /// Digest of the top manifest or index.
    pub digest: Digest,
    /// Source digest before platform pruning, if pruned.
    pub source_digest: Option<Digest>,
    /// `REGISTRY/repo`, without tag or digest.
    pub target_repo: String,
}

/// What to render.
pub struct RenderRequest<'a> {
    /// The bundle's kustomize layer (a tar).
    pub kustomize_tar: &'a [u8],
    /// The overlay path inside the tree.
    pub overlay: &'a str,
    pub images: &'a [PlacedImage],
    pub registry: &'a str,
    pub registry_ca: Option<&'a Path>,
    pub credentials: Option<(&'a str, &'a str)>,
    pub out_dir: &'a Path,
}

/// The rendered result.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    pub yaml: String,
    pub objects: Vec<ObjectRef>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("render dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bundle's kustomize tree has an unsafe path {path:?}; refusing to unpack it")]
    UnsafePath { path: String },
    #[error(transparent)]
    Kustomize(#[from] kustomize::RenderError),
    #[error(
        "overlay object {object} uses {image:?} in {field}, which is not a valid image reference"
    )]
    BadImage {
        object: String,
        field: String,
        image: String,
    },
    #[error("overlay image name {name:?} is used for two different bundled images ({first} and {second}); one name can only be rewritten one way\nhint: spell the images differently in the manifests (for example one with docker.io/ and one without), or ship them under different names")]
    Ambiguous {
        name: String,
        first: String,
        second: String,
    },
}

/// Normalize a reference the Docker way, adding `:latest` when it has neither tag nor digest.
pub fn normalize(reference: &str) -> Option<String> {
    let r: atp_registry::Reference = reference.parse().ok()?;
    Some(if r.tag().is_none() && r.digest().is_none() {
        format!("{r}:latest")
    } else {
        r.to_string()
    })
}

/// Find the bundled image a spelling refers to: by normalized reference, or by digest.
pub fn match_image<'a>(spelling: &str, images: &'a [PlacedImage]) -> Option<&'a PlacedImage> {
    let norm = normalize(spelling)?;
    let digest = norm
        .split_once('@')
        .and_then(|(_, d)| d.parse::<Digest>().ok());
    images.iter().find(|i| {
        i.source == norm
            || digest
                .as_ref()
                .is_some_and(|d| &i.digest == d || i.source_digest.as_ref() == Some(d))
    })
}

/// The name part of an image spelling, as kustomize's `images:` matches it.
fn image_name(spelling: &str) -> &str {
    let no_digest = spelling.split('@').next().unwrap_or(spelling);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

/// Unpack, generate, render.
pub fn render(req: &RenderRequest<'_>) -> Result<Rendered, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let tree = req.out_dir.join("bundle");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(io(&tree))?;
    }
    unpack(req.kustomize_tar, &tree)?;
    let overlay_dir = tree.join(req.overlay);

    // Every spelling of every image in the shipped overlay.
    let shipped = kustomize::render(&overlay_dir)?;
    let objects = kustomize::parse_objects(&shipped, &overlay_dir)?;
    let uses = kustomize::image_uses(&objects, &[]);
    let mut rewrites: BTreeMap<String, &PlacedImage> = BTreeMap::new();
    for u in &uses {
        let Some(img) = match_image(&u.image, req.images) else {
            // Not bundled: left as is; the air-gap gate names it.
            continue;
        };
        let name = image_name(&u.image).to_string();
        if let Some(prev) = rewrites.get(&name) {
            if prev.source != img.source {
                return Err(RenderError::Ambiguous {
                    name,
                    first: prev.source.clone(),
                    second: img.source.clone(),
                });
            }
        }
        rewrites.insert(name, img);
    }
    let namespace = objects
        .iter()
        .find_map(|o| {
            o.value["metadata"]["namespace"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".into());
    let kinds: std::collections::BTreeSet<String> = objects
        .iter()
        .map(|o| o.kind().to_string())
        .filter(|k| {
            matches!(
                k.as_str(),
                "Deployment" | "StatefulSet" | "DaemonSet" | "Job"
            )
        })
        .collect();

    // Secret material, 0600.
    let secrets = req.out_dir.join("secrets");
    std::fs::create_dir_all(&secrets).map_err(io(&secrets))?;
    let mut auths = serde_json::Map::new();
    if let Some((u, p)) = req.credentials {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        auths.insert(
            req.registry.to_string(),
            serde_json::json!({ "auth": auth }),
        );
    }
    let dockerconfig = serde_json::to_vec(&serde_json::json!({ "auths": auths })).expect("json");
    let dc_path = secrets.join("dockerconfig.json");
    write_atomic(&dc_path, &dockerconfig, 0o600).map_err(io(&dc_path))?;
    let ca_path = secrets.join("ca.crt");
    let ca = match req.registry_ca {
        Some(p) => std::fs::read(p).map_err(io(p))?,
        None => Vec::new(),
    };
    write_atomic(&ca_path, &ca, 0o644).map_err(io(&ca_path))?;

    let k = kustomization(req, &rewrites, &namespace, &kinds);
    let k_path = req.out_dir.join("kustomization.yaml");
    write_atomic(&k_path, k.as_bytes(), 0o644).map_err(io(&k_path))?;

    let yaml = kustomize::render(req.out_dir)?;
    let rendered_objects = kustomize::parse_objects(&yaml, req.out_dir)?;
    let path = req.out_dir.join("rendered.yaml");
    write_atomic(&path, yaml.as_bytes(), 0o600).map_err(io(&path))?;
    Ok(Rendered {
        path,
        objects: rendered_objects.iter().map(|o| o.reference()).collect(),
        yaml,
    })
}

fn kustomization(
    req: &RenderRequest<'_>,
    rewrites: &BTreeMap<String, &PlacedImage>,
    namespace: &str,
    kinds: &std::collections::BTreeSet<String>,
) -> String {
    use std::fmt::Write;
    let mut k = String::new();
    k.push_str("# Generated by atp-installer: the shipped overlay, rewritten for this site.\n");
    k.push_str("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n");
    let _ = writeln!(k, "resources:\n- bundle/{}", req.overlay);
    if !rewrites.is_empty() {
        k.push_str("images:\n");
        for (name, img) in rewrites {
            let _ = writeln!(
                k,
                "- name: {}\n  newName: {}\n  digest: {}",
                yaml_str(name),
                yaml_str(&img.target_repo),
                img.digest
            );
        }
    }
    k.push_str("generatorOptions:\n  disableNameSuffixHash: true\n");
    let _ = writeln!(
        k,
        "secretGenerator:\n- name: registry-certs\n  namespace: {ns}\n  files:\n  - ca.crt=secrets/ca.crt\n- name: atp-registry-pull\n  namespace: {ns}\n  type: kubernetes.io/dockerconfigjson\n  files:\n  - .dockerconfigjson=secrets/dockerconfig.json",
        ns = yaml_str(namespace)
    );
    if !kinds.is_empty() {
        k.push_str("patches:\n");
        for kind in kinds {
            let api = if kind == "Job" { "batch/v1" } else { "apps/v1" };
            let _ = writeln!(
                k,
                "- target:\n    kind: {kind}\n  patch: |-\n    apiVersion: {api}\n    kind: {kind}\n    metadata:\n      name: any\n    spec:\n      template:\n        spec:\n          imagePullSecrets:\n          - name: atp-registry-pull"
            );
        }
    }
    k
}

/// Quote a YAML scalar (JSON strings are valid YAML).
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

/// Unpack the kustomize tar under `dest`, refusing anything but relative
/// regular files.
fn unpack(tar_bytes: &[u8], dest: &Path) -> Result<(), RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().map_err(io(dest))? {
        let mut entry = entry.map_err(io(dest))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = PathBuf::from(&raw);
        let safe = !raw.is_empty()
            && rel.components().all(|c| matches!(c, Component::Normal(_)))
            && entry.header().entry_type().is_file();
        if !safe {
            return Err(RenderError::UnsafePath { path: raw });
        }
        let out = dest.join(&rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = std::fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut entry, &mut f).map_err(io(&out))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_as_kustomize_matches_them() {
        assert_eq!(
            image_name("docker.io/atp/router:1.4.0"),
            "docker.io/atp/router"
        );
        assert_eq!(image_name("atp/model-loader:1.4.0"), "atp/model-loader");
        assert_eq!(image_name("host:5000/a/b:1@sha256:00"), "host:5000/a/b");
        assert_eq!(image_name("nginx"), "nginx");
    }

    #[test]
    fn spellings_match_by_normalized_reference_or_digest() {
        let d = Digest::of(b"x");
        let imgs = vec![PlacedImage {
            source: "docker.io/atp/model-loader:1.4.0".into(),
            digest: d.clone(),
            source_digest: None,
            target_repo: "r/docker.io/atp/model-loader".into(),
        }];
        assert!(match_image("atp/model-loader:1.4.0", &imgs).is_some());
        assert!(match_image("docker.io/atp/model-loader:1.4.0", &imgs).is_some());
        assert!(match_image(&format!("other/x@{d}"), &imgs).is_some());
        assert!(match_image("atp/model-loader:1.3.0", &imgs).is_none());
    }

    #[test]
    fn unpack_refuses_path_tricks() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../evil.y");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&bytes, &dir.path().join("t")).unwrap_err();
        assert!(matches!(err, RenderError::UnsafePath { .. }), "{err}");
        assert!(!dir.path().join("evil.y").exists());
    }
}
