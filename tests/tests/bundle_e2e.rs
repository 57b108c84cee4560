//! Issue 4 end to end: keygen, create (from `oci:` layouts and from real
//! registries), inspect, verify; openssl checks the signature, skopeo reads
//! every image out of the bundle, and the output is reproducible.

mod common;

use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::{skopeo, Registry};
use common::*;

#[test]
fn demo_bundle_verifies_with_openssl_and_skopeo_copies_every_image_by_digest() {
    let w = Work::new();
    let o = w.create_demo("b.tar", &["--json"]);
    assert_ok(&o, "create");
    let summary = json(&o);
    assert_eq!(summary["images"].as_array().unwrap().len(), 3);

    let o = w.installer(&["verify", "b.tar", "--key", "k.pub", "--json"]);
    assert_ok(&o, "verify");
    let report = json(&o);
    assert_eq!(report["ok"], true);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    assert_eq!(report["index_digest"], summary["index_digest"]);

    // The signature is plain ECDSA P-256 over index.json: openssl agrees.
    let t = std::process::Command::new("tar")
        .args(["xf", "b.tar", "index.json", "index.json.sig"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert_ok(&t, "tar x");
    let sig = std::fs::read_to_string(w.path("index.json.sig")).unwrap();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .unwrap();
    std::fs::write(w.path("sig.der"), der).unwrap();
    let v = std::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "k.pub",
            "-signature",
            "sig.der",
            "index.json",
        ])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert_ok(&v, "openssl verify");
    assert!(String::from_utf8_lossy(&v.stdout).contains("Verified OK"));

    // skopeo reads each image from the bundle and copies it with the same
    // digest. skopeo 1.9's oci transport skips index entries with Docker media
    // types, so the Docker schema 2 image is checked through install instead
    // (install_e2e.rs); see docs/bundle-format.md, section 3.2.
    let reg = Registry::plain();
    let bundle = w.s("b.tar");
    for img in [&fixtures::ROUTER, &fixtures::MODEL_LOADER] {
        let want = fixtures::index_digest(img);
        let src = format!("oci-archive:{bundle}:{}", img.reference);
        let inspect = skopeo(&["inspect", "--raw", &src]);
        assert_ok(&inspect, "skopeo inspect oci-archive");
        assert_eq!(atp_bundle::Digest::of(&inspect.stdout).to_string(), want);
        let dest = format!("docker://{}/copied/{}:{}", reg.host(), img.dir, img.tag);
        let c = skopeo(&[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &src,
            &dest,
        ]);
        assert_ok(&c, "skopeo copy");
        assert_eq!(
            skopeo_digest(&reg, &format!("copied/{}:{}", img.dir, img.tag)),
            want
        );
    }
}

#[test]
fn same_inputs_and_source_date_epoch_give_a_byte_identical_bundle() {
    let w = Work::new();
    assert_ok(&w.create_demo("a.tar", &[]), "create a");
    assert_ok(&w.create_demo("b.tar", &[]), "create b");
    assert_eq!(sha256_file(&w.path("a.tar")), sha256_file(&w.path("b.tar")));
    // No temp files are left beside the output.
    let names: Vec<String> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn inspect_lists_images_with_digests_platforms_and_users() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let o = w.bundler(&["inspect", "b.tar", "--json"]);
    assert_ok(&o, "inspect");
    let v = json(&o);
    let images = v["images"].as_array().unwrap();
    let router = images
        .iter()
        .find(|i| i["reference"] == "docker.io/atp/router:1.4.0")
        .expect("router listed");
    assert_eq!(router["digest"], fixtures::index_digest(&fixtures::ROUTER));
    assert_eq!(
        router["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(
        router["used_by"],
        serde_json::json!(["Deployment/atp-system/atp-router"])
    );
    // Text form says plainly that inspect does not verify.
    let t = w.bundler(&["inspect", "b.tar"]);
    assert!(String::from_utf8_lossy(&t.stdout).contains("not verified"));
}

#[test]
fn platform_flag_prunes_the_index_and_records_the_source_digest() {
    let w = Work::new();
    let o = w.create_demo("arm.tar", &["--platform", "linux/arm64", "--json"]);
    assert_ok(&o, "create --platform");
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
    assert_ok(
        &w.installer(&["verify", "arm.tar", "--key", "k.pub"]),
        "verify",
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:docker.io/atp/router:1.4.0", w.s("arm.tar")),
    ]);
    let idx: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(idx["manifests"][0]["platform"]["architecture"], "arm64");
    // The source digest is recorded in the signed index.
    let t = std::process::Command::new("tar")
        .args(["xOf", "arm.tar", "index.json"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    let index = String::from_utf8_lossy(&t.stdout);
    assert!(
        index.contains(&fixtures::index_digest(&fixtures::ROUTER)),
        "{index}"
    );
}

/// A spec that takes the fixture images from a registry (mapped to the names
/// the manifests use) and ships the repo's manifests.
fn registry_spec(w: &Work, reg: &Registry) -> String {
    let mut images = String::new();
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        fixtures::push(reg, img, &format!("vendor/{}", img.dir));
        images.push_str(&format!(
            "    - {{source: \"{}/vendor/{}:{}\", name: \"{}\"}}\n",
            reg.host(),
            img.dir,
            img.tag,
            img.reference
        ));
    }
    let root = repo_root().join("manifests");
    let spec = format!(
        "metadata: {{name: atp, version: 1.4.0}}\nspec:\n  channel: stable\n  sequence: 2\n  images:\n{images}  manifests:\n    root: {}\n    overlay: overlays/air-gapped\n",
        root.display()
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    w.s("spec.yaml")
}

#[test]
fn create_from_a_plain_http_registry_matches_create_from_layouts() {
    let w = Work::new();
    let reg = Registry::plain();
    let spec = registry_spec(&w, &reg);
    let o = w.bundler(&[
        "create",
        "--spec",
        &spec,
        "--key",
        "k.key",
        "--output",
        "r.tar",
        "--plain-http",
        &reg.host(),
        "--json",
    ]);
    assert_ok(&o, "create from registry");
    let v = json(&o);
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let got = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["reference"] == img.reference)
            .unwrap_or_else(|| panic!("{} missing", img.reference));
        assert_eq!(got["digest"], fixtures::index_digest(img));
    }
    assert_ok(
        &w.installer(&["verify", "r.tar", "--key", "k.pub"]),
        "verify",
    );

    // Without --plain-http the registry is spoken to over TLS, and refused.
    let o = w.bundler(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "x.tar",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!w.path("x.tar").exists());
}

#[test]
fn create_from_a_token_auth_registry_with_docker_config_credentials() {
    let w = Work::new();
    let reg = Registry::token();
    let spec = registry_spec(&w, &reg);
    let (user, password) = reg.credentials().unwrap();
    let host = reg.host();
    let mut args = vec![
        "create", "--spec", &spec, "--key", "k.key", "--output", "t.tar",
    ];
    if reg.cert_dir().is_none() {
        args.extend(["--plain-http", &host]);
    }
    // Anonymous: refused with an auth error.
    let o = w.bundler(&args);
    assert!(!o.status.success(), "{}", text(&o));
    w.docker_login(&host, &user, &password);
    let o = w.bundler(&args);
    assert_ok(&o, "create with token auth");
    assert!(
        !text(&o).contains(&password),
        "password leaked: {}",
        text(&o)
    );
    assert_ok(
        &w.installer(&["verify", "t.tar", "--key", "k.pub"]),
        "verify",
    );
}

#[test]
fn overlay_image_missing_from_the_spec_fails_create_naming_it() {
    let w = Work::new();
    let spec = format!(
        "metadata: {{name: atp, version: 1.4.0}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {{source: \"oci:{}:1.4.0\", name: docker.io/atp/router:1.4.0}}\n  manifests:\n    root: {}\n    overlay: overlays/air-gapped\n",
        fixtures::ROUTER.path().display(),
        repo_root().join("manifests").display()
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    let o = w.bundler(&[
        "create",
        "--spec",
        "spec.yaml",
        "--key",
        "k.key",
        "--output",
        "b.tar",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("docker.io/atp/model-loader:1.4.0"), "{err}");
    assert!(
        err.contains("docker.io/atp/metrics-exporter:0.9.2"),
        "{err}"
    );
    assert!(err.contains("Deployment/atp-system/atp-router"), "{err}");
    assert!(err.contains("discoverImages"), "{err}");
    assert!(!w.path("b.tar").exists());
}

#[test]
fn a_flipped_bit_in_a_layer_fails_verify_naming_the_blob_and_offset() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let o = w.installer(&["verify", "b.tar", "--key", "k.pub", "--json"]);
    let report = json(&o);
    // Flip one bit in the data of the last blob.
    let mut bytes = std::fs::read(w.path("b.tar")).unwrap();
    let listing = std::process::Command::new("tar")
        .args(["tvf", "b.tar"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    let last = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_start_matches("blobs/sha256/")
        .to_string();
    let size = report["bytes"].as_u64().unwrap() as usize;
    assert_eq!(size, bytes.len());
    let data_pos = find_data_of(&bytes, &last);
    bytes[data_pos + 3] ^= 0x10;
    std::fs::write(w.path("bad.tar"), &bytes).unwrap();
    let o = w.installer(&["verify", "bad.tar", "--key", "k.pub"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("sha256:{last}")), "{out}");
    assert!(out.contains("offset "), "{out}");
}

/// Data offset of the entry named `blobs/sha256/<hex>`.
fn find_data_of(tar: &[u8], hex: &str) -> usize {
    let name = format!("blobs/sha256/{hex}");
    let mut off = 0;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let n = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let size_field = std::str::from_utf8(&h[124..135]).unwrap();
        let size = u64::from_str_radix(size_field.trim_matches(char::from(0)), 8).unwrap() as usize;
        if &h[..n] == name.as_bytes() {
            return off + 512;
        }
        off += 512 + size.div_ceil(512) * 512;
    }
    panic!("{name} not found");
}
