//! The bundle writer: plans the whole archive up front, then lets many
//! threads fill blob data concurrently at known offsets, each blob checked
//! for size then digest as it completes.
//!
//! Data goes to a temp file `.NAME.partial-XXXX` beside the output. Only
//! [`BundleWriter::commit`] renames it into place, after every blob is
//! complete, the file is fsynced and read back through the verifier (by
//! position, on every core; each layer checked by the CRC-32 of the bytes
//! its slot wrote and hashed: `verify::verify_at_vouched`); the fsync and
//! the read-back run at the same time, and both must succeed. An
//! interrupted or failed create never leaves a file under the final name; a
//! writer dropped without commit removes its temp file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p256::ecdsa::VerifyingKey;
use time::OffsetDateTime;

use crate::digest::{BlobMismatch, Hasher};
use crate::format::ustar::{self, HeaderError, Layout};
use crate::format::{BundleInfo, FormatError, ImageIndex, INDEX_PATH, OCI_LAYOUT_BYTES};
use crate::format::{OCI_LAYOUT_PATH, SIGNATURE_PATH};
use crate::verify::{Finding, FindingKind, Report};
use crate::Digest;

mod slot;
pub use slot::BlobSlot;

/// The signed part of a bundle: `index.json` bytes and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIndex {
    pub index_json: Vec<u8>,
    pub signature: String,
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: size mismatch: expected {expected} bytes, got {found}; hint: the source served different content than its manifest announced, retry or check the source registry")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
    },
    #[error("blob {digest}: digest mismatch: content hashes to {found}; hint: the source served corrupt or substituted content, retry or check the source registry")]
    DigestMismatch { digest: Digest, found: Digest },
    #[error("blob {digest} is not part of this bundle's plan")]
    UnknownBlob { digest: Digest },
    #[error("blob {digest} is listed twice in the blob order")]
    DuplicateBlob { digest: Digest },
    #[error("blob {digest} is already being written or is complete")]
    SlotTaken { digest: Digest },
    #[error("{count} blobs are not complete (first: {first}); hint: every blob must be written and finished before commit")]
    Incomplete { count: usize, first: Digest },
    #[error("index.json: {0}")]
    Index(#[from] FormatError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("the written bundle failed re-verification with {} finding(s), first: {}; hint: this is a bug in atp-bundle or a failing disk; the output was not created", .findings.len(), .findings.first().map(ToString::to_string).unwrap_or_default())]
    Reverify { findings: Vec<Finding> },
}

impl WriteError {
    fn from_mismatch(m: BlobMismatch) -> Self {
        match m {
            BlobMismatch::Size {
                expected,
                expected_size,
                found_size,
            } => Self::SizeMismatch {
                digest: expected,
                expected: expected_size,
                found: found_size,
            },
            BlobMismatch::Digest { expected, found } => Self::DigestMismatch {
                digest: expected,
                found,
            },
        }
    }
}

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const DONE: u8 = 2;

struct SlotState {
    digest: Digest,
    size: u64,
    data_offset: u64,
    state: AtomicU8,
    /// CRC-32 of the bytes written, set before `state` becomes DONE.
    crc: AtomicU32,
}

struct Shared {
    file: File,
    path: PathBuf,
    slots: Vec<SlotState>,
}

/// Writes one bundle. Create, fill every blob through [`BundleWriter::slot`]
/// (from any number of threads), then [`BundleWriter::commit`].
pub struct BundleWriter {
    shared: Arc<Shared>,
    temp: tempfile::TempPath,
    out: PathBuf,
    by_digest: HashMap<Digest, usize>,
    layout: Layout,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BundleWriter {
    /// Plan the archive and create the temp file with every header, the
    /// `oci-layout`, `index.json` and signature already written.
    /// `blobs` is the archive order (see [`crate::assemble::blob_order`]).
    pub fn create(
        out: &Path,
        index: &SignedIndex,
        blobs: &[(Digest, u64)],
    ) -> Result<Self, WriteError> {
        let parsed: ImageIndex =
            serde_json::from_slice(&index.index_json).map_err(|source| FormatError::Json {
                document: INDEX_PATH.into(),
                source,
            })?;
        let mtime = BundleInfo::from_annotations(&parsed.annotations)?.mtime();

        let mut by_digest = HashMap::new();
        for (i, (d, _)) in blobs.iter().enumerate() {
            if by_digest.insert(d.clone(), i).is_some() {
                return Err(WriteError::DuplicateBlob { digest: d.clone() });
            }
        }
        let paths: Vec<String> = blobs.iter().map(|(d, _)| d.blob_path()).collect();
        let fixed = [
            (OCI_LAYOUT_PATH, OCI_LAYOUT_BYTES),
            (INDEX_PATH, &index.index_json[..]),
            (SIGNATURE_PATH, index.signature.as_bytes()),
        ];
        let layout = Layout::plan(
            fixed.iter().map(|(p, b)| (*p, b.len() as u64)).chain(
                paths
                    .iter()
                    .map(String::as_str)
                    .zip(blobs.iter().map(|b| b.1)),
            ),
        );

        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".into());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let (file, temp) = temp.into_parts();
        let path = temp.to_path_buf();
        // tempfile creates 0600; a bundle is signed public content.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(&path))?;
        file.set_len(layout.total_size).map_err(io_err(&path))?;
        // Headers (grouped into one buffer for the small leading entries).
        for (i, e) in layout.entries.iter().enumerate() {
            let h = ustar::header(&e.path, e.size, mtime)?;
            file.write_all_at(&h, e.header_offset)
                .map_err(io_err(&path))?;
            if let Some((_, bytes)) = fixed.get(i) {
                file.write_all_at(bytes, e.data_offset)
                    .map_err(io_err(&path))?;
            }
        }
        let slots = blobs
            .iter()
            .zip(&layout.entries[fixed.len()..])
            .map(|((d, size), e)| SlotState {
                digest: d.clone(),
                size: *size,
                data_offset: e.data_offset,
                state: AtomicU8::new(FREE),
                crc: AtomicU32::new(0),
            })
            .collect();
        Ok(Self {
            shared: Arc::new(Shared { file, path, slots }),
            temp,
            out: out.to_path_buf(),
            by_digest,
            layout,
        })
    }

    /// The planned archive layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Path of the temp file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Claim the slot of one blob. Fails if the blob is not in the plan or is
    /// already claimed or complete. A slot dropped without a successful
    /// [`BlobSlot::finish`] can be claimed again (retry).
    pub fn slot(&self, digest: &Digest) -> Result<BlobSlot, WriteError> {
        let index = *self
            .by_digest
            .get(digest)
            .ok_or_else(|| WriteError::UnknownBlob {
                digest: digest.clone(),
            })?;
        self.shared.slots[index]
            .state
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| WriteError::SlotTaken {
                digest: digest.clone(),
            })?;
        Ok(BlobSlot {
            shared: self.shared.clone(),
            index,
            written: 0,
            hasher: Hasher::new(),
            crc: crc32fast::Hasher::new(),
            done: false,
        })
    }

    /// Blobs not yet complete, in archive order.
    pub fn pending(&self) -> Vec<Digest> {
        self.shared
            .slots
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) != DONE)
            .map(|s| s.digest.clone())
            .collect()
    }

    /// Require every blob complete, fsync, read the whole file back through
    /// the verifier with `key` at `now` (layers checked by the CRC-32 of what
    /// their slot wrote), rename to the final name, fsync the
    /// directory. Returns the verifier's report.
    pub fn commit(self, key: &VerifyingKey, now: OffsetDateTime) -> Result<Report, WriteError> {
        self.commit_with_progress(key, now, &crate::progress::NoProgress)
    }

    /// [`BundleWriter::commit`], reporting the re-read as phase `"re-verify"`.
    pub fn commit_with_progress(
        self,
        key: &VerifyingKey,
        now: OffsetDateTime,
        progress: &dyn crate::progress::Progress,
    ) -> Result<Report, WriteError> {
        self.commit_timed(key, now, progress)
            .map(|(report, _)| report)
    }

    /// [`BundleWriter::commit_with_progress`], also saying how long each
    /// step of the commit took.
    pub fn commit_timed(
        self,
        key: &VerifyingKey,
        now: OffsetDateTime,
        progress: &dyn crate::progress::Progress,
    ) -> Result<(Report, CommitTimings), WriteError> {
        let mut timings = CommitTimings::default();
        let pending = self.pending();
        if let Some(first) = pending.first() {
            return Err(WriteError::Incomplete {
                count: pending.len(),
                first: first.clone(),
            });
        }
        let path = self.shared.path.clone();
        let file = File::open(&path).map_err(io_err(&path))?;
        progress.phase("re-verify", self.layout.total_size, 1);
        // Every blob was hashed once, with SHA-256, as it was written. The
        // file is proven by reading it all back by position through the
        // verifier `verify` uses: headers, index, signature, manifests and
        // configs as always, each layer by the CRC-32 of what was written
        // (a layer that differs is hashed and named as `verify` names it).
        let vouched = self
            .shared
            .slots
            .iter()
            .map(|s| (s.digest.clone(), s.crc.load(Ordering::Acquire)))
            .collect();
        let parallel = crate::verify::Parallel {
            min_size: 0,
            ..Default::default()
        };
        // The fsync runs beside the read-back (the page cache holds the same
        // bytes either way); the rename waits for both.
        let shared = &self.shared;
        let (synced, report) = std::thread::scope(|s| {
            let fsync = s.spawn(|| {
                let clock = Instant::now();
                shared.file.sync_all().map(|()| clock.elapsed())
            });
            let clock = Instant::now();
            let report = crate::verify::verify_at_vouched(
                Arc::new(file),
                key,
                now,
                &parallel,
                progress,
                vouched,
            );
            timings.read_back = clock.elapsed();
            (fsync.join().expect("fsync thread panicked"), report)
        });
        progress.finish_phase();
        timings.fsync = synced.map_err(io_err(&path))?;
        if let Some(f) = report.findings.iter().find(|f| f.kind == FindingKind::Io) {
            return Err(WriteError::Io {
                path,
                source: io::Error::other(f.message.clone()),
            });
        }
        if !report.findings.is_empty() {
            return Err(WriteError::Reverify {
                findings: report.findings,
            });
        }
        let clock = Instant::now();
        self.temp.persist(&self.out).map_err(|e| WriteError::Io {
            path: self.out.clone(),
            source: e.error,
        })?;
        let dir = match self.out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
        timings.rename = clock.elapsed();
        Ok((report, timings))
    }
}

/// How long each step of [`BundleWriter::commit_timed`] took (wall time).
/// The fsync and the read-back run at the same time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitTimings {
    /// fsync of the temp file.
    pub fsync: Duration,
    /// Reading the whole file back through the verifier.
    pub read_back: Duration,
    /// Rename into place and fsync of the folder.
    pub rename: Duration,
}

/// Build a complete bundle file from in-memory blobs given in archive order,
/// verified and renamed into place like any other.
pub fn write_bundle(
    out: &Path,
    index: &SignedIndex,
    blobs: &[(Digest, Vec<u8>)],
    key: &VerifyingKey,
    now: OffsetDateTime,
) -> Result<Report, WriteError> {
    let order: Vec<(Digest, u64)> = blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let writer = BundleWriter::create(out, index, &order)?;
    for (d, bytes) in blobs {
        let mut slot = writer.slot(d)?;
        slot.write_all(bytes).map_err(|e| WriteError::Io {
            path: writer.temp_path().to_path_buf(),
            source: e,
        })?;
        slot.finish()?;
    }
    writer.commit(key, now)
}

/// Encode a bundle entirely in memory (no checks on the blobs): for tests,
/// fixtures and tiny bundles.
pub fn bundle_bytes(
    index: &SignedIndex,
    blobs: &[(Digest, Vec<u8>)],
) -> Result<Vec<u8>, WriteError> {
    let parsed: ImageIndex =
        serde_json::from_slice(&index.index_json).map_err(|source| FormatError::Json {
            document: INDEX_PATH.into(),
            source,
        })?;
    let mtime = BundleInfo::from_annotations(&parsed.annotations)?.mtime();
    let mut files: Vec<(String, &[u8])> = vec![
        (OCI_LAYOUT_PATH.into(), OCI_LAYOUT_BYTES),
        (INDEX_PATH.into(), &index.index_json),
        (SIGNATURE_PATH.into(), index.signature.as_bytes()),
    ];
    files.extend(blobs.iter().map(|(d, b)| (d.blob_path(), &b[..])));
    let layout = Layout::plan(files.iter().map(|(p, b)| (p.as_str(), b.len() as u64)));
    let mut out = vec![0u8; layout.total_size as usize];
    for (e, (_, bytes)) in layout.entries.iter().zip(&files) {
        let h = ustar::header(&e.path, e.size, mtime)?;
        let at = e.header_offset as usize;
        out[at..at + 512].copy_from_slice(&h);
        let at = e.data_offset as usize;
        out[at..at + bytes.len()].copy_from_slice(bytes);
    }
    Ok(out)
}
