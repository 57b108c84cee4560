//! Seekable zstd (spec section 9.3): the tar cut into independent zstd
//! frames of [`FRAME_SIZE`] bytes, each with its content size and checksum,
//! followed by a seek table in a skippable frame (the layout of zstd's
//! "seekable format"). Stock `zstd -d` decompresses it to the exact tar
//! bytes (it skips the table); this reader uses the table for random access
//! by uncompressed offset, so pushes can read many blobs at once.
//!
//! Reading is bounded: the table must describe exactly the compressed
//! stream, frames decompress into a buffer of the size the table gives (one
//! byte more is refused), the window is capped at 2^[`WINDOW_LOG_MAX`], and
//! the total must equal the signed tar size when `volumes.json` gives one.
//! Only the zstd format itself is accepted (the crate is built without
//! legacy formats). This module never writes to its input.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use super::ReadAt;

/// Uncompressed bytes per frame the writer uses.
pub const FRAME_SIZE: usize = 2 << 20;
/// Largest window a reader accepts (8 MiB), and the largest frame.
pub const WINDOW_LOG_MAX: u32 = 23;
/// zstd level the writer uses.
pub const LEVEL: i32 = 3;
/// Magic of the skippable frame that holds the seek table.
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic at the very end of a seekable stream.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Most frames a seek table may list: 16 TiB of tar at [`FRAME_SIZE`] a
/// frame, a 64 MiB table. Bounds what a hostile footer can make us allocate.
pub const MAX_FRAMES: u64 = 1 << 23;
/// Decompressed frames kept for readers (about 32 MiB at most).
const CACHE_FRAMES: usize = 16;

/// Why a seekable zstd stream was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeekableError {
    #[error("not a seekable zstd stream: {reason}; hint: compress with `atp-bundler create --compress zstd` (plain `zstd` output has no seek table)")]
    NotSeekable { reason: String },
    #[error("seekable zstd stream decompresses to {found} bytes, but the signed volumes.json records {expected}; refusing it")]
    SizeMismatch { expected: u64, found: u64 },
    #[error("reading the seek table: {0}")]
    Io(#[from] io::Error),
}

/// One frame, located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub c_offset: u64,
    pub c_size: u32,
    pub d_offset: u64,
    pub d_size: u32,
}

/// Compresses a stream into the seekable form as it is written.
pub struct SeekableWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    frame_size: usize,
    cctx: zstd::bulk::Compressor<'static>,
    table: Vec<(u32, u32)>,
    written: u64,
}

impl<W: Write> SeekableWriter<W> {
    pub fn new(out: W, level: i32, frame_size: usize) -> io::Result<Self> {
        let mut cctx = zstd::bulk::Compressor::new(level)?;
        cctx.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
        cctx.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
        let frame_size = frame_size.clamp(1, 1 << WINDOW_LOG_MAX);
        Ok(Self {
            out,
            buf: Vec::with_capacity(frame_size),
            frame_size,
            cctx,
            table: Vec::new(),
            written: 0,
        })
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let c = self.cctx.compress(&self.buf)?;
        self.out.write_all(&c)?;
        self.written += c.len() as u64;
        self.table.push((c.len() as u32, self.buf.len() as u32));
        self.buf.clear();
        Ok(())
    }

    /// Write the last frame and the seek table; returns the output and the
    /// number of bytes written to it.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_frame()?;
        let n = self.table.len() as u32;
        let mut t = Vec::with_capacity(self.table.len() * 8 + 17);
        t.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        t.extend_from_slice(&(n * 8 + 9).to_le_bytes());
        for (c, d) in &self.table {
            t.extend_from_slice(&c.to_le_bytes());
            t.extend_from_slice(&d.to_le_bytes());
        }
        t.extend_from_slice(&n.to_le_bytes());
        t.push(0); // descriptor: no per-frame checksums in the table
        t.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        self.out.write_all(&t)?;
        self.written += t.len() as u64;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for SeekableWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = (self.frame_size - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == self.frame_size {
            self.flush_frame()?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Random access to a seekable zstd stream by uncompressed offset.
pub struct SeekableReader {
    src: Arc<dyn ReadAt>,
    frames: Vec<Frame>,
    total: u64,
    cache: Mutex<VecDeque<(usize, Arc<Vec<u8>>)>>,
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

impl SeekableReader {
    /// Read the seek table of `src`. When `expected` is given (the signed
    /// tar size), the frames must add up to exactly that.
    pub fn open(src: Arc<dyn ReadAt>, expected: Option<u64>) -> Result<Self, SeekableError> {
        let not = |reason: String| SeekableError::NotSeekable { reason };
        let len = src.len();
        if len < 17 {
            return Err(not(format!("only {len} bytes")));
        }
        let mut footer = [0u8; 9];
        src.read_exact_at(&mut footer, len - 9)?;
        if u32_at(&footer, 5) != SEEKABLE_MAGIC {
            return Err(not("no seek table at the end".into()));
        }
        let n = u32_at(&footer, 0) as u64;
        let desc = footer[4];
        if desc & 0x7c != 0 {
            return Err(not("reserved bits set in the seek table descriptor".into()));
        }
        if n > MAX_FRAMES {
            return Err(not(format!(
                "seek table lists {n} frames, over the limit of {MAX_FRAMES}"
            )));
        }
        let entry = if desc & 0x80 != 0 { 12 } else { 8 };
        let table_len = n * entry + 9;
        if table_len + 8 > len {
            return Err(not(format!(
                "seek table of {n} frames is larger than the stream"
            )));
        }
        let mut table = vec![0u8; (table_len + 8) as usize];
        src.read_exact_at(&mut table, len - table_len - 8)?;
        if u32_at(&table, 0) != SKIPPABLE_MAGIC || u32_at(&table, 4) as u64 != table_len {
            return Err(not(
                "seek table frame header does not match its footer".into()
            ));
        }
        let body = len - table_len - 8;
        let mut frames = Vec::with_capacity(n as usize);
        let (mut c, mut d) = (0u64, 0u64);
        for i in 0..n as usize {
            let at = 8 + i * entry as usize;
            let f = Frame {
                c_offset: c,
                c_size: u32_at(&table, at),
                d_offset: d,
                d_size: u32_at(&table, at + 4),
            };
            if f.d_size as u64 > 1 << WINDOW_LOG_MAX || f.c_size == 0 {
                return Err(not(format!(
                    "frame {i} claims {} bytes (over the {} byte limit) or is empty",
                    f.d_size,
                    1u64 << WINDOW_LOG_MAX
                )));
            }
            // No frame of at most 8 MiB compresses to more than zstd's bound
            // for 8 MiB; a larger entry would only make us allocate it.
            let max_c = zstd::zstd_safe::compress_bound(1 << WINDOW_LOG_MAX) as u64;
            if f.c_size as u64 > max_c {
                return Err(not(format!(
                    "frame {i} claims {} compressed bytes, over the {max_c} byte limit",
                    f.c_size
                )));
            }
            // Sizes come from the file: add them checked.
            let overflow = || not(format!("frame sizes overflow at frame {i}"));
            c = c.checked_add(f.c_size as u64).ok_or_else(overflow)?;
            d = d.checked_add(f.d_size as u64).ok_or_else(overflow)?;
            frames.push(f);
        }
        if c != body {
            return Err(not(format!(
                "frames add up to {c} compressed bytes, the stream holds {body} before the table"
            )));
        }
        if let Some(expected) = expected {
            if d != expected {
                return Err(SeekableError::SizeMismatch { expected, found: d });
            }
        }
        Ok(Self {
            src,
            frames,
            total: d,
            cache: Mutex::new(VecDeque::new()),
        })
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    fn frame(&self, i: usize) -> io::Result<Arc<Vec<u8>>> {
        {
            let cache = self.cache.lock().expect("frame cache lock");
            if let Some((_, data)) = cache.iter().find(|(j, _)| *j == i) {
                return Ok(data.clone());
            }
        }
        let f = self.frames[i];
        let mut comp = vec![0u8; f.c_size as usize];
        self.src.read_exact_at(&mut comp, f.c_offset)?;
        let where_ = || format!("zstd frame {i} at {}", self.src.describe(f.c_offset));
        let bad =
            |e: io::Error| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", where_()));
        let mut dec = zstd::stream::read::Decoder::with_buffer(&comp[..]).map_err(bad)?;
        dec.window_log_max(WINDOW_LOG_MAX).map_err(bad)?;
        let mut dec = dec.single_frame();
        let mut out = Vec::with_capacity(f.d_size as usize);
        (&mut dec)
            .take(f.d_size as u64 + 1)
            .read_to_end(&mut out)
            .map_err(bad)?;
        if out.len() != f.d_size as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: decompresses to {}{} bytes, the seek table says {}; refusing it",
                    where_(),
                    if out.len() > f.d_size as usize {
                        "more than "
                    } else {
                        ""
                    },
                    out.len().min(f.d_size as usize),
                    f.d_size
                ),
            ));
        }
        let data = Arc::new(out);
        let mut cache = self.cache.lock().expect("frame cache lock");
        if cache.len() >= CACHE_FRAMES {
            cache.pop_front();
        }
        cache.push_back((i, data.clone()));
        Ok(data)
    }
}

impl ReadAt for SeekableReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.total || buf.is_empty() {
            return Ok(0);
        }
        let i = self
            .frames
            .partition_point(|f| f.d_offset + f.d_size as u64 <= offset);
        let f = self.frames[i];
        let data = self.frame(i)?;
        let local = (offset - f.d_offset) as usize;
        let n = buf.len().min(data.len() - local);
        buf[..n].copy_from_slice(&data[local..local + n]);
        Ok(n)
    }

    fn len(&self) -> u64 {
        self.total
    }

    fn describe(&self, offset: u64) -> String {
        let i = self
            .frames
            .partition_point(|f| f.d_offset + f.d_size as u64 <= offset);
        match self.frames.get(i) {
            Some(f) => format!(
                "tar byte {offset} (zstd frame {i} at {})",
                self.src.describe(f.c_offset)
            ),
            None => format!("tar byte {offset}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        let mut x = 1u32;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    fn compress(data: &[u8], frame: usize) -> Vec<u8> {
        let mut w = SeekableWriter::new(Vec::new(), LEVEL, frame).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn random_access_and_plain_decoder_agree() {
        let data = sample(300_000);
        let z = compress(&data, 64 * 1024);
        // Any zstd decoder sees the same bytes (the table is skipped).
        assert_eq!(zstd::stream::decode_all(&z[..]).unwrap(), data);
        let r = SeekableReader::open(Arc::new(z), Some(data.len() as u64)).unwrap();
        assert_eq!(r.frames().len(), 5);
        for &(off, n) in &[
            (0usize, 10usize),
            (65_530, 20),
            (299_990, 10),
            (131_072, 70_000),
        ] {
            let mut buf = vec![0u8; n];
            r.read_exact_at(&mut buf, off as u64).unwrap();
            assert_eq!(buf, &data[off..off + n]);
        }
    }

    #[test]
    fn refuses_a_size_other_than_the_signed_one() {
        let data = sample(10_000);
        let z = compress(&data, 4096);
        assert!(matches!(
            SeekableReader::open(Arc::new(z), Some(9_999)),
            Err(SeekableError::SizeMismatch {
                expected: 9_999,
                found: 10_000
            })
        ));
    }

    #[test]
    fn refuses_a_frame_larger_than_its_table_entry() {
        // A frame of 8192 bytes, described as 4096 in the table.
        let data = vec![0u8; 8192];
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        let mut z = frame.clone();
        z.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        z.extend_from_slice(&17u32.to_le_bytes());
        z.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        z.extend_from_slice(&4096u32.to_le_bytes());
        z.extend_from_slice(&1u32.to_le_bytes());
        z.push(0);
        z.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        let r = SeekableReader::open(Arc::new(z), Some(4096)).unwrap();
        let err = r.read_exact_at(&mut [0u8; 16], 0).unwrap_err();
        assert!(err.to_string().contains("more than 4096"), "{err}");
    }

    #[test]
    fn refuses_a_window_over_the_limit() {
        let data = vec![7u8; 1000];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.window_log(WINDOW_LOG_MAX + 4).unwrap();
        enc.long_distance_matching(true).unwrap();
        enc.write_all(&data).unwrap();
        let frame = enc.finish().unwrap();
        let mut z = frame.clone();
        z.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        z.extend_from_slice(&17u32.to_le_bytes());
        z.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        z.extend_from_slice(&1000u32.to_le_bytes());
        z.extend_from_slice(&1u32.to_le_bytes());
        z.push(0);
        z.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        let r = SeekableReader::open(Arc::new(z), Some(1000)).unwrap();
        let err = r.read_exact_at(&mut [0u8; 16], 0).unwrap_err().to_string();
        assert!(err.contains("zstd frame 0"), "{err}");
        assert!(err.contains("memory") || err.contains("indow"), "{err}");
    }

    /// A huge stream of zeros ending in `tail` (a seek table, or just its
    /// footer); only the tail is real.
    struct ZerosThen {
        len: u64,
        tail: Vec<u8>,
    }

    impl ReadAt for ZerosThen {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let start = self.len - self.tail.len() as u64;
            for (i, b) in buf.iter_mut().enumerate() {
                let at = offset + i as u64;
                *b = if at >= start {
                    self.tail[(at - start) as usize]
                } else {
                    0
                };
            }
            Ok(buf.len().min((self.len - offset) as usize))
        }
        fn len(&self) -> u64 {
            self.len
        }
    }

    #[test]
    fn refuses_a_frame_whose_compressed_size_is_over_the_bound() {
        // One frame of 1 GiB compressed bytes for 4 KiB of tar: consistent
        // with the stream's length, but no real frame is that large.
        let c_size = 1u32 << 30;
        let mut t = SKIPPABLE_MAGIC.to_le_bytes().to_vec();
        t.extend_from_slice(&17u32.to_le_bytes());
        t.extend_from_slice(&c_size.to_le_bytes());
        t.extend_from_slice(&4096u32.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.push(0);
        t.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        let src = ZerosThen {
            len: c_size as u64 + t.len() as u64,
            tail: t,
        };
        let err = SeekableReader::open(Arc::new(src), None).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("1073741824 compressed bytes"), "{msg}");
    }

    #[test]
    fn refuses_a_seek_table_over_the_frame_limit() {
        // The footer is the only thing read: a table of u32::MAX frames in
        // a stream big enough to hold it is refused by count, before the
        // 32 GiB table would be allocated.
        for n in [u32::MAX, MAX_FRAMES as u32 + 1] {
            let mut footer = n.to_le_bytes().to_vec();
            footer.push(0);
            footer.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
            let src = ZerosThen {
                len: 1 << 40,
                tail: footer,
            };
            let err = SeekableReader::open(Arc::new(src), None).err().unwrap();
            let msg = err.to_string();
            assert!(msg.contains("over the limit"), "{msg}");
            assert!(msg.contains(&n.to_string()), "{msg}");
        }
    }

    #[test]
    fn refuses_non_seekable() {
        let z = zstd::bulk::compress(&sample(5000), 3).unwrap();
        assert!(matches!(
            SeekableReader::open(Arc::new(z), None),
            Err(SeekableError::NotSeekable { .. })
        ));
    }
}
