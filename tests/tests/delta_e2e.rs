//! Issue 12 end to end: delta bundles. Bundle v1 (the demo images plus an
//! image of three 3 MiB layers) installs into the real registry; v2 changes
//! one layer and adds the v1 image under a new repository. v2 is built as a
//! delta against v1 (`--base`) and against the site inventory
//! (`atp-installer inventory`); it carries the changed layer plus manifests
//! and configs only, verifies, inspects, and installs (mounting the layers
//! the new repository needs from the old one), and skopeo confirms every
//! digest. Into an empty registry it fails before any request that writes.
//! A registry wiped since the install shows up in the inventory as gone.

mod common;

use std::path::Path;
use std::process::Output;

use atp_bundle::Digest;
use atp_testkit::cli::{noise, output_with_stdin, registry_flags};
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::Registry;
use common::*;

const LAYER: usize = 3 << 20;

/// Write an OCI layout with one image of these layers, tagged `tag`;
/// returns the image manifest digest.
fn write_layout(dir: &Path, layers: &[&[u8]], tag: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (d, n) = put(l);
        diff_ids.push(d.clone());
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cn) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs});
    let (md, mn) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": tag}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    md
}

fn image_line(layout: &Path, tag: &str, name: &str) -> String {
    format!(
        "{{source: \"oci:{}:{tag}\", name: \"{name}\"}}",
        layout.display()
    )
}

/// `create` with a fixed creation time.
fn create(w: &Work, spec: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["create", "--spec", spec, "--key", "k.key", "--output", out];
    args.extend_from_slice(extra);
    args.push("--json");
    let mut c = w.bundler_cmd(&args);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    c.output().unwrap()
}

/// `install --json` into `reg` with its own state dir.
fn install_with_state(w: &Work, reg: &Registry, bundle: &str, state: &str) -> Output {
    w.install(bundle)
        .state_dir(w.path(state))
        .registry(reg)
        .arg("--json")
        .output()
}

/// `atp-installer inventory` into `out`, feeding the password on stdin
/// when the registry wants one; returns the file's JSON.
fn inventory(w: &Work, reg: &Registry, state: &str, out: &str) -> serde_json::Value {
    let mut args: Vec<String> = vec![
        "inventory".into(),
        "--state-dir".into(),
        w.s(state),
        "--output".into(),
        w.s(out),
    ];
    args.extend(registry_flags(reg));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let password = reg.credentials().map(|(_, p)| p);
    let o = output_with_stdin(w.installer_cmd(&a), password.as_deref());
    assert_ok(&o, "inventory");
    let text = std::fs::read_to_string(w.path(out)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_delta_carries_only_the_changed_layer_and_installs_over_v1() {
    let reg = Registry::plain();
    let w = Work::new();
    let (l0, l1, l2, l2b) = (
        noise(LAYER, 1),
        noise(LAYER, 2),
        noise(LAYER, 3),
        noise(LAYER, 4),
    );
    let big1 = write_layout(&w.path("big1"), &[&l0, &l1, &l2], "1.0");
    let big2 = write_layout(&w.path("big2"), &[&l0, &l1, &l2b], "2.0");
    let v1 = demo_spec(
        &w,
        "v1.yaml",
        1,
        &[image_line(&w.path("big1"), "1.0", "docker.io/atp/big:1.0")],
    );
    let v2 = demo_spec(
        &w,
        "v2.yaml",
        2,
        &[
            image_line(&w.path("big2"), "2.0", "docker.io/atp/big:2.0"),
            // The v1 image again, in a repository v1 never had: its layers
            // must be mounted from docker.io/atp/big at install.
            image_line(&w.path("big1"), "1.0", "docker.io/atp/big-copy:1.0"),
        ],
    );

    // v1: a full bundle, installed.
    let out = create(&w, &v1, "v1.tar", &[]);
    assert_ok(&out, "create v1");
    let v1_index = json(&out)["index_digest"].as_str().unwrap().to_string();
    let out = install_with_state(&w, &reg, "v1.tar", "state");
    assert_ok(&out, "install v1");

    // The site inventory lists every layer of v1 and the bundle.
    let inv = inventory(&w, &reg, "state", "inv.json");
    assert_eq!(inv["kind"], "atp-offline/site-inventory");
    assert_eq!(inv["registry"], reg.host());
    let present = strings(&inv["blobs"]);
    for l in [&l0, &l1, &l2] {
        assert!(present.contains(&Digest::of(l).to_string()));
    }
    assert_eq!(inv["bundles"].as_array().unwrap().len(), 1);
    assert_eq!(inv["bundles"][0]["index"], v1_index);
    assert_eq!(inv["bundles"][0]["complete"], true);
    assert_eq!(inv["bundles"][0]["sequence"], 1);
    assert_eq!(inv["channels"]["stable"], 1);
    assert_eq!(inv["gone"]["images"].as_array().unwrap().len(), 0);
    let raw = std::fs::read_to_string(w.path("inv.json")).unwrap();
    assert!(
        !raw.to_lowercase().contains("password") && !raw.contains("Authorization"),
        "{raw}"
    );

    // v2 as a delta, against the base bundle and against the inventory.
    let out = create(&w, &v2, "v2-base.tar", &["--base", "v1.tar"]);
    assert_ok(&out, "create v2 --base");
    let summary = json(&out);
    let out = create(&w, &v2, "v2-inv.tar", &["--site-inventory", "inv.json"]);
    assert_ok(&out, "create v2 --site-inventory");
    let out = create(&w, &v2, "v2-full.tar", &[]);
    assert_ok(&out, "create v2 full");
    // The base as it was shipped, compressed: read in place.
    assert_ok(
        &create(&w, &v1, "v1z.tar", &["--compress", "zstd"]),
        "create v1 zstd",
    );
    let out = create(&w, &v2, "v2-zbase.tar", &["--base", "v1z.tar.zst"]);
    assert_ok(&out, "create v2 --base v1z.tar.zst");
    // All three ways see the same site: the same omissions, the same base,
    // the same signed bytes.
    for other in ["v2-inv.tar", "v2-zbase.tar"] {
        assert_eq!(
            sha256_file(&w.path("v2-base.tar")),
            sha256_file(&w.path(other)),
            "{other}"
        );
    }
    let size = std::fs::metadata(w.path("v2-base.tar")).unwrap().len();
    assert!(
        size < LAYER as u64 + (1 << 20),
        "delta is {size} bytes, the changed layer {LAYER}"
    );
    assert_eq!(summary["size"], size);
    assert!(summary["omitted"].as_u64().unwrap() >= 3, "{summary}");
    assert!(summary["omitted_bytes"].as_u64().unwrap() >= 3 * LAYER as u64);

    // verify: every carried byte checks out; it says what it relies on.
    let out = w.installer(&["verify", "v2-base.tar", "--key", &w.pubkey(), "--json"]);
    assert_ok(&out, "verify v2");
    let ver = json(&out);
    let omitted = strings(&ver["omitted"]);
    for l in [&l0, &l1, &l2] {
        assert!(omitted.contains(&Digest::of(l).to_string()), "{ver}");
    }
    assert!(!omitted.contains(&Digest::of(&l2b).to_string()));
    assert_eq!(strings(&ver["delta_bases"]), vec![v1_index.clone()]);
    let out = w.installer(&["verify", "v2-base.tar", "--key", &w.pubkey()]);
    assert_ok(&out, "verify v2 (text)");
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains(&format!("relies on {} blob(s)", omitted.len())),
        "{t}"
    );
    assert!(t.contains(&v1_index), "{t}");

    // inspect: the delta's size against the full bundle it stands for.
    let out = w.bundler(&["inspect", "v2-base.tar", "--json"]);
    assert_ok(&out, "inspect");
    let ins = json(&out);
    let d = &ins["delta_info"];
    assert_eq!(d["omitted"], omitted.len());
    let full = std::fs::metadata(w.path("v2-full.tar")).unwrap().len();
    let stands_for = d["full_size"].as_u64().unwrap();
    assert!(
        stands_for.abs_diff(full) < 4096,
        "inspect says {stands_for}, the full bundle is {full}"
    );
    let out = w.bundler(&["inspect", "v2-base.tar"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("full bundle of about {stands_for} bytes")));

    // Into an empty registry: refused before any write, naming the blobs and the base.
    let empty = Registry::plain();
    let out = install_with_state(&w, &empty, "v2-base.tar", "state-empty");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for l in [&l0, &l1, &l2] {
        assert!(err.contains(&Digest::of(l).to_string()), "{err}");
    }
    assert!(err.contains(&v1_index), "{err}");
    assert!(err.contains("nothing was pushed"), "{err}");
    let log = empty.access_log();
    assert!(!log.is_empty(), "the check must have asked the registry");
    let writes: Vec<String> = log
        .iter()
        .filter(|a| a.is_blob_upload() || a.method == "PUT" || a.method == "DELETE")
        .map(ToString::to_string)
        .collect();
    assert!(
        writes.is_empty(),
        "writes to the empty registry: {writes:?}"
    );

    // Over v1: installs, uploading only the changed layer plus small blobs.
    let mark = reg.access_mark();
    let out = install_with_state(&w, &reg, "v2-base.tar", "state");
    assert_ok(&out, "install v2");
    let s = json(&out);
    let uploaded = s["bytes_uploaded"].as_u64().unwrap();
    assert!(
        (LAYER as u64..LAYER as u64 + (1 << 20)).contains(&uploaded),
        "the changed layer plus small blobs, no more: {s}"
    );
    let l2b_digest = Digest::of(&l2b).to_string();
    let uploads = reg.access_log_since(mark);
    let mounts = uploads
        .iter()
        .filter(|a| a.method == "POST" && a.path.contains("mount=") && a.status == 201)
        .count();
    assert_eq!(
        mounts, 3,
        "big-copy's layers mount from atp/big: {uploads:?}"
    );

    // skopeo confirms every image.
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let r = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(skopeo_digest(&reg, &r), fixtures::index_digest(img), "{r}");
    }
    assert_eq!(skopeo_digest(&reg, "docker.io/atp/big:1.0"), big1);
    assert_eq!(skopeo_digest(&reg, "docker.io/atp/big:2.0"), big2);
    assert_eq!(skopeo_digest(&reg, "docker.io/atp/big-copy:1.0"), big1);

    // The inventory now knows both bundles and the new layer.
    let inv = inventory(&w, &reg, "state", "inv2.json");
    assert!(strings(&inv["blobs"]).contains(&l2b_digest));
    assert_eq!(inv["channels"]["stable"], 2);
    assert_eq!(inv["bundles"].as_array().unwrap().len(), 2);
}

#[test]
fn an_inventory_of_a_wiped_registry_lists_nothing_present() {
    let mut reg = Registry::plain();
    let w = Work::new();
    let spec = demo_spec(&w, "v1.yaml", 1, &[]);
    assert_ok(&create(&w, &spec, "v1.tar", &[]), "create");
    assert_ok(&install_with_state(&w, &reg, "v1.tar", "state"), "install");
    let before = inventory(&w, &reg, "state", "before.json");
    assert!(!before["blobs"].as_array().unwrap().is_empty());
    assert_eq!(before["bundles"][0]["complete"], true);

    reg.kill();
    let storage = reg.storage_dir().to_path_buf();
    std::fs::remove_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&storage).unwrap();
    reg.restart().unwrap();

    let after = inventory(&w, &reg, "state", "after.json");
    assert_eq!(after["blobs"].as_array().unwrap().len(), 0, "{after}");
    assert_eq!(after["bundles"][0]["complete"], false);
    assert!(after["channels"].as_object().unwrap().is_empty());
    // Every image of the receipt is reported gone.
    let gone = strings(&after["gone"]["images"]);
    assert_eq!(gone.len(), 3, "{gone:?}");
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        assert!(
            gone.iter()
                .any(|g| g.contains(&format!("/docker.io/atp/{}@", img.dir))),
            "{gone:?}"
        );
    }

    // A delta built from that inventory carries everything: a full bundle.
    let out = create(&w, &spec, "again.tar", &["--site-inventory", "after.json"]);
    assert_ok(&out, "create from the wiped inventory");
    assert_eq!(json(&out)["omitted"], 0);
    assert_eq!(
        sha256_file(&w.path("again.tar")),
        sha256_file(&w.path("v1.tar"))
    );
}

#[test]
fn an_inventory_of_an_authenticated_registry_holds_no_secret() {
    let reg = Registry::basic();
    let w = Work::new();
    let spec = demo_spec(&w, "v1.yaml", 1, &[]);
    assert_ok(&create(&w, &spec, "v1.tar", &[]), "create");
    let out = install(&w, &reg, "v1.tar", &["--json"]);
    assert_ok(&out, "install");
    let index = json(&out)["index_digest"].as_str().unwrap().to_string();
    let inv = inventory(&w, &reg, "state", "inv.json");
    assert_eq!(inv["bundles"][0]["index"], index);
    assert_eq!(inv["bundles"][0]["complete"], true);
    // Every layer of every demo image is there, each once, sorted.
    let blobs = strings(&inv["blobs"]);
    let mut sorted = blobs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(blobs, sorted);
    let shared_base_layer =
        "sha256:657a017ac4e7bca69ecb31424194c262ea28769965c87a4a4779fdb53523f3c2";
    assert!(blobs.iter().any(|b| b == shared_base_layer), "{blobs:?}");
    let (_, password) = reg.credentials().unwrap();
    let raw = std::fs::read_to_string(w.path("inv.json")).unwrap();
    assert!(!raw.contains(&password), "{raw}");

    // Without the password the registry refuses, and the inventory says so.
    let mut args: Vec<String> = vec![
        "inventory".into(),
        "--state-dir".into(),
        w.s("state"),
        "--output".into(),
        w.s("anon.json"),
        "--registry".into(),
        reg.host(),
        "--plain-http".into(),
    ];
    if let Some(ca) = reg.ca_cert_path() {
        args.truncate(args.len() - 1);
        args.push("--registry-ca".into());
        args.push(ca.display().to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = w.installer(&a);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!w.path("anon.json").exists());
}
