//! Random access to a bundle file without the key: list its entries, read
//! `index.json`, the bundle config and any blob by location (pread). Used by
//! `inspect` and by the installer after a successful verification.
//!
//! Nothing read here is trusted: callers that act on content must first run
//! [`crate::verify`] (or compare each blob against a verified
//! [`BlobLocation`]). This module never writes and never extracts paths.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::manifest::Manifest;
use crate::format::ustar::{self, BLOCK};
use crate::format::{
    media, BundleConfig, BundleInfo, FormatError, ImageIndex, ManifestKind, BLOB_PREFIX,
    INDEX_PATH, MAX_CONFIG_SIZE, MAX_INDEX_SIZE, MAX_MANIFEST_SIZE, SIGNATURE_PATH,
};
use crate::media::ReadAt;
use crate::verify::BlobLocation;
use crate::Digest;

/// Why a bundle could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not an ATP Offline bundle: {reason}; hint: run `atp-installer verify` for a full report")]
    NotABundle { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
}

/// One regular entry of the archive, as listed (unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub path: String,
    pub size: u64,
    pub header_offset: u64,
}

/// An opened bundle: its index, annotations, config and blob locations.
pub struct Bundle {
    source: Arc<dyn ReadAt>,
    path: PathBuf,
    pub entries: Vec<EntryInfo>,
    pub index_bytes: Vec<u8>,
    pub index: ImageIndex,
    pub info: BundleInfo,
    pub signature: String,
    pub config: Option<BundleConfig>,
    /// Blobs in archive order; media types come from their parents.
    pub blobs: Vec<BlobLocation>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("entries", &self.entries.len())
            .field("blobs", &self.blobs.len())
            .finish_non_exhaustive()
    }
}

/// Read one blob's bytes from an open file at a known location.
pub fn read_blob(file: &File, loc: &BlobLocation) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; loc.size as usize];
    FileExt::read_exact_at(file, &mut buf, loc.data_offset)?;
    Ok(buf)
}

/// A `Read` over one blob's bytes at a known location (pread, no seeking, so
/// many readers can share one file).
pub struct BlobReader<'a> {
    file: &'a dyn ReadAt,
    pos: u64,
    end: u64,
}

impl<'a> BlobReader<'a> {
    pub fn new(file: &'a dyn ReadAt, loc: &BlobLocation) -> Self {
        Self {
            file,
            pos: loc.data_offset,
            end: loc.data_offset.saturating_add(loc.size),
        }
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "blob extends past end of file",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Bundle {
    /// Open and index a bundle file (headers only, plus the index, the
    /// manifests and the bundle config).
    /// `path` may also be a seekable zstd file, volumes or their folder
    /// (read in place, unverified; see [`crate::media::BundleInput`]).
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        use crate::media::MediaError;
        let input = crate::media::BundleInput::open(path, &[], None).map_err(|e| match e {
            MediaError::Io { path, source } => OpenError::Io { path, source },
            other => OpenError::NotABundle {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
        Self::open_from(path, input.tar())
    }

    /// Open and index a bundle held by any [`ReadAt`] (a file, volumes, a
    /// seekable zstd stream; see [`crate::media::BundleInput`]).
    pub fn open_from(path: &Path, source: Arc<dyn ReadAt>) -> Result<Self, OpenError> {
        let io_err = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let not = |reason: String| OpenError::NotABundle {
            path: path.to_path_buf(),
            reason,
        };
        let len = source.len();
        let mut entries = Vec::new();
        let mut off = 0u64;
        let mut block = [0u8; 512];
        loop {
            if off.checked_add(BLOCK).is_none_or(|end| end > len) {
                return Err(not(format!(
                    "archive ends at byte {len} without end blocks"
                )));
            }
            source.read_exact_at(&mut block, off).map_err(io_err)?;
            if block.iter().all(|&b| b == 0) {
                break;
            }
            let raw = ustar::parse_header(&block);
            let size = raw
                .size
                .filter(|_| raw.checksum_ok)
                .ok_or_else(|| not(format!("damaged header at offset {off}")))?;
            // Sizes come from the file: an entry must end inside it, so every
            // offset and length derived from it later stays in range.
            let end = ustar::checked_entry_end(off, size).ok_or_else(|| {
                not(format!(
                    "entry {:?} at offset {off} claims {size} bytes, which cannot fit in any file",
                    raw.path
                ))
            })?;
            if end > len {
                return Err(not(format!(
                    "entry {:?} at offset {off} claims {size} bytes, past the end of the archive ({len} bytes); hint: the copy is incomplete or the header is damaged",
                    raw.path
                )));
            }
            if raw.typeflag == b'0' {
                entries.push(EntryInfo {
                    path: raw.path,
                    size,
                    header_offset: off,
                });
            }
            off = end;
        }
        let by_path: HashMap<&str, &EntryInfo> =
            entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let read_entry = |name: &str, limit: u64| -> Result<Vec<u8>, OpenError> {
            let e = by_path
                .get(name)
                .ok_or_else(|| not(format!("no {name} entry")))?;
            if e.size > limit {
                return Err(not(format!("{name} is {} bytes, over the limit", e.size)));
            }
            let mut buf = vec![0u8; e.size as usize];
            source
                .read_exact_at(&mut buf, e.header_offset + BLOCK)
                .map_err(io_err)?;
            Ok(buf)
        };
        let index_bytes = read_entry(INDEX_PATH, MAX_INDEX_SIZE)?;
        let signature = String::from_utf8_lossy(&read_entry(SIGNATURE_PATH, 4096)?).into_owned();
        let fmt_err = |source| OpenError::Format {
            path: path.to_path_buf(),
            source,
        };
        let index: ImageIndex = serde_json::from_slice(&index_bytes).map_err(|source| {
            fmt_err(FormatError::Json {
                document: INDEX_PATH.into(),
                source,
            })
        })?;
        let info = BundleInfo::from_annotations(&index.annotations).map_err(fmt_err)?;

        // Walk the graph to learn media types, and find the bundle config.
        let mut media_types: HashMap<Digest, String> = HashMap::new();
        let mut stack: Vec<(Digest, String)> = index
            .manifests
            .iter()
            .map(|d| (d.digest.clone(), d.media_type.clone()))
            .collect();
        let mut config = None;
        let bundle_manifest = index.manifests.first().map(|d| d.digest.clone());
        while let Some((d, mt)) = stack.pop() {
            if media_types.contains_key(&d) {
                continue;
            }
            media_types.insert(d.clone(), mt.clone());
            let Some(e) = by_path.get(d.blob_path().as_str()) else {
                continue;
            };
            let is_manifest = ManifestKind::of(&mt).is_some();
            let limit = if is_manifest {
                MAX_MANIFEST_SIZE
            } else {
                MAX_CONFIG_SIZE
            };
            if !(is_manifest || mt == media::BUNDLE_CONFIG) || e.size > limit {
                continue;
            }
            let mut bytes = vec![0u8; e.size as usize];
            source
                .read_exact_at(&mut bytes, e.header_offset + BLOCK)
                .map_err(io_err)?;
            if mt == media::BUNDLE_CONFIG {
                config = serde_json::from_slice(&bytes).ok();
                continue;
            }
            let Ok(parsed) = Manifest::parse(&mt, &bytes, &d.to_string()) else {
                continue;
            };
            for c in parsed.children() {
                let is_bundle_config =
                    Some(&d) == bundle_manifest.as_ref() && c.media_type == media::BUNDLE_CONFIG;
                if ManifestKind::of(&c.media_type).is_some() || is_bundle_config {
                    stack.push((c.digest.clone(), c.media_type.clone()));
                } else {
                    media_types
                        .entry(c.digest.clone())
                        .or_insert(c.media_type.clone());
                }
            }
        }
        let blobs = entries
            .iter()
            .filter_map(|e| {
                let d: Digest = format!("sha256:{}", e.path.strip_prefix(BLOB_PREFIX)?)
                    .parse()
                    .ok()?;
                Some(BlobLocation {
                    media_type: media_types
                        .get(&d)
                        .cloned()
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    digest: d,
                    size: e.size,
                    header_offset: e.header_offset,
                    data_offset: e.header_offset + BLOCK,
                })
            })
            .collect();
        Ok(Self {
            source,
            path: path.to_path_buf(),
            entries,
            index_bytes,
            index,
            info,
            signature,
            config,
            blobs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of the tar, by position.
    pub fn source(&self) -> &Arc<dyn ReadAt> {
        &self.source
    }

    /// Location of a blob by digest.
    pub fn blob(&self, digest: &Digest) -> Option<&BlobLocation> {
        self.blobs.iter().find(|b| &b.digest == digest)
    }

    /// Read a blob's bytes (unverified; compare with its digest before use).
    pub fn read_blob(&self, loc: &BlobLocation) -> Result<Vec<u8>, OpenError> {
        let mut buf = vec![0u8; loc.size as usize];
        self.source
            .read_exact_at(&mut buf, loc.data_offset)
            .map_err(|source| OpenError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buf)
    }

    /// A reader over a blob's bytes.
    pub fn blob_reader(&self, loc: &BlobLocation) -> BlobReader<'_> {
        BlobReader::new(self.source.as_ref(), loc)
    }
}
