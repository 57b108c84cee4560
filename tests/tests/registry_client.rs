//! `atp-registry` against the real `docker-registry`: round trips of every
//! fixture image in every auth mode (confirmed by `skopeo inspect --raw` by
//! digest), zero uploads on a second push, cross-repository mounts, and
//! protocol faults injected by the testkit proxy (resets, 503s, 429 with
//! `Retry-After`, 416, forever-500) that must end with the blob committed
//! exactly once, or fail within the retry bound with a clear message.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use atp_registry::{
    Bytes, Client, ClientOptions, Credentials, DefaultCredentials, Digest, Error, Manifest,
    ParsedManifest, PushOutcome, Reference, RegistryConfig, Repository, RetryPolicy,
};
use atp_testkit::fixtures::{self, FixtureImage};
use atp_testkit::proxy::{Fault, Proxy, RetryAfter, Rule};
use atp_testkit::relay::Relay;
use atp_testkit::{skopeo, Access, Registry};
use rand::RngCore;

const CHUNK: u64 = 256 << 10;

fn options() -> ClientOptions {
    ClientOptions {
        default_creds: DefaultCredentials::None,
        retry: RetryPolicy::fast(),
        chunk_size: CHUNK,
        monolithic_max: 512 << 10,
        ..Default::default()
    }
}

fn config_for(reg: &Registry) -> RegistryConfig {
    RegistryConfig {
        plain_http: !reg.options().tls,
        ca_file: reg.ca_cert_path(),
        client_cert: None,
        credentials: reg.credentials().map(|(u, p)| Credentials::new(u, p)),
    }
}

fn client_for(regs: &[&Registry]) -> Client {
    let mut o = options();
    for r in regs {
        o.registries.insert(r.host(), config_for(r));
    }
    Client::new(o).unwrap()
}

fn repo(host: &str, name: &str) -> Repository {
    format!("{host}/{name}").parse().unwrap()
}

fn dump(log: &[Access]) -> String {
    log.iter().map(|a| format!("  {a}\n")).collect()
}

/// Copy a manifest and everything under it from `src` to `dst`; the top level
/// is pushed under `tag`, children by digest. Blobs first, manifests last.
fn copy<'a>(
    c: &'a Client,
    src: &'a Repository,
    dst: &'a Repository,
    m: &'a Manifest,
    tag: Option<&'a str>,
    mount_from: &'a [Repository],
    outcomes: &'a mut Vec<PushOutcome>,
) -> Pin<Box<dyn Future<Output = Digest> + 'a>> {
    Box::pin(async move {
        match m.kind().unwrap() {
            ParsedManifest::Index { manifests } => {
                for child in manifests {
                    let cm = c.get_manifest_by_digest(src, &child.digest).await.unwrap();
                    assert_eq!(cm.bytes.len() as u64, child.size);
                    copy(c, src, dst, &cm, None, mount_from, outcomes).await;
                }
            }
            kind @ ParsedManifest::Image { .. } => {
                for d in kind.children() {
                    let mut buf = Vec::new();
                    c.fetch_blob_to(src, &d.digest, d.size, &mut buf)
                        .await
                        .unwrap();
                    let o = c
                        .push_blob(dst, &d.digest, d.size, &Bytes::from(buf), mount_from)
                        .await
                        .unwrap();
                    outcomes.push(o);
                }
            }
        }
        let reference = tag.map_or_else(|| m.digest.to_string(), str::to_owned);
        let d = c
            .push_manifest(dst, &reference, &m.bytes, &m.media_type)
            .await
            .unwrap();
        assert_eq!(d, m.digest);
        d
    })
}

/// `skopeo inspect --raw` by digest and hash what it prints.
fn skopeo_digest(reg: &Registry, name: &str, digest: &Digest) -> Digest {
    let reference = format!("docker://{}/{name}@{digest}", reg.host());
    let flags = reg.skopeo_flags();
    let mut args = vec!["inspect", "--raw"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&reference);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::of(&out.stdout)
}

/// Round trip every fixture from `src` to `dst`, check digests with skopeo,
/// then push again and check that no blob was uploaded the second time.
async fn round_trip(src: Registry, dst: Registry) {
    let c = client_for(&[&src, &dst]);
    for img in fixtures::IMAGES {
        let name = format!("atp/{}", img.dir);
        let want: Digest = fixtures::push(&src, img, &name).parse().unwrap();
        let r: Reference = format!("{}/{name}:{}", src.host(), img.tag)
            .parse()
            .unwrap();
        let m = c.get_manifest(&r).await.unwrap();
        assert_eq!(m.digest, want, "{}", img.dir);
        assert_eq!(m.media_type, img.media_type);
        let d_repo = repo(&dst.host(), &name);
        let mut outcomes = Vec::new();
        let got = copy(
            &c,
            r.repository(),
            &d_repo,
            &m,
            Some(img.tag),
            &[],
            &mut outcomes,
        )
        .await;
        assert_eq!(got, want);
        assert!(
            outcomes.iter().all(|o| *o == PushOutcome::Uploaded),
            "{outcomes:?}"
        );
        assert_eq!(skopeo_digest(&dst, &name, &want), want, "{}", img.dir);
        assert_eq!(
            c.manifest_exists(&d_repo, img.tag).await.unwrap(),
            Some(want.clone())
        );

        // The second push of the same image uploads nothing.
        let mark = dst.access_mark();
        let mut again = Vec::new();
        copy(
            &c,
            r.repository(),
            &d_repo,
            &m,
            Some(img.tag),
            &[],
            &mut again,
        )
        .await;
        assert!(
            again.iter().all(|o| *o == PushOutcome::Skipped),
            "{again:?}"
        );
        let log = dst.access_log_since(mark);
        assert!(
            !log.iter().any(Access::is_blob_upload),
            "second push of {} uploaded blobs:\n{}",
            img.dir,
            dump(&log)
        );
    }
    assert_eq!(
        c.manifest_exists(&repo(&dst.host(), "atp/base"), "no-such-tag")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_plain() {
    round_trip(Registry::plain(), Registry::plain()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_basic() {
    round_trip(Registry::basic(), Registry::basic()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_tls() {
    round_trip(Registry::tls(), Registry::tls()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_token() {
    round_trip(Registry::token(), Registry::token()).await;
}

/// A second image with the same layers in another repository is mounted,
/// never uploaded; with token auth that needs pull scope on the source too.
async fn mounts_shared_layers(reg: Registry) {
    let c = client_for(&[&reg]);
    let img: &FixtureImage = &fixtures::IMAGES[0];
    let name = format!("atp/{}", img.dir);
    fixtures::push(&reg, img, &name);
    let src = repo(&reg.host(), &name);
    let m = c.get_manifest(&src.tag(img.tag).unwrap()).await.unwrap();
    let dst = repo(&reg.host(), "atp/other");
    let mark = reg.access_mark();
    let mut outcomes = Vec::new();
    copy(
        &c,
        &src,
        &dst,
        &m,
        Some("v1"),
        std::slice::from_ref(&src),
        &mut outcomes,
    )
    .await;
    assert!(!outcomes.is_empty());
    for o in &outcomes {
        assert_eq!(o, &PushOutcome::Mounted { from: src.clone() });
    }
    let log = reg.access_log_since(mark);
    assert!(
        log.iter()
            .filter(|a| a.is_blob_upload())
            .all(|a| a.method == "POST" && a.path.contains("mount=") && a.status == 201),
        "expected mounts only:\n{}",
        dump(&log)
    );
    assert_eq!(skopeo_digest(&reg, "atp/other", &m.digest), m.digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_plain() {
    mounts_shared_layers(Registry::plain()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_token() {
    mounts_shared_layers(Registry::token()).await;
}

// ---- faults, behind the proxy -------------------------------------------

struct Faulty {
    reg: Registry,
    proxy: Proxy,
    client: Client,
    repo: Repository,
}

fn faulty() -> Faulty {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host()).unwrap();
    let mut o = options();
    o.registries.insert(
        proxy.host(),
        RegistryConfig {
            plain_http: true,
            ..Default::default()
        },
    );
    let client = Client::new(o).unwrap();
    let repo = repo(&proxy.host(), "atp/faults");
    Faulty {
        reg,
        proxy,
        client,
        repo,
    }
}

fn random_blob(len: usize) -> (Bytes, Digest) {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    let d = Digest::of(&v);
    (Bytes::from(v), d)
}

impl Faulty {
    /// Push a fresh random blob; assert it is committed exactly once and
    /// present by HEAD, and that every rule fired.
    async fn push_and_verify(&self, len: usize) -> (Duration, Vec<Access>) {
        let (blob, d) = random_blob(len);
        let start = Instant::now();
        let out = self
            .client
            .push_blob(&self.repo, &d, len as u64, &blob, &[])
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "push failed: {e}\nregistry log:\n{}",
                    dump(&self.reg.access_log())
                )
            });
        let took = start.elapsed();
        assert_eq!(out, PushOutcome::Uploaded);
        for r in self.proxy.rules() {
            assert_eq!(Some(r.hits), r.times, "rule did not fire: {r:?}");
        }
        assert_eq!(
            self.client.blob_exists(&self.repo, &d).await.unwrap(),
            Some(len as u64)
        );
        let log = self.reg.access_log();
        let commits: Vec<_> = log
            .iter()
            .filter(|a| {
                a.method == "PUT"
                    && a.path.contains("/blobs/uploads/")
                    && a.path.contains("digest=")
                    && a.status == 201
            })
            .collect();
        assert_eq!(commits.len(), 1, "commits:\n{}", dump(&log));
        // And the bytes are right: download and compare.
        let mut back = Vec::new();
        self.client
            .fetch_blob_to(&self.repo, &d, len as u64, &mut back)
            .await
            .unwrap();
        assert!(back == blob[..]);
        (took, log)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_in_the_middle_of_a_patch_resumes() {
    let f = faulty();
    f.proxy.add(Rule::new(
        "PATCH",
        "/blobs/uploads/",
        Fault::ResetRequestAfter(100_000),
    ));
    f.push_and_verify(4 * CHUNK as usize + 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_in_the_middle_of_a_later_patch_recovers() {
    let f = faulty();
    // The first chunk goes through; the second is cut halfway. distribution
    // then refuses the session (its stored offset no longer matches), so the
    // client sees 404 on the status query and starts a fresh session.
    f.proxy.add(
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::ResetRequestAfter(CHUNK / 2),
        )
        .after(1),
    );
    f.push_and_verify(4 * CHUNK as usize + 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_in_the_middle_of_a_put_resumes() {
    let f = faulty();
    f.proxy.add(Rule::new(
        "PUT",
        "/blobs/uploads/",
        Fault::ResetRequestAfter(50_000),
    ));
    f.push_and_verify(300_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_503s_in_a_row_are_retried() {
    let f = faulty();
    f.proxy.add(
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        )
        .times(3),
    );
    f.push_and_verify(2 * CHUNK as usize + 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_seconds_is_honored() {
    let f = faulty();
    f.proxy.add(Rule::new(
        "PUT",
        "/blobs/uploads/",
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::Seconds(1)),
        },
    ));
    let (took, _) = f.push_and_verify(10_000).await;
    assert!(took >= Duration::from_millis(950), "waited only {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_date_is_honored() {
    let f = faulty();
    f.proxy.add(Rule::new(
        "POST",
        "/blobs/uploads/",
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::DateIn(2)),
        },
    ));
    let (took, _) = f.push_and_verify(10_000).await;
    // HTTP-dates have one-second resolution.
    assert!(took >= Duration::from_millis(900), "waited only {took:?}");
}

/// Upload sessions the client opened (each is one POST).
fn sessions(log: &[Access]) -> usize {
    log.iter()
        .filter(|a| a.method == "POST" && a.path.contains("/blobs/uploads/"))
        .count()
}

/// Status queries of an upload session that the registry answered with 204.
fn status_queries(log: &[Access]) -> usize {
    log.iter()
        .filter(|a| a.method == "GET" && a.path.contains("/blobs/uploads/") && a.status == 204)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_416_resumes_from_the_reported_range() {
    let f = faulty();
    // The first chunk lands; the second is answered 416 by the proxy, so the
    // registry holds exactly one chunk and reports it in `Range`.
    f.proxy.add(
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::Status {
                status: 416,
                retry_after: None,
            },
        )
        .after(1),
    );
    let (_, log) = f.push_and_verify(3 * CHUNK as usize).await;
    assert_eq!(sessions(&log), 1, "resumed, not restarted:\n{}", dump(&log));
    assert_eq!(status_queries(&log), 1, "{}", dump(&log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_on_a_later_chunk_resumes_on_the_same_session() {
    let f = faulty();
    f.proxy.add(
        Rule::new(
            "PATCH",
            "/blobs/uploads/",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        )
        .after(2)
        .times(2),
    );
    let (_, log) = f.push_and_verify(4 * CHUNK as usize + 5).await;
    assert_eq!(sessions(&log), 1, "{}", dump(&log));
    assert_eq!(status_queries(&log), 2, "{}", dump(&log));
    // Four chunks of PATCH reached the registry, each once.
    let patches = log.iter().filter(|a| a.method == "PATCH").count();
    assert_eq!(patches, 4, "{}", dump(&log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forever_500_registry_fails_within_the_bound() {
    let f = faulty();
    f.proxy.add(
        Rule::new(
            "POST",
            "/blobs/uploads/",
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        )
        .forever(),
    );
    let (blob, d) = random_blob(1000);
    let start = Instant::now();
    let err = f
        .client
        .push_blob(&f.repo, &d, 1000, &blob, &[])
        .await
        .unwrap_err();
    let took = start.elapsed();
    let policy = RetryPolicy::fast();
    assert!(took < policy.max_total, "took {took:?}");
    let text = err.to_string();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts, .. } if *attempts == policy.max_retries + 1),
        "{text}"
    );
    assert!(text.contains("gave up on POST"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("hint:"), "{text}");
    assert_eq!(
        f.proxy.rules()[0].hits as u32,
        policy.max_retries + 1,
        "every attempt reached the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_reset_resumes_with_range() {
    let f = faulty();
    let (blob, d) = random_blob(600_000);
    f.client
        .push_blob(&f.repo, &d, blob.len() as u64, &blob, &[])
        .await
        .unwrap();
    f.proxy.add(Rule::new(
        "GET",
        &format!("/blobs/{d}"),
        Fault::ResetResponseAfter(200_000),
    ));
    let mark = f.reg.access_mark();
    let mut back = Vec::new();
    f.client
        .fetch_blob_to(&f.repo, &d, blob.len() as u64, &mut back)
        .await
        .unwrap();
    assert!(back == blob[..]);
    let gets: Vec<u16> = f
        .reg
        .access_log_since(mark)
        .iter()
        .filter(|a| a.method == "GET" && a.path.ends_with(&d.to_string()))
        .map(|a| a.status)
        .collect();
    assert_eq!(gets.last(), Some(&206), "{gets:?}");

    // A wrong expected size is refused before anything is trusted.
    let err = f
        .client
        .fetch_blob_to(&f.repo, &d, blob.len() as u64 - 1, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Blob { .. }), "{err}");
    // And the streaming reader verifies too.
    use tokio::io::AsyncReadExt;
    let mut r = f
        .client
        .blob_reader(&f.repo, &d, blob.len() as u64)
        .await
        .unwrap()
        .into_async_read();
    let mut all = Vec::new();
    r.read_to_end(&mut all).await.unwrap();
    assert!(all == blob[..]);
}

// ---- auth, TLS and fatal errors -----------------------------------------

/// Pull-scope token fetches answered 200 since the `before`-th token request.
fn pull_tokens_fetched(reg: &Registry, before: usize, scope: &str) -> usize {
    reg.token_requests()[before..]
        .iter()
        .filter(|t| t.scopes == [scope] && t.status == 200)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_per_scope() {
    // The default five-minute lifetime: every request below reuses the one
    // token however slowly the machine runs.
    let reg = Registry::token();
    let img = &fixtures::IMAGES[0];
    fixtures::push(&reg, img, "atp/base");
    let c = client_for(&[&reg]);
    let r: Reference = format!("{}/atp/base:{}", reg.host(), img.tag)
        .parse()
        .unwrap();
    let before = reg.token_requests().len();
    let m = c.get_manifest(&r).await.unwrap();
    for d in m.kind().unwrap().children() {
        assert_eq!(
            c.blob_exists(r.repository(), &d.digest).await.unwrap(),
            Some(d.size)
        );
    }
    c.get_manifest(&r).await.unwrap();
    let pull_scope = "repository:atp/base:pull";
    assert_eq!(
        pull_tokens_fetched(&reg, before, pull_scope),
        1,
        "{:?}",
        reg.token_requests()
    );
    // Every token request carried the configured user.
    assert!(reg.token_requests()[before..]
        .iter()
        .all(|t| t.user.as_deref() == Some(atp_testkit::registry::USER)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_after_expiry() {
    let reg = Registry::start(atp_testkit::RegistryOptions {
        auth: atp_testkit::Auth::Token,
        token_ttl_secs: 2,
        ..Default::default()
    })
    .unwrap();
    let img = &fixtures::IMAGES[0];
    fixtures::push(&reg, img, "atp/base");
    let c = client_for(&[&reg]);
    let r: Reference = format!("{}/atp/base:{}", reg.host(), img.tag)
        .parse()
        .unwrap();
    let before = reg.token_requests().len();
    let pull_scope = "repository:atp/base:pull";
    let m = c.get_manifest(&r).await.unwrap();
    let first = pull_tokens_fetched(&reg, before, pull_scope);
    assert!(first >= 1, "{:?}", reg.token_requests());
    // Past the lifetime (a lower bound only: a slow machine waits longer,
    // which changes nothing) the token is not reused: a fresh one is
    // fetched and the request works.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(c.get_manifest(&r).await.unwrap().digest, m.digest);
    assert!(
        pull_tokens_fetched(&reg, before, pull_scope) > first,
        "{:?}",
        reg.token_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_and_4xx_are_not_retried() {
    let reg = Registry::tls();
    // No CA configured: the handshake fails, once, with a TLS error. The
    // client reaches the registry through a TCP relay that counts
    // connections, so "once" is a count, not a stopwatch.
    let relay = Relay::start(std::net::Ipv4Addr::LOCALHOST.into(), &reg.host()).unwrap();
    let mut o = options();
    o.registries.insert(relay.host(), RegistryConfig::default());
    let c = Client::new(o).unwrap();
    let r: Reference = format!("{}/atp/none:1", relay.host()).parse().unwrap();
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(
        err.to_string().contains("hint: pass the registry's CA"),
        "{err}"
    );
    assert_eq!(relay.connections(), 1, "a TLS failure was retried: {err}");
    let r: Reference = format!("{}/atp/none:1", reg.host()).parse().unwrap();

    // With the CA: a missing manifest is a plain 404, answered once.
    let c = client_for(&[&reg]);
    let mark = reg.access_mark();
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(reg.access_log_since(mark).len(), 1);

    // A wrong password against basic auth is fatal and says so.
    let basic = Registry::basic();
    let mut o = options();
    o.registries.insert(
        basic.host(),
        RegistryConfig {
            plain_http: true,
            credentials: Some(Credentials::new("atp", "not-the-password")),
            ..Default::default()
        },
    );
    let c = Client::new(o).unwrap();
    let r: Reference = format!("{}/atp/none:1", basic.host()).parse().unwrap();
    let err = c.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!err.to_string().contains("not-the-password"));

    // Anonymous against basic auth: tells the user to log in.
    let mut o = options();
    o.registries.insert(
        basic.host(),
        RegistryConfig {
            plain_http: true,
            ..Default::default()
        },
    );
    let err = Client::new(o).unwrap().get_manifest(&r).await.unwrap_err();
    assert!(err.to_string().contains("docker login"), "{err}");

    // HTTPS spoken to a plain-HTTP registry is a TLS failure too, not retried.
    let err = client_for(&[]).get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_blob_and_a_chunked_blob_round_trip() {
    let reg = Registry::plain();
    let c = client_for(&[&reg]);
    let repo = repo(&reg.host(), "atp/edge");
    for len in [0, CHUNK as usize, 3 * CHUNK as usize + 1] {
        let (blob, d) = random_blob(len);
        let out = c
            .push_blob(&repo, &d, len as u64, &blob, &[])
            .await
            .unwrap();
        assert_eq!(out, PushOutcome::Uploaded);
        assert_eq!(c.blob_exists(&repo, &d).await.unwrap(), Some(len as u64));
        let mut back = Vec::new();
        c.fetch_blob_to(&repo, &d, len as u64, &mut back)
            .await
            .unwrap();
        assert!(back == blob[..]);
    }
}

#[test]
fn bad_tls_settings_fail_at_construction() {
    let mut o = options();
    o.registries.insert(
        "r.example:5000".into(),
        RegistryConfig {
            client_cert: Some((
                "/nonexistent/cert.pem".into(),
                "/nonexistent/key.pem".into(),
            )),
            ..Default::default()
        },
    );
    let err = Client::new(o).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("cert.pem")),
        "{err}"
    );
}

/// A source that counts how many uploads read it at the same time. The first
/// uploads to open it wait until `overlap` are open together (or `deadline`,
/// shared by all, passes), so overlap is forced by order, not by a sleep.
struct Counting {
    data: Bytes,
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    overlap: usize,
    deadline: tokio::time::Instant,
}

struct Guarded {
    inner: std::io::Cursor<Bytes>,
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl tokio::io::AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl atp_registry::BlobSource for Counting {
    fn open(
        &self,
        offset: u64,
    ) -> Pin<
        Box<
            dyn Future<Output = std::io::Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>
                + Send
                + '_,
        >,
    > {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
        let reader = Guarded {
            inner: std::io::Cursor::new(self.data.slice(offset as usize..)),
            now: self.now.clone(),
        };
        let max = self.max.clone();
        let (overlap, deadline) = (self.overlap, self.deadline);
        Box::pin(async move {
            // Hold the body until `overlap` uploads are open at once. A
            // client that never overlaps waits out the one deadline and fails
            // the "never overlapped" check below; it does not hang.
            while max.load(SeqCst) < overlap && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok(Box::new(reader) as Box<_>)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_transfers_respect_the_concurrency_setting() {
    let reg = Registry::plain();
    let mut o = options();
    o.concurrency = 2;
    o.registries.insert(reg.host(), config_for(&reg));
    let c = Client::new(o).unwrap();
    let repo = repo(&reg.host(), "atp/many");
    let now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let max = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for _ in 0..6 {
        let (data, d) = random_blob(20_000);
        let src = Counting {
            data,
            now: now.clone(),
            max: max.clone(),
            overlap: 2,
            deadline,
        };
        let (c, repo) = (c.clone(), repo.clone());
        set.spawn(async move { c.push_blob(&repo, &d, 20_000, &src, &[]).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), PushOutcome::Uploaded);
    }
    let max = max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max <= 2, "{max} uploads at once with concurrency 2");
    assert_eq!(max, 2, "uploads never overlapped");
}
