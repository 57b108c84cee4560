//! `atp-installer serve` against real clients: skopeo, podman and
//! docker-registry (as a copy target and as a pull-through cache), plus raw
//! HTTP for the requests no well-behaved client sends. Every wait is bounded;
//! every server is stopped (SIGTERM, then kill) when its guard drops.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use atp_testkit::containerd::{Containerd, Pull};
use atp_testkit::podman::{Podman, PodmanPull};
use atp_testkit::{skopeo, Registry};
use common::{assert_ok, json, Work};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `atp-installer serve`, stopped on drop.
struct Serve {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Serve {
    /// Start serving `bundle` on a free loopback port and wait for `/v2/`.
    fn start(w: &Work, bundle: &str, extra: &[&str]) -> Serve {
        let s = Serve::spawn(w, bundle, extra);
        s.wait_ready();
        s
    }

    fn spawn(w: &Work, bundle: &str, extra: &[&str]) -> Serve {
        let port = free_port();
        let stderr = w.path(&format!("serve-{port}.err"));
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", bundle, "--key", "k.pub", "--listen", &listen];
        args.extend_from_slice(extra);
        let child = w
            .installer_cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Serve {
            child,
            port,
            stderr,
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = get(self.port, "GET", "/v2/", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve did not answer /v2/ within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, and the exit status within 20 s (killed after that).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// One raw HTTP/1.1 exchange (`Connection: close`).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }

    /// The body is as long as `Content-Length` says.
    fn complete(&self) -> bool {
        self.header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| l == self.body.len())
    }
}

fn get(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    // A connection closed short of its Content-Length ends the read too.
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

fn req(port: u16, method: &str, path: &str) -> Reply {
    get(port, method, path, &[]).unwrap()
}

/// The demo bundle in a fresh workdir, and its images as `inspect --json` lists them.
fn demo() -> (Work, Vec<(String, String)>) {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = w.bundler(&["inspect", "b.tar", "--json"]);
    assert_ok(&out, "inspect");
    let images = json(&out)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_owned(),
                i["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (w, images)
}

/// `docker.io/atp/router:1.4.0` → `docker.io/atp/router` and `1.4.0`.
fn split(reference: &str) -> (&str, &str) {
    reference.rsplit_once(':').unwrap()
}

fn raw_manifest(host: &str, reference: &str, flags: &[&str]) -> Vec<u8> {
    let mut args = vec!["inspect", "--raw"];
    args.extend_from_slice(flags);
    let r = format!("docker://{host}/{reference}");
    args.push(&r);
    let o = skopeo(&args);
    assert_ok(&o, &format!("skopeo inspect {r}"));
    o.stdout
}

/// A layer of the single-platform OCI image (model-loader), and its size.
fn a_layer(port: u16, images: &[(String, String)]) -> (String, String, u64) {
    let (reference, _) = images
        .iter()
        .find(|(r, _)| r.contains("model-loader"))
        .unwrap();
    let (repo, tag) = split(reference);
    let m = req(port, "GET", &format!("/v2/{repo}/manifests/{tag}"));
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    let layer = &v["layers"][0];
    (
        repo.to_owned(),
        layer["digest"].as_str().unwrap().to_owned(),
        layer["size"].as_u64().unwrap(),
    )
}

/// Where blob `digest`'s bytes start in the bundle tar.
fn blob_offset(tar_path: &Path, digest: &str) -> u64 {
    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    let mut ar = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            return e.raw_file_position();
        }
    }
    panic!("{name} not in {}", tar_path.display());
}

fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x01;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn serve_skopeo_inspect_and_copy_all_every_image_digests_equal_the_bundle() {
    let (w, images) = demo();
    let serve = Serve::start(&w, "b.tar", &[]);
    let reg = Registry::plain();
    let dest = reg.skopeo_dest_flags();
    assert_eq!(images.len(), 3, "{images:?}");
    for (reference, digest) in &images {
        let raw = raw_manifest(&serve.host(), reference, &["--tls-verify=false"]);
        assert_eq!(
            &atp_bundle::Digest::of(&raw).to_string(),
            digest,
            "{reference}"
        );
        let o = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/{reference}", serve.host()),
        ]);
        assert_ok(&o, &format!("skopeo inspect {reference}"));
        let mut args = vec![
            "copy".to_string(),
            "--all".into(),
            "--src-tls-verify=false".into(),
        ];
        args.extend(dest.iter().cloned());
        args.push(format!("docker://{}/{reference}", serve.host()));
        args.push(format!("docker://{}/{reference}", reg.host()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&skopeo(&a), &format!("skopeo copy --all {reference}"));
        assert_eq!(
            &common::skopeo_digest(&reg, reference),
            digest,
            "{reference} in the registry"
        );
    }
    let log = serve.log();
    assert!(
        log.contains("\"GET /v2/docker.io/atp/router/blobs/sha256:"),
        "{log}"
    );
}

#[test]
fn serve_podman_and_containerd_pull_from_the_served_bundle() {
    let (w, images) = demo();
    let serve = Serve::start(&w, "b.tar", &[]);
    let podman = Podman::new().unwrap();
    let how = PodmanPull {
        insecure: true,
        ..PodmanPull::default()
    };
    for (reference, digest) in &images {
        let r = format!("{}/{reference}", serve.host());
        let got = podman
            .pull(&r, &how)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", serve.log()));
        assert_eq!(&got, digest, "podman pulled {r}");
    }
    let daemon = Containerd::start().unwrap();
    let how = Pull {
        plain_http: true,
        ..Pull::default()
    };
    for (reference, digest) in &images {
        let r = format!("{}/{reference}", serve.host());
        let got = daemon
            .pull(&r, &how)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", serve.log()));
        assert_eq!(&got, digest, "containerd pulled {r}");
    }
}

#[test]
fn serve_answers_bad_requests_with_oci_errors_and_heads_like_gets() {
    let (w, images) = demo();
    let mut serve = Serve::start(&w, "b.tar", &["--access-log", "access.log"]);
    let p = serve.port;
    let (repo, layer, size) = a_layer(p, &images);
    let good = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    // Names outside the grammar, path traversal included.
    for path in [
        "/v2/a/../b/manifests/1.0".to_string(),
        "/v2/docker.io/atp/%2e%2e/manifests/1.0".into(),
        "/v2/../../etc/manifests/passwd".into(),
        "/v2/Docker.io/atp/router/tags/list".into(),
        format!("/v2/a//b/blobs/{good}"),
    ] {
        let r = req(p, "GET", &path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "NAME_INVALID"),
            "{path}"
        );
    }
    // Digests of the wrong algorithm or length.
    for d in ["sha512:abcd", "sha256:abc", "md5:00", &good.to_uppercase()] {
        for kind in ["blobs", "manifests"] {
            let path = format!("/v2/{repo}/{kind}/{d}");
            let r = req(p, "GET", &path);
            assert_eq!(
                (r.status, r.code().as_str()),
                (400, "DIGEST_INVALID"),
                "{path}"
            );
        }
    }
    // Unknown names, manifests and blobs.
    let r = req(p, "GET", "/v2/no/such/manifests/1.0");
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    let r = req(p, "GET", &format!("/v2/{repo}/manifests/9.9.9"));
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = req(p, "GET", &format!("/v2/{repo}/blobs/{good}"));
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    // A blob only another repository's image references is not served here.
    let other = images
        .iter()
        .map(|(r, _)| split(r).0)
        .find(|r| *r != repo && !r.contains("router"))
        .unwrap();
    let m = req(p, "GET", &format!("/v2/{repo}/manifests/1.4.0"));
    let config = serde_json::from_slice::<serde_json::Value>(&m.body).unwrap()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        req(p, "GET", &format!("/v2/{repo}/blobs/{config}")).status,
        200
    );
    let r = req(p, "GET", &format!("/v2/{other}/blobs/{config}"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "BLOB_UNKNOWN"),
        "{other}"
    );

    // Write methods.
    for (m, path) in [
        ("PUT", format!("/v2/{repo}/manifests/x")),
        ("POST", format!("/v2/{repo}/blobs/uploads/")),
        ("DELETE", format!("/v2/{repo}/blobs/{layer}")),
        ("PATCH", format!("/v2/{repo}/blobs/uploads/x")),
    ] {
        let r = req(p, m, &path);
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "UNSUPPORTED"),
            "{m} {path}"
        );
    }

    // Ranges.
    let blob_path = format!("/v2/{repo}/blobs/{layer}");
    let whole = req(p, "GET", &blob_path);
    assert_eq!(whole.status, 200);
    assert!(whole.complete());
    assert_eq!(atp_bundle::Digest::of(&whole.body).to_string(), layer);
    let r = get(p, "GET", &blob_path, &[("Range", "bytes=1-10")]).unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, whole.body[1..=10]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 1-10/{size}").as_str())
    );
    let r = get(
        p,
        "GET",
        &blob_path,
        &[("Range", &format!("bytes={size}-"))],
    )
    .unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    let r = get(
        p,
        "GET",
        &blob_path,
        &[("Range", &format!("bytes={}-{}", size + 5, size + 9))],
    )
    .unwrap();
    assert_eq!(r.status, 416);

    // HEAD answers what GET answers, without the body.
    let (repo_r, tag_r) = split(&images[0].0);
    for path in [
        blob_path.clone(),
        format!("/v2/{repo_r}/manifests/{tag_r}"),
        format!("/v2/{repo_r}/manifests/{}", images[0].1),
        "/v2/no/such/manifests/1.0".into(),
    ] {
        let g = req(p, "GET", &path);
        let h = req(p, "HEAD", &path);
        assert_eq!(g.status, h.status, "{path}");
        for name in ["content-length", "content-type", "docker-content-digest"] {
            assert_eq!(g.header(name), h.header(name), "{name} of {path}");
        }
        assert!(h.body.is_empty(), "{path}");
    }
    let m = req(p, "GET", &format!("/v2/{repo_r}/manifests/{tag_r}"));
    assert_eq!(
        m.header("docker-content-digest"),
        Some(images[0].1.as_str())
    );
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );

    // Listing and referrers.
    let cat: serde_json::Value =
        serde_json::from_slice(&req(p, "GET", "/v2/_catalog").body).unwrap();
    assert_eq!(cat["repositories"].as_array().unwrap().len(), 3, "{cat}");
    let tags: serde_json::Value =
        serde_json::from_slice(&req(p, "GET", &format!("/v2/{repo_r}/tags/list")).body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!([tag_r]));
    let r = req(p, "GET", &format!("/v2/{repo_r}/referrers/{}", images[0].1));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));

    // SIGTERM stops it cleanly; the access log has method, path, status, bytes.
    let status = serve.stop().expect("serve stops within 20s of SIGTERM");
    assert!(status.success(), "{status}: {}", serve.log());
    let access = std::fs::read_to_string(w.path("access.log")).unwrap();
    assert!(
        access.contains(&format!("\"GET {blob_path}\" 200 {size} ")),
        "{access}"
    );
    assert!(access.contains("\"PUT "), "{access}");
}

#[test]
fn serve_a_byte_flipped_after_start_is_not_served_as_good() {
    let (w, images) = demo();
    let serve = Serve::start(&w, "b.tar", &["--access-log", "access.log"]);
    let (repo, layer, size) = a_layer(serve.port, &images);
    flip_byte(
        &w.path("b.tar"),
        blob_offset(&w.path("b.tar"), &layer) + size / 2,
    );

    let r = req(serve.port, "GET", &format!("/v2/{repo}/blobs/{layer}"));
    assert!(
        !(r.complete() && atp_bundle::Digest::of(&r.body).to_string() == layer),
        "a changed blob was sent whole"
    );
    assert!(
        !r.complete(),
        "status {} with {} of {size} bytes",
        r.status,
        r.body.len()
    );
    // A real client fails too.
    let (reference, _) = images
        .iter()
        .find(|(r, _)| r.contains("model-loader"))
        .unwrap();
    let o = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/{reference}", serve.host()),
        &format!("oci:{}:x", w.s("out")),
    ]);
    assert!(!o.status.success(), "skopeo copied a changed blob");
    let log = serve.log();
    assert!(
        log.contains(&format!("blob {layer} changed on the media")),
        "{log}"
    );
    let access = std::fs::read_to_string(w.path("access.log")).unwrap();
    assert!(access.contains(" aborted"), "{access}");
    // Manifests were verified into memory and are still served.
    assert_eq!(
        req(serve.port, "GET", &format!("/v2/{repo}/manifests/1.4.0")).status,
        200
    );
}

#[test]
fn serve_a_bundle_that_fails_verification_never_opens_the_socket() {
    let (w, images) = demo();
    // Find a layer through a clean serve first, then break the bundle.
    let (_, layer, size) = {
        let s = Serve::start(&w, "b.tar", &[]);
        a_layer(s.port, &images)
    };
    flip_byte(
        &w.path("b.tar"),
        blob_offset(&w.path("b.tar"), &layer) + size / 2,
    );
    let mut serve = Serve::spawn(&w, "b.tar", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        assert!(
            TcpStream::connect(("127.0.0.1", serve.port)).is_err(),
            "the socket opened for a bundle that fails verification"
        );
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not exit within 60s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    assert!(serve.log().contains(&layer[..19]), "{}", serve.log());
}

#[test]
fn serve_refuses_plain_http_on_a_non_loopback_address() {
    let w = Work::new();
    let o = w.installer(&[
        "serve",
        "b.tar",
        "--key",
        "k.pub",
        "--listen",
        "0.0.0.0:5999",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--tls-cert"),
        "{err}"
    );
}

#[test]
fn serve_tls_with_a_per_test_ca() {
    use atp_testkit::pki::{self, Ca};
    let (w, images) = demo();
    let ca = Ca::generate("serve test CA").unwrap();
    let leaf = ca.issue("127.0.0.1", &["127.0.0.1", "localhost"]).unwrap();
    let dir = w.path("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let crt = pki::write(&dir, "serve.crt", &leaf.cert.pem()).unwrap();
    let key = pki::write(&dir, "serve.key", &leaf.key.serialize_pem()).unwrap();
    let certs = w.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    pki::write(&certs, "ca.crt", &ca.cert.pem()).unwrap();
    let (crt, key) = (
        crt.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let serve = Serve::spawn(&w, "b.tar", &["--tls-cert", &crt, "--tls-key", &key]);
    let cert_dir = certs.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (reference, digest) in &images {
        let r = format!("docker://{}/{reference}", serve.host());
        let o = loop {
            let o = skopeo(&["inspect", "--raw", "--cert-dir", &cert_dir, &r]);
            if o.status.success() || Instant::now() > deadline {
                break o;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_ok(&o, &format!("skopeo inspect {r} over TLS"));
        assert_eq!(&atp_bundle::Digest::of(&o.stdout).to_string(), digest);
    }
    // Without the CA, the client refuses the server.
    let o = skopeo(&[
        "inspect",
        "--raw",
        &format!("docker://{}/{}", serve.host(), images[0].0),
    ]);
    assert!(!o.status.success());
}

/// docker-registry with `proxy.remoteurl` pointing at `upstream`, stopped on drop.
struct PullThrough {
    child: Child,
    port: u16,
}

impl PullThrough {
    fn start(w: &Work, upstream: &str) -> PullThrough {
        let port = free_port();
        let root = w.path("cache");
        std::fs::create_dir_all(root.join("storage")).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: atp-serve-test-not-a-secret\nproxy:\n  remoteurl: http://{upstream}\n",
            root.join("storage").display()
        );
        std::fs::write(root.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(root.join("config.yml"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(root.join("out.log")).unwrap())
            .stderr(std::fs::File::create(root.join("err.log")).unwrap())
            .spawn()
            .unwrap();
        let cache = PullThrough { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !get(port, "GET", "/v2/", &[]).is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < deadline,
                "the pull-through cache did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cache
    }
}

impl Drop for PullThrough {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_behind_a_docker_registry_pull_through_cache() {
    let (w, images) = demo();
    let serve = Serve::start(&w, "b.tar", &["--access-log", "access.log"]);
    let cache = PullThrough::start(&w, &serve.host());
    let host = format!("127.0.0.1:{}", cache.port);
    for (reference, digest) in &images {
        let raw = raw_manifest(&host, reference, &["--tls-verify=false"]);
        assert_eq!(
            &atp_bundle::Digest::of(&raw).to_string(),
            digest,
            "{reference}"
        );
        let out = format!("oci:{}:{}", w.s("pulled"), split(reference).1);
        let o = skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{host}/{reference}"),
            &out,
        ]);
        assert_ok(
            &o,
            &format!("skopeo copy --all {reference} through the cache"),
        );
    }
    // The cache fetched from serve (a real registry is a client of ours).
    let access = std::fs::read_to_string(w.path("access.log")).unwrap();
    assert!(access.contains("/blobs/sha256:"), "{access}");
}

#[test]
fn serve_split_zstd_volumes_in_place() {
    let w = Work::new();
    std::fs::create_dir_all(w.path("zs")).unwrap();
    assert_ok(
        &w.create_demo("zs/b.tar", &["--compress", "zstd", "--split-size", "8192"]),
        "create zstd split",
    );
    let out = w.bundler(&["inspect", "zs", "--json"]);
    assert_ok(&out, "inspect");
    let serve = Serve::start(&w, "zs", &[]);
    for img in json(&out)["images"].as_array().unwrap() {
        let reference = img["reference"].as_str().unwrap();
        let o = skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/{reference}", serve.host()),
            &format!("oci:{}:{}", w.s("pulled"), split(reference).1),
        ]);
        assert_ok(
            &o,
            &format!("skopeo copy --all {reference} from zstd volumes"),
        );
        let raw = raw_manifest(&serve.host(), reference, &["--tls-verify=false"]);
        assert_eq!(
            atp_bundle::Digest::of(&raw).to_string(),
            img["digest"].as_str().unwrap()
        );
    }
}

#[test]
fn serve_a_client_leaving_mid_blob_does_not_stop_the_others() {
    let w = Work::new();
    common::big_layout(&w.path("big"), 1, 16 << 20, 7);
    let spec = format!(
        "metadata: {{name: big, version: '1'}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {{source: \"oci:{}:1.0\", name: docker.io/atp/big:1.0}}\n",
        w.path("big").display()
    );
    std::fs::write(w.path("big.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create", "--spec", "big.yaml", "--key", "k.key", "--output", "big.tar",
        ]),
        "create",
    );
    let serve = Serve::start(&w, "big.tar", &["--access-log", "access.log"]);
    let m = req(serve.port, "GET", "/v2/docker.io/atp/big/manifests/1.0");
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap().to_owned();
    let path = format!("/v2/docker.io/atp/big/blobs/{layer}");

    // Three clients read a little and hang up, one never reads at all.
    let mut stalled = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    write!(stalled, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 64 << 10];
        s.read_exact(&mut buf).unwrap();
    }
    // Meanwhile whole reads complete and hash right.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (port, path) = (serve.port, path.clone());
            std::thread::spawn(move || req(port, "GET", &path))
        })
        .collect();
    for r in readers {
        let r = r.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete());
        assert_eq!(atp_bundle::Digest::of(&r.body).to_string(), layer);
    }
    drop(stalled);
    assert_eq!(req(serve.port, "GET", "/v2/").status, 200);
}

#[test]
fn serve_seeds_a_registry_through_atp_bundler_sync() {
    let (w, images) = demo();
    let serve = Serve::start(&w, "b.tar", &[]);
    let reg = Registry::plain();
    // serve's names are the nested layout's (`docker.io/atp/router`), so a
    // Docker Hub mirror at `HOST/docker.io` is exactly what sync asks for.
    let mirror = format!("{}/docker.io", serve.host());
    let mut args = vec![
        "sync".to_string(),
        "--source-registry".into(),
        mirror,
        "--plain-http".into(),
        serve.host(),
        "--plain-http".into(),
        reg.host(),
        "--target-registry".into(),
        reg.host(),
    ];
    for (reference, _) in &images {
        args.push("--image".into());
        args.push(reference.clone());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&w.bundler(&a), "sync from serve");
    for (reference, digest) in &images {
        assert_eq!(
            &common::skopeo_digest(&reg, reference),
            digest,
            "{reference}"
        );
    }
}

#[test]
fn serve_file_sets_as_the_artifacts_install_would_push() {
    let w = Work::new();
    let models = w.path("models");
    std::fs::create_dir_all(models.join("llm")).unwrap();
    std::fs::write(models.join("config.json"), br#"{"dim":8}"#).unwrap();
    std::fs::write(
        models.join("llm/w.bin"),
        atp_testkit::cli::noise(700_000, 3),
    )
    .unwrap();
    let spec = format!(
        "metadata: {{name: atp-models, version: 1.0.1}}\nspec:\n  channel: models\n  sequence: 1\n  files:\n    - {{name: models, source: \"{}\"}}\n",
        models.display()
    );
    std::fs::write(w.path("files.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create",
            "--spec",
            "files.yaml",
            "--key",
            "k.key",
            "--output",
            "f.tar",
        ]),
        "create",
    );
    let serve = Serve::start(&w, "f.tar", &[]);
    let p = serve.port;
    let cat: serde_json::Value =
        serde_json::from_slice(&req(p, "GET", "/v2/_catalog").body).unwrap();
    assert_eq!(
        cat["repositories"],
        serde_json::json!(["atp-offline/files/models"])
    );
    let repo = "atp-offline/files/models";
    let m = req(p, "GET", &format!("/v2/{repo}/manifests/1.0.1"));
    assert_eq!(m.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    let config = v["config"]["digest"].as_str().unwrap();
    assert_eq!(
        req(p, "GET", &format!("/v2/{repo}/blobs/{config}")).status,
        200
    );
    let mut got = 0;
    for layer in v["layers"].as_array().unwrap() {
        let title = layer["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap();
        let r = req(
            p,
            "GET",
            &format!("/v2/{repo}/blobs/{}", layer["digest"].as_str().unwrap()),
        );
        assert!(r.status == 200 && r.complete(), "{title}");
        assert_eq!(
            r.body,
            std::fs::read(models.join(title)).unwrap(),
            "{title}"
        );
        got += 1;
    }
    assert_eq!(got, 2);

    // The real ORAS client (the `oras` PyPI package in the repo venv) pulls
    // the set from serve and writes both files with their bytes.
    let out_dir = w.path("oras-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let script = "import sys, oras.client\n\
        c = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
        files = c.pull(target=sys.argv[2], outdir=sys.argv[3])\n\
        print(len(files))\n";
    let py = common::repo_root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{}: run scripts/install-deps.sh",
        py.display()
    );
    let host = format!("127.0.0.1:{p}");
    let target = format!("{host}/{repo}:1.0.1");
    let out = std::process::Command::new(py)
        .args(["-c", script, &host, &target, out_dir.to_str().unwrap()])
        .env("DOCKER_CONFIG", w.path("docker"))
        .output()
        .unwrap();
    assert_ok(&out, "oras pull from serve");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2",
        "{}",
        common::text(&out)
    );
    for rel in ["config.json", "llm/w.bin"] {
        assert_eq!(
            std::fs::read(out_dir.join(rel)).unwrap(),
            std::fs::read(models.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn serve_refuses_a_delta_bundle_before_listening() {
    let w = Work::new();
    let v1 = common::demo_spec(&w, "v1.yaml", 1, &[]);
    let v2 = common::demo_spec(&w, "v2.yaml", 2, &[]);
    for (spec, out, extra) in [
        (&v1, "v1.tar", vec![]),
        (&v2, "v2.tar", vec!["--base", "v1.tar"]),
    ] {
        let mut args = vec![
            "create",
            "--spec",
            spec.as_str(),
            "--key",
            "k.key",
            "--output",
            out,
        ];
        args.extend(extra);
        assert_ok(&w.bundler(&args), out);
    }
    let o = w.installer(&[
        "serve",
        "v2.tar",
        "--key",
        "k.pub",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("delta bundle") && err.contains("hint:"),
        "{err}"
    );
}

/// Peak resident memory of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn serve_memory_stays_flat_while_four_clients_read_every_blob() {
    let w = Work::new();
    common::big_layout(&w.path("big"), 4, 24 << 20, 11);
    let spec = format!(
        "metadata: {{name: big, version: '1'}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {{source: \"oci:{}:1.0\", name: docker.io/atp/big:1.0}}\n",
        w.path("big").display()
    );
    std::fs::write(w.path("big.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create", "--spec", "big.yaml", "--key", "k.key", "--output", "big.tar",
        ]),
        "create",
    );
    let serve = Serve::start(&w, "big.tar", &[]);
    let m = req(serve.port, "GET", "/v2/docker.io/atp/big/manifests/1.0");
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
    let layers: Vec<String> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let (port, layers) = (serve.port, layers.clone());
            std::thread::spawn(move || {
                // Each client reads every blob, starting at a different one.
                for k in 0..layers.len() {
                    let d = &layers[(i + k) % layers.len()];
                    let r = req(port, "GET", &format!("/v2/docker.io/atp/big/blobs/{d}"));
                    assert!(r.status == 200 && r.complete(), "{d}");
                    assert_eq!(&atp_bundle::Digest::of(&r.body).to_string(), d);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    // 96 MiB of layers, 384 MiB sent: the server stays far below either.
    let peak = peak_rss_kib(serve.child.id());
    assert!(peak < 64 << 10, "peak RSS {peak} KiB");
}
