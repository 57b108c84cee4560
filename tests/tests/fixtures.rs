//! The committed fixture images are exactly what `gen-fixtures` produces, are
//! valid OCI layouts that skopeo reads, and have the structure the rest of
//! the test suite relies on (shared base layer, two platforms, a zstd layer,
//! a Docker schema 2 manifest).

use std::collections::BTreeMap;
use std::path::Path;

use atp_testkit::fixtures::{self, FixtureImage, IMAGES};
use atp_testkit::{fixture_gen, skopeo};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Every file under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn json(img: &FixtureImage, digest: &str) -> Value {
    serde_json::from_slice(&img.blob(digest)).unwrap()
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn regenerating_gives_the_committed_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_gen::generate(tmp.path()).unwrap();
    let fresh = tree(tmp.path());
    let committed: BTreeMap<_, _> = tree(&fixtures::images_dir())
        .into_iter()
        .filter(|(p, _)| IMAGES.iter().any(|i| p.starts_with(&format!("{}/", i.dir))))
        .collect();
    let fresh_paths: Vec<_> = fresh.keys().collect();
    let committed_paths: Vec<_> = committed.keys().collect();
    assert_eq!(
        fresh_paths, committed_paths,
        "hint: run `cargo run -p atp-testkit --bin gen-fixtures -- fixtures/images`"
    );
    for (path, bytes) in &fresh {
        assert!(
            committed[path] == *bytes,
            "{path} differs from the committed copy; hint: regenerate with gen-fixtures"
        );
    }
    let total: usize = fresh.values().map(Vec::len).sum();
    assert!(total < 1024 * 1024, "fixture images are {total} bytes");
}

#[test]
fn every_blob_is_named_by_its_digest_and_index_annotations_are_set() {
    for img in IMAGES {
        let root = img.path();
        assert_eq!(
            std::fs::read(root.join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
            let path = entry.unwrap().path();
            let hex = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert_eq!(
                hex::encode(Sha256::digest(std::fs::read(&path).unwrap())),
                hex
            );
        }
        let desc = img.descriptor();
        assert_eq!(desc["mediaType"], img.media_type, "{}", img.dir);
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            img.tag
        );
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            img.reference
        );
        assert_eq!(
            desc["size"].as_u64().unwrap() as usize,
            img.blob(&img.digest()).len()
        );
    }
}

#[test]
fn image_family_shares_the_base_layer() {
    let base = json(&fixtures::BASE, &fixtures::BASE.digest());
    let base_layer = layer_digests(&base)[0].clone();

    let router = &fixtures::ROUTER;
    let index = json(router, &router.digest());
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let manifest = json(router, m["digest"].as_str().unwrap());
            let config = json(router, manifest["config"]["digest"].as_str().unwrap());
            // Config matches the platform and lists one diff ID per layer.
            assert_eq!(config["architecture"], p["architecture"]);
            assert_eq!(config["os"], p["os"]);
            let layers = layer_digests(&manifest);
            assert_eq!(
                config["rootfs"]["diff_ids"].as_array().unwrap().len(),
                layers.len()
            );
            (
                p["architecture"].as_str().unwrap().to_owned(),
                layers[0].clone(),
            )
        })
        .collect();
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[0], ("amd64".to_owned(), base_layer.clone()));
    assert_eq!(platforms[1].0, "arm64");
    assert_ne!(platforms[1].1, base_layer, "arm64 has its own base layer");

    let loader = &fixtures::MODEL_LOADER;
    let m = json(loader, &loader.digest());
    assert_eq!(layer_digests(&m)[0], base_layer);
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    let exporter = &fixtures::METRICS_EXPORTER;
    let m = json(exporter, &exporter.digest());
    assert_eq!(m["mediaType"], fixtures::DOCKER_MANIFEST);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(layer_digests(&m)[0], base_layer);
}

#[test]
fn diff_ids_are_the_digests_of_the_uncompressed_tars() {
    let img = &fixtures::MODEL_LOADER;
    let m = json(img, &img.digest());
    let config = json(img, m["config"]["digest"].as_str().unwrap());
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let gz = img.blob(m["layers"][0]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut tar).unwrap();
    assert_eq!(
        diff_ids[0],
        format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
    );
    let zst = img.blob(m["layers"][1]["digest"].as_str().unwrap());
    let tar = zstd::decode_all(zst.as_slice()).unwrap();
    assert_eq!(
        diff_ids[1],
        format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
    );
}

#[test]
fn skopeo_reads_the_router_index_from_the_layout() {
    let router = &fixtures::ROUTER;
    let dir = router.path();
    let out = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:{}", dir.display(), router.tag),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&out.stdout)));
    assert_eq!(digest, router.digest());
    let index: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index["mediaType"], fixtures::OCI_INDEX);
}

#[test]
fn skopeo_reads_the_oci_manifest_layouts() {
    for img in IMAGES
        .iter()
        .filter(|i| i.media_type == fixtures::OCI_MANIFEST)
    {
        let out = skopeo(&["inspect", "--raw", &img.oci_ref()]);
        assert!(
            out.status.success(),
            "{}: {}",
            img.dir,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, img.blob(&img.digest()), "{}", img.dir);
    }
}
