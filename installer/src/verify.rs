//! `atp-installer verify`: one sequential pass over the whole bundle with the
//! trusted public key; a report of every finding, never just the first.
//!
//! Reads only. Never contacts a registry.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_bundle::media::BundleInput;
use atp_bundle::progress::Progress;
use atp_bundle::verify::{Finding, FindingKind, Report};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("public key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: atp_bundle::keys::KeyError,
    },
    #[error(
        "cannot read bundle {path}: {source}\nhint: check the path, and that the media is mounted"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Media(#[from] atp_bundle::media::MediaError),
}

/// The `--json` form of a verification.
#[derive(Debug, Serialize)]
pub struct VerifySummary {
    pub ok: bool,
    pub bundle: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    pub channel: Option<String>,
    pub sequence: Option<u64>,
    pub expires: Option<String>,
    pub key_fingerprint: Option<String>,
    pub index_digest: Option<String>,
    pub blobs_verified: usize,
    pub bytes: u64,
    /// Blobs a delta bundle relies on but does not carry.
    pub omitted: Vec<String>,
    /// Index digests of the bundles a delta relies on.
    pub delta_bases: Vec<String>,
    /// Each image with the referrers carried for it (signatures,
    /// attestations, SBOMs), from the verified bundle config.
    pub images: Vec<VerifiedImage>,
    pub findings: Vec<Finding>,
}

/// One image of a verified bundle and its referrers.
#[derive(Debug, Serialize)]
pub struct VerifiedImage {
    pub reference: String,
    pub digest: String,
    pub referrers: Vec<atp_bundle::format::ReferrerEntry>,
}

/// Verify a bundle file with the public key at `key`.
pub fn verify(
    bundle: &Path,
    key: &Path,
    now: time::OffsetDateTime,
    progress: Arc<dyn Progress>,
) -> Result<Report, VerifyError> {
    verify_input(bundle, &[], key, now, progress).map(|(report, _)| report)
}

/// Verify a bundle wherever it lives (a tar, a seekable zstd file, volumes
/// found beside `bundle` or in `volumes_from`); also returns the opened
/// input, so an install pushes from the very files that verified. Every
/// volume is checked against the signed `volumes.json` on the same pass.
pub fn verify_input(
    bundle: &Path,
    volumes_from: &[PathBuf],
    key: &Path,
    now: time::OffsetDateTime,
    progress: Arc<dyn Progress>,
) -> Result<(Report, BundleInput), VerifyError> {
    let key = atp_bundle::keys::load_public_file(key).map_err(|source| VerifyError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let input = BundleInput::open(bundle, volumes_from, Some(&key))?;
    progress.phase("verify", input.len(), 0);
    // A plain tar is read by position, its layers hashed on every core.
    let parallel = atp_bundle::verify::Parallel::default();
    let mut report = if input.kind == atp_bundle::media::input::InputKind::Tar {
        atp_bundle::verify::verify_at(input.tar(), &key, now, &parallel, &*progress)
    } else {
        let reader = ProgressReader {
            inner: input.sequential(),
            progress: progress.clone(),
        };
        let reader = std::io::BufReader::with_capacity(1 << 20, reader);
        atp_bundle::verify::verify_reader(reader, &key, now)
    };
    progress.finish_phase();
    report.findings.extend(volume_findings(&input));
    Ok((report, input))
}

/// A finding for every volume that read back bad (after a full pass).
pub fn volume_findings(input: &BundleInput) -> Vec<Finding> {
    input
        .check_volumes()
        .into_iter()
        .filter(|(_, status)| !status.is_good())
        .map(|(name, status)| Finding {
            kind: FindingKind::BadVolume,
            digest: None,
            path: Some(name.clone()),
            offset: 0,
            message: status.describe(&name),
        })
        .collect()
}

/// Summarize a report for output.
pub fn summarize(bundle: &Path, report: &Report) -> VerifySummary {
    let info = report.info.as_ref();
    VerifySummary {
        ok: report.is_ok(),
        bundle: bundle.to_path_buf(),
        name: info.map(|i| i.name.clone()),
        version: info.map(|i| i.version.clone()),
        channel: info.map(|i| i.channel.clone()),
        sequence: info.map(|i| i.sequence),
        expires: info
            .and_then(|i| i.expires)
            .map(atp_bundle::format::info::format_time),
        key_fingerprint: info.map(|i| i.key_fingerprint.clone()),
        index_digest: report.index_digest.as_ref().map(ToString::to_string),
        blobs_verified: report.blobs.len(),
        bytes: report.total_bytes,
        omitted: report.omitted.iter().map(ToString::to_string).collect(),
        delta_bases: report
            .config
            .as_ref()
            .and_then(|c| c.delta.as_ref())
            .map(|d| d.bases.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        images: report
            .config
            .iter()
            .flat_map(|c| &c.images)
            .map(|i| VerifiedImage {
                reference: i.reference.clone(),
                digest: i.digest.to_string(),
                referrers: i.referrers.clone(),
            })
            .collect(),
        findings: report.findings.clone(),
    }
}

impl VerifySummary {
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if self.ok {
            let _ = writeln!(
                s,
                "OK: {} {} ({} #{}): {} blobs, {} bytes verified, signed by {}",
                self.name.as_deref().unwrap_or("?"),
                self.version.as_deref().unwrap_or("?"),
                self.channel.as_deref().unwrap_or("?"),
                self.sequence.unwrap_or(0),
                self.blobs_verified,
                self.bytes,
                self.key_fingerprint.as_deref().unwrap_or("?")
            );
            if !self.omitted.is_empty() {
                let _ = writeln!(
                    s,
                    "delta bundle: relies on {} blob(s) the site registry must already hold (install checks them first):",
                    self.omitted.len()
                );
                for d in &self.omitted {
                    let _ = writeln!(s, "  {d}");
                }
                for b in &self.delta_bases {
                    let _ = writeln!(s, "  from base bundle {b}");
                }
            }
            let signed: Vec<&VerifiedImage> = self
                .images
                .iter()
                .filter(|i| !i.referrers.is_empty())
                .collect();
            if !signed.is_empty() {
                let _ = writeln!(s, "referrers carried (verified with the bundle):");
                for i in signed {
                    let _ = writeln!(
                        s,
                        "  {}: {}",
                        i.reference,
                        atp_bundle::format::referrer::summary_line(&i.referrers)
                    );
                }
            }
        } else {
            let _ = writeln!(
                s,
                "FAILED: {} problem(s) in {}:",
                self.findings.len(),
                self.bundle.display()
            );
            for f in &self.findings {
                let _ = writeln!(s, "  {f}");
            }
            let _ = writeln!(
                s,
                "hint: do not install this bundle; get a fresh copy from release engineering (or re-copy it from the original media)"
            );
        }
        s
    }
}

struct ProgressReader<R> {
    inner: R,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
