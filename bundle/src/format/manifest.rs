//! OCI / Docker schema 2 manifests and indexes: just enough structure to
//! write the bundle's own documents and to walk any image's blob graph.
//!
//! Source manifests are parsed, never re-encoded: their exact bytes are what
//! the digests cover. Media types other than the four accepted ones are
//! refused (spec 3.2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{media, FormatError};
use crate::Digest;

/// Whether a media type names an index (many manifests) or an image manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Index,
    Manifest,
}

impl ManifestKind {
    /// Kind of an accepted manifest media type; `None` for anything else
    /// (configs, layers, unknown manifest types).
    pub fn of(media_type: &str) -> Option<Self> {
        match media_type {
            media::OCI_INDEX | media::DOCKER_LIST => Some(Self::Index),
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => Some(Self::Manifest),
            _ => None,
        }
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Descriptor of in-memory bytes.
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// An OCI image index / Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest / Docker schema 2 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Index(ImageIndex),
    Image(ImageManifest),
}

impl Manifest {
    /// Parse `bytes` as the document `media_type` announces. `document` names
    /// it in errors (usually the digest).
    pub fn parse(media_type: &str, bytes: &[u8], document: &str) -> Result<Self, FormatError> {
        let kind =
            ManifestKind::of(media_type).ok_or_else(|| FormatError::UnsupportedMediaType {
                document: document.to_string(),
                media_type: media_type.to_string(),
            })?;
        let json = |source| FormatError::Json {
            document: document.to_string(),
            source,
        };
        let (parsed, inner_type, schema) = match kind {
            ManifestKind::Index => {
                let i: ImageIndex = serde_json::from_slice(bytes).map_err(json)?;
                let (t, s) = (i.media_type.clone(), i.schema_version);
                (Self::Index(i), t, s)
            }
            ManifestKind::Manifest => {
                let m: ImageManifest = serde_json::from_slice(bytes).map_err(json)?;
                let (t, s) = (m.media_type.clone(), m.schema_version);
                (Self::Image(m), t, s)
            }
        };
        if schema != 2 {
            return Err(FormatError::Invalid {
                document: document.to_string(),
                reason: format!("schemaVersion is {schema}, expected 2"),
            });
        }
        if let Some(inner) = inner_type {
            if inner != media_type {
                return Err(FormatError::Invalid {
                    document: document.to_string(),
                    reason: format!(
                        "descriptor says media type {media_type} but the document says {inner}"
                    ),
                });
            }
        }
        if let Self::Index(i) = &parsed {
            if let Some(bad) = i
                .manifests
                .iter()
                .find(|d| ManifestKind::of(&d.media_type).is_none())
            {
                return Err(FormatError::UnsupportedMediaType {
                    document: format!("{document} -> {}", bad.digest),
                    media_type: bad.media_type.clone(),
                });
            }
        }
        Ok(parsed)
    }

    /// The children in traversal order: an index's manifests, or a
    /// manifest's config then layers.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Self::Index(i) => i.manifests.iter().collect(),
            Self::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_list_and_refuses_unknown_types() {
        let child = Digest::of(b"m");
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{child}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media::DOCKER_LIST,
            media::DOCKER_MANIFEST
        );
        let m = Manifest::parse(media::DOCKER_LIST, list.as_bytes(), "x").unwrap();
        assert_eq!(m.children()[0].digest, child);
        assert!(matches!(
            Manifest::parse(media::OCI_INDEX, list.as_bytes(), "x"),
            Err(FormatError::Invalid { .. })
        ));
        assert!(matches!(
            Manifest::parse(
                "application/vnd.docker.distribution.manifest.v1+json",
                b"{}",
                "x"
            ),
            Err(FormatError::UnsupportedMediaType { .. })
        ));
    }
}
