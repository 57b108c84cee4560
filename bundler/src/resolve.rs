//! Resolve the images of a spec: fetch every manifest (small, exact bytes,
//! digest-checked), prune indexes to the wanted platforms, and list every blob
//! with its size and where to fetch it. Layers are not fetched here; the
//! writer streams them once the whole archive is planned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{json, Descriptor, ManifestKind};
use atp_bundle::Digest;
use atp_registry::{Client, Platform, Reference, Repository};
use serde::Deserialize;

use crate::source::docker_archive::DockerArchive;
use crate::source::oci_layout::{Layouts, OciLayout};
use crate::spec::{ImageSource, ImageSpec};

/// Where the bytes of an image's blobs can be read.
#[derive(Clone)]
pub enum Origin {
    Registry(Client, Repository),
    Layout(Arc<OciLayout>),
    Archive(Arc<DockerArchive>),
}

/// One image, fully resolved except for its layer bytes.
pub struct ResolvedImage {
    /// Normalized reference the image is known by in the bundle.
    pub reference: String,
    /// Where it was read, as the spec writes it (`oci:DIR:TAG`, a registry
    /// reference, `docker-archive:FILE`), for messages.
    pub source: String,
    /// The top manifest or index, as stored in the bundle (pruned when asked).
    pub root: Descriptor,
    /// Digest of the source index before pruning, when pruned.
    pub source_digest: Option<Digest>,
    /// Platforms kept when pruned; every platform of an index otherwise.
    pub platforms: Vec<String>,
    /// Every manifest and index of the image, root included, by digest.
    pub manifests: HashMap<Digest, Vec<u8>>,
    /// Every config and layer: digest → size.
    pub blobs: BTreeMap<Digest, u64>,
    pub origin: Origin,
    /// `Kind/namespace/name` of rendered objects that use the image.
    pub used_by: Vec<String>,
    /// The artifacts that refer to it, once `referrers::attach` found them
    /// (their manifests and blobs are in `manifests` and `blobs`).
    pub referrers: Vec<ResolvedReferrer>,
}

/// One referrer carried with an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedReferrer {
    /// Its manifest's descriptor, `artifactType` filled in.
    pub descriptor: Descriptor,
    /// The manifest it refers to.
    pub subject: Digest,
    /// cosign's upstream tag, when found by one.
    pub tag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("image {image}: {source}")]
    Registry {
        image: String,
        #[source]
        source: atp_registry::Error,
    },
    #[error("image {image}: {message}")]
    Source { image: String, message: String },
    #[error("image {image}: its name {name} pins {pinned}, but the image read from the source is {carried}\nhint: correct the digest in the name, or leave it out (the bundle records the digest it carries)")]
    PinnedDigest {
        image: String,
        name: String,
        pinned: Digest,
        carried: Digest,
    },
    #[error("image {image}: {message}\nhint: {hint}")]
    Invalid {
        image: String,
        message: String,
        hint: String,
    },
}

/// Normalize a reference the Docker way (`nginx` → `docker.io/library/nginx:latest`).
pub fn normalize(reference: &str) -> Result<String, atp_registry::Error> {
    let r: Reference = reference.parse()?;
    let s = r.to_string();
    if r.tag().is_none() && r.digest().is_none() {
        return Ok(format!("{s}:latest"));
    }
    Ok(s)
}

/// A source as the spec writes it (`oci:DIR:TAG`, a registry reference,
/// `docker-archive:FILE`): [`ResolvedImage::source`].
pub fn label(source: &ImageSource) -> String {
    match source {
        ImageSource::Registry(r) => r.clone(),
        ImageSource::OciLayout { dir, tag } => format!(
            "oci:{}{}",
            dir.display(),
            tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
        ),
        ImageSource::DockerArchive { file } => format!("docker-archive:{}", file.display()),
    }
}

/// Resolve one spec image. Layouts are opened through `layouts`, once per
/// folder.
pub async fn resolve(
    img: &ImageSpec,
    client: &Client,
    layouts: &Layouts,
    platforms: &[String],
) -> Result<ResolvedImage, ResolveError> {
    let label = label(&img.source);
    let src_err = |message: String| ResolveError::Source {
        image: label.clone(),
        message,
    };
    let (recorded, root_bytes, media_type, origin) =
        match &img.source {
            ImageSource::Registry(r) => {
                let reference: Reference = r.parse().map_err(|source| ResolveError::Registry {
                    image: label.clone(),
                    source,
                })?;
                let m = client.get_manifest(&reference).await.map_err(|source| {
                    ResolveError::Registry {
                        image: label.clone(),
                        source,
                    }
                })?;
                let origin = Origin::Registry(client.clone(), reference.repository().clone());
                (Some(r.clone()), m.bytes.to_vec(), m.media_type, origin)
            }
            ImageSource::OciLayout { dir, tag } => {
                let layout = layouts.open(dir).map_err(|e| src_err(e.to_string()))?;
                let d = layout
                    .find(tag.as_deref())
                    .map_err(|e| src_err(e.to_string()))?
                    .clone();
                let bytes = layout
                    .read_blob(&d.digest)
                    .map_err(|e| src_err(e.to_string()))?;
                check_bytes(&bytes, &d.digest, d.size).map_err(src_err)?;
                let recorded = d.recorded_reference().map(str::to_string);
                (recorded, bytes, d.media_type, Origin::Layout(layout))
            }
            ImageSource::DockerArchive { file } => {
                let a = DockerArchive::open(file).map_err(|e| src_err(e.to_string()))?;
                let recorded = a.repo_tag.clone();
                let bytes = a.manifest.clone();
                let mt = crate::source::docker_archive::DOCKER_MANIFEST.to_string();
                (recorded, bytes, mt, Origin::Archive(Arc::new(a)))
            }
        };
    let name = img
        .name
        .clone()
        .or(recorded)
        .ok_or_else(|| ResolveError::Invalid {
            image: label.clone(),
            message: "the source records no image reference".into(),
            hint: "give one in the spec: {source: \"oci:DIR:TAG\", name: \"registry/repo:tag\"}"
                .into(),
        })?;
    let reference = normalize(&name).map_err(|source| ResolveError::Registry {
        image: label.clone(),
        source,
    })?;

    let root = Descriptor::of_bytes(&media_type, &root_bytes);
    if let Some(pinned) = name
        .parse::<Reference>()
        .ok()
        .and_then(|r| r.digest().cloned())
    {
        if pinned != root.digest {
            return Err(ResolveError::PinnedDigest {
                image: label,
                name,
                pinned,
                carried: root.digest,
            });
        }
    }

    let mut out = ResolvedImage {
        reference,
        source: label.clone(),
        root,
        source_digest: None,
        platforms: Vec::new(),
        manifests: HashMap::new(),
        blobs: BTreeMap::new(),
        origin,
        used_by: Vec::new(),
        referrers: Vec::new(),
    };
    let (root_bytes, kept) = prune(&label, &media_type, root_bytes, platforms)?;
    if let Some(kept) = kept {
        out.source_digest = Some(out.root.digest.clone());
        out.root = Descriptor::of_bytes(&media_type, &root_bytes);
        out.platforms = kept;
    }
    let root = out.root.clone();
    walk(&label, &mut out, root, root_bytes).await?;
    if out.platforms.is_empty() {
        out.platforms = platforms_of(&out)?;
    }
    Ok(out)
}

fn check_bytes(bytes: &[u8], digest: &Digest, size: u64) -> Result<(), String> {
    if bytes.len() as u64 != size {
        return Err(format!(
            "manifest {digest}: size {} differs from the announced {size}",
            bytes.len()
        ));
    }
    let found = Digest::of(bytes);
    if &found != digest {
        return Err(format!("manifest {digest}: content hashes to {found}"));
    }
    Ok(())
}

/// The platform an index entry announces, `os/arch[/variant]`.
fn platform_of(p: &serde_json::Value) -> Option<Platform> {
    Platform::deserialize(p).ok()
}

fn platform_string(p: &serde_json::Value) -> Option<String> {
    platform_of(p).map(|p| p.to_string())
}

/// Prune an index to the wanted platforms. Returns the new bytes and the kept
/// platforms, or `None` when nothing was removed (bytes unchanged).
fn prune(
    label: &str,
    media_type: &str,
    bytes: Vec<u8>,
    wanted: &[String],
) -> Result<(Vec<u8>, Option<Vec<String>>), ResolveError> {
    if wanted.is_empty() || ManifestKind::of(media_type) != Some(ManifestKind::Index) {
        return Ok((bytes, None));
    }
    let invalid = |message: String, hint: &str| ResolveError::Invalid {
        image: label.to_string(),
        message,
        hint: hint.to_string(),
    };
    let want = wanted
        .iter()
        .map(|w| w.parse::<Platform>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string(), "write platforms as os/arch[/variant]"))?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("index is not JSON: {e}"), "check the source"))?;
    let list = v["manifests"].as_array().cloned().unwrap_or_default();
    let mut kept = Vec::new();
    let mut kept_platforms = Vec::new();
    let mut all = Vec::new();
    for d in list.iter() {
        let have = platform_of(&d["platform"]);
        let p = have
            .as_ref()
            .map_or_else(|| "unknown/unknown".into(), |p| p.to_string());
        all.push(p.clone());
        // The one rule `--platform` follows everywhere: `Platform::matches`.
        if have.is_some_and(|h| want.iter().any(|w| h.matches(w))) {
            kept.push(d.clone());
            kept_platforms.push(p);
        }
    }
    if kept.is_empty() {
        return Err(invalid(
            format!(
                "has none of the platforms {}; it has {}",
                wanted.join(", "),
                all.join(", ")
            ),
            "drop --platform, or pick one the image has",
        ));
    }
    if kept.len() == list.len() {
        return Ok((bytes, None));
    }
    v["manifests"] = serde_json::Value::Array(kept);
    let pruned = json::to_canonical_vec(&v).expect("JSON value serializes");
    Ok((pruned, Some(kept_platforms)))
}

/// Add a referrer's manifest (fetched and digest-checked) to `img`: its
/// bytes, its configs and layers, and any manifest it lists.
pub(crate) async fn walk_referrer(
    img: &mut ResolvedImage,
    desc: Descriptor,
    bytes: Vec<u8>,
) -> Result<(), ResolveError> {
    let label = img.source.clone();
    walk(&label, img, desc, bytes).await
}

/// Fetch every child manifest, collect configs and layers.
async fn walk(
    label: &str,
    out: &mut ResolvedImage,
    root: Descriptor,
    root_bytes: Vec<u8>,
) -> Result<(), ResolveError> {
    let mut stack = vec![(root, root_bytes)];
    while let Some((desc, bytes)) = stack.pop() {
        let parsed = Manifest::parse(&desc.media_type, &bytes, &format!("{label} {}", desc.digest))
            .map_err(|e| ResolveError::Invalid {
                image: label.to_string(),
                message: e.to_string(),
                hint: "ATP Offline carries OCI and Docker schema 2 images; convert schema 1 images with a current docker or skopeo".into(),
            })?;
        out.manifests.insert(desc.digest.clone(), bytes);
        for child in parsed.children() {
            if ManifestKind::of(&child.media_type).is_some() {
                if out.manifests.contains_key(&child.digest) {
                    continue;
                }
                let bytes = fetch_manifest(label, &out.origin, child).await?;
                stack.push((child.clone(), bytes));
            } else {
                out.blobs.insert(child.digest.clone(), child.size);
            }
        }
    }
    Ok(())
}

async fn fetch_manifest(
    label: &str,
    origin: &Origin,
    d: &Descriptor,
) -> Result<Vec<u8>, ResolveError> {
    let src_err = |message: String| ResolveError::Source {
        image: label.to_string(),
        message,
    };
    let bytes = match origin {
        Origin::Registry(client, repo) => client
            .get_manifest_by_digest(repo, &d.digest)
            .await
            .map_err(|source| ResolveError::Registry {
                image: label.to_string(),
                source,
            })?
            .bytes
            .to_vec(),
        Origin::Layout(l) => l.read_blob(&d.digest).map_err(|e| src_err(e.to_string()))?,
        Origin::Archive(_) => return Err(src_err("docker archives hold a single manifest".into())),
    };
    check_bytes(&bytes, &d.digest, d.size).map_err(src_err)?;
    Ok(bytes)
}

/// The platforms of an unpruned image: an index's entries, or a manifest's config.
fn platforms_of(img: &ResolvedImage) -> Result<Vec<String>, ResolveError> {
    let bytes = &img.manifests[&img.root.digest];
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if ManifestKind::of(&img.root.media_type) == Some(ManifestKind::Index) {
        return Ok(v["manifests"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|d| platform_string(&d["platform"]))
                    .collect()
            })
            .unwrap_or_default());
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_the_docker_way() {
        assert_eq!(
            normalize("nginx").unwrap(),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            normalize("atp/router:1.4.0").unwrap(),
            "docker.io/atp/router:1.4.0"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/a/b:1").unwrap(),
            "127.0.0.1:5000/a/b:1"
        );
    }

    #[test]
    fn prunes_an_index_to_the_wanted_platforms_and_refuses_none() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        let mt = "application/vnd.oci.image.index.v1+json";
        let (b, kept) = prune("x", mt, idx.to_vec(), &["linux/arm64".into()]).unwrap();
        assert_eq!(kept.unwrap(), ["linux/arm64/v8"]);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
        let (b, kept) = prune("x", mt, idx.to_vec(), &[]).unwrap();
        assert!(kept.is_none());
        assert_eq!(b, idx);
        let err = prune("x", mt, idx.to_vec(), &["linux/s390x".into()]).unwrap_err();
        assert!(
            err.to_string().contains("linux/amd64, linux/arm64/v8"),
            "{err}"
        );
    }

    /// `--platform` follows `Platform::matches`: a variant asked for matches
    /// an entry that leaves out its architecture's default variant.
    #[test]
    fn prune_follows_the_one_platform_rule() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"os":"linux","architecture":"arm64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1,"platform":{"os":"linux","architecture":"arm"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v6"}}]}"#;
        let mt = "application/vnd.oci.image.index.v1+json";
        let kept = |want: &[&str]| {
            let want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            prune("x", mt, idx.to_vec(), &want).map(|(_, k)| k.unwrap())
        };
        assert_eq!(kept(&["linux/arm64/v8"]).unwrap(), ["linux/arm64"]);
        assert_eq!(kept(&["linux/arm/v7"]).unwrap(), ["linux/arm"]);
        assert_eq!(kept(&["linux/arm/v6"]).unwrap(), ["linux/arm/v6"]);
        assert_eq!(kept(&["linux/arm"]).unwrap(), ["linux/arm", "linux/arm/v6"]);
        assert_eq!(kept(&["linux/amd64/v1"]).unwrap(), ["linux/amd64"]);
        assert!(kept(&["linux/arm64/v9"]).is_err());
        let err = kept(&["linux"]).unwrap_err();
        assert!(err.to_string().contains("os/arch[/variant]"), "{err}");
    }
}
