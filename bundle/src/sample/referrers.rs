//! The sample image with referrers (spec 4.1): a cosign-style signature
//! under its tag, an SBOM of the amd64 manifest as an OCI 1.1 artifact with
//! `subject`, and a signature of that SBOM (nested). For the format tests
//! and the installer's; the signature bytes are made up (nothing here
//! verifies them), every digest, size and the bundle signature are genuine.

use std::collections::{BTreeMap, HashMap, HashSet};

use p256::ecdsa::SigningKey;

use crate::assemble::{assemble, blob_order, BundlePlan, ImageInput, PlanError, ReferrerInput};
use crate::format::referrer::cosign_tag;
use crate::format::{annotation as ann, json, media, BundleInfo, Descriptor, ImageIndex};
use crate::sample::{sample, Sample, SAMPLE_REF};
use crate::Digest;

/// `artifactType` of the sample SBOM.
pub const SBOM_TYPE: &str = "application/spdx+json";
/// `artifactType` of the nested signature.
pub const SIGSTORE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The sample with referrers: the bundle, its plan and every blob by digest.
#[derive(Debug, Clone)]
pub struct ReferrerSample {
    pub sample: Sample,
    pub plan: BundlePlan,
    pub store: HashMap<Digest, Vec<u8>>,
    /// The cosign signature manifest (tag `sha256-<index hex>.sig`).
    pub signature: Digest,
    /// The SBOM manifest (subject: the amd64 manifest).
    pub sbom: Digest,
    /// The signature of the SBOM (subject: the SBOM).
    pub nested: Digest,
}

fn put(store: &mut HashMap<Digest, Vec<u8>>, bytes: Vec<u8>, mt: &str) -> Descriptor {
    let d = Descriptor::of_bytes(mt, &bytes);
    store.insert(d.digest.clone(), bytes);
    d
}

fn artifact(
    store: &mut HashMap<Digest, Vec<u8>>,
    artifact_type: Option<&str>,
    config: Descriptor,
    layer: Descriptor,
    subject: Option<&Descriptor>,
) -> Descriptor {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config,
        "layers": [layer],
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = t.into();
    }
    if let Some(s) = subject {
        m["subject"] = serde_json::to_value(s).expect("descriptor");
    }
    let bytes = json::to_canonical_vec(&m).expect("serializable");
    let mut d = put(store, bytes, media::OCI_MANIFEST);
    d.artifact_type = Some(
        artifact_type
            .map(str::to_string)
            .unwrap_or_else(|| m["config"]["mediaType"].as_str().unwrap_or("").to_string()),
    );
    d
}

/// Build the sample with referrers, signed with `key`.
pub fn sample_with_referrers(key: &SigningKey) -> Result<ReferrerSample, PlanError> {
    let base = sample(key, None)?;
    let mut store: HashMap<Digest, Vec<u8>> = base.blobs.iter().cloned().collect();
    let index_bytes = &store[&base.image_index];
    let index_desc = Descriptor::of_bytes(media::OCI_INDEX, index_bytes);
    let amd64 = Descriptor::of_bytes(media::OCI_MANIFEST, &store[&base.manifests[0]]);

    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"docker.io/atp/router"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        index_desc.digest
    );
    let layer = put(
        &mut store,
        payload.into_bytes(),
        media::COSIGN_SIMPLE_SIGNING,
    )
    .with_annotation(ann::COSIGN_SIGNATURE, "TUVVQ0lRRHNhbXBsZQ==");
    let config = put(
        &mut store,
        br#"{"architecture":"","os":"","rootfs":{"type":"layers"}}"#.to_vec(),
        "application/vnd.oci.image.config.v1+json",
    );
    let signature = artifact(&mut store, None, config, layer, None);
    let empty = put(&mut store, b"{}".to_vec(), media::OCI_EMPTY);
    let spdx = put(
        &mut store,
        br#"{"spdxVersion":"SPDX-2.3","name":"router"}"#.to_vec(),
        SBOM_TYPE,
    );
    let sbom = artifact(
        &mut store,
        Some(SBOM_TYPE),
        empty.clone(),
        spdx,
        Some(&amd64),
    );
    let bundle = put(&mut store, br#"{"sig":"nested"}"#.to_vec(), SIGSTORE_TYPE);
    let nested = artifact(&mut store, Some(SIGSTORE_TYPE), empty, bundle, Some(&sbom));

    let plan = BundlePlan {
        info: BundleInfo::from_annotations(&base.assembled.index.annotations)?,
        images: vec![ImageInput {
            reference: SAMPLE_REF.into(),
            descriptor: index_desc.clone(),
            source_digest: None,
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            used_by: vec![],
            referrers: vec![
                ReferrerInput {
                    descriptor: signature.clone(),
                    subject: index_desc.digest.clone(),
                    tag: Some(cosign_tag(&index_desc.digest, "sig")),
                },
                ReferrerInput {
                    descriptor: sbom.clone(),
                    subject: amd64.digest.clone(),
                    tag: None,
                },
                ReferrerInput {
                    descriptor: nested.clone(),
                    subject: sbom.digest.clone(),
                    tag: None,
                },
            ],
        }],
        file_sets: vec![],
        kustomize: None,
        delta: None,
    };
    let sample = build(&plan, &store, key, &base)?;
    Ok(ReferrerSample {
        sample,
        plan,
        store,
        signature: signature.digest,
        sbom: sbom.digest,
        nested: nested.digest,
    })
}

/// Assemble `plan` over the blobs in `store` into a sample bundle.
pub fn build(
    plan: &BundlePlan,
    store: &HashMap<Digest, Vec<u8>>,
    key: &SigningKey,
    base: &Sample,
) -> Result<Sample, PlanError> {
    let assembled = assemble(plan, key)?;
    let mut store = store.clone();
    store.extend(assembled.generated.clone());
    let blobs = blob_order(&assembled.index, &store, &HashSet::new())?
        .into_iter()
        .map(|(d, _)| {
            let bytes = store[&d].clone();
            (d, bytes)
        })
        .collect();
    Ok(Sample {
        assembled,
        blobs,
        ..base.clone()
    })
}

/// The bundle bytes after `edit` changed its `index.json`, signed again
/// with `key` (so only the referrer rules can object).
pub fn with_index_edit(
    s: &Sample,
    key: &SigningKey,
    edit: impl FnOnce(&mut ImageIndex),
) -> Vec<u8> {
    let mut index = s.assembled.index.clone();
    edit(&mut index);
    let index_json = json::to_canonical_vec(&index).expect("serializable");
    let signed = crate::writer::SignedIndex {
        signature: crate::sign::sign(key, &index_json),
        index_json,
    };
    crate::writer::bundle_bytes(&signed, &s.blobs).expect("sample encodes")
}

/// Annotations of the first top-level descriptor whose digest is `d`.
pub fn annotations_of<'a>(
    index: &'a mut ImageIndex,
    d: &Digest,
) -> &'a mut BTreeMap<String, String> {
    &mut index
        .manifests
        .iter_mut()
        .find(|m| m.digest == *d)
        .expect("carried")
        .annotations
}
