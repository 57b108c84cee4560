//! `atp-installer verify-media DIR --key PREFIX.pub`: check removable media
//! before the trip into the gap: the signature on `volumes.json`, then every
//! volume present (size and sha256), each named as good, missing, truncated,
//! foreign or corrupt; then the installer binary the set carries, if any.
//!
//! Reads only: never writes, renames or deletes anything on the media, and
//! never contacts a registry.

use std::path::{Path, PathBuf};

use atp_bundle::media::check::{self, MediaReport};
use atp_bundle::media::MediaError;
use atp_bundle::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum VerifyMediaError {
    #[error("public key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: atp_bundle::keys::KeyError,
    },
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// Check the media at `path` (a folder, a `volumes.json` or a volume).
pub fn verify_media(
    path: &Path,
    volumes_from: &[PathBuf],
    key: &Path,
    progress: &dyn Progress,
) -> Result<MediaReport, VerifyMediaError> {
    let key_path = key;
    let key = atp_bundle::keys::load_public_file(key).map_err(|source| VerifyMediaError::Key {
        path: key_path.to_path_buf(),
        source,
    })?;
    Ok(check::verify_media(path, volumes_from, &key, progress)?)
}

/// The report for people.
pub fn to_text(r: &MediaReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: signature good; {} volume(s) of {} ({} tar bytes, index {})",
        r.volumes_json.display(),
        r.volumes.len(),
        r.stream,
        r.tar_size,
        r.index_digest
    );
    for v in &r.volumes {
        let _ = writeln!(s, "  {}", v.status.describe(&v.name));
    }
    if let Some(i) = &r.installer {
        let _ = writeln!(s, "  {}", i.status.describe_as("installer", &i.name));
    }
    let bad = r.bad().count();
    let installer_bad = r.installer.as_ref().filter(|i| !i.status.is_good());
    if let Some(i) = installer_bad {
        let _ = writeln!(
            s,
            "FAILED: the installer {} is not the one the bundle was made with\nhint: do not run it; re-copy it from the original media (or the release, checked with SHA256SUMS and its signature), then run verify-media again",
            i.name
        );
    }
    if bad == 0 && installer_bad.is_none() {
        let _ = writeln!(
            s,
            "OK: every volume is present and intact{}",
            if r.installer.is_some() {
                ", and so is the installer"
            } else {
                ""
            }
        );
    } else if bad > 0 {
        let _ = writeln!(
            s,
            "FAILED: {bad} of {} volume(s) are not usable\nhint: re-copy those volumes from the original media (or pass --volumes-from DIR for volumes on another drive), then run verify-media again",
            r.volumes.len()
        );
    }
    s
}
