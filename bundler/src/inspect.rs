//! `atp-bundler inspect`: what a bundle holds, read from its index and bundle
//! config without a key. Inspect does not verify: it says so, and points to
//! `atp-installer verify`.

use std::path::Path;

use atp_bundle::open::Bundle;
use serde::Serialize;

/// The inspect report (also the `--json` output).
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    pub created: String,
    pub expires: Option<String>,
    pub key_fingerprint: String,
    pub delta: bool,
    /// A delta: what it leaves out and the full bundle it stands for.
    pub delta_info: Option<InspectDelta>,
    pub index_digest: String,
    pub size: u64,
    pub blobs: usize,
    pub images: Vec<InspectImage>,
    pub files: Vec<InspectFile>,
    pub manifests: Option<InspectManifests>,
}

#[derive(Debug, Serialize)]
pub struct InspectDelta {
    /// Blobs left out (the site registry must hold them).
    pub omitted: usize,
    /// Their bytes, from the sizes in the carried manifests.
    pub omitted_bytes: u64,
    /// Size of the full bundle this delta stands for.
    pub full_size: u64,
    /// Index digests of the bundles it relies on.
    pub bases: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct InspectImage {
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub platforms: Vec<String>,
    pub used_by: Vec<String>,
    /// The artifacts carried that refer to it (signatures, attestations,
    /// SBOMs), in the bundle's order.
    pub referrers: Vec<InspectReferrer>,
}

#[derive(Debug, Serialize)]
pub struct InspectReferrer {
    pub digest: String,
    pub artifact_type: String,
    /// The manifest it refers to (the image, a platform manifest, or
    /// another referrer).
    pub subject: String,
    /// cosign's upstream tag, when found by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InspectFile {
    pub set: String,
    pub path: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct InspectManifests {
    pub root: String,
    pub overlay: Option<String>,
    /// The spec's `manifests.imageFields` the bundle records: where custom
    /// resources hold images the installer rewrites and gates.
    pub image_fields: Vec<atp_bundle::format::ImageField>,
}

/// Read what a bundle holds.
pub fn inspect(path: &Path) -> Result<Inspection, atp_bundle::open::OpenError> {
    inspect_media(path, &[])
}

/// Read what a bundle holds wherever it lives: a tar, a seekable zstd file,
/// or volumes (beside `path` or in `volumes_from`), read in place.
pub fn inspect_media(
    path: &Path,
    volumes_from: &[std::path::PathBuf],
) -> Result<Inspection, atp_bundle::open::OpenError> {
    let input = atp_bundle::media::BundleInput::open(path, volumes_from, None).map_err(|e| {
        atp_bundle::open::OpenError::NotABundle {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let b = Bundle::open_from(path, input.tar())?;
    let fmt = atp_bundle::format::info::format_time;
    let config = b.config.as_ref();
    let size = b.source().len();
    Ok(Inspection {
        name: b.info.name.clone(),
        version: b.info.version.clone(),
        channel: b.info.channel.clone(),
        sequence: b.info.sequence,
        created: fmt(b.info.created),
        expires: b.info.expires.map(fmt),
        key_fingerprint: b.info.key_fingerprint.clone(),
        delta: b.info.delta,
        delta_info: config.and_then(|c| c.delta.as_ref()).map(|d| {
            let sizes = crate::delta::omitted_sizes(&b);
            let omitted_bytes = sizes.iter().sum();
            // Each omitted blob would add a header and its padded data.
            let entries: u64 = sizes.iter().map(|n| 512 + n.div_ceil(512) * 512).sum();
            InspectDelta {
                omitted: d.omitted.len(),
                omitted_bytes,
                full_size: size + entries,
                bases: d.bases.iter().map(ToString::to_string).collect(),
            }
        }),
        index_digest: atp_bundle::Digest::of(&b.index_bytes).to_string(),
        size,
        blobs: b.blobs.len(),
        images: config
            .map(|c| {
                c.images
                    .iter()
                    .map(|i| InspectImage {
                        reference: i.reference.clone(),
                        digest: i.digest.to_string(),
                        media_type: i.media_type.clone(),
                        platforms: i.platforms.clone(),
                        used_by: i.used_by.clone(),
                        referrers: i
                            .referrers
                            .iter()
                            .map(|r| InspectReferrer {
                                digest: r.digest.to_string(),
                                artifact_type: r.artifact_type.clone(),
                                subject: r.subject.to_string(),
                                tag: r.tag.clone(),
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        files: config
            .map(|c| {
                c.files
                    .iter()
                    .map(|f| InspectFile {
                        set: f.set.clone(),
                        path: f.path.clone(),
                        digest: f.digest.to_string(),
                        size: f.size,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        manifests: config
            .and_then(|c| c.manifests.as_ref())
            .map(|m| InspectManifests {
                root: m.root.clone(),
                overlay: m.overlay.clone(),
                image_fields: m.image_fields.clone(),
            }),
    })
}

impl InspectImage {
    /// `3 referrers: cosign signature, application/spdx+json, ...`.
    pub fn referrers_line(&self) -> String {
        let entries: Vec<atp_bundle::format::ReferrerEntry> = self
            .referrers
            .iter()
            .filter_map(|r| {
                Some(atp_bundle::format::ReferrerEntry {
                    digest: r.digest.parse().ok()?,
                    media_type: String::new(),
                    artifact_type: r.artifact_type.clone(),
                    subject: r.subject.parse().ok()?,
                    tag: r.tag.clone(),
                })
            })
            .collect();
        atp_bundle::format::referrer::summary_line(&entries)
    }
}

impl Inspection {
    /// Human-readable form.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "bundle    {} {} ({} #{})",
            self.name, self.version, self.channel, self.sequence
        );
        let _ = writeln!(s, "created   {}", self.created);
        if let Some(e) = &self.expires {
            let _ = writeln!(s, "expires   {e}");
        }
        let _ = writeln!(s, "signed by {}", self.key_fingerprint);
        let _ = writeln!(s, "index     {}", self.index_digest);
        let _ = writeln!(
            s,
            "size      {} bytes, {} blobs{}",
            self.size,
            self.blobs,
            if self.delta { " (delta)" } else { "" }
        );
        if let Some(d) = &self.delta_info {
            let _ = writeln!(
                s,
                "delta     {} bytes stand for a full bundle of about {} bytes: {} blob(s), {} bytes left out for the site registry to supply",
                self.size, d.full_size, d.omitted, d.omitted_bytes
            );
            for b in &d.bases {
                let _ = writeln!(s, "  base    {b}");
            }
        }
        let _ = writeln!(s, "images:");
        for i in &self.images {
            let _ = writeln!(
                s,
                "  {}\n    {} [{}]",
                i.reference,
                i.digest,
                i.platforms.join(", ")
            );
            for u in &i.used_by {
                let _ = writeln!(s, "    used by {u}");
            }
            if !i.referrers.is_empty() {
                let _ = writeln!(s, "    {}", i.referrers_line());
            }
        }
        if !self.files.is_empty() {
            let _ = writeln!(s, "files:");
            for f in &self.files {
                let _ = writeln!(s, "  {}/{}  {} bytes  {}", f.set, f.path, f.size, f.digest);
            }
        }
        if let Some(m) = &self.manifests {
            let _ = writeln!(
                s,
                "manifests: {} (overlay {})",
                m.root,
                m.overlay.as_deref().unwrap_or("-")
            );
            for f in &m.image_fields {
                let _ = writeln!(s, "  image field {} {}", f.kind, f.path);
            }
        }
        let _ = writeln!(
            s,
            "not verified: run `atp-installer verify FILE --key KEY.pub` to check every byte"
        );
        s
    }
}
