//! The blob graph, once `index.json` is trusted: announce descriptors,
//! check each blob's size, digest and depth-first position, and report what
//! is missing at the end; `content` parses what a verified manifest or the
//! bundle config says.
//!
//! Only content whose digest held is ever parsed; nothing here reads or
//! writes files.

use std::io::Read;

use crate::digest::Hasher;
use crate::format::info::format_time;
use crate::format::ustar::BLOCK;
use crate::format::{
    annotation as ann, json, media, role, BundleInfo, Descriptor, ImageIndex, ManifestKind,
    INDEX_PATH, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, OCI_LAYOUT_PATH,
};
use crate::Digest;

use super::{Announced, BlobLocation, FindingKind, Stop, TopLevel, Verifier, VisitBlob};

mod content;

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    pub(super) fn trust_index(&mut self, bytes: &[u8], at: u64) {
        let bad = |me: &mut Self, msg: String| {
            me.find(FindingKind::BadIndex, None, Some(INDEX_PATH), at, msg);
        };
        let index: ImageIndex = match serde_json::from_slice(bytes) {
            Ok(i) => i,
            Err(e) => return bad(self, format!("not an OCI image index: {e}")),
        };
        let canonical = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| json::to_canonical_vec(&v).ok());
        if canonical.as_deref() != Some(bytes) {
            bad(
                self,
                "index.json is not canonical JSON (sorted keys, no white space)".into(),
            );
        }
        if index.schema_version != 2 || index.media_type.as_deref() != Some(media::OCI_INDEX) {
            bad(
                self,
                format!(
                    "expected schemaVersion 2 and mediaType {}",
                    media::OCI_INDEX
                ),
            );
        }
        match BundleInfo::from_annotations(&index.annotations) {
            Ok(info) => {
                if let Some(m) = self.mtime.filter(|m| *m != info.mtime()) {
                    self.find(
                        FindingKind::NonCanonicalHeader,
                        None,
                        Some(OCI_LAYOUT_PATH),
                        0,
                        format!(
                            "header mtime {m} is not the bundle's created time {}",
                            info.mtime()
                        ),
                    );
                }
                if let Some(exp) = info.expires.filter(|e| *e <= self.now) {
                    self.find(
                        FindingKind::Expired,
                        None,
                        Some(INDEX_PATH),
                        at,
                        format!("bundle expired at {} (now {}); hint: ask the publisher for a newer bundle on channel {:?}", format_time(exp), format_time(self.now), info.channel),
                    );
                }
                self.report.info = Some(info);
            }
            Err(e) => bad(self, e.to_string()),
        }
        for (i, d) in index.manifests.iter().enumerate() {
            let r = d.annotation(ann::ROLE).unwrap_or_default().to_string();
            if i == 0 {
                if r != role::BUNDLE || d.artifact_type.as_deref() != Some(media::BUNDLE_ARTIFACT) {
                    bad(
                        self,
                        "manifests[0] must be the bundle artifact (role bundle)".into(),
                    );
                }
            } else if ![role::IMAGE, role::REFERRER, role::FILES].contains(&r.as_str()) {
                bad(
                    self,
                    format!("manifests[{i}] has role {r:?}, expected image, referrer or files"),
                );
            }
            if r != role::REFERRER && d.annotation(ann::REF_NAME).is_none_or(str::is_empty) {
                bad(
                    self,
                    format!(
                        "manifests[{i}] ({}) has no {} annotation",
                        d.digest,
                        ann::REF_NAME
                    ),
                );
            }
            if ManifestKind::of(&d.media_type).is_none() {
                self.find(
                    FindingKind::BadIndex,
                    Some(&d.digest),
                    None,
                    at,
                    format!("unsupported manifest media type {}", d.media_type),
                );
                continue;
            }
            self.report.top_level.push(TopLevel {
                reference: d.annotation(ann::REF_NAME).unwrap_or_default().to_string(),
                role: r,
                descriptor: d.clone(),
            });
            self.announce(d, false, INDEX_PATH, at);
        }
        self.referrers_in_index(&index.manifests, at);
        let order: Vec<Digest> = index
            .manifests
            .iter()
            .rev()
            .map(|d| d.digest.clone())
            .collect();
        self.stack.extend(order);
        self.report.index = Some(index);
    }

    /// Record what `parent` (whose header is at `at`) says about a blob.
    /// Every descriptor of one digest must agree with the first on the size,
    /// and on the media type whenever either names a manifest or index (the
    /// type decides how the blob is parsed and pushed): install acts on each
    /// descriptor, so a disagreement the verifier let through would surface
    /// there. Layer and config types may differ (the Docker and OCI names of
    /// the same gzip layer); only their bytes are pushed.
    pub(super) fn announce(&mut self, d: &Descriptor, omittable: bool, parent: &str, at: u64) {
        let Some(first) = self.announced.get(&d.digest) else {
            self.announce_order.push(d.digest.clone());
            self.announced.insert(
                d.digest.clone(),
                Announced {
                    size: d.size,
                    media_type: d.media_type.clone(),
                    omittable,
                    parent: parent.to_string(),
                },
            );
            return;
        };
        let types_matter = ManifestKind::of(&first.media_type).is_some()
            || ManifestKind::of(&d.media_type).is_some();
        let mut now = Vec::new();
        let mut before = Vec::new();
        if first.size != d.size {
            now.push(format!("{} bytes", d.size));
            before.push(format!("{} bytes", first.size));
        }
        if types_matter && first.media_type != d.media_type {
            now.push(format!("media type {}", d.media_type));
            before.push(format!("media type {}", first.media_type));
        }
        if now.is_empty() {
            return;
        }
        let (kind, here) = if parent == INDEX_PATH {
            (FindingKind::BadIndex, INDEX_PATH.to_string())
        } else {
            (FindingKind::BadManifest, format!("manifest {parent}"))
        };
        let there = if first.parent == INDEX_PATH {
            "an earlier descriptor in index.json".to_string()
        } else {
            format!("manifest {}", first.parent)
        };
        let message = format!(
            "descriptors of this blob disagree: {here} gives {}, but {there} gave {}; every descriptor of one digest must give the same size and type (spec section 8, item 3); hint: the bundle was edited or built wrongly, rebuild it",
            now.join(" and "),
            before.join(" and ")
        );
        self.find(kind, Some(&d.digest), None, at, message);
    }

    pub(super) fn blob(
        &mut self,
        digest: Digest,
        size: u64,
        h_off: u64,
        path: &str,
    ) -> Result<(), Stop> {
        if let Some(first) = self.seen.get(&digest) {
            let first = *first;
            self.find(
                FindingKind::DuplicateEntry,
                Some(&digest),
                None,
                h_off,
                format!("blob appears twice (first at offset {first})"),
            );
            return self.skip(size, path, h_off);
        }
        let Some(a) = self.announced.get(&digest).cloned() else {
            // Hash it anyway: if a later manifest references it, this is an
            // ordering problem rather than an extra blob.
            let mut h = Hasher::new();
            let got = self
                .input
                .stream(size, |c| h.update(c))
                .map_err(|e| self.io_finding(e))?;
            if got < size {
                return Err(self.truncated(Some(&digest), path, h_off, "blob data"));
            }
            self.padding(size, Some(&digest), path, h_off)?;
            let message = match self.damaged.first() {
                Some(m) => format!("blob is not referenced by any verified manifest before it (the damaged manifest {m} may reference it)"),
                None => "blob is not referenced by any verified manifest before it; hint: extra or misplaced content, rebuild the bundle".into(),
            };
            let i = self.find(
                FindingKind::UnreferencedBlob,
                Some(&digest),
                None,
                h_off,
                message,
            );
            if h.finish().0 == digest {
                self.early.insert(digest, (size, h_off, i));
            }
            return Ok(());
        };
        // Depth-first order. A blob found deeper in the pending stack means
        // the ones above it were skipped: that is only an ordering problem
        // if one of them turns up later (else they are reported missing).
        if let Some(pos) = self.stack.iter().rposition(|d| *d == digest) {
            for skipped in self.stack.drain(pos..).skip(1) {
                if !self.seen.contains_key(&skipped) && !self.omitted.contains(&skipped) {
                    self.skipped.insert(skipped);
                }
            }
            self.stack.pop();
        } else if self.skipped.remove(&digest) {
            self.find(
                FindingKind::WrongOrder,
                Some(&digest),
                None,
                h_off,
                "blob out of depth-first order: it comes after blobs that follow it in the order of spec section 2.1".into(),
            );
        }
        self.seen.insert(digest.clone(), h_off);
        if ManifestKind::of(&a.media_type).is_some() {
            // Until it verifies, count it as damaged.
            self.damaged.push(digest.clone());
        }
        if size != a.size {
            self.find(
                FindingKind::WrongSize,
                Some(&digest),
                None,
                h_off,
                format!(
                    "entry is {size} bytes but {} announced {}",
                    a.parent, a.size
                ),
            );
            self.visitor.rejected(&digest);
            return self.skip(size, path, h_off);
        }
        let kind = ManifestKind::of(&a.media_type);
        let is_config = self.config_digest.as_ref() == Some(&digest);
        let limit = if is_config {
            MAX_CONFIG_SIZE
        } else {
            MAX_MANIFEST_SIZE
        };
        let keep = (kind.is_some() || is_config) && size <= limit;
        if (kind.is_some() || is_config) && !keep {
            self.find(
                FindingKind::BadManifest,
                Some(&digest),
                None,
                h_off,
                format!(
                    "{} of {size} bytes is over the limit of {limit}",
                    a.media_type
                ),
            );
        }
        // Layer data read by position is hashed on another core (`parallel`).
        if !keep && kind.is_none() && self.defer(&digest, size, &a.media_type, h_off, path)? {
            return Ok(());
        }
        let mut h = Hasher::new();
        let mut kept = Vec::new();
        let visitor = &mut *self.visitor;
        let got = self
            .input
            .stream(size, |c| {
                h.update(c);
                visitor.data(&digest, c);
                if keep {
                    kept.extend_from_slice(c);
                }
            })
            .map_err(|e| self.io_finding(e))?;
        if got < size {
            self.visitor.rejected(&digest);
            return Err(self.truncated(Some(&digest), path, h_off, "blob data"));
        }
        let data_offset = h_off + BLOCK;
        self.padding(size, Some(&digest), path, h_off)?;
        let (found, _) = h.finish();
        if found != digest {
            self.visitor.rejected(&digest);
            self.find(
                FindingKind::BadDigest,
                Some(&digest),
                None,
                h_off,
                format!(
                    "content hashes to {found}; hint: the blob is corrupt, copy the bundle again"
                ),
            );
            return Ok(());
        }
        let loc = BlobLocation {
            digest: digest.clone(),
            size,
            media_type: a.media_type.clone(),
            header_offset: h_off,
            data_offset,
        };
        if self.damaged.last() == Some(&digest) {
            self.damaged.pop();
        }
        self.visitor.verified(&loc);
        self.report.blobs.push(loc);
        if !keep {
            if kind.is_some() {
                self.damaged.push(digest);
            }
            return Ok(());
        }
        if is_config {
            self.bundle_config(&digest, &kept, h_off);
        } else if kind.is_some() {
            self.manifest(&digest, &a.media_type, &kept, h_off);
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) {
        let end = self.report.total_bytes;
        for d in self.announce_order.clone() {
            if self.seen.contains_key(&d) {
                continue;
            }
            let a = self.announced[&d].clone();
            if self.omitted.contains(&d) {
                if !a.omittable {
                    self.find(
                        FindingKind::MissingBlob,
                        Some(&d),
                        None,
                        end,
                        format!(
                            "delta omits {}, but only image and file layers may be omitted",
                            a.media_type
                        ),
                    );
                }
                continue;
            }
            if let Some((size, off, i)) = self.early.get(&d).copied() {
                if !self.damaged.is_empty() {
                    // Present, but its place can't be judged: a parent is damaged.
                    continue;
                }
                if size == a.size {
                    let f = &mut self.report.findings[i];
                    f.kind = FindingKind::WrongOrder;
                    f.offset = off;
                    f.message = format!("blob appears before {}, which references it", a.parent);
                    continue;
                }
            }
            self.find(
                FindingKind::MissingBlob,
                Some(&d),
                None,
                end,
                format!("{} referenced by {} is not in the bundle; hint: the bundle is incomplete, rebuild it or copy it again", a.media_type, a.parent),
            );
        }
        self.finish_referrers();
        for d in self.report.omitted.clone() {
            if !self.announced.contains_key(&d) {
                self.find(
                    FindingKind::BadManifest,
                    Some(&d),
                    None,
                    end,
                    "delta lists an omitted blob that no manifest references".into(),
                );
            }
        }
    }
}
