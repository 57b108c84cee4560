//! `verify-media`: before anyone walks into the gap, check the signature on
//! `volumes.json`, then every volume present against it, and say which are
//! good, missing, truncated, foreign or corrupt; and the installer binary
//! the set carries (`create --with-installer`), if `volumes.json` lists one.
//!
//! Reads only: opens every file read-only and never writes, renames or
//! deletes anything on the media.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use p256::ecdsa::VerifyingKey;
use serde::Serialize;

use crate::progress::Progress;

use super::input::{locate, read_volumes_file, MediaError};
use super::multi::{classify, VolumeHasher, VolumeStatus};
use super::volumes::{stream_of_volume, Compression, VolumeEntry, VOLUMES_SUFFIX};

/// One volume's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeCheck {
    pub name: String,
    /// Where it was found.
    pub path: Option<PathBuf>,
    pub size: u64,
    #[serde(flatten)]
    pub status: VolumeStatus,
}

/// The whole media check.
#[derive(Debug, Clone, Serialize)]
pub struct MediaReport {
    pub ok: bool,
    pub volumes_json: PathBuf,
    pub stream: String,
    pub compression: Compression,
    pub index_digest: String,
    pub tar_size: u64,
    pub volumes: Vec<VolumeCheck>,
    /// The carried installer's verdict, when `volumes.json` lists one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installer: Option<VolumeCheck>,
}

impl MediaReport {
    /// The volumes that are not good (the installer is not a volume).
    pub fn bad(&self) -> impl Iterator<Item = &VolumeCheck> {
        self.volumes.iter().filter(|v| !v.status.is_good())
    }
}

/// Find the `volumes.json` that `path` means: the file itself, the one
/// beside a volume, or the only one in a folder.
pub fn find_volumes_json(path: &Path) -> Result<PathBuf, MediaError> {
    let unrec = |reason: String| MediaError::Unrecognized {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        let mut found = Vec::new();
        for e in std::fs::read_dir(path).map_err(|source| MediaError::Io {
            path: path.to_path_buf(),
            source,
        })? {
            let e = e.map_err(|source| MediaError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(VOLUMES_SUFFIX) && !n.starts_with('.') {
                found.push(e.path());
            }
        }
        found.sort();
        return match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(unrec("the folder holds no *.volumes.json".into())),
            _ => Err(unrec(format!(
                "the folder holds several volume sets: {}; name one",
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(VOLUMES_SUFFIX) {
        return Ok(path.to_path_buf());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let stream = stream_of_volume(&name).unwrap_or(&name);
    let vj = dir.join(format!("{stream}{VOLUMES_SUFFIX}"));
    if vj.is_file() {
        Ok(vj)
    } else {
        Err(unrec(format!("no {} beside it", vj.display())))
    }
}

/// Check the media at `path` (a folder, `volumes.json` or a volume).
pub fn verify_media(
    path: &Path,
    volumes_from: &[PathBuf],
    key: &VerifyingKey,
    progress: &dyn Progress,
) -> Result<MediaReport, MediaError> {
    let vj = find_volumes_json(path)?;
    let v = read_volumes_file(&vj, Some(key))?;
    let mut search = vec![vj.parent().unwrap_or(Path::new(".")).to_path_buf()];
    search.extend(volumes_from.iter().cloned());
    let installer_size = v.installer.as_ref().map_or(0, |e| e.size);
    progress.phase(
        "verify-media",
        v.stream_size + installer_size,
        v.volumes.len() as u64,
    );
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for e in &v.volumes {
        out.push(check_file(&search, e, &mut buf, progress)?);
        progress.item_done(&e.name);
    }
    let installer = match &v.installer {
        Some(e) => Some(check_file(&search, e, &mut buf, progress)?),
        None => None,
    };
    progress.finish_phase();
    Ok(MediaReport {
        ok: out.iter().chain(&installer).all(|c| c.status.is_good()),
        volumes_json: vj,
        stream: v.stream.clone(),
        compression: v.compression,
        index_digest: v.index_digest.to_string(),
        tar_size: v.tar_size,
        volumes: out,
        installer,
    })
}

/// Find the file `e` names in `search`, hash it and judge it.
fn check_file(
    search: &[PathBuf],
    e: &VolumeEntry,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> Result<VolumeCheck, MediaError> {
    let Some(p) = locate(search, &e.name) else {
        return Ok(VolumeCheck {
            name: e.name.clone(),
            path: None,
            size: 0,
            status: VolumeStatus::Missing,
        });
    };
    let io_err = |source| MediaError::Io {
        path: p.clone(),
        source,
    };
    let mut f = File::open(&p).map_err(io_err)?;
    let mut h = VolumeHasher::new(e.chunk_size);
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(io_err(err)),
        };
        h.update(&buf[..n]);
        progress.advance(n as u64);
    }
    let (d, size, chunks) = h.finish();
    Ok(VolumeCheck {
        name: e.name.clone(),
        path: Some(p.clone()),
        size,
        status: classify(e, size, &d, &chunks),
    })
}
