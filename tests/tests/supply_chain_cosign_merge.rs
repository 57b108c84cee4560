//! Issue 19, a site's own cosign signature: a carried `sha256-<hex>.sig`
//! joins the site's signature under the tag (one layer each, the site's
//! first, as cosign adds a signature) instead of replacing it; `simulate`
//! says so first, a re-install sends no PUT, and something under the tag
//! that is not a cosign signature manifest stops the install, untouched.

mod common;
mod supply_chain_support;

use common::*;
use supply_chain_support::*;

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{fallback_tag, UpstreamKey, Writer, OCI_MANIFEST};
use atp_testkit::Registry;
use serde_json::Value;

#[test]
fn simulate_says_to_merge_then_install_merges_and_both_signatures_verify() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &repo);
    let site_key = UpstreamKey::generate();
    let (site_sig, _) = sw.sign(&repo, &up.subject, "site/atp/base", &site_key);
    let sig_tag = format!("{}.sig", fallback_tag(&up.subject));
    let tag = format!("{}/{repo}:{sig_tag}", site.host());

    let o = w.simulate("b.tar").registry(&site).arg("--json").output();
    let sim = json(&o);
    assert_eq!(sim["ok"], true, "{}", text(&o));
    assert_eq!(sim["referrers"]["tags"][0]["tag"], tag);
    assert_eq!(sim["referrers"]["tags"][0]["outcome"], "to merge");
    // simulate wrote nothing: the site's signature is as it was.
    assert_eq!(sw.get_manifest(&repo, &sig_tag).unwrap(), site_sig.bytes);

    let mark = site.access_mark();
    let o = w.install("b.tar").registry(&site).arg("--json").output();
    assert_ok(&o, "install");
    assert_eq!(json(&o)["referrers"]["tags"][0]["outcome"], "merged");
    // One manifest PUT under the cosign tag.
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
    assert_eq!(merged["mediaType"], OCI_MANIFEST);
    assert_eq!(merged["layers"].as_array().unwrap().len(), 2);
    // The config is cosign's: one diff ID per layer, in layer order.
    let config: Value =
        serde_json::from_slice(&sw.get_blob(&repo, merged["config"]["digest"].as_str().unwrap()))
            .unwrap();
    let layer_digests: Vec<Value> = merged["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(config["rootfs"]["diff_ids"], Value::Array(layer_digests));

    // Again: simulate says unchanged, install sends no PUT.
    let o = w.simulate("b.tar").registry(&site).arg("--json").output();
    assert_eq!(json(&o)["referrers"]["tags"][0]["outcome"], "unchanged");
    let mark = site.access_mark();
    let o = w.install("b.tar").registry(&site).arg("--json").output();
    assert_ok(&o, "re-install");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
    assert_eq!(json(&o)["referrers"]["tags"][0]["outcome"], "unchanged");
}

#[test]
fn something_else_under_the_cosign_tag_stops_the_install_and_is_left_as_it_was() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
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

    let o = w.simulate("b.tar").registry(&site).arg("--json").output();
    let sim = json(&o);
    assert_eq!(sim["ok"], false);
    assert_eq!(sim["referrers"]["tags"][0]["outcome"], "refused");
    let o = w.install("b.tar").registry(&site).output();
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!("the cosign tag {}/{repo}:{sig_tag}", site.host())),
        "{t}"
    );
    assert!(t.contains("hint:"), "{t}");
    assert_eq!(sw.get_manifest(&repo, &sig_tag).unwrap(), odd.bytes);
}
