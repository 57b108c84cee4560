//! Write a whole folder by swapping it into place, the one way `--render-to`
//! and `mirrors --output` both do it: build it in a fresh hidden folder
//! beside the target, then rename it into place; an earlier folder of ours
//! (one holding our [`Marker`]) is moved aside and deleted, anything else in
//! the way is refused and left as it was.
//!
//! A fresh folder carries a [`STAGING`] file until it is renamed into place,
//! and the run writing it holds an exclusive `flock` on that file the whole
//! time ([`Staged`]). A run killed midway leaves a folder whose staging file
//! nobody holds: the next run recognises it as its own and removes it
//! ([`Target::stage`]). Only folders with our prefix that carry that file and
//! whose lock can be taken at once are removed; nothing else beside the
//! target is touched. Liveness is the lock, never the pid the file names
//! (kept for humans): two installers in different PID namespaces (containers
//! sharing the folder) see different numbers, and the kernel's lock is the
//! one thing both agree on. On a file system that cannot lock, leftovers are
//! kept.
//!
//! Never follows a link: the target, the marker and the leftovers are looked
//! at with `symlink_metadata`, and deleting removes links themselves, never
//! what they point at.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// The file that marks a fresh folder as ours while it is being written,
/// locked by the run writing it; its text is `pid N`, for humans.
pub const STAGING: &str = ".atp-staging";

/// The name the staging file is written and locked under before it is
/// renamed to [`STAGING`], so [`STAGING`] is never seen unlocked while its
/// run lives.
const STAGING_NEW: &str = ".atp-staging.new";

/// What makes a folder an earlier output of ours: a regular file (not a
/// link) of this name, whose first line is `first_line` when that is given.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub file: &'static str,
    pub first_line: Option<&'static str>,
}

impl Marker {
    /// Does `dir` hold this marker?
    pub fn is_in(&self, dir: &Path) -> bool {
        let path = dir.join(self.file);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return false;
        }
        match self.first_line {
            None => true,
            Some(want) => {
                std::fs::read_to_string(&path).is_ok_and(|t| t.lines().next() == Some(want))
            }
        }
    }
}

/// Why a target folder is not ours to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// It is a symbolic link (never followed).
    Link,
    /// It exists and is not a folder.
    NotAFolder,
    /// A folder with entries and without our marker.
    NotOurs,
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not ours to replace: {taken:?}")]
    Taken { path: PathBuf, taken: Taken },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SwapError {
    let path = path.to_path_buf();
    move |source| SwapError::Io { path, source }
}

/// A folder written by swapping.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Where the folder ends up.
    pub path: &'a Path,
    /// The name the fresh folders beside it start with (`.atp-render-`).
    pub prefix: &'static str,
    /// What an earlier output of ours holds.
    pub marker: Marker,
}

impl Target<'_> {
    /// Refuse a target that is a link, not a folder, or a folder with
    /// entries and without our marker. Absent or empty is fine. Reads only.
    pub fn check(&self) -> Result<(), SwapError> {
        let taken = |taken| SwapError::Taken {
            path: self.path.to_path_buf(),
            taken,
        };
        let meta = match std::fs::symlink_metadata(self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(self.path)(e)),
        };
        if meta.file_type().is_symlink() {
            return Err(taken(Taken::Link));
        }
        if !meta.is_dir() {
            return Err(taken(Taken::NotAFolder));
        }
        if self.marker.is_in(self.path) {
            return Ok(());
        }
        let mut entries = std::fs::read_dir(self.path).map_err(io(self.path))?;
        match entries.next() {
            None => Ok(()),
            Some(_) => Err(taken(Taken::NotOurs)),
        }
    }

    /// The folder the target sits in (`.` for a bare name).
    pub fn parent(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Remove the leftovers of runs killed midway beside the target, then
    /// make a fresh folder there (mode 0700, carrying [`STAGING`], held
    /// locked). It is removed if dropped before [`Target::put_in_place`].
    pub fn stage(&self) -> Result<Staged, SwapError> {
        let parent = self.parent();
        remove_leftovers(&parent, self.prefix);
        fresh(&parent, self.prefix)
    }

    /// Move the finished `fresh` folder to the target: straight there when
    /// nothing is in the way, else (checked again, as the folder may have
    /// changed meanwhile) the earlier one moves aside, the fresh one in, and
    /// the earlier one is deleted. On failure the earlier one is put back.
    pub fn put_in_place(&self, fresh: Staged) -> Result<(), SwapError> {
        self.check()?;
        let parent = self.parent();
        let staging = fresh.path().join(STAGING);
        std::fs::remove_file(&staging).map_err(io(&staging))?;
        let aside = if std::fs::symlink_metadata(self.path).is_ok() {
            let old = self::fresh(&parent, self.prefix)?;
            let prev = old.path().join("prev");
            std::fs::rename(self.path, &prev).map_err(io(self.path))?;
            Some((old, prev))
        } else {
            None
        };
        if let Err(e) = std::fs::rename(fresh.path(), self.path) {
            if let Some((_, prev)) = &aside {
                let _ = std::fs::rename(prev, self.path);
            }
            return Err(io(self.path)(e));
        }
        // Now under its final name: nothing left for the temp guard to remove.
        // The lock goes with the descriptor, after the rename.
        let _ = fresh.dir.keep();
        if let Some((old, _)) = aside {
            // remove_dir_all deletes links themselves, never what they point at.
            old.dir.close().map_err(io(&parent))?;
        }
        Ok(())
    }
}

/// A fresh folder being written, from [`Target::stage`]: its staging file is
/// held locked as long as this lives, and the folder is removed if this is
/// dropped before [`Target::put_in_place`].
#[derive(Debug)]
pub struct Staged {
    // Declared first so it drops first: the folder goes while still locked.
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl Staged {
    /// Where to write.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A fresh folder in `parent` named `prefix…`, carrying [`STAGING`] locked.
fn fresh(parent: &Path, prefix: &str) -> Result<Staged, SwapError> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let new = dir.path().join(STAGING_NEW);
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&new)
        .map_err(io(&new))?;
    // Best effort: where the file system cannot lock, nobody else can take
    // the lock either, so the folder is kept by every other run.
    let _ = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive);
    file.write_all(format!("pid {}\n", std::process::id()).as_bytes())
        .map_err(io(&new))?;
    let staging = dir.path().join(STAGING);
    std::fs::rename(&new, &staging).map_err(io(&staging))?;
    Ok(Staged { dir, _lock: file })
}

/// Remove every folder in `parent` named `prefix…` that carries [`STAGING`]
/// (a regular file) that nobody holds locked. Best effort: a leftover that
/// cannot be removed, or whose lock cannot be told, is left for a later run.
fn remove_leftovers(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = e.path();
        if let Some(_lock) = abandoned(&dir.join(STAGING)) {
            // Held while removing, so another run cleaning up skips it.
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The lock on `staging`, when it is a regular file (not a link) that
/// nobody holds locked; `None` when it is held, or cannot be told.
fn abandoned(staging: &Path) -> Option<std::fs::File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let file = std::fs::File::from(rustix::fs::open(staging, flags, Mode::empty()).ok()?);
    let opened = file.metadata().ok()?;
    if !opened.is_file() {
        return None;
    }
    // Fails while a live run holds it (or where the file system cannot lock).
    rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).ok()?;
    // A run that just finished removes its staging file, renames its folder
    // into place and only then lets go: the file opened may no longer be
    // the one under that name.
    let now = std::fs::symlink_metadata(staging).ok()?;
    let same = now.dev() == opened.dev() && now.ino() == opened.ino();
    same.then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = ".atp-test-";
    const MARK: Marker = Marker {
        file: "MARK",
        first_line: Some("ours"),
    };

    /// The pid of a process that has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn leftover(dir: &Path, pid: u32) {
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(dir.join(STAGING), format!("pid {pid}\n")).unwrap();
        std::fs::write(dir.join("bundle/x.yaml"), "x").unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// Hold the lock on `dir`'s staging file, as the run writing it does.
    fn hold(dir: &Path) -> std::fs::File {
        let file = std::fs::File::open(dir.join(STAGING)).unwrap();
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).unwrap();
        file
    }

    #[test]
    fn stage_removes_only_our_leftovers_of_ended_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let dead = dead_pid();
        // Ours, from a run that ended midway (nobody holds its lock): removed.
        leftover(&p.join(".atp-test-killed"), dead);
        // Ours, from a run still going (holding its lock): kept.
        leftover(&p.join(".atp-test-running"), std::process::id());
        let _running = hold(&p.join(".atp-test-running"));
        // Ours, unlocked although its pid text names this live process (an
        // ended run in another PID namespace whose number is in use here):
        // removed, as the pid says nothing about liveness.
        leftover(&p.join(".atp-test-reused-pid"), std::process::id());
        // Our prefix without the staging file, another prefix, a file, a
        // link to a folder that looks like a leftover: all kept, the link's
        // target untouched.
        std::fs::create_dir_all(p.join(".atp-test-theirs")).unwrap();
        std::fs::write(p.join(".atp-test-theirs/keep"), "k").unwrap();
        leftover(&p.join("other-killed"), dead);
        std::fs::write(p.join(".atp-test-file"), "f").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        leftover(&elsewhere.path().join("x"), dead);
        std::os::unix::fs::symlink(elsewhere.path().join("x"), p.join(".atp-test-link")).unwrap();

        let target = Target {
            path: &p.join("out"),
            prefix: PREFIX,
            marker: MARK,
        };
        let fresh = target.stage().unwrap();
        assert!(fresh.path().join(STAGING).is_file());
        target.put_in_place(fresh).unwrap();
        assert_eq!(
            names(p),
            [
                ".atp-test-file",
                ".atp-test-link",
                ".atp-test-running",
                ".atp-test-theirs",
                "other-killed",
                "out"
            ]
        );
        assert!(elsewhere.path().join("x/bundle/x.yaml").is_file());
        // The staging file does not travel into the finished folder.
        assert!(names(&p.join("out")).is_empty());
    }

    /// Liveness is the lock, not the pid text: a run in another PID
    /// namespace (a container sharing the folder) writes a pid that means
    /// nothing here. A leftover whose staging file is held locked is still
    /// being written and is left alone, even when its pid names an ended
    /// process here; once nobody holds it, it is removed.
    #[test]
    fn stage_keeps_a_leftover_whose_staging_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let busy = p.join(".atp-test-other-namespace");
        leftover(&busy, dead_pid());
        let held = hold(&busy);
        let target = Target {
            path: &p.join("out"),
            prefix: PREFIX,
            marker: MARK,
        };
        let fresh = target.stage().unwrap();
        // Our own fresh folder holds its staging file locked, so a second
        // stage beside it (another run) leaves it alone too.
        let second = target.stage().unwrap();
        assert!(fresh.path().is_dir());
        assert!(busy.join("bundle/x.yaml").is_file());
        drop(second);
        drop(fresh);
        assert_eq!(names(p), [".atp-test-other-namespace"]);
        // The holder has ended (its lock went with its descriptor).
        drop(held);
        drop(target.stage().unwrap());
        assert!(names(p).is_empty(), "{:?}", names(p));
    }

    #[test]
    fn put_in_place_replaces_only_a_marked_or_empty_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let target = Target {
            path: &out,
            prefix: PREFIX,
            marker: MARK,
        };
        // Someone's folder: refused, left as it was.
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("mine"), "m").unwrap();
        let fresh = target.stage().unwrap();
        let err = target.put_in_place(fresh).unwrap_err();
        assert!(
            matches!(
                err,
                SwapError::Taken {
                    taken: Taken::NotOurs,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(names(&out), ["mine"]);
        assert_eq!(names(dir.path()), ["out"]);
        // A marker with another first line is not ours either.
        std::fs::write(out.join("MARK"), "theirs\n").unwrap();
        assert!(target.check().is_err());
        // Ours: swapped out for the new one.
        std::fs::write(out.join("MARK"), "ours\n").unwrap();
        let fresh = target.stage().unwrap();
        std::fs::write(fresh.path().join("new"), "n").unwrap();
        target.put_in_place(fresh).unwrap();
        assert_eq!(names(&out), ["new"]);
        assert_eq!(names(dir.path()), ["out"]);
        // A link to a marked folder: refused, not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        std::fs::write(out.join("MARK"), "ours\n").unwrap();
        let linked = Target {
            path: &link,
            ..target
        };
        assert!(matches!(
            linked.check(),
            Err(SwapError::Taken {
                taken: Taken::Link,
                ..
            })
        ));
    }
}
