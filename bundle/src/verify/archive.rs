//! The tar structure of a bundle as the verifier walks it: headers, entry
//! types, paths, padding and the end of the archive; `fixed` holds the three
//! fixed entries and the signature check that gates all trust.
//!
//! Never trusts a header beyond what its checksum and canonical form allow,
//! and never reads past a damaged header it cannot skip by size.

use std::io::{self, Read};

use crate::format::ustar::{self, BLOCK};
use crate::format::{BLOB_PREFIX, INDEX_PATH, OCI_LAYOUT_PATH, SIGNATURE_PATH};
use crate::Digest;

use super::{Finding, FindingKind, Stop, Verifier, VisitBlob};

mod fixed;

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
    pub(super) fn find(
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

    pub(super) fn io_finding(&mut self, e: io::Error) -> Stop {
        let at = self.input.offset;
        self.find(FindingKind::Io, None, None, at, format!("read error: {e}"));
        Stop
    }

    pub(super) fn truncated(
        &mut self,
        subject: Option<&Digest>,
        path: &str,
        header: u64,
        what: &str,
    ) -> Stop {
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

    pub(super) fn run(&mut self) {
        let _ = self.entries_loop();
        self.report.total_bytes = self.input.offset;
        if self.trusted {
            self.finish();
        }
        self.merge_deferred();
    }

    pub(super) fn entries_loop(&mut self) -> Result<(), Stop> {
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

    pub(super) fn end_of_archive(&mut self, at: u64) -> Result<(), Stop> {
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

    /// Bytes of data and padding of an entry of `size` bytes whose header
    /// is at `h_off`. A size no file could hold (the end offset overflows 64
    /// bits) is a finding and stops the pass: nothing after it can be found.
    pub(super) fn span(
        &mut self,
        size: u64,
        subject: Option<&Digest>,
        path: &str,
        h_off: u64,
    ) -> Result<u64, Stop> {
        match ustar::checked_entry_end(h_off, size) {
            Some(end) => Ok(end - h_off - BLOCK),
            None => {
                self.find(
                    FindingKind::NonCanonicalHeader,
                    subject,
                    Some(path),
                    h_off,
                    format!("size field claims {size} bytes, which cannot fit in any file (the entry would end past byte 2^64); the header is damaged or forged, stopped reading"),
                );
                Err(Stop)
            }
        }
    }

    /// Skip `size` data bytes and the padding after them (no checks).
    pub(super) fn skip(&mut self, size: u64, path: &str, h_off: u64) -> Result<(), Stop> {
        let total = self.span(size, None, path, h_off)?;
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
    pub(super) fn padding(
        &mut self,
        size: u64,
        subject: Option<&Digest>,
        path: &str,
        h_off: u64,
    ) -> Result<(), Stop> {
        let want = self.span(size, subject, path, h_off)? - size;
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

    pub(super) fn read_small(
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

    pub(super) fn entry(&mut self, h_off: u64, block: &[u8; 512]) -> Result<(), Stop> {
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
        self.span(size, None, &path, h_off)?;
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
                let end = block[157..257].iter().position(|&b| b == 0).unwrap_or(100);
                let target = String::from_utf8_lossy(&block[157..157 + end]);
                let to = if matches!(t, b'1' | b'2') {
                    format!(" to {target:?}")
                } else {
                    String::new()
                };
                self.find(
                    FindingKind::ForbiddenEntryType,
                    None,
                    Some(&path),
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
            OCI_LAYOUT_PATH | INDEX_PATH | SIGNATURE_PATH => {
                self.fixed_entry(&path, position, size, h_off)
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
}
