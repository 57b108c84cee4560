//! Referrers (spec section 4.1): the artifacts that refer to a carried image
//! (upstream signatures, attestations, SBOMs), and the few facts about their
//! documents the format needs: the `subject` a manifest names, the artifact
//! type it declares, and cosign's tag names.
//!
//! Pure: it reads bytes it is given and never decides whether a signature is
//! good (that is `crate::cosign`'s job).

use serde::Deserialize;

use super::{annotation as ann, Descriptor};
use crate::Digest;

/// The suffixes of cosign's tag convention, in the order they are looked up.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// The suffix of cosign's simple-signing signature tag.
pub const SIGNATURE_SUFFIX: &str = "sig";

/// Artifact types that count as signatures for `--referrers signatures`:
/// cosign's simple-signing payload and the sigstore bundle.
pub const SIGNATURE_TYPES: [&str; 3] = [
    super::media::COSIGN_SIMPLE_SIGNING,
    "application/vnd.dev.sigstore.bundle+json",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

/// What a referrer manifest says about itself, without parsing the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerFacts {
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub config: Option<Descriptor>,
}

impl ReferrerFacts {
    /// Read the facts from a manifest's exact bytes; `None` when they are
    /// not a JSON object with well-formed `subject` and `config` fields.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        // serde would read a struct from a JSON array too.
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        object.then(|| serde_json::from_slice(bytes).ok()).flatten()
    }

    /// The artifact type the document declares: `artifactType`, else the
    /// config's media type (OCI 1.1's rule for image manifests).
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or(self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

/// A top-level referrer descriptor of `index.json`, read: what the
/// installer needs to plan it and the verifier to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedReferrer {
    pub digest: Digest,
    pub media_type: String,
    /// The descriptor's `artifactType` (empty when absent).
    pub artifact_type: String,
    /// `dev.atp-offline.subject`.
    pub subject: Digest,
    /// `dev.atp-offline.referrer-of`: the `ref.name` of its image.
    pub referrer_of: String,
    /// `dev.atp-offline.referrer-tag`: cosign's upstream tag, if any.
    pub tag: Option<String>,
}

impl CarriedReferrer {
    /// Read a referrer descriptor's annotations; `Err` says which one is
    /// missing or malformed.
    pub fn from_descriptor(d: &Descriptor) -> Result<Self, String> {
        let subject = d
            .annotation(ann::SUBJECT)
            .ok_or_else(|| format!("no {} annotation", ann::SUBJECT))?;
        let subject: Digest = subject
            .parse()
            .map_err(|e| format!("{} {subject:?} is not a digest: {e}", ann::SUBJECT))?;
        let referrer_of = d
            .annotation(ann::REFERRER_OF)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("no {} annotation", ann::REFERRER_OF))?;
        let tag = d.annotation(ann::REFERRER_TAG).map(str::to_string);
        if let Some(t) = &tag {
            let ok = COSIGN_SUFFIXES
                .iter()
                .any(|s| *t == cosign_tag(&subject, s));
            if !ok {
                return Err(format!(
                    "{} {t:?} is not cosign's tag for its subject (sha256-<hex>.sig, .att or .sbom)",
                    ann::REFERRER_TAG
                ));
            }
        }
        Ok(Self {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            artifact_type: d.artifact_type.clone().unwrap_or_default(),
            subject,
            referrer_of: referrer_of.to_string(),
            tag,
        })
    }
}

/// What a referrer is, for people: cosign's tag kind when it was found by
/// one (`cosign signature`), else its artifact type.
pub fn kind_label(artifact_type: &str, tag: Option<&str>) -> String {
    match tag.and_then(|t| t.rsplit_once('.')).map(|(_, s)| s) {
        Some("sig") => "cosign signature".into(),
        Some("att") => "cosign attestation".into(),
        Some("sbom") => "cosign SBOM".into(),
        _ if artifact_type.is_empty() => "unknown type".into(),
        _ => artifact_type.to_string(),
    }
}

/// An image's referrers in one line, as `inspect` and `verify` print them:
/// `3 referrers: cosign signature, application/spdx+json, 2 × application/vnd.in-toto+json`
/// (kinds in first-seen order), or `no referrers`.
pub fn summary_line(entries: &[super::ReferrerEntry]) -> String {
    if entries.is_empty() {
        return "no referrers".into();
    }
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for e in entries {
        let k = kind_label(&e.artifact_type, e.tag.as_deref());
        match kinds.iter_mut().find(|(n, _)| *n == k) {
            Some((_, c)) => *c += 1,
            None => kinds.push((k, 1)),
        }
    }
    let list: Vec<String> = kinds
        .into_iter()
        .map(|(k, c)| if c == 1 { k } else { format!("{c} × {k}") })
        .collect();
    let n = entries.len();
    format!(
        "{n} referrer{}: {}",
        if n == 1 { "" } else { "s" },
        list.join(", ")
    )
}

/// Cosign's tag for an artifact of `subject`: `sha256-<hex>.<suffix>`.
pub fn cosign_tag(subject: &Digest, suffix: &str) -> String {
    format!("{}.{suffix}", fallback_tag(subject))
}

/// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.to_string().replacen(':', "-", 1)
}

/// Whether `tag` is a cosign signature tag (`sha256-<hex>.sig`).
pub fn is_signature_tag(tag: &str) -> bool {
    tag.strip_suffix(".sig")
        .is_some_and(|t| t.starts_with("sha256-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_facts() {
        let d = Digest::of(b"x");
        let hex = d.to_string()["sha256:".len()..].to_string();
        assert_eq!(cosign_tag(&d, "sig"), format!("sha256-{hex}.sig"));
        assert_eq!(fallback_tag(&d), format!("sha256-{hex}"));
        assert!(is_signature_tag(&cosign_tag(&d, "sig")));
        assert!(!is_signature_tag(&cosign_tag(&d, "att")));
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{d}","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":9}}}}"#
        );
        let f = ReferrerFacts::of(m.as_bytes()).unwrap();
        assert_eq!(f.subject.unwrap().digest, d);
        assert_eq!(f.artifact_type.as_deref(), None);
        let f = ReferrerFacts::of(m.as_bytes()).unwrap();
        assert_eq!(f.artifact_type(), Some("application/vnd.oci.empty.v1+json"));
        assert!(ReferrerFacts::of(b"[]").is_none());
    }

    #[test]
    fn summary_lines_count_kinds() {
        let e = |t: &str, tag: Option<&str>| super::super::ReferrerEntry {
            digest: Digest::of(t.as_bytes()),
            media_type: String::new(),
            artifact_type: t.into(),
            subject: Digest::of(b"s"),
            tag: tag.map(str::to_string),
        };
        assert_eq!(summary_line(&[]), "no referrers");
        let sig = format!("sha256-{}.sig", "a".repeat(64));
        assert_eq!(
            summary_line(&[
                e("application/vnd.oci.image.config.v1+json", Some(&sig)),
                e("application/spdx+json", None),
                e("application/spdx+json", None),
            ]),
            "3 referrers: cosign signature, 2 × application/spdx+json"
        );
    }
}
