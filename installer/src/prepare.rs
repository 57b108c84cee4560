//! The plan phase shared by `install` and `simulate`, so both decide the
//! same way: [`verify`] the whole bundle (sends nothing), then, on the
//! verified bundle, the rollback verdict, the
//! repository mapping, and one copy plan per image (exact manifest bytes,
//! re-hashed as they are read). Sends nothing, writes nothing.
//!
//! The bundle's referrers (signatures, attestations, SBOMs) are planned as
//! ordinary image copies after every image, each into the repository of the
//! image its `referrer-of` names, by digest, or under its upstream cosign tag
//! (`referrer-tag`). [`Prepared::referrers`] lists them with their subject,
//! for the fallback index step after the copy (`install::referrer_indexes`).
//! What install executes is [`Prepared::push_plan`]: the same copies, but a
//! cosign-tagged referrer goes by digest (untagged), and its tag is written
//! after the copy, merged with the site's own cosign manifest under it
//! (`atp_registry::referrers::update_cosign_tag`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use atp_bundle::progress::Progress;

use atp_bundle::format::referrer::CarriedReferrer;
use atp_bundle::format::{media, role, Descriptor};
use atp_bundle::verify::TopLevel;
use atp_bundle::Digest;
use atp_registry::copy::{self, ImageCopy, Plan};
use atp_registry::mapping::{self, SourceRef};
use atp_registry::referrers::Holders;
use atp_registry::Repository;
use serde::Serialize;

use crate::error::InstallError;
use crate::options::InstallOptions;
use crate::render::{self, PlacedImage};
use crate::site::Site;
use crate::state::{PushedImage, SequenceCheck};
use crate::verified::VerifiedBundle;

/// Verify the whole bundle (sends nothing), and refuse it on any finding.
pub async fn verify(
    opts: &InstallOptions,
    progress: Arc<dyn Progress>,
) -> Result<VerifiedBundle, InstallError> {
    let (bundle, key) = (opts.bundle.clone(), opts.key.clone());
    let volumes_from = opts.volumes_from.clone();
    let (report, input) = tokio::task::spawn_blocking(move || {
        let now = time::OffsetDateTime::now_utc();
        crate::verify::verify_input(&bundle, &volumes_from, &key, now, progress)
    })
    .await
    .expect("verify task panicked")?;
    accept(opts, report, input)
}

/// A clean report becomes a [`VerifiedBundle`]; any finding is a refusal.
pub(crate) fn accept(
    opts: &InstallOptions,
    report: atp_bundle::verify::Report,
    input: atp_bundle::media::BundleInput,
) -> Result<VerifiedBundle, InstallError> {
    if !report.is_ok() {
        return Err(InstallError::Rejected {
            path: opts.bundle.clone(),
            findings: report.findings.iter().map(|f| format!("  {f}")).collect(),
        });
    }
    Ok(VerifiedBundle::new(report, input))
}

/// A verified bundle with its plan.
pub struct Prepared {
    pub bundle: VerifiedBundle,
    pub info: atp_bundle::BundleInfo,
    pub index_digest: Digest,
    pub sequence: SequenceCheck,
    pub images: Vec<TopLevel>,
    /// One image copy per image, in the order of `images`, then one per
    /// referrer, in the order of `referrers`.
    pub plan: Plan,
    /// The carried referrers, as planned.
    pub referrers: Vec<PlannedReferrer>,
    /// Omitted blobs (delta bundle) with the repository that needs them.
    pub relied_on: Vec<(Repository, Digest)>,
}

/// A referrer as it lands in the site registry.
#[derive(Debug, Clone)]
pub struct PlannedReferrer {
    /// The repository of the image it belongs to.
    pub target: Repository,
    /// The manifest it refers to.
    pub subject: Digest,
    /// cosign's tag, when it came by one; `None`: an OCI referrer, listed in
    /// the subject's fallback index at a site without the referrers API.
    pub tag: Option<String>,
    /// How a referrers index lists it (digest, size, media type,
    /// `artifactType`, its own annotations), read from its verified bytes.
    pub listed: Descriptor,
}

/// The referrers an install carries to the site registry (also what
/// `simulate` predicts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReferrersOutcome {
    /// Each referrer as it landed: `REPO:cosign-tag` or `REPO@digest`.
    pub pushed: Vec<PushedReferrer>,
    /// One per subject that got OCI referrers.
    pub indexes: Vec<IndexOutcome>,
    /// One per cosign tag carried (per repository).
    pub tags: Vec<TagOutcome>,
}

/// What became of one carried cosign tag at the site.
#[derive(Debug, Clone, Serialize)]
pub struct TagOutcome {
    /// `REPO:sha256-<hex>.sig` (or `.att`, `.sbom`).
    pub tag: String,
    /// `written` (the tag was not there; `simulate`: `to write`), `merged`
    /// (the site's own cosign manifest there kept its layers and got ours
    /// appended; `simulate`: `to merge`), `unchanged` (already held every
    /// carried layer: nothing sent) or, from `simulate` only, `refused`.
    pub outcome: &'static str,
}

/// One carried referrer in the site registry.
#[derive(Debug, Clone, Serialize)]
pub struct PushedReferrer {
    pub target: String,
    pub digest: Digest,
    pub subject: Digest,
    pub artifact_type: Option<String>,
}

/// What became of one subject's fallback tag index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexOutcome {
    /// `REPO:sha256-<hex>`.
    pub index: String,
    /// `written` (merged and put once; `simulate`: `to write`),
    /// `unchanged` (already listed every referrer: nothing sent) or
    /// `referrers-api` (the registry indexes referrers itself: nothing
    /// written).
    pub outcome: &'static str,
}

/// How the rollback check reads the installed sequence.
pub type SequenceLookup<'a> = dyn Fn(&atp_bundle::BundleInfo, &Digest) -> Result<SequenceCheck, crate::state::StateError>
    + Sync
    + 'a;

/// Refuse rollbacks (unless `allow_downgrade`), map names, plan every image.
pub fn prepare(
    bundle: VerifiedBundle,
    site: &Site,
    sequence: &SequenceLookup<'_>,
    allow_downgrade: bool,
) -> Result<Prepared, InstallError> {
    let report = &bundle.report;
    let info = report
        .info
        .clone()
        .expect("a verified bundle has annotations");
    let index_digest = report
        .index_digest
        .clone()
        .expect("a verified bundle has an index digest");

    // Rollback protection.
    let check = sequence(&info, &index_digest)?;
    match check {
        SequenceCheck::Rollback { installed, offered } if !allow_downgrade => {
            return Err(InstallError::Rollback {
                channel: info.channel.clone(),
                installed,
                offered,
            })
        }
        SequenceCheck::Same => tracing::info!("this bundle is already installed; re-checking"),
        _ => {}
    }

    // Map and plan.
    let images: Vec<TopLevel> = report.images().cloned().collect();
    let sources: Vec<SourceRef> = images
        .iter()
        .map(|t| SourceRef::parse(&t.reference))
        .collect::<Result<_, _>>()?;
    let map = mapping::map_repositories(&sources, &site.layout, site.repo_prefix.as_deref())?;
    let omitted: HashSet<Digest> = report.omitted.iter().cloned().collect();
    let mut copies = Vec::new();
    let mut relied_on = Vec::new();
    for (top, src) in images.iter().zip(&sources) {
        let target = site.repository(&map[&src.repository()])?;
        let walked = copy::walk_image(
            &top.reference,
            &top.descriptor,
            &mut |d| bundle.read_text_err(&d.digest),
            &omitted,
        )?;
        relied_on.extend(walked.relied_on.into_iter().map(|d| (target.clone(), d)));
        copies.push(ImageCopy {
            source: top.reference.clone(),
            target,
            tag: src.tag.clone(),
            root: top.descriptor.clone(),
            manifests: walked.manifests,
            blobs: walked.blobs,
        });
    }
    let referrers = plan_referrers(&bundle, &images, &mut copies, &omitted, &mut relied_on)?;
    Ok(Prepared {
        bundle,
        info,
        index_digest,
        sequence: check,
        images,
        plan: Plan::new(copies),
        referrers,
        relied_on,
    })
}

/// Append a copy per referrer and repository to `copies` (whose first
/// entries are the images, in order); a delta bundle's blobs it omits join
/// `relied_on`.
///
/// A referrer lands in every repository that holds the manifest it refers
/// to, first the repository of the image its `referrer-of` names (the bundle
/// carries a referrer once, for the first image that brought it): the rule
/// is [`Holders`].
fn plan_referrers(
    bundle: &VerifiedBundle,
    images: &[TopLevel],
    copies: &mut Vec<ImageCopy>,
    omitted: &HashSet<Digest>,
    relied_on: &mut Vec<(Repository, Digest)>,
) -> Result<Vec<PlannedReferrer>, InstallError> {
    let repo_of: HashMap<&str, Repository> = images
        .iter()
        .zip(copies.iter())
        .map(|(t, c)| (t.reference.as_str(), c.target.clone()))
        .collect();
    // Which repositories hold each manifest: the images' own, then each
    // referrer's, in bundle order (a referrer's subject comes first).
    let mut holders = Holders::new(copies);
    let mut planned = Vec::new();
    for top in bundle.report.referrers() {
        let bad = |reason: String| {
            InstallError::Registry(atp_registry::Error::InvalidManifest {
                context: format!("referrer {}", top.descriptor.digest),
                reason,
            })
        };
        let r = CarriedReferrer::from_descriptor(&top.descriptor).map_err(bad)?;
        let first = repo_of
            .get(r.referrer_of.as_str())
            .ok_or_else(|| bad(format!("names no image of the bundle ({})", r.referrer_of)))?;
        let targets = holders.place(first, &r.subject, &r.digest);
        let source = format!("{} (referrer {})", r.referrer_of, r.digest);
        let walked = copy::walk_image(
            &source,
            &top.descriptor,
            &mut |d| bundle.read_text_err(&d.digest),
            omitted,
        )?;
        let root = bundle.read(&r.digest)?;
        let listed = atp_registry::referrers::referrer_descriptor(&r.media_type, &root)?;
        for target in targets {
            relied_on.extend(walked.relied_on.iter().map(|d| (target.clone(), d.clone())));
            copies.push(ImageCopy {
                source: source.clone(),
                target: target.clone(),
                tag: r.tag.clone(),
                root: top.descriptor.clone(),
                manifests: walked.manifests.clone(),
                blobs: walked.blobs.clone(),
            });
            planned.push(PlannedReferrer {
                target,
                subject: r.subject.clone(),
                tag: r.tag.clone(),
                listed: listed.clone(),
            });
        }
    }
    Ok(planned)
}

impl Prepared {
    /// The referrers with the copy that pushes each (in `referrers` order).
    pub fn referrer_copies(&self) -> impl Iterator<Item = (&PlannedReferrer, &ImageCopy)> {
        self.referrers
            .iter()
            .zip(self.plan.images.iter().skip(self.images.len()))
    }

    /// The plan install executes: [`Prepared::plan`], except that a
    /// cosign-tagged referrer is pushed by digest only. Its tag is written
    /// after the copy, when the site's content under it is read and merged
    /// ([`Prepared::cosign_tags`]), so a site's own signature is never
    /// replaced, and nothing is tagged before the whole copy is in place.
    pub fn push_plan(&self) -> Plan {
        let n = self.images.len();
        Plan::new(
            self.plan
                .images
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    if i >= n {
                        c.tag = None;
                    }
                    c
                })
                .collect(),
        )
    }

    /// Each carried cosign tag: repository, tag, and the carried manifest
    /// (exact verified bytes and media type).
    pub fn cosign_tags(&self) -> Vec<(&Repository, &str, &[u8], &str)> {
        self.referrer_copies()
            .filter_map(|(r, p)| {
                let tag = r.tag.as_deref()?;
                let (d, bytes) = p.manifests.last()?;
                Some((&p.target, tag, bytes.as_slice(), d.media_type.as_str()))
            })
            .collect()
    }

    /// Each referrer by digest and repository, for the receipt.
    pub fn placed_referrers(&self) -> Vec<crate::state::PlacedReferrer> {
        self.referrers
            .iter()
            .map(|r| crate::state::PlacedReferrer {
                repository: r.target.to_string(),
                digest: r.listed.digest.clone(),
                subject: r.subject.clone(),
            })
            .collect()
    }

    /// Each referrer as it lands.
    pub fn pushed_referrers(&self) -> Vec<PushedReferrer> {
        self.referrer_copies()
            .map(|(r, p)| PushedReferrer {
                target: p.target_reference(),
                digest: r.listed.digest.clone(),
                subject: r.subject.clone(),
                artifact_type: r.listed.artifact_type.clone(),
            })
            .collect()
    }

    /// What each subject's fallback tag index must list: its OCI referrers
    /// (not the cosign-tagged ones), per repository and subject, in plan order.
    pub fn fallback_additions(&self) -> Vec<(&Repository, &Digest, Vec<Descriptor>)> {
        let mut groups: Vec<(&Repository, &Digest, Vec<Descriptor>)> = Vec::new();
        for r in self.referrers.iter().filter(|r| r.tag.is_none()) {
            match groups
                .iter_mut()
                .find(|(t, s, _)| *t == &r.target && *s == &r.subject)
            {
                Some(g) => g.2.push(r.listed.clone()),
                None => groups.push((&r.target, &r.subject, vec![r.listed.clone()])),
            }
        }
        groups
    }

    /// Every image as it lands in the site registry (for the summary).
    pub fn pushed_images(&self) -> Vec<PushedImage> {
        self.plan
            .images
            .iter()
            .take(self.images.len())
            .map(|p| PushedImage {
                source: p.source.clone(),
                target: p.target_reference(),
                digest: p.root.digest.clone(),
            })
            .collect()
    }

    /// Every image as the render step rewrites it.
    pub fn placed_images(&self) -> Vec<PlacedImage> {
        self.images
            .iter()
            .zip(&self.plan.images)
            .map(|(top, p)| PlacedImage {
                source: top.reference.clone(),
                digest: top.descriptor.digest.clone(),
                source_digest: top
                    .descriptor
                    .annotation(atp_bundle::format::annotation::SOURCE_DIGEST)
                    .and_then(|d| d.parse().ok()),
                target_repo: p.target.to_string(),
            })
            .collect()
    }

    /// The kustomize layer's digest and the overlay path, when the bundle
    /// ships manifests.
    pub fn overlay(&self) -> Result<Option<(Digest, String)>, InstallError> {
        let report = &self.bundle.report;
        let Some(artifact) = report.top_level.iter().find(|t| t.role == role::BUNDLE) else {
            return Ok(None);
        };
        let bytes = self.bundle.read(&artifact.descriptor.digest)?;
        let Ok(m) = serde_json::from_slice::<atp_bundle::format::ImageManifest>(&bytes) else {
            return Ok(None);
        };
        let Some(layer) = m
            .layers
            .into_iter()
            .find(|l| l.media_type == media::KUSTOMIZE_TAR)
        else {
            return Ok(None);
        };
        let overlay = report
            .config
            .as_ref()
            .and_then(|c| c.manifests.as_ref())
            .and_then(|m| m.overlay.clone());
        Ok(overlay.map(|o| (layer.digest, o)))
    }

    /// The base bundles a delta relies on (empty for a full bundle).
    pub fn delta_bases(&self) -> Vec<Digest> {
        let config = self.bundle.report.config.as_ref();
        config
            .and_then(|c| c.delta.as_ref())
            .map(|d| d.bases.clone())
            .unwrap_or_default()
    }

    /// Render the shipped overlay for `site` into `out_dir`, from the
    /// kustomize layer re-read and re-hashed (the verified bytes or an
    /// error). `None` when the bundle ships no manifests.
    pub fn render_overlay(
        &self,
        site: &Site,
        out_dir: &Path,
    ) -> Result<Option<render::Rendered>, InstallError> {
        let Some((layer, overlay)) = self.overlay()? else {
            return Ok(None);
        };
        let tar = self.bundle.read(&layer)?;
        std::fs::create_dir_all(out_dir).map_err(|source| InstallError::Io {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let placed = self.placed_images();
        let creds = site
            .credentials
            .as_ref()
            .map(|c| (c.username.as_str(), c.password()));
        let report = &self.bundle.report;
        Ok(Some(render::render(&render::RenderRequest {
            kustomize_tar: &tar,
            overlay: &overlay,
            images: &placed,
            registry: &site.registry,
            registry_ca: site.registry_ca.as_deref(),
            credentials: creds,
            image_fields: report.config.as_ref().map_or(&[], |c| c.image_fields()),
            out_dir,
        })?))
    }
}
