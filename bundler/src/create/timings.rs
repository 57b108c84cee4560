//! Where the wall time of one `create` went, phase by phase: part of its
//! `--json` summary (`timings_ms`) and of its last log line, so a release
//! engineer (and `make bench`) sees what bounds a run without a profiler.
//!
//! Only measures; never decides anything from a time.

use std::time::{Duration, Instant};

/// Milliseconds of wall time per phase of `create`, in the order they run.
/// `fsync` and `read_back` run at the same time inside `commit`, so they
/// may add up to more than it; every other phase follows the one before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Timings {
    /// Every image's manifests from its source (`spec.images`).
    pub resolve: u64,
    /// `spec.verify` (upstream signatures) and the referrers to carry.
    pub referrers: u64,
    /// Kustomize tree, file sets, delta, `index.json` and its signature,
    /// the archive's layout and the temp file with every header.
    pub plan: u64,
    /// Every blob fetched (or read), hashed and written into its place.
    pub download: u64,
    /// fsync, read-back through the verifier, rename: the whole commit.
    pub commit: u64,
    /// The commit's fsync of the temp file.
    pub fsync: u64,
    /// The commit's read-back of the whole file through the verifier.
    pub read_back: u64,
    /// Rename into place and fsync of the folder.
    pub rename: u64,
    /// Cutting into volumes or compressing (`--split-size`, `--compress`,
    /// `--with-installer`); 0 for a plain bundle.
    pub volumes: u64,
    /// The whole of `create`, key loading included.
    pub total: u64,
}

impl Timings {
    /// One line for the log: `resolve 120 ms, referrers 3 ms, ...`.
    pub fn to_line(&self) -> String {
        format!(
            "resolve {} ms, referrers {} ms, plan {} ms, download {} ms, commit {} ms \
             (fsync {} ms, read-back {} ms, rename {} ms), volumes {} ms, total {} ms",
            self.resolve,
            self.referrers,
            self.plan,
            self.download,
            self.commit,
            self.fsync,
            self.read_back,
            self.rename,
            self.volumes,
            self.total
        )
    }
}

/// Whole milliseconds of `d`, rounded to nearest.
pub(crate) fn ms(d: Duration) -> u64 {
    ((d.as_micros() + 500) / 1000) as u64
}

/// Laps of one stopwatch: each [`Lap::lap`] is the time since the last.
pub(crate) struct Lap {
    last: Instant,
}

impl Lap {
    pub(crate) fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Milliseconds since the previous lap (or the start).
    pub(crate) fn lap(&mut self) -> u64 {
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        ms(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_phase() {
        let t = Timings {
            resolve: 1,
            referrers: 2,
            plan: 3,
            download: 4,
            commit: 5,
            fsync: 6,
            read_back: 7,
            rename: 8,
            volumes: 9,
            total: 10,
        };
        assert_eq!(
            t.to_line(),
            "resolve 1 ms, referrers 2 ms, plan 3 ms, download 4 ms, commit 5 ms \
             (fsync 6 ms, read-back 7 ms, rename 8 ms), volumes 9 ms, total 10 ms"
        );
        assert_eq!(ms(Duration::from_micros(1499)), 1);
        assert_eq!(ms(Duration::from_micros(1500)), 2);
    }
}
