//! Regression test for the single-hash download path of `atp-bundler create`
//! (issue #9): the registry client no longer hashes what it streams into a
//! bundle slot, so the slot's own check is the one that must refuse a source
//! registry serving a corrupted blob, and nothing may land under the output name.

mod common;

use atp_testkit::fixtures::{self, ROUTER};
use atp_testkit::Registry;
use common::*;

/// The largest stored blob file of a registry and its hex digest.
fn largest_blob(root: &std::path::Path) -> (std::path::PathBuf, String) {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == "data" && p.to_string_lossy().contains("/blobs/") {
                let len = e.metadata().unwrap().len();
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, p));
                }
            }
        }
    }
    let (_, p) = best.expect("the registry stores blobs");
    let hex = p
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    (p, hex)
}

#[test]
fn create_refuses_a_blob_the_source_registry_corrupted() {
    let w = Work::new();
    let reg = Registry::plain();
    fixtures::push(&reg, &ROUTER, "vendor/router");
    let (path, hex) = largest_blob(reg.storage_dir());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01; // same size, one bit off
    std::fs::write(&path, &bytes).unwrap();

    let spec = format!(
        "metadata: {{name: atp, version: 1.4.0}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {}/vendor/router:{}\n",
        reg.host(),
        ROUTER.tag
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    let host = reg.host();
    let out = w.bundler(&[
        "create",
        "--spec",
        "spec.yaml",
        "--key",
        "k.key",
        "--output",
        "c.tar",
        "--plain-http",
        &host,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&hex), "the error names the blob: {err}");
    assert!(err.contains("mismatch"), "{err}");
    let left: Vec<String> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("c.tar"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
