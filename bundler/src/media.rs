//! `atp-bundler create --split-size SIZE --compress zstd|none`: the media
//! options, and the step `create` takes after writing the normal bundle (the
//! regular writer, verified on commit) into a staging folder beside the
//! output: cut and compress it into the final volumes with a signed
//! `volumes.json` ([`atp_bundle::media::write`]).
//!
//! Nothing appears under a final name until every volume is written and
//! read back; the staging folder is removed whatever happens. This module
//! never reads the signing key: `create` hands it the key it decrypted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::media::volumes::{parse_split_size, SplitSizeError};
use atp_bundle::media::write::{write_media, MediaOptions, MediaOutput};
use atp_bundle::media::Compression;
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use p256::ecdsa::SigningKey;

use crate::create::CreateError;

/// Why `--split-size` or `--compress` was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaArgError {
    #[error(transparent)]
    SplitSize(#[from] SplitSizeError),
    #[error("--compress {0:?}: expected zstd or none")]
    Compress(String),
}

/// Parse `--split-size` and `--compress` into media options.
pub fn options(
    split_size: Option<&str>,
    compress: Option<&str>,
) -> Result<MediaOptions, MediaArgError> {
    let compression = match compress {
        None | Some("none") => Compression::None,
        Some("zstd") => Compression::ZstdSeekable,
        Some(other) => return Err(MediaArgError::Compress(other.to_string())),
    };
    Ok(MediaOptions {
        split_size: split_size.map(parse_split_size).transpose()?,
        compression,
    })
}

/// A staging folder beside `output`, and the path of the plain bundle
/// inside it. Removed when the folder is dropped.
pub(crate) fn staging(output: &Path) -> Result<(tempfile::TempDir, PathBuf), CreateError> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar".into());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.media-"))
        .tempdir_in(&dir)
        .map_err(|source| CreateError::Staging {
            path: dir.clone(),
            source,
        })?;
    let tar = temp.path().join(&name);
    Ok((temp, tar))
}

/// Cut the plain bundle `tar` into the volumes of `output`.
pub(crate) async fn write(
    tar: &Path,
    output: &Path,
    media: MediaOptions,
    index_digest: &Digest,
    signing: SigningKey,
    progress: Arc<dyn Progress>,
) -> Result<MediaOutput, CreateError> {
    let (tar, output, digest) = (
        tar.to_path_buf(),
        output.to_path_buf(),
        index_digest.clone(),
    );
    let written = tokio::task::spawn_blocking(move || {
        write_media(&tar, &output, media, &digest, &signing, progress.as_ref())
    })
    .await
    .expect("media task panicked")?;
    Ok(written)
}
