//! Which images a bundle (or a sync) carries, decided in one place for
//! `create` and `sync` alike: resolve the listed images, render the overlay
//! and list the images it uses, add the used ones that are not listed when
//! the spec discovers them, and refuse an overlay that uses an image that is
//! not carried (the completeness check).
//!
//! Fetches manifests only, never a layer, and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use atp_bundle::image_ref::{self, Carried};
use atp_bundle::kustomize::{self, ExtraField, ImageUse};
use atp_bundle::Digest;
use atp_registry::Client;
use futures_util::{StreamExt, TryStreamExt};

use crate::resolve::{self, ResolvedImage};
use crate::source::oci_layout::Layouts;
use crate::spec::{ImageFieldSpec, ImageSource, ImageSpec, ManifestsSpec, ReferrerOptions};

/// An error a caller's discovered-image mapping may return (sync's mirror
/// redirect).
pub type MapError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error(transparent)]
    Render(#[from] kustomize::RenderError),
    #[error("the overlay uses {} image(s) the bundle does not carry:\n{}\nhint: add them to spec.images, or set spec.manifests.discoverImages: true", .missing.len(), .missing.join("\n"))]
    Incomplete { missing: Vec<String> },
    #[error("overlay object {object} has image {image:?} in {field}, which is not a valid reference: {source}")]
    BadImage {
        object: String,
        field: String,
        image: String,
        #[source]
        source: atp_registry::Error,
    },
    #[error("two different images are both named {reference}:\n  {first} ({first_digest})\n  {second} ({second_digest})\nhint: give each its own name in spec.images, or drop the one that is not meant")]
    SameName {
        reference: String,
        first: String,
        first_digest: Digest,
        second: String,
        second_digest: Digest,
    },
    #[error("discovered image {image}: {source}")]
    Discovered {
        image: String,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Referrers(#[from] crate::referrers::ReferrerError),
    #[error("overlay object {object} uses {image:?} in {field}: {source}")]
    AmbiguousImage {
        object: String,
        field: String,
        image: String,
        #[source]
        source: image_ref::Ambiguous,
    },
}

/// Resolve `listed`, then hold the overlay of `manifests` (when given)
/// against them: with `discoverImages`, the images it uses that are not
/// listed are resolved too (each passed through `discovered` first, which
/// builds the image entry for a normalized reference); then any image it
/// still uses that is not carried is refused. Records `usedBy` on every
/// image.
pub async fn gather(
    listed: &[ImageSpec],
    manifests: Option<&ManifestsSpec>,
    client: &Client,
    platforms: &[String],
    concurrency: usize,
    discovered: &(dyn Fn(&str) -> Result<ImageSpec, MapError> + Sync),
) -> Result<Vec<ResolvedImage>, GatherError> {
    let layouts = Layouts::default();
    let mut images = resolve_all(listed, client, &layouts, platforms, concurrency).await?;
    let Some(m) = manifests else {
        return Ok(images);
    };
    let uses = rendered_images(&m.root.join(&m.overlay), &m.image_fields)?;
    let mut missing = check_completeness(&uses, &mut images)?;
    if !missing.is_empty() && m.discover_images {
        let extra = missing
            .keys()
            .map(|r| {
                discovered(r).map_err(|source| GatherError::Discovered {
                    image: r.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            "discoverImages: adding {} image(s) from the overlay",
            extra.len()
        );
        images.extend(resolve_all(&extra, client, &layouts, platforms, concurrency).await?);
        missing = check_completeness(&uses, &mut images)?;
    }
    if !missing.is_empty() {
        return Err(GatherError::Incomplete {
            missing: missing
                .iter()
                .map(|(img, users)| format!("  {img} (used by {})", users.join(", ")))
                .collect(),
        });
    }
    Ok(images)
}

/// [`gather`], then the artifacts that refer to each image
/// ([`attach_referrers`]): what `sync` carries.
pub async fn gather_with_referrers(
    listed: &[ImageSpec],
    manifests: Option<&ManifestsSpec>,
    client: &Client,
    platforms: &[String],
    concurrency: usize,
    discovered: &(dyn Fn(&str) -> Result<ImageSpec, MapError> + Sync),
    referrers: &ReferrerOptions,
) -> Result<Vec<ResolvedImage>, GatherError> {
    let mut images = gather(
        listed,
        manifests,
        client,
        platforms,
        concurrency,
        discovered,
    )
    .await?;
    attach_referrers(&mut images, referrers, concurrency).await?;
    Ok(images)
}

/// Find each image's referrers that `opts` wants, `concurrency` images at
/// a time ([`crate::referrers::attach`]): their descriptors land in
/// `ResolvedImage::referrers`, their manifests and blobs beside the image's.
pub async fn attach_referrers(
    images: &mut [ResolvedImage],
    opts: &ReferrerOptions,
    concurrency: usize,
) -> Result<(), GatherError> {
    futures_util::stream::iter(images.iter_mut())
        .map(|img| crate::referrers::attach(img, opts))
        .buffered(concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The image entry `discoverImages` adds for a reference the overlay uses.
pub fn from_registry(reference: &str) -> ImageSpec {
    ImageSpec {
        source: ImageSource::Registry(reference.to_string()),
        name: None,
    }
}

/// Resolve images concurrently, keeping spec order. The same image listed
/// twice under one name is carried once; two different images under one
/// name are refused, naming both sources.
async fn resolve_all(
    specs: &[ImageSpec],
    client: &Client,
    layouts: &Layouts,
    platforms: &[String],
    concurrency: usize,
) -> Result<Vec<ResolvedImage>, GatherError> {
    let resolved: Vec<ResolvedImage> = futures_util::stream::iter(specs.iter())
        .map(|s| resolve::resolve(s, client, layouts, platforms))
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<ResolvedImage> = Vec::with_capacity(resolved.len());
    for img in resolved {
        match by_name.get(&img.reference) {
            Some(&k) if out[k].root.digest == img.root.digest => {}
            Some(&k) => {
                return Err(GatherError::SameName {
                    reference: img.reference,
                    first: out[k].source.clone(),
                    first_digest: out[k].root.digest.clone(),
                    second: img.source,
                    second_digest: img.root.digest,
                })
            }
            None => {
                by_name.insert(img.reference.clone(), out.len());
                out.push(img);
            }
        }
    }
    Ok(out)
}

/// Render an overlay and list its image uses.
pub fn rendered_images(
    overlay: &Path,
    fields: &[ImageFieldSpec],
) -> Result<Vec<ImageUse>, GatherError> {
    let yaml = kustomize::render(overlay)?;
    let objects = kustomize::parse_objects(&yaml, overlay)?;
    let extra: Vec<ExtraField> = fields.iter().map(ImageFieldSpec::to_bundle).collect();
    Ok(kustomize::image_uses(&objects, &extra))
}

/// The completeness check: match rendered images to bundled ones (the rule
/// is [`atp_bundle::image_ref`]'s); record `usedBy`; return the missing ones
/// (normalized) with the objects that use them.
fn check_completeness(
    uses: &[ImageUse],
    images: &mut [ResolvedImage],
) -> Result<BTreeMap<String, Vec<String>>, GatherError> {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users: Vec<BTreeSet<String>> = vec![BTreeSet::new(); images.len()];
    for u in uses {
        let norm = resolve::normalize(&u.image).map_err(|source| GatherError::BadImage {
            object: u.object.to_string(),
            field: u.field.clone(),
            image: u.image.clone(),
            source,
        })?;
        let found = image_ref::find(
            &norm,
            images.iter().map(|i| Carried {
                reference: &i.reference,
                digest: &i.root.digest,
                source_digest: i.source_digest.as_ref(),
            }),
        )
        .map_err(|source| GatherError::AmbiguousImage {
            object: u.object.to_string(),
            field: u.field.clone(),
            image: u.image.clone(),
            source,
        })?;
        match found {
            Some(i) => {
                users[i].insert(u.object.to_string());
            }
            None => missing
                .entry(norm)
                .or_default()
                .push(format!("{} {}", u.object, u.field)),
        }
    }
    for (img, set) in images.iter_mut().zip(users) {
        img.used_by = set.into_iter().collect();
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_registry::ClientOptions;
    use serde_json::json;

    /// One OCI layout holding `n` images (distinct manifests over one config
    /// and one layer), tagged `t0` … `t{n-1}`, each recording no name.
    fn shared_layout(dir: &Path, n: usize) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            std::fs::write(blobs.join(d.hex()), bytes).unwrap();
            json!({"digest": d.to_string(), "size": bytes.len()})
        };
        let layer = put(b"layer");
        let config = put(br#"{"architecture":"amd64","os":"linux"}"#);
        let mut index = Vec::new();
        for i in 0..n {
            let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer["digest"], "size": layer["size"]}],
                "annotations": {"n": i.to_string()}});
            let d = put(m.to_string().as_bytes());
            index.push(
                json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d["digest"], "size": d["size"],
                "annotations": {"org.opencontainers.image.ref.name": format!("t{i}")}}),
            );
        }
        let index = json!({"schemaVersion": 2, "manifests": index});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    fn image(dir: &Path, tag: &str, name: &str) -> ImageSpec {
        ImageSpec {
            source: ImageSource::OciLayout {
                dir: dir.to_path_buf(),
                tag: Some(tag.into()),
            },
            name: Some(name.into()),
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Issue 24 #9: 500 images from one 2,000-tag layout took 866 MB, each
    /// image parsing the layout's index.json again.
    #[test]
    fn many_images_from_one_layout_read_its_index_once() {
        let dir = tempfile::tempdir().unwrap();
        shared_layout(dir.path(), 300);
        let specs: Vec<ImageSpec> = (0..300)
            .map(|i| {
                image(
                    dir.path(),
                    &format!("t{i}"),
                    &format!("example.org/many/i{i}:1"),
                )
            })
            .collect();
        let client = Client::new(ClientOptions::default()).unwrap();
        let layouts = Layouts::default();
        let images = run(resolve_all(&specs, &client, &layouts, &[], 4)).unwrap();
        assert_eq!(layouts.parsed(), 1, "index.json parsed once per layout");
        assert_eq!(images.len(), 300);
        let digests: std::collections::HashSet<_> =
            images.iter().map(|i| i.root.digest.clone()).collect();
        assert_eq!(digests.len(), 300, "every image is its own");
        assert_eq!(images[299].reference, "example.org/many/i299:1");
    }

    /// Issue 24 #5: a second image under a name already used was dropped.
    #[test]
    fn two_images_under_one_name_are_refused_and_one_image_twice_is_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        shared_layout(dir.path(), 2);
        let client = Client::new(ClientOptions::default()).unwrap();
        let same = [
            image(dir.path(), "t0", "example.org/a:1"),
            image(dir.path(), "t0", "example.org/a:1"),
        ];
        let images = run(resolve_all(&same, &client, &Layouts::default(), &[], 2)).unwrap();
        assert_eq!(images.len(), 1);
        let clash = [
            image(dir.path(), "t0", "example.org/a:1"),
            image(dir.path(), "t1", "example.org/a:1"),
        ];
        let err = run(resolve_all(&clash, &client, &Layouts::default(), &[], 2))
            .err()
            .expect("refused")
            .to_string();
        let d = dir.path().display();
        assert!(err.contains("example.org/a:1"), "{err}");
        assert!(err.contains(&format!("oci:{d}:t0")), "{err}");
        assert!(err.contains(&format!("oci:{d}:t1")), "{err}");
    }
}
