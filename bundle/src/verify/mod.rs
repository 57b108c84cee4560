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
//!
//! Layout: `input` (buffered reads that hand out slices), `archive` (the tar
//! structure, the fixed entries and the signature), `graph` (the trusted
//! index, the blob graph, its order and the end-of-pass checks) and
//! `parallel` (a bundle read by position: the same pass, with layer data
//! hashed on every core and the results put back where the single pass
//! would have found them, so the report is the same).

mod archive;
mod graph;
mod input;
mod parallel;
mod referrers;

pub use parallel::{verify_at, verify_at_vouched, Parallel};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use p256::ecdsa::VerifyingKey;
use time::OffsetDateTime;

use crate::format::{role, BundleConfig, BundleInfo, Descriptor, ImageIndex};
use crate::Digest;
use input::Input;

/// Read buffer size: large enough that syscalls are not the limit, small
/// enough that the bytes are still in L2 cache when they are hashed.
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
    /// A volume of a split bundle differs from its signed `volumes.json`
    /// (spec section 9); `path` names the volume.
    BadVolume,
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

    /// Top-level referrers (role `referrer`: signatures, attestations,
    /// SBOMs), in index order; read one with
    /// `format::referrer::CarriedReferrer::from_descriptor`.
    pub fn referrers(&self) -> impl Iterator<Item = &TopLevel> {
        self.top_level.iter().filter(|t| t.role == role::REFERRER)
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

/// Verify the bundle at `path` with `key`, judging expiry at `now`, its
/// layers hashed on every core ([`verify_at`]). Only
/// failing to open the file is an error; everything else is a finding. A
/// path that is not a regular file (a FIFO, a pipe, a device) is refused
/// before it is opened, so a FIFO without a writer cannot block the call.
pub fn verify_file(path: &Path, key: &VerifyingKey, now: OffsetDateTime) -> io::Result<Report> {
    let located = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    crate::small_input::require_regular(path).map_err(|e| match e {
        crate::small_input::SmallInputError::Io { source, .. } => located(source),
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    })?;
    let file = std::fs::File::open(path).map_err(located)?;
    let progress = crate::progress::NoProgress;
    Ok(verify_at(
        Arc::new(file),
        key,
        now,
        &Parallel::default(),
        &progress,
    ))
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
    let mut v = Verifier::new(Input::new(input), key, now, visitor);
    v.run();
    v.report
}

impl<'a, R: Read, V: VisitBlob> Verifier<'a, R, V> {
    fn new(
        input: Input<R>,
        key: &'a VerifyingKey,
        now: OffsetDateTime,
        visitor: &'a mut V,
    ) -> Self {
        Verifier {
            input,
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
            index_children: HashMap::new(),
            deferred: None,
        }
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
    /// The manifests each verified index lists (which platform manifests
    /// belong to which image, for the referrer rules in `graph`).
    index_children: HashMap<Digest, Vec<Digest>>,
    /// Layer data left to the parallel hashers (`parallel`), when the
    /// bundle is read by position.
    deferred: Option<parallel::Deferred>,
}
