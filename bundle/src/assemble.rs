//! Assembling a bundle: from "these images, these file sets, this kustomize
//! tree" to the exact `index.json`, bundle config, bundle
//! artifact and file-set manifests (spec sections 3 to 6), plus the
//! depth-first blob order the archive must follow (section 2.1).
//!
//! Everything here is pure: it never pulls images, reads files or touches the
//! network; the bundler feeds it descriptors and bytes it already has.

use std::collections::{BTreeMap, HashMap, HashSet};

use p256::ecdsa::SigningKey;

use crate::format::manifest::Manifest;
use crate::format::{
    annotation as ann, bundle_ref_name, json, media, role, BundleConfig, BundleInfo, DeltaInfo,
    Descriptor, FileEntry, FileSetRef, FormatError, ImageEntry, ImageIndex, ImageManifest,
    ManifestsRoot, ReferrerEntry,
};
use crate::Digest;

/// One image to carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInput {
    /// Normalized source reference (`docker.io/library/nginx:latest`).
    pub reference: String,
    /// The top manifest or index as stored in the bundle.
    pub descriptor: Descriptor,
    /// Digest of the source index before platform pruning, if pruned.
    pub source_digest: Option<Digest>,
    /// Platforms kept when pruned (else empty).
    pub platforms: Vec<String>,
    /// `Kind/namespace/name` of objects that use the image.
    pub used_by: Vec<String>,
    /// Artifacts that refer to the image (spec 4.1), in the order the
    /// bundle lists them: by subject in walk order, then artifact type,
    /// then digest. One already carried (for this or an earlier image) is
    /// not carried again.
    pub referrers: Vec<ReferrerInput>,
}

/// One referrer to carry: its manifest's descriptor (media type, digest,
/// size, `artifactType`), the manifest it refers to, and its upstream tag
/// when cosign's tag convention found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerInput {
    pub descriptor: Descriptor,
    pub subject: Digest,
    pub tag: Option<String>,
}

/// One file of a file set: path relative to the set's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// One `spec.files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetInput {
    pub name: String,
    pub files: Vec<FileInput>,
}

/// Everything that decides the signed part of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundlePlan {
    /// `key_fingerprint` is overwritten by [`assemble`] with the signing key's.
    pub info: BundleInfo,
    pub images: Vec<ImageInput>,
    pub file_sets: Vec<FileSetInput>,
    /// Where root and overlay sit, and the kustomize layer bytes
    /// (see [`crate::format::ustar::encode_archive`]).
    pub kustomize: Option<(ManifestsRoot, Vec<u8>)>,
    /// Omitted blobs and base bundles, for a delta bundle.
    pub delta: Option<DeltaInfo>,
}

/// The signed index and the small blobs the bundle itself generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// Canonical `index.json` bytes.
    pub index_json: Vec<u8>,
    /// Base64 signature for `index.json.sig`.
    pub signature: String,
    pub index: ImageIndex,
    pub config: BundleConfig,
    /// Bundle artifact manifest, bundle config, kustomize tar, file-set
    /// manifests and the empty config `{}`, by digest.
    pub generated: BTreeMap<Digest, Vec<u8>>,
}

/// Why the plan cannot become a bundle.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("file set {set:?}: refusing path {path:?}: {reason}; hint: paths must be relative, `/`-separated, without `.`, `..` or empty components, at most 4096 bytes")]
    BadFilePath {
        set: String,
        path: String,
        reason: &'static str,
    },
    #[error("file set {set:?} lists {path:?} twice")]
    DuplicateFile { set: String, path: String },
    #[error("image {reference}: media type {media_type} is not an accepted manifest type")]
    BadImageType {
        reference: String,
        media_type: String,
    },
    #[error("delta bundle omits {digest}, which is not an image or file layer; hint: only image and file layers may be omitted, manifests, configs and the kustomize layer are always carried")]
    BadOmission { digest: Digest },
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Check a file-set path (spec section 5).
pub fn check_file_path(path: &str) -> Result<(), &'static str> {
    if path.len() > 4096 {
        return Err("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute");
    }
    if path.contains('\\') {
        return Err("contains a backslash");
    }
    for c in path.split('/') {
        match c {
            "" => return Err("empty component"),
            "." => return Err("`.` component"),
            ".." => return Err("`..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Build `index.json`, the bundle config and the generated blobs, and sign.
pub fn assemble(plan: &BundlePlan, key: &SigningKey) -> Result<Assembled, PlanError> {
    let mut info = plan.info.clone();
    info.key_fingerprint = crate::keys::fingerprint(key.verifying_key());
    info.delta = plan.delta.is_some();
    let mut generated = BTreeMap::new();
    let mut add = |bytes: Vec<u8>, media_type: &str| {
        let d = Descriptor::of_bytes(media_type, &bytes);
        generated.insert(d.digest.clone(), bytes);
        d
    };

    // Images: one descriptor per distinct reference, in spec order.
    let mut seen_refs = HashSet::new();
    let mut image_descs = Vec::new();
    let mut image_entries = Vec::new();
    for img in &plan.images {
        if crate::format::ManifestKind::of(&img.descriptor.media_type).is_none() {
            return Err(PlanError::BadImageType {
                reference: img.reference.clone(),
                media_type: img.descriptor.media_type.clone(),
            });
        }
        if !seen_refs.insert(img.reference.clone()) {
            continue;
        }
        let mut d = Descriptor::new(
            &img.descriptor.media_type,
            img.descriptor.digest.clone(),
            img.descriptor.size,
        )
        .with_annotation(ann::REF_NAME, &img.reference)
        .with_annotation(ann::ROLE, role::IMAGE);
        if let Some(src) = &img.source_digest {
            d = d
                .with_annotation(ann::SOURCE_DIGEST, &src.to_string())
                .with_annotation(ann::DESCRIPTOR_PLATFORMS, &img.platforms.join(","));
        }
        image_descs.push(d);
        image_entries.push(ImageEntry {
            reference: img.reference.clone(),
            digest: img.descriptor.digest.clone(),
            media_type: img.descriptor.media_type.clone(),
            platforms: img.platforms.clone(),
            used_by: img.used_by.clone(),
            referrers: Vec::new(),
        });
    }

    // Referrers: after every image, each once, covered like an image.
    let referrer_descs = referrers(plan, &mut image_entries)?;

    // File sets: ORAS-style artifacts.
    let mut file_descs = Vec::new();
    let mut file_entries = Vec::new();
    let empty = add(b"{}".to_vec(), media::OCI_EMPTY);
    for set in &plan.file_sets {
        let mut files: Vec<&FileInput> = set.files.iter().collect();
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        for w in files.windows(2) {
            if w[0].path == w[1].path {
                return Err(PlanError::DuplicateFile {
                    set: set.name.clone(),
                    path: w[0].path.clone(),
                });
            }
        }
        let mut layers = Vec::new();
        for f in files {
            check_file_path(&f.path).map_err(|reason| PlanError::BadFilePath {
                set: set.name.clone(),
                path: f.path.clone(),
                reason,
            })?;
            layers.push(
                Descriptor::new(media::FILE_LAYER, f.digest.clone(), f.size)
                    .with_annotation(ann::TITLE, &f.path),
            );
            file_entries.push(FileEntry {
                set: set.name.clone(),
                path: f.path.clone(),
                digest: f.digest.clone(),
                size: f.size,
            });
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: Some(media::FILES_ARTIFACT.into()),
            config: empty.clone(),
            layers,
            annotations: BTreeMap::new(),
        };
        let bytes = json::to_canonical_vec(&manifest).map_err(|source| FormatError::Json {
            document: format!("file set {}", set.name),
            source,
        })?;
        let d = add(bytes, media::OCI_MANIFEST)
            .with_annotation(
                ann::REF_NAME,
                &FileSetRef {
                    name: &set.name,
                    version: &info.version,
                }
                .to_string(),
            )
            .with_annotation(ann::ROLE, role::FILES);
        file_descs.push(d);
    }

    let config = BundleConfig {
        created: info.created,
        images: image_entries,
        files: file_entries,
        manifests: plan.kustomize.as_ref().map(|(root, _)| root.clone()),
        name: info.name.clone(),
        version: info.version.clone(),
        channel: info.channel.clone(),
        sequence: info.sequence,
        delta: plan.delta.clone(),
    };
    let config_desc = add(config.to_canonical_json(), media::BUNDLE_CONFIG);
    let mut layers = Vec::new();
    if let Some((_, tar)) = &plan.kustomize {
        layers.push(add(tar.clone(), media::KUSTOMIZE_TAR));
    }
    let artifact = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: Some(media::BUNDLE_ARTIFACT.into()),
        config: config_desc,
        layers,
        annotations: BTreeMap::new(),
    };
    let artifact_bytes = json::to_canonical_vec(&artifact).map_err(|source| FormatError::Json {
        document: "bundle artifact".into(),
        source,
    })?;
    let mut artifact_desc = add(artifact_bytes, media::OCI_MANIFEST)
        .with_annotation(ann::REF_NAME, &bundle_ref_name(&info.version))
        .with_annotation(ann::ROLE, role::BUNDLE);
    artifact_desc.artifact_type = Some(media::BUNDLE_ARTIFACT.into());

    let mut manifests = vec![artifact_desc];
    manifests.extend(image_descs);
    manifests.extend(referrer_descs);
    manifests.extend(file_descs);
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        artifact_type: None,
        manifests,
        annotations: info.to_annotations(),
    };
    let index_json = json::to_canonical_vec(&index).map_err(|source| FormatError::Json {
        document: "index.json".into(),
        source,
    })?;
    let signature = crate::sign::sign(key, &index_json);
    if plan.file_sets.is_empty() {
        // The empty config is only carried when a file set uses it.
        generated.retain(|d, _| *d != empty.digest);
    }
    Ok(Assembled {
        index_json,
        signature,
        index,
        config,
        generated,
    })
}

/// The top-level descriptors of the plan's referrers, and each image
/// entry's `referrers`: in plan order, a referrer carried once (for the
/// first image that brought it).
fn referrers(plan: &BundlePlan, entries: &mut [ImageEntry]) -> Result<Vec<Descriptor>, PlanError> {
    let mut seen = HashSet::new();
    let mut descs = Vec::new();
    for entry in entries.iter_mut() {
        let Some(img) = plan.images.iter().find(|i| i.reference == entry.reference) else {
            continue;
        };
        for r in &img.referrers {
            let d = &r.descriptor;
            if crate::format::ManifestKind::of(&d.media_type).is_none() {
                return Err(PlanError::BadImageType {
                    reference: format!("{} (referrer {})", img.reference, d.digest),
                    media_type: d.media_type.clone(),
                });
            }
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            let mut desc = Descriptor::new(&d.media_type, d.digest.clone(), d.size)
                .with_annotation(ann::ROLE, role::REFERRER)
                .with_annotation(ann::SUBJECT, &r.subject.to_string())
                .with_annotation(ann::REFERRER_OF, &img.reference);
            if let Some(tag) = &r.tag {
                desc = desc.with_annotation(ann::REFERRER_TAG, tag);
            }
            desc.artifact_type = d.artifact_type.clone();
            descs.push(desc);
            entry.referrers.push(ReferrerEntry {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                artifact_type: d.artifact_type.clone().unwrap_or_default(),
                subject: r.subject.clone(),
                tag: r.tag.clone(),
            });
        }
    }
    Ok(descs)
}

/// The blobs of a bundle in archive order (spec 2.1): depth-first pre-order
/// over `index.manifests`, each blob once, skipping `omitted`. Manifests and
/// indexes are looked up in `manifests` by digest (exact stored bytes).
///
/// Refuses an omitted manifest or config (only layers may be omitted), and a
/// manifest missing from `manifests`.
pub fn blob_order(
    index: &ImageIndex,
    manifests: &HashMap<Digest, Vec<u8>>,
    omitted: &HashSet<Digest>,
) -> Result<Vec<(Digest, u64)>, PlanError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Explicit stack of (descriptor, may it be omitted).
    let mut stack: Vec<(Descriptor, bool)> = index
        .manifests
        .iter()
        .rev()
        .map(|d| (d.clone(), false))
        .collect();
    while let Some((d, omittable)) = stack.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        if omitted.contains(&d.digest) {
            if !omittable {
                return Err(PlanError::BadOmission { digest: d.digest });
            }
            continue;
        }
        out.push((d.digest.clone(), d.size));
        if crate::format::ManifestKind::of(&d.media_type).is_none() {
            continue;
        }
        let bytes = manifests
            .get(&d.digest)
            .ok_or_else(|| FormatError::Invalid {
                document: d.digest.to_string(),
                reason: "manifest bytes not provided to blob_order".into(),
            })?;
        let parsed = Manifest::parse(&d.media_type, bytes, &d.digest.to_string())?;
        let children: Vec<(Descriptor, bool)> = match &parsed {
            Manifest::Index(i) => i.manifests.iter().map(|c| (c.clone(), false)).collect(),
            Manifest::Image(m) => {
                // The bundle artifact's own layer (kustomize) is always carried.
                let layers_omittable =
                    index.manifests.first().map(|b| &b.digest) != Some(&d.digest);
                std::iter::once((m.config.clone(), false))
                    .chain(m.layers.iter().map(|l| (l.clone(), layers_omittable)))
                    .collect()
            }
        };
        stack.extend(children.into_iter().rev());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[5u8; 32]).unwrap()
    }

    #[test]
    fn file_paths_are_checked() {
        for bad in ["/abs", "a/../b", "./a", "a//b", "a\\b", ""] {
            assert!(check_file_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_file_path(&"a".repeat(4097)).is_err());
        assert!(check_file_path("llm/weights.bin").is_ok());
    }

    #[test]
    fn only_image_and_file_layers_may_be_omitted() {
        let s = sample(&key(), None).unwrap();
        let manifests: HashMap<Digest, Vec<u8>> = s.blobs.iter().cloned().collect();
        let order =
            |omit: &Digest| blob_order(&s.assembled.index, &manifests, &[omit.clone()].into());
        let full = blob_order(&s.assembled.index, &manifests, &HashSet::new()).unwrap();
        assert_eq!(full.len(), s.blobs.len());
        let without = order(&s.layers[0]).unwrap();
        assert_eq!(without.len(), full.len() - 1);
        assert!(matches!(
            order(&s.configs[0]),
            Err(PlanError::BadOmission { .. })
        ));
        assert!(matches!(
            order(&s.manifests[1]),
            Err(PlanError::BadOmission { .. })
        ));
        // Blob 2 is the kustomize layer of the bundle artifact.
        let kustomize = &s.blobs[2].0;
        assert_eq!(
            s.assembled.generated.get(kustomize).map(|b| b.len() % 512),
            Some(0)
        );
        assert!(matches!(
            order(kustomize),
            Err(PlanError::BadOmission { .. })
        ));
    }

    #[test]
    fn duplicate_file_and_image_entries() {
        let s = sample(&key(), None).unwrap();
        assert_eq!(s.assembled.index.manifests.len(), 3);
        let img = &s.assembled.index.manifests[1];
        let mut plan_images = vec![ImageInput {
            reference: "docker.io/library/nginx:latest".into(),
            descriptor: Descriptor::new(&img.media_type, img.digest.clone(), img.size),
            source_digest: None,
            platforms: vec![],
            used_by: vec![],
            referrers: vec![],
        }];
        plan_images.push(plan_images[0].clone());
        let f = FileInput {
            path: "a".into(),
            digest: Digest::of(b"a"),
            size: 1,
        };
        let mut plan = BundlePlan {
            info: crate::format::BundleInfo::from_annotations(&s.assembled.index.annotations)
                .unwrap(),
            images: plan_images,
            file_sets: vec![],
            kustomize: None,
            delta: None,
        };
        let a = assemble(&plan, &key()).unwrap();
        assert_eq!(
            a.index.manifests.len(),
            2,
            "image listed twice appears once"
        );
        assert!(!a.generated.contains_key(&Digest::of(b"{}")));
        plan.file_sets = vec![FileSetInput {
            name: "s".into(),
            files: vec![f.clone(), f],
        }];
        assert!(matches!(
            assemble(&plan, &key()),
            Err(PlanError::DuplicateFile { .. })
        ));
    }
}
