//! The canonical ustar header (spec section 2) and the archive layout: where
//! every header and every byte of data sits, computed before anything is
//! written.
//!
//! A header is a pure function of `(name, size, mtime)`; readers rebuild it
//! and compare all 512 bytes. This module never reads or writes files and
//! never produces any entry type other than a regular file.

/// Size of a tar block.
pub const BLOCK: u64 = 512;
/// Size of the end-of-archive marker (two zero blocks).
pub const END_LEN: u64 = 2 * BLOCK;
/// Longest entry name the header can hold (no prefix field, no long names).
pub const MAX_NAME: usize = 100;
/// Sizes from here on are stored in GNU base-256.
pub const OCTAL_SIZE_LIMIT: u64 = 1 << 33;

/// Why a header cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("entry name {name:?} is {len} bytes; the bundle format allows at most 100")]
    NameTooLong { name: String, len: usize },
    #[error("entry name {name:?} is empty or contains a NUL byte")]
    BadName { name: String },
    #[error("mtime {mtime} does not fit in 11 octal digits")]
    MtimeOutOfRange { mtime: u64 },
}

/// Round `n` up to a multiple of 512.
///
/// For sizes this code planned itself. A size read from a header may be
/// anything up to `u64::MAX`: readers use [`checked_padded`] or
/// [`checked_entry_end`] instead, so a hostile size is a finding, never a
/// panic or a wrapped offset.
pub fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// `n` rounded up to a multiple of 512, or `None` when that overflows.
pub fn checked_padded(n: u64) -> Option<u64> {
    n.div_ceil(BLOCK).checked_mul(BLOCK)
}

/// Offset just past an entry whose header sits at `header_offset` and whose
/// data is `size` bytes (header, data and padding), or `None` when no file
/// could hold it (the sum overflows `u64`).
pub fn checked_entry_end(header_offset: u64, size: u64) -> Option<u64> {
    header_offset
        .checked_add(BLOCK)?
        .checked_add(checked_padded(size)?)
}

fn octal(field: &mut [u8], value: u64) {
    // `field.len() - 1` zero-padded octal digits, then NUL.
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// Encode the canonical header of a regular file.
pub fn header(name: &str, size: u64, mtime: u64) -> Result<[u8; 512], HeaderError> {
    if name.len() > MAX_NAME {
        return Err(HeaderError::NameTooLong {
            name: name.to_string(),
            len: name.len(),
        });
    }
    if name.is_empty() || name.as_bytes().contains(&0) {
        return Err(HeaderError::BadName {
            name: name.to_string(),
        });
    }
    if mtime >= OCTAL_SIZE_LIMIT {
        return Err(HeaderError::MtimeOutOfRange { mtime });
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < OCTAL_SIZE_LIMIT {
        octal(&mut h[124..136], size);
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum = checksum(&h);
    let text = format!("{sum:06o}");
    h[148..154].copy_from_slice(text.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    Ok(h)
}

/// The header checksum: the byte sum with the checksum field read as spaces.
pub fn checksum(h: &[u8; 512]) -> u32 {
    h.iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum()
}

/// Fields a reader extracts from an untrusted header before judging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// `prefix/name` as stored (lossy UTF-8).
    pub path: String,
    /// Data size, when the size field parses.
    pub size: Option<u64>,
    /// mtime, when the field parses.
    pub mtime: Option<u64>,
    pub typeflag: u8,
    /// Whether the stored checksum matches the header bytes.
    pub checksum_ok: bool,
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(s, 8).ok()
}

fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field[0] == 0x80 {
        if field[1..field.len() - 8].iter().any(|&b| b != 0) {
            return None;
        }
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&field[field.len() - 8..]);
        Some(u64::from_be_bytes(raw))
    } else {
        parse_octal(field)
    }
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Parse the fields of an untrusted header.
pub fn parse_header(h: &[u8; 512]) -> RawHeader {
    let name = cstr(&h[0..100]);
    let prefix = cstr(&h[345..500]);
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    let stored = parse_octal(&h[148..156]);
    RawHeader {
        path,
        size: parse_numeric(&h[124..136]),
        mtime: parse_numeric(&h[136..148]),
        typeflag: h[156],
        checksum_ok: stored == Some(checksum(h) as u64),
    }
}

/// One entry of a planned archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLayout {
    pub path: String,
    pub size: u64,
    /// Offset of the 512-byte header.
    pub header_offset: u64,
    /// Offset of the first data byte (`header_offset + 512`).
    pub data_offset: u64,
}

/// Every header and offset of an archive, computed up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub entries: Vec<EntryLayout>,
    /// Offset of the two end blocks.
    pub end_offset: u64,
    /// Final file size.
    pub total_size: u64,
}

impl Layout {
    /// Plan entries `(path, size)` in the given order.
    pub fn plan<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut offset = 0;
        let entries = entries
            .into_iter()
            .map(|(path, size)| {
                let e = EntryLayout {
                    path: path.to_string(),
                    size,
                    header_offset: offset,
                    data_offset: offset + BLOCK,
                };
                offset += BLOCK + padded(size);
                e
            })
            .collect();
        Self {
            entries,
            end_offset: offset,
            total_size: offset + END_LEN,
        }
    }
}

/// Encode a complete small archive from in-memory files, sorted by path
/// byte-wise (used for the kustomize layer, spec section 4).
pub fn encode_archive(files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>, HeaderError> {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let layout = Layout::plan(sorted.iter().map(|(p, d)| (p.as_str(), d.len() as u64)));
    let mut out = vec![0u8; layout.total_size as usize];
    for (entry, (_, data)) in layout.entries.iter().zip(sorted) {
        let h = header(&entry.path, entry.size, mtime)?;
        let at = entry.header_offset as usize;
        out[at..at + 512].copy_from_slice(&h);
        let at = entry.data_offset as usize;
        out[at..at + data.len()].copy_from_slice(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_tar_crate_agrees() {
        let h = header("blobs/sha256/abc", 1234, 1_700_000_000).unwrap();
        let raw = parse_header(&h);
        assert!(raw.checksum_ok);
        assert_eq!(raw.size, Some(1234));
        assert_eq!(raw.mtime, Some(1_700_000_000));
        assert_eq!(raw.path, "blobs/sha256/abc");
        assert_eq!(&h[148..156], format!("{:06o}\0 ", checksum(&h)).as_bytes());

        let th = tar::Header::from_byte_slice(&h);
        assert_eq!(th.path().unwrap().to_str().unwrap(), "blobs/sha256/abc");
        assert_eq!(th.size().unwrap(), 1234);
        assert_eq!(th.mtime().unwrap(), 1_700_000_000);
        assert_eq!(th.mode().unwrap(), 0o644);
        assert_eq!(th.entry_type(), tar::EntryType::Regular);
        assert_eq!(th.cksum().unwrap(), checksum(&h));
        assert!(th.as_ustar().is_some());
        // Same fields through the tar crate's own encoder (it writes the
        // checksum as 7 digits + NUL, so compare everything but that).
        let mut ours = tar::Header::new_ustar();
        ours.set_path("blobs/sha256/abc").unwrap();
        ours.set_size(1234);
        ours.set_mtime(1_700_000_000);
        ours.set_mode(0o644);
        ours.set_uid(0);
        ours.set_gid(0);
        ours.set_entry_type(tar::EntryType::Regular);
        ours.set_cksum();
        let theirs = ours.as_bytes();
        assert_eq!(&h[..148], &theirs[..148]);
        assert_eq!(&h[156..], &theirs[156..]);
    }

    #[test]
    fn large_sizes_use_base256() {
        let h = header("x", 10 << 30, 0).unwrap();
        assert_eq!(h[124], 0x80);
        assert_eq!(parse_header(&h).size, Some(10 << 30));
        let th = tar::Header::from_byte_slice(&h);
        assert_eq!(th.size().unwrap(), 10 << 30);
    }

    #[test]
    fn sizes_near_u64_max_do_not_overflow() {
        assert_eq!(checked_padded(0), Some(0));
        assert_eq!(checked_padded(1), Some(512));
        assert_eq!(checked_padded(u64::MAX - 511), Some(u64::MAX - 511));
        assert_eq!(checked_padded(u64::MAX - 510), None);
        assert_eq!(checked_padded(u64::MAX), None);
        assert_eq!(checked_entry_end(1024, 10), Some(2048));
        assert_eq!(checked_entry_end(1024, u64::MAX - 511), None);
        assert_eq!(checked_entry_end(u64::MAX - 100, 0), None);
        let mut h = header("x", 1, 0).unwrap();
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_header(&h).size, Some(u64::MAX));
    }

    #[test]
    fn refuses_long_names() {
        assert!(matches!(
            header(&"a".repeat(101), 1, 0),
            Err(HeaderError::NameTooLong { len: 101, .. })
        ));
        assert!(header(&"a".repeat(100), 1, 0).is_ok());
    }

    #[test]
    fn archive_is_readable_by_tar_crate() {
        let files = vec![
            ("b/z.yaml".to_string(), b"zz".to_vec()),
            ("a.yaml".to_string(), vec![7u8; 700]),
        ];
        let bytes = encode_archive(&files, 42).unwrap();
        assert_eq!(bytes.len() as u64, 512 + 1024 + 512 + 512 + 1024);
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b/z.yaml"]);
    }
}
