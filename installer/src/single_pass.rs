//! `install --single-pass`: for slow media, verify and push in the same read.
//!
//! The verifier streams the bundle once; each blob is pushed as soon as the
//! verifier has checked its size and digest (its bytes are then re-read from
//! the page cache, not from the media). Manifests route their children to the
//! target repositories as they verify, in the bundle's depth-first order; a
//! referrer (role `referrer`) goes to the repository of the image its
//! `referrer-of` names.
//!
//! Trade-off (documented in docs/guide.md): if verification fails late, blobs
//! verified earlier are already in the registry. They are content-addressed
//! and nothing references them: no manifest, no tag is pushed, nothing is
//! rendered or applied unless the whole bundle verified. The registry's
//! garbage collector removes them. The default mode sends no request at all
//! before the whole bundle verified.
//!
//! As blobs go out before the bundle is known to be good, every tool the run
//! will start is looked for before the first request ([`check_tools`]):
//! kubectl renders a bundle that ships manifests, with or without `--apply`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::{annotation as ann, role, ManifestKind};
use atp_bundle::media::BundleInput;
use atp_bundle::progress::{NoProgress, Progress};
use atp_bundle::verify::{BlobLocation, Report, VisitBlob};
use atp_bundle::Digest;
use atp_registry::copy::{self, BlobNeed, CopyError, CopyStats};
use atp_registry::mapping::{self, MappingError, SourceRef};
use atp_registry::{Client, Repository};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::PreflightError;
use crate::options::InstallOptions;
use crate::site::Site;
use crate::verify::VerifyError;

/// Why a single pass stopped (a bad bundle is not one of them: it is a
/// finding in the returned report).
#[derive(Debug, thiserror::Error)]
pub enum SinglePassError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error(transparent)]
    Copy(#[from] CopyError),
}

/// Before the first request of a single pass: kubectl, when the run will
/// start it. `--apply` always does; a bundle that ships manifests is
/// rendered (`kubectl kustomize`) even without `--apply`. Whether it ships
/// them is read from the media unverified: it only decides whether to look
/// now, and install checks again once the bundle verified.
pub fn check_tools(opts: &InstallOptions) -> Result<(), PreflightError> {
    let ships = ships_manifests(&opts.bundle, &opts.volumes_from);
    crate::preflight::check_tools(ships, opts.apply.is_some())
}

/// Does the bundle on the media ship manifests: a kustomize layer in its
/// bundle artifact and an overlay in its config (what install renders)?
/// `false` when it cannot be read: verification then says why.
fn ships_manifests(bundle: &Path, volumes_from: &[std::path::PathBuf]) -> bool {
    let Ok(input) = BundleInput::open(bundle, volumes_from, None) else {
        return false;
    };
    let Ok(b) = atp_bundle::open::Bundle::open_from(bundle, input.tar()) else {
        return false;
    };
    let overlay = b
        .config
        .as_ref()
        .and_then(|c| c.manifests.as_ref())
        .is_some_and(|m| m.overlay.is_some());
    let artifact = b
        .index
        .manifests
        .iter()
        .find(|d| d.annotation(ann::ROLE) == Some(role::BUNDLE))
        .and_then(|d| b.blob(&d.digest))
        .and_then(|loc| b.read_blob(loc).ok())
        .and_then(|bytes| serde_json::from_slice::<atp_bundle::format::ImageManifest>(&bytes).ok());
    let kustomize = artifact.is_some_and(|m| {
        m.layers
            .iter()
            .any(|l| l.media_type == atp_bundle::format::media::KUSTOMIZE_TAR)
    });
    overlay && kustomize
}

/// Sends each verified blob's location to the pushing side.
struct Forward(UnboundedSender<BlobLocation>);

impl VisitBlob for Forward {
    fn verified(&mut self, location: &BlobLocation) {
        let _ = self.0.send(location.clone());
    }
}

/// Verify the whole bundle, pushing each config and layer to `site` as soon
/// as it has verified. Returns the verifier's report (the caller refuses a
/// bad one before any manifest is pushed), the input, and what was pushed.
pub async fn verify_and_push(
    bundle: &Path,
    volumes_from: &[std::path::PathBuf],
    key: &p256::ecdsa::VerifyingKey,
    site: &Site,
    client: &Client,
    progress: Arc<dyn Progress>,
) -> Result<(Report, BundleInput, CopyStats), SinglePassError> {
    let input = BundleInput::open(bundle, volumes_from, Some(key)).map_err(VerifyError::from)?;
    // Routing only: the index as found on the media. Nothing read here is
    // trusted: a blob is pushed only once the verifier, which checks the
    // signature first, has vouched for it, and the registry re-checks digests.
    let index = atp_bundle::open::Bundle::open_from(bundle, input.tar())
        .map(|b| b.index)
        .ok();
    let mut routes: HashMap<Digest, Vec<Repository>> = HashMap::new();
    if let Some(index) = &index {
        let tops: Vec<(Digest, &str, SourceRef)> = index
            .manifests
            .iter()
            .filter(|d| d.annotation(ann::ROLE) == Some(role::IMAGE))
            .filter_map(|d| {
                let r = d.annotation(ann::REF_NAME)?;
                Some((d.digest.clone(), r, SourceRef::parse(r).ok()?))
            })
            .collect();
        let sources: Vec<&SourceRef> = tops.iter().map(|(_, _, s)| s).collect();
        let map = mapping::map_repositories(
            sources.iter().copied(),
            &site.layout,
            site.repo_prefix.as_deref(),
        )?;
        let mut repo_of: HashMap<&str, Repository> = HashMap::new();
        for (digest, name, src) in &tops {
            let repo = site.repository(&map[&src.repository()])?;
            repo_of.insert(name, repo.clone());
            let e = routes.entry(digest.clone()).or_default();
            if !e.contains(&repo) {
                e.push(repo);
            }
        }
        // A referrer goes where the image it belongs to goes.
        for d in &index.manifests {
            if d.annotation(ann::ROLE) != Some(role::REFERRER) {
                continue;
            }
            if let Some(repo) = d.annotation(ann::REFERRER_OF).and_then(|r| repo_of.get(r)) {
                routes
                    .entry(d.digest.clone())
                    .or_default()
                    .push(repo.clone());
            }
        }
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (reader, key, p) = (input.sequential(), *key, progress.clone());
    let len = input.len();
    let verifier = tokio::task::spawn_blocking(move || {
        p.phase("verify+push", len, 0);
        let mut forward = Forward(tx);
        let report = atp_bundle::verify::verify_reader_with(
            std::io::BufReader::with_capacity(1 << 20, reader),
            &key,
            time::OffsetDateTime::now_utc(),
            &mut forward,
        );
        p.finish_phase();
        report
    });

    let mut stats = CopyStats::default();
    let mut pushes = FuturesUnordered::new();
    let mut pushed: HashSet<Digest> = HashSet::new();
    let limit = site.concurrency.max(1);
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
                        let need = BlobNeed { digest: loc.digest.clone(), size: loc.size, repositories: repos };
                        let source = crate::media_source::blob_source(&input, &loc);
                        // The verifier's phase already counts these bytes.
                        pushes.push(async move {
                            copy::copy_blob(client, &need, &*source, Arc::new(NoProgress)).await
                        });
                    }
                }
            },
            Some(done) = pushes.next(), if !pushes.is_empty() => {
                for step in done? {
                    stats.add_blob(&step);
                }
            }
        }
    }
    drop(pushes);
    let report = verifier.await.expect("verify task panicked");
    Ok((report, input, stats))
}
