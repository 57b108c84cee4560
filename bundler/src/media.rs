//! `atp-bundler create --split-size SIZE --compress zstd|none`: the media
//! flags, parsed into [`MediaOptions`]. The step that uses them is
//! `create`'s own (`create/volumes.rs`).

use atp_bundle::media::volumes::{parse_split_size, SplitSizeError};
use atp_bundle::media::write::MediaOptions;
use atp_bundle::media::Compression;

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
