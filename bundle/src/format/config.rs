//! The bundle config (spec section 4): the JSON blob the bundle artifact
//! points to, describing images, files, the manifests root and delta bases.
//!
//! Written as canonical JSON; it is data, never code, and it is trusted only
//! after its digest matches the signed bundle artifact manifest.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::info::serde_time;
use crate::Digest;

/// The bundle config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleConfig {
    #[serde(with = "serde_time")]
    pub created: OffsetDateTime,
    pub images: Vec<ImageEntry>,
    pub files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<ManifestsRoot>,
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaInfo>,
}

/// One image of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// Normalized source reference.
    #[serde(rename = "ref")]
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    /// Platforms kept (empty when not pruned or single-platform).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `Kind/namespace/name` of every rendered object using the image.
    #[serde(default)]
    pub used_by: Vec<String>,
    /// The carried artifacts that refer to this image (signatures,
    /// attestations, SBOMs), by subject in walk order, then artifact type,
    /// then digest. Absent when none, so a bundle without referrers is
    /// byte-identical to one made before the field existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerEntry>,
}

/// One carried referrer of an image (spec section 4.1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerEntry {
    pub digest: Digest,
    pub media_type: String,
    /// The artifact type as the registry reported it (else the manifest's
    /// `artifactType`, else its config media type).
    pub artifact_type: String,
    /// The manifest it refers to: the image's root, one of its platform
    /// manifests, or another carried referrer.
    pub subject: Digest,
    /// The upstream tag when found by cosign's tag convention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// One file of a file set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub set: String,
    pub path: String,
    pub digest: Digest,
    pub size: u64,
}

/// Where the kustomize root and overlay sit inside the kustomize layer, and
/// where custom resources in it hold images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestsRoot {
    pub root: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    /// The spec's `manifests.imageFields`: image fields of custom resources
    /// that the installer rewrites and gates like container images. Absent
    /// (bundles made before the field existed, or none given) means none.
    #[serde(default, rename = "imageFields", skip_serializing_if = "Vec::is_empty")]
    pub image_fields: Vec<ImageField>,
}

/// An extra place where objects of one kind hold an image: a dotted `path`
/// where a segment ending in `[]` walks every element of a list, e.g.
/// `spec.workers[].image`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ImageField {
    pub kind: String,
    pub path: String,
}

impl ImageField {
    /// The path's segments, each a field name and whether it walks a list.
    /// `Err` says why the field is not well formed: an empty kind or
    /// segment, or a character other than a letter, digit, `_` or `-` in a
    /// kind or field name (so a path can be handed to kustomize as is).
    pub fn segments(&self) -> Result<Vec<(&str, bool)>, String> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !plain(&self.kind) {
            return Err(format!(
                "kind {:?} is not a Kubernetes kind (letters and digits)",
                self.kind
            ));
        }
        self.path
            .split('.')
            .map(|seg| {
                let (name, list) = match seg.strip_suffix("[]") {
                    Some(n) => (n, true),
                    None => (seg, false),
                };
                if plain(name) {
                    Ok((name, list))
                } else {
                    Err(format!(
                        "path {:?}: segment {seg:?} is not a field name (letters, digits, _ and -, with [] to walk a list)",
                        self.path
                    ))
                }
            })
            .collect()
    }
}

/// Delta bundle bookkeeping (spec section 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaInfo {
    pub omitted: Vec<Digest>,
    pub bases: Vec<Digest>,
}

impl BundleConfig {
    /// Canonical JSON bytes of this config.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        super::json::to_canonical_vec(self).expect("bundle config is always serializable")
    }

    /// The omitted blob digests (empty for a full bundle).
    pub fn omitted(&self) -> &[Digest] {
        self.delta.as_ref().map(|d| &d.omitted[..]).unwrap_or(&[])
    }

    /// The image fields of custom resources the manifests declare (empty
    /// when there are no manifests, or none were declared).
    pub fn image_fields(&self) -> &[ImageField] {
        self.manifests.as_ref().map_or(&[], |m| &m.image_fields[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(json: &str) -> ManifestsRoot {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn image_fields_are_optional_and_omitted_when_empty() {
        // A bundle made before imageFields existed still reads.
        let old = root(r#"{"root":"manifests","overlay":"o"}"#);
        assert!(old.image_fields.is_empty());
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"root":"manifests","overlay":"o"}"#
        );
        let new = root(
            r#"{"root":"m","imageFields":[{"kind":"Workload","path":"spec.workers[].image"}]}"#,
        );
        assert_eq!(
            new.image_fields,
            [ImageField {
                kind: "Workload".into(),
                path: "spec.workers[].image".into()
            }]
        );
        assert!(serde_json::to_string(&new)
            .unwrap()
            .contains(r#""imageFields":[{"kind":"Workload","path":"spec.workers[].image"}]"#));
    }

    #[test]
    fn image_field_paths_are_checked_segment_by_segment() {
        let f = |kind: &str, path: &str| ImageField {
            kind: kind.into(),
            path: path.into(),
        };
        assert_eq!(
            f("Workload", "spec.workers[].image").segments().unwrap(),
            [("spec", false), ("workers", true), ("image", false)]
        );
        assert!(f("Workload", "spec.runner-1.image_ref").segments().is_ok());
        for (kind, path) in [
            ("", "spec.image"),
            ("Work/load", "spec.image"),
            ("Workload", ""),
            ("Workload", "spec..image"),
            ("Workload", "spec/image"),
            ("Workload", "spec.list[0].image"),
            ("Workload", "spec.a b"),
            ("Workload", "spec.[]"),
        ] {
            assert!(f(kind, path).segments().is_err(), "{kind} {path}");
        }
    }
}
