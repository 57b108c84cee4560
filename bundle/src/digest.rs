//! Content digests: the one `sha256:<64 lowercase hex>` form ATP Offline accepts,
//! plus streaming hashers that check size and digest while bytes flow.
//!
//! A digest string is validated here before it is ever used in a path or URL
//! (see CVE-2024-3727): anything that is not exactly `sha256:` followed by 64
//! lowercase hex characters is refused.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A validated sha256 content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// A digest string that does not follow the accepted grammar.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {value:?}: expected sha256:<64 lowercase hex characters>")]
pub struct InvalidDigest {
    /// The offending input, truncated to 100 characters.
    pub value: String,
}

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(bytes).into())
    }

    /// Build from a raw 32-byte sha256 output.
    pub fn from_sha256(raw: [u8; 32]) -> Self {
        Self {
            hex: hex::encode(raw),
        }
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Path of this blob inside an OCI image layout: `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.hex)
    }

    /// Short form for humans: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidDigest {
            value: s.chars().take(100).collect(),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Self {
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a streamed blob was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobMismatch {
    #[error("blob {expected}: size mismatch: expected {expected_size} bytes, found {found_size}")]
    Size {
        expected: Digest,
        expected_size: u64,
        found_size: u64,
    },
    #[error("blob {expected}: digest mismatch: content hashes to {found}")]
    Digest { expected: Digest, found: Digest },
}

/// Incremental sha256 with a byte count; the building block of every
/// verifying reader and writer in the workspace.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_sha256(self.sha.finalize().into()), self.len)
    }
    /// Finish and compare: size first, then digest.
    pub fn check(self, expected: &Digest, expected_size: u64) -> Result<(), BlobMismatch> {
        let (found, found_size) = self.finish();
        if found_size != expected_size {
            return Err(BlobMismatch::Size {
                expected: expected.clone(),
                expected_size,
                found_size,
            });
        }
        if &found != expected {
            return Err(BlobMismatch::Digest {
                expected: expected.clone(),
                found,
            });
        }
        Ok(())
    }
}

/// A reader that hashes what passes through it and refuses to yield more than
/// the expected size. Call [`VerifyingReader::finish`] at EOF.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    expected_size: u64,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: u64) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            expected,
            expected_size,
        }
    }
    /// Check size and digest of everything read so far.
    pub fn finish(self) -> Result<R, BlobMismatch> {
        self.hasher.check(&self.expected, self.expected_size)?;
        Ok(self.inner)
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if self.hasher.len() > self.expected_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                BlobMismatch::Size {
                    expected: self.expected.clone(),
                    expected_size: self.expected_size,
                    found_size: self.hasher.len(),
                },
            ));
        }
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    pub fn finish(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_canonical_form() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.blob_path(), format!("blobs/sha256/{}", &EMPTY[7..]));
    }

    #[test]
    fn refuses_path_tricks_and_other_grammars() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha512:00",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/",
            "",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn streaming_hash_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = VerifyingReader::new(&data[..], Digest::of(&data), data.len() as u64);
        let mut sink = Vec::new();
        let mut buf = [0u8; 997];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sink.extend_from_slice(&buf[..n]);
        }
        r.finish().unwrap();
        assert_eq!(sink, data);
    }

    #[test]
    fn size_is_checked_before_digest() {
        let mut h = Hasher::new();
        h.update(b"abc");
        let err = h.check(&Digest::of(b"abcd"), 4).unwrap_err();
        assert!(matches!(err, BlobMismatch::Size { found_size: 3, .. }));
        let mut h = Hasher::new();
        h.update(b"abd");
        let err = h.check(&Digest::of(b"abc"), 3).unwrap_err();
        assert!(matches!(err, BlobMismatch::Digest { .. }));
    }
}
