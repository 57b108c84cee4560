//! A small, deterministic, synthetic bundle: an image index with two
//! platform manifests whose configs and layers share a layer, a file set and
//! a kustomize tree. For tests and fixtures across the workspace.
//!
//! Never used by production code paths; the bytes are made up (layers are
//! not real tarballs) but every digest, size and signature is genuine.

pub mod broken;
pub mod referrers;

use std::collections::{HashMap, HashSet};

use p256::ecdsa::SigningKey;
use time::OffsetDateTime;

use crate::assemble::{
    assemble, blob_order, Assembled, BundlePlan, FileInput, FileSetInput, ImageInput, PlanError,
};
use crate::format::{media, BundleInfo, Descriptor, ImageIndex, ImageManifest, ManifestsRoot};
use crate::writer::SignedIndex;
use crate::Digest;

/// Reference of the sample image.
pub const SAMPLE_REF: &str = "docker.io/atp/router:1.4.0";

/// A sample bundle: the assembled signed parts and every blob in order.
#[derive(Debug, Clone)]
pub struct Sample {
    pub assembled: Assembled,
    /// All blobs in archive order.
    pub blobs: Vec<(Digest, Vec<u8>)>,
    /// Digest of the image index.
    pub image_index: Digest,
    /// Digests of the two platform manifests, configs and layers.
    pub manifests: Vec<Digest>,
    pub configs: Vec<Digest>,
    pub layers: Vec<Digest>,
}

impl Sample {
    pub fn signed(&self) -> SignedIndex {
        SignedIndex {
            index_json: self.assembled.index_json.clone(),
            signature: self.assembled.signature.clone(),
        }
    }

    /// The whole bundle in memory.
    pub fn bytes(&self) -> Vec<u8> {
        crate::writer::bundle_bytes(&self.signed(), &self.blobs).expect("sample encodes")
    }
}

fn filler(seed: u8, len: usize) -> Vec<u8> {
    let mut x = (seed as u32).wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn canonical<T: serde::Serialize>(v: &T) -> Vec<u8> {
    crate::format::json::to_canonical_vec(v).expect("serializable")
}

/// Sample creation time: 2026-11-26T00:00:00Z.
pub fn sample_created() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_651_200).expect("valid time")
}

/// Build the sample bundle, signed with `key`, optionally expiring.
pub fn sample(key: &SigningKey, expires: Option<OffsetDateTime>) -> Result<Sample, PlanError> {
    sample_with_delta(key, expires, false)
}

/// Like [`sample`]; with `delta` the shared layer is omitted.
pub fn sample_with_delta(
    key: &SigningKey,
    expires: Option<OffsetDateTime>,
    delta: bool,
) -> Result<Sample, PlanError> {
    let shared = filler(1, 1500);
    let mut store: HashMap<Digest, Vec<u8>> = HashMap::new();
    let mut put = |bytes: Vec<u8>, mt: &str| {
        let d = Descriptor::of_bytes(mt, &bytes);
        store.insert(d.digest.clone(), bytes);
        d
    };
    let shared_desc = put(shared, "application/vnd.oci.image.layer.v1.tar+gzip");
    let mut manifests = Vec::new();
    let mut configs = Vec::new();
    let mut layers = vec![shared_desc.digest.clone()];
    let mut platform_descs = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let config = put(
            format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers"}}}}"#)
                .into_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let own = put(
            filler(10 + i as u8, 100 + 211 * i),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        configs.push(config.digest.clone());
        layers.push(own.digest.clone());
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config,
            layers: vec![shared_desc.clone(), own],
            annotations: Default::default(),
        };
        let mut d = put(canonical(&m), media::OCI_MANIFEST);
        d.platform = Some(serde_json::json!({"architecture": arch, "os": "linux"}));
        manifests.push(d.digest.clone());
        platform_descs.push(d);
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        artifact_type: None,
        manifests: platform_descs,
        annotations: Default::default(),
    };
    let index_desc = put(canonical(&index), media::OCI_INDEX);
    let file = b"model weights\n".to_vec();
    let file_desc = put(file, media::FILE_LAYER);
    let kustomize = crate::format::ustar::encode_archive(
        &[
            (
                "manifests/kustomization.yaml".into(),
                b"resources: [router.yaml]\n".to_vec(),
            ),
            (
                "manifests/router.yaml".into(),
                b"kind: Deployment\n".to_vec(),
            ),
        ],
        sample_created().unix_timestamp() as u64,
    )
    .expect("short paths");
    let omitted: HashSet<Digest> = if delta {
        [shared_desc.digest.clone()].into()
    } else {
        HashSet::new()
    };
    let plan = BundlePlan {
        info: BundleInfo {
            name: "atp".into(),
            version: "1.4.0".into(),
            channel: "stable".into(),
            sequence: 7,
            created: sample_created(),
            expires,
            key_fingerprint: String::new(),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            delta,
        },
        images: vec![ImageInput {
            reference: SAMPLE_REF.into(),
            descriptor: index_desc.clone(),
            source_digest: None,
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            used_by: vec!["Deployment/atp-system/atp-router".into()],
            referrers: Vec::new(),
        }],
        file_sets: vec![FileSetInput {
            name: "models".into(),
            files: vec![FileInput {
                path: "llm/weights.bin".into(),
                digest: file_desc.digest.clone(),
                size: file_desc.size,
            }],
        }],
        kustomize: Some((
            ManifestsRoot {
                root: "manifests".into(),
                overlay: None,
                image_fields: Vec::new(),
            },
            kustomize,
        )),
        delta: delta.then(|| crate::format::DeltaInfo {
            omitted: omitted.iter().cloned().collect(),
            bases: vec![Digest::of(b"base bundle index")],
        }),
    };
    let assembled = assemble(&plan, key)?;
    store.extend(assembled.generated.clone());
    let order = blob_order(&assembled.index, &store, &omitted)?;
    let blobs = order
        .into_iter()
        .map(|(d, _)| {
            let bytes = store[&d].clone();
            (d, bytes)
        })
        .collect();
    Ok(Sample {
        assembled,
        blobs,
        image_index: index_desc.digest,
        manifests,
        configs,
        layers,
    })
}
