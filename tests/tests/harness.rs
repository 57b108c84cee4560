//! The registry harness against itself: in every mode, a fixture image pushed
//! with skopeo can be inspected with the right flags and is refused with the
//! wrong ones, and the access log shows what happened.

use atp_testkit::fixtures::{self, FixtureImage};
use atp_testkit::{skopeo, Auth, Registry, RegistryOptions};

fn image(dir: &str) -> &'static FixtureImage {
    fixtures::IMAGES.iter().find(|i| i.dir == dir).unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `skopeo inspect --raw` digest equals the fixture's; returns nothing.
fn inspect_digest(reg: &Registry, reference: &str, flags: &[String]) -> String {
    let mut args = vec!["inspect", "--format", "{{.Digest}}"];
    args.extend(flags.iter().map(String::as_str));
    args.push(reference);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo inspect {reference} failed against {}: {}",
        reg.url(),
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn assert_manifest_put(reg: &Registry, repo: &str, tag: &str) {
    let log = reg.access_log();
    let want = format!("/v2/{repo}/manifests/{tag}");
    assert!(
        log.iter()
            .any(|a| a.method == "PUT" && a.path == want && a.status == 201),
        "no `PUT {want} -> 201` in the access log:\n{}",
        log.iter().map(|a| format!("{a}\n")).collect::<String>()
    );
}

fn push_and_check(reg: &Registry, dir: &str) -> String {
    let img = image(dir);
    let repo = format!("atp/{dir}");
    let digest = fixtures::push(reg, img, &repo);
    assert_eq!(digest, fixtures::index_digest(img));
    let reference = format!("docker://{}/{repo}:{}", reg.host(), img.tag);
    assert_eq!(inspect_digest(reg, &reference, &reg.skopeo_flags()), digest);
    assert_manifest_put(reg, &repo, img.tag);
    reference
}

#[test]
fn plain_registry_push_inspect_and_access_log() {
    let reg = Registry::plain();
    assert!(reg.credentials().is_none());
    assert!(reg.url().starts_with("http://127.0.0.1:"));
    let mark = reg.access_mark();
    let reference = push_and_check(&reg, "base");
    let since = reg.access_log_since(mark);
    assert!(since.iter().any(|a| a.is_blob_upload()), "{since:?}");

    // Without --tls-verify=false skopeo insists on HTTPS and fails.
    let out = skopeo(&["inspect", &reference]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("http: server gave HTTP response to HTTPS client"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn basic_auth_registry_accepts_right_and_refuses_wrong_credentials() {
    let reg = Registry::basic();
    let (user, _) = reg.credentials().unwrap();
    let reference = push_and_check(&reg, "metrics-exporter");

    let mark = reg.access_mark();
    let bad = format!("{user}:wrong-password");
    let out = skopeo(&["inspect", "--tls-verify=false", "--creds", &bad, &reference]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("unauthorized")
            || stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );
    // Anonymous is refused too.
    let out = skopeo(&["inspect", "--tls-verify=false", &reference]);
    assert!(!out.status.success());
    let since = reg.access_log_since(mark);
    assert!(!since.is_empty());
    assert!(since.iter().all(|a| a.status == 401), "{since:?}");
}

#[test]
fn tls_registry_needs_the_ca() {
    let reg = Registry::tls();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let ca = std::fs::read_to_string(reg.ca_cert_path().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(reg.cert_dir().unwrap().join("ca.crt").is_file());
    let reference = push_and_check(&reg, "model-loader");

    let mark = reg.access_mark();
    let out = skopeo(&["inspect", &reference]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("certificate signed by unknown authority"),
        "{}",
        stderr(&out)
    );
    // The TLS handshake failed, so no HTTP request reached the registry.
    assert_eq!(reg.access_log_since(mark), vec![]);
}

#[test]
fn token_registry_issues_scoped_tokens_and_refuses_bad_credentials() {
    let reg = Registry::token();
    let (user, _) = reg.credentials().unwrap();
    let reference = push_and_check(&reg, "router");
    let requests = reg.token_requests();
    assert!(
        requests.iter().any(|r| r.status == 200
            && r.user.as_deref() == Some(user.as_str())
            && r.scopes
                .iter()
                .any(|s| s == "repository:atp/router:pull,push")),
        "{requests:?}"
    );

    let bad = format!("{user}:wrong-password");
    let out = skopeo(&["inspect", "--tls-verify=false", "--creds", &bad, &reference]);
    assert!(!out.status.success());
    assert!(
        reg.token_requests()
            .iter()
            .any(|r| r.status == 401 && r.user.as_deref() == Some(user.as_str())),
        "{:?}",
        reg.token_requests()
    );
    assert!(
        stderr(&out).to_lowercase().contains("unauthorized")
            || stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tls_with_token_auth() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Token,
        tls: true,
        ..Default::default()
    })
    .unwrap();
    push_and_check(&reg, "base");
}

#[test]
fn tls_with_basic_auth() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Basic,
        tls: true,
        ..Default::default()
    })
    .unwrap();
    push_and_check(&reg, "metrics-exporter");
}

#[test]
fn kill_and_restart_keep_storage_and_port() {
    let mut reg = Registry::plain();
    let host = reg.host();
    let reference = push_and_check(&reg, "base");
    reg.kill();
    let out = skopeo(&["inspect", "--tls-verify=false", &reference]);
    assert!(!out.status.success());
    reg.restart().unwrap();
    assert_eq!(reg.host(), host);
    let digest = inspect_digest(&reg, &reference, &reg.skopeo_flags());
    assert_eq!(digest, fixtures::index_digest(image("base")));
    assert!(reg.storage_dir().join("docker").is_dir());
}

/// Drive the token flow by hand: realm → token → registry, then let it expire.
/// The lifetime leaves a loaded machine seconds to use the fresh token; the
/// wait after it is a lower bound only.
#[test]
fn token_expires_after_the_configured_ttl_and_account_must_match() {
    let reg = Registry::start(RegistryOptions {
        auth: Auth::Token,
        token_ttl_secs: 6,
        ..Default::default()
    })
    .unwrap();
    fixtures::push(&reg, image("base"), "atp/base");
    let (user, password) = reg.credentials().unwrap();
    let realm = reg.token_realm().unwrap();
    let tags = format!("{}/v2/atp/base/tags/list", reg.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let token_url = |account: &str| {
            format!(
                "{realm}?service={}&scope=repository:atp/base:pull&scope=repository:atp/other:pull&account={account}",
                atp_testkit::registry::TOKEN_SERVICE
            )
        };
        let resp = http
            .get(token_url(&user))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["expires_in"], 6);
        let token = body["token"].as_str().unwrap().to_owned();
        assert_eq!(body["access_token"], token.as_str());
        assert_eq!(token.split('.').count(), 3, "JWS compact form");

        let get = || http.get(&tags).bearer_auth(&token).send();
        assert_eq!(get().await.unwrap().status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(7500)).await;
        assert_eq!(get().await.unwrap().status(), 401, "token outlived its ttl");

        // Wrong password and a mismatched account are refused by the issuer.
        let resp = http
            .get(token_url(&user))
            .basic_auth(&user, Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let resp = http
            .get(token_url("someone-else"))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    });
    let issued = reg.token_requests();
    let first_manual = issued.iter().rev().nth(2).unwrap();
    assert_eq!(
        first_manual.scopes,
        vec!["repository:atp/base:pull", "repository:atp/other:pull"]
    );
}

#[test]
fn token_issuer_accepts_an_oauth2_password_grant() {
    let reg = Registry::token();
    fixtures::push(&reg, image("base"), "atp/base");
    let (user, password) = reg.credentials().unwrap();
    let realm = reg.token_realm().unwrap();
    let tags = format!("{}/v2/atp/base/tags/list", reg.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let form = |pw: &str| {
            format!(
                "grant_type=password&username={user}&password={pw}&service={}&scope=repository%3Aatp%2Fbase%3Apull",
                atp_testkit::registry::TOKEN_SERVICE
            )
        };
        let post = |body: String| {
            http.post(&realm)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        let resp = post(form(&password)).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let token = body["access_token"].as_str().unwrap();
        let resp = http.get(&tags).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(post(form("wrong")).await.unwrap().status(), 401);
    });
}

#[test]
fn access_log_starts_empty_and_shows_a_second_push_uploads_nothing() {
    let reg = Registry::plain();
    assert_eq!(
        reg.access_log(),
        vec![],
        "the readiness probe is not logged"
    );
    let img = image("router");
    let first = fixtures::push(&reg, img, "atp/router");
    let uploads = reg
        .access_log()
        .iter()
        .filter(|a| a.is_blob_upload())
        .count();
    // Six distinct blobs: two base layers, two app layers, two configs.
    assert!(uploads >= 6, "{:?}", reg.access_log());

    let mark = reg.access_mark();
    assert_eq!(fixtures::push(&reg, img, "atp/router"), first);
    let second = reg.access_log_since(mark);
    assert!(!second.is_empty());
    assert!(
        second.iter().all(|a| !a.is_blob_upload()),
        "second push uploaded blobs: {second:?}"
    );
}

#[test]
fn registry_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
}

#[tokio::test]
async fn start_works_inside_a_tokio_test() {
    let reg = Registry::token();
    let resp = reqwest::get(format!("{}/v2/", reg.url())).await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{}\"", reg.token_realm().unwrap())),
        "{challenge}"
    );
    assert!(
        challenge.contains("service=\"atp-test-registry\""),
        "{challenge}"
    );
    let log = reg.access_log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("GET", "/v2/", 401)
    );
}
