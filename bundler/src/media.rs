//! `atp-bundler create --split-size SIZE --compress zstd|none`: build the
//! normal bundle in a temp folder beside the output (the regular writer,
//! verified on commit), then cut and compress it into the final volumes with
//! a signed `volumes.json` ([`atp_bundle::media::write`]).
//!
//! Nothing appears under a final name until every volume is written and
//! read back; the temp folder is removed whatever happens.

use std::path::PathBuf;
use std::sync::Arc;

use atp_bundle::media::volumes::{parse_split_size, SplitSizeError};
use atp_bundle::media::write::{write_media, MediaOptions, MediaOutput, MediaWriteError};
use atp_bundle::media::Compression;
use atp_bundle::progress::Progress;

use crate::create::{CreateError, CreateOptions, CreateSummary};

#[derive(Debug, thiserror::Error)]
pub enum MediaCreateError {
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Write(#[from] MediaWriteError),
    #[error(transparent)]
    SplitSize(#[from] SplitSizeError),
    #[error("--compress {0:?}: expected zstd or none")]
    Compress(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: atp_bundle::keys::KeyError,
    },
}

/// Parse `--split-size` and `--compress` into media options.
pub fn options(
    split_size: Option<&str>,
    compress: Option<&str>,
) -> Result<MediaOptions, MediaCreateError> {
    let compression = match compress {
        None | Some("none") => Compression::None,
        Some("zstd") => Compression::ZstdSeekable,
        Some(other) => return Err(MediaCreateError::Compress(other.to_string())),
    };
    Ok(MediaOptions {
        split_size: split_size.map(parse_split_size).transpose()?,
        compression,
    })
}

/// Run `create`, then turn its output into media when `media` asks for it.
/// The summary's `output` is then the `volumes.json`, which every command
/// that takes a bundle accepts.
pub async fn create(
    opts: &CreateOptions,
    media: MediaOptions,
    progress: Arc<dyn Progress>,
) -> Result<(CreateSummary, Option<MediaOutput>), MediaCreateError> {
    if media.is_plain() {
        return Ok((crate::create::create(opts, progress).await?, None));
    }
    let dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = opts
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar".into());
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.media-"))
        .tempdir_in(&dir)
        .map_err(|source| MediaCreateError::Io {
            path: dir.clone(),
            source,
        })?;
    let mut inner = opts.clone();
    inner.output = temp.path().join(&name);
    let mut summary = crate::create::create(&inner, progress.clone()).await?;
    let signing =
        atp_bundle::keys::load_private_file(&opts.key, &opts.password).map_err(|source| {
            MediaCreateError::Key {
                path: opts.key.clone(),
                source,
            }
        })?;
    let (tar, output, digest) = (
        inner.output.clone(),
        opts.output.clone(),
        summary.index_digest.clone(),
    );
    let written = tokio::task::spawn_blocking(move || {
        write_media(&tar, &output, media, &digest, &signing, progress.as_ref())
    })
    .await
    .expect("media task panicked")?;
    drop(temp);
    summary.output = written.volumes_json.clone();
    Ok((summary, Some(written)))
}
