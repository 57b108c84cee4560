//! A correctly signed bundle whose file-set titles climb out with `..`
//! (issue 24, test suite). The bundle is made by `atp-bundler create`, then
//! one file's `org.opencontainers.image.title` (in the set manifest) and its
//! path (in the bundle config) are rewritten and `index.json` is signed again
//! with the same key, so signature, digests and order are all right and only
//! the path check can refuse it. `install --model-cache-dir DIR` must refuse
//! it naming the path, write nothing inside or outside DIR, and send nothing
//! to the registry. A harmless rename through the same rewrite installs, so
//! the refusal is the path's and not the rewrite's.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use atp_bundle::format::json::to_canonical_vec;
use atp_bundle::sample::broken::split;
use atp_bundle::writer::{bundle_bytes, SignedIndex};
use atp_bundle::Digest;
use atp_testkit::Registry;
use common::*;
use serde_json::Value;

const CONFIG: &[u8] = br#"{"model":"atp-llm"}"#;

/// A bundle `b.tar` with one image and set `models` (`config.json` and
/// `llm/weights.bin`), signed with the workdir's key. The image is there so
/// that a refusal can be seen to come before any push.
fn create_files_bundle(w: &Work) {
    let models = w.path("src-models");
    std::fs::create_dir_all(models.join("llm")).unwrap();
    std::fs::write(models.join("config.json"), CONFIG).unwrap();
    std::fs::write(models.join("llm/weights.bin"), vec![7u8; 4096]).unwrap();
    let spec = format!(
        "metadata: {{name: atp-models, version: 1.0.1}}\nspec:\n  channel: models\n  sequence: 1\n  images:\n    - {{source: \"oci:{}\", name: \"docker.io/atp/router:1.4.0\"}}\n  files:\n    - {{name: models, source: \"{}\"}}\n",
        repo_root().join("fixtures/images/router:1.4.0").display(),
        models.display()
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    let mut c = w.bundler_cmd(&[
        "create",
        "--spec",
        "spec.yaml",
        "--key",
        "k.key",
        "--output",
        "b.tar",
    ]);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
}

/// Replace the blob `old` by `bytes` at the same place in the archive order;
/// returns the new descriptor's `(digest, size)`.
fn replace_blob(blobs: &mut [(Digest, Vec<u8>)], old: &Value, bytes: Vec<u8>) -> (String, u64) {
    let old = old.as_str().unwrap();
    let slot = blobs
        .iter_mut()
        .find(|(d, _)| d.to_string() == old)
        .unwrap_or_else(|| panic!("blob {old} is not in the bundle"));
    let digest = Digest::of(&bytes);
    let size = bytes.len() as u64;
    *slot = (digest.clone(), bytes);
    (digest.to_string(), size)
}

fn blob<'a>(blobs: &'a [(Digest, Vec<u8>)], digest: &Value) -> &'a [u8] {
    let digest = digest.as_str().unwrap();
    &blobs
        .iter()
        .find(|(d, _)| d.to_string() == digest)
        .unwrap()
        .1
}

fn set_descriptor(desc: &mut Value, (digest, size): (String, u64)) {
    desc["digest"] = digest.into();
    desc["size"] = size.into();
}

/// Copy `src` to `out` with the file `from` of every set renamed `to`, in
/// the set manifest's title and in the bundle config, and `index.json`
/// signed again with the workdir's key.
fn retitle(w: &Work, src: &str, out: &str, from: &str, to: &str) {
    let entries = split(&std::fs::read(w.path(src)).unwrap());
    let names: Vec<String> = entries[..3].iter().map(|e| e.path()).collect();
    assert_eq!(names, ["oci-layout", "index.json", "index.json.sig"]);
    let mut blobs: Vec<(Digest, Vec<u8>)> = entries[3..]
        .iter()
        .map(|e| {
            let d = Digest::of(&e.data);
            assert_eq!(e.path(), d.blob_path());
            (d, e.data.clone())
        })
        .collect();
    let mut index: Value = serde_json::from_slice(&entries[1].data).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    let role = |m: &Value| m["annotations"]["dev.atp-offline.role"].clone();

    let mut titles = 0;
    for m in manifests.iter_mut().filter(|m| role(m) == "files") {
        let mut set: Value = serde_json::from_slice(blob(&blobs, &m["digest"])).unwrap();
        for layer in set["layers"].as_array_mut().unwrap() {
            let title = &mut layer["annotations"]["org.opencontainers.image.title"];
            if title == from {
                *title = to.into();
                titles += 1;
            }
        }
        let new = replace_blob(&mut blobs, &m["digest"], to_canonical_vec(&set).unwrap());
        set_descriptor(m, new);
    }
    assert_eq!(titles, 1, "{from:?} is not the title of one file");

    let artifact = &mut manifests[0];
    assert_eq!(role(artifact), "bundle");
    let mut manifest: Value = serde_json::from_slice(blob(&blobs, &artifact["digest"])).unwrap();
    let mut config: Value =
        serde_json::from_slice(blob(&blobs, &manifest["config"]["digest"])).unwrap();
    let mut paths = 0;
    for f in config["files"].as_array_mut().unwrap() {
        if f["path"] == from {
            f["path"] = to.into();
            paths += 1;
        }
    }
    assert_eq!(paths, 1, "{from:?} is not one file of the bundle config");
    let new = replace_blob(
        &mut blobs,
        &manifest["config"]["digest"],
        to_canonical_vec(&config).unwrap(),
    );
    set_descriptor(&mut manifest["config"], new);
    let new = replace_blob(
        &mut blobs,
        &artifact["digest"],
        to_canonical_vec(&manifest).unwrap(),
    );
    set_descriptor(artifact, new);

    let key = atp_bundle::keys::load_private_file(&w.path("k.key"), "").unwrap();
    let index_json = to_canonical_vec(&index).unwrap();
    let signature = atp_bundle::sign::sign(&key, &index_json);
    let signed = SignedIndex {
        index_json,
        signature,
    };
    std::fs::write(w.path(out), bundle_bytes(&signed, &blobs).unwrap()).unwrap();
}

/// Every path under `dir` (files, folders, links), relative to it.
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn install_refuses_a_signed_bundle_whose_file_titles_use_dotdot_and_writes_or_pushes_nothing() {
    let reg = Registry::plain();
    let w = Work::new();
    create_files_bundle(&w);
    // Both sit in the workdir: "../../escape" from DIR/models lands there.
    let cache = w.path("cache");

    for (i, evil) in ["../../escape", "../escape", "llm/../../../escape"]
        .into_iter()
        .enumerate()
    {
        let bundle = format!("evil-{i}.tar");
        retitle(&w, "b.tar", &bundle, "config.json", evil);

        // Well signed and complete, yet verify refuses it: a file title is
        // the path the file is installed under.
        let o = w.installer(&["verify", &bundle, "--key", "k.pub"]);
        assert_eq!(o.status.code(), Some(1), "verify {evil}: {}", text(&o));
        let said = text(&o);
        assert!(said.contains(&format!("titled {evil:?}")), "{said}");

        let before = listing(w.dir.path());
        let mark = reg.access_mark();
        let out = w
            .install(&bundle)
            .registry(&reg)
            .arg("--model-cache-dir")
            .arg(&cache)
            .output();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{evil}: {}", text(&out));
        assert!(err.contains("failed verification"), "{}", text(&out));
        assert!(err.contains(&format!("titled {evil:?}")), "{}", text(&out));
        assert!(err.contains("`..` component"), "{}", text(&out));

        let log = reg.access_log_since(mark);
        assert!(
            log.is_empty(),
            "{evil}: requests reached the registry: {log:?}"
        );
        // Nothing inside DIR, nothing outside it: the workdir changed only
        // in the state dir (the failed run is counted in metrics.json).
        assert_eq!(listing(&cache), BTreeSet::new(), "{evil}: written in DIR");
        let after = listing(w.dir.path());
        let new: Vec<&String> = after
            .difference(&before)
            .filter(|p| !p.starts_with("state"))
            .collect();
        assert!(new.is_empty(), "{evil}: written outside DIR: {new:?}");
        assert!(!after.iter().any(|p| p.ends_with("escape")), "{after:?}");
        let receipts = listing(&w.path("state/receipts"));
        assert!(receipts.is_empty(), "{evil}: a receipt: {receipts:?}");
    }

    // The same rewrite with a harmless name installs: the signature, digests
    // and order of a rewritten bundle are right, so the path alone refused.
    retitle(&w, "b.tar", "renamed.tar", "config.json", "renamed.json");
    let out = w
        .install("renamed.tar")
        .registry(&reg)
        .arg("--model-cache-dir")
        .arg(&cache)
        .output();
    assert_ok(&out, "install of the harmlessly renamed bundle");
    assert_eq!(
        std::fs::read(cache.join("models/renamed.json")).unwrap(),
        CONFIG
    );
    assert!(!cache.join("models/config.json").exists());
}
