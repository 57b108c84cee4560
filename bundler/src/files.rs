//! Scan the `spec.files` entries: every regular file under each source, with
//! its `/`-separated relative path, size and sha256, in byte-wise path order.
//!
//! Never follows a symlink (a link in a model folder is refused, naming it),
//! and never reads a file whole into memory: hashing streams.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use atp_bundle::assemble::{FileInput, FileSetInput};
use atp_bundle::digest::Hasher;
use atp_bundle::Digest;

use crate::spec::FileSpec;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file set {set:?}: cannot read {path}: {source}")]
    Io {
        set: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file set {set:?}: {path} is a {what}; only regular files and folders are carried\nhint: replace it with the file it points to, or remove it")]
    NotRegular {
        set: String,
        path: PathBuf,
        what: &'static str,
    },
    #[error("file set {set:?}: {path} is not valid UTF-8; bundle paths must be")]
    BadName { set: String, path: PathBuf },
    #[error("file set {set:?}: {path} holds no files, so the bundle would carry none\nhint: check the folder (is the volume with the files mounted there?), or remove the set from spec.files")]
    Empty { set: String, path: PathBuf },
}

/// The scanned sets, plus where each file digest can be read from.
#[derive(Debug)]
pub struct ScannedFiles {
    pub sets: Vec<FileSetInput>,
    pub paths: HashMap<Digest, PathBuf>,
}

/// Scan every file set.
pub fn scan(specs: &[FileSpec]) -> Result<ScannedFiles, FilesError> {
    let mut out = ScannedFiles {
        sets: Vec::new(),
        paths: HashMap::new(),
    };
    for spec in specs {
        let mut files = Vec::new();
        let io = |path: &Path, source| FilesError::Io {
            set: spec.name.clone(),
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::symlink_metadata(&spec.source).map_err(|e| io(&spec.source, e))?;
        let list: Vec<(String, PathBuf)> = if meta.is_file() {
            let name = spec
                .source
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| FilesError::BadName {
                    set: spec.name.clone(),
                    path: spec.source.clone(),
                })?;
            vec![(name.to_string(), spec.source.clone())]
        } else if meta.is_dir() {
            let list = walk(spec)?;
            if list.is_empty() {
                return Err(FilesError::Empty {
                    set: spec.name.clone(),
                    path: spec.source.clone(),
                });
            }
            list
        } else {
            return Err(not_regular(spec, &spec.source, &meta));
        };
        for (rel, path) in list {
            let (digest, size) = hash_file(&path).map_err(|e| io(&path, e))?;
            out.paths.entry(digest.clone()).or_insert(path);
            files.push(FileInput {
                path: rel,
                digest,
                size,
            });
        }
        out.sets.push(FileSetInput {
            name: spec.name.clone(),
            files,
        });
    }
    Ok(out)
}

fn walk(spec: &FileSpec) -> Result<Vec<(String, PathBuf)>, FilesError> {
    let mut list = Vec::new();
    for entry in walkdir::WalkDir::new(&spec.source)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| FilesError::Io {
            set: spec.name.clone(),
            path: e.path().map(Path::to_path_buf).unwrap_or_default(),
            source: e.into(),
        })?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| FilesError::Io {
                    set: spec.name.clone(),
                    path: entry.path().to_path_buf(),
                    source: e,
                })?;
            return Err(not_regular(spec, entry.path(), &meta));
        }
        let rel = entry
            .path()
            .strip_prefix(&spec.source)
            .expect("walkdir stays under its root");
        let rel = rel
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| FilesError::BadName {
                set: spec.name.clone(),
                path: entry.path().to_path_buf(),
            })?
            .join("/");
        list.push((rel, entry.path().to_path_buf()));
    }
    list.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(list)
}

fn not_regular(spec: &FileSpec, path: &Path, meta: &std::fs::Metadata) -> FilesError {
    let ft = meta.file_type();
    FilesError::NotRegular {
        set: spec.name.clone(),
        path: path.to_path_buf(),
        what: if ft.is_symlink() {
            "symbolic link"
        } else {
            "special file"
        },
    }
}

/// Stream a file through sha256.
pub fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_folders_in_byte_order_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("models");
        std::fs::create_dir_all(m.join("b/deep")).unwrap();
        std::fs::write(m.join("b/deep/w.bin"), b"weights").unwrap();
        std::fs::write(m.join("B.txt"), b"upper").unwrap();
        std::fs::write(m.join("a.json"), b"{}").unwrap();
        let spec = FileSpec {
            name: "models".into(),
            source: m.clone(),
        };
        let s = scan(std::slice::from_ref(&spec)).unwrap();
        let paths: Vec<&str> = s.sets[0].files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["B.txt", "a.json", "b/deep/w.bin"]);
        assert_eq!(s.sets[0].files[2].digest, Digest::of(b"weights"));
        assert_eq!(s.sets[0].files[2].size, 7);

        std::os::unix::fs::symlink("/etc/passwd", m.join("evil")).unwrap();
        let err = scan(&[spec]).unwrap_err().to_string();
        assert!(
            err.contains("evil") && err.contains("symbolic link"),
            "{err}"
        );
    }

    /// Issue 24: an empty folder made a bundle with 0 files without a word.
    #[test]
    fn an_empty_folder_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("models");
        std::fs::create_dir_all(m.join("only/folders")).unwrap();
        let err = scan(&[FileSpec {
            name: "models".into(),
            source: m,
        }])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"models\"") && err.contains("holds no files"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }
}
