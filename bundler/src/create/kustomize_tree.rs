//! The kustomize tree a bundle ships: every regular file under the root,
//! in byte order, as one deterministic tar layer.
//!
//! Never follows a link, and refuses anything that is not a plain file.

use std::path::Path;

use super::CreateError;

/// Every regular file under the kustomize root, relative, sorted.
pub(super) fn kustomize_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, CreateError> {
    let err = |message: String| CreateError::Manifests {
        path: root.to_path_buf(),
        message,
    };
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| err(e.to_string()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_str()
            .ok_or_else(|| err(format!("{} is not UTF-8", entry.path().display())))?
            .to_string();
        if !entry.file_type().is_file() {
            return Err(err(format!(
                "{rel} is not a regular file; hint: kustomize trees must hold plain files only"
            )));
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| err(format!("{rel}: {e}")))?;
        files.push((rel, bytes));
    }
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(files)
}
