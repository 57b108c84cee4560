//! `BundleInfo`: the bundle-level annotations of `index.json` (spec 3.1), as
//! a typed struct, and RFC 3339 second-precision UTC timestamps.
//!
//! Parsing here is strict (one spelling per value) so the signed bytes have a
//! single meaning; it never decides whether the bundle is trusted or fresh.

use std::collections::BTreeMap;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{annotation as ann, FormatError, FORMAT_VERSION};

const RFC3339_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Format a time as `2026-11-26T00:00:00Z` (UTC, whole seconds).
pub fn format_time(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0)
        .unwrap_or(utc)
        .format(RFC3339_UTC)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Parse exactly the form [`format_time`] writes.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(s, RFC3339_UTC)
        .ok()
        .map(|p| p.assume_utc())
}

/// Serde helper for timestamps in the bundle config.
pub mod serde_time {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid time {s:?}: expected 2026-11-26T00:00:00Z"))
        })
    }
}

/// What the bundle-level annotations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    pub created: OffsetDateTime,
    pub expires: Option<OffsetDateTime>,
    /// `sha256:<hex>` of the signing key's SubjectPublicKeyInfo DER.
    pub key_fingerprint: String,
    /// Platforms images were pruned to; empty when not pruned.
    pub platforms: Vec<String>,
    pub delta: bool,
}

impl BundleInfo {
    /// `created` as Unix seconds: the mtime of every tar header.
    pub fn mtime(&self) -> u64 {
        self.created.unix_timestamp().max(0) as u64
    }

    /// The annotations for `index.json`.
    pub fn to_annotations(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(ann::FORMAT, FORMAT_VERSION.to_string());
        put(ann::NAME, self.name.clone());
        put(ann::VERSION, self.version.clone());
        put(ann::CHANNEL, self.channel.clone());
        put(ann::SEQUENCE, self.sequence.to_string());
        put(ann::CREATED, format_time(self.created));
        if let Some(e) = self.expires {
            put(ann::EXPIRES, format_time(e));
        }
        put(ann::KEY_FINGERPRINT, self.key_fingerprint.clone());
        if !self.platforms.is_empty() {
            put(ann::PLATFORMS, self.platforms.join(","));
        }
        if self.delta {
            put(ann::DELTA, "true".to_string());
        }
        m
    }

    /// Read the annotations of `index.json`.
    pub fn from_annotations(m: &BTreeMap<String, String>) -> Result<Self, FormatError> {
        const DOC: &str = "index.json";
        let get = |key: &'static str| {
            m.get(key)
                .map(String::as_str)
                .ok_or(FormatError::MissingAnnotation { document: DOC, key })
        };
        let bad = |key: &'static str, value: &str, reason: &str| FormatError::BadAnnotation {
            document: DOC,
            key,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let format = get(ann::FORMAT)?;
        if format != FORMAT_VERSION {
            return Err(FormatError::UnsupportedFormat {
                document: DOC,
                found: format.to_string(),
            });
        }
        let seq = get(ann::SEQUENCE)?;
        let sequence = match seq.parse::<u64>() {
            Ok(n) if n.to_string() == seq => n,
            _ => return Err(bad(ann::SEQUENCE, seq, "expected a decimal integer")),
        };
        let time_of = |key: &'static str, v: &str| {
            parse_time(v)
                .ok_or_else(|| bad(key, v, "expected RFC 3339 UTC like 2026-11-26T00:00:00Z"))
        };
        let created = time_of(ann::CREATED, get(ann::CREATED)?)?;
        let expires = match m.get(ann::EXPIRES) {
            Some(v) => Some(time_of(ann::EXPIRES, v)?),
            None => None,
        };
        let fp = get(ann::KEY_FINGERPRINT)?;
        if fp.parse::<crate::Digest>().is_err() {
            return Err(bad(ann::KEY_FINGERPRINT, fp, "expected sha256:<64 hex>"));
        }
        let platforms = match m.get(ann::PLATFORMS) {
            Some(v) if v.is_empty() => return Err(bad(ann::PLATFORMS, v, "empty list")),
            Some(v) => v.split(',').map(str::to_string).collect(),
            None => Vec::new(),
        };
        let delta = match m.get(ann::DELTA).map(String::as_str) {
            None => false,
            Some("true") => true,
            Some(v) => return Err(bad(ann::DELTA, v, "expected \"true\" or no annotation")),
        };
        Ok(Self {
            name: get(ann::NAME)?.to_string(),
            version: get(ann::VERSION)?.to_string(),
            channel: get(ann::CHANNEL)?.to_string(),
            sequence,
            created,
            expires,
            key_fingerprint: fp.to_string(),
            platforms,
            delta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> BundleInfo {
        BundleInfo {
            name: "atp".into(),
            version: "1.4.0".into(),
            channel: "stable".into(),
            sequence: 7,
            created: datetime!(2026-11-26 00:00:00 UTC),
            expires: Some(datetime!(2027-01-01 12:30:00 UTC)),
            key_fingerprint: crate::Digest::of(b"k").to_string(),
            platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
            delta: true,
        }
    }

    #[test]
    fn annotations_round_trip() {
        let info = sample();
        let m = info.to_annotations();
        assert_eq!(m[ann::CREATED], "2026-11-26T00:00:00Z");
        assert_eq!(m[ann::PLATFORMS], "linux/amd64,linux/arm64/v8");
        assert_eq!(BundleInfo::from_annotations(&m).unwrap(), info);
        assert_eq!(info.mtime(), 1_795_651_200);
    }

    #[test]
    fn refuses_sloppy_values() {
        let mut m = sample().to_annotations();
        m.insert(ann::SEQUENCE.into(), "07".into());
        assert!(matches!(
            BundleInfo::from_annotations(&m),
            Err(FormatError::BadAnnotation {
                key: ann::SEQUENCE,
                ..
            })
        ));
        let mut m = sample().to_annotations();
        m.remove(ann::NAME);
        assert!(BundleInfo::from_annotations(&m)
            .unwrap_err()
            .to_string()
            .contains("missing annotation dev.atp-offline.bundle.name"));
        let mut m = sample().to_annotations();
        m.insert(ann::FORMAT.into(), "2".into());
        assert!(matches!(
            BundleInfo::from_annotations(&m),
            Err(FormatError::UnsupportedFormat { .. })
        ));
    }
}
