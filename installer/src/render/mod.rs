//! Render the shipped overlay for this site: unpack the bundle's kustomize
//! tree, write a kustomization of our own on top of it that rewrites every
//! image spelling (in containers and in the bundle's `imageFields` of custom
//! resources) to `REGISTRY/repo@sha256:...`, generates the `registry-certs`
//! secret when there is a CA to put in it and the `atp-registry-pull` secret
//! (wired into every pod template) when there are credentials, then run
//! `kubectl kustomize` into `rendered.yaml`.
//!
//! Everything is written into a fresh folder beside the render dir, which is
//! then renamed into place ([`crate::swap`], as `mirrors` writes its
//! output). An existing render dir is replaced only when it is empty or holds
//! the marker an earlier render left ([`MARKER`]); a link or a folder of
//! someone else's files is refused, never written into or deleted. A fresh
//! folder left by a render killed midway is removed by the next render.
//! Never follows a path or a link out of the fresh folder, and writes files
//! that hold credentials with mode 0600.
//!
//! `tree` writes our kustomization and unpacks the tree; `tests`
//! holds the unit tests.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use atp_bundle::image_ref::{self, Carried};
use atp_bundle::kustomize::{self, ExtraField, ObjectRef};
use atp_bundle::Digest;
use base64::Engine as _;

use crate::metrics::write_atomic;
use crate::swap::{Marker, SwapError, Taken, Target};

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
    /// The secrets the render generated, and why (never their content).
    pub secrets: Vec<GeneratedSecret>,
}

/// The name of the secret holding the site registry's CA (`ca.crt`).
pub const CERTS_SECRET: &str = "registry-certs";
/// The name of the pull secret for the site registry.
pub const PULL_SECRET: &str = "atp-registry-pull";

/// A secret the render generated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GeneratedSecret {
    pub name: &'static str,
    /// What is in it, or why it was generated though empty.
    pub holds: String,
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
    #[error("overlay object {object} uses, in {field}, {source}")]
    AmbiguousImage {
        object: String,
        field: String,
        #[source]
        source: image_ref::Ambiguous,
    },
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
/// [`atp_bundle::image_ref`]'s, the spelling normalized as `create` does,
/// `:latest` when untagged); `None` for a spelling that is not a valid
/// reference or names an image the bundle lacks; an error when it could mean
/// two.
pub fn match_image<'a>(
    spelling: &str,
    images: &'a [PlacedImage],
) -> Result<Option<&'a PlacedImage>, image_ref::Ambiguous> {
    let Ok(r) = spelling.parse::<atp_registry::Reference>() else {
        return Ok(None);
    };
    let mut norm = r.to_string();
    if r.tag().is_none() && r.digest().is_none() {
        norm.push_str(":latest");
    }
    let carried = images.iter().map(|i| Carried {
        reference: &i.source,
        digest: &i.digest,
        source_digest: i.source_digest.as_ref(),
    });
    Ok(image_ref::find(&norm, carried)?.map(|i| &images[i]))
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

/// The render dir as [`crate::swap`] writes it: fresh `.atp-render-*`
/// folders beside it, replaced only when it holds [`MARKER`].
fn target(out_dir: &Path) -> Target<'_> {
    Target {
        path: out_dir,
        prefix: ".atp-render-",
        marker: Marker {
            file: MARKER,
            first_line: None,
        },
    }
}

/// A [`crate::swap`] error in the render's words.
fn swap_error(out_dir: &Path, e: SwapError) -> RenderError {
    match e {
        SwapError::Io { path, source } => RenderError::Io { path, source },
        SwapError::Taken { taken, .. } => RenderError::OutDir {
            path: out_dir.to_path_buf(),
            problem: match taken {
                Taken::Link => "is a symbolic link, which the installer does not follow",
                Taken::NotAFolder => "exists and is not a folder",
                Taken::NotOurs => {
                    "holds files the installer did not make (it has no render marker)"
                }
            }
            .into(),
        },
    }
}

/// Render into a fresh folder beside `req.out_dir`, then rename it into
/// place (see the module docs for when an existing render dir is replaced).
/// Leftovers of a render killed midway beside it are removed first.
pub fn render(req: &RenderRequest<'_>) -> Result<Rendered, RenderError> {
    check_out_dir(req.out_dir)?;
    if req.out_dir.parent().is_none() {
        return Err(RenderError::OutDir {
            path: req.out_dir.to_path_buf(),
            problem: "has no parent folder to render beside".into(),
        });
    }
    let target = target(req.out_dir);
    let fresh = target.stage().map_err(|e| swap_error(req.out_dir, e))?;
    let mut rendered = render_into(req, fresh.path())?;
    target
        .put_in_place(fresh)
        .map_err(|e| swap_error(req.out_dir, e))?;
    rendered.path = req.out_dir.join("rendered.yaml");
    Ok(rendered)
}

/// Refuse a render dir that is a link, not a folder, or a non-empty folder
/// without the installer's marker. Absent is fine. Reads only.
pub fn check_out_dir(out_dir: &Path) -> Result<(), RenderError> {
    target(out_dir).check().map_err(|e| swap_error(out_dir, e))
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
        let found =
            match_image(&u.image, req.images).map_err(|source| RenderError::AmbiguousImage {
                object: u.object.to_string(),
                field: u.field.clone(),
                source,
            })?;
        let Some(img) = found else {
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

    // Secret material, 0600: each secret only when there is something to
    // put in it.
    let secrets = dir.join("secrets");
    let mut generated = Vec::new();
    if let Some((u, p)) = req.credentials {
        std::fs::create_dir_all(&secrets).map_err(io(&secrets))?;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let dockerconfig = serde_json::to_vec(&serde_json::json!({
            "auths": { req.registry: { "auth": auth } }
        }))
        .expect("json");
        let dc_path = secrets.join("dockerconfig.json");
        write_atomic(&dc_path, &dockerconfig, 0o600).map_err(io(&dc_path))?;
        generated.push(GeneratedSecret {
            name: PULL_SECRET,
            holds: format!("the credentials of {u} for {}", req.registry),
        });
    }
    let ca = match req.registry_ca {
        Some(p) => Some((std::fs::read(p).map_err(io(p))?, format!("the CA {}", p.display()))),
        // A bundle made before the overlay marked the mount optional: the
        // pods would not start without the secret, so it is made, empty.
        None if mounts_secret_required(&objects, CERTS_SECRET) => Some((
            Vec::new(),
            "nothing (no --registry-ca), made because the overlay mounts it and does not mark it optional".into(),
        )),
        None => None,
    };
    if let Some((ca, holds)) = ca {
        std::fs::create_dir_all(&secrets).map_err(io(&secrets))?;
        let ca_path = secrets.join("ca.crt");
        write_atomic(&ca_path, &ca, 0o644).map_err(io(&ca_path))?;
        generated.push(GeneratedSecret {
            name: CERTS_SECRET,
            holds,
        });
    }

    if !req.image_fields.is_empty() {
        let c_path = dir.join(IMAGE_FIELDS);
        let c = image_field_config(req.image_fields);
        write_atomic(&c_path, c.as_bytes(), 0o644).map_err(io(&c_path))?;
    }
    let k = kustomization(req, &rewrites, &namespace, &kinds, &generated);
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
        secrets: generated,
    })
}

/// Does a pod template of `objects` mount the secret `name` as a volume
/// without `optional: true`?
fn mounts_secret_required(objects: &[kustomize::Object], name: &str) -> bool {
    objects.iter().any(|o| {
        let volumes = &o.value["spec"]["template"]["spec"]["volumes"];
        volumes.as_array().is_some_and(|vs| {
            vs.iter().any(|v| {
                let secret = &v["secret"];
                secret["secretName"].as_str() == Some(name)
                    && secret["optional"].as_bool() != Some(true)
            })
        })
    })
}

#[cfg(test)]
mod tests;
/// The kustomize transformer configuration that teaches `images:` the
/// bundle's custom-resource image fields.
mod tree;

use tree::{image_field_config, kustomization, unpack, IMAGE_FIELDS};
