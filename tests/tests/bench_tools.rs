//! The tools behind `make bench` (issue #9), on tiny workloads: `gen-workload`
//! is byte-for-byte reproducible and writes valid images (digests, sizes,
//! diff_ids, a two-platform index), and `bench-limit` really moves every blob
//! into a registry (mounting shared ones) and back out. No timing is asserted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use atp_testkit::{bins, Registry};
use sha2::{Digest, Sha256};

fn gen(kind: &str, out: &Path, extra: &[&str]) {
    let o = Command::new(bins::bin("gen-workload"))
        .arg(kind)
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// blobs.tsv as digest -> (size, repository, media type).
fn blobs(dir: &Path) -> BTreeMap<String, (u64, String, String)> {
    std::fs::read_to_string(dir.join("blobs.tsv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_owned(),
                (f[1].parse().unwrap(), f[2].to_owned(), f[3].to_owned()),
            )
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn gen_workload_is_reproducible_and_writes_valid_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    gen("A", &a, &["--total-mib", "2"]);
    gen("A", &b, &["--total-mib", "2"]);
    for f in [
        "images.tsv",
        "blobs.tsv",
        "mounts.tsv",
        "summary.json",
        "layout/index.json",
    ] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two runs"
        );
    }

    let listed = blobs(&a);
    let dir = a.join("layout/blobs/sha256");
    let mut on_disk = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().into_string().unwrap();
        assert_eq!(sha256_hex(&bytes), name, "blob stored under a wrong name");
        let (size, _, _) = &listed[&format!("sha256:{name}")];
        assert_eq!(*size, bytes.len() as u64);
        on_disk += 1;
    }
    assert_eq!(
        on_disk,
        listed.len(),
        "blobs.tsv lists exactly the blobs on disk"
    );

    // 12 tagged images; the first is an index of linux/amd64 and linux/arm64.
    let index = json(&a.join("layout/index.json"));
    let tags = index["manifests"].as_array().unwrap();
    assert_eq!(tags.len(), 12);
    assert_eq!(
        tags[0]["annotations"]["org.opencontainers.image.ref.name"],
        "bench-app-00"
    );
    let root = &tags[0]["digest"].as_str().unwrap()["sha256:".len()..];
    let multi = json(&dir.join(root));
    let archs: Vec<&str> = multi["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // Every layer is gzip whose tar content hashes to the config's diff_id.
    let one = &tags[1]["digest"].as_str().unwrap()["sha256:".len()..];
    let manifest = json(&dir.join(one));
    let config = json(&dir.join(&manifest["config"]["digest"].as_str().unwrap()[7..]));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "base, runtime, two app layers");
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let gz = std::fs::File::open(dir.join(&layer["digest"].as_str().unwrap()[7..])).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            format!("sha256:{}", sha256_hex(&tar)),
            diff_id.as_str().unwrap()
        );
        let mut archive = tar::Archive::new(&tar[..]);
        let entries = archive.entries().unwrap().count();
        assert_eq!(entries, 1, "one file per layer");
    }
}

#[test]
fn bench_limit_ingests_every_blob_then_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("c");
    gen("C", &w, &["--images", "3", "--total-mib", "1"]);
    let reg = Registry::plain();
    let host = reg.host();
    let limit = |args: &[&str]| {
        let o = Command::new(bins::bin("bench-limit"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let tsv = w.join("blobs.tsv");
    let dir = w.join("layout/blobs/sha256");
    limit(&[
        "ingest",
        &host,
        tsv.to_str().unwrap(),
        dir.to_str().unwrap(),
        "4",
    ]);
    limit(&["get", &host, tsv.to_str().unwrap(), "4"]);

    // The base layer was uploaded once and mounted into the other two repositories.
    let listed = blobs(&w);
    let uploads = reg
        .access_log()
        .into_iter()
        .filter(|a| a.method == "PUT" && a.path.contains("/blobs/uploads/"))
        .count();
    let plain_blobs = listed
        .values()
        .filter(|(_, _, mt)| !mt.contains("manifest"))
        .count();
    assert_eq!(uploads, plain_blobs, "one PUT per unique blob");
    let mounts = std::fs::read_to_string(w.join("mounts.tsv")).unwrap();
    assert_eq!(mounts.lines().count(), 2, "{mounts}");

    // Each image is complete in its own repository: skopeo can copy it out.
    let out = tmp.path().join("copy");
    let src = reg.skopeo_src_flags();
    let mut args: Vec<&str> = vec!["copy", "-q"];
    args.extend(src.iter().map(String::as_str));
    let manifest_digest = listed
        .iter()
        .find(|(_, (_, repo, mt))| repo == "bench/small-002" && mt.contains("manifest"))
        .map(|(d, _)| d.clone())
        .unwrap();
    let from = format!("docker://{host}/bench/small-002@{manifest_digest}");
    let to = format!("oci:{}:x", out.display());
    args.extend([from.as_str(), to.as_str()]);
    let o = atp_testkit::skopeo(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // BENCH_LIMIT_CHUNK: the same blobs as PATCH chunks, stored intact.
    let chunked = Registry::plain();
    let o = Command::new(bins::bin("bench-limit"))
        .args([
            "ingest",
            &chunked.host(),
            tsv.to_str().unwrap(),
            dir.to_str().unwrap(),
        ])
        .env("BENCH_LIMIT_CHUNK", "65536")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let patches = chunked
        .access_log()
        .into_iter()
        .filter(|a| a.method == "PATCH")
        .count();
    let big = listed.values().filter(|(size, _, _)| *size > 65536).count();
    assert!(
        big > 0 && patches >= big,
        "{patches} PATCHes for {big} large blobs"
    );
    let from = format!(
        "docker://{}/bench/small-002@{manifest_digest}",
        chunked.host()
    );
    let to = format!("oci:{}:y", out.display());
    let mut args: Vec<&str> = vec!["copy", "-q"];
    let src = chunked.skopeo_src_flags();
    args.extend(src.iter().map(String::as_str));
    args.extend([from.as_str(), to.as_str()]);
    let o = atp_testkit::skopeo(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
