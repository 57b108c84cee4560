//! Which images a bundle (or a sync) carries, decided in one place for
//! `create` and `sync` alike: resolve the listed images, render the overlay
//! and list the images it uses, add the used ones that are not listed when
//! the spec discovers them, and refuse an overlay that uses an image that is
//! not carried (the completeness check).
//!
//! Fetches manifests only, never a layer, and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use atp_bundle::image_ref::{self, Carried};
use atp_bundle::kustomize::{self, ExtraField, ImageUse};
use atp_registry::Client;
use futures_util::{StreamExt, TryStreamExt};

use crate::resolve::{self, ResolvedImage};
use crate::spec::{ImageFieldSpec, ImageSource, ImageSpec, ManifestsSpec};

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
    #[error("discovered image {image}: {source}")]
    Discovered {
        image: String,
        #[source]
        source: MapError,
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
    let mut images = resolve_all(listed, client, platforms, concurrency).await?;
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
        images.extend(resolve_all(&extra, client, platforms, concurrency).await?);
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

/// The image entry `discoverImages` adds for a reference the overlay uses.
pub fn from_registry(reference: &str) -> ImageSpec {
    ImageSpec {
        source: ImageSource::Registry(reference.to_string()),
        name: None,
    }
}

/// Resolve images concurrently, keeping spec order, dropping repeats.
async fn resolve_all(
    specs: &[ImageSpec],
    client: &Client,
    platforms: &[String],
    concurrency: usize,
) -> Result<Vec<ResolvedImage>, GatherError> {
    let resolved: Vec<ResolvedImage> = futures_util::stream::iter(specs.iter())
        .map(|s| resolve::resolve(s, client, platforms))
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut seen = HashSet::new();
    Ok(resolved
        .into_iter()
        .filter(|i| seen.insert(i.reference.clone()))
        .collect())
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
        );
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
