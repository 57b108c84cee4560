//! One manifest under two names: the bundle carries its referrers once (for
//! the first image that brought them), and install lands them in every
//! site repository that holds the manifest, so the site copy verifies
//! whichever name a policy checks.

mod common;
mod supply_chain_support;

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::Registry;
use common::*;
use supply_chain_support::*;

#[test]
fn a_manifest_under_two_names_gets_its_referrers_in_both_site_repositories() {
    let up = upstream();
    // The same image under a second name upstream, with no chain of its own.
    assert_eq!(
        fixtures::push(&up.src, &BASE, "atp/base-mirror"),
        up.subject
    );
    let w = Work::new();
    let h = up.src.host();
    Bundle::new(&w, &up.src)
        .images([
            format!("{h}/atp/base:1.0.0"),
            format!("{h}/atp/base-mirror:1.0.0"),
        ])
        .args(&["--json"])
        .create("b.tar");
    // Carried once: the signature, the SBOM and the attestation.
    let inspect = json(&w.bundler(&["inspect", "b.tar", "--json"]));
    let carried: usize = inspect["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["referrers"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(carried, 3, "{inspect}");

    let site = Registry::plain();
    let o = w.install("b.tar").registry(&site).arg("--json").output();
    assert_ok(&o, "install");
    let summary = json(&o);
    assert_eq!(summary["referrers"]["pushed"].as_array().unwrap().len(), 6);
    let host = up.src.host().replace(':', "-");
    for repo in [
        format!("{host}/atp/base"),
        format!("{host}/atp/base-mirror"),
    ] {
        assert_site_has_the_chain(&site, &repo, &up);
    }

    // A re-install writes nothing.
    let mark = site.access_mark();
    assert_ok(&w.install("b.tar").registry(&site).output(), "re-install");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
}

#[test]
fn sync_of_a_manifest_under_two_names_lands_its_referrers_under_both() {
    let up = upstream();
    assert_eq!(
        fixtures::push(&up.src, &BASE, "atp/base-mirror"),
        up.subject
    );
    let w = Work::new();
    let site = Registry::plain();
    let (site_host, src_host) = (site.host(), up.src.host());
    let first = format!("{src_host}/atp/base:1.0.0");
    let second = format!("{src_host}/atp/base-mirror:1.0.0");
    let o = w.bundler(&[
        "sync",
        "--image",
        &first,
        "--image",
        &second,
        "--registry",
        &site_host,
        "--plain-http",
        "--plain-http",
        &src_host,
        "--json",
    ]);
    assert_ok(&o, "sync");
    let host = src_host.replace(':', "-");
    for repo in [
        format!("{host}/atp/base"),
        format!("{host}/atp/base-mirror"),
    ] {
        assert_site_has_the_chain(&site, &repo, &up);
    }
}
