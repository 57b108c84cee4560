//! Locate the workspace's built binaries (`atp-bundler`, `atp-installer`) in
//! the same target directory as the running test executable, so
//! `CARGO_TARGET_DIR` is respected without reading it. Never builds anything.

use std::path::PathBuf;

/// Path of a built binary, e.g. `bin("atp-bundler")`.
///
/// Test executables live in `<target>/<profile>/deps/`; binaries in
/// `<target>/<profile>/`. Panics with a hint when the binary is missing.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("locating the test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a parent")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} not found; hint: run `cargo build --workspace --bins` (with the same CARGO_TARGET_DIR) before the tests",
        path.display()
    );
    path
}
