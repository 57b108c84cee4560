//! Delta bundles on the connected side (`docs/delta.md`): learn what the
//! site already holds, from earlier bundles (`--base`) and site inventories
//! (`--site-inventory`), and decide which image and file layers the new
//! bundle leaves out.
//!
//! A base bundle (a tar, seekable zstd or split volumes) is opened (its
//! index, config and entry list are read) but not verified: what it claims is only a hint. An omitted layer is named by
//! digest in the signed bundle config, and the installer confirms every one
//! in the site registry before it pushes anything, so a wrong hint makes an
//! install stop cleanly, never install the wrong bytes. This module never
//! omits a manifest, an index, a config or the kustomize layer, and never
//! contacts a registry.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use atp_bundle::assemble::FileSetInput;
use atp_bundle::format::inventory::SiteInventory;
use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{DeltaInfo, Descriptor, ManifestKind};
use atp_bundle::open::Bundle;
use atp_bundle::Digest;

/// Where to learn what the site has. Empty: a full bundle.
#[derive(Debug, Clone, Default)]
pub struct DeltaSources {
    /// Earlier bundles the site installed (`--base`, repeatable).
    pub bases: Vec<PathBuf>,
    /// Inventories written by `atp-installer inventory` (`--site-inventory`).
    pub inventories: Vec<PathBuf>,
}

impl DeltaSources {
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty() && self.inventories.is_empty()
    }
}

/// What the site is known to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteHas {
    pub blobs: HashSet<Digest>,
    /// Index digests of the bundles that supply `blobs`, in the order learnt.
    pub bases: Vec<Digest>,
}

impl SiteHas {
    fn add_base(&mut self, d: &Digest) {
        if !self.bases.contains(d) {
            self.bases.push(d.clone());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("base bundle {path}: {source}\nhint: --base takes a bundle file the site has installed, as atp-bundler wrote it")]
    Base {
        path: PathBuf,
        #[source]
        source: atp_bundle::open::OpenError,
    },
    #[error(
        "base bundle {path} has no readable bundle config; hint: run `atp-installer verify` on it"
    )]
    BaseConfig { path: PathBuf },
    #[error("site inventory {path}: {message}\nhint: --site-inventory takes the file `atp-installer inventory --output` wrote")]
    Inventory { path: PathBuf, message: String },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
}

/// Read every base bundle and inventory.
pub fn load(sources: &DeltaSources) -> Result<SiteHas, DeltaError> {
    let mut has = SiteHas::default();
    for path in &sources.bases {
        add_base_bundle(&mut has, path)?;
    }
    for path in &sources.inventories {
        add_inventory(&mut has, path)?;
    }
    Ok(has)
}

/// A base bundle: every blob it carries, and every blob it relied on itself
/// (an installed delta's omissions were confirmed in the registry).
fn add_base_bundle(has: &mut SiteHas, path: &Path) -> Result<(), DeltaError> {
    let base_err = |source| DeltaError::Base {
        path: path.to_path_buf(),
        source,
    };
    // A tar, a seekable zstd file or split volumes, as the site received it.
    let input = atp_bundle::media::BundleInput::open(path, &[], None).map_err(|e| {
        base_err(atp_bundle::open::OpenError::NotABundle {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    })?;
    let b = Bundle::open_from(path, input.tar()).map_err(base_err)?;
    let config = b.config.as_ref().ok_or_else(|| DeltaError::BaseConfig {
        path: path.to_path_buf(),
    })?;
    has.blobs.extend(b.blobs.iter().map(|l| l.digest.clone()));
    has.add_base(&Digest::of(&b.index_bytes));
    if let Some(d) = &config.delta {
        has.blobs.extend(d.omitted.iter().cloned());
        for base in &d.bases {
            has.add_base(base);
        }
    }
    tracing::info!(
        "base {}: {} {} #{} ({} blobs)",
        path.display(),
        b.info.name,
        b.info.version,
        b.info.sequence,
        b.blobs.len()
    );
    Ok(())
}

fn add_inventory(has: &mut SiteHas, path: &Path) -> Result<(), DeltaError> {
    let err = |message: String| DeltaError::Inventory {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let inv = SiteInventory::parse(&bytes, &path.display().to_string())
        .map_err(|e| err(e.to_string()))?;
    has.blobs.extend(inv.blobs.iter().cloned());
    for b in inv.complete_bundles() {
        has.add_base(b);
    }
    tracing::info!(
        "site inventory {}: registry {}, {} blobs, {} bundle(s), taken {}",
        path.display(),
        inv.registry,
        inv.blobs.len(),
        inv.bundles.len(),
        inv.created
    );
    Ok(())
}

/// One image as the delta planner sees it: its root and its manifests.
pub struct ImageGraph<'a> {
    pub reference: &'a str,
    pub root: &'a Descriptor,
    pub manifests: &'a HashMap<Digest, Vec<u8>>,
}

/// Every layer of an image (not configs, not manifests), by walking its
/// manifests from the root.
pub fn image_layers(img: &ImageGraph<'_>) -> Result<Vec<Descriptor>, DeltaError> {
    let mut layers = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![img.root.clone()];
    while let Some(d) = stack.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let bytes = img
            .manifests
            .get(&d.digest)
            .ok_or_else(|| DeltaError::Image {
                image: img.reference.to_string(),
                message: format!("manifest {} was not resolved", d.digest),
            })?;
        let parsed = Manifest::parse(&d.media_type, bytes, &d.digest.to_string()).map_err(|e| {
            DeltaError::Image {
                image: img.reference.to_string(),
                message: e.to_string(),
            }
        })?;
        match parsed {
            Manifest::Index(i) => stack.extend(i.manifests.into_iter().rev()),
            Manifest::Image(m) => layers.extend(
                m.layers
                    .into_iter()
                    .filter(|l| ManifestKind::of(&l.media_type).is_none()),
            ),
        }
    }
    Ok(layers)
}

/// What a delta leaves out: every image layer and file the site has. `None`
/// when nothing is left out (the bundle is then a full one).
pub fn plan(
    has: &SiteHas,
    images: &[ImageGraph<'_>],
    file_sets: &[FileSetInput],
) -> Result<Option<(DeltaInfo, u64)>, DeltaError> {
    let mut omitted: HashMap<Digest, u64> = HashMap::new();
    for img in images {
        for l in image_layers(img)? {
            if has.blobs.contains(&l.digest) {
                omitted.insert(l.digest, l.size);
            }
        }
    }
    for f in file_sets.iter().flat_map(|s| &s.files) {
        if has.blobs.contains(&f.digest) {
            omitted.insert(f.digest.clone(), f.size);
        }
    }
    if omitted.is_empty() {
        return Ok(None);
    }
    let bytes = omitted.values().sum();
    let mut digests: Vec<Digest> = omitted.into_keys().collect();
    digests.sort_by_key(|d| d.to_string());
    Ok(Some((
        DeltaInfo {
            omitted: digests,
            bases: has.bases.clone(),
        },
        bytes,
    )))
}

/// `create`'s hook: nothing for a full bundle; else load the sources and
/// plan what the resolved images and file sets may leave out.
pub fn for_create(
    sources: &DeltaSources,
    images: &[crate::resolve::ResolvedImage],
    file_sets: &[FileSetInput],
) -> Result<Option<(DeltaInfo, u64)>, DeltaError> {
    if sources.is_empty() {
        return Ok(None);
    }
    let has = load(sources)?;
    let graphs: Vec<ImageGraph<'_>> = images
        .iter()
        .map(|i| ImageGraph {
            reference: &i.reference,
            root: &i.root,
            manifests: &i.manifests,
        })
        .collect();
    let planned = plan(&has, &graphs, file_sets)?;
    match &planned {
        Some((d, bytes)) => tracing::info!(
            "delta: leaving out {} layer(s), {bytes} bytes the site already has",
            d.omitted.len()
        ),
        None => tracing::warn!(
            "delta: the site has none of this bundle's layers; writing a full bundle"
        ),
    }
    Ok(planned)
}

/// The sizes of a bundle's omitted blobs, read from the manifests it
/// carries (each omitted digest once).
pub fn omitted_sizes(b: &Bundle) -> Vec<u64> {
    let omitted: HashSet<&Digest> = b
        .config
        .as_ref()
        .map(|c| c.omitted().iter().collect())
        .unwrap_or_default();
    let mut sizes: HashMap<&Digest, u64> = HashMap::new();
    for loc in b
        .blobs
        .iter()
        .filter(|l| ManifestKind::of(&l.media_type).is_some())
    {
        let Ok(bytes) = b.read_blob(loc) else {
            continue;
        };
        let Ok(m) = Manifest::parse(&loc.media_type, &bytes, &loc.digest.to_string()) else {
            continue;
        };
        for c in m.children() {
            if let Some(d) = omitted.get(&c.digest) {
                sizes.insert(d, c.size);
            }
        }
    }
    sizes.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_bundle::assemble::FileInput;
    use atp_bundle::format::media;

    fn manifest(config: &Digest, layers: &[(&Digest, u64)]) -> Vec<u8> {
        let layers: Vec<_> = layers
            .iter()
            .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": n}))
            .collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": layers})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn omits_only_layers_and_files_the_site_has() {
        let (cfg, l1, l2, f1) = (
            Digest::of(b"cfg"),
            Digest::of(b"l1"),
            Digest::of(b"l2"),
            Digest::of(b"f1"),
        );
        let m = manifest(&cfg, &[(&l1, 10), (&l2, 20)]);
        let md = Descriptor::of_bytes(media::OCI_MANIFEST, &m);
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX,
            "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": md.digest.to_string(), "size": md.size}]})
        .to_string()
        .into_bytes();
        let root = Descriptor::of_bytes(media::OCI_INDEX, &index);
        let manifests: HashMap<Digest, Vec<u8>> = [
            (md.digest.clone(), m.clone()),
            (root.digest.clone(), index.clone()),
        ]
        .into();
        let img = ImageGraph {
            reference: "x",
            root: &root,
            manifests: &manifests,
        };
        let layers: Vec<Digest> = image_layers(&img)
            .unwrap()
            .into_iter()
            .map(|d| d.digest)
            .collect();
        assert_eq!(layers, vec![l1.clone(), l2.clone()]);

        let sets = vec![FileSetInput {
            name: "models".into(),
            files: vec![FileInput {
                path: "w.bin".into(),
                digest: f1.clone(),
                size: 5,
            }],
        }];
        // The site has the config, a manifest, one layer and the file:
        // only the layer and the file are left out.
        let has = SiteHas {
            blobs: [cfg, md.digest.clone(), l1.clone(), f1.clone()].into(),
            bases: vec![Digest::of(b"base")],
        };
        let (delta, bytes) = plan(&has, &[img], &sets).unwrap().unwrap();
        let mut want = vec![l1, f1];
        want.sort_by_key(|d| d.to_string());
        assert_eq!(delta.omitted, want);
        assert_eq!(delta.bases, vec![Digest::of(b"base")]);
        assert_eq!(bytes, 15);

        // Nothing shared: a full bundle.
        let img = ImageGraph {
            reference: "x",
            root: &root,
            manifests: &manifests,
        };
        assert_eq!(plan(&SiteHas::default(), &[img], &sets).unwrap(), None);
    }

    #[test]
    fn a_missing_manifest_or_bad_inventory_is_an_error() {
        let root = Descriptor::of_bytes(media::OCI_MANIFEST, b"{}");
        let empty = HashMap::new();
        let img = ImageGraph {
            reference: "x",
            root: &root,
            manifests: &empty,
        };
        assert!(matches!(image_layers(&img), Err(DeltaError::Image { .. })));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("inv.json");
        std::fs::write(&p, br#"{"kind":"something-else","format":1}"#).unwrap();
        let err = load(&DeltaSources {
            bases: vec![],
            inventories: vec![p.clone()],
        })
        .unwrap_err();
        assert!(err.to_string().contains("inv.json"), "{err}");
        let err = load(&DeltaSources {
            bases: vec![p],
            inventories: vec![],
        })
        .unwrap_err();
        assert!(matches!(err, DeltaError::Base { .. }), "{err}");
    }
}
