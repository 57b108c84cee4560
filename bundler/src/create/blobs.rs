//! Stream one blob of a planned bundle into its slot in the output, from
//! wherever its bytes are: memory (manifests, generated documents), a file
//! of a file set, an OCI layout, a docker archive or a source registry.
//!
//! Every byte goes through the slot, which checks size and digest; a failed
//! write into the output is reported as the output's error, never the
//! source's.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use atp_bundle::progress::Progress;
use atp_bundle::{BlobSlot, Digest};

use super::CreateError;
use crate::resolve::Origin;

/// Where one blob's bytes come from.
#[derive(Clone)]
pub(super) enum BlobFrom {
    Memory(Arc<Vec<u8>>),
    File(PathBuf),
    Origin(Origin),
}

/// Stream one blob into its slot.
pub(super) async fn fill(
    slot: BlobSlot,
    digest: &Digest,
    size: u64,
    source: BlobFrom,
    progress: Arc<dyn Progress>,
) -> Result<(), CreateError> {
    let mut sink = Counting {
        slot,
        progress: progress.clone(),
    };
    let blocking =
        |open: Box<dyn FnOnce() -> std::io::Result<Box<dyn std::io::Read + Send>> + Send>,
         mut sink: Counting| {
            tokio::task::spawn_blocking(move || -> std::io::Result<Counting> {
                let mut r = open()?;
                std::io::copy(&mut r, &mut sink)?;
                Ok(sink)
            })
        };
    let blob_err = |from: &str, e: std::io::Error| {
        // A failed write into the bundle file (a full disk) is the output's
        // error, not the source's: report it with the output's path.
        let output = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<atp_bundle::WriteError>());
        if matches!(output, Some(atp_bundle::WriteError::Io { .. })) {
            let w = e
                .into_inner()
                .expect("checked")
                .downcast::<atp_bundle::WriteError>();
            return CreateError::Write(*w.expect("checked"));
        }
        CreateError::Blob {
            digest: digest.clone(),
            from: from.to_string(),
            message: e.to_string(),
        }
    };
    let sink = match source {
        BlobFrom::Memory(bytes) => {
            sink.write_all(&bytes).map_err(|e| blob_err("memory", e))?;
            sink
        }
        BlobFrom::File(path) => {
            let p = path.clone();
            blocking(
                Box::new(move || Ok(Box::new(std::fs::File::open(&p)?) as Box<_>)),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err(&path.display().to_string(), e))?
        }
        BlobFrom::Origin(Origin::Layout(layout)) => {
            let d = digest.clone();
            let dir = layout.dir().display().to_string();
            blocking(
                Box::new(move || {
                    layout
                        .open_blob(&d)
                        .map(|f| Box::new(f) as Box<_>)
                        .map_err(std::io::Error::other)
                }),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err(&dir, e))?
        }
        BlobFrom::Origin(Origin::Archive(archive)) => {
            let d = digest.clone();
            blocking(
                Box::new(move || {
                    archive
                        .open_blob(&d)
                        .map(|r| Box::new(r) as Box<_>)
                        .map_err(std::io::Error::other)
                }),
                sink,
            )
            .await
            .expect("copy task panicked")
            .map_err(|e| blob_err("docker archive", e))?
        }
        BlobFrom::Origin(Origin::Registry(client, repo)) => {
            // The slot hashes every byte and checks the digest in `finish`.
            client
                .fetch_blob_to_checking_sink(&repo, digest, size, &mut sink)
                .await?;
            sink
        }
    };
    sink.slot.finish()?;
    Ok(())
}

/// A slot writer that reports bytes to progress; usable sync and async.
struct Counting {
    slot: BlobSlot,
    progress: Arc<dyn Progress>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.slot.write(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for Counting {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
