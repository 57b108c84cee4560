//! The volumes of a split bundle, opened read-only and presented as one
//! stream with positional reads ([`ReadAt`]). Each volume is hashed as the
//! stream is read front to back, so one sequential pass (the verifier's)
//! also checks every volume against `volumes.json` and can name the one that
//! is wrong.
//!
//! Never writes, renames or deletes anything, and never copies a volume.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::digest::Hasher;
use crate::Digest;

use super::volumes::VolumeEntry;
use super::ReadAt;

/// Hashes one volume's bytes in order: the whole and each chunk.
#[derive(Clone)]
pub struct VolumeHasher {
    chunk_size: u64,
    whole: Hasher,
    chunk: Hasher,
    chunks: Vec<Digest>,
}

impl VolumeHasher {
    pub fn new(chunk_size: u64) -> Self {
        Self {
            chunk_size: chunk_size.max(1),
            whole: Hasher::new(),
            chunk: Hasher::new(),
            chunks: Vec::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.whole.len()
    }

    pub fn is_empty(&self) -> bool {
        self.whole.is_empty()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.whole.update(bytes);
        while !bytes.is_empty() {
            let room = (self.chunk_size - self.chunk.len()) as usize;
            let take = room.min(bytes.len());
            self.chunk.update(&bytes[..take]);
            bytes = &bytes[take..];
            if self.chunk.len() == self.chunk_size {
                let done = std::mem::take(&mut self.chunk);
                self.chunks.push(done.finish().0);
            }
        }
    }

    /// The whole file's digest and size, and every chunk's digest.
    pub fn finish(mut self) -> (Digest, u64, Vec<Digest>) {
        if !self.chunk.is_empty() {
            self.chunks.push(self.chunk.finish().0);
        }
        let (d, n) = self.whole.finish();
        (d, n, self.chunks)
    }
}

/// What a volume turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum VolumeStatus {
    /// Size and sha256 as recorded.
    Good,
    /// Not found in any folder searched.
    Missing,
    /// Shorter than recorded.
    Truncated { found: u64, expected: u64 },
    /// No chunk matches: this is another bundle's volume (or another file).
    Foreign,
    /// Damaged: some chunks differ. `first_bad` is the volume offset of the
    /// first chunk that differs.
    Corrupt { first_bad: u64, bad_chunks: usize },
}

impl VolumeStatus {
    pub fn is_good(&self) -> bool {
        matches!(self, VolumeStatus::Good)
    }

    /// One word: good, missing, truncated, foreign, corrupt.
    pub fn word(&self) -> &'static str {
        match self {
            VolumeStatus::Good => "good",
            VolumeStatus::Missing => "missing",
            VolumeStatus::Truncated { .. } => "truncated",
            VolumeStatus::Foreign => "foreign",
            VolumeStatus::Corrupt { .. } => "corrupt",
        }
    }

    /// A sentence for people.
    pub fn describe(&self, name: &str) -> String {
        self.describe_as("volume", name)
    }

    /// [`VolumeStatus::describe`] for a file that is not a volume (`installer`).
    pub fn describe_as(&self, what: &str, name: &str) -> String {
        match self {
            VolumeStatus::Good => format!("{what} {name}: good"),
            VolumeStatus::Missing => format!("{what} {name}: missing"),
            VolumeStatus::Truncated { found, expected } => format!(
                "{what} {name}: truncated: {found} bytes, volumes.json records {expected}"
            ),
            VolumeStatus::Foreign => format!(
                "{what} {name}: foreign: most of its content is not this bundle's (another bundle's volume, or volumes swapped)"
            ),
            VolumeStatus::Corrupt {
                first_bad,
                bad_chunks,
            } => format!(
                "{what} {name}: corrupt: sha256 differs from volumes.json ({bad_chunks} damaged chunk(s), the first at byte {first_bad})"
            ),
        }
    }
}

/// Judge a volume from what was hashed.
pub fn classify(
    entry: &VolumeEntry,
    size: u64,
    digest: &Digest,
    chunks: &[Digest],
) -> VolumeStatus {
    if size < entry.size {
        return VolumeStatus::Truncated {
            found: size,
            expected: entry.size,
        };
    }
    if size == entry.size && digest == &entry.sha256 {
        return VolumeStatus::Good;
    }
    let bad: Vec<usize> = (0..entry.chunks.len().max(chunks.len()))
        .filter(|&i| chunks.get(i) != entry.chunks.get(i))
        .collect();
    let compared = entry.chunks.len();
    let matching = (0..compared)
        .filter(|&i| chunks.get(i) == entry.chunks.get(i))
        .count();
    // Two bundles of the same images share content, so another bundle's
    // volume may match a chunk or two by position: foreign when fewer than
    // half its chunks are ours (a damaged volume keeps most of them).
    if compared >= 2 && matching * 2 < compared {
        return VolumeStatus::Foreign;
    }
    VolumeStatus::Corrupt {
        first_bad: bad
            .first()
            .map_or(entry.size, |&i| i as u64 * entry.chunk_size),
        bad_chunks: bad.len(),
    }
}

/// One opened volume.
pub struct OpenVolume {
    pub entry: VolumeEntry,
    pub path: PathBuf,
    file: File,
    start: u64,
    tap: Mutex<VolumeHasher>,
}

/// The volumes as one stream.
pub struct MultiVolume {
    volumes: Vec<OpenVolume>,
    len: u64,
}

impl MultiVolume {
    /// `files` are the opened volumes in order, with their entries; sizes
    /// must already have been checked against the entries.
    pub fn new(files: Vec<(VolumeEntry, PathBuf, File)>) -> Self {
        let mut start = 0;
        let volumes = files
            .into_iter()
            .map(|(entry, path, file)| {
                let v = OpenVolume {
                    tap: Mutex::new(VolumeHasher::new(entry.chunk_size)),
                    entry,
                    path,
                    file,
                    start,
                };
                start += v.entry.size;
                v
            })
            .collect();
        Self {
            volumes,
            len: start,
        }
    }

    pub fn volumes(&self) -> &[OpenVolume] {
        &self.volumes
    }

    fn find(&self, offset: u64) -> Option<&OpenVolume> {
        let i = self
            .volumes
            .partition_point(|v| v.start + v.entry.size <= offset);
        self.volumes.get(i)
    }

    /// Finish hashing every volume (reading whatever the stream did not
    /// read in order) and judge each one.
    pub fn check_all(&self) -> Vec<(String, VolumeStatus)> {
        let mut out = Vec::new();
        for v in &self.volumes {
            let mut tap = v.tap.lock().expect("volume hasher lock");
            let mut buf = vec![0u8; 1 << 20];
            let mut status = None;
            while tap.len() < v.entry.size {
                let want = buf.len().min((v.entry.size - tap.len()) as usize);
                match FileExt::read_at(&v.file, &mut buf[..want], tap.len()) {
                    Ok(0) => {
                        status = Some(VolumeStatus::Truncated {
                            found: tap.len(),
                            expected: v.entry.size,
                        });
                        break;
                    }
                    Ok(n) => tap.update(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        status = Some(VolumeStatus::Truncated {
                            found: tap.len(),
                            expected: v.entry.size,
                        });
                        break;
                    }
                }
            }
            let status = status.unwrap_or_else(|| {
                let (d, n, chunks) = tap.clone().finish();
                classify(&v.entry, n, &d, &chunks)
            });
            out.push((v.entry.name.clone(), status));
        }
        out
    }
}

impl ReadAt for MultiVolume {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(v) = self.find(offset) else {
            return Ok(0);
        };
        let local = offset - v.start;
        let want = buf.len().min((v.entry.size - local) as usize);
        let n = loop {
            match FileExt::read_at(&v.file, &mut buf[..want], local) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("reading volume {}: {e}", v.path.display()),
                    ))
                }
                Ok(n) => break n,
            }
        };
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "volume {} ends at byte {local}, volumes.json records {} bytes",
                    v.entry.name, v.entry.size
                ),
            ));
        }
        let mut tap = v.tap.lock().expect("volume hasher lock");
        let hashed = tap.len();
        if local <= hashed && hashed < local + n as u64 {
            tap.update(&buf[(hashed - local) as usize..n]);
        }
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn describe(&self, offset: u64) -> String {
        match self.find(offset) {
            Some(v) => format!("byte {} of volume {}", offset - v.start, v.entry.name),
            None => format!("byte {offset} (past the last volume)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &[u8], chunk: u64) -> VolumeEntry {
        let mut h = VolumeHasher::new(chunk);
        h.update(data);
        let (sha256, size, chunks) = h.finish();
        VolumeEntry {
            name: "v".into(),
            size,
            sha256,
            chunk_size: chunk,
            chunks,
        }
    }

    #[test]
    fn classifies() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let e = entry(&data, 4096);
        let judge = |d: &[u8]| {
            let mut h = VolumeHasher::new(4096);
            // Odd-sized updates must hash the same as one big one.
            for c in d.chunks(1000) {
                h.update(c);
            }
            let (dg, n, ch) = h.finish();
            classify(&e, n, &dg, &ch)
        };
        assert_eq!(judge(&data), VolumeStatus::Good);
        let mut flipped = data.clone();
        flipped[9000] ^= 1;
        assert_eq!(
            judge(&flipped),
            VolumeStatus::Corrupt {
                first_bad: 8192,
                bad_chunks: 1
            }
        );
        assert_eq!(
            judge(&data[..30_000]),
            VolumeStatus::Truncated {
                found: 30_000,
                expected: 40_000
            }
        );
        let other: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
        assert_eq!(judge(&other), VolumeStatus::Foreign);
        // Another bundle's volume that shares one chunk of ten with ours (the
        // same image layer at the same offset) is still foreign.
        let mut sharing = other.clone();
        sharing[..4096].copy_from_slice(&data[..4096]);
        assert_eq!(judge(&sharing), VolumeStatus::Foreign);
    }

    #[test]
    fn reads_across_volumes_and_hashes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut files = Vec::new();
        for (i, part) in data.chunks(4096).enumerate() {
            let p = dir.path().join(format!("x.{i:03}"));
            std::fs::write(&p, part).unwrap();
            let mut e = entry(part, 4096);
            e.name = format!("x.{i:03}");
            files.push((e, p.clone(), File::open(&p).unwrap()));
        }
        let m = MultiVolume::new(files);
        assert_eq!(m.len(), 10_000);
        let mut back = vec![0u8; 10_000];
        m.read_exact_at(&mut back[..5000], 0).unwrap();
        m.read_exact_at(&mut back[5000..], 5000).unwrap();
        assert_eq!(back, data);
        let mut mid = [0u8; 10];
        m.read_exact_at(&mut mid, 4090).unwrap();
        assert_eq!(&mid[..], &data[4090..4100]);
        assert_eq!(m.describe(4100), "byte 4 of volume x.001");
        assert!(m.check_all().iter().all(|(_, s)| s.is_good()));
    }
}
