//! `install --single-pass`: for slow media, verify and push in the same read.
//!
//! The verifier streams the bundle once; each blob is pushed as soon as the
//! verifier has checked its size and digest (its bytes are then re-read from
//! the page cache, not from the media). Manifests route their children to the
//! target repositories as they verify, in the bundle's depth-first order.
//!
//! Trade-off (documented in docs/guide.md): if verification fails late, blobs
//! verified earlier are already in the registry. They are content-addressed
//! and nothing references them: no manifest, no tag is pushed, nothing is
//! rendered or applied unless the whole bundle verified. The registry's
//! garbage collector removes them. The default mode sends no request at all
//! before the whole bundle verified.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::ManifestKind;
use atp_bundle::media::BundleInput;
use atp_bundle::progress::Progress;
use atp_bundle::verify::{BlobLocation, Report, VisitBlob};
use atp_bundle::Digest;
use atp_registry::mapping::{self, SourceRef};
use atp_registry::{Client, PushOutcome, Repository};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::UnboundedSender;

use crate::install::{InstallError, InstallOptions};
use crate::media_source::BlobSources;
use crate::push::PushStats;

/// Sends each verified blob's location to the pushing side.
struct Forward(UnboundedSender<BlobLocation>);

impl VisitBlob for Forward {
    fn verified(&mut self, location: &BlobLocation) {
        let _ = self.0.send(location.clone());
    }
}

/// Verify the whole bundle, pushing each config and layer as soon as it has
/// verified. Returns the verifier's report (the caller refuses a bad one
/// before any manifest is pushed), the input, and what was pushed early.
pub async fn verify_and_push(
    opts: &InstallOptions,
    key: &p256::ecdsa::VerifyingKey,
    client: &Client,
    progress: Arc<dyn Progress>,
) -> Result<(Report, BundleInput, PushStats), InstallError> {
    let input = BundleInput::open(&opts.bundle, &opts.volumes_from, Some(key))
        .map_err(crate::verify::VerifyError::from)?;
    // Routing only: the index as found on the media. Nothing read here is
    // trusted: a blob is pushed only once the verifier, which checks the
    // signature first, has vouched for it, and the registry re-checks digests.
    let index = atp_bundle::open::Bundle::open_from(&opts.bundle, input.tar())
        .map(|b| b.index)
        .ok();
    let mut routes: HashMap<Digest, Vec<Repository>> = HashMap::new();
    if let Some(index) = &index {
        let tops: Vec<(Digest, SourceRef)> = index
            .manifests
            .iter()
            .filter(|d| d.annotation(atp_bundle::format::annotation::ROLE) == Some("image"))
            .filter_map(|d| {
                let r = d.annotation(atp_bundle::format::annotation::REF_NAME)?;
                Some((d.digest.clone(), SourceRef::parse(r).ok()?))
            })
            .collect();
        let sources: Vec<&SourceRef> = tops.iter().map(|(_, s)| s).collect();
        let map = mapping::map_repositories(
            sources.iter().copied(),
            &opts.layout,
            opts.repo_prefix.as_deref(),
        )?;
        for (digest, src) in &tops {
            let repo = Repository::new(&opts.registry, &map[&src.repository()])?;
            let e = routes.entry(digest.clone()).or_default();
            if !e.contains(&repo) {
                e.push(repo);
            }
        }
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (bundle, key, p) = (input.sequential(), *key, progress.clone());
    let len = input.len();
    let verifier = tokio::task::spawn_blocking(move || {
        p.phase("verify+push", len, 0);
        let mut forward = Forward(tx);
        let report = atp_bundle::verify::verify_reader_with(
            std::io::BufReader::with_capacity(1 << 20, bundle),
            &key,
            time::OffsetDateTime::now_utc(),
            &mut forward,
        );
        p.finish_phase();
        report
    });

    let mut stats = PushStats::default();
    let mut pushes = FuturesUnordered::new();
    let mut pushed: HashSet<Digest> = HashSet::new();
    let limit = opts.concurrency.max(1);
    let tar = input.tar();
    let mut open = true;
    while open || !pushes.is_empty() {
        tokio::select! {
            loc = rx.recv(), if open && pushes.len() < limit => match loc {
                None => open = false,
                Some(loc) => {
                    let repos = routes.get(&loc.digest).cloned().unwrap_or_default();
                    if ManifestKind::of(&loc.media_type).is_some() {
                        // Route the children of a verified manifest.
                        let mut buf = vec![0u8; loc.size as usize];
                        if tar.read_exact_at(&mut buf, loc.data_offset).is_ok() {
                            if let Ok(m) = Manifest::parse(&loc.media_type, &buf, &loc.digest.to_string()) {
                                for c in m.children() {
                                    let e = routes.entry(c.digest.clone()).or_default();
                                    for r in &repos {
                                        if !e.contains(r) {
                                            e.push(r.clone());
                                        }
                                    }
                                }
                            }
                        }
                    } else if !repos.is_empty() && pushed.insert(loc.digest.clone()) {
                        pushes.push(push_one(client, &input, loc, repos));
                    }
                }
            },
            Some(done) = pushes.next(), if !pushes.is_empty() => {
                for outcome in done? {
                    match outcome {
                        (PushOutcome::Skipped, _) => stats.skipped += 1,
                        (PushOutcome::Mounted { .. }, _) => stats.mounted += 1,
                        (PushOutcome::Uploaded, size) => {
                            stats.uploaded += 1;
                            stats.bytes_uploaded += size;
                        }
                    }
                }
            }
        }
    }
    drop(pushes);
    let report = verifier.await.expect("verify task panicked");
    Ok((report, input, stats))
}

async fn push_one(
    client: &Client,
    input: &BundleInput,
    loc: BlobLocation,
    repos: Vec<Repository>,
) -> Result<Vec<(PushOutcome, u64)>, InstallError> {
    let source = input.blob_source(&loc);
    let mut out = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let mount_from = if i == 0 { &[][..] } else { &repos[..1] };
        let outcome = client
            .push_blob(repo, &loc.digest, loc.size, &*source, mount_from)
            .await
            .map_err(|cause| crate::push::PushError::Registry {
                what: format!("blob {}", loc.digest),
                target: repo.to_string(),
                cause,
            })?;
        out.push((outcome, loc.size));
    }
    Ok(out)
}
