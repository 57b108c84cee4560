//! `create`'s media step, after the normal bundle (the regular writer,
//! verified on commit) is written into a staging folder beside the output:
//! cut and compress it into the final volumes with a signed `volumes.json`
//! ([`atp_bundle::media::write`]). `--with-installer` alone takes this step
//! too (one volume, the tar itself), so the installer is listed and signed.
//!
//! Nothing appears under a final name until every volume is written and
//! read back; the staging folder is removed whatever happens. Never reads
//! the signing key: `create` hands it the key it decrypted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::media::write::{write_media, MediaOptions, MediaOutput};
use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use p256::ecdsa::SigningKey;

use super::CreateError;

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

/// Cut the plain bundle `tar` into the volumes of `output`, the installer
/// binary `installer` (if any) beside them and listed.
pub(crate) async fn write(
    tar: &Path,
    output: &Path,
    media: MediaOptions,
    index_digest: &Digest,
    installer: Option<&Path>,
    signing: SigningKey,
    progress: Arc<dyn Progress>,
) -> Result<MediaOutput, CreateError> {
    let (tar, output, digest, installer) = (
        tar.to_path_buf(),
        output.to_path_buf(),
        index_digest.clone(),
        installer.map(Path::to_path_buf),
    );
    let written = tokio::task::spawn_blocking(move || {
        write_media(
            &tar,
            &output,
            media,
            &digest,
            installer.as_deref(),
            &signing,
            progress.as_ref(),
        )
    })
    .await
    .expect("media task panicked")?;
    Ok(written)
}
