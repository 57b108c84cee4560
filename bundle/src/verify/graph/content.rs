//! What a verified blob says, once its digest held: a manifest's or index's
//! children announced in depth-first order (and the bundle artifact's
//! config found), file-set layer titles checked as install paths, and the
//! bundle config checked against the `index.json` annotations it repeats.
//!
//! Only ever given bytes whose digest was checked; reads and writes no file.

use std::io::Read;

use crate::format::manifest::Manifest;
use crate::format::{annotation as ann, media, BundleConfig, Descriptor};
use crate::verify::{FindingKind, Verifier, VisitBlob};
use crate::Digest;

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    /// Parse the verified manifest or index `digest` and announce its
    /// children (a damaged one is remembered, to explain what it would have
    /// announced).
    pub(super) fn manifest(&mut self, digest: &Digest, media_type: &str, bytes: &[u8], h_off: u64) {
        let parsed = match Manifest::parse(media_type, bytes, &digest.to_string()) {
            Ok(m) => m,
            Err(e) => {
                self.damaged.push(digest.clone());
                self.find(
                    FindingKind::BadManifest,
                    Some(digest),
                    None,
                    h_off,
                    e.to_string(),
                );
                return;
            }
        };
        let parent = digest.to_string();
        let is_bundle_artifact = self
            .report
            .index
            .as_ref()
            .and_then(|i| i.manifests.first())
            .map(|d| d.digest == *digest)
            .unwrap_or(false);
        self.referrer_manifest(digest, bytes, h_off);
        if let Manifest::Index(i) = &parsed {
            let listed = i.manifests.iter().map(|c| c.digest.clone()).collect();
            self.index_children.insert(digest.clone(), listed);
        }
        let children: Vec<(Descriptor, bool)> = match &parsed {
            Manifest::Index(i) => i.manifests.iter().map(|c| (c.clone(), false)).collect(),
            Manifest::Image(m) => {
                if is_bundle_artifact {
                    if m.config.media_type == media::BUNDLE_CONFIG {
                        self.config_digest = Some(m.config.digest.clone());
                    } else {
                        self.find(
                            FindingKind::BadManifest,
                            Some(digest),
                            None,
                            h_off,
                            format!(
                                "bundle artifact config has media type {}, expected {}",
                                m.config.media_type,
                                media::BUNDLE_CONFIG
                            ),
                        );
                    }
                }
                self.file_titles(digest, &m.layers, h_off);
                std::iter::once((m.config.clone(), false))
                    .chain(m.layers.iter().map(|l| (l.clone(), !is_bundle_artifact)))
                    .collect()
            }
        };
        for (c, omittable) in &children {
            self.announce(c, *omittable, &parent, h_off);
        }
        self.stack
            .extend(children.into_iter().rev().map(|(c, _)| c.digest));
    }

    /// A file-set layer's title is the path the file is installed under:
    /// refuse one that could leave the model cache folder, here, so that
    /// `verify` refuses what `install` would and nothing is pushed first.
    fn file_titles(&mut self, digest: &Digest, layers: &[Descriptor], h_off: u64) {
        for l in layers.iter().filter(|l| l.media_type == media::FILE_LAYER) {
            let Some(title) = l.annotation(ann::TITLE) else {
                continue;
            };
            if let Err(reason) = crate::assemble::check_file_path(title) {
                self.find(
                    FindingKind::UnsafePath,
                    Some(digest),
                    None,
                    h_off,
                    format!("file set layer {} is titled {title:?}: {reason}", l.digest),
                );
            }
        }
    }

    /// Parse the verified bundle config and check it against the index's
    /// annotations and the install paths of its files; its delta's omitted
    /// blobs are recorded.
    pub(super) fn bundle_config(&mut self, digest: &Digest, bytes: &[u8], h_off: u64) {
        let config: BundleConfig = match serde_json::from_slice(bytes) {
            Ok(c) => c,
            Err(e) => {
                self.find(
                    FindingKind::BadManifest,
                    Some(digest),
                    None,
                    h_off,
                    format!("bundle config: {e}"),
                );
                return;
            }
        };
        if let Some(info) = self.report.info.clone() {
            let same = config.name == info.name
                && config.version == info.version
                && config.channel == info.channel
                && config.sequence == info.sequence
                && config.created == info.created;
            if !same {
                self.find(FindingKind::BadManifest, Some(digest), None, h_off, "bundle config disagrees with the index.json annotations (name, version, channel, sequence or created)".into());
            }
            if info.delta != config.delta.is_some() {
                self.find(
                    FindingKind::BadManifest,
                    Some(digest),
                    None,
                    h_off,
                    "delta annotation and bundle config delta section disagree".into(),
                );
            }
        }
        for f in &config.files {
            if let Err(reason) = crate::assemble::check_file_path(&f.path) {
                self.find(
                    FindingKind::UnsafePath,
                    Some(digest),
                    None,
                    h_off,
                    format!(
                        "bundle config lists file {:?} of set {:?}: {reason}",
                        f.path, f.set
                    ),
                );
            }
        }
        self.omitted = config.omitted().iter().cloned().collect();
        self.report.omitted = config.omitted().to_vec();
        self.report.config = Some(config);
    }
}
