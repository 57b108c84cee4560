//! The corpus of deliberately broken bundles (`fixtures/broken/`): each case
//! is the sample bundle with one thing wrong. Shared by the generator
//! (`examples/gen-broken.rs`) and the table-driven test, so the committed
//! files and the expectations cannot drift apart. A library module (not a
//! test helper) so that both can use it without including the file by path.
//!
//! Deterministic: the same keys always give the same bytes (RFC 6979
//! signatures, fixed timestamps, fixed synthetic content).

use crate::format::ustar::{self, padded, BLOCK};
use crate::sample::{sample, sample_created, Sample};
use crate::verify::FindingKind;
use p256::ecdsa::SigningKey;
use time::{Duration, OffsetDateTime};

/// One broken bundle and what the verifier must say about it.
pub struct Case {
    pub name: &'static str,
    pub breaks: &'static str,
    pub kind: FindingKind,
    pub fragment: &'static str,
    pub bytes: Vec<u8>,
}

/// The time the corpus is verified at: two days after the sample's creation.
pub fn verify_time() -> OffsetDateTime {
    sample_created() + Duration::days(2)
}

/// A raw tar entry: header bytes and data.
#[derive(Clone)]
pub struct Raw {
    pub header: [u8; 512],
    pub data: Vec<u8>,
}

impl Raw {
    pub fn path(&self) -> String {
        ustar::parse_header(&self.header).path
    }
}

/// Split a canonical archive into entries.
pub fn split(bytes: &[u8]) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let h: [u8; 512] = bytes[off..off + 512].try_into().unwrap();
        if h.iter().all(|&b| b == 0) {
            return out;
        }
        let size = ustar::parse_header(&h).size.unwrap() as usize;
        let data = bytes[off + 512..off + 512 + size].to_vec();
        off += 512 + padded(size as u64) as usize;
        out.push(Raw { header: h, data });
    }
}

/// Join entries into an archive with the two end blocks.
pub fn join(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.header);
        out.extend_from_slice(&e.data);
        out.resize(
            out.len() + (padded(e.data.len() as u64) as usize - e.data.len()),
            0,
        );
    }
    out.resize(out.len() + 2 * BLOCK as usize, 0);
    out
}

/// Recompute a header's checksum after editing it.
pub fn fix_checksum(h: &mut [u8; 512]) {
    let sum = ustar::checksum(h);
    h[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
    h[154] = 0;
    h[155] = b' ';
}

fn mtime() -> u64 {
    sample_created().unix_timestamp() as u64
}

/// A canonical regular-file entry.
pub fn file(name: &str, data: &[u8]) -> Raw {
    Raw {
        header: ustar::header(name, data.len() as u64, mtime()).unwrap(),
        data: data.to_vec(),
    }
}

/// An entry of another type (`typeflag`), with a link target.
pub fn special(name: &str, typeflag: u8, link: &str, data: &[u8]) -> Raw {
    let mut r = file(name, data);
    r.header[156] = typeflag;
    r.header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    fix_checksum(&mut r.header);
    r
}

/// Index of the entry holding blob `d`.
fn at(entries: &[Raw], d: &crate::Digest) -> usize {
    entries
        .iter()
        .position(|e| e.path() == d.blob_path())
        .unwrap()
}

fn flip(entries: &mut [Raw], i: usize, byte: usize) {
    entries[i].data[byte] ^= 0x10;
}

/// Build every case from the two keys.
pub fn corpus(key: &SigningKey, other: &SigningKey) -> Vec<Case> {
    let s: Sample = sample(key, None).unwrap();
    let good = split(&s.bytes());
    let layer = s.layers[1].clone();
    let mut cases = Vec::new();
    let mut add = |name, breaks, kind, fragment, bytes| {
        cases.push(Case {
            name,
            breaks,
            kind,
            fragment,
            bytes,
        })
    };

    let mut e = good.clone();
    let idx = String::from_utf8(e[1].data.clone()).unwrap();
    let pos = idx.find("\"1.4.0\"").unwrap() + 3;
    flip(&mut e, 1, pos);
    add(
        "flip-index",
        "one bit flipped in index.json (the version annotation)",
        FindingKind::BadSignature,
        "does not match",
        join(&e),
    );

    let mut e = good.clone();
    flip(&mut e, 2, 20);
    add(
        "flip-signature",
        "one bit flipped in index.json.sig",
        FindingKind::BadSignature,
        "signature",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &s.manifests[0]);
    flip(&mut e, i, 30);
    add(
        "flip-manifest",
        "one bit flipped in an image manifest",
        FindingKind::BadDigest,
        "content hashes to",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &s.configs[1]);
    flip(&mut e, i, 5);
    add(
        "flip-config",
        "one bit flipped in an image config",
        FindingKind::BadDigest,
        "content hashes to",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &layer);
    flip(&mut e, i, 0);
    add(
        "flip-layer",
        "one bit flipped in a layer",
        FindingKind::BadDigest,
        "content hashes to",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &s.layers[0]);
    e[i].data.iter_mut().for_each(|b| *b = 0);
    add(
        "bad-digest",
        "a layer's content replaced by zeros of the same size",
        FindingKind::BadDigest,
        "content hashes to",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &layer);
    e[i].data.pop();
    e[i].header = ustar::header(&e[i].path(), e[i].data.len() as u64, mtime()).unwrap();
    add(
        "wrong-size",
        "a layer one byte shorter than announced (header consistent)",
        FindingKind::WrongSize,
        "announced",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &layer);
    e.remove(i);
    add(
        "missing-blob",
        "a layer entry removed",
        FindingKind::MissingBlob,
        "is not in the bundle",
        join(&e),
    );

    let mut e = good.clone();
    e.push(file(&crate::Digest::of(b"extra").blob_path(), b"extra"));
    add(
        "extra-blob",
        "an unreferenced blob appended",
        FindingKind::UnreferencedBlob,
        "not referenced",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &layer);
    let dup = e[i].clone();
    e.insert(i + 1, dup);
    add(
        "duplicate-entry",
        "a layer entry repeated",
        FindingKind::DuplicateEntry,
        "more than once",
        join(&e),
    );

    let mut e = good.clone();
    let i = at(&e, &s.layers[2]);
    let j = at(&e, &s.configs[1]);
    e.swap(i, j);
    add(
        "wrong-order",
        "two blobs of one manifest swapped",
        FindingKind::WrongOrder,
        "depth-first",
        join(&e),
    );

    let mut e = good.clone();
    e.push(file("../escape", b"x"));
    add(
        "dotdot-path",
        "an entry named ../escape",
        FindingKind::UnsafePath,
        "`..`",
        join(&e),
    );

    let mut e = good.clone();
    e.push(file("/etc/cron.d/evil", b"x"));
    add(
        "absolute-path",
        "an entry named /etc/cron.d/evil",
        FindingKind::UnsafePath,
        "absolute",
        join(&e),
    );

    let mut e = good.clone();
    e.push(special("blobs/sha256/link", b'2', "/etc/passwd", b""));
    add(
        "symlink",
        "a symlink entry to /etc/passwd",
        FindingKind::ForbiddenEntryType,
        "symbolic link",
        join(&e),
    );

    let mut e = good.clone();
    e.push(special("hard", b'1', "index.json", b""));
    add(
        "hardlink",
        "a hard link entry",
        FindingKind::ForbiddenEntryType,
        "hard link",
        join(&e),
    );

    let mut e = good.clone();
    e.push(special("dev/sda", b'4', "", b""));
    add(
        "device",
        "a block device entry",
        FindingKind::ForbiddenEntryType,
        "block device",
        join(&e),
    );

    let mut e = good.clone();
    e.push(special("fifo", b'6', "", b""));
    add(
        "fifo",
        "a FIFO entry",
        FindingKind::ForbiddenEntryType,
        "FIFO",
        join(&e),
    );

    let mut e = good.clone();
    e.push(special("dir/", b'5', "", b""));
    add(
        "directory",
        "a directory entry",
        FindingKind::ForbiddenEntryType,
        "directory",
        join(&e),
    );

    let mut e = good.clone();
    let mut pax = vec![0u8; (1 << 20) + 100];
    let record = b"30 path=blobs/sha256/whatever\n";
    pax[..record.len()].copy_from_slice(record);
    e.insert(3, special("PaxHeaders/x", b'x', "", &pax));
    add(
        "pax-over-1mib",
        "a PAX extended header of just over 1 MiB (the only large fixture; mostly zeros)",
        FindingKind::ExtendedHeader,
        "over 1 MiB",
        join(&e),
    );

    let mut e = good.clone();
    let long = format!("{}/{}", "d".repeat(120), "file");
    e.insert(3, special("././@LongLink", b'L', "", long.as_bytes()));
    add(
        "gnu-long-name",
        "a GNU long-name header",
        FindingKind::ExtendedHeader,
        "GNU long name",
        join(&e),
    );

    let mut bytes = join(&good);
    let l = split(&bytes);
    let mut off = 0;
    for r in &l {
        if r.path() == layer.blob_path() {
            off += 512 + r.data.len();
            break;
        }
        off += 512 + padded(r.data.len() as u64) as usize;
    }
    bytes[off + 1] = 1;
    add(
        "nonzero-padding",
        "a non-zero byte in the padding after a layer",
        FindingKind::NonZeroPadding,
        "not zero",
        bytes,
    );

    let mut bytes = join(&good);
    bytes.extend_from_slice(b"garbage after the end\n");
    add(
        "trailing-garbage",
        "bytes after the two end blocks",
        FindingKind::TrailingData,
        "follow the end",
        bytes,
    );

    let bytes = join(&good);
    let cut = bytes.len() / 2 + 100;
    add(
        "truncated",
        "the file cut in the middle",
        FindingKind::Truncated,
        "copy is incomplete",
        bytes[..cut].to_vec(),
    );

    let o = sample(other, None).unwrap();
    add(
        "other-key",
        "signed by another key",
        FindingKind::WrongKey,
        "signed by key",
        o.bytes(),
    );

    let x = sample(key, Some(sample_created() + Duration::days(1))).unwrap();
    add(
        "expired",
        "expired one day before the verification time",
        FindingKind::Expired,
        "expired at",
        x.bytes(),
    );

    let mut e = good.clone();
    e[3].header[0x65] = b'7'; // mode 0000744
    fix_checksum(&mut e[3].header);
    add(
        "non-canonical-header",
        "a header with mode 0744 (checksum fixed)",
        FindingKind::NonCanonicalHeader,
        "field mode",
        join(&e),
    );

    let mut e = good.clone();
    e[4].header[10] ^= 0x01;
    add(
        "bad-header-checksum",
        "one bit flipped in a blob's header name",
        FindingKind::BadHeaderChecksum,
        "checksum",
        join(&e),
    );

    let mut e = good.clone();
    e.swap(1, 2);
    add(
        "signature-first",
        "index.json.sig before index.json",
        FindingKind::MissingEntry,
        "no index.json",
        join(&e),
    );

    let mut e = good.clone();
    e[0] = file("oci-layout", br#"{"imageLayoutVersion":"2.0.0"}"#);
    add(
        "bad-oci-layout",
        "oci-layout with another version",
        FindingKind::BadLayout,
        "must be exactly",
        join(&e),
    );

    // Referrers (spec 4.1): re-signed, so only the referrer rules object.
    let r = crate::sample::referrers::sample_with_referrers(key).unwrap();
    let other_platform = r.sample.manifests[1].to_string();
    add(
        "referrer-subject-disagrees",
        "the SBOM's subject annotation names the arm64 manifest; its own subject is amd64",
        FindingKind::BadManifest,
        "referrer manifest names subject",
        crate::sample::referrers::with_index_edit(&r.sample, key, |i| {
            crate::sample::referrers::annotations_of(i, &r.sbom)
                .insert(crate::format::annotation::SUBJECT.into(), other_platform);
        }),
    );
    add(
        "referrer-of-unknown-image",
        "a referrer carried for an image the bundle does not hold",
        FindingKind::BadIndex,
        "which is not an image of this bundle",
        crate::sample::referrers::with_index_edit(&r.sample, key, |i| {
            crate::sample::referrers::annotations_of(i, &r.signature).insert(
                crate::format::annotation::REFERRER_OF.into(),
                "docker.io/atp/other:1".into(),
            );
        }),
    );

    cases
}
