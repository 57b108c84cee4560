//! `atp_registry::referrers` against the real docker-registry (no referrers
//! API: the fallback tag and cosign's tags), with artifacts from the
//! testkit's independent writer; and against a fake registry that answers
//! the referrers API. Outcomes are what the registry holds and which
//! requests it served.

mod support;

use atp_registry::referrers::{
    discover, discover_all, fallback_tag, fetch_referrer, referrer_descriptor,
    update_fallback_index, DiscoverOptions, FallbackUpdate, FoundVia,
};
use atp_registry::{Digest, Repository};
use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{UpstreamKey, Writer, OCI_INDEX};
use atp_testkit::Registry;
use serde_json::json;
use support::{client, resp, serve};

fn repo(reg: &Registry, name: &str) -> Repository {
    format!("{}/{name}", reg.host()).parse().unwrap()
}

fn puts(reg: &Registry, mark: usize) -> Vec<String> {
    reg.access_log_since(mark)
        .into_iter()
        .filter(|a| a.method == "PUT")
        .map(|a| a.path)
        .collect()
}

#[tokio::test]
async fn discovery_finds_the_fallback_index_entries_and_cosign_tags() {
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let key = UpstreamKey::generate();
    let chain = Writer::new(&reg).write_supply_chain(
        "atp/base",
        &subject,
        "docker.io/atp/base:1.0.0",
        &key,
    );
    let c = client(&reg.host(), None);
    let r = repo(&reg, "atp/base");
    let s: Digest = subject.parse().unwrap();
    let found = discover(&c, &r, &s, &DiscoverOptions::default())
        .await
        .unwrap();
    let got: Vec<(String, FoundVia)> = found
        .iter()
        .map(|f| (f.descriptor.digest.to_string(), f.via.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (chain.sbom.digest.clone(), FoundVia::FallbackTag),
            (chain.attestation.digest.clone(), FoundVia::FallbackTag),
            (
                chain.signature.digest.clone(),
                FoundVia::CosignTag(format!("{}.sig", fallback_tag(&s)))
            ),
        ]
    );
    assert_eq!(
        found[0].descriptor.artifact_type.as_deref(),
        Some("application/spdx+json")
    );
    for f in &found {
        let m = fetch_referrer(&c, &r, &s, f).await.unwrap();
        assert_eq!(m.digest, f.descriptor.digest);
    }
    // An image without referrers: nothing, and no error.
    let other = fixtures::push(&reg, &fixtures::MODEL_LOADER, "atp/model-loader");
    let none = discover(
        &c,
        &repo(&reg, "atp/model-loader"),
        &other.parse().unwrap(),
        &DiscoverOptions::default(),
    )
    .await
    .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_listed_manifest_that_is_missing_is_an_error_naming_it_and_an_oversized_index_is_skipped()
{
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let w = Writer::new(&reg);
    let sbom = w.attach_sbom("atp/base", &subject);
    // Listed twice (docker-registry refuses an index naming a manifest it
    // does not hold, so the missing one is asked for from another repository).
    let mut twice = sbom.descriptor();
    twice["annotations"] = json!({"again": "1"});
    w.write_fallback_index("atp/base", &subject, &[sbom.descriptor(), twice]);
    let c = client(&reg.host(), None);
    let s: Digest = subject.parse().unwrap();
    let r = repo(&reg, "atp/base");
    let found = discover(&c, &r, &s, &DiscoverOptions::default())
        .await
        .unwrap();
    // Deduplicated by digest.
    assert_eq!(found.len(), 1);
    // Now the same SBOM listed from a repository that lacks it.
    let other = repo(&reg, "atp/elsewhere");
    let e = fetch_referrer(&c, &other, &s, &found[0])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("referrer {}", sbom.digest)), "{e}");
    assert!(e.contains("listed by the tag sha256-"), "{e}");

    // Over the entry limit: skipped with a reason, not an error.
    let opts = DiscoverOptions {
        max_entries: 0,
        cosign: false,
        ..Default::default()
    };
    let d = discover_all(&c, &r, &s, &opts).await.unwrap();
    assert!(d.found.is_empty());
    assert!(
        d.skipped[0].contains("over the limit of 0"),
        "{:?}",
        d.skipped
    );
}

#[tokio::test]
async fn the_site_index_is_merged_once_keeps_a_foreign_entry_and_a_rerun_puts_nothing() {
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let key = UpstreamKey::generate();
    let w = Writer::new(&reg);
    let sbom = w.attach_sbom("atp/base", &subject);
    let att = w.attach_attestation("atp/base", &subject, &key);
    let foreign = w.attach(
        "atp/base",
        &subject,
        "application/vnd.foreign.scan+json",
        "application/json",
        b"{\"scan\":1}",
    );
    w.write_fallback_index("atp/base", &subject, &[foreign.descriptor()]);
    let c = client(&reg.host(), None);
    let r = repo(&reg, "atp/base");
    let s: Digest = subject.parse().unwrap();
    let add: Vec<_> = [&sbom, &att]
        .iter()
        .map(|a| referrer_descriptor(&a.media_type, &a.bytes).unwrap())
        .collect();
    let mark = reg.access_mark();
    let out = update_fallback_index(&c, &r, &s, &add).await.unwrap();
    assert!(
        matches!(out, FallbackUpdate::Written { entries: 3, .. }),
        "{out:?}"
    );
    assert_eq!(
        puts(&reg, mark),
        [format!("/v2/atp/base/manifests/{}", fallback_tag(&s))]
    );
    let entries = w.fallback_entries("atp/base", &subject);
    let digests: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [&foreign.digest, &sbom.digest, &att.digest]);
    assert_eq!(
        entries[0],
        foreign.descriptor(),
        "the foreign entry is kept as it was"
    );
    assert_eq!(entries[1]["artifactType"], "application/spdx+json");

    let mark = reg.access_mark();
    assert_eq!(
        update_fallback_index(&c, &r, &s, &add).await.unwrap(),
        FallbackUpdate::Unchanged
    );
    assert!(puts(&reg, mark).is_empty());
}

#[tokio::test]
async fn a_hostile_site_index_is_an_error_and_left_as_it_was() {
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let w = Writer::new(&reg);
    let sbom = w.attach_sbom("atp/base", &subject);
    let c = client(&reg.host(), None);
    let r = repo(&reg, "atp/base");
    let s: Digest = subject.parse().unwrap();
    let add = [referrer_descriptor(&sbom.media_type, &sbom.bytes).unwrap()];

    // Not an index: an image manifest under the fallback tag.
    w.put_manifest("atp/base", &fallback_tag(&s), &sbom.media_type, &sbom.bytes);
    let mark = reg.access_mark();
    let e = update_fallback_index(&c, &r, &s, &add)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an OCI image index"), "{e}");
    assert!(e.contains("left as it is") && e.contains("hint:"), "{e}");
    assert!(puts(&reg, mark).is_empty());
    assert_eq!(
        w.get_manifest("atp/base", &fallback_tag(&s)).unwrap(),
        sbom.bytes
    );
}

#[tokio::test]
async fn a_huge_site_index_is_an_error_without_a_put_and_skipped_by_discovery() {
    // docker-registry refuses a manifest over 4 MiB, so a fake one serves it.
    let subject = Digest::of(b"subject");
    let tag = fallback_tag(&subject);
    let mut huge =
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]"#).into_bytes();
    huge.extend(std::iter::repeat_n(b' ', 4 << 20));
    huge.push(b'}');
    let (host, seen) = serve(move |req| {
        if req.line.contains(&format!("/manifests/{tag} ")) {
            resp("200 OK", &format!("Content-Type: {OCI_INDEX}\r\n"), &huge)
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let c = client(&host, None);
    let r: Repository = format!("{host}/atp/base").parse().unwrap();
    let add = [atp_registry::Descriptor::of_bytes(
        "application/vnd.oci.image.manifest.v1+json",
        b"sbom",
    )];
    let e = update_fallback_index(&c, &r, &subject, &add)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("over the 4194304 byte limit") && e.contains("hint:"),
        "{e}"
    );
    let d = discover_all(&c, &r, &subject, &DiscoverOptions::default())
        .await
        .unwrap();
    assert!(
        d.found.is_empty() && d.skipped[0].contains("over the 4194304 byte limit"),
        "{d:?}"
    );
    let lines: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|q| q.line.clone())
        .collect();
    assert!(!lines.iter().any(|l| l.starts_with("PUT ")), "{lines:?}");
}

#[tokio::test]
async fn a_registry_with_the_referrers_api_is_read_through_it_and_never_written() {
    let subject = Digest::of(b"subject");
    let listed = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(b"sbom").to_string(), "size": 4,
        "artifactType": "application/spdx+json"}]});
    let body = serde_json::to_vec(&listed).unwrap();
    let (host, seen) = serve(move |req| {
        if req.line.contains("/referrers/") {
            resp("200 OK", &format!("Content-Type: {OCI_INDEX}\r\n"), &body)
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let c = client(&host, None);
    let r: Repository = format!("{host}/atp/base").parse().unwrap();
    let found = discover(&c, &r, &subject, &DiscoverOptions::default())
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].via, FoundVia::Api);
    assert_eq!(found[0].descriptor.digest, Digest::of(b"sbom"));
    let add = [found[0].descriptor.clone()];
    assert_eq!(
        update_fallback_index(&c, &r, &subject, &add).await.unwrap(),
        FallbackUpdate::ApiSupported
    );
    let lines: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|q| q.line.clone())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("GET ") || l.starts_with("HEAD ")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn api_pages_are_followed_on_the_same_host_and_non_manifest_entries_are_skipped() {
    let subject = Digest::of(b"subject");
    let entry = |name: &[u8], media_type: &str| json!({"mediaType": media_type, "digest": Digest::of(name).to_string(), "size": 1});
    let page1 = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(b"a", "application/vnd.oci.image.manifest.v1+json"),
                      entry(b"blob", "application/octet-stream")]}))
    .unwrap();
    let page2 = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(b"b", "application/vnd.oci.image.manifest.v1+json")]}))
    .unwrap();
    let s = subject.clone();
    let (host, seen) = serve(move |req| {
        let ct = format!("Content-Type: {OCI_INDEX}\r\n");
        if req.line.contains("/referrers/") && req.line.contains("page=2") {
            resp("200 OK", &ct, &page2)
        } else if req.line.contains("/referrers/") {
            let link = format!("{ct}Link: </v2/atp/base/referrers/{s}?page=2>; rel=\"next\"\r\n");
            resp("200 OK", &link, &page1)
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let c = client(&host, None);
    let r: Repository = format!("{host}/atp/base").parse().unwrap();
    let d = discover_all(&c, &r, &subject, &DiscoverOptions::default())
        .await
        .unwrap();
    let got: Vec<Digest> = d
        .found
        .iter()
        .map(|f| f.descriptor.digest.clone())
        .collect();
    assert_eq!(got, [Digest::of(b"a"), Digest::of(b"b")]);
    assert!(d.found.iter().all(|f| f.via == FoundVia::Api));
    assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    assert!(
        d.skipped[0].contains("not a manifest we can carry"),
        "{:?}",
        d.skipped
    );
    let pages = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|q| q.line.contains("/referrers/"))
        .count();
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn a_next_page_on_another_host_is_not_followed() {
    let subject = Digest::of(b"subject");
    let body =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}))
            .unwrap();
    let (host, seen) = serve(move |req| {
        if req.line.contains("/referrers/") {
            let h = format!("Content-Type: {OCI_INDEX}\r\nLink: <http://elsewhere.example/v2/x/referrers/y?p=2>; rel=\"next\"\r\n");
            resp("200 OK", &h, &body)
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let c = client(&host, None);
    let r: Repository = format!("{host}/atp/base").parse().unwrap();
    let d = discover_all(&c, &r, &subject, &DiscoverOptions::default())
        .await
        .unwrap();
    assert!(d.found.is_empty());
    assert!(d.skipped[0].contains("on another host"), "{:?}", d.skipped);
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .filter(|q| q.line.contains("/referrers/"))
            .count(),
        1
    );
}
