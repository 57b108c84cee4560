//! Issue 19, the site side: upstream signatures, SBOMs and attestations
//! written by the independent writer (`atp_testkit::supply_chain`: openssl
//! and curl, no code under test) reach the site registry with their images,
//! and the signature fetched from the site verifies with `openssl dgst
//! -verify` against the upstream key.

mod common;
mod supply_chain_support;

use common::*;
use supply_chain_support::*;

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{fallback_tag, UpstreamKey, Writer, OCI_INDEX, SIMPLE_SIGNING};
use atp_testkit::{skopeo, Auth, Registry, RegistryOptions};
use serde_json::Value;

#[test]
fn the_independent_writer_leaves_what_cosign_and_an_oci_client_would() {
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let key = UpstreamKey::generate();
    let w = Writer::new(&reg);
    let chain = w.write_supply_chain("atp/base", &subject, "docker.io/atp/base:1.0.0", &key);

    // skopeo reads the signature tag as an ordinary manifest.
    let sig_ref = format!(
        "docker://{}/atp/base:{}.sig",
        reg.host(),
        fallback_tag(&subject)
    );
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", &sig_ref]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, chain.signature.bytes);
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["layers"][0]["mediaType"], SIMPLE_SIGNING);

    // The signature verifies with openssl and names the image's digest.
    let payload = w
        .verified_signature("atp/base", &subject, key.public_pem_path())
        .unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        subject
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        "docker.io/atp/base:1.0.0"
    );
    // ... and not against another key.
    let other = UpstreamKey::generate();
    let e = w
        .verified_signature("atp/base", &subject, other.public_pem_path())
        .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");

    // The fallback index lists the SBOM and the attestation, with subjects.
    let idx = w.get_manifest("atp/base", &fallback_tag(&subject)).unwrap();
    assert_eq!(idx, chain.fallback_index.bytes);
    let idx: Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let listed: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&chain.sbom.digest, &chain.attestation.digest]);
    for a in [&chain.sbom, &chain.attestation] {
        let m: Value =
            serde_json::from_slice(&w.get_manifest("atp/base", &a.digest).unwrap()).unwrap();
        assert_eq!(m["subject"]["digest"], subject);
        assert_eq!(m["artifactType"], a.artifact_type);
    }
}

#[test]
fn install_carries_the_signature_sbom_and_attestation_and_the_site_copy_verifies() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    // A foreign tool already listed something for this image at the site.
    let sw = Writer::new(&site);
    let site_repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    assert_eq!(fixtures::push(&site, &BASE, &site_repo), up.subject);
    let foreign = sw.attach(
        &site_repo,
        &up.subject,
        "application/vnd.foreign.scan+json",
        "application/json",
        b"{}",
    );
    sw.write_fallback_index(&site_repo, &up.subject, &[foreign.descriptor()]);

    // The site signed the image under cosign's tag with its own key: the
    // carried signature joins it, as cosign adds a signature (one layer
    // each, the site's first).
    let site_key = UpstreamKey::generate();
    let (site_sig, _) = sw.sign(&site_repo, &up.subject, "site/atp/base", &site_key);

    let o = w.install("b.tar").registry(&site).arg("--json").output();
    assert_ok(&o, "install");
    let summary = json(&o);
    let target = summary["images"][0]["target"].as_str().unwrap().to_string();
    assert_eq!(summary["images"][0]["digest"], up.subject);
    let repo = target
        .strip_prefix(&format!("{}/", site.host()))
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    assert_eq!(repo, site_repo);
    assert_eq!(summary["referrers"]["pushed"].as_array().unwrap().len(), 3);
    // `images` (what the receipt records) names the image only.
    assert_eq!(summary["images"].as_array().unwrap().len(), 1);
    assert_eq!(summary["referrers"]["indexes"][0]["outcome"], "written");
    let sig_tag = format!("{}.sig", fallback_tag(&up.subject));
    assert_eq!(
        summary["referrers"]["tags"][0]["tag"],
        format!("{}/{site_repo}:{sig_tag}", site.host())
    );
    assert_eq!(summary["referrers"]["tags"][0]["outcome"], "merged");

    // The signature, fetched from the site, verifies against the upstream
    // key and names the site image's digest (the bundle's); the site's own
    // still verifies against the site's key.
    let payload = sw
        .verified_signature(&repo, &up.subject, up.key.public_pem_path())
        .unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        up.subject
    );
    let site_payload = sw
        .verified_signature(&repo, &up.subject, site_key.public_pem_path())
        .unwrap();
    assert_eq!(
        site_payload["critical"]["identity"]["docker-reference"],
        "site/atp/base"
    );
    let merged: Value = serde_json::from_slice(&sw.get_manifest(&repo, &sig_tag).unwrap()).unwrap();
    let layers = |m: &Value| m["layers"].as_array().unwrap().clone();
    let site_layers = layers(&serde_json::from_slice(&site_sig.bytes).unwrap());
    let carried = layers(&serde_json::from_slice(&up.chain.signature.bytes).unwrap());
    assert_eq!(layers(&merged), [site_layers, carried].concat());
    // The fallback index: the foreign entry kept first, then ours.
    let entries = sw.fallback_entries(&repo, &up.subject);
    assert_eq!(
        digests(&entries),
        [
            foreign.digest.clone(),
            up.chain.sbom.digest.clone(),
            up.chain.attestation.digest.clone()
        ]
    );
    assert_eq!(entries[0], foreign.descriptor());
    for a in [&up.chain.sbom, &up.chain.attestation] {
        assert_eq!(sw.get_manifest(&repo, &a.digest).unwrap(), a.bytes);
    }

    // Again: nothing is written.
    let mark = site.access_mark();
    let o = w.install("b.tar").registry(&site).arg("--json").output();
    assert_ok(&o, "re-install");
    assert_eq!(site_puts(&site, mark), Vec::<String>::new());
    assert_eq!(json(&o)["referrers"]["indexes"][0]["outcome"], "unchanged");
    assert_eq!(json(&o)["referrers"]["tags"][0]["outcome"], "unchanged");
}

#[test]
fn a_hostile_fallback_tag_at_the_site_stops_the_install_and_is_left_as_it_was() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    let sw = Writer::new(&site);
    let site_repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &site_repo);
    // Something that is not an index under the fallback tag.
    let odd = sw.attach(
        &site_repo,
        &up.subject,
        "application/vnd.odd+json",
        "application/json",
        b"{}",
    );
    sw.put_manifest(
        &site_repo,
        &fallback_tag(&up.subject),
        &odd.media_type,
        &odd.bytes,
    );
    // simulate names what would stop the install.
    let o = w.simulate("b.tar").registry(&site).arg("--json").output();
    let sim = json(&o);
    assert_eq!(sim["ok"], false);
    assert_eq!(sim["referrers"]["indexes"][0]["outcome"], "refused");
    let findings = sim["findings"].to_string();
    assert!(findings.contains("not an OCI image index"), "{findings}");
    let o = w.install("b.tar").registry(&site).output();
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "the referrers index {}/{site_repo}:{}",
            site.host(),
            fallback_tag(&up.subject)
        )),
        "{t}"
    );
    assert!(
        t.contains("not an OCI image index") && t.contains("hint:"),
        "{t}"
    );
    assert_eq!(
        sw.get_manifest(&site_repo, &fallback_tag(&up.subject))
            .unwrap(),
        odd.bytes
    );
}

#[test]
fn simulate_plans_the_referrers_and_single_pass_carries_them() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let site = Registry::plain();
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    let index = format!("{}/{repo}:{}", site.host(), fallback_tag(&up.subject));

    let o = w.simulate("b.tar").registry(&site).arg("--json").output();
    let sim = json(&o);
    assert_eq!(sim["ok"], true, "{}", text(&o));
    let planned: Vec<&str> = sim["referrers"]["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    let site_repo = format!("{}/{repo}", site.host());
    assert_eq!(
        planned,
        [
            format!("{site_repo}@{}", up.chain.sbom.digest),
            format!("{site_repo}@{}", up.chain.attestation.digest),
            format!("{site_repo}:{}.sig", fallback_tag(&up.subject)),
        ]
    );
    assert_eq!(sim["referrers"]["indexes"][0]["index"], index);
    assert_eq!(sim["referrers"]["indexes"][0]["outcome"], "to write");
    let pushed: Vec<&str> = sim["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(
        pushed.contains(&up.chain.signature.digest.as_str()),
        "{pushed:?}"
    );
    let o = w.simulate("b.tar").registry(&site).output();
    let t = text(&o);
    assert!(
        t.contains(&format!("fallback tag index {index}: to write")),
        "{t}"
    );
    assert!(t.contains("(application/spdx+json) of sha256:"), "{t}");
    assert!(site_puts(&site, 0).is_empty(), "a simulation wrote");

    let o = w
        .install("b.tar")
        .registry(&site)
        .arg("--single-pass")
        .output();
    assert_ok(&o, "install --single-pass");
    assert!(
        text(&o).contains("referrers: 3 carried; fallback tag indexes: 1 written"),
        "{}",
        text(&o)
    );
    assert_site_has_the_chain(&site, &repo, &up);
    let sim = json(&w.simulate("b.tar").registry(&site).arg("--json").output());
    assert_eq!(sim["referrers"]["indexes"][0]["outcome"], "unchanged");
}

#[test]
fn platform_and_nested_referrers_land_and_a_later_bundle_appends_to_the_index() {
    let src = Registry::plain();
    let root = fixtures::push(&src, &fixtures::ROUTER, "atp/router");
    let sw = Writer::new(&src);
    let index: Value =
        serde_json::from_slice(&sw.get_manifest("atp/router", &root).unwrap()).unwrap();
    let platform = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let key = UpstreamKey::generate();
    let reference = format!("{}/atp/router:1.4.0", src.host());
    // The index is signed; a platform manifest has an SBOM, and the SBOM
    // itself is signed (nested).
    sw.sign("atp/router", &root, &reference, &key);
    let sbom = sw.attach_sbom("atp/router", &platform);
    sw.write_fallback_index("atp/router", &platform, &[sbom.descriptor()]);
    let (sbom_sig, _) = sw.sign("atp/router", &sbom.digest, &reference, &key);

    let w = Work::new();
    let router = Bundle::new(&w, &src).image(format!("{}/atp/router:1.4.0", src.host()));
    router.create("b1.tar");
    let site = Registry::plain();
    let o = w.install("b1.tar").registry(&site).output();
    assert_ok(&o, "install b1");
    let repo = format!("{}/atp/router", src.host().replace(':', "-"));
    let tw = Writer::new(&site);
    let payload = tw
        .verified_signature(&repo, &root, key.public_pem_path())
        .unwrap();
    assert_eq!(payload["critical"]["image"]["docker-manifest-digest"], root);
    assert_eq!(
        digests(&tw.fallback_entries(&repo, &platform)),
        vec![sbom.digest.clone()]
    );
    let nested = tw
        .get_manifest(&repo, &format!("{}.sig", fallback_tag(&sbom.digest)))
        .unwrap();
    assert_eq!(nested, sbom_sig.bytes);
    tw.verified_signature(&repo, &sbom.digest, key.public_pem_path())
        .unwrap();

    // Upstream adds an attestation; the next bundle carries it and the
    // site's index gets it appended, in one PUT of that index.
    let att = sw.attach_attestation("atp/router", &platform, &key);
    sw.write_fallback_index(
        "atp/router",
        &platform,
        &[sbom.descriptor(), att.descriptor()],
    );
    router.sequence(2).create("b2.tar");
    let mark = site.access_mark();
    let o = w.install("b2.tar").registry(&site).output();
    assert_ok(&o, "install b2");
    assert_eq!(
        digests(&tw.fallback_entries(&repo, &platform)),
        [sbom.digest.clone(), att.digest.clone()]
    );
    let index_puts: Vec<String> = site_puts(&site, mark)
        .into_iter()
        .filter(|p| p.contains("/manifests/sha256-") && !p.contains(".sig"))
        .collect();
    assert_eq!(index_puts.len(), 1, "{index_puts:?}");
}

#[test]
fn a_delta_bundle_carries_its_referrers_whole_to_a_site_that_has_only_the_image() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b1.tar", 1);
    Bundle::new(&w, &up.src)
        .image(format!("{}/atp/base:1.0.0", up.src.host()))
        .sequence(2)
        .args(&["--base", "b1.tar"])
        .create("b2.tar");
    // The site has the image (its layers, which the delta omits) but none
    // of its referrers: the delta check passes and the chain arrives.
    let site = Registry::plain();
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    fixtures::push(&site, &BASE, &repo);
    let o = w.install("b2.tar").registry(&site).output();
    assert_ok(&o, "install the delta");
    assert!(text(&o).contains("referrers: 3 carried"), "{}", text(&o));
    assert_site_has_the_chain(&site, &repo, &up);
}

#[test]
fn a_tls_basic_auth_site_and_a_token_auth_site_get_the_chain_too() {
    let up = upstream();
    let w = Work::new();
    create(&w, &up, "b.tar", 1);
    let repo = format!("{}/atp/base", up.src.host().replace(':', "-"));
    let tls = Registry::start(RegistryOptions {
        tls: true,
        auth: Auth::Basic,
        ..Default::default()
    })
    .unwrap();
    assert_ok(
        &w.install("b.tar").registry(&tls).output(),
        "install (TLS, basic)",
    );
    assert_site_has_the_chain(&tls, &repo, &up);

    let token = Registry::token();
    let mark = token.access_mark();
    let w2 = Work::new();
    std::fs::copy(w.path("k.pub"), w2.path("k.pub")).unwrap();
    std::fs::copy(w.path("b.tar"), w2.path("b.tar")).unwrap();
    assert_ok(
        &w2.install("b.tar").registry(&token).output(),
        "install (token)",
    );
    let index_put = format!(
        "PUT /v2/{repo}/manifests/{} -> 201",
        fallback_tag(&up.subject)
    );
    assert!(
        site_puts(&token, mark).contains(&index_put),
        "{:?}",
        site_puts(&token, mark)
    );
}
