//! Read images from an OCI image layout on disk (`oci:DIR[:TAG]`).
//!
//! Only reads: never writes into the layout. Every path it opens is built from
//! a validated [`Digest`], so an index cannot steer it outside `blobs/sha256/`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use atp_bundle::Digest;
use serde::Deserialize;

/// The annotation OCI uses for a tag inside a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd (and our fixtures) use for the full image name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An opened OCI image layout.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
    index: LayoutIndex,
}

#[derive(Debug, Clone, Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<LayoutDescriptor>,
}

/// A top-level descriptor of the layout's `index.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutDescriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Why a layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read OCI layout {path}: {source}\nhint: oci:DIR must name a folder with oci-layout and index.json")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("OCI layout {path}: index.json is not valid: {message}")]
    BadIndex { path: PathBuf, message: String },
    #[error("OCI layout {path} has no image tagged {tag:?}; it has: {available}")]
    NoSuchTag {
        path: PathBuf,
        tag: String,
        available: String,
    },
    #[error(
        "OCI layout {path} holds {count} images; say which with oci:DIR:TAG (tags: {available})"
    )]
    Ambiguous {
        path: PathBuf,
        count: usize,
        available: String,
    },
}

impl OciLayout {
    /// Open a layout and parse its `index.json`.
    pub fn open(dir: &Path) -> Result<Self, LayoutError> {
        let io = |source| LayoutError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::metadata(dir.join("oci-layout")).map_err(io)?;
        let bytes = std::fs::read(dir.join("index.json")).map_err(io)?;
        let index: LayoutIndex =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::BadIndex {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
        })
    }

    /// The descriptor tagged `tag` (matched against the ref.name annotation),
    /// or the only one when no tag is given.
    pub fn find(&self, tag: Option<&str>) -> Result<&LayoutDescriptor, LayoutError> {
        let available = || {
            let tags: Vec<&str> = self
                .index
                .manifests
                .iter()
                .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
                .collect();
            if tags.is_empty() {
                "(none)".to_string()
            } else {
                tags.join(", ")
            }
        };
        match tag {
            Some(t) => self
                .index
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(t))
                .ok_or_else(|| LayoutError::NoSuchTag {
                    path: self.dir.clone(),
                    tag: t.to_string(),
                    available: available(),
                }),
            None if self.index.manifests.len() == 1 => Ok(&self.index.manifests[0]),
            None => Err(LayoutError::Ambiguous {
                path: self.dir.clone(),
                count: self.index.manifests.len(),
                available: available(),
            }),
        }
    }

    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.blob_path())
    }

    /// Read a small blob (a manifest or config) whole.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(|source| LayoutError::Io { path, source })
    }

    /// Open a blob for streaming.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|source| LayoutError::Io { path, source })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The layouts opened during one run, by folder: a layout that many images
/// come from (one `oci:DIR:TAG` per tag) is read and parsed once and shared
/// by all of them, so memory does not grow with the number of its images.
#[derive(Debug, Default)]
pub struct Layouts {
    open: Mutex<HashMap<PathBuf, Arc<OciLayout>>>,
    parsed: AtomicUsize,
}

impl Layouts {
    /// The layout in `dir`, opened on first use.
    pub fn open(&self, dir: &Path) -> Result<Arc<OciLayout>, LayoutError> {
        // The same folder spelled two ways is still one layout.
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut open = self.open.lock().expect("layout cache poisoned");
        if let Some(l) = open.get(&key) {
            return Ok(l.clone());
        }
        let layout = Arc::new(OciLayout::open(dir)?);
        self.parsed.fetch_add(1, Ordering::Relaxed);
        open.insert(key, layout.clone());
        Ok(layout)
    }

    /// How many `index.json` files were read and parsed.
    pub fn parsed(&self) -> usize {
        self.parsed.load(Ordering::Relaxed)
    }
}

impl LayoutDescriptor {
    /// The full image reference recorded in the source, when it has one:
    /// containerd's name annotation, or a ref.name that is itself a reference.
    pub fn recorded_reference(&self) -> Option<&str> {
        if let Some(n) = self.annotations.get(CONTAINERD_NAME) {
            return Some(n);
        }
        self.annotations
            .get(REF_NAME)
            .map(String::as_str)
            .filter(|r| r.contains('/'))
    }
}
