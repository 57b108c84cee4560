//! The bundle spec file (`SPEC.yaml`): what a release engineer writes to say
//! which images, manifests and files go into a bundle.
//!
//! Parsing is strict: unknown fields are refused so that a typo never silently
//! drops an image. Relative paths are resolved against the spec file's folder.
//! This module never touches the network or the files the spec names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A parsed and validated spec, with paths made absolute.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    pub expires: Option<time::OffsetDateTime>,
    pub platforms: Vec<String>,
    pub images: Vec<ImageSpec>,
    pub manifests: Option<ManifestsSpec>,
    pub files: Vec<FileSpec>,
    /// `spec.referrers`: which artifacts referring to the images are carried.
    pub referrers: ReferrerOptions,
    /// `spec.verify.key`: every image must carry a cosign signature by it.
    pub verify: Option<PathBuf>,
    /// `spec.images[].verify.key`, by the image's source (overrides `verify`).
    pub image_verify: Vec<(ImageSource, PathBuf)>,
    /// The folder the spec file sits in.
    pub base_dir: PathBuf,
}

/// Which referrers are carried (`--referrers`, `spec.referrers.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReferrerMode {
    /// Every referrer (the default).
    #[default]
    All,
    /// Signatures only: cosign's `.sig` tags and sigstore bundles.
    Signatures,
    /// None.
    None,
}

/// `spec.referrers`: what to carry of the artifacts that refer to images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReferrerOptions {
    #[serde(default)]
    pub mode: ReferrerMode,
    /// Only these artifact types (all when empty).
    #[serde(default)]
    pub artifact_types: Vec<String>,
}

impl Spec {
    /// The cosign key `spec.verify` names for an image read from `source`
    /// (its own, else the global one).
    pub fn verify_key(&self, source: &ImageSource) -> Option<&Path> {
        self.image_verify
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, k)| k.as_path())
            .or(self.verify.as_deref())
    }
}

/// One image to carry: where to read it from, and the reference it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub source: ImageSource,
    /// The reference written in the spec (`name:`), if any; overrides the source's.
    pub name: Option<String>,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference, as written (normalized later).
    Registry(String),
    /// `oci:DIR[:TAG]`: an OCI image layout on disk.
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE`: the output of `docker save`.
    DockerArchive { file: PathBuf },
}

/// The kustomize tree to ship.
#[derive(Debug, Clone)]
pub struct ManifestsSpec {
    /// Absolute path of the kustomize root folder (shipped whole).
    pub root: PathBuf,
    /// The overlay to render, relative to `root`, `/`-separated.
    pub overlay: String,
    pub discover_images: bool,
    /// Extra image field paths for custom resources.
    pub image_fields: Vec<ImageFieldSpec>,
}

/// An extra place where images live in custom resources: `kind` plus a
/// dotted path; `[]` after a segment walks every element of a list,
/// e.g. `spec.template.spec.workers[].image`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageFieldSpec {
    pub kind: String,
    pub path: String,
}

impl ImageFieldSpec {
    /// The field as the bundle config records it for the installer.
    pub fn to_bundle(&self) -> atp_bundle::format::ImageField {
        atp_bundle::format::ImageField {
            kind: self.kind.clone(),
            path: self.path.clone(),
        }
    }
}

/// A file or folder to carry, installed under `<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub name: String,
    pub source: PathBuf,
}

/// Why a spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `error` is shown in the message, so it is not also a `#[source]`
    /// (printing the chain would repeat it after the hint).
    #[error("spec {path} is not valid: {error}\nhint: see docs/spec.md for every field")]
    Parse {
        path: PathBuf,
        error: serde_yaml_ng::Error,
    },
    #[error("spec {path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: RawMetadata,
    spec: RawBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    name: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBody {
    channel: String,
    sequence: u64,
    expires: Option<String>,
    #[serde(default)]
    platforms: Vec<String>,
    #[serde(default)]
    images: Vec<RawImage>,
    manifests: Option<RawManifests>,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    referrers: ReferrerOptions,
    verify: Option<RawVerify>,
}

/// `verify:` globally or on an image: `{key: cosign.pub}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    key: String,
}

/// An image entry: a string, or a map. Not `#[serde(untagged)]`, whose
/// error ("did not match any variant") would hide which key was wrong: a
/// map goes straight to [`RawNamedImage`], which names an unknown key.
enum RawImage {
    Plain(String),
    Named(RawNamedImage),
}

impl<'de> Deserialize<'de> for RawImage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = RawImage;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an image reference, or a map {source: ..., name: ...}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawImage, E> {
                Ok(RawImage::Plain(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawImage, A::Error> {
                RawNamedImage::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawImage::Named)
            }
        }
        d.deserialize_any(Entry)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedImage {
    source: String,
    name: Option<String>,
    verify: Option<RawVerify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawManifests {
    root: String,
    overlay: String,
    #[serde(default)]
    discover_images: bool,
    #[serde(default)]
    image_fields: Vec<ImageFieldSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    source: String,
}

impl Spec {
    /// Read and validate a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::parse(&text, path, &base)
    }

    /// Parse spec text; `path` is only used in messages, `base_dir` resolves
    /// relative paths.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<Spec, SpecError> {
        let raw: RawSpec = serde_yaml_ng::from_str(text).map_err(|error| SpecError::Parse {
            path: path.to_path_buf(),
            error,
        })?;
        let invalid = |field: &str, problem: String| SpecError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            problem,
        };
        if let Some(v) = &raw.api_version {
            if v != "atp-offline/v1" {
                return Err(invalid(
                    "apiVersion",
                    format!("{v:?} is not atp-offline/v1"),
                ));
            }
        }
        if let Some(k) = &raw.kind {
            if k != "Bundle" {
                return Err(invalid("kind", format!("{k:?} is not Bundle")));
            }
        }
        for (field, value) in [
            ("metadata.name", &raw.metadata.name),
            ("metadata.version", &raw.metadata.version),
            ("spec.channel", &raw.spec.channel),
        ] {
            if !is_label(value) {
                return Err(invalid(
                    field,
                    format!("{value:?} must be 1-128 characters of A-Z a-z 0-9 . _ - +"),
                ));
            }
        }
        let expires = raw
            .spec
            .expires
            .as_deref()
            .map(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| invalid("spec.expires", format!("{s:?} is not RFC 3339: {e}")))
            })
            .transpose()?;
        for p in &raw.spec.platforms {
            if !is_platform(p) {
                return Err(invalid(
                    "spec.platforms",
                    format!("{p:?} is not OS/ARCH[/VARIANT]"),
                ));
            }
        }
        let mut images = Vec::new();
        let mut image_verify = Vec::new();
        for (i, img) in raw.spec.images.into_iter().enumerate() {
            let (source, name, verify) = match img {
                RawImage::Plain(s) => (s, None, None),
                RawImage::Named(n) => (n.source, n.name, n.verify),
            };
            let field = format!("spec.images[{i}]");
            let source = parse_source(&source, base_dir).map_err(|p| invalid(&field, p))?;
            if let Some(n) = &name {
                if n.trim().is_empty() || n.contains(char::is_whitespace) {
                    return Err(invalid(&field, format!("name {n:?} is not a reference")));
                }
            }
            if let Some(v) = verify {
                image_verify.push((source.clone(), base_dir.join(v.key)));
            }
            images.push(ImageSpec { source, name });
        }
        if images.is_empty() && raw.spec.manifests.is_none() && raw.spec.files.is_empty() {
            return Err(invalid(
                "spec",
                "nothing to bundle: give images, manifests or files".into(),
            ));
        }
        let manifests = raw
            .spec
            .manifests
            .map(|m| -> Result<ManifestsSpec, SpecError> {
                check_relative(&m.overlay).map_err(|p| invalid("spec.manifests.overlay", p))?;
                for (i, f) in m.image_fields.iter().enumerate() {
                    f.to_bundle()
                        .segments()
                        .map_err(|p| invalid(&format!("spec.manifests.imageFields[{i}]"), p))?;
                }
                Ok(ManifestsSpec {
                    root: base_dir.join(&m.root),
                    overlay: m.overlay.trim_end_matches('/').to_string(),
                    discover_images: m.discover_images,
                    image_fields: m.image_fields,
                })
            })
            .transpose()?;
        let mut files = Vec::new();
        for (i, f) in raw.spec.files.into_iter().enumerate() {
            let field = format!("spec.files[{i}]");
            if !is_label(&f.name) {
                return Err(invalid(
                    &field,
                    format!("name {:?} is not a plain name", f.name),
                ));
            }
            if files.iter().any(|g: &FileSpec| g.name == f.name) {
                return Err(invalid(&field, format!("name {:?} is used twice", f.name)));
            }
            files.push(FileSpec {
                name: f.name,
                source: base_dir.join(f.source),
            });
        }
        Ok(Spec {
            name: raw.metadata.name,
            version: raw.metadata.version,
            channel: raw.spec.channel,
            sequence: raw.spec.sequence,
            expires,
            platforms: raw.spec.platforms,
            images,
            manifests,
            files,
            referrers: raw.spec.referrers,
            verify: raw.spec.verify.map(|v| base_dir.join(v.key)),
            image_verify,
            base_dir: base_dir.to_path_buf(),
        })
    }
}

/// `oci:DIR[:TAG]`, `docker-archive:FILE`, or a registry reference.
fn parse_source(s: &str, base: &Path) -> Result<ImageSource, String> {
    if let Some(rest) = s.strip_prefix("oci:") {
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') => (d, Some(t.to_string())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!("{s:?}: oci: needs a directory"));
        }
        return Ok(ImageSource::OciLayout {
            dir: base.join(dir),
            tag,
        });
    }
    if let Some(file) = s.strip_prefix("docker-archive:") {
        if file.is_empty() {
            return Err(format!("{s:?}: docker-archive: needs a file"));
        }
        return Ok(ImageSource::DockerArchive {
            file: base.join(file),
        });
    }
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains("://") {
        return Err(format!(
            "{s:?} is not an image reference (write host/repo:tag, without a scheme)"
        ));
    }
    Ok(ImageSource::Registry(s.to_string()))
}

fn check_relative(p: &str) -> Result<(), String> {
    if p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(format!("{p:?} must be a relative path inside the root"));
    }
    Ok(())
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

fn is_platform(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests;
