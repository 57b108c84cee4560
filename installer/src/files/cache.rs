//! The model cache writer: every file of every set to
//! `DIR/<set>/<relative path>`, streamed from the bundle into a temp name in
//! its destination folder, checked (size and sha256), fsynced and only then
//! renamed over the previous version. Never writes outside DIR, never
//! follows a link out of it, never writes through a link; prune removes
//! only regular files under the folders of the bundle's own sets.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::digest::{BlobMismatch, Hasher, VerifyingReader};
use atp_bundle::progress::Progress;
use atp_bundle::verify::BlobLocation;
use atp_bundle::Digest;

use super::{io_err, CacheSummary, CachedFile, FileSet, FilesError, SetFile, BUFFER};

/// Everything the model-cache writer needs, owned (it runs on a blocking
/// thread).
#[derive(Debug, Clone)]
pub struct CacheRequest {
    pub dir: PathBuf,
    pub prune: bool,
    pub sets: Vec<FileSet>,
    pub locations: HashMap<Digest, BlobLocation>,
    pub omitted: HashSet<Digest>,
}

/// What sits at a destination today.
enum Existing {
    Missing,
    File { size: u64 },
}

struct Planned<'a> {
    set: &'a str,
    file: &'a SetFile,
    dest: PathBuf,
    write: bool,
}

/// A blob's payload, read from the bundle at its verified location.
pub type OpenPayload<'r> = dyn Fn(&BlobLocation) -> io::Result<Box<dyn Read + 'r>> + 'r;

/// Write every file of every set into the model cache, reading payloads
/// through `open`. All checks (paths, links, present digests, delta
/// coverage) run before the first write.
pub fn write_cache<'r>(
    req: &CacheRequest,
    open: &OpenPayload<'r>,
    progress: Arc<dyn Progress>,
) -> Result<CacheSummary, FilesError> {
    fs::create_dir_all(&req.dir).map_err(io_err(&req.dir))?;
    let root = fs::canonicalize(&req.dir).map_err(io_err(&req.dir))?;

    // 1. Plan: where each file goes and whether it must be written.
    let total: u64 = req.sets.iter().flat_map(|s| &s.files).map(|f| f.size).sum();
    let count = req.sets.iter().map(|s| s.files.len() as u64).sum();
    progress.phase("model files: check", total, count);
    let mut plan = Vec::new();
    for set in &req.sets {
        for file in &set.files {
            let (dest, existing) = check_destination(&root, &set.name, &file.path)?;
            let present = match existing {
                Existing::File { size } if size == file.size => {
                    let (d, n) = hash_file(&dest, &*progress)?;
                    d == file.digest && n == file.size
                }
                _ => false,
            };
            if !present && !req.locations.contains_key(&file.digest) {
                if req.omitted.contains(&file.digest) {
                    return Err(FilesError::NotCarried {
                        set: set.name.clone(),
                        path: file.path.clone(),
                        digest: file.digest.clone(),
                    });
                }
                return Err(FilesError::BadSet {
                    reference: set.reference.clone(),
                    reason: format!("{} ({}) is not in the bundle", file.path, file.digest),
                });
            }
            progress.item_done(&format!("{}/{}", set.name, file.path));
            plan.push(Planned {
                set: &set.name,
                file,
                dest,
                write: !present,
            });
        }
    }
    progress.finish_phase();

    // 2. Write what is missing or different.
    let to_write: Vec<&Planned> = plan.iter().filter(|p| p.write).collect();
    progress.phase(
        "model files: write",
        to_write.iter().map(|p| p.file.size).sum(),
        to_write.len() as u64,
    );
    let mut summary = CacheSummary {
        dir: req.dir.clone(),
        ..Default::default()
    };
    for p in &to_write {
        let loc = &req.locations[&p.file.digest];
        ensure_parent(&root, p.set, &p.file.path)?;
        let payload = open(loc).map_err(io_err(&p.dest))?;
        write_one(payload, p.file, &p.dest, &*progress)?;
        progress.item_done(&format!("{}/{}", p.set, p.file.path));
        summary.written += 1;
        summary.bytes_written += p.file.size;
    }
    progress.finish_phase();
    summary.unchanged = (plan.len() - to_write.len()) as u64;
    summary.files = plan
        .iter()
        .map(|p| CachedFile {
            set: p.set.to_string(),
            path: p.file.path.clone(),
            digest: p.file.digest.clone(),
            size: p.file.size,
            written: p.write,
        })
        .collect();

    // 3. Prune files the bundle no longer lists, in its own sets only.
    if req.prune {
        for set in &req.sets {
            let keep: HashSet<&str> = set.files.iter().map(|f| f.path.as_str()).collect();
            summary.pruned.extend(prune_set(&root, &set.name, &keep)?);
        }
    }
    Ok(summary)
}

fn unsafe_path(path: PathBuf, reason: String) -> FilesError {
    FilesError::Unsafe {
        path,
        reason,
        hint: "model files are written only to regular files in real folders under --model-cache-dir; remove the link or the object in the way",
    }
}

/// Check the way from `root` to `root/<set>/<rel>`: every existing folder on
/// it is a folder (or a link that resolves inside `root`), and the
/// destination is absent or a regular file (never a link).
fn check_destination(root: &Path, set: &str, rel: &str) -> Result<(PathBuf, Existing), FilesError> {
    let components: Vec<&str> = std::iter::once(set).chain(rel.split('/')).collect();
    let mut path = root.to_path_buf();
    for (i, c) in components.iter().enumerate() {
        if c.is_empty() || *c == "." || *c == ".." || c.contains(['/', '\\', '\0']) {
            return Err(unsafe_path(
                root.join(set).join(rel),
                format!("component {c:?} would escape the model cache"),
            ));
        }
        path.push(c);
        let last = i + 1 == components.len();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let full = components[i + 1..].iter().fold(path, |p, c| p.join(c));
                return Ok((full, Existing::Missing));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let ft = meta.file_type();
        if last {
            if ft.is_file() {
                return Ok((path, Existing::File { size: meta.len() }));
            }
            let what = if ft.is_symlink() {
                "it is a symbolic link"
            } else if ft.is_dir() {
                "it is a folder"
            } else {
                "it is a special file"
            };
            return Err(unsafe_path(path, what.to_string()));
        }
        check_folder(root, &path, &meta)?;
    }
    unreachable!("a file path has at least one component")
}

/// An existing path on the way to a file must be a folder, or a link that
/// resolves to a folder inside `root`.
fn check_folder(root: &Path, path: &Path, meta: &fs::Metadata) -> Result<(), FilesError> {
    if meta.is_dir() {
        return Ok(());
    }
    if meta.file_type().is_symlink() {
        let target = fs::canonicalize(path).map_err(io_err(path))?;
        if !target.starts_with(root) {
            return Err(unsafe_path(
                path.to_path_buf(),
                format!(
                    "it is a symbolic link to {}, outside {}",
                    target.display(),
                    root.display()
                ),
            ));
        }
        if target.is_dir() {
            return Ok(());
        }
    }
    Err(unsafe_path(
        path.to_path_buf(),
        "it is in the way of a folder".into(),
    ))
}

/// Create the missing folders of `root/<set>/<rel>`, re-checking each one
/// that exists (the cache may have changed since the plan).
fn ensure_parent(root: &Path, set: &str, rel: &str) -> Result<(), FilesError> {
    let mut path = root.join(set);
    let mut dirs: Vec<&str> = rel.split('/').collect();
    dirs.pop();
    for d in std::iter::once(None).chain(dirs.into_iter().map(Some)) {
        if let Some(d) = d {
            path.push(d);
        }
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(io_err(&path))?;
            }
            Err(e) => return Err(io_err(&path)(e)),
            Ok(m) => check_folder(root, &path, &m)?,
        }
    }
    Ok(())
}

/// Stream one blob from the bundle into a temp file next to `dest`, check
/// it as it is read and again as it lies on disk, fsync, then rename.
fn write_one(
    payload: Box<dyn Read + '_>,
    file: &SetFile,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<(), FilesError> {
    let parent = dest.parent().expect("a destination has a folder");
    let name = dest
        .file_name()
        .expect("a destination has a name")
        .to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".atp-partial")
        .tempfile_in(parent)
        .map_err(io_err(parent))?;
    let tmp_path = tmp.path().to_path_buf();
    let mut src = VerifyingReader::new(payload, file.digest.clone(), file.size);
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match src.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                return Err(match e.into_inner().map(|i| i.downcast::<BlobMismatch>()) {
                    Some(Ok(m)) => payload_mismatch(dest, *m),
                    Some(Err(other)) => io_err(dest)(io::Error::other(other)),
                    None => io_err(dest)(io::Error::other("reading the bundle")),
                })
            }
        };
        if n == 0 {
            break;
        }
        tmp.write_all(&buf[..n]).map_err(io_err(&tmp_path))?;
        progress.advance(n as u64);
    }
    src.finish().map_err(|m| payload_mismatch(dest, m))?;
    tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;

    // At the destination: what the file system holds is what we meant.
    let mut h = Hasher::new();
    let mut f = File::open(&tmp_path).map_err(io_err(&tmp_path))?;
    loop {
        let n = f.read(&mut buf).map_err(io_err(&tmp_path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.check(&file.digest, file.size)
        .map_err(|source| FilesError::Mismatch {
            path: dest.to_path_buf(),
            stage: "copy written to the model cache",
            source,
            hint:
                "check the disk behind --model-cache-dir (dmesg, fsck), then run the install again",
        })?;
    fs::set_permissions(&tmp_path, fs::Permissions::from_mode(0o644)).map_err(io_err(&tmp_path))?;
    tmp.persist(dest).map_err(|e| io_err(dest)(e.error))?;
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(parent))?;
    Ok(())
}

fn payload_mismatch(dest: &Path, source: BlobMismatch) -> FilesError {
    FilesError::Mismatch {
        path: dest.to_path_buf(),
        stage: "payload read from the bundle",
        source,
        hint: "the bundle changed after it was verified; check the media and run `atp-installer verify`",
    }
}

fn hash_file(path: &Path, progress: &dyn Progress) -> Result<(Digest, u64), FilesError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(h.finish())
}

/// Remove the regular files under `root/<set>` that `keep` does not list.
/// Links are never followed nor removed; folders are left in place.
fn prune_set(root: &Path, set: &str, keep: &HashSet<&str>) -> Result<Vec<String>, FilesError> {
    let dir = root.join(set);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir)(e)),
    }
    let mut pruned = Vec::new();
    let walk = walkdir::WalkDir::new(&dir)
        .follow_links(false)
        .follow_root_links(false)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| FilesError::Io {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.clone()),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(rel) = entry
            .path()
            .strip_prefix(&dir)
            .ok()
            .and_then(|r| r.to_str())
        else {
            continue;
        };
        if keep.contains(rel) {
            continue;
        }
        fs::remove_file(entry.path()).map_err(io_err(entry.path()))?;
        pruned.push(format!("{set}/{rel}"));
    }
    if !pruned.is_empty() {
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
    }
    Ok(pruned)
}
