//! Install's delta pre-check (`docs/delta.md`): every blob a delta bundle
//! leaves out must already be in its target repository, or be mountable
//! there from another repository of the same registry that holds it (the
//! receipts' repositories, the base bundles' first).
//!
//! Decides by HEAD alone, and mounts (through the copy engine, with a
//! source that refuses to upload) only once every blob has a place, so a
//! failed check writes nothing.

use std::path::Path;
use std::sync::Arc;

use atp_bundle::progress::NoProgress;
use atp_bundle::Digest;
use atp_registry::copy::{self, BlobNeed, CopyError};
use atp_registry::{BlobSource, Client, Repository};
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};

use crate::error::InstallError;
use crate::prepare::Prepared;

/// HEAD requests in flight during the pre-check.
const HEADS_IN_FLIGHT: usize = 8;

/// Check (and with `mount`, once nothing is missing, mount) every blob the
/// delta relies on. Nothing to do for a full bundle.
pub async fn check(
    client: &Client,
    state_dir: &Path,
    prepared: &Prepared,
    mount: bool,
) -> Result<(), InstallError> {
    let relied_on = &prepared.relied_on;
    if relied_on.is_empty() {
        return Ok(());
    }
    let registry = relied_on[0].0.registry().to_string();
    let bases = prepared.delta_bases();
    let candidates = crate::inventory::receipt_repositories(state_dir, &registry, &bases)?;
    let missing = confirm_omitted(client, relied_on, &candidates, mount).await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(InstallError::DeltaBaseMissing {
        registry,
        missing,
        bases: bases
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The source of a blob that may only be mounted: a delta does not carry
/// its bytes, so an upload must never start.
struct MountOnly;

impl BlobSource for MountOnly {
    fn open(
        &self,
        _offset: u64,
    ) -> BoxFuture<'_, std::io::Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>>> {
        Box::pin(async {
            Err(std::io::Error::other(
                "the registry refused the mount, and the delta bundle does not carry this blob",
            ))
        })
    }
}

/// Every `(repository, blob)` the delta relies on is looked up by HEAD in
/// its repository, then in `candidates` and the other repositories of
/// `relied_on`. Returns the blobs found nowhere, as `digest (for repo)`
/// lines, having written nothing; when none is missing and `mount` is set,
/// mounts each blob that sits only in another repository.
pub async fn confirm_omitted(
    client: &Client,
    relied_on: &[(Repository, Digest)],
    candidates: &[Repository],
    mount: bool,
) -> Result<Vec<String>, CopyError> {
    let head = |repo: &Repository, d: &Digest| {
        let (repo, d) = (repo.clone(), d.clone());
        async move {
            client
                .blob_exists(&repo, &d)
                .await
                .map_err(|cause| CopyError::Registry {
                    what: format!("checking blob {d}"),
                    target: repo.to_string(),
                    cause,
                })
        }
    };
    let mut sources: Vec<Repository> = candidates.to_vec();
    for (repo, _) in relied_on {
        if !sources.contains(repo) {
            sources.push(repo.clone());
        }
    }
    // Where each blob is: `None` in place, `Some(Some(from))` elsewhere,
    // `Some(None)` nowhere. Several blobs are looked up at once, in order.
    let places: Vec<Option<Option<(&Repository, u64)>>> = futures_util::stream::iter(relied_on)
        .map(|(repo, d)| {
            let (head, sources) = (&head, &sources);
            async move {
                if head(repo, d).await?.is_some() {
                    return Ok::<_, CopyError>(None);
                }
                for from in sources.iter().filter(|s| *s != repo) {
                    if let Some(size) = head(from, d).await? {
                        return Ok(Some(Some((from, size))));
                    }
                }
                Ok(Some(None))
            }
        })
        .buffered(HEADS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut missing = Vec::new();
    let mut mounts = Vec::new();
    for ((repo, d), place) in relied_on.iter().zip(places) {
        match place {
            None => {}
            Some(Some((from, size))) => mounts.push(BlobNeed {
                digest: d.clone(),
                size,
                // The holder first: the engine skips it and mounts from it.
                repositories: vec![from.clone(), repo.clone()],
            }),
            Some(None) => missing.push(format!("  {d} (for {repo})")),
        }
    }
    if !missing.is_empty() || !mount {
        return Ok(missing);
    }
    for need in mounts {
        let steps = copy::copy_blob(client, &need, &MountOnly, Arc::new(NoProgress)).await?;
        tracing::info!("delta: {}: {steps:?}", need.digest);
    }
    Ok(Vec::new())
}
