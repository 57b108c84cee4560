//! Issue 19 through `sync` and `serve`: referrers a source registry holds
//! (written by the independent writer) reach a registry by `atp-bundler
//! sync` the way `install` carries them, and a served bundle answers the
//! referrers API and cosign's tags so that a sync from it carries them on.

mod common;
mod supply_chain_support;

use common::*;
use supply_chain_support::*;

use atp_testkit::supply_chain::{fallback_tag, OCI_INDEX};
use atp_testkit::Registry;
use serde_json::Value;

#[test]
fn sync_carries_the_supply_chain_the_same_way_and_a_second_sync_writes_nothing() {
    let up = upstream();
    let w = Work::new();
    let site = Registry::plain();
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    let index = format!("{}/{repo}:{}", site.host(), fallback_tag(&up.subject));
    let image = format!("{}/atp/base:1.0.0", up.src.host());
    let (site_host, src_host) = (site.host(), up.src.host());
    let args = |extra: &[&str]| {
        let mut a = vec![
            "sync",
            "--image",
            &image,
            "--registry",
            &site_host,
            "--plain-http",
            "--plain-http",
            &src_host,
            "--json",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        w.bundler(&a)
    };

    let o = run(args(&["--dry-run"]));
    assert_ok(&o, "sync --dry-run");
    let plan = json(&o);
    assert_eq!(plan["referrer_indexes"][0]["index"], index);
    assert_eq!(plan["referrer_indexes"][0]["outcome"], "to write");
    assert!(site_puts(&site, 0).is_empty(), "a dry run wrote");

    let o = run(args(&[]));
    assert_ok(&o, "sync");
    let done = json(&o);
    assert_eq!(done["referrer_indexes"][0]["outcome"], "written");
    // The signature goes by digest; its cosign tag is written after the copy.
    assert_eq!(
        done["cosign_tags"][0]["tag"],
        format!("{}/{repo}:{}.sig", site.host(), fallback_tag(&up.subject))
    );
    assert_eq!(done["cosign_tags"][0]["outcome"], "written");
    assert_site_has_the_chain(&site, &repo, &up);

    let mark = site.access_mark();
    let o = run(args(&[]));
    assert_ok(&o, "second sync");
    assert_eq!(json(&o)["referrer_indexes"][0]["outcome"], "unchanged");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
}

#[test]
fn serve_answers_the_referrers_api_and_cosign_tags_and_sync_carries_them_on() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let served = Served::start(&w, "b.tar");
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));

    let (code, body) = served.get(&format!("/v2/{repo}/referrers/{}", up.subject));
    assert_eq!(code, "200");
    let idx: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let listed = digests(idx["manifests"].as_array().unwrap());
    assert_eq!(
        listed,
        [
            up.chain.sbom.digest.clone(),
            up.chain.attestation.digest.clone()
        ]
    );
    assert_eq!(idx["manifests"][0], up.chain.sbom.descriptor());
    let (code, body) = served.get(&format!(
        "/v2/{repo}/manifests/{}.sig",
        fallback_tag(&up.subject)
    ));
    assert_eq!(code, "200");
    assert_eq!(body, up.chain.signature.bytes);
    // The artifactType filter, and the header that says it was applied.
    let (headers, body) = served.get_with_headers(&format!(
        "/v2/{repo}/referrers/{}?artifactType=application%2Fspdx%2Bjson",
        up.subject
    ));
    assert!(
        headers.contains("oci-filters-applied: artifacttype"),
        "{headers}"
    );
    let only: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        digests(only["manifests"].as_array().unwrap()),
        vec![up.chain.sbom.digest.clone()]
    );
    let (_, body) = served.get(&format!("/v2/{repo}/referrers/{}", up.chain.sbom.digest));
    let none: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(none["manifests"], serde_json::json!([]));

    // Sync from the served bundle (found through its referrers API) into a
    // registry without one: the chain arrives and verifies there.
    let site = Registry::plain();
    let image = format!("{}/{repo}:1.0.0", served.host);
    let o = w.bundler(&[
        "sync",
        "--image",
        &image,
        "--registry",
        &site.host(),
        "--plain-http",
        "--plain-http",
        &served.host,
        "--json",
    ]);
    assert_ok(&o, "sync from serve");
    let site_repo = format!("{}/{repo}", served.host.replace(':', "-"));
    assert_site_has_the_chain(&site, &site_repo, &up);
}

#[test]
fn sync_referrers_signatures_carries_the_signature_only_and_none_carries_nothing() {
    let up = upstream();
    let w = Work::new();
    let image = format!("{}/atp/base:1.0.0", up.src.host());
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    let sync_into = |site: &Registry, mode: &str| {
        let (site_host, src_host) = (site.host(), up.src.host());
        let o = w.bundler(&[
            "sync",
            "--image",
            &image,
            "--registry",
            &site_host,
            "--plain-http",
            "--plain-http",
            &src_host,
            "--referrers",
            mode,
            "--json",
        ]);
        assert_ok(&o, &format!("sync --referrers {mode}"));
        json(&o)
    };
    let sig_tag = format!("{}.sig", fallback_tag(&up.subject));

    let site = Registry::plain();
    let done = sync_into(&site, "signatures");
    assert_eq!(done["images"].as_array().unwrap().len(), 2, "{done:#}");
    assert!(done.get("referrer_indexes").is_none(), "{done:#}");
    let sw = atp_testkit::supply_chain::Writer::new(&site);
    sw.verified_signature(&repo, &up.subject, up.key.public_pem_path())
        .unwrap();
    assert!(sw.fallback_entries(&repo, &up.subject).is_empty());
    assert!(sw.get_manifest(&repo, &up.chain.sbom.digest).is_none());

    let site = Registry::plain();
    let done = sync_into(&site, "none");
    assert_eq!(done["images"].as_array().unwrap().len(), 1, "{done:#}");
    let sw = atp_testkit::supply_chain::Writer::new(&site);
    assert!(sw.get_manifest(&repo, &sig_tag).is_none());
}
