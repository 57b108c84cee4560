//! The one-pass streaming verifier (spec sections 2 and 8): reads a bundle
//! from any `Read` once, front to back, and returns a [`Report`] listing
//! every problem found, each naming the blob digest or entry path and the
//! tar offset of its header.
//!
//! Nothing is trusted before the signature over `index.json` verifies with
//! the caller's key; if it does not, the verifier reports why and stops
//! reading. Memory stays flat whatever the bundle size: blob data is hashed
//! straight out of one large read buffer, and only manifests (at most 4 MiB
//! each) and the bundle config are kept. This module never writes anything
//! and never follows a path from the archive onto the file system.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use p256::ecdsa::VerifyingKey;
use time::OffsetDateTime;

use crate::digest::Hasher;
use crate::format::info::format_time;
use crate::format::manifest::Manifest;
use crate::format::ustar::{self, padded, BLOCK};
use crate::format::{
    annotation as ann, json, media, role, BundleConfig, BundleInfo, Descriptor, ImageIndex,
    ManifestKind, BLOB_PREFIX, INDEX_PATH, MAX_CONFIG_SIZE, MAX_INDEX_SIZE, MAX_MANIFEST_SIZE,
    MAX_SIGNATURE_SIZE, OCI_LAYOUT_BYTES, OCI_LAYOUT_PATH, SIGNATURE_PATH,
};
use crate::Digest;

/// Read buffer size: large reads keep the hasher, not syscalls, the limit.
pub const READ_BUFFER: usize = 1 << 20;

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The signature over `index.json` does not verify (or is malformed).
    BadSignature,
    /// The bundle names another signing key than the one given.
    WrongKey,
    /// The bundle's `expires` time has passed.
    Expired,
    /// `index.json` is unreadable, not canonical, or lacks annotations.
    BadIndex,
    /// A manifest or the bundle config could not be parsed or is too large.
    BadManifest,
    /// A blob's content does not hash to its announced digest.
    BadDigest,
    /// A blob's size differs from the size its parent announced.
    WrongSize,
    /// An announced blob is not in the archive (nor omitted by a delta).
    MissingBlob,
    /// `oci-layout`, `index.json` or `index.json.sig` is missing.
    MissingEntry,
    /// A blob no verified parent announced.
    UnreferencedBlob,
    /// An entry that is neither a fixed entry nor a blob path.
    UnexpectedEntry,
    /// The same entry path twice.
    DuplicateEntry,
    /// Entries out of the order of spec 2.1.
    WrongOrder,
    /// An absolute path or one with a `..` component.
    UnsafePath,
    /// A link, device, FIFO, directory or other non-regular entry.
    ForbiddenEntryType,
    /// A PAX (`x`, `g`) or GNU long-name (`L`, `K`) header.
    ExtendedHeader,
    /// The header checksum does not match its bytes.
    BadHeaderChecksum,
    /// A header differs from the canonical encoding.
    NonCanonicalHeader,
    /// The `oci-layout` entry has other content.
    BadLayout,
    /// Padding after data or the end blocks are not all zero.
    NonZeroPadding,
    /// Bytes after the end-of-archive blocks.
    TrailingData,
    /// The file ends early.
    Truncated,
    /// The input could not be read.
    Io,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The blob concerned, when the entry is (or should be) a blob.
    pub digest: Option<Digest>,
    /// The entry path, when it is not a blob.
    pub path: Option<String>,
    /// Tar offset of the entry's header (or where the problem sits).
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: ", self.offset)?;
        if let Some(d) = &self.digest {
            write!(f, "{d}: ")?;
        } else if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Where a verified blob sits in the archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlobLocation {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub header_offset: u64,
    pub data_offset: u64,
}

/// One top-level entry of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopLevel {
    /// `org.opencontainers.image.ref.name`.
    pub reference: String,
    /// `dev.atp-offline.role`.
    pub role: String,
    pub descriptor: Descriptor,
}

/// The outcome of verification. A bundle is good when `findings` is empty.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Bundle annotations; `None` when the index could not be trusted.
    pub info: Option<BundleInfo>,
    pub index_digest: Option<Digest>,
    /// The verified index (only set once the signature holds).
    pub index: Option<ImageIndex>,
    /// The bundle config, once its digest held.
    pub config: Option<BundleConfig>,
    pub findings: Vec<Finding>,
    /// Every blob whose size and digest held, in archive order.
    pub blobs: Vec<BlobLocation>,
    /// Top-level manifests: bundle artifact, images, file sets.
    pub top_level: Vec<TopLevel>,
    /// Blobs omitted by a delta bundle.
    pub omitted: Vec<Digest>,
    /// Bytes read.
    pub total_bytes: u64,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// Top-level images (role `image`).
    pub fn images(&self) -> impl Iterator<Item = &TopLevel> {
        self.top_level.iter().filter(|t| t.role == role::IMAGE)
    }

    /// Findings of one kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }
}

/// Observes blobs as the verifier streams them.
pub trait VisitBlob {
    /// Raw bytes of a blob, in order, before the blob is verified. Do not
    /// act on them until [`VisitBlob::verified`] is called for the digest.
    fn data(&mut self, _digest: &Digest, _chunk: &[u8]) {}
    /// A blob whose size and digest held.
    fn verified(&mut self, _location: &BlobLocation) {}
    /// A blob that failed its checks (discard any data seen for it).
    fn rejected(&mut self, _digest: &Digest) {}
}

/// A visitor that does nothing.
pub struct NoVisit;
impl VisitBlob for NoVisit {}

/// Verify the bundle at `path` with `key`, judging expiry at `now`. Only
/// failing to open the file is an error; everything else is a finding.
pub fn verify_file(path: &Path, key: &VerifyingKey, now: OffsetDateTime) -> io::Result<Report> {
    let file = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(verify_reader(file, key, now))
}

/// Verify a bundle streamed from `input`.
pub fn verify_reader<R: Read>(input: R, key: &VerifyingKey, now: OffsetDateTime) -> Report {
    verify_reader_with(input, key, now, &mut NoVisit)
}

/// Verify a bundle streamed from `input`, telling `visitor` about each blob.
pub fn verify_reader_with<R: Read, V: VisitBlob>(
    input: R,
    key: &VerifyingKey,
    now: OffsetDateTime,
    visitor: &mut V,
) -> Report {
    let mut v = Verifier {
        input: Input::new(input),
        key,
        now,
        visitor,
        report: Report::default(),
        entries: 0,
        mtime: None,
        paths: HashSet::new(),
        index_bytes: None,
        trusted: false,
        announced: HashMap::new(),
        announce_order: Vec::new(),
        stack: Vec::new(),
        seen: HashMap::new(),
        early: HashMap::new(),
        omitted: HashSet::new(),
        skipped: HashSet::new(),
        damaged: Vec::new(),
        config_digest: None,
        damaged_in_a_row: 0,
    };
    v.run();
    v.report
}

/// Buffered input that tracks the absolute offset and hands out slices of
/// its buffer, so data is hashed without being copied again.
struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offset: u64,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            offset: 0,
        }
    }

    fn fill(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => {
                        self.end = n;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Feed up to `n` bytes to `f`; returns how many there were.
    fn stream(&mut self, n: u64, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut done = 0;
        while done < n {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min((n - done).min(usize::MAX as u64) as usize);
            f(&chunk[..take]);
            self.consume(take);
            done += take as u64;
        }
        Ok(done)
    }

    /// Read one block; returns the number of bytes read (512 unless at EOF).
    fn block(&mut self, out: &mut [u8; 512]) -> io::Result<usize> {
        let mut got = 0;
        self.stream(BLOCK, |c| {
            out[got..got + c.len()].copy_from_slice(c);
            got += c.len();
        })?;
        Ok(got)
    }
}

#[derive(Clone)]
struct Announced {
    size: u64,
    media_type: String,
    omittable: bool,
    parent: String,
}

/// Why the pass stopped early.
struct Stop;

struct Verifier<'a, R, V> {
    input: Input<R>,
    key: &'a VerifyingKey,
    now: OffsetDateTime,
    visitor: &'a mut V,
    report: Report,
    /// Regular entries seen so far.
    entries: u64,
    /// mtime every header must carry (the first header's, checked against
    /// `created` once the index is trusted).
    mtime: Option<u64>,
    paths: HashSet<String>,
    index_bytes: Option<(Vec<u8>, u64)>,
    trusted: bool,
    announced: HashMap<Digest, Announced>,
    announce_order: Vec<Digest>,
    /// Pending descriptors in depth-first order (top = next expected).
    stack: Vec<Digest>,
    /// Blobs present, with their header offset.
    seen: HashMap<Digest, u64>,
    /// Unreferenced blobs that hashed to their name: (size, offset, finding).
    early: HashMap<Digest, (u64, u64, usize)>,
    omitted: HashSet<Digest>,
    /// Pending blobs passed over by a later one (spec 2.1 order).
    skipped: HashSet<Digest>,
    /// Manifests whose content failed, so their children are unknown.
    damaged: Vec<Digest>,
    config_digest: Option<Digest>,
    damaged_in_a_row: u32,
}

fn kind_of_type(t: u8) -> &'static str {
    match t {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'5' => "directory",
        b'6' => "FIFO",
        b'7' => "contiguous file",
        _ => "unknown entry type",
    }
}

const FIELDS: [(usize, &str); 17] = [
    (0, "name"),
    (100, "mode"),
    (108, "uid"),
    (116, "gid"),
    (124, "size"),
    (136, "mtime"),
    (148, "chksum"),
    (156, "typeflag"),
    (157, "linkname"),
    (257, "magic"),
    (263, "version"),
    (265, "uname"),
    (297, "gname"),
    (329, "devmajor"),
    (337, "devminor"),
    (345, "prefix"),
    (500, "padding"),
];

fn field_at(i: usize) -> &'static str {
    FIELDS
        .iter()
        .rev()
        .find(|(start, _)| *start <= i)
        .map(|f| f.1)
        .unwrap_or("name")
}

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    fn find(
        &mut self,
        kind: FindingKind,
        digest: Option<&Digest>,
        path: Option<&str>,
        offset: u64,
        message: String,
    ) -> usize {
        self.report.findings.push(Finding {
            kind,
            digest: digest.cloned(),
            path: if digest.is_some() {
                None
            } else {
                path.map(str::to_string)
            },
            offset,
            message,
        });
        self.report.findings.len() - 1
    }

    fn io_finding(&mut self, e: io::Error) -> Stop {
        let at = self.input.offset;
        self.find(FindingKind::Io, None, None, at, format!("read error: {e}"));
        Stop
    }

    fn truncated(&mut self, subject: Option<&Digest>, path: &str, header: u64, what: &str) -> Stop {
        let at = self.input.offset;
        self.find(
            FindingKind::Truncated,
            subject,
            Some(path),
            header,
            format!("file ends at byte {at} in the middle of {what}; hint: the copy is incomplete, copy the bundle again"),
        );
        Stop
    }

    fn run(&mut self) {
        let _ = self.entries_loop();
        self.report.total_bytes = self.input.offset;
        if self.trusted {
            self.finish();
        }
    }

    fn entries_loop(&mut self) -> Result<(), Stop> {
        let mut block = [0u8; 512];
        loop {
            let h_off = self.input.offset;
            let n = self
                .input
                .block(&mut block)
                .map_err(|e| self.io_finding(e))?;
            if n < 512 {
                let what = if n == 0 {
                    "the archive (no end-of-archive blocks)"
                } else {
                    "a header"
                };
                return Err(self.truncated(None, "end of archive", h_off, what));
            }
            if block.iter().all(|&b| b == 0) {
                return self.end_of_archive(h_off);
            }
            self.entry(h_off, &block)?;
        }
    }

    fn end_of_archive(&mut self, at: u64) -> Result<(), Stop> {
        self.check_fixed_entries_present(at);
        let mut second = [0u8; 512];
        let n = self
            .input
            .block(&mut second)
            .map_err(|e| self.io_finding(e))?;
        if n < 512 {
            return Err(self.truncated(None, "end of archive", at, "the end-of-archive blocks"));
        }
        if second.iter().any(|&b| b != 0) {
            self.find(
                FindingKind::NonZeroPadding,
                None,
                Some("end of archive"),
                at + BLOCK,
                "the second end-of-archive block is not all zero".into(),
            );
        }
        let extra = self
            .input
            .stream(u64::MAX, |_| {})
            .map_err(|e| self.io_finding(e))?;
        if extra > 0 {
            self.find(
                FindingKind::TrailingData,
                None,
                Some("end of archive"),
                at + 2 * BLOCK,
                format!("{extra} bytes follow the end of the archive; hint: nothing may follow the two zero blocks, the file was appended to or corrupted"),
            );
        }
        Ok(())
    }

    fn check_fixed_entries_present(&mut self, at: u64) {
        for p in [OCI_LAYOUT_PATH, INDEX_PATH, SIGNATURE_PATH] {
            if !self.paths.contains(p) {
                self.find(
                    FindingKind::MissingEntry,
                    None,
                    Some(p),
                    at,
                    format!("the bundle has no {p} entry"),
                );
            }
        }
    }

    /// Skip `size` data bytes and the padding after them (no checks).
    fn skip(&mut self, size: u64, path: &str, h_off: u64) -> Result<(), Stop> {
        let total = padded(size);
        let got = self
            .input
            .stream(total, |_| {})
            .map_err(|e| self.io_finding(e))?;
        if got < total {
            return Err(self.truncated(None, path, h_off, "entry data"));
        }
        Ok(())
    }

    /// Check the zero padding after `size` data bytes.
    fn padding(
        &mut self,
        size: u64,
        subject: Option<&Digest>,
        path: &str,
        h_off: u64,
    ) -> Result<(), Stop> {
        let want = padded(size) - size;
        let mut nonzero = None;
        let mut pos = 0u64;
        let got = self
            .input
            .stream(want, |c| {
                if nonzero.is_none() {
                    if let Some(i) = c.iter().position(|&b| b != 0) {
                        nonzero = Some(pos + i as u64);
                    }
                }
                pos += c.len() as u64;
            })
            .map_err(|e| self.io_finding(e))?;
        if got < want {
            return Err(self.truncated(subject, path, h_off, "the padding after entry data"));
        }
        if let Some(i) = nonzero {
            let at = self.input.offset - want + i;
            self.find(
                FindingKind::NonZeroPadding,
                subject,
                Some(path),
                h_off,
                format!("padding byte at offset {at} is not zero"),
            );
        }
        Ok(())
    }

    fn read_small(
        &mut self,
        size: u64,
        subject: Option<&Digest>,
        path: &str,
        h_off: u64,
    ) -> Result<Vec<u8>, Stop> {
        let mut out = Vec::with_capacity(size as usize);
        let got = self
            .input
            .stream(size, |c| out.extend_from_slice(c))
            .map_err(|e| self.io_finding(e))?;
        if got < size {
            return Err(self.truncated(subject, path, h_off, "entry data"));
        }
        self.padding(size, subject, path, h_off)?;
        Ok(out)
    }

    fn entry(&mut self, h_off: u64, block: &[u8; 512]) -> Result<(), Stop> {
        let raw = ustar::parse_header(block);
        let path = raw.path.clone();
        if !raw.checksum_ok {
            self.find(
                FindingKind::BadHeaderChecksum,
                None,
                Some(&path),
                h_off,
                "header checksum does not match; the header is damaged".into(),
            );
            self.damaged_in_a_row += 1;
            return match raw.size {
                Some(size) if self.damaged_in_a_row < 8 => self.skip(size, &path, h_off),
                _ => {
                    self.find(
                        FindingKind::BadHeaderChecksum,
                        None,
                        Some(&path),
                        h_off,
                        "cannot find the next entry after damaged headers; stopped reading".into(),
                    );
                    Err(Stop)
                }
            };
        }
        self.damaged_in_a_row = 0;
        let Some(size) = raw.size else {
            self.find(
                FindingKind::NonCanonicalHeader,
                None,
                Some(&path),
                h_off,
                "size field is unreadable; stopped reading".into(),
            );
            return Err(Stop);
        };
        match raw.typeflag {
            b'0' => {}
            b'x' | b'g' | b'L' | b'K' => {
                let what = match raw.typeflag {
                    b'x' => "PAX extended header",
                    b'g' => "PAX global header",
                    b'L' => "GNU long name header",
                    _ => "GNU long link header",
                };
                let big = if size > 1 << 20 { " (over 1 MiB)" } else { "" };
                self.find(
                    FindingKind::ExtendedHeader,
                    None,
                    Some(&path),
                    h_off,
                    format!("{what} of {size} bytes{big}; bundles use plain ustar headers only"),
                );
                return self.skip(size, &path, h_off);
            }
            t => {
                let link = ustar::parse_header(block);
                let target = String::from_utf8_lossy(&block[157..257])
                    .trim_end_matches('\0')
                    .to_string();
                let to = if matches!(t, b'1' | b'2') {
                    format!(" to {target:?}")
                } else {
                    String::new()
                };
                self.find(
                    FindingKind::ForbiddenEntryType,
                    None,
                    Some(&link.path),
                    h_off,
                    format!(
                        "{} entry{to}; bundles hold regular files only",
                        kind_of_type(t)
                    ),
                );
                return self.skip(size, &path, h_off);
            }
        }
        if path.starts_with('/') || path.split('/').any(|c| c == "..") {
            let why = if path.starts_with('/') {
                "absolute path"
            } else {
                "path with a `..` component"
            };
            self.find(
                FindingKind::UnsafePath,
                None,
                Some(&path),
                h_off,
                format!("{why}; refusing the entry"),
            );
            return self.skip(size, &path, h_off);
        }
        let mtime = *self.mtime.get_or_insert(raw.mtime.unwrap_or(0));
        match ustar::header(&path, size, mtime) {
            Ok(canonical) if canonical == *block => {}
            Ok(canonical) => {
                let i = (0..512).find(|&i| canonical[i] != block[i]).unwrap_or(0);
                self.find(
                    FindingKind::NonCanonicalHeader,
                    None,
                    Some(&path),
                    h_off,
                    format!(
                        "header is not canonical: field {} (byte {i}) differs",
                        field_at(i)
                    ),
                );
            }
            Err(e) => {
                self.find(
                    FindingKind::NonCanonicalHeader,
                    None,
                    Some(&path),
                    h_off,
                    format!("header is not canonical: {e}"),
                );
            }
        }
        if !self.paths.insert(path.clone()) {
            let digest = path
                .strip_prefix(BLOB_PREFIX)
                .and_then(|h| format!("sha256:{h}").parse().ok());
            self.find(
                FindingKind::DuplicateEntry,
                digest.as_ref(),
                Some(&path),
                h_off,
                "entry appears more than once".into(),
            );
            return self.skip(size, &path, h_off);
        }
        let position = self.entries;
        self.entries += 1;
        match path.as_str() {
            OCI_LAYOUT_PATH => {
                self.fixed_position(position, 0, &path, h_off);
                if size > 4096 {
                    self.find(
                        FindingKind::BadLayout,
                        None,
                        Some(&path),
                        h_off,
                        format!("oci-layout is {size} bytes"),
                    );
                    return self.skip(size, &path, h_off);
                }
                let bytes = self.read_small(size, None, &path, h_off)?;
                if bytes != OCI_LAYOUT_BYTES {
                    self.find(
                        FindingKind::BadLayout,
                        None,
                        Some(&path),
                        h_off,
                        format!(
                            "oci-layout must be exactly {}",
                            String::from_utf8_lossy(OCI_LAYOUT_BYTES)
                        ),
                    );
                }
                Ok(())
            }
            INDEX_PATH => {
                self.fixed_position(position, 1, &path, h_off);
                if size > MAX_INDEX_SIZE {
                    self.find(
                        FindingKind::BadIndex,
                        None,
                        Some(&path),
                        h_off,
                        format!("index.json is {size} bytes, over the 4 MiB limit"),
                    );
                    self.skip(size, &path, h_off)?;
                    return Err(Stop);
                }
                let bytes = self.read_small(size, None, &path, h_off)?;
                self.index_bytes = Some((bytes, h_off));
                Ok(())
            }
            SIGNATURE_PATH => {
                self.fixed_position(position, 2, &path, h_off);
                if size > MAX_SIGNATURE_SIZE {
                    self.find(
                        FindingKind::BadSignature,
                        None,
                        Some(&path),
                        h_off,
                        format!("signature entry is {size} bytes"),
                    );
                    return Err(Stop);
                }
                let sig = self.read_small(size, None, &path, h_off)?;
                self.check_signature(&sig, h_off)
            }
            _ => {
                let digest = path
                    .strip_prefix(BLOB_PREFIX)
                    .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok());
                let Some(digest) = digest else {
                    self.find(
                        FindingKind::UnexpectedEntry,
                        None,
                        Some(&path),
                        h_off,
                        "not a bundle entry (expected blobs/sha256/<64 hex>)".into(),
                    );
                    return self.skip(size, &path, h_off);
                };
                if !self.trusted {
                    self.check_fixed_entries_present(h_off);
                    self.find(
                        FindingKind::WrongOrder,
                        Some(&digest),
                        None,
                        h_off,
                        "blob before a verified index.json and signature; stopped reading".into(),
                    );
                    return Err(Stop);
                }
                self.blob(digest, size, h_off, &path)
            }
        }
    }

    fn fixed_position(&mut self, position: u64, want: u64, path: &str, h_off: u64) {
        if position != want {
            self.find(
                FindingKind::WrongOrder,
                None,
                Some(path),
                h_off,
                format!(
                    "{path} must be entry {} but is entry {}",
                    want + 1,
                    position + 1
                ),
            );
        }
    }

    fn check_signature(&mut self, sig: &[u8], h_off: u64) -> Result<(), Stop> {
        let Some((index, index_off)) = self.index_bytes.take() else {
            self.find(
                FindingKind::MissingEntry,
                None,
                Some(INDEX_PATH),
                h_off,
                "signature found but no index.json before it; stopped reading".into(),
            );
            return Err(Stop);
        };
        let ours = crate::keys::fingerprint(self.key);
        // Untrusted peek, only to explain a key mismatch well.
        let claimed = serde_json::from_slice::<ImageIndex>(&index)
            .ok()
            .and_then(|i| i.annotations.get(ann::KEY_FINGERPRINT).cloned());
        if let Some(theirs) = claimed.filter(|t| *t != ours) {
            self.find(
                FindingKind::WrongKey,
                None,
                Some(SIGNATURE_PATH),
                h_off,
                format!("bundle says it was signed by key {theirs}, but the trusted key is {ours}; hint: pass the public key that matches {theirs}, or ask the publisher which key signed this bundle"),
            );
            return Err(Stop);
        }
        let sig_text = String::from_utf8_lossy(sig);
        if let Err(e) = crate::sign::verify(self.key, &index, &sig_text) {
            self.find(
                FindingKind::BadSignature,
                None,
                Some(SIGNATURE_PATH),
                h_off,
                format!("{e}; nothing in the bundle is trusted, stopped reading"),
            );
            return Err(Stop);
        }
        self.trusted = true;
        self.report.index_digest = Some(Digest::of(&index));
        self.trust_index(&index, index_off);
        Ok(())
    }

    fn trust_index(&mut self, bytes: &[u8], at: u64) {
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
            } else if ![role::IMAGE, role::FILES].contains(&r.as_str()) {
                bad(
                    self,
                    format!("manifests[{i}] has role {r:?}, expected image or files"),
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
            self.announce(d, false, INDEX_PATH);
        }
        let order: Vec<Digest> = index
            .manifests
            .iter()
            .rev()
            .map(|d| d.digest.clone())
            .collect();
        self.stack.extend(order);
        self.report.index = Some(index);
    }

    fn announce(&mut self, d: &Descriptor, omittable: bool, parent: &str) {
        if !self.announced.contains_key(&d.digest) {
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
        }
    }

    fn blob(&mut self, digest: Digest, size: u64, h_off: u64, path: &str) -> Result<(), Stop> {
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

    fn manifest(&mut self, digest: &Digest, media_type: &str, bytes: &[u8], h_off: u64) {
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
                std::iter::once((m.config.clone(), false))
                    .chain(m.layers.iter().map(|l| (l.clone(), !is_bundle_artifact)))
                    .collect()
            }
        };
        for (c, omittable) in &children {
            self.announce(c, *omittable, &parent);
        }
        self.stack
            .extend(children.into_iter().rev().map(|(c, _)| c.digest));
    }

    fn bundle_config(&mut self, digest: &Digest, bytes: &[u8], h_off: u64) {
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
        self.omitted = config.omitted().iter().cloned().collect();
        self.report.omitted = config.omitted().to_vec();
        self.report.config = Some(config);
    }

    fn finish(&mut self) {
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
