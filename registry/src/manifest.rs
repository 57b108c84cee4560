//! What is registry-specific about manifests: a manifest exactly as the
//! registry served it, the `Accept` header, sniffing a media type the
//! transport did not give, refusing Docker schema 1, and selecting a platform
//! from an index.
//!
//! The media types, the [`Descriptor`] and the parser are the bundle format's
//! (`atp_bundle::format`); this module only adapts them. It never
//! re-serializes a manifest: the bytes from the registry are the bytes we
//! store and push, so digests hold.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use atp_bundle::format::{self, media, FormatError};
use atp_bundle::Digest;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::error::Error;

pub use atp_bundle::format::Descriptor;
/// Manifests larger than this are refused (the bundle format's limit).
pub use atp_bundle::format::MAX_MANIFEST_SIZE;

/// The `Accept` header for manifest requests: every manifest type the bundle
/// format accepts.
pub static MANIFEST_ACCEPT: LazyLock<String> = LazyLock::new(|| {
    [
        media::OCI_INDEX,
        media::OCI_MANIFEST,
        media::DOCKER_LIST,
        media::DOCKER_MANIFEST,
    ]
    .join(", ")
});

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
    /// Parse into children (see [`ParsedManifest::parse`]).
    pub fn kind(&self) -> Result<ParsedManifest, Error> {
        ParsedManifest::parse(&self.media_type, &self.bytes)
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
    /// Does this platform (an index entry's) satisfy `want` (what the user
    /// asked for)? The one rule for `--platform`, pruning and selection:
    ///
    /// - os and architecture must be equal;
    /// - a `want` without a variant matches every variant of its architecture
    ///   (`linux/arm` keeps `linux/arm/v6` and `linux/arm/v7`);
    /// - a `want` with a variant matches the same variant, where a missing
    ///   variant counts as its architecture's default, as the OCI image-index
    ///   spec's variant table and containerd's normaliser have it (`arm64`
    ///   → `v8`, `arm` → `v7`, `amd64` → `v1`), and a bare number is its
    ///   `v` form (`arm64/8` is `arm64/v8`).
    pub fn matches(&self, want: &Platform) -> bool {
        if self.os != want.os || self.architecture != want.architecture {
            return false;
        }
        let Some(w) = &want.variant else {
            return true;
        };
        let arch = &self.architecture;
        normal_variant(arch, Some(w)) == normal_variant(arch, self.variant.as_deref())
    }
}

/// A variant as compared: the architecture's default when absent, `v`
/// prefixed when a bare number.
fn normal_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    let default = match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        "amd64" => Some("v1"),
        _ => None,
    };
    let v = variant.or(default)?;
    if v.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return Some(format!("v{v}"));
    }
    Some(v.to_string())
}

/// The platform a descriptor announces, when it has a well-formed one.
pub fn platform_of(d: &Descriptor) -> Option<Platform> {
    d.platform
        .as_ref()
        .and_then(|v| Platform::deserialize(v).ok())
}

/// A parsed manifest seen as the walk needs it: either an index of manifests
/// or one image manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParsedManifest {
    /// OCI index or Docker manifest list.
    Index { manifests: Vec<Descriptor> },
    /// OCI image manifest or Docker schema 2 manifest.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// Just the fields that tell what kind of document some manifest bytes are.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<IgnoredAny>,
    #[serde(default)]
    config: Option<IgnoredAny>,
}

/// True for Docker schema 1 media types.
pub fn is_schema1(media_type: &str) -> bool {
    matches!(
        media_type,
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED
    )
}

/// The media type of manifest bytes when the transport gave none: the
/// `mediaType` field, else guessed from shape (OCI allows it to be absent).
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    if shape.schema_version == Some(1) {
        return Some(media::DOCKER_SCHEMA1.into());
    }
    if let Some(m) = shape.media_type {
        return Some(m);
    }
    if shape.manifests.is_some() {
        Some(media::OCI_INDEX.into())
    } else if shape.config.is_some() {
        Some(media::OCI_MANIFEST.into())
    } else {
        None
    }
}

impl ParsedManifest {
    /// Parse manifest bytes of the given media type into its children, with
    /// the bundle format's parser. Schema 1 (by media type or by body) is
    /// refused with its own error.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, Error> {
        let ctx = format!("manifest ({media_type})");
        let body_is_schema1 =
            || serde_json::from_slice::<Shape>(bytes).is_ok_and(|s| s.schema_version == Some(1));
        if is_schema1(media_type) || body_is_schema1() {
            return Err(Error::Schema1 { url: ctx });
        }
        match format::manifest::Manifest::parse(media_type, bytes, &ctx) {
            Ok(format::manifest::Manifest::Index(i)) => Ok(Self::Index {
                manifests: i.manifests,
            }),
            Ok(format::manifest::Manifest::Image(m)) => Ok(Self::Image {
                config: m.config,
                layers: m.layers,
            }),
            Err(FormatError::UnsupportedMediaType {
                document,
                media_type,
            }) => Err(Error::UnsupportedMediaType {
                context: document,
                media_type,
            }),
            Err(FormatError::Json { document, source }) => Err(Error::InvalidManifest {
                context: document,
                reason: source.to_string(),
            }),
            Err(FormatError::Invalid { document, reason }) => Err(Error::InvalidManifest {
                context: document,
                reason,
            }),
            Err(other) => Err(Error::InvalidManifest {
                context: ctx,
                reason: other.to_string(),
            }),
        }
    }

    /// Every child descriptor in order: index children, or config then layers.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            ParsedManifest::Index { manifests } => manifests.iter().collect(),
            ParsedManifest::Image { config, layers } => {
                std::iter::once(config).chain(layers.iter()).collect()
            }
        }
    }

    /// For an index: the first child matching `want`.
    pub fn select_platform(&self, want: &Platform) -> Option<&Descriptor> {
        match self {
            ParsedManifest::Index { manifests } => manifests
                .iter()
                .find(|d| platform_of(d).is_some_and(|p| p.matches(want))),
            ParsedManifest::Image { .. } => None,
        }
    }
}

/// Is this a media type of a manifest or index (as opposed to a blob)?
pub fn is_manifest_type(media_type: &str) -> bool {
    format::ManifestKind::of(media_type).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_bundle::format::media::{
        DOCKER_MANIFEST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, OCI_INDEX, OCI_MANIFEST,
    };

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn parses_index_with_platforms() {
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":11,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let k = ParsedManifest::parse(OCI_INDEX, idx.as_bytes()).unwrap();
        assert_eq!(k.children().len(), 2);
        let arm = k.select_platform(&"linux/arm64".parse().unwrap()).unwrap();
        assert_eq!(arm.digest.to_string(), D2);
        assert_eq!(platform_of(arm).unwrap().to_string(), "linux/arm64/v8");
        assert!(k.select_platform(&"linux/s390x".parse().unwrap()).is_none());
    }

    /// `(entry in the index, wanted, matches)`: the one platform rule
    /// `create --platform`, `sync` and selection share.
    #[test]
    fn platform_matching_follows_the_default_variants() {
        let table = [
            ("linux/amd64", "linux/amd64", true),
            ("linux/amd64", "linux/arm64", false),
            ("windows/amd64", "linux/amd64", false),
            // No variant wanted: every variant of the architecture.
            ("linux/arm64/v8", "linux/arm64", true),
            ("linux/arm/v6", "linux/arm", true),
            ("linux/arm/v7", "linux/arm", true),
            ("linux/arm", "linux/arm", true),
            // A variant wanted: a missing one is the architecture's default.
            ("linux/arm64", "linux/arm64/v8", true),
            ("linux/arm64", "linux/arm64/v9", false),
            ("linux/arm64/v8", "linux/arm64/v8", true),
            ("linux/arm64/8", "linux/arm64/v8", true),
            ("linux/arm", "linux/arm/v7", true),
            ("linux/arm", "linux/arm/v6", false),
            ("linux/arm/v6", "linux/arm/v7", false),
            ("linux/arm/v7", "linux/arm/v7", true),
            ("linux/amd64", "linux/amd64/v1", true),
            ("linux/amd64", "linux/amd64/v3", false),
            ("linux/amd64/v3", "linux/amd64/v3", true),
            ("linux/s390x", "linux/s390x/v1", false),
        ];
        for (have, want, expected) in table {
            let h: Platform = have.parse().unwrap();
            let w: Platform = want.parse().unwrap();
            assert_eq!(h.matches(&w), expected, "entry {have}, wanted {want}");
        }
    }

    #[test]
    fn parses_image_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{D1}","size":5}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D2}","size":7}}]}}"#
        );
        let k = ParsedManifest::parse(DOCKER_MANIFEST, m.as_bytes()).unwrap();
        let c = k.children();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].size, 5);
        assert_eq!(c[1].digest.to_string(), D2);
    }

    #[test]
    fn refuses_schema1_unknown_and_bad() {
        let s1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert!(matches!(
            ParsedManifest::parse(DOCKER_SCHEMA1_SIGNED, s1),
            Err(Error::Schema1 { .. })
        ));
        assert!(matches!(
            ParsedManifest::parse(OCI_MANIFEST, s1),
            Err(Error::Schema1 { .. })
        ));
        assert_eq!(sniff_media_type(s1).as_deref(), Some(DOCKER_SCHEMA1));
        assert!(matches!(
            ParsedManifest::parse("text/plain", b"{}"),
            Err(Error::UnsupportedMediaType { .. })
        ));
        let bad_digest =
            r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../../x","size":1}}"#;
        assert!(ParsedManifest::parse(OCI_MANIFEST, bad_digest.as_bytes()).is_err());
    }

    #[test]
    fn accept_header_names_every_manifest_type() {
        for t in [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, media::DOCKER_LIST] {
            assert!(MANIFEST_ACCEPT.split(", ").any(|a| a == t), "{t}");
            assert!(is_manifest_type(t));
        }
        assert!(!is_manifest_type(DOCKER_SCHEMA1));
    }
}
