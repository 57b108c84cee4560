//! Render the shipped overlay for this site: unpack the bundle's kustomize
//! tree, write a kustomization of our own on top of it that rewrites every
//! image spelling (in containers and in the bundle's `imageFields` of custom
//! resources) to `REGISTRY/repo@sha256:...`, generates the `registry-certs`
//! and `atp-registry-pull` secrets and wires the pull secret into every pod
//! template, then run `kubectl kustomize` into `rendered.yaml`.
//!
//! Everything is written into a fresh folder beside the render dir, which is
//! then renamed into place. An existing render dir is replaced only when it
//! is empty or holds the marker an earlier render left ([`MARKER`]); a link
//! or a folder of someone else's files is refused, never written into or
//! deleted. Never follows a path or a link out of the fresh folder, and
//! writes files that hold credentials with mode 0600.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use atp_bundle::image_ref::{self, Carried};
use atp_bundle::kustomize::{self, ExtraField, ObjectRef};
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
    /// Image fields of custom resources the bundle declares (its config's
    /// `manifests.imageFields`), rewritten like container images.
    pub image_fields: &'a [ExtraField],
    pub out_dir: &'a Path,
}

/// The file that marks a render dir as made by the installer, so that a
/// later render may replace it whole.
pub const MARKER: &str = ".atp-installer-render";

/// The rendered result.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    pub yaml: String,
    pub objects: Vec<ObjectRef>,
    /// The custom-resource image fields the render rewrote: the air-gap
    /// gate must check them too.
    pub image_fields: Vec<ExtraField>,
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
    #[error("render dir {path} {problem}; nothing was written there\nhint: give --render-to a new or empty folder; the installer replaces only a folder it rendered into before (one holding {MARKER})")]
    OutDir { path: PathBuf, problem: String },
    #[error("the bundle's image field {kind} {path:?} is not well formed: {problem}")]
    BadImageField {
        kind: String,
        path: String,
        problem: String,
    },
    #[error("overlay image name {name:?} is used for two different bundled images ({first} and {second}); one name can only be rewritten one way\nhint: spell the images differently in the manifests (for example one with docker.io/ and one without), or ship them under different names")]
    Ambiguous {
        name: String,
        first: String,
        second: String,
    },
}

/// Find the bundled image a spelling refers to (the rule is
/// [`atp_bundle::image_ref`]'s); `None` for a spelling that is not a valid
/// reference or names an image the bundle lacks.
pub fn match_image<'a>(spelling: &str, images: &'a [PlacedImage]) -> Option<&'a PlacedImage> {
    let norm = spelling
        .parse::<atp_registry::Reference>()
        .ok()?
        .to_string();
    let carried = images.iter().map(|i| Carried {
        reference: &i.source,
        digest: &i.digest,
        source_digest: i.source_digest.as_ref(),
    });
    image_ref::find(&norm, carried).map(|i| &images[i])
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

/// Render into a fresh folder beside `req.out_dir`, then rename it into
/// place (see the module docs for when an existing render dir is replaced).
pub fn render(req: &RenderRequest<'_>) -> Result<Rendered, RenderError> {
    check_out_dir(req.out_dir)?;
    let parent = match req.out_dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => {
            return Err(RenderError::OutDir {
                path: req.out_dir.to_path_buf(),
                problem: "has no parent folder to render beside".into(),
            })
        }
    };
    let fresh = tempfile::Builder::new()
        .prefix(".atp-render-")
        .tempdir_in(parent)
        .map_err(|source| RenderError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    let mut rendered = render_into(req, fresh.path())?;
    put_in_place(fresh, req.out_dir)?;
    rendered.path = req.out_dir.join("rendered.yaml");
    Ok(rendered)
}

/// Refuse a render dir that is a link, not a folder, or a non-empty folder
/// without the installer's marker. Absent is fine. Reads only.
pub fn check_out_dir(out_dir: &Path) -> Result<(), RenderError> {
    let refuse = |problem: &str| RenderError::OutDir {
        path: out_dir.to_path_buf(),
        problem: problem.to_string(),
    };
    let io = |source| RenderError::Io {
        path: out_dir.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(out_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "is a symbolic link, which the installer does not follow",
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("exists and is not a folder"));
    }
    let ours = std::fs::symlink_metadata(out_dir.join(MARKER)).is_ok_and(|m| m.is_file());
    if ours {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(out_dir).map_err(io)?;
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(refuse(
            "holds files the installer did not make (it has no render marker)",
        )),
    }
}

/// Move the finished render in `fresh` to `out_dir`: an existing render dir
/// (already checked by [`check_out_dir`]) is first moved aside and then
/// deleted without following any link inside it.
fn put_in_place(fresh: tempfile::TempDir, out_dir: &Path) -> Result<(), RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    let parent = fresh
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let parent = parent.as_path();
    // Checked again: the folder may have changed while rendering.
    check_out_dir(out_dir)?;
    let aside = if std::fs::symlink_metadata(out_dir).is_ok() {
        let old = tempfile::Builder::new()
            .prefix(".atp-render-old-")
            .tempdir_in(parent)
            .map_err(io(parent))?;
        let prev = old.path().join("prev");
        std::fs::rename(out_dir, &prev).map_err(io(out_dir))?;
        Some((old, prev))
    } else {
        None
    };
    if let Err(e) = std::fs::rename(fresh.path(), out_dir) {
        if let Some((_, prev)) = &aside {
            let _ = std::fs::rename(prev, out_dir);
        }
        return Err(io(out_dir)(e));
    }
    // Now under its final name: nothing left for the temp guard to remove.
    let _ = fresh.keep();
    if let Some((old, _)) = aside {
        // remove_dir_all deletes links themselves, never what they point at.
        old.close().map_err(io(parent))?;
    }
    Ok(())
}

/// Unpack, generate and render into `dir`, a fresh folder.
fn render_into(req: &RenderRequest<'_>, dir: &Path) -> Result<Rendered, RenderError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Io { path, source }
    };
    for f in req.image_fields {
        f.segments().map_err(|problem| RenderError::BadImageField {
            kind: f.kind.clone(),
            path: f.path.clone(),
            problem,
        })?;
    }
    std::fs::write(
        dir.join(MARKER),
        "made by atp-installer: a later render replaces this whole folder\n",
    )
    .map_err(io(&dir.join(MARKER)))?;
    let tree = dir.join("bundle");
    unpack(req.kustomize_tar, &tree)?;
    let overlay_dir = tree.join(req.overlay);

    // Every spelling of every image in the shipped overlay.
    let shipped = kustomize::render(&overlay_dir)?;
    let objects = kustomize::parse_objects(&shipped, &overlay_dir)?;
    let uses = kustomize::image_uses(&objects, req.image_fields);
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
    let secrets = dir.join("secrets");
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

    if !req.image_fields.is_empty() {
        let c_path = dir.join(IMAGE_FIELDS);
        let c = image_field_config(req.image_fields);
        write_atomic(&c_path, c.as_bytes(), 0o644).map_err(io(&c_path))?;
    }
    let k = kustomization(req, &rewrites, &namespace, &kinds);
    let k_path = dir.join("kustomization.yaml");
    write_atomic(&k_path, k.as_bytes(), 0o644).map_err(io(&k_path))?;

    let yaml = kustomize::render(dir)?;
    let rendered_objects = kustomize::parse_objects(&yaml, dir)?;
    let path = dir.join("rendered.yaml");
    write_atomic(&path, yaml.as_bytes(), 0o600).map_err(io(&path))?;
    Ok(Rendered {
        path,
        objects: rendered_objects.iter().map(|o| o.reference()).collect(),
        yaml,
        image_fields: req.image_fields.to_vec(),
    })
}

/// The kustomize transformer configuration that teaches `images:` the
/// bundle's custom-resource image fields.
const IMAGE_FIELDS: &str = "image-fields.yaml";

/// `images:` field specs for kustomize's `configurations:`: the dotted path
/// with `/` between segments (`spec.workers[].image` → `spec/workers[]/image`).
/// Each field was checked by [`ExtraField::segments`].
fn image_field_config(fields: &[ExtraField]) -> String {
    use std::fmt::Write;
    let mut c = String::from(
        "# Generated by atp-installer: the bundle's imageFields, rewritten by images: too.\nimages:\n",
    );
    for f in fields {
        let _ = writeln!(
            c,
            "- kind: {}\n  path: {}",
            yaml_str(&f.kind),
            yaml_str(&f.path.replace('.', "/"))
        );
    }
    c
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
    if !req.image_fields.is_empty() {
        let _ = writeln!(k, "configurations:\n- {IMAGE_FIELDS}");
    }
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

    /// A kustomize tree with a Deployment and a custom resource holding
    /// images at `spec.workers[].image`, as a tar.
    fn tree_tar() -> Vec<u8> {
        let files: [(&str, &str); 3] = [
            (
                "o/kustomization.yaml",
                "resources: [app.yaml, workload.yaml]\n",
            ),
            (
                "o/app.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: ns}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: 'atp/app:1'}]\n",
            ),
            (
                "o/workload.yaml",
                "apiVersion: example.com/v1\nkind: Workload\nmetadata: {name: w, namespace: ns}\nspec:\n  workers: [{image: 'docker.io/atp/worker:2'}, {image: 'atp/app:1'}]\n",
            ),
        ];
        let mut b = tar::Builder::new(Vec::new());
        for (path, body) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn placed() -> Vec<PlacedImage> {
        ["docker.io/atp/app:1", "docker.io/atp/worker:2"]
            .iter()
            .map(|r| PlacedImage {
                source: r.to_string(),
                digest: Digest::of(r.as_bytes()),
                source_digest: None,
                target_repo: format!("reg:5000/{}", r.split(':').next().unwrap()),
            })
            .collect()
    }

    fn render_to(out: &Path, fields: &[ExtraField]) -> Result<Rendered, RenderError> {
        let tar = tree_tar();
        let images = placed();
        render(&RenderRequest {
            kustomize_tar: &tar,
            overlay: "o",
            images: &images,
            registry: "reg:5000",
            registry_ca: None,
            credentials: Some(("u", "p")),
            image_fields: fields,
            out_dir: out,
        })
    }

    fn workers() -> Vec<ExtraField> {
        vec![ExtraField {
            kind: "Workload".into(),
            path: "spec.workers[].image".into(),
        }]
    }

    #[test]
    fn custom_resource_image_fields_are_rewritten_to_the_site_registry() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let r = render_to(&out, &workers()).unwrap();
        let want = |img: &PlacedImage| format!("{}@{}", img.target_repo, img.digest);
        let imgs = placed();
        let objects = kustomize::parse_objects(&r.yaml, &out).unwrap();
        let uses = kustomize::image_uses(&objects, &workers());
        let got: Vec<(&str, &str)> = uses
            .iter()
            .map(|u| (u.field.as_str(), u.image.as_str()))
            .collect();
        let (app, worker) = (want(&imgs[0]), want(&imgs[1]));
        assert_eq!(
            got,
            [
                ("spec.template.spec.containers[0].image", app.as_str()),
                ("spec.workers[0].image", worker.as_str()),
                ("spec.workers[1].image", app.as_str()),
            ]
        );
        assert_eq!(r.image_fields, workers());
        assert_eq!(r.path, out.join("rendered.yaml"));
        assert_eq!(std::fs::read_to_string(&r.path).unwrap(), r.yaml);

        // Without the fields, the custom resource keeps its outside images.
        let plain = render_to(&dir.path().join("plain"), &[]).unwrap();
        assert!(
            plain.yaml.contains("image: docker.io/atp/worker:2"),
            "{}",
            plain.yaml
        );
    }

    #[test]
    fn a_malformed_image_field_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        let bad = [ExtraField {
            kind: "Workload".into(),
            path: "spec/workers".into(),
        }];
        let err = render_to(&out, &bad).unwrap_err();
        assert!(matches!(err, RenderError::BadImageField { .. }), "{err}");
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn render_to_refuses_a_folder_of_user_files_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mine");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(out.join("kustomization.yaml"), "my own\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("secrets")).unwrap();
        let err = render_to(&out, &[]).unwrap_err();
        assert!(matches!(err, RenderError::OutDir { .. }), "{err}");
        assert!(err.to_string().contains("did not make"), "{err}");
        assert_eq!(
            std::fs::read_to_string(out.join("kustomization.yaml")).unwrap(),
            "my own\n"
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // Nothing left beside it either.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["elsewhere", "mine"]);
    }

    #[test]
    fn render_to_refuses_a_link_and_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = render_to(&link, &[]).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = render_to(&file, &[]).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn render_to_replaces_its_own_render_without_following_links_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r");
        // An empty folder is taken.
        std::fs::create_dir_all(&out).unwrap();
        render_to(&out, &[]).unwrap();
        assert!(out.join(MARKER).is_file());
        assert!(out.join("secrets/dockerconfig.json").is_file());
        // A link planted in an earlier render is removed, never followed.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("keep"), "k").unwrap();
        std::fs::remove_dir_all(out.join("secrets")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("secrets")).unwrap();
        std::fs::write(out.join("stale"), "old").unwrap();
        let r = render_to(&out, &[]).unwrap();
        assert!(r.path.is_file());
        assert!(!out.join("stale").exists());
        let secrets = std::fs::symlink_metadata(out.join("secrets")).unwrap();
        assert!(secrets.is_dir(), "secrets is a fresh folder again");
        let mut left: Vec<String> = std::fs::read_dir(&elsewhere)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["keep"]);
        // No temp folder is left beside it.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["elsewhere", "r"]);
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
