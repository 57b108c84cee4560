//! Issue 10, disk full: `atp-bundler create` writing into a tmpfs too small
//! for the bundle fails with a message naming the output path and "no space",
//! and leaves nothing behind: no file under the output name, no temp file.
//!
//! Needs root for `mount -t tmpfs` (the test suite runs as root, see the
//! Makefile); the mount is always undone by a drop guard.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs of `size` mounted at `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert_ok(&out, "mount -t tmpfs (the suite runs as root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_create_names_the_output_not_the_blob_source_and_leaves_nothing() {
    let w = Work::new();
    // The demo bundle's size, made on the normal disk first.
    assert_ok(&w.create_demo("full.tar", &[]), "create");
    let size = std::fs::metadata(w.path("full.tar")).unwrap().len();
    assert!(size > 32 << 10, "demo bundle is only {size} bytes");
    for limit in [size / 2, size - 8192] {
        let dir = w.path(&format!("small-{limit}"));
        let _fs = Tmpfs::mount(&dir, &limit.to_string());
        let out_path = dir.join("b.tar");
        let out = w.create_demo(out_path.to_str().unwrap(), &[]);
        assert!(!out.status.success(), "create fitted in {limit} bytes");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&dir.display().to_string()),
            "no path named: {err}"
        );
        assert!(
            err.contains("No space left on device"),
            "not named as a full disk: {err}"
        );
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "left behind in {}: {left:?}",
            dir.display()
        );
    }
}
