//! Issue 11 end to end: a generated folder of model files is bundled
//! (`spec.files`), installed into a model cache folder byte-identically,
//! re-installed without a single write, updated (the old version stays
//! until its replacement is verified; `--prune` removes only vanished
//! files), refused when tampered before anything reaches the cache, refused
//! when a link leads out of the cache, and pushed to a real registry, where
//! both our own client and the real ORAS client (the `oras` PyPI package)
//! read every file back by `org.opencontainers.image.title`; and a file
//! larger than a split volume is installed from the volumes, both ways.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use atp_bundle::Digest;
use atp_registry::{Client, ClientOptions, DefaultCredentials, Reference, RegistryConfig};
use atp_testkit::cli::noise;
use atp_testkit::Registry;
use common::*;

const BIG: usize = (5 << 20) + 123;

/// A model folder: nested folders, an empty file, a file of a few MiB, and
/// the same content under two names.
fn make_models(dir: &Path) {
    let files: &[(&str, Vec<u8>)] = &[
        ("config.json", br#"{"model":"atp-llm","dim":4096}"#.to_vec()),
        ("empty.txt", Vec::new()),
        ("llm/weights.bin", noise(BIG, 1)),
        ("llm/tokenizer/vocab.txt", b"a\nb\nc\n".to_vec()),
        ("embed/deep/nested/model.onnx", noise(70_000, 2)),
        (
            "embed/copy-of-config.json",
            br#"{"model":"atp-llm","dim":4096}"#.to_vec(),
        ),
    ];
    for (rel, bytes) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// `relative path → sha256` of every regular file under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                out.insert(rel, sha256_file(&e.path()));
            }
        }
    }
    out
}

/// `relative path → (inode, mtime ns)` of every regular file under `dir`.
fn stamps(dir: &Path) -> BTreeMap<String, (u64, i64)> {
    tree(dir)
        .into_keys()
        .map(|rel| {
            let m = std::fs::metadata(dir.join(&rel)).unwrap();
            (rel, (m.ino(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
        })
        .collect()
}

/// Write a files-only spec and create the bundle `out`.
fn bundle_files(w: &Work, out: &str, models: &Path, sequence: u64) {
    bundle_files_with(w, out, models, sequence, &[]);
}

fn bundle_files_with(w: &Work, out: &str, models: &Path, sequence: u64, extra: &[&str]) {
    let spec = format!(
        "metadata: {{name: atp-models, version: 1.0.{sequence}}}\nspec:\n  channel: models\n  sequence: {sequence}\n  files:\n    - {{name: models, source: \"{}\"}}\n",
        models.display()
    );
    let spec_path = w.path(&format!("spec-{sequence}.yaml"));
    std::fs::write(&spec_path, spec).unwrap();
    let mut args = vec![
        "create",
        "--spec",
        spec_path.to_str().unwrap(),
        "--key",
        "k.key",
        "--output",
        out,
    ];
    args.extend_from_slice(extra);
    let mut c = w.bundler_cmd(&args);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
}

fn install_json(w: &Work, reg: &Registry, bundle: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = install(w, reg, bundle, &args);
    assert_ok(&out, "install");
    json(&out)
}

fn cache_counts(v: &serde_json::Value) -> (u64, u64) {
    let c = &v["model_files"]["model_cache"];
    (
        c["written"].as_u64().unwrap(),
        c["unchanged"].as_u64().unwrap(),
    )
}

#[test]
fn installs_byte_identical_files_and_a_rerun_writes_nothing() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    bundle_files(&w, "b.tar", &models, 1);
    let cache = w.path("cache");
    let cache_s = cache.to_str().unwrap();

    let v = install_json(&w, &reg, "b.tar", &["--model-cache-dir", cache_s]);
    assert_eq!(cache_counts(&v), (6, 0));
    let total: u64 = tree(&models)
        .keys()
        .map(|rel| std::fs::metadata(models.join(rel)).unwrap().len())
        .sum();
    assert_eq!(v["model_files"]["model_cache"]["bytes_written"], total);
    let original = tree(&models);
    assert_eq!(tree(&cache.join("models")), original);
    assert_eq!(
        std::fs::metadata(cache.join("models/empty.txt"))
            .unwrap()
            .len(),
        0
    );
    let mode = std::fs::metadata(cache.join("models/llm/weights.bin"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    // No temp file is left behind.
    assert_eq!(tree(&cache).len(), 6, "{:?}", tree(&cache));

    // The receipt lists every file with its size and digest.
    let receipt = w.path("state/receipts").join(format!(
        "{}.json",
        v["index_digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    ));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(receipt).unwrap()).unwrap();
    let listed: BTreeMap<String, (String, u64)> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["set"], "models");
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["digest"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(listed.len(), 6);
    for (rel, digest) in &original {
        let size = std::fs::metadata(models.join(rel)).unwrap().len();
        assert_eq!(listed[rel], (digest.clone(), size), "{rel}");
    }
    // The summary's model-cache entry matches too.
    assert_eq!(
        r["model_files"]["model_cache"]["files"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    // Again: nothing is copied, no inode or mtime changes.
    let before = stamps(&cache);
    let v = install_json(&w, &reg, "b.tar", &["--model-cache-dir", cache_s]);
    assert_eq!(cache_counts(&v), (0, 6));
    assert_eq!(v["model_files"]["model_cache"]["bytes_written"], 0);
    assert_eq!(stamps(&cache), before);
}

#[test]
fn an_update_replaces_changed_files_and_prune_removes_only_vanished_ones() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    bundle_files(&w, "b1.tar", &models, 1);
    let cache = w.path("cache");
    let cache_s = cache.to_str().unwrap();
    install_json(&w, &reg, "b1.tar", &["--model-cache-dir", cache_s]);

    // Things in the cache that are not the bundle's: another set's folder,
    // a link to a file outside, and a file of our own.
    let outside = w.path("outside.txt");
    std::fs::write(&outside, b"keep me").unwrap();
    std::fs::create_dir_all(cache.join("other")).unwrap();
    std::fs::write(cache.join("other/local.bin"), b"other set").unwrap();
    std::os::unix::fs::symlink(&outside, cache.join("models/link-out")).unwrap();
    let before = stamps(&cache);

    // Version 2: weights change, vocab vanishes, a new file appears.
    std::fs::write(models.join("llm/weights.bin"), noise(BIG, 9)).unwrap();
    std::fs::remove_file(models.join("llm/tokenizer/vocab.txt")).unwrap();
    std::fs::write(models.join("llm/new.bin"), b"new").unwrap();
    bundle_files(&w, "b2.tar", &models, 2);

    let v = install_json(&w, &reg, "b2.tar", &["--model-cache-dir", cache_s]);
    assert_eq!(cache_counts(&v), (2, 4));
    assert_eq!(
        v["model_files"]["model_cache"]["pruned"],
        serde_json::json!([])
    );
    let after = stamps(&cache);
    // Changed: replaced by rename (a new inode); unchanged: untouched.
    assert_ne!(
        after["models/llm/weights.bin"].0,
        before["models/llm/weights.bin"].0
    );
    for rel in [
        "models/config.json",
        "models/empty.txt",
        "models/embed/deep/nested/model.onnx",
    ] {
        assert_eq!(after[rel], before[rel], "{rel}");
    }
    // Without --prune the vanished file stays.
    assert!(cache.join("models/llm/tokenizer/vocab.txt").is_file());
    let mut want = tree(&models);
    want.insert(
        "llm/tokenizer/vocab.txt".into(),
        Digest::of(b"a\nb\nc\n").to_string(),
    );
    assert_eq!(tree(&cache.join("models")), want);

    // With --prune: exactly the vanished file goes.
    let v = install_json(
        &w,
        &reg,
        "b2.tar",
        &["--model-cache-dir", cache_s, "--prune"],
    );
    assert_eq!(cache_counts(&v), (0, 6));
    assert_eq!(
        v["model_files"]["model_cache"]["pruned"],
        serde_json::json!(["models/llm/tokenizer/vocab.txt"])
    );
    assert_eq!(tree(&cache.join("models")), tree(&models));
    assert!(std::fs::symlink_metadata(cache.join("models/link-out"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read(cache.join("other/local.bin")).unwrap(),
        b"other set"
    );
}

#[test]
fn a_tampered_file_payload_is_refused_before_anything_reaches_the_cache() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    bundle_files(&w, "b.tar", &models, 1);

    // Flip one byte in the middle of the weights' payload.
    let weights = Digest::of(&std::fs::read(models.join("llm/weights.bin")).unwrap());
    let opened = atp_bundle::open::Bundle::open(&w.path("b.tar")).unwrap();
    let loc = opened
        .blob(&weights)
        .expect("weights are in the bundle")
        .clone();
    drop(opened);
    let mut bytes = std::fs::read(w.path("b.tar")).unwrap();
    let at = (loc.data_offset + loc.size / 2) as usize;
    bytes[at] ^= 0x01;
    std::fs::write(w.path("bad.tar"), &bytes).unwrap();

    // Into an empty cache: refused, still empty.
    let cache = w.path("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let out = install(
        &w,
        &reg,
        "bad.tar",
        &[
            "--model-cache-dir",
            cache.to_str().unwrap(),
            "--files-to-registry",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed verification") && err.contains(&weights.to_string()),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    // Nothing was pushed either.
    assert!(reg
        .access_log()
        .iter()
        .all(|a| a.method != "PUT" && a.method != "POST" && a.method != "PATCH"));

    // Over a good install: the cache is left exactly as it was.
    install_json(
        &w,
        &reg,
        "b.tar",
        &["--model-cache-dir", cache.to_str().unwrap()],
    );
    let before = stamps(&cache);
    let sums = tree(&cache);
    let out = install(
        &w,
        &reg,
        "bad.tar",
        &["--model-cache-dir", cache.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(stamps(&cache), before);
    assert_eq!(tree(&cache), sums);
}

#[test]
fn links_that_lead_out_of_the_cache_are_refused() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    bundle_files(&w, "b.tar", &models, 1);
    let elsewhere = w.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();

    // The set's folder is a link out of the cache.
    let cache = w.path("cache1");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("models")).unwrap();
    let out = install(
        &w,
        &reg,
        "b.tar",
        &["--model-cache-dir", cache.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("symbolic link") && err.contains("outside"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A folder deeper down is a link out: refused before any file is
    // written, even those that sort before it.
    let cache = w.path("cache2");
    std::fs::create_dir_all(cache.join("models")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("models/llm")).unwrap();
    let out = install(
        &w,
        &reg,
        "b.tar",
        &["--model-cache-dir", cache.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("models/llm"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(tree(&cache), BTreeMap::new());

    // A file that is a link is never written through.
    let cache = w.path("cache3");
    std::fs::create_dir_all(cache.join("models")).unwrap();
    let target = w.path("target.txt");
    std::fs::write(&target, b"untouched").unwrap();
    std::os::unix::fs::symlink(&target, cache.join("models/config.json")).unwrap();
    let out = install(
        &w,
        &reg,
        "b.tar",
        &["--model-cache-dir", cache.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
}

/// `oras.client.OrasClient(...).pull(target, outdir)` with the `oras` PyPI
/// package from the repo venv; asserts it wrote six files.
fn oras_pull(w: &Work, reg: &Registry, target: &str, outdir: &Path) {
    std::fs::create_dir_all(outdir).unwrap();
    let script = "import sys, oras.client\n\
        c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
        files = c.pull(target=sys.argv[2], outdir=sys.argv[3])\n\
        print(len(files))\n";
    let out = std::process::Command::new(oras_python())
        .args(["-c", script, &reg.host(), target, outdir.to_str().unwrap()])
        .env("DOCKER_CONFIG", w.path("docker"))
        .output()
        .unwrap();
    assert_ok(&out, "oras pull");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "6",
        "{}",
        text(&out)
    );
}

fn oras_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/install-deps.sh (make test does)",
        py.display()
    );
    py
}

#[test]
fn files_to_registry_are_read_back_by_title_with_our_client_and_with_oras() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    bundle_files(&w, "b.tar", &models, 1);
    let original = tree(&models);

    let v = install_json(&w, &reg, "b.tar", &["--files-to-registry"]);
    let pushed = &v["model_files"]["registry"];
    assert_eq!(pushed.as_array().unwrap().len(), 1, "{v}");
    let target = format!("{}/atp-offline/files/models:1.0.1", reg.host());
    assert_eq!(pushed[0]["target"], target.as_str());
    assert_eq!(pushed[0]["source"], "atp-offline/files/models:1.0.1");
    // Six files, five distinct contents, plus the empty config.
    assert_eq!(v["model_files"]["registry_stats"]["uploaded"], 6);

    // 1. Our own client: manifest by tag, each layer by its title.
    let mut opts = ClientOptions {
        default_creds: DefaultCredentials::None,
        ..Default::default()
    };
    opts.registries.insert(
        reg.host(),
        RegistryConfig {
            plain_http: true,
            ..Default::default()
        },
    );
    let client = Client::new(opts).unwrap();
    let reference: Reference = target.parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got: BTreeMap<String, String> = rt.block_on(async {
        let m = client.get_manifest(&reference).await.unwrap();
        assert_eq!(m.digest.to_string(), pushed[0]["digest"].as_str().unwrap());
        let doc: atp_bundle::format::ImageManifest = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(
            doc.artifact_type.as_deref(),
            Some("application/vnd.atp-offline.files.v1")
        );
        assert_eq!(doc.config.media_type, "application/vnd.oci.empty.v1+json");
        let mut out = BTreeMap::new();
        for l in &doc.layers {
            let title = l
                .annotation("org.opencontainers.image.title")
                .unwrap()
                .to_string();
            let mut bytes = Vec::new();
            client
                .fetch_blob_to(reference.repository(), &l.digest, l.size, &mut bytes)
                .await
                .unwrap();
            out.insert(title, Digest::of(&bytes).to_string());
        }
        out
    });
    assert_eq!(got, original);

    // 2. The real ORAS client pulls the same tree.
    let outdir = w.path("oras-out");
    oras_pull(&w, &reg, &target, &outdir);
    assert_eq!(tree(&outdir), original);
    assert_eq!(
        std::fs::metadata(outdir.join("empty.txt")).unwrap().len(),
        0
    );

    // Again: the registry already has everything.
    let v = install_json(&w, &reg, "b.tar", &["--files-to-registry"]);
    assert_eq!(v["model_files"]["registry_stats"]["uploaded"], 0);
    assert_eq!(v["model_files"]["registry_stats"]["skipped"], 6);
}

#[test]
fn files_larger_than_a_volume_install_from_split_volumes() {
    let reg = Registry::plain();
    let w = Work::new();
    let models = w.path("models");
    make_models(&models);
    std::fs::create_dir_all(w.path("usb")).unwrap();
    // 1 MiB volumes: the 5 MiB weights span six of them.
    bundle_files_with(&w, "usb/b.tar", &models, 1, &["--split-size", "1048576"]);
    let volumes: Vec<_> = std::fs::read_dir(w.path("usb"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("b.tar.0"))
        .collect();
    assert!(volumes.len() >= 6, "{volumes:?}");
    assert!(!w.path("usb/b.tar").exists());

    let cache = w.path("cache");
    let v = install_json(
        &w,
        &reg,
        "usb/b.tar.volumes.json",
        &[
            "--model-cache-dir",
            cache.to_str().unwrap(),
            "--files-to-registry",
        ],
    );
    assert_eq!(cache_counts(&v), (6, 0));
    assert_eq!(tree(&cache.join("models")), tree(&models));
    // The registry copy came from the volumes too: ORAS reads it back whole.
    let outdir = w.path("oras-out");
    let target = format!("{}/atp-offline/files/models:1.0.1", reg.host());
    oras_pull(&w, &reg, &target, &outdir);
    assert_eq!(tree(&outdir), tree(&models));
}
