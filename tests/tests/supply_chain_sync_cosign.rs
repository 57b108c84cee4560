//! Issue 19 through `sync`: a carried `sha256-<hex>.sig` joins the target's
//! own cosign signature under the tag (as `install` merges it) instead of
//! replacing it; `--dry-run` says so first and writes nothing, a second
//! sync sends no PUT, and something under the tag that is not a cosign
//! signature manifest stops sync, naming the tag, and is left as it was.

mod common;
mod supply_chain_support;

use common::*;
use supply_chain_support::*;

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{fallback_tag, UpstreamKey, Writer};
use atp_testkit::Registry;
use serde_json::Value;

/// `atp-bundler sync` of the upstream image into `site`, with `extra` args.
fn sync(w: &Work, up: &Upstream, site: &Registry, extra: &[&str]) -> std::process::Output {
    let image = format!("{}/atp/base:1.0.0", up.src.host());
    let (site_host, src_host) = (site.host(), up.src.host());
    let mut a = vec![
        "sync",
        "--image",
        &image,
        "--registry",
        &site_host,
        "--plain-http",
        "--plain-http",
        &src_host,
    ];
    a.extend_from_slice(extra);
    w.bundler(&a)
}

#[test]
fn sync_merges_into_the_targets_own_signature_and_both_verify() {
    let up = upstream();
    let w = Work::new();
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &repo);
    let site_key = UpstreamKey::generate();
    let (site_sig, _) = sw.sign(&repo, &up.subject, "site/atp/base", &site_key);
    let sig_tag = format!("{}.sig", fallback_tag(&up.subject));
    let tag = format!("{}/{repo}:{sig_tag}", site.host());

    let mark = site.access_mark();
    let o = sync(&w, &up, &site, &["--dry-run", "--json"]);
    assert_ok(&o, "sync --dry-run");
    let plan = json(&o);
    assert_eq!(plan["cosign_tags"][0]["tag"], tag);
    assert_eq!(plan["cosign_tags"][0]["outcome"], "to merge");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
    assert_eq!(sw.get_manifest(&repo, &sig_tag).unwrap(), site_sig.bytes);

    let mark = site.access_mark();
    let o = sync(&w, &up, &site, &["--json"]);
    assert_ok(&o, "sync");
    assert_eq!(json(&o)["cosign_tags"][0]["outcome"], "merged");
    // Exactly one manifest PUT under the cosign tag.
    let tag_puts: Vec<String> = site_puts(&site, mark)
        .into_iter()
        .filter(|p| p.contains(&format!("/manifests/{sig_tag}")))
        .collect();
    assert_eq!(tag_puts.len(), 1, "{tag_puts:?}");
    for key in [&up.key, &site_key] {
        let payload = sw
            .verified_signature(&repo, &up.subject, key.public_pem_path())
            .unwrap();
        assert_eq!(
            payload["critical"]["image"]["docker-manifest-digest"],
            up.subject
        );
    }
    let merged: Value = serde_json::from_slice(&sw.get_manifest(&repo, &sig_tag).unwrap()).unwrap();
    let layers = merged["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    // The site's layer first, as cosign adds a signature.
    let site_manifest: Value = serde_json::from_slice(&site_sig.bytes).unwrap();
    assert_eq!(layers[0], site_manifest["layers"][0]);
    assert_site_has_the_chain(&site, &repo, &up);

    // Again: the dry run says unchanged, sync sends no PUT.
    let o = sync(&w, &up, &site, &["--dry-run", "--json"]);
    assert_ok(&o, "second sync --dry-run");
    assert_eq!(json(&o)["cosign_tags"][0]["outcome"], "unchanged");
    let mark = site.access_mark();
    let o = sync(&w, &up, &site, &["--json"]);
    assert_ok(&o, "second sync");
    assert_eq!(json(&o)["cosign_tags"][0]["outcome"], "unchanged");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
}

#[test]
fn something_else_under_the_cosign_tag_stops_sync_and_is_left_as_it_was() {
    let up = upstream();
    let w = Work::new();
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &repo);
    let sig_tag = format!("{}.sig", fallback_tag(&up.subject));
    // An artifact manifest whose layer is not a cosign signature.
    let odd = sw.attach(
        &repo,
        &up.subject,
        "application/vnd.odd+json",
        "application/json",
        b"{}",
    );
    sw.put_manifest(&repo, &sig_tag, &odd.media_type, &odd.bytes);
    let named = format!("the cosign tag {}/{repo}:{sig_tag}", site.host());

    // The dry run reports the refusal (reading only) and fails.
    let mark = site.access_mark();
    let o = sync(&w, &up, &site, &["--dry-run", "--json"]);
    assert!(!o.status.success(), "{}", text(&o));
    let plan = json(&o);
    assert_eq!(plan["cosign_tags"][0]["outcome"], "refused");
    assert!(text(&o).contains(&named), "{}", text(&o));
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());

    let o = sync(&w, &up, &site, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&named), "{t}");
    assert!(t.contains("hint:"), "{t}");
    assert_eq!(sw.get_manifest(&repo, &sig_tag).unwrap(), odd.bytes);
}
