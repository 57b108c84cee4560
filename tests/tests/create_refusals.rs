//! `atp-bundler create` refusing a spec that would make a wrong or surprising
//! bundle, each with a message that says what and why (issue 24), and the
//! shared-layout case that used to grow memory with every image (issue 24
//! #9), checked by what the bundle carries.

mod common;

use std::path::Path;

use atp_testkit::fixtures::{self, MODEL_LOADER, ROUTER};
use common::*;

/// Write `spec.yaml` in the workdir with these `spec:` lines after the
/// channel and sequence.
fn spec(w: &Work, body: &str) -> String {
    let text = format!(
        "metadata: {{name: atp, version: 1.0.0}}\nspec:\n  channel: stable\n  sequence: 1\n{body}"
    );
    std::fs::write(w.path("spec.yaml"), text).unwrap();
    w.s("spec.yaml")
}

fn create(w: &Work, spec: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "create", "--spec", spec, "--key", "k.key", "--output", "b.tar",
    ];
    args.extend_from_slice(extra);
    w.bundler(&args)
}

/// Refused, nothing written, and stderr says every one of `needles`.
fn assert_refused(w: &Work, o: &std::process::Output, needles: &[&str]) {
    assert!(!o.status.success(), "create should fail: {}", text(o));
    let err = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {}", text(o));
    }
    assert!(!w.path("b.tar").exists(), "no bundle may be written");
}

fn oci(img: &fixtures::FixtureImage) -> String {
    format!("oci:{}:{}", img.path().display(), img.tag)
}

#[test]
fn a_name_pinning_another_digest_is_refused_naming_both_digests() {
    let w = Work::new();
    let carried = fixtures::index_digest(&ROUTER);
    let wrong = format!("sha256:{}", "a".repeat(64));
    let s = spec(
        &w,
        &format!(
            "  images:\n    - {{source: \"{}\", name: \"docker.io/atp/router@{wrong}\"}}\n",
            oci(&ROUTER)
        ),
    );
    let o = create(&w, &s, &[]);
    assert_refused(&w, &o, &[&wrong, &carried, "docker.io/atp/router@"]);

    // The right digest is accepted, and the bundle records it.
    let s = spec(
        &w,
        &format!(
            "  images:\n    - {{source: \"{}\", name: \"docker.io/atp/router@{carried}\"}}\n",
            oci(&ROUTER)
        ),
    );
    let o = create(&w, &s, &["--json"]);
    assert_ok(&o, "create with the right pinned digest");
    assert_eq!(json(&o)["images"][0]["digest"], carried.as_str());
}

#[test]
fn two_images_under_one_name_are_refused_naming_both_sources() {
    let w = Work::new();
    let s = spec(
        &w,
        &format!(
            "  images:\n    - {{source: \"{}\", name: docker.io/atp/router:1.4.0}}\n    - {{source: \"{}\", name: docker.io/atp/router:1.4.0}}\n",
            oci(&ROUTER),
            oci(&MODEL_LOADER)
        ),
    );
    let o = create(&w, &s, &[]);
    assert_refused(
        &w,
        &o,
        &[
            "docker.io/atp/router:1.4.0",
            &oci(&ROUTER),
            &oci(&MODEL_LOADER),
            &fixtures::index_digest(&ROUTER),
            &fixtures::index_digest(&MODEL_LOADER),
        ],
    );

    // The same image listed twice is still carried once.
    let s = spec(
        &w,
        &format!("  images:\n    - \"{0}\"\n    - \"{0}\"\n", oci(&ROUTER)),
    );
    let o = create(&w, &s, &["--json"]);
    assert_ok(&o, "create with a repeated image");
    assert_eq!(json(&o)["images"].as_array().unwrap().len(), 1);
}

#[test]
fn an_expired_spec_is_refused_as_expired_not_as_a_disk_fault() {
    let w = Work::new();
    let s = spec(
        &w,
        &format!(
            "  expires: 2020-01-01T00:00:00Z\n  images:\n    - \"{}\"\n",
            oci(&ROUTER)
        ),
    );
    let o = create(&w, &s, &[]);
    assert_refused(
        &w,
        &o,
        &["spec.expires", "2020-01-01T00:00:00Z", "has passed"],
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("failing disk"),
        "{}",
        text(&o)
    );
}

#[test]
fn an_unknown_key_in_an_image_entry_is_named() {
    let w = Work::new();
    let s = spec(
        &w,
        &format!(
            "  images:\n    - {{source: \"{}\", nmae: docker.io/atp/router:1.4.0}}\n",
            oci(&ROUTER)
        ),
    );
    let o = create(&w, &s, &[]);
    assert_refused(&w, &o, &["unknown field `nmae`", "spec.yaml"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("untagged"), "{}", text(&o));
    assert_eq!(err.matches("nmae").count(), 1, "said once: {}", text(&o));
}

#[test]
fn an_empty_files_folder_is_refused_with_a_hint() {
    let w = Work::new();
    std::fs::create_dir_all(w.path("models/sub")).unwrap();
    let s = spec(
        &w,
        &format!(
            "  images:\n    - \"{}\"\n  files:\n    - {{name: models, source: models}}\n",
            oci(&ROUTER)
        ),
    );
    let o = create(&w, &s, &[]);
    assert_refused(&w, &o, &["\"models\"", "holds no files", "hint:"]);
}

/// One OCI layout holding `n` small images (each its own manifest over a
/// shared config and layer), tagged `t0` … `t{n-1}`.
fn shared_layout(dir: &Path, n: usize) {
    use atp_bundle::Digest;
    use serde_json::json;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        json!({"digest": d.to_string(), "size": bytes.len()})
    };
    let layer = put(b"one shared layer");
    let config =
        put(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let mut index = Vec::new();
    for i in 0..n {
        let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer["digest"], "size": layer["size"]}],
            "annotations": {"n": i.to_string()}});
        let d = put(m.to_string().as_bytes());
        index.push(
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d["digest"], "size": d["size"],
            "annotations": {"org.opencontainers.image.ref.name": format!("t{i}")}}),
        );
    }
    let index = json!({"schemaVersion": 2, "manifests": index});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Issue 24 #9: memory grew with every image taken from one shared layout
/// (its index.json was parsed again per image). The layout is now read once
/// (counted in the bundler's unit tests); here the bundle must carry every
/// one of a few hundred images, each under its own name and digest.
#[test]
fn a_few_hundred_images_from_one_layout_are_all_carried() {
    const N: usize = 300;
    let w = Work::new();
    shared_layout(&w.path("many"), N);
    let mut images = String::from("  images:\n");
    for i in 0..N {
        images.push_str(&format!(
            "    - {{source: \"oci:many:t{i}\", name: \"example.org/many/i{i}:1\"}}\n"
        ));
    }
    let s = spec(&w, &images);
    let o = create(&w, &s, &["--json"]);
    assert_ok(&o, "create");
    let o = w.bundler(&["inspect", "b.tar", "--json"]);
    assert_ok(&o, "inspect");
    let carried = json(&o)["images"].as_array().unwrap().clone();
    assert_eq!(carried.len(), N);
    let names: std::collections::BTreeSet<String> = carried
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_string())
        .collect();
    let digests: std::collections::BTreeSet<String> = carried
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!((names.len(), digests.len()), (N, N));
    assert!(names.contains("example.org/many/i299:1"));
    let o = w.installer(&["verify", "b.tar", "--key", "k.pub", "--json"]);
    assert_ok(&o, "verify");
}
