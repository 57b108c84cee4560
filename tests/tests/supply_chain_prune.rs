//! Issue 19 and uninstall: the receipt records the referrers an install
//! placed and the fallback index entries it added, and `uninstall
//! --prune-registry` deletes those referrer manifests and takes only our
//! entries out of each fallback index (one PUT; the tag's manifest deleted
//! when nothing else is left), leaving what another tool listed.
//!
//! The supply-chain bundle ships no manifests, so nothing is applied; the
//! receipt is marked applied here so `uninstall` has a release to remove
//! (no objects: the cluster is not touched, `kubectl` is `true`).

mod common;
mod supply_chain_support;

use common::*;
use supply_chain_support::*;

use atp_testkit::cli::registry_flags;
use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{fallback_tag, Writer};
use atp_testkit::Registry;
use serde_json::Value;

/// Install `b.tar` and mark its receipt applied: the receipt.
fn install_applied(w: &Work, site: &Registry) -> Value {
    install_bundle_applied(w, site, "b.tar")
}

/// Install `bundle` and mark its receipt applied: the receipt.
fn install_bundle_applied(w: &Work, site: &Registry, bundle: &str) -> Value {
    let o = w.install(bundle).registry(site).arg("--json").output();
    assert_ok(&o, "install");
    let index = json(&o)["index_digest"].as_str().unwrap().to_string();
    let path = w.path(&format!(
        "state/receipts/{}.json",
        index.strip_prefix("sha256:").unwrap()
    ));
    let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["applied"] = Value::Bool(true);
    std::fs::write(&path, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    r
}

fn uninstall(w: &Work, site: &Registry, extra: &[&str]) -> std::process::Output {
    let state = w.s("state");
    let mut args = vec![
        "uninstall",
        "--state-dir",
        &state,
        "--prune-registry",
        "--json",
    ];
    args.extend_from_slice(extra);
    let flags = registry_flags(site);
    args.extend(flags.iter().map(String::as_str));
    w.installer_cmd(&args)
        .env("ATP_KUBECTL", "true")
        .output()
        .unwrap()
}

#[test]
fn prune_registry_deletes_the_carried_referrers_and_only_our_index_entries() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &repo);
    let foreign = sw.attach(
        &repo,
        &up.subject,
        "application/vnd.foreign.scan+json",
        "application/json",
        b"{}",
    );
    sw.write_fallback_index(&repo, &up.subject, &[foreign.descriptor()]);
    let r = install_applied(&w, &site);

    // The receipt names each referrer by digest and repository, and the
    // two entries the install added (not the foreign one).
    assert_eq!(r["receipt_format"], 2);
    let full = format!("{}/{repo}", site.host());
    let mut placed: Vec<&str> = r["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["repository"], full);
            assert_eq!(p["subject"], up.subject);
            p["digest"].as_str().unwrap()
        })
        .collect();
    placed.sort();
    let mut carried = vec![
        up.chain.signature.digest.as_str(),
        up.chain.sbom.digest.as_str(),
        up.chain.attestation.digest.as_str(),
    ];
    carried.sort();
    assert_eq!(placed, carried);
    let added: Vec<&str> = r["index_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    let mut want = vec![
        up.chain.sbom.digest.as_str(),
        up.chain.attestation.digest.as_str(),
    ];
    want.sort();
    assert_eq!(added, want);

    // A dry run says the same and changes nothing.
    let mark = site.access_mark();
    let o = uninstall(&w, &site, &["--dry-run"]);
    assert_ok(&o, "uninstall --dry-run");
    let dry = json(&o);
    assert!(site
        .access_log_since(mark)
        .iter()
        .all(|a| a.method == "GET" || a.method == "HEAD"));

    let mark = site.access_mark();
    let o = uninstall(&w, &site, &["--apply"]);
    assert_ok(&o, "uninstall");
    let report = json(&o);
    assert_eq!(report["prune"]["deleted"], dry["prune"]["deleted"]);
    assert_eq!(report["prune"]["indexes"], dry["prune"]["indexes"]);
    let tag = fallback_tag(&up.subject);
    assert_eq!(
        report["prune"]["indexes"],
        serde_json::json!([format!("{full}:{tag}: 2 entries removed, 1 left")])
    );
    // One PUT: the index without our entries; the foreign entry stays.
    assert_eq!(
        site_puts(&site, mark).len(),
        1,
        "{:?}",
        site_puts(&site, mark)
    );
    assert_eq!(
        sw.fallback_entries(&repo, &up.subject),
        vec![foreign.descriptor()]
    );
    assert_eq!(
        sw.get_manifest(&repo, &foreign.digest).unwrap(),
        foreign.bytes
    );
    // Every carried referrer and the image are gone.
    for d in carried.iter().chain([&up.subject.as_str()]) {
        assert_eq!(sw.get_manifest(&repo, d), None, "{d} is still there");
    }
    assert_eq!(
        sw.get_manifest(&repo, &format!("{tag}.sig")),
        None,
        "the cosign tag went with its manifest"
    );
}

#[test]
fn prune_registry_deletes_a_fallback_index_that_lists_nothing_else() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    install_applied(&w, &site);
    // A re-install finds every entry listed, and its receipt (the same
    // file) still records the ones the first run added.
    let again = install_applied(&w, &site);
    assert_eq!(again["index_entries"].as_array().unwrap().len(), 2);
    let tag = fallback_tag(&up.subject);
    assert!(sw.get_manifest(&repo, &tag).is_some());
    let mark = site.access_mark();
    let o = uninstall(&w, &site, &["--apply"]);
    assert_ok(&o, "uninstall");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
    assert_eq!(sw.get_manifest(&repo, &tag), None);
    assert_eq!(
        json(&o)["prune"]["indexes"],
        serde_json::json!([format!(
            "{}/{repo}:{tag}: 2 entries removed, none left: deleted",
            site.host()
        )])
    );
}

#[test]
fn what_another_channel_also_placed_stays_in_the_registry_and_its_index() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    // The same image, so the same referrers, on another channel.
    Bundle::new(&w, &up.src)
        .name("sc-edge")
        .version("2.0")
        .channel("edge")
        .image(format!("{}/atp/base:1.0.0", up.src.host()))
        .create("edge.tar");
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    let stable = install_bundle_applied(&w, &site, "b.tar");
    assert_eq!(stable["index_entries"].as_array().unwrap().len(), 2);
    let edge = install_bundle_applied(&w, &site, "edge.tar");
    // edge found the entries listed already: it added none, placed all.
    assert!(edge.get("index_entries").is_none(), "{edge:#}");
    assert_eq!(edge["referrers"].as_array().unwrap().len(), 3);
    let index_before = sw.get_manifest(&repo, &fallback_tag(&up.subject)).unwrap();

    let mark = site.access_mark();
    let o = uninstall(&w, &site, &["--apply", "--channel", "stable"]);
    assert_ok(&o, "uninstall stable");
    let report = json(&o);
    assert_eq!(
        report["prune"]["deleted"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert_eq!(report["prune"]["indexes"], serde_json::json!([]));
    // Image, 3 referrers, 2 index entries: all shared with edge.
    assert_eq!(report["prune"]["shared"].as_array().unwrap().len(), 6);
    assert!(site
        .access_log_since(mark)
        .iter()
        .all(|a| a.method == "GET" || a.method == "HEAD"));
    assert_eq!(
        sw.get_manifest(&repo, &fallback_tag(&up.subject)).unwrap(),
        index_before
    );
    assert_site_has_the_chain(&site, &repo, &up);
}
