//! [`BundleInput`]: open whatever the user points at (`FILE.tar`,
//! `FILE.tar.zst`, `FILE.tar.001`, `FILE.tar.volumes.json` or a folder) and
//! get the bundle's tar as one stream: a sequential reader for the verifier
//! and positional reads for pushes.
//!
//! Volumes are looked up beside `volumes.json` first, then in each
//! `--volumes-from` folder. Every file is opened read-only; nothing on the
//! source media is ever written, renamed or deleted, and nothing is copied
//! to a temp disk.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use p256::ecdsa::VerifyingKey;

use super::multi::{MultiVolume, VolumeStatus};
use super::seekable::{SeekableError, SeekableReader};
use super::volumes::{
    stream_of_volume, Compression, VolumesError, VolumesFile, MAX_VOLUMES_SIZE, SIG_SUFFIX,
    VOLUMES_SUFFIX,
};
use super::{Cursor, ReadAt};
use crate::format::MAX_SIGNATURE_SIZE;
use crate::small_input::{kind_of, read_regular_file, SmallInputError};

/// Why a bundle could not be opened from its media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot read {path}: {source}\nhint: check the path, and that the media is mounted")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}\nhint: pass FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or the folder that holds them")]
    Unrecognized { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Volumes {
        path: PathBuf,
        #[source]
        source: VolumesError,
    },
    #[error("{path}: no signature beside it ({sig})\nhint: copy FILE.tar.volumes.json.sig together with the volumes")]
    NoSignature { path: PathBuf, sig: PathBuf },
    #[error("{} of {total} volume(s) cannot be used:\n{}\nhint: {hint}", .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    BadVolumes {
        total: usize,
        problems: Vec<String>,
        /// Per volume: name and status (only the bad ones).
        statuses: Vec<(String, VolumeStatus)>,
        hint: String,
    },
    #[error("{path} is a {kind}, not a regular file\nhint: copy the bundle to a file first; it is read by position, several times, so a pipe, a device or a FIFO cannot hold it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: larger than the {limit}-byte limit for {what}\nhint: this is not the file `atp-bundler create` wrote, or it is damaged; copy it again")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        limit: u64,
    },
    #[error("{path}: {source}")]
    Seekable {
        path: PathBuf,
        #[source]
        source: SeekableError,
    },
}

/// How the bundle is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// One plain tar file.
    Tar,
    /// One seekable zstd file without `volumes.json`.
    Zstd,
    /// Described by a `volumes.json` (split and/or compressed).
    Volumes,
}

/// A bundle opened for reading from wherever it lives.
pub struct BundleInput {
    /// What the user gave.
    pub path: PathBuf,
    pub kind: InputKind,
    /// The signed description, when there is one.
    pub volumes: Option<VolumesFile>,
    /// The plain tar file, when that is what it is (fast path for pushes).
    pub plain_file: Option<PathBuf>,
    tar: Arc<dyn ReadAt>,
    multi: Option<Arc<MultiVolume>>,
}

impl std::fmt::Debug for BundleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleInput")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("len", &self.tar.len())
            .finish()
    }
}

/// zstd frame magic, little endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl BundleInput {
    /// Open `path`. With `key`, a `volumes.json` must carry a valid
    /// signature by it; without (inspect), it is read unverified.
    pub fn open(
        path: &Path,
        volumes_from: &[PathBuf],
        key: Option<&VerifyingKey>,
    ) -> Result<Self, MediaError> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| MediaError::Io { path: p, source }
        };
        if !path.exists() {
            // `demo.tar` when only its volumes (or `demo.tar.zst`) are there.
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            for suffix in [VOLUMES_SUFFIX, ".zst.volumes.json"] {
                let vj = name
                    .as_ref()
                    .map(|n| path.with_file_name(format!("{n}{suffix}")));
                if let Some(vj) = vj.filter(|p| p.is_file()) {
                    return Self::open_volumes(path, &vj, volumes_from, key);
                }
            }
        }
        let meta = std::fs::metadata(path).map_err(io_err(path))?;
        let unrec = |reason: String| MediaError::Unrecognized {
            path: path.to_path_buf(),
            reason,
        };
        if meta.is_dir() {
            let found = find_in_dir(path).map_err(io_err(path))?;
            return match found {
                DirFind::Volumes(v) => Self::open_volumes(path, &v, volumes_from, key),
                DirFind::Single(f) => Self::open_file(path, &f),
                DirFind::Nothing(reason) => Err(unrec(reason)),
            };
        }
        // Judged on metadata, before any open: opening a FIFO that nobody
        // writes to would block forever, and a pipe or a device would read
        // as an empty or endless "bundle".
        if !meta.is_file() {
            return Err(not_regular(path, &meta));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| unrec("not a file name".into()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        if name.ends_with(VOLUMES_SUFFIX) {
            return Self::open_volumes(path, path, volumes_from, key);
        }
        if let Some(stream) = stream_of_volume(name) {
            let vj = dir.join(format!("{stream}{VOLUMES_SUFFIX}"));
            if !vj.is_file() {
                return Err(unrec(format!(
                    "looks like a volume, but {} is not beside it",
                    vj.display()
                )));
            }
            return Self::open_volumes(path, &vj, volumes_from, key);
        }
        let vj = dir.join(format!("{name}{VOLUMES_SUFFIX}"));
        if vj.is_file() {
            return Self::open_volumes(path, &vj, volumes_from, key);
        }
        Self::open_file(path, path)
    }

    fn open_file(given: &Path, file_path: &Path) -> Result<Self, MediaError> {
        let io_err = |source| MediaError::Io {
            path: file_path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(file_path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(not_regular(file_path, &meta));
        }
        let file = File::open(file_path).map_err(io_err)?;
        // The same check on what was opened, in case the path changed.
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(not_regular(file_path, &meta));
        }
        let mut magic = [0u8; 4];
        let n = ReadAt::read_at(&file, &mut magic, 0).unwrap_or(0);
        if n == 4 && magic == ZSTD_MAGIC {
            let src: Arc<dyn ReadAt> = Arc::new(file);
            let r = SeekableReader::open(src, None).map_err(|source| MediaError::Seekable {
                path: file_path.to_path_buf(),
                source,
            })?;
            return Ok(Self {
                path: given.to_path_buf(),
                kind: InputKind::Zstd,
                volumes: None,
                plain_file: None,
                tar: Arc::new(r),
                multi: None,
            });
        }
        Ok(Self {
            path: given.to_path_buf(),
            kind: InputKind::Tar,
            volumes: None,
            plain_file: Some(file_path.to_path_buf()),
            tar: Arc::new(file),
            multi: None,
        })
    }

    fn open_volumes(
        given: &Path,
        vj: &Path,
        volumes_from: &[PathBuf],
        key: Option<&VerifyingKey>,
    ) -> Result<Self, MediaError> {
        let v = read_volumes_file(vj, key)?;
        let dir = vj.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut search = vec![dir];
        search.extend(volumes_from.iter().cloned());
        let mut files = Vec::new();
        let mut problems = Vec::new();
        let mut statuses = Vec::new();
        for e in &v.volumes {
            match locate(&search, &e.name) {
                None => {
                    problems.push(format!(
                        "volume {}: missing (looked in {})",
                        e.name,
                        search
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    statuses.push((e.name.clone(), VolumeStatus::Missing));
                }
                Some(p) => {
                    let f = File::open(&p).map_err(|source| MediaError::Io {
                        path: p.clone(),
                        source,
                    })?;
                    let size = f
                        .metadata()
                        .map_err(|source| MediaError::Io {
                            path: p.clone(),
                            source,
                        })?
                        .len();
                    if size != e.size {
                        let st = if size < e.size {
                            VolumeStatus::Truncated {
                                found: size,
                                expected: e.size,
                            }
                        } else {
                            VolumeStatus::Corrupt {
                                first_bad: e.size,
                                bad_chunks: 1,
                            }
                        };
                        problems.push(format!(
                            "{} ({size} bytes at {}, volumes.json records {})",
                            st.describe(&e.name),
                            p.display(),
                            e.size
                        ));
                        statuses.push((e.name.clone(), st));
                    } else {
                        files.push((e.clone(), p, f));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(MediaError::BadVolumes {
                total: v.volumes.len(),
                problems,
                statuses,
                hint: "bring every volume (pass --volumes-from DIR for each other drive); re-copy the damaged ones from the original media; `atp-installer verify-media` checks them all".into(),
            });
        }
        let multi = Arc::new(MultiVolume::new(files));
        let tar: Arc<dyn ReadAt> = match v.compression {
            Compression::None => multi.clone(),
            Compression::ZstdSeekable => {
                let src: Arc<dyn ReadAt> = multi.clone();
                Arc::new(
                    SeekableReader::open(src, Some(v.tar_size)).map_err(|source| {
                        MediaError::Seekable {
                            path: vj.to_path_buf(),
                            source,
                        }
                    })?,
                )
            }
        };
        Ok(Self {
            path: given.to_path_buf(),
            kind: InputKind::Volumes,
            volumes: Some(v),
            plain_file: None,
            tar,
            multi: Some(multi),
        })
    }

    /// The tar's length.
    pub fn len(&self) -> u64 {
        self.tar.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tar.is_empty()
    }

    /// Positional reads over the tar.
    pub fn tar(&self) -> Arc<dyn ReadAt> {
        self.tar.clone()
    }

    /// The tar from the start, for the verifier.
    pub fn sequential(&self) -> impl Read + Send + 'static {
        Cursor::new(self.tar.clone(), 0, self.tar.len())
    }

    /// For volumes: finish hashing each one and judge it against
    /// `volumes.json`. Empty for a single file.
    pub fn check_volumes(&self) -> Vec<(String, VolumeStatus)> {
        self.multi
            .as_ref()
            .map(|m| m.check_all())
            .unwrap_or_default()
    }
}

/// Read `volumes.json`, and check its signature when a key is given.
/// Both are read within their limits ([`MAX_VOLUMES_SIZE`],
/// [`MAX_SIGNATURE_SIZE`]) and must be regular files.
pub fn read_volumes_file(vj: &Path, key: Option<&VerifyingKey>) -> Result<VolumesFile, MediaError> {
    let bytes = read_regular_file(vj, MAX_VOLUMES_SIZE, "volumes.json").map_err(small_err)?;
    let vol_err = |source| MediaError::Volumes {
        path: vj.to_path_buf(),
        source,
    };
    match key {
        None => VolumesFile::parse(&bytes).map_err(vol_err),
        Some(key) => {
            let mut sig_path = vj.as_os_str().to_owned();
            sig_path.push(SIG_SUFFIX);
            let sig_path = PathBuf::from(sig_path);
            let sig = match read_regular_file(&sig_path, MAX_SIGNATURE_SIZE, "signatures") {
                Ok(s) => String::from_utf8_lossy(&s).into_owned(),
                Err(SmallInputError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    return Err(MediaError::NoSignature {
                        path: vj.to_path_buf(),
                        sig: sig_path,
                    })
                }
                Err(e) => return Err(small_err(e)),
            };
            VolumesFile::verify_and_parse(&bytes, &sig, key).map_err(vol_err)
        }
    }
}

fn not_regular(path: &Path, meta: &std::fs::Metadata) -> MediaError {
    MediaError::NotRegular {
        path: path.to_path_buf(),
        kind: kind_of(&meta.file_type()),
    }
}

fn small_err(e: SmallInputError) -> MediaError {
    match e {
        SmallInputError::Io { path, source } => MediaError::Io { path, source },
        SmallInputError::TooLarge { path, what, limit } => {
            MediaError::TooLarge { path, what, limit }
        }
        SmallInputError::NotRegular { path, kind } => MediaError::NotRegular { path, kind },
    }
}

/// The first folder of `search` that holds a regular file `name`.
pub fn locate(search: &[PathBuf], name: &str) -> Option<PathBuf> {
    search.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

enum DirFind {
    Volumes(PathBuf),
    Single(PathBuf),
    Nothing(String),
}

/// In a folder: exactly one `*.volumes.json`, else exactly one `*.tar` or
/// `*.tar.zst`.
fn find_in_dir(dir: &Path) -> io::Result<DirFind> {
    let mut vjs = Vec::new();
    let mut singles = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type()?.is_file() {
            continue;
        }
        if name.ends_with(VOLUMES_SUFFIX) {
            vjs.push(e.path());
        } else if name.ends_with(".tar") || name.ends_with(".tar.zst") {
            singles.push(e.path());
        }
    }
    vjs.sort();
    singles.sort();
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match (vjs.len(), singles.len()) {
        (1, _) => DirFind::Volumes(vjs.remove(0)),
        (0, 1) => DirFind::Single(singles.remove(0)),
        (0, 0) => DirFind::Nothing("the folder holds no *.volumes.json, *.tar or *.tar.zst".into()),
        (0, _) => DirFind::Nothing(format!(
            "the folder holds several bundles: {}; name one",
            list(&singles)
        )),
        _ => DirFind::Nothing(format!(
            "the folder holds several volume sets: {}; name one",
            list(&vjs)
        )),
    })
}
