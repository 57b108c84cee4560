//! Verify a bundle read by position on every core: the same single pass over
//! headers, manifests and padding as [`super::verify_reader`], except that
//! the data of each layer (a blob nothing is parsed from) is skipped by the
//! pass and hashed by a worker thread with positioned reads, while the pass
//! goes on to the next entry. The pass hashes what its buffer already holds
//! of the layer and hands the hasher on, so every byte is read once.
//!
//! The report is the one the single pass gives, whatever order the workers
//! finish in: each deferred blob keeps its place (where its finding or its
//! [`BlobLocation`] would have been pushed), and the results are put back
//! there once every worker is done. A blob whose data or padding would run
//! past the end of the input is not deferred, so truncation is found and
//! worded exactly as the single pass words it.
//!
//! [`verify_at_vouched`] is the same pass for a file whose layers' SHA-256
//! the caller took as it wrote them (create's commit): such a layer is read
//! back and checked by its CRC-32 instead of hashed again, and only a layer
//! whose CRC differs is hashed, so its finding reads exactly as the single
//! pass words it.
//!
//! Memory stays flat: each worker hashes through one buffer of
//! [`READ_BUFFER`] bytes, and at most a few jobs wait in the queue. Never
//! writes anything; a pipe or stdin keeps the single streaming pass.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use p256::ecdsa::VerifyingKey;
use time::OffsetDateTime;

use crate::digest::Hasher;
use crate::format::ustar::{padded, BLOCK};
use crate::media::ReadAt;
use crate::progress::{NoProgress, Progress};
use crate::Digest;

use super::input::Input;
use super::READ_BUFFER;
use super::{BlobLocation, Finding, FindingKind, NoVisit, Report, Stop, Verifier, VisitBlob};

/// How [`verify_at`] spreads the hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallel {
    /// Hashing threads, besides the pass itself.
    pub threads: usize,
    /// Layers smaller than this are hashed by the pass, from its buffer.
    pub min_size: u64,
}

impl Default for Parallel {
    /// One hashing thread per core; layers of 1 MiB and more.
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_size: READ_BUFFER as u64,
        }
    }
}

/// Verify the bundle held by `src` (read by position) with `key`, judging
/// expiry at `now`, hashing layers on `opts.threads` threads. Reports every
/// byte to `progress`. The report equals what [`super::verify_reader`] gives
/// for the same bytes.
pub fn verify_at(
    src: Arc<dyn ReadAt>,
    key: &VerifyingKey,
    now: OffsetDateTime,
    opts: &Parallel,
    progress: &dyn Progress,
) -> Report {
    verify_at_vouched(src, key, now, opts, progress, HashMap::new())
}

/// [`verify_at`] for bytes whose SHA-256 the caller took as it wrote them:
/// each layer named in `vouched` (digest to the CRC-32 of the bytes written)
/// is read back and checked by that CRC, not hashed again; one whose CRC
/// differs is hashed and reported as [`verify_at`] would. Manifests, configs
/// and everything else are verified as always. The report is the same.
pub fn verify_at_vouched(
    src: Arc<dyn ReadAt>,
    key: &VerifyingKey,
    now: OffsetDateTime,
    opts: &Parallel,
    progress: &dyn Progress,
    vouched: HashMap<Digest, u32>,
) -> Report {
    let threads = opts.threads.max(1);
    let (jobs, queue) = mpsc::sync_channel::<Job>(2 * threads);
    let (done, results) = mpsc::channel();
    let queue = Mutex::new(queue);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (src, queue, done) = (&*src, &queue, done.clone());
            s.spawn(move || worker(src, queue, &done, progress));
        }
        drop(done);
        let at = At {
            src: src.clone(),
            pos: 0,
            progress,
        };
        let mut visit = NoVisit;
        let mut v = Verifier::new(Input::skipping(at, At::skip), key, now, &mut visit);
        v.deferred = Some(Deferred {
            jobs: Some(jobs),
            results,
            pending: Vec::new(),
            min_size: opts.min_size,
            len: src.len(),
            vouched,
        });
        v.run();
        v.report
    })
}

/// A sequential reader over a [`ReadAt`] that can move ahead without
/// reading; counts what it reads as progress.
struct At<'p> {
    src: Arc<dyn ReadAt>,
    pos: u64,
    progress: &'p dyn Progress,
}

impl At<'_> {
    fn skip(&mut self, n: u64) {
        self.pos += n;
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self
            .src
            .len()
            .saturating_sub(self.pos)
            .min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The rest of one blob's data for a worker to hash.
struct Job {
    id: usize,
    digest: Digest,
    /// The blob's bytes the pass had in its buffer, hashed.
    hasher: Hasher,
    offset: u64,
    size: u64,
    /// For a vouched blob: the CRC-32 it was written with, and how many of
    /// its first bytes the pass already counted as progress.
    vouch: Option<(u32, u64)>,
}

/// A deferred blob, and where the single pass would have reported it.
struct Pending {
    digest: Digest,
    size: u64,
    media_type: String,
    header_offset: u64,
    /// `report.findings.len()` when the pass left it.
    finding_at: usize,
    /// `report.blobs.len()` when the pass left it.
    blob_at: usize,
}

/// The pass's side of the workers.
pub(super) struct Deferred {
    /// Closed once the pass is over, which ends the workers.
    jobs: Option<SyncSender<Job>>,
    results: Receiver<(usize, io::Result<Digest>)>,
    pending: Vec<Pending>,
    min_size: u64,
    len: u64,
    /// Layers vouched for by their writer: digest to CRC-32.
    vouched: HashMap<Digest, u32>,
}

fn worker(
    src: &dyn ReadAt,
    queue: &Mutex<Receiver<Job>>,
    done: &mpsc::Sender<(usize, io::Result<Digest>)>,
    progress: &dyn Progress,
) {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let job = match queue.lock().expect("job queue lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let found = match job.vouch {
            None => hash_at(src, job.hasher, job.offset, job.size, &mut buf, progress),
            Some((want, counted)) => {
                match crc_at(src, job.offset, job.size, &mut buf, progress, counted) {
                    Ok(crc) if crc == want => Ok(job.digest),
                    // Not what was written: hash it, to say what it is.
                    Ok(_) => hash_at(src, job.hasher, job.offset, job.size, &mut buf, &NoProgress),
                    Err(e) => Err(e),
                }
            }
        };
        if done.send((job.id, found)).is_err() {
            return;
        }
    }
}

/// Go on hashing into `h` the `size` bytes at `offset`, in `buf`-sized
/// positioned reads; the digest of all.
fn hash_at(
    src: &dyn ReadAt,
    mut h: Hasher,
    offset: u64,
    size: u64,
    buf: &mut [u8],
    progress: &dyn Progress,
) -> io::Result<Digest> {
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset + done)?;
        h.update(&buf[..n]);
        progress.advance(n as u64);
        done += n as u64;
    }
    Ok(h.finish().0)
}

/// CRC-32 of the `size` bytes at `offset`; the first `counted` of them are
/// not reported as progress again.
fn crc_at(
    src: &dyn ReadAt,
    offset: u64,
    size: u64,
    buf: &mut [u8],
    progress: &dyn Progress,
    counted: u64,
) -> io::Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset + done)?;
        crc.update(&buf[..n]);
        let fresh = (done + n as u64).saturating_sub(counted.max(done));
        progress.advance(fresh);
        done += n as u64;
    }
    Ok(crc.finalize())
}

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    /// Leave the data of a layer whose size held to a worker: skip it, check
    /// its padding, and note where its outcome belongs. False when the
    /// single pass must hash it (not read by position, small, already in
    /// the pass's buffer, or running past the end of the input).
    pub(super) fn defer(
        &mut self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        h_off: u64,
        path: &str,
    ) -> Result<bool, Stop> {
        let Some(d) = &self.deferred else {
            return Ok(false);
        };
        let data = h_off + BLOCK;
        let fits = data
            .checked_add(padded(size))
            .is_some_and(|end| end <= d.len);
        let held = self.input.buffered() as u64;
        let vouch = d.vouched.get(digest).copied();
        // A vouched layer is read back whole by the worker (its CRC is
        // cheap); any other leaves the pass's buffered part hashed here.
        let small = size < d.min_size || (vouch.is_none() && size <= held);
        if small || !fits || d.jobs.is_none() {
            return Ok(false);
        }
        let mut hasher = Hasher::new();
        let (offset, rest) = match vouch {
            Some(_) => (data, size),
            None => {
                self.input
                    .stream(held, |c| hasher.update(c))
                    .map_err(|e| self.io_finding(e))?;
                (data + held, size - held)
            }
        };
        let skip = if vouch.is_some() { size } else { size - held };
        self.input
            .skip_ahead(skip)
            .map_err(|e| self.io_finding(e))?;
        self.padding(size, Some(digest), path, h_off)?;
        let d = self.deferred.as_mut().expect("checked above");
        let id = d.pending.len();
        d.pending.push(Pending {
            digest: digest.clone(),
            size,
            media_type: media_type.to_string(),
            header_offset: h_off,
            finding_at: self.report.findings.len(),
            blob_at: self.report.blobs.len(),
        });
        let job = Job {
            id,
            digest: digest.clone(),
            hasher,
            offset,
            size: rest,
            vouch: vouch.map(|crc| (crc, held.min(size))),
        };
        if let Some(jobs) = &d.jobs {
            jobs.send(job).expect("a hashing worker is running");
        }
        Ok(true)
    }

    /// Wait for every deferred blob and put its outcome where the single
    /// pass would have: a [`BlobLocation`] when it hashed to its name, a
    /// finding when not. Nothing to do after a single pass.
    pub(super) fn merge_deferred(&mut self) {
        let Some(mut d) = self.deferred.take() else {
            return;
        };
        d.jobs = None;
        let mut found: Vec<Option<io::Result<Digest>>> = d.pending.iter().map(|_| None).collect();
        for _ in 0..d.pending.len() {
            let (id, r) = d.results.recv().expect("every job is answered");
            found[id] = Some(r);
        }
        let (mut findings, mut blobs) = (0, 0);
        for (p, r) in d.pending.into_iter().zip(found) {
            let r = r.expect("every job is answered");
            let finding = |kind, message| Finding {
                kind,
                digest: Some(p.digest.clone()),
                path: None,
                offset: p.header_offset,
                message,
            };
            let problem = match r {
                Ok(got) if got == p.digest => None,
                Ok(got) => Some(finding(
                    FindingKind::BadDigest,
                    format!(
                        "content hashes to {got}; hint: the blob is corrupt, copy the bundle again"
                    ),
                )),
                Err(e) => Some(finding(FindingKind::Io, format!("read error: {e}"))),
            };
            if let Some(f) = problem {
                self.visitor.rejected(&p.digest);
                self.report.findings.insert(p.finding_at + findings, f);
                findings += 1;
                continue;
            }
            let loc = BlobLocation {
                digest: p.digest,
                size: p.size,
                media_type: p.media_type,
                header_offset: p.header_offset,
                data_offset: p.header_offset + BLOCK,
            };
            self.visitor.verified(&loc);
            self.report.blobs.insert(p.blob_at + blobs, loc);
            blobs += 1;
        }
    }
}
