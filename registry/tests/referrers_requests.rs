//! How many requests discovery sends within a run (issue 21): against the
//! real docker-registry (no referrers API), counted in its access log, the
//! API is probed once per registry and each repository's tags are listed
//! once, and what is found is what discovery without a cache finds; against
//! a fake registry, a refused API or tag listing keeps the per-subject,
//! per-tag requests.

mod support;

use atp_registry::referrers::{
    discover_all, discover_cached, DiscoverOptions, Discovery, DiscoveryCache,
};
use atp_registry::{Client, Digest, Repository};
use atp_testkit::fixtures::{self, BASE, METRICS_EXPORTER, ROUTER};
use atp_testkit::supply_chain::{UpstreamKey, Writer};
use atp_testkit::Registry;
use support::{client, resp, serve};

/// The requests served since `mark`, as `METHOD path` without the digests.
fn served(reg: &Registry, mark: usize) -> Vec<String> {
    reg.access_log_since(mark)
        .into_iter()
        .map(|a| format!("{} {}", a.method, a.path))
        .collect()
}

async fn all(
    c: &Client,
    r: &Repository,
    subjects: &[Digest],
    cache: Option<&DiscoveryCache>,
) -> Vec<Discovery> {
    let mut out = Vec::new();
    for s in subjects {
        let o = DiscoverOptions::default();
        out.push(match cache {
            Some(cache) => discover_cached(c, r, s, &o, cache).await.unwrap(),
            None => discover_all(c, r, s, &o).await.unwrap(),
        });
    }
    out
}

#[tokio::test]
async fn a_run_probes_the_api_once_and_lists_tags_once_finding_the_same() {
    let reg = Registry::plain();
    let subjects: Vec<Digest> = [BASE, ROUTER, METRICS_EXPORTER]
        .iter()
        .map(|i| fixtures::push(&reg, i, "atp/many").parse().unwrap())
        .collect();
    let r: Repository = format!("{}/atp/many", reg.host()).parse().unwrap();

    // No referrers: one API probe (a 404) and one tag listing, nothing else.
    let c = client(&reg.host(), None);
    let cache = DiscoveryCache::of(&c);
    let mark = reg.access_mark();
    let cached = all(&c, &r, &subjects, Some(&cache)).await;
    let sent = served(&reg, mark);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.iter().any(|s| s.contains("/referrers/")), "{sent:#?}");
    assert!(
        sent.contains(&"GET /v2/atp/many/tags/list".to_string()),
        "{sent:#?}"
    );
    // Without the cache: five a subject, the same (nothing) found.
    let mark = reg.access_mark();
    let plain = all(&c, &r, &subjects, None).await;
    assert_eq!(served(&reg, mark).len(), 5 * subjects.len());
    assert_eq!(cached, plain);
    assert!(plain.iter().all(|d| d.found.is_empty()));
    // The same cache for every clone of the client, for the rest of the run.
    let mark = reg.access_mark();
    all(&c.clone(), &r, &subjects, Some(&DiscoveryCache::of(&c))).await;
    assert_eq!(served(&reg, mark), Vec::<String>::new());

    // A fallback index and a cosign signature: found, with the same digests
    // and ways as without the cache, by GETs of the tags that exist only.
    let key = UpstreamKey::generate();
    let s0 = subjects[0].to_string();
    Writer::new(&reg).write_supply_chain("atp/many", &s0, BASE.reference, &key);
    let c = client(&reg.host(), None);
    let mark = reg.access_mark();
    let cached = all(&c, &r, &subjects, Some(&DiscoveryCache::of(&c))).await;
    let sent = served(&reg, mark);
    assert!(sent.iter().all(|s| s.starts_with("GET ")), "{sent:#?}");
    assert_eq!(sent.len(), 4, "API, tags, fallback index, .sig: {sent:#?}");
    let plain = all(&c, &r, &subjects, None).await;
    assert_eq!(cached, plain);
    assert_eq!(plain[0].found.len(), 3, "{plain:#?}");
}

/// A fake registry: the referrers API answers `api`, the tag listing
/// `tags`, every manifest 404.
async fn fake(api: &'static str, tags: &'static str) -> (Client, Repository, support::Seen) {
    let (host, seen) = serve(move |req| {
        if req.line.contains("/referrers/") {
            resp(api, "", b"")
        } else if req.line.contains("/tags/list") && tags.starts_with("200") {
            let body = br#"{"name":"atp/base","tags":["1.0.0"]}"#;
            resp(tags, "Content-Type: application/json\r\n", body)
        } else if req.line.contains("/tags/list") {
            resp(tags, "", b"")
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let r: Repository = format!("{host}/atp/base").parse().unwrap();
    (client(&host, None), r, seen)
}

fn count(seen: &support::Seen, what: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|q| q.line.contains(what))
        .count()
}

#[tokio::test]
async fn only_a_404_from_the_api_is_remembered_and_a_refused_listing_asks_each_tag() {
    let subjects = [Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c")];
    // 404: probed once; listed tags: no HEAD at all.
    let (c, r, seen) = fake("404 Not Found", "200 OK").await;
    let found = all(&c, &r, &subjects, Some(&DiscoveryCache::new())).await;
    assert!(found.iter().all(|d| d.found.is_empty()));
    assert_eq!(count(&seen, "/referrers/"), 1);
    assert_eq!(count(&seen, "/tags/list"), 1);
    assert_eq!(count(&seen, "HEAD "), 0);
    // Anything but a 404 (here a 405) is not "no API" for the run: the API
    // is asked for every subject, as without a cache.
    let (c, r, seen) = fake("405 Method Not Allowed", "200 OK").await;
    all(&c, &r, &subjects, Some(&DiscoveryCache::new())).await;
    assert_eq!(count(&seen, "/referrers/"), 3);
    // A refused listing (once): every tag asked as without a cache.
    for refused in ["403 Forbidden", "405 Method Not Allowed", "404 Not Found"] {
        let (c, r, seen) = fake("404 Not Found", refused).await;
        let found = all(&c, &r, &subjects, Some(&DiscoveryCache::new())).await;
        assert!(found.iter().all(|d| d.found.is_empty()));
        assert_eq!(count(&seen, "/tags/list"), 1, "{refused}");
        assert_eq!(count(&seen, "HEAD "), 3 * subjects.len(), "{refused}");
        assert_eq!(count(&seen, "GET /v2/atp/base/manifests/"), 3, "{refused}");
    }
}
