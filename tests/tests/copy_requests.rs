//! How many requests the copy engine sends (issue 21), counted in the real
//! registry's access log: a fresh install asks once per image and then only
//! writes (no HEAD before a manifest whose blobs it just wrote; the root
//! goes up by its tag alone), and a re-install is one HEAD per image. The
//! air-gap gate after the copy asks nothing about the images the copy just
//! wrote or found in place.

mod common;

use std::collections::BTreeMap;

use atp_testkit::{Access, Registry};
use common::*;

/// The demo bundle (manifests/bundle.yaml): three images, each in its own
/// repository; one (router) is a two-platform index.
const IMAGES: usize = 3;
/// The index's two platform manifests.
const CHILDREN: usize = 2;

/// Requests per kind (`HEAD tag`, `PUT digest`, `PUT blob-upload`, ...),
/// 401s and the `/v2/` ping left out.
fn kinds(log: &[Access]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in log.iter().filter(|a| a.status != 401) {
        let what = if a.path.contains("/blobs/uploads/") {
            "blob-upload"
        } else if a.path.contains("/blobs/") {
            "blob"
        } else if a.path.contains("/manifests/sha256:") {
            "digest"
        } else if a.path.contains("/manifests/") {
            "tag"
        } else {
            continue;
        };
        *out.entry(format!("{} {what}", a.method)).or_default() += 1;
    }
    out
}

fn count(k: &BTreeMap<String, usize>, key: &str) -> usize {
    k.get(key).copied().unwrap_or(0)
}

#[test]
fn fresh_install_heads_each_image_once_and_a_reinstall_sends_nothing_else() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");

    let mark = reg.access_mark();
    let out = install(&w, &reg, "b.tar", &["--json"]);
    assert_ok(&out, "install");
    let done = json(&out);
    let k = kinds(&reg.access_log_since(mark));
    let n = |key| count(&k, key);
    let uploaded = done["uploaded"].as_u64().unwrap() as usize;
    let mounted = done["mounted"].as_u64().unwrap() as usize;
    assert!(uploaded > IMAGES, "{done:#}");
    // One HEAD per image (its tag), and no HEAD before a manifest: each
    // references a blob or child this install wrote. After the copy, the
    // air-gap gate asks nothing: every rendered image is one the copy just
    // wrote.
    assert_eq!(n("HEAD tag"), IMAGES, "{k:#?}");
    assert_eq!(n("HEAD digest"), 0, "{k:#?}");
    // The index's children by digest, then each root by its tag alone
    // (which files it under its digest too): reported as both pushed.
    assert_eq!(n("PUT digest"), CHILDREN, "{k:#?}");
    assert_eq!(n("PUT tag"), IMAGES, "{k:#?}");
    assert_eq!(
        done["manifests_pushed"],
        (CHILDREN + 2 * IMAGES) as u64,
        "{done:#}"
    );
    // Blobs: one HEAD per (repository, blob), then a session and a PUT per
    // upload, one POST per mount.
    assert_eq!(n("HEAD blob"), uploaded + mounted, "{k:#?}");
    assert_eq!(n("POST blob-upload"), uploaded + mounted, "{k:#?}");
    assert_eq!(n("PUT blob-upload"), uploaded, "{k:#?}");
    assert_eq!(n("GET tag") + n("GET digest") + n("GET blob"), 0, "{k:#?}");

    // Again: one HEAD per image says it is all there; nothing else is sent
    // (the gate takes the copy's answers).
    let mark = reg.access_mark();
    let out = install(&w, &reg, "b.tar", &["--json"]);
    assert_ok(&out, "re-install");
    let again = json(&out);
    let log = reg.access_log_since(mark);
    let k = kinds(&log);
    assert_eq!(
        k,
        BTreeMap::from([("HEAD tag".to_string(), IMAGES)]),
        "{log:#?}"
    );
    assert_eq!(again["uploaded"], 0, "{again:#}");
    assert_eq!(again["mounted"], 0, "{again:#}");
    assert_eq!(again["manifests_pushed"], 0, "{again:#}");
    assert_eq!(again["skipped"], (uploaded + mounted) as u64, "{again:#}");
}

#[test]
fn an_image_whose_tag_moved_is_asked_about_in_full_and_only_its_tag_is_written() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    assert_ok(&install(&w, &reg, "b.tar", &[]), "install");
    // The tags the install wrote, as /v2/<repo>/manifests/<tag>.
    let tags: Vec<String> = reg
        .access_log()
        .iter()
        .filter(|a| a.method == "PUT" && a.path.contains("/manifests/"))
        .filter(|a| !a.path.contains("/manifests/sha256:"))
        .map(|a| a.path.trim_start_matches("/v2/").to_string())
        .collect();
    assert_eq!(tags.len(), IMAGES, "{tags:?}");
    let moved = tags[0].replace("/manifests/", ":");
    let from = tags[1].replace("/manifests/", ":");
    let moved_digest = skopeo_digest(&reg, &moved);
    // Point the first image's tag at the second image (skopeo copies its
    // blobs into the first repository too).
    let mut args = vec!["copy".to_string()];
    args.extend(reg.skopeo_src_flags());
    args.extend(reg.skopeo_dest_flags());
    args.push(format!("docker://{}/{from}", reg.host()));
    args.push(format!("docker://{}/{moved}", reg.host()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&atp_testkit::skopeo(&a), "skopeo copy");
    assert_ne!(skopeo_digest(&reg, &moved), moved_digest);

    let mark = reg.access_mark();
    let out = install(&w, &reg, "b.tar", &["--json"]);
    assert_ok(&out, "re-install");
    let done = json(&out);
    let k = kinds(&reg.access_log_since(mark));
    let n = |key| count(&k, key);
    // One HEAD per image, then the moved image's root by digest (there);
    // the gate asks nothing.
    assert_eq!(n("HEAD tag"), IMAGES, "{k:#?}");
    assert_eq!(n("HEAD digest"), 1, "{k:#?}");
    // Its blobs are asked for (all there), nothing is uploaded.
    assert!(n("HEAD blob") >= 2, "{k:#?}");
    assert_eq!(n("POST blob-upload") + n("PUT blob-upload"), 0, "{k:#?}");
    // Only the tag is written, back to the bundle's digest.
    assert_eq!(n("PUT tag") + n("PUT digest"), 1, "{k:#?}");
    assert_eq!(done["manifests_pushed"], 1, "{done:#}");
    assert_eq!(skopeo_digest(&reg, &moved), moved_digest);
}
