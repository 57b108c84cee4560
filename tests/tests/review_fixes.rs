//! Regression tests for review findings fixed together: one rule for
//! `--platform` (an index entry without a variant is its architecture's
//! default), `inspect` showing the bundle's `imageFields`, and an image
//! spelling two bundled images match equally refused by `create`, naming
//! both.
//!
//! Runs the built binaries; no registry is needed (the images come from the
//! committed OCI layouts).

mod common;

use atp_testkit::fixtures;
use common::*;

/// The router fixture's index lists `linux/arm64` with no variant; asking
/// for `linux/arm64/v8` (arm64's default variant) must keep it, as
/// `Platform::matches` has it, instead of refusing the image.
#[test]
fn platform_arm64_v8_keeps_an_index_entry_without_a_variant() {
    let w = Work::new();
    let o = w.create_demo("v8.tar", &["--platform", "linux/arm64/v8", "--json"]);
    assert_ok(&o, "create --platform linux/arm64/v8");
    let v = json(&o);
    let router = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == "docker.io/atp/router:1.4.0")
        .unwrap()
        .clone();
    assert_eq!(router["platforms"], serde_json::json!(["linux/arm64"]));
    assert_ne!(router["digest"], fixtures::index_digest(&fixtures::ROUTER));
}

/// `inspect` shows the `manifests.imageFields` the bundle config records,
/// in text and in `--json`.
#[test]
fn inspect_shows_the_image_fields() {
    let w = Work::new();
    let spec = demo_spec(&w, "spec.yaml", 1, &[]);
    let body = std::fs::read_to_string(&spec).unwrap().replace(
        "    overlay: overlays/air-gapped\n",
        "    overlay: overlays/air-gapped\n    imageFields:\n      - {kind: Workload, path: \"spec.workers[].image\"}\n",
    );
    assert!(body.contains("imageFields"), "{body}");
    std::fs::write(&spec, body).unwrap();
    assert_ok(
        &w.bundler(&[
            "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
        ]),
        "create",
    );
    let o = w.bundler(&["inspect", "b.tar", "--json"]);
    assert_ok(&o, "inspect --json");
    assert_eq!(
        json(&o)["manifests"]["image_fields"],
        serde_json::json!([{"kind": "Workload", "path": "spec.workers[].image"}])
    );
    let t = w.bundler(&["inspect", "b.tar"]);
    assert_ok(&t, "inspect");
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains("image field Workload spec.workers[].image"),
        "{text}"
    );
}

/// One image carried under two names (`router` and `router-debug`, one
/// digest), and an overlay spelling it pinned under a third name: `create`
/// must refuse, naming both, instead of silently counting the first.
#[test]
fn create_refuses_a_spelling_two_bundled_images_match_equally() {
    let w = Work::new();
    let tree = w.path("m");
    copy_dir(&repo_root().join("manifests"), &tree);
    let digest = fixtures::index_digest(&fixtures::ROUTER);
    let overlay = tree.join("overlays/air-gapped");
    std::fs::write(
        overlay.join("probe.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\nspec:\n  containers:\n  - name: p\n    image: docker.io/other/router@{digest}\n"),
    )
    .unwrap();
    let k = overlay.join("kustomization.yaml");
    let body = std::fs::read_to_string(&k).unwrap();
    std::fs::write(
        &k,
        body.replace(
            "  - networkpolicy-egress.yaml\n",
            "  - networkpolicy-egress.yaml\n  - probe.yaml\n",
        ),
    )
    .unwrap();
    let alias = format!(
        "{{source: \"oci:{}:{}\", name: \"docker.io/atp/router-debug:1.4.0\"}}",
        fixtures::ROUTER.path().display(),
        fixtures::ROUTER.tag
    );
    let spec = demo_spec(&w, "spec.yaml", 1, &[alias]);
    let body = std::fs::read_to_string(&spec).unwrap().replace(
        &repo_root().join("manifests").display().to_string(),
        &tree.display().to_string(),
    );
    std::fs::write(&spec, body).unwrap();
    let o = w.bundler(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ]);
    assert!(!o.status.success(), "create took an ambiguous spelling");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Pod/atp-system/probe")
            && err.contains("docker.io/atp/router:1.4.0")
            && err.contains("docker.io/atp/router-debug:1.4.0")
            && err.contains("hint:"),
        "{err}"
    );
    assert!(!w.path("b.tar").exists());
}
