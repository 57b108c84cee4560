//! Issue 24 defect 1, "what was verified is not what is rendered": once
//! `install` has verified a bundle, every later read of it must be the
//! verified bytes. Each test changes the bundle file while the install is
//! held at a known point after verification (a fault-proxy hold on the first
//! upload, or on the first manifest with `--single-pass`), then lets it go
//! on: the install must fail closed, name the change, and render, apply or
//! write nothing from the changed bytes.
//!
//! The later reads covered: the kustomize layer (render and apply, both
//! modes), model files into `--model-cache-dir`, and file sets pushed with
//! `--files-to-registry` (the registry checks the digest of what it gets).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use atp_bundle::Digest;
use atp_testkit::cli::{noise, which_kubectl, Install};
use atp_testkit::proxy::{Fault, Proxy, Rule};
use atp_testkit::Registry;
use common::*;

/// The line of the overlay the tests change, and what it becomes (the same
/// length, so no offset in the bundle moves).
const OVERLAY_LINE: &[u8] = b"- name: ATP_DISABLE_TELEMETRY\n              value: \"true\"";
const CHANGED_LINE: &[u8] = b"- name: ATP_DISABLE_TELEMETRY\n              value: \"nope\"";

/// A stand-in for kubectl that appends its arguments to `log` and hands
/// `kustomize` to the real kubectl; apply and rollout only succeed.
fn recording_kubectl(w: &Work, log: &Path) -> PathBuf {
    let path = w.path("recording-kubectl");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nif [ \"$1\" = kustomize ]; then exec {real} \"$@\"; fi\nexit 0\n",
            log = log.display(),
            real = which_kubectl()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Overwrite the only occurrence of `from` in `file` by `to`, in place
/// (same length), as a second writer on the media would.
fn overwrite_in_place(file: &Path, from: &[u8], to: &[u8]) {
    use std::os::unix::fs::FileExt;
    assert_eq!(from.len(), to.len());
    let bytes = std::fs::read(file).unwrap();
    let hits: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{} holds the bytes {} times",
        file.display(),
        hits.len()
    );
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(to, hits[0] as u64).unwrap();
    f.sync_all().unwrap();
}

/// Flip one byte in the middle of blob `digest` inside the bundle file.
fn flip_blob_byte(bundle: &Path, digest: &Digest) {
    use std::os::unix::fs::FileExt;
    let opened = atp_bundle::open::Bundle::open(bundle).unwrap();
    let loc = opened
        .blob(digest)
        .expect("the blob is in the bundle")
        .clone();
    drop(opened);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(bundle)
        .unwrap();
    let at = loc.data_offset + loc.size / 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
    f.sync_all().unwrap();
}

/// Run `install` through a proxy that holds the first request matching
/// `method` and `path`; once it arrives, `change` the bundle, release the
/// request and wait for the install to end.
fn install_changing_the_bundle(
    install: Install,
    proxy: &Proxy,
    (method, path): (&str, &str),
    change: impl FnOnce(),
) -> Output {
    proxy.add(Rule::new(method, path, Fault::Hold));
    let child = install.spawn();
    let held = proxy.wait_for(method, path, Duration::from_secs(120));
    change();
    proxy.release();
    let out = child.wait_with_output().unwrap();
    assert!(
        held,
        "no {method} {path} reached the registry: {}",
        text(&out)
    );
    out
}

/// Every file named `rendered.yaml` under `dir`.
fn rendered_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "rendered.yaml") {
                found.push(p);
            }
        }
    }
    found
}

/// An overlay changed after verification: the install stops at the render,
/// says why, and neither renders nor applies anything.
fn overlay_change_is_refused(single_pass: bool) {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host()).unwrap();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let log = w.path("kubectl.log");
    let kubectl = recording_kubectl(&w, &log);
    let mut install = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .env("ATP_KUBECTL", &kubectl)
        .args(["--apply", "--context", "site"]);
    // Without --single-pass, the first upload comes after verification;
    // with it, blobs go while verifying, and the first manifest only after.
    let at = if single_pass {
        install = install.arg("--single-pass");
        ("PUT", "/manifests/")
    } else {
        ("POST", "/blobs/uploads/")
    };
    let bundle = w.path("b.tar");
    let out = install_changing_the_bundle(install, &proxy, at, || {
        overwrite_in_place(&bundle, OVERLAY_LINE, CHANGED_LINE)
    });

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed on the media after it was verified"),
        "{err}"
    );
    assert!(err.contains("nothing more was written"), "{err}");
    let rendered = rendered_files(&w.path("state"));
    assert!(
        rendered.is_empty(),
        "rendered from changed bytes: {rendered:?}"
    );
    // The recording kubectl was never asked to render, apply or roll out.
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let used: Vec<&str> = calls
        .lines()
        .filter(|l| {
            ["kustomize", "apply", "rollout"]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .collect();
    assert!(used.is_empty(), "kubectl was asked to: {used:?}");
    // No receipt claims the install.
    let receipts = std::fs::read_dir(w.path("state/receipts"))
        .into_iter()
        .flatten()
        .count();
    assert_eq!(receipts, 0, "a receipt was written for a failed install");
}

#[test]
fn an_overlay_changed_after_verification_is_refused_and_nothing_is_rendered_or_applied() {
    overlay_change_is_refused(false);
}

#[test]
fn an_overlay_changed_after_single_pass_verification_is_refused_and_nothing_is_rendered_or_applied()
{
    overlay_change_is_refused(true);
}

/// The demo bundle plus a file set with one file of noise; returns the
/// file's digest.
fn bundle_with_files(w: &Work) -> Digest {
    let models = w.path("models");
    std::fs::create_dir_all(&models).unwrap();
    let weights = noise(300_000, 7);
    std::fs::write(models.join("weights.bin"), &weights).unwrap();
    let spec = demo_spec(w, "spec.yaml", 1, &[]);
    let mut body = std::fs::read_to_string(&spec).unwrap();
    body.push_str(&format!(
        "  files:\n    - {{name: models, source: \"{}\"}}\n",
        models.display()
    ));
    std::fs::write(&spec, body).unwrap();
    let mut c = w.bundler_cmd(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ]);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
    Digest::of(&weights)
}

#[test]
fn a_model_file_changed_after_verification_never_reaches_the_cache_or_the_registry() {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host()).unwrap();
    let w = Work::new();
    let weights = bundle_with_files(&w);
    let bundle = w.path("b.tar");

    // Into the model cache: the payload is checked as it is copied, and
    // the changed file never takes its name.
    let cache = w.path("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let install = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .args(["--model-cache-dir", cache.to_str().unwrap()]);
    let out = install_changing_the_bundle(install, &proxy, ("POST", "/blobs/uploads/"), || {
        flip_blob_byte(&bundle, &weights)
    });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("payload read from the bundle does not match")
            && err.contains("changed after it was verified"),
        "{err}"
    );
    assert!(
        !cache.join("models/weights.bin").exists(),
        "the changed file reached the cache"
    );
    assert!(rendered_files(&w.path("state")).is_empty());

    // To the registry: the registry checks what it gets against the digest,
    // and no file-set manifest names the changed blob.
    std::fs::remove_file(&bundle).unwrap();
    std::fs::remove_dir_all(w.path("state")).unwrap();
    let weights = bundle_with_files(&w);
    // A fresh registry, so the file blob is uploaded, not found in place.
    let reg2 = Registry::plain();
    let proxy2 = Proxy::start(&reg2.host()).unwrap();
    let install = w
        .install("b.tar")
        .plain_http(&proxy2.host())
        .arg("--files-to-registry");
    let out = install_changing_the_bundle(install, &proxy2, ("POST", "/blobs/uploads/"), || {
        flip_blob_byte(&bundle, &weights)
    });
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&weights.to_string()), "{err}");
    let files_manifests: Vec<String> = reg2
        .access_log()
        .iter()
        .filter(|a| {
            a.method == "PUT" && a.path.contains("/files/") && a.path.contains("/manifests/")
        })
        .map(ToString::to_string)
        .collect();
    assert!(files_manifests.is_empty(), "{files_manifests:?}");
    assert!(rendered_files(&w.path("state")).is_empty());
}
