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

/// `bench-report.py` over hand-made raw rows (issue 21): the C table gains
/// the `skopeo sync` peer, the serve section of issue 18 appears with its
/// sendfile reference, each command's phase profile is tabled, each goal of
/// issue 21 is judged from ratios of the same run (met, or missed by how
/// much, and what bounds it) beside the baseline at filing, a ratio worse
/// than at filing is named, the raw rows are named where they are
/// committed, and text outside the markers is kept.
#[test]
fn bench_report_judges_the_issue_21_goals_from_raw_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rows = String::from("workload\trun\tphase\ttool\tseconds\tmax_rss_kib\tbytes\n");
    let mib = 1024 * 1024u64;
    for (w, phase, tool, secs, rss, bytes) in [
        ("A", "size", "ours", 0.0, 0, 1024 * mib),
        ("A", "size", "skopeo", 0.0, 0, 1024 * mib),
        ("A", "create", "ours", 2.0, 40 * 1024, 0),
        ("A", "create", "skopeo", 4.0, 22 * 1024, 0),
        ("A", "create", "limit-get", 0.5, 0, 0),
        ("A", "create", "limit-write", 3.0, 0, 0),
        ("A", "verify", "ours", 0.5, 9 * 1024, 0),
        ("A", "verify", "sha256sum", 3.0, 0, 0),
        ("A", "verify", "limit-openssl", 0.9, 0, 0),
        ("A", "install", "ours", 4.0, 25 * 1024, 0),
        ("A", "install", "skopeo", 7.0, 22 * 1024, 0),
        ("A", "install", "limit-ingest", 4.0, 0, 0),
        ("A", "reinstall", "ours", 0.6, 12 * 1024, 0),
        ("A", "reinstall", "skopeo", 0.4, 22 * 1024, 0),
        ("A", "serve", "ours", 11.0, 0, 0),
        ("A", "serve", "registry", 10.0, 0, 0),
        ("A", "serve-get", "ours", 2.0, 0, 1000 * mib),
        ("A", "serve-get", "limit-read", 0.5, 0, 1024 * mib),
        ("A", "serve", "serve-rss", 30.0, 30 * 1024, 0),
        ("A", "serve-get", "limit-sendfile", 1.0, 0, 1000 * mib),
        ("A", "profile-create", "download", 1.5, 0, 0),
        ("A", "profile-create", "fsync", 0.25, 0, 0),
        ("A", "profile-reinstall", "verify", 0.45, 0, 0),
        ("C", "size", "ours", 0.0, 0, 310 * mib),
        ("C", "size", "skopeo", 0.0, 0, 310 * mib),
        ("C", "create", "ours", 2.0, 40 * 1024, 0),
        ("C", "create", "skopeo", 10.0, 22 * 1024, 0),
        ("C", "create", "skopeo-sync", 4.0, 30 * 1024, 0),
        ("C", "create", "limit-get", 1.0, 0, 0),
        ("C", "create", "limit-write", 0.9, 0, 0),
        ("C", "verify", "ours", 0.2, 9 * 1024, 0),
        ("C", "verify", "sha256sum", 0.9, 0, 0),
        ("C", "verify", "limit-openssl", 0.3, 0, 0),
        ("C", "install", "ours", 5.0, 25 * 1024, 0),
        ("C", "install", "skopeo", 20.0, 22 * 1024, 0),
        ("C", "install", "skopeo-sync", 8.0, 30 * 1024, 0),
        ("C", "install", "limit-ingest", 4.0, 0, 0),
        ("C", "reinstall", "ours", 1.0, 12 * 1024, 0),
        ("C", "reinstall", "skopeo", 8.0, 22 * 1024, 0),
        ("C", "reinstall", "skopeo-sync", 2.0, 30 * 1024, 0),
    ] {
        rows.push_str(&format!(
            "{w}\t1\t{phase}\t{tool}\t{secs}\t{rss}\t{bytes}\n"
        ));
    }
    std::fs::write(dir.join("results.tsv"), rows).unwrap();
    std::fs::write(
        dir.join("machine.env"),
        "cores=2\ncpu=x\nsha_ni=yes\nmem_gib=24\ncommit=abc\nload=1 1 1\nothers=0\n",
    )
    .unwrap();
    for (w, images) in [("A", 12), ("C", 300)] {
        std::fs::write(
            dir.join(format!("summary-{w}.json")),
            format!(r#"{{"workload":"{w}","images":{images},"unique_blobs":1,"blob_bytes":1}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("baseline.tsv"),
        "# source: the run at filing\nworkload\tphase\tagainst\tratio\nA\treinstall\tpeer\t2.0\nA\tcreate\tpeer\t0.4\nA\tinstall\tpeer\t0.6\nA\tinstall\tlimit\t0.9\n",
    )
    .unwrap();
    let doc = dir.join("PERFORMANCE.md");
    std::fs::write(
        &doc,
        "# Performance\n\nkept above\n\n<!-- bench:begin: generated by scripts/bench.sh (make bench); edits inside are overwritten -->\nold\n<!-- bench:end -->\n\nkept below\n",
    )
    .unwrap();
    let script = atp_testkit::fixtures::fixtures_dir()
        .parent()
        .unwrap()
        .join("scripts/bench-report.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(&doc)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(text.contains("kept above") && text.contains("kept below"));
    assert!(!text.contains("\nold\n"), "{text}");
    for want in [
        // C against one skopeo sync process.
        "| create | 2.00 | 4.00 (skopeo sync) | 0.50 |",
        "| install | 5.00 | 8.00 (skopeo sync) | 0.62 |",
        "| re-install | 1.00 | 2.00 (skopeo sync) | 0.50 |",
        // Serve: 11 s against 10 s; 500 MiB/s against 2048 MiB/s.
        "| skopeo copy of every image into an empty registry (s) | 11.00 | 10.00 (from docker-registry) | 1.10 |",
        "| GET of every blob, 4 in flight (MiB/s) | 500 | 2048 (page-cache read of the file) | 0.24 |",
        "| peak RSS of `atp-installer serve` (MiB) | 30 | — | — |",
        "| the same GETs (MiB/s) | 500 | 1000 (from a sendfile server of the untarred blobs: no hashing, no copy) | 0.50 |",
        // Each command's per-phase profile, from its --json timings_ms.
        "| atp-bundler create | download 1500, fsync 250 ms | — |",
        "| atp-installer install (again) | verify 450 ms | — |",
        // The goals, judged, beside the baseline and with what bounds each.
        "| A verify: throughput ÷ one `openssl dgst -sha256` | ≥ 1.6× | — | 1.80 | **met** |",
        "| C verify: throughput ÷ one `openssl dgst -sha256` | ≥ 1.6× | — | 1.50 | **not met** (missed by 6 %: 0.94 of the goal) |",
        "| A re-install ÷ skopeo's second copy | ≤ 1.0× | 2.00 | 1.50 | **not met** (missed by 50 %: 1.50× the goal) | the re-verify it must do: `atp-installer verify` alone is 1.25× skopeo's copy; profile: verify 450 ms |",
        "| C create ÷ the slower limit | ≤ 1.5× | — | 2.00 | **not met** (missed by 33 %: 1.33× the goal) | limit: GET 1.00 s, write 0.90 s |",
        "| A create ÷ skopeo | ≤ 0.5× | 0.40 | 0.50 | **met** | profile: download 1500, fsync 250 ms |",
        "| C install ÷ the registry's ingest ceiling | ≤ 1.15× | — | 1.25 | **not met** (missed by 9 %: 1.09× the goal) |",
        "| A memory: largest peak RSS of our commands (MiB) | < 100 | — | 40 | **met** |",
        "| A serve: skopeo copy from `serve` ÷ from a docker-registry | ≤ 1.1× | — | 1.10 | **met** |",
        "| A serve: 4-parallel GET ÷ the page-cache read of the file | ≥ 0.8× | — | 0.24 | **not met** (missed by 69 %: 0.31 of the goal) | every response is hashed before its last byte (verified = used): SHA-256 on both cores is 2276 MiB/s = 1.11× the page-cache read, shared with the 4 clients; sendfile without hashing reaches 0.49× |",
        // Nothing slower than at filing, or it is named.
        "| A | create | 0.40 | 0.50 | — | 0.67 | slower |",
        // Worse against its ceiling but better against skopeo: not slower.
        "| A | install | 0.60 | 0.57 | 0.90 | 1.00 |  |",
        "Slower than at filing: A create.",
        "[`docs/bench/results.tsv`](bench/results.tsv)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
