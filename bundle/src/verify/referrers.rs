//! The referrer rules (spec section 4.1, checked as section 8 item 7): a
//! referrer belongs to an image of the bundle, refers to a manifest of that
//! image (its root, a platform manifest, or another of its referrers), its
//! manifest's own `subject` agrees, and the bundle config lists exactly the
//! referrers `index.json` carries.
//!
//! Judges only what `index.json`, verified manifests and the verified bundle
//! config say; it never follows a `subject` as a child.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;

use crate::format::referrer::{CarriedReferrer, ReferrerFacts};
use crate::format::{role, Descriptor, ManifestKind, INDEX_PATH};
use crate::Digest;

use super::{FindingKind, Verifier, VisitBlob};

fn role_of(d: &Descriptor) -> &str {
    d.annotation(crate::format::annotation::ROLE).unwrap_or("")
}

/// Rank of a role in `index.json`: the bundle artifact, images, referrers,
/// then file sets.
fn rank(r: &str) -> u8 {
    match r {
        role::BUNDLE => 0,
        role::IMAGE => 1,
        role::REFERRER => 2,
        _ => 3,
    }
}

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    /// Index-level rules: roles in order, and each referrer's annotations
    /// well formed and naming an image of the bundle.
    pub(super) fn referrers_in_index(&mut self, manifests: &[Descriptor], at: u64) {
        let images: HashSet<&str> = manifests
            .iter()
            .filter(|d| role_of(d) == role::IMAGE)
            .filter_map(|d| d.annotation(crate::format::annotation::REF_NAME))
            .collect();
        let mut findings = Vec::new();
        for w in manifests.windows(2) {
            if rank(role_of(&w[1])) < rank(role_of(&w[0])) {
                findings.push((
                    w[1].digest.clone(),
                    format!(
                        "role {:?} comes after role {:?}; index.json lists the bundle artifact, then images, then referrers, then file sets",
                        role_of(&w[1]),
                        role_of(&w[0])
                    ),
                ));
            }
        }
        for d in manifests.iter().filter(|d| role_of(d) == role::REFERRER) {
            match CarriedReferrer::from_descriptor(d) {
                Err(why) => findings.push((d.digest.clone(), format!("referrer: {why}"))),
                Ok(r) if !images.contains(r.referrer_of.as_str()) => findings.push((
                    d.digest.clone(),
                    format!(
                        "referrer of {:?}, which is not an image of this bundle; hint: the bundle was edited or built wrongly, rebuild it",
                        r.referrer_of
                    ),
                )),
                Ok(_) => {}
            }
        }
        for (digest, message) in findings {
            self.find(FindingKind::BadIndex, Some(&digest), None, at, message);
        }
    }

    /// A verified manifest that is a top-level referrer: its own `subject`
    /// must be the one its descriptor announces (absent only for cosign's
    /// tag artifacts, which have none).
    pub(super) fn referrer_manifest(&mut self, digest: &Digest, bytes: &[u8], h_off: u64) {
        let Some(r) = self
            .report
            .referrers()
            .find(|t| t.descriptor.digest == *digest)
            .and_then(|t| CarriedReferrer::from_descriptor(&t.descriptor).ok())
        else {
            return;
        };
        let named = ReferrerFacts::of(bytes).and_then(|f| f.subject.map(|s| s.digest));
        let message = match named {
            Some(s) if s == r.subject => return,
            None if r.tag.is_some() => return,
            Some(s) => format!(
                "referrer manifest names subject {s}, but index.json says it refers to {}",
                r.subject
            ),
            None => format!(
                "referrer manifest has no subject, but index.json says it refers to {} (only cosign's tag artifacts may lack one)",
                r.subject
            ),
        };
        self.find(
            FindingKind::BadManifest,
            Some(digest),
            None,
            h_off,
            format!("{message}; hint: the bundle was edited or built wrongly, rebuild it"),
        );
    }

    /// End-of-pass rules: each subject is a manifest of its image, and the
    /// bundle config lists the referrers `index.json` carries.
    pub(super) fn finish_referrers(&mut self) {
        let end = self.report.total_bytes;
        let carried: Vec<CarriedReferrer> = self
            .report
            .referrers()
            .filter_map(|t| CarriedReferrer::from_descriptor(&t.descriptor).ok())
            .collect();
        if carried.is_empty() && !self.config_lists_referrers() {
            return;
        }
        // The manifests of each image: its root and what its indexes list,
        // then, until nothing changes, its referrers (nested ones refer to
        // referrers).
        let mut of_image: HashMap<String, HashSet<Digest>> = HashMap::new();
        for img in self.report.images() {
            let mut set = HashSet::new();
            let mut todo = vec![img.descriptor.digest.clone()];
            while let Some(d) = todo.pop() {
                if set.insert(d.clone()) {
                    todo.extend(self.index_children.get(&d).into_iter().flatten().cloned());
                }
            }
            of_image.insert(img.reference.clone(), set);
        }
        let mut placed: HashSet<&Digest> = HashSet::new();
        loop {
            let before = placed.len();
            for r in &carried {
                if let Some(set) = of_image.get_mut(&r.referrer_of) {
                    if set.contains(&r.subject) && !placed.contains(&r.digest) {
                        placed.insert(&r.digest);
                        set.insert(r.digest.clone());
                    }
                }
            }
            if placed.len() == before {
                break;
            }
        }
        let undecidable = !self.damaged.is_empty();
        let mut findings = Vec::new();
        for r in carried.iter().filter(|r| !placed.contains(&r.digest)) {
            if undecidable || !of_image.contains_key(&r.referrer_of) {
                continue; // a damaged manifest hides its children; the index rule named the rest
            }
            let subject_is_manifest = self
                .announced
                .get(&r.subject)
                .is_some_and(|a| ManifestKind::of(&a.media_type).is_some());
            let why = if subject_is_manifest {
                format!(
                    "refers to {}, a manifest of another image than {:?}, the image it is carried for",
                    r.subject, r.referrer_of
                )
            } else {
                format!(
                    "refers to {}, which is not a manifest of this bundle",
                    r.subject
                )
            };
            findings.push((
                r.digest.clone(),
                format!("referrer {why}; hint: the bundle was edited or built wrongly, rebuild it"),
            ));
        }
        for (d, m) in findings {
            self.find(FindingKind::BadIndex, Some(&d), Some(INDEX_PATH), end, m);
        }
        self.config_agrees(&carried, end);
    }

    fn config_lists_referrers(&self) -> bool {
        self.report
            .config
            .as_ref()
            .is_some_and(|c| c.images.iter().any(|i| !i.referrers.is_empty()))
    }

    /// The bundle config's `referrers` name the same referrers, with the
    /// same subject, tag and image, as `index.json`.
    fn config_agrees(&mut self, carried: &[CarriedReferrer], end: u64) {
        let Some(config) = &self.report.config else {
            return;
        };
        let Some(config_digest) = self.config_digest.clone() else {
            return;
        };
        let key = |image: &str, digest: &Digest, subject: &Digest, tag: &Option<String>| {
            (
                image.to_string(),
                digest.clone(),
                subject.clone(),
                tag.clone(),
            )
        };
        let in_config: BTreeSet<_> = config
            .images
            .iter()
            .flat_map(|i| {
                i.referrers
                    .iter()
                    .map(|r| key(&i.reference, &r.digest, &r.subject, &r.tag))
            })
            .collect();
        let in_index: BTreeSet<_> = carried
            .iter()
            .map(|r| key(&r.referrer_of, &r.digest, &r.subject, &r.tag))
            .collect();
        let mut findings = Vec::new();
        for (image, digest, subject, _) in in_config.difference(&in_index) {
            findings.push(format!("bundle config lists referrer {digest} of {subject} for image {image:?}, which index.json does not carry as such"));
        }
        for (image, digest, subject, _) in in_index.difference(&in_config) {
            findings.push(format!("index.json carries referrer {digest} of {subject} for image {image:?}, which the bundle config does not list"));
        }
        for m in findings {
            self.find(
                FindingKind::BadManifest,
                Some(&config_digest),
                None,
                end,
                format!("{m}; hint: the bundle was edited or built wrongly, rebuild it"),
            );
        }
    }
}
