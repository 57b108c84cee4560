//! `atp-installer serve` negotiates manifests by `Accept` as the real
//! docker-registry (distribution v2.8) does: the demo images are copied from
//! `serve` into a docker-registry with skopeo, then every manifest (by tag
//! and by digest, the index's children too) is asked of both with the same
//! `Accept` headers, and the status codes and error codes must agree.
//!
//! Two deliberate differences are asserted on their own: a request with no
//! `Accept`, or with `*/*`, is served every manifest as before (distribution
//! answers an OCI manifest to it with 404).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use atp_testkit::{skopeo, Registry};
use common::{assert_ok, json, Work};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A running `atp-installer serve`, killed on drop.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(w: &Work, bundle: &str) -> Serve {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let err = std::fs::File::create(w.path("serve.err")).unwrap();
        let child = w
            .installer_cmd(&["serve", bundle, "--key", "k.pub", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let s = Serve { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while status(port, "GET", "/v2/", None).map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "serve did not answer /v2/ within 60s:\n{}",
                std::fs::read_to_string(w.path("serve.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, OCI error code (GET only) and `Content-Type` of one request.
fn status(port: u16, method: &str, path: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(a) = accept {
        req.push_str(&format!("Accept: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let code: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let body: serde_json::Value = serde_json::from_slice(&raw[end + 4..]).unwrap_or_default();
    let err = body["errors"][0]["code"].as_str().unwrap_or("").to_owned();
    Some((code, err))
}

/// The Accept headers both must answer alike.
const ACCEPTS: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_LIST,
    "application/json",
    "application/*",
    "text/html, application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json; q=0.5",
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
];

#[test]
fn serve_accept_answers_manifests_as_docker_registry_does() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = w.bundler(&["inspect", "b.tar", "--json"]);
    assert_ok(&out, "inspect");
    let images: Vec<String> = json(&out)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap().to_owned())
        .collect();
    let serve = Serve::start(&w, "b.tar");
    let host = format!("127.0.0.1:{}", serve.port);
    let reg = Registry::plain();
    // Every manifest by path: tags, and each digest (an index's children too).
    let mut paths = Vec::new();
    for reference in &images {
        let mut args = vec![
            "copy".to_string(),
            "--all".into(),
            "--src-tls-verify=false".into(),
        ];
        args.extend(reg.skopeo_dest_flags());
        args.push(format!("docker://{host}/{reference}"));
        args.push(format!("docker://{}/{reference}", reg.host()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&skopeo(&a), &format!("skopeo copy --all {reference}"));
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/{reference}"),
        ]);
        assert_ok(&raw, "skopeo inspect --raw");
        let v: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
        paths.push(format!("/v2/{repo}/manifests/{tag}"));
        paths.push(format!(
            "/v2/{repo}/manifests/{}",
            atp_bundle::Digest::of(&raw.stdout)
        ));
        for child in v["manifests"].as_array().into_iter().flatten() {
            let d = child["digest"].as_str().unwrap();
            paths.push(format!("/v2/{repo}/manifests/{d}"));
        }
    }
    let mut refused = 0;
    for path in &paths {
        for accept in ACCEPTS {
            for method in ["GET", "HEAD"] {
                let ours = status(serve.port, method, path, Some(accept)).unwrap();
                let theirs = status(reg.port(), method, path, Some(accept)).unwrap();
                assert_eq!(ours, theirs, "{method} {path} with Accept: {accept}");
                if ours.0 == 404 {
                    refused += 1;
                }
            }
        }
        // Kinder than distribution, as serve always was.
        for accept in [None, Some("*/*")] {
            let ours = status(serve.port, "GET", path, accept).unwrap();
            assert_eq!(ours.0, 200, "GET {path} with Accept: {accept:?}");
        }
    }
    assert!(paths.len() >= 7, "{paths:?}");
    assert!(refused > 0, "no Accept case was refused: nothing compared");
}
