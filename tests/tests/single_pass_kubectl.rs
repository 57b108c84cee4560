//! `install --single-pass` pushes blobs while it verifies, so whatever it
//! will need later must be checked before verification starts. A bundle that
//! ships manifests is rendered with `kubectl kustomize` on every install,
//! with or without `--apply`: a missing kubectl is found before the first
//! write to the registry, never after the blobs went in. A bundle without
//! manifests still installs without kubectl.

mod common;

use atp_testkit::Registry;
use common::*;

/// Requests that write to the registry.
fn writes(log: &[atp_testkit::Access]) -> Vec<String> {
    log.iter()
        .filter(|a| matches!(a.method.as_str(), "PUT" | "POST" | "PATCH"))
        .map(|a| format!("{} {}", a.method, a.path))
        .collect()
}

#[test]
fn single_pass_without_apply_finds_a_missing_kubectl_before_writing_to_the_registry() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let empty = w.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let render = w.s("render");

    let mark = reg.access_mark();
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env_remove("ATP_KUBECTL")
        .env("PATH", &empty)
        .args(["--single-pass", "--render-to", &render])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubectl not found (on PATH)"), "{err}");
    assert!(err.contains("kubectl kustomize"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("ATP_KUBECTL"),
        "{err}"
    );
    let log = reg.access_log_since(mark);
    assert_eq!(writes(&log), Vec::<String>::new(), "{}", text(&out));
    assert!(!w.path("render").exists());
    let receipts = std::fs::read_dir(w.path("state/receipts"))
        .into_iter()
        .flatten()
        .count();
    assert_eq!(receipts, 0, "a receipt was written");
}

#[test]
fn single_pass_installs_a_bundle_without_manifests_without_kubectl() {
    let reg = Registry::plain();
    let w = Work::new();
    w.create_models_only("b.tar");
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", w.path("no-such-kubectl"))
        .args(["--single-pass", "--files-to-registry"])
        .output();
    assert_ok(
        &out,
        "single-pass install of a bundle without manifests, without kubectl",
    );
}
