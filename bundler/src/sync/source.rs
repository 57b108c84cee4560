//! Where `sync` reads each blob: a source registry (each attempt opens a
//! fresh, digest-verifying stream) or an OCI layout on disk. Read only.

use std::collections::HashMap;
use std::io;

use atp_bundle::Digest;
use atp_registry::copy::BlobSources;
use atp_registry::{BlobSource, Client, FileSource, Repository};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::resolve::Origin;

/// A source registry blob as an upload body: each attempt opens a fresh,
/// digest-verifying stream. Resuming at an offset re-reads and drops the
/// bytes before it (the digest is still checked over the whole blob).
struct RegistryBlob {
    client: Client,
    repo: Repository,
    digest: Digest,
    size: u64,
}

impl BlobSource for RegistryBlob {
    fn open(&self, offset: u64) -> BoxFuture<'_, io::Result<Box<dyn AsyncRead + Send + Unpin>>> {
        Box::pin(async move {
            let stream = self
                .client
                .blob_reader(&self.repo, &self.digest, self.size)
                .await
                .map_err(io::Error::other)?;
            let mut r = stream.into_async_read();
            if offset > 0 {
                let dropped =
                    tokio::io::copy(&mut (&mut r).take(offset), &mut tokio::io::sink()).await?;
                if dropped != offset {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: blob {} ended before byte {offset}",
                            self.repo, self.digest
                        ),
                    ));
                }
            }
            Ok(Box::new(r) as Box<_>)
        })
    }
}

/// Every blob of the images to sync, by digest, with the origin of the
/// first image that has it.
pub struct SyncSources {
    pub origins: HashMap<Digest, Origin>,
}

impl BlobSources for SyncSources {
    fn blob_source(&self, digest: &Digest, size: u64) -> Option<Box<dyn BlobSource>> {
        match self.origins.get(digest)? {
            Origin::Registry(client, repo) => Some(Box::new(RegistryBlob {
                client: client.clone(),
                repo: repo.clone(),
                digest: digest.clone(),
                size,
            })),
            Origin::Layout(l) => Some(Box::new(FileSource::new(l.blob_path(digest)))),
            // Refused while planning.
            Origin::Archive(_) => None,
        }
    }
}
