//! One image under two names, through the commands the shared-digest tests
//! (`supply_chain_shared_digest.rs`: `install`, `sync`) leave out: `serve`
//! answers both names with every manifest and blob, `sync --dry-run` plans
//! both and writes nothing, and `install --single-pass` lands both at the
//! bundle's digest. The base image (with its upstream supply chain) and the
//! router (an index) each stand in the source under two repositories.

mod common;
mod supply_chain_support;

use atp_bundle::Digest;
use atp_testkit::fixtures::{self, BASE, ROUTER};
use atp_testkit::supply_chain::{fallback_tag, OCI_INDEX};
use atp_testkit::Registry;
use common::*;
use serde_json::Value;
use supply_chain_support::*;

/// Each image's two source repositories and its tag.
const NAMES: [(&str, &str, &str); 2] = [
    ("atp/base", "atp/base-mirror", "1.0.0"),
    ("atp/router", "atp/router-mirror", "1.4.0"),
];

/// The upstream base with its supply chain, the same base as
/// `atp/base-mirror`, and the router as `atp/router` and `atp/router-mirror`.
fn two_names() -> Upstream {
    let up = upstream();
    assert_eq!(
        fixtures::push(&up.src, &BASE, "atp/base-mirror"),
        up.subject
    );
    for repo in ["atp/router", "atp/router-mirror"] {
        assert_eq!(
            fixtures::push(&up.src, &ROUTER, repo),
            fixtures::index_digest(&ROUTER)
        );
    }
    up
}

/// `SOURCE/repo:tag` of every image, each image under both names.
fn references(up: &Upstream) -> Vec<String> {
    NAMES
        .iter()
        .flat_map(|(a, b, tag)| [a, b].map(|r| format!("{}/{r}:{tag}", up.src.host())))
        .collect()
}

/// The digest each name must have: the base's subject, the router's index.
fn digest_of(up: &Upstream, repo: &str) -> String {
    if repo.contains("base") {
        up.subject.clone()
    } else {
        fixtures::index_digest(&ROUTER)
    }
}

/// The site repository of a source repository under the nested mapping.
fn site_repo(up: &Upstream, repo: &str) -> String {
    format!("{}/{repo}", up.src.host().replace(':', "-"))
}

/// A bundle `b.tar` of every image under both names.
fn create_bundle(w: &Work, up: &Upstream) {
    Bundle::new(w, &up.src)
        .name("two")
        .images(references(up))
        .create("b.tar");
}

/// GET a manifest of `repo` from `served` by tag or digest: 200, its bytes.
fn served_manifest(served: &Served, repo: &str, reference: &str) -> Vec<u8> {
    let (code, body) = served.get(&format!("/v2/{repo}/manifests/{reference}"));
    assert_eq!(code, "200", "{repo}:{reference}");
    body
}

/// Walk what `served` serves under `repo` from the manifest `bytes`: every
/// child manifest by digest, every config and layer, each body hashing to
/// its digest. Returns the blobs' digests.
fn served_blobs(served: &Served, repo: &str, bytes: &[u8]) -> Vec<String> {
    let m: Value = serde_json::from_slice(bytes).unwrap();
    let mut blobs = Vec::new();
    for child in m["manifests"].as_array().into_iter().flatten() {
        let d = child["digest"].as_str().unwrap();
        let body = served_manifest(served, repo, d);
        assert_eq!(Digest::of(&body).to_string(), d, "{repo}@{d}");
        blobs.extend(served_blobs(served, repo, &body));
    }
    let layers = m["layers"].as_array().into_iter().flatten();
    for blob in m.get("config").into_iter().chain(layers) {
        let d = blob["digest"].as_str().unwrap();
        let (code, body) = served.get(&format!("/v2/{repo}/blobs/{d}"));
        assert_eq!(code, "200", "{repo} blob {d}");
        assert_eq!(Digest::of(&body).to_string(), d, "{repo} blob {d}");
        assert_eq!(body.len() as u64, blob["size"].as_u64().unwrap());
        blobs.push(d.to_string());
    }
    blobs
}

#[test]
fn serve_answers_both_names_of_one_image_with_every_manifest_blob_and_referrer() {
    let up = two_names();
    let w = Work::new();
    create_bundle(&w, &up);
    let served = Served::start(&w, "b.tar");
    for (first, second, tag) in NAMES {
        let mut seen = Vec::new();
        for repo in [first, second] {
            let repo = site_repo(&up, repo);
            let root = served_manifest(&served, &repo, tag);
            assert_eq!(
                Digest::of(&root).to_string(),
                digest_of(&up, &repo),
                "{repo}:{tag}"
            );
            let blobs = served_blobs(&served, &repo, &root);
            assert!(!blobs.is_empty(), "{repo}");
            seen.push(blobs);
        }
        assert_eq!(seen[0], seen[1], "both names serve the same blobs");
    }
    // The base's supply chain, carried once, answers under both names.
    for repo in ["atp/base", "atp/base-mirror"] {
        let repo = site_repo(&up, repo);
        let (code, body) = served.get(&format!("/v2/{repo}/referrers/{}", up.subject));
        assert_eq!(code, "200", "{repo}");
        let idx: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(idx["mediaType"], OCI_INDEX);
        assert_eq!(
            digests(idx["manifests"].as_array().unwrap()),
            [
                up.chain.sbom.digest.clone(),
                up.chain.attestation.digest.clone()
            ],
            "{repo}"
        );
        let sig = served_manifest(
            &served,
            &repo,
            &format!("{}.sig", fallback_tag(&up.subject)),
        );
        assert_eq!(sig, up.chain.signature.bytes, "{repo}");
    }
}

#[test]
fn sync_dry_run_of_one_image_under_two_names_plans_both_and_writes_nothing() {
    let up = two_names();
    let w = Work::new();
    let site = Registry::plain();
    let (site_host, src_host) = (site.host(), up.src.host());
    let mut args = vec!["sync".to_string()];
    for r in references(&up) {
        args.extend(["--image".into(), r]);
    }
    args.extend([
        "--registry".into(),
        site_host.clone(),
        "--plain-http".into(),
        "--plain-http".into(),
        src_host.clone(),
        "--dry-run".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mark = site.access_mark();
    let o = w.bundler(&[&a[..], &["--json"]].concat());
    assert_ok(&o, "sync --dry-run");
    let plan = json(&o);
    assert_eq!(plan["dry_run"], true);
    let targets: Vec<(String, String)> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["target"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (first, second, tag) in NAMES {
        for repo in [first, second] {
            let target = format!("{site_host}/{}:{tag}", site_repo(&up, repo));
            let want = digest_of(&up, repo);
            assert!(
                targets.contains(&(target.clone(), want)),
                "{target} not planned: {plan:#}"
            );
        }
    }
    // The base's referrers are planned under both names too.
    let chain = [
        &up.chain.signature.digest,
        &up.chain.sbom.digest,
        &up.chain.attestation.digest,
    ];
    for repo in ["atp/base", "atp/base-mirror"] {
        let prefix = format!("{site_host}/{}", site_repo(&up, repo));
        for d in chain {
            assert!(
                targets
                    .iter()
                    .any(|(t, digest)| t.starts_with(&prefix) && digest == d),
                "referrer {d} not planned under {prefix}: {plan:#}"
            );
        }
    }
    // The text plan names both.
    let o = w.bundler(&a);
    assert_ok(&o, "sync --dry-run (text)");
    let t = String::from_utf8_lossy(&o.stdout);
    for (first, second, tag) in NAMES {
        for repo in [first, second] {
            let target = format!("{site_host}/{}:{tag}", site_repo(&up, repo));
            assert!(t.contains(&target), "{target} not in:\n{t}");
        }
    }
    assert!(t.contains("(dry run: nothing written)"), "{t}");

    let log = site.access_log_since(mark);
    assert!(!log.is_empty(), "the plan reads the target");
    let writes: Vec<String> = log
        .iter()
        .filter(|a| a.method != "GET" && a.method != "HEAD")
        .map(ToString::to_string)
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "dry run wrote");
}

#[test]
fn single_pass_install_of_one_image_under_two_names_lands_both_at_the_bundles_digest() {
    let up = two_names();
    let w = Work::new();
    create_bundle(&w, &up);
    let site = Registry::plain();
    let o = w
        .install("b.tar")
        .registry(&site)
        .args(["--single-pass", "--json"])
        .output();
    assert_ok(&o, "install --single-pass");
    let summary = json(&o);
    for (first, second, tag) in NAMES {
        for repo in [first, second] {
            let reference = format!("{}:{tag}", site_repo(&up, repo));
            assert_eq!(
                skopeo_digest(&site, &reference),
                digest_of(&up, repo),
                "{reference}"
            );
        }
    }
    assert_eq!(
        summary["referrers"]["pushed"].as_array().unwrap().len(),
        6,
        "{summary:#}"
    );
    for repo in ["atp/base", "atp/base-mirror"] {
        assert_site_has_the_chain(&site, &site_repo(&up, repo), &up);
    }

    // A second single-pass install writes nothing.
    let mark = site.access_mark();
    let o = w
        .install("b.tar")
        .registry(&site)
        .arg("--single-pass")
        .output();
    assert_ok(&o, "second install --single-pass");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
}
