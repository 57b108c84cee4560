//! Write a whole folder by swapping it into place, the one way `--render-to`
//! and `mirrors --output` both do it: build it in a fresh hidden folder
//! beside the target, then rename it into place; an earlier folder of ours
//! (one holding our [`Marker`]) is moved aside and deleted, anything else in
//! the way is refused and left as it was.
//!
//! A fresh folder carries a [`STAGING`] file naming the process that made it
//! until it is renamed into place, so a run killed midway leaves a folder the
//! next run recognises as its own and removes ([`Target::stage`]). Only
//! folders with our prefix that carry that file, made by a process no longer
//! running, are removed; nothing else beside the target is touched.
//!
//! Never follows a link: the target, the marker and the leftovers are looked
//! at with `symlink_metadata`, and deleting removes links themselves, never
//! what they point at.

use std::path::{Path, PathBuf};

/// The file that marks a fresh folder as ours while it is being written; its
/// text is `pid N`.
pub const STAGING: &str = ".atp-staging";

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
    /// make a fresh folder there (mode 0700, carrying [`STAGING`]). It is
    /// removed if dropped before [`Target::put_in_place`].
    pub fn stage(&self) -> Result<tempfile::TempDir, SwapError> {
        let parent = self.parent();
        remove_leftovers(&parent, self.prefix);
        fresh(&parent, self.prefix)
    }

    /// Move the finished `fresh` folder to the target: straight there when
    /// nothing is in the way, else (checked again, as the folder may have
    /// changed meanwhile) the earlier one moves aside, the fresh one in, and
    /// the earlier one is deleted. On failure the earlier one is put back.
    pub fn put_in_place(&self, fresh: tempfile::TempDir) -> Result<(), SwapError> {
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
        let _ = fresh.keep();
        if let Some((old, _)) = aside {
            // remove_dir_all deletes links themselves, never what they point at.
            old.close().map_err(io(&parent))?;
        }
        Ok(())
    }
}

/// A fresh folder in `parent` named `prefix…`, carrying [`STAGING`].
fn fresh(parent: &Path, prefix: &str) -> Result<tempfile::TempDir, SwapError> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let staging = dir.path().join(STAGING);
    std::fs::write(&staging, format!("pid {}\n", std::process::id())).map_err(io(&staging))?;
    Ok(dir)
}

/// Remove every folder in `parent` named `prefix…` that carries [`STAGING`]
/// (a regular file) naming a process that is no longer running. Best effort:
/// a leftover that cannot be removed is left for a later run.
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
        let staging = dir.join(STAGING);
        if !std::fs::symlink_metadata(&staging).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let pid = std::fs::read_to_string(&staging).ok().and_then(|t| {
            t.trim()
                .strip_prefix("pid ")
                .and_then(|p| p.parse::<u32>().ok())
        });
        if pid.is_some_and(|p| !running(p)) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Is process `pid` running? Read from `/proc`; when that cannot tell, it
/// is taken to be running (so its folder is kept).
fn running(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
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

    #[test]
    fn stage_removes_only_our_leftovers_of_ended_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let dead = dead_pid();
        // Ours, from a run that ended midway: removed.
        leftover(&p.join(".atp-test-killed"), dead);
        // Ours, from a run still going (this process): kept.
        leftover(&p.join(".atp-test-running"), std::process::id());
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
