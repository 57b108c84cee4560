//! The `create` side of removable media: turn a finished, verified bundle
//! tar into volumes of at most `split_size` bytes, optionally as seekable
//! zstd, plus the signed `volumes.json`.
//!
//! One pass reads the tar, hashes it, compresses it and cuts it into temp
//! files `.NAME.partial-*` beside the output. The temp volumes are then read
//! back through the same reader the installer uses and must reproduce the
//! tar's sha256. Only then are they renamed to their final names, the
//! signature and `volumes.json` last, so nothing sits under a final name
//! until everything is complete. Never modifies the input tar.
//!
//! `create --with-installer`: the installer binary is copied beside the
//! volumes the same way (a temp file, hashed while written, renamed before
//! `volumes.json`) and listed in it (format /2). Never modifies the source
//! binary.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use p256::ecdsa::SigningKey;
use tempfile::NamedTempFile;

use crate::digest::Hasher;
use crate::progress::Progress;
use crate::Digest;

use super::multi::{MultiVolume, VolumeHasher};
use super::seekable::{SeekableReader, SeekableWriter, FRAME_SIZE, LEVEL};
use super::volumes::{
    chunk_size_for, volume_name, Compression, VolumeEntry, VolumesFile, SIG_SUFFIX, VOLUMES_FORMAT,
    VOLUMES_FORMAT_V2, VOLUMES_SUFFIX,
};
use super::{Cursor, ReadAt};

/// What to make of the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOptions {
    /// Largest volume, in bytes; `None`: one file.
    pub split_size: Option<u64>,
    pub compression: Compression,
}

impl MediaOptions {
    /// Whether these options change anything (a plain, unsplit tar does not).
    pub fn is_plain(&self) -> bool {
        self.split_size.is_none() && self.compression == Compression::None
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MediaOutput {
    pub volumes_json: PathBuf,
    pub signature: PathBuf,
    pub volumes: Vec<PathBuf>,
    /// The carried installer, when `--with-installer` asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installer: Option<PathBuf>,
    #[serde(skip)]
    pub file: VolumesFile,
    pub stream_size: u64,
    pub tar_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaWriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--split-size {split_size} would make {count} volumes; at most 999 are allowed\nhint: use a larger --split-size")]
    TooManyVolumes { split_size: u64, count: u64 },
    #[error("installer {path}: not a regular file\nhint: pass the atp-installer binary (dist/atp-installer from `make release`)")]
    InstallerNotAFile { path: PathBuf },
    #[error("re-reading the written volumes gave sha256 {found}, the bundle is {expected}; nothing was renamed into place\nhint: check the output disk")]
    ReadBack { expected: Digest, found: Digest },
}

/// The name the compressed stream gets: `.zst` appended unless present.
pub fn stream_path(output: &Path, compression: Compression) -> PathBuf {
    let name = output.to_string_lossy();
    match compression {
        Compression::ZstdSeekable if !name.ends_with(".zst") => {
            PathBuf::from(format!("{name}.zst"))
        }
        _ => output.to_path_buf(),
    }
}

/// Cuts a byte stream into temp volume files, hashing each.
struct Splitter {
    dir: PathBuf,
    stream: String,
    split: Option<u64>,
    chunk_size: u64,
    done: Vec<(VolumeEntry, NamedTempFile)>,
    current: Option<(NamedTempFile, io::BufWriter<File>, VolumeHasher)>,
}

impl Splitter {
    fn name(&self, i: usize) -> String {
        match self.split {
            Some(_) => volume_name(&self.stream, i),
            None => self.stream.clone(),
        }
    }

    fn open_next(&mut self) -> io::Result<()> {
        let name = self.name(self.done.len());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempfile_in(&self.dir)?;
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        let w = io::BufWriter::with_capacity(1 << 20, temp.reopen()?);
        self.current = Some((temp, w, VolumeHasher::new(self.chunk_size)));
        Ok(())
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((temp, w, h)) = self.current.take() {
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            let (sha256, size, chunks) = h.finish();
            let name = self.name(self.done.len());
            self.done.push((
                VolumeEntry {
                    name,
                    size,
                    sha256,
                    chunk_size: self.chunk_size,
                    chunks,
                },
                temp,
            ));
        }
        Ok(())
    }
}

impl Write for Splitter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let (_, w, h) = self.current.as_mut().expect("a volume is open");
        let room = self.split.map_or(u64::MAX, |s| s - h.len());
        let take = (data.len() as u64).min(room) as usize;
        w.write_all(&data[..take])?;
        h.update(&data[..take]);
        if Some(h.len()) == self.split {
            self.close_current()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copy the installer binary `src` into a temp file in `dir` (mode 0755),
/// hashed as it is written; the entry names it by `src`'s file name.
/// Nothing is under the final name until the caller persists the temp file.
pub fn stage_installer(
    src: &Path,
    dir: &Path,
) -> Result<(VolumeEntry, NamedTempFile), MediaWriteError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| MediaWriteError::Io { path: p, source }
    };
    let mut input = File::open(src).map_err(io_err(src))?;
    let meta = input.metadata().map_err(io_err(src))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|_| meta.is_file())
        .ok_or_else(|| MediaWriteError::InstallerNotAFile {
            path: src.to_path_buf(),
        })?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(temp.path()))?;
    let chunk_size = chunk_size_for(meta.len().max(1));
    let mut h = VolumeHasher::new(chunk_size);
    let mut w = io::BufWriter::with_capacity(1 << 20, temp.reopen().map_err(io_err(dir))?);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(src)(e)),
        };
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(io_err(temp.path()))?;
    }
    let f = w
        .into_inner()
        .map_err(|e| io_err(temp.path())(e.into_error()))?;
    f.sync_all().map_err(io_err(temp.path()))?;
    let (sha256, size, chunks) = h.finish();
    let entry = VolumeEntry {
        name,
        size,
        sha256,
        chunk_size,
        chunks,
    };
    Ok((entry, temp))
}

/// Turn the bundle tar at `tar` into media for `output` (the name asked for,
/// e.g. `demo.tar`), signing `volumes.json` with `key`.
pub fn write_media(
    tar: &Path,
    output: &Path,
    opts: MediaOptions,
    index_digest: &Digest,
    installer: Option<&Path>,
    key: &SigningKey,
    progress: &dyn Progress,
) -> Result<MediaOutput, MediaWriteError> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| MediaWriteError::Io { path: p, source }
    };
    let stream_path = stream_path(output, opts.compression);
    let dir = match stream_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stream = stream_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar".into());
    let mut input = File::open(tar).map_err(io_err(tar))?;
    let tar_size = input.metadata().map_err(io_err(tar))?.len();
    if let Some(s) = opts.split_size {
        // Compression only shrinks the stream in practice; the real count is
        // checked again below.
        let count = tar_size.div_ceil(s);
        if opts.compression == Compression::None && count > 999 {
            return Err(MediaWriteError::TooManyVolumes {
                split_size: s,
                count,
            });
        }
    }
    let chunk_size = chunk_size_for(opts.split_size.unwrap_or(tar_size).min(tar_size.max(1)));
    let mut splitter = Splitter {
        dir: dir.clone(),
        stream: stream.clone(),
        split: opts.split_size,
        chunk_size,
        done: Vec::new(),
        current: None,
    };
    progress.phase("split", tar_size, 0);
    let mut tar_hash = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let out_err = io_err(&dir);
    let mut pump = |sink: &mut dyn Write| -> Result<(), MediaWriteError> {
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(tar)(e)),
            };
            tar_hash.update(&buf[..n]);
            sink.write_all(&buf[..n]).map_err(io_err(&dir))?;
            progress.advance(n as u64);
        }
    };
    match opts.compression {
        Compression::None => pump(&mut splitter)?,
        Compression::ZstdSeekable => {
            let mut w =
                SeekableWriter::new(&mut splitter, LEVEL, FRAME_SIZE).map_err(io_err(&dir))?;
            pump(&mut w)?;
            w.finish().map_err(io_err(&dir))?;
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    splitter.close_current().map_err(out_err)?;
    progress.finish_phase();
    let (tar_sha256, _) = tar_hash.finish();
    if let Some(s) = opts.split_size {
        if splitter.done.len() > 999 {
            return Err(MediaWriteError::TooManyVolumes {
                split_size: s,
                count: splitter.done.len() as u64,
            });
        }
    }
    let entries: Vec<VolumeEntry> = splitter.done.iter().map(|(e, _)| e.clone()).collect();
    let carried = installer.map(|p| stage_installer(p, &dir)).transpose()?;
    let file = VolumesFile {
        format: match carried {
            Some(_) => VOLUMES_FORMAT_V2.into(),
            None => VOLUMES_FORMAT.into(),
        },
        stream: stream.clone(),
        compression: opts.compression,
        stream_size: entries.iter().map(|e| e.size).sum(),
        tar_size,
        tar_sha256: tar_sha256.clone(),
        index_digest: index_digest.clone(),
        split_size: opts.split_size,
        volumes: entries,
        installer: carried.as_ref().map(|(e, _)| e.clone()),
    };

    // Read back through the installer's reader before anything is renamed.
    progress.phase("read back", tar_size, 0);
    let mut opened = Vec::new();
    for (e, temp) in &splitter.done {
        let f = File::open(temp.path()).map_err(io_err(temp.path()))?;
        opened.push((e.clone(), temp.path().to_path_buf(), f));
    }
    let multi: Arc<dyn ReadAt> = Arc::new(MultiVolume::new(opened));
    let tar_view: Arc<dyn ReadAt> = match opts.compression {
        Compression::None => multi,
        Compression::ZstdSeekable => Arc::new(
            SeekableReader::open(multi, Some(tar_size))
                .map_err(|e| io_err(&dir)(io::Error::new(io::ErrorKind::InvalidData, e)))?,
        ),
    };
    let mut back = Hasher::new();
    let mut cur = Cursor::new(tar_view, 0, tar_size);
    loop {
        let n = cur.read(&mut buf).map_err(io_err(&dir))?;
        if n == 0 {
            break;
        }
        back.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish_phase();
    let (found, _) = back.finish();
    if found != tar_sha256 {
        return Err(MediaWriteError::ReadBack {
            expected: tar_sha256,
            found,
        });
    }

    // Signature and volumes.json as temp files too.
    let bytes = file.to_bytes();
    let sig = VolumesFile::sign(&bytes, key);
    let vj_path = dir.join(format!("{stream}{VOLUMES_SUFFIX}"));
    let sig_path = dir.join(format!("{stream}{VOLUMES_SUFFIX}{SIG_SUFFIX}"));
    let small = |name: &str, content: &[u8]| -> Result<NamedTempFile, MediaWriteError> {
        let mut t = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        t.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(t.path()))?;
        t.write_all(content).map_err(io_err(t.path()))?;
        t.as_file().sync_all().map_err(io_err(t.path()))?;
        Ok(t)
    };
    let sig_temp = small(
        &format!("{stream}{VOLUMES_SUFFIX}{SIG_SUFFIX}"),
        sig.as_bytes(),
    )?;
    let vj_temp = small(&format!("{stream}{VOLUMES_SUFFIX}"), &bytes)?;

    // Everything is complete: rename into place, volumes.json last.
    let mut volumes = Vec::new();
    for (e, temp) in splitter.done {
        let dest = dir.join(&e.name);
        temp.persist(&dest)
            .map_err(|err| io_err(&dest)(err.error))?;
        volumes.push(dest);
    }
    let installer = match carried {
        Some((e, temp)) => {
            let dest = dir.join(&e.name);
            temp.persist(&dest)
                .map_err(|err| io_err(&dest)(err.error))?;
            Some(dest)
        }
        None => None,
    };
    sig_temp
        .persist(&sig_path)
        .map_err(|err| io_err(&sig_path)(err.error))?;
    vj_temp
        .persist(&vj_path)
        .map_err(|err| io_err(&vj_path)(err.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    Ok(MediaOutput {
        volumes_json: vj_path,
        signature: sig_path,
        volumes,
        installer,
        stream_size: file.stream_size,
        tar_size,
        file,
    })
}

#[cfg(test)]
mod tests;
