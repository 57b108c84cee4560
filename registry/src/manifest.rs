//! Manifests as exact bytes, and the minimal parsing needed to walk an image:
//! an index names child manifests (with platforms), a manifest names its
//! config and layers.
//!
//! Never re-serializes a manifest: the bytes from the registry are the bytes we
//! store and push, so digests hold. Refuses Docker schema 1 and unknown types.

use std::fmt;
use std::str::FromStr;

use atp_bundle::Digest;
use bytes::Bytes;
use serde::Deserialize;

use crate::error::Error;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: every type we accept.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (as in the bundle format).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// A manifest or index exactly as the registry served it.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("size", &self.bytes.len())
            .finish()
    }
}

impl Manifest {
    /// Parse into children (see [`ManifestKind::parse`]).
    pub fn kind(&self) -> Result<ManifestKind, Error> {
        ManifestKind::parse(&self.media_type, &self.bytes)
    }
}

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || Error::InvalidReference {
            input: s.into(),
            reason: "platform must be os/arch[/variant]".into(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl Platform {
    /// Does this platform satisfy `want`? A missing variant in `want` matches
    /// any variant; `arm64` treats a missing variant as `v8`.
    pub fn matches(&self, want: &Platform) -> bool {
        if self.os != want.os || self.architecture != want.architecture {
            return false;
        }
        match (&want.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(h)) => w == h,
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

/// A content descriptor: what a parent says about a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
}

/// A parsed manifest: either an index of manifests or one image manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI index or Docker manifest list.
    Index { manifests: Vec<Descriptor> },
    /// OCI image manifest or Docker schema 2 manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
}

/// True for Docker schema 1 media types.
pub fn is_schema1(media_type: &str) -> bool {
    matches!(media_type, DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
}

/// The media type of manifest bytes when the transport gave none: the
/// `mediaType` field, else guessed from shape (OCI allows it to be absent).
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let raw: Raw = serde_json::from_slice(bytes).ok()?;
    if raw.schema_version == Some(1) {
        return Some(DOCKER_SCHEMA1.into());
    }
    if let Some(m) = raw.media_type {
        return Some(m);
    }
    if raw.manifests.is_some() {
        Some(OCI_INDEX.into())
    } else if raw.config.is_some() {
        Some(OCI_MANIFEST.into())
    } else {
        None
    }
}

impl ManifestKind {
    /// Parse manifest bytes of the given media type into its children.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, Error> {
        let ctx = || format!("manifest ({media_type})");
        let invalid = |reason: String| Error::InvalidManifest {
            context: ctx(),
            reason,
        };
        if is_schema1(media_type) {
            return Err(Error::Schema1 { url: ctx() });
        }
        let is_index = match media_type {
            OCI_INDEX | DOCKER_LIST => true,
            OCI_MANIFEST | DOCKER_MANIFEST => false,
            other => {
                return Err(Error::UnsupportedMediaType {
                    context: "manifest".into(),
                    media_type: other.into(),
                })
            }
        };
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if raw.schema_version != Some(2) {
            if raw.schema_version == Some(1) {
                return Err(Error::Schema1 { url: ctx() });
            }
            return Err(invalid("schemaVersion must be 2".into()));
        }
        if let Some(m) = &raw.media_type {
            if m != media_type {
                return Err(invalid(format!(
                    "mediaType field {m:?} disagrees with {media_type:?}"
                )));
            }
        }
        let conv = |d: RawDescriptor| -> Result<Descriptor, Error> {
            let digest = d
                .digest
                .parse::<Digest>()
                .map_err(|e| invalid(e.to_string()))?;
            let size = u64::try_from(d.size)
                .map_err(|_| invalid(format!("negative size for {digest}")))?;
            Ok(Descriptor {
                media_type: d.media_type,
                digest,
                size,
                platform: d.platform,
            })
        };
        if is_index {
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid("index has no manifests".into()))?
                .into_iter()
                .map(conv)
                .collect::<Result<_, _>>()?;
            Ok(ManifestKind::Index { manifests })
        } else {
            let config = conv(raw.config.ok_or_else(|| invalid("no config".into()))?)?;
            let layers = raw
                .layers
                .unwrap_or_default()
                .into_iter()
                .map(conv)
                .collect::<Result<_, _>>()?;
            Ok(ManifestKind::Image { config, layers })
        }
    }

    /// Every child descriptor in order: index children, or config then layers.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            ManifestKind::Index { manifests } => manifests.iter().collect(),
            ManifestKind::Image { config, layers } => {
                std::iter::once(config).chain(layers.iter()).collect()
            }
        }
    }

    /// For an index: the first child matching `want`.
    pub fn select_platform(&self, want: &Platform) -> Option<&Descriptor> {
        match self {
            ManifestKind::Index { manifests } => manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| p.matches(want))),
            ManifestKind::Image { .. } => None,
        }
    }
}

/// Is this a media type of a manifest or index (as opposed to a blob)?
pub fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_index_with_platforms() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":11,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let k = ManifestKind::parse(OCI_INDEX, idx.as_bytes()).unwrap();
        assert_eq!(k.children().len(), 2);
        let arm = k.select_platform(&"linux/arm64".parse().unwrap()).unwrap();
        assert_eq!(arm.digest.to_string(), D2);
        assert_eq!(arm.platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
        assert!(k.select_platform(&"linux/s390x".parse().unwrap()).is_none());
    }

    #[test]
    fn parses_image_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{D1}","size":5}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D2}","size":7}}]}}"#
        );
        let k = ManifestKind::parse(DOCKER_MANIFEST, m.as_bytes()).unwrap();
        let c = k.children();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].size, 5);
        assert_eq!(c[1].digest.to_string(), D2);
    }

    #[test]
    fn refuses_schema1_unknown_and_bad() {
        let s1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert!(matches!(
            ManifestKind::parse(DOCKER_SCHEMA1_SIGNED, s1),
            Err(Error::Schema1 { .. })
        ));
        assert!(matches!(
            ManifestKind::parse(OCI_MANIFEST, s1),
            Err(Error::Schema1 { .. })
        ));
        assert_eq!(sniff_media_type(s1).as_deref(), Some(DOCKER_SCHEMA1));
        assert!(matches!(
            ManifestKind::parse("text/plain", b"{}"),
            Err(Error::UnsupportedMediaType { .. })
        ));
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../../x","size":1}}"#;
        assert!(ManifestKind::parse(OCI_MANIFEST, bad_digest.as_bytes()).is_err());
    }
}
