//! Small inputs read whole (keys, `volumes.json`, its signature) with a size
//! limit, and what kind of file a path is before anything opens it.
//!
//! Never reads more than `limit + 1` bytes of anything, so `/dev/zero` or a
//! huge file given by mistake costs nothing. [`require_regular`] looks at
//! metadata only, so a FIFO nobody writes to is refused instead of waited on.

use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Largest key file read (a P-256 key in any accepted form is under 1 KiB).
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// Why a small input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SmallInputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: larger than the {limit}-byte limit for {what}; hint: check that this is the right file")]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        limit: u64,
    },
    #[error("{path} is a {kind}, not a regular file; hint: copy it to a file first")]
    NotRegular { path: PathBuf, kind: &'static str },
}

/// A file type in words: `regular file`, `FIFO`, `character device`, ...
pub fn kind_of(t: &FileType) -> &'static str {
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// The metadata of `path` (links followed) if it is a regular file; else
/// which kind of file it is. Opens nothing.
pub fn require_regular(path: &Path) -> Result<Metadata, SmallInputError> {
    let meta = std::fs::metadata(path).map_err(|source| SmallInputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(SmallInputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        })
    }
}

/// Read at most `limit` bytes from `reader`; more is [`SmallInputError::TooLarge`].
pub fn read_limited(
    reader: impl Read,
    limit: u64,
    path: &Path,
    what: &'static str,
) -> Result<Vec<u8>, SmallInputError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| SmallInputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(SmallInputError::TooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    Ok(out)
}

/// Read the file at `path` whole, refusing more than `limit` bytes. Pipes
/// and devices are read too (`--key <(...)`), within the same limit.
pub fn read_file(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, SmallInputError> {
    let file = File::open(path).map_err(|source| SmallInputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_limited(file, limit, path, what)
}

/// Like [`read_file`], for a path that must be a regular file: anything
/// else is refused before it is opened.
pub fn read_regular_file(
    path: &Path,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>, SmallInputError> {
    require_regular(path)?;
    read_file(path, limit, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_file(&p, 5, "tests").unwrap(), b"12345");
        let err = read_file(&p, 4, "tests").unwrap_err();
        assert!(matches!(err, SmallInputError::TooLarge { limit: 4, .. }));
        assert!(err.to_string().contains("4-byte limit for tests"), "{err}");
        let err = read_file(Path::new("/dev/zero"), 1000, "keys").unwrap_err();
        assert!(
            err.to_string().contains("1000-byte limit for keys"),
            "{err}"
        );
        let err = read_regular_file(Path::new("/dev/zero"), 1000, "keys").unwrap_err();
        assert!(
            err.to_string()
                .contains("/dev/zero is a character device, not a regular file"),
            "{err}"
        );
        let err = read_regular_file(dir.path(), 1000, "keys").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
