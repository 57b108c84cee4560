//! Where a carried referrer lands at the site: the one rule `install`,
//! `serve` (through `install`'s plan) and `sync` share.
//!
//! A referrer lands in every repository that holds the manifest it refers
//! to: the repository of the image that brought it (`first`), then every
//! other repository whose image copy holds its subject (one image under two
//! names: the referrer is carried once, both names get it). A nested
//! referrer (a signature of an SBOM) follows the referrer it refers to, so
//! each placed referrer is recorded as held where it was placed.
//!
//! Pure: reads the planned copies only, never a registry.

use std::collections::HashMap;

use atp_bundle::Digest;

use crate::copy::ImageCopy;
use crate::reference::Repository;

/// Which repositories hold each manifest: every manifest of the image
/// copies it was built from, then each referrer as it is placed.
#[derive(Debug, Clone, Default)]
pub struct Holders {
    by_manifest: HashMap<Digest, Vec<Repository>>,
}

impl Holders {
    /// The repositories of `copies` (the images, before any referrer) that
    /// hold each of their manifests, each repository once, in copy order.
    pub fn new(copies: &[ImageCopy]) -> Self {
        let mut by_manifest: HashMap<Digest, Vec<Repository>> = HashMap::new();
        for c in copies {
            for (d, _) in &c.manifests {
                let repos = by_manifest.entry(d.digest.clone()).or_default();
                if !repos.contains(&c.target) {
                    repos.push(c.target.clone());
                }
            }
        }
        Self { by_manifest }
    }

    /// Where a referrer of `subject` brought by the image in `first` lands:
    /// `first`, then every other repository holding `subject`, each once.
    pub fn targets_for(&self, first: &Repository, subject: &Digest) -> Vec<Repository> {
        let mut targets = vec![first.clone()];
        for repo in self.by_manifest.get(subject).into_iter().flatten() {
            if !targets.contains(repo) {
                targets.push(repo.clone());
            }
        }
        targets
    }

    /// Record that the referrer `root` is held by `targets` (where it was
    /// placed), so a referrer of it follows it there.
    pub fn record(&mut self, root: &Digest, targets: &[Repository]) {
        self.by_manifest.insert(root.clone(), targets.to_vec());
    }

    /// [`Holders::targets_for`], then [`Holders::record`] of `root` there:
    /// place one referrer, in bundle order (a subject before its referrers).
    pub fn place(
        &mut self,
        first: &Repository,
        subject: &Digest,
        root: &Digest,
    ) -> Vec<Repository> {
        let targets = self.targets_for(first, subject);
        self.record(root, &targets);
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_bundle::format::{media, Descriptor};

    fn repo(name: &str) -> Repository {
        Repository::new("site.example", name).unwrap()
    }

    fn image(target: &str, manifests: &[&[u8]]) -> ImageCopy {
        let manifests: Vec<(Descriptor, Vec<u8>)> = manifests
            .iter()
            .map(|b| (Descriptor::of_bytes(media::OCI_MANIFEST, b), b.to_vec()))
            .collect();
        ImageCopy {
            source: target.to_string(),
            target: repo(target),
            tag: Some("v1".into()),
            root: manifests.last().unwrap().0.clone(),
            manifests,
            blobs: Vec::new(),
        }
    }

    fn digest(bytes: &[u8]) -> Digest {
        Descriptor::of_bytes(media::OCI_MANIFEST, bytes).digest
    }

    #[test]
    fn a_referrer_lands_in_every_repository_holding_its_subject_first_its_own() {
        // One image under two names, a third image that shares only a child
        // manifest (an index's platform manifest) with them.
        let copies = [
            image("a", &[b"child", b"root"]),
            image("b", &[b"child", b"root"]),
            image("c", &[b"child", b"other"]),
            image("a", &[b"root"]),
        ];
        let mut h = Holders::new(&copies);
        assert_eq!(
            h.targets_for(&repo("b"), &digest(b"root")),
            vec![repo("b"), repo("a")],
            "the image that brought it first, each repository once"
        );
        assert_eq!(
            h.targets_for(&repo("a"), &digest(b"child")),
            vec![repo("a"), repo("b"), repo("c")]
        );
        assert_eq!(
            h.targets_for(&repo("c"), &digest(b"unknown")),
            vec![repo("c")],
            "a subject no copy holds: only the image that brought it"
        );

        // A nested referrer follows the referrer it refers to.
        let sbom = digest(b"sbom");
        let placed = h.place(&repo("a"), &digest(b"root"), &sbom);
        assert_eq!(placed, vec![repo("a"), repo("b")]);
        assert_eq!(h.targets_for(&repo("a"), &sbom), vec![repo("a"), repo("b")]);
        assert_eq!(
            h.targets_for(&repo("c"), &sbom),
            vec![repo("c"), repo("a"), repo("b")]
        );
    }

    #[test]
    fn record_replaces_what_was_held() {
        let copies = [image("a", &[b"root"])];
        let mut h = Holders::new(&copies);
        h.record(&digest(b"root"), &[repo("z")]);
        assert_eq!(
            h.targets_for(&repo("a"), &digest(b"root")),
            vec![repo("a"), repo("z")]
        );
    }
}
