//! Secrets never reach logs, errors or `Debug`: trace-level logging of a full
//! pull and push against the real registry in basic and token mode is captured
//! into a buffer and searched for the password, its Basic encoding and any JWT.
//!
//! Lives here rather than in `tests/tests/` because it needs
//! `tracing-subscriber`, which the testkit package does not depend on. One
//! test function, because the subscriber is process-global.

use std::io::Write;
use std::sync::Mutex;

use atp_registry::{
    Client, ClientOptions, Credentials, DefaultCredentials, Error, ParsedManifest, Reference,
    RegistryConfig, Repository, RetryPolicy,
};
use atp_testkit::fixtures;
use atp_testkit::proxy::{Fault, Proxy, Rule};
use atp_testkit::Registry;
use base64::Engine as _;

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn client(reg: &Registry, creds: Credentials) -> Client {
    let mut o = ClientOptions {
        default_creds: DefaultCredentials::None,
        retry: RetryPolicy::fast(),
        // Small chunks so PATCH, PUT and the token paths all run.
        chunk_size: 1024,
        monolithic_max: 1024,
        ..Default::default()
    };
    o.registries.insert(
        reg.host(),
        RegistryConfig {
            plain_http: true,
            credentials: Some(creds),
            ..Default::default()
        },
    );
    Client::new(o).unwrap()
}

/// Pull the base fixture and push it to another repository: every request
/// type the client makes, with credentials in play.
async fn exercise(reg: &Registry, c: &Client) {
    let img = &fixtures::IMAGES[0];
    fixtures::push(reg, img, "atp/base");
    let r: Reference = format!("{}/atp/base:{}", reg.host(), img.tag)
        .parse()
        .unwrap();
    let m = c.get_manifest(&r).await.unwrap();
    let dst: Repository = format!("{}/atp/copy", reg.host()).parse().unwrap();
    let ParsedManifest::Image { config, layers } = m.kind().unwrap() else {
        panic!("base is a single manifest");
    };
    for d in std::iter::once(&config).chain(&layers) {
        let mut buf = Vec::new();
        c.fetch_blob_to(r.repository(), &d.digest, d.size, &mut buf)
            .await
            .unwrap();
        c.push_blob(
            &dst,
            &d.digest,
            d.size,
            &atp_registry::Bytes::from(buf),
            &[],
        )
        .await
        .unwrap();
    }
    c.push_manifest(&dst, "v1", &m.bytes, &m.media_type)
        .await
        .unwrap();
    assert!(c.blob_exists(&dst, &config.digest).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_errors_and_debug_hold_no_secrets() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(|| Capture)
        .try_init()
        .unwrap();

    let mut secrets = Vec::new();
    let mut texts = Vec::new();
    for reg in [Registry::basic(), Registry::token()] {
        let (user, password) = reg.credentials().unwrap();
        secrets.push(password.clone());
        secrets
            .push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let c = client(&reg, Credentials::new(&user, &password));
        exercise(&reg, &c).await;
        texts.push(format!("{c:?}"));

        // A wrong password: the error says what to do and shows no secret.
        let wrong = format!("{password}-wrong");
        secrets.push(wrong.clone());
        let bad = client(&reg, Credentials::new(&user, &wrong));
        let r: Reference = format!("{}/atp/base:1.0.0", reg.host()).parse().unwrap();
        let err = bad.get_manifest(&r).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("hint:"), "{text}");
        texts.push(text);
        texts.push(format!("{err:?}"));
        texts.push(format!("{bad:?}"));
    }

    // Retries are announced at warn with the tries left (through the fault
    // proxy in front of a basic-auth registry, so credentials are in play).
    let reg = Registry::basic();
    let (user, password) = reg.credentials().unwrap();
    secrets.push(password.clone());
    fixtures::push(&reg, &fixtures::IMAGES[0], "atp/base");
    let proxy = Proxy::start(&reg.host()).unwrap();
    proxy.add(
        Rule::new(
            "GET",
            "/manifests/",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        )
        .times(2),
    );
    let mut o = ClientOptions {
        default_creds: DefaultCredentials::None,
        retry: RetryPolicy::fast(),
        ..Default::default()
    };
    o.registries.insert(
        proxy.host(),
        RegistryConfig {
            plain_http: true,
            credentials: Some(Credentials::new(&user, &password)),
            ..Default::default()
        },
    );
    let r: Reference = format!("{}/atp/base:1.0.0", proxy.host()).parse().unwrap();
    Client::new(o).unwrap().get_manifest(&r).await.unwrap();

    let log = String::from_utf8(CAPTURED.lock().unwrap().clone()).unwrap();
    let warn = |needle: &str| {
        log.lines()
            .any(|l| l.contains(" WARN ") && l.contains(needle))
    };
    assert!(warn("retrying (4 tries left)"), "no retry warning:\n{log}");
    assert!(warn("retrying (3 tries left)"), "no second retry warning");
    assert!(warn("HTTP 503"), "retry warning does not say why");
    // The capture works and saw the HTTP traffic at trace level.
    assert!(log.contains("TRACE"), "nothing captured at trace level");
    assert!(
        log.contains("requesting registry token"),
        "token path not logged"
    );
    assert!(log.contains("/blobs/uploads/"), "uploads not logged");
    assert!(log.contains("hyper_util"), "HTTP stack traces not captured");
    texts.push(log);
    for text in &texts {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "secret leaked into:\n{text}");
        }
        // Every bearer token the issuer mints is a JWT: `eyJ...`.
        assert!(!text.contains("eyJ"), "a token leaked into:\n{text}");
        assert!(!text.contains("Bearer ey"), "{text}");
    }
}
