//! `FILE.tar.volumes.json` (spec section 9): which volumes make up a bundle,
//! each one's name, size, sha256 and chunk hashes, and what they hold (the
//! tar's size and sha256, its `index.json` digest, the compression). Signed
//! like `index.json`: `FILE.tar.volumes.json.sig` holds base64 DER ECDSA
//! over the exact bytes of the file.
//!
//! Also the names (`NAME.001`, ...) and `--split-size` parsing. Pure data:
//! this module never touches the file system.

use p256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::sign::SignatureError;
use crate::Digest;

/// `format` value of a `volumes.json` that lists volumes only.
pub const VOLUMES_FORMAT: &str = "atp-offline-volumes/1";
/// `format` value of a `volumes.json` that also lists a carried installer
/// (`create --with-installer`). A set without one is still written as
/// [`VOLUMES_FORMAT`], byte for byte as before, so older readers read it.
pub const VOLUMES_FORMAT_V2: &str = "atp-offline-volumes/2";
/// Suffix of the volumes file, appended to the stream's name.
pub const VOLUMES_SUFFIX: &str = ".volumes.json";
/// Suffix of its signature, appended to the volumes file's name.
pub const SIG_SUFFIX: &str = ".sig";
/// Largest `volumes.json` a reader accepts.
pub const MAX_VOLUMES_SIZE: u64 = 16 << 20;
/// `--split-size fat32`: the largest file FAT32 holds (4 GiB - 1).
pub const FAT32_MAX: u64 = 4_294_967_295;
/// Each volume is hashed in about this many chunks, so a check can tell a
/// volume damaged in one place from one that belongs to another bundle.
pub const TARGET_CHUNKS: u64 = 16;
/// Smallest chunk.
pub const MIN_CHUNK: u64 = 4096;

/// How the tar is stored in the volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// The volumes are the tar's bytes, cut.
    None,
    /// The volumes are a seekable zstd stream of the tar, cut.
    ZstdSeekable,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeEntry {
    /// File name (no directory), e.g. `demo.tar.002`.
    pub name: String,
    pub size: u64,
    pub sha256: Digest,
    /// Chunk size of `chunks` (the last chunk may be shorter).
    pub chunk_size: u64,
    /// sha256 of each chunk, in order.
    pub chunks: Vec<Digest>,
}

/// The content of `volumes.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumesFile {
    /// Always [`VOLUMES_FORMAT`].
    pub format: String,
    /// Name of the stream the volumes cut (`demo.tar` or `demo.tar.zst`).
    pub stream: String,
    pub compression: Compression,
    /// Size of the stream: the sum of the volume sizes.
    pub stream_size: u64,
    /// The uncompressed tar: size and sha256 (the payload digest).
    pub tar_size: u64,
    pub tar_sha256: Digest,
    /// Digest of the bundle's `index.json`, as `atp-installer verify` prints.
    pub index_digest: Digest,
    /// Largest volume size asked for (`--split-size`); `None` when not split.
    pub split_size: Option<u64>,
    pub volumes: Vec<VolumeEntry>,
    /// The installer binary carried beside the volumes (format /2 only):
    /// its file name, size, sha256 and chunks, checked like a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<VolumeEntry>,
}

/// Why a `volumes.json` was refused.
#[derive(Debug, thiserror::Error)]
pub enum VolumesError {
    #[error("not a volumes.json: {reason}; hint: pass the FILE.tar.volumes.json written by `atp-bundler create --split-size/--compress`")]
    Parse { reason: String },
    #[error("volumes.json is inconsistent: {reason}")]
    Inconsistent { reason: String },
    #[error("volumes.json signature: {0}")]
    Signature(#[from] SignatureError),
}

impl VolumesFile {
    /// The canonical bytes written to disk (and signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::format::json::to_canonical_vec(self).expect("volumes.json serializes")
    }

    /// Signature text for `volumes.json.sig` over `bytes`.
    pub fn sign(bytes: &[u8], key: &SigningKey) -> String {
        crate::sign::sign(key, bytes)
    }

    /// Check `sig` over the exact `bytes`, then parse them.
    pub fn verify_and_parse(
        bytes: &[u8],
        sig: &str,
        key: &VerifyingKey,
    ) -> Result<Self, VolumesError> {
        crate::sign::verify(key, bytes, sig.trim_end_matches('\n'))?;
        Self::parse(bytes)
    }

    /// Parse and check internal consistency (no signature check).
    pub fn parse(bytes: &[u8]) -> Result<Self, VolumesError> {
        let v: VolumesFile = serde_json::from_slice(bytes).map_err(|e| VolumesError::Parse {
            reason: e.to_string(),
        })?;
        v.check()?;
        Ok(v)
    }

    fn check(&self) -> Result<(), VolumesError> {
        let bad = |reason: String| Err(VolumesError::Inconsistent { reason });
        match (self.format.as_str(), &self.installer) {
            (VOLUMES_FORMAT, None) | (VOLUMES_FORMAT_V2, Some(_)) => {}
            (VOLUMES_FORMAT, Some(_)) => {
                return bad(format!(
                    "format {VOLUMES_FORMAT:?} lists an installer; only {VOLUMES_FORMAT_V2:?} may"
                ))
            }
            (VOLUMES_FORMAT_V2, None) => {
                return bad(format!(
                    "format {VOLUMES_FORMAT_V2:?} without an installer; such a set is written as {VOLUMES_FORMAT:?}"
                ))
            }
            (other, _) => {
                return bad(format!(
                    "format {other:?}, this installer reads {VOLUMES_FORMAT:?} and {VOLUMES_FORMAT_V2:?}"
                ))
            }
        }
        if self.volumes.is_empty() {
            return bad("no volumes".into());
        }
        let mut sum = 0u64;
        for v in &self.volumes {
            if !is_plain_name(&v.name) {
                return bad(format!("volume name {:?} is not a plain file name", v.name));
            }
            if v.chunk_size == 0 || v.chunks.len() as u64 != v.size.div_ceil(v.chunk_size) {
                return bad(format!("volume {}: chunk list does not cover it", v.name));
            }
            sum = sum
                .checked_add(v.size)
                .ok_or_else(|| VolumesError::Inconsistent {
                    reason: "sizes overflow".into(),
                })?;
        }
        if sum != self.stream_size {
            return bad(format!(
                "volume sizes add up to {sum}, stream_size says {}",
                self.stream_size
            ));
        }
        if self.compression == Compression::None && self.tar_size != self.stream_size {
            return bad("uncompressed, but tar_size differs from stream_size".into());
        }
        if !is_plain_name(&self.stream) {
            return bad(format!(
                "stream name {:?} is not a plain file name",
                self.stream
            ));
        }
        if let Some(i) = &self.installer {
            if !is_plain_name(&i.name) {
                return bad(format!(
                    "installer name {:?} is not a plain file name",
                    i.name
                ));
            }
            if self.volumes.iter().any(|v| v.name == i.name) || i.name == self.stream {
                return bad(format!("installer name {:?} is a volume's name", i.name));
            }
            if i.chunk_size == 0 || i.chunks.len() as u64 != i.size.div_ceil(i.chunk_size) {
                return bad(format!(
                    "installer {}: chunk list does not cover it",
                    i.name
                ));
            }
        }
        Ok(())
    }
}

/// A name with no directory part, not `.`/`..`, and nothing odd in it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

/// Name of volume `i` (0-based) of `stream`: `stream.001`, ...
pub fn volume_name(stream: &str, i: usize) -> String {
    format!("{stream}.{:03}", i + 1)
}

/// If `name` looks like a volume (`X.001`), the stream name `X`.
pub fn stream_of_volume(name: &str) -> Option<&str> {
    let (stem, num) = name.rsplit_once('.')?;
    (num.len() >= 3 && num.bytes().all(|b| b.is_ascii_digit()) && !stem.is_empty()).then_some(stem)
}

/// Chunk size used for a volume of `size` bytes.
pub fn chunk_size_for(size: u64) -> u64 {
    let raw = size.div_ceil(TARGET_CHUNKS).max(MIN_CHUNK);
    raw.div_ceil(MIN_CHUNK) * MIN_CHUNK
}

/// Why a `--split-size` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--split-size {given:?}: {reason}; hint: use bytes (1000000), a unit (700MB, 4GiB) or `fat32`"
)]
pub struct SplitSizeError {
    pub given: String,
    pub reason: String,
}

/// Parse `--split-size`: plain bytes, `K/M/G/T` with `B` (powers of 1000)
/// or `iB` (powers of 1024), or `fat32` (4294967295).
pub fn parse_split_size(text: &str) -> Result<u64, SplitSizeError> {
    let err = |reason: &str| SplitSizeError {
        given: text.to_string(),
        reason: reason.to_string(),
    };
    let t = text.trim();
    if t.eq_ignore_ascii_case("fat32") {
        return Ok(FAT32_MAX);
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(err("does not start with a number"));
    }
    let n: u64 = t[..digits].parse().map_err(|_| err("number too large"))?;
    let unit = t[digits..].trim();
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KB" | "kB" => 1000,
        "M" | "MB" => 1000_u64.pow(2),
        "G" | "GB" => 1000_u64.pow(3),
        "T" | "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(err("unknown unit")),
    };
    let v = n.checked_mul(mult).ok_or_else(|| err("too large"))?;
    if v < MIN_CHUNK {
        return Err(err("smaller than 4096 bytes"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sizes() {
        assert_eq!(parse_split_size("4GiB"), Ok(4_294_967_296));
        assert_eq!(parse_split_size("700MB"), Ok(700_000_000));
        assert_eq!(parse_split_size("123456"), Ok(123_456));
        assert_eq!(parse_split_size("fat32"), Ok(4_294_967_295));
        assert_eq!(parse_split_size("64KiB"), Ok(65_536));
        assert!(parse_split_size("12 parsecs").is_err());
        assert!(parse_split_size("GiB").is_err());
        assert!(parse_split_size("100").is_err());
        assert!(parse_split_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(volume_name("a.tar", 0), "a.tar.001");
        assert_eq!(volume_name("a.tar.zst", 11), "a.tar.zst.012");
        assert_eq!(stream_of_volume("a.tar.012"), Some("a.tar"));
        assert_eq!(stream_of_volume("a.tar"), None);
        assert_eq!(stream_of_volume("a.tar.zst"), None);
    }

    #[test]
    fn signed_roundtrip_and_tamper() {
        let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let d = Digest::of(b"x");
        let v = VolumesFile {
            format: VOLUMES_FORMAT.into(),
            stream: "b.tar".into(),
            compression: Compression::None,
            stream_size: 5000,
            tar_size: 5000,
            tar_sha256: d.clone(),
            index_digest: d.clone(),
            split_size: Some(4096),
            volumes: vec![
                VolumeEntry {
                    name: "b.tar.001".into(),
                    size: 4096,
                    sha256: d.clone(),
                    chunk_size: 4096,
                    chunks: vec![d.clone()],
                },
                VolumeEntry {
                    name: "b.tar.002".into(),
                    size: 904,
                    sha256: d.clone(),
                    chunk_size: 4096,
                    chunks: vec![d.clone()],
                },
            ],
            installer: None,
        };
        let bytes = v.to_bytes();
        let sig = VolumesFile::sign(&bytes, &key);
        assert_eq!(
            VolumesFile::verify_and_parse(&bytes, &sig, key.verifying_key()).unwrap(),
            v
        );
        let mut tampered = bytes.clone();
        let i = tampered.iter().position(|&b| b == b'5').unwrap();
        tampered[i] = b'6';
        assert!(matches!(
            VolumesFile::verify_and_parse(&tampered, &sig, key.verifying_key()),
            Err(VolumesError::Signature(SignatureError::Mismatch))
        ));
        let mut bad = v.clone();
        bad.volumes[1].name = "../x".into();
        assert!(VolumesFile::parse(&bad.to_bytes()).is_err());
    }

    #[test]
    fn an_installer_is_listed_only_in_format_2() {
        let d = Digest::of(b"x");
        let entry = |name: &str| VolumeEntry {
            name: name.into(),
            size: 10,
            sha256: d.clone(),
            chunk_size: 4096,
            chunks: vec![d.clone()],
        };
        let v1 = VolumesFile {
            format: VOLUMES_FORMAT.into(),
            stream: "b.tar".into(),
            compression: Compression::None,
            stream_size: 10,
            tar_size: 10,
            tar_sha256: d.clone(),
            index_digest: d.clone(),
            split_size: None,
            volumes: vec![entry("b.tar")],
            installer: None,
        };
        // Without an installer, no trace of the field: older readers read it.
        assert!(!String::from_utf8(v1.to_bytes())
            .unwrap()
            .contains("installer"));
        assert_eq!(VolumesFile::parse(&v1.to_bytes()).unwrap(), v1);
        let v2 = VolumesFile {
            format: VOLUMES_FORMAT_V2.into(),
            installer: Some(entry("atp-installer")),
            ..v1.clone()
        };
        assert_eq!(VolumesFile::parse(&v2.to_bytes()).unwrap(), v2);
        for bad in [
            VolumesFile {
                format: VOLUMES_FORMAT.into(),
                ..v2.clone()
            },
            VolumesFile {
                installer: None,
                ..v2.clone()
            },
            VolumesFile {
                installer: Some(entry("b.tar")),
                ..v2.clone()
            },
            VolumesFile {
                installer: Some(entry("../atp-installer")),
                ..v2.clone()
            },
        ] {
            assert!(VolumesFile::parse(&bad.to_bytes()).is_err(), "{bad:?}");
        }
    }
}
