//! The on-disk bundle format, in one place: entry paths, media types,
//! annotation keys, size limits, canonical JSON, the canonical ustar header
//! and the typed index/manifest/config documents (`docs/bundle-format.md`).
//!
//! This module only describes and encodes; it never touches the file system
//! or the network, and it never decides whether a bundle is trusted.

pub mod config;
pub mod info;
pub mod inventory;
pub mod json;
pub mod manifest;
pub mod ref_name;
pub mod referrer;
pub mod ustar;

pub use config::{
    BundleConfig, DeltaInfo, FileEntry, ImageEntry, ImageField, ManifestsRoot, ReferrerEntry,
};
pub use info::BundleInfo;
pub use manifest::{Descriptor, ImageIndex, ImageManifest, ManifestKind};
pub use ref_name::{bundle_ref_name, FileSetRef};

/// Version of this format written by the code (`format` annotation).
pub const FORMAT_VERSION: &str = "1";

/// First entry: the OCI layout marker.
pub const OCI_LAYOUT_PATH: &str = "oci-layout";
/// The exact bytes of the `oci-layout` entry.
pub const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Second entry: the signed index.
pub const INDEX_PATH: &str = "index.json";
/// Third entry: the base64 signature over `index.json`.
pub const SIGNATURE_PATH: &str = "index.json.sig";
/// Prefix of every blob entry.
pub const BLOB_PREFIX: &str = "blobs/sha256/";

/// Readers refuse an `index.json` larger than this.
pub const MAX_INDEX_SIZE: u64 = 4 << 20;
/// Readers refuse a manifest or index blob larger than this.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Readers refuse a signature entry larger than this.
pub const MAX_SIGNATURE_SIZE: u64 = 4 << 10;
/// Readers refuse a bundle config larger than this.
pub const MAX_CONFIG_SIZE: u64 = 64 << 20;

/// Media types used and accepted by the format.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1, unsigned and signed: named only to be refused.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// `artifactType` of the bundle artifact.
    pub const BUNDLE_ARTIFACT: &str = "application/vnd.atp-offline.bundle.v1";
    pub const BUNDLE_CONFIG: &str = "application/vnd.atp-offline.bundle.config.v1+json";
    pub const KUSTOMIZE_TAR: &str = "application/vnd.atp-offline.kustomize.v1.tar";
    /// `artifactType` of a file set.
    pub const FILES_ARTIFACT: &str = "application/vnd.atp-offline.files.v1";
    pub const FILE_LAYER: &str = "application/vnd.atp-offline.file.v1";
    /// The layer of a cosign signature manifest: the simple-signing payload.
    pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
}

/// Annotation keys.
pub mod annotation {
    /// Prefix of every bundle-level annotation on `index.json`.
    pub const BUNDLE_PREFIX: &str = "dev.atp-offline.bundle.";
    pub const FORMAT: &str = "dev.atp-offline.bundle.format";
    pub const NAME: &str = "dev.atp-offline.bundle.name";
    pub const VERSION: &str = "dev.atp-offline.bundle.version";
    pub const CHANNEL: &str = "dev.atp-offline.bundle.channel";
    pub const SEQUENCE: &str = "dev.atp-offline.bundle.sequence";
    pub const CREATED: &str = "dev.atp-offline.bundle.created";
    pub const EXPIRES: &str = "dev.atp-offline.bundle.expires";
    pub const KEY_FINGERPRINT: &str = "dev.atp-offline.bundle.key-fingerprint";
    pub const PLATFORMS: &str = "dev.atp-offline.bundle.platforms";
    pub const DELTA: &str = "dev.atp-offline.bundle.delta";
    /// On every descriptor of `index.json`.
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    pub const ROLE: &str = "dev.atp-offline.role";
    pub const SOURCE_DIGEST: &str = "dev.atp-offline.source-digest";
    pub const DESCRIPTOR_PLATFORMS: &str = "dev.atp-offline.platforms";
    /// On a file layer: the file's path in its set.
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// On a referrer descriptor: digest of the manifest it refers to.
    pub const SUBJECT: &str = "dev.atp-offline.subject";
    /// On a referrer descriptor: `ref.name` of the top-level image it
    /// belongs to (the installer pushes it into that image's repository).
    pub const REFERRER_OF: &str = "dev.atp-offline.referrer-of";
    /// On a referrer descriptor found by cosign's tag convention: the tag it
    /// had upstream (`sha256-<hex>.sig`, `.att`, `.sbom`).
    pub const REFERRER_TAG: &str = "dev.atp-offline.referrer-tag";
    /// On a cosign signature layer: the base64 DER ECDSA signature.
    pub const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
}

/// Values of the `dev.atp-offline.role` annotation.
pub mod role {
    pub const BUNDLE: &str = "bundle";
    pub const IMAGE: &str = "image";
    pub const FILES: &str = "files";
    /// An artifact that refers to a carried manifest (spec section 4.1).
    pub const REFERRER: &str = "referrer";
}

/// Errors in a document of the format (index, manifest, config, annotations).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{document}: missing annotation {key}; hint: the bundle was not written by a compatible atp-bundler")]
    MissingAnnotation {
        document: &'static str,
        key: &'static str,
    },
    #[error("{document}: annotation {key} has invalid value {value:?}: {reason}")]
    BadAnnotation {
        document: &'static str,
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{document}: bundle format {found:?} is not supported (this reader knows {FORMAT_VERSION}); hint: upgrade atp-installer")]
    UnsupportedFormat {
        document: &'static str,
        found: String,
    },
    #[error("{document}: invalid JSON: {source}")]
    Json {
        document: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{document}: unsupported manifest media type {media_type:?}; hint: only OCI and Docker schema 2 manifests and indexes are accepted")]
    UnsupportedMediaType {
        document: String,
        media_type: String,
    },
    #[error("{document}: {reason}")]
    Invalid { document: String, reason: String },
}
